/* benchlib.h: what the benchmarks parse, measure and report the same way
 * (BENCHMARKING.md): their flags (common/flags tables, --help, decimal
 * seconds), a log-bucketed latency histogram, the phases of a
 * closed-loop window, the CPU time of another process, medians over rounds and
 * the Markdown cells that show them, and the start (settled) and stop of the
 * loopback clusters they measure. It is not a harness: each benchmark keeps
 * its own load, configurations, round order and tables, so that its output
 * stays what bench/run.sh embeds in docs/benchmarks.md.
 *
 * Every function here is thread-safe except on a histogram that another thread
 * writes at the same time (the caller serialises those).
 */
#ifndef SX_BENCHLIB_H
#define SX_BENCHLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster.h"
#include "flags.h"

/* ---- flags ---- */

/* Parses argv into config (which holds the defaults on entry) with spec
 * (common/flags.h; no positional arguments). On --help prints the table, with
 * the defaults read from defaults, to stdout and exits 0; on an error prints
 * "PROG: what is wrong" and "Try --help." to stderr and exits 2. Call from
 * main, before any thread starts. */
void sx_bench_flags(const sx_flags_spec *spec, void *config, const void *defaults, int argc,
                    char **argv);

/* A number of seconds given to --flag as a decimal string ("3", "0.5"):
 * finite, above 0 or, when zero_ok, at least 0. Otherwise prints
 * "PROG: --flag: ..." and "Try --help." to stderr and exits 2. */
double sx_bench_seconds(const sx_flags_spec *spec, const char *flag, const char *value,
                        bool zero_ok);

/* Exits 2 after printing "PROG: --flag: what" and "Try --help." to stderr:
 * for what the flag table cannot say (lists, flags that go together). */
void sx_bench_flag_error(const sx_flags_spec *spec, const char *flag, const char *what)
    __attribute__((noreturn));

/* ---- latency histogram ---- */

/* Log-bucketed: values below SX_BENCH_HIST_SUB have a bucket each, above that
 * each power of two is split into SX_BENCH_HIST_SUB linear sub-buckets (about
 * 3% wide), so any uint64_t fits in a fixed array with bounded relative error. */
#define SX_BENCH_HIST_SUB 32u                           /* sub-buckets per power of two */
#define SX_BENCH_HIST_SUB_BITS 5                        /* log2(SX_BENCH_HIST_SUB) */
#define SX_BENCH_HIST_BUCKETS (64u * SX_BENCH_HIST_SUB) /* covers all of uint64_t */

/* Valid when zeroed; plain data, so it may be copied through a pipe between
 * processes of the same binary (bench_rpc does). */
typedef struct sx_bench_hist {
    uint64_t count;                    /* values added */
    uint64_t b[SX_BENCH_HIST_BUCKETS]; /* values per bucket */
} sx_bench_hist;

/* Counts one value (a latency in ns, by the benchmarks' convention). */
void sx_bench_hist_add(sx_bench_hist *h, uint64_t v);

/* Adds every count of h to into (windows of several rounds into one). */
void sx_bench_hist_merge(sx_bench_hist *into, const sx_bench_hist *h);

/* The value at quantile q (0.5, 0.99, 0.999) as the midpoint of its bucket;
 * 0 for an empty histogram. */
double sx_bench_hist_quantile(const sx_bench_hist *h, double q);

/* ---- closed-loop windows ---- */

/* Where a closed-loop load is: completions are counted only while
 * SX_BENCH_MEASURE, and none issues a next call once SX_BENCH_STOP. */
typedef enum sx_bench_phase {
    SX_BENCH_WARMUP = 0,  /* calls run, nothing is counted */
    SX_BENCH_MEASURE = 1, /* the timed window */
    SX_BENCH_STOP = 2,    /* in-flight calls drain and are not reissued */
} sx_bench_phase;

/* ---- CPU time ---- */

/* utime + stime of process pid in microseconds (clock-tick resolution), from
 * /proc/PID/stat. Returns 0 and sets *ok (if given) to false when the file
 * cannot be read or parsed, e.g. because the process has gone. For this
 * process use sx_clock_cpu_us (clock.h), which is finer. */
uint64_t sx_bench_proc_cpu_us(pid_t pid, bool *ok);

/* utime + stime of every running process of c (coordinator and workers), in
 * microseconds, by sx_bench_proc_cpu_us. */
uint64_t sx_bench_cluster_cpu_us(const sx_cluster *c);

/* CPU of process root and of every process below it (children, theirs, ...),
 * in microseconds from /proc: utime + stime + cutime + cstime of each, so that
 * a process that exits between two calls still counts, in the process of the
 * tree that reaped it. For servers that fork a process per connection
 * (PostgreSQL's postmaster and its backends). 0 when root is gone. Scans all
 * of /proc: a few milliseconds, so call it around windows, not per operation. */
uint64_t sx_bench_proc_tree_cpu_us(pid_t root);

/* ---- the process and its clusters ---- */

/* Names this process in its log lines (name), ignores SIGPIPE and has SIGINT
 * and SIGTERM call on_stop (which sets the benchmark's stop flag). */
void sx_bench_process_init(const char *name, void (*on_stop)(int sig));

/* Starts c with opts (sx_cluster_start) and waits up to settle_ms until every
 * partition's ISR is whole (sx_check_replicas). Progress and failures go to
 * stderr as "WHO: the LABEL cluster did not start|settle" and "WHO: UP_LABEL
 * cluster up and settled in S s (DIR)"; on false the caller still stops c. */
bool sx_bench_cluster_start(sx_cluster *c, const sx_cluster_opts *opts, uint64_t settle_ms,
                            const char *who, const char *label, const char *up_label);

/* SIGTERM to every process of c at once (they take a couple of seconds each
 * to drain); sx_cluster_stop then waits for them and removes the directory. */
void sx_bench_cluster_signal(const sx_cluster *c);

/* ---- rounds and Markdown ---- */

/* The median of v[0..n) (n >= 1; the mean of the middle two when n is even);
 * also the smallest and largest value when min or max is not NULL. v is not
 * modified. */
double sx_bench_median(const double *v, int n, double *min, double *max);

/* Writes "MEDIAN (MIN - MAX)" of v[0..n) into buf (cap bytes, truncated to
 * fit) with `decimals` digits after the point, as the ratio tables show a
 * per-round ratio; returns the median, for verdicts on it. */
double sx_bench_fmt_median_range(const double *v, int n, int decimals, char *buf, size_t cap);

/* Writes "P50 / P99 / P99.9" of h into buf (cap bytes), each value divided by
 * unit_ns (1e3 for microseconds, 1e6 for milliseconds) and shown with
 * `decimals` digits after the point, as the tables' latency column. */
void sx_bench_fmt_latency(const sx_bench_hist *h, double unit_ns, int decimals, char *buf,
                          size_t cap);

#endif
