/* alarms.c: see alarms.h. */
#include "alarms.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

typedef struct raise {
    void (*fn)(void *arg, const char *line);
    void *arg;
    size_t n;
} raise_ctx;

static void alarm(raise_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void alarm(raise_ctx *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->fn(c->arg, line);
    c->n++;
}

static const char *or_none(const char *s)
{
    return s && *s ? s : "(none)";
}

size_t sx_alarms(const Shardex__V1__ClusterStatusResponse *r, const sx_alarm_opts *o,
                 void (*fn)(void *arg, const char *line), void *arg)
{
    raise_ctx c = {.fn = fn, .arg = arg};
    for (size_t i = 0; i < r->n_etcd_members; i++)
        if (!r->etcd_members[i]->healthy)
            alarm(&c, "etcd member %s is unhealthy: %s", or_none(r->etcd_members[i]->endpoint),
                  or_none(r->etcd_members[i]->error));
    for (size_t i = 0; i < r->n_workers; i++) {
        const Shardex__V1__WorkerStatus *w = r->workers[i];
        if (!w->alive)
            alarm(&c, "worker %s (%s) is dead: its lease expired", or_none(w->id),
                  or_none(w->address));
        else if (w->lease_remaining_ms < o->lease_warn_ms)
            alarm(&c, "worker %s (%s) is near lease expiry: %" PRIu64 " ms left", or_none(w->id),
                  or_none(w->address), w->lease_remaining_ms);
    }
    for (size_t i = 0; i < r->n_log_partitions; i++) {
        const Shardex__V1__LogPartitionStatus *p = r->log_partitions[i];
        size_t in_sync = 0;
        for (size_t k = 0; k < p->n_replicas; k++)
            in_sync += p->replicas[k]->in_sync;
        if (!p->leader || !*p->leader)
            alarm(&c, "log partition %" PRIu32 " has no leader", p->partition);
        else if (!p->available)
            alarm(&c, "log partition %" PRIu32 " is unavailable: %zu in sync, writes need %" PRIu32,
                  p->partition, in_sync, r->min_isr);
        if (in_sync < r->replication)
            alarm(&c, "log partition %" PRIu32 " is under-replicated: %zu of %" PRIu32 " in sync",
                  p->partition, in_sync, r->replication);
    }
    for (size_t i = 0; i < r->n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *t = r->term_partitions[i];
        if (!t->owner || !*t->owner)
            alarm(&c, "term partition %" PRIu32 " of index %s has no owner", t->term_partition,
                  or_none(t->index));
        else if (!t->ready)
            alarm(&c, "term partition %" PRIu32 " of index %s is not ready (rebuilding)",
                  t->term_partition, or_none(t->index));
        if (t->lag_offsets > o->max_lag)
            alarm(&c,
                  "term partition %" PRIu32 " of index %s lags %" PRIu64
                  " offsets (more than %" PRIu64 ")",
                  t->term_partition, or_none(t->index), t->lag_offsets, o->max_lag);
    }
    return c.n;
}
