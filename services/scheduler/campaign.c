/*
 * campaign.c - a campaign spec (API.md section 3): JSON -> struct, and the
 * campaigns table behind the HTTP API and `pond campaigns`.
 *
 * The spec is stored as posted (after it parsed), so GET shows what the
 * operator wrote; the columns beside it (trigger, quota, used, paused) are
 * what the scheduler's queries need. The CLI links this file too, so the
 * HTTP API and the CLI refuse exactly the same specs.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "scheduler.h"

static const char *const touch_channels[] = {
        "wecom_message", "sms", "call", "group_post", "coupon",
};

static int __attribute__((format(printf, 3, 4)))
spec_fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return (POND_EINVAL);
}

/* spec_str reads an optional string member (NULL when absent); a member
 * of another type is an error. */
static int
spec_str(const json_t *o, const char *name, bool required, char **out,
         char *why, size_t len)
{
	const json_t *v = json_object_get(o, name);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		return (required ? spec_fail(why, len, "%s is required", name)
		                 : POND_OK);
	}
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > 256) {
		return (spec_fail(why, len,
		                  "%s: expected a string of 1 to 256 bytes",
		                  name));
	}
	if ((*out = strdup(json_string_value(v))) == NULL) {
		return (POND_ENOMEM);
	}
	return (POND_OK);
}

/* spec_int reads an optional integer member within [min, max]. */
static int
spec_int(const json_t *o, const char *name, int64_t min, int64_t max,
         int64_t def, int64_t *out, char *why, size_t len)
{
	const json_t *v = json_object_get(o, name);

	*out = def;
	if (v == NULL || json_is_null(v)) {
		return (POND_OK);
	}
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max) {
		return (spec_fail(why, len,
		                  "%s: expected an integer from %" PRId64
		                  " to %" PRId64,
		                  name, min, max));
	}
	*out = json_integer_value(v);
	return (POND_OK);
}

static int
spec_time(const json_t *o, const char *name, pond_time *out, char *why,
          size_t len)
{
	const json_t *v = json_object_get(o, name);

	*out = 0;
	if (v == NULL || json_is_null(v)) {
		return (POND_OK);
	}
	if (!json_is_string(v) ||
	    pond_time_parse_rfc3339(json_string_value(v), out) != 0) {
		return (spec_fail(why, len, "%s: expected an RFC 3339 time",
		                  name));
	}
	return (POND_OK);
}

/* spec_reward reads {kind, amount_fen}. */
static int
spec_reward(const json_t *o, const char *name, char **kind, int64_t *fen,
            char *why, size_t len)
{
	const json_t *r = json_object_get(o, name);
	char sub[200];
	int rv;

	*kind = NULL;
	*fen = 0;
	if (r == NULL || json_is_null(r)) {
		return (POND_OK);
	}
	if (!json_is_object(r)) {
		return (spec_fail(why, len,
		                  "%s: expected {\"kind\": ..., "
		                  "\"amount_fen\": ...}",
		                  name));
	}
	if ((rv = spec_str(r, "kind", true, kind, sub, sizeof(sub))) != 0 ||
	    (rv = spec_int(r, "amount_fen", 0, INT64_C(100000000000), 0, fen,
	                   sub, sizeof(sub))) != 0) {
		if (rv == POND_EINVAL) {
			spec_fail(why, len, "%s.%s", name, sub);
		}
		return (rv);
	}
	return (POND_OK);
}

static int
spec_trigger(const json_t *spec, scheduler_campaign *c, char *why, size_t len)
{
	static const struct {
		const char *key;
		scheduler_trigger kind;
	} kinds[] = {
	        {"event", SCHEDULER_TRIGGER_EVENT},
	        {"tag_added", SCHEDULER_TRIGGER_TAG_ADDED},
	        {"tag_removed", SCHEDULER_TRIGGER_TAG_REMOVED},
	        {"at", SCHEDULER_TRIGGER_AT},
	};
	const json_t *t = json_object_get(spec, "trigger");

	if (!json_is_object(t) || json_object_size(t) != 1) {
		return (spec_fail(
		        why, len,
		        "trigger: expected one of {\"event\": TYPE}, "
		        "{\"tag_added\": TAG}, {\"tag_removed\": "
		        "TAG}, {\"at\": TIME}"));
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const json_t *v = json_object_get(t, kinds[i].key);
		if (v == NULL) {
			continue;
		}
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > 256) {
			return (spec_fail(why, len,
			                  "trigger.%s: expected a string",
			                  kinds[i].key));
		}
		c->trigger = kinds[i].kind;
		if ((c->trigger_value = strdup(json_string_value(v))) ==
		    NULL) {
			return (POND_ENOMEM);
		}
		if (c->trigger == SCHEDULER_TRIGGER_AT &&
		    pond_time_parse_rfc3339(c->trigger_value, &c->at) != 0) {
			return (spec_fail(why, len,
			                  "trigger.at: expected an RFC 3339 "
			                  "time"));
		}
		return (POND_OK);
	}
	return (spec_fail(why, len,
	                  "trigger: expected event, tag_added, tag_removed "
	                  "or at"));
}

static int
spec_check_keys(const json_t *spec, char *why, size_t len)
{
	static const char *const known[] = {
	        "id",
	        "name",
	        "channel",
	        "template",
	        "params",
	        "trigger",
	        "audience",
	        "delay_s",
	        "starts_at",
	        "ends_at",
	        "quota",
	        "holdout_pct",
	        "cost_per_touch_fen",
	        "reward",
	        "fission",
	};
	const char *key;
	const json_t *v;

	json_object_foreach((json_t *)spec, key, v)
	{
		size_t i = 0;
		while (i < sizeof(known) / sizeof(known[0]) &&
		       strcmp(known[i], key) != 0) {
			i++;
		}
		if (i == sizeof(known) / sizeof(known[0])) {
			return (spec_fail(why, len, "unknown field \"%.64s\"",
			                  key));
		}
	}
	return (POND_OK);
}

static int
spec_channel(scheduler_campaign *c, char *why, size_t len)
{
	for (size_t i = 0; i < sizeof(touch_channels) / sizeof(char *); i++) {
		if (strcmp(touch_channels[i], c->channel) == 0) {
			return (POND_OK);
		}
	}
	return (spec_fail(why, len,
	                  "channel: expected wecom_message, sms, call, "
	                  "group_post or coupon"));
}

static int
spec_params(const json_t *spec, scheduler_campaign *c, char *why, size_t len)
{
	const json_t *p = json_object_get(spec, "params");
	const char *k;
	const json_t *v;

	if (p == NULL || json_is_null(p)) {
		return (POND_OK);
	}
	if (!json_is_object(p)) {
		return (spec_fail(why, len, "params: expected an object"));
	}
	json_object_foreach((json_t *)p, k, v)
	{
		if (!json_is_string(v)) {
			return (spec_fail(why, len,
			                  "params.%.64s: expected a string",
			                  k));
		}
	}
	c->params = json_deep_copy(p);
	return (c->params != NULL ? POND_OK : POND_ENOMEM);
}

static int
spec_fission(const json_t *spec, scheduler_campaign *c, char *why, size_t len)
{
	const json_t *f = json_object_get(spec, "fission");
	int rv;

	if (f == NULL || json_is_null(f)) {
		return (POND_OK);
	}
	if (!json_is_object(f)) {
		return (spec_fail(why, len,
		                  "fission: expected {\"invitees_needed\": N, "
		                  "\"reward\": {...}}"));
	}
	if ((rv = spec_int(f, "invitees_needed", 1, 1000, 3,
	                   &c->fission_needed, why, len)) != 0 ||
	    (rv = spec_reward(f, "reward", &c->fission_reward_kind,
	                      &c->fission_reward_fen, why, len)) != 0) {
		return (rv);
	}
	if (c->fission_reward_kind == NULL) {
		return (spec_fail(why, len, "fission.reward is required"));
	}
	return (POND_OK);
}

int
scheduler_campaign_parse(const json_t *spec, scheduler_campaign *c, char *why,
                         size_t len)
{
	const json_t *aud;
	int rv;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(spec)) {
		return (spec_fail(why, len, "expected a JSON object"));
	}
	if ((rv = spec_check_keys(spec, why, len)) != 0 ||
	    (rv = spec_str(spec, "id", false, &c->id, why, len)) != 0 ||
	    (rv = spec_str(spec, "name", true, &c->name, why, len)) != 0 ||
	    (rv = spec_str(spec, "channel", true, &c->channel, why, len)) !=
	            0 ||
	    (rv = spec_channel(c, why, len)) != 0 ||
	    (rv = spec_str(spec, "template", true, &c->template, why, len)) !=
	            0 ||
	    (rv = spec_params(spec, c, why, len)) != 0 ||
	    (rv = spec_trigger(spec, c, why, len)) != 0 ||
	    (rv = spec_int(spec, "delay_s", 0, INT64_C(31536000), 0,
	                   &c->delay_s, why, len)) != 0 ||
	    (rv = spec_time(spec, "starts_at", &c->starts_at, why, len)) !=
	            0 ||
	    (rv = spec_time(spec, "ends_at", &c->ends_at, why, len)) != 0 ||
	    (rv = spec_int(spec, "quota", 0, INT64_MAX, -1, &c->quota, why,
	                   len)) != 0 ||
	    (rv = spec_int(spec, "holdout_pct", 0, 50, 0, &c->holdout_pct, why,
	                   len)) != 0 ||
	    (rv = spec_int(spec, "cost_per_touch_fen", 0,
	                   INT64_C(100000000000), 0, &c->cost_per_touch_fen,
	                   why, len)) != 0 ||
	    (rv = spec_reward(spec, "reward", &c->reward_kind, &c->reward_fen,
	                      why, len)) != 0 ||
	    (rv = spec_fission(spec, c, why, len)) != 0) {
		goto fail;
	}
	if (c->starts_at != 0 && c->ends_at != 0 &&
	    c->ends_at <= c->starts_at) {
		rv = spec_fail(why, len, "ends_at must be after starts_at");
		goto fail;
	}
	aud = json_object_get(spec, "audience");
	if (aud != NULL && !json_is_null(aud)) {
		pond_cond_error cerr;
		if ((rv = pond_cond_parse(aud, &c->audience, &cerr)) != 0) {
			if (rv == POND_EINVAL) {
				spec_fail(why, len, "audience%s: %s",
				          cerr.path + (cerr.path[0] == '$'),
				          cerr.message);
			}
			goto fail;
		}
	}
	return (POND_OK);
fail:
	scheduler_campaign_clear(c);
	return (rv);
}

void
scheduler_campaign_clear(scheduler_campaign *c)
{
	free(c->id);
	free(c->name);
	free(c->channel);
	free(c->template);
	json_decref(c->params);
	free(c->trigger_value);
	pond_cond_free(c->audience);
	free(c->reward_kind);
	free(c->fission_reward_kind);
	memset(c, 0, sizeof(*c));
}

int
scheduler_campaigns_load(PGconn *conn, scheduler_campaigns *out)
{
	PGresult *res;
	int rv;

	memset(out, 0, sizeof(*out));
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT id, spec::text, paused FROM campaigns "
	                        "ORDER BY id",
	                        0, NULL)) != 0) {
		return (rv);
	}
	if (PQntuples(res) > 0 && (out->v = calloc((size_t)PQntuples(res),
	                                           sizeof(*out->v))) == NULL) {
		PQclear(res);
		return (POND_ENOMEM);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		json_t *spec = json_loads(PQgetvalue(res, r, 1), 0, NULL);
		scheduler_campaign *c = &out->v[out->n];
		char why[256];
		if (spec == NULL ||
		    scheduler_campaign_parse(spec, c, why, sizeof(why)) != 0) {
			pond_log_error("campaign_unreadable", "id=%s",
			               PQgetvalue(res, r, 0));
			json_decref(spec);
			continue;
		}
		json_decref(spec);
		free(c->id);
		c->id = strdup(PQgetvalue(res, r, 0));
		c->paused = PQgetvalue(res, r, 2)[0] == 't';
		if (c->id == NULL) {
			scheduler_campaign_clear(c);
			continue;
		}
		out->n++;
	}
	PQclear(res);
	return (POND_OK);
}

void
scheduler_campaigns_free(scheduler_campaigns *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		scheduler_campaign_clear(&cs->v[i]);
	}
	free(cs->v);
	memset(cs, 0, sizeof(*cs));
}

/* --- the table ------------------------------------------------------------
 */

#define CAMPAIGN_COLS                                                         \
	"c.id, c.spec::text, c.paused, c.used, to_char(c.created_at AT TIME " \
	"ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), (SELECT "          \
	"coalesce(jsonb_object_agg(state, n), '{}')::text FROM (SELECT "      \
	"state, count(*) AS n FROM touches t WHERE t.campaign_id = c.id "     \
	"GROUP BY state) s)"

/* campaign_json is the campaign of one CAMPAIGN_COLS row: its spec with
 * id, status, used, created_at and touches by state. */
static json_t *
campaign_json(const PGresult *res, int r)
{
	json_t *o = json_loads(PQgetvalue(res, r, 1), 0, NULL);
	json_t *touches = json_loads(PQgetvalue(res, r, 5), 0, NULL);

	if (o == NULL) {
		json_decref(touches);
		return (NULL);
	}
	json_object_set_new(o, "id", json_string(PQgetvalue(res, r, 0)));
	json_object_set_new(o, "status",
	                    json_string(PQgetvalue(res, r, 2)[0] == 't'
	                                        ? "paused"
	                                        : "active"));
	json_object_set_new(
	        o, "used",
	        json_integer(strtoll(PQgetvalue(res, r, 3), NULL, 10)));
	json_object_set_new(o, "created_at",
	                    json_string(PQgetvalue(res, r, 4)));
	json_object_set_new(o, "touches",
	                    touches != NULL ? touches : json_object());
	return (o);
}

int
scheduler_campaign_create(PGconn *conn, const json_t *spec, json_t **reply,
                          char *why, size_t len)
{
	static const char *const kinds[] = {"event", "tag_added",
	                                    "tag_removed", "at"};
	scheduler_campaign c;
	char *text = NULL, quota[24], now[40];
	PGresult *res = NULL;
	int rv;

	*reply = NULL;
	if ((rv = scheduler_campaign_parse(spec, &c, why, len)) != 0) {
		return (rv);
	}
	if (c.id != NULL && strspn(c.id, "abcdefghijklmnopqrstuvwxyz"
	                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                 "0123456789_-.") != strlen(c.id)) {
		scheduler_campaign_clear(&c);
		return (spec_fail(why, len,
		                  "id: expected letters, digits, '_', '-' "
		                  "and '.'"));
	}
	json_t *stored = json_deep_copy(spec);
	if (stored != NULL) {
		json_object_del(stored, "id");
		text = json_dumps(stored, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(stored);
	}
	if (text == NULL) {
		scheduler_campaign_clear(&c);
		return (POND_ENOMEM);
	}
	snprintf(quota, sizeof(quota), "%" PRId64, c.quota);
	const char *params[] = {
	        c.id,
	        c.name,
	        text,
	        kinds[c.trigger],
	        c.trigger_value,
	        c.quota >= 0 ? quota : NULL,
	        pond_time_format_rfc3339(pond_now(), now, sizeof(now)),
	};
	rv = pond_pq_query(
	        conn, &res,
	        "WITH c AS (INSERT INTO campaigns (id, name, spec, "
	        "trigger_kind, trigger_value, quota, created_at) VALUES "
	        "(coalesce($1, 'c' || (SELECT count(*) + 1 FROM campaigns) || "
	        "'_' || substr(md5($2 || $7::text), 1, 6)), $2, $3::jsonb, "
	        "$4, $5, "
	        "$6::bigint, $7::timestamptz) RETURNING *) "
	        "SELECT " CAMPAIGN_COLS " FROM c",
	        7, params);
	scheduler_campaign_clear(&c);
	free(text);
	if (rv == POND_EEXIST) {
		spec_fail(why, len, "a campaign with this id exists");
		return (rv);
	}
	if (rv != 0) {
		return (rv);
	}
	*reply = campaign_json(res, 0);
	PQclear(res);
	return (*reply != NULL ? POND_OK : POND_ENOMEM);
}

int
scheduler_campaign_show(PGconn *conn, const char *id, json_t **reply)
{
	const char *params[] = {id};
	PGresult *res;
	int rv;

	*reply = NULL;
	if (id != NULL) {
		rv = pond_pq_query(conn, &res,
		                   "SELECT " CAMPAIGN_COLS
		                   " FROM campaigns c WHERE id = $1",
		                   1, params);
	} else {
		rv = pond_pq_query(conn, &res,
		                   "SELECT " CAMPAIGN_COLS
		                   " FROM campaigns c ORDER BY created_at, id",
		                   0, NULL);
	}
	if (rv != 0) {
		return (rv);
	}
	if (id != NULL) {
		rv = PQntuples(res) == 0 ? POND_ENOENT : POND_OK;
		if (rv == POND_OK) {
			*reply = campaign_json(res, 0);
		}
	} else {
		json_t *list = json_array();
		for (int r = 0; list != NULL && r < PQntuples(res); r++) {
			json_array_append_new(list, campaign_json(res, r));
		}
		*reply = json_pack("{s:o}", "campaigns", list);
	}
	PQclear(res);
	return (rv != POND_OK || *reply != NULL ? rv : POND_ENOMEM);
}

int
scheduler_campaign_pause(PGconn *conn, const char *id, bool paused,
                         json_t **reply)
{
	const char *params[] = {id, paused ? "t" : "f"};
	PGresult *res;
	int rv;

	*reply = NULL;
	if ((rv = pond_pq_query(conn, &res,
	                        "UPDATE campaigns SET paused = $2::boolean "
	                        "WHERE id = $1",
	                        2, params)) != 0) {
		return (rv);
	}
	rv = strcmp(PQcmdTuples(res), "0") == 0 ? POND_ENOENT : POND_OK;
	PQclear(res);
	return (rv == POND_OK ? scheduler_campaign_show(conn, id, reply) : rv);
}
