/*
 * evaluate.c - which tags a customer should have, and the tag_changes
 * stream records for those that went on or off.
 *
 * The tags of a customer are the built-in ones (lifecycle:<stage>, and
 * repurchase_due once the last order's repurchase cycle has passed in
 * whole POND_TZ days) plus every rule whose condition holds. A rule that
 * looks at `tags` sees the built-in tags as just computed and the rule
 * tags as they were before this evaluation, so rules never depend on the
 * order they are evaluated in.
 *
 * Changes are written with pond_stream_reserve inside the caller's
 * transaction (the consumer's, with the cursor advance, or the sweeper's),
 * so a change exists exactly when the profile change that caused it
 * committed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "pond/tagging.pb-c.h"
#include "stream.h"
#include "tagging.h"

int
tagging_rules_load(PGconn *conn, tagging_rules *out)
{
	PGresult *res;
	int rv;

	memset(out, 0, sizeof(*out));
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT s.value, r.tag, r.condition::text FROM "
	             "pond_settings s LEFT JOIN tag_rules r ON true WHERE "
	             "s.key = 'tag_rules_version' ORDER BY r.tag",
	             0, NULL)) != 0) {
		return (rv);
	}
	int rows = PQntuples(res);
	if (rows > 0) {
		out->version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	}
	if (rows > 0 && !PQgetisnull(res, 0, 1) &&
	    (out->rules = calloc((size_t)rows, sizeof(*out->rules))) == NULL) {
		PQclear(res);
		return (POND_ENOMEM);
	}
	for (int r = 0; out->rules != NULL && r < rows; r++) {
		json_t *j = json_loads(PQgetvalue(res, r, 2), 0, NULL);
		tagging_rule *rule = &out->rules[out->n];
		pond_cond_error err;
		if (j == NULL || pond_cond_parse(j, &rule->cond, &err) != 0 ||
		    (rule->tag = strdup(PQgetvalue(res, r, 1))) == NULL) {
			/* Stored rules were checked when they were put; one
			 * that no longer parses is skipped, loudly. */
			pond_log_error("rule_unreadable", "tag=%s",
			               PQgetvalue(res, r, 1));
			pond_cond_free(rule->cond);
			rule->cond = NULL;
			json_decref(j);
			continue;
		}
		json_decref(j);
		out->uses_time |= pond_cond_uses_time(rule->cond);
		out->n++;
	}
	PQclear(res);
	return (POND_OK);
}

void
tagging_rules_free(tagging_rules *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->rules[i].tag);
		pond_cond_free(r->rules[i].cond);
	}
	free(r->rules);
	memset(r, 0, sizeof(*r));
}

static int
tag_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

static bool
is_builtin(const char *tag)
{
	return (strncmp(tag, "lifecycle:", 10) == 0 ||
	        strcmp(tag, "repurchase_due") == 0);
}

static int
changes_add(tagging_changes *ch, const tagging_change *c)
{
	if (ch->n == ch->cap) {
		size_t cap = ch->cap == 0 ? 16 : ch->cap * 2;
		tagging_change *v = realloc(ch->v, cap * sizeof(*v));
		if (v == NULL) {
			return (POND_ENOMEM);
		}
		ch->v = v;
		ch->cap = cap;
	}
	ch->v[ch->n++] = *c;
	return (POND_OK);
}

void
tagging_changes_free(tagging_changes *ch)
{
	free(ch->v);
	memset(ch, 0, sizeof(*ch));
}

/* profile_facts fills what conditions see of p. */
static void
profile_facts(const tagging_profile *p, const char *const *tags, size_t ntags,
              pond_time now, pond_facts *f)
{
	*f = (pond_facts){
	        .channel = p->channel,
	        .guide_id = p->guide_id,
	        .store_id = p->store_id,
	        .region = p->region,
	        .industry = p->industry,
	        .lifecycle = p->lifecycle,
	        .attributes = p->attributes,
	        .tags = tags,
	        .ntags = ntags,
	        .orders = p->orders,
	        .net_revenue_fen = p->net_revenue_fen,
	        .rewards_fen = p->rewards_fen,
	        .invitees = p->invitees,
	        .added_at = p->acquired_at,
	        .last_order_at = p->last_order_at,
	        .last_interaction_at = p->last_interaction_at,
	        .now = now,
	};
}

/* profile_due is the next moment p's tags may change with time alone:
 * the next local midnight when an age matters to it, else none. */
static pond_time
profile_due(const tagging_profile *p, const tagging_rules *rules,
            bool repurchase_due, pond_time now)
{
	bool ages = p->acquired_at != 0 || p->last_order_at != 0 ||
	            p->last_interaction_at != 0;

	if ((p->last_order_at != 0 && !repurchase_due) ||
	    (rules->uses_time && ages)) {
		return (pond_next_local_midnight(now));
	}
	return (0);
}

int
tagging_evaluate(tagging_profile *p, pond_arena *arena,
                 const tagging_rules *rules, const tagging_cycles *cycles,
                 pond_time now, const char *cause, int64_t cause_seq,
                 const char *event_id, tagging_changes *out, uint64_t *evals)
{
	size_t cap = p->ntags + rules->n + 2, nseen = 0, nwant = 0;
	char **seen = pond_arena_alloc(arena, cap * sizeof(char *));
	char **want = pond_arena_alloc(arena, cap * sizeof(char *));
	char stage[48];
	pond_facts f;
	bool due = false;
	int rv;

	(void)cycles;
	if (seen == NULL || want == NULL) {
		return (POND_ENOMEM);
	}
	p->lifecycle = (char *)tagging_lifecycle(p);
	snprintf(stage, sizeof(stage), "lifecycle:%s", p->lifecycle);
	if ((want[nwant++] = pond_arena_strdup(arena, stage)) == NULL) {
		return (POND_ENOMEM);
	}
	if (p->last_order_at != 0 && p->last_order_cycle_days > 0 &&
	    pond_days_since(p->last_order_at, now) >=
	            p->last_order_cycle_days) {
		want[nwant++] = "repurchase_due";
		due = true;
	}
	/* What rules see as tags: the new built-ins, the old rule tags. */
	for (size_t i = 0; i < nwant; i++) {
		seen[nseen++] = want[i];
	}
	for (size_t i = 0; i < p->ntags; i++) {
		if (!is_builtin(p->tags[i])) {
			seen[nseen++] = p->tags[i];
		}
	}
	profile_facts(p, (const char *const *)seen, nseen, now, &f);
	for (size_t i = 0; i < rules->n; i++) {
		if (pond_cond_eval(rules->rules[i].cond, &f)) {
			want[nwant++] = rules->rules[i].tag;
		}
	}
	*evals += rules->n;
	qsort(want, nwant, sizeof(char *), tag_cmp);
	p->due_at = profile_due(p, rules, due, now);
	p->rules_version = rules->version;

	/* Removals, then additions, each in tag order: a stable order makes
	 * the stream the same whatever the batching was. */
	for (int pass = 0; pass < 2; pass++) {
		char **a = pass == 0 ? p->tags : want;
		char **b = pass == 0 ? want : p->tags;
		size_t na = pass == 0 ? p->ntags : nwant;
		size_t nb = pass == 0 ? nwant : p->ntags;
		for (size_t i = 0; i < na; i++) {
			if (nb > 0 && bsearch(&a[i], b, nb, sizeof(char *),
			                      tag_cmp) != NULL) {
				continue;
			}
			tagging_change c = {
			        .partition = p->partition,
			        .customer_key = p->key,
			        .tag = pond_arena_strdup(arena, a[i]),
			        .added = pass == 1,
			        .cause = cause,
			        .cause_seq = cause_seq,
			        .event_id = event_id,
			};
			if (c.tag == NULL) {
				return (POND_ENOMEM);
			}
			if ((rv = changes_add(out, &c)) != 0) {
				return (rv);
			}
		}
	}
	/* The profile keeps copies: want points at rule tags that go away
	 * with the rule set. */
	for (size_t i = 0; i < nwant; i++) {
		if ((want[i] = pond_arena_strdup(arena, want[i])) == NULL) {
			return (POND_ENOMEM);
		}
	}
	p->tags = want;
	p->ntags = nwant;
	return (POND_OK);
}

/* change_pack packs c as a pond.TagChange into arena. */
static int
change_pack(tagging_change *c, pond_arena *arena, pond_time now)
{
	Pond__TagChange m = POND__TAG_CHANGE__INIT;
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

	m.customer_key = (char *)c->customer_key;
	m.tag = (char *)c->tag;
	m.added = c->added;
	m.cause = (char *)c->cause;
	m.cause_seq = (uint64_t)c->cause_seq;
	m.event_id = (char *)(c->event_id != NULL ? c->event_id : "");
	ts.seconds = now / POND_USEC_PER_SEC;
	ts.nanos = (int32_t)(now % POND_USEC_PER_SEC) * 1000;
	m.changed_at = &ts;
	c->len = pond__tag_change__get_packed_size(&m);
	if ((c->payload = pond_arena_alloc(arena, c->len + 1)) == NULL) {
		return (POND_ENOMEM);
	}
	pond__tag_change__pack(&m, c->payload);
	return (POND_OK);
}

/* hex_bytea writes "\x..." for p into arena. */
static char *
hex_bytea(pond_arena *arena, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *s = pond_arena_alloc(arena, 2 * n + 3);

	if (s == NULL) {
		return (NULL);
	}
	s[0] = '\\';
	s[1] = 'x';
	for (size_t i = 0; i < n; i++) {
		s[2 + 2 * i] = digits[p[i] >> 4];
		s[3 + 2 * i] = digits[p[i] & 15];
	}
	s[2 + 2 * n] = '\0';
	return (s);
}

int
tagging_changes_write(PGconn *conn, pond_arena *arena, uint32_t nparts,
                      tagging_changes *ch, pond_time now)
{
	enum { NARR = 8 };
	uint32_t *counts = NULL;
	int64_t *next = NULL;
	const char **items = NULL;
	char *arrays[NARR] = {0};
	char nowbuf[40];
	int rv = POND_ENOMEM;

	if (ch->n == 0) {
		return (POND_OK);
	}
	counts = calloc(nparts, sizeof(*counts));
	next = calloc(nparts, sizeof(*next));
	items = calloc(ch->n, sizeof(*items));
	if (counts == NULL || next == NULL || items == NULL) {
		goto out;
	}
	for (size_t i = 0; i < ch->n; i++) {
		counts[ch->v[i].partition]++;
	}
	if ((rv = pond_stream_reserve(conn, POND_STREAM_TAG_CHANGES, counts,
	                              nparts, next)) != 0) {
		goto out;
	}
	rv = POND_ENOMEM;
	for (size_t i = 0; i < ch->n; i++) {
		ch->v[i].seq = next[ch->v[i].partition]++;
		if (change_pack(&ch->v[i], arena, now) != 0) {
			goto out;
		}
	}
	/* One array per column; each element rendered into the arena. */
	for (int col = 0; col < NARR - 1; col++) {
		for (size_t i = 0; i < ch->n; i++) {
			tagging_change *c = &ch->v[i];
			char buf[32];
			const char *v = buf;
			switch (col) {
			case 0:
				snprintf(buf, sizeof(buf), "%" PRIu32,
				         c->partition);
				break;
			case 1:
				snprintf(buf, sizeof(buf), "%" PRId64, c->seq);
				break;
			case 2:
				v = c->customer_key;
				break;
			case 3:
				v = c->tag;
				break;
			case 4:
				v = c->added ? "t" : "f";
				break;
			case 5:
				v = c->cause;
				break;
			case 6:
				if (c->cause_seq > 0) {
					snprintf(buf, sizeof(buf), "%" PRId64,
					         c->cause_seq);
				} else {
					v = NULL;
				}
				break;
			}
			if (v == buf) {
				v = pond_arena_strdup(arena, buf);
			}
			items[i] = v;
		}
		if ((arrays[col] = pond_pq_text_array(items, ch->n)) == NULL) {
			goto out;
		}
	}
	for (size_t i = 0; i < ch->n; i++) {
		if ((items[i] = hex_bytea(arena, ch->v[i].payload,
		                          ch->v[i].len)) == NULL) {
			goto out;
		}
	}
	if ((arrays[NARR - 1] = pond_pq_text_array(items, ch->n)) == NULL) {
		goto out;
	}
	const char *params[NARR + 1] = {
	        arrays[0],
	        arrays[1],
	        arrays[2],
	        arrays[3],
	        arrays[4],
	        arrays[5],
	        arrays[6],
	        arrays[7],
	        pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf))};
	rv = pond_pq_query(conn, NULL,
	                   "INSERT INTO tag_changes (partition, seq, "
	                   "customer_key, tag, added, cause, cause_seq, "
	                   "payload, changed_at) SELECT u.*, $9 FROM "
	                   "unnest($1::int[], $2::bigint[], $3::text[], "
	                   "$4::text[], $5::boolean[], $6::text[], "
	                   "$7::bigint[], $8::bytea[]) AS u",
	                   NARR + 1, params);
out:
	for (int i = 0; i < NARR; i++) {
		free(arrays[i]);
	}
	free(counts);
	free(next);
	free(items);
	return (rv);
}
