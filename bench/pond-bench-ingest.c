/*
 * pond-bench-ingest.c - publishers for the ingest throughput benchmark.
 *
 * Several publishers at once, each on its own REQ socket and thread, send
 * IngestBatch messages of --batch events (distinct event ids per client)
 * to pond-ingest and wait for each ack, as a real publisher does: an ack
 * comes only after COMMIT, so events/s here is committed events/s. Every
 * batch is packed before the clock starts, so the generator spends the
 * two cores' time on sending, not on making events.
 *
 * Prints: events= seconds= rate= accepted= duplicate= rejected= errors=
 * p50_ms= p99_ms= max_ms= (batch round-trip latencies).
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "pond/ingest.pb-c.h"

typedef struct packed {
	uint8_t *data;
	size_t len;
} packed;

typedef struct client {
	bench_work w; /* requests: packed IngestBatches */
	size_t accepted, duplicate, rejected, errors;
} client;

static long long opt_clients = 4, opt_events = 100000, opt_batch = 500;
static long long opt_customers = 100000;
static const char *opt_url = "tcp://127.0.0.1:7400";
static const char *opt_token = NULL;
static const char *opt_run = "run";

/* pack_batch packs events [first, first + n) of client c into one
 * IngestBatch (a bench_build_fn). */
static void
pack_batch(void *req, unsigned c, uint64_t first, size_t n, int64_t now)
{
	packed *p = req;
	bench_event *evs = calloc(n, sizeof(*evs));
	Pond__Event **ptrs = calloc(n, sizeof(*ptrs));
	Pond__IngestBatch b = POND__INGEST_BATCH__INIT;

	if (evs == NULL || ptrs == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		bench_event_fill(&evs[i], opt_run, c, first + i,
		                 (uint32_t)opt_customers, now);
		ptrs[i] = &evs[i].ev;
	}
	b.token = (char *)opt_token;
	b.n_events = n;
	b.events = ptrs;
	p->len = pond__ingest_batch__get_packed_size(&b);
	if ((p->data = malloc(p->len)) == NULL) {
		bench_die("out of memory");
	}
	pond__ingest_batch__pack(&b, p->data);
	free(evs);
	free(ptrs);
}

static void
free_batch(void *req)
{
	free(((packed *)req)->data);
}

/* tally counts the results of one ack. */
static void
tally(client *cl, const Pond__IngestAck *ack)
{
	if (ack->batch_error != NULL) {
		fprintf(stderr, "batch_error %s: %s\n", ack->batch_error->code,
		        ack->batch_error->message);
		cl->errors++;
		return;
	}
	for (size_t i = 0; i < ack->n_results; i++) {
		const char *s = ack->results[i]->status;
		if (strcmp(s, "accepted") == 0) {
			cl->accepted++;
		} else if (strcmp(s, "duplicate") == 0) {
			cl->duplicate++;
		} else {
			cl->rejected++;
		}
	}
}

static int
dial(nng_socket *sock, const char *url)
{
	int rv;

	if ((rv = nng_req0_open(sock)) != 0 ||
	    (rv = nng_socket_set_ms(*sock, NNG_OPT_RECVTIMEO, 120000)) != 0 ||
	    /* A batch is sent once: a resend would be answered
	     * "duplicate" and hide the first answer. */
	    (rv = nng_socket_set_ms(*sock, NNG_OPT_REQ_RESENDTIME,
	                            3600 * 1000)) != 0 ||
	    (rv = nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, 16u << 20)) !=
	            0 ||
	    (rv = nng_dial(*sock, url, NULL, 0)) != 0) {
		fprintf(stderr, "cannot reach %s: %s\n", url,
		        nng_strerror(rv));
	}
	return (rv);
}

static void *
client_main(void *arg)
{
	client *cl = arg;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	const packed *batches = cl->w.reqs;
	int rv = dial(&sock, opt_url);

	bench_clients_ready();
	for (size_t i = 0; rv == 0 && i < cl->w.nreqs; i++) {
		void *reply = NULL;
		size_t rlen = 0;
		double t0 = bench_clock();
		Pond__IngestAck *ack;

		if ((rv = nng_send(sock, batches[i].data, batches[i].len,
		                   0)) != 0 ||
		    (rv = nng_recv(sock, &reply, &rlen, NNG_FLAG_ALLOC)) !=
		            0) {
			fprintf(stderr, "client %u: %s\n", cl->w.index,
			        nng_strerror(rv));
			cl->errors++;
			break;
		}
		cl->w.latency[i] = bench_clock() - t0;
		if ((ack = pond__ingest_ack__unpack(NULL, rlen, reply)) ==
		    NULL) {
			cl->errors++;
		} else {
			tally(cl, ack);
			pond__ingest_ack__free_unpacked(ack, NULL);
		}
		nng_free(reply, rlen);
	}
	nng_close(sock); /* harmless when the open failed */
	return (NULL);
}

static void
report(client *cls, unsigned n, double secs)
{
	size_t acc = 0, dup = 0, rej = 0, err = 0;

	for (unsigned i = 0; i < n; i++) {
		acc += cls[i].accepted;
		dup += cls[i].duplicate;
		rej += cls[i].rejected;
		err += cls[i].errors;
	}
	printf("events=%zu seconds=%.3f rate=%.0f accepted=%zu duplicate=%zu "
	       "rejected=%zu errors=%zu ",
	       acc + dup + rej, secs, (double)acc / secs, acc, dup, rej, err);
	bench_print_latencies(cls, n, sizeof(cls[0]));
}

int
main(int argc, char **argv)
{
	const bench_opt opts[] = {
	        {"url", false, &opt_url, "ingest's NNG address"},
	        {"token", false, &opt_token,
	         "publisher token (or POND_TOKEN)"},
	        {"clients", true, &opt_clients, "concurrent publishers (4)"},
	        {"events", true, &opt_events, "events in all (100000)"},
	        {"batch", true, &opt_batch, "events per batch (500)"},
	        {"customers", true, &opt_customers, "customer pool (100000)"},
	        {"run", false, &opt_run, "event id prefix, distinct per run"},
	};
	client cls[BENCH_MAX_CLIENTS];
	unsigned n;

	bench_parse(argc, argv, "NNG publishers for the ingest benchmark.",
	            opts, sizeof(opts) / sizeof(opts[0]));
	if (opt_token == NULL) {
		opt_token = getenv("POND_TOKEN");
	}
	if (opt_token == NULL || opt_clients < 1 ||
	    opt_clients > BENCH_MAX_CLIENTS || opt_batch < 1 ||
	    opt_batch > 1000 || opt_events < 1) {
		bench_die(
		        "need a token, 1..%d clients, 1..1000 events a batch",
		        BENCH_MAX_CLIENTS);
	}
	n = (unsigned)opt_clients;
	bench_prepare(cls, n, sizeof(cls[0]), (size_t)opt_events,
	              (size_t)opt_batch, sizeof(packed), pack_batch);
	report(cls, n, bench_clients(n, client_main, cls, sizeof(cls[0])));
	bench_release(cls, n, sizeof(cls[0]), free_batch);
	return (0);
}
