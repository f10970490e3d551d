/* coord.c: the coordinator's state, its changes, and their durability.
 *
 * The state lives in plain C structures (what sx_assign works on). Every
 * change ends in commit_locked: version + 1, the whole map built as a
 * ClusterMap message, written synced, and only then published as the new
 * shared snapshot that heartbeat replies carry. A failed write is fatal: the
 * process stops rather than announce what is not durable (REPLICATION.md rule 8).
 */
#include "coord.h"

#include "clock.h"
#include "clustermap.h"
#include "ixkey.h"
#include "log.h"
#include "meta.h"
#include "partmap.h"

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A term partition owner's report, copied out of its heartbeat. */
typedef struct term_report {
    uint64_t index_id;
    uint32_t t;
    uint64_t epoch;
    bool ready;
    uint64_t *wm; /* [nwm] */
    size_t nwm;
    uint64_t oldest_as_of_ms;         /* wall clock; 0: not ready */
    uint64_t entries;                 /* as last counted by the owner */
    Shardex__V1__Value *median;       /* owned (sx_ixkey_value_dup); NULL: not counted or empty */
    double writes_per_s, reads_per_s; /* its load, as the owner measures it */
    /* Above --term-split-load in this report and every one before it from
     * this owner at this epoch since load_since_ms (when it was first). */
    bool load_above;
    uint64_t load_since_ms;
} term_report;

typedef struct worker {
    char *id;
    char *addr;
    bool alive;
    bool draining; /* stored: shardex worker drain */
    bool removed;  /* stored: shardex worker remove; cleared when it registers again */
    uint64_t incarnation;
    uint64_t lease_deadline_ms; /* volatile: not stored; fresh after a restart */
    uint64_t hb_seq;            /* volatile: the highest heartbeat number of this incarnation */
    uint64_t reg_nonce;         /* volatile: the nonce of the registration that made it; 0 none */
    bool heartbeated;           /* volatile: it heartbeated, so its process heard that answer */
    uint64_t known_version;     /* volatile: the map version its latest heartbeat had installed */
    Shardex__Internal__V1__ReplicaReport *reports; /* latest heartbeat's, volatile */
    size_t nreports;
    Shardex__Internal__V1__IndexReport *ixreports; /* latest, volatile */
    size_t nixreports;
    term_report *treports; /* latest, volatile */
    size_t ntreports;
} worker;

static void clear_index_reports(worker *wk)
{
    for (size_t i = 0; i < wk->ntreports; i++) {
        free(wk->treports[i].wm);
        sx_ixkey_value_free(wk->treports[i].median);
    }
    free(wk->treports);
    free(wk->ixreports);
    wk->treports = NULL;
    wk->ixreports = NULL;
    wk->ntreports = wk->nixreports = 0;
}

typedef struct index_entry {
    char *name;
    char *field;
    Shardex__V1__ValueType type;
    bool local, global;
    uint32_t term_partitions; /* resolved; 0 for an index that is not global */
    Shardex__V1__Partitioning partitioning;
    size_t nsplits;              /* RANGE: term_partitions - 1, fixed at creation */
    Shardex__V1__Value **splits; /* owned (sx_ixkey_value_dup) */
    Shardex__V1__IndexState state;
    uint64_t id;
    uint32_t first_term; /* first of its term partitions in terms[] */
    bool *backfilled;    /* [P] */
    /* Online splits (IndexEntry.splits), in seq order, owned: every one but
     * the last is done. Split k's shadows are term partitions
     * term_partitions + 2(k-1) and + 1. */
    Shardex__Internal__V1__IndexSplit **osplits;
    size_t nosplits;
    /* Salted hot values (IndexEntry.salts), in seq order, owned. */
    Shardex__Internal__V1__IndexSalt **osalts;
    size_t nosalts;
    /* Hot values as each partition's leader last counted them (volatile):
     * [P], allocated with the first report. */
    struct hot_part *hot;
    size_t hot_parts;
    double *salt_share; /* [nosalts]: the salted values' share when last measured */
    /* [nosalts]: the map version that recorded each (volatile: after a
     * restart, the version loaded, which every live worker reaches anew). */
    uint64_t *salt_announced;
} index_entry;

#define HOT_TOP 3
typedef struct hot_part {
    uint64_t window;
    size_t n;
    Shardex__V1__Value *v[HOT_TOP]; /* owned (sx_ixkey_value_dup) */
    uint64_t count[HOT_TOP];
} hot_part;

/* Term partition numbers e uses (retired ones included). */
static uint32_t ix_terms(const index_entry *e)
{
    return e->term_partitions + 2 * (uint32_t)e->nosplits;
}

static Shardex__Internal__V1__IndexSalt *salt_dup(const Shardex__Internal__V1__IndexSalt *sa)
{
    size_t n = shardex__internal__v1__index_salt__get_packed_size(sa);
    uint8_t *buf = sx_malloc(n + 1);
    shardex__internal__v1__index_salt__pack(sa, buf);
    Shardex__Internal__V1__IndexSalt *o = shardex__internal__v1__index_salt__unpack(NULL, n, buf);
    free(buf);
    if (!o)
        abort(); /* we just packed it */
    return o;
}

static Shardex__Internal__V1__IndexSplit *split_dup(const Shardex__Internal__V1__IndexSplit *sp)
{
    size_t n = shardex__internal__v1__index_split__get_packed_size(sp);
    uint8_t *buf = sx_malloc(n + 1);
    shardex__internal__v1__index_split__pack(sp, buf);
    Shardex__Internal__V1__IndexSplit *o = shardex__internal__v1__index_split__unpack(NULL, n, buf);
    free(buf);
    if (!o) {
        SX_LOG(SX_LOG_ERROR, "coord", "cannot copy an index split (out of memory)");
        abort();
    }
    return o;
}

/* The split points are borrowed by the spec: it is packed before e changes. */
static void spec_partitioning(Shardex__V1__IndexSpec *spec, const index_entry *e)
{
    spec->partitioning = e->partitioning;
    spec->n_split_points = e->nsplits;
    spec->split_points = e->splits;
}

/* e's spec as routing needs it (def_of), its strings borrowed from e. */
static void spec_view(const index_entry *e, Shardex__V1__IndexSpec *spec)
{
    shardex__v1__index_spec__init(spec);
    spec->name = e->name;
    spec->field = e->field;
    spec->type = e->type;
    spec->global = e->global;
    spec->term_partitions = e->term_partitions;
    spec_partitioning(spec, e);
}

static void copy_partitioning(index_entry *e, const Shardex__V1__IndexSpec *spec)
{
    e->partitioning = spec->partitioning;
    e->nsplits = spec->n_split_points;
    e->splits = sx_calloc(e->nsplits + 1, sizeof(*e->splits));
    for (size_t i = 0; i < e->nsplits; i++)
        e->splits[i] = sx_ixkey_value_dup(spec->split_points[i]);
}

typedef struct snap {
    sx_coord_map pub;
    _Atomic int refs;
    Shardex__Internal__V1__ClusterMap *owned;
} snap;

struct sx_coord {
    pthread_mutex_t mu;
    sx_coord_settings set;
    char *cluster_id;
    uint32_t lease_ms;
    uint32_t max_moves;          /* replica moves in flight at once (sx_assign_settings) */
    uint64_t term_split_entries; /* split a term partition above this many entries (0: never) */
    uint64_t term_split_load;    /* ... or above this many ops/s (0: never) ... */
    uint64_t term_split_load_window_ms; /* ... for this long */
    uint32_t hot_value_ways;            /* a salt's ways when not given (0: the default) */
    double hot_value_share;             /* salt a value above this share of changes (0: never) */
    uint64_t hot_value_min_changes;     /* ... out of at least this many */
    uint64_t margin_ms;                 /* the coordinator waits this much longer than the worker */
    /* The lease rules (coord.h, docs/architecture.md "Leases"), all volatile: */
    uint64_t unanswered_max_ms;        /* a worker unanswered longer is refused: two leases */
    uint32_t tick_ms;                  /* how often sx_coord_tick runs; 0: unknown */
    uint64_t pause_ms;                 /* a gap between ticks longer than this: we did not run */
    uint64_t last_tick_ms;             /* the last tick (or open, or the end of a pause) */
    uint64_t down_from_ms, down_to_ms; /* the last stretch we did not run (down or paused) */
    sx_meta *meta;
    char *address; /* this coordinator's, for ClusterStatus */
    worker *workers;
    uint32_t nworkers;
    sx_log_part *parts; /* [P] */
    sx_term_part *terms;
    uint32_t nterms;
    index_entry *indexes;
    uint32_t nindexes;
    uint64_t version;
    uint64_t next_incarnation;
    uint64_t next_index_id;
    snap *cur; /* the durable map of `version` */
};

/* ------------------------------------------------------------- snapshots -- */

sx_coord_map *sx_coord_map_acquire(sx_coord *c)
{
    pthread_mutex_lock(&c->mu);
    snap *s = c->cur;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return &s->pub;
}

static sx_coord_map *acquire_locked(sx_coord *c)
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
    for (uint32_t i = 0; i < c->nindexes; i++) {
        const index_entry *e = &c->indexes[i];
        Shardex__Internal__V1__IndexEntry *o = sx_arena_alloc(a, sizeof(*o));
        shardex__internal__v1__index_entry__init(o);
        Shardex__V1__IndexSpec *spec = sx_arena_alloc(a, sizeof(*spec));
        shardex__v1__index_spec__init(spec);
        spec->name = e->name;
        spec->field = e->field;
        spec->type = e->type;
        spec->local = e->local;
        spec->global = e->global;
        spec->term_partitions = e->term_partitions;
        spec_partitioning(spec, e);
        o->spec = spec;
        o->state = e->state;
        o->id = e->id;
        o->first_term = e->first_term;
        o->n_splits = e->nosplits;
        o->splits = e->osplits;
        o->n_salts = e->nosalts;
        o->salts = e->osalts;
        o->backfilled = sx_arena_alloc(a, c->set.partitions * sizeof(uint32_t));
        for (uint32_t p = 0; p < c->set.partitions; p++)
            if (e->backfilled[p])
                o->backfilled[o->n_backfilled++] = p;
        m->indexes[i] = o;
    }
    return m;
}

/* Makes the current state durable and visible as a new version. */
static void commit_locked(sx_coord *c, const char *why)
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

static void free_index(index_entry *e)
{
    for (size_t i = 0; i < e->nsplits; i++)
        sx_ixkey_value_free(e->splits[i]);
    free(e->splits);
    for (size_t i = 0; i < e->nosplits; i++)
        shardex__internal__v1__index_split__free_unpacked(e->osplits[i], NULL);
    free(e->osplits);
    for (size_t i = 0; i < e->nosalts; i++)
        shardex__internal__v1__index_salt__free_unpacked(e->osalts[i], NULL);
    free(e->osalts);
    free(e->salt_share);
    free(e->salt_announced);
    if (e->hot) {
        for (size_t p = 0; p < e->hot_parts; p++)
            for (size_t k = 0; k < e->hot[p].n; k++)
                sx_ixkey_value_free(e->hot[p].v[k]);
        free(e->hot);
    }
    free(e->name);
    free(e->field);
    free(e->backfilled);
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
        const Shardex__Internal__V1__IndexEntry *o = m->indexes[i];
        index_entry *e = &c->indexes[i];
        if (!o->spec)
            return sx_err_set(err, SX_DATA_LOSS, "metadata: stored index %" PRIu64 " has no spec",
                              o->id);
        e->name = sx_strdup(o->spec->name);
        e->field = sx_strdup(o->spec->field);
        e->type = o->spec->type;
        e->local = o->spec->local;
        e->global = o->spec->global;
        e->term_partitions = o->spec->term_partitions;
        copy_partitioning(e, o->spec);
        e->state = o->state;
        e->id = o->id;
        e->first_term = o->first_term;
        e->osplits = sx_calloc(o->n_splits + 1, sizeof(*e->osplits));
        for (size_t k = 0; k < o->n_splits; k++)
            if (o->splits[k])
                e->osplits[e->nosplits++] = split_dup(o->splits[k]);
        e->osalts = sx_calloc(o->n_salts + 1, sizeof(*e->osalts));
        for (size_t k = 0; k < o->n_salts; k++)
            if (o->salts[k])
                e->osalts[e->nosalts++] = salt_dup(o->salts[k]);
        e->salt_share = sx_calloc(e->nosalts + 1, sizeof(*e->salt_share));
        e->salt_announced = sx_calloc(e->nosalts + 1, sizeof(*e->salt_announced));
        for (size_t k = 0; k < e->nosalts; k++)
            e->salt_announced[k] = m->version;
        if ((uint64_t)e->first_term + ix_terms(e) > m->n_terms)
            return sx_err_set(
                err, SX_DATA_LOSS,
                "metadata: stored index %" PRIu64 " has term partitions beyond the map's", o->id);
        e->backfilled = sx_calloc(c->set.partitions, sizeof(bool));
        for (size_t k = 0; k < o->n_backfilled; k++)
            if (o->backfilled[k] < c->set.partitions)
                e->backfilled[o->backfilled[k]] = true;
    }
    /* The workers' own check of index entries: a stored map they would all
     * refuse is corrupt metadata, not a map to send. */
    sx_err ierr = {0};
    if (sx_partmap_check_indexes(m, &ierr) != SX_OK)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: %s", ierr.msg);
    return sx_clustermap_check(c->parts, c->set.partitions, c->terms, c->nterms, c->nworkers, err);
}

/* ------------------------------------------------------------ assignment -- */

static int32_t find_worker_locked(const sx_coord *c, const char *id)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (strcmp(c->workers[i].id, id) == 0)
            return (int32_t)i;
    return -1;
}

/* A partition whose isr every member left with a lost store: says loudly who
 * may still lead it, or that nobody may. */
static void report_isr_lost_locked(const sx_coord *c, uint32_t p)
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
static bool assign_locked(sx_coord *c)
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

/* ---------------------------------------------------------------- leases -- */

/* The lease's derived limits, after lease_ms is set or changed. The pause limit
 * is above three ticks, so that late ticks of a busy machine never look like a
 * pause (if every tick did, nobody would ever be judged), and at least half a
 * lease: a shorter gap, plus a heartbeat period, is still within lease + margin,
 * so it cannot make anyone look dead. */
static void lease_rules_locked(sx_coord *c)
{
    c->margin_ms = c->lease_ms / 4 > 100 ? c->lease_ms / 4 : 100;
    c->unanswered_max_ms = 2 * (uint64_t)c->lease_ms;
    uint64_t three_ticks = 3 * (uint64_t)c->tick_ms;
    c->pause_ms = !c->tick_ms ? 0 : three_ticks > c->lease_ms / 2 ? three_ticks : c->lease_ms / 2;
}

/* Every worker known alive: a lease as if it had just heartbeated. */
static void fresh_leases_locked(sx_coord *c, uint64_t now_ms)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        c->workers[i].lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
}

/* When the gap since the last tick is a pause of the coordinator's own (it was
 * stopped, or starved): the heartbeats that arrived meanwhile may still be
 * queued, so nobody is judged on that gap; everyone starts a fresh lease now,
 * as after a restart, and the gap is remembered (held_ms). */
static void notice_pause_locked(sx_coord *c, uint64_t now_ms)
{
    if (!c->pause_ms || now_ms <= c->last_tick_ms || now_ms - c->last_tick_ms <= c->pause_ms)
        return;
    SX_LOG(SX_LOG_WARN, "coord",
           "paused ms=%" PRIu64 " tick_ms=%u reason=\"the coordinator did not run\" "
           "action=\"fresh leases for every live worker\"",
           now_ms - c->last_tick_ms, c->tick_ms);
    c->down_from_ms = c->last_tick_ms;
    c->down_to_ms = c->last_tick_ms = now_ms;
    fresh_leases_locked(c, now_ms);
}

/* How much of a worker's last unanswered_ms (up to now) counts against it:
 * all of it but the part the coordinator itself did not run. */
static uint64_t held_ms(const sx_coord *c, uint64_t now_ms, uint64_t unanswered_ms)
{
    uint64_t from = unanswered_ms < now_ms ? now_ms - unanswered_ms : 0;
    uint64_t lo = from > c->down_from_ms ? from : c->down_from_ms;
    uint64_t hi = now_ms < c->down_to_ms ? now_ms : c->down_to_ms;
    return unanswered_ms - (hi > lo ? hi - lo : 0);
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
        lease_rules_locked(c);
        fresh_leases_locked(c, now_ms);
        for (uint32_t p = 0; p < c->set.partitions; p++)
            if (c->parts[p].nisr == 0 && c->parts[p].isr_version > 0)
                report_isr_lost_locked(c, p);
        commit_locked(c, same                          ? "restart"
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
        lease_rules_locked(c);
        commit_locked(c, "created");
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
        clear_index_reports(&c->workers[i]);
    }
    for (uint32_t i = 0; i < c->nindexes; i++)
        free_index(&c->indexes[i]);
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

/* ------------------------------------------------------------ membership -- */

sx_status sx_coord_register(sx_coord *c, const char *id, const char *address, uint64_t now_ms,
                            int32_t *index, uint64_t *incarnation, sx_coord_map **map, sx_err *err)
{
    return sx_coord_register_ex(c, id, address, 0, NULL, 0, now_ms, index, incarnation, map, err);
}

sx_status sx_coord_register_lost(sx_coord *c, const char *id, const char *address,
                                 const uint32_t *lost, size_t nlost, uint64_t now_ms,
                                 int32_t *index, uint64_t *incarnation, sx_coord_map **map,
                                 sx_err *err)
{
    return sx_coord_register_ex(c, id, address, 0, lost, nlost, now_ms, index, incarnation, map,
                                err);
}

sx_status sx_coord_register_nonce(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                                  uint64_t now_ms, int32_t *index, uint64_t *incarnation,
                                  sx_coord_map **map, sx_err *err)
{
    return sx_coord_register_ex(c, id, address, nonce, NULL, 0, now_ms, index, incarnation, map,
                                err);
}

/* A worker that registers again leaves the isr of p when it lost p's store
 * (even as the last member: sx_clustermap_store_lost), else when another live
 * member remains (it has verified nothing in the current epoch); the elr rule
 * applies to the latter. Returns whether p lost a store of an isr or elr member. */
static bool leave_isr_locked(sx_coord *c, uint32_t p, int32_t w, bool lost)
{
    sx_log_part *lp = &c->parts[p];
    if (lost) {
        if (!sx_clustermap_store_lost(lp, w))
            return false;
        SX_LOG(SX_LOG_WARN, "coord",
               "partition=%u worker=%s lost its store: out of the isr and the eligible leaders "
               "isr_size=%u",
               p, c->workers[w].id, lp->nisr);
        return true;
    }
    if (!sx_clustermap_has(lp->isr, lp->nisr, w))
        return false;
    bool other = false;
    for (uint32_t k = 0; k < lp->nisr; k++)
        other |= lp->isr[k] != w && c->workers[lp->isr[k]].alive;
    if (!other)
        return false;
    int32_t old[SX_MAX_REPLICAS];
    uint32_t nold = lp->nisr, n = 0;
    memcpy(old, lp->isr, sizeof(old));
    for (uint32_t k = 0; k < lp->nisr; k++)
        if (lp->isr[k] != w)
            lp->isr[n++] = lp->isr[k];
    lp->nisr = n;
    lp->isr_version++;
    if (lp->leader == w) {
        lp->leader = -1; /* assignment picks one from the remaining ISR */
        lp->epoch++;
    }
    sx_clustermap_track_elr(lp, old, nold, c->set.min_isr);
    return false;
}

/* A retried registration (see sx_coord_register_nonce): its process never
 * heard the first answer, so it has acted on nothing; it gets the same answer,
 * and a fresh lease because this reply may be the one it hears. */
static bool register_retried_locked(sx_coord *c, int32_t w, const char *address, uint64_t nonce,
                                    uint64_t now_ms)
{
    worker *wk = &c->workers[w];
    if (!nonce || nonce != wk->reg_nonce || !wk->alive || wk->heartbeated ||
        strcmp(wk->addr, address) != 0)
        return false;
    wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
    SX_LOG(SX_LOG_INFO, "coord",
           "worker registered again id=%s index=%d incarnation=%" PRIu64
           " reason=\"retried by the same process\"",
           wk->id, w, wk->incarnation);
    return true;
}

sx_status sx_coord_register_ex(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                               const uint32_t *lost, size_t nlost, uint64_t now_ms, int32_t *index,
                               uint64_t *incarnation, sx_coord_map **map, sx_err *err)
{
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    if (!address[0] || strlen(address) > 256)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "address: must be 1..256 bytes");
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    int32_t w = find_worker_locked(c, id);
    if (w >= 0 && register_retried_locked(c, w, address, nonce, now_ms)) {
        *index = w;
        *incarnation = c->workers[w].incarnation;
        *map = acquire_locked(c);
        pthread_mutex_unlock(&c->mu);
        return SX_OK;
    }
    if (w < 0) {
        c->workers = sx_realloc(c->workers, (c->nworkers + 1) * sizeof(*c->workers));
        w = (int32_t)c->nworkers++;
        memset(&c->workers[w], 0, sizeof(c->workers[w]));
        c->workers[w].id = sx_strdup(id);
    }
    worker *wk = &c->workers[w];
    if (wk->removed) {
        /* Removed for good: it is in no replica set, so it starts empty. */
        wk->removed = false;
        SX_LOG(SX_LOG_INFO, "coord",
               "worker registers again after its removal id=%s index=%d: "
               "a new, empty worker",
               id, w);
    }
    /* A new incarnation of a leader is a new leadership: the process that
     * wrote under the old epoch may have lost what it had not made durable,
     * and the same epoch must never name two different histories. */
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (c->parts[p].leader == w)
            c->parts[p].epoch++;
    /* A new process has verified nothing in the current epochs: it leaves
     * every ISR that keeps another live member, and its leaders re-admit it
     * once it has caught up (rule 3). One that lost a partition's store holds
     * none of what it acknowledged there: it leaves that ISR and the eligible
     * leaders even as the last member, and never leads with what is left. */
    bool *lost_p = sx_calloc(c->set.partitions + 1, sizeof(bool));
    for (size_t i = 0; i < nlost; i++)
        if (lost[i] < c->set.partitions)
            lost_p[lost[i]] = true;
    for (uint32_t p = 0; p < c->set.partitions; p++)
        lost_p[p] = leave_isr_locked(c, p, w, lost_p[p]);
    for (uint32_t t = 0; t < c->nterms; t++)
        if (c->terms[t].owner == w)
            c->terms[t].epoch++;
    free(wk->addr);
    wk->addr = sx_strdup(address);
    wk->alive = true;
    wk->incarnation = c->next_incarnation++;
    wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
    wk->reg_nonce = nonce;
    wk->hb_seq = 0;
    wk->heartbeated = false;
    free(wk->reports);
    wk->reports = NULL;
    wk->nreports = 0;
    clear_index_reports(wk);
    SX_LOG(SX_LOG_INFO, "coord",
           "worker registered id=%s index=%d addr=%s incarnation=%" PRIu64 " lost_stores=%zu", id,
           w, address, wk->incarnation, nlost);
    assign_locked(c);
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (lost_p[p] && c->parts[p].leader < 0 && c->parts[p].nisr == 0)
            report_isr_lost_locked(c, p);
    free(lost_p);
    commit_locked(c, "register");
    *index = w;
    *incarnation = wk->incarnation;
    *map = acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

static void splits_step_locked(sx_coord *c, uint64_t now_ms);
static void hot_step_locked(sx_coord *c);
static index_entry *find_index_id_locked(sx_coord *c, uint64_t id);

/* Keeps what partition p's leader (worker w) counted of index r's hot values. */
static void hot_report_locked(sx_coord *c, int32_t w, const Shardex__Internal__V1__IndexReport *r)
{
    if (r->partition >= c->set.partitions || c->parts[r->partition].leader != w)
        return;
    index_entry *e = find_index_id_locked(c, r->index_id);
    if (!e || !e->global)
        return;
    if (!e->hot) {
        e->hot_parts = c->set.partitions;
        e->hot = sx_calloc(e->hot_parts, sizeof(*e->hot));
    }
    hot_part *h = &e->hot[r->partition];
    for (size_t k = 0; k < h->n; k++)
        sx_ixkey_value_free(h->v[k]);
    h->n = 0;
    h->window = r->window_changes;
    for (size_t k = 0; k < r->n_hot && h->n < HOT_TOP; k++) {
        if (!r->hot[k]->value || r->hot[k]->value->kind_case == SHARDEX__V1__VALUE__KIND__NOT_SET)
            continue;
        h->v[h->n] = sx_ixkey_value_dup(r->hot[k]->value);
        h->count[h->n++] = r->hot[k]->changes;
    }
}

/* r's load streak, from r and the report it follows (prev: the same term
 * partition at the same epoch from the same worker, or NULL). */
static void load_streak(const sx_coord *c, term_report *r, const term_report *prev, uint64_t now_ms)
{
    r->load_above =
        c->term_split_load && r->writes_per_s + r->reads_per_s > (double)c->term_split_load;
    if (!r->load_above)
        r->load_since_ms = 0;
    else if (prev && prev->load_above)
        r->load_since_ms = prev->load_since_ms;
    else
        r->load_since_ms = now_ms;
}

/* A rate from the network: what is not a finite number >= 0 (a worker's bug)
 * counts as no load, so that it neither splits nor reaches JSON or /metrics. */
static double rate_of(double x)
{
    return isfinite(x) && x > 0 ? x : 0;
}

/* Copies a heartbeat's term reports, their load streaks continued from
 * wk's previous reports. */
static term_report *copy_term_reports(const sx_coord *c, const worker *wk,
                                      Shardex__Internal__V1__TermReport *const *terms,
                                      size_t nterms, uint64_t now_ms)
{
    term_report *out = sx_calloc(nterms + 1, sizeof(*out));
    for (size_t i = 0; i < nterms; i++) {
        const Shardex__Internal__V1__TermReport *x = terms[i];
        term_report *r = &out[i];
        *r = (term_report){.index_id = x->index_id,
                           .t = x->term_partition,
                           .epoch = x->epoch,
                           .ready = x->ready,
                           .nwm = x->n_watermarks,
                           .oldest_as_of_ms = x->oldest_as_of_ms,
                           .entries = x->entries,
                           .writes_per_s = rate_of(x->writes_per_s),
                           .reads_per_s = rate_of(x->reads_per_s)};
        if (x->median && x->median->kind_case != SHARDEX__V1__VALUE__KIND__NOT_SET)
            r->median = sx_ixkey_value_dup(x->median);
        r->wm = sx_calloc(r->nwm + 1, sizeof(*r->wm));
        if (r->nwm)
            memcpy(r->wm, x->watermarks, r->nwm * sizeof(*r->wm));
        const term_report *prev = NULL;
        for (size_t k = 0; k < wk->ntreports && !prev; k++)
            if (wk->treports[k].index_id == r->index_id && wk->treports[k].t == r->t &&
                wk->treports[k].epoch == r->epoch)
                prev = &wk->treports[k];
        load_streak(c, r, prev, now_ms);
    }
    return out;
}

void sx_coord_index_reports(sx_coord *c, const char *id,
                            Shardex__Internal__V1__IndexReport *const *ix, size_t nix,
                            Shardex__Internal__V1__TermReport *const *terms, size_t nterms,
                            uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    int32_t w = find_worker_locked(c, id);
    if (w >= 0) {
        worker *wk = &c->workers[w];
        term_report *tr = copy_term_reports(c, wk, terms, nterms, now_ms);
        clear_index_reports(wk);
        wk->ixreports = sx_calloc(nix + 1, sizeof(*wk->ixreports));
        for (size_t i = 0; i < nix; i++) {
            wk->ixreports[i] = *ix[i];
            hot_report_locked(c, w, ix[i]);
            wk->ixreports[i].n_hot = 0; /* borrowed from the request: not kept */
            wk->ixreports[i].hot = NULL;
        }
        wk->nixreports = nix;
        wk->treports = tr;
        wk->ntreports = nterms;
        splits_step_locked(c, now_ms);
        hot_step_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
}

sx_status sx_coord_heartbeat(sx_coord *c, const char *id, uint64_t incarnation,
                             uint64_t known_version,
                             Shardex__Internal__V1__ReplicaReport *const *reports, size_t nreports,
                             uint64_t now_ms, sx_coord_map **map, sx_err *err)
{
    return sx_coord_heartbeat_heard(c, id, incarnation, NULL, known_version, reports, nreports,
                                    now_ms, map, err);
}

/* The lease of wk after a heartbeat received at now_ms (numbered above every
 * earlier one, so the worker's earlier calls are over: their answers were
 * heard, which unanswered_ms then says, or never will be). Its answer may be
 * the one the worker hears and counts its lease from (sent before now_ms):
 * alive until now + lease + margin. Unless the worker has not heard us for
 * too long, not counting our own pauses: then this answer renews nothing,
 * and the worker's lease is what the worker itself has, which ended a lease
 * after its last answered call was sent (before now - unanswered_ms). */
static sx_status renew_locked(sx_coord *c, worker *wk, const sx_coord_heard *heard, uint64_t now_ms,
                              sx_err *err)
{
    uint64_t held = held_ms(c, now_ms, heard->unanswered_ms);
    if (held <= c->unanswered_max_ms) {
        wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
        return SX_OK;
    }
    uint64_t answered = heard->unanswered_ms < now_ms ? now_ms - heard->unanswered_ms : 0;
    wk->lease_deadline_ms = answered + c->lease_ms + c->margin_ms;
    SX_LOG(SX_LOG_WARN, "coord",
           "lease not renewed id=%s incarnation=%" PRIu64 " unanswered_ms=%" PRIu64
           " held_ms=%" PRIu64 " limit_ms=%" PRIu64,
           wk->id, wk->incarnation, heard->unanswered_ms, held, c->unanswered_max_ms);
    return sx_err_set(err, SX_FAILED_PRECONDITION,
                      "worker %s has heard no answer for %" PRIu64 " ms (limit %" PRIu64
                      "): its lease is not renewed; register again",
                      wk->id, held, c->unanswered_max_ms);
}

/* Salts recorded but not active (docs/indexes.md "Hot values"): one turns
 * active, in seq order per index, once every live worker's heartbeat says it
 * installed a map version at or after the one that recorded it. Until then
 * queries read the salt set but no leader appends the marker: a query
 * planned on a map without the salt reads only the value's own partition,
 * which holds every entry of the value until a marker. */
static void salts_activate_locked(sx_coord *c, uint64_t now_ms)
{
    uint64_t least = UINT64_MAX;
    for (uint32_t w = 0; w < c->nworkers; w++) {
        const worker *wk = &c->workers[w];
        if (wk->alive && !wk->removed && wk->lease_deadline_ms > now_ms &&
            wk->known_version < least)
            least = wk->known_version;
    }
    bool changed = false;
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        for (size_t k = 0; k < e->nosalts; k++) {
            if (e->osalts[k]->active)
                continue;
            if (least == UINT64_MAX || least < e->salt_announced[k])
                break; /* in seq order */
            e->osalts[k]->active = true;
            changed = true;
            SX_LOG(SX_LOG_INFO, "coord", "index value salt active name=%s seq=%zu", e->name, k + 1);
        }
    }
    if (changed)
        commit_locked(c, "index salt active");
}

sx_status sx_coord_heartbeat_heard(sx_coord *c, const char *id, uint64_t incarnation,
                                   const sx_coord_heard *heard, uint64_t known_version,
                                   Shardex__Internal__V1__ReplicaReport *const *reports,
                                   size_t nreports, uint64_t now_ms, sx_coord_map **map,
                                   sx_err *err)
{
    static const sx_coord_heard nothing = {0, 0};
    if (!heard)
        heard = &nothing;
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    int32_t w = find_worker_locked(c, id);
    if (w < 0 || !c->workers[w].alive || c->workers[w].incarnation != incarnation) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker %s incarnation %" PRIu64 " is not current: register again", id,
                          incarnation);
    }
    worker *wk = &c->workers[w];
    sx_status st = SX_OK;
    bool newest = !heard->seq || heard->seq > wk->hb_seq; /* else late or duplicated */
    if (newest) {
        wk->hb_seq = heard->seq ? heard->seq : wk->hb_seq;
        wk->heartbeated = true;
        wk->known_version = known_version;
        st = renew_locked(c, wk, heard, now_ms, err);
    }
    if (st == SX_OK && newest) {
        wk->reports = sx_realloc(wk->reports, (nreports + 1) * sizeof(*wk->reports));
        wk->nreports = nreports;
        for (size_t i = 0; i < nreports; i++)
            wk->reports[i] = *reports[i]; /* no pointers inside beyond the descriptor */
    }
    if (st == SX_OK && newest)
        salts_activate_locked(c, now_ms);
    if (st == SX_OK && known_version != c->version)
        *map = acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return st;
}

sx_status sx_coord_leave(sx_coord *c, const char *id, uint64_t incarnation, sx_coord_map **map,
                         sx_err *err)
{
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    int32_t w = find_worker_locked(c, id);
    if (w < 0 || c->workers[w].incarnation != incarnation) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker %s incarnation %" PRIu64 " is not current: nothing to leave", id,
                          incarnation);
    }
    worker *wk = &c->workers[w];
    if (wk->alive) {
        wk->alive = false;
        SX_LOG(SX_LOG_INFO, "coord",
               "worker left id=%s index=%d incarnation=%" PRIu64
               " reason=\"stopping: its roles move now\"",
               wk->id, w, incarnation);
        assign_locked(c);
        commit_locked(c, "worker left");
    }
    *map = acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

void sx_coord_tick(sx_coord *c, uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    if (now_ms > c->last_tick_ms)
        c->last_tick_ms = now_ms;
    bool died = false;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        worker *wk = &c->workers[i];
        if (wk->alive && now_ms > wk->lease_deadline_ms) {
            wk->alive = false;
            died = true;
            SX_LOG(SX_LOG_WARN, "coord",
                   "worker dead id=%s index=%u reason=\"lease expired %" PRIu64 " ms ago\"", wk->id,
                   i, now_ms - wk->lease_deadline_ms);
        }
    }
    if (died) {
        assign_locked(c);
        commit_locked(c, "lease expired");
    }
    pthread_mutex_unlock(&c->mu);
}

/* Every member of ch's ISR is the live process the leader verified. */
static sx_status members_verified_locked(const sx_coord *c, const sx_coord_isr_change *ch,
                                         sx_err *err)
{
    if (ch->nincarnations != ch->nisr)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "incarnations: %zu given for %zu isr members (one each)",
                          ch->nincarnations, ch->nisr);
    for (size_t i = 0; i < ch->nisr; i++) {
        int32_t w = ch->isr[i];
        if (w < 0 || (size_t)w >= c->nworkers)
            continue; /* not a replica: sx_clustermap_change_isr names it */
        const worker *wk = &c->workers[w];
        if (!wk->alive || wk->incarnation != ch->incarnations[i])
            return sx_err_set(err, SX_FAILED_PRECONDITION,
                              "isr change of partition %u: worker %d is %s%" PRIu64
                              ", not incarnation %" PRIu64 " as the leader verified",
                              ch->partition, w, wk->alive ? "incarnation " : "dead, was ",
                              wk->incarnation, ch->incarnations[i]);
    }
    return SX_OK;
}

sx_status sx_coord_change_isr(sx_coord *c, const char *id, const sx_coord_isr_change *ch,
                              sx_coord_map **map, sx_err *err)
{
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    sx_status st = SX_OK;
    int32_t w = find_worker_locked(c, id);
    uint32_t partition = ch->partition;
    if (partition >= c->set.partitions) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "partition: %u is outside 0..%u", partition,
                        c->set.partitions - 1);
    } else if (w < 0 || !c->workers[w].alive || c->parts[partition].leader != w) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker %s does not lead partition %u at epoch %" PRIu64, id, partition,
                        c->parts[partition].epoch);
    } else if (ch->nisr > SX_MAX_REPLICAS) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "isr: more than %d members", SX_MAX_REPLICAS);
    } else if ((st = members_verified_locked(c, ch, err)) == SX_OK) {
        sx_log_part next = c->parts[partition];
        st = sx_clustermap_change_isr(&next, ch->epoch, ch->isr_version, ch->isr,
                                      (uint32_t)ch->nisr, err);
        if (st == SX_OK) {
            const sx_log_part *was = &c->parts[partition];
            sx_clustermap_track_elr(&next, was->isr, was->nisr, c->set.min_isr);
            c->parts[partition] = next;
            assign_locked(c); /* a grown isr may let leadership spread out */
            commit_locked(c, "isr change");
            *map = acquire_locked(c);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* ----------------------------------------------------------- the catalog -- */

static index_entry *find_index_locked(sx_coord *c, const char *name)
{
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (strcmp(c->indexes[i].name, name) == 0)
            return &c->indexes[i];
    return NULL;
}

static index_entry *find_index_id_locked(sx_coord *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (c->indexes[i].id == id)
            return &c->indexes[i];
    return NULL;
}

sx_status sx_coord_report_backfill(sx_coord *c, const char *id, uint64_t index_id,
                                   uint32_t partition, uint64_t epoch,
                                   Shardex__V1__IndexState *state, sx_err *err)
{
    pthread_mutex_lock(&c->mu);
    sx_status st = SX_OK;
    index_entry *e = NULL;
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (c->indexes[i].id == index_id)
            e = &c->indexes[i];
    int32_t w = find_worker_locked(c, id);
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index id %" PRIu64 " does not exist (dropped?)",
                        index_id);
    } else if (partition >= c->set.partitions) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "partition: %u is outside 0..%u", partition,
                        c->set.partitions - 1);
    } else if (w < 0 || c->parts[partition].leader != w || c->parts[partition].epoch != epoch) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker %s is not the leader of partition %u at epoch %" PRIu64, id,
                        partition, epoch);
    } else {
        *state = e->state;
        if (!e->backfilled[partition]) {
            e->backfilled[partition] = true;
            uint32_t done = 0;
            for (uint32_t p = 0; p < c->set.partitions; p++)
                done += e->backfilled[p];
            if (done == c->set.partitions) {
                e->state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
                SX_LOG(SX_LOG_INFO, "coord", "index ready name=%s id=%" PRIu64, e->name, e->id);
            }
            *state = e->state;
            commit_locked(c, "backfill reported");
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SX_INDEX_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* Mistyped documents of index e: the sum of its partitions' leaders' reports. */
static uint64_t mistyped_locked(const sx_coord *c, const index_entry *e)
{
    uint64_t n = 0;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        int32_t l = c->parts[p].leader;
        if (l < 0)
            continue;
        const worker *wk = &c->workers[l];
        for (size_t i = 0; i < wk->nixreports; i++)
            if (wk->ixreports[i].index_id == e->id && wk->ixreports[i].partition == p)
                n += wk->ixreports[i].mistyped_docs;
    }
    return n;
}

static Shardex__V1__Value *value_in_arena(sx_arena *a, const Shardex__V1__Value *v)
{
    Shardex__V1__Value *o = sx_arena_alloc(a, sizeof(*o));
    *o = *v;
    if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        o->s = sx_arena_strdup(a, v->s ? v->s : "");
    return o;
}

/* e's routing with its splits (done_only: those swapped in), borrowing from
 * e and spec (which spec_partitioning filled). */
static void def_of(const index_entry *e, Shardex__V1__IndexSpec *spec, bool done_only,
                   sx_ixkey_def *d)
{
    sx_ixkey_def_from_spec(d, e->id, spec);
    d->layout = e->osplits;
    d->nlayout = e->nosplits;
    if (done_only && d->nlayout && !e->osplits[d->nlayout - 1]->done)
        d->nlayout--;
    d->salts = e->osalts;
    d->nsalts = e->nosalts;
}

/* Index e's backfill progress into info: the sums of its partitions'
 * leaders' reports, and the time left at their summed rate. */
static void progress_locked(const sx_coord *c, const index_entry *e, Shardex__V1__IndexInfo *info)
{
    uint64_t left = 0;
    double rate = 0;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        int32_t l = c->parts[p].leader;
        if (l < 0)
            continue;
        const worker *wk = &c->workers[l];
        for (size_t i = 0; i < wk->nixreports; i++) {
            const Shardex__Internal__V1__IndexReport *r = &wk->ixreports[i];
            if (r->index_id != e->id || r->partition != p)
                continue;
            info->backfill_done_docs += r->backfill_done_docs;
            info->backfill_total_docs += r->backfill_total_docs;
            if (r->backfilling) {
                left += r->backfill_total_docs > r->backfill_done_docs
                            ? r->backfill_total_docs - r->backfill_done_docs
                            : 0;
                rate += r->backfill_docs_per_s;
            }
        }
    }
    if (e->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING && left && rate > 0)
        info->eta_seconds = (double)left / rate;
}

static Shardex__V1__IndexInfo *info_of(const sx_coord *c, const index_entry *e, sx_arena *a)
{
    Shardex__V1__IndexInfo *info = sx_arena_alloc(a, sizeof(*info));
    shardex__v1__index_info__init(info);
    Shardex__V1__IndexSpec *spec = sx_arena_alloc(a, sizeof(*spec));
    shardex__v1__index_spec__init(spec);
    spec->name = sx_arena_strdup(a, e->name);
    spec->field = sx_arena_strdup(a, e->field);
    spec->type = e->type;
    spec->local = e->local;
    spec->global = e->global;
    spec->term_partitions = e->term_partitions;
    spec_partitioning(spec, e);
    info->spec = spec;
    info->state = e->state;
    info->mistyped_docs = mistyped_locked(c, e);
    if (e->nosplits) {
        sx_ixkey_def d;
        def_of(e, spec, true, &d);
        uint32_t count = ix_terms(e);
        info->term_layout = sx_arena_alloc(a, (count + 1) * sizeof(*info->term_layout));
        const Shardex__V1__Value **lower = sx_arena_alloc(a, (count + 1) * sizeof(*lower));
        info->n_term_layout = sx_ixkey_layout_order(&d, info->term_layout, lower);
        info->layout_bounds = sx_arena_alloc(a, (count + 1) * sizeof(*info->layout_bounds));
        for (size_t i = 1; i < info->n_term_layout; i++) /* values in arena: e may change */
            info->layout_bounds[info->n_layout_bounds++] = value_in_arena(a, lower[i]);
        bool last_done = e->osplits[e->nosplits - 1]->done;
        info->splits_in_progress = last_done ? 0 : 1;
        info->splits_done = (uint32_t)e->nosplits - info->splits_in_progress;
    }
    progress_locked(c, e, info);
    info->hot_values = sx_arena_alloc(a, (e->nosalts + 1) * sizeof(*info->hot_values));
    for (size_t i = 0; i < e->nosalts; i++) {
        Shardex__V1__HotValue *h = sx_arena_alloc(a, sizeof(*h));
        shardex__v1__hot_value__init(h);
        h->value = value_in_arena(a, e->osalts[i]->value);
        h->ways = e->osalts[i]->ways;
        h->share = e->salt_share ? e->salt_share[i] : 0;
        info->hot_values[info->n_hot_values++] = h;
    }
    return info;
}

sx_status sx_coord_create_index(sx_coord *c, const Shardex__V1__IndexSpec *spec, sx_arena *arena,
                                Shardex__V1__IndexInfo **info, sx_err *err)
{
    *info = NULL;
    if (!spec)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec: required");
    if (!valid_name(spec->name))
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec.name: must be 1..%d bytes of letters, digits, '_', '-' or '.'",
                          SX_INDEX_NAME_MAX);
    size_t flen = strlen(spec->field);
    if (flen < 1 || flen > SX_INDEX_NAME_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec.field: must be 1..%d bytes",
                          SX_INDEX_NAME_MAX);
    if (spec->type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING &&
        spec->type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec.type: must be VALUE_TYPE_STRING or VALUE_TYPE_INT");
    if (!spec->local && !spec->global)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec: an index must be kept LOCAL, GLOBAL or both");
    if (spec->term_partitions > SX_MAX_TERM_PARTITIONS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec.term_partitions: %u is above %u",
                          spec->term_partitions, SX_MAX_TERM_PARTITIONS);
    char msg[160];
    if (!sx_ixkey_check_partitioning(spec, SX_MAX_TERM_PARTITIONS, msg, sizeof(msg)))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    pthread_mutex_lock(&c->mu);
    if (find_index_locked(c, spec->name)) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_ALREADY_EXISTS, "index \"%s\" already exists", spec->name);
    }
    c->indexes = sx_realloc(c->indexes, (c->nindexes + 1) * sizeof(*c->indexes));
    index_entry *e = &c->indexes[c->nindexes++];
    memset(e, 0, sizeof(*e));
    e->name = sx_strdup(spec->name);
    e->field = sx_strdup(spec->field);
    e->type = spec->type;
    e->local = spec->local;
    e->global = spec->global;
    copy_partitioning(e, spec);
    e->state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
    e->id = c->next_index_id++;
    e->backfilled = sx_calloc(c->set.partitions, sizeof(bool));
    if (e->global) {
        e->term_partitions = e->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE
                                 ? (uint32_t)e->nsplits + 1
                             : spec->term_partitions ? spec->term_partitions
                                                     : c->set.term_partitions;
        e->first_term = c->nterms;
        c->terms = sx_realloc(c->terms, (c->nterms + e->term_partitions) * sizeof(*c->terms));
        for (uint32_t t = 0; t < e->term_partitions; t++)
            c->terms[c->nterms + t] = (sx_term_part){.epoch = 0, .owner = -1};
        c->nterms += e->term_partitions;
    }
    assign_locked(c);
    commit_locked(c, "index created");
    SX_LOG(SX_LOG_INFO, "coord",
           "index created name=%s field=%s id=%" PRIu64
           " local=%d global=%d term_partitions=%u range=%d",
           e->name, e->field, e->id, e->local, e->global, e->term_partitions,
           e->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE);
    *info = info_of(c, e, arena);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

sx_status sx_coord_drop_index(sx_coord *c, const char *name, sx_err *err)
{
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name);
    if (!e) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name);
    }
    uint32_t first = e->first_term, m = ix_terms(e);
    if (e->global) {
        memmove(&c->terms[first], &c->terms[first + m],
                (c->nterms - first - m) * sizeof(*c->terms));
        c->nterms -= m;
        for (uint32_t i = 0; i < c->nindexes; i++)
            if (c->indexes[i].global && c->indexes[i].first_term > first)
                c->indexes[i].first_term -= m;
    }
    SX_LOG(SX_LOG_INFO, "coord", "index dropped name=%s id=%" PRIu64, e->name, e->id);
    free_index(e);
    size_t at = (size_t)(e - c->indexes);
    memmove(e, e + 1, (c->nindexes - at - 1) * sizeof(*e));
    c->nindexes--;
    assign_locked(c); /* owners rebalance over what is left */
    commit_locked(c, "index dropped");
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

/* ---------------------------------------------------------- online split -- */

/* The owner's report of term partition t of e at its current epoch. */
static const term_report *term_report_locked(const sx_coord *c, const index_entry *e, uint32_t t)
{
    const sx_term_part *tp = &c->terms[e->first_term + t];
    if (tp->owner < 0)
        return NULL;
    const worker *ow = &c->workers[tp->owner];
    for (size_t r = 0; ow->alive && r < ow->ntreports; r++) {
        const term_report *tr = &ow->treports[r];
        if (tr->index_id == e->id && tr->t == t && tr->epoch == tp->epoch)
            return tr;
    }
    return NULL;
}

/* Records split (seq next) of t at `at` in e: two new term partitions after
 * e's others, owners assigned, one new map version. The leaders append the
 * marker to their partitions when they see it (ixlead.c). */
static void split_start_locked(sx_coord *c, index_entry *e, uint32_t t,
                               const Shardex__V1__Value *at, const char *why)
{
    uint32_t lo = ix_terms(e), pos = e->first_term + lo;
    c->terms = sx_realloc(c->terms, (c->nterms + 2) * sizeof(*c->terms));
    memmove(&c->terms[pos + 2], &c->terms[pos], (c->nterms - pos) * sizeof(*c->terms));
    c->terms[pos] = c->terms[pos + 1] = (sx_term_part){.epoch = 0, .owner = -1};
    c->nterms += 2;
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (&c->indexes[i] != e && c->indexes[i].global && c->indexes[i].first_term >= pos)
            c->indexes[i].first_term += 2;
    Shardex__Internal__V1__IndexSplit sp = SHARDEX__INTERNAL__V1__INDEX_SPLIT__INIT;
    sp.index_id = e->id;
    sp.seq = (uint32_t)e->nosplits + 1;
    sp.term = t;
    sp.at = (Shardex__V1__Value *)at;
    sp.lo = lo;
    sp.hi = lo + 1;
    e->osplits = sx_realloc(e->osplits, (e->nosplits + 1) * sizeof(*e->osplits));
    e->osplits[e->nosplits++] = split_dup(&sp);
    assign_locked(c);
    commit_locked(c, why);
    SX_LOG(SX_LOG_INFO, "coord",
           "index split started name=%s id=%" PRIu64 " seq=%u term=%u lo=%u hi=%u (%s)", e->name,
           e->id, sp.seq, t, lo, lo + 1, why);
}

/* Why t of e cannot split now (FAILED_PRECONDITION), or SX_OK. */
static sx_status split_allowed_locked(const index_entry *e, sx_err *err)
{
    if (e->nosplits && !e->osplits[e->nosplits - 1]->done)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\": a split is in progress (term partition %u); one at a time",
                          e->name, e->osplits[e->nosplits - 1]->term);
    if (e->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\" is still building; split it once it is READY", e->name);
    if (e->term_partitions + e->nosplits + 1 > SX_MAX_TERM_PARTITIONS)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\" has %u term partitions, the most (%u)", e->name,
                          e->term_partitions + (uint32_t)e->nosplits, SX_MAX_TERM_PARTITIONS);
    return SX_OK;
}

sx_status sx_coord_split_index(sx_coord *c, const char *name, uint32_t t,
                               const Shardex__V1__Value *at, sx_arena *arena,
                               Shardex__V1__IndexInfo **info, sx_err *err)
{
    *info = NULL;
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name ? name : "");
    sx_status st = SX_OK;
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name ? name : "");
        goto out;
    }
    if (!e->global || e->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT,
                        "name: index \"%s\" is not range-partitioned (GLOBAL, --partitioning "
                        "range)",
                        e->name);
        goto out;
    }
    if ((st = split_allowed_locked(e, err)) != SX_OK)
        goto out;
    Shardex__V1__IndexSpec spec;
    spec_view(e, &spec);
    sx_ixkey_def d;
    def_of(e, &spec, false, &d);
    const term_report *tr = NULL;
    if (!at || at->kind_case == SHARDEX__V1__VALUE__KIND__NOT_SET) {
        tr = t < ix_terms(e) ? term_report_locked(c, e, t) : NULL;
        at = tr ? tr->median : NULL;
    }
    char msg[200];
    if (!at && t < ix_terms(e) && !c->terms[e->first_term + t].retired) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "at: term partition %u of \"%s\" has no median yet (its owner counts "
                        "its entries now and then); give a value",
                        t, e->name);
    } else if (!sx_ixkey_check_split(&d, t, at, msg, sizeof(msg))) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    } else {
        split_start_locked(c, e, t, at, "index split asked");
        *info = info_of(c, e, arena);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* Records salt (seq next) of value v over `ways` term partitions (chosen
 * by sx_ixkey_plan_salt) in e: one new map version; the leaders append the
 * marker when they see it (ixlead.c). No partition is added or rebuilt. */
static void salt_record_locked(sx_coord *c, index_entry *e, const Shardex__V1__Value *v,
                               uint32_t ways, uint32_t *terms, const char *why)
{
    Shardex__Internal__V1__IndexSalt sa = SHARDEX__INTERNAL__V1__INDEX_SALT__INIT;
    sa.index_id = e->id;
    sa.seq = (uint32_t)e->nosalts + 1;
    sa.value = (Shardex__V1__Value *)v;
    sa.ways = ways;
    sa.n_terms = ways;
    sa.terms = terms;
    sa.active = false; /* salts_activate_locked */
    e->osalts = sx_realloc(e->osalts, (e->nosalts + 1) * sizeof(*e->osalts));
    e->osalts[e->nosalts++] = salt_dup(&sa);
    e->salt_share = sx_realloc(e->salt_share, e->nosalts * sizeof(*e->salt_share));
    e->salt_share[e->nosalts - 1] = 0;
    e->salt_announced = sx_realloc(e->salt_announced, e->nosalts * sizeof(*e->salt_announced));
    commit_locked(c, why);
    e->salt_announced[e->nosalts - 1] = c->version;
    SX_LOG(SX_LOG_INFO, "coord",
           "index value salted name=%s id=%" PRIu64 " seq=%u ways=%u first_term=%u (%s)", e->name,
           e->id, sa.seq, ways, terms[0], why);
}

/* The ways of a salt asked with `ways` (0: the default, capped at the
 * serving partitions of e). */
static uint32_t salt_ways_locked(const sx_coord *c, const index_entry *e, uint32_t ways)
{
    if (ways)
        return ways;
    uint32_t serving = e->term_partitions + (uint32_t)e->nosplits; /* each split adds one */
    if (e->nosplits && !e->osplits[e->nosplits - 1]->done)
        serving--;
    uint32_t k = c->hot_value_ways ? c->hot_value_ways : SX_HOT_VALUE_WAYS_DEFAULT;
    return k < serving ? k : serving;
}

sx_status sx_coord_salt_index(sx_coord *c, const char *name, const Shardex__V1__Value *value,
                              uint32_t ways, sx_arena *arena, Shardex__V1__IndexInfo **info,
                              sx_err *err)
{
    *info = NULL;
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name ? name : "");
    sx_status st = SX_OK;
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name ? name : "");
        goto out;
    }
    if (e->nosalts >= SX_MAX_SALTS_PER_INDEX) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "value: index \"%s\" has %zu salted values, the most (%u)", e->name,
                        e->nosalts, SX_MAX_SALTS_PER_INDEX);
        goto out;
    }
    Shardex__V1__IndexSpec spec;
    spec_view(e, &spec);
    sx_ixkey_def d;
    def_of(e, &spec, true, &d);
    uint32_t k = e->global ? salt_ways_locked(c, e, ways) : 0;
    uint32_t *terms = sx_calloc(k + 1, sizeof(*terms));
    char msg[200];
    if (!sx_ixkey_plan_salt(&d, value, k, terms, msg, sizeof(msg))) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    } else {
        salt_record_locked(c, e, value, k, terms, "index salt asked");
        *info = info_of(c, e, arena);
    }
    free(terms);
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* Hot values (docs/indexes.md "Hot values"), at every heartbeat's index
 * reports: an index's changes over its partitions' leaders' windows, and each
 * value's share of them (the sum of the counts reported for it over the sum
 * of the windows: a lower bound, as the sketch's counts are). A salted
 * value's share is kept for display; the first unsalted one whose share
 * reaches --hot-value-share, out of at least --hot-value-min-changes, is
 * salted with the default ways (READY indexes with 2 or more serving term
 * partitions; one salt per step). */
static void hot_step_locked(sx_coord *c)
{
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        if (!e->global || !e->hot)
            continue;
        uint64_t total = 0;
        for (size_t p = 0; p < e->hot_parts; p++)
            total += e->hot[p].window;
        if (!total)
            continue;
        const Shardex__V1__Value *cand = NULL;
        double cand_share = 0;
        for (size_t p = 0; p < e->hot_parts; p++) {
            for (size_t k = 0; k < e->hot[p].n; k++) {
                const Shardex__V1__Value *v = e->hot[p].v[k];
                uint64_t sum = 0;
                for (size_t q = 0; q < e->hot_parts; q++)
                    for (size_t j = 0; j < e->hot[q].n; j++)
                        if (e->hot[q].v[j]->kind_case == v->kind_case &&
                            sx_ixkey_value_cmp(v->kind_case == SHARDEX__V1__VALUE__KIND_I,
                                               e->hot[q].v[j], v) == 0)
                            sum += e->hot[q].count[j];
                double share = (double)sum / (double)total;
                bool salted = false;
                for (size_t s = 0; s < e->nosalts; s++)
                    if (e->osalts[s]->value->kind_case == v->kind_case &&
                        sx_ixkey_value_cmp(v->kind_case == SHARDEX__V1__VALUE__KIND_I,
                                           e->osalts[s]->value, v) == 0) {
                        salted = true;
                        e->salt_share[s] = share;
                    }
                if (!salted && share > cand_share) {
                    cand = v;
                    cand_share = share;
                }
            }
        }
        if (!cand || c->hot_value_share <= 0 || cand_share < c->hot_value_share ||
            total < c->hot_value_min_changes ||
            e->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY ||
            e->nosalts >= SX_MAX_SALTS_PER_INDEX)
            continue;
        Shardex__V1__IndexSpec spec;
        spec_view(e, &spec);
        sx_ixkey_def d;
        def_of(e, &spec, true, &d);
        uint32_t k = salt_ways_locked(c, e, 0);
        uint32_t *terms = sx_calloc(k + 1, sizeof(*terms));
        char msg[200];
        Shardex__V1__Value *v = sx_ixkey_value_dup(cand); /* e->hot may change below */
        if (sx_ixkey_plan_salt(&d, v, k, terms, msg, sizeof(msg))) {
            SX_LOG(SX_LOG_INFO, "coord",
                   "index name=%s hot value share=%.3f of %" PRIu64 " changes", e->name, cand_share,
                   total);
            salt_record_locked(c, e, v, k, terms, "hot value");
            e->salt_share[e->nosalts - 1] = cand_share;
        }
        sx_ixkey_value_free(v);
        free(terms);
    }
}

/* Why tr's term partition is due for a split (into why), or false. */
static bool split_due(const sx_coord *c, const term_report *tr, uint64_t now_ms, char *why,
                      size_t cap)
{
    if (c->term_split_entries && tr->entries > c->term_split_entries) {
        snprintf(why, cap,
                 "term partition of %" PRIu64 " entries, above --term-split-entries %" PRIu64,
                 tr->entries, c->term_split_entries);
        return true;
    }
    if (c->term_split_load && tr->load_above && now_ms >= tr->load_since_ms &&
        now_ms - tr->load_since_ms >= c->term_split_load_window_ms) {
        snprintf(why, cap,
                 "term partition at %.1f writes/s + %.1f reads/s, above --term-split-load %" PRIu64
                 " for %" PRIu64 " ms",
                 tr->writes_per_s, tr->reads_per_s, c->term_split_load, now_ms - tr->load_since_ms);
        return true;
    }
    return false;
}

/* The split state machine, run at every heartbeat's index reports:
 *   in progress --both shadows' owners report them ready at their current
 *     epoch (every wm[p] > 0, which for a shadow means wm[p] >= the marker's
 *     offset C_p: its first shipment from p is a rebuild at or after C_p)-->
 *     done: the parent is retired (owner -1: its owner wipes it) in the same
 *     map version that makes the shadows serve;
 *   no split in progress, READY, a serving term partition whose owner
 *     counted more than term_split_entries entries, or whose load has been
 *     above term_split_load for term_split_load_window_ms (split_due)
 *     --> a split at its median (the first such partition in term order).
 */
static void splits_step_locked(sx_coord *c, uint64_t now_ms)
{
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        if (!e->global || e->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE)
            continue;
        Shardex__Internal__V1__IndexSplit *last = e->nosplits ? e->osplits[e->nosplits - 1] : NULL;
        if (last && !last->done) {
            const term_report *a = term_report_locked(c, e, last->lo);
            const term_report *b = term_report_locked(c, e, last->hi);
            if (!a || !b || !a->ready || !b->ready)
                continue;
            last->done = true;
            sx_term_part *tp = &c->terms[e->first_term + last->term];
            tp->retired = true;
            if (tp->owner >= 0) {
                tp->owner = -1;
                tp->epoch++;
            }
            commit_locked(c, "index split swapped");
            SX_LOG(SX_LOG_INFO, "coord",
                   "index split done name=%s id=%" PRIu64
                   " seq=%u term=%u retired, %u and %u serve",
                   e->name, e->id, last->seq, last->term, last->lo, last->hi);
            continue;
        }
        if ((!c->term_split_entries && !c->term_split_load) ||
            split_allowed_locked(e, &(sx_err){0}) != SX_OK)
            continue;
        for (uint32_t t = 0; t < ix_terms(e); t++) {
            if (c->terms[e->first_term + t].retired)
                continue;
            const term_report *tr = term_report_locked(c, e, t);
            char why[200];
            if (!tr || !tr->ready || !tr->median || !split_due(c, tr, now_ms, why, sizeof(why)))
                continue;
            Shardex__V1__IndexSpec spec;
            spec_view(e, &spec);
            sx_ixkey_def d;
            def_of(e, &spec, false, &d);
            char msg[200];
            if (!sx_ixkey_check_split(&d, t, tr->median, msg, sizeof(msg)))
                continue; /* e.g. every entry holds one value: nothing to split at */
            Shardex__V1__Value *at = sx_ixkey_value_dup(tr->median);
            split_start_locked(c, e, t, at, why);
            sx_ixkey_value_free(at);
            break;
        }
    }
}

void sx_coord_list_indexes(sx_coord *c, sx_arena *arena, Shardex__V1__ListIndexesResponse *out)
{
    pthread_mutex_lock(&c->mu);
    out->n_indexes = c->nindexes;
    out->indexes = sx_arena_alloc(arena, (c->nindexes + 1) * sizeof(*out->indexes));
    for (uint32_t i = 0; i < c->nindexes; i++)
        out->indexes[i] = info_of(c, &c->indexes[i], arena);
    pthread_mutex_unlock(&c->mu);
}

/* --------------------------------------------------------------- status -- */

static const Shardex__Internal__V1__ReplicaReport *report_of(const worker *wk, uint32_t p)
{
    for (size_t i = 0; i < wk->nreports; i++)
        if (wk->reports[i].partition == p)
            return &wk->reports[i];
    return NULL;
}

/* Worker w as ClusterStatus shows it, with what it holds. */
static Shardex__V1__WorkerStatus *worker_status_locked(const sx_coord *c, uint32_t w,
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

sx_status sx_coord_drain(sx_coord *c, const char *id, bool cancel, uint64_t now_ms, sx_arena *arena,
                         Shardex__V1__WorkerStatus **out, sx_err *err)
{
    *out = NULL;
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    pthread_mutex_lock(&c->mu);
    int32_t w = find_worker_locked(c, id);
    sx_status st = SX_OK;
    if (w < 0) {
        st = sx_err_set(err, SX_NOT_FOUND, "worker_id: no worker \"%s\" has registered", id);
    } else if (c->workers[w].removed) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" was removed; it holds nothing", id);
    } else {
        worker *wk = &c->workers[w];
        if (wk->draining == cancel) {
            wk->draining = !cancel;
            SX_LOG(SX_LOG_INFO, "coord", "worker %s id=%s index=%d alive=%d",
                   cancel ? "undrained" : "draining", id, w, wk->alive);
            assign_locked(c);
            commit_locked(c, cancel ? "worker undrained" : "worker draining");
        }
        *out = worker_status_locked(c, (uint32_t)w, now_ms, arena);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

sx_status sx_coord_remove(sx_coord *c, const char *id, bool force, sx_arena *arena, uint32_t **lost,
                          size_t *nlost, sx_err *err)
{
    *lost = NULL;
    *nlost = 0;
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    pthread_mutex_lock(&c->mu);
    int32_t w = find_worker_locked(c, id);
    sx_status st = SX_OK;
    if (w < 0) {
        st = sx_err_set(err, SX_NOT_FOUND, "worker_id: no worker \"%s\" has registered", id);
        goto out;
    }
    worker *wk = &c->workers[w];
    if (wk->removed)
        goto out;
    if (wk->alive) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" is alive (incarnation %" PRIu64
                        "); only a dead worker can be removed: stop it first, or drain it",
                        id, wk->incarnation);
        goto out;
    }
    uint32_t *sole = sx_arena_alloc(arena, (c->set.partitions + 1) * sizeof(*sole));
    size_t nsole = 0;
    char which[256] = "";
    size_t n = 0;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        if (!sx_clustermap_sole_holder(&c->parts[p], w))
            continue;
        sole[nsole++] = p;
        if (n < sizeof(which))
            n += (size_t)snprintf(which + n, sizeof(which) - n, "%s%u", nsole > 1 ? "," : "", p);
    }
    if (nsole && !force) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" is the only replica known to hold the committed "
                        "entries of %zu partition(s) (%s); bring it back, or remove it with force "
                        "and lose them",
                        id, nsole, which);
        goto out;
    }
    wk->removed = true;
    wk->draining = false;
    if (nsole)
        SX_LOG(SX_LOG_ERROR, "coord",
               "worker removed by force id=%s index=%d: the committed entries only it held are "
               "lost partitions=%s",
               id, w, which);
    else
        SX_LOG(SX_LOG_INFO, "coord", "worker removed id=%s index=%d", id, w);
    assign_locked(c);
    commit_locked(c, "worker removed");
    *lost = sole;
    *nlost = nsole;
out:
    pthread_mutex_unlock(&c->mu);
    return st;
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
        out->workers[i] = worker_status_locked(c, i, now_ms, a);
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
        out->indexes[i] = info_of(c, &c->indexes[i], a);
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
