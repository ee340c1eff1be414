/*
 * test_reporting_goals.c - SMART goals measured by the report code, and
 * the reports over NNG REQ/REP.
 */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pond/report.pb-c.h"
#include "test_reporting.h"

/* clang-format off */
#define ADD(ch) "\"contact_added\": {\"channel\": \"" ch "\"}"
#define SPEND(id, at, fen)                                                    \
	"{\"event_id\": \"" id "\", \"occurred_at\": \"" at                   \
	"\", \"channel_spend\": {\"channel\": \"cards\", "                    \
	"\"amount_fen\": " fen ", \"item\": \"cards\", \"quantity\": 1}}"
/* clang-format on */

static json_t *
goal_of(json_t *list, const char *id)
{
	json_t *g;
	size_t i;

	json_array_foreach(json_object_get(list, "goals"), i, g)
	{
		if (strcmp(json_string_value(json_object_get(g, "id")), id) ==
		    0) {
			return (g);
		}
	}
	cr_assert_fail("no goal %s", id);
	return (NULL);
}

/* clang-format off */
#define NEW_CARDS                                                             \
	"{\"metric\": \"acquisition.new_customers\", \"params\": "            \
	"{\"channel\": \"cards\"}, \"baseline_from\": \"2025-11-01\", "       \
	"\"baseline_to\": \"2025-11-08\", \"from\": \"2025-12-01\", "         \
	"\"deadline\": \"2025-12-11\", \"target\": 6}"
#define CHEAPER                                                               \
	"{\"metric\": \"acquisition.cac_fen\", \"params\": {\"channel\": "    \
	"\"cards\"}, \"baseline_from\": \"2025-11-01\", \"baseline_to\": "    \
	"\"2025-11-08\", \"from\": \"2025-12-01\", \"deadline\": "            \
	"\"2025-12-11\", \"target_change\": -0.5}"
/* clang-format on */

Test(reporting_goals, progress_and_on_track, .timeout = 120)
{
	rw_world w;
	json_t *r, *g;

	rw_start(&w, "rpt-goals", NULL);
	/* Now is 12-06 00:00Z (local 08:00). */
	pond_test_clock_write(w.ingest.clock, "2025-12-06T00:00:00Z");
	/*
	 * Baseline, local 11-01 .. 11-08: 2 cards customers, spend 1000:
	 * CAC 500. Current, local 12-01 .. now: 4 cards customers, spend
	 * 1200: CAC 300.
	 * Goal "new": target 6: progress (4 - 2) / (6 - 2) = 0.5. Time
	 * elapsed: from local 12-01 (11-30 16:00Z) to now is 128 h of the
	 * 240 h to the deadline (local 12-11): 128 / 240 > 0.5, so not on
	 * track.
	 * Goal "cheaper": CAC -50 % -> target 250; progress (300 - 500) /
	 * (250 - 500) = 0.8 >= 128 / 240: on track.
	 */
	/* clang-format off */
	rw_send(&w, EV("x1", "x1", "2025-11-02T00:00:00Z", ADD("cards")) "," EV("x2", "x2", "2025-11-03T00:00:00Z", ADD("cards")) "," SPEND(
	                    "sx", "2025-11-03T00:00:00Z",
	                    "1000") "," EV("y1", "y1", "2025-12-01T00:00:00Z",
	                                   ADD("cards")) "," EV("y2", "y2",
	                                                        "2025-12-"
	                                                        "02T00:00:00Z",
	                                                        ADD("cards")) "," EV("y3",
	                                                                             "y3",
	                                                                             "2025-12-03T00:00:00Z",
	                                                                             ADD("cards")) "," EV("y4",
	                                                                                                  "y4",
	                                                                                                  "2025-12-04T00:00:00Z",
	                                                                                                  ADD("cards")) "," SPEND("sy",
	                                                                                                                          "2025-12-02T00:00:00Z",
	                                                                                                                          "1200"));
	/* clang-format on */
	rw_settle(&w);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/new",
	                     NEW_CARDS, NULL),
	             200);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/cheaper",
	                     CHEAPER, NULL),
	             200);
	r = rw_get(&w, "/v1/goals");
	g = goal_of(r, "new");
	RW_NUM(g, "baseline", 2);
	RW_NUM(g, "current", 4);
	RW_NUM(g, "progress", 0.5);
	RW_NUM(g, "time_elapsed", 128.0 / 240.0);
	cr_assert(json_is_false(json_object_get(g, "on_track")));
	g = goal_of(r, "cheaper");
	RW_NUM(g, "baseline", 500);
	RW_NUM(g, "target_value", 250);
	RW_NUM(g, "current", 300);
	RW_NUM(g, "progress", (300.0 - 500.0) / (250.0 - 500.0));
	cr_assert(json_is_true(json_object_get(g, "on_track")));
	json_decref(r);

	/* A fifth cards customer: progress (5 - 2) / 4 = 0.75, on track. */
	rw_send(&w, EV("y5", "y5", "2025-12-05T00:00:00Z", ADD("cards")));
	rw_settle(&w);
	r = rw_get(&w, "/v1/goals");
	g = goal_of(r, "new");
	RW_NUM(g, "progress", 0.75);
	cr_assert(json_is_true(json_object_get(g, "on_track")));
	json_decref(r);

	/* Who may write, what is refused, and the limit of three. */
	cr_assert_eq(rw_http(&w, "PUT", RW_READ_TOKEN, "/v1/goals/g3",
	                     NEW_CARDS, NULL),
	             403);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/bad",
	                     "{\"metric\": \"acquisition.nothing\", "
	                     "\"baseline_from\": \"2025-11-01\", "
	                     "\"baseline_to\": \"2025-11-08\", \"deadline\": "
	                     "\"2026-02-01\", \"target\": 1}",
	                     NULL),
	             400);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/bad",
	                     "{not json", NULL),
	             400);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/g3",
	                     NEW_CARDS, NULL),
	             200);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/g4",
	                     NEW_CARDS, NULL),
	             409);
	cr_assert_eq(rw_http(&w, "DELETE", RW_ADMIN_TOKEN, "/v1/goals/g3",
	                     NULL, NULL),
	             200);
	cr_assert_eq(rw_http(&w, "DELETE", RW_ADMIN_TOKEN, "/v1/goals/g3",
	                     NULL, NULL),
	             404);
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/g4",
	                     NEW_CARDS, NULL),
	             200);
	rw_stop(&w);
}

/* nng_raw sends len bytes as a request and returns the ReportReply (the
 * caller frees), failing the test when there is none. */
static Pond__ReportReply *
nng_raw(rw_world *w, const void *req, size_t len)
{
	nng_socket sock;
	void *buf;

	cr_assert_eq(nng_req0_open(&sock), 0);
	cr_assert_eq(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 30000), 0);
	cr_assert_eq(nng_dial(sock, w->nng_url, NULL, 0), 0);
	cr_assert_eq(nng_send(sock, (void *)req, len, 0), 0);
	cr_assert_eq(nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC), 0);
	Pond__ReportReply *reply = pond__report_reply__unpack(NULL, len, buf);
	nng_free(buf, len);
	nng_close(sock);
	cr_assert_not_null(reply);
	return (reply);
}

/* nng_report asks over NNG and returns the reply (the caller frees). */
static Pond__ReportReply *
nng_report(rw_world *w, const char *token, const char *report,
           const char *const *kv)
{
	Pond__ReportRequest req = POND__REPORT_REQUEST__INIT;
	Pond__ReportRequest__ParamsEntry entries[8], *ptrs[8];
	size_t n = 0;
	void *buf;
	size_t len;

	for (; kv != NULL && kv[2 * n] != NULL; n++) {
		pond__report_request__params_entry__init(&entries[n]);
		entries[n].key = (char *)kv[2 * n];
		entries[n].value = (char *)kv[2 * n + 1];
		ptrs[n] = &entries[n];
	}
	req.token = (char *)token;
	req.report = (char *)report;
	req.n_params = n;
	req.params = ptrs;
	len = pond__report_request__get_packed_size(&req);
	buf = malloc(len);
	pond__report_request__pack(&req, buf);
	Pond__ReportReply *reply = nng_raw(w, buf, len);
	free(buf);
	return (reply);
}

Test(reporting_goals, reports_over_nng, .timeout = 120)
{
	rw_world w;
	Pond__ReportReply *reply;

	rw_start(&w, "rpt-nng", NULL);
	/* clang-format off */
	rw_send(&w,
	        EV("x1", "x1", "2025-12-02T00:00:00Z", ADD("cards")) "," SPEND(
	                "sx", "2025-12-02T00:00:00Z", "900"));
	/* clang-format on */
	rw_settle(&w);
	/* The same reply as over HTTP: one cards customer, CAC 900. */
	const char *kv[] = {"from", "2025-12-01", "to", "2025-12-08", NULL};
	reply = nng_report(&w, RW_READ_TOKEN, "acquisition", kv);
	cr_assert_eq(reply->status, 200, "%s", reply->error);
	json_t *nng_json = pond_test_json(reply->json);
	json_t *http_json =
	        rw_get(&w, "/v1/reports/acquisition?from=2025-12-01&to="
	                   "2025-12-08");
	cr_assert(json_equal(nng_json, http_json));
	RW_NUM(rw_row(nng_json, "channel", "cards"), "cac_fen", 900);
	json_decref(nng_json);
	json_decref(http_json);
	pond__report_reply__free_unpacked(reply, NULL);

	reply = nng_report(&w, "api_wrong", "acquisition", kv);
	cr_assert_eq(reply->status, 401);
	pond__report_reply__free_unpacked(reply, NULL);
	const char *bad[] = {"from", "2025-12-01", NULL};
	reply = nng_report(&w, RW_READ_TOKEN, "acquisition", bad);
	cr_assert_eq(reply->status, 400);
	cr_assert_str_eq(reply->error_code, "bad_parameter");
	pond__report_reply__free_unpacked(reply, NULL);
	/* Bad input gets a clear error, and the service goes on. */
	reply = nng_raw(&w, "\xff\xff\xff garbage", 12);
	cr_assert_eq(reply->status, 400);
	cr_assert_str_eq(reply->error_code, "undecodable");
	pond__report_reply__free_unpacked(reply, NULL);
	reply = nng_report(&w, RW_READ_TOKEN, "nothing", NULL);
	cr_assert_eq(reply->status, 404);
	pond__report_reply__free_unpacked(reply, NULL);
	reply = nng_report(&w, RW_READ_TOKEN, "customers/x1", NULL);
	cr_assert_eq(reply->status, 200);
	pond__report_reply__free_unpacked(reply, NULL);

	/* `pond report` runs the same code: --json is the HTTP reply, and
	 * the table has the cards row with its CAC. */
	char e_dsn[600], *out = NULL;
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", w.ingest.dsn);
	const char *env[] = {e_dsn, "POND_TZ=Asia/Shanghai", NULL};
	const char *json_argv[] = {"pond",       "report",     "acquisition",
	                           "--from",     "2025-12-01", "--to",
	                           "2025-12-08", "--as-of",    "2026-01-05",
	                           "--json",     NULL};
	cr_assert_eq(pond_test_run(json_argv, env, "rpt-nng-cli", &out), 0);
	json_t *cli_json = pond_test_json(out);
	http_json = rw_get(&w, "/v1/reports/acquisition?from=2025-12-01&to="
	                       "2025-12-08&as_of=2026-01-05");
	cr_assert(json_equal(cli_json, http_json), "%s", out);
	json_decref(cli_json);
	json_decref(http_json);
	free(out);
	const char *table_argv[] = {"pond",       "report",     "acquisition",
	                            "--from",     "2025-12-01", "--to",
	                            "2025-12-08", NULL};
	cr_assert_eq(pond_test_run(table_argv, env, "rpt-nng-cli", &out), 0);
	cr_assert(strstr(out, "channel") != NULL, "%s", out);
	cr_assert(strstr(out, "cards") != NULL, "%s", out);
	cr_assert(strstr(out, "900") != NULL, "%s", out);
	free(out);
	const char *bad_argv[] = {"pond",   "report",     "acquisition",
	                          "--from", "2025-12-01", NULL};
	cr_assert_eq(pond_test_run(bad_argv, env, "rpt-nng-cli", NULL), 1);
	rw_stop(&w);
}
