/*
 * dispatch.c - the due queue, one-shot campaigns and the gateways.
 *
 * Every POND_SCHEDULER_TICK_MS one store job runs, in short transactions:
 *
 *   1. one batch of a due one-shot ({at: TIME}) campaign: its row locked
 *      (SKIP LOCKED, so replicas take different campaigns), the next
 *      customers of its audience after its cursor selected, the cursor
 *      moved, all in one transaction;
 *   2. one batch of the due queue: touches scheduled or deferred whose
 *      due_at has come and whose lease has run out, taken FOR UPDATE SKIP
 *      LOCKED and leased for POND_TOUCH_RESEND_S, so a second replica does
 *      not send them while the first awaits the ack.
 *
 * Back on the loop the leased touches go out per channel as a TouchBatch
 * over NNG REQ. An ack moves each listed touch to sent (once: a second ack
 * finds it sent already). No ack within POND_TOUCH_RESEND_S: the lease is
 * given up and the next tick sends again; the gateway dedupes by touch_id.
 * A crash at any point leaves each touch either committed and leased (sent
 * again when the lease runs out) or sent: none is lost, none made twice.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "pond/touch.pb-c.h"
#include "scheduler.h"
#include "service.h"

#define TOUCH_MAX_MSG (4u << 20)

/* due_touch is one leased touch on its way to its gateway. */
typedef struct due_touch {
	uint32_t partition;
	char *customer_key;
	char *touch_id;
	char *campaign_id;
	char *channel;
	char *template;
	char *params;  /* JSON object text */
	char *aliases; /* JSON array text of {kind, value} */
} due_touch;

/* tick_job is one tick's store work and its outcome. */
typedef struct tick_job {
	scheduler *s;
	pond_arena arena;
	scheduler_changes changes; /* committed, to announce */
	due_touch *due;
	size_t ndue;
	int64_t depth;
	pond_time lease_until;
} tick_job;

/* gateway_call is one TouchBatch in flight. */
typedef struct gateway_call {
	scheduler *s;
	pond_arena arena;
	due_touch *touches;
	size_t n;
	pond_time lease_until;
	scheduler_changes changes;
	char **acked; /* touch ids to mark sent */
	uint32_t *parts;
	char **keys;
	size_t nacked;
	bool release; /* give the lease up (no ack) */
} gateway_call;

static scheduler_gateway *
gateway_of(scheduler *s, const char *channel)
{
	for (size_t i = 0; i < s->ngateways; i++) {
		if (strcmp(s->gateways[i].channel, channel) == 0) {
			return (&s->gateways[i]);
		}
	}
	return (NULL);
}

/* --- one-shot campaigns ------------------------------------------------- */

/* tick_oneshot runs one batch of one due {at: TIME} campaign. */
static int
tick_oneshot(tick_job *j, PGconn *conn, pond_time now)
{
	scheduler *s = j->s;
	scheduler_campaigns cs = {0};
	scheduler_selections sel = {0};
	scheduler_campaign *c = NULL;
	char nowbuf[40], limit[16], part[16];
	PGresult *res = NULL;
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	const char *p1[] = {
	        pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf))};
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT id, at_cursor_part, at_cursor_key "
	             "FROM campaigns WHERE trigger_kind = 'at' AND "
	             "NOT at_done AND NOT paused AND "
	             "(CASE WHEN trigger_kind = 'at' THEN "
	             "trigger_value::timestamptz END) <= $1 ORDER BY id "
	             "LIMIT 1 FOR UPDATE SKIP LOCKED",
	             1, p1)) != 0) {
		goto fail;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return (pond_pq_exec(conn, "COMMIT"));
	}
	char *id = pond_arena_strdup(&j->arena, PQgetvalue(res, 0, 0));
	snprintf(part, sizeof(part), "%s", PQgetvalue(res, 0, 1));
	char *ckey = pond_arena_strdup(&j->arena, PQgetvalue(res, 0, 2));
	PQclear(res);
	res = NULL;
	if ((rv = scheduler_campaigns_load(conn, &cs)) != 0) {
		goto fail;
	}
	for (size_t i = 0; i < cs.n; i++) {
		if (strcmp(cs.v[i].id, id) == 0) {
			c = &cs.v[i];
		}
	}
	if (c == NULL) {
		/* Its spec no longer parses (logged): close it. */
		const char *p[] = {id};
		rv = pond_pq_query(conn, NULL,
		                   "UPDATE campaigns SET at_done = true WHERE "
		                   "id = $1",
		                   1, p);
		goto commit;
	}
	snprintf(limit, sizeof(limit), "%" PRId64, s->conf.batch);
	const char *p2[] = {part, ckey, limit};
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT partition, customer_key FROM "
	                        "customer_profiles WHERE (partition, "
	                        "customer_key) > ($1::int, $2) ORDER BY "
	                        "partition, customer_key LIMIT $3::int",
	                        3, p2)) != 0) {
		goto fail;
	}
	int rows = PQntuples(res);
	for (int r = 0; r < rows; r++) {
		scheduler_cause cause = {
		        .partition = (uint32_t)strtoul(PQgetvalue(res, r, 0),
		                                       NULL, 10),
		        .customer_key = pond_arena_strdup(
		                &j->arena, PQgetvalue(res, r, 1)),
		        .tag = "at",
		        .selected_at = c->at,
		};
		if (cause.customer_key == NULL) {
			rv = POND_ENOMEM;
			goto fail;
		}
		if ((rv = scheduler_selections_add(&sel, &j->arena, c,
		                                   &cause)) != 0) {
			goto fail;
		}
	}
	if ((rv = scheduler_select(conn, &j->arena, &s->rules, &sel,
	                           &j->changes)) != 0) {
		goto fail;
	}
	const char *p3[] = {id, rows > 0 ? PQgetvalue(res, rows - 1, 0) : part,
	                    rows > 0 ? PQgetvalue(res, rows - 1, 1) : ckey,
	                    rows < s->conf.batch ? "t" : "f"};
	rv = pond_pq_query(conn, NULL,
	                   "UPDATE campaigns SET at_cursor_part = $2::int, "
	                   "at_cursor_key = $3, at_done = $4::boolean WHERE "
	                   "id = $1",
	                   4, p3);
	PQclear(res);
	res = NULL;
commit:
	if (rv != 0 ||
	    (rv = scheduler_changes_write(conn, &j->arena, s->nparts,
	                                  &j->changes)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	scheduler_selections_free(&sel);
	scheduler_campaigns_free(&cs);
	return (POND_OK);
fail:
	PQclear(res);
	scheduler_selections_free(&sel);
	scheduler_campaigns_free(&cs);
	pond_pq_rollback(conn);
	j->changes.n = 0;
	return (rv);
}

/* --- the due queue ------------------------------------------------------- */

/* tick_due leases one batch of due touches; those whose channel has no
 * gateway fail at once (reason no_gateway). */
static int
tick_due(tick_job *j, PGconn *conn, pond_time now)
{
	scheduler *s = j->s;
	char nowbuf[40], leasebuf[40], limit[16];
	PGresult *res = NULL;
	size_t first_change = j->changes.n;
	int rv;

	j->lease_until = now + s->conf.resend_s * POND_USEC_PER_SEC;
	snprintf(limit, sizeof(limit), "%" PRId64, s->conf.batch);
	const char *p[] = {
	        pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf)),
	        pond_time_format_rfc3339(j->lease_until, leasebuf,
	                                 sizeof(leasebuf)),
	        limit};
	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	/* Nothing goes out in quiet hours, even a touch that fell due before
	 * they began and was not sent by then (a backlog, a gateway that was
	 * down): it waits for their end like a touch chosen inside them. */
	bool quiet = scheduler_quiet_end(&s->rules, now) != now;
	if (!quiet &&
	    (rv = pond_pq_query(
	             conn, &res,
	             "WITH due AS (SELECT partition, customer_key, touch_id "
	             "FROM touches WHERE state IN ('scheduled', 'deferred') "
	             "AND due_at <= $1::timestamptz AND (lease_until IS NULL "
	             "OR lease_until <= $1::timestamptz) ORDER BY due_at "
	             "LIMIT $3::int FOR UPDATE SKIP LOCKED) UPDATE touches t "
	             "SET lease_until = $2::timestamptz, attempts = attempts "
	             "+ 1 FROM due WHERE (t.partition, t.customer_key, "
	             "t.touch_id) = (due.partition, due.customer_key, "
	             "due.touch_id) RETURNING t.partition, t.customer_key, "
	             "t.touch_id, t.campaign_id, t.channel, t.template, "
	             "t.params::text, (SELECT coalesce(json_agg(json_build_"
	             "object('kind', a.kind, 'value', a.value) ORDER BY "
	             "a.kind, a.value), '[]')::text FROM customer_aliases a "
	             "WHERE a.customer_key = t.customer_key)",
	             3, p)) != 0) {
		goto fail;
	}
	int rows = res != NULL ? PQntuples(res) : 0;
	if (rows > 0 && (j->due = pond_arena_alloc(
	                         &j->arena, rows * sizeof(*j->due))) == NULL) {
		rv = POND_ENOMEM;
		goto fail;
	}
	for (int r = 0; r < rows; r++) {
		due_touch *d = &j->due[j->ndue];
		d->partition =
		        (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10);
		d->customer_key =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 1));
		d->touch_id =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 2));
		d->campaign_id =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 3));
		d->channel =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 4));
		d->template =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 5));
		d->params =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 6));
		d->aliases =
		        pond_arena_strdup(&j->arena, PQgetvalue(res, r, 7));
		if (d->params == NULL || d->aliases == NULL) {
			rv = POND_ENOMEM;
			goto fail;
		}
		if (gateway_of(s, d->channel) != NULL) {
			j->ndue++;
		} else if ((rv = scheduler_touch_move(
		                    conn, &j->arena, d->partition,
		                    d->customer_key, d->touch_id, "failed",
		                    "no_gateway", now, &j->changes, NULL)) !=
		           0) {
			goto fail;
		}
	}
	PQclear(res);
	res = NULL;
	/* Only this transaction's changes: the one-shot's are written. */
	scheduler_changes mine = {.v = j->changes.v + first_change,
	                          .n = j->changes.n - first_change};
	if ((rv = scheduler_changes_write(conn, &j->arena, s->nparts,
	                                  &mine)) != 0 ||
	    (rv = pond_pq_query(conn, &res,
	                        "SELECT count(*) FROM touches WHERE state IN "
	                        "('scheduled', 'deferred') AND due_at <= "
	                        "$1::timestamptz",
	                        1, p)) != 0) {
		goto fail;
	}
	j->depth = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (pond_pq_exec(conn, "COMMIT"));
fail:
	PQclear(res);
	pond_pq_rollback(conn);
	j->changes.n = first_change;
	j->ndue = 0;
	return (rv);
}

static int
tick_work(PGconn *conn, void *arg)
{
	tick_job *j = arg;
	pond_time now = pond_now();
	int rv;

	/* The one-shot batch first: what it schedules for now goes out in
	 * the same tick. */
	if ((rv = tick_oneshot(j, conn, now)) != 0) {
		pond_log_warn("oneshot_failed", "err=%s", pond_strerror(rv));
	}
	return (tick_due(j, conn, now));
}

static void gateway_send(scheduler *s, tick_job *j);

static void
tick_done(int rv, void *arg)
{
	tick_job *j = arg;
	scheduler *s = j->s;

	s->jobs--;
	s->tick_busy = false;
	scheduler_announce(s, j->changes.v, j->changes.n);
	if (rv == 0) {
		pond_gauge_set(&s->counters.due_depth, j->depth);
		if (!s->stopping) {
			gateway_send(s, j);
		}
	} else {
		pond_counter_inc(&s->counters.dispatch_errors);
	}
	scheduler_changes_free(&j->changes);
	pond_arena_reset(&j->arena);
	free(j);
	scheduler_maybe_stopped(s);
}

static void
tick_cb(uv_timer_t *t)
{
	scheduler *s = t->data;
	tick_job *j;

	if (s->tick_busy || s->stopping ||
	    (j = calloc(1, sizeof(*j))) == NULL) {
		return;
	}
	j->s = s;
	pond_arena_init(&j->arena);
	if (pond_db_submit(s->svc->db, tick_work, tick_done, j) != 0) {
		free(j);
		return;
	}
	s->tick_busy = true;
	s->jobs++;
}

/* --- gateways -------------------------------------------------------------
 */

/* ack_work marks the acked touches sent, or gives up the lease of the
 * batch when no ack came (so the next tick sends it again). */
static int
ack_work(PGconn *conn, void *arg)
{
	gateway_call *call = arg;
	scheduler *s = call->s;
	pond_time now = pond_now();
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < call->nacked; i++) {
		if ((rv = scheduler_touch_move(
		             conn, &call->arena, call->parts[i], call->keys[i],
		             call->acked[i], "sent", NULL, now, &call->changes,
		             NULL)) != 0) {
			goto fail;
		}
	}
	for (size_t i = 0; call->release && i < call->n; i++) {
		char part[16], lease[40];
		snprintf(part, sizeof(part), "%" PRIu32,
		         call->touches[i].partition);
		const char *p[] = {part, call->touches[i].customer_key,
		                   call->touches[i].touch_id,
		                   pond_time_format_rfc3339(call->lease_until,
		                                            lease,
		                                            sizeof(lease))};
		/* Only our own lease: a replica may hold a newer one. */
		if ((rv = pond_pq_query(
		             conn, NULL,
		             "UPDATE touches SET lease_until = NULL "
		             "WHERE partition = $1 AND customer_key "
		             "= $2 AND touch_id = $3 AND lease_until "
		             "= $4::timestamptz",
		             4, p)) != 0) {
			goto fail;
		}
	}
	if ((rv = scheduler_changes_write(conn, &call->arena, s->nparts,
	                                  &call->changes)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	return (POND_OK);
fail:
	pond_pq_rollback(conn);
	call->changes.n = 0;
	return (rv);
}

static void
call_free(gateway_call *call)
{
	scheduler_changes_free(&call->changes);
	pond_arena_reset(&call->arena);
	free(call);
}

static void
ack_done(int rv, void *arg)
{
	gateway_call *call = arg;
	scheduler *s = call->s;

	s->jobs--;
	if (rv != 0) {
		/* The lease runs out and the touches go again. */
		pond_counter_inc(&s->counters.dispatch_errors);
	}
	scheduler_announce(s, call->changes.v, call->changes.n);
	call_free(call);
	scheduler_maybe_stopped(s);
}

/* call_acked collects the acked touch ids that were in this batch (an ack
 * may repeat ids or name others: only ours count, each once). */
static int
call_acked(gateway_call *call, const uint8_t *reply, size_t len)
{
	Pond__TouchAck *ack = pond__touch_ack__unpack(
	        pond_arena_allocator(&call->arena), len, reply);

	if (ack == NULL) {
		return (POND_EINVAL);
	}
	call->acked = pond_arena_alloc(&call->arena, call->n * sizeof(char *));
	call->parts =
	        pond_arena_alloc(&call->arena, call->n * sizeof(uint32_t));
	call->keys = pond_arena_alloc(&call->arena, call->n * sizeof(char *));
	if (call->acked == NULL || call->parts == NULL || call->keys == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t t = 0; t < call->n; t++) {
		for (size_t i = 0; i < ack->n_touch_ids; i++) {
			if (strcmp(ack->touch_ids[i],
			           call->touches[t].touch_id) == 0) {
				call->acked[call->nacked] =
				        call->touches[t].touch_id;
				call->parts[call->nacked] =
				        call->touches[t].partition;
				call->keys[call->nacked++] =
				        call->touches[t].customer_key;
				break;
			}
		}
	}
	return (POND_OK);
}

static void
call_reply(int rv, const uint8_t *reply, size_t len, void *arg)
{
	gateway_call *call = arg;
	scheduler *s = call->s;

	if (rv == 0 && (rv = call_acked(call, reply, len)) != 0) {
		pond_log_warn("gateway_reply_invalid", "err=%s",
		              pond_strerror(rv));
	}
	if (rv == 0) {
		pond_counter_add(&s->counters.acks, call->nacked);
	} else {
		pond_log_info("gateway_no_ack", "touches=%zu err=%s", call->n,
		              pond_strerror(rv));
		call->release = true;
	}
	if (s->stopping && rv == POND_ECLOSED) {
		/* Shutting down: the leases run out on their own. */
		s->jobs--;
		call_free(call);
		scheduler_maybe_stopped(s);
		return;
	}
	if (pond_db_submit(s->svc->db, ack_work, ack_done, call) != 0) {
		s->jobs--;
		call_free(call);
		scheduler_maybe_stopped(s);
	}
}

/* batch_aliases gives t the customer's aliases (phone, openid, ...) from
 * text, a JSON array of {kind, value}: what a gateway delivers to. */
static void
batch_aliases(pond_arena *a, Pond__Touch *t, const char *text)
{
	json_t *arr = text != NULL ? json_loads(text, 0, NULL) : NULL;
	size_t n = json_array_size(arr), k = 0;

	t->aliases = n > 0 ? pond_arena_alloc(a, n * sizeof(void *)) : NULL;
	for (size_t i = 0; t->aliases != NULL && i < n; i++) {
		json_t *o = json_array_get(arr, i);
		Pond__Alias *al = pond_arena_alloc(a, sizeof(*al));
		const char *kind =
		        json_string_value(json_object_get(o, "kind"));
		const char *val =
		        json_string_value(json_object_get(o, "value"));
		if (al == NULL || kind == NULL || val == NULL) {
			continue;
		}
		pond__alias__init(al);
		al->kind = pond_arena_strdup(a, kind);
		al->value = pond_arena_strdup(a, val);
		if (al->kind != NULL && al->value != NULL) {
			t->aliases[k++] = al;
		}
	}
	t->n_aliases = k;
	json_decref(arr);
}

/* batch_pack packs the touches of one channel as a TouchBatch. */
static uint8_t *
batch_pack(pond_arena *a, const due_touch *v, size_t n, size_t *len)
{
	Pond__TouchBatch b = POND__TOUCH_BATCH__INIT;
	Pond__Touch *t = pond_arena_alloc(a, n * sizeof(*t));
	Pond__Touch **tp = pond_arena_alloc(a, n * sizeof(*tp));
	uint8_t *buf;

	if (t == NULL || tp == NULL) {
		return (NULL);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *params = json_loads(v[i].params, 0, NULL);
		size_t np = json_object_size(params), k = 0;
		const char *key;
		json_t *val;
		pond__touch__init(&t[i]);
		t[i].touch_id = v[i].touch_id;
		t[i].customer_key = v[i].customer_key;
		t[i].campaign_id = v[i].campaign_id;
		t[i].channel = v[i].channel;
		t[i].template_ = v[i].template;
		t[i].params = np > 0 ? pond_arena_alloc(a, np * sizeof(void *))
		                     : NULL;
		json_object_foreach(params, key, val)
		{
			Pond__Touch__ParamsEntry *e =
			        pond_arena_alloc(a, sizeof(*e));
			if (e == NULL || t[i].params == NULL ||
			    !json_is_string(val)) {
				continue;
			}
			pond__touch__params_entry__init(e);
			e->key = pond_arena_strdup(a, key);
			e->value =
			        pond_arena_strdup(a, json_string_value(val));
			t[i].params[k++] = e;
		}
		t[i].n_params = k;
		json_decref(params);
		batch_aliases(a, &t[i], v[i].aliases);
		tp[i] = &t[i];
	}
	b.n_touches = n;
	b.touches = tp;
	*len = pond__touch_batch__get_packed_size(&b);
	if ((buf = pond_arena_alloc(a, *len + 1)) != NULL) {
		pond__touch_batch__pack(&b, buf);
	}
	return (buf);
}

/* gateway_send sends the tick's leased touches, one batch per channel. */
static void
gateway_send(scheduler *s, tick_job *j)
{
	for (size_t g = 0; g < s->ngateways; g++) {
		scheduler_gateway *gw = &s->gateways[g];
		gateway_call *call = calloc(1, sizeof(*call));
		size_t n = 0, len;
		uint8_t *body;
		if (call == NULL) {
			return;
		}
		call->s = s;
		call->lease_until = j->lease_until;
		pond_arena_init(&call->arena);
		call->touches = pond_arena_alloc(
		        &call->arena, (j->ndue + 1) * sizeof(*call->touches));
		for (size_t i = 0; call->touches != NULL && i < j->ndue; i++) {
			due_touch *d = &j->due[i], *c = &call->touches[n];
			if (strcmp(d->channel, gw->channel) != 0) {
				continue;
			}
			c->partition = d->partition;
			c->customer_key = pond_arena_strdup(&call->arena,
			                                    d->customer_key);
			c->touch_id =
			        pond_arena_strdup(&call->arena, d->touch_id);
			c->campaign_id = pond_arena_strdup(&call->arena,
			                                   d->campaign_id);
			c->channel = gw->channel;
			c->template =
			        pond_arena_strdup(&call->arena, d->template);
			c->params = pond_arena_strdup(&call->arena, d->params);
			c->aliases =
			        pond_arena_strdup(&call->arena, d->aliases);
			n++;
		}
		call->n = n;
		if (n == 0 ||
		    (body = batch_pack(&call->arena, call->touches, n,
		                       &len)) == NULL ||
		    pond_req_call(gw->req, body, len,
		                  (int)(s->conf.resend_s * 1000), call_reply,
		                  call) != 0) {
			call_free(call);
			continue;
		}
		s->jobs++;
		pond_counter_inc(&s->counters.batches_sent);
	}
}

/* gateways_parse reads POND_GATEWAY_URLS: channel=url,... */
static int
gateways_parse(scheduler *s)
{
	char *spec = strdup(s->conf.gateways), *save = NULL;
	size_t cap = 0;

	if (spec == NULL) {
		return (POND_ENOMEM);
	}
	for (char *p = spec; *p != '\0'; p++) {
		cap += *p == ',';
	}
	if ((s->gateways = calloc(cap + 1, sizeof(*s->gateways))) == NULL) {
		free(spec);
		return (POND_ENOMEM);
	}
	for (char *tok = strtok_r(spec, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		scheduler_gateway *gw = &s->gateways[s->ngateways];
		if (eq == NULL || eq == tok ||
		    (size_t)(eq - tok) >= sizeof(gw->channel) ||
		    strlen(eq + 1) >= sizeof(gw->url) || eq[1] == '\0') {
			pond_log_error("config_invalid",
			               "var=POND_GATEWAY_URLS "
			               "why=\"expected CHANNEL=URL,...\"");
			free(spec);
			return (POND_EINVAL);
		}
		memcpy(gw->channel, tok, (size_t)(eq - tok));
		strcpy(gw->url, eq + 1);
		s->ngateways++;
	}
	free(spec);
	return (POND_OK);
}

int
scheduler_dispatch_start(scheduler *s)
{
	int rv;

	if ((rv = gateways_parse(s)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < s->ngateways; i++) {
		scheduler_gateway *gw = &s->gateways[i];
		if ((rv = pond_req_dial(&gw->req, s->svc->bus, gw->url,
		                        TOUCH_MAX_MSG, 0)) != 0) {
			return (rv);
		}
		pond_log_info("gateway", "channel=%s url=%s", gw->channel,
		              gw->url);
	}
	uv_timer_init(s->svc->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, tick_cb, (uint64_t)s->conf.tick_ms,
	               (uint64_t)s->conf.tick_ms);
	return (POND_OK);
}

void
scheduler_dispatch_stop(scheduler *s)
{
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, NULL);
	for (size_t i = 0; i < s->ngateways; i++) {
		if (s->gateways[i].req != NULL) {
			pond_req_close(s->gateways[i].req);
			s->gateways[i].req = NULL;
		}
	}
}
