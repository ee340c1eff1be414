/*
 * fuzz_http.c - libFuzzer target: our part of the HTTP request path.
 *
 * libmicrohttpd parses the bytes of a request (request line, headers,
 * chunking); what reaches our code is a method, a decoded path and query,
 * header values and a body. Feeding raw bytes to a loopback daemon costs a
 * socket round trip per input, so this target instead takes an input laid
 * out as
 *
 *   METHOD SP TARGET LF AUTHORIZATION-VALUE LF BODY
 *
 * and runs what common/http.c and the services do with those pieces: the
 * URL and query decoding MHD applies (MHD_http_unescape), the bearer
 * parsing (pond_http_bearer_value), routing against the routes of ingest
 * and tagging (pond_http_match on a real pond_http), and the body parser of
 * the route taken (ingest_decode_json, or the tag name check and
 * pond_cond_parse of a tag rule).
 */
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http.h"
#include "ingest.h"
#include "tagging.h"

#define FUZZ_NOW INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t fuzz_loop;
static pond_http *fuzz_server;

static void
fuzz_unreachable(pond_http_req *req, void *arg)
{
	(void)arg;
	pond_http_reply(req, 500, NULL, "", 0);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct {
		const char *method, *path;
		bool prefix;
	} routes[] = {
	        {"GET", "/healthz", false},
	        {"GET", "/metrics", false},
	        {"POST", "/v1/events", false},
	        {"GET", "/v1/tag-rules", false},
	        {"PUT", "/v1/tag-rules/", true},
	        {"DELETE", "/v1/tag-rules/", true},
	        {"GET", "/v1/campaigns/", true},
	};

	(void)argc;
	(void)argv;
	if (uv_loop_init(&fuzz_loop) != 0 ||
	    pond_http_start(&fuzz_server, &fuzz_loop, "127.0.0.1", 0,
	                    INGEST_MAX_BYTES, NULL) != 0) {
		fprintf(stderr, "fuzz_http: cannot start the server\n");
		abort();
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (pond_http_route(fuzz_server, routes[i].method,
		                    routes[i].path, routes[i].prefix,
		                    fuzz_unreachable, NULL) != 0) {
			abort();
		}
	}
	return (0);
}

/* fuzz_line cuts the next LF-terminated line off *p (of *n bytes) into a
 * fresh NUL-terminated string; the caller frees it. */
static char *
fuzz_line(const uint8_t **p, size_t *n)
{
	const uint8_t *lf = memchr(*p, '\n', *n);
	size_t len = lf != NULL ? (size_t)(lf - *p) : *n;
	char *s = malloc(len + 1);

	if (s == NULL) {
		abort();
	}
	memcpy(s, *p, len);
	s[len] = '\0';
	*p += len + (lf != NULL);
	*n -= len + (lf != NULL);
	return (s);
}

/* fuzz_query decodes each name=value of query in place, as MHD does. */
static void
fuzz_query(char *query)
{
	char *save = NULL;

	for (char *arg = strtok_r(query, "&", &save); arg != NULL;
	     arg = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(arg, '=');
		if (eq != NULL) {
			*eq = '\0';
			MHD_http_unescape(eq + 1);
		}
		MHD_http_unescape(arg);
	}
}

static void
fuzz_events(const char *body, size_t len)
{
	ingest_batch *b = ingest_batch_new(NULL, FORMAT_JSON);
	unsigned status;

	if (b == NULL) {
		return;
	}
	if (ingest_decode_json(b, body, len, &status) == 0) {
		for (size_t i = 0; i < b->n; i++) {
			ingest_validate(&b->items[i], FORMAT_JSON, FUZZ_NOW);
		}
	}
	ingest_batch_free(b);
}

static void
fuzz_tag_rule(const char *tag, const char *body, size_t len)
{
	const char *why;
	json_t *j;
	pond_cond *c = NULL;
	pond_cond_error err;

	if (!pond_tag_name_ok(tag, &why) ||
	    (j = json_loadb(body, len, 0, NULL)) == NULL) {
		return;
	}
	if (json_is_object(j) && json_object_get(j, "condition") != NULL &&
	    pond_cond_parse(json_object_get(j, "condition"), &c, &err) == 0) {
		pond_cond_free(c);
	}
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t n = size, tl = 0;
	char *line = fuzz_line(&p, &n), *auth = fuzz_line(&p, &n);
	char *method = line, *path = strchr(line, ' '), *query;
	char allow[256];
	const char *token;

	if (path == NULL) {
		goto out;
	}
	*path++ = '\0';
	if ((query = strchr(path, '?')) != NULL) {
		*query++ = '\0';
		fuzz_query(query);
	}
	MHD_http_unescape(path);
	token = pond_http_bearer_value(auth, &tl);
	if (token != NULL && (tl == 0 || token + tl > auth + strlen(auth))) {
		abort(); /* a token must be a non-empty part of the value */
	}
	if (pond_http_match(fuzz_server, method, path, allow, sizeof(allow)) !=
	    0) {
		goto out;
	}
	if (strcmp(path, "/v1/events") == 0) {
		fuzz_events((const char *)p, n);
	} else if (strncmp(path, "/v1/tag-rules/", 14) == 0 &&
	           strcmp(method, "PUT") == 0) {
		fuzz_tag_rule(path + 14, (const char *)p, n);
	}
out:
	free(auth);
	free(line);
	return (0);
}
