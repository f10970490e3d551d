/* membership.h: the worker's side of the control plane.
 *
 * A thread registers the worker with the coordinator (stable id, advertised
 * address), then heartbeats every lease/4 and installs each newer cluster map
 * it hears of. States:
 *
 *   UNREGISTERED --RegisterWorker ok--> REGISTERED (index, incarnation, map)
 *           (the request names the partition stores lost at start, opts.lost,
 *           until one registration succeeds)
 *   REGISTERED --Heartbeat ok--> REGISTERED (lease renewed from the send time)
 *   REGISTERED --FAILED_PRECONDITION (declared dead, or unanswered too long)--> UNREGISTERED
 *
 * With several coordinators (metadata in etcd) the one that leads answers;
 * a follower answers that it does not lead, naming the leader, and the
 * worker goes there (that answer is not about the worker: it stays
 * registered). Every answer and map carries the answering coordinator's
 * epoch; one older than the highest seen is refused (opts.epoch_file).
 *
 * Every heartbeat carries a rising number and how long the worker has gone
 * without an answer (from the send of its last answered call): the
 * coordinator judges the worker's lease as the worker does
 * (docs/architecture.md, "Leases"). Every RegisterWorker of the process
 * carries one random nonce, so that a retry after a lost answer gets the same
 * incarnation back (no new epochs); it is retried soon (lease/2, at most
 * 500 ms, then up to 200 ms), while the coordinator still holds that
 * incarnation alive.
 *
 * Nothing else: ISR changes are the replication driver's (replica.c), which
 * may ask for a heartbeat at once (sx_membership_refresh) when it changed the map.
 *
 * The lease is measured on the monotonic clock from when the last answered
 * heartbeat was sent (REPLICATION.md rule 9). Once a lease has passed without
 * an answer the worker leads nothing, whatever its map says: a worker that
 * was paused or cut off steps down by itself, before it has heard anything.
 */
#ifndef SX_MEMBERSHIP_H
#define SX_MEMBERSHIP_H

#include "mem.h"
#include "partmap.h"
#include "rpc.h"
#include "shardex/internal/v1/coordinator.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sx_membership sx_membership;

typedef struct sx_membership_opts {
    const char *coordinator; /* HOST:PORT, or several separated by commas (coordinators on
                              * etcd: the one that leads answers, the others name it) */
    const char *worker_id;
    const char *address; /* advertised HOST:PORT */
    sx_rpc_client *rpc;  /* borrowed */
    /* Called (on the membership thread, must not block) with every newer map,
     * borrowed for the call (sx_partmap_acquire to keep it). */
    void (*on_map)(void *arg, sx_partmap *map);
    /* Fills at most cap heartbeat reports about hosted replicas and returns
     * how many there are in all; called again with more room when that is
     * more than cap. */
    size_t (*reports)(void *arg, Shardex__Internal__V1__ReplicaReport *out, size_t cap);
    void *arg; /* for on_map and reports */
    /* Adds the index layer's reports (indexes, terms) to a heartbeat; what it
     * allocates lives in arena, freed after the call. May be NULL. */
    void (*more_reports)(void *arg, sx_arena *arena, Shardex__Internal__V1__HeartbeatRequest *req);
    void *more_arg;
    /* Partitions whose store this worker lost (sx_replica_lost), copied:
     * named in every RegisterWorker until one succeeds. */
    const uint32_t *lost;
    size_t nlost;
    /* Where the highest coordinator epoch heard is kept (fsync'd when it
     * rises), so that a restarted worker still refuses an older coordinator;
     * NULL: in memory only. */
    const char *epoch_file;
} sx_membership_opts;

/* Starts the membership thread. Strings are copied. */
sx_status sx_membership_start(const sx_membership_opts *opts, sx_membership **out, sx_err *err);
/* Stops the thread (no more callbacks) but keeps views working. */
void sx_membership_halt(sx_membership *m);
void sx_membership_stop(sx_membership *m); /* halts if needed and frees; accepts NULL */

/* The worker stops on purpose: from now on its view says no lease (so it
 * admits no new write as a leader and owns nothing), the heartbeats stop,
 * and the coordinator is asked to hand its roles over at once
 * (LeaveWorker); the map it answers is installed (on_map), so that the
 * replicas and term partitions give up their roles before the process
 * exits. Waits up to timeout_ms for the coordinator; on an error (it does
 * not answer, or the worker was not registered) the roles move when the
 * lease runs out, as after a crash. Once only; not with the thread's
 * callbacks running on the caller's stack. */
sx_status sx_membership_leave(sx_membership *m, uint64_t timeout_ms, sx_err *err);

/* Marks the worker as leaving without telling anyone (the first step of
 * sx_membership_leave, for a caller that lets writes in flight finish
 * before the rest): its view says no lease from now on. */
void sx_membership_stop_leading(sx_membership *m);

/* What the worker believes now. */
typedef struct sx_membership_view {
    int32_t index; /* -1 until registered */
    uint64_t incarnation;
    bool lease_valid;     /* an answered heartbeat was sent less than a lease ago */
    uint64_t ms_since_ok; /* since that heartbeat was sent; UINT64_MAX: never */
    sx_partmap *map;      /* the map as last heard, acquired (sx_partmap_release); NULL
                           * before registration */
} sx_membership_view;

void sx_membership_get_view(sx_membership *m, sx_membership_view *out);

/* The coordinator address in use (one of opts.coordinator's): the one that
 * answered last; after a call it did not answer, the next of the list.
 * Borrowed for the membership's life. For every module that calls the
 * coordinator. */
const char *sx_membership_coordinator(sx_membership *m);

/* Calls a coordinator: the one in use, and when it answers that another
 * leads (sx_err_leader_hint), that one, once. With one coordinator, a call
 * that found no connection is made again waiting for one (within its
 * timeout): gRPC fails calls at once while it backs off reconnecting. Whatever the answer, the
 * membership learns from it (sx_membership_answered): later calls go where
 * this one found the leader. For every module that calls the coordinator. */
sx_status sx_membership_invoke(sx_membership *m, const ProtobufCServiceDescriptor *svc,
                               const char *method, const ProtobufCMessage *req,
                               ProtobufCMessage **resp, const sx_rpc_call_opts *opts, sx_err *err);

/* For a caller that called the coordinator at position `used`
 * (sx_membership_coordinator_pos before the call) by itself, e.g.
 * asynchronously: the coordinator in use moves on when that one did not
 * answer or does not lead (then *st becomes SX_UNAVAILABLE); an answer from
 * an older coordinator epoch than seen is refused (*resp freed and NULL,
 * *st SX_UNAVAILABLE), a newer epoch is kept. True when the leader it named
 * is now in use: asking again at once is worth it. */
size_t sx_membership_coordinator_pos(sx_membership *m);
bool sx_membership_answered(sx_membership *m, size_t used, sx_status *st, sx_err *err,
                            ProtobufCMessage **resp);

/* Whether an answer or a map of coordinator epoch `epoch` may be acted on:
 * SX_UNAVAILABLE when an older epoch than the highest seen (a deposed
 * coordinator), else SX_OK, keeping a higher one (durably, opts.epoch_file). */
sx_status sx_membership_epoch_check(sx_membership *m, uint64_t epoch, sx_err *err);

/* Asks for a heartbeat now rather than at the next period (the map moved,
 * e.g. after an accepted ISR change). Any thread; does not wait. */
void sx_membership_refresh(sx_membership *m);

#endif
