/*
 * test_reporting_world.c - the reporting tests' world (test_reporting.h).
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pond/tagging.pb-c.h"
#include "pond/touch.pb-c.h"
#include "stream.h"
#include "test_reporting.h"

/* start_reporting spawns pond-reporting for w, on ports of its own. */
static void
start_reporting(rw_world *w, const char *name, const char *const *extra_env)
{
	char log[64], e_dsn[600], e_port[32], e_sub[96], e_nng[96];
	char e_clock[4200];
	const char *env[32];
	size_t n = 0;

	w->http_port = pond_test_free_port();
	snprintf(w->nng_url, sizeof(w->nng_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", w->http_port);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	snprintf(e_nng, sizeof(e_nng), "POND_REPORTING_URL=%s", w->nng_url);
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	env[n++] = e_dsn;
	env[n++] = e_port;
	env[n++] = e_sub;
	env[n++] = e_nng;
	env[n++] = e_clock;
	env[n++] = "POND_HTTP_ADDR=127.0.0.1";
	env[n++] = "POND_TZ=Asia/Shanghai";
	env[n++] = "POND_TAG_CHANGES_SUB_URLS=tcp://127.0.0.1:1";
	env[n++] = "POND_TOUCHES_SUB_URLS=tcp://127.0.0.1:1";
	for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++) {
		env[n++] = extra_env[i];
	}
	env[n] = NULL;
	snprintf(log, sizeof(log), "%s-reporting", name);
	w->proc = pond_test_spawn("pond-reporting", env, log);
	pond_test_wait_ready(w->proc, w->http_port, "/healthz", 30000);
}

void
rw_start(rw_world *w, const char *name, const char *const *extra_env)
{
	char log[64];

	memset(w, 0, sizeof(*w));
	snprintf(log, sizeof(log), "%s-ingest", name);
	ic_start(&w->ingest, log, NULL);
	ic_add_api_tokens(w->ingest.dsn, RW_ADMIN_TOKEN, RW_READ_TOKEN);
	start_reporting(w, name, extra_env);
}

void
rw_restart_reporting(rw_world *w, const char *name)
{
	cr_assert_eq(pond_test_stop(w->proc), 0, "pond-reporting exit status");
	start_reporting(w, name, NULL);
}

void
rw_stop(rw_world *w)
{
	cr_assert_eq(pond_test_stop(w->proc), 0, "pond-reporting exit status");
	cr_assert_eq(ic_stop(&w->ingest), 0);
}

void
rw_send(rw_world *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ic_vsend_accepted(&w->ingest, fmt, ap);
	va_end(ap);
}

void
rw_send_list(rw_world *w, char *const *ev, size_t n)
{
	size_t len = 1;
	char *batch;

	for (size_t j = 0; j < n; j++) {
		len += strlen(ev[j]) + 2;
	}
	cr_assert_not_null(batch = calloc(1, len));
	for (size_t j = 0; j < n; j++) {
		if (j > 0) {
			strcat(batch, ", ");
		}
		strcat(batch, ev[j]);
	}
	rw_send(w, "%s", batch);
	free(batch);
}

void
rw_settle(rw_world *w)
{
	for (int i = 0; i < 600; i++) {
		long long behind = pond_test_sql_int(
		        w->ingest.dsn,
		        "SELECT count(*) FROM stream_heads h LEFT JOIN "
		        "consumer_cursors c ON c.consumer = 'reporting' AND "
		        "c.stream = h.stream AND c.partition = h.partition "
		        "WHERE h.head > COALESCE(c.seq, 0)");
		if (behind == 0) {
			return;
		}
		usleep(50000);
	}
	cr_assert_fail("reporting did not catch up");
}

/* rw_stream_write appends one record to a stream table, taking its seq
 * from the stream_heads row lock as pond_stream_reserve does; cols and
 * vals name the table's other columns (or are ""). */
static void
rw_stream_write(rw_world *w, const char *stream, const char *table,
                const char *key, const uint8_t *payload, size_t len,
                const char *cols, const char *vals)
{
	uint32_t part = pond_partition_of(key, IC_PARTITIONS);
	char *hex = ic_hex(payload, len), *sql;

	cr_assert(
	        asprintf(&sql,
	                 "WITH h AS (UPDATE stream_heads SET head = head + 1 "
	                 "WHERE stream = '%s' AND partition = %u RETURNING "
	                 "head) INSERT INTO %s (partition, seq, customer_key, "
	                 "payload%s) SELECT %u, head, '%s', '\\x%s'::bytea%s "
	                 "FROM h",
	                 stream, part, table, cols, part, key, hex,
	                 vals) >= 0);
	pond_test_sql_exec(w->ingest.dsn, sql);
	free(sql);
	free(hex);
}

static Google__Protobuf__Timestamp *
rw_ts(Google__Protobuf__Timestamp *ts, const char *at)
{
	pond_time t;

	if (at == NULL) {
		return (NULL);
	}
	cr_assert_eq(pond_time_parse_rfc3339(at, &t), 0, "%s", at);
	google__protobuf__timestamp__init(ts);
	ts->seconds = t / POND_USEC_PER_SEC;
	ts->nanos = (int32_t)(t % POND_USEC_PER_SEC) * 1000;
	return (ts);
}

void
rw_tag_change(rw_world *w, const char *key, const char *tag, bool added,
              const char *changed_at)
{
	Pond__TagChange tc = POND__TAG_CHANGE__INIT;
	Google__Protobuf__Timestamp ts;
	uint8_t buf[1024];

	tc.customer_key = (char *)key;
	tc.tag = (char *)tag;
	tc.added = added;
	tc.cause = "event";
	tc.changed_at = rw_ts(&ts, changed_at);
	cr_assert(pond__tag_change__get_packed_size(&tc) <= sizeof(buf));
	char vals[200];
	snprintf(vals, sizeof(vals), ", '%s', %s, 'event', '%s'", tag,
	         added ? "true" : "false", changed_at);
	rw_stream_write(w, POND_STREAM_TAG_CHANGES, "tag_changes", key, buf,
	                pond__tag_change__pack(&tc, buf),
	                ", tag, added, cause, changed_at", vals);
}

void
rw_touch_change(rw_world *w, const char *touch_id, const char *key,
                const char *campaign_id, const char *state, const char *reason,
                const char *at, const char *selected_at, int64_t cost_fen)
{
	Pond__TouchChange tc = POND__TOUCH_CHANGE__INIT;
	Google__Protobuf__Timestamp t1, t2;
	uint8_t buf[1024];

	tc.touch_id = (char *)touch_id;
	tc.customer_key = (char *)key;
	tc.campaign_id = (char *)campaign_id;
	tc.channel = "wecom_message";
	tc.state = (char *)state;
	tc.reason = (char *)(reason != NULL ? reason : "");
	tc.at = rw_ts(&t1, at);
	tc.selected_at = rw_ts(&t2, selected_at);
	tc.cost_fen = cost_fen;
	cr_assert(pond__touch_change__get_packed_size(&tc) <= sizeof(buf));
	char vals[300];
	snprintf(vals, sizeof(vals), ", '%s', '%s', '%s', '%s', '%s'",
	         touch_id, campaign_id, state, reason != NULL ? reason : "",
	         at != NULL ? at : selected_at);
	rw_stream_write(w, POND_STREAM_TOUCHES, "touch_changes", key, buf,
	                pond__touch_change__pack(&tc, buf),
	                ", touch_id, campaign_id, state, reason, changed_at",
	                vals);
}

int
rw_http(rw_world *w, const char *method, const char *token, const char *path,
        const char *body, json_t **answer)
{
	return (pond_test_http_bearer(method, w->http_port, token, path, body,
	                              answer));
}

json_t *
rw_get(rw_world *w, const char *fmt, ...)
{
	char *path;
	json_t *answer;
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&path, fmt, ap) >= 0);
	va_end(ap);
	int status = rw_http(w, "GET", RW_READ_TOKEN, path, NULL, &answer);
	if (status != 200) {
		char *text = json_dumps(answer, 0);
		cr_assert_fail("GET %s: %d %s", path, status, text);
		free(text);
	}
	free(path);
	return (answer);
}

json_t *
rw_row(json_t *report, const char *key, const char *value)
{
	json_t *rows = json_object_get(report, "rows"), *row;
	size_t i;

	json_array_foreach(rows, i, row)
	{
		const char *v = json_string_value(json_object_get(row, key));
		if (v != NULL && strcmp(v, value) == 0) {
			return (row);
		}
	}
	char *text = json_dumps(report, 0);
	cr_assert_fail("no row %s=%s in %s", key, value, text);
	return (NULL);
}

void
rw_assert_num(json_t *v, double want, const char *what)
{
	cr_assert(json_is_number(v), "%s: not a number", what);
	cr_assert_eq(json_number_value(v), want, "%s: %.17g, want %.17g", what,
	             json_number_value(v), want);
}

void
rw_assert_null(json_t *v, const char *what)
{
	cr_assert(json_is_null(v), "%s: not null", what);
}

unsigned
rw_seed(void)
{
	const char *env = getenv("POND_TEST_SEED");
	unsigned seed = env != NULL ? (unsigned)strtoul(env, NULL, 10)
	                            : (unsigned)time(NULL);

	cr_log_info("seed %u (POND_TEST_SEED)", seed);
	return (seed);
}
