/* test_fanout.c: unit tests for fanout.h through its public header: the two
 * policies' decisions (what is retried for how long, how a failure is
 * reported), and whole fan-outs over a fixed map whose targets are this
 * worker, run by a scripted local executor: answers at once, later from
 * another thread, ABORTED then re-aimed, never (given up at the attempt's
 * deadline, answered late); plus one RPC to a dead address, named (the only
 * test here that depends on timing, and only for which of two statuses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fanout.h"
#include "mem.h"
#include "shardex/internal/v1/replication.pb-c.h"

typedef Shardex__Internal__V1__ClusterMap cmap;

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)

/* ------------------------------------------------------------ policies -- */

static void test_retries(void **state)
{
    (void)state;
    const sx_fanout_policy *r = &sx_fanout_reads, *w = &sx_fanout_writes;
    /* Until the deadline, as long as a pause still fits before it. */
    assert_true(sx_fanout_retries(r, SX_ABORTED, 0, 10000, 20000));
    assert_true(sx_fanout_retries(w, SX_ABORTED, 0, 10000, 20000));
    assert_true(sx_fanout_retries(r, SX_UNAVAILABLE, 0, 100, 200));
    assert_false(sx_fanout_retries(r, SX_UNAVAILABLE, 0, 150, 200));
    assert_true(sx_fanout_retries(w, SX_DEADLINE_EXCEEDED, 0, 100, 1000));
    /* UNIMPLEMENTED: writes only. */
    assert_true(sx_fanout_retries(w, SX_UNIMPLEMENTED, 0, 100, 1000));
    assert_false(sx_fanout_retries(r, SX_UNIMPLEMENTED, 0, 100, 1000));
    /* FAILED_PRECONDITION: reads until the deadline, writes for 600 ms. */
    assert_true(sx_fanout_retries(r, SX_FAILED_PRECONDITION, 1000, 5000, 9000));
    assert_true(sx_fanout_retries(w, SX_FAILED_PRECONDITION, 1000, 1599, 9000));
    assert_false(sx_fanout_retries(w, SX_FAILED_PRECONDITION, 1000, 1600, 9000));
    /* Never: success, and what a retry cannot change. */
    assert_false(sx_fanout_retries(r, SX_OK, 0, 1, 1000));
    assert_false(sx_fanout_retries(w, SX_INVALID_ARGUMENT, 0, 1, 1000));
    assert_false(sx_fanout_retries(r, SX_NOT_FOUND, 0, 1, 1000));
    assert_false(sx_fanout_retries(w, SX_INTERNAL, 0, 1, 1000));
    sx_fanout_policy none = {0};
    assert_false(sx_fanout_retries(&none, SX_UNAVAILABLE, 0, 1, 1000));
}

static sx_fanout_call failed(sx_status st, const char *msg, const char *what, const char *addr)
{
    sx_fanout_call c = {.st = st};
    sx_err_set(&c.err, st, "%s", msg);
    snprintf(c.what, sizeof(c.what), "%s", what);
    snprintf(c.addr, sizeof(c.addr), "%s", addr);
    return c;
}

static void test_report(void **state)
{
    (void)state;
    const sx_fanout_policy *r = &sx_fanout_reads, *w = &sx_fanout_writes;
    sx_fanout_call c = failed(SX_ABORTED, "not the leader", "the leader of partition 3", "h:1");
    assert_int_equal(sx_fanout_report(r, &c), SX_UNAVAILABLE);
    assert_int_equal(c.err.code, SX_UNAVAILABLE);
    assert_string_equal(c.err.msg, "the leader of partition 3 at h:1: not the leader (no answer "
                                   "before the deadline)");
    c = failed(SX_DEADLINE_EXCEEDED, "Deadline Exceeded", "the leader of partition 3", "h:1");
    assert_int_equal(sx_fanout_report(r, &c), SX_DEADLINE_EXCEEDED);
    assert_string_equal(c.err.msg, "the leader of partition 3 at h:1: Deadline Exceeded");
    /* No target was ever aimed at: the message as it came, mapped. */
    c = failed(SX_FAILED_PRECONDITION, "stale", "", "");
    assert_int_equal(sx_fanout_report(r, &c), SX_UNAVAILABLE);
    assert_string_equal(c.err.msg, "stale (no answer before the deadline)");
    c = failed(SX_NOT_FOUND, "index \"x\" was dropped", "", "");
    assert_int_equal(sx_fanout_report(r, &c), SX_NOT_FOUND);
    assert_string_equal(c.err.msg, "index \"x\" was dropped");
    /* Writes: mapped, never renamed. */
    c = failed(SX_FAILED_PRECONDITION, "partition 1 has 1 in-sync replica; writes need 2 (min_isr)",
               "the leader of partition 1", "h:1");
    assert_int_equal(sx_fanout_report(w, &c), SX_UNAVAILABLE);
    assert_string_equal(c.err.msg, "partition 1 has 1 in-sync replica; writes need 2 (min_isr)");
    c = failed(SX_UNAVAILABLE, "partition 2 has no live leader", "", "");
    assert_int_equal(sx_fanout_report(w, &c), SX_UNAVAILABLE);
    assert_string_equal(c.err.msg, "partition 2 has no live leader");
    c = failed(SX_INTERNAL, "boom", "the leader of partition 1", "h:1");
    assert_int_equal(sx_fanout_report(w, &c), SX_INTERNAL);
    assert_string_equal(c.err.msg, "boom");
}

/* ------------------------------------------------------------ fan-outs -- */

/* 3 workers, w-a (this one) and w-b alive, w-c dead; 4 partitions: p0 and p3
 * led by w-a, p1 by w-b (at a dead address), p2 by the dead w-c. */
static sx_partmap *make_view(void)
{
    static Shardex__Internal__V1__ClusterSettings set =
        SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = 4;
    set.min_isr = 1;
    static Shardex__Internal__V1__WorkerEntry w[3], *wp[3];
    static const char *ids[] = {"w-a", "w-b", "w-c"};
    static const char *addrs[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"};
    for (int i = 0; i < 3; i++) {
        shardex__internal__v1__worker_entry__init(&w[i]);
        w[i].id = (char *)ids[i];
        w[i].address = (char *)addrs[i];
        w[i].alive = i != 2;
        wp[i] = &w[i];
    }
    static Shardex__Internal__V1__LogPartition lp[4], *lpp[4];
    static int32_t reps[4][3];
    for (int p = 0; p < 4; p++) {
        shardex__internal__v1__log_partition__init(&lp[p]);
        lp[p].epoch = 1;
        lp[p].leader = p % 3;
        for (int k = 0; k < 3; k++)
            reps[p][k] = (p + k) % 3;
        lp[p].replicas = lp[p].isr = reps[p];
        lp[p].n_replicas = lp[p].n_isr = 3;
        lpp[p] = &lp[p];
    }
    cmap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 1;
    m.settings = &set;
    m.workers = wp;
    m.n_workers = 3;
    m.partitions = lpp;
    m.n_partitions = 4;
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(&m.base, buf);
    cmap *out = (void *)sx_rpc_unpack(&shardex__internal__v1__cluster_map__descriptor, n, buf);
    free(buf);
    assert_non_null(out);
    sx_partmap *pm = NULL;
    sx_err err = {0};
    assert_int_equal(sx_partmap_create(&out->base, out, "w-a", &pm, &err), SX_OK);
    return pm;
}

/* The local executor's script, per partition: what each attempt answers. */
typedef enum {
    ANSWER_NOW = 0, /* SX_OK before the executor returns */
    ANSWER_LATER,   /* SX_OK from another thread, after a while */
    ABORT_ONCE,     /* SX_ABORTED at once the first time, then ANSWER_NOW */
    NEVER,          /* kept: the test answers it after the fan-out gave up */
} script;

typedef struct fx {
    sx_partmap *map;
    script how[4];
    int attempts[4];
    int maps_taken;
    /* a NEVER attempt, answered by the test */
    sx_rpc_done_cb kept_done;
    void *kept_arg;
} fx;

static sx_partmap *fx_map_cb(void *arg)
{
    fx *f = arg;
    f->maps_taken++;
    return sx_partmap_acquire(f->map);
}

/* A response as an executor hands it over (the fan-out frees it with sx_rpc_free). */
static ProtobufCMessage *offsets_resp(uint32_t p)
{
    uint64_t off = 100 + p;
    Shardex__Internal__V1__WriteResponse wr = SHARDEX__INTERNAL__V1__WRITE_RESPONSE__INIT;
    wr.offsets = &off;
    wr.n_offsets = 1;
    return sx_rpc_copy(wr.base.descriptor, &wr.base);
}

typedef struct later {
    sx_rpc_done_cb done;
    void *arg;
    uint32_t p;
} later;

static void *answer_later(void *arg)
{
    later *l = arg;
    sx_clock_sleep_ms(30);
    l->done(SX_OK, NULL, offsets_resp(l->p), l->arg);
    free(l);
    return NULL;
}

static void fx_local_cb(void *arg, const ProtobufCMessage *reqm, uint64_t deadline_ms,
                        sx_rpc_done_cb done, void *done_arg)
{
    (void)deadline_ms;
    fx *f = arg;
    uint32_t p = ((const Shardex__Internal__V1__WriteRequest *)reqm)->partition;
    int k = f->attempts[p]++;
    if (f->how[p] == ABORT_ONCE && k == 0) {
        sx_err e;
        sx_err_set(&e, SX_ABORTED, "partition %u: this worker does not lead it now", p);
        done(SX_ABORTED, &e, NULL, done_arg);
    } else if (f->how[p] == ANSWER_LATER) {
        later *l = sx_malloc(sizeof(*l));
        *l = (later){done, done_arg, p};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, answer_later, l), 0);
        pthread_detach(t);
    } else if (f->how[p] == NEVER) {
        f->kept_done = done;
        f->kept_arg = done_arg;
    } else {
        done(SX_OK, NULL, offsets_resp(p), done_arg);
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->map = make_view();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_partmap_release(f->map);
    free(f);
    return 0;
}

/* Runs one Write per partition in parts through f's executor. */
static sx_status run(fx *f, const sx_fanout_policy *pol, sx_rpc_client *rpc, const uint32_t *parts,
                     size_t n, uint64_t deadline_ms, sx_fanout_call *calls, sx_err *err)
{
    static Shardex__Internal__V1__WriteRequest reqs[4];
    for (size_t i = 0; i < n; i++) {
        shardex__internal__v1__write_request__init(&reqs[i]);
        reqs[i].partition = parts[i];
        memset(&calls[i], 0, sizeof(calls[i]));
        calls[i].req = &reqs[i].base;
    }
    sx_fanout fo = {.rpc = rpc,
                    .map = fx_map_cb,
                    .map_arg = f,
                    .svc = REPL_SVC,
                    .method = "Write",
                    .aim = sx_fanout_aim_leaders,
                    .aim_arg = (void *)parts,
                    .local = fx_local_cb,
                    .local_arg = f,
                    .policy = pol};
    return sx_fanout_exec(&fo, calls, n, deadline_ms, err);
}

static uint64_t offset_of(const sx_fanout_call *c)
{
    const Shardex__Internal__V1__WriteResponse *wr = (const void *)c->resp;
    assert_non_null(wr);
    assert_int_equal(wr->n_offsets, 1);
    return wr->offsets[0];
}

static void test_local_answers(void **state)
{
    fx *f = *state;
    f->how[0] = ANSWER_NOW;
    f->how[3] = ANSWER_LATER;
    const uint32_t parts[] = {0, 3};
    sx_fanout_call calls[2];
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(run(f, &sx_fanout_writes, NULL, parts, 2, t0 + 5000, calls, &err), SX_OK);
    assert_int_equal(offset_of(&calls[0]), 100);
    assert_int_equal(offset_of(&calls[1]), 103);
    assert_true(calls[0].self && calls[1].self);
    assert_int_equal(f->maps_taken, 1);
    sx_fanout_free(calls, 2);
}

static void test_aborted_is_reaimed(void **state)
{
    fx *f = *state;
    f->how[0] = ABORT_ONCE;
    const uint32_t parts[] = {0};
    sx_fanout_call c;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(run(f, &sx_fanout_writes, NULL, parts, 1, t0 + 5000, &c, &err), SX_OK);
    assert_int_equal(f->attempts[0], 2);
    assert_int_equal(f->maps_taken, 2); /* the second attempt aimed from a newer map */
    assert_int_equal(offset_of(&c), 100);
    sx_fanout_free(&c, 1);
}

static void test_local_given_up_at_deadline(void **state)
{
    fx *f = *state;
    f->how[0] = NEVER;
    f->how[3] = ANSWER_NOW;
    sx_fanout_policy pol = sx_fanout_writes;
    pol.attempt_ms = 100;
    const uint32_t parts[] = {3, 0};
    sx_fanout_call calls[2];
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    sx_status st = run(f, &pol, NULL, parts, 2, t0 + 120, calls, &err);
    uint64_t took = sx_clock_now_ms() - t0;
    assert_int_equal(st, SX_DEADLINE_EXCEEDED);
    assert_string_equal(err.msg, "Deadline Exceeded");
    assert_int_equal(calls[0].st, SX_OK);
    assert_int_equal(calls[1].st, SX_DEADLINE_EXCEEDED);
    assert_true(took >= 100 && took < 1000);
    assert_int_equal(f->attempts[0], 1); /* no pause fits before the deadline: no retry */
    /* The executor answers after the fan-out returned: dropped, freed. */
    assert_non_null(f->kept_done);
    f->kept_done(SX_OK, NULL, offsets_resp(0), f->kept_arg);
    sx_fanout_free(calls, 2);
}

/* A hedge: to this worker, with its own request (partition + 2 in the
 * script), so that the test decides what each attempt does. */
static bool hedge_here(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                       size_t cap, sx_err *err)
{
    (void)arg, (void)i, (void)m, (void)err;
    snprintf(addr, cap, "here");
    c->hedge_self = true;
    return true;
}

/* Runs one Write to parts[0] whose hedge goes to partition hedge_p after
 * hedge_ms. */
static sx_status run_hedged(fx *f, const uint32_t *parts, uint32_t hedge_p, uint64_t hedge_ms,
                            uint64_t deadline_ms, sx_fanout_call *c, sx_err *err)
{
    static Shardex__Internal__V1__WriteRequest req, hreq;
    shardex__internal__v1__write_request__init(&req);
    shardex__internal__v1__write_request__init(&hreq);
    req.partition = parts[0];
    hreq.partition = hedge_p;
    memset(c, 0, sizeof(*c));
    c->req = &req.base;
    c->hedge_req = &hreq.base;
    sx_fanout_policy pol = sx_fanout_reads;
    pol.attempt_ms = 2000;
    sx_fanout fo = {.map = fx_map_cb,
                    .map_arg = f,
                    .svc = REPL_SVC,
                    .method = "Write",
                    .aim = sx_fanout_aim_leaders,
                    .aim_arg = (void *)parts,
                    .local = fx_local_cb,
                    .local_arg = f,
                    .policy = &pol,
                    .hedge_aim = hedge_here,
                    .hedge_ms = hedge_ms};
    return sx_fanout_exec(&fo, c, 1, deadline_ms, err);
}

static void test_hedge_wins(void **state)
{
    fx *f = *state;
    f->how[0] = NEVER;      /* the primary never answers */
    f->how[2] = ANSWER_NOW; /* its hedge does */
    const uint32_t parts[] = {0};
    sx_fanout_call c;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(run_hedged(f, parts, 2, 20, t0 + 5000, &c, &err), SX_OK);
    assert_true(c.hedged);
    assert_int_equal(offset_of(&c), 102);
    assert_int_equal(f->attempts[0], 1);
    assert_int_equal(f->attempts[2], 1);
    /* The primary's answer comes after the fan-out returned: dropped. */
    assert_non_null(f->kept_done);
    f->kept_done(SX_OK, NULL, offsets_resp(0), f->kept_arg);
    sx_fanout_free(&c, 1);
}

static void test_hedge_not_needed(void **state)
{
    fx *f = *state;
    f->how[0] = ANSWER_NOW;
    const uint32_t parts[] = {0};
    sx_fanout_call c;
    sx_err err = {0};
    assert_int_equal(run_hedged(f, parts, 2, 1000, sx_clock_now_ms() + 5000, &c, &err), SX_OK);
    assert_false(c.hedged);
    assert_int_equal(offset_of(&c), 100);
    assert_int_equal(f->attempts[2], 0); /* answered before the hedge time: none sent */
    sx_fanout_free(&c, 1);
}

static void test_hedge_after_fast_failure(void **state)
{
    fx *f = *state;
    f->how[0] = ABORT_ONCE; /* fails at once: the hedge goes without waiting */
    f->how[2] = ANSWER_LATER;
    const uint32_t parts[] = {0};
    sx_fanout_call c;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(run_hedged(f, parts, 2, 60000, t0 + 5000, &c, &err), SX_OK);
    assert_true(c.hedged);
    assert_int_equal(offset_of(&c), 102); /* before the deadline, long before the hedge time */
    sx_fanout_free(&c, 1);
}

static void test_no_leader_and_remote(void **state)
{
    fx *f = *state;
    sx_rpc_client *rpc = NULL;
    sx_err err = {0};
    assert_int_equal(sx_rpc_client_create(NULL, &rpc, &err), SX_OK);
    const uint32_t parts[] = {2, 1};
    sx_fanout_call calls[2];
    uint64_t t0 = sx_clock_now_ms();
    sx_status st = run(f, &sx_fanout_reads, rpc, parts, 2, t0 + 500, calls, &err);
    assert_int_equal(st, SX_UNAVAILABLE);
    assert_string_equal(err.msg, "partition 2 has no live leader");
    /* Refused, or (on a slow machine) not even refused before the deadline. */
    assert_true(calls[1].err.code == SX_UNAVAILABLE || calls[1].err.code == SX_DEADLINE_EXCEEDED);
    assert_false(calls[1].self);
    assert_non_null(strstr(calls[1].err.msg, "the leader of partition 1 at 127.0.0.1:2: "));
    assert_int_equal(f->attempts[1] + f->attempts[2], 0);
    sx_fanout_free(calls, 2);
    sx_rpc_client_destroy(rpc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_report),
        cmocka_unit_test_setup_teardown(test_local_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aborted_is_reaimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_given_up_at_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_leader_and_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_not_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_after_fast_failure, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
