/*
 * main.c - pond-ingest: takes events from publishers over NNG and HTTP,
 * stores each once, acks after commit, and feeds the events stream.
 */
#include "ingest.h"
#include "service.h"

static ingest the_ingest;

static const pond_config_var ingest_vars[] = {
        POND_CONF_STR("POND_INGEST_URL", ingest_config, listen_url,
                      "tcp://0.0.0.0:7400",
                      "NNG REP address publishers send batches to"),
        POND_CONF_STR("POND_EVENTS_PUB_URL", ingest_config, pub_url,
                      "tcp://0.0.0.0:7410",
                      "NNG PUB address announcing committed events"),
        POND_CONF_INT("POND_INGEST_CONTEXTS", ingest_config, contexts, "16", 1,
                      1024, "batches received concurrently over NNG"),
        POND_CONF_INT("POND_INGEST_STORE_JOBS", ingest_config, store_jobs, "2",
                      1, 64,
                      "transactions settling batches at once; batches that "
                      "arrive meanwhile are settled together"),
        POND_CONF_SECRET("POND_PII_KEY", ingest_config, pii_key, "",
                         "key of the HMAC-SHA256 that alias values (phone "
                         "numbers, openids) are stored as; gateways hold "
                         "the same key. Set it: empty is a public key"),
        POND_CONF_STR("POND_TLS_CERT", ingest_config, tls_cert, "",
                      "PEM certificate (chain) for a tls+tcp:// "
                      "POND_INGEST_URL"),
        POND_CONF_STR("POND_TLS_KEY", ingest_config, tls_key, "",
                      "PEM private key of POND_TLS_CERT"),
};

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "ingest",
	        .summary =
	                "Pond ingest: events from publishers (NNG REQ/REP and "
	                "HTTP POST /v1/events) into the events stream.",
	        .http_port = 8400,
	        .db_conns = 4,
	        .vars = ingest_vars,
	        .nvars = sizeof(ingest_vars) / sizeof(ingest_vars[0]),
	        .conf = &the_ingest.conf,
	        .start = ingest_start,
	        .stop = ingest_stop,
	        .ctx = &the_ingest,
	};

	return (pond_service_main(&def, argc, argv));
}
