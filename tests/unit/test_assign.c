/* test_assign.c: unit tests for clustermap.h (sx_assign, the isr
 * compare-and-set, the invariant check), through the public header only.
 *
 * Fixed scenarios (fresh clusters, balance over a grid of sizes, stickiness on
 * join and leave, a partition whose whole isr dies, term partitions, eligible
 * leaders and lost stores) and randomized property tests, one of which keeps a
 * model of who holds every committed entry while stores are lost. Every sx_assign call goes through
 * cl_assign, which checks the invariants and the change counts against the previous map. The random
 * test takes its seed from SHARDEX_TEST_SEED, else from the clock, and prints it (seed=N) so that a
 * failure can be replayed. SHARDEX_TEST_VERBOSE=1 prints the measured stickiness figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "clustermap.h"
#include "fixture.h"

#define MAXW 64            /* workers a test cluster may register */
#define PROPERTY_RUNS 60   /* random clusters in the property test */
#define PROPERTY_STEPS 200 /* events per random cluster */
#define SETTLE_EVERY 20    /* property steps between settled balance checks */

static unsigned long long seed;
static uint64_t rng_state;
static bool verbose;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1) / b;
}

/* A coordinator's view: the registry's liveness and the map. */
typedef struct cluster {
    sx_assign_settings s;
    uint32_t nw; /* registered workers: indices 0..nw-1 */
    bool alive[MAXW];
    uint32_t np;
    uint32_t nt;
    sx_log_part *parts;
    sx_term_part *terms;
    sx_assign_changes ch; /* of the last cl_assign */
} cluster;

static void cl_init(cluster *c, uint32_t nlive, uint32_t np, uint32_t nt, uint32_t r)
{
    memset(c, 0, sizeof(*c));
    c->s.replication = r;
    c->s.min_isr = 1;
    c->nw = nlive;
    for (uint32_t w = 0; w < nlive; w++)
        c->alive[w] = true;
    c->np = np;
    c->nt = nt;
    c->parts = calloc(np ? np : 1, sizeof(*c->parts));
    c->terms = calloc(nt ? nt : 1, sizeof(*c->terms));
    assert_non_null(c->parts);
    assert_non_null(c->terms);
    for (uint32_t p = 0; p < np; p++)
        c->parts[p].leader = -1;
    for (uint32_t t = 0; t < nt; t++)
        c->terms[t].owner = -1;
}

static void cl_copy(cluster *dst, const cluster *src)
{
    *dst = *src;
    dst->parts = calloc(src->np ? src->np : 1, sizeof(*dst->parts));
    dst->terms = calloc(src->nt ? src->nt : 1, sizeof(*dst->terms));
    assert_non_null(dst->parts);
    assert_non_null(dst->terms);
    memcpy(dst->parts, src->parts, src->np * sizeof(*dst->parts));
    memcpy(dst->terms, src->terms, src->nt * sizeof(*dst->terms));
}

static void cl_free(cluster *c)
{
    free(c->parts);
    free(c->terms);
    c->parts = NULL;
    c->terms = NULL;
}

static uint32_t nlive(const cluster *c)
{
    uint32_t n = 0;
    for (uint32_t w = 0; w < c->nw; w++)
        n += c->alive[w];
    return n;
}

static bool live(const cluster *c, int32_t w)
{
    return w >= 0 && (uint32_t)w < c->nw && c->alive[w];
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

static bool any_live(const cluster *c, const int32_t *set, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (live(c, set[i]))
            return true;
    return false;
}

/* Everything that must hold after every sx_assign, given the map before it. */
static void check_step(const cluster *c, const sx_log_part *prev, const sx_term_part *prevt)
{
    sx_err err = {0};
    if (sx_clustermap_check(c->parts, c->np, c->terms, c->nt, c->nw, &err) != SX_OK)
        fail_msg("check: %s, seed=%llu", err.msg, seed);

    uint32_t n = nlive(c);
    uint32_t r = c->s.replication;
    sx_assign_changes want = {0};
    for (uint32_t p = 0; p < c->np; p++) {
        const sx_log_part *lp = &c->parts[p];
        const sx_log_part *op = &prev[p];
        if (lp->epoch < op->epoch || lp->isr_version < op->isr_version)
            fail_msg("partition %u: epoch or isr_version went down, seed=%llu", p, seed);
        if ((lp->epoch > op->epoch) != (lp->leader != op->leader))
            fail_msg("partition %u: leader %d -> %d but epoch %llu -> %llu, seed=%llu", p,
                     op->leader, lp->leader, (unsigned long long)op->epoch,
                     (unsigned long long)lp->epoch, seed);
        bool isr_changed = !same_set(lp->isr, lp->nisr, op->isr, op->nisr);
        if ((lp->isr_version > op->isr_version) != isr_changed)
            fail_msg("partition %u: isr changed %d but isr_version %llu -> %llu, seed=%llu", p,
                     isr_changed, (unsigned long long)op->isr_version,
                     (unsigned long long)lp->isr_version, seed);
        if (lp->leader != -1 && !live(c, lp->leader))
            fail_msg("partition %u: dead leader %d, seed=%llu", p, lp->leader, seed);
        /* Rule 5: a new leader comes from the last recorded isr, or, when every
         * member of that lost its store (an empty isr that was assigned), from
         * the eligible leaders. */
        bool emptied = op->nisr == 0 && op->isr_version > 0;
        if (op->nisr > 0 && lp->leader != -1 && lp->leader != op->leader &&
            !sx_clustermap_has(op->isr, op->nisr, lp->leader))
            fail_msg("partition %u: leader %d was not in the isr, seed=%llu", p, lp->leader, seed);
        if (emptied && lp->leader != -1 && !sx_clustermap_has(op->elr, op->nelr, lp->leader))
            fail_msg("partition %u: leader %d was not eligible, seed=%llu", p, lp->leader, seed);
        /* Available whenever it can be; otherwise the isr is kept whole. */
        bool can_lead = op->nisr > 0 ? any_live(c, op->isr, op->nisr)
                        : emptied    ? any_live(c, op->elr, op->nelr)
                                     : n > 0;
        if (can_lead && lp->leader == -1)
            fail_msg("partition %u: a live isr member but no leader, seed=%llu", p, seed);
        if (!can_lead && (op->nisr > 0 || emptied) && (lp->leader != -1 || isr_changed))
            fail_msg("partition %u: whole isr dead but leader %d / isr changed, seed=%llu", p,
                     lp->leader, seed);
        /* The elr rule: never beside an isr at min_isr. */
        if (lp->nelr > 0 && lp->nisr >= c->s.min_isr)
            fail_msg("partition %u: %u eligible leaders beside %u isr members, seed=%llu", p,
                     lp->nelr, lp->nisr, seed);
        /* Only live replicas, but for the dead members of a kept isr and of the elr. */
        uint32_t lr = 0, dead = 0;
        for (uint32_t i = 0; i < lp->nreplicas; i++) {
            int32_t w = lp->replicas[i];
            if (live(c, w)) {
                lr++;
                continue;
            }
            dead++;
            if ((!sx_clustermap_has(lp->isr, lp->nisr, w) || any_live(c, lp->isr, lp->nisr)) &&
                !sx_clustermap_has(lp->elr, lp->nelr, w))
                fail_msg("partition %u: dead replica %d kept, seed=%llu", p, w, seed);
        }
        uint32_t target = r < n ? r : n;
        target = target < SX_MAX_REPLICAS - dead ? target : SX_MAX_REPLICAS - dead;
        if (lr != target)
            fail_msg("partition %u: %u live replicas, want %u, seed=%llu", p, lr, target, seed);

        want.leader_changes += lp->leader != op->leader;
        want.isr_changes += isr_changed;
        want.unavailable += lp->leader == -1;
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            want.replicas_added += !sx_clustermap_has(op->replicas, op->nreplicas, lp->replicas[i]);
        for (uint32_t i = 0; i < op->nreplicas; i++)
            want.replicas_removed +=
                !sx_clustermap_has(lp->replicas, lp->nreplicas, op->replicas[i]);
    }
    for (uint32_t t = 0; t < c->nt; t++) {
        const sx_term_part *tp = &c->terms[t];
        if ((tp->owner == -1) != (n == 0) || (tp->owner != -1 && !live(c, tp->owner)))
            fail_msg("term %u: owner %d with %u live workers, seed=%llu", t, tp->owner, n, seed);
        if (tp->epoch < prevt[t].epoch ||
            (tp->epoch > prevt[t].epoch) != (tp->owner != prevt[t].owner))
            fail_msg("term %u: owner %d -> %d, epoch %llu -> %llu, seed=%llu", t, prevt[t].owner,
                     tp->owner, (unsigned long long)prevt[t].epoch, (unsigned long long)tp->epoch,
                     seed);
        want.owner_changes += tp->owner != prevt[t].owner;
    }
    if (memcmp(&want, &c->ch, sizeof(want)) != 0)
        fail_msg("changes: leaders %u/%u added %u/%u removed %u/%u isr %u/%u owners %u/%u "
                 "unavailable %u/%u (reported/actual), seed=%llu",
                 c->ch.leader_changes, want.leader_changes, c->ch.replicas_added,
                 want.replicas_added, c->ch.replicas_removed, want.replicas_removed,
                 c->ch.isr_changes, want.isr_changes, c->ch.owner_changes, want.owner_changes,
                 c->ch.unavailable, want.unavailable, seed);
}

/* sx_assign on the cluster, checked against the map before it. */
static void cl_assign(cluster *c)
{
    sx_log_part *prev = calloc(c->np ? c->np : 1, sizeof(*prev));
    sx_term_part *prevt = calloc(c->nt ? c->nt : 1, sizeof(*prevt));
    assert_non_null(prev);
    assert_non_null(prevt);
    memcpy(prev, c->parts, c->np * sizeof(*prev));
    memcpy(prevt, c->terms, c->nt * sizeof(*prevt));
    sx_assign(&c->s, c->alive, c->nw, c->parts, c->np, c->terms, c->nt, &c->ch);
    check_step(c, prev, prevt);
    free(prevt);
    free(prev);
}

static bool no_changes(const sx_assign_changes *ch)
{
    return ch->leader_changes == 0 && ch->replicas_added == 0 && ch->replicas_removed == 0 &&
           ch->isr_changes == 0 && ch->owner_changes == 0;
}

/* Per live worker: replicas held, partitions led, term partitions owned. */
typedef struct loads {
    uint32_t rep[MAXW];
    uint32_t lead[MAXW];
    uint32_t own[MAXW];
} loads;

static void get_loads(const cluster *c, loads *l)
{
    memset(l, 0, sizeof(*l));
    for (uint32_t p = 0; p < c->np; p++) {
        const sx_log_part *lp = &c->parts[p];
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            if (live(c, lp->replicas[i]))
                l->rep[lp->replicas[i]]++;
        if (lp->leader >= 0)
            l->lead[lp->leader]++;
    }
    for (uint32_t t = 0; t < c->nt; t++)
        if (c->terms[t].owner >= 0)
            l->own[c->terms[t].owner]++;
}

/* Largest minus smallest load over the live workers. */
static uint32_t spread(const cluster *c, const uint32_t *load)
{
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t w = 0; w < c->nw; w++) {
        if (!c->alive[w])
            continue;
        lo = load[w] < lo ? load[w] : lo;
        hi = load[w] > hi ? load[w] : hi;
    }
    return hi >= lo ? hi - lo : 0;
}

/* The weaker balance that sx_assign always reaches: no replica (leadership)
 * may still move from a worker to one with two fewer. Only the leader's
 * replica, the last isr member and elr members are pinned, and only isr
 * members may lead. */
static void check_local_balance(const cluster *c)
{
    loads l;
    get_loads(c, &l);
    for (uint32_t x = 0; x < c->nw; x++) {
        for (uint32_t y = 0; y < c->nw; y++) {
            if (!c->alive[x] || !c->alive[y])
                continue;
            for (uint32_t p = 0; p < c->np; p++) {
                const sx_log_part *lp = &c->parts[p];
                int32_t wx = (int32_t)x, wy = (int32_t)y;
                if (l.rep[x] >= l.rep[y] + 2 &&
                    sx_clustermap_has(lp->replicas, lp->nreplicas, wx) &&
                    !sx_clustermap_has(lp->replicas, lp->nreplicas, wy) && lp->leader != wx &&
                    !(lp->nisr == 1 && lp->isr[0] == wx) &&
                    !sx_clustermap_has(lp->elr, lp->nelr, wx))
                    fail_msg("replicas: %u holds %u, %u holds %u, partition %u could move, "
                             "seed=%llu",
                             x, l.rep[x], y, l.rep[y], p, seed);
                if (l.lead[x] >= l.lead[y] + 2 && lp->leader == wx &&
                    sx_clustermap_has(lp->isr, lp->nisr, wy))
                    fail_msg("leaders: %u leads %u, %u leads %u, partition %u could move, "
                             "seed=%llu",
                             x, l.lead[x], y, l.lead[y], p, seed);
            }
        }
    }
    if (nlive(c) > 0 && spread(c, l.own) > 1)
        fail_msg("owners spread %u, seed=%llu", spread(c, l.own), seed);
}

/* A leader's request: the isr becomes every (live) replica. */
static void catch_up_partition(cluster *c, uint32_t p)
{
    sx_log_part *lp = &c->parts[p];
    if (lp->leader < 0 || lp->nisr == lp->nreplicas)
        return;
    sx_err err = {0};
    if (sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, lp->replicas, lp->nreplicas,
                                 &err) != SX_OK)
        fail_msg("catch-up of partition %u: %s, seed=%llu", p, err.msg, seed);
}

static void catch_up_all(cluster *c)
{
    for (uint32_t p = 0; p < c->np; p++)
        catch_up_partition(c, p);
}

/* Assigns, then lets every replica catch up and reassigns until nothing moves:
 * the steady map a cluster settles into between membership changes. */
static void settle(cluster *c)
{
    cl_assign(c);
    for (int i = 0; i < 8; i++) {
        catch_up_all(c);
        cl_assign(c);
        if (no_changes(&c->ch))
            return;
    }
    fail_msg("no steady map after 8 rounds, seed=%llu", seed);
}

static void test_fresh_three_workers(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 3, 8, 8, 3);
    cl_assign(&c);
    loads l;
    get_loads(&c, &l);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nreplicas, 3);
        assert_int_equal(c.parts[p].nisr, 3);
        assert_true(c.parts[p].leader >= 0);
        assert_int_equal(c.parts[p].epoch, 1);
    }
    uint32_t two = 0, three = 0;
    for (uint32_t w = 0; w < 3; w++) {
        assert_int_equal(l.rep[w], 8);
        two += l.lead[w] == 2;
        three += l.lead[w] == 3;
    }
    assert_int_equal(two, 1);
    assert_int_equal(three, 2);
    assert_int_equal(c.ch.leader_changes, 8);
    assert_int_equal(c.ch.replicas_added, 24);
    assert_int_equal(c.ch.owner_changes, 8);
    cl_free(&c);
}

static void test_fresh_one_worker_then_two_join(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 1, 8, 8, 3);
    cl_assign(&c);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nreplicas, 1);
        assert_int_equal(c.parts[p].nisr, 1);
        assert_int_equal(c.parts[p].leader, 0);
    }
    c.nw = 3;
    c.alive[1] = c.alive[2] = true;
    cl_assign(&c);
    assert_int_equal(c.ch.replicas_added, 16);
    assert_int_equal(c.ch.replicas_removed, 0);
    assert_int_equal(c.ch.leader_changes, 0);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nreplicas, 3);
        assert_int_equal(c.parts[p].nisr, 1); /* the new ones must catch up first */
        assert_int_equal(c.parts[p].leader, 0);
    }
    loads l;
    get_loads(&c, &l);
    assert_true(spread(&c, l.rep) <= 1);
    assert_true(spread(&c, l.own) <= 1);
    /* Once they are in the isr, leadership spreads. */
    catch_up_all(&c);
    cl_assign(&c);
    get_loads(&c, &l);
    assert_true(spread(&c, l.lead) <= 1);
    assert_int_equal(c.ch.leader_changes, 5);
    cl_free(&c);
}

static void test_fresh_balance_grid(void **state)
{
    (void)state;
    static const uint32_t ps[] = {8, 32, 64, 256};
    for (uint32_t w = 3; w <= 16; w++) {
        for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
            for (uint32_t r = 1; r <= 3; r++) {
                cluster c;
                cl_init(&c, w, ps[i], ps[i], r);
                cl_assign(&c);
                loads l;
                get_loads(&c, &l);
                if (spread(&c, l.rep) > 1 || spread(&c, l.lead) > 1 || spread(&c, l.own) > 1)
                    fail_msg("W=%u P=%u R=%u: spread replicas %u leaders %u owners %u", w, ps[i], r,
                             spread(&c, l.rep), spread(&c, l.lead), spread(&c, l.own));
                cl_free(&c);
            }
        }
    }
}

static const uint32_t stick_ps[] = {8, 16, 32, 64, 100, 128, 256};

/* One worker joins a steady cluster of n.
 *
 * Bound on replica moves: the steady map has replica loads within one of each
 * other and the newcomer starts at 0, so it is the only worker two or more
 * below the most loaded; every step-4 move (or chain, whose inner workers keep
 * their loads) ends at it, and the loop stops once it is within one of the
 * most loaded. Loads then sum to P*R over n+1 workers with spread <= 1, so the
 * newcomer receives at most ceil(P*R/(n+1)) replicas. A direct move is one
 * removal and one addition; a chain would cost two per hop, but the most
 * loaded worker always has a follower replica of a partition the newcomer
 * lacks (it leads about P/n of its P*R/n), so no chain is needed: the bound is
 * 2*ceil(P*R/(n+1)) with no slack, and the grid reaches it exactly.
 * No leader moves in that call: the newcomer is in no isr yet and the others
 * were balanced. Once its replicas catch up, leaders move to it, by the same
 * argument at most ceil(P/(n+1)) units; a unit is one handover when the most
 * loaded leader has a partition with the newcomer in its isr, else a chain of
 * two (measured: never longer), hence 2*ceil(P/(n+1)).
 * With R = 1 nothing can move: a partition's only replica is its leader's,
 * which step 4 never moves (see clustermap.h). */
static void test_join_stickiness(void **state)
{
    (void)state;
    uint32_t worst = 0;
    for (uint32_t n = 3; n <= 16; n++) {
        for (size_t i = 0; i < sizeof(stick_ps) / sizeof(stick_ps[0]); i++) {
            for (uint32_t r = 1; r <= 3; r++) {
                uint32_t np = stick_ps[i];
                cluster c;
                cl_init(&c, n, np, np, r);
                settle(&c);
                c.alive[c.nw++] = true;
                cl_assign(&c);
                uint32_t moves = c.ch.replicas_added + c.ch.replicas_removed;
                uint32_t bound = 2 * ceil_div(np * r, n + 1);
                if (moves > bound || c.ch.replicas_added != c.ch.replicas_removed)
                    fail_msg("join n=%u P=%u R=%u: added %u removed %u, bound %u", n, np, r,
                             c.ch.replicas_added, c.ch.replicas_removed, bound);
                if (c.ch.leader_changes != 0)
                    fail_msg("join n=%u P=%u R=%u: %u leader changes", n, np, r,
                             c.ch.leader_changes);
                loads l;
                get_loads(&c, &l);
                if (r > 1 && spread(&c, l.rep) > 1)
                    fail_msg("join n=%u P=%u R=%u: replica spread %u", n, np, r, spread(&c, l.rep));
                if (r == 1 && moves != 0)
                    fail_msg("join n=%u P=%u R=1: %u moves", n, np, moves);
                if (c.ch.owner_changes > ceil_div(np, n + 1))
                    fail_msg("join n=%u P=%u: %u owner changes", n, np, c.ch.owner_changes);
                uint32_t term_moves = c.ch.owner_changes;
                worst = moves * 100 / bound > worst ? moves * 100 / bound : worst;

                catch_up_all(&c);
                cl_assign(&c);
                uint32_t lmoves = c.ch.leader_changes;
                if (lmoves > 2 * ceil_div(np, n + 1) || c.ch.replicas_added != 0)
                    fail_msg("join n=%u P=%u R=%u: then %u leader changes, %u replicas added", n,
                             np, r, lmoves, c.ch.replicas_added);
                get_loads(&c, &l);
                if (r > 1 && spread(&c, l.lead) > 1)
                    fail_msg("join n=%u P=%u R=%u: leader spread %u after catch-up", n, np, r,
                             spread(&c, l.lead));
                if (verbose && (n == 3 || n == 8 || n == 16) && (np == 16 || np == 256))
                    printf("join  n=%2u P=%3u R=%u: replica moves %3u (added+removed %3u, "
                           "bound %3u), then leader moves %2u, owner moves %2u\n",
                           n, np, r, moves / 2, moves, bound, lmoves, term_moves);
                cl_free(&c);
            }
        }
    }
    if (verbose)
        printf("join: worst added+removed = %u%% of 2*ceil(P*R/(n+1))\n", worst);
}

/* One worker of a steady cluster of n dies.
 *
 * Replicas: the partitions that held it each gain exactly one replica
 * (n-1 >= R); where it was the whole isr (R = 1) it stays, dead. Step 4 moves
 * only replicas added in this call when it can (they hold no data), so the
 * balance it restores normally stays within those partitions. Not always:
 * when the least loaded survivors already sit in every partition the dead
 * worker held (n=6, P=8, R=2: two partitions {4,5}), no placement of the
 * replacements is balanced, and step 4 must move one other replica. That
 * happens in 9 of the grid's 2,793 deaths, one move each: asserted <= 1.
 * Leaders: the partitions it led get new ones (forced). Any other change is a
 * step 5 handover, counted as "extra": the loads were within one before, and
 * step 2 gives each orphan to its least-leading isr member, so each orphan
 * adds at most one unit of imbalance and step 5 moves at most `led` units, by
 * a handover or a chain of two (measured: extra <= led in all but one case of
 * the grid, where it is 2 for led = 1). Asserted: extra <= 2 * led. */
static void test_leave_stickiness(void **state)
{
    (void)state;
    uint32_t cases = 0, outside_cases = 0;
    for (uint32_t n = 3; n <= 16; n++) {
        for (size_t i = 0; i < sizeof(stick_ps) / sizeof(stick_ps[0]); i++) {
            for (uint32_t r = 1; r <= 3; r++) {
                uint32_t np = stick_ps[i];
                cluster steady;
                cl_init(&steady, n, np, np, r);
                settle(&steady);
                uint32_t max_extra = 0, max_led = 0, max_held = 0, max_added = 0, max_removed = 0;
                for (uint32_t d = 0; d < n; d++) {
                    cluster c;
                    cl_copy(&c, &steady);
                    c.alive[d] = false;
                    cl_assign(&c);
                    uint32_t held = 0, led = 0, extra = 0, sole = 0, outside = 0;
                    int32_t dw = (int32_t)d;
                    for (uint32_t p = 0; p < np; p++) {
                        const sx_log_part *o = &steady.parts[p];
                        const sx_log_part *lp = &c.parts[p];
                        bool had = sx_clustermap_has(o->replicas, o->nreplicas, dw);
                        held += had;
                        sole += o->nisr == 1 && o->isr[0] == dw;
                        led += o->leader == dw;
                        if (!had && (o->nreplicas != lp->nreplicas ||
                                     memcmp(o->replicas, lp->replicas, sizeof(o->replicas)) ||
                                     !same_set(o->isr, o->nisr, lp->isr, lp->nisr))) {
                            for (uint32_t k = 0; k < o->nreplicas; k++)
                                outside +=
                                    !sx_clustermap_has(lp->replicas, lp->nreplicas, o->replicas[k]);
                        }
                        if (o->leader != dw && lp->leader != o->leader)
                            extra++;
                        if (lp->leader == o->leader && lp->epoch != o->epoch)
                            fail_msg("leave: partition %u epoch moved without its leader", p);
                    }
                    /* Where it was the whole isr (R = 1) it stays, dead, for
                     * rule 5, and the partition waits for it. */
                    uint32_t want = n - 1 >= r ? held : 0;
                    if (c.ch.replicas_added != want + outside ||
                        c.ch.replicas_removed != held - sole + outside || outside > 1 ||
                        c.ch.unavailable != sole)
                        fail_msg("leave n=%u P=%u R=%u d=%u: held %u, added %u removed %u, "
                                 "%u moves elsewhere",
                                 n, np, r, d, held, c.ch.replicas_added, c.ch.replicas_removed,
                                 outside);
                    outside_cases += outside > 0;
                    cases++;
                    if (c.ch.leader_changes != led + extra || extra > 2 * led)
                        fail_msg("leave n=%u P=%u R=%u d=%u: led %u, leader changes %u, "
                                 "rebalanced %u",
                                 n, np, r, d, led, c.ch.leader_changes, extra);
                    loads l;
                    get_loads(&c, &l);
                    if (spread(&c, l.rep) > 1 || spread(&c, l.own) > 1)
                        fail_msg("leave n=%u P=%u R=%u d=%u: spread replicas %u owners %u", n, np,
                                 r, d, spread(&c, l.rep), spread(&c, l.own));
                    check_local_balance(&c);
                    max_extra = extra > max_extra ? extra : max_extra;
                    max_led = led > max_led ? led : max_led;
                    if (held > max_held) {
                        max_held = held;
                        max_added = c.ch.replicas_added;
                        max_removed = c.ch.replicas_removed;
                    }
                    cl_free(&c);
                }
                if (verbose && (n == 3 || n == 8 || n == 16) && (np == 16 || np == 256))
                    printf("leave n=%2u P=%3u R=%u: worst over the dead worker: held %3u "
                           "(added %3u, removed %3u), led %2u, extra leader moves %2u\n",
                           n, np, r, max_held, max_added, max_removed, max_led, max_extra);
                cl_free(&steady);
            }
        }
    }
    if (verbose)
        printf("leave: %u of %u deaths moved one replica of a partition without the dead "
               "worker\n",
               outside_cases, cases);
}

/* Rule 5: a partition whose whole isr is dead waits for a member of that isr,
 * even with a live replica outside it all along. */
static void test_dead_isr_waits_for_a_member(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 3, 1, 0, 2);
    cl_assign(&c);
    sx_log_part *lp = &c.parts[0];
    assert_int_equal(lp->nisr, 2); /* workers 0 and 1; 2 holds nothing */
    int32_t a = lp->isr[0], b = lp->isr[1];
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);

    /* a dies: b leads alone; 2 joins as a replica outside the isr. */
    c.alive[a] = false;
    cl_assign(&c);
    assert_int_equal(lp->leader, b);
    assert_int_equal(lp->nisr, 1);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, 2));
    uint64_t epoch = lp->epoch;

    /* b dies before 2 caught up: unavailable, isr {b} kept. */
    c.alive[b] = false;
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    assert_int_equal(lp->epoch, epoch + 1);
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->isr[0], b);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, b));
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, 2));
    assert_int_equal(c.ch.unavailable, 1);
    /* Nobody may grow that isr: there is no leader to ask. */
    int32_t grown[2] = {b, 2};
    sx_err err = {0};
    assert_int_equal(sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, grown, 2, &err),
                     SX_FAILED_PRECONDITION);

    /* a returns: it was not in the last isr, so it may not lead either. */
    c.alive[a] = true;
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    assert_int_equal(lp->epoch, epoch + 1);
    assert_int_equal(lp->nisr, 1);
    cl_assign(&c);
    assert_true(no_changes(&c.ch));

    /* b returns and leads; the partition is trimmed back to R live replicas. */
    c.alive[b] = true;
    cl_assign(&c);
    assert_int_equal(lp->leader, b);
    assert_int_equal(lp->epoch, epoch + 2);
    assert_int_equal(c.ch.unavailable, 0);
    assert_int_equal(lp->nreplicas, 2);
    cl_free(&c);
}

/* Several partitions lose their whole isr at once and come back one by one. */
static void test_all_dead_and_back(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 4, 16, 8, 3);
    settle(&c);
    for (uint32_t w = 0; w < 4; w++)
        c.alive[w] = false;
    cl_assign(&c);
    assert_int_equal(c.ch.unavailable, 16);
    assert_int_equal(c.ch.leader_changes, 16);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nisr, 3);
        assert_int_equal(c.parts[p].nreplicas, 3);
    }
    for (uint32_t t = 0; t < c.nt; t++)
        assert_int_equal(c.terms[t].owner, -1);
    c.alive[2] = true;
    cl_assign(&c);
    for (uint32_t p = 0; p < c.np; p++) {
        const sx_log_part *lp = &c.parts[p];
        assert_int_equal(lp->leader, sx_clustermap_has(lp->isr, lp->nisr, 2) ? 2 : -1);
    }
    for (uint32_t t = 0; t < c.nt; t++)
        assert_int_equal(c.terms[t].owner, 2);
    for (uint32_t w = 0; w < 4; w++)
        c.alive[w] = true;
    cl_assign(&c);
    assert_int_equal(c.ch.unavailable, 0);
    catch_up_all(&c);
    cl_assign(&c);
    loads l;
    get_loads(&c, &l);
    assert_true(spread(&c, l.rep) <= 1);
    assert_true(spread(&c, l.lead) <= 1);
    assert_true(spread(&c, l.own) <= 1);
    cl_free(&c);
}

static void test_change_isr(void **state)
{
    (void)state;
    sx_log_part lp = {.epoch = 5,
                      .isr_version = 9,
                      .leader = 2,
                      .nreplicas = 3,
                      .replicas = {2, 4, 6},
                      .nisr = 2,
                      .isr = {2, 4}};
    sx_err err = {0};
    int32_t all[3] = {2, 4, 6};
    int32_t no_leader[2] = {4, 6};
    int32_t stranger[2] = {2, 7};
    int32_t twice[2] = {2, 2};

    assert_int_equal(sx_clustermap_change_isr(&lp, 4, 9, all, 3, &err), SX_FAILED_PRECONDITION);
    assert_int_equal(err.code, SX_FAILED_PRECONDITION);
    assert_true(strlen(err.msg) > 0);
    assert_int_equal(sx_clustermap_change_isr(&lp, 6, 9, all, 3, &err), SX_FAILED_PRECONDITION);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 8, all, 3, &err), SX_FAILED_PRECONDITION);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, all, 0, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, no_leader, 2, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, stranger, 2, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, twice, 2, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(err.code, SX_INVALID_ARGUMENT);
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, all, 3, NULL), SX_OK);
    assert_int_equal(lp.isr_version, 10);
    assert_int_equal(lp.epoch, 5);
    assert_int_equal(lp.nisr, 3);
    /* The same request again is stale now. */
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 9, all, 3, &err), SX_FAILED_PRECONDITION);
    /* Shrink to the leader alone. */
    assert_int_equal(sx_clustermap_change_isr(&lp, 5, 10, all, 1, &err), SX_OK);
    assert_int_equal(lp.nisr, 1);
    assert_int_equal(lp.isr[0], 2);
    assert_int_equal(lp.isr_version, 11);
    assert_int_equal(sx_clustermap_check(&lp, 1, NULL, 0, 8, &err), SX_OK);
}

static void test_check_rejects(void **state)
{
    (void)state;
    sx_err err = {0};
    sx_log_part ok = {.leader = 1, .nreplicas = 2, .replicas = {1, 3}, .nisr = 1, .isr = {1}};
    sx_log_part bad;
    assert_int_equal(sx_clustermap_check(&ok, 1, NULL, 0, 4, &err), SX_OK);
    bad = ok;
    bad.leader = 3; /* not in the isr */
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    assert_non_null(strstr(err.msg, "partition 0"));
    bad = ok;
    bad.replicas[1] = 1; /* twice */
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    bad = ok;
    bad.isr[0] = 2; /* not a replica */
    bad.leader = 2;
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    bad = ok;
    bad.nisr = 0; /* replicas but no isr */
    bad.leader = -1;
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    assert_int_equal(sx_clustermap_check(&ok, 1, NULL, 0, 3, &err), SX_INTERNAL); /* 3 >= 3 */
    sx_term_part t = {.owner = 4};
    assert_int_equal(sx_clustermap_check(&ok, 1, &t, 1, 4, &err), SX_INTERNAL);
    t.owner = -1;
    assert_int_equal(sx_clustermap_check(&ok, 1, &t, 1, 4, &err), SX_OK);
}

static void test_terms(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 4, 0, 10, 1);
    cl_assign(&c);
    assert_int_equal(c.ch.owner_changes, 10);
    loads l;
    get_loads(&c, &l);
    assert_true(spread(&c, l.own) <= 1);
    sx_term_part before[10];
    memcpy(before, c.terms, sizeof(before));
    int32_t d = c.terms[0].owner;
    uint32_t owned = l.own[d];
    c.alive[d] = false;
    cl_assign(&c);
    assert_int_equal(c.ch.owner_changes, owned);
    for (uint32_t t = 0; t < 10; t++) {
        if (before[t].owner == d) {
            assert_int_not_equal(c.terms[t].owner, d);
            assert_int_equal(c.terms[t].epoch, before[t].epoch + 1);
        } else {
            assert_int_equal(c.terms[t].owner, before[t].owner);
            assert_int_equal(c.terms[t].epoch, before[t].epoch);
        }
    }
    get_loads(&c, &l);
    assert_true(spread(&c, l.own) <= 1);
    /* It comes back: balancing hands it a share, from the most loaded. */
    c.alive[d] = true;
    cl_assign(&c);
    get_loads(&c, &l);
    assert_true(spread(&c, l.own) <= 1);
    assert_int_equal(c.ch.owner_changes, l.own[d]);
    for (uint32_t w = 0; w < 4; w++)
        c.alive[w] = false;
    cl_assign(&c);
    for (uint32_t t = 0; t < 10; t++)
        assert_int_equal(c.terms[t].owner, -1);
    assert_int_equal(c.ch.owner_changes, 10);
    c.alive[3] = true;
    cl_assign(&c);
    for (uint32_t t = 0; t < 10; t++)
        assert_int_equal(c.terms[t].owner, 3);
    cl_free(&c);
}

static void test_no_workers(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 0, 4, 4, 3);
    cl_assign(&c);
    assert_int_equal(c.ch.unavailable, 4);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nreplicas, 0);
        assert_int_equal(c.parts[p].leader, -1);
        assert_int_equal(c.parts[p].epoch, 0);
    }
    c.nw = 2;
    c.alive[0] = c.alive[1] = true;
    cl_assign(&c);
    for (uint32_t p = 0; p < c.np; p++) {
        assert_int_equal(c.parts[p].nreplicas, 2);
        assert_int_equal(c.parts[p].nisr, 2);
        assert_true(c.parts[p].leader >= 0);
    }
    cl_free(&c);
}

/* One random event on c. */
static void random_event(cluster *c, uint32_t wmax)
{
    uint32_t kind = rnd_below(100);
    if (kind < 12) { /* a new worker registers (or, when full, one returns) */
        if (c->nw < wmax) {
            c->alive[c->nw++] = true;
            return;
        }
        kind = 30;
    }
    if (kind < 30) { /* a worker dies; sometimes two at once */
        for (uint32_t k = kind < 15 ? 2 : 1; k > 0; k--) {
            uint32_t n = nlive(c);
            if (n == 0)
                return;
            uint32_t pick = rnd_below(n);
            for (uint32_t w = 0; w < c->nw; w++)
                if (c->alive[w] && pick-- == 0)
                    c->alive[w] = false;
        }
        return;
    }
    if (kind < 45) { /* a dead worker returns */
        uint32_t n = c->nw - nlive(c);
        if (n == 0)
            return;
        uint32_t pick = rnd_below(n);
        for (uint32_t w = 0; w < c->nw; w++)
            if (!c->alive[w] && pick-- == 0)
                c->alive[w] = true;
        return;
    }
    if (c->np == 0)
        return;
    sx_log_part *lp = &c->parts[rnd_below(c->np)];
    sx_err err = {0};
    int32_t isr[SX_MAX_REPLICAS];
    if (kind < 85) { /* catch-up: a live non-isr replica enters the isr */
        if (lp->leader < 0)
            return;
        int32_t cand = -1;
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            if (live(c, lp->replicas[i]) &&
                !sx_clustermap_has(lp->isr, lp->nisr, lp->replicas[i]) &&
                (cand < 0 || rnd_below(2)))
                cand = lp->replicas[i];
        if (cand < 0)
            return;
        memcpy(isr, lp->isr, lp->nisr * sizeof(*isr));
        isr[lp->nisr] = cand;
        /* A request from before the last change is refused. */
        if (lp->epoch > 0 && sx_clustermap_change_isr(lp, lp->epoch - 1, lp->isr_version, isr,
                                                      lp->nisr + 1, &err) != SX_FAILED_PRECONDITION)
            fail_msg("stale epoch accepted, seed=%llu", seed);
        if (sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, isr, lp->nisr + 1, &err) !=
            SX_OK)
            fail_msg("catch-up refused: %s, seed=%llu", err.msg, seed);
        return;
    }
    /* A leader drops a slow follower from the isr. */
    if (lp->leader < 0 || lp->nisr < 2)
        return;
    uint32_t n = 0;
    uint32_t skip = rnd_below(lp->nisr);
    for (uint32_t i = 0; i < lp->nisr; i++)
        if (i != skip || lp->isr[i] == lp->leader)
            isr[n++] = lp->isr[i];
    if (n < lp->nisr &&
        sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, isr, n, &err) != SX_OK)
        fail_msg("shrink refused: %s, seed=%llu", err.msg, seed);
}

/* Random joins, deaths (one or two at once), returns, catch-ups and isr
 * shrinks over random W, P, R. After every step: everything cl_assign checks,
 * and no direct move left (check_local_balance). Every SETTLE_EVERY steps, and
 * at the end, a copy settles (every replica catches up, then reassign until
 * nothing moves); with R >= 2 and no partition unavailable its replicas and
 * leaders must then be balanced to within one. Not after every step: a
 * replica that has not caught up cannot lead, so leaders stay where they are,
 * and step 4 never moves a leader's replica. With R = 1 every replica is its
 * partition's leader, so a newcomer stays empty (see clustermap.h). */
static void test_property(void **state)
{
    (void)state;
    uint32_t steps = 0, unbalanced = 0, settled = 0, lead_unbalanced = 0;
    for (int run = 0; run < PROPERTY_RUNS; run++) {
        uint32_t wmax = 1 + rnd_below(12);
        cluster c;
        cl_init(&c, 1 + rnd_below(wmax), 1 + rnd_below(64), rnd_below(65), 1 + rnd_below(3));
        cl_assign(&c);
        for (int step = 1; step <= PROPERTY_STEPS; step++) {
            random_event(&c, wmax);
            cl_assign(&c);
            check_local_balance(&c);
            loads l;
            get_loads(&c, &l);
            steps++;
            unbalanced += spread(&c, l.rep) > 1 || spread(&c, l.lead) > 1;
            if (step % SETTLE_EVERY != 0 && step != PROPERTY_STEPS)
                continue;
            cluster s;
            cl_copy(&s, &c);
            settle(&s);
            check_local_balance(&s);
            get_loads(&s, &l);
            if (s.s.replication > 1 && s.ch.unavailable == 0) {
                settled++;
                if (spread(&s, l.rep) > 1)
                    fail_msg("settled W=%u live=%u P=%u R=%u: replica spread %u, seed=%llu", s.nw,
                             nlive(&s), s.np, s.s.replication, spread(&s, l.rep), seed);
                lead_unbalanced += spread(&s, l.lead) > 1;
            }
            cl_free(&s);
        }
        cl_free(&c);
    }
    if (verbose)
        printf("property: %u steps, %u with a spread > 1 before catch-up; %u settled maps, "
               "replicas balanced in all, leaders in all but %u\n",
               steps, unbalanced, settled, lead_unbalanced);
}

/* The same input gives the same bytes, all the way through a random run. */
static void test_determinism(void **state)
{
    (void)state;
    for (int run = 0; run < 10; run++) {
        uint32_t wmax = 2 + rnd_below(11);
        cluster a, b;
        cl_init(&a, 1 + rnd_below(wmax), 1 + rnd_below(64), rnd_below(65), 1 + rnd_below(3));
        cl_copy(&b, &a);
        for (int step = 0; step < 50; step++) {
            random_event(&a, wmax);
            memcpy(b.alive, a.alive, sizeof(a.alive));
            b.nw = a.nw;
            memcpy(b.parts, a.parts, a.np * sizeof(*a.parts)); /* catch-ups happen on a */
            sx_assign(&a.s, a.alive, a.nw, a.parts, a.np, a.terms, a.nt, &a.ch);
            sx_assign(&b.s, b.alive, b.nw, b.parts, b.np, b.terms, b.nt, &b.ch);
            if (memcmp(a.parts, b.parts, a.np * sizeof(*a.parts)) ||
                memcmp(a.terms, b.terms, a.nt * sizeof(*a.terms)) ||
                memcmp(&a.ch, &b.ch, sizeof(a.ch)))
                fail_msg("run %d step %d: outputs differ, seed=%llu", run, step, seed);
        }
        cl_free(&a);
        cl_free(&b);
    }
}

/* A copy of the isr, for sx_clustermap_track_elr after a change. */
typedef struct isr_copy {
    int32_t isr[SX_MAX_REPLICAS];
    uint32_t n;
} isr_copy;

static isr_copy isr_of(const sx_log_part *lp)
{
    isr_copy k = {.n = lp->nisr};
    memcpy(k.isr, lp->isr, sizeof(k.isr));
    return k;
}

/* A leader's isr change as the coordinator makes it: compare-and-set, then
 * the elr rule. */
static void change_isr_elr(cluster *c, uint32_t p, const int32_t *isr, uint32_t n)
{
    sx_log_part *lp = &c->parts[p];
    isr_copy old = isr_of(lp);
    sx_err err = {0};
    if (sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, isr, n, &err) != SX_OK)
        fail_msg("isr change of partition %u: %s, seed=%llu", p, err.msg, seed);
    sx_clustermap_track_elr(lp, old.isr, old.n, c->s.min_isr);
}

/* Worker w registers again having lost every store it had: as the
 * coordinator does before assigning. */
static void lose_stores(cluster *c, int32_t w)
{
    c->alive[w] = true;
    for (uint32_t p = 0; p < c->np; p++)
        sx_clustermap_store_lost(&c->parts[p], w);
    sx_err err = {0};
    if (sx_clustermap_check(c->parts, c->np, c->terms, c->nt, c->nw, &err) != SX_OK)
        fail_msg("after worker %d lost its stores: %s, seed=%llu", w, err.msg, seed);
}

/* Issue 11: P=1, R=3, min_isr=2. The follower that left the isr last, when
 * it fell below min_isr, holds every committed entry; the leader's store is
 * lost; the first follower misses what committed after it left. Only the
 * last follower may lead. */
static void test_elr_last_to_leave_leads_after_loss(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 3, 1, 0, 3);
    c.s.min_isr = 2;
    settle(&c);
    sx_log_part *lp = &c.parts[0];
    assert_int_equal(lp->nisr, 3);
    const int32_t l = lp->leader, f1 = (l + 1) % 3, f2 = (l + 2) % 3;

    /* f1 dies: the isr {l, f2} is at min_isr, writes go on without f1. */
    c.alive[f1] = false;
    cl_assign(&c);
    assert_int_equal(lp->leader, l);
    assert_int_equal(lp->nisr, 2);
    assert_int_equal(lp->nelr, 0);
    assert_false(sx_clustermap_has(lp->replicas, lp->nreplicas, f1));

    /* f2 dies: the isr {l} is below min_isr, nothing commits: f2 is eligible
     * and stays a replica, dead. */
    c.alive[f2] = false;
    cl_assign(&c);
    assert_int_equal(lp->leader, l);
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->nelr, 1);
    assert_int_equal(lp->elr[0], f2);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, f2));

    /* l dies: its isr is kept, nobody leads. */
    c.alive[l] = false;
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    assert_int_equal(lp->nisr, 1);
    uint64_t epoch = lp->epoch, isr_version = lp->isr_version;

    /* l comes back without its store: the isr empties; f2 is dead. */
    lose_stores(&c, l);
    assert_int_equal(lp->nisr, 0);
    assert_int_equal(lp->isr_version, isr_version + 1);
    assert_int_equal(lp->epoch, epoch);
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    assert_int_equal(lp->nisr, 0);
    assert_int_equal(lp->nelr, 1);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, l));
    assert_int_equal(c.ch.unavailable, 1);
    /* No leader, so nobody may grow the isr. */
    int32_t just_l[1] = {l};
    sx_err err = {0};
    assert_int_equal(sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, just_l, 1, &err),
                     SX_FAILED_PRECONDITION);

    /* f1 returns: it left while writes went on, it may not lead. */
    c.alive[f1] = true;
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, f1));
    cl_assign(&c);
    assert_true(no_changes(&c.ch));

    /* f2 returns: elected, it is the isr, no longer merely eligible. */
    c.alive[f2] = true;
    cl_assign(&c);
    assert_int_equal(lp->leader, f2);
    assert_int_equal(lp->epoch, epoch + 1);
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->isr[0], f2);
    assert_int_equal(lp->nelr, 0);
    assert_int_equal(lp->nreplicas, 3);

    /* l caught up: back in the isr through its leader, like anyone. */
    int32_t two[2] = {f2, l};
    change_isr_elr(&c, 0, two, 2);
    cl_assign(&c);
    settle(&c);
    assert_int_equal(lp->nisr, 3);
    assert_int_equal(lp->nelr, 0);
    cl_free(&c);
}

/* Both followers die in one step, leaving the isr below min_isr: both hold
 * every committed entry, either may lead once the leader's store is lost. */
static void test_elr_followers_dying_together(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 3, 1, 0, 3);
    c.s.min_isr = 2;
    settle(&c);
    sx_log_part *lp = &c.parts[0];
    const int32_t l = lp->leader, f1 = (l + 1) % 3, f2 = (l + 2) % 3;
    c.alive[f1] = c.alive[f2] = false;
    cl_assign(&c);
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->nelr, 2);
    assert_true(sx_clustermap_has(lp->elr, 2, f1) && sx_clustermap_has(lp->elr, 2, f2));
    c.alive[l] = false;
    cl_assign(&c);
    lose_stores(&c, l);
    cl_assign(&c);
    assert_int_equal(lp->leader, -1);
    c.alive[f2] = true;
    cl_assign(&c);
    assert_int_equal(lp->leader, f2);
    assert_int_equal(lp->nelr, 1); /* f1 still holds everything committed: nothing commits */
    assert_int_equal(lp->elr[0], f1);
    /* f1 too loses its store: it is no longer eligible. */
    lose_stores(&c, f1);
    assert_int_equal(lp->nelr, 0);
    cl_assign(&c);
    assert_int_equal(lp->leader, f2);
    cl_free(&c);
}

/* With min_isr = 1 the leader alone commits: the followers that left are not
 * eligible, and when its store is lost nobody may lead, ever, whoever is
 * alive: the partition waits for an operator. */
static void test_lost_store_without_eligible_stays_unavailable(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 3, 1, 0, 3);
    c.s.min_isr = 1;
    settle(&c);
    sx_log_part *lp = &c.parts[0];
    const int32_t l = lp->leader, f1 = (l + 1) % 3, f2 = (l + 2) % 3;
    c.alive[f1] = c.alive[f2] = false;
    cl_assign(&c);
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->nelr, 0);
    c.alive[l] = false;
    cl_assign(&c);
    lose_stores(&c, l);
    c.alive[f1] = c.alive[f2] = true;
    cl_assign(&c);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lp->leader, -1);
        assert_int_equal(lp->nisr, 0);
        assert_int_equal(lp->nreplicas, 3);
        cl_assign(&c);
    }
    assert_true(no_changes(&c.ch));
    assert_int_equal(c.ch.unavailable, 1);
    cl_free(&c);
}

/* sx_clustermap_track_elr and sx_clustermap_store_lost on one partition. */
static void test_elr_rule(void **state)
{
    (void)state;
    cluster c;
    cl_init(&c, 8, 1, 0, 3);
    c.s.min_isr = 2;
    sx_log_part *lp = &c.parts[0];
    *lp = (sx_log_part){.epoch = 5,
                        .isr_version = 9,
                        .leader = 2,
                        .nreplicas = 3,
                        .replicas = {2, 4, 6},
                        .nisr = 3,
                        .isr = {2, 4, 6}};
    int32_t s24[2] = {2, 4}, s2[1] = {2}, s26[2] = {2, 6}, s246[3] = {2, 4, 6};
    change_isr_elr(&c, 0, s24, 2); /* at min_isr: 6 may miss commits from now */
    assert_int_equal(lp->nelr, 0);
    change_isr_elr(&c, 0, s2, 1); /* below: 4 holds everything committed */
    assert_int_equal(lp->nelr, 1);
    assert_int_equal(lp->elr[0], 4);
    change_isr_elr(&c, 0, s26, 2); /* at min_isr again: 4 may miss commits */
    assert_int_equal(lp->nelr, 0);
    change_isr_elr(&c, 0, s246, 3);

    c.s.min_isr = 3;
    change_isr_elr(&c, 0, s24, 2); /* below 3: 6 eligible */
    change_isr_elr(&c, 0, s2, 1);  /* 4 too */
    assert_int_equal(lp->nelr, 2);
    assert_true(sx_clustermap_has(lp->elr, 2, 4) && sx_clustermap_has(lp->elr, 2, 6));
    change_isr_elr(&c, 0, s26, 2); /* 6 in sync again; still below 3: 4 stays */
    assert_int_equal(lp->nelr, 1);
    assert_int_equal(lp->elr[0], 4);
    sx_err err = {0};
    assert_int_equal(sx_clustermap_check(lp, 1, NULL, 0, 8, &err), SX_OK);

    /* Lost stores: an elr member leaves the elr only; an isr member leaves the
     * isr (a new isr_version); the leader stops leading (a new epoch), even as
     * the last member. */
    uint64_t epoch = lp->epoch, version = lp->isr_version;
    assert_true(sx_clustermap_store_lost(lp, 4));
    assert_int_equal(lp->nelr, 0);
    assert_int_equal(lp->isr_version, version);
    assert_true(sx_clustermap_store_lost(lp, 6));
    assert_int_equal(lp->nisr, 1);
    assert_int_equal(lp->isr_version, version + 1);
    assert_int_equal(lp->leader, 2);
    assert_true(sx_clustermap_store_lost(lp, 2));
    assert_int_equal(lp->nisr, 0);
    assert_int_equal(lp->leader, -1);
    assert_int_equal(lp->epoch, epoch + 1);
    assert_int_equal(lp->nreplicas, 3);
    assert_false(sx_clustermap_store_lost(lp, 2));
    assert_false(sx_clustermap_store_lost(lp, 7));
    assert_int_equal(sx_clustermap_check(lp, 1, NULL, 0, 8, &err), SX_OK);
    cl_free(&c);
}

/* The elr invariants sx_clustermap_check enforces. */
static void test_check_rejects_elr(void **state)
{
    (void)state;
    sx_err err = {0};
    sx_log_part ok = {.isr_version = 3,
                      .leader = 1,
                      .nreplicas = 3,
                      .replicas = {1, 2, 3},
                      .nisr = 1,
                      .isr = {1},
                      .nelr = 1,
                      .elr = {3}};
    assert_int_equal(sx_clustermap_check(&ok, 1, NULL, 0, 4, &err), SX_OK);
    sx_log_part bad = ok;
    bad.elr[0] = 1; /* in the isr too */
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    assert_non_null(strstr(err.msg, "elr"));
    bad = ok;
    bad.elr[0] = 0; /* not a replica */
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    bad = ok;
    bad.nelr = 2;
    bad.elr[1] = 3; /* twice */
    assert_int_equal(sx_clustermap_check(&bad, 1, NULL, 0, 4, &err), SX_INTERNAL);
    /* An isr emptied by lost stores: no leader. */
    sx_log_part emptied = ok;
    emptied.nisr = 0;
    emptied.leader = -1;
    assert_int_equal(sx_clustermap_check(&emptied, 1, NULL, 0, 4, &err), SX_OK);
    emptied.leader = 1;
    assert_int_equal(sx_clustermap_check(&emptied, 1, NULL, 0, 4, &err), SX_INTERNAL);
    emptied.leader = -1;
    emptied.isr_version = 0; /* replicas, but never an isr */
    assert_int_equal(sx_clustermap_check(&emptied, 1, NULL, 0, 4, &err), SX_INTERNAL);
}

/* Random events as in test_property, plus writes and workers that come back
 * without their stores, with min_isr 2..R, against a model: per partition,
 * the workers that hold every committed entry (everyone, until the first
 * write). A write commits (only) with a leader and min_isr isr members, and
 * then only the isr holds it all; a catch-up copies the leader's log; a lost
 * store holds nothing. After every step: the isr and the elr hold every
 * committed entry, so no leader ever misses one; and a partition whose isr
 * and elr are both empty never gets a leader back. */
static void test_property_lost_stores(void **state)
{
    (void)state;
    uint32_t elected_from_elr = 0, lost_for_good = 0, writes = 0;
    for (int run = 0; run < PROPERTY_RUNS; run++) {
        uint32_t wmax = 2 + rnd_below(9);
        cluster c;
        uint32_t r = 2 + rnd_below(3);
        cl_init(&c, 1 + rnd_below(wmax), 1 + rnd_below(16), rnd_below(9), r);
        c.s.min_isr = 2 + rnd_below(r - 1);
        uint64_t holds[64];
        for (uint32_t p = 0; p < c.np; p++)
            holds[p] = ~0ull;
        cl_assign(&c);
        for (int step = 1; step <= PROPERTY_STEPS; step++) {
            uint32_t kind = rnd_below(100);
            sx_log_part before[64];
            memcpy(before, c.parts, c.np * sizeof(*c.parts));
            if (kind < 20) { /* writes everywhere they commit */
                for (uint32_t p = 0; p < c.np; p++) {
                    const sx_log_part *lp = &c.parts[p];
                    if (lp->leader < 0 || lp->nisr < c.s.min_isr)
                        continue;
                    holds[p] = 0;
                    for (uint32_t i = 0; i < lp->nisr; i++)
                        holds[p] |= 1ull << lp->isr[i];
                    writes++;
                }
            } else if (kind < 32 && c.nw > 0) { /* a worker returns without its stores */
                int32_t w = (int32_t)rnd_below(c.nw);
                lose_stores(&c, w);
                for (uint32_t p = 0; p < c.np; p++)
                    holds[p] &= ~(1ull << w);
            } else {
                random_event(&c, wmax);
                for (uint32_t p = 0; p < c.np; p++) {
                    sx_log_part *lp = &c.parts[p];
                    if (lp->isr_version == before[p].isr_version)
                        continue;
                    sx_clustermap_track_elr(lp, before[p].isr, before[p].nisr, c.s.min_isr);
                    bool copied = lp->leader >= 0 && (holds[p] >> lp->leader & 1);
                    for (uint32_t i = 0; copied && i < lp->nisr; i++)
                        holds[p] |= 1ull << lp->isr[i];
                }
            }
            memcpy(before, c.parts, c.np * sizeof(*c.parts));
            cl_assign(&c);
            check_local_balance(&c);
            for (uint32_t p = 0; p < c.np; p++) {
                const sx_log_part *lp = &c.parts[p];
                for (uint32_t i = 0; i < lp->nisr; i++)
                    if (!(holds[p] >> lp->isr[i] & 1))
                        fail_msg("partition %u: isr member %d misses committed entries "
                                 "(leader %d), seed=%llu",
                                 p, lp->isr[i], lp->leader, seed);
                for (uint32_t i = 0; i < lp->nelr; i++)
                    if (!(holds[p] >> lp->elr[i] & 1))
                        fail_msg("partition %u: eligible %d misses committed entries, seed=%llu", p,
                                 lp->elr[i], seed);
                bool was_lost = before[p].nisr == 0 && before[p].isr_version > 0;
                if (was_lost && before[p].nelr == 0 && lp->leader >= 0)
                    fail_msg("partition %u: nobody held its entries, yet %d leads, seed=%llu", p,
                             lp->leader, seed);
                elected_from_elr += was_lost && lp->leader >= 0;
                lost_for_good += was_lost && before[p].nelr == 0 && step == PROPERTY_STEPS;
            }
        }
        cl_free(&c);
    }
    if (verbose)
        printf("property (lost stores): %u commits, %u elections from the elr, %u partitions "
               "lost for good at the end\n",
               writes, elected_from_elr, lost_for_good);
    assert_true(elected_from_elr > 0);
}

int main(void)
{
    seed = sx_fx_seed();
    const char *v = getenv("SHARDEX_TEST_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    rng_state = seed;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_three_workers),
        cmocka_unit_test(test_fresh_one_worker_then_two_join),
        cmocka_unit_test(test_fresh_balance_grid),
        cmocka_unit_test(test_join_stickiness),
        cmocka_unit_test(test_leave_stickiness),
        cmocka_unit_test(test_dead_isr_waits_for_a_member),
        cmocka_unit_test(test_all_dead_and_back),
        cmocka_unit_test(test_elr_last_to_leave_leads_after_loss),
        cmocka_unit_test(test_elr_followers_dying_together),
        cmocka_unit_test(test_lost_store_without_eligible_stays_unavailable),
        cmocka_unit_test(test_elr_rule),
        cmocka_unit_test(test_check_rejects_elr),
        cmocka_unit_test(test_change_isr),
        cmocka_unit_test(test_check_rejects),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_no_workers),
        cmocka_unit_test(test_property),
        cmocka_unit_test(test_property_lost_stores),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
