/* test_range_auto.c: split points chosen by the server (docs/indexes.md,
 * "Range partitioning"): a CreateIndex of a range-partitioned GLOBAL index
 * without split points, through a worker, over the raw RPC and the C
 * library, on real processes (coordinator + 3 workers, P=4):
 *  - an empty cluster: one term partition that owns every value; queries
 *    equal an in-test model (tests/support/query.h), and an online split
 *    grows it to two, each query then contacting only the partitions that
 *    cover it;
 *  - a cluster with data: the points are the data's quartiles (int) or
 *    quantiles at the default M (string, through libshardex), so that every
 *    term partition holds a share of the values; a range inside one
 *    partition contacts it alone; every answer equals the model; a field
 *    with one distinct value gets one term partition;
 *  - WorkerAdmin.ScanDocs's sample: as many documents as asked, each the
 *    field's value alone, values the partition holds, the same each time;
 *  - refusals, which write nothing: RANGE kept LOCAL only, too many term
 *    partitions, and the coordinator asked directly without points.
 * SHARDEX_TEST_SEED replays the values; SHARDEX_TEST_FILTER selects tests
 * (test_empty_cluster needs a cluster without documents: run it first).
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "query.h"
#include "rpc.h"
#include "shardex.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define P 4
#define NDOCS 400
#define VMAX 1000 /* size values are 0 .. VMAX - 1 */

static uint64_t seed;

typedef struct fx {
    sx_cluster *c;
    sx_model *model;
    sx_qtokens tokens;
    uint64_t rng;
} fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    if (!c)
        return -1;
    fx *f = calloc(1, sizeof(*f));
    f->c = c;
    f->model = sx_model_create();
    f->rng = seed;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_cluster_kill_all(f->c);
    sx_cluster_stop(f->c);
    free(f->c);
    sx_model_destroy(f->model);
    free(f);
    return 0;
}

static const char *via(fx *f)
{
    return f->c->worker_addr[sx_fx_rnd(&f->rng) % f->c->nworkers];
}

/* Puts docs in batches of 20 through random workers; the model follows. */
static void put_all(fx *f, const sx_qdoc *docs, size_t n)
{
    for (size_t i = 0; i < n; i += 20) {
        size_t k = n - i < 20 ? n - i : 20;
        sx_err err = {0};
        sx_status st = sx_q_put(f->c, via(f), docs + i, k, 10000, &f->tokens, NULL, &err);
        if (st != SX_OK)
            SX_FX_FAIL(f->c, "Put of documents %zu..%zu: %s: %s", i, i + k - 1, sx_status_name(st),
                       err.msg);
        for (size_t j = 0; j < k; j++)
            sx_model_put(f->model, &docs[i + j]);
    }
}

static void create(fx *f, const char *addr, const sx_qindex *ix)
{
    sx_err err = {0};
    sx_status st = sx_q_create_index(f->c, addr, ix, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex %s: %s: %s", ix->name, sx_status_name(st), err.msg);
    if (!sx_q_wait_ready(f->c, via(f), ix->name, WAIT_MS))
        SX_FX_FAIL(f->c, "index %s did not become READY", ix->name);
}

/* The index as ListIndexes shows it: its term partitions and split points
 * (ints into pts, at most cap). */
static uint32_t layout_of(fx *f, const char *name, int64_t *pts, size_t cap, size_t *npts)
{
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_err err = {0};
    sx_status st = sx_q_list_indexes(f->c, via(f), &l, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "ListIndexes: %s: %s", sx_status_name(st), err.msg);
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, name);
    if (!ix || ix->spec->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE)
        SX_FX_FAIL(f->c, "index %s: not listed as range-partitioned", name);
    uint32_t m = ix->spec->term_partitions;
    *npts = ix->spec->n_split_points;
    for (size_t i = 0; i < *npts && i < cap; i++)
        pts[i] = ix->spec->split_points[i]->i;
    sx_rpc_free(&l->base);
    return m;
}

static sx_qmatch range_of(bool has_min, int64_t lo, bool has_max, int64_t hi)
{
    return (sx_qmatch){.range = true,
                       .has_min = has_min,
                       .min = sx_qval_int(lo),
                       .has_max = has_max,
                       .max = sx_qval_int(hi)};
}

typedef struct ask {
    fx *f;
    const char *index, *field;
    bool is_int;
    sx_qmatch m;
    uint32_t want_contacted;
    uint32_t got_contacted;
    size_t hits;
} ask;

/* The GLOBAL query, every page, with the latest tokens: equal to the model
 * (a failure otherwise), and true once it contacted want_contacted term
 * partitions (a worker whose map is older may plan with the layout before a
 * split: polled). */
static bool ask_cond(void *arg)
{
    ask *a = arg;
    sx_qreq q = {.index = a->index,
                 .match = a->m,
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1000,
                 .after = &a->f->tokens};
    sx_qpages pg;
    sx_err err = {0};
    char d[160], why[256];
    sx_status st = sx_q_query_all(a->f->c, via(a->f), &q, &pg, &err);
    if (st != SX_OK)
        SX_FX_FAIL(a->f->c, "query %s: %s: %s", sx_qreq_fmt(&q, d, sizeof(d)), sx_status_name(st),
                   err.msg);
    sx_qhits want = {0};
    sx_model_expect(a->f->model, a->field, a->is_int, &q.match, &want);
    bool same = sx_qhits_equal(&pg.hits, &want, why, sizeof(why));
    a->hits = pg.hits.n;
    a->got_contacted = pg.contacted;
    sx_qhits_free(&want);
    sx_qhits_free(&pg.hits);
    if (!same)
        SX_FX_FAIL(a->f->c, "query %s: %s", sx_qreq_fmt(&q, d, sizeof(d)), why);
    return pg.contacted == a->want_contacted;
}

static size_t expect_query(fx *f, const char *index, const char *field, bool is_int, sx_qmatch m,
                           uint32_t contacted)
{
    ask a = {.f = f,
             .index = index,
             .field = field,
             .is_int = is_int,
             .m = m,
             .want_contacted = contacted};
    SX_FX_WAIT(f->c, ask_cond, &a, WAIT_MS,
               "index %s: a query contacted %u term partitions, want %u", index, a.got_contacted,
               contacted);
    return a.hits;
}

/* --------------------------------------------------------------- tests -- */

typedef struct split_wait {
    fx *f;
    uint32_t done;
} split_wait;

static bool split_done_cond(void *arg)
{
    split_wait *w = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(w->f->c, via(w->f), &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, "n_r");
    w->done = ix ? ix->splits_done : 0;
    sx_rpc_free(&l->base);
    return w->done == 1;
}

/* No documents yet: one term partition; an online split grows it. */
static void test_empty_cluster(void **state)
{
    fx *f = *state;
    sx_qindex ix = {.name = "n_r", .field = "n", .is_int = true, .global = true, .range = true};
    create(f, via(f), &ix);
    int64_t pts[4];
    size_t npts;
    uint32_t m = layout_of(f, "n_r", pts, 4, &npts);
    if (m != 1 || npts != 0)
        SX_FX_FAIL(f->c, "empty cluster: %u term partitions and %zu split points, want 1 and 0", m,
                   npts);
    sx_qdoc docs[60];
    for (size_t i = 0; i < 60; i++) {
        memset(&docs[i], 0, sizeof(docs[i]));
        snprintf(docs[i].id, SX_QID, "n-%03zu", i);
        sx_qdoc_add(&docs[i], "n", sx_qval_int((int64_t)(sx_fx_rnd(&f->rng) % 100)));
    }
    put_all(f, docs, 60);
    expect_query(f, "n_r", "n", true, range_of(true, 20, true, 70), 1);
    expect_query(f, "n_r", "n", true, range_of(false, 0, false, 0), 1);

    Shardex__V1__SplitIndexRequest req = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    Shardex__V1__Value at = SHARDEX__V1__VALUE__INIT;
    at.kind_case = SHARDEX__V1__VALUE__KIND_I;
    at.i = 50;
    req.name = "n_r";
    req.term_partition = 0;
    req.at = &at;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    sx_status st = sx_rpc_invoke(f->c->rpc, via(f), &shardex__v1__shardex__descriptor, "SplitIndex",
                                 &req.base, &resp, &o, &err);
    sx_rpc_free(resp);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "SplitIndex n_r at 50: %s: %s", sx_status_name(st), err.msg);
    split_wait w = {.f = f};
    SX_FX_WAIT(f->c, split_done_cond, &w, WAIT_MS, "n_r: %u splits done, want 1", w.done);
    expect_query(f, "n_r", "n", true, range_of(true, 0, true, 40), 1);
    expect_query(f, "n_r", "n", true, range_of(true, 55, false, 0), 1);
    expect_query(f, "n_r", "n", true, range_of(true, 20, true, 70), 2);
}

/* With data: points from the data's quantiles, every partition a share. */
static void test_points_from_data(void **state)
{
    fx *f = *state;
    static const char *const one[] = {"x"};
    sx_qdoc *docs = calloc(NDOCS, sizeof(*docs));
    for (size_t i = 0; i < NDOCS; i++) {
        snprintf(docs[i].id, SX_QID, "doc-%03zu", i);
        sx_qdoc_add(&docs[i], "size", sx_qval_int((int64_t)(sx_fx_rnd(&f->rng) % VMAX)));
        char color[3] = {(char)('a' + sx_fx_rnd(&f->rng) % 26),
                         (char)('a' + sx_fx_rnd(&f->rng) % 26), 0};
        sx_qdoc_add(&docs[i], "color", sx_qval_str(color));
        sx_qdoc_add(&docs[i], "one", sx_qval_str(one[0]));
    }
    put_all(f, docs, NDOCS);
    free(docs);

    /* Raw RPC, M = 4: three points, each term partition a share of the values. */
    sx_qindex size_r = {.name = "size_r",
                        .field = "size",
                        .is_int = true,
                        .global = true,
                        .range = true,
                        .term_partitions = 4};
    create(f, via(f), &size_r);
    int64_t pts[8];
    size_t npts;
    uint32_t m = layout_of(f, "size_r", pts, 8, &npts);
    if (m != 4 || npts != 3 || !(pts[0] < pts[1] && pts[1] < pts[2]))
        SX_FX_FAIL(f->c, "size_r: %u term partitions, %zu points, want 4 and 3 increasing", m,
                   npts);
    fprintf(stderr, "  size_r split at %" PRId64 ",%" PRId64 ",%" PRId64 "\n", pts[0], pts[1],
            pts[2]);
    size_t total = 0;
    for (size_t t = 0; t < 4; t++) {
        sx_qmatch r = range_of(t > 0, t > 0 ? pts[t - 1] : 0, t < 3, t < 3 ? pts[t] - 1 : 0);
        size_t n = expect_query(f, "size_r", "size", true, r, 1);
        /* Every value was sampled (NDOCS is below the sample's size): the
         * quartiles of the data, so a quarter each, give or take repeats. */
        if (n < NDOCS / 8 || n > NDOCS / 2)
            SX_FX_FAIL(f->c, "size_r: term partition %zu holds %zu of %d values", t, n, NDOCS);
        total += n;
    }
    assert_int_equal(total, NDOCS);
    expect_query(f, "size_r", "size", true, range_of(true, pts[0], true, pts[1]), 2);
    expect_query(f, "size_r", "size", true, range_of(false, 0, false, 0), 4);

    /* The C library, M the cluster's default (P): string points in key order. */
    const char *servers[3] = {f->c->worker_addr[0], f->c->worker_addr[1], f->c->worker_addr[2]};
    sx_client_opts co = {.servers = servers, .nservers = 3};
    sx_client *cl = NULL;
    sx_err err = {0};
    if (sx_client_open(&co, &cl, &err) != SX_OK)
        SX_FX_FAIL(f->c, "sx_client_open: %s", err.msg);
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "color_r";
    spec.field = "color";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.global = true;
    spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    Shardex__V1__CreateIndexResponse *cr = NULL;
    sx_status st = sx_client_create_index(cl, &spec, &cr, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "sx_client_create_index color_r: %s: %s", sx_status_name(st), err.msg);
    const Shardex__V1__IndexSpec *got = cr->index->spec;
    if (got->term_partitions != P || got->n_split_points != P - 1)
        SX_FX_FAIL(f->c, "color_r: %u term partitions, %zu points, want %d and %d",
                   got->term_partitions, got->n_split_points, P, P - 1);
    char lo[8], hi[8];
    snprintf(lo, sizeof(lo), "%s", got->split_points[0]->s);
    snprintf(hi, sizeof(hi), "%s", got->split_points[1]->s);
    for (size_t i = 1; i < got->n_split_points; i++)
        if (strcmp(got->split_points[i - 1]->s, got->split_points[i]->s) >= 0)
            SX_FX_FAIL(f->c, "color_r: points %s, %s not increasing", got->split_points[i - 1]->s,
                       got->split_points[i]->s);
    sx_client_free(cr);
    sx_client_close(cl);
    if (!sx_q_wait_ready(f->c, via(f), "color_r", WAIT_MS))
        SX_FX_FAIL(f->c, "index color_r did not become READY");
    sx_qmatch r = {.range = true,
                   .has_min = true,
                   .min = sx_qval_str(lo),
                   .has_max = true,
                   .max = sx_qval_str(lo)};
    if (expect_query(f, "color_r", "color", false, r, 1) == 0)
        SX_FX_FAIL(f->c, "color_r: no document holds its first split point %s", lo);
    r.max = sx_qval_str(hi);
    expect_query(f, "color_r", "color", false, r, 2);

    /* One distinct value: nothing to split at, one term partition. */
    sx_qindex one_r = {.name = "one_r", .field = "one", .global = true, .range = true};
    create(f, via(f), &one_r);
    m = layout_of(f, "one_r", pts, 8, &npts);
    if (m != 1 || npts != 0)
        SX_FX_FAIL(f->c, "one_r: %u term partitions, %zu points, want 1 and 0", m, npts);
    r.min = r.max = sx_qval_str("x");
    assert_int_equal(expect_query(f, "one_r", "one", false, r, 1), NDOCS);
}

/* WorkerAdmin.ScanDocs of partition p on its leader with sample and field. */
static Shardex__Internal__V1__ScanDocsResponse *scan(fx *f, uint32_t p, uint32_t sample,
                                                     const char *field)
{
    sx_cluster_part_view v = sx_cluster_part_view_of(f->c, p);
    if (!v.ok || v.leader == SX_CLUSTER_NONE)
        SX_FX_FAIL(f->c, "partition %u: no leader in the coordinator's map", p);
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = p;
    req.sample = sample;
    req.field = (char *)field;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    sx_status st = sx_rpc_invoke(f->c->rpc, f->c->worker_addr[v.leader],
                                 &shardex__internal__v1__worker_admin__descriptor, "ScanDocs",
                                 &req.base, &resp, &o, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "ScanDocs p=%u sample=%u field=%s: %s: %s", p, sample, field,
                   sx_status_name(st), err.msg);
    return (void *)resp;
}

/* The sample ScanDocs gives the sampler (worker/sample.h): as many documents
 * as asked, each the field's value alone, values the partition holds, the
 * same twice over; all of them when fewer; whole documents without a field. */
static void test_scan_sample(void **state)
{
    fx *f = *state;
    size_t in_p0 = 0, sized = 0;
    int64_t vals[NDOCS];
    for (size_t i = 0; i < NDOCS + 60; i++) {
        char id[SX_QID];
        snprintf(id, sizeof(id), i < NDOCS ? "doc-%03zu" : "n-%03zu", i < NDOCS ? i : i - NDOCS);
        const sx_qdoc *d = sx_model_get(f->model, id);
        if (!d || sx_partition_of(id, strlen(id), P) != 0)
            continue;
        in_p0++;
        if (i < NDOCS)
            vals[sized++] = d->f[0].v.i; /* size, the first field */
    }
    if (sized < 20)
        SX_FX_FAIL(f->c, "partition 0 holds %zu documents with size: too few to sample", sized);
    Shardex__Internal__V1__ScanDocsResponse *all = scan(f, 0, 0, "");
    assert_int_equal(all->n_docs, in_p0);
    sx_rpc_free(&all->base);
    Shardex__Internal__V1__ScanDocsResponse *a = scan(f, 0, 0, "size"), *b;
    assert_int_equal(a->n_docs, sized);
    sx_rpc_free(&a->base);
    a = scan(f, 0, 10, "size");
    b = scan(f, 0, 10, "size");
    assert_int_equal(a->n_docs, 10);
    assert_int_equal(b->n_docs, 10);
    for (size_t i = 0; i < 10; i++) {
        const Shardex__V1__Document *d = a->docs[i]->doc;
        if (d->id[0] || d->n_fields != 1 || strcmp(d->fields[0]->name, "size") != 0 ||
            d->fields[0]->value->kind_case != SHARDEX__V1__VALUE__KIND_I)
            SX_FX_FAIL(f->c, "sampled document %zu: not the size value alone", i);
        bool held = false;
        for (size_t k = 0; k < sized; k++)
            held |= vals[k] == d->fields[0]->value->i;
        if (!held || b->docs[i]->doc->fields[0]->value->i != d->fields[0]->value->i)
            SX_FX_FAIL(f->c, "sampled value %zu: %" PRId64 " not held, or not the same twice", i,
                       d->fields[0]->value->i);
    }
    sx_rpc_free(&a->base);
    sx_rpc_free(&b->base);
    a = scan(f, 0, 10, "");
    assert_int_equal(a->n_docs, 10);
    for (size_t i = 0; i < 10; i++)
        assert_non_null(sx_model_get(f->model, a->docs[i]->doc->id));
    sx_rpc_free(&a->base);
}

static void expect_refused(fx *f, const char *addr, const sx_qindex *ix, const char *needle)
{
    sx_err err = {0};
    sx_status st = sx_q_create_index(f->c, addr, ix, &err);
    if (st != SX_INVALID_ARGUMENT || !strstr(err.msg, needle))
        SX_FX_FAIL(f->c, "CreateIndex %s through %s: %s \"%s\", want INVALID_ARGUMENT with \"%s\"",
                   ix->name, addr, sx_status_name(st), err.msg, needle);
    fprintf(stderr, "  refused as it should: %s\n", err.msg);
}

static void test_refusals(void **state)
{
    fx *f = *state;
    sx_qindex local = {
        .name = "bad1", .field = "size", .is_int = true, .local = true, .range = true};
    expect_refused(f, via(f), &local, "RANGE is for an index kept GLOBAL");
    sx_qindex many = {.name = "bad2",
                      .field = "size",
                      .is_int = true,
                      .global = true,
                      .range = true,
                      .term_partitions = 5000};
    expect_refused(f, via(f), &many, "spec.term_partitions: 5000 is above 4096");
    /* The coordinator does not sample: asked directly, it wants the points. */
    sx_qindex direct = {.name = "bad3",
                        .field = "size",
                        .is_int = true,
                        .global = true,
                        .range = true,
                        .term_partitions = 3};
    expect_refused(f, f->c->coord_addr, &direct, "spec.split_points: required");
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_err err = {0};
    if (sx_q_list_indexes(f->c, via(f), &l, &err) != SX_OK)
        SX_FX_FAIL(f->c, "ListIndexes: %s", err.msg);
    for (size_t i = 0; i < l->n_indexes; i++)
        if (strncmp(l->indexes[i]->spec->name, "bad", 3) == 0)
            SX_FX_FAIL(f->c, "refused index %s exists", l->indexes[i]->spec->name);
    sx_rpc_free(&l->base);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_cluster),
        cmocka_unit_test(test_points_from_data),
        cmocka_unit_test(test_scan_sample),
        cmocka_unit_test(test_refusals),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
