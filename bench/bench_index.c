/* bench_index: the two kinds of secondary index side by side on real
 * clusters (see BENCHMARKING.md and DESIGN.md, the write path steps 3-5 and
 * the read path):
 *
 *   1. lag of the GLOBAL index: the time from a Put's acknowledgement to the
 *      moment its document is visible in the term-partitioned index, under an
 *      open-loop load at half the maximum ingest rate; the baseline, in the
 *      same run and under the same load, is the same probe measuring when the
 *      document is visible in the LOCAL index (no shipping involved: a Put is
 *      acknowledged once applied by the leader, so this is the probe's floor);
 *   2. latency and throughput of equality queries, LOCAL (scatter to every log
 *      partition's leader) against GLOBAL (one term partition), on fresh
 *      clusters of P = 2, 4, 8, 16 log partitions, 1 and 8 closed-loop clients.
 *
 *   bench_index [--rounds N] [--seconds S] [--warmup S] [--partitions LIST]
 *               [--terms M] [--replication R] [--docs N] [--values N]
 *               [--lag-partitions P] [--lag-rounds N] [--lag-seconds S]
 *               [--lag-loads LIST] [--batch B] [--sample N] [--probes N]
 *               [--doc-bytes N] [--tsv DIR]  (--help: each with its default)
 *
 * Each cluster: a coordinator and 3 workers as processes on loopback ports
 * they chose (tests/support/cluster.h), --partitions P log partitions,
 * --replication R (min_isr 2 for R=3, else 1), lease 2000 ms, settled (every
 * ISR whole) before anything is written. The benchmark preloads --docs
 * documents (fields k: one of --values strings "vNNNN", u: a string unique to
 * the document, body: random text up to --doc-bytes packed) with closed-loop
 * Puts of 100, then creates the index by_k on k (LOCAL and GLOBAL, --terms
 * term partitions; 0: the cluster default, M = P) and waits until it is READY
 * (backfilled), and checks that LOCAL and GLOBAL return the same hits. Then it
 * measures the cores the cluster uses idle for 1 s (its leaders keep shipping
 * empty batches to every term partition), the level "idle" means below.
 *
 * Queries (part 2): --rounds rounds per client count; each round runs one
 * window of LOCAL and one of GLOBAL queries, in the order LOCAL, GLOBAL, then
 * GLOBAL, LOCAL in the next round (A B B A ...), each window --warmup seconds
 * of calls not counted, then --seconds timed, once the cluster is idle again
 * (within 0.1 core of its idle CPU over 200 ms, or after 1 s). The
 * load: N slots in this process, each keeping one Query (eq = a random value
 * of k, limit 100) in flight through sx_rpc_invoke_async, sent to the workers
 * round-robin (closed loop: a completion issues the slot's next query).
 *
 * Lag (part 1), on the cluster with P = --lag-partitions (after its query
 * rounds; one is started for it alone if P is not in --partitions), which
 * also gets the index by_u on u (LOCAL and GLOBAL, --terms term partitions):
 *   - the maximum ingest rate: a closed-loop burst of 8 slots, each keeping a
 *     Put of --batch documents in flight, 0.5 s warm-up and a 2 s window;
 *   - then, for each fraction of --lag-loads (default 0.5, the goal's load,
 *     then 0.1 to see what is left of the lag without the load), Puts of
 *     --batch documents sent on a fixed schedule at that fraction of the
 *     maximum (open loop: a Put leaves at its time whatever the ones before
 *     are doing, up to 2000 in flight), to the workers round-robin; under
 *     that constant load, 2 x --lag-rounds windows of --lag-seconds alternate
 *     the probe's mode, GLOBAL then LOCAL, then LOCAL then GLOBAL;
 *   - one document in --sample is a sample: when its Put is acknowledged
 *     (the completion callback, time "ack"), it is queued for one of --probes
 *     probe threads, which polls Query(by_u, eq = its u, the window's mode,
 *     no `after` tokens) synchronously, with 0.2 ms sleeps between answers,
 *     until a hit comes back (time "seen": when that answer arrived; a sample
 *     not seen within 5 s is counted missed). lag = seen - ack, an upper
 *     bound; the lower bound is when the last poll that found nothing was
 *     sent (0 if the first found it). Both are reported, and the goal is met
 *     only if the upper bound meets it.
 *
 * CPU per operation: the cluster's coordinator and workers (/proc/PID/stat,
 * 10 ms ticks) and this process (getrusage). Markdown on stdout, progress on
 * stderr. Nothing here is pinned. With --tsv DIR, the figures the plots draw
 * (latency against P, lag against load) also go to TSV files in DIR.
 */
#include "benchlib.h"
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "log.h"
#include "mem.h"
#include "rpc.h"
#include "shardex/v1/shardex.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define NWORKERS 3
#define LEASE_MS 2000
#define SETTLE_MS 60000
#define READY_MS 60000
#define PUT_TIMEOUT_MS 30000
#define QUERY_TIMEOUT_MS 10000
#define PROBE_TIMEOUT_MS 2000
#define PROBE_GIVE_UP_NS 5000000000ull /* a sample not seen by then is missed */
#define PROBE_SLEEP_NS 200000L         /* between two polls of one sample */
#define PRELOAD_BATCH 100
#define PRELOAD_SLOTS 8
#define BURST_SLOTS 8
#define BURST_WARMUP_MS 500
#define BURST_MS 2000
#define MAX_IN_FLIGHT 2000 /* open loop: Puts in flight before the sender waits */
#define MAX_PARTS 8        /* values of --partitions */
#define MAX_PROBES 32
#define MAX_LEVELS 4 /* values of --lag-loads */
#define QUERY_LIMIT 100
#define POOL_BYTES (64u * 1024u)

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_index: %s\n", what);
    exit(1);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

typedef struct params {
    int rounds;
    double seconds, warmup;
    uint32_t parts[MAX_PARTS];
    int nparts;
    uint32_t terms;
    uint32_t replication;
    uint64_t docs;
    unsigned values;
    uint32_t lag_parts;
    int lag_rounds;
    double lag_seconds;
    double levels[MAX_LEVELS]; /* offered loads, fractions of the maximum */
    int nlevels;
    size_t batch;
    unsigned sample;
    int probes;
    size_t doc_bytes;
    size_t body_len;
    const char *tsv; /* directory for the plots' data, or NULL */
} params;

/* ========================================================== documents ===== */

/* Printable bytes that snappy cannot squeeze much: bodies are slices of it. */
static char g_pool[POOL_BYTES];

static void fill_pool(void)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.";
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < POOL_BYTES; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        g_pool[i] = alphabet[(s >> 24) % (sizeof(alphabet) - 1)];
    }
}

#define ID_CAP 24
#define VAL_CAP 16
#define NFIELDS 3 /* k, u, body */

/* n documents and a PutRequest holding them; ids, k and u are rewritten per use. */
typedef struct docset {
    size_t n;
    Shardex__V1__Document *d;
    Shardex__V1__Document **dp;
    Shardex__V1__Field *f;
    Shardex__V1__Field **fp;
    Shardex__V1__Value *v;
    char (*id)[ID_CAP];
    char (*k)[VAL_CAP];
    char (*u)[ID_CAP];
    char **body;
    Shardex__V1__PutRequest req;
} docset;

static void docset_init(docset *ds, size_t n, size_t body_len)
{
    memset(ds, 0, sizeof(*ds));
    ds->n = n;
    ds->d = sx_calloc(n, sizeof(*ds->d));
    ds->dp = sx_calloc(n, sizeof(*ds->dp));
    ds->f = sx_calloc(n * NFIELDS, sizeof(*ds->f));
    ds->fp = sx_calloc(n * NFIELDS, sizeof(*ds->fp));
    ds->v = sx_calloc(n * NFIELDS, sizeof(*ds->v));
    ds->id = sx_calloc(n, sizeof(*ds->id));
    ds->k = sx_calloc(n, sizeof(*ds->k));
    ds->u = sx_calloc(n, sizeof(*ds->u));
    ds->body = sx_calloc(n, sizeof(*ds->body));
    static const char *const names[NFIELDS] = {"k", "u", "body"};
    for (size_t i = 0; i < n; i++) {
        ds->body[i] = sx_malloc(body_len + 1);
        memcpy(ds->body[i], g_pool + (i * 1031) % (POOL_BYTES - body_len), body_len);
        ds->body[i][body_len] = '\0';
        shardex__v1__document__init(&ds->d[i]);
        ds->d[i].id = ds->id[i];
        ds->d[i].n_fields = NFIELDS;
        ds->d[i].fields = &ds->fp[i * NFIELDS];
        for (size_t j = 0; j < NFIELDS; j++) {
            Shardex__V1__Field *f = &ds->f[i * NFIELDS + j];
            Shardex__V1__Value *v = &ds->v[i * NFIELDS + j];
            shardex__v1__field__init(f);
            shardex__v1__value__init(v);
            f->name = (char *)names[j];
            f->value = v;
            v->kind_case = SHARDEX__V1__VALUE__KIND_S;
            ds->fp[i * NFIELDS + j] = f;
        }
        ds->v[i * NFIELDS + 0].s = ds->k[i];
        ds->v[i * NFIELDS + 1].s = ds->u[i];
        ds->v[i * NFIELDS + 2].s = ds->body[i];
        ds->dp[i] = &ds->d[i];
    }
    shardex__v1__put_request__init(&ds->req);
    ds->req.docs = ds->dp;
    ds->req.n_docs = n;
}

/* Documents seq .. seq+n-1 of phase `who`: id "<who>NNN", k "vNNNN" (seq mod
 * values), u "<who>uNNN" (unique in the run). */
static void docset_fill(docset *ds, char who, uint64_t seq, unsigned values)
{
    for (size_t i = 0; i < ds->n; i++) {
        snprintf(ds->id[i], ID_CAP, "%c%011" PRIu64, who, seq + i);
        snprintf(ds->k[i], VAL_CAP, "v%04u", (unsigned)((seq + i) % values));
        snprintf(ds->u[i], ID_CAP, "%cu%011" PRIu64, who, seq + i);
    }
}

static void docset_free(docset *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        free(ds->body[i]);
    free(ds->d);
    free(ds->dp);
    free(ds->f);
    free(ds->fp);
    free(ds->v);
    free(ds->id);
    free(ds->k);
    free(ds->u);
    free(ds->body);
}

/* The body length that makes a packed Document doc_bytes long (or just under). */
static size_t body_len_for(size_t doc_bytes)
{
    docset ds;
    docset_init(&ds, 1, 0);
    docset_fill(&ds, 'p', 0, 1000);
    size_t fixed = protobuf_c_message_get_packed_size(&ds.d[0].base) + 3; /* + length bytes */
    docset_free(&ds);
    return doc_bytes > fixed ? doc_bytes - fixed : 0;
}

/* CPU of the cluster's worker threads by thread name (a pool's "name-N"
 * counted as "name"; unnamed threads, LevelDB's among them, show as the
 * process name), to see where a window's CPU went. */
#define MAX_TNAMES 48
typedef struct tcpu {
    int n;
    char name[MAX_TNAMES][16];
    uint64_t us[MAX_TNAMES];
} tcpu;

static void tcpu_add(tcpu *t, const char *name, uint64_t us)
{
    int i = 0;
    while (i < t->n && strcmp(t->name[i], name) != 0)
        i++;
    if (i == t->n) {
        if (t->n == MAX_TNAMES)
            return;
        snprintf(t->name[t->n++], sizeof(t->name[0]), "%s", name);
    }
    t->us[i] += us;
}

static void tcpu_read(const sx_cluster *c, tcpu *t)
{
    memset(t, 0, sizeof(*t));
    long tck = sysconf(_SC_CLK_TCK);
    for (uint32_t w = 0; w < c->nworkers; w++) {
        if (c->worker_pid[w] <= 0)
            continue;
        char dir[64];
        snprintf(dir, sizeof(dir), "/proc/%d/task", (int)c->worker_pid[w]);
        DIR *d = opendir(dir);
        if (!d)
            continue;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            char path[128], buf[1024];
            snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            size_t len = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[len] = '\0';
            char *open = strchr(buf, '('), *close = strrchr(buf, ')');
            if (!open || !close || close < open)
                continue;
            char name[16];
            size_t nl = (size_t)(close - open - 1) < sizeof(name) - 1 ? (size_t)(close - open - 1)
                                                                      : sizeof(name) - 1;
            memcpy(name, open + 1, nl);
            name[nl] = '\0';
            char *dash = strrchr(name, '-');
            if (dash && dash[1] && strspn(dash + 1, "0123456789") == strlen(dash + 1))
                *dash = '\0';
            /* Fields after the name start at 3 (state); utime is 14, stime 15. */
            unsigned long long ut = 0, st = 0;
            if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                       &st) == 2)
                tcpu_add(t, name, (uint64_t)((ut + st) * 1000000ull / (unsigned long long)tck));
        }
        closedir(d);
    }
}

/* into += b - a, by name. */
static void tcpu_diff_add(tcpu *into, const tcpu *a, const tcpu *b)
{
    for (int i = 0; i < b->n; i++) {
        uint64_t before = 0;
        for (int k = 0; k < a->n; k++)
            if (strcmp(a->name[k], b->name[i]) == 0)
                before = a->us[k];
        tcpu_add(into, b->name[i], b->us[i] > before ? b->us[i] - before : 0);
    }
}

/* Waits (at most max_ms) until this process and the cluster together use less
 * than idle_cores + a tenth of a core over 200 ms (an idle cluster with global
 * indexes is not at 0: its leaders ship empty batches). Returns the wait in ms. */
static uint64_t quiesce(const sx_cluster *c, uint64_t max_ms, double idle_cores)
{
    uint64_t t0 = sx_clock_now_ms();
    while (sx_clock_now_ms() - t0 < max_ms) {
        uint64_t a = sx_clock_cpu_us() + sx_bench_cluster_cpu_us(c);
        sx_clock_sleep_ms(200);
        uint64_t z = sx_clock_cpu_us() + sx_bench_cluster_cpu_us(c);
        if ((double)(z - a) < 200 * 1000 * (idle_cores + 0.1))
            break;
    }
    return sx_clock_now_ms() - t0;
}

/* Cores the cluster uses over 1 s with no client load. */
static double idle_cores(const sx_cluster *c)
{
    uint64_t a = sx_bench_cluster_cpu_us(c), t0 = sx_clock_now_us();
    sx_clock_sleep_ms(1000);
    return (double)(sx_bench_cluster_cpu_us(c) - a) / (double)(sx_clock_now_us() - t0);
}

/* ================================================ closed-loop Puts ===== */

typedef struct putload putload;

typedef struct pslot {
    putload *L;
    docset ds;
    uint64_t t0;
} pslot;

struct putload {
    sx_cluster *c;
    sx_rpc_client *rpc;
    char who;
    unsigned values;
    size_t batch;
    uint64_t limit; /* documents to write in all (UINT64_MAX: until stopped) */
    int nslots;
    pslot *slots;
    atomic_int phase;
    atomic_int outstanding;
    atomic_uint next_worker;
    atomic_uint_fast64_t next_seq;
    atomic_uint_fast64_t docs;   /* acknowledged while measuring */
    atomic_uint_fast64_t errors; /* failed Puts */
};

static void pslot_issue(pslot *s);

static void put_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    pslot *s = arg;
    putload *L = s->L;
    const Shardex__V1__PutResponse *pr = (const void *)resp;
    bool ok = st == SX_OK && pr && pr->n_tokens == L->batch;
    if (!ok && atomic_fetch_add(&L->errors, 1) < 5)
        fprintf(stderr, "bench_index: Put failed: %s\n",
                st == SX_OK ? "wrong number of tokens" : err->msg);
    sx_rpc_free(resp);
    if (ok && atomic_load(&L->phase) == SX_BENCH_MEASURE)
        atomic_fetch_add(&L->docs, L->batch);
    if (atomic_load(&L->phase) == SX_BENCH_STOP) {
        atomic_fetch_sub(&L->outstanding, 1);
        return;
    }
    if (!ok)
        sx_clock_sleep_ms(20);
    pslot_issue(s);
}

static void pslot_issue(pslot *s)
{
    putload *L = s->L;
    uint64_t seq = atomic_fetch_add(&L->next_seq, L->batch);
    if (seq >= L->limit || g_stop) {
        atomic_fetch_sub(&L->outstanding, 1);
        return;
    }
    docset_fill(&s->ds, L->who, seq, L->values);
    unsigned w = atomic_fetch_add(&L->next_worker, 1) % L->c->nworkers;
    sx_rpc_call_opts o = {.timeout_ms = PUT_TIMEOUT_MS};
    s->t0 = sx_clock_now_ns();
    sx_rpc_invoke_async(L->rpc, L->c->worker_addr[w], SHARDEX_SVC, "Put", &s->ds.req.base, &o,
                        put_done, s);
}

/* Runs nslots closed-loop Put slots of batch documents. With limit set, until
 * that many documents are written (all counted); else warmup_ms uncounted,
 * then window_ms counted. Returns the documents acknowledged in the count. */
static uint64_t run_puts(sx_cluster *c, sx_rpc_client *rpc, const params *p, char who, size_t batch,
                         int nslots, uint64_t limit, uint64_t warmup_ms, uint64_t window_ms,
                         uint64_t *t_ns, uint64_t *errors)
{
    putload *L = sx_calloc(1, sizeof(*L));
    L->c = c;
    L->rpc = rpc;
    L->who = who;
    L->values = p->values;
    L->batch = batch;
    L->limit = limit;
    L->nslots = nslots;
    L->slots = sx_calloc((size_t)nslots, sizeof(*L->slots));
    for (int i = 0; i < nslots; i++) {
        L->slots[i].L = L;
        docset_init(&L->slots[i].ds, batch, p->body_len);
    }
    atomic_store(&L->phase, limit != UINT64_MAX ? SX_BENCH_MEASURE : SX_BENCH_WARMUP);
    atomic_store(&L->outstanding, nslots);
    uint64_t t0 = sx_clock_now_ns();
    for (int i = 0; i < nslots; i++)
        pslot_issue(&L->slots[i]);
    if (limit == UINT64_MAX) {
        sx_clock_sleep_ms(warmup_ms);
        t0 = sx_clock_now_ns();
        atomic_store(&L->phase, SX_BENCH_MEASURE);
        sx_clock_sleep_ms(window_ms);
        atomic_store(&L->phase, SX_BENCH_STOP);
    }
    uint64_t t1 = sx_clock_now_ns();
    uint64_t docs = atomic_load(&L->docs);
    while (atomic_load(&L->outstanding) > 0)
        sx_clock_sleep_ms(1);
    if (limit != UINT64_MAX) {
        t1 = sx_clock_now_ns();
        docs = atomic_load(&L->docs);
    }
    *t_ns = t1 - t0;
    *errors = atomic_load(&L->errors);
    for (int i = 0; i < nslots; i++)
        docset_free(&L->slots[i].ds);
    free(L->slots);
    free(L);
    return docs;
}

/* ============================================== closed-loop queries ===== */

enum { M_LOCAL, M_GLOBAL, NMODES };

static Shardex__V1__Mode mode_proto(int m)
{
    return m == M_LOCAL ? SHARDEX__V1__MODE__MODE_LOCAL : SHARDEX__V1__MODE__MODE_GLOBAL;
}

static const char *mode_name(int m)
{
    return m == M_LOCAL ? "LOCAL" : "GLOBAL";
}

typedef struct qload qload;

typedef struct qslot {
    qload *L;
    uint64_t rng;
    uint64_t t0;
    char val[VAL_CAP];
    Shardex__V1__Value v;
    Shardex__V1__QueryRequest req;
} qslot;

struct qload {
    sx_cluster *c;
    sx_rpc_client *rpc;
    unsigned values;
    int mode;
    int nslots;
    qslot *slots;
    atomic_int phase;
    atomic_int outstanding;
    atomic_uint next_worker;
    atomic_uint_fast64_t done, errors, hits, wrong_mode;
    atomic_uint contacted; /* partitions_contacted of the last answer */
    pthread_mutex_t mu;    /* h */
    sx_bench_hist *h;
};

static void qslot_issue(qslot *s);

static void query_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    qslot *s = arg;
    qload *L = s->L;
    uint64_t t1 = sx_clock_now_ns();
    const Shardex__V1__QueryResponse *qr = (const void *)resp;
    bool ok = st == SX_OK && qr;
    if (!ok && atomic_fetch_add(&L->errors, 1) < 5)
        fprintf(stderr, "bench_index: %s Query failed: %s\n", mode_name(L->mode), err->msg);
    if (ok && atomic_load_explicit(&L->phase, memory_order_relaxed) == SX_BENCH_MEASURE) {
        pthread_mutex_lock(&L->mu);
        sx_bench_hist_add(L->h, t1 - s->t0);
        pthread_mutex_unlock(&L->mu);
        atomic_fetch_add_explicit(&L->done, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&L->hits, qr->n_hits, memory_order_relaxed);
        if (qr->mode != mode_proto(L->mode))
            atomic_fetch_add(&L->wrong_mode, 1);
        atomic_store_explicit(&L->contacted, qr->partitions_contacted, memory_order_relaxed);
    }
    sx_rpc_free(resp);
    if (atomic_load_explicit(&L->phase, memory_order_relaxed) == SX_BENCH_STOP) {
        atomic_fetch_sub(&L->outstanding, 1);
        return;
    }
    if (!ok)
        sx_clock_sleep_ms(20);
    qslot_issue(s);
}

static void qslot_issue(qslot *s)
{
    qload *L = s->L;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    snprintf(s->val, sizeof(s->val), "v%04u", (unsigned)(s->rng % L->values));
    unsigned w = atomic_fetch_add(&L->next_worker, 1) % L->c->nworkers;
    sx_rpc_call_opts o = {.timeout_ms = QUERY_TIMEOUT_MS};
    s->t0 = sx_clock_now_ns();
    sx_rpc_invoke_async(L->rpc, L->c->worker_addr[w], SHARDEX_SVC, "Query", &s->req.base, &o,
                        query_done, s);
}

/* One window of queries. */
typedef struct qresult {
    uint64_t done, errors, hits, wrong_mode;
    unsigned contacted;
    uint64_t t_ns, self_us, clu_us;
    sx_bench_hist h;
} qresult;

static void run_queries(sx_cluster *c, sx_rpc_client *rpc, const params *p, int mode, int nslots,
                        uint64_t seed, qresult *res)
{
    qload *L = sx_calloc(1, sizeof(*L));
    L->c = c;
    L->rpc = rpc;
    L->values = p->values;
    L->mode = mode;
    L->nslots = nslots;
    L->slots = sx_calloc((size_t)nslots, sizeof(*L->slots));
    L->h = &res->h;
    pthread_mutex_init(&L->mu, NULL);
    for (int i = 0; i < nslots; i++) {
        qslot *s = &L->slots[i];
        s->L = L;
        s->rng = 0x9e3779b97f4a7c15ull * (seed * 64 + (uint64_t)i + 1);
        shardex__v1__value__init(&s->v);
        s->v.kind_case = SHARDEX__V1__VALUE__KIND_S;
        s->v.s = s->val;
        shardex__v1__query_request__init(&s->req);
        s->req.index = "by_k";
        s->req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        s->req.eq = &s->v;
        s->req.mode = mode_proto(mode);
        s->req.limit = QUERY_LIMIT;
    }
    atomic_store(&L->phase, SX_BENCH_WARMUP);
    atomic_store(&L->outstanding, nslots);
    for (int i = 0; i < nslots; i++)
        qslot_issue(&L->slots[i]);
    sx_clock_sleep_ms((uint64_t)(p->warmup * 1000));
    uint64_t t0 = sx_clock_now_ns(), s0 = sx_clock_cpu_us(), k0 = sx_bench_cluster_cpu_us(c);
    atomic_store(&L->phase, SX_BENCH_MEASURE);
    sx_clock_sleep_ms((uint64_t)(p->seconds * 1000));
    atomic_store(&L->phase, SX_BENCH_STOP);
    uint64_t t1 = sx_clock_now_ns(), s1 = sx_clock_cpu_us(), k1 = sx_bench_cluster_cpu_us(c);
    while (atomic_load(&L->outstanding) > 0)
        sx_clock_sleep_ms(1);
    res->done = atomic_load(&L->done);
    res->errors = atomic_load(&L->errors);
    res->hits = atomic_load(&L->hits);
    res->wrong_mode = atomic_load(&L->wrong_mode);
    res->contacted = atomic_load(&L->contacted);
    res->t_ns = t1 - t0;
    res->self_us = s1 - s0;
    res->clu_us = k1 - k0;
    pthread_mutex_destroy(&L->mu);
    free(L->slots);
    free(L);
}

/* ======================================================= lag probes ===== */

typedef struct sample {
    char u[ID_CAP];
    uint64_t ack_ns;
    int mode;
    int window;
} sample;

#define MAX_WINDOWS 64
#define LAG_BUCKETS 8
static const double lag_edges_ms[LAG_BUCKETS - 1] = {1, 2, 3, 4, 5, 10, 50};

typedef struct lagwin {
    int mode;
    sx_bench_hist h; /* lag, ns */
    uint64_t missed;
} lagwin;

typedef struct lagrun {
    sx_cluster *c;
    sx_rpc_client *rpc;
    const params *p;
    double puts_per_s;
    unsigned sample; /* one document in this many is probed */
    /* sender */
    pthread_t sender;
    atomic_bool stop_sender;
    atomic_int in_flight;
    atomic_uint next_worker;
    atomic_int wm; /* open window << 1 | its mode; -1 between windows */
    atomic_uint_fast64_t sent, acked_docs, put_errors, throttled;
    /* probes */
    pthread_t probe[MAX_PROBES];
    atomic_uint next_probe_worker;
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    sample *q;
    size_t qcap, qhead, qlen;
    int busy; /* samples being probed */
    bool closing;
    lagwin win[MAX_WINDOWS];
    sx_bench_hist mode_h[NMODES];  /* lag over all windows of a mode, ns */
    sx_bench_hist lo_h[NMODES];    /* its lower bound: the last poll that missed, sent */
    sx_bench_hist rtt_h[NMODES];   /* one poll's round trip, ns */
    sx_bench_hist delay_h[NMODES]; /* ack -> first poll sent, ns */
    sx_bench_hist stale_h;         /* staleness_ms of GLOBAL answers, as ns */
    sx_bench_hist put_h;           /* Put latency (send -> ack) in windows, ns */
    uint64_t polls[NMODES], probe_errors[NMODES], buckets[NMODES][LAG_BUCKETS];
    uint64_t probe_calls; /* every poll, windows or not */
} lagrun;

/* One Put of the open loop. */
typedef struct putctx {
    lagrun *R;
    uint64_t t_send;
    int nsamples;
    char u[]; /* nsamples strings of ID_CAP */
} putctx;

static void lag_put_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    putctx *x = arg;
    lagrun *R = x->R;
    uint64_t t_ack = sx_clock_now_ns();
    const Shardex__V1__PutResponse *pr = (const void *)resp;
    bool ok = st == SX_OK && pr && pr->n_tokens == R->p->batch;
    sx_rpc_free(resp);
    if (!ok && atomic_fetch_add(&R->put_errors, 1) < 5)
        fprintf(stderr, "bench_index: Put failed: %s\n",
                st == SX_OK ? "wrong number of tokens" : err->msg);
    int wm = atomic_load(&R->wm);
    if (ok && wm >= 0) {
        int w = wm >> 1, mode = wm & 1;
        atomic_fetch_add(&R->acked_docs, R->p->batch);
        pthread_mutex_lock(&R->mu);
        sx_bench_hist_add(&R->put_h, t_ack - x->t_send);
        for (int i = 0; i < x->nsamples && R->qlen < R->qcap; i++) {
            sample *s = &R->q[(R->qhead + R->qlen++) % R->qcap];
            memcpy(s->u, x->u + (size_t)i * ID_CAP, ID_CAP);
            s->ack_ns = t_ack;
            s->mode = mode;
            s->window = w;
        }
        pthread_cond_broadcast(&R->cv);
        pthread_mutex_unlock(&R->mu);
    }
    free(x);
    atomic_fetch_sub(&R->in_flight, 1);
}

/* Sends Puts of batch documents at puts_per_s on a fixed schedule until told
 * to stop; a Put late on its schedule leaves at once (no skipping). */
static void *sender_main(void *arg)
{
    lagrun *R = arg;
    const params *p = R->p;
    docset ds;
    docset_init(&ds, p->batch, p->body_len);
    uint64_t interval = (uint64_t)(1e9 / R->puts_per_s);
    uint64_t next = sx_clock_now_ns(), seq = 0;
    size_t max_samples = p->batch / R->sample + 1;
    while (!atomic_load(&R->stop_sender) && !g_stop) {
        uint64_t now = sx_clock_now_ns();
        if (now < next) {
            sleep_ns(next - now);
            continue;
        }
        if (atomic_load(&R->in_flight) >= MAX_IN_FLIGHT) {
            atomic_fetch_add(&R->throttled, 1);
            sleep_ns(100000);
            continue;
        }
        docset_fill(&ds, 'l', seq, p->values);
        putctx *x = sx_calloc(1, sizeof(*x) + max_samples * ID_CAP);
        x->R = R;
        for (size_t i = 0; i < p->batch; i++)
            if ((seq + i) % R->sample == 0 && (size_t)x->nsamples < max_samples)
                memcpy(x->u + (size_t)x->nsamples++ * ID_CAP, ds.u[i], ID_CAP);
        seq += p->batch;
        unsigned w = atomic_fetch_add(&R->next_worker, 1) % R->c->nworkers;
        sx_rpc_call_opts o = {.timeout_ms = PUT_TIMEOUT_MS};
        atomic_fetch_add(&R->in_flight, 1);
        atomic_fetch_add(&R->sent, 1);
        x->t_send = sx_clock_now_ns();
        sx_rpc_invoke_async(R->rpc, R->c->worker_addr[w], SHARDEX_SVC, "Put", &ds.req.base, &o,
                            lag_put_done, x);
        next += interval;
    }
    docset_free(&ds);
    return NULL;
}

static void *probe_main(void *arg)
{
    lagrun *R = arg;
    for (;;) {
        pthread_mutex_lock(&R->mu);
        while (!R->qlen && !R->closing)
            pthread_cond_wait(&R->cv, &R->mu);
        if (!R->qlen) {
            pthread_mutex_unlock(&R->mu);
            return NULL;
        }
        sample s = R->q[R->qhead];
        R->qhead = (R->qhead + 1) % R->qcap;
        R->qlen--;
        R->busy++;
        pthread_mutex_unlock(&R->mu);

        Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
        v.kind_case = SHARDEX__V1__VALUE__KIND_S;
        v.s = s.u;
        Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
        req.index = "by_u";
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        req.eq = &v;
        req.mode = mode_proto(s.mode);
        req.limit = 1;
        unsigned w = atomic_fetch_add(&R->next_probe_worker, 1) % R->c->nworkers;
        sx_rpc_call_opts o = {.timeout_ms = PROBE_TIMEOUT_MS};
        uint64_t first = sx_clock_now_ns(), seen = 0, polls = 0, errors = 0, stale_ms = 0;
        uint64_t missed_at = s.ack_ns; /* when the last poll that saw nothing was sent */
        bool stale_known = false;
        sx_bench_hist rtt = {0};
        for (;;) {
            ProtobufCMessage *resp = NULL;
            sx_err err = {0};
            uint64_t t0 = sx_clock_now_ns();
            sx_status st = sx_rpc_invoke(R->rpc, R->c->worker_addr[w], SHARDEX_SVC, "Query",
                                         &req.base, &resp, &o, &err);
            uint64_t t1 = sx_clock_now_ns();
            polls++;
            sx_bench_hist_add(&rtt, t1 - t0);
            if (st == SX_OK) {
                const Shardex__V1__QueryResponse *qr = (const void *)resp;
                if (qr->n_hits > 0)
                    seen = t1;
                else
                    missed_at = t0;
                if (s.mode == M_GLOBAL) {
                    stale_ms = qr->staleness_ms;
                    stale_known = true;
                }
            } else {
                errors++;
            }
            sx_rpc_free(resp);
            if (seen || t1 - s.ack_ns > PROBE_GIVE_UP_NS || g_stop)
                break;
            sleep_ns(PROBE_SLEEP_NS);
        }

        pthread_mutex_lock(&R->mu);
        lagwin *lw = &R->win[s.window];
        R->polls[s.mode] += polls;
        R->probe_calls += polls;
        R->probe_errors[s.mode] += errors;
        sx_bench_hist_merge(&R->rtt_h[s.mode], &rtt);
        sx_bench_hist_add(&R->delay_h[s.mode], first - s.ack_ns);
        if (stale_known)
            sx_bench_hist_add(&R->stale_h, stale_ms * 1000000ull);
        if (seen) {
            uint64_t lag = seen - s.ack_ns;
            sx_bench_hist_add(&lw->h, lag);
            sx_bench_hist_add(&R->mode_h[s.mode], lag);
            sx_bench_hist_add(&R->lo_h[s.mode], missed_at - s.ack_ns);
            int b = 0;
            while (b < LAG_BUCKETS - 1 && (double)lag / 1e6 >= lag_edges_ms[b])
                b++;
            R->buckets[s.mode][b]++;
        } else {
            lw->missed++;
        }
        R->busy--;
        pthread_cond_broadcast(&R->cv);
        pthread_mutex_unlock(&R->mu);
    }
}

/* ======================================================= the cluster ===== */

static void stop_cluster(sx_cluster *c)
{
    sx_bench_cluster_signal(c);
    if (c->dir[0])
        sx_cluster_stop(c);
}

static bool start_cluster(sx_cluster *c, uint32_t P, uint32_t replication)
{
    sx_cluster_opts o = {.workers = NWORKERS,
                         .partitions = P,
                         .replication = replication,
                         .min_isr = replication >= 3 ? 2 : 1,
                         .lease_ms = LEASE_MS};
    char label[32], up_label[48];
    snprintf(label, sizeof(label), "P=%u", P);
    snprintf(up_label, sizeof(up_label), "P=%u R=%u", P, replication);
    return sx_bench_cluster_start(c, &o, SETTLE_MS, "bench_index", label, up_label);
}

static bool create_index(sx_cluster *c, sx_rpc_client *rpc, const char *name, const char *field,
                         uint32_t terms)
{
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = (char *)name;
    spec.field = (char *)field;
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = true;
    spec.global = true;
    spec.term_partitions = terms;
    Shardex__V1__CreateIndexRequest req = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    req.spec = &spec;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    if (sx_rpc_invoke(rpc, c->worker_addr[0], SHARDEX_SVC, "CreateIndex", &req.base, &resp, &o,
                      &err) != SX_OK) {
        fprintf(stderr, "bench_index: CreateIndex %s: %s\n", name, err.msg);
        return false;
    }
    sx_rpc_free(resp);
    return true;
}

/* Waits until every index is READY. */
static bool wait_ready(sx_cluster *c, sx_rpc_client *rpc, size_t want)
{
    uint64_t t0 = sx_clock_now_ms();
    while (sx_clock_now_ms() - t0 < READY_MS && !g_stop) {
        Shardex__V1__ListIndexesRequest req = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
        sx_rpc_call_opts o = {.timeout_ms = 5000};
        ProtobufCMessage *resp = NULL;
        sx_err err = {0};
        size_t ready = 0;
        if (sx_rpc_invoke(rpc, c->worker_addr[1], SHARDEX_SVC, "ListIndexes", &req.base, &resp, &o,
                          &err) == SX_OK) {
            const Shardex__V1__ListIndexesResponse *lr = (const void *)resp;
            for (size_t i = 0; i < lr->n_indexes; i++)
                ready += lr->indexes[i]->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        }
        sx_rpc_free(resp);
        if (ready >= want) {
            fprintf(stderr, "bench_index: %zu index(es) READY after %.1f s\n", want,
                    (double)(sx_clock_now_ms() - t0) / 1e3);
            return true;
        }
        sx_clock_sleep_ms(100);
    }
    fprintf(stderr, "bench_index: the indexes did not become READY\n");
    return false;
}

/* Hits of Query(by_k, eq = value, mode), every page; -1 on error. */
static long count_hits(sx_cluster *c, sx_rpc_client *rpc, const char *value, int mode)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_S;
    v.s = (char *)value;
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    req.index = "by_k";
    req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    req.eq = &v;
    req.mode = mode_proto(mode);
    req.limit = 10000;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    if (sx_rpc_invoke(rpc, c->worker_addr[2], SHARDEX_SVC, "Query", &req.base, &resp, &o, &err) !=
        SX_OK) {
        fprintf(stderr, "bench_index: check query: %s\n", err.msg);
        return -1;
    }
    long n = (long)((const Shardex__V1__QueryResponse *)resp)->n_hits;
    sx_rpc_free(resp);
    return n;
}

/* "a/b/c": partitions led by each test worker. */
static void leaders_per_worker(sx_cluster *c, char *out, size_t cap)
{
    snprintf(out, cap, "?");
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return;
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < c->nworkers && len < cap; i++) {
        int32_t w = sx_cluster_index_of(m, c, i);
        unsigned led = 0;
        for (size_t k = 0; k < m->n_partitions; k++)
            led += w >= 0 && m->partitions[k]->leader == w;
        len += (size_t)snprintf(out + len, cap - len, "%s%u", i ? "/" : "", led);
    }
    sx_rpc_free(&m->base);
}

/* ====================================================== the results ===== */

/* Part 2, per P: [clients index][mode]. */
#define NCLIENTS 2
static const int client_counts[NCLIENTS] = {1, 8};

typedef struct qstats {
    double *qps, *self, *clu, *p50, *p99; /* per round */
    sx_bench_hist h;
    uint64_t done, errors, hits, wrong_mode;
    unsigned contacted;
} qstats;

typedef struct pres {
    uint32_t P;
    bool ran;
    char led[64];
    double idle; /* cluster cores with no load, indexes READY */
    qstats q[NCLIENTS][NMODES];
    int rounds;
} pres;

/* Part 1: one offered load. */
typedef struct laglevel {
    double frac, offered, achieved;
    unsigned sample; /* one document in this many probed */
    double clu_us_per_doc, self_us_per_doc, probe_qps;
    int windows;
    lagrun *R;
    tcpu threads; /* worker CPU by thread name over the windows */
    uint64_t win_ns;
} laglevel;

typedef struct lagres {
    bool ran;
    uint32_t P;
    char led[64];
    double idle;
    double max_rate;
    uint64_t burst_errors;
    int nlevels;
    laglevel lv[MAX_LEVELS];
} lagres;

/* Measures part 2 on cluster c (index by_k READY) into r. */
static void query_rounds(sx_cluster *c, sx_rpc_client *rpc, const params *p, pres *r)
{
    qresult *res = sx_malloc(sizeof(*res));
    for (int ci = 0; ci < NCLIENTS && !g_stop; ci++) {
        for (int m = 0; m < NMODES; m++) {
            qstats *q = &r->q[ci][m];
            q->qps = sx_calloc((size_t)p->rounds, sizeof(double));
            q->self = sx_calloc((size_t)p->rounds, sizeof(double));
            q->clu = sx_calloc((size_t)p->rounds, sizeof(double));
            q->p50 = sx_calloc((size_t)p->rounds, sizeof(double));
            q->p99 = sx_calloc((size_t)p->rounds, sizeof(double));
        }
        int done_rounds = 0;
        for (int round = 0; round < p->rounds && !g_stop; round++) {
            for (int k = 0; k < NMODES && !g_stop; k++) {
                int m = round % 2 == 0 ? k : NMODES - 1 - k;
                uint64_t waited = quiesce(c, 1000, r->idle);
                memset(res, 0, sizeof(*res));
                run_queries(c, rpc, p, m, client_counts[ci],
                            (uint64_t)(round * NMODES + m) + r->P * 1000u, res);
                qstats *q = &r->q[ci][m];
                double n = res->done ? (double)res->done : 1;
                q->qps[round] = (double)res->done * 1e9 / (double)res->t_ns;
                q->self[round] = (double)res->self_us / n;
                q->clu[round] = (double)res->clu_us / n;
                q->p50[round] = sx_bench_hist_quantile(&res->h, 0.5);
                q->p99[round] = sx_bench_hist_quantile(&res->h, 0.99);
                sx_bench_hist_merge(&q->h, &res->h);
                q->done += res->done;
                q->errors += res->errors;
                q->hits += res->hits;
                q->wrong_mode += res->wrong_mode;
                q->contacted = res->contacted;
                fprintf(stderr,
                        "P=%u clients=%d round %d %-6s %7.0f q/s  p50 %.2f ms p99 %.2f ms  "
                        "cluster %5.0f us/q  bench %4.0f us/q  contacted %u  (quiet after "
                        "%.1f s)%s\n",
                        r->P, client_counts[ci], round + 1, mode_name(m), q->qps[round],
                        q->p50[round] / 1e6, q->p99[round] / 1e6, q->clu[round], q->self[round],
                        res->contacted, (double)waited / 1e3, res->errors ? "  (errors)" : "");
            }
            if (!g_stop)
                done_rounds++;
        }
        if (ci == 0 || done_rounds < r->rounds)
            r->rounds = done_rounds;
    }
    free(res);
}

/* Part 1 at one offered load (documents per second) on cluster c. */
static bool lag_level(sx_cluster *c, sx_rpc_client *rpc, const params *p, double idle, laglevel *L)
{
    quiesce(c, 2000, idle);
    fprintf(stderr, "bench_index: lag: open loop at %.0f docs/s (%.2f of the maximum)\n",
            L->offered, L->frac);
    lagrun *R = sx_calloc(1, sizeof(*R));
    L->R = R;
    R->c = c;
    R->rpc = rpc;
    R->p = p;
    R->puts_per_s = L->offered / (double)p->batch;
    R->sample = L->sample;
    R->qcap = 1u << 16;
    R->q = sx_calloc(R->qcap, sizeof(*R->q));
    pthread_mutex_init(&R->mu, NULL);
    pthread_cond_init(&R->cv, NULL);
    atomic_store(&R->wm, -1);
    for (int i = 0; i < p->probes; i++)
        pthread_create(&R->probe[i], NULL, probe_main, R);
    pthread_create(&R->sender, NULL, sender_main, R);

    sx_clock_sleep_ms((uint64_t)(p->warmup * 1000) + 500);
    uint64_t clu_us = 0, self_us = 0, win_ns = 0, calls0 = 0;
    int nw = 0;
    for (int round = 0; round < p->lag_rounds && !g_stop; round++) {
        for (int k = 0; k < NMODES && !g_stop; k++) {
            int m = round % 2 == 0 ? NMODES - 1 - k : k; /* GLOBAL first, then alternate */
            pthread_mutex_lock(&R->mu);
            R->win[nw].mode = m;
            calls0 = R->probe_calls;
            pthread_mutex_unlock(&R->mu);
            uint64_t a0 = atomic_load(&R->acked_docs);
            tcpu th0, th1;
            tcpu_read(c, &th0);
            uint64_t t0 = sx_clock_now_ns(), s0 = sx_clock_cpu_us(),
                     k0 = sx_bench_cluster_cpu_us(c);
            atomic_store(&R->wm, nw << 1 | m);
            sx_clock_sleep_ms((uint64_t)(p->lag_seconds * 1000));
            atomic_store(&R->wm, -1);
            uint64_t t1 = sx_clock_now_ns(), s1 = sx_clock_cpu_us(),
                     k1 = sx_bench_cluster_cpu_us(c);
            uint64_t a1 = atomic_load(&R->acked_docs);
            tcpu_read(c, &th1);
            tcpu_diff_add(&L->threads, &th0, &th1);
            clu_us += k1 - k0;
            self_us += s1 - s0;
            win_ns += t1 - t0;
            /* Every sample of this window probed before the next opens. */
            pthread_mutex_lock(&R->mu);
            while ((R->qlen || R->busy) && !g_stop)
                pthread_cond_wait(&R->cv, &R->mu);
            lagwin *lw = &R->win[nw];
            uint64_t calls = R->probe_calls - calls0;
            pthread_mutex_unlock(&R->mu);
            fprintf(stderr,
                    "lag %.2f round %d %-6s %5.0f docs/s acked  %llu samples  p50 %.2f ms  p99 "
                    "%.2f ms  missed %llu  probe queries %llu\n",
                    L->frac, round + 1, mode_name(m), (double)(a1 - a0) * 1e9 / (double)(t1 - t0),
                    (unsigned long long)lw->h.count, sx_bench_hist_quantile(&lw->h, 0.5) / 1e6,
                    sx_bench_hist_quantile(&lw->h, 0.99) / 1e6, (unsigned long long)lw->missed,
                    (unsigned long long)calls);
            nw++;
        }
    }
    atomic_store(&R->stop_sender, true);
    pthread_join(R->sender, NULL);
    while (atomic_load(&R->in_flight) > 0)
        sx_clock_sleep_ms(1);
    pthread_mutex_lock(&R->mu);
    R->closing = true;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    for (int i = 0; i < p->probes; i++)
        pthread_join(R->probe[i], NULL);
    L->windows = nw;
    double acked = (double)atomic_load(&R->acked_docs);
    L->achieved = acked * 1e9 / (double)(win_ns ? win_ns : 1);
    L->clu_us_per_doc = (double)clu_us / (acked ? acked : 1);
    L->self_us_per_doc = (double)self_us / (acked ? acked : 1);
    L->probe_qps = (double)R->probe_calls * 1e9 / (double)(win_ns ? win_ns : 1);
    L->win_ns = win_ns;
    return nw > 0;
}

/* Measures part 1 on cluster c (indexes by_k and by_u READY) into L. */
static bool lag_phase(sx_cluster *c, sx_rpc_client *rpc, const params *p, lagres *L)
{
    /* The maximum ingest rate: a closed-loop burst. */
    quiesce(c, 2000, L->idle);
    uint64_t t_ns = 0, errs = 0;
    uint64_t docs = run_puts(c, rpc, p, 'b', p->batch, BURST_SLOTS, UINT64_MAX, BURST_WARMUP_MS,
                             BURST_MS, &t_ns, &errs);
    L->max_rate = (double)docs * 1e9 / (double)t_ns;
    L->burst_errors = errs;
    fprintf(stderr,
            "bench_index: lag: max ingest %.0f docs/s (closed loop, %d Puts of %zu in flight)\n",
            L->max_rate, BURST_SLOTS, p->batch);
    if (docs == 0 || g_stop)
        return false;
    bool ok = true;
    for (int i = 0; i < p->nlevels && ok && !g_stop; i++) {
        laglevel *lv = &L->lv[i];
        lv->frac = p->levels[i];
        lv->offered = L->max_rate * lv->frac;
        /* As many samples per second at every load: --sample at the first. */
        double k = (double)p->sample * lv->frac / p->levels[0];
        lv->sample = k < 1 ? 1 : (unsigned)(k + 0.5);
        ok = lag_level(c, rpc, p, L->idle, lv);
        L->nlevels = i + 1;
    }
    return ok;
}

/* Starts a cluster of P partitions, loads it, and runs what is asked. */
static bool run_cluster(sx_rpc_client *rpc, const params *p, uint32_t P, pres *qr, lagres *lr)
{
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    bool ok = start_cluster(c, P, p->replication) && !g_stop;
    char led[64] = "?";
    if (ok) {
        leaders_per_worker(c, led, sizeof(led));
        uint64_t t_ns = 0, errs = 0;
        uint64_t docs =
            run_puts(c, rpc, p, 'p', PRELOAD_BATCH, PRELOAD_SLOTS, p->docs, 0, 0, &t_ns, &errs);
        fprintf(stderr,
                "bench_index: P=%u preloaded %" PRIu64 " docs in %.1f s (%" PRIu64
                " failed Puts); leaders per worker %s\n",
                P, docs, (double)t_ns / 1e9, errs, led);
        ok = errs == 0 && docs >= p->docs && !g_stop;
    }
    size_t nix = lr ? 2 : 1;
    ok = ok && create_index(c, rpc, "by_k", "k", p->terms);
    ok = ok && (!lr || create_index(c, rpc, "by_u", "u", p->terms));
    ok = ok && wait_ready(c, rpc, nix);
    double idle = 0;
    if (ok) {
        quiesce(c, 2000, 0);
        idle = idle_cores(c);
        fprintf(stderr, "bench_index: P=%u idle cluster: %.2f cores\n", P, idle);
        if (qr)
            qr->idle = idle;
        if (lr)
            lr->idle = idle;
    }
    if (ok) {
        /* LOCAL and GLOBAL agree with what was loaded. */
        for (unsigned v = 0; v < 3 && ok; v++) {
            char val[VAL_CAP];
            snprintf(val, sizeof(val), "v%04u", v * 7);
            long want = (long)(p->docs / p->values + (v * 7 < p->docs % p->values));
            long l = count_hits(c, rpc, val, M_LOCAL), g = count_hits(c, rpc, val, M_GLOBAL);
            if (l != want || g != want) {
                fprintf(stderr, "bench_index: %s: LOCAL %ld hits, GLOBAL %ld, loaded %ld\n", val, l,
                        g, want);
                ok = false;
            }
        }
    }
    if (ok && qr) {
        snprintf(qr->led, sizeof(qr->led), "%s", led);
        query_rounds(c, rpc, p, qr);
        qr->ran = qr->rounds > 0;
    }
    if (ok && lr && !g_stop) {
        snprintf(lr->led, sizeof(lr->led), "%s", led);
        lr->P = P;
        lr->ran = lag_phase(c, rpc, p, lr);
    }
    uint64_t t_stop = sx_clock_now_ms();
    stop_cluster(c);
    fprintf(stderr, "bench_index: P=%u cluster stopped in %.1f s\n", P,
            (double)(sx_clock_now_ms() - t_stop) / 1e3);
    free(c);
    return ok;
}

/* ========================================================= the tables ===== */

/* At one level, "median (min - max)" over rounds of GLOBAL / LOCAL lag p50
 * and p99, and of GLOBAL p50 - LOCAL p50 in ms. */
static void fmt_round_stats(const laglevel *L, char *c50, char *c99, char *cd, size_t cap)
{
    const lagrun *R = L->R;
    int n = L->windows / 2;
    snprintf(c50, cap, "-");
    snprintf(c99, cap, "-");
    snprintf(cd, cap, "-");
    if (n < 1)
        return;
    /* A round is one GLOBAL and one LOCAL window. */
    double *r50 = sx_calloc((size_t)n, sizeof(double));
    double *r99 = sx_calloc((size_t)n, sizeof(double));
    double *d50 = sx_calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        const lagwin *a = &R->win[2 * i], *b = &R->win[2 * i + 1];
        const lagwin *g = a->mode == M_GLOBAL ? a : b, *l = a->mode == M_GLOBAL ? b : a;
        double g50 = sx_bench_hist_quantile(&g->h, 0.5), l50 = sx_bench_hist_quantile(&l->h, 0.5);
        double g99 = sx_bench_hist_quantile(&g->h, 0.99), l99 = sx_bench_hist_quantile(&l->h, 0.99);
        r50[i] = l50 > 0 ? g50 / l50 : 0;
        r99[i] = l99 > 0 ? g99 / l99 : 0;
        d50[i] = (g50 - l50) / 1e6;
    }
    sx_bench_fmt_median_range(r50, n, 1, c50, cap);
    sx_bench_fmt_median_range(r99, n, 1, c99, cap);
    sx_bench_fmt_median_range(d50, n, 2, cd, cap);
    free(r50);
    free(r99);
    free(d50);
}

static uint64_t missed_of(const laglevel *L, int m)
{
    uint64_t missed = 0;
    for (int w = 0; w < L->windows; w++)
        missed += L->R->win[w].mode == m ? L->R->win[w].missed : 0;
    return missed;
}

static void print_lag(const params *p, const lagres *L)
{
    printf("### Global index lag: Put acknowledged -> visible in the index\n\n");
    printf("P=%u, R=%u, %u term partitions per index, leaders per worker %s; idle, this cluster "
           "uses %.2f cores. Maximum ingest, measured first (closed loop, %d Puts of %zu "
           "documents in flight, %.1f s): **%.0f docs/s**. Then open loop at fractions of it: "
           "Puts of %zu documents sent on a fixed schedule, each document updating 2 global "
           "and 2 local indexes (by_k, by_u). One document in %u (at %.2f of the maximum; at "
           "other loads in proportion, for as many samples per second) is probed by %d threads: "
           "Query(by_u, eq = its unique value, no `after`) every 0.2 ms after the previous "
           "answer, from the Put's acknowledgement until the hit arrives. At each load %d "
           "windows of %.1f s alternate the probe's mode (GLOBAL, LOCAL, then LOCAL, GLOBAL); "
           "the Put load is the same in both. Lag = arrival of the first answer with the hit "
           "- acknowledgement: an upper bound, as it includes that answer's round trip; the "
           "lower bound is when the last poll that did not see it was sent (0 when the first "
           "poll saw it). LOCAL, visible once acknowledged, measures the probe's own floor.\n",
           L->P, p->replication, p->terms, L->led, L->idle, BURST_SLOTS, p->batch, BURST_MS / 1e3,
           L->max_rate, p->batch, p->sample, L->lv[0].frac, p->probes, L->lv[0].windows,
           p->lag_seconds);

    const laglevel *V = &L->lv[0];
    const lagrun *R = V->R;
    printf("\n#### At %.2f of the maximum: %.0f docs/s offered (%.0f Puts/s), %.0f "
           "acknowledged\n\n",
           V->frac, V->offered, V->offered / (double)p->batch, V->achieved);
    printf("| visible in | samples | lag p50 / p99 / p99.9 ms | lower bound p50 / p99 / p99.9 "
           "ms | probe round trip p50 / p99 ms | polls per sample | first poll after ack p99 ms "
           "| missed (> 5 s) | goal (on the lag, i.e. the upper bound) |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for (int m = NMODES - 1; m >= 0; m--) {
        uint64_t missed = missed_of(V, m);
        char lat[96], lo[96], rtt[96];
        sx_bench_fmt_latency(&R->mode_h[m], 1e6, 2, lat, sizeof(lat));
        sx_bench_fmt_latency(&R->lo_h[m], 1e6, 2, lo, sizeof(lo));
        snprintf(rtt, sizeof(rtt), "%.2f / %.2f", sx_bench_hist_quantile(&R->rtt_h[m], 0.5) / 1e6,
                 sx_bench_hist_quantile(&R->rtt_h[m], 0.99) / 1e6);
        double polls = R->mode_h[m].count + missed
                           ? (double)R->polls[m] / (double)(R->mode_h[m].count + missed)
                           : 0;
        char goal[160] = "baseline";
        if (m == M_GLOBAL) {
            /* Met when the lag is within the goal; missed when even its lower bound is not. */
            static const double q[2] = {0.5, 0.99}, lim[2] = {5, 50};
            const char *v[2];
            for (int k = 0; k < 2; k++) {
                double hi = sx_bench_hist_quantile(&R->mode_h[m], q[k]) / 1e6;
                double low = sx_bench_hist_quantile(&R->lo_h[m], q[k]) / 1e6;
                v[k] = hi <= lim[k] && !missed  ? "met"
                       : low > lim[k] || missed ? "**missed**"
                                                : "**not shown** (the bounds straddle it)";
            }
            snprintf(goal, sizeof(goal), "p50 <= 5 ms: %s; p99 <= 50 ms: %s", v[0], v[1]);
        }
        printf("| %s (%s) | %llu | %s | %s | %s | %.1f | %.2f | %llu | %s |\n", mode_name(m),
               m == M_GLOBAL ? "subject" : "baseline", (unsigned long long)R->mode_h[m].count, lat,
               lo, rtt, polls, sx_bench_hist_quantile(&R->delay_h[m], 0.99) / 1e6,
               (unsigned long long)missed, goal);
    }
    char c50[96], c99[96], cd[96];
    fmt_round_stats(V, c50, c99, cd, sizeof(c50));
    printf("\n| GLOBAL / LOCAL, median of %d rounds (min - max) | lag p50 | lag p99 | "
           "GLOBAL p50 - LOCAL p50, ms |\n",
           V->windows / 2);
    printf("| --- | ---: | ---: | ---: |\n");
    printf("| ratio | %s | %s | %s |\n", c50, c99, cd);

    printf("\n| share of samples with lag | < 1 ms | 1-2 | 2-3 | 3-4 | 4-5 | 5-10 | 10-50 | "
           ">= 50 ms |\n");
    printf("| --- |");
    for (int b = 0; b < LAG_BUCKETS; b++)
        printf(" ---: |");
    printf("\n");
    for (int m = NMODES - 1; m >= 0; m--) {
        uint64_t tot = R->mode_h[m].count ? R->mode_h[m].count : 1;
        printf("| %s |", mode_name(m));
        for (int b = 0; b < LAG_BUCKETS; b++)
            printf(" %.1f%% |", 100.0 * (double)R->buckets[m][b] / (double)tot);
        printf("\n");
    }

    printf("\n#### Lag against offered load\n\n");
    printf("| offered (of max) | acked docs/s | visible in | samples | lag p50 / p99 / p99.9 ms | "
           "lower bound p50 / p99 ms | probe round trip p50 ms | GLOBAL p50 - LOCAL p50, ms "
           "(median of rounds) | Put latency p50 / p99 ms | cluster CPU us/doc (cores) | "
           "`staleness_ms` of GLOBAL answers p50 / p99 |\n");
    printf("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    uint64_t perr = 0, puterr = 0, throttled = 0, missed = 0;
    for (int i = 0; i < L->nlevels; i++) {
        const laglevel *W = &L->lv[i];
        const lagrun *Q = W->R;
        fmt_round_stats(W, c50, c99, cd, sizeof(c50));
        perr += Q->probe_errors[0] + Q->probe_errors[1];
        puterr += atomic_load(&Q->put_errors);
        throttled += atomic_load(&Q->throttled);
        missed += missed_of(W, M_GLOBAL) + missed_of(W, M_LOCAL);
        for (int m = NMODES - 1; m >= 0; m--) {
            char lat[96];
            sx_bench_fmt_latency(&Q->mode_h[m], 1e6, 2, lat, sizeof(lat));
            if (m == M_GLOBAL)
                printf("| %.0f (%.2f) | %.0f | GLOBAL | %llu | %s | %.2f / %.2f | %.2f | %s | "
                       "%.2f / %.2f | %.0f (%.2f) | %.0f / %.0f |\n",
                       W->offered, W->frac, W->achieved, (unsigned long long)Q->mode_h[m].count,
                       lat, sx_bench_hist_quantile(&Q->lo_h[m], 0.5) / 1e6,
                       sx_bench_hist_quantile(&Q->lo_h[m], 0.99) / 1e6,
                       sx_bench_hist_quantile(&Q->rtt_h[m], 0.5) / 1e6, cd,
                       sx_bench_hist_quantile(&Q->put_h, 0.5) / 1e6,
                       sx_bench_hist_quantile(&Q->put_h, 0.99) / 1e6, W->clu_us_per_doc,
                       W->clu_us_per_doc * W->achieved / 1e6,
                       sx_bench_hist_quantile(&Q->stale_h, 0.5) / 1e6,
                       sx_bench_hist_quantile(&Q->stale_h, 0.99) / 1e6);
            else
                printf("| | | LOCAL | %llu | %s | - | %.2f | | | | |\n",
                       (unsigned long long)Q->mode_h[m].count, lat,
                       sx_bench_hist_quantile(&Q->rtt_h[m], 0.5) / 1e6);
        }
    }
    printf("\n| workers' CPU by thread, cores over the windows |");
    for (int i = 0; i < L->nlevels; i++)
        printf(" at %.2f |", L->lv[i].frac);
    printf("\n| --- |");
    for (int i = 0; i < L->nlevels; i++)
        printf(" ---: |");
    printf("\n");
    /* Names in the order of the first level, largest first. */
    const tcpu *T0 = &L->lv[0].threads;
    bool shown[MAX_TNAMES] = {false};
    for (;;) {
        int best = -1;
        for (int k = 0; k < T0->n; k++)
            if (!shown[k] && (best < 0 || T0->us[k] > T0->us[best]))
                best = k;
        if (best < 0)
            break;
        shown[best] = true;
        double cores[MAX_LEVELS], top = 0;
        for (int i = 0; i < L->nlevels; i++) {
            const tcpu *T = &L->lv[i].threads;
            uint64_t us = 0;
            for (int k = 0; k < T->n; k++)
                if (strcmp(T->name[k], T0->name[best]) == 0)
                    us = T->us[k];
            cores[i] = (double)us * 1e3 / (double)(L->lv[i].win_ns ? L->lv[i].win_ns : 1);
            top = cores[i] > top ? cores[i] : top;
        }
        if (top < 0.01)
            continue; /* threads that did next to nothing */
        printf("| %s |", T0->name[best]);
        for (int i = 0; i < L->nlevels; i++)
            printf(" %.2f |", cores[i]);
        printf("\n");
    }
    printf("\nCluster CPU is per document acknowledged in the windows and includes serving the "
           "probes (%.0f probe queries/s at %.2f of the maximum); this process (load and probes) "
           "used %.1f us per document there. %llu failed Puts (burst: %llu), %llu failed probe "
           "queries, %llu samples missed, sender throttled %llu times (%d Puts in flight).\n",
           V->probe_qps, V->frac, V->self_us_per_doc, (unsigned long long)puterr,
           (unsigned long long)L->burst_errors, (unsigned long long)perr,
           (unsigned long long)missed, (unsigned long long)throttled, MAX_IN_FLIGHT);
}

static void print_queries(const params *p, const pres *res, int nres)
{
    int rounds = 0;
    for (int i = 0; i < nres; i++)
        if (res[i].ran && (!rounds || res[i].rounds < rounds))
            rounds = res[i].rounds;
    printf("\n### Equality queries: LOCAL (scatter to every log partition) vs GLOBAL (one term "
           "partition)\n\n");
    printf("A fresh cluster per P: 3 workers, R=%u (min_isr %u), %u term partitions per index "
           "whatever P; %llu documents preloaded, field k with %u distinct values (~%llu hits "
           "per value), index by_k LOCAL and GLOBAL built by backfill (READY), then checked "
           "(LOCAL and GLOBAL give the same hits). Closed loop: 1 or 8 queries in flight "
           "(`sx_rpc_invoke_async`), eq = a random value, limit %d, to the workers "
           "round-robin. %d rounds per client count, each one LOCAL and one GLOBAL window "
           "(%.1f s timed after %.1f s warm-up), LOCAL first then GLOBAL first in turn, each "
           "once the cluster is back to its idle CPU + 0.1 core (at most 1 s). Medians over "
           "rounds; latency over all windows, from the client.\n\n",
           p->replication, p->replication >= 3 ? 2u : 1u, p->terms, (unsigned long long)p->docs,
           p->values, (unsigned long long)(p->docs / p->values), QUERY_LIMIT, rounds, p->seconds,
           p->warmup);
    printf("| P | leaders per worker | clients | mode | partitions contacted | queries/s | "
           "latency p50 / p99 / p99.9 ms | cluster CPU us/query | bench CPU us/query | "
           "hits/query | timed |\n");
    printf("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    uint64_t errors = 0, wrong = 0;
    for (int i = 0; i < nres; i++) {
        const pres *r = &res[i];
        if (!r->ran)
            continue;
        for (int ci = 0; ci < NCLIENTS; ci++)
            for (int m = 0; m < NMODES; m++) {
                const qstats *q = &r->q[ci][m];
                char lat[96];
                sx_bench_fmt_latency(&q->h, 1e6, 2, lat, sizeof(lat));
                printf("| %u | %s | %d | %s | %u | %.0f | %s | %.0f | %.0f | %.1f | %llu |\n", r->P,
                       r->led, client_counts[ci], mode_name(m), q->contacted,
                       sx_bench_median(q->qps, r->rounds, NULL, NULL), lat,
                       sx_bench_median(q->clu, r->rounds, NULL, NULL),
                       sx_bench_median(q->self, r->rounds, NULL, NULL),
                       q->done ? (double)q->hits / (double)q->done : 0,
                       (unsigned long long)q->done);
                errors += q->errors;
                wrong += q->wrong_mode;
            }
    }

    printf("\n| GLOBAL / LOCAL, median of rounds (min - max) | queries/s | latency p50 | "
           "latency p99 | cluster CPU per query |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < nres; i++) {
        const pres *r = &res[i];
        if (!r->ran)
            continue;
        double *v = sx_calloc((size_t)r->rounds, sizeof(double));
        for (int ci = 0; ci < NCLIENTS; ci++) {
            const qstats *g = &r->q[ci][M_GLOBAL], *l = &r->q[ci][M_LOCAL];
            char c1[96], c2[96], c3[96], c4[96];
            for (int k = 0; k < r->rounds; k++)
                v[k] = g->qps[k] / l->qps[k];
            sx_bench_fmt_median_range(v, r->rounds, 2, c1, sizeof(c1));
            for (int k = 0; k < r->rounds; k++)
                v[k] = g->p50[k] / l->p50[k];
            sx_bench_fmt_median_range(v, r->rounds, 2, c2, sizeof(c2));
            for (int k = 0; k < r->rounds; k++)
                v[k] = g->p99[k] / l->p99[k];
            sx_bench_fmt_median_range(v, r->rounds, 2, c3, sizeof(c3));
            for (int k = 0; k < r->rounds; k++)
                v[k] = l->clu[k] > 0 ? g->clu[k] / l->clu[k] : 0;
            sx_bench_fmt_median_range(v, r->rounds, 2, c4, sizeof(c4));
            printf("| P=%u, %d client%s | %s | %s | %s | %s |\n", r->P, client_counts[ci],
                   client_counts[ci] > 1 ? "s" : "", c1, c2, c3, c4);
        }
        free(v);
    }

    /* Growth with P: first and last P of the list. */
    int first = -1, last = -1;
    for (int i = 0; i < nres; i++)
        if (res[i].ran) {
            if (first < 0)
                first = i;
            last = i;
        }
    if (first >= 0 && last > first) {
        printf("\n| latency p99, ms (p50), median of rounds |");
        for (int i = 0; i < nres; i++)
            if (res[i].ran)
                printf(" P=%u |", res[i].P);
        printf(" p99 P=%u / P=%u | p50 P=%u / P=%u | goal |\n| --- |", res[last].P, res[first].P,
               res[last].P, res[first].P);
        for (int i = 0; i < nres; i++)
            if (res[i].ran)
                printf(" ---: |");
        printf(" ---: | ---: | --- |\n");
        for (int m = NMODES - 1; m >= 0; m--)
            for (int ci = 0; ci < NCLIENTS; ci++) {
                printf("| %s, %d client%s |", mode_name(m), client_counts[ci],
                       client_counts[ci] > 1 ? "s" : "");
                double p99[MAX_PARTS] = {0}, p50[MAX_PARTS] = {0};
                for (int i = 0; i < nres; i++)
                    if (res[i].ran) {
                        const qstats *q = &res[i].q[ci][m];
                        p99[i] = sx_bench_median(q->p99, res[i].rounds, NULL, NULL) / 1e6;
                        p50[i] = sx_bench_median(q->p50, res[i].rounds, NULL, NULL) / 1e6;
                        printf(" %.2f (%.2f) |", p99[i], p50[i]);
                    }
                double r99 = p99[last] / p99[first], r50 = p50[last] / p50[first];
                if (m == M_GLOBAL)
                    printf(" %.2f | %.2f | p99 flat, <= 1.2: %s |\n", r99, r50,
                           r99 <= 1.2 ? "met" : "**missed**");
                else
                    printf(" %.2f | %.2f | - (grows with P) |\n", r99, r50);
            }
        printf("| idle cluster CPU, cores (no load, indexes READY) |");
        for (int i = 0; i < nres; i++)
            if (res[i].ran)
                printf(" %.2f |", res[i].idle);
        printf(" %.2f | | - |\n", res[first].idle > 0 ? res[last].idle / res[first].idle : 0);
        printf("\nThe P=%u / P=%u ratios compare clusters run one after the other in this run, "
               "not alternated windows.\n",
               res[last].P, res[first].P);
    }
    printf("\n%llu queries failed; %llu answered in another mode than asked.\n",
           (unsigned long long)errors, (unsigned long long)wrong);
    if (errors || wrong)
        printf("\n**Queries failed or were served in the wrong mode: the figures are not "
               "valid.**\n");
}

/* ============================================================ TSV ===== */

static FILE *open_tsv(const params *p, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", p->tsv, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "bench_index: --tsv: %s: %s\n", path, strerror(errno));
    return f;
}

/* index_partitions.tsv: per P, the medians of rounds of query latency p50 and
 * p99 (ms) by mode and client count, as the P table shows them. */
static bool tsv_partitions(const params *p, const pres *res, int nres)
{
    FILE *f = open_tsv(p, "index_partitions.tsv");
    if (!f)
        return false;
    fprintf(f, "P");
    for (int ci = 0; ci < NCLIENTS; ci++)
        for (int m = NMODES - 1; m >= 0; m--)
            fprintf(f, "\t%s_c%d_p50\t%s_c%d_p99", mode_name(m), client_counts[ci], mode_name(m),
                    client_counts[ci]);
    for (int i = 0; i < nres; i++) {
        if (!res[i].ran)
            continue;
        fprintf(f, "\n%u", res[i].P);
        for (int ci = 0; ci < NCLIENTS; ci++)
            for (int m = NMODES - 1; m >= 0; m--) {
                const qstats *q = &res[i].q[ci][m];
                fprintf(f, "\t%.3f\t%.3f", sx_bench_median(q->p50, res[i].rounds, NULL, NULL) / 1e6,
                        sx_bench_median(q->p99, res[i].rounds, NULL, NULL) / 1e6);
            }
    }
    fprintf(f, "\n");
    return fclose(f) == 0;
}

/* index_lag.tsv: per offered load, the lag p50 / p99 / p99.9 (ms) of each
 * probe mode, as the lag-against-load table shows them. */
static bool tsv_lag(const params *p, const lagres *L)
{
    FILE *f = open_tsv(p, "index_lag.tsv");
    if (!f)
        return false;
    fprintf(f, "offered_docs_s\tfraction\tacked_docs_s");
    for (int m = NMODES - 1; m >= 0; m--)
        fprintf(f, "\t%s_p50\t%s_p99\t%s_p999", mode_name(m), mode_name(m), mode_name(m));
    /* Ascending load, whatever the order of --lag-loads: the plot's lines join rows in order. */
    bool done[MAX_LEVELS] = {false};
    for (int k = 0; k < L->nlevels; k++) {
        int i = -1;
        for (int j = 0; j < L->nlevels; j++)
            if (!done[j] && (i < 0 || L->lv[j].offered < L->lv[i].offered))
                i = j;
        done[i] = true;
        const laglevel *W = &L->lv[i];
        fprintf(f, "\n%.0f\t%.2f\t%.0f", W->offered, W->frac, W->achieved);
        for (int m = NMODES - 1; m >= 0; m--)
            fprintf(f, "\t%.3f\t%.3f\t%.3f", sx_bench_hist_quantile(&W->R->mode_h[m], 0.5) / 1e6,
                    sx_bench_hist_quantile(&W->R->mode_h[m], 0.99) / 1e6,
                    sx_bench_hist_quantile(&W->R->mode_h[m], 0.999) / 1e6);
    }
    fprintf(f, "\n");
    return fclose(f) == 0;
}

/* The plots' data (bench/plot.sh), beside the tables; the tables are unchanged. */
static bool write_tsv(const params *p, const pres *res, int nres, const lagres *lag)
{
    bool ok = true;
    if (nres)
        ok = tsv_partitions(p, res, nres);
    if (lag->ran)
        ok = tsv_lag(p, lag) && ok;
    return ok;
}

/* =========================================================== main ===== */

static bool parse_parts(const char *s, params *p)
{
    p->nparts = 0;
    while (*s) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v < 1 || v > 256 || p->nparts == MAX_PARTS)
            return false;
        p->parts[p->nparts++] = (uint32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return false;
    }
    return true;
}

static bool parse_levels(const char *s, params *p)
{
    p->nlevels = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v <= 0 || v > 1 || p->nlevels == MAX_LEVELS)
            return false;
        p->levels[p->nlevels++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return false;
    }
    return p->nlevels > 0;
}

/* The flags as common/flags parses them; main turns them into params. */
typedef struct opts {
    uint32_t rounds;
    const char *seconds, *warmup; /* decimal seconds */
    const char *partitions;       /* "2,4,8,16"; "": no query rounds */
    uint32_t terms;
    uint32_t replication;
    uint32_t docs;
    uint32_t values;
    uint32_t lag_parts;
    uint32_t lag_rounds;
    const char *lag_seconds; /* decimal seconds */
    const char *lag_loads;   /* "0.5,0.1" */
    uint32_t batch;
    uint32_t sample;
    uint32_t probes;
    uint32_t doc_bytes;
    const char *tsv;
} opts;

#define OFF(m, t) SX_FLAG_OFFSET(opts, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "query rounds per client count, each a LOCAL and a GLOBAL window",
     .min = 1,
     .max = 1000},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "seconds of each measured query window (a decimal above 0)"},
    {.name = "warmup",
     .type = SX_FLAG_STRING,
     .offset = OFF(warmup, const char *),
     .metavar = "S",
     .help = "seconds of queries before each window, not counted (0 or more)"},
    {.name = "partitions",
     .type = SX_FLAG_STRING,
     .offset = OFF(partitions, const char *),
     .metavar = "LIST",
     .help = "log partitions P, a fresh cluster per P, comma-separated (at most 8, each 1..256; "
             "empty: no query rounds)"},
    {.name = "terms",
     .type = SX_FLAG_UINT32,
     .offset = OFF(terms, uint32_t),
     .metavar = "M",
     .help = "term partitions of the GLOBAL indexes (0: the cluster default, M = P)"},
    {.name = "replication",
     .type = SX_FLAG_UINT32,
     .offset = OFF(replication, uint32_t),
     .metavar = "R",
     .help = "replicas per log partition (min_isr 2 for R=3, else 1)",
     .min = 1,
     .max = NWORKERS},
    {.name = "docs",
     .type = SX_FLAG_UINT32,
     .offset = OFF(docs, uint32_t),
     .help = "documents preloaded (rounded up to whole Puts of 100)",
     .min = 1,
     .max = UINT32_MAX},
    {.name = "values",
     .type = SX_FLAG_UINT32,
     .offset = OFF(values, uint32_t),
     .help = "distinct values of the indexed field k",
     .min = 1,
     .max = 10000},
    {.name = "lag-partitions",
     .type = SX_FLAG_UINT32,
     .offset = OFF(lag_parts, uint32_t),
     .metavar = "P",
     .help = "P of the cluster measuring the GLOBAL index's lag (0: none)"},
    {.name = "lag-rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(lag_rounds, uint32_t),
     .help = "lag rounds per load, each a GLOBAL and a LOCAL window",
     .min = 1,
     .max = MAX_WINDOWS / 2},
    {.name = "lag-seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(lag_seconds, const char *),
     .metavar = "S",
     .help = "seconds of each lag window (a decimal above 0)"},
    {.name = "lag-loads",
     .type = SX_FLAG_STRING,
     .offset = OFF(lag_loads, const char *),
     .metavar = "LIST",
     .help = "offered loads, fractions (0..1] of the maximum ingest, comma-separated (at most "
             "4); the first is the one the goal is judged at"},
    {.name = "batch",
     .type = SX_FLAG_UINT32,
     .offset = OFF(batch, uint32_t),
     .metavar = "B",
     .help = "documents per Put of the lag load",
     .min = 1,
     .max = 10000},
    {.name = "sample",
     .type = SX_FLAG_UINT32,
     .offset = OFF(sample, uint32_t),
     .help = "one document in N is probed for its lag",
     .min = 1,
     .max = UINT32_MAX},
    {.name = "probes",
     .type = SX_FLAG_UINT32,
     .offset = OFF(probes, uint32_t),
     .help = "probe threads polling for sampled documents",
     .min = 1,
     .max = MAX_PROBES},
    {.name = "doc-bytes",
     .type = SX_FLAG_UINT32,
     .offset = OFF(doc_bytes, uint32_t),
     .help = "packed size of a document, at most",
     .min = 64,
     .max = POOL_BYTES / 2},
    {.name = "tsv",
     .type = SX_FLAG_STRING,
     .offset = OFF(tsv, const char *),
     .metavar = "DIR",
     .help = "also write index_partitions.tsv and index_lag.tsv there, for bench/plot.sh"},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_index",
    .synopsis = "[FLAGS]",
    .description = "The lag of GLOBAL index updates behind acknowledged Puts (open loop at a "
                   "fraction of the maximum ingest, with LOCAL visibility as the same-run "
                   "baseline), and equality queries LOCAL vs GLOBAL on fresh 3-worker clusters "
                   "of P log partitions. Markdown on stdout (bench/run.sh puts it in "
                   "docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const opts defaults = {.rounds = 3,
                           .seconds = "1",
                           .warmup = "0.3",
                           .partitions = "2,4,8,16",
                           .terms = 8,
                           .replication = 3,
                           .docs = 20000,
                           .values = 1000,
                           .lag_parts = 8,
                           .lag_rounds = 3,
                           .lag_seconds = "3",
                           .lag_loads = "0.5,0.1",
                           .batch = 10,
                           .sample = 20,
                           .probes = 8,
                           .doc_bytes = 256};
    opts o = defaults;
    sx_bench_flags(&spec, &o, &defaults, argc, argv);
    params p = {.rounds = (int)o.rounds,
                .seconds = sx_bench_seconds(&spec, "seconds", o.seconds, false),
                .warmup = sx_bench_seconds(&spec, "warmup", o.warmup, true),
                .terms = o.terms,
                .replication = o.replication,
                .docs = o.docs,
                .values = o.values,
                .lag_parts = o.lag_parts,
                .lag_rounds = (int)o.lag_rounds,
                .lag_seconds = sx_bench_seconds(&spec, "lag-seconds", o.lag_seconds, false),
                .batch = o.batch,
                .sample = o.sample,
                .probes = (int)o.probes,
                .doc_bytes = o.doc_bytes,
                .tsv = o.tsv};
    if (!parse_parts(o.partitions, &p))
        sx_bench_flag_error(&spec, "partitions", "want up to 8 numbers 1..256, comma-separated");
    if (!parse_levels(o.lag_loads, &p))
        sx_bench_flag_error(&spec, "lag-loads", "want 1 to 4 fractions in (0, 1], comma-separated");
    if (p.nparts == 0 && p.lag_parts == 0)
        sx_bench_flag_error(&spec, "partitions", "empty, and --lag-partitions 0: nothing to run");
    sx_bench_process_init("bench_index", on_signal);

    p.docs = (p.docs + PRELOAD_BATCH - 1) / PRELOAD_BATCH * PRELOAD_BATCH; /* whole Puts */
    fill_pool();
    p.body_len = body_len_for(p.doc_bytes);
    fprintf(stderr,
            "bench_index: P in {%s%u...}, R=%u, %u term partitions, %llu docs of ~%zu bytes, "
            "%u values; %d query rounds of %.1f s; lag on P=%u, %d rounds of %.1f s, Puts of "
            "%zu, 1 doc in %u probed\n",
            p.nparts ? "" : "none ", p.nparts ? p.parts[0] : 0, p.replication, p.terms,
            (unsigned long long)p.docs, p.doc_bytes, p.values, p.rounds, p.seconds, p.lag_parts,
            p.lag_rounds, p.lag_seconds, p.batch, p.sample);

    sx_rpc_client *rpc = NULL;
    sx_err err = {0};
    sx_rpc_client_opts co = {.faults = ""};
    if (sx_rpc_client_create(&co, &rpc, &err) != SX_OK)
        die(err.msg);

    pres *res = sx_calloc((size_t)p.nparts + 1, sizeof(*res));
    lagres lag;
    memset(&lag, 0, sizeof(lag));
    bool lag_done = p.lag_parts == 0, ok = true;
    uint64_t t_all = sx_clock_now_ms();
    for (int i = 0; i < p.nparts && !g_stop; i++) {
        res[i].P = p.parts[i];
        bool with_lag = !lag_done && p.parts[i] == p.lag_parts;
        ok &= run_cluster(rpc, &p, p.parts[i], &res[i], with_lag ? &lag : NULL);
        lag_done |= with_lag;
    }
    if (!lag_done && !g_stop)
        ok &= run_cluster(rpc, &p, p.lag_parts, NULL, &lag);
    sx_rpc_client_destroy(rpc);
    sx_rpc_wait_shutdown(2000);
    fprintf(stderr, "bench_index: done in %.0f s\n", (double)(sx_clock_now_ms() - t_all) / 1e3);
    if (g_stop) {
        fprintf(stderr, "bench_index: interrupted\n");
        return 1;
    }

    if (lag.ran)
        print_lag(&p, &lag);
    if (p.nparts)
        print_queries(&p, res, p.nparts);
    if (!ok)
        printf("\n**A cluster did not start, load or index correctly (see the log on stderr): "
               "the figures are incomplete.**\n");
    if (p.tsv && !write_tsv(&p, res, p.nparts, &lag))
        ok = false;

    for (int i = 0; i < p.nparts; i++)
        for (int ci = 0; ci < NCLIENTS; ci++)
            for (int m = 0; m < NMODES; m++) {
                qstats *q = &res[i].q[ci][m];
                free(q->qps);
                free(q->self);
                free(q->clu);
                free(q->p50);
                free(q->p99);
            }
    free(res);
    for (int i = 0; i < MAX_LEVELS; i++) {
        lagrun *R = lag.lv[i].R;
        if (R) {
            pthread_mutex_destroy(&R->mu);
            pthread_cond_destroy(&R->cv);
            free(R->q);
            free(R);
        }
    }
    return ok ? 0 : 1;
}
