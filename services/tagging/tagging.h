/*
 * tagging.h - the tagging service's own structs.
 *
 * pond-tagging keeps one profile per customer from the events stream, the
 * lifecycle stage of API.md section 4, the built-in tags (lifecycle:*,
 * repurchase_due) and the operators' rule tags (conditions of API.md
 * section 5), and writes every tag that goes on or off to the tag_changes
 * stream in the transaction that changed it.
 *
 *   (the condition language is common/cond.c, shared with the scheduler)
 *   profile.c  a profile in memory: load, apply an event, store
 *   evaluate.c which tags a profile should have; the tag changes written
 *   sweep.c    re-evaluation by time (due_at) and after rule changes
 *   rules.c    the tag rule HTTP API
 *   tagging.c  the service: consumer, sweeper, PUB, metrics
 */
#ifndef POND_TAGGING_H
#define POND_TAGGING_H

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "bus.h"
#include "clock.h"
#include "cond.h"
#include "err.h"
#include "metrics.h"
#include "pond/event.pb-c.h"
#include <uv.h>

/* --- profiles (profile.c) ---------------------------------------------- */

/* tagging_profile is one customer's row of customer_profiles in memory,
 * with its current tags. Strings live in the batch's arena; attributes
 * and consent are owned JSON objects (tagging_profile_clear). */
typedef struct tagging_profile {
	uint32_t partition;
	char *key;
	bool stored; /* the row existed when loaded */
	pond_time acquired_at;
	char *acq_event_id;
	char *acq_publisher;
	char *channel;
	char *guide_id;
	char *store_id;
	char *inviter_key;
	char *campaign_id;
	char *region;
	char *industry;
	char *birthday;
	json_t *attributes;
	int64_t orders;
	int64_t net_revenue_fen;
	int64_t rewards_fen;
	int64_t invitees;
	pond_time last_order_at;
	int64_t last_order_cycle_days; /* 0: no order */
	pond_time last_interaction_at;
	bool member;
	char *member_tier;
	json_t *consent;
	bool contact_removed;
	pond_time contact_changed_at;
	char *lifecycle;
	pond_time first_event_at;
	pond_time last_event_at;
	pond_time due_at; /* 0: none */
	int64_t rules_version;
	/* Not stored in the row. */
	char *loaded_inviter; /* inviter_key as loaded, for invitee counts */
	char **tags;          /* current tags, sorted */
	size_t ntags;
	char **loaded_tags; /* as loaded, sorted */
	size_t nloaded_tags;
} tagging_profile;

/* tagging_cycle maps an order category to its repurchase cycle in days
 * (POND_REPURCHASE_CYCLES, "default:30,coffee:14"). */
typedef struct tagging_cycle {
	char category[64];
	int64_t days;
} tagging_cycle;

typedef struct tagging_cycles {
	tagging_cycle *cycles;
	size_t n;
	int64_t default_days;
} tagging_cycles;

/* tagging_cycles_parse reads spec; POND_EINVAL with why on a bad one. The
 * caller frees out->cycles. */
int tagging_cycles_parse(const char *spec, tagging_cycles *out,
                         const char **why) POND_MUSTCHECK;

/* tagging_profiles_load reads the profiles of the n (partition, key) pairs
 * (locking the rows FOR UPDATE) with their tags; keys without a row get
 * an empty profile. *out is an array of n in the order given, its strings
 * in arena. */
int tagging_profiles_load(PGconn *conn, pond_arena *arena,
                          const uint32_t *parts, char *const *keys, size_t n,
                          tagging_profile **out) POND_MUSTCHECK;

/* tagging_profiles_due locks up to limit profiles due at now or evaluated
 * with rules older than version, skipping rows locked by others, and
 * loads them with their tags. */
int tagging_profiles_due(PGconn *conn, pond_arena *arena, pond_time now,
                         int64_t version, int limit, tagging_profile **out,
                         size_t *n) POND_MUSTCHECK;

/* tagging_profiles_store writes the n profiles and their tag changes, and
 * moves invitee counts to the inviters whose invitee's acquisition moved.
 */
int tagging_profiles_store(PGconn *conn, tagging_profile *profs, size_t n,
                           uint32_t nparts, pond_time now) POND_MUSTCHECK;

/* tagging_profiles_clear drops the JSON the n profiles hold. */
void tagging_profiles_clear(tagging_profile *profs, size_t n);

/* tagging_profile_apply applies one event to p; publisher is the event's
 * publisher name (only needed for contact_added ties, may be NULL). */
void tagging_profile_apply(tagging_profile *p, pond_arena *arena,
                           const Pond__Event *ev, const char *publisher,
                           const tagging_cycles *cycles);

/* tagging_lifecycle returns the stage of API.md section 4 for p. */
const char *tagging_lifecycle(const tagging_profile *p);

/* --- evaluation (evaluate.c) ------------------------------------------- */

/* tagging_rule is one operator rule, parsed. */
typedef struct tagging_rule {
	char *tag;
	pond_cond *cond;
} tagging_rule;

/* tagging_rules is the rule set as of one version. */
typedef struct tagging_rules {
	tagging_rule *rules;
	size_t n;
	int64_t version;
	bool uses_time;
} tagging_rules;

/* tagging_rules_load reads every rule and the rules version. */
int tagging_rules_load(PGconn *conn, tagging_rules *out) POND_MUSTCHECK;

/* tagging_rules_free frees what tagging_rules_load made. */
void tagging_rules_free(tagging_rules *r);

/* tagging_change is one tag put on or taken off, waiting to be written. */
typedef struct tagging_change {
	uint32_t partition;
	const char *customer_key;
	const char *tag;
	bool added;
	const char *cause; /* "event", "time", "rule" */
	int64_t cause_seq; /* 0 unless cause is "event" */
	const char *event_id;
	int64_t seq; /* in tag_changes, once written */
	uint8_t *payload;
	size_t len;
} tagging_change;

/* tagging_changes is a growing list of changes in one transaction. */
typedef struct tagging_changes {
	tagging_change *v;
	size_t n, cap;
} tagging_changes;

/* tagging_evaluate works out the tags p should have at now, updates
 * p->tags, p->lifecycle, p->due_at and p->rules_version, and appends a
 * change per tag that went on or off (removals first, each part sorted by
 * tag). evals counts rule evaluations. */
int tagging_evaluate(tagging_profile *p, pond_arena *arena,
                     const tagging_rules *rules, const tagging_cycles *cycles,
                     pond_time now, const char *cause, int64_t cause_seq,
                     const char *event_id, tagging_changes *out,
                     uint64_t *evals) POND_MUSTCHECK;

/* tagging_changes_write reserves seqs on the tag_changes stream and
 * writes the changes (inside the caller's transaction), packing each
 * payload into arena. */
int tagging_changes_write(PGconn *conn, pond_arena *arena, uint32_t nparts,
                          tagging_changes *ch, pond_time now) POND_MUSTCHECK;

/* tagging_changes_free frees the list (not the arena's payloads). */
void tagging_changes_free(tagging_changes *ch);

/* --- the service (tagging.c, sweep.c, rules.c) ------------------------- */

typedef struct tagging_config {
	char *sub_urls;     /* POND_EVENTS_SUB_URLS */
	char *pub_url;      /* POND_TAG_CHANGES_PUB_URL */
	char *cycles;       /* POND_REPURCHASE_CYCLES */
	int64_t batch;      /* POND_TAGGING_BATCH */
	int64_t sweep_ms;   /* POND_TAGGING_SWEEP_MS */
	int64_t sweep_rows; /* POND_TAGGING_SWEEP_ROWS */
	int64_t max_lag;    /* POND_TAGGING_MAX_LAG */
} tagging_config;

typedef struct tagging_counters {
	pond_counter events;      /* events applied */
	pond_counter rule_evals;  /* rule conditions evaluated */
	pond_counter changes[3];  /* by cause: event, time, rule */
	pond_counter swept;       /* profiles re-evaluated by the sweeper */
	pond_counter rule_writes; /* rules put or removed */
	pond_counter bad_events;  /* records that did not decode */
} tagging_counters;

/* tagging_staged is a committed-to-be change waiting for its announcement:
 * the consumer's apply stages them, the committed hook sends them. */
typedef struct tagging_staged {
	int64_t seq;
	uint8_t *payload;
	size_t len;
} tagging_staged;

typedef struct tagging_part_stage {
	tagging_staged *v;
	size_t n;
} tagging_part_stage;

typedef struct tagging {
	struct pond_service *svc;
	tagging_config conf;
	tagging_cycles cycles;
	struct pond_consumer *consumer;
	pond_pub *pub;
	uint32_t nparts;
	uv_timer_t sweep_timer;
	bool sweep_busy;
	bool sweep_again;
	bool stopping;
	bool consumer_stopped;
	int requests; /* rule API requests in flight */
	pthread_mutex_t stage_mu;
	tagging_part_stage *stage; /* nparts of them */
	tagging_counters counters;
} tagging;

/* tagging_start and tagging_stop are the service hooks (service.h). */
int tagging_start(struct pond_service *svc);
void tagging_stop(struct pond_service *svc);

/* tagging_healthy is the /healthz hook: unhealthy while the events
 * consumer is more than max_lag records behind. */
bool tagging_healthy(struct pond_service *svc, char *why, size_t len);

/* tagging_announce publishes committed changes on the tag_changes PUB. */
void tagging_announce(tagging *tg, const tagging_change *v, size_t n);

/* tagging_count_changes adds the changes to the per-cause counters. */
void tagging_count_changes(tagging *tg, const tagging_changes *ch);

/* tagging_sweep_kick runs the sweeper now unless it is running. */
void tagging_sweep_kick(tagging *tg);

/* tagging_sweep_start arms the sweeper's timer. */
int tagging_sweep_start(tagging *tg) POND_MUSTCHECK;

/* tagging_sweep_stop closes the timer; done runs once no sweep is in
 * flight. */
void tagging_sweep_stop(tagging *tg, void (*done)(tagging *));

/* tagging_maybe_stopped ends the service once stopping and idle. */
void tagging_maybe_stopped(tagging *tg);

/* tagging_rules_routes adds the /v1/tag-rules routes. */
int tagging_rules_routes(tagging *tg) POND_MUSTCHECK;

#endif
