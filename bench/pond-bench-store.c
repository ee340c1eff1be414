/*
 * pond-bench-store.c - the anchors of the ingest benchmark: the same events
 * written straight into PostgreSQL, with no service in between.
 *
 *   --mode copy  binary COPY of the rows ingest would write into a table
 *                shaped like `events` (same columns, PK (partition, seq),
 *                index (customer_key, occurred_at)): the store's ceiling.
 *   --mode pgq   PgQ's pgq.insert_event for each event (type, the event's
 *                JSON as data, customer_key as extra1): a widely used
 *                queue in the same database.
 *
 * Each client has its own connection and writes --batch events per
 * transaction (one statement each, so one commit and one WAL flush per
 * batch, like ingest). Rows are built before the clock starts.
 *
 * Prints: events= seconds= rate= errors= p50_ms= p99_ms= max_ms=
 */
#include <endian.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "db.h"
#include "pbjson.h"
#include "pgcopy.h"
#include "stream.h"

typedef struct request {
	pond_copybuf *copy; /* COPY: the rows, ready to send */
	char *a, *b, *c;    /* PgQ: three array literals */
} request;

typedef struct client {
	bench_work w; /* requests: struct request */
	size_t errors;
} client;

static long long opt_clients = 4, opt_events = 100000, opt_batch = 500;
static long long opt_customers = 100000, opt_partitions = 16;
static long long opt_seq_base = 0;
static const char *opt_dsn = NULL, *opt_mode = "copy", *opt_run = "run";
static const char *opt_table = "bench_copy", *opt_queue = "bench";

/* --- COPY rows
 * ---------------------------------------------------------------
 */

/* copy_row appends the row ingest would store for e, in COPY binary. */
static void
copy_row(pond_copybuf *b, bench_event *e, int64_t seq, pond_time received)
{
	const Pond__Event *ev = &e->ev;
	size_t plen = pond__event__get_packed_size(ev);
	uint8_t payload[4096];

	if (plen > sizeof(payload)) {
		bench_die("event too large");
	}
	pond__event__pack(ev, payload);
	pond_copy_row(b, 9);
	pond_copy_int4(b, (int32_t)pond_partition_of(
	                          ev->customer_key, (uint32_t)opt_partitions));
	pond_copy_int8(b, seq);
	pond_copy_text(b, ev->customer_key);
	pond_copy_int8(b, 1); /* publisher_id */
	pond_copy_text(b, ev->event_id);
	pond_copy_text(b, e->type);
	pond_copy_timestamptz(b, pond_time_from_parts(ev->occurred_at->seconds,
	                                              ev->occurred_at->nanos));
	pond_copy_timestamptz(b, received);
	pond_copy_bytes(b, payload, plen);
}

static void
copy_request(void *req, unsigned c, uint64_t first, size_t n, int64_t now)
{
	pond_copybuf *b = calloc(1, sizeof(*b));
	bench_event e;

	if (b == NULL) {
		bench_die("out of memory");
	}
	pond_copy_init(b);
	for (size_t i = 0; i < n; i++) {
		bench_event_fill(&e, opt_run, c, first + i,
		                 (uint32_t)opt_customers, now);
		/* Seqs only need to be unique per partition here: the
		 * ceiling takes no stream_heads lock. */
		copy_row(b, &e,
		         opt_seq_base + (int64_t)(first + i) +
		                 (int64_t)c * (INT64_C(1) << 36),
		         pond_time_from_parts(now, 0));
	}
	pond_copy_finish(b);
	if (b->failed) {
		bench_die("out of memory");
	}
	*(request *)req = (request){.copy = b};
}

static int
copy_send(PGconn *conn, const request *r)
{
	char sql[256];

	/* The table name comes from the command line of this benchmark. */
	snprintf(sql, sizeof(sql),
	         "COPY %s (partition, seq, customer_key, publisher_id, "
	         "event_id, type, occurred_at, received_at, payload) FROM "
	         "STDIN (FORMAT binary)",
	         opt_table);
	return (pond_copy_send(conn, sql, r->copy) == 0 ? 0 : -1);
}

/* --- PgQ -------------------------------------------------------------------
 */

static void
pgq_request(void *req, unsigned c, uint64_t first, size_t n, int64_t now)
{
	const char **types = calloc(n, sizeof(char *));
	const char **datas = calloc(n, sizeof(char *));
	const char **custs = calloc(n, sizeof(char *));
	bench_event *evs = calloc(n, sizeof(*evs));
	request *r = req;

	if (types == NULL || datas == NULL || custs == NULL || evs == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *j;
		bench_event_fill(&evs[i], opt_run, c, first + i,
		                 (uint32_t)opt_customers, now);
		j = pond_pbjson_encode(&evs[i].ev.base, false);
		if (j == NULL ||
		    (datas[i] = json_dumps(j, JSON_COMPACT)) == NULL) {
			bench_die("cannot encode an event as JSON");
		}
		json_decref(j);
		types[i] = evs[i].type;
		custs[i] = evs[i].ev.customer_key;
	}
	r->a = pond_pq_text_array(types, n);
	r->b = pond_pq_text_array(datas, n);
	r->c = pond_pq_text_array(custs, n);
	if (r->a == NULL || r->b == NULL || r->c == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		free((char *)datas[i]);
	}
	free(types);
	free(datas);
	free(custs);
	free(evs);
}

static void
free_request(void *req)
{
	request *r = req;

	if (r->copy != NULL) {
		pond_copy_free(r->copy);
		free(r->copy);
	}
	free(r->a);
	free(r->b);
	free(r->c);
}

static int
pgq_send(PGconn *conn, const request *r)
{
	const char *params[] = {opt_queue, r->a, r->b, r->c};
	PGresult *res = PQexecParams(conn,
	                             "SELECT count(pgq.insert_event($1, t, d, "
	                             "c, NULL, NULL, NULL)) "
	                             "FROM unnest($2::text[], $3::text[], "
	                             "$4::text[]) AS x(t, d, c)",
	                             4, NULL, params, NULL, NULL, 0);
	int rv = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;

	if (rv != 0) {
		fprintf(stderr, "pgq: %s", PQerrorMessage(conn));
	}
	PQclear(res);
	return (rv);
}

/* --- clients ---------------------------------------------------------------
 */

static bool
is_copy(void)
{
	return (strcmp(opt_mode, "copy") == 0);
}

static void *
client_main(void *arg)
{
	client *cl = arg;
	PGconn *conn = PQconnectdb(opt_dsn);
	bool ok = PQstatus(conn) == CONNECTION_OK;

	if (!ok) {
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
		cl->errors++;
	}
	const request *reqs = cl->w.reqs;

	bench_clients_ready();
	for (size_t i = 0; ok && i < cl->w.nreqs; i++) {
		double t0 = bench_clock();
		int rv = is_copy() ? copy_send(conn, &reqs[i])
		                   : pgq_send(conn, &reqs[i]);
		cl->w.latency[i] = bench_clock() - t0;
		if (rv != 0) {
			cl->errors++;
			ok = false;
		}
	}
	PQfinish(conn);
	return (NULL);
}

static void
report(client *cls, unsigned n, double secs)
{
	size_t events = 0, errors = 0;

	for (unsigned i = 0; i < n; i++) {
		events += cls[i].w.events;
		errors += cls[i].errors;
	}
	printf("events=%zu seconds=%.3f rate=%.0f errors=%zu ", events, secs,
	       (double)events / secs, errors);
	bench_print_latencies(cls, n, sizeof(cls[0]));
}

int
main(int argc, char **argv)
{
	const bench_opt opts[] = {
	        {"dsn", false, &opt_dsn, "libpq connection string (POND_DSN)"},
	        {"mode", false, &opt_mode, "copy or pgq"},
	        {"clients", true, &opt_clients, "concurrent connections (4)"},
	        {"events", true, &opt_events, "events in all (100000)"},
	        {"batch", true, &opt_batch, "events per transaction (500)"},
	        {"customers", true, &opt_customers, "customer pool (100000)"},
	        {"partitions", true, &opt_partitions,
	         "stream partitions (16)"},
	        {"run", false, &opt_run, "event id prefix, distinct per run"},
	        {"seq-base", true, &opt_seq_base, "first seq (copy)"},
	        {"table", false, &opt_table, "COPY target (bench_copy)"},
	        {"queue", false, &opt_queue, "PgQ queue (bench)"},
	};
	client cls[BENCH_MAX_CLIENTS];
	unsigned n;

	bench_parse(argc, argv,
	            "COPY and PgQ anchors of the ingest benchmark.", opts,
	            sizeof(opts) / sizeof(opts[0]));
	if (opt_dsn == NULL) {
		opt_dsn = getenv("POND_DSN");
	}
	if (opt_dsn == NULL || opt_clients < 1 ||
	    opt_clients > BENCH_MAX_CLIENTS || opt_batch < 1 ||
	    opt_events < 1 || opt_partitions < 1 ||
	    (!is_copy() && strcmp(opt_mode, "pgq") != 0)) {
		bench_die("need a dsn, --mode copy|pgq, 1..%d clients",
		          BENCH_MAX_CLIENTS);
	}
	n = (unsigned)opt_clients;
	bench_prepare(cls, n, sizeof(cls[0]), (size_t)opt_events,
	              (size_t)opt_batch, sizeof(request),
	              is_copy() ? copy_request : pgq_request);
	report(cls, n, bench_clients(n, client_main, cls, sizeof(cls[0])));
	bench_release(cls, n, sizeof(cls[0]), free_request);
	return (0);
}
