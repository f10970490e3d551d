/* fuzz_clustermap.c: a ClusterMap as the daemons load it. Input: the packed
 * map, as a worker receives it from the coordinator and as the coordinator
 * reads it back from its metadata store.
 *
 * The worker's loader: sx_partmap_create (common/partmap.c), whose checks the
 * lookups rely on, then every lookup on what it accepted (ASan watches the
 * indexing). The coordinator's loader: the map turned into the sx_log_part
 * and sx_term_part arrays of common/clustermap.h with the bounds
 * coordinator/coord.c (load_locked, static there) applies, then
 * sx_clustermap_check, and the index entries' check it shares with the
 * workers (sx_partmap_check_indexes); on a map it accepts (and small enough
 * to stay fast), sx_assign with the map's live workers must give a map that still passes
 * sx_clustermap_check, and so must a lost store (sx_clustermap_store_lost).
 * And a map the coordinator accepts, the workers accept too.
 */
#include "fuzz.h"
#include "rpc.h"

#include "clustermap.h"
#include "mem.h"
#include "partmap.h"

#include <string.h>

/* The largest map assigned here (sx_assign is quadratic and more). */
#define MAX_ASSIGN_PARTS 64
#define MAX_ASSIGN_WORKERS 16
#define MAX_ASSIGN_TERMS 64

static void lookups(const sx_partmap *pm)
{
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(pm);
    uint32_t P = sx_partmap_partitions(pm);
    SX_FUZZ_CHECK(P == m->n_partitions);
    (void)sx_partmap_attempt_ms(pm);
    (void)sx_partmap_min_isr(pm);
    int32_t self = sx_partmap_self(pm);
    SX_FUZZ_CHECK(self == -1 || sx_partmap_worker(pm, self) != NULL);
    /* The first partitions (the rest are alike), the last, one past it. */
    for (uint32_t k = 0; k <= P && k < 66; k++) {
        uint32_t p = k < 64 ? k : P - 1 + (k - 64);
        sx_partmap_target t;
        (void)sx_partmap_leads(pm, p);
        for (int32_t w = -1; w <= (int32_t)m->n_workers && w < 8; w++) {
            (void)sx_partmap_hosts(pm, p, w);
            (void)sx_partmap_in_isr(pm, p, w);
        }
        if (sx_partmap_leader_target(pm, p, &t, NULL) == SX_OK)
            SX_FUZZ_CHECK(p < P && t.address && t.worker == sx_partmap_leader(pm, p));
    }
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        (void)sx_partmap_index(pm, e->id);
        if (e->spec && e->spec->name)
            SX_FUZZ_CHECK(sx_partmap_index_named(pm, e->spec->name) != NULL);
        uint32_t n = e->spec ? e->spec->term_partitions : 0;
        for (uint32_t t = 0; t <= n && t < 64; t++) {
            sx_partmap_target tt;
            (void)sx_partmap_term(pm, e, t);
            (void)sx_partmap_term_target(pm, e, t, &tt, NULL);
        }
    }
    (void)sx_partmap_worker_named(pm, "w1");
}

/* The coordinator's view of m, as load_locked builds it; false when it
 * refuses the map. */
static bool coord_load(const Shardex__Internal__V1__ClusterMap *m, sx_log_part **parts,
                       sx_term_part **terms)
{
    const Shardex__Internal__V1__ClusterSettings *s = m->settings;
    if (!s || s->partitions == 0 || m->n_partitions != s->partitions)
        return false;
    *parts = sx_calloc(s->partitions, sizeof(**parts));
    *terms = sx_calloc(m->n_terms + 1, sizeof(**terms));
    for (uint32_t p = 0; p < s->partitions; p++) {
        const Shardex__Internal__V1__LogPartition *o = m->partitions[p];
        sx_log_part *lp = &(*parts)[p];
        if (o->n_replicas > SX_MAX_REPLICAS || o->n_isr > SX_MAX_REPLICAS ||
            o->n_elr > SX_MAX_REPLICAS)
            return false;
        *lp = (sx_log_part){.epoch = o->epoch,
                            .isr_version = o->isr_version,
                            .leader = o->leader,
                            .nreplicas = (uint32_t)o->n_replicas,
                            .nisr = (uint32_t)o->n_isr,
                            .nelr = (uint32_t)o->n_elr};
        if (o->n_replicas)
            memcpy(lp->replicas, o->replicas, o->n_replicas * sizeof(int32_t));
        if (o->n_isr)
            memcpy(lp->isr, o->isr, o->n_isr * sizeof(int32_t));
        if (o->n_elr)
            memcpy(lp->elr, o->elr, o->n_elr * sizeof(int32_t));
        if (o->move) {
            lp->moving = true;
            lp->move_from = o->move->from;
            lp->move_to = o->move->to;
        }
    }
    for (size_t t = 0; t < m->n_terms; t++)
        (*terms)[t] = (sx_term_part){m->terms[t]->epoch, m->terms[t]->owner, m->terms[t]->retired};
    return true;
}

/* sx_assign, a lost store and sx_assign again on an accepted map: each
 * result passes sx_clustermap_check. */
static void assign(const Shardex__Internal__V1__ClusterMap *m, sx_log_part *parts,
                   sx_term_part *terms)
{
    uint32_t P = m->settings->partitions;
    uint32_t nw = (uint32_t)m->n_workers, nt = (uint32_t)m->n_terms;
    bool alive[MAX_ASSIGN_WORKERS + 1], draining[MAX_ASSIGN_WORKERS + 1],
        removed[MAX_ASSIGN_WORKERS + 1];
    for (uint32_t w = 0; w < nw; w++) {
        alive[w] = m->workers[w]->alive && !m->workers[w]->removed;
        draining[w] = m->workers[w]->draining;
        removed[w] = m->workers[w]->removed;
    }
    /* As the coordinator assigns: add-then-drop moves, two at a time. */
    sx_assign_settings set = {.replication = m->settings->replication,
                              .min_isr = m->settings->min_isr,
                              .moves = true,
                              .max_moves = 2,
                              .draining = draining,
                              .removed = removed};
    sx_assign_changes ch;
    sx_assign(&set, alive, nw, parts, P, terms, nt, &ch);
    sx_err err = {0};
    if (sx_clustermap_check(parts, P, terms, nt, nw, &err) != SX_OK) {
        fprintf(stderr, "after sx_assign: %s\n", err.msg);
        SX_FUZZ_CHECK(!"sx_assign keeps the invariants");
    }
    for (uint32_t w = 0; w < nw && w < 3; w++) {
        sx_clustermap_store_lost(&parts[0], (int32_t)w);
        SX_FUZZ_CHECK(sx_clustermap_check(parts, P, terms, nt, nw, &err) == SX_OK);
    }
    sx_assign(&set, alive, nw, parts, P, terms, nt, &ch);
    SX_FUZZ_CHECK(sx_clustermap_check(parts, P, terms, nt, nw, &err) == SX_OK);
}

/* The coordinator's loader; returns whether it accepts m. */
static bool coordinator(const Shardex__Internal__V1__ClusterMap *m)
{
    sx_log_part *parts = NULL;
    sx_term_part *terms = NULL;
    uint32_t P = m->settings ? m->settings->partitions : 0;
    uint32_t nw = (uint32_t)m->n_workers, nt = (uint32_t)m->n_terms;
    bool ok = coord_load(m, &parts, &terms) && sx_partmap_check_indexes(m, NULL) == SX_OK &&
              sx_clustermap_check(parts, P, terms, nt, nw, NULL) == SX_OK;
    if (ok && P <= MAX_ASSIGN_PARTS && nw <= MAX_ASSIGN_WORKERS && nt <= MAX_ASSIGN_TERMS)
        assign(m, parts, terms);
    free(parts);
    free(terms);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Shardex__Internal__V1__ClusterMap *m =
        (void *)sx_rpc_unpack(&shardex__internal__v1__cluster_map__descriptor, size, data);
    if (!m)
        return 0;
    /* A map the coordinator accepts (and so sends), every worker accepts. */
    bool sent = coordinator(m);
    sx_partmap *pm = NULL;
    /* Takes m, on failure too. */
    sx_err err = {0};
    if (sx_partmap_create(&m->base, m, "w0", &pm, &err) == SX_OK) {
        lookups(pm);
        sx_partmap_release(pm);
    } else if (sent) {
        fprintf(stderr, "sx_partmap_create: %s\n", err.msg);
        SX_FUZZ_CHECK(!"a worker takes the maps the coordinator keeps");
    }
    return 0;
}
