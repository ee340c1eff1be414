/*
 * migrate.c - the schema migrator (see migrate.h).
 *
 * Every step runs in its own short transaction that first takes one
 * transaction-level advisory lock, so two migrators (two `pond migrate`
 * runs, or several service replicas starting at once) take turns: the
 * second one waits, then finds the work done and does nothing. The lock is
 * released by COMMIT or ROLLBACK, never held across steps, so a migrator
 * that dies leaves nothing locked behind.
 *
 * The steps: make sure schema_migrations exists; apply each pending
 * migration (its SQL, possibly several statements, plus its row in
 * schema_migrations, commit together or not at all); then fix the
 * partition count in pond_settings and give every stream a stream_heads
 * row per partition.
 */
#include "migrate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stream.h"

/* MIGRATE_LOCK_SQL takes the migrator's lock. The key is "pondmigr" in
 * ASCII; the one-bigint key space is separate from the (int, int) keys the
 * stream consumers use, so the two never collide. */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(8101815632274220914)"

/* migrate_begin opens a transaction holding the migrator's lock. */
static int
migrate_begin(PGconn *conn)
{
	int rv;

	if ((rv = pond_pq_exec(conn, "BEGIN")) != 0) {
		return (rv);
	}
	if ((rv = pond_pq_exec(conn, MIGRATE_LOCK_SQL)) != 0) {
		pond_pq_rollback(conn);
		return (rv);
	}
	return (POND_OK);
}

/* migrate_commit commits, rolling back on failure. */
static int
migrate_commit(PGconn *conn)
{
	int rv = pond_pq_exec(conn, "COMMIT");

	if (rv != 0) {
		pond_pq_rollback(conn);
	}
	return (rv);
}

static int
migrate_ensure_table(PGconn *conn)
{
	int rv;

	/* Under the lock: two concurrent CREATE TABLE IF NOT EXISTS can
	 * both pass the check and one then fails on the catalog's unique
	 * index. */
	if ((rv = migrate_begin(conn)) != 0) {
		return (rv);
	}
	/* The "already exists, skipping" notice is noise on every run. */
	if ((rv = pond_pq_exec(
	             conn, "SET LOCAL client_min_messages = warning")) != 0 ||
	    (rv = pond_pq_exec(
	             conn,
	             "CREATE TABLE IF NOT EXISTS schema_migrations ("
	             " version int PRIMARY KEY,"
	             " name text NOT NULL,"
	             " applied_at timestamptz NOT NULL DEFAULT now())")) !=
	            0) {
		pond_pq_rollback(conn);
		return (rv);
	}
	return (migrate_commit(conn));
}

/* migrate_one applies m unless it is already recorded; *ran tells which. */
static int
migrate_one(PGconn *conn, const pond_migration *m, bool *ran)
{
	char version[16];
	const char *params[2] = {version, m->name};
	PGresult *res;
	int rv;

	*ran = false;
	snprintf(version, sizeof(version), "%d", m->version);
	if ((rv = migrate_begin(conn)) != 0) {
		return (rv);
	}
	/* READ COMMITTED: this statement's snapshot is taken after the lock
	 * was granted, so it sees a row committed by the migrator we waited
	 * for. */
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
	             params)) != 0) {
		goto fail;
	}
	bool done = PQntuples(res) > 0;
	PQclear(res);
	if (done) {
		return (migrate_commit(conn));
	}
	/* PQexec (not PQexecParams) runs a multi-statement string; it stops
	 * at the first failing statement and the whole transaction is rolled
	 * back, so a half-applied migration is never recorded. */
	res = PQexec(conn, m->sql);
	rv = pond_pq_check(conn, res, m->name);
	PQclear(res);
	if (rv != 0) {
		pond_log_error("migration_failed", "version=%d name=%s",
		               m->version, m->name);
		goto fail;
	}
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "INSERT INTO schema_migrations (version, name) "
	             "VALUES ($1, $2)",
	             2, params)) != 0) {
		goto fail;
	}
	if ((rv = migrate_commit(conn)) != 0) {
		return (rv);
	}
	pond_log_info("migration_applied", "version=%d name=%s", m->version,
	              m->name);
	*ran = true;
	return (POND_OK);

fail:
	pond_pq_rollback(conn);
	return (rv);
}

/* migrate_partitions records nparts the first time, refuses a different
 * later value, and creates the missing stream_heads rows. */
static int
migrate_partitions(PGconn *conn, int nparts)
{
	char nbuf[16];
	const char *params[1] = {nbuf};
	PGresult *res;
	int rv;

	snprintf(nbuf, sizeof(nbuf), "%d", nparts);
	if ((rv = migrate_begin(conn)) != 0) {
		return (rv);
	}
	/* ON CONFLICT DO NOTHING keeps the first value; the SELECT below
	 * then reads whichever value is stored. */
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "INSERT INTO pond_settings (key, value) "
	             "VALUES ('partitions', $1) ON CONFLICT (key) DO NOTHING",
	             1, params)) != 0) {
		goto fail;
	}
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT value FROM pond_settings WHERE key = "
	                        "'partitions'",
	                        0, NULL)) != 0) {
		goto fail;
	}
	int stored = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (stored != nparts) {
		/* The partition of every stored record is hash mod P: a new P
		 * would scatter customers over the wrong partitions. */
		pond_log_error("partitions_mismatch",
		               "stored=%d requested=%d msg=\"the partition "
		               "count is fixed "
		               "at install; the stored value wins\"",
		               stored, nparts);
		rv = POND_EINVAL;
		goto fail;
	}
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "INSERT INTO stream_heads (stream, partition) "
	             "SELECT s, p FROM unnest(ARRAY['" POND_STREAM_EVENTS
	             "', '" POND_STREAM_TAG_CHANGES "', '" POND_STREAM_TOUCHES
	             "']) AS s, generate_series(0, $1::int - 1) AS p "
	             "ON CONFLICT (stream, partition) DO NOTHING",
	             1, params)) != 0) {
		goto fail;
	}
	return (migrate_commit(conn));

fail:
	pond_pq_rollback(conn);
	return (rv);
}

int
pond_migrate(PGconn *conn, int nparts, int *applied)
{
	int count = 0;
	int rv;

	if (applied != NULL) {
		*applied = 0;
	}
	if (nparts < 1 || nparts > POND_MAX_PARTITIONS) {
		pond_log_error("partitions_invalid", "requested=%d max=%d",
		               nparts, POND_MAX_PARTITIONS);
		return (POND_EINVAL);
	}
	if ((rv = migrate_ensure_table(conn)) != 0) {
		return (rv);
	}
	for (int i = 0; i < pond_migrations_count; i++) {
		bool ran;
		if ((rv = migrate_one(conn, &pond_migrations[i], &ran)) != 0) {
			goto out;
		}
		count += ran ? 1 : 0;
	}
	rv = migrate_partitions(conn, nparts);

out:
	if (applied != NULL) {
		*applied = count;
	}
	return (rv);
}

int
pond_schema_version(PGconn *conn, int *version)
{
	PGresult *res;
	int rv;

	*version = 0;
	/* Before the first migrate there is no table, which is version 0,
	 * not an error. */
	bool exists;
	if ((rv = pond_pq_table_exists(conn, "schema_migrations", &exists)) !=
	    0) {
		return (rv);
	}
	if (!exists) {
		return (POND_OK);
	}
	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT coalesce(max(version), 0) FROM schema_migrations",
	             0, NULL)) != 0) {
		return (rv);
	}
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return (POND_OK);
}
