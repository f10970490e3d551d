/* test_moves.c: unit tests for the add-then-drop moves of sx_assign
 * (clustermap.h, "Moves"), draining and removed workers, through the public
 * header only.
 *
 * A model coordinator (mc) calls sx_assign as coord.c does: after every
 * membership change and after every isr change a leader asks for, which the
 * model makes as the workers would (a replica catches up and its leader adds
 * it; a leader drops a slow follower). Every call is checked against the map
 * before it: the invariants, never below min_isr, never the last holder of
 * committed entries dropped, at most max_moves moves in flight. Then fixed
 * scenarios (a worker joining R=1 and R=3 clusters, a drain, a removal), and
 * a randomized property test whose seed comes from SHARDEX_TEST_SEED, else
 * the clock, printed as seed=N so that a failure replays.
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

#include "clustermap.h"
#include "fixture.h"

#define MAXW 16
#define MAXP 64
#define MAXT 16
#define PROPERTY_RUNS 80
#define PROPERTY_EVENTS 40

static unsigned long long seed;
static uint64_t rng_state;

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(sx_fx_rnd(&rng_state) % n);
}

/* The model coordinator: the registry and the map. */
typedef struct mc {
    sx_assign_settings s;
    uint32_t nw;
    bool alive[MAXW];
    bool draining[MAXW];
    bool removed[MAXW];
    uint32_t np, nt;
    sx_log_part parts[MAXP];
    sx_term_part terms[MAXT];
    sx_assign_changes ch; /* of the last assign */
    uint32_t moves_started, moves_finished;
} mc;

static void mc_init(mc *m, uint32_t nw, uint32_t np, uint32_t nt, uint32_t r, uint32_t min_isr,
                    uint32_t max_moves)
{
    memset(m, 0, sizeof(*m));
    m->s.replication = r;
    m->s.min_isr = min_isr;
    m->s.moves = true;
    m->s.max_moves = max_moves;
    m->s.draining = m->draining;
    m->s.removed = m->removed;
    m->nw = nw;
    for (uint32_t w = 0; w < nw; w++)
        m->alive[w] = true;
    m->np = np;
    m->nt = nt;
    for (uint32_t p = 0; p < np; p++)
        m->parts[p].leader = -1;
    for (uint32_t t = 0; t < nt; t++)
        m->terms[t].owner = -1;
}

static bool live(const mc *m, int32_t w)
{
    return w >= 0 && (uint32_t)w < m->nw && m->alive[w] && !m->removed[w];
}

static bool elig(const mc *m, int32_t w)
{
    return live(m, w) && !m->draining[w];
}

static uint32_t count_live(const mc *m, const int32_t *set, uint32_t n)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += live(m, set[i]);
    return k;
}

static uint32_t inflight(const mc *m)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < m->np; p++)
        n += m->parts[p].moving;
    return n;
}

static void dump(const char *what, const sx_log_part *lp)
{
    printf("%s: leader %d epoch %llu rep", what, lp->leader, (unsigned long long)lp->epoch);
    for (uint32_t i = 0; i < lp->nreplicas; i++)
        printf(" %d", lp->replicas[i]);
    printf(" isr");
    for (uint32_t i = 0; i < lp->nisr; i++)
        printf(" %d", lp->isr[i]);
    printf(" elr");
    for (uint32_t i = 0; i < lp->nelr; i++)
        printf(" %d", lp->elr[i]);
    if (lp->moving)
        printf(" moving %d->%d", lp->move_from, lp->move_to);
    printf("\n");
}

/* What every assign must keep, given the map before it (prev: after the
 * event that led to the call, before sx_assign). */
static void check_step(const mc *m, const sx_log_part *prev, uint32_t inflight_before)
{
    sx_err err = {0};
    if (sx_clustermap_check(m->parts, m->np, m->terms, m->nt, m->nw, &err) != SX_OK)
        fail_msg("check: %s, seed=%llu", err.msg, seed);
    uint32_t cap = inflight_before > m->s.max_moves ? inflight_before : m->s.max_moves;
    if (inflight(m) > cap)
        fail_msg("%u moves in flight, max %u, seed=%llu", inflight(m), m->s.max_moves, seed);
    if (m->ch.moves_in_flight != inflight(m))
        fail_msg("moves_in_flight %u, counted %u, seed=%llu", m->ch.moves_in_flight, inflight(m),
                 seed);
    for (uint32_t p = 0; p < m->np; p++) {
        const sx_log_part *lp = &m->parts[p], *op = &prev[p];
        /* Never below min_isr: live isr members leave only by a finished
         * move, which leaves min_isr behind. */
        uint32_t was = count_live(m, op->isr, op->nisr);
        uint32_t want = was < m->s.min_isr ? was : m->s.min_isr;
        if (count_live(m, lp->isr, lp->nisr) < want) {
            dump("before", op);
            dump("after", lp);
        }
        if (count_live(m, lp->isr, lp->nisr) < want)
            fail_msg("partition %u: isr %u live members, was %u, min_isr %u, seed=%llu", p,
                     count_live(m, lp->isr, lp->nisr), was, m->s.min_isr, seed);
        for (uint32_t i = 0; i < op->nisr; i++) {
            int32_t w = op->isr[i];
            if (live(m, w) && !sx_clustermap_has(lp->isr, lp->nisr, w) && lp->nisr < m->s.min_isr)
                fail_msg("partition %u: live isr member %d dropped below min_isr, seed=%llu", p, w,
                         seed);
        }
        /* Never the last holder: someone who held every committed entry
         * (isr or elr) before still does, unless all were removed. */
        bool kept_any = false, any_left = false;
        for (uint32_t i = 0; i < op->nisr + op->nelr; i++) {
            int32_t w = i < op->nisr ? op->isr[i] : op->elr[i - op->nisr];
            if (m->removed[w])
                continue;
            any_left = true;
            kept_any |=
                sx_clustermap_has(lp->isr, lp->nisr, w) || sx_clustermap_has(lp->elr, lp->nelr, w);
        }
        if (any_left && !kept_any)
            fail_msg("partition %u: no holder of its committed entries kept, seed=%llu", p, seed);
        if (lp->leader >= 0 && !live(m, lp->leader))
            fail_msg("partition %u: leader %d not live, seed=%llu", p, lp->leader, seed);
        /* R + 1 replicas at most while moving, R otherwise (live ones). */
        uint32_t nl = count_live(m, lp->replicas, lp->nreplicas);
        uint32_t nlive = 0;
        for (uint32_t w = 0; w < m->nw; w++)
            nlive += live(m, (int32_t)w);
        uint32_t r = m->s.replication < nlive ? m->s.replication : nlive;
        /* A surplus stays only where every replica but the leader may hold
         * committed entries the isr (at min_isr or below) needs. */
        bool surplus_ok = lp->nisr <= m->s.min_isr;
        for (uint32_t i = 0; i < lp->nreplicas; i++) {
            int32_t w = lp->replicas[i];
            surplus_ok &= !live(m, w) || sx_clustermap_has(lp->isr, lp->nisr, w) ||
                          sx_clustermap_has(lp->elr, lp->nelr, w);
        }
        if (nl > r + lp->moving && !surplus_ok) {
            dump("before", op);
            dump("after", lp);
        }
        if (nl > r + lp->moving && !surplus_ok)
            fail_msg("partition %u: %u live replicas, R %u, moving %d, seed=%llu", p, nl, r,
                     lp->moving, seed);
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            if (m->removed[lp->replicas[i]])
                fail_msg("partition %u: removed worker %d kept, seed=%llu", p, lp->replicas[i],
                         seed);
    }
}

static void mc_assign(mc *m)
{
    sx_log_part prev[MAXP];
    memcpy(prev, m->parts, sizeof(prev));
    uint32_t before = inflight(m);
    /* Deterministic: the same input gives the same map. */
    sx_log_part again[MAXP];
    sx_term_part again_t[MAXT];
    memcpy(again, m->parts, sizeof(again));
    memcpy(again_t, m->terms, sizeof(again_t));
    sx_assign(&m->s, m->alive, m->nw, again, m->np, again_t, m->nt, NULL);
    sx_assign(&m->s, m->alive, m->nw, m->parts, m->np, m->terms, m->nt, &m->ch);
    if (memcmp(again, m->parts, m->np * sizeof(*again)) != 0 ||
        memcmp(again_t, m->terms, m->nt * sizeof(*again_t)) != 0)
        fail_msg("two calls on the same input differ, seed=%llu", seed);
    m->moves_started += m->ch.moves_started;
    m->moves_finished += m->ch.moves_finished;
    check_step(m, prev, before);
}

/* A leader's isr change as coord.c makes it: the compare-and-set, the elr
 * rule, then assignment. */
static void mc_change_isr(mc *m, uint32_t p, const int32_t *isr, uint32_t n)
{
    sx_log_part *lp = &m->parts[p];
    sx_log_part was = *lp;
    sx_err err = {0};
    if (sx_clustermap_change_isr(lp, lp->epoch, lp->isr_version, isr, n, &err) != SX_OK)
        fail_msg("isr change of partition %u: %s, seed=%llu", p, err.msg, seed);
    sx_clustermap_track_elr(lp, was.isr, was.nisr, m->s.min_isr);
    mc_assign(m);
}

/* Partition p's leader takes every live replica into its isr (they caught
 * up), or only some (some=true: a random subset of the live ones outside). */
static bool catch_up(mc *m, uint32_t p, bool some)
{
    sx_log_part *lp = &m->parts[p];
    if (lp->leader < 0)
        return false;
    int32_t isr[SX_MAX_REPLICAS];
    uint32_t n = 0;
    bool grew = false;
    for (uint32_t i = 0; i < lp->nreplicas; i++) {
        int32_t w = lp->replicas[i];
        bool in = sx_clustermap_has(lp->isr, lp->nisr, w);
        if (in || (live(m, w) && (!some || rnd_below(2)))) {
            isr[n++] = w;
            grew |= !in;
        }
    }
    if (!grew)
        return false;
    mc_change_isr(m, p, isr, n);
    return true;
}

/* Nothing else changes: replicas catch up until the map is steady. Returns
 * the rounds it took; fails past max_rounds. */
static uint32_t settle(mc *m, uint32_t max_rounds)
{
    mc_assign(m);
    for (uint32_t round = 1; round <= max_rounds; round++) {
        bool any = false;
        for (uint32_t p = 0; p < m->np; p++)
            any |= catch_up(m, p, false);
        mc_assign(m);
        if (!any && m->ch.moves_started == 0 && m->ch.leader_changes == 0 &&
            m->ch.replicas_added == 0 && inflight(m) == 0)
            return round;
    }
    for (uint32_t p = 0; p < m->np; p++)
        if (m->parts[p].moving)
            dump("moving", &m->parts[p]);
    for (uint32_t w = 0; w < m->nw; w++)
        printf("worker %u alive %d draining %d removed %d\n", w, m->alive[w], m->draining[w],
               m->removed[w]);
    printf("R %u min_isr %u\n", m->s.replication, m->s.min_isr);
    fail_msg("not steady after %u rounds (%u moves in flight), seed=%llu", max_rounds, inflight(m),
             seed);
    return 0;
}

typedef struct loads {
    uint32_t rep[MAXW], lead[MAXW], own[MAXW];
} loads;

static void get_loads(const mc *m, loads *l)
{
    memset(l, 0, sizeof(*l));
    for (uint32_t p = 0; p < m->np; p++) {
        const sx_log_part *lp = &m->parts[p];
        for (uint32_t i = 0; i < lp->nreplicas; i++)
            if (live(m, lp->replicas[i]))
                l->rep[lp->replicas[i]]++;
        if (lp->leader >= 0)
            l->lead[lp->leader]++;
    }
    for (uint32_t t = 0; t < m->nt; t++)
        if (m->terms[t].owner >= 0)
            l->own[m->terms[t].owner]++;
}

static uint32_t spread(const mc *m, const uint32_t *load)
{
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t w = 0; w < m->nw; w++) {
        if (!elig(m, (int32_t)w))
            continue;
        lo = load[w] < lo ? load[w] : lo;
        hi = load[w] > hi ? load[w] : hi;
    }
    return hi >= lo ? hi - lo : 0;
}

/* The steady map's balance: replicas within one over the workers that are
 * not draining wherever a move could still help, leaders within one wherever
 * a handover could help, nothing on a draining worker that could go. */
static void check_balanced(const mc *m)
{
    loads l;
    get_loads(m, &l);
    uint32_t nelig = 0;
    for (uint32_t w = 0; w < m->nw; w++)
        nelig += elig(m, (int32_t)w);
    for (uint32_t p = 0; p < m->np; p++) {
        const sx_log_part *lp = &m->parts[p];
        if (lp->leader < 0)
            continue;
        for (uint32_t x = 0; x < m->nw; x++) {
            int32_t wx = (int32_t)x;
            if (!sx_clustermap_has(lp->replicas, lp->nreplicas, wx) || !live(m, wx))
                continue;
            for (uint32_t y = 0; y < m->nw; y++) {
                int32_t wy = (int32_t)y;
                if (!elig(m, wy) || sx_clustermap_has(lp->replicas, lp->nreplicas, wy))
                    continue;
                if (!elig(m, wx))
                    fail_msg("partition %u: draining %u keeps a replica, %u could take it, "
                             "seed=%llu",
                             p, x, y, seed);
                if (l.rep[x] >= l.rep[y] + 2)
                    fail_msg("replicas: %u holds %u, %u holds %u, partition %u could move, "
                             "seed=%llu",
                             x, l.rep[x], y, l.rep[y], p, seed);
            }
            for (uint32_t i = 0; i < lp->nisr; i++) {
                int32_t wy = lp->isr[i];
                if (lp->leader == wx && elig(m, wy) &&
                    (!elig(m, wx) || l.lead[x] >= l.lead[wy] + 2))
                    fail_msg("leaders: %u leads %u, %u leads %u, partition %u could move, "
                             "seed=%llu",
                             x, l.lead[x], wy, l.lead[wy], p, seed);
            }
        }
    }
    if (nelig > 0 && spread(m, l.own) > 1)
        fail_msg("owners spread %u, seed=%llu", spread(m, l.own), seed);
    for (uint32_t t = 0; t < m->nt; t++)
        if (nelig > 0 && !elig(m, m->terms[t].owner))
            fail_msg("term %u on %d, which may not own, seed=%llu", t, m->terms[t].owner, seed);
}

/* A steady map stays as it is. */
static void check_sticky(mc *m)
{
    mc_assign(m);
    const sx_assign_changes *ch = &m->ch;
    if (ch->leader_changes || ch->replicas_added || ch->replicas_removed || ch->isr_changes ||
        ch->owner_changes || ch->moves_started || ch->moves_finished || ch->moves_in_flight)
        fail_msg("a steady map changed: leaders %u added %u removed %u isr %u owners %u started "
                 "%u finished %u in flight %u, seed=%llu",
                 ch->leader_changes, ch->replicas_added, ch->replicas_removed, ch->isr_changes,
                 ch->owner_changes, ch->moves_started, ch->moves_finished, ch->moves_in_flight,
                 seed);
}

/* Replicas (and leaders) on every worker that is not draining, for tests
 * where the balanced counts are known. */
static void assert_loads(const mc *m, uint32_t rep_lo, uint32_t rep_hi, uint32_t lead_lo,
                         uint32_t lead_hi)
{
    loads l;
    get_loads(m, &l);
    for (uint32_t w = 0; w < m->nw; w++) {
        if (!elig(m, (int32_t)w))
            continue;
        if (l.rep[w] < rep_lo || l.rep[w] > rep_hi || l.lead[w] < lead_lo || l.lead[w] > lead_hi)
            fail_msg("worker %u holds %u and leads %u, want %u..%u and %u..%u, seed=%llu", w,
                     l.rep[w], l.lead[w], rep_lo, rep_hi, lead_lo, lead_hi, seed);
    }
}

/* R=1: a joining worker gets its share through temporary second replicas. */
static void test_join_r1(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, 1, 8, 4, 1, 1, 2);
    settle(&m, 4);
    m.nw = 3; /* two more join, at once */
    m.alive[1] = m.alive[2] = true;
    settle(&m, 20);
    check_balanced(&m);
    assert_loads(&m, 2, 3, 2, 3);
    m.nw = 4;
    m.alive[3] = true;
    uint32_t before = m.moves_finished;
    uint32_t rounds = settle(&m, 20);
    check_balanced(&m);
    assert_loads(&m, 2, 2, 2, 2);
    assert_int_equal(m.moves_finished - before, 2); /* 3,3,2,0 -> 2,2,2,2 */
    assert_true(rounds <= 4);
    check_sticky(&m);
}

/* R=3, min_isr=2: a fourth worker gets a quarter of the replicas and leaders. */
static void test_join_r3(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, 3, 8, 4, 3, 2, 2);
    settle(&m, 4);
    m.nw = 4;
    m.alive[3] = true;
    settle(&m, 20);
    check_balanced(&m);
    assert_loads(&m, 6, 6, 2, 2);
    check_sticky(&m);
}

/* A move does not finish while the isr without its source would be below
 * min_isr; it does once a lagging member is back. */
static void test_move_waits_for_min_isr(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, 3, 1, 0, 3, 3, 1);
    settle(&m, 4);
    m.nw = 4;
    m.alive[3] = true;
    m.draining[0] = true;
    mc_assign(&m);
    sx_log_part *lp = &m.parts[0];
    assert_true(lp->moving);
    assert_int_equal(lp->move_from, 0);
    assert_int_equal(lp->move_to, 3);
    assert_int_equal(lp->nreplicas, 4);
    assert_int_not_equal(lp->leader, 0); /* leadership left the draining worker */
    /* The follower that is not the leader (1 or 2) lags and leaves the isr;
     * then 3 catches up: {0, leader, 3} less 0 is two, min_isr is three. */
    int32_t lag = lp->leader == 1 ? 2 : 1;
    int32_t isr[] = {0, lp->leader};
    mc_change_isr(&m, 0, isr, 2);
    assert_true(sx_clustermap_has(lp->elr, lp->nelr, lag));
    int32_t isr2[] = {0, lp->leader, 3};
    mc_change_isr(&m, 0, isr2, 3);
    assert_true(lp->moving);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, 0));
    /* The laggard is back: {0, 1, 2, 3} less 0 keeps three. */
    int32_t isr3[] = {0, 1, 2, 3};
    mc_change_isr(&m, 0, isr3, 4);
    assert_false(lp->moving);
    assert_false(sx_clustermap_has(lp->replicas, lp->nreplicas, 0));
    assert_int_equal(lp->nisr, 3);
}

/* A drained worker holds, leads and owns nothing; undraining lets it back in. */
static void test_drain(void **state)
{
    (void)state;
    for (uint32_t r = 1; r <= 3; r++) {
        mc m;
        mc_init(&m, 4, 8, 8, r, r > 1 ? 2 : 1, 2);
        settle(&m, 4);
        settle(&m, 20);
        m.draining[1] = true;
        settle(&m, 40);
        check_balanced(&m);
        loads l;
        get_loads(&m, &l);
        assert_int_equal(l.rep[1], 0);
        assert_int_equal(l.lead[1], 0);
        assert_int_equal(l.own[1], 0);
        check_sticky(&m);
        m.draining[1] = false;
        settle(&m, 40);
        check_balanced(&m);
        get_loads(&m, &l);
        assert_true(l.rep[1] >= 8 * r / 4 - 1);
    }
}

/* Removing a dead worker re-creates its replicas elsewhere; the only holder
 * of committed entries is seen as such. */
static void test_remove(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, 4, 8, 4, 3, 2, 2);
    settle(&m, 4);
    settle(&m, 20);
    m.alive[2] = false;
    settle(&m, 20);
    for (uint32_t p = 0; p < m.np; p++)
        assert_false(sx_clustermap_sole_holder(&m.parts[p], 2));
    m.removed[2] = true;
    settle(&m, 20);
    for (uint32_t p = 0; p < m.np; p++) {
        assert_false(sx_clustermap_has(m.parts[p].replicas, m.parts[p].nreplicas, 2));
        assert_int_equal(m.parts[p].nisr, 3);
    }
    check_balanced(&m);

    /* R=1: the dead worker is the only holder; forced, its partitions start
     * over on the others. */
    mc_init(&m, 2, 4, 0, 1, 1, 2);
    settle(&m, 4);
    settle(&m, 20);
    m.alive[0] = false;
    mc_assign(&m);
    uint32_t sole = 0;
    for (uint32_t p = 0; p < m.np; p++)
        sole += sx_clustermap_sole_holder(&m.parts[p], 0);
    assert_int_equal(sole, 2);
    m.removed[0] = true;
    settle(&m, 20);
    for (uint32_t p = 0; p < m.np; p++) {
        assert_int_equal(m.parts[p].leader, 1);
        assert_int_equal(m.parts[p].nreplicas, 1);
    }
}

/* A move whose target dies is cancelled and the source stays; one whose
 * source dies leaves the target as an ordinary replica. */
static void test_move_cancelled(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, 1, 2, 0, 1, 1, 2);
    settle(&m, 4);
    m.nw = 3;
    m.alive[1] = m.alive[2] = true;
    mc_assign(&m);
    assert_int_equal(inflight(&m), 1); /* 2,0,0 -> 1,1,0 or 1,0,1 */
    uint32_t p = m.parts[0].moving ? 0 : 1;
    int32_t to = m.parts[p].move_to;
    m.alive[to] = false;
    mc_assign(&m);
    /* Cancelled, and started again towards the other new worker. */
    assert_false(sx_clustermap_has(m.parts[p].replicas, m.parts[p].nreplicas, to));
    assert_true(!m.parts[p].moving || m.parts[p].move_to != to);
    assert_int_equal(m.parts[p].leader, 0);
    settle(&m, 10);
    check_balanced(&m);
}

/* A move on a partition that already holds SX_MAX_REPLICAS replicas (as a
 * stored map may say once R is raised to the maximum) cannot add a
 * replacement for its source: the move ends and the source stays (found by
 * fuzz_clustermap: step 3 wrote past the replica array). */
static void test_move_full_partition(void **state)
{
    (void)state;
    mc m;
    mc_init(&m, SX_MAX_REPLICAS + 1, 1, 0, SX_MAX_REPLICAS, 2, 2);
    sx_log_part *lp = &m.parts[0];
    for (int32_t w = 0; w < SX_MAX_REPLICAS; w++)
        lp->replicas[lp->nreplicas++] = lp->isr[lp->nisr++] = w;
    lp->leader = 1;
    lp->epoch = lp->isr_version = 3;
    lp->moving = true;
    lp->move_from = 0;
    lp->move_to = 6;
    mc_assign(&m);
    assert_false(lp->moving);
    assert_int_equal(lp->nreplicas, SX_MAX_REPLICAS);
    assert_true(sx_clustermap_has(lp->replicas, lp->nreplicas, 0));
}

static void random_event(mc *m)
{
    uint32_t k = rnd_below(10);
    int32_t w = (int32_t)rnd_below(m->nw);
    if (k == 0 && m->nw < MAXW) { /* a new worker joins */
        m->alive[m->nw++] = true;
        mc_assign(m);
    } else if (k == 1 && live(m, w)) { /* dies */
        m->alive[w] = false;
        mc_assign(m);
    } else if (k == 2 && !m->removed[w] && !m->alive[w]) { /* comes back */
        m->alive[w] = true;
        mc_assign(m);
    } else if (k == 3) { /* drain or undrain */
        m->draining[w] = !m->draining[w];
        mc_assign(m);
    } else if (k == 4 && !m->alive[w] && !m->removed[w]) {
        /* remove: the coordinator refuses the sole holder unless forced */
        bool sole = false;
        for (uint32_t p = 0; p < m->np; p++)
            sole |= sx_clustermap_sole_holder(&m->parts[p], w);
        if (!sole || rnd_below(4) == 0) {
            m->removed[w] = true;
            mc_assign(m);
        }
    } else if (k == 5) { /* a leader drops a follower that lags */
        uint32_t p = rnd_below(m->np);
        sx_log_part *lp = &m->parts[p];
        if (lp->leader >= 0 && lp->nisr > 1) {
            int32_t isr[SX_MAX_REPLICAS];
            uint32_t n = 0;
            int32_t out = lp->isr[rnd_below(lp->nisr)];
            for (uint32_t i = 0; i < lp->nisr; i++)
                if (lp->isr[i] != out || out == lp->leader)
                    isr[n++] = lp->isr[i];
            if (n < lp->nisr)
                mc_change_isr(m, p, isr, n);
        }
    } else { /* some followers catch up */
        for (uint32_t i = 0; i < 3; i++)
            catch_up(m, rnd_below(m->np), true);
    }
}

static void test_property(void **state)
{
    (void)state;
    uint32_t started = 0, finished = 0;
    for (uint32_t run = 0; run < PROPERTY_RUNS; run++) {
        mc m;
        uint32_t r = 1 + rnd_below(3);
        mc_init(&m, 1 + rnd_below(4), 1 + rnd_below(MAXP), rnd_below(MAXT + 1), r, 1 + rnd_below(r),
                1 + rnd_below(3));
        settle(&m, 8);
        for (uint32_t e = 0; e < PROPERTY_EVENTS; e++) {
            random_event(&m);
            if (rnd_below(8) == 0) {
                /* Quiet: converges within a bound set by the moves it
                 * needs, max_moves at a time, and then stays put. */
                uint32_t bound = m.np * (r + 1) / m.s.max_moves + 8;
                settle(&m, bound);
                check_balanced(&m);
                check_sticky(&m);
            }
        }
        started += m.moves_started;
        finished += m.moves_finished;
    }
    printf("property: %u moves started, %u finished\n", started, finished);
    assert_true(finished > 0);
}

int main(void)
{
    seed = sx_fx_seed();
    rng_state = seed;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_r1),
        cmocka_unit_test(test_join_r3),
        cmocka_unit_test(test_move_waits_for_min_isr),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_move_cancelled),
        cmocka_unit_test(test_move_full_partition),
        cmocka_unit_test(test_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
