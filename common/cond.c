/*
 * cond.c - the condition language of API.md section 5.
 *
 * A condition is a JSON tree: {"all": [..]}, {"any": [..]}, {"not": c} and
 * leaves {"field": F, "op": OP, "value": V}. It is parsed once into a tree
 * of pond_cond, checked as it is built (a leaf's op must suit its
 * field, its value the op), so evaluation never meets a malformed node and
 * an operator gets an error naming the path and what was expected there.
 *
 * Fields are typed: strings (channel, guide_id, store_id, region,
 * industry, attributes.X, lifecycle), the tag set (tags), and integers
 * (the counters and the days_since_* ages). An absent value (no region, no
 * order yet for days_since_last_order) satisfies only != and
 * "exists": false.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cond.h"

typedef enum field_type {
	TYPE_STRING,
	TYPE_TAGS,
	TYPE_NUMBER,
} field_type;

static const struct {
	const char *name;
	pond_cond_field field;
	field_type type;
} cond_fields[] = {
        {"channel", POND_FIELD_CHANNEL, TYPE_STRING},
        {"guide_id", POND_FIELD_GUIDE_ID, TYPE_STRING},
        {"store_id", POND_FIELD_STORE_ID, TYPE_STRING},
        {"region", POND_FIELD_REGION, TYPE_STRING},
        {"industry", POND_FIELD_INDUSTRY, TYPE_STRING},
        {"lifecycle", POND_FIELD_LIFECYCLE, TYPE_STRING},
        {"tags", POND_FIELD_TAGS, TYPE_TAGS},
        {"orders", POND_FIELD_ORDERS, TYPE_NUMBER},
        {"net_revenue_fen", POND_FIELD_NET_REVENUE_FEN, TYPE_NUMBER},
        {"rewards_fen", POND_FIELD_REWARDS_FEN, TYPE_NUMBER},
        {"invitees", POND_FIELD_INVITEES, TYPE_NUMBER},
        {"days_since_added", POND_FIELD_DAYS_SINCE_ADDED, TYPE_NUMBER},
        {"days_since_last_order", POND_FIELD_DAYS_SINCE_LAST_ORDER,
         TYPE_NUMBER},
        {"days_since_last_interaction", POND_FIELD_DAYS_SINCE_LAST_INTERACTION,
         TYPE_NUMBER},
};

static const char *const op_names[] = {
        [POND_OP_EQ] = "=",          [POND_OP_NE] = "!=",
        [POND_OP_LT] = "<",          [POND_OP_LE] = "<=",
        [POND_OP_GT] = ">",          [POND_OP_GE] = ">=",
        [POND_OP_IN] = "in",         [POND_OP_CONTAINS] = "contains",
        [POND_OP_EXISTS] = "exists",
};

#define FIELD_LIST                                                            \
	"channel, guide_id, store_id, region, industry, attributes.X, "       \
	"lifecycle, tags, orders, net_revenue_fen, rewards_fen, invitees, "   \
	"days_since_added, days_since_last_order, "                           \
	"days_since_last_interaction"

/* cond_parser carries the path being parsed and the error, if any. */
typedef struct cond_parser {
	char path[160];
	size_t nodes;
	pond_cond_error *err;
	int rv;
} cond_parser;

static int __attribute__((format(printf, 3, 4)))
cond_fail(cond_parser *p, const char *suffix, const char *fmt, ...)
{
	va_list ap;

	if (p->err != NULL) {
		snprintf(p->err->path, sizeof(p->err->path), "%s%s", p->path,
		         suffix);
		va_start(ap, fmt);
		vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
		va_end(ap);
	}
	p->rv = POND_EINVAL;
	return (POND_EINVAL);
}

static int
cond_nomem(cond_parser *p)
{
	if (p->err != NULL) {
		snprintf(p->err->path, sizeof(p->err->path), "%s", p->path);
		snprintf(p->err->message, sizeof(p->err->message),
		         "out of memory");
	}
	p->rv = POND_ENOMEM;
	return (POND_ENOMEM);
}

void
pond_cond_free(pond_cond *c)
{
	if (c == NULL) {
		return;
	}
	for (size_t i = 0; i < c->nkids; i++) {
		pond_cond_free(c->kids[i]);
	}
	free(c->kids);
	free(c->attr);
	free(c->str);
	for (size_t i = 0; c->strs != NULL && i < c->nvals; i++) {
		free(c->strs[i]);
	}
	free(c->strs);
	free(c->nums);
	free(c);
}

static field_type
field_type_of(pond_cond_field f)
{
	if (f == POND_FIELD_ATTRIBUTE) {
		return (TYPE_STRING);
	}
	for (size_t i = 0; i < sizeof(cond_fields) / sizeof(cond_fields[0]);
	     i++) {
		if (cond_fields[i].field == f) {
			return (cond_fields[i].type);
		}
	}
	return (TYPE_STRING);
}

static int
parse_field(cond_parser *p, pond_cond *c, const json_t *v)
{
	const char *name;

	if (!json_is_string(v)) {
		return (cond_fail(p, ".field",
		                  "expected a field name (one of " FIELD_LIST
		                  ")"));
	}
	name = json_string_value(v);
	if (strncmp(name, "attributes.", 11) == 0) {
		if (name[11] == '\0') {
			return (cond_fail(p, ".field",
			                  "expected an attribute name after "
			                  "\"attributes.\""));
		}
		c->field = POND_FIELD_ATTRIBUTE;
		if ((c->attr = strdup(name + 11)) == NULL) {
			return (cond_nomem(p));
		}
		return (POND_OK);
	}
	for (size_t i = 0; i < sizeof(cond_fields) / sizeof(cond_fields[0]);
	     i++) {
		if (strcmp(cond_fields[i].name, name) == 0) {
			c->field = cond_fields[i].field;
			return (POND_OK);
		}
	}
	return (cond_fail(
	        p, ".field",
	        "unknown field \"%.40s\"; expected one of " FIELD_LIST, name));
}

static int
parse_op(cond_parser *p, pond_cond *c, const json_t *v)
{
	if (json_is_string(v)) {
		for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]);
		     i++) {
			if (strcmp(op_names[i], json_string_value(v)) == 0) {
				c->op = (pond_cond_op)i;
				return (POND_OK);
			}
		}
	}
	return (cond_fail(p, ".op",
	                  "expected an operator: one of =, !=, <, <=, >, >=, "
	                  "in, contains, exists"));
}

/* parse_scalar reads one value of type t (a string, or a number for a
 * numeric field) into *s or *num. */
static int
parse_scalar(cond_parser *p, const char *where, field_type t, const json_t *v,
             char **s, double *num)
{
	if (t == TYPE_NUMBER) {
		if (!json_is_number(v)) {
			return (cond_fail(p, where,
			                  "expected a number for a numeric "
			                  "field"));
		}
		*num = json_number_value(v);
		return (POND_OK);
	}
	if (!json_is_string(v)) {
		return (cond_fail(p, where, "expected a string"));
	}
	if ((*s = strdup(json_string_value(v))) == NULL) {
		return (cond_nomem(p));
	}
	return (POND_OK);
}

static int
parse_in_list(cond_parser *p, pond_cond *c, field_type t, const json_t *v)
{
	char where[32];
	size_t n;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		return (cond_fail(p, ".value",
		                  "expected a non-empty array for \"in\""));
	}
	n = json_array_size(v);
	if (n > POND_COND_MAX_NODES) {
		return (cond_fail(p, ".value",
		                  "expected at most %d values for \"in\"",
		                  POND_COND_MAX_NODES));
	}
	if (t == TYPE_NUMBER) {
		c->nums = calloc(n, sizeof(*c->nums));
	} else {
		c->strs = calloc(n, sizeof(*c->strs));
	}
	if (c->nums == NULL && c->strs == NULL) {
		return (cond_nomem(p));
	}
	c->nvals = n;
	for (size_t i = 0; i < n; i++) {
		char *s = NULL;
		double num = 0;
		snprintf(where, sizeof(where), ".value[%zu]", i);
		if (parse_scalar(p, where, t, json_array_get(v, i), &s,
		                 &num) != 0) {
			return (p->rv);
		}
		if (t == TYPE_NUMBER) {
			c->nums[i] = num;
		} else {
			c->strs[i] = s;
		}
	}
	return (POND_OK);
}

static int
parse_value(cond_parser *p, pond_cond *c, const json_t *v)
{
	field_type t = field_type_of(c->field);

	switch (c->op) {
	case POND_OP_EXISTS:
		if (v == NULL) {
			c->exists = true;
			return (POND_OK);
		}
		if (!json_is_boolean(v)) {
			return (cond_fail(
			        p, ".value",
			        "expected true or false (or no value) "
			        "for \"exists\""));
		}
		c->exists = json_is_true(v);
		return (POND_OK);
	case POND_OP_IN:
		return (parse_in_list(p, c, t, v));
	case POND_OP_CONTAINS:
		if (t == TYPE_NUMBER) {
			return (cond_fail(
			        p, ".op",
			        "\"contains\" needs a string field or "
			        "tags, not a numeric field"));
		}
		if (!json_is_string(v)) {
			return (cond_fail(
			        p, ".value",
			        "expected a string for \"contains\""));
		}
		break;
	case POND_OP_LT:
	case POND_OP_LE:
	case POND_OP_GT:
	case POND_OP_GE:
		if (t != TYPE_NUMBER) {
			return (cond_fail(
			        p, ".op",
			        "\"%s\" needs a numeric field (orders, "
			        "net_revenue_fen, rewards_fen, "
			        "invitees, days_since_*)",
			        op_names[c->op]));
		}
		break;
	case POND_OP_EQ:
	case POND_OP_NE:
		if (t == TYPE_TAGS) {
			return (cond_fail(p, ".op",
			                  "tags is a set: use \"contains\", "
			                  "\"in\" or \"exists\""));
		}
		break;
	}
	if (v == NULL) {
		return (cond_fail(p, "", "expected a \"value\" member"));
	}
	return (parse_scalar(p, ".value", t == TYPE_TAGS ? TYPE_STRING : t, v,
	                     &c->str, &c->num));
}

static int
parse_leaf(cond_parser *p, pond_cond *c, const json_t *json)
{
	const char *key;
	const json_t *v;

	c->kind = POND_COND_LEAF;
	json_object_foreach((json_t *)json, key, v)
	{
		if (strcmp(key, "field") != 0 && strcmp(key, "op") != 0 &&
		    strcmp(key, "value") != 0) {
			return (cond_fail(
			        p, "",
			        "unknown member \"%.40s\"; a leaf has "
			        "field, op and value",
			        key));
		}
	}
	if ((v = json_object_get(json, "field")) == NULL) {
		return (cond_fail(p, "", "expected a \"field\" member"));
	}
	if (parse_field(p, c, v) != 0) {
		return (p->rv);
	}
	if ((v = json_object_get(json, "op")) == NULL) {
		return (cond_fail(p, "", "expected an \"op\" member"));
	}
	if (parse_op(p, c, v) != 0) {
		return (p->rv);
	}
	return (parse_value(p, c, json_object_get(json, "value")));
}

static int parse_node(cond_parser *p, const json_t *json, int depth,
                      pond_cond **out);

static int
parse_list(cond_parser *p, pond_cond *c, const char *key, const json_t *v,
           int depth)
{
	size_t len = strlen(p->path);

	if (!json_is_array(v) || json_array_size(v) == 0) {
		snprintf(p->path + len, sizeof(p->path) - len, ".%s", key);
		cond_fail(p, "", "expected a non-empty array of conditions");
		p->path[len] = '\0';
		return (p->rv);
	}
	c->nkids = 0;
	if ((c->kids = calloc(json_array_size(v), sizeof(*c->kids))) == NULL) {
		return (cond_nomem(p));
	}
	for (size_t i = 0; i < json_array_size(v); i++) {
		snprintf(p->path + len, sizeof(p->path) - len, ".%s[%zu]", key,
		         i);
		/* Counted before the check: a half-built child is freed
		 * with its parent. */
		int rv = parse_node(p, json_array_get(v, i), depth + 1,
		                    &c->kids[i]);
		c->nkids++;
		if (rv != 0) {
			return (rv);
		}
		p->path[len] = '\0';
	}
	return (POND_OK);
}

static int
parse_node(cond_parser *p, const json_t *json, int depth, pond_cond **out)
{
	pond_cond *c;
	const char *key;
	size_t len = strlen(p->path);

	*out = NULL;
	if (depth > POND_COND_MAX_DEPTH) {
		return (cond_fail(p, "", "nested deeper than %d levels",
		                  POND_COND_MAX_DEPTH));
	}
	if (++p->nodes > POND_COND_MAX_NODES) {
		return (cond_fail(p, "", "more than %d conditions",
		                  POND_COND_MAX_NODES));
	}
	if (!json_is_object(json)) {
		return (cond_fail(p, "",
		                  "expected an object: {\"all\": [..]}, "
		                  "{\"any\": [..]}, {\"not\": {..}} or "
		                  "{\"field\", \"op\", \"value\"}"));
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return (cond_nomem(p));
	}
	*out = c;
	if (json_object_get(json, "field") != NULL ||
	    json_object_get(json, "op") != NULL) {
		return (parse_leaf(p, c, json));
	}
	if (json_object_size(json) != 1) {
		return (cond_fail(p, "",
		                  "expected exactly one of \"all\", \"any\", "
		                  "\"not\", or a leaf with field, op and "
		                  "value"));
	}
	void *it = json_object_iter((json_t *)json);
	const json_t *v = json_object_iter_value(it);
	key = json_object_iter_key(it);
	if (strcmp(key, "all") == 0 || strcmp(key, "any") == 0) {
		c->kind = key[1] == 'l' ? POND_COND_ALL : POND_COND_ANY;
		return (parse_list(p, c, key, v, depth));
	}
	if (strcmp(key, "not") == 0) {
		c->kind = POND_COND_NOT;
		if ((c->kids = calloc(1, sizeof(*c->kids))) == NULL) {
			return (cond_nomem(p));
		}
		snprintf(p->path + len, sizeof(p->path) - len, ".not");
		int rv = parse_node(p, v, depth + 1, &c->kids[0]);
		c->nkids = 1;
		if (rv != 0) {
			return (rv);
		}
		p->path[len] = '\0';
		return (POND_OK);
	}
	return (cond_fail(p, "",
	                  "unknown member \"%.40s\"; expected \"all\", "
	                  "\"any\", \"not\", or a leaf with field, op and "
	                  "value",
	                  key));
}

int
pond_cond_parse(const json_t *json, pond_cond **out, pond_cond_error *err)
{
	cond_parser p = {.path = "$", .err = err};

	if (err != NULL) {
		err->path[0] = err->message[0] = '\0';
	}
	if (parse_node(&p, json, 1, out) != 0) {
		pond_cond_free(*out);
		*out = NULL;
		return (p.rv);
	}
	return (POND_OK);
}

/* --- time
 * ---------------------------------------------------------------------- */

/* days_from_civil is Howard Hinnant's algorithm: days since 1970-01-01 of
 * a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468);
}

int64_t
pond_local_day(pond_time t)
{
	time_t secs = (time_t)(t >= 0 ? t / POND_USEC_PER_SEC
	                              : (t - POND_USEC_PER_SEC + 1) /
	                                        POND_USEC_PER_SEC);
	struct tm tm;

	if (localtime_r(&secs, &tm) == NULL) {
		return (t / POND_USEC_PER_DAY);
	}
	return (days_from_civil((int64_t)tm.tm_year + 1900,
	                        (int64_t)tm.tm_mon + 1, tm.tm_mday));
}

pond_time
pond_next_local_midnight(pond_time t)
{
	time_t secs = (time_t)(t / POND_USEC_PER_SEC);
	struct tm tm;

	if (localtime_r(&secs, &tm) == NULL) {
		return ((t / POND_USEC_PER_DAY + 1) * POND_USEC_PER_DAY);
	}
	tm.tm_mday += 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return ((pond_time)mktime(&tm) * POND_USEC_PER_SEC);
}

int64_t
pond_days_since(pond_time then, pond_time now)
{
	return (pond_local_day(now) - pond_local_day(then));
}

/* --- evaluation
 * ------------------------------------------------------------------ */

static bool
has_tag(const pond_facts *f, const char *tag)
{
	for (size_t i = 0; i < f->ntags; i++) {
		if (strcmp(f->tags[i], tag) == 0) {
			return (true);
		}
	}
	return (false);
}

static const char *
string_field(const pond_cond *c, const pond_facts *f)
{
	switch (c->field) {
	case POND_FIELD_CHANNEL:
		return (f->channel);
	case POND_FIELD_GUIDE_ID:
		return (f->guide_id);
	case POND_FIELD_STORE_ID:
		return (f->store_id);
	case POND_FIELD_REGION:
		return (f->region);
	case POND_FIELD_INDUSTRY:
		return (f->industry);
	case POND_FIELD_LIFECYCLE:
		return (f->lifecycle);
	case POND_FIELD_ATTRIBUTE:
		return (f->attributes != NULL
		                ? json_string_value(json_object_get(
		                          f->attributes, c->attr))
		                : NULL);
	default:
		return (NULL);
	}
}

/* number_field reads a numeric field; false when it is absent. */
static bool
number_field(const pond_cond *c, const pond_facts *f, double *v)
{
	pond_time t = 0;

	switch (c->field) {
	case POND_FIELD_ORDERS:
		*v = (double)f->orders;
		return (true);
	case POND_FIELD_NET_REVENUE_FEN:
		*v = (double)f->net_revenue_fen;
		return (true);
	case POND_FIELD_REWARDS_FEN:
		*v = (double)f->rewards_fen;
		return (true);
	case POND_FIELD_INVITEES:
		*v = (double)f->invitees;
		return (true);
	case POND_FIELD_DAYS_SINCE_ADDED:
		t = f->added_at;
		break;
	case POND_FIELD_DAYS_SINCE_LAST_ORDER:
		t = f->last_order_at;
		break;
	case POND_FIELD_DAYS_SINCE_LAST_INTERACTION:
		t = f->last_interaction_at;
		break;
	default:
		return (false);
	}
	if (t == 0) {
		return (false);
	}
	*v = (double)pond_days_since(t, f->now);
	return (true);
}

static bool
compare(pond_cond_op op, double a, double b)
{
	switch (op) {
	case POND_OP_EQ:
		return (a == b);
	case POND_OP_NE:
		return (a != b);
	case POND_OP_LT:
		return (a < b);
	case POND_OP_LE:
		return (a <= b);
	case POND_OP_GT:
		return (a > b);
	case POND_OP_GE:
		return (a >= b);
	default:
		return (false);
	}
}

static bool
eval_tags(const pond_cond *c, const pond_facts *f)
{
	switch (c->op) {
	case POND_OP_EXISTS:
		return ((f->ntags > 0) == c->exists);
	case POND_OP_CONTAINS:
		return (has_tag(f, c->str));
	case POND_OP_IN:
		for (size_t i = 0; i < c->nvals; i++) {
			if (has_tag(f, c->strs[i])) {
				return (true);
			}
		}
		return (false);
	default:
		return (false);
	}
}

static bool
eval_string(const pond_cond *c, const pond_facts *f)
{
	const char *v = string_field(c, f);

	if (c->op == POND_OP_EXISTS) {
		return ((v != NULL) == c->exists);
	}
	if (v == NULL) {
		return (c->op == POND_OP_NE);
	}
	switch (c->op) {
	case POND_OP_EQ:
		return (strcmp(v, c->str) == 0);
	case POND_OP_NE:
		return (strcmp(v, c->str) != 0);
	case POND_OP_CONTAINS:
		return (strstr(v, c->str) != NULL);
	case POND_OP_IN:
		for (size_t i = 0; i < c->nvals; i++) {
			if (strcmp(v, c->strs[i]) == 0) {
				return (true);
			}
		}
		return (false);
	default:
		return (false);
	}
}

static bool
eval_number(const pond_cond *c, const pond_facts *f)
{
	double v;
	bool present = number_field(c, f, &v);

	if (c->op == POND_OP_EXISTS) {
		return (present == c->exists);
	}
	if (!present) {
		return (c->op == POND_OP_NE);
	}
	if (c->op == POND_OP_IN) {
		for (size_t i = 0; i < c->nvals; i++) {
			if (v == c->nums[i]) {
				return (true);
			}
		}
		return (false);
	}
	return (compare(c->op, v, c->num));
}

bool
pond_cond_eval(const pond_cond *c, const pond_facts *f)
{
	switch (c->kind) {
	case POND_COND_ALL:
		for (size_t i = 0; i < c->nkids; i++) {
			if (!pond_cond_eval(c->kids[i], f)) {
				return (false);
			}
		}
		return (true);
	case POND_COND_ANY:
		for (size_t i = 0; i < c->nkids; i++) {
			if (pond_cond_eval(c->kids[i], f)) {
				return (true);
			}
		}
		return (false);
	case POND_COND_NOT:
		return (!pond_cond_eval(c->kids[0], f));
	case POND_COND_LEAF:
		break;
	}
	switch (field_type_of(c->field)) {
	case TYPE_TAGS:
		return (eval_tags(c, f));
	case TYPE_STRING:
		return (eval_string(c, f));
	case TYPE_NUMBER:
		return (eval_number(c, f));
	}
	return (false);
}

bool
pond_cond_uses_time(const pond_cond *c)
{
	if (c->kind == POND_COND_LEAF) {
		return (c->field == POND_FIELD_DAYS_SINCE_ADDED ||
		        c->field == POND_FIELD_DAYS_SINCE_LAST_ORDER ||
		        c->field == POND_FIELD_DAYS_SINCE_LAST_INTERACTION);
	}
	for (size_t i = 0; i < c->nkids; i++) {
		if (pond_cond_uses_time(c->kids[i])) {
			return (true);
		}
	}
	return (false);
}

bool
pond_tag_name_ok(const char *tag, const char **why)
{
	size_t n = strlen(tag);
	json_t *probe;

	if (n == 0 || n > 64) {
		*why = "a tag is 1 to 64 bytes";
		return (false);
	}
	for (const unsigned char *s = (const unsigned char *)tag; *s != '\0';
	     s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '/' || *s == '"' ||
		    *s == '\\') {
			*why = "a tag may not hold '/', '\"', '\\' or control "
			       "characters";
			return (false);
		}
	}
	/* jansson checks UTF-8 exactly as the JSON replies will need it. */
	if ((probe = json_string(tag)) == NULL) {
		*why = "a tag must be valid UTF-8";
		return (false);
	}
	json_decref(probe);
	if (strncmp(tag, "lifecycle:", 10) == 0 ||
	    strcmp(tag, "repurchase_due") == 0) {
		*why = "lifecycle:* and repurchase_due are built-in tags";
		return (false);
	}
	return (true);
}
