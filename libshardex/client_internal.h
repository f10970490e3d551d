/* client_internal.h: what client.c shares with bulk.c: the client's state and
 * the plan of one call through the servers (which server next, whether a
 * failure may be retried, after what pause). Not a public header.
 */
#ifndef SX_CLIENT_INTERNAL_H
#define SX_CLIENT_INTERNAL_H

#include "rpc.h"
#include "shardex.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SX__SHARDEX_SVC (&shardex__v1__shardex__descriptor)

struct sx_client {
    sx_rpc_client *rpc;
    char **servers;
    size_t nservers;
    uint64_t timeout_ms;
    uint64_t attempt_timeout_ms;
    uint32_t max_attempts;
    _Atomic size_t rotation; /* where the next call starts */
    _Atomic uint64_t jitter; /* splitmix64 counter for pauses */
    /* Per server: until when (sx_clock_now_ms) it counts as down because a
     * connection to it could not be made; such servers are tried last. */
    _Atomic uint64_t down_until[SX_CLIENT_MAX_SERVERS];
};

/* One call's way through the servers. Filled by sx__plan_start; one thread at
 * a time. */
typedef struct sx__plan {
    uint8_t order[SX_CLIENT_MAX_SERVERS]; /* servers in the order they are tried */
    uint64_t deadline_ms;                 /* of the whole call */
    uint32_t attempts;                    /* started so far */
    uint32_t cur;                         /* server of the latest attempt */
    bool idempotent;                      /* a read: any transient failure may be retried */
} sx__plan;

/* Starts a call: fixes its deadline and the order of servers (the next of the
 * rotation first, servers that are down last). */
void sx__plan_start(sx_client *c, sx__plan *p, bool idempotent);

/* Starts the next attempt: returns its server (borrowed from c) and fills o
 * (deadline: the rest of the call's, or less for reads with attempt_timeout_ms). */
const char *sx__plan_next(sx_client *c, sx__plan *p, sx_rpc_call_opts *o);

/* After a failed attempt: true (and the pause before the next, in *delay_ms)
 * when the call may try again, by the rules of shardex.h; false to give up. */
bool sx__plan_retry(sx_client *c, sx__plan *p, sx_status st, const sx_err *e, uint64_t *delay_ms);

/* Ends the call: on success, marks its server up; on failure, prefixes e's
 * message with the method and the server (and the attempt, if not the first). */
void sx__plan_end(sx_client *c, const sx__plan *p, const char *method, sx_status st, sx_err *e);

#endif
