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

/* dashboard_coding finds token (a content coding, or "*") in the
 * Accept-Encoding list v: -1 when it is not listed, else 1 when its q is
 * above 0 (or absent) and 0 when it is refused (q=0). */
static int
dashboard_coding(const char *v, const char *token)
{
	size_t tlen = strlen(token);

	while (v != NULL && *v != '\0') {
		size_t n = strcspn(v, ",");
		const char *end = v + n;
		const char *s = v + strspn(v, " \t");

		v = end + (*end == ',');
		if ((size_t)(end - s) < tlen ||
		    strncasecmp(s, token, tlen) != 0 ||
		    (s + tlen < end && strchr(" \t;", s[tlen]) == NULL)) {
			continue;
		}
		const char *q = strstr(s, "q=");
		char *qend;
		if (q == NULL || q >= end) {
			return (1);
		}
		return (strtod(q + 2, &qend) > 0 && qend != q + 2);
	}
	return (-1);
}

bool
reporting_dashboard_accepts_gzip(const char *accept_encoding)
{
	int gzip = dashboard_coding(accept_encoding, "gzip");

	/* gzip named decides; otherwise "*" stands for it (RFC 9110). */
	return (gzip >= 0 ? gzip == 1
	                  : dashboard_coding(accept_encoding, "*") == 1);
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
