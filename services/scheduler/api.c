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

#include "apicall.h"
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
	pond_api_call call; /* first: the call is the request */
	scheduler *s;
	api_action action;
	char id[128];
	json_t *body;
} api_req;

static int
api_work(PGconn *conn, pond_api_call *call)
{
	api_req *r = (api_req *)call;
	int rv;

	switch (r->action) {
	case API_CREATE:
		rv = scheduler_campaign_create(conn, r->body, &call->reply,
		                               call->message,
		                               sizeof(call->message));
		if (rv == POND_EINVAL) {
			return (pond_api_fail(call, 400, "bad_campaign",
			                      call->message));
		}
		if (rv == POND_EEXIST) {
			return (pond_api_fail(call, 409, "exists",
			                      call->message));
		}
		call->status = 201;
		break;
	case API_LIST:
		rv = scheduler_campaign_show(conn, NULL, &call->reply);
		break;
	case API_SHOW:
		rv = scheduler_campaign_show(conn, r->id, &call->reply);
		break;
	default:
		rv = scheduler_campaign_pause(
		        conn, r->id, r->action == API_PAUSE, &call->reply);
		break;
	}
	if (rv == POND_ENOENT) {
		return (pond_api_fail(call, 404, "not_found",
		                      "no such campaign"));
	}
	return (rv);
}

static void
api_free(api_req *r)
{
	json_decref(r->body);
	free(r);
}

static void
api_done(pond_api_call *call, int rv)
{
	api_req *r = (api_req *)call;
	scheduler *s = r->s;

	(void)rv;
	api_free(r);
	s->jobs--;
	scheduler_maybe_stopped(s);
}

static const pond_api_ops api_ops = {api_work, api_done};

/* api_route works out the action from method and path; false when it has
 * answered the request itself. */
static bool
api_route(api_req *r)
{
	const char *path = pond_http_path(r->call.req);
	bool post = strcmp(pond_http_method(r->call.req), "POST") == 0;
	const char *rest, *slash;

	if (strcmp(path, "/v1/campaigns") == 0) {
		r->action = post ? API_CREATE : API_LIST;
		return (true);
	}
	rest = path + strlen("/v1/campaigns/");
	slash = strchr(rest, '/');
	size_t idlen = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (idlen == 0 || idlen >= sizeof(r->id)) {
		pond_http_reply_error(r->call.req, 404, "not_found",
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
		pond_http_reply_error(r->call.req, 404, "not_found",
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
	const char *body = pond_http_body(r->call.req, &len);
	json_error_t jerr;
	scheduler_campaign c;

	if ((r->body = json_loadb(body, len, 0, &jerr)) == NULL) {
		pond_http_reply_error(r->call.req, 400, "bad_request",
		                      "not JSON at line %d, column %d: %s",
		                      jerr.line, jerr.column, jerr.text);
		return (false);
	}
	if (scheduler_campaign_parse(r->body, &c, r->call.message,
	                             sizeof(r->call.message)) != 0) {
		pond_http_reply_error(r->call.req, 400, "bad_campaign", "%s",
		                      r->call.message);
		return (false);
	}
	scheduler_campaign_clear(&c);
	return (true);
}

static void
api_on_http(pond_http_req *req, void *arg)
{
	scheduler *s = arg;
	api_req *r;

	if ((r = pond_api_call_new(req, s->stopping, sizeof(*r))) == NULL) {
		return;
	}
	r->s = s;
	r->call.ops = &api_ops;
	r->call.forbidden = "changing campaigns needs an admin token";
	if (!api_route(r) || (r->action == API_CREATE && !api_body(r))) {
		api_free(r);
		return;
	}
	r->call.writes = r->action != API_LIST && r->action != API_SHOW;
	if (pond_api_call_submit(s->svc->db, &r->call) != 0) {
		api_free(r);
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
