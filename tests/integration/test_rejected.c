/*
 * test_rejected.c - fixing and replaying rejected events.
 *
 * POST /v1/rejected/ID/replay (admin token) settles a fixed event as the
 * publisher of the rejected one, marks the row replayed, and is idempotent
 * like any event; `pond rejected list|show|replay` drives it from the
 * command line.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "ingest_client.h"

#define ADMIN_TOKEN "api_test_admin_0123456789"
#define READ_TOKEN  "api_test_read_0123456789"

/* replay posts body to /v1/rejected/ID/replay with token; returns the
 * status and the answer's first result status in result (or ""). */
static int
replay(const ic_service *svc, long long id, const char *token,
       const char *body, char *result, size_t len)
{
	char path[64], auth[160];
	const char *headers[] = {auth, "Content-Type: application/json", NULL};
	pond_test_http_resp resp;
	json_t *answer;

	snprintf(path, sizeof(path), "/v1/rejected/%lld/replay", id);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	cr_assert_eq(pond_test_http("POST", svc->http_port, path, headers,
	                            body, 0, &resp),
	             0);
	snprintf(result, len, "%s", "");
	answer = json_loads(resp.body, 0, NULL);
	json_t *r = json_array_get(json_object_get(answer, "results"), 0);
	if (json_is_string(json_object_get(r, "status"))) {
		snprintf(result, len, "%s",
		         json_string_value(json_object_get(r, "status")));
	}
	json_decref(answer);
	int status = resp.status;
	pond_test_http_resp_free(&resp);
	return (status);
}

Test(rejected, replay_settles_the_fix_as_the_original_publisher)
{
	ic_service svc;
	char result[32];
	int status;

	ic_start(&svc, "rejected-replay", NULL);
	ic_add_api_tokens(svc.dsn, ADMIN_TOKEN, READ_TOKEN);
	json_decref(ic_http_events(
	        &svc,
	        "{\"events\": [{\"event_id\": \"r1\", \"customer_key\": "
	        "\"c1\", "
	        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"order_paid\": "
	        "{\"order_id\": \"o1\", \"amount_fen\": -5}}]}",
	        &status));
	cr_assert_eq(status, 200);
	long long id = pond_test_sql_int(
	        svc.dsn,
	        "SELECT id FROM rejected_events WHERE event_id = 'r1' "
	        "AND code = 'bad_amount'");
	const char *fixed =
	        "{\"event\": {\"event_id\": \"r1\", \"customer_key\": \"c1\", "
	        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"order_paid\": "
	        "{\"order_id\": \"o1\", \"amount_fen\": 500}}}";

	/* A read token may not replay; nor may a publisher's. */
	cr_assert_eq(
	        replay(&svc, id, READ_TOKEN, fixed, result, sizeof(result)),
	        401);
	cr_assert_eq(
	        replay(&svc, id, svc.token, fixed, result, sizeof(result)),
	        401);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             0);

	/* The fix is accepted, stored once, for the original publisher. */
	cr_assert_eq(
	        replay(&svc, id, ADMIN_TOKEN, fixed, result, sizeof(result)),
	        200);
	cr_assert_str_eq(result, "accepted");
	char sql[200];
	snprintf(sql, sizeof(sql),
	         "SELECT count(*) FROM events WHERE event_id = 'r1' AND "
	         "publisher_id = %lld",
	         svc.publisher_id);
	cr_assert_eq(pond_test_sql_int(svc.dsn, sql), 1);
	snprintf(sql, sizeof(sql),
	         "SELECT replayed_at IS NOT NULL FROM rejected_events WHERE "
	         "id = "
	         "%lld",
	         id);
	cr_assert_eq(pond_test_sql_int(svc.dsn, sql), 1);

	/* Replaying again is a duplicate; the publisher re-sending the fixed
	 * event is a duplicate too: one (publisher, event_id), one row. */
	cr_assert_eq(
	        replay(&svc, id, ADMIN_TOKEN, fixed, result, sizeof(result)),
	        200);
	cr_assert_str_eq(result, "duplicate");
	json_t *again = ic_http_events(
	        &svc,
	        "{\"events\": [{\"event_id\": \"r1\", \"customer_key\": "
	        "\"c1\", "
	        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"order_paid\": "
	        "{\"order_id\": \"o1\", \"amount_fen\": 500}}]}",
	        &status);
	ic_result r = ic_json_result(again, 0);
	cr_assert_str_eq(r.status, "duplicate");
	json_decref(again);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             1);

	/* No such row, a body of the wrong shape. */
	cr_assert_eq(replay(&svc, id + 1000, ADMIN_TOKEN, fixed, result,
	                    sizeof(result)),
	             404);
	cr_assert_eq(replay(&svc, id, ADMIN_TOKEN, "{\"events\": []}", result,
	                    sizeof(result)),
	             400);
	cr_assert_eq(ic_stop(&svc), 0);
}

Test(rejected, replay_still_wrong_is_rejected_and_not_marked)
{
	ic_service svc;
	char result[32], sql[160];
	int status;

	ic_start(&svc, "rejected-again", NULL);
	ic_add_api_tokens(svc.dsn, ADMIN_TOKEN, READ_TOKEN);
	json_decref(ic_http_events(
	        &svc,
	        "{\"events\": [{\"event_id\": \"r2\", \"customer_key\": "
	        "\"c2\", "
	        "\"occurred_at\": \"" IC_EVENT_TIME "\", \"reward_paid\": "
	        "{\"kind\": \"cash\", \"amount_fen\": 100}}]}",
	        &status));
	long long id = pond_test_sql_int(
	        svc.dsn,
	        "SELECT id FROM rejected_events WHERE event_id = 'r2'");
	cr_assert_eq(
	        replay(&svc, id, ADMIN_TOKEN,
	               "{\"event\": {\"event_id\": \"r2\", \"customer_key\": "
	               "\"c2\", \"occurred_at\": \"" IC_EVENT_TIME "\", "
	               "\"reward_paid\": {\"kind\": \"bitcoin\", "
	               "\"amount_fen\": "
	               "100}}}",
	               result, sizeof(result)),
	        200);
	cr_assert_str_eq(result, "rejected");
	snprintf(sql, sizeof(sql),
	         "SELECT replayed_at IS NULL FROM rejected_events WHERE id = "
	         "%lld",
	         id);
	cr_assert_eq(pond_test_sql_int(svc.dsn, sql), 1);
	/* The original row stays the record: no second row for a replay. */
	cr_assert_eq(pond_test_sql_int(svc.dsn,
	                               "SELECT count(*) FROM rejected_events"),
	             1);
	cr_assert_eq(pond_test_sql_int(svc.dsn, "SELECT count(*) FROM events"),
	             0);
	cr_assert_eq(ic_stop(&svc), 0);
}

/* An event rejected as unknown_customer is replayed as it was, from the
 * command line, once its alias has been linked. */
Test(rejected, cli_lists_and_replays_once_the_alias_is_known)
{
	ic_service svc;
	char e_dsn[600], url[64], *out = NULL;
	int status;

	ic_start(&svc, "rejected-cli", NULL);
	ic_add_api_tokens(svc.dsn, ADMIN_TOKEN, READ_TOKEN);
	json_decref(ic_http_events(
	        &svc,
	        "{\"events\": [{\"event_id\": \"a1\", \"aliases\": "
	        "[{\"kind\": "
	        "\"phone\", \"value\": \"13900000000\"}], \"occurred_at\": "
	        "\"" IC_EVENT_TIME
	        "\", \"member_joined\": {\"tier\": \"gold\"}}]}",
	        &status));
	long long id = pond_test_sql_int(
	        svc.dsn,
	        "SELECT id FROM rejected_events WHERE event_id = 'a1' "
	        "AND code = 'unknown_customer'");
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", svc.dsn);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", svc.http_port);
	const char *env[] = {e_dsn, "POND_API_TOKEN=" ADMIN_TOKEN, NULL};

	const char *list[] = {"pond", "rejected", "list", NULL};
	cr_assert_eq(pond_test_run(list, env, "rejected-cli-list", &out), 0);
	cr_assert(strstr(out, "unknown_customer") != NULL, "%s", out);
	free(out);

	/* Now a later event links the phone to customer c7. */
	json_decref(ic_http_events(
	        &svc,
	        "{\"events\": [{\"event_id\": \"a2\", \"customer_key\": "
	        "\"c7\", "
	        "\"aliases\": [{\"kind\": \"phone\", \"value\": "
	        "\"13900000000\"}], \"occurred_at\": \"" IC_EVENT_TIME
	        "\", \"contact_added\": {\"channel\": \"sms\"}}]}",
	        &status));
	char idtext[24];
	snprintf(idtext, sizeof(idtext), "%lld", id);
	const char *rep[] = {"pond",  "rejected", "replay", idtext,
	                     "--url", url,        NULL};
	out = NULL;
	cr_assert_eq(pond_test_run(rep, env, "rejected-cli-replay", &out), 0);
	cr_assert(strstr(out, "\"accepted\"") != NULL, "%s", out);
	free(out);
	cr_assert_eq(
	        pond_test_sql_int(svc.dsn,
	                          "SELECT count(*) FROM events WHERE "
	                          "event_id = 'a1' AND customer_key = 'c7'"),
	        1);
	cr_assert_eq(ic_stop(&svc), 0);
}
