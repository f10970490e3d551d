/* health.h: the standard gRPC health checking service (grpc.health.v1.Health,
 * proto/grpc/health/v1/health.proto) on a daemon's server, so that load
 * balancers and grpc_health_probe-style checks can ask whether it can do its
 * job. Check answers SERVING or NOT_SERVING for the whole server (service "")
 * and for each service it names; any other service name is NOT_FOUND, as the
 * protocol says. Watch is not served yet (the rpc layer is unary): clients get
 * UNIMPLEMENTED, which the protocol says to take as "not supported". */
#ifndef SX_HEALTH_H
#define SX_HEALTH_H

#include "rpc.h"

#include <stdbool.h>

/* What a daemon says of itself, owned by the caller for the server's life. */
typedef struct sx_health {
    /* The full names of the services a caller may ask about, NULL-terminated,
     * e.g. "shardex.v1.Shardex"; all answered alike. */
    const char *const *services;
    /* Whether it serves now: called on an rpc thread for every Check; must
     * not block. */
    bool (*serving)(void *arg);
    void *arg;
} sx_health;

/* Serves Health/Check on srv (before it starts), as h says. */
sx_status sx_health_add(sx_rpc_server *srv, const sx_health *h, sx_err *err);

#endif
