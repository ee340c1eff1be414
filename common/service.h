/*
 * service.h - what every Pond service shares: config, loop, store, bus,
 * HTTP with /healthz and /metrics, signals and clean shutdown.
 *
 * A service is a pond_service_def (its name, default port, config table and
 * start/stop hooks) handed to pond_service_main from its main():
 *
 *   1. parse the common and the service's config (--help prints both);
 *   2. open the store pool, the bus, the HTTP server (/healthz, /metrics);
 *   3. call def->start on the loop;
 *   4. on SIGTERM or SIGINT call def->stop, which stops intake, lets what is
 *      in flight finish (or roll back), and calls pond_service_stopped;
 *   5. close HTTP, bus and store, and exit 0.
 */
#ifndef POND_SERVICE_H
#define POND_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"

/* pond_service_config holds the variables every service reads. */
typedef struct pond_service_config {
	char *dsn;          /* POND_DSN */
	char *http_addr;    /* POND_HTTP_ADDR */
	int64_t http_port;  /* POND_HTTP_PORT */
	int64_t db_conns;   /* POND_DB_CONNS */
	char *log_level;    /* POND_LOG_LEVEL */
	char *tz;           /* POND_TZ */
	char *test_clock;   /* POND_TEST_CLOCK */
	int64_t partitions; /* read from the store at start */
} pond_service_config;

typedef struct pond_service pond_service;

typedef struct pond_service_def {
	const char *name;    /* "ingest": logs, metrics prefix, app name */
	const char *summary; /* one line for --help */
	uint16_t http_port;  /* default POND_HTTP_PORT */
	int db_conns;        /* default POND_DB_CONNS */
	const pond_config_var *vars; /* the service's own variables */
	size_t nvars;
	void *conf; /* where vars' offsets point */
	/* start runs on the loop once the common parts are up. */
	int (*start)(pond_service *svc);
	/* stop stops intake and calls pond_service_stopped when drained. */
	void (*stop)(pond_service *svc);
	/* healthy adds a service check to /healthz (may be NULL). */
	bool (*healthy)(pond_service *svc, char *why, size_t len);
	void *ctx; /* the service's own state, for its hooks */
} pond_service_def;

struct pond_service {
	const pond_service_def *def;
	pond_service_config conf;
	uv_loop_t *loop;
	pond_bus *bus;
	pond_db *db;
	pond_http *http;
	pond_metrics *metrics;
	void *ctx; /* def->ctx */
	bool stopping;
};

/* pond_service_main runs the service and returns the process exit code. */
int pond_service_main(const pond_service_def *def, int argc, char **argv);

/* pond_service_stopped tells the framework the service has drained. */
void pond_service_stopped(pond_service *svc);

#endif
