/* tstore.h: the term partitions of global indexes that this worker owns, in
 * one LevelDB store (<data_dir>/terms, through common/store). It applies the
 * batches that log partitions' leaders ship (Index.Ship), serves ScanTerm and
 * Digest, and reports each owned term partition in heartbeats. No networking:
 * the RPC handlers and the heartbeat call in; who owns what comes from the
 * cluster map (sx_tstore_on_map).
 *
 * Key layout (a one-byte tag, then numbers big-endian through common/keys.h):
 *   'S' u64 index_id u32 t        -> u64 owner epoch, u8 is_int, u32 P
 *   'W' u64 index_id u32 t u32 p  -> u64 wm[p], u64 highest leader epoch of p, u64 as_of_ms
 *                                    [, u64 rebuild id, u32 next chunk: a rebuild in progress]
 *   'T' u64 index_id u32 t ++ entry key (enc(value) ++ enc(id), common/ixkey.h) -> u64 version
 *
 * States of a term partition (index_id, t) here, and who moves them:
 *
 *   absent --map gives it to me at e--> WIPING(e) --wipe thread--> SERVING(e)
 *   SERVING(e) --map: same e--> SERVING(e)               (a restart keeps data too)
 *   SERVING(e) / WIPING(e) --map: me at e' != e--> WIPING(e')
 *   SERVING / WIPING --map: not mine (moved, index dropped)--> LEAVING --wipe thread--> absent
 *
 * Ownership in memory switches when sx_tstore_on_map returns; an internal
 * thread then deletes the 'S' row, every 'W' and 'T' key of the partition (in
 * chunks), and, when it is owned, writes 'S' at the new epoch with every
 * watermark 0 (the leaders rebuild it). 'S' is written last, so a crash
 * mid-wipe leaves keys without an 'S' row, which open finds and wipes. Only
 * SERVING(e) accepts Ship and Scan at epoch e.
 *
 * Shipping (the exactly-once rule, DESIGN.md "The write path" 4-5): a batch's
 * changes above wm[p] and the raised 'W' row go in one LevelDB write batch,
 * so a change takes effect once whatever is resent. Writes are not synced:
 * a lost tail loses its watermark with it and is shipped again.
 *
 * Thread-safety: every function but open and close may be called from any
 * thread at once; one internal mutex guards the ownership table and orders
 * Ship's writes (it is held across a Ship's LevelDB write, never across a wait
 * or an RPC). Scan and Digest read a LevelDB snapshot without the mutex.
 * close must not race with other calls.
 */
#ifndef SX_TSTORE_H
#define SX_TSTORE_H

#include "mem.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "status.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sx_tstore sx_tstore;

/* Opens (creating if missing) the store in directory dir (its own directory,
 * e.g. <data_dir>/terms; the parent must exist), sharing cache (borrowed, may
 * be NULL), with a memtable of write_buffer_bytes (0: the store's default).
 * Term partitions with an 'S' row are owned as recorded until the
 * first map says otherwise; keys of partitions without one (an interrupted
 * wipe) are wiped in the background. On SX_OK *out is the caller's, to close
 * with sx_tstore_close; else NULL. Codes: the store's (store.h), SX_DATA_LOSS
 * for a malformed 'S' or 'W' row. */
sx_status sx_tstore_open(const char *dir, sx_store_cache *cache, size_t write_buffer_bytes,
                         sx_tstore **out, sx_err *err);

/* Stops the wipe thread (an unfinished wipe resumes at the next open) and
 * closes the store. Accepts NULL. */
void sx_tstore_close(sx_tstore *ts);

/* Installs a map: me is this worker's index in map->workers. For every term
 * partition the map gives to me, state as in the diagram above; every other
 * one held here is wiped. Maps older than one already installed, and calls
 * with me < 0, are ignored. Does no I/O (the membership thread calls it):
 * wipes run on the internal thread. map is borrowed for the call. */
void sx_tstore_on_map(sx_tstore *ts, const Shardex__Internal__V1__ClusterMap *map, int32_t me);

/* Index.Ship (index.proto). resp (initialized by the caller) gets watermark
 * (wm[p] after the call) and applied. With wm = wm[p] and the rebuild of p
 * in progress R (id, next chunk; none at first), kept in p's 'W' row:
 *   rebuild chunk 0:      applied only when wm == 0 or up_to_offset > wm:
 *                         when wm > 0 (the leader trimmed past this owner's
 *                         share) or R exists (an unfinished rebuild), p's
 *                         entries are first deleted (found by hashing their
 *                         ids), in the same batch; every change is put; if
 *                         rebuild_last (or rebuild_id 0: a rebuild in one
 *                         chunk) wm = up_to_offset, R none; else wm = 0 and
 *                         R = (rebuild_id, 1); not applied: nothing;
 *   rebuild chunk k > 0:  R = (rebuild_id, k): every change put, R's next
 *                         k + 1, or with rebuild_last wm = up_to_offset and
 *                         R none; R = (rebuild_id, > k): a resend, applied
 *                         = true, nothing written; else (another rebuild, a
 *                         gap) applied = false, nothing written;
 *   while R exists wm is 0, so scans answer UNAVAILABLE; open wipes p's
 *   entries of every R found (an interrupted rebuild starts again);
 *   prev_offset > wm:     a gap: nothing applied, applied = false;
 *   else:                 changes with offset > wm applied in order, wm =
 *                         max(wm, up_to_offset), applied = true; with R
 *                         (a rebuild its sender gave up) p's entries are
 *                         deleted first and R is dropped.
 * The highest leader_epoch of p is recorded (also with a gap), as_of_ms
 * (max) when applied. Codes: SX_FAILED_PRECONDITION when not owned at
 * owner_epoch, or leader_epoch is below one seen for p; SX_UNAVAILABLE when
 * owned at owner_epoch but its older data is still being wiped (retry);
 * SX_INVALID_ARGUMENT for p >= P, partitions or type not the partition's, a
 * change offset out of (prev_offset, up_to_offset] or going down (not
 * checked for rebuild), a key that does not decode as the index's type; the
 * store's codes (nothing changed). */
sx_status sx_tstore_ship(sx_tstore *ts, const Shardex__Internal__V1__ShipRequest *req,
                         Shardex__Internal__V1__ShipResponse *resp, sx_err *err);

/* Index.ScanTerm: req->partition is the term partition t, req->epoch its
 * owner epoch. Waits (until deadline_ms, sx_clock_now_ms() terms, UINT64_MAX:
 * none) for wm[p] >= offset of every token in req->after, then returns, at one
 * snapshot, up to limit (0: 100, at most 10000) entries in key order within
 * [start, end) (empty start: from the first; empty end: to the last) as hits
 * (key, id, value, version), more (an entry follows the last hit) and
 * staleness_ms (wall clock now minus the oldest as_of_ms of the P log
 * partitions; one never given as_of counts as 0). Everything is allocated in
 * arena; resp is initialized by the caller. Codes: SX_FAILED_PRECONDITION when
 * not owned at epoch; SX_UNAVAILABLE while its older data is wiped, while
 * some wm[p] is 0 ("being rebuilt"), or when staleness exceeds
 * req->max_staleness_ms (> 0); SX_DEADLINE_EXCEEDED when a token is not
 * reached in time; SX_INVALID_ARGUMENT for a token's p >= P, partitions or
 * type not the partition's; SX_DATA_LOSS for a stored entry that does not
 * decode; the store's codes. */
sx_status sx_tstore_scan(sx_tstore *ts, const Shardex__Internal__V1__ScanRequest *req,
                         uint64_t deadline_ms, sx_arena *arena,
                         Shardex__Internal__V1__ScanResponse *resp, sx_err *err);

/* Index.Digest for a term partition (req->term must be set, req->partition is
 * t): at one snapshot, the digest (sx_ixkey_digest_add) and count of its entries,
 * its P watermarks and, when req->entries, every entry (key, version) in key
 * order; active = owned. Not owned: SX_OK with active = false and nothing
 * else. Owned while its older data is wiped: active, zeros (the state the wipe
 * leads to). Allocated in arena; resp initialized by the caller. Codes:
 * SX_INVALID_ARGUMENT when !req->term; SX_FAILED_PRECONDITION when owned at
 * an epoch other than req->epoch (0: any); SX_DATA_LOSS for a malformed 'W'
 * row; the store's codes. */
sx_status sx_tstore_digest(sx_tstore *ts, const Shardex__Internal__V1__DigestRequest *req,
                           sx_arena *arena, Shardex__Internal__V1__DigestResponse *resp,
                           sx_err *err);

/* Heartbeat reports, one per owned term partition (also those being wiped:
 * not ready, watermarks 0), in (index_id, t) order: *out is an array of
 * the returned count, all allocated in arena. ready: every wm[p] > 0.
 * entries and median are those of the last count: each call counts (two
 * scans of a snapshot, after building the reports, without the mutex) the
 * serving term partition counted longest ago, if that was COUNT_EVERY_MS
 * ago or more (the coordinator's automatic splits use them). writes_per_s
 * and reads_per_s are the partition's load at its current owner epoch
 * (decaying averages, common/rate.h): changes Ship wrote from a stream
 * (rebuild chunks not counted) and Scans that passed their checks. */
size_t sx_tstore_reports(sx_tstore *ts, sx_arena *arena, Shardex__Internal__V1__TermReport ***out);

/* Waits until no wipe is due or running (for tests and tools; a map installed
 * meanwhile may add wipes to wait for). */
void sx_tstore_wait_wipes(sx_tstore *ts);

#endif
