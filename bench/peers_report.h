/* peers_report.h: what bench_peers measured, and how it shows it: Markdown
 * tables on stdout (bench/run.sh embeds them in docs/benchmarks.md) with the
 * medians of each system, the per-round ratios shardex / PostgreSQL and the
 * issue's goals, and TSV files that bench/plot.sh draws.
 *
 * The results are cells: (work, client count, configuration), each holding
 * one value per round, so that a ratio is taken between windows of the same
 * round. Main thread only.
 */
#ifndef SX_PEERS_REPORT_H
#define SX_PEERS_REPORT_H

#include "benchlib.h"
#include "peers_loop.h"
#include "shardex/v1/shardex.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The work measured; the queries in peers_query's order. */
typedef enum peers_work {
    PEERS_W_TYPICAL, /* = PEERS_Q_TYPICAL */
    PEERS_W_HOT,     /* = PEERS_Q_HOT */
    PEERS_W_RANGE,   /* = PEERS_Q_RANGE */
    PEERS_W_INGEST,
    PEERS_NWORK,
} peers_work;

#define PEERS_MAX_COUNTS 8 /* client counts per work */
#define PEERS_MAX_CONFS 5  /* PostgreSQL and up to four shardex configurations */

/* Who serves a window. */
typedef struct peers_conf {
    bool pg;                /* PostgreSQL; else shardex: */
    uint32_t R;             /* the cluster's replication */
    bool lib;               /* through libshardex, else the plain gRPC client */
    Shardex__V1__Mode mode; /* queries */
} peers_conf;

/* One (work, clients, configuration): a value per round. */
typedef struct peers_cell {
    int n;             /* rounds recorded */
    double *rate;      /* operations per second (ingest: documents) */
    double *p50, *p99; /* the window's latency quantiles, ns */
    double *srv, *cli; /* CPU per item, us: the server's, this process's */
    sx_bench_hist h;   /* latency over every round, ns */
} peers_cell;

typedef struct peers_results {
    int rounds; /* asked */
    size_t batch;
    bool on[PEERS_NWORK];
    int nclients[PEERS_NWORK];
    int clients[PEERS_NWORK][PEERS_MAX_COUNTS];
    int nconfs[PEERS_NWORK];
    peers_conf confs[PEERS_NWORK][PEERS_MAX_CONFS];
    peers_cell cell[PEERS_NWORK][PEERS_MAX_COUNTS][PEERS_MAX_CONFS];
} peers_results;

/* Allocates every cell's per-round arrays (rounds and confs set first). */
void peers_results_init(peers_results *r);
void peers_results_free(peers_results *r);

/* Records window res of round `round` into cell (work, ci, k); items per
 * operation: batch for ingest, 1 for a query. */
void peers_results_add(peers_results *r, int work, int ci, int k, int round,
                       const peers_result *res);

/* "PostgreSQL", "shardex R=3 GLOBAL, plain gRPC", ... */
void peers_conf_label(const peers_conf *c, int work, char *buf, size_t cap);

/* The tables: per work, then the goals. */
void peers_report_print(const peers_results *r, const char *const work_titles[PEERS_NWORK]);

/* peers_throughput.tsv and peers_latency.tsv into dir, when both ingest and
 * the typical value were measured (the plots draw both; otherwise nothing is
 * written); false with why. */
bool peers_report_tsv(const peers_results *r, const char *dir, char *why, size_t cap);

#endif
