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

/* bench_percentile returns the p-th percentile (0..1) of v[0..n), sorting
 * v in place; 0 when n is 0. */
double bench_percentile(double *v, size_t n, double p);

#endif
