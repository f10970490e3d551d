/* hmap.c: see hmap.h. */
#include "hmap.h"

#include "hash.h"
#include "mem.h"

#include <stdlib.h>
#include <string.h>

struct sx_hmap_slot {
    char *key; /* NULL: the slot is empty */
    size_t len;
    uint64_t hash;
    void *val;
};

/* First capacity; grows by doubling when len would pass 70% of cap. */
#define HMAP_MIN_CAP 16

static uint64_t key_hash(const void *key, size_t n)
{
    return sx_hash64(n ? key : NULL, n);
}

/* The slot holding key, or the empty slot where it would go. m->cap > 0. */
static size_t find_slot(const sx_hmap *m, const void *key, size_t n, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        const sx_hmap_slot *s = &m->slots[i];
        if (!s->key)
            return i;
        if (s->hash == h && s->len == n && (n == 0 || memcmp(s->key, key, n) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

static void grow(sx_hmap *m)
{
    size_t cap = m->cap ? 2 * m->cap : HMAP_MIN_CAP;
    sx_hmap_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = sx_calloc(cap, sizeof(*m->slots));
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key)
            continue;
        size_t j = (size_t)old[i].hash & (cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

bool sx_hmap_get(const sx_hmap *m, const void *key, size_t n, void **val)
{
    if (m->len == 0)
        return false;
    const sx_hmap_slot *s = &m->slots[find_slot(m, key, n, key_hash(key, n))];
    if (!s->key)
        return false;
    if (val)
        *val = s->val;
    return true;
}

void **sx_hmap_upsert(sx_hmap *m, const void *key, size_t n, bool *created)
{
    if ((m->len + 1) * 10 > m->cap * 7)
        grow(m);
    uint64_t h = key_hash(key, n);
    sx_hmap_slot *s = &m->slots[find_slot(m, key, n, h)];
    bool fresh = !s->key;
    if (fresh) {
        s->key = sx_malloc(n + 1);
        if (n)
            memcpy(s->key, key, n);
        s->key[n] = '\0';
        s->len = n;
        s->hash = h;
        s->val = NULL;
        m->len++;
    }
    if (created)
        *created = fresh;
    return &s->val;
}

bool sx_hmap_put(sx_hmap *m, const void *key, size_t n, void *val, void **old)
{
    bool created;
    void **slot = sx_hmap_upsert(m, key, n, &created);
    if (!created && old)
        *old = *slot;
    *slot = val;
    return !created;
}

bool sx_hmap_remove(sx_hmap *m, const void *key, size_t n, void **val)
{
    if (m->len == 0)
        return false;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, n, key_hash(key, n));
    if (!m->slots[i].key)
        return false;
    if (val)
        *val = m->slots[i].val;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->len--;
    /* Backward shift: pull later members of the probe run into the hole
     * unless their home slot lies cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        m->slots[hole] = m->slots[j];
        m->slots[j].key = NULL;
        hole = j;
    }
    return true;
}

size_t sx_hmap_len(const sx_hmap *m)
{
    return m->len;
}

bool sx_hmap_next(const sx_hmap *m, size_t *pos, const char **key, size_t *n, void **val)
{
    for (size_t i = *pos; i < m->cap; i++) {
        const sx_hmap_slot *s = &m->slots[i];
        if (!s->key)
            continue;
        if (key)
            *key = s->key;
        if (n)
            *n = s->len;
        if (val)
            *val = s->val;
        *pos = i + 1;
        return true;
    }
    *pos = m->cap;
    return false;
}

void sx_hmap_free(sx_hmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        if (free_val)
            free_val(m->slots[i].val);
        free(m->slots[i].key);
    }
    free(m->slots);
    *m = (sx_hmap){0};
}
