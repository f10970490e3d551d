/* test_partmap.c: unit tests for partmap.h through its public header: the
 * invariants a map must hold to be installed, and every lookup, on a map of
 * 3 workers, 4 log partitions and one global index of 2 term partitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdlib.h>
#include <string.h>

#include "partmap.h"
#include "rpc.h"

typedef Shardex__Internal__V1__ClusterMap cmap;

/* A map made of static parts, packed and unpacked so that it owns its memory
 * as a received one does. edit may break it before packing. */
static cmap *make_map(void (*edit)(cmap *m))
{
    static Shardex__Internal__V1__ClusterSettings set =
        SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = 4;
    set.min_isr = 2;
    static Shardex__Internal__V1__WorkerEntry w[3];
    static Shardex__Internal__V1__WorkerEntry *wp[3];
    static const char *ids[] = {"w-a", "w-b", "w-c"};
    static const char *addrs[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"};
    for (int i = 0; i < 3; i++) {
        shardex__internal__v1__worker_entry__init(&w[i]);
        w[i].id = (char *)ids[i];
        w[i].address = (char *)addrs[i];
        w[i].alive = i != 2; /* w-c is dead */
        wp[i] = &w[i];
    }
    static Shardex__Internal__V1__LogPartition lp[4];
    static Shardex__Internal__V1__LogPartition *lpp[4];
    static int32_t reps[4][3], isr[4][3];
    for (int p = 0; p < 4; p++) {
        shardex__internal__v1__log_partition__init(&lp[p]);
        lp[p].epoch = 10 + (uint64_t)p;
        lp[p].leader = p % 3; /* p 2 is led by the dead w-c; p 3 by w-a */
        for (int k = 0; k < 3; k++)
            reps[p][k] = (p + k) % 3;
        lp[p].replicas = reps[p];
        lp[p].n_replicas = 3;
        isr[p][0] = reps[p][0];
        isr[p][1] = reps[p][1];
        lp[p].isr = isr[p];
        lp[p].n_isr = 2;
        lpp[p] = &lp[p];
    }
    lp[1].leader = -1; /* p 1 has no leader */
    static Shardex__Internal__V1__TermPartition tp[3];
    static Shardex__Internal__V1__TermPartition *tpp[3];
    for (int t = 0; t < 3; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tp[t].epoch = 100 + (uint64_t)t;
        tp[t].owner = t; /* slot 2 (owned by dead w-c) belongs to index 8 as its t=1 */
        tpp[t] = &tp[t];
    }
    static Shardex__V1__IndexSpec spec[2];
    static Shardex__Internal__V1__IndexEntry ie[2];
    static Shardex__Internal__V1__IndexEntry *iep[2];
    shardex__v1__index_spec__init(&spec[0]);
    spec[0].name = "by_name";
    spec[0].field = "name";
    spec[0].local = true;
    shardex__v1__index_spec__init(&spec[1]);
    spec[1].name = "by_tag";
    spec[1].field = "tag";
    spec[1].global = true;
    spec[1].term_partitions = 2;
    for (int i = 0; i < 2; i++) {
        shardex__internal__v1__index_entry__init(&ie[i]);
        ie[i].spec = &spec[i];
        ie[i].id = 7 + (uint64_t)i;
        iep[i] = &ie[i];
    }
    ie[1].first_term = 1;
    cmap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 42;
    m.settings = &set;
    m.workers = wp;
    m.n_workers = 3;
    m.partitions = lpp;
    m.n_partitions = 4;
    m.terms = tpp;
    m.n_terms = 3;
    m.indexes = iep;
    m.n_indexes = 2;
    if (edit)
        edit(&m);
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(&m.base, buf);
    cmap *out = (void *)sx_rpc_unpack(&shardex__internal__v1__cluster_map__descriptor, n, buf);
    free(buf);
    assert_non_null(out);
    return out;
}

static sx_partmap *view(void (*edit)(cmap *m), const char *self)
{
    cmap *m = make_map(edit);
    sx_partmap *pm = NULL;
    sx_err err = {0};
    assert_int_equal(sx_partmap_create(&m->base, m, self, &pm, &err), SX_OK);
    return pm;
}

static void test_lookups(void **state)
{
    (void)state;
    sx_partmap *pm = view(NULL, "w-b");
    assert_int_equal(sx_partmap_version(pm), 42);
    assert_int_equal(sx_partmap_partitions(pm), 4);
    assert_int_equal(sx_partmap_min_isr(pm), 2);
    assert_int_equal(sx_partmap_lease_ms(pm), SX_PARTMAP_DEFAULT_LEASE_MS);
    assert_int_equal(sx_partmap_attempt_ms(pm), 2 * SX_PARTMAP_DEFAULT_LEASE_MS);
    assert_int_equal(sx_partmap_self(pm), 1);
    assert_int_equal(sx_partmap_worker_named(pm, "w-c"), 2);
    assert_int_equal(sx_partmap_worker_named(pm, "w-z"), -1);
    assert_null(sx_partmap_worker(pm, 3));
    assert_null(sx_partmap_worker(pm, -1));
    assert_null(sx_partmap_part(pm, 4));
    assert_int_equal(sx_partmap_leader(pm, 0), 0);
    assert_int_equal(sx_partmap_leader(pm, 1), -1);
    assert_int_equal(sx_partmap_leader(pm, 9), -1);
    assert_false(sx_partmap_leads(pm, 0));
    /* p 1: replicas {1,2,0}, isr {1,2} */
    assert_true(sx_partmap_hosts(pm, 1, 0));
    assert_false(sx_partmap_in_isr(pm, 1, 0));
    assert_true(sx_partmap_in_isr(pm, 1, 2));
    assert_false(sx_partmap_hosts(pm, 9, 0));

    sx_partmap_target t;
    sx_err err = {0};
    assert_int_equal(sx_partmap_leader_target(pm, 0, &t, &err), SX_OK);
    assert_int_equal(t.worker, 0);
    assert_string_equal(t.address, "127.0.0.1:1");
    assert_int_equal(t.epoch, 10);
    assert_int_equal(sx_partmap_leader_target(pm, 1, &t, &err), SX_UNAVAILABLE);
    assert_string_equal(err.msg, "partition 1 has no live leader");
    /* led by a dead worker: no live leader either */
    assert_int_equal(sx_partmap_leader_target(pm, 2, &t, &err), SX_UNAVAILABLE);

    const Shardex__Internal__V1__IndexEntry *e = sx_partmap_index_named(pm, "by_tag");
    assert_non_null(e);
    assert_ptr_equal(sx_partmap_index(pm, 8), e);
    assert_null(sx_partmap_index(pm, 9));
    assert_null(sx_partmap_index_named(pm, "nope"));
    assert_int_equal(sx_partmap_term_target(pm, e, 0, &t, &err), SX_OK);
    assert_int_equal(t.worker, 1);
    assert_int_equal(t.epoch, 101);
    assert_int_equal(sx_partmap_term_target(pm, e, 1, &t, &err), SX_UNAVAILABLE);
    assert_string_equal(err.msg, "term partition 1 of index \"by_tag\" has no live owner");
    assert_int_equal(sx_partmap_term_target(pm, e, 2, &t, &err), SX_NOT_FOUND);
    /* a LOCAL-only index has no term partitions */
    assert_null(sx_partmap_term(pm, sx_partmap_index(pm, 7), 0));

    /* references: the view outlives its first holder */
    sx_partmap *again = sx_partmap_acquire(pm);
    sx_partmap_release(pm);
    assert_int_equal(sx_partmap_version(again), 42);
    sx_partmap_release(again);
    sx_partmap_release(NULL);
}

static void test_self(void **state)
{
    (void)state;
    sx_partmap *pm = view(NULL, "w-a");
    assert_true(sx_partmap_leads(pm, 0));
    assert_true(sx_partmap_leads(pm, 3));
    assert_false(sx_partmap_leads(pm, 1));
    sx_partmap_release(pm);
    pm = view(NULL, NULL);
    assert_int_equal(sx_partmap_self(pm), -1);
    assert_false(sx_partmap_leads(pm, 0));
    sx_partmap_release(pm);
}

/* Partition 0 moved off w-a (index 0): replicas and ISR {1, 2}; w-a stays
 * an eligible leader (ELR) in elr_kept, not in elr_gone. */
static void moved_off_a(cmap *m, bool elr)
{
    static int32_t bc[2] = {1, 2}, a[1] = {0};
    Shardex__Internal__V1__LogPartition *lp = m->partitions[0];
    lp->replicas = bc;
    lp->n_replicas = 2;
    lp->isr = bc;
    lp->n_isr = 2;
    lp->leader = 1;
    lp->elr = elr ? a : NULL;
    lp->n_elr = elr ? 1 : 0;
}
static void elr_kept(cmap *m)
{
    moved_off_a(m, true);
}
static void elr_gone(cmap *m)
{
    moved_off_a(m, false);
}

/* A worker deletes its store of p only when the map needs its data in no
 * role: not a replica, not in the ISR, not in the ELR. */
static void test_may_drop(void **state)
{
    (void)state;
    sx_partmap *pm = view(NULL, "w-a");
    assert_false(sx_partmap_may_drop(pm, 0, 0)); /* a replica, in the ISR */
    assert_false(sx_partmap_may_drop(pm, 1, 0)); /* a replica outside the ISR */
    assert_false(sx_partmap_may_drop(pm, 9, 0)); /* no such partition */
    assert_false(sx_partmap_may_drop(pm, 0, -1));
    sx_partmap_release(pm);
    pm = view(elr_kept, "w-a");
    assert_false(sx_partmap_may_drop(pm, 0, 0)); /* may still be elected */
    assert_false(sx_partmap_may_drop(pm, 0, 1));
    sx_partmap_release(pm);
    pm = view(elr_gone, "w-a");
    assert_true(sx_partmap_may_drop(pm, 0, 0));
    assert_false(sx_partmap_may_drop(pm, 0, 2));
    sx_partmap_release(pm);
}

static void bad_leader(cmap *m)
{
    m->partitions[2]->leader = 3;
}
static void bad_replicas(cmap *m)
{
    m->partitions[0]->n_isr = 3;
    m->partitions[0]->n_replicas = 2;
}
static void bad_count(cmap *m)
{
    m->n_partitions = 3;
}
static void bad_terms(cmap *m)
{
    m->indexes[1]->first_term = 2;
}
static void bad_owner(cmap *m)
{
    m->terms[0]->owner = 5;
}

static void expect_refused(void (*edit)(cmap *m), const char *needle)
{
    cmap *m = make_map(edit);
    sx_partmap *pm = (void *)1;
    sx_err err = {0};
    assert_int_equal(sx_partmap_create(&m->base, m, "w-a", &pm, &err), SX_INVALID_ARGUMENT);
    assert_null(pm);
    if (!strstr(err.msg, needle))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_refuses_broken_maps(void **state)
{
    (void)state;
    expect_refused(bad_leader, "partition 2: leader names worker 3 of 3");
    expect_refused(bad_replicas, "partition 0: 2 replicas and 3 in the ISR");
    expect_refused(bad_count, "3 log partitions, settings say 4");
    expect_refused(bad_terms, "index \"by_tag\": term partitions 2..4 beyond the map's 3");
    expect_refused(bad_owner, "term partition slot 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_refuses_broken_maps),
        cmocka_unit_test(test_may_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
