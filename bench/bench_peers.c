/* bench_peers: shardex against PostgreSQL 15 on the same machine and the same
 * data, as a user choosing between them would see it (issue 12; the method is
 * BENCHMARKING.md's).
 *
 *   bench_peers [--rounds N] [--seconds S] [--warmup S] [--clients LIST]
 *               [--work LIST] [--docs N] ...     (--help: every flag, its default)
 *
 * The data: this machine's Debian catalogue (peers_data.h), parsed once, the
 * same documents to both systems. PostgreSQL: a private server in a temporary
 * directory (peers_pg.h), table docs(id, body jsonb) with btree indexes on
 * the three fields (peers_pgwork.h). shardex: 3-worker loopback clusters,
 * P=8, the three indexes LOCAL and GLOBAL (peers_sxwork.h), through a plain
 * gRPC client and through libshardex.
 *
 * Two phases, each alternating the systems window by window:
 *   1. queries, on the catalogue loaded once into PostgreSQL and into one
 *      cluster (R=3 unless --query-replication): equality on Maintainer with a
 *      typical value and with the hottest value, and a range on Installed-Size,
 *      every hit fetched and counted against the data;
 *   2. ingest, into PostgreSQL and into clusters of R=1 and R=3, each
 *      holding the catalogue once already: transactions (Puts) of --batch new
 *      documents, the catalogue written again under new ids.
 * In each round, every (work, clients) cell runs its configurations in turn,
 * PostgreSQL first in one round and last in the next; a window is --warmup
 * seconds uncounted then --seconds timed, closed loop (peers_loop.h), and
 * starts once every process of the run is back to idle. Medians over rounds;
 * ratios shardex / PostgreSQL per round, then their median (min - max).
 * Markdown on stdout (peers_report.h), progress on stderr; exit 1 on any
 * failed call or wrong answer, naming it, after everything was stopped.
 */
#include "benchlib.h"
#include "clock.h"
#include "mem.h"
#include "peers_data.h"
#include "peers_loop.h"
#include "peers_pg.h"
#include "peers_pgwork.h"
#include "peers_report.h"
#include "peers_sxwork.h"
#include "rpc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANGE_LO 1000 /* Installed-Size, KiB, inclusive */
#define RANGE_HI 2000
#define QUIET_SLICE_MS 200
#define QUIET_MAX_MS 2000
#define MAX_FIELDS 64

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct params {
    int rounds;
    double seconds, warmup;
    int clients[PEERS_MAX_COUNTS];
    int nclients;
    bool work[PEERS_NWORK];
    size_t docs, batch;
    uint32_t page, typical, partitions, query_r;
    bool fetch_docs, plain, lib;
    peers_pg_ingest pg_how;
    const char *catalogue, *pg_bin, *tsv;
    const char *fields[MAX_FIELDS + 1]; /* NULL-terminated; fields[0] NULL: every field */
    char fields_buf[1024];              /* what fields[] point into */
    const char *fields_list;            /* as given, for the report */
} params;

/* Everything the run holds, for the cleanup that runs on every way out. */
typedef struct run {
    params p;
    peers_data data;
    peers_picks picks;
    size_t range_count;
    peers_query qs[PEERS_NQ];
    peers_pg pg;
    peers_pgwork pgw;
    sx_rpc_client *rpc;
    peers_sxtarget tg[2]; /* R=1, R=3 */
    peers_results res;
    double pg_load_s, sx_load_s[2];
    long long pg_rows;
} run;

static run *g_run;

static peers_sxtarget *target(run *R, uint32_t repl)
{
    return &R->tg[repl >= 3 ? 1 : 0];
}

/* atexit: whatever was started is stopped, whatever was made is removed. */
static void cleanup(void)
{
    run *R = g_run;
    if (!R)
        return;
    g_run = NULL;
    peers_pgwork_close(&R->pgw);
    peers_pg_stop(&R->pg);
    for (int i = 0; i < 2; i++)
        peers_sx_signal(&R->tg[i]);
    for (int i = 0; i < 2; i++)
        peers_sx_stop(&R->tg[i]);
    sx_rpc_client_destroy(R->rpc);
    R->rpc = NULL;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_peers: %s\n", what);
    exit(1); /* cleanup runs */
}

static uint64_t pg_cpu(void *arg)
{
    return peers_pg_cpu_us(arg);
}

/* ================================================================ setup === */

static void build_queries(run *R)
{
    const params *p = &R->p;
    peers_data_pick(&R->data, p->typical, &R->picks);
    R->range_count = peers_data_count_range(&R->data, RANGE_LO, RANGE_HI);
    R->qs[PEERS_Q_TYPICAL] = (peers_query){.kind = PEERS_Q_TYPICAL,
                                           .name = "typical maintainer",
                                           .nvalues = R->picks.ntypical,
                                           .values = R->picks.typical,
                                           .expected = R->picks.typical_count};
    R->qs[PEERS_Q_HOT] = (peers_query){.kind = PEERS_Q_HOT,
                                       .name = "hottest maintainer",
                                       .nvalues = 1,
                                       .values = &R->picks.hot,
                                       .expected = &R->picks.hot_count};
    R->qs[PEERS_Q_RANGE] = (peers_query){.kind = PEERS_Q_RANGE,
                                         .name = "installed-size range",
                                         .expected = &R->range_count,
                                         .lo = RANGE_LO,
                                         .hi = RANGE_HI};
}

static void load_data(run *R)
{
    const params *p = &R->p;
    peers_data_opts o = {.catalogue = p->catalogue,
                         .only_fields = p->fields[0] ? p->fields : NULL,
                         .max_docs = p->docs};
    char why[1024];
    uint64_t t0 = sx_clock_now_ms();
    if (!peers_data_load(&o, &R->data, why, sizeof(why)))
        die(why);
    build_queries(R);
    const peers_data *d = &R->data;
    fprintf(stderr,
            "bench_peers: %zu packages in %.1f s (%llu stanzas, %llu refused, %llu repeated, "
            "%llu values cut); JSON %.0f bytes/doc, protobuf %.0f; typical \"%s\" (%zu), "
            "hottest \"%s\" (%zu), range %d..%d: %zu\n",
            d->n, (double)(sx_clock_now_ms() - t0) / 1e3, (unsigned long long)d->stanzas,
            (unsigned long long)d->bad, (unsigned long long)d->duplicates,
            (unsigned long long)d->truncated, (double)d->json_bytes / (double)d->n,
            (double)d->pb_bytes / (double)d->n, R->picks.typical[0], R->picks.typical_count[0],
            R->picks.hot, R->picks.hot_count, RANGE_LO, RANGE_HI, R->range_count);
}

static int max_clients(const params *p)
{
    int m = 1;
    for (int i = 0; i < p->nclients; i++)
        m = p->clients[i] > m ? p->clients[i] : m;
    return m;
}

static void start_pg(run *R)
{
    char why[1024];
    peers_pg_opts o = {.bindir = R->p.pg_bin};
    peers_pg_sweep();
    uint64_t t0 = sx_clock_now_ms();
    if (!peers_pg_start(&o, &R->pg, why, sizeof(why)))
        die(why);
    R->pgw = (peers_pgwork){
        .data = &R->data, .batch = R->p.batch, .how = R->p.pg_how, .fetch_docs = R->p.fetch_docs};
    if (!peers_pgwork_open(&R->pgw, &R->pg, max_clients(&R->p), R->qs, why, sizeof(why)))
        die(why);
    const char *v = PQparameterStatus(R->pgw.conn[0], "server_version");
    snprintf(R->pg.version, sizeof(R->pg.version), "%s", v ? v : "?");
    fprintf(stderr, "bench_peers: PostgreSQL %s up in %.1f s (%s)\n", R->pg.version,
            (double)(sx_clock_now_ms() - t0) / 1e3, R->pg.dir);
    t0 = sx_clock_now_ms();
    if (!peers_pgwork_preload(&R->pgw, why, sizeof(why)))
        die(why);
    R->pg_load_s = (double)(sx_clock_now_ms() - t0) / 1e3;
    fprintf(stderr, "bench_peers: PostgreSQL loaded the catalogue in %.1f s\n", R->pg_load_s);
}

/* The cluster of replication repl, started and loaded once. */
static peers_sxtarget *need_cluster(run *R, uint32_t repl)
{
    peers_sxtarget *t = target(R, repl);
    if (t->started)
        return t;
    char why[1024];
    if (!peers_sx_start(t, R->p.partitions, repl, R->rpc, &g_stop, why, sizeof(why)))
        die(why);
    uint64_t t0 = sx_clock_now_ms();
    if (!peers_sx_preload(t, &R->data, R->p.batch, R->qs, PEERS_NQ, why, sizeof(why)))
        die(why);
    R->sx_load_s[repl >= 3] = (double)(sx_clock_now_ms() - t0) / 1e3;
    fprintf(stderr,
            "bench_peers: shardex R=%u loaded the catalogue in %.1f s (GLOBAL indexes caught "
            "up); idle it uses %.2f cores\n",
            repl, R->sx_load_s[repl >= 3], t->idle_cores);
    return t;
}

/* ============================================================= windows === */

/* The configurations of each work, PostgreSQL first. */
static void plan(run *R)
{
    const params *p = &R->p;
    peers_results *r = &R->res;
    r->rounds = p->rounds;
    r->batch = p->batch;
    static const Shardex__V1__Mode modes[2] = {SHARDEX__V1__MODE__MODE_GLOBAL,
                                               SHARDEX__V1__MODE__MODE_LOCAL};
    for (int w = 0; w < PEERS_NWORK; w++) {
        r->on[w] = p->work[w];
        /* The curves (ingest, typical) at every count; hot and range at the ends. */
        bool curve = w == PEERS_W_INGEST || w == PEERS_W_TYPICAL || p->nclients == 1;
        for (int i = 0; i < p->nclients; i++)
            if (curve || i == 0 || i == p->nclients - 1)
                r->clients[w][r->nclients[w]++] = p->clients[i];
        r->confs[w][r->nconfs[w]++] = (peers_conf){.pg = true};
        for (int lib = 0; lib < 2; lib++) {
            if (!(lib ? p->lib : p->plain))
                continue;
            for (int k = 0; k < 2; k++)
                r->confs[w][r->nconfs[w]++] =
                    w == PEERS_W_INGEST
                        ? (peers_conf){.R = k ? 3 : 1, .lib = lib}
                        : (peers_conf){.R = p->query_r, .lib = lib, .mode = modes[k]};
        }
    }
    peers_results_init(r);
}

/* Waits (at most QUIET_MAX_MS) until this process, PostgreSQL and the
 * clusters together use less than the clusters' idle CPU + 0.1 core, so that
 * a window does not pay for the checkpoints or compactions of the one before. */
static uint64_t quiesce(run *R)
{
    double idle = 0;
    for (int i = 0; i < 2; i++)
        idle += R->tg[i].started ? R->tg[i].idle_cores : 0;
    uint64_t t0 = sx_clock_now_ms();
    while (sx_clock_now_ms() - t0 < QUIET_MAX_MS && !g_stop) {
        uint64_t a = sx_clock_cpu_us() + peers_pg_cpu_us(&R->pg), u0 = sx_clock_now_us();
        for (int i = 0; i < 2; i++)
            a += R->tg[i].started ? peers_sx_cpu_us(&R->tg[i]) : 0;
        sx_clock_sleep_ms(QUIET_SLICE_MS);
        uint64_t z = sx_clock_cpu_us() + peers_pg_cpu_us(&R->pg);
        for (int i = 0; i < 2; i++)
            z += R->tg[i].started ? peers_sx_cpu_us(&R->tg[i]) : 0;
        if ((double)(z - a) < (double)(sx_clock_now_us() - u0) * (idle + 0.1))
            break;
    }
    return sx_clock_now_ms() - t0;
}

static void progress(const run *R, int round, int work, int ci, int k, uint64_t quiet_ms)
{
    const peers_cell *c = &R->res.cell[work][ci][k];
    static const char *const names[PEERS_NWORK] = {"typical", "hot", "range", "ingest"};
    char label[96];
    peers_conf_label(&R->res.confs[work][k], work, label, sizeof(label));
    fprintf(stderr,
            "round %d %-7s %d clients  %-32s %8.0f %s/s  p50 %.2f ms p99 %.2f ms  server %6.1f "
            "us  bench %6.1f us  (quiet after %.1f s)\n",
            round + 1, names[work], R->res.clients[work][ci], label, c->rate[round],
            work == PEERS_W_INGEST ? "docs" : "q", c->p50[round] / 1e6, c->p99[round] / 1e6,
            c->srv[round], c->cli[round], (double)quiet_ms / 1e3);
}

/* One window of (work, clients ci, configuration k) in round `round`. */
static void run_window(run *R, int round, int work, int ci, int k)
{
    const params *p = &R->p;
    const peers_conf *cf = &R->res.confs[work][k];
    peers_window w = {.callers = R->res.clients[work][ci],
                      .warmup_s = p->warmup,
                      .seconds = p->seconds,
                      .stop = &g_stop};
    bool ingest = work == PEERS_W_INGEST;
    peers_sxwork *sx = NULL;
    if (cf->pg) {
        R->pgw.q = ingest ? NULL : &R->qs[work];
        w.op = ingest ? peers_pgwork_ingest : peers_pgwork_query;
        w.op_arg = &R->pgw;
        w.server_cpu = pg_cpu;
        w.cpu_arg = &R->pg;
    } else {
        sx = sx_calloc(1, sizeof(*sx));
        *sx = (peers_sxwork){.t = need_cluster(R, cf->R),
                             .data = &R->data,
                             .batch = p->batch,
                             .lib = cf->lib,
                             .mode = cf->mode,
                             .page = p->page,
                             .fetch_docs = p->fetch_docs,
                             .q = ingest ? NULL : &R->qs[work]};
        w.op = ingest ? peers_sxwork_ingest : peers_sxwork_query;
        w.op_arg = sx;
        w.server_cpu = peers_sx_cpu_us;
        w.cpu_arg = sx->t;
    }
    uint64_t quiet = quiesce(R);
    peers_result *res = sx_malloc(sizeof(*res));
    bool ok = peers_loop_run(&w, res);
    if (ok) {
        peers_results_add(&R->res, work, ci, k, round, res);
        progress(R, round, work, ci, k, quiet);
    }
    if (sx) {
        peers_sxwork_free(sx);
        free(sx);
    }
    if (!ok) {
        char why[sizeof(res->why) + 64];
        snprintf(why, sizeof(why), "%s", res->why);
        free(res);
        die(why);
    }
    free(res);
}

/* Every round of the works listed; within a round, cell by cell, the
 * configurations forward in even rounds and backward in odd ones. */
static void run_phase(run *R, const int *works, int nworks)
{
    for (int round = 0; round < R->p.rounds; round++)
        for (int i = 0; i < nworks; i++) {
            int w = works[i];
            if (!R->res.on[w])
                continue;
            for (int ci = 0; ci < R->res.nclients[w]; ci++)
                for (int j = 0; j < R->res.nconfs[w]; j++) {
                    int n = R->res.nconfs[w];
                    run_window(R, round, w, ci, round % 2 ? n - 1 - j : j);
                }
        }
}

/* ============================================================== report === */

static void print_intro(const run *R)
{
    const params *p = &R->p;
    const peers_data *d = &R->data;
    printf("Data: %zu packages of this machine's Debian catalogue (%s: %llu stanzas, %llu refused "
           "by the parser, %llu repeated ids dropped, %llu values cut at 4096 bytes), parsed "
           "once by `shardex load`'s parser (id Package, Installed-Size an int), fields %s; "
           "%.0f bytes of JSON per document for PostgreSQL, %.0f bytes of protobuf for shardex. "
           "Queries: the typical maintainer \"%s\" (%zu packages: the middle, by name, of the "
           "maintainers with %d to %d)%s, the hottest \"%s\" (%zu), and Installed-Size %d..%d "
           "(%zu). Every hit fetched: PostgreSQL selects %s; shardex pages with %u hits per page%s "
           "until the page token is empty; every answer's size checked against the data.\n\n",
           d->n, p->catalogue ? p->catalogue : "`apt-cache dumpavail`",
           (unsigned long long)d->stanzas, (unsigned long long)d->bad,
           (unsigned long long)d->duplicates, (unsigned long long)d->truncated, p->fields_list,
           (double)d->json_bytes / (double)d->n, (double)d->pb_bytes / (double)d->n,
           R->picks.typical[0], R->picks.typical_count[0], PEERS_TYPICAL_MIN, PEERS_TYPICAL_MAX,
           R->picks.ntypical > 1 ? " and others like it, in turn" : "", R->picks.hot,
           R->picks.hot_count, RANGE_LO, RANGE_HI, R->range_count,
           p->fetch_docs ? "id and body" : "id", p->page,
           p->fetch_docs ? " and their documents (`include_docs`)" : "");
    printf("PostgreSQL %s: %s of %zu rows per transaction, one connection per client; queries "
           "as prepared statements. The catalogue was loaded in %.1f s (1 connection), then "
           "`VACUUM ANALYZE`; %lld rows at the end. shardex: the catalogue loaded with "
           "libshardex's bulk writer (Puts of %zu, 4 in flight)",
           R->pg.version, p->pg_how == PEERS_PG_COPY ? "`COPY ... FROM STDIN`" : "`INSERT`",
           p->batch, R->pg_load_s, R->pg_rows, p->batch);
    for (int i = 0; i < 2; i++)
        if (R->tg[i].R)
            printf("%s R=%u in %.1f s (idle, that cluster used %.2f cores)", i ? "," : "",
                   R->tg[i].R, R->sx_load_s[i], R->tg[i].idle_cores);
    printf(
        ", each time until the GLOBAL indexes caught up.%s Ingest windows write the "
        "catalogue again under new ids (\"2/bash\"), %zu documents per transaction or "
        "Put.\n\n",
        R->p.work[PEERS_W_TYPICAL] || R->p.work[PEERS_W_HOT] || R->p.work[PEERS_W_RANGE]
            ? (R->p.query_r == 3 ? " Queries on the R=3 cluster." : " Queries on the R=1 cluster.")
            : "",
        p->batch);
    printf("Closed loop: N client threads in this process, each with one operation in flight "
           "(a transaction or Put; a query with all its pages), timed from the client. %d "
           "round%s of %.1f s windows after %.1f s warm-up, PostgreSQL first then last in turn, "
           "each window once every process of the run is idle again (at most 2 s). Medians "
           "over rounds; latency over all rounds.\n",
           p->rounds, p->rounds == 1 ? "" : "s", p->seconds, p->warmup);
    for (int i = 0; i < 2; i++)
        if (R->tg[i].R && atomic_load(&R->tg[i].retries))
            printf("\n**shardex R=%u: %llu calls failed and were made again (their latency "
                   "includes the retries); the first: %s**\n",
                   R->tg[i].R, (unsigned long long)atomic_load(&R->tg[i].retries),
                   R->tg[i].first_failure);
    if (p->rounds < 5 || p->docs)
        printf("\n**A short run (%d round%s%s): figures for checking the benchmark, not for "
               "comparing the systems.**\n",
               p->rounds, p->rounds == 1 ? "" : "s", p->docs ? ", part of the catalogue" : "");
}

/* =============================================================== flags === */

typedef struct opts {
    uint32_t rounds;
    const char *seconds, *warmup; /* decimal seconds */
    const char *clients, *work;   /* lists */
    const char *sx_clients, *fields;
    uint32_t docs, batch, page, typical, partitions, query_r;
    const char *fetch, *pg_ingest; /* choices */
    const char *catalogue, *pg_bin, *tsv;
} opts;

static const char *const fetch_choices[] = {"docs", "ids", NULL};
static const char *const ingest_choices[] = {"copy", "insert", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(opts, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds; each runs every window once (BENCHMARKING.md wants at least 5)",
     .min = 1,
     .max = 1000},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "seconds of each timed window (a decimal above 0)"},
    {.name = "warmup",
     .type = SX_FLAG_STRING,
     .offset = OFF(warmup, const char *),
     .metavar = "S",
     .help = "seconds of load before each window, not counted (0 or more)"},
    {.name = "clients",
     .type = SX_FLAG_STRING,
     .offset = OFF(clients, const char *),
     .metavar = "LIST",
     .help = "client counts, ascending, comma-separated (at most 8, each 1..64): ingest and "
             "the typical maintainer at each, the hot value and the range at the first and last"},
    {.name = "work",
     .type = SX_FLAG_STRING,
     .offset = OFF(work, const char *),
     .metavar = "LIST",
     .help = "what to measure, comma-separated: ingest, typical, hot, range"},
    {.name = "sx-clients",
     .type = SX_FLAG_STRING,
     .offset = OFF(sx_clients, const char *),
     .metavar = "LIST",
     .help = "shardex clients, comma-separated: plain (gRPC to any worker), lib (libshardex)"},
    {.name = "docs",
     .type = SX_FLAG_UINT32,
     .offset = OFF(docs, uint32_t),
     .help = "packages to use, the first of the catalogue (0: all; a short run for checking)"},
    {.name = "fields",
     .type = SX_FLAG_STRING,
     .offset = OFF(fields, const char *),
     .metavar = "LIST",
     .help = "fields of each package kept, comma-separated (as deploy/demo.sh loads); all: every "
             "field of the stanza"},
    {.name = "batch",
     .type = SX_FLAG_UINT32,
     .offset = OFF(batch, uint32_t),
     .metavar = "B",
     .help = "documents per PostgreSQL transaction and per shardex Put",
     .min = 1,
     .max = 10000},
    {.name = "page",
     .type = SX_FLAG_UINT32,
     .offset = OFF(page, uint32_t),
     .help = "hits per shardex query page (PostgreSQL returns every row at once)",
     .min = 1,
     .max = 10000},
    {.name = "fetch",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(fetch, const char *),
     .choices = fetch_choices,
     .help = "what a query fetches per hit: docs (PostgreSQL id and body; shardex include_docs) "
             "or ids"},
    {.name = "typical",
     .type = SX_FLAG_UINT32,
     .offset = OFF(typical, uint32_t),
     .help = "typical maintainers asked in turn (1: a single value)",
     .min = 1,
     .max = 64},
    {.name = "pg-ingest",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(pg_ingest, const char *),
     .choices = ingest_choices,
     .help = "how PostgreSQL ingests a transaction: one COPY, or one multi-row INSERT"},
    {.name = "partitions",
     .type = SX_FLAG_UINT32,
     .offset = OFF(partitions, uint32_t),
     .metavar = "P",
     .help = "log partitions of each shardex cluster",
     .min = 1,
     .max = 256},
    {.name = "query-replication",
     .type = SX_FLAG_UINT32,
     .offset = OFF(query_r, uint32_t),
     .metavar = "R",
     .help = "replication of the cluster the queries run on: 1 or 3",
     .min = 1,
     .max = 3},
    {.name = "catalogue",
     .type = SX_FLAG_STRING,
     .offset = OFF(catalogue, const char *),
     .metavar = "FILE",
     .help = "Debian stanzas to use instead of `apt-cache dumpavail`"},
    {.name = "pg-bin",
     .type = SX_FLAG_STRING,
     .offset = OFF(pg_bin, const char *),
     .metavar = "DIR",
     .help = "where initdb and pg_ctl are (default: pg_config --bindir)"},
    {.name = "tsv",
     .type = SX_FLAG_STRING,
     .offset = OFF(tsv, const char *),
     .metavar = "DIR",
     .help = "also write peers_throughput.tsv and peers_latency.tsv there, for bench/plot.sh"},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_peers",
    .synopsis = "[FLAGS]",
    .description =
        "shardex against PostgreSQL 15 on this machine's Debian catalogue: ingest (R=1 and R=3) "
        "and maintainer equality and installed-size range queries (GLOBAL and LOCAL), the two "
        "systems alternating window by window, through a plain gRPC client and libshardex. "
        "Starts and removes a private PostgreSQL server and the shardex clusters itself. "
        "Markdown on stdout (bench/run.sh puts it in docs/benchmarks.md), progress on stderr. "
        "A quick check: --rounds 1 --seconds 1 --docs 5000.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

/* Splits s at commas into out (cap entries, copied into buf); false when a
 * token is empty or there are more than cap. */
static bool split(const char *s, char *buf, size_t bufcap, const char **out, int cap, int *n)
{
    snprintf(buf, bufcap, "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (*n == cap || !*tok)
            return false;
        out[(*n)++] = tok;
    }
    return strlen(s) < bufcap;
}

static void parse_clients(const char *s, params *p)
{
    char buf[256];
    const char *tok[PEERS_MAX_COUNTS];
    int n = 0;
    bool ok = split(s, buf, sizeof(buf), tok, PEERS_MAX_COUNTS, &n) && n > 0;
    for (int i = 0; ok && i < n; i++) {
        char *end;
        long v = strtol(tok[i], &end, 10);
        ok = *end == '\0' && v >= 1 && v <= PEERS_MAX_CALLERS && (i == 0 || v > p->clients[i - 1]);
        p->clients[i] = (int)v;
    }
    if (!ok)
        sx_bench_flag_error(&spec, "clients",
                            "want 1 to 8 ascending numbers 1..64, comma-separated");
    p->nclients = n;
}

/* Each token of s must be one of names[0..n); sets on[i] for those given. */
static void parse_names(const char *flag, const char *s, const char *const *names, int n, bool *on)
{
    char buf[256], what[160];
    const char *tok[16];
    int k = 0;
    bool ok = split(s, buf, sizeof(buf), tok, 16, &k) && k > 0;
    for (int i = 0; ok && i < k; i++) {
        int j = 0;
        while (j < n && strcmp(tok[i], names[j]) != 0)
            j++;
        ok = j < n;
        if (ok)
            on[j] = true;
    }
    if (!ok) {
        int len = snprintf(what, sizeof(what), "want a comma-separated list of");
        for (int j = 0; j < n; j++)
            len +=
                snprintf(what + len, sizeof(what) - (size_t)len, "%s %s", j ? "," : "", names[j]);
        sx_bench_flag_error(&spec, flag, what);
    }
}

static void parse_params(const opts *o, params *p)
{
    *p = (params){.rounds = (int)o->rounds,
                  .seconds = sx_bench_seconds(&spec, "seconds", o->seconds, false),
                  .warmup = sx_bench_seconds(&spec, "warmup", o->warmup, true),
                  .docs = o->docs,
                  .batch = o->batch,
                  .page = o->page,
                  .typical = o->typical,
                  .partitions = o->partitions,
                  .query_r = o->query_r,
                  .fetch_docs = strcmp(o->fetch, "docs") == 0,
                  .pg_how = strcmp(o->pg_ingest, "copy") == 0 ? PEERS_PG_COPY : PEERS_PG_INSERT,
                  .catalogue = o->catalogue,
                  .pg_bin = o->pg_bin,
                  .tsv = o->tsv};
    if (p->query_r == 2)
        sx_bench_flag_error(&spec, "query-replication", "1 or 3 (the clusters ingest measures)");
    parse_clients(o->clients, p);
    static const char *const works[PEERS_NWORK] = {"typical", "hot", "range", "ingest"};
    parse_names("work", o->work, works, PEERS_NWORK, p->work);
    static const char *const kinds[2] = {"plain", "lib"};
    bool kind_on[2] = {false, false};
    parse_names("sx-clients", o->sx_clients, kinds, 2, kind_on);
    p->plain = kind_on[0];
    p->lib = kind_on[1];
    int n = 0;
    if (strcmp(o->fields, "all") != 0 &&
        !split(o->fields, p->fields_buf, sizeof(p->fields_buf), p->fields, MAX_FIELDS, &n))
        sx_bench_flag_error(&spec, "fields", "want field names, comma-separated, or all");
    p->fields[n] = NULL;
    p->fields_list = o->fields;
}

/* ================================================================ main === */

int main(int argc, char **argv)
{
    const opts defaults = {.rounds = 5,
                           .seconds = "3",
                           .warmup = "0.5",
                           .clients = "1,2,4,8",
                           .work = "ingest,typical,hot,range",
                           .sx_clients = "plain,lib",
                           .fields = "Package,Version,Architecture,Section,Priority,Maintainer,"
                                     "Installed-Size,Description",
                           .batch = 1000,
                           .page = 1000,
                           .typical = 1,
                           .partitions = 8,
                           .query_r = 3,
                           .fetch = "docs",
                           .pg_ingest = "copy"};
    opts o = defaults;
    sx_bench_flags(&spec, &o, &defaults, argc, argv);
    static run R0; /* large (the results' histograms): not on the stack */
    run *R = &R0;
    parse_params(&o, &R->p);
    sx_bench_process_init("bench_peers", on_signal);
    g_run = R;
    atexit(cleanup);

    load_data(R);
    plan(R);
    sx_err err = {0};
    sx_rpc_client_opts co = {.faults = "", .max_message_bytes = 64u << 20};
    if (sx_rpc_client_create(&co, &R->rpc, &err) != SX_OK)
        die(err.msg);
    start_pg(R);
    uint64_t t0 = sx_clock_now_ms();
    static const int queries[] = {PEERS_W_TYPICAL, PEERS_W_HOT, PEERS_W_RANGE};
    if (R->p.work[PEERS_W_TYPICAL] || R->p.work[PEERS_W_HOT] || R->p.work[PEERS_W_RANGE]) {
        need_cluster(R, R->p.query_r);
        run_phase(R, queries, 3);
    }
    static const int ingest[] = {PEERS_W_INGEST};
    if (R->p.work[PEERS_W_INGEST]) {
        need_cluster(R, 1);
        need_cluster(R, 3);
        run_phase(R, ingest, 1);
    }
    R->pg_rows = peers_pgwork_rows(&R->pgw);
    cleanup(); /* g_run is R no more: the figures stay */
    sx_rpc_wait_shutdown(2000);
    fprintf(stderr,
            "bench_peers: measured in %.0f s; PostgreSQL and clusters stopped, their "
            "directories removed\n",
            (double)(sx_clock_now_ms() - t0) / 1e3);

    print_intro(R);
    static const char *const titles[PEERS_NWORK] = {
        [PEERS_W_TYPICAL] = "Equality on Maintainer, a typical value: queries per second",
        [PEERS_W_HOT] = "Equality on Maintainer, the hottest value: queries per second",
        [PEERS_W_RANGE] = "Range on Installed-Size: queries per second",
        [PEERS_W_INGEST] = "Ingest: documents per second",
    };
    peers_report_print(&R->res, titles);
    char why[1024];
    if (R->p.tsv && !peers_report_tsv(&R->res, R->p.tsv, why, sizeof(why)))
        die(why);
    peers_results_free(&R->res);
    peers_picks_free(&R->picks);
    peers_data_free(&R->data);
    return 0;
}
