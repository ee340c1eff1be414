/*
 * harness.h - helpers for Pond's integration tests (Criterion).
 *
 * Criterion runs every test in its own process, several at once, so each
 * test builds its own world: its own database on the shared throwaway
 * cluster that tests/run.sh starts (POND_TEST_PGHOST, POND_TEST_PGPORT), its
 * own loopback ports, its own service processes (from POND_BIN_DIR, logging
 * to POND_TEST_ARTIFACTS/<log_name>.log) and its own clock file.
 *
 * Helpers that set something up fail the test with cr_assert when they
 * cannot, with a message that says why; helpers that probe (the HTTP client,
 * waiting for an exit) return an error for the test to judge.
 *
 * Whatever a test leaves behind is undone when its process exits: spawned
 * processes are killed (they also die with the test process through
 * PR_SET_PDEATHSIG), its databases are dropped, its clock files removed.
 * Spawn from the test's own thread: the death signal follows the thread
 * that forked, so a child spawned from a helper thread dies with that thread.
 *
 * Exit statuses (pond_test_wait_exit, pond_test_stop, pond_test_run) are
 * shell-style: the exit code, or 128 + the signal number if a signal ended
 * the process (an ASan abort is 134, SIGKILL 137).
 */
#ifndef POND_TEST_HARNESS_H
#define POND_TEST_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"

/* POND_TEST_DSN_LEN is enough for any DSN the harness writes. */
#define POND_TEST_DSN_LEN 512

/* POND_TEST_CLOCK_START is the time a new clock file holds. */
#define POND_TEST_CLOCK_START "2026-01-05T00:00:00Z"

/* --- environment ----------------------------------------------------------
 */

/* pond_test_require_pg skips the test unless tests/run.sh has started a
 * cluster for it (POND_TEST_PGHOST is set). The database helpers call it. */
void pond_test_require_pg(void);

/* pond_test_artifacts_dir returns the directory for logs and other files a
 * run leaves for a human to read (created if missing). */
const char *pond_test_artifacts_dir(void);

/* --- databases and SQL -----------------------------------------------------
 */

/* pond_test_db_create creates a new, empty, uniquely named database and
 * writes its libpq DSN ("host=... port=... user=postgres dbname=...") into
 * dsn_out. It is dropped when the test process exits. */
void pond_test_db_create(char *dsn_out, size_t len);

/* pond_test_db_create_migrated is pond_test_db_create followed by
 * pond_migrate with nparts stream partitions. */
void pond_test_db_create_migrated(char *dsn_out, size_t len, int nparts);

/* pond_test_db_drop drops the database dsn names, even while clients are
 * still connected to it. */
void pond_test_db_drop(const char *dsn);

/* pond_test_pg_connect connects to dsn; the caller PQfinish()es it. */
PGconn *pond_test_pg_connect(const char *dsn);

/* pond_test_sql_exec runs sql (one or more statements) on its own
 * connection and asserts that it succeeded. */
void pond_test_sql_exec(const char *dsn, const char *sql);

/* pond_test_sql_int runs sql, asserts it returns exactly one non-NULL value
 * and returns it as an integer (a boolean is 1 or 0). */
long long pond_test_sql_int(const char *dsn, const char *sql);

/* pond_test_sql_text runs sql, asserts it returns exactly one row of one
 * column and returns the value as a string the caller frees (NULL for SQL
 * NULL). */
char *pond_test_sql_text(const char *dsn, const char *sql);

/* --- ports ------------------------------------------------------------------
 */

/* pond_test_free_port returns a TCP port on 127.0.0.1 that was free a moment
 * ago, never the same one twice in a process. */
uint16_t pond_test_free_port(void);

/* --- processes -------------------------------------------------------------
 */

typedef struct pond_test_proc pond_test_proc;

/* pond_test_spawn starts prog with no arguments: a bare name is looked up in
 * POND_BIN_DIR ("pond-ingest"), a name with a slash is used as it is.
 * env_kv (NULL-terminated "K=V" strings, or NULL) is added to the test's
 * environment, replacing variables of the same name; a bare "K" removes K.
 * stdin is /dev/null; stdout and stderr are appended to
 * POND_TEST_ARTIFACTS/<log_name>.log (log_name NULL: prog's base name).
 * The handle is freed by pond_test_stop. */
pond_test_proc *pond_test_spawn(const char *prog, const char *const *env_kv,
                                const char *log_name);

/* pond_test_spawn_argv is pond_test_spawn with arguments: argv[0] is the
 * program, looked up like pond_test_spawn's prog. */
pond_test_proc *pond_test_spawn_argv(const char *const *argv,
                                     const char *const *env_kv,
                                     const char *log_name);

/* pond_test_proc_pid returns the process id. */
pid_t pond_test_proc_pid(const pond_test_proc *proc);

/* pond_test_proc_log returns the path of the process's log file. */
const char *pond_test_proc_log(const pond_test_proc *proc);

/* pond_test_kill sends sig to the process unless it has been reaped. */
void pond_test_kill(pond_test_proc *proc, int sig);

/* pond_test_wait_exit waits up to timeout_ms (negative: for ever) for the
 * process to exit. Returns 0 and sets *status (may be NULL) when it has,
 * POND_ETIMEDOUT when it is still running. */
int pond_test_wait_exit(pond_test_proc *proc, int timeout_ms, int *status);

/* pond_test_stop sends SIGTERM, waits up to 10 s, then sends SIGKILL; it
 * frees proc and returns the exit status (0 for a clean shutdown). */
int pond_test_stop(pond_test_proc *proc);

/* pond_test_stop_timeout is pond_test_stop with a chosen grace period. */
int pond_test_stop_timeout(pond_test_proc *proc, int timeout_ms);

/* pond_test_run runs argv (looked up like pond_test_spawn) to completion,
 * up to 60 s, and returns its exit status. stderr goes to the log; stdout
 * too when out is NULL, otherwise into *out (NUL-terminated, the caller
 * frees). */
int pond_test_run(const char *const *argv, const char *const *env_kv,
                  const char *log_name, char **out);

/* pond_test_log_path writes the path of the log file for log_name. */
void pond_test_log_path(const char *log_name, char *path, size_t len);

/* pond_test_log_wait waits up to timeout_ms for the log of log_name to
 * contain needle and reports whether it does. */
bool pond_test_log_wait(const char *log_name, const char *needle,
                        int timeout_ms);

/* --- HTTP client
 * ------------------------------------------------------------- HTTP/1.1 over
 * a plain blocking socket to 127.0.0.1, one request per connection
 * (Connection: close). Bodies may be Content-Length delimited, chunked, or run
 * to the end of the connection. */

typedef struct pond_test_http_resp {
	int status; /* 200, 404, ... */
	char *head; /* status line and headers, NUL-terminated */
	char *body; /* decoded body, NUL-terminated (malloc'd) */
	size_t len; /* body length, without the NUL */
} pond_test_http_resp;

/* pond_test_http sends one request and reads the whole response into resp,
 * which the caller frees with pond_test_http_resp_free. headers are
 * NULL-terminated "Name: value" strings (or NULL). A body (body_len 0 means
 * strlen(body)) is sent with Content-Length, as is an empty one for POST,
 * PUT and PATCH. Returns 0, or POND_EIO (could not connect or send, or the
 * connection broke), POND_ETIMEDOUT (no full answer within 30 s) or
 * POND_EINVAL (not an HTTP response); resp is then empty. */
int pond_test_http(const char *method, uint16_t port, const char *path,
                   const char *const *headers, const char *body,
                   size_t body_len, pond_test_http_resp *resp);

/* pond_test_http_raw sends the bytes of req as they are (a hand-made,
 * possibly malformed, request) and reads the response like pond_test_http. */
int pond_test_http_raw(uint16_t port, const void *req, size_t req_len,
                       pond_test_http_resp *resp);

/* pond_test_http_header returns the value of the response header name
 * (case-insensitive) as a string the caller frees, or NULL if absent. */
char *pond_test_http_header(const pond_test_http_resp *resp, const char *name);

/* pond_test_http_resp_free frees what a response holds (not resp). */
void pond_test_http_resp_free(pond_test_http_resp *resp);

/* pond_test_http_bearer sends one request with "Authorization: Bearer
 * token" (token NULL: no header), fails the test if no answer comes, and
 * returns the status; *answer (answer may be NULL) gets the body parsed as
 * JSON, which the caller json_decref()s. */
int pond_test_http_bearer(const char *method, uint16_t port, const char *token,
                          const char *path, const char *body, json_t **answer);

/* pond_test_wait_http_ok polls GET http://127.0.0.1:port/path until it
 * answers 200, and fails the test if it has not within timeout_ms. */
void pond_test_wait_http_ok(uint16_t port, const char *path, int timeout_ms);

/* pond_test_wait_ready is pond_test_wait_http_ok that fails at once, naming
 * its log, if proc exits before answering. */
void pond_test_wait_ready(pond_test_proc *proc, uint16_t port,
                          const char *path, int timeout_ms);

/* --- JSON
 * -------------------------------------------------------------------- */

/* pond_test_json parses text, failing the test if it is not JSON; the
 * caller json_decref()s the result. */
json_t *pond_test_json(const char *text);

/* --- clock
 * --------------------------------------------------------------------
 * Services started with POND_TEST_CLOCK=<file> read "now" from the file on
 * every call (common/clock.h); the test moves time by rewriting it. */

/* pond_test_clock_file creates a clock file holding POND_TEST_CLOCK_START
 * and writes its path into path; it is removed when the test process
 * exits. */
void pond_test_clock_file(char *path, size_t len);

/* pond_test_clock_write sets the clock file at path to rfc3339 (or to a
 * count of microseconds since the epoch), atomically: readers see the old
 * time or the new one, never a torn write. */
void pond_test_clock_write(const char *path, const char *rfc3339);

/* pond_test_clock_set is pond_test_clock_write for a pond_time. */
void pond_test_clock_set(const char *path, pond_time t);

#endif
