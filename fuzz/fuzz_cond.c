/*
 * fuzz_cond.c - libFuzzer target: the condition-language parser.
 *
 * The input is the body of PUT /v1/tag-rules/TAG. Like the rule API it is
 * read by jansson, its "condition" (or the whole document, when there is
 * none) is parsed by pond_cond_parse, and a condition that parses is
 * evaluated on a customer with every fact set and on one with none.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cond.h"

/* A fixed "now" keeps runs reproducible: 2026-01-01T00:00:00Z. */
#define FUZZ_NOW INT64_C(1767225600000000)
#define FUZZ_DAY INT64_C(86400000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = {"vip", "lifecycle:loyal", ""};
	json_t *root = json_loadb((const char *)data, size, 0, NULL);
	json_t *cond_json, *attrs = json_pack("{s:s}", "city", "杭州");
	pond_cond *c = NULL;
	pond_cond_error err;

	if (root == NULL || attrs == NULL) {
		goto out;
	}
	cond_json = json_object_get(root, "condition");
	if (pond_cond_parse(cond_json != NULL ? cond_json : root, &c, &err) ==
	    0) {
		pond_facts full = {
		        .channel = "cards",
		        .guide_id = "g1",
		        .store_id = "s1",
		        .region = "华东",
		        .industry = "retail",
		        .lifecycle = "loyal",
		        .attributes = attrs,
		        .tags = tags,
		        .ntags = 3,
		        .orders = 3,
		        .net_revenue_fen = -5,
		        .rewards_fen = INT64_MAX,
		        .invitees = INT64_MIN,
		        .added_at = FUZZ_NOW - 40 * FUZZ_DAY,
		        .last_order_at = FUZZ_NOW + FUZZ_DAY,
		        .last_interaction_at = 1,
		        .now = FUZZ_NOW,
		};
		pond_facts empty = {.now = FUZZ_NOW};
		(void)pond_cond_eval(c, &full);
		(void)pond_cond_eval(c, &empty);
		(void)pond_cond_uses_time(c);
	}
	pond_cond_free(c);
out:
	json_decref(attrs);
	json_decref(root);
	return (0);
}
