/* service.h: the coordinator's RPC surface: the internal Coordinator service
 * and the cluster-wide part of the client contract (ClusterStatus and the
 * index catalog), so that tools can ask the coordinator directly. */
#ifndef SX_COORD_SERVICE_H
#define SX_COORD_SERVICE_H

#include "coord.h"
#include "meta.h"
#include "rpc.h"

/* The front: what answers on the coordinator's port, leading or not. A
 * coordinator listens from its start; while it follows (metadata in etcd,
 * another leads) every call gets FAILED_PRECONDITION naming the leader
 * (sx_err_not_leader), which workers follow; once it leads (front_lead) the
 * calls reach coord.c, for as long as meta says it surely leads. */
typedef struct sx_coord_front sx_coord_front;
sx_coord_front *sx_coord_front_create(void);
/* Who leads ("": unknown). A leading front stops leading first: it returns
 * once no call uses its coordinator any more, which may then be closed. */
void sx_coord_front_follow(sx_coord_front *f, const char *leader);
/* From now on c answers, while meta (c's store, borrowed; NULL: embedded)
 * says it leads. c and meta outlive the server. */
void sx_coord_front_lead(sx_coord_front *f, sx_coord *c, sx_meta *meta);
bool sx_coord_front_leading(sx_coord_front *f);
/* The coordinator while it leads (else NULL), held until the matching exit
 * (called either way): for readers besides the rpc handlers (metrics). */
sx_coord *sx_coord_front_enter(sx_coord_front *f);
void sx_coord_front_exit(sx_coord_front *f);
void sx_coord_front_destroy(sx_coord_front *f); /* after the server; accepts NULL */

/* Serves the Coordinator service and the coordinator's part of the client
 * contract through f. */
sx_status sx_coord_service_add(sx_rpc_server *srv, sx_coord_front *f, sx_err *err);

#endif
