/*
 * migrate.h - the schema migrator.
 *
 * Migrations are the numbered SQL files of deploy/migrations, compiled into
 * the binaries (mk/embed-sql.sh). Each is applied once, in order, inside its
 * own transaction, and recorded in schema_migrations; a transaction-level
 * advisory lock keeps two migrators from racing. Released files are never
 * edited: a change is a new file.
 */
#ifndef POND_MIGRATE_H
#define POND_MIGRATE_H

#include <libpq-fe.h>

#include "err.h"

typedef struct pond_migration {
	int version;
	const char *name;
	const char *sql;
} pond_migration;

/* pond_migrations lists every migration, ascending by version. */
extern const pond_migration pond_migrations[];
extern const int pond_migrations_count;

/* pond_migrate applies the pending migrations and makes sure every stream
 * has nparts rows in stream_heads (nparts is fixed at the first migrate; a
 * later different value is refused with POND_EINVAL). *applied (may be
 * NULL) gets how many migrations ran. */
int pond_migrate(PGconn *conn, int nparts, int *applied) POND_MUSTCHECK;

/* pond_schema_version returns the highest applied version (0 if none). */
int pond_schema_version(PGconn *conn, int *version) POND_MUSTCHECK;

#endif
