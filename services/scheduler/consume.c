/*
 * consume.c - the scheduler's two consumers: events and tag_changes.
 *
 * Each apply runs inside the consumer's transaction (common/consumer.c),
 * so the facts kept here (consent, removed contacts, fission invitees),
 * the touches selected and their touch_changes commit with the cursor:
 * a crash before COMMIT leaves nothing, after it everything, and a replay
 * finds its touches already there (their ids come from the cause). The
 * triggers of a batch are collected and settled together at its end
 * (select.c), or earlier when a record is about to change the facts of a
 * customer still waiting to be settled.
 *
 * events:       opt_out / opt_in, contact_removed / contact_added, the
 *               fission invitee count of referral contact_added, receipts,
 *               conversion rewards on order_paid, then event triggers.
 * tag_changes:  tag_added / tag_removed triggers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "db.h"
#include "log.h"
#include "pond/event.pb-c.h"
#include "pond/tagging.pb-c.h"
#include "scheduler.h"
#include "service.h"
#include "stream.h"

enum { STAGE_EVENTS = 0, STAGE_TAGS = 1 };

/* apply_ctx is one apply call's working state. */
typedef struct apply_ctx {
	scheduler *s;
	PGconn *conn;
	pond_arena arena;
	scheduler_campaigns campaigns;
	scheduler_selections selections; /* settled together (select.c) */
	struct contact_fact *contacts; /* written together (apply_contacts) */
	size_t ncontacts, capcontacts;
	scheduler_changes changes;
} apply_ctx;

/* contact_fact is one contact_added / contact_removed waiting to be
 * written; seq orders two of one customer with the same time. */
typedef struct contact_fact {
	const char *part;
	const char *key;
	bool removed;
	pond_time at;
	size_t seq;
} contact_fact;

/* --- staging until COMMIT -------------------------------------------------
 */

static void
stage_clear(scheduler_stage *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].payload);
	}
	free(st->v);
	memset(st, 0, sizeof(*st));
}

/* stage_set replaces what (which, partition) staged with ch, deep-copied:
 * a partition has one transaction at a time, so anything older is from a
 * rolled-back attempt. Strings are copied into one block per change. */
static int
stage_set(scheduler *s, int which, uint32_t partition,
          const scheduler_changes *ch)
{
	scheduler_stage st = {0};

	if (ch != NULL && ch->n > 0) {
		if ((st.v = calloc(ch->n, sizeof(*st.v))) == NULL) {
			return (POND_ENOMEM);
		}
		for (; st.n < ch->n; st.n++) {
			const scheduler_change *c = &ch->v[st.n];
			scheduler_change *d = &st.v[st.n];
			*d = *c;
			/* Only partition, seq and payload are announced. */
			d->touch_id = d->customer_key = d->campaign_id = NULL;
			d->channel = NULL;
			d->state = scheduler_static_name(c->state);
			d->reason = scheduler_static_name(c->reason);
			if (d->state == NULL) {
				d->state = "";
			}
			if ((d->payload = malloc(c->len + 1)) == NULL) {
				stage_clear(&st);
				return (POND_ENOMEM);
			}
			memcpy(d->payload, c->payload, c->len);
		}
	}
	pthread_mutex_lock(&s->stage_mu);
	stage_clear(&s->stage[which][partition]);
	s->stage[which][partition] = st;
	pthread_mutex_unlock(&s->stage_mu);
	return (POND_OK);
}

static void
committed(scheduler *s, int which, uint32_t partition)
{
	scheduler_stage st;

	if (partition >= s->nparts) {
		return;
	}
	pthread_mutex_lock(&s->stage_mu);
	st = s->stage[which][partition];
	s->stage[which][partition] = (scheduler_stage){0};
	pthread_mutex_unlock(&s->stage_mu);
	scheduler_announce(s, st.v, st.n);
	stage_clear(&st);
}

static void
events_committed(uint32_t partition, void *arg)
{
	committed(arg, STAGE_EVENTS, partition);
}

static void
tags_committed(uint32_t partition, void *arg)
{
	committed(arg, STAGE_TAGS, partition);
}

/* --- facts ---------------------------------------------------------------
 */

/* contact_queue keeps a contact fact until the next settle. */
static int
contact_queue(apply_ctx *a, const char *part, const char *key, bool removed,
              pond_time at)
{
	if (a->ncontacts == a->capcontacts) {
		size_t cap = a->capcontacts == 0 ? 64 : a->capcontacts * 2;
		contact_fact *v = realloc(a->contacts, cap * sizeof(*v));
		if (v == NULL) {
			return (POND_ENOMEM);
		}
		a->contacts = v;
		a->capcontacts = cap;
	}
	contact_fact *f = &a->contacts[a->ncontacts];
	*f = (contact_fact){.part = pond_arena_strdup(&a->arena, part),
	                    .key = pond_arena_strdup(&a->arena, key),
	                    .removed = removed,
	                    .at = at,
	                    .seq = a->ncontacts};
	if (f->part == NULL || f->key == NULL) {
		return (POND_ENOMEM);
	}
	a->ncontacts++;
	return (POND_OK);
}

static int
cmp_contact(const void *x, const void *y)
{
	const contact_fact *a = x, *b = y;
	int c = strcmp(a->key, b->key);

	if (c != 0) {
		return (c);
	}
	if (a->at != b->at) {
		return (a->at < b->at ? -1 : 1);
	}
	return (a->seq < b->seq ? -1 : a->seq > b->seq);
}

/* apply_contacts writes the queued contact facts with one upsert. Of one
 * customer's facts the latest by occurred_at wins (ties: the later in the
 * stream), and it replaces the stored one only if that is not newer:
 * what applying them one by one would leave. */
static int
apply_contacts(apply_ctx *a)
{
	const char **cols[4];
	size_t n = 0;

	if (a->ncontacts == 0) {
		return (POND_OK);
	}
	qsort(a->contacts, a->ncontacts, sizeof(*a->contacts), cmp_contact);
	for (int j = 0; j < 4; j++) {
		if ((cols[j] = pond_arena_alloc(
		             &a->arena, a->ncontacts * sizeof(char *))) ==
		    NULL) {
			return (POND_ENOMEM);
		}
	}
	for (size_t i = 0; i < a->ncontacts; i++) {
		const contact_fact *f = &a->contacts[i];
		char at[24];
		if (i + 1 < a->ncontacts &&
		    strcmp(f->key, a->contacts[i + 1].key) == 0) {
			continue; /* not the customer's latest */
		}
		snprintf(at, sizeof(at), "%" PRId64, f->at);
		cols[0][n] = f->part;
		cols[1][n] = f->key;
		cols[2][n] = f->removed ? "t" : "f";
		if ((cols[3][n++] = pond_arena_strdup(&a->arena, at)) ==
		    NULL) {
			return (POND_ENOMEM);
		}
	}
	a->ncontacts = 0;
	return (scheduler_query_arrays(
	        a->conn, NULL,
	        "INSERT INTO sched_customers (partition, customer_key, "
	        "removed, contact_changed_at) SELECT p, k, r, to_timestamp(t "
	        "/ 1000000.0) FROM unnest($1::int[], $2::text[], "
	        "$3::boolean[], $4::bigint[]) AS u(p, k, r, t) ORDER BY p, k "
	        "ON CONFLICT (partition, customer_key) DO UPDATE SET removed "
	        "= "
	        "excluded.removed, contact_changed_at = "
	        "excluded.contact_changed_at WHERE "
	        "sched_customers.contact_changed_at IS NULL OR "
	        "sched_customers.contact_changed_at <= "
	        "excluded.contact_changed_at",
	        (const char **const *)cols, 4, n, NULL, 0));
}

/* apply_settle writes the queued contact facts and settles the
 * selections so far (select.c), whose rules read those facts. */
static int
apply_settle(apply_ctx *a)
{
	int rv;

	if ((rv = apply_contacts(a)) != 0) {
		return (rv);
	}
	return (scheduler_select(a->conn, &a->arena, &a->s->rules,
	                         &a->selections, &a->changes));
}

/* apply_fact keeps the consent and contact facts the rules read; the
 * latest by occurred_at wins (ties: the later in the stream), so a late
 * event with an earlier time does not undo a newer one. Contact facts
 * (removed) are queued and written together at the next settle; consent
 * is written at once. */
static int
apply_fact(apply_ctx *a, uint32_t partition, const Pond__Event *ev,
           pond_time occurred)
{
	const char *channel = NULL, *out = "t";
	char part[16], at[24];
	int rv;

	snprintf(part, sizeof(part), "%" PRIu32, partition);
	switch (ev->body_case) {
	case POND__EVENT__BODY_OPT_OUT:
		channel = ev->opt_out->channel;
		break;
	case POND__EVENT__BODY_OPT_IN:
		channel = ev->opt_in->channel;
		out = "f";
		break;
	case POND__EVENT__BODY_CONTACT_REMOVED:
	case POND__EVENT__BODY_CONTACT_ADDED:
		return (contact_queue(
		        a, part, ev->customer_key,
		        ev->body_case == POND__EVENT__BODY_CONTACT_REMOVED,
		        occurred));
	default:
		return (POND_OK);
	}
	snprintf(at, sizeof(at), "%" PRId64, occurred);
	const char *params[] = {part, ev->customer_key, at, out, channel};
	if ((rv = pond_pq_query(a->conn, NULL,
	                        "INSERT INTO sched_customers (partition, "
	                        "customer_key) VALUES ($1, $2) ON CONFLICT "
	                        "DO NOTHING",
	                        2, params)) != 0) {
		return (rv);
	}
	return (pond_pq_query(
	        a->conn, NULL,
	        "UPDATE sched_customers s SET consent = c.v, opted_out = "
	        "(SELECT coalesce(array_agg(k ORDER BY k), '{}') FROM "
	        "jsonb_each(c.v) e(k, x) WHERE (x->>'out')::boolean) FROM "
	        "(SELECT CASE WHEN coalesce((consent->$5->>'at')::bigint, -1) "
	        "<= $3::bigint THEN jsonb_set(consent, ARRAY[$5::text], "
	        "jsonb_build_object('out', $4::boolean, 'at', $3::bigint)) "
	        "ELSE consent END AS v FROM sched_customers WHERE partition = "
	        "$1 AND customer_key = $2) c WHERE s.partition = $1 AND "
	        "s.customer_key = $2",
	        5, params));
}

/* apply_fission counts a referral invitee for the inviter in every
 * fission campaign it may belong to, and rewards an inviter who reaches
 * invitees_needed (once: the reward's touch id is per campaign and
 * inviter). */
static int
apply_fission(apply_ctx *a, const Pond__Event *ev, pond_time occurred)
{
	const Pond__ContactAdded *ca = ev->contact_added;
	const char *inviter = ca->inviter_key;
	uint32_t ipart;
	char part[16], at[40];
	int rv;

	if (inviter == NULL || *inviter == '\0' ||
	    strcmp(inviter, ev->customer_key) == 0) {
		return (POND_OK);
	}
	ipart = pond_partition_of(inviter, a->s->nparts);
	snprintf(part, sizeof(part), "%" PRIu32, ipart);
	for (size_t i = 0; i < a->campaigns.n; i++) {
		const scheduler_campaign *c = &a->campaigns.v[i];
		PGresult *res;
		if (c->fission_needed == 0 ||
		    (ca->campaign_id != NULL && *ca->campaign_id != '\0' &&
		     strcmp(ca->campaign_id, c->id) != 0)) {
			continue;
		}
		const char *params[] = {
		        part, inviter, c->id, ev->customer_key,
		        pond_time_format_rfc3339(occurred, at, sizeof(at))};
		if ((rv = pond_pq_query(
		             a->conn, &res,
		             "WITH ins AS (INSERT INTO fission_invitees "
		             "(partition, customer_key, campaign_id, "
		             "invitee_key, added_at) VALUES ($1, $2, $3, $4, "
		             "$5) ON CONFLICT DO NOTHING RETURNING 1) SELECT "
		             "(SELECT count(*) FROM ins), (SELECT count(*) "
		             "FROM "
		             "fission_invitees WHERE partition = $1 AND "
		             "customer_key = $2 AND campaign_id = $3)",
		             5, params)) != 0) {
			return (rv);
		}
		/* The CTE's insert is not visible to the count: add it. */
		int64_t count = strtoll(PQgetvalue(res, 0, 0), NULL, 10) +
		                strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		PQclear(res);
		if (count < c->fission_needed) {
			continue;
		}
		scheduler_cause cause = {
		        .partition = ipart,
		        .customer_key = inviter,
		        .tag = "fission",
		        .selected_at = occurred,
		        .reward = true,
		};
		if ((rv = scheduler_selections_add(&a->selections, &a->arena,
		                                   c, &cause)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

/* apply_receipt moves the touch by a gateway's receipt: first to sent
 * (the receipt proves the gateway has it, whether or not its ack came
 * back), then to the receipt's status. */
static int
apply_receipt(apply_ctx *a, uint32_t partition, const Pond__Event *ev,
              pond_time occurred)
{
	const Pond__TouchReceipt *r = ev->touch_receipt;
	static const char *const statuses[] = {"delivered", "read", "clicked",
	                                       "failed"};
	int rv;

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(r->status, statuses[i]) != 0) {
			continue;
		}
		if ((rv = scheduler_touch_move(a->conn, &a->arena, partition,
		                               ev->customer_key, r->touch_id,
		                               "sent", NULL, occurred,
		                               &a->changes, NULL)) != 0) {
			return (rv);
		}
		return (scheduler_touch_move(a->conn, &a->arena, partition,
		                             ev->customer_key, r->touch_id,
		                             statuses[i], r->reason, occurred,
		                             &a->changes, NULL));
	}
	pond_log_warn("receipt_status_unknown", "touch_id=%s status=%s",
	              r->touch_id, r->status);
	return (POND_OK);
}

/* apply_conversion grants the conversion reward of the campaign whose
 * delivered touch an order is credited to: the customer's latest
 * delivered touch within POND_ATTRIBUTION_H before the order (API.md,
 * "Campaign"), once per touch. */
static int
apply_conversion(apply_ctx *a, uint32_t partition, const Pond__Event *ev,
                 pond_time occurred)
{
	char part[16], at[40], hours[24];
	PGresult *res;
	int rv;

	snprintf(part, sizeof(part), "%" PRIu32, partition);
	snprintf(hours, sizeof(hours), "%" PRId64, a->s->rules.attribution_h);
	const char *params[] = {
	        part, ev->customer_key,
	        pond_time_format_rfc3339(occurred, at, sizeof(at)), hours};
	if ((rv = pond_pq_query(
	             a->conn, &res,
	             "SELECT touch_id, campaign_id, channel, rewarded, "
	             "(extract(epoch FROM selected_at) * 1000000)::bigint "
	             "FROM touches WHERE partition = $1 AND customer_key = $2 "
	             "AND delivered_at <= $3::timestamptz AND delivered_at > "
	             "$3::timestamptz - make_interval(hours => $4::int) ORDER "
	             "BY delivered_at DESC, touch_id DESC LIMIT 1",
	             4, params)) != 0) {
		return (rv);
	}
	const scheduler_campaign *c = NULL;
	for (size_t i = 0; PQntuples(res) == 1 && i < a->campaigns.n; i++) {
		if (strcmp(a->campaigns.v[i].id, PQgetvalue(res, 0, 1)) == 0) {
			c = &a->campaigns.v[i];
		}
	}
	if (c == NULL || c->reward_kind == NULL ||
	    PQgetvalue(res, 0, 3)[0] == 't') {
		PQclear(res);
		return (POND_OK);
	}
	char *touch_id = pond_arena_strdup(&a->arena, PQgetvalue(res, 0, 0));
	pond_time selected = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	PQclear(res);
	const char *upd[] = {part, ev->customer_key, touch_id};
	if (touch_id == NULL ||
	    (rv = pond_pq_query(a->conn, NULL,
	                        "UPDATE touches SET rewarded = true WHERE "
	                        "partition = $1 AND customer_key = $2 AND "
	                        "touch_id = $3",
	                        3, upd)) != 0) {
		return (touch_id == NULL ? POND_ENOMEM : rv);
	}
	scheduler_change ch = {
	        .partition = partition,
	        .touch_id = touch_id,
	        .customer_key = ev->customer_key,
	        .campaign_id = c->id,
	        .channel = c->channel,
	        .state = "reward",
	        .reason = c->reward_kind,
	        .at = occurred,
	        .selected_at = selected,
	        .cost_fen = c->reward_fen,
	};
	return (scheduler_changes_add(&a->changes, &a->arena, &ch));
}

/* event_type is the API name of ev's body ("order_paid"). */
static const char *
event_type(const Pond__Event *ev)
{
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field(
	                &pond__event__descriptor, ev->body_case);

	return (f != NULL ? f->name : "");
}

/* apply_triggers adds the customer to the batch's selections for every
 * campaign triggered by the trigger kind and value; tag is the cause
 * ("e<seq>", "t<seq>"). */
static int
apply_triggers(apply_ctx *a, scheduler_trigger kind, const char *value,
               uint32_t partition, const char *key, const char *tag,
               pond_time selected_at)
{
	int rv;

	for (size_t i = 0; i < a->campaigns.n; i++) {
		const scheduler_campaign *c = &a->campaigns.v[i];
		if (c->trigger != kind ||
		    strcmp(c->trigger_value, value) != 0) {
			continue;
		}
		scheduler_cause cause = {
		        .partition = partition,
		        .customer_key = key,
		        .tag = tag,
		        .selected_at = selected_at,
		};
		if ((rv = scheduler_selections_add(&a->selections, &a->arena,
		                                   c, &cause)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

static pond_time
ts_time(const Google__Protobuf__Timestamp *ts)
{
	return (ts != NULL ? pond_time_from_parts(ts->seconds, ts->nanos)
	                   : pond_now());
}

/* apply_settle_before settles the selections so far when ev is about to
 * change what one of them reads or moves (its customer's consent or
 * contact, a touch by receipt, a reward by order): a selection is judged
 * on the facts of its own moment in the stream, as if settled alone. */
static int
apply_settle_before(apply_ctx *a, const Pond__Event *ev)
{
	switch (ev->body_case) {
	case POND__EVENT__BODY_OPT_OUT:
	case POND__EVENT__BODY_OPT_IN:
	case POND__EVENT__BODY_CONTACT_REMOVED:
	case POND__EVENT__BODY_CONTACT_ADDED:
	case POND__EVENT__BODY_TOUCH_RECEIPT:
	case POND__EVENT__BODY_ORDER_PAID:
		break;
	default:
		return (POND_OK);
	}
	if (!scheduler_selections_has(&a->selections, ev->customer_key)) {
		return (POND_OK);
	}
	return (apply_settle(a));
}

static int
apply_event(apply_ctx *a, const pond_record *rec)
{
	Pond__Event *ev = pond__event__unpack(pond_arena_allocator(&a->arena),
	                                      rec->len, rec->payload);
	char tag[32];
	int rv;

	if (ev == NULL) {
		pond_log_error("event_undecodable",
		               "partition=%" PRIu32 " seq=%" PRId64,
		               rec->partition, rec->seq);
		return (POND_OK);
	}
	if (ev->customer_key == NULL || *ev->customer_key == '\0') {
		return (POND_OK);
	}
	pond_time occurred = ts_time(ev->occurred_at);
	if ((rv = apply_settle_before(a, ev)) != 0 ||
	    (rv = apply_fact(a, rec->partition, ev, occurred)) != 0) {
		return (rv);
	}
	switch (ev->body_case) {
	case POND__EVENT__BODY_CONTACT_ADDED:
		rv = apply_fission(a, ev, occurred);
		break;
	case POND__EVENT__BODY_TOUCH_RECEIPT:
		rv = apply_receipt(a, rec->partition, ev, occurred);
		break;
	case POND__EVENT__BODY_ORDER_PAID:
		rv = apply_conversion(a, rec->partition, ev, occurred);
		break;
	default:
		break;
	}
	if (rv != 0) {
		return (rv);
	}
	snprintf(tag, sizeof(tag), "e%" PRId64, rec->seq);
	return (apply_triggers(a, SCHEDULER_TRIGGER_EVENT, event_type(ev),
	                       rec->partition, ev->customer_key, tag,
	                       occurred));
}

static int
apply_tag_change(apply_ctx *a, const pond_record *rec)
{
	Pond__TagChange *tc = pond__tag_change__unpack(
	        pond_arena_allocator(&a->arena), rec->len, rec->payload);
	char tag[32];

	if (tc == NULL) {
		pond_log_error("tag_change_undecodable",
		               "partition=%" PRIu32 " seq=%" PRId64,
		               rec->partition, rec->seq);
		return (POND_OK);
	}
	snprintf(tag, sizeof(tag), "t%" PRId64, rec->seq);
	return (apply_triggers(a,
	                       tc->added ? SCHEDULER_TRIGGER_TAG_ADDED
	                                 : SCHEDULER_TRIGGER_TAG_REMOVED,
	                       tc->tag, rec->partition, tc->customer_key, tag,
	                       ts_time(tc->changed_at)));
}

/* apply_records is the apply function of both consumers. */
static int
apply_records(scheduler *s, int which, PGconn *conn, const pond_record *recs,
              size_t n)
{
	apply_ctx a = {.s = s, .conn = conn};
	int rv;

	pond_arena_init(&a.arena);
	if ((rv = stage_set(s, which, recs[0].partition, NULL)) != 0 ||
	    (rv = scheduler_campaigns_load(conn, &a.campaigns)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rv = which == STAGE_EVENTS ? apply_event(&a, &recs[i])
		                           : apply_tag_change(&a, &recs[i]);
		if (rv != 0) {
			goto out;
		}
	}
	if ((rv = apply_settle(&a)) != 0 ||
	    (rv = scheduler_changes_write(conn, &a.arena, s->nparts,
	                                  &a.changes)) != 0) {
		goto out;
	}
	rv = stage_set(s, which, recs[0].partition, &a.changes);
out:
	free(a.contacts);
	scheduler_selections_free(&a.selections);
	scheduler_campaigns_free(&a.campaigns);
	scheduler_changes_free(&a.changes);
	pond_arena_reset(&a.arena);
	return (rv);
}

static int
events_apply(PGconn *conn, const pond_record *recs, size_t n, void *arg)
{
	return (apply_records(arg, STAGE_EVENTS, conn, recs, n));
}

static int
tags_apply(PGconn *conn, const pond_record *recs, size_t n, void *arg)
{
	return (apply_records(arg, STAGE_TAGS, conn, recs, n));
}

int
scheduler_consumers_start(scheduler *s)
{
	static pond_consumer_config events_conf, tags_conf;
	pond_service *svc = s->svc;
	int rv;

	for (int w = 0; w < 2; w++) {
		if ((s->stage[w] = calloc(s->nparts,
		                          sizeof(scheduler_stage))) == NULL) {
			return (POND_ENOMEM);
		}
	}
	events_conf = (pond_consumer_config){
	        .name = "scheduler",
	        .stream = POND_STREAM_EVENTS,
	        .dsn = svc->conf.dsn,
	        .sub_urls = s->conf.events_sub,
	        .batch = (uint32_t)s->conf.batch,
	        .apply = events_apply,
	        .arg = s,
	        .committed = events_committed,
	};
	tags_conf = events_conf;
	tags_conf.stream = POND_STREAM_TAG_CHANGES;
	tags_conf.sub_urls = s->conf.tags_sub;
	tags_conf.apply = tags_apply;
	tags_conf.committed = tags_committed;
	if ((rv = pond_consumer_start(&s->events, svc->loop, svc->bus, svc->db,
	                              svc->metrics, &events_conf)) != 0 ||
	    (rv = pond_consumer_start(&s->tags, svc->loop, svc->bus, svc->db,
	                              svc->metrics, &tags_conf)) != 0) {
		return (rv);
	}
	s->consumers_running = 2;
	return (POND_OK);
}

/* scheduler_stage_free drops whatever is still staged (at stop). */
void
scheduler_stage_free(scheduler *s)
{
	for (int w = 0; w < 2; w++) {
		for (uint32_t p = 0; s->stage[w] != NULL && p < s->nparts;
		     p++) {
			stage_clear(&s->stage[w][p]);
		}
		free(s->stage[w]);
		s->stage[w] = NULL;
	}
}
