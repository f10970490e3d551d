/* mem.c: aborting allocators and sx_buf. */
#include "mem.h"

#include <protobuf-c/protobuf-c.h>

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "shardex: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sx_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sx_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *sx_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *sx_strdup(const char *s)
{
    return sx_memdup(s, strlen(s) + 1);
}

void *sx_memdup(const void *p, size_t n)
{
    void *q = sx_malloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void sx_buf_reserve(sx_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = sx_realloc(b->data, cap);
    b->cap = cap;
}

void sx_buf_append(sx_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    sx_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void sx_buf_push(sx_buf *b, uint8_t byte)
{
    sx_buf_reserve(b, 1);
    b->data[b->len++] = byte;
}

void sx_buf_reset(sx_buf *b)
{
    b->len = 0;
}

void sx_buf_free(sx_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

typedef struct sx_arena_chunk {
    struct sx_arena_chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} sx_arena_chunk;

void *sx_arena_alloc(sx_arena *a, size_t n)
{
    size_t need = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    sx_arena_chunk *c = a->chunks;
    if (!c || c->cap - c->used < need) {
        /* Chunks double up to 1 MiB: a large message is a few mallocs. */
        size_t cap = c ? (c->cap < ((size_t)1 << 19) ? 2 * c->cap : (size_t)1 << 20) : 4000;
        if (need > cap)
            cap = need;
        c = sx_malloc(sizeof(*c) + cap);
        c->cap = cap;
        c->used = 0;
        c->next = a->chunks;
        a->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    memset(p, 0, n);
    return p;
}

char *sx_arena_strdup(sx_arena *a, const char *s)
{
    return sx_arena_memdup(a, s, strlen(s) + 1);
}

void *sx_arena_memdup(sx_arena *a, const void *p, size_t n)
{
    void *q = sx_arena_alloc(a, n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void sx_arena_free(sx_arena *a)
{
    while (a->chunks) {
        sx_arena_chunk *next = a->chunks->next;
        free(a->chunks);
        a->chunks = next;
    }
}

static void *arena_pb_alloc(void *a, size_t n)
{
    return sx_arena_alloc(a, n);
}

static void arena_pb_free(void *a, void *p)
{
    (void)a;
    (void)p; /* freed with the arena */
}

ProtobufCAllocator sx_arena_pb_allocator(sx_arena *a)
{
    return (ProtobufCAllocator){
        .alloc = arena_pb_alloc, .free = arena_pb_free, .allocator_data = a};
}
