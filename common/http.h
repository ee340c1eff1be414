/*
 * http.h - the small HTTP layer every service uses.
 *
 * libmicrohttpd parses HTTP; it runs in "external epoll" mode, and the libuv
 * loop polls its epoll fd and calls MHD_run, so every handler runs on the
 * loop thread like the rest of the service. A handler may answer at once or
 * later (after a store job completes): the connection is suspended until
 * pond_http_reply is called.
 *
 * Routes match on method and exact path, or on a path prefix ("/v1/campaigns/"
 * matches "/v1/campaigns/42/pause"). Unknown paths get 404, a known path with
 * another method 405, a body over max_body 413 -- all as JSON errors:
 *   {"error": {"code": "...", "message": "..."}}
 * with codes not_found, method_not_allowed (plus an Allow header), too_large,
 * and unavailable (503, a request arriving while the server stops).
 * Requests MHD cannot parse (bad request line, headers over 64 KB) get MHD's
 * own 400 / 431 / 505 or a closed connection, never a handler call.
 */
#ifndef POND_HTTP_H
#define POND_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "metrics.h"

typedef struct pond_http pond_http;
typedef struct pond_http_req pond_http_req;

/* pond_http_fn handles one request on the loop thread. It must eventually
 * call exactly one pond_http_reply* on req (now or later, but always on the
 * loop thread). A client that hangs up meanwhile is noticed only then: the
 * reply is dropped and req freed as usual. */
typedef void (*pond_http_fn)(pond_http_req *req, void *arg);

/* pond_http_start listens on addr:port (addr "0.0.0.0", "127.0.0.1", "::",
 * ...; port 0 picks a free one, see pond_http_port). Request bodies over
 * max_body bytes are answered 413 without reaching a handler (from the
 * Content-Length alone when there is one). metrics may be NULL; otherwise
 * requests are counted as pond_http_requests_total{route="GET /path",
 * code="200"} (route="unmatched" for 404s, "*" after a prefix route) and
 * timed in pond_http_request_duration_seconds. Those series point into the
 * server: do not render metrics once pond_http_stop's done has run. */
int pond_http_start(pond_http **hp, uv_loop_t *loop, const char *addr,
                    uint16_t port, size_t max_body,
                    pond_metrics *metrics) POND_MUSTCHECK;

/* pond_http_port returns the port actually bound. */
uint16_t pond_http_port(const pond_http *h);

/* pond_http_route adds a route; prefix selects prefix matching of path.
 * An exact path beats a prefix, a longer prefix a shorter one; HEAD falls
 * back to a GET route. POND_EEXIST for a route already there, POND_EINVAL
 * for a path not starting with '/' or holding '"', '\' or a control
 * character (paths become metric labels). */
int pond_http_route(pond_http *h, const char *method, const char *path,
                    bool prefix, pond_http_fn fn, void *arg) POND_MUSTCHECK;

/* pond_http_stop stops accepting connections; requests in flight finish
 * (their replies carry "Connection: close"), a new request on a kept-alive
 * connection gets 503, idle connections are closed at the end. done (may be
 * NULL) runs once every connection is gone and the server is freed; h is
 * invalid after that. Call it once; it may be called from a handler. */
void pond_http_stop(pond_http *h, void (*done)(void *), void *arg);

/* pond_http_method returns the request method ("GET", "POST", ...). */
const char *pond_http_method(const pond_http_req *req);

/* pond_http_path returns the request path without the query string. */
const char *pond_http_path(const pond_http_req *req);

/* pond_http_query returns the decoded query argument name ("+" and %XX
 * decoded; "" for "?name" without "="), or NULL. MHD matches the name
 * case-insensitively. */
const char *pond_http_query(const pond_http_req *req, const char *name);

/* pond_http_header returns request header name (case-insensitive) or NULL;
 * MHD skips blanks before the value but keeps those after it. */
const char *pond_http_header(const pond_http_req *req, const char *name);

/* pond_http_bearer returns the token of "Authorization: Bearer TOKEN" (the
 * scheme case-insensitive, blanks around the token ignored), or NULL when
 * the header is missing or not a single-word bearer token (counted as a
 * missing credential in pond_auth_failures_total). */
const char *pond_http_bearer(const pond_http_req *req);

/* pond_http_bearer_value returns the token of an Authorization header
 * value v as pond_http_bearer does (its length in *len, not terminated),
 * or NULL; v may be NULL. */
const char *pond_http_bearer_value(const char *v, size_t *len);

/* pond_http_match returns what routing gives a request for method and
 * path: 0 when a route takes it, 404 for an unknown path, 405 for a known
 * path without that method (allow, of len bytes, then lists the path's
 * methods). */
unsigned pond_http_match(const pond_http *h, const char *method,
                         const char *path, char *allow, size_t len);

/* pond_http_body returns the request body (NUL-terminated; len excludes
 * the NUL; "" when there is none). Valid until the reply. */
const char *pond_http_body(const pond_http_req *req, size_t *len);

/* pond_http_reply sends status with body (copied) and frees req;
 * content_type may be NULL. A status outside 100..599 is sent as 500. */
void pond_http_reply(pond_http_req *req, unsigned status,
                     const char *content_type, const void *body, size_t len);

/* pond_http_reply_static sends status with body as it is, not copied: body
 * must outlive the server (an asset embedded in the binary). content_type
 * may be NULL; headers is NULL or a NULL-terminated list of name, value
 * pairs added to the response (ETag, Cache-Control, Content-Encoding). */
void pond_http_reply_static(pond_http_req *req, unsigned status,
                            const char *content_type, const void *body,
                            size_t len, const char *const *headers);

/* pond_http_reply_json sends json (takes ownership, dumps compact); a NULL
 * or unencodable json is answered 500. */
void pond_http_reply_json(pond_http_req *req, unsigned status, json_t *json);

/* pond_http_reply_error sends {"error": {"code": code, "message": msg}}. */
void pond_http_reply_error(pond_http_req *req, unsigned status,
                           const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
