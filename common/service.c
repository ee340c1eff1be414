/*
 * service.c - the life of a Pond service (see service.h).
 *
 * Start-up is split at the store: everything local (config, loop, bus, HTTP)
 * comes up at once, so /healthz answers "starting" while the store is still
 * unreachable; a start-up job then retries until the store answers and the
 * schema is there, and only then does the service's own start hook run.
 *
 * Shutdown runs the other way round on SIGTERM or SIGINT: the service's stop
 * hook drains its work, then HTTP, the store pool and the bus close, and
 * uv_run returns when no handle is left.
 */
#include "service.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "stream.h"
#include "token.h"

typedef struct service_state {
	pond_service svc;
	uv_loop_t loop;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_timer_t retry;
	pond_config_var common_vars[7];
	char port_default[16];
	char conns_default[16];
	bool started;
	bool stop_requested;
	int exit_code;
	uint32_t nparts;
} service_state;

static service_state service;

#define COMMON_VAR(env, t, field, def, min, max, secret, help)                \
	(pond_config_var)                                                     \
	{                                                                     \
		(env), (t), offsetof(pond_service_config, field), (def),      \
		        (min), (max), (secret), (help)                        \
	}

static void
service_build_vars(const pond_service_def *def)
{
	snprintf(service.port_default, sizeof(service.port_default), "%u",
	         def->http_port);
	snprintf(service.conns_default, sizeof(service.conns_default), "%d",
	         def->db_conns > 0 ? def->db_conns : 4);
	service.common_vars[0] =
	        COMMON_VAR("POND_DSN", POND_CONFIG_STR, dsn,
	                   "host=/var/run/postgresql dbname=pond", 0, 0, true,
	                   "libpq connection string of the store");
	service.common_vars[1] = COMMON_VAR(
	        "POND_HTTP_ADDR", POND_CONFIG_STR, http_addr, "0.0.0.0", 0, 0,
	        false, "address for HTTP (/healthz, /metrics and the API)");
	service.common_vars[2] =
	        COMMON_VAR("POND_HTTP_PORT", POND_CONFIG_INT, http_port,
	                   service.port_default, 0, 65535, false,
	                   "HTTP port (0 picks a free one)");
	service.common_vars[3] =
	        COMMON_VAR("POND_DB_CONNS", POND_CONFIG_INT, db_conns,
	                   service.conns_default, 1, 64, false,
	                   "store connections (one worker thread each)");
	service.common_vars[4] =
	        COMMON_VAR("POND_LOG_LEVEL", POND_CONFIG_STR, log_level,
	                   "info", 0, 0, false, "error, warn, info or debug");
	service.common_vars[5] = COMMON_VAR(
	        "POND_TZ", POND_CONFIG_STR, tz, "Asia/Shanghai", 0, 0, false,
	        "business time zone for day and week boundaries");
	service.common_vars[6] = COMMON_VAR(
	        "POND_TEST_CLOCK", POND_CONFIG_STR, test_clock, "", 0, 0,
	        false, "tests only: file holding the current time (RFC 3339)");
}

static void
service_usage(const pond_service_def *def, FILE *out)
{
	fprintf(out,
	        "usage: pond-%s [--help | --healthcheck]\n\n%s\n\n"
	        "--healthcheck asks the running service's /healthz on "
	        "127.0.0.1:POND_HTTP_PORT\nand exits 0 when it answers "
	        "200.\n\n"
	        "Configuration is read from the environment:\n\n",
	        def->name, def->summary);
	pond_config_usage(out, service.common_vars,
	                  sizeof(service.common_vars) /
	                          sizeof(service.common_vars[0]));
	if (def->nvars > 0) {
		pond_config_usage(out, def->vars, def->nvars);
	}
}

/* service_healthcheck asks the running service's own /healthz on
 * 127.0.0.1:POND_HTTP_PORT and returns the exit code: 0 for 200, 1 for
 * anything else. Container HEALTHCHECKs run it, so the images need no curl. */
static int
service_healthcheck(const pond_service_config *conf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = 5};
	char buf[64] = "";
	const char req[] = "GET /healthz HTTP/1.0\r\n\r\n";
	int fd, status = 0;

	sa.sin_port = htons((uint16_t)conf->http_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return (1);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) &&
	    read(fd, buf, sizeof(buf) - 1) > 0) {
		sscanf(buf, "HTTP/%*s %d", &status);
	}
	close(fd);
	return (status == 200 ? 0 : 1);
}

/* --- /healthz and /metrics -------------------------------------------------
 */

typedef struct health_check {
	pond_http_req *req;
} health_check;

static int
health_work(PGconn *conn, void *arg)
{
	(void)arg;
	return (pond_pq_exec(conn, "SELECT 1"));
}

static void
health_done(int rv, void *arg)
{
	health_check *hc = arg;
	pond_service *svc = &service.svc;
	char why[160] = "";

	if (rv != 0) {
		pond_http_reply_error(hc->req, 503, "store_unreachable",
		                      "the store does not answer: %s",
		                      pond_strerror(rv));
	} else if (svc->def->healthy != NULL &&
	           !svc->def->healthy(svc, why, sizeof(why))) {
		pond_http_reply_error(hc->req, 503, "unhealthy", "%s", why);
	} else {
		json_t *ok = json_pack("{s:s, s:s}", "status", "ok", "service",
		                       svc->def->name);
		pond_http_reply_json(hc->req, 200, ok);
	}
	free(hc);
}

static void
service_healthz(pond_http_req *req, void *arg)
{
	pond_service *svc = arg;
	health_check *hc;

	if (svc->stopping) {
		pond_http_reply_error(req, 503, "stopping", "shutting down");
		return;
	}
	if (!service.started) {
		pond_http_reply_error(req, 503, "starting",
		                      "waiting for the store and the schema");
		return;
	}
	if ((hc = calloc(1, sizeof(*hc))) == NULL) {
		pond_http_reply_error(req, 503, "no_memory", "out of memory");
		return;
	}
	hc->req = req;
	if (pond_db_submit(svc->db, health_work, health_done, hc) != 0) {
		free(hc);
		pond_http_reply_error(req, 503, "stopping", "shutting down");
	}
}

static void
service_metrics(pond_http_req *req, void *arg)
{
	pond_service *svc = arg;
	size_t len;
	char *text = pond_metrics_render(svc->metrics, &len);

	if (text == NULL) {
		pond_http_reply_error(req, 500, "no_memory", "out of memory");
		return;
	}
	pond_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8",
	                text, len);
	free(text);
}

/* --- start-up ---------------------------------------------------------------
 */

static int
startup_work(PGconn *conn, void *arg)
{
	uint32_t *nparts = arg;

	/* The schema belongs to `pond migrate`; a service only checks it is
	 * there, by the stream heads every service needs. */
	return (pond_stream_partitions(conn, POND_STREAM_EVENTS, nparts));
}

static void service_try_start(uv_timer_t *timer);

static void
startup_done(int rv, void *arg)
{
	pond_service *svc = &service.svc;
	int srv;

	(void)arg;
	if (service.stop_requested) {
		pond_service_stopped(svc);
		return;
	}
	if (rv != 0) {
		pond_log_warn("waiting_for_store", "error=\"%s\" hint=%s",
		              pond_strerror(rv),
		              rv == POND_ENOENT ? "run_pond_migrate"
		                                : "check_POND_DSN");
		uv_timer_start(&service.retry, service_try_start, 1000, 0);
		return;
	}
	svc->conf.partitions = service.nparts;
	if ((srv = svc->def->start(svc)) != 0) {
		pond_log_error("start_failed", "error=\"%s\"",
		               pond_strerror(srv));
		service.exit_code = 1;
		pond_service_stopped(svc);
		return;
	}
	service.started = true;
	pond_log_info("started", "partitions=%" PRIu32 " http_port=%u",
	              service.nparts, pond_http_port(svc->http));
}

static void
service_try_start(uv_timer_t *timer)
{
	(void)timer;
	if (pond_db_submit(service.svc.db, startup_work, startup_done,
	                   &service.nparts) != 0) {
		pond_service_stopped(&service.svc);
	}
}

/* --- shutdown
 * ------------------------------------------------------------------ */

/* SERVICE_STOP_LIMIT_S bounds a stop. NNG 1.5.2 can hang for ever in
 * nng_close (nanomsg/nng#1543: its reaper waits for a task that was
 * prepared but never started; fixed after 1.5.2), and a service that hangs
 * on SIGTERM is SIGKILLed by whoever sent it, later. So a stop that has not
 * finished by then ends the process at once. Nothing is lost either way:
 * an ack goes out only after COMMIT, and a transaction still open when the
 * process ends is rolled back by PostgreSQL; its publisher sends again. */
#define SERVICE_STOP_LIMIT_S 6

static void *
service_stop_watchdog(void *arg)
{
	(void)arg;
	sleep(SERVICE_STOP_LIMIT_S);
	pond_log_warn("stop_stuck", "after_s=%d note=\"%s\"",
	              SERVICE_STOP_LIMIT_S,
	              "exiting now; every ack went out after its commit");
	_exit(service.exit_code);
	return (NULL);
}

static void
service_signal(uv_signal_t *sig, int signum)
{
	pond_service *svc = &service.svc;

	(void)sig;
	if (service.stop_requested) {
		pond_log_warn("signal_again", "signal=%d note=%s", signum,
		              "already stopping");
		return;
	}
	service.stop_requested = true;
	svc->stopping = true;
	pond_log_info("stopping", "signal=%d", signum);
	pthread_t watchdog;
	if (pthread_create(&watchdog, NULL, service_stop_watchdog, NULL) ==
	    0) {
		pthread_detach(watchdog);
	}
	bool waiting = uv_is_active((uv_handle_t *)&service.retry);
	uv_timer_stop(&service.retry);
	if (service.started) {
		svc->def->stop(svc);
	} else if (waiting) {
		pond_service_stopped(svc);
	}
	/* else: the start-up job is in flight; startup_done stops. */
}

static void
service_db_closed(void *arg)
{
	pond_service *svc = arg;

	pond_bus_close(svc->bus);
	pond_metrics_destroy(svc->metrics);
	svc->metrics = NULL;
}

static void
service_http_stopped(void *arg)
{
	pond_service *svc = arg;

	svc->http = NULL;
	pond_db_close(svc->db, service_db_closed, svc);
}

void
pond_service_stopped(pond_service *svc)
{
	static bool once;

	if (once) {
		return;
	}
	once = true;
	uv_close((uv_handle_t *)&service.sigterm, NULL);
	uv_close((uv_handle_t *)&service.sigint, NULL);
	uv_close((uv_handle_t *)&service.retry, NULL);
	pond_http_stop(svc->http, service_http_stopped, svc);
}

/* --- main
 * ------------------------------------------------------------------------ */

static int
service_open(pond_service *svc)
{
	int rv;

	if ((rv = pond_metrics_create(&svc->metrics)) != 0 ||
	    (rv = pond_auth_register_metrics(svc->metrics)) != 0 ||
	    (rv = pond_bus_open(&svc->bus, svc->loop)) != 0 ||
	    (rv = pond_db_open(&svc->db, svc->loop, svc->conf.dsn,
	                       (int)svc->conf.db_conns, svc->def->name)) !=
	            0 ||
	    (rv = pond_http_start(&svc->http, svc->loop, svc->conf.http_addr,
	                          (uint16_t)svc->conf.http_port, 4u << 20,
	                          svc->metrics)) != 0 ||
	    (rv = pond_http_route(svc->http, "GET", "/healthz", false,
	                          service_healthz, svc)) != 0 ||
	    (rv = pond_http_route(svc->http, "GET", "/metrics", false,
	                          service_metrics, svc)) != 0) {
		return (rv);
	}
	return (POND_OK);
}

int
pond_service_main(const pond_service_def *def, int argc, char **argv)
{
	pond_service *svc = &service.svc;
	size_t ncommon =
	        sizeof(service.common_vars) / sizeof(service.common_vars[0]);
	char err[256];
	int rv;

	service_build_vars(def);
	bool healthcheck = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			service_usage(def, stdout);
			return (0);
		}
		if (strcmp(argv[i], "--healthcheck") == 0) {
			healthcheck = true;
			continue;
		}
		fprintf(stderr, "pond-%s: unknown argument '%s'\n\n",
		        def->name, argv[i]);
		service_usage(def, stderr);
		return (2);
	}
	svc->def = def;
	svc->ctx = def->ctx;
	if (pond_config_load(service.common_vars, ncommon, &svc->conf, err,
	                     sizeof(err)) != 0 ||
	    (def->nvars > 0 &&
	     pond_config_load(def->vars, def->nvars, def->conf, err,
	                      sizeof(err)) != 0)) {
		fprintf(stderr, "pond-%s: %s\n", def->name, err);
		return (2);
	}
	if (healthcheck) {
		return (service_healthcheck(&svc->conf));
	}
	if (pond_log_init(def->name, svc->conf.log_level) != 0) {
		fprintf(stderr,
		        "pond-%s: POND_LOG_LEVEL: unknown level '%s'\n",
		        def->name, svc->conf.log_level);
		return (2);
	}
	if (*svc->conf.test_clock != '\0') {
		pond_clock_use_file(svc->conf.test_clock);
	}
	pond_config_log(service.common_vars, ncommon, &svc->conf);
	pond_config_log(def->vars, def->nvars, def->conf);
	signal(SIGPIPE, SIG_IGN);

	svc->loop = &service.loop;
	uv_loop_init(svc->loop);
	uv_signal_init(svc->loop, &service.sigterm);
	uv_signal_init(svc->loop, &service.sigint);
	uv_timer_init(svc->loop, &service.retry);
	uv_signal_start(&service.sigterm, service_signal, SIGTERM);
	uv_signal_start(&service.sigint, service_signal, SIGINT);
	if ((rv = service_open(svc)) != 0) {
		pond_log_error("open_failed", "error=\"%s\"",
		               pond_strerror(rv));
		return (1);
	}
	service_try_start(&service.retry);
	uv_run(svc->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(svc->loop) != 0) {
		pond_log_warn("loop_not_empty", "note=%s",
		              "handles left open");
	}
	pond_config_free(def->vars, def->nvars, def->conf);
	pond_config_free(service.common_vars, ncommon, &svc->conf);
	/* Closed sockets finish on NNG's threads; wait for them, so nothing
	 * is left behind at exit (and the leak checker agrees). */
	nng_fini();
	pond_log_info("stopped", "exit=%d", service.exit_code);
	return (service.exit_code);
}
