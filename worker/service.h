/* service.h: the worker's RPC surface: the context every handler gets, and
 * the one table of every service, method, handler and pool (service.c). */
#ifndef SX_WORKER_SERVICE_H
#define SX_WORKER_SERVICE_H

#include "membership.h"
#include "metrics.h"
#include "replica.h"
#include "rpc.h"

/* The latencies the client contract's handlers observe (metrics.h), in
 * seconds, of answers that succeeded (failures are counted by status in
 * shardex_rpc_server_requests_total); NULL when metrics are off. */
typedef struct sx_worker_metrics {
    sx_histogram *put_ack, *delete_ack;       /* shardex_write_ack_seconds{method}: Put, Delete */
    sx_histogram *query_local, *query_global; /* shardex_query_seconds{mode}: the mode served */
    sx_histogram *lead_write;  /* shardex_lead_write_seconds: Replication.Write led here */
    sx_counter *query_partial; /* shardex_query_partial_total: answers missing partitions */
    sx_counter
        *follower_scans; /* shardex_query_follower_scans_total: partitions followers served */
} sx_worker_metrics;

typedef struct sx_worker_ctx {
    const char *worker_id;
    const char *coordinator; /* HOST:PORT */
    sx_rpc_client *rpc;
    sx_membership *member;
    sx_replica_set *replicas;
    struct sx_tstore *terms; /* term partitions this worker owns */
    sx_rpc_server *srv;      /* this worker's server: calls to itself run through it */
    bool allow_faults;       /* WorkerAdmin.SetFaults may change the fault rules (--allow-faults) */
    sx_metrics *metrics;     /* borrowed; NULL: metrics off */
    sx_worker_metrics m;     /* filled by sx_service_add from metrics */
} sx_worker_ctx;

/* Registers every method of the worker on srv (before it starts), each
 * handler taking w as its arg, and the handlers' metrics in w->metrics. */
sx_status sx_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err);

#endif
