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
#include "stream.h"

/* PostgreSQL's binary timestamps count from 2000-01-01. */
#define PG_EPOCH_SEC INT64_C(946684800)

typedef struct request {
	char *a, *b, *c; /* COPY: a is the data; PgQ: three array literals */
	size_t len;
} request;

typedef struct client {
	unsigned index;
	request *reqs;
	size_t nreqs;
	double *latency;
	size_t events, errors;
} client;

static long long opt_clients = 4, opt_events = 100000, opt_batch = 500;
static long long opt_customers = 100000, opt_partitions = 16;
static long long opt_seq_base = 0;
static const char *opt_dsn = NULL, *opt_mode = "copy", *opt_run = "run";
static const char *opt_table = "bench_copy", *opt_queue = "bench";

/* --- COPY rows
 * ---------------------------------------------------------------
 */

typedef struct buf {
	char *data;
	size_t len, cap;
} buf;

static void
put(buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = b->cap ? b->cap * 2 : 65536;
		while (b->cap < b->len + n) {
			b->cap *= 2;
		}
		if ((b->data = realloc(b->data, b->cap)) == NULL) {
			bench_die("out of memory");
		}
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void
put_i16(buf *b, int16_t v)
{
	uint16_t be = htobe16((uint16_t)v);
	put(b, &be, 2);
}

static void
put_i32(buf *b, int32_t v)
{
	uint32_t be = htobe32((uint32_t)v);
	put(b, &be, 4);
}

static void
put_i64_field(buf *b, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);
	put_i32(b, 8);
	put(b, &be, 8);
}

static void
put_bytes_field(buf *b, const void *p, size_t n)
{
	put_i32(b, (int32_t)n);
	put(b, p, n);
}

/* copy_row appends the row ingest would store for e, in COPY binary. */
static void
copy_row(buf *b, bench_event *e, int64_t seq, int64_t received_us)
{
	const Pond__Event *ev = &e->ev;
	size_t plen = pond__event__get_packed_size(ev);
	uint8_t payload[4096];

	if (plen > sizeof(payload)) {
		bench_die("event too large");
	}
	pond__event__pack(ev, payload);
	put_i16(b, 9);
	put_i32(b, 4);
	put_i32(b, (int32_t)pond_partition_of(ev->customer_key,
	                                      (uint32_t)opt_partitions));
	put_i64_field(b, seq);
	put_bytes_field(b, ev->customer_key, strlen(ev->customer_key));
	put_i64_field(b, 1); /* publisher_id */
	put_bytes_field(b, ev->event_id, strlen(ev->event_id));
	put_bytes_field(b, e->type, strlen(e->type));
	put_i64_field(b, (ev->occurred_at->seconds - PG_EPOCH_SEC) * 1000000 +
	                         ev->occurred_at->nanos / 1000);
	put_i64_field(b, received_us);
	put_bytes_field(b, payload, plen);
}

static request
copy_request(unsigned c, uint64_t first, size_t n, int64_t now)
{
	static const char header[] = "PGCOPY\n\377\r\n";
	int64_t received = (now - PG_EPOCH_SEC) * 1000000;
	buf b = {0};
	bench_event e;

	put(&b, header, 11);
	put_i32(&b, 0);
	put_i32(&b, 0);
	for (size_t i = 0; i < n; i++) {
		bench_event_fill(&e, opt_run, c, first + i,
		                 (uint32_t)opt_customers, now);
		/* Seqs only need to be unique per partition here: the
		 * ceiling takes no stream_heads lock. */
		copy_row(&b, &e,
		         opt_seq_base + (int64_t)(first + i) +
		                 (int64_t)c * (INT64_C(1) << 36),
		         received);
	}
	put_i16(&b, -1);
	return ((request){.a = b.data, .len = b.len});
}

static int
copy_send(PGconn *conn, const request *r)
{
	char sql[256];
	PGresult *res;
	int ok;

	snprintf(sql, sizeof(sql),
	         "COPY %s (partition, seq, customer_key, publisher_id, "
	         "event_id, type, occurred_at, received_at, payload) FROM "
	         "STDIN (FORMAT binary)",
	         opt_table);
	res = PQexec(conn, sql);
	ok = PQresultStatus(res) == PGRES_COPY_IN;
	PQclear(res);
	if (!ok || PQputCopyData(conn, r->a, (int)r->len) != 1 ||
	    PQputCopyEnd(conn, NULL) != 1) {
		ok = 0;
	}
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "copy: %s", PQerrorMessage(conn));
			ok = 0;
		}
		PQclear(res);
	}
	return (ok ? 0 : -1);
}

/* --- PgQ -------------------------------------------------------------------
 */

static request
pgq_request(unsigned c, uint64_t first, size_t n, int64_t now)
{
	const char **types = calloc(n, sizeof(char *));
	const char **datas = calloc(n, sizeof(char *));
	const char **custs = calloc(n, sizeof(char *));
	bench_event *evs = calloc(n, sizeof(*evs));
	request r;

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
	r.a = pond_pq_text_array(types, n);
	r.b = pond_pq_text_array(datas, n);
	r.c = pond_pq_text_array(custs, n);
	if (r.a == NULL || r.b == NULL || r.c == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		free((char *)datas[i]);
	}
	free(types);
	free(datas);
	free(custs);
	free(evs);
	return (r);
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

static void
prepare(client *cl, size_t events)
{
	int64_t now = (int64_t)time(NULL);

	cl->nreqs = (events + (size_t)opt_batch - 1) / (size_t)opt_batch;
	cl->reqs = calloc(cl->nreqs, sizeof(*cl->reqs));
	cl->latency = calloc(cl->nreqs, sizeof(*cl->latency));
	if (cl->reqs == NULL || cl->latency == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < cl->nreqs; i++) {
		size_t first = i * (size_t)opt_batch;
		size_t n = events - first < (size_t)opt_batch
		                   ? events - first
		                   : (size_t)opt_batch;
		cl->reqs[i] = is_copy()
		                      ? copy_request(cl->index, first, n, now)
		                      : pgq_request(cl->index, first, n, now);
	}
	cl->events = events;
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
	bench_clients_ready();
	for (size_t i = 0; ok && i < cl->nreqs; i++) {
		double t0 = bench_clock();
		int rv = is_copy() ? copy_send(conn, &cl->reqs[i])
		                   : pgq_send(conn, &cl->reqs[i]);
		cl->latency[i] = bench_clock() - t0;
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
	size_t events = 0, errors = 0, nlat = 0, k = 0;
	double *lat;

	for (unsigned i = 0; i < n; i++) {
		events += cls[i].events;
		errors += cls[i].errors;
		nlat += cls[i].nreqs;
	}
	if ((lat = calloc(nlat + 1, sizeof(*lat))) == NULL) {
		bench_die("out of memory");
	}
	for (unsigned i = 0; i < n; i++) {
		memcpy(lat + k, cls[i].latency, cls[i].nreqs * sizeof(*lat));
		k += cls[i].nreqs;
	}
	printf("events=%zu seconds=%.3f rate=%.0f errors=%zu p50_ms=%.1f "
	       "p99_ms=%.1f max_ms=%.1f\n",
	       events, secs, (double)events / secs, errors,
	       bench_percentile(lat, nlat, 0.5) * 1e3,
	       bench_percentile(lat, nlat, 0.99) * 1e3,
	       bench_percentile(lat, nlat, 1.0) * 1e3);
	free(lat);
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
	for (unsigned i = 0; i < n; i++) {
		cls[i] = (client){.index = i};
		prepare(&cls[i], (size_t)opt_events / n +
		                         (i < (size_t)opt_events % n ? 1 : 0));
	}
	report(cls, n, bench_clients(n, client_main, cls, sizeof(cls[0])));
	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < cls[i].nreqs; k++) {
			free(cls[i].reqs[k].a);
			free(cls[i].reqs[k].b);
			free(cls[i].reqs[k].c);
		}
		free(cls[i].reqs);
		free(cls[i].latency);
	}
	return (0);
}
