/* coord_metrics.h: the coordinator's metrics (metrics.h collectors): the
 * cluster as the coordinator sees it when /metrics is read, taken from the
 * same view `shardex status` gets (sx_coord_status: workers, log partitions,
 * term partitions, indexes) and from the durable map (backfill progress):
 * map version, live workers, per log partition its ISR and flags, per term
 * partition its lag, per index its backfill, and the metadata store's size.
 * Nothing is updated on the way: a scrape costs one status build.
 */
#ifndef SX_COORD_METRICS_H
#define SX_COORD_METRICS_H

#include "metrics.h"
#include "service.h"

/* Adds the coordinator's collector to m (NULL: nothing): it reads the
 * coordinator that leads through f (a follower reports only
 * shardex_coordinator_leading 0). f and data_dir (NULL: metadata in etcd)
 * are borrowed until nothing scrapes m any more (sx_metrics_http_stop). */
void sx_coord_metrics_add(sx_metrics *m, sx_coord_front *f, const char *data_dir);

#endif
