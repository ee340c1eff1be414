/*
 * decode.c - from the bytes of a request to the items of a batch.
 *
 * Protobuf: the batch is first read as an IngestBatchFrame, whose events are
 * plain bytes, so a frame that decodes gives every event its raw bytes and
 * one undecodable event is rejected alone. JSON: the body must be an object
 * {"events": [...]}; each element is decoded by the generic proto3 JSON
 * codec, and its compact text is kept as the raw bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "pbjson.h"

ingest_batch *
ingest_batch_new(ingest *ig, ingest_format format)
{
	ingest_batch *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		return (NULL);
	}
	pond_arena_init(&b->arena);
	b->format = format;
	b->ingest = ig;
	b->token = "";
	return (b);
}

void
ingest_batch_free(ingest_batch *b)
{
	pond_arena_reset(&b->arena);
	free(b);
}

static int
batch_fail(ingest_batch *b, const char *code, const char *message)
{
	b->batch_error = code;
	b->batch_message = message;
	return (POND_EINVAL);
}

static int
batch_alloc_items(ingest_batch *b, size_t n)
{
	b->n = n;
	b->items = pond_arena_alloc(&b->arena,
	                            (n > 0 ? n : 1) * sizeof(ingest_item));
	if (b->items == NULL) {
		return (batch_fail(b, "internal", "out of memory"));
	}
	memset(b->items, 0, (n > 0 ? n : 1) * sizeof(ingest_item));
	for (size_t i = 0; i < n; i++) {
		b->items[i].event_id = "";
	}
	return (POND_OK);
}

int
ingest_decode_protobuf(ingest_batch *b, const uint8_t *buf, size_t len)
{
	ProtobufCAllocator *alloc = pond_arena_allocator(&b->arena);
	Pond__IngestBatchFrame *frame;

	if (len > INGEST_MAX_BYTES) {
		return (batch_fail(b, "too_large", "the batch is over 4 MiB"));
	}
	frame = pond__ingest_batch_frame__unpack(alloc, len, buf);
	if (frame == NULL) {
		return (batch_fail(b, "undecodable",
		                   "the request is not a pond.IngestBatch"));
	}
	if (frame->n_events > INGEST_MAX_EVENTS) {
		return (batch_fail(b, "too_many_events",
		                   "a batch holds at most 1,000 events"));
	}
	b->token = frame->token;
	if (batch_alloc_items(b, frame->n_events) != 0) {
		return (POND_ENOMEM);
	}
	for (size_t i = 0; i < frame->n_events; i++) {
		ingest_item *item = &b->items[i];
		item->raw = frame->events[i].data;
		item->raw_len = frame->events[i].len;
		item->event =
		        pond__event__unpack(alloc, item->raw_len, item->raw);
		if (item->event == NULL) {
			item->check = CODE_UNDECODABLE;
			snprintf(item->check_reason,
			         sizeof(item->check_reason),
			         "event %zu is not a pond.Event", i);
		}
	}
	return (POND_OK);
}

/* json_shell keeps the identity of an element the codec refused (its id,
 * key and the aliases that decode), so that store.c can still tell an
 * unknown customer, whose code comes before most faults, from the rest. */
static void
json_shell(ingest_batch *b, ingest_item *item, const json_t *elem)
{
	ProtobufCAllocator *alloc = pond_arena_allocator(&b->arena);
	const json_t *key = json_object_get(elem, "customer_key");
	const json_t *aliases = json_object_get(elem, "aliases");
	size_t n = json_array_size(aliases);
	Pond__Event *e = pond_arena_alloc(&b->arena, sizeof(*e));

	if (e == NULL) {
		return; /* without a shell the event's own fault stands */
	}
	pond__event__init(e);
	e->event_id = pond_arena_strdup(&b->arena, item->event_id);
	e->customer_key = pond_arena_strdup(
	        &b->arena, json_is_string(key) ? json_string_value(key) : "");
	e->aliases = pond_arena_alloc(&b->arena, (n + 1) * sizeof(void *));
	if (e->event_id == NULL || e->customer_key == NULL ||
	    e->aliases == NULL) {
		return;
	}
	for (size_t i = 0; i < n; i++) {
		ProtobufCMessage *alias;
		pond_pbjson_error err;
		if (pond_pbjson_decode(&pond__alias__descriptor,
		                       json_array_get(aliases, i), alloc,
		                       &alias, &err) == 0) {
			e->aliases[e->n_aliases++] = (Pond__Alias *)alias;
		}
	}
	item->event = e;
	item->shell = true;
}

/* json_fault classifies an element the codec refused, following the code
 * order of API.md section 6 as far as the JSON shows it; unknown_customer
 * is left to store.c, through the element's shell. */
static void
json_fault(ingest_batch *b, ingest_item *item, const json_t *elem,
           const pond_pbjson_error *err)
{
	const json_t *id, *key, *aliases;
	const char *name;
	json_t *value;
	bool has_body = false, unknown_object = false;

	if (!json_is_object(elem)) {
		item->check = CODE_BAD_FIELD;
		snprintf(item->check_reason, sizeof(item->check_reason),
		         "an event must be a JSON object");
		return;
	}
	id = json_object_get(elem, "event_id");
	if (json_is_string(id)) {
		item->event_id = json_string_value(id);
	}
	key = json_object_get(elem, "customer_key");
	aliases = json_object_get(elem, "aliases");
	if (id == NULL || json_is_null(id) ||
	    (json_is_string(id) && json_string_length(id) == 0)) {
		item->check = CODE_MISSING_EVENT_ID;
		snprintf(item->check_reason, sizeof(item->check_reason),
		         "event_id is required");
		return;
	}
	if ((key == NULL || json_is_null(key) ||
	     (json_is_string(key) && json_string_length(key) == 0)) &&
	    (aliases == NULL || json_is_null(aliases) ||
	     (json_is_array(aliases) && json_array_size(aliases) == 0)) &&
	    json_object_get(elem, "channel_spend") == NULL) {
		item->check = CODE_MISSING_CUSTOMER;
		snprintf(item->check_reason, sizeof(item->check_reason),
		         "customer_key or a known alias is required");
		return;
	}
	json_shell(b, item, elem);
	/* A body of an unknown type is an unknown key holding an object when
	 * no known body is there. */
	json_object_foreach((json_t *)elem, name, value)
	{
		const ProtobufCFieldDescriptor *f =
		        protobuf_c_message_descriptor_get_field_by_name(
		                &pond__event__descriptor, name);
		if (f != NULL && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
			has_body = true;
		} else if (f == NULL && json_is_object(value)) {
			unknown_object = true;
		}
	}
	if (!has_body) {
		item->check =
		        unknown_object ? CODE_UNKNOWN_BODY : CODE_MISSING_BODY;
		snprintf(item->check_reason, sizeof(item->check_reason), "%s",
		         unknown_object
		                 ? "the event's body is of an unknown type"
		                 : "the event has no body");
		return;
	}
	item->check = CODE_BAD_FIELD;
	snprintf(item->check_reason, sizeof(item->check_reason), "%s%s%s",
	         err->path, *err->path != '\0' ? ": " : "", err->message);
}

int
ingest_decode_json(ingest_batch *b, const char *body, size_t len,
                   unsigned *http_status)
{
	ProtobufCAllocator *alloc = pond_arena_allocator(&b->arena);
	json_error_t jerr;
	json_t *root, *events;
	const char *name;
	json_t *value;
	int rv = POND_EINVAL;

	*http_status = 400;
	if (len > INGEST_MAX_BYTES) {
		*http_status = 413;
		return (batch_fail(b, "too_large", "the body is over 4 MiB"));
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		char *msg = pond_arena_alloc(&b->arena, 200);
		if (msg != NULL) {
			snprintf(msg, 200, "not JSON: %s at line %d column %d",
			         jerr.text, jerr.line, jerr.column);
		}
		return (batch_fail(b, "bad_request",
		                   msg != NULL ? msg : "not JSON"));
	}
	events = json_object_get(root, "events");
	if (!json_is_object(root) || !json_is_array(events)) {
		batch_fail(b, "bad_request",
		           "the body must be an object {\"events\": [...]}");
		goto out;
	}
	json_object_foreach(root, name, value)
	{
		if (strcmp(name, "events") != 0) {
			batch_fail(
			        b, "bad_request",
			        "the body has a field other than \"events\"");
			goto out;
		}
	}
	if (json_array_size(events) > INGEST_MAX_EVENTS) {
		*http_status = 413;
		batch_fail(b, "too_many_events",
		           "a batch holds at most 1,000 events");
		goto out;
	}
	if ((rv = batch_alloc_items(b, json_array_size(events))) != 0) {
		goto out;
	}
	for (size_t i = 0; i < b->n; i++) {
		ingest_item *item = &b->items[i];
		json_t *elem = json_array_get(events, i);
		pond_pbjson_error perr;
		ProtobufCMessage *msg = NULL;
		char *raw = json_dumps(elem, JSON_COMPACT | JSON_ENCODE_ANY);

		if (raw != NULL) {
			item->raw_len = strlen(raw);
			item->raw = pond_arena_memdup(&b->arena, raw,
			                              item->raw_len);
			free(raw);
		}
		if (!json_is_object(elem) ||
		    pond_pbjson_decode(&pond__event__descriptor, elem, alloc,
		                       &msg, &perr) != 0) {
			json_fault(b, item, elem, &perr);
			/* The id lives in the JSON tree, freed below. */
			item->event_id =
			        pond_arena_strdup(&b->arena, item->event_id);
			continue;
		}
		item->event = (Pond__Event *)msg;
	}
	rv = POND_OK;
out:
	json_decref(root);
	return (rv);
}
