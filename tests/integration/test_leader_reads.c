/* test_leader_reads.c: what a partition's new leader serves right after a
 * failover (issue 11, bug 3), against real processes (coordinator + 3
 * workers, P=4, R=3, min_isr=2, lease 1000 ms).
 *
 * A new leader starts from its persisted commit offset, which can lag what the
 * old leader committed and acknowledged: a follower hears of a commit in the
 * next Append after it, and the leader may die before sending it. Its own hw
 * rises only once a follower has answered in the new epoch (rule 7). Until its
 * hw has reached the end of its log as the epoch began, and that is applied,
 * its documents and local indexes lack acknowledged writes: reads must wait
 * (or fail with a status a client retries), never answer "not found", a short
 * list of hits, or a staleness of 0.
 *
 * Staged: every worker's Appends are delayed 600-900 ms (the fault layer), so
 * a follower learns a commit offset one slow round trip after the leader
 * acknowledged it, and a new leader's first answer from a follower takes as
 * long. The leader of p is killed -9 the moment W is acknowledged, so both
 * followers hold W with a commit offset below it, and whichever is elected
 * starts with W in its log, unapplied. From the moment the map names it, Gets
 * of W through every live worker and a LOCAL query on an index of W's field
 * run for a few seconds; every answer must hold W whole, or be a retryable
 * status. Then everything heals and the replicas are checked.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
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
#define NDOCS 8
#define NONE UINT32_MAX
#define READS_MS 3000 /* reads after the failover, from when the map names the new leader */
#define SLOW_APPENDS "method=Append,delay=1,delay_ms=600-900"

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 4};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

/* The leader of p in the coordinator's map (test index, NONE), its epoch and
 * whether it is alive. */
typedef struct lead_view {
    uint32_t leader;
    uint64_t epoch;
    bool alive;
} lead_view;

static lead_view leader_of(sx_cluster *c, uint32_t p)
{
    lead_view v = {.leader = NONE};
    ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return v;
    if (p < m->n_partitions) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        v.epoch = lp->epoch;
        for (uint32_t i = 0; i < c->nworkers && lp->leader >= 0; i++)
            if (sx_cluster_index_of(m, c, i) == lp->leader) {
                v.leader = i;
                v.alive = (size_t)lp->leader < m->n_workers && m->workers[lp->leader]->alive;
            }
    }
    sx_rpc_free(&m->base);
    return v;
}

/* Worker i's replica of p as it reports it (ok false: not hosted, or no answer). */
typedef struct rstate {
    bool ok;
    uint64_t leo, commit, applied;
} rstate;

static rstate state_of(sx_cluster *c, uint32_t i, uint32_t p)
{
    rstate r = {0};
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, i);
    for (size_t k = 0; s && k < s->n_replicas; k++) {
        const Shardex__Internal__V1__ReplicaState *rs = s->replicas[k];
        if (rs->partition == p)
            r = (rstate){true, rs->log_end_offset, rs->commit_offset, rs->applied_offset};
    }
    sx_rpc_free(s ? &s->base : NULL);
    return r;
}

typedef struct waitc {
    sx_cluster *c;
    uint32_t p, old;
    uint64_t epoch;
} waitc;

/* p has a live leader other than old, at an epoch above epoch. */
static bool leader_moved(void *arg)
{
    waitc *w = arg;
    lead_view v = leader_of(w->c, w->p);
    return v.leader != NONE && v.leader != w->old && v.alive && v.epoch > w->epoch;
}

/* What the reads after the failover saw. */
typedef struct reads {
    unsigned found, retryable, queries_whole;
    char gone[512];   /* the first Get that said "not found", or a status nobody retries */
    char short_[512]; /* the first LOCAL query that missed some of W */
} reads;

static bool retryable(sx_status st)
{
    return st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED;
}

/* Gets every document of W once, through the running workers in turn. */
static void get_round(sx_cluster *c, const sx_doc_spec *w, uint32_t dead, unsigned round, reads *r)
{
    for (size_t k = 0; k < NDOCS; k++) {
        uint32_t via = (uint32_t)((round + k) % c->nworkers);
        if (via == dead)
            via = (via + 1) % c->nworkers;
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        uint64_t t0 = sx_clock_now_ms();
        sx_status st = sx_docs_get(c, via, w[k].id, NULL, &g, &err);
        uint64_t ms = sx_clock_now_ms() - t0;
        if (st == SX_OK && g->found && strcmp(sx_doc_text(g->doc), w[k].text) == 0)
            r->found++;
        else if (st != SX_OK && retryable(st))
            r->retryable++;
        else if (!r->gone[0])
            snprintf(r->gone, sizeof(r->gone), "get %s via worker %u (%" PRIu64 " ms): %s%s%s",
                     w[k].id, via, ms, sx_status_name(st),
                     st == SX_OK ? (g->found ? ", other text" : ", not found") : ": ",
                     st == SX_OK ? "" : err.msg);
        sx_rpc_free(g ? &g->base : NULL);
    }
}

/* One LOCAL query for every text of W (an index on "text"). */
static void query_round(sx_cluster *c, uint32_t dead, unsigned round, const char *tag, reads *r)
{
    uint32_t via = round % c->nworkers == dead ? (dead + 1) % c->nworkers : round % c->nworkers;
    char lo[64], hi[64];
    snprintf(lo, sizeof(lo), "%s text", tag);
    snprintf(hi, sizeof(hi), "%s text~", tag);
    sx_qreq q = {.index = "by_text",
                 .match = {.range = true,
                           .has_min = true,
                           .has_max = true,
                           .min = sx_qval_str(lo),
                           .max = sx_qval_str(hi)},
                 .mode = SHARDEX__V1__MODE__MODE_LOCAL,
                 .limit = 100};
    Shardex__V1__QueryResponse *resp = NULL;
    sx_err err = {0};
    sx_status st = sx_q_query(c, c->worker_addr[via], &q, NULL, &resp, &err);
    if (st == SX_OK && resp->n_hits == NDOCS)
        r->queries_whole++;
    else if (st != SX_OK && retryable(st))
        r->retryable++;
    else if (!r->short_[0])
        snprintf(r->short_, sizeof(r->short_),
                 "LOCAL query via worker %u: %s, %zu of %d hits, staleness_ms %" PRIu64 "%s%s", via,
                 sx_status_name(st), st == SX_OK ? resp->n_hits : 0, NDOCS,
                 st == SX_OK ? resp->staleness_ms : 0, st == SX_OK ? "" : ": ",
                 st == SX_OK ? "" : err.msg);
    sx_rpc_free(resp ? &resp->base : NULL);
}

static void test_new_leader_serves_acknowledged_writes(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 1;
    sx_err err = {0};
    sx_qindex ix = {.name = "by_text", .field = "text", .local = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK)
        SX_FX_FAIL(c, "create index: %s", err.msg);
    if (!sx_q_wait_ready(c, c->worker_addr[0], "by_text", WAIT_MS))
        SX_FX_FAIL(c, "the index never became READY");
    lead_view v = leader_of(c, p);
    assert_true(v.leader != NONE && v.alive);
    const uint32_t L = v.leader;
    sx_doc_spec base[NDOCS], w[NDOCS];
    sx_docs_for_partition(c, p, "lr-base", base, NDOCS);
    sx_docs_for_partition(c, p, "lr-w", w, NDOCS);
    if (sx_docs_put(c, L, base, NDOCS, 15000, NULL, &err) != SX_OK)
        SX_FX_FAIL(c, "put base: %s", err.msg);

    /* W is acknowledged; the Appends that would carry its commit to the
     * followers are still on their way when the leader dies. */
    for (uint32_t i = 0; i < c->nworkers; i++)
        assert_true(sx_cluster_set_faults(c, i, SLOW_APPENDS));
    Shardex__V1__PutResponse *pr = NULL;
    sx_status st = sx_docs_put(c, L, w, NDOCS, 15000, &pr, &err);
    sx_cluster_kill_worker(c, L);
    if (st != SX_OK)
        SX_FX_FAIL(c, "put W via its leader: %s", err.msg);
    uint64_t w_first = UINT64_MAX, w_last = 0;
    for (size_t k = 0; k < pr->n_tokens; k++) {
        w_first = pr->tokens[k]->offset < w_first ? pr->tokens[k]->offset : w_first;
        w_last = pr->tokens[k]->offset > w_last ? pr->tokens[k]->offset : w_last;
    }
    sx_rpc_free(&pr->base);
    for (uint32_t i = 0; i < c->nworkers; i++) {
        if (i == L)
            continue;
        rstate r = state_of(c, i, p);
        fprintf(stderr,
                "worker %u partition %u: leo %" PRIu64 " commit %" PRIu64 " applied %" PRIu64
                " (W at %" PRIu64 "..%" PRIu64 ")\n",
                i, p, r.leo, r.commit, r.applied, w_first, w_last);
        if (!r.ok || r.leo < w_last)
            SX_FX_FAIL(c, "worker %u does not hold W, acknowledged", i);
        if (r.commit >= w_first)
            SX_FX_FAIL(c, "not staged: worker %u heard W's commit before the leader died", i);
    }

    /* From the moment the map names the new leader: W, whole, or retry. */
    waitc mv = {.c = c, .p = p, .old = L, .epoch = v.epoch};
    SX_FX_WAIT(c, leader_moved, &mv, WAIT_MS, "timed out waiting until another leader is elected");
    reads r = {0};
    uint64_t end = sx_clock_now_ms() + READS_MS;
    for (unsigned round = 0; sx_clock_now_ms() < end; round++) {
        get_round(c, w, L, round, &r);
        query_round(c, L, round, "lr-w", &r);
    }
    fprintf(stderr,
            "reads after the failover: %u gets found W, %u local queries held all of W, %u "
            "retryable answers\n",
            r.found, r.queries_whole, r.retryable);
    if (r.gone[0] || r.short_[0])
        SX_FX_FAIL(c, "the new leader served reads without acknowledged writes: %s%s%s",
                   r.gone[0] ? r.gone : "", r.gone[0] && r.short_[0] ? "; " : "",
                   r.short_[0] ? r.short_ : "");
    if (r.found == 0 || r.queries_whole == 0)
        SX_FX_FAIL(c, "no read was answered in %d ms after the failover", READS_MS);

    for (uint32_t i = 0; i < c->nworkers; i++)
        if (i != L)
            assert_true(sx_cluster_set_faults(c, i, ""));
    assert_true(sx_cluster_start_worker(c, L));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_leader_serves_acknowledged_writes, setup,
                                        sx_fx_cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
