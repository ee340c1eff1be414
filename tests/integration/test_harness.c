/*
 * test_harness.c - the test harness tests itself.
 *
 * Every other integration test stands on tests/lib/harness.c, so its
 * promises are checked here first: databases are isolated, ports differ,
 * processes get their environment, logs and exit statuses and die with the
 * test, the HTTP client reads every body framing a server may choose, and
 * the clock file moves the clock of common/clock.c. The HTTP tests talk to
 * a canned server on a thread of the test, so they need no service.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "harness.h"

/* --- databases --- */

Test(harness, databases_are_isolated)
{
	char a[POND_TEST_DSN_LEN], b[POND_TEST_DSN_LEN];
	char *name_a, *name_b;

	pond_test_db_create(a, sizeof(a));
	pond_test_db_create(b, sizeof(b));
	name_a = pond_test_sql_text(a, "SELECT current_database()");
	name_b = pond_test_sql_text(b, "SELECT current_database()");
	cr_assert_str_neq(name_a, name_b);

	pond_test_sql_exec(a, "CREATE TABLE t (x int); "
	                      "INSERT INTO t VALUES (1), (2), (3)");
	cr_assert_eq(pond_test_sql_int(a, "SELECT sum(x) FROM t"), 6);
	cr_assert_eq(pond_test_sql_int(b, "SELECT to_regclass('t') IS NULL"),
	             1, "a table of one test's database is seen in another");
	free(name_a);
	free(name_b);
}

Test(harness, dropped_database_is_gone)
{
	char keep[POND_TEST_DSN_LEN], gone[POND_TEST_DSN_LEN], sql[256];
	char *name;

	pond_test_db_create(keep, sizeof(keep));
	pond_test_db_create(gone, sizeof(gone));
	name = pond_test_sql_text(gone, "SELECT current_database()");
	/* A client still connected does not stop the drop. */
	PGconn *conn = pond_test_pg_connect(gone);
	pond_test_db_drop(gone);
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM pg_database WHERE datname = '%s'",
	         name);
	cr_assert_eq(pond_test_sql_int(keep, sql), 0);
	PQfinish(conn);
	free(name);
}

Test(harness, migrated_database_has_the_schema)
{
	char dsn[POND_TEST_DSN_LEN];

	pond_test_db_create_migrated(dsn, sizeof(dsn), 4);
	cr_assert_gt(pond_test_sql_int(dsn, "SELECT count(*) FROM "
	                                    "schema_migrations"),
	             0);
}

Test(harness, migrated_databases_are_separate_copies)
{
	char a[POND_TEST_DSN_LEN], b[POND_TEST_DSN_LEN];
	const char *heads = "SELECT count(*) FROM stream_heads";

	/* Both come from the same template: a change to one must not show
	 * in the other. */
	pond_test_db_create_migrated(a, sizeof(a), 2);
	pond_test_db_create_migrated(b, sizeof(b), 2);
	cr_assert_gt(pond_test_sql_int(a, heads), 0);
	cr_assert_eq(pond_test_sql_int(a, heads), pond_test_sql_int(b, heads));
	pond_test_sql_exec(a, "DELETE FROM stream_heads");
	cr_assert_eq(pond_test_sql_int(a, heads), 0);
	cr_assert_gt(pond_test_sql_int(b, heads), 0);
}

Test(harness, sql_text_returns_null_as_null)
{
	char dsn[POND_TEST_DSN_LEN];

	pond_test_db_create(dsn, sizeof(dsn));
	cr_assert_null(pond_test_sql_text(dsn, "SELECT NULL::text"));
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT 1 = 1"), 1);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT -9000000000"),
	             -9000000000LL);
}

/* --- ports --- */

Test(harness, free_ports_differ_and_bind)
{
	enum { N = 32 };
	uint16_t ports[N];

	for (int i = 0; i < N; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr =
		                                 htonl(INADDR_LOOPBACK)};
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		ports[i] = pond_test_free_port();
		cr_assert_gt(ports[i], 0);
		for (int j = 0; j < i; j++) {
			cr_assert_neq(ports[i], ports[j], "port %u twice",
			              ports[i]);
		}
		sa.sin_port = htons(ports[i]);
		cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
		             "port %u: %s", ports[i], strerror(errno));
		close(fd);
	}
}

/* --- processes --- */

/* read_log returns the log of log_name (the caller frees it). */
static char *
read_log(const char *log_name)
{
	char path[512], *text = NULL;
	size_t cap = 0;
	FILE *f;
	ssize_t n;

	pond_test_log_path(log_name, path, sizeof(path));
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	cr_assert_geq(n, 0);
	return (text);
}

/* remove_log starts a test's log afresh (logs append across runs). */
static void
remove_log(const char *log_name)
{
	char path[512];

	pond_test_log_path(log_name, path, sizeof(path));
	unlink(path);
}

Test(harness, spawn_passes_environment_and_logs_output)
{
	const char *argv[] = {
	        "/bin/sh", "-c",
	        "echo \"x=$HARNESS_X\"; echo \"home=${HOME-unset}\"; "
	        "echo to-stderr >&2",
	        NULL};
	const char *env[] = {"HARNESS_X=42", "HOME", NULL};
	pond_test_proc *p;
	int status = -1;
	char *log;

	remove_log("harness-env");
	setenv("HOME", "/somewhere", 1);
	p = pond_test_spawn_argv(argv, env, "harness-env");
	cr_assert_eq(pond_test_wait_exit(p, 10000, &status), 0);
	cr_assert_eq(status, 0);
	cr_assert_eq(pond_test_stop(p), 0);
	log = read_log("harness-env");
	cr_assert_not_null(strstr(log, "x=42\n"), "%s", log);
	cr_assert_not_null(strstr(log, "home=unset\n"), "%s", log);
	cr_assert_not_null(strstr(log, "to-stderr\n"), "%s", log);
	free(log);
}

Test(harness, spawn_finds_bare_names_in_bin_dir)
{
	setenv("POND_BIN_DIR", "/bin", 1);
	pond_test_proc *p = pond_test_spawn("true", NULL, "harness-bindir");
	int status = -1;

	cr_assert_eq(pond_test_wait_exit(p, 10000, &status), 0);
	cr_assert_eq(status, 0);
	cr_assert_eq(pond_test_stop(p), 0);
}

Test(harness, exit_statuses_are_shell_style)
{
	const char *exit3[] = {"/bin/sh", "-c", "exit 3", NULL};
	const char *killed[] = {"/bin/sh", "-c", "kill -KILL $$", NULL};
	pond_test_proc *p;
	int status = -1;

	p = pond_test_spawn_argv(exit3, NULL, "harness-status");
	cr_assert_eq(pond_test_wait_exit(p, 10000, &status), 0);
	cr_assert_eq(status, 3);
	cr_assert_eq(pond_test_stop(p), 3, "stop after exit keeps status");

	p = pond_test_spawn_argv(killed, NULL, "harness-status");
	cr_assert_eq(pond_test_wait_exit(p, 10000, &status), 0);
	cr_assert_eq(status, 128 + SIGKILL);
	cr_assert_eq(pond_test_stop(p), 128 + SIGKILL);
}

Test(harness, wait_exit_times_out_on_a_running_process)
{
	const char *argv[] = {"/bin/sleep", "30", NULL};
	pond_test_proc *p = pond_test_spawn_argv(argv, NULL, "harness-sleep");
	int status = -1;

	cr_assert_eq(pond_test_wait_exit(p, 50, &status), POND_ETIMEDOUT);
	cr_assert_eq(status, -1);
	cr_assert_eq(pond_test_stop(p), 128 + SIGTERM);
}

Test(harness, stop_is_clean_when_sigterm_is_handled)
{
	/* The child resets the signals the test process may ignore, so the
	 * shell's trap sees SIGTERM. */
	const char *argv[] = {"/bin/sh", "-c",
	                      "trap 'echo bye; exit 0' TERM; echo ready; "
	                      "while :; do sleep 0.05; done",
	                      NULL};
	pond_test_proc *p;
	char *log;

	remove_log("harness-clean");
	p = pond_test_spawn_argv(argv, NULL, "harness-clean");
	cr_assert(pond_test_log_wait("harness-clean", "ready", 10000));
	cr_assert_eq(pond_test_stop(p), 0);
	log = read_log("harness-clean");
	cr_assert_not_null(strstr(log, "bye\n"), "%s", log);
	free(log);
}

Test(harness, stop_kills_what_ignores_sigterm)
{
	const char *argv[] = {"/bin/sh", "-c",
	                      "trap '' TERM; echo ready; "
	                      "while :; do sleep 0.05; done",
	                      NULL};
	pond_test_proc *p;

	remove_log("harness-stubborn");
	p = pond_test_spawn_argv(argv, NULL, "harness-stubborn");
	cr_assert(pond_test_log_wait("harness-stubborn", "ready", 10000));
	cr_assert_eq(pond_test_stop_timeout(p, 200), 128 + SIGKILL);
}

/* proc_gone reports whether pid has ended (gone, or a zombie nobody has
 * reaped yet). */
static bool
proc_gone(pid_t pid)
{
	char path[64], buf[256], *state;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return (true);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The state follows the parenthesised command name. */
	state = strrchr(buf, ')');
	return (state == NULL || state[2] == 'Z' || state[2] == 'X');
}

Test(harness, children_die_with_the_test_process)
{
	int fds[2];
	pid_t mid, grandchild = 0;

	cr_assert_eq(pipe(fds), 0);
	mid = fork();
	cr_assert_geq(mid, 0);
	if (mid == 0) {
		/* Stands in for a test process: spawns, then dies without
		 * stopping what it spawned. */
		const char *argv[] = {"/bin/sleep", "30", NULL};
		pond_test_proc *p =
		        pond_test_spawn_argv(argv, NULL, "harness-orphan");
		pid_t pid = pond_test_proc_pid(p);

		if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid)) {
			_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &grandchild, sizeof(grandchild)),
	             sizeof(grandchild));
	close(fds[0]);
	waitpid(mid, NULL, 0);
	for (int i = 0; i < 500 && !proc_gone(grandchild); i++) {
		usleep(10 * 1000);
	}
	cr_assert(proc_gone(grandchild),
	          "pid %ld outlived the process that spawned it",
	          (long)grandchild);
}

Test(harness, run_captures_stdout_and_logs_stderr)
{
	const char *argv[] = {"/bin/sh", "-c",
	                      "echo out; echo err >&2; exit 4", NULL};
	char *out = NULL, *log;

	remove_log("harness-run");
	cr_assert_eq(pond_test_run(argv, NULL, "harness-run", &out), 4);
	cr_assert_str_eq(out, "out\n");
	log = read_log("harness-run");
	cr_assert_not_null(strstr(log, "err\n"), "%s", log);
	cr_assert_null(strstr(log, "out\n"), "%s", log);
	free(out);
	free(log);
}

/* --- HTTP client --- */

/* canned_server answers each connection it accepts with the next of its
 * canned responses, written in pieces to exercise the client's reads, and
 * keeps the last request it read. */
typedef struct canned_server {
	int fd;
	uint16_t port;
	const char *const *responses; /* NULL-terminated */
	int served;
	char request[8192];
	size_t request_len;
	pthread_t thread;
} canned_server;

/* read_request reads one request: headers, then Content-Length bytes. */
static size_t
read_request(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		const char *end, *cl;

		if (n <= 0) {
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL) {
			size_t want = 0;

			cl = strcasestr(buf, "Content-Length:");
			if (cl != NULL && cl < end) {
				want = strtoul(cl + 15, NULL, 10);
			}
			if (len >= (size_t)(end + 4 - buf) + want) {
				break;
			}
		}
	}
	buf[len] = '\0';
	return (len);
}

static void *
canned_main(void *arg)
{
	canned_server *s = arg;

	for (const char *const *r = s->responses; *r != NULL; r++) {
		int c = accept(s->fd, NULL, NULL);
		size_t len = strlen(*r), third = len / 3;

		if (c < 0) {
			break;
		}
		s->request_len =
		        read_request(c, s->request, sizeof(s->request));
		/* Three writes with pauses: the client must not take the
		 * first bytes for the whole answer. */
		for (int i = 0; i < 3; i++) {
			size_t off = third * (size_t)i;
			size_t n = i < 2 ? third : len - off;

			if (write(c, *r + off, n) < 0) {
				break;
			}
			usleep(5 * 1000);
		}
		close(c);
		s->served++;
	}
	return (NULL);
}

static void
canned_start(canned_server *s, const char *const *responses)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t salen = sizeof(sa);

	memset(s, 0, sizeof(*s));
	s->responses = responses;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(s->fd, 0);
	cr_assert_eq(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(s->fd, 8), 0);
	cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&sa, &salen), 0);
	s->port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&s->thread, NULL, canned_main, s), 0);
}

static void
canned_join(canned_server *s)
{
	pthread_join(s->thread, NULL);
	close(s->fd);
}

Test(harness, http_reads_content_length_body_and_sends_request)
{
	const char *responses[] = {"HTTP/1.1 201 Created\r\n"
	                           "Content-Type: application/json\r\n"
	                           "Content-Length: 11\r\n\r\n"
	                           "{\"ok\":true}",
	                           NULL};
	const char *headers[] = {"X-Harness: yes", NULL};
	canned_server s;
	pond_test_http_resp resp;
	char *ctype;

	canned_start(&s, responses);
	cr_assert_eq(pond_test_http("POST", s.port, "/v1/things", headers,
	                            "{\"a\":1}", 0, &resp),
	             0);
	canned_join(&s);
	cr_assert_eq(resp.status, 201);
	cr_assert_eq(resp.len, 11);
	cr_assert_str_eq(resp.body, "{\"ok\":true}");
	ctype = pond_test_http_header(&resp, "content-type");
	cr_assert_str_eq(ctype, "application/json");
	cr_assert_null(pond_test_http_header(&resp, "X-Missing"));

	cr_assert(strncmp(s.request, "POST /v1/things HTTP/1.1\r\n", 26) == 0,
	          "%s", s.request);
	cr_assert_not_null(strstr(s.request, "\r\nConnection: close\r\n"));
	cr_assert_not_null(strstr(s.request, "\r\nX-Harness: yes\r\n"));
	cr_assert_not_null(strstr(s.request, "\r\nContent-Length: 7\r\n"));
	cr_assert_not_null(strstr(s.request, "\r\n\r\n{\"a\":1}"));
	free(ctype);
	pond_test_http_resp_free(&resp);
}

Test(harness, http_decodes_chunked_body)
{
	const char *responses[] = {"HTTP/1.1 200 OK\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n"
	                           "5;name=value\r\nhello\r\n"
	                           "7\r\n, world\r\n"
	                           "0\r\nX-Trailer: t\r\n\r\n",
	                           NULL};
	canned_server s;
	pond_test_http_resp resp;

	canned_start(&s, responses);
	cr_assert_eq(pond_test_http("GET", s.port, "/", NULL, NULL, 0, &resp),
	             0);
	canned_join(&s);
	cr_assert_eq(resp.status, 200);
	cr_assert_eq(resp.len, 12);
	cr_assert_str_eq(resp.body, "hello, world");
	cr_assert_not_null(strstr(s.request, "GET / HTTP/1.1\r\n"));
	cr_assert_null(strstr(s.request, "Content-Length"),
	               "a GET without body has no Content-Length");
	pond_test_http_resp_free(&resp);
}

Test(harness, http_reads_body_until_close_and_binary_bodies)
{
	const char *responses[] = {"HTTP/1.0 404 Not Found\r\n\r\nnope",
	                           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
	                           "\r\na\0b",
	                           NULL};
	canned_server s;
	pond_test_http_resp resp;

	canned_start(&s, responses);
	cr_assert_eq(pond_test_http("GET", s.port, "/x", NULL, NULL, 0, &resp),
	             0);
	cr_assert_eq(resp.status, 404);
	cr_assert_str_eq(resp.body, "nope");
	pond_test_http_resp_free(&resp);
	/* The canned string ends at its NUL, so only "a" is sent: a body
	 * shorter than its Content-Length is malformed. */
	cr_assert_eq(pond_test_http("GET", s.port, "/y", NULL, NULL, 0, &resp),
	             POND_EINVAL);
	cr_assert_null(resp.body);
	canned_join(&s);
}

Test(harness, http_reports_refused_and_malformed)
{
	const char *responses[] = {"garbage\r\n\r\n", NULL};
	canned_server s;
	pond_test_http_resp resp;

	/* Nothing listens on a port the harness has just found free. */
	cr_assert_eq(pond_test_http("GET", pond_test_free_port(), "/", NULL,
	                            NULL, 0, &resp),
	             POND_EIO);
	canned_start(&s, responses);
	cr_assert_eq(pond_test_http_raw(s.port, "GET / HTTP/1.1\r\n\r\n", 18,
	                                &resp),
	             POND_EINVAL);
	canned_join(&s);
}

Test(harness, wait_http_ok_waits_for_200)
{
	const char *responses[] = {
	        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
	        "0\r\n\r\n",
	        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
	        "0\r\n\r\n",
	        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL};
	canned_server s;

	canned_start(&s, responses);
	pond_test_wait_http_ok(s.port, "/healthz", 10000);
	canned_join(&s);
	cr_assert_eq(s.served, 3);
	cr_assert_not_null(strstr(s.request, "GET /healthz HTTP/1.1\r\n"));
}

Test(harness, wait_ready_accepts_a_live_process)
{
	const char *responses[] = {
	        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", NULL};
	const char *argv[] = {"/bin/sleep", "30", NULL};
	canned_server s;
	pond_test_proc *p = pond_test_spawn_argv(argv, NULL, "harness-ready");

	canned_start(&s, responses);
	pond_test_wait_ready(p, s.port, "/healthz", 10000);
	canned_join(&s);
	cr_assert_eq(pond_test_stop(p), 128 + SIGTERM);
}

/* --- JSON --- */

Test(harness, json_parses)
{
	json_t *j = pond_test_json("{\"a\": [1, 2, 3], \"b\": \"x\"}");

	cr_assert_eq(json_array_size(json_object_get(j, "a")), 3);
	cr_assert_str_eq(json_string_value(json_object_get(j, "b")), "x");
	json_decref(j);
}

/* --- clock --- */

/* file_text returns the contents of path (the caller frees it). */
static char *
file_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t cap = 0;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_geq(getdelim(&text, &cap, '\0', f), 0);
	fclose(f);
	return (text);
}

Test(harness, clock_file_moves_the_clock)
{
	char path[256], *text;
	pond_time start, later;

	pond_test_clock_file(path, sizeof(path));
	text = file_text(path);
	cr_assert_str_eq(text, POND_TEST_CLOCK_START "\n");
	free(text);
	cr_assert_eq(pond_time_parse_rfc3339(POND_TEST_CLOCK_START, &start),
	             0);

	pond_clock_use_file(path);
	cr_assert_eq(pond_now(), start);
	pond_test_clock_write(path, "2026-03-01T12:00:00+08:00");
	cr_assert_eq(pond_time_parse_rfc3339("2026-03-01T04:00:00Z", &later),
	             0);
	cr_assert_eq(pond_now(), later);
	pond_test_clock_set(path, later + 3 * POND_USEC_PER_DAY + 1);
	cr_assert_eq(pond_now(), later + 3 * POND_USEC_PER_DAY + 1);
	pond_clock_use_file(NULL);
}
