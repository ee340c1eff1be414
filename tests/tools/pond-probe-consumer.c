/*
 * pond-probe-consumer.c - a stream consumer for the stream tests.
 *
 * It consumes one stream through the common consumer and records every
 * record it applies in probe_applied, in the same transaction as the cursor
 * advance. The tests kill it at random moments and then check, from
 * probe_applied alone, that each record was applied exactly once and in seq
 * order per partition. It is a real service (config, /healthz, SIGTERM), so
 * it also exercises the shared service skeleton.
 */
#include <inttypes.h>
#include <stdio.h>

#include "consumer.h"
#include "log.h"
#include "service.h"

typedef struct probe_config {
	char *name;
	char *stream;
	char *table;
	char *sub_urls;
	int64_t batch;
	int64_t poll_ms;
	int64_t rebalance_ms;
	int64_t apply_delay_us;
} probe_config;

static probe_config conf;
static pond_consumer *consumer;
static pond_consumer_config cconf;

static const pond_config_var probe_vars[] = {
        POND_CONF_STR("POND_PROBE_NAME", probe_config, name, "probe",
                      "consumer name"),
        POND_CONF_STR("POND_PROBE_STREAM", probe_config, stream, "probe",
                      "stream to consume"),
        POND_CONF_STR("POND_PROBE_TABLE", probe_config, table, "probe_stream",
                      "stream table"),
        POND_CONF_STR("POND_PROBE_SUB_URLS", probe_config, sub_urls, "",
                      "PUB URLs announcing the stream"),
        POND_CONF_INT("POND_PROBE_BATCH", probe_config, batch, "50", 1, 10000,
                      "records per transaction"),
        POND_CONF_INT("POND_PROBE_POLL_MS", probe_config, poll_ms, "200", 1,
                      60000, "quiet spell before reading the table"),
        POND_CONF_INT("POND_PROBE_REBALANCE_MS", probe_config, rebalance_ms,
                      "300", 1, 60000, "ownership check period"),
        POND_CONF_INT("POND_PROBE_APPLY_DELAY_US", probe_config,
                      apply_delay_us, "0", 0, 1000000,
                      "sleep inside each apply, to widen the kill window"),
};

static int
probe_apply(PGconn *conn, const pond_record *recs, size_t n, void *arg)
{
	char part[16], seq[24], len[24];
	const char *params[] = {conf.name, part, seq, len};
	int rv;

	(void)arg;
	for (size_t i = 0; i < n; i++) {
		snprintf(part, sizeof(part), "%" PRIu32, recs[i].partition);
		snprintf(seq, sizeof(seq), "%" PRId64, recs[i].seq);
		snprintf(len, sizeof(len), "%zu", recs[i].len);
		if ((rv = pond_pq_query(conn, NULL,
		                        "INSERT INTO probe_applied (consumer, "
		                        "partition, seq, "
		                        "payload_len) VALUES ($1, $2, $3, $4)",
		                        4, params)) != 0) {
			return (rv);
		}
	}
	if (conf.apply_delay_us > 0) {
		char us[24];
		const char *p[] = {us};
		snprintf(us, sizeof(us), "%f",
		         (double)conf.apply_delay_us / 1e6);
		return (pond_pq_query(conn, NULL, "SELECT pg_sleep($1)", 1,
		                      p));
	}
	return (POND_OK);
}

static int
probe_start(pond_service *svc)
{
	cconf = (pond_consumer_config){
	        .name = conf.name,
	        .stream = conf.stream,
	        .table = conf.table,
	        .dsn = svc->conf.dsn,
	        .sub_urls = conf.sub_urls,
	        .batch = (uint32_t)conf.batch,
	        .poll_ms = (int)conf.poll_ms,
	        .rebalance_ms = (int)conf.rebalance_ms,
	        .apply = probe_apply,
	};
	return (pond_consumer_start(&consumer, svc->loop, svc->bus, svc->db,
	                            svc->metrics, &cconf));
}

static void
probe_stopped(void *arg)
{
	pond_service_stopped(arg);
}

static void
probe_stop(pond_service *svc)
{
	pond_consumer_stop(consumer, probe_stopped, svc);
}

static bool
probe_healthy(pond_service *svc, char *why, size_t len)
{
	(void)svc;
	if (pond_consumer_owned(consumer) == 0) {
		snprintf(why, len, "owns no partition yet");
		return (false);
	}
	return (true);
}

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "probe-consumer",
	        .summary =
	                "Test consumer: records every applied stream record.",
	        .http_port = 0,
	        .db_conns = 2,
	        .vars = probe_vars,
	        .nvars = sizeof(probe_vars) / sizeof(probe_vars[0]),
	        .conf = &conf,
	        .start = probe_start,
	        .stop = probe_stop,
	        .healthy = probe_healthy,
	};

	return (pond_service_main(&def, argc, argv));
}
