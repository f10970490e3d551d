/* partmap.c: see partmap.h. Every bounds check on the map's indexes is made
 * once, in check(), so that the lookups can trust the message. */
#include "partmap.h"

#include "clustermap.h"
#include "mem.h"
#include "rpc.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct sx_partmap {
    _Atomic int refs;
    ProtobufCMessage *owner;
    const Shardex__Internal__V1__ClusterMap *m;
    uint32_t P;
    int32_t self;
};

static sx_status check_workers(const Shardex__Internal__V1__ClusterMap *m, const int32_t *ws,
                               size_t n, const char *what, uint32_t p, sx_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (ws[i] < 0 || (size_t)ws[i] >= m->n_workers)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "cluster map %" PRIu64 ": partition %u: %s names worker %d of %zu",
                              m->version, p, what, ws[i], m->n_workers);
    return SX_OK;
}

static sx_status check_partition(const Shardex__Internal__V1__ClusterMap *m, uint32_t p,
                                 sx_err *err)
{
    const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
    if (!lp)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "cluster map %" PRIu64 ": partition %u: unset",
                          m->version, p);
    if (lp->n_replicas > SX_MAX_REPLICAS || lp->n_isr > lp->n_replicas)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "cluster map %" PRIu64 ": partition %u: %zu replicas and %zu in the ISR "
                          "(at most %d replicas, the ISR among them)",
                          m->version, p, lp->n_replicas, lp->n_isr, SX_MAX_REPLICAS);
    sx_status st = check_workers(m, lp->replicas, lp->n_replicas, "replicas", p, err);
    if (st == SX_OK)
        st = check_workers(m, lp->isr, lp->n_isr, "isr", p, err);
    if (st == SX_OK && lp->leader >= 0)
        st = check_workers(m, &lp->leader, 1, "leader", p, err);
    return st;
}

static sx_status check(const Shardex__Internal__V1__ClusterMap *m, sx_err *err)
{
    if (!m->settings || m->settings->partitions != m->n_partitions)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "cluster map %" PRIu64 ": %zu log partitions, settings say %u",
                          m->version, m->n_partitions, m->settings ? m->settings->partitions : 0);
    for (size_t w = 0; w < m->n_workers; w++)
        if (!m->workers[w] || !m->workers[w]->id || !m->workers[w]->address)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "cluster map %" PRIu64 ": worker %zu: unset", m->version, w);
    for (uint32_t p = 0; p < m->n_partitions; p++) {
        sx_status st = check_partition(m, p, err);
        if (st != SX_OK)
            return st;
    }
    for (size_t t = 0; t < m->n_terms; t++) {
        const Shardex__Internal__V1__TermPartition *tp = m->terms[t];
        if (!tp || tp->owner >= (int32_t)m->n_workers)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "cluster map %" PRIu64 ": term partition slot %zu names no worker",
                              m->version, t);
    }
    return sx_partmap_check_indexes(m, err);
}

sx_status sx_partmap_check_indexes(const Shardex__Internal__V1__ClusterMap *m, sx_err *err)
{
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (e && e->spec && e->spec->global &&
            (uint64_t)e->first_term + sx_partmap_term_count(e) > m->n_terms)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "cluster map %" PRIu64 ": index \"%s\": term partitions %u..%" PRIu64
                              " beyond the map's %zu",
                              m->version, e->spec->name, e->first_term,
                              (uint64_t)e->first_term + sx_partmap_term_count(e), m->n_terms);
        /* Splits as coord_index.c makes them, so that routing may trust them. */
        for (size_t k = 0; e && e->spec && k < e->n_splits; k++) {
            const Shardex__Internal__V1__IndexSplit *sp = e->splits[k];
            uint32_t lo = e->spec->term_partitions + 2 * (uint32_t)k;
            if (!sp || !sp->at || sp->seq != k + 1 || sp->lo != lo || sp->hi != lo + 1 ||
                sp->term >= lo || (!sp->done && k + 1 < e->n_splits) ||
                e->spec->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE)
                return sx_err_set(err, SX_INVALID_ARGUMENT,
                                  "cluster map %" PRIu64 ": index \"%s\": split %zu is malformed",
                                  m->version, e->spec->name, k + 1);
        }
        /* Salts as coord_index.c makes them: routing indexes terms[] by slot. */
        for (size_t k = 0; e && e->spec && k < e->n_salts; k++) {
            const Shardex__Internal__V1__IndexSalt *sa = e->salts[k];
            bool ok = sa && sa->value && sa->seq == k + 1 && sa->ways >= 2 &&
                      sa->n_terms == sa->ways && e->spec->global;
            for (size_t j = 0; ok && j < sa->n_terms; j++)
                ok = sa->terms[j] < sx_partmap_term_count(e);
            if (!ok)
                return sx_err_set(err, SX_INVALID_ARGUMENT,
                                  "cluster map %" PRIu64 ": index \"%s\": salt %zu is malformed",
                                  m->version, e->spec->name, k + 1);
        }
    }
    return SX_OK;
}

sx_status sx_partmap_create(ProtobufCMessage *owner, const Shardex__Internal__V1__ClusterMap *map,
                            const char *self_id, sx_partmap **out, sx_err *err)
{
    *out = NULL;
    sx_status st = check(map, err);
    if (st != SX_OK) {
        sx_rpc_free(owner);
        return st;
    }
    sx_partmap *pm = sx_calloc(1, sizeof(*pm));
    atomic_init(&pm->refs, 1);
    pm->owner = owner;
    pm->m = map;
    pm->P = map->settings->partitions;
    pm->self = self_id ? sx_partmap_worker_named(pm, self_id) : -1;
    *out = pm;
    return SX_OK;
}

sx_partmap *sx_partmap_acquire(sx_partmap *pm)
{
    if (pm)
        atomic_fetch_add(&pm->refs, 1);
    return pm;
}

void sx_partmap_release(void *arg)
{
    sx_partmap *pm = arg;
    if (pm && atomic_fetch_sub(&pm->refs, 1) == 1) {
        sx_rpc_free(pm->owner);
        free(pm);
    }
}

const Shardex__Internal__V1__ClusterMap *sx_partmap_msg(const sx_partmap *pm)
{
    return pm->m;
}

uint64_t sx_partmap_version(const sx_partmap *pm)
{
    return pm->m->version;
}

uint32_t sx_partmap_partitions(const sx_partmap *pm)
{
    return pm->P;
}

uint32_t sx_partmap_min_isr(const sx_partmap *pm)
{
    return pm->m->settings->min_isr;
}

uint32_t sx_partmap_lease_ms(const sx_partmap *pm)
{
    return pm->m->lease_ms ? pm->m->lease_ms : SX_PARTMAP_DEFAULT_LEASE_MS;
}

uint64_t sx_partmap_attempt_ms(const sx_partmap *pm)
{
    return 2ull * sx_partmap_lease_ms(pm);
}

int32_t sx_partmap_self(const sx_partmap *pm)
{
    return pm->self;
}

const Shardex__Internal__V1__WorkerEntry *sx_partmap_worker(const sx_partmap *pm, int32_t w)
{
    return w >= 0 && (size_t)w < pm->m->n_workers ? pm->m->workers[w] : NULL;
}

int32_t sx_partmap_worker_named(const sx_partmap *pm, const char *id)
{
    for (size_t w = 0; w < pm->m->n_workers; w++)
        if (strcmp(pm->m->workers[w]->id, id) == 0)
            return (int32_t)w;
    return -1;
}

const Shardex__Internal__V1__LogPartition *sx_partmap_part(const sx_partmap *pm, uint32_t p)
{
    return p < pm->P ? pm->m->partitions[p] : NULL;
}

int32_t sx_partmap_leader(const sx_partmap *pm, uint32_t p)
{
    return p < pm->P ? pm->m->partitions[p]->leader : -1;
}

bool sx_partmap_leads(const sx_partmap *pm, uint32_t p)
{
    return pm->self >= 0 && sx_partmap_leader(pm, p) == pm->self;
}

bool sx_partmap_hosts(const sx_partmap *pm, uint32_t p, int32_t w)
{
    const Shardex__Internal__V1__LogPartition *lp = sx_partmap_part(pm, p);
    return lp && w >= 0 && sx_clustermap_has(lp->replicas, (uint32_t)lp->n_replicas, w);
}

bool sx_partmap_in_isr(const sx_partmap *pm, uint32_t p, int32_t w)
{
    const Shardex__Internal__V1__LogPartition *lp = sx_partmap_part(pm, p);
    return lp && w >= 0 && sx_clustermap_has(lp->isr, (uint32_t)lp->n_isr, w);
}

bool sx_partmap_may_drop(const sx_partmap *pm, uint32_t p, int32_t w)
{
    const Shardex__Internal__V1__LogPartition *lp = sx_partmap_part(pm, p);
    return lp && w >= 0 && !sx_partmap_hosts(pm, p, w) && !sx_partmap_in_isr(pm, p, w) &&
           !sx_clustermap_has(lp->elr, (uint32_t)lp->n_elr, w);
}

sx_status sx_partmap_leader_target(const sx_partmap *pm, uint32_t p, sx_partmap_target *out,
                                   sx_err *err)
{
    int32_t leader = sx_partmap_leader(pm, p);
    const Shardex__Internal__V1__WorkerEntry *w = sx_partmap_worker(pm, leader);
    if (!w || !w->alive)
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u has no live leader", p);
    *out = (sx_partmap_target){leader, w->address, pm->m->partitions[p]->epoch};
    return SX_OK;
}

const Shardex__Internal__V1__IndexEntry *sx_partmap_index(const sx_partmap *pm, uint64_t id)
{
    for (size_t i = 0; i < pm->m->n_indexes; i++)
        if (pm->m->indexes[i]->id == id && pm->m->indexes[i]->spec)
            return pm->m->indexes[i];
    return NULL;
}

const Shardex__Internal__V1__IndexEntry *sx_partmap_index_named(const sx_partmap *pm,
                                                                const char *name)
{
    for (size_t i = 0; i < pm->m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = pm->m->indexes[i];
        if (e->spec && e->spec->name && strcmp(e->spec->name, name) == 0)
            return e;
    }
    return NULL;
}

uint32_t sx_partmap_term_count(const Shardex__Internal__V1__IndexEntry *e)
{
    return e->spec->term_partitions + 2 * (uint32_t)e->n_splits;
}

void sx_partmap_def(const Shardex__Internal__V1__IndexEntry *e, bool done_only, sx_ixkey_def *d)
{
    sx_ixkey_def_from_spec(d, e->id, e->spec);
    d->layout = e->splits;
    d->nlayout = e->n_splits;
    d->salts = e->salts;
    d->nsalts = e->n_salts;
    if (done_only && d->nlayout && !e->splits[d->nlayout - 1]->done)
        d->nlayout--; /* check(): only the last may be unfinished */
}

const Shardex__Internal__V1__TermPartition *
sx_partmap_term(const sx_partmap *pm, const Shardex__Internal__V1__IndexEntry *e, uint32_t t)
{
    if (!e || !e->spec || !e->spec->global || t >= sx_partmap_term_count(e))
        return NULL;
    return pm->m->terms[e->first_term + t]; /* in range: check() */
}

sx_status sx_partmap_term_target(const sx_partmap *pm, const Shardex__Internal__V1__IndexEntry *e,
                                 uint32_t t, sx_partmap_target *out, sx_err *err)
{
    const Shardex__Internal__V1__TermPartition *tp = sx_partmap_term(pm, e, t);
    const char *name = e && e->spec ? e->spec->name : "?";
    if (!tp)
        return sx_err_set(err, SX_NOT_FOUND, "index \"%s\" has no term partition %u", name, t);
    const Shardex__Internal__V1__WorkerEntry *w = sx_partmap_worker(pm, tp->owner);
    if (!w || !w->alive)
        return sx_err_set(err, SX_UNAVAILABLE,
                          "term partition %u of index \"%s\" has no live owner", t, name);
    *out = (sx_partmap_target){tp->owner, w->address, tp->epoch};
    return SX_OK;
}
