/*
 * test_scheduler_faults.c - the touch lifecycle when things break.
 *
 * - the gateway is down for a while: touches stay committed and due (the
 *   due-queue depth in /metrics shows them), are sent again and again,
 *   and once it is back each is delivered exactly once (the gateway's
 *   ledger of taken ids has each once) and sent exactly once;
 * - the gateway acks every id twice, and re-acks the previous batch:
 *   still one sent per touch;
 * - the gateway crashes on a batch before acking it and comes back: the
 *   batch is resent and each touch taken once;
 * - the scheduler is SIGKILLed while its batch waits on a stalled
 *   gateway; after a restart and the lease running out every touch is
 *   sent, none is lost, none made twice.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_scheduler.h"

/* send_interactions sends n interactions (customers PREFIX0..) at 12:00
 * local on Monday 5 January, the clock's time. */
static void
send_interactions(sw_world *w, const char *prefix, int n)
{
	char events[8192] = "";

	for (int i = 0; i < n; i++) {
		char ev[256];
		snprintf(
		        ev, sizeof(ev),
		        "%s{\"event_id\": \"%s%d\", \"customer_key\": "
		        "\"%s%d\", \"occurred_at\": \"2026-01-05T04:00:00Z\", "
		        "\"interaction\": {\"kind\": \"message\"}}",
		        i == 0 ? "" : ",", prefix, i, prefix, i);
		strcat(events, ev);
	}
	sw_send(w, "%s", events);
}

/* ledger_lines counts the lines of the gateway's ledger and the distinct
 * ones. */
static void
ledger_lines(sw_world *w, int *lines, int *distinct)
{
	char line[512], seen[64][512];
	FILE *f = fopen(w->gw_ledger, "r");

	*lines = *distinct = 0;
	cr_assert_not_null(f, "%s", w->gw_ledger);
	while (fgets(line, sizeof(line), f) != NULL) {
		int dup = 0;
		(*lines)++;
		for (int i = 0; i < *distinct; i++) {
			dup |= strcmp(seen[i], line) == 0;
		}
		if (!dup && *distinct < 64) {
			strcpy(seen[(*distinct)++], line);
		}
	}
	fclose(f);
}

/* assert_sent_once checks that n touches were sent, each once, and that
 * the gateway took each once. */
static void
assert_sent_once(sw_world *w, int n)
{
	int lines, distinct;

	cr_assert_eq(sw_sql_int(w, "SELECT count(*) FROM touch_changes WHERE "
	                           "state = 'sent'"),
	             n);
	cr_assert_eq(sw_sql_int(w, "SELECT count(DISTINCT touch_id) FROM "
	                           "touch_changes WHERE state = 'sent'"),
	             n);
	ledger_lines(w, &lines, &distinct);
	cr_assert_eq(lines, n);
	cr_assert_eq(distinct, n);
}

static void
campaign(sw_world *w)
{
	free(sw_campaign(w, "{\"id\": \"c1\", \"name\": \"reply\", "
	                    "\"channel\": \"wecom_message\", \"template\": "
	                    "\"t\", \"trigger\": {\"event\": "
	                    "\"interaction\"}, \"cost_per_touch_fen\": 3}"));
}

Test(scheduler_faults, gateway_down_then_back_each_delivered_once)
{
	static const char *const env[] = {"POND_TOUCH_RESEND_S=1", NULL};
	static const char *const gw_env[] = {"POND_GATEWAY_DELIVER_PCT=100",
	                                     NULL};
	sw_world w;

	sw_start(&w, "sched-down", env);
	campaign(&w);
	sw_clock(&w, "2026-01-05T04:00:00Z");
	send_interactions(&w, "d", 10);
	sw_settle(&w);
	/* No gateway: every touch is tried at least twice and stays due. */
	sw_wait_int(&w, 10, 20000,
	            "SELECT count(*) FROM touches WHERE state = 'scheduled' "
	            "AND attempts >= 2");
	cr_assert_eq(sw_metric(&w, 0, "pond_scheduler_due_queue_depth"), 10);
	cr_assert_eq(sw_metric(&w, 0,
	                       "pond_scheduler_touches_total{state="
	                       "\"scheduled\"}"),
	             10);
	sw_gateway_start(&w, gw_env);
	sw_wait_int(&w, 10, 30000,
	            "SELECT count(*) FROM touches WHERE delivered_at IS NOT "
	            "NULL");
	assert_sent_once(&w, 10);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "cost_fen = 3 AND sent_at IS NOT NULL"),
	             10);
	sw_wait_int(&w, 10, 20000,
	            "SELECT count(*) FROM touch_changes WHERE state = "
	            "'delivered'");
	cr_assert_eq(sw_metric(&w, 0, "pond_scheduler_due_queue_depth"), 0);
	sw_stop(&w);
}

Test(scheduler_faults, gateway_acks_twice_no_double_state)
{
	sw_world w;

	sw_start(&w, "sched-twice", NULL);
	sw_gateway_control(&w, "ack_twice");
	sw_gateway_start(&w, NULL);
	campaign(&w);
	sw_clock(&w, "2026-01-05T04:00:00Z");
	send_interactions(&w, "a", 5);
	sw_wait_int(&w, 5, 20000,
	            "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL");
	/* A second round: its ack repeats the first round's ids too. */
	send_interactions(&w, "b", 5);
	sw_wait_int(&w, 10, 20000,
	            "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL");
	sw_settle(&w);
	usleep(300000);
	assert_sent_once(&w, 10);
	sw_stop(&w);
}

Test(scheduler_faults, sigkill_mid_dispatch_loses_none_makes_none_twice)
{
	sw_world w;

	sw_start(&w, "sched-kill", NULL);
	sw_gateway_control(&w, "stall");
	sw_gateway_start(&w, NULL);
	campaign(&w);
	sw_clock(&w, "2026-01-05T04:00:00Z");
	send_interactions(&w, "k", 10);
	/* Leased and in flight to the stalled gateway. */
	sw_wait_int(&w, 10, 20000,
	            "SELECT count(*) FROM touches WHERE lease_until IS NOT "
	            "NULL AND state = 'scheduled'");
	sw_kill_scheduler(&w, 0);
	/* More events while it is down. */
	send_interactions(&w, "m", 5);
	sw_scheduler_start(&w, 0);
	sw_gateway_control(&w, "normal");
	/* The leases (POND_TOUCH_RESEND_S, 30 s) run out on the clock. */
	sw_clock(&w, "2026-01-05T04:00:31Z");
	sw_wait_int(&w, 15, 30000,
	            "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL");
	sw_settle(&w);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches"), 15);
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touch_changes WHERE "
	                            "state = 'scheduled'"),
	             15);
	assert_sent_once(&w, 15);
	sw_stop(&w);
}

Test(scheduler_faults, gateway_crash_and_restart_dedupes_by_ledger)
{
	static const char *const env[] = {"POND_TOUCH_RESEND_S=1", NULL};
	static const char *const crashy[] = {"POND_GATEWAY_CRASH_AFTER=3",
	                                     NULL};
	sw_world w;
	int status = 0;

	sw_start(&w, "sched-gwcrash", env);
	sw_gateway_start(&w, crashy);
	campaign(&w);
	sw_clock(&w, "2026-01-05T04:00:00Z");
	send_interactions(&w, "a", 3);
	sw_wait_int(&w, 3, 20000,
	            "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL");
	/* The next batch finds 3 taken already: the gateway dies on it
	 * before acking. */
	send_interactions(&w, "b", 3);
	cr_assert_eq(pond_test_wait_exit(w.gw, 20000, &status), 0);
	cr_assert_eq(status, 70);
	pond_test_stop(w.gw);
	w.gw = NULL;
	cr_assert_eq(sw_sql_int(&w, "SELECT count(*) FROM touches WHERE "
	                            "sent_at IS NOT NULL"),
	             3);
	/* Back without the fault (its ledger reloaded): the three unacked
	 * touches are resent and taken once each. */
	sw_gateway_start(&w, NULL);
	sw_wait_int(&w, 6, 20000,
	            "SELECT count(*) FROM touches WHERE sent_at IS NOT NULL");
	sw_settle(&w);
	assert_sent_once(&w, 6);
	sw_stop(&w);
}
