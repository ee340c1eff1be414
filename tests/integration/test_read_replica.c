/*
 * test_read_replica.c - POND_REPORTING_DSN: pond-reporting answers reports
 * from a second store (a streaming replica in production, DESIGN.md
 * "Scaling past one machine") while its consumers and goal changes write
 * the primary.
 *
 * The "replica" here is a second migrated database whose sessions are
 * read-only (default_transaction_read_only, as on a hot standby), holding
 * different facts than the primary: every answer then says which store it
 * came from, and a write routed to it would fail.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "test_reporting.h"

#define ADD(ch) "\"contact_added\": {\"channel\": \"" ch "\"}"

#define GOAL                                                                  \
	"{\"metric\": \"acquisition.new_customers\", \"params\": "            \
	"{\"channel\": \"cards\"}, \"baseline_from\": \"2025-11-01\", "       \
	"\"baseline_to\": \"2025-11-08\", \"from\": \"2025-12-01\", "         \
	"\"deadline\": \"2025-12-11\", \"target\": 6}"

static json_t *
stage(json_t *report, const char *name)
{
	return (rw_row(report, "stage", name));
}

Test(read_replica, reports_read_it_consumers_and_goals_write_the_primary,
     .timeout = 120)
{
	char replica[600], env_dsn[800];
	rw_world w;
	json_t *r;

	pond_test_db_create_migrated(replica, sizeof(replica), IC_PARTITIONS);
	/* What the replica has replicated so far: the API tokens, and one
	 * customer the primary will not have (r1, with a paid order: stage
	 * first_purchase). */
	ic_add_api_tokens(replica, RW_ADMIN_TOKEN, RW_READ_TOKEN);
	pond_test_sql_exec(
	        replica,
	        "INSERT INTO rpt_customers (partition, customer_key, "
	        "first_event_at, first_paid) VALUES (0, 'r1', "
	        "'2025-12-01T00:00:00Z', ARRAY['2025-12-01T01:00:00Z']"
	        "::timestamptz[])");
	snprintf(env_dsn, sizeof(env_dsn),
	         "POND_REPORTING_DSN=%s options='-c "
	         "default_transaction_read_only=on'",
	         replica);
	const char *env[] = {env_dsn, NULL};
	rw_start(&w, "read-replica", env);

	/* Two new customers through ingest: the consumer writes them into the
	 * primary's facts. */
	/* clang-format off */
	rw_send(&w, EV("p1-add", "p1", "2025-12-01T02:00:00Z", ADD("cards")) ","
	            EV("p2-add", "p2", "2025-12-01T03:00:00Z", ADD("cards")));
	/* clang-format on */
	rw_settle(&w);
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM rpt_customers"),
	             2);

	/* The report is the replica's: r1 alone, a first purchase; none of
	 * the primary's two potential customers. */
	r = rw_get(&w, "/v1/reports/lifecycle?as_of=2025-12-02");
	RW_NUM(stage(r, "first_purchase"), "customers", 1);
	RW_NUM(stage(r, "potential"), "customers", 0);
	RW_NUM(json_object_get(r, "total"), "customers", 1);
	json_decref(r);

	/* A goal is written to the primary (the replica's sessions are
	 * read-only: there it would have failed), and the list is read from
	 * the replica, which has not seen it yet. */
	cr_assert_eq(rw_http(&w, "PUT", RW_ADMIN_TOKEN, "/v1/goals/new", GOAL,
	                     NULL),
	             200);
	cr_assert_eq(pond_test_sql_int(w.ingest.dsn,
	                               "SELECT count(*) FROM rpt_goals"),
	             1);
	cr_assert_eq(
	        pond_test_sql_int(replica, "SELECT count(*) FROM rpt_goals"),
	        0);
	r = rw_get(&w, "/v1/goals");
	cr_assert_eq(json_array_size(json_object_get(r, "goals")), 0,
	             "goals are listed from the replica");
	json_decref(r);
	rw_stop(&w);
}
