/* coord.c: the coordinator's state, its changes, and their durability.
 *
 * The state lives in plain C structures (what sx_assign works on). Every
 * change ends in sx__coord_commit_locked: version + 1, the whole map built as a
 * ClusterMap message, written synced, and only then published as the new
 * shared snapshot that heartbeat replies carry. A failed write is fatal: the
 * process stops rather than announce what is not durable (REPLICATION.md rule 8).
 *
 * This file: open and close, the map <-> state conversion, commit and the
 * snapshots, and assignment. Membership and leases are in coord_members.c,
 * the index catalog in coord_index.c, ClusterStatus in coord_status.c; the
 * state they share, and its lock, in coord_internal.h.
 */
#include "coord_internal.h"

#include "log.h"
#include "partmap.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- snapshots -- */

sx_coord_map *sx_coord_map_acquire(sx_coord *c)
{
    pthread_mutex_lock(&c->mu);
    snap *s = c->cur;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return &s->pub;
}

sx_coord_map *sx__coord_acquire_locked(sx_coord *c)
{
    atomic_fetch_add(&c->cur->refs, 1);
    return &c->cur->pub;
}

void sx_coord_map_release(void *map)
{
    if (!map)
        return;
    snap *s = (snap *)map; /* pub is the first member */
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        protobuf_c_message_free_unpacked(&s->owned->base, NULL);
        free(s);
    }
}

/* ----------------------------------------------------- map <-> the state -- */

static Shardex__Internal__V1__ClusterMap *build_locked(sx_coord *c, sx_arena *a)
{
    Shardex__Internal__V1__ClusterMap *m = sx_arena_alloc(a, sizeof(*m));
    shardex__internal__v1__cluster_map__init(m);
    m->version = c->version;
    m->lease_ms = c->lease_ms;
    m->next_incarnation = c->next_incarnation;
    m->next_index_id = c->next_index_id;
    m->coordinator_epoch = (uint64_t)sx_meta_epoch(c->meta);
    Shardex__Internal__V1__ClusterSettings *s = sx_arena_alloc(a, sizeof(*s));
    shardex__internal__v1__cluster_settings__init(s);
    s->partitions = c->set.partitions;
    s->replication = c->set.replication;
    s->min_isr = c->set.min_isr;
    s->term_partitions = c->set.term_partitions;
    s->cluster_id = c->cluster_id;
    m->settings = s;

    m->n_workers = c->nworkers;
    m->workers = sx_arena_alloc(a, c->nworkers * sizeof(*m->workers));
    for (uint32_t i = 0; i < c->nworkers; i++) {
        Shardex__Internal__V1__WorkerEntry *w = sx_arena_alloc(a, sizeof(*w));
        shardex__internal__v1__worker_entry__init(w);
        w->id = c->workers[i].id;
        w->address = c->workers[i].addr;
        w->alive = c->workers[i].alive;
        w->incarnation = c->workers[i].incarnation;
        w->draining = c->workers[i].draining;
        w->removed = c->workers[i].removed;
        m->workers[i] = w;
    }
    m->n_partitions = c->set.partitions;
    m->partitions = sx_arena_alloc(a, c->set.partitions * sizeof(*m->partitions));
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        const sx_log_part *lp = &c->parts[p];
        Shardex__Internal__V1__LogPartition *o = sx_arena_alloc(a, sizeof(*o));
        shardex__internal__v1__log_partition__init(o);
        o->epoch = lp->epoch;
        o->isr_version = lp->isr_version;
        o->leader = lp->leader;
        o->n_replicas = lp->nreplicas;
        o->replicas = (int32_t *)lp->replicas;
        o->n_isr = lp->nisr;
        o->isr = (int32_t *)lp->isr;
        o->n_elr = lp->nelr;
        o->elr = (int32_t *)lp->elr;
        if (lp->moving) {
            Shardex__Internal__V1__PartitionMove *mv = sx_arena_alloc(a, sizeof(*mv));
            shardex__internal__v1__partition_move__init(mv);
            mv->from = lp->move_from;
            mv->to = lp->move_to;
            o->move = mv;
        }
        m->partitions[p] = o;
    }
    m->n_terms = c->nterms;
    m->terms = sx_arena_alloc(a, c->nterms * sizeof(*m->terms));
    for (uint32_t t = 0; t < c->nterms; t++) {
        Shardex__Internal__V1__TermPartition *o = sx_arena_alloc(a, sizeof(*o));
        shardex__internal__v1__term_partition__init(o);
        o->epoch = c->terms[t].epoch;
        o->owner = c->terms[t].owner;
        o->retired = c->terms[t].retired;
        m->terms[t] = o;
    }
    m->n_indexes = c->nindexes;
    m->indexes = sx_arena_alloc(a, c->nindexes * sizeof(*m->indexes));
    for (uint32_t i = 0; i < c->nindexes; i++)
        m->indexes[i] = sx__coord_index_msg(c, &c->indexes[i], a);
    return m;
}

/* Makes the current state durable and visible as a new version. */
void sx__coord_commit_locked(sx_coord *c, const char *why)
{
    c->version++;
    sx_arena a = {0};
    Shardex__Internal__V1__ClusterMap *m = build_locked(c, &a);
    size_t n = shardex__internal__v1__cluster_map__get_packed_size(m);
    uint8_t *buf = sx_malloc(n);
    shardex__internal__v1__cluster_map__pack(m, buf);
    sx_arena_free(&a);
    sx_err err = {0};
    if (sx_meta_save(c->meta, buf, n, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "coord", "cannot store map version=%" PRIu64 ": %s; stopping",
               c->version, err.msg);
        abort(); /* never announce what is not durable, never carry on after a failed fsync */
    }
    snap *s = sx_calloc(1, sizeof(*s));
    s->owned = shardex__internal__v1__cluster_map__unpack(NULL, n, buf);
    free(buf);
    if (!s->owned)
        abort(); /* we just packed it */
    s->pub.msg = s->owned;
    atomic_init(&s->refs, 1);
    snap *old = c->cur;
    c->cur = s;
    sx_coord_map_release(old);
    SX_LOG(SX_LOG_INFO, "coord", "map version=%" PRIu64 " reason=\"%s\"", c->version, why);
}

static sx_status load_locked(sx_coord *c, const Shardex__Internal__V1__ClusterMap *m, sx_err *err)
{
    const Shardex__Internal__V1__ClusterSettings *s = m->settings;
    if (!s || s->partitions == 0 || m->n_partitions != s->partitions)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: stored map has %zu partitions, settings %u",
                          m->n_partitions, s ? s->partitions : 0);
    c->set = (sx_coord_settings){s->partitions, s->replication, s->min_isr, s->term_partitions};
    c->cluster_id = sx_strdup(s->cluster_id);
    c->version = m->version;
    c->lease_ms = m->lease_ms ? m->lease_ms : c->lease_ms;
    c->next_incarnation = m->next_incarnation;
    c->next_index_id = m->next_index_id;
    c->nworkers = (uint32_t)m->n_workers;
    c->workers = sx_calloc(c->nworkers + 1, sizeof(*c->workers));
    for (uint32_t i = 0; i < c->nworkers; i++) {
        c->workers[i].id = sx_strdup(m->workers[i]->id);
        c->workers[i].addr = sx_strdup(m->workers[i]->address);
        c->workers[i].alive = m->workers[i]->alive && !m->workers[i]->removed;
        c->workers[i].incarnation = m->workers[i]->incarnation;
        c->workers[i].draining = m->workers[i]->draining;
        c->workers[i].removed = m->workers[i]->removed;
    }
    c->parts = sx_calloc(c->set.partitions, sizeof(*c->parts));
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        const Shardex__Internal__V1__LogPartition *o = m->partitions[p];
        sx_log_part *lp = &c->parts[p];
        if (o->n_replicas > SX_MAX_REPLICAS || o->n_isr > SX_MAX_REPLICAS ||
            o->n_elr > SX_MAX_REPLICAS)
            return sx_err_set(err, SX_DATA_LOSS, "metadata: partition %u has too many replicas", p);
        lp->epoch = o->epoch;
        lp->isr_version = o->isr_version;
        lp->leader = o->leader;
        lp->nreplicas = (uint32_t)o->n_replicas;
        if (o->n_replicas) /* an empty repeated field is NULL */
            memcpy(lp->replicas, o->replicas, o->n_replicas * sizeof(int32_t));
        lp->nisr = (uint32_t)o->n_isr;
        if (o->n_isr)
            memcpy(lp->isr, o->isr, o->n_isr * sizeof(int32_t));
        lp->nelr = (uint32_t)o->n_elr;
        if (o->n_elr)
            memcpy(lp->elr, o->elr, o->n_elr * sizeof(int32_t));
        if (o->move) {
            lp->moving = true;
            lp->move_from = o->move->from;
            lp->move_to = o->move->to;
        }
    }
    c->nterms = (uint32_t)m->n_terms;
    c->terms = sx_calloc(c->nterms + 1, sizeof(*c->terms));
    for (uint32_t t = 0; t < c->nterms; t++)
        c->terms[t] = (sx_term_part){m->terms[t]->epoch, m->terms[t]->owner, m->terms[t]->retired};
    c->nindexes = (uint32_t)m->n_indexes;
    c->indexes = sx_calloc(c->nindexes + 1, sizeof(*c->indexes));
    for (uint32_t i = 0; i < c->nindexes; i++) {
        sx_status st = sx__coord_index_load(c, &c->indexes[i], m->indexes[i], m, err);
        if (st != SX_OK)
            return st;
    }
    /* The workers' own check of index entries: a stored map they would all
     * refuse is corrupt metadata, not a map to send. */
    sx_err ierr = {0};
    if (sx_partmap_check_indexes(m, &ierr) != SX_OK)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: %s", ierr.msg);
    return sx_clustermap_check(c->parts, c->set.partitions, c->terms, c->nterms, c->nworkers, err);
}

/* ------------------------------------------------------------ assignment -- */

int32_t sx__coord_find_worker_locked(const sx_coord *c, const char *id)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (strcmp(c->workers[i].id, id) == 0)
            return (int32_t)i;
    return -1;
}

/* A partition whose isr every member left with a lost store: says loudly who
 * may still lead it, or that nobody may. */
void sx__coord_report_isr_lost_locked(const sx_coord *c, uint32_t p)
{
    const sx_log_part *lp = &c->parts[p];
    char who[512] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < lp->nelr && n < sizeof(who); i++)
        n += (size_t)snprintf(who + n, sizeof(who) - n, "%s%s(%s)", i ? "," : "",
                              c->workers[lp->elr[i]].id,
                              c->workers[lp->elr[i]].alive ? "alive" : "dead");
    if (lp->nelr == 0)
        SX_LOG(SX_LOG_ERROR, "coord",
               "partition=%u unavailable: every replica known to hold its committed entries lost "
               "its store; it stays without a leader until an operator decides",
               p);
    else
        SX_LOG(SX_LOG_WARN, "coord",
               "partition=%u unavailable: its in-sync replicas lost their stores; waiting for an "
               "eligible replica eligible=%s",
               p, who);
}

/* Runs assignment on the current liveness; true if it changed anything. */
bool sx__coord_assign_locked(sx_coord *c)
{
    bool *alive = sx_calloc(c->nworkers + 1, sizeof(bool));
    bool *draining = sx_calloc(c->nworkers + 1, sizeof(bool));
    bool *removed = sx_calloc(c->nworkers + 1, sizeof(bool));
    for (uint32_t i = 0; i < c->nworkers; i++) {
        alive[i] = c->workers[i].alive;
        draining[i] = c->workers[i].draining;
        removed[i] = c->workers[i].removed;
    }
    bool *emptied = sx_calloc(c->set.partitions + 1, sizeof(bool));
    for (uint32_t p = 0; p < c->set.partitions; p++)
        emptied[p] = c->parts[p].nisr == 0 && c->parts[p].isr_version > 0;
    sx_assign_settings s = {.replication = c->set.replication,
                            .min_isr = c->set.min_isr,
                            .moves = true,
                            .max_moves = c->max_moves,
                            .draining = draining,
                            .removed = removed};
    sx_assign_changes ch = {0};
    sx_assign(&s, alive, c->nworkers, c->parts, c->set.partitions, c->terms, c->nterms, &ch);
    free(removed);
    free(draining);
    free(alive);
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (emptied[p] && c->parts[p].leader >= 0)
            SX_LOG(SX_LOG_WARN, "coord",
                   "partition=%u leader=%s epoch=%" PRIu64
                   " elected from the eligible replicas (its in-sync replicas had lost their "
                   "stores)",
                   p, c->workers[c->parts[p].leader].id, c->parts[p].epoch);
    free(emptied);
    bool changed = ch.leader_changes || ch.replicas_added || ch.replicas_removed ||
                   ch.isr_changes || ch.owner_changes;
    if (changed)
        SX_LOG(SX_LOG_INFO, "coord",
               "assignment leader_changes=%u replicas_added=%u replicas_removed=%u "
               "isr_changes=%u owner_changes=%u unavailable=%u moves_started=%u "
               "moves_finished=%u moves_in_flight=%u",
               ch.leader_changes, ch.replicas_added, ch.replicas_removed, ch.isr_changes,
               ch.owner_changes, ch.unavailable, ch.moves_started, ch.moves_finished,
               ch.moves_in_flight);
    return changed;
}

/* ------------------------------------------------------------------ open -- */

static void random_id(char *out, size_t cap)
{
    unsigned char b[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, b, sizeof(b));
        (void)n;
        close(fd);
    }
    snprintf(out, cap, "%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
             b[7]);
}

static sx_status check_settings(const sx_coord_settings *s, sx_err *err)
{
    if (s->partitions < 1 || s->partitions > SX_MAX_PARTITIONS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "--partitions: %u is outside 1..%u",
                          s->partitions, SX_MAX_PARTITIONS);
    if (s->replication < 1 || s->replication > SX_MAX_REPLICAS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "--replication: %u is outside 1..%u",
                          s->replication, SX_MAX_REPLICAS);
    if (s->min_isr < 1 || s->min_isr > s->replication)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "--min-isr: %u is outside 1..%u (the replication factor)", s->min_isr,
                          s->replication);
    if (s->term_partitions < 1 || s->term_partitions > SX_MAX_TERM_PARTITIONS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "--term-partitions: %u is outside 1..%u",
                          s->term_partitions, SX_MAX_TERM_PARTITIONS);
    return SX_OK;
}

static sx_status check_fixed(const char *flag, bool given, uint32_t wanted, uint32_t stored,
                             const char *dir, sx_err *err)
{
    if (given && wanted != stored)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "--%s %u differs from %u, fixed when %s was created; "
                          "leave it out or give %u",
                          flag, wanted, stored, dir ? dir : "the cluster's metadata in etcd",
                          stored);
    return SX_OK;
}

sx_status sx_coord_open(const sx_coord_opts *opts, uint64_t now_ms, sx_coord **out, sx_err *err)
{
    *out = NULL;
    sx_coord *c = sx_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->lease_ms = opts->lease_ms ? opts->lease_ms : 2000;
    c->max_moves = opts->max_moves ? opts->max_moves : SX_COORD_DEFAULT_MAX_MOVES;
    c->term_split_entries = opts->term_split_entries;
    c->term_split_load = opts->term_split_load;
    c->term_split_load_window_ms = opts->term_split_load_window_ms;
    c->hot_value_ways = opts->hot_value_ways;
    c->hot_value_share = opts->hot_value_share;
    c->hot_value_min_changes = opts->hot_value_min_changes;
    c->tick_ms = opts->tick_ms;
    c->address = sx_strdup(opts->address ? opts->address : "");
    /* Everything before now was time the coordinator did not run. */
    c->down_from_ms = 0;
    c->down_to_ms = c->last_tick_ms = now_ms;
    Shardex__Internal__V1__ClusterMap *stored = NULL;
    sx_status st = SX_OK;
    if (opts->meta)
        c->meta = opts->meta;
    else
        st = sx_meta_open(opts->data_dir, &c->meta, err);
    if (st == SX_OK)
        st = sx_meta_load(c->meta, &stored, err);
    if (st != SX_OK)
        goto fail;

    if (stored) {
        st = load_locked(c, stored, err);
        uint64_t stored_epoch = stored->coordinator_epoch;
        protobuf_c_message_free_unpacked(&stored->base, NULL);
        if (st != SX_OK)
            goto fail;
        const sx_coord_settings *w = &opts->settings;
        if ((st = check_fixed("partitions", opts->given_partitions, w->partitions,
                              c->set.partitions, opts->data_dir, err)) != SX_OK ||
            (st = check_fixed("replication", opts->given_replication, w->replication,
                              c->set.replication, opts->data_dir, err)) != SX_OK ||
            (st = check_fixed("min-isr", opts->given_min_isr, w->min_isr, c->set.min_isr,
                              opts->data_dir, err)) != SX_OK ||
            (st = check_fixed("term-partitions", opts->given_term_partitions, w->term_partitions,
                              c->set.term_partitions, opts->data_dir, err)) != SX_OK)
            goto fail;
        /* Everyone known alive gets a fresh lease before anyone is judged (below). */
        /* Publish the stored version as it is when a restart changes nothing;
         * a new lease is a change workers must hear of. */
        uint32_t stored_lease = c->lease_ms;
        c->lease_ms = opts->lease_ms ? opts->lease_ms : stored_lease;
        /* A new leader (etcd) publishes a new version: the map names it. */
        bool same = c->lease_ms == stored_lease && stored_epoch == (uint64_t)sx_meta_epoch(c->meta);
        if (same)
            c->version--;
        sx__coord_lease_rules_locked(c);
        sx__coord_fresh_leases_locked(c, now_ms);
        for (uint32_t p = 0; p < c->set.partitions; p++)
            if (c->parts[p].nisr == 0 && c->parts[p].isr_version > 0)
                sx__coord_report_isr_lost_locked(c, p);
        sx__coord_commit_locked(c, same                          ? "restart"
                                   : c->lease_ms != stored_lease ? "restart with a new lease"
                                                                 : "a new leader");
    } else {
        if ((st = check_settings(&opts->settings, err)) != SX_OK)
            goto fail;
        c->set = opts->settings;
        char id[32];
        random_id(id, sizeof(id));
        c->cluster_id = sx_strdup(id);
        c->parts = sx_calloc(c->set.partitions, sizeof(*c->parts));
        for (uint32_t p = 0; p < c->set.partitions; p++)
            c->parts[p].leader = -1;
        c->workers = sx_calloc(1, sizeof(*c->workers));
        c->terms = sx_calloc(1, sizeof(*c->terms));
        c->indexes = sx_calloc(1, sizeof(*c->indexes));
        c->next_incarnation = 1;
        c->next_index_id = 1;
        sx__coord_lease_rules_locked(c);
        sx__coord_commit_locked(c, "created");
    }
    SX_LOG(SX_LOG_INFO, "coord",
           "cluster id=%s partitions=%u replication=%u min_isr=%u term_partitions=%u "
           "lease_ms=%u max_moves=%u workers=%u indexes=%u version=%" PRIu64,
           c->cluster_id, c->set.partitions, c->set.replication, c->set.min_isr,
           c->set.term_partitions, c->lease_ms, c->max_moves, c->nworkers, c->nindexes, c->version);
    *out = c;
    return SX_OK;
fail:
    sx_coord_close(c);
    return st;
}

void sx_coord_close(sx_coord *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        free(c->workers[i].id);
        free(c->workers[i].addr);
        free(c->workers[i].reports);
        sx__coord_clear_index_reports(&c->workers[i]);
    }
    for (uint32_t i = 0; i < c->nindexes; i++)
        sx__coord_index_free(&c->indexes[i]);
    free(c->workers);
    free(c->indexes);
    free(c->parts);
    free(c->terms);
    free(c->cluster_id);
    sx_coord_map_release(c->cur);
    sx_meta_close(c->meta);
    free(c->address);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

sx_coord_settings sx_coord_get_settings(const sx_coord *c)
{
    return c->set;
}

void sx_coord_set_address(sx_coord *c, const char *address)
{
    pthread_mutex_lock(&c->mu);
    free(c->address);
    c->address = sx_strdup(address ? address : "");
    pthread_mutex_unlock(&c->mu);
}

uint64_t sx_coord_epoch(const sx_coord *c)
{
    return (uint64_t)sx_meta_epoch(c->meta); /* fixed while c is open */
}

uint32_t sx_coord_lease_ms(const sx_coord *c)
{
    return c->lease_ms;
}
