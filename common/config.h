/*
 * config.h - configuration from environment variables, driven by a table.
 *
 * Each service declares one table of pond_config_var (name, type, default,
 * help, where the value goes in its config struct); the same table drives
 * parsing, --help and the startup dump, like Redis's static_configs[].
 *
 *   static const pond_config_var vars[] = {
 *       POND_CONF_STR("POND_DSN", struct my_conf, dsn, "host=/tmp",
 *           "libpq connection string of the store"),
 *       POND_CONF_INT("POND_HTTP_PORT", struct my_conf, http_port, "8400",
 *           0, 65535, "HTTP port for /healthz, /metrics and the API"),
 *   };
 */
#ifndef POND_CONFIG_H
#define POND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum pond_config_type {
	POND_CONFIG_STR,  /* char *, owned by the config (pond_config_free) */
	POND_CONFIG_INT,  /* int64_t within [min, max] */
	POND_CONFIG_BOOL, /* bool: 1/0, true/false, yes/no, on/off */
} pond_config_type;

typedef struct pond_config_var {
	const char *env;
	pond_config_type type;
	size_t offset;
	const char *def;
	int64_t min;
	int64_t max;
	bool secret; /* not printed in the startup dump */
	const char *help;
} pond_config_var;

#define POND_CONF_STR(env, type, field, def, help)                            \
	{                                                                     \
		(env), POND_CONFIG_STR, offsetof(type, field), (def), 0, 0,   \
		        false, (help)                                         \
	}
#define POND_CONF_SECRET(env, type, field, def, help)                         \
	{                                                                     \
		(env), POND_CONFIG_STR, offsetof(type, field), (def), 0, 0,   \
		        true, (help)                                          \
	}
#define POND_CONF_INT(env, type, field, def, min, max, help)                  \
	{                                                                     \
		(env), POND_CONFIG_INT, offsetof(type, field), (def), (min),  \
		        (max), false, (help)                                  \
	}
#define POND_CONF_BOOL(env, type, field, def, help)                           \
	{                                                                     \
		(env), POND_CONFIG_BOOL, offsetof(type, field), (def), 0, 0,  \
		        false, (help)                                         \
	}

/* pond_config_load fills conf from the environment, using defaults for
 * unset variables. On a bad value it writes "VAR: why" into err and returns
 * POND_EINVAL. */
int pond_config_load(const pond_config_var *vars, size_t n, void *conf,
                     char *err, size_t errlen) POND_MUSTCHECK;

/* pond_config_usage prints one entry per variable: name, default, help. */
void pond_config_usage(FILE *out, const pond_config_var *vars, size_t n);

/* pond_config_log logs the effective values (secrets masked). */
void pond_config_log(const pond_config_var *vars, size_t n, const void *conf);

/* pond_config_free frees the strings pond_config_load allocated. */
void pond_config_free(const pond_config_var *vars, size_t n, void *conf);

#endif
