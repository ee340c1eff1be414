/*
 * test_cond.c - the condition language of API.md section 5
 * (common/cond.c): every operator on every kind of field,
 * nesting, absent values, days counted in POND_TZ, and parse errors that
 * name the path and what was expected.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cond.h"

static void
shanghai(void)
{
	setenv("TZ", "Asia/Shanghai", 1);
	tzset();
}

TestSuite(pond_cond, .init = shanghai);

/* t_at parses an RFC 3339 time. */
static pond_time
t_at(const char *s)
{
	pond_time t;

	cr_assert_eq(pond_time_parse_rfc3339(s, &t), 0, "%s", s);
	return (t);
}

static pond_cond *
parse_ok(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	pond_cond *c = NULL;
	pond_cond_error err;

	cr_assert_not_null(j, "bad JSON in test: %s", jerr.text);
	cr_assert_eq(pond_cond_parse(j, &c, &err), 0, "%s: %s at %s", text,
	             err.message, err.path);
	json_decref(j);
	return (c);
}

/* parse_err asserts text is refused at path with a message holding
 * needle. */
static void
parse_err(const char *text, const char *path, const char *needle)
{
	json_t *j = json_loads(text, 0, NULL);
	pond_cond *c = (pond_cond *)1;
	pond_cond_error err;

	cr_assert_not_null(j);
	cr_assert_eq(pond_cond_parse(j, &c, &err), POND_EINVAL, "%s", text);
	cr_assert_null(c);
	cr_assert_str_eq(err.path, path, "%s: path %s, message %s", text,
	                 err.path, err.message);
	cr_assert(strstr(err.message, needle) != NULL,
	          "%s: message \"%s\" lacks \"%s\"", text, err.message,
	          needle);
	json_decref(j);
}

static const char *const some_tags[] = {"vip", "lifecycle:loyal"};

/* base_facts: a loyal customer from Shanghai, added 2026-01-01 10:00
 * Shanghai time; now is 2026-03-02 09:00 Shanghai. */
static pond_facts
base_facts(void)
{
	static json_t *attrs;

	if (attrs == NULL) {
		attrs = json_pack("{s:s, s:s}", "size", "L", "pet", "cat");
	}
	return ((pond_facts){
	        .channel = "cards",
	        .guide_id = "g1",
	        .store_id = "s1",
	        .region = "Shanghai",
	        .industry = "retail",
	        .lifecycle = "loyal",
	        .attributes = attrs,
	        .tags = some_tags,
	        .ntags = 2,
	        .orders = 3,
	        .net_revenue_fen = 150000,
	        .rewards_fen = 500,
	        .invitees = 2,
	        .added_at = t_at("2026-01-01T02:00:00Z"),
	        .last_order_at = t_at("2026-02-28T15:59:59Z"),
	        .last_interaction_at = 0,
	        .now = t_at("2026-03-02T01:00:00Z"),
	});
}

static bool
holds(const char *text, const pond_facts *f)
{
	pond_cond *c = parse_ok(text);
	bool r = pond_cond_eval(c, f);

	pond_cond_free(c);
	return (r);
}

#define LEAF(field, op, value)                                                \
	"{\"field\": \"" field "\", \"op\": \"" op "\", \"value\": " value "}"

Test(pond_cond, string_fields_every_operator)
{
	pond_facts f = base_facts();
	static const struct {
		const char *field, *yes, *no;
	} fields[] = {
	        {"channel", "cards", "sms"},
	        {"guide_id", "g1", "g2"},
	        {"store_id", "s1", "s2"},
	        {"region", "Shanghai", "Beijing"},
	        {"industry", "retail", "finance"},
	        {"lifecycle", "loyal", "potential"},
	        {"attributes.size", "L", "M"},
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
#define CHECK(expect, op, value)                                              \
	snprintf(buf, sizeof(buf),                                            \
	         "{\"field\": \"%s\", \"op\": \"" op "\", \"value\": %s}",    \
	         fields[i].field, value);                                     \
	cr_assert_eq(holds(buf, &f), expect, "%s", buf)
		char yes[64], no[64], list[160], part[16];
		snprintf(yes, sizeof(yes), "\"%s\"", fields[i].yes);
		snprintf(no, sizeof(no), "\"%s\"", fields[i].no);
		snprintf(list, sizeof(list), "[\"x\", \"%s\"]", fields[i].yes);
		snprintf(part, sizeof(part), "\"%.1s\"", fields[i].yes + 1);
		CHECK(true, "=", yes);
		CHECK(false, "=", no);
		CHECK(false, "!=", yes);
		CHECK(true, "!=", no);
		CHECK(true, "in", list);
		CHECK(false, "in", "[\"x\", \"y\"]");
		CHECK(true, "contains", part);
		CHECK(false, "contains", "\"zzz\"");
		CHECK(true, "exists", "true");
		CHECK(false, "exists", "false");
#undef CHECK
	}
	/* exists without a value means "exists": true. */
	cr_assert(holds("{\"field\": \"region\", \"op\": \"exists\"}", &f));
}

Test(pond_cond, absent_values_satisfy_only_ne_and_not_exists)
{
	pond_facts f = base_facts();

	f.region = NULL;
	cr_assert_not(holds(LEAF("region", "=", "\"x\""), &f));
	cr_assert(holds(LEAF("region", "!=", "\"x\""), &f));
	cr_assert_not(holds(LEAF("region", "in", "[\"x\"]"), &f));
	cr_assert_not(holds(LEAF("region", "contains", "\"\""), &f));
	cr_assert_not(holds(LEAF("region", "exists", "true"), &f));
	cr_assert(holds(LEAF("region", "exists", "false"), &f));
	cr_assert_not(holds(LEAF("attributes.missing", "exists", "true"), &f));
	cr_assert(holds(LEAF("attributes.missing", "!=", "\"L\""), &f));
	/* No interaction yet: no age, every comparison false but !=. */
	cr_assert_not(
	        holds(LEAF("days_since_last_interaction", ">=", "0"), &f));
	cr_assert_not(
	        holds(LEAF("days_since_last_interaction", "<", "1e9"), &f));
	cr_assert(holds(LEAF("days_since_last_interaction", "!=", "3"), &f));
	cr_assert(holds(LEAF("days_since_last_interaction", "exists", "false"),
	                &f));
}

Test(pond_cond, numeric_fields_every_operator)
{
	pond_facts f = base_facts();
	/* Each field with its value in base_facts. days_since_added: Jan 1
	 * to Mar 2 in Shanghai is 31 + 28 + 1 = 60 days. The last order,
	 * 2026-02-28T15:59:59Z, is Feb 28 23:59:59 in Shanghai: 2 days. */
	static const struct {
		const char *field;
		int value;
	} fields[] = {
	        {"orders", 3},
	        {"net_revenue_fen", 150000},
	        {"rewards_fen", 500},
	        {"invitees", 2},
	        {"days_since_added", 60},
	        {"days_since_last_order", 2},
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		int v = fields[i].value;
#define CHECK(expect, op, x)                                                  \
	snprintf(buf, sizeof(buf),                                            \
	         "{\"field\": \"%s\", \"op\": \"" op "\", \"value\": %d}",    \
	         fields[i].field, x);                                         \
	cr_assert_eq(holds(buf, &f), expect, "%s", buf)
		CHECK(true, "=", v);
		CHECK(false, "=", v + 1);
		CHECK(true, "!=", v - 1);
		CHECK(false, "!=", v);
		CHECK(true, "<", v + 1);
		CHECK(false, "<", v);
		CHECK(true, "<=", v);
		CHECK(false, "<=", v - 1);
		CHECK(true, ">", v - 1);
		CHECK(false, ">", v);
		CHECK(true, ">=", v);
		CHECK(false, ">=", v + 1);
#undef CHECK
		snprintf(buf, sizeof(buf),
		         "{\"field\": \"%s\", \"op\": \"in\", \"value\": [-7, "
		         "%d]}",
		         fields[i].field, v);
		cr_assert(holds(buf, &f), "%s", buf);
		snprintf(
		        buf, sizeof(buf),
		        "{\"field\": \"%s\", \"op\": \"in\", \"value\": [-7]}",
		        fields[i].field);
		cr_assert_not(holds(buf, &f), "%s", buf);
		snprintf(buf, sizeof(buf),
		         "{\"field\": \"%s\", \"op\": \"exists\"}",
		         fields[i].field);
		cr_assert(holds(buf, &f), "%s", buf);
	}
	cr_assert(holds(LEAF("net_revenue_fen", ">=", "1499.5e2"), &f));
}

Test(pond_cond, tags_contains_in_exists)
{
	pond_facts f = base_facts();

	cr_assert(holds(LEAF("tags", "contains", "\"vip\""), &f));
	cr_assert_not(holds(LEAF("tags", "contains", "\"vi\""), &f));
	cr_assert(
	        holds(LEAF("tags", "in", "[\"a\", \"lifecycle:loyal\"]"), &f));
	cr_assert_not(holds(LEAF("tags", "in", "[\"a\", \"b\"]"), &f));
	cr_assert(holds(LEAF("tags", "exists", "true"), &f));
	f.ntags = 0;
	cr_assert(holds(LEAF("tags", "exists", "false"), &f));
	cr_assert_not(holds(LEAF("tags", "contains", "\"vip\""), &f));
}

Test(pond_cond, days_turn_at_midnight_in_pond_tz)
{
	pond_facts f = base_facts();
	const char *dormant = LEAF("days_since_last_order", ">=", "3");

	/* Last order Feb 28 23:59:59 Shanghai. Mar 2 23:59:59 is 2 days,
	 * Mar 3 00:00:00 (= Mar 2 16:00Z) is 3. */
	f.now = t_at("2026-03-02T15:59:59Z");
	cr_assert_not(holds(dormant, &f));
	f.now = t_at("2026-03-02T16:00:00Z");
	cr_assert(holds(dormant, &f));
	cr_assert_eq(pond_days_since(t_at("2026-02-28T15:59:59Z"),
	                             t_at("2026-02-28T16:00:00Z")),
	             1, "one second across midnight is a day");
	cr_assert_eq(pond_next_local_midnight(t_at("2026-03-02T01:00:00Z")),
	             t_at("2026-03-02T16:00:00Z"));
	cr_assert_eq(pond_next_local_midnight(t_at("2026-03-02T16:00:00Z")),
	             t_at("2026-03-03T16:00:00Z"));
}

Test(pond_cond, nesting_all_any_not)
{
	pond_facts f = base_facts();

	cr_assert(holds(
	        "{\"all\": [" LEAF("region", "=", "\"Shanghai\"") ", " LEAF(
	                "net_revenue_fen", ">=", "100000") "]}",
	        &f));
	cr_assert_not(holds(
	        "{\"all\": [" LEAF("region", "=", "\"Shanghai\"") ", " LEAF(
	                "orders", ">", "5") "]}",
	        &f));
	cr_assert(holds("{\"any\": [" LEAF("orders", ">", "5") ", " LEAF(
	                        "channel", "=", "\"cards\"") "]}",
	                &f));
	cr_assert_not(holds("{\"any\": [" LEAF("orders", ">", "5") ", " LEAF(
	                            "channel", "=", "\"sms\"") "]}",
	                    &f));
	cr_assert_not(holds("{\"not\": " LEAF("orders", "=", "3") "}", &f));
	cr_assert(holds("{\"not\": {\"not\": " LEAF("orders", "=", "3") "}}",
	                &f));
	/* Coupon hunters: came with a reward, never bought. */
	const char *hunter = "{\"all\": [" LEAF(
	        "rewards_fen", ">",
	        "0") ", {\"any\": "
	             "[" LEAF("orders", "=", "0") ", {\"not\": " LEAF(
	                     "net_revenue_fen", ">", "0") "}]}]}";
	cr_assert_not(holds(hunter, &f));
	f.orders = 0;
	cr_assert(holds(hunter, &f));
}

Test(pond_cond, uses_time_only_with_days_since)
{
	pond_cond *c = parse_ok("{\"any\": [" LEAF(
	        "orders", ">", "1") ", "
	                            "{\"not\": " LEAF("days_since_added", ">",
	                                              "1") "}]}");
	cr_assert(pond_cond_uses_time(c));
	pond_cond_free(c);
	c = parse_ok(LEAF("orders", ">", "1"));
	cr_assert_not(pond_cond_uses_time(c));
	pond_cond_free(c);
}

Test(pond_cond, parse_errors_name_path_and_expectation)
{
	parse_err("[]", "$", "expected an object");
	parse_err("{}", "$", "expected exactly one of");
	parse_err("{\"all\": []}", "$.all", "non-empty array");
	parse_err("{\"any\": {}}", "$.any", "non-empty array");
	parse_err("{\"all\": [" LEAF("orders", ">", "1") ", 7]}", "$.all[1]",
	          "expected an object");
	parse_err("{\"all\": [{\"any\": [{\"field\": \"nope\", \"op\": \"=\","
	          " \"value\": 1}]}]}",
	          "$.all[0].any[0].field", "unknown field \"nope\"");
	parse_err("{\"not\": {\"field\": \"orders\", \"op\": \"~\", "
	          "\"value\": 1}}",
	          "$.not.op", "expected an operator");
	parse_err("{\"field\": \"orders\", \"value\": 1}", "$",
	          "expected an \"op\" member");
	parse_err("{\"op\": \"=\", \"value\": 1}", "$",
	          "expected a \"field\" member");
	parse_err("{\"field\": \"orders\", \"op\": \"=\"}", "$",
	          "expected a \"value\" member");
	parse_err(LEAF("orders", "=", "\"3\""), "$.value",
	          "expected a number");
	parse_err(LEAF("region", "=", "3"), "$.value", "expected a string");
	parse_err(LEAF("region", "<", "\"a\""), "$.op",
	          "needs a numeric field");
	parse_err(LEAF("orders", "contains", "\"1\""), "$.op",
	          "needs a string field or tags");
	parse_err(LEAF("tags", "=", "\"vip\""), "$.op", "tags is a set");
	parse_err(LEAF("region", "in", "[]"), "$.value", "non-empty array");
	parse_err(LEAF("region", "in", "[\"a\", 2]"), "$.value[1]",
	          "expected a string");
	parse_err(LEAF("orders", "in", "[1, \"2\"]"), "$.value[1]",
	          "expected a number");
	parse_err(LEAF("region", "exists", "\"yes\""), "$.value",
	          "true or false");
	parse_err(LEAF("attributes.", "=", "\"x\""), "$.field",
	          "attribute name");
	parse_err("{\"field\": \"orders\", \"op\": \"=\", \"value\": 1, "
	          "\"extra\": 1}",
	          "$", "unknown member \"extra\"");
	parse_err("{\"every\": []}", "$", "unknown member \"every\"");
	parse_err("{\"all\": [], \"any\": []}", "$", "exactly one of");
}

Test(pond_cond, depth_is_bounded)
{
	char buf[2048] = "";
	size_t o = 0;

	for (int i = 0; i < POND_COND_MAX_DEPTH + 1; i++) {
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "{\"not\": ");
	}
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s",
	                      LEAF("orders", "=", "1"));
	for (int i = 0; i < POND_COND_MAX_DEPTH + 1; i++) {
		buf[o++] = '}';
	}
	buf[o] = '\0';
	json_t *j = json_loads(buf, 0, NULL);
	pond_cond *c;
	pond_cond_error err;
	cr_assert_not_null(j);
	cr_assert_eq(pond_cond_parse(j, &c, &err), POND_EINVAL);
	cr_assert(strstr(err.message, "nested deeper") != NULL, "%s",
	          err.message);
	json_decref(j);
}

Test(pond_cond, rule_tag_names)
{
	const char *why;

	cr_assert(pond_tag_name_ok("coupon_hunter", &why));
	cr_assert(pond_tag_name_ok("高价值:上海", &why));
	cr_assert_not(pond_tag_name_ok("", &why));
	cr_assert_not(pond_tag_name_ok("a/b", &why));
	cr_assert_not(pond_tag_name_ok("lifecycle:loyal", &why));
	cr_assert_not(pond_tag_name_ok("repurchase_due", &why));
	cr_assert_not(pond_tag_name_ok("\xff\xfe", &why));
	char long_tag[80];
	memset(long_tag, 'a', 65);
	long_tag[65] = '\0';
	cr_assert_not(pond_tag_name_ok(long_tag, &why));
}
