/* test_cluster.c: the coordinator and workers as real processes: assignment,
 * failover on kill -9, rejoin, coordinator restart without spurious
 * reassignment, a paused worker replaced and stepping down by itself, fixed
 * cluster settings, and the index catalog through any worker.
 * P=8, R=3, min_isr=2, 3 workers, lease 1000 ms.
 */
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"
#include "shardex/v1/shardex.pb-c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef Shardex__Internal__V1__ClusterMap ClusterMap;
typedef Shardex__Internal__V1__WorkerStatusResponse WorkerStatus;

#define LEASE_MS 1000
#define WAIT_MS 20000 /* generous: the machine is shared with the build */

static int setup(void **state)
{
    sx_cluster *c = calloc(1, sizeof(*c));
    sx_cluster_opts o = {.workers = 3, .lease_ms = LEASE_MS};
    if (!sx_cluster_start(c, &o)) {
        sx_cluster_stop(c);
        free(c);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    sx_cluster *c = *state;
    sx_cluster_stop(c);
    free(c);
    return 0;
}

/* Every partition has a live leader and R replicas all in the ISR. */
static bool steady(void *arg)
{
    sx_cluster *c = arg;
    ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    bool ok = true;
    for (size_t p = 0; p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        ok &= lp->leader >= 0 && m->workers[lp->leader]->alive && lp->n_replicas == 3 &&
              lp->n_isr == 3;
    }
    sx_rpc_free(&m->base);
    return ok;
}

static void count_leaders(const ClusterMap *m, int *per_worker, size_t n)
{
    memset(per_worker, 0, n * sizeof(int));
    for (size_t p = 0; p < m->n_partitions; p++)
        if (m->partitions[p]->leader >= 0 && (size_t)m->partitions[p]->leader < n)
            per_worker[m->partitions[p]->leader]++;
}

static void assert_steady(sx_cluster *c)
{
    SX_FX_WAIT(c, steady, c, WAIT_MS, "cluster did not reach a steady assignment");
}

typedef struct failover_wait {
    sx_cluster *c;
    int32_t victim;
    uint64_t old_epoch[64];
    bool led[64];
} failover_wait;

/* Every partition the victim led has another live leader and a higher epoch. */
static bool failed_over(void *arg)
{
    failover_wait *f = arg;
    ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        return false;
    bool ok = !m->workers[f->victim]->alive;
    for (size_t p = 0; p < m->n_partitions && ok; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        if (f->led[p])
            ok = lp->leader >= 0 && lp->leader != f->victim && lp->epoch > f->old_epoch[p];
    }
    sx_rpc_free(&m->base);
    return ok;
}

static void test_kill_worker_fails_over_and_rejoins(void **state)
{
    sx_cluster *c = *state;
    assert_steady(c);
    ClusterMap *m = sx_cluster_map(c);
    assert_non_null(m);
    /* Balanced: 8 leaders over 3 workers is 3/3/2; replicas 8 each. */
    int leaders[3];
    count_leaders(m, leaders, 3);
    int lo = 99, hi = 0;
    for (int i = 0; i < 3; i++) {
        lo = leaders[i] < lo ? leaders[i] : lo;
        hi = leaders[i] > hi ? leaders[i] : hi;
    }
    assert_true(hi - lo <= 1);

    failover_wait f = {.c = c, .victim = sx_cluster_index_of(m, c, 0)};
    int led = 0;
    for (size_t p = 0; p < m->n_partitions; p++) {
        f.old_epoch[p] = m->partitions[p]->epoch;
        f.led[p] = m->partitions[p]->leader == f.victim;
        led += f.led[p];
    }
    assert_true(led > 0);
    sx_rpc_free(&m->base);

    uint64_t t0 = sx_clock_now_ms();
    sx_cluster_kill_worker(c, 0);
    assert_true(sx_h_wait_for(failed_over, &f, WAIT_MS));
    uint64_t took = sx_clock_now_ms() - t0;
    fprintf(stderr, "failover: %d partitions got new leaders %llu ms after kill -9 (lease %d ms)\n",
            led, (unsigned long long)took, LEASE_MS);
    /* The bound: detection within the lease plus one second. */
    assert_true(took <= LEASE_MS + 1000);

    /* Two in-sync replicas remain everywhere: nothing is unavailable. */
    m = sx_cluster_map(c);
    for (size_t p = 0; p < m->n_partitions; p++) {
        assert_true(m->partitions[p]->leader >= 0);
        assert_int_equal(m->partitions[p]->n_isr, 2);
    }
    sx_rpc_free(&m->base);

    /* It comes back under the same id and index, and is given replicas again. */
    assert_true(sx_cluster_start_worker(c, 0));
    assert_steady(c);
    m = sx_cluster_map(c);
    assert_int_equal(sx_cluster_index_of(m, c, 0), f.victim);
    assert_true(m->workers[f.victim]->alive);
    sx_rpc_free(&m->base);
}

/* The same partitions, epochs, replicas, ISRs and workers (the version aside). */
static bool same_assignment(const ClusterMap *a, const ClusterMap *b)
{
    if (a->n_partitions != b->n_partitions || a->n_workers != b->n_workers)
        return false;
    for (size_t p = 0; p < a->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *x = a->partitions[p], *y = b->partitions[p];
        if (x->epoch != y->epoch || x->leader != y->leader || x->isr_version != y->isr_version ||
            x->n_replicas != y->n_replicas || x->n_isr != y->n_isr ||
            memcmp(x->replicas, y->replicas, x->n_replicas * sizeof(int32_t)) != 0 ||
            memcmp(x->isr, y->isr, x->n_isr * sizeof(int32_t)) != 0)
            return false;
    }
    for (size_t w = 0; w < a->n_workers; w++)
        if (a->workers[w]->alive != b->workers[w]->alive ||
            a->workers[w]->incarnation != b->workers[w]->incarnation)
            return false;
    return true;
}

static bool all_leases_valid(void *arg)
{
    sx_cluster *c = arg;
    bool ok = true;
    for (uint32_t i = 0; i < c->nworkers && ok; i++) {
        WorkerStatus *s = sx_cluster_worker_status(c, i);
        ok = s && s->lease_valid;
        sx_rpc_free(s ? &s->base : NULL);
    }
    return ok;
}

static void test_coordinator_restart_keeps_the_map(void **state)
{
    sx_cluster *c = *state;
    assert_steady(c);
    ClusterMap *before = sx_cluster_map(c);
    assert_non_null(before);

    sx_cluster_kill_coordinator(c);
    assert_true(sx_cluster_restart_coordinator(c, NULL));
    ClusterMap *after = sx_cluster_map(c);
    assert_non_null(after);
    assert_true(same_assignment(before, after));
    /* The same version; on etcd the restarted coordinator is a new leader,
     * which publishes the map it read as the next version, naming itself. */
    assert_int_equal(after->version, before->version + (c->opts.etcd ? 1 : 0));

    /* Workers renew their leases with the new process... */
    assert_true(sx_h_wait_for(all_leases_valid, c, WAIT_MS));
    /* ...and for three leases nothing is reassigned. */
    uint64_t end = sx_clock_now_ms() + 3 * LEASE_MS;
    while (sx_clock_now_ms() < end) {
        ClusterMap *now = sx_cluster_map(c);
        assert_non_null(now);
        bool same = same_assignment(before, now) && now->version == after->version;
        sx_rpc_free(&now->base);
        if (!same)
            SX_FX_FAIL(c, "the map changed after a coordinator restart");
        sx_clock_sleep_ms(100);
    }
    sx_rpc_free(&before->base);
    sx_rpc_free(&after->base);
}

static bool worker1_leads(void *arg)
{
    WorkerStatus *s = sx_cluster_worker_status(arg, 1);
    bool ok = s && s->lease_valid && s->n_leading > 0;
    sx_rpc_free(s ? &s->base : NULL);
    return ok;
}

static void test_paused_worker_is_replaced_and_steps_down(void **state)
{
    sx_cluster *c = *state;
    assert_steady(c);
    ClusterMap *m = sx_cluster_map(c);
    failover_wait f = {.c = c, .victim = sx_cluster_index_of(m, c, 1)};
    for (size_t p = 0; p < m->n_partitions; p++) {
        f.old_epoch[p] = m->partitions[p]->epoch;
        f.led[p] = m->partitions[p]->leader == f.victim;
    }
    sx_rpc_free(&m->base);
    /* It knows what it leads (the map reaches it with its next heartbeat). */
    assert_true(sx_h_wait_for(worker1_leads, c, WAIT_MS));

    sx_h_pause(c->worker_pid[1]);
    assert_true(sx_h_wait_for(failed_over, &f, WAIT_MS));
    sx_h_resume(c->worker_pid[1]);

    /* The first thing it says after waking: it leads nothing that is now
     * someone else's, without having had to hear so. */
    WorkerStatus *s = sx_cluster_worker_status(c, 1);
    assert_non_null(s);
    m = sx_cluster_map(c);
    for (size_t k = 0; k < s->n_leading; k++)
        assert_int_equal(m->partitions[s->leading[k]]->leader, f.victim);
    for (size_t p = 0; p < m->n_partitions; p++)
        if (f.led[p])
            assert_int_not_equal(m->partitions[p]->leader, f.victim);
    sx_rpc_free(&m->base);
    sx_rpc_free(&s->base);

    /* It registers again and is given work by the coordinator, not by itself. */
    assert_steady(c);
    s = sx_cluster_worker_status(c, 1);
    m = sx_cluster_map(c);
    assert_non_null(s);
    assert_true(s->index == f.victim);
    for (size_t k = 0; k < s->n_leading; k++)
        assert_int_equal(m->partitions[s->leading[k]]->leader, f.victim);
    sx_rpc_free(&m->base);
    sx_rpc_free(&s->base);
}

static void test_settings_are_fixed_at_creation(void **state)
{
    sx_cluster *c = *state;
    sx_cluster_kill_coordinator(c);
    char bin[512], meta[512], logf[512];
    sx_cluster_bin("coordinator/shardex-coordinator", bin, sizeof(bin));
    snprintf(logf, sizeof(logf), "%s/coord-refused.log", c->dir);
    char *argv[16] = {bin, "--listen", "127.0.0.1:0", "--partitions", "16"};
    int n = 5;
    sx_cluster_meta_args(c, argv, &n, meta, sizeof(meta)); /* the cluster's map */
    argv[n] = NULL;
    sx_buf b = {0};
    bool found = false;
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    pid_t pid = sx_h_spawn(argv, logf); /* it must refuse and exit by itself */
    while (sx_h_alive(pid) && sx_clock_now_ms() < end)
        sx_clock_sleep_ms(10);
    assert_false(sx_h_alive(pid));
    assert_int_equal(sx_file_read(logf, 1 << 20, &b, &found, NULL), SX_OK);
    sx_buf_push(&b, 0);
    assert_non_null(strstr((char *)b.data, "--partitions 16 differs from 8"));
    sx_buf_free(&b);
    /* The same settings, or none, start it as before. */
    assert_true(sx_cluster_restart_coordinator(c, NULL));
}

static void test_index_catalog_through_a_worker(void **state)
{
    sx_cluster *c = *state;
    assert_steady(c);
    const ProtobufCServiceDescriptor *svc = &shardex__v1__shardex__descriptor;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_err err = {0};
    ProtobufCMessage *resp = NULL;

    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "by_section";
    spec.field = "section";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = true;
    spec.global = true;
    Shardex__V1__CreateIndexRequest creq = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    creq.spec = &spec;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[2], svc, "CreateIndex", &creq.base, &resp, &o, &err),
        SX_OK);
    Shardex__V1__CreateIndexResponse *cr = (void *)resp;
    assert_int_equal(cr->index->state, SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING);
    assert_int_equal(cr->index->spec->term_partitions, 8); /* the cluster default, M = P */
    sx_rpc_free(resp);

    /* Bad specs change nothing and say what is wrong. */
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], svc, "CreateIndex", &creq.base, &resp, &o, &err),
        SX_ALREADY_EXISTS);
    spec.name = "bad name!";
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], svc, "CreateIndex", &creq.base, &resp, &o, &err),
        SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "spec.name"));
    spec.name = "neither";
    spec.local = spec.global = false;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], svc, "CreateIndex", &creq.base, &resp, &o, &err),
        SX_INVALID_ARGUMENT);

    /* Its term partitions have owners; ClusterStatus through a worker says so. */
    Shardex__V1__ClusterStatusRequest sreq = SHARDEX__V1__CLUSTER_STATUS_REQUEST__INIT;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[0], svc, "ClusterStatus", &sreq.base, &resp, &o, &err),
        SX_OK);
    Shardex__V1__ClusterStatusResponse *sr = (void *)resp;
    assert_int_equal(sr->partitions, 8);
    assert_int_equal(sr->n_workers, 3);
    assert_int_equal(sr->n_log_partitions, 8);
    assert_int_equal(sr->n_term_partitions, 8);
    for (size_t t = 0; t < sr->n_term_partitions; t++)
        assert_true(sr->term_partitions[t]->owner[0] != '\0');
    assert_int_equal(sr->n_indexes, 1);
    sx_rpc_free(resp);

    /* READY once every partition's leader reports its backfill done. */
    ClusterMap *m = sx_cluster_map(c);
    uint64_t index_id = m->indexes[0]->id;
    for (uint32_t p = 0; p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        Shardex__Internal__V1__ReportBackfillRequest rb =
            SHARDEX__INTERNAL__V1__REPORT_BACKFILL_REQUEST__INIT;
        rb.worker_id = m->workers[lp->leader]->id;
        rb.index_id = index_id;
        rb.partition = p;
        rb.epoch = lp->epoch + 1; /* a wrong epoch is refused */
        assert_int_equal(sx_rpc_invoke(c->rpc, c->coord_addr,
                                       &shardex__internal__v1__coordinator__descriptor,
                                       "ReportBackfill", &rb.base, &resp, &o, &err),
                         SX_FAILED_PRECONDITION);
        rb.epoch = lp->epoch;
        assert_int_equal(sx_rpc_invoke(c->rpc, c->coord_addr,
                                       &shardex__internal__v1__coordinator__descriptor,
                                       "ReportBackfill", &rb.base, &resp, &o, &err),
                         SX_OK);
        Shardex__Internal__V1__ReportBackfillResponse *rr = (void *)resp;
        assert_int_equal(rr->state, p + 1 == m->n_partitions
                                        ? SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY
                                        : SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING);
        sx_rpc_free(resp);
    }
    sx_rpc_free(&m->base);

    Shardex__V1__ListIndexesRequest lreq = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], svc, "ListIndexes", &lreq.base, &resp, &o, &err),
        SX_OK);
    Shardex__V1__ListIndexesResponse *lr = (void *)resp;
    assert_int_equal(lr->n_indexes, 1);
    assert_string_equal(lr->indexes[0]->spec->name, "by_section");
    assert_int_equal(lr->indexes[0]->state, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    sx_rpc_free(resp);

    /* The catalog survives a coordinator restart. */
    assert_true(sx_cluster_restart_coordinator(c, NULL));
    Shardex__V1__DropIndexRequest dreq = SHARDEX__V1__DROP_INDEX_REQUEST__INIT;
    dreq.name = "by_section";
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[0], svc, "DropIndex", &dreq.base, &resp, &o, &err),
        SX_OK);
    sx_rpc_free(resp);
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[0], svc, "DropIndex", &dreq.base, &resp, &o, &err),
        SX_NOT_FOUND);
    m = sx_cluster_map(c);
    assert_int_equal(m->n_indexes, 0);
    assert_int_equal(m->n_terms, 0);
    sx_rpc_free(&m->base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_worker_fails_over_and_rejoins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_restart_keeps_the_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_worker_is_replaced_and_steps_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_settings_are_fixed_at_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_catalog_through_a_worker, setup, teardown),
    };
    sx_fx_filter_from_env(); /* SHARDEX_TEST_FILTER and _SKIP (fixture.h) */
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
