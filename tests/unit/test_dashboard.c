/*
 * test_dashboard.c - the embedded dashboard files over real HTTP.
 *
 * The server runs on a libuv loop in a thread of its own; the test thread
 * is the client (tests/lib's blocking HTTP client). Each answer is compared
 * with the embedded file it should carry, byte for byte, and with the
 * copies mk/dashboard.sh left in the build tree.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "dashboard.h"
#include "harness.h"
#include "http.h"

typedef struct server {
	uv_loop_t loop;
	uv_async_t stop;
	pond_http *http;
	pthread_t thread;
	bool stopped;
} server;

static void
on_stopped(void *arg)
{
	server *s = arg;
	s->stopped = true;
}

static void
on_stop(uv_async_t *async)
{
	server *s = async->data;
	pond_http_stop(s->http, on_stopped, s);
	uv_close((uv_handle_t *)&s->stop, NULL);
}

static void *
run_loop(void *arg)
{
	server *s = arg;
	uv_run(&s->loop, UV_RUN_DEFAULT);
	return (NULL);
}

static uint16_t
server_start(server *s)
{
	cr_assert_eq(uv_loop_init(&s->loop), 0);
	cr_assert_eq(uv_async_init(&s->loop, &s->stop, on_stop), 0);
	s->stop.data = s;
	cr_assert_eq(pond_http_start(&s->http, &s->loop, "127.0.0.1", 0, 1024,
	                             NULL),
	             0);
	cr_assert_eq(reporting_dashboard_register(s->http), 0);
	cr_assert_eq(pthread_create(&s->thread, NULL, run_loop, s), 0);
	return (pond_http_port(s->http));
}

static void
server_stop(server *s)
{
	uv_async_send(&s->stop);
	pthread_join(s->thread, NULL);
	cr_expect(s->stopped);
	cr_expect_eq(uv_loop_close(&s->loop), 0);
}

static const reporting_dashboard_asset *
asset(const char *path)
{
	for (size_t i = 0; i < reporting_dashboard_nassets; i++) {
		if (strcmp(reporting_dashboard_assets[i].path, path) == 0) {
			return (&reporting_dashboard_assets[i]);
		}
	}
	cr_assert_fail("%s is not embedded", path);
	return (NULL);
}

/* expect_header checks response header name is value. */
static void
expect_header(const pond_test_http_resp *r, const char *name,
              const char *value)
{
	char *v = pond_test_http_header(r, name);
	cr_expect(v != NULL && strcmp(v, value) == 0, "%s: %s, not %s", name,
	          v != NULL ? v : "(none)", value);
	free(v);
}

Test(dashboard, every_file_embedded_with_its_type)
{
	/* The page, its script, style, the shared formatters and ECharts. */
	cr_expect_str_eq(asset("/")->content_type, "text/html; charset=utf-8");
	cr_expect_str_eq(asset("/assets/app.js")->content_type,
	                 "text/javascript; charset=utf-8");
	cr_expect_str_eq(asset("/assets/app.css")->content_type,
	                 "text/css; charset=utf-8");
	cr_expect_str_eq(asset("/assets/format.js")->content_type,
	                 "text/javascript; charset=utf-8");
	/* ECharts 6's minified bundle is over half a megabyte; gzip makes
	 * it well under half of that. */
	const reporting_dashboard_asset *e = asset("/assets/echarts.min.js");
	cr_expect_gt(e->len, 500000);
	cr_expect_lt(e->gzip_len * 2, e->len);
	cr_expect(strstr((const char *)e->body, "echarts") != NULL);
	/* Embedded bytes end with a NUL the length does not count. */
	cr_expect_eq(e->body[e->len], '\0');
	cr_expect_eq(e->gzip[0], 0x1f);
	cr_expect_eq(e->gzip[1], 0x8b);
}

Test(dashboard, page_served_with_etag_and_policy, .timeout = 20)
{
	server s = {0};
	uint16_t port = server_start(&s);
	const reporting_dashboard_asset *page = asset("/");
	pond_test_http_resp r;

	cr_assert_eq(pond_test_http("GET", port, "/", NULL, NULL, 0, &r), 0);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.len, page->len);
	cr_expect(memcmp(r.body, page->body, page->len) == 0);
	expect_header(&r, "Content-Type", "text/html; charset=utf-8");
	expect_header(&r, "ETag", page->etag);
	expect_header(&r, "Cache-Control", "no-cache");
	/* The page confines itself to its origin. */
	cr_expect(strstr(r.body, "Content-Security-Policy") != NULL);
	cr_expect(strstr(r.body, "default-src 'self'") != NULL);
	cr_expect_null(pond_test_http_header(&r, "Content-Encoding"));
	pond_test_http_resp_free(&r);

	/* The same ETag back: 304 and no body. */
	char inm[128];
	snprintf(inm, sizeof(inm), "If-None-Match: %s", page->etag);
	const char *hdrs[] = {inm, NULL};
	cr_assert_eq(pond_test_http("GET", port, "/", hdrs, NULL, 0, &r), 0);
	cr_expect_eq(r.status, 304);
	cr_expect_eq(r.len, 0);
	expect_header(&r, "ETag", page->etag);
	pond_test_http_resp_free(&r);

	/* Another ETag (the file changed since): the whole page again. */
	const char *stale[] = {"If-None-Match: \"0000000000000000\"", NULL};
	cr_assert_eq(pond_test_http("GET", port, "/", stale, NULL, 0, &r), 0);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.len, page->len);
	pond_test_http_resp_free(&r);
	server_stop(&s);
}

Test(dashboard, gzip_only_when_accepted, .timeout = 20)
{
	server s = {0};
	uint16_t port = server_start(&s);
	const reporting_dashboard_asset *e = asset("/assets/echarts.min.js");
	pond_test_http_resp r;

	const char *gz[] = {"Accept-Encoding: br, gzip", NULL};
	cr_assert_eq(pond_test_http("GET", port, "/assets/echarts.min.js", gz,
	                            NULL, 0, &r),
	             0);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.len, e->gzip_len);
	cr_expect(memcmp(r.body, e->gzip, e->gzip_len) == 0);
	expect_header(&r, "Content-Encoding", "gzip");
	expect_header(&r, "ETag", e->gzip_etag);
	expect_header(&r, "Vary", "Accept-Encoding");

	/* The gzip copy must unpack to the file itself. */
	char path[] = "/tmp/pond-dash-gz.XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, r.body, r.len), (ssize_t)r.len);
	close(fd);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "gunzip -c < %s", path);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	unsigned char *plain = malloc(e->len + 1);
	size_t got = fread(plain, 1, e->len + 1, p);
	pclose(p);
	unlink(path);
	cr_expect_eq(got, e->len);
	cr_expect(memcmp(plain, e->body, e->len) == 0);
	free(plain);
	pond_test_http_resp_free(&r);

	const char *no[] = {"Accept-Encoding: gzip;q=0, identity", NULL};
	cr_assert_eq(pond_test_http("GET", port, "/assets/echarts.min.js", no,
	                            NULL, 0, &r),
	             0);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.len, e->len);
	cr_expect(memcmp(r.body, e->body, e->len) == 0);
	cr_expect_null(pond_test_http_header(&r, "Content-Encoding"));
	expect_header(&r, "ETag", e->etag);
	expect_header(&r, "Content-Type", "text/javascript; charset=utf-8");
	pond_test_http_resp_free(&r);

	cr_assert_eq(pond_test_http("GET", port, "/assets/nope.js", NULL, NULL,
	                            0, &r),
	             0);
	cr_expect_eq(r.status, 404);
	pond_test_http_resp_free(&r);
	cr_assert_eq(pond_test_http("POST", port, "/", NULL, "", 0, &r), 0);
	cr_expect_eq(r.status, 405);
	pond_test_http_resp_free(&r);
	server_stop(&s);
}

Test(dashboard, accept_encoding_parsed)
{
	cr_expect(reporting_dashboard_accepts_gzip("gzip"));
	cr_expect(reporting_dashboard_accepts_gzip("deflate, gzip"));
	cr_expect(reporting_dashboard_accepts_gzip("GZIP;q=0.5"));
	cr_expect(reporting_dashboard_accepts_gzip(" br ,  * "));
	cr_expect_not(reporting_dashboard_accepts_gzip(NULL));
	cr_expect_not(reporting_dashboard_accepts_gzip(""));
	cr_expect_not(reporting_dashboard_accepts_gzip("br, deflate"));
	cr_expect_not(reporting_dashboard_accepts_gzip("gzip;q=0"));
	cr_expect_not(reporting_dashboard_accepts_gzip("x-gzip"));
	cr_expect_not(reporting_dashboard_accepts_gzip("gzipper"));
	cr_expect_not(
	        reporting_dashboard_accepts_gzip("br;q=0.9, gzip;q=0.0"));
	/* A q for another item does not leak into gzip's. */
	cr_expect(reporting_dashboard_accepts_gzip("gzip, br;q=0"));
	/* gzip named decides over "*", in either order. */
	cr_expect_not(reporting_dashboard_accepts_gzip("gzip;q=0, *"));
	cr_expect_not(reporting_dashboard_accepts_gzip("*, gzip;q=0"));
	cr_expect_not(reporting_dashboard_accepts_gzip("*;q=0"));
	cr_expect(reporting_dashboard_accepts_gzip("*;q=0, gzip"));
}
