/* peers_report.c: bench_peers' tables and TSV files (peers_report.h). */
#include "peers_report.h"

#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void peers_results_init(peers_results *r)
{
    for (int w = 0; w < PEERS_NWORK; w++)
        for (int ci = 0; ci < PEERS_MAX_COUNTS; ci++)
            for (int k = 0; k < PEERS_MAX_CONFS; k++) {
                peers_cell *c = &r->cell[w][ci][k];
                size_t n = (size_t)r->rounds;
                c->rate = sx_calloc(n, sizeof(double));
                c->p50 = sx_calloc(n, sizeof(double));
                c->p99 = sx_calloc(n, sizeof(double));
                c->srv = sx_calloc(n, sizeof(double));
                c->cli = sx_calloc(n, sizeof(double));
            }
}

void peers_results_free(peers_results *r)
{
    for (int w = 0; w < PEERS_NWORK; w++)
        for (int ci = 0; ci < PEERS_MAX_COUNTS; ci++)
            for (int k = 0; k < PEERS_MAX_CONFS; k++) {
                peers_cell *c = &r->cell[w][ci][k];
                free(c->rate);
                free(c->p50);
                free(c->p99);
                free(c->srv);
                free(c->cli);
            }
}

void peers_results_add(peers_results *r, int work, int ci, int k, int round,
                       const peers_result *res)
{
    peers_cell *c = &r->cell[work][ci][k];
    double items = (double)res->ops * (work == PEERS_W_INGEST ? (double)r->batch : 1.0);
    double per = items > 0 ? items : 1;
    c->rate[round] = items * 1e9 / (double)(res->t_ns ? res->t_ns : 1);
    c->p50[round] = sx_bench_hist_quantile(&res->h, 0.5);
    c->p99[round] = sx_bench_hist_quantile(&res->h, 0.99);
    c->srv[round] = (double)res->server_us / per;
    c->cli[round] = (double)res->self_us / per;
    sx_bench_hist_merge(&c->h, &res->h);
    c->n = round + 1;
}

static const char *mode_name(Shardex__V1__Mode m)
{
    return m == SHARDEX__V1__MODE__MODE_GLOBAL ? "GLOBAL" : "LOCAL";
}

void peers_conf_label(const peers_conf *c, int work, char *buf, size_t cap)
{
    const char *client = c->lib ? "libshardex" : "plain gRPC";
    if (c->pg)
        snprintf(buf, cap, "PostgreSQL");
    else if (work == PEERS_W_INGEST)
        snprintf(buf, cap, "shardex R=%u, %s", c->R, client);
    else
        snprintf(buf, cap, "shardex %s, %s", mode_name(c->mode), client);
}

/* The configuration of work that matches; -1 when it was not measured. */
static int find_conf(const peers_results *r, int work, bool pg, uint32_t R, bool lib,
                     Shardex__V1__Mode mode)
{
    for (int k = 0; k < r->nconfs[work]; k++) {
        const peers_conf *c = &r->confs[work][k];
        if (c->pg != pg)
            continue;
        if (pg || (c->lib == lib && (work == PEERS_W_INGEST ? c->R == R : c->mode == mode)))
            return k;
    }
    return -1;
}

static int find_count(const peers_results *r, int work, int clients)
{
    for (int ci = 0; ci < r->nclients[work]; ci++)
        if (r->clients[work][ci] == clients)
            return ci;
    return -1;
}

/* Per-round a[i] / b[i] over the rounds both have, as "MEDIAN (MIN - MAX)"
 * in buf; returns the median, or -1 when no round has both. */
static double ratio_cell(const double *a, const double *b, int n, char *buf, size_t cap)
{
    snprintf(buf, cap, "-");
    if (n < 1)
        return -1;
    double *v = sx_calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++)
        v[i] = b[i] > 0 ? a[i] / b[i] : 0;
    double m = sx_bench_fmt_median_range(v, n, 2, buf, cap);
    free(v);
    return m;
}

static int both(const peers_cell *a, const peers_cell *b)
{
    return a->n < b->n ? a->n : b->n;
}

static void print_work(const peers_results *r, int work, const char *title)
{
    bool ingest = work == PEERS_W_INGEST;
    const char *unit = ingest ? "doc" : "query";
    printf("\n### %s\n\n", title);
    printf("| clients | system | %s | latency p50 / p99 / p99.9 ms | server CPU us/%s | bench CPU "
           "us/%s | shardex / PG %s, median of rounds (min - max) | shardex / PG p50 | timed |\n",
           ingest ? "docs/s" : "queries/s", unit, unit, ingest ? "docs/s" : "queries/s");
    printf("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    int pgk = find_conf(r, work, true, 0, false, 0);
    for (int ci = 0; ci < r->nclients[work]; ci++) {
        const peers_cell *pg = pgk >= 0 ? &r->cell[work][ci][pgk] : NULL;
        for (int k = 0; k < r->nconfs[work]; k++) {
            const peers_cell *c = &r->cell[work][ci][k];
            if (c->n < 1)
                continue;
            char label[96], lat[96], rr[96] = "baseline", rp[96] = "baseline";
            peers_conf_label(&r->confs[work][k], work, label, sizeof(label));
            sx_bench_fmt_latency(&c->h, 1e6, 2, lat, sizeof(lat));
            if (k != pgk && pg) {
                ratio_cell(c->rate, pg->rate, both(c, pg), rr, sizeof(rr));
                ratio_cell(c->p50, pg->p50, both(c, pg), rp, sizeof(rp));
            }
            printf("| %d | %s | %.0f | %s | %.1f | %.1f | %s | %s | %llu |\n", r->clients[work][ci],
                   label, sx_bench_median(c->rate, c->n, NULL, NULL), lat,
                   sx_bench_median(c->srv, c->n, NULL, NULL),
                   sx_bench_median(c->cli, c->n, NULL, NULL), rr, rp,
                   (unsigned long long)c->h.count);
        }
    }
}

/* One goal: shardex / PG of (work, clients) for the plain client and for
 * libshardex, against limit (at least, or at most for latency). */
typedef struct goal {
    const char *what;
    int work, clients;
    uint32_t R;
    bool latency; /* the p50 ratio, at most limit; else the rate ratio, at least limit */
    double limit;
} goal;

static void goal_cells(const peers_results *r, const goal *g, bool lib, char *cell, char *verdict,
                       size_t cap)
{
    snprintf(cell, cap, "not measured");
    snprintf(verdict, cap, "-");
    int ci = r->on[g->work] ? find_count(r, g->work, g->clients) : -1;
    int pk = find_conf(r, g->work, true, 0, false, 0);
    int sk = find_conf(r, g->work, false, g->R, lib, SHARDEX__V1__MODE__MODE_GLOBAL);
    if (ci < 0 || pk < 0 || sk < 0)
        return;
    const peers_cell *pg = &r->cell[g->work][ci][pk], *sx = &r->cell[g->work][ci][sk];
    double m = g->latency ? ratio_cell(sx->p50, pg->p50, both(sx, pg), cell, cap)
                          : ratio_cell(sx->rate, pg->rate, both(sx, pg), cell, cap);
    if (m < 0)
        return;
    bool met = g->latency ? m <= g->limit : m >= g->limit;
    snprintf(verdict, cap, "%s", met ? "met" : "**not met**");
}

static void print_goals(const peers_results *r)
{
    static const goal goals[] = {
        {"ingest, 4 clients, R=1: docs/s", PEERS_W_INGEST, 4, 1, false, 1.0},
        {"ingest, 4 clients, R=3: docs/s", PEERS_W_INGEST, 4, 3, false, 0.5},
        {"typical maintainer, GLOBAL, 8 clients: queries/s", PEERS_W_TYPICAL, 8, 0, false, 1.0},
        {"typical maintainer, GLOBAL, 1 client: latency p50", PEERS_W_TYPICAL, 1, 0, true, 1.5},
        {"hottest maintainer, GLOBAL, 8 clients: queries/s", PEERS_W_HOT, 8, 0, false, 1.0},
        {"installed-size range, GLOBAL, 8 clients: queries/s", PEERS_W_RANGE, 8, 0, false, 1.0},
    };
    printf("\n### Goals (issue 12): shardex / PostgreSQL, median of per-round ratios (min - "
           "max)\n\n");
    printf("| goal | plain gRPC client (the goal's) | goal | verdict | libshardex | verdict |\n");
    printf("| --- | ---: | --- | --- | ---: | --- |\n");
    for (size_t i = 0; i < sizeof(goals) / sizeof(goals[0]); i++) {
        const goal *g = &goals[i];
        char plain[96], pv[96], lib[96], lv[96];
        goal_cells(r, g, false, plain, pv, sizeof(plain));
        goal_cells(r, g, true, lib, lv, sizeof(lib));
        printf("| %s | %s | %s %.1fx | %s | %s | %s |\n", g->what, plain,
               g->latency ? "<=" : ">=", g->limit, pv, lib, lv);
    }
}

void peers_report_print(const peers_results *r, const char *const work_titles[PEERS_NWORK])
{
    static const int order[] = {PEERS_W_INGEST, PEERS_W_TYPICAL, PEERS_W_HOT, PEERS_W_RANGE};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        if (r->on[order[i]])
            print_work(r, order[i], work_titles[order[i]]);
    print_goals(r);
}

/* ------------------------------------------------------------------ TSV -- */

/* The series of the plots: plain gRPC client for shardex. */
typedef struct series {
    const char *name;
    int work;
    bool pg;
    uint32_t R;
    Shardex__V1__Mode mode;
} series;

static const series plotted[] = {
    {"ingest_pg", PEERS_W_INGEST, true, 0, 0},
    {"ingest_shardex_R1", PEERS_W_INGEST, false, 1, 0},
    {"ingest_shardex_R3", PEERS_W_INGEST, false, 3, 0},
    {"eq_pg", PEERS_W_TYPICAL, true, 0, 0},
    {"eq_shardex_global", PEERS_W_TYPICAL, false, 0, SHARDEX__V1__MODE__MODE_GLOBAL},
    {"eq_shardex_local", PEERS_W_TYPICAL, false, 0, SHARDEX__V1__MODE__MODE_LOCAL},
};
#define NSERIES (sizeof(plotted) / sizeof(plotted[0]))

/* The cell of series s at `clients`, or NULL. */
static const peers_cell *series_cell(const peers_results *r, const series *s, int clients)
{
    if (!r->on[s->work])
        return NULL;
    int ci = find_count(r, s->work, clients);
    int k = find_conf(r, s->work, s->pg, s->R, false, s->mode);
    const peers_cell *c = ci >= 0 && k >= 0 ? &r->cell[s->work][ci][k] : NULL;
    return c && c->n > 0 ? c : NULL;
}

/* Every client count of either work, ascending. */
static int all_counts(const peers_results *r, int *out)
{
    int n = 0;
    for (int c = 1; c <= PEERS_MAX_CALLERS; c++) {
        bool any = false;
        for (int w = 0; w < PEERS_NWORK; w++)
            any = any || (r->on[w] && find_count(r, w, c) >= 0);
        if (any && n < 2 * PEERS_MAX_COUNTS)
            out[n++] = c;
    }
    return n;
}

static FILE *open_tsv(const char *dir, const char *name, char *why, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(why, cap, "--tsv: %s: %s", path, strerror(errno));
    return f;
}

bool peers_report_tsv(const peers_results *r, const char *dir, char *why, size_t cap)
{
    /* Each plot has a panel for ingest and one for the typical value: gnuplot
     * cannot draw a panel with no data, so without both there are no plots
     * (bench/plot.sh skips them and the PNGs stay as they were). */
    if (!r->on[PEERS_W_INGEST] || !r->on[PEERS_W_TYPICAL])
        return true;
    int counts[2 * PEERS_MAX_COUNTS];
    int n = all_counts(r, counts);
    FILE *t = open_tsv(dir, "peers_throughput.tsv", why, cap);
    FILE *l = t ? open_tsv(dir, "peers_latency.tsv", why, cap) : NULL;
    if (!t || !l) {
        if (t)
            fclose(t);
        return false;
    }
    /* Throughput: medians of rounds. Latency: p50 and p99 over all rounds, ms. */
    fprintf(t, "clients");
    fprintf(l, "clients");
    for (size_t s = 0; s < NSERIES; s++) {
        fprintf(t, "\t%s", plotted[s].name);
        fprintf(l, "\t%s_p50\t%s_p99", plotted[s].name, plotted[s].name);
    }
    for (int i = 0; i < n; i++) {
        fprintf(t, "\n%d", counts[i]);
        fprintf(l, "\n%d", counts[i]);
        for (size_t s = 0; s < NSERIES; s++) {
            const peers_cell *c = series_cell(r, &plotted[s], counts[i]);
            if (!c) {
                fprintf(t, "\t?");
                fprintf(l, "\t?\t?");
                continue;
            }
            fprintf(t, "\t%.1f", sx_bench_median(c->rate, c->n, NULL, NULL));
            fprintf(l, "\t%.3f\t%.3f", sx_bench_hist_quantile(&c->h, 0.5) / 1e6,
                    sx_bench_hist_quantile(&c->h, 0.99) / 1e6);
        }
    }
    fprintf(t, "\n");
    fprintf(l, "\n");
    bool ok = fclose(t) == 0;
    ok = fclose(l) == 0 && ok;
    if (!ok)
        snprintf(why, cap, "--tsv: writing into %s failed", dir);
    return ok;
}
