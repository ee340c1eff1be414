/*
 * http.c - the HTTP server of every service: libmicrohttpd driven by the
 * libuv loop (see http.h).
 *
 * MHD runs in external epoll mode. Its epoll fd is one uv_poll on the loop,
 * and a uv_timer armed with MHD_get_timeout after every MHD_run covers the
 * work MHD has pending without fd activity (timeouts, resumed connections).
 *
 * A pond_http_req is made when MHD has a request's headers (the first
 * access callback) and freed when MHD reports the request completed. In
 * between, the access callback reads the body into req->body, calls the
 * handler, and suspends the connection if the handler did not reply.
 * pond_http_reply builds the MHD response, resumes the connection and kicks
 * MHD, whose next access callback queues the response. MHD notices no
 * client disconnect while a connection is suspended, so a req outlives every
 * handler holding it; should MHD drop the connection anyway (an orphan), the
 * req waits for the handler's reply and is freed there.
 */
#include "http.h"

#include <assert.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "token.h"

#define HTTP_MAX_CONNECTIONS 1000u
#define HTTP_TIMEOUT_S       30u
#define HTTP_CONN_MEMORY     ((size_t)64 * 1024) /* headers must fit */
#define HTTP_DISCARD_MAX     ((uint64_t)16 << 20)
#define HTTP_NCODES          500 /* status codes 100..599 */

/* http_route is one route and its answers counted by status (indexed by
 * status - 100: 4 KB a route buys counting without a lookup). */
typedef struct http_route {
	struct http_route *next;
	const char *method;
	size_t pathlen;
	bool prefix;
	pond_http_fn fn;
	void *arg;
	pond_counter codes[HTTP_NCODES];
	char path[]; /* then the method */
} http_route;

typedef enum http_state {
	HTTP_READING,  /* headers in, body arriving */
	HTTP_HANDLING, /* inside the handler */
	HTTP_WAITING,  /* handler returned without a reply; suspended */
	HTTP_REPLIED,  /* response built, not yet queued */
	HTTP_QUEUED,   /* response handed to MHD */
} http_state;

struct pond_http_req {
	pond_http *h;
	struct MHD_Connection *conn; /* NULL once MHD dropped it */
	http_route *route;
	http_state state;
	bool too_large;
	unsigned status;
	struct MHD_Response *response;
	uint64_t start_ns;
	char *body;
	size_t body_len, body_cap;
	uint64_t discarded;
	const char *method;
	const char *path;
	const char *bearer;
	char names[]; /* method, path and bearer token */
};

struct pond_http {
	struct MHD_Daemon *daemon;
	MHD_socket listen_fd; /* ours to close once quiesced */
	uv_poll_t poll;
	uv_timer_t timer;
	int nopen; /* uv handles not yet closed */
	uint16_t port;
	size_t max_body;
	http_route *routes; /* in registration order */
	http_route **tail;
	pond_counter unrouted[HTTP_NCODES];
	pond_histogram latency;
	size_t nreqs; /* live reqs; the server stops when none is left */
	bool started;
	bool kicked;
	bool stopping;
	bool quiesced;
	bool closing;
	void (*done)(void *);
	void *done_arg;
};

static void http_on_timer(uv_timer_t *timer);

/* http_kick makes MHD run on the next loop iteration: after a resume, or
 * when the stop can make progress. */
static void
http_kick(pond_http *h)
{
	if (h->closing) {
		return;
	}
	h->kicked = true;
	uv_timer_start(&h->timer, http_on_timer, 0, 0);
}

/* The scheme is case-insensitive (RFC 7235), the token one word (trailing
 * blanks are left in the value by MHD). */
const char *
pond_http_bearer_value(const char *v, size_t *len)
{
	if (v == NULL || strncasecmp(v, "Bearer", 6) != 0 ||
	    (v[6] != ' ' && v[6] != '\t')) {
		return (NULL);
	}
	v += 6;
	v += strspn(v, " \t");
	*len = strcspn(v, " \t");
	if (*len == 0 || v[*len + strspn(v + *len, " \t")] != '\0') {
		return (NULL);
	}
	return (v);
}

/* http_req_new makes the req once the headers are in, with copies of
 * method, path and bearer token in the one allocation. */
static pond_http_req *
http_req_new(pond_http *h, struct MHD_Connection *conn, const char *url,
             const char *method)
{
	size_t ml = strlen(method), pl = strlen(url), tl = 0;
	const char *token = pond_http_bearer_value(
	        MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                    "Authorization"),
	        &tl);
	pond_http_req *req = calloc(1, sizeof(*req) + ml + pl + tl + 3);

	if (req == NULL) {
		return (NULL);
	}
	req->method = memcpy(req->names, method, ml + 1);
	req->path = memcpy(req->names + ml + 1, url, pl + 1);
	if (token != NULL) {
		req->bearer = memcpy(req->names + ml + pl + 2, token, tl);
	}
	req->h = h;
	req->conn = conn;
	req->start_ns = uv_hrtime();
	h->nreqs++;
	return (req);
}

static void
http_req_free(pond_http_req *req)
{
	pond_http *h = req->h;

	if (req->response != NULL) {
		MHD_destroy_response(req->response);
	}
	free(req->body);
	free(req);
	if (--h->nreqs == 0 && h->stopping) {
		http_kick(h);
	}
}

/* http_body_append adds upload data within max_body. Past it the rest is
 * only counted, so the 413 goes out once the client has sent everything;
 * false (close the connection) past HTTP_DISCARD_MAX or out of memory. */
static bool
http_body_append(pond_http_req *req, const char *data, size_t n)
{
	size_t need = req->body_len + n + 1;

	if (req->too_large || n > req->h->max_body - req->body_len) {
		req->too_large = true;
		req->discarded += n;
		return (req->discarded <= HTTP_DISCARD_MAX);
	}
	if (need > req->body_cap) {
		size_t cap =
		        need > 2 * req->body_cap ? need : 2 * req->body_cap;
		char *body = realloc(req->body, cap);
		if (body == NULL) {
			return (false);
		}
		req->body = body;
		req->body_cap = cap;
	}
	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return (true);
}

static bool
http_path_matches(const http_route *r, const char *path)
{
	return (r->prefix ? strncmp(path, r->path, r->pathlen) == 0
	                  : strcmp(path, r->path) == 0);
}

/* http_match finds the route for method and path: an exact path beats a
 * prefix, a longer prefix a shorter one, and HEAD falls back to GET. It
 * returns 0 with *route set, or 404 / 405 with allow set to the methods
 * the path has. */
static unsigned
http_match(const pond_http *h, const char *method, const char *path,
           http_route **route, char *allow, size_t len)
{
	uint64_t best = 0;
	bool known = false;

	*route = NULL;
	allow[0] = '\0';
	for (http_route *r = h->routes; r != NULL; r = r->next) {
		uint64_t score;
		if (!http_path_matches(r, path)) {
			continue;
		}
		known = true;
		if (strstr(allow, r->method) == NULL &&
		    strlen(allow) + strlen(r->method) + 3 < len) {
			if (allow[0] != '\0') {
				strcat(allow, ", ");
			}
			strcat(allow, r->method);
		}
		if (strcmp(r->method, method) == 0) {
			score = 2;
		} else if (strcmp(method, "HEAD") == 0 &&
		           strcmp(r->method, "GET") == 0) {
			score = 1;
		} else {
			continue;
		}
		score += 4 * (r->prefix ? r->pathlen + 1 : UINT64_C(1) << 40);
		if (score > best) {
			best = score;
			*route = r;
		}
	}
	if (*route != NULL) {
		return (0);
	}
	return (known ? 405 : 404);
}

unsigned
pond_http_match(const pond_http *h, const char *method, const char *path,
                char *allow, size_t len)
{
	http_route *route;

	return (http_match(h, method, path, &route, allow, len));
}

/* http_dispatch runs once the whole body is in. */
static void
http_dispatch(pond_http_req *req)
{
	if (req->too_large) {
		pond_http_reply_error(req, 413, "too_large",
		                      "request body over %zu bytes",
		                      req->h->max_body);
		return;
	}
	req->state = HTTP_HANDLING;
	req->route->fn(req, req->route->arg);
	if (req->state == HTTP_HANDLING) {
		req->state = HTTP_WAITING;
		MHD_suspend_connection(req->conn);
	}
}

/* http_admit runs once the headers are in: it answers at once what needs
 * no body (unknown route, shutdown, a Content-Length over max_body). */
static void
http_admit(pond_http_req *req)
{
	pond_http *h = req->h;
	char allow[256];
	const char *cl;

	if (h->stopping) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "the server is shutting down");
		return;
	}
	switch (http_match(h, req->method, req->path, &req->route, allow,
	                   sizeof(allow))) {
	case 404:
		pond_http_reply_error(req, 404, "not_found",
		                      "no such path on this server");
		return;
	case 405:
		pond_http_reply_error(req, 405, "method_not_allowed",
		                      "method %s is not allowed here",
		                      req->method);
		if (req->response != NULL) {
			MHD_add_response_header(req->response, "Allow", allow);
		}
		return;
	}
	cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
	                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && strtoull(cl, NULL, 10) > h->max_body) {
		req->too_large = true;
		http_dispatch(req); /* answers 413 without reading the body */
	}
}

static enum MHD_Result
http_respond(pond_http_req *req)
{
	enum MHD_Result rv;

	if (req->state != HTTP_REPLIED) {
		return (MHD_YES);
	}
	req->state = HTTP_QUEUED;
	if (req->response == NULL) {
		return (MHD_NO); /* no memory for it: drop the connection */
	}
	rv = MHD_queue_response(req->conn, req->status, req->response);
	MHD_destroy_response(req->response);
	req->response = NULL;
	return (rv);
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
            const char *method, const char *version, const char *upload_data,
            size_t *upload_data_size, void **con_cls)
{
	pond_http *h = cls;
	pond_http_req *req = *con_cls;

	if (req == NULL) {
		if ((req = http_req_new(h, conn, url, method)) == NULL) {
			return (MHD_NO);
		}
		*con_cls = req;
		http_admit(req);
		return (http_respond(req));
	}
	if (*upload_data_size != 0) {
		bool ok =
		        req->state != HTTP_READING ||
		        http_body_append(req, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return (ok ? MHD_YES : MHD_NO);
	}
	if (req->state == HTTP_READING) {
		http_dispatch(req);
	}
	return (http_respond(req));
}

/* http_completed is MHD's word that a request is over, answered or not. */
static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
	pond_http *h = cls;
	pond_http_req *req = *con_cls;

	if (req == NULL) {
		return;
	}
	*con_cls = NULL;
	if (req->status != 0) {
		double secs = (double)(uv_hrtime() - req->start_ns) / 1e9;
		pond_histogram_observe(&h->latency, secs);
		pond_counter_inc(&(req->route != NULL
		                           ? req->route->codes
		                           : h->unrouted)[req->status - 100]);
	}
	if (pond_log_threshold >= POND_LOG_DEBUG) {
		char path[256];
		pond_log_debug("http_request",
		               "method=%s path=%s status=%u toe=%d",
		               req->method,
		               pond_log_quote(req->path, path, sizeof(path)),
		               req->status, (int)toe);
	}
	if (req->state == HTTP_HANDLING || req->state == HTTP_WAITING) {
		req->conn = NULL; /* the handler frees it with its reply */
		return;
	}
	http_req_free(req);
}

static void
http_on_close(uv_handle_t *handle)
{
	pond_http *h = handle->data;

	if (--h->nopen > 0) {
		return;
	}
	void (*done)(void *) = h->done;
	void *arg = h->done_arg;
	while (h->routes != NULL) {
		http_route *r = h->routes;
		h->routes = r->next;
		free(r);
	}
	free(h);
	if (done != NULL) {
		done(arg);
	}
}

/* http_close tears the server down once no req is left. The poll handle
 * goes first: closing it takes MHD's epoll fd out of libuv's epoll before
 * MHD_stop_daemon closes that fd. */
static void
http_close(pond_http *h)
{
	h->closing = true;
	uv_close((uv_handle_t *)&h->poll, http_on_close);
	uv_close((uv_handle_t *)&h->timer, http_on_close);
	MHD_stop_daemon(h->daemon);
	h->daemon = NULL;
	if (h->listen_fd != MHD_INVALID_SOCKET) {
		close(h->listen_fd);
	}
}

static void
http_arm(pond_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;

	if (!h->kicked && MHD_get_timeout(h->daemon, &ms) != MHD_YES) {
		uv_timer_stop(&h->timer);
		return;
	}
	uv_timer_start(&h->timer, http_on_timer, ms, 0);
}

/* http_run is the one place MHD_run is called, so the stop steps run
 * outside every MHD callback. */
static void
http_run(pond_http *h)
{
	h->kicked = false;
	MHD_run(h->daemon);
	if (h->stopping) {
		if (!h->quiesced) {
			/* MHD stops polling the listen socket; we close it
			 * only after MHD_stop_daemon, which may still touch
			 * it. */
			h->listen_fd = MHD_quiesce_daemon(h->daemon);
			h->quiesced = true;
		}
		if (h->nreqs == 0) {
			http_close(h);
			return;
		}
	}
	http_arm(h);
}

static void
http_on_timer(uv_timer_t *timer)
{
	http_run(timer->data);
}

static void
http_on_poll(uv_poll_t *poll, int status, int events)
{
	if (status < 0) {
		pond_log_warn("http_poll", "err=%s", uv_strerror(status));
	}
	http_run(poll->data);
}

static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	pond_http *h = cls;
	char msg[512];
	char quoted[600];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	pond_log_quote(msg, quoted, sizeof(quoted));
	/* Once running, MHD mostly reports what clients did (resets,
	 * malformed requests); that is debug noise, not a warning. */
	if (h->started) {
		pond_log_debug("http_mhd", "msg=%s", quoted);
	} else {
		pond_log_warn("http_mhd", "msg=%s", quoted);
	}
}

static void
http_emit_codes(pond_metrics_writer *w, const char *route,
                const pond_counter *codes)
{
	char labels[512];

	for (unsigned i = 0; i < HTTP_NCODES; i++) {
		uint64_t n = atomic_load(&codes[i].value);
		if (n != 0) {
			snprintf(labels, sizeof(labels),
			         "route=\"%s\",code=\"%u\"", route, i + 100);
			pond_metrics_emit(w, labels, (double)n);
		}
	}
}

/* http_collect emits pond_http_requests_total: one series per route and
 * status seen, the route named "METHOD PATH" ("*" after a prefix; route
 * paths hold nothing a label value would need escaped). */
static void
http_collect(pond_metrics_writer *w, void *arg)
{
	pond_http *h = arg;
	char route[400];

	for (http_route *r = h->routes; r != NULL; r = r->next) {
		snprintf(route, sizeof(route), "%s %s%s", r->method, r->path,
		         r->prefix ? "*" : "");
		http_emit_codes(w, route, r->codes);
	}
	http_emit_codes(w, "unmatched", h->unrouted);
}

int
pond_http_start(pond_http **hp, uv_loop_t *loop, const char *addr,
                uint16_t port, size_t max_body, pond_metrics *metrics)
{
	unsigned flags =
	        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	struct sockaddr_storage sa;
	pond_http *h;
	int rv;

	memset(&sa, 0, sizeof(sa));
	if (addr == NULL) {
		return (POND_EINVAL);
	}
	if (uv_ip4_addr(addr, port, (struct sockaddr_in *)&sa) != 0) {
		if (uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&sa) != 0) {
			return (POND_EINVAL);
		}
		flags |= MHD_USE_IPv6;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		return (POND_ENOMEM);
	}
	h->max_body = max_body;
	h->listen_fd = MHD_INVALID_SOCKET;
	h->tail = &h->routes;
	pond_histogram_init(&h->latency, pond_latency_bounds,
	                    pond_latency_nbounds);
	/* The logger goes first, or MHD logs the options before it itself. */
	h->daemon = MHD_start_daemon(
	        flags, port, NULL, NULL, http_access, h,
	        MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, h,
	        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	        MHD_OPTION_CONNECTION_LIMIT, HTTP_MAX_CONNECTIONS,
	        MHD_OPTION_CONNECTION_TIMEOUT, HTTP_TIMEOUT_S,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY,
	        MHD_OPTION_NOTIFY_COMPLETED, http_completed, h,
	        MHD_OPTION_END);
	if (h->daemon == NULL) {
		pond_log_error("http_start", "addr=%s port=%u", addr, port);
		rv = POND_EIO;
		goto err;
	}
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info != NULL ? info->port : port;
	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		rv = POND_EIO;
		goto err;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->nopen = 1;
	if (uv_poll_init(loop, &h->poll, info->epoll_fd) != 0) {
		rv = POND_EIO;
		goto err;
	}
	h->poll.data = h;
	h->nopen = 2;
	uv_poll_start(&h->poll, UV_READABLE, http_on_poll);
	/* Registered last, since the registry keeps pointers into h: only
	 * an out-of-memory failure of the second registration can leave the
	 * first pointing into the h freed below. */
	if (metrics != NULL &&
	    ((rv = pond_metrics_histogram(
	              metrics, "pond_http_request_duration_seconds",
	              "Time from request headers to the response sent.", NULL,
	              &h->latency)) != 0 ||
	     (rv = pond_metrics_collector(
	              metrics, "pond_http_requests_total",
	              "HTTP requests answered, by route and status code.",
	              "counter", http_collect, h)) != 0)) {
		goto err;
	}
	h->started = true;
	http_arm(h);
	pond_log_info("http_listening", "addr=%s port=%u", addr, h->port);
	*hp = h;
	return (POND_OK);

err:
	if (h->daemon != NULL) {
		MHD_stop_daemon(h->daemon);
	}
	if (h->nopen == 0) {
		free(h);
		return (rv);
	}
	/* uv handles are freed only by their close callbacks. */
	h->closing = true;
	uv_close((uv_handle_t *)&h->timer, http_on_close);
	if (h->nopen == 2) {
		uv_close((uv_handle_t *)&h->poll, http_on_close);
	}
	return (rv);
}

uint16_t
pond_http_port(const pond_http *h)
{
	return (h->port);
}

int
pond_http_route(pond_http *h, const char *method, const char *path,
                bool prefix, pond_http_fn fn, void *arg)
{
	http_route *r;

	/* Method and path go into metric labels unescaped, so they may not
	 * hold what a label value would need escaped. */
	if (method == NULL || *method == '\0' ||
	    method[strcspn(method, "\"\\\n\r\t ")] != '\0' || path == NULL ||
	    path[0] != '/' || path[strcspn(path, "\"\\\n\r\t")] != '\0' ||
	    fn == NULL) {
		return (POND_EINVAL);
	}
	for (r = h->routes; r != NULL; r = r->next) {
		if (r->prefix == prefix && strcmp(r->method, method) == 0 &&
		    strcmp(r->path, path) == 0) {
			return (POND_EEXIST);
		}
	}
	r = calloc(1, sizeof(*r) + strlen(path) + strlen(method) + 2);
	if (r == NULL) {
		return (POND_ENOMEM);
	}
	r->pathlen = strlen(path);
	memcpy(r->path, path, r->pathlen);
	r->method = strcpy(r->path + r->pathlen + 1, method);
	r->prefix = prefix;
	r->fn = fn;
	r->arg = arg;
	*h->tail = r;
	h->tail = &r->next;
	return (POND_OK);
}

void
pond_http_stop(pond_http *h, void (*done)(void *), void *arg)
{
	assert(!h->stopping);
	h->stopping = true;
	h->done = done;
	h->done_arg = arg;
	http_kick(h); /* the steps run in http_run, outside MHD callbacks */
}

const char *
pond_http_method(const pond_http_req *req)
{
	return (req->method);
}

const char *
pond_http_path(const pond_http_req *req)
{
	return (req->path);
}

/* The two accessors below read MHD's copy of the request: a connection
 * stays suspended, its memory intact, while a handler holds the req. Only
 * an orphan has no connection left. */
const char *
pond_http_query(const pond_http_req *req, const char *name)
{
	const char *v = NULL;

	if (req->conn == NULL ||
	    MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND,
	                                  name, strlen(name), &v,
	                                  NULL) != MHD_YES) {
		return (NULL);
	}
	return (v != NULL ? v : ""); /* "?flag" has no value */
}

const char *
pond_http_header(const pond_http_req *req, const char *name)
{
	if (req->conn == NULL) {
		return (NULL);
	}
	return (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name));
}

const char *
pond_http_bearer(const pond_http_req *req)
{
	/* Every service asks for the token here, so a request without one
	 * is counted here (pond_auth_failures_total{reason="missing"}). */
	if (req->bearer == NULL) {
		pond_auth_refused(POND_AUTH_MISSING);
	}
	return (req->bearer);
}

const char *
pond_http_body(const pond_http_req *req, size_t *len)
{
	if (len != NULL) {
		*len = req->body_len;
	}
	return (req->body != NULL ? req->body : "");
}

/* http_reply answers req with body (copied or not, per mode) and the
 * name, value pairs of headers (may be NULL). */
static void
http_reply(pond_http_req *req, unsigned status, const char *content_type,
           const void *body, size_t len, enum MHD_ResponseMemoryMode mode,
           const char *const *headers)
{
	struct MHD_Response *resp;
	bool waiting = req->state == HTTP_WAITING;

	assert(req->state <= HTTP_WAITING);
	if (req->conn == NULL) {
		http_req_free(req); /* an orphan: nobody to answer */
		return;
	}
	if (status < 100 || status > 599) {
		pond_log_error("http_bad_status", "status=%u", status);
		status = 500;
	}
	resp = MHD_create_response_from_buffer(len, (void *)body, mode);
	if (resp != NULL && content_type != NULL) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        content_type);
	}
	for (; resp != NULL && headers != NULL && headers[0] != NULL;
	     headers += 2) {
		MHD_add_response_header(resp, headers[0], headers[1]);
	}
	if (resp != NULL && req->h->stopping) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	}
	req->response = resp;
	req->status = status;
	req->state = HTTP_REPLIED;
	free(req->body);
	req->body = NULL;
	req->body_len = req->body_cap = 0;
	if (waiting) {
		MHD_resume_connection(req->conn);
		http_kick(req->h);
	}
}

void
pond_http_reply(pond_http_req *req, unsigned status, const char *content_type,
                const void *body, size_t len)
{
	http_reply(req, status, content_type, body, len, MHD_RESPMEM_MUST_COPY,
	           NULL);
}

void
pond_http_reply_static(pond_http_req *req, unsigned status,
                       const char *content_type, const void *body, size_t len,
                       const char *const *headers)
{
	http_reply(req, status, content_type, body, len,
	           MHD_RESPMEM_PERSISTENT, headers);
}

void
pond_http_reply_json(pond_http_req *req, unsigned status, json_t *json)
{
	char *text = NULL;

	if (json != NULL) {
		text = json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(json);
	}
	if (text == NULL) {
		static const char oom[] =
		        "{\"error\":{\"code\":\"internal\",\"message\":"
		        "\"cannot encode the reply\"}}";
		pond_http_reply(req, 500, "application/json", oom,
		                sizeof(oom) - 1);
		return;
	}
	pond_http_reply(req, status, "application/json", text, strlen(text));
	free(text);
}

void
pond_http_reply_error(pond_http_req *req, unsigned status, const char *code,
                      const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *json;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
	                 msg);
	if (json == NULL) {
		/* msg was not UTF-8 (a client's bytes, say). */
		json = json_pack("{s:{s:s,s:s}}", "error", "code", code,
		                 "message", "(message not UTF-8)");
	}
	pond_http_reply_json(req, status, json);
}
