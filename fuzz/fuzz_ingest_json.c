/*
 * fuzz_ingest_json.c - libFuzzer target: the JSON event decoder.
 *
 * The input is the body of POST /v1/events. It goes through
 * ingest_decode_json (jansson, then the proto3 JSON codec per element, and
 * the classification of refused elements), ingest_validate of every item
 * and the JSON reply, as pond-ingest does before and after the store.
 */
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

/* A fixed "now" keeps runs reproducible: 2026-01-01T00:00:00Z. */
#define FUZZ_NOW INT64_C(1767225600000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ingest_batch *b = ingest_batch_new(NULL, FORMAT_JSON);
	unsigned status;

	if (b == NULL) {
		return (0);
	}
	if (ingest_decode_json(b, (const char *)data, size, &status) == 0) {
		for (size_t i = 0; i < b->n; i++) {
			ingest_validate(&b->items[i], FORMAT_JSON, FUZZ_NOW);
			b->items[i].status = STATUS_REJECTED;
			b->items[i].code = b->items[i].check;
			b->items[i].reason = b->items[i].check_reason;
		}
	}
	json_decref(ingest_encode_json(b));
	ingest_batch_free(b);
	return (0);
}
