/*
 * pii.c - aliases are stored only as keyed hashes.
 *
 * An alias value (a phone number, a WeCom external userid, an openid, a
 * member id) identifies a person outside Pond. Before a batch meets the
 * store, every alias value of every decoded event is replaced by
 * pond_pii_hash(POND_PII_KEY, value): customer_aliases holds only hashes,
 * lookups compare hashes, and the event payload written to the stream (so
 * also what tagging, the scheduler's touches and reporting see) carries
 * only hashes. The raw bytes of a rejected event are the exception, kept
 * as they came for the fix and replay (docs/security.md).
 */
#include <string.h>

#include "ingest.h"
#include "token.h"

int
ingest_hash_aliases(ingest_batch *b, const char *key, size_t keylen)
{
	int rv;

	for (size_t i = 0; i < b->n; i++) {
		Pond__Event *e = b->items[i].event;
		for (size_t k = 0; e != NULL && k < e->n_aliases; k++) {
			Pond__Alias *a = e->aliases[k];
			char *h = pond_arena_alloc(&b->arena,
			                           POND_PII_HASH_LEN + 1);
			if (h == NULL) {
				return (POND_ENOMEM);
			}
			if ((rv = pond_pii_hash(key, keylen, a->value,
			                        strlen(a->value), h)) != 0) {
				return (rv);
			}
			a->value = h;
		}
	}
	return (POND_OK);
}
