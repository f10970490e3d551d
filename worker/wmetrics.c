/* wmetrics.c: the worker's collector (wmetrics.h). Each scrape reads the
 * replicas' mirrors (no partition lock held across I/O) and lists the store
 * directories: a few dozen stat(2) calls, on the metrics thread. */
#include "wmetrics.h"

#include "fsutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wmetrics {
    sx_worker_ctx *w;
    char *data_dir;
    sx_metric_family *log_end, *commit, *applied, *epoch, *leader;
    sx_metric_family *lease, *disk;
} wmetrics;

static void collect_replicas(wmetrics *wm, sx_metrics_scrape *s)
{
    sx_replica_state states[64];
    sx_replica_state *st = states;
    size_t n = sx_replica_states(wm->w->replicas, states, 64);
    if (n > 64) { /* more hosted than the stack holds: ask again with room */
        st = sx_calloc(n, sizeof(*st));
        n = sx_replica_states(wm->w->replicas, st, n); /* the number only grows: may cut */
    }
    for (size_t i = 0; i < n; i++) {
        if (st[i].role == SX_REPCORE_NONE)
            continue; /* hosted no more (the map moved it): not this worker's */
        char p[16];
        snprintf(p, sizeof(p), "%" PRIu32, st[i].partition);
        const char *v[] = {p};
        sx_metrics_sample(s, wm->log_end, v, (double)st[i].log_end_offset);
        sx_metrics_sample(s, wm->commit, v, (double)st[i].commit_offset);
        sx_metrics_sample(s, wm->applied, v, (double)st[i].applied_offset);
        sx_metrics_sample(s, wm->epoch, v, (double)st[i].epoch);
        sx_metrics_sample(s, wm->leader, v, st[i].role == SX_REPCORE_LEADER && !st[i].fenced);
    }
    if (st != states)
        free(st);
}

/* Every store's directory: partitions/pNNNN and terms. */
static void collect_disk(wmetrics *wm, sx_metrics_scrape *s)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/partitions", wm->data_dir);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        /* pNNNN only: a store set aside as corrupt (pNNNN.corrupt-<ms>) is
         * not a store any more. */
        size_t len = strlen(e->d_name);
        if (e->d_name[0] != 'p' || len < 2 || strspn(e->d_name + 1, "0123456789") != len - 1)
            continue;
        char store[300], dir[4600];
        snprintf(store, sizeof(store), "partitions/%s", e->d_name);
        snprintf(dir, sizeof(dir), "%s/%s", path, e->d_name);
        sx_metrics_sample(s, wm->disk, (const char *[]){store}, (double)sx_dir_bytes(dir));
    }
    if (d)
        closedir(d);
    snprintf(path, sizeof(path), "%s/terms", wm->data_dir);
    sx_metrics_sample(s, wm->disk, (const char *[]){"terms"}, (double)sx_dir_bytes(path));
}

static void collect_cb(void *arg, sx_metrics_scrape *s)
{
    wmetrics *wm = arg;
    collect_replicas(wm, s);
    sx_membership_view v;
    sx_membership_get_view(wm->w->member, &v);
    sx_partmap_release(v.map);
    sx_metrics_sample(s, wm->lease, NULL, v.index >= 0 && v.lease_valid);
    collect_disk(wm, s);
}

static void wmetrics_free(void *arg)
{
    wmetrics *wm = arg;
    free(wm->data_dir);
    free(wm);
}

void sx_wmetrics_add(sx_metrics *m, sx_worker_ctx *w, const char *data_dir)
{
    if (!m)
        return;
    static const char *const part[] = {"partition"}, *const store[] = {"store"};
    wmetrics *wm = sx_calloc(1, sizeof(*wm));
    wm->w = w;
    wm->data_dir = sx_strdup(data_dir);
    wm->log_end = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_replica_log_end_offset",
        "Last offset in this worker's replica of the log partition (0: empty)", part, 1);
    wm->commit = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_replica_commit_offset",
        "Commit offset of the log partition as this replica knows it (a leader: its high "
        "watermark; a follower: the leader's as last heard)",
        part, 1);
    wm->applied = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_replica_applied_offset",
        "Last offset this replica applied to its documents and local indexes", part, 1);
    wm->epoch =
        sx_metrics_collected(m, SX_METRIC_GAUGE, "shardex_replica_epoch",
                             "The log partition's epoch in the map this worker holds", part, 1);
    wm->leader = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_replica_leader",
        "1 when this worker leads the log partition (named leader, not fenced), 0 when it follows",
        part, 1);
    wm->lease = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_worker_lease_valid",
        "1 while this worker is registered and holds a lease from the coordinator", NULL, 0);
    wm->disk = sx_metrics_collected(
        m, SX_METRIC_GAUGE, "shardex_store_disk_bytes",
        "Bytes of the files in a LevelDB store's directory (tables, write-ahead log, manifest) "
        "as stat(2) gives them, by store: partitions/pNNNN (a worker's replica of a log "
        "partition), terms (a worker's term partitions), meta (the coordinator's map)",
        store, 1);
    sx_metrics_add_collector(m, collect_cb, wm, wmetrics_free);
}
