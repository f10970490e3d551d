/* health.h: the standard gRPC health checking service (grpc.health.v1.Health,
 * proto/grpc/health/v1/health.proto) on a daemon's server, so that load
 * balancers and grpc_health_probe-style checks can ask whether it can do its
 * job.
 *
 * Check answers SERVING or NOT_SERVING for the whole server (service "") and
 * for each service it names; any other service name is NOT_FOUND, as the
 * protocol says. Watch is a server stream: the status at once, then every
 * change of it, until the client leaves (SERVICE_UNKNOWN for a name not
 * served, without ending the stream, as the protocol says). The daemon's
 * state is polled for changes every SX_HEALTH_POLL_MS by a thread of the
 * service, and only while someone watches. When the server stops, open
 * Watch streams end with UNAVAILABLE. */
#ifndef SX_HEALTH_H
#define SX_HEALTH_H

#include "rpc.h"

#include <stdbool.h>

#define SX_HEALTH_POLL_MS 100

/* What a daemon says of itself, owned by the caller for the server's life. */
typedef struct sx_health {
    /* The full names of the services a caller may ask about, NULL-terminated,
     * e.g. "shardex.v1.Shardex"; all answered alike. */
    const char *const *services;
    /* Whether it serves now: called on an rpc thread for every Check, and on
     * the service's thread for Watch; must not block. */
    bool (*serving)(void *arg);
    void *arg;
} sx_health;

typedef struct sx_health_service sx_health_service;

/* Serves Health/Check and Health/Watch on srv (before it starts), as h says.
 * *out is destroyed with sx_health_service_destroy after srv is. */
sx_status sx_health_add(sx_rpc_server *srv, const sx_health *h, sx_health_service **out,
                        sx_err *err);

/* Stops the Watch thread and frees; after the server is destroyed (its
 * streams are over by then). Accepts NULL. */
void sx_health_service_destroy(sx_health_service *hs);

#endif
