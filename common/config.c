/*
 * config.c - table-driven environment configuration (see config.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static int
config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return (POND_OK);
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return (POND_OK);
		}
	}
	return (POND_EINVAL);
}

static int
config_set(const pond_config_var *v, void *conf, const char *value, char *err,
           size_t errlen)
{
	char *field = (char *)conf + v->offset;
	char *end;
	long long ll;

	switch (v->type) {
	case POND_CONFIG_STR: {
		char *copy = strdup(value);
		if (copy == NULL) {
			return (POND_ENOMEM);
		}
		free(*(char **)field);
		*(char **)field = copy;
		return (POND_OK);
	}
	case POND_CONFIG_INT:
		errno = 0;
		ll = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' ||
		    ll < v->min || ll > v->max) {
			snprintf(err, errlen,
			         "%s: '%s' is not an integer in [%lld, %lld]",
			         v->env, value, (long long)v->min,
			         (long long)v->max);
			return (POND_EINVAL);
		}
		*(int64_t *)field = ll;
		return (POND_OK);
	case POND_CONFIG_BOOL:
		if (config_parse_bool(value, (bool *)field) != 0) {
			snprintf(err, errlen, "%s: '%s' is not a boolean",
			         v->env, value);
			return (POND_EINVAL);
		}
		return (POND_OK);
	}
	return (POND_EINVAL);
}

int
pond_config_load(const pond_config_var *vars, size_t n, void *conf, char *err,
                 size_t errlen)
{
	int rv;

	for (size_t i = 0; i < n; i++) {
		const char *value = getenv(vars[i].env);
		if (value == NULL) {
			value = vars[i].def;
		}
		if ((rv = config_set(&vars[i], conf, value, err, errlen)) !=
		    0) {
			if (rv == POND_ENOMEM) {
				snprintf(err, errlen, "out of memory");
			}
			return (rv);
		}
	}
	return (POND_OK);
}

void
pond_config_usage(FILE *out, const pond_config_var *vars, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "  %-28s %s\n  %-28s (default: %s)\n",
		        vars[i].env, vars[i].help, "",
		        *vars[i].def != '\0' ? vars[i].def : "empty");
	}
}

void
pond_config_log(const pond_config_var *vars, size_t n, const void *conf)
{
	char quoted[512];

	for (size_t i = 0; i < n; i++) {
		const char *field = (const char *)conf + vars[i].offset;
		switch (vars[i].type) {
		case POND_CONFIG_STR:
			pond_log_info(
			        "config", "var=%s value=%s", vars[i].env,
			        vars[i].secret
			                ? "\"***\""
			                : pond_log_quote(*(char *const *)field,
			                                 quoted,
			                                 sizeof(quoted)));
			break;
		case POND_CONFIG_INT:
			pond_log_info("config", "var=%s value=%lld",
			              vars[i].env,
			              (long long)*(const int64_t *)field);
			break;
		case POND_CONFIG_BOOL:
			pond_log_info("config", "var=%s value=%s", vars[i].env,
			              *(const bool *)field ? "true" : "false");
			break;
		}
	}
}

void
pond_config_free(const pond_config_var *vars, size_t n, void *conf)
{
	for (size_t i = 0; i < n; i++) {
		if (vars[i].type == POND_CONFIG_STR) {
			char **field =
			        (char **)((char *)conf + vars[i].offset);
			free(*field);
			*field = NULL;
		}
	}
}
