/*
 * apicall.h - an HTTP API request answered from the store, the shape the
 * operators' APIs share (the tag-rule API of tagging, the campaign API of
 * the scheduler): a bearer token checked on the loop for presence and in
 * the store for its role, the service's work on a pooled connection, and
 * one reply -- the work's JSON, or {"error": ...} with its status.
 *
 * A service embeds pond_api_call as the first member of its own request
 * struct, fills ops / writes / forbidden and its own fields after
 * pond_api_call_new, and hands it to pond_api_call_submit. The call owns
 * the request from then on: ops->done runs once, on the loop, after the
 * reply is sent (the service's bookkeeping and free).
 */
#ifndef POND_APICALL_H
#define POND_APICALL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "http.h"
#include "token.h"

typedef struct pond_api_call pond_api_call;

typedef struct pond_api_ops {
	/* work runs on a store connection once the token has the role the
	 * call needs; it sets reply (status 200 unless set) or calls
	 * pond_api_fail; a non-zero return is a store failure (503). */
	int (*work)(PGconn *conn, pond_api_call *c);
	/* done runs on the loop after the reply; rv is work's. */
	void (*done)(pond_api_call *c, int rv);
} pond_api_ops;

struct pond_api_call {
	pond_http_req *req;
	const pond_api_ops *ops;
	char token[POND_TOKEN_MAX + 1];
	bool writes;           /* needs an admin token */
	const char *forbidden; /* the 403 message when it is not one */
	/* Outcome. */
	unsigned status;
	const char *code;
	char message[300];
	json_t *reply;
};

/* pond_api_call_new allocates a zeroed request of size bytes (at least
 * sizeof(pond_api_call), which it starts with) for req, with its bearer
 * token. It answers the request itself and returns NULL when the service
 * is stopping (503), the token is missing or too long (401), or memory
 * is short. */
void *pond_api_call_new(pond_http_req *req, bool stopping, size_t size);

/* pond_api_call_submit queues c's work on db; non-zero (the service is
 * stopping) after answering 503, and then c is still the caller's. */
int pond_api_call_submit(pond_db *db, pond_api_call *c);

/* pond_api_fail records an error reply (message copied) and returns
 * POND_OK, for work to return. */
int pond_api_fail(pond_api_call *c, unsigned status, const char *code,
                  const char *message);

#endif
