/*
 * demo_gen.c - the simulated brand behind `pond demo`: its customers and
 * what they do, as events in their proto3 JSON form (API.md section 1).
 *
 * The brand sells tea, skincare, snacks and household goods through its
 * mini-program mall and six stores. Customers arrive through the
 * acquisition channels of DESIGN.md, each with its cost per day
 * (channel_spend, from the contacts it brought that day); they get red
 * packets, fill in profiles, buy on the repurchase cycle of their
 * favourite category, refund some orders, join the membership, chat, share
 * invites that bring friends (referral fission), opt out or remove the
 * contact now and then.
 *
 * Everything comes from one pseudo-random sequence (splitmix64, rand.h)
 * seeded with --seed, and
 * every time is an offset inside the window [start, end), so the same seed
 * and window give the same events, ids included. Ids carry the seed
 * ("s7-c00012-03"), so two seeds never collide.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "rand.h"

#define MINUTE (60 * POND_USEC_PER_SEC)
#define HOUR   POND_USEC_PER_HOUR
#define DAY    POND_USEC_PER_DAY

/* The business day runs 09:00-22:00 in Asia/Shanghai (UTC+8, no DST). */
#define DEMO_TZ_OFFSET (8 * HOUR)

typedef struct demo_channel {
	const char *name;
	int weight;         /* share of new contacts */
	const char *item;   /* what channel_spend buys */
	int64_t unit_fen;   /* price of one item */
	int units_x10;      /* items per new contact, in tenths */
	int red_packet_pct; /* how many new contacts get a red packet */
} demo_channel;

/* Package insert cards: 20 cards at 0.05 yuan bring one contact (1 yuan),
 * each card carrying a 2-10 yuan red packet. The paid channels cost more
 * per contact (SMS 5 yuan, AI calls 9, posters 8, articles 30, Douyin 30,
 * Kuaishou 24, phone calls 37.50 of labour), so CAC and payback differ by
 * channel as they do for a real brand. Referrals cost no spend: the gift
 * to the inviter is their incentive. */
static const demo_channel demo_channels[] = {
        {"package_card", 28, "cards", 5, 200, 100},
        {"phone_call", 6, "labour", 2500, 15, 20},
        {"sms", 10, "sms", 5, 1000, 20},
        {"ai_call", 10, "calls", 30, 300, 20},
        {"article", 7, "articles", 1500, 20, 10},
        {"douyin", 12, "ads_cpm", 1000, 30, 30},
        {"kuaishou", 6, "ads_cpm", 800, 30, 30},
        {"store_poster", 9, "posters", 800, 10, 30},
        {"referral", 12, NULL, 0, 0, 0},
};
#define NCHANNELS ((int)(sizeof(demo_channels) / sizeof(demo_channels[0])))
#define REFERRAL  (NCHANNELS - 1)

typedef struct demo_sku {
	const char *sku;
	int64_t price_fen;
} demo_sku;

typedef struct demo_category {
	const char *name;
	int cycle_days; /* repurchase cycle (POND_REPURCHASE_CYCLES) */
	demo_sku skus[3];
} demo_category;

static const demo_category demo_categories[] = {
        {"tea",
         20,
         {{"tea-longjing", 12800}, {"tea-puer", 8800}, {"tea-jasmine", 4600}}},
        {"skincare",
         30,
         {{"skin-serum", 25900}, {"skin-cream", 19900}, {"skin-mask", 6900}}},
        {"snacks",
         15,
         {{"snack-nuts", 4990}, {"snack-dates", 3990}, {"snack-jerky", 5590}}},
        {"household",
         45,
         {{"home-detergent", 5990},
          {"home-tissue", 3290},
          {"home-kettle", 29900}}},
};
#define NCATEGORIES                                                           \
	((int)(sizeof(demo_categories) / sizeof(demo_categories[0])))

static const char *const demo_regions[] = {"Shanghai",  "Hangzhou", "Nanjing",
                                           "Suzhou",    "Beijing",  "Chengdu",
                                           "Guangzhou", "Shenzhen"};
static const char *const demo_industries[] = {
        "education",     "finance", "healthcare", "internet",
        "manufacturing", "retail",  "government", "student"};
static const char *const demo_age_bands[] = {"18-24", "25-34", "35-44",
                                             "45-54", "55+"};
static const char *const demo_stores[] = {"s-jingan",  "s-xuhui",
                                          "s-pudong",  "s-hangzhou",
                                          "s-nanjing", "s-suzhou"};
static const char *const demo_interactions[] = {
        "message",      "group_chat", "moments_like",
        "article_read", "live_view",  "mini_program_visit"};
static const char *const demo_tiers[] = {"silver", "gold"};

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))
#define DEMO_GUIDES 12 /* g-01..g-12, two per store */

/* demo_customer is what later customers need to know of an earlier one. */
typedef struct demo_customer {
	pond_time added;
	int invitees;
} demo_customer;

typedef struct demo_gen {
	const demo_opts *opts;
	uint64_t rng;
	demo_event *events;
	size_t n, cap;
	demo_customer *customers;
	int *sharers; /* customers who share invites, in acquisition order */
	int nsharers;
	int *adds; /* new contacts per day and channel: day * NCHANNELS + c */
	bool oom;
} demo_gen;

/* --- randomness -------------------------------------------------------- */

/* demo_below returns a number in [0, n). */
static int64_t
demo_below(demo_gen *g, int64_t n)
{
	return (pond_rand_below(&g->rng, n));
}

/* demo_range returns a number in [lo, hi]. */
static int64_t
demo_range(demo_gen *g, int64_t lo, int64_t hi)
{
	return (lo + demo_below(g, hi - lo + 1));
}

static bool
demo_chance(demo_gen *g, int pct)
{
	return (demo_below(g, 100) < pct);
}

#define PICK(g, a) ((a)[demo_below((g), (int64_t)NELEM(a))])

/* --- events ------------------------------------------------------------ */

/* demo_add appends an event at time at with its body (owned by the event)
 * when at is inside the window; otherwise it drops the body. key may be
 * NULL (channel_spend). Returns the event or NULL. */
static json_t *
demo_add(demo_gen *g, pond_time at, const char *event_id, const char *key,
         const char *type, json_t *body)
{
	char when[32];
	json_t *ev;

	if (body == NULL || at < g->opts->start || at >= g->opts->end) {
		json_decref(body);
		g->oom |= body == NULL;
		return (NULL);
	}
	if (g->n == g->cap) {
		size_t cap = g->cap == 0 ? 1024 : g->cap * 2;
		demo_event *p = realloc(g->events, cap * sizeof(*p));
		if (p == NULL) {
			json_decref(body);
			g->oom = true;
			return (NULL);
		}
		g->events = p;
		g->cap = cap;
	}
	at -= at % POND_USEC_PER_SEC; /* whole seconds read better */
	pond_time_format_rfc3339(at, when, sizeof(when));
	ev = json_pack("{s:s, s:s, s:o}", "event_id", event_id, "occurred_at",
	               when, type, body);
	if (ev == NULL) {
		g->oom = true;
		return (NULL);
	}
	if (key != NULL) {
		json_object_set_new(ev, "customer_key", json_string(key));
	}
	g->events[g->n].at = at;
	g->events[g->n].json = ev;
	g->n++;
	return (ev);
}

/* demo_cust holds the names of the customer being generated. */
typedef struct demo_cust {
	int index;
	char key[32];
	char phone[24];
	int next_id; /* counter of its events */
	bool linked; /* its phone alias is linked (by contact_added) */
	char id[48]; /* the last event id made */
} demo_cust;

/* demo_id makes the next event id of c (in c->id). */
static const char *
demo_id(demo_cust *c)
{
	snprintf(c->id, sizeof(c->id), "%s-%03d", c->key, c->next_id++);
	return (c->id);
}

static void
demo_alias(json_t *ev, const demo_cust *c)
{
	if (ev != NULL) {
		json_object_set_new(ev, "aliases",
		                    json_pack("[{s:s, s:s}]", "kind", "phone",
		                              "value", c->phone));
	}
}

/* --- one customer ------------------------------------------------------ */

/* demo_order makes order k of c at t, in category cat, and perhaps its
 * refund; returns the order's amount. */
static int64_t
demo_order(demo_gen *g, demo_cust *c, int k, pond_time t, int cat,
           const char *guide, const char *store)
{
	const demo_category *dc = &demo_categories[cat];
	char order_id[48];
	json_t *items = json_array(), *body;
	int64_t amount = 0, first_line = 0;
	int nitems = (int)demo_range(g, 1, 2);

	for (int i = 0; i < nitems; i++) {
		/* The second and third lines may come from another category.
		 */
		const demo_category *ic =
		        i > 0 && demo_chance(g, 30)
		                ? &demo_categories[demo_below(g, NCATEGORIES)]
		                : dc;
		const demo_sku *s = &ic->skus[demo_below(g, 3)];
		int64_t qty = demo_range(g, 1, 2);
		json_array_append_new(
		        items,
		        json_pack("{s:s, s:s, s:I, s:I}", "sku", s->sku,
		                  "category", ic->name, "qty", (json_int_t)qty,
		                  "price_fen", (json_int_t)s->price_fen));
		amount += qty * s->price_fen;
		if (i == 0) {
			first_line = s->price_fen;
		}
	}
	snprintf(order_id, sizeof(order_id), "%s-o%d", c->key, k);
	body = json_pack("{s:s, s:I, s:o}", "order_id", order_id, "amount_fen",
	                 (json_int_t)amount, "items", items);
	if (body != NULL && guide != NULL && demo_chance(g, 60)) {
		json_object_set_new(body, "guide_id", json_string(guide));
		json_object_set_new(body, "store_id", json_string(store));
	}
	if (body != NULL && demo_chance(g, 15)) {
		json_object_set_new(body, "coupon_id",
		                    json_string("cp-new10"));
	}
	json_t *ev = demo_add(g, t, demo_id(c), c->key, "order_paid", body);
	if (ev != NULL && demo_chance(g, 20)) {
		demo_alias(ev, c);
	}
	if (ev == NULL) {
		return (0);
	}
	/* 3 in 100 orders are refunded in full, 6 in part (one item). */
	int64_t r = demo_below(g, 100);
	if (r < 9) {
		int64_t refund = r < 3 ? amount : first_line;
		demo_add(g,
		         t + demo_range(g, 1, 5) * DAY + demo_below(g, HOUR),
		         demo_id(c), c->key, "order_refunded",
		         json_pack("{s:s, s:I}", "order_id", order_id,
		                   "amount_fen", (json_int_t)refund));
	}
	return (amount);
}

/* demo_reward pays a reward to key at t. */
static void
demo_reward(demo_gen *g, demo_cust *c, const char *key, pond_time t,
            const char *kind, int64_t fen, const char *campaign)
{
	json_t *body = json_pack("{s:s, s:I}", "kind", kind, "amount_fen",
	                         (json_int_t)fen);

	if (body != NULL && campaign != NULL) {
		json_object_set_new(body, "campaign_id",
		                    json_string(campaign));
	}
	demo_add(g, t, demo_id(c), key, "reward_paid", body);
}

/* demo_added makes the acquisition of c at t0 through channel ch; a
 * referral names its inviter, who shared an invite shortly before. */
static void
demo_added(demo_gen *g, demo_cust *c, pond_time t0, int ch, int guide)
{
	json_t *body = json_pack("{s:s}", "channel", demo_channels[ch].name);
	char gid[16];

	if (body != NULL && guide > 0) {
		snprintf(gid, sizeof(gid), "g-%02d", guide);
		json_object_set_new(body, "guide_id", json_string(gid));
		json_object_set_new(body, "store_id",
		                    json_string(demo_stores[(guide - 1) / 2]));
	}
	if (body != NULL && ch == REFERRAL) {
		/* Early sharers bring more friends: the index is the least
		 * of two draws. */
		int a = (int)demo_below(g, g->nsharers);
		int b = (int)demo_below(g, g->nsharers);
		int inviter = g->sharers[a < b ? a : b];
		demo_customer *iv = &g->customers[inviter];
		char ikey[32];
		pond_time shared = t0 - demo_range(g, 10 * MINUTE, 2 * DAY);

		snprintf(ikey, sizeof(ikey), "s%llu-c%05d",
		         (unsigned long long)g->opts->seed, inviter);
		if (shared <= iv->added) {
			shared = iv->added + (t0 - iv->added) / 2;
		}
		json_object_set_new(body, "inviter_key", json_string(ikey));
		json_object_set_new(body, "campaign_id",
		                    json_string("invite-3"));
		demo_add(g, shared, demo_id(c), ikey, "invite_shared",
		         json_pack("{s:s}", "campaign_id", "invite-3"));
		/* The third friend earns the inviter the gift. */
		if (++iv->invitees == 3) {
			demo_reward(g, c, ikey, t0 + HOUR, "gift", 2000,
			            "invite-3");
		}
	} else if (body != NULL && demo_chance(g, 20)) {
		json_object_set_new(body, "campaign_id",
		                    json_string("welcome-red-packet"));
	}
	json_t *ev =
	        demo_add(g, t0, demo_id(c), c->key, "contact_added", body);
	if (ev == NULL) {
		return;
	}
	if (demo_chance(g, 60)) {
		demo_alias(ev, c);
		c->linked = true;
	}
	g->adds[((t0 - g->opts->start) / DAY) * NCHANNELS + ch]++;
}

/* demo_profile fills in c's profile a little after it was added. */
static void
demo_profile(demo_gen *g, demo_cust *c, pond_time t0, int cat)
{
	json_t *attrs =
	        json_pack("{s:s, s:s}", "age_band", PICK(g, demo_age_bands),
	                  "interest", demo_categories[cat].name);
	json_t *body = json_pack(
	        "{s:s, s:s, s:o}", "region", PICK(g, demo_regions), "industry",
	        PICK(g, demo_industries), "attributes", attrs);

	demo_add(g, t0 + demo_range(g, 5 * MINUTE, 3 * HOUR), demo_id(c),
	         c->key, "profile_updated", body);
}

/* demo_buyer makes the orders of a buyer: the first within six weeks, the
 * next ones about a repurchase cycle apart, while the customer stays. */
static pond_time
demo_buyer(demo_gen *g, demo_cust *c, pond_time t0, int cat, int guide)
{
	char gid[16];
	const char *gp = NULL, *store = NULL;
	/* A third buy within three days; the others take up to six weeks. */
	pond_time t =
	        t0 + (demo_chance(g, 35) ? demo_range(g, 30 * MINUTE, 3 * DAY)
	                                 : demo_range(g, 3 * DAY, 45 * DAY));
	int cycle = demo_categories[cat].cycle_days;
	int stay = (int)demo_range(g, 45, 85); /* % chance of one more */
	pond_time last = t0;

	if (guide > 0) {
		snprintf(gid, sizeof(gid), "g-%02d", guide);
		gp = gid;
		store = demo_stores[(guide - 1) / 2];
	}
	for (int k = 1; t < g->opts->end; k++) {
		if (demo_order(g, c, k, t, cat, gp, store) == 0) {
			break;
		}
		last = t;
		if (k == 2 && demo_chance(g, 45)) {
			demo_add(g, t + demo_range(g, HOUR, 2 * DAY),
			         demo_id(c), c->key, "member_joined",
			         json_pack("{s:s}", "tier",
			                   PICK(g, demo_tiers)));
		}
		if (k == 1 && demo_chance(g, 25)) {
			/* A happy buyer shares the invite poster. */
			g->sharers[g->nsharers++] = c->index;
			demo_add(
			        g, t + demo_range(g, HOUR, DAY), demo_id(c),
			        c->key, "invite_shared",
			        json_pack("{s:s}", "campaign_id", "invite-3"));
		}
		if (!demo_chance(g, stay)) {
			break;
		}
		t += cycle * DAY * demo_range(g, 70, 150) / 100 +
		     demo_below(g, DAY);
	}
	return (last);
}

/* demo_acquire_time draws a moment of the business day on day d. */
static pond_time
demo_acquire_time(demo_gen *g, int d)
{
	pond_time midnight = g->opts->start + d * DAY;

	return (midnight + 9 * HOUR + demo_below(g, 13 * HOUR));
}

/* demo_channel_of draws the acquisition channel (referral only once
 * someone shares). */
static int
demo_channel_of(demo_gen *g)
{
	int total = 0, r;

	for (int i = 0; i < NCHANNELS; i++) {
		total += demo_channels[i].weight;
	}
	r = (int)demo_below(g, total);
	for (int i = 0; i < NCHANNELS; i++) {
		if ((r -= demo_channels[i].weight) < 0) {
			return (i == REFERRAL && g->nsharers == 0 ? 0 : i);
		}
	}
	return (0);
}

static void
demo_customer_make(demo_gen *g, int i, pond_time t0)
{
	demo_cust c = {.index = i};
	int ch = demo_channel_of(g);
	int cat = (int)demo_below(g, NCATEGORIES);
	bool hunter = demo_chance(g, 15); /* came for the red packet only */
	bool store_led = ch == 7 || ch == 1 || demo_chance(g, 40);
	int guide = store_led ? (int)demo_range(g, 1, DEMO_GUIDES) : 0;
	pond_time last;

	snprintf(c.key, sizeof(c.key), "s%llu-c%05d",
	         (unsigned long long)g->opts->seed, i);
	snprintf(c.phone, sizeof(c.phone), "13%03llu%06d",
	         (unsigned long long)(g->opts->seed % 1000), i);
	g->customers[i].added = t0;
	demo_added(g, &c, t0, ch, guide);
	if (demo_chance(g, demo_channels[ch].red_packet_pct) || hunter) {
		demo_reward(g, &c, c.key, t0 + demo_range(g, MINUTE, HOUR),
		            "red_packet", demo_range(g, 2, 10) * 100,
		            ch == 0 ? NULL : "welcome-red-packet");
	}
	if (demo_chance(g, 70)) {
		demo_profile(g, &c, t0, cat);
	}
	last = t0;
	if (!hunter && demo_chance(g, 65)) {
		last = demo_buyer(g, &c, t0, cat, guide);
	}
	for (int k = (int)demo_below(g, 7); k > 0; k--) {
		const char *kind = PICK(g, demo_interactions);
		pond_time t = t0 + demo_below(g, g->opts->end - t0);
		json_t *ev = demo_add(
		        g, t, demo_id(&c), c.key, "interaction",
		        json_pack("{s:s, s:I}", "kind", kind, "seconds",
		                  (json_int_t)demo_range(g, 5, 900)));
		if (ev != NULL && c.linked && demo_chance(g, 10)) {
			/* Known only by phone: ingest resolves the alias. */
			json_object_del(ev, "customer_key");
			demo_alias(ev, &c);
		}
	}
	if (demo_chance(g, 3)) {
		demo_add(g, last + demo_range(g, HOUR, 5 * DAY), demo_id(&c),
		         c.key, "opt_out",
		         json_pack("{s:s}", "channel",
		                   demo_chance(g, 50) ? "sms" : "all"));
	}
	if (demo_chance(g, hunter ? 40 : 3)) {
		demo_add(g, last + demo_range(g, DAY, 20 * DAY), demo_id(&c),
		         c.key, "contact_removed",
		         json_pack("{s:s}", "by",
		                   demo_chance(g, 80) ? "customer" : "staff"));
	}
}

/* --- spend ------------------------------------------------------------- */

/* demo_spend makes each channel's channel_spend of each day from the
 * contacts it brought: the items they took, give or take a fifth. */
static void
demo_spend(demo_gen *g, int days)
{
	char id[64];

	for (int d = 0; d < days; d++) {
		for (int ch = 0; ch < NCHANNELS; ch++) {
			const demo_channel *dc = &demo_channels[ch];
			int adds = g->adds[d * NCHANNELS + ch];
			int64_t qty;
			if (dc->item == NULL || adds == 0) {
				continue;
			}
			qty = (int64_t)adds * dc->units_x10 *
			      demo_range(g, 80, 120) / 1000;
			qty = qty < 1 ? 1 : qty;
			snprintf(id, sizeof(id), "s%llu-spend-%03d-%s",
			         (unsigned long long)g->opts->seed, d,
			         dc->name);
			demo_add(g, g->opts->start + d * DAY + 8 * HOUR, id,
			         NULL, "channel_spend",
			         json_pack("{s:s, s:I, s:s, s:I}", "channel",
			                   dc->name, "amount_fen",
			                   (json_int_t)(qty * dc->unit_fen),
			                   "item", dc->item, "quantity",
			                   (json_int_t)qty));
		}
	}
}

/* --- the whole brand --------------------------------------------------- */

static int
demo_time_cmp(const void *a, const void *b)
{
	pond_time x = *(const pond_time *)a, y = *(const pond_time *)b;

	return ((x > y) - (x < y));
}

static int
demo_event_cmp(const void *a, const void *b)
{
	const demo_event *x = a, *y = b;

	if (x->at != y->at) {
		return ((x->at > y->at) - (x->at < y->at));
	}
	return (strcmp(
	        json_string_value(json_object_get(x->json, "event_id")),
	        json_string_value(json_object_get(y->json, "event_id"))));
}

pond_time
demo_day_start(pond_time t)
{
	pond_time local = t + DEMO_TZ_OFFSET;
	pond_time day = local / DAY - (local % DAY < 0);

	return (day * DAY - DEMO_TZ_OFFSET);
}

void
demo_events_free(demo_event *events, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		json_decref(events[i].json);
	}
	free(events);
}

int
demo_generate(const demo_opts *opts, demo_event **out, size_t *nout)
{
	int days = (int)((opts->end - opts->start + DAY - 1) / DAY);
	demo_gen g = {.opts = opts, .rng = opts->seed};
	pond_time *added = calloc((size_t)opts->customers + 1, sizeof(*added));

	g.customers =
	        calloc((size_t)opts->customers + 1, sizeof(*g.customers));
	g.sharers = calloc((size_t)opts->customers + 1, sizeof(*g.sharers));
	g.adds = calloc((size_t)days * NCHANNELS + 1, sizeof(*g.adds));
	if (added == NULL || g.customers == NULL || g.sharers == NULL ||
	    g.adds == NULL) {
		g.oom = true;
		goto done;
	}
	/* Acquisitions first, in time order, so that a referral always has
	 * an earlier customer to name as its inviter. */
	for (int i = 0; i < opts->customers; i++) {
		added[i] = demo_acquire_time(&g, (int)demo_below(&g, days));
	}
	qsort(added, (size_t)opts->customers, sizeof(*added), demo_time_cmp);
	for (int i = 0; i < opts->customers && !g.oom; i++) {
		demo_customer_make(&g, i, added[i]);
	}
	demo_spend(&g, days);
	qsort(g.events, g.n, sizeof(*g.events), demo_event_cmp);
	while (g.n > 0 && g.events[g.n - 1].at >= opts->cutoff) {
		json_decref(g.events[--g.n].json);
	}
done:
	free(added);
	free(g.customers);
	free(g.sharers);
	free(g.adds);
	if (g.oom) {
		demo_events_free(g.events, g.n);
		return (POND_ENOMEM);
	}
	*out = g.events;
	*nout = g.n;
	return (0);
}
