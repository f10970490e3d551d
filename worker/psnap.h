/* psnap.h: a partition store's snapshot, served in chunks by its leader and
 * installed by a follower that needs entries the leader no longer holds (log
 * retention, docs/architecture.md "Snapshots"). No networking: replica.c
 * carries the chunks over Replication.Snapshot.
 *
 * Leader (sx_psnap_server): the first call of a transfer opens a LevelDB
 * snapshot of the plog's store together with its applied offset A (one
 * consistent view: documents, epoch table, index entries, outbox and
 * counters as of A) and keeps it as a session; each call returns the pairs
 * after the cursor, up to a byte budget, leaving out the log's entries
 * (sx_plog_snapshot_keep). Sessions idle for SX_PSNAP_IDLE_MS are dropped
 * (their snapshot released), and at most SX_PSNAP_MAX_SESSIONS are open: a
 * held snapshot keeps LevelDB from dropping what it covers.
 *
 * Follower: writes the chunks into a new store next to the live one,
 * DATA/partitions/pNNNN.snap, and seals it with one synced batch
 * (sx_plog_snapshot_seal). The swap then renames pNNNN to pNNNN.old and
 * pNNNN.snap to pNNNN, fsyncs the parent directory; the old store is deleted
 * once the last reader holding it lets go (replica.h, sx_replica_store). A
 * crash at any step is finished at the next start, before the stores are
 * scanned (sx_psnap_recover): an unsealed .snap is deleted; a
 * sealed one replaces pNNNN (whether or not the first rename happened); a
 * leftover .old is deleted once pNNNN is there, and put back if it is not
 * (a swap that never reached its second rename). So pstores (which ignores
 * pNNNN.<suffix>) never sees a recorded store missing because of a swap.
 *
 * Threads: the server has its own mutex; the rest is called by one thread
 * per partition at a time.
 */
#ifndef SX_PSNAP_H
#define SX_PSNAP_H

#include "mem.h"
#include "plog.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "status.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>

#define SX_PSNAP_IDLE_MS 30000
#define SX_PSNAP_MAX_SESSIONS 4
#define SX_PSNAP_CHUNK_BYTES (1u << 20) /* a chunk's keys and values; one pair may pass it */

typedef struct sx_psnap_server sx_psnap_server;

sx_psnap_server *sx_psnap_server_create(void);
/* Releases every session's snapshot: before the plogs they came from close.
 * Accepts NULL. */
void sx_psnap_server_destroy(sx_psnap_server *s);

/* Answers req for the plog `log` of req->partition, which the caller checked
 * this worker leads at req->epoch. resp's arrays are allocated in arena.
 * SX_NOT_FOUND: an unknown or expired session, or one of another partition or
 * epoch (the follower starts over); SX_RESOURCE_EXHAUSTED: too many open. A
 * session ends (its snapshot released) with the answer that says done. */
sx_status sx_psnap_serve(sx_psnap_server *s, sx_plog *log, uint64_t now_ms,
                         const Shardex__Internal__V1__SnapshotRequest *req,
                         Shardex__Internal__V1__SnapshotResponse *resp, sx_arena *arena,
                         sx_err *err);

/* Drops sessions idle for SX_PSNAP_IDLE_MS (each call also does): so that
 * a transfer nobody finishes does not hold its snapshot until the next. */
void sx_psnap_server_expire(sx_psnap_server *s, uint64_t now_ms);
/* Drops every session of log (before it closes). */
void sx_psnap_server_drop(sx_psnap_server *s, sx_plog *log);

/* Open sessions, for tests and status. */
size_t sx_psnap_server_sessions(sx_psnap_server *s);

/* The follower's copy in progress. */
typedef struct sx_psnap_writer sx_psnap_writer;

/* Deletes whatever is at path (a copy cut short) and creates a new store
 * there. */
sx_status sx_psnap_writer_open(const char *path, sx_psnap_writer **out, sx_err *err);
/* Writes one chunk (not synced: the seal is). SX_INVALID_ARGUMENT for a chunk
 * whose keys do not ascend past the previous chunk's, or a log entry, nothing
 * written. */
sx_status sx_psnap_writer_put(sx_psnap_writer *w, Shardex__Internal__V1__SnapshotPair **pairs,
                              size_t n, sx_err *err);
/* The seal at applied, synced; then the store is closed. */
sx_status sx_psnap_writer_seal(sx_psnap_writer *w, uint64_t applied, sx_err *err);
/* Closes (a writer not sealed leaves a copy that recovery deletes). Accepts NULL. */
void sx_psnap_writer_close(sx_psnap_writer *w);

/* Puts the sealed copy dir.snap in dir's place: rename dir to dir.old (if
 * there), dir.snap to dir, fsync the parent. The old store may still be open
 * (renames keep open files working, and readers that hold it go on reading
 * it); replica.c deletes dir.old once its last reader closed it
 * (sx_replica_store), before the new store opens. */
sx_status sx_psnap_swap(const char *dir, sx_err *err);

/* At start, before the stores are scanned: finishes or undoes every swap
 * of data_dir/partitions that a crash cut short (see above). Logs what it
 * does. An error (I/O) stops the start. */
sx_status sx_psnap_recover(const char *data_dir, sx_err *err);

#endif
