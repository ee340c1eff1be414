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

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

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
	ic_add_api_tokens(svc.dsn, ADMIN_TOKEN, READ_TOKEN);
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
	expect_refused(dsn, "pond_reporting",
	               "UPDATE api_tokens SET revoked_at = now()");
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
	/* Publisher names for tie-breaks, but not their token hashes. */
	expect_allowed(dsn, "pond_reporting",
	               "SELECT id, name FROM publishers");
	expect_refused(dsn, "pond_reporting",
	               "SELECT token_hash FROM publishers");
	pond_test_db_drop(dsn);
}

/* restart stops svc and starts it again: as login_role (NULL: as
 * before), listening on nng_url (NULL: as before), with extra added to its
 * environment. */
static void
restart(ic_service *svc, const char *login_role, const char *nng_url,
        const char *const *extra, const char *log_name)
{
	char user[96];

	cr_assert_eq(ic_stop(svc), 0);
	if (nng_url != NULL) {
		snprintf(svc->nng_url, sizeof(svc->nng_url), "%s", nng_url);
	}
	snprintf(user, sizeof(user), "user=%s",
	         login_role != NULL ? login_role : "");
	ic_spawn(svc, login_role != NULL ? user : NULL, extra, log_name);
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
	restart(&svc, login, NULL, env, "security-pii-role");

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

/* nng_call sends len bytes on a REQ socket already dialed and returns the
 * ack, or NULL when no answer came within the socket's timeout. */
static Pond__IngestAck *
nng_call(nng_socket sock, const void *req, size_t len)
{
	nng_msg *msg;
	Pond__IngestAck *ack;

	cr_assert_eq(nng_send(sock, (void *)req, len, 0), 0);
	if (nng_recvmsg(sock, &msg, 0) != 0) {
		return (NULL);
	}
	ack = pond__ingest_ack__unpack(NULL, nng_msg_len(msg),
	                               nng_msg_body(msg));
	nng_msg_free(msg);
	cr_assert_not_null(ack, "the answer is not an IngestAck");
	return (ack);
}

/* A message over the socket limit (twice the 4 MiB batch limit, so a
 * batch slightly over gets its batch_error) is never read into memory
 * whole: NNG drops it and the connection, the publisher hears nothing,
 * and the service goes on answering. Under it, the parser answers
 * too_large. */
Test(security, oversized_messages_are_cut_at_the_socket, .timeout = 120)
{
	ic_service svc;
	ic_nng nng;
	ic_batch batch = {0};
	Pond__IngestAck *ack;
	size_t big = (size_t)9 << 20; /* 9 MiB > 2 x 4 MiB */
	uint8_t *junk = calloc(1, big);

	cr_assert_not_null(junk);
	ic_start(&svc, "security-limits", NULL);
	ic_nng_open(&nng, svc.nng_url, 3000);
	/* What the bytes are does not matter: the size is seen first. */
	cr_assert_null(nng_call(nng.sock, junk, big),
	               "a 9 MiB message was answered");
	ic_nng_close(&nng);

	/* 5 MiB: read, and refused by the parser. */
	ic_nng_open(&nng, svc.nng_url, IC_TIMEOUT_MS);
	ack = nng_call(nng.sock, junk, (size_t)5 << 20);
	cr_assert_not_null(ack);
	cr_assert_not_null(ack->batch_error);
	cr_assert_str_eq(ack->batch_error->code, "too_large");
	ic_ack_free(ack);

	/* Still serving. */
	ic_batch_add_json(&batch,
	                  "{\"event_id\": \"e1\", \"customer_key\": \"c1\", "
	                  "\"occurred_at\": \"" IC_EVENT_TIME
	                  "\", \"interaction\": {\"kind\": \"message\"}}");
	ack = ic_nng_send(&nng, &batch, svc.token);
	cr_assert_str_eq(ic_ack_result(ack, 0).status, "accepted");
	ic_ack_free(ack);
	ic_batch_free(&batch);
	ic_nng_close(&nng);
	free(junk);
	cr_assert_eq(ic_stop(&svc), 0);
	pond_test_db_drop(svc.dsn);
}

/* An HTTP body sent chunked (no Content-Length to refuse it by) is cut at
 * 4 MiB too: 413 once it has all arrived, nothing stored. */
Test(security, chunked_http_body_over_the_limit_gets_413, .timeout = 120)
{
	ic_service svc;
	pond_test_http_resp resp;
	size_t chunk = (size_t)1 << 20, nchunks = 5, len = 0;
	char *req = malloc(nchunks * (chunk + 16) + 1024);

	cr_assert_not_null(req);
	ic_start(&svc, "security-chunked", NULL);
	len += (size_t)sprintf(req,
	                       "POST /v1/events HTTP/1.1\r\nHost: x\r\n"
	                       "Authorization: Bearer %s\r\n"
	                       "Transfer-Encoding: chunked\r\n"
	                       "Connection: close\r\n\r\n",
	                       svc.token);
	for (size_t i = 0; i < nchunks; i++) {
		len += (size_t)sprintf(req + len, "%zx\r\n", chunk);
		memset(req + len, ' ', chunk);
		len += chunk;
		len += (size_t)sprintf(req + len, "\r\n");
	}
	len += (size_t)sprintf(req + len, "0\r\n\r\n");
	cr_assert_eq(pond_test_http_raw(svc.http_port, req, len, &resp), 0);
	cr_assert_eq(resp.status, 413, "%d %s", resp.status, resp.body);
	pond_test_http_resp_free(&resp);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             0);
	free(req);
	cr_assert_eq(ic_stop(&svc), 0);
	pond_test_db_drop(svc.dsn);
}

/* tls+tcp:// (NNG's TLS transport, mbedTLS in Debian's libnng 1.5.2): a
 * self-signed certificate made here by openssl; a publisher that trusts
 * it gets its batch acked, one that speaks plain TCP gets nothing. */
Test(security, ingest_over_tls_with_a_self_signed_certificate, .timeout = 120)
{
	ic_service svc;
	char dir[PATH_MAX], cert[PATH_MAX + 16], key[PATH_MAX + 16];
	char e_cert[PATH_MAX + 32], e_key[PATH_MAX + 32], url[64];
	const char *const env[] = {e_cert, e_key, NULL};
	nng_socket sock;
	nng_dialer d;
	nng_tls_config *cfg;
	ic_batch batch = {0};
	ic_bytes packed;
	Pond__IngestAck *ack;
	uint16_t port;

	snprintf(dir, sizeof(dir), "%s/security-tls.XXXXXX",
	         pond_test_artifacts_dir());
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	const char *const openssl[] = {"/usr/bin/openssl",
	                               "req",
	                               "-x509",
	                               "-newkey",
	                               "ec",
	                               "-pkeyopt",
	                               "ec_paramgen_curve:prime256v1",
	                               "-nodes",
	                               "-keyout",
	                               key,
	                               "-out",
	                               cert,
	                               "-days",
	                               "2",
	                               "-subj",
	                               "/CN=localhost",
	                               NULL};
	int rc = pond_test_run(openssl, NULL, "security-tls-openssl", NULL);
	cr_assert_eq(rc, 0, "openssl failed");

	ic_start(&svc, "security-tls", NULL);
	port = pond_test_free_port();
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%u", port);
	snprintf(e_cert, sizeof(e_cert), "POND_TLS_CERT=%s", cert);
	snprintf(e_key, sizeof(e_key), "POND_TLS_KEY=%s", key);
	restart(&svc, NULL, url, env, "security-tls-ingest");

	ic_batch_add_json(&batch,
	                  "{\"event_id\": \"e1\", \"customer_key\": \"c1\", "
	                  "\"occurred_at\": \"" IC_EVENT_TIME
	                  "\", \"interaction\": {\"kind\": \"message\"}}");
	packed = ic_batch_pack(&batch, svc.token);

	/* A client that trusts the certificate. */
	cr_assert_eq(nng_req0_open(&sock), 0);
	cr_assert_eq(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 20000), 0);
	cr_assert_eq(nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, 0), 0);
	cr_assert_eq(nng_dialer_create(&d, sock, url), 0);
	cr_assert_eq(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT), 0);
	cr_assert_eq(nng_tls_config_ca_file(cfg, cert), 0);
	cr_assert_eq(nng_tls_config_server_name(cfg, "localhost"), 0);
	cr_assert_eq(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED),
	             0);
	cr_assert_eq(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg), 0);
	cr_assert_eq(nng_dialer_start(d, 0), 0);
	ack = nng_call(sock, packed.data, packed.len);
	cr_assert_not_null(ack, "no answer over TLS");
	cr_assert_null(ack->batch_error);
	cr_assert_str_eq(ic_ack_result(ack, 0).status, "accepted");
	ic_ack_free(ack);
	nng_close(sock);
	nng_tls_config_free(cfg);

	/* Plain TCP to the TLS port: the handshake fails, no answer. */
	char plain[64];
	snprintf(plain, sizeof(plain), "tcp://127.0.0.1:%u", port);
	nng_msg *msg = NULL;
	cr_assert_eq(nng_req0_open(&sock), 0);
	cr_assert_eq(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 2000), 0);
	cr_assert_eq(nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 2000), 0);
	cr_assert_eq(nng_dial(sock, plain, NULL, NNG_FLAG_NONBLOCK), 0);
	if (nng_send(sock, packed.data, packed.len, 0) == 0) {
		cr_assert_neq(nng_recvmsg(sock, &msg, 0), 0,
		              "plain TCP got an answer from the TLS port");
	}
	nng_close(sock);

	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             1);
	ic_bytes_free(&packed);
	ic_batch_free(&batch);
	cr_assert_eq(ic_stop(&svc), 0);
	pond_test_db_drop(svc.dsn);
}
