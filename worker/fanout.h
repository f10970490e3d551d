/* fanout.h: the one way this worker calls partition leaders and term
 * partition owners: the same method on several targets at once, each call
 * re-aimed from the newest map and retried as a policy says until it
 * succeeds, fails for good or the deadline passes. Put and Delete (the
 * router's writes), Get, and Query's scans and document fetch all go through
 * here; only the policy and the aim differ.
 *
 * One fan-out, call by call:
 *
 *   AIM      each round takes the newest map (the worker's: sx_membership_get_view) and asks
 *            the aim for the call's target; no map or no target now: the
 *            round's outcome is the aim's error (SX_UNAVAILABLE by default).
 *   ATTEMPT  an asynchronous RPC bounded by min(time left, the policy's
 *            attempt time); or, when the aim says the target is this worker
 *            (call->self) and the fan-out has a local executor or this
 *            worker's server, the executor runs it here, or the server's own
 *            handler does (sx_rpc_server_call_local: no network), under the
 *            same bound: past it the fan-out gives the attempt up as an RPC
 *            client would (SX_DEADLINE_EXCEEDED) and a later answer is
 *            dropped.
 *   SETTLED  once every attempt of the round answered or was given up, each
 *            failed call is retried when the policy retries its status for
 *            the time since the fan-out began and a pause still fits before
 *            the deadline; otherwise it is done. After a pause (about a
 *            heartbeat, so that a newer map can arrive) the next round aims
 *            the calls not done.
 *   REPORT   each failed call's error is mapped and named as the policy says
 *            (call->err); the first failed call, in call order, is the
 *            fan-out's result.
 *
 *   HEDGE    (optional, sx_fanout.hedge_aim) a call whose attempt is slow
 *            also goes to a second target; the first success settles it.
 *
 * Threads: a fan-out runs on the caller's thread, which it blocks until the
 * end; completions arrive on rpc client and replica threads. Attempts it no
 * longer waits for (a local attempt given up at its deadline, a hedge's
 * slower twin) may still be running when it returns: their answers are
 * dropped when they come (the executor owns what it needs, and the
 * fan-out's shared state is counted, so it outlives them).
 */
#ifndef SX_FANOUT_H
#define SX_FANOUT_H

#include "membership.h"
#include "rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* retry_ms value: retried until the deadline. */
#define SX_FANOUT_UNTIL_DEADLINE UINT32_MAX

/* How a fan-out retries, and how it reports what it gave up on. Valid when
 * zeroed (nothing retried, errors as they came). */
typedef struct sx_fanout_policy {
    /* retry_ms[st]: how long after the fan-out began a call that failed with
     * st is sent again (0: never; SX_FANOUT_UNTIL_DEADLINE). */
    uint32_t retry_ms[SX_STATUS_COUNT];
    uint32_t pause_ms;   /* between rounds: about a heartbeat */
    uint64_t attempt_ms; /* one attempt; 0: sx_partmap_attempt_ms of the round's map */
    /* A call given up on with one of these statuses (bit 1u << st) is
     * reported as SX_UNAVAILABLE: what a client sees is that the cluster
     * could not answer in time, not our internal refusal. */
    uint32_t unavailable_mask;
    const char *unavailable_note; /* appended to such a message; NULL: nothing */
    bool name_target;             /* messages start "<what> at <addr>: " (when both are known) */
} sx_fanout_policy;

/* Reads (Query's scans and document fetch, Get): ABORTED (the target no
 * longer leads / owns), UNAVAILABLE, DEADLINE_EXCEEDED of one attempt and
 * FAILED_PRECONDITION (a stale epoch in our map) are retried until the
 * deadline; errors name their target; a target that moved or refused is
 * reported UNAVAILABLE "(no answer before the deadline)". */
extern const sx_fanout_policy sx_fanout_reads;

/* Writes (Put, Delete): ABORTED, UNAVAILABLE, UNIMPLEMENTED and
 * DEADLINE_EXCEEDED of one attempt are retried until the deadline (sending a
 * write again is harmless: same content, a higher version);
 * FAILED_PRECONDITION (too few in-sync replicas) only for
 * SX_FANOUT_ISR_RETRY_MS, long enough for a leader with a stale map (it just
 * handed leadership on) to hear of the new one, short enough that a real
 * shortage is reported promptly. ABORTED and FAILED_PRECONDITION are
 * reported UNAVAILABLE with the leader's message as it came. */
extern const sx_fanout_policy sx_fanout_writes;
#define SX_FANOUT_ISR_RETRY_MS 600

typedef struct sx_fanout_call {
    ProtobufCMessage *req;  /* the caller's; aim may change fields (an epoch) */
    ProtobufCMessage *resp; /* on success; freed by sx_fanout_free */
    sx_status st;           /* the last attempt's outcome */
    sx_err err;             /* on failure: the error as the policy reports it */
    char what[160];         /* what the target is, for messages ("partition 3"); set by aim */
    bool self;              /* set by aim: the target is this worker */
    /* The request of the call's hedge (the caller's; hedge_aim may change
     * fields), NULL: the call is not hedged. */
    ProtobufCMessage *hedge_req;
    bool hedge_self;    /* set by hedge_aim: the hedge's target is this worker */
    bool hedged;        /* on success: the hedge's answer won */
    sx_status hedge_st; /* the hedge's outcome in the last round (SX_OK: none or it won) */
    sx_err hedge_err;   /* its error, as it came */
    /* private (under the fan-out's mutex while a round runs) */
    char addr[300];
    char hedge_addr[300];
    bool done;
    bool settled;      /* this round */
    bool primary_sent; /* this round */
    bool hedge_sent;   /* this round */
    bool hedge_due;    /* this round: a hedge is still to be sent */
    void *att[2];      /* this round's attempts: primary, hedge */
} sx_fanout_call;

/* Sets call i's target from map m: writes the address (at most cap bytes)
 * into addr and may update the request; false (with err set) when there is
 * no target now. */
typedef bool (*sx_fanout_aim_cb)(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *call,
                                 char *addr, size_t cap, sx_err *err);

/* An aim for calls to log partitions' leaders: call i goes to the leader of
 * partition ((const uint32_t *)arg)[i]; self when this worker leads it in m
 * (the lease is the local executor's business). */
bool sx_fanout_aim_leaders(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *call,
                           char *addr, size_t cap, sx_err *err);

/* A local executor: runs req here instead of sending it, completing as an
 * asynchronous RPC does. It must not use req once it returns; it calls
 * done(status, err, resp, done_arg) exactly once, on any thread, possibly
 * before it returns; resp (SX_OK only; made by sx_rpc_copy) is then the
 * fan-out's, freed with sx_rpc_free. deadline_ms bounds the attempt (the fan-out gives it up then,
 * and frees a resp that comes later). */
typedef void (*sx_fanout_local_cb)(void *arg, const ProtobufCMessage *req, uint64_t deadline_ms,
                                   sx_rpc_done_cb done, void *done_arg);

/* Where a fan-out takes each round's map from: the newest one, acquired (the
 * fan-out releases it), or NULL when there is none yet. */
typedef sx_partmap *(*sx_fanout_map_cb)(void *arg);

/* Asks the map source (map_arg) for a newer map soon: a call found the map
 * out of date. */
typedef void (*sx_fanout_stale_cb)(void *arg);

/* A map source for sx_fanout.map: the view of the sx_membership given as arg;
 * and its sx_fanout.stale: a heartbeat now (sx_membership_refresh). */
sx_partmap *sx_fanout_member_map_cb(void *member);
void sx_fanout_member_stale_cb(void *member);

/* What one fan-out calls, and how. Everything is borrowed for the call. */
typedef struct sx_fanout {
    sx_rpc_client *rpc;
    sx_fanout_map_cb map; /* each round aims from the map it gives */
    void *map_arg;
    /* Called with map_arg before a round that retries calls refused as
     * aimed at a leader that is no more (ABORTED) or at a node that does not
     * answer (UNAVAILABLE): after a leadership moves, the next map comes at
     * once instead of at the next heartbeat. NULL: the map comes when it comes. */
    sx_fanout_stale_cb stale;
    const ProtobufCServiceDescriptor *svc;
    const char *method;
    sx_fanout_aim_cb aim;
    void *aim_arg;
    sx_fanout_local_cb local; /* NULL: see here */
    void *local_arg;
    /* Without `local`: this worker's server, whose handler runs the calls
     * aimed here (sx_rpc_server_call_local); NULL: they go by RPC too. */
    sx_rpc_server *here;
    const sx_fanout_policy *policy;
    /* Hedged requests. NULL: none. Else, in each round, a call with a
     * hedge_req whose primary attempt has not answered hedge_ms after the
     * round began (or failed sooner, or had no target) is also sent to the
     * target hedge_aim gives (called with aim_arg, filling the call's hedge
     * address and hedge_self); the first success wins, the other attempt
     * is cancelled if it is an RPC (sx_rpc_cancel: one waiting to be sent
     * never is) and its answer dropped if it still comes (a local attempt
     * runs to its end). When both fail the primary's
     * error is the round's outcome (the hedge's, when no primary was sent),
     * and the policy retries it as any other. */
    sx_fanout_aim_cb hedge_aim;
    uint64_t hedge_ms;
} sx_fanout;

/* Runs the n calls as fo says until each succeeds or is done failing, or
 * deadline_ms (monotonic) passes. Returns SX_OK when all succeeded, else the
 * first failed call's reported status, with its error in err (may be NULL);
 * calls[i].st and .err tell each. */
sx_status sx_fanout_exec(const sx_fanout *fo, sx_fanout_call *calls, size_t n, uint64_t deadline_ms,
                         sx_err *err);

/* sx_fanout_exec with the reads policy, each attempt bounded by attempt_ms,
 * the calls aimed at this worker run by its server self_srv (NULL: by RPC). A
 * failure's message names the target: "<what> at <addr>: ...". */
sx_status sx_fanout_run(sx_rpc_client *rpc, sx_rpc_server *self_srv, sx_membership *member,
                        const ProtobufCServiceDescriptor *svc, const char *method,
                        sx_fanout_call *calls, size_t n, sx_fanout_aim_cb aim, void *arg,
                        uint64_t deadline_ms, uint64_t attempt_ms, sx_err *err);

void sx_fanout_free(sx_fanout_call *calls, size_t n);

/* The policy's two decisions, pure (for tests). Whether a call that failed
 * with st at now_ms goes again, in a fan-out that began at start_ms and must
 * end by deadline_ms: */
bool sx_fanout_retries(const sx_fanout_policy *p, sx_status st, uint64_t start_ms, uint64_t now_ms,
                       uint64_t deadline_ms);
/* Rewrites call c's error (c->st failed, c->err as it came) into the one the
 * policy reports, and returns its status. */
sx_status sx_fanout_report(const sx_fanout_policy *p, sx_fanout_call *c);

#endif
