/*
 * stream.h - durable, ordered streams over PostgreSQL, announced over NNG.
 *
 * A stream is a table with at least (partition int, seq bigint, payload
 * bytea, primary key (partition, seq)) plus a row per partition in
 * stream_heads(stream, partition, head). DESIGN.md "Streams" is the
 * contract; in short:
 *
 * Producer. Inside its transaction the producer calls pond_stream_reserve,
 * which locks the heads of the partitions it writes in ascending order and
 * advances them (UPDATE ... RETURNING, never a sequence), then inserts its
 * rows with those seqs. A second writer of the same partition waits on the
 * row lock until the first commits, so seqs are gap-free and in commit order
 * per partition. Only after COMMIT returns does it announce each record on
 * PUB with pond_stream_announce.
 *
 * The consumer side is consumer.h.
 */
#ifndef POND_STREAM_H
#define POND_STREAM_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "db.h"
#include "err.h"
#include "metrics.h"

#define POND_STREAM_EVENTS      "events"
#define POND_STREAM_TAG_CHANGES "tag_changes"
#define POND_STREAM_TOUCHES     "touches"

/* POND_MAX_PARTITIONS bounds the partition count chosen at install. */
#define POND_MAX_PARTITIONS 256

/* pond_partition_of maps a customer key to its partition (FNV-1a 32-bit of
 * the key's bytes, modulo nparts). Every service and publisher that needs
 * it uses this one function. */
uint32_t pond_partition_of(const char *key, uint32_t nparts);

/* pond_stream_partitions reads the partition count of stream (rows in
 * stream_heads). */
int pond_stream_partitions(PGconn *conn, const char *stream,
                           uint32_t *nparts) POND_MUSTCHECK;

/* pond_stream_reserve takes counts[p] seqs in each partition p < nparts
 * (zero counts are skipped) inside the caller's open transaction. On
 * success first_seq[p] is the first seq reserved in p; the caller writes
 * seqs first_seq[p] .. first_seq[p] + counts[p] - 1. */
int pond_stream_reserve(PGconn *conn, const char *stream,
                        const uint32_t *counts, uint32_t nparts,
                        int64_t *first_seq) POND_MUSTCHECK;

/* pond_stream_topic writes "STREAM/PARTITION\n" into buf (>= 64 bytes). */
void pond_stream_topic(char *buf, size_t len, const char *stream,
                       uint32_t partition);

/* pond_stream_announce publishes one committed record on pub, as the topic
 * followed by a packed pond.StreamRecord. Call only after COMMIT. */
int pond_stream_announce(pond_pub *pub, const char *stream, uint32_t partition,
                         int64_t seq, const void *payload, size_t len);

#endif
