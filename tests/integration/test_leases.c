/* test_leases.c: leases against real processes (coordinator + 3 workers, P=8,
 * R=3, min_isr=2, lease 1000 ms), issue 11's bugs 5 and 2:
 *
 * - The coordinator stopped (SIGSTOP) for two and a half leases, then
 *   resumed: it must not judge anyone on a gap in which it did not run itself
 *   (it used to tick before reading the queued heartbeats and declare every
 *   worker dead at once). Nobody dies, no epoch rises, writes go on.
 * - One worker's heartbeat replies are lost (drop_reply on its Heartbeat): it
 *   steps down by itself (its lease counts from answered heartbeats), so the
 *   coordinator must stop counting it alive too: within a few leases its
 *   partitions have other leaders and single-document Puts through the other
 *   workers succeed. Healed, it rejoins and every replica agrees.
 * - One worker's RegisterWorker replies are lost for a while: its retries
 *   (the same process) get the same incarnation back instead of a new one
 *   (and new epochs) every time.
 *
 * Every test ends with sx_check_replicas. SHARDEX_TEST_FILTER runs some only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
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

#define LEASE_MS 1000
#define WAIT_MS 30000 /* generous: the machine is shared with the build */
#define MAXP 8

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

static int setup(void **state)
{
    /* On etcd, an etcd lease that outlasts the coordinator's pause (2.5
     * leases): this one checks how the leader judges a gap, not that a
     * leader paused past its etcd lease stops (test_coord_etcd). */
    sx_cluster_opts o = {
        .workers = 3, .partitions = MAXP, .lease_ms = LEASE_MS, .metadata_lease_s = 10};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sx_cluster *c = *state;
    sx_cluster_kill_all(c); /* the data is thrown away */
    sx_cluster_stop(c);
    free(c);
    return 0;
}

/* ------------------------------------------------------ what the map says -- */

/* The map as the tests compare it, by test worker index. */
typedef struct snap {
    bool ok;
    bool alive[SX_TEST_MAX_WORKERS];
    uint64_t incarnation[SX_TEST_MAX_WORKERS];
    uint64_t epoch[MAXP];
    uint32_t leader[MAXP]; /* test index; UINT32_MAX: none or unknown */
} snap;

static snap snap_of(sx_cluster *c)
{
    snap s = {0};
    ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return s;
    s.ok = m->n_partitions == MAXP;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        int32_t w = sx_cluster_index_of(m, c, i);
        s.alive[i] = w >= 0 && m->workers[w]->alive;
        s.incarnation[i] = w >= 0 ? m->workers[w]->incarnation : 0;
    }
    for (size_t p = 0; s.ok && p < MAXP; p++) {
        s.epoch[p] = m->partitions[p]->epoch;
        s.leader[p] = UINT32_MAX;
        for (uint32_t i = 0; i < c->nworkers; i++)
            if (m->partitions[p]->leader >= 0 &&
                sx_cluster_index_of(m, c, i) == m->partitions[p]->leader)
                s.leader[p] = i;
    }
    sx_rpc_free(&m->base);
    return s;
}

/* --------------------------------------------------------------- writes -- */

/* One document whose id falls in partition p. */
static sx_doc_spec doc_for(const sx_cluster *c, uint32_t p, const char *tag)
{
    sx_doc_spec d = {0};
    for (uint32_t i = 0;; i++) {
        int len = snprintf(d.id, sizeof(d.id), "%.40s-%u", tag, i);
        if (sx_partition_of(d.id, (size_t)len, c->opts.partitions) == p)
            break;
    }
    snprintf(d.text, sizeof(d.text), "%.40s", tag);
    return d;
}

/* A single-document Put into partition p through worker via. */
static sx_status put_one(sx_cluster *c, uint32_t via, uint32_t p, const char *tag,
                         uint64_t timeout_ms, sx_err *err)
{
    sx_doc_spec d = doc_for(c, p, tag);
    return sx_docs_put(c, via, &d, 1, timeout_ms, NULL, err);
}

static void must_put_one(sx_cluster *c, uint32_t via, uint32_t p, const char *tag,
                         uint64_t timeout_ms)
{
    sx_err err = {0};
    sx_status st = put_one(c, via, p, tag, timeout_ms, &err);
    if (st != SX_OK)
        SX_FX_FAIL(c, "single-document put into partition %u via worker %u: %s (%s)", p, via,
                   sx_status_name(st), err.msg);
}

/* ----------------------------------------------------------------- bug 5 -- */

static void test_coordinator_pause_judges_nobody(void **state)
{
    sx_cluster *c = *state;
    snap before = snap_of(c);
    assert_true(before.ok);
    for (uint32_t p = 0; p < MAXP; p++)
        must_put_one(c, p % c->nworkers, p, "pause-before", 10000);

    /* Stopped for two and a half leases: every worker's lease (and the
     * coordinator's margin) runs out meanwhile, on the coordinator's clock. */
    sx_h_pause(c->coord_pid);
    sx_clock_sleep_ms(LEASE_MS * 5 / 2);
    sx_h_resume(c->coord_pid);

    /* For three leases: nobody declared dead (or registered again), no epoch up. */
    uint64_t end = sx_clock_now_ms() + 3 * LEASE_MS;
    int samples = 0;
    while (sx_clock_now_ms() < end) {
        snap now = snap_of(c);
        if (now.ok) {
            samples++;
            for (uint32_t i = 0; i < c->nworkers; i++)
                if (!now.alive[i] || now.incarnation[i] != before.incarnation[i])
                    SX_FX_FAIL(c,
                               "after the coordinator's pause, worker %u is %s (incarnation "
                               "%" PRIu64 ", was %" PRIu64 "): it was judged on a gap in which "
                               "the coordinator did not run",
                               i, now.alive[i] ? "alive" : "dead", now.incarnation[i],
                               before.incarnation[i]);
            for (uint32_t p = 0; p < MAXP; p++)
                if (now.epoch[p] != before.epoch[p])
                    SX_FX_FAIL(c,
                               "after the coordinator's pause, partition %u is at epoch %" PRIu64
                               " (was %" PRIu64 ")",
                               p, now.epoch[p], before.epoch[p]);
        }
        sx_clock_sleep_ms(50);
    }
    if (samples < 5)
        SX_FX_FAIL(c, "the coordinator answered only %d times in three leases", samples);

    /* Writes go on, through every worker. */
    for (uint32_t p = 0; p < MAXP; p++)
        for (uint32_t i = 0; i < c->nworkers; i++)
            must_put_one(c, i, p, "pause-after", 10000);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

/* ----------------------------------------------------------------- bug 2 -- */

typedef struct moved_wait {
    sx_cluster *c;
    uint32_t x;
} moved_wait;

/* x is dead in the map and every partition has a live leader other than x. */
static bool moved_off(void *arg)
{
    moved_wait *w = arg;
    snap s = snap_of(w->c);
    if (!s.ok || s.alive[w->x])
        return false;
    for (uint32_t p = 0; p < MAXP; p++)
        if (s.leader[p] == UINT32_MAX || s.leader[p] == w->x || !s.alive[s.leader[p]])
            return false;
    return true;
}

static bool alive_again(void *arg)
{
    moved_wait *w = arg;
    return snap_of(w->c).alive[w->x];
}

static void test_lost_heartbeat_replies_move_leadership(void **state)
{
    sx_cluster *c = *state;
    snap before = snap_of(c);
    assert_true(before.ok);
    /* x: the worker that leads the most partitions. */
    uint32_t led[SX_TEST_MAX_WORKERS] = {0}, x = 0;
    for (uint32_t p = 0; p < MAXP; p++)
        if (before.leader[p] < c->nworkers)
            led[before.leader[p]]++;
    for (uint32_t i = 1; i < c->nworkers; i++)
        if (led[i] > led[x])
            x = i;
    assert_true(led[x] > 0);
    for (uint32_t p = 0; p < MAXP; p++)
        must_put_one(c, p % c->nworkers, p, "hb-before", 10000);

    /* x's heartbeats reach the coordinator; their answers never reach x. */
    assert_true(sx_cluster_set_faults(c, x, "method=Heartbeat,drop_reply=1"));
    uint64_t t0 = sx_clock_now_ms();
    moved_wait mw = {.c = c, .x = x};
    SX_FX_WAIT(c, moved_off, &mw, WAIT_MS,
               "worker %u hears no heartbeat answer (it stepped down by itself), yet after %d s "
               "the coordinator still counts it alive or leading",
               x, WAIT_MS / 1000);
    uint64_t took = sx_clock_now_ms() - t0;
    fprintf(stderr, "lost heartbeat replies: partitions moved off worker %u in %" PRIu64 " ms\n", x,
            took);
    if (took > 5 * LEASE_MS)
        SX_FX_FAIL(c, "partitions moved off worker %u only after %" PRIu64 " ms (> 5 leases)", x,
                   took);

    /* Single-document Puts through the other workers succeed again, in every
     * partition, x's former ones included. */
    for (uint32_t p = 0; p < MAXP; p++)
        for (uint32_t i = 0; i < c->nworkers; i++)
            if (i != x)
                must_put_one(c, i, p, "hb-during", 5000);

    /* Healed: x hears it was declared dead, registers again and catches up. */
    assert_true(sx_cluster_set_faults(c, x, ""));
    SX_FX_WAIT(c, alive_again, &mw, WAIT_MS, "worker %u did not come back once healed", x);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    for (uint32_t p = 0; p < MAXP; p++)
        must_put_one(c, x, p, "hb-after", 10000);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

typedef struct inc_wait {
    sx_cluster *c;
    uint32_t x;
    uint64_t not ; /* an incarnation to see replaced */
} inc_wait;

static bool dead_in_map(void *arg)
{
    inc_wait *w = arg;
    snap s = snap_of(w->c);
    return s.ok && !s.alive[w->x];
}

static bool alive_in_another(void *arg)
{
    inc_wait *w = arg;
    snap s = snap_of(w->c);
    return s.ok && s.alive[w->x] && s.incarnation[w->x] != w->not ;
}

/* x believes it is registered in incarnation `not` (here: the one it kept). */
static bool registered_as(void *arg)
{
    inc_wait *w = arg;
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(w->c, w->x);
    bool ok = s && s->index >= 0 && s->incarnation == w->not &&s->lease_valid;
    sx_rpc_free(s ? &s->base : NULL);
    return ok;
}

static void test_lost_register_replies_keep_incarnation(void **state)
{
    sx_cluster *c = *state;
    const uint32_t x = 2;
    snap before = snap_of(c);
    assert_true(before.ok);

    /* x must register again (declared dead while stopped), and every answer
     * to its registration is lost. */
    assert_true(sx_cluster_set_faults(c, x, "method=RegisterWorker,drop_reply=1"));
    sx_h_pause(c->worker_pid[x]);
    inc_wait iw = {.c = c, .x = x, .not = before.incarnation[x]};
    SX_FX_WAIT(c, dead_in_map, &iw, WAIT_MS, "stopped worker %u was not declared dead", x);
    sx_h_resume(c->worker_pid[x]);
    SX_FX_WAIT(c, alive_in_another, &iw, WAIT_MS, "worker %u did not register again", x);
    uint64_t inc1 = snap_of(c).incarnation[x];

    /* Its retries (every attempt's answer lost) keep that incarnation. */
    uint64_t end = sx_clock_now_ms() + 4 * LEASE_MS;
    while (sx_clock_now_ms() < end) {
        snap s = snap_of(c);
        if (s.ok && s.incarnation[x] != inc1)
            SX_FX_FAIL(c,
                       "worker %u, whose registration answers are lost, went from incarnation "
                       "%" PRIu64 " to %" PRIu64 ": a retry from the same process made a new one",
                       x, inc1, s.incarnation[x]);
        sx_clock_sleep_ms(50);
    }

    /* Healed: its next retry is answered with that same incarnation. */
    assert_true(sx_cluster_set_faults(c, x, ""));
    iw.not = inc1;
    SX_FX_WAIT(c, registered_as, &iw, WAIT_MS,
               "worker %u did not end up registered in incarnation %" PRIu64, x, inc1);
    assert_int_equal(snap_of(c).incarnation[x], inc1);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    for (uint32_t p = 0; p < MAXP; p++)
        must_put_one(c, x, p, "reg-after", 10000);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

int main(void)
{
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_coordinator_pause_judges_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_heartbeat_replies_move_leadership, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lost_register_replies_keep_incarnation, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
