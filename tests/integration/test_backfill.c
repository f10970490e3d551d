/* test_backfill.c: an index backfill in chunks while writers run (issue 14),
 * against real processes (coordinator + 3 workers, P=2, R=3, lease 1000 ms).
 *
 * The workers run with a chunk of 20 documents and a 10 ms delay inside every
 * chunk (SHARDEX_BACKFILL_CHUNK, SHARDEX_DELAY_POINT=backfill-scan:10), so a
 * backfill of the partitions' 3,000 documents takes many chunks on every
 * replica. One writer thread puts, overwrites and deletes documents
 * throughout (most of them ones the backfill has not reached yet), keeping a
 * model. Then:
 *   1. index "bf1" (local and global): its progress is seen rising in
 *      ListIndexes, a query while it runs is refused with the progress, no
 *      worker is declared dead, and once READY both modes answer exactly the
 *      model (mistyped count included);
 *   2. index "bf2": worker 2 dies at its 20th chunk (crash point
 *      backfill-chunk, as kill -9: nothing flushed), restarts, resumes from
 *      its durable cursor (its log says so) and the index becomes READY and
 *      exact;
 *   3. `shardex verify` and the replica checker pass, and the term
 *      partitions were rebuilt in several chunks (SHARDEX_REBUILD_CHUNK_ENTRIES
 *      = 50) after the marker, not shipped from the outbox at it.
 *
 * SHARDEX_TEST_SEED replays the writer's choices; SHARDEX_TEST_FILTER runs
 * some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "crashpoint.h"
#include "fixture.h"
#include "harness.h"
#include "query.h"
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
#include <time.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define NDOCS 3000
#define FIELD "color"

static uint64_t seed;

static int setup(void **state)
{
    /* Every worker the test starts, restarts included, inherits these. */
    setenv("SHARDEX_BACKFILL_CHUNK", "20", 1);
    setenv("SHARDEX_DELAY_POINT", "backfill-scan:10", 1);
    /* A global index's term partitions are rebuilt from a snapshot after
     * its marker: in chunks of 50 entries, several per term partition. */
    setenv("SHARDEX_REBUILD_CHUNK_ENTRIES", "50", 1);
    sx_cluster_opts o = {.workers = 3, .partitions = 2};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static uint64_t rng;

/* The interval of a poll. */
static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A document d<k> with a color (an int now and then: mistyped). */
static void make_doc(sx_qdoc *d, uint32_t k, uint64_t r)
{
    static const char *colors[] = {"red", "green", "blue", "cyan", "amber", "teal"};
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "d%05u", k);
    if (r % 17 == 0)
        sx_qdoc_add(d, FIELD, sx_qval_int((int64_t)(r % 100)));
    else
        sx_qdoc_add(d, FIELD, sx_qval_str(colors[r % 6]));
    if (r % 5 == 0) /* a second value now and then */
        sx_qdoc_add(d, FIELD, sx_qval_str(colors[(r / 7) % 6]));
}

/* The writer: owns the model until joined. */
typedef struct writer {
    sx_cluster *c;
    char addr[64];
    sx_model *model;
    sx_qtokens tokens;
    atomic_bool stop;
    uint64_t writes, failures;
    pthread_t thread;
} writer;

/* One write, repeated until acknowledged: the same content is safe to write
 * again, and only this thread writes, so the model stays exact. */
static void *writer_main(void *arg)
{
    writer *w = arg;
    while (!atomic_load(&w->stop)) {
        uint64_t r = rnd();
        /* Mostly ids near the end of id order, which a backfill reaches last. */
        uint32_t k =
            (uint32_t)(r % 4 ? NDOCS / 2 + (r >> 8) % (NDOCS / 2 + 200) : (r >> 8) % NDOCS);
        sx_qdoc d;
        make_doc(&d, k, rnd());
        bool del = r % 7 == 0;
        for (;;) {
            sx_err err = {0};
            const char *id = d.id;
            sx_status st = del ? sx_q_delete(w->c, w->addr, &id, 1, 5000, &w->tokens, NULL, &err)
                               : sx_q_put(w->c, w->addr, &d, 1, 5000, &w->tokens, NULL, &err);
            if (st == SX_OK)
                break;
            w->failures++;
            if (atomic_load(&w->stop) && w->failures > 1000)
                return NULL;
        }
        if (del)
            sx_model_delete(w->model, d.id);
        else
            sx_model_put(w->model, &d);
        w->writes++;
    }
    return NULL;
}

/* The index's info from ListIndexes (copied), false without an answer. */
static bool index_info(sx_cluster *c, const char *name, Shardex__V1__IndexInfo *out)
{
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_err err = {0};
    bool ok = false;
    if (sx_q_list_indexes(c, c->worker_addr[c->nworkers > 1 ? 1 : 0], &l, &err) == SX_OK) {
        const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, name);
        if (ix) {
            *out = *ix;
            out->spec = NULL;
            ok = true;
        }
    }
    sx_rpc_free(l ? &l->base : NULL);
    return ok;
}

/* Both modes answer exactly the model, after the writer's tokens; the
 * mistyped count too. */
static void check_exact(sx_cluster *c, writer *w, const char *name)
{
    sx_err err = {0};
    sx_qhits want = {0};
    sx_qmatch all = {.range = true};
    sx_model_expect(w->model, FIELD, false, &all, &want);
    const Shardex__V1__Mode modes[] = {SHARDEX__V1__MODE__MODE_LOCAL,
                                       SHARDEX__V1__MODE__MODE_GLOBAL};
    for (size_t i = 0; i < 2; i++) {
        sx_qreq q = {.index = name,
                     .match = all,
                     .mode = modes[i],
                     .limit = 500,
                     .after = &w->tokens,
                     .timeout_ms = 15000};
        sx_qpages pages = {0};
        if (sx_q_query_all(c, c->worker_addr[1], &q, &pages, &err) != SX_OK)
            SX_FX_FAIL(c, "query %s mode %d: %s", name, (int)modes[i], err.msg);
        char why[512];
        if (!sx_qhits_equal(&pages.hits, &want, why, sizeof(why)))
            SX_FX_FAIL(c, "index %s mode %d differs from the model (seed=%" PRIu64 "): %s", name,
                       (int)modes[i], seed, why);
        sx_qhits_free(&pages.hits);
    }
    fprintf(stderr, "%s: %zu hits, exact in both modes\n", name, want.n);
    sx_qhits_free(&want);
    Shardex__V1__IndexInfo info;
    uint64_t mistyped = sx_model_mistyped(w->model, FIELD, false);
    uint64_t t0 = sx_clock_now_ms();
    /* The count travels in heartbeats: poll until it settles. */
    while (!index_info(c, name, &info) || info.mistyped_docs != mistyped) {
        if (sx_clock_now_ms() - t0 > 5000)
            SX_FX_FAIL(c, "index %s: mistyped %" PRIu64 ", the model %" PRIu64, name,
                       info.mistyped_docs, mistyped);
        nap(100);
    }
}

static bool file_has(const sx_cluster *c, const char *name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* The most chunks a rebuild's last chunk was numbered in any worker's log
 * ("rebuild <id>: last chunk <k> sent", ixlead.c); -1 when none. */
static long max_last_chunk(const sx_cluster *c)
{
    long most = -1;
    for (uint32_t i = 0; i < c->opts.workers; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/w%u.log", c->dir, i);
        FILE *f = fopen(path, "r");
        char line[2048];
        while (f && fgets(line, sizeof(line), f)) {
            const char *at = strstr(line, ": last chunk ");
            long k = at ? strtol(at + strlen(": last chunk "), NULL, 10) : -1;
            if (k > most)
                most = k;
        }
        if (f)
            fclose(f);
    }
    return most;
}

/* Worker i is in the ISR of every partition (writes go on meanwhile). */
static bool in_every_isr(sx_cluster *c, uint32_t i)
{
    for (uint32_t p = 0; p < c->opts.partitions; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(c, p);
        if (!v.ok || !(v.isr_mask & (1u << i)))
            return false;
    }
    return true;
}

/* Phase 1: watches bf1's backfill until READY. */
static void watch_backfill(sx_cluster *c, const char *name)
{
    uint64_t t0 = sx_clock_now_ms(), last = 0;
    size_t rises = 0;
    bool refused = false, ready = false;
    while (!ready && sx_clock_now_ms() - t0 < WAIT_MS) {
        Shardex__V1__IndexInfo info;
        if (!index_info(c, name, &info))
            continue;
        ready = info.state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        if (!ready && info.backfill_done_docs > last && info.backfill_done_docs > 0 &&
            info.backfill_done_docs < info.backfill_total_docs) {
            rises++;
            last = info.backfill_done_docs;
            fprintf(stderr, "%s: %" PRIu64 " of %" PRIu64 " documents, eta %.1f s\n", name,
                    info.backfill_done_docs, info.backfill_total_docs, info.eta_seconds);
            if (!refused) {
                /* The CLI shows it: BUILDING with a percentage (or READY by now). */
                char bin[512], outp[600], errp[600];
                sx_cluster_bin("client/shardex", bin, sizeof(bin));
                snprintf(outp, sizeof(outp), "%s/cli.out", c->dir);
                snprintf(errp, sizeof(errp), "%s/cli.err", c->dir);
                char *argv[] = {bin, "--server", c->worker_addr[1], "index", "list", NULL};
                sx_h_run run = sx_h_run_wait(argv, NULL, NULL, outp, errp, 10000);
                const char *row = run.out ? strstr(run.out, name) : NULL;
                bool shown =
                    row && ((strstr(row, "BUILDING") && strchr(row, '%')) || strstr(row, "READY"));
                if (run.code != 0 || !shown) {
                    sx_h_run_print("shardex index list", &run);
                    SX_FX_FAIL(c, "shardex index list does not show %s's progress", name);
                }
                fprintf(stderr, "shardex index list: %.*s\n", (int)strcspn(row, "\n"), row);
                sx_h_run_free(&run);
                /* Never an answer silently incomplete: refused, naming it. */
                sx_qreq q = {.index = name,
                             .match = {.range = true},
                             .mode = SHARDEX__V1__MODE__MODE_LOCAL,
                             .timeout_ms = 300};
                Shardex__V1__QueryResponse *r = NULL;
                sx_err err = {0};
                sx_status st = sx_q_query(c, c->worker_addr[2], &q, NULL, &r, &err);
                sx_rpc_free(r ? &r->base : NULL);
                if (st == SX_OK)
                    SX_FX_FAIL(c, "a LOCAL query answered while %s was backfilling", name);
                fprintf(stderr, "query while backfilling: %s: %s\n", sx_status_name(st), err.msg);
                /* GLOBAL may answer before the local backfills finish: its
                 * term partitions are rebuilt from snapshots of the documents
                 * at or after the marker (not from the backfill's progress),
                 * and a term partition serves only once every log partition's
                 * rebuild is applied. An answer is then a full page (the
                 * partitions hold thousands of documents), never a partial
                 * share. */
                q.mode = SHARDEX__V1__MODE__MODE_GLOBAL;
                q.limit = 200;
                r = NULL;
                st = sx_q_query(c, c->worker_addr[2], &q, NULL, &r, &err);
                size_t nh = st == SX_OK && r ? r->n_hits : 0;
                sx_rpc_free(r ? &r->base : NULL);
                if (st == SX_OK && nh != 200)
                    SX_FX_FAIL(c, "a GLOBAL query while %s backfilled gave %zu hits, want 200",
                               name, nh);
                fprintf(stderr, "GLOBAL query while backfilling: %s (%zu hits)%s%s\n",
                        sx_status_name(st), nh, st == SX_OK ? "" : ": ",
                        st == SX_OK ? "" : err.msg);
                refused = true;
            }
        }
        nap(50);
    }
    if (!ready)
        SX_FX_FAIL(c, "index %s not READY within %d ms", name, WAIT_MS);
    if (rises < 2)
        SX_FX_FAIL(c, "index %s: progress seen rising %zu times, want at least 2", name, rises);
}

static void test_backfill_with_writers(void **state)
{
    sx_cluster *c = *state;
    seed = sx_fx_seed();
    rng = seed | 1;
    sx_err err = {0};
    writer w = {.c = c, .model = sx_model_create()};
    snprintf(w.addr, sizeof(w.addr), "%s", c->worker_addr[0]);
    for (uint32_t k = 0; k < NDOCS; k += 200) {
        sx_qdoc d[200];
        for (uint32_t i = 0; i < 200; i++) {
            make_doc(&d[i], k + i, rnd());
            sx_model_put(w.model, &d[i]);
        }
        if (sx_q_put(c, w.addr, d, 200, 15000, &w.tokens, NULL, &err) != SX_OK)
            SX_FX_FAIL(c, "put: %s", err.msg);
    }
    pthread_create(&w.thread, NULL, writer_main, &w);

    /* 1. */
    sx_qindex ix1 = {.name = "bf1", .field = FIELD, .local = true, .global = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix1, &err) != SX_OK)
        SX_FX_FAIL(c, "create bf1: %s", err.msg);
    watch_backfill(c, "bf1");
    if (file_has(c, "coord.log", "worker dead"))
        SX_FX_FAIL(c, "the coordinator declared a worker dead during the backfill");

    /* 2. Worker 2 again, to die at its 20th chunk. */
    sx_cluster_kill_worker(c, 2);
    const char *const crash[] = {"SHARDEX_CRASH_POINT=backfill-chunk:20", NULL};
    if (!sx_cluster_start_worker_env(c, 2, crash))
        SX_FX_FAIL(c, "worker 2 did not restart");
    uint64_t t0 = sx_clock_now_ms();
    while (!in_every_isr(c, 2)) {
        if (sx_clock_now_ms() - t0 > WAIT_MS)
            SX_FX_FAIL(c, "worker 2 did not rejoin every ISR within %d ms", WAIT_MS);
        nap(50);
    }
    sx_qindex ix2 = {.name = "bf2", .field = FIELD, .local = true, .global = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix2, &err) != SX_OK)
        SX_FX_FAIL(c, "create bf2: %s", err.msg);
    int code = sx_h_wait_exit(c->worker_pid[2], WAIT_MS);
    if (code < 0 || !WIFEXITED(code) || WEXITSTATUS(code) != SX_CRASH_EXIT)
        SX_FX_FAIL(c, "worker 2 did not stop at its crash point (exit %d)", code);
    c->worker_pid[2] = 0;
    if (!sx_cluster_start_worker(c, 2))
        SX_FX_FAIL(c, "worker 2 did not restart after its crash");
    if (!sx_q_wait_ready(c, c->worker_addr[1], "bf2", WAIT_MS))
        SX_FX_FAIL(c, "bf2 not READY within %d ms", WAIT_MS);
    if (!file_has(c, "w2.log", "backfill resumes"))
        SX_FX_FAIL(c, "worker 2 did not resume a backfill from its cursor");

    atomic_store(&w.stop, true);
    pthread_join(w.thread, NULL);
    fprintf(stderr, "writer: %" PRIu64 " writes, %" PRIu64 " retried (seed=%" PRIu64 ")\n",
            w.writes, w.failures, seed);
    check_exact(c, &w, "bf1");
    check_exact(c, &w, "bf2");
    /* The term partitions came from chunked rebuilds (not the outbox at
     * the marker), of several chunks each: exact above, verified below. */
    long chunks = max_last_chunk(c);
    if (chunks < 2)
        SX_FX_FAIL(c, "no rebuild of more than %ld chunks in the workers' logs", chunks + 1);
    fprintf(stderr, "rebuilds: up to %ld chunks\n", chunks + 1);

    /* 3. */
    char why[512];
    if (!sx_check_replicas(c, WAIT_MS, why, sizeof(why)))
        SX_FX_FAIL(c, "replicas: %s", why);
    if (!sx_check_verify(c, WAIT_MS, why, sizeof(why)))
        SX_FX_FAIL(c, "verify: %s", why);
    sx_model_destroy(w.model);
}

/* ------------------------------------------------------------ slow test -- */

/* The full size (label slow, SHARDEX_TEST_FILTER=test_backfill_million):
 * one worker, one partition of BIG documents, default chunk and throttle; a
 * writer overwrites and deletes while the index backfills. A compact model
 * (a byte per id: absent, a color, or mistyped) gives the count of every
 * color in both modes and the mistyped count; `shardex verify` recomputes
 * every entry from the log. */
#define BIG_DEFAULT 1000000
#define BIG_COLORS 6
static const char *big_colors[BIG_COLORS] = {"red", "green", "blue", "cyan", "amber", "teal"};

typedef struct big {
    sx_cluster *c;
    uint32_t n;     /* documents loaded */
    uint8_t *state; /* [n + n / 10]: 0 absent, 1 + color, BIG_COLORS + 1 mistyped */
    sx_qtokens tokens;
    atomic_bool stop;
    uint64_t writes;
    pthread_t thread;
} big;

static void big_doc(sx_qdoc *d, uint32_t k, uint8_t st)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "b%07u", k);
    if (st == BIG_COLORS + 1)
        sx_qdoc_add(d, FIELD, sx_qval_int(k));
    else
        sx_qdoc_add(d, FIELD, sx_qval_str(big_colors[st - 1]));
}

static void *big_writer(void *arg)
{
    big *b = arg;
    while (!atomic_load(&b->stop)) {
        uint64_t r = rnd();
        uint32_t k = (uint32_t)((r >> 8) % (b->n + b->n / 10));
        uint8_t st = r % 9 == 0 ? 0 : (uint8_t)(1 + (r >> 40) % (BIG_COLORS + 1));
        sx_qdoc d;
        big_doc(&d, k, st ? st : 1);
        for (;;) {
            sx_err err = {0};
            const char *id = d.id;
            sx_status s =
                st ? sx_q_put(b->c, b->c->worker_addr[0], &d, 1, 5000, &b->tokens, NULL, &err)
                   : sx_q_delete(b->c, b->c->worker_addr[0], &id, 1, 5000, &b->tokens, NULL, &err);
            if (s == SX_OK || atomic_load(&b->stop))
                break;
        }
        b->state[k] = st;
        b->writes++;
    }
    return NULL;
}

static int setup_big(void **state)
{
    sx_cluster_opts o = {.workers = 1, .partitions = 1, .replication = 1, .min_isr = 1};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static void test_backfill_million(void **state)
{
    sx_cluster *c = *state;
    seed = sx_fx_seed();
    rng = seed | 1;
    const char *env = getenv("SHARDEX_BACKFILL_DOCS");
    big b = {.c = c, .n = env && *env ? (uint32_t)strtoul(env, NULL, 10) : BIG_DEFAULT};
    b.state = calloc(b.n + b.n / 10 + 1, 1);
    assert_non_null(b.state);
    sx_qdoc *batch = calloc(1000, sizeof(*batch));
    assert_non_null(batch);
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    for (uint32_t k = 0; k < b.n; k += 1000) {
        uint32_t n = b.n - k < 1000 ? b.n - k : 1000;
        for (uint32_t i = 0; i < n; i++) {
            b.state[k + i] = (uint8_t)(1 + rnd() % (BIG_COLORS + 1));
            big_doc(&batch[i], k + i, b.state[k + i]);
        }
        if (sx_q_put(c, c->worker_addr[0], batch, n, 60000, &b.tokens, NULL, &err) != SX_OK)
            SX_FX_FAIL(c, "load at %u: %s", k, err.msg);
    }
    free(batch);
    fprintf(stderr, "loaded %u documents in %" PRIu64 " ms\n", b.n, sx_clock_now_ms() - t0);
    pthread_create(&b.thread, NULL, big_writer, &b);
    /* M = 1: all 1,000,000 entries in one term partition. When the
     * backfill shipped from the outbox at its marker's offset (whole offsets,
     * one message) this broke the 20 MiB message (the index never became
     * READY); the term partition is rebuilt from a snapshot in chunks now. */
    sx_qindex ix = {
        .name = "big", .field = FIELD, .local = true, .global = true, .term_partitions = 1};
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK)
        SX_FX_FAIL(c, "create: %s", err.msg);
    t0 = sx_clock_now_ms();
    bool ready = false;
    size_t shown = 0;
    uint64_t last_print = 0;
    while (!ready && sx_clock_now_ms() - t0 < 600000) {
        Shardex__V1__IndexInfo info;
        if (index_info(c, "big", &info)) {
            ready = info.state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
            if (!ready && info.backfill_done_docs > 0 &&
                info.backfill_done_docs < info.backfill_total_docs) {
                shown++;
                if (sx_clock_now_ms() - last_print >= 2000) {
                    last_print = sx_clock_now_ms();
                    fprintf(stderr, "big: %" PRIu64 " of %" PRIu64 " documents, eta %.0f s\n",
                            info.backfill_done_docs, info.backfill_total_docs, info.eta_seconds);
                }
            }
        }
        nap(200);
    }
    atomic_store(&b.stop, true);
    pthread_join(b.thread, NULL);
    fprintf(stderr, "backfill READY after %" PRIu64 " ms; writer: %" PRIu64 " writes\n",
            sx_clock_now_ms() - t0, b.writes);
    if (!ready)
        SX_FX_FAIL(c, "index not READY within 10 minutes");
    if (shown == 0)
        SX_FX_FAIL(c, "no progress was shown while the index backfilled");
    if (file_has(c, "coord.log", "worker dead"))
        SX_FX_FAIL(c, "the coordinator declared the worker dead during the backfill");
    /* Every color's count in both modes, and the mistyped count. */
    uint64_t want[BIG_COLORS + 2] = {0};
    for (uint32_t k = 0; k < b.n + b.n / 10; k++)
        want[b.state[k]]++;
    const Shardex__V1__Mode modes[] = {SHARDEX__V1__MODE__MODE_LOCAL,
                                       SHARDEX__V1__MODE__MODE_GLOBAL};
    for (size_t m = 0; m < 2; m++) {
        for (int k = 0; k < BIG_COLORS; k++) {
            sx_qreq q = {.index = "big",
                         .match = {.eq = sx_qval_str(big_colors[k])},
                         .mode = modes[m],
                         .limit = 10000,
                         .after = &b.tokens,
                         .timeout_ms = 60000};
            sx_qpages pages = {0};
            if (sx_q_query_all(c, c->worker_addr[0], &q, &pages, &err) != SX_OK)
                SX_FX_FAIL(c, "query %s: %s", big_colors[k], err.msg);
            if (pages.hits.n != want[k + 1])
                SX_FX_FAIL(c,
                           "mode %d color %s: %zu hits, the model %" PRIu64 " (seed=%" PRIu64 ")",
                           (int)modes[m], big_colors[k], pages.hits.n, want[k + 1], seed);
            sx_qhits_free(&pages.hits);
        }
    }
    Shardex__V1__IndexInfo info;
    t0 = sx_clock_now_ms();
    while (!index_info(c, "big", &info) || info.mistyped_docs != want[BIG_COLORS + 1]) {
        if (sx_clock_now_ms() - t0 > 10000)
            SX_FX_FAIL(c, "mistyped %" PRIu64 ", the model %" PRIu64, info.mistyped_docs,
                       want[BIG_COLORS + 1]);
        nap(100);
    }
    char why[512];
    if (!sx_check_verify(c, 600000, why, sizeof(why)))
        SX_FX_FAIL(c, "verify: %s", why);
    free(b.state);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backfill_with_writers, setup, sx_fx_cluster_teardown),
        cmocka_unit_test_setup_teardown(test_backfill_million, setup_big, sx_fx_cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
