/* fanout.h: the same method called on several workers at once, each call
 * re-aimed from the newest map and retried until it succeeds, fails for good
 * or the deadline passes. Queries use it to reach every log partition's
 * leader or every term partition's owner.
 *
 * Retried: ABORTED (the target no longer leads / owns), UNAVAILABLE,
 * DEADLINE_EXCEEDED of one attempt, FAILED_PRECONDITION (a stale epoch in
 * our map), after a pause of about a heartbeat so that a newer map arrives.
 */
#ifndef SX_FANOUT_H
#define SX_FANOUT_H

#include "membership.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_fanout_call {
    ProtobufCMessage *req;  /* the caller's; aim may change fields (an epoch) */
    ProtobufCMessage *resp; /* on success; freed by sx_fanout_free */
    sx_status st;
    sx_err err;
    char what[160]; /* what the target is, for messages ("partition 3"); set by aim */
    /* private */
    char addr[300];
    bool done;
    void *fan;
} sx_fanout_call;

/* Sets call i's target from map m: writes the address (at most cap bytes)
 * into addr and may update the request; false (with err set) when there is
 * no target now. */
typedef bool (*sx_fanout_aim_fn)(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *call,
                                 char *addr, size_t cap, sx_err *err);

/* An aim for calls to log partitions' leaders: call i goes to the leader of
 * partition ((const uint32_t *)arg)[i]. */
bool sx_fanout_aim_leaders(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *call,
                           char *addr, size_t cap, sx_err *err);

/* Runs the n calls until each succeeds or fails for good, or deadline_ms
 * (monotonic) passes. Each attempt is bounded by attempt_ms. Returns SX_OK
 * when all succeeded, else the first failure's status (calls[i].st and .err
 * tell each). A failure's message names the target: "<what> at <addr>: ...". */
sx_status sx_fanout_run(sx_rpc_client *rpc, sx_member *member,
                        const ProtobufCServiceDescriptor *svc, const char *method,
                        sx_fanout_call *calls, size_t n, sx_fanout_aim_fn aim, void *arg,
                        uint64_t deadline_ms, uint64_t attempt_ms, sx_err *err);

void sx_fanout_free(sx_fanout_call *calls, size_t n);

#endif
