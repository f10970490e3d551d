/* bench_restart: the write pause a rolling restart of every worker causes
 * (issue 15), graceful (SIGTERM: the worker hands its leaderships over through
 * the coordinator, Coordinator.LeaveWorker, before it exits) against the
 * baseline kill -9 (the roles move only once the coordinator's lease on the
 * dead worker runs out), alternately in the same run (BENCHMARKING.md).
 *
 *   bench_restart [--rounds N] [--writers N] [--steady S]   (--help: defaults)
 *
 * The subject: one cluster started through tests/support/cluster.h, a
 * coordinator and 3 workers as processes on loopback, P=8, R=3, min_isr 2,
 * the coordinator's default lease (LEASE_MS, shardex-coordinator
 * --lease-ms), the workers' default --stop-timeout; settled (every ISR whole)
 * before the first write.
 *
 * The load: --writers threads, closed loop, each Put of one document (a fresh
 * id each) through libshardex (sx_client_put, one client per worker, one
 * attempt, PUT_TIMEOUT_MS deadline). A writer sends to the workers in turn,
 * skipping the one being restarted from its signal until it is settled again,
 * as a load balancer with health checks would; a call that had reached that
 * worker and fails UNAVAILABLE, CANCELLED or ABORTED is sent once more
 * elsewhere (counted as a retry); any other failure is a failed write.
 *
 * A round is a rolling restart of every worker in turn, done once each way
 * (graceful then kill -9, the next round kill -9 then graceful). One stop:
 * --steady seconds of undisturbed load (the baseline window), the signal,
 * the process's exit; for kill -9 the wait until the coordinator's map calls
 * the worker dead (its lease ran out: a restart before that would move its
 * roles on re-registration instead, which a crash does not do); then the
 * worker starts again on its data directory and the stop ends once it is
 * settled: back in every partition's ISR, every partition led, and every
 * worker acting on the coordinator's map of that moment (the leaderships
 * that move back to it as it rejoins have moved).
 *
 * Measured from the client, from each write's issue and acknowledgement
 * times, after the run: per stop the longest interval with no write
 * acknowledged by any writer that overlaps the stop's window (signal to
 * settled): the write pause; the latency (issue to acknowledgement, the
 * retry included) of the writes in flight during the window, the slowest
 * one's too; failed writes and retries; the stop's length (signal to
 * exit). At the end every acknowledged document must be readable (Get
 * through libshardex, its fields checked) and the replicas must agree
 * (checker.h): otherwise the run fails (exit 1). Failed writes do not fail
 * the run, they are what it measures: each is listed, and a verdict line
 * says whether none failed during a graceful stop. Markdown on stdout,
 * progress on stderr (with UTC times, to read beside the daemons' logs:
 * SHARDEX_KEEP_TEST_DIR=1 keeps the cluster's directory).
 */
#include "benchlib.h"
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "harness.h"
#include "log.h"
#include "mem.h"
#include "shardex.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 3
#define PARTITIONS 8
#define REPLICATION 3
#define MIN_ISR 2
#define LEASE_MS 2000        /* shardex-coordinator's default --lease-ms (coordinator/main.c) */
#define PUT_TIMEOUT_MS 30000 /* a write's deadline: a lease-long failover fits many times */
#define GET_TIMEOUT_MS 10000 /* the read-back's */
#define SETTLE_MS 60000      /* start, and a restarted worker's catch-up */
#define EXIT_WAIT_MS 30000   /* a graceful stop (--stop-timeout 10 s + gRPC's shutdown) */
#define DEAD_WAIT_MS 20000   /* kill -9: the coordinator's lease on the dead worker */
#define POLL_MS 10           /* map polls while waiting */
#define WARMUP_MS 1000       /* load before the first steady window */
#define MAX_WRITERS 64
#define NONE UINT32_MAX
#define BODY "restart bench body: a few dozen bytes of text in every document"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_restart: %s\n", what);
    exit(1);
}

/* Monotonic ns -> wall-clock ms (UTC), for lines read beside the daemons' logs. */
static int64_t g_wall_minus_mono_ms;

static void utc(uint64_t mono_ns, char *buf, size_t cap)
{
    int64_t ms = (int64_t)(mono_ns / 1000000u) + g_wall_minus_mono_ms;
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* ========================================================== the load ===== */

/* A worker as the writers reach it: a libshardex client of that worker alone,
 * replaced when the worker comes back on a new port. */
typedef struct backend {
    pthread_rwlock_t lock; /* read: a call in progress; write: replacing client */
    sx_client *client;
} backend;

enum { REC_ACKED = 1, REC_RETRIED = 2, REC_FAILED = 4 };

/* One write, as its writer saw it. */
typedef struct wrec {
    uint64_t issue_ns, done_ns; /* monotonic; done: acknowledged or given up */
    uint32_t k;                 /* the writer's sequence number: the id */
    uint32_t flags;             /* REC_* */
} wrec;

/* A failed write, as reported. */
#define FAIL_LOG 8 /* failures kept per writer */
typedef struct fail_log {
    uint64_t done_ns;
    uint32_t via; /* the worker the last attempt went to */
    char id[32];
    sx_status st;
    char msg[240];
} fail_log;

typedef struct load load;

typedef struct writer {
    load *L;
    uint32_t no;
    pthread_t th;
    wrec *r; /* this writer's writes, read by main after the join */
    size_t n, cap;
    size_t nfail;             /* failed writes */
    fail_log fails[FAIL_LOG]; /* the first FAIL_LOG of them */
} writer;

struct load {
    sx_cluster *c;
    backend b[NWORKERS];
    _Atomic uint32_t excluded; /* the worker being restarted, NONE: none */
    atomic_bool done;
    int nwriters;
    writer w[MAX_WRITERS];
};

static void doc_id(char *buf, size_t cap, uint32_t writer_no, uint32_t k)
{
    snprintf(buf, cap, "rs%02u-%09u", writer_no, k);
}

static Shardex__V1__Document *make_doc(uint32_t writer_no, uint32_t k)
{
    char id[32];
    doc_id(id, sizeof(id), writer_no, k);
    Shardex__V1__Document *d = sx_doc_new(id);
    sx_doc_add_int(d, "w", writer_no);
    sx_doc_add_int(d, "k", k);
    sx_doc_add_str(d, "body", BODY);
    return d;
}

static sx_client *open_client(const char *addr, uint64_t timeout_ms, uint32_t attempts)
{
    const char *servers[1] = {addr};
    sx_client_opts o = {
        .servers = servers, .nservers = 1, .timeout_ms = timeout_ms, .max_attempts = attempts};
    sx_client *cl = NULL;
    sx_err err = {0};
    if (sx_client_open(&o, &cl, &err) != SX_OK)
        die(err.msg);
    return cl;
}

/* The next worker in this writer's turn that is not being restarted. */
static uint32_t pick(load *L, uint32_t *turn)
{
    uint32_t ex = atomic_load(&L->excluded);
    for (;;) {
        uint32_t i = (*turn)++ % NWORKERS;
        if (i != ex)
            return i;
    }
}

/* What a call that reached a stopping worker may fail with: its server
 * refused or cancelled the call, or its replica no longer leads. */
static bool retryable(sx_status st)
{
    return st == SX_UNAVAILABLE || st == SX_CANCELLED || st == SX_ABORTED;
}

static void record(writer *w, const wrec *r)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 4096;
        w->r = sx_realloc(w->r, w->cap * sizeof(*w->r));
    }
    w->r[w->n++] = *r;
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    load *L = w->L;
    uint32_t turn = w->no;
    for (uint32_t k = 0; !atomic_load(&L->done); k++) {
        Shardex__V1__Document *d = make_doc(w->no, k);
        wrec r = {.issue_ns = sx_clock_now_ns(), .k = k};
        for (;;) {
            uint32_t via = pick(L, &turn);
            backend *b = &L->b[via];
            sx_err err = {0};
            pthread_rwlock_rdlock(&b->lock);
            sx_status st = sx_client_put(b->client, &d, 1, NULL, &err);
            pthread_rwlock_unlock(&b->lock);
            r.done_ns = sx_clock_now_ns();
            if (st == SX_OK) {
                r.flags |= REC_ACKED;
                break;
            }
            if (!(r.flags & REC_RETRIED) && via == atomic_load(&L->excluded) && retryable(st)) {
                r.flags |= REC_RETRIED;
                continue;
            }
            r.flags |= REC_FAILED;
            if (w->nfail < FAIL_LOG) {
                fail_log *f = &w->fails[w->nfail];
                f->done_ns = r.done_ns;
                f->via = via;
                f->st = st;
                snprintf(f->id, sizeof(f->id), "%s", d->id);
                snprintf(f->msg, sizeof(f->msg), "%s", err.msg);
            }
            w->nfail++;
            break;
        }
        record(w, &r);
        sx_doc_free(d);
    }
    return NULL;
}

static void load_start(load *L, sx_cluster *c, int nwriters)
{
    L->c = c;
    L->nwriters = nwriters;
    atomic_init(&L->excluded, NONE);
    atomic_init(&L->done, false);
    for (uint32_t i = 0; i < NWORKERS; i++) {
        pthread_rwlock_init(&L->b[i].lock, NULL);
        L->b[i].client = open_client(c->worker_addr[i], PUT_TIMEOUT_MS, 1);
    }
    for (int i = 0; i < nwriters; i++) {
        L->w[i].L = L;
        L->w[i].no = (uint32_t)i;
        pthread_create(&L->w[i].th, NULL, writer_main, &L->w[i]);
    }
}

static void load_stop(load *L)
{
    atomic_store(&L->done, true);
    for (int i = 0; i < L->nwriters; i++)
        pthread_join(L->w[i].th, NULL);
}

static void load_free(load *L)
{
    for (uint32_t i = 0; i < NWORKERS; i++) {
        sx_client_close(L->b[i].client);
        pthread_rwlock_destroy(&L->b[i].lock);
    }
    for (int i = 0; i < L->nwriters; i++)
        free(L->w[i].r);
}

/* ========================================================== the stops ===== */

typedef enum way { WAY_GRACEFUL, WAY_KILL9, NWAYS } way;

static const char *way_name(way w)
{
    return w == WAY_GRACEFUL ? "graceful (SIGTERM)" : "kill -9";
}

/* One stop and restart of one worker; times are monotonic ns. */
typedef struct stop_ev {
    int round;
    way how;
    uint32_t worker;
    uint32_t led;       /* log partitions it led just before the signal */
    uint64_t t_steady;  /* start of the undisturbed window before the signal */
    uint64_t t_sig;     /* SIGTERM or SIGKILL sent */
    uint64_t t_exit;    /* the process reaped */
    uint64_t t_dead;    /* the coordinator's map first seen calling it dead */
    uint64_t t_started; /* the new process serves (its port file) */
    uint64_t t_isr;     /* back in every ISR, every partition led */
    uint64_t t_settled; /* and every worker has installed the coordinator's map */
    int exit_status;    /* waitpid's, -1: did not exit in time (then killed) */
    bool handed_over;   /* at exit the map already called it dead and leading nothing */
    bool ok;            /* restarted and settled */
    /* From the records, after the run: */
    uint64_t pause_ns;   /* longest ack-free interval overlapping [t_sig, t_settled] */
    uint64_t pause_from; /* its ends: the acknowledgements around it */
    uint64_t pause_to;   /* */
    uint64_t rejoin_ns;  /* longest of those starting after t_started */
    uint64_t steady_ns;  /* longest ack-free interval in the steady window before */
    uint64_t acked;      /* writes in flight in the window and acknowledged */
    uint64_t failed;     /* in flight in the window and failed */
    uint64_t retried;    /* in flight in the window and sent a second time */
    uint64_t max_lat_ns; /* the slowest acknowledged write in flight in the window */
} stop_ev;

typedef struct map_facts {
    bool ok;          /* the coordinator answered and knows the worker */
    bool alive;       /* the map calls it alive */
    uint32_t led;     /* log partitions it leads */
    bool settled;     /* it is in every partition's ISR and every partition has a leader */
    uint64_t version; /* of the coordinator's map */
} map_facts;

static map_facts facts_of(sx_cluster *c, uint32_t v)
{
    map_facts f = {0};
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return f;
    f.version = m->version;
    int32_t w = sx_cluster_index_of(m, c, v);
    if (w >= 0) {
        f.ok = true;
        f.alive = m->workers[w]->alive;
        f.settled = f.alive;
        for (size_t p = 0; p < m->n_partitions; p++) {
            const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
            f.led += lp->leader == w;
            bool in_isr = false;
            for (size_t k = 0; k < lp->n_isr; k++)
                in_isr |= lp->isr[k] == w;
            f.settled &= in_isr && lp->leader >= 0;
        }
    }
    sx_rpc_free(&m->base);
    return f;
}

/* Polls the map until want(facts) or timeout_ms; true if it happened. */
static bool wait_map(sx_cluster *c, uint32_t v, bool (*want)(const map_facts *),
                     uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        map_facts f = facts_of(c, v);
        if (f.ok && want(&f))
            return true;
        if (sx_clock_now_ms() >= end || g_stop)
            return false;
        sx_clock_sleep_ms(POLL_MS);
    }
}

static bool is_dead(const map_facts *f)
{
    return !f->alive;
}

static bool is_settled(const map_facts *f)
{
    return f->settled;
}

/* Whether every running worker has installed map version (or a newer one). */
static bool all_have_map(sx_cluster *c, uint64_t version)
{
    for (uint32_t i = 0; i < c->nworkers; i++) {
        if (c->worker_pid[i] <= 0)
            continue;
        Shardex__Internal__V1__WorkerStatusResponse *st = sx_cluster_worker_status(c, i);
        bool has = st && st->map_version >= version;
        sx_rpc_free(st ? &st->base : NULL);
        if (!has)
            return false;
    }
    return true;
}

/* Waits until worker v is settled (is_settled) and every worker acts on the
 * coordinator's map of that moment: the leaderships that move back to v as
 * it rejoins have moved. False after timeout_ms. */
static bool wait_quiet_map(sx_cluster *c, uint32_t v, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        map_facts f = facts_of(c, v);
        if (f.ok && f.settled && all_have_map(c, f.version) && facts_of(c, v).version == f.version)
            return true;
        if (sx_clock_now_ms() >= end || g_stop)
            return false;
        sx_clock_sleep_ms(POLL_MS);
    }
}

/* Stops worker v (how), starts it again and waits until it is settled;
 * the writers avoid it meanwhile. Fills ev's times; false if the worker did
 * not come back (the run cannot go on). */
static bool stop_and_restart(load *L, uint32_t v, way how, double steady_s, stop_ev *ev)
{
    sx_cluster *c = L->c;
    ev->worker = v;
    ev->how = how;
    ev->t_steady = sx_clock_now_ns();
    sx_clock_sleep_ms((uint64_t)(steady_s * 1000));
    ev->led = facts_of(c, v).led;

    atomic_store(&L->excluded, v);
    ev->t_sig = sx_clock_now_ns();
    kill(c->worker_pid[v], how == WAY_GRACEFUL ? SIGTERM : SIGKILL);
    ev->exit_status = sx_h_wait_exit(c->worker_pid[v], EXIT_WAIT_MS);
    ev->t_exit = sx_clock_now_ns();
    if (ev->exit_status == -1)
        sx_h_kill9(c->worker_pid[v]);
    c->worker_pid[v] = 0;
    map_facts f = facts_of(c, v);
    ev->handed_over = f.ok && !f.alive && f.led == 0;
    if (!f.ok || f.alive)
        wait_map(c, v, is_dead, DEAD_WAIT_MS);
    ev->t_dead = sx_clock_now_ns();
    if (g_stop)
        return false;

    if (!sx_cluster_start_worker(c, v)) {
        fprintf(stderr, "bench_restart: worker %u did not start again\n", v);
        return false;
    }
    ev->t_started = sx_clock_now_ns();
    if (!wait_map(c, v, is_settled, SETTLE_MS)) {
        fprintf(stderr, "bench_restart: worker %u did not rejoin every ISR in %d s\n", v,
                SETTLE_MS / 1000);
        return false;
    }
    ev->t_isr = sx_clock_now_ns();
    if (!wait_quiet_map(c, v, SETTLE_MS)) {
        fprintf(stderr, "bench_restart: the workers did not all install the map in %d s\n",
                SETTLE_MS / 1000);
        return false;
    }
    ev->t_settled = sx_clock_now_ns();
    /* Back in the rotation, on its new port; calls on the old client have
     * all returned once the write lock is ours. */
    backend *b = &L->b[v];
    sx_client *fresh = open_client(c->worker_addr[v], PUT_TIMEOUT_MS, 1);
    pthread_rwlock_wrlock(&b->lock);
    sx_client *old = b->client;
    b->client = fresh;
    pthread_rwlock_unlock(&b->lock);
    sx_client_close(old);
    atomic_store(&L->excluded, NONE);
    ev->ok = true;

    char a[16], d[16];
    utc(ev->t_sig, a, sizeof(a));
    utc(ev->t_settled, d, sizeof(d));
    fprintf(stderr,
            "round %d %-18s worker %u (led %u): signal %s UTC, exit after %.0f ms (status %d%s), "
            "dead in the map after %.0f ms, started after %.0f ms, in every ISR after %.0f ms, "
            "settled %s UTC (%.1f s)\n",
            ev->round + 1, way_name(how), v, ev->led, a, (double)(ev->t_exit - ev->t_sig) / 1e6,
            ev->exit_status, how == WAY_GRACEFUL && ev->handed_over ? ", handed over" : "",
            (double)(ev->t_dead - ev->t_sig) / 1e6, (double)(ev->t_started - ev->t_sig) / 1e6,
            (double)(ev->t_isr - ev->t_sig) / 1e6, d, (double)(ev->t_settled - ev->t_sig) / 1e9);
    return true;
}

/* ========================================================= the figures ===== */

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Every acknowledgement time of the run, sorted. */
static uint64_t *ack_times(const load *L, size_t *n)
{
    size_t total = 0;
    for (int i = 0; i < L->nwriters; i++)
        total += L->w[i].n;
    uint64_t *t = sx_calloc(total + 1, sizeof(*t));
    size_t k = 0;
    for (int i = 0; i < L->nwriters; i++)
        for (size_t j = 0; j < L->w[i].n; j++)
            if (L->w[i].r[j].flags & REC_ACKED)
                t[k++] = L->w[i].r[j].done_ns;
    qsort(t, k, sizeof(*t), cmp_u64);
    *n = k;
    return t;
}

/* The longest interval between consecutive acknowledgements (or from..to's
 * ends where none falls) that overlaps [from, to], whole or, when clip, only
 * its part inside [from, to]; *split_ns gets the longest of those that start
 * at or after split (0: none). */
static uint64_t longest_gap(const uint64_t *t, size_t n, uint64_t from, uint64_t to, uint64_t split,
                            bool clip, uint64_t *gap_from, uint64_t *gap_to, uint64_t *split_ns)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* the first acknowledgement after from */
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t prev = lo > 0 ? t[lo - 1] : from, best = 0, after = 0;
    for (size_t j = lo; prev < to; j++) {
        uint64_t next = j < n ? t[j] : to; /* none after: open until to */
        uint64_t gap = clip ? (next < to ? next : to) - (prev > from ? prev : from) : next - prev;
        if (gap > best) {
            best = gap;
            if (gap_from)
                *gap_from = prev;
            if (gap_to)
                *gap_to = next;
        }
        if (prev >= split && gap > after)
            after = gap;
        if (j >= n)
            break;
        prev = next;
    }
    if (split_ns)
        *split_ns = after;
    return best;
}

/* Per way: what the writes issued during its stops saw. */
typedef struct way_sum {
    sx_bench_hist h; /* latency of the acknowledged ones, ns */
    uint64_t max_ns; /* the slowest acknowledged one */
    uint64_t acked, failed, retried;
    double window_s; /* stop windows, summed */
} way_sum;

/* Attributes every write to a stop's window when it was in flight during it
 * (issued before the window's end, done after its start), else to the steady
 * window its issue falls in, and fills each stop's counts, the per-way sums
 * and steady. */
static void attribute(const load *L, stop_ev *ev, int nev, way_sum *ways, way_sum *steady,
                      uint64_t *elsewhere_failed)
{
    for (int e = 0; e < nev; e++) {
        ways[ev[e].how].window_s += (double)(ev[e].t_settled - ev[e].t_sig) / 1e9;
        steady->window_s += (double)(ev[e].t_sig - ev[e].t_steady) / 1e9;
    }
    for (int i = 0; i < L->nwriters; i++) {
        for (size_t j = 0; j < L->w[i].n; j++) {
            const wrec *r = &L->w[i].r[j];
            way_sum *s = NULL;
            stop_ev *in = NULL;
            for (int e = 0; e < nev && !s; e++) {
                if (r->issue_ns <= ev[e].t_settled && r->done_ns >= ev[e].t_sig) {
                    in = &ev[e];
                    s = &ways[ev[e].how];
                } else if (r->issue_ns >= ev[e].t_steady && r->issue_ns < ev[e].t_sig) {
                    s = steady;
                }
            }
            if (!s) {
                *elsewhere_failed += (r->flags & REC_FAILED) != 0;
                continue;
            }
            uint64_t lat = r->done_ns - r->issue_ns;
            if (r->flags & REC_ACKED) {
                sx_bench_hist_add(&s->h, lat);
                s->max_ns = lat > s->max_ns ? lat : s->max_ns;
                s->acked++;
            }
            s->failed += (r->flags & REC_FAILED) != 0;
            s->retried += (r->flags & REC_RETRIED) != 0;
            if (in) {
                if ((r->flags & REC_ACKED) && lat > in->max_lat_ns)
                    in->max_lat_ns = lat;
                in->acked += (r->flags & REC_ACKED) != 0;
                in->failed += (r->flags & REC_FAILED) != 0;
                in->retried += (r->flags & REC_RETRIED) != 0;
            }
        }
    }
}

/* ====================================================== the read-back ===== */

typedef struct readback {
    const load *L;
    const char *const *servers;
    int nthreads;
    int no;
    uint64_t checked, missing;
    char first[320];
} readback;

/* Gets every acknowledged document of writers no, no + nthreads, ... through
 * a client of every worker, and checks its fields. */
static void *readback_main(void *arg)
{
    readback *rb = arg;
    sx_client_opts o = {.servers = rb->servers, .nservers = NWORKERS, .timeout_ms = GET_TIMEOUT_MS};
    sx_client *cl = NULL;
    sx_err err = {0};
    if (sx_client_open(&o, &cl, &err) != SX_OK)
        die(err.msg);
    for (int i = rb->no; i < rb->L->nwriters; i += rb->nthreads) {
        const writer *w = &rb->L->w[i];
        for (size_t j = 0; j < w->n; j++) {
            if (!(w->r[j].flags & REC_ACKED))
                continue;
            char id[32];
            doc_id(id, sizeof(id), w->no, w->r[j].k);
            Shardex__V1__GetResponse *g = NULL;
            sx_status st = sx_client_get(cl, id, NULL, 0, &g, &err);
            const Shardex__V1__Value *k =
                st == SX_OK && g->found ? sx_doc_field(g->doc, "k") : NULL;
            bool ok = k && k->kind_case == SHARDEX__V1__VALUE__KIND_I && k->i == w->r[j].k;
            rb->checked++;
            if (!ok && rb->missing++ == 0)
                snprintf(rb->first, sizeof(rb->first), "%s: %s", id,
                         st != SX_OK ? err.msg
                         : !g->found ? "not found"
                                     : "wrong fields");
            sx_client_free(g);
        }
    }
    sx_client_close(cl);
    return NULL;
}

/* Reads every acknowledged write back; returns how many are missing (or wrong). */
static uint64_t read_back(const load *L, sx_cluster *c, uint64_t *checked, char *first, size_t cap)
{
    const char *servers[NWORKERS];
    for (uint32_t i = 0; i < NWORKERS; i++)
        servers[i] = c->worker_addr[i];
    int n = L->nwriters;
    readback *rb = sx_calloc((size_t)n, sizeof(*rb));
    pthread_t *th = sx_calloc((size_t)n, sizeof(*th));
    for (int i = 0; i < n; i++) {
        rb[i] = (readback){.L = L, .servers = servers, .nthreads = n, .no = i};
        pthread_create(&th[i], NULL, readback_main, &rb[i]);
    }
    uint64_t missing = 0;
    *checked = 0;
    first[0] = '\0';
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        *checked += rb[i].checked;
        missing += rb[i].missing;
        if (!first[0] && rb[i].first[0])
            snprintf(first, cap, "%s", rb[i].first);
    }
    free(rb);
    free(th);
    return missing;
}

/* ========================================================= the report ===== */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* "MEDIAN (MIN - MAX)" of field(e) over the stops of way how, in ms. */
static void fmt_stops(const stop_ev *ev, int nev, way how, double (*field)(const stop_ev *),
                      int decimals, char *buf, size_t cap)
{
    double v[2 * 1000 * NWORKERS];
    int n = 0;
    for (int e = 0; e < nev; e++)
        if (ev[e].how == how)
            v[n++] = field(&ev[e]);
    if (n == 0)
        snprintf(buf, cap, "-");
    else
        sx_bench_fmt_median_range(v, n, decimals, buf, cap);
}

static double f_pause(const stop_ev *e)
{
    return ms(e->pause_ns);
}
static double f_rejoin(const stop_ev *e)
{
    return ms(e->rejoin_ns);
}
static double f_stop(const stop_ev *e)
{
    return ms(e->t_exit - e->t_sig);
}
static double f_dead(const stop_ev *e)
{
    return ms(e->t_dead - e->t_sig);
}
static double f_window(const stop_ev *e)
{
    return (double)(e->t_settled - e->t_sig) / 1e9;
}

static double f_maxlat(const stop_ev *e)
{
    return ms(e->max_lat_ns);
}

/* Per pair of stops of the same round and worker, field(graceful) /
 * field(kill -9), into out; returns how many. */
static int pair_ratios(const stop_ev *ev, int nev, int rounds, double (*field)(const stop_ev *),
                       double *out)
{
    int n = 0;
    for (int r = 0; r < rounds; r++) {
        for (uint32_t v = 0; v < NWORKERS; v++) {
            const stop_ev *g = NULL, *k = NULL;
            for (int e = 0; e < nev; e++) {
                if (ev[e].round != r || ev[e].worker != v)
                    continue;
                if (ev[e].how == WAY_GRACEFUL)
                    g = &ev[e];
                else
                    k = &ev[e];
            }
            if (g && k && field(k) > 0)
                out[n++] = field(g) / field(k);
        }
    }
    return n;
}

static double per_second(const way_sum *s)
{
    return s->window_s > 0 ? (double)s->acked / s->window_s : 0;
}

static void print_report(const stop_ev *ev, int nev, int rounds, const way_sum *ways,
                         const way_sum *steady, int nwriters, double steady_s)
{
    printf("Closed loop: %d writer threads in this process, each with one single-document Put in "
           "flight through libshardex (`sx_client_put`, one client per worker, one attempt, %d s "
           "deadline), sent to the workers in turn, skipping the one being restarted from its "
           "signal until it is settled again (a load balancer with health checks); a call that "
           "had reached that worker and failed UNAVAILABLE, CANCELLED or ABORTED is sent once "
           "more elsewhere (a retry). A coordinator and %d workers on loopback, P=%d, R=%d, "
           "min_isr %d, lease %d ms (the coordinator's default `--lease-ms`), the workers' default "
           "`--stop-timeout` (10 s), no index. %d rounds; each round restarts every worker in "
           "turn once gracefully (SIGTERM: hand-over through `Coordinator.LeaveWorker`) and once "
           "with kill -9 (the roles move when the lease runs out; the worker is started again "
           "only once the map calls it dead), in the order graceful, kill -9, then kill -9, "
           "graceful. Before each stop %.1f s of undisturbed load (the steady row). A stop's "
           "window runs from its signal until it is **settled**: the restarted worker is back in "
           "every partition's ISR and every worker has installed the coordinator's map of that "
           "moment (so the leaderships that move back to it have moved). Its **write pause** is "
           "the longest interval with no write acknowledged by any writer that overlaps the "
           "window; a write counts for a window when it was in flight during it. No CPU pinning; "
           "CPU time is not reported (the processes measured come and go).\n\n",
           nwriters, PUT_TIMEOUT_MS / 1000, NWORKERS, PARTITIONS, REPLICATION, MIN_ISR, LEASE_MS,
           rounds, steady_s);

    printf("| stop | stops | write pause ms | longest pause after the restart ms | slowest write "
           "ms | stop took (signal to exit) ms | map calls it dead after ms | signal to settled "
           "s | writes acked | failed | retried | latency p50 / p99 / max ms |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
           "|\n");
    for (int w = 0; w < NWAYS; w++) {
        char pause[64], rejoin[64], slow[64], stop[64], dead[64], window[64];
        fmt_stops(ev, nev, (way)w, f_pause, 0, pause, sizeof(pause));
        fmt_stops(ev, nev, (way)w, f_rejoin, 0, rejoin, sizeof(rejoin));
        fmt_stops(ev, nev, (way)w, f_maxlat, 0, slow, sizeof(slow));
        fmt_stops(ev, nev, (way)w, f_stop, 0, stop, sizeof(stop));
        fmt_stops(ev, nev, (way)w, f_dead, 0, dead, sizeof(dead));
        fmt_stops(ev, nev, (way)w, f_window, 1, window, sizeof(window));
        int n = 0;
        for (int e = 0; e < nev; e++)
            n += ev[e].how == (way)w;
        printf("| %s | %d | **%s** | %s | %s | %s | %s | %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64
               " | %.1f / %.1f / %.0f |\n",
               way_name((way)w), n, pause, rejoin, slow, stop, dead, window, ways[w].acked,
               ways[w].failed, ways[w].retried, sx_bench_hist_quantile(&ways[w].h, 0.5) / 1e6,
               sx_bench_hist_quantile(&ways[w].h, 0.99) / 1e6, ms(ways[w].max_ns));
    }
    {
        double v[2 * 1000 * NWORKERS];
        for (int e = 0; e < nev; e++)
            v[e] = ms(ev[e].steady_ns);
        char cell[64] = "-";
        if (nev)
            sx_bench_fmt_median_range(v, nev, 0, cell, sizeof(cell));
        printf("| steady (%.1f s before each stop) | %d | %s | - | - | - | - | - | %" PRIu64
               " | %" PRIu64 " | %" PRIu64 " | %.1f / %.1f / %.0f |\n",
               steady_s, nev, cell, steady->acked, steady->failed, steady->retried,
               sx_bench_hist_quantile(&steady->h, 0.5) / 1e6,
               sx_bench_hist_quantile(&steady->h, 0.99) / 1e6, ms(steady->max_ns));
    }
    printf("\nMedians over stops (min - max). *Slowest write*: the longest latency of a write in "
           "flight during the stop (what one caller waited). Latency percentiles: every write in "
           "flight during a stop of that way, issue to acknowledgement, a retry included; steady: "
           "the writes issued in the steady windows, whose pause column is their longest gap "
           "between acknowledgements. Writes acknowledged per second: %.0f steady, %.0f during "
           "graceful stops, %.0f during kill -9 stops.\n\n",
           per_second(steady), per_second(&ways[WAY_GRACEFUL]), per_second(&ways[WAY_KILL9]));

    double ratio[1000 * NWORKERS];
    char cell[64] = "-", cell2[64] = "-";
    int nr = pair_ratios(ev, nev, rounds, f_pause, ratio);
    if (nr)
        sx_bench_fmt_median_range(ratio, nr, 2, cell, sizeof(cell));
    int nr2 = pair_ratios(ev, nev, rounds, f_maxlat, ratio);
    if (nr2)
        sx_bench_fmt_median_range(ratio, nr2, 2, cell2, sizeof(cell2));
    printf("| graceful / kill -9, per pair of stops (same round, same worker) | median (min - "
           "max) |\n| --- | ---: |\n");
    printf("| **write pause** (%d pairs) | **%s** |\n", nr, cell);
    printf("| slowest write (%d pairs) | %s |\n", nr2, cell2);
    for (int w = 0; w < NWAYS; w++) {
        double rr[1000];
        int n = 0;
        for (int r = 0; r < rounds; r++) {
            double sum = 0;
            for (int e = 0; e < nev; e++)
                if (ev[e].round == r && ev[e].how == (way)w)
                    sum += (double)(ev[e].t_settled - ev[e].t_sig) / 1e9;
            if (sum > 0)
                rr[n++] = sum;
        }
        char c2[64] = "-";
        if (n)
            sx_bench_fmt_median_range(rr, n, 1, c2, sizeof(c2));
        printf("| whole rolling restart of %d workers, %s: s from each signal to settled, summed "
               "(the steady windows left out; %d rounds) | %s |\n",
               NWORKERS, way_name((way)w), n, c2);
    }

    printf("\nEvery stop (UTC times, to read beside the daemons' logs; *led*: log partitions "
           "the worker led just before its signal; the pause runs between the two "
           "acknowledgements around it):\n\n");
    printf("| round | stop | worker | led | signal | stop took ms | handed over | dead in map ms "
           "| in every ISR ms | settled ms | write pause ms | pause from - to | after restart ms "
           "| slowest write ms | steady gap ms | acked | failed | retried |\n");
    printf("| ---: | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: "
           "| ---: | ---: | ---: | ---: | ---: |\n");
    for (int e = 0; e < nev; e++) {
        const stop_ev *s = &ev[e];
        char sig[16], a[16], b[16];
        utc(s->t_sig, sig, sizeof(sig));
        utc(s->pause_from, a, sizeof(a));
        utc(s->pause_to, b, sizeof(b));
        printf("| %d | %s | %u | %u | %s | %.0f | %s | %.0f | %.0f | %.0f | %.0f | %s - %s | %.0f "
               "| %.0f | %.0f | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n",
               s->round + 1, way_name(s->how), s->worker, s->led, sig, ms(s->t_exit - s->t_sig),
               s->how == WAY_KILL9 ? "-"
               : s->handed_over    ? "yes"
                                   : "**no**",
               ms(s->t_dead - s->t_sig), ms(s->t_isr - s->t_sig), ms(s->t_settled - s->t_sig),
               ms(s->pause_ns), a, b, ms(s->rejoin_ns), ms(s->max_lat_ns), ms(s->steady_ns),
               s->acked, s->failed, s->retried);
    }
}

/* Every failed write kept (FAIL_LOG per writer), with the stop it fell in. */
static void print_failures(const load *L, const stop_ev *ev, int nev)
{
    size_t total = 0;
    for (int i = 0; i < L->nwriters; i++)
        total += L->w[i].nfail;
    if (!total)
        return;
    printf("\nFailed writes (%zu; at most %d per writer listed):\n\n", total, FAIL_LOG);
    for (int i = 0; i < L->nwriters; i++) {
        const writer *w = &L->w[i];
        for (size_t j = 0; j < w->nfail && j < FAIL_LOG; j++) {
            const fail_log *f = &w->fails[j];
            char at[16], sig[16] = "";
            utc(f->done_ns, at, sizeof(at));
            const stop_ev *in = NULL;
            for (int e = 0; e < nev && !in; e++)
                if (f->done_ns >= ev[e].t_sig && f->done_ns <= ev[e].t_settled)
                    in = &ev[e];
            if (in)
                utc(in->t_sig, sig, sizeof(sig));
            char where[128] = "outside every stop";
            if (in)
                snprintf(where, sizeof(where), "round %d, %s of worker %u signalled at %s",
                         in->round + 1, way_name(in->how), in->worker, sig);
            printf("- %s UTC, `%s` via worker %u (%s): %s: `%s`\n", at, f->id, f->via, where,
                   sx_status_name(f->st), f->msg);
        }
    }
}

/* ============================================================= main ===== */

typedef struct opts {
    uint32_t rounds;
    uint32_t writers;
    const char *steady; /* decimal seconds */
} opts;

#define OFF(m, t) SX_FLAG_OFFSET(opts, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds, each a rolling restart of every worker once gracefully and once with "
             "kill -9 (the order alternates)",
     .min = 1,
     .max = 1000},
    {.name = "writers",
     .type = SX_FLAG_UINT32,
     .offset = OFF(writers, uint32_t),
     .help = "writer threads, each with one single-document Put in flight (closed loop)",
     .min = 1,
     .max = MAX_WRITERS},
    {.name = "steady",
     .type = SX_FLAG_STRING,
     .offset = OFF(steady, const char *),
     .metavar = "S",
     .help = "seconds of undisturbed load before each stop (the steady baseline; above 0)"},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_restart",
    .synopsis = "[FLAGS]",
    .description =
        "The write pause a rolling restart of every worker causes: a coordinator and 3 workers "
        "(P=8, R=3, min_isr 2, the coordinator's default lease of 2000 ms) under closed-loop "
        "single-document Puts through libshardex that avoid the worker being restarted; each "
        "worker in turn is stopped (SIGTERM, which hands its roles over, or kill -9, after which "
        "they move when its lease runs out), started again on its data and waited for until it "
        "is back in every ISR. Both ways alternate in the same run. Reports per way the longest "
        "time with no write acknowledged, write latency, failed writes, retries and how long "
        "each stop took, and the ratio graceful / kill -9 of the pause. Every acknowledged "
        "write is read back at the end: one missing fails the run (exit 1). Markdown on stdout "
        "(bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const opts defaults = {.rounds = 3, .writers = 4, .steady = "1"};
    opts o = defaults;
    sx_bench_flags(&spec, &o, &defaults, argc, argv);
    int rounds = (int)o.rounds;
    double steady_s = sx_bench_seconds(&spec, "steady", o.steady, false);
    sx_bench_process_init("bench_restart", on_signal);
    g_wall_minus_mono_ms = (int64_t)sx_clock_wall_ms() - (int64_t)sx_clock_now_ms();
    fprintf(stderr,
            "bench_restart: %d rounds of a rolling restart of %d workers each way, %u writers, "
            "%.1f s steady before each stop\n",
            rounds, NWORKERS, o.writers, steady_s);

    sx_cluster *c = sx_calloc(1, sizeof(*c));
    sx_cluster_opts co = {.workers = NWORKERS,
                          .partitions = PARTITIONS,
                          .replication = REPLICATION,
                          .min_isr = MIN_ISR,
                          .lease_ms = LEASE_MS};
    if (!sx_bench_cluster_start(c, &co, SETTLE_MS, "bench_restart", "P=8 R=3", "P=8 R=3")) {
        sx_cluster_kill_all(c);
        sx_cluster_stop(c);
        return 1;
    }
    load *L = sx_calloc(1, sizeof(*L));
    load_start(L, c, (int)o.writers);
    sx_clock_sleep_ms(WARMUP_MS);

    int nev_max = rounds * NWAYS * NWORKERS, nev = 0;
    stop_ev *ev = sx_calloc((size_t)nev_max, sizeof(*ev));
    bool ok = true;
    for (int r = 0; ok && r < rounds && !g_stop; r++) {
        for (int k = 0; ok && k < NWAYS && !g_stop; k++) {
            way how = (way)((r % 2 == 0) ? k : NWAYS - 1 - k);
            for (uint32_t v = 0; ok && v < NWORKERS && !g_stop; v++) {
                stop_ev *e = &ev[nev];
                e->round = r;
                ok = stop_and_restart(L, v, how, steady_s, e);
                if (e->ok)
                    nev++;
            }
        }
    }
    load_stop(L);

    /* ---- the checks ---- */
    char why[512] = "";
    bool agree = ok && !g_stop && sx_check_replicas(c, SETTLE_MS, why, sizeof(why));
    if (ok && !g_stop && !agree)
        fprintf(stderr, "bench_restart: replicas do not agree: %s\n", why);
    uint64_t checked = 0, missing = 0;
    char first_missing[320] = "";
    uint64_t t_rb = sx_clock_now_ms();
    if (ok && !g_stop)
        missing = read_back(L, c, &checked, first_missing, sizeof(first_missing));
    fprintf(stderr,
            "bench_restart: read back %" PRIu64 " acknowledged documents in %.1f s, %" PRIu64
            " missing or wrong%s%s\n",
            checked, (double)(sx_clock_now_ms() - t_rb) / 1e3, missing, missing ? ": first " : "",
            first_missing);

    /* ---- the figures ---- */
    size_t nacks = 0;
    uint64_t *acks = ack_times(L, &nacks);
    for (int e = 0; e < nev; e++) {
        stop_ev *s = &ev[e];
        s->pause_ns = longest_gap(acks, nacks, s->t_sig, s->t_settled, s->t_started, false,
                                  &s->pause_from, &s->pause_to, &s->rejoin_ns);
        s->steady_ns =
            longest_gap(acks, nacks, s->t_steady, s->t_sig, UINT64_MAX, true, NULL, NULL, NULL);
    }
    free(acks);
    way_sum *ways = sx_calloc(NWAYS, sizeof(*ways));
    way_sum *steady = sx_calloc(1, sizeof(*steady));
    uint64_t elsewhere_failed = 0;
    attribute(L, ev, nev, ways, steady, &elsewhere_failed);

    uint64_t t_stop = sx_clock_now_ms();
    load_free(L);
    sx_bench_cluster_signal(c);
    sx_cluster_stop(c);
    free(c);
    sx_rpc_wait_shutdown(2000);
    fprintf(stderr, "bench_restart: cluster stopped in %.1f s\n",
            (double)(sx_clock_now_ms() - t_stop) / 1e3);
    if (!ok || g_stop || nev == 0) {
        fprintf(stderr, "bench_restart: %s\n",
                g_stop ? "interrupted" : "a worker did not come back; no figures");
        return 1;
    }

    print_report(ev, nev, rounds, ways, steady, L->nwriters, steady_s);
    uint64_t failed =
        ways[WAY_GRACEFUL].failed + ways[WAY_KILL9].failed + steady->failed + elsewhere_failed;
    printf("\nAt the end: %" PRIu64 " acknowledged documents read back through libshardex, %" PRIu64
           " missing or wrong; replicas %s; %" PRIu64 " writes failed in all (graceful %" PRIu64
           ", kill -9 %" PRIu64 ", steady %" PRIu64 ", elsewhere %" PRIu64 ").\n",
           checked, missing, agree ? "agree (logs and documents, checker.h)" : why, failed,
           ways[WAY_GRACEFUL].failed, ways[WAY_KILL9].failed, steady->failed, elsewhere_failed);
    printf("\nNo write may fail during a graceful stop: %s.\n",
           ways[WAY_GRACEFUL].failed ? "**missed**" : "met");
    print_failures(L, ev, nev);
    /* A lost write or replicas that disagree make the figures meaningless; a
     * failed write is a finding, reported above. */
    bool fail = missing || !agree;
    if (fail)
        printf("\n**%s: the run failed.**\n",
               missing ? "an acknowledged write was lost" : "the replicas do not agree");
    free(ways);
    free(steady);
    free(ev);
    free(L);
    return fail ? 1 : 0;
}
