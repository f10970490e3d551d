/* fixture.c: seeds, filters and clear failures for cmocka tests. */
#include "fixture.h"

#include "checker.h"
#include "etcd.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    sx_cluster *c = *state;
    if (c) {
        sx_cluster_kill_all(c);
        sx_cluster_stop(c);
        free(c);
    }
    return 0;
}

/* ------------------------------------------------------------ etcd member -- */

/* A port free now: bound with port 0 and released. Another process may take
 * it before etcd binds it; member_start then tries again with new ports. */
int sx_fx_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Answers a Range, or has exited (then the wait stops early too). */
static bool etcd_answers(void *arg)
{
    sx_fx_etcd *m = arg;
    if (!sx_h_alive(m->pid))
        return true;
    sx_etcd_range *r = NULL;
    sx_status st = sx_etcd_get(m->etcd, "/ready", false, &r, NULL);
    sx_etcd_range_free(r);
    return st == SX_OK;
}

void sx_fx_etcd_start(sx_fx_etcd *m, const char *tag)
{
    sx_h_tmpdir(m->dir, sizeof(m->dir), tag);
    snprintf(m->log, sizeof(m->log), "%s/etcd.log", m->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int cport = sx_fx_free_port(), pport = sx_fx_free_port();
        char name[64], data[300], curl[64], purl[64], cluster[128];
        snprintf(name, sizeof(name), "sx-%s-%d-%d", tag, (int)getpid(), attempt);
        snprintf(data, sizeof(data), "%s/data%d", m->dir, attempt);
        snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", cport);
        snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
        snprintf(cluster, sizeof(cluster), "%s=%s", name, purl);
        char *argv[] = {"/usr/bin/etcd",
                        "--name",
                        name,
                        "--data-dir",
                        data,
                        "--listen-client-urls",
                        curl,
                        "--advertise-client-urls",
                        curl,
                        "--listen-peer-urls",
                        purl,
                        "--initial-advertise-peer-urls",
                        purl,
                        "--initial-cluster",
                        cluster,
                        "--initial-cluster-state",
                        "new",
                        "--initial-cluster-token",
                        name,
                        "--logger",
                        "zap",
                        "--log-level",
                        "warn",
                        NULL};
        snprintf(m->addr, sizeof(m->addr), "127.0.0.1:%d", cport);
        sx_etcd_opts eo = {.endpoints = m->addr, .timeout_ms = 1000};
        sx_err err = {0};
        assert_int_equal(sx_etcd_open(&eo, &m->etcd, &err), SX_OK);
        m->pid = sx_h_spawn(argv, m->log);
        bool answered = sx_h_wait_for(etcd_answers, m, 20000);
        bool alive = sx_h_alive(m->pid); /* reaps it if it exited */
        if (answered && alive)
            return;
        /* A port taken in between (etcd exits), or too slow: again, afresh. */
        fprintf(stderr, "etcd did not come up on %s (attempt %d)\n", m->addr, attempt);
        sx_h_dump_log(m->log, 10);
        if (alive)
            sx_h_kill9(m->pid);
        sx_etcd_close(m->etcd);
        m->etcd = NULL;
    }
    fail_msg("etcd did not start");
}

void sx_fx_etcd_stop(sx_fx_etcd *m)
{
    sx_etcd_close(m->etcd);
    m->etcd = NULL;
    if (m->pid > 0)
        sx_h_kill9(m->pid);
    m->pid = 0;
    sx_h_tmpdir_done(m->dir);
}
