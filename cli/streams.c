/*
 * streams.c - `pond streams`: stream heads, consumer cursors and lag.
 *
 * The head of a partition is the last seq handed out there; a consumer's
 * cursor is the last seq it applied. Lag is head - cursor per partition
 * and a consumer's total lag is the sum over every partition of every
 * stream it consumes. A consumer consumes a stream when it has a cursor
 * row for any partition of it; a partition without a row yet counts from
 * cursor 0, so a consumer that has never reached a partition shows its
 * whole head as lag.
 *
 * Both queries read one snapshot (REPEATABLE READ), so heads and cursors
 * agree with each other.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"

#define HEADS_SQL                                                             \
	"SELECT stream, partition, head FROM stream_heads "                   \
	"ORDER BY stream, partition"

#define CURSORS_SQL                                                           \
	"WITH subs AS (SELECT DISTINCT consumer, stream "                     \
	"              FROM consumer_cursors) "                               \
	"SELECT s.consumer, s.stream, h.partition, coalesce(c.seq, 0), "      \
	"       h.head, h.head - coalesce(c.seq, 0) "                         \
	"FROM subs s JOIN stream_heads h ON h.stream = s.stream "             \
	"LEFT JOIN consumer_cursors c ON c.consumer = s.consumer "            \
	"     AND c.stream = s.stream AND c.partition = h.partition "         \
	"ORDER BY s.consumer, s.stream, h.partition"

/* Columns of CURSORS_SQL. */
enum { C_CONSUMER, C_STREAM, C_PARTITION, C_CURSOR, C_HEAD, C_LAG };

static int64_t
cell_int(const PGresult *res, int row, int col)
{
	return (strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static int
streams_read(PGconn *conn, PGresult **heads, PGresult **cursors)
{
	*heads = *cursors = NULL;
	if (pond_pq_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ "
	                       "READ ONLY") != 0) {
		return (POND_EDB);
	}
	if (pond_pq_query(conn, heads, HEADS_SQL, 0, NULL) != 0 ||
	    pond_pq_query(conn, cursors, CURSORS_SQL, 0, NULL) != 0 ||
	    pond_pq_exec(conn, "COMMIT") != 0) {
		PQclear(*heads);
		PQclear(*cursors);
		*heads = *cursors = NULL;
		pond_pq_rollback(conn);
		return (POND_EDB);
	}
	return (POND_OK);
}

static int
streams_print_table(const PGresult *heads, const PGresult *cursors)
{
	static const char *const head_cols[] = {"STREAM", "PARTITION", "HEAD"};
	static const char *const cursor_cols[] = {
	        "CONSUMER", "STREAM", "PARTITION", "CURSOR", "HEAD", "LAG"};
	static const char *const total_cols[] = {"CONSUMER", "TOTAL_LAG"};
	pond_cli_table t;
	int rv;

	pond_cli_table_init(&t, 3, head_cols, "lrr");
	if ((rv = pond_cli_table_result(&t, heads)) == 0) {
		pond_cli_table_print(&t, stdout);
	}
	pond_cli_table_free(&t);
	if (rv != 0) {
		return (rv);
	}
	fputc('\n', stdout);
	if (PQntuples(cursors) == 0) {
		printf("no consumer cursors yet\n");
		return (POND_OK);
	}
	pond_cli_table_init(&t, 6, cursor_cols, "llrrrr");
	if ((rv = pond_cli_table_result(&t, cursors)) == 0) {
		pond_cli_table_print(&t, stdout);
	}
	pond_cli_table_free(&t);
	if (rv != 0) {
		return (rv);
	}
	fputc('\n', stdout);
	/* Rows come ordered by consumer: sum each run. */
	pond_cli_table_init(&t, 2, total_cols, "lr");
	for (int r = 0, n = PQntuples(cursors); r < n && rv == 0;) {
		const char *consumer = PQgetvalue(cursors, r, C_CONSUMER);
		int64_t total = 0;
		char buf[24];
		for (; r < n && strcmp(PQgetvalue(cursors, r, C_CONSUMER),
		                       consumer) == 0;
		     r++) {
			total += cell_int(cursors, r, C_LAG);
		}
		snprintf(buf, sizeof(buf), "%" PRId64, total);
		rv = pond_cli_table_row(&t,
		                        (const char *const[]){consumer, buf});
	}
	if (rv == 0) {
		pond_cli_table_print(&t, stdout);
	}
	pond_cli_table_free(&t);
	return (rv);
}

/* streams_heads_json builds [{stream, partitions: [{partition, head}],
 * head_total}]. */
static json_t *
streams_heads_json(const PGresult *heads)
{
	json_t *streams = json_array();
	json_t *cur = NULL, *parts = NULL;
	int64_t total = 0;

	for (int r = 0; streams != NULL && r < PQntuples(heads); r++) {
		const char *name = PQgetvalue(heads, r, 0);
		if (cur == NULL ||
		    strcmp(json_string_value(json_object_get(cur, "stream")),
		           name) != 0) {
			cur = json_pack("{s:s, s:[]}", "stream", name,
			                "partitions");
			if (cur == NULL ||
			    json_array_append_new(streams, cur)) {
				goto fail;
			}
			parts = json_object_get(cur, "partitions");
			total = 0;
		}
		int64_t head = cell_int(heads, r, 2);
		total += head;
		if (json_array_append_new(
		            parts, json_pack("{s:I, s:I}", "partition",
		                             (json_int_t)cell_int(heads, r, 1),
		                             "head", (json_int_t)head)) != 0 ||
		    json_object_set_new(cur, "head_total",
		                        json_integer((json_int_t)total)) !=
		            0) {
			goto fail;
		}
	}
	return (streams);

fail:
	json_decref(streams);
	return (NULL);
}

/* streams_consumers_json builds [{consumer, total_lag, streams: [{stream,
 * lag, partitions: [{partition, cursor, head, lag}]}]}]. */
static json_t *
streams_consumers_json(const PGresult *cursors)
{
	json_t *consumers = json_array();
	json_t *con = NULL, *st = NULL;
	int64_t con_lag = 0, st_lag = 0;

	for (int r = 0; consumers != NULL && r < PQntuples(cursors); r++) {
		const char *cname = PQgetvalue(cursors, r, C_CONSUMER);
		const char *sname = PQgetvalue(cursors, r, C_STREAM);
		int64_t lag = cell_int(cursors, r, C_LAG);
		if (con == NULL ||
		    strcmp(json_string_value(json_object_get(con, "consumer")),
		           cname) != 0) {
			con = json_pack("{s:s, s:[]}", "consumer", cname,
			                "streams");
			if (con == NULL ||
			    json_array_append_new(consumers, con) != 0) {
				goto fail;
			}
			st = NULL;
			con_lag = 0;
		}
		if (st == NULL ||
		    strcmp(json_string_value(json_object_get(st, "stream")),
		           sname) != 0) {
			st = json_pack("{s:s, s:[]}", "stream", sname,
			               "partitions");
			if (st == NULL ||
			    json_array_append_new(
			            json_object_get(con, "streams"), st) !=
			            0) {
				goto fail;
			}
			st_lag = 0;
		}
		con_lag += lag;
		st_lag += lag;
		if (json_array_append_new(
		            json_object_get(st, "partitions"),
		            json_pack(
		                    "{s:I, s:I, s:I, s:I}", "partition",
		                    (json_int_t)cell_int(cursors, r,
		                                         C_PARTITION),
		                    "cursor",
		                    (json_int_t)cell_int(cursors, r, C_CURSOR),
		                    "head",
		                    (json_int_t)cell_int(cursors, r, C_HEAD),
		                    "lag", (json_int_t)lag)) != 0 ||
		    json_object_set_new(st, "lag",
		                        json_integer((json_int_t)st_lag)) !=
		            0 ||
		    json_object_set_new(con, "total_lag",
		                        json_integer((json_int_t)con_lag)) !=
		            0) {
			goto fail;
		}
	}
	return (consumers);

fail:
	json_decref(consumers);
	return (NULL);
}

static int
streams_print_json(const PGresult *heads, const PGresult *cursors)
{
	json_t *streams = streams_heads_json(heads);
	json_t *consumers = streams_consumers_json(cursors);
	json_t *doc = json_object();
	int rv = POND_ENOMEM;

	if (streams != NULL && consumers != NULL && doc != NULL &&
	    json_object_set(doc, "streams", streams) == 0 &&
	    json_object_set(doc, "consumers", consumers) == 0 &&
	    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ==
	            0) {
		fputc('\n', stdout);
		rv = POND_OK;
	}
	json_decref(doc);
	json_decref(consumers);
	json_decref(streams);
	return (rv);
}

static int
cmd_streams(pond_cli *cli, int argc, char **argv)
{
	bool json = false;
	const pond_cli_opt opts[] = {{"--json", NULL, &json}};
	PGresult *heads, *cursors;
	PGconn *conn;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         NULL, 0, 0)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	if (streams_read(conn, &heads, &cursors) != 0) {
		return (pond_cli_fail(
		        "cannot read the streams (has `pond migrate` run?)"));
	}
	rv = json ? streams_print_json(heads, cursors)
	          : streams_print_table(heads, cursors);
	PQclear(heads);
	PQclear(cursors);
	if (rv != 0) {
		return (pond_cli_fail("out of memory"));
	}
	return (POND_CLI_OK);
}

static const pond_cli_command streams_commands[] = {
        {"streams", "[--json]", "stream heads, consumer cursors and lag",
         cmd_streams},
};
POND_CLI_COMMANDS(streams_commands)
