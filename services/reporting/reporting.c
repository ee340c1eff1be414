/*
 * reporting.c - the reporting service: three stream consumers, and one
 * dispatch that answers reports over HTTP and NNG alike.
 *
 * A request (HTTP or a ReportRequest over REP) becomes a reporting_call:
 * its action, token and parameters, copied. A store job checks the token
 * (read or admin; goal writes need admin), runs the report from the fact
 * tables and leaves the reply (or the error) in the call; back on the
 * loop the call is answered on the transport it came in on. The report
 * code never knows which transport asked.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "pond/report.pb-c.h"
#include "reporting.h"
#include "token.h"

/* REPORTING_MAX_MSG bounds a ReportRequest. */
#define REPORTING_MAX_MSG (64 * 1024)

#define MAX_PARAMS 32

static const struct {
	const char *name;
	reporting_report_fn fn;
} reports[] = {
        {"acquisition", reporting_acquisition},
        {"ltv", reporting_ltv},
        {"payback", reporting_payback},
        {"repurchase", reporting_repurchase},
        {"lifecycle", reporting_lifecycle},
        {"retention", reporting_retention},
        {"funnel", reporting_funnel},
        {"campaigns", reporting_campaigns},
        {"fission", reporting_fission},
        {"guides", reporting_guides},
        {"portrait", reporting_portrait},
};

reporting_report_fn
reporting_find(const char *name)
{
	for (size_t i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		if (strcmp(reports[i].name, name) == 0) {
			return (reports[i].fn);
		}
	}
	return (NULL);
}

int
reporting_run(PGconn *conn, reporting *rp, const char *name,
              const reporting_kv *kv, size_t n, json_t **out,
              reporting_error *err)
{
	char base[32];
	const char *slash = strchr(name, '/');
	size_t len = slash != NULL ? (size_t)(slash - name) : strlen(name);
	reporting_report_fn fn = NULL;
	reporting_args a;
	int rv;

	if (len < sizeof(base)) {
		memcpy(base, name, len);
		base[len] = '\0';
		fn = reporting_find(base);
	}
	/* Only campaigns takes an ID after the name. */
	if (fn == NULL || (slash != NULL && (strcmp(base, "campaigns") != 0 ||
	                                     slash[1] == '\0'))) {
		return (reporting_fail(err, 404, "not_found",
		                       "no report \"%.64s\" (docs/api.md)",
		                       name));
	}
	if ((rv = reporting_parse_args(base, kv, n, pond_now(), &a, err)) !=
	    0) {
		return (rv);
	}
	if (slash != NULL) {
		a.campaign_id = slash + 1;
	}
	/* JIT compiling a report's plan costs 0.2-13 s on a large history
	 * (BENCHMARKS.md), more than the queries it would speed up; starting
	 * parallel workers costs more than the index scans of the cells take
	 * (guides: 160 of 230 ms on a busy machine, for a branch that did not
	 * run), and their cores are the consumers'. */
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "SELECT set_config('jit', 'off', false), "
	             "set_config('max_parallel_workers_per_gather', "
	             "'0', false)",
	             0, NULL)) != 0) {
		return (rv);
	}
	return (fn(conn, rp, &a, out, err));
}

/* --- calls
 * ---------------------------------------------------------------------- */

typedef enum call_action {
	CALL_REPORT,
	CALL_GOALS_LIST,
	CALL_GOAL_PUT,
	CALL_GOAL_DELETE,
	CALL_CUSTOMER,
} call_action;

/* reporting_call is one request in flight; everything it points to is
 * its own copy, freed by call_free. */
typedef struct reporting_call {
	reporting *rp;
	call_action action;
	char *token;
	char *target; /* report name, goal id or customer key */
	char *body;   /* goal PUT */
	reporting_kv kv[MAX_PARAMS];
	size_t nkv;
	pond_http_req *http;
	pond_rep_req *rep;
	/* Outcome. */
	int rv;
	json_t *reply;
	reporting_error err;
} reporting_call;

static void
call_free(reporting_call *c)
{
	for (size_t i = 0; i < c->nkv; i++) {
		free((char *)c->kv[i].key);
		free((char *)c->kv[i].value);
	}
	free(c->token);
	free(c->target);
	free(c->body);
	json_decref(c->reply);
	free(c);
}

static int
call_add_kv(reporting_call *c, const char *k, const char *v)
{
	if (c->nkv == MAX_PARAMS) {
		return (POND_ETOOBIG);
	}
	c->kv[c->nkv].key = strdup(k);
	c->kv[c->nkv].value = strdup(v);
	if (c->kv[c->nkv].key == NULL || c->kv[c->nkv].value == NULL) {
		free((char *)c->kv[c->nkv].key);
		free((char *)c->kv[c->nkv].value);
		return (POND_ENOMEM);
	}
	c->nkv++;
	return (POND_OK);
}

static int
call_work(PGconn *conn, void *arg)
{
	reporting_call *c = arg;
	pond_role role = pond_api_token_role(conn, c->token);

	if (role == POND_ROLE_NONE) {
		c->rv = reporting_fail(&c->err, 401, "unauthorized",
		                       "a read or admin API token is needed "
		                       "(Authorization: Bearer ...)");
		return (POND_OK);
	}
	switch (c->action) {
	case CALL_REPORT:
		c->rv = reporting_run(conn, c->rp, c->target, c->kv, c->nkv,
		                      &c->reply, &c->err);
		break;
	case CALL_GOALS_LIST:
		c->rv = reporting_goals_list(conn, c->rp, &c->reply, &c->err);
		break;
	case CALL_GOAL_PUT:
	case CALL_GOAL_DELETE:
		if (role != POND_ROLE_ADMIN) {
			pond_auth_refused(POND_AUTH_ROLE);
			c->rv = reporting_fail(
			        &c->err, 403, "forbidden",
			        "goals are changed with an admin "
			        "token");
		} else if (c->action == CALL_GOAL_PUT) {
			c->rv = reporting_goal_put(conn, c->rp, c->target,
			                           c->body, &c->reply,
			                           &c->err);
		} else {
			c->rv = reporting_goal_delete(conn, c->rp, c->target,
			                              &c->reply, &c->err);
		}
		break;
	case CALL_CUSTOMER:
		c->rv = reporting_customer(conn, c->rp, c->target, &c->reply,
		                           &c->err);
		break;
	}
	if (c->rv != 0 && c->err.status == 0) {
		c->rv = reporting_fail(&c->err, 503, "unavailable",
		                       "the store failed; try again");
	}
	return (POND_OK);
}

static void
call_reply_rep(reporting_call *c)
{
	Pond__ReportReply reply = POND__REPORT_REPLY__INIT;
	char *json = NULL;
	uint8_t *buf;
	size_t len;

	if (c->rv == 0) {
		reply.status = 200;
		json = json_dumps(c->reply, JSON_COMPACT);
		reply.json = json != NULL ? json : "";
	} else {
		reply.status = c->err.status;
		reply.error_code = (char *)c->err.code;
		reply.error = c->err.message;
	}
	len = pond__report_reply__get_packed_size(&reply);
	if ((buf = malloc(len + 1)) != NULL) {
		pond__report_reply__pack(&reply, buf);
		pond_rep_reply(c->rep, buf, len);
	} else {
		pond_rep_reply(c->rep, "", 0);
	}
	free(buf);
	free(json);
}

static void
call_done(int rv, void *arg)
{
	reporting_call *c = arg;
	reporting *rp = c->rp;

	if (rv != 0 && c->rv == 0 && c->reply == NULL) {
		c->rv = reporting_fail(&c->err, 503, "unavailable",
		                       "the store is unavailable");
	}
	if (c->rv == 0 && c->reply == NULL) {
		c->rv = reporting_fail(&c->err, 500, "internal",
		                       "no reply was built");
	}
	pond_counter_inc(c->rv == 0 ? &rp->counters.requests
	                            : &rp->counters.bad_requests);
	if (c->rep != NULL) {
		call_reply_rep(c);
	} else if (c->rv == 0) {
		pond_http_reply_json(c->http, 200, c->reply);
		c->reply = NULL;
	} else {
		pond_http_reply_error(c->http, c->err.status, c->err.code,
		                      "%s", c->err.message);
	}
	rp->requests--;
	call_free(c);
	if (rp->stopping) {
		reporting_maybe_stopped(rp);
	}
}

/* call_submit queues c's work: reads on the POND_REPORTING_DSN pool (a
 * replica) when there is one, goal changes always on the primary. */
static void
call_submit(reporting_call *c)
{
	bool writes =
	        c->action == CALL_GOAL_PUT || c->action == CALL_GOAL_DELETE;
	pond_db *db = c->rp->reads != NULL && !writes ? c->rp->reads
	                                              : c->rp->svc->db;

	/* A failed check of the day cells' zone is tried again here (at
	 * most once a minute); the request does not wait for it. It fails
	 * only when the pool is closing, as the submit below then does. */
	if (reporting_cells_check(c->rp) != 0) {
		pond_log_debug("cells_check_not_submitted", "why=closing");
	}
	if (pond_db_submit(db, call_work, call_done, c) != 0) {
		c->rv = reporting_fail(&c->err, 503, "unavailable",
		                       "shutting down");
		c->rp->requests++;
		call_done(POND_ECLOSED, c);
		return;
	}
	c->rp->requests++;
}

static reporting_call *
call_new(reporting *rp, call_action action, const char *token,
         const char *target)
{
	reporting_call *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		return (NULL);
	}
	c->rp = rp;
	c->action = action;
	c->token = strdup(token != NULL ? token : "");
	c->target = strdup(target != NULL ? target : "");
	if (c->token == NULL || c->target == NULL) {
		call_free(c);
		return (NULL);
	}
	return (c);
}

/* --- HTTP
 * ----------------------------------------------------------------------- */

static void
on_http(pond_http_req *req, void *arg, call_action action, const char *prefix)
{
	reporting *rp = arg;
	const char *path = pond_http_path(req);
	const char *target = path + strlen(prefix);
	reporting_call *c;

	if ((c = call_new(rp, action, pond_http_bearer(req), target)) ==
	    NULL) {
		pond_http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	c->http = req;
	for (size_t i = 0; reporting_param_names[i] != NULL; i++) {
		const char *v = pond_http_query(req, reporting_param_names[i]);
		if (v != NULL &&
		    call_add_kv(c, reporting_param_names[i], v) != 0) {
			call_free(c);
			pond_http_reply_error(req, 500, "internal",
			                      "out of memory");
			return;
		}
	}
	if (action == CALL_GOAL_PUT) {
		size_t len;
		const char *body = pond_http_body(req, &len);
		if ((c->body = strdup(body)) == NULL) {
			call_free(c);
			pond_http_reply_error(req, 500, "internal",
			                      "out of memory");
			return;
		}
	}
	if (action != CALL_GOALS_LIST && *target == '\0') {
		call_free(c);
		pond_http_reply_error(req, 404, "not_found", "%s needs a name",
		                      prefix);
		return;
	}
	call_submit(c);
}

static void
on_report(pond_http_req *req, void *arg)
{
	on_http(req, arg, CALL_REPORT, "/v1/reports/");
}

static void
on_goals(pond_http_req *req, void *arg)
{
	on_http(req, arg, CALL_GOALS_LIST, "/v1/goals");
}

static void
on_goal_put(pond_http_req *req, void *arg)
{
	on_http(req, arg, CALL_GOAL_PUT, "/v1/goals/");
}

static void
on_goal_delete(pond_http_req *req, void *arg)
{
	on_http(req, arg, CALL_GOAL_DELETE, "/v1/goals/");
}

static void
on_customer(pond_http_req *req, void *arg)
{
	on_http(req, arg, CALL_CUSTOMER, "/v1/customers/");
}

/* --- NNG
 * ------------------------------------------------------------------------ */

static void
rep_error(pond_rep_req *req, unsigned status, const char *code,
          const char *msg)
{
	Pond__ReportReply reply = POND__REPORT_REPLY__INIT;
	uint8_t buf[512];

	reply.status = status;
	reply.error_code = (char *)code;
	reply.error = (char *)msg;
	if (pond__report_reply__get_packed_size(&reply) <= sizeof(buf)) {
		pond_rep_reply(req, buf,
		               pond__report_reply__pack(&reply, buf));
	} else {
		pond_rep_reply(req, "", 0);
	}
}

static void
on_nng(pond_rep_req *req, const uint8_t *body, size_t len, void *arg)
{
	reporting *rp = arg;
	Pond__ReportRequest *r = NULL;
	reporting_call *c = NULL;
	call_action action = CALL_REPORT;
	const char *target;

	if (len > REPORTING_MAX_MSG ||
	    (r = pond__report_request__unpack(NULL, len, body)) == NULL) {
		rep_error(req, 400, "undecodable",
		          "not a pond.ReportRequest (or over 64 KiB)");
		return;
	}
	target = r->report;
	if (strcmp(target, "goals") == 0) {
		action = CALL_GOALS_LIST;
	} else if (strncmp(target, "customers/", 10) == 0) {
		action = CALL_CUSTOMER;
		target += 10;
	}
	if ((c = call_new(rp, action, r->token, target)) == NULL) {
		rep_error(req, 500, "internal", "out of memory");
		goto out;
	}
	c->rep = req;
	for (size_t i = 0; i < r->n_params; i++) {
		if (call_add_kv(c, r->params[i]->key, r->params[i]->value) !=
		    0) {
			call_free(c);
			rep_error(req, 400, "bad_parameter",
			          "too many parameters");
			goto out;
		}
	}
	call_submit(c);
out:
	pond__report_request__free_unpacked(r, NULL);
}

/* --- start and stop
 * -------------------------------------------------------------- */

static int
register_metrics(reporting *rp, pond_metrics *m)
{
	reporting_counters *c = &rp->counters;
	int rv;

	if ((rv = pond_metrics_counter(m, "pond_reporting_records_total",
	                               "Stream records applied to the fact "
	                               "tables.",
	                               NULL, &c->facts)) != 0 ||
	    (rv = pond_metrics_counter(m,
	                               "pond_reporting_undecodable_records_"
	                               "total",
	                               "Stream records that did not decode "
	                               "(skipped).",
	                               NULL, &c->bad_records)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_reporting_answers_total",
	                               "Reports answered, HTTP and NNG.",
	                               "result=\"ok\"", &c->requests)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_reporting_answers_total",
	                               "Reports answered, HTTP and NNG.",
	                               "result=\"error\"",
	                               &c->bad_requests)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_reporting_cells_folded_total",
	                               "Day cells of a partition folded into "
	                               "one row per cell.",
	                               NULL, &c->folded)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

static int
register_routes(reporting *rp, pond_http *h)
{
	int rv;

	if ((rv = pond_http_route(h, "GET", "/v1/reports/", true, on_report,
	                          rp)) != 0 ||
	    (rv = pond_http_route(h, "GET", "/v1/goals", false, on_goals,
	                          rp)) != 0 ||
	    (rv = pond_http_route(h, "PUT", "/v1/goals/", true, on_goal_put,
	                          rp)) != 0 ||
	    (rv = pond_http_route(h, "DELETE", "/v1/goals/", true,
	                          on_goal_delete, rp)) != 0 ||
	    (rv = pond_http_route(h, "GET", "/v1/customers/", true,
	                          on_customer, rp)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

static pond_consumer_config consumer_confs[3];

int
reporting_start(pond_service *svc)
{
	reporting *rp = svc->ctx;
	const char *why = NULL;
	int rv;

	rp->svc = svc;
	rp->tz = svc->conf.tz;
	rp->nparts = (uint32_t)svc->conf.partitions;
	/* YYYY-MM-DD parameters are midnight in POND_TZ (mktime). */
	setenv("TZ", svc->conf.tz, 1);
	tzset();
	if (reporting_tiers_parse(rp->conf.commission_tiers, rp->tiers,
	                          &rp->ntiers, &why) != 0) {
		pond_log_error("config_invalid",
		               "var=POND_COMMISSION_TIERS why=\"%s\"", why);
		return (POND_EINVAL);
	}
	const char *streams[3] = {POND_STREAM_EVENTS, POND_STREAM_TAG_CHANGES,
	                          POND_STREAM_TOUCHES};
	const char *tables[3] = {NULL, NULL, "touch_changes"};
	const char *subs[3] = {rp->conf.events_sub_urls,
	                       rp->conf.tag_changes_sub_urls,
	                       rp->conf.touches_sub_urls};
	pond_apply_fn applies[3] = {reporting_apply_events,
	                            reporting_apply_tag_changes,
	                            reporting_apply_touches};
	if (rp->conf.reads_dsn[0] != '\0' &&
	    (rv = pond_db_open(&rp->reads, svc->loop, rp->conf.reads_dsn,
	                       (int)svc->conf.db_conns, "reporting-reads")) !=
	            0) {
		pond_log_error("reads_store_failed",
		               "var=POND_REPORTING_DSN why=\"%s\"",
		               pond_strerror(rv));
		return (rv);
	}
	if ((rv = register_metrics(rp, svc->metrics)) != 0 ||
	    (rv = register_routes(rp, svc->http)) != 0 ||
	    (rv = pond_rep_listen(&rp->rep, svc->bus, rp->conf.nng_url, 16,
	                          REPORTING_MAX_MSG + 4096, on_nng, rp)) !=
	            0) {
		return (rv);
	}
	for (int i = 0; i < 3; i++) {
		consumer_confs[i] = (pond_consumer_config){
		        .name = "reporting",
		        .stream = streams[i],
		        .table = tables[i],
		        .dsn = svc->conf.dsn,
		        .sub_urls = subs[i],
		        .batch = (uint32_t)rp->conf.batch,
		        .apply = applies[i],
		        .arg = rp,
		};
		if ((rv = pond_consumer_start(&rp->consumers[i], svc->loop,
		                              svc->bus, svc->db, svc->metrics,
		                              &consumer_confs[i])) != 0) {
			return (rv);
		}
		rp->consumers_running++;
	}
	if ((rv = reporting_cells_check(rp)) != 0 ||
	    (rv = reporting_fold_start(rp)) != 0) {
		return (rv);
	}
	pond_log_info("listening", "nng=%s", pond_rep_url(rp->rep));
	return (POND_OK);
}

bool
reporting_healthy(pond_service *svc, char *why, size_t len)
{
	reporting *rp = svc->ctx;

	if (rp->consumers_running < 3) {
		snprintf(why, len, "the stream consumers are not running");
		return (false);
	}
	return (true);
}

static void
reads_closed(void *arg)
{
	reporting_maybe_stopped(arg);
}

void
reporting_maybe_stopped(reporting *rp)
{
	if (rp->consumers_running > 0 || rp->rep != NULL || rp->requests > 0) {
		return;
	}
	if (rp->reads != NULL) {
		pond_db *reads = rp->reads;
		rp->reads = NULL;
		pond_db_close(reads, reads_closed, rp);
		return;
	}
	pond_service_stopped(rp->svc);
}

static void
consumer_stopped(void *arg)
{
	reporting *rp = arg;

	rp->consumers_running--;
	reporting_maybe_stopped(rp);
}

static void
rep_stopped(void *arg)
{
	reporting *rp = arg;

	pond_rep_close(rp->rep);
	rp->rep = NULL;
	reporting_maybe_stopped(rp);
}

void
reporting_stop(pond_service *svc)
{
	reporting *rp = svc->ctx;

	rp->stopping = true;
	reporting_fold_stop(rp);
	for (int i = 0; i < 3; i++) {
		if (rp->consumers[i] != NULL) {
			pond_consumer_stop(rp->consumers[i], consumer_stopped,
			                   rp);
			rp->consumers[i] = NULL;
		}
	}
	if (rp->rep != NULL) {
		pond_rep_stop(rp->rep, rep_stopped, rp);
	}
	reporting_maybe_stopped(rp);
}
