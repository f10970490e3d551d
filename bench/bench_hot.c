/* bench_hot: one hot value of a GLOBAL index before and after it is salted
 * (issue 17, "hot values"; docs/indexes.md "Hot values"), in the same run on
 * the same cluster (BENCHMARKING.md).
 *
 *   bench_hot [--rounds N] [--docs N]   (--help: each with its default)
 *
 * The subject: one cluster started through tests/support/cluster.h, a
 * coordinator and 3 workers as processes on loopback, P=8, R=3, min_isr 2,
 * settled; one GLOBAL-only hash index of the int field m with M=8 term
 * partitions. Every document written holds the same value HOT, so every
 * change of the index goes to one term partition until HOT is salted (then
 * to 8, spread by a hash of the id).
 *
 * The load, per round: --docs puts (batches of 50 overwriting ids from a pool
 * of 4x that, through each worker in turn, sequential), then an eq query on
 * HOT with every put's token, which waits until the term partitions have
 * every change: indexed writes per second = docs / (first put to that
 * answer). Then 100 eq queries on HOT (limit 100, no token): their latency.
 * --rounds rounds before the salt, then SaltIndex over 8 and a wait until the
 * coordinator made it active and every worker plans with it, then --rounds
 * after. Markdown on stdout, progress on stderr.
 */
#include "benchlib.h"
#include "clock.h"
#include "cluster.h"
#include "mem.h"
#include "query.h"
#include "rpc.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NWORKERS 3
#define PARTITIONS 8
#define SETTLE_MS 60000
#define M 8
#define HOT 4242
#define BATCH 50
#define NQ 100
#define MAXROUNDS 20

static const char *const NAME = "m_hot";
static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct params {
    uint32_t rounds;
    uint32_t docs;
} params;

typedef struct phase {
    double rate[MAXROUNDS]; /* indexed writes per second, per round */
    sx_bench_hist q;        /* eq on HOT */
    uint32_t contacted;
    uint64_t failed;
} phase;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One round: the writes until the index has them, then the queries. */
static bool round_once(sx_cluster *c, const params *p, phase *ph, int r, uint64_t *rng)
{
    sx_qdoc *docs = sx_calloc(BATCH, sizeof(*docs));
    sx_qtokens toks = {0};
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ns();
    for (uint32_t n = 0, b = 0; n < p->docs && !g_stop; n += BATCH, b++) {
        for (int i = 0; i < BATCH; i++) {
            memset(&docs[i], 0, sizeof(docs[i]));
            snprintf(docs[i].id, sizeof(docs[i].id), "doc-%06u",
                     (unsigned)(rnd(rng) % (4u * p->docs)));
            sx_qdoc_add(&docs[i], "m", sx_qval_int(HOT));
            sx_qdoc_add(&docs[i], "r", sx_qval_int((int64_t)r));
        }
        if (sx_q_put(c, c->worker_addr[b % NWORKERS], docs, BATCH, 30000, &toks, NULL, &err) !=
            SX_OK) {
            fprintf(stderr, "bench_hot: put: %s\n", err.msg);
            free(docs);
            return false;
        }
    }
    free(docs);
    sx_qreq q = {.index = NAME,
                 .match = {.eq = sx_qval_int(HOT)},
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = 1,
                 .after = &toks,
                 .timeout_ms = 60000};
    Shardex__V1__QueryResponse *resp = NULL;
    if (sx_q_query(c, c->worker_addr[0], &q, NULL, &resp, &err) != SX_OK) {
        fprintf(stderr, "bench_hot: query with the tokens: %s\n", err.msg);
        return false;
    }
    sx_rpc_free(&resp->base);
    ph->rate[r] = (double)p->docs / ((double)(sx_clock_now_ns() - t0) / 1e9);
    q.after = NULL;
    q.limit = 100;
    for (int i = 0; i < NQ && !g_stop; i++) {
        resp = NULL;
        uint64_t s = sx_clock_now_ns();
        sx_status st = sx_q_query(c, c->worker_addr[i % NWORKERS], &q, NULL, &resp, &err);
        if (st != SX_OK) {
            ph->failed++;
            continue;
        }
        sx_bench_hist_add(&ph->q, sx_clock_now_ns() - s);
        ph->contacted = resp->partitions_contacted;
        sx_rpc_free(&resp->base);
    }
    return !g_stop;
}

/* Whether the map's salt of NAME is active. */
static bool salt_active(sx_cluster *c)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    bool active = false;
    for (size_t i = 0; m && i < m->n_indexes; i++)
        if (strcmp(m->indexes[i]->spec->name, NAME) == 0 && m->indexes[i]->n_salts)
            active = m->indexes[i]->salts[0]->active;
    if (m)
        sx_rpc_free(&m->base);
    return active;
}

/* Salts HOT over M and waits until it is active and every worker's eq on
 * HOT reads M partitions: the ms it took, or -1. */
static int64_t salt_hot(sx_cluster *c)
{
    Shardex__V1__SaltIndexRequest req = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = HOT;
    req.name = (char *)NAME;
    req.value = &v;
    req.ways = M;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    uint64_t t0 = sx_clock_now_ms();
    if (sx_rpc_invoke(c->rpc, c->worker_addr[0], &shardex__v1__shardex__descriptor, "SaltIndex",
                      &req.base, &resp, &o, &err) != SX_OK) {
        fprintf(stderr, "bench_hot: salt: %s\n", err.msg);
        return -1;
    }
    sx_rpc_free(resp);
    while (!g_stop && sx_clock_now_ms() - t0 < SETTLE_MS) {
        bool done = salt_active(c);
        for (int w = 0; done && w < NWORKERS; w++) {
            sx_qreq q = {.index = NAME,
                         .match = {.eq = sx_qval_int(HOT)},
                         .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                         .limit = 1};
            Shardex__V1__QueryResponse *r = NULL;
            done = sx_q_query(c, c->worker_addr[w], &q, NULL, &r, &err) == SX_OK &&
                   r->partitions_contacted == M;
            if (r)
                sx_rpc_free(&r->base);
        }
        if (done)
            return (int64_t)(sx_clock_now_ms() - t0);
        struct timespec ts = {0, 10 * 1000000L}; /* a bench may wait: no test asserts on it */
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench_hot: the salt was not active in %d ms\n", SETTLE_MS);
    return -1;
}

static void report(const params *p, phase ph[2], int64_t salt_ms)
{
    printf("One cluster: coordinator + %d workers, P=%d, R=3, min_isr 2; one GLOBAL hash index of "
           "an int field with M=%d term partitions; every document written holds the same value. "
           "Per round: %u puts (batches of %d, overwriting ids from a pool of %u, sequential, "
           "through each worker in turn), timed from the first put until an eq query on the "
           "value with every put's token answers (the term partitions have every change); then "
           "%d eq queries on the value (limit 100, GLOBAL, no token). %u rounds before "
           "SaltIndex over %d term partitions, %u after (SaltIndex to active and every worker "
           "reading the salt set: %" PRId64 " ms).\n\n",
           NWORKERS, PARTITIONS, M, p->docs, BATCH, 4 * p->docs, NQ, p->rounds, M, p->rounds,
           salt_ms);
    double lo[2], hi[2], med[2];
    char rb[2][96], lb[2][96];
    for (int k = 0; k < 2; k++) {
        med[k] = sx_bench_fmt_median_range(ph[k].rate, (int)p->rounds, 0, rb[k], sizeof(rb[k]));
        sx_bench_median(ph[k].rate, (int)p->rounds, &lo[k], &hi[k]);
        sx_bench_fmt_latency(&ph[k].q, 1e6, 2, lb[k], sizeof(lb[k]));
    }
    double q0 = sx_bench_hist_quantile(&ph[0].q, 0.5), q1 = sx_bench_hist_quantile(&ph[1].q, 0.5);
    printf("| | indexed writes/s, median (min - max) of rounds | eq on the value: contacted | eq "
           "p50 / p99 / p99.9 ms |\n");
    printf("| --- | --- | --- | --- |\n");
    printf("| before the salt | %s | %u | %s%s |\n", rb[0], ph[0].contacted, lb[0],
           ph[0].failed ? " (+ failed)" : "");
    printf("| after the salt | %s | %u | %s%s |\n", rb[1], ph[1].contacted, lb[1],
           ph[1].failed ? " (+ failed)" : "");
    printf("| after / before | %.2f | | %.2f (p50) |\n", med[0] > 0 ? med[1] / med[0] : 0,
           q0 > 0 ? q1 / q0 : 0);
}

#define OFF(m, t) SX_FLAG_OFFSET(params, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds before the salt, and as many after",
     .min = 1,
     .max = MAXROUNDS},
    {.name = "docs",
     .type = SX_FLAG_UINT32,
     .offset = OFF(docs, uint32_t),
     .help = "puts per round (a multiple of 50)",
     .min = BATCH,
     .max = 1000000},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_hot",
    .synopsis = "[FLAGS]",
    .description = "Indexed writes per second and eq-query latency with one hot value of a GLOBAL "
                   "index, before and after it is salted, in the same run. Markdown on stdout "
                   "(bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const params defaults = {.rounds = 3, .docs = 2000};
    params p = defaults;
    sx_bench_flags(&spec, &p, &defaults, argc, argv);
    sx_bench_process_init("bench_hot", on_signal);
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    sx_cluster_opts co = {.workers = NWORKERS, .partitions = PARTITIONS};
    int rc = 1;
    sx_err err = {0};
    sx_qindex ix = {
        .name = NAME, .field = "m", .is_int = true, .global = true, .term_partitions = M};
    if (!sx_bench_cluster_start(c, &co, SETTLE_MS, "bench_hot", "P=8 R=3", "P=8 R=3"))
        goto out;
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK ||
        !sx_q_wait_ready(c, c->worker_addr[0], NAME, SETTLE_MS)) {
        fprintf(stderr, "bench_hot: create index: %s\n", err.msg);
        goto out;
    }
    static phase ph[2];
    uint64_t rng = 0x407;
    int64_t salt_ms = -1;
    bool ok = true;
    for (int k = 0; k < 2 && ok && !g_stop; k++) {
        if (k == 1 && (salt_ms = salt_hot(c)) < 0)
            break;
        for (uint32_t r = 0; r < p.rounds && ok; r++)
            ok = round_once(c, &p, &ph[k], (int)r, &rng);
        fprintf(stderr, "bench_hot: %s the salt done\n", k ? "after" : "before");
    }
    if (ok && salt_ms >= 0 && !g_stop) {
        report(&p, ph, salt_ms);
        rc = 0;
    }
out:
    sx_bench_cluster_signal(c);
    sx_cluster_stop(c);
    free(c);
    return rc;
}
