/* test_auth.c: common/auth: roles by method and by certificate, the tokens
 * file's parser and its errors, and the decision for each kind of caller. */
#include "auth.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define JAN_2027_MS 1798761600000ull /* 2027-01-01T00:00:00Z */

static void test_method_roles(void **state)
{
    (void)state;
    assert_int_equal(sx_auth_method_role("/grpc.health.v1.Health/Check"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_method_role("/grpc.health.v1.Health/Watch"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/Get"), SX_ROLE_READ);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/Query"), SX_ROLE_READ);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/ListIndexes"), SX_ROLE_READ);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/ClusterStatus"), SX_ROLE_READ);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/Put"), SX_ROLE_WRITE);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/Delete"), SX_ROLE_WRITE);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/CreateIndex"), SX_ROLE_ADMIN);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/DropIndex"), SX_ROLE_ADMIN);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/DrainWorker"), SX_ROLE_ADMIN);
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/RemoveWorker"), SX_ROLE_ADMIN);
    /* Anything new on the public service is admin until said otherwise. */
    assert_int_equal(sx_auth_method_role("/shardex.v1.Shardex/Future"), SX_ROLE_ADMIN);
    assert_int_equal(sx_auth_method_role("/shardex.internal.v1.Replication/Append"), SX_ROLE_NODE);
    assert_int_equal(sx_auth_method_role("/shardex.internal.v1.WorkerAdmin/SetFaults"),
                     SX_ROLE_NODE);
    assert_int_equal(sx_auth_method_role("/shardex.testing.v1.Echo/Echo"), SX_ROLE_NODE);
    /* A prefix of a public name is not that name. */
    assert_int_equal(sx_auth_method_role("/shardex.v1.ShardexX/Get"), SX_ROLE_NODE);
}

static void test_cert_roles(void **state)
{
    (void)state;
    assert_int_equal(sx_auth_cert_role(NULL), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/node/w1"), SX_ROLE_NODE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/node/"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/read/alice"), SX_ROLE_READ);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/write/bob"), SX_ROLE_WRITE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/admin/ops"), SX_ROLE_ADMIN);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/node/x"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/admin"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("spiffe://shardex/client/admin/"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("spiffe://other/node/w1"), SX_ROLE_NONE);
    assert_int_equal(sx_auth_cert_role("some-cn"), SX_ROLE_NONE);
}

static sx_auth *loaded(const char *text)
{
    sx_auth *a = NULL;
    sx_err err = {0};
    assert_int_equal(sx_auth_create(NULL, &a, &err), SX_OK);
    assert_int_equal(sx_auth_load_text(a, "t", text, strlen(text), &err), SX_OK);
    return a;
}

static void expect_bad(const char *text, const char *needle)
{
    sx_auth *a = loaded("keep read keep-this-token-0123456789\n");
    sx_err err = {0};
    assert_int_equal(sx_auth_load_text(a, "tok", text, strlen(text), &err), SX_INVALID_ARGUMENT);
    if (!strstr(err.msg, needle))
        fail_msg("error \"%s\" does not say \"%s\"", err.msg, needle);
    /* The table in force stays. */
    assert_int_equal(sx_auth_tokens(a), 1);
    sx_auth_destroy(a);
}

static void test_tokens_file_errors(void **state)
{
    (void)state;
    expect_bad("alice read\n", "tok:1: expected NAME ROLE TOKEN [EXPIRES], found 2 fields");
    expect_bad("# c\n\nalice read aaaaaaaaaaaaaaaa 2027-01-01T00:00:00Z extra\n",
               "tok:3: expected NAME ROLE TOKEN");
    expect_bad("alice root aaaaaaaaaaaaaaaa\n", "tok:1: role of alice: \"root\"");
    expect_bad("alice read short\n", "tok:1: token of alice: 5 characters; 16 to 255");
    expect_bad("alice read aaaaaaaaaaaaaaaa 2027-13-01\n", "tok:1: expiry of alice");
    expect_bad("a read aaaaaaaaaaaaaaaa\nb write aaaaaaaaaaaaaaaa\n",
               "tok:2: the token of b is also a's");
}

static void test_tokens_file_parses(void **state)
{
    (void)state;
    sx_auth *a = loaded("# clients\n"
                        "  alice read  alice-token-0123456789  # a comment\n"
                        "\tbob write bob-token-0123456789abc 2027-06-01T00:00:00Z\r\n"
                        "\n"
                        "ops admin ops-token-0123456789abcd");
    assert_int_equal(sx_auth_tokens(a), 3);
    sx_err err = {0};
    sx_rpc_peer p = {.tls = true, .token = "bob-token-0123456789abc"};
    assert_int_equal(sx_auth_decide(a, &p, "/shardex.v1.Shardex/Put", JAN_2027_MS, &err), SX_OK);
    sx_auth_destroy(a);
}

static void test_decisions(void **state)
{
    (void)state;
    sx_auth *a = loaded("r read read-token-0123456789\n"
                        "w write write-token-0123456789\n"
                        "old admin old-token-0123456789 2026-01-01T00:00:00Z\n");
    sx_err err = {0};
    const char *put = "/shardex.v1.Shardex/Put", *get = "/shardex.v1.Shardex/Get";
    const char *append = "/shardex.internal.v1.Replication/Append";
    sx_rpc_peer nobody = {.tls = true};
    assert_int_equal(sx_auth_decide(a, &nobody, get, JAN_2027_MS, &err), SX_UNAUTHENTICATED);
    assert_non_null(strstr(err.msg, "needs the read role"));
    assert_int_equal(sx_auth_decide(a, &nobody, "/grpc.health.v1.Health/Check", JAN_2027_MS, &err),
                     SX_OK);

    sx_rpc_peer reader = {.tls = true, .token = "read-token-0123456789"};
    assert_int_equal(sx_auth_decide(a, &reader, get, JAN_2027_MS, &err), SX_OK);
    assert_int_equal(sx_auth_decide(a, &reader, put, JAN_2027_MS, &err), SX_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "token of r has read"));

    sx_rpc_peer wrong = {.tls = true, .token = "read-token-0123456780"}; /* last byte differs */
    assert_int_equal(sx_auth_decide(a, &wrong, get, JAN_2027_MS, &err), SX_UNAUTHENTICATED);
    sx_rpc_peer prefix = {.tls = true, .token = "read-token-012345678"}; /* one byte short */
    assert_int_equal(sx_auth_decide(a, &prefix, get, JAN_2027_MS, &err), SX_UNAUTHENTICATED);
    sx_rpc_peer longer = {.tls = true, .token = "read-token-0123456789x"};
    assert_int_equal(sx_auth_decide(a, &longer, get, JAN_2027_MS, &err), SX_UNAUTHENTICATED);

    sx_rpc_peer expired = {.tls = true, .token = "old-token-0123456789"};
    assert_int_equal(sx_auth_decide(a, &expired, get, JAN_2027_MS, &err), SX_UNAUTHENTICATED);
    assert_non_null(strstr(err.msg, "token of old expired"));
    assert_int_equal(sx_auth_decide(a, &expired, get, JAN_2027_MS - 366ull * 86400000, &err),
                     SX_OK);

    sx_rpc_peer node = {.tls = true, .cert_id = "spiffe://shardex/node/w1"};
    assert_int_equal(sx_auth_decide(a, &node, append, JAN_2027_MS, &err), SX_OK);
    assert_int_equal(sx_auth_decide(a, &node, put, JAN_2027_MS, &err), SX_OK);
    sx_rpc_peer admin_cert = {.tls = true, .cert_id = "spiffe://shardex/client/admin/ops"};
    assert_int_equal(sx_auth_decide(a, &admin_cert, append, JAN_2027_MS, &err),
                     SX_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "needs the node role"));
    sx_rpc_peer stranger = {.tls = true, .cert_id = "CN=someone"};
    assert_int_equal(sx_auth_decide(a, &stranger, get, JAN_2027_MS, &err), SX_PERMISSION_DENIED);
    assert_non_null(strstr(err.msg, "no role"));
    /* A certificate and a token: the higher role; a bad token still refuses. */
    sx_rpc_peer both = {.tls = true,
                        .cert_id = "spiffe://shardex/client/read/r",
                        .token = "write-token-0123456789"};
    assert_int_equal(sx_auth_decide(a, &both, put, JAN_2027_MS, &err), SX_OK);
    sx_rpc_peer cert_bad_token = {.tls = true,
                                  .cert_id = "spiffe://shardex/client/admin/ops",
                                  .token = "nobody-token-0123456789"};
    assert_int_equal(sx_auth_decide(a, &cert_bad_token, get, JAN_2027_MS, &err),
                     SX_UNAUTHENTICATED);
    sx_auth_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_roles),       cmocka_unit_test(test_cert_roles),
        cmocka_unit_test(test_tokens_file_errors), cmocka_unit_test(test_tokens_file_parses),
        cmocka_unit_test(test_decisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
