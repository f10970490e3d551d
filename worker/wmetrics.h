/* wmetrics.h: the worker's scrape-time metrics (metrics.h collectors): what
 * its replicas and stores hold when /metrics is read, taken from the state the
 * heartbeat and WorkerAdmin.Status already read (sx_replica_states,
 * sx_membership_get_view) and from the stores' directories. Counters and
 * latencies updated as things happen are registered where they are measured
 * (rpc server, replica, service.c); cluster-wide state (ISRs, leaderless
 * partitions, term partitions' lag, backfill) is the coordinator's
 * (coordinator/coord_metrics.h).
 */
#ifndef SX_WMETRICS_H
#define SX_WMETRICS_H

#include "metrics.h"
#include "service.h"

/* Adds the worker's collector to m (NULL: nothing): per hosted replica its
 * offsets, epoch and role; whether the worker holds a lease; the disk bytes
 * of each LevelDB store under data_dir. w (its replicas and membership set)
 * and data_dir are borrowed until nothing scrapes m any more
 * (sx_metrics_http_stop). */
void sx_wmetrics_add(sx_metrics *m, sx_worker_ctx *w, const char *data_dir);

#endif
