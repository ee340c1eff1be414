/*
 * test_migrate.c - the schema migrator against real PostgreSQL.
 *
 * - each migration is applied once and recorded with its version and name;
 *   a second run applies nothing;
 * - every stream gets a stream_heads row per partition, and the partition
 *   count is fixed by the first run: a different one is refused and
 *   changes nothing;
 * - migrators racing on a fresh database (threads, one connection each)
 *   apply every migration exactly once between them, and when they ask for
 *   different partition counts exactly one count wins.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "harness.h"
#include "migrate.h"
#include "stream.h"

#define NRACERS 4

static const char *const streams[] = {
        POND_STREAM_EVENTS, POND_STREAM_TAG_CHANGES, POND_STREAM_TOUCHES};

/* query_int runs sql with text parameters on conn and returns the single
 * integer it yields. */
static long long
query_int(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res =
	        PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	long long v;

	cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql,
	             PQerrorMessage(conn));
	cr_assert_eq(PQntuples(res), 1, "%s", sql);
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (v);
}

static PGconn *
fresh_db(char *dsn, size_t len)
{
	pond_test_require_pg();
	pond_test_db_create(dsn, len);
	return (pond_test_pg_connect(dsn));
}

Test(migrate, applies_each_migration_once)
{
	char dsn[POND_TEST_DSN_LEN];
	PGconn *conn = fresh_db(dsn, sizeof(dsn));
	int applied = -1, version = -1;

	cr_assert_eq(pond_schema_version(conn, &version), 0);
	cr_assert_eq(version, 0, "no schema_migrations table is version 0");

	cr_assert_eq(pond_migrate(conn, 4, &applied), 0);
	cr_assert_eq(applied, pond_migrations_count);
	cr_assert_eq(pond_migrate(conn, 4, &applied), 0);
	cr_assert_eq(applied, 0, "a second run applies nothing");
	cr_assert_eq(pond_migrate(conn, 4, NULL), 0);

	cr_assert_eq(pond_schema_version(conn, &version), 0);
	cr_assert_eq(version,
	             pond_migrations[pond_migrations_count - 1].version);
	cr_assert_eq(query_int(conn, "SELECT count(*) FROM schema_migrations",
	                       0, NULL),
	             pond_migrations_count);
	for (int i = 0; i < pond_migrations_count; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", pond_migrations[i].version);
		const char *params[] = {v, pond_migrations[i].name};
		cr_assert_eq(
		        query_int(conn,
		                  "SELECT count(*) FROM schema_migrations "
		                  "WHERE version = $1 AND name = $2 "
		                  "AND applied_at <= now()",
		                  2, params),
		        1, "migration %s recorded", pond_migrations[i].name);
	}
	PQfinish(conn);
}

Test(migrate, migrations_are_listed_in_ascending_order)
{
	cr_assert_gt(pond_migrations_count, 0);
	cr_assert_eq(pond_migrations[0].version, 1);
	for (int i = 1; i < pond_migrations_count; i++) {
		cr_assert_gt(pond_migrations[i].version,
		             pond_migrations[i - 1].version);
	}
}

Test(migrate, creates_a_head_row_per_stream_and_partition)
{
	char dsn[POND_TEST_DSN_LEN];
	PGconn *conn = fresh_db(dsn, sizeof(dsn));
	uint32_t nparts = 0;

	cr_assert_eq(pond_migrate(conn, 5, NULL), 0);
	cr_assert_eq(
	        query_int(conn, "SELECT count(*) FROM stream_heads", 0, NULL),
	        3 * 5);
	for (size_t s = 0; s < 3; s++) {
		const char *params[] = {streams[s]};
		cr_assert_eq(query_int(conn,
		                       "SELECT count(*) FROM stream_heads "
		                       "WHERE stream = $1 AND partition "
		                       "BETWEEN 0 AND 4 "
		                       "AND head = 0",
		                       1, params),
		             5, "stream %s", streams[s]);
		cr_assert_eq(pond_stream_partitions(conn, streams[s], &nparts),
		             0);
		cr_assert_eq(nparts, 5);
	}
	cr_assert_eq(query_int(conn,
	                       "SELECT value::int FROM pond_settings "
	                       "WHERE key = 'partitions'",
	                       0, NULL),
	             5);
	PQfinish(conn);
}

Test(migrate, refuses_a_different_partition_count)
{
	char dsn[POND_TEST_DSN_LEN];
	PGconn *conn = fresh_db(dsn, sizeof(dsn));
	int applied = -1;

	cr_assert_eq(pond_migrate(conn, 4, NULL), 0);
	/* Heads advance in use; a refused migrate must not touch them. */
	pond_test_sql_exec(dsn, "UPDATE stream_heads SET head = 7");

	cr_assert_eq(pond_migrate(conn, 8, &applied), POND_EINVAL);
	cr_assert_eq(applied, 0);
	cr_assert_eq(pond_migrate(conn, 1, NULL), POND_EINVAL);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT value::int FROM "
	                                    "pond_settings WHERE key = "
	                                    "'partitions'"),
	             4, "the stored value wins");
	cr_assert_eq(pond_test_sql_int(dsn,
	                               "SELECT count(*) FROM stream_heads "
	                               "WHERE head = 7"),
	             3 * 4);
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM stream_heads"),
	        3 * 4);
	cr_assert_eq(pond_migrate(conn, 4, NULL), 0, "the same count is fine");
	cr_assert_eq(pond_test_sql_int(dsn,
	                               "SELECT count(*) FROM stream_heads "
	                               "WHERE head = 7"),
	             3 * 4, "and leaves the heads alone");
	PQfinish(conn);
}

Test(migrate, refuses_partition_counts_out_of_range)
{
	char dsn[POND_TEST_DSN_LEN];
	PGconn *conn = fresh_db(dsn, sizeof(dsn));
	int applied = -1;

	cr_assert_eq(pond_migrate(conn, 0, &applied), POND_EINVAL);
	cr_assert_eq(applied, 0);
	cr_assert_eq(pond_migrate(conn, -3, NULL), POND_EINVAL);
	cr_assert_eq(pond_migrate(conn, POND_MAX_PARTITIONS + 1, NULL),
	             POND_EINVAL);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT to_regclass("
	                                    "'schema_migrations') IS NULL"),
	             1, "nothing was done");
	cr_assert_eq(pond_migrate(conn, POND_MAX_PARTITIONS, NULL), 0);
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM stream_heads"),
	        3 * POND_MAX_PARTITIONS);
	PQfinish(conn);
}

/* --- racing migrators ------------------------------------------------------
 */

typedef struct racer {
	const char *dsn;
	pthread_barrier_t *start;
	int nparts;
	int rv;
	int applied;
} racer;

static void *
racer_main(void *arg)
{
	racer *r = arg;
	PGconn *conn = NULL;

	r->rv = pond_pq_connect(&conn, r->dsn, "test-migrate");
	pthread_barrier_wait(r->start);
	if (r->rv == 0) {
		r->rv = pond_migrate(conn, r->nparts, &r->applied);
		PQfinish(conn);
	}
	return (NULL);
}

/* race runs NRACERS migrators at once on a fresh database, racer i asking
 * for nparts[i]. */
static void
race(char *dsn, size_t len, const int *nparts, racer *racers)
{
	pthread_t threads[NRACERS];
	pthread_barrier_t start;

	pond_test_require_pg();
	pond_test_db_create(dsn, len);
	cr_assert_eq(pthread_barrier_init(&start, NULL, NRACERS), 0);
	for (int i = 0; i < NRACERS; i++) {
		racers[i] = (racer){.dsn = dsn,
		                    .start = &start,
		                    .nparts = nparts[i],
		                    .rv = -1,
		                    .applied = -1};
		cr_assert_eq(pthread_create(&threads[i], NULL, racer_main,
		                            &racers[i]),
		             0);
	}
	for (int i = 0; i < NRACERS; i++) {
		pthread_join(threads[i], NULL);
	}
	pthread_barrier_destroy(&start);
}

Test(migrate, concurrent_migrators_apply_each_migration_once)
{
	static const int nparts[NRACERS] = {6, 6, 6, 6};
	racer racers[NRACERS];

	/* Several rounds: a lost race shows up only now and then. */
	for (int round = 0; round < 3; round++) {
		char dsn[POND_TEST_DSN_LEN];
		int total = 0;
		race(dsn, sizeof(dsn), nparts, racers);
		for (int i = 0; i < NRACERS; i++) {
			cr_assert_eq(racers[i].rv, 0, "racer %d: %s", i,
			             pond_strerror(racers[i].rv));
			total += racers[i].applied;
		}
		cr_assert_eq(
		        total, pond_migrations_count,
		        "between them the racers applied each migration once");
		cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM "
		                                    "schema_migrations"),
		             pond_migrations_count);
		cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM "
		                                    "stream_heads"),
		             3 * 6);
		pond_test_db_drop(dsn);
	}
}

Test(migrate, concurrent_first_migrators_agree_on_one_count)
{
	static const int nparts[NRACERS] = {4, 8, 4, 8};
	racer racers[NRACERS];
	char dsn[POND_TEST_DSN_LEN];

	race(dsn, sizeof(dsn), nparts, racers);
	long long stored =
	        pond_test_sql_int(dsn, "SELECT value::int FROM pond_settings "
	                               "WHERE key = 'partitions'");
	cr_assert(stored == 4 || stored == 8, "stored %lld", stored);
	for (int i = 0; i < NRACERS; i++) {
		int want = racers[i].nparts == stored ? 0 : POND_EINVAL;
		cr_assert_eq(racers[i].rv, want, "racer %d asked for %d: %s",
		             i, racers[i].nparts, pond_strerror(racers[i].rv));
	}
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT count(*) FROM "
	                                    "stream_heads"),
	             3 * stored);
	cr_assert_eq(pond_test_sql_int(dsn, "SELECT max(partition) + 1 FROM "
	                                    "stream_heads"),
	             stored);
}
