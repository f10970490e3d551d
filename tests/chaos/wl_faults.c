/* wl_faults.c: sx_chaos_workload faults, the lab's lossy, slow and
 * duplicating links. The lab has no netem, so a slow or lossy link is the rpc
 * fault layer of the calling worker (rpc.h): this command replaces the
 * outgoing-call fault rules of every worker in --servers through
 * WorkerAdmin.SetFaults ("" clears them). A worker that cannot be reached is
 * an error: the caller's schedule would otherwise claim a fault that never ran.
 */
#include "wl.h"

#include "rpc.h"
#include "shardex/internal/v1/worker.pb-c.h"

#include <stdio.h>
#include <string.h>

int sx_wl_faults(const sx_wl_cfg *cfg)
{
    sx_rpc_client *rpc = NULL;
    sx_err err = {0};
    sx_rpc_client_opts copts = {.faults = ""}; /* this tool's own calls stay clean */
    if (sx_rpc_client_create(&copts, &rpc, &err) != SX_OK) {
        fprintf(stderr, "sx_chaos_workload faults: %s\n", err.msg);
        return SX_WL_EXIT_UNAVAILABLE;
    }
    int code = SX_WL_EXIT_OK;
    const char *p = cfg->servers;
    while (*p) {
        size_t n = strcspn(p, ",");
        char addr[256];
        snprintf(addr, sizeof(addr), "%.*s", (int)n, p);
        p += n + (p[n] == ',');
        if (!addr[0])
            continue;
        Shardex__Internal__V1__SetFaultsRequest req =
            SHARDEX__INTERNAL__V1__SET_FAULTS_REQUEST__INIT;
        req.spec = (char *)cfg->spec;
        ProtobufCMessage *resp = NULL;
        sx_rpc_call_opts o = {.timeout_ms = cfg->timeout_ms, .idempotent = true};
        if (sx_rpc_invoke(rpc, addr, &shardex__internal__v1__worker_admin__descriptor, "SetFaults",
                          &req.base, &resp, &o, &err) != SX_OK) {
            fprintf(stderr, "sx_chaos_workload faults: %s: %s\n", addr, err.msg);
            code = err.code == SX_INVALID_ARGUMENT ? SX_WL_EXIT_USAGE : SX_WL_EXIT_UNAVAILABLE;
            continue;
        }
        sx_rpc_free(resp);
        printf("%s: faults \"%s\"\n", addr, cfg->spec);
    }
    sx_rpc_client_destroy(rpc);
    return code;
}
