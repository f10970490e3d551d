/* test_hot_values.c: salting a hot value of GLOBAL indexes (docs/indexes.md
 * "Hot values") with real processes (coordinator + 3 workers, P=4, R=3),
 * against an in-test model (tests/support/query.h) of random puts,
 * overwrites and deletes in which one value (HOT) is held by about a third of
 * the documents, on a hash-partitioned and a range-partitioned index:
 *  - SaltIndex refuses with a clear error naming the field;
 *  - salts while a writer writes: read-your-writes on the hot value before
 *    and after (a put's token, then an eq query through another worker: a
 *    document put with HOT is seen, one moved off HOT is not), every worker
 *    plans an eq on HOT over its salt set (partitions_contacted), ListIndexes
 *    shows the salts; every query (eq on HOT, ranges over it, paged) equals
 *    the model and `shardex verify` is clean;
 *  - a paged eq query on HOT with a salt applied between its pages and
 *    overwrites that keep HOT (the entries move partitions): no hit skipped
 *    or repeated;
 *  - kill -9 of the owner of a salt set's term partition after the salt (its
 *    replacement is rebuilt by each entry's version): queries and verify
 *    right;
 *  - the coordinator's --hot-value-share salts HOT by itself.
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
#define NIDS 150
#define VMAX 1000
#define HOT 420 /* in the range index's t1 = [250, 500) */

static uint64_t seed;

static const sx_qindex IX_H = {
    .name = "m_h", .field = "m", .is_int = true, .global = true, .term_partitions = 4};
static const sx_qindex IX_R = {
    .name = "m_r",
    .field = "m",
    .is_int = true,
    .global = true,
    .nsplits = 3,
    .splits = {{.is_int = true, .i = 250}, {.is_int = true, .i = 500}, {.is_int = true, .i = 750}}};

/* The model fixture (modelfx.h): cluster, model, tokens, writer thread. */
typedef sx_mfx fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    return sx_mfx_setup(state, &o);
}

/* ------------------------------------------------------------------ writes -- */

/* hot: the value is HOT; else a third of documents get HOT, the rest any. */
static void random_doc(uint64_t *s, const char *id, sx_qdoc *d, int hot)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    int64_t v =
        hot > 0 || (hot == 0 && sx_fx_rnd(s) % 3 == 0) ? HOT : (int64_t)(sx_fx_rnd(s) % VMAX);
    if (hot < 0 && v == HOT)
        v = HOT + 1;
    sx_qdoc_add(d, "m", sx_qval_int(v));
    if (sx_fx_rnd(s) % 8 == 0)
        sx_qdoc_add(d, "m", sx_qval_int((int64_t)(sx_fx_rnd(s) % VMAX)));
}

/* A put of 1-4 random documents (ids doc-NNN: overwrites keep HOT, take it,
 * or leave it) or a delete of 1-2. */
static bool write_one(fx *f, uint64_t *s, char *why, size_t cap)
{
    bool del = sx_fx_rnd(s) % 6 == 0;
    size_t k = 1 + sx_fx_rnd(s) % (del ? 2 : 4);
    sx_qdoc docs[4];
    char ids[4][SX_QID];
    for (size_t i = 0; i < k; i++) {
        sx_mfx_random_id(s, "doc", NIDS, ids, i);
        if (!del)
            random_doc(s, ids[i], &docs[i], 0);
    }
    sx_qtokens t;
    return sx_mfx_write(f, s, del ? NULL : docs, (const char(*)[SX_QID])ids, k, &t, why, cap);
}

static void random_writes(fx *f, int n)
{
    char why[512];
    for (int i = 0; i < n; i++)
        if (!write_one(f, &f->rng, why, sizeof(why)))
            SX_FX_FAIL(f->c, "write %d: %s", i, why);
}

/* ---------------------------------------------------------------- indexes -- */

/* SaltIndex through a running worker. */
static sx_status salt(fx *f, const char *name, const Shardex__V1__Value *v, uint32_t ways,
                      sx_err *err)
{
    Shardex__V1__SaltIndexRequest req = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    req.name = (char *)name;
    req.value = (Shardex__V1__Value *)v;
    req.ways = ways;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    sx_status st =
        sx_rpc_invoke(f->c->rpc, sx_mfx_pick(f, &f->rng).s, &shardex__v1__shardex__descriptor,
                      "SaltIndex", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

static Shardex__V1__Value ival(int64_t i)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = i;
    return v;
}

static void salt_hot(fx *f, const char *name, uint32_t ways)
{
    Shardex__V1__Value v = ival(HOT);
    sx_err err = {0};
    sx_status st = salt(f, name, &v, ways, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "SaltIndex %s %d over %u: %s: %s", name, HOT, ways, sx_status_name(st),
                   err.msg);
    fprintf(stderr, "  %s: %d salted over %u term partitions\n", name, HOT, ways);
}

static void expect_refused(fx *f, const char *name, const Shardex__V1__Value *v, uint32_t ways,
                           sx_status want, const char *msg_part)
{
    sx_err err = {0};
    sx_status st = salt(f, name, v, ways, &err);
    if (st != want || !strstr(err.msg, msg_part))
        SX_FX_FAIL(f->c, "salt %s ways=%u: %s \"%s\", want %s with \"%s\"", name, ways,
                   sx_status_name(st), err.msg, sx_status_name(want), msg_part);
    fprintf(stderr, "  refused as it should: %s\n", err.msg);
}

/* The term partitions of index name's salt of HOT in the coordinator's map
 * (n: how many; 0 when not salted). */
static size_t salt_terms(fx *f, const char *name, uint32_t *terms, size_t cap)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        SX_FX_FAIL(f->c, "no map");
    size_t n = 0;
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (strcmp(e->spec->name, name) != 0)
            continue;
        for (size_t k = 0; k < e->n_salts; k++)
            if (e->salts[k]->value && e->salts[k]->value->i == HOT)
                for (size_t j = 0; j < e->salts[k]->n_terms && n < cap; j++)
                    terms[n++] = e->salts[k]->terms[j];
    }
    sx_rpc_free(&m->base);
    return n;
}

/* ----------------------------------------------------------------- queries -- */

/* Every match below on the first nix of IX_H, IX_R, GLOBAL, paged (7 and
 * 1000), with the latest tokens: equal to the model. */
static void check_all(fx *f, size_t nix)
{
    sx_qmatch ms[] = {{.eq = sx_qval_int(HOT)},      {.eq = sx_qval_int(HOT + 1)},
                      sx_mfx_int_range(-1, -1),      sx_mfx_int_range(HOT, HOT),
                      sx_mfx_int_range(400, 450),    sx_mfx_int_range(0, HOT - 1),
                      sx_mfx_int_range(HOT + 1, -1), sx_mfx_int_range(300, 600)};
    const sx_qindex *ixs[] = {&IX_H, &IX_R};
    for (size_t x = 0; x < nix; x++)
        sx_mfx_check_matches(f, ixs[x], ms, sizeof(ms) / sizeof(ms[0]));
}

/* Read-your-writes on HOT through index ix: a document put with HOT is seen
 * by an eq query with the put's token through another worker; one moved off
 * HOT is not. Ids of their own (ryw-N): the writer never touches them. */
static void ryw_rounds(fx *f, const sx_qindex *ix, int rounds)
{
    char why[512], d[160];
    for (int i = 0; i < rounds; i++) {
        sx_qdoc doc;
        char id[SX_QID];
        snprintf(id, sizeof(id), "ryw-%02u", (unsigned)(sx_fx_rnd(&f->rng) % 20));
        bool on = sx_fx_rnd(&f->rng) % 3 != 0;
        random_doc(&f->rng, id, &doc, on ? 1 : -1);
        if (!on)
            doc.n = 1; /* no second value: certainly off HOT */
        sx_qtokens tok;
        if (!sx_mfx_write(f, &f->rng, &doc, NULL, 1, &tok, why, sizeof(why)))
            SX_FX_FAIL(f->c, "ryw write %d: %s", i, why);
        sx_qreq q = {.index = ix->name,
                     .match = {.eq = sx_qval_int(HOT)},
                     .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                     .limit = 1000,
                     .after = &tok};
        bool seen = sx_mfx_query_has(f, &q, id);
        if (seen != on)
            SX_FX_FAIL(f->c, "ryw %d: %s put %s %d, query %s with its token %s it", i, id,
                       on ? "with" : "without", HOT, sx_qreq_fmt(&q, d, sizeof(d)),
                       seen ? "sees" : "does not see");
    }
}

/* An eq on HOT through one worker contacts `want` term partitions (its map
 * has the salt). */
typedef struct contacted_wait {
    fx *f;
    const char *name;
    uint32_t worker, want, got;
} contacted_wait;

static bool contacted_cond(void *arg)
{
    contacted_wait *w = arg;
    sx_qreq q = {.index = w->name,
                 .match = {.eq = sx_qval_int(HOT)},
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1000,
                 .after = &w->f->tokens};
    sx_err err = {0};
    if (sx_mfx_contacted(w->f, w->worker, &q, &w->got, &err) != SX_OK)
        return false;
    return w->got == w->want;
}

static void wait_contacted(fx *f, const char *name, uint32_t want)
{
    for (uint32_t i = 0; i < f->c->nworkers; i++) {
        if (f->c->worker_pid[i] <= 0)
            continue;
        contacted_wait cw = {.f = f, .name = name, .worker = i, .want = want};
        SX_FX_WAIT(f->c, contacted_cond, &cw, WAIT_MS,
                   "worker %u: eq %d on %s contacted %u partitions, want %u", i, HOT, name, cw.got,
                   want);
    }
}

/* ListIndexes shows the salt: value, ways. */
static void expect_listed(fx *f, const char *name, uint32_t ways)
{
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_err err = {0};
    if (sx_q_list_indexes(f->c, sx_mfx_pick(f, &f->rng).s, &l, &err) != SX_OK)
        SX_FX_FAIL(f->c, "ListIndexes: %s", err.msg);
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, name);
    bool ok = ix && ix->n_hot_values == 1 && ix->hot_values[0]->value &&
              ix->hot_values[0]->value->i == HOT && ix->hot_values[0]->ways == ways;
    sx_rpc_free(&l->base);
    if (!ok)
        SX_FX_FAIL(f->c, "ListIndexes does not show %s's hot value %d over %u", name, HOT, ways);
}

/* ------------------------------------------------------------------ tests -- */

static void test_salt_while_writing(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "salt_while_writing");
    random_writes(f, 40);
    sx_mfx_create_index(f, &IX_H, FAILOVER_MS);
    sx_mfx_create_index(f, &IX_R, FAILOVER_MS);
    Shardex__V1__Value hot = ival(HOT), str = SHARDEX__V1__VALUE__INIT;
    str.kind_case = SHARDEX__V1__VALUE__KIND_S;
    str.s = "x";
    expect_refused(f, IX_H.name, &hot, 1, SX_INVALID_ARGUMENT, "ways: 1 is not in [2, 4]");
    expect_refused(f, IX_H.name, &str, 2, SX_INVALID_ARGUMENT, "value: not a int");
    expect_refused(f, "nope", &hot, 2, SX_NOT_FOUND, "does not exist");
    sx_mfx_writer_start(f, write_one);
    ryw_rounds(f, &IX_H, 5);
    salt_hot(f, IX_H.name, 3);
    salt_hot(f, IX_R.name, 3);
    expect_refused(f, IX_H.name, &hot, 2, SX_INVALID_ARGUMENT, "value: already salted");
    ryw_rounds(f, &IX_H, 10);
    ryw_rounds(f, &IX_R, 10);
    wait_contacted(f, IX_H.name, 3);
    wait_contacted(f, IX_R.name, 3);
    sx_mfx_writer_stop(f);
    expect_listed(f, IX_H.name, 3);
    uint32_t terms[8];
    if (salt_terms(f, IX_R.name, terms, 8) != 3 || terms[0] != 1 || terms[1] != 2 || terms[2] != 3)
        SX_FX_FAIL(f->c, "%s: the salt of %d is not over t1, t2, t3", IX_R.name, HOT);
    check_all(f, 2);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    sx_mfx_verify(f);
}

/* Pages of an eq query on HOT (limit 4): a salt between pages 2 and 3, and
 * overwrites between pages that keep HOT on documents already read and not
 * yet read (their entries move from t0 to their slots' partitions, at the
 * same keys): together exactly the model's hits, none twice. */
static void test_salt_paging(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "salt_paging");
    random_writes(f, 50);
    sx_mfx_create_index(f, &IX_H, FAILOVER_MS);
    sx_qreq q = {.index = IX_H.name,
                 .match = {.eq = sx_qval_int(HOT)},
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 4,
                 .after = &f->tokens};
    sx_mfx_pager pg = {0};
    char why[512];
    while (sx_mfx_next_page(f, &q, &pg)) {
        int pages = pg.pages;
        if (pages == 2)
            salt_hot(f, IX_H.name, 4);
        if (pages >= 2) {
            /* Rewrite every document holding HOT with HOT and another field:
             * the same entries, now routed by their new versions. */
            sx_qhits all = {0};
            sx_qmatch m = {.eq = sx_qval_int(HOT)};
            pthread_mutex_lock(&f->mu);
            sx_model_expect(f->model, "m", true, &m, &all);
            pthread_mutex_unlock(&f->mu);
            for (size_t i = 0; i < all.n; i++) {
                if (sx_fx_rnd(&f->rng) % 2)
                    continue;
                sx_qdoc d;
                memset(&d, 0, sizeof(d));
                snprintf(d.id, sizeof(d.id), "%s", all.h[i].id);
                sx_qdoc_add(&d, "m", sx_qval_int(HOT));
                sx_qdoc_add(&d, "other", sx_qval_int(pages));
                sx_qtokens t;
                if (!sx_mfx_write(f, &f->rng, &d, NULL, 1, &t, why, sizeof(why)))
                    SX_FX_FAIL(f->c, "overwrite %s: %s", d.id, why);
            }
            sx_qhits_free(&all);
        }
    }
    if (pg.pages < 4)
        SX_FX_FAIL(f->c, "the query ended after %d pages: too few to salt between them", pg.pages);
    sx_mfx_expect_model(f, "m", true, &q, &pg.got);
    fprintf(stderr, "  %zu hits of %d in %d pages across the salt\n", pg.got.n, HOT, pg.pages);
    sx_mfx_pager_free(&pg);
    sx_mfx_verify(f);
}

/* kill -9 of the owner of a salt set's partition (not the value's own)
 * after the salt, writes going on: its new owner is rebuilt by the entries'
 * versions; then the worker comes back. */
static void test_salt_kill(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "salt_kill");
    random_writes(f, 40);
    sx_mfx_create_index(f, &IX_H, FAILOVER_MS);
    sx_mfx_create_index(f, &IX_R, FAILOVER_MS);
    salt_hot(f, IX_H.name, 3);
    salt_hot(f, IX_R.name, 3);
    random_writes(f, 30);
    uint32_t terms[8];
    if (salt_terms(f, IX_H.name, terms, 8) != 3)
        SX_FX_FAIL(f->c, "%s: no salt of %d in the map", IX_H.name, HOT);
    int32_t victim = sx_mfx_term_owner(f, IX_H.name, terms[1]);
    sx_mfx_writer_start(f, write_one);
    sx_mfx_kill_worker(f, victim, "the owner of a salt set's term partition");
    ryw_rounds(f, &IX_H, 8);
    ryw_rounds(f, &IX_R, 4);
    sx_mfx_restart_worker(f, victim, WAIT_MS);
    ryw_rounds(f, &IX_H, 4);
    sx_mfx_writer_stop(f);
    check_all(f, 2);
    SX_FX_CHECK_REPLICAS(f->c, FAILOVER_MS);
    sx_mfx_verify(f);
}

/* ListIndexes shows a hot value of index name: its share is filled in. */
typedef struct listed_wait {
    fx *f;
    const char *name;
    size_t n;
    double share;
} listed_wait;

static bool listed_cond(void *arg)
{
    listed_wait *w = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(w->f->c, sx_mfx_pick(w->f, &w->f->rng).s, &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, w->name);
    w->n = ix ? ix->n_hot_values : 0;
    bool ok = w->n == 1 && ix->hot_values[0]->value && ix->hot_values[0]->value->i == HOT;
    w->share = ok ? ix->hot_values[0]->share : 0;
    sx_rpc_free(&l->base);
    return ok;
}

/* The coordinator's --hot-value-share: writes in which a third of the
 * documents hold HOT (and no other value more than a few): HOT alone is
 * salted by itself, over --hot-value-ways partitions, and every query and
 * verify stay right. */
static void test_salt_automatic(void **state)
{
    fx *f = *state;
    sx_mfx_seed_test(&f->rng, seed, "salt_automatic");
    sx_mfx_create_index(f, &IX_H, FAILOVER_MS);
    const char *const extra[] = {
        "--hot-value-share", "0.2", "--hot-value-min-changes", "60", "--hot-value-ways", "2", NULL};
    if (!sx_cluster_restart_coordinator(f->c, extra))
        SX_FX_FAIL(f->c, "the coordinator did not come back with --hot-value-share");
    listed_wait w = {.f = f, .name = IX_H.name};
    uint64_t end = sx_clock_now_ms() + FAILOVER_MS;
    int rounds = 0;
    while (!listed_cond(&w)) {
        if (sx_clock_now_ms() >= end || w.n > 1)
            SX_FX_FAIL(f->c, "%s: %zu hot values after %d rounds of writes, want %d alone",
                       IX_H.name, w.n, rounds, HOT);
        random_writes(f, 20);
        rounds++;
    }
    fprintf(stderr, "  %d salted by itself after %d rounds of writes (share %.2f)\n", HOT, rounds,
            w.share);
    uint32_t terms[8];
    if (salt_terms(f, IX_H.name, terms, 8) != 2)
        SX_FX_FAIL(f->c, "%s: the salt of %d is not over 2 term partitions", IX_H.name, HOT);
    random_writes(f, 30);
    wait_contacted(f, IX_H.name, 2);
    check_all(f, 1);
    sx_mfx_verify(f);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_salt_while_writing, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_salt_paging, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_salt_kill, setup, sx_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_salt_automatic, setup, sx_mfx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
