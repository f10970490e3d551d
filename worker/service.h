/* service.h: the worker's RPC surface: the context every handler gets, and
 * the one table of every service, method, handler and pool (service.c). */
#ifndef SX_WORKER_SERVICE_H
#define SX_WORKER_SERVICE_H

#include "membership.h"
#include "replica.h"
#include "rpc.h"

typedef struct sx_worker_ctx {
    const char *worker_id;
    const char *coordinator; /* HOST:PORT */
    sx_rpc_client *rpc;
    sx_membership *member;
    sx_replica_set *replicas;
    struct sx_tstore *terms; /* term partitions this worker owns */
    sx_rpc_server *srv;      /* this worker's server: calls to itself run through it */
} sx_worker_ctx;

/* Registers every method of the worker on srv (before it starts), each
 * handler taking w as its arg. */
sx_status sx_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err);

#endif
