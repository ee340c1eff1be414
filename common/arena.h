/*
 * arena.h - per-request memory, freed as a whole.
 *
 * Like a PostgreSQL memory context: everything one batch or one request
 * allocates comes from its arena, and pond_arena_reset frees it all at once.
 * pond_arena_allocator() adapts an arena to protobuf-c, so unpacked messages
 * live in the arena too (their free is a no-op).
 */
#ifndef POND_ARENA_H
#define POND_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

typedef struct pond_arena_chunk pond_arena_chunk;

typedef struct pond_arena {
	pond_arena_chunk *chunks;
	size_t used; /* bytes handed out, for limits and metrics */
	ProtobufCAllocator pb;
} pond_arena;

/* pond_arena_init makes an empty arena. */
void pond_arena_init(pond_arena *a);

/* pond_arena_alloc returns size bytes aligned for any type, or NULL. */
void *pond_arena_alloc(pond_arena *a, size_t size);

/* pond_arena_strdup copies s into the arena. */
char *pond_arena_strdup(pond_arena *a, const char *s);

/* pond_arena_memdup copies n bytes into the arena. */
void *pond_arena_memdup(pond_arena *a, const void *p, size_t n);

/* pond_arena_allocator returns a protobuf-c allocator drawing from a. */
ProtobufCAllocator *pond_arena_allocator(pond_arena *a);

/* pond_arena_reset frees everything allocated from a. */
void pond_arena_reset(pond_arena *a);

#endif
