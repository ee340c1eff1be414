/*
 * db.h - the store: a small pool of libpq connections run off the loop.
 *
 * Each pool thread owns one blocking PGconn. The loop submits a job (a work
 * function run on a pool thread with that thread's connection, and a done
 * function run back on the loop with the work's result), so transactional
 * code reads straight through while the loop never blocks on the store.
 * Jobs run in submission order per pool, several at once across threads.
 *
 * A connection that breaks is reset before the next job; the job that saw it
 * break gets POND_EDB and decides whether to retry.
 *
 * The pond_pq_* helpers are for work functions (and the CLI): they run one
 * statement, log a failure with its SQLSTATE, and map it to a pond_err
 * (40001/40P01 to POND_ECONFLICT, 23505 to POND_EEXIST, the rest POND_EDB).
 */
#ifndef POND_DB_H
#define POND_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "handoff.h"

typedef struct pond_db pond_db;
typedef struct pond_db_job pond_db_job;

/* pond_db_work_fn runs on a pool thread with its connection, outside any
 * transaction; it returns a pond_err. It must not touch the loop. */
typedef int (*pond_db_work_fn)(PGconn *conn, void *arg);

/* pond_db_done_fn runs on the loop with the work's result. */
typedef void (*pond_db_done_fn)(int rv, void *arg);

/* pond_db_open starts nconns threads, each connecting to dsn with
 * application_name app. Connections are made lazily and retried; open
 * itself does not fail when the store is down. */
int pond_db_open(pond_db **dbp, uv_loop_t *loop, const char *dsn, int nconns,
                 const char *app) POND_MUSTCHECK;

/* pond_db_submit queues a job. After pond_db_close has begun it returns
 * POND_ECLOSED and done is never called. */
int pond_db_submit(pond_db *db, pond_db_work_fn work, pond_db_done_fn done,
                   void *arg) POND_MUSTCHECK;

/* pond_db_close lets queued jobs finish (their done callbacks run), stops
 * the threads, closes the connections, then calls closed on the loop. */
void pond_db_close(pond_db *db, void (*closed)(void *), void *arg);

/* pond_db_pending returns jobs queued or running. */
size_t pond_db_pending(pond_db *db);

/* pond_db_reachable reports whether the last connection attempt or job
 * found the store reachable. */
bool pond_db_reachable(pond_db *db);

/* pond_pq_connect opens a blocking connection (CLI, pool threads) with
 * statement settings every Pond session uses. */
int pond_pq_connect(PGconn **connp, const char *dsn,
                    const char *app) POND_MUSTCHECK;

/* pond_pq_exec runs sql without parameters and discards the result. */
int pond_pq_exec(PGconn *conn, const char *sql) POND_MUSTCHECK;

/* pond_pq_query runs sql with n text parameters (NULL values are SQL NULL);
 * on success *resp holds the result, to be PQclear'ed. */
int pond_pq_query(PGconn *conn, PGresult **resp, const char *sql, int n,
                  const char *const *values) POND_MUSTCHECK;

/* pond_pq_query_bin is pond_pq_query with explicit lengths and formats
 * (1 = binary) per parameter. */
int pond_pq_query_bin(PGconn *conn, PGresult **resp, const char *sql, int n,
                      const char *const *values, const int *lengths,
                      const int *formats) POND_MUSTCHECK;

/* pond_pq_check maps a result's status to a pond_err, logging failures
 * with what; it does not PQclear. */
int pond_pq_check(PGconn *conn, const PGresult *res, const char *what);

/* pond_pq_rollback rolls back the open transaction, if any (never fails
 * the caller: a broken connection is reset by the pool). */
void pond_pq_rollback(PGconn *conn);

/* pond_pq_table_exists sets *exists to whether table is visible on the
 * search path (to_regclass): before the first migrate a table is missing,
 * which callers treat as "empty", not as an error. */
int pond_pq_table_exists(PGconn *conn, const char *table,
                         bool *exists) POND_MUSTCHECK;

/* pond_pq_text_array writes items as a PostgreSQL array literal
 * ({"a","b\"c"}) into a malloc'd string, for one array parameter instead of
 * one statement per item; a NULL item becomes an SQL NULL element. Returns
 * NULL on ENOMEM. */
char *pond_pq_text_array(const char *const *items, size_t n);

#endif
