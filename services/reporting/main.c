/*
 * main.c - pond-reporting: every report of API.md section 4 over HTTP and
 * NNG, from fact tables built from the events, tag_changes and touches
 * streams.
 */
#include <stdint.h>

#include "dashboard.h"
#include "reporting.h"
#include "service.h"

static reporting the_reporting;

/* start starts the service, then serves the operators' page on its HTTP
 * port. The page is here, not in reporting_start, because the report code
 * is also linked into the pond CLI, which has no use for the page. */
static int
start(pond_service *svc)
{
	int rv;

	if ((rv = reporting_start(svc)) != 0) {
		return (rv);
	}
	return (reporting_dashboard_register(svc->http));
}

static const pond_config_var reporting_vars[] = {
        POND_CONF_STR("POND_EVENTS_SUB_URLS", reporting_config,
                      events_sub_urls, "tcp://127.0.0.1:7410",
                      "ingest PUB addresses announcing events (comma-"
                      "separated)"),
        POND_CONF_STR("POND_TAG_CHANGES_SUB_URLS", reporting_config,
                      tag_changes_sub_urls, "tcp://127.0.0.1:7411",
                      "tagging PUB addresses announcing tag changes"),
        POND_CONF_STR("POND_TOUCHES_SUB_URLS", reporting_config,
                      touches_sub_urls, "tcp://127.0.0.1:7412",
                      "scheduler PUB addresses announcing touch changes"),
        POND_CONF_STR("POND_REPORTING_URL", reporting_config, nng_url,
                      "tcp://0.0.0.0:7403",
                      "NNG REP address answering ReportRequest"),
        POND_CONF_STR("POND_COMMISSION_TIERS", reporting_config,
                      commission_tiers, "0:0.03,1000000:0.05,5000000:0.08",
                      "guide and store commission tiers "
                      "(THRESHOLD_FEN:RATE,..., ascending from 0)"),
        POND_CONF_STR("POND_REPORTING_DSN", reporting_config, reads_dsn, "",
                      "libpq DSN that report requests read from, e.g. a "
                      "streaming replica (empty: POND_DSN); the stream "
                      "consumers and goal changes use POND_DSN"),
        POND_CONF_INT("POND_ATTRIBUTION_H", reporting_config, attribution_h,
                      "72", 1, 8760,
                      "hours after a delivered touch (or a hold-out "
                      "selection) in which an order is a conversion"),
        POND_CONF_INT("POND_CELLS_FOLD_MS", reporting_config, fold_ms, "60000",
                      0, 86400000,
                      "milliseconds between folds of the day cells into "
                      "one row per cell (0: never)"),
        POND_CONF_INT("POND_REPORTING_BATCH", reporting_config, batch, "500",
                      1, 10000, "stream records per consumer transaction"),
};

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "reporting",
	        .summary = "Pond reporting: CAC, LTV, payback, repurchase, "
	                   "lifecycle, retention, funnel, campaigns, fission, "
	                   "guides, portrait and goals over HTTP and NNG.",
	        .http_port = 8403,
	        .db_conns = 4,
	        .vars = reporting_vars,
	        .nvars = sizeof(reporting_vars) / sizeof(reporting_vars[0]),
	        .conf = &the_reporting.conf,
	        .start = start,
	        .stop = reporting_stop,
	        .healthy = reporting_healthy,
	        .ctx = &the_reporting,
	};

	return (pond_service_main(&def, argc, argv));
}
