/*
 * pbjson.h - the proto3 JSON mapping for protobuf-c messages.
 *
 * One generic codec, driven by protobuf-c's message descriptors, turns JSON
 * into any Pond message and back, so the HTTP API and the NNG API carry the
 * same messages with the same names (API.md: snake_case field names).
 *
 * Mapping: strings and bytes (base64) as JSON strings; 32-bit integers as
 * numbers; 64-bit integers as numbers or decimal strings on input, numbers
 * on output; bool; nested messages as objects; repeated fields as arrays;
 * map<string,string> as an object; a oneof member like any field (setting
 * two members of one oneof is an error); google.protobuf.Timestamp as an
 * RFC 3339 string. Unknown fields, wrong JSON types and out-of-range
 * numbers are errors. JSON null for a field means "absent".
 *
 * Details: only the snake_case proto names are accepted (no lowerCamelCase).
 * Any integer field takes a JSON integer, a real with no fraction (2.0) or
 * a decimal string ("-12"; no '+', spaces or exponent). A uint64 above
 * INT64_MAX is written as a decimal string. Enums take their value name or
 * any int32 and are written by name when it is known. double and float
 * take numbers and "NaN", "Infinity", "-Infinity", and are written the same
 * way. Bytes take standard or URL-safe base64, padded or not, and are
 * written standard and padded. Strings containing "\u0000" are refused.
 * Map keys are JSON object keys: strings as they are, integer keys in
 * decimal, bool keys "true"/"false". null is refused inside arrays and as
 * a map value. A set oneof member is always written, even at its default
 * value, which is how single-field oneofs give a field presence. A second
 * member of a oneof is reported as "more than one of A, B" naming both
 * members (protobuf-c keeps no oneof names). A repeated message field whose
 * type is named *Entry with exactly fields key = 1 and value = 2 is taken
 * for a map, since protobuf-c keeps no map_entry flag.
 * Timestamps are read with any UTC offset and written in UTC with 'Z' and
 * microseconds when non-zero (nanoseconds are cut to microseconds); years
 * outside 0001-9999 are an error on input and written as null.
 */
#ifndef POND_PBJSON_H
#define POND_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "err.h"

/* POND_PBJSON_MAX_DEPTH is how deeply messages may nest, counting the
 * outermost one; deeper input is an error, not a deep recursion. */
#define POND_PBJSON_MAX_DEPTH 32

/* pond_pbjson_error says where decoding failed and why. The path starts at
 * the message being decoded ("" for the message itself); a map entry is
 * written attributes["key"]. Over-long paths are cut short. */
typedef struct pond_pbjson_error {
	char path[128];    /* e.g. "order_paid.items[2].qty" */
	char message[160]; /* e.g. "expected an integer" */
} pond_pbjson_error;

/* pond_pbjson_decode builds a message of type desc from json. On success
 * *out is a message allocated with allocator (NULL: the default malloc
 * allocator), to be freed with protobuf_c_message_free_unpacked(*out,
 * allocator). On failure *out is NULL, nothing stays allocated, err (may
 * be NULL) says why, and POND_EINVAL is returned (POND_ENOMEM when the
 * allocator fails). Fields are read in document order and the first fault
 * is reported. */
int pond_pbjson_decode(const ProtobufCMessageDescriptor *desc,
                       const json_t *json, ProtobufCAllocator *allocator,
                       ProtobufCMessage **out,
                       pond_pbjson_error *err) POND_MUSTCHECK;

/* pond_pbjson_encode returns msg as a new JSON object (NULL on ENOMEM);
 * the caller owns the reference. Fields at their default value are
 * included when emit_defaults is true (reports need every field present:
 * zeros, "", [], {} for maps, null for unset messages and Timestamps), and
 * omitted otherwise; a oneof emits only its set member. Invalid UTF-8 in a
 * string (protobuf-c does not check it on unpack) is written as U+FFFD. */
json_t *pond_pbjson_encode(const ProtobufCMessage *msg, bool emit_defaults);

#endif
