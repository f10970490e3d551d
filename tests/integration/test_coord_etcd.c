/* test_coord_etcd.c: coordinators on etcd (issue 13, first step), against
 * real processes: an etcd member, two coordinators A and B with the same
 * --metadata and --cluster, and three workers given both addresses.
 *
 * A leads (it campaigned first); B waits without listening. Documents are
 * written; A is killed -9; B wins once A's etcd lease (2 s) is gone, adopts
 * the map from etcd (the same workers, partitions and epochs, the version
 * going on from A's), and the workers find it by themselves: writes go on,
 * every acknowledged document reads back. Then a coordinator started again
 * at A's address follows, B gets SIGTERM and resigns (revokes its lease), and
 * the new one leads without waiting for a lease to run out.
 */
#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define NWORKERS 3
#define DOCS 40

typedef struct fx {
    sx_fx_etcd etcd;
    char dir[256];
    char coord_addr[2][64];
    pid_t coord_pid[2];
    pid_t worker_pid[NWORKERS];
    char worker_addr[NWORKERS][64];
    sx_rpc_client *rpc;
} fx;

static void start_coordinator(fx *f, int k)
{
    char bin[512], meta[128], log[400], tag[32];
    sx_cluster_bin("coordinator/shardex-coordinator", bin, sizeof(bin));
    snprintf(meta, sizeof(meta), "etcd://%s", f->etcd.addr);
    snprintf(tag, sizeof(tag), "coord%c", 'A' + k);
    snprintf(log, sizeof(log), "%s/%s.%d.log", f->dir, tag, (int)sx_clock_now_ms() % 100000);
    char *argv[] = {bin,
                    "--listen",
                    f->coord_addr[k],
                    "--metadata",
                    meta,
                    "--cluster",
                    "t",
                    "--metadata-lease",
                    "2s",
                    "--lease-ms",
                    "1000",
                    "--partitions",
                    "4",
                    NULL};
    f->coord_pid[k] = sx_h_spawn(argv, log);
}

static void start_worker(fx *f, int i)
{
    char bin[512], coords[160], data[300], portf[300], log[300];
    sx_cluster_bin("worker/shardex-worker", bin, sizeof(bin));
    snprintf(coords, sizeof(coords), "%s,%s", f->coord_addr[0], f->coord_addr[1]);
    snprintf(data, sizeof(data), "%s/w%d", f->dir, i);
    snprintf(portf, sizeof(portf), "%s/w%d.port", f->dir, i);
    snprintf(log, sizeof(log), "%s/w%d.log", f->dir, i);
    char *argv[] = {bin,  "--coordinator", coords, "--listen", "127.0.0.1:0", "--data-dir",
                    data, "--port-file",   portf,  NULL};
    f->worker_pid[i] = sx_h_spawn(argv, log);
    int port = sx_h_wait_port_file(portf, f->worker_pid[i], WAIT_MS);
    assert_true(port > 0);
    snprintf(f->worker_addr[i], sizeof(f->worker_addr[i]), "127.0.0.1:%d", port);
}

static void dump_logs(fx *f)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n 25 %s/*.log >&2", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no logs)\n");
}

/* The map coordinator k serves, or NULL. */
static Shardex__Internal__V1__ClusterMap *map_of(fx *f, int k)
{
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    /* wait_for_ready: this process serves nothing, so a connection is only
     * made while a call waits for it (a fail-fast call answers from the
     * channel's last failure). */
    sx_rpc_call_opts o = {.timeout_ms = 1000, .wait_for_ready = true};
    if (sx_rpc_invoke(f->rpc, f->coord_addr[k], &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, NULL) != SX_OK)
        return NULL;
    return (Shardex__Internal__V1__ClusterMap *)resp;
}

typedef struct lead_arg {
    fx *f;
    int k;
    uint64_t min_version;
} lead_arg;

/* Coordinator k answers with every worker alive and every partition led. */
static bool leads_all(void *arg)
{
    lead_arg *a = arg;
    Shardex__Internal__V1__ClusterMap *m = map_of(a->f, a->k);
    if (!m)
        return false;
    bool ok = m->version >= a->min_version && m->n_workers == NWORKERS;
    for (size_t i = 0; ok && i < m->n_workers; i++)
        ok = m->workers[i]->alive;
    for (size_t p = 0; ok && p < m->n_partitions; p++)
        ok = m->partitions[p]->leader >= 0;
    sx_rpc_free(&m->base);
    return ok;
}

static sx_status put(fx *f, const char *addr, const char *id, sx_err *err)
{
    return sx_q_put_one(f->rpc, addr, id, id, 20000, err);
}

static bool found(fx *f, const char *id)
{
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    bool yes = sx_rpc_invoke(f->rpc, f->worker_addr[0], &shardex__v1__shardex__descriptor, "Get",
                             &req.base, &resp, &o, NULL) == SX_OK &&
               ((Shardex__V1__GetResponse *)resp)->found;
    sx_rpc_free(resp);
    return yes;
}

static void write_docs(fx *f, const char *tag)
{
    for (int i = 0; i < DOCS; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s-%d", tag, i);
        sx_err err = {0};
        if (put(f, f->worker_addr[i % NWORKERS], id, &err) != SX_OK) {
            dump_logs(f);
            fail_msg("put %s: %s", id, err.msg);
        }
    }
}

static void check_docs(fx *f, const char *tag)
{
    for (int i = 0; i < DOCS; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s-%d", tag, i);
        if (!found(f, id)) {
            dump_logs(f);
            fail_msg("acknowledged %s is missing", id);
        }
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    *state = f;
    sx_fx_etcd_start(&f->etcd, "coordetcd");
    sx_h_tmpdir(f->dir, sizeof(f->dir), "coordetcd");
    for (int k = 0; k < 2; k++)
        snprintf(f->coord_addr[k], sizeof(f->coord_addr[k]), "127.0.0.1:%d", sx_fx_free_port());
    sx_rpc_client_opts o = {.faults = ""};
    return sx_rpc_client_create(&o, &f->rpc, NULL) == SX_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < NWORKERS; i++)
        if (f->worker_pid[i] > 0)
            sx_h_kill9(f->worker_pid[i]);
    for (int k = 0; k < 2; k++)
        if (f->coord_pid[k] > 0)
            sx_h_kill9(f->coord_pid[k]);
    sx_rpc_client_destroy(f->rpc);
    sx_fx_etcd_stop(&f->etcd);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

static void test_failover_and_resign(void **state)
{
    fx *f = *state;
    start_coordinator(f, 0);
    lead_arg a = {f, 0, 0};
    Shardex__Internal__V1__ClusterMap *m = NULL;
    /* A leads (it listens: its GetMap answers). */
    for (uint64_t end = sx_clock_now_ms() + WAIT_MS; !(m = map_of(f, 0));) {
        if (sx_clock_now_ms() > end) {
            dump_logs(f);
            fail_msg("coordinator A did not come up on %s", f->coord_addr[0]);
        }
        sx_clock_sleep_ms(50);
    }
    sx_rpc_free(&m->base);
    start_coordinator(f, 1); /* B follows: it does not listen */
    for (int i = 0; i < NWORKERS; i++)
        start_worker(f, i);
    if (!sx_h_wait_for(leads_all, &a, WAIT_MS)) {
        dump_logs(f);
        fail_msg("A does not lead every worker and partition");
    }
    m = map_of(f, 1);
    if (m) {
        sx_rpc_free(&m->base);
        fail_msg("coordinator B answers while A leads");
    }
    write_docs(f, "before");
    m = map_of(f, 0);
    assert_non_null(m);
    uint64_t version_a = m->version;
    sx_rpc_free(&m->base);

    /* A dies: B takes over once A's lease is gone, with A's map. */
    sx_h_kill9(f->coord_pid[0]);
    f->coord_pid[0] = 0;
    uint64_t t0 = sx_clock_now_ms();
    lead_arg b = {f, 1, version_a};
    if (!sx_h_wait_for(leads_all, &b, WAIT_MS)) {
        dump_logs(f);
        fail_msg("B did not take over with every worker alive");
    }
    fprintf(stderr, "B leads with every worker %" PRIu64 " ms after A was killed\n",
            sx_clock_now_ms() - t0);
    write_docs(f, "after");
    check_docs(f, "before");
    check_docs(f, "after");

    /* A coordinator at A's address follows; B resigns on SIGTERM and it
     * leads at once (B's lease revoked, not run out). */
    start_coordinator(f, 0);
    sx_clock_sleep_ms(300); /* let it campaign once and follow: B still leads */
    m = map_of(f, 0);
    if (m) {
        sx_rpc_free(&m->base);
        fail_msg("the new coordinator answers while B leads");
    }
    kill(f->coord_pid[1], SIGTERM);
    int st = sx_h_wait_exit(f->coord_pid[1], WAIT_MS);
    f->coord_pid[1] = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    t0 = sx_clock_now_ms();
    lead_arg a2 = {f, 0, version_a};
    if (!sx_h_wait_for(leads_all, &a2, WAIT_MS)) {
        dump_logs(f);
        fail_msg("the coordinator at A's address did not take over after B resigned");
    }
    fprintf(stderr, "after B resigned, the other led in %" PRIu64 " ms\n", sx_clock_now_ms() - t0);
    write_docs(f, "last");
    check_docs(f, "last");
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover_and_resign, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
