/* bench_retention: what log retention (--log-retention-entries) does to the
 * disk and to the write rate when the same documents are overwritten many
 * times (issue 14), against the baseline of keeping the whole log, in the
 * same run, alternately (BENCHMARKING.md).
 *
 *   bench_retention [--docs N] [--rounds N] [--repeat N] [--retain N]
 *
 * Each configuration starts its own cluster through tests/support/cluster.h
 * (a coordinator and 3 workers on loopback, P=4, R=3, min_isr 2, lease
 * 1000 ms), then overwrites --docs documents (about 240 bytes each) --rounds
 * times, in Puts of 50 through the workers in turn, one caller. Measured:
 * documents written per second; once settled (every replica at its leader's
 * log end, checker.h), the longest log any replica holds (WorkerStatus:
 * log_end_offset - log_start_offset + 1) and the largest worker's partition
 * stores (bytes of their files, sx_dir_bytes), against the live data. The
 * run fails (exit 1) if an acknowledged document does not read back or the
 * replicas disagree. Markdown on stdout, progress on stderr.
 *
 * A new replica's catch-up from a snapshot against a copy of the whole log:
 * bench_snapshot.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"

#include "shardex/internal/v1/worker.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P 4
#define BATCH 50
#define PAD_BYTES 200
#define SETTLE_MS 120000

typedef struct result {
    double docs_per_s;
    uint64_t max_log;   /* entries, the longest replica log */
    uint64_t disk;      /* bytes, the largest worker's partition stores */
    uint64_t total_wrt; /* documents written */
} result;

static bool put_round(sx_cluster *c, uint32_t ndocs, uint32_t round)
{
    static char pad[PAD_BYTES + 1];
    memset(pad, 'p', PAD_BYTES);
    sx_doc_spec d[BATCH];
    for (uint32_t i = 0; i < ndocs; i += BATCH) {
        uint32_t n = ndocs - i < BATCH ? ndocs - i : BATCH;
        for (uint32_t k = 0; k < n; k++) {
            memset(&d[k], 0, sizeof(d[k]));
            snprintf(d[k].id, sizeof(d[k].id), "ret-%u", i + k);
            snprintf(d[k].text, sizeof(d[k].text), "round %u", round);
            d[k].n = round;
            d[k].pad = pad;
        }
        sx_status st = SX_UNAVAILABLE;
        for (uint32_t t = 0; t < 5 && st != SX_OK; t++) {
            sx_err err = {0};
            st = sx_docs_put(c, (i / BATCH + t) % c->nworkers, d, n, 15000, NULL, &err);
            if (st != SX_OK)
                fprintf(stderr, "bench_retention: put: %s\n", err.msg);
        }
        if (st != SX_OK)
            return false;
    }
    return true;
}

static bool reads_back(sx_cluster *c, uint32_t ndocs, uint32_t round)
{
    char want[32];
    snprintf(want, sizeof(want), "round %u", round);
    for (uint32_t i = 0; i < ndocs; i += 97) { /* a sample across every partition */
        char id[32];
        snprintf(id, sizeof(id), "ret-%u", i);
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        bool ok = sx_docs_get(c, i % c->nworkers, id, NULL, &g, &err) == SX_OK && g->found &&
                  strcmp(sx_doc_text(g->doc), want) == 0;
        sx_rpc_free(g ? &g->base : NULL);
        if (!ok) {
            fprintf(stderr, "bench_retention: %s does not read back as '%s'\n", id, want);
            return false;
        }
    }
    return true;
}

static bool run_one(uint64_t retain, uint32_t ndocs, uint32_t rounds, result *out)
{
    char keep[32];
    snprintf(keep, sizeof(keep), "%" PRIu64, retain);
    setenv("SHARDEX_LOG_RETENTION_ENTRIES", keep, 1);
    setenv("SHARDEX_LOG_RETENTION", retain ? "min" : "off", 1); /* off: the whole log */
    sx_cluster_opts o = {.workers = 3, .partitions = P, .replication = 3, .lease_ms = 1000};
    sx_cluster *c = sx_cluster_start_settled(&o, SETTLE_MS);
    if (!c)
        return false;
    bool ok = true;
    uint64_t t0 = sx_clock_now_ms();
    for (uint32_t r = 1; r <= rounds && ok; r++)
        ok = put_round(c, ndocs, r);
    uint64_t ms = sx_clock_now_ms() - t0;
    char why[256] = "";
    if (ok)
        ok = reads_back(c, ndocs, rounds);
    /* The trims after the last writes run on idle ticks and the next Append. */
    sx_clock_sleep_ms(1500);
    if (ok && !sx_check_replicas(c, SETTLE_MS, why, sizeof(why))) {
        fprintf(stderr, "bench_retention: replicas: %s\n", why);
        ok = false;
    }
    memset(out, 0, sizeof(*out));
    out->total_wrt = (uint64_t)ndocs * rounds;
    out->docs_per_s = ms ? (double)out->total_wrt * 1000.0 / (double)ms : 0;
    for (uint32_t i = 0; ok && i < c->nworkers; i++) {
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(c, i);
        for (size_t k = 0; ws && k < ws->n_replicas; k++) {
            const Shardex__Internal__V1__ReplicaState *r = ws->replicas[k];
            uint64_t held = r->log_end_offset + 1 - (r->log_start_offset ? r->log_start_offset : 1);
            if (held > out->max_log)
                out->max_log = held;
        }
        if (ws)
            sx_rpc_free(&ws->base);
        uint64_t b = 0;
        for (uint32_t p = 0; p < P; p++) {
            char dir[600];
            snprintf(dir, sizeof(dir), "%s/w%u/partitions/p%04u", c->dir, i, p);
            b += sx_dir_bytes(dir);
        }
        if (b > out->disk)
            out->disk = b;
    }
    sx_cluster_stop(c);
    free(c);
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint32_t ndocs = 2000, rounds = 25, repeat = 1;
    uint64_t retain = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--docs") == 0)
            ndocs = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--retain") == 0)
            retain = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_retention [--docs N] [--rounds N] [--repeat N] "
                            "[--retain N]\n");
            return 2;
        }
    }
    if (repeat == 0 || repeat > 16 || ndocs == 0 || rounds == 0)
        return 2;
    sx_log_set_level(SX_LOG_WARN);
    result res[2][16];
    for (uint32_t k = 0; k < repeat; k++)
        for (int j = 0; j < 2; j++) {
            int cfg = (k % 2) ? 1 - j : j; /* alternate which goes first */
            fprintf(stderr, "bench_retention: repeat %u, retention %s\n", k + 1,
                    cfg ? "on" : "off");
            if (!run_one(cfg ? retain : 0, ndocs, rounds, &res[cfg][k]))
                return 1;
        }
    uint64_t live = (uint64_t)ndocs * (PAD_BYTES + 40);
    printf("%u documents of about %u bytes (live data about %.1f MiB per replica), each "
           "overwritten %u times (%u writes), P=%d, R=3, %u repeat(s), medians:\n\n",
           ndocs, PAD_BYTES + 40, (double)live / (1 << 20), rounds, ndocs * rounds, P, repeat);
    printf("| log retention | docs/s written | longest replica log (entries) | largest worker's "
           "partition stores | x live data |\n|---|---|---|---|---|\n");
    for (int cfg = 0; cfg < 2; cfg++) {
        double rate[16], disk[16], lg[16];
        for (uint32_t k = 0; k < repeat; k++) {
            rate[k] = res[cfg][k].docs_per_s;
            disk[k] = (double)res[cfg][k].disk;
            lg[k] = (double)res[cfg][k].max_log;
        }
        qsort(rate, repeat, sizeof(double), cmp_double);
        qsort(disk, repeat, sizeof(double), cmp_double);
        qsort(lg, repeat, sizeof(double), cmp_double);
        char label[64];
        if (cfg)
            snprintf(label, sizeof(label), "`--log-retention-entries %" PRIu64 "`", retain);
        else
            snprintf(label, sizeof(label), "off (whole log, baseline)");
        printf("| %s | %.0f | %.0f | %.1f MiB | %.1f |\n", label, rate[repeat / 2], lg[repeat / 2],
               disk[repeat / 2] / (1 << 20), disk[repeat / 2] / (double)live);
    }
    return 0;
}
