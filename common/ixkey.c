/* ixkey.c: see ixkey.h. */
#include "ixkey.h"

#include "hash.h"
#include "keys.h"

#include <stdlib.h>
#include <string.h>

void sx_ixkey_def_from_spec(sx_ixkey_def *d, uint64_t id, const Shardex__V1__IndexSpec *spec)
{
    *d = (sx_ixkey_def){
        .id = id,
        .name = spec->name,
        .field = spec->field,
        .is_int = spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT,
        .local = spec->local,
        .global = spec->global,
        .term_partitions = spec->term_partitions,
    };
}

bool sx_ixkey_append_value(sx_buf *b, bool is_int, const Shardex__V1__Value *v)
{
    if (!v)
        return false;
    if (is_int && v->kind_case == SHARDEX__V1__VALUE__KIND_I) {
        sx_key_append_i64(b, v->i);
        return true;
    }
    if (!is_int && v->kind_case == SHARDEX__V1__VALUE__KIND_S && v->s) {
        sx_key_append_str(b, v->s, strlen(v->s));
        return true;
    }
    return false;
}

typedef struct span {
    const uint8_t *base;
    size_t off, len;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->base + x->off, y->base + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

size_t sx_ixkey_doc_values(const sx_ixkey_def *d, const Shardex__V1__Document *doc, sx_buf *keys,
                           size_t *offs, size_t *lens, size_t cap, bool *mistyped)
{
    keys->len = 0;
    *mistyped = false;
    size_t n = 0;
    for (size_t i = 0; doc && i < doc->n_fields; i++) {
        const Shardex__V1__Field *f = doc->fields[i];
        if (!f || !f->name || strcmp(f->name, d->field) != 0 || !f->value)
            continue;
        size_t at = keys->len;
        if (!sx_ixkey_append_value(keys, d->is_int, f->value)) {
            if (f->value->kind_case != SHARDEX__V1__VALUE__KIND__NOT_SET)
                *mistyped = true;
            continue;
        }
        if (n == cap) {
            keys->len = at;
            continue;
        }
        offs[n] = at;
        lens[n] = keys->len - at;
        n++;
    }
    if (n < 2)
        return n;
    /* Sort and drop duplicates: a value given twice is one entry. */
    span *s = sx_malloc(n * sizeof(*s));
    for (size_t i = 0; i < n; i++)
        s[i] = (span){keys->data, offs[i], lens[i]};
    qsort(s, n, sizeof(*s), span_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && span_cmp(&s[m - 1], &s[i]) == 0)
            continue;
        s[m++] = s[i];
    }
    for (size_t i = 0; i < m; i++) {
        offs[i] = s[i].off;
        lens[i] = s[i].len;
    }
    free(s);
    return m;
}

uint32_t sx_ixkey_term_of(const sx_ixkey_def *d, const uint8_t *vkey, size_t n)
{
    sx_key_reader r;
    sx_key_reader_init(&r, vkey, n);
    if (d->is_int) {
        int64_t v = 0;
        sx_key_read_i64(&r, &v);
        return sx_term_partition_of_int(d->name, v, d->term_partitions);
    }
    sx_buf s = {0};
    sx_key_read_str(&r, &s);
    uint32_t t = sx_term_partition_of_str(d->name, s.data, s.len, d->term_partitions);
    sx_buf_free(&s);
    return t;
}

bool sx_ixkey_split_key(bool is_int, const uint8_t *key, size_t n, Shardex__V1__Value *v,
                        sx_buf *sbuf, sx_buf *id)
{
    sx_key_reader r;
    sx_key_reader_init(&r, key, n);
    shardex__v1__value__init(v);
    if (is_int) {
        int64_t i;
        if (!sx_key_read_i64(&r, &i))
            return false;
        v->kind_case = SHARDEX__V1__VALUE__KIND_I;
        v->i = i;
    } else {
        sbuf->len = 0;
        if (!sx_key_read_str(&r, sbuf))
            return false;
        sx_buf_append(sbuf, "", 1);
        v->kind_case = SHARDEX__V1__VALUE__KIND_S;
        v->s = (char *)sbuf->data;
    }
    size_t before = id->len;
    if (!sx_key_read_str(&r, id) || !sx_key_reader_done(&r)) {
        id->len = before;
        return false;
    }
    sx_buf_append(id, "", 1);
    id->len--;
    return true;
}

uint64_t sx_ixkey_digest_add(uint64_t acc, const uint8_t *key, size_t n, uint64_t version)
{
    /* Called once per entry over whole indexes: no allocation for the keys
     * of ordinary size. */
    uint8_t small[512];
    sx_buf big = {0};
    uint8_t *b = small;
    if (n + 8 > sizeof(small)) {
        sx_buf_reserve(&big, n + 8);
        b = big.data;
    }
    memcpy(b, key, n);
    for (int i = 0; i < 8; i++)
        b[n + (size_t)i] = (uint8_t)(version >> (56 - 8 * i)); /* big-endian, as keys.h */
    uint64_t h = sx_hash64(b, n + 8);
    sx_buf_free(&big);
    return acc + h;
}
