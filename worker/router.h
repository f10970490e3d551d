/* router.h: Put, Delete and Get of the client contract, routed to each
 * partition's leader (see router.c). Handlers take an sx_worker_ctx. */
#ifndef SX_ROUTER_H
#define SX_ROUTER_H

#include "rpc.h"
#include "service.h"

/* The handler table rows for shardex.v1.Shardex's Put, Delete and Get. */
const sx_rpc_method *sx_router_methods(size_t *n);

#endif
