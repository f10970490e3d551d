/* health.c: see health.h. */
#include "health.h"

#include "grpc/health/v1/health.pb-c.h"

#include <string.h>

static bool known(const sx_health *h, const char *service)
{
    if (!service[0])
        return true; /* the server as a whole */
    for (const char *const *s = h->services; *s; s++)
        if (strcmp(*s, service) == 0)
            return true;
    return false;
}

static sx_status on_check(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                          void *arg, sx_err *err)
{
    (void)call;
    const sx_health *h = arg;
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)reqm;
    Grpc__Health__V1__HealthCheckResponse *resp = (void *)respm;
    if (!known(h, req->service))
        return sx_err_set(err, SX_NOT_FOUND, "service: \"%.128s\" is not served here",
                          req->service);
    resp->status = h->serving(h->arg)
                       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    return SX_OK;
}

static const sx_rpc_method methods[] = {{"Check", on_check, SX_RPC_INLINE}};

sx_status sx_health_add(sx_rpc_server *srv, const sx_health *h, sx_err *err)
{
    return sx_rpc_server_add_service(srv, &grpc__health__v1__health__descriptor, methods, 1,
                                     (void *)h, err);
}
