/*
 * db.c - the store pool (see db.h).
 *
 * nconns threads, each owning one blocking PGconn, take jobs from one FIFO
 * guarded by a mutex and a condition variable. A finished job is posted back
 * to the loop through the pool's pond_handoff and its done callback runs
 * there. Closing the pool marks it closed (new submits fail) and lets the
 * threads drain the queue; once the last job's done has run on the loop the
 * threads are idle or gone, so they are joined without blocking the loop,
 * and the hand-off is closed.
 */
#include "db.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct pond_db_job {
	pond_task task; /* first: the hand-off back to the loop */
	pond_db_job *next;
	pond_db *db;
	pond_db_work_fn work;
	pond_db_done_fn done;
	void *arg;
	int rv;
};

struct pond_db {
	uv_loop_t *loop;
	char *dsn;
	char *app;
	int nthreads;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pond_db_job *head; /* queued jobs, protected by mu */
	pond_db_job *tail;
	bool closing;           /* protected by mu */
	_Atomic size_t pending; /* queued + running + done not yet run */
	_Atomic bool reachable;
	pond_handoff handoff;
	void (*closed)(void *);
	void *closed_arg;
	bool joined;
};

int
pond_pq_connect(PGconn **connp, const char *dsn, const char *app)
{
	const char *keys[] = {"dbname", "application_name", "connect_timeout",
	                      NULL};
	const char *vals[] = {dsn, app != NULL ? app : "pond", "5", NULL};
	PGconn *conn;

	/* expand_dbname=1: dsn may be a full connection string or URI. */
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		return (POND_ENOMEM);
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		char msg[256];
		pond_log_warn("db_connect_failed", "error=%s",
		              pond_log_quote(PQerrorMessage(conn), msg,
		                             sizeof(msg)));
		PQfinish(conn);
		return (POND_EDB);
	}
	/* A session left idle inside a transaction would pin the hot small
	 * tables (stream_heads, cursors) against vacuum; cap it. */
	PGresult *res =
	        PQexec(conn, "SET idle_in_transaction_session_timeout = '60s';"
	                     "SET TIME ZONE 'UTC'");
	int rv = pond_pq_check(conn, res, "session_setup");
	PQclear(res);
	if (rv != 0) {
		PQfinish(conn);
		return (rv);
	}
	*connp = conn;
	return (POND_OK);
}

int
pond_pq_check(PGconn *conn, const PGresult *res, const char *what)
{
	char msg[512];
	const char *state;

	if (res == NULL) {
		pond_log_error("db_error", "what=%s error=%s", what,
		               pond_log_quote(PQerrorMessage(conn), msg,
		                              sizeof(msg)));
		return (POND_EDB);
	}
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_COPY_IN:
	case PGRES_COPY_OUT:
		return (POND_OK);
	default:
		break;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL) {
		state = "";
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
		pond_log_info("db_conflict", "what=%s sqlstate=%s", what,
		              state);
		return (POND_ECONFLICT);
	}
	pond_log_error(
	        "db_error", "what=%s sqlstate=%s error=%s", what, state,
	        pond_log_quote(PQresultErrorMessage(res), msg, sizeof(msg)));
	if (strcmp(state, "23505") == 0) {
		return (POND_EEXIST);
	}
	return (POND_EDB);
}

int
pond_pq_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	int rv = pond_pq_check(conn, res, sql);
	PQclear(res);
	return (rv);
}

int
pond_pq_query_bin(PGconn *conn, PGresult **resp, const char *sql, int n,
                  const char *const *values, const int *lengths,
                  const int *formats)
{
	PGresult *res =
	        PQexecParams(conn, sql, n, NULL, values, lengths, formats, 0);
	int rv = pond_pq_check(conn, res, sql);

	if (rv != 0) {
		PQclear(res);
		return (rv);
	}
	if (resp != NULL) {
		*resp = res;
	} else {
		PQclear(res);
	}
	return (POND_OK);
}

int
pond_pq_query(PGconn *conn, PGresult **resp, const char *sql, int n,
              const char *const *values)
{
	return (pond_pq_query_bin(conn, resp, sql, n, values, NULL, NULL));
}

void
pond_pq_rollback(PGconn *conn)
{
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		PQclear(PQexec(conn, "ROLLBACK"));
	}
}

int
pond_pq_table_exists(PGconn *conn, const char *table, bool *exists)
{
	const char *params[] = {table};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT to_regclass($1) IS NOT NULL", 1,
	                        params)) != 0) {
		return (rv);
	}
	*exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return (POND_OK);
}

char *
pond_pq_text_array(const char *const *items, size_t n)
{
	size_t cap = 3, o = 0;
	char *buf;

	for (size_t i = 0; i < n; i++) {
		cap += (items[i] != NULL ? 2 * strlen(items[i]) : 4) + 3;
	}
	if ((buf = malloc(cap)) == NULL) {
		return (NULL);
	}
	buf[o++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0) {
			buf[o++] = ',';
		}
		if (items[i] == NULL) {
			memcpy(buf + o, "NULL", 4);
			o += 4;
			continue;
		}
		buf[o++] = '"';
		for (const char *s = items[i]; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\') {
				buf[o++] = '\\';
			}
			buf[o++] = *s;
		}
		buf[o++] = '"';
	}
	buf[o++] = '}';
	buf[o] = '\0';
	return (buf);
}

static pond_db_job *
db_take(pond_db *db)
{
	pond_db_job *job;

	pthread_mutex_lock(&db->mu);
	while (db->head == NULL && !db->closing) {
		pthread_cond_wait(&db->cv, &db->mu);
	}
	job = db->head;
	if (job != NULL) {
		db->head = job->next;
		if (db->head == NULL) {
			db->tail = NULL;
		}
	}
	pthread_mutex_unlock(&db->mu);
	return (job);
}

static void db_finish_close(pond_db *db);

static void
db_job_done(pond_task *task)
{
	pond_db_job *job = (pond_db_job *)task;
	pond_db *db = job->db;

	job->done(job->rv, job->arg);
	free(job);
	if (atomic_fetch_sub(&db->pending, 1) == 1 && db->closed != NULL) {
		db_finish_close(db);
	}
}

static void *
db_thread(void *arg)
{
	pond_db *db = arg;
	PGconn *conn = NULL;
	pond_db_job *job;

	while ((job = db_take(db)) != NULL) {
		if (conn != NULL && PQstatus(conn) != CONNECTION_OK) {
			PQfinish(conn);
			conn = NULL;
		}
		if (conn == NULL &&
		    pond_pq_connect(&conn, db->dsn, db->app) != 0) {
			conn = NULL;
		}
		if (conn == NULL) {
			atomic_store(&db->reachable, false);
			job->rv = POND_EDB;
		} else {
			job->rv = job->work(conn, job->arg);
			/* A work function must end its transaction; one that
			 * did not (a bug or a broken connection) must not leak
			 * its locks into the next job. */
			pond_pq_rollback(conn);
			atomic_store(&db->reachable,
			             PQstatus(conn) == CONNECTION_OK);
		}
		pond_handoff_post(&db->handoff, &job->task, db_job_done);
	}
	if (conn != NULL) {
		PQfinish(conn);
	}
	return (NULL);
}

int
pond_db_open(pond_db **dbp, uv_loop_t *loop, const char *dsn, int nconns,
             const char *app)
{
	pond_db *db;
	int rv = POND_ENOMEM;

	if (nconns < 1) {
		return (POND_EINVAL);
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		return (POND_ENOMEM);
	}
	db->loop = loop;
	atomic_init(&db->pending, 0);
	atomic_init(&db->reachable, true);
	if ((db->dsn = strdup(dsn)) == NULL ||
	    (db->app = strdup(app != NULL ? app : "pond")) == NULL ||
	    (db->threads = calloc((size_t)nconns, sizeof(pthread_t))) ==
	            NULL) {
		goto err;
	}
	if (pthread_mutex_init(&db->mu, NULL) != 0) {
		goto err;
	}
	if (pthread_cond_init(&db->cv, NULL) != 0) {
		pthread_mutex_destroy(&db->mu);
		goto err;
	}
	rv = 0;
	for (int i = 0; i < nconns; i++) {
		if (pthread_create(&db->threads[i], NULL, db_thread, db) !=
		    0) {
			goto err_threads;
		}
		db->nthreads++;
	}
	/* The threads touch the hand-off only when a job completes, and no
	 * job can be queued before open returns, so it is set up last. */
	if ((rv = pond_handoff_init(&db->handoff, loop)) != 0) {
		goto err_threads;
	}
	*dbp = db;
	return (POND_OK);

err_threads:
	/* Nothing is queued, so the started threads exit at once. */
	pthread_mutex_lock(&db->mu);
	db->closing = true;
	pthread_cond_broadcast(&db->cv);
	pthread_mutex_unlock(&db->mu);
	for (int i = 0; i < db->nthreads; i++) {
		pthread_join(db->threads[i], NULL);
	}
	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	rv = rv != 0 ? rv : POND_ENOMEM;
err:
	free(db->threads);
	free(db->app);
	free(db->dsn);
	free(db);
	return (rv);
}

int
pond_db_submit(pond_db *db, pond_db_work_fn work, pond_db_done_fn done,
               void *arg)
{
	pond_db_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL) {
		return (POND_ENOMEM);
	}
	job->db = db;
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&db->mu);
	if (db->closing) {
		pthread_mutex_unlock(&db->mu);
		free(job);
		return (POND_ECLOSED);
	}
	atomic_fetch_add(&db->pending, 1);
	if (db->tail != NULL) {
		db->tail->next = job;
	} else {
		db->head = job;
	}
	db->tail = job;
	pthread_cond_signal(&db->cv);
	pthread_mutex_unlock(&db->mu);
	return (POND_OK);
}

static void
db_handoff_closed(pond_handoff *h)
{
	pond_db *db = (pond_db *)((char *)h - offsetof(pond_db, handoff));
	void (*closed)(void *) = db->closed;
	void *arg = db->closed_arg;

	pthread_cond_destroy(&db->cv);
	pthread_mutex_destroy(&db->mu);
	free(db->threads);
	free(db->app);
	free(db->dsn);
	free(db);
	closed(arg);
}

/* db_finish_close runs on the loop once nothing is pending: every thread is
 * idle in db_take or already gone, so joining does not block the loop. */
static void
db_finish_close(pond_db *db)
{
	if (db->joined) {
		return;
	}
	db->joined = true;
	for (int i = 0; i < db->nthreads; i++) {
		pthread_join(db->threads[i], NULL);
	}
	pond_handoff_close(&db->handoff, db_handoff_closed);
}

static void
db_closed_noop(void *arg)
{
	(void)arg;
}

void
pond_db_close(pond_db *db, void (*closed)(void *), void *arg)
{
	db->closed = closed != NULL ? closed : db_closed_noop;
	db->closed_arg = arg;
	pthread_mutex_lock(&db->mu);
	db->closing = true;
	pthread_cond_broadcast(&db->cv);
	pthread_mutex_unlock(&db->mu);
	if (atomic_load(&db->pending) == 0) {
		db_finish_close(db);
	}
}

size_t
pond_db_pending(pond_db *db)
{
	return (atomic_load(&db->pending));
}

bool
pond_db_reachable(pond_db *db)
{
	return (atomic_load(&db->reachable));
}
