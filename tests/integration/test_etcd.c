/* test_etcd.c: the etcd client (common/etcd.h) against a real etcd member
 * started by the test in a temporary directory on free loopback ports (never
 * a system etcd): keys and prefixes, a create-if-absent transaction and
 * fencing on its revision, a lease kept alive past three TTLs then revoked
 * (the keepalive learns TTL 0) beside one left to expire, watches live and
 * replayed from an old revision, endpoint failover, etcd stopped under a
 * keepalive (it ends when the lease may expire), and etcd killed under a
 * keepalive and a watch (both end with an error). The bidirectional streams
 * of the rpc layer are exercised here.
 */
#include "clock.h"
#include "etcd.h"
#include "fixture.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static sx_fx_etcd *shared; /* one sx_fx_etcd for the tests that do not kill it */

static int group_setup(void **state)
{
    (void)state;
    shared = calloc(1, sizeof(*shared));
    sx_fx_etcd_start(shared, "etcd");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    sx_fx_etcd_stop(shared);
    free(shared);
    return 0;
}

/* ---------------------------------------------------- what streams report -- */

typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int renewals;
    int64_t ttl;
    bool sent_in_future; /* a renewal dated later than its arrival */
    uint64_t last_sent;  /* the date of the last renewal */
    uint64_t end_ms;     /* when on_end ran */
    int ends;
    sx_status st;
    sx_err err;
    sx_etcd_event ev[16]; /* watch events, keys copied into key_buf */
    char key_buf[16][64];
    int nev;
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    sx_cond_init_monotonic(&s->cv);
}

static void seen_free(seen *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void on_renewed(void *arg, int64_t ttl_s, uint64_t sent_ms)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (sent_ms > sx_clock_now_ms())
        s->sent_in_future = true;
    s->last_sent = sent_ms;
    s->renewals++;
    s->ttl = ttl_s;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_end(void *arg, sx_status st, const sx_err *err)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    s->ends++;
    s->end_ms = sx_clock_now_ms();
    s->st = st;
    s->err = *err;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_event(void *arg, const sx_etcd_event *ev)
{
    seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (s->nev < 16) {
        s->ev[s->nev] = *ev;
        snprintf(s->key_buf[s->nev], sizeof(s->key_buf[0]), "%s", ev->kv.key);
        s->ev[s->nev].kv.key = s->key_buf[s->nev];
        s->ev[s->nev].kv.value = NULL; /* borrowed: not kept */
        s->nev++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Waits until *field (under s->mu) reaches n; false at timeout. */
static bool seen_wait(seen *s, const int *field, int n, uint64_t timeout_ms)
{
    uint64_t until = sx_clock_now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    for (uint64_t now; *field < n && (now = sx_clock_now_ms()) < until;)
        sx_cond_wait_ms(&s->cv, &s->mu, until - now);
    bool ok = *field >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int64_t count_keys(sx_etcd *e, const char *key, bool prefix)
{
    sx_etcd_range *r = NULL;
    sx_err err = {0};
    if (sx_etcd_get(e, key, prefix, &r, &err) != SX_OK)
        fail_msg("get %s: %s", key, err.msg);
    int64_t n = (int64_t)r->count;
    sx_etcd_range_free(r);
    return n;
}

/* ----------------------------------------------------------------- tests -- */

static void test_put_get_prefix(void **state)
{
    (void)state;
    sx_etcd *e = shared->etcd;
    sx_err err = {0};
    int64_t ra = 0, rb = 0;
    assert_int_equal(sx_etcd_put(e, "/t/kv/a", "1", 1, 0, &ra, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/kv/b", "22", 2, 0, &rb, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/kvx", "3", 1, 0, NULL, &err), SX_OK);
    assert_true(rb > ra && ra > 0);

    sx_etcd_range *r = NULL;
    assert_int_equal(sx_etcd_get(e, "/t/kv/a", false, &r, &err), SX_OK);
    assert_int_equal(r->count, 1);
    assert_string_equal(r->kvs[0].key, "/t/kv/a");
    assert_int_equal(r->kvs[0].value_len, 1);
    assert_memory_equal(r->kvs[0].value, "1", 1);
    assert_int_equal(r->kvs[0].create_revision, ra);
    assert_int_equal(r->kvs[0].mod_revision, ra);
    assert_int_equal(r->kvs[0].version, 1);
    assert_true(r->revision >= rb);
    sx_etcd_range_free(r);

    /* The prefix "/t/kv/" holds a and b, in key order, not /t/kvx. */
    assert_int_equal(sx_etcd_get(e, "/t/kv/", true, &r, &err), SX_OK);
    assert_int_equal(r->count, 2);
    assert_string_equal(r->kvs[0].key, "/t/kv/a");
    assert_string_equal(r->kvs[1].key, "/t/kv/b");
    assert_memory_equal(r->kvs[1].value, "22", 2);
    sx_etcd_range_free(r);

    /* Not found is no error; an overwrite bumps version and mod_revision. */
    assert_int_equal(count_keys(e, "/t/kv/none", false), 0);
    int64_t ra2 = 0;
    assert_int_equal(sx_etcd_put(e, "/t/kv/a", "", 0, 0, &ra2, &err), SX_OK);
    assert_int_equal(sx_etcd_get(e, "/t/kv/a", false, &r, &err), SX_OK);
    assert_int_equal(r->kvs[0].version, 2);
    assert_int_equal(r->kvs[0].create_revision, ra);
    assert_int_equal(r->kvs[0].mod_revision, ra2);
    assert_int_equal(r->kvs[0].value_len, 0);
    sx_etcd_range_free(r);

    /* A prefix ending in 0xff: its range ends at "/t/g", past /t/f\xff\x01, not at /t/fg. */
    assert_int_equal(sx_etcd_put(e, "/t/f\xff", "1", 1, 0, NULL, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/f\xff\x01", "2", 1, 0, NULL, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/fg", "3", 1, 0, NULL, &err), SX_OK);
    assert_int_equal(count_keys(e, "/t/f\xff", true), 2);
    assert_int_equal(count_keys(e, "/t/f", true), 3);
    int64_t deleted = 0;
    assert_int_equal(sx_etcd_delete(e, "/t/f", true, &deleted, NULL, &err), SX_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(sx_etcd_delete(e, "/t/kv/", true, &deleted, NULL, &err), SX_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(count_keys(e, "/t/kv/", true), 0);
    assert_int_equal(count_keys(e, "/t/kvx", false), 1);
    assert_int_equal(sx_etcd_delete(e, "/t/kvx", false, &deleted, NULL, &err), SX_OK);
    assert_int_equal(deleted, 1);
}

static void test_txn_create_if_absent(void **state)
{
    (void)state;
    sx_etcd *e = shared->etcd;
    sx_err err = {0};
    /* Campaign: put the leader key only if it does not exist. */
    sx_etcd_cmp absent = {.key = "/t/txn/leader", .target = SX_ETCD_CREATE, .op = SX_ETCD_EQUAL};
    sx_etcd_op put_me = {.key = "/t/txn/leader", .value = "me", .value_len = 2};
    sx_etcd_txn t = {.cmps = &absent, .ncmps = 1, .then_ops = &put_me, .nthen = 1};
    bool ok = false;
    int64_t epoch = 0;
    assert_int_equal(sx_etcd_txn_run(e, &t, &ok, &epoch, &err), SX_OK);
    assert_true(ok);
    sx_etcd_range *r = NULL;
    assert_int_equal(sx_etcd_get(e, "/t/txn/leader", false, &r, &err), SX_OK);
    assert_int_equal(r->kvs[0].create_revision, epoch); /* the revision of the txn */
    sx_etcd_range_free(r);

    /* A second campaign fails its compare, and its else branch runs. */
    sx_etcd_op lost = {.key = "/t/txn/lost", .value = "x", .value_len = 1};
    t.else_ops = &lost;
    t.nelse = 1;
    int64_t rev = 0;
    assert_int_equal(sx_etcd_txn_run(e, &t, &ok, &rev, &err), SX_OK);
    assert_false(ok);
    assert_int_equal(count_keys(e, "/t/txn/lost", false), 1);

    /* Fencing: a write guarded by the leader key's create revision goes
     * with the right epoch, not with another; a value compare too. */
    sx_etcd_cmp fence = {
        .key = "/t/txn/leader", .target = SX_ETCD_CREATE, .op = SX_ETCD_EQUAL, .number = epoch};
    sx_etcd_op write = {.key = "/t/txn/map", .value = "v1", .value_len = 2};
    sx_etcd_txn w = {.cmps = &fence, .ncmps = 1, .then_ops = &write, .nthen = 1};
    assert_int_equal(sx_etcd_txn_run(e, &w, &ok, NULL, &err), SX_OK);
    assert_true(ok);
    fence.number = epoch - 1;
    assert_int_equal(sx_etcd_txn_run(e, &w, &ok, NULL, &err), SX_OK);
    assert_false(ok);
    sx_etcd_cmp val[] = {
        {.key = "/t/txn/leader",
         .target = SX_ETCD_VALUE,
         .op = SX_ETCD_EQUAL,
         .value = "me",
         .value_len = 2},
        {.key = "/t/txn/map", .target = SX_ETCD_VERSION, .op = SX_ETCD_GREATER, .number = 0},
    };
    sx_etcd_op del = {.del = true, .key = "/t/txn/", .prefix = true};
    sx_etcd_txn d = {.cmps = val, .ncmps = 2, .then_ops = &del, .nthen = 1};
    assert_int_equal(sx_etcd_txn_run(e, &d, &ok, NULL, &err), SX_OK);
    assert_true(ok);
    assert_int_equal(count_keys(e, "/t/txn/", true), 0);
}

typedef struct gone_arg {
    sx_etcd *e;
    const char *key;
} gone_arg;

static bool key_gone(void *arg)
{
    gone_arg *g = arg;
    return count_keys(g->e, g->key, false) == 0;
}

/* A lease of 2 s kept alive past 6 s, and beside it one left alone that
 * expires; then the kept one is revoked under its keepalive, which learns
 * TTL 0 (SX_NOT_FOUND). */
static void test_leases(void **state)
{
    (void)state;
    sx_etcd *e = shared->etcd;
    sx_err err = {0};
    int64_t kept = 0, alone = 0, ttl = 0;
    assert_int_equal(sx_etcd_lease_grant(e, 2, &kept, &ttl, &err), SX_OK);
    assert_int_equal(ttl, 2);
    assert_int_equal(sx_etcd_lease_grant(e, 2, &alone, NULL, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/lease/kept", "k", 1, kept, NULL, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/lease/alone", "a", 1, alone, NULL, &err), SX_OK);
    sx_etcd_range *r = NULL;
    assert_int_equal(sx_etcd_get(e, "/t/lease/kept", false, &r, &err), SX_OK);
    assert_int_equal(r->kvs[0].lease, kept);
    sx_etcd_range_free(r);

    seen s;
    seen_init(&s);
    sx_etcd_keepalive_opts ko = {.on_renewed = on_renewed, .on_end = on_end, .arg = &s};
    sx_etcd_keepalive *k = NULL;
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(sx_etcd_keepalive_start(e, kept, 2, &ko, &k, &err), SX_OK);

    /* The lone lease expires within a few seconds (etcd checks expiry every
     * 500 ms or so). */
    gone_arg g = {.e = e, .key = "/t/lease/alone"};
    assert_true(sx_h_wait_for(key_gone, &g, 10000));
    assert_int_equal(sx_etcd_lease_revoke(e, alone, &err), SX_NOT_FOUND);

    /* Past three TTLs, the kept lease's key is still there, renewed every
     * TTL/3 (about 666 ms: 9 renewals in 6 s; ask for 6). */
    while (sx_clock_now_ms() - t0 < 6500) {
        assert_int_equal(count_keys(e, "/t/lease/kept", false), 1);
        sx_clock_sleep_ms(250);
    }
    assert_true(seen_wait(&s, &s.renewals, 6, 1000));
    assert_int_equal(s.ttl, 2);
    assert_int_equal(s.ends, 0);
    assert_false(s.sent_in_future);

    /* Revoked under the keepalive: its key goes at once, and the next
     * answer says TTL 0. */
    assert_int_equal(sx_etcd_lease_revoke(e, kept, &err), SX_OK);
    assert_int_equal(count_keys(e, "/t/lease/kept", false), 0);
    assert_true(seen_wait(&s, &s.ends, 1, 5000));
    assert_int_equal(s.st, SX_NOT_FOUND);
    assert_non_null(strstr(s.err.msg, shared->addr));
    sx_etcd_keepalive_stop(k);
    assert_int_equal(s.ends, 1);
    seen_free(&s);
}

static void test_watch(void **state)
{
    (void)state;
    sx_etcd *e = shared->etcd;
    sx_err err = {0};
    seen s;
    seen_init(&s);
    sx_etcd_watch_opts wo = {
        .key = "/t/w/", .prefix = true, .on_event = on_event, .on_end = on_end, .arg = &s};
    sx_etcd_watch *w = NULL;
    int64_t from = 0;
    assert_int_equal(sx_etcd_watch_start(e, &wo, &w, &from, &err), SX_OK);
    assert_true(from > 0);
    int64_t rput = 0, rdel = 0;
    assert_int_equal(sx_etcd_put(e, "/t/w/a", "v", 1, 0, &rput, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/other", "v", 1, 0, NULL, &err), SX_OK); /* not watched */
    assert_int_equal(sx_etcd_delete(e, "/t/w/a", false, NULL, &rdel, &err), SX_OK);
    assert_true(seen_wait(&s, &s.nev, 2, 5000));
    assert_false(s.ev[0].deleted);
    assert_string_equal(s.ev[0].kv.key, "/t/w/a");
    assert_int_equal(s.ev[0].revision, rput);
    assert_int_equal(s.ev[0].kv.create_revision, rput);
    assert_true(s.ev[1].deleted);
    assert_string_equal(s.ev[1].kv.key, "/t/w/a");
    assert_int_equal(s.ev[1].revision, rdel);
    assert_true(rput > from);

    /* From an old revision: the history is replayed, in order. */
    seen h;
    seen_init(&h);
    sx_etcd_watch_opts ho = {
        .key = "/t/w/a", .start_revision = rput, .on_event = on_event, .on_end = on_end, .arg = &h};
    sx_etcd_watch *hw = NULL;
    assert_int_equal(sx_etcd_watch_start(e, &ho, &hw, NULL, &err), SX_OK);
    assert_true(seen_wait(&h, &h.nev, 2, 5000));
    assert_false(h.ev[0].deleted);
    assert_int_equal(h.ev[0].revision, rput);
    assert_true(h.ev[1].deleted);
    assert_int_equal(h.ev[1].revision, rdel);

    /* Stopping ends each once, CANCELLED, and nothing more arrives. */
    sx_etcd_watch_stop(hw);
    sx_etcd_watch_stop(w);
    assert_int_equal(s.ends, 1);
    assert_int_equal(s.st, SX_CANCELLED);
    assert_int_equal(h.ends, 1);
    assert_int_equal(s.nev, 2);
    assert_int_equal(h.nev, 2);
    seen_free(&s);
    seen_free(&h);
}

static void test_endpoints(void **state)
{
    (void)state;
    sx_etcd *e = NULL;
    sx_err err = {0};
    sx_etcd_opts bad = {.endpoints = "etcd://127.0.0.1"};
    assert_int_equal(sx_etcd_open(&bad, &e, &err), SX_INVALID_ARGUMENT);
    bad.endpoints = " , ";
    assert_int_equal(sx_etcd_open(&bad, &e, &err), SX_INVALID_ARGUMENT);

    /* A dead sx_fx_etcd first: calls go on to the live one, and stay there. */
    char list[160], dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", sx_fx_free_port());
    snprintf(list, sizeof(list), "etcd://%s, http://%s/", dead, shared->addr);
    sx_etcd_opts eo = {.endpoints = list, .timeout_ms = 2000};
    assert_int_equal(sx_etcd_open(&eo, &e, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/ep", "x", 1, 0, NULL, &err), SX_OK);
    assert_int_equal(count_keys(e, "/t/ep", false), 1);
    sx_etcd_close(e);

    /* Streams open on the sx_fx_etcd that answered last: here the dead one
     * first. That watch fails, and the next goes to the live member. */
    sx_etcd_opts so = {.endpoints = list, .timeout_ms = 1000};
    assert_int_equal(sx_etcd_open(&so, &e, &err), SX_OK);
    sx_etcd_watch_opts wo = {.key = "/t/ep"};
    sx_etcd_watch *w = NULL;
    sx_status st = sx_etcd_watch_start(e, &wo, &w, NULL, &err);
    assert_true(st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED);
    assert_null(w);
    assert_non_null(strstr(err.msg, dead));
    assert_int_equal(sx_etcd_watch_start(e, &wo, &w, NULL, &err), SX_OK);
    sx_etcd_watch_stop(w);
    sx_etcd_close(e);

    /* Only dead members: UNAVAILABLE, naming the last one tried. */
    sx_etcd_opts deo = {.endpoints = dead, .timeout_ms = 2000};
    assert_int_equal(sx_etcd_open(&deo, &e, &err), SX_OK);
    assert_int_equal(sx_etcd_put(e, "/t/ep", "x", 1, 0, NULL, &err), SX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, dead));
    assert_non_null(strstr(err.msg, "Put"));
    sx_etcd_close(e);
    /* etcd's own message comes back: a lease that does not exist. */
    assert_int_equal(sx_etcd_lease_revoke(shared->etcd, 12345, &err), SX_NOT_FOUND);
    assert_non_null(strstr(err.msg, "etcdserver"));
}

/* etcd stopped (SIGSTOP) under a keepalive: no stream error says so, but
 * no answer comes within the TTL, and the keepalive ends DEADLINE_EXCEEDED
 * when the lease may expire, not before. Then etcd killed under a keepalive
 * and a watch: both end UNAVAILABLE. */
static void test_etcd_paused_then_killed(void **state)
{
    (void)state;
    sx_fx_etcd m = {0};
    sx_fx_etcd_start(&m, "etcdkill");
    sx_err err = {0};
    int64_t lease = 0;
    assert_int_equal(sx_etcd_lease_grant(m.etcd, 2, &lease, NULL, &err), SX_OK);
    seen ps;
    seen_init(&ps);
    sx_etcd_keepalive_opts po = {.on_renewed = on_renewed, .on_end = on_end, .arg = &ps};
    sx_etcd_keepalive *pk = NULL;
    assert_int_equal(sx_etcd_keepalive_start(m.etcd, lease, 2, &po, &pk, &err), SX_OK);
    assert_true(seen_wait(&ps, &ps.renewals, 1, 5000));
    sx_h_pause(m.pid);
    assert_true(seen_wait(&ps, &ps.ends, 1, 10000));
    sx_h_resume(m.pid);
    assert_int_equal(ps.st, SX_DEADLINE_EXCEEDED);
    uint64_t valid_until = ps.last_sent + 2000;
    assert_true(ps.end_ms >= valid_until);
    assert_true(ps.end_ms < valid_until + 1000);
    sx_etcd_keepalive_stop(pk);
    assert_int_equal(ps.ends, 1);
    seen_free(&ps);

    assert_int_equal(sx_etcd_lease_grant(m.etcd, 5, &lease, NULL, &err), SX_OK);
    seen ks, ws;
    seen_init(&ks);
    seen_init(&ws);
    sx_etcd_keepalive_opts ko = {.on_renewed = on_renewed, .on_end = on_end, .arg = &ks};
    sx_etcd_keepalive *k = NULL;
    assert_int_equal(sx_etcd_keepalive_start(m.etcd, lease, 5, &ko, &k, &err), SX_OK);
    sx_etcd_watch_opts wo = {.key = "/t/k", .on_event = on_event, .on_end = on_end, .arg = &ws};
    sx_etcd_watch *w = NULL;
    assert_int_equal(sx_etcd_watch_start(m.etcd, &wo, &w, NULL, &err), SX_OK);
    assert_true(seen_wait(&ks, &ks.renewals, 1, 5000));

    sx_h_kill9(m.pid);
    m.pid = 0;
    assert_true(seen_wait(&ks, &ks.ends, 1, 10000));
    assert_true(seen_wait(&ws, &ws.ends, 1, 10000));
    assert_int_equal(ks.st, SX_UNAVAILABLE);
    assert_int_equal(ws.st, SX_UNAVAILABLE);
    assert_non_null(strstr(ks.err.msg, m.addr));
    assert_non_null(strstr(ws.err.msg, "Watch"));
    sx_etcd_keepalive_stop(k);
    sx_etcd_watch_stop(w);
    assert_int_equal(ks.ends, 1);
    assert_int_equal(ws.ends, 1);
    seen_free(&ks);
    seen_free(&ws);
    sx_fx_etcd_stop(&m);
}

int main(void)
{
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_prefix), cmocka_unit_test(test_txn_create_if_absent),
        cmocka_unit_test(test_leases),         cmocka_unit_test(test_watch),
        cmocka_unit_test(test_endpoints),      cmocka_unit_test(test_etcd_paused_then_killed),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
