/* mem.h: allocation that aborts on failure (as Redis and H2O do), and a
 * growable byte buffer. Sizes that come from the network or a file are checked
 * against a limit by the caller before they reach these functions.
 */
#ifndef SX_MEM_H
#define SX_MEM_H

#include <stddef.h>
#include <stdint.h>

void *sx_malloc(size_t n);
void *sx_calloc(size_t count, size_t size);
void *sx_realloc(void *p, size_t n);
char *sx_strdup(const char *s);
void *sx_memdup(const void *p, size_t n);

/* A growable byte buffer. Valid when zeroed; free with sx_buf_free. data is
 * owned by the buffer and moves when the buffer grows. */
typedef struct sx_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} sx_buf;

void sx_buf_reserve(sx_buf *b, size_t extra); /* room for `extra` more bytes */
void sx_buf_append(sx_buf *b, const void *p, size_t n);
void sx_buf_push(sx_buf *b, uint8_t byte);
void sx_buf_reset(sx_buf *b); /* len = 0, keeps the memory */
void sx_buf_free(sx_buf *b);  /* frees the memory; the buffer is zeroed again */

/* A bump allocator: many small allocations freed together. Valid when zeroed.
 * Not thread-safe; one owner at a time. */
typedef struct sx_arena {
    struct sx_arena_chunk *chunks;
} sx_arena;

/* n zeroed bytes, aligned for any type, valid until sx_arena_free. */
void *sx_arena_alloc(sx_arena *a, size_t n);
char *sx_arena_strdup(sx_arena *a, const char *s);
void *sx_arena_memdup(sx_arena *a, const void *p, size_t n);
void sx_arena_free(sx_arena *a); /* frees everything; the arena is empty again */

/* A protobuf-c allocator taking from arena a: unpack into it and the message
 * lives, and is freed, with the arena (its free does nothing). */
struct ProtobufCAllocator sx_arena_pb_allocator(sx_arena *a);

#endif
