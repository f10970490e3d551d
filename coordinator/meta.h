/* meta.h: the coordinator's durable metadata: the cluster map, in one place.
 *
 * One interface so that another store (etcd, for a highly available
 * coordinator) can replace the embedded LevelDB one without touching the rest.
 * The whole map is one record, written synced: maps are small (a few KB for
 * hundreds of partitions) and change only on membership, ISR and catalog events.
 */
#ifndef SX_COORD_META_H
#define SX_COORD_META_H

#include "mem.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_meta sx_meta;

/* Opens (creating if missing) the metadata store in dir. */
sx_status sx_meta_open(const char *dir, sx_meta **out, sx_err *err);

/* The metadata in etcd (issue 13), under /shardex/CLUSTER/: `map` holds the
 * map, `leader` the leading coordinator's address, bound to its lease.
 *
 * Election: sx_meta_campaign tries once to become the leader, with a
 * transaction that creates the leader key only when it is absent; the
 * revision of that transaction is this leader's epoch. Every save is a
 * transaction that also compares the leader key's create revision with the
 * epoch, so a deposed leader that has not noticed changes nothing (its save
 * fails SX_ABORTED, and the coordinator stops: coord.c). The lease is kept
 * alive by a stream from the campaign on; sx_meta_leading says whether this
 * process surely still holds it (its last renewal, dated from when it was
 * asked for, plus the TTL less a margin). Closing resigns: the lease is
 * revoked, its keys go, and a follower wins its next campaign at once. */
typedef struct sx_meta_etcd_opts {
    const char *endpoints; /* "host:port[,...]" of the etcd members */
    const char *cluster;   /* NAME of /shardex/NAME/ */
    const char *self;      /* this coordinator's address, the leader key's value */
    uint32_t ttl_s;        /* the lease; 0: 5 */
    uint64_t margin_ms;    /* leading ends this long before the lease can; 0: a third of it */
} sx_meta_etcd_opts;
sx_status sx_meta_open_etcd(const sx_meta_etcd_opts *o, sx_meta **out, sx_err *err);

/* One try: *won when this process leads now (it may have already); else
 * *leader (cap bytes) holds the address of who does (empty if unknown). */
sx_status sx_meta_campaign(sx_meta *m, bool *won, char *leader, size_t cap, sx_err *err);

/* Whether this process surely leads at now_ms (sx_clock_now_ms): always for
 * the embedded store; for etcd, after a won campaign and until its lease may
 * run out. */
bool sx_meta_leading(sx_meta *m, uint64_t now_ms);

/* A follower's campaigns watch the leader key: true (once) when it went
 * since, so that the next campaign should come now rather than on schedule. */
bool sx_meta_vacant(sx_meta *m);

/* The control plane part of ClusterStatus (metadata, coordinator_epoch,
 * coordinators, etcd_members), allocated in a; self: this coordinator's
 * address. With etcd it asks every member at once (up to a second): call it off
 * the rpc threads. */
void sx_meta_status(sx_meta *m, const char *self, sx_arena *a,
                    Shardex__V1__ClusterStatusResponse *out);

/* Keeps the etcd lease's keepalive going: a stream that broke (its member
 * went away) is opened again on another member. Call it often (every tick)
 * from the thread that opens and closes m; a no-op for the embedded store. */
void sx_meta_maintain(sx_meta *m);

/* The leader's epoch (the revision of its winning campaign); 0: none. */
int64_t sx_meta_epoch(const sx_meta *m);
void sx_meta_close(sx_meta *m); /* accepts NULL; for etcd, resigns */

/* Loads the stored map into *out (caller frees with sx_rpc_free-compatible
 * protobuf_c_message_free_unpacked), or sets *out to NULL when nothing is stored.
 * SX_DATA_LOSS if the record does not decode. */
sx_status sx_meta_load(sx_meta *m, Shardex__Internal__V1__ClusterMap **out, sx_err *err);

/* Stores packed map bytes durably (fsync) before returning. */
sx_status sx_meta_save(sx_meta *m, const void *packed, size_t len, sx_err *err);

#endif
