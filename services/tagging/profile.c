/*
 * profile.c - a customer profile: loaded from the store, changed by events,
 * written back.
 *
 * One table of columns (profile_cols) drives the SELECT list, the parsing
 * of a row into a tagging_profile and the batched upsert, so a column is
 * added in one place. A batch of profiles is read with one statement and
 * written with one (unnest of one array per column), whatever its size.
 *
 * Events are applied so that arrival order does not matter where API.md
 * defines an order by time: the acquisition is the earliest contact_added
 * by (occurred_at, event_id, publisher); last order / interaction times are
 * maxima; contact removal and consent follow the latest event by
 * occurred_at (an equal time: the later arrival). Counters add up.
 * profile_updated changes only the fields it carries, in arrival order.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "stream.h"
#include "tagging.h"

typedef enum col_type {
	COL_TEXT,
	COL_INT,
	COL_BOOL,
	COL_TIME,
	COL_JSON,
} col_type;

#define COL(name, type)                                                       \
	{                                                                     \
#name, type, offsetof(tagging_profile, name)                  \
	}

/* profile_cols are the stored columns after (partition, customer_key). */
static const struct {
	const char *name;
	col_type type;
	size_t offset;
} profile_cols[] = {
        COL(acquired_at, COL_TIME),
        COL(acq_event_id, COL_TEXT),
        COL(acq_publisher, COL_TEXT),
        COL(channel, COL_TEXT),
        COL(guide_id, COL_TEXT),
        COL(store_id, COL_TEXT),
        COL(inviter_key, COL_TEXT),
        COL(campaign_id, COL_TEXT),
        COL(region, COL_TEXT),
        COL(industry, COL_TEXT),
        COL(birthday, COL_TEXT),
        COL(attributes, COL_JSON),
        COL(orders, COL_INT),
        COL(net_revenue_fen, COL_INT),
        COL(rewards_fen, COL_INT),
        COL(invitees, COL_INT),
        COL(last_order_at, COL_TIME),
        COL(last_order_cycle_days, COL_INT),
        COL(last_interaction_at, COL_TIME),
        COL(member, COL_BOOL),
        COL(member_tier, COL_TEXT),
        COL(consent, COL_JSON),
        COL(contact_removed, COL_BOOL),
        COL(contact_changed_at, COL_TIME),
        COL(lifecycle, COL_TEXT),
        COL(first_event_at, COL_TIME),
        COL(last_event_at, COL_TIME),
        COL(due_at, COL_TIME),
        COL(rules_version, COL_INT),
};
#define NCOLS (sizeof(profile_cols) / sizeof(profile_cols[0]))

static const char *const col_sql_types[] = {
        [COL_TEXT] = "text",    [COL_INT] = "bigint",
        [COL_BOOL] = "boolean", [COL_TIME] = "timestamptz",
        [COL_JSON] = "jsonb",
};

/* The statements built from profile_cols once; never from input. */
static char select_list[2048];
static char upsert_sql[8192];
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static void
profile_build_sql(void)
{
	size_t o = 0, u = 0;
	char *s = select_list, *q = upsert_sql;
	size_t sl = sizeof(select_list), ql = sizeof(upsert_sql);

	o += (size_t)snprintf(s + o, sl - o, "p.partition, p.customer_key");
	for (size_t i = 0; i < NCOLS; i++) {
		const char *n = profile_cols[i].name;
		switch (profile_cols[i].type) {
		case COL_TIME:
			o += (size_t)snprintf(s + o, sl - o,
			                      ", (extract(epoch FROM p.%s) * "
			                      "1000000)::bigint",
			                      n);
			break;
		case COL_JSON:
			o += (size_t)snprintf(s + o, sl - o, ", p.%s::text",
			                      n);
			break;
		default:
			o += (size_t)snprintf(s + o, sl - o, ", p.%s", n);
		}
	}
	u += (size_t)snprintf(q + u, ql - u,
	                      "INSERT INTO customer_profiles (partition, "
	                      "customer_key");
	for (size_t i = 0; i < NCOLS; i++) {
		u += (size_t)snprintf(q + u, ql - u, ", %s",
		                      profile_cols[i].name);
	}
	u += (size_t)snprintf(q + u, ql - u,
	                      ", opted_out) SELECT u.*, ARRAY(SELECT e.k FROM "
	                      "jsonb_each(u.consent) AS e(k, v) WHERE "
	                      "(e.v->>'out')::boolean ORDER BY e.k)::text[] "
	                      "FROM unnest($1::int[], $2::text[]");
	for (size_t i = 0; i < NCOLS; i++) {
		u += (size_t)snprintf(q + u, ql - u, ", $%zu::%s[]", i + 3,
		                      col_sql_types[profile_cols[i].type]);
	}
	u += (size_t)snprintf(q + u, ql - u, ") AS u(partition, customer_key");
	for (size_t i = 0; i < NCOLS; i++) {
		u += (size_t)snprintf(q + u, ql - u, ", %s",
		                      profile_cols[i].name);
	}
	u += (size_t)snprintf(q + u, ql - u,
	                      ") ON CONFLICT (partition, customer_key) DO "
	                      "UPDATE SET updated_at = now(), opted_out = "
	                      "EXCLUDED.opted_out");
	for (size_t i = 0; i < NCOLS; i++) {
		u += (size_t)snprintf(q + u, ql - u, ", %s = EXCLUDED.%s",
		                      profile_cols[i].name,
		                      profile_cols[i].name);
	}
}

/* --- cycles
 * ------------------------------------------------------------------- */

int
tagging_cycles_parse(const char *spec, tagging_cycles *out, const char **why)
{
	const char *s = spec;

	memset(out, 0, sizeof(*out));
	out->default_days = 30;
	while (*s != '\0') {
		const char *colon = strchr(s, ':');
		const char *end = strchr(s, ',');
		char *num_end;
		if (end == NULL) {
			end = s + strlen(s);
		}
		if (colon == NULL || colon > end || colon == s ||
		    (size_t)(colon - s) >= sizeof(out->cycles[0].category)) {
			*why = "expected CATEGORY:DAYS[,CATEGORY:DAYS...]";
			goto fail;
		}
		long long days = strtoll(colon + 1, &num_end, 10);
		if (num_end != end || days < 1 || days > 3650) {
			*why = "days must be a whole number from 1 to 3650";
			goto fail;
		}
		if ((size_t)(colon - s) == 7 &&
		    strncmp(s, "default", 7) == 0) {
			out->default_days = days;
		} else {
			tagging_cycle *c = realloc(out->cycles,
			                           (out->n + 1) * sizeof(*c));
			if (c == NULL) {
				*why = "out of memory";
				goto fail;
			}
			out->cycles = c;
			snprintf(c[out->n].category, sizeof(c->category),
			         "%.*s", (int)(colon - s), s);
			c[out->n++].days = days;
		}
		s = *end == ',' ? end + 1 : end;
	}
	return (POND_OK);
fail:
	free(out->cycles);
	out->cycles = NULL;
	out->n = 0;
	return (POND_EINVAL);
}

/* order_cycle is the shortest repurchase cycle of the order's categories
 * (the product the customer runs out of first), the default without any. */
static int64_t
order_cycle(const Pond__OrderPaid *o, const tagging_cycles *cycles)
{
	int64_t best = 0;

	for (size_t i = 0; i < o->n_items; i++) {
		int64_t days = cycles->default_days;
		for (size_t j = 0; j < cycles->n; j++) {
			if (o->items[i]->category != NULL &&
			    strcmp(cycles->cycles[j].category,
			           o->items[i]->category) == 0) {
				days = cycles->cycles[j].days;
			}
		}
		if (best == 0 || days < best) {
			best = days;
		}
	}
	return (best > 0 ? best : cycles->default_days);
}

/* --- load
 * --------------------------------------------------------------------- */

static void
profile_init(tagging_profile *p, uint32_t partition, char *key)
{
	memset(p, 0, sizeof(*p));
	p->partition = partition;
	p->key = key;
	p->lifecycle = "potential";
}

static int
profile_from_row(tagging_profile *p, pond_arena *arena, const PGresult *res,
                 int row)
{
	for (size_t i = 0; i < NCOLS; i++) {
		int col = (int)i + 2;
		void *field = (char *)p + profile_cols[i].offset;
		const char *v = PQgetvalue(res, row, col);
		bool null = PQgetisnull(res, row, col);
		switch (profile_cols[i].type) {
		case COL_TEXT:
			*(char **)field =
			        null ? NULL : pond_arena_strdup(arena, v);
			if (!null && *(char **)field == NULL) {
				return (POND_ENOMEM);
			}
			break;
		case COL_INT:
		case COL_TIME:
			*(int64_t *)field = null ? 0 : strtoll(v, NULL, 10);
			break;
		case COL_BOOL:
			*(bool *)field = !null && v[0] == 't';
			break;
		case COL_JSON:
			*(json_t **)field = json_loads(v, 0, NULL);
			if (*(json_t **)field == NULL) {
				return (POND_ENOMEM);
			}
			break;
		}
	}
	p->stored = true;
	p->loaded_inviter = p->inviter_key;
	return (POND_OK);
}

static int
profile_key_index(const tagging_profile *profs, size_t n, uint32_t part,
                  const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (profs[i].partition == part &&
		    strcmp(profs[i].key, key) == 0) {
			return ((int)i);
		}
	}
	return (-1);
}

static int
tag_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* profiles_load_tags fills the tags of profs from customer_tags. */
static int
profiles_load_tags(PGconn *conn, pond_arena *arena, tagging_profile *profs,
                   size_t n, const char *parts_arr, const char *keys_arr)
{
	const char *params[] = {parts_arr, keys_arr};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT t.partition, t.customer_key, t.tag FROM "
	             "customer_tags t JOIN unnest($1::int[], $2::text[]) AS "
	             "k(p, key) ON t.partition = k.p AND t.customer_key = "
	             "k.key ORDER BY 1, 2, 3",
	             2, params)) != 0) {
		return (rv);
	}
	int rows = PQntuples(res);
	for (int r = 0; r < rows; r++) {
		int i = profile_key_index(
		        profs, n, (uint32_t)atoi(PQgetvalue(res, r, 0)),
		        PQgetvalue(res, r, 1));
		if (i < 0) {
			continue;
		}
		tagging_profile *p = &profs[i];
		if (p->tags == NULL) {
			/* At most rows tags for one customer. */
			p->tags = pond_arena_alloc(
			        arena, (size_t)rows * sizeof(char *));
			if (p->tags == NULL) {
				rv = POND_ENOMEM;
				break;
			}
		}
		if ((p->tags[p->ntags++] = pond_arena_strdup(
		             arena, PQgetvalue(res, r, 2))) == NULL) {
			rv = POND_ENOMEM;
			break;
		}
	}
	PQclear(res);
	for (size_t i = 0; rv == 0 && i < n; i++) {
		tagging_profile *p = &profs[i];
		if (p->ntags > 1) {
			qsort(p->tags, p->ntags, sizeof(char *), tag_cmp);
		}
		p->loaded_tags = p->tags;
		p->nloaded_tags = p->ntags;
	}
	return (rv);
}

/* profiles_fill turns rows of a SELECT of select_list into profs (already
 * initialised with their keys). */
static int
profiles_fill(pond_arena *arena, tagging_profile *profs, size_t n,
              const PGresult *res)
{
	int rv;

	for (int r = 0; r < PQntuples(res); r++) {
		int i = profile_key_index(
		        profs, n, (uint32_t)atoi(PQgetvalue(res, r, 0)),
		        PQgetvalue(res, r, 1));
		if (i >= 0 &&
		    (rv = profile_from_row(&profs[i], arena, res, r)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

static int
profiles_arrays(const uint32_t *parts, char *const *keys, size_t n,
                char **parts_arr, char **keys_arr)
{
	char **pstr = calloc(n + 1, sizeof(char *));
	char *buf = malloc(n * 12 + 1);
	int rv = POND_ENOMEM;

	*parts_arr = *keys_arr = NULL;
	if (pstr != NULL && buf != NULL) {
		for (size_t i = 0; i < n; i++) {
			pstr[i] = buf + i * 12;
			snprintf(pstr[i], 12, "%" PRIu32, parts[i]);
		}
		*parts_arr = pond_pq_text_array((const char *const *)pstr, n);
		*keys_arr = pond_pq_text_array((const char *const *)keys, n);
		rv = *parts_arr != NULL && *keys_arr != NULL ? POND_OK
		                                             : POND_ENOMEM;
	}
	free(pstr);
	free(buf);
	return (rv);
}

int
tagging_profiles_load(PGconn *conn, pond_arena *arena, const uint32_t *parts,
                      char *const *keys, size_t n, tagging_profile **out)
{
	char *parts_arr = NULL, *keys_arr = NULL, sql[3072];
	tagging_profile *profs;
	PGresult *res = NULL;
	int rv;

	pthread_once(&sql_once, profile_build_sql);
	*out = NULL;
	if ((profs = pond_arena_alloc(arena, (n + 1) * sizeof(*profs))) ==
	    NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < n; i++) {
		profile_init(&profs[i], parts[i], keys[i]);
	}
	if ((rv = profiles_arrays(parts, keys, n, &parts_arr, &keys_arr)) !=
	    0) {
		goto out;
	}
	/* Rows are locked in key order, so two transactions that share
	 * customers queue rather than deadlock. */
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM customer_profiles p JOIN unnest($1::int[], "
	         "$2::text[]) AS k(part, key) ON p.partition = k.part AND "
	         "p.customer_key = k.key ORDER BY p.partition, p.customer_key "
	         "FOR UPDATE OF p",
	         select_list);
	const char *params[] = {parts_arr, keys_arr};
	if ((rv = pond_pq_query(conn, &res, sql, 2, params)) != 0 ||
	    (rv = profiles_fill(arena, profs, n, res)) != 0 ||
	    (rv = profiles_load_tags(conn, arena, profs, n, parts_arr,
	                             keys_arr)) != 0) {
		goto out;
	}
	*out = profs;
out:
	if (rv != 0) {
		tagging_profiles_clear(profs, n);
	}
	PQclear(res);
	free(parts_arr);
	free(keys_arr);
	return (rv);
}

int
tagging_profiles_due(PGconn *conn, pond_arena *arena, pond_time now,
                     int64_t version, int limit, tagging_profile **out,
                     size_t *np)
{
	char sql[3072], nowbuf[40], vbuf[24], lbuf[16];
	char *parts_arr = NULL, *keys_arr = NULL;
	const char *params[] = {nowbuf, vbuf, lbuf};
	tagging_profile *profs = NULL;
	PGresult *res = NULL;
	uint32_t *parts = NULL;
	char **keys = NULL;
	size_t n = 0;
	int rv;

	pthread_once(&sql_once, profile_build_sql);
	*out = NULL;
	*np = 0;
	pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf));
	snprintf(vbuf, sizeof(vbuf), "%" PRId64, version);
	snprintf(lbuf, sizeof(lbuf), "%d", limit);
	/* SKIP LOCKED: replicas (and the consumer) never wait on each
	 * other here; a row in use now is simply taken on a later pass. */
	snprintf(sql, sizeof(sql),
	         "SELECT %s FROM customer_profiles p WHERE p.due_at <= $1 OR "
	         "p.rules_version < $2 ORDER BY p.partition, p.customer_key "
	         "LIMIT $3 FOR UPDATE SKIP LOCKED",
	         select_list);
	if ((rv = pond_pq_query(conn, &res, sql, 3, params)) != 0) {
		return (rv);
	}
	n = (size_t)PQntuples(res);
	if (n == 0) {
		PQclear(res);
		return (POND_OK);
	}
	rv = POND_ENOMEM;
	profs = pond_arena_alloc(arena, n * sizeof(*profs));
	parts = calloc(n, sizeof(*parts));
	keys = calloc(n, sizeof(*keys));
	if (profs == NULL || parts == NULL || keys == NULL) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		parts[i] = (uint32_t)atoi(PQgetvalue(res, (int)i, 0));
		if ((keys[i] = pond_arena_strdup(
		             arena, PQgetvalue(res, (int)i, 1))) == NULL) {
			goto out;
		}
		profile_init(&profs[i], parts[i], keys[i]);
	}
	if ((rv = profiles_fill(arena, profs, n, res)) != 0 ||
	    (rv = profiles_arrays(parts, keys, n, &parts_arr, &keys_arr)) !=
	            0 ||
	    (rv = profiles_load_tags(conn, arena, profs, n, parts_arr,
	                             keys_arr)) != 0) {
		goto out;
	}
	*out = profs;
	*np = n;
out:
	if (rv != 0 && profs != NULL) {
		tagging_profiles_clear(profs, n);
	}
	PQclear(res);
	free(parts);
	free(keys);
	free(parts_arr);
	free(keys_arr);
	return (rv);
}

void
tagging_profiles_clear(tagging_profile *profs, size_t n)
{
	for (size_t i = 0; profs != NULL && i < n; i++) {
		json_decref(profs[i].attributes);
		json_decref(profs[i].consent);
		profs[i].attributes = profs[i].consent = NULL;
	}
}

/* --- store
 * -------------------------------------------------------------------- */

/* col_text renders field i of p as the text of an array element (NULL for
 * SQL NULL) into buf, or a malloc'd string for JSON (*owned set). */
static const char *
col_text(const tagging_profile *p, size_t i, char *buf, size_t len,
         char **owned)
{
	const void *field = (const char *)p + profile_cols[i].offset;

	*owned = NULL;
	switch (profile_cols[i].type) {
	case COL_TEXT:
		return (*(char *const *)field);
	case COL_INT:
		snprintf(buf, len, "%" PRId64, *(const int64_t *)field);
		return (buf);
	case COL_BOOL:
		return (*(const bool *)field ? "t" : "f");
	case COL_TIME:
		if (*(const pond_time *)field == 0) {
			return (NULL);
		}
		return (pond_time_format_rfc3339(*(const pond_time *)field,
		                                 buf, len));
	case COL_JSON: {
		const json_t *j = *(json_t *const *)field;
		*owned = j != NULL
		                 ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)
		                 : strdup("{}");
		return (*owned);
	}
	}
	return (NULL);
}

static int
profiles_upsert(PGconn *conn, const tagging_profile *profs, size_t n)
{
	char *arrays[NCOLS + 2] = {0};
	const char **items = calloc(n + 1, sizeof(char *));
	char **owned = calloc(n + 1, sizeof(char *));
	char(*bufs)[40] = calloc(n + 1, sizeof(*bufs));
	int rv = POND_ENOMEM;

	if (items == NULL || owned == NULL || bufs == NULL) {
		goto out;
	}
	for (size_t c = 0; c < NCOLS + 2; c++) {
		for (size_t i = 0; i < n; i++) {
			if (c == 0) {
				snprintf(bufs[i], sizeof(bufs[i]), "%" PRIu32,
				         profs[i].partition);
				items[i] = bufs[i];
			} else if (c == 1) {
				items[i] = profs[i].key;
			} else {
				items[i] =
				        col_text(&profs[i], c - 2, bufs[i],
				                 sizeof(bufs[i]), &owned[i]);
			}
		}
		arrays[c] = pond_pq_text_array(items, n);
		for (size_t i = 0; i < n; i++) {
			free(owned[i]);
			owned[i] = NULL;
		}
		if (arrays[c] == NULL) {
			goto out;
		}
	}
	rv = pond_pq_query(conn, NULL, upsert_sql, (int)(NCOLS + 2),
	                   (const char *const *)arrays);
out:
	for (size_t c = 0; c < NCOLS + 2; c++) {
		free(arrays[c]);
	}
	free(items);
	free(owned);
	free(bufs);
	return (rv);
}

/* tags_diff_arrays collects (partition, key, tag) of tags in a but not in
 * b (both sorted) of every profile; which = 0 takes removals (loaded, not
 * current), 1 additions. */
static int
profiles_tag_sql(PGconn *conn, const tagging_profile *profs, size_t n,
                 bool additions, pond_time now)
{
	size_t cap = 0, m = 0;
	int rv = POND_ENOMEM;

	for (size_t i = 0; i < n; i++) {
		cap += additions ? profs[i].ntags : profs[i].nloaded_tags;
	}
	const char **ps = calloc(cap + 1, sizeof(char *));
	const char **ks = calloc(cap + 1, sizeof(char *));
	const char **ts = calloc(cap + 1, sizeof(char *));
	char(*pbuf)[12] = calloc(cap + 1, sizeof(*pbuf));
	char *pa = NULL, *ka = NULL, *ta = NULL, nowbuf[40];
	if (ps == NULL || ks == NULL || ts == NULL || pbuf == NULL) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const tagging_profile *p = &profs[i];
		char **a = additions ? p->tags : p->loaded_tags;
		char **b = additions ? p->loaded_tags : p->tags;
		size_t na = additions ? p->ntags : p->nloaded_tags;
		size_t nb = additions ? p->nloaded_tags : p->ntags;
		for (size_t x = 0; x < na; x++) {
			if (nb > 0 && bsearch(&a[x], b, nb, sizeof(char *),
			                      tag_cmp) != NULL) {
				continue;
			}
			snprintf(pbuf[m], sizeof(pbuf[m]), "%" PRIu32,
			         p->partition);
			ps[m] = pbuf[m];
			ks[m] = p->key;
			ts[m++] = a[x];
		}
	}
	if (m == 0) {
		rv = POND_OK;
		goto out;
	}
	pa = pond_pq_text_array(ps, m);
	ka = pond_pq_text_array(ks, m);
	ta = pond_pq_text_array(ts, m);
	if (pa == NULL || ka == NULL || ta == NULL) {
		goto out;
	}
	const char *params[] = {
	        pa, ka, ta,
	        pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf))};
	if (additions) {
		rv = pond_pq_query(
		        conn, NULL,
		        "INSERT INTO customer_tags (partition, "
		        "customer_key, tag, since) SELECT p, k, t, $4 "
		        "FROM unnest($1::int[], $2::text[], "
		        "$3::text[]) AS a(p, k, t) ON CONFLICT DO "
		        "NOTHING",
		        4, params);
	} else {
		rv = pond_pq_query(
		        conn, NULL,
		        "DELETE FROM customer_tags c USING "
		        "unnest($1::int[], $2::text[], $3::text[]) AS "
		        "d(p, k, t) WHERE c.partition = d.p AND "
		        "c.customer_key = d.k AND c.tag = d.t",
		        3, params);
	}
out:
	free(ps);
	free(ks);
	free(ts);
	free(pbuf);
	free(pa);
	free(ka);
	free(ta);
	return (rv);
}

/* inviter_move adds delta to the invitee count of inviter and makes it due
 * now, so its tags are re-evaluated by the sweeper in a transaction of its
 * own (the inviter may live in another partition). An inviter without a
 * profile yet gets one. */
static int
inviter_move(PGconn *conn, uint32_t nparts, const char *inviter, int delta,
             pond_time now)
{
	char d[8], part[16], nowbuf[40];
	const char *params[] = {
	        part, inviter, d,
	        pond_time_format_rfc3339(now, nowbuf, sizeof(nowbuf))};

	snprintf(d, sizeof(d), "%d", delta);
	snprintf(part, sizeof(part), "%" PRIu32,
	         pond_partition_of(inviter, nparts));
	return (pond_pq_query(
	        conn, NULL,
	        "INSERT INTO customer_profiles (partition, customer_key, "
	        "invitees, due_at) VALUES ($1, $2, $3, $4) ON CONFLICT "
	        "(partition, customer_key) DO UPDATE SET invitees = "
	        "customer_profiles.invitees + EXCLUDED.invitees, due_at = "
	        "least(coalesce(customer_profiles.due_at, EXCLUDED.due_at), "
	        "EXCLUDED.due_at)",
	        4, params));
}

int
tagging_profiles_store(PGconn *conn, tagging_profile *profs, size_t n,
                       uint32_t nparts, pond_time now)
{
	int rv;

	if (n == 0) {
		return (POND_OK);
	}
	if ((rv = profiles_upsert(conn, profs, n)) != 0 ||
	    (rv = profiles_tag_sql(conn, profs, n, false, now)) != 0 ||
	    (rv = profiles_tag_sql(conn, profs, n, true, now)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < n; i++) {
		const tagging_profile *p = &profs[i];
		const char *was = p->loaded_inviter, *is = p->inviter_key;
		if ((was == NULL && is == NULL) ||
		    (was != NULL && is != NULL && strcmp(was, is) == 0)) {
			continue;
		}
		if ((was != NULL &&
		     (rv = inviter_move(conn, nparts, was, -1, now)) != 0) ||
		    (is != NULL &&
		     (rv = inviter_move(conn, nparts, is, 1, now)) != 0)) {
			return (rv);
		}
	}
	return (POND_OK);
}

/* --- events
 * ------------------------------------------------------------------- */

const char *
tagging_lifecycle(const tagging_profile *p)
{
	if (p->member) {
		return ("member");
	}
	switch (p->orders) {
	case 0:
		return ("potential");
	case 1:
		return ("first_purchase");
	case 2:
		return ("repurchase");
	default:
		return (p->orders < 0 ? "potential" : "loyal");
	}
}

static char *
opt_str(pond_arena *arena, const char *s)
{
	return (s != NULL && *s != '\0' ? pond_arena_strdup(arena, s) : NULL);
}

/* acquisition_wins reports whether a contact_added at (t, id, publisher)
 * comes before p's acquisition: API.md section 6 ties. */
static bool
acquisition_wins(const tagging_profile *p, pond_time t, const char *id,
                 const char *publisher)
{
	int c;

	if (p->acq_event_id == NULL || t < p->acquired_at) {
		return (true);
	}
	if (t > p->acquired_at) {
		return (false);
	}
	if ((c = strcmp(id, p->acq_event_id)) != 0) {
		return (c < 0);
	}
	return (publisher != NULL && p->acq_publisher != NULL &&
	        strcmp(publisher, p->acq_publisher) < 0);
}

static void
apply_contact_added(tagging_profile *p, pond_arena *arena,
                    const Pond__Event *ev, pond_time t, const char *publisher)
{
	const Pond__ContactAdded *a = ev->contact_added;

	if (t >= p->contact_changed_at) {
		p->contact_removed = false;
		p->contact_changed_at = t;
	}
	if (!acquisition_wins(p, t, ev->event_id, publisher)) {
		return;
	}
	p->acquired_at = t;
	p->acq_event_id = pond_arena_strdup(arena, ev->event_id);
	p->acq_publisher = opt_str(arena, publisher);
	p->channel = opt_str(arena, a->channel);
	p->guide_id = opt_str(arena, a->guide_id);
	p->store_id = opt_str(arena, a->store_id);
	p->inviter_key = opt_str(arena, a->inviter_key);
	p->campaign_id = opt_str(arena, a->campaign_id);
}

static void
apply_consent(tagging_profile *p, const char *channel, bool out, pond_time t)
{
	json_t *cur;

	if (p->consent == NULL && (p->consent = json_object()) == NULL) {
		return;
	}
	cur = json_object_get(p->consent, channel);
	if (cur != NULL &&
	    json_integer_value(json_object_get(cur, "at")) > (json_int_t)t) {
		return; /* a later decision already stands */
	}
	json_object_set_new(
	        p->consent, channel,
	        json_pack("{s:b, s:I}", "out", out, "at", (json_int_t)t));
}

static void
apply_profile_updated(tagging_profile *p, pond_arena *arena,
                      const Pond__ProfileUpdated *u)
{
	if (u->has_region_case == POND__PROFILE_UPDATED__HAS_REGION_REGION) {
		p->region = opt_str(arena, u->region);
	}
	if (u->has_industry_case ==
	    POND__PROFILE_UPDATED__HAS_INDUSTRY_INDUSTRY) {
		p->industry = opt_str(arena, u->industry);
	}
	if (u->has_birthday_case ==
	    POND__PROFILE_UPDATED__HAS_BIRTHDAY_BIRTHDAY) {
		p->birthday = opt_str(arena, u->birthday);
	}
	if (u->n_attributes > 0 && p->attributes == NULL) {
		p->attributes = json_object();
	}
	for (size_t i = 0; p->attributes != NULL && i < u->n_attributes; i++) {
		json_object_set_new(p->attributes, u->attributes[i]->key,
		                    json_string(u->attributes[i]->value));
	}
}

void
tagging_profile_apply(tagging_profile *p, pond_arena *arena,
                      const Pond__Event *ev, const char *publisher,
                      const tagging_cycles *cycles)
{
	pond_time t = ev->occurred_at != NULL
	                      ? pond_time_from_parts(ev->occurred_at->seconds,
	                                             ev->occurred_at->nanos)
	                      : 0;

	if (p->first_event_at == 0 || t < p->first_event_at) {
		p->first_event_at = t;
	}
	if (t > p->last_event_at) {
		p->last_event_at = t;
	}
	switch (ev->body_case) {
	case POND__EVENT__BODY_CONTACT_ADDED:
		apply_contact_added(p, arena, ev, t, publisher);
		break;
	case POND__EVENT__BODY_CONTACT_REMOVED:
		if (t >= p->contact_changed_at) {
			p->contact_removed = true;
			p->contact_changed_at = t;
		}
		break;
	case POND__EVENT__BODY_ORDER_PAID:
		p->orders++;
		p->net_revenue_fen += ev->order_paid->amount_fen;
		if (t >= p->last_order_at) {
			p->last_order_at = t;
			p->last_order_cycle_days =
			        order_cycle(ev->order_paid, cycles);
		}
		break;
	case POND__EVENT__BODY_ORDER_REFUNDED:
		p->net_revenue_fen -= ev->order_refunded->amount_fen;
		break;
	case POND__EVENT__BODY_REWARD_PAID:
		p->rewards_fen += ev->reward_paid->amount_fen;
		break;
	case POND__EVENT__BODY_MEMBER_JOINED:
		p->member = true;
		p->member_tier = opt_str(arena, ev->member_joined->tier);
		break;
	case POND__EVENT__BODY_INTERACTION:
		if (t > p->last_interaction_at) {
			p->last_interaction_at = t;
		}
		break;
	case POND__EVENT__BODY_PROFILE_UPDATED:
		apply_profile_updated(p, arena, ev->profile_updated);
		break;
	case POND__EVENT__BODY_OPT_OUT:
		apply_consent(p, ev->opt_out->channel, true, t);
		break;
	case POND__EVENT__BODY_OPT_IN:
		apply_consent(p, ev->opt_in->channel, false, t);
		break;
	default:
		/* invite_shared, touch_receipt: no profile fact (the
		 * scheduler and reporting read them from the stream). */
		break;
	}
	p->lifecycle = (char *)tagging_lifecycle(p);
}
