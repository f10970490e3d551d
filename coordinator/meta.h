/* meta.h: the coordinator's durable metadata: the cluster map, in one place.
 *
 * One interface so that another store (etcd, for a highly available
 * coordinator) can replace the embedded LevelDB one without touching the rest.
 * The whole map is one record, written synced: maps are small (a few KB for
 * hundreds of partitions) and change only on membership, ISR and catalog events.
 */
#ifndef SX_COORD_META_H
#define SX_COORD_META_H

#include "shardex/internal/v1/coordinator.pb-c.h"
#include "status.h"

typedef struct sx_meta sx_meta;

/* Opens (creating if missing) the metadata store in dir. */
sx_status sx_meta_open(const char *dir, sx_meta **out, sx_err *err);
void sx_meta_close(sx_meta *m); /* accepts NULL */

/* Loads the stored map into *out (caller frees with sx_rpc_free-compatible
 * protobuf_c_message_free_unpacked), or sets *out to NULL when nothing is stored.
 * SX_DATA_LOSS if the record does not decode. */
sx_status sx_meta_load(sx_meta *m, Shardex__Internal__V1__ClusterMap **out, sx_err *err);

/* Stores packed map bytes durably (fsync) before returning. */
sx_status sx_meta_save(sx_meta *m, const void *packed, size_t len, sx_err *err);

#endif
