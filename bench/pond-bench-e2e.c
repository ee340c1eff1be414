/*
 * pond-bench-e2e.c - end-to-end latency at a steady rate.
 *
 * Publishers send --rate events/s to ingest over NNG (--clients threads,
 * --batch events a request, each batch at its scheduled moment), and note
 * when each event is acked: the ack comes after ingest's COMMIT. Every
 * event is the contact_added of a new customer "RUN-C-N" (event id the
 * same), so that each one makes a tag change (lifecycle:potential goes on)
 * and, when a campaign triggers on contact_added, a touch.
 *
 * Subscribers listen to tagging's PUB (the tag_changes stream) and, if
 * given, the scheduler's (touches). Both announce only after their COMMIT,
 * so the moment an announcement arrives is the moment the record was
 * committed, plus a loopback hop. Latency = first tag change of the event
 * (TagChange.event_id) minus its ack; for touches, the first touch record
 * of the customer (TouchChange.customer_key) minus the ack.
 *
 * Prints one line: events= acked= seconds= rate= tag_changes= tag_p50_ms=
 * tag_p99_ms= tag_max_ms= touches= touch_p50_ms= touch_p99_ms=
 * touch_max_ms= (the touch figures are 0 without --touches-sub).
 */
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "pond/ingest.pb-c.h"
#include "pond/stream.pb-c.h"
#include "pond/tagging.pb-c.h"
#include "pond/touch.pb-c.h"

static long long opt_clients = 4, opt_rate = 5000, opt_seconds = 10;
static long long opt_batch = 50, opt_drain_s = 10;
static const char *opt_url = "tcp://127.0.0.1:7400";
static const char *opt_token = NULL, *opt_run = "e2e";
static const char *opt_tags_sub = NULL, *opt_touches_sub = NULL;

/* Per event (client c, number n at c * per_client + n): when it was acked,
 * when its first tag change and first touch were heard; 0 is "not yet". */
static size_t per_client;
static double *acked_at, *tagged_at, *touched_at;
static atomic_bool publishing_done;

typedef struct client {
	unsigned index;
	size_t sent, acked, errors;
} client;

/* event_index parses "RUN-C-N" into C * per_client + N; -1 if not ours. */
static long
event_index(const char *id)
{
	size_t rl = strlen(opt_run);
	unsigned long c, n;
	char *end;

	if (strncmp(id, opt_run, rl) != 0 || id[rl] != '-') {
		return (-1);
	}
	c = strtoul(id + rl + 1, &end, 10);
	if (*end != '-') {
		return (-1);
	}
	n = strtoul(end + 1, &end, 10);
	if (*end != '\0' || c >= (unsigned long)opt_clients ||
	    n >= per_client) {
		return (-1);
	}
	return ((long)(c * per_client + n));
}

static const char *channels[] = {"package_card", "sms",    "ai_call",
                                 "article",      "douyin", "store_poster",
                                 "referral"};

/* send_batch publishes events [first, first + n) of cl and notes the ack
 * time of each accepted one. */
static int
send_batch(client *cl, nng_socket sock, size_t first, size_t n)
{
	Pond__Event evs[1000], *ptrs[1000];
	Pond__ContactAdded ca[1000];
	Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	char ids[1000][64];
	Pond__IngestBatch b = POND__INGEST_BATCH__INIT;
	uint8_t *buf;
	size_t len, rlen = 0;
	void *reply = NULL;
	Pond__IngestAck *ack;
	struct timespec ts;
	int rv;

	clock_gettime(CLOCK_REALTIME, &ts);
	at.seconds = ts.tv_sec;
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s-%u-%zu", opt_run,
		         cl->index, first + i);
		pond__event__init(&evs[i]);
		pond__contact_added__init(&ca[i]);
		ca[i].channel =
		        (char *)channels[(first + i) % (sizeof(channels) /
		                                        sizeof(channels[0]))];
		evs[i].event_id = ids[i];
		evs[i].customer_key = ids[i];
		evs[i].occurred_at = &at;
		evs[i].body_case = POND__EVENT__BODY_CONTACT_ADDED;
		evs[i].contact_added = &ca[i];
		ptrs[i] = &evs[i];
	}
	b.token = (char *)opt_token;
	b.n_events = n;
	b.events = ptrs;
	len = pond__ingest_batch__get_packed_size(&b);
	if ((buf = malloc(len)) == NULL) {
		bench_die("out of memory");
	}
	pond__ingest_batch__pack(&b, buf);
	rv = nng_send(sock, buf, len, 0);
	free(buf);
	if (rv != 0 ||
	    (rv = nng_recv(sock, &reply, &rlen, NNG_FLAG_ALLOC)) != 0) {
		fprintf(stderr, "client %u: %s\n", cl->index,
		        nng_strerror(rv));
		return (-1);
	}
	double now = bench_clock();
	cl->sent += n;
	if ((ack = pond__ingest_ack__unpack(NULL, rlen, reply)) != NULL &&
	    ack->batch_error == NULL) {
		for (size_t i = 0; i < ack->n_results && i < n; i++) {
			if (strcmp(ack->results[i]->status, "accepted") == 0) {
				acked_at[cl->index * per_client + first + i] =
				        now;
				cl->acked++;
			}
		}
	} else {
		cl->errors++;
	}
	if (ack != NULL) {
		pond__ingest_ack__free_unpacked(ack, NULL);
	}
	nng_free(reply, rlen);
	return (0);
}

static void *
client_main(void *arg)
{
	client *cl = arg;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	double tick =
	        (double)opt_batch * (double)opt_clients / (double)opt_rate;
	int rv;

	if ((rv = nng_req0_open(&sock)) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 60000)) != 0 ||
	    (rv = nng_dial(sock, opt_url, NULL, 0)) != 0) {
		bench_die("cannot reach %s: %s", opt_url, nng_strerror(rv));
	}
	bench_clients_ready();
	/* Batch k leaves at start + k * tick (clients staggered), or at once
	 * when the previous ack came late: a steady offered rate. */
	double start = bench_clock() + tick * cl->index / (double)opt_clients;
	for (size_t k = 0; k * (size_t)opt_batch < per_client; k++) {
		double due = start + (double)k * tick, now = bench_clock();
		size_t first = k * (size_t)opt_batch;
		size_t n = per_client - first < (size_t)opt_batch
		                   ? per_client - first
		                   : (size_t)opt_batch;
		if (due > now) {
			usleep((useconds_t)((due - now) * 1e6));
		}
		if (send_batch(cl, sock, first, n) != 0) {
			cl->errors++;
			break;
		}
	}
	nng_close(sock);
	return (NULL);
}

typedef struct listener {
	const char *url;
	const char *stream;
	double *seen_at;
	size_t heard;
	pthread_t thread;
} listener;

/* on_record notes the first record of an event (tag changes) or customer
 * (touches). */
static void
on_record(listener *l, const Pond__StreamRecord *rec, double now)
{
	long idx = -1;

	if (strcmp(l->stream, "tag_changes") == 0) {
		Pond__TagChange *tc = pond__tag_change__unpack(
		        NULL, rec->payload.len, rec->payload.data);
		if (tc != NULL) {
			idx = event_index(tc->event_id);
			pond__tag_change__free_unpacked(tc, NULL);
		}
	} else {
		Pond__TouchChange *tc = pond__touch_change__unpack(
		        NULL, rec->payload.len, rec->payload.data);
		if (tc != NULL) {
			idx = event_index(tc->customer_key);
			pond__touch_change__free_unpacked(tc, NULL);
		}
	}
	if (idx >= 0 && l->seen_at[idx] == 0) {
		l->seen_at[idx] = now;
		l->heard++;
	}
}

static void *
listener_main(void *arg)
{
	listener *l = arg;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	size_t want = per_client * (size_t)opt_clients;
	double quiet_since = 0;
	int rv;

	if ((rv = nng_sub0_open(&sock)) != 0 ||
	    (rv = nng_socket_set(sock, NNG_OPT_SUB_SUBSCRIBE, l->stream,
	                         strlen(l->stream))) != 0 ||
	    (rv = nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 200)) != 0 ||
	    (rv = nng_socket_set_int(sock, NNG_OPT_RECVBUF, 8192)) != 0 ||
	    (rv = nng_dial(sock, l->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		bench_die("cannot listen to %s: %s", l->url, nng_strerror(rv));
	}
	while (l->heard < want) {
		char *msg = NULL;
		size_t len = 0;
		double now;

		rv = nng_recv(sock, &msg, &len, NNG_FLAG_ALLOC);
		now = bench_clock();
		if (rv == NNG_ETIMEDOUT) {
			if (!atomic_load(&publishing_done)) {
				continue;
			}
			if (quiet_since == 0) {
				quiet_since = now;
			} else if (now - quiet_since > (double)opt_drain_s) {
				break;
			}
			continue;
		}
		if (rv != 0) {
			break;
		}
		quiet_since = 0;
		char *nl = memchr(msg, '\n', len);
		if (nl != NULL) {
			size_t off = (size_t)(nl + 1 - msg);
			Pond__StreamRecord *rec = pond__stream_record__unpack(
			        NULL, len - off, (uint8_t *)nl + 1);
			if (rec != NULL) {
				on_record(l, rec, now);
				pond__stream_record__free_unpacked(rec, NULL);
			}
		}
		nng_free(msg, len);
	}
	/* The socket is left open: NNG 1.5.2's nng_close can hang for ever
	 * (nanomsg/nng#1543, seen here on a SUB socket), and the process
	 * ends right after the listeners do. */
	return (NULL);
}

/* latencies prints "NAME=count NAME_p50_ms= ... " over events seen both
 * acked and heard. */
static void
latencies(const char *name, const double *seen_at)
{
	size_t total = per_client * (size_t)opt_clients, n = 0;
	double *lat = calloc(total + 1, sizeof(*lat));

	if (lat == NULL) {
		bench_die("out of memory");
	}
	for (size_t i = 0; seen_at != NULL && i < total; i++) {
		if (acked_at[i] > 0 && seen_at[i] > 0) {
			/* The announcement can beat the ack reply to this
			 * process; that is latency 0, not negative. */
			double d = seen_at[i] - acked_at[i];
			lat[n++] = d > 0 ? d : 0;
		}
	}
	printf("%ss=%zu %s_p50_ms=%.1f %s_p99_ms=%.1f %s_max_ms=%.1f", name, n,
	       name, bench_percentile(lat, n, 0.5) * 1e3, name,
	       bench_percentile(lat, n, 0.99) * 1e3, name,
	       bench_percentile(lat, n, 1.0) * 1e3);
	free(lat);
}

int
main(int argc, char **argv)
{
	const bench_opt opts[] = {
	        {"url", false, &opt_url, "ingest's NNG address"},
	        {"token", false, &opt_token,
	         "publisher token (or POND_TOKEN)"},
	        {"rate", true, &opt_rate, "events per second offered (5000)"},
	        {"seconds", true, &opt_seconds, "how long to publish (10)"},
	        {"clients", true, &opt_clients, "publishers (4)"},
	        {"batch", true, &opt_batch, "events a request (50)"},
	        {"tags-sub", false, &opt_tags_sub, "tagging's PUB URL"},
	        {"touches-sub", false, &opt_touches_sub,
	         "the scheduler's PUB URL (optional)"},
	        {"drain", true, &opt_drain_s,
	         "seconds of silence that end the wait (10)"},
	        {"run", false, &opt_run, "event id prefix, distinct per run"},
	};
	client cls[BENCH_MAX_CLIENTS];
	listener tags = {.stream = "tag_changes"},
	         touches = {.stream = "touches"};
	size_t total, acked = 0;
	double secs;

	bench_parse(argc, argv, "End-to-end latency at a steady rate.", opts,
	            sizeof(opts) / sizeof(opts[0]));
	if (opt_token == NULL) {
		opt_token = getenv("POND_TOKEN");
	}
	if (opt_token == NULL || opt_tags_sub == NULL || opt_clients < 1 ||
	    opt_clients > BENCH_MAX_CLIENTS || opt_batch < 1 ||
	    opt_batch > 1000 || opt_rate < 1 || opt_seconds < 1) {
		bench_die("need a token, --tags-sub, 1..%d clients, 1..1000 "
		          "events a batch",
		          BENCH_MAX_CLIENTS);
	}
	per_client = (size_t)(opt_rate * opt_seconds / opt_clients);
	total = per_client * (size_t)opt_clients;
	acked_at = calloc(total + 1, sizeof(double));
	tagged_at = calloc(total + 1, sizeof(double));
	touched_at = calloc(total + 1, sizeof(double));
	if (acked_at == NULL || tagged_at == NULL || touched_at == NULL) {
		bench_die("out of memory");
	}
	tags.url = opt_tags_sub;
	tags.seen_at = tagged_at;
	touches.url = opt_touches_sub;
	touches.seen_at = touched_at;
	if (pthread_create(&tags.thread, NULL, listener_main, &tags) != 0 ||
	    (opt_touches_sub != NULL &&
	     pthread_create(&touches.thread, NULL, listener_main, &touches) !=
	             0)) {
		bench_die("cannot start a listener");
	}
	usleep(300 * 1000); /* let the SUB sockets connect first */
	for (unsigned i = 0; i < (unsigned)opt_clients; i++) {
		cls[i] = (client){.index = i};
	}
	secs = bench_clients((unsigned)opt_clients, client_main, cls,
	                     sizeof(cls[0]));
	atomic_store(&publishing_done, true);
	pthread_join(tags.thread, NULL);
	if (opt_touches_sub != NULL) {
		pthread_join(touches.thread, NULL);
	}
	for (unsigned i = 0; i < (unsigned)opt_clients; i++) {
		acked += cls[i].acked;
	}
	printf("events=%zu acked=%zu seconds=%.3f rate=%.0f ", total, acked,
	       secs, (double)acked / secs);
	latencies("tag_change", tagged_at);
	printf(" ");
	latencies("touch", opt_touches_sub != NULL ? touched_at : NULL);
	printf("\n");
	free(acked_at);
	free(tagged_at);
	free(touched_at);
	return (0);
}
