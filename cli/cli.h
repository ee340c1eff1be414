/*
 * cli.h - what the command files of the `pond` ops CLI share (private).
 *
 * Each command file (cli/NAME.c) declares a table of commands and registers it
 * with POND_CLI_COMMANDS; main() (cli/pond.c) picks the command whose words
 * ("publishers add") start the command line, and runs its handler with
 * the arguments that follow. Adding a command is adding a file (or an
 * entry): nothing else changes. The Makefile links the cli files as objects,
 * not from an archive, so every registration is kept.
 *
 * A handler returns the exit status: POND_CLI_OK, POND_CLI_FAIL (runtime
 * error: store unreachable, name exists; a one-line message on stderr) or
 * POND_CLI_USAGE (bad command line; the command's usage on stderr). Results
 * go to stdout, messages to stderr, so `TOKEN=$(pond publishers add x)`
 * captures only the token.
 */
#ifndef POND_CLI_H
#define POND_CLI_H

#include <jansson.h>
#include <libpq-fe.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum {
	POND_CLI_OK = 0,
	POND_CLI_FAIL = 1,
	POND_CLI_USAGE = 2,
};

#define POND_CLI_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* POND_CLI_NAME_MAX bounds the names operators give publishers, tokens and
 * the like. */
#define POND_CLI_NAME_MAX 64

/* pond_cli_config is the CLI's environment (see the table in pond.c). */
typedef struct pond_cli_config {
	char *dsn;          /* POND_DSN */
	int64_t partitions; /* POND_PARTITIONS */
	char *log_level;    /* POND_LOG_LEVEL */
} pond_cli_config;

typedef struct pond_cli_command pond_cli_command;

/* pond_cli is the state of one run, handed to the command's handler. */
typedef struct pond_cli {
	pond_cli_config conf;
	bool partitions_from_env;    /* POND_PARTITIONS was set explicitly */
	const pond_cli_command *cmd; /* the command running */
	PGconn *conn; /* opened by pond_cli_connect, closed by main */
} pond_cli;

/* pond_cli_fn runs a command; argv holds the arguments after its words. */
typedef int (*pond_cli_fn)(pond_cli *cli, int argc, char **argv);

struct pond_cli_command {
	const char *name;    /* the words that select it: "publishers add" */
	const char *args;    /* its arguments for usage: "NAME" */
	const char *summary; /* one line for --help */
	pond_cli_fn run;
};

typedef struct pond_cli_group {
	const pond_cli_command *commands;
	size_t n;
	struct pond_cli_group *next;
} pond_cli_group;

/* pond_cli_register adds a group of commands (called before main). */
void pond_cli_register(pond_cli_group *group);

/* POND_CLI_COMMANDS registers the static array table of commands. */
#define POND_CLI_COMMANDS(table)                                              \
	static pond_cli_group table##_group = {(table),                       \
	                                       POND_CLI_NELEM(table), NULL};  \
	__attribute__((constructor)) static void table##_register(void)       \
	{                                                                     \
		pond_cli_register(&table##_group);                            \
	}

/* pond_cli_opt describes one option of a command: "--role" with a value
 * (value != NULL) or a flag (flag != NULL). */
typedef struct pond_cli_opt {
	const char *name;
	const char **value;
	bool *flag;
} pond_cli_opt;

/* pond_cli_parse splits argv into options (--name VALUE, --name=VALUE,
 * --flag) and positional arguments (into pos, at most maxpos). An unknown
 * option, a missing value or a positional count outside [minpos, maxpos]
 * prints the usage and returns POND_CLI_USAGE. "--" ends the options. */
int pond_cli_parse(pond_cli *cli, int argc, char **argv,
                   const pond_cli_opt *opts, size_t nopts, char **pos,
                   int minpos, int maxpos) POND_MUSTCHECK;

/* pond_cli_usage prints "pond: MSG" and the running command's usage on
 * stderr and returns POND_CLI_USAGE. */
int pond_cli_usage(pond_cli *cli, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* pond_cli_fail prints "pond: MSG" on stderr and returns POND_CLI_FAIL. */
int pond_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* pond_cli_connect opens cli->conn (once) from POND_DSN; on failure it
 * prints why and returns POND_CLI_FAIL. */
int pond_cli_connect(pond_cli *cli, PGconn **connp) POND_MUSTCHECK;

/* pond_cli_name_ok reports whether name is acceptable as a publisher,
 * token or similar name: 1..POND_CLI_NAME_MAX bytes of letters, digits and
 * ".-_:". */
bool pond_cli_name_ok(const char *name);

/* pond_cli_int parses a decimal integer in [min, max]. */
bool pond_cli_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* pond_cli_table collects rows of strings and prints them as aligned
 * columns under a header line. */
typedef struct pond_cli_table {
	size_t ncols;
	const char *const *headers;
	const char *align; /* per column: 'l' or 'r' */
	char **cells;      /* nrows * ncols copies, owned by the table */
	size_t nrows;
	size_t cap;
} pond_cli_table;

/* pond_cli_table_init starts an empty table; headers and align must
 * outlive it. */
void pond_cli_table_init(pond_cli_table *t, size_t ncols,
                         const char *const *headers, const char *align);

/* pond_cli_table_row appends a row of ncols strings (NULL prints "-");
 * the table copies them. */
int pond_cli_table_row(pond_cli_table *t,
                       const char *const *cells) POND_MUSTCHECK;

/* pond_cli_table_result appends every row of res (ncols columns; SQL NULL
 * prints "-"). */
int pond_cli_table_result(pond_cli_table *t,
                          const PGresult *res) POND_MUSTCHECK;

/* pond_cli_print_result prints every row of res as a table on stdout
 * (ncols columns under headers, aligned per align) and frees res; returns
 * POND_CLI_OK, or POND_CLI_FAIL on out of memory. */
int pond_cli_print_result(PGresult *res, size_t ncols,
                          const char *const *headers, const char *align);

/* pond_cli_list runs a command that takes no arguments and prints one
 * query's rows as a table: parses argv (none allowed), connects, runs sql
 * and prints it as pond_cli_print_result does; what names the rows in the
 * failure message ("cannot read the WHAT"). */
int pond_cli_list(pond_cli *cli, int argc, char **argv, const char *sql,
                  size_t ncols, const char *const *headers, const char *align,
                  const char *what);

/* pond_cli_table_print writes the header and the rows to out. */
void pond_cli_table_print(const pond_cli_table *t, FILE *out);

/* pond_cli_table_free frees the rows. */
void pond_cli_table_free(pond_cli_table *t);

/* POND_CLI_PUBLISH_BATCH is how many events go in one IngestBatch. */
#define POND_CLI_PUBLISH_BATCH 500

/* pond_cli_publish_totals sums the per-event statuses of the acks. */
typedef struct pond_cli_publish_totals {
	size_t accepted, duplicate, rejected;
} pond_cli_publish_totals;

/* pond_cli_publish_progress is told after each acked batch how many of
 * the total events have been sent. */
typedef void (*pond_cli_publish_progress)(size_t done, size_t total,
                                          void *arg);

/* pond_cli_publish_open dials ingest at url with a REQ socket (answers
 * bounded in size, waited for at most 30 s); on failure it prints why and
 * returns POND_CLI_FAIL. The caller nng_close()s the socket. */
int pond_cli_publish_open(nng_socket *sock, const char *url) POND_MUSTCHECK;

/* pond_cli_publish sends the events of list (a JSON array of events in
 * their proto3 JSON form) with token in batches, waits for each ack and
 * adds the statuses to tot; rejected events are printed on stderr. An
 * event the codec refuses, a refused batch or a missing answer stops it
 * with POND_CLI_FAIL (after a message). progress (may be NULL) is called
 * after each batch. */
int pond_cli_publish(nng_socket sock, const char *token, const json_t *list,
                     pond_cli_publish_totals *tot,
                     pond_cli_publish_progress progress,
                     void *arg) POND_MUSTCHECK;

/* pond_cli_http sends one HTTP request to base_url ("http://HOST:PORT")
 * + path with "Authorization: Bearer token" and a JSON body (NULL: none),
 * and reads the whole answer: *status and its body in *reply (the caller
 * frees). Returns 0, or -1 when the service could not be reached or did
 * not answer HTTP (a message says which only when it cannot resolve the
 * host). */
int pond_cli_http(const char *base_url, const char *method, const char *path,
                  const char *token, const char *body, int *status,
                  char **reply) POND_MUSTCHECK;

#endif
