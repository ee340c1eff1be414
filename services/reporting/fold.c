/*
 * fold.c - folds the day cells on a timer: every POND_CELLS_FOLD_MS,
 * rpt_cells_fold() (0009_reporting_fold.sql) moves the cells the
 * consumers' triggers wrote per partition into one row per (cell, day,
 * key, k), so a period reads one row where it read up to one per
 * partition. The answers do not change (they sum over partitions); only
 * how many rows a request reads does.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "reporting.h"

/* fold_work runs the fold on a pool connection. */
static int
fold_work(PGconn *conn, void *arg)
{
	reporting *rp = arg;
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, &res, "SELECT rpt_cells_fold()", 0,
	                        NULL)) != 0) {
		return (rv);
	}
	rp->fold_rows = (uint64_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (POND_OK);
}

static void
fold_done(int rv, void *arg)
{
	reporting *rp = arg;

	rp->folding = false;
	if (rv == 0) {
		pond_counter_add(&rp->counters.folded, rp->fold_rows);
		pond_log_debug("cells_folded", "rows=%" PRIu64, rp->fold_rows);
	} else {
		pond_log_warn("cells_fold_failed",
		              "why=\"%s\" next=\"on the next tick\"",
		              pond_strerror(rv));
	}
	rp->requests--;
	reporting_maybe_stopped(rp);
}

static void
fold_tick(uv_timer_t *timer)
{
	reporting *rp = timer->data;

	if (rp->folding || rp->stopping) {
		return;
	}
	if (pond_db_submit(rp->svc->db, fold_work, fold_done, rp) == 0) {
		rp->folding = true;
		rp->requests++;
	}
}

int
reporting_fold_start(reporting *rp)
{
	int rv;

	if (rp->conf.fold_ms == 0) {
		return (POND_OK);
	}
	if ((rv = uv_timer_init(rp->svc->loop, &rp->fold_timer)) != 0) {
		return (pond_err_from_errno(-rv));
	}
	rp->fold_timer.data = rp;
	rp->fold_timer_on = true;
	if ((rv = uv_timer_start(&rp->fold_timer, fold_tick,
	                         (uint64_t)rp->conf.fold_ms,
	                         (uint64_t)rp->conf.fold_ms)) != 0) {
		return (pond_err_from_errno(-rv));
	}
	return (POND_OK);
}

void
reporting_fold_stop(reporting *rp)
{
	if (rp->fold_timer_on) {
		rp->fold_timer_on = false;
		uv_timer_stop(&rp->fold_timer);
		uv_close((uv_handle_t *)&rp->fold_timer, NULL);
	}
}
