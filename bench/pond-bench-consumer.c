/*
 * pond-bench-consumer.c - a consumer of the events stream for the catch-up
 * benchmark.
 *
 * Built like every downstream service (pond_service with the common
 * pond_consumer), so what it measures is the consumer machinery: read a
 * partition's records from the table, apply, advance the cursor in the same
 * transaction, COMMIT. Its apply does what any real consumer must do with
 * each record — unpack the pond.Event — and writes one row per batch
 * (records and bytes per partition into bench_consumed), so a run can be
 * checked for completeness. A real consumer's own writes (profiles, tags,
 * rollups) come on top.
 */
#include <inttypes.h>
#include <stdio.h>

#include "consumer.h"
#include "log.h"
#include "pond/event.pb-c.h"
#include "service.h"

typedef struct bench_consumer_config {
	char *name;
	char *sub_urls;
	int64_t batch;
	int64_t poll_ms;
} bench_consumer_config;

static bench_consumer_config conf;
static pond_consumer *consumer;
static pond_consumer_config cconf;

static const pond_config_var bench_vars[] = {
        POND_CONF_STR("POND_BENCH_CONSUMER", bench_consumer_config, name,
                      "bench", "consumer name"),
        POND_CONF_STR("POND_BENCH_SUB_URLS", bench_consumer_config, sub_urls,
                      "", "PUB URLs announcing the events stream"),
        POND_CONF_INT("POND_BENCH_BATCH", bench_consumer_config, batch, "500",
                      1, 10000, "records per transaction"),
        POND_CONF_INT("POND_BENCH_POLL_MS", bench_consumer_config, poll_ms,
                      "200", 1, 60000, "quiet spell before reading the table"),
};

static int
bench_apply(PGconn *conn, const pond_record *recs, size_t n, void *arg)
{
	char part[16], count[24], bytes[24];
	const char *params[] = {part, count, bytes};
	size_t total = 0;

	(void)arg;
	for (size_t i = 0; i < n; i++) {
		Pond__Event *e = pond__event__unpack(NULL, recs[i].len,
		                                     recs[i].payload);
		if (e == NULL) {
			pond_log_error("bench_undecodable",
			               "partition=%" PRIu32 " seq=%" PRId64,
			               recs[i].partition, recs[i].seq);
			return (POND_EINVAL);
		}
		total += recs[i].len;
		pond__event__free_unpacked(e, NULL);
	}
	snprintf(part, sizeof(part), "%" PRIu32, recs[0].partition);
	snprintf(count, sizeof(count), "%zu", n);
	snprintf(bytes, sizeof(bytes), "%zu", total);
	return (pond_pq_query(
	        conn, NULL,
	        "INSERT INTO bench_consumed (partition, records, bytes) "
	        "VALUES ($1, $2, $3) ON CONFLICT (partition) DO UPDATE SET "
	        "records = bench_consumed.records + excluded.records, "
	        "bytes = bench_consumed.bytes + excluded.bytes",
	        3, params));
}

static int
bench_start(pond_service *svc)
{
	cconf = (pond_consumer_config){
	        .name = conf.name,
	        .stream = "events",
	        .table = "events",
	        .dsn = svc->conf.dsn,
	        .sub_urls = conf.sub_urls,
	        .batch = (uint32_t)conf.batch,
	        .poll_ms = (int)conf.poll_ms,
	        .rebalance_ms = 500,
	        .apply = bench_apply,
	};
	return (pond_consumer_start(&consumer, svc->loop, svc->bus, svc->db,
	                            svc->metrics, &cconf));
}

static void
bench_stopped(void *arg)
{
	pond_service_stopped(arg);
}

static void
bench_stop(pond_service *svc)
{
	pond_consumer_stop(consumer, bench_stopped, svc);
}

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "bench-consumer",
	        .summary = "Benchmark consumer of the events stream: decodes "
	                   "each record and counts it per partition.",
	        .http_port = 0,
	        .db_conns = 4,
	        .vars = bench_vars,
	        .nvars = sizeof(bench_vars) / sizeof(bench_vars[0]),
	        .conf = &conf,
	        .start = bench_start,
	        .stop = bench_stop,
	};

	return (pond_service_main(&def, argc, argv));
}
