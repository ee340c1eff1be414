/*
 * test_pbjson.c - the proto3 JSON codec against Pond's real messages.
 *
 * Most tests decode JSON into pond.Event, pond.IngestBatch, pond.Touch and
 * pond.ProfileUpdated and encode them back. Types Pond's protos do not use
 * (bool, double, float, enum, map<int32,bool>, repeated scalars) and a
 * recursive message for the depth limit come from a small descriptor
 * written by hand below, the way protoc-c would generate it. Every decode
 * goes through a counting allocator so a test also proves that what was
 * allocated was freed, on success and on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "google/protobuf/timestamp.pb-c.h"
#include "pbjson.h"
#include "pond/event.pb-c.h"
#include "pond/ingest.pb-c.h"
#include "pond/stream.pb-c.h"
#include "pond/touch.pb-c.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ---- a counting allocator ---- */

typedef struct counter {
	size_t calls;   /* alloc calls so far */
	size_t fail_at; /* fail the call with this number (1-based); 0 never */
	long live;      /* allocated and not yet freed */
} counter;

static void *
count_alloc(void *data, size_t size)
{
	counter *c = data;

	if (++c->calls == c->fail_at) {
		return (NULL);
	}
	c->live++;
	return (malloc(size));
}

static void
count_free(void *data, void *p)
{
	counter *c = data;

	c->live--;
	free(p);
}

static counter cnt;
static ProtobufCAllocator counting = {count_alloc, count_free, &cnt};

/* leak_check makes a test that leaked crash: Criterion counts neither the
 * report LeakSanitizer prints when a test process exits nor a failed
 * assertion in .fini. */
static void
leak_check(void)
{
#ifdef __SANITIZE_ADDRESS__
	if (__lsan_do_recoverable_leak_check() != 0) {
		abort();
	}
#endif
}

TestSuite(pbjson, .fini = leak_check);

/* ---- helpers ---- */

static json_t *
parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	cr_assert_not_null(j, "bad test JSON: %s: %s", jerr.text, text);
	return (j);
}

/* dump is for failure messages only; the string is never freed. */
static char *
dump(const json_t *j)
{
	return (j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)
	                  : strdup("(null)"));
}

static ProtobufCMessage *
decode_ok(const ProtobufCMessageDescriptor *desc, const char *text)
{
	json_t *j = parse(text);
	ProtobufCMessage *m = NULL;
	pond_pbjson_error err;
	int rv = pond_pbjson_decode(desc, j, &counting, &m, &err);

	cr_assert_eq(rv, POND_OK, "%s: %s: %s", text, err.path, err.message);
	cr_assert_not_null(m);
	json_decref(j);
	return (m);
}

static void
release(void *m)
{
	protobuf_c_message_free_unpacked(m, &counting);
	cr_assert_eq(cnt.live, 0, "leaked %ld allocations", cnt.live);
}

static void
expect_error(const ProtobufCMessageDescriptor *desc, const char *text,
             const char *path, const char *message)
{
	json_t *j = parse(text);
	ProtobufCMessage *m = (ProtobufCMessage *)&m;
	pond_pbjson_error err;
	int rv = pond_pbjson_decode(desc, j, &counting, &m, &err);

	cr_assert_eq(rv, POND_EINVAL, "%s: rv %d", text, rv);
	cr_assert_null(m);
	cr_assert_str_eq(err.path, path, "%s", text);
	cr_assert_str_eq(err.message, message, "%s", text);
	cr_assert_eq(cnt.live, 0, "%s: leaked %ld", text, cnt.live);
	json_decref(j);
}

static void
expect_encodes(const void *msg, bool emit_defaults, const char *text)
{
	json_t *want = parse(text);
	json_t *got = pond_pbjson_encode(msg, emit_defaults);

	cr_assert(json_equal(got, want), "got %s, want %s", dump(got),
	          dump(want));
	json_decref(got);
	json_decref(want);
}

/* round_trip decodes text and checks that encoding gives it back. */
static void
round_trip(const ProtobufCMessageDescriptor *desc, const char *text)
{
	ProtobufCMessage *m = decode_ok(desc, text);

	expect_encodes(m, false, text);
	release(m);
}

static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = {.tm_year = y - 1900,
	                .tm_mon = mo - 1,
	                .tm_mday = d,
	                .tm_hour = h,
	                .tm_min = mi,
	                .tm_sec = s};

	return ((int64_t)timegm(&tm));
}

#define EVENT_HEAD                                                            \
	"{\"event_id\": \"e1\", \"customer_key\": \"c1\", "                   \
	"\"occurred_at\": \"2026-11-23T08:00:00Z\", "

static const char full_event[] =
        "{\"event_id\": \"e-42\", \"customer_key\": \"unionid-7\","
        " \"occurred_at\": \"2026-11-23T00:00:00.250000Z\","
        " \"aliases\": [{\"kind\": \"phone\", \"value\": \"13800000000\"},"
        "  {\"kind\": \"openid\", \"value\": \"o-1\"}],"
        " \"order_paid\": {\"order_id\": \"o1\", \"amount_fen\": 12345,"
        "  \"items\": [{\"sku\": \"A\", \"category\": \"tea\", \"qty\": 2,"
        "    \"price_fen\": 5000},"
        "   {\"sku\": \"B\", \"category\": \"cup\", \"qty\": 1,"
        "    \"price_fen\": 2345}],"
        "  \"store_id\": \"s1\", \"guide_id\": \"g1\", \"coupon_id\": "
        "\"cp\"}}";

/* ---- Pond's messages ---- */

Test(pbjson, decodes_every_body_type)
{
	static const struct {
		const char *body;
		Pond__Event__BodyCase which;
	} bodies[] = {
	        {"\"contact_added\": {\"channel\": \"wecom\", \"guide_id\": "
	         "\"g\", \"store_id\": \"s\", \"inviter_key\": \"c9\", "
	         "\"campaign_id\": \"cp\"}",
	         POND__EVENT__BODY_CONTACT_ADDED},
	        {"\"contact_removed\": {\"by\": \"staff\"}",
	         POND__EVENT__BODY_CONTACT_REMOVED},
	        {"\"order_paid\": {\"order_id\": \"o\", \"amount_fen\": 10, "
	         "\"items\": [{\"sku\": \"a\", \"category\": \"t\", \"qty\": "
	         "1, "
	         "\"price_fen\": 10}], \"store_id\": \"s\", \"guide_id\": "
	         "\"g\", \"coupon_id\": \"k\"}",
	         POND__EVENT__BODY_ORDER_PAID},
	        {"\"order_refunded\": {\"order_id\": \"o\", \"amount_fen\": "
	         "5}",
	         POND__EVENT__BODY_ORDER_REFUNDED},
	        {"\"channel_spend\": {\"channel\": \"sms\", \"amount_fen\": "
	         "900, "
	         "\"item\": \"cards\", \"quantity\": 3}",
	         POND__EVENT__BODY_CHANNEL_SPEND},
	        {"\"reward_paid\": {\"kind\": \"coupon\", \"amount_fen\": "
	         "100, "
	         "\"campaign_id\": \"cp\"}",
	         POND__EVENT__BODY_REWARD_PAID},
	        {"\"member_joined\": {\"tier\": \"gold\"}",
	         POND__EVENT__BODY_MEMBER_JOINED},
	        {"\"interaction\": {\"kind\": \"live_view\", \"seconds\": 60}",
	         POND__EVENT__BODY_INTERACTION},
	        {"\"invite_shared\": {\"campaign_id\": \"cp\"}",
	         POND__EVENT__BODY_INVITE_SHARED},
	        {"\"profile_updated\": {\"region\": \"sh\", \"industry\": "
	         "\"it\", "
	         "\"birthday\": \"1990-01-01\", \"attributes\": {\"k\": "
	         "\"v\"}}",
	         POND__EVENT__BODY_PROFILE_UPDATED},
	        {"\"opt_out\": {\"channel\": \"all\"}",
	         POND__EVENT__BODY_OPT_OUT},
	        {"\"opt_in\": {\"channel\": \"sms\"}",
	         POND__EVENT__BODY_OPT_IN},
	        {"\"touch_receipt\": {\"touch_id\": \"t\", \"status\": "
	         "\"failed\", \"reason\": \"blocked\"}",
	         POND__EVENT__BODY_TOUCH_RECEIPT},
	};
	char text[512];

	cr_assert_eq(sizeof(bodies) / sizeof(bodies[0]),
	             pond__event__descriptor.n_fields - 4);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(text, sizeof(text), EVENT_HEAD "%s}", bodies[i].body);
		Pond__Event *ev = (Pond__Event *)decode_ok(
		        &pond__event__descriptor, text);
		cr_assert_eq(ev->body_case, bodies[i].which, "%s", text);
		cr_assert_str_eq(ev->event_id, "e1");
		/* Every field in the table is set, so nothing is left out. */
		expect_encodes(ev, false, text);
		release(ev);
	}
}

Test(pbjson, decodes_values_into_the_struct)
{
	Pond__Event *ev =
	        (Pond__Event *)decode_ok(&pond__event__descriptor, full_event);
	Pond__OrderPaid *op = ev->order_paid;

	cr_assert_str_eq(ev->customer_key, "unionid-7");
	cr_assert_eq(ev->occurred_at->seconds, utc(2026, 11, 23, 0, 0, 0));
	cr_assert_eq(ev->occurred_at->nanos, 250000000);
	cr_assert_eq(ev->n_aliases, 2);
	cr_assert_str_eq(ev->aliases[1]->value, "o-1");
	cr_assert_eq(ev->body_case, POND__EVENT__BODY_ORDER_PAID);
	cr_assert_eq(op->amount_fen, 12345);
	cr_assert_eq(op->n_items, 2);
	cr_assert_str_eq(op->items[1]->category, "cup");
	cr_assert_eq(op->items[0]->qty, 2);
	cr_assert_eq(op->items[1]->price_fen, 2345);
	release(ev);
}

Test(pbjson, int64_accepts_number_and_string)
{
	static const struct {
		const char *json;
		int64_t want;
	} cases[] = {
	        {"12345678901234", INT64_C(12345678901234)},
	        {"\"12345678901234\"", INT64_C(12345678901234)},
	        {"\"-5\"", -5},
	        {"\"0\"", 0},
	        {"\"-0\"", 0},
	        {"9223372036854775807", INT64_MAX},
	        {"\"9223372036854775807\"", INT64_MAX},
	        {"\"-9223372036854775808\"", INT64_MIN},
	        {"-9223372036854775808", INT64_MIN},
	        {"2.0", 2},
	        {"1e3", 1000},
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"amount_fen\": %s}",
		         cases[i].json);
		Pond__OrderRefunded *r = (Pond__OrderRefunded *)decode_ok(
		        &pond__order_refunded__descriptor, text);
		cr_assert_eq(r->amount_fen, cases[i].want, "%s", text);
		release(r);
	}
	/* Output is always a number. */
	Pond__OrderRefunded *r = (Pond__OrderRefunded *)decode_ok(
	        &pond__order_refunded__descriptor, "{\"amount_fen\": \"-7\"}");
	expect_encodes(r, false, "{\"amount_fen\": -7}");
	release(r);
}

Test(pbjson, integers_out_of_range_or_malformed_are_errors)
{
	static const struct {
		const char *json, *message;
	} cases[] = {
	        {"\"9223372036854775808\"", "integer out of range"},
	        {"\"-9223372036854775809\"", "integer out of range"},
	        {"\"99999999999999999999999\"", "integer out of range"},
	        {"1e19", "integer out of range"},
	        {"1.5", "expected an integer"},
	        {"\"1.5\"", "expected an integer"},
	        {"\"\"", "expected an integer"},
	        {"\"-\"", "expected an integer"},
	        {"\" 1\"", "expected an integer"},
	        {"\"+1\"", "expected an integer"},
	        {"\"12a\"", "expected an integer"},
	        {"\"1e3\"", "expected an integer"},
	        {"true", "expected an integer"},
	        {"[]", "expected an integer"},
	        {"{}", "expected an integer"},
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"amount_fen\": %s}",
		         cases[i].json);
		expect_error(&pond__order_refunded__descriptor, text,
		             "amount_fen", cases[i].message);
	}
}

Test(pbjson, unsigned_fields_check_their_range)
{
	Pond__StreamRecord *r = (Pond__StreamRecord *)decode_ok(
	        &pond__stream_record__descriptor,
	        "{\"partition\": \"4294967295\", "
	        "\"seq\": \"18446744073709551615\"}");

	cr_assert_eq(r->partition, UINT32_MAX);
	cr_assert_eq(r->seq, UINT64_MAX);
	/* jansson cannot hold a uint64 above INT64_MAX as a number. */
	expect_encodes(r, false,
	               "{\"partition\": 4294967295, "
	               "\"seq\": \"18446744073709551615\"}");
	release(r);
	expect_error(&pond__stream_record__descriptor, "{\"partition\": -1}",
	             "partition", "integer out of range");
	expect_error(&pond__stream_record__descriptor,
	             "{\"partition\": 4294967296}", "partition",
	             "integer out of range");
	expect_error(&pond__stream_record__descriptor,
	             "{\"seq\": \"18446744073709551616\"}", "seq",
	             "integer out of range");
	expect_error(&pond__stream_record__descriptor, "{\"seq\": \"-1\"}",
	             "seq", "integer out of range");
}

Test(pbjson, wrong_types_report_the_exact_path)
{
	static const struct {
		const char *json, *path, *message;
	} cases[] = {
	        {"{\"events\": [{}, {}, {}, {\"order_paid\": {\"items\": "
	         "[{}, {}, {\"qty\": \"x\"}]}}]}",
	         "events[3].order_paid.items[2].qty", "expected an integer"},
	        {"{\"token\": 5}", "token", "expected a string"},
	        {"{\"events\": {}}", "events", "expected an array"},
	        {"{\"events\": [5]}", "events[0]", "expected an object"},
	        {"{\"events\": [{}, null]}", "events[1]", "null in an array"},
	        {"{\"events\": [{\"aliases\": [{\"kind\": true}]}]}",
	         "events[0].aliases[0].kind", "expected a string"},
	        {"{\"events\": [{\"occurred_at\": 5}]}",
	         "events[0].occurred_at", "expected an RFC 3339 timestamp"},
	        {"{\"events\": [{}, {\"profile_updated\": {\"attributes\": "
	         "{\"a\": \"x\", \"b\": 1}}}]}",
	         "events[1].profile_updated.attributes[\"b\"]",
	         "expected a string"},
	        {"{\"events\": [{\"profile_updated\": {\"attributes\": "
	         "{\"a\": null}}}]}",
	         "events[0].profile_updated.attributes[\"a\"]",
	         "null map value"},
	        {"{\"events\": [{\"profile_updated\": {\"attributes\": []}}]}",
	         "events[0].profile_updated.attributes", "expected an object"},
	        {"{\"events\": [{\"order_paid\": []}]}",
	         "events[0].order_paid", "expected an object"},
	        {"{\"events\": [{\"order_paid\": {\"amount_fen\": 1.5}}]}",
	         "events[0].order_paid.amount_fen", "expected an integer"},
	        {"{\"events\": [{\"interaction\": {\"seconds\": true}}]}",
	         "events[0].interaction.seconds", "expected an integer"},
	        {"{\"events\": [{\"order_paid\": {\"items\": [{\"qty\": "
	         "\"99999999999999999999\"}]}}]}",
	         "events[0].order_paid.items[0].qty", "integer out of range"},
	        {"{\"events\": [{\"event_id\": \"a\\u0000b\"}]}",
	         "events[0].event_id", "string contains a NUL character"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		expect_error(&pond__ingest_batch__descriptor, cases[i].json,
		             cases[i].path, cases[i].message);
	}
	expect_error(&pond__ingest_batch__descriptor, "[]", "",
	             "expected an object");
}

Test(pbjson, unknown_fields_are_errors)
{
	json_t *j = json_object();
	ProtobufCMessage *m;
	pond_pbjson_error err;

	expect_error(&pond__ingest_batch__descriptor,
	             "{\"events\": [{\"order_paid\": {\"bogus\": 1}}]}",
	             "events[0].order_paid.bogus", "unknown field");
	/* Only the proto names: no lowerCamelCase. */
	expect_error(&pond__event__descriptor, "{\"eventId\": \"e1\"}",
	             "eventId", "unknown field");
	/* A null value does not excuse an unknown name. */
	expect_error(&pond__event__descriptor, "{\"nope\": null}", "nope",
	             "unknown field");
	/* A key with a NUL must not match the field named by its prefix. */
	json_object_setn_new(j, "event_id\0x", 10, json_string("e1"));
	cr_assert_eq(pond_pbjson_decode(&pond__event__descriptor, j, NULL, &m,
	                                &err),
	             POND_EINVAL);
	cr_assert_str_eq(err.message, "unknown field");
	json_decref(j);
}

Test(pbjson, two_bodies_are_an_error)
{
	Pond__Event *ev;

	expect_error(&pond__event__descriptor,
	             EVENT_HEAD "\"order_paid\": {\"order_id\": \"o\"}, "
	                        "\"opt_in\": {}}",
	             "opt_in", "more than one of order_paid, opt_in");
	/* A null member is absent and does not count. */
	ev = (Pond__Event *)decode_ok(&pond__event__descriptor,
	                              "{\"order_paid\": null, \"opt_in\": "
	                              "{\"channel\": \"sms\"}}");
	cr_assert_eq(ev->body_case, POND__EVENT__BODY_OPT_IN);
	cr_assert_str_eq(ev->opt_in->channel, "sms");
	release(ev);
	ev = (Pond__Event *)decode_ok(&pond__event__descriptor, "{}");
	cr_assert_eq(ev->body_case, POND__EVENT__BODY__NOT_SET);
	release(ev);
}

Test(pbjson, maps_round_trip)
{
	Pond__Touch *t = (Pond__Touch *)decode_ok(
	        &pond__touch__descriptor,
	        "{\"touch_id\": \"t1\", \"template\": \"hello\", \"params\": "
	        "{\"name\": \"\\u674e\", \"empty\": \"\", \"n\": \"3\"}}");
	const char *seen[3] = {0};

	cr_assert_str_eq(t->template_, "hello");
	cr_assert_eq(t->n_params, 3);
	for (size_t i = 0; i < t->n_params; i++) {
		seen[i] = t->params[i]->key;
	}
	cr_assert_str_eq(seen[0], "name");
	cr_assert_str_eq(t->params[0]->value, "\xe6\x9d\x8e");
	/* A map entry is written whole, even an empty value. */
	expect_encodes(t, false,
	               "{\"touch_id\": \"t1\", \"template\": \"hello\", "
	               "\"params\": {\"name\": \"\\u674e\", \"empty\": \"\", "
	               "\"n\": \"3\"}}");
	release(t);
	round_trip(&pond__profile_updated__descriptor,
	           "{\"attributes\": {\"size\": \"M\", \"pet\": \"cat\"}}");
}

Test(pbjson, single_field_oneofs_give_presence)
{
	Pond__ProfileUpdated *p = (Pond__ProfileUpdated *)decode_ok(
	        &pond__profile_updated__descriptor, "{\"region\": \"\"}");

	cr_assert_eq(p->has_region_case,
	             POND__PROFILE_UPDATED__HAS_REGION_REGION);
	cr_assert_eq(p->has_industry_case,
	             POND__PROFILE_UPDATED__HAS_INDUSTRY__NOT_SET);
	cr_assert_str_eq(p->region, "");
	/* Set to "" is not the same as absent: it is written. */
	expect_encodes(p, false, "{\"region\": \"\"}");
	expect_encodes(p, true, "{\"region\": \"\", \"attributes\": {}}");
	release(p);
}

Test(pbjson, timestamps_round_trip_in_utc)
{
	static const struct {
		const char *in, *out;
		int32_t nanos;
	} cases[] = {
	        {"2026-11-23T08:00:00Z", "2026-11-23T08:00:00Z", 0},
	        {"2026-11-23T08:00:00+08:00", "2026-11-23T00:00:00Z", 0},
	        {"2026-11-23T08:00:00.123456-05:30",
	         "2026-11-23T13:30:00.123456Z", 123456000},
	        {"2026-11-23T08:00:00.5Z", "2026-11-23T08:00:00.500000Z",
	         500000000},
	        {"1969-12-31T23:59:59.25Z", "1969-12-31T23:59:59.250000Z",
	         250000000},
	        {"0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", 0},
	        {"9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z",
	         999999000},
	};
	/* The expected instants, from the UTC wall times above. */
	const int64_t seconds[] = {
	        utc(2026, 11, 23, 8, 0, 0),    utc(2026, 11, 23, 0, 0, 0),
	        utc(2026, 11, 23, 13, 30, 0),  utc(2026, 11, 23, 8, 0, 0),
	        utc(1969, 12, 31, 23, 59, 59), utc(1, 1, 1, 0, 0, 0),
	        utc(9999, 12, 31, 23, 59, 59),
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"occurred_at\": \"%s\"}",
		         cases[i].in);
		Pond__Event *ev = (Pond__Event *)decode_ok(
		        &pond__event__descriptor, text);
		cr_assert_eq(ev->occurred_at->seconds, seconds[i], "%s", text);
		cr_assert_eq(ev->occurred_at->nanos, cases[i].nanos, "%s",
		             text);
		snprintf(text, sizeof(text), "{\"occurred_at\": \"%s\"}",
		         cases[i].out);
		expect_encodes(ev, false, text);
		release(ev);
	}
}

Test(pbjson, timestamp_nanoseconds_are_cut_to_microseconds)
{
	Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
	Pond__Event ev = POND__EVENT__INIT;

	ts.seconds = utc(2026, 1, 2, 3, 4, 5);
	ts.nanos = 123456789;
	ev.occurred_at = &ts;
	expect_encodes(&ev, false,
	               "{\"occurred_at\": \"2026-01-02T03:04:05.123456Z\"}");
	/* Out of the RFC 3339 range there is no string to write. */
	ts.seconds = utc(10000, 1, 1, 0, 0, 0);
	expect_encodes(&ev, false, "{\"occurred_at\": null}");
	ts.seconds = 0;
	ts.nanos = -1;
	expect_encodes(&ev, false, "{\"occurred_at\": null}");
}

Test(pbjson, invalid_timestamps_are_errors)
{
	static const char *bad[] = {
	        "\"2026-13-01T00:00:00Z\"",
	        "\"2026-02-29T00:00:00Z\"",
	        "\"2026-11-23T24:00:00Z\"",
	        "\"tomorrow\"",
	        "\"2026-11-23T08:00:00\"",
	        "\"2026-11-23\"",
	        "\"2026-11-23T08:00:00Z \"",
	        "\"2026-11-23T08:00:00Z\\u0000\"",
	        "\"2026-11-23T08:00:00+8:00\"",
	        "\"\"",
	        "1795420800",
	        "{\"seconds\": 1}",
	        "true",
	        "[]",
	};
	char text[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{\"occurred_at\": %s}", bad[i]);
		expect_error(&pond__event__descriptor, text, "occurred_at",
		             "expected an RFC 3339 timestamp");
	}
	expect_error(&pond__event__descriptor,
	             "{\"occurred_at\": \"0000-12-31T00:00:00Z\"}",
	             "occurred_at", "timestamp out of range");
	expect_error(&pond__event__descriptor,
	             "{\"occurred_at\": \"9999-12-31T23:59:59-01:00\"}",
	             "occurred_at", "timestamp out of range");
}

Test(pbjson, full_event_round_trips_through_json_and_wire)
{
	Pond__Event *ev, *back;
	uint8_t *wire;
	size_t len;

	round_trip(&pond__event__descriptor, full_event);
	ev = (Pond__Event *)decode_ok(&pond__event__descriptor, full_event);
	len = pond__event__get_packed_size(ev);
	wire = malloc(len);
	pond__event__pack(ev, wire);
	back = pond__event__unpack(NULL, len, wire);
	cr_assert_not_null(back);
	expect_encodes(back, false, full_event);
	pond__event__free_unpacked(back, NULL);
	free(wire);
	release(ev);
}

Test(pbjson, emit_defaults_writes_every_field)
{
	Pond__Event *ev = (Pond__Event *)decode_ok(
	        &pond__event__descriptor,
	        "{\"event_id\": \"e1\", \"opt_in\": {}}");
	Pond__StreamRecord sr = POND__STREAM_RECORD__INIT;
	Pond__Touch t = POND__TOUCH__INIT;

	expect_encodes(ev, false, "{\"event_id\": \"e1\", \"opt_in\": {}}");
	expect_encodes(ev, true,
	               "{\"event_id\": \"e1\", \"customer_key\": \"\", "
	               "\"occurred_at\": null, \"aliases\": [], "
	               "\"opt_in\": {\"channel\": \"\"}}");
	release(ev);
	expect_encodes(&sr, false, "{}");
	expect_encodes(&sr, true,
	               "{\"stream\": \"\", \"partition\": 0, \"seq\": 0, "
	               "\"payload\": \"\"}");
	expect_encodes(&t, true,
	               "{\"touch_id\": \"\", \"customer_key\": \"\", "
	               "\"campaign_id\": \"\", \"channel\": \"\", "
	               "\"template\": \"\", \"params\": {}, \"aliases\": []}");
}

Test(pbjson, bytes_are_base64)
{
	Pond__StreamRecord *r;
	static const char *forms[] = {"aGk/Pz4+", "aGk_Pz4-"};

	for (size_t i = 0; i < 2; i++) {
		char text[64];
		snprintf(text, sizeof(text), "{\"payload\": \"%s\"}",
		         forms[i]);
		r = (Pond__StreamRecord *)decode_ok(
		        &pond__stream_record__descriptor, text);
		cr_assert_eq(r->payload.len, 6);
		cr_assert_eq(memcmp(r->payload.data, "hi?\?>>", 6), 0);
		release(r);
	}
	/* Unpadded input is accepted; output is standard and padded. */
	r = (Pond__StreamRecord *)decode_ok(&pond__stream_record__descriptor,
	                                    "{\"payload\": \"aGVsbG8\"}");
	cr_assert_eq(r->payload.len, 5);
	cr_assert_eq(memcmp(r->payload.data, "hello", 5), 0);
	expect_encodes(r, false, "{\"payload\": \"aGVsbG8=\"}");
	release(r);
	round_trip(&pond__stream_record__descriptor,
	           "{\"payload\": \"YQ==\"}");
	expect_error(&pond__stream_record__descriptor, "{\"payload\": \"a\"}",
	             "payload", "invalid base64");
	expect_error(&pond__stream_record__descriptor,
	             "{\"payload\": \"aGVsbG8==\"}", "payload",
	             "invalid base64");
	expect_error(&pond__stream_record__descriptor,
	             "{\"payload\": \"a=bc\"}", "payload", "invalid base64");
	expect_error(&pond__stream_record__descriptor, "{\"payload\": 1}",
	             "payload", "expected a base64 string");
}

/* ---- a hand-written descriptor for the types Pond does not use ----
 *
 * message Scalars {
 *   bool flag = 1; double ratio = 2; float weight = 3; Color color = 4;
 *   repeated sint32 counts = 5; Scalars child = 6;
 *   map<int32, bool> nums = 7; repeated string labels = 8;
 * }
 * enum Color { RED = 0; GREEN = 1; BLUE = 2; }
 */

typedef struct test_nums_entry {
	ProtobufCMessage base;
	int32_t key;
	protobuf_c_boolean value;
} test_nums_entry;

typedef struct test_scalars test_scalars;
struct test_scalars {
	ProtobufCMessage base;
	protobuf_c_boolean flag;
	double ratio;
	float weight;
	int color;
	size_t n_counts;
	int32_t *counts;
	test_scalars *child;
	size_t n_nums;
	test_nums_entry **nums;
	size_t n_labels;
	char **labels;
};

static const ProtobufCEnumValue color_values[] = {
        {"RED", "TEST_RED", 0},
        {"GREEN", "TEST_GREEN", 1},
        {"BLUE", "TEST_BLUE", 2},
};
static const ProtobufCEnumValueIndex color_by_name[] = {
        {"BLUE", 2}, {"GREEN", 1}, {"RED", 0}};
static const ProtobufCIntRange color_ranges[] = {{0, 0}, {0, 3}};
static const ProtobufCEnumDescriptor color_descriptor = {
        .magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC,
        .name = "test.Color",
        .short_name = "Color",
        .c_name = "TestColor",
        .package_name = "test",
        .n_values = 3,
        .values = color_values,
        .n_value_names = 3,
        .values_by_name = color_by_name,
        .n_value_ranges = 1,
        .value_ranges = color_ranges,
};

static void nums_entry_init(ProtobufCMessage *m);
static void scalars_init(ProtobufCMessage *m);

/* FIELD is one ProtobufCFieldDescriptor, proto3 style (no defaults). */
#define FIELD(name_, id_, label_, type_, quantifier_, offset_, desc_)         \
	{                                                                     \
		.name = name_, .id = id_, .label = label_, .type = type_,     \
		.quantifier_offset = quantifier_, .offset = offset_,          \
		.descriptor = desc_                                           \
	}

static const ProtobufCFieldDescriptor nums_entry_fields[] = {
        FIELD("key", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_INT32, 0,
              offsetof(test_nums_entry, key), NULL),
        FIELD("value", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BOOL, 0,
              offsetof(test_nums_entry, value), NULL),
};
static const unsigned nums_entry_by_name[] = {0, 1};
static const ProtobufCIntRange nums_entry_ranges[] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor nums_entry_descriptor = {
        .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
        .name = "test.Scalars.NumsEntry",
        .short_name = "NumsEntry",
        .c_name = "TestNumsEntry",
        .package_name = "test",
        .sizeof_message = sizeof(test_nums_entry),
        .n_fields = 2,
        .fields = nums_entry_fields,
        .fields_sorted_by_name = nums_entry_by_name,
        .n_field_ranges = 1,
        .field_ranges = nums_entry_ranges,
        .message_init = nums_entry_init,
};

static const ProtobufCMessageDescriptor scalars_descriptor;
static const ProtobufCFieldDescriptor scalars_fields[] = {
        FIELD("flag", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_BOOL, 0,
              offsetof(test_scalars, flag), NULL),
        FIELD("ratio", 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_DOUBLE, 0,
              offsetof(test_scalars, ratio), NULL),
        FIELD("weight", 3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FLOAT, 0,
              offsetof(test_scalars, weight), NULL),
        FIELD("color", 4, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_ENUM, 0,
              offsetof(test_scalars, color), &color_descriptor),
        FIELD("counts", 5, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_SINT32,
              offsetof(test_scalars, n_counts), offsetof(test_scalars, counts),
              NULL),
        FIELD("child", 6, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0,
              offsetof(test_scalars, child), &scalars_descriptor),
        FIELD("nums", 7, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_MESSAGE,
              offsetof(test_scalars, n_nums), offsetof(test_scalars, nums),
              &nums_entry_descriptor),
        FIELD("labels", 8, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_STRING,
              offsetof(test_scalars, n_labels), offsetof(test_scalars, labels),
              NULL),
};
/* child, color, counts, flag, labels, nums, ratio, weight */
static const unsigned scalars_by_name[] = {5, 3, 4, 0, 7, 6, 1, 2};
static const ProtobufCIntRange scalars_ranges[] = {{1, 0}, {0, 8}};
static const ProtobufCMessageDescriptor scalars_descriptor = {
        .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
        .name = "test.Scalars",
        .short_name = "Scalars",
        .c_name = "TestScalars",
        .package_name = "test",
        .sizeof_message = sizeof(test_scalars),
        .n_fields = 8,
        .fields = scalars_fields,
        .fields_sorted_by_name = scalars_by_name,
        .n_field_ranges = 1,
        .field_ranges = scalars_ranges,
        .message_init = scalars_init,
};

static void
nums_entry_init(ProtobufCMessage *m)
{
	memset(m, 0, sizeof(test_nums_entry));
	m->descriptor = &nums_entry_descriptor;
}

static void
scalars_init(ProtobufCMessage *m)
{
	memset(m, 0, sizeof(test_scalars));
	m->descriptor = &scalars_descriptor;
}

Test(pbjson, other_scalar_types_round_trip)
{
	test_scalars *s = (test_scalars *)decode_ok(
	        &scalars_descriptor,
	        "{\"flag\": true, \"ratio\": 0.25, \"weight\": 1.5, "
	        "\"color\": \"GREEN\", \"counts\": [-1, \"2\", 3], "
	        "\"nums\": {\"-4\": true, \"7\": false}, "
	        "\"labels\": [\"a\", \"\"], \"child\": {\"color\": 2}}");

	cr_assert_eq(s->flag, 1);
	cr_assert_eq(s->ratio, 0.25);
	cr_assert_eq(s->weight, 1.5f);
	cr_assert_eq(s->color, 1);
	cr_assert_eq(s->n_counts, 3);
	cr_assert_eq(s->counts[0], -1);
	cr_assert_eq(s->counts[1], 2);
	cr_assert_eq(s->n_nums, 2);
	cr_assert_eq(s->nums[0]->key, -4);
	cr_assert_eq(s->nums[0]->value, 1);
	cr_assert_eq(s->child->color, 2);
	expect_encodes(s, false,
	               "{\"flag\": true, \"ratio\": 0.25, \"weight\": 1.5, "
	               "\"color\": \"GREEN\", \"counts\": [-1, 2, 3], "
	               "\"child\": {\"color\": \"BLUE\"}, "
	               "\"nums\": {\"-4\": true, \"7\": false}, "
	               "\"labels\": [\"a\", \"\"]}");
	release(s);
}

Test(pbjson, special_floats_and_open_enums)
{
	test_scalars *s = (test_scalars *)decode_ok(
	        &scalars_descriptor, "{\"ratio\": \"NaN\", \"weight\": "
	                             "\"-Infinity\", \"color\": 9}");

	cr_assert(isnan(s->ratio));
	cr_assert(isinf(s->weight) && s->weight < 0);
	/* An unnamed value is kept and written as a number. */
	expect_encodes(s, false,
	               "{\"ratio\": \"NaN\", \"weight\": \"-Infinity\", "
	               "\"color\": 9}");
	expect_encodes(s, true,
	               "{\"flag\": false, \"ratio\": \"NaN\", "
	               "\"weight\": \"-Infinity\", \"color\": 9, "
	               "\"counts\": [], \"child\": null, \"nums\": {}, "
	               "\"labels\": []}");
	release(s);
	expect_error(&scalars_descriptor, "{\"color\": \"PURPLE\"}", "color",
	             "unknown enum value");
	expect_error(&scalars_descriptor, "{\"color\": 2147483648}", "color",
	             "integer out of range");
	expect_error(&scalars_descriptor, "{\"weight\": 1e39}", "weight",
	             "number out of range for float");
	expect_error(&scalars_descriptor, "{\"ratio\": \"1.5\"}", "ratio",
	             "expected a number");
	expect_error(&scalars_descriptor, "{\"flag\": \"true\"}", "flag",
	             "expected true or false");
	expect_error(&scalars_descriptor, "{\"flag\": 1}", "flag",
	             "expected true or false");
	expect_error(&scalars_descriptor, "{\"counts\": [1, 2147483648]}",
	             "counts[1]", "integer out of range");
	expect_error(&scalars_descriptor, "{\"nums\": {\"x\": true}}",
	             "nums[\"x\"]", "expected an integer");
	expect_error(&scalars_descriptor, "{\"nums\": {\"1\": 1}}",
	             "nums[\"1\"]", "expected true or false");
	expect_error(&scalars_descriptor,
	             "{\"child\": {\"child\": {\"x\": 1}}}", "child.child.x",
	             "unknown field");
}

/* nest returns k messages nested through "child". */
static json_t *
nest(int k)
{
	json_t *j = json_object();

	for (int i = 1; i < k; i++) {
		json_t *outer = json_object();
		json_object_set_new(outer, "child", j);
		j = outer;
	}
	return (j);
}

Test(pbjson, deep_nesting_is_refused)
{
	ProtobufCMessage *m;
	pond_pbjson_error err;
	json_t *j = nest(POND_PBJSON_MAX_DEPTH);

	cr_assert_eq(pond_pbjson_decode(&scalars_descriptor, j, &counting, &m,
	                                &err),
	             POND_OK);
	release(m);
	json_decref(j);
	for (int k = POND_PBJSON_MAX_DEPTH + 1; k < 5000; k *= 4) {
		j = nest(k);
		m = (ProtobufCMessage *)&m;
		cr_assert_eq(pond_pbjson_decode(&scalars_descriptor, j,
		                                &counting, &m, &err),
		             POND_EINVAL);
		cr_assert_null(m);
		cr_assert_str_eq(err.message, "nesting deeper than 32");
		/* The path is cut to fit, never overrun. */
		cr_assert_eq(strncmp(err.path, "child.child.", 12), 0);
		cr_assert_eq(strlen(err.path), sizeof(err.path) - 1);
		cr_assert_eq(cnt.live, 0);
		json_decref(j);
	}
}

/* ---- memory ---- */

Test(pbjson, every_allocation_failure_is_clean)
{
	json_t *j = parse(full_event);
	ProtobufCMessage *m;
	pond_pbjson_error err;
	size_t k;
	int rv;

	for (k = 1;; k++) {
		cnt = (counter){.fail_at = k};
		m = (ProtobufCMessage *)&m;
		rv = pond_pbjson_decode(&pond__event__descriptor, j, &counting,
		                        &m, &err);
		if (rv == POND_OK) {
			break;
		}
		cr_assert_eq(rv, POND_ENOMEM, "k=%zu", k);
		cr_assert_null(m);
		cr_assert_str_eq(err.message, "out of memory");
		cr_assert_eq(cnt.live, 0, "k=%zu", k);
	}
	/* full_event takes 7 messages (event, timestamp, 2 aliases,
	 * order_paid, 2 items), 2 arrays (aliases, items) and 14 strings (2
	 * on the event, 2 per alias, 4 on order_paid, 2 per item): 23
	 * allocations, and every one of them was made to fail once. */
	cr_assert_eq(cnt.calls, 23);
	cr_assert_eq(k, 24);
	release(m);
	json_decref(j);
}

Test(pbjson, default_allocator_pairs_with_free_unpacked_null)
{
	json_t *j = parse(full_event);
	ProtobufCMessage *m;

	cr_assert_eq(pond_pbjson_decode(&pond__event__descriptor, j, NULL, &m,
	                                NULL),
	             POND_OK);
	protobuf_c_message_free_unpacked(m, NULL);
	json_decref(j);
}

Test(pbjson, encode_repairs_invalid_utf8)
{
	Pond__Alias a = POND__ALIAS__INIT;

	a.kind = "a\xff"
	         "b";
	a.value = "\xe4\xb8\xad\xe4\xb8";
	expect_encodes(&a, false,
	               "{\"kind\": \"a\\ufffdb\", "
	               "\"value\": \"\\u4e2d\\ufffd\\ufffd\"}");
}

/* ---- random documents ---- */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng % n);
}

static const char *const names[] = {
        "events",        "token",           "event_id",   "customer_key",
        "occurred_at",   "aliases",         "kind",       "value",
        "order_paid",    "items",           "qty",        "amount_fen",
        "opt_in",        "profile_updated", "attributes", "region",
        "contact_added", "channel",         "bogus",      "price_fen",
};

static json_t *
random_value(int depth)
{
	static const char *const strings[] = {"",
	                                      "x",
	                                      "12",
	                                      "-9223372036854775809",
	                                      "1.5",
	                                      "2026-11-23T08:00:00+08:00",
	                                      "2026-02-30T00:00:00Z",
	                                      "aGk=",
	                                      "NaN",
	                                      "\xe4\xb8\xad"};
	json_t *j;

	switch (rnd(depth > 3 ? 6 : 8)) {
	case 0:
		return (json_null());
	case 1:
		return (json_boolean(rnd(2)));
	case 2:
		return (json_integer((json_int_t)(rng >> rnd(64))));
	case 3:
		return (json_real((double)(int64_t)rng /
		                  (double)(1 + rnd(1000))));
	case 4:
	case 5:
		return (json_string(strings[rnd(10)]));
	case 6:
		j = json_array();
		for (uint64_t i = rnd(4); i > 0; i--) {
			json_array_append_new(j, random_value(depth + 1));
		}
		return (j);
	default:
		j = json_object();
		for (uint64_t i = rnd(4); i > 0; i--) {
			json_object_set_new(j, names[rnd(20)],
			                    random_value(depth + 1));
		}
		return (j);
	}
}

/* mutate changes one randomly chosen place in the tree under j. */
static void
mutate(json_t *j, int depth)
{
	size_t n =
	        json_is_object(j) ? json_object_size(j) : json_array_size(j);

	if (n > 0 && rnd(3) != 0) {
		if (json_is_array(j)) {
			json_t *c = json_array_get(j, rnd(n));
			if (json_is_object(c) || json_is_array(c)) {
				mutate(c, depth + 1);
				return;
			}
		} else {
			void *it = json_object_iter(j);
			for (uint64_t skip = rnd(n); skip > 0; skip--) {
				it = json_object_iter_next(j, it);
			}
			json_t *c = json_object_iter_value(it);
			if (json_is_object(c) || json_is_array(c)) {
				mutate(c, depth + 1);
				return;
			}
		}
	}
	if (json_is_array(j)) {
		if (n > 0 && rnd(2)) {
			json_array_set_new(j, rnd(n), random_value(depth));
		} else {
			json_array_append_new(j, random_value(depth));
		}
	} else if (n > 0 && rnd(3) == 0) {
		json_object_del(j, json_object_iter_key(json_object_iter(j)));
	} else {
		json_object_set_new(j, names[rnd(20)], random_value(depth));
	}
}

/* corrupt flips bytes of the text form; most results do not parse. */
static json_t *
corrupt(const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	size_t len = strlen(text);
	json_t *out;

	for (uint64_t i = 1 + rnd(3); i > 0; i--) {
		text[rnd(len)] = "{}[]\":,0-9a\\ "[rnd(14)];
	}
	out = json_loads(text, JSON_DECODE_ANY, NULL);
	free(text);
	return (out);
}

/* check_stable decodes what encoding m produced and expects the same. */
static void
check_stable(ProtobufCMessage *m)
{
	json_t *once = pond_pbjson_encode(m, false), *twice;
	ProtobufCMessage *again;
	pond_pbjson_error err;

	cr_assert_not_null(once);
	cr_assert_eq(pond_pbjson_decode(&pond__ingest_batch__descriptor, once,
	                                &counting, &again, &err),
	             POND_OK, "%s: %s: %s", dump(once), err.path, err.message);
	twice = pond_pbjson_encode(again, false);
	cr_assert(json_equal(once, twice), "%s vs %s", dump(once),
	          dump(twice));
	json_decref(twice);
	twice = pond_pbjson_encode(again, true);
	cr_assert_not_null(twice);
	json_decref(twice);
	json_decref(once);
	protobuf_c_message_free_unpacked(again, &counting);
}

Test(pbjson, random_documents_never_crash)
{
	char seed_text[sizeof(full_event) + 64];
	json_t *seed;
	int decoded = 0, refused = 0;

	snprintf(seed_text, sizeof(seed_text),
	         "{\"token\": \"t\", \"events\": [%s, {}]}", full_event);
	seed = parse(seed_text);
	for (int i = 0; i < 2000; i++) {
		json_t *doc = json_deep_copy(seed), *text_doc;
		ProtobufCMessage *m;
		pond_pbjson_error err;

		for (uint64_t k = 1 + rnd(4); k > 0; k--) {
			mutate(doc, 0);
		}
		if (rnd(4) == 0 && (text_doc = corrupt(doc)) != NULL) {
			json_decref(doc);
			doc = text_doc;
		}
		if (pond_pbjson_decode(&pond__ingest_batch__descriptor, doc,
		                       &counting, &m, &err) == POND_OK) {
			check_stable(m);
			protobuf_c_message_free_unpacked(m, &counting);
			decoded++;
		} else {
			cr_assert_null(m);
			cr_assert_neq(err.message[0], '\0');
			refused++;
		}
		cr_assert_eq(cnt.live, 0, "leak on document %d", i);
		json_decref(doc);
	}
	/* Both outcomes must be exercised for the test to mean anything. */
	cr_assert_gt(decoded, 50);
	cr_assert_gt(refused, 50);
	json_decref(seed);
}
