/*
 * main.c - pond-tagging: customer profiles, lifecycle stage, rule tags and
 * the tag_changes stream, from the events stream.
 */
#include <stdint.h>

#include "service.h"
#include "tagging.h"

static tagging the_tagging;

static const pond_config_var tagging_vars[] = {
        POND_CONF_STR("POND_EVENTS_SUB_URLS", tagging_config, sub_urls,
                      "tcp://127.0.0.1:7410",
                      "ingest PUB addresses announcing events (comma-"
                      "separated)"),
        POND_CONF_STR("POND_TAG_CHANGES_PUB_URL", tagging_config, pub_url,
                      "tcp://0.0.0.0:7411",
                      "NNG PUB address announcing committed tag changes"),
        POND_CONF_STR("POND_REPURCHASE_CYCLES", tagging_config, cycles,
                      "default:30",
                      "repurchase cycle in days per order category "
                      "(CATEGORY:DAYS,...; default: the rest)"),
        POND_CONF_INT("POND_TAGGING_BATCH", tagging_config, batch, "500", 1,
                      10000, "events per consumer transaction"),
        POND_CONF_INT("POND_TAGGING_SWEEP_MS", tagging_config, sweep_ms,
                      "1000", 10, 3600000,
                      "how often due profiles are looked for"),
        POND_CONF_INT("POND_TAGGING_SWEEP_ROWS", tagging_config, sweep_rows,
                      "200", 1, 10000,
                      "profiles re-evaluated per sweep transaction"),
        POND_CONF_INT("POND_TAGGING_MAX_LAG", tagging_config, max_lag,
                      "100000", 0, INT64_MAX,
                      "/healthz fails while the events consumer is more "
                      "records behind than this"),
};

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "tagging",
	        .summary = "Pond tagging: profiles, lifecycle stage and tags "
	                   "from the events stream; the tag_changes stream; "
	                   "tag rules over HTTP.",
	        .http_port = 8401,
	        .db_conns = 3,
	        .vars = tagging_vars,
	        .nvars = sizeof(tagging_vars) / sizeof(tagging_vars[0]),
	        .conf = &the_tagging.conf,
	        .start = tagging_start,
	        .stop = tagging_stop,
	        .healthy = tagging_healthy,
	        .ctx = &the_tagging,
	};

	return (pond_service_main(&def, argc, argv));
}
