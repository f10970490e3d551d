/* sample.c: see sample.h. */
#include "sample.h"

#include "clock.h"
#include "ixkey.h"
#include "mem.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "sx_limits.h"

#include <stdlib.h>
#include <string.h>

/* qsort takes no argument: one comparator per type. */
static int int_cmp(const void *a, const void *b)
{
    return sx_ixkey_value_cmp(true, a, b);
}

static int str_cmp(const void *a, const void *b)
{
    return sx_ixkey_value_cmp(false, a, b);
}

size_t sx_sample_pick_splits(Shardex__V1__Value *vals, size_t n, bool is_int, uint32_t m,
                             Shardex__V1__Value **out, size_t cap)
{
    qsort(vals, n, sizeof(*vals), is_int ? int_cmp : str_cmp);
    size_t k = 0, j = 0;
    for (uint32_t t = 1; t < m && n && k < cap; t++) {
        /* The value at rank t * n / m or, when it repeats the point before
         * (or the smallest value), the next larger one. */
        const Shardex__V1__Value *prev = k ? out[k - 1] : &vals[0];
        if (j < (size_t)t * n / m)
            j = (size_t)t * n / m;
        while (j < n && sx_ixkey_value_cmp(is_int, &vals[j], prev) <= 0)
            j++;
        if (j == n)
            break;
        out[k++] = sx_ixkey_value_dup(&vals[j]);
    }
    return k;
}

uint32_t sx_sample_per_partition(uint32_t partitions, size_t field_len, bool is_int)
{
    /* One StoredDoc as ScanDocs projects it: the field's name and one value,
     * with room for the tags, lengths and version. */
    size_t doc = field_len + (is_int ? 10 : SX_STRING_VALUE_MAX_BYTES) + 32;
    size_t by_bytes = SX_SAMPLE_PARTITION_BYTES / doc;
    size_t by_count = SX_SAMPLE_VALUES / (partitions ? partitions : 1) + 1;
    size_t n = by_bytes < by_count ? by_bytes : by_count;
    return n ? (uint32_t)n : 1;
}

static const char *leader_addr(const Shardex__Internal__V1__ClusterMap *m, uint32_t p)
{
    int32_t w = p < m->n_partitions && m->partitions[p] ? m->partitions[p]->leader : -1;
    if (w < 0 || (size_t)w >= m->n_workers || !m->workers[w] || !m->workers[w]->address ||
        !*m->workers[w]->address)
        return NULL;
    return m->workers[w]->address;
}

typedef struct sample {
    Shardex__V1__Value *v; /* strings borrowed from the scans, kept until the end */
    size_t n, cap;
} sample;

static void keep(sample *s, const Shardex__V1__Document *doc, bool is_int)
{
    for (size_t i = 0; doc && i < doc->n_fields; i++) {
        const Shardex__V1__Field *f = doc->fields[i];
        if (!f || !f->value ||
            f->value->kind_case !=
                (is_int ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S))
            continue;
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->v = sx_realloc(s->v, s->cap * sizeof(*s->v));
        }
        s->v[s->n++] = *f->value;
    }
}

static sx_status scan_all(const sx_sample_opts *o, const Shardex__V1__IndexSpec *spec, sample *s,
                          Shardex__Internal__V1__ScanDocsResponse **scans, sx_err *err)
{
    const Shardex__Internal__V1__ClusterMap *m = o->map;
    bool is_int = spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.sample = sx_sample_per_partition((uint32_t)m->n_partitions, strlen(spec->field), is_int);
    req.field = spec->field;
    for (uint32_t p = 0; p < m->n_partitions; p++) {
        const char *addr = leader_addr(m, p);
        if (!addr)
            return sx_err_set(err, SX_UNAVAILABLE, "partition %u has no leader", p);
        uint64_t now = sx_clock_now_ms();
        if (now >= o->deadline_ms)
            return sx_err_set(err, SX_DEADLINE_EXCEEDED,
                              "sampling field \"%s\": out of time before partition %u", spec->field,
                              p);
        req.partition = p;
        sx_rpc_call_opts co = {.timeout_ms = o->deadline_ms - now, .idempotent = true};
        sx_status st =
            sx_rpc_invoke(o->client, addr, &shardex__internal__v1__worker_admin__descriptor,
                          "ScanDocs", &req.base, (ProtobufCMessage **)&scans[p], &co, err);
        if (st != SX_OK)
            return sx_err_prefix(err, "sampling field \"%s\": ScanDocs of partition %u from %s",
                                 spec->field, p, addr);
        for (size_t i = 0; i < scans[p]->n_docs; i++)
            keep(s, scans[p]->docs[i] ? scans[p]->docs[i]->doc : NULL, is_int);
    }
    return SX_OK;
}

sx_status sx_sample_splits(const sx_sample_opts *o, Shardex__V1__IndexSpec *spec, sx_err *err)
{
    const Shardex__Internal__V1__ClusterMap *m = o->map;
    uint32_t M = spec->term_partitions ? spec->term_partitions
                 : m->settings         ? m->settings->term_partitions
                                       : 1;
    spec->n_split_points = 0;
    spec->split_points = NULL;
    spec->term_partitions = 1;
    if (M < 2)
        return SX_OK;
    sample s = {0};
    Shardex__Internal__V1__ScanDocsResponse **scans =
        sx_calloc(m->n_partitions + 1, sizeof(*scans));
    sx_status st = scan_all(o, spec, &s, scans, err);
    if (st == SX_OK) {
        spec->split_points = sx_calloc(M, sizeof(*spec->split_points));
        spec->n_split_points =
            sx_sample_pick_splits(s.v, s.n, spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT,
                                  M, spec->split_points, M - 1);
        spec->term_partitions = (uint32_t)spec->n_split_points + 1;
    }
    for (uint32_t p = 0; p < m->n_partitions; p++)
        sx_rpc_free(scans[p] ? &scans[p]->base : NULL);
    free(scans);
    free(s.v);
    return st;
}

void sx_sample_free(Shardex__V1__IndexSpec *spec)
{
    for (size_t i = 0; i < spec->n_split_points; i++)
        sx_ixkey_value_free(spec->split_points[i]);
    free(spec->split_points);
    spec->split_points = NULL;
    spec->n_split_points = 0;
}
