/*
 * stream.c - stream producer side (see stream.h and docs/streams.md).
 *
 * Partitioning, seq reservation from the stream_heads row lock, and the
 * announcement of committed records on PUB. The consumer is consumer.c.
 */
#include "stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pond/stream.pb-c.h"

uint32_t
pond_partition_of(const char *key, uint32_t nparts)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0';
	     p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return (nparts > 0 ? h % nparts : 0);
}

int
pond_stream_partitions(PGconn *conn, const char *stream, uint32_t *nparts)
{
	const char *params[] = {stream};
	PGresult *res;
	int rv;

	if ((rv = pond_pq_query(
	             conn, &res,
	             "SELECT count(*) FROM stream_heads WHERE stream = $1", 1,
	             params)) != 0) {
		return (rv);
	}
	*nparts = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (*nparts > 0 ? POND_OK : POND_ENOENT);
}

/* stream_int_array writes "{a,b,c}" for the partitions with counts. */
static char *
stream_int_array(const uint32_t *counts, uint32_t nparts, bool values)
{
	size_t cap = (size_t)nparts * 12 + 3, o = 0;
	char *buf = malloc(cap);

	if (buf == NULL) {
		return (NULL);
	}
	buf[o++] = '{';
	for (uint32_t p = 0; p < nparts; p++) {
		if (counts[p] == 0) {
			continue;
		}
		o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu32,
		                      o > 1 ? "," : "",
		                      values ? counts[p] : p);
	}
	buf[o++] = '}';
	buf[o] = '\0';
	return (buf);
}

int
pond_stream_reserve(PGconn *conn, const char *stream, const uint32_t *counts,
                    uint32_t nparts, int64_t *first_seq)
{
	char *parts = stream_int_array(counts, nparts, false);
	char *ns = stream_int_array(counts, nparts, true);
	PGresult *res = NULL;
	int rv = POND_ENOMEM;

	if (parts == NULL || ns == NULL) {
		goto out;
	}
	const char *params[] = {stream, parts, ns};
	/* Lock the heads in ascending partition order first: two writers that
	 * share partitions then queue instead of deadlocking. */
	if ((rv = pond_pq_query(
	             conn, NULL,
	             "SELECT head FROM stream_heads WHERE stream = $1 "
	             "AND partition = ANY($2::int[]) ORDER BY partition "
	             "FOR UPDATE",
	             2, params)) != 0) {
		goto out;
	}
	if ((rv = pond_pq_query(
	             conn, &res,
	             "UPDATE stream_heads h SET head = h.head + c.n "
	             "FROM unnest($2::int[], $3::bigint[]) AS c(p, n) "
	             "WHERE h.stream = $1 AND h.partition = c.p "
	             "RETURNING h.partition, h.head, c.n",
	             3, params)) != 0) {
		goto out;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		uint32_t p =
		        (uint32_t)strtoul(PQgetvalue(res, i, 0), NULL, 10);
		int64_t head = strtoll(PQgetvalue(res, i, 1), NULL, 10);
		int64_t n = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		if (p < nparts) {
			first_seq[p] = head - n + 1;
		}
	}
	for (uint32_t p = 0; p < nparts; p++) {
		if (counts[p] != 0 && first_seq[p] <= 0) {
			pond_log_error("stream_reserve_missing",
			               "stream=%s partition=%" PRIu32, stream,
			               p);
			rv = POND_ENOENT;
			goto out;
		}
	}
	rv = POND_OK;
out:
	PQclear(res);
	free(parts);
	free(ns);
	return (rv);
}

void
pond_stream_topic(char *buf, size_t len, const char *stream,
                  uint32_t partition)
{
	snprintf(buf, len, "%s/%" PRIu32 "\n", stream, partition);
}

int
pond_stream_announce(pond_pub *pub, const char *stream, uint32_t partition,
                     int64_t seq, const void *payload, size_t len)
{
	Pond__StreamRecord rec = POND__STREAM_RECORD__INIT;
	uint8_t stackbuf[4096];
	uint8_t *buf = stackbuf;
	char topic[96];
	size_t n;
	int rv;

	rec.stream = (char *)stream;
	rec.partition = partition;
	rec.seq = (uint64_t)seq;
	rec.payload.data = (uint8_t *)payload;
	rec.payload.len = len;
	n = pond__stream_record__get_packed_size(&rec);
	if (n > sizeof(stackbuf) && (buf = malloc(n)) == NULL) {
		return (POND_ENOMEM);
	}
	pond__stream_record__pack(&rec, buf);
	pond_stream_topic(topic, sizeof(topic), stream, partition);
	rv = pond_pub_send(pub, topic, buf, n);
	if (buf != stackbuf) {
		free(buf);
	}
	return (rv);
}
