/*
 * bench.c - the shared part of the load generators (see bench.h).
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *progname = "pond-bench";

/* --- events ----------------------------------------------------------------
 */

static const char *const channels[] = {"package_card", "sms",
                                       "ai_call",      "official_account",
                                       "store_poster", "referral"};
static const char *const categories[] = {"skincare", "tea", "snacks", "baby",
                                         "apparel"};
static const char *const interactions[] = {
        "message",      "group_chat", "moments_like",
        "article_read", "live_view",  "mini_program_visit"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* mix is splitmix64's finaliser: cheap, and every bit of x moves every bit
 * of the result, so (client, n) pairs spread evenly over customers. */
static uint64_t
mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (x ^ (x >> 31));
}

/* fill_alias sets alias i of e; the value depends only on the customer, so
 * an alias is always linked to the same customer (no conflicts). */
static void
fill_alias(bench_event *e, size_t i, const char *kind, const char *fmt,
           uint32_t cust)
{
	e->alias[i] = (Pond__Alias)POND__ALIAS__INIT;
	e->alias[i].kind = (char *)kind;
	snprintf(e->alias_value[i], sizeof(e->alias_value[i]), fmt, cust);
	e->alias[i].value = e->alias_value[i];
	e->aliasp[i] = &e->alias[i];
	e->ev.n_aliases = i + 1;
}

static void
fill_contact(bench_event *e, uint64_t h, uint32_t cust)
{
	e->contact = (Pond__ContactAdded)POND__CONTACT_ADDED__INIT;
	e->contact.channel = (char *)channels[h % NELEM(channels)];
	snprintf(e->guide, sizeof(e->guide), "g%03u",
	         (unsigned)(h >> 8) % 200);
	snprintf(e->store, sizeof(e->store), "s%03u",
	         (unsigned)(h >> 16) % 50);
	snprintf(e->campaign, sizeof(e->campaign), "cmp-%u",
	         (unsigned)(h >> 24) % 12);
	e->contact.guide_id = e->guide;
	e->contact.store_id = e->store;
	e->contact.campaign_id = e->campaign;
	e->ev.body_case = POND__EVENT__BODY_CONTACT_ADDED;
	e->ev.contact_added = &e->contact;
	e->type = "contact_added";
	fill_alias(e, 0, "phone", "139%08u", cust);
	fill_alias(e, 1, "wecom_external_userid", "wmX%08u", cust);
}

static void
fill_order(bench_event *e, uint64_t h, uint32_t cust)
{
	size_t nitems = 1 + h % 3;
	int64_t total = 0;

	e->order = (Pond__OrderPaid)POND__ORDER_PAID__INIT;
	e->order.order_id = e->order_id;
	for (size_t i = 0; i < nitems; i++) {
		uint64_t hi = mix(h + i);
		e->item[i] = (Pond__OrderItem)POND__ORDER_ITEM__INIT;
		snprintf(e->sku[i], sizeof(e->sku[i]), "sku-%04u",
		         (unsigned)(hi % 3000));
		e->item[i].sku = e->sku[i];
		e->item[i].category =
		        (char *)categories[(hi >> 16) % NELEM(categories)];
		e->item[i].qty = 1 + (int64_t)((hi >> 24) % 3);
		e->item[i].price_fen = 990 + (int64_t)((hi >> 32) % 30000);
		total += e->item[i].qty * e->item[i].price_fen;
		e->itemp[i] = &e->item[i];
	}
	e->order.n_items = nitems;
	e->order.items = e->itemp;
	e->order.amount_fen = total;
	snprintf(e->store, sizeof(e->store), "s%03u",
	         (unsigned)(h >> 40) % 50);
	e->order.store_id = e->store;
	e->ev.body_case = POND__EVENT__BODY_ORDER_PAID;
	e->ev.order_paid = &e->order;
	e->type = "order_paid";
	fill_alias(e, 0, "member_id", "m%08u", cust);
}

static void
fill_interaction(bench_event *e, uint64_t h, uint32_t cust)
{
	e->interaction = (Pond__Interaction)POND__INTERACTION__INIT;
	e->interaction.kind =
	        (char *)interactions[(h >> 8) % NELEM(interactions)];
	e->interaction.seconds = (int64_t)((h >> 20) % 600);
	e->ev.body_case = POND__EVENT__BODY_INTERACTION;
	e->ev.interaction = &e->interaction;
	e->type = "interaction";
	fill_alias(e, 0, "openid", "oX%010u", cust);
}

void
bench_event_fill(bench_event *e, const char *run, unsigned client, uint64_t n,
                 uint32_t customers, int64_t now_sec)
{
	uint64_t h = mix(((uint64_t)client << 40) ^ n);
	uint32_t cust = (uint32_t)(h % (customers ? customers : 1));
	unsigned kind = (unsigned)(h >> 60); /* 0..15 */

	e->ev = (Pond__Event)POND__EVENT__INIT;
	snprintf(e->id, sizeof(e->id), "%s-%u-%llu", run, client,
	         (unsigned long long)n);
	snprintf(e->order_id, sizeof(e->order_id), "o-%s", e->id);
	snprintf(e->customer, sizeof(e->customer), "c%07u", cust);
	e->ev.event_id = e->id;
	e->ev.customer_key = e->customer;
	e->at = (Google__Protobuf__Timestamp)GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	e->at.seconds = now_sec - (int64_t)((h >> 8) % (30 * 86400));
	e->at.nanos = (int32_t)((h >> 24) % 1000) * 1000000;
	e->ev.occurred_at = &e->at;
	e->ev.aliases = e->aliasp;
	/* Half interactions, a quarter each new contacts and paid orders:
	 * engagement is the common event, orders carry the most fields. */
	if (kind < 8) {
		fill_interaction(e, h, cust);
	} else if (kind < 12) {
		fill_contact(e, h, cust);
	} else {
		fill_order(e, h, cust);
	}
}

/* --- options ---------------------------------------------------------------
 */

static void
usage(const char *summary, const bench_opt *opts, size_t n)
{
	fprintf(stderr, "usage: %s [--option value]...\n%s\n", progname,
	        summary);
	for (size_t i = 0; i < n; i++) {
		fprintf(stderr, "  --%-12s %s\n", opts[i].name, opts[i].help);
	}
	exit(2);
}

void
bench_parse(int argc, char **argv, const char *summary, const bench_opt *opts,
            size_t n)
{
	const char *slash = strrchr(argv[0], '/');

	progname = slash != NULL ? slash + 1 : argv[0];
	for (int i = 1; i < argc; i += 2) {
		const bench_opt *o = NULL;
		for (size_t k = 0; k < n && argv[i][0] == '-'; k++) {
			if (strcmp(argv[i] + 2, opts[k].name) == 0) {
				o = &opts[k];
			}
		}
		if (o == NULL || i + 1 >= argc ||
		    strncmp(argv[i], "--", 2) != 0) {
			usage(summary, opts, n);
		}
		if (!o->is_int) {
			*(const char **)o->ptr = argv[i + 1];
			continue;
		}
		char *end;
		*(long long *)o->ptr = strtoll(argv[i + 1], &end, 10);
		if (*end != '\0' || end == argv[i + 1]) {
			usage(summary, opts, n);
		}
	}
}

void
bench_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* --- clients ---------------------------------------------------------------
 */

double
bench_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

/* The clients and the main thread meet at this barrier once every client
 * is set up; only then does the timed part begin. */
static pthread_barrier_t ready;

void
bench_clients_ready(void)
{
	pthread_barrier_wait(&ready);
}

double
bench_clients(unsigned n, void *(*fn)(void *), void *arg, size_t size)
{
	pthread_t tid[BENCH_MAX_CLIENTS];
	double start;

	if (n == 0 || n > BENCH_MAX_CLIENTS) {
		bench_die("clients must be 1..%d", BENCH_MAX_CLIENTS);
	}
	pthread_barrier_init(&ready, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&tid[i], NULL, fn,
		                   (char *)arg + (size_t)i * size) != 0) {
			bench_die("cannot start client thread %u", i);
		}
	}
	pthread_barrier_wait(&ready);
	start = bench_clock();
	for (unsigned i = 0; i < n; i++) {
		pthread_join(tid[i], NULL);
	}
	pthread_barrier_destroy(&ready);
	return (bench_clock() - start);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return ((x > y) - (x < y));
}

double
bench_percentile(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0) {
		return (0);
	}
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return (v[i < n ? i : n - 1]);
}

static bench_work *
work_at(void *clients, size_t stride, unsigned i)
{
	return ((bench_work *)((char *)clients + (size_t)i * stride));
}

void
bench_prepare(void *clients, unsigned n, size_t stride, size_t total,
              size_t per, size_t reqsize, bench_build_fn build)
{
	int64_t now = (int64_t)time(NULL);

	for (unsigned c = 0; c < n; c++) {
		bench_work *w = work_at(clients, stride, c);
		size_t events = total / n + (c < total % n ? 1 : 0);

		memset(w, 0, stride);
		w->index = c;
		w->events = events;
		w->nreqs = (events + per - 1) / per;
		w->reqsize = reqsize;
		w->reqs = calloc(w->nreqs + 1, reqsize);
		w->latency = calloc(w->nreqs + 1, sizeof(*w->latency));
		if (w->reqs == NULL || w->latency == NULL) {
			bench_die("out of memory");
		}
		for (size_t i = 0; i < w->nreqs; i++) {
			size_t first = i * per;
			size_t k = events - first < per ? events - first : per;
			build((char *)w->reqs + i * reqsize, c, first, k, now);
		}
	}
}

void
bench_release(void *clients, unsigned n, size_t stride,
              void (*release)(void *req))
{
	for (unsigned c = 0; c < n; c++) {
		bench_work *w = work_at(clients, stride, c);

		for (size_t i = 0; release != NULL && i < w->nreqs; i++) {
			release((char *)w->reqs + i * w->reqsize);
		}
		free(w->reqs);
		free(w->latency);
		w->reqs = NULL;
		w->latency = NULL;
	}
}

void
bench_print_latencies(void *clients, unsigned n, size_t stride)
{
	size_t nlat = 0, k = 0;
	double *lat;

	for (unsigned c = 0; c < n; c++) {
		nlat += work_at(clients, stride, c)->nreqs;
	}
	if ((lat = calloc(nlat + 1, sizeof(*lat))) == NULL) {
		bench_die("out of memory");
	}
	for (unsigned c = 0; c < n; c++) {
		const bench_work *w = work_at(clients, stride, c);
		memcpy(lat + k, w->latency, w->nreqs * sizeof(*lat));
		k += w->nreqs;
	}
	printf("p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n",
	       bench_percentile(lat, nlat, 0.5) * 1e3,
	       bench_percentile(lat, nlat, 0.99) * 1e3,
	       bench_percentile(lat, nlat, 1.0) * 1e3);
	free(lat);
}
