/*
 * cond.h - the condition language of API.md section 5, shared by tag rules
 * (tagging) and campaign audiences (scheduler).
 *
 * A condition is parsed once from JSON into a tree of pond_cond, checked as
 * it is built, and evaluated against the pond_facts of one customer.
 */
#ifndef POND_COND_H
#define POND_COND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "err.h"

/* POND_COND_MAX_DEPTH bounds nesting; POND_COND_MAX_NODES the size. */
#define POND_COND_MAX_DEPTH 32
#define POND_COND_MAX_NODES 1000

typedef enum pond_cond_kind {
	POND_COND_ALL,
	POND_COND_ANY,
	POND_COND_NOT,
	POND_COND_LEAF,
} pond_cond_kind;

typedef enum pond_cond_field {
	POND_FIELD_CHANNEL,
	POND_FIELD_GUIDE_ID,
	POND_FIELD_STORE_ID,
	POND_FIELD_REGION,
	POND_FIELD_INDUSTRY,
	POND_FIELD_ATTRIBUTE, /* attributes.X */
	POND_FIELD_LIFECYCLE,
	POND_FIELD_TAGS,
	POND_FIELD_ORDERS,
	POND_FIELD_NET_REVENUE_FEN,
	POND_FIELD_REWARDS_FEN,
	POND_FIELD_INVITEES,
	POND_FIELD_DAYS_SINCE_ADDED,
	POND_FIELD_DAYS_SINCE_LAST_ORDER,
	POND_FIELD_DAYS_SINCE_LAST_INTERACTION,
} pond_cond_field;

typedef enum pond_cond_op {
	POND_OP_EQ,
	POND_OP_NE,
	POND_OP_LT,
	POND_OP_LE,
	POND_OP_GT,
	POND_OP_GE,
	POND_OP_IN,
	POND_OP_CONTAINS,
	POND_OP_EXISTS,
} pond_cond_op;

/* pond_cond is one node of a parsed condition; a leaf compares one
 * field with its value (a string, a number, or a list of either for in). */
typedef struct pond_cond {
	pond_cond_kind kind;
	struct pond_cond **kids; /* all, any: n kids; not: one */
	size_t nkids;
	pond_cond_field field;
	char *attr; /* POND_FIELD_ATTRIBUTE: the X of attributes.X */
	pond_cond_op op;
	bool exists;  /* POND_OP_EXISTS: true asks "present", false "absent" */
	char *str;    /* string value */
	double num;   /* numeric value */
	char **strs;  /* POND_OP_IN over a string field */
	double *nums; /* POND_OP_IN over a numeric field */
	size_t nvals;
} pond_cond;

/* pond_cond_error says where a condition is malformed (a JSON path from
 * the condition's root, "$.all[1].op") and what was expected there. */
typedef struct pond_cond_error {
	char path[160];
	char message[200];
} pond_cond_error;

/* pond_facts is what a condition can look at: one customer at now.
 * Absent strings are NULL, absent times 0. */
typedef struct pond_facts {
	const char *channel;
	const char *guide_id;
	const char *store_id;
	const char *region;
	const char *industry;
	const char *lifecycle;
	const json_t *attributes; /* object string -> string, or NULL */
	const char *const *tags;
	size_t ntags;
	int64_t orders;
	int64_t net_revenue_fen;
	int64_t rewards_fen;
	int64_t invitees;
	pond_time added_at;
	pond_time last_order_at;
	pond_time last_interaction_at;
	pond_time now;
} pond_facts;

/* pond_cond_parse builds a condition from json. On failure *out is
 * NULL, err says where and why, and POND_EINVAL is returned (POND_ENOMEM
 * out of memory). The caller frees *out with pond_cond_free. */
int pond_cond_parse(const json_t *json, pond_cond **out,
                    pond_cond_error *err) POND_MUSTCHECK;

/* pond_cond_free frees c and its subtree (NULL is fine). */
void pond_cond_free(pond_cond *c);

/* pond_cond_eval reports whether c holds for f. */
bool pond_cond_eval(const pond_cond *c, const pond_facts *f);

/* pond_cond_uses_time reports whether c looks at a days_since_* field,
 * so its value can change with time alone. */
bool pond_cond_uses_time(const pond_cond *c);

/* pond_local_day returns the calendar day of t in the process's time
 * zone (POND_TZ, set at start) as days since 1970-01-01. */
int64_t pond_local_day(pond_time t);

/* pond_next_local_midnight returns the first local midnight after t. */
pond_time pond_next_local_midnight(pond_time t);

/* pond_days_since returns whole local calendar days from then to now
 * (negative when then is later). */
int64_t pond_days_since(pond_time then, pond_time now);

/* pond_tag_name_ok reports whether tag may name a rule: 1..64 bytes of
 * UTF-8 without '/', '"', '\' or control characters, and not a built-in
 * tag (lifecycle:*, repurchase_due). */
bool pond_tag_name_ok(const char *tag, const char **why);

#endif
