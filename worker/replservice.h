/* replservice.h: the Replication service between workers (replication.proto),
 * the RPC face of the replicas (replica.h): thin adapters, no logic of their
 * own. Callers: a partition's leader (Append, to its followers) and the
 * fan-out of any worker (Write and Read, to a partition's leader).
 *
 * Every handler has the rpc handler signature (rpc.h) and takes the
 * sx_worker_ctx as arg; the pool each runs on is in service.c's table.
 */
#ifndef SX_REPLSERVICE_H
#define SX_REPLSERVICE_H

#include "rpc.h"
#include "service.h"

/* Append: a follower takes a leader's entries (sx_replica_append); fsyncs. */
sx_status sx_replservice_append(sx_rpc_call *call, const ProtobufCMessage *req,
                                ProtobufCMessage *resp, void *arg, sx_err *err);
/* Write: the leader appends packed LogOps and answers once they are committed
 * and applied (sx_replica_write): the reply is deferred, holding no thread. */
sx_status sx_replservice_write(sx_rpc_call *call, const ProtobufCMessage *req,
                               ProtobufCMessage *resp, void *arg, sx_err *err);
/* Read: the leader's document once the `after` offset is applied (waits). */
sx_status sx_replservice_read(sx_rpc_call *call, const ProtobufCMessage *req,
                              ProtobufCMessage *resp, void *arg, sx_err *err);
/* Replication.ReadMany: Read of each id in turn (the first waits for the
 * offset and for the leader to serve reads, the others find it so). */
sx_status sx_replservice_read_many(sx_rpc_call *call, const ProtobufCMessage *req,
                                   ProtobufCMessage *resp, void *arg, sx_err *err);
/* Replication.Snapshot: the leader's next chunk of a snapshot of the
 * partition's store, for a follower that needs entries it trimmed (psnap.h). */
sx_status sx_replservice_snapshot(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err);

#endif
