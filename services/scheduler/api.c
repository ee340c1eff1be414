/*
 * api.c - the campaign API (API.md section 3) on the scheduler HTTP port.
 *
 *   POST /v1/campaigns               create (admin token)
 *   GET  /v1/campaigns               every campaign (read or admin)
 *   GET  /v1/campaigns/ID            one campaign
 *   POST /v1/campaigns/ID/pause      pause (admin)
 *   POST /v1/campaigns/ID/resume     resume (admin)
 *
 * The body is parsed on the loop (a bad spec gets 400 naming the field
 * before anything touches the store); the store work is campaign.c's,
 * shared with `pond campaigns`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "scheduler.h"
#include "service.h"
#include "token.h"

typedef enum api_action {
	API_CREATE,
	API_LIST,
	API_SHOW,
	API_PAUSE,
	API_RESUME,
} api_action;

typedef struct api_req {
	scheduler *s;
	pond_http_req *req;
	api_action action;
	char token[POND_TOKEN_MAX + 1];
	char id[128];
	json_t *body;
	/* Outcome. */
	unsigned status;
	const char *code;
	char message[300];
	json_t *reply;
} api_req;

static int
api_fail(api_req *r, unsigned status, const char *code, const char *msg)
{
	r->status = status;
	r->code = code;
	if (msg != r->message) {
		snprintf(r->message, sizeof(r->message), "%s", msg);
	}
	return (POND_OK);
}

static int
api_work(PGconn *conn, void *arg)
{
	api_req *r = arg;
	pond_role role = pond_api_token_role(conn, r->token);
	int rv;

	if (role == POND_ROLE_NONE) {
		return (api_fail(r, 401, "unauthorized",
		                 "Authorization: Bearer <API token> is "
		                 "required"));
	}
	if (role != POND_ROLE_ADMIN && r->action != API_LIST &&
	    r->action != API_SHOW) {
		pond_auth_refused(POND_AUTH_ROLE);
		return (api_fail(r, 403, "forbidden",
		                 "changing campaigns needs an admin token"));
	}
	switch (r->action) {
	case API_CREATE:
		rv = scheduler_campaign_create(conn, r->body, &r->reply,
		                               r->message, sizeof(r->message));
		if (rv == POND_EINVAL) {
			return (api_fail(r, 400, "bad_campaign", r->message));
		}
		if (rv == POND_EEXIST) {
			return (api_fail(r, 409, "exists", r->message));
		}
		r->status = 201;
		break;
	case API_LIST:
		rv = scheduler_campaign_show(conn, NULL, &r->reply);
		break;
	case API_SHOW:
		rv = scheduler_campaign_show(conn, r->id, &r->reply);
		break;
	default:
		rv = scheduler_campaign_pause(
		        conn, r->id, r->action == API_PAUSE, &r->reply);
		break;
	}
	if (rv == POND_ENOENT) {
		return (api_fail(r, 404, "not_found", "no such campaign"));
	}
	if (rv == 0 && r->status == 0) {
		r->status = 200;
	}
	return (rv);
}

static void
api_done(int rv, void *arg)
{
	api_req *r = arg;
	scheduler *s = r->s;

	if (rv != 0) {
		pond_http_reply_error(r->req, 503, "unavailable",
		                      "the store failed: %s",
		                      pond_strerror(rv));
	} else if (r->reply == NULL) {
		pond_http_reply_error(r->req, r->status, r->code, "%s",
		                      r->message);
	} else {
		pond_http_reply_json(r->req, r->status, r->reply);
		r->reply = NULL;
	}
	json_decref(r->reply);
	json_decref(r->body);
	free(r);
	s->jobs--;
	scheduler_maybe_stopped(s);
}

/* api_route works out the action from method and path; false when it has
 * answered the request itself. */
static bool
api_route(api_req *r)
{
	const char *path = pond_http_path(r->req);
	bool post = strcmp(pond_http_method(r->req), "POST") == 0;
	const char *rest, *slash;

	if (strcmp(path, "/v1/campaigns") == 0) {
		r->action = post ? API_CREATE : API_LIST;
		return (true);
	}
	rest = path + strlen("/v1/campaigns/");
	slash = strchr(rest, '/');
	size_t idlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (idlen == 0 || idlen >= sizeof(r->id)) {
		pond_http_reply_error(r->req, 404, "not_found",
		                      "no such campaign");
		return (false);
	}
	memcpy(r->id, rest, idlen);
	if (!post && slash == NULL) {
		r->action = API_SHOW;
	} else if (post && slash != NULL && strcmp(slash, "/pause") == 0) {
		r->action = API_PAUSE;
	} else if (post && slash != NULL && strcmp(slash, "/resume") == 0) {
		r->action = API_RESUME;
	} else {
		pond_http_reply_error(r->req, 404, "not_found",
		                      "expected /v1/campaigns/ID, "
		                      "/v1/campaigns/ID/pause or "
		                      "/v1/campaigns/ID/resume");
		return (false);
	}
	return (true);
}

/* api_body parses and checks a create body; false when it has answered. */
static bool
api_body(api_req *r)
{
	size_t len;
	const char *body = pond_http_body(r->req, &len);
	json_error_t jerr;
	scheduler_campaign c;

	if ((r->body = json_loadb(body, len, 0, &jerr)) == NULL) {
		pond_http_reply_error(r->req, 400, "bad_request",
		                      "not JSON at line %d, column %d: %s",
		                      jerr.line, jerr.column, jerr.text);
		return (false);
	}
	if (scheduler_campaign_parse(r->body, &c, r->message,
	                             sizeof(r->message)) != 0) {
		pond_http_reply_error(r->req, 400, "bad_campaign", "%s",
		                      r->message);
		return (false);
	}
	scheduler_campaign_clear(&c);
	return (true);
}

static void
api_on_http(pond_http_req *req, void *arg)
{
	scheduler *s = arg;
	const char *token = pond_http_bearer(req);
	api_req *r;

	if (s->stopping) {
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
	r->s = s;
	r->req = req;
	snprintf(r->token, sizeof(r->token), "%s", token);
	if (!api_route(r) || (r->action == API_CREATE && !api_body(r))) {
		json_decref(r->body);
		free(r);
		return;
	}
	if (pond_db_submit(s->svc->db, api_work, api_done, r) != 0) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "shutting down; try again");
		json_decref(r->body);
		free(r);
		return;
	}
	s->jobs++;
}

int
scheduler_api_routes(scheduler *s)
{
	pond_http *h = s->svc->http;
	int rv;

	if ((rv = pond_http_route(h, "GET", "/v1/campaigns", false,
	                          api_on_http, s)) != 0 ||
	    (rv = pond_http_route(h, "POST", "/v1/campaigns", false,
	                          api_on_http, s)) != 0 ||
	    (rv = pond_http_route(h, "GET", "/v1/campaigns/", true,
	                          api_on_http, s)) != 0 ||
	    (rv = pond_http_route(h, "POST", "/v1/campaigns/", true,
	                          api_on_http, s)) != 0) {
		return (rv);
	}
	return (POND_OK);
}
