/* test_graceful.c: a worker stopped with SIGTERM hands its roles over before
 * it exits (issue 15, graceful shutdown), against real processes
 * (coordinator + 3 workers, P=8, R=3, min_isr=2, a GLOBAL index so that term
 * partitions have owners).
 *
 * The lease is long (4 s) on purpose: a worker that simply died would keep
 * its leaderships in the coordinator's map for a lease and more after its
 * exit. So "the map names it dead and leading nothing the moment its process
 * is gone" can only hold because it handed over, with no timing in the check.
 *
 * A rolling restart of every worker, one at a time, while writers run
 * through the other workers: each stop must exit 0 with the map already
 * moved, every write must be acknowledged (a client may retry once, only a
 * call it had sent to the stopping worker itself), and afterwards every
 * acknowledged document is there, the replicas agree and `shardex verify`
 * is clean.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define WRITERS 2
#define MAX_ACKED 20000
#define CALL_MS 15000 /* a write's deadline: failovers fit in it */

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 8, .lease_ms = 4000};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

/* ---------------------------------------------------------------- writers -- */

typedef struct writers {
    sx_cluster *c;
    _Atomic uint32_t stopping; /* test index of the worker being stopped; WRITERS_NONE */
    atomic_bool done;
    pthread_mutex_t mu; /* below */
    char (*acked)[SX_QID];
    size_t nacked;
    uint32_t retries;  /* calls sent to the stopping worker, sent again elsewhere */
    uint32_t failures; /* anything else that was not acknowledged */
    char first_failure[512];
} writers;

#define WRITERS_NONE UINT32_MAX

typedef struct writer_arg {
    writers *ws;
    uint32_t no;
} writer_arg;

/* A worker to send through: any but the one being stopped, rotating. */
static uint32_t pick_worker(writers *ws, uint32_t *turn)
{
    uint32_t stopping = atomic_load(&ws->stopping);
    for (;;) {
        uint32_t i = (*turn)++ % ws->c->nworkers;
        if (i != stopping)
            return i;
    }
}

static void *writer_main(void *arg)
{
    writer_arg *wa = arg;
    writers *ws = wa->ws;
    uint32_t turn = wa->no;
    for (uint32_t k = 0; !atomic_load(&ws->done); k++) {
        sx_qdoc d = {0};
        snprintf(d.id, sizeof(d.id), "gr-w%u-%u", wa->no, k);
        sx_qdoc_add(&d, "v", sx_qval_str(d.id));
        bool retried = false;
        for (;;) {
            uint32_t via = pick_worker(ws, &turn);
            char addr[64];
            snprintf(addr, sizeof(addr), "%s", ws->c->worker_addr[via]);
            sx_err err = {0};
            sx_status st = sx_q_put(ws->c, addr, &d, 1, CALL_MS, NULL, NULL, &err);
            pthread_mutex_lock(&ws->mu);
            if (st == SX_OK) {
                if (ws->nacked < MAX_ACKED)
                    snprintf(ws->acked[ws->nacked++], SX_QID, "%s", d.id);
                pthread_mutex_unlock(&ws->mu);
                break;
            }
            /* The one retry a client may need: its call reached the worker
             * as that worker stopped (its server refuses new calls). */
            bool to_stopping = via == atomic_load(&ws->stopping);
            if (to_stopping && !retried &&
                (st == SX_UNAVAILABLE || st == SX_CANCELLED || st == SX_ABORTED)) {
                ws->retries++;
                retried = true;
                pthread_mutex_unlock(&ws->mu);
                continue;
            }
            if (ws->failures++ == 0)
                snprintf(ws->first_failure, sizeof(ws->first_failure),
                         "put %s via worker %u: %s: %s", d.id, via, sx_status_name(st), err.msg);
            pthread_mutex_unlock(&ws->mu);
            break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ the checks -- */

/* The map right after worker v's process ended: v dead, leading no log
 * partition, owning no term partition. Writes the first breach into why. */
static bool handed_over(sx_cluster *c, uint32_t v, char *why, size_t cap)
{
    ClusterMap *m = sx_cluster_map(c);
    if (!m) {
        snprintf(why, cap, "the coordinator did not answer GetMap");
        return false;
    }
    int32_t w = sx_cluster_index_of(m, c, v);
    bool ok = w >= 0;
    if (!ok)
        snprintf(why, cap, "worker %u is not in the map", v);
    if (ok && m->workers[w]->alive) {
        ok = false;
        snprintf(why, cap, "map version %" PRIu64 " still calls worker %u alive", m->version, v);
    }
    for (size_t p = 0; ok && p < m->n_partitions; p++)
        if (m->partitions[p]->leader == w) {
            ok = false;
            snprintf(why, cap, "map version %" PRIu64 " still has worker %u lead partition %zu",
                     m->version, v, p);
        }
    for (size_t t = 0; ok && t < m->n_terms; t++)
        if (m->terms[t]->owner == w) {
            ok = false;
            snprintf(why, cap, "map version %" PRIu64 " still has worker %u own term partition %zu",
                     m->version, v, t);
        }
    sx_rpc_free(&m->base);
    return ok;
}

typedef struct alive_arg {
    sx_cluster *c;
    uint32_t i;
} alive_arg;

/* Worker i is back in every partition's ISR (it caught up after its restart). */
static bool back_in_sync(void *arg)
{
    alive_arg *a = arg;
    for (uint32_t p = 0; p < a->c->opts.partitions; p++) {
        sx_cluster_part_view pv = sx_cluster_part_view_of(a->c, p);
        if (!pv.ok || pv.leader == SX_CLUSTER_NONE || !(pv.isr_mask & (1u << a->i)))
            return false;
    }
    return true;
}

/* SIGTERM to worker v; it must exit 0 with its roles already handed over;
 * then it starts again and catches up. */
static void stop_and_restart(sx_cluster *c, writers *ws, uint32_t v)
{
    atomic_store(&ws->stopping, v);
    uint64_t t0 = sx_clock_now_ms();
    kill(c->worker_pid[v], SIGTERM);
    int st = sx_h_wait_exit(c->worker_pid[v], 30000);
    uint64_t stopped_ms = sx_clock_now_ms() - t0;
    c->worker_pid[v] = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        SX_FX_FAIL(c, "worker %u did not exit 0 after SIGTERM (wait status %d)", v, st);
    char why[256] = "";
    if (!handed_over(c, v, why, sizeof(why)))
        SX_FX_FAIL(c, "worker %u exited without handing over: %s", v, why);
    fprintf(stderr, "worker %u stopped in %" PRIu64 " ms, its roles handed over\n", v, stopped_ms);
    if (!sx_cluster_start_worker(c, v))
        SX_FX_FAIL(c, "worker %u did not start again", v);
    alive_arg a = {c, v};
    SX_FX_WAIT(c, back_in_sync, &a, WAIT_MS, "worker %u did not rejoin every ISR", v);
    /* Only now do clients use it again (a restarted worker answers
     * UNAVAILABLE until it has joined: what a load balancer's health check
     * sees). */
    atomic_store(&ws->stopping, WRITERS_NONE);
}

static void test_rolling_restart_hands_over(void **state)
{
    sx_cluster *c = *state;
    sx_err err = {0};
    sx_qindex ix = {.name = "gr_v", .field = "v", .local = true, .global = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK)
        SX_FX_FAIL(c, "CreateIndex: %s", err.msg);
    if (!sx_q_wait_ready(c, c->worker_addr[0], "gr_v", WAIT_MS))
        SX_FX_FAIL(c, "index gr_v did not become READY");

    writers ws = {.c = c, .mu = PTHREAD_MUTEX_INITIALIZER};
    atomic_init(&ws.stopping, WRITERS_NONE);
    atomic_init(&ws.done, false);
    ws.acked = calloc(MAX_ACKED, SX_QID);
    pthread_t th[WRITERS];
    writer_arg wa[WRITERS];
    for (uint32_t i = 0; i < WRITERS; i++) {
        wa[i] = (writer_arg){&ws, i};
        pthread_create(&th[i], NULL, writer_main, &wa[i]);
    }
    for (uint32_t v = 0; v < c->nworkers; v++)
        stop_and_restart(c, &ws, v);
    atomic_store(&ws.done, true);
    for (uint32_t i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "writes acknowledged: %zu, retried once: %u, failed: %u\n", ws.nacked,
            ws.retries, ws.failures);
    if (ws.failures)
        SX_FX_FAIL(c, "%u writes failed during the rolling restart; the first: %s", ws.failures,
                   ws.first_failure);
    if (ws.nacked == 0)
        SX_FX_FAIL(c, "no write was acknowledged during the rolling restart");

    for (size_t i = 0; i < ws.nacked; i++) {
        Shardex__V1__GetResponse *g = NULL;
        if (sx_docs_get(c, (uint32_t)(i % c->nworkers), ws.acked[i], NULL, &g, &err) != SX_OK ||
            !g->found) {
            sx_rpc_free(g ? &g->base : NULL);
            SX_FX_FAIL(c, "acknowledged document %s is missing: %s", ws.acked[i],
                       err.code ? err.msg : "not found");
        }
        sx_rpc_free(&g->base);
    }
    free(ws.acked);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    char why[512] = "";
    if (!sx_check_verify(c, 120000, why, sizeof(why)))
        SX_FX_FAIL(c, "verify after the rolling restart: %s", why);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rolling_restart_hands_over, setup,
                                        sx_fx_cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
