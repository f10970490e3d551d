/* bench_range: GLOBAL range queries on a hash-partitioned and on a
 * range-partitioned index of the same field, against the width of the range
 * (issue 17, "range-partitioned global indexes"): latency, and how many term
 * partitions each query contacted (QueryResponse.partitions_contacted). Both
 * indexes alternate in every round, on one cluster, in the same run
 * (BENCHMARKING.md).
 *
 *   bench_range [--rounds N] [--queries N]   (--help: each with its default)
 *
 * The subject: one cluster started through tests/support/cluster.h, a
 * coordinator and 3 workers as processes on loopback, P=8, R=3, min_isr 2,
 * settled; DOCS documents whose int field n is drawn uniformly from
 * [0, SPAN). Two GLOBAL-only indexes of n with M=8 term partitions each:
 * "n_hash" (PARTITIONING_HASH) and "n_range" (PARTITIONING_RANGE, split
 * points every SPAN/8: the data's own octiles, as a sample would give).
 *
 * The load: for each width w, --queries range queries [x, x + w - 1] with x
 * uniform in [0, SPAN - w], one page of up to 10000 hits, sequential, each
 * through the next worker in turn; latency from the caller's point of view
 * into a log-bucketed histogram per (width, index). Markdown on stdout,
 * progress on stderr.
 *
 * Then an online split (docs/indexes.md "Online split"): queries confined to
 * n_range's first term partition [0, SPAN/8) (the whole of it, and width
 * 100 inside it), --queries x --rounds of each, before and after that
 * partition is split at SPAN/16 (the time from SplitIndex to the swap
 * reported too): the partition's entries are then read from two owners in
 * parallel.
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
#define DOCS 8000
#define SPAN 100000
#define M 8
#define NWIDTHS 6
#define NIX 2

static const int64_t widths[NWIDTHS] = {1, 100, 1000, 10000, 50000, SPAN};
static const char *const names[NIX] = {"n_hash", "n_range"};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct params {
    uint32_t rounds;
    uint32_t queries;
} params;

/* What one (width, index) measured, over every round. */
typedef struct cell {
    sx_bench_hist h;
    uint64_t queries, contacted, hits, failed;
    uint32_t min_contacted, max_contacted;
} cell;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* nq queries [x, x + width - 1] of index `name`, x uniform in [0, span - width],
 * through worker `first`, then each in turn. */
static void run_queries(sx_cluster *c, const char *name, uint32_t first, uint32_t nq, int64_t span,
                        int64_t width, cell *r, uint64_t *rng)
{
    for (uint32_t i = 0; i < nq && !g_stop; i++) {
        int64_t x = (int64_t)(rnd(rng) % (uint64_t)(span - width + 1));
        sx_qreq q = {.index = name,
                     .match = {.range = true,
                               .has_min = true,
                               .has_max = true,
                               .min = sx_qval_int(x),
                               .max = sx_qval_int(x + width - 1)},
                     .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                     .limit = 10000,
                     .timeout_ms = 10000};
        Shardex__V1__QueryResponse *resp = NULL;
        sx_err err = {0};
        uint64_t t0 = sx_clock_now_ns();
        sx_status st = sx_q_query(c, c->worker_addr[(first + i) % NWORKERS], &q, NULL, &resp, &err);
        uint64_t ns = sx_clock_now_ns() - t0;
        if (st != SX_OK) {
            r->failed++;
        } else {
            sx_bench_hist_add(&r->h, ns);
            uint32_t n = resp->partitions_contacted;
            r->queries++;
            r->contacted += n;
            r->hits += resp->n_hits;
            if (r->queries == 1 || n < r->min_contacted)
                r->min_contacted = n;
            if (n > r->max_contacted)
                r->max_contacted = n;
        }
        if (resp)
            sx_rpc_free(&resp->base);
    }
}

static void run_cell(sx_cluster *c, const params *p, int w, int k, cell *r, uint64_t *rng)
{
    run_queries(c, names[k], 0, p->queries, SPAN, widths[w], r, rng);
}

/* ------------------------------------------------------------ the split -- */

#define NHOT 2
static const int64_t hot_widths[NHOT] = {SPAN / M, 100};

/* Splits n_range's term partition 0 at SPAN / (2M) and waits for the swap:
 * the ms it took, or -1. */
static int64_t split_hot(sx_cluster *c)
{
    Shardex__V1__SplitIndexRequest req = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    Shardex__V1__Value at = SHARDEX__V1__VALUE__INIT;
    at.kind_case = SHARDEX__V1__VALUE__KIND_I;
    at.i = SPAN / (2 * M);
    req.name = (char *)names[1];
    req.term_partition = 0;
    req.at = &at;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    uint64_t t0 = sx_clock_now_ms();
    sx_status st = sx_rpc_invoke(c->rpc, c->worker_addr[0], &shardex__v1__shardex__descriptor,
                                 "SplitIndex", &req.base, &resp, &o, &err);
    sx_rpc_free(resp);
    if (st != SX_OK) {
        fprintf(stderr, "bench_range: split: %s\n", err.msg);
        return -1;
    }
    while (!g_stop && sx_clock_now_ms() - t0 < SETTLE_MS) {
        Shardex__V1__ListIndexesResponse *l = NULL;
        bool done = false;
        if (sx_q_list_indexes(c, c->worker_addr[0], &l, NULL) == SX_OK) {
            const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, names[1]);
            done = ix && ix->splits_done == 1;
        }
        if (l)
            sx_rpc_free(&l->base);
        /* Then until every worker plans with the new map (it comes with a
         * heartbeat): a query over the old partition reads both halves. */
        for (int w = 0; done && w < NWORKERS; w++) {
            cell probe = {0};
            uint64_t s = 1;
            run_queries(c, names[1], (uint32_t)w, 1, SPAN / M, SPAN / M, &probe, &s);
            done = probe.queries == 1 && probe.contacted == 2;
        }
        if (done)
            return (int64_t)(sx_clock_now_ms() - t0);
        struct timespec ts = {0, 10 * 1000000L}; /* a bench may wait: no test asserts on it */
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench_range: the split did not swap in %d ms\n", SETTLE_MS);
    return -1;
}

static void report_split(const params *p, cell hot[2][NHOT], int64_t swap_ms)
{
    printf("\nThe same cluster and data, then an online split: queries inside n_range's first "
           "term partition [0, %d) (all of it, and width 100 in it), %u per width per round, %u "
           "rounds, before and after that partition is split at %d (SplitIndex to every worker "
           "planning with the swapped layout: "
           "%" PRId64 " ms). Before and after run one after the other, not interleaved.\n\n",
           SPAN / M, p->queries, p->rounds, SPAN / (2 * M), swap_ms);
    printf("| width | hits/query | before: contacted | before: p50 / p99 / p99.9 ms | after: "
           "contacted | after: p50 / p99 / p99.9 ms | after p50 / before p50 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int w = 0; w < NHOT; w++) {
        cell *b = &hot[0][w], *a = &hot[1][w];
        char lb[96], la[96];
        sx_bench_fmt_latency(&b->h, 1e6, 2, lb, sizeof(lb));
        sx_bench_fmt_latency(&a->h, 1e6, 2, la, sizeof(la));
        double qb = b->queries ? (double)b->queries : 1, qa = a->queries ? (double)a->queries : 1;
        double pb = sx_bench_hist_quantile(&b->h, 0.5), pa = sx_bench_hist_quantile(&a->h, 0.5);
        printf("| %" PRId64 " | %.1f | %.2f | %s%s | %.2f | %s%s | %.2f |\n", hot_widths[w],
               (double)a->hits / qa, (double)b->contacted / qb, lb, b->failed ? " (+ failed)" : "",
               (double)a->contacted / qa, la, a->failed ? " (+ failed)" : "", pb > 0 ? pa / pb : 0);
    }
}

static bool load_docs(sx_cluster *c)
{
    sx_err err = {0};
    sx_qindex hash = {
        .name = names[0], .field = "n", .is_int = true, .global = true, .term_partitions = M};
    sx_qindex range = {
        .name = names[1], .field = "n", .is_int = true, .global = true, .nsplits = M - 1};
    for (int t = 1; t < M; t++)
        range.splits[t - 1] = sx_qval_int((int64_t)SPAN / M * t);
    if (sx_q_create_index(c, c->worker_addr[0], &hash, &err) != SX_OK ||
        sx_q_create_index(c, c->worker_addr[0], &range, &err) != SX_OK) {
        fprintf(stderr, "bench_range: create index: %s\n", err.msg);
        return false;
    }
    enum { BATCH = 100 };
    sx_qdoc *docs = sx_calloc(BATCH, sizeof(*docs));
    uint64_t rng = 0x5eed;
    for (int base = 0; base < DOCS; base += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            memset(&docs[i], 0, sizeof(docs[i]));
            snprintf(docs[i].id, sizeof(docs[i].id), "doc-%06d", base + i);
            sx_qdoc_add(&docs[i], "n", sx_qval_int((int64_t)(rnd(&rng) % SPAN)));
        }
        if (sx_q_put(c, c->worker_addr[base / BATCH % NWORKERS], docs, BATCH, 30000, NULL, NULL,
                     &err) != SX_OK) {
            fprintf(stderr, "bench_range: put: %s\n", err.msg);
            free(docs);
            return false;
        }
    }
    free(docs);
    return sx_q_wait_ready(c, c->worker_addr[0], names[0], SETTLE_MS) &&
           sx_q_wait_ready(c, c->worker_addr[0], names[1], SETTLE_MS);
}

static void report(const params *p, cell res[NWIDTHS][NIX])
{
    printf("One cluster: coordinator + %d workers, P=%d, R=3, min_isr 2; %d documents with an int "
           "field uniform in [0, %d); two GLOBAL indexes of it with M=%d term partitions, by hash "
           "and by range (split points every %d). Per width w: %u range queries "
           "[x, x + w - 1] per index per round, sequential, one page (limit 10000), GLOBAL, "
           "through each worker in turn; %u rounds, the indexes alternating. Latency from the "
           "client over all rounds.\n\n",
           NWORKERS, PARTITIONS, DOCS, SPAN, M, SPAN / M, p->queries, p->rounds);
    printf("| width | hits/query | hash: contacted | hash: p50 / p99 / p99.9 ms | range: contacted "
           "(min - max) | range: p50 / p99 / p99.9 ms | range p50 / hash p50 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int w = 0; w < NWIDTHS; w++) {
        cell *h = &res[w][0], *r = &res[w][1];
        char lh[96], lr[96];
        sx_bench_fmt_latency(&h->h, 1e6, 2, lh, sizeof(lh));
        sx_bench_fmt_latency(&r->h, 1e6, 2, lr, sizeof(lr));
        double qh = h->queries ? (double)h->queries : 1, qr = r->queries ? (double)r->queries : 1;
        double ph = sx_bench_hist_quantile(&h->h, 0.5), pr = sx_bench_hist_quantile(&r->h, 0.5);
        printf("| %" PRId64 " | %.1f | %.2f | %s%s | %.2f (%u - %u) | %s%s | %.2f |\n", widths[w],
               (double)r->hits / qr, (double)h->contacted / qh, lh, h->failed ? " (+ failed)" : "",
               (double)r->contacted / qr, r->min_contacted, r->max_contacted, lr,
               r->failed ? " (+ failed)" : "", ph > 0 ? pr / ph : 0);
    }
}

#define OFF(m, t) SX_FLAG_OFFSET(params, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds, each every (width, index) once",
     .min = 1,
     .max = 1000},
    {.name = "queries",
     .type = SX_FLAG_UINT32,
     .offset = OFF(queries, uint32_t),
     .help = "queries per (width, index) per round",
     .min = 1,
     .max = 1000000},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_range",
    .synopsis = "[FLAGS]",
    .description = "GLOBAL range-query latency and term partitions contacted against the range's "
                   "width, hash vs range partitioning of the same field. Markdown on stdout "
                   "(bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const params defaults = {.rounds = 3, .queries = 100};
    params p = defaults;
    sx_bench_flags(&spec, &p, &defaults, argc, argv);
    sx_bench_process_init("bench_range", on_signal);
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    sx_cluster_opts co = {.workers = NWORKERS, .partitions = PARTITIONS};
    int rc = 1;
    if (!sx_bench_cluster_start(c, &co, SETTLE_MS, "bench_range", "P=8 R=3", "P=8 R=3") ||
        !load_docs(c))
        goto out;
    static cell res[NWIDTHS][NIX];
    uint64_t rng = 0x7a11;
    int done = 0;
    for (uint32_t r = 0; r < p.rounds && !g_stop; r++, done++)
        for (int w = 0; w < NWIDTHS && !g_stop; w++)
            for (int k = 0; k < NIX; k++) {
                int kk = (r + (uint32_t)w) % 2 ? NIX - 1 - k : k; /* alternate the order */
                run_cell(c, &p, w, kk, &res[w][kk], &rng);
            }
    fprintf(stderr, "bench_range: %d rounds done\n", done);
    static cell hot[2][NHOT]; /* [before, after][width] */
    int64_t swap_ms = -1;
    for (int phase = 0; phase < 2 && done == (int)p.rounds && !g_stop; phase++) {
        if (phase == 1 && (swap_ms = split_hot(c)) < 0)
            break;
        for (uint32_t r = 0; r < p.rounds && !g_stop; r++)
            for (int w = 0; w < NHOT; w++)
                run_queries(c, names[1], 0, p.queries, SPAN / M, hot_widths[w], &hot[phase][w],
                            &rng);
    }
    if (done == (int)p.rounds && swap_ms >= 0 && !g_stop) {
        report(&p, res);
        report_split(&p, hot, swap_ms);
        rc = 0;
    }
out:
    sx_bench_cluster_signal(c);
    sx_cluster_stop(c);
    free(c);
    return rc;
}
