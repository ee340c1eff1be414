/*
 * store.c - settling a batch in one transaction.
 *
 * Order of work, and why:
 *   1. the publisher by its token hash (401 when unknown);
 *   2. claim the event ids and order ids of the clean items with
 *      INSERT ... ON CONFLICT DO NOTHING RETURNING: a returned id is new and
 *      now locked by us (a concurrent batch with the same id waits for our
 *      commit, then sees it as a duplicate); ids are inserted sorted, so two
 *      batches never take them in opposite orders;
 *   3. read the aliases the batch mentions;
 *   4. walk the items in order: resolve the customer (aliases linked earlier
 *      in the batch count), decide accepted / duplicate / rejected, and link
 *      the new aliases of accepted events (the first link wins);
 *   5. give back the claims no accepted event used (rejected events are not
 *      remembered as seen);
 *   6. the new alias links and the rejects;
 *   7. last, take seqs from the stream heads (stream.c), COPY the event
 *      rows and COMMIT: the heads stay locked (and other batches of the
 *      same partitions wait) only for the COPY and the commit.
 * A deadlock or serialization failure rolls everything back and the batch
 * is settled afresh (at most three times).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "log.h"
#include "pgcopy.h"
#include "stream.h"
#include "token.h"

#define STORE_ATTEMPTS 3

/* --- a small string map in the batch arena
 * ------------------------------------ */

typedef struct strmap_slot {
	const char *key;
	const char *value;
	int state;
} strmap_slot;

typedef struct strmap {
	strmap_slot *slots;
	size_t cap; /* power of two, at least twice the entries */
} strmap;

static int
strmap_init(strmap *m, pond_arena *a, size_t entries)
{
	m->cap = 16;
	while (m->cap < entries * 2) {
		m->cap *= 2;
	}
	m->slots = pond_arena_alloc(a, m->cap * sizeof(strmap_slot));
	if (m->slots == NULL) {
		return (POND_ENOMEM);
	}
	memset(m->slots, 0, m->cap * sizeof(strmap_slot));
	return (POND_OK);
}

/* strmap_slot_for returns the slot of key: its own, or the empty one where
 * it would go. */
static strmap_slot *
strmap_slot_for(strmap *m, const char *key)
{
	size_t i = pond_partition_of(key, UINT32_MAX) & (m->cap - 1);

	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0) {
		i = (i + 1) & (m->cap - 1);
	}
	return (&m->slots[i]);
}

/* --- settling
 * ---------------------------------------------------------------------- */

enum { CLAIMED = 1, USED = 2 };

typedef struct settle {
	ingest_batch *b;
	strmap event_ids; /* claimed by this batch */
	strmap order_ids; /* claimed by this batch */
	strmap aliases;   /* "kind\x1fvalue" -> customer_key */
	size_t new_aliases;
	char pub_id[24];
} settle;

static bool
item_clean(const ingest_item *item)
{
	return (item->check == CODE_NONE);
}

/* item_resolves reports whether settle_item will resolve the item's
 * customer: it decoded, and no fault outranks unknown_customer. */
static bool
item_resolves(const ingest_item *item)
{
	return (item->event != NULL && (item->check == CODE_NONE ||
	                                item->check > CODE_UNKNOWN_CUSTOMER));
}

static const char *
alias_key(pond_arena *a, const Pond__Alias *alias)
{
	size_t kl = strlen(alias->kind), vl = strlen(alias->value);
	char *k = pond_arena_alloc(a, kl + vl + 2);

	if (k != NULL) {
		memcpy(k, alias->kind, kl);
		k[kl] = '\x1f';
		memcpy(k + kl + 1, alias->value, vl + 1);
	}
	return (k);
}

/* store_replay_auth checks an admin token and takes the publisher of the
 * rejected event being replayed, locking its row: a fixed event is settled
 * as its original publisher, so idempotency by (publisher, event_id) holds
 * across the fix. */
static int
store_replay_auth(PGconn *conn, ingest_batch *b)
{
	char id[24];
	const char *params[] = {id};
	PGresult *res;
	int rv;

	pond_role role = pond_api_token_role(conn, b->token);

	if (role != POND_ROLE_ADMIN) {
		if (role == POND_ROLE_READ) {
			pond_auth_refused(POND_AUTH_ROLE);
		}
		b->batch_error = "unauthorized";
		b->batch_message = "replaying needs an admin API token";
		return (POND_EAUTH);
	}
	snprintf(id, sizeof(id), "%" PRId64, b->replay_of);
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT publisher_id FROM rejected_events "
	                        "WHERE id = $1 AND publisher_id IS NOT NULL "
	                        "FOR UPDATE",
	                        1, params)) != 0) {
		return (rv);
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		b->batch_error = "not_found";
		b->batch_message = "no rejected event with that id";
		return (POND_ENOENT);
	}
	b->publisher_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (POND_OK);
}

static int
store_auth(PGconn *conn, settle *st)
{
	ingest_batch *b = st->b;
	char name[128];
	int rv;

	if (b->replay_of > 0) {
		rv = store_replay_auth(conn, b);
	} else if ((rv = pond_publisher_lookup(conn, b->token,
	                                       &b->publisher_id, name,
	                                       sizeof(name))) == POND_EAUTH) {
		b->batch_error = "unauthorized";
		b->batch_message = "missing or unknown publisher token";
	}
	snprintf(st->pub_id, sizeof(st->pub_id), "%" PRId64, b->publisher_id);
	return (rv);
}

/* store_mark_replayed records a replay that went in (accepted, or found
 * already stored); a replay rejected again leaves the row as it was. */
static int
store_mark_replayed(PGconn *conn, const ingest_batch *b)
{
	char id[24];
	const char *params[] = {id};

	if (b->replay_of == 0 || b->n != 1 ||
	    b->items[0].status == STATUS_REJECTED) {
		return (POND_OK);
	}
	snprintf(id, sizeof(id), "%" PRId64, b->replay_of);
	return (pond_pq_query(conn, NULL,
	                      "UPDATE rejected_events SET replayed_at = now() "
	                      "WHERE id = $1",
	                      1, params));
}

static int
cmp_str(const void *a, const void *b)
{
	return (strcmp(*(const char *const *)a, *(const char *const *)b));
}

/* store_claim inserts the distinct keys into table (event_ids or order_ids,
 * column col) and marks the ones returned as CLAIMED in map. */
static int
store_claim(PGconn *conn, settle *st, const char *sql, const char **keys,
            size_t n, strmap *map)
{
	PGresult *res;
	char *arr;
	int rv;

	if (strmap_init(map, &st->b->arena, n) != 0) {
		return (POND_ENOMEM);
	}
	if (n == 0) {
		return (POND_OK);
	}
	qsort(keys, n, sizeof(*keys), cmp_str);
	if ((arr = pond_pq_text_array(keys, n)) == NULL) {
		return (POND_ENOMEM);
	}
	const char *params[] = {st->pub_id, arr};
	rv = pond_pq_query(conn, &res, sql, 2, params);
	free(arr);
	if (rv != 0) {
		return (rv);
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *k = pond_arena_strdup(&st->b->arena,
		                                  PQgetvalue(res, i, 0));
		strmap_slot *slot;
		if (k == NULL) {
			PQclear(res);
			return (POND_ENOMEM);
		}
		slot = strmap_slot_for(map, k);
		slot->key = k;
		slot->state = CLAIMED;
	}
	PQclear(res);
	return (POND_OK);
}

static int
store_claim_ids(PGconn *conn, settle *st)
{
	ingest_batch *b = st->b;
	const char **ids, **orders;
	size_t nids = 0, norders = 0;
	int rv;

	ids = pond_arena_alloc(&b->arena, (b->n + 1) * sizeof(char *));
	orders = pond_arena_alloc(&b->arena, (b->n + 1) * sizeof(char *));
	if (ids == NULL || orders == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->n; i++) {
		const ingest_item *item = &b->items[i];
		if (!item_clean(item)) {
			continue;
		}
		ids[nids++] = item->event->event_id;
		if (item->event->body_case == POND__EVENT__BODY_ORDER_PAID) {
			orders[norders++] = item->event->order_paid->order_id;
		}
	}
	/* Duplicates inside the batch are claimed once. */
	qsort(ids, nids, sizeof(*ids), cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < nids; i++) {
		if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0) {
			ids[u++] = ids[i];
		}
	}
	nids = u;
	qsort(orders, norders, sizeof(*orders), cmp_str);
	u = 0;
	for (size_t i = 0; i < norders; i++) {
		if (u == 0 || strcmp(orders[u - 1], orders[i]) != 0) {
			orders[u++] = orders[i];
		}
	}
	norders = u;
	if ((rv = store_claim(
	             conn, st,
	             "INSERT INTO event_ids (publisher_id, event_id) "
	             "SELECT $1, x FROM unnest($2::text[]) AS x ORDER BY x "
	             "ON CONFLICT DO NOTHING RETURNING event_id",
	             ids, nids, &st->event_ids)) != 0) {
		return (rv);
	}
	return (store_claim(
	        conn, st,
	        "INSERT INTO order_ids (publisher_id, order_id) "
	        "SELECT $1, x FROM unnest($2::text[]) AS x ORDER BY x "
	        "ON CONFLICT DO NOTHING RETURNING order_id",
	        orders, norders, &st->order_ids));
}

static int
store_load_aliases(PGconn *conn, settle *st)
{
	ingest_batch *b = st->b;
	const char **kinds, **values;
	size_t n = 0, total = 0;
	PGresult *res;
	char *ka = NULL, *va = NULL;
	int rv = POND_ENOMEM;

	for (size_t i = 0; i < b->n; i++) {
		if (b->items[i].event != NULL) {
			total += b->items[i].event->n_aliases;
		}
	}
	if (strmap_init(&st->aliases, &b->arena, total) != 0) {
		return (POND_ENOMEM);
	}
	if (total == 0) {
		return (POND_OK);
	}
	kinds = pond_arena_alloc(&b->arena, total * sizeof(char *));
	values = pond_arena_alloc(&b->arena, total * sizeof(char *));
	if (kinds == NULL || values == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < b->n; i++) {
		const Pond__Event *e = b->items[i].event;
		/* Every event that reaches customer resolution is looked up,
		 * faulty or not: unknown_customer outranks most faults. An
		 * alias that is not valid text cannot be linked to anyone. */
		if (!item_resolves(&b->items[i])) {
			continue;
		}
		for (size_t k = 0; k < e->n_aliases; k++) {
			const Pond__Alias *a = e->aliases[k];
			if (ingest_utf8_valid(
			            (const unsigned char *)a->kind) &&
			    ingest_utf8_valid(
			            (const unsigned char *)a->value)) {
				kinds[n] = a->kind;
				values[n++] = a->value;
			}
		}
	}
	if ((ka = pond_pq_text_array(kinds, n)) == NULL ||
	    (va = pond_pq_text_array(values, n)) == NULL) {
		goto out;
	}
	const char *params[] = {ka, va};
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT a.kind, a.value, a.customer_key "
	             "FROM customer_aliases a "
	             "JOIN unnest($1::text[], $2::text[]) AS q(kind, value) "
	             "ON a.kind = q.kind AND a.value = q.value",
	             2, params)) != 0) {
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		Pond__Alias al = POND__ALIAS__INIT;
		al.kind = PQgetvalue(res, i, 0);
		al.value = PQgetvalue(res, i, 1);
		const char *key = alias_key(&b->arena, &al);
		const char *cust =
		        pond_arena_strdup(&b->arena, PQgetvalue(res, i, 2));
		if (key == NULL || cust == NULL) {
			PQclear(res);
			rv = POND_ENOMEM;
			goto out;
		}
		strmap_slot *slot = strmap_slot_for(&st->aliases, key);
		slot->key = key;
		slot->value = cust;
	}
	PQclear(res);
	rv = POND_OK;
out:
	free(ka);
	free(va);
	return (rv);
}

static void
item_reject(ingest_item *item, ingest_code code, const char *reason)
{
	item->status = STATUS_REJECTED;
	item->code = code;
	item->reason = reason;
}

/* settle_customer finds the customer of a clean-so-far item; NULL when its
 * aliases are known to nobody. */
static const char *
settle_customer(settle *st, const ingest_item *item)
{
	const Pond__Event *e = item->event;

	if (*e->customer_key != '\0') {
		return (e->customer_key);
	}
	for (size_t k = 0; k < e->n_aliases; k++) {
		const char *key = alias_key(&st->b->arena, e->aliases[k]);
		strmap_slot *slot;
		if (key == NULL) {
			return (NULL);
		}
		slot = strmap_slot_for(&st->aliases, key);
		if (slot->key != NULL) {
			return (slot->value);
		}
	}
	return (e->n_aliases == 0 ? "" : NULL); /* "": channel_spend */
}

static void
settle_link_aliases(settle *st, ingest_item *item)
{
	const Pond__Event *e = item->event;

	if (*item->customer_key == '\0') {
		return;
	}
	for (size_t k = 0; k < e->n_aliases; k++) {
		const char *key = alias_key(&st->b->arena, e->aliases[k]);
		strmap_slot *slot;
		if (key == NULL) {
			continue;
		}
		slot = strmap_slot_for(&st->aliases, key);
		if (slot->key == NULL) {
			slot->key = key;
			slot->value = item->customer_key;
			slot->state = CLAIMED; /* a link this batch makes */
			st->new_aliases++;
		} else if (strcmp(slot->value, item->customer_key) != 0) {
			st->b->alias_conflicts++;
		}
	}
}

static void
settle_item(settle *st, ingest_item *item)
{
	const char *cust;
	strmap_slot *id, *order = NULL;

	/* An item that never decoded has no customer to resolve: its own
	 * fault stands, whatever its rank. (A shell, an element the JSON codec
	 * refused, has its identity and resolves like any other.) */
	if (!item_resolves(item)) {
		item_reject(item, item->check, item->check_reason);
		return;
	}
	if ((cust = settle_customer(st, item)) == NULL) {
		item_reject(item, CODE_UNKNOWN_CUSTOMER,
		            "no alias of the event is linked to a customer");
		return;
	}
	if (item->check != CODE_NONE) {
		item_reject(item, item->check, item->check_reason);
		return;
	}
	item->customer_key = cust;
	id = strmap_slot_for(&st->event_ids, item->event->event_id);
	if (id->key == NULL || id->state == USED) {
		item->status = STATUS_DUPLICATE;
		return;
	}
	if (item->event->body_case == POND__EVENT__BODY_ORDER_PAID) {
		order = strmap_slot_for(&st->order_ids,
		                        item->event->order_paid->order_id);
		if (order->key == NULL || order->state == USED) {
			item->status = STATUS_DUPLICATE;
			item->code = CODE_DUPLICATE_ORDER;
			item->reason = "an order_paid with this order_id was "
			               "already accepted";
			return;
		}
		order->state = USED;
	}
	id->state = USED;
	item->status = STATUS_ACCEPTED;
	settle_link_aliases(st, item);
}

/* store_release gives back the claims of map no accepted event used. */
static int
store_release(PGconn *conn, settle *st, const strmap *map, const char *sql)
{
	const char **keys;
	size_t n = 0;
	char *arr;
	int rv;

	keys = pond_arena_alloc(&st->b->arena, map->cap * sizeof(char *));
	if (keys == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < map->cap; i++) {
		if (map->slots[i].key != NULL &&
		    map->slots[i].state == CLAIMED) {
			keys[n++] = map->slots[i].key;
		}
	}
	if (n == 0) {
		return (POND_OK);
	}
	if ((arr = pond_pq_text_array(keys, n)) == NULL) {
		return (POND_ENOMEM);
	}
	const char *params[] = {st->pub_id, arr};
	rv = pond_pq_query(conn, NULL, sql, 2, params);
	free(arr);
	return (rv);
}

/* --- the event rows
 * ------------------------------------------------------------------ */

static const char *
event_type(const Pond__Event *e)
{
	const ProtobufCFieldDescriptor *f =
	        protobuf_c_message_descriptor_get_field(
	                &pond__event__descriptor, (unsigned)e->body_case);

	return (f != NULL ? f->name : "unknown");
}

/* store_pack stores the event as accepted: with its customer resolved. */
static int
store_pack(ingest_batch *b, ingest_item *item)
{
	Pond__Event *e = item->event;

	e->customer_key = (char *)item->customer_key;
	item->payload_len = pond__event__get_packed_size(e);
	item->payload = pond_arena_alloc(&b->arena, item->payload_len + 1);
	if (item->payload == NULL) {
		return (POND_ENOMEM);
	}
	pond__event__pack(e, item->payload);
	return (POND_OK);
}

static int
store_copy_events(PGconn *conn, ingest_batch *const *bs, size_t nb)
{
	pond_copybuf cb;
	int rv;

	pond_copy_init(&cb);
	for (size_t k = 0; k < nb; k++) {
		const ingest_batch *b = bs[k];
		for (size_t i = 0; i < b->n; i++) {
			const ingest_item *item = &b->items[i];
			const Pond__Event *e = item->event;
			if (item->status != STATUS_ACCEPTED) {
				continue;
			}
			pond_copy_row(&cb, 9);
			pond_copy_int4(&cb, (int32_t)item->partition);
			pond_copy_int8(&cb, item->seq);
			pond_copy_text(&cb, item->customer_key);
			pond_copy_int8(&cb, b->publisher_id);
			pond_copy_text(&cb, e->event_id);
			pond_copy_text(&cb, event_type(e));
			pond_copy_timestamptz(
			        &cb,
			        pond_time_from_parts(e->occurred_at->seconds,
			                             e->occurred_at->nanos));
			pond_copy_timestamptz(&cb, b->received_at);
			pond_copy_bytes(&cb, item->payload, item->payload_len);
		}
	}
	rv = pond_copy_send(conn,
	                    "COPY events (partition, seq, customer_key, "
	                    "publisher_id, event_id, type, occurred_at, "
	                    "received_at, payload) FROM STDIN (FORMAT binary)",
	                    &cb);
	pond_copy_free(&cb);
	return (rv);
}

/* store_events writes the accepted events of every batch of the group:
 * seqs are taken once for all of them, in batch order, and the rows go in
 * one COPY. This is the only work done with the stream heads locked. */
static int
store_events(PGconn *conn, ingest_batch *const *bs, size_t nb)
{
	uint32_t counts[POND_MAX_PARTITIONS] = {0};
	int64_t next[POND_MAX_PARTITIONS] = {0};
	uint32_t nparts = bs[0]->nparts;
	size_t naccepted = 0;
	int rv;

	for (size_t k = 0; k < nb; k++) {
		ingest_batch *b = bs[k];
		for (size_t i = 0; i < b->n; i++) {
			ingest_item *item = &b->items[i];
			if (item->status != STATUS_ACCEPTED) {
				continue;
			}
			/* A spend has no customer: its rows go by channel. */
			if (*item->customer_key != '\0') {
				item->partition = pond_partition_of(
				        item->customer_key, nparts);
			} else {
				char key[300];
				snprintf(key, sizeof(key), "channel:%s",
				         item->event->channel_spend->channel);
				item->partition =
				        pond_partition_of(key, nparts);
			}
			counts[item->partition]++;
			naccepted++;
			if ((rv = store_pack(b, item)) != 0) {
				return (rv);
			}
		}
	}
	if (naccepted == 0) {
		return (POND_OK);
	}
	if ((rv = pond_stream_reserve(conn, POND_STREAM_EVENTS, counts, nparts,
	                              next)) != 0) {
		return (rv);
	}
	for (size_t k = 0; k < nb; k++) {
		for (size_t i = 0; i < bs[k]->n; i++) {
			ingest_item *item = &bs[k]->items[i];
			if (item->status == STATUS_ACCEPTED) {
				item->seq = next[item->partition]++;
			}
		}
	}
	return (store_copy_events(conn, bs, nb));
}

static int
store_new_aliases(PGconn *conn, settle *st)
{
	const char **kinds, **values, **custs;
	char *ka = NULL, *va = NULL, *ca = NULL;
	size_t n = 0;
	int rv = POND_ENOMEM;

	if (st->new_aliases == 0) {
		return (POND_OK);
	}
	kinds = pond_arena_alloc(&st->b->arena,
	                         st->new_aliases * sizeof(char *));
	values = pond_arena_alloc(&st->b->arena,
	                          st->new_aliases * sizeof(char *));
	custs = pond_arena_alloc(&st->b->arena,
	                         st->new_aliases * sizeof(char *));
	if (kinds == NULL || values == NULL || custs == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < st->aliases.cap; i++) {
		strmap_slot *slot = &st->aliases.slots[i];
		if (slot->key == NULL || slot->state != CLAIMED) {
			continue;
		}
		char *sep = strchr(slot->key, '\x1f');
		char *kind = pond_arena_memdup(&st->b->arena, slot->key,
		                               (size_t)(sep - slot->key) + 1);
		if (kind == NULL) {
			return (POND_ENOMEM);
		}
		kind[sep - slot->key] = '\0';
		kinds[n] = kind;
		values[n] = sep + 1;
		custs[n++] = slot->value;
	}
	if ((ka = pond_pq_text_array(kinds, n)) == NULL ||
	    (va = pond_pq_text_array(values, n)) == NULL ||
	    (ca = pond_pq_text_array(custs, n)) == NULL) {
		goto out;
	}
	const char *params[] = {ka, va, ca};
	/* ON CONFLICT: a concurrent batch linked it first, and the first link
	 * wins. Sorted, so two batches lock in the same order. */
	rv = pond_pq_query(
	        conn, NULL,
	        "INSERT INTO customer_aliases (kind, value, customer_key) "
	        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
	        "ORDER BY 1, 2 ON CONFLICT DO NOTHING",
	        3, params);
out:
	free(ka);
	free(va);
	free(ca);
	return (rv);
}

static int
store_rejects(PGconn *conn, settle *st)
{
	ingest_batch *b = st->b;
	char received[40];
	int rv;

	if (b->replay_of > 0) {
		return (POND_OK); /* the original row stays the record */
	}
	pond_time_format_rfc3339(b->received_at, received, sizeof(received));
	for (size_t i = 0; i < b->n; i++) {
		const ingest_item *item = &b->items[i];
		if (item->status != STATUS_REJECTED) {
			continue;
		}
		/* The id is kept only when it is valid text; the raw bytes
		 * keep everything anyway. */
		const char *id =
		        *item->event_id != '\0' &&
		                        strlen(item->event_id) <=
		                                INGEST_MAX_STRING &&
		                        ingest_utf8_valid(
		                                (const unsigned char *)
		                                        item->event_id)
		                ? item->event_id
		                : NULL;
		const char *values[] = {st->pub_id,
		                        id,
		                        ingest_code_name(item->code),
		                        item->reason,
		                        b->format == FORMAT_JSON ? "json"
		                                                 : "protobuf",
		                        (const char *)item->raw,
		                        received};
		int lengths[] = {0, 0, 0, 0, 0, (int)item->raw_len, 0};
		int formats[] = {0, 0, 0, 0, 0, 1, 0};
		if (item->raw == NULL) {
			values[5] = "";
			lengths[5] = 0;
		}
		if ((rv = pond_pq_query_bin(
		             conn, NULL,
		             "INSERT INTO rejected_events (publisher_id, "
		             "event_id, "
		             "code, reason, format, raw, received_at) "
		             "VALUES ($1, $2, $3, $4, $5, $6, $7)",
		             7, values, lengths, formats)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

static void
store_reset(ingest_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		ingest_item *item = &b->items[i];
		item->status = STATUS_PENDING;
		item->code = CODE_NONE;
		item->reason = NULL;
		item->customer_key = NULL;
		item->seq = 0;
		/* A failed attempt may have stored the resolved key in the
		 * event (store_pack); resolve afresh from what was sent. */
		if (item->event != NULL) {
			item->event->customer_key = (char *)item->given_key;
		}
	}
	b->batch_error = NULL;
	b->batch_message = NULL;
	b->alias_conflicts = 0;
}

/* store_settle does all of one batch's work but its event rows, inside the
 * group's open transaction. A refusal the store decides (an unknown token,
 * no such rejected event) is the batch's own outcome: its batch_error is
 * set, nothing of it is written, and the group goes on. */
static int
store_settle(PGconn *conn, ingest_batch *b)
{
	settle st = {.b = b};
	int rv;

	if ((rv = store_auth(conn, &st)) == POND_EAUTH || rv == POND_ENOENT) {
		return (POND_OK);
	}
	if (rv != 0 || (rv = store_claim_ids(conn, &st)) != 0 ||
	    (rv = store_load_aliases(conn, &st)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < b->n; i++) {
		settle_item(&st, &b->items[i]);
	}
	if ((rv = store_release(
	             conn, &st, &st.event_ids,
	             "DELETE FROM event_ids WHERE publisher_id = $1 "
	             "AND event_id = ANY($2::text[])")) != 0 ||
	    (rv = store_release(
	             conn, &st, &st.order_ids,
	             "DELETE FROM order_ids WHERE publisher_id = $1 "
	             "AND order_id = ANY($2::text[])")) != 0 ||
	    (rv = store_new_aliases(conn, &st)) != 0 ||
	    (rv = store_rejects(conn, &st)) != 0) {
		return (rv);
	}
	return (store_mark_replayed(conn, b));
}

/* store_try settles the batches of a group in one transaction: each in
 * turn (a later one sees what an earlier one claimed and linked), then all
 * their event rows, then one COMMIT. */
static int
store_try(PGconn *conn, ingest_batch *const *bs, size_t nb)
{
	int rv;

	for (size_t k = 0; k < nb; k++) {
		store_reset(bs[k]);
		bs[k]->attempts++;
	}
	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		goto fail;
	}
	for (size_t k = 0; k < nb; k++) {
		if ((rv = store_settle(conn, bs[k])) != 0) {
			goto fail;
		}
	}
	if ((rv = store_events(conn, bs, nb)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto fail;
	}
	return (POND_OK);
fail:
	pond_pq_rollback(conn);
	return (rv);
}

/* ingest_store_fail marks a batch whose transaction did not commit: no
 * item may be acked accepted, and the publisher sends it again. */
void
ingest_store_fail(ingest_batch *b)
{
	store_reset(b);
	b->batch_error = "unavailable";
	b->batch_message = "the store could not commit the batch; nothing was "
	                   "stored, send it again";
}

/* store_group settles bs[0..nb), retrying conflicts. */
static int
store_group(PGconn *conn, ingest_batch *const *bs, size_t nb)
{
	int rv, attempts = 0;

	do {
		rv = store_try(conn, bs, nb);
	} while (rv == POND_ECONFLICT && ++attempts < STORE_ATTEMPTS);
	return (rv);
}

int
ingest_store_work(PGconn *conn, void *arg)
{
	ingest_group *g = arg;
	pond_time now = pond_now();
	const char *key =
	        g->ingest->conf.pii_key != NULL ? g->ingest->conf.pii_key : "";
	int rv;

	g->ran = true;
	for (size_t k = 0; k < g->n; k++) {
		ingest_batch *b = g->batches[k];
		for (size_t i = 0; i < b->n; i++) {
			ingest_item *item = &b->items[i];
			ingest_validate(item, b->format, now);
			ingest_utf8_repair(item->check_reason);
			if (item->event != NULL) {
				item->given_key = item->event->customer_key;
			}
		}
		/* From here on, aliases are their keyed hashes only. */
		if ((rv = ingest_hash_aliases(b, key, strlen(key))) != 0) {
			for (size_t j = 0; j < g->n; j++) {
				ingest_store_fail(g->batches[j]);
			}
			return (rv);
		}
	}
	if ((rv = store_group(conn, g->batches, g->n)) == 0) {
		return (POND_OK);
	}
	/* One batch must not cost the others their commit: when a group
	 * fails, each batch is settled again on its own. */
	size_t failed = 0;
	for (size_t k = 0; k < g->n; k++) {
		if (g->n == 1 || store_group(conn, &g->batches[k], 1) != 0) {
			ingest_store_fail(g->batches[k]);
			failed++;
		}
	}
	return (failed > 0 ? rv : POND_OK);
}
