/*
 * select.c - one campaign selecting one customer: the rules every touch
 * obeys (API.md section 3), in this order, the first that stops it naming
 * the suppression:
 *
 *   window, paused, removed, opt_out   (facts at selection time)
 *   hold-out                           (a pure draw: never sent)
 *   quiet hours                        (not a stop: due_at moves to the
 *                                       window's end, state "deferred")
 *   frequency_cap                      (ledger of the due day and week)
 *   quota                              (campaigns.used under its row lock)
 *
 * The customer's sched_customers row is locked first, so two transactions
 * selecting the same customer (the events and tag_changes consumers, or
 * two replicas) take the ledger one after the other. The touch id comes
 * from the cause, and a touch that exists is never selected again, so a
 * replayed trigger changes nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "scheduler.h"

/* local_date writes the business day of t (and, with monday, the Monday
 * of its week) as YYYY-MM-DD. */
static void
local_date(pond_time t, bool monday, char *buf, size_t len)
{
	time_t secs = (time_t)(t / POND_USEC_PER_SEC);
	struct tm tm;

	localtime_r(&secs, &tm);
	if (monday) {
		tm.tm_mday -= (tm.tm_wday + 6) % 7;
		tm.tm_hour = 12; /* clear of any DST edge */
		tm.tm_isdst = -1;
		secs = mktime(&tm);
		localtime_r(&secs, &tm);
	}
	strftime(buf, len, "%Y-%m-%d", &tm);
}

static int64_t
usec_value(const PGresult *res, int col)
{
	return (PQgetisnull(res, 0, col)
	                ? 0
	                : strtoll(PQgetvalue(res, 0, col), NULL, 10));
}

static const char *
str_value(const PGresult *res, int col)
{
	return (PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col));
}

int
scheduler_audience_holds(PGconn *conn, const scheduler_campaign *c,
                         uint32_t partition, const char *key, pond_time now,
                         bool *holds)
{
#define USEC(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
	char part[16];
	const char *params[] = {part, key};
	PGresult *res;
	int rv;

	*holds = true;
	if (c->audience == NULL) {
		return (POND_OK);
	}
	snprintf(part, sizeof(part), "%" PRIu32, partition);
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT channel, guide_id, store_id, region, industry, "
	             "lifecycle, attributes::text, orders, net_revenue_fen, "
	             "rewards_fen, invitees, " USEC("acquired_at") ", " USEC(
	                     "last_order_at") ", " USEC("last_interaction_"
	                                                "at") ", (SELECT "
	                                                      "string_agg(tag,"
	                                                      " "
	                                                      "E'\\n' ORDER "
	                                                      "BY "
	                                                      "tag) FROM "
	                                                      "customer_tags "
	                                                      "t "
	                                                      "WHERE "
	                                                      "t.partition = "
	                                                      "p.partition "
	                                                      "AND "
	                                                      "t.customer_key "
	                                                      "= "
	                                                      "p.customer_key)"
	                                                      " "
	                                                      "FROM "
	                                                      "customer_"
	                                                      "profiles "
	                                                      "p WHERE "
	                                                      "partition = $1 "
	                                                      "AND "
	                                                      "customer_key "
	                                                      "= $2",
	             2, params)) != 0) {
		return (rv);
	}
#undef USEC
	if (PQntuples(res) == 0) {
		pond_facts none = {.now = now};
		*holds = pond_cond_eval(c->audience, &none);
		PQclear(res);
		return (POND_OK);
	}
	json_t *attrs = json_loads(PQgetvalue(res, 0, 6), 0, NULL);
	char *tagtext = PQgetisnull(res, 0, 14)
	                        ? NULL
	                        : strdup(PQgetvalue(res, 0, 14));
	const char *tags[256];
	size_t ntags = 0;
	for (char *save = NULL,
	          *t = tagtext != NULL ? strtok_r(tagtext, "\n", &save) : NULL;
	     t != NULL && ntags < 256; t = strtok_r(NULL, "\n", &save)) {
		tags[ntags++] = t;
	}
	pond_facts f = {
	        .channel = str_value(res, 0),
	        .guide_id = str_value(res, 1),
	        .store_id = str_value(res, 2),
	        .region = str_value(res, 3),
	        .industry = str_value(res, 4),
	        .lifecycle = str_value(res, 5),
	        .attributes = attrs,
	        .tags = tags,
	        .ntags = ntags,
	        .orders = usec_value(res, 7),
	        .net_revenue_fen = usec_value(res, 8),
	        .rewards_fen = usec_value(res, 9),
	        .invitees = usec_value(res, 10),
	        .added_at = usec_value(res, 11),
	        .last_order_at = usec_value(res, 12),
	        .last_interaction_at = usec_value(res, 13),
	        .now = now,
	};
	*holds = pond_cond_eval(c->audience, &f);
	json_decref(attrs);
	free(tagtext);
	PQclear(res);
	return (POND_OK);
}

/* select_facts locks the customer's row (creating it) and reads whether
 * the contact is removed and whether channel is opted out. */
static int
select_facts(PGconn *conn, const char *part, const char *key,
             const char *channel, bool *removed, bool *opted_out)
{
	const char *params[] = {part, key, channel};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(
	             conn, &res,
	             "INSERT INTO sched_customers (partition, customer_key) "
	             "VALUES ($1, $2) ON CONFLICT (partition, customer_key) "
	             "DO UPDATE SET removed = sched_customers.removed "
	             "RETURNING removed, opted_out && ARRAY[$3, 'all']",
	             3, params)) != 0) {
		return (rv);
	}
	*removed = PQgetvalue(res, 0, 0)[0] == 't';
	*opted_out = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	return (POND_OK);
}

/* select_capped reads the ledger for the day and week of due. */
static int
select_capped(PGconn *conn, const scheduler_rules *rules, const char *part,
              const char *key, const char *day, const char *monday,
              bool *capped)
{
	const char *params[] = {part, key, day, monday};
	PGresult *res;
	int rv;

	*capped = false;
	if (rules->cap_day < 0 && rules->cap_week < 0) {
		return (POND_OK);
	}
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT coalesce(sum(touches) FILTER (WHERE day = "
	             "$3::date), 0), coalesce(sum(touches), 0) FROM "
	             "freq_ledger WHERE partition = $1 AND customer_key = $2 "
	             "AND day >= $4::date AND day < $4::date + 7",
	             4, params)) != 0) {
		return (rv);
	}
	int64_t d = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	int64_t w = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	*capped = (rules->cap_day >= 0 && d >= rules->cap_day) ||
	          (rules->cap_week >= 0 && w >= rules->cap_week);
	return (POND_OK);
}

/* select_quota takes one touch from c's quota; *left false when none. */
static int
select_quota(PGconn *conn, const scheduler_campaign *c, bool *left)
{
	const char *params[] = {c->id};
	PGresult *res;
	int rv;

	*left = true;
	if (c->quota < 0) {
		return (POND_OK);
	}
	if ((rv = pond_pq_query(conn, &res,
	                        "UPDATE campaigns SET used = used + 1 WHERE "
	                        "id = $1 AND used < quota RETURNING used",
	                        1, params)) != 0) {
		return (rv);
	}
	*left = PQntuples(res) == 1;
	PQclear(res);
	return (POND_OK);
}

/* select_params is the campaign's params plus, on a fission reward, the
 * reward itself, as JSON text (the caller frees). */
static char *
select_params(const scheduler_campaign *c, const scheduler_cause *cause)
{
	json_t *p =
	        c->params != NULL ? json_deep_copy(c->params) : json_object();
	char amount[24];
	char *text;

	if (p == NULL) {
		return (NULL);
	}
	if (cause->reward) {
		snprintf(amount, sizeof(amount), "%" PRId64,
		         c->fission_reward_fen);
		json_object_set_new(p, "reward_kind",
		                    json_string(c->fission_reward_kind));
		json_object_set_new(p, "reward_amount_fen",
		                    json_string(amount));
	}
	text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(p);
	return (text);
}

/* select_decide applies the rules; *reason NULL means the touch goes
 * ahead (held_out says whether it is only recorded). */
static int
select_decide(PGconn *conn, const scheduler_rules *rules,
              const scheduler_campaign *c, const scheduler_cause *cause,
              const char *part, pond_time *due, const char **state,
              const char **reason)
{
	pond_time sel = cause->selected_at;
	bool removed, opted_out, capped, left;
	char day[16], monday[16];
	int rv;

	*reason = NULL;
	*state = "scheduled";
	if ((rv = select_facts(conn, part, cause->customer_key, c->channel,
	                       &removed, &opted_out)) != 0) {
		return (rv);
	}
	if ((c->starts_at != 0 && sel < c->starts_at) ||
	    (c->ends_at != 0 && sel >= c->ends_at)) {
		*reason = "window";
	} else if (c->paused) {
		*reason = "paused";
	} else if (removed) {
		*reason = "removed";
	} else if (opted_out) {
		*reason = "opt_out";
	}
	if (*reason != NULL) {
		*state = "suppressed";
		return (POND_OK);
	}
	if (!cause->reward &&
	    scheduler_holdout(c->id, cause->customer_key, c->holdout_pct)) {
		*state = "held_out";
		return (POND_OK);
	}
	/* The touch is due delay_s after its cause, but never before now: a
	 * cause heard late (a backlog, an event that arrived late) is sent
	 * now, and quiet hours are judged at the moment it will really go. */
	pond_time base = sel + c->delay_s * POND_USEC_PER_SEC,
	          now = pond_now();
	if (base < now) {
		base = now;
	}
	*due = scheduler_quiet_end(rules, base);
	if (*due != base) {
		*state = "deferred";
	}
	local_date(*due, false, day, sizeof(day));
	local_date(*due, true, monday, sizeof(monday));
	if (!cause->reward &&
	    (rv = select_capped(conn, rules, part, cause->customer_key, day,
	                        monday, &capped)) != 0) {
		return (rv);
	}
	if (!cause->reward && capped) {
		*reason = "frequency_cap";
	} else if ((rv = select_quota(conn, c, &left)) != 0) {
		return (rv);
	} else if (!left) {
		*reason = "quota";
	}
	if (*reason != NULL) {
		*state = "suppressed";
		*due = 0;
		return (POND_OK);
	}
	if (!cause->reward) {
		const char *params[] = {part, cause->customer_key, day};
		rv = pond_pq_query(
		        conn, NULL,
		        "INSERT INTO freq_ledger (partition, customer_key, "
		        "day, "
		        "touches) VALUES ($1, $2, $3::date, 1) ON CONFLICT "
		        "(partition, customer_key, day) DO UPDATE SET touches "
		        "= "
		        "freq_ledger.touches + 1",
		        3, params);
	}
	return (rv);
}

int
scheduler_select(PGconn *conn, pond_arena *arena, const scheduler_rules *rules,
                 const scheduler_campaign *c, const scheduler_cause *cause,
                 scheduler_changes *out)
{
	char part[16], *touch_id, *params = NULL, selbuf[40], duebuf[40];
	const char *state, *reason;
	pond_time now = pond_now(), due = 0;
	PGresult *res;
	bool holds;
	int rv;

	snprintf(part, sizeof(part), "%" PRIu32, cause->partition);
	size_t idlen = strlen(c->id) + strlen(cause->tag) +
	               strlen(cause->customer_key) + 3;
	if ((touch_id = pond_arena_alloc(arena, idlen)) == NULL) {
		return (POND_ENOMEM);
	}
	snprintf(touch_id, idlen, "%s/%s/%s", c->id, cause->tag,
	         cause->customer_key);
	const char *key_params[] = {part, cause->customer_key, touch_id};
	/* A fission reward is selected by the invitee's partition for an
	 * inviter who may live in another, so two transactions (of two
	 * partitions, even two replicas) can reach the same inviter at once.
	 * The lock on the touch id makes the second wait for the first's
	 * COMMIT and then find its touch, instead of failing on the key and
	 * retrying its whole batch. */
	if (cause->reward &&
	    (rv = pond_pq_query(conn, NULL,
	                        "SELECT pg_advisory_xact_lock("
	                        "hashtextextended($1, 0))",
	                        1, &key_params[2])) != 0) {
		return (rv);
	}
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT 1 FROM touches WHERE partition = $1 "
	                        "AND customer_key = $2 AND touch_id = $3",
	                        3, key_params)) != 0) {
		return (rv);
	}
	bool exists = PQntuples(res) > 0;
	PQclear(res);
	if (exists) {
		return (POND_OK);
	}
	if ((rv = scheduler_audience_holds(conn, c, cause->partition,
	                                   cause->customer_key, now,
	                                   &holds)) != 0 ||
	    !holds) {
		return (rv);
	}
	if ((rv = select_decide(conn, rules, c, cause, part, &due, &state,
	                        &reason)) != 0) {
		return (rv);
	}
	if ((params = select_params(c, cause)) == NULL) {
		return (POND_ENOMEM);
	}
	char cost[24];
	snprintf(cost, sizeof(cost), "%" PRId64, c->cost_per_touch_fen);
	const char *ins[] = {
	        part,
	        cause->customer_key,
	        touch_id,
	        c->id,
	        c->channel,
	        c->template,
	        params,
	        cause->reward ? "reward" : "marketing",
	        state,
	        reason != NULL ? reason : "",
	        pond_time_format_rfc3339(cause->selected_at, selbuf,
	                                 sizeof(selbuf)),
	        due != 0
	                ? pond_time_format_rfc3339(due, duebuf, sizeof(duebuf))
	                : NULL,
	        cost,
	};
	rv = pond_pq_query(conn, NULL,
	                   "INSERT INTO touches (partition, customer_key, "
	                   "touch_id, campaign_id, channel, template, params, "
	                   "kind, state, reason, selected_at, due_at, "
	                   "cost_fen) VALUES ($1, $2, $3, $4, $5, $6, "
	                   "$7::jsonb, $8, $9, $10, $11, $12, $13)",
	                   13, ins);
	free(params);
	if (rv != 0) {
		return (rv);
	}
	scheduler_change ch = {
	        .partition = cause->partition,
	        .touch_id = touch_id,
	        .customer_key = cause->customer_key,
	        .campaign_id = c->id,
	        .channel = c->channel,
	        .state = state,
	        .reason = reason,
	        .at = now,
	        .selected_at = cause->selected_at,
	        .due_at = due,
	};
	return (scheduler_changes_add(out, arena, &ch));
}
