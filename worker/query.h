/* query.h: Shardex.Query on any worker: planned by qplan.h, run here (the
 * scans fanned out to log partitions' leaders for LOCAL, to term partitions'
 * owners for GLOBAL, and merged). The Index service that answers those scans
 * is ixservice.h. */
#ifndef SX_QUERY_H
#define SX_QUERY_H

#include "rpc.h"
#include "service.h"

/* Shardex.Query (shardex.proto): takes the sx_worker_ctx as arg. Waits for
 * calls to other workers (and to this one): ROUTING. */
sx_status sx_query_on_query(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                            void *arg, sx_err *err);

/* The handler table rows for shardex.v1.Shardex's Query; *n gets their
 * count. Static storage. */
const sx_rpc_method *sx_query_methods(size_t *n);

/* Serves Query (sx_query_methods) and the Index service (ixservice.h) on
 * srv, with w passed to the handlers. */
sx_status sx_query_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err);

#endif
