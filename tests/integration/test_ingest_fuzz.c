/*
 * test_ingest_fuzz.c - pond-ingest answers whatever a publisher sends.
 *
 * Thousands of damaged requests go to one service: over NNG, valid packed
 * IngestBatches with bits flipped, bytes cut, inserted or repeated, lengths
 * rewritten, one event damaged inside an intact frame, and plain random
 * bytes; over HTTP, valid {"events": [...]} bodies with characters deleted
 * or repeated, values swapped for other types, huge numbers, deep nesting,
 * invalid UTF-8 and truncation. Every request must be answered as the
 * contract says (an IngestAck that unpacks; an HTTP status among 200, 400,
 * 401 and 413), and the service must still be alive and healthy after all
 * of them, then stop cleanly (which, under ASan, also means no leak).
 *
 * The generator is seeded; the seeds are printed, and POND_TEST_FUZZ_SEED
 * replaces the fixed default to explore further.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "harness.h"
#include "ingest_client.h"
#include "pond/ingest.pb-c.h"

#define T IC_EVENT_TIME

#define FUZZ_NNG_CASES  3000
#define FUZZ_HTTP_CASES 1000
#define FUZZ_SEED       UINT64_C(0x706f6e6466757a7a) /* "pondfuzz" */

/* A fixed publisher token: the requests, token included, then depend on
 * the seed alone. */
#define FUZZ_TOKEN "pub_fuzz_0123456789abcdef0123456789abcdef"

/* API.md section 1: at most 1,000 events and 4 MiB per batch. */
#define MAX_EVENTS 1000
#define MAX_BYTES  (4u << 20)

/* fuzz_start starts the service and makes the fixed token its
 * publisher's. */
static void
fuzz_start(ic_service *svc, const char *log_name)
{
	ic_start(svc, log_name, (const char *[]){"POND_LOG_LEVEL=warn", NULL});
	ic_add_publisher(svc->dsn, "fuzz", FUZZ_TOKEN);
	snprintf(svc->token, sizeof(svc->token), "%s", FUZZ_TOKEN);
}

/* --- a small deterministic generator (splitmix64) --------------------------
 */

typedef struct fuzz_rng {
	uint64_t state;
} fuzz_rng;

static uint64_t
rng_next(fuzz_rng *r)
{
	uint64_t z = (r->state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (z ^ (z >> 31));
}

/* rng_below returns a number in [0, n) (0 when n is 0). */
static size_t
rng_below(fuzz_rng *r, size_t n)
{
	return (n > 0 ? (size_t)(rng_next(r) % n) : 0);
}

static uint64_t
fuzz_seed(void)
{
	const char *env = getenv("POND_TEST_FUZZ_SEED");

	return (env != NULL && *env != '\0' ? strtoull(env, NULL, 0)
	                                    : FUZZ_SEED);
}

/* --- byte-level damage
 * ---------------------------------------------------------
 */

static void
put_varint(ic_bytes *b, uint64_t v)
{
	uint8_t buf[10];
	size_t n = 0;

	do {
		buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v != 0);
	ic_bytes_append(b, buf, n);
}

/* ld_field says where a length-delimited field's length and data are. */
typedef struct ld_field {
	size_t len_at, len_size, data_at, data_len;
} ld_field;

/* find_ld_fields walks the top-level fields of a protobuf message and
 * lists its length-delimited ones, stopping where the bytes stop making
 * sense. */
static size_t
find_ld_fields(const uint8_t *p, size_t n, ld_field *out, size_t max)
{
	size_t pos = 0, found = 0;

	while (pos < n && found < max) {
		uint64_t key = 0, v = 0;
		size_t start;
		int shift = 0;

		while (pos < n && shift < 64) {
			key |= (uint64_t)(p[pos] & 0x7f) << shift;
			shift += 7;
			if (!(p[pos++] & 0x80)) {
				break;
			}
		}
		switch (key & 7) {
		case 0:
			while (pos < n && (p[pos++] & 0x80)) {
			}
			break;
		case 1:
			pos += 8;
			break;
		case 5:
			pos += 4;
			break;
		case 2:
			start = pos;
			shift = 0;
			while (pos < n && shift < 64) {
				v |= (uint64_t)(p[pos] & 0x7f) << shift;
				shift += 7;
				if (!(p[pos++] & 0x80)) {
					break;
				}
			}
			if (v > n - pos) {
				return (found);
			}
			out[found++] =
			        (ld_field){start, pos - start, pos, (size_t)v};
			pos += (size_t)v;
			break;
		default:
			return (found);
		}
	}
	return (found);
}

/* tamper_length rewrites the length of one length-delimited field of b
 * (top level) to a nearby, zero, huge or random value. */
static void
tamper_length(fuzz_rng *r, ic_bytes *b)
{
	ld_field fields[64];
	size_t n = find_ld_fields(b->data, b->len, fields, 64);
	ic_bytes out = {0};
	uint64_t len;

	if (n == 0) {
		return;
	}
	ld_field f = fields[rng_below(r, n)];
	switch (rng_below(r, 6)) {
	case 0:
		len = 0;
		break;
	case 1:
		len = f.data_len > 0 ? f.data_len - 1 : 1;
		break;
	case 2:
		len = f.data_len + 1 + rng_below(r, 8);
		break;
	case 3:
		len = UINT64_C(1) << (31 + rng_below(r, 33));
		break;
	case 4:
		len = rng_next(r) & 0xffffffff;
		break;
	default:
		len = rng_below(r, b->len + 16);
		break;
	}
	ic_bytes_append(&out, b->data, f.len_at);
	put_varint(&out, len);
	ic_bytes_append(&out, b->data + f.data_at, b->len - f.data_at);
	ic_bytes_free(b);
	*b = out;
}

/* damage applies one random kind of damage to b. */
static void
damage(fuzz_rng *r, ic_bytes *b)
{
	size_t at;

	switch (rng_below(r, 6)) {
	case 0: /* bit flips */
		for (size_t i = 1 + rng_below(r, 8); i > 0 && b->len > 0;
		     i--) {
			b->data[rng_below(r, b->len)] ^=
			        (uint8_t)(1u << rng_below(r, 8));
		}
		break;
	case 1: /* truncation */
		b->len = rng_below(r, b->len);
		break;
	case 2: { /* insertion of random bytes */
		uint8_t junk[16];
		size_t n = 1 + rng_below(r, sizeof(junk));
		ic_bytes out = {0};

		for (size_t i = 0; i < n; i++) {
			junk[i] = (uint8_t)rng_next(r);
		}
		at = rng_below(r, b->len + 1);
		ic_bytes_append(&out, b->data, at);
		ic_bytes_append(&out, junk, n);
		ic_bytes_append(&out, b->data + at, b->len - at);
		ic_bytes_free(b);
		*b = out;
		break;
	}
	case 3:
		tamper_length(r, b);
		break;
	case 4: { /* a slice repeated */
		ic_bytes out = {0};
		size_t from = rng_below(r, b->len + 1);
		size_t n = rng_below(r, b->len - from + 1);

		at = rng_below(r, b->len + 1);
		ic_bytes_append(&out, b->data, at);
		ic_bytes_append(&out, b->data + from, n);
		ic_bytes_append(&out, b->data + at, b->len - at);
		ic_bytes_free(b);
		*b = out;
		break;
	}
	default: { /* a random field appended */
		uint8_t junk[8];
		size_t n = rng_below(r, sizeof(junk));
		uint32_t number = 1 + (uint32_t)rng_below(r, 40);

		for (size_t i = 0; i < n; i++) {
			junk[i] = (uint8_t)rng_next(r);
		}
		if (rng_below(r, 2) == 0) {
			ic_field_append(b, number, junk, n);
		} else {
			ic_varint_field_append(b, number, rng_next(r));
		}
		break;
	}
	}
	if (b->data == NULL) {
		ic_bytes_append(b, "", 0);
	}
}

/* --- NNG
 * -------------------------------------------------------------------------
 */

/* base_events adds valid events of most body types, ids unique to round:
 * damage to them then reaches every part of the validator and the store. */
static void
base_events(ic_batch *b, unsigned round)
{
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-0\", \"customer_key\": "
	                        "\"k%u\", \"occurred_at\": \"" T "\", "
	                        "\"aliases\": [{\"kind\": \"phone\", "
	                        "\"value\": \"+86-%u\"}], \"contact_added\": "
	                        "{\"channel\": \"poster\", \"guide_id\": "
	                        "\"g1\", \"inviter_key\": \"k0\"}}",
	                        round, round % 50, round % 70));
	ic_batch_add(
	        b,
	        ic_event_jsonf("{\"event_id\": \"f%u-1\", \"customer_key\": "
	                       "\"k%u\", \"occurred_at\": \"" T "\", "
	                       "\"order_paid\": {\"order_id\": \"o%u\", "
	                       "\"amount_fen\": 1990, \"items\": [{\"sku\": "
	                       "\"tea-1\", \"category\": \"tea\", \"qty\": 2, "
	                       "\"price_fen\": 995}], \"store_id\": \"s1\"}}",
	                       round, round % 50, round));
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-2\", \"customer_key\": "
	                        "\"k%u\", \"occurred_at\": \"" T "\", "
	                        "\"profile_updated\": {\"region\": \"sh\", "
	                        "\"attributes\": {\"age\": \"30\", "
	                        "\"vip\": \"yes\"}}}",
	                        round, round % 50));
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-3\", \"occurred_at\": "
	                        "\"" T "\", \"channel_spend\": {\"channel\": "
	                        "\"poster\", \"amount_fen\": 500, \"item\": "
	                        "\"cards\", \"quantity\": 10}}",
	                        round));
	ic_batch_add(
	        b, ic_event_jsonf("{\"event_id\": \"f%u-4\", \"occurred_at\": "
	                          "\"" T "\", \"aliases\": [{\"kind\": "
	                          "\"phone\", \"value\": \"+86-%u\"}], "
	                          "\"reward_paid\": {\"kind\": \"coupon\", "
	                          "\"amount_fen\": 100, \"campaign_id\": "
	                          "\"c1\"}}",
	                          round, round % 70));
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-5\", \"customer_key\": "
	                        "\"k%u\", \"occurred_at\": \"" T "\", "
	                        "\"touch_receipt\": {\"touch_id\": \"t%u\", "
	                        "\"status\": \"delivered\"}}",
	                        round, round % 50, round));
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-6\", \"customer_key\": "
	                        "\"k%u\", \"occurred_at\": \"" T "\", "
	                        "\"contact_removed\": {\"by\": \"staff\"}}",
	                        round, round % 50));
	ic_batch_add(b, ic_event_jsonf(
	                        "{\"event_id\": \"f%u-7\", \"customer_key\": "
	                        "\"k%u\", \"occurred_at\": \"" T "\", "
	                        "\"opt_out\": {\"channel\": \"sms\"}}",
	                        round, round % 50));
}

typedef struct nng_tally {
	int answered, results, batch_errors, unavailable;
	int by_kind[4];
} nng_tally;

enum { DAMAGE_WHOLE, DAMAGE_ONE_EVENT, RANDOM_BYTES, SHUFFLED_EVENTS };

/* expect_nng_answer checks the answer to req against what its frame is:
 * the batch error its bytes deserve, or one valid result per event. */
static void
expect_nng_answer(const ic_service *svc, const ic_bytes *req,
                  const Pond__IngestAck *ack, unsigned round, nng_tally *tally)
{
	Pond__IngestBatchFrame *frame =
	        pond__ingest_batch_frame__unpack(NULL, req->len, req->data);
	const char *code =
	        ack->batch_error != NULL ? ack->batch_error->code : NULL;

	if (code != NULL) {
		tally->batch_errors++;
	}
	if (frame == NULL) {
		cr_assert(code != NULL && strcmp(code, "undecodable") == 0,
		          "round %u: undecodable bytes answered %s", round,
		          code != NULL ? code : "with results");
		return;
	}
	if (frame->n_events > MAX_EVENTS) {
		cr_assert(code != NULL && strcmp(code, "too_many_events") == 0,
		          "round %u: %zu events answered %s", round,
		          frame->n_events, code != NULL ? code : "results");
	} else if (strcmp(frame->token, svc->token) != 0) {
		cr_assert(code != NULL && strcmp(code, "unauthorized") == 0,
		          "round %u: a damaged token answered %s", round,
		          code != NULL ? code : "with results");
	} else if (code != NULL) {
		/* A store failure, not the batch's fault: allowed by the
		 * contract (send it again) but counted, since damage to one
		 * event should not fail the rest. */
		cr_assert_str_eq(code, "unavailable", "round %u", round);
		tally->unavailable++;
	} else {
		cr_assert_eq(ack->n_results, frame->n_events,
		             "round %u: %zu results for %zu events", round,
		             ack->n_results, frame->n_events);
		for (size_t i = 0; i < ack->n_results; i++) {
			const char *st = ack->results[i]->status;
			cr_assert(strcmp(st, "accepted") == 0 ||
			                  strcmp(st, "duplicate") == 0 ||
			                  strcmp(st, "rejected") == 0,
			          "round %u: status '%s'", round, st);
		}
		tally->results += (int)ack->n_results;
	}
	pond__ingest_batch_frame__free_unpacked(frame, NULL);
}

/* nng_request builds the request of one round. */
static ic_bytes
nng_request(const ic_service *svc, fuzz_rng *r, unsigned round, int *kind)
{
	ic_batch b = {0};
	ic_bytes req = {0};

	*kind = (int)rng_below(r, 10);
	*kind = *kind < 5   ? DAMAGE_WHOLE
	        : *kind < 8 ? DAMAGE_ONE_EVENT
	        : *kind < 9 ? RANDOM_BYTES
	                    : SHUFFLED_EVENTS;
	if (*kind == RANDOM_BYTES) {
		size_t n = rng_below(r, 600);
		for (size_t i = 0; i < n; i++) {
			uint8_t c = (uint8_t)rng_next(r);
			ic_bytes_append(&req, &c, 1);
		}
		if (req.data == NULL) {
			ic_bytes_append(&req, "", 0);
		}
		return (req);
	}
	base_events(&b, round);
	if (*kind == DAMAGE_ONE_EVENT) {
		damage(r, &b.events[rng_below(r, b.n)]);
	} else if (*kind == SHUFFLED_EVENTS) {
		/* Events repeated and reordered: intact, but duplicates
		 * within the batch and across it. */
		for (size_t i = 0; i < b.n; i++) {
			size_t j = rng_below(r, b.n);
			ic_bytes tmp = b.events[i];
			b.events[i] = b.events[j];
			b.events[j] = tmp;
		}
		ic_batch_add(&b,
		             ic_bytes_copy(b.events[0].data, b.events[0].len));
	}
	req = ic_batch_pack(&b, svc->token);
	ic_batch_free(&b);
	if (*kind == DAMAGE_WHOLE) {
		damage(r, &req);
	}
	return (req);
}

Test(ingest_fuzz, nng_damaged_requests_are_all_answered, .timeout = 180)
{
	uint64_t seed = fuzz_seed();
	fuzz_rng r = {seed};
	nng_tally tally = {0};
	ic_service svc;
	ic_nng c;
	int64_t t0 = pond_now();

	cr_log_info("nng fuzz seed %#" PRIx64 " (POND_TEST_FUZZ_SEED)", seed);
	fuzz_start(&svc, "ingest-fuzz-nng");
	ic_nng_open(&c, svc.nng_url, IC_TIMEOUT_MS);
	for (unsigned round = 0; round < FUZZ_NNG_CASES; round++) {
		int kind;
		ic_bytes req = nng_request(&svc, &r, round, &kind);
		Pond__IngestAck *ack;
		int rv = ic_nng_call(&c, req.data, req.len, &ack);

		cr_assert_eq(rv, 0,
		             "round %u (seed %#" PRIx64 ", %zu bytes): no "
		             "IngestAck: %s",
		             round, seed, req.len, pond_strerror(rv));
		expect_nng_answer(&svc, &req, ack, round, &tally);
		tally.answered++;
		tally.by_kind[kind]++;
		ic_ack_free(ack);
		ic_bytes_free(&req);
	}
	ic_nng_close(&c);

	cr_assert_eq(tally.answered, FUZZ_NNG_CASES);
	cr_assert_eq(pond_test_wait_exit(svc.proc, 0, NULL), POND_ETIMEDOUT,
	             "pond-ingest died");
	pond_test_wait_http_ok(svc.http_port, "/healthz", 5000);
	cr_log_info(
	        "nng fuzz: %d requests answered in %.1f s (%d whole, %d "
	        "one event, %d random, %d shuffled): %d batch errors, "
	        "%d event results, %d stored",
	        tally.answered, (double)(pond_now() - t0) / 1e6,
	        tally.by_kind[DAMAGE_WHOLE], tally.by_kind[DAMAGE_ONE_EVENT],
	        tally.by_kind[RANDOM_BYTES], tally.by_kind[SHUFFLED_EVENTS],
	        tally.batch_errors, tally.results,
	        (int)pond_test_sql_int(svc.dsn,
	                               "SELECT count(*) FROM events"));
	if (tally.unavailable > 0) {
		cr_log_warn(
		        "nng fuzz: %d intact batches failed whole with "
		        "'unavailable' (a damaged event the store could not "
		        "keep; see test_ingest.c *utf8* tests)",
		        tally.unavailable);
	}
	cr_assert_eq(ic_stop(&svc), 0, "pond-ingest did not stop cleanly");
}

/* --- HTTP
 * ------------------------------------------------------------------------
 */

/* base_body returns a valid {"events": [...]} body of round. */
static char *
base_body(unsigned round)
{
	char *body;

	cr_assert(asprintf(&body,
	                   "{\"events\": ["
	                   "{\"event_id\": \"h%u-0\", \"customer_key\": "
	                   "\"k%u\", \"occurred_at\": \"" T "\", "
	                   "\"aliases\": [{\"kind\": \"openid\", \"value\": "
	                   "\"op-%u\"}], \"contact_added\": {\"channel\": "
	                   "\"poster\", \"store_id\": \"s1\"}}, "
	                   "{\"event_id\": \"h%u-1\", \"customer_key\": "
	                   "\"k%u\", \"occurred_at\": \"" T "\", "
	                   "\"order_paid\": {\"order_id\": \"ho%u\", "
	                   "\"amount_fen\": 1990, \"items\": [{\"sku\": "
	                   "\"tea\", \"category\": \"tea\", \"qty\": 2, "
	                   "\"price_fen\": 995}]}}, "
	                   "{\"event_id\": \"h%u-2\", \"customer_key\": "
	                   "\"k%u\", \"occurred_at\": \"" T "\", "
	                   "\"profile_updated\": {\"industry\": \"retail\", "
	                   "\"attributes\": {\"a\": \"1\"}}}, "
	                   "{\"event_id\": \"h%u-3\", \"occurred_at\": \"" T
	                   "\", \"channel_spend\": {\"channel\": \"poster\", "
	                   "\"amount_fen\": \"500\", \"item\": \"cards\", "
	                   "\"quantity\": 10}}, "
	                   "{\"event_id\": \"h%u-4\", \"occurred_at\": \"" T
	                   "\", \"aliases\": [{\"kind\": \"openid\", "
	                   "\"value\": \"op-%u\"}], \"interaction\": "
	                   "{\"kind\": \"live_view\", \"seconds\": 120}}]}",
	                   round, round % 40, round % 60, round, round % 40,
	                   round, round, round % 40, round, round,
	                   round % 60) >= 0);
	return (body);
}

static void
splice(char **body, size_t at, size_t cut, const char *ins, size_t ins_len)
{
	size_t len = strlen(*body);
	char *out = malloc(len - cut + ins_len + 1);

	cr_assert_not_null(out);
	memcpy(out, *body, at);
	memcpy(out + at, ins, ins_len);
	memcpy(out + at + ins_len, *body + at + cut, len - at - cut + 1);
	free(*body);
	*body = out;
}

/* random_value returns a JSON value of a random type (the caller
 * json_decref()s it). */
static json_t *
random_value(fuzz_rng *r)
{
	switch (rng_below(r, 8)) {
	case 0:
		return (json_null());
	case 1:
		return (json_true());
	case 2:
		return (json_integer((json_int_t)rng_next(r)));
	case 3:
		return (json_real(-1.5e300));
	case 4:
		return (json_string("x"));
	case 5:
		return (json_array());
	case 6:
		return (json_pack("{s:i}", "k", 1));
	default:
		return (json_string(""));
	}
}

/* swap_type replaces one value somewhere in the body's tree by a value of
 * another type. */
static void
swap_type(fuzz_rng *r, char **body)
{
	json_t *root = json_loads(*body, 0, NULL);
	json_t *node = root, *parent = NULL;
	const char *key = NULL;
	size_t index = 0;

	if (root == NULL) {
		return;
	}
	/* Walk down a random path, stopping at random. */
	for (int depth = 0; depth < 6; depth++) {
		json_t *child = NULL;
		if (json_is_object(node) && json_object_size(node) > 0) {
			size_t k = rng_below(r, json_object_size(node));
			void *it = json_object_iter(node);
			while (k-- > 0) {
				it = json_object_iter_next(node, it);
			}
			key = json_object_iter_key(it);
			child = json_object_iter_value(it);
		} else if (json_is_array(node) && json_array_size(node) > 0) {
			index = rng_below(r, json_array_size(node));
			key = NULL;
			child = json_array_get(node, index);
		}
		if (child == NULL) {
			break;
		}
		parent = node;
		node = child;
		if (rng_below(r, 3) == 0) {
			break;
		}
	}
	if (parent != NULL && key != NULL) {
		json_object_set_new(parent, key, random_value(r));
	} else if (parent != NULL) {
		json_array_set_new(parent, index, random_value(r));
	}
	free(*body);
	*body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
}

/* http_damage applies one random kind of damage to the body. */
static void
http_damage(fuzz_rng *r, char **body, int *kind)
{
	static const char *const numbers[] = {"1e400",
	                                      "-1e400",
	                                      "99999999999999999999999999",
	                                      "1.5",
	                                      "-0",
	                                      "1e2",
	                                      "-9223372036854775809",
	                                      "9223372036854775808",
	                                      "100000000001",
	                                      "-1",
	                                      "0.0000001",
	                                      "1E+2"};
	static const char *const bad_utf8[] = {"\xff",
	                                       "\xc3",
	                                       "\xed\xa0\x80",
	                                       "\xc0\xaf",
	                                       "\xf4\x90\x80\x80",
	                                       "\xe2\x82"};
	size_t len = strlen(*body);

	/* Now and then, a body over the event limit instead. */
	if (rng_below(r, 50) == 0) {
		char *many = malloc(16 + 3 * (MAX_EVENTS + 1));
		char *p = many + sprintf(many, "{\"events\": [");
		for (int i = 0; i <= MAX_EVENTS; i++) {
			p += sprintf(p, "%s{}", i > 0 ? "," : "");
		}
		sprintf(p, "]}");
		free(*body);
		*body = many;
		*kind = 8;
		return;
	}
	*kind = (int)rng_below(r, 8);
	switch (*kind) {
	case 0: /* characters deleted */
		for (size_t i = 1 + rng_below(r, 4); i > 0 && len > 0; i--) {
			splice(body, rng_below(r, len), 1, "", 0);
			len--;
		}
		break;
	case 1: { /* a span repeated */
		size_t from = rng_below(r, len);
		size_t n = 1 + rng_below(r, 40);
		n = n > len - from ? len - from : n;
		char *span = strndup(*body + from, n);
		splice(body, rng_below(r, len + 1), 0, span, n);
		free(span);
		break;
	}
	case 2:
		swap_type(r, body);
		break;
	case 3: { /* a number, or a value, made huge or odd */
		const char *num = numbers[rng_below(r, 12)];
		const char *digit =
		        strpbrk(*body + rng_below(r, len), "0123456789");
		if (digit != NULL) {
			size_t at = (size_t)(digit - *body);
			size_t n = strspn(digit, "0123456789");
			splice(body, at, n, num, strlen(num));
		}
		break;
	}
	case 4: { /* deep nesting around one value */
		size_t depth = 1 + rng_below(r, 3000);
		bool arrays = rng_below(r, 2) == 0;
		const char *colon = strstr(*body + rng_below(r, len), ": ");
		size_t at = colon != NULL ? (size_t)(colon - *body) + 2 : 11;
		const char *end = strpbrk(*body + at, ",}]");
		size_t vend = end != NULL ? (size_t)(end - *body) : len;
		char *open = malloc(depth * 6 + 1), *close = malloc(depth + 1);
		for (size_t i = 0; i < depth; i++) {
			memcpy(open + i * 6, arrays ? "[     " : "{\"a\":", 6);
			close[i] = arrays ? ']' : '}';
		}
		open[depth * 6] = close[depth] = '\0';
		splice(body, vend, 0, close, depth);
		splice(body, at, 0, open, depth * 6);
		free(open);
		free(close);
		break;
	}
	case 5: { /* invalid UTF-8 inside a string */
		const char *bad = bad_utf8[rng_below(r, 6)];
		const char *quote = strchr(*body + rng_below(r, len), '"');
		size_t at = quote != NULL ? (size_t)(quote - *body) + 1 : 0;
		splice(body, at, 0, bad, strlen(bad));
		break;
	}
	case 6: /* truncation */
		(*body)[rng_below(r, len)] = '\0';
		break;
	default: { /* random bytes, no NUL: bodies are text to the client */
		size_t n = rng_below(r, 300);
		char *junk = malloc(n + 1);
		for (size_t i = 0; i < n; i++) {
			junk[i] = (char)(1 + rng_below(r, 255));
		}
		junk[n] = '\0';
		free(*body);
		*body = junk;
		break;
	}
	}
}

/* body_status is the status a body deserves with a valid token (API.md
 * section 1): 400 unless it is {"events": [...]} and nothing else, 413
 * over the limits, otherwise 200; *events gets the events' count. */
static int
body_status(const char *body, size_t *events)
{
	json_t *root = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
	json_t *list = json_object_get(root, "events");
	int status;

	*events = 0;
	if (strlen(body) > MAX_BYTES) {
		status = 413;
	} else if (!json_is_object(root) || !json_is_array(list) ||
	           json_object_size(root) != 1) {
		status = 400;
	} else if (json_array_size(list) > MAX_EVENTS) {
		status = 413;
	} else {
		*events = json_array_size(list);
		status = 200;
	}
	json_decref(root);
	return (status);
}

Test(ingest_fuzz, http_damaged_bodies_are_all_answered, .timeout = 180)
{
	uint64_t seed = fuzz_seed() ^ UINT64_C(0x68747470); /* "http" */
	fuzz_rng r = {seed};
	const char *wrong = "pub_ffffffffffffffffffffffffffffffffffffffffffff"
	                    "ffffffffffffffffffff";
	int by_status[600] = {0};
	ic_service svc;
	int64_t t0 = pond_now();

	cr_log_info("http fuzz seed %#" PRIx64 " (POND_TEST_FUZZ_SEED ^ "
	            "\"http\")",
	            seed);
	fuzz_start(&svc, "ingest-fuzz-http");
	for (unsigned round = 0; round < FUZZ_HTTP_CASES; round++) {
		char *body = base_body(round);
		size_t events;
		int kind, want;
		/* Mostly the right token; sometimes none or a wrong one. */
		size_t who = rng_below(&r, 20);
		const char *token = who == 0   ? NULL
		                    : who == 1 ? wrong
		                               : svc.token;
		pond_test_http_resp resp;

		http_damage(&r, &body, &kind);
		want = body_status(body, &events);
		int rv = ic_http_post(svc.http_port, token, body, strlen(body),
		                      &resp);
		cr_assert_eq(rv, 0,
		             "round %u (seed %#" PRIx64 ", damage %d): "
		             "no answer: %s\n%s",
		             round, seed, kind, pond_strerror(rv), body);
		cr_assert(resp.status == 200 || resp.status == 400 ||
		                  resp.status == 401 || resp.status == 413,
		          "round %u (damage %d): status %d: %s\n%s", round,
		          kind, resp.status, resp.body, body);
		/* Without a valid token only 401 and the body's own 4xx are
		 * possible; with it, exactly what the body deserves. */
		if (token == svc.token) {
			cr_assert_eq(
			        resp.status, want,
			        "round %u (damage %d): status %d, expected "
			        "%d: %s\n%s",
			        round, kind, resp.status, want, resp.body,
			        body);
		} else {
			cr_assert(resp.status == 401 ||
			                  (want != 200 && resp.status == want),
			          "round %u: status %d without a valid token",
			          round, resp.status);
		}
		if (resp.status == 200) {
			json_t *answer = pond_test_json(resp.body);
			cr_assert_eq(json_array_size(json_object_get(
			                     answer, "results")),
			             events,
			             "round %u: results for %zu events", round,
			             events);
			json_decref(answer);
		}
		by_status[resp.status]++;
		pond_test_http_resp_free(&resp);
		free(body);
	}

	cr_assert_eq(pond_test_wait_exit(svc.proc, 0, NULL), POND_ETIMEDOUT,
	             "pond-ingest died");
	pond_test_wait_http_ok(svc.http_port, "/healthz", 5000);
	cr_log_info("http fuzz: %d bodies in %.1f s: %d x 200, %d x 400, %d x "
	            "401, %d x 413; %d events stored",
	            FUZZ_HTTP_CASES, (double)(pond_now() - t0) / 1e6,
	            by_status[200], by_status[400], by_status[401],
	            by_status[413],
	            (int)pond_test_sql_int(svc.dsn,
	                                   "SELECT count(*) FROM events"));
	cr_assert_eq(ic_stop(&svc), 0, "pond-ingest did not stop cleanly");
}
