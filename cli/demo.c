/*
 * demo.c - `pond demo`: a simulated brand's traffic, published through the
 * real bus, plus the tag rules and campaigns an operator would define.
 *
 * In order: the tag rules go to the tagging service and the campaigns to
 * the scheduler (with an admin token; a service that does not answer is
 * skipped with a message, since the demo's events are worth having
 * without it), then the events (demo_gen.c) are published to ingest over
 * NNG REQ/REP like any publisher (cli/publish.c), with progress on stderr.
 *
 * The window is the --days days before today's midnight (Asia/Shanghai) by
 * the one clock (pond_now, so POND_TEST_CLOCK moves it too), or from
 * --start; no event is ever at or after now. The same seed and window give
 * the same events and ids: publishing them twice stores them once (the
 * second time every event is acked "duplicate"); a window that runs past
 * now is cut there, and a later run adds what has come due since.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "demo.h"

#define DEMO_MAX_CUSTOMERS 1000000
#define DEMO_MAX_DAYS      3650

static const struct {
	const char *name;
	int customers;
} demo_sizes[] = {{"small", 200}, {"medium", 2000}, {"large", 20000}};

/* demo_progress prints how far the publishing is, about every tenth. */
static void
demo_progress(size_t done, size_t total, void *arg)
{
	size_t *shown = arg;

	if (done == total || done * 10 / total > *shown * 10 / total) {
		fprintf(stderr, "demo: sent %zu of %zu events\n", done, total);
		*shown = done;
	}
}

/* demo_parse_size reads --customers: a size name or a number. */
static bool
demo_parse_size(const char *s, int *out)
{
	int64_t n;

	for (size_t i = 0; i < POND_CLI_NELEM(demo_sizes); i++) {
		if (strcmp(s, demo_sizes[i].name) == 0) {
			*out = demo_sizes[i].customers;
			return (true);
		}
	}
	if (!pond_cli_int(s, 1, DEMO_MAX_CUSTOMERS, &n)) {
		return (false);
	}
	*out = (int)n;
	return (true);
}

/* demo_window sets opts->start and end from --days and --start. */
static int
demo_window(pond_cli *cli, const char *days_s, const char *start_s,
            demo_opts *opts)
{
	pond_time now = pond_now();
	char buf[40];
	int64_t days = 90;

	if (days_s != NULL && !pond_cli_int(days_s, 1, DEMO_MAX_DAYS, &days)) {
		return (pond_cli_usage(cli, "--days takes 1 to %d",
		                       DEMO_MAX_DAYS));
	}
	if (start_s == NULL) {
		opts->end = opts->cutoff = demo_day_start(now);
		opts->start = opts->end - days * POND_USEC_PER_DAY;
		return (POND_CLI_OK);
	}
	snprintf(buf, sizeof(buf), "%.10sT00:00:00+08:00", start_s);
	if (strlen(start_s) != 10 ||
	    pond_time_parse_rfc3339(buf, &opts->start) != 0) {
		return (pond_cli_usage(cli,
		                       "--start takes a date: YYYY-MM-DD"));
	}
	if (opts->start >= now) {
		return (pond_cli_usage(cli, "--start %s is not in the past",
		                       start_s));
	}
	opts->end = opts->start + days * POND_USEC_PER_DAY;
	/* Never an event in the future: those wait for a later run. */
	opts->cutoff = opts->end < now ? opts->end : now;
	return (POND_CLI_OK);
}

/* demo_setup defines the tag rules and campaigns, or says why not. */
static void
demo_setup(const char *token, const char *tagging_url,
           const char *scheduler_url, const char *reporting_url,
           const demo_opts *d)
{
	pond_time festival;
	int rv;

	if (token == NULL || *token == '\0') {
		fprintf(stderr, "demo: no admin token (--admin-token or "
		                "POND_ADMIN_TOKEN): tag rules and campaigns "
		                "skipped\n");
		return;
	}
	rv = demo_setup_rules(tagging_url, token);
	if (rv < 0) {
		fprintf(stderr,
		        "demo: the tagging service does not answer at %s: tag "
		        "rules skipped\n",
		        tagging_url);
	} else {
		fprintf(stderr, "demo: tag rules defined%s\n",
		        rv > 0 ? " (some were refused, see above)" : "");
	}
	/* The festival offer goes out at 10:00 tomorrow, business time. */
	festival = demo_day_start(pond_now()) + 34 * POND_USEC_PER_HOUR;
	rv = demo_setup_campaigns(scheduler_url, token, festival);
	if (rv < 0) {
		fprintf(stderr,
		        "demo: the scheduler does not answer at %s: campaigns "
		        "skipped\n",
		        scheduler_url);
	} else if (rv > 0) {
		fprintf(stderr, "demo: %d campaigns could not be defined\n",
		        rv);
	}
	rv = demo_setup_goals(reporting_url, token, d->start, d->end);
	if (rv < 0) {
		fprintf(stderr,
		        "demo: reporting does not answer at %s: goals "
		        "skipped\n",
		        reporting_url);
	} else {
		fprintf(stderr, "demo: goals set%s\n",
		        rv > 0 ? " (some were refused, see above)" : "");
	}
}

/* demo_publish sends the events and prints the totals. */
static int
demo_publish(const char *url, const char *token, json_t *list)
{
	pond_cli_publish_totals tot = {0};
	nng_socket sock;
	size_t shown = 0;
	int rv;

	if ((rv = pond_cli_publish_open(&sock, url)) != 0) {
		return (rv);
	}
	rv = pond_cli_publish(sock, token, list, &tot, demo_progress, &shown);
	nng_close(sock);
	printf("%zu accepted, %zu duplicate, %zu rejected\n", tot.accepted,
	       tot.duplicate, tot.rejected);
	return (rv != 0 ? rv : tot.rejected > 0 ? POND_CLI_FAIL : POND_CLI_OK);
}

static int
demo_run(pond_cli *cli, int argc, char **argv)
{
	const char *seed_s = "1", *size_s = "medium", *days_s = NULL,
	           *start_s = NULL, *out = NULL;
	const char *url = getenv("POND_INGEST_URL");
	const char *token = getenv("POND_TOKEN");
	const char *admin = getenv("POND_ADMIN_TOKEN");
	const char *tagging_url = "http://127.0.0.1:8401";
	const char *scheduler_url = "http://127.0.0.1:8402";
	const char *reporting_url = "http://127.0.0.1:8403";
	const pond_cli_opt opts[] = {
	        {"--seed", &seed_s, NULL},
	        {"--customers", &size_s, NULL},
	        {"--days", &days_s, NULL},
	        {"--start", &start_s, NULL},
	        {"--url", &url, NULL},
	        {"--token", &token, NULL},
	        {"--admin-token", &admin, NULL},
	        {"--tagging-url", &tagging_url, NULL},
	        {"--scheduler-url", &scheduler_url, NULL},
	        {"--reporting-url", &reporting_url, NULL},
	        {"--out", &out, NULL},
	};
	demo_opts d = {0};
	demo_event *events = NULL;
	size_t n = 0;
	json_t *list;
	int64_t seed;
	int rv;

	if ((rv = pond_cli_parse(cli, argc, argv, opts, POND_CLI_NELEM(opts),
	                         NULL, 0, 0)) != 0) {
		return (rv);
	}
	if (!pond_cli_int(seed_s, 0, INT64_MAX, &seed)) {
		return (pond_cli_usage(cli, "--seed takes a whole number"));
	}
	if (!demo_parse_size(size_s, &d.customers)) {
		return (pond_cli_usage(cli,
		                       "--customers takes small (200), medium "
		                       "(2000), large (20000) or 1 to %d",
		                       DEMO_MAX_CUSTOMERS));
	}
	if (out == NULL && (token == NULL || *token == '\0')) {
		return (pond_cli_usage(cli, "a publisher token is needed: "
		                            "--token or POND_TOKEN"));
	}
	d.seed = (uint64_t)seed;
	/* The services' clock, when a test drives it. */
	if (getenv("POND_TEST_CLOCK") != NULL && *getenv("POND_TEST_CLOCK")) {
		pond_clock_use_file(getenv("POND_TEST_CLOCK"));
	}
	if ((rv = demo_window(cli, days_s, start_s, &d)) != 0) {
		return (rv);
	}
	if (demo_generate(&d, &events, &n) != 0 ||
	    (list = json_array()) == NULL) {
		demo_events_free(events, n);
		return (pond_cli_fail("out of memory"));
	}
	for (size_t i = 0; i < n; i++) {
		json_array_append(list, events[i].json);
	}
	demo_events_free(events, n);
	fprintf(stderr, "demo: seed %lld, %d customers, %zu events\n",
	        (long long)seed, d.customers, n);
	if (out != NULL) {
		json_t *root = json_pack("{s:o}", "events", list);
		rv = json_dump_file(root, out, JSON_INDENT(1)) == 0
		             ? POND_CLI_OK
		             : pond_cli_fail("cannot write %s", out);
		json_decref(root);
		return (rv);
	}
	demo_setup(admin, tagging_url, scheduler_url, reporting_url, &d);
	rv = demo_publish(url != NULL && *url != '\0' ? url
	                                              : "tcp://127.0.0.1:7400",
	                  token, list);
	json_decref(list);
	return (rv);
}

static const pond_cli_command demo_commands[] = {
        {"demo",
         "[--seed N] [--customers small|medium|large|N] [--days D] "
         "[--start YYYY-MM-DD] [--url URL] [--token TOKEN] "
         "[--admin-token TOKEN] [--tagging-url URL] [--scheduler-url URL] "
         "[--reporting-url URL] [--out FILE]",
         "publish a simulated brand's traffic; define demo tag rules, "
         "campaigns and goals",
         demo_run},
};
POND_CLI_COMMANDS(demo_commands)
