/* sample.c: see sample.h. */
#include "sample.h"

#include "clock.h"
#include "fanout.h"
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

/* One ScanDocs per log partition, all at once, to its leader (the fan-out
 * re-aims a call whose leader moved); their values of the index's type into s. */
static sx_status scan_all(const sx_sample_opts *o, const Shardex__V1__IndexSpec *spec, uint32_t P,
                          sample *s, sx_fanout_call *calls, sx_err *err)
{
    bool is_int = spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    uint32_t per = sx_sample_per_partition(P, strlen(spec->field), is_int);
    Shardex__Internal__V1__ScanDocsRequest *reqs = sx_calloc(P, sizeof(*reqs));
    uint32_t *parts = sx_calloc(P, sizeof(*parts));
    for (uint32_t p = 0; p < P; p++) {
        shardex__internal__v1__scan_docs_request__init(&reqs[p]);
        reqs[p].partition = parts[p] = p;
        reqs[p].sample = per;
        reqs[p].field = spec->field;
        calls[p].req = &reqs[p].base;
    }
    uint64_t now = sx_clock_now_ms();
    sx_status st =
        sx_fanout_run(o->rpc, o->here, o->member, &shardex__internal__v1__worker_admin__descriptor,
                      "ScanDocs", calls, P, sx_fanout_aim_leaders, parts, o->deadline_ms,
                      o->deadline_ms > now ? o->deadline_ms - now : 1, err);
    for (uint32_t p = 0; st == SX_OK && p < P; p++) {
        const Shardex__Internal__V1__ScanDocsResponse *r = (const void *)calls[p].resp;
        for (size_t i = 0; i < r->n_docs; i++)
            keep(s, r->docs[i] ? r->docs[i]->doc : NULL, is_int);
    }
    free(parts);
    free(reqs);
    return st == SX_OK ? SX_OK : sx_err_prefix(err, "sampling field \"%s\"", spec->field);
}

sx_status sx_sample_splits(const sx_sample_opts *o, Shardex__V1__IndexSpec *spec, sx_err *err)
{
    sx_membership_view v;
    sx_membership_get_view(o->member, &v);
    if (!v.map)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(v.map);
    uint32_t P = (uint32_t)m->n_partitions;
    uint32_t M = spec->term_partitions ? spec->term_partitions
                 : m->settings         ? m->settings->term_partitions
                                       : 1;
    sx_partmap_release(v.map);
    spec->n_split_points = 0;
    spec->split_points = NULL;
    spec->term_partitions = 1;
    if (M < 2 || P == 0)
        return SX_OK;
    sample s = {0};
    sx_fanout_call *calls = sx_calloc(P, sizeof(*calls));
    sx_status st = scan_all(o, spec, P, &s, calls, err);
    if (st == SX_OK) {
        spec->split_points = sx_calloc(M, sizeof(*spec->split_points));
        spec->n_split_points =
            sx_sample_pick_splits(s.v, s.n, spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT,
                                  M, spec->split_points, M - 1);
        spec->term_partitions = (uint32_t)spec->n_split_points + 1;
    }
    sx_fanout_free(calls, P);
    free(calls);
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
