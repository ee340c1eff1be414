/*
 * pgcopy.c - binary COPY rows (see pgcopy.h).
 */
#include "pgcopy.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

/* PostgreSQL's binary timestamps count microseconds from 2000-01-01. */
#define PG_EPOCH_USEC INT64_C(946684800000000)

static void
copy_put(pond_copybuf *cb, const void *p, size_t n)
{
	if (cb->failed) {
		return;
	}
	if (cb->len + n > cb->cap) {
		size_t cap = cb->cap ? cb->cap * 2 : 65536;
		while (cap < cb->len + n) {
			cap *= 2;
		}
		char *grown = realloc(cb->data, cap);
		if (grown == NULL) {
			cb->failed = true;
			return;
		}
		cb->data = grown;
		cb->cap = cap;
	}
	memcpy(cb->data + cb->len, p, n);
	cb->len += n;
}

static void
copy_i16(pond_copybuf *cb, int16_t v)
{
	uint16_t be = htobe16((uint16_t)v);
	copy_put(cb, &be, 2);
}

static void
copy_i32(pond_copybuf *cb, int32_t v)
{
	uint32_t be = htobe32((uint32_t)v);
	copy_put(cb, &be, 4);
}

void
pond_copy_init(pond_copybuf *cb)
{
	static const char header[] = "PGCOPY\n\377\r\n";

	memset(cb, 0, sizeof(*cb));
	copy_put(cb, header, 11);
	copy_i32(cb, 0); /* flags */
	copy_i32(cb, 0); /* header extension length */
}

void
pond_copy_row(pond_copybuf *cb, int16_t nfields)
{
	copy_i16(cb, nfields);
}

void
pond_copy_int4(pond_copybuf *cb, int32_t v)
{
	copy_i32(cb, 4);
	copy_i32(cb, v);
}

void
pond_copy_int8(pond_copybuf *cb, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);

	copy_i32(cb, 8);
	copy_put(cb, &be, 8);
}

void
pond_copy_timestamptz(pond_copybuf *cb, pond_time t)
{
	pond_copy_int8(cb, t - PG_EPOCH_USEC);
}

void
pond_copy_bytes(pond_copybuf *cb, const void *p, size_t n)
{
	copy_i32(cb, (int32_t)n);
	copy_put(cb, p, n);
}

void
pond_copy_text(pond_copybuf *cb, const char *s)
{
	pond_copy_bytes(cb, s, strlen(s));
}

void
pond_copy_finish(pond_copybuf *cb)
{
	if (!cb->finished) {
		copy_i16(cb, -1);
		cb->finished = true;
	}
}

int
pond_copy_send(PGconn *conn, const char *copy_sql, pond_copybuf *cb)
{
	PGresult *res;
	int rv, crv = POND_OK;

	pond_copy_finish(cb);
	if (cb->failed) {
		return (POND_ENOMEM);
	}
	res = PQexec(conn, copy_sql);
	rv = pond_pq_check(conn, res, "copy_start");
	PQclear(res);
	if (rv != 0) {
		return (rv);
	}
	if (PQputCopyData(conn, cb->data, (int)cb->len) != 1 ||
	    PQputCopyEnd(conn, NULL) != 1) {
		rv = POND_EDB;
	}
	/* Drain every result, so the connection is ready for the next
	 * statement whatever happened. */
	while ((res = PQgetResult(conn)) != NULL) {
		if (crv == 0) {
			crv = pond_pq_check(conn, res, "copy");
		}
		PQclear(res);
	}
	return (rv != 0 ? rv : crv);
}

void
pond_copy_free(pond_copybuf *cb)
{
	free(cb->data);
	memset(cb, 0, sizeof(*cb));
}
