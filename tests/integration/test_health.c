/* test_health.c: grpc.health.v1.Health/Check on the real daemons (common/
 * health.h), as a load balancer or a grpc_health_probe-style check asks it:
 *
 * - a registered worker with a lease is SERVING, for the whole server ("")
 *   and for shardex.v1.Shardex; an unknown service is NOT_FOUND;
 * - a worker whose coordinator stops answering (SIGSTOP, longer than a
 *   lease) turns NOT_SERVING, and SERVING again once it answers;
 * - the coordinator is SERVING while it runs;
 * Watch (a stream, which this C client cannot read) is tested with grpcio in
 * test_health_watch.py.
 */
#include "clock.h"
#include "cluster.h"
#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#define WAIT_MS 30000 /* generous: the machine is shared with the build */
#define HEALTH (&grpc__health__v1__health__descriptor)
#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING

/* Check of service at addr: the status, or -(rpc status) when the call fails. */
static int check(sx_cluster *c, const char *addr, const char *service, const char *method)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 2000};
    sx_status st = sx_rpc_invoke(c->rpc, addr, HEALTH, method, &req.base, &resp, &o, &err);
    if (st != SX_OK)
        return -(int)st;
    int status = (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status;
    sx_rpc_free(resp);
    return status;
}

typedef struct want {
    sx_cluster *c;
    int status;
} want;

static bool worker_says(void *arg)
{
    want *w = arg;
    return check(w->c, w->c->worker_addr[0], "", "Check") == w->status;
}

static void test_health(void **state)
{
    (void)state;
    sx_cluster c;
    /* On etcd, an etcd lease that outlasts the coordinator's stop below. */
    sx_cluster_opts o = {
        .workers = 1, .partitions = 2, .replication = 1, .min_isr = 1, .metadata_lease_s = 10};
    assert_true(sx_cluster_start(&c, &o));
    want w = {&c, SERVING};
    assert_true(sx_h_wait_for(worker_says, &w, WAIT_MS));
    assert_int_equal(check(&c, c.worker_addr[0], "shardex.v1.Shardex", "Check"), SERVING);
    assert_int_equal(check(&c, c.worker_addr[0], "no.such.Service", "Check"), -SX_NOT_FOUND);
    assert_int_equal(check(&c, c.coord_addr, "", "Check"), SERVING);
    assert_int_equal(check(&c, c.coord_addr, "shardex.internal.v1.Coordinator", "Check"), SERVING);

    /* The coordinator stops answering: the worker's lease runs out. */
    assert_int_equal(kill(c.coord_pid, SIGSTOP), 0);
    w.status = NOT_SERVING;
    bool went = sx_h_wait_for(worker_says, &w, WAIT_MS);
    assert_int_equal(kill(c.coord_pid, SIGCONT), 0);
    if (!went)
        fail_msg("the worker stayed SERVING without a lease");
    w.status = SERVING;
    if (!sx_h_wait_for(worker_says, &w, WAIT_MS))
        fail_msg("the worker did not serve again once the coordinator answered");

    sx_cluster_kill_all(&c);
    sx_cluster_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
