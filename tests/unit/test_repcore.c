/* test_repcore.c: unit tests for repcore.h, the replication core, through
 * its public header only.
 *
 * Each test walks one sx_repcore step by step, the way the driver would:
 * maps taken, sessions stepped and answered, Appends planned and done, with
 * the time and the log positions given by hand. First the rules one by one
 * (roles, commit, shrink, expansion, the follower's Append, the apply
 * bound), then one scenario per row of REPLICATION.md's failure table that a
 * core without processes can express (rows 1 to 8; row 9 is about files on
 * disk).
 *
 * The cluster in every test: workers 0, 1 and 2 replicate the partition;
 * this core is worker 0 unless a test says otherwise. A leader's peers are
 * the other replicas in map order, so worker 1 is slot 0 and worker 2 slot 1.
 * A few tests set a peer's fields by hand to reach a state directly (a
 * match above the leo, an old acknowledgement); everything else goes
 * through the functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdbool.h>
#include <string.h>

#include "repcore.h"

#define T0 100000u /* ms: when each test's leadership begins */
#define LAG 1000u  /* lag timeout */
#define EPOCH 5u   /* the epoch most tests lead at */
#define W1 0u      /* worker 1's slot */
#define W2 1u      /* worker 2's slot */

static const sx_repcore_replica R3[3] = {
    {0, 100, "127.0.0.1:7000"},
    {1, 101, "127.0.0.1:7001"},
    {2, 102, "127.0.0.1:7002"},
};
static const int32_t ISR_ALL[3] = {0, 1, 2};
static const int32_t ISR_01[2] = {0, 1};
static const int32_t ISR_0[1] = {0};

static sx_repcore_map map_of(uint64_t epoch, uint64_t isr_version, int32_t leader,
                             const int32_t *isr, uint32_t nisr, uint32_t min_isr)
{
    return (sx_repcore_map){.epoch = epoch,
                            .isr_version = isr_version,
                            .leader = leader,
                            .replicas = R3,
                            .nreplicas = 3,
                            .isr = isr,
                            .nisr = nisr,
                            .min_isr = min_isr};
}

/* What the newest map says, for expansion: R3, leader 0, the lease valid. */
static sx_repcore_newest newest(void)
{
    return (sx_repcore_newest){.lease_valid = true, .leader = 0, .replicas = R3, .nreplicas = 3};
}

/* Takes map m as worker self would, following the plan as the driver does;
 * returns the plan. The log is at leo with commit (= applied) persisted. */
static sx_repcore_map_plan take(sx_repcore *c, int32_t self, const sx_repcore_map *m,
                                uint64_t commit, uint64_t leo, uint64_t now)
{
    sx_repcore_map_plan plan = sx_repcore_plan_map(c, self, m);
    if (plan.stop_leading)
        sx_repcore_unlead(c);
    assert_int_equal(sx_repcore_take_map(c, self, m, NULL), SX_OK);
    if (plan.lead)
        sx_repcore_lead(c, m, commit, commit, leo, now);
    else if (plan.recommit)
        sx_repcore_update_hw(c, leo);
    return plan;
}

/* Worker 0 leads EPOCH over R3 with the ISR given, from a log at leo whose
 * persisted commit is commit. */
static void lead(sx_repcore *c, const int32_t *isr, uint32_t nisr, uint32_t min_isr,
                 uint64_t commit, uint64_t leo)
{
    sx_repcore_init(c, EPOCH - 1, LAG);
    sx_repcore_map m = map_of(EPOCH, 1, 0, isr, nisr, min_isr);
    sx_repcore_map_plan plan = take(c, 0, &m, commit, leo, T0);
    assert_true(plan.lead);
    assert_int_equal(c->role, SX_REPCORE_LEADER);
    assert_int_equal(c->npeers, 2);
}

/* Session slot steps at now with the log at leo and its follower accepts
 * everything sent. Returns whether hw rose. */
static bool ack(sx_repcore *c, uint32_t slot, uint64_t leo, uint64_t now)
{
    sx_repcore_step st;
    sx_repcore_session_step(c, slot, leo, now, &st);
    assert_false(st.idle);
    sx_repcore_sent(c, slot, now);
    size_t n = st.entries ? (size_t)(leo - st.prev) : 0;
    return sx_repcore_acked(c, slot, &st, n, now, leo);
}

/* A follower that holds `have` (epochs of offsets 1..n) plans an Append. */
typedef struct flog {
    uint64_t epochs[64]; /* [i] = epoch of offset i + 1 */
    uint64_t leo;
} flog;

static void flog_fill(flog *f, uint64_t from, uint64_t to, uint64_t epoch)
{
    for (uint64_t o = from; o <= to; o++)
        f->epochs[o - 1] = epoch;
    if (to > f->leo)
        f->leo = to;
}

/* Plans Append a against f as the driver reads its log. */
static sx_repcore_append_plan plan_on(sx_repcore *c, const flog *f, const sx_repcore_append *a)
{
    sx_repcore_local l = {.leo = f->leo};
    if (a->prev_offset <= f->leo) {
        l.prev_read = true;
        l.prev_epoch = a->prev_offset ? f->epochs[a->prev_offset - 1] : 0;
        uint64_t room = f->leo - a->prev_offset;
        l.nepochs = a->n < room ? a->n : (size_t)room;
        l.epochs = &f->epochs[a->prev_offset];
    }
    sx_repcore_append_plan plan;
    sx_repcore_follow_plan(c, a, &l, &plan);
    return plan;
}

/* Runs an accepted plan on f the way the driver does; returns the apply bound. */
static uint64_t run_plan(sx_repcore *c, flog *f, const sx_repcore_append *a,
                         const sx_repcore_append_plan *plan)
{
    assert_int_equal(plan->verdict, SX_REPCORE_APPEND_ACCEPT);
    if (plan->truncate)
        f->leo = plan->truncate_to;
    for (size_t i = plan->append_from; i < a->n; i++) {
        f->epochs[a->prev_offset + i] = a->epochs[i];
        f->leo = a->prev_offset + i + 1;
    }
    return sx_repcore_follow_done(c, a);
}

/* Plans a on f, which must be accepted, and runs it; the apply bound. */
static uint64_t accept(sx_repcore *c, flog *f, const sx_repcore_append *a)
{
    sx_repcore_append_plan plan = plan_on(c, f, a);
    return run_plan(c, f, a, &plan);
}

/* Worker 1 following leader 0 at epoch, over a log f. */
static void follow(sx_repcore *c, uint64_t epoch)
{
    sx_repcore_init(c, 0, LAG);
    sx_repcore_map m = map_of(epoch, 1, 0, ISR_ALL, 3, 2);
    sx_repcore_map_plan plan = take(c, 1, &m, 0, 0, T0);
    assert_false(plan.lead);
    assert_int_equal(c->role, SX_REPCORE_FOLLOWER);
}

/* ---------------------------------------------------------------- roles -- */

static void test_roles_follow_the_map(void **state)
{
    (void)state;
    sx_repcore c;
    sx_repcore_init(&c, 2, LAG);
    assert_int_equal(c.role, SX_REPCORE_NONE);
    assert_string_equal(sx_repcore_role_name(c.role), "none");

    /* Worker 1 leads: worker 0 follows and learns the epoch. */
    sx_repcore_map m = map_of(3, 1, 1, ISR_ALL, 3, 2);
    sx_repcore_map_plan plan = take(&c, 0, &m, 0, 0, T0);
    assert_false(plan.lead || plan.stop_leading || plan.recommit);
    assert_int_equal(c.role, SX_REPCORE_FOLLOWER);
    assert_int_equal(c.known_epoch, 3);

    /* Worker 0 is named leader at epoch 4. */
    m = map_of(4, 2, 0, ISR_ALL, 3, 2);
    plan = take(&c, 0, &m, 7, 9, T0);
    assert_true(plan.lead);
    assert_false(plan.stop_leading);
    assert_int_equal(c.role, SX_REPCORE_LEADER);
    assert_true(sx_repcore_leading(&c));
    assert_int_equal(c.epoch_start, 10);
    assert_int_equal(c.npeers, 2);
    assert_int_equal(c.peers[W1].who.worker, 1);
    assert_int_equal(c.peers[W2].who.worker, 2);

    /* The same epoch and followers, a new ISR version: keep leading, recommit. */
    m = map_of(4, 3, 0, ISR_01, 2, 2);
    plan = take(&c, 0, &m, 7, 9, T0);
    assert_false(plan.lead || plan.stop_leading);
    assert_true(plan.recommit);
    assert_int_equal(c.nisr, 2);

    /* A follower restarted (new incarnation): lead again, new sessions. */
    sx_repcore_replica moved[3] = {R3[0], R3[1], {2, 999, "127.0.0.1:7002"}};
    m.replicas = moved;
    plan = sx_repcore_plan_map(&c, 0, &m);
    assert_true(plan.lead && plan.stop_leading);
    /* ... or moved to another address. */
    moved[2] = (sx_repcore_replica){2, 102, "127.0.0.1:7999"};
    plan = sx_repcore_plan_map(&c, 0, &m);
    assert_true(plan.lead && plan.stop_leading);

    /* A new epoch with us still leader: stop, then lead again. */
    m = map_of(5, 4, 0, ISR_01, 2, 2);
    plan = sx_repcore_plan_map(&c, 0, &m);
    assert_true(plan.lead && plan.stop_leading);

    /* Leadership moves to worker 2: stop, follow. */
    m = map_of(6, 5, 2, ISR_ALL, 3, 2);
    plan = take(&c, 0, &m, 7, 9, T0);
    assert_true(plan.stop_leading);
    assert_false(plan.lead);
    assert_int_equal(c.role, SX_REPCORE_FOLLOWER);
    assert_int_equal(c.npeers, 0);
    assert_int_equal(c.known_epoch, 6);

    /* A map without us: none. */
    sx_repcore_map gone = {
        .epoch = 6, .isr_version = 6, .leader = 2, .replicas = &R3[1], .nreplicas = 2};
    plan = take(&c, 0, &gone, 7, 9, T0);
    assert_int_equal(c.role, SX_REPCORE_NONE);
}

static void test_map_too_large_is_refused(void **state)
{
    (void)state;
    sx_repcore c;
    sx_repcore_init(&c, 0, LAG);
    sx_repcore_replica many[SX_MAX_REPLICAS + 1];
    for (int32_t i = 0; i <= SX_MAX_REPLICAS; i++)
        many[i] = (sx_repcore_replica){i, 1, "a:1"};
    sx_repcore_map m = {
        .epoch = 1, .leader = 0, .replicas = many, .nreplicas = SX_MAX_REPLICAS + 1};
    sx_err err = {0};
    assert_int_equal(sx_repcore_take_map(&c, 0, &m, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "at most"));
    assert_int_equal(c.role, SX_REPCORE_NONE);
    assert_int_equal(c.epoch, 0);
    /* An answer from the coordinator too large is refused as well. */
    int32_t isr[SX_MAX_REPLICAS + 1] = {0};
    assert_int_equal(sx_repcore_isr_accepted(&c, 0, 9, isr, SX_MAX_REPLICAS + 1, &err),
                     SX_INVALID_ARGUMENT);
}

/* --------------------------------------------------------------- commit -- */

static void test_commit_needs_min_isr(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_0, 1, 2, 0, 0);
    assert_int_equal(sx_repcore_admit(&c), SX_FAILED_PRECONDITION);
    ack(&c, W1, 4, T0 + 10);
    ack(&c, W2, 4, T0 + 10);
    assert_int_equal(c.hw, 0); /* everyone holds 4, but the ISR is {0}: min_isr 2 */
    /* With min_isr 1 the leader alone commits its log. */
    lead(&c, ISR_0, 1, 1, 0, 4);
    assert_int_equal(sx_repcore_admit(&c), SX_OK);
    assert_true(sx_repcore_update_hw(&c, 4));
    assert_int_equal(c.hw, 4);
}

static void test_commit_every_isr_follower_synced(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 0);
    assert_int_equal(sx_repcore_admit(&c), SX_OK);
    /* Neither follower has answered in this epoch: nothing commits. */
    assert_false(sx_repcore_update_hw(&c, 3));
    /* Worker 1 probes and then takes 1..3; worker 2 still silent. */
    ack(&c, W1, 3, T0 + 1); /* probe: prev = leo */
    assert_int_equal(c.hw, 0);
    assert_int_equal(c.peers[W1].match, 3);
    /* Worker 2 synced at 1 only (its log ends there). */
    sx_repcore_step st;
    sx_repcore_session_step(&c, W2, 1, T0 + 2, &st);
    assert_false(st.entries);
    assert_true(sx_repcore_acked(&c, W2, &st, 0, T0 + 2, 3));
    assert_int_equal(c.hw, 1); /* min(leo 3, 3, 1) */
    /* Worker 2 takes 2..3. */
    assert_true(ack(&c, W2, 3, T0 + 3));
    assert_int_equal(c.hw, 3);
}

static void test_commit_never_above_leo_never_falls(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 5);
    ack(&c, W1, 5, T0 + 1);
    ack(&c, W2, 5, T0 + 1);
    assert_int_equal(c.hw, 5);
    /* Matches beyond the leo we pass in never lift hw above it. */
    c.peers[W1].match = c.peers[W2].match = 9;
    assert_false(sx_repcore_update_hw(&c, 5));
    assert_int_equal(c.hw, 5);
    assert_true(sx_repcore_update_hw(&c, 7));
    assert_int_equal(c.hw, 7);
    /* A follower found to hold less (it lost its tail): hw stays. */
    sx_epoch_start ours[] = {{EPOCH, 1}};
    sx_epoch_start theirs[] = {{EPOCH, 1}};
    assert_int_equal(sx_repcore_mismatched(&c, W2, ours, 1, 9, theirs, 1, 2), 2);
    assert_false(sx_repcore_update_hw(&c, 9));
    assert_int_equal(c.hw, 7);
}

static void test_new_leader_starts_from_persisted_commit(void **state)
{
    (void)state;
    sx_repcore c;
    sx_repcore_init(&c, 4, LAG);
    sx_repcore_map m = map_of(EPOCH, 1, 0, ISR_ALL, 3, 2);
    take(&c, 0, &m, 0, 0, T0);
    sx_repcore_unlead(&c);
    sx_repcore_lead(&c, &m, 6, 4, 12, T0); /* commit 6, applied 4, leo 12 */
    assert_int_equal(c.hw, 6);             /* not 12: rule 7 */
    assert_int_equal(c.epoch_start, 13);
    assert_int_equal(c.known_epoch, EPOCH);
    assert_false(c.peers[W1].synced || c.peers[W2].synced);
    sx_repcore_lead(&c, &m, 3, 4, 12, T0); /* applied above commit: applied */
    assert_int_equal(c.hw, 4);
    assert_int_equal(sx_repcore_commit(&c), 4);
}

static void test_new_leader_serves_reads_from_epoch_start(void **state)
{
    (void)state;
    sx_repcore c;
    /* Offsets 7..12 may have been committed and acknowledged by the last
     * leader, though this replica persisted commit 6 only. */
    lead(&c, ISR_ALL, 3, 2, 6, 12);
    assert_int_equal(c.hw, 6);
    assert_false(sx_repcore_serving(&c, 6));
    /* A write of this epoch is appended before any follower answers. */
    ack(&c, W1, 13, T0 + 1);
    assert_int_equal(c.hw, 6); /* worker 2 has not answered in this epoch */
    assert_false(sx_repcore_serving(&c, 6));
    sx_repcore_step st;
    sx_repcore_session_step(&c, W2, 12, T0 + 2, &st); /* its probe was sent at leo 12 */
    assert_true(sx_repcore_acked(&c, W2, &st, 0, T0 + 2, 13));
    assert_int_equal(c.hw, 12);
    /* Committed now, served once applied; 13 need not be. */
    assert_false(sx_repcore_serving(&c, 11));
    assert_true(sx_repcore_serving(&c, 12));
    /* Fenced: nothing is served. */
    sx_repcore_fence(&c);
    assert_false(sx_repcore_serving(&c, 13));

    /* A leader that persisted everything it holds serves at once. */
    lead(&c, ISR_ALL, 3, 2, 12, 12);
    assert_true(sx_repcore_serving(&c, 12));
    assert_false(sx_repcore_serving(&c, 11));
    /* An empty log too. */
    lead(&c, ISR_ALL, 3, 2, 0, 0);
    assert_true(sx_repcore_serving(&c, 0));
    /* Alone in the ISR with min_isr 1: once the commit point is computed. */
    lead(&c, ISR_0, 1, 1, 3, 9);
    assert_false(sx_repcore_serving(&c, 9));
    assert_true(sx_repcore_update_hw(&c, 9));
    assert_true(sx_repcore_serving(&c, 9));

    /* A follower serves nothing, whatever it applied. */
    sx_repcore f;
    sx_repcore_init(&f, EPOCH - 1, LAG);
    sx_repcore_map m = map_of(EPOCH, 1, 1, ISR_ALL, 3, 2);
    take(&f, 0, &m, 12, 12, T0);
    assert_int_equal(f.role, SX_REPCORE_FOLLOWER);
    assert_false(sx_repcore_serving(&f, 12));
}

static void test_pending_followers_count_for_commit(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_01, 2, 2, 0, 4);
    ack(&c, W1, 4, T0 + 1);
    assert_int_equal(c.hw, 4);
    /* Worker 2 catches up to 4 and is asked in: pending. */
    ack(&c, W2, 4, T0 + 2);
    sx_repcore_newest nw = newest();
    sx_repcore_isr_change ch;
    assert_true(sx_repcore_expand_due(&c, T0 + 2));
    assert_true(sx_repcore_expand(&c, T0 + 2, &nw, &ch));
    assert_int_equal(ch.epoch, EPOCH);
    assert_int_equal(ch.isr_version, 1);
    assert_int_equal(ch.nisr, 3);
    assert_int_equal(ch.isr[2], 2);
    /* Each member named as the process verified (bug 6): the coordinator
     * refuses the change if one has restarted since. */
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(ch.incarnations[i], R3[ch.isr[i]].incarnation);
    assert_int_equal(c.npending, 1);
    /* From now on it counts: worker 1 takes 5..8, worker 2 does not answer. */
    ack(&c, W1, 8, T0 + 3);
    assert_int_equal(c.hw, 4);
    ack(&c, W2, 8, T0 + 4);
    assert_int_equal(c.hw, 8);
    /* The coordinator's answer: the ISR {0,1,2} at version 2. */
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH, 2, ISR_ALL, 3, NULL), SX_OK);
    assert_int_equal(c.nisr, 3);
    assert_int_equal(c.npending, 1); /* until a map shows it */
    /* An older map (version 1) arrives late: still pending, still counted. */
    sx_repcore_map old = map_of(EPOCH, 1, 0, ISR_01, 2, 2);
    take(&c, 0, &old, 8, 8, T0 + 5);
    assert_int_equal(c.npending, 1);
    ack(&c, W1, 9, T0 + 6);
    assert_int_equal(c.hw, 8);
    /* The map that shows it in the ISR ends the pending state. */
    sx_repcore_map in = map_of(EPOCH, 2, 0, ISR_ALL, 3, 2);
    take(&c, 0, &in, 8, 9, T0 + 7);
    assert_int_equal(c.npending, 0);
    assert_int_equal(c.hw, 8);
}

static void test_pending_ends_with_the_replica_or_the_epoch(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_01, 2, 2, 0, 0);
    ack(&c, W2, 0, T0 + 1);
    sx_repcore_newest nw = newest();
    sx_repcore_isr_change ch;
    assert_true(sx_repcore_expand(&c, T0 + 1, &nw, &ch));
    assert_int_equal(c.npending, 1);
    /* A map where worker 2 is no longer a replica. */
    sx_repcore_map m = map_of(EPOCH, 2, 0, ISR_01, 2, 2);
    m.nreplicas = 2;
    take(&c, 0, &m, 0, 0, T0 + 2);
    assert_int_equal(c.npending, 0);

    lead(&c, ISR_01, 2, 2, 0, 0);
    ack(&c, W2, 0, T0 + 1);
    assert_true(sx_repcore_expand(&c, T0 + 1, &nw, &ch));
    /* A new epoch starts with none. */
    m = map_of(EPOCH + 1, 2, 0, ISR_01, 2, 2);
    take(&c, 0, &m, 0, 0, T0 + 2);
    assert_int_equal(c.npending, 0);
}

static void test_fenced_leader_stops(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 3);
    ack(&c, W1, 3, T0 + 1);
    assert_true(sx_repcore_fence(&c));
    assert_false(sx_repcore_fence(&c)); /* already */
    assert_false(sx_repcore_leading(&c));
    assert_int_equal(sx_repcore_admit(&c), SX_ABORTED);
    ack(&c, W2, 3, T0 + 2);    /* every follower holds 3, */
    assert_int_equal(c.hw, 0); /* yet a fenced leader commits nothing */
    sx_repcore_newest nw = newest();
    assert_false(sx_repcore_expand_due(&c, T0 + 2));
    sx_repcore_isr_change ch;
    assert_false(sx_repcore_expand(&c, T0 + 2, &nw, &ch));
    /* The next map naming us leader again (new epoch) clears it. */
    sx_repcore_map m = map_of(EPOCH + 1, 2, 0, ISR_ALL, 3, 2);
    sx_repcore_map_plan plan = take(&c, 0, &m, 0, 3, T0 + 3);
    assert_true(plan.lead);
    assert_true(sx_repcore_leading(&c));
}

/* -------------------------------------------------------------- sessions -- */

static void test_session_steps(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 10);
    sx_repcore_step st;
    /* First a probe at our leo, with our hw. */
    sx_repcore_session_step(&c, W1, 10, T0, &st);
    assert_false(st.idle || st.shrink || st.entries);
    assert_int_equal(st.prev, 10);
    assert_int_equal(st.epoch, EPOCH);
    assert_int_equal(st.commit, 0);
    /* It mismatches: the follower has epoch 4 up to 6 where we have 3. */
    sx_epoch_start ours[] = {{3, 1}};
    sx_epoch_start theirs[] = {{4, 1}};
    sx_repcore_sent(&c, W1, T0 + 1);
    assert_int_equal(sx_repcore_mismatched(&c, W1, ours, 1, 10, theirs, 1, 6), 0);
    /* Then entries from the common prefix. */
    sx_repcore_session_step(&c, W1, 10, T0 + 1, &st);
    assert_true(st.entries);
    assert_int_equal(st.prev, 0);
    sx_repcore_sent(&c, W1, T0 + 2);
    sx_repcore_acked(&c, W1, &st, 10, T0 + 2, 10);
    assert_int_equal(c.peers[W1].match, 10);
    /* Caught up with the hw it knows: idle until SX_REPCORE_IDLE_MS passed. */
    sx_repcore_session_step(&c, W1, 10, T0 + 50, &st);
    assert_true(st.idle);
    assert_int_equal(st.wait_ms, SX_REPCORE_IDLE_MS - 48);
    sx_repcore_session_step(&c, W1, 10, T0 + 2 + SX_REPCORE_IDLE_MS, &st);
    assert_false(st.idle);
    assert_false(st.entries); /* a heartbeat carrying the commit offset */
    /* A new hw (worker 2 synced at 10 too) ends idling at once. */
    assert_true(ack(&c, W2, 10, T0 + 55));
    assert_int_equal(c.hw, 10);
    sx_repcore_session_step(&c, W1, 10, T0 + 60, &st);
    assert_false(st.idle);
    assert_int_equal(st.commit, 10);
}

/* ---------------------------------------------------------------- shrink -- */

static void test_shrink_after_lag_timeout(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 0);
    ack(&c, W1, 0, T0);
    ack(&c, W2, 0, T0);
    /* Worker 2 stops answering at T0; we append 1..5. */
    uint64_t t = T0 + 100;
    ack(&c, W1, 5, t);
    sx_repcore_step st;
    sx_repcore_session_step(&c, W2, 5, T0 + LAG, &st);
    assert_false(st.shrink); /* not yet: exactly the lag timeout */
    sx_repcore_session_step(&c, W2, 5, T0 + LAG + 1, &st);
    assert_true(st.shrink);
    assert_int_equal(st.change.epoch, EPOCH);
    assert_int_equal(st.change.isr_version, 1);
    assert_int_equal(st.change.nisr, 2);
    assert_int_equal(st.change.isr[0], 0);
    assert_int_equal(st.change.isr[1], 1);
    assert_int_equal(st.change.incarnations[0], R3[0].incarnation); /* ours */
    assert_int_equal(st.change.incarnations[1], R3[1].incarnation);
    assert_true(st.entries); /* and ship anyway */
    /* The answer (refused) came 300 ms later: retry 500 ms after it. */
    sx_repcore_shrink_answered(&c, W2, false, T0 + LAG + 300);
    sx_repcore_session_step(&c, W2, 5, T0 + LAG + 300 + SX_REPCORE_SHRINK_RETRY_MS, &st);
    assert_false(st.shrink);
    sx_repcore_session_step(&c, W2, 5, T0 + LAG + 301 + SX_REPCORE_SHRINK_RETRY_MS, &st);
    assert_true(st.shrink);
    /* Until the coordinator agrees, nothing commits without worker 2. */
    assert_int_equal(c.hw, 0);
    sx_repcore_shrink_answered(&c, W2, true, T0 + 2000);
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH, 2, ISR_01, 2, NULL), SX_OK);
    assert_true(sx_repcore_update_hw(&c, 5));
    assert_int_equal(c.hw, 5);
    /* Out of the ISR, it is never asked about again. */
    sx_repcore_session_step(&c, W2, 5, T0 + 9000, &st);
    assert_false(st.shrink);
}

static void test_no_shrink_when_caught_up_or_acking(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 5);
    ack(&c, W1, 5, T0);
    ack(&c, W2, 5, T0);
    sx_repcore_step st;
    /* Silent for long but holding everything: nothing to drop it for. */
    sx_repcore_session_step(&c, W2, 5, T0 + 10 * LAG, &st);
    assert_false(st.shrink);
    /* Behind but acknowledging: neither. */
    for (uint64_t t = T0 + 100; t < T0 + 5 * LAG; t += 100) {
        sx_repcore_session_step(&c, W2, 6, t, &st);
        assert_false(st.shrink);
        sx_repcore_sent(&c, W2, t);
        sx_repcore_acked(&c, W2, &st, 0, t, 6); /* it acks, but its log is slow */
    }
    /* An answered ack resets the retry: a later lag asks at once. */
    sx_repcore_session_step(&c, W2, 7, T0 + 5 * LAG + LAG + 1, &st);
    assert_true(st.shrink);
    sx_repcore_sent(&c, W2, T0 + 7 * LAG);
    sx_repcore_acked(&c, W2, &st, 0, T0 + 7 * LAG, 7);
    assert_int_equal(c.peers[W2].shrink_asked_ms, 0);
}

static void test_isr_answer_for_another_epoch_ignored(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 0);
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH - 1, 9, ISR_0, 1, NULL), SX_OK);
    assert_int_equal(c.nisr, 3);
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH, 1, ISR_0, 1, NULL), SX_OK);
    assert_int_equal(c.nisr, 3); /* not newer than ours */
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH, 2, ISR_01, 2, NULL), SX_OK);
    assert_int_equal(c.nisr, 2);
    assert_int_equal(c.isr_version, 2);
}

/* ------------------------------------------------------------- expansion -- */

static void test_expand_conditions(void **state)
{
    (void)state;
    sx_repcore c;
    /* Leading from leo 20 (epoch starts at 21), commit 15, ISR {0,1}. */
    lead(&c, ISR_01, 2, 2, 15, 20);
    sx_repcore_newest nw = newest();
    sx_repcore_isr_change ch;
    uint64_t t = T0 + 10;
    /* Unsynced: no. */
    assert_false(sx_repcore_expand_due(&c, t));
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    /* Synced at 14 < hw 15: no. */
    sx_epoch_start ours[] = {{EPOCH - 1, 1}};
    sx_epoch_start theirs[] = {{EPOCH - 1, 1}};
    sx_repcore_mismatched(&c, W2, ours, 1, 20, theirs, 1, 14);
    c.peers[W2].last_ack_ms = t;
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    /* At 18 >= hw but below the epoch's start - 1 (20): no. */
    c.peers[W2].match = 18;
    assert_false(sx_repcore_expand_due(&c, t));
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    /* At 20, acknowledged just now: due. */
    c.peers[W2].match = 20;
    assert_true(sx_repcore_expand_due(&c, t));
    /* ... but not while our lease has lapsed, */
    nw.lease_valid = false;
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    nw.lease_valid = true;
    /* nor when the newest map names another leader, */
    nw.leader = 1;
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    nw.leader = 0;
    /* nor when it names another process of worker 2 (it restarted), */
    sx_repcore_replica restarted[3] = {R3[0], R3[1], {2, 555, R3[2].address}};
    nw.replicas = restarted;
    assert_false(sx_repcore_expand(&c, t, &nw, &ch));
    nw.replicas = R3;
    /* nor when its last ack is older than half the lag timeout. */
    assert_false(sx_repcore_expand(&c, t + LAG / 2 + 1, &nw, &ch));
    assert_int_equal(c.npending, 0);
    /* All met: asked, pending, and not asked again within the interval. */
    assert_true(sx_repcore_expand(&c, t + LAG / 2, &nw, &ch));
    assert_int_equal(ch.nisr, 3);
    assert_int_equal(c.npending, 1);
    assert_false(sx_repcore_expand_due(&c, t + LAG / 2 + SX_REPCORE_EXPAND_RETRY_MS - 1));
    c.peers[W2].last_ack_ms = t + LAG / 2 + SX_REPCORE_EXPAND_RETRY_MS;
    assert_true(sx_repcore_expand_due(&c, t + LAG / 2 + SX_REPCORE_EXPAND_RETRY_MS));
    assert_true(sx_repcore_expand(&c, t + LAG / 2 + SX_REPCORE_EXPAND_RETRY_MS, &nw, &ch));
    assert_int_equal(c.npending, 1); /* once */
    /* In the ISR: nothing to ask. */
    assert_int_equal(sx_repcore_isr_accepted(&c, EPOCH, 2, ISR_ALL, 3, NULL), SX_OK);
    assert_false(sx_repcore_expand_due(&c, T0 + 9000));
}

/* ------------------------------------------------------------- follower -- */

/* ---------------------------------------------------------- retention -- */

/* The floor: nothing until every ISR follower answered in this leadership;
 * then the lowest applied (or match) of every follower that answered, less
 * the margin, capped by the retention; a follower outside the ISR counts
 * once it answered, and holds it for a lag timeout until then; off
 * (keep < 0) or not leading: 0. */
static void test_log_floor(void **state)
{
    (void)state;
    const uint64_t NOW = T0 + LAG;
    sx_repcore c;
    const uint64_t M = SX_REPCORE_TRIM_MARGIN;
    lead(&c, ISR_01, 2, 2, 5000, 5000);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 0); /* worker 1 unheard */
    ack(&c, W1, 5000, T0 + 10);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 0); /* its applied unknown */
    sx_repcore_peer_applied(&c, W1, 4000);
    /* Worker 2 is outside the ISR and silent: it holds the floor for a lag
     * timeout from the start of the leadership (it may be catching up and
     * about to answer), then nothing (maybe dead). */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, T0 + LAG - 1), 0);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 4000 - M);
    assert_int_equal(sx_repcore_log_floor(&c, 3000, 5000, 0, NOW), 3000 - M); /* ours is lower */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, -1, NOW), 0);       /* retention off */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 2500, NOW), 2500);  /* keep 2500 */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 100000, NOW), 0);
    /* Worker 2 answers, behind: it is catching up, and is not cut off. */
    ack(&c, W2, 5000, T0 + 20);
    c.peers[W2].match = 1500; /* as if it had acknowledged up to 1500 only */
    sx_repcore_peer_applied(&c, W2, 1400);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 1400 - M);
    sx_repcore_peer_applied(&c, W2, 1600); /* match lower than applied: match */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 1500 - M);
    sx_repcore_peer_applied(&c, W2, 500); /* within the margin: nothing */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 0);
    /* A fenced leader (someone else leads) announces nothing. */
    sx_repcore_peer_applied(&c, W2, 5000);
    c.peers[W2].match = 5000;
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 4000 - M);
    /* The index streams hold it at their lowest acknowledged watermark + 1
     * when that is lower; 1 keeps everything; 0 holds nothing. */
    sx_repcore_hold_for_indexes(&c, 2001);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 2001);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 4000, NOW), 1000); /* retention lower */
    sx_repcore_hold_for_indexes(&c, 1);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 1);
    sx_repcore_hold_for_indexes(&c, 4500); /* above the followers' floor: theirs */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 4000 - M);
    sx_repcore_hold_for_indexes(&c, 0);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 4000 - M);
    sx_repcore_hold_for_indexes(&c, 2001); /* off or not leading: still nothing */
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, -1, NOW), 0);
    sx_repcore_hold_for_indexes(&c, 0);
    sx_repcore_fence(&c);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW), 0);
    /* A new leadership forgets what the followers said. */
    lead(&c, ISR_ALL, 3, 2, 5000, 5000);
    ack(&c, W1, 5000, T0 + 10);
    sx_repcore_peer_applied(&c, W1, 5000);
    assert_int_equal(sx_repcore_log_floor(&c, 5000, 5000, 0, NOW),
                     0); /* worker 2 in the ISR, unheard */
}

static void test_follower_fence(void **state)
{
    (void)state;
    sx_repcore c;
    follow(&c, 7);
    flog f = {0};
    uint64_t e6[1] = {6};
    sx_repcore_append a = {.epoch = 6, .prev_offset = 0, .epochs = e6, .n = 1};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_STALE);
    assert_int_equal(plan.known_epoch, 7);
    /* A leader of epoch 9 raises what we know; epoch 8 is stale after it. */
    uint64_t e9[1] = {9};
    a = (sx_repcore_append){.epoch = 9, .epochs = e9, .n = 1, .commit = 0};
    plan = plan_on(&c, &f, &a);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_ACCEPT);
    assert_int_equal(c.known_epoch, 9);
    a.epoch = 8;
    plan = plan_on(&c, &f, &a);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_STALE);
    assert_int_equal(plan.known_epoch, 9);
}

static void test_follower_skip_truncate_append(void **state)
{
    (void)state;
    sx_repcore c;
    follow(&c, 3);
    flog f = {0};
    flog_fill(&f, 1, 4, 2);
    flog_fill(&f, 5, 6, 3);
    /* Entries 3..8: 3..6 held already (skipped), 7..8 appended. */
    uint64_t es[6] = {2, 2, 3, 3, 3, 3};
    sx_repcore_append a = {.epoch = 3, .prev_offset = 2, .prev_epoch = 2, .epochs = es, .n = 6};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_ACCEPT);
    assert_false(plan.truncate);
    assert_int_equal(plan.append_from, 4);
    run_plan(&c, &f, &a, &plan);
    assert_int_equal(f.leo, 8);
    /* The same message again (duplicated): nothing to do. */
    plan = plan_on(&c, &f, &a);
    assert_false(plan.truncate);
    assert_int_equal(plan.append_from, 6);
    /* An older, shorter one (reordered): nothing either, nothing lost. */
    sx_repcore_append old = {.epoch = 3, .prev_offset = 2, .prev_epoch = 2, .epochs = es, .n = 2};
    plan = plan_on(&c, &f, &old);
    assert_false(plan.truncate);
    assert_int_equal(plan.append_from, 2);
    run_plan(&c, &f, &old, &plan);
    assert_int_equal(f.leo, 8);
    assert_int_equal(c.verified, 8);
    /* A conflict at 6 (epoch 4 there): truncate to 5, append from there. */
    follow(&c, 4);
    uint64_t es4[4] = {3, 4, 4, 4};
    a = (sx_repcore_append){.epoch = 4, .prev_offset = 4, .prev_epoch = 2, .epochs = es4, .n = 4};
    plan = plan_on(&c, &f, &a);
    assert_true(plan.truncate);
    assert_int_equal(plan.truncate_to, 5);
    assert_int_equal(plan.append_from, 1);
    run_plan(&c, &f, &a, &plan);
    assert_int_equal(f.leo, 8);
    assert_int_equal(f.epochs[5], 4);
}

static void test_follower_mismatch(void **state)
{
    (void)state;
    sx_repcore c;
    follow(&c, 3);
    flog f = {0};
    flog_fill(&f, 1, 4, 2);
    /* prev beyond our log */
    sx_repcore_append a = {.epoch = 3, .prev_offset = 6, .prev_epoch = 2};
    assert_int_equal(plan_on(&c, &f, &a).verdict, SX_REPCORE_APPEND_MISMATCH);
    /* prev with another epoch */
    a = (sx_repcore_append){.epoch = 3, .prev_offset = 4, .prev_epoch = 3};
    assert_int_equal(plan_on(&c, &f, &a).verdict, SX_REPCORE_APPEND_MISMATCH);
    /* prev unreadable */
    sx_repcore_local l = {.leo = 4, .prev_read = false};
    sx_repcore_append_plan plan;
    a.prev_epoch = 2;
    sx_repcore_follow_plan(&c, &a, &l, &plan);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_MISMATCH);
    /* An empty log matches at 0. */
    flog empty = {0};
    a = (sx_repcore_append){.epoch = 3, .prev_offset = 0, .prev_epoch = 0};
    assert_int_equal(plan_on(&c, &empty, &a).verdict, SX_REPCORE_APPEND_ACCEPT);
}

static void test_follower_apply_bound_and_new_epoch(void **state)
{
    (void)state;
    sx_repcore c;
    follow(&c, 3);
    flog f = {0};
    uint64_t es[5] = {3, 3, 3, 3, 3};
    sx_repcore_append a = {.epoch = 3, .commit = 9, .epochs = es, .n = 5};
    uint64_t bound = accept(&c, &f, &a);
    assert_int_equal(bound, 5); /* the leader's commit 9 is past what it verified with us */
    assert_int_equal(c.leader_commit, 9);
    assert_int_equal(sx_repcore_commit(&c), 9);
    a = (sx_repcore_append){.epoch = 3, .prev_offset = 5, .prev_epoch = 3, .commit = 4};
    bound = accept(&c, &f, &a);
    assert_int_equal(bound, 4);
    assert_int_equal(c.leader_commit, 9); /* only rises */
    /* A new epoch: nothing verified until prev matches in it. */
    a = (sx_repcore_append){.epoch = 4, .prev_offset = 9, .prev_epoch = 4, .commit = 5};
    assert_int_equal(plan_on(&c, &f, &a).verdict, SX_REPCORE_APPEND_MISMATCH);
    assert_int_equal(c.verified, 0);
    assert_int_equal(c.verified_epoch, 4);
    a = (sx_repcore_append){.epoch = 4, .prev_offset = 3, .prev_epoch = 3, .commit = 5};
    bound = accept(&c, &f, &a);
    assert_int_equal(bound, 3);
}

static void test_leader_fenced_by_newer_append(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 3);
    flog f = {0};
    flog_fill(&f, 1, 3, EPOCH);
    sx_repcore_append a = {.epoch = EPOCH + 1, .prev_offset = 3, .prev_epoch = EPOCH};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_LEADING);
    assert_int_equal(plan.known_epoch, EPOCH);
    assert_true(c.fenced);
    assert_int_equal(sx_repcore_admit(&c), SX_ABORTED);
    assert_int_equal(c.verified, 0); /* nothing taken from it */
}

/* -------------------------------------------------- REPLICATION.md rows -- */

/* Row 1 (KIP-101): a follower restarts with a commit offset below its log
 * end. Truncation never uses the HW: the new leader's probe matches at its
 * log end, and it keeps every entry. */
static void test_row1_restart_never_truncates_to_hw(void **state)
{
    (void)state;
    sx_repcore c;
    sx_repcore_init(&c, 2, LAG); /* restarted: knows epoch 2 from its table */
    sx_repcore_map m = map_of(3, 1, 0, ISR_ALL, 3, 2);
    take(&c, 1, &m, 4, 10, T0); /* its persisted commit is 4, its log ends at 10 */
    flog f = {0};
    flog_fill(&f, 1, 10, 2);
    sx_repcore_append probe = {.epoch = 3, .prev_offset = 10, .prev_epoch = 2, .commit = 10};
    sx_repcore_append_plan plan = plan_on(&c, &f, &probe);
    assert_int_equal(plan.verdict, SX_REPCORE_APPEND_ACCEPT);
    assert_false(plan.truncate);
    assert_int_equal(run_plan(&c, &f, &probe, &plan), 10);
    assert_int_equal(f.leo, 10);
    /* The leader side: the match it finds is the epoch tables' prefix, 10. */
    sx_repcore l;
    lead(&l, ISR_ALL, 3, 2, 4, 12);
    sx_epoch_start ours[] = {{2, 1}, {EPOCH, 13}};
    sx_epoch_start theirs[] = {{2, 1}};
    assert_int_equal(sx_repcore_mismatched(&l, W1, ours, 2, 12, theirs, 1, 10), 10);
}

/* Row 2 (KIP-101): the replica that had not fsynced came back first, led
 * epoch 3 and wrote another entry at offset 6. The other (epoch 2 up to 6)
 * rejoins: it is matched at 5 and its 6 is replaced; the new leader's hw
 * starts from its own persisted commit, not its leo. */
static void test_row2_unsynced_leader_wrote_over(void **state)
{
    (void)state;
    sx_repcore l;
    lead(&l, ISR_ALL, 3, 2, 5, 5);
    assert_int_equal(l.hw, 5);
    sx_epoch_start ours[] = {{2, 1}, {EPOCH, 6}};
    sx_epoch_start theirs[] = {{2, 1}};
    assert_int_equal(sx_repcore_mismatched(&l, W1, ours, 2, 6, theirs, 1, 6), 5);

    sx_repcore c;
    follow(&c, EPOCH);
    flog f = {0};
    flog_fill(&f, 1, 6, 2);
    uint64_t es[1] = {EPOCH};
    sx_repcore_append a = {
        .epoch = EPOCH, .prev_offset = 5, .prev_epoch = 2, .commit = 5, .epochs = es, .n = 1};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_true(plan.truncate);
    assert_int_equal(plan.truncate_to, 5);
    assert_int_equal(run_plan(&c, &f, &a, &plan), 5);
    assert_int_equal(f.epochs[5], EPOCH);
}

/* Row 3 (KIP-279): two fast failovers; the follower led epoch 3 briefly
 * (offsets 6..8) and never saw epoch 4, which wrote 6..9 on the leader. The
 * naive lookup (where does the follower's epoch 3 end on the leader: at the
 * end of epoch 2, 8) is wrong; the common prefix is 5. */
static void test_row3_missed_middle_epoch(void **state)
{
    (void)state;
    sx_repcore l;
    lead(&l, ISR_ALL, 3, 2, 5, 10);
    sx_epoch_start ours[] = {{1, 1}, {2, 6}, {4, 9}, {EPOCH, 11}};
    sx_epoch_start theirs[] = {{1, 1}, {3, 6}};
    assert_int_equal(sx_repcore_mismatched(&l, W1, ours, 4, 10, theirs, 2, 8), 5);
    sx_repcore_step st;
    sx_repcore_session_step(&l, W1, 10, T0 + 1, &st);
    assert_int_equal(st.prev, 5);
    assert_true(st.entries);

    sx_repcore c;
    follow(&c, EPOCH);
    flog f = {0};
    flog_fill(&f, 1, 5, 1);
    flog_fill(&f, 6, 8, 3);
    uint64_t es[5] = {2, 2, 2, 4, 4};
    sx_repcore_append a = {
        .epoch = EPOCH, .prev_offset = 5, .prev_epoch = 1, .commit = 5, .epochs = es, .n = 5};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_true(plan.truncate);
    assert_int_equal(plan.truncate_to, 5);
    assert_int_equal(plan.append_from, 0);
    run_plan(&c, &f, &a, &plan);
    for (uint64_t o = 6; o <= 10; o++)
        assert_int_equal(f.epochs[o - 1], es[o - 6]);
}

/* Row 4 (KIP-320): a follower paused mid-append through two leader changes:
 * the stale leader's message is refused; the current leader's finds the
 * stale tail and truncates it before appending. */
static void test_row4_stuck_follower_is_fenced(void **state)
{
    (void)state;
    sx_repcore c;
    follow(&c, 5);
    flog f = {0};
    flog_fill(&f, 1, 4, 5);
    /* The map moved on twice while it was stopped. */
    sx_repcore_map m = map_of(7, 3, 2, ISR_ALL, 3, 2);
    take(&c, 1, &m, 0, 4, T0 + 1);
    assert_int_equal(c.known_epoch, 7);
    uint64_t es5[2] = {5, 5};
    sx_repcore_append stale = {
        .epoch = 5, .prev_offset = 4, .prev_epoch = 5, .commit = 6, .epochs = es5, .n = 2};
    assert_int_equal(plan_on(&c, &f, &stale).verdict, SX_REPCORE_APPEND_STALE);
    assert_int_equal(f.leo, 4);
    /* Epoch 7's leader has 1..2 of epoch 5 and 3.. of epoch 6. */
    sx_repcore_append probe = {.epoch = 7, .prev_offset = 6, .prev_epoch = 6};
    assert_int_equal(plan_on(&c, &f, &probe).verdict, SX_REPCORE_APPEND_MISMATCH);
    uint64_t es[4] = {6, 6, 6, 6};
    sx_repcore_append a = {
        .epoch = 7, .prev_offset = 2, .prev_epoch = 5, .commit = 6, .epochs = es, .n = 4};
    sx_repcore_append_plan plan = plan_on(&c, &f, &a);
    assert_true(plan.truncate);
    assert_int_equal(plan.truncate_to, 2);
    assert_int_equal(run_plan(&c, &f, &a, &plan), 6);
}

/* Row 5 (KAFKA-14704): a demoted leader (epoch 5 up to 10, committed up to
 * 5) is handed the new leader's hw 12 before it truncated: it applies
 * nothing beyond what the new leader verified with it. */
static void test_row5_demoted_leader_applies_only_verified(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 5, 10);
    sx_repcore_map m = map_of(EPOCH + 1, 2, 1, ISR_ALL, 3, 2);
    sx_repcore_map_plan plan = take(&c, 0, &m, 5, 10, T0 + 1);
    assert_true(plan.stop_leading);
    assert_int_equal(c.role, SX_REPCORE_FOLLOWER);
    flog f = {0};
    flog_fill(&f, 1, 5, 4);
    flog_fill(&f, 6, 10, EPOCH);
    /* A heartbeat at the new leader's end, commit 12: mismatch, nothing applied. */
    sx_repcore_append hb = {
        .epoch = EPOCH + 1, .prev_offset = 12, .prev_epoch = EPOCH + 1, .commit = 12};
    assert_int_equal(plan_on(&c, &f, &hb).verdict, SX_REPCORE_APPEND_MISMATCH);
    /* Matched at the common prefix 5, no entries yet, commit 12: bound 5. */
    sx_repcore_append at5 = {.epoch = EPOCH + 1, .prev_offset = 5, .prev_epoch = 4, .commit = 12};
    sx_repcore_append_plan p = plan_on(&c, &f, &at5);
    assert_int_equal(run_plan(&c, &f, &at5, &p), 5);
    /* Even with its own 6..10 still in place. */
    assert_int_equal(f.leo, 10);
    /* The new leader's 6..12 replace them; then 12 may be applied. */
    uint64_t es[7] = {6, 6, 6, 6, 6, 6, 6};
    sx_repcore_append a = {
        .epoch = EPOCH + 1, .prev_offset = 5, .prev_epoch = 4, .commit = 12, .epochs = es, .n = 7};
    p = plan_on(&c, &f, &a);
    assert_true(p.truncate);
    assert_int_equal(p.truncate_to, 5);
    assert_int_equal(run_plan(&c, &f, &a, &p), 12);
}

/* Row 6 (KAFKA-7128): a leader whose hw lags must not let a follower in on
 * that hw: it needs the start of the leader's epoch too, and from the
 * moment it is asked in it counts for commits. */
static void test_row6_join_needs_epoch_start(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_01, 2, 2, 3, 8); /* hw 3 (held back), epoch starts at 9 */
    sx_repcore_newest nw = newest();
    sx_repcore_isr_change ch;
    /* Worker 2 holds 1..5: above the hw, below the epoch's start. */
    sx_repcore_step st;
    sx_repcore_session_step(&c, W2, 8, T0 + 1, &st);
    sx_repcore_sent(&c, W2, T0 + 1);
    sx_epoch_start ours[] = {{EPOCH - 1, 1}, {EPOCH, 9}};
    sx_epoch_start theirs[] = {{EPOCH - 1, 1}};
    sx_repcore_mismatched(&c, W2, ours, 2, 8, theirs, 1, 5);
    sx_repcore_session_step(&c, W2, 8, T0 + 2, &st);
    sx_repcore_acked(&c, W2, &st, 0, T0 + 2, 8); /* a probe at 5 accepted */
    assert_int_equal(c.peers[W2].match, 5);
    assert_false(sx_repcore_expand(&c, T0 + 2, &nw, &ch));
    /* It takes 6..8: now it may join, and commits wait for it. */
    assert_false(ack(&c, W2, 8, T0 + 3));
    assert_true(sx_repcore_expand(&c, T0 + 3, &nw, &ch));
    ack(&c, W1, 12, T0 + 4);
    assert_int_equal(c.hw, 8);
    assert_true(ack(&c, W2, 12, T0 + 5));
    assert_int_equal(c.hw, 12);
}

/* Row 7: a leader cut from a follower (not from the coordinator) commits
 * nothing without it until the coordinator accepted the shrink; a refused
 * shrink (a paused old leader's) changes nothing. */
static void test_row7_cut_follower_needs_the_coordinator(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 4);
    ack(&c, W1, 4, T0);
    ack(&c, W2, 4, T0);
    assert_int_equal(c.hw, 4);
    /* Worker 2 is cut off; 5..9 are appended and worker 1 takes them. */
    for (uint64_t t = T0 + 100; t <= T0 + 3 * LAG; t += SX_REPCORE_IDLE_MS) {
        ack(&c, W1, 9, t);
        assert_int_equal(c.hw, 4);
    }
    sx_repcore_step st;
    sx_repcore_session_step(&c, W2, 9, T0 + 3 * LAG, &st);
    assert_true(st.shrink);
    /* Refused (e.g. this leader was paused and the map moved on). */
    sx_repcore_shrink_answered(&c, W2, false, T0 + 3 * LAG + 5);
    assert_false(sx_repcore_update_hw(&c, 9));
    assert_int_equal(c.hw, 4);
    /* Asked again and accepted: commits move without it. */
    sx_repcore_session_step(&c, W2, 9, T0 + 4 * LAG, &st);
    assert_true(st.shrink);
    sx_repcore_shrink_answered(&c, W2, true, T0 + 4 * LAG + 5);
    assert_int_equal(c.hw, 4);
    sx_repcore_isr_accepted(&c, st.change.epoch, st.change.isr_version + 1, st.change.isr,
                            st.change.nisr, NULL);
    assert_true(sx_repcore_update_hw(&c, 9));
    assert_int_equal(c.hw, 9);
}

/* Row 8 (Jepsen 2013): min_isr 2, both followers silent: the ISR shrinks to
 * the leader, writes are refused, and the hw does not move. */
static void test_row8_both_followers_silent(void **state)
{
    (void)state;
    sx_repcore c;
    lead(&c, ISR_ALL, 3, 2, 0, 3);
    ack(&c, W1, 3, T0);
    ack(&c, W2, 3, T0);
    assert_int_equal(c.hw, 3);
    /* Both stop; 4..6 are appended. */
    assert_false(sx_repcore_update_hw(&c, 6));
    sx_repcore_step st;
    sx_repcore_session_step(&c, W1, 6, T0 + LAG + 1, &st);
    assert_true(st.shrink);
    sx_repcore_shrink_answered(&c, W1, true, T0 + LAG + 2);
    sx_repcore_isr_accepted(&c, EPOCH, 2, (int32_t[]){0, 2}, 2, NULL);
    assert_false(sx_repcore_update_hw(&c, 6));
    sx_repcore_session_step(&c, W2, 6, T0 + LAG + 3, &st);
    assert_true(st.shrink);
    assert_int_equal(st.change.nisr, 1);
    sx_repcore_shrink_answered(&c, W2, true, T0 + LAG + 4);
    sx_repcore_isr_accepted(&c, EPOCH, 3, ISR_0, 1, NULL);
    assert_int_equal(sx_repcore_admit(&c), SX_FAILED_PRECONDITION);
    assert_false(sx_repcore_update_hw(&c, 6));
    assert_int_equal(c.hw, 3);
    /* Nor does a map with the ISR {0} move it. */
    sx_repcore_map m = map_of(EPOCH, 3, 0, ISR_0, 1, 2);
    sx_repcore_map_plan plan = take(&c, 0, &m, 3, 6, T0 + LAG + 5);
    assert_true(plan.recommit);
    assert_int_equal(c.hw, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_follow_the_map),
        cmocka_unit_test(test_map_too_large_is_refused),
        cmocka_unit_test(test_commit_needs_min_isr),
        cmocka_unit_test(test_commit_every_isr_follower_synced),
        cmocka_unit_test(test_commit_never_above_leo_never_falls),
        cmocka_unit_test(test_new_leader_starts_from_persisted_commit),
        cmocka_unit_test(test_new_leader_serves_reads_from_epoch_start),
        cmocka_unit_test(test_pending_followers_count_for_commit),
        cmocka_unit_test(test_pending_ends_with_the_replica_or_the_epoch),
        cmocka_unit_test(test_fenced_leader_stops),
        cmocka_unit_test(test_session_steps),
        cmocka_unit_test(test_shrink_after_lag_timeout),
        cmocka_unit_test(test_no_shrink_when_caught_up_or_acking),
        cmocka_unit_test(test_isr_answer_for_another_epoch_ignored),
        cmocka_unit_test(test_expand_conditions),
        cmocka_unit_test(test_log_floor),
        cmocka_unit_test(test_follower_fence),
        cmocka_unit_test(test_follower_skip_truncate_append),
        cmocka_unit_test(test_follower_mismatch),
        cmocka_unit_test(test_follower_apply_bound_and_new_epoch),
        cmocka_unit_test(test_leader_fenced_by_newer_append),
        cmocka_unit_test(test_row1_restart_never_truncates_to_hw),
        cmocka_unit_test(test_row2_unsynced_leader_wrote_over),
        cmocka_unit_test(test_row3_missed_middle_epoch),
        cmocka_unit_test(test_row4_stuck_follower_is_fenced),
        cmocka_unit_test(test_row5_demoted_leader_applies_only_verified),
        cmocka_unit_test(test_row6_join_needs_epoch_start),
        cmocka_unit_test(test_row7_cut_follower_needs_the_coordinator),
        cmocka_unit_test(test_row8_both_followers_silent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
