/*
 * audience.c - a campaign's audience condition (API.md section 5) judged
 * for one customer on tagging's profile and tags, read-only. Selection
 * (select.c) asks it for each selection of a campaign with an audience.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "scheduler.h"

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
