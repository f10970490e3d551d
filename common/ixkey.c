/* ixkey.c: see ixkey.h. */
#include "ixkey.h"

#include "hash.h"
#include "keys.h"

#include <stdio.h>
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
        .range = spec->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE,
        .nsplits = spec->n_split_points,
        .splits = spec->split_points,
    };
}

int sx_ixkey_value_cmp(bool is_int, const Shardex__V1__Value *a, const Shardex__V1__Value *b)
{
    if (is_int)
        return (a->i > b->i) - (a->i < b->i);
    /* Bytewise with a prefix first: the order of sx_key_append_str. */
    return strcmp(a->s ? a->s : "", b->s ? b->s : "");
}

/* The number of split points at or below v: its term partition. */
static uint32_t range_term(const sx_ixkey_def *d, const Shardex__V1__Value *v)
{
    size_t lo = 0, hi = d->nsplits;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sx_ixkey_value_cmp(d->is_int, d->splits[mid], v) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

bool sx_ixkey_check_partitioning(const Shardex__V1__IndexSpec *spec, uint32_t max, char *msg,
                                 size_t cap)
{
    bool is_int = spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    if (spec->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE) {
        if (spec->n_split_points) {
            snprintf(msg, cap, "spec.split_points: only for PARTITIONING_RANGE");
            return false;
        }
        return true;
    }
    if (!spec->global) {
        snprintf(msg, cap, "spec.partitioning: RANGE is for an index kept GLOBAL");
        return false;
    }
    if (!spec->n_split_points) {
        /* Not chosen for the caller yet: see docs/indexes.md, "Range partitioning". */
        snprintf(msg, cap, "spec.split_points: required for PARTITIONING_RANGE");
        return false;
    }
    if (spec->n_split_points + 1 > max) {
        snprintf(msg, cap, "spec.split_points: %zu make more than %u term partitions",
                 spec->n_split_points, max);
        return false;
    }
    if (spec->term_partitions && spec->term_partitions != spec->n_split_points + 1) {
        snprintf(msg, cap, "spec.term_partitions: %u, but %zu split points make %zu",
                 spec->term_partitions, spec->n_split_points, spec->n_split_points + 1);
        return false;
    }
    for (size_t i = 0; i < spec->n_split_points; i++) {
        const Shardex__V1__Value *v = spec->split_points[i];
        sx_buf b = {0};
        bool typed = sx_ixkey_append_value(&b, is_int, v);
        sx_buf_free(&b);
        if (!typed) {
            snprintf(msg, cap, "spec.split_points[%zu]: not a %s", i, is_int ? "int" : "string");
            return false;
        }
        if (i && sx_ixkey_value_cmp(is_int, spec->split_points[i - 1], v) >= 0) {
            snprintf(msg, cap, "spec.split_points[%zu]: not above the one before", i);
            return false;
        }
    }
    return true;
}

Shardex__V1__Value *sx_ixkey_value_dup(const Shardex__V1__Value *v)
{
    Shardex__V1__Value *o = sx_malloc(sizeof(*o));
    shardex__v1__value__init(o);
    o->kind_case = v->kind_case;
    if (v->kind_case == SHARDEX__V1__VALUE__KIND_I)
        o->i = v->i;
    else if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        o->s = sx_strdup(v->s ? v->s : "");
    return o;
}

void sx_ixkey_value_free(Shardex__V1__Value *v)
{
    if (!v)
        return;
    if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        free(v->s);
    free(v);
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
        if (d->range) {
            Shardex__V1__Value val = SHARDEX__V1__VALUE__INIT;
            val.kind_case = SHARDEX__V1__VALUE__KIND_I;
            val.i = v;
            return range_term(d, &val);
        }
        return sx_term_partition_of_int(d->name, v, d->term_partitions);
    }
    sx_buf s = {0};
    sx_key_read_str(&r, &s);
    uint32_t t;
    if (d->range) {
        sx_buf_append(&s, "", 1); /* a C string, as Value.s is */
        Shardex__V1__Value val = SHARDEX__V1__VALUE__INIT;
        val.kind_case = SHARDEX__V1__VALUE__KIND_S;
        val.s = (char *)s.data;
        t = range_term(d, &val);
    } else {
        t = sx_term_partition_of_str(d->name, s.data, s.len, d->term_partitions);
    }
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
