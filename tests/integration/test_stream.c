/*
 * test_stream.c - the stream guarantee, against real PostgreSQL and NNG.
 *
 * - producers: many writers on the same partitions give gap-free seqs that
 *   become visible as a prefix (a reader never sees seq n+1 without n), also
 *   when some writers roll back after reserving;
 * - consumer: a probe consumer killed with SIGKILL at random moments and
 *   restarted applies every record exactly once, in seq order, while some
 *   announcements are never sent (so it must find them in the table);
 * - ownership: two instances split the partitions; when one dies the other
 *   takes its partitions over.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "consumer.h"
#include "db.h"
#include "harness.h"

#define NPARTS 8

static const char *probe_schema =
        "CREATE TABLE probe_stream (partition int NOT NULL, seq bigint NOT "
        "NULL,"
        " payload bytea NOT NULL, PRIMARY KEY (partition, seq));"
        "CREATE TABLE probe_applied (applied_order bigserial PRIMARY KEY,"
        " consumer text NOT NULL, partition int NOT NULL, seq bigint NOT NULL,"
        " payload_len int NOT NULL);"
        "INSERT INTO stream_heads (stream, partition)"
        " SELECT 'probe', p FROM generate_series(0, 7) p;";

static void
probe_db(char *dsn, size_t len)
{
	pond_test_require_pg();
	pond_test_db_create_migrated(dsn, len, NPARTS);
	pond_test_sql_exec(dsn, probe_schema);
}

Test(stream, partition_of_is_fnv1a)
{
	/* FNV-1a 32: offset basis 2166136261, prime 16777619. "a" hashes to
	 * 0xe40c292c (the published test vector). */
	cr_assert_eq(pond_partition_of("", 1u << 31),
	             2166136261u % (1u << 31));
	cr_assert_eq(pond_partition_of("a", 0xffffffffu), 0xe40c292cu);
	cr_assert_eq(pond_partition_of("a", 16), 0xe40c292cu % 16);
	cr_assert_eq(pond_partition_of("anything", 0), 0);
}

/* --- producers --------------------------------------------------------------
 */

typedef struct producer_arg {
	const char *dsn;
	int id;
	int txns;
	int records;    /* out: records committed */
	pond_pub *pub;  /* announce after commit when set */
	int skip_every; /* do not announce every k-th record (0: never skip) */
} producer_arg;

/* produce_one writes one transaction of 1..6 records over up to three
 * partitions; every rollback_every-th transaction rolls back instead. */
static int
produce_one(PGconn *conn, producer_arg *a, unsigned *seed, bool rollback)
{
	uint32_t counts[NPARTS] = {0};
	int64_t first[NPARTS] = {0};
	int n = 1 + (int)(rand_r(seed) % 6);
	uint32_t parts[6];
	char p[16], s[24], payload[64];

	for (int i = 0; i < n; i++) {
		parts[i] = rand_r(seed) % 3 + (uint32_t)(a->id % 3) * 2;
		counts[parts[i]]++;
	}
	cr_assert_eq(pond_pq_exec(conn, "BEGIN"), 0);
	cr_assert_eq(pond_stream_reserve(conn, "probe", counts, NPARTS, first),
	             0);
	int64_t next[NPARTS];
	memcpy(next, first, sizeof(next));
	int64_t seqs[6];
	for (int i = 0; i < n; i++) {
		seqs[i] = next[parts[i]]++;
		snprintf(p, sizeof(p), "%u", parts[i]);
		snprintf(s, sizeof(s), "%" PRId64, seqs[i]);
		snprintf(payload, sizeof(payload), "w%d-%d", a->id, i);
		const char *params[] = {p, s, payload};
		cr_assert_eq(
		        pond_pq_query(
		                conn, NULL,
		                "INSERT INTO probe_stream VALUES ($1, $2, "
		                "convert_to($3, 'UTF8'))",
		                3, params),
		        0);
	}
	if (rollback) {
		cr_assert_eq(pond_pq_exec(conn, "ROLLBACK"), 0);
		return (0);
	}
	cr_assert_eq(pond_pq_exec(conn, "COMMIT"), 0);
	for (int i = 0; a->pub != NULL && i < n; i++) {
		if (a->skip_every > 0 && rand_r(seed) % a->skip_every == 0) {
			continue; /* a lost announcement */
		}
		snprintf(payload, sizeof(payload), "w%d-%d", a->id, i);
		pond_stream_announce(a->pub, "probe", parts[i], seqs[i],
		                     payload, strlen(payload));
	}
	return (n);
}

static void *
producer_thread(void *arg)
{
	producer_arg *a = arg;
	unsigned seed = (unsigned)a->id * 7919u + 1;
	PGconn *conn;

	cr_assert_eq(pond_pq_connect(&conn, a->dsn, "test-producer"), 0);
	for (int t = 0; t < a->txns; t++) {
		a->records += produce_one(conn, a, &seed, t % 7 == 3);
		if (a->pub != NULL) {
			/* Spread the writes over a few seconds, so the
			 * consumer is killed while records keep arriving. */
			usleep(rand_r(&seed) % 30000);
		}
	}
	PQfinish(conn);
	return (NULL);
}

typedef struct reader_arg {
	const char *dsn;
	volatile bool stop;
	int snapshots;
	int violations;
} reader_arg;

/* reader_thread checks, snapshot after snapshot, that each partition's
 * visible seqs are exactly 1..k: no reader can skip past a gap. */
static void *
reader_thread(void *arg)
{
	reader_arg *r = arg;
	PGconn *conn;
	PGresult *res;

	cr_assert_eq(pond_pq_connect(&conn, r->dsn, "test-reader"), 0);
	while (!r->stop) {
		cr_assert_eq(
		        pond_pq_query(conn, &res,
		                      "SELECT partition, count(*), max(seq) "
		                      "FROM probe_stream GROUP BY partition",
		                      0, NULL),
		        0);
		for (int i = 0; i < PQntuples(res); i++) {
			if (strcmp(PQgetvalue(res, i, 1),
			           PQgetvalue(res, i, 2)) != 0) {
				r->violations++;
			}
		}
		PQclear(res);
		r->snapshots++;
	}
	PQfinish(conn);
	return (NULL);
}

Test(stream, concurrent_producers_gap_free_prefix, .timeout = 120)
{
	char dsn[512];
	enum { WRITERS = 8, TXNS = 150 };
	producer_arg args[WRITERS];
	pthread_t threads[WRITERS], reader;
	reader_arg r = {0};
	int total = 0;

	probe_db(dsn, sizeof(dsn));
	r.dsn = dsn;
	pthread_create(&reader, NULL, reader_thread, &r);
	for (int i = 0; i < WRITERS; i++) {
		args[i] = (producer_arg){.dsn = dsn, .id = i, .txns = TXNS};
		pthread_create(&threads[i], NULL, producer_thread, &args[i]);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(threads[i], NULL);
		total += args[i].records;
	}
	r.stop = true;
	pthread_join(reader, NULL);

	cr_assert_gt(r.snapshots, 0);
	cr_assert_eq(r.violations, 0, "a reader saw a gap %d times",
	             r.violations);
	/* Every committed record is there once, seqs are 1..head in every
	 * partition, and the heads count exactly the committed records (the
	 * rolled-back reservations left no hole). */
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM probe_stream"),
	        total);
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM (SELECT partition, count(*) c, "
	                "min(seq) lo, max(seq) hi FROM probe_stream GROUP BY "
	                "partition) x WHERE lo <> 1 OR hi <> c"),
	        0);
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM stream_heads h LEFT JOIN "
	                "(SELECT partition, count(*) c FROM probe_stream "
	                "GROUP BY partition) s USING (partition) WHERE "
	                "h.stream = 'probe' AND h.head <> coalesce(s.c, 0)"),
	        0);
}

/* --- consumer
 * ------------------------------------------------------------------ */

static pond_test_proc *
spawn_probe(const char *dsn, const char *pub_url, uint16_t port,
            const char *log, const char *delay_us)
{
	char e_dsn[600], e_sub[128], e_port[32], e_delay[64];
	snprintf(e_dsn, sizeof(e_dsn), "POND_DSN=%s", dsn);
	snprintf(e_sub, sizeof(e_sub), "POND_PROBE_SUB_URLS=%s", pub_url);
	snprintf(e_port, sizeof(e_port), "POND_HTTP_PORT=%u", port);
	snprintf(e_delay, sizeof(e_delay), "POND_PROBE_APPLY_DELAY_US=%s",
	         delay_us);
	const char *env[] = {e_dsn,
	                     e_sub,
	                     e_port,
	                     e_delay,
	                     "POND_HTTP_ADDR=127.0.0.1",
	                     "POND_LOG_LEVEL=debug",
	                     NULL};
	return (pond_test_spawn("pond-probe-consumer", env, log));
}

/* check_exactly_once asserts probe_applied holds each of the n records of
 * probe_stream once, applied in seq order within each partition. */
static void
check_exactly_once(const char *dsn, long long n)
{
	cr_assert_eq(
	        pond_test_sql_int(dsn, "SELECT count(*) FROM probe_applied"),
	        n, "applied %lld, expected %lld",
	        pond_test_sql_int(dsn, "SELECT count(*) FROM probe_applied"),
	        n);
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM (SELECT DISTINCT partition, seq "
	                "FROM probe_applied) x"),
	        n);
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM probe_stream s WHERE NOT EXISTS "
	                "(SELECT 1 FROM probe_applied a WHERE a.partition = "
	                "s.partition AND a.seq = s.seq)"),
	        0);
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM (SELECT seq, lag(seq) OVER "
	                "(PARTITION BY partition ORDER BY applied_order) prev "
	                "FROM probe_applied) x WHERE prev IS NOT NULL AND "
	                "seq <> prev + 1"),
	        0, "records applied out of order");
}

/* dump_sessions prints who holds what, for a failure to explain itself. */
static void
dump_sessions(const char *dsn)
{
	char *text = pond_test_sql_text(
	        dsn,
	        "SELECT string_agg(format('pid=%s app=%s state=%s wait=%s/%s "
	        "locks=%s query=%s', a.pid, a.application_name, a.state, "
	        "a.wait_event_type, a.wait_event, (SELECT "
	        "string_agg(objid::text, "
	        "',') FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = "
	        "'advisory'), left(a.query, 80)), E'\n') FROM "
	        "pg_stat_activity a "
	        "WHERE a.datname = current_database()");
	fprintf(stderr, "sessions:\n%s\n", text != NULL ? text : "(none)");
	free(text);
}

static void
wait_applied(const char *dsn, long long n, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 100) {
		if (pond_test_sql_int(
		            dsn, "SELECT count(*) FROM probe_applied") >= n) {
			return;
		}
		usleep(100 * 1000);
	}
	dump_sessions(dsn);
}

Test(stream, consumer_sigkill_exactly_once, .timeout = 240)
{
	char dsn[512], pub_url[64];
	pond_pub *pub;
	enum { WRITERS = 3, TXNS = 250 };
	producer_arg args[WRITERS];
	pthread_t threads[WRITERS];
	unsigned seed = (unsigned)getpid();
	long long total = 0;
	int status;

	probe_db(dsn, sizeof(dsn));
	snprintf(pub_url, sizeof(pub_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	cr_assert_eq(pond_pub_listen(&pub, pub_url), 0);
	for (int i = 0; i < WRITERS; i++) {
		/* One announcement in 10 never sent: the consumer must find
		 * those records in the table. */
		args[i] = (producer_arg){.dsn = dsn,
		                         .id = i,
		                         .txns = TXNS,
		                         .pub = pub,
		                         .skip_every = 10};
		pthread_create(&threads[i], NULL, producer_thread, &args[i]);
	}
	for (int round = 0; round < 8; round++) {
		uint16_t port = pond_test_free_port();
		pond_test_proc *p =
		        spawn_probe(dsn, pub_url, port, "probe-kill", "2000");
		usleep((useconds_t)(150 + rand_r(&seed) % 500) * 1000);
		pond_test_kill(p, SIGKILL);
		cr_assert_eq(pond_test_wait_exit(p, 10000, &status), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(threads[i], NULL);
		total += args[i].records;
	}
	uint16_t port = pond_test_free_port();
	pond_test_proc *p = spawn_probe(dsn, pub_url, port, "probe-kill", "0");
	pond_test_wait_ready(p, port, "/healthz", 20000);
	wait_applied(dsn, total, 60000);
	cr_assert_eq(pond_test_stop(p), 0, "probe did not exit cleanly");
	check_exactly_once(dsn, total);
	/* The cursors stand at the heads. */
	cr_assert_eq(
	        pond_test_sql_int(
	                dsn,
	                "SELECT count(*) FROM stream_heads h JOIN "
	                "consumer_cursors c ON c.stream = h.stream AND "
	                "c.partition = h.partition WHERE h.stream = 'probe' "
	                "AND c.seq = h.head"),
	        NPARTS);
	pond_pub_close(pub);
}

/* owned_partitions reads pond_consumer_owned_partitions from /metrics. */
static int
owned_partitions(uint16_t port)
{
	pond_test_http_resp resp;
	int owned = -1;

	if (pond_test_http("GET", port, "/metrics", NULL, NULL, 0, &resp) !=
	    0) {
		return (-1);
	}
	const char *line =
	        strstr(resp.body, "\npond_consumer_owned_partitions{");
	if (line != NULL && (line = strchr(line, '}')) != NULL) {
		owned = atoi(line + 1);
	}
	pond_test_http_resp_free(&resp);
	return (owned);
}

static bool
wait_owned(uint16_t port, int want, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 100) {
		if (owned_partitions(port) == want) {
			return (true);
		}
		usleep(100 * 1000);
	}
	return (false);
}

Test(stream, two_consumers_split_and_take_over, .timeout = 180)
{
	char dsn[512], pub_url[64];
	pond_pub *pub;
	producer_arg a;
	pthread_t producer;
	uint16_t port1 = pond_test_free_port(), port2 = pond_test_free_port();
	int status;

	probe_db(dsn, sizeof(dsn));
	snprintf(pub_url, sizeof(pub_url), "tcp://127.0.0.1:%u",
	         pond_test_free_port());
	cr_assert_eq(pond_pub_listen(&pub, pub_url), 0);
	pond_test_proc *p1 =
	        spawn_probe(dsn, pub_url, port1, "probe-split-1", "0");
	cr_assert(wait_owned(port1, NPARTS, 20000),
	          "a lone consumer should own all %d partitions", NPARTS);
	pond_test_proc *p2 =
	        spawn_probe(dsn, pub_url, port2, "probe-split-2", "0");
	cr_assert(wait_owned(port2, NPARTS / 2, 20000),
	          "the second consumer should take half");
	cr_assert(wait_owned(port1, NPARTS / 2, 20000),
	          "the first consumer should give half back");

	a = (producer_arg){.dsn = dsn, .id = 1, .txns = 300, .pub = pub};
	pthread_create(&producer, NULL, producer_thread, &a);
	usleep(300 * 1000);
	pond_test_kill(p1, SIGKILL);
	cr_assert_eq(pond_test_wait_exit(p1, 10000, &status), 0);
	if (!wait_owned(port2, NPARTS, 20000)) {
		dump_sessions(dsn);
		cr_assert_fail(
		        "the survivor should take over every partition");
	}
	pthread_join(producer, NULL);
	wait_applied(dsn, a.records, 60000);
	pond_test_wait_ready(p2, port2, "/healthz", 20000);
	cr_assert_eq(pond_test_stop(p2), 0);
	check_exactly_once(dsn, a.records);
	pond_pub_close(pub);
}
