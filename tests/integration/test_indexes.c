/* test_indexes.c: local and global secondary indexes with real processes
 * (coordinator + 3 workers, P=8, R=3, min_isr=2, lease 1000 ms), checked
 * against an in-test model (id -> current document, tests/support/query.h):
 *  - seeded random puts (multi-valued, repeated and mistyped values),
 *    updates, deletes and re-created ids, with indexes created before some
 *    writes and after others: every equality and range query, LOCAL and
 *    GLOBAL, unpaged and paged, equals the model (ids, values, order);
 *  - the same on range-partitioned GLOBAL indexes (split points given), with
 *    partitions_contacted exactly the term partitions a range covers;
 *  - read-your-writes with `after` tokens in both modes;
 *  - exactly once under shipping faults (dup, delay, drop, lost replies) and
 *    a log leader killed mid-stream;
 *  - an index created while a writer keeps writing;
 *  - a term partition's owner killed: GLOBAL answers UNAVAILABLE or right,
 *    never wrong, until a new owner serves it again;
 *  - bad queries, and drop then re-create.
 * Writes that fail are retried until acknowledged (a Put or Delete repeated
 * has the same effect), so the model is exact. Every test ends with the
 * replica checker (checker.h); the model, fault and owner tests also with
 * `shardex verify` (every index recomputed from the log). SHARDEX_TEST_SEED
 * replays a run's choices (not the timing of faults); SHARDEX_TEST_FILTER=
 * <cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "modelfx.h"
#include "query.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 30000
/* Failover, term partition rebuilds: leases, reassignment, backfill. */
#define FAILOVER_MS 60000
#define P 8

static uint64_t seed;

/* The values documents take: small alphabets, so that values collide. */
static const char *const COLORS[] = {"amber", "blue", "green", "red", "teal", "violet"};
#define NCOLORS (sizeof(COLORS) / sizeof(COLORS[0]))
#define ABSENT_COLOR "cyan"
#define SIZE_MIN (-4)
#define SIZE_MAX_ 7
#define ABSENT_SIZE 42
#define NIDS 120

static const sx_qindex IX_COLOR = {.name = "color",
                                   .field = "color",
                                   .local = true,
                                   .global = true}; /* M: the cluster default (P) */
static const sx_qindex IX_SIZE = {.name = "size",
                                  .field = "size",
                                  .is_int = true,
                                  .local = true,
                                  .global = true,
                                  .term_partitions = 4};
/* The same fields, range-partitioned: color t0 = {amber}, t1 = [blue, red)
 * = {blue, green}, t2 = {red, teal, violet}; size t0 < -2 <= t1 < 1 <= t2 <
 * 4 <= t3. */
static const sx_qindex IX_COLOR_R = {.name = "color_r",
                                     .field = "color",
                                     .local = true,
                                     .global = true,
                                     .nsplits = 2,
                                     .splits = {{.s = "blue"}, {.s = "red"}}};
static const sx_qindex IX_SIZE_R = {
    .name = "size_r",
    .field = "size",
    .is_int = true,
    .global = true,
    .nsplits = 3,
    .splits = {{.is_int = true, .i = -2}, {.is_int = true, .i = 1}, {.is_int = true, .i = 4}}};

/* ---------------------------------------------------------------- fixture -- */

typedef struct fx {
    sx_cluster *c;
    sx_model *model;
    sx_qtokens tokens; /* latest acknowledged offset per log partition */
    uint64_t rng;
    /* Writes and queries may meet failures (a worker killed, a term partition
     * being rebuilt): retry what is transient until WAIT_MS passes. Otherwise
     * any error fails the test. */
    bool tolerant;
    uint64_t retries;
    uint64_t ops;
    pthread_mutex_t mu; /* model, tokens, ops: with a writer thread */
    uint64_t t0;        /* when the test started */
} fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    fx *f = SX_FX_STATE_NEW(fx, &o, WAIT_MS);
    if (!f)
        return -1;
    f->model = sx_model_create();
    pthread_mutex_init(&f->mu, NULL);
    f->t0 = sx_clock_now_ms();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fprintf(stderr, "  (%" PRIu64 " ms after the cluster settled)\n", sx_clock_now_ms() - f->t0);
    /* Everything was checked: no need for a graceful stop (which waits for
     * calls in flight). */
    sx_fx_cluster_end(f->c);
    sx_model_destroy(f->model);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return 0;
}

/* `shardex verify` recomputes every index from the log. */
static void run_verify(fx *f)
{
    SX_FX_VERIFY(f->c, 120000);
}

/* A running worker's address (modelfx.h): a writer thread picks workers
 * while the main thread kills and restarts them (under f->mu). */
static sx_mfx_addr pick(fx *f, uint64_t *s)
{
    return sx_mfx_pick_running(f->c, &f->mu, s);
}

/* ------------------------------------------------------------------ writes -- */

static void random_doc(uint64_t *s, const char *id, sx_qdoc *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    uint64_t r = sx_fx_rnd(s) % 10;
    uint32_t ncolors = r == 0 ? 0 : r < 7 ? 1 : r < 9 ? 2 : 3;
    for (uint32_t k = 0; k < ncolors; k++) {
        if (sx_fx_rnd(s) % 12 == 0)
            sx_qdoc_add(d, "color", sx_qval_int((int64_t)(sx_fx_rnd(s) % 5))); /* mistyped */
        else if (k > 0 && sx_fx_rnd(s) % 3 == 0)
            sx_qdoc_add(d, "color", d->f[d->n - 1].v); /* the same value twice */
        else
            sx_qdoc_add(d, "color", sx_qval_str(COLORS[sx_fx_rnd(s) % NCOLORS]));
    }
    char name[16];
    snprintf(name, sizeof(name), "n%u", (unsigned)(sx_fx_rnd(s) % 1000));
    sx_qdoc_add(d, "name", sx_qval_str(name)); /* not indexed */
    r = sx_fx_rnd(s) % 10;
    uint32_t nsizes = r == 0 ? 0 : r < 8 ? 1 : 2;
    for (uint32_t k = 0; k < nsizes; k++) {
        if (sx_fx_rnd(s) % 12 == 0)
            sx_qdoc_add(d, "size", sx_qval_str("big")); /* mistyped */
        else if (k > 0 && sx_fx_rnd(s) % 3 == 0)
            sx_qdoc_add(d, "size", d->f[d->n - 1].v);
        else
            sx_qdoc_add(
                d, "size",
                sx_qval_int(SIZE_MIN + (int64_t)(sx_fx_rnd(s) % (SIZE_MAX_ - SIZE_MIN + 1))));
    }
}

/* A write: Put of docs or Delete of ids, distinct ids either way. */
typedef struct op {
    bool del;
    size_t n;
    sx_qdoc docs[8];
    char ids[8][SX_QID];
} op;

static void random_write(uint64_t *s, op *o)
{
    memset(o, 0, sizeof(*o));
    o->del = sx_fx_rnd(s) % 4 == 0;
    o->n = 1 + sx_fx_rnd(s) % (o->del ? 4 : 8);
    for (size_t i = 0; i < o->n; i++) {
        sx_mfx_random_id(s, "doc", NIDS, o->ids, i);
        if (!o->del)
            random_doc(s, o->ids[i], &o->docs[i]);
    }
}

/* Sends o through running workers until acknowledged (tolerant) or once
 * (otherwise), then applies it to the model. False with why on failure.
 * Thread-safe against other users of f->mu. */
static bool do_write(fx *f, uint64_t *s, const op *o, char *why, size_t cap)
{
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    sx_qtokens toks;
    for (;;) {
        memset(&toks, 0, sizeof(toks));
        sx_mfx_addr via = pick(f, s);
        sx_err err = {0};
        sx_status st;
        if (o->del) {
            const char *ids[8];
            for (size_t i = 0; i < o->n; i++)
                ids[i] = o->ids[i];
            st = sx_q_delete(f->c, via.s, ids, o->n, 4000, &toks, NULL, &err);
        } else {
            st = sx_q_put(f->c, via.s, o->docs, o->n, 4000, &toks, NULL, &err);
        }
        if (st == SX_OK)
            break;
        if (!f->tolerant || !sx_mfx_transient(st) || sx_clock_now_ms() >= end) {
            snprintf(why, cap, "%s of %zu through %s: %s: %s", o->del ? "Delete" : "Put", o->n,
                     via.s, sx_status_name(st), err.msg);
            return false;
        }
        pthread_mutex_lock(&f->mu);
        f->retries++;
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < o->n; i++) {
        if (o->del)
            sx_model_delete(f->model, o->ids[i]);
        else
            sx_model_put(f->model, &o->docs[i]);
    }
    for (uint32_t p = 0; p < SX_QTOKENS_MAX; p++)
        if (toks.off[p] > f->tokens.off[p])
            f->tokens.off[p] = toks.off[p];
    f->ops++;
    pthread_mutex_unlock(&f->mu);
    return true;
}

static void random_writes(fx *f, int n)
{
    char why[512];
    for (int i = 0; i < n; i++) {
        op o;
        random_write(&f->rng, &o);
        if (!do_write(f, &f->rng, &o, why, sizeof(why)))
            SX_FX_FAIL(f->c, "write %d: %s", i, why);
    }
}

/* ---------------------------------------------------------------- indexes -- */

static void create_index(fx *f, const sx_qindex *ix)
{
    sx_err err = {0};
    sx_status st = sx_q_create_index(f->c, pick(f, &f->rng).s, ix, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex %s: %s: %s", ix->name, sx_status_name(st), err.msg);
}

static void wait_ready(fx *f, const sx_qindex *ix)
{
    if (!sx_q_wait_ready(f->c, pick(f, &f->rng).s, ix->name, FAILOVER_MS))
        SX_FX_FAIL(f->c, "index %s did not become READY", ix->name);
}

typedef struct mistyped_wait {
    fx *f;
    const sx_qindex *ix;
    uint64_t want, got;
    int state;
} mistyped_wait;

static bool mistyped_cond(void *arg)
{
    mistyped_wait *w = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(w->f->c, pick(w->f, &w->f->rng).s, &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, w->ix->name);
    w->got = ix ? ix->mistyped_docs : UINT64_MAX;
    w->state = ix ? (int)ix->state : -1;
    sx_rpc_free(&l->base);
    return w->got == w->want && w->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
}

/* ListIndexes: READY, and mistyped_docs (reported with heartbeats) equals the model's. */
static void check_listed(fx *f, const sx_qindex *ix)
{
    mistyped_wait w = {f, ix, sx_model_mistyped(f->model, ix->field, ix->is_int), 0, 0};
    SX_FX_WAIT(f->c, mistyped_cond, &w, WAIT_MS,
               "ListIndexes %s: state %d, mistyped_docs %" PRIu64 ", model says %" PRIu64, ix->name,
               w.state, w.got, w.want);
    fprintf(stderr, "  %s: READY, %" PRIu64 " mistyped documents\n", ix->name, w.got);
}

/* ----------------------------------------------------------------- queries -- */

static uint32_t term_partitions(const sx_qindex *ix)
{
    return ix->nsplits ? (uint32_t)ix->nsplits + 1 : ix->term_partitions ? ix->term_partitions : P;
}

static int qval_cmp(const sx_qval *a, const sx_qval *b)
{
    return a->is_int ? (a->i > b->i) - (a->i < b->i) : strcmp(a->s, b->s);
}

/* The term partitions a GLOBAL range query must contact, computed from the
 * split points apart from the worker's planner: all M when hash-partitioned;
 * when range-partitioned, those whose [split[t-1], split[t]) meets [min, max],
 * and one (which holds nothing) when none does. */
static uint32_t covering(const sx_qindex *ix, const sx_qmatch *m)
{
    uint32_t M = term_partitions(ix), n = 0;
    if (!ix->nsplits)
        return M;
    for (uint32_t t = 0; t < M; t++) {
        bool below_max = !m->has_max || t == 0 || qval_cmp(&ix->splits[t - 1], &m->max) <= 0;
        bool above_min = !m->has_min || t == M - 1 || qval_cmp(&m->min, &ix->splits[t]) < 0;
        n += below_max && above_min;
    }
    return n ? n : 1;
}

/* Every page of q (tolerant: retried while transient) into *pg. */
static void query_all(fx *f, const sx_qreq *q, sx_qpages *pg)
{
    sx_mfx_query_all_in(f->c, &f->mu, &f->rng, f->tolerant, &f->retries, q, pg);
}

static void expect_hits(fx *f, const sx_qreq *q, const sx_qindex *ix, const sx_qpages *pg)
{
    sx_qhits want = {0};
    char why[256], d[160];
    sx_model_expect(f->model, ix->field, ix->is_int, &q->match, &want);
    bool ok = sx_qhits_equal(&pg->hits, &want, why, sizeof(why));
    size_t n = want.n;
    sx_qhits_free(&want);
    if (!ok)
        SX_FX_FAIL(f->c, "query %s: %s", sx_qreq_fmt(q, d, sizeof(d)), why);
    /* Pages are full but for the last (each page but the last has limit hits). */
    uint32_t min_pages = n == 0 ? 1 : (uint32_t)((n + q->limit - 1) / q->limit);
    bool shrank_wrongly = pg->shrank && !ix->nsplits; /* hash: every page reads all M */
    if (pg->pages < min_pages || pg->mixed || shrank_wrongly || (q->include_docs && !pg->docs_ok))
        SX_FX_FAIL(f->c, "query %s: %u pages for %zu hits (mixed %d, shrank %d, docs %d)",
                   sx_qreq_fmt(q, d, sizeof(d)), pg->pages, n, pg->mixed, pg->shrank, pg->docs_ok);
}

static void expect_shape(fx *f, const sx_qreq *q, const sx_qindex *ix, const sx_qpages *pg)
{
    char d[160];
    Shardex__V1__Mode mode = q->mode;
    if (mode == SHARDEX__V1__MODE__MODE_UNSPECIFIED) {
        if (pg->mode != SHARDEX__V1__MODE__MODE_LOCAL && pg->mode != SHARDEX__V1__MODE__MODE_GLOBAL)
            SX_FX_FAIL(f->c, "query %s: answered in mode %d", sx_qreq_fmt(q, d, sizeof(d)),
                       pg->mode);
        mode = pg->mode;
    } else if (pg->mode != mode) {
        SX_FX_FAIL(f->c, "query %s: answered in mode %d", sx_qreq_fmt(q, d, sizeof(d)), pg->mode);
    }
    uint32_t want = mode == SHARDEX__V1__MODE__MODE_LOCAL ? P
                    : q->match.range                      ? covering(ix, &q->match)
                                                          : 1;
    if (pg->contacted != want)
        SX_FX_FAIL(f->c, "query %s: partitions_contacted %u, want %u", sx_qreq_fmt(q, d, sizeof(d)),
                   pg->contacted, want);
}

/* The matches checked on an index: every value of the alphabet and an absent
 * one; ranges with an open min, an open max, both ends, no end, none
 * matching, inverted. Returns the count. */
static size_t matches_of(const sx_qindex *ix, sx_qmatch *m)
{
    size_t n = 0;
    sx_qmatch r = {.range = true};
    if (ix->is_int) {
        for (int64_t v = SIZE_MIN; v <= SIZE_MAX_; v++)
            m[n++] = (sx_qmatch){.eq = sx_qval_int(v)};
        m[n++] = (sx_qmatch){.eq = sx_qval_int(ABSENT_SIZE)};
        m[n] = r, m[n].has_max = true, m[n++].max = sx_qval_int(0);
        m[n] = r, m[n].has_min = true, m[n++].min = sx_qval_int(-2);
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_int(-3),
        m[n++].max = sx_qval_int(4);
        m[n++] = r;
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_int(100),
        m[n++].max = sx_qval_int(200);
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_int(5),
        m[n++].max = sx_qval_int(-5);
    } else {
        for (size_t i = 0; i < NCOLORS; i++)
            m[n++] = (sx_qmatch){.eq = sx_qval_str(COLORS[i])};
        m[n++] = (sx_qmatch){.eq = sx_qval_str(ABSENT_COLOR)};
        m[n] = r, m[n].has_max = true, m[n++].max = sx_qval_str("green");
        m[n] = r, m[n].has_min = true, m[n++].min = sx_qval_str("red");
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_str("b"),
        m[n++].max = sx_qval_str("reef");
        m[n++] = r;
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_str("c"),
        m[n++].max = sx_qval_str("cz");
        m[n] = r, m[n].has_min = m[n].has_max = true, m[n].min = sx_qval_str("teal"),
        m[n++].max = sx_qval_str("amber");
    }
    return n;
}

/* The documents of GLOBAL and LOCAL hits (include_docs) are the model's. */
static void check_docs(fx *f, const sx_qindex *ix, const sx_qmatch *m, Shardex__V1__Mode mode)
{
    sx_qreq q = {.index = ix->name,
                 .match = *m,
                 .mode = mode,
                 .limit = 10000,
                 .after = &f->tokens,
                 .include_docs = true};
    uint64_t end = sx_clock_now_ms() + FAILOVER_MS;
    char d[160];
    for (;;) {
        Shardex__V1__QueryResponse *r = NULL;
        sx_err err = {0};
        sx_status st = sx_q_query(f->c, pick(f, &f->rng).s, &q, NULL, &r, &err);
        if (st != SX_OK) {
            if (!f->tolerant || !sx_mfx_transient(st) || sx_clock_now_ms() >= end)
                SX_FX_FAIL(f->c, "query %s with documents: %s: %s", sx_qreq_fmt(&q, d, sizeof(d)),
                           sx_status_name(st), err.msg);
            f->retries++;
            continue;
        }
        for (size_t i = 0; i < r->n_hits; i++) {
            const sx_qdoc *want = sx_model_get(f->model, r->hits[i]->id);
            if (!want || !sx_qdoc_equal_pb(want, r->hits[i]->doc))
                SX_FX_FAIL(f->c, "query %s with documents: hit %zu (%s): %s",
                           sx_qreq_fmt(&q, d, sizeof(d)), i, r->hits[i]->id,
                           !want             ? "not in the model"
                           : r->hits[i]->doc ? "document differs"
                                             : "no document");
        }
        assert_int_equal(r->next_page_token.len, 0);
        sx_rpc_free(&r->base);
        return;
    }
}

/* Every match on ix, in each mode it is kept in and unspecified, unpaged
 * and paged (limits 1..7), with `after` the latest token of every partition,
 * equals the model; so do the documents of a few queries. */
static void check_index(fx *f, const sx_qindex *ix)
{
    sx_qmatch m[32];
    size_t n = matches_of(ix, m);
    Shardex__V1__Mode modes[3];
    size_t nm = 0;
    if (ix->local)
        modes[nm++] = SHARDEX__V1__MODE__MODE_LOCAL;
    if (ix->global)
        modes[nm++] = SHARDEX__V1__MODE__MODE_GLOBAL;
    modes[nm++] = SHARDEX__V1__MODE__MODE_UNSPECIFIED;
    uint64_t t0 = sx_clock_now_ms(), queries = 0, slowest = 0;
    char slow[160] = "";
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nm; k++) {
            sx_qreq q = {.index = ix->name,
                         .match = m[i],
                         .mode = modes[k],
                         .limit = 10000,
                         .after = &f->tokens};
            sx_qpages pg;
            uint64_t q0 = sx_clock_now_ms();
            query_all(f, &q, &pg);
            if (sx_clock_now_ms() - q0 > slowest) {
                slowest = sx_clock_now_ms() - q0;
                sx_qreq_fmt(&q, slow, sizeof(slow));
            }
            expect_hits(f, &q, ix, &pg);
            expect_shape(f, &q, ix, &pg);
            queries += pg.pages;
            sx_qhits_free(&pg.hits);
            if (modes[k] == SHARDEX__V1__MODE__MODE_UNSPECIFIED)
                continue;
            q.limit = 1 + (uint32_t)(sx_fx_rnd(&f->rng) % 7);
            query_all(f, &q, &pg);
            expect_hits(f, &q, ix, &pg);
            expect_shape(f, &q, ix, &pg);
            queries += pg.pages;
            sx_qhits_free(&pg.hits);
        }
    }
    for (size_t k = 0; k + 1 < nm; k++) {
        check_docs(f, ix, &m[sx_fx_rnd(&f->rng) % 3], modes[k]);
        check_docs(f, ix, &m[n - 3], modes[k]); /* every document */
    }
    fprintf(stderr,
            "  %s: %zu matches x %zu modes equal the model (%" PRIu64 " pages, %" PRIu64
            " ms; slowest unpaged %" PRIu64 " ms: %s)\n",
            ix->name, n, nm, queries, sx_clock_now_ms() - t0, slowest, slow);
}

/* Both indexes equal the model and are listed as it says, and the replicas
 * agree: how most tests end (before `shardex verify`, where they run it). */
static void check_both(fx *f, const sx_qindex *a, const sx_qindex *b)
{
    check_index(f, a);
    check_index(f, b);
    check_listed(f, a);
    check_listed(f, b);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
}

/* ------------------------------------------------------------------- tests -- */

/* Queries while an index may still be BUILDING, after every write before it
 * was applied: each answers with the whole truth or refuses, never with a
 * part of it, with or without `after` tokens. A worker that has not heard of
 * the index yet answers NOT_FOUND. */
typedef struct building_watch {
    fx *f;
    const sx_qindex *ix;
    bool known[SX_TEST_MAX_WORKERS][4]; /* through worker i, mode x after: not NOT_FOUND */
    uint32_t answered, answered_building, refused, unknown;
} building_watch;

static bool building_cond(void *arg)
{
    building_watch *b = arg;
    fx *f = b->f;
    bool all = true;
    for (uint32_t i = 0; i < f->c->nworkers; i++) {
        for (int g = 0; g < 4; g++) {
            uint64_t v = sx_fx_rnd(&f->rng) % NCOLORS;
            sx_qmatch m = {.eq = b->ix->is_int ? sx_qval_int((int64_t)v) : sx_qval_str(COLORS[v])};
            sx_qreq q = {.index = b->ix->name,
                         .match = m,
                         .limit = 10000,
                         .after = g & 2 ? &f->tokens : NULL,
                         .mode =
                             g & 1 ? SHARDEX__V1__MODE__MODE_GLOBAL : SHARDEX__V1__MODE__MODE_LOCAL,
                         .timeout_ms = 5000};
            Shardex__V1__ListIndexesResponse *l = NULL;
            sx_err err = {0};
            bool building = false;
            if (sx_q_list_indexes(f->c, f->c->worker_addr[i], &l, &err) == SX_OK) {
                const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, b->ix->name);
                building = ix && ix->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
            }
            sx_rpc_free(l ? &l->base : NULL);
            sx_qpages pg;
            char d[160];
            sx_status st = sx_q_query_all(f->c, f->c->worker_addr[i], &q, &pg, &err);
            if (st == SX_OK) {
                expect_hits(f, &q, b->ix, &pg);
                b->answered++;
                b->answered_building += building;
            } else if (st == SX_FAILED_PRECONDITION || st == SX_UNAVAILABLE ||
                       st == SX_DEADLINE_EXCEEDED) {
                b->refused++;
            } else if (st == SX_NOT_FOUND) {
                b->unknown++;
            } else {
                SX_FX_FAIL(f->c, "query %s while building: %s: %s", sx_qreq_fmt(&q, d, sizeof(d)),
                           sx_status_name(st), err.msg);
            }
            sx_qhits_free(&pg.hits);
            b->known[i][g] |= st != SX_NOT_FOUND;
            all &= b->known[i][g];
        }
    }
    return all;
}

static void query_while_building(fx *f, const sx_qindex *ix)
{
    building_watch b = {.f = f, .ix = ix};
    uint64_t t0 = sx_clock_now_ms();
    SX_FX_WAIT(f->c, building_cond, &b, WAIT_MS,
               "after CreateIndex %s, some worker still answers NOT_FOUND", ix->name);
    fprintf(stderr,
            "  %s after CreateIndex: %u queries answered right (%u of them while BUILDING), "
            "%u refused, %u NOT_FOUND (every worker knew it after %" PRIu64 " ms)\n",
            ix->name, b.answered, b.answered_building, b.refused, b.unknown,
            sx_clock_now_ms() - t0);
}

static void test_model(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "model");
    random_writes(f, 40);                /* before any index: backfilled */
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS); /* and applied everywhere */
    create_index(f, &IX_COLOR);
    create_index(f, &IX_SIZE);
    query_while_building(f, &IX_COLOR);
    query_while_building(f, &IX_SIZE);
    random_writes(f, 40); /* while building or just after: applied live */
    wait_ready(f, &IX_COLOR);
    wait_ready(f, &IX_SIZE);
    random_writes(f, 30);
    fprintf(stderr, "  %" PRIu64 " writes, %zu documents\n", f->ops, sx_model_len(f->model));
    check_both(f, &IX_COLOR, &IX_SIZE);
    run_verify(f);
}

/* Range-partitioned global indexes, against the model as test_model: every
 * match, paged across partition boundaries, in every mode, with
 * partitions_contacted exactly the term partitions covering the range (1 for
 * a narrow one), and `shardex verify` routing by range too. */
static void test_range_partitioned(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "range_partitioned");
    random_writes(f, 40); /* backfilled */
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    create_index(f, &IX_COLOR_R);
    create_index(f, &IX_SIZE_R);
    query_while_building(f, &IX_COLOR_R);
    random_writes(f, 40); /* applied live, overwrites and deletes among them */
    wait_ready(f, &IX_COLOR_R);
    wait_ready(f, &IX_SIZE_R);
    random_writes(f, 30);
    check_index(f, &IX_COLOR_R);
    check_index(f, &IX_SIZE_R);
    /* Said outright: a narrow range reads one term partition, wider ones more. */
    const struct {
        const sx_qindex *ix;
        sx_qmatch m;
        uint32_t want;
    } cs[] = {
        {&IX_SIZE_R,
         {.range = true,
          .has_min = true,
          .has_max = true,
          .min = sx_qval_int(1),
          .max = sx_qval_int(3)},
         1},
        {&IX_SIZE_R,
         {.range = true,
          .has_min = true,
          .has_max = true,
          .min = sx_qval_int(-1),
          .max = sx_qval_int(3)},
         2},
        {&IX_SIZE_R, {.range = true, .has_min = true, .min = sx_qval_int(-3)}, 4},
        {&IX_COLOR_R,
         {.range = true,
          .has_min = true,
          .has_max = true,
          .min = sx_qval_str("blue"),
          .max = sx_qval_str("green")},
         1},
        {&IX_COLOR_R, {.range = true, .has_max = true, .max = sx_qval_str("red")}, 3},
    };
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        sx_qreq q = {.index = cs[i].ix->name,
                     .match = cs[i].m,
                     .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                     .limit = 2,
                     .after = &f->tokens};
        sx_qpages pg;
        query_all(f, &q, &pg);
        expect_hits(f, &q, cs[i].ix, &pg);
        char d[160];
        if (pg.contacted != cs[i].want)
            SX_FX_FAIL(f->c, "query %s: partitions_contacted %u, want %u",
                       sx_qreq_fmt(&q, d, sizeof(d)), pg.contacted, cs[i].want);
        sx_qhits_free(&pg.hits);
    }
    check_listed(f, &IX_COLOR_R);
    check_listed(f, &IX_SIZE_R);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    run_verify(f);
}

/* A put, then at once a query with its token (through another worker) sees it;
 * so does the removal of the value it replaced. */
static void test_read_your_writes(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "read_your_writes");
    create_index(f, &IX_COLOR);
    create_index(f, &IX_SIZE);
    wait_ready(f, &IX_COLOR);
    wait_ready(f, &IX_SIZE);
    random_writes(f, 10);
    char d[160];
    for (int i = 0; i < 20; i++) {
        char id[32], color[32], old[32];
        snprintf(id, sizeof(id), "ryw-%d", i % 7);
        snprintf(color, sizeof(color), "ryw-%d", i);
        snprintf(old, sizeof(old), "ryw-%d", i - 7);
        sx_qdoc doc = {0};
        snprintf(doc.id, sizeof(doc.id), "%s", id);
        sx_qdoc_add(&doc, "color", sx_qval_str(color));
        sx_qdoc_add(&doc, "size", sx_qval_int(1000 + i));
        sx_qtokens tok = {0};
        sx_err err = {0};
        uint32_t via = (uint32_t)i % 3;
        sx_status st = sx_q_put(f->c, f->c->worker_addr[via], &doc, 1, 10000, &tok, NULL, &err);
        if (st != SX_OK)
            SX_FX_FAIL(f->c, "put %s: %s: %s", id, sx_status_name(st), err.msg);
        sx_model_put(f->model, &doc);
        /* The new values are there, the replaced ones (i >= 7) are gone. */
        sx_qmatch ms[3] = {
            {.eq = sx_qval_str(color)}, {.eq = sx_qval_int(1000 + i)}, {.eq = sx_qval_str(old)}};
        for (int k = 0; k < (i >= 7 ? 3 : 2); k++) {
            const sx_qindex *ix = k == 1 ? &IX_SIZE : &IX_COLOR;
            for (int g = 0; g < 2; g++) {
                sx_qreq q = {.index = ix->name,
                             .match = ms[k],
                             .limit = 10,
                             .mode =
                                 g ? SHARDEX__V1__MODE__MODE_GLOBAL : SHARDEX__V1__MODE__MODE_LOCAL,
                             .after = &tok};
                sx_qpages pg;
                uint32_t qvia = (via + 1 + (uint32_t)g) % 3;
                st = sx_q_query_all(f->c, f->c->worker_addr[qvia], &q, &pg, &err);
                if (st != SX_OK)
                    SX_FX_FAIL(f->c, "round %d: query %s: %s: %s", i, sx_qreq_fmt(&q, d, sizeof(d)),
                               sx_status_name(st), err.msg);
                bool want = k < 2;
                if (pg.hits.n != (want ? 1u : 0u) || (want && strcmp(pg.hits.h[0].id, id) != 0))
                    SX_FX_FAIL(f->c, "round %d: query %s with the put's token: %zu hits%s%s", i,
                               sx_qreq_fmt(&q, d, sizeof(d)), pg.hits.n,
                               pg.hits.n ? ", first " : "", pg.hits.n ? pg.hits.h[0].id : "");
                sx_qhits_free(&pg.hits);
            }
        }
        for (uint32_t p = 0; p < P; p++)
            if (tok.off[p] > f->tokens.off[p])
                f->tokens.off[p] = tok.off[p];
    }
    check_index(f, &IX_COLOR);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
}

static int32_t leader_of(fx *f, uint32_t p)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        SX_FX_FAIL(f->c, "no map");
    int32_t leader = m->partitions[p]->leader, victim = -1;
    for (uint32_t i = 0; i < f->c->nworkers; i++)
        if (sx_cluster_index_of(m, f->c, i) == leader)
            victim = (int32_t)i;
    sx_rpc_free(&m->base);
    return victim;
}

static void restart_worker(fx *f, uint32_t i)
{
    if (!sx_cluster_start_worker(f->c, i) || !sx_cluster_wait_alive(f->c, i, WAIT_MS))
        SX_FX_FAIL(f->c, "worker %u did not come back", i);
}

static void set_faults_all(fx *f, const char *spec)
{
    for (uint32_t i = 0; i < f->c->nworkers; i++)
        if (f->c->worker_pid[i] > 0 && !sx_cluster_set_faults(f->c, i, spec))
            SX_FX_FAIL(f->c, "SetFaults on worker %u refused \"%s\"", i, spec);
}

/* One writer thread: sequential, so that the model stays exact. */
typedef struct writer {
    fx *f;
    uint64_t rng;
    pthread_t th;
    bool stop;   /* under f->mu */
    bool failed; /* under f->mu; why is written before */
    char why[512];
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->f->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->f->mu);
        if (stop)
            break;
        op o;
        random_write(&w->rng, &o);
        if (!do_write(w->f, &w->rng, &o, w->why, sizeof(w->why))) {
            pthread_mutex_lock(&w->f->mu);
            w->failed = true;
            pthread_mutex_unlock(&w->f->mu);
            break;
        }
    }
    return NULL;
}

typedef struct ops_wait {
    fx *f;
    writer *w;
    uint64_t at_least;
} ops_wait;

static bool ops_cond(void *arg)
{
    ops_wait *o = arg;
    pthread_mutex_lock(&o->f->mu);
    bool ok = o->f->ops >= o->at_least || o->w->failed;
    pthread_mutex_unlock(&o->f->mu);
    return ok;
}

static uint64_t ops_now(fx *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->ops;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void writer_start(writer *w, fx *f)
{
    memset(w, 0, sizeof(*w));
    w->f = f;
    w->rng = sx_fx_rnd(&f->rng);
    pthread_create(&w->th, NULL, writer_main, w);
}

/* Stops and joins the writer; fails the test if it failed. */
static void writer_stop(writer *w)
{
    pthread_mutex_lock(&w->f->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->f->mu);
    pthread_join(w->th, NULL);
    if (w->failed)
        SX_FX_FAIL(w->f->c, "writer: %s", w->why);
}

/* Waits until n more writes are acknowledged (false: the writer failed or
 * did not get there within WAIT_MS). */
static bool writer_wait(writer *w, uint64_t n)
{
    ops_wait ow = {w->f, w, ops_now(w->f) + n};
    return sx_h_wait_for(ops_cond, &ow, WAIT_MS) && !w->failed;
}

/* Shipping with duplicates, delays, lost requests and lost replies, and a log
 * leader killed mid-stream: every change takes effect exactly once. */
static void test_exactly_once_under_faults(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "exactly_once_under_faults");
    create_index(f, &IX_COLOR);
    create_index(f, &IX_SIZE);
    wait_ready(f, &IX_COLOR);
    wait_ready(f, &IX_SIZE);
    f->tolerant = true;
    random_writes(f, 20);
    char spec[256];
    snprintf(spec, sizeof(spec),
             "seed=%" PRIu64 ";method=/shardex.internal.v1.Index/Ship,dup=0.3,delay=0.3,"
             "delay_ms=1-30,drop=0.1,drop_reply=0.1",
             sx_fx_rnd(&f->rng) % 1000000);
    set_faults_all(f, spec);
    uint32_t p = (uint32_t)(sx_fx_rnd(&f->rng) % P);
    writer w;
    writer_start(&w, f);
    /* The main thread kills and restarts while the writer writes; a failure
     * stops the writer before the test fails. */
    char failure[256] = "";
    int32_t victim = -1;
    if (!writer_wait(&w, 30))
        snprintf(failure, sizeof(failure), "no progress before the kill");
    if (!failure[0] && (victim = leader_of(f, p)) < 0)
        snprintf(failure, sizeof(failure), "partition %u has no leader", p);
    if (!failure[0]) {
        /* Somewhere in the middle of a write (each takes a few ms). */
        sx_clock_sleep_ms(sx_fx_rnd(&f->rng) % 20);
        fprintf(stderr, "  killing worker %d, leader of partition %u, at write %" PRIu64 "\n",
                victim, p, ops_now(f));
        pthread_mutex_lock(&f->mu);
        sx_cluster_kill_worker(f->c, (uint32_t)victim);
        pthread_mutex_unlock(&f->mu);
        if (!writer_wait(&w, 30))
            snprintf(failure, sizeof(failure), "no progress after the kill");
    }
    if (!failure[0]) {
        fprintf(stderr, "  restarting it at write %" PRIu64 "\n", ops_now(f));
        pthread_mutex_lock(&f->mu);
        bool started = sx_cluster_start_worker(f->c, (uint32_t)victim);
        pthread_mutex_unlock(&f->mu);
        if (!started || !sx_cluster_wait_alive(f->c, (uint32_t)victim, WAIT_MS))
            snprintf(failure, sizeof(failure), "worker %d did not come back", victim);
        else if (!sx_cluster_set_faults(f->c, (uint32_t)victim, spec))
            snprintf(failure, sizeof(failure), "SetFaults on the restarted worker");
        else if (!writer_wait(&w, 40))
            snprintf(failure, sizeof(failure), "no progress after the restart");
    }
    writer_stop(&w);
    if (failure[0])
        SX_FX_FAIL(f->c, "%s", failure);
    set_faults_all(f, "");
    fprintf(stderr, "  %" PRIu64 " writes (%" PRIu64 " retried), %zu documents\n", f->ops,
            f->retries, sx_model_len(f->model));
    check_both(f, &IX_COLOR, &IX_SIZE);
    run_verify(f);
}

/* Indexes created while a writer keeps writing: the backfill (up to its
 * marker) and the live changes (after it) together give the model. */
static void test_backfill_while_writing(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "backfill_while_writing");
    writer w;
    writer_start(&w, f);
    bool ok = writer_wait(&w, 60);
    uint64_t at_create = ops_now(f);
    sx_err err = {0};
    sx_status st1 = ok ? sx_q_create_index(f->c, f->c->worker_addr[0], &IX_COLOR, &err) : SX_OK;
    sx_status st2 =
        ok && st1 == SX_OK ? sx_q_create_index(f->c, f->c->worker_addr[1], &IX_SIZE, &err) : SX_OK;
    bool ready = ok && st1 == SX_OK && st2 == SX_OK &&
                 sx_q_wait_ready(f->c, f->c->worker_addr[2], IX_COLOR.name, FAILOVER_MS) &&
                 sx_q_wait_ready(f->c, f->c->worker_addr[0], IX_SIZE.name, FAILOVER_MS);
    uint64_t at_ready = ops_now(f);
    bool more = ready && writer_wait(&w, 40);
    /* The writer stops before anything can fail: it uses the cluster. */
    writer_stop(&w);
    if (!ok || (ready && !more))
        SX_FX_FAIL(f->c, "the writer did not make progress (%" PRIu64 " writes)", f->ops);
    if (st1 != SX_OK || st2 != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex: %s: %s", sx_status_name(st1 != SX_OK ? st1 : st2), err.msg);
    if (!ready)
        SX_FX_FAIL(f->c, "the indexes did not become READY while writes went on");
    fprintf(stderr,
            "  %" PRIu64 " writes: %" PRIu64 " before CreateIndex, %" PRIu64
            " until READY, %" PRIu64 " after; %zu documents\n",
            f->ops, at_create, at_ready - at_create, f->ops - at_ready, sx_model_len(f->model));
    check_both(f, &IX_COLOR, &IX_SIZE);
}

/* What queries said while a term partition lost its owner and got a new one:
 * GLOBAL and unspecified of one of its values, and GLOBAL of every value (a
 * range: every term partition). */
enum { W_GLOBAL, W_AUTO, W_RANGE, W_KINDS };
static const char *const W_NAMES[W_KINDS] = {"GLOBAL ==", "unspecified ==", "GLOBAL range"};

typedef struct owner_watch {
    fx *f;
    const sx_qindex *ix;
    sx_qmatch match;
    uint32_t term;     /* position in ClusterMap.terms */
    int32_t old_owner; /* map index */
    uint64_t old_epoch;
    uint32_t seen[W_KINDS][SX_STATUS_COUNT]; /* answers by status */
    char msg[W_KINDS][SX_STATUS_COUNT][96];  /* the first message of each */
    uint32_t auto_local;                     /* unspecified answered in LOCAL */
    char wrong[512];                         /* the first wrong answer or unexpected status */
} owner_watch;

static bool owner_answer(owner_watch *o, int kind)
{
    fx *f = o->f;
    sx_qreq q = {.index = o->ix->name,
                 .match = o->match,
                 .mode = kind == W_AUTO ? SHARDEX__V1__MODE__MODE_UNSPECIFIED
                                        : SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 10000,
                 .after = &f->tokens,
                 .timeout_ms = 300};
    if (kind == W_RANGE)
        q.match = (sx_qmatch){.range = true};
    sx_qpages pg;
    sx_err err = {0};
    char d[160], why[256];
    sx_status st = sx_q_query_all(f->c, pick(f, &f->rng).s, &q, &pg, &err);
    if (st < SX_STATUS_COUNT && o->seen[kind][st]++ == 0)
        snprintf(o->msg[kind][st], sizeof(o->msg[kind][st]), "%s", err.msg);
    if (st == SX_OK) {
        sx_qhits want = {0};
        sx_model_expect(f->model, o->ix->field, o->ix->is_int, &q.match, &want);
        if (!sx_qhits_equal(&pg.hits, &want, why, sizeof(why)) && !o->wrong[0])
            snprintf(o->wrong, sizeof(o->wrong), "query %s answered wrong (mode %d): %s",
                     sx_qreq_fmt(&q, d, sizeof(d)), pg.mode, why);
        o->auto_local += kind == W_AUTO && pg.mode == SHARDEX__V1__MODE__MODE_LOCAL;
        sx_qhits_free(&want);
    } else if (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED && !o->wrong[0]) {
        /* The contract: UNAVAILABLE while the term partition has no owner
         * (DEADLINE_EXCEEDED: our short deadline passed first). */
        snprintf(o->wrong, sizeof(o->wrong), "query %s: %s \"%s\", want UNAVAILABLE or an answer",
                 sx_qreq_fmt(&q, d, sizeof(d)), sx_status_name(st), err.msg);
    }
    sx_qhits_free(&pg.hits);
    return st == SX_OK;
}

static bool owner_cond(void *arg)
{
    owner_watch *o = arg;
    bool gok = owner_answer(o, W_GLOBAL);
    owner_answer(o, W_AUTO);
    owner_answer(o, W_RANGE);
    if (o->wrong[0])
        return true;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(o->f->c);
    if (!m)
        return false;
    const Shardex__Internal__V1__TermPartition *tp = m->terms[o->term];
    bool moved = tp->owner >= 0 && tp->owner != o->old_owner && tp->epoch > o->old_epoch &&
                 m->workers[tp->owner]->alive;
    sx_rpc_free(&m->base);
    return moved && gok;
}

static void owner_report(const owner_watch *o)
{
    for (int k = 0; k < W_KINDS; k++) {
        fprintf(stderr, "    %s:", W_NAMES[k]);
        for (int st = 0; st < SX_STATUS_COUNT; st++)
            if (o->seen[k][st])
                fprintf(stderr, " %s x%u%s%s%s", sx_status_name((sx_status)st), o->seen[k][st],
                        o->msg[k][st][0] ? " (\"" : "", o->msg[k][st],
                        o->msg[k][st][0] ? "\")" : "");
        if (k == W_AUTO)
            fprintf(stderr, "; %u of the answers LOCAL", o->auto_local);
        fprintf(stderr, "\n");
    }
}

/* The owner of a term partition is killed: GLOBAL queries of its values answer
 * UNAVAILABLE or right, never wrong; a new owner is given it and rebuilds it. */
static void test_term_owner_killed(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "term_owner_killed");
    create_index(f, &IX_COLOR);
    create_index(f, &IX_SIZE);
    random_writes(f, 60);
    wait_ready(f, &IX_COLOR);
    wait_ready(f, &IX_SIZE);

    owner_watch o = {.f = f, .ix = &IX_COLOR};
    const char *value = COLORS[sx_fx_rnd(&f->rng) % NCOLORS];
    o.match = (sx_qmatch){.eq = sx_qval_str(value)};
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    assert_non_null(m);
    uint32_t t = UINT32_MAX;
    for (size_t k = 0; k < m->n_indexes; k++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[k];
        if (strcmp(e->spec->name, IX_COLOR.name) != 0)
            continue;
        assert_int_equal(e->spec->term_partitions, term_partitions(&IX_COLOR));
        t = sx_term_partition_of_str(IX_COLOR.name, value, strlen(value), e->spec->term_partitions);
        o.term = e->first_term + t;
    }
    assert_true(t != UINT32_MAX && o.term < m->n_terms);
    o.old_owner = m->terms[o.term]->owner;
    o.old_epoch = m->terms[o.term]->epoch;
    int32_t victim = -1;
    for (uint32_t i = 0; i < f->c->nworkers; i++)
        if (sx_cluster_index_of(m, f->c, i) == o.old_owner)
            victim = (int32_t)i;
    sx_rpc_free(&m->base);
    if (victim < 0)
        SX_FX_FAIL(f->c, "term partition %u of %s has no owner", t, IX_COLOR.name);
    fprintf(stderr, "  killing worker %d, owner of term partition %u (value \"%s\")\n", victim, t,
            value);
    if (!owner_answer(&o, W_GLOBAL) || o.wrong[0])
        SX_FX_FAIL(f->c, "before the kill: %s", o.wrong[0] ? o.wrong : "GLOBAL refused");
    memset(o.seen, 0, sizeof(o.seen));

    sx_cluster_kill_worker(f->c, (uint32_t)victim);
    f->tolerant = true;
    uint64_t t0 = sx_clock_now_ms();
    bool done = sx_h_wait_for(owner_cond, &o, FAILOVER_MS);
    fprintf(stderr, "  while it moved (%" PRIu64 " ms), queries answered:\n",
            sx_clock_now_ms() - t0);
    owner_report(&o);
    if (o.wrong[0])
        SX_FX_FAIL(f->c, "while term partition %u moved: %s", t, o.wrong);
    if (!done)
        SX_FX_FAIL(f->c, "term partition %u did not get a new owner that serves it", t);

    /* Writes go on, and everything equals the model again. */
    random_writes(f, 30);
    check_index(f, &IX_COLOR);
    check_index(f, &IX_SIZE);
    restart_worker(f, (uint32_t)victim);
    check_listed(f, &IX_COLOR);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    run_verify(f);
}

static void expect_status(fx *f, const sx_qreq *q, const ProtobufCBinaryData *token, sx_status want,
                          const char *in_msg)
{
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    char d[160];
    sx_status st = sx_q_query(f->c, pick(f, &f->rng).s, q, token, &r, &err);
    sx_rpc_free(r ? &r->base : NULL);
    if (st != want || (in_msg && !strstr(err.msg, in_msg)))
        SX_FX_FAIL(f->c, "query %s: %s \"%s\", want %s naming \"%s\"", sx_qreq_fmt(q, d, sizeof(d)),
                   sx_status_name(st), err.msg, sx_status_name(want), in_msg ? in_msg : "");
}

static void test_bad_queries(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "bad_queries");
    static const sx_qindex gonly = {.name = "gcolor", .field = "color", .global = true};
    create_index(f, &IX_COLOR);
    create_index(f, &IX_SIZE);
    create_index(f, &gonly);
    sx_qdoc docs[3] = {0};
    for (int i = 0; i < 3; i++) {
        snprintf(docs[i].id, sizeof(docs[i].id), "bad-%d", i);
        sx_qdoc_add(&docs[i], "color", sx_qval_str("red"));
        sx_qdoc_add(&docs[i], "size", sx_qval_int(i));
    }
    sx_err err = {0};
    if (sx_q_put(f->c, f->c->worker_addr[0], docs, 3, 10000, &f->tokens, NULL, &err) != SX_OK)
        SX_FX_FAIL(f->c, "put: %s", err.msg);
    wait_ready(f, &IX_COLOR);
    wait_ready(f, &IX_SIZE);
    wait_ready(f, &gonly);

    sx_qreq q = {.index = "nope", .match = {.eq = sx_qval_str("red")}};
    expect_status(f, &q, NULL, SX_NOT_FOUND, "nope");
    q.index = IX_COLOR.name;
    q.match.eq = sx_qval_int(3);
    expect_status(f, &q, NULL, SX_INVALID_ARGUMENT, "eq");
    q.match = (sx_qmatch){.range = true, .has_max = true, .max = sx_qval_int(3)};
    expect_status(f, &q, NULL, SX_INVALID_ARGUMENT, "range.max");
    q.match = (sx_qmatch){.eq = sx_qval_str("red")};
    q.limit = 20000;
    expect_status(f, &q, NULL, SX_INVALID_ARGUMENT, "limit");
    q.limit = 10001;
    expect_status(f, &q, NULL, SX_INVALID_ARGUMENT, "10000");
    q.limit = 10000;
    expect_status(f, &q, NULL, SX_OK, NULL);

    /* A page token of color is refused by size and by gcolor (same field). */
    q.limit = 1;
    q.after = &f->tokens;
    q.mode = SHARDEX__V1__MODE__MODE_LOCAL;
    Shardex__V1__QueryResponse *r = NULL;
    if (sx_q_query(f->c, f->c->worker_addr[1], &q, NULL, &r, &err) != SX_OK)
        SX_FX_FAIL(f->c, "query color: %s", err.msg);
    if (r->n_hits != 1 || r->next_page_token.len == 0)
        SX_FX_FAIL(f->c, "query color limit 1: %zu hits, token of %zu bytes", r->n_hits,
                   r->next_page_token.len);
    sx_qreq other = {.index = IX_SIZE.name, .match = {.eq = sx_qval_int(1)}};
    expect_status(f, &other, &r->next_page_token, SX_INVALID_ARGUMENT, "page_token");
    other = (sx_qreq){.index = gonly.name, .match = {.eq = sx_qval_str("red")}};
    expect_status(f, &other, &r->next_page_token, SX_INVALID_ARGUMENT, "page_token");
    uint8_t junk[3] = {0xee, 1, 2};
    ProtobufCBinaryData bad = {sizeof(junk), junk};
    expect_status(f, &q, &bad, SX_INVALID_ARGUMENT, "page_token");
    expect_status(f, &q, &r->next_page_token, SX_OK, NULL); /* its own index takes it */
    sx_rpc_free(&r->base);

    /* A mode the index is not kept in. */
    other.mode = SHARDEX__V1__MODE__MODE_LOCAL;
    expect_status(f, &other, NULL, SX_FAILED_PRECONDITION, "LOCAL");
    other.mode = SHARDEX__V1__MODE__MODE_UNSPECIFIED;
    sx_qpages pg;
    other.after = &f->tokens;
    if (sx_q_query_all(f->c, f->c->worker_addr[2], &other, &pg, &err) != SX_OK)
        SX_FX_FAIL(f->c, "unspecified on a global-only index: %s", err.msg);
    assert_int_equal(pg.mode, SHARDEX__V1__MODE__MODE_GLOBAL);
    assert_int_equal(pg.hits.n, 3);
    sx_qhits_free(&pg.hits);

    /* An `after` token of a partition that does not exist. */
    sx_qtokens far = {0};
    far.off[P] = 1;
    q.after = &far;
    expect_status(f, &q, NULL, SX_INVALID_ARGUMENT, "after");
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
}

typedef struct gone_wait {
    fx *f;
    const sx_qindex *ix;
    uint32_t rounds, answered; /* answered: OK, from a worker that had not heard yet */
    sx_status last[SX_TEST_MAX_WORKERS];
    char wrong[512];
} gone_wait;

/* Every worker answers NOT_FOUND in every mode. Until then, an answer is the
 * whole of what the index held (nothing was written since the drop). */
static bool gone_cond(void *arg)
{
    gone_wait *g = arg;
    fx *f = g->f;
    bool ok = true;
    g->rounds++;
    for (uint32_t i = 0; i < f->c->nworkers; i++) {
        for (int mode = 0; mode < 3; mode++) {
            sx_qreq q = {.index = g->ix->name,
                         .match = {.eq = sx_qval_str("red")},
                         .limit = 10000,
                         .mode = (Shardex__V1__Mode)mode};
            sx_qpages pg;
            sx_err err = {0};
            char d[160], why[256];
            g->last[i] = sx_q_query_all(f->c, f->c->worker_addr[i], &q, &pg, &err);
            if (g->last[i] == SX_OK) {
                sx_qhits want = {0};
                sx_model_expect(f->model, g->ix->field, g->ix->is_int, &q.match, &want);
                if (!sx_qhits_equal(&pg.hits, &want, why, sizeof(why)) && !g->wrong[0])
                    snprintf(g->wrong, sizeof(g->wrong), "query %s through worker %u: %s",
                             sx_qreq_fmt(&q, d, sizeof(d)), i, why);
                sx_qhits_free(&want);
                g->answered++;
            } else if (g->last[i] != SX_NOT_FOUND && !g->wrong[0]) {
                snprintf(g->wrong, sizeof(g->wrong), "query %s through worker %u: %s \"%s\"",
                         sx_qreq_fmt(&q, d, sizeof(d)), i, sx_status_name(g->last[i]), err.msg);
            }
            sx_qhits_free(&pg.hits);
            ok &= g->last[i] == SX_NOT_FOUND;
        }
    }
    return ok || g->wrong[0];
}

static void test_drop_and_recreate(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "drop_and_recreate");
    create_index(f, &IX_COLOR);
    random_writes(f, 40);
    wait_ready(f, &IX_COLOR);
    check_index(f, &IX_COLOR);
    /* A page token of the first incarnation. */
    sx_qreq q = {.index = IX_COLOR.name, .match = {.range = true}, .limit = 1, .after = &f->tokens};
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    if (sx_q_query(f->c, f->c->worker_addr[0], &q, NULL, &r, &err) != SX_OK ||
        r->next_page_token.len == 0)
        SX_FX_FAIL(f->c, "query for a page token: %s", err.msg);

    sx_status st = sx_q_drop_index(f->c, f->c->worker_addr[1], IX_COLOR.name, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "DropIndex: %s: %s", sx_status_name(st), err.msg);
    Shardex__V1__ListIndexesResponse *l = NULL;
    assert_int_equal(sx_q_list_indexes(f->c, f->c->worker_addr[2], &l, &err), SX_OK);
    assert_null(sx_q_find_index(l, IX_COLOR.name));
    sx_rpc_free(&l->base);
    gone_wait g = {.f = f, .ix = &IX_COLOR};
    uint64_t t0 = sx_clock_now_ms();
    bool gone = sx_h_wait_for(gone_cond, &g, WAIT_MS);
    if (g.wrong[0])
        SX_FX_FAIL(f->c, "after DropIndex: %s", g.wrong);
    if (!gone)
        SX_FX_FAIL(f->c, "after DropIndex, queries answer %s, %s, %s", sx_status_name(g.last[0]),
                   sx_status_name(g.last[1]), sx_status_name(g.last[2]));
    fprintf(stderr,
            "  after DropIndex: NOT_FOUND everywhere after %" PRIu64 " ms, %u rounds, %u answers "
            "(whole) before\n",
            sx_clock_now_ms() - t0, g.rounds, g.answered);
    st = sx_q_drop_index(f->c, f->c->worker_addr[0], IX_COLOR.name, &err);
    if (st != SX_NOT_FOUND)
        SX_FX_FAIL(f->c, "DropIndex of a dropped index: %s, want NOT_FOUND", sx_status_name(st));

    /* Writes while it does not exist; then the same name again: a new index
     * holding everything, that refuses the old page token. */
    random_writes(f, 30);
    create_index(f, &IX_COLOR);
    random_writes(f, 10);
    wait_ready(f, &IX_COLOR);
    check_index(f, &IX_COLOR);
    expect_status(f, &q, &r->next_page_token, SX_INVALID_ARGUMENT, "page_token");
    sx_rpc_free(&r->base);
    check_listed(f, &IX_COLOR);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_partitioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_your_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_and_recreate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backfill_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exactly_once_under_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_term_owner_killed, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
