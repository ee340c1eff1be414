/*
 * fuzz_ingest_protobuf.c - libFuzzer target: the protobuf batch decoder.
 *
 * The input is the body of an NNG ingest request. It goes through what
 * pond-ingest does before the store: ingest_decode_protobuf (the frame,
 * then each event on its own) and ingest_validate of every item, then the
 * reply is encoded. A crash, a leak or a sanitizer report is a finding;
 * the store is left out (it sees only what these functions let through).
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
	ingest_batch *b = ingest_batch_new(NULL, FORMAT_PROTOBUF);
	uint8_t *ack;
	size_t len;

	if (b == NULL) {
		return (0);
	}
	if (ingest_decode_protobuf(b, data, size) == 0) {
		for (size_t i = 0; i < b->n; i++) {
			ingest_validate(&b->items[i], FORMAT_PROTOBUF,
			                FUZZ_NOW);
			b->items[i].status = STATUS_REJECTED;
			b->items[i].code = b->items[i].check;
			b->items[i].reason = b->items[i].check_reason;
		}
	}
	(void)ingest_encode_ack(b, &ack, &len);
	ingest_batch_free(b);
	return (0);
}
