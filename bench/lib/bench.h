/*
 * bench.h - what the load generators of `make bench` share.
 *
 * Realistic events (a mix of contact_added, order_paid and interaction,
 * each with aliases, for a pool of customers), made deterministically from
 * (run, client, n) so that every generator — NNG, HTTP, COPY, PgQ — sends
 * the same rows and every client's event ids are distinct. Also: a small
 * option parser, a monotonic clock, clients started together behind a
 * barrier, and percentiles. Each program prints its result as one line of
 * key=value pairs on stdout, which bench/run.sh reads.
 */
#ifndef POND_BENCH_H
#define POND_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pond/event.pb-c.h"

/* BENCH_MAX_CLIENTS bounds the concurrent clients of one program. */
#define BENCH_MAX_CLIENTS 64

/* bench_event is one generated event with all its storage embedded: the
 * Pond__Event inside points only into the struct, so it needs no freeing
 * and can be packed, encoded as JSON or written as a COPY row. */
typedef struct bench_event {
	Pond__Event ev;
	Google__Protobuf__Timestamp at;
	Pond__Alias alias[2];
	Pond__Alias *aliasp[2];
	Pond__ContactAdded contact;
	Pond__OrderPaid order;
	Pond__OrderItem item[3];
	Pond__OrderItem *itemp[3];
	Pond__Interaction interaction;
	char id[80];
	char customer[24];
	char alias_value[2][32];
	char order_id[84];
	char sku[3][16];
	char guide[16];
	char store[16];
	char campaign[16];
	const char *type; /* "contact_added", "order_paid", "interaction" */
} bench_event;

/* bench_event_fill makes event n of client in run: the same arguments
 * always give the same event. Event (and order) ids are
 * "RUN-CLIENT-N"; the customer is one of customers; occurred_at is within
 * the 30 days before now_sec. */
void bench_event_fill(bench_event *e, const char *run, unsigned client,
                      uint64_t n, uint32_t customers, int64_t now_sec);

/* bench_opt is one --name value option of a program. */
typedef struct bench_opt {
	const char *name; /* without the dashes */
	bool is_int;
	void *ptr; /* long long * or const char ** */
	const char *help;
} bench_opt;

/* bench_parse reads --name value pairs into opts; it prints the usage and
 * exits 2 on anything else (or on --help). */
void bench_parse(int argc, char **argv, const char *summary,
                 const bench_opt *opts, size_t n);

/* bench_die prints "PROGRAM: message" on stderr and exits 1. */
void bench_die(const char *fmt, ...)
        __attribute__((format(printf, 1, 2), noreturn));

/* bench_clock returns CLOCK_MONOTONIC in seconds. */
double bench_clock(void);

/* bench_clients runs fn(arg + i * size) for i < n on n threads. Each client
 * sets itself up (connects, builds its requests) and then calls
 * bench_clients_ready; the clock starts when all of them have, so set-up
 * is never timed. Returns the seconds from that start to the last client's
 * end. */
double bench_clients(unsigned n, void *(*fn)(void *), void *arg, size_t size);

/* bench_clients_ready is called by each client once it is set up. */
void bench_clients_ready(void);

/* bench_work is one client's prepared work: nreqs requests (of whatever
 * type the program sends, reqsize bytes each) made before the clock starts,
 * and a latency slot per request. Each program's client struct has a
 * bench_work as its FIRST member, so that an array of them can be handed
 * to the functions below with its element size as stride. */
typedef struct bench_work {
	unsigned index; /* the client's number */
	size_t events;  /* events in all of its requests */
	void *reqs;     /* nreqs requests of reqsize bytes */
	size_t nreqs, reqsize;
	double *latency; /* seconds per request */
} bench_work;

/* bench_build_fn fills req with events [first, first + n) of client. */
typedef void (*bench_build_fn)(void *req, unsigned client, uint64_t first,
                               size_t n, int64_t now_sec);

/* bench_prepare shares total events among the n clients (the first
 * total % n take one more) and builds each client's share as requests of at
 * most per events. clients is an array of n structs of stride bytes, each
 * starting with a bench_work; the rest of each struct is zeroed. */
void bench_prepare(void *clients, unsigned n, size_t stride, size_t total,
                   size_t per, size_t reqsize, bench_build_fn build);

/* bench_release calls release (may be NULL) on every request, then frees
 * what bench_prepare allocated. */
void bench_release(void *clients, unsigned n, size_t stride,
                   void (*release)(void *req));

/* bench_print_latencies prints "p50_ms= p99_ms= max_ms=" over the requests
 * of all n clients, and ends the line. */
void bench_print_latencies(void *clients, unsigned n, size_t stride);

/* bench_percentile returns the p-th percentile (0..1) of v[0..n), sorting
 * v in place; 0 when n is 0. */
double bench_percentile(double *v, size_t n, double p);

#endif
