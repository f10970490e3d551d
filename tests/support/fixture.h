/* fixture.h: what cmocka tests share beyond starting processes (harness.h)
 * and clusters (cluster.h): the run's seed and random numbers, the test
 * filter from the environment, failing with the daemons' logs, waiting or
 * failing, the replica check, and a store opened or failing.
 *
 * Only test executables link it (it calls cmocka); benchmarks and test
 * programs use harness.h and cluster.h alone. Every function runs on the
 * thread that runs the test, except sx_fx_rnd, which touches only its state.
 */
#ifndef SX_TEST_FIXTURE_H
#define SX_TEST_FIXTURE_H

#include "cluster.h"
#include "etcd.h"
#include "etcd_members.h"
#include "harness.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ seeds -- */

/* The run's seed: SHARDEX_TEST_SEED when set and not empty (strtoull base 0:
 * decimal, or 0x hex), else the wall clock in nanoseconds. Prints it to stderr
 * as "seed=N (SHARDEX_TEST_SEED=N replays)" so that a failure can be replayed;
 * SX_FX_FAIL names it too once it was drawn. Call once, from main. */
uint64_t sx_fx_seed(void);

/* splitmix64: the next number of the stream *state (small and seedable). */
uint64_t sx_fx_rnd(uint64_t *state);

/* Applies cmocka's test filters from the environment, before
 * cmocka_run_group_tests: SHARDEX_TEST_FILTER runs only the tests whose name
 * matches, SHARDEX_TEST_SKIP skips those that match (patterns with * and ?;
 * unset or empty: no filter). CMake uses them to run one test of a file alone
 * (the chaos rounds) or everything else. */
void sx_fx_filter_from_env(void);

/* ------------------------------------------------------- failing clearly -- */

/* Fails the running test with the printf-style message (and the seed, once
 * sx_fx_seed drew one) after printing every process log of c (c may be NULL:
 * no logs). The failure is reported at the caller's file and line. */
#define SX_FX_FAIL(c, ...) sx__fx_fail(__FILE__, __LINE__, (c), __VA_ARGS__)

/* Polls cond(arg) for up to timeout_ms (sx_h_wait_for); when it stays false,
 * fails as SX_FX_FAIL(c, ...) with the printf-style message. */
#define SX_FX_WAIT(c, cond, arg, timeout_ms, ...)                                                  \
    do {                                                                                           \
        if (!sx_h_wait_for((cond), (arg), (timeout_ms)))                                           \
            SX_FX_FAIL((c), __VA_ARGS__);                                                          \
    } while (0)

/* Waits until every replica agrees (sx_check_replicas, up to timeout_ms);
 * otherwise fails as SX_FX_FAIL(c, "replicas differ: <why>"). */
#define SX_FX_CHECK_REPLICAS(c, timeout_ms)                                                        \
    sx__fx_check_replicas(__FILE__, __LINE__, (c), (timeout_ms))

/* Runs `shardex verify` (sx_check_verify: every index and document
 * recomputed from the logs, up to timeout_ms); when it is not clean, fails as
 * SX_FX_FAIL(c, "<why>"). */
#define SX_FX_VERIFY(c, timeout_ms) sx__fx_verify(__FILE__, __LINE__, (c), (timeout_ms))

void sx__fx_fail(const char *file, int line, const sx_cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void sx__fx_check_replicas(const char *file, int line, sx_cluster *c, uint64_t timeout_ms);
void sx__fx_verify(const char *file, int line, sx_cluster *c, uint64_t timeout_ms);

/* A cmocka teardown for a test whose state is a cluster it calloc'd:
 * sx_fx_cluster_end of it. */
int sx_fx_cluster_teardown(void **state);

/* Ends a cluster whose data is thrown away: kills every process (kill -9:
 * no shutdown grace to wait for), removes the cluster's directory
 * (sx_cluster_stop) and frees it. Accepts NULL. */
void sx_fx_cluster_end(sx_cluster *c);

/* For a cmocka setup: a zeroed test state of type T, a struct with a member
 * `sx_cluster *c`, with c a settled cluster started with *opts
 * (sx_cluster_start_settled, timeout_ms). NULL, with nothing left running,
 * when the cluster did not settle. The caller ends it with
 * sx_fx_cluster_end(f->c) (or a graceful sx_cluster_stop) and free(f). */
#define SX_FX_STATE_NEW(T, opts, timeout_ms)                                                       \
    ((T *)sx__fx_state_new(sizeof(T), offsetof(T, c), (opts), (timeout_ms)))
void *sx__fx_state_new(size_t size, size_t c_offset, const sx_cluster_opts *opts,
                       uint64_t timeout_ms);

/* ------------------------------------------------------------ etcd member -- */

/* One etcd member of its own: harness.h's sx_h_etcd, failing the test when
 * it does not come up. */
typedef sx_h_etcd sx_fx_etcd;

/* A loopback TCP port free now (sx_h_free_port); fails the test if none. */
int sx_fx_free_port(void);

/* Starts it and waits until it answers; fails the test if it does not. */
void sx_fx_etcd_start(sx_fx_etcd *m, const char *tag);
/* kill -9, the directory removed. */
void sx_fx_etcd_stop(sx_fx_etcd *m);

/* n members as one etcd cluster (sx_etcdm_start, 20 s per attempt);
 * fails the test, with their logs, if it does not come up. The caller ends
 * it with sx_etcdm_destroy. */
void sx_fx_etcd_cluster_start(sx_etcdm_set *ec, uint32_t n, const char *tag);

/* ----------------------------------------------------------------- stores -- */

/* Opens the store at path with opts (NULL: defaults) and returns it (the
 * caller closes it with sx_store_close); fails the test, naming the path and
 * the status, if it does not open. */
sx_store *sx_fx_store_open(const char *path, const sx_store_opts *opts);

#endif
