/*
 * main.c - pond-gateway-sim: a delivery gateway for demos and tests
 * (docs/gateways.md is the contract it follows).
 *
 * It listens with NNG REP on one URL per touch channel, takes each
 * TouchBatch, dedupes by touch_id (the ids it has taken are kept in
 * memory and, with POND_GATEWAY_LEDGER, in a file that survives a
 * restart), and acks every touch it holds. Each new touch is "delivered"
 * after POND_GATEWAY_DELAY_MS with an outcome drawn from its touch_id and
 * POND_GATEWAY_SEED (so a run is reproducible): failed, or delivered and
 * perhaps read and clicked. The outcomes go back as touch_receipt events
 * through ingest over NNG, as a publisher, resent until ingest answers;
 * their event ids come from the touch id, so a resend is a duplicate.
 *
 * Faults for tests: POND_GATEWAY_CRASH_AFTER=N exits abruptly on a batch
 * once N touches have been taken; POND_GATEWAY_CONTROL=FILE is read on
 * every request and every 50 ms: "stall" holds requests unanswered (the
 * scheduler's resend then has to do its job), "ack_twice" lists every id
 * twice and re-acks the previous batch's ids too, anything else is
 * normal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "pond/ingest.pb-c.h"
#include "pond/touch.pb-c.h"
#include "service.h"

#define SIM_MAX_MSG      (4u << 20)
#define SIM_MAX_CHANNELS 8
#define SIM_RECEIPTS_MAX 500

typedef struct sim_config {
	char *urls;
	char *ingest_url;
	char *token;
	char *ledger;
	char *control;
	int64_t deliver_pct;
	int64_t read_pct;
	int64_t click_pct;
	int64_t delay_ms;
	int64_t seed;
	int64_t crash_after;
} sim_config;

/* sim_receipt is one touch_receipt waiting to go to ingest. */
typedef struct sim_receipt {
	struct sim_receipt *next;
	char *touch_id;
	char *customer_key;
	const char *status;
	pond_time occurred_at;
	uint64_t due_ms; /* loop time it may go */
} sim_receipt;

/* sim_held is a request held while stalled. */
typedef struct sim_held {
	struct sim_held *next;
	pond_rep_req *req;
	uint8_t *body;
	size_t len;
} sim_held;

typedef struct sim {
	pond_service *svc;
	sim_config conf;
	pond_rep *reps[SIM_MAX_CHANNELS];
	size_t nreps;
	pond_req *ingest;
	bool sending;
	uv_timer_t timer;
	FILE *ledger;
	/* The touch ids taken: an open-addressing set of strdup'd ids. */
	char **seen;
	size_t seen_cap, seen_n;
	sim_receipt *queue, *queue_tail;
	sim_held *held;
	size_t stopping_reps;
	char **last_ack; /* ack_twice: the previous batch's ids */
	size_t nlast_ack;
	pond_counter touches, duplicates, receipts, batches;
} sim;

static sim the_sim;

/* --- the seen set ------------------------------------------------------- */

static uint64_t
fnv64(const char *s, uint64_t h)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	return (h);
}

static bool
seen_has(sim *g, const char *id)
{
	if (g->seen_cap == 0) {
		return (false);
	}
	for (size_t i =
	             fnv64(id, UINT64_C(14695981039346656037)) % g->seen_cap;
	     g->seen[i] != NULL; i = (i + 1) % g->seen_cap) {
		if (strcmp(g->seen[i], id) == 0) {
			return (true);
		}
	}
	return (false);
}

static int
seen_add(sim *g, const char *id)
{
	if ((g->seen_n + 1) * 2 > g->seen_cap) {
		size_t cap = g->seen_cap == 0 ? 1024 : g->seen_cap * 2;
		char **old = g->seen, **v = calloc(cap, sizeof(char *));
		size_t oldcap = g->seen_cap;
		if (v == NULL) {
			return (POND_ENOMEM);
		}
		g->seen = v;
		g->seen_cap = cap;
		g->seen_n = 0;
		for (size_t i = 0; i < oldcap; i++) {
			if (old[i] != NULL) {
				size_t j =
				        fnv64(old[i],
				              UINT64_C(14695981039346656037)) %
				        cap;
				while (v[j] != NULL) {
					j = (j + 1) % cap;
				}
				v[j] = old[i];
				g->seen_n++;
			}
		}
		free(old);
	}
	size_t j = fnv64(id, UINT64_C(14695981039346656037)) % g->seen_cap;
	while (g->seen[j] != NULL) {
		j = (j + 1) % g->seen_cap;
	}
	if ((g->seen[j] = strdup(id)) == NULL) {
		return (POND_ENOMEM);
	}
	g->seen_n++;
	return (POND_OK);
}

/* ledger_load reads the ids a previous run took. */
static int
ledger_load(sim *g)
{
	char line[1200];
	FILE *f;

	if (g->conf.ledger[0] == '\0') {
		return (POND_OK);
	}
	if ((f = fopen(g->conf.ledger, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] != '\0' && !seen_has(g, line) &&
			    seen_add(g, line) != 0) {
				fclose(f);
				return (POND_ENOMEM);
			}
		}
		fclose(f);
	}
	if ((g->ledger = fopen(g->conf.ledger, "a")) == NULL) {
		pond_log_error("ledger_open", "path=%s", g->conf.ledger);
		return (POND_EIO);
	}
	return (POND_OK);
}

/* --- control ------------------------------------------------------------ */

static void
control_mode(sim *g, char *mode, size_t len)
{
	FILE *f;

	mode[0] = '\0';
	if (g->conf.control[0] == '\0' ||
	    (f = fopen(g->conf.control, "r")) == NULL) {
		return;
	}
	if (fgets(mode, (int)len, f) == NULL) {
		mode[0] = '\0';
	}
	mode[strcspn(mode, " \n")] = '\0';
	fclose(f);
}

/* --- receipts ------------------------------------------------------------ */

static void
receipt_queue(sim *g, const Pond__Touch *t, const char *status, pond_time at,
              uint64_t due_ms)
{
	sim_receipt *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->touch_id = strdup(t->touch_id)) == NULL ||
	    (r->customer_key = strdup(t->customer_key)) == NULL) {
		if (r != NULL) {
			free(r->touch_id);
		}
		free(r);
		pond_log_error("receipt_dropped", "touch_id=%s why=nomem",
		               t->touch_id);
		return;
	}
	r->status = status;
	r->occurred_at = at;
	r->due_ms = due_ms;
	if (g->queue_tail != NULL) {
		g->queue_tail->next = r;
	} else {
		g->queue = r;
	}
	g->queue_tail = r;
}

/* deliver takes one new touch: the outcome from its id and the seed. */
static void
deliver(sim *g, const Pond__Touch *t)
{
	uint64_t h = fnv64(t->touch_id, UINT64_C(14695981039346656037) ^
	                                        (uint64_t)g->conf.seed);
	uint64_t due = uv_now(g->svc->loop) + (uint64_t)g->conf.delay_ms;
	pond_time now = pond_now();

	if ((int64_t)(h % 100) >= g->conf.deliver_pct) {
		receipt_queue(g, t, "failed", now, due);
		return;
	}
	receipt_queue(g, t, "delivered", now, due);
	if ((int64_t)(h / 100 % 100) < g->conf.read_pct) {
		receipt_queue(g, t, "read", now + POND_USEC_PER_SEC, due);
		if ((int64_t)(h / 10000 % 100) < g->conf.click_pct) {
			receipt_queue(g, t, "clicked",
			              now + 2 * POND_USEC_PER_SEC, due);
		}
	}
}

static void receipts_flush(sim *g);

static void
ingest_reply(int rv, const uint8_t *reply, size_t len, void *arg)
{
	sim *g = arg;
	Pond__IngestAck *ack = NULL;
	size_t n = 0;

	g->sending = false;
	if (rv == 0) {
		ack = pond__ingest_ack__unpack(NULL, len, reply);
	}
	if (ack == NULL || ack->batch_error != NULL) {
		/* Nothing stored: the same receipts go again next tick. */
		pond_log_warn("receipts_not_taken", "err=%s batch_error=%s",
		              pond_strerror(rv),
		              ack != NULL && ack->batch_error != NULL
		                      ? ack->batch_error->code
		                      : "");
	} else {
		for (size_t i = 0; i < ack->n_results; i++) {
			if (strcmp(ack->results[i]->status, "rejected") == 0) {
				pond_log_error("receipt_rejected",
				               "event_id=%s code=%s",
				               ack->results[i]->event_id,
				               ack->results[i]->code);
			}
		}
		n = ack->n_results;
	}
	/* The first n queued receipts were in the batch: drop them. */
	for (size_t i = 0; i < n && g->queue != NULL; i++) {
		sim_receipt *r = g->queue;
		g->queue = r->next;
		free(r->touch_id);
		free(r->customer_key);
		free(r);
		pond_counter_inc(&g->receipts);
	}
	if (g->queue == NULL) {
		g->queue_tail = NULL;
	}
	if (ack != NULL) {
		pond__ingest_ack__free_unpacked(ack, NULL);
	}
	if (n > 0) {
		receipts_flush(g);
	}
}

/* receipts_flush sends the due head of the queue as one IngestBatch. */
static void
receipts_flush(sim *g)
{
	Pond__IngestBatch b = POND__INGEST_BATCH__INIT;
	Pond__Event ev[SIM_RECEIPTS_MAX], *evp[SIM_RECEIPTS_MAX];
	Pond__TouchReceipt tr[SIM_RECEIPTS_MAX];
	Google__Protobuf__Timestamp ts[SIM_RECEIPTS_MAX];
	char ids[SIM_RECEIPTS_MAX][160];
	uint64_t now = uv_now(g->svc->loop);
	size_t n = 0;

	if (g->sending || g->ingest == NULL || g->svc->stopping) {
		return;
	}
	for (sim_receipt *r = g->queue;
	     r != NULL && r->due_ms <= now && n < SIM_RECEIPTS_MAX;
	     r = r->next, n++) {
		pond__event__init(&ev[n]);
		pond__touch_receipt__init(&tr[n]);
		google__protobuf__timestamp__init(&ts[n]);
		/* Long ids are hashed to stay within 256 bytes. */
		snprintf(ids[n], sizeof(ids[n]), "rcpt/%016" PRIx64 "/%s",
		         fnv64(r->touch_id, UINT64_C(14695981039346656037)),
		         r->status);
		ev[n].event_id = ids[n];
		ev[n].customer_key = r->customer_key;
		ts[n].seconds = r->occurred_at / POND_USEC_PER_SEC;
		ts[n].nanos =
		        (int32_t)(r->occurred_at % POND_USEC_PER_SEC) * 1000;
		ev[n].occurred_at = &ts[n];
		tr[n].touch_id = r->touch_id;
		tr[n].status = (char *)r->status;
		if (strcmp(r->status, "failed") == 0) {
			tr[n].reason = "sim_failure";
		}
		ev[n].body_case = POND__EVENT__BODY_TOUCH_RECEIPT;
		ev[n].touch_receipt = &tr[n];
		evp[n] = &ev[n];
	}
	if (n == 0) {
		return;
	}
	b.token = g->conf.token;
	b.n_events = n;
	b.events = evp;
	size_t len = pond__ingest_batch__get_packed_size(&b);
	uint8_t *buf = malloc(len + 1);
	if (buf == NULL) {
		return;
	}
	pond__ingest_batch__pack(&b, buf);
	if (pond_req_call(g->ingest, buf, len, 10000, ingest_reply, g) == 0) {
		g->sending = true;
	}
	free(buf);
}

/* --- touches --------------------------------------------------------------
 */

static void
reply_ack(sim *g, pond_rep_req *req, char **ids, size_t n, bool twice)
{
	Pond__TouchAck ack = POND__TOUCH_ACK__INIT;
	size_t m = n * (twice ? 2 : 1) + (twice ? g->nlast_ack : 0);
	char **v = calloc(m + 1, sizeof(char *));
	size_t k = 0;

	for (size_t i = 0; v != NULL && i < n; i++) {
		v[k++] = ids[i];
		if (twice) {
			v[k++] = ids[i];
		}
	}
	for (size_t i = 0; v != NULL && twice && i < g->nlast_ack; i++) {
		v[k++] = g->last_ack[i];
	}
	ack.n_touch_ids = v != NULL ? k : 0;
	ack.touch_ids = v;
	size_t len = pond__touch_ack__get_packed_size(&ack);
	uint8_t *buf = malloc(len + 1);
	if (buf != NULL) {
		pond__touch_ack__pack(&ack, buf);
	}
	pond_rep_reply(req, buf, buf != NULL ? len : 0);
	free(buf);
	free(v);
}

/* take_batch handles one TouchBatch: new touches are taken (ledger,
 * delivery), every valid touch acked. */
static void
take_batch(sim *g, pond_rep_req *req, const uint8_t *body, size_t len)
{
	Pond__TouchBatch *b = pond__touch_batch__unpack(NULL, len, body);
	char mode[32];
	char **ids;
	size_t n = 0;

	control_mode(g, mode, sizeof(mode));
	if (b == NULL) {
		pond_log_warn("batch_undecodable", "bytes=%zu", len);
		pond_rep_reply(req, "", 0);
		return;
	}
	pond_counter_inc(&g->batches);
	if (g->conf.crash_after > 0 &&
	    (int64_t)g->seen_n >= g->conf.crash_after) {
		pond_log_warn("crash", "touches=%zu", g->seen_n);
		_exit(70);
	}
	ids = calloc(b->n_touches + 1, sizeof(char *));
	for (size_t i = 0; ids != NULL && i < b->n_touches; i++) {
		const Pond__Touch *t = b->touches[i];
		if (t->touch_id == NULL || *t->touch_id == '\0' ||
		    t->customer_key == NULL || *t->customer_key == '\0') {
			continue;
		}
		if (seen_has(g, t->touch_id)) {
			pond_counter_inc(&g->duplicates);
		} else if (seen_add(g, t->touch_id) == 0) {
			if (g->ledger != NULL) {
				fprintf(g->ledger, "%s\n", t->touch_id);
				fflush(g->ledger);
			}
			pond_counter_inc(&g->touches);
			pond_log_info("touch_taken",
			              "touch_id=%s channel=%s aliases=%zu",
			              t->touch_id, t->channel, t->n_aliases);
			deliver(g, t);
		} else {
			continue; /* out of memory: not taken, not acked */
		}
		ids[n++] = t->touch_id;
	}
	reply_ack(g, req, ids, n, strcmp(mode, "ack_twice") == 0);
	/* Remember this batch's ids for the next double ack. */
	for (size_t i = 0; i < g->nlast_ack; i++) {
		free(g->last_ack[i]);
	}
	free(g->last_ack);
	g->last_ack = calloc(n + 1, sizeof(char *));
	g->nlast_ack = 0;
	for (size_t i = 0; g->last_ack != NULL && i < n; i++) {
		if ((g->last_ack[g->nlast_ack] = strdup(ids[i])) != NULL) {
			g->nlast_ack++;
		}
	}
	free(ids);
	pond__touch_batch__free_unpacked(b, NULL);
	receipts_flush(g);
}

static void
on_batch(pond_rep_req *req, const uint8_t *body, size_t len, void *arg)
{
	sim *g = arg;
	sim_held *h;
	char mode[32];

	control_mode(g, mode, sizeof(mode));
	if (strcmp(mode, "stall") != 0) {
		take_batch(g, req, body, len);
		return;
	}
	/* Stalled: keep the request (copied) until the mode changes. */
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->body = malloc(len + 1)) == NULL) {
		free(h);
		pond_rep_reply(req, "", 0);
		return;
	}
	memcpy(h->body, body, len);
	h->len = len;
	h->req = req;
	h->next = g->held;
	g->held = h;
}

static void
on_timer(uv_timer_t *t)
{
	sim *g = t->data;
	char mode[32];

	control_mode(g, mode, sizeof(mode));
	while (strcmp(mode, "stall") != 0 && g->held != NULL) {
		sim_held *h = g->held;
		g->held = h->next;
		take_batch(g, h->req, h->body, h->len);
		free(h->body);
		free(h);
	}
	receipts_flush(g);
}

/* --- start, stop -----------------------------------------------------------
 */

static int
sim_listen(sim *g)
{
	char *spec = strdup(g->conf.urls), *save = NULL;
	int rv = POND_OK;

	if (spec == NULL) {
		return (POND_ENOMEM);
	}
	for (char *tok = strtok_r(spec, ",", &save); tok != NULL && rv == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (eq == NULL || g->nreps == SIM_MAX_CHANNELS) {
			pond_log_error("config_invalid",
			               "var=POND_GATEWAY_URLS "
			               "why=\"expected CHANNEL=URL,...\"");
			rv = POND_EINVAL;
			break;
		}
		*eq = '\0';
		if ((rv = pond_rep_listen(&g->reps[g->nreps], g->svc->bus,
		                          eq + 1, 8, SIM_MAX_MSG, on_batch,
		                          g)) == 0) {
			pond_log_info("listening", "channel=%s url=%s", tok,
			              pond_rep_url(g->reps[g->nreps]));
			g->nreps++;
		}
	}
	free(spec);
	return (rv);
}

static int
sim_start(pond_service *svc)
{
	sim *g = svc->ctx;
	pond_metrics *m = svc->metrics;
	int rv;

	g->svc = svc;
	if ((rv = ledger_load(g)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_gateway_touches_total",
	                               "Touches taken (new touch ids).", NULL,
	                               &g->touches)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_gateway_duplicates_total",
	                               "Touches received again (acked, not "
	                               "delivered again).",
	                               NULL, &g->duplicates)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_gateway_receipts_total",
	                               "Receipts ingest has answered.", NULL,
	                               &g->receipts)) != 0 ||
	    (rv = pond_metrics_counter(m, "pond_gateway_batches_total",
	                               "TouchBatch requests taken.", NULL,
	                               &g->batches)) != 0 ||
	    (rv = pond_req_dial(&g->ingest, svc->bus, g->conf.ingest_url,
	                        SIM_MAX_MSG, 0)) != 0 ||
	    (rv = sim_listen(g)) != 0) {
		return (rv);
	}
	uv_timer_init(svc->loop, &g->timer);
	g->timer.data = g;
	uv_timer_start(&g->timer, on_timer, 50, 50);
	return (POND_OK);
}

/* sim_finish frees everything once every REP socket has stopped. */
static void
sim_finish(sim *g)
{
	for (size_t i = 0; i < g->nreps; i++) {
		pond_rep_close(g->reps[i]);
	}
	if (g->ingest != NULL) {
		pond_req_close(g->ingest);
	}
	if (g->ledger != NULL) {
		fclose(g->ledger);
	}
	for (size_t i = 0; i < g->seen_cap; i++) {
		free(g->seen[i]);
	}
	free(g->seen);
	for (size_t i = 0; i < g->nlast_ack; i++) {
		free(g->last_ack[i]);
	}
	free(g->last_ack);
	while (g->queue != NULL) {
		sim_receipt *r = g->queue;
		g->queue = r->next;
		free(r->touch_id);
		free(r->customer_key);
		free(r);
	}
	pond_service_stopped(g->svc);
}

static void
sim_rep_stopped(void *arg)
{
	sim *g = arg;

	if (--g->stopping_reps == 0) {
		sim_finish(g);
	}
}

static void
sim_stop(pond_service *svc)
{
	sim *g = svc->ctx;

	uv_timer_stop(&g->timer);
	uv_close((uv_handle_t *)&g->timer, NULL);
	/* Held requests are answered empty: no ack, so the scheduler sends
	 * those touches again. */
	while (g->held != NULL) {
		sim_held *h = g->held;
		g->held = h->next;
		pond_rep_reply(h->req, "", 0);
		free(h->body);
		free(h);
	}
	if (g->nreps == 0) {
		sim_finish(g);
		return;
	}
	g->stopping_reps = g->nreps;
	for (size_t i = 0; i < g->nreps; i++) {
		pond_rep_stop(g->reps[i], sim_rep_stopped, g);
	}
}

static const pond_config_var sim_vars[] = {
        POND_CONF_STR("POND_GATEWAY_URLS", sim_config, urls,
                      "wecom_message=tcp://0.0.0.0:7420",
                      "REP address per touch channel: CHANNEL=URL,..."),
        POND_CONF_STR("POND_INGEST_URL", sim_config, ingest_url,
                      "tcp://127.0.0.1:7400",
                      "ingest NNG address for the receipts"),
        POND_CONF_SECRET("POND_GATEWAY_TOKEN", sim_config, token, "",
                         "publisher token the receipts are sent with"),
        POND_CONF_STR("POND_GATEWAY_LEDGER", sim_config, ledger, "",
                      "file of the touch ids taken (dedupe across "
                      "restarts); empty: memory only"),
        POND_CONF_STR("POND_GATEWAY_CONTROL", sim_config, control, "",
                      "file whose first word sets a fault: stall, "
                      "ack_twice (tests)"),
        POND_CONF_INT("POND_GATEWAY_DELIVER_PCT", sim_config, deliver_pct,
                      "95", 0, 100,
                      "share of touches delivered (else "
                      "failed)"),
        POND_CONF_INT("POND_GATEWAY_READ_PCT", sim_config, read_pct, "60", 0,
                      100, "share of delivered touches read"),
        POND_CONF_INT("POND_GATEWAY_CLICK_PCT", sim_config, click_pct, "20", 0,
                      100, "share of read touches clicked"),
        POND_CONF_INT("POND_GATEWAY_DELAY_MS", sim_config, delay_ms, "0", 0,
                      3600000, "delay before a touch's receipts go"),
        POND_CONF_INT("POND_GATEWAY_SEED", sim_config, seed, "1", 0, INT64_MAX,
                      "seed of the outcome draw"),
        POND_CONF_INT("POND_GATEWAY_CRASH_AFTER", sim_config, crash_after, "0",
                      0, INT64_MAX,
                      "exit abruptly on a batch once this many touches "
                      "were taken (0: never)"),
};

int
main(int argc, char **argv)
{
	static const pond_service_def def = {
	        .name = "gateway-sim",
	        .summary = "Pond gateway simulator: acks TouchBatch requests, "
	                   "dedupes by touch_id, sends touch receipts "
	                   "through ingest.",
	        .http_port = 8420,
	        .db_conns = 1,
	        .vars = sim_vars,
	        .nvars = sizeof(sim_vars) / sizeof(sim_vars[0]),
	        .conf = &the_sim.conf,
	        .start = sim_start,
	        .stop = sim_stop,
	        .ctx = &the_sim,
	};

	return (pond_service_main(&def, argc, argv));
}
