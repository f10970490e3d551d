/* test_replica_pending.c: a partition whose next store waits for the readers
 * of its retired one does not hold up the other partitions' map changes
 * (replica.c: apply_map, manager_main). In process, on real LevelDB stores:
 * one replica set, worker w-a, P=2, maps handed to it as the membership
 * would (sx_replica_on_map), followers only (the leader w-b is an address
 * nobody serves: a follower does not call its leader, it waits for Appends).
 *
 *   v1: w-a follows p0 and p1 (epoch 5, leader w-b). A reader takes a view
 *       of p0 (a reference to its store, as ScanDocs or Digest do).
 *   v2: p0 moves off w-a: its store is retired, still open for the reader.
 *   v3: p0 comes back to w-a, and p1 changes leader (w-c, epoch 6).
 *
 * While the reader holds p0's old store, v3 takes p1 (epoch 6) and leaves p0
 * without a replica (not serving: no view); once the reader lets go, p0's
 * old store is closed and deleted and a fresh one opens, with v3's epoch,
 * without another map, and takes its leader's log again; p1 kept every
 * entry appended to it, before and after its change. Each wait is a poll with a deadline, never a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "partmap.h"
#include "replica.h"
#include "rpc.h"

#define WAIT_MS 10000

typedef Shardex__Internal__V1__ClusterMap cmap;

/* A map of w-a, w-b, w-c (all alive) and P=2, packed and unpacked so that it
 * owns its memory as a received one does: p0 on w-a and w-b when p0_here,
 * else on w-b and w-c; p1 on w-a and w-b, led by p1_leader at p1_epoch. */
static sx_partmap *make_map(uint64_t version, bool p0_here, int32_t p1_leader, uint64_t p1_epoch)
{
    Shardex__Internal__V1__ClusterSettings set = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = 2;
    set.min_isr = 1;
    Shardex__Internal__V1__WorkerEntry w[3];
    Shardex__Internal__V1__WorkerEntry *wp[3];
    const char *ids[] = {"w-a", "w-b", "w-c"};
    const char *addrs[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"};
    for (int i = 0; i < 3; i++) {
        shardex__internal__v1__worker_entry__init(&w[i]);
        w[i].id = (char *)ids[i];
        w[i].address = (char *)addrs[i];
        w[i].alive = true;
        w[i].incarnation = 1;
        wp[i] = &w[i];
    }
    int32_t here[2] = {0, 1}, away[2] = {1, 2}, isr0[1] = {1}, isr1[1] = {p1_leader};
    Shardex__Internal__V1__LogPartition lp[2];
    Shardex__Internal__V1__LogPartition *lpp[2] = {&lp[0], &lp[1]};
    for (int p = 0; p < 2; p++)
        shardex__internal__v1__log_partition__init(&lp[p]);
    lp[0].epoch = 5;
    lp[0].leader = 1;
    lp[0].replicas = p0_here ? here : away;
    lp[0].n_replicas = 2;
    lp[0].isr = isr0; /* w-a is never in an ISR: a move may drop it */
    lp[0].n_isr = 1;
    lp[1].epoch = p1_epoch;
    lp[1].leader = p1_leader;
    lp[1].replicas = here;
    lp[1].n_replicas = 2;
    lp[1].isr = isr1;
    lp[1].n_isr = 1;
    if (p1_leader == 2) { /* w-c leads: it is a replica */
        static int32_t with_c[3] = {0, 1, 2};
        lp[1].replicas = with_c;
        lp[1].n_replicas = 3;
    }
    cmap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = version;
    m.settings = &set;
    m.workers = wp;
    m.n_workers = 3;
    m.partitions = lpp;
    m.n_partitions = 2;
    size_t n = shardex__internal__v1__cluster_map__get_packed_size(&m);
    uint8_t *buf = malloc(n);
    shardex__internal__v1__cluster_map__pack(&m, buf);
    cmap *owned = (void *)sx_rpc_unpack(&shardex__internal__v1__cluster_map__descriptor, n, buf);
    free(buf);
    assert_non_null(owned);
    sx_partmap *pm = NULL;
    sx_err err = {0};
    if (sx_partmap_create(&owned->base, owned, "w-a", &pm, &err) != SX_OK)
        fail_msg("map v%llu: %s", (unsigned long long)version, err.msg);
    return pm;
}

static void give(sx_replica_set *rs, sx_partmap *pm)
{
    sx_replica_on_map(rs, pm);
    sx_partmap_release(pm);
}

/* p's replica state here; false when p has none. */
static bool state_of(sx_replica_set *rs, uint32_t p, sx_replica_state *out)
{
    sx_replica_state st[4];
    size_t n = sx_replica_states(rs, st, 4);
    for (size_t i = 0; i < n; i++)
        if (st[i].partition == p) {
            *out = st[i];
            return true;
        }
    return false;
}

static bool has_epoch(sx_replica_set *rs, uint32_t p, uint64_t epoch)
{
    sx_replica_state st;
    return state_of(rs, p, &st) && st.epoch == epoch && st.role == SX_REPCORE_FOLLOWER;
}

static bool dropped(sx_replica_set *rs)
{
    uint64_t snaps = 0, drops = 0;
    sx_replica_counts(rs, &snaps, &drops);
    return drops == 1;
}

/* Appends n puts (ids tag-0..) to p after prev, as p's leader (leader_id
 * at epoch) would, committed at once: what the Append answers. */
static sx_status append_puts(sx_replica_set *rs, uint32_t p, uint64_t epoch, const char *leader_id,
                             uint64_t prev, uint64_t prev_epoch, const char *tag, uint32_t n)
{
    sx_arena arena = {0};
    Shardex__Internal__V1__AppendRequest req = SHARDEX__INTERNAL__V1__APPEND_REQUEST__INIT;
    req.partition = p;
    req.epoch = epoch;
    req.leader_id = (char *)leader_id;
    req.prev_offset = prev;
    req.prev_epoch = prev_epoch;
    req.commit_offset = prev + n;
    req.n_entries = n;
    req.entries = sx_arena_alloc(&arena, n * sizeof(*req.entries));
    for (uint32_t i = 0; i < n; i++) {
        Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
        char id[32];
        snprintf(id, sizeof(id), "%s-%u", tag, i);
        d.id = id;
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = &d;
        Shardex__Internal__V1__AppendEntry *e = sx_arena_alloc(&arena, sizeof(*e));
        shardex__internal__v1__append_entry__init(e);
        e->epoch = epoch;
        e->op.len = shardex__internal__v1__log_op__get_packed_size(&op);
        e->op.data = sx_arena_alloc(&arena, e->op.len);
        shardex__internal__v1__log_op__pack(&op, e->op.data);
        req.entries[i] = e;
    }
    Shardex__Internal__V1__AppendResponse resp = SHARDEX__INTERNAL__V1__APPEND_RESPONSE__INIT;
    sx_err err = {0};
    sx_status st = sx_replica_append(rs, &req, &resp, &arena, &err);
    if (st == SX_OK)
        assert_false(resp.mismatch);
    sx_arena_free(&arena);
    return st;
}

static bool count_doc(void *arg, const char *id, size_t id_len, uint64_t version,
                      const uint8_t *doc, size_t len)
{
    (void)id, (void)id_len, (void)version, (void)doc, (void)len;
    ++*(size_t *)arg;
    return true;
}

/* How many documents p holds here (applied), -1 when p is not hosted. */
static long docs_of(sx_replica_set *rs, uint32_t p)
{
    size_t n = 0;
    sx_arena arena = {0};
    sx_replica_scan_at at;
    sx_err err = {0};
    sx_status st = sx_replica_scan_docs(rs, p, count_doc, &n, &arena, &at, &err);
    sx_arena_free(&arena);
    return st == SX_OK ? (long)n : -1;
}

static bool applied_docs(sx_replica_set *rs, uint32_t p, long n)
{
    return docs_of(rs, p) == n;
}

#define POLL(cond, what)                                                                           \
    do {                                                                                           \
        uint64_t until_ = sx_clock_now_ms() + WAIT_MS;                                             \
        while (!(cond)) {                                                                          \
            if (sx_clock_now_ms() > until_)                                                        \
                fail_msg("timed out: %s", what);                                                   \
            sx_clock_sleep_ms(5);                                                                        \
        }                                                                                          \
    } while (0)

static void test_pending_open_does_not_stall_others(void **state)
{
    (void)state;
    char dir[512];
    sx_h_tmpdir(dir, sizeof(dir), "replica-pending");
    sx_replica_opts o = {.data_dir = dir, .worker_id = "w-a",
                         .coordinator = "127.0.0.1:1", .fsync = SX_FSYNC_NEVER};
    sx_replica_set *rs = NULL;
    sx_err err = {0};
    if (sx_replica_create(&o, &rs, &err) != SX_OK)
        fail_msg("sx_replica_create: %s", err.msg);

    give(rs, make_map(1, true, 1, 5));
    POLL(has_epoch(rs, 0, 5) && has_epoch(rs, 1, 5), "v1 applied");
    assert_int_equal(append_puts(rs, 0, 5, "w-b", 0, 0, "a", 4), SX_OK);
    assert_int_equal(append_puts(rs, 1, 5, "w-b", 0, 0, "b", 6), SX_OK);
    POLL(applied_docs(rs, 0, 4) && applied_docs(rs, 1, 6), "v1's appends applied");
    sx_replica_view reader;
    assert_true(sx_replica_get_view(rs, 0, &reader));

    give(rs, make_map(2, false, 1, 5));
    POLL(dropped(rs), "p0 dropped by v2");
    sx_replica_view none;
    assert_false(sx_replica_get_view(rs, 0, &none));

    give(rs, make_map(3, true, 2, 6));
    /* p1 takes v3 while the reader still holds p0's retired store... */
    POLL(has_epoch(rs, 1, 6), "p1 did not take v3 while p0's old store was held");
    /* ...and its new leader's appends, after the 6 documents of epoch 5... */
    assert_int_equal(append_puts(rs, 1, 6, "w-c", 6, 5, "c", 3), SX_OK);
    POLL(applied_docs(rs, 1, 9), "p1's epoch 6 appends applied");
    /* ...while p0 has no replica: it neither serves nor acknowledges. */
    sx_replica_state st;
    assert_false(state_of(rs, 0, &st));
    assert_false(sx_replica_get_view(rs, 0, &none));
    assert_int_equal(docs_of(rs, 0), -1);
    assert_int_equal(append_puts(rs, 0, 5, "w-b", 0, 0, "a", 1), SX_UNAVAILABLE);
    /* The reader still reads the old store, with what it held. */
    assert_int_equal(reader.applied, 4);

    sx_replica_view_release(&reader); /* the last reference: closed and deleted */
    POLL(has_epoch(rs, 0, 5), "p0 did not open once its old store's reader let go");
    sx_replica_view v;
    assert_true(sx_replica_get_view(rs, 0, &v));
    assert_int_equal(v.applied, 0); /* a fresh store: the dropped one was deleted */
    sx_replica_view_release(&v);
    /* It takes its leader's log from the start, as any new replica. */
    assert_int_equal(append_puts(rs, 0, 5, "w-b", 0, 0, "a", 4), SX_OK);
    POLL(applied_docs(rs, 0, 4), "p0's new store did not take its leader's log");
    assert_true(has_epoch(rs, 1, 6));
    assert_int_equal(docs_of(rs, 1), 9); /* p1 lost nothing */
    sx_replica_destroy(rs);
    sx_h_tmpdir_done(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_open_does_not_stall_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
