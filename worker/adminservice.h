/* adminservice.h: WorkerAdmin (what this worker believes and holds, for
 * operators, checkers and tests) and the client contract's cluster-wide
 * calls, which the coordinator answers (ClusterStatus and the index
 * catalog), forwarded so that clients can talk to any worker.
 *
 * Every handler has the rpc handler signature (rpc.h) and takes the
 * sx_worker_ctx as arg; the pool each runs on is in service.c's table.
 */
#ifndef SX_ADMINSERVICE_H
#define SX_ADMINSERVICE_H

#include "rpc.h"
#include "service.h"

/* Status: membership, the map's roles (none led without a lease) and every
 * hosted replica's offsets. Reads memory only. */
sx_status sx_adminservice_status(sx_rpc_call *call, const ProtobufCMessage *req,
                                 ProtobufCMessage *resp, void *arg, sx_err *err);
/* GetMap: the map as last heard (UNAVAILABLE before joining). */
sx_status sx_adminservice_get_map(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err);
/* ReadLog: one replica's log entries and epoch table (reads LevelDB). */
sx_status sx_adminservice_read_log(sx_rpc_call *call, const ProtobufCMessage *req,
                                   ProtobufCMessage *resp, void *arg, sx_err *err);
/* ScanDocs: one replica's applied documents and salt rows at one snapshot (reads LevelDB). */
sx_status sx_adminservice_scan_docs(sx_rpc_call *call, const ProtobufCMessage *req,
                                    ProtobufCMessage *resp, void *arg, sx_err *err);
/* SetFaults: the rpc fault layer's rules for this worker's outgoing calls. */
sx_status sx_adminservice_set_faults(sx_rpc_call *call, const ProtobufCMessage *req,
                                     ProtobufCMessage *resp, void *arg, sx_err *err);
/* RefreshMap: a newer map exists; heartbeat now if ours is older. */
sx_status sx_adminservice_refresh_map(sx_rpc_call *call, const ProtobufCMessage *req,
                                      ProtobufCMessage *resp, void *arg, sx_err *err);
/* Any Shardex method the coordinator answers: the same method and request,
 * the response handed back as it came; waits for the coordinator. */
sx_status sx_adminservice_forward(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err);
/* CreateIndex: forwarded as above, after choosing the split points of a
 * range-partitioned GLOBAL index that has none from a sample of the data
 * (sample.h: every log partition's leader answers a ScanDocs first). */
sx_status sx_adminservice_create_index(sx_rpc_call *call, const ProtobufCMessage *req,
                                       ProtobufCMessage *resp, void *arg, sx_err *err);

#endif
