/* ixservice.h: the Index service between workers (index.proto): Ship,
 * ScanLocal, ScanTerm and Digest, the RPC face of a worker's indexes.
 *
 * Thin adapters, one per method: a term partition's calls (Ship, ScanTerm,
 * Digest with term set) go to this worker's term store (tstore.h); a log
 * partition's (ScanLocal, Digest of a local index) to the replica that holds
 * it (replica.h) and its indexes (pindex.h). No logic of their own beyond
 * ScanLocal's wait for its `after` tokens and its "do I lead it" check.
 * Callers: log partitions' leaders (Ship, from ixlead), Query (the scans,
 * from query.c on any worker) and `shardex verify` (Digest).
 *
 * Every handler has the rpc handler signature (rpc.h) and takes the
 * sx_worker_ctx as arg; the pool each runs on is in service.c's table.
 */
#ifndef SX_IXSERVICE_H
#define SX_IXSERVICE_H

#include "rpc.h"
#include "service.h"
#include "shardex/internal/v1/index.pb-c.h"

/* Ship: a log partition's leader ships outbox changes to the owner of a term
 * partition (sx_tstore_ship). Writes LevelDB: BLOCKING. */
sx_status sx_ixservice_ship(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                            void *arg, sx_err *err);

/* ScanLocal: on the leader of req->partition, waits until the highest
 * `after` offset of that partition is applied, then scans its local index
 * (sx_pindex_scan) with the replica's staleness. ABORTED when this worker does
 * not lead it; an index not (yet) started here is UNAVAILABLE, so that the
 * querying worker retries. With follower_max_staleness_ms (a hedged read), a
 * replica that does not lead serves too, once the `after` offset is applied
 * and its staleness is bounded within the limit (sx_replica_wait_follower:
 * FAILED_PRECONDITION saying how stale it is otherwise); the answer says
 * follower and carries that bound. Waits for applies: WAITING. */
sx_status sx_ixservice_scan_local(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err);

/* ScanTerm: a term partition's entries (sx_tstore_scan), waiting for its
 * watermarks to reach the `after` tokens until the call's deadline. WAITING. */
sx_status sx_ixservice_scan_term(sx_rpc_call *call, const ProtobufCMessage *req,
                                 ProtobufCMessage *resp, void *arg, sx_err *err);

/* Digest: of a term partition (req->term, sx_tstore_digest) or of a log
 * partition's local index on any replica that hosts it (sx_pindex_digest;
 * NOT_FOUND when none here). Reads a snapshot: BLOCKING. */
sx_status sx_ixservice_digest(sx_rpc_call *call, const ProtobufCMessage *req,
                              ProtobufCMessage *resp, void *arg, sx_err *err);

#endif
