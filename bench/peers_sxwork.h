/* peers_sxwork.h: bench_peers' work on shardex: a real 3-worker cluster on
 * loopback (tests/support/cluster.h, started and settled as bench_write and
 * bench_index do), the demo's indexes (maintainer and section strings,
 * installed-size an int; each LOCAL and GLOBAL, created on the empty cluster
 * and READY before any write), and the same ingest and queries as
 * peers_pgwork.h, through either of two clients:
 *   - plain: what a grpcio or grpcurl user does, knowing nothing of the map:
 *     each Put or Query page goes straight to the next worker, round-robin,
 *     with the project's RPC layer (sx_rpc_invoke, shardex.v1.Shardex);
 *   - lib: libshardex (sx_client_put, sx_client_query), one sx_client per
 *     cluster shared by the callers.
 * A query fetches every page (page token) with `page` hits each, documents
 * included when fetch_docs; the hits are counted and checked against the data,
 * and the mode that served each page against the one asked.
 *
 * A call that fails (a Put refused while an ISR is short, a query while a term
 * partition has no owner) is made again after 50 ms, as a user would, for up
 * to a minute; its latency includes the wait, and the target counts it. A
 * wrong answer is never retried: it ends the run.
 *
 * Threads: the ops (peers_op_cb) run on the callers' threads, each caller with
 * its own scratch; the rest on the main thread.
 */
#ifndef SX_PEERS_SXWORK_H
#define SX_PEERS_SXWORK_H

#include "cluster.h"
#include "peers_data.h"
#include "peers_loop.h"
#include "rpc.h"
#include "shardex.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cluster and what writes to it share. */
typedef struct peers_sxtarget {
    sx_cluster c;
    bool started; /* c is to be stopped */
    uint32_t R;
    sx_rpc_client *rpc;            /* the plain client (borrowed, shared by every target) */
    sx_client *lib;                /* libshardex on this cluster (owned) */
    atomic_uint next_worker;       /* the plain client's round-robin */
    atomic_uint_fast64_t next_seq; /* the next document of the ingest stream */
    double idle_cores;             /* CPU of the idle cluster, indexes READY */
    const volatile sig_atomic_t *stop;
    atomic_uint_fast64_t retries; /* calls that failed and were made again */
    char first_failure[512];      /* the first of them (written by the caller that counted it) */
} peers_sxtarget;

/* One caller's Put: shallow copies of the catalogue's documents, new ids. */
typedef struct peers_sxscratch {
    Shardex__V1__Document *docs;
    Shardex__V1__Document **ptrs;
    char (*ids)[300];
} peers_sxscratch;

typedef struct peers_sxwork {
    peers_sxtarget *t;
    const peers_data *data;
    size_t batch;
    bool lib;               /* through libshardex, else the plain client */
    Shardex__V1__Mode mode; /* queries */
    uint32_t page;          /* hits per page */
    bool fetch_docs;        /* include_docs */
    const peers_query *q;
    uint64_t turn[PEERS_MAX_CALLERS]; /* per caller: which value next */
    peers_sxscratch s[PEERS_MAX_CALLERS];
} peers_sxwork;

/* Starts a cluster of P partitions and replication R (min_isr 2 for R=3, else
 * 1), settled; creates the three indexes and waits until they are READY;
 * opens the libshardex client; measures the idle cluster's CPU. False with
 * why; the caller still calls peers_sx_stop. */
bool peers_sx_start(peers_sxtarget *t, uint32_t P, uint32_t R, sx_rpc_client *rpc,
                    const volatile sig_atomic_t *stop, char *why, size_t cap);

/* Writes the catalogue as it is (documents 0..n-1 of the stream) with
 * libshardex's bulk writer (batches of `batch`, 4 in flight), then waits (up
 * to a minute) until every query of qs (n of them) gives its count in GLOBAL
 * mode, i.e. the global indexes caught up. */
bool peers_sx_preload(peers_sxtarget *t, const peers_data *d, size_t batch, const peers_query *qs,
                      size_t n, char *why, size_t cap);

/* SIGTERM to every process of the cluster (they drain in parallel), then
 * stops it and removes its directory; closes the client. Accepts a target
 * that never started; idempotent. */
void peers_sx_signal(peers_sxtarget *t);
void peers_sx_stop(peers_sxtarget *t);

/* The cluster's CPU, microseconds (peers_cpu_cb: arg is the target). */
uint64_t peers_sx_cpu_us(void *arg);

/* One Put of `batch` new documents of the stream (peers_op_cb). */
bool peers_sxwork_ingest(void *arg, int caller, char *why, size_t cap);

/* One query of w->q (its next value), every page (peers_op_cb). */
bool peers_sxwork_query(void *arg, int caller, char *why, size_t cap);

/* Frees the callers' scratch; the work may be used again. */
void peers_sxwork_free(peers_sxwork *w);

#endif
