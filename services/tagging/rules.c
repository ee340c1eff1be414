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
	tagging *tg;
	pond_http_req *req;
	rules_action action;
	char token[POND_TOKEN_MAX + 1];
	char tag[72];
	char *condition; /* canonical JSON text (PUT) */
	/* Outcome. */
	unsigned status;
	const char *code;
	const char *message;
	json_t *reply;
} rules_req;

static int
rules_fail(rules_req *r, unsigned status, const char *code, const char *msg)
{
	r->status = status;
	r->code = code;
	r->message = msg;
	return (POND_OK);
}

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
			return (rules_fail(r, 404, "not_found",
			                   "no rule for this tag"));
		}
		r->reply = rule_json(res, 0);
	} else {
		json_t *rules = json_array();
		for (int i = 0; rules != NULL && i < PQntuples(res); i++) {
			json_array_append_new(rules, rule_json(res, i));
		}
		r->reply = json_pack("{s:o}", "rules", rules);
	}
	PQclear(res);
	r->status = 200;
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
		return (rules_fail(r, 404, "not_found",
		                   "no rule for this tag"));
	}
	r->reply = rule_json(res, 0);
	PQclear(res);
	res = NULL;
	/* Every profile now lags the rules: the sweeper re-evaluates them. */
	if ((rv = pond_pq_exec(conn, "UPDATE pond_settings SET value = "
	                             "(value::bigint + 1)::text WHERE key = "
	                             "'tag_rules_version'")) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	r->status = 200;
	return (POND_OK);
fail:
	PQclear(res);
	json_decref(r->reply);
	r->reply = NULL;
	pond_pq_rollback(conn);
	return (rv);
}

static int
rules_work(PGconn *conn, void *arg)
{
	rules_req *r = arg;
	pond_role role = pond_api_token_role(conn, r->token);

	if (role == POND_ROLE_NONE) {
		return (rules_fail(r, 401, "unauthorized",
		                   "Authorization: Bearer <API token> is "
		                   "required"));
	}
	if (r->action == RULES_LIST || r->action == RULES_GET) {
		return (rules_read(conn, r));
	}
	if (role != POND_ROLE_ADMIN) {
		pond_auth_refused(POND_AUTH_ROLE);
		return (rules_fail(r, 403, "forbidden",
		                   "changing tag rules needs an admin token"));
	}
	return (rules_write(conn, r));
}

static void
rules_done(int rv, void *arg)
{
	rules_req *r = arg;
	tagging *tg = r->tg;

	if (rv != 0) {
		pond_http_reply_error(r->req, 503, "unavailable",
		                      "the store failed: %s",
		                      pond_strerror(rv));
	} else if (r->status != 200) {
		pond_http_reply_error(r->req, r->status, r->code, "%s",
		                      r->message);
	} else {
		pond_http_reply_json(r->req, 200, r->reply);
		r->reply = NULL;
		if (r->action == RULES_PUT || r->action == RULES_DELETE) {
			pond_counter_inc(&tg->counters.rule_writes);
			tagging_sweep_kick(tg);
		}
	}
	json_decref(r->reply);
	free(r->condition);
	free(r);
	tg->requests--;
	tagging_maybe_stopped(tg);
}

/* rules_parse_body checks a PUT body and keeps its condition's canonical
 * text; false when it has answered the request itself. */
static bool
rules_parse_body(rules_req *r)
{
	size_t len;
	const char *body = pond_http_body(r->req, &len);
	json_error_t jerr;
	pond_cond_error cerr;
	pond_cond *cond = NULL;
	json_t *j = json_loadb(body, len, 0, &jerr), *c;

	if (j == NULL) {
		pond_http_reply_error(r->req, 400, "bad_request",
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
		pond_http_reply_error(r->req, 400, "bad_request",
		                      "expected a body {\"condition\": ...}");
		return (false);
	}
	if (pond_cond_parse(c, &cond, &cerr) != 0) {
		json_decref(j);
		pond_http_reply_error(r->req, 400, "bad_condition",
		                      "at %s: %s", cerr.path, cerr.message);
		return (false);
	}
	pond_cond_free(cond);
	r->condition = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (r->condition == NULL) {
		pond_http_reply_error(r->req, 503, "no_memory",
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
	const char *token = pond_http_bearer(req);
	const char *why;
	rules_req *r;

	if (tg->stopping) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "shutting down; try again");
		return;
	}
	if (token == NULL || strlen(token) > POND_TOKEN_MAX) {
		pond_http_reply_error(req, 401, "unauthorized",
		                      "Authorization: Bearer <API token> is "
		                      "required");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		pond_http_reply_error(req, 503, "no_memory", "out of memory");
		return;
	}
	r->tg = tg;
	r->req = req;
	snprintf(r->token, sizeof(r->token), "%s", token);
	if (strcmp(path, "/v1/tag-rules") == 0) {
		r->action = RULES_LIST;
	} else {
		const char *tag = path + strlen("/v1/tag-rules/");
		if (!pond_tag_name_ok(tag, &why) &&
		    strcmp(method, "PUT") == 0) {
			pond_http_reply_error(req, 400, "bad_tag", "%s", why);
			free(r);
			return;
		}
		snprintf(r->tag, sizeof(r->tag), "%s", tag);
		r->action = strcmp(method, "PUT") == 0      ? RULES_PUT
		            : strcmp(method, "DELETE") == 0 ? RULES_DELETE
		                                            : RULES_GET;
	}
	if (r->action == RULES_PUT && !rules_parse_body(r)) {
		free(r);
		return;
	}
	if (pond_db_submit(tg->svc->db, rules_work, rules_done, r) != 0) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "shutting down; try again");
		free(r->condition);
		free(r);
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
