/* query.h: Shardex.Query on any worker (routed to log partitions' leaders
 * for LOCAL, to term partitions' owners for GLOBAL). See query.c. */
#ifndef SX_QUERY_H
#define SX_QUERY_H

#include "rpc.h"
#include "service.h"

/* Serves Query and the Index service (ixservice.h) on srv. */
sx_status sx_query_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err);

#endif
