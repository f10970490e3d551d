/* test_replica_moves.c: replica moves against real processes (issue 14: a cluster
 * that grows and shrinks): add-then-drop moves, `shardex worker drain` and
 * `shardex worker remove` (P=8, lease 1000 ms).
 *
 *  - join: a fourth worker starts beside a loaded three-worker cluster at
 *    R=1 and at R=3 while writer threads run; within a minute it holds its
 *    share of replicas and leaderships (each worker within one of the mean)
 *    with no move in flight;
 *  - join on trimmed logs: P=4, R=3, log retention at its default (`min`):
 *    overwrites until every leader has trimmed its log's beginning, then
 *    a fourth worker joins under writes: every replica it gets came from a
 *    snapshot (WorkerStatus.snapshots_installed, each log starting above 1),
 *    every overwritten document reads back with its last value;
 *  - drain: `shardex worker drain ID --wait` under writes until it holds
 *    nothing (replicas, leaderships, term partitions of a global index);
 *    then its partition stores are gone from its disk (a replica the map
 *    no longer gives a worker is deleted), it is stopped, restarted (it
 *    reports no store lost: the deleted ones are not recorded any more),
 *    undrained, and gets fresh replicas again;
 *  - remove: kill -9 of a worker, `shardex worker remove` refused while the
 *    map still calls it alive (naming it), accepted once dead; its replicas
 *    are re-created on the others, every ISR whole again.
 * After each: every acknowledged write reads back, the replicas agree,
 * `shardex verify` is clean, and after a join each worker's partition
 * directories are exactly the replicas the map gives it. Writers use only workers that stay up.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define SHARE_MS 60000 /* a joining worker's share, a drain: within a minute */
#define WRITERS 2
#define MAX_ACKED 50000
#define CALL_MS 15000

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

/* ---------------------------------------------------------------- writers -- */

typedef struct writers {
    sx_cluster *c;
    uint32_t nvia; /* write through test workers 0..nvia-1 only */
    atomic_bool done;
    pthread_mutex_t mu; /* below */
    char (*acked)[SX_QID];
    size_t nacked;
    uint32_t failures;
    char first_failure[512];
} writers;

typedef struct writer_arg {
    writers *ws;
    uint32_t no;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *wa = arg;
    writers *ws = wa->ws;
    for (uint32_t k = 0; !atomic_load(&ws->done); k++) {
        sx_qdoc d = {0};
        snprintf(d.id, sizeof(d.id), "mv-w%u-%u", wa->no, k);
        sx_qdoc_add(&d, "v", sx_qval_str(d.id));
        uint32_t via = (wa->no + k) % ws->nvia;
        char addr[64];
        snprintf(addr, sizeof(addr), "%s", ws->c->worker_addr[via]);
        sx_err err = {0};
        sx_status st = sx_q_put(ws->c, addr, &d, 1, CALL_MS, NULL, NULL, &err);
        pthread_mutex_lock(&ws->mu);
        if (st == SX_OK && ws->nacked < MAX_ACKED)
            snprintf(ws->acked[ws->nacked++], SX_QID, "%s", d.id);
        else if (st != SX_OK && ws->failures++ == 0)
            snprintf(ws->first_failure, sizeof(ws->first_failure), "put %s via worker %u: %s: %s",
                     d.id, via, sx_status_name(st), err.msg);
        pthread_mutex_unlock(&ws->mu);
    }
    return NULL;
}

typedef struct run {
    writers ws;
    pthread_t th[WRITERS];
    writer_arg wa[WRITERS];
} run;

static void writers_start(run *r, sx_cluster *c, uint32_t nvia)
{
    memset(r, 0, sizeof(*r));
    r->ws.c = c;
    r->ws.nvia = nvia;
    pthread_mutex_init(&r->ws.mu, NULL);
    atomic_init(&r->ws.done, false);
    r->ws.acked = calloc(MAX_ACKED, SX_QID);
    for (uint32_t i = 0; i < WRITERS; i++) {
        r->wa[i] = (writer_arg){&r->ws, i};
        pthread_create(&r->th[i], NULL, writer_main, &r->wa[i]);
    }
}

/* Stops the writers; every write acknowledged, and each reads back through
 * the workers that stayed up. */
static void writers_stop_and_check(run *r)
{
    writers *ws = &r->ws;
    sx_cluster *c = ws->c;
    atomic_store(&ws->done, true);
    for (uint32_t i = 0; i < WRITERS; i++)
        pthread_join(r->th[i], NULL);
    fprintf(stderr, "writes acknowledged: %zu, failed: %u\n", ws->nacked, ws->failures);
    if (ws->failures)
        SX_FX_FAIL(c, "%u writes failed; the first: %s", ws->failures, ws->first_failure);
    if (ws->nacked == 0)
        SX_FX_FAIL(c, "no write was acknowledged");
    for (size_t i = 0; i < ws->nacked; i++) {
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(c, (uint32_t)(i % ws->nvia), ws->acked[i], NULL, &g, &err) != SX_OK ||
            !g->found) {
            sx_rpc_free(g ? &g->base : NULL);
            SX_FX_FAIL(c, "acknowledged document %s is missing: %s", ws->acked[i],
                       err.code ? err.msg : "not found");
        }
        sx_rpc_free(&g->base);
    }
    free(ws->acked);
    pthread_mutex_destroy(&ws->mu);
}

typedef struct more_arg {
    run *r;
    size_t want;
} more_arg;

static bool acked_enough(void *arg)
{
    more_arg *a = arg;
    pthread_mutex_lock(&a->r->ws.mu);
    size_t n = a->r->ws.nacked;
    pthread_mutex_unlock(&a->r->ws.mu);
    return n >= a->want;
}

/* Waits until the writers have had n more writes acknowledged. */
static void wait_writes(sx_cluster *c, run *r, size_t n)
{
    pthread_mutex_lock(&r->ws.mu);
    more_arg a = {r, r->ws.nacked + n};
    pthread_mutex_unlock(&r->ws.mu);
    SX_FX_WAIT(c, acked_enough, &a, WAIT_MS, "the writers did not get %zu more writes through", n);
}

static void check_all(sx_cluster *c)
{
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    char why[512] = "";
    if (!sx_check_verify(c, 120000, why, sizeof(why)))
        SX_FX_FAIL(c, "verify: %s", why);
}

/* ------------------------------------------------------------------ map -- */

/* What the map says each test worker holds and leads, and the moves in
 * flight; false when the coordinator did not answer. */
typedef struct holdings {
    uint32_t rep[SX_TEST_MAX_WORKERS], lead[SX_TEST_MAX_WORKERS], own[SX_TEST_MAX_WORKERS];
    uint32_t moving;
    uint32_t alive_mask;
    bool all_led; /* every partition has a leader and a whole ISR */
} holdings;

static bool holdings_of(sx_cluster *c, holdings *h)
{
    memset(h, 0, sizeof(*h));
    ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    h->all_led = true;
    for (size_t p = 0; p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        h->moving += lp->move != NULL;
        h->all_led &= lp->leader >= 0 && lp->n_isr == lp->n_replicas;
        for (size_t k = 0; k < lp->n_replicas; k++) {
            uint32_t i = sx_cluster_test_index(c, m, lp->replicas[k]);
            if (i != SX_CLUSTER_NONE)
                h->rep[i]++;
        }
        uint32_t l = sx_cluster_test_index(c, m, lp->leader);
        if (l != SX_CLUSTER_NONE)
            h->lead[l]++;
    }
    for (size_t t = 0; t < m->n_terms; t++) {
        uint32_t o = sx_cluster_test_index(c, m, m->terms[t]->owner);
        if (o != SX_CLUSTER_NONE)
            h->own[o]++;
    }
    for (size_t w = 0; w < m->n_workers; w++) {
        uint32_t i = sx_cluster_test_index(c, m, (int32_t)w);
        if (i != SX_CLUSTER_NONE && m->workers[w]->alive)
            h->alive_mask |= 1u << i;
    }
    sx_rpc_free(&m->base);
    return true;
}

/* Each test worker holds its share of replicas and leaderships, every
 * partition is led with a whole ISR, and nothing is moving. */
static bool balanced(void *arg)
{
    sx_cluster *c = arg;
    holdings h;
    if (!holdings_of(c, &h) || h.moving || !h.all_led)
        return false;
    uint32_t n = c->nworkers, P = c->opts.partitions, R = c->opts.replication;
    uint32_t rep_lo = P * R / n, rep_hi = (P * R + n - 1) / n;
    uint32_t lead_lo = P / n, lead_hi = (P + n - 1) / n;
    /* Replicas as balanced as they can be (the planner's goal); leaderships
     * within one of that, but the newcomer leads at least one. */
    for (uint32_t i = 0; i < n; i++)
        if (h.rep[i] < rep_lo || h.rep[i] > rep_hi || h.lead[i] + 1 < lead_lo ||
            h.lead[i] > lead_hi + 1 || h.lead[i] == 0)
            return false;
    return true;
}

static void print_holdings(sx_cluster *c, const char *when)
{
    holdings h;
    if (!holdings_of(c, &h))
        return;
    fprintf(stderr, "%s:", when);
    for (uint32_t i = 0; i < c->nworkers; i++)
        fprintf(stderr, " w%u %u replicas %u leads;", i, h.rep[i], h.lead[i]);
    fprintf(stderr, " %u moving\n", h.moving);
}

/* Test worker i's partition stores on disk (pNNNN directories; stores set
 * aside or in a swap have a suffix) are exactly the replicas the map gives
 * it, and nothing is moving. */
typedef struct stores_arg {
    sx_cluster *c;
    uint32_t i;
} stores_arg;

static bool stores_match_map(void *arg)
{
    stores_arg *a = arg;
    ClusterMap *m = sx_cluster_map(a->c);
    if (!m)
        return false;
    bool want[64] = {false}, ok = m->n_partitions <= 64;
    for (size_t p = 0; ok && p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        ok &= lp->move == NULL;
        for (size_t k = 0; k < lp->n_replicas; k++)
            want[p] |= sx_cluster_test_index(a->c, m, lp->replicas[k]) == a->i;
    }
    sx_rpc_free(&m->base);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/w%u/partitions", a->c->dir, a->i);
    DIR *d = opendir(dir);
    bool have[64] = {false};
    for (struct dirent *de; ok && d && (de = readdir(d));) {
        unsigned p = 0;
        char tail = 0;
        if (sscanf(de->d_name, "p%4u%c", &p, &tail) == 1 && p < 64)
            have[p] = true;
    }
    if (d)
        closedir(d);
    for (size_t p = 0; ok && p < 64; p++)
        ok &= want[p] == have[p];
    return ok;
}

/* How many times the coordinator's log says `what`. */
static int count_in_coord_log(sx_cluster *c, const char *what)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/coord.log", c->dir);
    sx_buf b = {0};
    bool found = false;
    int n = 0;
    if (sx_file_read(path, 64u << 20, &b, &found, NULL) == SX_OK && found) {
        sx_buf_push(&b, 0);
        for (const char *p = (const char *)b.data; (p = strstr(p, what)); p++)
            n++;
    }
    sx_buf_free(&b);
    return n;
}

/* ----------------------------------------------------------------- tools -- */

/* Runs `shardex --server <worker 0> args...`; the result is the caller's. */
static sx_h_run shardex(sx_cluster *c, const char *const *args, uint64_t timeout_ms)
{
    char bin[512], out[512], errf[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    snprintf(out, sizeof(out), "%s/cli.out", c->dir);
    snprintf(errf, sizeof(errf), "%s/cli.err", c->dir);
    char *argv[16] = {bin, "--server", c->worker_addr[0], "--timeout-ms", "90000"};
    int n = 5;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return sx_h_run_wait(argv, NULL, NULL, out, errf, timeout_ms);
}

/* ----------------------------------------------------------------- tests -- */

static void join(uint32_t r, uint32_t min_isr)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 8, .replication = r, .min_isr = min_isr};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    assert_non_null(c);
    run wr;
    writers_start(&wr, c, 3);
    wait_writes(c, &wr, 300); /* loaded before the fourth worker comes */
    print_holdings(c, "before the join");
    c->nworkers = 4;
    uint64_t t0 = sx_clock_now_ms();
    if (!sx_cluster_start_worker(c, 3))
        SX_FX_FAIL(c, "the fourth worker did not start");
    SX_FX_WAIT(c, balanced, c, SHARE_MS, "R=%u: the fourth worker did not get its share", r);
    fprintf(stderr, "R=%u: balanced %" PRIu64 " ms after the fourth worker started\n", r,
            sx_clock_now_ms() - t0);
    print_holdings(c, "after the join");
    for (uint32_t i = 0; i < 4; i++) { /* the moves' dropped replicas are deleted */
        stores_arg sa = {c, i};
        SX_FX_WAIT(c, stores_match_map, &sa, WAIT_MS,
                   "worker %u's partition stores are not the map's replicas", i);
    }
    writers_stop_and_check(&wr);
    check_all(c);
    sx_cluster_kill_all(c);
    sx_cluster_stop(c);
    free(c);
}

/* ------------------------------------------------------ join, trimmed logs -- */

#define TR_DOCS 200
#define TR_BATCH 50

/* One round of overwrites of TR_DOCS padded documents through workers
 * 0..2, each batch retried until acknowledged. */
static void overwrite_round(sx_cluster *c, uint32_t round)
{
    static char pad[201];
    memset(pad, 'p', 200);
    sx_doc_spec d[TR_BATCH];
    for (uint32_t i = 0; i < TR_DOCS; i += TR_BATCH) {
        for (uint32_t k = 0; k < TR_BATCH; k++) {
            memset(&d[k], 0, sizeof(d[k]));
            snprintf(d[k].id, sizeof(d[k].id), "tr-%u", i + k);
            snprintf(d[k].text, sizeof(d[k].text), "round %u", round);
            d[k].n = round;
            d[k].pad = pad;
        }
        uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
        for (uint32_t via = i / TR_BATCH;; via++) {
            sx_err err = {0};
            if (sx_docs_put(c, via % 3, d, TR_BATCH, CALL_MS, NULL, &err) == SX_OK)
                break;
            if (sx_clock_now_ms() > deadline)
                SX_FX_FAIL(c, "round %u: tr-%u.. not acknowledged: %s", round, i, err.msg);
            sx_clock_sleep_ms(20);
        }
    }
}

/* Every partition's leader has trimmed its log (starts above 1). */
static bool leaders_trimmed(sx_cluster *c)
{
    uint32_t trimmed = 0;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(c, i);
        if (!ws)
            return false;
        for (size_t k = 0; k < ws->n_replicas; k++)
            trimmed += strcmp(ws->replicas[k]->role, "leader") == 0 &&
                       ws->replicas[k]->log_start_offset > 1;
        sx_rpc_free(&ws->base);
    }
    return trimmed == c->opts.partitions;
}

static void test_join_trimmed(void **state)
{
    (void)state;
    unsetenv("SHARDEX_LOG_RETENTION"); /* the default, min */
    unsetenv("SHARDEX_LOG_RETENTION_ENTRIES");
    sx_cluster_opts o = {.workers = 3, .partitions = 4, .replication = 3, .min_isr = 2};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    assert_non_null(c);
    uint32_t round = 0;
    while (!leaders_trimmed(c)) {
        if (round == 200)
            SX_FX_FAIL(c, "the leaders did not trim their logs in %u rounds", round);
        overwrite_round(c, ++round);
    }
    fprintf(stderr, "logs trimmed after %u rounds of %u documents\n", round, TR_DOCS);
    run wr;
    writers_start(&wr, c, 3);
    c->nworkers = 4;
    uint64_t t0 = sx_clock_now_ms();
    if (!sx_cluster_start_worker(c, 3))
        SX_FX_FAIL(c, "the fourth worker did not start");
    SX_FX_WAIT(c, balanced, c, SHARE_MS, "the fourth worker did not get its share");
    fprintf(stderr, "balanced %" PRIu64 " ms after the fourth worker started\n",
            sx_clock_now_ms() - t0);
    for (uint32_t i = 0; i < 4; i++) {
        stores_arg sa = {c, i};
        SX_FX_WAIT(c, stores_match_map, &sa, WAIT_MS,
                   "worker %u's partition stores are not the map's replicas", i);
    }
    holdings h;
    if (!holdings_of(c, &h) || h.rep[3] == 0)
        SX_FX_FAIL(c, "the fourth worker holds no replica");
    Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(c, 3);
    if (!ws)
        SX_FX_FAIL(c, "worker 3: no status");
    uint64_t installed = ws->snapshots_installed;
    bool all_trimmed = ws->n_replicas == h.rep[3];
    for (size_t k = 0; k < ws->n_replicas; k++)
        all_trimmed &= ws->replicas[k]->log_start_offset > 1;
    sx_rpc_free(&ws->base);
    fprintf(stderr, "worker 3: %u replicas, %" PRIu64 " snapshots installed\n", h.rep[3],
            installed);
    if (installed < h.rep[3] || !all_trimmed)
        SX_FX_FAIL(c, "worker 3's %u replicas did not all come from snapshots (%" PRIu64 ")",
                   h.rep[3], installed);
    writers_stop_and_check(&wr);
    for (uint32_t i = 0; i < TR_DOCS; i++) {
        char id[32], want[32];
        snprintf(id, sizeof(id), "tr-%u", i);
        snprintf(want, sizeof(want), "round %u", round);
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(c, i % 4, id, NULL, &g, &err) != SX_OK || !g->found ||
            strcmp(sx_doc_text(g->doc), want) != 0) {
            sx_rpc_free(g ? &g->base : NULL);
            SX_FX_FAIL(c, "%s does not read back as '%s' (%s)", id, want,
                       err.code ? err.msg : "other text");
        }
        sx_rpc_free(&g->base);
    }
    check_all(c);
    sx_cluster_kill_all(c);
    sx_cluster_stop(c);
    free(c);
}

static void test_join_r1(void **state)
{
    (void)state;
    join(1, 1);
}

static void test_join_r3(void **state)
{
    (void)state;
    join(3, 2);
}

typedef struct drained_arg {
    sx_cluster *c;
    uint32_t i;
} drained_arg;

/* The map gives test worker i nothing, and nothing is moving. */
static bool holds_nothing(void *arg)
{
    drained_arg *a = arg;
    holdings h;
    return holdings_of(a->c, &h) && h.rep[a->i] == 0 && h.lead[a->i] == 0 && h.own[a->i] == 0 &&
           !h.moving && h.all_led;
}

static void test_drain(void **state)
{
    (void)state;
    sx_cluster_opts o = {.workers = 4, .partitions = 8, .replication = 3, .min_isr = 2};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    assert_non_null(c);
    /* A global index, so that the drained worker owns term partitions too. */
    sx_err err = {0};
    sx_qindex ix = {.name = "mv_v", .field = "v", .local = true, .global = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK)
        SX_FX_FAIL(c, "CreateIndex: %s", err.msg);
    if (!sx_q_wait_ready(c, c->worker_addr[0], "mv_v", WAIT_MS))
        SX_FX_FAIL(c, "index mv_v did not become READY");
    holdings h0;
    if (!holdings_of(c, &h0) || h0.own[3] == 0 || h0.lead[3] == 0)
        SX_FX_FAIL(c, "worker 3 leads and owns nothing before its drain");
    run wr;
    writers_start(&wr, c, 3); /* not through worker 3, which goes */
    uint64_t t0 = sx_clock_now_ms();
    const char *args[] = {"worker", "drain", c->worker_id[3], "--wait", NULL};
    sx_h_run r = shardex(c, args, SHARE_MS + 30000);
    if (r.code != 0 || !strstr(r.out, "drained") || !strstr(r.out, "safe to stop")) {
        sx_h_run_print("shardex worker drain --wait", &r);
        SX_FX_FAIL(c, "drain --wait did not end drained");
    }
    fprintf(stderr, "drained in %" PRIu64 " ms: %s", sx_clock_now_ms() - t0, r.out);
    sx_h_run_free(&r);
    drained_arg a = {c, 3};
    if (!holds_nothing(&a))
        SX_FX_FAIL(c, "the map still gives the drained worker something");
    const char *st[] = {"status", NULL};
    r = shardex(c, st, 30000);
    if (r.code != 0 || !strstr(r.out, "drained")) {
        sx_h_run_print("shardex status", &r);
        SX_FX_FAIL(c, "status does not show the drained worker");
    }
    sx_h_run_free(&r);
    stores_arg sa = {c, 3};
    SX_FX_WAIT(c, stores_match_map, &sa, WAIT_MS, "the drained worker's stores are still there");
    sx_cluster_kill_worker(c, 3);
    c->nworkers = 3;          /* the checks below look at the workers that stay */
    wait_writes(c, &wr, 200); /* writes go on after it stopped */
    /* Back, undrained: it lost nothing (its stores were deleted on purpose
     * and forgotten), and gets fresh replicas again. */
    if (!sx_cluster_start_worker(c, 3))
        SX_FX_FAIL(c, "the drained worker did not restart");
    const char *undrain[] = {"worker", "drain", c->worker_id[3], "--cancel", NULL};
    r = shardex(c, undrain, 30000);
    if (r.code != 0) {
        sx_h_run_print("shardex worker drain --cancel", &r);
        SX_FX_FAIL(c, "undrain failed");
    }
    sx_h_run_free(&r);
    c->nworkers = 4;
    SX_FX_WAIT(c, balanced, c, SHARE_MS, "the undrained worker did not get its share back");
    SX_FX_WAIT(c, stores_match_map, &sa, WAIT_MS,
               "the undrained worker's stores are not its map's");
    if (count_in_coord_log(c, "lost_stores=") != count_in_coord_log(c, "lost_stores=0"))
        SX_FX_FAIL(c, "a worker reported a store lost");
    writers_stop_and_check(&wr);
    check_all(c);
    sx_cluster_kill_all(c);
    sx_cluster_stop(c);
    free(c);
}

typedef struct dead_arg {
    sx_cluster *c;
    uint32_t i;
} dead_arg;

static bool is_dead(void *arg)
{
    dead_arg *a = arg;
    holdings h;
    return holdings_of(a->c, &h) && !(h.alive_mask & (1u << a->i));
}

static void test_remove(void **state)
{
    (void)state;
    sx_cluster_opts o = {.workers = 4, .partitions = 8, .replication = 3, .min_isr = 2};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    assert_non_null(c);
    const char *args[] = {"worker", "remove", c->worker_id[3], NULL};
    sx_h_run r = shardex(c, args, 30000);
    if (r.code != 5 || !strstr(r.err, c->worker_id[3]) || !strstr(r.err, "alive")) {
        sx_h_run_print("shardex worker remove (alive)", &r);
        SX_FX_FAIL(c, "removing a live worker was not refused naming it");
    }
    sx_h_run_free(&r);
    run wr;
    writers_start(&wr, c, 3);
    sx_cluster_kill_worker(c, 3);
    dead_arg d = {c, 3};
    SX_FX_WAIT(c, is_dead, &d, WAIT_MS, "the killed worker is not dead in the map");
    r = shardex(c, args, 30000);
    if (r.code != 0) {
        sx_h_run_print("shardex worker remove", &r);
        SX_FX_FAIL(c, "removing the dead worker failed");
    }
    sx_h_run_free(&r);
    drained_arg a = {c, 3};
    SX_FX_WAIT(c, holds_nothing, &a, SHARE_MS,
               "the removed worker's replicas were not re-created elsewhere");
    wait_writes(c, &wr, 200); /* writes go on with the re-created replicas */
    holdings h;
    holdings_of(c, &h);
    for (uint32_t i = 0; i < 3; i++)
        if (h.rep[i] != 8) /* P=8, R=3 on three workers: every one holds all */
            SX_FX_FAIL(c, "worker %u holds %u replicas, want 8", i, h.rep[i]);
    c->nworkers = 3;
    writers_stop_and_check(&wr);
    check_all(c);
    c->nworkers = 4;
    sx_cluster_kill_all(c);
    sx_cluster_stop(c);
    free(c);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_r1),      cmocka_unit_test(test_join_r3),
        cmocka_unit_test(test_join_trimmed), cmocka_unit_test(test_drain),
        cmocka_unit_test(test_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
