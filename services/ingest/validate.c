/*
 * validate.c - what can be said of one event without the store.
 *
 * Every check records a fault with its code; the item keeps the fault whose
 * code comes first in API.md section 6, so an event with several faults is
 * always rejected for the same one. unknown_customer needs the alias table
 * and is decided in store.c, between missing_customer and missing_body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"

static const char *const code_names[] = {
        [CODE_NONE] = "",
        [CODE_UNDECODABLE] = "undecodable",
        [CODE_MISSING_EVENT_ID] = "missing_event_id",
        [CODE_MISSING_CUSTOMER] = "missing_customer",
        [CODE_UNKNOWN_CUSTOMER] = "unknown_customer",
        [CODE_MISSING_BODY] = "missing_body",
        [CODE_UNKNOWN_BODY] = "unknown_body",
        [CODE_BAD_FIELD] = "bad_field",
        [CODE_BAD_AMOUNT] = "bad_amount",
        [CODE_MISSING_TIME] = "missing_time",
        [CODE_FUTURE_TIME] = "future_time",
        [CODE_FIELD_TOO_LONG] = "field_too_long",
        [CODE_DUPLICATE_ORDER] = "duplicate_order",
};

const char *
ingest_code_name(ingest_code code)
{
	return (code_names[code]);
}

static const char *const alias_kinds[] = {"phone", "wecom_external_userid",
                                          "member_id", "openid", NULL};
static const char *const removed_by[] = {"customer", "staff", NULL};
static const char *const reward_kinds[] = {"red_packet", "coupon", "gift",
                                           NULL};
static const char *const touch_channels[] = {
        "wecom_message", "sms", "call", "group_post", "coupon", "all", NULL};
static const char *const receipt_statuses[] = {"delivered", "read", "clicked",
                                               "failed", NULL};

/* fault records code with a formatted reason when it beats what the item
 * has so far. */
static void __attribute__((format(printf, 3, 4)))
fault(ingest_item *item, ingest_code code, const char *fmt, ...)
{
	va_list ap;

	if (item->check != CODE_NONE && item->check <= code) {
		return;
	}
	item->check = code;
	va_start(ap, fmt);
	vsnprintf(item->check_reason, sizeof(item->check_reason), fmt, ap);
	va_end(ap);
}

static bool
one_of(const char *s, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(s, *set) == 0) {
			return (true);
		}
	}
	return (false);
}

static void
check_enum(ingest_item *item, const char *field, const char *value,
           const char *const *set)
{
	if (!one_of(value, set)) {
		/* At most 40 bytes of the value are quoted, perhaps cutting
		 * a character: reasons are repaired to UTF-8 before they are
		 * stored (ingest_store_work). */
		fault(item, CODE_BAD_FIELD,
		      "%s: '%.40s' is not one of the allowed values", field,
		      value);
	}
}

static void
check_required(ingest_item *item, const char *field, const char *value)
{
	if (*value == '\0') {
		fault(item, CODE_BAD_FIELD, "%s is required", field);
	}
}

static void
check_fen(ingest_item *item, const char *field, int64_t fen)
{
	if (fen < 0 || fen > INGEST_MAX_FEN) {
		fault(item, CODE_BAD_AMOUNT,
		      "%s must be between 0 and 10^11 fen, got %lld", field,
		      (long long)fen);
	}
}

static void
check_count(ingest_item *item, const char *field, int64_t v)
{
	if (v < 0) {
		fault(item, CODE_BAD_FIELD, "%s must not be negative", field);
	}
}

/* utf8_seq returns the length of the well-formed UTF-8 sequence at s
 * (RFC 3629), or 0 when there is none. */
static size_t
utf8_seq(const unsigned char *s)
{
	unsigned char c = *s;
	size_t n;
	uint32_t cp;

	if (c < 0x80) {
		return (1);
	} else if ((c & 0xe0) == 0xc0) {
		n = 1;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3;
		cp = c & 0x07;
	} else {
		return (0);
	}
	for (size_t i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			return (0);
		}
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
	    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return (0);
	}
	return (n + 1);
}

bool
ingest_utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		size_t n = utf8_seq(s);
		if (n == 0) {
			return (false);
		}
		s += n;
	}
	return (true);
}

void
ingest_utf8_repair(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = utf8_seq(p);
		if (n == 0) {
			*p++ = '?';
		} else {
			p += n;
		}
	}
}

/* check_strings walks every string of msg (map keys and values are strings
 * of the entry messages) for length and UTF-8, and every nested message
 * for unknown fields. */
static void
check_strings(ingest_item *item, const ProtobufCMessage *msg, int depth)
{
	const ProtobufCMessageDescriptor *d = msg->descriptor;

	if (depth > 0 && msg->n_unknown_fields > 0) {
		fault(item, CODE_BAD_FIELD, "%s has an unknown field %u",
		      d->short_name, msg->unknown_fields[0].tag);
	}
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)msg;
		size_t count = 1;
		const void *values = base + f->offset;

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + f->quantifier_offset) !=
			    f->id) {
				continue;
			}
		} else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			count = *(const size_t *)(base + f->quantifier_offset);
			values = *(void *const *)(base + f->offset);
		}
		for (size_t k = 0; k < count; k++) {
			if (f->type == PROTOBUF_C_TYPE_STRING) {
				const char *s = ((char *const *)values)[k];
				if (s == NULL) {
					continue;
				}
				if (strlen(s) > INGEST_MAX_STRING) {
					fault(item, CODE_FIELD_TOO_LONG,
					      "%s.%s is over 256 bytes",
					      d->short_name, f->name);
				}
				if (!ingest_utf8_valid(
				            (const unsigned char *)s)) {
					fault(item, CODE_BAD_FIELD,
					      "%s.%s is not valid UTF-8",
					      d->short_name, f->name);
				}
			} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
				const ProtobufCMessage *sub =
				        ((const ProtobufCMessage *const *)
				                 values)[k];
				if (sub != NULL && depth < 8) {
					check_strings(item, sub, depth + 1);
				}
			}
		}
	}
}

/* count_body_fields counts the body fields (numbers 10..22) on the wire of
 * a top-level event: protobuf-c keeps only the last member of a oneof, so
 * "more than one body" has to be seen before it decodes. */
static int
count_body_fields(const uint8_t *p, size_t len)
{
	const uint8_t *end;
	uint32_t seen = 0;
	int n = 0;

	/* An empty event arrives as (NULL, 0), and NULL + 0 is undefined
	 * (found by fuzz_ingest_protobuf). */
	if (len == 0) {
		return (0);
	}
	end = p + len;
	while (p < end) {
		uint64_t key = 0, v = 0;
		int shift = 0;
		while (p < end && shift < 64) {
			key |= (uint64_t)(*p & 0x7f) << shift;
			shift += 7;
			if (!(*p++ & 0x80)) {
				break;
			}
		}
		uint64_t field = key >> 3;
		switch (key & 7) {
		case 0:
			while (p < end && (*p++ & 0x80)) {
			}
			break;
		case 1:
		case 5:
			/* A fixed field cut short ends the scan inside end. */
			if ((key & 7) == 1 ? end - p < 8 : end - p < 4) {
				return (n);
			}
			p += (key & 7) == 1 ? 8 : 4;
			break;
		case 2:
			shift = 0;
			while (p < end && shift < 64) {
				v |= (uint64_t)(*p & 0x7f) << shift;
				shift += 7;
				if (!(*p++ & 0x80)) {
					break;
				}
			}
			if (v > (uint64_t)(end - p)) {
				return (n);
			}
			p += v;
			break;
		default:
			return (n);
		}
		if (field >= 10 && field <= 22 &&
		    !(seen & (1u << (field - 10)))) {
			seen |= 1u << (field - 10);
			n++;
		}
	}
	return (n);
}

static void
check_body(ingest_item *item, const Pond__Event *e)
{
	switch (e->body_case) {
	case POND__EVENT__BODY_CONTACT_ADDED:
		check_required(item, "contact_added.channel",
		               e->contact_added->channel);
		break;
	case POND__EVENT__BODY_CONTACT_REMOVED:
		check_enum(item, "contact_removed.by", e->contact_removed->by,
		           removed_by);
		break;
	case POND__EVENT__BODY_ORDER_PAID: {
		const Pond__OrderPaid *o = e->order_paid;
		check_required(item, "order_paid.order_id", o->order_id);
		check_fen(item, "order_paid.amount_fen", o->amount_fen);
		for (size_t i = 0; i < o->n_items; i++) {
			check_fen(item, "order_paid.items.price_fen",
			          o->items[i]->price_fen);
			check_count(item, "order_paid.items.qty",
			            o->items[i]->qty);
		}
		break;
	}
	case POND__EVENT__BODY_ORDER_REFUNDED:
		check_required(item, "order_refunded.order_id",
		               e->order_refunded->order_id);
		check_fen(item, "order_refunded.amount_fen",
		          e->order_refunded->amount_fen);
		break;
	case POND__EVENT__BODY_CHANNEL_SPEND:
		check_required(item, "channel_spend.channel",
		               e->channel_spend->channel);
		check_fen(item, "channel_spend.amount_fen",
		          e->channel_spend->amount_fen);
		check_count(item, "channel_spend.quantity",
		            e->channel_spend->quantity);
		break;
	case POND__EVENT__BODY_REWARD_PAID:
		check_enum(item, "reward_paid.kind", e->reward_paid->kind,
		           reward_kinds);
		check_fen(item, "reward_paid.amount_fen",
		          e->reward_paid->amount_fen);
		break;
	case POND__EVENT__BODY_INTERACTION:
		check_required(item, "interaction.kind", e->interaction->kind);
		check_count(item, "interaction.seconds",
		            e->interaction->seconds);
		break;
	case POND__EVENT__BODY_OPT_OUT:
		check_enum(item, "opt_out.channel", e->opt_out->channel,
		           touch_channels);
		break;
	case POND__EVENT__BODY_OPT_IN:
		check_enum(item, "opt_in.channel", e->opt_in->channel,
		           touch_channels);
		break;
	case POND__EVENT__BODY_TOUCH_RECEIPT:
		check_required(item, "touch_receipt.touch_id",
		               e->touch_receipt->touch_id);
		check_enum(item, "touch_receipt.status",
		           e->touch_receipt->status, receipt_statuses);
		break;
	case POND__EVENT__BODY_MEMBER_JOINED:
	case POND__EVENT__BODY_INVITE_SHARED:
	case POND__EVENT__BODY_PROFILE_UPDATED:
	case POND__EVENT__BODY__NOT_SET:
	default:
		break;
	}
}

/* wire_varint reads a varint at *p (< end); false when it runs off. */
static bool
wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			return (true);
		}
	}
	return (false);
}

/* wire_nul_in_string reports whether a string field of a message of type
 * desc, anywhere in p..p+len, holds a NUL byte. protobuf-c hands strings
 * over as C strings, so "id\0a" would silently become "id": such input is
 * refused, as the JSON codec refuses \u0000. */
static bool
wire_nul_in_string(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                   size_t len, int depth)
{
	const uint8_t *end;
	uint64_t key, n;

	if (len == 0) {
		return (false); /* (NULL, 0): see count_body_fields */
	}
	end = p + len;
	while (p < end) {
		if (!wire_varint(&p, end, &key)) {
			return (false);
		}
		switch (key & 7) {
		case 0:
			if (!wire_varint(&p, end, &n)) {
				return (false);
			}
			continue;
		case 1:
		case 5:
			/* A fixed field cut short ends the scan inside end. */
			if ((key & 7) == 1 ? end - p < 8 : end - p < 4) {
				return (false);
			}
			p += (key & 7) == 1 ? 8 : 4;
			continue;
		case 2:
			break;
		default:
			return (false);
		}
		if (!wire_varint(&p, end, &n) || n > (uint64_t)(end - p)) {
			return (false);
		}
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field(
		                desc, (unsigned)(key >> 3));
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
		    memchr(p, 0, n) != NULL) {
			return (true);
		}
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    depth < 8 &&
		    wire_nul_in_string(f->descriptor, p, n, depth + 1)) {
			return (true);
		}
		p += n;
	}
	return (false);
}

/* check_presence covers event_id, customer and body. */
static void
check_presence(ingest_item *item, const Pond__Event *e, ingest_format format)
{
	bool unknown_ld = false, unknown_other = false;

	if (*e->event_id == '\0') {
		fault(item, CODE_MISSING_EVENT_ID, "event_id is required");
	}
	if (*e->customer_key == '\0' && e->n_aliases == 0 &&
	    e->body_case != POND__EVENT__BODY_CHANNEL_SPEND) {
		fault(item, CODE_MISSING_CUSTOMER,
		      "customer_key or a known alias is required");
	}
	for (size_t i = 0; i < e->base.n_unknown_fields; i++) {
		if (e->base.unknown_fields[i].wire_type ==
		    PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) {
			unknown_ld = true;
		} else {
			unknown_other = true;
		}
	}
	if (e->body_case == POND__EVENT__BODY__NOT_SET) {
		if (unknown_ld) {
			fault(item, CODE_UNKNOWN_BODY,
			      "the event's body is of an unknown type");
		} else {
			fault(item, CODE_MISSING_BODY,
			      "the event has no body");
		}
	} else if (unknown_ld) {
		fault(item, CODE_BAD_FIELD, "the event has an unknown field");
	}
	if (unknown_other) {
		fault(item, CODE_BAD_FIELD, "the event has an unknown field");
	}
	if (format == FORMAT_PROTOBUF &&
	    count_body_fields(item->raw, item->raw_len) > 1) {
		fault(item, CODE_BAD_FIELD,
		      "the event has more than one body");
	}
	if (format == FORMAT_PROTOBUF &&
	    wire_nul_in_string(&pond__event__descriptor, item->raw,
	                       item->raw_len, 0)) {
		fault(item, CODE_BAD_FIELD, "a string holds a NUL byte");
	}
}

void
ingest_validate(ingest_item *item, ingest_format format, pond_time now)
{
	const Pond__Event *e = item->event;

	if (item->shell) {
		return; /* json_fault already classified it */
	}
	if (e == NULL) {
		if (item->check == CODE_NONE) {
			fault(item, CODE_UNDECODABLE,
			      "the event bytes are not a pond.Event");
		}
		return;
	}
	item->event_id = e->event_id;
	check_presence(item, e, format);
	for (size_t i = 0; i < e->n_aliases; i++) {
		check_enum(item, "aliases.kind", e->aliases[i]->kind,
		           alias_kinds);
		check_required(item, "aliases.value", e->aliases[i]->value);
	}
	check_body(item, e);
	if (e->occurred_at == NULL) {
		fault(item, CODE_MISSING_TIME, "occurred_at is required");
	} else if (e->occurred_at->nanos < 0 ||
	           e->occurred_at->nanos > 999999999 ||
	           e->occurred_at->seconds < 0 ||
	           e->occurred_at->seconds > INT64_C(253402300799)) {
		fault(item, CODE_BAD_FIELD, "occurred_at is out of range");
	} else if (pond_time_from_parts(e->occurred_at->seconds,
	                                e->occurred_at->nanos) >
	           now + INGEST_FUTURE_WINDOW) {
		fault(item, CODE_FUTURE_TIME,
		      "occurred_at is more than 24 h in the future");
	}
	check_strings(item, &e->base, 0);
}
