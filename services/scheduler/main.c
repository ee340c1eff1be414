/*
 * main.c - pond-scheduler: campaigns, the rules every touch obeys, the
 * due queue, dispatch to gateways, and the touches stream.
 */
#include <stdint.h>

#include "scheduler.h"
#include "service.h"

static scheduler the_scheduler;

static const pond_config_var scheduler_vars[] = {
        POND_CONF_STR("POND_EVENTS_SUB_URLS", scheduler_config, events_sub,
                      "tcp://127.0.0.1:7410",
                      "ingest PUB addresses announcing events (comma-"
                      "separated)"),
        POND_CONF_STR("POND_TAG_CHANGES_SUB_URLS", scheduler_config, tags_sub,
                      "tcp://127.0.0.1:7411",
                      "tagging PUB addresses announcing tag changes"),
        POND_CONF_STR("POND_TOUCHES_PUB_URL", scheduler_config, pub_url,
                      "tcp://0.0.0.0:7412",
                      "NNG PUB address announcing committed touch changes"),
        POND_CONF_STR("POND_GATEWAY_URLS", scheduler_config, gateways,
                      "wecom_message=tcp://127.0.0.1:7420",
                      "the gateway (NNG REP) of each touch channel: "
                      "CHANNEL=URL,..."),
        POND_CONF_STR("POND_QUIET_HOURS", scheduler_config, quiet_hours,
                      "21:00-09:00",
                      "no touch is due in this business-time window "
                      "(deferred to its end); empty for none"),
        POND_CONF_STR("POND_FREQ_CAP", scheduler_config, freq_cap,
                      "1/day,3/week",
                      "marketing touches per customer over all campaigns"),
        POND_CONF_INT("POND_ATTRIBUTION_H", scheduler_config, attribution_h,
                      "72", 1, 8760,
                      "an order within this many hours after a delivered "
                      "touch is its conversion"),
        POND_CONF_INT("POND_TOUCH_RESEND_S", scheduler_config, resend_s, "30",
                      1, 86400,
                      "an unacked touch is sent again after this long"),
        POND_CONF_INT("POND_SCHEDULER_TICK_MS", scheduler_config, tick_ms,
                      "200", 10, 60000,
                      "how often the due queue and one-shot campaigns "
                      "are looked at"),
        POND_CONF_INT("POND_SCHEDULER_BATCH", scheduler_config, batch, "500",
                      1, 10000,
                      "records per consumer transaction, touches per "
                      "dispatch, customers per one-shot batch"),
        POND_CONF_INT("POND_SCHEDULER_MAX_LAG", scheduler_config, max_lag,
                      "100000", 0, INT64_MAX,
                      "/healthz fails while a consumer is more records "
                      "behind than this"),
};

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "scheduler",
	        .summary = "Pond scheduler: campaigns over HTTP; touches "
	                   "from events, tag changes and time, under the "
	                   "touch rules; dispatch to gateways; the touches "
	                   "stream.",
	        .http_port = 8402,
	        .db_conns = 4,
	        .vars = scheduler_vars,
	        .nvars = sizeof(scheduler_vars) / sizeof(scheduler_vars[0]),
	        .conf = &the_scheduler.conf,
	        .start = scheduler_start,
	        .stop = scheduler_stop,
	        .healthy = scheduler_healthy,
	        .ctx = &the_scheduler,
	};

	return (pond_service_main(&def, argc, argv));
}
