/* hash.c: sx_hash64 and the partition functions over libxxhash's XXH64.
 *
 * The term functions lay the bytes out in one buffer and hash them in one call
 * rather than streaming: XXH64's streaming state is only public under
 * XXH_STATIC_LINKING_ONLY, whose layout is not part of the shared library's ABI.
 */
#include "hash.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem.h"

/* Term bytes up to this size are built on the stack; longer ones on the heap. */
#define TERM_STACK_MAX 256

uint64_t sx_hash64(const void *p, size_t n)
{
    return (uint64_t)XXH64(p, n, 0);
}

uint32_t sx_partition_of(const void *id, size_t n, uint32_t partitions)
{
    assert(partitions > 0);
    return (uint32_t)(sx_hash64(id, n) % partitions);
}

/* Hashes index, 0x00, tag, then the n bytes at value: the layout in hash.h. */
static uint64_t term_hash(const char *index, uint8_t tag, const void *value, size_t n)
{
    size_t ilen = strlen(index);
    size_t total = ilen + 2 + n;
    uint8_t stack[TERM_STACK_MAX];
    uint8_t *buf = total <= sizeof(stack) ? stack : sx_malloc(total);
    memcpy(buf, index, ilen);
    buf[ilen] = 0x00;
    buf[ilen + 1] = tag;
    if (n)
        memcpy(buf + ilen + 2, value, n);
    uint64_t h = sx_hash64(buf, total);
    if (buf != stack)
        free(buf);
    return h;
}

uint32_t sx_term_partition_of_str(const char *index, const void *s, size_t n, uint32_t m)
{
    assert(m > 0);
    return (uint32_t)(term_hash(index, 's', s, n) % m);
}

uint32_t sx_term_partition_of_int(const char *index, int64_t v, uint32_t m)
{
    assert(m > 0);
    /* Big-endian two's complement, independent of the host's byte order. */
    uint64_t u = (uint64_t)v;
    uint8_t be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (uint8_t)(u >> (56 - 8 * i));
    return (uint32_t)(term_hash(index, 'i', be, sizeof(be)) % m);
}
