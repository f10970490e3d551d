/* fixture.c: seeds, filters and clear failures for cmocka tests. */
#include "fixture.h"

#include "checker.h"
#include "mem.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* The seed sx_fx_seed drew, for failure messages; set once, from main. */
static bool seed_drawn;
static uint64_t seed_value;

uint64_t sx_fx_seed(void)
{
    const char *env = getenv("SHARDEX_TEST_SEED");
    uint64_t seed;
    if (env && *env) {
        seed = strtoull(env, NULL, 0);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    fprintf(stderr, "seed=%" PRIu64 " (SHARDEX_TEST_SEED=%" PRIu64 " replays)\n", seed, seed);
    seed_drawn = true;
    seed_value = seed;
    return seed;
}

uint64_t sx_fx_rnd(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

void sx_fx_filter_from_env(void)
{
    /* cmocka keeps the pointers: the environment outlives the run. */
    const char *only = getenv("SHARDEX_TEST_FILTER");
    const char *skip = getenv("SHARDEX_TEST_SKIP");
    if (only && *only)
        cmocka_set_test_filter(only);
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
}

/* What fail_msg does, at the caller's place: cmocka's _fail names file:line
 * and leaves the test (a longjmp, so the va_list ends first). */
void sx__fx_fail(const char *file, int line, const sx_cluster *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c)
        sx_cluster_dump_logs(c);
    if (seed_drawn)
        print_error("ERROR: %s (seed %" PRIu64 ")\n", msg, seed_value);
    else
        print_error("ERROR: %s\n", msg);
    _fail(file, line);
}

void sx__fx_check_replicas(const char *file, int line, sx_cluster *c, uint64_t timeout_ms)
{
    char why[512] = "";
    if (!sx_check_replicas(c, timeout_ms, why, sizeof(why)))
        sx__fx_fail(file, line, c, "replicas differ: %s", why);
}

void sx__fx_verify(const char *file, int line, sx_cluster *c, uint64_t timeout_ms)
{
    char why[256] = "";
    if (!sx_check_verify(c, timeout_ms, why, sizeof(why)))
        sx__fx_fail(file, line, c, "%s", why);
}

sx_store *sx_fx_store_open(const char *path, const sx_store_opts *opts)
{
    sx_store *s = NULL;
    sx_err err = {0};
    sx_status rc = sx_store_open(path, opts, &s, &err);
    if (rc != SX_OK)
        fail_msg("open %s: %s %s", path, sx_status_name(rc), err.msg);
    assert_non_null(s);
    return s;
}

int sx_fx_cluster_teardown(void **state)
{
    sx_fx_cluster_end(*state);
    return 0;
}

void sx_fx_cluster_end(sx_cluster *c)
{
    if (c) {
        sx_cluster_kill_all(c);
        sx_cluster_stop(c);
        free(c);
    }
}

void *sx__fx_state_new(size_t size, size_t c_offset, const sx_cluster_opts *opts,
                       uint64_t timeout_ms)
{
    sx_cluster *c = sx_cluster_start_settled(opts, timeout_ms);
    if (!c)
        return NULL;
    char *f = sx_calloc(1, size);
    memcpy(f + c_offset, &c, sizeof(c));
    return f;
}

/* ------------------------------------------------------------ etcd member -- */

int sx_fx_free_port(void)
{
    int port = sx_h_free_port();
    assert_true(port > 0);
    return port;
}

void sx_fx_etcd_start(sx_fx_etcd *m, const char *tag)
{
    if (!sx_h_etcd_start(m, tag))
        fail_msg("etcd did not start");
}

void sx_fx_etcd_stop(sx_fx_etcd *m)
{
    sx_h_etcd_stop(m);
}

void sx_fx_etcd_cluster_start(sx_etcdm_set *ec, uint32_t n, const char *tag)
{
    if (!sx_etcdm_start(ec, n, tag, 20000))
        fail_msg("etcd (%u members) did not start", n);
}
