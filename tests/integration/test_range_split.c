/* test_range_split.c: online splits of a range-partitioned GLOBAL index's
 * term partitions (docs/indexes.md "Online split") with real processes
 * (coordinator + 3 workers, P=4, R=3, min_isr=2), against an in-test model
 * (tests/support/query.h) of random puts, overwrites and deletes:
 *  - SplitIndex refuses with a clear error: not range-partitioned, a term
 *    partition that does not serve, a value outside its range, a split in
 *    progress;
 *  - a split while a writer writes: read-your-writes holds before, during
 *    and after the swap (a put's token, then an eq query through another
 *    worker); a second split at the default median (the owner's count);
 *    every query equals the model, a narrow range contacts one partition,
 *    ListIndexes shows the layout, and `shardex verify` is clean;
 *  - a paged query across the swap: no hit skipped or repeated;
 *  - the coordinator's --term-split-entries splits a term partition by itself
 *    at its median;
 *  - its --term-split-load does the same for the one partition that queries
 *    load (no size trigger), every query exact against the model throughout;
 *  - kill -9 of a shadow's owner and of a log partition's leader
 *    during a split, with the writer running: the split completes and the
 *    index and verify are right.
 * SHARDEX_TEST_SEED replays the choices; SHARDEX_TEST_FILTER selects tests.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "modelfx.h"
#include "query.h"
#include "rpc.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define FAILOVER_MS 60000
#define P 4
#define NIDS 200
#define VMAX 1000 /* values are 0 .. VMAX - 1 */

static uint64_t seed;

/* t0 < 250 <= t1 < 500 <= t2 < 750 <= t3. */
static const sx_qindex IX = {
    .name = "size_r",
    .field = "size",
    .is_int = true,
    .global = true,
    .nsplits = 3,
    .splits = {{.is_int = true, .i = 250}, {.is_int = true, .i = 500}, {.is_int = true, .i = 750}}};
static const sx_qindex IX_HASH = {
    .name = "size_h", .field = "size", .is_int = true, .global = true, .term_partitions = 2};

/* The model fixture (modelfx.h): cluster, model, tokens, writer thread. */
typedef sx_mfx fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    return sx_mfx_setup(state, &o);
}

/* ------------------------------------------------------------------ writes -- */

static void random_doc(uint64_t *s, const char *id, sx_qdoc *d, int64_t lo, int64_t n)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    uint32_t nv = sx_fx_rnd(s) % 8 == 0 ? 2 : 1;
    for (uint32_t k = 0; k < nv; k++)
        sx_qdoc_add(d, "size", sx_qval_int(lo + (int64_t)(sx_fx_rnd(s) % (uint64_t)n)));
}

/* A put of 1-4 documents (ids prefix-NNN, values in [lo, lo + n)) or a delete of 1-2 ids,
 * retried until acknowledged, then applied to the model. *toks: its tokens.
 * False with why when it could not be written within WAIT_MS. */
static bool write_one(fx *f, uint64_t *s, const char *prefix, int64_t lo, int64_t n,
                      sx_qtokens *toks, sx_qdoc *last, char *why, size_t cap)
{
    bool del = sx_fx_rnd(s) % 5 == 0;
    size_t k = 1 + sx_fx_rnd(s) % (del ? 2 : 4);
    sx_qdoc docs[4];
    char ids[4][SX_QID];
    for (size_t i = 0; i < k; i++) {
        sx_mfx_random_id(s, prefix, NIDS, ids, i);
        if (!del)
            random_doc(s, ids[i], &docs[i], lo, n);
    }
    if (!sx_mfx_write(f, s, del ? NULL : docs, (const char(*)[SX_QID])ids, k, toks, why, cap))
        return false;
    if (last)
        *last = del ? (sx_qdoc){0} : docs[0];
    return true;
}

static void random_writes(fx *f, int n)
{
    char why[512];
    sx_qtokens t;
    for (int i = 0; i < n; i++)
        if (!write_one(f, &f->rng, "doc", 0, VMAX, &t, NULL, why, sizeof(why)))
            SX_FX_FAIL(f->c, "write %d: %s", i, why);
}

/* The writer thread's write: anywhere in [0, VMAX). */
static bool writer_write(fx *f, uint64_t *s, char *why, size_t cap)
{
    sx_qtokens t;
    return write_one(f, s, "doc", 0, VMAX, &t, NULL, why, cap);
}

/* ---------------------------------------------------------------- indexes -- */

/* SplitIndex through a running worker; at < 0: the default (the median). */
static sx_status split(fx *f, const char *name, uint32_t t, int64_t at, sx_err *err)
{
    Shardex__V1__SplitIndexRequest req = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = at;
    req.name = (char *)name;
    req.term_partition = t;
    req.at = at >= 0 ? &v : NULL;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    sx_status st =
        sx_rpc_invoke(f->c->rpc, sx_mfx_pick(f, &f->rng).s, &shardex__v1__shardex__descriptor,
                      "SplitIndex", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

static void expect_refused(fx *f, const char *name, uint32_t t, int64_t at, sx_status want,
                           const char *msg_part)
{
    sx_err err = {0};
    sx_status st = split(f, name, t, at, &err);
    if (st != want || !strstr(err.msg, msg_part))
        SX_FX_FAIL(f->c, "split %s t=%u at=%" PRId64 ": %s \"%s\", want %s with \"%s\"", name, t,
                   at, sx_status_name(st), err.msg, sx_status_name(want), msg_part);
    fprintf(stderr, "  refused as it should: %s\n", err.msg);
}

typedef struct layout_wait {
    fx *f;
    uint32_t done, in_progress; /* wanted */
    uint32_t got_done, got_progress;
    size_t serving;
    uint32_t layout[16];
    int64_t bounds[16];
} layout_wait;

static bool layout_cond(void *arg)
{
    layout_wait *w = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(w->f->c, sx_mfx_pick(w->f, &w->f->rng).s, &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, IX.name);
    bool ok = false;
    if (ix) {
        w->got_done = ix->splits_done;
        w->got_progress = ix->splits_in_progress;
        w->serving = ix->n_term_layout;
        for (size_t i = 0; i < ix->n_term_layout && i < 16; i++)
            w->layout[i] = ix->term_layout[i];
        for (size_t i = 0; i < ix->n_layout_bounds && i < 16; i++)
            w->bounds[i] = ix->layout_bounds[i]->i;
        ok = ix->splits_done == w->done && ix->splits_in_progress == w->in_progress;
    }
    sx_rpc_free(&l->base);
    return ok;
}

/* Waits until ListIndexes says `done` splits done and `in_progress` in progress. */
static layout_wait wait_layout(fx *f, uint32_t done, uint32_t in_progress, uint64_t timeout_ms)
{
    layout_wait w = {.f = f, .done = done, .in_progress = in_progress};
    SX_FX_WAIT(f->c, layout_cond, &w, timeout_ms,
               "index %s: %u splits done and %u in progress, want %u and %u", IX.name, w.got_done,
               w.got_progress, done, in_progress);
    return w;
}

/* ----------------------------------------------------------------- queries -- */

/* Every match below, GLOBAL, paged, with the latest tokens: equal to the model. */
static void check_all(fx *f)
{
    sx_qmatch ms[] = {
        sx_mfx_int_range(-1, -1),   sx_mfx_int_range(0, 249),   sx_mfx_int_range(250, 399),
        sx_mfx_int_range(380, 420), sx_mfx_int_range(400, 499), sx_mfx_int_range(450, -1),
        {.eq = sx_qval_int(300)},   {.eq = sx_qval_int(400)},   {.eq = sx_qval_int(777)}};
    sx_mfx_check_matches(f, &IX, ms, sizeof(ms) / sizeof(ms[0]));
}

/* Writes values in [lo, lo + n) and reads each put back at once through
 * another worker with its token (GLOBAL eq): read-your-writes. */
static void ryw_rounds(fx *f, int rounds, int64_t lo, int64_t n)
{
    char why[512], d[160];
    for (int i = 0; i < rounds; i++) {
        sx_qtokens tok;
        sx_qdoc doc;
        /* Ids of their own: the writer thread never overwrites them. */
        if (!write_one(f, &f->rng, "ryw", lo, n, &tok, &doc, why, sizeof(why)))
            SX_FX_FAIL(f->c, "ryw write %d: %s", i, why);
        if (!doc.id[0])
            continue; /* a delete */
        sx_qreq q = {.index = IX.name,
                     .match = {.eq = doc.f[0].v},
                     .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                     .limit = 1000,
                     .after = &tok};
        if (!sx_mfx_query_has(f, &q, doc.id))
            SX_FX_FAIL(f->c,
                       "ryw %d: %s put with value %" PRId64 ", query %s with its token "
                       "does not see it",
                       i, doc.id, doc.f[0].v.i, sx_qreq_fmt(&q, d, sizeof(d)));
    }
}

/* ------------------------------------------------------------------ tests -- */

/* A GLOBAL query through one worker contacts 3 term partitions. */
typedef struct contacted_wait {
    fx *f;
    uint32_t worker;
    sx_qmatch m;
    uint32_t got;
} contacted_wait;

static bool contacted_cond(void *arg)
{
    contacted_wait *w = arg;
    sx_qreq q = {.index = IX.name,
                 .match = w->m,
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1000,
                 .after = &w->f->tokens};
    sx_err err = {0};
    sx_status st = sx_mfx_contacted(w->f, w->worker, &q, &w->got, &err);
    if (st != SX_OK)
        SX_FX_FAIL(w->f->c, "query through worker %u: %s: %s", w->worker, sx_status_name(st),
                   err.msg);
    return w->got == 3;
}

/* A split of t5 at its default value, until the owner has counted it. */
typedef struct median_split {
    fx *f;
    sx_status st;
    sx_err err;
} median_split;

static bool median_cond(void *arg)
{
    median_split *m = arg;
    m->err = (sx_err){0};
    m->st = split(m->f, IX.name, 5, -1, &m->err);
    if (m->st != SX_OK && !(m->st == SX_FAILED_PRECONDITION && strstr(m->err.msg, "no median")))
        SX_FX_FAIL(m->f->c, "split t=5 at its median: %s: %s", sx_status_name(m->st), m->err.msg);
    return m->st == SX_OK;
}

static void test_split_while_writing(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "split_while_writing");
    random_writes(f, 40);
    sx_mfx_create_index(f, &IX, FAILOVER_MS);
    sx_mfx_create_index(f, &IX_HASH, FAILOVER_MS);
    expect_refused(f, IX_HASH.name, 0, 5, SX_INVALID_ARGUMENT, "not range-partitioned");
    expect_refused(f, IX.name, 9, 5, SX_INVALID_ARGUMENT, "term_partition: 9");
    expect_refused(f, IX.name, 1, 100, SX_INVALID_ARGUMENT, "at: outside");
    expect_refused(f, IX.name, 1, 250, SX_INVALID_ARGUMENT, "at: outside");
    expect_refused(f, "nope", 1, 300, SX_NOT_FOUND, "does not exist");
    sx_mfx_writer_start(f, writer_write);
    sx_err err = {0};
    if (split(f, IX.name, 1, 400, &err) != SX_OK)
        SX_FX_FAIL(f->c, "split t=1 at 400: %s", err.msg);
    /* The swap waits for heartbeats after the shadows' rebuild: not yet. */
    expect_refused(f, IX.name, 2, 600, SX_FAILED_PRECONDITION, "in progress");
    ryw_rounds(f, 15, 250, 250); /* t1's range: t1 and a shadow get each write */
    layout_wait w = wait_layout(f, 1, 0, FAILOVER_MS);
    uint32_t want1[] = {0, 4, 5, 2, 3};
    if (w.serving != 5 || memcmp(w.layout, want1, sizeof(want1)) != 0 || w.bounds[1] != 400)
        SX_FX_FAIL(f->c, "layout after the split: %zu partitions, second bound %" PRId64, w.serving,
                   w.bounds[1]);
    ryw_rounds(f, 10, 250, 250);
    expect_refused(f, IX.name, 1, 300, SX_INVALID_ARGUMENT, "term_partition: 1"); /* retired */
    /* The default value: the median its owner counted (every few seconds). */
    median_split ms = {.f = f};
    SX_FX_WAIT(f->c, median_cond, &ms, WAIT_MS, "split t=5 at its median: %s: %s",
               sx_status_name(ms.st), ms.err.msg);
    w = wait_layout(f, 2, 0, FAILOVER_MS);
    if (w.serving != 6 || w.bounds[2] <= 400 || w.bounds[2] >= 500)
        SX_FX_FAIL(f->c, "layout after the second split: %zu partitions, median %" PRId64,
                   w.serving, w.bounds[2]);
    fprintf(stderr, "  t5 split at its median %" PRId64 "\n", w.bounds[2]);
    sx_mfx_writer_stop(f);
    /* Each worker plans with the layout once its map has the swap: t1's old
     * range [250, 500) reads its three partitions now (4, 6, 7). */
    for (uint32_t i = 0; i < f->c->nworkers; i++) {
        contacted_wait cw = {.f = f, .worker = i, .m = sx_mfx_int_range(250, 499)};
        SX_FX_WAIT(f->c, contacted_cond, &cw, WAIT_MS,
                   "worker %u: range [250, 499] contacted %u partitions, want 3", i, cw.got);
    }
    /* And keeps doing so: a map never goes back. */
    for (uint32_t k = 0; k < 30; k++) {
        contacted_wait cw = {.f = f, .worker = k % f->c->nworkers, .m = sx_mfx_int_range(250, 499)};
        if (!contacted_cond(&cw))
            SX_FX_FAIL(f->c,
                       "query %u through worker %u: range [250, 499] contacted %u "
                       "partitions after every worker had contacted 3",
                       k, cw.worker, cw.got);
    }
    check_all(f);
    /* A narrow range reads one partition. */
    sx_qreq q = {.index = IX.name,
                 .match = sx_mfx_int_range(260, 300),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 100,
                 .after = &f->tokens};
    uint32_t contacted = sx_mfx_check_query(f, IX.field, true, &q);
    if (contacted != 1)
        SX_FX_FAIL(f->c, "range [260, 300] contacted %u partitions, want 1", contacted);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    sx_mfx_verify(f);
}

/* Pages of one query, some before the split, one while its shadows are
 * built, the rest after the swap: together exactly the model's hits. */
static void test_split_paging(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "split_paging");
    random_writes(f, 60);
    sx_mfx_create_index(f, &IX, FAILOVER_MS);
    sx_qreq q = {.index = IX.name,
                 .match = sx_mfx_int_range(-1, -1),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 5,
                 .after = &f->tokens};
    sx_mfx_pager pg = {0};
    bool split_asked = false, swapped = false;
    while (sx_mfx_next_page(f, &q, &pg)) {
        int pages = pg.pages;
        sx_err err = {0};
        if (pages == 2) { /* the pages so far came from t1 or below */
            if (split(f, IX.name, 2, 600, &err) != SX_OK)
                SX_FX_FAIL(f->c, "split t=2 at 600: %s", err.msg);
            split_asked = true;
        } else if (split_asked && !swapped && pages >= 3) {
            wait_layout(f, 1, 0, FAILOVER_MS); /* the rest after the swap */
            swapped = true;
        }
    }
    if (!swapped)
        SX_FX_FAIL(f->c, "the query ended after %d pages, before the swap", pg.pages);
    sx_mfx_expect_model(f, IX.field, true, &q, &pg.got);
    fprintf(stderr, "  %zu hits in %d pages across the swap\n", pg.got.n, pg.pages);
    sx_mfx_pager_free(&pg);
    sx_mfx_verify(f);
}

/* The coordinator's --term-split-entries: every entry in t0's range, a
 * threshold just below their count, and t0 splits by itself at its median
 * (the owner's count); the halves stay below it, so it splits once. */
static void test_split_automatic(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "split_automatic");
    char why[512];
    sx_qtokens t;
    for (int i = 0; i < 40; i++)
        if (!write_one(f, &f->rng, "doc", 0, 250, &t, NULL, why, sizeof(why)))
            SX_FX_FAIL(f->c, "write %d: %s", i, why);
    sx_mfx_create_index(f, &IX, FAILOVER_MS);
    sx_qhits all = {0};
    sx_qmatch everything = sx_mfx_int_range(-1, -1);
    sx_model_expect(f->model, IX.field, true, &everything, &all);
    size_t entries = all.n;
    sx_qhits_free(&all);
    if (entries < 8)
        SX_FX_FAIL(f->c, "only %zu entries", entries);
    char n[32];
    snprintf(n, sizeof(n), "%zu", entries - 1);
    const char *const extra[] = {"--term-split-entries", n, NULL};
    if (!sx_cluster_restart_coordinator(f->c, extra))
        SX_FX_FAIL(f->c, "the coordinator did not come back with --term-split-entries %s", n);
    layout_wait w = wait_layout(f, 1, 0, FAILOVER_MS);
    if (w.serving != 5 || w.layout[0] != 4 || w.layout[1] != 5 || w.bounds[0] <= 0 ||
        w.bounds[0] >= 250)
        SX_FX_FAIL(f->c, "layout after the automatic split: %zu partitions, %u, %u, at %" PRId64,
                   w.serving, w.layout[0], w.layout[1], w.bounds[0]);
    fprintf(stderr, "  t0 (%zu entries) split by itself at %" PRId64 "\n", entries, w.bounds[0]);
    check_all(f);
    sx_mfx_verify(f);
}

/* One query of the load on [0, 250) (t0's range): an eq or a range within
 * it, with the latest tokens, checked against the model. */
static void load_query(fx *f)
{
    int64_t a = (int64_t)(sx_fx_rnd(&f->rng) % 250), b = (int64_t)(sx_fx_rnd(&f->rng) % 250);
    sx_qreq q = {.index = IX.name,
                 .match = sx_fx_rnd(&f->rng) % 3 == 0
                              ? (sx_qmatch){.eq = sx_qval_int(a)}
                              : sx_mfx_int_range(a < b ? a : b, a < b ? b : a),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1000,
                 .after = &f->tokens};
    sx_mfx_check_query(f, IX.field, true, &q);
}

/* After a few more queries of the load (which reach t0's halves once the
 * worker asked has the swap in its map), ClusterStatus shows reads on term
 * partition 4 or 5. */
typedef struct halves_read {
    fx *f;
    double reads[2];
} halves_read;

static bool halves_read_cond(void *arg)
{
    halves_read *h = arg;
    for (int i = 0; i < 10; i++)
        load_query(h->f);
    Shardex__V1__ClusterStatusRequest req = SHARDEX__V1__CLUSTER_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_err err = {0};
    if (sx_rpc_invoke(h->f->c->rpc, sx_mfx_pick(h->f, &h->f->rng).s,
                      &shardex__v1__shardex__descriptor, "ClusterStatus", &req.base, &resp, &o,
                      &err) != SX_OK)
        return false;
    const Shardex__V1__ClusterStatusResponse *st = (const void *)resp;
    for (size_t i = 0; i < st->n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *t = st->term_partitions[i];
        if (strcmp(t->index, IX.name) == 0 && (t->term_partition == 4 || t->term_partition == 5))
            h->reads[t->term_partition - 4] = t->reads_per_s;
    }
    sx_rpc_free(resp);
    return h->reads[0] > 0 || h->reads[1] > 0;
}

/* The coordinator's --term-split-load, with no size trigger: documents over
 * the whole range, so that t0 is no larger than the others, then queries on
 * t0's range only (a write there now and then, read back by the next query
 * through its token), each equal to the model, until the coordinator has
 * split t0 at its median and swapped the halves in. Whatever the machine's
 * speed the load goes on until then: the test waits, it times nothing. */
static void test_split_by_load(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "split_by_load");
    random_writes(f, 60);
    sx_mfx_create_index(f, &IX, FAILOVER_MS);
    const char *const extra[] = {"--term-split-load", "10", "--term-split-load-window", "1s", NULL};
    if (!sx_cluster_restart_coordinator(f->c, extra))
        SX_FX_FAIL(f->c, "the coordinator did not come back with --term-split-load 10");
    layout_wait w = {.f = f, .done = 1, .in_progress = 0};
    uint64_t end = sx_clock_now_ms() + FAILOVER_MS;
    uint32_t queries = 0, writes = 0;
    char why[512];
    sx_qtokens t;
    for (;; queries++) {
        if (queries % 8 == 7) {
            if (!write_one(f, &f->rng, "doc", 0, 250, &t, NULL, why, sizeof(why)))
                SX_FX_FAIL(f->c, "write %u: %s", writes, why);
            writes++;
        }
        load_query(f);
        if (queries % 16 == 15 && layout_cond(&w))
            break;
        if (sx_clock_now_ms() >= end)
            SX_FX_FAIL(f->c,
                       "after %u queries on t0's range: %u splits done and %u in progress, "
                       "want 1 and 0",
                       queries, w.got_done, w.got_progress);
    }
    if (w.serving != 5 || w.layout[0] != 4 || w.layout[1] != 5 || w.bounds[0] <= 0 ||
        w.bounds[0] >= 250)
        SX_FX_FAIL(f->c, "layout after the split by load: %zu partitions, %u, %u, at %" PRId64,
                   w.serving, w.layout[0], w.layout[1], w.bounds[0]);
    fprintf(stderr, "  t0 split by its load at %" PRId64 " after %u queries and %u writes\n",
            w.bounds[0], queries, writes);
    /* The halves serve the same queries, and their owners report the load. */
    halves_read h = {.f = f};
    SX_FX_WAIT(f->c, halves_read_cond, &h, WAIT_MS,
               "ClusterStatus: reads/s of term partitions 4 and 5: %.2f and %.2f", h.reads[0],
               h.reads[1]);
    check_all(f);
    sx_mfx_verify(f);
}

static int32_t leader_of(fx *f, uint32_t p)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        SX_FX_FAIL(f->c, "no map");
    int32_t leader = m->partitions[p]->leader, who = -1;
    for (uint32_t k = 0; k < f->c->nworkers; k++)
        if (sx_cluster_index_of(m, f->c, k) == leader)
            who = (int32_t)k;
    sx_rpc_free(&m->base);
    return who;
}

/* kill -9 of a shadow's owner, then of a log partition's leader, during
 * splits, with the writer running. */
static void test_split_kill(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "split_kill");
    random_writes(f, 40);
    sx_mfx_create_index(f, &IX, FAILOVER_MS);
    sx_mfx_writer_start(f, writer_write);
    sx_err err = {0};
    if (split(f, IX.name, 1, 400, &err) != SX_OK)
        SX_FX_FAIL(f->c, "split t=1 at 400: %s", err.msg);
    int32_t victim = sx_mfx_term_owner(f, IX.name, 5); /* the upper shadow's */
    sx_mfx_kill_worker(f, victim, "the owner of shadow 5");
    ryw_rounds(f, 5, 250, 250);
    sx_mfx_restart_worker(f, victim, WAIT_MS);
    wait_layout(f, 1, 0, FAILOVER_MS);
    if (split(f, IX.name, 3, 900, &err) != SX_OK)
        SX_FX_FAIL(f->c, "split t=3 at 900: %s", err.msg);
    victim = leader_of(f, (uint32_t)(sx_fx_rnd(&f->rng) % P));
    sx_mfx_kill_worker(f, victim, "a log partition's leader");
    ryw_rounds(f, 5, 750, 250);
    sx_mfx_restart_worker(f, victim, WAIT_MS);
    wait_layout(f, 2, 0, FAILOVER_MS);
    sx_mfx_writer_stop(f);
    check_all(f);
    SX_FX_CHECK_REPLICAS(f->c, FAILOVER_MS);
    sx_mfx_verify(f);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_while_writing, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_split_paging, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_split_automatic, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_split_by_load, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_split_kill, setup, sx_mfx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
