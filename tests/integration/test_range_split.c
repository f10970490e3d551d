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

typedef struct fx {
    sx_cluster *c;
    sx_model *model;
    sx_qtokens tokens;
    uint64_t rng;
    pthread_mutex_t mu; /* model, tokens, the cluster's running workers */
    bool stop;          /* the writer stops (under mu) */
    uint64_t writes;
    char fail[512]; /* the writer's failure, if any (under mu) */
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
    pthread_mutex_init(&f->mu, NULL);
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
    pthread_mutex_destroy(&f->mu);
    free(f);
    return 0;
}

static void seed_test(fx *f, const char *name)
{
    f->rng = seed ^ sx_hash64(name, strlen(name));
    fprintf(stderr, "%s: seed=%" PRIu64 " (SHARDEX_TEST_SEED replays)\n", name, seed);
}

typedef struct waddr {
    char s[64];
} waddr;

/* A running worker's address (workers are killed and restarted under mu). */
static waddr pick(fx *f, uint64_t *s)
{
    waddr a;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        uint32_t i = (uint32_t)(sx_fx_rnd(s) % f->c->nworkers);
        if (f->c->worker_pid[i] > 0) {
            memcpy(a.s, f->c->worker_addr[i], sizeof(a.s));
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return a;
}

static bool transient(sx_status st)
{
    return st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED;
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
        bool dup;
        do {
            snprintf(ids[i], SX_QID, "%s-%03u", prefix, (unsigned)(sx_fx_rnd(s) % NIDS));
            dup = false;
            for (size_t j = 0; j < i; j++)
                dup |= strcmp(ids[i], ids[j]) == 0;
        } while (dup);
        if (!del)
            random_doc(s, ids[i], &docs[i], lo, n);
    }
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    for (;;) {
        memset(toks, 0, sizeof(*toks));
        waddr via = pick(f, s);
        sx_err err = {0};
        sx_status st;
        if (del) {
            const char *p[4] = {ids[0], ids[1], ids[2], ids[3]};
            st = sx_q_delete(f->c, via.s, p, k, 4000, toks, NULL, &err);
        } else {
            st = sx_q_put(f->c, via.s, docs, k, 4000, toks, NULL, &err);
        }
        if (st == SX_OK)
            break;
        if (!transient(st) || sx_clock_now_ms() >= end) {
            snprintf(why, cap, "%s through %s: %s: %s", del ? "Delete" : "Put", via.s,
                     sx_status_name(st), err.msg);
            return false;
        }
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < k; i++) {
        if (del)
            sx_model_delete(f->model, ids[i]);
        else
            sx_model_put(f->model, &docs[i]);
    }
    for (uint32_t p = 0; p < SX_QTOKENS_MAX; p++)
        if (toks->off[p] > f->tokens.off[p])
            f->tokens.off[p] = toks->off[p];
    f->writes++;
    pthread_mutex_unlock(&f->mu);
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

static void *writer_main(void *arg)
{
    fx *f = arg;
    uint64_t s = f->rng ^ 0x9e3779b97f4a7c15ull;
    char why[512];
    sx_qtokens t;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (!write_one(f, &s, "doc", 0, VMAX, &t, NULL, why, sizeof(why))) {
            pthread_mutex_lock(&f->mu);
            snprintf(f->fail, sizeof(f->fail), "writer: %s", why);
            pthread_mutex_unlock(&f->mu);
            break;
        }
    }
    return NULL;
}

static void writer_stop(fx *f, pthread_t th)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(th, NULL);
    if (f->fail[0])
        SX_FX_FAIL(f->c, "%s", f->fail);
    fprintf(stderr, "  %" PRIu64 " writes acknowledged\n", f->writes);
}

/* ---------------------------------------------------------------- indexes -- */

static void create_index(fx *f, const sx_qindex *ix)
{
    sx_err err = {0};
    sx_status st = sx_q_create_index(f->c, pick(f, &f->rng).s, ix, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex %s: %s: %s", ix->name, sx_status_name(st), err.msg);
    if (!sx_q_wait_ready(f->c, pick(f, &f->rng).s, ix->name, FAILOVER_MS))
        SX_FX_FAIL(f->c, "index %s did not become READY", ix->name);
}

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
    sx_status st = sx_rpc_invoke(f->c->rpc, pick(f, &f->rng).s, &shardex__v1__shardex__descriptor,
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
    if (sx_q_list_indexes(w->f->c, pick(w->f, &w->f->rng).s, &l, NULL) != SX_OK)
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

static void query_all(fx *f, const sx_qreq *q, sx_qpages *pg)
{
    uint64_t end = sx_clock_now_ms() + FAILOVER_MS;
    char d[160];
    for (;;) {
        sx_err err = {0};
        waddr via = pick(f, &f->rng);
        sx_status st = sx_q_query_all(f->c, via.s, q, pg, &err);
        if (st == SX_OK)
            return;
        sx_qhits_free(&pg->hits);
        if (!transient(st) || sx_clock_now_ms() >= end)
            SX_FX_FAIL(f->c, "query %s through %s: %s: %s", sx_qreq_fmt(q, d, sizeof(d)), via.s,
                       sx_status_name(st), err.msg);
    }
}

static void expect_model(fx *f, const sx_qreq *q, const sx_qhits *got)
{
    sx_qhits want = {0};
    char why[256], d[160];
    sx_model_expect(f->model, IX.field, true, &q->match, &want);
    bool ok = sx_qhits_equal(got, &want, why, sizeof(why));
    sx_qhits_free(&want);
    if (!ok)
        SX_FX_FAIL(f->c, "query %s: %s", sx_qreq_fmt(q, d, sizeof(d)), why);
}

static sx_qmatch range_of(int64_t lo, int64_t hi)
{
    sx_qmatch m = {.range = true};
    if (lo >= 0) {
        m.has_min = true;
        m.min = sx_qval_int(lo);
    }
    if (hi >= 0) {
        m.has_max = true;
        m.max = sx_qval_int(hi);
    }
    return m;
}

/* Every match below, GLOBAL, paged, with the latest tokens: equal to the model. */
static void check_all(fx *f)
{
    sx_qmatch ms[] = {range_of(-1, -1),         range_of(0, 249),         range_of(250, 399),
                      range_of(380, 420),       range_of(400, 499),       range_of(450, -1),
                      {.eq = sx_qval_int(300)}, {.eq = sx_qval_int(400)}, {.eq = sx_qval_int(777)}};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        for (uint32_t limit = 7; limit <= 1000; limit += 993) {
            sx_qreq q = {.index = IX.name,
                         .match = ms[i],
                         .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                         .limit = limit,
                         .after = &f->tokens};
            sx_qpages pg;
            query_all(f, &q, &pg);
            expect_model(f, &q, &pg.hits);
            sx_qhits_free(&pg.hits);
        }
    }
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
        sx_qpages pg;
        query_all(f, &q, &pg);
        bool seen = false;
        for (size_t k = 0; k < pg.hits.n; k++)
            seen |= strcmp(pg.hits.h[k].id, doc.id) == 0;
        sx_qhits_free(&pg.hits);
        if (!seen)
            SX_FX_FAIL(f->c,
                       "ryw %d: %s put with value %" PRId64 ", query %s with its token "
                       "does not see it",
                       i, doc.id, doc.f[0].v.i, sx_qreq_fmt(&q, d, sizeof(d)));
    }
}

static void run_verify(fx *f)
{
    char why[256];
    if (!sx_check_verify(f->c, 120000, why, sizeof(why)))
        SX_FX_FAIL(f->c, "%s", why);
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
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    sx_status st = sx_q_query(w->f->c, w->f->c->worker_addr[w->worker], &q, NULL, &r, &err);
    if (st != SX_OK)
        SX_FX_FAIL(w->f->c, "query through worker %u: %s: %s", w->worker, sx_status_name(st),
                   err.msg);
    w->got = r->partitions_contacted;
    sx_rpc_free(&r->base);
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
    seed_test(f, "split_while_writing");
    random_writes(f, 40);
    create_index(f, &IX);
    create_index(f, &IX_HASH);
    expect_refused(f, IX_HASH.name, 0, 5, SX_INVALID_ARGUMENT, "not range-partitioned");
    expect_refused(f, IX.name, 9, 5, SX_INVALID_ARGUMENT, "term_partition: 9");
    expect_refused(f, IX.name, 1, 100, SX_INVALID_ARGUMENT, "at: outside");
    expect_refused(f, IX.name, 1, 250, SX_INVALID_ARGUMENT, "at: outside");
    expect_refused(f, "nope", 1, 300, SX_NOT_FOUND, "does not exist");
    pthread_t th;
    pthread_create(&th, NULL, writer_main, f);
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
    writer_stop(f, th);
    /* Each worker plans with the layout once its map has the swap: t1's old
     * range [250, 500) reads its three partitions now (4, 6, 7). */
    for (uint32_t i = 0; i < f->c->nworkers; i++) {
        contacted_wait cw = {.f = f, .worker = i, .m = range_of(250, 499)};
        SX_FX_WAIT(f->c, contacted_cond, &cw, WAIT_MS,
                   "worker %u: range [250, 499] contacted %u partitions, want 3", i, cw.got);
    }
    /* And keeps doing so: a map never goes back. */
    for (uint32_t k = 0; k < 30; k++) {
        contacted_wait cw = {.f = f, .worker = k % f->c->nworkers, .m = range_of(250, 499)};
        if (!contacted_cond(&cw))
            SX_FX_FAIL(f->c,
                       "query %u through worker %u: range [250, 499] contacted %u "
                       "partitions after every worker had contacted 3",
                       k, cw.worker, cw.got);
    }
    check_all(f);
    /* A narrow range reads one partition. */
    sx_qreq q = {.index = IX.name,
                 .match = range_of(260, 300),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 100,
                 .after = &f->tokens};
    sx_qpages pg;
    query_all(f, &q, &pg);
    expect_model(f, &q, &pg.hits);
    sx_qhits_free(&pg.hits);
    if (pg.contacted != 1)
        SX_FX_FAIL(f->c, "range [260, 300] contacted %u partitions, want 1", pg.contacted);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    run_verify(f);
}

/* Pages of one query, some before the split, one while its shadows are
 * built, the rest after the swap: together exactly the model's hits. */
static void test_split_paging(void **state)
{
    fx *f = *state;
    seed_test(f, "split_paging");
    random_writes(f, 60);
    create_index(f, &IX);
    sx_qreq q = {.index = IX.name,
                 .match = range_of(-1, -1),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 5,
                 .after = &f->tokens};
    sx_qhits got = {0};
    ProtobufCBinaryData tok = {0};
    uint8_t *tokbuf = NULL;
    int pages = 0;
    bool split_asked = false, swapped = false;
    for (;;) {
        Shardex__V1__QueryResponse *r = NULL;
        sx_err err = {0};
        sx_status st = sx_q_query(f->c, pick(f, &f->rng).s, &q, pages ? &tok : NULL, &r, &err);
        if (st != SX_OK)
            SX_FX_FAIL(f->c, "page %d: %s: %s", pages, sx_status_name(st), err.msg);
        for (size_t i = 0; i < r->n_hits; i++) {
            sx_qhit h = {0};
            snprintf(h.id, sizeof(h.id), "%s", r->hits[i]->id);
            h.v = sx_qval_int(r->hits[i]->value->i);
            sx_qhits_push(&got, &h);
        }
        pages++;
        bool last = r->next_page_token.len == 0;
        free(tokbuf);
        tokbuf = malloc(r->next_page_token.len + 1);
        if (!last)
            memcpy(tokbuf, r->next_page_token.data, r->next_page_token.len);
        tok = (ProtobufCBinaryData){r->next_page_token.len, tokbuf};
        sx_rpc_free(&r->base);
        if (last)
            break;
        if (pages == 2) { /* the pages so far came from t1 or below */
            if (split(f, IX.name, 2, 600, &err) != SX_OK)
                SX_FX_FAIL(f->c, "split t=2 at 600: %s", err.msg);
            split_asked = true;
        } else if (split_asked && !swapped && pages >= 3) {
            wait_layout(f, 1, 0, FAILOVER_MS); /* the rest after the swap */
            swapped = true;
        }
    }
    free(tokbuf);
    if (!swapped)
        SX_FX_FAIL(f->c, "the query ended after %d pages, before the swap", pages);
    expect_model(f, &q, &got);
    fprintf(stderr, "  %zu hits in %d pages across the swap\n", got.n, pages);
    sx_qhits_free(&got);
    run_verify(f);
}

/* The coordinator's --term-split-entries: every entry in t0's range, a
 * threshold just below their count, and t0 splits by itself at its median
 * (the owner's count); the halves stay below it, so it splits once. */
static void test_split_automatic(void **state)
{
    fx *f = *state;
    seed_test(f, "split_automatic");
    char why[512];
    sx_qtokens t;
    for (int i = 0; i < 40; i++)
        if (!write_one(f, &f->rng, "doc", 0, 250, &t, NULL, why, sizeof(why)))
            SX_FX_FAIL(f->c, "write %d: %s", i, why);
    create_index(f, &IX);
    sx_qhits all = {0};
    sx_qmatch everything = range_of(-1, -1);
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
    run_verify(f);
}

/* One query of the load on [0, 250) (t0's range): an eq or a range within
 * it, with the latest tokens, checked against the model. */
static void load_query(fx *f)
{
    int64_t a = (int64_t)(sx_fx_rnd(&f->rng) % 250), b = (int64_t)(sx_fx_rnd(&f->rng) % 250);
    sx_qreq q = {.index = IX.name,
                 .match = sx_fx_rnd(&f->rng) % 3 == 0 ? (sx_qmatch){.eq = sx_qval_int(a)}
                                                      : range_of(a < b ? a : b, a < b ? b : a),
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1000,
                 .after = &f->tokens};
    sx_qpages pg;
    query_all(f, &q, &pg);
    expect_model(f, &q, &pg.hits);
    sx_qhits_free(&pg.hits);
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
    if (sx_rpc_invoke(h->f->c->rpc, pick(h->f, &h->f->rng).s, &shardex__v1__shardex__descriptor,
                      "ClusterStatus", &req.base, &resp, &o, &err) != SX_OK)
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
    seed_test(f, "split_by_load");
    random_writes(f, 60);
    create_index(f, &IX);
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
    run_verify(f);
}

/* The worker index in the test of term partition t's owner, -1 when none. */
static int32_t owner_of(fx *f, uint32_t t)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        SX_FX_FAIL(f->c, "no map");
    int32_t who = -1;
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (strcmp(e->spec->name, IX.name) != 0 || e->first_term + t >= m->n_terms)
            continue;
        int32_t o = m->terms[e->first_term + t]->owner;
        for (uint32_t k = 0; k < f->c->nworkers; k++)
            if (sx_cluster_index_of(m, f->c, k) == o)
                who = (int32_t)k;
    }
    sx_rpc_free(&m->base);
    return who;
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

static void kill9(fx *f, int32_t i, const char *what)
{
    if (i < 0)
        SX_FX_FAIL(f->c, "no worker is %s", what);
    fprintf(stderr, "  kill -9 worker %d (%s)\n", i, what);
    pthread_mutex_lock(&f->mu);
    sx_cluster_kill_worker(f->c, (uint32_t)i);
    pthread_mutex_unlock(&f->mu);
}

static void restart(fx *f, int32_t i)
{
    pthread_mutex_lock(&f->mu);
    bool ok = sx_cluster_start_worker(f->c, (uint32_t)i);
    pthread_mutex_unlock(&f->mu);
    if (!ok || !sx_cluster_wait_alive(f->c, (uint32_t)i, WAIT_MS))
        SX_FX_FAIL(f->c, "worker %d did not come back", i);
}

/* kill -9 of a shadow's owner, then of a log partition's leader, during
 * splits, with the writer running. */
static void test_split_kill(void **state)
{
    fx *f = *state;
    seed_test(f, "split_kill");
    random_writes(f, 40);
    create_index(f, &IX);
    pthread_t th;
    pthread_create(&th, NULL, writer_main, f);
    sx_err err = {0};
    if (split(f, IX.name, 1, 400, &err) != SX_OK)
        SX_FX_FAIL(f->c, "split t=1 at 400: %s", err.msg);
    int32_t victim = owner_of(f, 5); /* the upper shadow's */
    kill9(f, victim, "the owner of shadow 5");
    ryw_rounds(f, 5, 250, 250);
    restart(f, victim);
    wait_layout(f, 1, 0, FAILOVER_MS);
    if (split(f, IX.name, 3, 900, &err) != SX_OK)
        SX_FX_FAIL(f->c, "split t=3 at 900: %s", err.msg);
    victim = leader_of(f, (uint32_t)(sx_fx_rnd(&f->rng) % P));
    kill9(f, victim, "a log partition's leader");
    ryw_rounds(f, 5, 750, 250);
    restart(f, victim);
    wait_layout(f, 2, 0, FAILOVER_MS);
    writer_stop(f, th);
    check_all(f);
    SX_FX_CHECK_REPLICAS(f->c, FAILOVER_MS);
    run_verify(f);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_automatic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_by_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_kill, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
