/*
 * pond-bench-http.c - webhook senders for the HTTP ingest benchmark.
 *
 * Several keep-alive HTTP/1.1 connections, one thread each, POST bodies of
 * --per-request events ({"events": [...]}, the JSON of API.md) to
 * /v1/events and read each answer before sending the next, as a webhook
 * relay does. Bodies are built before the clock starts. An answer is
 * counted by its status and by how many results say "accepted".
 *
 * Prints: events= seconds= rate= accepted= non_200= errors= reconnects=
 * p50_ms= p99_ms= max_ms=
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "pbjson.h"

typedef struct request {
	char *data;
	size_t len;
} request;

typedef struct client {
	bench_work w; /* requests: whole POSTs */
	size_t accepted, non_200, errors, reconnects;
} client;

static long long opt_clients = 4, opt_events = 50000, opt_per = 100;
static long long opt_customers = 100000, opt_port = 8400;
static const char *opt_token = NULL, *opt_run = "http";

/* build_request makes the whole POST of events [first, first + n) (a
 * bench_build_fn). */
static void
build_request(void *req, unsigned c, uint64_t first, size_t n, int64_t now)
{
	request *r = req;
	json_t *list = json_array();
	json_t *root = json_pack("{s:o}", "events", list);
	bench_event e;
	char *body, head[512];

	for (size_t i = 0; i < n; i++) {
		bench_event_fill(&e, opt_run, c, first + i,
		                 (uint32_t)opt_customers, now);
		json_array_append_new(list,
		                      pond_pbjson_encode(&e.ev.base, false));
	}
	if ((body = json_dumps(root, JSON_COMPACT)) == NULL) {
		bench_die("cannot encode a body");
	}
	json_decref(root);
	int hl = snprintf(head, sizeof(head),
	                  "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                  "Authorization: Bearer %s\r\n"
	                  "Content-Type: application/json\r\n"
	                  "Content-Length: %zu\r\n\r\n",
	                  opt_token, strlen(body));
	r->len = (size_t)hl + strlen(body);
	if ((r->data = malloc(r->len + 1)) == NULL) {
		bench_die("out of memory");
	}
	memcpy(r->data, head, (size_t)hl);
	memcpy(r->data + hl, body, strlen(body) + 1);
	free(body);
}

static void
free_request(void *req)
{
	free(((request *)req)->data);
}

static int
connect_local(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)opt_port)};
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0) {
			close(fd);
		}
		return (-1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return (fd);
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0) {
			return (-1);
		}
		p += w;
		n -= (size_t)w;
	}
	return (0);
}

/* count counts the occurrences of needle in the n bytes at p. */
static size_t
count(const char *p, size_t n, const char *needle)
{
	size_t k = 0, nl = strlen(needle);

	for (const char *q = p;
	     (q = memmem(q, n - (size_t)(q - p), needle, nl)) != NULL;
	     q += nl) {
		k++;
	}
	return (k);
}

/* read_answer reads one response on fd into rb (grown as needed), then
 * counts it into cl. Returns -1 when the connection broke. */
static int
read_answer(client *cl, int fd, char **rb, size_t *cap)
{
	size_t have = 0, need = 0;
	char *hdr_end = NULL;

	for (;;) {
		if (have + 1 >= *cap) {
			*cap *= 2;
			if ((*rb = realloc(*rb, *cap)) == NULL) {
				bench_die("out of memory");
			}
		}
		ssize_t r = read(fd, *rb + have, *cap - have - 1);
		if (r <= 0) {
			return (-1);
		}
		have += (size_t)r;
		(*rb)[have] = '\0';
		if (hdr_end == NULL &&
		    (hdr_end = strstr(*rb, "\r\n\r\n")) != NULL) {
			char *cl_hdr = strcasestr(*rb, "\r\ncontent-length:");
			size_t body = cl_hdr != NULL && cl_hdr < hdr_end
			                      ? strtoul(cl_hdr + 17, NULL, 10)
			                      : 0;
			need = (size_t)(hdr_end + 4 - *rb) + body;
		}
		if (hdr_end != NULL && have >= need) {
			break;
		}
	}
	if (strncmp(*rb + 8, " 200", 4) != 0) {
		cl->non_200++;
	}
	cl->accepted +=
	        count(hdr_end, have - (size_t)(hdr_end - *rb), "\"accepted\"");
	return (0);
}

static void *
client_main(void *arg)
{
	client *cl = arg;
	size_t cap = 1 << 16;
	char *rb = malloc(cap);
	const request *reqs = cl->w.reqs;
	int fd = connect_local();

	bench_clients_ready();
	for (size_t i = 0; i < cl->w.nreqs && rb != NULL; i++) {
		double t0 = bench_clock();
		if (fd < 0 || write_all(fd, reqs[i].data, reqs[i].len) != 0 ||
		    read_answer(cl, fd, &rb, &cap) != 0) {
			/* The server closed a kept-alive connection: count
			 * it, and send the request again on a new one. */
			if (fd >= 0) {
				close(fd);
			}
			cl->reconnects++;
			if (cl->reconnects > 100 ||
			    (fd = connect_local()) < 0) {
				cl->errors++;
				break;
			}
			i--;
			continue;
		}
		cl->w.latency[i] = bench_clock() - t0;
	}
	if (fd >= 0) {
		close(fd);
	}
	free(rb);
	return (NULL);
}

static void
report(client *cls, unsigned n, double secs)
{
	size_t ev = 0, acc = 0, bad = 0, err = 0, rec = 0;

	for (unsigned i = 0; i < n; i++) {
		ev += cls[i].w.events;
		acc += cls[i].accepted;
		bad += cls[i].non_200;
		err += cls[i].errors;
		rec += cls[i].reconnects;
	}
	printf("events=%zu seconds=%.3f rate=%.0f accepted=%zu non_200=%zu "
	       "errors=%zu reconnects=%zu ",
	       ev, secs, (double)acc / secs, acc, bad, err, rec);
	bench_print_latencies(cls, n, sizeof(cls[0]));
}

int
main(int argc, char **argv)
{
	const bench_opt opts[] = {
	        {"port", true, &opt_port, "ingest's HTTP port on 127.0.0.1"},
	        {"token", false, &opt_token,
	         "publisher token (or POND_TOKEN)"},
	        {"clients", true, &opt_clients, "keep-alive connections (4)"},
	        {"events", true, &opt_events, "events in all (50000)"},
	        {"per-request", true, &opt_per, "events per body (100)"},
	        {"customers", true, &opt_customers, "customer pool (100000)"},
	        {"run", false, &opt_run, "event id prefix, distinct per run"},
	};
	client cls[BENCH_MAX_CLIENTS];
	unsigned n;

	bench_parse(argc, argv, "HTTP webhook senders for the benchmark.",
	            opts, sizeof(opts) / sizeof(opts[0]));
	if (opt_token == NULL) {
		opt_token = getenv("POND_TOKEN");
	}
	if (opt_token == NULL || opt_clients < 1 ||
	    opt_clients > BENCH_MAX_CLIENTS || opt_per < 1 || opt_per > 1000 ||
	    opt_events < 1) {
		bench_die("need a token, 1..%d clients, 1..1000 per request",
		          BENCH_MAX_CLIENTS);
	}
	n = (unsigned)opt_clients;
	bench_prepare(cls, n, sizeof(cls[0]), (size_t)opt_events,
	              (size_t)opt_per, sizeof(request), build_request);
	report(cls, n, bench_clients(n, client_main, cls, sizeof(cls[0])));
	bench_release(cls, n, sizeof(cls[0]), free_request);
	return (0);
}
