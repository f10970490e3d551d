/* test_snapshot.c: replicas that bootstrap from a snapshot (issue 14), with
 * real processes: P=2, R=3, 3 workers, lease 1000 ms, log retention on at
 * its smallest (SHARDEX_LOG_RETENTION_ENTRIES=1: the floor is what every
 * replica fed applied, less the margin).
 *
 * Each test kills worker 2, overwrites documents until every partition's
 * leader has trimmed its log past what worker 2 holds (so it can never
 * catch up from the log), and removes worker 2's store of partition 0 (a
 * lost store: it comes back empty, as a new replica would). Then:
 *
 *  - behind: worker 2 restarts and both its replicas come back through a
 *    snapshot (its log says "installed a snapshot" for each);
 *  - follower killed: it restarts with the crash point
 *    snapshot-follower-chunk (dies after writing its first chunk: a copy
 *    cut short), then with snapshot-swap-renamed-old (dies between the two
 *    renames of the swap), then normally: the copy is deleted, the swap
 *    finished at start, and it converges;
 *  - leader killed: every worker holds each Snapshot call for 1.5 s
 *    (SHARDEX_DELAY_POINT=snapshot-serve:1500); once worker 2 is fetching,
 *    the leader of partition 1 (worker 0 or 1) is killed -9: worker 2
 *    gives that transfer up and fetches from the new leader; the killed
 *    worker restarts.
 *  - reader across a swap: as "leader killed" (Snapshot calls held 1.5 s),
 *    worker 2 restarts holding each WorkerAdmin.ScanDocs for 6 s
 *    (SHARDEX_DELAY_POINT=replica-scan-docs:6000, after it took its store
 *    and a LevelDB snapshot). A scan of partition 1 begins once worker 2 is
 *    fetching: the swap renames the store it holds to p0001.old while it is
 *    held, the scan answers the old store's documents (round 1, below the
 *    snapshot's offset), and p0001.old is deleted, and the new store opened,
 *    only once the scan let go (replica.h: sx_replica_store).
 *
 * After each: every acknowledged write reads back with its last value, no
 * .snap copy is left, and the replicas agree (the checker compares the logs
 * where both hold entries and the documents byte for byte).
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"

#include "shardex/internal/v1/worker.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#define P 2
#define NDOCS 200
#define BATCH 50
#define WAIT_MS 30000
#define PAD_BYTES 200
#define LOST_P 0 /* worker 2's store of this partition is removed while it is down */

typedef struct state {
    sx_cluster *c;
    uint32_t round;
    uint32_t last[NDOCS]; /* the round of the last acknowledged write, 0: none */
} state;

static int setup_with(void **st, const char *delay)
{
    state *s = sx_calloc(1, sizeof(*s));
    setenv("SHARDEX_LOG_RETENTION_ENTRIES", "1", 1); /* inherited by every worker */
    if (delay)
        setenv("SHARDEX_DELAY_POINT", delay, 1);
    else
        unsetenv("SHARDEX_DELAY_POINT");
    sx_cluster_opts o = {.workers = 3, .partitions = P, .replication = 3, .lease_ms = 1000};
    s->c = sx_cluster_start_settled(&o, WAIT_MS);
    unsetenv("SHARDEX_DELAY_POINT");
    if (!s->c)
        return -1;
    *st = s;
    return 0;
}

static int setup(void **st)
{
    return setup_with(st, NULL);
}

static int setup_slow_serve(void **st)
{
    return setup_with(st, "snapshot-serve:1500");
}

static int teardown(void **st)
{
    state *s = *st;
    sx_cluster_stop(s->c);
    free(s->c);
    free(s);
    return 0;
}

/* One round of overwrites of every document, through the running workers in
 * turn, retried (same content) until acknowledged or the deadline. */
static void overwrite_round(state *s)
{
    static char pad[PAD_BYTES + 1];
    memset(pad, 'p', PAD_BYTES);
    uint32_t round = ++s->round;
    sx_doc_spec d[BATCH];
    for (uint32_t i = 0; i < NDOCS; i += BATCH) {
        for (uint32_t k = 0; k < BATCH; k++) {
            memset(&d[k], 0, sizeof(d[k]));
            snprintf(d[k].id, sizeof(d[k].id), "snap-%u", i + k);
            snprintf(d[k].text, sizeof(d[k].text), "round %u", round);
            d[k].n = round;
            d[k].pad = pad;
        }
        uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
        for (uint32_t via = i / BATCH;; via++) {
            uint32_t w = via % s->c->nworkers;
            if (s->c->worker_pid[w] <= 0)
                continue;
            sx_err err = {0};
            if (sx_docs_put(s->c, w, d, BATCH, 10000, NULL, &err) == SX_OK)
                break;
            if (sx_clock_now_ms() > deadline)
                SX_FX_FAIL(s->c, "round %u: put of snap-%u.. not acknowledged: %s", round, i,
                           err.msg);
            sx_clock_sleep_ms(20);
        }
        for (uint32_t k = 0; k < BATCH; k++)
            s->last[i + k] = round;
    }
}

/* The log end of every replica worker i holds, by partition (0: none). */
static void log_ends(state *s, uint32_t i, uint64_t leo[P], uint64_t start[P])
{
    memset(leo, 0, P * sizeof(*leo));
    if (start)
        memset(start, 0, P * sizeof(*start));
    Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(s->c, i);
    if (!ws)
        return;
    for (size_t k = 0; k < ws->n_replicas; k++) {
        const Shardex__Internal__V1__ReplicaState *r = ws->replicas[k];
        if (r->partition < P && strcmp(r->role, "none") != 0) {
            leo[r->partition] = r->log_end_offset;
            if (start)
                start[r->partition] = r->log_start_offset;
        }
    }
    sx_rpc_free(&ws->base);
}

/* Kills worker 2, then overwrites until each partition's leader starts its
 * log above what worker 2 held + 1: worker 2 cannot catch up from the log.
 * Its store of LOST_P is removed meanwhile (a lost store: it comes back as
 * an empty replica). */
static void leave_worker2_behind(state *s)
{
    overwrite_round(s);
    uint64_t had[P], unused[P];
    log_ends(s, 2, had, unused);
    sx_cluster_kill_worker(s->c, 2);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/w2/partitions/p%04u", s->c->dir, LOST_P);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    uint64_t deadline = sx_clock_now_ms() + 4 * WAIT_MS;
    for (;;) {
        overwrite_round(s);
        bool behind = true;
        for (uint32_t p = 0; p < P; p++) {
            sx_cluster_part_view v = sx_cluster_part_view_of(s->c, p);
            if (!v.ok || v.leader == SX_CLUSTER_NONE) {
                behind = false;
                continue;
            }
            uint64_t leo[P], start[P];
            log_ends(s, v.leader, leo, start);
            behind &= start[p] > had[p] + 1;
        }
        if (behind)
            break;
        if (sx_clock_now_ms() > deadline)
            SX_FX_FAIL(s->c, "the leaders did not trim past worker 2's logs (rounds %u)", s->round);
    }
    print_message("worker 2 left behind after %u rounds (it held %" PRIu64 ", %" PRIu64 ")\n",
                  s->round, had[0], had[1]);
}

/* How many times worker i's log (all its runs) says `what`. */
static int log_count(state *s, uint32_t i, const char *what)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/w%u.log", s->c->dir, i);
    sx_buf b = {0};
    bool found = false;
    sx_err err = {0};
    int n = 0;
    if (sx_file_read(path, 64u << 20, &b, &found, &err) == SX_OK && found) {
        sx_buf_push(&b, 0);
        for (const char *p = (const char *)b.data; (p = strstr(p, what)); p++)
            n++;
    }
    sx_buf_free(&b);
    return n;
}

typedef struct count_arg {
    state *s;
    uint32_t worker;
    const char *what;
    int want;
} count_arg;

static bool logged(void *arg)
{
    count_arg *a = arg;
    return log_count(a->s, a->worker, a->what) >= a->want;
}

/* Worker 2 holds both partitions again, in the ISR. */
static bool caught_up(void *arg)
{
    state *s = arg;
    for (uint32_t p = 0; p < P; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(s->c, p);
        if (!v.ok || !(v.isr_mask & (1u << 2)))
            return false;
    }
    return true;
}

/* Every acknowledged write reads back with the value of its last round. */
static void check_reads(state *s)
{
    for (uint32_t i = 0; i < NDOCS; i++) {
        if (!s->last[i])
            continue;
        char id[32], want[32];
        snprintf(id, sizeof(id), "snap-%u", i);
        snprintf(want, sizeof(want), "round %u", s->last[i]);
        uint32_t via = i % s->c->nworkers;
        while (s->c->worker_pid[via] <= 0)
            via = (via + 1) % s->c->nworkers;
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(s->c, via, id, NULL, &g, &err) != SX_OK || !g->found ||
            strcmp(sx_doc_text(g->doc), want) != 0) {
            char msg[128];
            snprintf(msg, sizeof(msg), "%s", g && g->found ? sx_doc_text(g->doc) : "(missing)");
            sx_rpc_free(g ? &g->base : NULL);
            SX_FX_FAIL(s->c, "%s reads back as '%s', want '%s' (%s)", id, msg, want,
                       err.code ? err.msg : "ok");
        }
        sx_rpc_free(&g->base);
    }
}

/* Converged: worker 2 in every ISR, a round written through, reads, no
 * copy left behind, replicas agree. */
static void check_converged(state *s)
{
    SX_FX_WAIT(s->c, caught_up, s, WAIT_MS, "worker 2 did not rejoin every ISR");
    overwrite_round(s);
    check_reads(s);
    for (uint32_t p = 0; p < P; p++) {
        char snap[600];
        struct stat sb;
        snprintf(snap, sizeof(snap), "%s/w2/partitions/p%04u.snap", s->c->dir, p);
        if (stat(snap, &sb) == 0)
            SX_FX_FAIL(s->c, "%s is left behind", snap);
    }
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
}

/* Waits for worker i to die at a crash point (exit 86). */
static void wait_crash(state *s, uint32_t i, const char *point)
{
    int status = 0;
    pid_t dead = 0;
    uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
    while ((dead = waitpid(s->c->worker_pid[i], &status, WNOHANG)) == 0 &&
           sx_clock_now_ms() < deadline)
        sx_clock_sleep_ms(20);
    if (dead != s->c->worker_pid[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 86)
        SX_FX_FAIL(s->c, "worker %u did not die at %s", i, point);
    s->c->worker_pid[i] = 0;
}

static void test_behind(void **st)
{
    state *s = *st;
    leave_worker2_behind(s);
    assert_true(sx_cluster_start_worker(s->c, 2));
    count_arg a = {s, 2, "installed a snapshot", P};
    SX_FX_WAIT(s->c, logged, &a, WAIT_MS, "worker 2 did not install a snapshot per partition");
    check_converged(s);
}

static void test_follower_killed(void **st)
{
    state *s = *st;
    leave_worker2_behind(s);
    const char *chunk[] = {"SHARDEX_CRASH_POINT=snapshot-follower-chunk", NULL};
    assert_true(sx_cluster_start_worker_env(s->c, 2, chunk));
    wait_crash(s, 2, "snapshot-follower-chunk");
    const char *swap[] = {"SHARDEX_CRASH_POINT=snapshot-swap-renamed-old", NULL};
    assert_true(sx_cluster_start_worker_env(s->c, 2, swap));
    wait_crash(s, 2, "snapshot-swap-renamed-old");
    assert_true(sx_cluster_start_worker(s->c, 2));
    /* The start finished the swap the crash cut (sx_psnap_recover). */
    count_arg a = {s, 2, "finishing the swap of the snapshot", 1};
    SX_FX_WAIT(s->c, logged, &a, WAIT_MS, "worker 2 did not finish the cut swap at start");
    check_converged(s);
    assert_true(log_count(s, 2, "deleting the snapshot copy cut short") >= 1);
}

typedef struct held_scan {
    state *s;
    pthread_t thread;
    sx_status st;
    Shardex__Internal__V1__ScanDocsResponse *resp;
} held_scan;

static void *held_scan_main(void *arg)
{
    held_scan *h = arg;
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = 1;
    sx_rpc_call_opts o = {.timeout_ms = 20000};
    ProtobufCMessage *resp = NULL;
    h->st = sx_rpc_invoke(h->s->c->rpc, h->s->c->worker_addr[2],
                          &shardex__internal__v1__worker_admin__descriptor, "ScanDocs", &req.base,
                          &resp, &o, NULL);
    h->resp = (void *)resp;
    return NULL;
}

static bool path_there(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool old_there(void *arg)
{
    return path_there(arg);
}

static bool old_gone(void *arg)
{
    return !path_there(arg);
}

static void test_reader_across_swap(void **st)
{
    state *s = *st;
    leave_worker2_behind(s);
    const char *env[] = {"SHARDEX_DELAY_POINT=replica-scan-docs:6000", NULL};
    assert_true(sx_cluster_start_worker_env(s->c, 2, env));
    count_arg a = {s, 2, "partition=1 fetching a snapshot", 1};
    SX_FX_WAIT(s->c, logged, &a, WAIT_MS, "worker 2 did not start fetching partition 1");
    held_scan h = {.s = s};
    pthread_create(&h.thread, NULL, held_scan_main, &h);
    count_arg held = {s, 2, "delaying at delay point name=replica-scan-docs", 1};
    SX_FX_WAIT(s->c, logged, &held, WAIT_MS, "the scan did not reach its delay point");
    char old[600];
    snprintf(old, sizeof(old), "%s/w2/partitions/p0001.old", s->c->dir);
    /* The swap goes ahead while the scan holds the old store... */
    SX_FX_WAIT(s->c, old_there, old, WAIT_MS, "the swap did not happen while the scan held");
    assert_int_equal(log_count(s, 2, "partition=1 installed a snapshot"), 0);
    pthread_join(h.thread, NULL);
    /* ...which answers from it: worker 2 held round 1, below the snapshot. */
    assert_int_equal(h.st, SX_OK);
    assert_true(h.resp->n_docs > 0);
    for (size_t i = 0; i < h.resp->n_docs; i++)
        assert_string_equal(sx_doc_text(h.resp->docs[i]->doc), "round 1");
    uint64_t held_at = h.resp->applied_offset;
    sx_rpc_free(&h.resp->base);
    /* Let go: the old store is closed and deleted, the new one opened. */
    SX_FX_WAIT(s->c, old_gone, old, WAIT_MS, "p0001.old outlived its last reader");
    count_arg c = {s, 2, "partition=1 installed a snapshot", 1};
    SX_FX_WAIT(s->c, logged, &c, WAIT_MS, "worker 2 did not install partition 1's snapshot");
    uint64_t leo[P];
    log_ends(s, 2, leo, NULL);
    print_message("the held scan read applied=%" PRIu64 "; installed at leo=%" PRIu64 "\n", held_at,
                  leo[1]);
    assert_true(leo[1] > held_at);
    /* The checks below scan too: without the delay. */
    sx_cluster_kill_worker(s->c, 2);
    assert_true(sx_cluster_start_worker(s->c, 2));
    check_converged(s);
}

static void test_leader_killed(void **st)
{
    state *s = *st;
    leave_worker2_behind(s);
    assert_true(sx_cluster_start_worker(s->c, 2));
    /* Partition 1's transfer, from the leader killed next (partition 0's
     * may come first, from another worker). */
    count_arg a = {s, 2, "partition=1 fetching a snapshot", 1};
    SX_FX_WAIT(s->c, logged, &a, WAIT_MS, "worker 2 did not start fetching partition 1");
    sx_cluster_part_view v = sx_cluster_part_view_of(s->c, 1);
    assert_true(v.ok && v.leader != SX_CLUSTER_NONE && v.leader != 2);
    uint32_t killed = v.leader;
    sx_cluster_kill_worker(s->c, killed); /* mid-transfer: each call takes 1.5 s */
    count_arg b = {s, 2, "snapshot not fetched", 1};
    SX_FX_WAIT(s->c, logged, &b, WAIT_MS, "worker 2 did not give the transfer up");
    assert_true(sx_cluster_start_worker(s->c, killed));
    count_arg c = {s, 2, "installed a snapshot", P};
    SX_FX_WAIT(s->c, logged, &c, 2 * WAIT_MS, "worker 2 did not install a snapshot per partition");
    check_converged(s);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed, setup_slow_serve, teardown),
        cmocka_unit_test_setup_teardown(test_reader_across_swap, setup_slow_serve, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
