/*
 * change.c - the touches stream writer.
 *
 * Every change of a touch is collected during its transaction and written
 * at the end with one pond_stream_reserve over all the partitions it
 * touched (a fission reward lands in the inviter's partition, not the
 * invitee's), which takes the head rows in ascending order, so two
 * transactions never wait on each other's heads in a cycle, and one binary
 * COPY of the touch_changes rows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pgcopy.h"
#include "pond/touch.pb-c.h"
#include "scheduler.h"
#include "stream.h"

static const char *
arena_str(pond_arena *a, const char *s)
{
	return (pond_arena_strdup(a, s != NULL ? s : ""));
}

int
scheduler_changes_add(scheduler_changes *ch, pond_arena *arena,
                      const scheduler_change *c)
{
	scheduler_change *d;

	if (ch->n == ch->cap) {
		size_t cap = ch->cap == 0 ? 16 : ch->cap * 2;
		scheduler_change *v = realloc(ch->v, cap * sizeof(*v));
		if (v == NULL) {
			return (POND_ENOMEM);
		}
		ch->v = v;
		ch->cap = cap;
	}
	d = &ch->v[ch->n];
	*d = *c;
	d->touch_id = arena_str(arena, c->touch_id);
	d->customer_key = arena_str(arena, c->customer_key);
	d->campaign_id = arena_str(arena, c->campaign_id);
	d->channel = arena_str(arena, c->channel);
	d->state = arena_str(arena, c->state);
	d->reason = arena_str(arena, c->reason);
	if (d->touch_id == NULL || d->customer_key == NULL ||
	    d->campaign_id == NULL || d->channel == NULL || d->state == NULL ||
	    d->reason == NULL) {
		return (POND_ENOMEM);
	}
	ch->n++;
	return (POND_OK);
}

void
scheduler_changes_free(scheduler_changes *ch)
{
	free(ch->v);
	memset(ch, 0, sizeof(*ch));
}

static void
set_ts(Google__Protobuf__Timestamp *ts, pond_time t)
{
	ts->seconds = t / POND_USEC_PER_SEC;
	ts->nanos = (int32_t)(t % POND_USEC_PER_SEC) * 1000;
	if (ts->nanos < 0) {
		ts->seconds--;
		ts->nanos += 1000000000;
	}
}

/* change_pack packs c as a pond.TouchChange into arena. */
static int
change_pack(scheduler_change *c, pond_arena *arena)
{
	Pond__TouchChange m = POND__TOUCH_CHANGE__INIT;
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Timestamp sel = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Google__Protobuf__Timestamp due = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	m.touch_id = (char *)c->touch_id;
	m.customer_key = (char *)c->customer_key;
	m.campaign_id = (char *)c->campaign_id;
	m.channel = (char *)c->channel;
	m.state = (char *)c->state;
	m.reason = (char *)c->reason;
	set_ts(&at, c->at);
	m.at = &at;
	if (c->selected_at != 0) {
		set_ts(&sel, c->selected_at);
		m.selected_at = &sel;
	}
	if (c->due_at != 0) {
		set_ts(&due, c->due_at);
		m.due_at = &due;
	}
	m.cost_fen = c->cost_fen;
	c->len = pond__touch_change__get_packed_size(&m);
	if ((c->payload = pond_arena_alloc(arena, c->len + 1)) == NULL) {
		return (POND_ENOMEM);
	}
	pond__touch_change__pack(&m, c->payload);
	return (POND_OK);
}

int
scheduler_changes_write(PGconn *conn, pond_arena *arena, uint32_t nparts,
                        scheduler_changes *ch)
{
	pond_copybuf cb = {0};
	uint32_t *counts;
	int64_t *next;
	int rv = POND_ENOMEM;

	if (ch->n == 0) {
		return (POND_OK);
	}
	counts = calloc(nparts, sizeof(*counts));
	next = calloc(nparts, sizeof(*next));
	if (counts == NULL || next == NULL) {
		goto out;
	}
	for (size_t i = 0; i < ch->n; i++) {
		counts[ch->v[i].partition]++;
	}
	if ((rv = pond_stream_reserve(conn, POND_STREAM_TOUCHES, counts,
	                              nparts, next)) != 0) {
		goto out;
	}
	pond_copy_init(&cb);
	for (size_t i = 0; i < ch->n; i++) {
		scheduler_change *c = &ch->v[i];
		c->seq = next[c->partition]++;
		if ((rv = change_pack(c, arena)) != 0) {
			goto out;
		}
		pond_copy_row(&cb, 9);
		pond_copy_int4(&cb, (int32_t)c->partition);
		pond_copy_int8(&cb, c->seq);
		pond_copy_text(&cb, c->customer_key);
		pond_copy_text(&cb, c->touch_id);
		pond_copy_text(&cb, c->campaign_id);
		pond_copy_text(&cb, c->state);
		pond_copy_text(&cb, c->reason);
		pond_copy_timestamptz(&cb, c->at);
		pond_copy_bytes(&cb, c->payload, c->len);
	}
	rv = pond_copy_send(
	        conn,
	        "COPY touch_changes (partition, seq, customer_key, "
	        "touch_id, campaign_id, state, reason, changed_at, "
	        "payload) FROM STDIN (FORMAT binary)",
	        &cb);
out:
	pond_copy_free(&cb);
	free(counts);
	free(next);
	return (rv);
}

int
scheduler_touch_move(PGconn *conn, pond_arena *arena, uint32_t partition,
                     const char *key, const char *touch_id, const char *to,
                     const char *reason, pond_time at, scheduler_changes *out,
                     bool *moved)
{
	static const struct {
		const char *to;
		const char *from;
	} moves[] = {
	        {"sent", "{scheduled,deferred}"},
	        {"delivered", "{sent}"},
	        {"read", "{sent,delivered}"},
	        {"clicked", "{sent,delivered,read}"},
	        {"failed", "{scheduled,deferred,sent}"},
	};
	const char *from = NULL;
	char part[16], atbuf[40];
	PGresult *res;
	int rv;

	if (moved != NULL) {
		*moved = false;
	}
	for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
		if (strcmp(moves[i].to, to) == 0) {
			from = moves[i].from;
		}
	}
	if (from == NULL) {
		return (POND_EINVAL);
	}
	snprintf(part, sizeof(part), "%" PRIu32, partition);
	const char *params[] = {
	        part,
	        key,
	        touch_id,
	        to,
	        reason != NULL ? reason : "",
	        pond_time_format_rfc3339(at, atbuf, sizeof(atbuf)),
	        from,
	};
	if ((rv = pond_pq_query(
	             conn, &res,
	             "UPDATE touches SET state = $4, reason = $5, "
	             "lease_until = NULL, updated_at = now(), sent_at = CASE "
	             "WHEN $4 = 'sent' THEN $6::timestamptz ELSE sent_at END, "
	             "delivered_at = CASE WHEN $4 IN ('delivered', 'read', "
	             "'clicked') THEN coalesce(delivered_at, $6::timestamptz) "
	             "ELSE delivered_at END WHERE partition = $1 AND "
	             "customer_key = $2 AND touch_id = $3 AND state = "
	             "ANY($7::text[]) RETURNING campaign_id, channel, "
	             "(extract(epoch FROM selected_at) * 1000000)::bigint, "
	             "coalesce((extract(epoch FROM due_at) * "
	             "1000000)::bigint, "
	             "0), cost_fen",
	             7, params)) != 0) {
		return (rv);
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return (POND_OK);
	}
	scheduler_change c = {
	        .partition = partition,
	        .touch_id = touch_id,
	        .customer_key = key,
	        .campaign_id = PQgetvalue(res, 0, 0),
	        .channel = PQgetvalue(res, 0, 1),
	        .state = to,
	        .reason = reason,
	        .at = at,
	        .selected_at = strtoll(PQgetvalue(res, 0, 2), NULL, 10),
	        .due_at = strtoll(PQgetvalue(res, 0, 3), NULL, 10),
	        .cost_fen = strcmp(to, "sent") == 0
	                            ? strtoll(PQgetvalue(res, 0, 4), NULL, 10)
	                            : 0,
	};
	rv = scheduler_changes_add(out, arena, &c);
	PQclear(res);
	if (rv == 0 && moved != NULL) {
		*moved = true;
	}
	return (rv);
}
