/*
 * harness.c - helpers for Pond's integration tests (see harness.h).
 *
 * Everything here is blocking and simple on purpose: a test reads top to
 * bottom, and its helpers may take their time. What a test creates is
 * recorded in small lists (processes, databases, clock files) that an
 * atexit handler undoes, so a failed assertion, which ends the test early,
 * leaves nothing running and nothing on disk.
 *
 * This file holds the environment, databases, ports, JSON and clock helpers
 * and the exit handler; harness_proc.c and harness_http.c the rest.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "harness_int.h"
#include "migrate.h"

#define MAX_HANDED_PORTS 1024
#define DB_NAME_LEN      64

/* TEMPLATE_LOCK_KEY is the advisory lock of template builders: "pondtmpl"
 * in ASCII, next to migrate.c's "pondmigr". */
#define TEMPLATE_LOCK_KEY "8101815632391925868"

typedef struct harness_db {
	char name[DB_NAME_LEN];
	struct harness_db *next;
} harness_db;

typedef struct harness_file {
	char path[PATH_MAX];
	struct harness_file *next;
} harness_file;

/* The lock guards the lists and the counters: a test may call the helpers
 * from a thread of its own. */
static pthread_mutex_t harness_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t harness_once = PTHREAD_ONCE_INIT;
static harness_db *created_dbs;
static harness_file *clock_files;
static uint16_t handed_ports[MAX_HANDED_PORTS];
static int handed_count;
static unsigned db_counter;
static pid_t harness_pid; /* the process whose leftovers these are */

static void harness_cleanup(void);

static void
harness_init(void)
{
	harness_pid = getpid();
	atexit(harness_cleanup);
}

void
harness__register(void)
{
	pthread_once(&harness_once, harness_init);
}

int64_t
harness__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void
harness__sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

void
harness__buf_append(char **buf, size_t *len, size_t *cap, const void *data,
                    size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap > 0 ? *cap : 1024;

		while (ncap < *len + n + 1) {
			ncap *= 2;
		}
		*buf = realloc(*buf, ncap);
		cr_assert(*buf != NULL, "out of memory");
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* --- environment --- */

void
pond_test_require_pg(void)
{
	const char *host = getenv("POND_TEST_PGHOST");

	if (host == NULL || *host == '\0') {
		cr_skip_test(
		        "POND_TEST_PGHOST is not set: this test needs the "
		        "PostgreSQL that tests/run.sh starts (make test, or "
		        "sh tests/run.sh build/asan)");
	}
}

/* mkdir_p creates path and its parents. */
static int
mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		return (-1);
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
				return (-1);
			}
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
		return (-1);
	}
	return (0);
}

const char *
pond_test_artifacts_dir(void)
{
	const char *dir = getenv("POND_TEST_ARTIFACTS");

	if (dir == NULL || *dir == '\0') {
		dir = "/tmp/pond-test-artifacts";
	}
	cr_assert(mkdir_p(dir) == 0, "cannot create %s: %s", dir,
	          strerror(errno));
	return (dir);
}

/* --- databases and SQL --- */

/* dsn_append appends " key=value" to buf, quoting value the way libpq
 * reads it when it holds a space, a quote or a backslash. */
static void
dsn_append(char *buf, size_t len, const char *key, const char *value)
{
	size_t n = strlen(buf);
	bool quote = *value == '\0' || strpbrk(value, " '\\\t") != NULL;

	n += snprintf(buf + n, n < len ? len - n : 0, "%s%s=%s",
	              n > 0 ? " " : "", key, quote ? "'" : "");
	for (const char *v = value; *v != '\0'; v++) {
		if (quote && (*v == '\'' || *v == '\\')) {
			n += snprintf(buf + n, n < len ? len - n : 0, "\\");
		}
		n += snprintf(buf + n, n < len ? len - n : 0, "%c", *v);
	}
	n += snprintf(buf + n, n < len ? len - n : 0, "%s", quote ? "'" : "");
	cr_assert(n < len, "DSN does not fit in %zu bytes", len);
}

/* cluster_dsn writes the DSN of database dbname on the test cluster. */
static void
cluster_dsn(char *buf, size_t len, const char *dbname)
{
	const char *port = getenv("POND_TEST_PGPORT");

	pond_test_require_pg();
	cr_assert(len > 0);
	buf[0] = '\0';
	dsn_append(buf, len, "host", getenv("POND_TEST_PGHOST"));
	dsn_append(buf, len, "port", port != NULL ? port : "5432");
	dsn_append(buf, len, "user", "postgres");
	dsn_append(buf, len, "dbname", dbname);
}

PGconn *
pond_test_pg_connect(const char *dsn)
{
	PGconn *conn = PQconnectdb(dsn);

	cr_assert(conn != NULL, "out of memory connecting to %s", dsn);
	if (PQstatus(conn) != CONNECTION_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQfinish(conn);
		cr_assert_fail("cannot connect to %s: %s", dsn, msg);
	}
	return (conn);
}

/* sql_run runs sql on a new connection and returns its result, failing the
 * test if it did not succeed. The caller PQclear()s the result. */
static PGresult *
sql_run(const char *dsn, const char *sql)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		cr_assert_fail("SQL failed: %s\n  in: %s", msg, sql);
	}
	PQfinish(conn);
	return (res);
}

void
pond_test_sql_exec(const char *dsn, const char *sql)
{
	PQclear(sql_run(dsn, sql));
}

/* sql_single returns the one row, one column result of sql. */
static PGresult *
sql_single(const char *dsn, const char *sql)
{
	PGresult *res = sql_run(dsn, sql);
	int rows = PQntuples(res), cols = PQnfields(res);

	if (rows != 1 || cols != 1) {
		PQclear(res);
		cr_assert_fail("expected one row of one column, got %d rows "
		               "of %d columns\n  from: %s",
		               rows, cols, sql);
	}
	return (res);
}

long long
pond_test_sql_int(const char *dsn, const char *sql)
{
	PGresult *res = sql_single(dsn, sql);
	char text[64], *end;
	long long v;

	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		cr_assert_fail("expected an integer, got NULL\n  from: %s",
		               sql);
	}
	snprintf(text, sizeof(text), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	if (strcmp(text, "t") == 0 || strcmp(text, "f") == 0) {
		return (text[0] == 't');
	}
	errno = 0;
	v = strtoll(text, &end, 10);
	cr_assert(errno == 0 && end != text && *end == '\0',
	          "expected an integer, got '%s'\n  from: %s", text, sql);
	return (v);
}

char *
pond_test_sql_text(const char *dsn, const char *sql)
{
	PGresult *res = sql_single(dsn, sql);
	char *v = NULL;

	if (!PQgetisnull(res, 0, 0)) {
		v = strdup(PQgetvalue(res, 0, 0));
		cr_assert(v != NULL);
	}
	PQclear(res);
	return (v);
}

/* db_forget removes name from the databases dropped at exit. */
static void
db_forget(const char *name)
{
	pthread_mutex_lock(&harness_lock);
	for (harness_db **p = &created_dbs; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->name, name) == 0) {
			harness_db *db = *p;

			*p = db->next;
			free(db);
			break;
		}
	}
	pthread_mutex_unlock(&harness_lock);
}

/* db_register records name for dropping when the test process exits. */
static void
db_register(const char *name)
{
	harness_db *db = calloc(1, sizeof(*db));

	cr_assert(db != NULL);
	snprintf(db->name, sizeof(db->name), "%s", name);
	pthread_mutex_lock(&harness_lock);
	db->next = created_dbs;
	created_dbs = db;
	pthread_mutex_unlock(&harness_lock);
}

/* quiet_notice drops a server notice ("... does not exist, skipping"):
 * the harness's own housekeeping is not news to the person reading. */
static void
quiet_notice(void *arg, const char *message)
{
}

/* admin_connect connects to the cluster's postgres database. */
static PGconn *
admin_connect(void)
{
	char admin[POND_TEST_DSN_LEN];
	PGconn *conn;

	cluster_dsn(admin, sizeof(admin), "postgres");
	conn = pond_test_pg_connect(admin);
	PQsetNoticeProcessor(conn, quiet_notice, NULL);
	return (conn);
}

/* admin_exec runs sql on conn, failing the test if it fails. */
static void
admin_exec(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		cr_assert_fail("%s: %s", sql, msg);
	}
	PQclear(res);
}

/* db_create_from creates a new database, a copy of template (NULL: the
 * cluster's default, template1), and writes its DSN. */
static void
db_create_from(const char *template, char *dsn_out, size_t len)
{
	char name[DB_NAME_LEN], sql[256];
	PGconn *conn;

	harness__register();
	conn = admin_connect();
	for (int attempt = 0;; attempt++) {
		PGresult *res;
		const char *state;
		char msg[512];

		/* The pid alone is not unique: a later test process of the
		 * same run may get a pid again. A taken name is skipped. */
		pthread_mutex_lock(&harness_lock);
		snprintf(name, sizeof(name), "pond_t_%ld_%u", (long)getpid(),
		         db_counter++);
		pthread_mutex_unlock(&harness_lock);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s%s%s", name,
		         template != NULL ? " TEMPLATE " : "",
		         template != NULL ? template : "");
		res = PQexec(conn, sql);
		if (PQresultStatus(res) == PGRES_COMMAND_OK) {
			PQclear(res);
			break;
		}
		/* 42P04: the name is taken. 55006: someone is connected to
		 * the template (PostgreSQL has already waited 5 s). */
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state != NULL && attempt < 20 &&
		    (strcmp(state, "42P04") == 0 ||
		     strcmp(state, "55006") == 0)) {
			PQclear(res);
			continue;
		}
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQclear(res);
		PQfinish(conn);
		cr_assert_fail("%s: %s", sql, msg);
	}
	PQfinish(conn);
	db_register(name);
	cluster_dsn(dsn_out, len, name);
}

void
pond_test_db_create(char *dsn_out, size_t len)
{
	db_create_from(NULL, dsn_out, len);
}

/* migrate_dsn runs pond_migrate on the database dsn names. */
static void
migrate_dsn(const char *dsn, int nparts)
{
	PGconn *conn = pond_test_pg_connect(dsn);
	int rv = pond_migrate(conn, nparts, NULL);

	if (rv != 0) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
		PQfinish(conn);
		cr_assert_fail("pond_migrate(%d partitions) on %s: %s: %s",
		               nparts, dsn, pond_strerror(rv), msg);
	}
	PQfinish(conn);
}

/* template_ensure makes sure template database tpl, migrated with nparts
 * partitions, exists. The first test to need it builds it while holding
 * an advisory lock that the others wait on; it is built under another name
 * and renamed when complete, so a builder that dies leaves no half-built
 * template behind. Connections to it are then refused, because CREATE
 * DATABASE cannot copy a database anyone is connected to. */
static void
template_ensure(const char *tpl, int nparts)
{
	char sql[256], build[DB_NAME_LEN + 24], dsn[POND_TEST_DSN_LEN];
	const char *params[] = {tpl};
	PGconn *conn = admin_connect();
	PGresult *res;
	bool exists;

	admin_exec(conn, "SELECT pg_advisory_lock(" TEMPLATE_LOCK_KEY ")");
	res = PQexecParams(
	        conn, "SELECT count(*) FROM pg_database WHERE datname = $1", 1,
	        NULL, params, NULL, NULL, 0);
	exists = PQresultStatus(res) == PGRES_TUPLES_OK &&
	         strcmp(PQgetvalue(res, 0, 0), "1") == 0;
	PQclear(res);
	if (!exists) {
		snprintf(build, sizeof(build), "%s_b%ld", tpl, (long)getpid());
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s",
		         build);
		admin_exec(conn, sql);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", build);
		admin_exec(conn, sql);
		cluster_dsn(dsn, sizeof(dsn), build);
		migrate_dsn(dsn, nparts);
		snprintf(sql, sizeof(sql), "ALTER DATABASE %s RENAME TO %s",
		         build, tpl);
		admin_exec(conn, sql);
		snprintf(sql, sizeof(sql),
		         "ALTER DATABASE %s ALLOW_CONNECTIONS false", tpl);
		admin_exec(conn, sql);
	}
	/* Closing the session releases the lock. */
	PQfinish(conn);
}

void
pond_test_db_create_migrated(char *dsn_out, size_t len, int nparts)
{
	char tpl[DB_NAME_LEN];

	/* Copying a migrated template is much cheaper than migrating each
	 * new database. The name holds what makes two templates differ; the
	 * migrations are compiled in, so one run never sees two sets. */
	cr_assert(pond_migrations_count > 0, "no migrations compiled in");
	cr_assert(nparts > 0, "nparts must be positive");
	snprintf(tpl, sizeof(tpl), "pond_tpl_v%d_p%d",
	         pond_migrations[pond_migrations_count - 1].version, nparts);
	template_ensure(tpl, nparts);
	db_create_from(tpl, dsn_out, len);
}

/* db_drop drops database name on the test cluster; it reports failure
 * instead of asserting because the exit handler uses it too. */
static int
db_drop(const char *name, char *err, size_t errlen)
{
	const char *kw[] = {"host", "port", "user", "dbname", NULL};
	const char *val[] = {getenv("POND_TEST_PGHOST"),
	                     getenv("POND_TEST_PGPORT"), "postgres",
	                     "postgres", NULL};
	PGconn *conn = PQconnectdbParams(kw, val, 0);
	PGresult *res = NULL;
	char *ident = NULL, sql[256];
	int rv = -1;

	PQsetNoticeProcessor(conn, quiet_notice, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		goto out;
	}
	if ((ident = PQescapeIdentifier(conn, name, strlen(name))) == NULL) {
		goto out;
	}
	/* FORCE ends the sessions of services the test left running. */
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         ident);
	res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		rv = 0;
	}
out:
	if (rv != 0 && err != NULL) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
	}
	PQclear(res);
	PQfreemem(ident);
	PQfinish(conn);
	return (rv);
}

void
pond_test_db_drop(const char *dsn)
{
	PQconninfoOption *opts;
	char name[DB_NAME_LEN] = "", *errmsg = NULL, err[512];

	pond_test_require_pg();
	opts = PQconninfoParse(dsn, &errmsg);
	cr_assert(opts != NULL, "bad DSN '%s': %s", dsn,
	          errmsg != NULL ? errmsg : "out of memory");
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "dbname") == 0 && o->val != NULL) {
			snprintf(name, sizeof(name), "%s", o->val);
		}
	}
	PQconninfoFree(opts);
	cr_assert(name[0] != '\0', "DSN '%s' names no database", dsn);
	cr_assert(db_drop(name, err, sizeof(err)) == 0, "DROP DATABASE %s: %s",
	          name, err);
	db_forget(name);
}

/* --- ports --- */

/* port_handed reports whether port was already handed out; the caller
 * holds harness_lock. */
static bool
port_handed(uint16_t port)
{
	for (int i = 0; i < handed_count; i++) {
		if (handed_ports[i] == port) {
			return (true);
		}
	}
	return (false);
}

uint16_t
pond_test_free_port(void)
{
	for (int attempt = 0; attempt < 1000; attempt++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
		                         .sin_addr.s_addr =
		                                 htonl(INADDR_LOOPBACK)};
		socklen_t salen = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		uint16_t port;

		cr_assert(fd >= 0, "socket: %s", strerror(errno));
		/* Port 0: the kernel picks a free ephemeral port. */
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    getsockname(fd, (struct sockaddr *)&sa, &salen) != 0) {
			int e = errno;

			close(fd);
			cr_assert_fail("bind 127.0.0.1:0: %s", strerror(e));
		}
		close(fd);
		port = ntohs(sa.sin_port);
		pthread_mutex_lock(&harness_lock);
		if (!port_handed(port) && handed_count < MAX_HANDED_PORTS) {
			handed_ports[handed_count++] = port;
			pthread_mutex_unlock(&harness_lock);
			return (port);
		}
		pthread_mutex_unlock(&harness_lock);
	}
	cr_assert_fail("no free port found (%d handed out already)",
	               handed_count);
	return (0); /* not reached: a failed assertion ends the test */
}

/* --- JSON --- */

json_t *
pond_test_json(const char *text)
{
	json_error_t err;
	json_t *j;

	cr_assert(text != NULL, "expected JSON, got NULL");
	j = json_loads(text, JSON_DECODE_ANY, &err);
	cr_assert(j != NULL, "not JSON (line %d column %d: %s):\n%s", err.line,
	          err.column, err.text, text);
	return (j);
}

/* --- clock --- */

void
pond_test_clock_file(char *path, size_t len)
{
	const char *tmpdir = getenv("TMPDIR");
	harness_file *file;
	int fd, n;

	harness__register();
	file = calloc(1, sizeof(*file));
	cr_assert(file != NULL);
	snprintf(file->path, sizeof(file->path), "%s/pond-clock-XXXXXX",
	         tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp");
	fd = mkstemp(file->path);
	cr_assert(fd >= 0, "mkstemp %s: %s", file->path, strerror(errno));
	close(fd);
	pthread_mutex_lock(&harness_lock);
	file->next = clock_files;
	clock_files = file;
	pthread_mutex_unlock(&harness_lock);
	n = snprintf(path, len, "%s", file->path);
	cr_assert(n > 0 && (size_t)n < len, "clock path too long");
	pond_test_clock_write(path, POND_TEST_CLOCK_START);
}

void
pond_test_clock_write(const char *path, const char *rfc3339)
{
	static _Atomic unsigned serial;
	char tmp[PATH_MAX];
	pond_time t;
	FILE *f;

	cr_assert(rfc3339 != NULL && *rfc3339 != '\0', "no time given");
	cr_assert(strspn(rfc3339, "0123456789") == strlen(rfc3339) ||
	                  pond_time_parse_rfc3339(rfc3339, &t) == 0,
	          "not an RFC 3339 time: '%s'", rfc3339);
	/* A reader opening the file mid-write would see a torn time: write a
	 * new file beside it and rename it over the old one. */
	snprintf(tmp, sizeof(tmp), "%s.%ld.%u.tmp", path, (long)getpid(),
	         serial++);
	f = fopen(tmp, "w");
	cr_assert(f != NULL, "open %s: %s", tmp, strerror(errno));
	fprintf(f, "%s\n", rfc3339);
	cr_assert(fclose(f) == 0, "write %s: %s", tmp, strerror(errno));
	cr_assert(rename(tmp, path) == 0, "rename %s: %s", tmp,
	          strerror(errno));
}

void
pond_test_clock_set(const char *path, pond_time t)
{
	char buf[64];

	pond_test_clock_write(path,
	                      pond_time_format_rfc3339(t, buf, sizeof(buf)));
}

/* --- cleanup at exit --- */

/* harness_cleanup undoes what the test left: it kills its processes first,
 * so that nothing is still using the databases it then drops. */
static void
harness_cleanup(void)
{
	/* A child the test forked that calls exit() must not undo its
	 * parent's world. */
	if (getpid() != harness_pid) {
		return;
	}
	harness__procs_kill();
	/* NNG frees a closed socket's queued messages on its own threads,
	 * possibly after exit() has begun; nng_fini waits for that, so the
	 * leak check at exit sees only real leaks. */
	nng_fini();
	pthread_mutex_lock(&harness_lock);
	while (created_dbs != NULL) {
		harness_db *db = created_dbs;

		created_dbs = db->next;
		(void)db_drop(db->name, NULL, 0);
		free(db);
	}
	while (clock_files != NULL) {
		harness_file *file = clock_files;

		clock_files = file->next;
		unlink(file->path);
		free(file);
	}
	pthread_mutex_unlock(&harness_lock);
}
