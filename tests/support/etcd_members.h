/* etcd_members.h: real etcd members (/usr/bin/etcd) for tests and benchmarks,
 * N of them as one cluster on loopback ports found free, each with its data
 * directory, log and process, so that one can be killed (-9), stopped
 * (SIGTERM) and started again on the same ports and data, as a crashed or
 * restarted member of a real cluster would be.
 *
 * Not here: failing a cmocka test (fixture.h wraps these for tests: they
 * fail with the members' logs), TLS, membership changes (add or remove a
 * member), compaction.
 *
 * Every function runs on the caller's thread; a set belongs to one thread.
 */
#ifndef SX_TEST_ETCD_MEMBERS_H
#define SX_TEST_ETCD_MEMBERS_H

#include "etcd.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SX_ETCDM_MAX 5

/* One member. Its ports and data directory stay the same across restarts. */
typedef struct sx_etcdm {
    char name[64];
    char data[300]; /* its data directory, kept when it is killed */
    char log[300];  /* its stdout and stderr, appended across restarts */
    int client_port, peer_port;
    char addr[64]; /* client address, 127.0.0.1:PORT */
    pid_t pid;     /* 0: not running */
    sx_etcd *etcd; /* a client of this member alone (readiness) */
} sx_etcdm;

/* The members of one etcd cluster, in one temporary directory. */
typedef struct sx_etcdm_set {
    char dir[256];
    uint32_t n;
    sx_etcdm m[SX_ETCDM_MAX];
    char initial[1024];  /* --initial-cluster: name=http://127.0.0.1:PEER,... */
    char token[64];      /* --initial-cluster-token */
    char endpoints[512]; /* every member's client address, comma-separated */
    sx_etcd *etcd;       /* a client of every member (the caller's reads) */
} sx_etcdm_set;

/* A loopback TCP port free now (bound with port 0 and released); -1 if no
 * socket could be bound. Another process may take it before it is used. */
int sx_etcdm_free_port(void);

/* Starts n (1..SX_ETCDM_MAX) members as one new cluster in a fresh
 * directory named after tag, and waits up to timeout_ms (per attempt) until
 * every one answers a read. A port taken in between (a member exits) or a
 * cluster too slow: everything is killed and it tries again with new ports,
 * up to 5 times. False (after printing the members' logs) when it did not
 * come up; then the set still holds what to clean (sx_etcdm_destroy). */
bool sx_etcdm_start(sx_etcdm_set *ec, uint32_t n, const char *tag, uint64_t timeout_ms);

/* kill -9 of member i (reaped); its data directory stays. No-op if not running. */
void sx_etcdm_kill(sx_etcdm_set *ec, uint32_t i);

/* SIGTERM to member i and up to timeout_ms for it to exit (then kill -9);
 * its data directory stays. No-op if not running. */
void sx_etcdm_stop(sx_etcdm_set *ec, uint32_t i, uint64_t timeout_ms);

/* Starts member i again (it must not be running) on its ports and data
 * directory; does not wait: a member alone answers nothing until a quorum is
 * up (sx_etcdm_wait). */
void sx_etcdm_restart(sx_etcdm_set *ec, uint32_t i);

/* Waits up to timeout_ms until every running member answers a read (which
 * needs a quorum and a leader). False if one does not, or one exited. */
bool sx_etcdm_wait(sx_etcdm_set *ec, uint64_t timeout_ms);

/* Prints the last lines of every member's log to stderr. */
void sx_etcdm_dump_logs(const sx_etcdm_set *ec, int lines);

/* kill -9 of every member (reaped), their directories kept. */
void sx_etcdm_kill_all(sx_etcdm_set *ec);

/* Kills every member, closes the clients and removes the directory (kept
 * when SHARDEX_KEEP_TEST_DIR is set, sx_h_tmpdir_done). Accepts a zeroed set. */
void sx_etcdm_destroy(sx_etcdm_set *ec);

#endif
