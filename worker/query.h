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

#endif
