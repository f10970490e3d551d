/* router.h: Put, Delete and Get of the client contract, routed to each
 * partition's leader (see router.c). Handlers take an sx_worker_ctx. */
#ifndef SX_ROUTER_H
#define SX_ROUTER_H

#include "rpc.h"
#include "service.h"

/* Shardex.Put and Shardex.Delete: validated whole, grouped by partition,
 * each group sent to its leader (or written here when this worker leads
 * it); tokens in request order. Shardex.Get: read from the id's leader after
 * its `after` offset. Each takes the sx_worker_ctx as arg and waits for other
 * calls: ROUTING. */
sx_status sx_router_put(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *arg, sx_err *err);
sx_status sx_router_delete(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                           void *arg, sx_err *err);
sx_status sx_router_get(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                        void *arg, sx_err *err);

#endif
