/*
 * customer.c - GET /v1/customers/KEY: one customer's profile as the
 * reports see it now (acquisition, region, industry, lifecycle stage,
 * orders, net revenue), its tags, and its last 100 events.
 *
 * The events come from the events table by its (customer_key,
 * occurred_at) index: one customer's newest rows, never a scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pbjson.h"
#include "pond/event.pb-c.h"
#include "reporting.h"

#define LATEST(col)                                                           \
	"(SELECT f." col " FROM rpt_profile_facts f WHERE f.partition = "     \
	"p.partition AND f.customer_key = p.customer_key AND f.has_" col      \
	" AND f.occurred_at < $2 ORDER BY f.occurred_at DESC, f.event_id "    \
	"DESC, f.publisher DESC LIMIT 1)"

static const char profile_sql[] =
        "SELECT p.acquired_at IS NOT NULL, "
        " to_char(p.acquired_at AT TIME ZONE 'UTC', "
        " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), p.channel, p.guide_id, "
        " p.store_id, p.inviter_key, p.campaign_id, " LATEST(
                "region") ", " LATEST("industry") ", "
                                                  " (SELECT count(*) FROM "
                                                  "rpt_orders o WHERE "
                                                  "o.partition = "
                                                  " p.partition AND "
                                                  "o.customer_key = "
                                                  "p.customer_key AND o.paid "
                                                  "AND "
                                                  " o.occurred_at < $2), "
                                                  " (SELECT COALESCE(sum(CASE "
                                                  "WHEN o.paid THEN "
                                                  "o.amount_fen ELSE "
                                                  " -o.amount_fen END), 0) "
                                                  "FROM rpt_orders o WHERE "
                                                  "o.partition = "
                                                  " p.partition AND "
                                                  "o.customer_key = "
                                                  "p.customer_key AND "
                                                  " o.occurred_at < $2), "
                                                  " EXISTS (SELECT 1 FROM "
                                                  "rpt_members m WHERE "
                                                  "m.partition = "
                                                  " p.partition AND "
                                                  "m.customer_key = "
                                                  "p.customer_key AND "
                                                  " m.occurred_at < $2), "
                                                  " (SELECT "
                                                  "COALESCE(json_agg(tag "
                                                  "ORDER BY tag COLLATE "
                                                  "\"C\"), '[]') "
                                                  " FROM (SELECT DISTINCT ON "
                                                  "(tag) tag, added FROM "
                                                  "rpt_tag_changes t "
                                                  " WHERE t.partition = "
                                                  "p.partition AND "
                                                  "t.customer_key = "
                                                  " p.customer_key ORDER BY "
                                                  "tag, changed_at DESC, seq "
                                                  "DESC) x WHERE "
                                                  " added) "
                                                  "FROM rpt_customers p WHERE "
                                                  "p.customer_key = $1";

static json_t *
text_or_null(const PGresult *res, int c)
{
	return (PQgetisnull(res, 0, c) ? json_null()
	                               : json_string(PQgetvalue(res, 0, c)));
}

/* customer_events returns the last 100 events, newest first. */
static int
customer_events(PGconn *conn, const char *key, json_t **out)
{
	const char *params[] = {key};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT payload FROM events WHERE "
	                        "customer_key = $1 ORDER BY occurred_at DESC, "
	                        "event_id COLLATE \"C\" DESC LIMIT 100",
	                        1, params)) != 0) {
		return (rv);
	}
	*out = json_array();
	for (int r = 0; r < PQntuples(res); r++) {
		size_t len;
		unsigned char *bin = PQunescapeBytea(
		        (const unsigned char *)PQgetvalue(res, r, 0), &len);
		Pond__Event *ev = bin != NULL
		                          ? pond__event__unpack(NULL, len, bin)
		                          : NULL;
		if (ev != NULL) {
			json_array_append_new(
			        *out, pond_pbjson_encode(&ev->base, false));
			pond__event__free_unpacked(ev, NULL);
		}
		PQfreemem(bin);
	}
	PQclear(res);
	return (POND_OK);
}

int
reporting_customer(PGconn *conn, reporting *rp, const char *key, json_t **out,
                   reporting_error *err)
{
	char now[40];
	const char *params[] = {key, now};
	PGresult *res;
	json_t *events = NULL;
	int rv;

	(void)rp;
	reporting_sql_time(pond_now(), now, sizeof(now));
	if ((rv = pond_pq_query(conn, &res, profile_sql, 2, params)) != 0) {
		return (rv);
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return (reporting_fail(err, 404, "not_found",
		                       "no customer \"%.64s\"", key));
	}
	int64_t orders = reporting_int(res, 0, 9);
	bool member = strcmp(PQgetvalue(res, 0, 11), "t") == 0;
	const char *stage = member        ? "member"
	                    : orders == 0 ? "potential"
	                    : orders == 1 ? "first_purchase"
	                    : orders == 2 ? "repurchase"
	                                  : "loyal";
	json_t *tags = json_loads(PQgetvalue(res, 0, 12), 0, NULL);
	json_t *profile = json_pack(
	        "{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:I, "
	        "s:b}",
	        "customer_key", key, "acquired_at", text_or_null(res, 1),
	        "channel", text_or_null(res, 2), "guide_id",
	        text_or_null(res, 3), "store_id", text_or_null(res, 4),
	        "inviter_key", text_or_null(res, 5), "campaign_id",
	        text_or_null(res, 6), "region", text_or_null(res, 7),
	        "industry", text_or_null(res, 8), "lifecycle", stage, "orders",
	        (json_int_t)orders, "net_revenue_fen",
	        (json_int_t)reporting_int(res, 0, 10), "member", member);
	PQclear(res);
	if ((rv = customer_events(conn, key, &events)) != 0) {
		json_decref(profile);
		json_decref(tags);
		return (rv);
	}
	*out = json_pack("{s:s, s:o, s:s, s:o, s:o}", "customer_key", key,
	                 "profile", profile, "lifecycle", stage, "tags",
	                 tags != NULL ? tags : json_array(), "events", events);
	return (POND_OK);
}
