/*
 * consumer.h - the stream consumer: every record applied exactly once.
 *
 * pond_consumer applies records through the caller's apply function and
 * advances consumer_cursors in the same transaction, so each record takes
 * effect exactly once although NNG may drop or repeat announcements.
 * Records heard on SUB are applied directly when they follow the cursor;
 * the table is read on start, on a seq gap and after a quiet spell.
 * Partitions are split between replicas with session advisory locks.
 * docs/streams.md tells the whole story.
 */
#ifndef POND_CONSUMER_H
#define POND_CONSUMER_H

#include "stream.h"

/* pond_record is one stream record handed to an apply function. */
typedef struct pond_record {
	uint32_t partition;
	int64_t seq;
	const uint8_t *payload;
	size_t len;
} pond_record;

/* pond_apply_fn applies records (all of one partition, ascending, gap-free)
 * inside the consumer's open transaction on a pool thread. Returning non-0
 * rolls the transaction back; the records are retried later. */
typedef int (*pond_apply_fn)(PGconn *conn, const pond_record *recs, size_t n,
                             void *arg);

typedef struct pond_consumer_config {
	const char *name;     /* consumer name, e.g. "tagging" */
	const char *stream;   /* stream name, e.g. "events" */
	const char *table;    /* stream table; NULL means the stream name */
	const char *dsn;      /* for the advisory-lock session */
	const char *sub_urls; /* PUB URLs to hear from, comma-separated */
	uint32_t batch;       /* max records per transaction (default 500) */
	int poll_ms;          /* quiet spell before reading the table (1000) */
	int rebalance_ms;     /* partition ownership check period (2000) */
	pond_apply_fn apply;
	void *arg;
	/* committed (may be NULL) runs on the loop after a transaction that
	 * applied records of partition has committed: the moment a producer
	 * inside apply may announce what it wrote. */
	void (*committed)(uint32_t partition, void *arg);
} pond_consumer_config;

typedef struct pond_consumer pond_consumer;

/* pond_consumer_start begins consuming; work runs on db (the caller's
 * pool), advisory locks on a connection of the consumer's own. The config
 * strings must outlive the consumer. metrics may be NULL. */
int pond_consumer_start(pond_consumer **cp, uv_loop_t *loop, pond_bus *bus,
                        pond_db *db, pond_metrics *metrics,
                        const pond_consumer_config *conf) POND_MUSTCHECK;

/* pond_consumer_stop finishes the transaction in flight, releases the
 * partitions, frees the consumer and calls done on the loop. */
void pond_consumer_stop(pond_consumer *c, void (*done)(void *), void *arg);

/* pond_consumer_owned returns how many partitions this instance owns. */
uint32_t pond_consumer_owned(const pond_consumer *c);

/* pond_consumer_lag returns the total records known to be behind. */
int64_t pond_consumer_lag(const pond_consumer *c);

#endif
