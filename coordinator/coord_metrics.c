/* coord_metrics.c: the coordinator's collector (coord_metrics.h). The flags
 * follow `shardex status --check` (client/alarms.c): leaderless = no leader;
 * under-replicated = fewer in sync than the replication factor R;
 * unavailable = no leader or fewer in sync than min_isr; unowned = a term
 * partition without an owner. */
#include "coord_metrics.h"

#include "clock.h"
#include "fsutil.h"
#include "service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cmetrics {
    sx_coord_front *front;
    char *meta_dir; /* NULL: metadata in etcd */
    sx_metric_family *leading;
    sx_metric_family *version, *workers, *live, *leaderless_n, *under_n, *unavailable_n, *unowned_n;
    sx_metric_family *draining, *removed, *moves, *down;
    sx_metric_family *epoch, *isr, *replicas, *leaderless, *under, *available, *commit;
    sx_metric_family *t_lag, *t_lag_s, *t_ready, *t_owned, *t_entries, *t_writes, *t_reads;
    sx_metric_family *ix_backfilled, *ix_partitions, *ix_ready, *ix_mistyped;
    sx_metric_family *ix_bf_done, *ix_bf_total;
    sx_metric_family *disk;
} cmetrics;

/* Per log partition, and the totals of its flags. */
static void collect_partitions(cmetrics *cm, sx_metrics_scrape *s,
                               const Shardex__V1__ClusterStatusResponse *st)
{
    unsigned leaderless = 0, under = 0, unavailable = 0;
    for (size_t i = 0; i < st->n_log_partitions; i++) {
        const Shardex__V1__LogPartitionStatus *p = st->log_partitions[i];
        size_t in_sync = 0;
        for (size_t k = 0; k < p->n_replicas; k++)
            in_sync += p->replicas[k]->in_sync;
        bool has_leader = p->leader && p->leader[0];
        char ps[16];
        snprintf(ps, sizeof(ps), "%" PRIu32, p->partition);
        const char *v[] = {ps};
        sx_metrics_sample(s, cm->epoch, v, (double)p->epoch);
        sx_metrics_sample(s, cm->isr, v, (double)in_sync);
        sx_metrics_sample(s, cm->replicas, v, (double)p->n_replicas);
        sx_metrics_sample(s, cm->leaderless, v, !has_leader);
        sx_metrics_sample(s, cm->under, v, in_sync < st->replication);
        sx_metrics_sample(s, cm->available, v, p->available);
        if (has_leader)
            sx_metrics_sample(s, cm->commit, v, (double)p->commit_offset);
        leaderless += !has_leader;
        under += in_sync < st->replication;
        unavailable += !p->available;
    }
    sx_metrics_sample(s, cm->leaderless_n, NULL, leaderless);
    sx_metrics_sample(s, cm->under_n, NULL, under);
    sx_metrics_sample(s, cm->unavailable_n, NULL, unavailable);
}

static void collect_terms(cmetrics *cm, sx_metrics_scrape *s,
                          const Shardex__V1__ClusterStatusResponse *st)
{
    unsigned unowned = 0;
    for (size_t i = 0; i < st->n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *t = st->term_partitions[i];
        bool owned = t->owner && t->owner[0];
        char ts[16];
        snprintf(ts, sizeof(ts), "%" PRIu32, t->term_partition);
        const char *v[] = {t->index, ts};
        sx_metrics_sample(s, cm->t_owned, v, owned);
        sx_metrics_sample(s, cm->t_ready, v, t->ready);
        if (t->ready) { /* lags of a partition being rebuilt mean nothing yet */
            sx_metrics_sample(s, cm->t_lag, v, (double)t->lag_offsets);
            sx_metrics_sample(s, cm->t_lag_s, v, (double)t->lag_ms / 1000);
        }
        if (owned) { /* as its owner last reported (0 until it does) */
            sx_metrics_sample(s, cm->t_entries, v, (double)t->entries);
            sx_metrics_sample(s, cm->t_writes, v, t->writes_per_s);
            sx_metrics_sample(s, cm->t_reads, v, t->reads_per_s);
        }
        unowned += !owned;
    }
    sx_metrics_sample(s, cm->unowned_n, NULL, unowned);
}

/* Backfill progress from the durable map: the log partitions that reported
 * their backfill of each index done. */
static void collect_indexes(cmetrics *cm, sx_coord *c, sx_metrics_scrape *s,
                            const Shardex__V1__ClusterStatusResponse *st)
{
    sx_coord_map *map = sx_coord_map_acquire(c);
    const Shardex__Internal__V1__ClusterMap *m = map->msg;
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (!e->spec)
            continue;
        const char *v[] = {e->spec->name};
        sx_metrics_sample(s, cm->ix_backfilled, v, (double)e->n_backfilled);
        sx_metrics_sample(s, cm->ix_partitions, v, (double)st->partitions);
        sx_metrics_sample(s, cm->ix_ready, v,
                          e->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    }
    sx_coord_map_release(map);
    for (size_t i = 0; i < st->n_indexes; i++) {
        const Shardex__V1__IndexInfo *ix = st->indexes[i];
        if (!ix->spec)
            continue;
        const char *v[] = {ix->spec->name};
        sx_metrics_sample(s, cm->ix_mistyped, v, (double)ix->mistyped_docs);
        sx_metrics_sample(s, cm->ix_bf_done, v, (double)ix->backfill_done_docs);
        sx_metrics_sample(s, cm->ix_bf_total, v, (double)ix->backfill_total_docs);
    }
}

static void collect_cb(void *arg, sx_metrics_scrape *s)
{
    cmetrics *cm = arg;
    /* A follower knows no cluster: it says only that it does not lead. */
    sx_coord *c = sx_coord_front_enter(cm->front);
    sx_metrics_sample(s, cm->leading, NULL, c ? 1 : 0);
    if (!c) {
        sx_coord_front_exit(cm->front);
        return;
    }
    sx_arena a = {0};
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(c, sx_clock_now_ms(), &a, &st);
    unsigned live = 0, draining = 0, removed = 0, down = 0;
    for (size_t i = 0; i < st.n_workers; i++) {
        const Shardex__V1__WorkerStatus *w = st.workers[i];
        live += w->alive;
        draining += w->draining;
        removed += w->removed;
        /* The rule of `shardex status --check` (client/alarms.c): a worker
         * taken out on purpose (removed, or drained and stopped) is not down. */
        down += !w->alive && !w->removed && !w->drained;
    }
    sx_metrics_sample(s, cm->down, NULL, down);
    sx_metrics_sample(s, cm->draining, NULL, draining);
    sx_metrics_sample(s, cm->removed, NULL, removed);
    sx_metrics_sample(s, cm->moves, NULL, (double)st.n_moves);
    sx_metrics_sample(s, cm->version, NULL, (double)st.map_version);
    sx_metrics_sample(s, cm->workers, NULL, (double)st.n_workers);
    sx_metrics_sample(s, cm->live, NULL, live);
    collect_partitions(cm, s, &st);
    collect_terms(cm, s, &st);
    collect_indexes(cm, c, s, &st);
    if (cm->meta_dir)
        sx_metrics_sample(s, cm->disk, (const char *[]){"meta"},
                          (double)sx_dir_bytes(cm->meta_dir));
    sx_arena_free(&a);
    sx_coord_front_exit(cm->front);
}

static void cmetrics_free(void *arg)
{
    cmetrics *cm = arg;
    free(cm->meta_dir);
    free(cm);
}

/* A family's label names and their count. */
#define LABELS(names) (names), sizeof(names) / sizeof((names)[0])
#define NO_LABELS NULL, 0

/* Declares cm's families, all gauges: a row each, in this order. */
static void add_families(cmetrics *cm, sx_metrics *m)
{
    static const char *const part[] = {"partition"}, *const term[] = {"index", "term_partition"},
                             *const index[] = {"index"}, *const store[] = {"store"};
    const struct {
        sx_metric_family **family; /* its field in cm */
        const char *name, *help;
        const char *const *labels;
        size_t nlabels;
    } rows[] = {
        {&cm->leading, "shardex_coordinator_leading",
         "1 while this coordinator leads (the others answer nothing)", NO_LABELS},
        {&cm->version, "shardex_coordinator_map_version",
         "Version of the cluster map (raised by every durable change)", NO_LABELS},
        {&cm->workers, "shardex_coordinator_workers", "Workers ever registered", NO_LABELS},
        {&cm->live, "shardex_coordinator_live_workers", "Workers whose lease has not expired",
         NO_LABELS},
        {&cm->draining, "shardex_coordinator_draining_workers",
         "Workers being drained (shardex worker drain), drained ones included", NO_LABELS},
        {&cm->removed, "shardex_coordinator_removed_workers",
         "Workers removed for good (shardex worker remove)", NO_LABELS},
        {&cm->down, "shardex_coordinator_down_workers",
         "Workers whose lease expired, less those removed or drained (holding nothing)", NO_LABELS},
        {&cm->moves, "shardex_coordinator_moves_in_flight",
         "Replica moves in flight (add-then-drop; at most --max-moves)", NO_LABELS},
        {&cm->leaderless_n, "shardex_coordinator_leaderless_partitions",
         "Log partitions without a leader", NO_LABELS},
        {&cm->under_n, "shardex_coordinator_under_replicated_partitions",
         "Log partitions with fewer replicas in sync than the replication factor", NO_LABELS},
        {&cm->unavailable_n, "shardex_coordinator_unavailable_partitions",
         "Log partitions that cannot take writes (no leader, or fewer in sync than min-isr)",
         NO_LABELS},
        {&cm->unowned_n, "shardex_coordinator_unowned_term_partitions",
         "Term partitions of global indexes without an owner", NO_LABELS},
        {&cm->epoch, "shardex_log_partition_epoch", "The log partition's leader epoch",
         LABELS(part)},
        {&cm->isr, "shardex_log_partition_isr_size",
         "Replicas of the log partition in its in-sync replica set", LABELS(part)},
        {&cm->replicas, "shardex_log_partition_replicas", "Replicas the log partition is assigned",
         LABELS(part)},
        {&cm->leaderless, "shardex_log_partition_leaderless",
         "1 when the log partition has no leader", LABELS(part)},
        {&cm->under, "shardex_log_partition_under_replicated",
         "1 when fewer replicas are in sync than the replication factor", LABELS(part)},
        {&cm->available, "shardex_log_partition_available",
         "1 when the log partition takes writes (a leader and at least min-isr in sync)",
         LABELS(part)},
        {&cm->commit, "shardex_log_partition_commit_offset",
         "The log partition's commit offset as its leader last reported it "
         "(absent without a leader)",
         LABELS(part)},
        {&cm->t_owned, "shardex_term_partition_owned", "1 when the term partition has an owner",
         LABELS(term)},
        {&cm->t_ready, "shardex_term_partition_ready",
         "1 when the term partition's owner has received every log partition's "
         "entries at least once and serves scans",
         LABELS(term)},
        {&cm->t_lag, "shardex_term_partition_lag_offsets",
         "Sum over log partitions of the leader's commit offset minus the term "
         "partition's watermark, as last reported (ready term partitions only)",
         LABELS(term)},
        {&cm->t_lag_s, "shardex_term_partition_lag_seconds",
         "Now minus the as-of time of the oldest shipment the term partition "
         "applied, over its log partitions, by the wall clock (ready term "
         "partitions only)",
         LABELS(term)},
        {&cm->t_entries, "shardex_term_partition_entries",
         "Entries of the term partition as its owner last counted them (it "
         "counts now and then; --term-split-entries splits on it)",
         LABELS(term)},
        {&cm->t_writes, "shardex_term_partition_writes_per_second",
         "Index changes the term partition's owner applied from its shipping "
         "streams per second, a decaying average over about 5 s (its load, with "
         "reads, for --term-split-load)",
         LABELS(term)},
        {&cm->t_reads, "shardex_term_partition_reads_per_second",
         "Scans the term partition's owner served per second, a decaying average "
         "over about 5 s (its load, with writes, for --term-split-load)",
         LABELS(term)},
        {&cm->ix_backfilled, "shardex_index_backfilled_partitions",
         "Log partitions that reported their backfill of the index done", LABELS(index)},
        {&cm->ix_partitions, "shardex_index_partitions",
         "Log partitions that must backfill the index (P): progress is "
         "backfilled / partitions",
         LABELS(index)},
        {&cm->ix_ready, "shardex_index_ready",
         "1 when the index is READY (every log partition backfilled it)", LABELS(index)},
        {&cm->ix_mistyped, "shardex_index_mistyped_documents",
         "Documents whose indexed field has a value of the wrong type (not "
         "indexed), as the log partitions' leaders last reported",
         LABELS(index)},
        {&cm->ix_bf_done, "shardex_index_backfill_done_documents",
         "Documents the log partitions' leaders' backfills of the index have "
         "passed, as last reported (progress: done / total)",
         LABELS(index)},
        {&cm->ix_bf_total, "shardex_index_backfill_total_documents",
         "About the documents the index's backfills pass (those at each "
         "partition's marker), as last reported",
         LABELS(index)},
        {&cm->disk, "shardex_store_disk_bytes",
         "Bytes of the files in a LevelDB store's directory (tables, write-ahead log, manifest) "
         "as stat(2) gives them, by store: partitions/pNNNN (a worker's replica of a log "
         "partition), terms (a worker's term partitions), meta (the coordinator's map)",
         LABELS(store)},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        *rows[i].family = sx_metrics_collected(m, SX_METRIC_GAUGE, rows[i].name, rows[i].help,
                                               rows[i].labels, rows[i].nlabels);
}

void sx_coord_metrics_add(sx_metrics *m, sx_coord_front *f, const char *data_dir)
{
    if (!m)
        return;
    cmetrics *cm = sx_calloc(1, sizeof(*cm));
    cm->front = f;
    if (data_dir) {
        size_t len = strlen(data_dir) + sizeof("/meta");
        cm->meta_dir = sx_malloc(len);
        snprintf(cm->meta_dir, len, "%s/meta", data_dir);
    }
    add_families(cm, m);
    sx_metrics_add_collector(m, collect_cb, cm, cmetrics_free);
}
