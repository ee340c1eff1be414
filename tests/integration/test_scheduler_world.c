/*
 * test_scheduler_world.c - the scheduler tests' world (test_scheduler.h).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

void
sw_start(sw_world *w, const char *name, const char *const *sched_env)
{
	char log[80];

	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	w->sched_env = sched_env;
	snprintf(log, sizeof(log), "%s-ingest", name);
	ic_start(&w->ingest, log, NULL);
	ic_add_api_tokens(w->ingest.dsn, SW_ADMIN_TOKEN, SW_READ_TOKEN);
	w->gw_port = pond_test_free_port();
	snprintf(w->gw_url, sizeof(w->gw_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(w->gw_ledger, sizeof(w->gw_ledger), "%s/%s-%d.ledger",
	         pond_test_artifacts_dir(), name, (int)getpid());
	snprintf(w->gw_control, sizeof(w->gw_control), "%s/%s-%d.control",
	         pond_test_artifacts_dir(), name, (int)getpid());
	unlink(w->gw_ledger);
	sw_gateway_control(w, "normal");
	sw_scheduler_start(w, 0);
}

void
sw_scheduler_start(sw_world *w, int i)
{
	char e_dsn[600], e_port[32], e_sub[96], e_pub[96],
	        e_clock[PATH_MAX + 32];
	char e_gw[200], log[80];
	const char *env[32];
	size_t n = 0;

	w->sched_port[i] = pond_test_free_port();
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u",
	         w->sched_port[i]);
	snprintf(e_sub, sizeof(e_sub), "POND_EVENTS_SUB_URLS=%s",
	         w->ingest.pub_url);
	/* Nobody subscribes in these tests: an ephemeral port cannot
	 * collide with another test's. */
	snprintf(e_pub, sizeof(e_pub), "POND_TOUCHES_PUB_URL=%s",
	         "tcp://127.0.0.1:0");
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	snprintf(e_gw, sizeof(e_gw),
	         "POND_GATEWAY_URLS=wecom_message=%s,sms=%s", w->gw_url,
	         w->gw_url);
	env[n++] = e_dsn;
	env[n++] = e_port;
	env[n++] = e_sub;
	env[n++] = e_pub;
	env[n++] = e_clock;
	env[n++] = e_gw;
	env[n++] = "POND_HTTP_ADDR=127.0.0.1";
	env[n++] = "POND_TZ=Asia/Shanghai";
	env[n++] = "POND_TAG_CHANGES_SUB_URLS=tcp://127.0.0.1:1";
	env[n++] = "POND_SCHEDULER_TICK_MS=50";
	for (size_t k = 0;
	     w->sched_env != NULL && w->sched_env[k] != NULL && n < 31; k++) {
		env[n++] = w->sched_env[k];
	}
	env[n] = NULL;
	snprintf(log, sizeof(log), "%s-scheduler%d-%d", w->name, i,
	         w->nsched_spawned++);
	w->sched[i] = pond_test_spawn("pond-scheduler", env, log);
	pond_test_wait_ready(w->sched[i], w->sched_port[i], "/healthz", 30000);
}

void
sw_gateway_start(sw_world *w, const char *const *extra)
{
	char e_dsn[600], e_port[32], e_urls[160], e_ingest[96], e_token[160];
	char e_ledger[PATH_MAX + 32], e_control[PATH_MAX + 32];
	char e_clock[PATH_MAX + 32], log[80];
	const char *env[32];
	size_t n = 0;
	static int spawned;

	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w->ingest.dsn);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", w->gw_port);
	snprintf(e_urls, sizeof(e_urls), "POND_GATEWAY_URLS=wecom_message=%s",
	         w->gw_url);
	snprintf(e_ingest, sizeof(e_ingest), "POND_INGEST_URL=%s",
	         w->ingest.nng_url);
	snprintf(e_token, sizeof(e_token), "POND_GATEWAY_TOKEN=%s",
	         w->ingest.token);
	snprintf(e_ledger, sizeof(e_ledger), "POND_GATEWAY_LEDGER=%s",
	         w->gw_ledger);
	snprintf(e_control, sizeof(e_control), "POND_GATEWAY_CONTROL=%s",
	         w->gw_control);
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s",
	         w->ingest.clock);
	env[n++] = e_dsn;
	env[n++] = e_port;
	env[n++] = e_urls;
	env[n++] = e_ingest;
	env[n++] = e_token;
	env[n++] = e_ledger;
	env[n++] = e_control;
	env[n++] = e_clock;
	env[n++] = "POND_HTTP_ADDR=127.0.0.1";
	for (size_t k = 0; extra != NULL && extra[k] != NULL && n < 31; k++) {
		env[n++] = extra[k];
	}
	env[n] = NULL;
	snprintf(log, sizeof(log), "%s-gateway-%d", w->name, spawned++);
	w->gw = pond_test_spawn("pond-gateway-sim", env, log);
	pond_test_wait_ready(w->gw, w->gw_port, "/healthz", 30000);
}

void
sw_gateway_control(sw_world *w, const char *mode)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", w->gw_control);
	cr_assert_not_null(f = fopen(tmp, "w"));
	fprintf(f, "%s\n", mode);
	fclose(f);
	cr_assert_eq(rename(tmp, w->gw_control), 0);
}

void
sw_stop(sw_world *w)
{
	for (int i = 0; i < 2; i++) {
		if (w->sched[i] != NULL) {
			cr_assert_eq(pond_test_stop(w->sched[i]), 0,
			             "pond-scheduler %d exit status", i);
			w->sched[i] = NULL;
		}
	}
	if (w->gw != NULL) {
		cr_assert_eq(pond_test_stop(w->gw), 0,
		             "pond-gateway-sim exit status");
		w->gw = NULL;
	}
	cr_assert_eq(ic_stop(&w->ingest), 0);
	unlink(w->gw_ledger);
	unlink(w->gw_control);
}

int
sw_http(sw_world *w, const char *method, const char *path, const char *token,
        const char *body, json_t **out)
{
	char auth[160];
	const char *headers[] = {auth, "Content-Type: application/json", NULL};
	pond_test_http_resp resp;
	int status;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	         token != NULL ? token : "");
	cr_assert_eq(pond_test_http(method, w->sched_port[0], path,
	                            token != NULL ? headers : headers + 1,
	                            body, 0, &resp),
	             0, "%s %s", method, path);
	status = resp.status;
	if (out != NULL) {
		*out = pond_test_json(resp.body);
	}
	pond_test_http_resp_free(&resp);
	return (status);
}

char *
sw_campaign(sw_world *w, const char *json)
{
	json_t *reply;
	int status = sw_http(w, "POST", "/v1/campaigns", SW_ADMIN_TOKEN, json,
	                     &reply);
	char *dump = json_dumps(reply, 0);

	cr_assert_eq(status, 201, "%s -> %d %s", json, status, dump);
	free(dump);
	char *id = strdup(json_string_value(json_object_get(reply, "id")));
	json_decref(reply);
	return (id);
}

void
sw_send(sw_world *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ic_vsend_accepted(&w->ingest, fmt, ap);
	va_end(ap);
}

void
sw_interaction(sw_world *w, const char *key, const char *at)
{
	sw_send(w,
	        "{\"event_id\": \"%s@%s\", \"customer_key\": \"%s\", "
	        "\"occurred_at\": \"%s\", \"interaction\": {\"kind\": "
	        "\"message\"}}",
	        key, at, key, at);
}

void
sw_kill_scheduler(sw_world *w, int i)
{
	pond_test_kill(w->sched[i], SIGKILL);
	cr_assert_eq(pond_test_wait_exit(w->sched[i], 10000, NULL), 0);
	pond_test_stop(w->sched[i]);
	w->sched[i] = NULL;
}

long long
sw_sql_int(sw_world *w, const char *fmt, ...)
{
	char *sql;
	va_list ap;

	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) >= 0);
	va_end(ap);
	long long v = pond_test_sql_int(w->ingest.dsn, sql);
	free(sql);
	return (v);
}

void
sw_wait_int(sw_world *w, long long want, int timeout_ms, const char *fmt, ...)
{
	char *sql;
	va_list ap;
	long long v = 0;

	va_start(ap, fmt);
	cr_assert(vasprintf(&sql, fmt, ap) >= 0);
	va_end(ap);
	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		if ((v = pond_test_sql_int(w->ingest.dsn, sql)) == want) {
			free(sql);
			return;
		}
		usleep(50000);
	}
	char shown[600];
	snprintf(shown, sizeof(shown), "%s", sql);
	free(sql);
	cr_assert_fail("%s: %lld, expected %lld", shown, v, want);
}

void
sw_settle(sw_world *w)
{
	sw_wait_int(w, 0, 30000,
	            "SELECT (SELECT coalesce(sum(head), 0) FROM stream_heads "
	            "WHERE stream = 'events') - (SELECT coalesce(sum(seq), 0) "
	            "FROM consumer_cursors WHERE consumer = 'scheduler' AND "
	            "stream = 'events')");
}

void
sw_clock(sw_world *w, const char *rfc3339)
{
	pond_test_clock_write(w->ingest.clock, rfc3339);
}

double
sw_metric(sw_world *w, int i, const char *series)
{
	ic_service probe = {.http_port = w->sched_port[i]};

	return (ic_metric(&probe, series));
}
