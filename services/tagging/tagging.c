/*
 * tagging.c - the tagging service: the events consumer, the PUB of
 * tag_changes, metrics, start and stop.
 *
 * The consumer's apply function runs on a store thread inside the
 * consumer's transaction: it locks the batch's profiles, applies each event
 * in seq order and evaluates the customer's tags after each one (so the
 * changes do not depend on how records were batched), writes profiles,
 * tags and tag_changes, and stages the changes. The transaction then
 * advances the cursor and commits; only then does the committed hook
 * announce the staged changes on PUB. A crash before COMMIT leaves
 * nothing; after it, everything.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer.h"
#include "log.h"
#include "service.h"
#include "stream.h"
#include "tagging.h"

/* --- announcements
 * ----------------------------------------------------------- */

void
tagging_announce(tagging *tg, const tagging_change *v, size_t n)
{
	for (size_t i = 0; tg->pub != NULL && i < n; i++) {
		(void)pond_stream_announce(tg->pub, POND_STREAM_TAG_CHANGES,
		                           v[i].partition, v[i].seq,
		                           v[i].payload, v[i].len);
	}
}

void
tagging_count_changes(tagging *tg, const tagging_changes *ch)
{
	for (size_t i = 0; i < ch->n; i++) {
		const char *c = ch->v[i].cause;
		int k = strcmp(c, "event") == 0  ? 0
		        : strcmp(c, "time") == 0 ? 1
		                                 : 2;
		pond_counter_inc(&tg->counters.changes[k]);
	}
}

static void
stage_clear(tagging_part_stage *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].payload);
	}
	free(st->v);
	st->v = NULL;
	st->n = 0;
}

/* stage_set replaces what partition has staged with ch (a partition has
 * one job at a time, so anything older was from a rolled-back attempt). */
static int
stage_set(tagging *tg, uint32_t partition, const tagging_changes *ch)
{
	tagging_part_stage st = {0};

	if (ch != NULL && ch->n > 0) {
		if ((st.v = calloc(ch->n, sizeof(*st.v))) == NULL) {
			return (POND_ENOMEM);
		}
		for (; st.n < ch->n; st.n++) {
			const tagging_change *c = &ch->v[st.n];
			st.v[st.n].seq = c->seq;
			st.v[st.n].len = c->len;
			if ((st.v[st.n].payload = malloc(c->len + 1)) ==
			    NULL) {
				stage_clear(&st);
				return (POND_ENOMEM);
			}
			memcpy(st.v[st.n].payload, c->payload, c->len);
		}
	}
	pthread_mutex_lock(&tg->stage_mu);
	stage_clear(&tg->stage[partition]);
	tg->stage[partition] = st;
	pthread_mutex_unlock(&tg->stage_mu);
	return (POND_OK);
}

static void
tagging_committed(uint32_t partition, void *arg)
{
	tagging *tg = arg;
	tagging_part_stage st;

	if (partition >= tg->nparts) {
		return;
	}
	pthread_mutex_lock(&tg->stage_mu);
	st = tg->stage[partition];
	tg->stage[partition] = (tagging_part_stage){0};
	pthread_mutex_unlock(&tg->stage_mu);
	for (size_t i = 0; tg->pub != NULL && i < st.n; i++) {
		(void)pond_stream_announce(tg->pub, POND_STREAM_TAG_CHANGES,
		                           partition, st.v[i].seq,
		                           st.v[i].payload, st.v[i].len);
	}
	stage_clear(&st);
}

/* --- apply
 * -------------------------------------------------------------------- */

/* apply_batch is one apply call's working state; all of it but the
 * decoded events' array lives in arena. */
typedef struct apply_batch {
	pond_arena arena;
	Pond__Event **events; /* n, NULL for a record to skip */
	const char **publishers;
	char **keys; /* distinct customer keys, sorted */
	uint32_t *parts;
	size_t nkeys;
	tagging_profile *profs;
	tagging_rules rules;
	tagging_changes changes;
} apply_batch;

static int
key_cmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* apply_decode unpacks the records and lists their distinct customers. */
static int
apply_decode(tagging *tg, apply_batch *b, const pond_record *recs, size_t n)
{
	size_t m = 0;

	b->events = pond_arena_alloc(&b->arena, n * sizeof(*b->events));
	b->publishers = pond_arena_alloc(&b->arena, n * sizeof(char *));
	b->keys = pond_arena_alloc(&b->arena, n * sizeof(char *));
	b->parts = pond_arena_alloc(&b->arena, n * sizeof(uint32_t));
	if (b->events == NULL || b->publishers == NULL || b->keys == NULL ||
	    b->parts == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < n; i++) {
		Pond__Event *ev =
		        pond__event__unpack(pond_arena_allocator(&b->arena),
		                            recs[i].len, recs[i].payload);
		b->publishers[i] = NULL;
		if (ev == NULL) {
			/* Ingest stored it, so it decoded once; count it and
			 * move on rather than stall the partition. */
			pond_counter_inc(&tg->counters.bad_events);
			pond_log_error("event_undecodable",
			               "partition=%" PRIu32 " seq=%" PRId64,
			               recs[i].partition, recs[i].seq);
		} else if (ev->customer_key == NULL ||
		           *ev->customer_key == '\0' ||
		           ev->body_case == POND__EVENT__BODY_CHANNEL_SPEND) {
			ev = NULL; /* no customer: nothing to tag */
		}
		b->events[i] = ev;
		if (ev != NULL) {
			b->keys[m++] = ev->customer_key;
		}
	}
	qsort(b->keys, m, sizeof(char *), key_cmp);
	for (size_t i = 0; i < m; i++) {
		if (b->nkeys == 0 ||
		    strcmp(b->keys[b->nkeys - 1], b->keys[i]) != 0) {
			b->parts[b->nkeys] = recs[0].partition;
			b->keys[b->nkeys++] = b->keys[i];
		}
	}
	return (POND_OK);
}

/* apply_publishers fetches the publisher names of the contact_added
 * records: acquisition ties are broken by them (API.md section 6). */
static int
apply_publishers(PGconn *conn, apply_batch *b, const pond_record *recs,
                 size_t n)
{
	const char **seqs = calloc(n + 1, sizeof(char *));
	char part[16], *arr = NULL;
	size_t m = 0;
	PGresult *res = NULL;
	int rv = POND_ENOMEM;

	if (seqs == NULL) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < n; i++) {
		char buf[24];
		if (b->events[i] == NULL ||
		    b->events[i]->body_case !=
		            POND__EVENT__BODY_CONTACT_ADDED) {
			continue;
		}
		snprintf(buf, sizeof(buf), "%" PRId64, recs[i].seq);
		if ((seqs[m++] = pond_arena_strdup(&b->arena, buf)) == NULL) {
			goto out;
		}
	}
	if (m == 0) {
		rv = POND_OK;
		goto out;
	}
	if ((arr = pond_pq_text_array(seqs, m)) == NULL) {
		goto out;
	}
	snprintf(part, sizeof(part), "%" PRIu32, recs[0].partition);
	const char *params[] = {part, arr};
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT e.seq, p.name FROM events e JOIN "
	             "publishers p ON p.id = e.publisher_id WHERE "
	             "e.partition = $1 AND e.seq = ANY($2::bigint[])",
	             2, params)) != 0) {
		goto out;
	}
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t seq = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		int64_t i = seq - recs[0].seq;
		if (i >= 0 && (size_t)i < n) {
			b->publishers[i] = pond_arena_strdup(
			        &b->arena, PQgetvalue(res, r, 1));
		}
	}
out:
	PQclear(res);
	free(arr);
	free(seqs);
	return (rv);
}

static tagging_profile *
apply_find(apply_batch *b, const char *key)
{
	char *const *k =
	        bsearch(&key, b->keys, b->nkeys, sizeof(char *), key_cmp);

	return (k != NULL ? &b->profs[k - b->keys] : NULL);
}

static int
tagging_apply(PGconn *conn, const pond_record *recs, size_t n, void *arg)
{
	tagging *tg = arg;
	apply_batch b = {0};
	pond_time now = pond_now();
	uint64_t evals = 0, applied = 0;
	int rv;

	pond_arena_init(&b.arena);
	if ((rv = stage_set(tg, recs[0].partition, NULL)) != 0 ||
	    (rv = apply_decode(tg, &b, recs, n)) != 0) {
		goto out;
	}
	if (b.nkeys == 0) {
		goto out;
	}
	/* Profiles first, rules after: a rule change committed after this
	 * read is re-applied to these customers by the sweeper once we
	 * commit, since their rows carry the older version. */
	if ((rv = tagging_profiles_load(conn, &b.arena, b.parts, b.keys,
	                                b.nkeys, &b.profs)) != 0 ||
	    (rv = tagging_rules_load(conn, &b.rules)) != 0 ||
	    (rv = apply_publishers(conn, &b, recs, n)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const Pond__Event *ev = b.events[i];
		tagging_profile *p;
		if (ev == NULL ||
		    (p = apply_find(&b, ev->customer_key)) == NULL) {
			continue;
		}
		tagging_profile_apply(p, &b.arena, ev, b.publishers[i],
		                      &tg->cycles);
		if ((rv = tagging_evaluate(p, &b.arena, &b.rules, &tg->cycles,
		                           now, "event", recs[i].seq,
		                           ev->event_id, &b.changes,
		                           &evals)) != 0) {
			goto out;
		}
		applied++;
	}
	if ((rv = tagging_profiles_store(conn, b.profs, b.nkeys, tg->nparts,
	                                 now)) != 0 ||
	    (rv = tagging_changes_write(conn, &b.arena, tg->nparts, &b.changes,
	                                now)) != 0 ||
	    (rv = stage_set(tg, recs[0].partition, &b.changes)) != 0) {
		goto out;
	}
	/* Counted before COMMIT: a rolled-back batch is applied again and
	 * counted again, which is what "evaluations" means. */
	pond_counter_add(&tg->counters.rule_evals, evals);
	pond_counter_add(&tg->counters.events, applied);
	tagging_count_changes(tg, &b.changes);
out:
	tagging_profiles_clear(b.profs, b.nkeys);
	tagging_rules_free(&b.rules);
	tagging_changes_free(&b.changes);
	pond_arena_reset(&b.arena);
	return (rv);
}

/* --- metrics, start, stop
 * ------------------------------------------------------------ */

static int
tagging_register_metrics(tagging *tg, pond_metrics *m)
{
	tagging_counters *c = &tg->counters;
	static const char *changes_help =
	        "Tags put on or taken off, by cause.";
	int rv;

	if ((rv = pond_metrics_counter(m, "pond_tagging_events_total",
	                               "Events applied to profiles.", NULL,
	                               &c->events)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_tagging_rule_evaluations_total",
	             "Rule conditions evaluated against a profile.", NULL,
	             &c->rule_evals)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_tagging_tag_changes_total",
	                               changes_help, "cause=\"event\"",
	                               &c->changes[0])) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_tagging_tag_changes_total",
	                               changes_help, "cause=\"time\"",
	                               &c->changes[1])) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_tagging_tag_changes_total",
	                               changes_help, "cause=\"rule\"",
	                               &c->changes[2])) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_tagging_swept_profiles_total",
	             "Profiles re-evaluated for time or a rule change.", NULL,
	             &c->swept)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_tagging_rule_writes_total",
	                               "Tag rules put or removed.", NULL,
	                               &c->rule_writes)) != 0 ||
	    (rv = pond_metrics_counter(
	             m, "pond_tagging_undecodable_events_total",
	             "Events stream records that did not decode (skipped).",
	             NULL, &c->bad_events)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

int
tagging_start(pond_service *svc)
{
	tagging *tg = svc->ctx;
	const char *why = NULL;
	int rv;

	tg->svc = svc;
	tg->nparts = (uint32_t)svc->conf.partitions;
	/* Days are counted in POND_TZ by localtime_r; set it before any
	 * store thread evaluates a condition. */
	setenv("TZ", svc->conf.tz, 1);
	tzset();
	if (tagging_cycles_parse(tg->conf.cycles, &tg->cycles, &why) != 0) {
		pond_log_error("config_invalid",
		               "var=POND_REPURCHASE_CYCLES "
		               "why=\"%s\"",
		               why);
		return (POND_EINVAL);
	}
	if ((tg->stage = calloc(tg->nparts, sizeof(*tg->stage))) == NULL) {
		return (POND_ENOMEM);
	}
	pthread_mutex_init(&tg->stage_mu, NULL);
	static pond_consumer_config cconf;
	cconf = (pond_consumer_config){
	        .name = "tagging",
	        .stream = POND_STREAM_EVENTS,
	        .dsn = svc->conf.dsn,
	        .sub_urls = tg->conf.sub_urls,
	        .batch = (uint32_t)tg->conf.batch,
	        .apply = tagging_apply,
	        .arg = tg,
	        .committed = tagging_committed,
	};
	if ((rv = tagging_register_metrics(tg, svc->metrics)) != 0 ||
	    (rv = pond_pub_listen(&tg->pub, tg->conf.pub_url)) != 0 ||
	    (rv = tagging_rules_routes(tg)) != 0 ||
	    (rv = tagging_sweep_start(tg)) != 0 ||
	    (rv = pond_consumer_start(&tg->consumer, svc->loop, svc->bus,
	                              svc->db, svc->metrics, &cconf)) != 0) {
		return (rv);
	}
	pond_log_info("listening", "tag_changes_pub=%s events_sub=%s",
	              tg->conf.pub_url, tg->conf.sub_urls);
	return (POND_OK);
}

bool
tagging_healthy(pond_service *svc, char *why, size_t len)
{
	tagging *tg = svc->ctx;
	int64_t lag;

	if (tg->consumer == NULL) {
		snprintf(why, len, "the events consumer is not running");
		return (false);
	}
	if ((lag = pond_consumer_lag(tg->consumer)) > tg->conf.max_lag) {
		snprintf(why, len,
		         "%" PRId64
		         " events behind (POND_TAGGING_MAX_LAG %" PRId64 ")",
		         lag, tg->conf.max_lag);
		return (false);
	}
	return (true);
}

void
tagging_maybe_stopped(tagging *tg)
{
	if (!tg->stopping || !tg->consumer_stopped || tg->sweep_busy ||
	    tg->requests > 0 || tg->pub == NULL) {
		return;
	}
	pond_pub_close(tg->pub);
	tg->pub = NULL;
	for (uint32_t p = 0; p < tg->nparts; p++) {
		stage_clear(&tg->stage[p]);
	}
	free(tg->stage);
	tg->stage = NULL;
	free(tg->cycles.cycles);
	pond_service_stopped(tg->svc);
}

static void
tagging_sweep_stopped(tagging *tg)
{
	tagging_maybe_stopped(tg);
}

static void
tagging_consumer_stopped(void *arg)
{
	tagging *tg = arg;

	tg->consumer_stopped = true;
	tagging_sweep_stop(tg, tagging_sweep_stopped);
}

void
tagging_stop(pond_service *svc)
{
	tagging *tg = svc->ctx;

	/* The consumer finishes (or rolls back) its transaction in flight;
	 * then the sweeper's; then we go. */
	tg->stopping = true;
	pond_consumer_stop(tg->consumer, tagging_consumer_stopped, tg);
}
