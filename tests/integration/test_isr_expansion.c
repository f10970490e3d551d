/* test_isr_expansion.c: the coordinator adds a follower to an ISR only as the
 * process the leader verified (issue 11, bug 6), against real processes
 * (coordinator + 3 workers, P=4, R=3, min_isr 2, lease 1000 ms).
 *
 * A leader asks for an expansion once its session with a follower has caught
 * up. The follower can restart before the request lands: the new process has
 * verified nothing in this epoch (it may have lost its store), yet a request
 * that names only the worker would put it in the ISR, where it counts as
 * holding every committed write and can be elected. The request names the
 * incarnation the leader's session verified; the coordinator refuses it when
 * that is no longer the worker's live process.
 *
 * Staged: the leader L of p drops every Append it sends (the fault layer), so
 * both followers leave the ISR and L never asks them back; follower F is
 * killed and restarted (a new incarnation). The test then sends, as L, the
 * expansion L would have sent on its old session's evidence: ISR + F at the
 * current epoch and ISR version, with F's old incarnation. It must be refused
 * with FAILED_PRECONDITION and leave the map as it was. Then the faults are
 * cleared: L re-admits both followers by itself (its requests name their
 * current incarnations), and every acknowledged write reads back from every
 * replica.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "shardex/internal/v1/coordinator.pb-c.h"

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
#define P 1 /* the partition under test */

typedef Shardex__Internal__V1__ClusterMap ClusterMap;
typedef Shardex__Internal__V1__LogPartition LogPartition;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 4};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sx_cluster *c = *state;
    if (c) {
        sx_cluster_stop(c);
        free(c);
    }
    return 0;
}

/* p in the coordinator's map, copied out. */
typedef struct view {
    bool ok;
    uint64_t epoch, isr_version;
    int32_t leader;
    int32_t isr[8];
    size_t nisr;
    uint64_t incarnation[SX_TEST_MAX_WORKERS]; /* by map index; 0: not alive */
    size_t nworkers;
} view;

static view view_of(sx_cluster *c)
{
    view v = {0};
    ClusterMap *m = sx_cluster_map(c);
    if (!m || m->n_partitions <= P) {
        sx_rpc_free(m ? &m->base : NULL);
        return v;
    }
    const LogPartition *lp = m->partitions[P];
    v.ok = true;
    v.epoch = lp->epoch;
    v.isr_version = lp->isr_version;
    v.leader = lp->leader;
    v.nisr = lp->n_isr < 8 ? lp->n_isr : 8;
    memcpy(v.isr, lp->isr, v.nisr * sizeof(*v.isr));
    v.nworkers = m->n_workers < SX_TEST_MAX_WORKERS ? m->n_workers : SX_TEST_MAX_WORKERS;
    for (size_t w = 0; w < v.nworkers; w++)
        v.incarnation[w] = m->workers[w]->alive ? m->workers[w]->incarnation : 0;
    sx_rpc_free(&m->base);
    return v;
}

typedef struct waitc {
    sx_cluster *c;
    size_t nisr;      /* the ISR has this many members */
    int32_t w;        /* and (when >= 0) this worker is alive ... */
    uint64_t not_inc; /* ... with an incarnation other than this */
} waitc;

static bool cond(void *arg)
{
    waitc *a = arg;
    view v = view_of(a->c);
    if (!v.ok || v.nisr != a->nisr)
        return false;
    return a->w < 0 || (v.incarnation[a->w] != 0 && v.incarnation[a->w] != a->not_inc);
}

/* ChangeIsr as worker `id` would send it. */
static sx_status change_isr(sx_cluster *c, const char *id, const view *v, const int32_t *isr,
                            size_t n, const uint64_t *inc, size_t ninc, sx_err *err)
{
    Shardex__Internal__V1__ChangeIsrRequest req = SHARDEX__INTERNAL__V1__CHANGE_ISR_REQUEST__INIT;
    req.worker_id = (char *)id;
    req.partition = P;
    req.epoch = v->epoch;
    req.isr_version = v->isr_version;
    req.isr = (int32_t *)isr;
    req.n_isr = n;
    req.incarnations = (uint64_t *)inc;
    req.n_incarnations = ninc;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->coord_addr, &shardex__internal__v1__coordinator__descriptor,
                      "ChangeIsr", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

static void test_restarted_follower_not_added_on_old_evidence(void **state)
{
    sx_cluster *c = *state;
    view v0 = view_of(c);
    assert_true(v0.ok && v0.leader >= 0 && v0.nisr == 3);
    ClusterMap *m = sx_cluster_map(c);
    assert_non_null(m);
    int32_t Lw = v0.leader, Fw = v0.isr[0] == Lw ? v0.isr[1] : v0.isr[0];
    uint32_t L = sx_cluster_test_index(c, m, Lw), F = sx_cluster_test_index(c, m, Fw);
    assert_true(L < c->nworkers && F < c->nworkers);
    sx_rpc_free(&m->base);
    uint64_t f_old = v0.incarnation[Fw];
    fprintf(stderr,
            "partition %d: leader worker %d (test %u), follower %d (test %u, incarnation %" PRIu64
            ")\n",
            P, Lw, L, Fw, F, f_old);

    sx_doc_spec before[NDOCS];
    sx_docs_for_partition(c, P, "bug6-before", before, NDOCS);
    sx_err err = {0};
    if (sx_docs_put(c, L, before, NDOCS, 10000, NULL, &err) != SX_OK)
        SX_FX_FAIL(c, "put before the faults: %s", err.msg);

    /* L's Appends are lost: both followers fall behind and leave the ISR. A
     * write makes them behind (it is not acknowledged: the ISR shrinks to {L},
     * below min_isr). */
    assert_true(sx_cluster_set_faults(c, L, "method=Append,drop=1"));
    sx_doc_spec during[1];
    sx_docs_for_partition(c, P, "bug6-during", during, 1);
    (void)sx_docs_put(c, L, during, 1, 3000, NULL, &err);
    waitc alone = {.c = c, .nisr = 1, .w = -1};
    if (!sx_h_wait_for(cond, &alone, WAIT_MS))
        SX_FX_FAIL(c, "the ISR of p%d did not shrink to its leader", P);

    /* F restarts: a new process, nothing verified. */
    sx_cluster_kill_worker(c, F);
    assert_true(sx_cluster_start_worker(c, F));
    waitc back = {.c = c, .nisr = 1, .w = Fw, .not_inc = f_old};
    if (!sx_h_wait_for(cond, &back, WAIT_MS))
        SX_FX_FAIL(c, "worker %d did not come back as a new incarnation", F);

    /* What L would ask on its old session's evidence. */
    view v1 = view_of(c);
    int32_t isr[2] = {Lw, Fw};
    uint64_t inc[2] = {v1.incarnation[Lw], f_old};
    sx_status st = change_isr(c, c->worker_id[L], &v1, isr, 2, inc, 2, &err);
    view v2 = view_of(c);
    if (st != SX_FAILED_PRECONDITION)
        SX_FX_FAIL(c,
                   "adding worker %d as incarnation %" PRIu64 " (now %" PRIu64 "): %s (%s), want "
                   "FAILED_PRECONDITION",
                   Fw, f_old, v1.incarnation[Fw], sx_status_name(st), err.msg);
    fprintf(stderr, "refused as wanted: %s\n", err.msg);
    assert_int_equal(v2.isr_version, v1.isr_version);
    assert_int_equal(v2.nisr, 1);

    /* A request that does not say which processes it verified is refused too. */
    st = change_isr(c, c->worker_id[L], &v1, isr, 2, NULL, 0, &err);
    if (st != SX_INVALID_ARGUMENT || !strstr(err.msg, "incarnations"))
        SX_FX_FAIL(c, "a change without incarnations: %s (%s), want INVALID_ARGUMENT naming them",
                   sx_status_name(st), err.msg);
    assert_int_equal(view_of(c).isr_version, v1.isr_version);

    /* Healed, L re-admits both followers itself, naming their processes. */
    assert_true(sx_cluster_set_faults(c, L, ""));
    waitc whole = {.c = c, .nisr = 3, .w = -1};
    if (!sx_h_wait_for(cond, &whole, WAIT_MS))
        SX_FX_FAIL(c, "the ISR of p%d did not become whole again", P);
    sx_doc_spec after[NDOCS];
    sx_docs_for_partition(c, P, "bug6-after", after, NDOCS);
    if (sx_docs_put(c, F, after, NDOCS, 10000, NULL, &err) != SX_OK)
        SX_FX_FAIL(c, "put after the heal: %s", err.msg);
    for (size_t k = 0; k < NDOCS; k++) { /* acknowledged before: still there, via F */
        Shardex__V1__GetResponse *g = NULL;
        if (sx_docs_get(c, F, before[k].id, NULL, &g, &err) != SX_OK || !g->found)
            SX_FX_FAIL(c, "%s, acknowledged, reads %s", before[k].id, g ? "not found" : err.msg);
        sx_rpc_free(&g->base);
    }
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

int main(void)
{
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restarted_follower_not_added_on_old_evidence, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
