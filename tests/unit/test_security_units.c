/*
 * test_security_units.c - what the fuzz targets found, and the parsers
 * they drive, checked without a store.
 *
 * Every input under fuzz/regress/ that once crashed a target is replayed
 * here through the same functions, so the ASan+UBSan build of make test
 * fails if the bug comes back.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http.h"
#include "ingest.h"
#include "token.h"

#define NOW INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

/* decode_validate runs a protobuf batch through what ingest does before
 * the store and returns it; the caller frees it. */
static ingest_batch *
decode_validate(const uint8_t *buf, size_t len)
{
	ingest_batch *b = ingest_batch_new(NULL, FORMAT_PROTOBUF);

	cr_assert_not_null(b);
	cr_assert_eq(ingest_decode_protobuf(b, buf, len), 0);
	for (size_t i = 0; i < b->n; i++) {
		ingest_validate(&b->items[i], FORMAT_PROTOBUF, NOW);
	}
	return (b);
}

/* fuzz/regress/fuzz_ingest_protobuf/empty-event: a frame holding one
 * event of zero bytes (field 2, length 0). protobuf-c hands it over as
 * (NULL, 0), and the wire scans computed NULL + 0, undefined behaviour
 * that UBSan stops on. The empty event decodes to an Event with nothing
 * set, so its first fault is the missing event_id. */
Test(security_units, empty_event_in_frame_is_missing_event_id)
{
	static const uint8_t frame[] = {0x12, 0x00};
	ingest_batch *b = decode_validate(frame, sizeof(frame));

	cr_assert_eq(b->n, 1);
	cr_assert_eq(b->items[0].check, CODE_MISSING_EVENT_ID, "%s",
	             ingest_code_name(b->items[0].check));
	ingest_batch_free(b);
}

/* A fixed64 field (wire type 1) cut short at the end of an event: the
 * scans must stop at the end, not step 8 bytes past it. Key 0x59 is field
 * 11, type 1; three bytes follow instead of eight. */
Test(security_units, fixed_field_cut_short_stays_inside_the_event)
{
	static const uint8_t frame[] = {0x12, 0x04, 0x59, 0x01, 0x02, 0x03};
	ingest_batch *b = decode_validate(frame, sizeof(frame));

	cr_assert_eq(b->n, 1);
	cr_assert_eq(b->items[0].check, CODE_UNDECODABLE, "%s",
	             ingest_code_name(b->items[0].check));
	ingest_batch_free(b);
}

Test(security_units, bearer_value_takes_one_word)
{
	size_t len = 0;
	const char *t;

	t = pond_http_bearer_value("Bearer api_abc", &len);
	cr_assert(t != NULL && len == 7 && strncmp(t, "api_abc", 7) == 0);
	t = pond_http_bearer_value("bEaReR \t api_abc \t", &len);
	cr_assert(t != NULL && len == 7 && strncmp(t, "api_abc", 7) == 0);
	cr_assert_null(pond_http_bearer_value(NULL, &len));
	cr_assert_null(pond_http_bearer_value("", &len));
	cr_assert_null(pond_http_bearer_value("Bearer", &len));
	cr_assert_null(pond_http_bearer_value("Bearer ", &len));
	cr_assert_null(pond_http_bearer_value("Bearerapi_abc", &len));
	cr_assert_null(pond_http_bearer_value("Bearer a b", &len));
	cr_assert_null(pond_http_bearer_value("Basic YWxhZGRpbjpvcGVu", &len));
}

/* RFC 4231, test case 2: HMAC-SHA256 with key "Jefe" of "what do ya want
 * for nothing?" (the published answer, not one computed here). */
Test(security_units, pii_hash_is_hmac_sha256_hex)
{
	char out[POND_PII_HASH_LEN + 1];
	const char *msg = "what do ya want for nothing?";

	cr_assert_eq(pond_pii_hash("Jefe", 4, msg, strlen(msg), out), 0);
	cr_assert_str_eq(out, "5bdcc146bf60754e6a042426089575c7"
	                      "5a003f089d2739839dec58b964ec3843");
}
