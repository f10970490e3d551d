/* sample.c: see sample.h. */
#include "sample.h"

#include "ixkey.h"
#include "mem.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"

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

static void keep(sample *s, const Shardex__V1__Document *doc, const sx_sample_opts *o)
{
    for (size_t i = 0; doc && i < doc->n_fields; i++) {
        const Shardex__V1__Field *f = doc->fields[i];
        if (!f || !f->name || strcmp(f->name, o->field) != 0 || !f->value ||
            f->value->kind_case !=
                (o->is_int ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S))
            continue;
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 1024;
            s->v = sx_realloc(s->v, s->cap * sizeof(*s->v));
        }
        s->v[s->n++] = *f->value;
    }
}

static sx_status scan_all(const sx_sample_opts *o, const Shardex__Internal__V1__ClusterMap *m,
                          sample *s, Shardex__Internal__V1__ScanDocsResponse **scans, sx_err *err)
{
    size_t max = o->max_values ? o->max_values : 100000;
    for (uint32_t p = 0; p < m->n_partitions; p++) {
        const char *addr = leader_addr(m, p);
        if (!addr)
            return sx_err_set(err, SX_UNAVAILABLE, "partition %u has no leader", p);
        Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
        req.partition = p;
        sx_rpc_call_opts co = {.timeout_ms = o->timeout_ms, .idempotent = true};
        sx_status st =
            sx_rpc_invoke(o->client, addr, &shardex__internal__v1__worker_admin__descriptor,
                          "ScanDocs", &req.base, (ProtobufCMessage **)&scans[p], &co, err);
        if (st != SX_OK)
            return sx_err_prefix(err, "ScanDocs of partition %u from %s", p, addr);
        /* Every k-th document, k from this partition's share of max. */
        size_t n = scans[p]->n_docs, share = max / m->n_partitions + 1;
        size_t step = n > share ? n / share : 1;
        for (size_t i = 0; i < n; i += step)
            keep(s, scans[p]->docs[i] ? scans[p]->docs[i]->doc : NULL, o);
    }
    return SX_OK;
}

sx_status sx_sample_splits(const sx_sample_opts *o, Shardex__V1__IndexSpec *spec, sx_err *err)
{
    Shardex__Internal__V1__GetMapRequest mreq = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    Shardex__Internal__V1__ClusterMap *m = NULL;
    sx_rpc_call_opts co = {.timeout_ms = o->timeout_ms, .idempotent = true};
    sx_status st =
        sx_rpc_invoke(o->client, o->server, &shardex__internal__v1__worker_admin__descriptor,
                      "GetMap", &mreq.base, (ProtobufCMessage **)&m, &co, err);
    if (st != SX_OK)
        return sx_err_prefix(err, "GetMap from %s", o->server);
    uint32_t M = o->m ? o->m : m->settings ? m->settings->term_partitions : 0;
    sample s = {0};
    Shardex__Internal__V1__ScanDocsResponse **scans =
        sx_calloc(m->n_partitions + 1, sizeof(*scans));
    st = M < 2 ? sx_err_set(err, SX_INVALID_ARGUMENT, "term partitions: %u cannot be split", M)
               : scan_all(o, m, &s, scans, err);
    if (st == SX_OK) {
        spec->split_points = sx_calloc(M, sizeof(*spec->split_points));
        spec->n_split_points = sx_sample_pick_splits(s.v, s.n, o->is_int, M, spec->split_points, M);
        if (!spec->n_split_points)
            st = sx_err_set(err, SX_FAILED_PRECONDITION,
                            "field \"%s\": too few distinct values to split", o->field);
    }
    for (uint32_t p = 0; p < m->n_partitions; p++)
        sx_rpc_free(scans[p] ? &scans[p]->base : NULL);
    free(scans);
    free(s.v);
    sx_rpc_free(&m->base);
    return st;
}
