/*
 * arena.c - chunked bump allocator (see arena.h).
 */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 65536

struct pond_arena_chunk {
	pond_arena_chunk *next;
	size_t size;
	size_t off;
	alignas(max_align_t) unsigned char data[];
};

static void *
arena_pb_alloc(void *data, size_t size)
{
	return (pond_arena_alloc(data, size));
}

static void
arena_pb_free(void *data, void *p)
{
	/* Freed with the arena. */
	(void)data;
	(void)p;
}

void
pond_arena_init(pond_arena *a)
{
	a->chunks = NULL;
	a->used = 0;
	a->pb.alloc = arena_pb_alloc;
	a->pb.free = arena_pb_free;
	a->pb.allocator_data = a;
}

void *
pond_arena_alloc(pond_arena *a, size_t size)
{
	const size_t align = alignof(max_align_t);
	pond_arena_chunk *c = a->chunks;
	size_t need = (size + align - 1) & ~(align - 1);

	if (need < size) {
		return (NULL);
	}
	if (c == NULL || c->size - c->off < need) {
		size_t csize = need > ARENA_CHUNK ? need : ARENA_CHUNK;
		if ((c = malloc(sizeof(*c) + csize)) == NULL) {
			return (NULL);
		}
		c->size = csize;
		c->off = 0;
		/* A large one-off allocation goes behind the current chunk,
		 * so the current chunk's free space is not wasted. */
		if (a->chunks != NULL && need > ARENA_CHUNK) {
			c->next = a->chunks->next;
			a->chunks->next = c;
		} else {
			c->next = a->chunks;
			a->chunks = c;
		}
	}
	void *p = c->data + c->off;
	c->off += need;
	a->used += need;
	return (p);
}

char *
pond_arena_strdup(pond_arena *a, const char *s)
{
	return (pond_arena_memdup(a, s, strlen(s) + 1));
}

void *
pond_arena_memdup(pond_arena *a, const void *p, size_t n)
{
	void *q = pond_arena_alloc(a, n > 0 ? n : 1);

	if (q != NULL && n > 0) {
		memcpy(q, p, n);
	}
	return (q);
}

ProtobufCAllocator *
pond_arena_allocator(pond_arena *a)
{
	return (&a->pb);
}

void
pond_arena_reset(pond_arena *a)
{
	pond_arena_chunk *c = a->chunks;

	while (c != NULL) {
		pond_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->chunks = NULL;
	a->used = 0;
}
