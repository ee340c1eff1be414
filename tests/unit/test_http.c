/*
 * test_http.c - the HTTP server on a real loop and real sockets.
 *
 * The test thread runs the libuv loop with the server on 127.0.0.1 and a
 * free port; client threads speak raw HTTP/1.1 over blocking sockets, so
 * the tests control every byte (chunked bodies, hang-ups, garbage). When
 * the last client is done it wakes the loop, which stops the server; the
 * loop then runs out of handles and the test checks what was counted.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http.h"

#define MAX_BODY   1024
#define MAX_ROUNDS 4

typedef struct exchange {
	const char *request; /* raw bytes; NULL ends a client's list */
	size_t len;          /* 0: strlen(request) */
	bool hang_up;        /* close once a handler has run, read nothing */
	bool trickle;        /* send one byte at a time */
	bool keep;           /* keep the connection for the next exchange */
	int after;           /* wait for this many handler calls first */
	int status;          /* 0 when no status line came back */
	char *head;          /* status line and headers */
	char *body;
} exchange;

typedef struct fixture fixture;

typedef struct client {
	fixture *fx;
	exchange ex[MAX_ROUNDS];
	pthread_t thread;
} client;

struct fixture {
	uv_loop_t loop;
	uv_async_t wake;
	pond_http *http;
	pond_metrics *metrics;
	uint16_t port;
	int nclients;
	atomic_int ndone;
	atomic_int handled; /* handler calls */
	int replied_late;   /* async replies sent */
	bool stop_called;
	bool stopped;
	bool stopped_after_reply;
	char *metrics_text; /* rendered just before the stop */
};

/* A pending async reply: the handler starts a timer and answers from it. */
typedef struct later {
	uv_timer_t timer;
	pond_http_req *req;
	fixture *fx;
} later;

static void
on_stopped(void *arg)
{
	fixture *fx = arg;
	fx->stopped = true;
	fx->stopped_after_reply = fx->replied_late > 0;
	uv_close((uv_handle_t *)&fx->wake, NULL);
}

static void
fx_stop(fixture *fx)
{
	if (!fx->stop_called) {
		fx->stop_called = true;
		pond_http_stop(fx->http, on_stopped, fx);
	}
}

static void
on_wake(uv_async_t *async)
{
	fixture *fx = async->data;
	if (atomic_load(&fx->ndone) == fx->nclients && !fx->stop_called) {
		/* The collector points into the server: render before it
		 * goes. */
		fx->metrics_text = pond_metrics_render(fx->metrics, NULL);
		fx_stop(fx);
	}
}

/* --- handlers ------------------------------------------------------------ */

static void
h_hello(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	atomic_fetch_add(&fx->handled, 1);
	pond_http_reply(req, 200, "text/plain", "hello", 5);
}

static void
h_echo(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	size_t len;
	const char *body = pond_http_body(req, &len);
	atomic_fetch_add(&fx->handled, 1);
	cr_expect_eq(body[len], '\0');
	pond_http_reply(req, 200, "application/octet-stream", body, len);
}

static void
on_later(uv_timer_t *timer)
{
	later *l = timer->data;
	l->fx->replied_late++;
	pond_http_reply(l->req, 202, "text/plain", "later", 5);
	uv_close((uv_handle_t *)timer, (uv_close_cb)free);
}

static void
reply_later(fixture *fx, pond_http_req *req, uint64_t ms)
{
	later *l = calloc(1, sizeof(*l));
	cr_assert_not_null(l);
	l->req = req;
	l->fx = fx;
	uv_timer_init(&fx->loop, &l->timer);
	l->timer.data = l;
	uv_timer_start(&l->timer, on_later, ms, 0);
}

static void
h_later(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	atomic_fetch_add(&fx->handled, 1);
	reply_later(fx, req, 50);
}

/* h_slow answers only after the client has surely hung up. */
static void
h_slow(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	atomic_fetch_add(&fx->handled, 1);
	reply_later(fx, req, 300);
}

/* h_stop_then_later stops the server while its own request is pending. */
static void
h_stop_then_later(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	atomic_fetch_add(&fx->handled, 1);
	fx_stop(fx);
	reply_later(fx, req, 100);
}

static void
h_whoami(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	const char *token = pond_http_bearer(req);
	atomic_fetch_add(&fx->handled, 1);
	if (token == NULL) {
		token = "(none)";
	}
	pond_http_reply(req, 200, "text/plain", token, strlen(token));
}

static void
h_query(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	const char *names[] = {"name", "x", "flag", "missing"};
	json_t *o = json_object();
	atomic_fetch_add(&fx->handled, 1);
	for (size_t i = 0; i < 4; i++) {
		const char *v = pond_http_query(req, names[i]);
		json_object_set_new(o, names[i],
		                    v ? json_string(v) : json_null());
	}
	json_object_set_new(o, "path", json_string(pond_http_path(req)));
	json_object_set_new(o, "method", json_string(pond_http_method(req)));
	json_object_set_new(o, "header",
	                    json_string(pond_http_header(req, "x-custom")));
	pond_http_reply_json(req, 200, o);
}

static void
h_items(pond_http_req *req, void *arg)
{
	fixture *fx = arg;
	const char *path = pond_http_path(req);
	atomic_fetch_add(&fx->handled, 1);
	pond_http_reply(req, 200, "text/plain", path, strlen(path));
}

/* --- the fixture and the client ------------------------------------------ */

static void
fx_start(fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	cr_assert_eq(uv_loop_init(&fx->loop), 0);
	cr_assert_eq(uv_async_init(&fx->loop, &fx->wake, on_wake), 0);
	fx->wake.data = fx;
	cr_assert_eq(pond_metrics_create(&fx->metrics), 0);
	cr_assert_eq(pond_http_start(&fx->http, &fx->loop, "127.0.0.1", 0,
	                             MAX_BODY, fx->metrics),
	             0);
	fx->port = pond_http_port(fx->http);
	cr_assert_neq(fx->port, 0);
	struct {
		const char *method, *path;
		bool prefix;
		pond_http_fn fn;
	} routes[] = {
	        {"GET", "/hello", false, h_hello},
	        {"POST", "/echo", false, h_echo},
	        {"GET", "/later", false, h_later},
	        {"GET", "/slow", false, h_slow},
	        {"GET", "/stop", false, h_stop_then_later},
	        {"GET", "/whoami", false, h_whoami},
	        {"GET", "/query", false, h_query},
	        {"GET", "/items/", true, h_items},
	        {"DELETE", "/items/", true, h_items},
	};
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		cr_assert_eq(pond_http_route(fx->http, routes[i].method,
		                             routes[i].path, routes[i].prefix,
		                             routes[i].fn, fx),
		             0);
	}
}

static int
client_connect(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 10};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return (-1);
	}
	return (fd);
}

static void
client_send(int fd, const exchange *ex)
{
	size_t len = ex->len != 0 ? ex->len : strlen(ex->request);
	size_t step = ex->trickle ? 1 : len;

	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		if (send(fd, ex->request + off, n, MSG_NOSIGNAL) < 0) {
			return; /* the server may answer and close early */
		}
		if (ex->trickle) {
			usleep(2000);
		}
	}
}

/* client_complete tells whether buf holds a whole response by its
 * Content-Length (for a connection kept alive, where EOF never comes). */
static bool
client_complete(const char *buf, size_t len)
{
	const char *sep = strstr(buf, "\r\n\r\n");
	const char *cl = strcasestr(buf, "\r\nContent-Length:");

	if (sep == NULL || cl == NULL || cl > sep) {
		return (false);
	}
	return (len - (size_t)(sep + 4 - buf) >= strtoul(cl + 17, NULL, 10));
}

/* client_read reads the response (to EOF, or by Content-Length when
 * keep) and splits status, head and body. */
static void
client_read(int fd, exchange *ex)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	ssize_t n;

	buf[0] = '\0';
	while (!(ex->keep && client_complete(buf, len)) &&
	       (n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
		len += (size_t)n;
		buf[len] = '\0';
		if (cap - len - 1 == 0) {
			buf = realloc(buf, cap *= 2);
		}
	}
	sscanf(buf, "HTTP/1.%*d %d", &ex->status);
	char *sep = strstr(buf, "\r\n\r\n");
	if (sep != NULL) {
		ex->body = strdup(sep + 4);
		*sep = '\0';
	} else {
		ex->body = strdup("");
	}
	ex->head = buf;
}

/* client_exchange runs one exchange on fd (-1: connect first) and returns
 * the connection when ex->keep, else -1. */
static int
client_exchange(fixture *fx, exchange *ex, int fd)
{
	while (atomic_load(&fx->handled) < ex->after) {
		usleep(1000);
	}
	if (fd < 0 && (fd = client_connect(fx->port)) < 0) {
		ex->status = -1;
		return (-1);
	}
	int before = atomic_load(&fx->handled);
	client_send(fd, ex);
	if (ex->hang_up) {
		while (atomic_load(&fx->handled) == before) {
			usleep(1000);
		}
		close(fd);
		return (-1);
	}
	client_read(fd, ex);
	if (ex->keep) {
		return (fd);
	}
	close(fd);
	return (-1);
}

static void *
client_main(void *arg)
{
	client *c = arg;
	int fd = -1;
	for (int i = 0; i < MAX_ROUNDS && c->ex[i].request != NULL; i++) {
		fd = client_exchange(c->fx, &c->ex[i], fd);
	}
	atomic_fetch_add(&c->fx->ndone, 1);
	uv_async_send(&c->fx->wake);
	return (NULL);
}

/* fx_run runs the clients against the server until they are done and the
 * server has stopped, then checks the loop is left empty. */
static void
fx_run(fixture *fx, client *clients, int n)
{
	fx->nclients = n;
	for (int i = 0; i < n; i++) {
		clients[i].fx = fx;
		cr_assert_eq(pthread_create(&clients[i].thread, NULL,
		                            client_main, &clients[i]),
		             0);
	}
	cr_assert_eq(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
	for (int i = 0; i < n; i++) {
		pthread_join(clients[i].thread, NULL);
	}
	cr_assert(fx->stopped);
	cr_assert_eq(uv_loop_close(&fx->loop), 0);
}

static void
fx_finish(fixture *fx, client *clients, int n)
{
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < MAX_ROUNDS; j++) {
			free(clients[i].ex[j].head);
			free(clients[i].ex[j].body);
		}
	}
	free(fx->metrics_text);
	pond_metrics_destroy(fx->metrics);
}

/* ONE is a client list of one client with the given exchanges. */
#define ONE(...)                                                              \
	{                                                                     \
		{                                                             \
			.ex = { __VA_ARGS__ }                                 \
		}                                                             \
	}

static void
expect_error(const exchange *ex, int status, const char *code)
{
	json_error_t err;
	json_t *j = json_loads(ex->body, 0, &err);
	const char *got = NULL, *msg = NULL;

	cr_expect_eq(ex->status, status, "status %d, want %d", ex->status,
	             status);
	cr_assert_not_null(j, "body not JSON: %s", ex->body);
	cr_expect_eq(json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &got,
	                         "message", &msg),
	             0);
	cr_expect_str_eq(got, code);
	cr_expect_gt(strlen(msg), 0);
	cr_expect_neq(strstr(ex->head, "Content-Type: application/json"),
	              NULL);
	json_decref(j);
}

/* --- tests --------------------------------------------------------------- */

Test(http, get_route, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_eq(c[0].ex[0].status, 200);
	cr_expect_str_eq(c[0].ex[0].body, "hello");
	cr_expect_neq(strstr(c[0].ex[0].head, "Content-Type: text/plain"),
	              NULL);
	cr_expect_eq(atomic_load(&fx.handled), 1);
	fx_finish(&fx, c, 1);
}

Test(http, post_body_echoed, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "POST /echo HTTP/1.1\r\nHost: t\r\n"
	                             "Content-Length: 11\r\n"
	                             "Connection: close\r\n\r\nhello world"},
	                 /* Exactly max_body in chunks is still accepted. */
	                 {.request = NULL});
	static char big[MAX_BODY + 256];
	int n = snprintf(big, sizeof(big),
	                 "POST /echo HTTP/1.1\r\nHost: "
	                 "t\r\nTransfer-Encoding: chunked\r\n"
	                 "Connection: close\r\n\r\n%x\r\n",
	                 MAX_BODY);
	memset(big + n, 'b', MAX_BODY);
	strcpy(big + n + MAX_BODY, "\r\n0\r\n\r\n");
	c[0].ex[1].request = big;
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_eq(c[0].ex[0].status, 200);
	cr_expect_str_eq(c[0].ex[0].body, "hello world");
	cr_expect_eq(c[0].ex[1].status, 200);
	cr_expect_eq(strlen(c[0].ex[1].body), MAX_BODY);
	cr_expect_eq(atomic_load(&fx.handled), 2);
	fx_finish(&fx, c, 1);
}

Test(http, async_reply_from_timer, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /later HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_eq(c[0].ex[0].status, 202);
	cr_expect_str_eq(c[0].ex[0].body, "later");
	cr_expect_eq(fx.replied_late, 1);
	fx_finish(&fx, c, 1);
}

Test(http, unknown_path_404_and_other_method_405, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /nope HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"},
	                 {.request = "DELETE /hello HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"},
	                 /* A body on an unknown path is never read. */
	                 {.request = "POST /nope HTTP/1.1\r\nHost: "
	                             "t\r\nContent-Length: 3\r\n"
	                             "Connection: close\r\n\r\nabc"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	expect_error(&c[0].ex[0], 404, "not_found");
	expect_error(&c[0].ex[1], 405, "method_not_allowed");
	cr_expect_neq(strstr(c[0].ex[1].head, "Allow: GET"), NULL);
	expect_error(&c[0].ex[2], 404, "not_found");
	cr_expect_eq(atomic_load(&fx.handled), 0);
	fx_finish(&fx, c, 1);
}

Test(http, prefix_routes_and_head, .timeout = 20)
{
	fixture fx;
	client c[] = ONE(
	        {.request = "GET /items/42/x HTTP/1.1\r\nHost: t\r\n"
	                    "Connection: close\r\n\r\n"},
	        {.request = "DELETE /items/7 HTTP/1.1\r\nHost: t\r\n"
	                    "Connection: close\r\n\r\n"},
	        {.request = "POST /items/7 HTTP/1.1\r\nHost: t\r\n"
	                    "Content-Length: 0\r\nConnection: close\r\n\r\n"},
	        /* HEAD falls back to the GET route, without a body. */
	        {.request = "HEAD /hello HTTP/1.1\r\nHost: t\r\n"
	                    "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_eq(c[0].ex[0].status, 200);
	cr_expect_str_eq(c[0].ex[0].body, "/items/42/x");
	cr_expect_eq(c[0].ex[1].status, 200);
	cr_expect_str_eq(c[0].ex[1].body, "/items/7");
	expect_error(&c[0].ex[2], 405, "method_not_allowed");
	cr_expect_neq(strstr(c[0].ex[2].head, "Allow: GET, DELETE"), NULL);
	cr_expect_eq(c[0].ex[3].status, 200);
	cr_expect_str_eq(c[0].ex[3].body, "");
	fx_finish(&fx, c, 1);
}

Test(http, body_over_max_is_413, .timeout = 20)
{
	fixture fx;
	static char chunked[8 * MAX_BODY];
	char *p = chunked;
	client c[] = ONE(
	        /* Refused from the Content-Length alone: the server answers
	         * before a byte of the body is sent. */
	        {.request =
	                 "POST /echo HTTP/1.1\r\nHost: t\r\n"
	                 "Content-Length: 1025\r\nConnection: close\r\n\r\n"},
	        {.request =
	                 "POST /echo HTTP/1.1\r\nHost: t\r\n"
	                 "Content-Length: 99999999999\r\n"
	                 "Expect: 100-continue\r\nConnection: close\r\n\r\n"},
	        {.request = chunked});

	/* Chunked, 4 x 300 = 1200 bytes: over the cap only in the 4th. */
	p += sprintf(p,
	             "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
	             "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 4; i++) {
		p += sprintf(p, "%x\r\n", 300);
		memset(p, 'a', 300);
		p += 300;
		p += sprintf(p, "\r\n");
	}
	sprintf(p, "0\r\n\r\n");
	fx_start(&fx);
	fx_run(&fx, c, 1);
	expect_error(&c[0].ex[0], 413, "too_large");
	expect_error(&c[0].ex[1], 413, "too_large");
	cr_expect_eq(strstr(c[0].ex[1].head, "100 Continue"), NULL);
	expect_error(&c[0].ex[2], 413, "too_large");
	cr_expect_eq(atomic_load(&fx.handled), 0);
	fx_finish(&fx, c, 1);
}

Test(http, bearer_token_parsing, .timeout = 20)
{
	fixture fx;
	client c[] = ONE(
	        {.request =
	                 "GET /whoami HTTP/1.1\r\nHost: t\r\nAuthorization: "
	                 "Bearer abc.DEF-123\r\nConnection: close\r\n\r\n"},
	        {.request =
	                 "GET /whoami HTTP/1.1\r\nHost: t\r\nauthorization: "
	                 "bearer   tok  \r\nConnection: close\r\n\r\n"},
	        {.request =
	                 "GET /whoami HTTP/1.1\r\nHost: t\r\nAuthorization: "
	                 "Basic dTpw\r\nConnection: close\r\n\r\n"},
	        {.request =
	                 "GET /whoami HTTP/1.1\r\nHost: t\r\nAuthorization: "
	                 "Bearer\r\nConnection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_str_eq(c[0].ex[0].body, "abc.DEF-123");
	cr_expect_str_eq(c[0].ex[1].body, "tok");
	cr_expect_str_eq(c[0].ex[2].body, "(none)");
	cr_expect_str_eq(c[0].ex[3].body, "(none)");
	fx_finish(&fx, c, 1);
}

Test(http, query_arguments_are_decoded, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /query?name=a%20b+c&x=%E4%BD%A0"
	                             "&flag HTTP/1.1\r\nHost: t\r\n"
	                             "X-Custom:  v1 \r\n"
	                             "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_assert_eq(c[0].ex[0].status, 200);
	json_t *j = json_loads(c[0].ex[0].body, 0, NULL);
	cr_assert_not_null(j, "body: %s", c[0].ex[0].body);
	cr_expect_str_eq(json_string_value(json_object_get(j, "name")),
	                 "a b c");
	cr_expect_str_eq(json_string_value(json_object_get(j, "x")),
	                 "\xE4\xBD\xA0");
	cr_expect_str_eq(json_string_value(json_object_get(j, "flag")), "");
	cr_expect(json_is_null(json_object_get(j, "missing")));
	cr_expect_str_eq(json_string_value(json_object_get(j, "path")),
	                 "/query");
	cr_expect_str_eq(json_string_value(json_object_get(j, "method")),
	                 "GET");
	/* MHD skips the blanks before a value, not those after it. */
	cr_expect_str_eq(json_string_value(json_object_get(j, "header")),
	                 "v1 ");
	json_decref(j);
	fx_finish(&fx, c, 1);
}

Test(http, client_gone_before_async_reply, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n",
	                  .hang_up = true});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	/* The reply went to a closed socket; the req was freed by then
	 * (ASan and valgrind would see otherwise) and the stop waited. */
	cr_expect_eq(atomic_load(&fx.handled), 1);
	cr_expect_eq(fx.replied_late, 1);
	cr_expect(fx.stopped_after_reply);
	fx_finish(&fx, c, 1);
}

Test(http, stop_with_request_in_flight, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /stop HTTP/1.1\r\nHost: t\r\n\r\n"},
	                 /* After the stop nobody listens. */
	                 {.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	cr_expect_eq(c[0].ex[0].status, 202);
	cr_expect_str_eq(c[0].ex[0].body, "later");
	/* The client kept the connection alive; a stopping server closes
	 * it after the reply, which is how client_read saw the end. */
	cr_expect_neq(strstr(c[0].ex[0].head, "Connection: close"), NULL);
	cr_expect(fx.stopped_after_reply);
	cr_expect_leq(c[0].ex[1].status, 0);
	cr_expect_eq(atomic_load(&fx.handled), 1);
	fx_finish(&fx, c, 1);
}

Test(http, request_after_stop_on_kept_connection_is_503, .timeout = 20)
{
	fixture fx;
	client c[] = {
	        /* B: a kept-alive connection, used again once A stopped the
	         * server. */
	        {.ex = {{.request = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
	                 .keep = true},
	                {.request = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
	                 .after = 2}}},
	        /* A: its handler stops the server and answers 100 ms later. */
	        {.ex = {{.request = "GET /stop HTTP/1.1\r\nHost: t\r\n\r\n",
	                 .after = 1}}},
	};
	fx_start(&fx);
	fx_run(&fx, c, 2);
	cr_expect_eq(c[0].ex[0].status, 200);
	cr_expect_eq(strstr(c[0].ex[0].head, "Connection: close"), NULL);
	expect_error(&c[0].ex[1], 503, "unavailable");
	cr_expect_neq(strstr(c[0].ex[1].head, "Connection: close"), NULL);
	cr_expect_eq(c[1].ex[0].status, 202);
	cr_expect_eq(atomic_load(&fx.handled), 2);
	fx_finish(&fx, c, 2);
}

Test(http, bad_input_does_not_hurt, .timeout = 20)
{
	fixture fx;
	static char huge[200 * 1024];
	int n = sprintf(huge, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(huge + n, 'x', sizeof(huge) - (size_t)n - 64);
	strcpy(huge + sizeof(huge) - 64, "\r\nConnection: close\r\n\r\n");
	client c[] = {
	        {.ex = {{.request = "GARBAGE\r\n\r\n"},
	                {.request = "GET /hello HTTP/9.9\r\nHost: t\r\n\r\n"},
	                {.request = huge},
	                {.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                            "Connection: close\r\n\r\n",
	                 .trickle = true}}},
	        {.ex = {{.request =
	                         "POST /echo HTTP/1.1\r\nHost: t\r\n"
	                         "Content-Length: 5\r\nConnection: close\r\n"
	                         "\r\nabcde"},
	                {.request = "POST /echo HTTP/1.1\r\nHost: t\r\n"
	                            "Transfer-Encoding: chunked\r\n"
	                            "Connection: close\r\n\r\nzz\r\n"},
	                {.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                            "Connection: close\r\n\r\n"}}},
	};
	fx_start(&fx);
	fx_run(&fx, c, 2);
	/* A request line without a version is not HTTP/1.x: MHD just
	 * closes. The rest get an error status. */
	cr_expect_eq(c[0].ex[0].status, 0);
	cr_expect_geq(c[0].ex[1].status, 400);
	cr_expect_geq(c[0].ex[2].status, 400);
	cr_expect_eq(c[0].ex[3].status, 200, "trickled request answered");
	cr_expect_eq(c[1].ex[0].status, 200);
	cr_expect_geq(c[1].ex[1].status, 400);
	cr_expect_eq(c[1].ex[2].status, 200);
	fx_finish(&fx, c, 2);
}

Test(http, requests_are_counted_in_metrics, .timeout = 20)
{
	fixture fx;
	client c[] = ONE({.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"},
	                 {.request = "GET /hello HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"},
	                 {.request = "GET /nope HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"},
	                 {.request = "GET /items/1 HTTP/1.1\r\nHost: t\r\n"
	                             "Connection: close\r\n\r\n"});
	fx_start(&fx);
	fx_run(&fx, c, 1);
	const char *m = fx.metrics_text;
	cr_assert_not_null(m);
	cr_expect_neq(strstr(m, "pond_http_requests_total{route=\"GET "
	                        "/hello\",code=\"200\"} 2\n"),
	              NULL, "%s", m);
	cr_expect_neq(strstr(m, "pond_http_requests_total{route=\"GET "
	                        "/items/*\",code=\"200\"} 1\n"),
	              NULL, "%s", m);
	cr_expect_neq(strstr(m, "pond_http_requests_total{route=\"unmatched\","
	                        "code=\"404\"} 1\n"),
	              NULL, "%s", m);
	cr_expect_neq(
	        strstr(m, "pond_http_request_duration_seconds_count 4\n"),
	        NULL, "%s", m);
	fx_finish(&fx, c, 1);
}

Test(http, route_and_start_errors)
{
	uv_loop_t loop;
	pond_http *h = NULL, *h2 = NULL;

	cr_assert_eq(uv_loop_init(&loop), 0);
	cr_assert_eq(pond_http_start(&h, &loop, "127.0.0.1", 0, 10, NULL), 0);
	cr_expect_eq(pond_http_route(h, "GET", "/a", false, h_hello, NULL), 0);
	cr_expect_eq(pond_http_route(h, "GET", "/a", false, h_hello, NULL),
	             POND_EEXIST);
	cr_expect_eq(pond_http_route(h, "GET", "/a", true, h_hello, NULL), 0);
	cr_expect_eq(pond_http_route(h, "GET", "a", false, h_hello, NULL),
	             POND_EINVAL);
	cr_expect_eq(pond_http_route(h, "", "/b", false, h_hello, NULL),
	             POND_EINVAL);
	cr_expect_eq(pond_http_route(h, "GET", "/b\"", false, h_hello, NULL),
	             POND_EINVAL);
	cr_expect_eq(pond_http_route(h, "G T", "/b", false, h_hello, NULL),
	             POND_EINVAL);
	cr_expect_eq(pond_http_route(h, "GET", "/b", false, NULL, NULL),
	             POND_EINVAL);
	cr_expect_eq(
	        pond_http_start(&h2, &loop, "not-an-address", 0, 10, NULL),
	        POND_EINVAL);
	/* The port is taken by h. */
	cr_expect_neq(pond_http_start(&h2, &loop, "127.0.0.1",
	                              pond_http_port(h), 10, NULL),
	              0);
	pond_http_stop(h, NULL, NULL);
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	cr_assert_eq(uv_loop_close(&loop), 0);
}
