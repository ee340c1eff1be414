/*
 * pbjson.c - the proto3 JSON mapping, driven by protobuf-c descriptors.
 *
 * Decoding walks the JSON object key by key (so the first fault in document
 * order is the one reported), looks each key up by its proto field name and
 * writes the value at the field's offset in the C struct. Everything is
 * allocated through the caller's ProtobufCAllocator and hung on the message
 * as soon as it exists, so that protobuf_c_message_free_unpacked frees a
 * half-built message as well as a finished one: every failure path is the
 * same single free. Encoding is the same walk in the other direction.
 *
 * Only proto3 messages are handled (no proto2 has_ flags or defaults).
 */
#include "pbjson.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z up to
 * 9999-12-31T23:59:59.999999999Z, in seconds since the epoch. */
#define PBJSON_TS_MIN_SECONDS INT64_C(-62135596800)
#define PBJSON_TS_MAX_SECONDS INT64_C(253402300799)

typedef struct pbjson_decoder {
	ProtobufCAllocator *allocator;
	pond_pbjson_error *err;
	char path[sizeof(((pond_pbjson_error *)0)->path)];
	size_t path_len;
	int depth;
} pbjson_decoder;

/* pbjson_whole is a whole number read from JSON as sign and magnitude, so
 * that every integer type up to uint64 is range-checked the same way. */
typedef struct pbjson_whole {
	bool negative;
	uint64_t magnitude;
} pbjson_whole;

static int pbjson_decode_message(pbjson_decoder *d,
                                 const ProtobufCMessageDescriptor *desc,
                                 json_t *json, ProtobufCMessage **out);
static json_t *pbjson_encode_message(const ProtobufCMessage *msg,
                                     bool emit_defaults);

static void *
pbjson_malloc(void *allocator_data, size_t size)
{
	(void)allocator_data;
	return (malloc(size));
}

static void
pbjson_free(void *allocator_data, void *p)
{
	(void)allocator_data;
	free(p);
}

/* The same malloc/free that protobuf-c uses when given a NULL allocator,
 * so a message decoded with NULL is freed with NULL. */
static ProtobufCAllocator pbjson_default_allocator = {
        .alloc = pbjson_malloc,
        .free = pbjson_free,
        .allocator_data = NULL,
};

/* ---- errors and paths ---- */

static int __attribute__((format(printf, 2, 3)))
pbjson_fail(pbjson_decoder *d, const char *fmt, ...)
{
	va_list ap;

	if (d->err != NULL) {
		memcpy(d->err->path, d->path, sizeof(d->err->path));
		va_start(ap, fmt);
		vsnprintf(d->err->message, sizeof(d->err->message), fmt, ap);
		va_end(ap);
	}
	return (POND_EINVAL);
}

static int
pbjson_fail_nomem(pbjson_decoder *d)
{
	(void)pbjson_fail(d, "out of memory");
	return (POND_ENOMEM);
}

/* pbjson_path_push appends to the path and returns the length to pop back
 * to. A path too long for the buffer is cut short, never overrun. */
static size_t __attribute__((format(printf, 2, 3)))
pbjson_path_push(pbjson_decoder *d, const char *fmt, ...)
{
	size_t saved = d->path_len;
	size_t room = sizeof(d->path) - d->path_len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(d->path + d->path_len, room, fmt, ap);
	va_end(ap);
	if (n > 0) {
		d->path_len += (size_t)n < room ? (size_t)n : room - 1;
	}
	return (saved);
}

static void
pbjson_path_pop(pbjson_decoder *d, size_t saved)
{
	d->path_len = saved;
	d->path[saved] = '\0';
}

static size_t
pbjson_path_push_field(pbjson_decoder *d, const char *name, size_t len)
{
	return (pbjson_path_push(d, "%s%.*s", d->path_len > 0 ? "." : "",
	                         (int)len, name));
}

/* ---- allocation ---- */

static void *
pbjson_alloc(pbjson_decoder *d, size_t size)
{
	return (d->allocator->alloc(d->allocator->allocator_data, size));
}

static int
pbjson_new_message(pbjson_decoder *d, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out)
{
	ProtobufCMessage *msg;

	if ((msg = pbjson_alloc(d, desc->sizeof_message)) == NULL) {
		return (pbjson_fail_nomem(d));
	}
	protobuf_c_message_init(desc, msg);
	*out = msg;
	return (POND_OK);
}

/* ---- descriptors ---- */

static const ProtobufCFieldDescriptor *
pbjson_field_by_name(const ProtobufCMessageDescriptor *desc, const char *key,
                     size_t key_len)
{
	/* A key with a NUL inside must not match the name before the NUL. */
	if (strlen(key) != key_len) {
		return (NULL);
	}
	return (protobuf_c_message_descriptor_get_field_by_name(desc, key));
}

static bool
pbjson_is_timestamp(const ProtobufCMessageDescriptor *desc)
{
	return (strcmp(desc->name, "google.protobuf.Timestamp") == 0);
}

/* pbjson_is_map recognises the repeated entry message protoc generates for
 * map<K,V>; protobuf-c keeps no map_entry flag, so go by its shape. */
static bool
pbjson_is_map(const ProtobufCFieldDescriptor *fd)
{
	const ProtobufCMessageDescriptor *entry = fd->descriptor;
	size_t n;

	if (fd->label != PROTOBUF_C_LABEL_REPEATED ||
	    fd->type != PROTOBUF_C_TYPE_MESSAGE || entry->n_fields != 2 ||
	    entry->fields[0].id != 1 || strcmp(entry->fields[0].name, "key") ||
	    entry->fields[1].id != 2 ||
	    strcmp(entry->fields[1].name, "value")) {
		return (false);
	}
	n = strlen(entry->short_name);
	return (n > 5 && strcmp(entry->short_name + n - 5, "Entry") == 0);
}

/* pbjson_type_size is the size of one value of a type in the C struct
 * (one element of a repeated field's array). */
static size_t
pbjson_type_size(ProtobufCType type)
{
	static const size_t sizes[] = {
	        [PROTOBUF_C_TYPE_INT64] = 8,
	        [PROTOBUF_C_TYPE_SINT64] = 8,
	        [PROTOBUF_C_TYPE_SFIXED64] = 8,
	        [PROTOBUF_C_TYPE_UINT64] = 8,
	        [PROTOBUF_C_TYPE_FIXED64] = 8,
	        [PROTOBUF_C_TYPE_DOUBLE] = 8,
	        [PROTOBUF_C_TYPE_BOOL] = sizeof(protobuf_c_boolean),
	        [PROTOBUF_C_TYPE_STRING] = sizeof(char *),
	        [PROTOBUF_C_TYPE_BYTES] = sizeof(ProtobufCBinaryData),
	        [PROTOBUF_C_TYPE_MESSAGE] = sizeof(ProtobufCMessage *),
	};

	/* The rest (32-bit integers, float, enum) are 4 bytes. */
	return (sizes[type] != 0 ? sizes[type] : 4);
}

/* ---- base64 ---- */

static const char pbjson_b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* pbjson_b64_value maps a character of either the standard or the URL-safe
 * alphabet (proto3 JSON accepts both) to its 6 bits, or -1. */
static int
pbjson_b64_value(unsigned char c)
{
	if (c == '-' || c == '_') {
		return (c == '-' ? 62 : 63);
	}
	const char *p = c != '\0' ? strchr(pbjson_b64, c) : NULL;
	return (p != NULL ? (int)(p - pbjson_b64) : -1);
}

static int
pbjson_decode_base64(pbjson_decoder *d, const char *s, size_t len,
                     ProtobufCBinaryData *out)
{
	size_t n = len, pad = 0, o = 0;
	uint32_t acc = 0;
	uint8_t *buf;

	while (n > 0 && pad < 2 && s[n - 1] == '=') {
		n--, pad++;
	}
	if (n % 4 == 1 || (pad > 0 && len % 4 != 0)) {
		return (pbjson_fail(d, "invalid base64"));
	}
	if (n == 0) {
		return (POND_OK);
	}
	if ((buf = pbjson_alloc(d, n / 4 * 3 + 2)) == NULL) {
		return (pbjson_fail_nomem(d));
	}
	for (size_t i = 0; i < n; i++) {
		int v = pbjson_b64_value((unsigned char)s[i]);
		if (v < 0) {
			d->allocator->free(d->allocator->allocator_data, buf);
			return (pbjson_fail(d, "invalid base64"));
		}
		acc = acc << 6 | (uint32_t)v;
		if (i % 4 == 3 || i == n - 1) {
			size_t got = i % 4 + 1; /* characters in this group */
			acc <<= 6 * (4 - got);
			for (size_t k = 0; k < got - 1; k++) {
				buf[o++] = (uint8_t)(acc >> (16 - 8 * k));
			}
			acc = 0;
		}
	}
	out->data = buf;
	out->len = o;
	return (POND_OK);
}

static json_t *
pbjson_encode_base64(const ProtobufCBinaryData *bd)
{
	size_t n = (bd->len + 2) / 3 * 4, o = 0;
	char *buf;
	json_t *j;

	if ((buf = malloc(n + 1)) == NULL) {
		return (NULL);
	}
	for (size_t i = 0; i < bd->len; i += 3) {
		size_t left = bd->len - i;
		uint32_t v = (uint32_t)bd->data[i] << 16;
		v |= left > 1 ? (uint32_t)bd->data[i + 1] << 8 : 0;
		v |= left > 2 ? bd->data[i + 2] : 0;
		buf[o++] = pbjson_b64[v >> 18 & 63];
		buf[o++] = pbjson_b64[v >> 12 & 63];
		buf[o++] = left > 1 ? pbjson_b64[v >> 6 & 63] : '=';
		buf[o++] = left > 2 ? pbjson_b64[v & 63] : '=';
	}
	j = json_stringn(buf, o);
	free(buf);
	return (j);
}

/* ---- decoding scalars ---- */

static int
pbjson_read_digits(const char *s, size_t len, pbjson_whole *w)
{
	size_t i = len > 0 && s[0] == '-' ? 1 : 0;

	w->negative = i == 1;
	w->magnitude = 0;
	if (i == len) {
		return (POND_EINVAL);
	}
	for (; i < len; i++) {
		uint64_t digit = (uint64_t)(s[i] - '0');
		if (s[i] < '0' || s[i] > '9') {
			return (POND_EINVAL);
		}
		if (w->magnitude > (UINT64_MAX - digit) / 10) {
			return (POND_ETOOBIG);
		}
		w->magnitude = w->magnitude * 10 + digit;
	}
	return (POND_OK);
}

/* pbjson_read_whole accepts a JSON integer, a real with no fractional part
 * (2.0, 1e3) or a decimal string: the forms proto3 JSON allows. */
static int
pbjson_read_whole(pbjson_decoder *d, json_t *j, pbjson_whole *w)
{
	double v = json_real_value(j);
	json_int_t i = json_integer_value(j);
	int rv;

	if (json_is_integer(j)) {
		w->negative = i < 0;
		w->magnitude = i < 0 ? (uint64_t)(-(i + 1)) + 1 : (uint64_t)i;
		return (POND_OK);
	}
	if (json_is_real(j)) {
		if (!isfinite(v) || v != trunc(v)) {
			return (pbjson_fail(d, "expected an integer"));
		}
		if (fabs(v) >= 18446744073709551616.0) { /* 2^64 */
			return (pbjson_fail(d, "integer out of range"));
		}
		w->negative = v < 0;
		w->magnitude = (uint64_t)fabs(v);
		return (POND_OK);
	}
	if (!json_is_string(j)) {
		return (pbjson_fail(d, "expected an integer"));
	}
	rv = pbjson_read_digits(json_string_value(j), json_string_length(j),
	                        w);
	if (rv == POND_ETOOBIG) {
		return (pbjson_fail(d, "integer out of range"));
	}
	return (rv != 0 ? pbjson_fail(d, "expected an integer") : POND_OK);
}

/* pbjson_read_integer range-checks j for an integer type and stores it in
 * the type's width. Negative values are formed in uint64 arithmetic, whose
 * two's complement bits are what the signed field holds. */
static int
pbjson_read_integer(pbjson_decoder *d, json_t *j, ProtobufCType type,
                    void *slot)
{
	bool wide = pbjson_type_size(type) == 8;
	uint64_t max = wide ? INT64_MAX : INT32_MAX;
	/* protobuf-c numbers the signed types first. */
	bool is_signed = type <= PROTOBUF_C_TYPE_SFIXED64;
	uint64_t neg_max = is_signed ? max + 1 : 0;
	uint64_t v;
	uint32_t v32;
	pbjson_whole w = {false, 0};
	int rv;

	if (!is_signed) {
		max = wide ? UINT64_MAX : UINT32_MAX;
	}
	if ((rv = pbjson_read_whole(d, j, &w)) != 0) {
		return (rv);
	}
	if (w.magnitude > (w.negative ? neg_max : max)) {
		return (pbjson_fail(d, "integer out of range"));
	}
	v = w.negative ? 0 - w.magnitude : w.magnitude;
	v32 = (uint32_t)v;
	memcpy(slot, wide ? (void *)&v : (void *)&v32, wide ? 8 : 4);
	return (POND_OK);
}

/* pbjson_read_real takes a JSON number or one of the strings proto3 JSON
 * uses for the values JSON cannot write. */
static int
pbjson_read_real(pbjson_decoder *d, json_t *j, bool wide, void *slot)
{
	const char *s = json_is_string(j) ? json_string_value(j) : "";
	double v = json_number_value(j);

	if (strcmp(s, "NaN") == 0 || strcmp(s, "Infinity") == 0 ||
	    strcmp(s, "-Infinity") == 0) {
		v = s[0] == 'N' ? NAN : s[0] == '-' ? -INFINITY : INFINITY;
	} else if (!json_is_number(j)) {
		return (pbjson_fail(d, "expected a number"));
	}
	if (wide) {
		*(double *)slot = v;
	} else if (isfinite(v) && fabs(v) > FLT_MAX) {
		return (pbjson_fail(d, "number out of range for float"));
	} else {
		*(float *)slot = (float)v;
	}
	return (POND_OK);
}

static int
pbjson_read_enum(pbjson_decoder *d, const ProtobufCEnumDescriptor *ed,
                 json_t *j, int32_t *out)
{
	const ProtobufCEnumValue *ev;

	if (!json_is_string(j)) {
		/* proto3 enums are open: any int32 is kept, named or not. */
		return (pbjson_read_integer(d, j, PROTOBUF_C_TYPE_INT32, out));
	}
	ev = protobuf_c_enum_descriptor_get_value_by_name(
	        ed, json_string_value(j));
	if (ev == NULL || strlen(ev->name) != json_string_length(j)) {
		return (pbjson_fail(d, "unknown enum value"));
	}
	*out = ev->value;
	return (POND_OK);
}

static int
pbjson_read_string(pbjson_decoder *d, json_t *j, char **out)
{
	size_t len = json_string_length(j);
	char *s;

	if (!json_is_string(j)) {
		return (pbjson_fail(d, "expected a string"));
	}
	/* A C string cannot carry "\u0000"; refuse rather than cut it. */
	if (memchr(json_string_value(j), '\0', len) != NULL) {
		return (pbjson_fail(d, "string contains a NUL character"));
	}
	if ((s = pbjson_alloc(d, len + 1)) == NULL) {
		return (pbjson_fail_nomem(d));
	}
	memcpy(s, json_string_value(j), len + 1);
	*out = s;
	return (POND_OK);
}

/* pbjson_decode_value decodes one value of fd's type into slot: the field
 * itself, or one element of a repeated field. */
static int
pbjson_decode_value(pbjson_decoder *d, const ProtobufCFieldDescriptor *fd,
                    json_t *j, void *slot)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return (pbjson_read_real(
		        d, j, fd->type == PROTOBUF_C_TYPE_DOUBLE, slot));
	case PROTOBUF_C_TYPE_BOOL:
		if (!json_is_boolean(j)) {
			return (pbjson_fail(d, "expected true or false"));
		}
		*(protobuf_c_boolean *)slot = json_is_true(j);
		return (POND_OK);
	case PROTOBUF_C_TYPE_ENUM:
		return (pbjson_read_enum(d, fd->descriptor, j, slot));
	case PROTOBUF_C_TYPE_STRING:
		return (pbjson_read_string(d, j, slot));
	case PROTOBUF_C_TYPE_BYTES:
		if (!json_is_string(j)) {
			return (pbjson_fail(d, "expected a base64 string"));
		}
		return (pbjson_decode_base64(d, json_string_value(j),
		                             json_string_length(j), slot));
	case PROTOBUF_C_TYPE_MESSAGE:
		return (pbjson_decode_message(d, fd->descriptor, j, slot));
	default:
		return (pbjson_read_integer(d, j, fd->type, slot));
	}
}

/* ---- decoding messages ---- */

static int
pbjson_decode_timestamp(pbjson_decoder *d,
                        const ProtobufCMessageDescriptor *desc, json_t *j,
                        ProtobufCMessage **out)
{
	const ProtobufCFieldDescriptor *sec, *nsec;
	pond_time t;
	int64_t seconds, usec;
	int rv;

	sec = protobuf_c_message_descriptor_get_field_by_name(desc, "seconds");
	nsec = protobuf_c_message_descriptor_get_field_by_name(desc, "nanos");
	if (!json_is_string(j) ||
	    strlen(json_string_value(j)) != json_string_length(j) ||
	    pond_time_parse_rfc3339(json_string_value(j), &t) != 0) {
		return (pbjson_fail(d, "expected an RFC 3339 timestamp"));
	}
	seconds = t / POND_USEC_PER_SEC;
	usec = t % POND_USEC_PER_SEC;
	if (usec < 0) {
		usec += POND_USEC_PER_SEC;
		seconds--;
	}
	if (seconds < PBJSON_TS_MIN_SECONDS ||
	    seconds > PBJSON_TS_MAX_SECONDS) {
		return (pbjson_fail(d, "timestamp out of range"));
	}
	if ((rv = pbjson_new_message(d, desc, out)) != 0) {
		return (rv);
	}
	*(int64_t *)((char *)*out + sec->offset) = seconds;
	*(int32_t *)((char *)*out + nsec->offset) = (int32_t)(usec * 1000);
	return (POND_OK);
}

/* pbjson_claim_oneof marks fd as the set member of its oneof, refusing a
 * second member: members share the case word at quantifier_offset. */
static int
pbjson_claim_oneof(pbjson_decoder *d, ProtobufCMessage *msg,
                   const ProtobufCFieldDescriptor *fd)
{
	uint32_t *which = (uint32_t *)((char *)msg + fd->quantifier_offset);
	const ProtobufCFieldDescriptor *other;

	if (*which != 0 && *which != fd->id) {
		other = protobuf_c_message_descriptor_get_field(
		        msg->descriptor, *which);
		return (pbjson_fail(d, "more than one of %s, %s",
		                    other != NULL ? other->name : "?",
		                    fd->name));
	}
	*which = fd->id;
	return (POND_OK);
}

/* pbjson_alloc_array hangs a zeroed array of n elements on the message
 * before any element is filled, so a failure part-way frees what was
 * built (NULL elements are skipped by the free). */
static int
pbjson_alloc_array(pbjson_decoder *d, ProtobufCMessage *msg,
                   const ProtobufCFieldDescriptor *fd, size_t n, void **out)
{
	size_t size = pbjson_type_size(fd->type);
	void *arr;

	if (n > SIZE_MAX / size) {
		return (pbjson_fail_nomem(d));
	}
	if ((arr = pbjson_alloc(d, n * size)) == NULL) {
		return (pbjson_fail_nomem(d));
	}
	memset(arr, 0, n * size);
	*(size_t *)((char *)msg + fd->quantifier_offset) = n;
	*(void **)((char *)msg + fd->offset) = arr;
	*out = arr;
	return (POND_OK);
}

static int
pbjson_decode_array(pbjson_decoder *d, ProtobufCMessage *msg,
                    const ProtobufCFieldDescriptor *fd, json_t *j)
{
	size_t n = json_array_size(j), size = pbjson_type_size(fd->type);
	char *arr;
	int rv;

	if (!json_is_array(j)) {
		return (pbjson_fail(d, "expected an array"));
	}
	if (n == 0) {
		return (POND_OK);
	}
	if ((rv = pbjson_alloc_array(d, msg, fd, n, (void **)&arr)) != 0) {
		return (rv);
	}
	for (size_t i = 0; i < n && rv == 0; i++) {
		size_t saved = pbjson_path_push(d, "[%zu]", i);
		json_t *elem = json_array_get(j, i);
		rv = json_is_null(elem) ? pbjson_fail(d, "null in an array")
		                        : pbjson_decode_value(d, fd, elem,
		                                              arr + i * size);
		pbjson_path_pop(d, saved);
	}
	return (rv);
}

/* pbjson_decode_map_key converts a JSON object key (always a string) to
 * the key field's type: strings as they are, integers and bools spelt in
 * decimal or as true/false. */
static int
pbjson_decode_map_key(pbjson_decoder *d, const ProtobufCFieldDescriptor *fd,
                      const char *key, size_t key_len, void *slot)
{
	json_t *j;
	int rv;

	if (fd->type == PROTOBUF_C_TYPE_BOOL) {
		if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0) {
			return (pbjson_fail(d,
			                    "expected a true or false key"));
		}
		*(protobuf_c_boolean *)slot = key[0] == 't';
		return (POND_OK);
	}
	if ((j = json_stringn_nocheck(key, key_len)) == NULL) {
		return (pbjson_fail_nomem(d));
	}
	rv = pbjson_decode_value(d, fd, j, slot);
	json_decref(j);
	return (rv);
}

static int
pbjson_decode_entry(pbjson_decoder *d, const ProtobufCMessageDescriptor *ed,
                    const char *key, size_t key_len, json_t *value,
                    ProtobufCMessage **out)
{
	int rv;

	if (json_is_null(value)) {
		return (pbjson_fail(d, "null map value"));
	}
	if ((rv = pbjson_new_message(d, ed, out)) != 0 ||
	    (rv = pbjson_decode_map_key(d, &ed->fields[0], key, key_len,
	                                (char *)*out +
	                                        ed->fields[0].offset)) != 0) {
		return (rv);
	}
	return (pbjson_decode_value(d, &ed->fields[1], value,
	                            (char *)*out + ed->fields[1].offset));
}

static int
pbjson_decode_map(pbjson_decoder *d, ProtobufCMessage *msg,
                  const ProtobufCFieldDescriptor *fd, json_t *j)
{
	ProtobufCMessage **entries;
	const char *key;
	size_t key_len, i = 0;
	json_t *value;
	int rv;

	if (!json_is_object(j)) {
		return (pbjson_fail(d, "expected an object"));
	}
	if (json_object_size(j) == 0) {
		return (POND_OK);
	}
	rv = pbjson_alloc_array(d, msg, fd, json_object_size(j),
	                        (void **)&entries);
	if (rv != 0) {
		return (rv);
	}
	json_object_keylen_foreach(j, key, key_len, value)
	{
		size_t saved =
		        pbjson_path_push(d, "[\"%.*s\"]", (int)key_len, key);
		rv = pbjson_decode_entry(d, fd->descriptor, key, key_len,
		                         value, &entries[i++]);
		pbjson_path_pop(d, saved);
		if (rv != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

static int
pbjson_decode_field(pbjson_decoder *d, ProtobufCMessage *msg,
                    const ProtobufCFieldDescriptor *fd, json_t *j)
{
	int rv;

	if (pbjson_is_map(fd)) {
		return (pbjson_decode_map(d, msg, fd, j));
	}
	if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
		return (pbjson_decode_array(d, msg, fd, j));
	}
	if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
	    (rv = pbjson_claim_oneof(d, msg, fd)) != 0) {
		return (rv);
	}
	return (pbjson_decode_value(d, fd, j, (char *)msg + fd->offset));
}

static int
pbjson_decode_fields(pbjson_decoder *d, ProtobufCMessage *msg, json_t *obj)
{
	const ProtobufCFieldDescriptor *fd;
	const char *key;
	size_t key_len;
	json_t *value;
	int rv = 0;

	json_object_keylen_foreach(obj, key, key_len, value)
	{
		size_t saved = pbjson_path_push_field(d, key, key_len);
		fd = pbjson_field_by_name(msg->descriptor, key, key_len);
		if (fd == NULL) {
			rv = pbjson_fail(d, "unknown field");
		} else if (!json_is_null(value)) {
			rv = pbjson_decode_field(d, msg, fd, value);
		}
		pbjson_path_pop(d, saved);
		if (rv != 0) {
			return (rv);
		}
	}
	return (POND_OK);
}

/* pbjson_decode_message decodes j into a new message stored at *out. *out
 * is set as soon as the message exists, so on failure the caller's free
 * of the enclosing message frees it too. */
static int
pbjson_decode_message(pbjson_decoder *d,
                      const ProtobufCMessageDescriptor *desc, json_t *j,
                      ProtobufCMessage **out)
{
	int rv;

	if (d->depth >= POND_PBJSON_MAX_DEPTH) {
		return (pbjson_fail(d, "nesting deeper than %d",
		                    POND_PBJSON_MAX_DEPTH));
	}
	if (pbjson_is_timestamp(desc)) {
		return (pbjson_decode_timestamp(d, desc, j, out));
	}
	if (!json_is_object(j)) {
		return (pbjson_fail(d, "expected an object"));
	}
	if ((rv = pbjson_new_message(d, desc, out)) != 0) {
		return (rv);
	}
	d->depth++;
	rv = pbjson_decode_fields(d, *out, j);
	d->depth--;
	return (rv);
}

int
pond_pbjson_decode(const ProtobufCMessageDescriptor *desc, const json_t *json,
                   ProtobufCAllocator *allocator, ProtobufCMessage **out,
                   pond_pbjson_error *err)
{
	pbjson_decoder d = {
	        .allocator = allocator != NULL ? allocator
	                                       : &pbjson_default_allocator,
	        .err = err,
	};
	ProtobufCMessage *msg = NULL;
	int rv;

	if (err != NULL) {
		memset(err, 0, sizeof(*err));
	}
	/* jansson's accessors take json_t *; nothing here modifies json. */
	rv = pbjson_decode_message(&d, desc, (json_t *)json, &msg);
	if (rv != 0) {
		protobuf_c_message_free_unpacked(msg, d.allocator);
		msg = NULL;
	}
	*out = msg;
	return (rv);
}

/* ---- encoding ---- */

/* pbjson_utf8_seq returns the length of the well-formed UTF-8 sequence at
 * s (n bytes available), or 0 if there is none. */
static size_t
pbjson_utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80                    ? 1
	             : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
	             : (s[0] & 0xF0) == 0xE0        ? 3
	             : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
	                                            : 0;
	uint32_t cp = s[0] & (0x7F >> len);

	if (len <= 1 || len > n) {
		return (len <= n ? len : 0);
	}
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			return (0);
		}
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
		return (0);
	}
	return (len);
}

/* pbjson_encode_string returns s as a JSON string. protobuf-c does not
 * check UTF-8 when it unpacks, and jansson refuses invalid UTF-8, so bad
 * bytes become U+FFFD rather than failing the whole encode. */
static json_t *
pbjson_encode_string(const char *s)
{
	size_t n, o = 0;
	char *buf;
	json_t *j;

	if (s == NULL) {
		return (json_string(""));
	}
	if ((j = json_string(s)) != NULL) {
		return (j);
	}
	n = strlen(s);
	if ((buf = malloc(3 * n + 1)) == NULL) {
		return (NULL);
	}
	for (size_t i = 0; i < n;) {
		size_t len =
		        pbjson_utf8_seq((const unsigned char *)s + i, n - i);
		if (len == 0) {
			memcpy(buf + o, "\xEF\xBF\xBD", 3);
			o += 3, i++;
		} else {
			memcpy(buf + o, s + i, len);
			o += len, i += len;
		}
	}
	j = json_stringn(buf, o);
	free(buf);
	return (j);
}

static json_t *
pbjson_encode_double(double v)
{
	if (isnan(v)) {
		return (json_string("NaN"));
	}
	if (isinf(v)) {
		return (json_string(v > 0 ? "Infinity" : "-Infinity"));
	}
	return (json_real(v));
}

/* pbjson_encode_integer writes any integer type as a JSON integer, but a
 * uint64 above INT64_MAX, which jansson cannot hold, as a decimal string. */
static json_t *
pbjson_encode_integer(ProtobufCType type, const void *slot)
{
	bool wide = pbjson_type_size(type) == 8;
	uint64_t u = wide ? *(const uint64_t *)slot : *(const uint32_t *)slot;
	char buf[24];

	if (type <= PROTOBUF_C_TYPE_SFIXED64) {
		return (json_integer(wide ? *(const int64_t *)slot
		                          : *(const int32_t *)slot));
	}
	if (u <= INT64_MAX) {
		return (json_integer((json_int_t)u));
	}
	snprintf(buf, sizeof(buf), "%" PRIu64, u);
	return (json_string(buf));
}

static json_t *
pbjson_encode_enum(const ProtobufCEnumDescriptor *ed, int32_t v)
{
	const ProtobufCEnumValue *ev =
	        protobuf_c_enum_descriptor_get_value(ed, v);

	return (ev != NULL ? json_string(ev->name) : json_integer(v));
}

/* pbjson_encode_timestamp returns null for a Timestamp outside the range
 * RFC 3339 can write; sub-microsecond nanos are dropped. */
static json_t *
pbjson_encode_timestamp(const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	const ProtobufCFieldDescriptor *sec, *nsec;
	char buf[40];
	int64_t seconds;
	int32_t nanos;

	sec = protobuf_c_message_descriptor_get_field_by_name(desc, "seconds");
	nsec = protobuf_c_message_descriptor_get_field_by_name(desc, "nanos");
	seconds = *(const int64_t *)((const char *)msg + sec->offset);
	nanos = *(const int32_t *)((const char *)msg + nsec->offset);
	if (seconds < PBJSON_TS_MIN_SECONDS ||
	    seconds > PBJSON_TS_MAX_SECONDS || nanos < 0 ||
	    nanos > 999999999) {
		return (json_null());
	}
	pond_time_format_rfc3339(pond_time_from_parts(seconds, nanos), buf,
	                         sizeof(buf));
	return (json_string(buf));
}

static json_t *
pbjson_encode_value(const ProtobufCFieldDescriptor *fd, const void *slot,
                    bool emit_defaults)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_FLOAT:
		return (pbjson_encode_double(*(const float *)slot));
	case PROTOBUF_C_TYPE_DOUBLE:
		return (pbjson_encode_double(*(const double *)slot));
	case PROTOBUF_C_TYPE_BOOL:
		return (json_boolean(*(const protobuf_c_boolean *)slot));
	case PROTOBUF_C_TYPE_ENUM:
		return (pbjson_encode_enum(fd->descriptor,
		                           *(const int32_t *)slot));
	case PROTOBUF_C_TYPE_STRING:
		return (pbjson_encode_string(*(char *const *)slot));
	case PROTOBUF_C_TYPE_BYTES:
		return (pbjson_encode_base64(slot));
	case PROTOBUF_C_TYPE_MESSAGE:
		if (*(ProtobufCMessage *const *)slot == NULL) {
			return (json_null());
		}
		return (pbjson_encode_message(*(ProtobufCMessage *const *)slot,
		                              emit_defaults));
	default:
		return (pbjson_encode_integer(fd->type, slot));
	}
}

static bool
pbjson_is_default(const ProtobufCFieldDescriptor *fd, const void *slot)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_FLOAT:
		return (*(const float *)slot == 0 &&
		        !signbit(*(const float *)slot));
	case PROTOBUF_C_TYPE_DOUBLE:
		return (*(const double *)slot == 0 &&
		        !signbit(*(const double *)slot));
	case PROTOBUF_C_TYPE_BOOL:
		return (*(const protobuf_c_boolean *)slot == 0);
	case PROTOBUF_C_TYPE_STRING:
		return (*(char *const *)slot == NULL ||
		        **(char *const *)slot == 0);
	case PROTOBUF_C_TYPE_BYTES:
		return (((const ProtobufCBinaryData *)slot)->len == 0);
	case PROTOBUF_C_TYPE_MESSAGE:
		return (*(ProtobufCMessage *const *)slot == NULL);
	default:
		return (pbjson_type_size(fd->type) == 8
		                ? *(const uint64_t *)slot == 0
		                : *(const uint32_t *)slot == 0);
	}
}

/* pbjson_encode_map_key spells a map key as a string. It goes through
 * pbjson_encode_value so a string key gets the same UTF-8 repair. */
static json_t *
pbjson_encode_map_key(const ProtobufCFieldDescriptor *fd, const void *slot)
{
	json_t *k = pbjson_encode_value(fd, slot, false), *s;

	if (k == NULL || json_is_string(k)) {
		return (k);
	}
	if (json_is_boolean(k)) {
		s = json_string(json_is_true(k) ? "true" : "false");
	} else {
		char buf[24];
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(k));
		s = json_string(buf);
	}
	json_decref(k);
	return (s);
}

static json_t *
pbjson_encode_map(const ProtobufCFieldDescriptor *fd, size_t n,
                  ProtobufCMessage *const *entries, bool emit_defaults)
{
	const ProtobufCMessageDescriptor *ed = fd->descriptor;
	json_t *obj = json_object(), *k, *v;
	bool ok;

	for (size_t i = 0; obj != NULL && i < n; i++) {
		const char *e = (const char *)entries[i];
		if (e == NULL) {
			continue;
		}
		k = pbjson_encode_map_key(&ed->fields[0],
		                          e + ed->fields[0].offset);
		v = pbjson_encode_value(&ed->fields[1],
		                        e + ed->fields[1].offset,
		                        emit_defaults);
		/* The key was checked as UTF-8 when k was made. */
		ok = k != NULL && v != NULL &&
		     json_object_setn_new_nocheck(obj, json_string_value(k),
		                                  json_string_length(k),
		                                  json_incref(v)) == 0;
		json_decref(k);
		json_decref(v);
		if (!ok) {
			json_decref(obj);
			return (NULL);
		}
	}
	return (obj);
}

static json_t *
pbjson_encode_array(const ProtobufCFieldDescriptor *fd, size_t n,
                    const char *arr, bool emit_defaults)
{
	size_t size = pbjson_type_size(fd->type);
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(
		            a, pbjson_encode_value(fd, arr + i * size,
		                                   emit_defaults)) != 0) {
			json_decref(a);
			return (NULL);
		}
	}
	return (a);
}

/* pbjson_encode_field returns the JSON for one field, or sets *skip when
 * the field is left out: an unset oneof member, or a default value when
 * defaults are not emitted. */
static json_t *
pbjson_encode_field(const ProtobufCMessage *msg,
                    const ProtobufCFieldDescriptor *fd, bool emit_defaults,
                    bool *skip)
{
	const char *base = (const char *)msg;
	const void *slot = base + fd->offset;

	*skip = false;
	if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
		*skip = *(const uint32_t *)(base + fd->quantifier_offset) !=
		        fd->id;
		return (*skip ? NULL
		              : pbjson_encode_value(fd, slot, emit_defaults));
	}
	if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n = *(const size_t *)(base + fd->quantifier_offset);
		const void *arr = *(void *const *)slot;
		*skip = n == 0 && !emit_defaults;
		if (*skip) {
			return (NULL);
		}
		return (pbjson_is_map(fd)
		                ? pbjson_encode_map(fd, n, arr, emit_defaults)
		                : pbjson_encode_array(fd, n, arr,
		                                      emit_defaults));
	}
	*skip = !emit_defaults && pbjson_is_default(fd, slot);
	return (*skip ? NULL : pbjson_encode_value(fd, slot, emit_defaults));
}

static json_t *
pbjson_encode_message(const ProtobufCMessage *msg, bool emit_defaults)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	json_t *obj, *v;
	bool skip;

	if (pbjson_is_timestamp(desc)) {
		return (pbjson_encode_timestamp(msg));
	}
	if ((obj = json_object()) == NULL) {
		return (NULL);
	}
	for (unsigned i = 0; i < desc->n_fields; i++) {
		v = pbjson_encode_field(msg, &desc->fields[i], emit_defaults,
		                        &skip);
		if (!skip && (v == NULL ||
		              json_object_set_new_nocheck(
		                      obj, desc->fields[i].name, v) != 0)) {
			json_decref(obj);
			return (NULL);
		}
	}
	return (obj);
}

json_t *
pond_pbjson_encode(const ProtobufCMessage *msg, bool emit_defaults)
{
	return (pbjson_encode_message(msg, emit_defaults));
}
