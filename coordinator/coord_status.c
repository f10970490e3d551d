/* coord_status.c: the client contract's ClusterStatus (workers, moves, log
 * and term partitions, indexes) built from the state and the latest
 * heartbeat reports, under c->mu; and the control plane's part, from the
 * metadata store, outside it.
 */
#include "coord_internal.h"

#include "clock.h"

#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- status -- */

static const Shardex__Internal__V1__ReplicaReport *report_of(const worker *wk, uint32_t p)
{
    for (size_t i = 0; i < wk->nreports; i++)
        if (wk->reports[i].partition == p)
            return &wk->reports[i];
    return NULL;
}

/* Worker w as ClusterStatus shows it, with what it holds. */
Shardex__V1__WorkerStatus *sx__coord_worker_status_locked(const sx_coord *c, uint32_t w,
                                                          uint64_t now_ms, sx_arena *a)
{
    const worker *wk = &c->workers[w];
    Shardex__V1__WorkerStatus *ws = sx_arena_alloc(a, sizeof(*ws));
    shardex__v1__worker_status__init(ws);
    ws->id = sx_arena_strdup(a, wk->id);
    ws->address = sx_arena_strdup(a, wk->addr);
    ws->alive = wk->alive;
    ws->lease_remaining_ms =
        wk->alive && wk->lease_deadline_ms > now_ms ? wk->lease_deadline_ms - now_ms : 0;
    ws->draining = wk->draining;
    ws->removed = wk->removed;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        const sx_log_part *lp = &c->parts[p];
        ws->replicas += sx_clustermap_has(lp->replicas, lp->nreplicas, (int32_t)w);
        ws->leaders += lp->leader == (int32_t)w;
    }
    for (uint32_t t = 0; t < c->nterms; t++)
        ws->term_partitions += c->terms[t].owner == (int32_t)w;
    ws->drained = wk->draining && !ws->replicas && !ws->leaders && !ws->term_partitions;
    return ws;
}

void sx_coord_status(sx_coord *c, uint64_t now_ms, sx_arena *a,
                     Shardex__V1__ClusterStatusResponse *out)
{
    pthread_mutex_lock(&c->mu);
    out->partitions = c->set.partitions;
    out->replication = c->set.replication;
    out->min_isr = c->set.min_isr;
    out->map_version = c->version;
    out->n_workers = c->nworkers;
    out->workers = sx_arena_alloc(a, (c->nworkers + 1) * sizeof(*out->workers));
    for (uint32_t i = 0; i < c->nworkers; i++)
        out->workers[i] = sx__coord_worker_status_locked(c, i, now_ms, a);
    out->max_moves = c->max_moves;
    out->moves = sx_arena_alloc(a, (c->set.partitions + 1) * sizeof(*out->moves));
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        const sx_log_part *lp = &c->parts[p];
        if (!lp->moving)
            continue;
        Shardex__V1__MoveStatus *ms = sx_arena_alloc(a, sizeof(*ms));
        shardex__v1__move_status__init(ms);
        ms->partition = p;
        ms->from = sx_arena_strdup(a, c->workers[lp->move_from].id);
        ms->to = sx_arena_strdup(a, c->workers[lp->move_to].id);
        ms->to_in_sync = sx_clustermap_has(lp->isr, lp->nisr, lp->move_to);
        out->moves[out->n_moves++] = ms;
    }
    out->n_log_partitions = c->set.partitions;
    out->log_partitions = sx_arena_alloc(a, c->set.partitions * sizeof(*out->log_partitions));
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        const sx_log_part *lp = &c->parts[p];
        Shardex__V1__LogPartitionStatus *ps = sx_arena_alloc(a, sizeof(*ps));
        shardex__v1__log_partition_status__init(ps);
        ps->partition = p;
        ps->epoch = lp->epoch;
        ps->leader = lp->leader >= 0 ? sx_arena_strdup(a, c->workers[lp->leader].id) : "";
        ps->available = lp->leader >= 0 && lp->nisr >= c->set.min_isr;
        if (lp->leader >= 0) {
            const Shardex__Internal__V1__ReplicaReport *r = report_of(&c->workers[lp->leader], p);
            ps->commit_offset = r ? r->commit_offset : 0;
        }
        ps->n_replicas = lp->nreplicas;
        ps->replicas = sx_arena_alloc(a, (lp->nreplicas + 1) * sizeof(*ps->replicas));
        for (uint32_t k = 0; k < lp->nreplicas; k++) {
            const worker *wk = &c->workers[lp->replicas[k]];
            Shardex__V1__ReplicaStatus *rs = sx_arena_alloc(a, sizeof(*rs));
            shardex__v1__replica_status__init(rs);
            rs->worker_id = sx_arena_strdup(a, wk->id);
            rs->in_sync = sx_clustermap_has(lp->isr, lp->nisr, lp->replicas[k]);
            const Shardex__Internal__V1__ReplicaReport *r = report_of(wk, p);
            if (r) {
                rs->log_end_offset = r->log_end_offset;
                rs->applied_offset = r->applied_offset;
            }
            ps->replicas[k] = rs;
        }
        out->log_partitions[p] = ps;
    }
    out->n_term_partitions = c->nterms;
    out->term_partitions = sx_arena_alloc(a, (c->nterms + 1) * sizeof(*out->term_partitions));
    size_t k = 0;
    for (uint32_t i = 0; i < c->nindexes; i++) {
        const index_entry *e = &c->indexes[i];
        if (!e->global)
            continue;
        for (uint32_t t = 0; t < ix_terms(e); t++) {
            const sx_term_part *tp = &c->terms[e->first_term + t];
            if (tp->retired)
                continue; /* split and swapped out: gone */
            Shardex__V1__TermPartitionStatus *ts = sx_arena_alloc(a, sizeof(*ts));
            shardex__v1__term_partition_status__init(ts);
            ts->index = sx_arena_strdup(a, e->name);
            ts->term_partition = t;
            ts->epoch = tp->epoch;
            ts->owner = tp->owner >= 0 ? sx_arena_strdup(a, c->workers[tp->owner].id) : "";
            ts->ready = false;
            const worker *ow = tp->owner >= 0 ? &c->workers[tp->owner] : NULL;
            for (size_t r = 0; ow && ow->alive && r < ow->ntreports; r++) {
                const term_report *tr = &ow->treports[r];
                if (tr->index_id != e->id || tr->t != t || tr->epoch != tp->epoch)
                    continue;
                ts->ready = tr->ready;
                ts->entries = tr->entries;
                ts->writes_per_s = tr->writes_per_s;
                ts->reads_per_s = tr->reads_per_s;
                uint64_t wall = sx_clock_wall_ms();
                if (tr->ready && tr->oldest_as_of_ms)
                    ts->lag_ms = wall > tr->oldest_as_of_ms ? wall - tr->oldest_as_of_ms : 0;
                for (uint32_t p = 0; p < c->set.partitions && p < tr->nwm; p++) {
                    int32_t l = c->parts[p].leader;
                    const Shardex__Internal__V1__ReplicaReport *rr =
                        l >= 0 ? report_of(&c->workers[l], p) : NULL;
                    if (rr && rr->commit_offset > tr->wm[p])
                        ts->lag_offsets += rr->commit_offset - tr->wm[p];
                }
            }
            out->term_partitions[k++] = ts;
        }
    }
    out->n_term_partitions = k;
    out->n_indexes = c->nindexes;
    out->indexes = sx_arena_alloc(a, (c->nindexes + 1) * sizeof(*out->indexes));
    for (uint32_t i = 0; i < c->nindexes; i++)
        out->indexes[i] = sx__coord_info_of(c, &c->indexes[i], a);
    pthread_mutex_unlock(&c->mu);
}

void sx_coord_control_status(sx_coord *c, sx_arena *a, Shardex__V1__ClusterStatusResponse *out)
{
    pthread_mutex_lock(&c->mu);
    char *self = sx_arena_strdup(a, c->address);
    pthread_mutex_unlock(&c->mu);
    /* Outside the lock: it may ask etcd. */
    sx_meta_status(c->meta, self, a, out);
}
