/*
 * rules.c - the tag rule API (API.md section 5) on the tagging HTTP port.
 *
 *   GET    /v1/tag-rules       every rule (read or admin token)
 *   GET    /v1/tag-rules/TAG   one rule
 *   PUT    /v1/tag-rules/TAG   {"condition": ...} (admin token)
 *   DELETE /v1/tag-rules/TAG   (admin token)
 *
 * A condition is parsed on the loop before anything touches the store; a
 * malformed one is answered 400 with the JSON position (line, column) or
 * the condition path and what was expected there. A write bumps
 * tag_rules_version in the same transaction, which makes every profile
 * due for the sweeper (sweep.c): the rule reaches existing customers in
 * batches while the stream goes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apicall.h"
#include "db.h"
#include "log.h"
#include "service.h"
#include "tagging.h"
#include "token.h"

typedef enum rules_action {
	RULES_LIST,
	RULES_GET,
	RULES_PUT,
	RULES_DELETE,
} rules_action;

typedef struct rules_req {
	pond_api_call call; /* first: the call is the request */
	tagging *tg;
	rules_action action;
	char tag[72];
	char *condition; /* canonical JSON text (PUT) */
} rules_req;

static json_t *
rule_json(const PGresult *res, int row)
{
	json_t *cond = json_loads(PQgetvalue(res, row, 1), 0, NULL);

	return (json_pack("{s:s, s:o, s:s}", "tag", PQgetvalue(res, row, 0),
	                  "condition", cond != NULL ? cond : json_null(),
	                  "updated_at", PQgetvalue(res, row, 2)));
}

#define RULE_COLS                                                             \
	"tag, condition::text, to_char(updated_at AT TIME ZONE 'UTC', "       \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static int
rules_read(PGconn *conn, rules_req *r)
{
	const char *params[] = {r->tag};
	PGresult *res;
	int rv;

	if (r->action == RULES_LIST) {
		rv = pond_pq_query(conn, &res,
		                   "SELECT " RULE_COLS " FROM tag_rules ORDER "
		                   "BY tag",
		                   0, NULL);
	} else {
		rv = pond_pq_query(conn, &res,
		                   "SELECT " RULE_COLS " FROM tag_rules WHERE "
		                   "tag = $1",
		                   1, params);
	}
	if (rv != 0) {
		return (rv);
	}
	if (r->action == RULES_GET) {
		if (PQntuples(res) == 0) {
			PQclear(res);
			return (pond_api_fail(&r->call, 404, "not_found",
			                      "no rule for this tag"));
		}
		r->call.reply = rule_json(res, 0);
	} else {
		json_t *rules = json_array();
		for (int i = 0; rules != NULL && i < PQntuples(res); i++) {
			json_array_append_new(rules, rule_json(res, i));
		}
		r->call.reply = json_pack("{s:o}", "rules", rules);
	}
	PQclear(res);
	return (POND_OK);
}

static int
rules_write(PGconn *conn, rules_req *r)
{
	char nowbuf[40];
	const char *params[] = {
	        r->tag, r->condition,
	        pond_time_format_rfc3339(pond_now(), nowbuf, sizeof(nowbuf))};
	PGresult *res = NULL;
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	if (r->action == RULES_PUT) {
		rv = pond_pq_query(conn, &res,
		                   "INSERT INTO tag_rules (tag, condition, "
		                   "updated_at) VALUES ($1, $2::jsonb, $3) ON "
		                   "CONFLICT (tag) DO UPDATE SET condition = "
		                   "EXCLUDED.condition, updated_at = "
		                   "EXCLUDED.updated_at RETURNING " RULE_COLS,
		                   3, params);
	} else {
		rv = pond_pq_query(conn, &res,
		                   "DELETE FROM tag_rules WHERE tag = $1 "
		                   "RETURNING " RULE_COLS,
		                   1, params);
	}
	if (rv != 0) {
		goto fail;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		pond_pq_rollback(conn);
		return (pond_api_fail(&r->call, 404, "not_found",
		                      "no rule for this tag"));
	}
	r->call.reply = rule_json(res, 0);
	PQclear(res);
	res = NULL;
	/* Every profile now lags the rules: the sweeper re-evaluates them. */
	if ((rv = pond_pq_exec(conn, "UPDATE pond_settings SET value = "
	                             "(value::bigint + 1)::text WHERE key = "
	                             "'tag_rules_version'")) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	return (POND_OK);
fail:
	PQclear(res);
	json_decref(r->call.reply);
	r->call.reply = NULL;
	pond_pq_rollback(conn);
	return (rv);
}

static int
rules_work(PGconn *conn, pond_api_call *call)
{
	rules_req *r = (rules_req *)call;

	return (r->call.writes ? rules_write(conn, r) : rules_read(conn, r));
}

static void
rules_free(rules_req *r)
{
	free(r->condition);
	free(r);
}

static void
rules_done(pond_api_call *call, int rv)
{
	rules_req *r = (rules_req *)call;
	tagging *tg = r->tg;

	if (rv == 0 && r->call.code == NULL && r->call.writes) {
		pond_counter_inc(&tg->counters.rule_writes);
		tagging_sweep_kick(tg);
	}
	rules_free(r);
	tg->requests--;
	tagging_maybe_stopped(tg);
}

static const pond_api_ops rules_ops = {rules_work, rules_done};

/* rules_parse_body checks a PUT body and keeps its condition's canonical
 * text; false when it has answered the request itself. */
static bool
rules_parse_body(rules_req *r)
{
	size_t len;
	const char *body = pond_http_body(r->call.req, &len);
	json_error_t jerr;
	pond_cond_error cerr;
	pond_cond *cond = NULL;
	json_t *j = json_loadb(body, len, 0, &jerr), *c;

	if (j == NULL) {
		pond_http_reply_error(r->call.req, 400, "bad_request",
		                      "not JSON at line %d, column %d (byte "
		                      "%d): %s",
		                      jerr.line, jerr.column, jerr.position,
		                      jerr.text);
		return (false);
	}
	if (!json_is_object(j) ||
	    (c = json_object_get(j, "condition")) == NULL ||
	    json_object_size(j) != 1) {
		json_decref(j);
		pond_http_reply_error(r->call.req, 400, "bad_request",
		                      "expected a body {\"condition\": ...}");
		return (false);
	}
	if (pond_cond_parse(c, &cond, &cerr) != 0) {
		json_decref(j);
		pond_http_reply_error(r->call.req, 400, "bad_condition",
		                      "at %s: %s", cerr.path, cerr.message);
		return (false);
	}
	pond_cond_free(cond);
	r->condition = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (r->condition == NULL) {
		pond_http_reply_error(r->call.req, 503, "no_memory",
		                      "out of memory");
		return (false);
	}
	return (true);
}

static void
rules_on_http(pond_http_req *req, void *arg)
{
	tagging *tg = arg;
	const char *path = pond_http_path(req);
	const char *method = pond_http_method(req);
	const char *why;
	rules_req *r;

	if ((r = pond_api_call_new(req, tg->stopping, sizeof(*r))) == NULL) {
		return;
	}
	r->tg = tg;
	r->call.ops = &rules_ops;
	r->call.forbidden = "changing tag rules needs an admin token";
	if (strcmp(path, "/v1/tag-rules") == 0) {
		r->action = RULES_LIST;
	} else {
		const char *tag = path + strlen("/v1/tag-rules/");
		if (!pond_tag_name_ok(tag, &why) &&
		    strcmp(method, "PUT") == 0) {
			pond_http_reply_error(req, 400, "bad_tag", "%s", why);
			rules_free(r);
			return;
		}
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
		r->action = strcmp(method, "PUT") == 0      ? RULES_PUT
		            : strcmp(method, "DELETE") == 0 ? RULES_DELETE
		                                            : RULES_GET;
	}
	r->call.writes = r->action == RULES_PUT || r->action == RULES_DELETE;
	if ((r->action == RULES_PUT && !rules_parse_body(r)) ||
	    pond_api_call_submit(tg->svc->db, &r->call) != 0) {
		rules_free(r);
		return;
	}
	tg->requests++;
}

int
tagging_rules_routes(tagging *tg)
{
	pond_http *h = tg->svc->http;
	int rv;

	if ((rv = pond_http_route(h, "GET", "/v1/tag-rules", false,
	                          rules_on_http, tg)) != 0 ||
	    (rv = pond_http_route(h, "GET", "/v1/tag-rules/", true,
	                          rules_on_http, tg)) != 0 ||
	    (rv = pond_http_route(h, "PUT", "/v1/tag-rules/", true,
	                          rules_on_http, tg)) != 0 ||
	    (rv = pond_http_route(h, "DELETE", "/v1/tag-rules/", true,
	                          rules_on_http, tg)) != 0) {
		return (rv);
	}
	return (POND_OK);
}
