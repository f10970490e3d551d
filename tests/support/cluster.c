/* cluster.c: real coordinator and worker processes for integration tests. */
#include "cluster.h"

#include "clock.h"
#include "etcd_members.h"
#include "fsutil.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SX_BUILD_DIR
#error "SX_BUILD_DIR must name the CMake build directory"
#endif

const char *sx_cluster_bin(const char *rel, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", SX_BUILD_DIR, rel);
    return buf;
}

/* With opts.metrics, adds the metrics flags to argv at *n, with the port file
 * path (cap bytes) in mportf. */
static void metrics_args(const sx_cluster *c, const char *name, char **argv, int *n, char *mportf,
                         size_t cap)
{
    snprintf(mportf, cap, "%s/%s.metrics-port", c->dir, name);
    unlink(mportf);
    if (!c->opts.metrics)
        return;
    argv[(*n)++] = "--metrics-listen";
    argv[(*n)++] = "127.0.0.1:0";
    argv[(*n)++] = "--metrics-port-file";
    argv[(*n)++] = mportf;
}

void sx_cluster_meta_args(const sx_cluster *c, char **argv, int *n, char *buf, size_t cap)
{
    if (!c->opts.etcd) {
        snprintf(buf, cap, "%s/coord", c->dir);
        argv[(*n)++] = "--data-dir";
        argv[(*n)++] = buf;
        return;
    }
    snprintf(buf, cap, "etcd://%s", c->etcd_member.addr);
    argv[(*n)++] = "--metadata";
    argv[(*n)++] = buf;
    argv[(*n)++] = "--cluster";
    argv[(*n)++] = "test";
    argv[(*n)++] = "--metadata-lease";
    argv[(*n)++] = (char *)c->metadata_lease;
}

typedef struct coord_wait {
    sx_cluster *c;
    bool answered;
} coord_wait;

/* The coordinator answers GetMap, or has exited (then the wait stops early). */
static bool coord_answers(void *arg)
{
    coord_wait *w = arg;
    if (!sx_h_alive(w->c->coord_pid))
        return true;
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 1000, .wait_for_ready = true};
    w->answered =
        sx_rpc_invoke(w->c->rpc, w->c->coord_addr, &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, NULL) == SX_OK;
    sx_rpc_free(resp);
    return w->answered;
}

static bool start_coordinator(sx_cluster *c, const char *listen, const char *const *extra)
{
    char bin[512], meta[512], portf[512], logf[512], parts[16], repl[16], isr[16], lease[32];
    char mportf[512];
    sx_cluster_bin("coordinator/shardex-coordinator", bin, sizeof(bin));
    snprintf(portf, sizeof(portf), "%s/coord.port", c->dir);
    snprintf(logf, sizeof(logf), "%s/coord.log", c->dir);
    snprintf(parts, sizeof(parts), "%u", c->opts.partitions);
    snprintf(repl, sizeof(repl), "%u", c->opts.replication);
    snprintf(isr, sizeof(isr), "%u", c->opts.min_isr);
    snprintf(lease, sizeof(lease), "%u", c->opts.lease_ms);
    unlink(portf);
    char *argv[40] = {bin, "--listen", (char *)listen, "--port-file", portf, "--lease-ms", lease};
    int n = 7;
    sx_cluster_meta_args(c, argv, &n, meta, sizeof(meta));
    if (!extra) {
        argv[n++] = "--partitions";
        argv[n++] = parts;
        argv[n++] = "--replication";
        argv[n++] = repl;
        argv[n++] = "--min-isr";
        argv[n++] = isr;
    }
    metrics_args(c, "coord", argv, &n, mportf, sizeof(mportf));
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    c->coord_pid = sx_h_spawn(argv, logf);
    c->coord_port = sx_h_wait_port_file(portf, c->coord_pid, 20000);
    if (c->coord_port > 0 && c->opts.metrics)
        c->coord_metrics_port = sx_h_wait_port_file(mportf, c->coord_pid, 20000);
    if (c->coord_port <= 0 || (c->opts.metrics && c->coord_metrics_port <= 0)) {
        sx_h_dump_log(logf, 30);
        return false;
    }
    snprintf(c->coord_addr, sizeof(c->coord_addr), "127.0.0.1:%d", c->coord_port);
    /* On etcd a coordinator may listen while it follows (and answer nothing
     * but where the leader is): it is ready once it leads. */
    coord_wait w = {.c = c};
    if (c->opts.etcd && !(sx_h_wait_for(coord_answers, &w, 20000) && w.answered)) {
        fprintf(stderr, "the coordinator did not answer GetMap\n");
        sx_h_dump_log(logf, 30);
        return false;
    }
    return true;
}

bool sx_cluster_start_worker(sx_cluster *c, uint32_t i)
{
    return sx_cluster_start_worker_env(c, i, NULL);
}

bool sx_cluster_start_worker_env(sx_cluster *c, uint32_t i, const char *const *env)
{
    char bin[512], data[512], portf[512], logf[512], idf[512], mportf[512], name[16];
    sx_cluster_bin("worker/shardex-worker", bin, sizeof(bin));
    snprintf(data, sizeof(data), "%s/w%u", c->dir, i);
    snprintf(portf, sizeof(portf), "%s/w%u.port", c->dir, i);
    snprintf(logf, sizeof(logf), "%s/w%u.log", c->dir, i);
    unlink(portf);
    char *coords = c->ncoords ? c->coords_list : c->coord_addr;
    char *argv[16] = {bin,  "--coordinator", coords, "--listen",      "127.0.0.1:0", "--data-dir",
                      data, "--port-file",   portf,  "--allow-faults"};
    int n = 10;
    snprintf(name, sizeof(name), "w%u", i);
    metrics_args(c, name, argv, &n, mportf, sizeof(mportf));
    argv[n] = NULL;
    c->worker_pid[i] = sx_h_spawn_env(argv, logf, env);
    c->worker_port[i] = sx_h_wait_port_file(portf, c->worker_pid[i], 20000);
    /* Its port file is written before the worker's: waiting for this one
     * first would not wait for the worker to have joined. */
    if (c->worker_port[i] > 0 && c->opts.metrics)
        c->worker_metrics_port[i] = sx_h_wait_port_file(mportf, c->worker_pid[i], 20000);
    if (c->worker_port[i] <= 0 || (c->opts.metrics && c->worker_metrics_port[i] <= 0)) {
        sx_h_dump_log(logf, 30);
        return false;
    }
    snprintf(c->worker_addr[i], sizeof(c->worker_addr[i]), "127.0.0.1:%d", c->worker_port[i]);
    snprintf(idf, sizeof(idf), "%s/worker-id", data);
    sx_buf b = {0};
    bool found = false;
    sx_file_read(idf, 100, &b, &found, NULL);
    size_t len = found ? b.len : 0;
    while (len > 0 && b.data[len - 1] == '\n')
        len--;
    memcpy(c->worker_id[i], b.data, len);
    c->worker_id[i][len] = '\0';
    sx_buf_free(&b);
    return len > 0;
}

/* ------------------------------------------------- coordinators on etcd -- */

void sx_cluster_start_coord(sx_cluster *c, uint32_t k)
{
    char bin[512], portf[512], logf[512], parts[16], repl[16], isr[16], lease[32], meta[600];
    char mlease[32], mportf[512], name[16];
    sx_cluster_bin("coordinator/shardex-coordinator", bin, sizeof(bin));
    snprintf(portf, sizeof(portf), "%s/coord%u.port", c->dir, k);
    snprintf(logf, sizeof(logf), "%s/coord%u.log", c->dir, k);
    snprintf(parts, sizeof(parts), "%u", c->opts.partitions);
    snprintf(repl, sizeof(repl), "%u", c->opts.replication);
    snprintf(isr, sizeof(isr), "%u", c->opts.min_isr);
    snprintf(lease, sizeof(lease), "%u", c->opts.lease_ms);
    snprintf(meta, sizeof(meta), "etcd://%s", c->opts.etcd_endpoints);
    snprintf(mlease, sizeof(mlease), "%us", c->opts.metadata_lease_s);
    snprintf(name, sizeof(name), "coord%u", k);
    unlink(portf);
    char *argv[40] = {bin,
                      "--listen",
                      c->coords_addr[k],
                      "--metadata",
                      meta,
                      "--cluster",
                      (char *)c->opts.etcd_cluster,
                      "--metadata-lease",
                      mlease,
                      "--port-file",
                      portf,
                      "--lease-ms",
                      lease,
                      "--partitions",
                      parts,
                      "--replication",
                      repl,
                      "--min-isr",
                      isr};
    int n = 19;
    metrics_args(c, name, argv, &n, mportf, sizeof(mportf));
    argv[n] = NULL;
    c->coords_pid[k] = sx_h_spawn(argv, logf);
}

void sx_cluster_kill_coord(sx_cluster *c, uint32_t k)
{
    if (c->coords_pid[k] > 0)
        sx_h_kill9(c->coords_pid[k]);
    c->coords_pid[k] = 0;
}

int sx_cluster_leader_key(sx_cluster *c, int64_t *create_revision)
{
    if (create_revision)
        *create_revision = 0;
    sx_etcd_range *r = NULL;
    int who = -1;
    if (sx_etcd_get(c->etcd_client, c->leader_key, false, &r, NULL) == SX_OK && r->count == 1) {
        if (create_revision)
            *create_revision = r->kvs[0].create_revision;
        for (uint32_t k = 0; k < c->ncoords; k++)
            if (r->kvs[0].value_len == strlen(c->coords_addr[k]) &&
                memcmp(r->kvs[0].value, c->coords_addr[k], r->kvs[0].value_len) == 0)
                who = (int)k;
    }
    sx_etcd_range_free(r);
    return who;
}

/* The named leader answers GetMap (a follower does not listen, or answers
 * FAILED_PRECONDITION). */
static bool leader_answers(void *arg)
{
    sx_cluster *c = arg;
    int k = sx_cluster_leader_key(c, NULL);
    if (k < 0 || c->coords_pid[k] <= 0)
        return false;
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 1000, .wait_for_ready = true};
    if (sx_rpc_invoke(c->rpc, c->coords_addr[k], &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, NULL) != SX_OK)
        return false;
    sx_rpc_free(resp);
    snprintf(c->coord_addr, sizeof(c->coord_addr), "%s", c->coords_addr[k]);
    return true;
}

bool sx_cluster_coord_follows(sx_cluster *c, uint32_t k)
{
    int lk = sx_cluster_leader_key(c, NULL);
    if (k >= c->ncoords || c->coords_pid[k] <= 0 || lk < 0 || lk == (int)k)
        return false;
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 500};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->coords_addr[k], &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, NULL);
    sx_rpc_free(resp);
    return st == SX_FAILED_PRECONDITION || st == SX_UNAVAILABLE;
}

int sx_cluster_find_leader(sx_cluster *c, uint64_t timeout_ms)
{
    if (!sx_h_wait_for(leader_answers, c, timeout_ms))
        return -1;
    for (uint32_t k = 0; k < c->ncoords; k++)
        if (strcmp(c->coord_addr, c->coords_addr[k]) == 0)
            return (int)k;
    return -1;
}

/* Addresses, the etcd client and every coordinator; waits for a leader. */
static bool start_coords(sx_cluster *c)
{
    if (!c->opts.coordinators)
        c->opts.coordinators = 1;
    if (c->opts.coordinators > SX_TEST_MAX_COORDS)
        return false;
    if (!c->opts.etcd_cluster)
        c->opts.etcd_cluster = "t";
    if (!c->opts.metadata_lease_s)
        c->opts.metadata_lease_s = 2;
    c->ncoords = c->opts.coordinators;
    snprintf(c->leader_key, sizeof(c->leader_key), "/shardex/%s/leader", c->opts.etcd_cluster);
    /* A plaintext client of its own: the test's etcd has no TLS, c->rpc may. */
    sx_etcd_opts eo = {.endpoints = c->opts.etcd_endpoints, .timeout_ms = 2000};
    if (sx_etcd_open(&eo, &c->etcd_client, NULL) != SX_OK)
        return false;
    for (uint32_t k = 0; k < c->ncoords; k++) {
        int port = sx_etcdm_free_port();
        if (port <= 0)
            return false;
        snprintf(c->coords_addr[k], sizeof(c->coords_addr[k]), "127.0.0.1:%d", port);
        size_t l = strlen(c->coords_list);
        snprintf(c->coords_list + l, sizeof(c->coords_list) - l, "%s%s", k ? "," : "",
                 c->coords_addr[k]);
    }
    for (uint32_t k = 0; k < c->ncoords; k++)
        sx_cluster_start_coord(c, k);
    if (sx_cluster_find_leader(c, 30000) < 0) {
        fprintf(stderr, "no coordinator leads (etcd %s)\n", c->opts.etcd_endpoints);
        sx_cluster_dump_logs(c);
        return false;
    }
    return true;
}

typedef struct reg_wait {
    sx_cluster *c;
} reg_wait;

static bool all_registered(void *arg)
{
    sx_cluster *c = arg;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    bool ok = true;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        int32_t w = sx_cluster_index_of(m, c, i);
        ok &= w >= 0 && m->workers[w]->alive;
    }
    sx_rpc_free(&m->base);
    return ok;
}

bool sx_cluster_start(sx_cluster *c, const sx_cluster_opts *opts)
{
    memset(c, 0, sizeof(*c));
    c->opts = *opts;
    if (!c->opts.partitions)
        c->opts.partitions = 8;
    if (!c->opts.replication)
        c->opts.replication = 3;
    if (!c->opts.min_isr)
        c->opts.min_isr = 2;
    if (!c->opts.lease_ms)
        c->opts.lease_ms = 1000;
    c->nworkers = opts->workers;
    sx_h_tmpdir(c->dir, sizeof(c->dir), "cluster");
    const char *env_tls = getenv("SHARDEX_TEST_TLS");
    c->opts.tls = c->opts.tls || (env_tls && strcmp(env_tls, "1") == 0);
    sx_rpc_tls tls = {0};
    if (c->opts.tls) {
        snprintf(c->certs, sizeof(c->certs), "%s/certs", c->dir);
        if (!sx_cluster_certs(c->certs, (const char *const[]){"ca", NULL}) ||
            !sx_cluster_certs(c->certs,
                              (const char *const[]){"node", "test-node", "127.0.0.1", NULL}))
            return false;
        char cert[400], key[400], ca[400];
        snprintf(cert, sizeof(cert), "%s/test-node.pem", c->certs);
        snprintf(key, sizeof(key), "%s/test-node.key", c->certs);
        snprintf(ca, sizeof(ca), "%s/ca.pem", c->certs);
        setenv("SHARDEX_TLS_CERT", cert, 1);
        setenv("SHARDEX_TLS_KEY", key, 1);
        setenv("SHARDEX_TLS_CA", ca, 1);
        tls = (sx_rpc_tls){getenv("SHARDEX_TLS_CERT"), getenv("SHARDEX_TLS_KEY"),
                           getenv("SHARDEX_TLS_CA")};
    }
    sx_rpc_client_opts co = {.faults = "", .tls = c->opts.tls ? &tls : NULL};
    if (sx_rpc_client_create(&co, &c->rpc, NULL) != SX_OK)
        return false;
    const char *env_meta = getenv("SHARDEX_TEST_METADATA");
    /* A member of its own, unless the test brought an etcd cluster and
     * several coordinators (etcd_endpoints). */
    c->opts.etcd =
        !c->opts.etcd_endpoints && (c->opts.etcd || (env_meta && strcmp(env_meta, "etcd") == 0));
    /* 2 s, etcd's shortest: a coordinator killed -9 is replaced within 2 s. */
    snprintf(c->metadata_lease, sizeof(c->metadata_lease), "%us",
             c->opts.metadata_lease_s ? c->opts.metadata_lease_s : 2);
    if (c->opts.etcd && !sx_h_etcd_start(&c->etcd_member, "cluster-etcd"))
        return false;
    if (c->opts.etcd_endpoints ? !start_coords(c) : !start_coordinator(c, "127.0.0.1:0", NULL))
        return false;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (!sx_cluster_start_worker(c, i))
            return false;
    if (!sx_h_wait_for(all_registered, c, 20000)) {
        sx_cluster_dump_logs(c);
        return false;
    }
    return true;
}

bool sx_cluster_certs(const char *dir, const char *const *args)
{
    char script[512], out[600], err[600];
    snprintf(script, sizeof(script), "%s/deploy/certs.sh", SX_SOURCE_DIR);
    snprintf(out, sizeof(out), "%s.out", dir);
    snprintf(err, sizeof(err), "%s.err", dir);
    char *argv[16] = {script, (char *)dir};
    int n = 2;
    for (; args[n - 2] && n < 15; n++)
        argv[n] = (char *)args[n - 2];
    argv[n] = NULL;
    sx_h_run r = sx_h_run_wait(argv, NULL, NULL, out, err, 30000);
    bool ok = r.code == 0;
    if (!ok)
        sx_h_run_print("deploy/certs.sh", &r);
    sx_h_run_free(&r);
    unlink(out);
    unlink(err);
    return ok;
}

void sx_cluster_kill_worker(sx_cluster *c, uint32_t i)
{
    if (c->worker_pid[i] > 0)
        sx_h_kill9(c->worker_pid[i]);
    c->worker_pid[i] = 0;
}

void sx_cluster_kill_coordinator(sx_cluster *c)
{
    if (c->coord_pid > 0)
        sx_h_kill9(c->coord_pid);
    c->coord_pid = 0;
}

void sx_cluster_kill_all(sx_cluster *c)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        sx_cluster_kill_worker(c, i);
    sx_cluster_kill_coordinator(c);
    for (uint32_t k = 0; k < c->ncoords; k++)
        sx_cluster_kill_coord(c, k);
    sx_h_etcd_stop(&c->etcd_member);
}

bool sx_cluster_restart_coordinator(sx_cluster *c, const char *const *extra)
{
    sx_cluster_kill_coordinator(c);
    static const char *const none[] = {NULL};
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c->coord_port);
    return start_coordinator(c, listen, extra ? extra : none);
}

void sx_cluster_stop(sx_cluster *c)
{
    /* All at once: each daemon spends up to 2 s in gRPC's shutdown, and in
     * turn that would be 2 s per process. */
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            sx_h_signal_stop(c->worker_pid[i]);
    if (c->coord_pid > 0)
        sx_h_signal_stop(c->coord_pid);
    for (uint32_t k = 0; k < c->ncoords; k++)
        if (c->coords_pid[k] > 0)
            sx_h_signal_stop(c->coords_pid[k]);
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            sx_h_stop(c->worker_pid[i], 5000);
    if (c->coord_pid > 0)
        sx_h_stop(c->coord_pid, 5000);
    for (uint32_t k = 0; k < c->ncoords; k++)
        if (c->coords_pid[k] > 0)
            sx_h_stop(c->coords_pid[k], 5000);
    sx_etcd_close(c->etcd_client);
    c->etcd_client = NULL;
    sx_h_etcd_stop(&c->etcd_member); /* last: a coordinator stopping resigns there */
    sx_rpc_client_destroy(c->rpc);
    c->rpc = NULL;
    if (c->opts.tls) { /* its files go with the directory: nothing started later takes them */
        unsetenv("SHARDEX_TLS_CERT");
        unsetenv("SHARDEX_TLS_KEY");
        unsetenv("SHARDEX_TLS_CA");
    }
    sx_h_tmpdir_done(c->dir);
}

Shardex__Internal__V1__ClusterMap *sx_cluster_map(sx_cluster *c)
{
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 4000, .idempotent = true, .wait_for_ready = true};
    sx_err err = {0};
    if (sx_rpc_invoke(c->rpc, c->coord_addr, &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, &err) != SX_OK) {
        fprintf(stderr, "GetMap from %s: %s\n", c->coord_addr, err.msg);
        return NULL;
    }
    return (Shardex__Internal__V1__ClusterMap *)resp;
}

Shardex__Internal__V1__WorkerStatusResponse *sx_cluster_worker_status(sx_cluster *c, uint32_t i)
{
    Shardex__Internal__V1__WorkerStatusRequest req =
        SHARDEX__INTERNAL__V1__WORKER_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 4000, .idempotent = true, .wait_for_ready = true};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], &shardex__internal__v1__worker_admin__descriptor,
                      "Status", &req.base, &resp, &o, NULL) != SX_OK)
        return NULL;
    return (Shardex__Internal__V1__WorkerStatusResponse *)resp;
}

bool sx_cluster_set_faults(sx_cluster *c, uint32_t i, const char *spec)
{
    Shardex__Internal__V1__SetFaultsRequest req = SHARDEX__INTERNAL__V1__SET_FAULTS_REQUEST__INIT;
    req.spec = (char *)(spec ? spec : "");
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 4000, .idempotent = true, .wait_for_ready = true};
    sx_err err = {0};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], &shardex__internal__v1__worker_admin__descriptor,
                      "SetFaults", &req.base, &resp, &o, &err) != SX_OK) {
        fprintf(stderr, "SetFaults \"%s\" on worker %u: %s\n", req.spec, i, err.msg);
        return false;
    }
    sx_rpc_free(resp);
    return true;
}

int32_t sx_cluster_index_of(const Shardex__Internal__V1__ClusterMap *m, const sx_cluster *c,
                            uint32_t i)
{
    for (size_t w = 0; w < m->n_workers; w++)
        if (strcmp(m->workers[w]->id, c->worker_id[i]) == 0)
            return (int32_t)w;
    return -1;
}

bool sx_cluster_worker_alive(sx_cluster *c, uint32_t i)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    int32_t w = sx_cluster_index_of(m, c, i);
    bool ok = w >= 0 && m->workers[w]->alive;
    sx_rpc_free(&m->base);
    return ok;
}

typedef struct alive_wait {
    sx_cluster *c;
    uint32_t i;
} alive_wait;

static bool alive_cond(void *arg)
{
    alive_wait *a = arg;
    return sx_cluster_worker_alive(a->c, a->i);
}

bool sx_cluster_wait_alive(sx_cluster *c, uint32_t i, uint64_t timeout_ms)
{
    alive_wait a = {c, i};
    return sx_h_wait_for(alive_cond, &a, timeout_ms);
}

static void dump_status(const sx_cluster *c)
{
    for (uint32_t i = 0; i < c->nworkers; i++) {
        if (c->worker_pid[i] <= 0)
            continue;
        Shardex__Internal__V1__WorkerStatusResponse *s =
            sx_cluster_worker_status((sx_cluster *)c, i);
        if (!s) {
            fprintf(stderr, "worker %u: no status\n", i);
            continue;
        }
        fprintf(stderr, "worker %u index=%d map=%llu lease=%d:", i, s->index,
                (unsigned long long)s->map_version, s->lease_valid);
        for (size_t k = 0; k < s->n_replicas; k++) {
            const Shardex__Internal__V1__ReplicaState *r = s->replicas[k];
            fprintf(stderr, " p%u:%s/e%llu/leo%llu/c%llu/a%llu%s", r->partition, r->role,
                    (unsigned long long)r->epoch, (unsigned long long)r->log_end_offset,
                    (unsigned long long)r->commit_offset, (unsigned long long)r->applied_offset,
                    r->fenced ? "/fenced" : "");
        }
        fprintf(stderr, "\n");
        sx_rpc_free(&s->base);
    }
}

void sx_cluster_dump_logs(const sx_cluster *c)
{
    dump_status(c);
    char logf[512];
    for (uint32_t k = 0; k < c->ncoords; k++) {
        snprintf(logf, sizeof(logf), "%s/coord%u.log", c->dir, k);
        fprintf(stderr, "--- %s (%s, pid %d)\n", logf, c->coords_addr[k], (int)c->coords_pid[k]);
        sx_h_dump_log(logf, 30);
    }
    if (!c->ncoords) {
        snprintf(logf, sizeof(logf), "%s/coord.log", c->dir);
        fprintf(stderr, "--- %s\n", logf);
        sx_h_dump_log(logf, 40);
    }
    if (c->etcd_member.pid > 0) {
        fprintf(stderr, "--- %s\n", c->etcd_member.log);
        sx_h_dump_log(c->etcd_member.log, 10);
    }
    for (uint32_t i = 0; i < c->nworkers; i++) {
        snprintf(logf, sizeof(logf), "%s/w%u.log", c->dir, i);
        fprintf(stderr, "--- %s\n", logf);
        sx_h_dump_log(logf, 20);
    }
}

uint32_t sx_cluster_test_index(const sx_cluster *c, const Shardex__Internal__V1__ClusterMap *m,
                               int32_t w)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (sx_cluster_index_of(m, c, i) == w)
            return i;
    return SX_CLUSTER_NONE;
}

sx_cluster_part_view sx_cluster_part_view_of(sx_cluster *c, uint32_t p)
{
    sx_cluster_part_view v = {.leader = SX_CLUSTER_NONE, .leader_w = -1};
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return v;
    if (p < m->n_partitions) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        v.ok = true;
        v.map_version = m->version;
        v.epoch = lp->epoch;
        v.isr_version = lp->isr_version;
        v.leader_w = lp->leader;
        if (lp->leader >= 0 && (size_t)lp->leader < m->n_workers) {
            v.leader = sx_cluster_test_index(c, m, lp->leader);
            v.leader_alive = m->workers[lp->leader]->alive;
        }
        v.nisr = (uint32_t)lp->n_isr;
        for (size_t k = 0; k < lp->n_isr; k++) {
            uint32_t t = sx_cluster_test_index(c, m, lp->isr[k]);
            if (t != SX_CLUSTER_NONE)
                v.isr_mask |= 1u << t;
        }
    }
    for (uint32_t i = 0; i < c->nworkers; i++) {
        int32_t w = sx_cluster_index_of(m, c, i);
        if (w >= 0 && m->workers[w]->alive)
            v.alive_mask |= 1u << i;
    }
    sx_rpc_free(&m->base);
    return v;
}
