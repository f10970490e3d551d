/* bench_write: acknowledged documents per second through the replicated log
 * (Put on a real 3-worker loopback cluster, R=1 and R=3) against raw LevelDB
 * writing the same documents in synced batches of the same size, measured
 * alternately in the same run (see BENCHMARKING.md).
 *
 *   bench_write [--rounds N] [--seconds S] [--warmup S] [--clients N]
 *               [--batch B] [--doc-bytes N]      (--help: each with its default)
 *
 * The subject: two clusters started through tests/support/cluster.h, each a
 * coordinator and 3 workers as separate processes on loopback ports they chose
 * (P=8, lease 2000 ms; R=1 with min_isr 1, R=3 with min_isr 2), both up for the
 * whole run and settled (every partition's ISR whole, checker.h) before the
 * first window. The load: --clients slots in this process, each keeping one
 * Put of --batch documents in flight through sx_rpc_invoke_async (closed
 * loop: a completion issues the slot's next Put), sent to the workers
 * round-robin; every document has a fresh id, so every Put inserts. A Put is
 * timed from issue to its acknowledgement (all its documents committed and
 * applied by min_isr replicas), into a log-bucketed histogram.
 *
 * The baseline: one LevelDB store (common/store.h, the workers' options) in
 * a temporary directory, written by this process's main thread in synced
 * batches of --batch documents with the worker's key layout (worker/plog.h):
 * per document 'L' offset -> epoch + packed LogOp and 'D' id -> version +
 * packed Document, plus the two 'M' keys (applied, commit) per batch. That is
 * the log append and the apply of one partition replica folded into a single
 * synced write: the physical limit of one log on this disk.
 *
 * Per round the three configurations run in the order raw, R=1, R=3, then
 * R=3, R=1, raw in the next, so that drift falls on all. CPU per document:
 * for a cluster, utime + stime of its coordinator and workers
 * (/proc/PID/stat) and, separately, of this process (the load generator); for
 * raw, of this process (the writer and LevelDB's compaction thread). Markdown
 * on stdout, progress on stderr.
 */
#include "benchlib.h"
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "harness.h"
#include "keys.h"
#include "log.h"
#include "mem.h"
#include "rpc.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define PUT_TIMEOUT_MS 30000
#define SETTLE_MS 60000
#define MAX_CLIENTS 256
#define NWORKERS 3
#define PARTITIONS 8
#define LEASE_MS 2000
#define POOL_BYTES (64u * 1024u)

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_write: %s\n", what);
    exit(1);
}

/* ========================================================== documents ===== */

/* Printable bytes that snappy cannot squeeze much (LevelDB compresses blocks):
 * document bodies are slices of it. */
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

#define ID_CAP 32
#define TITLE_LEN 48
#define NFIELDS 4 /* title (string), body (string), n (int), tag (string) */

/* n documents and a PutRequest holding them; ids and n are rewritten per use. */
typedef struct docset {
    size_t n;
    Shardex__V1__Document *d;
    Shardex__V1__Document **dp;
    Shardex__V1__Field *f;
    Shardex__V1__Field **fp;
    Shardex__V1__Value *v;
    char (*id)[ID_CAP];
    char (*title)[TITLE_LEN + 1];
    char (*tag)[16];
    char **body;
    Shardex__V1__PutRequest req;
} docset;

static void docset_init(docset *ds, size_t n, unsigned salt, size_t body_len)
{
    memset(ds, 0, sizeof(*ds));
    ds->n = n;
    ds->d = sx_calloc(n, sizeof(*ds->d));
    ds->dp = sx_calloc(n, sizeof(*ds->dp));
    ds->f = sx_calloc(n * NFIELDS, sizeof(*ds->f));
    ds->fp = sx_calloc(n * NFIELDS, sizeof(*ds->fp));
    ds->v = sx_calloc(n * NFIELDS, sizeof(*ds->v));
    ds->id = sx_calloc(n, sizeof(*ds->id));
    ds->title = sx_calloc(n, sizeof(*ds->title));
    ds->tag = sx_calloc(n, sizeof(*ds->tag));
    ds->body = sx_calloc(n, sizeof(*ds->body));
    for (size_t i = 0; i < n; i++) {
        size_t k = (size_t)salt * n + i;
        memcpy(ds->title[i], g_pool + (k * 613) % (POOL_BYTES - TITLE_LEN), TITLE_LEN);
        snprintf(ds->tag[i], sizeof(ds->tag[i]), "tag-%02zu", k % 50);
        ds->body[i] = sx_malloc(body_len + 1);
        memcpy(ds->body[i], g_pool + (k * 1031) % (POOL_BYTES - body_len), body_len);
        ds->body[i][body_len] = '\0';
        shardex__v1__document__init(&ds->d[i]);
        ds->d[i].id = ds->id[i];
        ds->d[i].n_fields = NFIELDS;
        ds->d[i].fields = &ds->fp[i * NFIELDS];
        static const char *const names[NFIELDS] = {"title", "body", "n", "tag"};
        for (size_t j = 0; j < NFIELDS; j++) {
            Shardex__V1__Field *f = &ds->f[i * NFIELDS + j];
            Shardex__V1__Value *v = &ds->v[i * NFIELDS + j];
            shardex__v1__field__init(f);
            shardex__v1__value__init(v);
            f->name = (char *)names[j];
            f->value = v;
            ds->fp[i * NFIELDS + j] = f;
            v->kind_case = j == 2 ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S;
        }
        ds->v[i * NFIELDS + 0].s = ds->title[i];
        ds->v[i * NFIELDS + 1].s = ds->body[i];
        ds->v[i * NFIELDS + 3].s = ds->tag[i];
        ds->dp[i] = &ds->d[i];
    }
    shardex__v1__put_request__init(&ds->req);
    ds->req.docs = ds->dp;
    ds->req.n_docs = n;
}

/* Fresh ids ("<who><slot>-<seq>", 16 bytes) and n for the next use. */
static void docset_fill(docset *ds, char who, unsigned slot, uint64_t seq)
{
    for (size_t i = 0; i < ds->n; i++) {
        snprintf(ds->id[i], ID_CAP, "%c%02u-%012" PRIu64, who, slot % 100, seq + i);
        ds->v[i * NFIELDS + 2].i = (int64_t)(seq + i);
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
    free(ds->title);
    free(ds->tag);
    free(ds->body);
}

/* The body length that makes a packed Document doc_bytes long (or just under). */
static size_t body_len_for(size_t doc_bytes)
{
    size_t len = doc_bytes;
    for (;;) {
        docset ds;
        docset_init(&ds, 1, 0, len);
        docset_fill(&ds, 'c', 0, 0);
        size_t got = protobuf_c_message_get_packed_size(&ds.d[0].base);
        docset_free(&ds);
        if (got <= doc_bytes || len == 0)
            return len;
        len -= got - doc_bytes < len ? got - doc_bytes : len;
    }
}

/* ======================================================= measurement ===== */

/* One window of one configuration. */
typedef struct result {
    uint64_t docs;    /* acknowledged (raw: written) in the window */
    uint64_t ops;     /* Puts (raw: batches) completed in the window */
    uint64_t errors;  /* failed Puts, warm-up included */
    uint64_t t_ns;    /* window length */
    uint64_t self_us; /* this process's CPU in the window */
    uint64_t clu_us;  /* the cluster's processes' CPU in the window (0 for raw) */
    sx_bench_hist h;  /* latency of each Put (batch) completed in the window, ns */
} result;

typedef struct params {
    int rounds;
    double seconds, warmup;
    int clients;
    size_t batch;
    size_t doc_bytes;
    size_t body_len;
} params;

/* ---- raw LevelDB ---- */

typedef struct raw {
    char dir[256];
    sx_store *store;
    docset ds;
    sx_batch *batch;
    sx_buf k, v;
    uint64_t seq;    /* next document number */
    uint64_t offset; /* last log offset written */
} raw;

static void raw_open(raw *r, const params *p)
{
    sx_h_tmpdir(r->dir, sizeof(r->dir), "bench-write-raw");
    char path[512];
    snprintf(path, sizeof(path), "%s/store", r->dir);
    sx_err err = {0};
    /* The options a worker's partition store gets (plog.c): a shared 32 MiB
     * cache there, a private one here; other settings at the store defaults. */
    sx_store_opts so = {.block_cache_bytes = 32u << 20};
    if (sx_store_open(path, &so, &r->store, &err) != SX_OK)
        die(err.msg);
    docset_init(&r->ds, p->batch, 999, p->body_len);
    r->batch = sx_batch_create();
}

static void raw_close(raw *r)
{
    sx_store_close(r->store);
    sx_batch_destroy(r->batch);
    sx_buf_free(&r->k);
    sx_buf_free(&r->v);
    docset_free(&r->ds);
    sx_h_rmtree(r->dir);
}

static void put_u64_key(sx_buf *k, uint8_t tag, uint64_t x)
{
    sx_buf_reset(k);
    sx_buf_push(k, tag);
    sx_key_append_u64(k, x);
}

static void pack_into(sx_buf *v, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    sx_buf_reserve(v, n);
    protobuf_c_message_pack(m, v->data + v->len);
    v->len += n;
}

/* One synced batch of p->batch documents, laid out as a replica stores them. */
static void raw_write_batch(raw *r)
{
    static const char applied_key[] = "Mapplied", commit_key[] = "Mcommit";
    const uint64_t epoch = 1;
    docset_fill(&r->ds, 'r', 0, r->seq);
    r->seq += r->ds.n;
    sx_batch_clear(r->batch);
    for (size_t i = 0; i < r->ds.n; i++) {
        uint64_t off = ++r->offset;
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = r->ds.dp[i];
        put_u64_key(&r->k, 'L', off);
        sx_buf_reset(&r->v);
        sx_key_append_u64(&r->v, epoch);
        pack_into(&r->v, &op.base);
        sx_batch_put(r->batch, r->k.data, r->k.len, r->v.data, r->v.len);

        sx_buf_reset(&r->k);
        sx_buf_push(&r->k, 'D');
        sx_key_append_str(&r->k, r->ds.id[i], strlen(r->ds.id[i]));
        sx_buf_reset(&r->v);
        sx_key_append_u64(&r->v, off);
        pack_into(&r->v, &r->ds.d[i].base);
        sx_batch_put(r->batch, r->k.data, r->k.len, r->v.data, r->v.len);
    }
    sx_buf_reset(&r->v);
    sx_key_append_u64(&r->v, r->offset);
    sx_batch_put(r->batch, applied_key, sizeof(applied_key) - 1, r->v.data, r->v.len);
    sx_batch_put(r->batch, commit_key, sizeof(commit_key) - 1, r->v.data, r->v.len);
    sx_err err = {0};
    if (sx_store_write(r->store, r->batch, SX_SYNC_YES, &err) != SX_OK)
        die(err.msg);
}

static void run_raw(raw *r, const params *p, result *res)
{
    uint64_t end = sx_clock_now_ns() + (uint64_t)(p->warmup * 1e9);
    while (sx_clock_now_ns() < end)
        raw_write_batch(r);
    uint64_t t0 = sx_clock_now_ns(), c0 = sx_clock_cpu_us();
    end = t0 + (uint64_t)(p->seconds * 1e9);
    uint64_t t = t0;
    while (t < end) {
        raw_write_batch(r);
        uint64_t t1 = sx_clock_now_ns();
        sx_bench_hist_add(&res->h, t1 - t);
        t = t1;
        res->ops++;
    }
    res->docs = res->ops * p->batch;
    res->t_ns = t - t0;
    res->self_us = sx_clock_cpu_us() - c0;
}

/* ---- a cluster under closed-loop Puts ---- */

typedef struct load load;

typedef struct slot {
    load *L;
    unsigned idx;
    docset ds;
    uint64_t seq; /* next document number of this slot */
    uint64_t t0;
} slot;

struct load {
    sx_cluster *c;
    sx_rpc_client *rpc;
    size_t batch;
    int nslots;
    slot *slots;
    atomic_int phase;
    atomic_int outstanding;
    atomic_uint next_worker;
    atomic_uint_fast64_t done;   /* Puts acknowledged while measuring */
    atomic_uint_fast64_t errors; /* failed Puts */
    pthread_mutex_t mu;          /* h */
    sx_bench_hist *h;
};

static void slot_issue(slot *s);

static void put_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    slot *s = arg;
    load *L = s->L;
    uint64_t t1 = sx_clock_now_ns();
    const Shardex__V1__PutResponse *pr = (const void *)resp;
    bool ok = st == SX_OK && pr && pr->n_tokens == L->batch;
    if (!ok) {
        if (atomic_fetch_add(&L->errors, 1) < 5)
            fprintf(stderr, "bench_write: Put failed: %s\n",
                    st == SX_OK ? "wrong number of tokens" : err->msg);
    }
    sx_rpc_free(resp);
    if (ok && atomic_load_explicit(&L->phase, memory_order_relaxed) == SX_BENCH_MEASURE) {
        pthread_mutex_lock(&L->mu);
        sx_bench_hist_add(L->h, t1 - s->t0);
        pthread_mutex_unlock(&L->mu);
        atomic_fetch_add_explicit(&L->done, 1, memory_order_relaxed);
    }
    if (atomic_load_explicit(&L->phase, memory_order_relaxed) == SX_BENCH_STOP) {
        atomic_fetch_sub(&L->outstanding, 1);
        return;
    }
    if (!ok)
        sx_clock_sleep_ms(20); /* a failing cluster: do not spin */
    slot_issue(s);
}

static void slot_issue(slot *s)
{
    load *L = s->L;
    docset_fill(&s->ds, 'c', s->idx, s->seq);
    s->seq += s->ds.n;
    unsigned w = atomic_fetch_add(&L->next_worker, 1) % L->c->nworkers;
    sx_rpc_call_opts o = {.timeout_ms = PUT_TIMEOUT_MS};
    s->t0 = sx_clock_now_ns();
    sx_rpc_invoke_async(L->rpc, L->c->worker_addr[w], SHARDEX_SVC, "Put", &s->ds.req.base, &o,
                        put_done, s);
}

static void load_init(load *L, sx_cluster *c, sx_rpc_client *rpc, const params *p, unsigned salt)
{
    memset(L, 0, sizeof(*L));
    L->c = c;
    L->rpc = rpc;
    L->batch = p->batch;
    L->nslots = p->clients;
    L->slots = sx_calloc((size_t)p->clients, sizeof(*L->slots));
    for (int i = 0; i < p->clients; i++) {
        slot *s = &L->slots[i];
        s->L = L;
        s->idx = (unsigned)i + salt;
        docset_init(&s->ds, p->batch, s->idx, p->body_len);
    }
    pthread_mutex_init(&L->mu, NULL);
}

static void load_free(load *L)
{
    for (int i = 0; i < L->nslots; i++)
        docset_free(&L->slots[i].ds);
    free(L->slots);
    pthread_mutex_destroy(&L->mu);
}

static void run_cluster(load *L, const params *p, result *res)
{
    atomic_store(&L->phase, SX_BENCH_WARMUP);
    atomic_store(&L->done, 0);
    atomic_store(&L->errors, 0);
    atomic_store(&L->outstanding, L->nslots);
    L->h = &res->h;
    for (int i = 0; i < L->nslots; i++)
        slot_issue(&L->slots[i]);
    sx_clock_sleep_ms((uint64_t)(p->warmup * 1000));
    uint64_t t0 = sx_clock_now_ns(), s0 = sx_clock_cpu_us(), k0 = sx_bench_cluster_cpu_us(L->c);
    atomic_store(&L->phase, SX_BENCH_MEASURE);
    sx_clock_sleep_ms((uint64_t)(p->seconds * 1000));
    atomic_store(&L->phase, SX_BENCH_STOP);
    uint64_t t1 = sx_clock_now_ns(), s1 = sx_clock_cpu_us(), k1 = sx_bench_cluster_cpu_us(L->c);
    res->ops = atomic_load(&L->done);
    while (atomic_load(&L->outstanding) > 0)
        sx_clock_sleep_ms(1);
    res->docs = res->ops * p->batch;
    res->errors = atomic_load(&L->errors);
    res->t_ns = t1 - t0;
    res->self_us = s1 - s0;
    res->clu_us = k1 - k0;
}

/* ======================================================= orchestrator ===== */

enum { C_RAW, C_R1, C_R3, NCONF };

/* Waits (at most QUIET_MAX_MS) until this process and every cluster process
 * together use less than a tenth of a core over QUIET_SLICE_MS, so that a
 * window does not pay for the compactions of the one before. Returns the wait. */
#define QUIET_SLICE_MS 200
#define QUIET_MAX_MS 4000
static uint64_t quiesce(sx_cluster *const *clu, int n)
{
    uint64_t t0 = sx_clock_now_ms();
    while (sx_clock_now_ms() - t0 < QUIET_MAX_MS) {
        uint64_t a = sx_clock_cpu_us();
        for (int i = 0; i < n; i++)
            a += clu[i] ? sx_bench_cluster_cpu_us(clu[i]) : 0;
        sx_clock_sleep_ms(QUIET_SLICE_MS);
        uint64_t z = sx_clock_cpu_us();
        for (int i = 0; i < n; i++)
            z += clu[i] ? sx_bench_cluster_cpu_us(clu[i]) : 0;
        if (z - a < QUIET_SLICE_MS * 1000 / 10)
            break;
    }
    return sx_clock_now_ms() - t0;
}

/* Whether every partition of c has its whole replica set in sync now. */
static bool isr_whole(sx_cluster *c, char *why, size_t cap)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m) {
        snprintf(why, cap, "no map");
        return false;
    }
    size_t short_parts = 0;
    for (size_t i = 0; i < m->n_partitions; i++)
        short_parts +=
            m->partitions[i]->n_isr < m->partitions[i]->n_replicas || m->partitions[i]->leader < 0;
    snprintf(why, cap, "%zu of %zu partitions short of their replica set", short_parts,
             m->n_partitions);
    sx_rpc_free(&m->base);
    return short_parts == 0;
}

/* "a/b/c": partitions led by each test worker, from the coordinator's map. */
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

static bool start_cluster(sx_cluster *c, uint32_t replication, uint32_t min_isr)
{
    sx_cluster_opts o = {.workers = NWORKERS,
                         .partitions = PARTITIONS,
                         .replication = replication,
                         .min_isr = min_isr,
                         .lease_ms = LEASE_MS};
    char label[32];
    snprintf(label, sizeof(label), "R=%u", replication);
    return sx_bench_cluster_start(c, &o, SETTLE_MS, "bench_write", label, label);
}

static const char *conf_label(int c)
{
    switch (c) {
    case C_RAW:
        return "raw LevelDB";
    case C_R1:
        return "R=1";
    default:
        return "R=3";
    }
}

/* The flags as common/flags parses them; main turns them into params. */
typedef struct opts {
    uint32_t rounds;
    const char *seconds, *warmup; /* decimal seconds */
    uint32_t clients;
    uint32_t batch;
    uint32_t doc_bytes;
} opts;

#define OFF(m, t) SX_FLAG_OFFSET(opts, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds, each running raw, R=1 and R=3 once (the order alternates)",
     .min = 1,
     .max = 1000},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "seconds of each measured window (a decimal above 0)"},
    {.name = "warmup",
     .type = SX_FLAG_STRING,
     .offset = OFF(warmup, const char *),
     .metavar = "S",
     .help = "seconds of load before each window, not counted (0 or more)"},
    {.name = "clients",
     .type = SX_FLAG_UINT32,
     .offset = OFF(clients, uint32_t),
     .help = "Puts in flight (closed loop), one per client slot",
     .min = 1,
     .max = MAX_CLIENTS},
    {.name = "batch",
     .type = SX_FLAG_UINT32,
     .offset = OFF(batch, uint32_t),
     .metavar = "B",
     .help = "documents per Put (and per raw LevelDB batch)",
     .min = 1,
     .max = 10000},
    {.name = "doc-bytes",
     .type = SX_FLAG_UINT32,
     .offset = OFF(doc_bytes, uint32_t),
     .help = "packed size of one document",
     .min = 200,
     .max = POOL_BYTES / 2},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_write",
    .synopsis = "[FLAGS]",
    .description = "Acknowledged documents per second through the replicated log (Put on real "
                   "3-worker loopback clusters, R=1 and R=3) against raw LevelDB writing the "
                   "same documents in synced batches, alternately in the same run. Markdown on "
                   "stdout (bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const opts defaults = {.rounds = 5,
                           .seconds = "3",
                           .warmup = "0.5",
                           .clients = 8,
                           .batch = 100,
                           .doc_bytes = 1024};
    opts o = defaults;
    sx_bench_flags(&spec, &o, &defaults, argc, argv);
    params p = {.rounds = (int)o.rounds,
                .seconds = sx_bench_seconds(&spec, "seconds", o.seconds, false),
                .warmup = sx_bench_seconds(&spec, "warmup", o.warmup, true),
                .clients = (int)o.clients,
                .batch = o.batch,
                .doc_bytes = o.doc_bytes};
    sx_bench_process_init("bench_write", on_signal);

    fill_pool();
    p.body_len = body_len_for(p.doc_bytes);
    size_t doc_len, op_len, req_len;
    {
        docset ds;
        docset_init(&ds, p.batch, 0, p.body_len);
        docset_fill(&ds, 'c', 0, 0);
        doc_len = protobuf_c_message_get_packed_size(&ds.d[0].base);
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = ds.dp[0];
        op_len = protobuf_c_message_get_packed_size(&op.base);
        req_len = protobuf_c_message_get_packed_size(&ds.req.base);
        docset_free(&ds);
    }
    fprintf(stderr,
            "bench_write: %d rounds of %.1f s windows after %.1f s warm-up; %d clients, Puts of "
            "%zu documents of %zu bytes (LogOp %zu bytes, request %zu bytes)\n",
            p.rounds, p.seconds, p.warmup, p.clients, p.batch, doc_len, op_len, req_len);

    /* Everything this run starts, stopped and removed on every way out below. */
    sx_cluster *clu[NCONF] = {NULL, sx_calloc(1, sizeof(sx_cluster)),
                              sx_calloc(1, sizeof(sx_cluster))};
    bool up[NCONF] = {false};
    raw rw;
    memset(&rw, 0, sizeof(rw));
    raw_open(&rw, &p);
    sx_rpc_client *rpc = NULL;
    sx_err err = {0};
    sx_rpc_client_opts co = {.faults = ""};
    if (sx_rpc_client_create(&co, &rpc, &err) != SX_OK)
        die(err.msg);
    load loads[NCONF];
    memset(loads, 0, sizeof(loads));
    bool ok = true;
    up[C_R1] = start_cluster(clu[C_R1], 1, 1);
    up[C_R3] = up[C_R1] && !g_stop && start_cluster(clu[C_R3], 3, 2);
    ok = up[C_R1] && up[C_R3] && !g_stop;
    char led[NCONF][64] = {"", "", ""};
    if (ok) {
        leaders_per_worker(clu[C_R1], led[C_R1], sizeof(led[C_R1]));
        leaders_per_worker(clu[C_R3], led[C_R3], sizeof(led[C_R3]));
        fprintf(stderr, "bench_write: partitions led per worker: R=1 %s, R=3 %s\n", led[C_R1],
                led[C_R3]);
        load_init(&loads[C_R1], clu[C_R1], rpc, &p, 0);
        load_init(&loads[C_R3], clu[C_R3], rpc, &p, (unsigned)p.clients);
    }

    double *rate[NCONF], *selfcpu[NCONF], *clucpu[NCONF], *opsps[NCONF];
    sx_bench_hist *hists[NCONF];
    for (int c = 0; c < NCONF; c++) {
        rate[c] = sx_calloc((size_t)p.rounds, sizeof(double));
        opsps[c] = sx_calloc((size_t)p.rounds, sizeof(double));
        selfcpu[c] = sx_calloc((size_t)p.rounds, sizeof(double));
        clucpu[c] = sx_calloc((size_t)p.rounds, sizeof(double));
        hists[c] = sx_calloc(1, sizeof(sx_bench_hist));
    }
    result *res = sx_malloc(sizeof(*res));
    uint64_t errors = 0;
    int rounds_done = 0;
    for (int round = 0; ok && round < p.rounds && !g_stop; round++) {
        static const int order[2][NCONF] = {{C_RAW, C_R1, C_R3}, {C_R3, C_R1, C_RAW}};
        for (int k = 0; k < NCONF && !g_stop; k++) {
            int c = order[round % 2][k];
            uint64_t waited = quiesce(clu, NCONF);
            memset(res, 0, sizeof(*res));
            if (c == C_RAW)
                run_raw(&rw, &p, res);
            else
                run_cluster(&loads[c], &p, res);
            double docs = res->docs ? (double)res->docs : 1;
            rate[c][round] = (double)res->docs * 1e9 / (double)res->t_ns;
            opsps[c][round] = (double)res->ops * 1e9 / (double)res->t_ns;
            selfcpu[c][round] = (double)res->self_us / docs;
            clucpu[c][round] = (double)res->clu_us / docs;
            sx_bench_hist_merge(hists[c], &res->h);
            errors += res->errors;
            fprintf(stderr,
                    "round %d %-12s %8.0f docs/s  cluster %6.1f us/doc  this process %6.1f "
                    "us/doc  p50 %.2f ms p99 %.2f ms  (quiet after %.1f s)%s\n",
                    round + 1, conf_label(c), rate[c][round], clucpu[c][round], selfcpu[c][round],
                    sx_bench_hist_quantile(&res->h, 0.5) / 1e6,
                    sx_bench_hist_quantile(&res->h, 0.99) / 1e6, (double)waited / 1e3,
                    res->errors ? "  (errors)" : "");
        }
        if (!g_stop)
            rounds_done++;
    }
    free(res);

    char why1[256] = "", why3[256] = "";
    bool whole1 = ok && isr_whole(clu[C_R1], why1, sizeof(why1));
    bool whole3 = ok && isr_whole(clu[C_R3], why3, sizeof(why3));
    if (ok) {
        load_free(&loads[C_R1]);
        load_free(&loads[C_R3]);
    }
    uint64_t t_stop = sx_clock_now_ms();
    sx_rpc_client_destroy(rpc);
    for (int c = C_R1; c <= C_R3; c++)
        sx_bench_cluster_signal(clu[c]);
    for (int c = C_R1; c <= C_R3; c++) {
        if (clu[c]->dir[0])
            sx_cluster_stop(clu[c]);
        free(clu[c]);
    }
    raw_close(&rw);
    sx_rpc_wait_shutdown(2000);
    fprintf(stderr, "bench_write: clusters stopped, directories removed in %.1f s\n",
            (double)(sx_clock_now_ms() - t_stop) / 1e3);
    if (!ok || rounds_done < 1) {
        fprintf(stderr, "bench_write: %s\n", g_stop ? "interrupted" : "clusters did not start");
        return 1;
    }
    int n = rounds_done;

    /* ---- the tables ---- */
    printf("Closed loop on loopback: %d clients in this process, each keeping one Put of %zu "
           "documents in flight (`sx_rpc_invoke_async`), sent to the %d workers round-robin; "
           "documents of %zu bytes packed (4 fields: a %d-byte title, a %zu-byte body of "
           "random text, an int, a tag; a fresh 16-byte id each, so every Put inserts), a "
           "%zu-byte PutRequest. %d worker processes and a coordinator per cluster, P=%d, "
           "lease %d ms, default `--fsync batch`; both clusters up for the whole run. "
           "%d rounds of %.1f s windows after %.1f s warm-up, in the order raw, R=1, R=3, "
           "then R=3, R=1, raw, each window starting once every process of the run is idle "
           "(under 0.1 core for 0.2 s, at most 4 s: compactions of the window before); no CPU "
           "pinning. Medians over rounds; latency over all "
           "windows (per Put from issue to acknowledgement; raw: per synced batch).\n\n",
           p.clients, p.batch, NWORKERS, doc_len, TITLE_LEN, p.body_len, req_len, NWORKERS,
           PARTITIONS, LEASE_MS, n, p.seconds, p.warmup);
    printf("| configuration | docs/s | Puts (batches)/s | cluster CPU us/doc | "
           "bench process CPU us/doc | latency p50 / p99 / p99.9 ms | timed |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int c = 0; c < NCONF; c++) {
        char label[128];
        if (c == C_RAW)
            snprintf(label, sizeof(label), "raw LevelDB, 1 thread, synced batches of %zu", p.batch);
        else
            snprintf(label, sizeof(label), "%s (min_isr %d), %d Puts in flight", conf_label(c),
                     c == C_R1 ? 1 : 2, p.clients);
        char clu_s[32];
        if (c == C_RAW)
            snprintf(clu_s, sizeof(clu_s), "-");
        else
            snprintf(clu_s, sizeof(clu_s), "%.1f", sx_bench_median(clucpu[c], n, NULL, NULL));
        char lat[96];
        sx_bench_fmt_latency(hists[c], 1e6, 2, lat, sizeof(lat));
        printf("| %s | %.0f | %.0f | %s | %.1f | %s | %llu |\n", label,
               sx_bench_median(rate[c], n, NULL, NULL), sx_bench_median(opsps[c], n, NULL, NULL),
               clu_s, sx_bench_median(selfcpu[c], n, NULL, NULL), lat,
               (unsigned long long)hists[c]->count);
    }
    printf("\n| ratio to raw LevelDB, median of rounds (min - max) | throughput | goal | "
           "CPU per doc (cluster + bench process) / raw |\n");
    printf("| --- | ---: | --- | ---: |\n");
    double *v = sx_calloc((size_t)n, sizeof(double));
    for (int c = C_R1; c <= C_R3; c++) {
        char cell[96];
        for (int i = 0; i < n; i++)
            v[i] = rate[c][i] / rate[C_RAW][i];
        double m = sx_bench_fmt_median_range(v, n, 2, cell, sizeof(cell));
        double goal = c == C_R1 ? 0.5 : 0.25;
        printf("| %s | %s | >= %.2f: %s |", conf_label(c), cell, goal,
               m >= goal ? "met" : "**missed**");
        for (int i = 0; i < n; i++)
            v[i] = (clucpu[c][i] + selfcpu[c][i]) / selfcpu[C_RAW][i];
        sx_bench_fmt_median_range(v, n, 1, cell, sizeof(cell));
        printf(" %s |\n", cell);
    }
    free(v);
    printf("\nPartitions led by each worker (of %d): R=1 %s, R=3 %s. At the end of the run: "
           "R=1 ISR %s; R=3 ISR %s; %llu Puts failed.\n",
           PARTITIONS, led[C_R1], led[C_R3], whole1 ? "whole" : why1, whole3 ? "whole" : why3,
           (unsigned long long)errors);
    if (errors || !whole3)
        printf("\n**Puts failed or an ISR shrank during the run: the figures are not valid.**\n");
    for (int c = 0; c < NCONF; c++) {
        free(rate[c]);
        free(opsps[c]);
        free(selfcpu[c]);
        free(clucpu[c]);
        free(hists[c]);
    }
    return errors ? 1 : 0;
}
