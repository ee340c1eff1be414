/*
 * ingest_client.c - the ingest tests' service, batches and clients (see
 * ingest_client.h).
 *
 * The batch is packed by hand as an IngestBatchFrame (token, then each
 * event as bytes): on the wire that is exactly an IngestBatch, and it lets
 * a test put bytes in a batch that no Pond__Event could produce.
 */
#include "ingest_client.h"

#include <criterion/criterion.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pbjson.h"
#include "pond/event.pb-c.h"

/* --- the service ------------------------------------------------------------
 */

/* ic_cli_add_publisher runs `pond publishers add NAME` and keeps the token
 * it prints once. */
static void
ic_cli_add_publisher(ic_service *svc, const char *name)
{
	char dsn_kv[POND_TEST_DSN_LEN + 16], log[80];
	const char *argv[] = {"pond", "publishers", "add", name, NULL};
	const char *env[] = {dsn_kv, "POND_LOG_LEVEL", NULL};
	char *out = NULL;
	int status;

	snprintf(dsn_kv, sizeof(dsn_kv), "POND_DSN=%s", svc->dsn);
	snprintf(log, sizeof(log), "%s-cli", svc->log_name);
	status = pond_test_run(argv, env, log, &out);
	cr_assert_eq(status, 0, "pond publishers add %s exited %d", name,
	             status);
	cr_assert_not_null(out);
	out[strcspn(out, "\r\n")] = '\0';
	cr_assert(strlen(out) > 0 && strlen(out) < sizeof(svc->token),
	          "pond publishers add printed '%s', not a token", out);
	snprintf(svc->token, sizeof(svc->token), "%s", out);
	free(out);
}

void
ic_start(ic_service *svc, const char *log_name, const char *const *extra_env)
{
	char sql[200];

	memset(svc, 0, sizeof(*svc));
	snprintf(svc->log_name, sizeof(svc->log_name), "%s", log_name);
	pond_test_require_pg();
	pond_test_db_create_migrated(svc->dsn, sizeof(svc->dsn),
	                             IC_PARTITIONS);
	pond_test_clock_file(svc->clock, sizeof(svc->clock));
	ic_cli_add_publisher(svc, "acme");
	snprintf(sql, sizeof(sql),
	         "SELECT id FROM publishers WHERE name = 'acme'");
	svc->publisher_id = pond_test_sql_int(svc->dsn, sql);

	svc->http_port = pond_test_free_port();
	snprintf(svc->nng_url, sizeof(svc->nng_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	snprintf(svc->pub_url, sizeof(svc->pub_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	ic_spawn(svc, NULL, extra_env, log_name);
}

void
ic_spawn(ic_service *svc, const char *dsn_extra, const char *const *extra_env,
         const char *log_name)
{
	char e_dsn[POND_TEST_DSN_LEN + 80], e_port[32], e_url[96], e_pub[96];
	char e_clock[PATH_MAX + 32];
	const char *env[32];
	size_t n = 0;

	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s%s%s", svc->dsn,
	         dsn_extra != NULL ? " " : "",
	         dsn_extra != NULL ? dsn_extra : "");
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
	for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++) {
		cr_assert(n < sizeof(env) / sizeof(env[0]) - 1);
		env[n++] = extra_env[i];
	}
	env[n] = NULL;
	snprintf(svc->log_name, sizeof(svc->log_name), "%s", log_name);
	svc->proc = pond_test_spawn("pond-ingest", env, log_name);
	pond_test_wait_ready(svc->proc, svc->http_port, "/healthz", 30000);
}

void
ic_add_api_tokens(const char *dsn, const char *admin, const char *read)
{
	const char *params[] = {admin, read};
	PGconn *conn = pond_test_pg_connect(dsn);
	PGresult *res = PQexecParams(
	        conn,
	        "INSERT INTO api_tokens (name, role, token_hash) VALUES "
	        "('adm', 'admin', sha256(convert_to($1, 'UTF8'))), "
	        "('rd', 'read', sha256(convert_to($2, 'UTF8')))",
	        2, NULL, params, NULL, NULL, 0);

	cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s",
	             PQerrorMessage(conn));
	PQclear(res);
	PQfinish(conn);
}

void
ic_dump_threads(const ic_service *svc)
{
	char pid[16];
	const char *argv[] = {
	        "/usr/bin/gdb",        "-p", pid, "-batch", "-ex",
	        "thread apply all bt", NULL};

	snprintf(pid, sizeof(pid), "%d", (int)pond_test_proc_pid(svc->proc));
	(void)pond_test_run(argv, NULL, svc->log_name, NULL);
}

int
ic_wait_exit(ic_service *svc, int timeout_ms, int *status)
{
	if (pond_test_wait_exit(svc->proc, timeout_ms, status) == 0) {
		return (0);
	}
	ic_dump_threads(svc);
	return (POND_ETIMEDOUT);
}

int
ic_stop(ic_service *svc)
{
	int status;

	/* A service stuck in its shutdown leaves its threads' stacks in its
	 * log before it is killed. */
	pond_test_kill(svc->proc, SIGTERM);
	if (ic_wait_exit(svc, IC_STOP_MS, &status) != 0) {
		pond_test_kill(svc->proc, SIGKILL);
	}
	status = pond_test_stop(svc->proc);
	svc->proc = NULL;
	return (status);
}

long long
ic_add_publisher(const char *dsn, const char *name, const char *token)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	const char *params[] = {name, token};
	PGresult *res;
	long long id;

	res = PQexecParams(conn,
	                   "INSERT INTO publishers (name, token_hash) VALUES "
	                   "($1, sha256(convert_to($2, 'UTF8'))) RETURNING id",
	                   2, NULL, params, NULL, NULL, 0);
	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK,
	             "cannot add publisher %s: %s", name,
	             PQerrorMessage(conn));
	id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(conn);
	return (id);
}

double
ic_metric(const ic_service *svc, const char *series)
{
	pond_test_http_resp resp;
	size_t n = strlen(series);
	double value = -1;

	cr_assert_eq(pond_test_http("GET", svc->http_port, "/metrics", NULL,
	                            NULL, 0, &resp),
	             0, "GET /metrics failed");
	cr_assert_eq(resp.status, 200);
	for (const char *line = resp.body; line != NULL && *line != '\0';) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ') {
			value = strtod(line + n + 1, NULL);
			break;
		}
		line = strchr(line, '\n');
		line = line != NULL ? line + 1 : NULL;
	}
	pond_test_http_resp_free(&resp);
	return (value);
}

/* --- events and batches
 * ------------------------------------------------------
 */

ic_bytes
ic_bytes_copy(const void *p, size_t n)
{
	ic_bytes b = {0};

	ic_bytes_append(&b, p, n);
	return (b);
}

void
ic_bytes_append(ic_bytes *b, const void *p, size_t n)
{
	/* One spare byte, so even an empty string has an allocation. */
	if (b->data == NULL || b->len + n + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 64;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		uint8_t *grown = realloc(b->data, cap);
		cr_assert_not_null(grown, "out of memory");
		b->data = grown;
		b->cap = cap;
	}
	if (n > 0) {
		memcpy(b->data + b->len, p, n);
	}
	b->len += n;
}

void
ic_bytes_free(ic_bytes *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *
ic_hex(const void *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *s = p;
	char *hex = malloc(2 * n + 1);

	cr_assert_not_null(hex, "out of memory");
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[s[i] >> 4];
		hex[2 * i + 1] = digits[s[i] & 15];
	}
	hex[2 * n] = '\0';
	return (hex);
}

ic_bytes
ic_event_json(const char *json)
{
	json_error_t jerr;
	json_t *root = json_loads(json, 0, &jerr);
	ProtobufCMessage *msg = NULL;
	pond_pbjson_error err;
	ic_bytes b = {0};
	size_t len;

	cr_assert_not_null(root, "test event is not JSON (%s): %s", jerr.text,
	                   json);
	cr_assert_eq(pond_pbjson_decode(&pond__event__descriptor, root, NULL,
	                                &msg, &err),
	             0, "test event is not a pond.Event (%s: %s): %s",
	             err.path, err.message, json);
	json_decref(root);
	len = protobuf_c_message_get_packed_size(msg);
	b.data = malloc(len + 1);
	cr_assert_not_null(b.data, "out of memory");
	b.cap = len + 1;
	b.len = protobuf_c_message_pack(msg, b.data);
	protobuf_c_message_free_unpacked(msg, NULL);
	return (b);
}

ic_bytes
ic_event_jsonf(const char *fmt, ...)
{
	va_list ap;
	char *json;
	ic_bytes b;

	va_start(ap, fmt);
	cr_assert(vasprintf(&json, fmt, ap) >= 0, "out of memory");
	va_end(ap);
	b = ic_event_json(json);
	free(json);
	return (b);
}

static void
ic_varint_append(ic_bytes *b, uint64_t v)
{
	uint8_t buf[10];
	size_t n = 0;

	do {
		buf[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0) {
			buf[n] |= 0x80;
		}
		n++;
	} while (v != 0);
	ic_bytes_append(b, buf, n);
}

void
ic_field_append(ic_bytes *b, uint32_t number, const void *p, size_t n)
{
	ic_varint_append(b, (uint64_t)number << 3 | 2);
	ic_varint_append(b, n);
	ic_bytes_append(b, p, n);
}

void
ic_varint_field_append(ic_bytes *b, uint32_t number, uint64_t v)
{
	ic_varint_append(b, (uint64_t)number << 3 | 0);
	ic_varint_append(b, v);
}

void
ic_batch_add(ic_batch *b, ic_bytes ev)
{
	if (b->n == b->cap) {
		size_t cap = b->cap > 0 ? 2 * b->cap : 16;
		ic_bytes *grown = realloc(b->events, cap * sizeof(*grown));

		cr_assert_not_null(grown, "out of memory");
		b->events = grown;
		b->cap = cap;
	}
	b->events[b->n++] = ev;
}

void
ic_batch_add_json(ic_batch *b, const char *json)
{
	ic_batch_add(b, ic_event_json(json));
}

ic_bytes
ic_batch_pack(const ic_batch *b, const char *token)
{
	ic_bytes out = {0};

	/* IngestBatch: token = 1 (string), events = 2 (repeated Event). */
	if (token != NULL && *token != '\0') {
		ic_field_append(&out, 1, token, strlen(token));
	}
	for (size_t i = 0; i < b->n; i++) {
		ic_field_append(&out, 2, b->events[i].data, b->events[i].len);
	}
	if (out.data == NULL) {
		ic_bytes_append(&out, "", 0);
	}
	return (out);
}

void
ic_batch_free(ic_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		ic_bytes_free(&b->events[i]);
	}
	free(b->events);
	memset(b, 0, sizeof(*b));
}

/* --- NNG
 * -----------------------------------------------------------------------
 */

void
ic_nng_open(ic_nng *c, const char *url, int timeout_ms)
{
	int rv;

	cr_assert_eq(rv = nng_req0_open(&c->sock), 0, "nng_req0_open: %s",
	             nng_strerror(rv));
	cr_assert_eq(nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, timeout_ms),
	             0);
	cr_assert_eq(nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, timeout_ms),
	             0);
	/* Longer than any test: a batch is sent once. */
	cr_assert_eq(nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	                               3600 * 1000),
	             0);
	cr_assert_eq(
	        nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 16u << 20), 0);
	rv = nng_dial(c->sock, url, NULL, 0);
	cr_assert_eq(rv, 0, "cannot dial %s: %s", url, nng_strerror(rv));
}

void
ic_nng_close(ic_nng *c)
{
	nng_close(c->sock);
}

int
ic_nng_call(ic_nng *c, const void *req, size_t len, Pond__IngestAck **ack)
{
	void *reply = NULL;
	size_t reply_len = 0;
	int rv;

	*ack = NULL;
	/* nng_send copies the bytes; the caller keeps its buffer. */
	if ((rv = nng_send(c->sock, (void *)req, len, 0)) != 0 ||
	    (rv = nng_recv(c->sock, &reply, &reply_len, NNG_FLAG_ALLOC)) !=
	            0) {
		return (rv == NNG_ETIMEDOUT ? POND_ETIMEDOUT : POND_EIO);
	}
	*ack = pond__ingest_ack__unpack(NULL, reply_len, reply);
	nng_free(reply, reply_len);
	return (*ack != NULL ? 0 : POND_EINVAL);
}

Pond__IngestAck *
ic_nng_send(ic_nng *c, const ic_batch *b, const char *token)
{
	ic_bytes req = ic_batch_pack(b, token);
	Pond__IngestAck *ack;
	int rv = ic_nng_call(c, req.data, req.len, &ack);

	ic_bytes_free(&req);
	cr_assert_eq(rv, 0, "no IngestAck for a batch of %zu events: %s", b->n,
	             pond_strerror(rv));
	return (ack);
}

void
ic_ack_free(Pond__IngestAck *ack)
{
	if (ack != NULL) {
		pond__ingest_ack__free_unpacked(ack, NULL);
	}
}

/* --- HTTP
 * ----------------------------------------------------------------------
 */

int
ic_http_post(uint16_t port, const char *token, const char *body, size_t len,
             pond_test_http_resp *resp)
{
	char auth[IC_TOKEN_LEN + 32];
	const char *headers[] = {"Content-Type: application/json", NULL, NULL};

	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		         token);
		headers[1] = auth;
	}
	return (pond_test_http("POST", port, "/v1/events", headers, body,
	                       len > 0 ? len : strlen(body), resp));
}

json_t *
ic_http_events(const ic_service *svc, const char *body, int *status)
{
	pond_test_http_resp resp;
	json_t *answer;
	int rv = ic_http_post(svc->http_port, svc->token, body, 0, &resp);

	cr_assert_eq(rv, 0, "POST /v1/events: no answer (%s)",
	             pond_strerror(rv));
	*status = resp.status;
	answer = pond_test_json(resp.body);
	pond_test_http_resp_free(&resp);
	return (answer);
}

/* --- results
 * -------------------------------------------------------------------
 */

ic_result
ic_json_result(const json_t *answer, size_t i)
{
	json_t *results = json_object_get(answer, "results");
	json_t *r = json_array_get(results, i);
	json_t *code;
	ic_result out;

	cr_assert(json_is_object(r), "the answer has no result %zu", i);
	out.event_id = json_string_value(json_object_get(r, "event_id"));
	out.status = json_string_value(json_object_get(r, "status"));
	code = json_object_get(r, "code");
	out.code = json_is_string(code) ? json_string_value(code) : "";
	cr_assert(out.event_id != NULL && out.status != NULL,
	          "result %zu lacks event_id or status", i);
	return (out);
}

ic_result
ic_ack_result(const Pond__IngestAck *ack, size_t i)
{
	ic_result out;

	cr_assert(ack->batch_error == NULL, "batch_error %s: %s",
	          ack->batch_error != NULL ? ack->batch_error->code : "",
	          ack->batch_error != NULL ? ack->batch_error->message : "");
	cr_assert_lt(i, ack->n_results, "the ack has no result %zu", i);
	out.event_id = ack->results[i]->event_id;
	out.status = ack->results[i]->status;
	out.code = ack->results[i]->code;
	return (out);
}

void
ic_send_accepted(const ic_service *svc, const char *events)
{
	char *body;
	int status;

	cr_assert(asprintf(&body, "{\"events\": [%s]}", events) >= 0);
	json_t *answer = ic_http_events(svc, body, &status);
	cr_assert_eq(status, 200, "%s", body);
	json_t *results = json_object_get(answer, "results");
	for (size_t i = 0; i < json_array_size(results); i++) {
		ic_result r = ic_json_result(answer, i);
		cr_assert_str_eq(r.status, "accepted", "%s: %s %s", r.event_id,
		                 r.status, r.code);
	}
	json_decref(answer);
	free(body);
}

void
ic_vsend_accepted(const ic_service *svc, const char *fmt, va_list ap)
{
	char *events;

	cr_assert(vasprintf(&events, fmt, ap) >= 0);
	ic_send_accepted(svc, events);
	free(events);
}
