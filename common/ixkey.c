/* ixkey.c: see ixkey.h. */
#include "ixkey.h"

#include "hash.h"
#include "keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

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
    if (!spec->n_split_points && spec->term_partitions != 1) {
        /* A worker's CreateIndex chooses them from the data before it asks the
         * coordinator: docs/indexes.md, "Range partitioning". */
        snprintf(msg, cap,
                 "spec.split_points: required for PARTITIONING_RANGE with more than one term "
                 "partition");
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

/* Decodes enc(value) into *val (strings into sbuf, NUL-terminated). */
static bool decode_value(bool is_int, const uint8_t *vkey, size_t n, Shardex__V1__Value *val,
                         sx_buf *sbuf)
{
    sx_key_reader r;
    sx_key_reader_init(&r, vkey, n);
    shardex__v1__value__init(val);
    if (is_int) {
        int64_t v = 0;
        bool ok = sx_key_read_i64(&r, &v);
        val->kind_case = SHARDEX__V1__VALUE__KIND_I;
        val->i = v;
        return ok;
    }
    bool ok = sx_key_read_str(&r, sbuf);
    sx_buf_append(sbuf, "", 1); /* a C string, as Value.s is */
    val->kind_case = SHARDEX__V1__VALUE__KIND_S;
    val->s = (char *)sbuf->data;
    return ok;
}

/* Follows t through d's layout for value v; *parent (when not NULL) gets the
 * parent of an unfinished last split that v went through, else UINT32_MAX. */
static uint32_t follow_layout(const sx_ixkey_def *d, uint32_t t, const Shardex__V1__Value *v,
                              uint32_t *parent)
{
    if (parent)
        *parent = UINT32_MAX;
    for (size_t i = 0; i < d->nlayout; i++) {
        const Shardex__Internal__V1__IndexSplit *sp = d->layout[i];
        if (sp->term != t || !sp->at)
            continue;
        t = sx_ixkey_value_cmp(d->is_int, v, sp->at) < 0 ? sp->lo : sp->hi;
        if (parent && i + 1 == d->nlayout && !sp->done)
            *parent = sp->term;
    }
    return t;
}

uint32_t sx_ixkey_salt_slot(const char *id, size_t n, uint32_t ways)
{
    /* A seed of its own: with seed 0 this would be partition_of's hash, and
     * every id of log partition p would take slot p mod ways when ways and P
     * share a factor. */
    return ways ? (uint32_t)(XXH64(id, n, SX_IXKEY_SALT_SEED) % ways) : 0;
}

/* The value's term partition before salts and splits (hash or split points). */
static uint32_t base_term(const sx_ixkey_def *d, const Shardex__V1__Value *val)
{
    if (d->range)
        return range_term(d, val);
    if (d->is_int)
        return sx_term_partition_of_int(d->name, val->i, d->term_partitions);
    const char *s = val->s ? val->s : "";
    return sx_term_partition_of_str(d->name, s, strlen(s), d->term_partitions);
}

const Shardex__Internal__V1__IndexSalt *sx_ixkey_salt_of(const sx_ixkey_def *d,
                                                         const Shardex__V1__Value *val)
{
    for (size_t i = 0; i < d->nsalts; i++)
        if (d->salts[i]->value && d->salts[i]->value->kind_case == val->kind_case &&
            sx_ixkey_value_cmp(d->is_int, d->salts[i]->value, val) == 0)
            return d->salts[i];
    return NULL;
}

/* The one routing function (ixkey.h, sx_ixkey_terms_of). id NULL: the value's
 * own partition, whatever salts say (queries add the salt set themselves). */
static size_t route(const sx_ixkey_def *d, const uint8_t *vkey, size_t n, const char *id,
                    size_t id_len, uint64_t version, uint32_t out[2])
{
    sx_buf sbuf = {0};
    Shardex__V1__Value val;
    decode_value(d->is_int, vkey, n, &val, &sbuf);
    uint32_t t = base_term(d, &val);
    const Shardex__Internal__V1__IndexSalt *salt = id ? sx_ixkey_salt_of(d, &val) : NULL;
    /* An entry written before the salt's marker stays in the value's own
     * partition: the entry's version says which side of the marker it is. */
    if (salt && version >= salt->from && salt->n_terms == salt->ways && salt->ways)
        t = salt->terms[sx_ixkey_salt_slot(id, id_len, salt->ways)];
    uint32_t parent = UINT32_MAX;
    if (d->range)
        t = follow_layout(d, t, &val, &parent);
    sx_buf_free(&sbuf);
    out[0] = t;
    if (parent == UINT32_MAX)
        return 1;
    out[1] = parent;
    return 2;
}

uint32_t sx_ixkey_term_of(const sx_ixkey_def *d, const uint8_t *vkey, size_t n)
{
    uint32_t out[2];
    route(d, vkey, n, NULL, 0, 0, out);
    return out[0];
}

size_t sx_ixkey_terms_of(const sx_ixkey_def *d, const uint8_t *vkey, size_t n, const char *id,
                         size_t id_len, uint64_t version, uint32_t out[2])
{
    return route(d, vkey, n, id, id_len, version, out);
}

size_t sx_ixkey_salt_terms(const sx_ixkey_def *d, const Shardex__Internal__V1__IndexSalt *salt,
                           uint32_t *out)
{
    size_t m = 0;
    for (size_t i = 0; i < salt->n_terms; i++) {
        uint32_t t = salt->terms[i];
        if (d->range)
            t = follow_layout(d, t, salt->value, NULL);
        bool seen = false;
        for (size_t k = 0; k < m; k++)
            seen |= out[k] == t;
        if (!seen)
            out[m++] = t;
    }
    return m;
}

uint32_t sx_ixkey_term_count(const sx_ixkey_def *d)
{
    return d->term_partitions + 2 * (uint32_t)d->nlayout;
}

size_t sx_ixkey_layout_order(const sx_ixkey_def *d, uint32_t *terms,
                             const Shardex__V1__Value **lower)
{
    size_t n = d->term_partitions;
    for (uint32_t t = 0; t < d->term_partitions; t++) {
        terms[t] = t;
        lower[t] = d->range && t ? d->splits[t - 1] : NULL;
    }
    if (!d->range)
        return n;
    /* Each split replaces its parent by (lo, hi) in place: the order stays
     * the values' order. */
    for (size_t i = 0; i < d->nlayout; i++) {
        const Shardex__Internal__V1__IndexSplit *sp = d->layout[i];
        for (size_t k = 0; k < n; k++) {
            if (terms[k] != sp->term)
                continue;
            memmove(&terms[k + 2], &terms[k + 1], (n - k - 1) * sizeof(*terms));
            memmove(&lower[k + 2], &lower[k + 1], (n - k - 1) * sizeof(*lower));
            terms[k] = sp->lo;
            terms[k + 1] = sp->hi;
            lower[k + 1] = sp->at;
            n++;
            break;
        }
    }
    return n;
}

bool sx_ixkey_check_split(const sx_ixkey_def *d, uint32_t t, const Shardex__V1__Value *at,
                          char *msg, size_t cap)
{
    if (!d->global || !d->range) {
        snprintf(msg, cap,
                 "name: index \"%s\" is not range-partitioned (GLOBAL, --partitioning range)",
                 d->name);
        return false;
    }
    uint32_t count = sx_ixkey_term_count(d);
    uint32_t *terms = sx_malloc((count + 1) * sizeof(*terms));
    const Shardex__V1__Value **lower = sx_malloc((count + 1) * sizeof(*lower));
    size_t n = sx_ixkey_layout_order(d, terms, lower);
    size_t k = 0;
    while (k < n && terms[k] != t)
        k++;
    bool ok = false;
    sx_buf b = {0};
    if (k == n) {
        snprintf(msg, cap, "term_partition: %u is not a serving term partition of \"%s\"", t,
                 d->name);
    } else if (!at || !sx_ixkey_append_value(&b, d->is_int, at)) {
        snprintf(msg, cap, "at: not a %s value", d->is_int ? "int" : "string");
    } else if ((lower[k] && sx_ixkey_value_cmp(d->is_int, at, lower[k]) <= 0) ||
               (k + 1 < n && sx_ixkey_value_cmp(d->is_int, at, lower[k + 1]) >= 0)) {
        snprintf(msg, cap,
                 "at: outside the range of term partition %u (strictly inside it, so "
                 "that both halves own values)",
                 t);
    } else {
        ok = true;
    }
    sx_buf_free(&b);
    free(terms);
    free(lower);
    return ok;
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

bool sx_ixkey_plan_salt(const sx_ixkey_def *d, const Shardex__V1__Value *v, uint32_t ways,
                        uint32_t *terms, char *msg, size_t cap)
{
    if (!d->global) {
        snprintf(msg, cap, "name: index \"%s\" is not GLOBAL (only term partitions are salted)",
                 d->name);
        return false;
    }
    sx_buf b = {0};
    bool typed = v && sx_ixkey_append_value(&b, d->is_int, v);
    if (!typed) {
        sx_buf_free(&b);
        snprintf(msg, cap, "value: not a %s value", d->is_int ? "int" : "string");
        return false;
    }
    if (sx_ixkey_salt_of(d, v)) {
        sx_buf_free(&b);
        snprintf(msg, cap, "value: already salted in \"%s\"", d->name);
        return false;
    }
    uint32_t count = sx_ixkey_term_count(d);
    uint32_t *order = sx_malloc((count + 1) * sizeof(*order));
    const Shardex__V1__Value **lower = sx_malloc((count + 1) * sizeof(*lower));
    size_t m = sx_ixkey_layout_order(d, order, lower);
    bool ok = ways >= 2 && ways <= m;
    if (!ok) {
        snprintf(msg, cap, "ways: %u is not in [2, %zu] (the serving term partitions of \"%s\")",
                 ways, m, d->name);
    } else {
        uint32_t t0 = sx_ixkey_term_of(d, b.data, b.len);
        size_t k0 = 0;
        while (k0 < m && order[k0] != t0)
            k0++;
        for (uint32_t i = 0; i < ways; i++)
            terms[i] = order[(k0 + i) % m];
    }
    free(order);
    free(lower);
    sx_buf_free(&b);
    return ok;
}
