/* cluster.h: a real shardex cluster for integration tests: a coordinator and
 * workers as separate processes on loopback ports they chose themselves, in a
 * fresh temporary directory, with helpers to read the map, ask workers what
 * they believe, and kill, pause and restart any of them. The coordinator
 * keeps its metadata in its data directory, or in an etcd member of the
 * cluster's own (opts.etcd).
 */
#ifndef SX_TEST_CLUSTER_H
#define SX_TEST_CLUSTER_H

#include "etcd.h"
#include "harness.h"
#include "rpc.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"

#include <stdbool.h>
#include <sys/types.h>

#define SX_TEST_MAX_WORKERS 8
#define SX_TEST_MAX_COORDS 5

typedef struct sx_cluster_opts {
    uint32_t workers;     /* started by sx_cluster_start */
    uint32_t partitions;  /* 0: 8 */
    uint32_t replication; /* 0: 3 */
    uint32_t min_isr;     /* 0: 2 */
    uint32_t lease_ms;    /* 0: 1000 */
    /* Every process serves /metrics on a port of its choice
     * (--metrics-listen 127.0.0.1:0 --metrics-port-file): see coord_metrics_port
     * and worker_metrics_port. */
    bool metrics;
    /* Every process serves and calls with TLS, as one node (spiffe://shardex/
     * node/test-node, a certificate made by deploy/certs.sh in the cluster's
     * directory): the test process exports SHARDEX_TLS_CERT, _KEY and _CA, so
     * that the daemons, the tools it runs and libshardex clients it opens
     * take them, and c->rpc uses them. Also when the environment has
     * SHARDEX_TEST_TLS=1 (make test-tls: every test over TLS). */
    bool tls;
    /* Coordinators on etcd (issue 13): with etcd_endpoints set (its client endpoints,
     * "host:port,..."), `coordinators` of them (0: 1; at most
     * SX_TEST_MAX_COORDS), each with --metadata etcd://ETCD --cluster
     * etcd_cluster --metadata-lease metadata_lease_s on a port chosen at the
     * start and kept across restarts; the workers get every address. They
     * elect one leader; c->coord_addr is the one sx_cluster_find_leader last
     * found. Without etcd: one coordinator on its embedded store, as before. */
    const char *etcd_endpoints;
    uint32_t coordinators;
    const char *etcd_cluster; /* NULL: "t" */
    /* The coordinator keeps its metadata in etcd (issue 13): one etcd member
     * started for the cluster (sx_h_etcd, killed with it), and the
     * coordinator given --metadata etcd://ADDR --cluster test
     * --metadata-lease 2s instead of --data-dir. The coordinator is ready
     * when it answers GetMap, not when it writes its port file: after a kill
     * -9 the old leader key lives until its etcd lease runs out (up to 2 s).
     * Also when the environment has SHARDEX_TEST_METADATA=etcd (make
     * test-etcd). */
    bool etcd;
    /* With etcd, the coordinator's --metadata-lease in seconds; 0: 2. The
     * leader renews it every third and stops leading two thirds after a
     * renewal, so a test that pauses the coordinator for P ms and wants it
     * still leading when it wakes asks for more than 3 * P (else it steps
     * down and campaigns again: a new leader, with a new map version). */
    uint32_t metadata_lease_s;
} sx_cluster_opts;

typedef struct sx_cluster {
    sx_cluster_opts opts;
    char dir[256];
    sx_rpc_client *rpc;
    pid_t coord_pid;
    int coord_port;
    char coord_addr[64];
    uint32_t nworkers;
    pid_t worker_pid[SX_TEST_MAX_WORKERS]; /* 0: not running */
    int worker_port[SX_TEST_MAX_WORKERS];
    char worker_addr[SX_TEST_MAX_WORKERS][64];
    char worker_id[SX_TEST_MAX_WORKERS][64];
    char certs[300];        /* with TLS: the CA, test-node.pem and .key are there; else "" */
    int coord_metrics_port; /* with opts.metrics, else 0 */
    int worker_metrics_port[SX_TEST_MAX_WORKERS];
    /* With opts.etcd_endpoints (else ncoords is 0 and coord_pid is the one coordinator): */
    uint32_t ncoords;
    pid_t coords_pid[SX_TEST_MAX_COORDS]; /* 0: not running */
    char coords_addr[SX_TEST_MAX_COORDS][64];
    char coords_list[SX_TEST_MAX_COORDS * 64]; /* every address, comma-separated */
    sx_etcd *etcd_client;                      /* a client of opts.etcd_endpoints */
    char leader_key[128];                      /* /shardex/NAME/leader */
    sx_h_etcd etcd_member;                     /* with opts.etcd: the member, else zeroed */
    char metadata_lease[16];                   /* with opts.etcd: --metadata-lease, "2s" */
} sx_cluster;

/* Starts the coordinator and opts.workers workers and waits until each worker
 * has registered. Returns false (after printing logs) on failure. */
bool sx_cluster_start(sx_cluster *c, const sx_cluster_opts *opts);

/* Runs deploy/certs.sh DIR with args (NULL-terminated), e.g. {"client",
 * "read", "alice", NULL}; false (after printing its output) when it fails. */
bool sx_cluster_certs(const char *dir, const char *const *args);

/* Stops every process it started and removes the directory (kept when the
 * environment has SHARDEX_KEEP_TEST_DIR set). */
void sx_cluster_stop(sx_cluster *c);

/* Adds the coordinator's metadata flags to argv at *n (at most 6; the path
 * or URL they name is written into buf, cap bytes, which must outlive argv):
 * --data-dir DIR/coord, or with opts.etcd --metadata etcd://ADDR, --cluster
 * and --metadata-lease. For a test that starts a coordinator of its own on
 * the cluster's metadata. */
void sx_cluster_meta_args(const sx_cluster *c, char **argv, int *n, char *buf, size_t cap);

/* (Re)starts worker i (keeping its data directory); waits for its port file. */
bool sx_cluster_start_worker(sx_cluster *c, uint32_t i);
/* The same with extra environment variables for that process ("NAME=value",
 * NULL-terminated; NULL: none), e.g. SHARDEX_CRASH_POINT. */
bool sx_cluster_start_worker_env(sx_cluster *c, uint32_t i, const char *const *env);
void sx_cluster_kill_worker(sx_cluster *c, uint32_t i);
void sx_cluster_kill_coordinator(sx_cluster *c);
/* kill -9 of every worker, the coordinator and the etcd member, for a
 * teardown whose data is thrown away (a graceful stop costs each process its
 * shutdown grace); then sx_cluster_stop removes the directory. */
void sx_cluster_kill_all(sx_cluster *c);
/* Restarts the coordinator on the same port and metadata, with extra
 * arguments (NULL-terminated, may be NULL). Returns false if it did not come
 * up, that is, answer GetMap (on etcd, after a kill -9: once the old
 * leader's etcd lease ran out). */
bool sx_cluster_restart_coordinator(sx_cluster *c, const char *const *extra);

/* Coordinators on etcd (opts.etcd_endpoints). Starts coordinator k again (it must not
 * be running) on its address, with its log (coordK.log) appended to; does
 * not wait: it campaigns, and leads or follows. */
void sx_cluster_start_coord(sx_cluster *c, uint32_t k);
/* kill -9 of coordinator k (reaped). No-op if it is not running. */
void sx_cluster_kill_coord(sx_cluster *c, uint32_t k);
/* The coordinator that leads by etcd's record (the leader key names its
 * address) and answers GetMap: waits up to timeout_ms for one, sets
 * c->coord_addr to it and returns its index; -1 if none did. The leader key
 * is read through c->etcd_client, which needs an etcd quorum. */
int sx_cluster_find_leader(sx_cluster *c, uint64_t timeout_ms);
/* Coordinator k follows: it was started (its process is not reaped here:
 * a test may wait for its exit status), the leader key names another, and
 * it does not answer GetMap as a leader (FAILED_PRECONDITION naming the
 * leader, or UNAVAILABLE before it listens). */
bool sx_cluster_coord_follows(sx_cluster *c, uint32_t k);
/* The index of the coordinator the leader key names now (no GetMap), -1 if
 * the key is absent or etcd does not answer; *create_revision (may be NULL)
 * is the key's create revision (the leader's epoch), 0 if absent. */
int sx_cluster_leader_key(sx_cluster *c, int64_t *create_revision);

/* The coordinator's current map (sx_rpc_free it), or NULL if it did not answer. */
Shardex__Internal__V1__ClusterMap *sx_cluster_map(sx_cluster *c);
/* What worker i believes (sx_rpc_free it), or NULL. */
Shardex__Internal__V1__WorkerStatusResponse *sx_cluster_worker_status(sx_cluster *c, uint32_t i);

/* Replaces worker i's outgoing-call fault rules (WorkerAdmin.SetFaults; rpc.h
 * syntax, "" clears). False (with a message on stderr) if it was refused. */
bool sx_cluster_set_faults(sx_cluster *c, uint32_t i, const char *spec);

/* True when the coordinator's map says worker i is alive (false when the
 * coordinator did not answer or does not know it). */
bool sx_cluster_worker_alive(sx_cluster *c, uint32_t i);
/* Waits up to timeout_ms until sx_cluster_worker_alive(c, i), e.g. after
 * sx_cluster_start_worker; false if it did not happen. */
bool sx_cluster_wait_alive(sx_cluster *c, uint32_t i, uint64_t timeout_ms);

/* Log partition p as the coordinator's map has it, in test indexes. */
#define SX_CLUSTER_NONE UINT32_MAX /* no such test worker */
typedef struct sx_cluster_part_view {
    bool ok; /* the coordinator answered and its map has p */
    uint64_t map_version, epoch, isr_version;
    int32_t leader_w; /* map index, -1: none */
    uint32_t leader;  /* test index, SX_CLUSTER_NONE */
    bool leader_alive;
    uint32_t isr_mask;   /* test indexes, bit i for worker i */
    uint32_t nisr;       /* map members, known to the test or not */
    uint32_t alive_mask; /* test indexes of the workers the map calls alive */
} sx_cluster_part_view;
sx_cluster_part_view sx_cluster_part_view_of(sx_cluster *c, uint32_t p);

/* The test index of map worker w, or SX_CLUSTER_NONE. */
uint32_t sx_cluster_test_index(const sx_cluster *c, const Shardex__Internal__V1__ClusterMap *m,
                               int32_t w);

/* The map index of test worker i (by its stable id), or -1. */
int32_t sx_cluster_index_of(const Shardex__Internal__V1__ClusterMap *m, const sx_cluster *c,
                            uint32_t i);

/* Prints the tail of every process log (for a failing test). */
void sx_cluster_dump_logs(const sx_cluster *c);

/* Path of a built program, e.g. sx_cluster_bin("coordinator/shardex-coordinator"). */
const char *sx_cluster_bin(const char *rel, char *buf, size_t cap);

#endif
