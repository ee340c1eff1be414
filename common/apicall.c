/*
 * apicall.c - an HTTP API request answered from the store (apicall.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apicall.h"

static const char token_required[] =
        "Authorization: Bearer <API token> is required";

void *
pond_api_call_new(pond_http_req *req, bool stopping, size_t size)
{
	const char *token = pond_http_bearer(req);
	pond_api_call *c;

	if (stopping) {
		pond_http_reply_error(req, 503, "unavailable",
		                      "shutting down; try again");
		return (NULL);
	}
	if (token == NULL || strlen(token) > POND_TOKEN_MAX) {
		pond_http_reply_error(req, 401, "unauthorized", "%s",
		                      token_required);
		return (NULL);
	}
	if ((c = calloc(1, size)) == NULL) {
		pond_http_reply_error(req, 503, "no_memory", "out of memory");
		return (NULL);
	}
	c->req = req;
	snprintf(c->token, sizeof(c->token), "%s", token);
	return (c);
}

int
pond_api_fail(pond_api_call *c, unsigned status, const char *code,
              const char *message)
{
	c->status = status;
	c->code = code;
	if (message != c->message) {
		snprintf(c->message, sizeof(c->message), "%s", message);
	}
	return (POND_OK);
}

static int
api_call_work(PGconn *conn, void *arg)
{
	pond_api_call *c = arg;
	pond_role role = pond_api_token_role(conn, c->token);

	if (role == POND_ROLE_NONE) {
		return (pond_api_fail(c, 401, "unauthorized", token_required));
	}
	if (c->writes && role != POND_ROLE_ADMIN) {
		pond_auth_refused(POND_AUTH_ROLE);
		return (pond_api_fail(c, 403, "forbidden", c->forbidden));
	}
	return (c->ops->work(conn, c));
}

static void
api_call_done(int rv, void *arg)
{
	pond_api_call *c = arg;

	if (rv != 0) {
		pond_http_reply_error(c->req, 503, "unavailable",
		                      "the store failed: %s",
		                      pond_strerror(rv));
	} else if (c->reply == NULL) {
		pond_http_reply_error(c->req, c->status, c->code, "%s",
		                      c->message);
	} else {
		pond_http_reply_json(c->req, c->status != 0 ? c->status : 200,
		                     c->reply);
		c->reply = NULL;
	}
	json_decref(c->reply);
	c->reply = NULL;
	c->ops->done(c, rv);
}

int
pond_api_call_submit(pond_db *db, pond_api_call *c)
{
	if (pond_db_submit(db, api_call_work, api_call_done, c) != 0) {
		pond_http_reply_error(c->req, 503, "unavailable",
		                      "shutting down; try again");
		return (POND_ECLOSED);
	}
	return (POND_OK);
}
