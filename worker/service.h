/* service.h: the worker's RPC surface. Today: WorkerAdmin.Status (what this
 * worker believes) and the cluster-wide calls of the client contract
 * (ClusterStatus and the index catalog), forwarded to the coordinator so that
 * clients can talk to any worker; Put, Delete and Get routed to leaders
 * (router.c); the Replication service between workers; Query and the Index
 * service (query.c). */
#ifndef SX_WORKER_SERVICE_H
#define SX_WORKER_SERVICE_H

#include "membership.h"
#include "replica.h"
#include "rpc.h"

typedef struct sx_worker_ctx {
    const char *worker_id;
    const char *coordinator; /* HOST:PORT */
    sx_rpc_client *rpc;
    sx_member *member;
    sx_replicas *replicas;
    struct sx_tstore *terms; /* term partitions this worker owns */
} sx_worker_ctx;

sx_status sx_worker_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err);

#endif
