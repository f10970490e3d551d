/* clustermap.c: sx_assign (the six steps of clustermap.h, with the choices
 * listed there under "How the steps choose"), the ISR compare-and-set, and the
 * invariant check.
 *
 * With moves and removed workers the order is: step 0 (removed workers
 * leave), 1 (deaths), 2 (leaders), 2b (broken moves cancelled), 3 (trim and
 * fill, a move's source not counted), 3b (moves finish), 4 and 5 (direct
 * moves of what holds nothing, leaderships, draining leaders first), 4b
 * (moves start, bounded), 6 (term partitions). The moves' part is under
 * "moves" below.
 *
 * sx_assign keeps a copy of its input and works on the caller's arrays; the
 * steps only move leaders, replicas, isr and elr members and owners, and never
 * touch an epoch or an isr_version. At the end the result is diffed against the copy: a
 * partition whose leader (isr, owner) differs gets its epoch (isr_version,
 * epoch) raised by exactly one, and sx_assign_changes holds the net change, so
 * a replica chosen and then moved again within one call counts once. Pure: no
 * I/O, no clock, no randomness, no shared state; not for concurrent calls on
 * the same arrays.
 */
#include "clustermap.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* Longest chain of moves that each cost a change (step 4: a replica that held
 * data; step 5: a leader that had not changed in this call). Chains of free
 * moves (a replica or a leadership assigned in this call) have no limit. A
 * longer chain could balance a little further, but one dead leader could then
 * cost a dozen leader changes: stickiness wins. */
#define MAX_COSTLY_HOPS 2

/* Scratch for one sx_assign call, allocated once per call. */
typedef struct ctx {
    const bool *alive; /* the caller's, less removed workers */
    const bool *elig;  /* alive and not draining: may take new replicas, leaders, owners */
    bool moves;        /* add-then-drop moves (clustermap.h, "Moves") */
    uint32_t max_moves;
    bool *fresh; /* per partition: its log is empty (never assigned, or every holder removed) */
    uint32_t nworkers;
    uint32_t nlive;          /* live workers */
    uint32_t r;              /* replication, clamped to 1..SX_MAX_REPLICAS */
    uint32_t min_isr;        /* for the elr rule */
    sx_log_part *parts;      /* being edited */
    const sx_log_part *orig; /* the input, to diff against */
    uint32_t nparts;
    uint32_t *rep;    /* per worker: replicas held (live workers only) */
    uint32_t *lead;   /* per worker: partitions led (live workers only) */
    int32_t *desc;    /* live workers by load, most first (scratch) */
    int32_t *asc;     /* live workers by load, least first (scratch) */
    int32_t *dense;   /* per worker: its index among the live ones, or -1 */
    uint32_t *shared; /* nlive x nlive: partitions two live workers both hold */
    /* Breadth-first search over live workers, from root (steps 4 and 5): */
    int32_t root;
    uint32_t *dist; /* per worker: edges from root, UINT32_MAX if not reached */
    int32_t *from;  /* per worker: the worker before it on its path */
    uint32_t *via;  /* per worker: the partition that edge moves */
    int32_t *queue;
} ctx;

bool sx_clustermap_has(const int32_t *set, uint32_t n, int32_t w)
{
    for (uint32_t i = 0; i < n; i++)
        if (set[i] == w)
            return true;
    return false;
}

static bool is_live(const ctx *c, int32_t w)
{
    return w >= 0 && (uint32_t)w < c->nworkers && c->alive[w];
}

static bool is_elig(const ctx *c, int32_t w)
{
    return w >= 0 && (uint32_t)w < c->nworkers && c->elig[w];
}

/* w is the source or the target of lp's move in flight: only the move
 * itself (finish or cancel) takes it out. */
static bool in_move(const sx_log_part *lp, int32_t w)
{
    return lp->moving && (lp->move_from == w || lp->move_to == w);
}

/* Removes w from set (keeping the order of the others, zeroing the freed slot);
 * true if it was there. */
static bool set_remove(int32_t *set, uint32_t *n, int32_t w)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (set[i] != w)
            continue;
        memmove(set + i, set + i + 1, (*n - i - 1) * sizeof(*set));
        set[--*n] = 0;
        return true;
    }
    return false;
}

static bool same_set(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++)
        if (!sx_clustermap_has(b, nb, a[i]))
            return false;
    return true;
}

/* Never assigned: no isr ever (an isr emptied by lost stores has a version). */
static bool never_assigned(const sx_log_part *lp)
{
    return lp->nisr == 0 && lp->isr_version == 0;
}

/* The partition had never been assigned when this call began: its log is
 * empty, so every replica it gets in this call is in sync from the start. */
static bool first_assigned(const ctx *c, uint32_t p)
{
    return c->fresh[p];
}

/* Fills c->desc (load descending) and c->asc (load ascending) with the live
 * workers, ties by lowest index in both; returns how many. Insertion sort:
 * a few dozen workers. */
static uint32_t order_by_load(ctx *c, const uint32_t *load)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < c->nworkers; w++) {
        if (!c->elig[w])
            continue;
        uint32_t i = n++;
        while (i > 0 && load[c->desc[i - 1]] < load[w]) {
            c->desc[i] = c->desc[i - 1];
            i--;
        }
        c->desc[i] = (int32_t)w;
        i = n - 1;
        while (i > 0 && load[c->asc[i - 1]] > load[w]) {
            c->asc[i] = c->asc[i - 1];
            i--;
        }
        c->asc[i] = (int32_t)w;
    }
    return n;
}

/* The live member of set with the smallest load, lowest index on ties, one
 * that is not draining if there is one; -1 if none is live. */
static int32_t least_loaded_live(const ctx *c, const int32_t *set, uint32_t n, const uint32_t *load)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < n; i++) {
        int32_t w = set[i];
        if (!is_live(c, w))
            continue;
        if (best >= 0 && is_elig(c, best) != is_elig(c, w)) {
            if (is_elig(c, w))
                best = w;
            continue;
        }
        if (best < 0 || load[w] < load[best] || (load[w] == load[best] && w < best))
            best = w;
    }
    return best;
}

static uint32_t *shared_cell(const ctx *c, int32_t a, int32_t b)
{
    return &c->shared[(size_t)c->dense[a] * c->nlive + (size_t)c->dense[b]];
}

/* Counts w as sharing lp with each other live replica of lp (add), or no
 * longer (!add). */
static void count_shared(ctx *c, const sx_log_part *lp, int32_t w, bool add)
{
    if (!is_live(c, w))
        return;
    for (uint32_t i = 0; i < lp->nreplicas; i++) {
        int32_t e = lp->replicas[i];
        if (e == w || !is_live(c, e))
            continue;
        if (add) {
            ++*shared_cell(c, w, e);
            ++*shared_cell(c, e, w);
        } else {
            --*shared_cell(c, w, e);
            --*shared_cell(c, e, w);
        }
    }
}

/* Partitions that live worker w already shares with the live replicas of lp:
 * the fewer, the more a death of one of them spreads its load over others. */
static uint32_t shared_with(const ctx *c, const sx_log_part *lp, int32_t w)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < lp->nreplicas; i++) {
        int32_t e = lp->replicas[i];
        if (e != w && is_live(c, e))
            n += *shared_cell(c, w, e);
    }
    return n;
}

static void count_replicas(ctx *c)
{
    memset(c->rep, 0, c->nworkers * sizeof(*c->rep));
    memset(c->shared, 0, (size_t)c->nlive * c->nlive * sizeof(*c->shared));
    for (uint32_t p = 0; p < c->nparts; p++) {
        const sx_log_part *lp = &c->parts[p];
        for (uint32_t i = 0; i < lp->nreplicas; i++) {
            int32_t w = lp->replicas[i];
            if (!is_live(c, w))
                continue;
            c->rep[w]++;
            for (uint32_t j = 0; j < i; j++) {
                int32_t e = lp->replicas[j];
                if (is_live(c, e)) {
                    ++*shared_cell(c, w, e);
                    ++*shared_cell(c, e, w);
                }
            }
        }
    }
}

/* Step 1. Where a live isr member remains, dead members leave the isr (and so
 * the replicas, unless the elr rule keeps them eligible); where none does, the
 * isr is kept whole for rule 5 and the partition has no leader. Dead replicas
 * outside the isr and the elr go either way. */
static void step_deaths(ctx *c)
{
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        if (c->fresh[p]) {
            /* Never assigned (as the input was: a removal may empty an isr),
             * so the log is empty: live replicas (if the caller set any) are
             * in sync, as step 3 would make them. */
            lp->leader = -1;
            for (uint32_t i = lp->nreplicas; i-- > 0;)
                if (!is_live(c, lp->replicas[i]))
                    set_remove(lp->replicas, &lp->nreplicas, lp->replicas[i]);
            memcpy(lp->isr, lp->replicas, sizeof(lp->isr));
            lp->nisr = lp->nreplicas;
            continue;
        }
        bool isr_live = false;
        for (uint32_t i = 0; i < lp->nisr; i++)
            isr_live = isr_live || is_live(c, lp->isr[i]);
        if (isr_live) {
            int32_t old[SX_MAX_REPLICAS];
            uint32_t nold = lp->nisr;
            memcpy(old, lp->isr, sizeof(old));
            for (uint32_t i = lp->nisr; i-- > 0;)
                if (!is_live(c, lp->isr[i]))
                    set_remove(lp->isr, &lp->nisr, lp->isr[i]);
            sx_clustermap_track_elr(lp, old, nold, c->min_isr);
        } else {
            lp->leader = -1;
        }
        for (uint32_t i = lp->nreplicas; i-- > 0;) {
            int32_t w = lp->replicas[i];
            if (!is_live(c, w) && !sx_clustermap_has(lp->isr, lp->nisr, w) &&
                !sx_clustermap_has(lp->elr, lp->nelr, w))
                set_remove(lp->replicas, &lp->nreplicas, w);
        }
    }
}

/* Step 2. Leaders that stay are counted first, so that the replacements go to
 * the isr members leading the fewest partitions overall. An empty isr (every
 * member lost its store) elects from the elr: the elected becomes the isr. */
static void step_leaders(ctx *c)
{
    memset(c->lead, 0, c->nworkers * sizeof(*c->lead));
    for (uint32_t p = 0; p < c->nparts; p++) {
        const sx_log_part *lp = &c->parts[p];
        if (is_live(c, lp->leader) && sx_clustermap_has(lp->isr, lp->nisr, lp->leader))
            c->lead[lp->leader]++;
    }
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        if (is_live(c, lp->leader) && sx_clustermap_has(lp->isr, lp->nisr, lp->leader))
            continue;
        lp->leader = least_loaded_live(c, lp->isr, lp->nisr, c->lead);
        if (lp->leader < 0 && lp->nisr == 0) {
            lp->leader = least_loaded_live(c, lp->elr, lp->nelr, c->lead);
            if (lp->leader >= 0) {
                set_remove(lp->elr, &lp->nelr, lp->leader);
                lp->isr[lp->nisr++] = lp->leader;
            }
        }
        if (lp->leader >= 0)
            c->lead[lp->leader]++;
    }
}

/* How many live replicas partition p should hold: R, bounded by the live
 * workers and by the slots left beside the dead members of a kept isr. */
static uint32_t replica_target(const ctx *c, const sx_log_part *lp)
{
    uint32_t dead = 0;
    for (uint32_t i = 0; i < lp->nreplicas; i++)
        dead += !is_live(c, lp->replicas[i]);
    uint32_t t = c->r < c->nlive ? c->r : c->nlive;
    return t < SX_MAX_REPLICAS - dead ? t : SX_MAX_REPLICAS - dead;
}

/* Live replicas, not counting a move's source: it is on its way out. */
static uint32_t live_replicas(const ctx *c, const sx_log_part *lp)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < lp->nreplicas; i++)
        n += is_live(c, lp->replicas[i]) && !(lp->moving && lp->move_from == lp->replicas[i]);
    return n;
}

/* A replica of w in lp may leave: it is live, not the leader's, not the last
 * isr member and not eligible to lead (elr: it may be all that holds the
 * committed entries one day). */
static bool may_leave(const ctx *c, const sx_log_part *lp, int32_t w)
{
    if (!is_live(c, w) || w == lp->leader || sx_clustermap_has(lp->elr, lp->nelr, w) ||
        in_move(lp, w))
        return false;
    return !(lp->nisr == 1 && lp->isr[0] == w);
}

static void drop_replica(ctx *c, sx_log_part *lp, int32_t w)
{
    count_shared(c, lp, w, false);
    set_remove(lp->replicas, &lp->nreplicas, w);
    set_remove(lp->isr, &lp->nisr, w);
    set_remove(lp->elr, &lp->nelr, w);
    c->rep[w]--;
}

/* The replica step 3 trims from lp: among those that may leave, non-isr
 * first, then the most loaded worker, lowest index; when none may, a live elr
 * member (the leader is the only replica that never leaves, and the target is
 * at least 1). */
static int32_t trim_victim(const ctx *c, const sx_log_part *lp)
{
    int32_t victim = -1;
    bool victim_isr = true;
    for (uint32_t i = 0; i < lp->nreplicas; i++) {
        int32_t w = lp->replicas[i];
        if (!may_leave(c, lp, w))
            continue;
        bool in_isr = sx_clustermap_has(lp->isr, lp->nisr, w);
        if (victim < 0 || (!in_isr && victim_isr) ||
            (in_isr == victim_isr &&
             (c->rep[w] > c->rep[victim] || (c->rep[w] == c->rep[victim] && w < victim)))) {
            victim = w;
            victim_isr = in_isr;
        }
    }
    for (uint32_t i = 0; victim < 0 && i < lp->nelr; i++)
        if (is_live(c, lp->elr[i]))
            victim = lp->elr[i];
    return victim;
}

static void add_replica(ctx *c, uint32_t p, int32_t w)
{
    sx_log_part *lp = &c->parts[p];
    assert(lp->nreplicas < SX_MAX_REPLICAS);
    count_shared(c, lp, w, true);
    lp->replicas[lp->nreplicas++] = w;
    if (first_assigned(c, p))
        lp->isr[lp->nisr++] = w;
    c->rep[w]++;
}

/* The worker that best takes a new replica of lp: live (and not draining
 * unless draining_too), not a replica yet, the least loaded, then sharing the
 * fewest partitions with lp's replicas, then the lowest index; -1 if none. */
static int32_t best_new_replica(const ctx *c, const sx_log_part *lp, const uint32_t *load,
                                bool draining_too)
{
    int32_t best = -1;
    uint32_t best_shared = 0;
    for (uint32_t w = 0; w < c->nworkers; w++) {
        if (!(draining_too ? c->alive[w] : c->elig[w]) ||
            sx_clustermap_has(lp->replicas, lp->nreplicas, (int32_t)w))
            continue;
        uint32_t sh = shared_with(c, lp, (int32_t)w);
        if (best < 0 || load[w] < load[best] || (load[w] == load[best] && sh < best_shared)) {
            best = (int32_t)w;
            best_shared = sh;
        }
    }
    return best;
}

/* Step 3. First trims partitions holding more live replicas than their target
 * (R lowered, or replicas added while the isr was dead and it came back):
 * non-isr replicas first, then the most loaded worker, lowest index. Then
 * fills every partition from the live workers with the fewest replicas. */
static void step_fill(ctx *c)
{
    count_replicas(c);
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        uint32_t target = replica_target(c, lp);
        if (lp->moving && live_replicas(c, lp) > target) {
            /* Too many even without the move's source: the move is moot.
             * Its target goes if it holds nothing that counts; otherwise the
             * trim below chooses, under its min_isr rule. */
            lp->moving = false;
            if (lp->move_to != lp->leader && !sx_clustermap_has(lp->isr, lp->nisr, lp->move_to) &&
                !sx_clustermap_has(lp->elr, lp->nelr, lp->move_to))
                drop_replica(c, lp, lp->move_to);
        }
        for (uint32_t have = live_replicas(c, lp); have > target; have--) {
            int32_t victim = trim_victim(c, lp);
            /* With moves, a surplus in-sync replica goes only as a move's
             * source would (the isr keeps min_isr), and one that may be all
             * that holds the committed entries (elr) never: the surplus
             * waits for the isr to grow. */
            if (c->moves && victim >= 0 &&
                (sx_clustermap_has(lp->elr, lp->nelr, victim) ||
                 (sx_clustermap_has(lp->isr, lp->nisr, victim) && lp->nisr <= c->min_isr)))
                break;
            assert(victim >= 0);
            drop_replica(c, lp, victim);
        }
    }
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        uint32_t target = replica_target(c, lp);
        for (uint32_t have = live_replicas(c, lp); have < target; have++) {
            int32_t best = best_new_replica(c, lp, c->rep, false);
            if (best < 0)
                best = best_new_replica(c, lp, c->rep, true); /* only draining ones left */
            if ((best < 0 || lp->nreplicas == SX_MAX_REPLICAS) && lp->moving) {
                /* Every live worker holds it, or there is no room for one
                 * more: the move's source must stay. */
                lp->moving = false;
                continue;
            }
            assert(best >= 0);
            add_replica(c, p, best);
        }
        if (first_assigned(c, p) && lp->leader < 0 && lp->nisr > 0) {
            lp->leader = least_loaded_live(c, lp->isr, lp->nisr, c->lead);
            if (lp->leader >= 0)
                c->lead[lp->leader]++;
        }
    }
}

/* How costly moving w's replica out of partition p is: 0 if it was added in
 * this call (it holds no data yet, and the net change stays one addition),
 * 1 if outside the isr, 2 for an isr member (an in-sync copy is lost). */
static int move_class(const ctx *c, uint32_t p, int32_t w)
{
    const sx_log_part *op = &c->orig[p];
    if (!sx_clustermap_has(op->replicas, op->nreplicas, w))
        return 0;
    return sx_clustermap_has(c->parts[p].isr, c->parts[p].nisr, w) ? 2 : 1;
}

/* The partition whose replica on src is best moved to tgt, or -1: the lowest
 * class (at most max_class), then the lowest partition. */
static int32_t find_replica_move(const ctx *c, int32_t src, int32_t tgt, int max_class)
{
    int32_t best = -1;
    int best_class = max_class + 1;
    for (uint32_t p = 0; p < c->nparts && best_class > 0; p++) {
        const sx_log_part *lp = &c->parts[p];
        if (!sx_clustermap_has(lp->replicas, lp->nreplicas, src) ||
            sx_clustermap_has(lp->replicas, lp->nreplicas, tgt) || !may_leave(c, lp, src))
            continue;
        int cls = move_class(c, p, src);
        if (cls < best_class) {
            best = (int32_t)p;
            best_class = cls;
        }
    }
    return best;
}

static void move_replica(ctx *c, uint32_t p, int32_t src, int32_t tgt)
{
    drop_replica(c, &c->parts[p], src);
    add_replica(c, p, tgt);
}

/* Is partition p on the search path from c->root to x? */
static bool on_path(const ctx *c, int32_t x, uint32_t p)
{
    for (int32_t w = x; w != c->root; w = c->from[w])
        if (c->via[w] == p)
            return true;
    return false;
}

/* Starts a breadth-first search from src over the live workers. */
static void search_start(ctx *c, int32_t src)
{
    for (uint32_t w = 0; w < c->nworkers; w++)
        c->dist[w] = UINT32_MAX;
    c->root = src;
    c->dist[src] = 0;
    c->queue[0] = src;
}

static void search_reach(ctx *c, int32_t x, int32_t y, uint32_t p, uint32_t *tail)
{
    c->dist[y] = c->dist[x] + 1;
    c->from[y] = x;
    c->via[y] = p;
    c->queue[(*tail)++] = y;
}

/* The reached worker with load at most load[root] - 2, the least loaded, then
 * the nearest, then the lowest index; -1 if none. */
static int32_t search_target(const ctx *c, const uint32_t *load)
{
    int32_t best = -1;
    for (uint32_t w = 0; w < c->nworkers; w++) {
        if (c->dist[w] == UINT32_MAX || load[w] + 2 > load[c->root])
            continue;
        if (best < 0 || load[w] < load[best] ||
            (load[w] == load[best] && c->dist[w] < c->dist[best]))
            best = (int32_t)w;
    }
    return best;
}

/* Replica chains: src's replica of p1 goes to w1, w1's replica of p2 to w2,
 * ..., to a worker holding at least two fewer than src; the workers between
 * keep their loads. The partitions of a chain are distinct, so each move is
 * legal whatever the others do. Returns the last worker, or -1. */
static int32_t search_replicas(ctx *c, int32_t src, int max_class, uint32_t max_hops)
{
    search_start(c, src);
    uint32_t head = 0, tail = 1, unreached = c->nlive - 1;
    while (head < tail && unreached > 0) {
        int32_t x = c->queue[head++];
        if (c->dist[x] >= max_hops)
            break;
        for (int cls = 0; cls <= max_class && unreached > 0; cls++) {
            for (uint32_t p = 0; p < c->nparts && unreached > 0; p++) {
                const sx_log_part *lp = &c->parts[p];
                if (!sx_clustermap_has(lp->replicas, lp->nreplicas, x) || !may_leave(c, lp, x) ||
                    move_class(c, p, x) != cls || on_path(c, x, p))
                    continue;
                for (uint32_t y = 0; y < c->nworkers; y++) {
                    if (!c->elig[y] || c->dist[y] != UINT32_MAX ||
                        sx_clustermap_has(lp->replicas, lp->nreplicas, (int32_t)y))
                        continue;
                    search_reach(c, x, (int32_t)y, p, &tail);
                    unreached--;
                }
            }
        }
    }
    return search_target(c, c->rep);
}

/* One step-4 move (or chain) using replicas of class at most max_class: a
 * direct move for the first (most, least) pair that has one, else a chain
 * from the most loaded worker that has one. True if anything moved. */
static bool balance_replicas_once(ctx *c, int max_class)
{
    uint32_t n = order_by_load(c, c->rep);
    for (uint32_t i = 0; i < n; i++) {
        int32_t src = c->desc[i];
        for (uint32_t j = 0; j < n && c->rep[src] >= c->rep[c->asc[j]] + 2; j++) {
            int32_t p = find_replica_move(c, src, c->asc[j], max_class);
            if (p >= 0) {
                move_replica(c, (uint32_t)p, src, c->asc[j]);
                return true;
            }
        }
    }
    for (uint32_t i = 0; i < n && c->rep[c->desc[i]] >= c->rep[c->asc[0]] + 2; i++) {
        int32_t src = c->desc[i];
        int32_t t =
            search_replicas(c, src, max_class, max_class == 0 ? UINT32_MAX : MAX_COSTLY_HOPS);
        if (t < 0)
            continue;
        for (int32_t y = t; y != src;) {
            int32_t x = c->from[y];
            move_replica(c, c->via[y], x, y);
            y = x;
        }
        return true;
    }
    return false;
}

/* Step 4. Each move (or chain) takes one replica from a worker and gives one
 * to a worker holding at least two fewer, so the sum of squared loads falls
 * and the loop ends. Replicas added in this call move first, and only when
 * none can does an older one move. True if anything moved. */
static bool step_balance_replicas(ctx *c)
{
    bool moved = false;
    /* With moves an in-sync replica moves only by add-then-drop (start_moves). */
    while (balance_replicas_once(c, 0) || balance_replicas_once(c, c->moves ? 1 : 2))
        moved = true;
    return moved;
}

/* The partition led by src whose leadership is best handed to tgt, or -1:
 * tgt must be in its isr; a partition whose leader already changed in this
 * call first (no extra epoch), then the lowest. */
static int32_t find_leader_move(const ctx *c, int32_t src, int32_t tgt)
{
    int32_t best = -1;
    for (uint32_t p = 0; p < c->nparts; p++) {
        const sx_log_part *lp = &c->parts[p];
        if (lp->leader != src || !sx_clustermap_has(lp->isr, lp->nisr, tgt))
            continue;
        if (c->orig[p].leader != src)
            return (int32_t)p;
        if (best < 0)
            best = (int32_t)p;
    }
    return best;
}

/* Leadership chains, as replica chains: src hands p1 to w1, w1 hands p2 to
 * w2, ... Each partition has one leader, so the partitions are distinct.
 * With free_only, only partitions whose leader already changed in this call
 * (no extra epoch), at any length; else any, up to MAX_COSTLY_HOPS. */
static int32_t search_leaders(ctx *c, int32_t src, bool free_only)
{
    search_start(c, src);
    uint32_t head = 0, tail = 1;
    while (head < tail) {
        int32_t x = c->queue[head++];
        if (!free_only && c->dist[x] >= MAX_COSTLY_HOPS)
            break;
        for (int changed = 1; changed >= (free_only ? 1 : 0); changed--) {
            for (uint32_t p = 0; p < c->nparts; p++) {
                const sx_log_part *lp = &c->parts[p];
                if (lp->leader != x || (c->orig[p].leader != x) != changed)
                    continue;
                for (uint32_t i = 0; i < lp->nisr; i++)
                    if (is_elig(c, lp->isr[i]) && c->dist[lp->isr[i]] == UINT32_MAX)
                        search_reach(c, x, lp->isr[i], p, &tail);
            }
        }
    }
    return search_target(c, c->lead);
}

/* One step-5 handover (or chain), chosen as in balance_replicas_once. */
static bool balance_leaders_once(ctx *c)
{
    uint32_t n = order_by_load(c, c->lead);
    for (uint32_t i = 0; i < n; i++) {
        int32_t src = c->desc[i];
        for (uint32_t j = 0; j < n && c->lead[src] >= c->lead[c->asc[j]] + 2; j++) {
            int32_t p = find_leader_move(c, src, c->asc[j]);
            if (p >= 0) {
                c->parts[p].leader = c->asc[j];
                c->lead[src]--;
                c->lead[c->asc[j]]++;
                return true;
            }
        }
    }
    for (int free_only = 1; free_only >= 0; free_only--) {
        for (uint32_t i = 0; i < n && c->lead[c->desc[i]] >= c->lead[c->asc[0]] + 2; i++) {
            int32_t src = c->desc[i];
            int32_t t = search_leaders(c, src, free_only);
            if (t < 0)
                continue;
            for (int32_t y = t; y != src; y = c->from[y])
                c->parts[c->via[y]].leader = y;
            c->lead[src]--;
            c->lead[t]++;
            return true;
        }
    }
    return false;
}

/* Leadership leaves draining workers for the live isr member that is not
 * draining and leads the fewest, where there is one. True if any moved. */
static bool leaders_off_draining(ctx *c)
{
    bool moved = false;
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        if (lp->leader < 0 || is_elig(c, lp->leader))
            continue;
        int32_t to = least_loaded_live(c, lp->isr, lp->nisr, c->lead);
        if (to < 0 || !is_elig(c, to))
            continue;
        c->lead[lp->leader]--;
        c->lead[to]++;
        lp->leader = to;
        moved = true;
    }
    return moved;
}

/* Step 5, ending as step 4 does. True if anything moved. */
static bool step_balance_leaders(ctx *c)
{
    bool moved = leaders_off_draining(c);
    while (balance_leaders_once(c))
        moved = true;
    return moved;
}

/* Step 6. own counts owners among live workers; orig_owner is the input, so
 * that a term already moved in this call is the one moved again. */
static void step_terms(ctx *c, sx_term_part *terms, uint32_t nterms, const int32_t *orig_owner)
{
    uint32_t *own = c->lead; /* reused: leaders are settled */
    memset(own, 0, c->nworkers * sizeof(*own));
    /* Owners are the workers that are not draining; draining ones only when
     * every live worker is draining. */
    const bool *ok = c->alive;
    for (uint32_t w = 0; w < c->nworkers; w++)
        if (c->elig[w])
            ok = c->elig;
    for (uint32_t t = 0; t < nterms; t++)
        if (is_live(c, terms[t].owner))
            own[terms[t].owner]++;
    for (uint32_t t = 0; t < nterms; t++) {
        int32_t o = terms[t].owner;
        if (terms[t].retired) {
            if (is_live(c, o))
                own[o]--;
            terms[t].owner = -1;
            continue;
        }
        if (o >= 0 && (uint32_t)o < c->nworkers && ok[o])
            continue;
        int32_t best = -1;
        for (uint32_t w = 0; w < c->nworkers; w++)
            if (ok[w] && (best < 0 || own[w] < own[best]))
                best = (int32_t)w;
        if (is_live(c, o))
            own[o]--;
        terms[t].owner = best;
        if (best >= 0)
            own[best]++;
    }
    if (c->nlive == 0)
        return;
    for (;;) {
        int32_t most = -1, least = -1;
        for (uint32_t w = 0; w < c->nworkers; w++) {
            if (!ok[w])
                continue;
            if (most < 0 || own[w] > own[most])
                most = (int32_t)w;
            if (least < 0 || own[w] < own[least])
                least = (int32_t)w;
        }
        if (own[most] < own[least] + 2)
            return;
        int32_t pick = -1;
        for (uint32_t t = 0; t < nterms; t++) {
            if (terms[t].owner != most)
                continue;
            if (orig_owner[t] != most) {
                pick = (int32_t)t;
                break;
            }
            if (pick < 0)
                pick = (int32_t)t;
        }
        assert(pick >= 0);
        terms[pick].owner = least;
        own[most]--;
        own[least]++;
    }
}

/* ---------------------------------------------------------------- moves -- */

/* Step 0. Removed workers leave every replica set, isr and elr (and lead
 * nothing). A partition whose every holder of committed entries was removed
 * (the coordinator allows that only when forced) takes its other replicas as
 * its isr, or, with none, starts over empty (c->fresh). */
static void step_removed(ctx *c, const bool *removed)
{
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        c->fresh[p] = never_assigned(lp);
        if (!removed)
            continue;
        bool held = lp->nisr + lp->nelr > 0;
        for (uint32_t i = lp->nreplicas; i-- > 0;) {
            int32_t w = lp->replicas[i];
            if (w < 0 || (uint32_t)w >= c->nworkers || !removed[w])
                continue;
            set_remove(lp->replicas, &lp->nreplicas, w);
            set_remove(lp->isr, &lp->nisr, w);
            set_remove(lp->elr, &lp->nelr, w);
            if (lp->leader == w)
                lp->leader = -1;
        }
        if (!held || lp->nisr + lp->nelr > 0 || c->fresh[p])
            continue;
        memcpy(lp->isr, lp->replicas, sizeof(lp->isr));
        lp->nisr = lp->nreplicas;
        c->fresh[p] = lp->nreplicas == 0;
    }
}

/* Step 2b. A move whose source or target is no longer a live replica ends
 * here: what is left is an ordinary replica set (step 3 trims or fills it).
 * So does one whose partition has no leader (its whole isr is dead): nobody
 * can bring the target into the isr, and the move would hold its slot. */
static void cancel_moves(ctx *c)
{
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        if (lp->moving && (!c->moves || lp->leader < 0 || !is_live(c, lp->move_from) ||
                           !is_live(c, lp->move_to) ||
                           !sx_clustermap_has(lp->replicas, lp->nreplicas, lp->move_from) ||
                           !sx_clustermap_has(lp->replicas, lp->nreplicas, lp->move_to)))
            lp->moving = false;
    }
}

/* Step 3b. A move finishes once its source may go without loss: the target
 * is in the isr (or the source holds nothing that counts: outside isr and
 * elr), and the isr without the source keeps min_isr members (and one at
 * least). A leading source hands leadership to the isr member leading the
 * fewest first: every committed entry is on every isr member (rule 4). */
static void finish_moves(ctx *c, uint32_t *finished)
{
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        if (!lp->moving)
            continue;
        int32_t a = lp->move_from;
        bool a_isr = sx_clustermap_has(lp->isr, lp->nisr, a);
        bool a_elr = sx_clustermap_has(lp->elr, lp->nelr, a);
        if (a_elr || (a_isr && !sx_clustermap_has(lp->isr, lp->nisr, lp->move_to)) ||
            (a_isr && (lp->nisr - 1 < c->min_isr || lp->nisr < 2)))
            continue;
        if (lp->leader == a) {
            int32_t others[SX_MAX_REPLICAS];
            uint32_t n = 0;
            for (uint32_t i = 0; i < lp->nisr; i++)
                if (lp->isr[i] != a)
                    others[n++] = lp->isr[i];
            int32_t to = least_loaded_live(c, others, n, c->lead);
            if (to < 0)
                continue;
            c->lead[a]--;
            c->lead[to]++;
            lp->leader = to;
        }
        lp->moving = false;
        drop_replica(c, lp, a);
        ++*finished;
    }
}

static void begin_move(ctx *c, uint32_t p, int32_t from, int32_t to, uint32_t *load)
{
    sx_log_part *lp = &c->parts[p];
    add_replica(c, p, to);
    lp->moving = true;
    lp->move_from = from;
    lp->move_to = to;
    load[from]--;
    load[to]++;
}

/* Partition p may start a move: none is in flight, it has a leader (to bring
 * the target into the isr: a move that cannot finish would hold its slot),
 * room for one more replica, and no surplus waiting for its isr to grow
 * (step 3), so that it holds R + 1 replicas at most. */
static bool may_start(const ctx *c, uint32_t p)
{
    const sx_log_part *lp = &c->parts[p];
    return !lp->moving && lp->leader >= 0 && !c->fresh[p] && lp->nreplicas < SX_MAX_REPLICAS &&
           live_replicas(c, lp) <= replica_target(c, lp);
}

/* A partition whose replica on src may start a move to tgt (may_start), tgt
 * not a replica yet; a replica that
 * is not the leader's first (no leader change), then the lowest partition.
 * -1 if none. */
static int32_t find_move(const ctx *c, int32_t src, int32_t tgt)
{
    int32_t best = -1;
    for (uint32_t p = 0; p < c->nparts; p++) {
        const sx_log_part *lp = &c->parts[p];
        if (!may_start(c, p) || !sx_clustermap_has(lp->replicas, lp->nreplicas, src) ||
            sx_clustermap_has(lp->replicas, lp->nreplicas, tgt))
            continue;
        if (lp->leader != src)
            return (int32_t)p;
        if (best < 0)
            best = (int32_t)p;
    }
    return best;
}

/* Replicas of draining workers that hold nothing committed (outside isr and
 * elr, not leading) move directly, as step 4 moves them: they cost no move. */
static void drain_direct(ctx *c)
{
    for (uint32_t p = 0; p < c->nparts; p++) {
        sx_log_part *lp = &c->parts[p];
        for (uint32_t i = lp->nreplicas; i-- > 0;) {
            int32_t w = lp->replicas[i];
            if (!is_live(c, w) || is_elig(c, w) || in_move(lp, w) || w == lp->leader ||
                sx_clustermap_has(lp->isr, lp->nisr, w) || sx_clustermap_has(lp->elr, lp->nelr, w))
                continue;
            int32_t to = best_new_replica(c, lp, c->rep, false);
            if (to < 0)
                continue;
            drop_replica(c, lp, w);
            add_replica(c, p, to);
        }
    }
}

/* Step 4b. Starts moves while fewer than max_moves are in flight: off
 * draining workers first, then from the most to the least loaded worker that
 * is not draining (load: replicas held once every move in flight finished). */
static void start_moves(ctx *c, uint32_t *started)
{
    drain_direct(c);
    uint32_t inflight = 0;
    uint32_t *load = sx_calloc(c->nworkers + 1, sizeof(*load));
    for (uint32_t p = 0; p < c->nparts; p++) {
        const sx_log_part *lp = &c->parts[p];
        inflight += lp->moving;
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            if (is_live(c, lp->replicas[i]) && !(lp->moving && lp->move_from == lp->replicas[i]))
                load[lp->replicas[i]]++;
    }
    for (uint32_t p = 0; p < c->nparts && inflight < c->max_moves; p++) {
        sx_log_part *lp = &c->parts[p];
        for (uint32_t i = 0; i < lp->nreplicas && !lp->moving; i++) {
            int32_t w = lp->replicas[i];
            if (!is_live(c, w) || is_elig(c, w) || !may_start(c, p))
                continue;
            int32_t to = best_new_replica(c, lp, load, false);
            if (to < 0)
                continue;
            begin_move(c, p, w, to, load);
            inflight++;
            ++*started;
        }
    }
    bool found = true;
    while (found && inflight < c->max_moves) {
        uint32_t n = order_by_load(c, load);
        found = false;
        for (uint32_t i = 0; i < n && !found; i++) {
            int32_t src = c->desc[i];
            for (uint32_t j = 0; j < n && !found && load[src] >= load[c->asc[j]] + 2; j++) {
                int32_t p = find_move(c, src, c->asc[j]);
                if (p < 0)
                    continue;
                begin_move(c, (uint32_t)p, src, c->asc[j], load);
                inflight++;
                ++*started;
                found = true;
            }
        }
    }
    free(load);
}

void sx_assign(const sx_assign_settings *s, const bool *alive, uint32_t nworkers,
               sx_log_part *parts, uint32_t nparts, sx_term_part *terms, uint32_t nterms,
               sx_assign_changes *changes)
{
    assert(s && (alive || nworkers == 0) && (parts || nparts == 0) && (terms || nterms == 0));
    for (uint32_t p = 0; p < nparts; p++)
        assert(parts[p].nreplicas <= SX_MAX_REPLICAS && parts[p].nisr <= SX_MAX_REPLICAS &&
               parts[p].nelr <= SX_MAX_REPLICAS);
    /* A removed worker is dead for every step; a draining one takes nothing new. */
    bool *live = sx_calloc(nworkers + 1, sizeof(*live));
    bool *elig = sx_calloc(nworkers + 1, sizeof(*elig));
    for (uint32_t w = 0; w < nworkers; w++) {
        live[w] = alive[w] && !(s->removed && s->removed[w]);
        elig[w] = live[w] && !(s->draining && s->draining[w]);
    }
    ctx c = {.alive = live, .elig = elig, .nworkers = nworkers, .parts = parts, .nparts = nparts};
    c.moves = s->moves;
    c.max_moves = s->moves ? s->max_moves : 0;
    c.fresh = sx_calloc(nparts + 1, sizeof(*c.fresh));
    c.r = s->replication < 1 ? 1 : s->replication;
    c.r = c.r > SX_MAX_REPLICAS ? SX_MAX_REPLICAS : c.r;
    c.min_isr = s->min_isr;
    c.dense = sx_calloc(nworkers, sizeof(*c.dense));
    for (uint32_t w = 0; w < nworkers; w++)
        c.dense[w] = live[w] ? (int32_t)c.nlive++ : -1;
    c.shared = sx_calloc((size_t)c.nlive * c.nlive, sizeof(*c.shared));
    c.dist = sx_calloc(nworkers, sizeof(*c.dist));
    c.from = sx_calloc(nworkers, sizeof(*c.from));
    c.via = sx_calloc(nworkers, sizeof(*c.via));
    c.queue = sx_calloc(nworkers, sizeof(*c.queue));

    sx_log_part *orig = sx_memdup(parts, (size_t)nparts * sizeof(*parts));
    int32_t *orig_owner = sx_calloc(nterms, sizeof(*orig_owner));
    for (uint32_t t = 0; t < nterms; t++)
        orig_owner[t] = terms[t].owner;
    c.orig = orig;
    c.rep = sx_calloc(nworkers, sizeof(*c.rep));
    c.lead = sx_calloc(nworkers, sizeof(*c.lead));
    c.desc = sx_calloc(nworkers, sizeof(*c.desc));
    c.asc = sx_calloc(nworkers, sizeof(*c.asc));

    uint32_t started = 0, finished = 0;
    step_removed(&c, s->removed);
    step_deaths(&c);
    step_leaders(&c);
    cancel_moves(&c);
    step_fill(&c);
    if (c.moves)
        finish_moves(&c, &finished);
    /* A leadership handed over in step 5 can unpin a replica for step 4, so
     * step 4 runs again after a step 5 that moved. Step 4 never adds an isr
     * member or moves a leader, so it opens no new step 5 move: the second
     * round of step 5 moves nothing and the loop ends. */
    do
        step_balance_replicas(&c);
    while (step_balance_leaders(&c));
    if (c.moves)
        start_moves(&c, &started);
    step_terms(&c, terms, nterms, orig_owner);

    sx_assign_changes ch = {.moves_started = started, .moves_finished = finished};
    for (uint32_t p = 0; p < nparts; p++) {
        sx_log_part *lp = &parts[p];
        const sx_log_part *op = &orig[p];
        if (lp->leader != op->leader) {
            lp->epoch = op->epoch + 1;
            ch.leader_changes++;
        }
        if (!same_set(lp->isr, lp->nisr, op->isr, op->nisr)) {
            lp->isr_version = op->isr_version + 1;
            ch.isr_changes++;
        }
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            ch.replicas_added += !sx_clustermap_has(op->replicas, op->nreplicas, lp->replicas[i]);
        for (uint32_t i = 0; i < op->nreplicas; i++)
            ch.replicas_removed += !sx_clustermap_has(lp->replicas, lp->nreplicas, op->replicas[i]);
        ch.unavailable += lp->leader < 0;
        ch.moves_in_flight += lp->moving;
        if (!lp->moving)
            lp->move_from = lp->move_to = 0; /* one representation for "no move" */
    }
    for (uint32_t t = 0; t < nterms; t++) {
        if (terms[t].owner != orig_owner[t]) {
            terms[t].epoch++;
            ch.owner_changes++;
        }
    }
    if (changes)
        *changes = ch;

    free(c.fresh);
    free(elig);
    free(live);
    free(c.queue);
    free(c.via);
    free(c.from);
    free(c.dist);
    free(c.shared);
    free(c.dense);
    free(c.asc);
    free(c.desc);
    free(c.lead);
    free(c.rep);
    free(orig_owner);
    free(orig);
}

sx_status sx_clustermap_change_isr(sx_log_part *part, uint64_t epoch, uint64_t isr_version,
                                   const int32_t *isr, uint32_t nisr, sx_err *err)
{
    assert(part);
    if (epoch != part->epoch)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "clustermap: isr change: epoch %llu, current %llu",
                          (unsigned long long)epoch, (unsigned long long)part->epoch);
    if (isr_version != part->isr_version)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "clustermap: isr change: isr_version %llu, current %llu",
                          (unsigned long long)isr_version, (unsigned long long)part->isr_version);
    if (part->leader < 0)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "clustermap: isr change: partition has no leader");
    if (nisr == 0 || !isr)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "clustermap: isr change: empty isr");
    if (nisr > part->nreplicas)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "clustermap: isr change: %u members, %u replicas", nisr, part->nreplicas);
    for (uint32_t i = 0; i < nisr; i++) {
        if (!sx_clustermap_has(part->replicas, part->nreplicas, isr[i]))
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "clustermap: isr change: worker %d is not a replica", isr[i]);
        if (sx_clustermap_has(isr, i, isr[i]))
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "clustermap: isr change: worker %d listed twice", isr[i]);
    }
    if (!sx_clustermap_has(isr, nisr, part->leader))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "clustermap: isr change: leader %d missing",
                          part->leader);
    memcpy(part->isr, isr, nisr * sizeof(*isr));
    memset(part->isr + nisr, 0, (SX_MAX_REPLICAS - nisr) * sizeof(*isr));
    part->nisr = nisr;
    part->isr_version++;
    for (uint32_t i = 0; i < nisr; i++) /* in sync again: no longer merely eligible */
        set_remove(part->elr, &part->nelr, isr[i]);
    return SX_OK;
}

void sx_clustermap_track_elr(sx_log_part *part, const int32_t *old_isr, uint32_t old_nisr,
                             uint32_t min_isr)
{
    assert(part && (old_isr || old_nisr == 0) && old_nisr <= SX_MAX_REPLICAS);
    for (uint32_t i = part->nelr; i-- > 0;) {
        int32_t w = part->elr[i];
        if (part->nisr >= min_isr || sx_clustermap_has(part->isr, part->nisr, w) ||
            !sx_clustermap_has(part->replicas, part->nreplicas, w))
            set_remove(part->elr, &part->nelr, w);
    }
    if (part->nisr >= min_isr)
        return;
    for (uint32_t i = 0; i < old_nisr; i++) {
        int32_t w = old_isr[i];
        if (!sx_clustermap_has(part->isr, part->nisr, w) &&
            sx_clustermap_has(part->replicas, part->nreplicas, w) &&
            !sx_clustermap_has(part->elr, part->nelr, w)) {
            assert(part->nelr < SX_MAX_REPLICAS); /* a subset of replicas */
            part->elr[part->nelr++] = w;
        }
    }
}

bool sx_clustermap_store_lost(sx_log_part *part, int32_t w)
{
    assert(part);
    bool in_isr = set_remove(part->isr, &part->nisr, w);
    bool in_elr = set_remove(part->elr, &part->nelr, w);
    if (in_isr)
        part->isr_version++;
    if (part->leader == w) {
        part->leader = -1;
        part->epoch++;
    }
    return in_isr || in_elr;
}

bool sx_clustermap_sole_holder(const sx_log_part *part, int32_t w)
{
    bool in =
        sx_clustermap_has(part->isr, part->nisr, w) || sx_clustermap_has(part->elr, part->nelr, w);
    return in && part->nisr + part->nelr == 1;
}

/* Checks that set holds n distinct workers below nworkers; the message names
 * the problem. */
static bool valid_set(const int32_t *set, uint32_t n, uint32_t nworkers, const char **why,
                      int32_t *bad)
{
    if (n > SX_MAX_REPLICAS) {
        *why = "too many members";
        *bad = (int32_t)n;
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (set[i] < 0 || (uint32_t)set[i] >= nworkers) {
            *why = "worker out of range";
            *bad = set[i];
            return false;
        }
        if (sx_clustermap_has(set, i, set[i])) {
            *why = "worker listed twice";
            *bad = set[i];
            return false;
        }
    }
    return true;
}

sx_status sx_clustermap_check(const sx_log_part *parts, uint32_t nparts, const sx_term_part *terms,
                              uint32_t nterms, uint32_t nworkers, sx_err *err)
{
    const char *why = NULL;
    int32_t bad = 0;
    for (uint32_t p = 0; p < nparts; p++) {
        const sx_log_part *lp = &parts[p];
        if (!valid_set(lp->replicas, lp->nreplicas, nworkers, &why, &bad))
            return sx_err_set(err, SX_INTERNAL, "clustermap: log partition %u: replicas: %s (%d)",
                              p, why, bad);
        if (!valid_set(lp->isr, lp->nisr, nworkers, &why, &bad))
            return sx_err_set(err, SX_INTERNAL, "clustermap: log partition %u: isr: %s (%d)", p,
                              why, bad);
        for (uint32_t i = 0; i < lp->nisr; i++)
            if (!sx_clustermap_has(lp->replicas, lp->nreplicas, lp->isr[i]))
                return sx_err_set(err, SX_INTERNAL,
                                  "clustermap: log partition %u: isr member %d is not a replica", p,
                                  lp->isr[i]);
        if (!valid_set(lp->elr, lp->nelr, nworkers, &why, &bad))
            return sx_err_set(err, SX_INTERNAL, "clustermap: log partition %u: elr: %s (%d)", p,
                              why, bad);
        for (uint32_t i = 0; i < lp->nelr; i++)
            if (!sx_clustermap_has(lp->replicas, lp->nreplicas, lp->elr[i]) ||
                sx_clustermap_has(lp->isr, lp->nisr, lp->elr[i]))
                return sx_err_set(err, SX_INTERNAL,
                                  "clustermap: log partition %u: elr member %d is not a replica "
                                  "outside the isr",
                                  p, lp->elr[i]);
        /* An isr emptied by lost stores has a version; a never assigned one has none. */
        if (lp->nisr == 0 && lp->nreplicas > 0 && lp->isr_version == 0)
            return sx_err_set(err, SX_INTERNAL,
                              "clustermap: log partition %u: %u replicas but an empty isr", p,
                              lp->nreplicas);
        if (lp->leader != -1 && !sx_clustermap_has(lp->isr, lp->nisr, lp->leader))
            return sx_err_set(err, SX_INTERNAL,
                              "clustermap: log partition %u: leader %d is not in the isr", p,
                              lp->leader);
        if (lp->moving && (lp->move_from == lp->move_to ||
                           !sx_clustermap_has(lp->replicas, lp->nreplicas, lp->move_from) ||
                           !sx_clustermap_has(lp->replicas, lp->nreplicas, lp->move_to)))
            return sx_err_set(err, SX_INTERNAL,
                              "clustermap: log partition %u: move %d -> %d is not between two "
                              "replicas",
                              p, lp->move_from, lp->move_to);
    }
    for (uint32_t t = 0; t < nterms; t++) {
        int32_t o = terms[t].owner;
        if (o != -1 && (o < 0 || (uint32_t)o >= nworkers))
            return sx_err_set(err, SX_INTERNAL,
                              "clustermap: term partition %u: owner %d out of range", t, o);
    }
    return SX_OK;
}
