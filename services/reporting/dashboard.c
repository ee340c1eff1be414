/*
 * dashboard.c - serves the embedded dashboard files (see dashboard.h).
 *
 * The files are built into the binary, so an answer is a pointer into
 * .rodata: no copy, no disk. Conditional requests (If-None-Match) are
 * answered 304. The page carries its own Content-Security-Policy (a meta
 * element in index.html, so the mock server of the browser test serves it
 * too) that allows nothing outside this origin.
 */
#include "dashboard.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* dashboard_item_accepts tells whether the list item s[0..n) names token
 * with a q parameter above 0 (or none). */
static bool
dashboard_item_accepts(const char *s, size_t n, const char *token)
{
	const char *end = s + n;
	size_t tlen = strlen(token);
	const char *q;
	char *qend;

	s += strspn(s, " \t");
	if ((size_t)(end - s) < tlen || strncasecmp(s, token, tlen) != 0 ||
	    (s + tlen < end && strchr(" \t;", s[tlen]) == NULL)) {
		return (false);
	}
	q = strstr(s, "q=");
	if (q == NULL || q >= end) {
		return (true);
	}
	return (strtod(q + 2, &qend) > 0 && qend != q + 2);
}

bool
reporting_dashboard_accepts_gzip(const char *accept_encoding)
{
	const char *s = accept_encoding;
	size_t n;

	while (s != NULL && *s != '\0') {
		n = strcspn(s, ",");
		if (dashboard_item_accepts(s, n, "gzip") ||
		    dashboard_item_accepts(s, n, "*")) {
			return (true);
		}
		s += n + (s[n] == ',');
	}
	return (false);
}

/* dashboard_not_modified tells whether If-None-Match names etag (or is
 * "*"); a weak "W/" prefix matches too, as RFC 9110 asks for GET. */
static bool
dashboard_not_modified(const char *if_none_match, const char *etag)
{
	if (if_none_match == NULL) {
		return (false);
	}
	return (strstr(if_none_match, etag) != NULL ||
	        strcmp(if_none_match + strspn(if_none_match, " \t"), "*") ==
	                0);
}

static void
dashboard_serve(pond_http_req *req, void *arg)
{
	const reporting_dashboard_asset *a = arg;
	bool gz = a->gzip != NULL &&
	          reporting_dashboard_accepts_gzip(
	                  pond_http_header(req, "Accept-Encoding"));
	const char *etag = gz ? a->gzip_etag : a->etag;
	const char *headers[12];
	size_t n = 0;

	headers[n++] = "ETag";
	headers[n++] = etag;
	headers[n++] = "Cache-Control";
	headers[n++] = "no-cache";
	headers[n++] = "X-Content-Type-Options";
	headers[n++] = "nosniff";
	if (a->gzip != NULL) {
		headers[n++] = "Vary";
		headers[n++] = "Accept-Encoding";
	}
	if (dashboard_not_modified(pond_http_header(req, "If-None-Match"),
	                           etag)) {
		headers[n] = NULL;
		pond_http_reply_static(req, 304, NULL, "", 0, headers);
		return;
	}
	if (gz) {
		headers[n++] = "Content-Encoding";
		headers[n++] = "gzip";
	}
	headers[n] = NULL;
	pond_http_reply_static(req, 200, a->content_type,
	                       gz ? a->gzip : a->body,
	                       gz ? a->gzip_len : a->len, headers);
}

int
reporting_dashboard_register(pond_http *http)
{
	int rv;

	for (size_t i = 0; i < reporting_dashboard_nassets; i++) {
		const reporting_dashboard_asset *a =
		        &reporting_dashboard_assets[i];
		if ((rv = pond_http_route(http, "GET", a->path, false,
		                          dashboard_serve, (void *)a)) != 0) {
			return (rv);
		}
	}
	return (0);
}
