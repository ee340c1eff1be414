/*
 * sweep.c - re-evaluation without an event: ages crossing a threshold and
 * rule changes.
 *
 * A profile is due when its due_at (the next moment a days_since_* rule or
 * repurchase_due may flip for it, set by every evaluation) has come, or
 * when it was last evaluated with an older tag_rules version (a rule was
 * put or removed since). A timer runs one sweep at a time: a transaction
 * that locks up to POND_TAGGING_SWEEP_ROWS due profiles with FOR UPDATE
 * SKIP LOCKED (so replicas, and the consumer, never wait on each other),
 * evaluates them at pond_now(), writes their tags and tag_changes, and
 * commits; a full batch runs the next one at once. The stream never stops:
 * a rule change over a million customers is a thousand short transactions
 * between the consumer's.
 */
#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "service.h"
#include "tagging.h"

typedef struct sweep_job {
	tagging *tg;
	pond_arena arena;
	tagging_changes changes;
	size_t swept;
} sweep_job;

static int
sweep_work(PGconn *conn, void *arg)
{
	sweep_job *job = arg;
	tagging *tg = job->tg;
	tagging_rules rules = {0};
	tagging_profile *profs = NULL;
	pond_time now = pond_now();
	uint64_t evals = 0;
	size_t n = 0;
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	if ((rv = tagging_rules_load(conn, &rules)) != 0 ||
	    (rv = tagging_profiles_due(conn, &job->arena, now, rules.version,
	                               (int)tg->conf.sweep_rows, &profs,
	                               &n)) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *cause = profs[i].rules_version < rules.version
		                            ? "rule"
		                            : "time";
		if ((rv = tagging_evaluate(&profs[i], &job->arena, &rules,
		                           &tg->cycles, now, cause, 0, NULL,
		                           &job->changes, &evals)) != 0) {
			goto out;
		}
	}
	if ((rv = tagging_profiles_store(conn, profs, n, tg->nparts, now)) !=
	            0 ||
	    (rv = tagging_changes_write(conn, &job->arena, tg->nparts,
	                                &job->changes, now)) != 0 ||
	    (rv = pond_pq_exec(conn, "COMMIT")) != 0) {
		goto out;
	}
	pond_counter_add(&tg->counters.rule_evals, evals);
	job->swept = n;
out:
	if (rv != 0) {
		pond_pq_rollback(conn);
	}
	tagging_profiles_clear(profs, n);
	tagging_rules_free(&rules);
	return (rv);
}

static void
sweep_done(int rv, void *arg)
{
	sweep_job *job = arg;
	tagging *tg = job->tg;
	bool full = false;

	if (rv == 0) {
		/* Committed: now, and only now, the changes may be heard. */
		tagging_announce(tg, job->changes.v, job->changes.n);
		tagging_count_changes(tg, &job->changes);
		pond_counter_add(&tg->counters.swept, job->swept);
		full = job->swept >= (size_t)tg->conf.sweep_rows;
	} else if (rv != POND_ECLOSED) {
		pond_log_warn("sweep_failed", "error=\"%s\"",
		              pond_strerror(rv));
	}
	tagging_changes_free(&job->changes);
	pond_arena_reset(&job->arena);
	free(job);
	tg->sweep_busy = false;
	if (tg->stopping) {
		tagging_maybe_stopped(tg);
		return;
	}
	if (full || tg->sweep_again) {
		tg->sweep_again = false;
		tagging_sweep_kick(tg);
	}
}

void
tagging_sweep_kick(tagging *tg)
{
	sweep_job *job;

	if (tg->stopping) {
		return;
	}
	if (tg->sweep_busy) {
		tg->sweep_again = true;
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		return;
	}
	job->tg = tg;
	pond_arena_init(&job->arena);
	if (pond_db_submit(tg->svc->db, sweep_work, sweep_done, job) != 0) {
		free(job);
		return;
	}
	tg->sweep_busy = true;
}

static void
sweep_tick(uv_timer_t *timer)
{
	tagging_sweep_kick(timer->data);
}

int
tagging_sweep_start(tagging *tg)
{
	int rv;

	if ((rv = uv_timer_init(tg->svc->loop, &tg->sweep_timer)) != 0) {
		return (pond_err_from_errno(-rv));
	}
	tg->sweep_timer.data = tg;
	if ((rv = uv_timer_start(&tg->sweep_timer, sweep_tick,
	                         (uint64_t)tg->conf.sweep_ms,
	                         (uint64_t)tg->conf.sweep_ms)) != 0) {
		return (pond_err_from_errno(-rv));
	}
	return (POND_OK);
}

static void (*sweep_stopped_cb)(tagging *);

static void
sweep_timer_closed(uv_handle_t *h)
{
	tagging *tg = h->data;

	sweep_stopped_cb(tg);
}

void
tagging_sweep_stop(tagging *tg, void (*done)(tagging *))
{
	sweep_stopped_cb = done;
	uv_timer_stop(&tg->sweep_timer);
	uv_close((uv_handle_t *)&tg->sweep_timer, sweep_timer_closed);
}
