/*
 * pond.c - the `pond` ops CLI: configuration, command dispatch, the helpers
 * every command file uses (cli.h), and `pond migrate`.
 *
 * The CLI does by hand what operators do: migrate the schema, manage
 * publishers and API tokens, show stream lag, and whatever later command
 * files register. It talks to the store with one blocking connection; it
 * has no loop, no bus, and exits when its command is done.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "stream.h"

static const pond_config_var cli_vars[] = {
        POND_CONF_SECRET("POND_DSN", pond_cli_config, dsn,
                         "host=/var/run/postgresql dbname=pond",
                         "libpq connection string of the store"),
        POND_CONF_INT("POND_PARTITIONS", pond_cli_config, partitions, "16", 1,
                      POND_MAX_PARTITIONS,
                      "stream partitions, fixed by the first `pond migrate`"),
        POND_CONF_STR("POND_LOG_LEVEL", pond_cli_config, log_level, "warn",
                      "log level on stderr: error, warn, info or debug"),
};

/* cli_groups lists the registered command tables, filled by constructors
 * before main runs, so it needs no lock. */
static pond_cli_group *cli_groups;

void
pond_cli_register(pond_cli_group *group)
{
	group->next = cli_groups;
	cli_groups = group;
}

/* cli_words counts the space-separated words of a command name. */
static int
cli_words(const char *name)
{
	int n = 1;

	for (const char *p = name; *p != '\0'; p++) {
		n += *p == ' ';
	}
	return (n);
}

/* cli_matches reports whether argv starts with the words of name. */
static bool
cli_matches(const char *name, int argc, char **argv)
{
	int i = 0;

	for (const char *p = name; *p != '\0'; i++) {
		size_t len = strcspn(p, " ");
		if (i >= argc || strlen(argv[i]) != len ||
		    strncmp(argv[i], p, len) != 0) {
			return (false);
		}
		p += len;
		p += *p == ' ';
	}
	return (true);
}

static int
cli_command_cmp(const void *a, const void *b)
{
	const pond_cli_command *ca = *(const pond_cli_command *const *)a;
	const pond_cli_command *cb = *(const pond_cli_command *const *)b;

	return (strcmp(ca->name, cb->name));
}

/* cli_commands returns every registered command sorted by name, in an
 * array the caller frees; NULL when out of memory. */
static const pond_cli_command **
cli_commands(size_t *np)
{
	const pond_cli_command **all;
	size_t n = 0;

	for (pond_cli_group *g = cli_groups; g != NULL; g = g->next) {
		n += g->n;
	}
	if ((all = calloc(n + 1, sizeof(*all))) == NULL) {
		return (NULL);
	}
	n = 0;
	for (pond_cli_group *g = cli_groups; g != NULL; g = g->next) {
		for (size_t i = 0; i < g->n; i++) {
			all[n++] = &g->commands[i];
		}
	}
	qsort(all, n, sizeof(*all), cli_command_cmp);
	*np = n;
	return (all);
}

static void
cli_help(FILE *out)
{
	const pond_cli_command **all;
	size_t n = 0;
	int width = 0;

	fprintf(out, "pond - operations CLI of Pond\n\n"
	             "usage: pond COMMAND [ARGS...]\n"
	             "       pond COMMAND --help    usage of one command\n\n"
	             "commands:\n");
	if ((all = cli_commands(&n)) == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int w = (int)(strlen(all[i]->name) + 1 + strlen(all[i]->args));
		width = w > width ? w : width;
	}
	width = width > 44 ? 44 : width;
	for (size_t i = 0; i < n; i++) {
		char line[256];
		snprintf(line, sizeof(line), "%s%s%s", all[i]->name,
		         *all[i]->args != '\0' ? " " : "", all[i]->args);
		if ((int)strlen(line) > width) {
			fprintf(out, "  %s\n  %-*s  %s\n", line, width, "",
			        all[i]->summary);
		} else {
			fprintf(out, "  %-*s  %s\n", width, line,
			        all[i]->summary);
		}
	}
	free(all);
	fprintf(out, "\nenvironment:\n");
	pond_config_usage(out, cli_vars, POND_CLI_NELEM(cli_vars));
	fprintf(out, "\nexit status: 0 done, 1 runtime error (message on "
	             "stderr), 2 usage error\n");
}

static void
cli_command_usage(const pond_cli_command *cmd, FILE *out)
{
	fprintf(out, "usage: pond %s%s%s\n  %s\n", cmd->name,
	        *cmd->args != '\0' ? " " : "", cmd->args, cmd->summary);
}

/* cli_vsay prints "pond: MSG" on stderr. */
static void
cli_vsay(const char *fmt, va_list ap)
{
	fputs("pond: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int
pond_cli_usage(pond_cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vsay(fmt, ap);
	va_end(ap);
	if (cli != NULL && cli->cmd != NULL) {
		cli_command_usage(cli->cmd, stderr);
	}
	return (POND_CLI_USAGE);
}

int
pond_cli_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vsay(fmt, ap);
	va_end(ap);
	return (POND_CLI_FAIL);
}

/* cli_find_opt returns the option that arg names (the part before any
 * '='), or NULL. */
static const pond_cli_opt *
cli_find_opt(const pond_cli_opt *opts, size_t nopts, const char *arg)
{
	size_t len = strcspn(arg, "=");

	for (size_t i = 0; i < nopts; i++) {
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, arg, len) == 0) {
			return (&opts[i]);
		}
	}
	return (NULL);
}

int
pond_cli_parse(pond_cli *cli, int argc, char **argv, const pond_cli_opt *opts,
               size_t nopts, char **pos, int minpos, int maxpos)
{
	bool options = true;
	int npos = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];
		if (options && strcmp(arg, "--") == 0) {
			options = false;
			continue;
		}
		if (!options || arg[0] != '-' || arg[1] == '\0') {
			if (npos >= maxpos) {
				return (pond_cli_usage(
				        cli, "unexpected argument '%s'", arg));
			}
			pos[npos++] = argv[i];
			continue;
		}
		const pond_cli_opt *o = cli_find_opt(opts, nopts, arg);
		const char *eq = strchr(arg, '=');
		if (o == NULL) {
			return (pond_cli_usage(cli, "unknown option '%.*s'",
			                       (int)strcspn(arg, "="), arg));
		}
		if (o->flag != NULL) {
			if (eq != NULL) {
				return (pond_cli_usage(
				        cli, "option %s takes no value",
				        o->name));
			}
			*o->flag = true;
		} else if (eq != NULL) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			return (pond_cli_usage(cli, "option %s needs a value",
			                       o->name));
		}
	}
	if (npos < minpos) {
		return (pond_cli_usage(cli, "missing argument"));
	}
	return (POND_CLI_OK);
}

int
pond_cli_connect(pond_cli *cli, PGconn **connp)
{
	if (cli->conn == NULL &&
	    pond_pq_connect(&cli->conn, cli->conf.dsn, "pond-cli") != 0) {
		/* pond_pq_connect logged libpq's reason; the DSN itself may
		 * hold a password, so it is not echoed. */
		cli->conn = NULL;
		return (pond_cli_fail(
		        "cannot connect to the store (check POND_DSN)"));
	}
	*connp = cli->conn;
	return (POND_CLI_OK);
}

bool
pond_cli_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > POND_CLI_NAME_MAX) {
		return (false);
	}
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(".-_:", c) != NULL)) {
			return (false);
		}
	}
	return (true);
}

bool
pond_cli_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0') {
		return (false);
	}
	v = strtoll(s, &end, 10);
	if (*end != '\0' || v < min || v > max) {
		return (false);
	}
	*out = v;
	return (true);
}

void
pond_cli_table_init(pond_cli_table *t, size_t ncols,
                    const char *const *headers, const char *align)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->headers = headers;
	t->align = align;
}

int
pond_cli_table_row(pond_cli_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap == 0 ? 16 : t->cap * 2;
		char **grown =
		        realloc(t->cells, cap * t->ncols * sizeof(*t->cells));
		if (grown == NULL) {
			return (POND_ENOMEM);
		}
		t->cells = grown;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * t->ncols;
	for (size_t c = 0; c < t->ncols; c++) {
		row[c] = strdup(cells[c] != NULL ? cells[c] : "-");
		if (row[c] == NULL) {
			while (c-- > 0) {
				free(row[c]);
			}
			return (POND_ENOMEM);
		}
	}
	t->nrows++;
	return (POND_OK);
}

int
pond_cli_table_result(pond_cli_table *t, const PGresult *res)
{
	const char *cells[16];
	int rv;

	if (t->ncols > POND_CLI_NELEM(cells) ||
	    (size_t)PQnfields(res) < t->ncols) {
		return (POND_EINVAL);
	}
	for (int r = 0; r < PQntuples(res); r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			cells[c] = PQgetisnull(res, r, (int)c)
			                   ? NULL
			                   : PQgetvalue(res, r, (int)c);
		}
		if ((rv = pond_cli_table_row(t, cells)) != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

/* cli_width counts the characters (not bytes) of a UTF-8 string. */
static int
cli_width(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++) {
		n += ((unsigned char)*s & 0xc0) != 0x80;
	}
	return (n);
}

static void
cli_cell(FILE *out, const char *s, int width, char align, bool last)
{
	int pad = width - cli_width(s);

	if (align == 'r') {
		fprintf(out, "%*s%s", pad, "", s);
	} else if (last) {
		fputs(s, out);
	} else {
		fprintf(out, "%s%*s", s, pad, "");
	}
}

void
pond_cli_table_print(const pond_cli_table *t, FILE *out)
{
	int widths[32] = {0};
	size_t ncols = t->ncols < 32 ? t->ncols : 32;

	for (size_t c = 0; c < ncols; c++) {
		widths[c] = cli_width(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			int w = cli_width(t->cells[r * t->ncols + c]);
			widths[c] = w > widths[c] ? w : widths[c];
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *s =
			        r == 0 ? t->headers[c]
			               : t->cells[(r - 1) * t->ncols + c];
			char align = t->align != NULL && t->align[c] == 'r'
			                     ? 'r'
			                     : 'l';
			if (c > 0) {
				fputs("  ", out);
			}
			cli_cell(out, s, widths[c], align, c + 1 == ncols);
		}
		fputc('\n', out);
	}
}

void
pond_cli_table_free(pond_cli_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++) {
		free(t->cells[i]);
	}
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

int
pond_cli_list(pond_cli *cli, int argc, char **argv, const char *sql,
              size_t ncols, const char *const *headers, const char *align,
              const char *what)
{
	PGresult *res;
	PGconn *conn = NULL;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, NULL, 0, NULL, 0, 0)) != 0 ||
	    (rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	if (pond_pq_query(conn, &res, sql, 0, NULL) != 0) {
		return (pond_cli_fail("cannot read the %s", what));
	}
	return (pond_cli_print_result(res, ncols, headers, align));
}

int
pond_cli_print_result(PGresult *res, size_t ncols, const char *const *headers,
                      const char *align)
{
	pond_cli_table t;
	int rv;

	pond_cli_table_init(&t, ncols, headers, align);
	rv = pond_cli_table_result(&t, res);
	PQclear(res);
	if (rv == 0) {
		pond_cli_table_print(&t, stdout);
	}
	pond_cli_table_free(&t);
	return (rv == 0 ? POND_CLI_OK : pond_cli_fail("out of memory"));
}

/* cli_stored_partitions reads the partition count fixed at install, or 0
 * when the store has not been migrated yet. */
static int
cli_stored_partitions(PGconn *conn, int *nparts)
{
	PGresult *res;
	int rv;

	*nparts = 0;
	bool exists;
	if ((rv = pond_pq_table_exists(conn, "pond_settings", &exists)) != 0) {
		return (rv);
	}
	if (!exists) {
		return (POND_OK);
	}
	if ((rv = pond_pq_query(conn, &res,
	                        "SELECT value FROM pond_settings WHERE key = "
	                        "'partitions'",
	                        0, NULL)) != 0) {
		return (rv);
	}
	if (PQntuples(res) == 1) {
		*nparts = atoi(PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return (POND_OK);
}

static int
cmd_migrate(pond_cli *cli, int argc, char **argv)
{
	const char *parts_arg = NULL;
	const pond_cli_opt opts[] = {{"--partitions", &parts_arg, NULL}};
	int64_t nparts = cli->conf.partitions;
	bool chosen = cli->partitions_from_env;
	int before, after, stored, applied;
	PGconn *conn = NULL;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         NULL, 0, 0)) != 0) {
		return (rv);
	}
	if (parts_arg != NULL) {
		if (!pond_cli_int(parts_arg, 1, POND_MAX_PARTITIONS,
		                  &nparts)) {
			return (pond_cli_usage(cli,
			                       "--partitions: '%s' is not an "
			                       "integer in 1..%d",
			                       parts_arg,
			                       POND_MAX_PARTITIONS));
		}
		chosen = true;
	}
	if ((rv = pond_cli_connect(cli, &conn)) != 0) {
		return (rv);
	}
	if (pond_schema_version(conn, &before) != 0 ||
	    cli_stored_partitions(conn, &stored) != 0) {
		return (pond_cli_fail("cannot read the schema version"));
	}
	/* Without an explicit count the installed one is kept: a plain
	 * `pond migrate` after an upgrade must not fail on the default. */
	if (!chosen && stored > 0) {
		nparts = stored;
	}
	rv = pond_migrate(conn, (int)nparts, &applied);
	/* Read again: another migrator may have fixed the count first. */
	if (rv == POND_EINVAL && cli_stored_partitions(conn, &stored) == 0 &&
	    stored > 0) {
		return (pond_cli_fail("the store was installed with %d "
		                      "partitions; refusing %d (the partition "
		                      "count cannot change)",
		                      stored, (int)nparts));
	}
	if (rv != 0) {
		return (pond_cli_fail(
		        "migrate failed after %d migration(s): %s", applied,
		        pond_strerror(rv)));
	}
	if (pond_schema_version(conn, &after) != 0) {
		return (pond_cli_fail("cannot read the schema version"));
	}
	for (int i = 0; i < pond_migrations_count; i++) {
		const pond_migration *m = &pond_migrations[i];
		if (m->version > before && m->version <= after) {
			printf("applied %s\n", m->name);
		}
	}
	printf("schema version %d, %d migration%s applied, %d partitions\n",
	       after, applied, applied == 1 ? "" : "s", (int)nparts);
	return (POND_CLI_OK);
}

static const pond_cli_command migrate_commands[] = {
        {"migrate", "[--partitions N]",
         "apply pending migrations; N is fixed once", cmd_migrate},
};
POND_CLI_COMMANDS(migrate_commands)

/* cli_wants_help reports whether args ask for the command's usage. */
static bool
cli_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			return (false);
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			return (true);
		}
	}
	return (false);
}

/* cli_find returns the command whose words begin argv, the longest such
 * name winning, or NULL. */
static const pond_cli_command *
cli_find(int argc, char **argv)
{
	const pond_cli_command *best = NULL;

	for (pond_cli_group *g = cli_groups; g != NULL; g = g->next) {
		for (size_t i = 0; i < g->n; i++) {
			const pond_cli_command *c = &g->commands[i];
			if (cli_matches(c->name, argc, argv) &&
			    (best == NULL ||
			     cli_words(c->name) > cli_words(best->name))) {
				best = c;
			}
		}
	}
	return (best);
}

/* cli_unknown explains an unknown command, listing the subcommands when
 * the first word names a group ("pond publishers frob"). */
static int
cli_unknown(int argc, char **argv)
{
	const pond_cli_command **all;
	size_t n = 0;
	bool group = false;

	fprintf(stderr, "pond: unknown command '%s%s%s'\n", argv[0],
	        argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
	if ((all = cli_commands(&n)) != NULL) {
		for (size_t i = 0; i < n; i++) {
			size_t len = strcspn(all[i]->name, " ");
			if (all[i]->name[len] == ' ' &&
			    strlen(argv[0]) == len &&
			    strncmp(all[i]->name, argv[0], len) == 0) {
				if (!group) {
					fputs("one of:\n", stderr);
					group = true;
				}
				fputs("  ", stderr);
				cli_command_usage(all[i], stderr);
			}
		}
		free(all);
	}
	if (!group) {
		fputs("run 'pond --help' for the commands\n", stderr);
	}
	return (POND_CLI_USAGE);
}

int
main(int argc, char **argv)
{
	pond_cli cli = {0};
	char err[256];
	int rv;

	if (argc < 2) {
		cli_help(stderr);
		return (POND_CLI_USAGE);
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		cli_help(stdout);
		return (POND_CLI_OK);
	}
	if ((cli.cmd = cli_find(argc - 1, argv + 1)) == NULL) {
		return (cli_unknown(argc - 1, argv + 1));
	}
	int words = cli_words(cli.cmd->name);
	int cargc = argc - 1 - words;
	char **cargv = argv + 1 + words;
	if (cli_wants_help(cargc, cargv)) {
		cli_command_usage(cli.cmd, stdout);
		return (POND_CLI_OK);
	}
	if (pond_config_load(cli_vars, POND_CLI_NELEM(cli_vars), &cli.conf,
	                     err, sizeof(err)) != 0) {
		fprintf(stderr, "pond: %s\n", err);
		rv = POND_CLI_USAGE;
		goto out;
	}
	if (pond_log_init("pond", cli.conf.log_level) != 0) {
		fprintf(stderr, "pond: POND_LOG_LEVEL: unknown level '%s'\n",
		        cli.conf.log_level);
		rv = POND_CLI_USAGE;
		goto out;
	}
	cli.partitions_from_env = getenv("POND_PARTITIONS") != NULL;
	rv = cli.cmd->run(&cli, cargc, cargv);
	if (fflush(stdout) != 0 && rv == POND_CLI_OK) {
		rv = pond_cli_fail("cannot write the output");
	}

out:
	if (cli.conn != NULL) {
		PQfinish(cli.conn);
	}
	pond_config_free(cli_vars, POND_CLI_NELEM(cli_vars), &cli.conf);
	return (rv);
}
