/* service.h: the coordinator's RPC surface: the internal Coordinator service
 * and the cluster-wide part of the client contract (ClusterStatus and the
 * index catalog), so that tools can ask the coordinator directly. */
#ifndef SX_COORD_SERVICE_H
#define SX_COORD_SERVICE_H

#include "coord.h"
#include "rpc.h"

sx_status sx_coord_service_add(sx_rpc_server *srv, sx_coord *c, sx_err *err);

#endif
