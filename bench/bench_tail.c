/* bench_tail: LOCAL query tail latency with one slow worker (issue 17,
 * "answers that say how complete they are"): no budget (the baseline: a
 * LOCAL query waits for its slowest partition), a latency budget (partial
 * answers), and a budget with hedged reads to followers (a staleness bound);
 * and the same three with no slow worker, as the reference. All six
 * alternate in every round, on one cluster, in the same run (BENCHMARKING.md).
 *
 *   bench_tail [--rounds N] [--seconds S] [--callers N] [--slow-ms N]
 *              [--slow-fraction F] [--budget-ms N] [--staleness-ms N]
 *              (--help: each with its default)
 *
 * The subject: one cluster started through tests/support/cluster.h, a
 * coordinator and 3 workers as processes on loopback, P=8, R=3, min_isr 2,
 * settled; DOCS documents with one of VALUES values of a LOCAL index. Every
 * query goes through worker 1 (Q). "One slow worker" is worker 0 (W) as Q
 * sees it: Q's rpc fault layer (WorkerAdmin.SetFaults) delays that fraction
 * of the ScanLocal calls it sends to W by --slow-ms, so a query whose scans
 * reach a slow call of W waits for it. (W leads about P/3 partitions; Q's own
 * scans are local calls, without the fault layer.)
 *
 * The load: --callers threads, closed loop, each an equality query for a
 * random value (LIMIT hits per page, one page) through Q, with the cluster's
 * rpc client; latency from the caller's point of view into a log-bucketed
 * histogram per configuration, merged over rounds. CPU: utime + stime of the
 * cluster's processes over each window, per query. Markdown on stdout,
 * progress on stderr.
 */
#include "benchlib.h"
#include "clock.h"
#include "cluster.h"
#include "mem.h"
#include "query.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NWORKERS 3
#define PARTITIONS 8
#define SETTLE_MS 60000
#define DOCS 4000
#define VALUES 100
#define LIMIT 100
#define MAX_CALLERS 32
#define SLOW 0 /* W */
#define VIA 1  /* Q */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* ------------------------------------------------------- configurations -- */

typedef struct conf {
    const char *name;
    bool slow;
    bool budget;
    bool hedge;
} conf;

#define NCONF 6
static const conf confs[NCONF] = {
    {"slow worker, no budget (baseline)", true, false, false},
    {"slow worker, budget", true, true, false},
    {"slow worker, budget + hedging", true, true, true},
    {"no slow worker, no budget", false, false, false},
    {"no slow worker, budget", false, true, false},
    {"no slow worker, budget + hedging", false, true, true},
};

typedef struct params {
    uint32_t rounds;
    const char *seconds;
    uint32_t callers;
    uint32_t slow_ms;
    const char *slow_fraction;
    uint32_t budget_ms;
    uint32_t staleness_ms;
} params;

/* What one configuration measured, over every round. */
typedef struct result {
    sx_bench_hist h;
    uint64_t queries, partial, hedged, failed;
    uint64_t max_stale_ms;
    double *p99; /* per round, ms */
    double cpu_us;
} result;

/* ------------------------------------------------------------------ load -- */

typedef struct window {
    sx_cluster *c;
    const conf *cf;
    const params *p;
    atomic_int phase; /* sx_bench_phase */
    pthread_mutex_t mu;
    result *r;
} window;

typedef struct caller {
    window *w;
    uint64_t rng;
    pthread_t t;
} caller;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *caller_main(void *arg)
{
    caller *k = arg;
    window *w = k->w;
    char val[32];
    while (atomic_load(&w->phase) != SX_BENCH_STOP) {
        snprintf(val, sizeof(val), "v%03u", (unsigned)(rnd(&k->rng) % VALUES));
        sx_qreq q = {.index = "v",
                     .match = {.eq = sx_qval_str(val)},
                     .mode = SHARDEX__V1__MODE__MODE_LOCAL,
                     .limit = LIMIT,
                     .timeout_ms = 10000,
                     .budget_ms = w->cf->budget ? w->p->budget_ms : 0,
                     .max_staleness_ms = w->cf->hedge ? w->p->staleness_ms : 0};
        Shardex__V1__QueryResponse *r = NULL;
        sx_err err = {0};
        uint64_t t0 = sx_clock_now_ns();
        sx_status st = sx_q_query(w->c, w->c->worker_addr[VIA], &q, NULL, &r, &err);
        uint64_t ns = sx_clock_now_ns() - t0;
        if (atomic_load(&w->phase) == SX_BENCH_MEASURE) {
            pthread_mutex_lock(&w->mu);
            if (st != SX_OK) {
                w->r->failed++;
            } else {
                sx_bench_hist_add(&w->r->h, ns);
                w->r->queries++;
                w->r->partial += r->partial;
                w->r->hedged += r->n_follower_partitions > 0;
                if (r->staleness_ms > w->r->max_stale_ms)
                    w->r->max_stale_ms = r->staleness_ms;
            }
            pthread_mutex_unlock(&w->mu);
        }
        if (r)
            sx_rpc_free(&r->base);
    }
    return NULL;
}

static void set_slow(sx_cluster *c, const params *p, bool on)
{
    char spec[256] = "";
    if (on)
        snprintf(spec, sizeof(spec), "seed=17;method=ScanLocal,peer=%s,delay=%s,delay_ms=%u-%u",
                 c->worker_addr[SLOW], p->slow_fraction, p->slow_ms, p->slow_ms);
    if (!sx_cluster_set_faults(c, VIA, spec)) {
        fprintf(stderr, "bench_tail: SetFaults refused\n");
        exit(1);
    }
}

/* One window of configuration cf: warm-up, then `seconds` measured. */
static void run_window(sx_cluster *c, const params *p, const conf *cf, result *r, int round,
                       double seconds)
{
    set_slow(c, p, cf->slow);
    window w = {.c = c, .cf = cf, .p = p, .r = r};
    atomic_init(&w.phase, SX_BENCH_WARMUP);
    pthread_mutex_init(&w.mu, NULL);
    caller *ks = sx_calloc(p->callers, sizeof(*ks));
    for (uint32_t i = 0; i < p->callers; i++) {
        ks[i] = (caller){.w = &w, .rng = ((uint64_t)round << 32) ^ (i * 7919u) ^ 0x5eed};
        pthread_create(&ks[i].t, NULL, caller_main, &ks[i]);
    }
    sx_clock_sleep_ms(300);
    sx_bench_hist before = r->h;
    uint64_t cpu0 = sx_bench_cluster_cpu_us(c);
    uint64_t q0 = r->queries;
    atomic_store(&w.phase, SX_BENCH_MEASURE);
    sx_clock_sleep_ms((uint64_t)(seconds * 1000));
    atomic_store(&w.phase, SX_BENCH_STOP);
    uint64_t cpu1 = sx_bench_cluster_cpu_us(c);
    for (uint32_t i = 0; i < p->callers; i++)
        pthread_join(ks[i].t, NULL);
    free(ks);
    pthread_mutex_destroy(&w.mu);
    /* This round's p99: the window's own histogram. */
    sx_bench_hist win = r->h;
    for (size_t b = 0; b < SX_BENCH_HIST_BUCKETS; b++)
        win.b[b] -= before.b[b];
    win.count -= before.count;
    r->p99[round] = sx_bench_hist_quantile(&win, 0.99) / 1e6;
    r->cpu_us += (double)(cpu1 - cpu0);
    fprintf(stderr, "bench_tail: round %d %-36s %" PRIu64 " queries, p99 %.1f ms\n", round + 1,
            cf->name, r->queries - q0, r->p99[round]);
}

/* ------------------------------------------------------------------ setup -- */

static bool load_docs(sx_cluster *c)
{
    sx_err err = {0};
    sx_qindex ix = {.name = "v", .field = "v", .local = true};
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK) {
        fprintf(stderr, "bench_tail: create index: %s\n", err.msg);
        return false;
    }
    enum { BATCH = 100 };
    sx_qdoc *docs = sx_calloc(BATCH, sizeof(*docs));
    for (int base = 0; base < DOCS; base += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            memset(&docs[i], 0, sizeof(docs[i]));
            snprintf(docs[i].id, sizeof(docs[i].id), "doc-%06d", base + i);
            char v[16];
            snprintf(v, sizeof(v), "v%03d", (base + i) % VALUES);
            sx_qdoc_add(&docs[i], "v", sx_qval_str(v));
        }
        if (sx_q_put(c, c->worker_addr[base / BATCH % NWORKERS], docs, BATCH, 30000, NULL, NULL,
                     &err) != SX_OK) {
            fprintf(stderr, "bench_tail: put: %s\n", err.msg);
            free(docs);
            return false;
        }
    }
    free(docs);
    return sx_q_wait_ready(c, c->worker_addr[0], "v", SETTLE_MS);
}

static uint32_t leads_of(sx_cluster *c, uint32_t w)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < PARTITIONS; p++)
        n += sx_cluster_part_view_of(c, p).leader == w;
    return n;
}

/* ----------------------------------------------------------------- report -- */

static void report(const params *p, result *res, int rounds, double seconds, uint32_t slow_leads)
{
    printf("One cluster: coordinator + %d workers, P=%d, R=3, min_isr 2; %d documents, %d values "
           "of a LOCAL index; equality queries (%d hits each, one page) through worker %d by %u "
           "closed-loop callers. Slow worker: worker %d (leading %u of %d partitions), whose "
           "ScanLocal calls from the querying worker are delayed %u ms with probability %s (rpc "
           "fault layer). Budget %u ms; hedging: followers with a staleness bound of %u ms, "
           "hedge after a quarter of the budget. %d rounds x 6 windows of %.1f s, alternating; "
           "latency over all windows, from the client.\n\n",
           NWORKERS, PARTITIONS, DOCS, VALUES, DOCS / VALUES, VIA, p->callers, SLOW, slow_leads,
           PARTITIONS, p->slow_ms, p->slow_fraction, p->budget_ms, p->staleness_ms, rounds,
           seconds);
    printf("| configuration | queries | latency p50 / p99 / p99.9 ms | p99 / baseline p99, median "
           "of rounds (min - max) | partial answers | answers with a follower | worst staleness "
           "ms | cluster CPU us/query |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < NCONF; k++) {
        result *r = &res[k];
        char lat[96], ratio[64];
        sx_bench_fmt_latency(&r->h, 1e6, 1, lat, sizeof(lat));
        double *v = sx_calloc((size_t)rounds, sizeof(double));
        for (int i = 0; i < rounds; i++)
            v[i] = res[0].p99[i] > 0 ? r->p99[i] / res[0].p99[i] : 0;
        sx_bench_fmt_median_range(v, rounds, 2, ratio, sizeof(ratio));
        free(v);
        double q = r->queries ? (double)r->queries : 1;
        printf("| %s | %" PRIu64 "%s | %s | %s | %.1f%% | %.1f%% | %" PRIu64 " | %.0f |\n",
               confs[k].name, r->queries, r->failed ? " (+ failed)" : "", lat, ratio,
               100.0 * (double)r->partial / q, 100.0 * (double)r->hedged / q, r->max_stale_ms,
               r->cpu_us / q);
    }
}

/* ------------------------------------------------------------------- main -- */

#define OFF(m, t) SX_FLAG_OFFSET(params, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds, each one window of every configuration",
     .min = 1,
     .max = 1000},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "measured seconds per window"},
    {.name = "callers",
     .type = SX_FLAG_UINT32,
     .offset = OFF(callers, uint32_t),
     .help = "closed-loop query threads",
     .min = 1,
     .max = MAX_CALLERS},
    {.name = "slow-ms",
     .type = SX_FLAG_UINT32,
     .offset = OFF(slow_ms, uint32_t),
     .help = "the slow worker's delay",
     .min = 1,
     .max = 60000},
    {.name = "slow-fraction",
     .type = SX_FLAG_STRING,
     .offset = OFF(slow_fraction, const char *),
     .metavar = "F",
     .help = "the fraction of the slow worker's scans delayed (0 to 1)"},
    {.name = "budget-ms",
     .type = SX_FLAG_UINT32,
     .offset = OFF(budget_ms, uint32_t),
     .help = "QueryRequest.budget_ms",
     .min = 1,
     .max = 60000},
    {.name = "staleness-ms",
     .type = SX_FLAG_UINT32,
     .offset = OFF(staleness_ms, uint32_t),
     .help = "QueryRequest.max_staleness_ms of the hedged configurations",
     .min = 1,
     .max = 600000},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_tail",
    .synopsis = "[FLAGS]",
    .description = "LOCAL query latency (p50, p99, p99.9) with one slow worker: no budget, a "
                   "latency budget (partial answers), and a budget with hedged reads to "
                   "followers; and the same with no slow worker. Markdown on stdout "
                   "(bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const params defaults = {.rounds = 3,
                             .seconds = "4",
                             .callers = 4,
                             .slow_ms = 200,
                             .slow_fraction = "0.05",
                             .budget_ms = 50,
                             .staleness_ms = 1000};
    params p = defaults;
    sx_bench_flags(&spec, &p, &defaults, argc, argv);
    double seconds = sx_bench_seconds(&spec, "seconds", p.seconds, false);
    sx_bench_process_init("bench_tail", on_signal);
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    sx_cluster_opts co = {.workers = NWORKERS, .partitions = PARTITIONS};
    int rc = 1;
    if (!sx_bench_cluster_start(c, &co, SETTLE_MS, "bench_tail", "P=8 R=3", "P=8 R=3") ||
        !load_docs(c))
        goto out;
    uint32_t slow_leads = leads_of(c, SLOW);
    int rounds = (int)p.rounds;
    result res[NCONF];
    memset(res, 0, sizeof(res));
    for (int k = 0; k < NCONF; k++)
        res[k].p99 = sx_calloc((size_t)rounds, sizeof(double));
    int done = 0;
    for (int r = 0; r < rounds && !g_stop; r++, done++)
        for (int k = 0; k < NCONF && !g_stop; k++) {
            int kk = r % 2 ? NCONF - 1 - k : k; /* alternate the order */
            run_window(c, &p, &confs[kk], &res[kk], r, seconds);
        }
    if (done == rounds) {
        report(&p, res, rounds, seconds, slow_leads);
        rc = 0;
    }
    for (int k = 0; k < NCONF; k++)
        free(res[k].p99);
out:
    sx_bench_cluster_signal(c);
    sx_cluster_stop(c);
    free(c);
    return rc;
}
