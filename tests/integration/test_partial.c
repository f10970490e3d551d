/* test_partial.c: LOCAL queries that say how complete they are, with real
 * processes (coordinator + 3 workers, P=8, R=3, min_isr=2, lease 1000 ms),
 * checked against an in-test model (tests/support/query.h) of seeded random
 * puts, overwrites and deletes. One worker W is made slow: the worker the
 * queries go through (Q) delays every ScanLocal it sends to W by SLOW_MS
 * (the rpc fault layer, WorkerAdmin.SetFaults). Then:
 *  - a query with a budget answers partial, names exactly W's led partitions
 *    missing, and its hits are the model's restricted to the others;
 *  - without a budget the same query answers everything (late);
 *  - with a budget and follower reads (a staleness bound) it answers
 *    complete from followers, naming them, with staleness within the bound;
 *  - a follower that cannot prove the bound asked refuses (FAILED_PRECONDITION
 *    saying how stale it may be), and such hedges leave W's partitions
 *    missing, never answered from a staler view;
 *  - read-your-writes holds for hedged reads: a write to a partition W leads
 *    is seen by the next hedged query that passes its token;
 *  - paging a partial answer: the page tokens resume each partition where
 *    it stood, so pages read after W recovers hold every hit exactly once.
 *  - `shardex query --budget-ms` prints the missing partitions, and its
 *    --json has partial and missing_partitions.
 * Assertions are on partial/missing/followers and hits, never on elapsed
 * times: the budget (BUDGET_MS) is far below the delay (SLOW_MS), so W's
 * scans cannot answer in time, and the others answer well within it (a
 * budget missed by a healthy partition on a starved machine is retried a
 * few times before failing). SHARDEX_TEST_SEED replays the writes.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "query.h"
#include "shardex/internal/v1/index.pb-c.h"
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
#define P 8
#define NIDS 150
#define SLOW_MS 1500  /* W's scans, as Q sends them: below one attempt (two leases) */
#define BUDGET_MS 300 /* far below SLOW_MS, far above a healthy scan */
#define STALE_MS 5000 /* the follower reads' bound */
#define TRIES 10      /* queries before a healthy partition missing the budget fails */

static uint64_t seed;

static const char *const COLORS[] = {"amber", "blue", "green", "red", "teal"};
#define NCOLORS (sizeof(COLORS) / sizeof(COLORS[0]))

static const sx_qindex IX = {.name = "color", .field = "color", .local = true};

typedef struct fx {
    sx_cluster *c;
    sx_model *model;
    sx_qtokens tokens;
    uint64_t rng;
    uint32_t slow;      /* W: the slow worker (test index) */
    uint32_t via;       /* Q: the worker queries go through */
    bool slow_leads[P]; /* the partitions W leads */
    uint32_t nslow;
} fx;

static void random_doc(uint64_t *s, const char *id, sx_qdoc *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    uint32_t n = (uint32_t)(sx_fx_rnd(s) % 4); /* 0 to 3 colors, repeats allowed */
    for (uint32_t k = 0; k < n; k++)
        sx_qdoc_add(d, "color", sx_qval_str(COLORS[sx_fx_rnd(s) % NCOLORS]));
}

/* Seeded puts, overwrites and deletes through every worker, into the model. */
static void write_random(fx *f)
{
    for (int k = 0; k < 2 * NIDS; k++) {
        char id[32];
        snprintf(id, sizeof(id), "doc-%03u", (unsigned)(sx_fx_rnd(&f->rng) % NIDS));
        const char *via = f->c->worker_addr[k % 3];
        sx_err err = {0};
        if (sx_fx_rnd(&f->rng) % 6 == 0) {
            const char *ids[] = {id};
            if (sx_q_delete(f->c, via, ids, 1, 10000, &f->tokens, NULL, &err) != SX_OK)
                SX_FX_FAIL(f->c, "delete %s: %s", id, err.msg);
            sx_model_delete(f->model, id);
            continue;
        }
        sx_qdoc d;
        random_doc(&f->rng, id, &d);
        if (sx_q_put(f->c, via, &d, 1, 10000, &f->tokens, NULL, &err) != SX_OK)
            SX_FX_FAIL(f->c, "put %s: %s", id, err.msg);
        sx_model_put(f->model, &d);
    }
}

/* W: the worker that leads the most partitions; Q: another. */
static void choose_workers(fx *f)
{
    uint32_t leads[3] = {0};
    for (uint32_t p = 0; p < P; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(f->c, p);
        if (!v.ok || v.leader == SX_CLUSTER_NONE)
            SX_FX_FAIL(f->c, "partition %u has no leader", p);
        leads[v.leader]++;
    }
    f->slow = leads[1] > leads[0] ? 1 : 0;
    if (leads[2] > leads[f->slow])
        f->slow = 2;
    f->via = (f->slow + 1) % 3;
    f->nslow = 0;
    for (uint32_t p = 0; p < P; p++) {
        f->slow_leads[p] = sx_cluster_part_view_of(f->c, p).leader == f->slow;
        f->nslow += f->slow_leads[p];
    }
    fprintf(stderr, "slow worker %u leads %u partitions; queries through worker %u\n", f->slow,
            f->nslow, f->via);
}

static void slow_down(fx *f, bool on)
{
    char spec[200] = "";
    if (on)
        snprintf(spec, sizeof(spec), "seed=1;method=ScanLocal,peer=%s,delay=1,delay_ms=%d-%d",
                 f->c->worker_addr[f->slow], SLOW_MS, SLOW_MS);
    if (!sx_cluster_set_faults(f->c, f->via, spec))
        SX_FX_FAIL(f->c, "SetFaults refused");
}

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    fx *f = SX_FX_STATE_NEW(fx, &o, WAIT_MS);
    if (!f)
        return -1;
    sx_cluster *c = f->c;
    f->model = sx_model_create();
    f->rng = seed;
    sx_err err = {0};
    if (sx_q_create_index(c, c->worker_addr[0], &IX, &err) != SX_OK)
        SX_FX_FAIL(c, "create index: %s", err.msg);
    if (!sx_q_wait_ready(c, c->worker_addr[0], IX.name, WAIT_MS))
        SX_FX_FAIL(c, "index not READY");
    write_random(f);
    choose_workers(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_fx_cluster_end(f->c);
    sx_model_destroy(f->model);
    free(f);
    return 0;
}

/* Every hit of the index: an open range. */
static sx_qreq all_hits(const fx *f, uint32_t budget, uint32_t stale)
{
    (void)f;
    sx_qreq q = {.index = IX.name,
                 .match = {.range = true},
                 .mode = SHARDEX__V1__MODE__MODE_LOCAL,
                 .limit = 10000,
                 .timeout_ms = 20000,
                 .budget_ms = budget,
                 .max_staleness_ms = stale,
                 .hedge_after_ms = stale ? 20 : 0};
    return q;
}

/* The model's hits of match, only those of partitions that answered. */
static void expect_without(const fx *f, const sx_qmatch *m, const bool *missing, sx_qhits *out)
{
    sx_qhits all = {0};
    sx_model_expect(f->model, IX.field, false, m, &all);
    out->n = 0;
    for (size_t i = 0; i < all.n; i++)
        if (!missing || !missing[sx_partition_of(all.h[i].id, strlen(all.h[i].id), P)])
            sx_qhits_push(out, &all.h[i]);
    sx_qhits_free(&all);
}

static void hits_of(const Shardex__V1__QueryResponse *r, sx_qhits *out)
{
    out->n = 0;
    for (size_t i = 0; i < r->n_hits; i++) {
        sx_qhit h;
        memset(&h, 0, sizeof(h));
        snprintf(h.id, sizeof(h.id), "%s", r->hits[i]->id);
        h.v = sx_qval_str(r->hits[i]->value->s);
        sx_qhits_push(out, &h);
    }
}

/* Whether r's missing partitions are exactly W's (else, on a healthy
 * partition that missed the budget, the caller tries again). */
static bool missing_is_slow(const fx *f, const Shardex__V1__QueryResponse *r, bool *missing)
{
    memset(missing, 0, P * sizeof(*missing));
    for (size_t i = 0; i < r->n_missing_partitions; i++) {
        uint32_t p = r->missing_partitions[i];
        assert_true(p < P);
        assert_true(i == 0 || r->missing_partitions[i - 1] < p); /* ascending, no repeats */
        missing[p] = true;
    }
    for (uint32_t p = 0; p < P; p++) {
        if (f->slow_leads[p] && !missing[p])
            SX_FX_FAIL(f->c, "partition %u (led by the slow worker) answered within the budget", p);
    }
    return r->n_missing_partitions == f->nslow;
}

static void check_hits(fx *f, const Shardex__V1__QueryResponse *r, const sx_qmatch *m,
                       const bool *missing, const char *what)
{
    sx_qhits got = {0}, want = {0};
    hits_of(r, &got);
    expect_without(f, m, missing, &want);
    char why[512];
    if (!sx_qhits_equal(&got, &want, why, sizeof(why)))
        SX_FX_FAIL(f->c, "%s: %s", what, why);
    sx_qhits_free(&got);
    sx_qhits_free(&want);
}

/* One query through Q, which must succeed. */
static Shardex__V1__QueryResponse *query(fx *f, const sx_qreq *q, const ProtobufCBinaryData *tok)
{
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    if (sx_q_query(f->c, f->c->worker_addr[f->via], q, tok, &r, &err) != SX_OK)
        SX_FX_FAIL(f->c, "query: %s", err.msg);
    return r;
}

static void test_budget_partial(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    sx_qreq q = all_hits(f, BUDGET_MS, 0);
    bool missing[P];
    for (int t = 0;; t++) {
        Shardex__V1__QueryResponse *r = query(f, &q, NULL);
        assert_true(r->partial);
        assert_int_equal(r->n_follower_partitions, 0);
        bool exact = missing_is_slow(f, r, missing);
        check_hits(f, r, &q.match, missing, "partial answer");
        assert_true(r->next_page_token.len > 0); /* the missing partitions remain */
        sx_rpc_free(&r->base);
        if (exact)
            break;
        if (t == TRIES)
            SX_FX_FAIL(f->c, "healthy partitions missed a %d ms budget %d times", BUDGET_MS, t);
    }
    /* The same with an equality match. */
    q.match = (sx_qmatch){.eq = sx_qval_str("red")};
    Shardex__V1__QueryResponse *r = query(f, &q, NULL);
    assert_true(r->partial);
    missing_is_slow(f, r, missing);
    check_hits(f, r, &q.match, missing, "partial eq answer");
    sx_rpc_free(&r->base);
    slow_down(f, false);
}

static void test_no_budget_waits(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    sx_qreq q = all_hits(f, 0, 0);
    Shardex__V1__QueryResponse *r = query(f, &q, NULL);
    assert_false(r->partial);
    assert_int_equal(r->n_missing_partitions, 0);
    check_hits(f, r, &q.match, NULL, "answer without a budget");
    assert_int_equal(r->next_page_token.len, 0);
    sx_rpc_free(&r->base);
    slow_down(f, false);
}

static void test_hedged_followers(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    sx_qreq q = all_hits(f, 2 * BUDGET_MS, STALE_MS);
    Shardex__V1__QueryResponse *r = NULL;
    for (int t = 0;; t++) {
        r = query(f, &q, NULL);
        if (!r->partial)
            break;
        if (t == TRIES)
            SX_FX_FAIL(f->c, "hedged queries stayed partial %d times", t);
        sx_rpc_free(&r->base);
    }
    check_hits(f, r, &q.match, NULL, "hedged answer");
    assert_true(r->staleness_ms <= STALE_MS);
    /* Every partition W leads was served by a follower (its leader cannot
     * have answered in time); others may have been too. */
    bool follower[P] = {false};
    for (size_t i = 0; i < r->n_follower_partitions; i++)
        follower[r->follower_partitions[i]] = true;
    for (uint32_t p = 0; p < P; p++)
        if (f->slow_leads[p] && !follower[p])
            SX_FX_FAIL(f->c, "partition %u: not served by a follower", p);
    sx_rpc_free(&r->base);
    slow_down(f, false);
}

/* A bound no follower can prove (an idle leader sends every 200 ms, and the
 * echo is a round trip old): a follower asked directly refuses, saying how
 * stale it may be; a hedged query leaves W's partitions missing rather than
 * answering from a stale view. */
static void test_stale_follower_refuses(void **state)
{
    fx *f = *state;
    uint32_t p = 0;
    while (!f->slow_leads[p])
        p++;
    Shardex__Internal__V1__ScanRequest req = SHARDEX__INTERNAL__V1__SCAN_REQUEST__INIT;
    req.index_id = 0; /* refused before the index matters */
    req.partition = p;
    req.partitions = P;
    req.limit = 10;
    req.follower_max_staleness_ms = 1;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 300};
    sx_status st = sx_rpc_invoke(f->c->rpc, f->c->worker_addr[f->via],
                                 &shardex__internal__v1__index__descriptor, "ScanLocal", &req.base,
                                 &resp, &o, &err);
    sx_rpc_free(resp);
    if (st != SX_FAILED_PRECONDITION || !strstr(err.msg, "ms stale"))
        SX_FX_FAIL(f->c, "a follower asked for 1 ms: %s %s", sx_status_name(st), err.msg);
    slow_down(f, true);
    sx_qreq q = all_hits(f, BUDGET_MS, 1);
    bool missing[P];
    for (int t = 0;; t++) {
        Shardex__V1__QueryResponse *r = query(f, &q, NULL);
        assert_true(r->partial);
        bool exact = missing_is_slow(f, r, missing);
        check_hits(f, r, &q.match, missing, "hedged answer with a bound too tight");
        for (size_t i = 0; i < r->n_follower_partitions; i++)
            assert_false(f->slow_leads[r->follower_partitions[i]]);
        sx_rpc_free(&r->base);
        if (exact)
            break;
        if (t == TRIES)
            SX_FX_FAIL(f->c, "healthy partitions missed a %d ms budget %d times", BUDGET_MS, t);
    }
    slow_down(f, false);
}

/* An id whose partition W leads. */
static void id_on_slow(fx *f, char *id, size_t cap)
{
    for (unsigned k = 0;; k++) {
        snprintf(id, cap, "ryw-%u-%u", (unsigned)(f->rng % 1000), k);
        if (f->slow_leads[sx_partition_of(id, strlen(id), P)])
            return;
    }
}

static void test_hedged_read_your_writes(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    int complete = 0;
    for (int round = 0; round < 5; round++) {
        char id[48], val[32];
        id_on_slow(f, id, sizeof(id));
        f->rng = sx_fx_rnd(&f->rng);
        snprintf(val, sizeof(val), "ryw-%d", round); /* a value nobody else has */
        sx_qdoc d = {0};
        snprintf(d.id, sizeof(d.id), "%s", id);
        sx_qdoc_add(&d, "color", sx_qval_str(val));
        sx_qtokens tok = {0};
        sx_err err = {0};
        if (sx_q_put(f->c, f->c->worker_addr[f->via], &d, 1, 10000, &tok, NULL, &err) != SX_OK)
            SX_FX_FAIL(f->c, "put %s: %s", id, err.msg);
        sx_model_put(f->model, &d);
        sx_qreq q = all_hits(f, 2 * BUDGET_MS, STALE_MS);
        q.match = (sx_qmatch){.eq = sx_qval_str(val)};
        q.after = &tok;
        Shardex__V1__QueryResponse *r = query(f, &q, NULL);
        /* Partial is allowed (the follower may not apply the write within
         * the budget: it waits, it does not answer without it); a complete
         * answer must hold the write. */
        if (!r->partial) {
            if (r->n_hits != 1 || strcmp(r->hits[0]->id, id) != 0)
                SX_FX_FAIL(f->c, "round %d: the write of %s was not seen (%zu hits)", round, id,
                           r->n_hits);
            complete++;
        } else {
            uint32_t p = sx_partition_of(id, strlen(id), P);
            bool named = false;
            for (size_t i = 0; i < r->n_missing_partitions; i++)
                named |= r->missing_partitions[i] == p;
            assert_true(named && r->n_hits == 0);
        }
        sx_rpc_free(&r->base);
    }
    fprintf(stderr, "hedged read-your-writes: %d of 5 answers complete\n", complete);
    if (complete == 0)
        SX_FX_FAIL(f->c, "no hedged query with a token answered complete");
    slow_down(f, false);
}

/* `shardex query --budget-ms` through Q: the text names the missing
 * partitions, --json has the fields. */
static void test_cli(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    char tool[512], budget[16], out[300], errp[300], want[200] = "";
    sx_cluster_bin("client/shardex", tool, sizeof(tool));
    snprintf(budget, sizeof(budget), "%d", BUDGET_MS);
    snprintf(out, sizeof(out), "%s/cli.out", f->c->dir);
    snprintf(errp, sizeof(errp), "%s/cli.err", f->c->dir);
    size_t w = 0;
    for (uint32_t p = 0; p < P; p++)
        if (f->slow_leads[p])
            w += (size_t)snprintf(want + w, sizeof(want) - w, " %u", p);
    bool text_ok = false, json_ok = false;
    for (int t = 0; t <= TRIES && !(text_ok && json_ok); t++) {
        for (int json = 0; json < 2; json++) {
            char *argv[] = {tool,
                            "--server",
                            f->c->worker_addr[f->via],
                            "query",
                            "--index",
                            "color",
                            "--min",
                            "a",
                            "--mode",
                            "local",
                            "--budget-ms",
                            budget,
                            json ? "--json" : NULL,
                            NULL};
            sx_h_run r = sx_h_run_wait(argv, NULL, NULL, out, errp, 20000);
            if (r.code != 0) {
                sx_h_run_print("shardex query --budget-ms", &r);
                SX_FX_FAIL(f->c, "shardex query exited %d", r.code);
            }
            if (!json) {
                char line[300];
                snprintf(line, sizeof(line), "did not answer within %d ms:%s\n", BUDGET_MS, want);
                text_ok |= strstr(r.out, "partial: ") && strstr(r.out, line);
            } else {
                json_ok |=
                    strstr(r.out, "\"partial\": true") && strstr(r.out, "\"missing_partitions\"");
            }
            sx_h_run_free(&r);
        }
    }
    if (!text_ok || !json_ok)
        SX_FX_FAIL(f->c, "shardex query --budget-ms: text %d, json %d", text_ok, json_ok);
    slow_down(f, false);
}

static bool hit_eq(const sx_qhit *a, const sx_qhit *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->v.s, b->v.s) == 0;
}

static void test_paging_partial(void **state)
{
    fx *f = *state;
    slow_down(f, true);
    sx_qreq q = all_hits(f, BUDGET_MS, 0);
    q.limit = 7;
    sx_qhits got = {0}, page = {0};
    ProtobufCBinaryData tok = {0};
    uint8_t *held = NULL;
    bool saw_partial = false;
    for (int n = 0; n < 10000; n++) {
        if (n == 3)
            slow_down(f, false); /* W recovers: its partitions are read from the start */
        Shardex__V1__QueryResponse *r = query(f, &q, n ? &tok : NULL);
        saw_partial |= r->partial;
        hits_of(r, &page);
        for (size_t i = 0; i < page.n; i++)
            sx_qhits_push(&got, &page.h[i]);
        free(held);
        held = NULL;
        tok.len = r->next_page_token.len;
        if (tok.len) {
            held = malloc(tok.len);
            memcpy(held, r->next_page_token.data, tok.len);
        }
        tok.data = held;
        sx_rpc_free(&r->base);
        if (!tok.len)
            break;
    }
    assert_true(saw_partial);
    sx_qhits want = {0};
    expect_without(f, &q.match, NULL, &want);
    if (got.n != want.n)
        SX_FX_FAIL(f->c, "paging a partial answer: %zu hits, the model has %zu", got.n, want.n);
    for (size_t i = 0; i < want.n; i++) {
        size_t seen = 0;
        for (size_t k = 0; k < got.n; k++)
            seen += hit_eq(&got.h[k], &want.h[i]);
        if (seen != 1)
            SX_FX_FAIL(f->c, "paging a partial answer: %s seen %zu times", want.h[i].id, seen);
    }
    free(held);
    sx_qhits_free(&got);
    sx_qhits_free(&page);
    sx_qhits_free(&want);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
}

int main(void)
{
    seed = sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_partial),
        cmocka_unit_test(test_no_budget_waits),
        cmocka_unit_test(test_hedged_followers),
        cmocka_unit_test(test_stale_follower_refuses),
        cmocka_unit_test(test_hedged_read_your_writes),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_paging_partial),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
