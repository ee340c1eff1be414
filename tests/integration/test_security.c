/*
 * test_security.c - the security points of docs/security.md, shown against
 * a real pond-ingest and a real PostgreSQL:
 *
 * - a missing or wrong token gets 401 (HTTP) or batch_error "unauthorized"
 *   (NNG), nothing is stored, and pond_auth_failures_total counts it by
 *   reason; a read token may not do what needs admin;
 * - each service's database role is refused another service's tables, and
 *   pond-ingest works logged in as a member of pond_ingest alone;
 * - an alias (a phone number) is stored only as HMAC-SHA256 under
 *   POND_PII_KEY: not in customer_aliases, not in the stored event, not in
 *   the service's log, not in a reply; it still resolves customers.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ingest_client.h"
#include "token.h"

#define ADMIN_TOKEN "api_sec_admin_0123456789"
#define READ_TOKEN  "api_sec_read_0123456789"
#define PII_KEY     "sec-test-pii-key"
#define PHONE       "13800001001"

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
strf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	cr_assert(vasprintf(&s, fmt, ap) >= 0);
	va_end(ap);
	return (s);
}

static void
add_api_tokens(const char *dsn)
{
	pond_test_sql_exec(
	        dsn,
	        "INSERT INTO api_tokens (name, role, token_hash) "
	        "VALUES ('adm', 'admin', sha256(convert_to('" ADMIN_TOKEN
	        "', 'UTF8'))), ('rd', 'read', sha256(convert_to('" READ_TOKEN
	        "', 'UTF8')))");
}

static double
refusals(const ic_service *svc, const char *reason)
{
	char series[96];

	snprintf(series, sizeof(series),
	         "pond_auth_failures_total{reason=\"%s\"}", reason);
	return (ic_metric(svc, series));
}

static const char *const event_json =
        "{\"events\": [{\"event_id\": \"e1\", \"customer_key\": \"c1\", "
        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"interaction\": "
        "{\"kind\": \"message\"}}]}";

Test(security, missing_and_wrong_tokens_get_401_and_are_counted,
     .timeout = 120)
{
	ic_service svc;
	pond_test_http_resp resp;
	ic_nng nng;
	ic_batch batch = {0};
	Pond__IngestAck *ack;

	ic_start(&svc, "security-tokens", NULL);
	add_api_tokens(svc.dsn);
	cr_assert_eq(refusals(&svc, "missing"), 0);
	cr_assert_eq(refusals(&svc, "unknown"), 0);
	cr_assert_eq(refusals(&svc, "role"), 0);

	/* HTTP without a token, then with one nobody issued, then with an
	 * API token where a publisher token is needed: 401 each time. */
	cr_assert_eq(ic_http_post(svc.http_port, NULL, event_json, 0, &resp),
	             0);
	cr_assert_eq(resp.status, 401, "%s", resp.body);
	cr_assert(strstr(resp.body, "\"unauthorized\"") != NULL, "%s",
	          resp.body);
	pond_test_http_resp_free(&resp);
	cr_assert_eq(
	        ic_http_post(svc.http_port,
	                     "pub_0000000000000000000000000000000000000000",
	                     event_json, 0, &resp),
	        0);
	cr_assert_eq(resp.status, 401, "%s", resp.body);
	pond_test_http_resp_free(&resp);
	cr_assert_eq(
	        ic_http_post(svc.http_port, ADMIN_TOKEN, event_json, 0, &resp),
	        0);
	cr_assert_eq(resp.status, 401, "%s", resp.body);
	pond_test_http_resp_free(&resp);

	/* NNG: an empty token and a wrong one get batch_error. */
	ic_nng_open(&nng, svc.nng_url, IC_TIMEOUT_MS);
	ic_batch_add_json(&batch,
	                  "{\"event_id\": \"e2\", \"customer_key\": \"c1\", "
	                  "\"occurred_at\": \"" IC_EVENT_TIME
	                  "\", \"interaction\": {\"kind\": \"message\"}}");
	ack = ic_nng_send(&nng, &batch, "");
	cr_assert_not_null(ack->batch_error);
	cr_assert_str_eq(ack->batch_error->code, "unauthorized");
	ic_ack_free(ack);
	ack = ic_nng_send(&nng, &batch, "pub_wrong");
	cr_assert_not_null(ack->batch_error);
	cr_assert_str_eq(ack->batch_error->code, "unauthorized");
	ic_ack_free(ack);

	/* A read token may not replay a rejected event (admin only). */
	const char *auth = "Authorization: Bearer " READ_TOKEN;
	const char *headers[] = {auth, NULL};
	cr_assert_eq(pond_test_http("POST", svc.http_port,
	                            "/v1/rejected/1/replay", headers,
	                            "{\"event\": {}}", 0, &resp),
	             0);
	cr_assert_eq(resp.status, 401, "%s", resp.body);
	pond_test_http_resp_free(&resp);

	/* Counted by reason: missing = the HTTP request without a header and
	 * the NNG batch with an empty token (2); unknown = the made-up
	 * publisher token over HTTP, the API token used as a publisher's,
	 * and "pub_wrong" over NNG (3); role = the read token (1). */
	cr_assert_eq(refusals(&svc, "missing"), 2);
	cr_assert_eq(refusals(&svc, "unknown"), 3);
	cr_assert_eq(refusals(&svc, "role"), 1);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             0, "nothing is stored for a refused batch");

	/* The right token still works, and counts nothing. */
	ack = ic_nng_send(&nng, &batch, svc.token);
	cr_assert_null(ack->batch_error);
	cr_assert_str_eq(ic_ack_result(ack, 0).status, "accepted");
	ic_ack_free(ack);
	cr_assert_eq(refusals(&svc, "missing") + refusals(&svc, "unknown") +
	                     refusals(&svc, "role"),
	             6);
	ic_batch_free(&batch);
	ic_nng_close(&nng);
	cr_assert_eq(ic_stop(&svc), 0);
	pond_test_db_drop(svc.dsn);
}

/* sql_as runs sql as role (SET ROLE, from the superuser the tests use)
 * and returns the SQLSTATE it fails with ("" when it succeeds). */
static void
sql_as(const char *dsn, const char *role, const char *sql, char *state,
       size_t len)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	char *set = strf("SET ROLE %s", role);
	PGresult *res = PQexec(conn, set);

	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s",
	             PQerrorMessage(conn));
	PQclear(res);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK) {
		snprintf(state, len, "%s", "");
	} else {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		snprintf(state, len, "%s", s != NULL ? s : "?");
	}
	PQclear(res);
	PQfinish(conn);
	free(set);
}

static void
expect_refused(const char *dsn, const char *role, const char *sql)
{
	char state[8];

	sql_as(dsn, role, sql, state, sizeof(state));
	/* 42501 is insufficient_privilege. */
	cr_assert_str_eq(state, "42501", "%s may run: %s", role, sql);
}

static void
expect_allowed(const char *dsn, const char *role, const char *sql)
{
	char state[8];

	sql_as(dsn, role, sql, state, sizeof(state));
	cr_assert_str_eq(state, "", "%s is refused (%s): %s", role, state,
	                 sql);
}

Test(security, a_role_is_refused_another_services_tables)
{
	char dsn[POND_TEST_DSN_LEN];

	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, sizeof(dsn), 4);

	/* Reporting may not read identities or credentials, nor write the
	 * event log; tagging may not write events or read aliases; ingest
	 * may not touch tag rules or profiles, nor add publishers. */
	expect_refused(dsn, "pond_reporting",
	               "SELECT * FROM customer_aliases");
	expect_refused(dsn, "pond_reporting", "SELECT * FROM publishers");
	expect_refused(dsn, "pond_reporting", "SELECT * FROM rejected_events");
	expect_refused(dsn, "pond_reporting", "DELETE FROM events");
	expect_refused(dsn, "pond_tagging",
	               "INSERT INTO events VALUES (0, 1, 'c', 1, 'e', 't', "
	               "now(), now(), '')");
	expect_refused(dsn, "pond_tagging", "SELECT * FROM customer_aliases");
	expect_refused(dsn, "pond_ingest", "SELECT * FROM tag_rules");
	expect_refused(dsn, "pond_ingest", "DELETE FROM customer_profiles");
	expect_refused(dsn, "pond_ingest",
	               "INSERT INTO publishers (name, token_hash) VALUES "
	               "('x', '')");
	expect_refused(dsn, "pond_ingest",
	               "UPDATE customer_aliases SET "
	               "customer_key = 'x'");
	expect_refused(dsn, "pond_ingest", "DROP TABLE events");
	expect_refused(dsn, "pond_scheduler",
	               "SELECT * FROM api_tokens "
	               "FOR UPDATE");
	expect_refused(dsn, "pond_scheduler", "DELETE FROM tag_changes");

	/* And each may do its own work. */
	expect_allowed(dsn, "pond_ingest",
	               "INSERT INTO customer_aliases (kind, value, "
	               "customer_key) VALUES ('phone', 'h', 'c')");
	expect_allowed(dsn, "pond_ingest",
	               "INSERT INTO rejected_events (code, reason, format, "
	               "raw, received_at) VALUES ('x', 'y', 'json', '', "
	               "now())");
	expect_allowed(dsn, "pond_tagging",
	               "INSERT INTO tag_rules (tag, condition) VALUES ('t', "
	               "'{}') ON CONFLICT DO NOTHING");
	expect_allowed(dsn, "pond_tagging", "SELECT count(*) FROM events");
	expect_allowed(dsn, "pond_reporting", "SELECT count(*) FROM events");
	expect_allowed(dsn, "pond_reporting",
	               "SELECT count(*) FROM tag_changes");
	pond_test_db_drop(dsn);
}

/* ic_restart_as stops svc and starts pond-ingest again on the same store,
 * ports and clock, logged in as login_role. */
static void
ic_restart_as(ic_service *svc, const char *login_role, const char *log_name)
{
	char e_dsn[POND_TEST_DSN_LEN + 64], e_port[32], e_url[96], e_pub[96];
	char e_clock[PATH_MAX + 32];
	const char *env[16];
	size_t n = 0;

	cr_assert_eq(ic_stop(svc), 0);
	/* In a libpq conninfo string the last user= wins. */
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s user=%s", svc->dsn,
	         login_role);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", svc->http_port);
	snprintf(e_url, sizeof(e_url), "POND_INGEST_URL=%s", svc->nng_url);
	snprintf(e_pub, sizeof(e_pub), "POND_EVENTS_PUB_URL=%s", svc->pub_url);
	snprintf(e_clock, sizeof(e_clock), "POND_TEST_CLOCK=%s", svc->clock);
	env[n++] = e_dsn;
	env[n++] = e_port;
	env[n++] = e_url;
	env[n++] = e_pub;
	env[n++] = e_clock;
	env[n++] = "POND_HTTP_ADDR=127.0.0.1";
	env[n++] = "POND_PII_KEY=" PII_KEY;
	env[n] = NULL;
	snprintf(svc->log_name, sizeof(svc->log_name), "%s", log_name);
	svc->proc = pond_test_spawn("pond-ingest", env, log_name);
	pond_test_wait_ready(svc->proc, svc->http_port, "/healthz", 30000);
}

/* file_contains reports whether the file at path holds needle. */
static bool
file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	bool found = false;

	cr_assert_not_null(f, "cannot open %s", path);
	while (!found && getline(&buf, &cap, f) >= 0) {
		found = strstr(buf, needle) != NULL;
	}
	free(buf);
	fclose(f);
	return (found);
}

Test(security, phone_aliases_are_stored_keyed_hashed_only, .timeout = 120)
{
	static const char *const env[] = {"POND_PII_KEY=" PII_KEY, NULL};
	ic_service svc;
	char hash[POND_PII_HASH_LEN + 1], *sql, *login;
	int status;

	ic_start(&svc, "security-pii", env);
	cr_assert_eq(pond_pii_hash(PII_KEY, strlen(PII_KEY), PHONE,
	                           strlen(PHONE), hash),
	             0);

	/* The service runs as a login role in group pond_ingest only: the
	 * grants of 0005_roles are enough for all it does below. */
	login = pond_test_sql_text(svc.dsn, "SELECT 'sec_' || md5(current_"
	                                    "database())");
	sql = strf("CREATE ROLE %s LOGIN IN ROLE pond_ingest", login);
	pond_test_sql_exec(svc.dsn, sql);
	free(sql);
	ic_restart_as(&svc, login, "security-pii-role");

	/* e1 links the phone to c1; e2 has no key and is resolved by it; e3
	 * is rejected (no occurred_at) with the phone in its bytes. */
	json_t *answer = ic_http_events(
	        &svc,
	        "{\"events\": ["
	        "{\"event_id\": \"e1\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"aliases\": "
	        "[{\"kind\": \"phone\", \"value\": \"" PHONE "\"}], "
	        "\"contact_added\": {\"channel\": \"cards\"}},"
	        "{\"event_id\": \"e2\", \"occurred_at\": \"" IC_EVENT_TIME
	        "\", \"aliases\": [{\"kind\": \"phone\", \"value\": "
	        "\"" PHONE "\"}], \"order_paid\": {\"order_id\": \"o1\", "
	        "\"amount_fen\": 1990}},"
	        "{\"event_id\": \"e3\", \"customer_key\": \"c1\", "
	        "\"aliases\": [{\"kind\": \"phone\", \"value\": \"" PHONE
	        "\"}], \"interaction\": {\"kind\": \"message\"}}]}",
	        &status);
	cr_assert_eq(status, 200);
	cr_assert_str_eq(ic_json_result(answer, 0).status, "accepted");
	cr_assert_str_eq(ic_json_result(answer, 1).status, "accepted");
	cr_assert_str_eq(ic_json_result(answer, 2).code, "missing_time");
	char *reply = json_dumps(answer, 0);
	cr_assert(strstr(reply, PHONE) == NULL, "the reply holds the phone");
	free(reply);
	json_decref(answer);

	/* The alias row holds the keyed hash, computed here independently of
	 * the service, and e2 went to c1 through it. */
	sql = strf("SELECT count(*) FROM customer_aliases WHERE kind = "
	           "'phone' AND value = '%s' AND customer_key = 'c1'",
	           hash);
	cr_assert_eq(pond_test_sql_int(svc.dsn, sql), 1);
	free(sql);
	cr_assert_eq(pond_test_sql_int(
	                     svc.dsn, "SELECT count(*) FROM customer_aliases"),
	             1);
	cr_assert_eq(pond_test_sql_int(svc.dsn,
	                               "SELECT count(*) FROM events WHERE "
	                               "event_id = 'e2' AND customer_key = "
	                               "'c1'"),
	             1);

	/* No stored event carries the phone; both carry its hash. */
	cr_assert_eq(pond_test_sql_int(svc.dsn,
	                               "SELECT count(*) FROM events WHERE "
	                               "position(convert_to('" PHONE
	                               "', 'UTF8') IN payload) > 0"),
	             0);
	sql = strf("SELECT count(*) FROM events WHERE position(convert_to("
	           "'%s', 'UTF8') IN payload) > 0",
	           hash);
	cr_assert_eq(pond_test_sql_int(svc.dsn, sql), 2);
	free(sql);

	/* The rejected event keeps its bytes as sent, for the fix and replay
	 * (docs/security.md); its reason does not quote the phone. */
	cr_assert_eq(pond_test_sql_int(svc.dsn,
	                               "SELECT count(*) FROM rejected_events "
	                               "WHERE event_id = 'e3' AND "
	                               "position(convert_to('" PHONE
	                               "', 'UTF8') IN raw) > 0 AND "
	                               "position('" PHONE "' IN reason) = 0"),
	             1);

	/* Neither the phone nor the key reaches the log. */
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s", pond_test_proc_log(svc.proc));
	cr_assert_eq(ic_stop(&svc), 0);
	cr_assert(!file_contains(log, PHONE), "%s holds the phone", log);
	cr_assert(!file_contains(log, PII_KEY), "%s holds the key", log);
	sql = strf("DROP ROLE %s", login);
	pond_test_sql_exec(svc.dsn, sql);
	pond_test_db_drop(svc.dsn);
	free(sql);
	free(login);
}
