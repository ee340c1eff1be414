/*
 * pond-dashboard-serve.c - serves the embedded dashboard files alone, for
 * the browser test (tests/dashboard/): its mock reporting API passes every
 * request outside /v1/ here, so the browser gets the page, ECharts and
 * their ETags and gzip from the same code pond-reporting runs.
 *
 *   pond-dashboard-serve [PORT]   (0 or none: a free port)
 *
 * It prints "port N" on stdout once listening and stops on SIGTERM or
 * SIGINT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include "dashboard.h"
#include "http.h"

typedef struct serve {
	pond_http *http;
	uv_signal_t sigterm, sigint;
} serve;

static void
on_signal(uv_signal_t *sig, int signum)
{
	serve *s = sig->data;

	(void)signum;
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	pond_http_stop(s->http, NULL, NULL);
}

int
main(int argc, char **argv)
{
	serve s;
	long port = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
	int rv;

	if (argc > 2 || port < 0 || port > 65535) {
		fprintf(stderr, "usage: pond-dashboard-serve [PORT]\n");
		return (2);
	}
	if ((rv = pond_http_start(&s.http, uv_default_loop(), "127.0.0.1",
	                          (uint16_t)port, 1024, NULL)) != 0 ||
	    (rv = reporting_dashboard_register(s.http)) != 0) {
		fprintf(stderr, "pond-dashboard-serve: cannot serve (%d)\n",
		        rv);
		return (1);
	}
	uv_signal_init(uv_default_loop(), &s.sigterm);
	uv_signal_init(uv_default_loop(), &s.sigint);
	s.sigterm.data = s.sigint.data = &s;
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_start(&s.sigint, on_signal, SIGINT);
	printf("port %u\n", pond_http_port(s.http));
	fflush(stdout);
	uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	uv_loop_close(uv_default_loop());
	return (0);
}
