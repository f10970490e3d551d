/* benchlib.c: the measuring and reporting pieces bench_rpc and bench_write
 * share (benchlib.h). No load generation and no output of its own: the
 * benchmarks print, so that their formats stay theirs.
 */
#include "benchlib.h"

#include "checker.h"
#include "clock.h"
#include "log.h"

#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ========================================================== histogram ===== */

static unsigned bucket_of(uint64_t v)
{
    if (v < SX_BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SX_BENCH_HIST_SUB_BITS;
    return (shift + 1) * SX_BENCH_HIST_SUB + (unsigned)((v >> shift) & (SX_BENCH_HIST_SUB - 1));
}

/* The midpoint of bucket i: halves the worst-case error against either edge. */
static double bucket_value(unsigned i)
{
    if (i < SX_BENCH_HIST_SUB)
        return i;
    unsigned shift = i / SX_BENCH_HIST_SUB - 1;
    double low = (double)((uint64_t)(SX_BENCH_HIST_SUB + i % SX_BENCH_HIST_SUB) << shift);
    return low + (double)(1ull << shift) / 2.0;
}

void sx_bench_hist_add(sx_bench_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
}

void sx_bench_hist_merge(sx_bench_hist *into, const sx_bench_hist *h)
{
    for (unsigned i = 0; i < SX_BENCH_HIST_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->count += h->count;
}

double sx_bench_hist_quantile(const sx_bench_hist *h, double q)
{
    if (!h->count)
        return 0;
    /* Nearest rank, ceil(q * count): the smallest value with at least a
     * fraction q of all values at or below it (the epsilon absorbs rounding). */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SX_BENCH_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return bucket_value(i);
    }
    return bucket_value(SX_BENCH_HIST_BUCKETS - 1);
}

/* ========================================================== CPU time ===== */

uint64_t sx_bench_proc_cpu_us(pid_t pid, bool *ok)
{
    if (ok)
        *ok = false;
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return 0;
    /* Fields after the name start at 3 (state); utime is 14, stime 15. */
    unsigned long long v[16] = {0};
    int field = 2;
    for (char *save = NULL, *tok = strtok_r(p + 1, " ", &save); tok && field < 15;
         tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field >= 14)
            v[field] = strtoull(tok, NULL, 10);
    }
    if (ok)
        *ok = true;
    /* Ticks are clock ticks of _SC_CLK_TCK, not of the kernel's HZ. */
    return (uint64_t)((v[14] + v[15]) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* pid, parent and utime + stime + cutime + cstime (ticks) of one process. */
typedef struct proc_times {
    pid_t pid, ppid;
    unsigned long long ticks;
} proc_times;

static bool read_proc_times(pid_t pid, proc_times *out)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    int ppid = 0;
    unsigned long long ut = 0, st = 0, cut = 0, cst = 0;
    /* Fields 3 (state), 4 (ppid), 14-17 (utime, stime, cutime, cstime). */
    if (!p || sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ppid,
                     &ut, &st, &cut, &cst) != 5)
        return false;
    out->pid = pid;
    out->ppid = (pid_t)ppid;
    out->ticks = ut + st + cut + cst;
    return true;
}

uint64_t sx_bench_proc_tree_cpu_us(pid_t root)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    size_t n = 0, cap = 256;
    proc_times *v = sx_malloc(cap * sizeof(*v));
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        if (n == cap)
            v = sx_realloc(v, (cap *= 2) * sizeof(*v));
        n += read_proc_times((pid_t)pid, &v[n]);
    }
    closedir(d);
    /* The tree, by repeated passes: a process joins when its parent is in.
     * Trees here are a few dozen processes deep at most. */
    bool *in = sx_calloc(n ? n : 1, sizeof(*in));
    unsigned long long ticks = 0;
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (in[i])
                continue;
            bool child = v[i].pid == root;
            for (size_t k = 0; k < n && !child; k++)
                child = in[k] && v[k].pid == v[i].ppid;
            if (child) {
                in[i] = grew = true;
                ticks += v[i].ticks;
            }
        }
    }
    free(in);
    free(v);
    return (uint64_t)(ticks * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* ================================================ rounds and Markdown ===== */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double sx_bench_median(const double *v, int n, double *min, double *max)
{
    /* A sorted copy: callers keep the rounds in order for their ratios. */
    double *s = sx_malloc((size_t)n * sizeof(*s));
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    if (min)
        *min = s[0];
    if (max)
        *max = s[n - 1];
    free(s);
    return m;
}

double sx_bench_fmt_median_range(const double *v, int n, int decimals, char *buf, size_t cap)
{
    double lo, hi, m = sx_bench_median(v, n, &lo, &hi);
    snprintf(buf, cap, "%.*f (%.*f - %.*f)", decimals, m, decimals, lo, decimals, hi);
    return m;
}

void sx_bench_fmt_latency(const sx_bench_hist *h, double unit_ns, int decimals, char *buf,
                          size_t cap)
{
    snprintf(buf, cap, "%.*f / %.*f / %.*f", decimals, sx_bench_hist_quantile(h, 0.5) / unit_ns,
             decimals, sx_bench_hist_quantile(h, 0.99) / unit_ns, decimals,
             sx_bench_hist_quantile(h, 0.999) / unit_ns);
}

uint64_t sx_bench_cluster_cpu_us(const sx_cluster *c)
{
    uint64_t t = c->coord_pid > 0 ? sx_bench_proc_cpu_us(c->coord_pid, NULL) : 0;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            t += sx_bench_proc_cpu_us(c->worker_pid[i], NULL);
    return t;
}

void sx_bench_flags(const sx_flags_spec *spec, void *config, const void *defaults, int argc,
                    char **argv)
{
    bool help = false;
    sx_err err = {0};
    if (sx_flags_parse(spec, config, argc, argv, &help, NULL, &err) != SX_OK) {
        fprintf(stderr, "%s: %s\nTry --help.\n", spec->prog, err.msg);
        exit(2);
    }
    if (help) {
        sx_flags_usage(spec, defaults, stdout);
        exit(0);
    }
}

void sx_bench_flag_error(const sx_flags_spec *spec, const char *flag, const char *what)
{
    fprintf(stderr, "%s: --%s: %s\nTry --help.\n", spec->prog, flag, what);
    exit(2);
}

double sx_bench_seconds(const sx_flags_spec *spec, const char *flag, const char *value,
                        bool zero_ok)
{
    char *end = NULL;
    errno = 0;
    double v = value && *value ? strtod(value, &end) : NAN;
    if (!end || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || (v == 0 && !zero_ok)) {
        char what[160];
        snprintf(what, sizeof(what), "\"%s\" is not a number of seconds %s", value ? value : "",
                 zero_ok ? "(0 or more, e.g. 0.5)" : "(above 0, e.g. 2.5)");
        sx_bench_flag_error(spec, flag, what);
    }
    return v;
}

void sx_bench_process_init(const char *name, void (*on_stop)(int sig))
{
    sx_log_set_process(name);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool sx_bench_cluster_start(sx_cluster *c, const sx_cluster_opts *opts, uint64_t settle_ms,
                            const char *who, const char *label, const char *up_label)
{
    uint64_t t0 = sx_clock_now_ms();
    if (!sx_cluster_start(c, opts)) {
        fprintf(stderr, "%s: the %s cluster did not start\n", who, label);
        return false;
    }
    char why[512] = "";
    if (!sx_check_replicas(c, settle_ms, why, sizeof(why))) {
        fprintf(stderr, "%s: the %s cluster did not settle: %s\n", who, label, why);
        sx_cluster_dump_logs(c);
        return false;
    }
    fprintf(stderr, "%s: %s cluster up and settled in %.1f s (%s)\n", who, up_label,
            (double)(sx_clock_now_ms() - t0) / 1e3, c->dir);
    return true;
}

void sx_bench_cluster_signal(const sx_cluster *c)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            kill(c->worker_pid[i], SIGTERM);
    if (c->coord_pid > 0)
        kill(c->coord_pid, SIGTERM);
    for (uint32_t k = 0; k < c->ncoords; k++)
        if (c->coords_pid[k] > 0)
            kill(c->coords_pid[k], SIGTERM);
}
