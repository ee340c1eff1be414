/*
 * scheduler.h - the scheduler service's own structs.
 *
 * pond-scheduler turns campaigns (API.md section 3) into touches: it hears
 * triggers on the events and tag_changes streams and the clock, applies
 * the rules every touch obeys, commits each touch with its due time, and
 * dispatches due touches to the gateway of their channel over NNG REQ
 * until acked. Every state change of a touch is a record of the touches
 * stream (touch_changes), written in the transaction that made it.
 *
 *   campaign.c  a campaign spec: JSON -> struct, the campaigns table
 *               (shared with `pond campaigns`)
 *   rules.c     the rules config (quiet hours, frequency cap), hold-out
 *   select.c    selecting customers for campaigns, a batch at a time:
 *               the rules, the touch rows, the ledger, the quota
 *   audience.c  a campaign's audience judged on tagging's profile
 *   change.c    touch changes: the touches stream writer and announcer
 *   consume.c   the events and tag_changes consumers
 *   dispatch.c  the due queue, the gateways, acks and one-shot campaigns
 *   api.c       the campaign HTTP API
 *   scheduler.c the service: start, stop, metrics
 */
#ifndef POND_SCHEDULER_H
#define POND_SCHEDULER_H

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "arena.h"
#include "bus.h"
#include "clock.h"
#include "cond.h"
#include "err.h"
#include "metrics.h"

/* --- campaigns (campaign.c) ------------------------------------------- */

typedef enum scheduler_trigger {
	SCHEDULER_TRIGGER_EVENT,
	SCHEDULER_TRIGGER_TAG_ADDED,
	SCHEDULER_TRIGGER_TAG_REMOVED,
	SCHEDULER_TRIGGER_AT,
} scheduler_trigger;

/* scheduler_campaign is one campaign, parsed from its spec. Strings and
 * the audience are owned (scheduler_campaign_clear). */
typedef struct scheduler_campaign {
	char *id;
	char *name;
	char *channel;
	char *template;
	json_t *params; /* object string -> string, or NULL */
	scheduler_trigger trigger;
	char *trigger_value; /* event type, tag or RFC 3339 time */
	pond_time at;        /* SCHEDULER_TRIGGER_AT */
	pond_cond *audience; /* NULL: everyone */
	int64_t delay_s;
	pond_time starts_at; /* 0: open */
	pond_time ends_at;   /* 0: open */
	int64_t quota;       /* -1: none */
	int64_t holdout_pct;
	int64_t cost_per_touch_fen;
	char *reward_kind; /* NULL: no conversion reward */
	int64_t reward_fen;
	int64_t fission_needed; /* 0: not a fission campaign */
	char *fission_reward_kind;
	int64_t fission_reward_fen;
	bool paused;
} scheduler_campaign;

/* scheduler_campaign_parse reads spec (the API's JSON) into c. On a bad
 * spec it writes what is wrong into why and returns POND_EINVAL; c is then
 * cleared. */
int scheduler_campaign_parse(const json_t *spec, scheduler_campaign *c,
                             char *why, size_t len) POND_MUSTCHECK;

/* scheduler_campaign_clear frees what c owns. */
void scheduler_campaign_clear(scheduler_campaign *c);

/* scheduler_campaigns is every campaign, as loaded for one transaction. */
typedef struct scheduler_campaigns {
	scheduler_campaign *v;
	size_t n;
} scheduler_campaigns;

/* scheduler_campaigns_load reads every campaign (specs that no longer
 * parse are logged and skipped). */
int scheduler_campaigns_load(PGconn *conn,
                             scheduler_campaigns *out) POND_MUSTCHECK;

/* scheduler_campaigns_free frees what scheduler_campaigns_load made. */
void scheduler_campaigns_free(scheduler_campaigns *cs);

/* scheduler_campaign_create checks spec and stores it; *reply is the
 * campaign as GET shows it. POND_EINVAL with why for a bad spec,
 * POND_EEXIST when its id is taken. */
int scheduler_campaign_create(PGconn *conn, const json_t *spec, json_t **reply,
                              char *why, size_t len) POND_MUSTCHECK;

/* scheduler_campaign_show sets *reply to one campaign (id) or, with id
 * NULL, to {"campaigns": [...]}; POND_ENOENT for an unknown id. */
int scheduler_campaign_show(PGconn *conn, const char *id,
                            json_t **reply) POND_MUSTCHECK;

/* scheduler_campaign_pause pauses (or resumes) campaign id and sets
 * *reply to it; POND_ENOENT for an unknown id. */
int scheduler_campaign_pause(PGconn *conn, const char *id, bool paused,
                             json_t **reply) POND_MUSTCHECK;

/* --- rules (rules.c) ---------------------------------------------------- */

/* scheduler_rules is the parsed rule config. */
typedef struct scheduler_rules {
	int quiet_from_min; /* minutes after local midnight; -1: none */
	int quiet_to_min;
	int64_t cap_day;  /* marketing touches per business day */
	int64_t cap_week; /* per business week (Monday first) */
	int64_t attribution_h;
} scheduler_rules;

/* scheduler_rules_parse reads POND_QUIET_HOURS ("21:00-09:00", "" for
 * none) and POND_FREQ_CAP ("1/day,3/week"); POND_EINVAL with why. */
int scheduler_rules_parse(const char *quiet, const char *cap,
                          scheduler_rules *r, const char **why) POND_MUSTCHECK;

/* scheduler_quiet_end returns t, or the end of the quiet window t falls
 * in (business time, POND_TZ). */
pond_time scheduler_quiet_end(const scheduler_rules *r, pond_time t);

/* scheduler_holdout reports whether customer_key is in the hold-out share
 * of campaign_id: FNV-1a 64 of "campaign_id/customer_key" modulo 10,000
 * below pct x 100. A pure function: the same answer after any restart. */
bool scheduler_holdout(const char *campaign_id, const char *customer_key,
                       int64_t pct);

/* --- touch changes (change.c) ------------------------------------------- */

/* scheduler_change is one touch entering a state, as written to the
 * touches stream. Strings point into the batch's arena. */
typedef struct scheduler_change {
	uint32_t partition;
	const char *touch_id;
	const char *customer_key;
	const char *campaign_id;
	const char *channel;
	const char *state;
	const char *reason;
	pond_time at;
	pond_time selected_at;
	pond_time due_at;
	int64_t cost_fen;
	int64_t seq;      /* once written */
	uint8_t *payload; /* once written, in the arena */
	size_t len;
} scheduler_change;

/* scheduler_changes is a growing list of changes in one transaction. */
typedef struct scheduler_changes {
	scheduler_change *v;
	size_t n, cap;
} scheduler_changes;

/* scheduler_changes_add appends a copy of c (strings copied into arena). */
int scheduler_changes_add(scheduler_changes *ch, pond_arena *arena,
                          const scheduler_change *c) POND_MUSTCHECK;

/* scheduler_changes_write reserves seqs on the touches stream for every
 * change (all partitions in one reservation, ascending) and inserts the
 * touch_changes rows, inside the caller's transaction. */
int scheduler_changes_write(PGconn *conn, pond_arena *arena, uint32_t nparts,
                            scheduler_changes *ch) POND_MUSTCHECK;

/* scheduler_changes_free frees the list (not the arena's strings). */
void scheduler_changes_free(scheduler_changes *ch);

/* --- selection (select.c) ----------------------------------------------- */

/* scheduler_cause is why a campaign looks at a customer now. */
typedef struct scheduler_cause {
	uint32_t partition;
	const char *customer_key;
	const char *tag; /* "e<seq>", "t<seq>", "at", "fission" */
	pond_time selected_at;
	bool reward; /* a fission reward: not capped by frequency */
} scheduler_cause;

/* scheduler_selection is one campaign looking at one customer. */
typedef struct scheduler_selection {
	const scheduler_campaign *campaign;
	scheduler_cause cause;
} scheduler_selection;

/* scheduler_selections is the batch of selections one transaction settles
 * together, in the order their causes came. */
typedef struct scheduler_selections {
	scheduler_selection *v;
	size_t n, cap;
} scheduler_selections;

/* scheduler_selections_add appends c looking at cause's customer (the
 * cause's strings are copied into arena; c must outlive the batch). */
int scheduler_selections_add(scheduler_selections *sel, pond_arena *arena,
                             const scheduler_campaign *c,
                             const scheduler_cause *cause) POND_MUSTCHECK;

/* scheduler_selections_has reports whether a selection of the batch is
 * for customer key (whose facts must not change before it is settled). */
bool scheduler_selections_has(const scheduler_selections *sel,
                              const char *key);

/* scheduler_selections_free frees the list (not the arena's strings). */
void scheduler_selections_free(scheduler_selections *sel);

/* scheduler_select applies the rules to every selection of sel, in order
 * (a touch counts against the cap and quota of those after it), and
 * records each outcome: a touch row (scheduled, deferred, held_out or
 * suppressed with its reason) and its change, added to out. A touch that
 * exists already (a replayed cause) is left alone, and so is a selection
 * outside its campaign's audience. On success sel is emptied. */
int scheduler_select(PGconn *conn, pond_arena *arena,
                     const scheduler_rules *rules, scheduler_selections *sel,
                     scheduler_changes *out) POND_MUSTCHECK;

/* scheduler_query_arrays runs sql with ncols array parameters (column j's
 * n items as one PostgreSQL array literal, NULL items SQL NULL) followed
 * by nscalars plain ones (16 in all at most): one statement for a whole
 * batch. *resp as pond_pq_query's (may be NULL). */
int scheduler_query_arrays(PGconn *conn, PGresult **resp, const char *sql,
                           const char **const *cols, int ncols, size_t n,
                           const char *const *scalars,
                           int nscalars) POND_MUSTCHECK;

/* scheduler_audience_holds (audience.c) evaluates c's audience for the
 * customer on tagging's profile and tags (read-only); no profile is no
 * facts. */
int scheduler_audience_holds(PGconn *conn, const scheduler_campaign *c,
                             uint32_t partition, const char *key,
                             pond_time now, bool *holds) POND_MUSTCHECK;

/* scheduler_touch_move moves touch_id of (partition, key) to state to
 * (reason may be NULL) at time at, if its state allows it (receipts
 * only go forward: sent, delivered, read, clicked; failed before a
 * delivery), and records the change. *moved (may be NULL) says whether
 * it did. A second ack or receipt changes nothing. */
int scheduler_touch_move(PGconn *conn, pond_arena *arena, uint32_t partition,
                         const char *key, const char *touch_id, const char *to,
                         const char *reason, pond_time at,
                         scheduler_changes *out, bool *moved) POND_MUSTCHECK;

/* --- the service -------------------------------------------------------- */

typedef struct scheduler_config {
	char *events_sub;      /* POND_EVENTS_SUB_URLS */
	char *tags_sub;        /* POND_TAG_CHANGES_SUB_URLS */
	char *pub_url;         /* POND_TOUCHES_PUB_URL */
	char *gateways;        /* POND_GATEWAY_URLS */
	char *quiet_hours;     /* POND_QUIET_HOURS */
	char *freq_cap;        /* POND_FREQ_CAP */
	int64_t attribution_h; /* POND_ATTRIBUTION_H */
	int64_t resend_s;      /* POND_TOUCH_RESEND_S */
	int64_t tick_ms;       /* POND_SCHEDULER_TICK_MS */
	int64_t batch;         /* POND_SCHEDULER_BATCH */
	int64_t max_lag;       /* POND_SCHEDULER_MAX_LAG */
} scheduler_config;

/* The states and suppression reasons counted in /metrics. */
#define SCHEDULER_STATES                                                      \
	X(held_out)                                                           \
	X(suppressed)                                                         \
	X(scheduled)                                                          \
	X(deferred) X(sent) X(delivered) X(read) X(clicked) X(failed) X(reward)
#define SCHEDULER_REASONS                                                     \
	X(opt_out)                                                            \
	X(frequency_cap) X(quota) X(window) X(removed) X(paused) X(audience)

typedef struct scheduler_counters {
#define X(s) pond_counter state_##s;
	SCHEDULER_STATES
#undef X
#define X(r) pond_counter reason_##r;
	SCHEDULER_REASONS
#undef X
	pond_counter batches_sent;
	pond_counter acks;
	pond_counter dispatch_errors;
	pond_gauge due_depth;
} scheduler_counters;

/* scheduler_gateway is the REQ socket to one channel's gateway. */
typedef struct scheduler_gateway {
	char channel[32];
	char url[128];
	pond_req *req;
	int inflight;
} scheduler_gateway;

/* scheduler_stage holds a consumer partition's changes until its COMMIT. */
typedef struct scheduler_stage {
	scheduler_change *v;
	size_t n;
} scheduler_stage;

typedef struct scheduler {
	struct pond_service *svc;
	scheduler_config conf;
	scheduler_rules rules;
	uint32_t nparts;
	struct pond_consumer *events;
	struct pond_consumer *tags;
	pond_pub *pub;
	scheduler_gateway *gateways;
	size_t ngateways;
	uv_timer_t tick;
	bool tick_busy;
	bool stopping;
	int consumers_running;
	int jobs; /* dispatch jobs and gateway calls in flight */
	pthread_mutex_t stage_mu;
	scheduler_stage *stage[2]; /* [0] events, [1] tag_changes; nparts */
	scheduler_counters counters;
} scheduler;

/* scheduler_announce publishes committed changes and counts them. */
void scheduler_announce(scheduler *s, const scheduler_change *v, size_t n);

/* scheduler_consumers_start starts the events and tag_changes
 * consumers. */
int scheduler_consumers_start(scheduler *s) POND_MUSTCHECK;

/* scheduler_static_name returns the static copy of a state or reason
 * name (NULL for another): what staged changes keep past their arena. */
const char *scheduler_static_name(const char *name);

/* scheduler_stage_free drops whatever is still staged (at stop). */
void scheduler_stage_free(scheduler *s);

/* scheduler_dispatch_start dials the gateways and arms the tick. */
int scheduler_dispatch_start(scheduler *s) POND_MUSTCHECK;

/* scheduler_dispatch_stop stops the tick and closes the gateways. */
void scheduler_dispatch_stop(scheduler *s);

/* scheduler_api_routes adds the /v1/campaigns routes. */
int scheduler_api_routes(scheduler *s) POND_MUSTCHECK;

/* scheduler_maybe_stopped ends the service once stopping and idle. */
void scheduler_maybe_stopped(scheduler *s);

/* scheduler_start, scheduler_stop and scheduler_healthy are the service
 * hooks (service.h). */
int scheduler_start(struct pond_service *svc);
void scheduler_stop(struct pond_service *svc);
bool scheduler_healthy(struct pond_service *svc, char *why, size_t len);

#endif
