/* test_retention.c: log retention against real processes (issue 14, "the log
 * is never trimmed"): P=4, R=3, 3 workers, lease 1000 ms, every worker with
 * --log-retention-entries RETAIN (through SHARDEX_LOG_RETENTION_ENTRIES).
 *
 *  - overwrite: N documents overwritten ROUNDS times through every worker;
 *    then every replica's log holds at most max(RETAIN, the margin) plus one
 *    trim step (WorkerStatus: log_start_offset .. log_end_offset), every
 *    replica trimmed something, every acknowledged write reads back with its
 *    last value, the replicas agree (the checker: logs where both hold
 *    entries, documents byte for byte), and the partition stores stay
 *    within a small multiple of the live data;
 *  - kill during trimming, in both roles: a follower restarted with the
 *    crash point follower/plog-trim-batch dies in its first trim batch under
 *    more overwrites; restarted again it opens its store, catches up from the
 *    log (it is still above the leader's floor), and the checks above hold
 *    again. Then a worker restarted with leader/plog-trim-batch dies in a
 *    trim batch of a partition it leads (once the balance gives it one); its
 *    partitions fail over, it restarts, and the checks hold again. verify
 *    is clean after each.
 *
 *  - verify on trimmed logs: with an index on n (local and global) and a few
 *    documents written once before the overwrites (so that they are older
 *    than every log's start), `shardex verify` is clean, names every log as
 *    trimmed, and finds no difference while overwrites go on; then one of
 *    those old documents deleted from a follower's store
 *    (kill -9, edit, restart) is found: DIVERGED against the leader's copy.
 *  - verify on logs trimmed past an online split: a range index split once
 *    (then the logs trimmed past its markers and its index_start), verify
 *    is clean and checks the split's shadows, none left out;
 *  - verify on logs trimmed past a salt marker: a value of a global index
 *    written, salted, written again, then the logs trimmed past every
 *    marker: verify checks every term partition (the replicas' salt rows
 *    give the markers' offsets), clean; then one follower's salt row
 *    rewritten (kill -9, edit, restart) to an offset below the log start is
 *    found: DIVERGED against the leader's replica;
 *  - by size (--log-retention SIZE_KIB KiB, no entry count): after the
 *    overwrites every replica's log (read through WorkerAdmin.ReadLog) has
 *    trimmed, still holds at least SIZE of its newest entries' bytes, and
 *    holds no more entries than SIZE at their mean size plus a trim step;
 *  - by time (--log-retention DURATION_S s): while writing, the leaders'
 *    log ends are sampled; right after, every log still holds every entry
 *    appended within the duration (its start is at or below the log end of
 *    the first sample taken within it), although the margin alone would
 *    have trimmed; once the writes are older than the duration, the logs
 *    are trimmed to the margin.
 *
 * Not here: snapshots for a replica below the floor (test_snapshot.c).
 *
 * N and ROUNDS: SHARDEX_RETENTION_DOCS and SHARDEX_RETENTION_ROUNDS (the
 * issue's 10,000 x 50 is the `slow` variant, integration.test_retention_full).
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"
#include "keys.h"
#include "query.h"
#include "rpc.h"
#include "store.h"

#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include <cmocka.h>

#define P 4
#define RETAIN 500    /* --log-retention-entries */
#define MARGIN 1000   /* SX_REPCORE_TRIM_MARGIN */
#define TRIM_STEP 256 /* SX_REPCORE_TRIM_STEP */
#define BATCH 50      /* documents per Put */
#define WAIT_MS 30000
#define PAD_BYTES 200

typedef struct state {
    sx_cluster *c;
    uint32_t ndocs, rounds;
    uint32_t *last; /* [ndocs]: the round of the last acknowledged write, 0: none */
} state;

static uint32_t env_u32(const char *name, uint32_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? (uint32_t)strtoul(v, NULL, 10) : dflt;
}

#define SIZE_KIB 384 /* the size test's --log-retention */
#define DURATION_S 8 /* the time test's --log-retention */

/* A cluster whose workers run with --log-retention `retention` (NULL: the
 * default) and --log-retention-entries `entries` (NULL: none). */
static int setup_with(void **st, const char *retention, const char *entries)
{
    state *s = sx_calloc(1, sizeof(*s));
    s->ndocs = env_u32("SHARDEX_RETENTION_DOCS", 500);
    s->rounds = env_u32("SHARDEX_RETENTION_ROUNDS", 20);
    s->last = sx_calloc(s->ndocs, sizeof(*s->last));
    /* inherited by every worker */
    if (entries)
        setenv("SHARDEX_LOG_RETENTION_ENTRIES", entries, 1);
    else
        unsetenv("SHARDEX_LOG_RETENTION_ENTRIES");
    if (retention)
        setenv("SHARDEX_LOG_RETENTION", retention, 1);
    else
        unsetenv("SHARDEX_LOG_RETENTION");
    sx_cluster_opts o = {.workers = 3, .partitions = P, .replication = 3, .lease_ms = 1000};
    s->c = sx_cluster_start_settled(&o, WAIT_MS);
    unsetenv("SHARDEX_LOG_RETENTION");
    if (!s->c)
        return -1;
    *st = s;
    return 0;
}

static int setup(void **st)
{
    char keep[32];
    snprintf(keep, sizeof(keep), "%d", RETAIN);
    return setup_with(st, NULL, keep);
}

static int setup_size(void **st)
{
    char size[32];
    snprintf(size, sizeof(size), "%dKiB", SIZE_KIB);
    return setup_with(st, size, NULL);
}

static int setup_duration(void **st)
{
    char d[32];
    snprintf(d, sizeof(d), "%ds", DURATION_S);
    return setup_with(st, d, NULL);
}

static int teardown(void **st)
{
    state *s = *st;
    sx_cluster_stop(s->c);
    free(s->c);
    free(s->last);
    free(s);
    return 0;
}

/* One round of overwrites: every document once, through the running workers
 * in turn, retried (same content) until acknowledged or the deadline. */
static void overwrite_round(state *s, uint32_t round)
{
    static char pad[PAD_BYTES + 1];
    memset(pad, 'p', PAD_BYTES);
    sx_doc_spec d[BATCH];
    for (uint32_t i = 0; i < s->ndocs; i += BATCH) {
        uint32_t n = s->ndocs - i < BATCH ? s->ndocs - i : BATCH;
        for (uint32_t k = 0; k < n; k++) {
            memset(&d[k], 0, sizeof(d[k]));
            snprintf(d[k].id, sizeof(d[k].id), "ret-%u", i + k);
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
            if (sx_docs_put(s->c, w, d, n, 10000, NULL, &err) == SX_OK)
                break;
            if (sx_clock_now_ms() > deadline)
                SX_FX_FAIL(s->c, "round %u: put of ret-%u.. not acknowledged: %s", round, i,
                           err.msg);
        }
        for (uint32_t k = 0; k < n; k++)
            s->last[i + k] = round;
    }
}

typedef struct bound_arg {
    state *s;
    uint64_t max_held; /* out: the longest log seen */
    bool trimmed_all;  /* out: every replica's log starts above 1 */
} bound_arg;

/* Every replica of every partition on every running worker holds at most
 * the retention's bound, and has trimmed. */
static bool logs_bounded(void *arg)
{
    bound_arg *a = arg;
    sx_cluster *c = a->s->c;
    uint64_t bound = (RETAIN > MARGIN ? RETAIN : MARGIN) + TRIM_STEP + 1;
    bool ok = true;
    a->max_held = 0;
    a->trimmed_all = true;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        if (c->worker_pid[i] <= 0)
            continue;
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(c, i);
        if (!ws)
            return false;
        uint32_t seen = 0;
        for (size_t k = 0; k < ws->n_replicas; k++) {
            const Shardex__Internal__V1__ReplicaState *r = ws->replicas[k];
            if (strcmp(r->role, "none") == 0)
                continue;
            seen++;
            uint64_t held = r->log_end_offset + 1 - r->log_start_offset;
            if (held > a->max_held)
                a->max_held = held;
            ok &= held <= bound;
            a->trimmed_all &= r->log_start_offset > 1;
        }
        ok &= seen == P;
        sx_rpc_free(&ws->base);
    }
    return ok && a->trimmed_all;
}

static void check_bounded(state *s)
{
    bound_arg a = {.s = s};
    SX_FX_WAIT(s->c, logs_bounded, &a, WAIT_MS,
               "the logs did not get within the retention (longest %" PRIu64 " entries)",
               a.max_held);
    print_message("longest log held: %" PRIu64 " entries (retention %d, margin %d)\n", a.max_held,
                  RETAIN, MARGIN);
}

/* Every acknowledged write reads back with the value of its last round. */
static void check_reads(state *s)
{
    for (uint32_t i = 0; i < s->ndocs; i++) {
        if (!s->last[i])
            continue;
        char id[32], want[32];
        snprintf(id, sizeof(id), "ret-%u", i);
        snprintf(want, sizeof(want), "round %u", s->last[i]);
        uint32_t via = i % s->c->nworkers;
        while (s->c->worker_pid[via] <= 0)
            via = (via + 1) % s->c->nworkers;
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(s->c, via, id, NULL, &g, &err) != SX_OK || !g->found ||
            strcmp(sx_doc_text(g->doc), want) != 0) {
            const char *got = g && g->found ? sx_doc_text(g->doc) : "(missing)";
            char msg[128];
            snprintf(msg, sizeof(msg), "%s", got);
            sx_rpc_free(g ? &g->base : NULL);
            SX_FX_FAIL(s->c, "%s reads back as '%s', want '%s' (%s)", id, msg, want,
                       err.code ? err.msg : "ok");
        }
        sx_rpc_free(&g->base);
    }
}

/* Bytes of every running worker's partition stores, against the live data
 * (one copy of every document per replica). */
static void check_disk(state *s, uint64_t writes)
{
    uint64_t live = (uint64_t)s->ndocs * (PAD_BYTES + 40), worst = 0;
    for (uint32_t i = 0; i < s->c->nworkers; i++) {
        uint64_t b = 0;
        for (uint32_t p = 0; p < P; p++) {
            char dir[600];
            snprintf(dir, sizeof(dir), "%s/w%u/partitions/p%04u", s->c->dir, i, p);
            b += sx_dir_bytes(dir);
        }
        if (b > worst)
            worst = b;
    }
    print_message("partition stores: largest worker %" PRIu64 " bytes; live data about %" PRIu64
                  " bytes; written %" PRIu64 " bytes (%.1fx live)\n",
                  worst, live, writes * (PAD_BYTES + 40), (double)worst / (double)live);
    /* Without retention the log alone is `rounds` copies of the data and
     * grows with every overwrite. With it, what a store keeps is: the live
     * documents, a bounded log, and what LevelDB has not compacted or
     * flushed yet: its write-ahead log and memtable, up to about twice the
     * write buffer (4 MiB by default) per store. So: a small multiple of
     * the live data plus that constant per store, whatever the rounds. */
    uint64_t bound = 4 * live + (uint64_t)P * (8u << 20);
    if (worst > bound)
        SX_FX_FAIL(s->c,
                   "the stores hold %" PRIu64 " bytes for %" PRIu64 " live (bound %" PRIu64 ")",
                   worst, live, bound);
}

static void test_overwrite(void **st)
{
    state *s = *st;
    print_message("docs=%u rounds=%u retention=%d\n", s->ndocs, s->rounds, RETAIN);
    uint64_t t0 = sx_clock_now_ms();
    for (uint32_t r = 1; r <= s->rounds; r++)
        overwrite_round(s, r);
    print_message("%u writes in %" PRIu64 " ms\n", s->ndocs * s->rounds, sx_clock_now_ms() - t0);
    check_bounded(s);
    check_reads(s);
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
    check_disk(s, (uint64_t)s->ndocs * s->rounds);
}

static void check_verify(state *s);

typedef struct lead_arg {
    sx_cluster *c;
    uint32_t i;
} lead_arg;

/* Test worker i leads at least one partition in the coordinator's map. */
static bool leads_one(void *arg)
{
    lead_arg *a = arg;
    for (uint32_t p = 0; p < P; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(a->c, p);
        if (v.ok && v.leader == a->i && v.leader_alive)
            return true;
    }
    return false;
}

static void test_kill_during_trim(void **st)
{
    state *s = *st;
    /* Enough history that every replica trims, and then a follower that dies
     * in its first trim batch. Fewer overwrites than the margin while it is
     * away: it stays above the floor and can catch up from the log. */
    uint32_t rounds = s->rounds < 12 ? s->rounds : 12;
    for (uint32_t r = 1; r <= rounds; r++)
        overwrite_round(s, r);
    check_bounded(s);
    sx_cluster_kill_worker(s->c, 2);
    const char *env[] = {"SHARDEX_CRASH_POINT=follower/plog-trim-batch", NULL};
    assert_true(sx_cluster_start_worker_env(s->c, 2, env));
    /* Writes until worker 2 has died trimming (it trims at its first
     * Append if the floor moved while it was away, else once it moves). */
    uint32_t r = rounds;
    int status = 0;
    pid_t dead = 0;
    uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
    while ((dead = waitpid(s->c->worker_pid[2], &status, WNOHANG)) == 0 &&
           sx_clock_now_ms() < deadline) {
        uint32_t per_part = s->ndocs / P;
        if ((r - rounds + 1) * per_part >= MARGIN - TRIM_STEP) {
            sx_clock_sleep_ms(100); /* it must stay within reach of the log: write no more */
            continue;
        }
        overwrite_round(s, ++r);
    }
    if (dead != s->c->worker_pid[2])
        SX_FX_FAIL(s->c, "worker 2 did not reach the trim crash point");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 86);
    print_message("worker 2 died in a trim batch after %u more rounds\n", r - rounds);
    s->c->worker_pid[2] = 0;
    assert_true(sx_cluster_start_worker(s->c, 2));
    overwrite_round(s, ++r);
    check_bounded(s);
    check_reads(s);
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
    check_verify(s);

    /* The other role: worker 1, restarted with the crash point scoped to
     * leaders, dies in a trim batch of a partition it leads once the
     * balance gives it one (its follower trims go by). Its successor and
     * its own restart must lose nothing. */
    sx_cluster_kill_worker(s->c, 1);
    const char *lenv[] = {"SHARDEX_CRASH_POINT=leader/plog-trim-batch", NULL};
    assert_true(sx_cluster_start_worker_env(s->c, 1, lenv));
    lead_arg la = {s->c, 1};
    SX_FX_WAIT(s->c, leads_one, &la, WAIT_MS, "worker 1 leads no partition after its restart");
    uint32_t first = r;
    deadline = sx_clock_now_ms() + WAIT_MS;
    while ((dead = waitpid(s->c->worker_pid[1], &status, WNOHANG)) == 0 &&
           sx_clock_now_ms() < deadline)
        overwrite_round(s, ++r);
    if (dead != s->c->worker_pid[1])
        SX_FX_FAIL(s->c, "worker 1 did not reach the trim crash point as a leader");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 86);
    print_message("worker 1 died in a trim batch as a leader after %u more rounds\n", r - first);
    s->c->worker_pid[1] = 0;
    overwrite_round(s, ++r); /* on the new leaders, while it is down */
    assert_true(sx_cluster_start_worker(s->c, 1));
    overwrite_round(s, ++r);
    check_bounded(s);
    check_reads(s);
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
    check_verify(s);
}

/* ------------------------------------------------- verify, trimmed logs -- */

#define OLD_DOCS 40
#define CLI_MS 60000

/* `shardex --server ADDR verify --json --max-diffs 0` (sx_h_run_free it). */
static sx_h_run run_verify(state *s, const char *addr)
{
    char bin[512], outf[512], errf[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    snprintf(outf, sizeof(outf), "%s/verify.out", s->c->dir);
    snprintf(errf, sizeof(errf), "%s/verify.err", s->c->dir);
    char *argv[] = {bin, "--server", (char *)addr, "verify", "--json", "--max-diffs", "0", NULL};
    return sx_h_run_wait(argv, NULL, NULL, outf, errf, CLI_MS);
}

typedef struct verify_arg {
    state *s;
    int code;   /* out: the last run's exit */
    json_t *js; /* out: its report (json_decref it) */
} verify_arg;

/* verify exits 0: the term partitions have caught up (until then a view may
 * rightly be NOT-SHIPPED or behind the leader's copy). */
static bool verify_clean(void *arg)
{
    verify_arg *a = arg;
    json_decref(a->js);
    a->js = NULL;
    sx_h_run r = run_verify(a->s, a->s->c->worker_addr[0]);
    a->code = r.code;
    json_error_t jerr;
    a->js = json_loads(r.out, 0, &jerr);
    if (r.code != 0 && getenv("SHARDEX_TEST_VERBOSE"))
        sx_h_run_print("verify", &r);
    sx_h_run_free(&r);
    return a->code == 0 && a->js;
}

/* verify is clean within WAIT_MS (the term partitions catch up meanwhile). */
static void check_verify(state *s)
{
    verify_arg a = {.s = s};
    SX_FX_WAIT(s->c, verify_clean, &a, WAIT_MS, "verify on the trimmed logs exited %d", a.code);
    json_decref(a.js);
}

static json_int_t jget(json_t *o, const char *path1, const char *key)
{
    json_t *v = json_object_get(path1 ? json_object_get(o, path1) : o, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* Deletes the document id from the stopped worker w's store of p. */
static void delete_doc(state *s, uint32_t w, uint32_t p, const char *id)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/w%u/partitions/p%04u", s->c->dir, w, p);
    sx_store_opts so = {.no_create = true};
    sx_store *st = NULL;
    sx_err err = {0};
    if (sx_store_open(path, &so, &st, &err) != SX_OK)
        SX_FX_FAIL(s->c, "open %s: %s", path, err.msg);
    sx_buf key = {0};
    sx_buf_push(&key, 'D');
    sx_key_append_str(&key, id, strlen(id));
    if (sx_store_delete(st, key.data, key.len, SX_SYNC_YES, &err) != SX_OK)
        SX_FX_FAIL(s->c, "delete %s from %s: %s", id, path, err.msg);
    sx_buf_free(&key);
    sx_store_close(st);
}

static atomic_bool writer_stop;

/* Overwrite rounds until writer_stop. */
static void *writer_main(void *arg)
{
    state *s = arg;
    for (uint32_t r = 1000; !atomic_load(&writer_stop); r++)
        overwrite_round(s, r);
    return NULL;
}

static void test_verify_trimmed(void **st)
{
    state *s = *st;
    sx_err err = {0};
    static const sx_qindex NIX = {
        .name = "n", .field = "n", .is_int = true, .local = true, .global = true};
    if (sx_q_create_index(s->c, s->c->worker_addr[0], &NIX, &err) != SX_OK)
        SX_FX_FAIL(s->c, "CreateIndex n: %s", err.msg);
    if (!sx_q_wait_ready(s->c, s->c->worker_addr[1], "n", WAIT_MS))
        SX_FX_FAIL(s->c, "index n not READY");
    /* Old documents, in partition 0: written once, before any trimmed start. */
    sx_doc_spec old[OLD_DOCS];
    sx_docs_for_partition(s->c, 0, "old", old, OLD_DOCS);
    if (sx_docs_put(s->c, 0, old, OLD_DOCS, 10000, NULL, &err) != SX_OK)
        SX_FX_FAIL(s->c, "put old: %s", err.msg);
    uint32_t rounds = s->rounds < 12 ? s->rounds : 12;
    for (uint32_t r = 1; r <= rounds; r++)
        overwrite_round(s, r);
    check_bounded(s);

    verify_arg a = {.s = s};
    SX_FX_WAIT(s->c, verify_clean, &a, WAIT_MS, "verify on the trimmed logs exited %d", a.code);
    assert_int_equal(json_array_size(json_object_get(a.js, "trimmed_logs")), P);
    print_message("verify clean on %d trimmed logs: %" PRId64 " carried documents, %" PRId64
                  " ids not determined, %" PRId64 " views left out\n",
                  P, (int64_t)jget(a.js, "summary", "carried"),
                  (int64_t)jget(a.js, "summary", "undetermined"),
                  (int64_t)jget(a.js, "summary", "unrecomputed_partitions"));
    /* The floor waits for the term partitions' watermarks: every view is
     * recomputed. The old documents are carried on every replica of p=0 (3). */
    assert_int_equal(jget(a.js, "summary", "unrecomputed_partitions"), 0);
    assert_true(jget(a.js, "summary", "carried") >= 3 * OLD_DOCS);

    /* While overwrites go on: never a difference (the views are read before
     * the logs, at positions the retained logs cover). */
    pthread_t th;
    writer_stop = false;
    pthread_create(&th, NULL, writer_main, s);
    for (int k = 0; k < 2; k++) {
        sx_h_run r = run_verify(s, s->c->worker_addr[k % 3]);
        print_message("verify under writes via w%d: exit %d in %" PRIu64 " ms\n", k % 3, r.code,
                      r.ms);
        if (r.code == 1) {
            sx_h_run_print("verify under writes", &r);
            writer_stop = true;
            pthread_join(th, NULL);
            SX_FX_FAIL(s->c, "verify found a difference in a cluster under writes");
        }
        sx_h_run_free(&r);
    }
    writer_stop = true;
    pthread_join(th, NULL);

    /* One old document gone from a follower of p=0 behind the cluster's back. */
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(s->c);
    assert_non_null(m);
    uint32_t w = UINT32_MAX;
    for (uint32_t i = 0; i < s->c->nworkers && w == UINT32_MAX; i++)
        if (sx_cluster_index_of(m, s->c, i) != m->partitions[0]->leader)
            w = i;
    sx_rpc_free(&m->base);
    sx_cluster_kill_worker(s->c, w);
    delete_doc(s, w, 0, old[7].id);
    assert_true(sx_cluster_start_worker(s->c, w));
    /* Until verify sees it: the worker must be back and have served. */
    uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
    json_t *d = NULL;
    while (!d) {
        verify_clean(&a);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(a.js, "differences"), i, e)
        {
            const char *kind = json_string_value(json_object_get(e, "kind"));
            const char *id = json_string_value(json_object_get(e, "id"));
            if (kind && id && strcmp(kind, "diverged") == 0 && strcmp(id, old[7].id) == 0)
                d = e;
        }
        if (!d && sx_clock_now_ms() > deadline)
            SX_FX_FAIL(s->c, "verify did not find %s missing from w%u (exit %d)", old[7].id, w,
                       a.code);
        if (!d)
            sx_clock_sleep_ms(200);
    }
    if (getenv("SHARDEX_TEST_VERBOSE")) {
        char *t = json_dumps(json_object_get(a.js, "differences"), JSON_INDENT(1));
        fprintf(stderr, "DIFFS-BEGIN%sDIFFS-END\n", t);
        free(t);
    }
    assert_int_equal(a.code, 1);
    /* verify compares every replica with p's leader's copy. Restarted, w may
     * lead p again (the balance gives leaderships back): then the others'
     * copies are the ones EXTRA against it. Either way the difference is
     * the document gone from w alone. */
    const char *how = json_string_value(json_object_get(d, "how"));
    const char *who = json_string_value(json_object_get(d, "worker"));
    assert_non_null(how);
    assert_non_null(who);
    bool on_w = strcmp(who, s->c->worker_id[w]) == 0;
    if (!(strcmp(how, "MISSING") == 0 && on_w) && !(strcmp(how, "EXTRA") == 0 && !on_w))
        SX_FX_FAIL(s->c, "verify says %s on %s, want MISSING on w%u or EXTRA on another", how, who,
                   w);
    assert_int_equal(jget(d, NULL, "partition"), 0);
    print_message("verify found %s missing from w%u's replica of p=0 (%" PRId64 " differences)\n",
                  old[7].id, w, (int64_t)jget(a.js, "summary", "differences"));
    json_decref(a.js);
}

/* ------------------------------------------------ retention by size, time -- */

/* One replica's log as ReadLog gives it: its start, entries and op bytes. */
typedef struct held_log {
    uint64_t start, end, n, bytes;
} held_log;

static bool read_held(sx_cluster *c, uint32_t i, uint32_t p, held_log *h)
{
    memset(h, 0, sizeof(*h));
    for (uint64_t from = 0;;) {
        Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
        req.partition = p;
        req.from_offset = from;
        req.max_entries = 5000;
        ProtobufCMessage *m = NULL;
        sx_rpc_call_opts o = {.timeout_ms = 10000, .idempotent = true};
        if (sx_rpc_invoke(c->rpc, c->worker_addr[i],
                          &shardex__internal__v1__worker_admin__descriptor, "ReadLog", &req.base,
                          &m, &o, NULL) != SX_OK)
            return false; /* a trim moved the start between two calls: read again */
        Shardex__Internal__V1__ReadLogResponse *r = (void *)m;
        if (from == 0)
            h->start = r->log_start_offset;
        h->end = r->log_end_offset;
        for (size_t k = 0; k < r->n_entries; k++)
            h->bytes += r->entries[k]->op.len;
        h->n += r->n_entries;
        size_t got = r->n_entries;
        sx_rpc_free(m);
        if (got == 0 || h->start + h->n > h->end)
            return true;
        from = h->start + h->n;
    }
}

typedef struct size_arg {
    state *s;
    held_log worst; /* out: the last replica looked at, for the message */
} size_arg;

/* Every replica trimmed, keeps at least SIZE_KIB KiB of its newest entries
 * and no more entries than that at their mean size plus a trim step. */
static bool size_kept(void *arg)
{
    size_arg *a = arg;
    sx_cluster *c = a->s->c;
    uint64_t size = (uint64_t)SIZE_KIB << 10;
    for (uint32_t i = 0; i < c->nworkers; i++)
        for (uint32_t p = 0; p < P; p++) {
            held_log *h = &a->worst;
            if (!read_held(c, i, p, h) || h->n == 0)
                return false;
            uint64_t mean = h->bytes / h->n;
            /* the leader counts SIZE in entries at the mean size of what it
             * appended: one entry of rounding */
            if (h->start <= 1 || h->bytes + mean < size ||
                h->n > size / mean + size / mean / 20 + TRIM_STEP + 1)
                return false;
        }
    return true;
}

static void test_size(void **st)
{
    state *s = *st;
    for (uint32_t r = 1; r <= s->rounds; r++)
        overwrite_round(s, r);
    size_arg a = {.s = s};
    SX_FX_WAIT(s->c, size_kept, &a, WAIT_MS,
               "--log-retention %dKiB: a log holds %" PRIu64 " entries, %" PRIu64
               " bytes from %" PRIu64 " to %" PRIu64,
               SIZE_KIB, a.worst.n, a.worst.bytes, a.worst.start, a.worst.end);
    print_message("--log-retention %dKiB: a log holds %" PRIu64 " entries of %" PRIu64
                  " bytes (%" PRIu64 " .. %" PRIu64 ")\n",
                  SIZE_KIB, a.worst.n, a.worst.bytes, a.worst.start, a.worst.end);
    check_reads(s);
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
}

/* The leaders' log ends, by partition, as of a call begun at at_ms. */
typedef struct leo_sample {
    uint64_t at_ms;
    uint64_t leo[P];
} leo_sample;

static void sample_leos(state *s, leo_sample *out)
{
    memset(out, 0, sizeof(*out));
    out->at_ms = sx_clock_now_ms();
    for (uint32_t i = 0; i < s->c->nworkers; i++) {
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(s->c, i);
        if (!ws)
            SX_FX_FAIL(s->c, "worker %u: no status", i);
        for (size_t k = 0; k < ws->n_replicas; k++)
            if (strcmp(ws->replicas[k]->role, "leader") == 0 && ws->replicas[k]->partition < P)
                out->leo[ws->replicas[k]->partition] = ws->replicas[k]->log_end_offset;
        sx_rpc_free(&ws->base);
    }
}

/* Idle longer than the duration: every log is down to the margin. */
static bool trimmed_to_margin(void *arg)
{
    state *s = arg;
    for (uint32_t i = 0; i < s->c->nworkers; i++)
        for (uint32_t p = 0; p < P; p++) {
            held_log h;
            if (!read_held(s->c, i, p, &h) || h.start <= 1 || h.n > MARGIN + TRIM_STEP + 1)
                return false;
        }
    return true;
}

static void test_duration(void **st)
{
    state *s = *st;
    leo_sample *samples = sx_calloc(s->rounds + 2, sizeof(*samples));
    size_t ns = 0;
    sample_leos(s, &samples[ns++]);
    for (uint32_t r = 1; r <= s->rounds; r++) {
        overwrite_round(s, r);
        sample_leos(s, &samples[ns++]);
    }
    /* Every entry appended after the first sample begun within the
     * duration is held (read after `now`: it only holds more). */
    uint64_t now = sx_clock_now_ms();
    const leo_sample *in = NULL;
    for (size_t k = 0; k < ns && !in; k++)
        if (samples[k].at_ms + (uint64_t)DURATION_S * 1000 >= now + 500)
            in = &samples[k];
    if (!in)
        SX_FX_FAIL(s->c, "no sample within %d s: the writes stalled", DURATION_S);
    bool margin_would_trim = false;
    for (uint32_t i = 0; i < s->c->nworkers; i++)
        for (uint32_t p = 0; p < P; p++) {
            held_log h;
            if (!read_held(s->c, i, p, &h))
                SX_FX_FAIL(s->c, "worker %u partition %u: ReadLog failed", i, p);
            if (h.start > in->leo[p] + 1)
                SX_FX_FAIL(s->c,
                           "worker %u partition %u: the log starts at %" PRIu64 ", above %" PRIu64
                           " appended %" PRIu64 " ms ago (retention %d s)",
                           i, p, h.start, in->leo[p] + 1, now - in->at_ms, DURATION_S);
            margin_would_trim |= h.end > MARGIN + TRIM_STEP + 1 + in->leo[p];
        }
    print_message("--log-retention %ds: logs held from at most the log end of %" PRIu64
                  " ms before (margin alone would trim: %s)\n",
                  DURATION_S, now - in->at_ms, margin_would_trim ? "yes" : "no");
    assert_true(margin_would_trim); /* else this proved nothing: write more */
    free(samples);
    /* Older than the duration now: trimmed to the margin. */
    SX_FX_WAIT(s->c, trimmed_to_margin, s, WAIT_MS + DURATION_S * 1000,
               "the logs were not trimmed once their entries were older than %d s", DURATION_S);
    check_reads(s);
    SX_FX_CHECK_REPLICAS(s->c, WAIT_MS);
}

/* ------------------------------------------ verify, a split on trimmed logs -- */

/* t0 < 100 <= t1 < 300 <= t2; t1 splits at 200 into 3 = [100, 200) and 4 =
 * [200, 300). The overwrites (n = their round) stay in t0. */
static const sx_qindex RIX = {.name = "nr",
                              .field = "n",
                              .is_int = true,
                              .global = true,
                              .nsplits = 2,
                              .splits = {{.is_int = true, .i = 100}, {.is_int = true, .i = 300}}};

typedef struct split_arg {
    state *s;
    uint32_t done, in_progress; /* out: as ListIndexes said last */
} split_arg;

static bool split_done(void *arg)
{
    split_arg *a = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(a->s->c, a->s->c->worker_addr[1], &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, RIX.name);
    if (ix) {
        a->done = ix->splits_done;
        a->in_progress = ix->splits_in_progress;
    }
    sx_rpc_free(&l->base);
    return ix && a->done == 1 && a->in_progress == 0;
}

/* The highest log end of p over every running replica. */
static uint64_t log_end_of(state *s, uint32_t p)
{
    uint64_t end = 0;
    for (uint32_t i = 0; i < s->c->nworkers; i++) {
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(s->c, i);
        for (size_t k = 0; ws && k < ws->n_replicas; k++)
            if (ws->replicas[k]->partition == p && ws->replicas[k]->log_end_offset > end)
                end = ws->replicas[k]->log_end_offset;
        sx_rpc_free(ws ? &ws->base : NULL);
    }
    return end;
}

/* The check of term partition t of index nr in a verify report, or NULL. */
static json_t *term_check(json_t *js, uint32_t t)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(js, "checks"), i, c)
    {
        const char *ix = json_string_value(json_object_get(c, "index"));
        if (ix && strcmp(ix, RIX.name) == 0 && jget(c, NULL, "term_partition") == (json_int_t)t)
            return c;
    }
    return NULL;
}

/* A range index split online, then the logs trimmed past its split markers
 * and its index_start: verify checks every serving term partition of it,
 * the split's shadows included (recomputed with the map's split records),
 * and finds them right. */
static void test_verify_trimmed_split(void **st)
{
    state *s = *st;
    sx_err err = {0};
    if (sx_q_create_index(s->c, s->c->worker_addr[0], &RIX, &err) != SX_OK)
        SX_FX_FAIL(s->c, "CreateIndex nr: %s", err.msg);
    if (!sx_q_wait_ready(s->c, s->c->worker_addr[1], RIX.name, WAIT_MS))
        SX_FX_FAIL(s->c, "index nr not READY");
    /* n = 100, 105, .. 295 in every partition: 20 of each in each shadow. */
    for (uint32_t p = 0; p < P; p++) {
        sx_doc_spec old[OLD_DOCS];
        char tag[16];
        snprintf(tag, sizeof(tag), "old%u", p);
        sx_docs_for_partition(s->c, p, tag, old, OLD_DOCS);
        for (int k = 0; k < OLD_DOCS; k++)
            old[k].n = 100 + 5 * k;
        if (sx_docs_put(s->c, p % 3, old, OLD_DOCS, 10000, NULL, &err) != SX_OK)
            SX_FX_FAIL(s->c, "put old: %s", err.msg);
    }
    Shardex__V1__SplitIndexRequest req = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    Shardex__V1__Value at = SHARDEX__V1__VALUE__INIT;
    at.kind_case = SHARDEX__V1__VALUE__KIND_I;
    at.i = 200;
    req.name = (char *)RIX.name;
    req.term_partition = 1;
    req.at = &at;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts co = {.timeout_ms = 10000};
    if (sx_rpc_invoke(s->c->rpc, s->c->worker_addr[0], &shardex__v1__shardex__descriptor,
                      "SplitIndex", &req.base, &resp, &co, &err) != SX_OK)
        SX_FX_FAIL(s->c, "SplitIndex nr t=1 at 200: %s", err.msg);
    sx_rpc_free(resp);
    split_arg sa = {.s = s};
    SX_FX_WAIT(s->c, split_done, &sa, WAIT_MS, "the split: %u done, %u in progress", sa.done,
               sa.in_progress);
    uint64_t marked[P]; /* every split marker of p is at or below */
    for (uint32_t p = 0; p < P; p++)
        marked[p] = log_end_of(s, p);

    uint32_t rounds = s->rounds < 12 ? s->rounds : 12;
    for (uint32_t r = 1; r <= rounds; r++)
        overwrite_round(s, r);
    check_bounded(s);

    verify_arg a = {.s = s};
    SX_FX_WAIT(s->c, verify_clean, &a, WAIT_MS, "verify on the trimmed logs exited %d", a.code);
    json_t *trims = json_object_get(a.js, "trimmed_logs");
    assert_int_equal(json_array_size(trims), P);
    size_t i;
    json_t *tl;
    json_array_foreach(trims, i, tl)
    {
        json_int_t p = jget(tl, NULL, "partition");
        assert_true(p >= 0 && p < P);
        if (jget(tl, NULL, "log_start") <= (json_int_t)marked[p])
            SX_FX_FAIL(s->c,
                       "p=%d's log starts at %" PRId64 ", not past its split markers (%" PRIu64 ")",
                       (int)p, (int64_t)jget(tl, NULL, "log_start"), marked[p]);
    }
    /* Every serving term partition checked, none left out; t1 retired. */
    assert_int_equal(jget(a.js, "summary", "unrecomputed_partitions"), 0);
    assert_int_equal(jget(a.js, "summary", "split_undetermined"), 0);
    assert_null(term_check(a.js, 1));
    for (uint32_t t = 0; t < 5; t++) {
        if (t == 1)
            continue;
        json_t *c = term_check(a.js, t);
        if (!c)
            SX_FX_FAIL(s->c, "no check of nr's term partition %u", t);
        assert_string_equal(json_string_value(json_object_get(c, "status")), "ok");
        assert_null(json_object_get(c, "unrecomputed_partitions"));
        /* the old documents: 20 per log partition in each shadow */
        if (t >= 3)
            assert_int_equal(jget(c, NULL, "expected_entries"), 20 * P);
    }
    print_message("verify clean on %d logs trimmed past the split markers (from %" PRIu64
                  "): nr's shadows 3 and 4 checked, %" PRId64 " entries each\n",
                  P, marked[0], (int64_t)jget(term_check(a.js, 3), NULL, "expected_entries"));
    json_decref(a.js);
}

/* ----------------------------------- verify, a salted value on trimmed logs -- */

/* A global index of n; HOT salted over 2 ways. */
static const sx_qindex HIX = {.name = "nh", .field = "n", .is_int = true, .global = true};
#define HOT 7

/* The index named name in map m, or NULL. */
static const Shardex__Internal__V1__IndexEntry *
index_named(const Shardex__Internal__V1__ClusterMap *m, const char *name)
{
    for (size_t i = 0; i < m->n_indexes; i++)
        if (m->indexes[i] && m->indexes[i]->spec && m->indexes[i]->spec->name &&
            strcmp(m->indexes[i]->spec->name, name) == 0)
            return m->indexes[i];
    return NULL;
}

typedef struct salted_arg {
    state *s;
    uint64_t index_id;
    uint64_t marked[P]; /* out: the highest offset of the salt's marker in p's replicas */
    uint32_t missing;   /* out: replicas whose ScanDocs does not list the salt yet */
} salted_arg;

/* Every replica of every partition lists the salt row (ScanDocs, the rows
 * verify routes by): the marker is applied everywhere, at marked[p]. */
static bool salted_everywhere(void *arg)
{
    salted_arg *a = arg;
    a->missing = 0;
    for (uint32_t i = 0; i < a->s->c->nworkers; i++) {
        for (uint32_t p = 0; p < P; p++) {
            Shardex__Internal__V1__ScanDocsRequest req =
                SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
            req.partition = p;
            Shardex__Internal__V1__ScanDocsResponse *resp = NULL;
            sx_rpc_call_opts co = {.timeout_ms = 10000};
            sx_err err = {0};
            bool found = false;
            if (sx_rpc_invoke(a->s->c->rpc, a->s->c->worker_addr[i],
                              &shardex__internal__v1__worker_admin__descriptor, "ScanDocs",
                              &req.base, (ProtobufCMessage **)&resp, &co, &err) == SX_OK) {
                assert_true(resp->salts_listed);
                for (size_t k = 0; k < resp->n_salts; k++) {
                    if (resp->salts[k]->index_id != a->index_id)
                        continue;
                    found = true;
                    if (resp->salts[k]->from > a->marked[p])
                        a->marked[p] = resp->salts[k]->from;
                }
            }
            sx_rpc_free(resp ? &resp->base : NULL);
            a->missing += !found;
        }
    }
    return a->missing == 0;
}

/* The check of term partition t of index name in a verify report, or NULL. */
static json_t *term_check_of(json_t *js, const char *name, uint32_t t)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(js, "checks"), i, c)
    {
        const char *ix = json_string_value(json_object_get(c, "index"));
        if (ix && strcmp(ix, name) == 0 && jget(c, NULL, "term_partition") == (json_int_t)t)
            return c;
    }
    return NULL;
}

/* Rewrites salt seq 1 of index id in the stopped worker w's store of p
 * with from = `from` (the pindex row verify routes by: 'H' u64 id u32 seq). */
static void set_salt_from(state *s, uint32_t w, uint32_t p, uint64_t id, uint64_t from)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/w%u/partitions/p%04u", s->c->dir, w, p);
    sx_store_opts so = {.no_create = true};
    sx_store *st = NULL;
    sx_err err = {0};
    if (sx_store_open(path, &so, &st, &err) != SX_OK)
        SX_FX_FAIL(s->c, "open %s: %s", path, err.msg);
    sx_buf key = {0}, val = {0};
    sx_buf_push(&key, 'H');
    sx_key_append_u64(&key, id);
    sx_key_append_u32(&key, 1);
    bool found = false;
    if (sx_store_get(st, NULL, key.data, key.len, &val, &found, &err) != SX_OK || !found)
        SX_FX_FAIL(s->c, "salt row of index %" PRIu64 " in %s: %s", id, path,
                   found ? err.msg : "not found");
    Shardex__Internal__V1__IndexSalt *sa =
        shardex__internal__v1__index_salt__unpack(NULL, val.len, val.data);
    assert_non_null(sa);
    sa->from = from;
    sx_buf_reset(&val);
    sx_buf_reserve(&val, shardex__internal__v1__index_salt__get_packed_size(sa) + 1);
    val.len = shardex__internal__v1__index_salt__pack(sa, val.data);
    shardex__internal__v1__index_salt__free_unpacked(sa, NULL);
    if (sx_store_put(st, key.data, key.len, val.data, val.len, SX_SYNC_YES, &err) != SX_OK)
        SX_FX_FAIL(s->c, "rewrite the salt row in %s: %s", path, err.msg);
    sx_buf_free(&key);
    sx_buf_free(&val);
    sx_store_close(st);
}

/* A value salted, then the logs trimmed past every salt marker: verify
 * recomputes the salted index's term partitions with the replicas' salt
 * rows (the documents written before the salt stay in the value's own
 * partition, those after go to their slot's), none left out, clean; a salt
 * row rewritten on one replica is found. (A term partition cannot be edited
 * the same way: its owner, restarted, registers again and is rebuilt.) */
static void test_verify_trimmed_salt(void **st)
{
    state *s = *st;
    sx_err err = {0};
    if (sx_q_create_index(s->c, s->c->worker_addr[0], &HIX, &err) != SX_OK)
        SX_FX_FAIL(s->c, "CreateIndex nh: %s", err.msg);
    if (!sx_q_wait_ready(s->c, s->c->worker_addr[1], HIX.name, WAIT_MS))
        SX_FX_FAIL(s->c, "index nh not READY");
    /* Before the salt: HOT in every partition (they stay in its own partition). */
    for (uint32_t p = 0; p < P; p++) {
        sx_doc_spec old[OLD_DOCS];
        char tag[16];
        snprintf(tag, sizeof(tag), "old%u", p);
        sx_docs_for_partition(s->c, p, tag, old, OLD_DOCS);
        for (int k = 0; k < OLD_DOCS; k++)
            old[k].n = HOT;
        if (sx_docs_put(s->c, p % 3, old, OLD_DOCS, 10000, NULL, &err) != SX_OK)
            SX_FX_FAIL(s->c, "put old: %s", err.msg);
    }
    Shardex__V1__SaltIndexRequest req = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    Shardex__V1__Value hot = SHARDEX__V1__VALUE__INIT;
    hot.kind_case = SHARDEX__V1__VALUE__KIND_I;
    hot.i = HOT;
    req.name = (char *)HIX.name;
    req.value = &hot;
    req.ways = 2;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts co = {.timeout_ms = 10000};
    if (sx_rpc_invoke(s->c->rpc, s->c->worker_addr[0], &shardex__v1__shardex__descriptor,
                      "SaltIndex", &req.base, &resp, &co, &err) != SX_OK)
        SX_FX_FAIL(s->c, "SaltIndex nh %d: %s", HOT, err.msg);
    sx_rpc_free(resp);
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(s->c);
    assert_non_null(m);
    const Shardex__Internal__V1__IndexEntry *ix = index_named(m, HIX.name);
    assert_non_null(ix);
    assert_int_equal(ix->n_salts, 1);
    assert_int_equal(ix->salts[0]->n_terms, 2);
    uint64_t id = ix->id;
    uint32_t t0 = ix->salts[0]->terms[0], t1 = ix->salts[0]->terms[1];
    sx_rpc_free(&m->base);
    salted_arg sa = {.s = s, .index_id = id};
    SX_FX_WAIT(s->c, salted_everywhere, &sa, WAIT_MS, "%u replicas do not list the salt yet",
               sa.missing);
    /* After it: HOT again, spread over t0 and t1 by id. */
    for (uint32_t p = 0; p < P; p++) {
        sx_doc_spec nw[OLD_DOCS];
        char tag[16];
        snprintf(tag, sizeof(tag), "new%u", p);
        sx_docs_for_partition(s->c, p, tag, nw, OLD_DOCS);
        for (int k = 0; k < OLD_DOCS; k++)
            nw[k].n = HOT;
        if (sx_docs_put(s->c, p % 3, nw, OLD_DOCS, 10000, NULL, &err) != SX_OK)
            SX_FX_FAIL(s->c, "put new: %s", err.msg);
    }
    uint32_t rounds = s->rounds < 12 ? s->rounds : 12;
    for (uint32_t r = 1; r <= rounds; r++)
        overwrite_round(s, r);
    check_bounded(s);

    verify_arg a = {.s = s};
    SX_FX_WAIT(s->c, verify_clean, &a, WAIT_MS, "verify on the trimmed logs exited %d", a.code);
    json_t *trims = json_object_get(a.js, "trimmed_logs");
    assert_int_equal(json_array_size(trims), P);
    size_t i;
    json_t *tl;
    json_array_foreach(trims, i, tl)
    {
        json_int_t p = jget(tl, NULL, "partition");
        assert_true(p >= 0 && p < P);
        if (jget(tl, NULL, "log_start") <= (json_int_t)sa.marked[p])
            SX_FX_FAIL(s->c,
                       "p=%d's log starts at %" PRId64 ", not past its salt marker (%" PRIu64 ")",
                       (int)p, (int64_t)jget(tl, NULL, "log_start"), sa.marked[p]);
    }
    /* Every term partition of nh checked whole: none left out for the salt. */
    assert_int_equal(jget(a.js, "summary", "unrecomputed_partitions"), 0);
    assert_int_equal(jget(a.js, "summary", "salt_undetermined"), 0);
    uint32_t m_terms = 0;
    for (uint32_t t = 0; term_check_of(a.js, HIX.name, t); t++, m_terms++) {
        json_t *c = term_check_of(a.js, HIX.name, t);
        assert_string_equal(json_string_value(json_object_get(c, "status")), "ok");
        assert_null(json_object_get(c, "unrecomputed_partitions"));
    }
    assert_true(m_terms > t0 && m_terms > t1);
    /* The old documents all in t0, some new ones in t1. */
    json_int_t in_t0 = jget(term_check_of(a.js, HIX.name, t0), NULL, "expected_entries");
    json_int_t in_t1 = jget(term_check_of(a.js, HIX.name, t1), NULL, "expected_entries");
    assert_true(in_t0 >= OLD_DOCS * P);
    assert_true(in_t1 > 0);
    print_message("verify clean on %d logs trimmed past the salt markers (p=0 from %" PRIu64
                  "): nh's t%u %" PRId64 " entries, t%u %" PRId64 " checked\n",
                  P, sa.marked[0], t0, (int64_t)in_t0, t1, (int64_t)in_t1);

    /* One replica of p=0 told, behind the cluster's back, that the salt was
     * applied at offset 1: below the log start, so only the other replicas
     * contradict it (and, should it lead, the term partitions recomputed by
     * it do too). */
    m = sx_cluster_map(s->c);
    assert_non_null(m);
    uint32_t w = UINT32_MAX;
    for (uint32_t k = 0; k < s->c->nworkers && w == UINT32_MAX; k++)
        if (sx_cluster_index_of(m, s->c, k) != m->partitions[0]->leader)
            w = k;
    sx_rpc_free(&m->base);
    sx_cluster_kill_worker(s->c, w);
    set_salt_from(s, w, 0, id, 1);
    assert_true(sx_cluster_start_worker(s->c, w));
    uint64_t deadline = sx_clock_now_ms() + WAIT_MS;
    json_t *d = NULL;
    while (!d) {
        verify_clean(&a);
        json_t *e;
        json_array_foreach(json_object_get(a.js, "differences"), i, e)
        {
            const char *kind = json_string_value(json_object_get(e, "kind"));
            const char *detail = json_string_value(json_object_get(e, "detail"));
            if (kind && detail && strcmp(kind, "diverged") == 0 &&
                strstr(detail, "salt seq 1 of index") && jget(e, NULL, "partition") == 0)
                d = e;
        }
        if (!d && sx_clock_now_ms() > deadline)
            SX_FX_FAIL(s->c, "verify did not find w%u's salt row of p=0 wrong (exit %d)", w,
                       a.code);
        if (!d)
            sx_clock_sleep_ms(200);
    }
    assert_int_equal(a.code, 1);
    print_message("verify found w%u's salt row of p=0 wrong: %s (%" PRId64 " differences)\n", w,
                  json_string_value(json_object_get(d, "detail")),
                  (int64_t)jget(a.js, "summary", "differences"));
    json_decref(a.js);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_during_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_trimmed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size, setup_size, teardown),
        cmocka_unit_test_setup_teardown(test_duration, setup_duration, teardown),
        cmocka_unit_test_setup_teardown(test_verify_trimmed_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_trimmed_salt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
