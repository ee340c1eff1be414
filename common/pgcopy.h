/*
 * pgcopy.h - rows in PostgreSQL's binary COPY format.
 *
 * Binary COPY is the fastest way to put many rows into a table: no planning
 * per row and no text parsing (timestamps as 8-byte integers, bytea as raw
 * bytes). A pond_copybuf collects the rows in memory; pond_copy_send streams
 * them with COPY ... FROM STDIN (FORMAT binary) inside the caller's
 * transaction.
 *
 *   pond_copybuf cb;
 *   pond_copy_init(&cb);
 *   pond_copy_row(&cb, 2);
 *   pond_copy_int8(&cb, 42);
 *   pond_copy_text(&cb, "hello");
 *   rv = pond_copy_send(conn, "COPY t (id, name) FROM STDIN (FORMAT binary)",
 *       &cb);
 *   pond_copy_free(&cb);
 */
#ifndef POND_PGCOPY_H
#define POND_PGCOPY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"

typedef struct pond_copybuf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;   /* an allocation failed; pond_copy_send says ENOMEM */
	bool finished; /* the trailer is written: no more rows */
} pond_copybuf;

/* pond_copy_init starts a buffer with the binary COPY header. */
void pond_copy_init(pond_copybuf *cb);

/* pond_copy_row starts a row of nfields fields. */
void pond_copy_row(pond_copybuf *cb, int16_t nfields);

/* pond_copy_int4 appends an int4 field. */
void pond_copy_int4(pond_copybuf *cb, int32_t v);

/* pond_copy_int8 appends an int8 field. */
void pond_copy_int8(pond_copybuf *cb, int64_t v);

/* pond_copy_timestamptz appends a timestamptz field. */
void pond_copy_timestamptz(pond_copybuf *cb, pond_time t);

/* pond_copy_bytes appends a bytea (or any raw) field of n bytes. */
void pond_copy_bytes(pond_copybuf *cb, const void *p, size_t n);

/* pond_copy_text appends a text field (s must be valid UTF-8). */
void pond_copy_text(pond_copybuf *cb, const char *s);

/* pond_copy_finish writes the trailer (once); the data is then complete,
 * for a caller that builds rows ahead of sending them. */
void pond_copy_finish(pond_copybuf *cb);

/* pond_copy_send finishes the data and runs copy_sql (a COPY ... FROM STDIN
 * (FORMAT binary)) with it in the open transaction. */
int pond_copy_send(PGconn *conn, const char *copy_sql,
                   pond_copybuf *cb) POND_MUSTCHECK;

/* pond_copy_free frees the buffer. */
void pond_copy_free(pond_copybuf *cb);

#endif
