/* test_status.c: sx_status names and gRPC codes, and the sx_err helpers,
 * through status.h. Messages are fixed-size: overlong ones must truncate, never
 * overflow (run under ASan to see the difference).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

static const sx_status all[] = {
#define X(name, code, desc) SX_##name,
    SX_STATUS_MAP(X)
#undef X
};

static void test_every_status_listed(void **state)
{
    (void)state;
    assert_int_equal(sizeof(all) / sizeof(all[0]), SX_STATUS_COUNT);
    for (size_t i = 0; i < SX_STATUS_COUNT; i++)
        assert_true((int)all[i] >= 0 && (int)all[i] < SX_STATUS_COUNT);
}

static void test_names_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < SX_STATUS_COUNT; i++) {
        const char *name = sx_status_name(all[i]);
        assert_non_null(name);
        assert_true(name[0] != '\0');
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(name, sx_status_name(all[j]));
    }
    assert_string_equal(sx_status_name(SX_OK), "OK");
    assert_string_equal(sx_status_name(SX_INVALID_ARGUMENT), "INVALID_ARGUMENT");
    assert_string_equal(sx_status_name(SX_UNAUTHENTICATED), "UNAUTHENTICATED");
    /* Out-of-range values (e.g. from a corrupt message) still get a name. */
    assert_string_equal(sx_status_name((sx_status)99), "UNKNOWN");
    assert_string_equal(sx_status_name((sx_status)-1), "UNKNOWN");
}

static void test_grpc_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < SX_STATUS_COUNT; i++) {
        int code = sx_status_grpc_code(all[i]);
        assert_int_equal(sx_status_from_grpc_code(code), all[i]);
    }
    /* The gRPC canonical numbers, spot-checked. */
    assert_int_equal(sx_status_grpc_code(SX_OK), 0);
    assert_int_equal(sx_status_grpc_code(SX_NOT_FOUND), 5);
    assert_int_equal(sx_status_grpc_code(SX_UNAVAILABLE), 14);
    assert_int_equal(sx_status_grpc_code(SX_UNAUTHENTICATED), 16);
    assert_int_equal(sx_status_from_grpc_code(4), SX_DEADLINE_EXCEEDED);
}

static void test_unknown_grpc_codes(void **state)
{
    (void)state;
    const int unknown[] = {-1, 17, 18, 100, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        assert_int_equal(sx_status_from_grpc_code(unknown[i]), SX_UNKNOWN);
    assert_int_equal(sx_status_grpc_code((sx_status)99), SX_UNKNOWN);
}

static void test_err_set(void **state)
{
    (void)state;
    sx_err err = {0};
    assert_int_equal(err.code, SX_OK);
    assert_int_equal(sx_err_set(&err, SX_NOT_FOUND, "key %s in partition %d", "k1", 3),
                     SX_NOT_FOUND);
    assert_int_equal(err.code, SX_NOT_FOUND);
    assert_string_equal(err.msg, "key k1 in partition 3");
    sx_err_clear(&err);
    assert_int_equal(err.code, SX_OK);
    assert_string_equal(err.msg, "");
}

static void test_err_set_truncates(void **state)
{
    (void)state;
    char big[1001];
    for (size_t i = 0; i < 1000; i++)
        big[i] = (char)('a' + i % 26);
    big[1000] = '\0';
    sx_err err;
    memset(&err, 0x7f, sizeof(err));
    assert_int_equal(sx_err_set(&err, SX_INTERNAL, "%s", big), SX_INTERNAL);
    assert_int_equal(err.code, SX_INTERNAL);
    assert_int_equal(strlen(err.msg), SX_ERR_MSG_MAX - 1);
    assert_memory_equal(err.msg, big, SX_ERR_MSG_MAX - 1);
}

static void test_err_prefix(void **state)
{
    (void)state;
    sx_err err = {0};
    sx_err_set(&err, SX_UNAVAILABLE, "connection refused");
    assert_int_equal(sx_err_prefix(&err, "worker %d", 2), SX_UNAVAILABLE);
    assert_int_equal(err.code, SX_UNAVAILABLE);
    assert_string_equal(err.msg, "worker 2: connection refused");
    assert_int_equal(sx_err_prefix(&err, "put"), SX_UNAVAILABLE);
    assert_string_equal(err.msg, "put: worker 2: connection refused");
}

static void test_err_prefix_truncates(void **state)
{
    (void)state;
    char big[1001];
    memset(big, 'p', 1000);
    big[1000] = '\0';

    /* A long message behind a short prefix: the message's tail is cut. */
    sx_err err = {0};
    sx_err_set(&err, SX_DATA_LOSS, "%s", big);
    assert_int_equal(sx_err_prefix(&err, "pre"), SX_DATA_LOSS);
    assert_int_equal(err.code, SX_DATA_LOSS);
    assert_int_equal(strlen(err.msg), SX_ERR_MSG_MAX - 1);
    assert_memory_equal(err.msg, "pre: ppp", 8);

    /* A prefix longer than the buffer: still terminated, code kept. */
    sx_err_set(&err, SX_ABORTED, "tail");
    assert_int_equal(sx_err_prefix(&err, "%s", big), SX_ABORTED);
    assert_int_equal(err.code, SX_ABORTED);
    assert_int_equal(strlen(err.msg), SX_ERR_MSG_MAX - 1);
    assert_memory_equal(err.msg, big, SX_ERR_MSG_MAX - 3);
    assert_memory_equal(err.msg + SX_ERR_MSG_MAX - 3, ": ", 2);

    /* A message that fills the buffer and a prefix that fills it too. */
    sx_err_set(&err, SX_CANCELLED, "%s", big);
    sx_err_prefix(&err, "%s", big);
    assert_int_equal(err.code, SX_CANCELLED);
    assert_int_equal(strlen(err.msg), SX_ERR_MSG_MAX - 1);
}

static void test_null_err_accepted(void **state)
{
    (void)state;
    assert_int_equal(sx_err_set(NULL, SX_INTERNAL, "ignored %d", 1), SX_INTERNAL);
    assert_int_equal(sx_err_prefix(NULL, "ignored"), SX_OK);
    sx_err_clear(NULL);
}

/* A follower's answer names the leader; a relay's prefix does not hide it;
 * the coordinator's other FAILED_PRECONDITION answers are not taken for it. */
static void test_leader_hint(void **state)
{
    (void)state;
    sx_err err = {0};
    char leader[64] = "x";
    assert_int_equal(sx_err_not_leader(&err, "10.0.0.2:7000"), SX_FAILED_PRECONDITION);
    assert_true(sx_err_leader_hint(&err, leader, sizeof(leader)));
    assert_string_equal(leader, "10.0.0.2:7000");

    sx_err_prefix(&err, "forwarding to the coordinator");
    assert_true(sx_err_leader_hint(&err, leader, sizeof(leader)));
    assert_string_equal(leader, "10.0.0.2:7000");

    sx_err_not_leader(&err, NULL);
    assert_true(sx_err_leader_hint(&err, leader, sizeof(leader)));
    assert_string_equal(leader, "");

    sx_err_set(&err, SX_FAILED_PRECONDITION, "unknown worker w1: register again");
    assert_false(sx_err_leader_hint(&err, leader, sizeof(leader)));
    sx_err_set(&err, SX_UNAVAILABLE, "not the leading coordinator; leader=a:1");
    assert_false(sx_err_leader_hint(&err, leader, sizeof(leader)));
    assert_false(sx_err_leader_hint(NULL, leader, sizeof(leader)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_listed),
        cmocka_unit_test(test_names_distinct),
        cmocka_unit_test(test_grpc_round_trip),
        cmocka_unit_test(test_unknown_grpc_codes),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_err_set_truncates),
        cmocka_unit_test(test_err_prefix),
        cmocka_unit_test(test_err_prefix_truncates),
        cmocka_unit_test(test_null_err_accepted),
        cmocka_unit_test(test_leader_hint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
