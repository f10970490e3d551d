/* test_chaos_workload.c: sx_chaos_workload (the partition-failure suite's
 * workload and checkers) against a real cluster on loopback: coordinator + 3
 * workers, P=8, R=3, min_isr=2, lease 1000 ms.
 *  - run for 6 s while one worker (chosen by the seed) is killed with -9 once
 *    and restarted; the writers keep going; after the heal, check (settling
 *    first, and running `shardex verify`) finds no violation;
 *  - the checker can fail: the same check against the history edited to claim
 *    an acknowledged write that was never made reports A, and against the
 *    history with every value renamed (values that no writer wrote) reports U.
 * The tests share one cluster and run in order (the second reads the first's
 * history).
 */
#include "checker.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "mem.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define RUN_SECONDS "6"

typedef struct fx {
    sx_cluster *c;
    uint64_t seed;
    char history[512];
    char bin[512];  /* sx_chaos_workload */
    char tool[512]; /* shardex */
    char servers[256];
} fx;

static uint64_t run_seed; /* sx_fx_seed, drawn once in main */

static void set_servers(fx *f)
{
    snprintf(f->servers, sizeof(f->servers), "%s,%s,%s", f->c->worker_addr[0], f->c->worker_addr[1],
             f->c->worker_addr[2]);
}

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 8};
    fx *f = SX_FX_STATE_NEW(fx, &o, WAIT_MS);
    if (!f)
        return -1;
    sx_cluster *c = f->c;
    f->seed = run_seed;
    snprintf(f->history, sizeof(f->history), "%s/history", c->dir);
    sx_cluster_bin("tests/chaos/sx_chaos_workload", f->bin, sizeof(f->bin));
    sx_cluster_bin("client/shardex", f->tool, sizeof(f->tool));
    set_servers(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_fx_cluster_end(f->c);
    free(f);
    return 0;
}

/* ------------------------------------------------------------- helpers -- */

/* The history's text (free it), or NULL. */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return NULL;
    sx_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        sx_buf_append(&b, chunk, n);
    sx_buf_push(&b, 0);
    fclose(fp);
    return (char *)b.data;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Operation lines of the history with outcome ok. */
static size_t count_ok(const char *path)
{
    char *t = slurp(path);
    size_t n = 0;
    for (const char *p = t; p && (p = strstr(p, " ok ")); p++)
        n++;
    free(t);
    return n;
}

typedef struct progress {
    const char *path;
    size_t want;
} progress;

static bool has_progress(void *arg)
{
    progress *p = arg;
    return count_ok(p->path) >= p->want;
}

typedef struct dead {
    sx_cluster *c;
    uint32_t i;
} dead;

static bool is_dead(void *arg)
{
    dead *d = arg;
    return !sx_cluster_worker_alive(d->c, d->i);
}

/* Runs `sx_chaos_workload check` on history path; extra: NULL-terminated
 * flags. The run's result (sx_h_run_free it). */
static sx_h_run run_check(fx *f, const char *path, const char *const *extra)
{
    char out[600], err[600];
    snprintf(out, sizeof(out), "%s/check.out", f->c->dir);
    snprintf(err, sizeof(err), "%s/check.err", f->c->dir);
    char *argv[16] = {f->bin, "check", "--servers", f->servers, "--history", (char *)path};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return sx_h_run_wait(argv, NULL, NULL, out, err, 50000);
}

/* The count of kind k ('A', 'U', ...) in a check's summary line, or -1. */
static long summary_count(const char *out, char k)
{
    const char *s = out ? strstr(out, "violations:") : NULL;
    char pat[8];
    snprintf(pat, sizeof(pat), " %c=", k);
    const char *p = s ? strstr(s, pat) : NULL;
    return p ? strtol(p + 3, NULL, 10) : -1;
}

/* --------------------------------------------------------------- tests -- */

/* Starts the workload, kills one worker once it has written, waits until the
 * coordinator declared it dead and the writers got on, restarts it. */
static pid_t run_with_a_kill(fx *f, uint32_t victim)
{
    char seed[32], logf[600];
    snprintf(seed, sizeof(seed), "%" PRIu64, f->seed);
    snprintf(logf, sizeof(logf), "%s/workload.log", f->c->dir);
    char *argv[] = {f->bin,      "run",       "--servers", f->servers, "--history", f->history,
                    "--seconds", RUN_SECONDS, "--writers", "3",        "--keys",    "20",
                    "--seed",    seed,        "--run",     "t",        NULL};
    pid_t pid = sx_h_spawn(argv, logf);
    progress before = {f->history, 30};
    SX_FX_WAIT(f->c, has_progress, &before, WAIT_MS, "the workload made no progress");
    sx_cluster_kill_worker(f->c, victim);
    dead d = {f->c, victim};
    SX_FX_WAIT(f->c, is_dead, &d, WAIT_MS, "worker %u was not declared dead", victim);
    progress after = {f->history, count_ok(f->history) + 20};
    SX_FX_WAIT(f->c, has_progress, &after, WAIT_MS, "the writers stopped after the kill");
    if (!sx_cluster_start_worker(f->c, victim) || !sx_cluster_wait_alive(f->c, victim, WAIT_MS))
        SX_FX_FAIL(f->c, "worker %u did not come back", victim);
    set_servers(f); /* its new port */
    return pid;
}

static void test_kill_and_check(void **state)
{
    fx *f = *state;
    uint32_t victim = (uint32_t)(f->seed % 3);
    pid_t pid = run_with_a_kill(f, victim);
    int status = sx_h_wait_exit(pid, WAIT_MS);
    char logf[600];
    snprintf(logf, sizeof(logf), "%s/workload.log", f->c->dir);
    sx_h_dump_log(logf, 5);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        SX_FX_FAIL(f->c, "the workload ended with status %d", status);
    const char *extra[] = {"--settle-ms", "30000", "--verify", f->tool, NULL};
    sx_h_run r = run_check(f, f->history, extra);
    sx_h_run_print("check", &r);
    if (r.code != 0 || summary_count(r.out, 'A') != 0)
        SX_FX_FAIL(f->c, "check found violations (exit %d) after worker %u was killed", r.code,
                   victim);
    assert_non_null(strstr(r.out, "LONGEST-GAP-MS"));
    sx_h_run_free(&r);
}

/* The history with a made-up acknowledged overwrite appended: on the key of
 * the last ok put, a later op that wrote a value never written, with that
 * put's token (so that the read waits for nothing that does not exist). */
static char *claim_unmade_write(const char *text)
{
    char *copy = sx_strdup(text), *save = NULL;
    unsigned w = 0;
    unsigned long long end = 0;
    char key[128] = "", tok[48] = "";
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        unsigned lw;
        unsigned long long e;
        char kind[16], k[128], outcome[16], t[48];
        if (l[0] != '#' &&
            sscanf(l, "%u %*s %15s %127s %*s %*s %llu %15s %47s", &lw, kind, k, &e, outcome, t) ==
                6 &&
            strcmp(outcome, "ok") == 0 && strcmp(kind, "delete") != 0) {
            w = lw;
            end = e;
            snprintf(key, sizeof(key), "%s", k);
            snprintf(tok, sizeof(tok), "%s", t);
        }
    }
    free(copy);
    assert_true(key[0] != '\0');
    size_t n = strlen(text) + 512;
    char *out = sx_malloc(n);
    snprintf(out, n, "%s%u 999999 overwrite %s t-never-written %llu %llu ok %s OK -\n", text, w,
             key, end + 1, end + 2, tok);
    return out;
}

static void test_checker_can_fail(void **state)
{
    fx *f = *state;
    char *text = slurp(f->history);
    assert_non_null(text);
    char path[600];
    snprintf(path, sizeof(path), "%s/history.claimed", f->c->dir);
    char *claimed = claim_unmade_write(text);
    write_file(path, claimed);
    sx_h_run r = run_check(f, path, NULL);
    sx_h_run_print("check (an unmade write claimed)", &r);
    assert_int_equal(r.code, 1);
    assert_int_equal(summary_count(r.out, 'A'), 1);
    assert_non_null(strstr(r.out, "want v=\"t-never-written\" of ok op 999999"));
    sx_h_run_free(&r);

    /* Values renamed: every document read holds a value no writer wrote. */
    for (char *p = text; (p = strstr(p, "-op")); p++)
        memcpy(p, "-xx", 3);
    snprintf(path, sizeof(path), "%s/history.renamed", f->c->dir);
    write_file(path, text);
    r = run_check(f, path, NULL);
    sx_h_run_print("check (values renamed)", &r);
    assert_int_equal(r.code, 1);
    assert_true(summary_count(r.out, 'U') > 0);
    assert_non_null(strstr(r.out, "which no writer wrote"));
    sx_h_run_free(&r);
    free(claimed);
    free(text);
}

int main(void)
{
    run_seed = sx_fx_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_and_check),
        cmocka_unit_test(test_checker_can_fail),
    };
    sx_fx_filter_from_env();
    return cmocka_run_group_tests(tests, setup, teardown);
}
