/* alarms.h: what `shardex status` raises an alarm for, from one
 * ClusterStatusResponse, so that `shardex status --check` can serve as a
 * monitoring probe (exit 1 while an alarm is on). Pure: the thresholds come
 * in, the alarms go out as text lines. */
#ifndef SX_ALARMS_H
#define SX_ALARMS_H

#include "shardex/v1/shardex.pb-c.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sx_alarm_opts {
    uint64_t max_lag;       /* a term partition further behind (offsets) is an alarm */
    uint64_t lease_warn_ms; /* a live worker with less lease left is an alarm */
} sx_alarm_opts;

/* Calls fn(arg, line) for each alarm, in table order: a dead worker, a worker
 * near lease expiry, a log partition without a leader, an unavailable one, an
 * under-replicated one (fewer in sync than the replication), a term partition
 * without an owner, one not ready, one lagging more than max_lag. Returns how
 * many. line is borrowed for the call. */
size_t sx_alarms(const Shardex__V1__ClusterStatusResponse *r, const sx_alarm_opts *o,
                 void (*fn)(void *arg, const char *line), void *arg);

#endif
