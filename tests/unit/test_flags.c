/* test_flags.c: sx_flags_parse, sx_flags_usage, sx_flags_log_config and
 * sx_hostport_parse through flags.h. Every error message is checked for the
 * flag's name and, for range errors, the limit. The environment variables used
 * here are prefixed SHARDEX_TEST_ and unset after each test, but for the
 * config tests (conf_spec, a program with .config), which also use the
 * variables derived from its flags' names and SHARDEX_CONFIG, unset around
 * each, and run in a fresh directory each, holding their config files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "flags.h"
#include "harness.h"
#include "log.h"

typedef struct cfg {
    bool verbose;
    bool quiet;
    const char *name;
    int64_t offset;      /* limited to -100..100 */
    int64_t big;         /* int64_t range */
    uint32_t partitions; /* limited to 1..256 */
    uint32_t count;      /* uint32_t range */
    uint64_t timeout_ms; /* limited to 1ms..1h */
    uint64_t interval_ms;
    uint64_t cache_bytes;
    uint64_t segment_bytes; /* limited to 4KiB..1GiB */
    const char *mode;
    const char *server;
} cfg;

static const char *const modes[] = {"fast", "safe", "paranoid", NULL};

static const sx_flag test_flags[] = {
    {.name = "verbose",
     .short_name = 'v',
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(cfg, verbose, bool),
     .help = "log more",
     .env = "SHARDEX_TEST_VERBOSE"},
    {.name = "quiet",
     .short_name = 'q',
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(cfg, quiet, bool),
     .help = "log less"},
    {.name = "name",
     .short_name = 'n',
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(cfg, name, const char *),
     .metavar = "NAME",
     .help = "a name"},
    {.name = "offset",
     .type = SX_FLAG_INT,
     .offset = SX_FLAG_OFFSET(cfg, offset, int64_t),
     .help = "an offset",
     .min = -100,
     .max = 100},
    {.name = "big",
     .type = SX_FLAG_INT,
     .offset = SX_FLAG_OFFSET(cfg, big, int64_t),
     .help = "any int64"},
    {.name = "partitions",
     .short_name = 'p',
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(cfg, partitions, uint32_t),
     .metavar = "N",
     .help = "number of partitions",
     .min = 1,
     .max = 256,
     .env = "SHARDEX_TEST_PARTITIONS"},
    {.name = "count",
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(cfg, count, uint32_t),
     .help = "any uint32"},
    {.name = "timeout",
     .type = SX_FLAG_DURATION_MS,
     .offset = SX_FLAG_OFFSET(cfg, timeout_ms, uint64_t),
     .help = "how long to wait",
     .min = 1,
     .max = 3600000},
    {.name = "interval",
     .type = SX_FLAG_DURATION_MS,
     .offset = SX_FLAG_OFFSET(cfg, interval_ms, uint64_t),
     .help = "between ticks"},
    {.name = "cache",
     .type = SX_FLAG_SIZE,
     .offset = SX_FLAG_OFFSET(cfg, cache_bytes, uint64_t),
     .help = "cache size"},
    {.name = "segment",
     .type = SX_FLAG_SIZE,
     .offset = SX_FLAG_OFFSET(cfg, segment_bytes, uint64_t),
     .help = "segment size",
     .min = 4096,
     .max = 1 << 30},
    {.name = "mode",
     .short_name = 'm',
     .type = SX_FLAG_CHOICE,
     .offset = SX_FLAG_OFFSET(cfg, mode, const char *),
     .help = "durability",
     .choices = modes},
    {.name = "server",
     .short_name = 's',
     .type = SX_FLAG_HOSTPORT,
     .offset = SX_FLAG_OFFSET(cfg, server, const char *),
     .help = "coordinator address",
     .env = "SHARDEX_TEST_SERVER"},
};

static const sx_flags_spec test_spec = {
    .prog = "testprog",
    .synopsis = "[FLAGS] COMMAND [ARGS]",
    .description = "Does nothing, carefully.",
    .flags = test_flags,
    .count = sizeof(test_flags) / sizeof(test_flags[0]),
};

static const cfg defaults = {
    .name = "hello world",
    .offset = 0,
    .big = -5,
    .partitions = 8,
    .count = 3,
    .timeout_ms = 5000,
    .interval_ms = 250,
    .cache_bytes = 64u << 20,
    .segment_bytes = 1u << 20,
    .mode = "safe",
};

/* A second program whose flags are required. */
typedef struct req_cfg {
    const char *data_dir;
    uint32_t shard;
} req_cfg;

static const sx_flag req_flags[] = {
    {.name = "data-dir",
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(req_cfg, data_dir, const char *),
     .metavar = "DIR",
     .help = "where data lives",
     .env = "SHARDEX_TEST_DATA_DIR",
     .required = true},
    {.name = "shard",
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(req_cfg, shard, uint32_t),
     .help = "which shard",
     .required = true},
};

static const sx_flags_spec req_spec = {
    .prog = "reqprog",
    .flags = req_flags,
    .count = 2,
};

static const char *const test_env[] = {"SHARDEX_TEST_VERBOSE", "SHARDEX_TEST_PARTITIONS",
                                       "SHARDEX_TEST_SERVER", "SHARDEX_TEST_DATA_DIR", NULL};

static int unset_env(void **state)
{
    (void)state;
    for (const char *const *e = test_env; *e; e++)
        unsetenv(*e);
    return 0;
}

static int argc_of(char **argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

/* Parses a NULL-terminated argv into *c (reset to the defaults first). */
static sx_status parse(cfg *c, char **argv, bool *help, int *first, sx_err *err)
{
    *c = defaults;
    sx_err_clear(err);
    return sx_flags_parse(&test_spec, c, argc_of(argv), argv, help, first, err);
}

#define ARGV(...) ((char *[]){"testprog", __VA_ARGS__, NULL})

/* Expects argv to fail with exactly msg. */
static void expect_error(char **argv, const char *msg)
{
    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(err.code, SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg, msg);
}

static void test_no_args_keeps_defaults(void **state)
{
    (void)state;
    cfg c;
    bool help = true;
    int first = -1;
    sx_err err;
    char *argv[] = {"testprog", NULL};
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_false(help);
    assert_int_equal(first, 1);
    assert_memory_equal(&c, &defaults, sizeof(c));
}

static void test_every_type(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(
        parse(&c,
              ARGV("-vq", "--name", "x y", "--offset=-100", "--big", "-9223372036854775808",
                   "-p256", "--count", "4294967295", "--timeout", "1h", "--interval", "500",
                   "--cache", "4KiB", "--segment=1g", "-m", "paranoid", "-s", "[::1]:7000"),
              &help, &first, &err),
        SX_OK);
    assert_false(help);
    assert_true(c.verbose);
    assert_true(c.quiet);
    assert_string_equal(c.name, "x y");
    assert_int_equal(c.offset, -100);
    assert_true(c.big == INT64_MIN);
    assert_int_equal(c.partitions, 256);
    assert_int_equal(c.count, UINT32_MAX);
    assert_int_equal(c.timeout_ms, 3600000);
    assert_int_equal(c.interval_ms, 500);
    assert_int_equal(c.cache_bytes, 4096);
    assert_int_equal(c.segment_bytes, 1u << 30);
    assert_string_equal(c.mode, "paranoid");
    assert_string_equal(c.server, "[::1]:7000");
    assert_int_equal(first, 21);
}

static void test_last_occurrence_wins(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(
        parse(&c, ARGV("-p", "3", "--partitions=5", "-n", "a", "--name="), &help, &first, &err),
        SX_OK);
    assert_int_equal(c.partitions, 5);
    assert_string_equal(c.name, ""); /* an empty string is a value like any other */
}

static void test_int_errors(void **state)
{
    (void)state;
    expect_error(ARGV("--offset", "-101"), "--offset: -101 is below the minimum -100");
    expect_error(ARGV("--offset", "101"), "--offset: 101 is above the maximum 100");
    expect_error(ARGV("--offset", "abc"), "--offset: 'abc' is not an integer");
    expect_error(ARGV("--offset", "1x"), "--offset: '1x' is not an integer");
    expect_error(ARGV("--offset", ""), "--offset: '' is not an integer");
    expect_error(ARGV("--offset", " 1"), "--offset: ' 1' is not an integer");
    expect_error(ARGV("--offset", "+1"), "--offset: '+1' is not an integer");
    expect_error(ARGV("--big", "9223372036854775808"),
                 "--big: 9223372036854775808 is above the maximum 9223372036854775807");
    expect_error(ARGV("--big", "-9223372036854775809"),
                 "--big: -9223372036854775809 is below the minimum -9223372036854775808");

    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(
        parse(&c, ARGV("--offset", "100", "--big", "9223372036854775807"), &help, &first, &err),
        SX_OK);
    assert_int_equal(c.offset, 100);
    assert_true(c.big == INT64_MAX);
}

static void test_uint32_errors(void **state)
{
    (void)state;
    expect_error(ARGV("--partitions", "0"), "--partitions: 0 is below the minimum 1");
    expect_error(ARGV("-p", "257"), "--partitions: 257 is above the maximum 256");
    expect_error(ARGV("-p", "eight"), "--partitions: 'eight' is not an integer");
    expect_error(ARGV("--count", "-1"), "--count: -1 is below the minimum 0");
    expect_error(ARGV("--count", "4294967296"),
                 "--count: 4294967296 is above the maximum 4294967295");
}

static void test_duration(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {{"0", 0},       {"500", 500},      {"500ms", 500},
              {"2s", 2000},   {"1m", 60000},     {"1h", 3600000},
              {"90s", 90000}, {"7d", 604800000}, {"18446744073709551615", UINT64_MAX}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cfg c;
        bool help;
        int first;
        sx_err err;
        assert_int_equal(parse(&c, ARGV("--interval", (char *)ok[i].text), &help, &first, &err),
                         SX_OK);
        assert_true(c.interval_ms == ok[i].ms);
    }
    const char *not_duration = "is not a duration (e.g. 500ms, 2s, 1m, 1h, 7d; no unit: ms)";
    char msg[256];
    const char *bad[] = {"2x", "-1", "", "1.5s", "2S", "s", " 1s", "2 s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg), "--interval: '%s' %s", bad[i], not_duration);
        expect_error(ARGV("--interval", (char *)bad[i]), msg);
    }
    expect_error(ARGV("--interval", "18446744073709551616"),
                 "--interval: '18446744073709551616' is too large");
    /* The same reader for a flag that takes a duration or a size
     * (--log-retention): "1m" is a minute as a duration, a MiB as a size. */
    uint64_t n = 0;
    sx_err e = {0};
    assert_int_equal(sx_flags_parse_scaled("1m", true, "--x", &n, &e), SX_OK);
    assert_true(n == 60000);
    assert_int_equal(sx_flags_parse_scaled("1m", false, "--x", &n, &e), SX_OK);
    assert_true(n == 1u << 20);
    assert_int_equal(sx_flags_parse_scaled("2GiB", false, "--x", &n, &e), SX_OK);
    assert_true(n == UINT64_C(2) << 30);
    assert_int_equal(sx_flags_parse_scaled("2GiB", true, "--x", &n, &e), SX_INVALID_ARGUMENT);
    assert_string_equal(e.msg, "--x: '2GiB' is not a duration (e.g. 500ms, 2s, 1m, 1h, 7d; no "
                               "unit: ms)");
    expect_error(ARGV("--interval", "5124095576030432h"),
                 "--interval: '5124095576030432h' is too large");
    expect_error(ARGV("--timeout", "0"), "--timeout: 0 is below the minimum 1ms");
    expect_error(ARGV("--timeout", "61m"), "--timeout: 61m is above the maximum 1h");
    expect_error(ARGV("--timeout", "99999999999999999999h"),
                 "--timeout: 99999999999999999999h is above the maximum 1h");
}

static void test_size(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {{"0", 0},
              {"64", 64},
              {"2b", 2},
              {"4k", 4096},
              {"4K", 4096},
              {"4KiB", 4096},
              {"4kib", 4096},
              {"8m", 8u << 20},
              {"8MiB", 8u << 20},
              {"1g", 1u << 30},
              {"3GiB", UINT64_C(3) << 30},
              {"1t", UINT64_C(1) << 40},
              {"16777215t", UINT64_C(16777215) << 40}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cfg c;
        bool help;
        int first;
        sx_err err;
        assert_int_equal(parse(&c, ARGV("--cache", (char *)ok[i].text), &help, &first, &err),
                         SX_OK);
        assert_true(c.cache_bytes == ok[i].bytes);
    }
    const char *not_size = "is not a size (e.g. 64, 4k, 4KiB, 8m, 1g; binary units)";
    char msg[256];
    const char *bad[] = {"4kb", "1.5g", "-1", "", "k", "4 k", "4x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(msg, sizeof(msg), "--cache: '%s' %s", bad[i], not_size);
        expect_error(ARGV("--cache", (char *)bad[i]), msg);
    }
    expect_error(ARGV("--cache", "16777216t"), "--cache: '16777216t' is too large");
    expect_error(ARGV("--segment", "1k"), "--segment: 1k is below the minimum 4KiB");
    expect_error(ARGV("--segment", "1073741825"),
                 "--segment: 1073741825 is above the maximum 1GiB");
}

static void test_choice(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(parse(&c, ARGV("--mode", "fast"), &help, &first, &err), SX_OK);
    assert_string_equal(c.mode, "fast");
    expect_error(ARGV("--mode", "bogus"), "--mode: 'bogus' is not one of: fast, safe, paranoid");
    expect_error(ARGV("-m", "FAST"), "--mode: 'FAST' is not one of: fast, safe, paranoid");
}

static void test_hostport_flag(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    assert_int_equal(parse(&c, ARGV("--server", "localhost:0"), &help, &first, &err), SX_OK);
    assert_string_equal(c.server, "localhost:0");
    expect_error(ARGV("--server", "localhost"), "--server: 'localhost' is not HOST:PORT (no port)");
    expect_error(ARGV("-s", "h:65536"),
                 "--server: 'h:65536': port '65536' is not a number in 0..65535");
}

static void test_hostport_list(void **state)
{
    (void)state;
    char **l = NULL;
    size_t n = 0;
    sx_err err = {0};
    assert_int_equal(sx_hostport_list("a:1,[::1]:2,b:3", &l, &n, &err), SX_OK);
    assert_int_equal(n, 3);
    assert_string_equal(l[0], "a:1");
    assert_string_equal(l[1], "[::1]:2");
    assert_string_equal(l[2], "b:3");
    sx_hostport_list_free(l, n);
    assert_int_equal(sx_hostport_list("a:1", NULL, NULL, &err), SX_OK);
    assert_int_equal(sx_hostport_list("a:1,,b:2", &l, &n, &err), SX_INVALID_ARGUMENT);
    assert_null(l);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "empty address"));
    assert_int_equal(sx_hostport_list("", NULL, NULL, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_hostport_list("a:1,b", NULL, NULL, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "'b'"));
}

static void test_hostport_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        const char *host;
        uint16_t port;
    } ok[] = {{"localhost:7000", "localhost", 7000},
              {"10.0.0.1:0", "10.0.0.1", 0},
              {"[::1]:65535", "::1", 65535},
              {"[fe80::1%eth0]:80", "fe80::1%eth0", 80},
              {"a:00080", "a", 80}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char host[64];
        uint16_t port = 1;
        sx_err err = {0};
        assert_int_equal(sx_hostport_parse(ok[i].s, host, sizeof(host), &port, &err), SX_OK);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
    static const struct {
        const char *s;
        const char *msg;
    } bad[] = {
        {"", "'' is not HOST:PORT (no port)"},
        {"host", "'host' is not HOST:PORT (no port)"},
        {":80", "':80': empty host"},
        {"[]:80", "'[]:80': empty host"},
        {"::1:80", "'::1:80': an IPv6 address needs brackets, as in [::1]:7000"},
        {"[::1]80", "'[::1]80' is not [IPV6]:PORT"},
        {"[::1]", "'[::1]' is not [IPV6]:PORT"},
        {"[::1:80", "'[::1:80': missing ']' after IPv6 address"},
        {"h:", "'h:': port '' is not a number in 0..65535"},
        {"h:-1", "'h:-1': port '-1' is not a number in 0..65535"},
        {"h:+1", "'h:+1': port '+1' is not a number in 0..65535"},
        {"h:65536", "'h:65536': port '65536' is not a number in 0..65535"},
        {"h:000080", "'h:000080': port '000080' is not a number in 0..65535"},
        {"h:8a", "'h:8a': port '8a' is not a number in 0..65535"},
        {"h: 80", "'h: 80': port ' 80' is not a number in 0..65535"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        uint16_t port;
        sx_err err = {0};
        assert_int_equal(sx_hostport_parse(bad[i].s, host, sizeof(host), &port, &err),
                         SX_INVALID_ARGUMENT);
        assert_string_equal(err.msg, bad[i].msg);
    }
    /* The host buffer is bounded; NULL outputs and a NULL err are accepted. */
    char small[5];
    sx_err err = {0};
    assert_int_equal(sx_hostport_parse("abcde:1", small, sizeof(small), NULL, &err),
                     SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "'abcde:1': host longer than 4 bytes");
    assert_int_equal(sx_hostport_parse("abcd:1", small, sizeof(small), NULL, NULL), SX_OK);
    assert_string_equal(small, "abcd");
    assert_int_equal(sx_hostport_parse("abcd:1", NULL, 0, NULL, NULL), SX_OK);
    assert_int_equal(sx_hostport_parse("abcd", NULL, 0, NULL, NULL), SX_INVALID_ARGUMENT);
}

static void test_unknown_and_malformed_flags(void **state)
{
    (void)state;
    expect_error(ARGV("--bogus"), "unknown flag '--bogus'");
    expect_error(ARGV("--bogus=1"), "unknown flag '--bogus=1'");
    expect_error(ARGV("-x"), "unknown flag '-x'");
    expect_error(ARGV("-vx"), "unknown flag '-x'");
    /* getopt_long would accept unique prefixes; shardex wants whole names. */
    expect_error(ARGV("--part", "8"), "unknown flag '--part' (did you mean --partitions?)");
    expect_error(ARGV("--verb"), "unknown flag '--verb' (did you mean --verbose?)");
    expect_error(ARGV("--he"), "unknown flag '--he' (did you mean --help?)");
    expect_error(ARGV("--c", "1"), "unknown flag '--c'"); /* ambiguous: count, cache */
    expect_error(ARGV("--verbose=1"), "--verbose does not take a value");
    expect_error(ARGV("--help=1"), "--help does not take a value");
    expect_error(ARGV("--partitions"), "--partitions: missing value");
    expect_error(ARGV("-p"), "--partitions: missing value");
    expect_error(ARGV("-v", "--mode"), "--mode: missing value");
}

static void test_null_err_accepted(void **state)
{
    (void)state;
    cfg c = defaults;
    char *argv[] = {"testprog", "--partitions", "0", NULL};
    bool help;
    int first;
    assert_int_equal(sx_flags_parse(&test_spec, &c, 3, argv, &help, &first, NULL),
                     SX_INVALID_ARGUMENT);
    char *argv2[] = {"testprog", "--server", "nope", NULL};
    assert_int_equal(sx_flags_parse(&test_spec, &c, 3, argv2, &help, &first, NULL),
                     SX_INVALID_ARGUMENT);
}

static void test_env_fallback(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    setenv("SHARDEX_TEST_SERVER", "envhost:1", 1);
    setenv("SHARDEX_TEST_PARTITIONS", "16", 1);
    setenv("SHARDEX_TEST_VERBOSE", "yes", 1);
    char *argv[] = {"testprog", NULL};
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_string_equal(c.server, "envhost:1");
    assert_int_equal(c.partitions, 16);
    assert_true(c.verbose);

    /* The command line beats the environment. */
    assert_int_equal(parse(&c, ARGV("--server", "cli:2", "-p", "4"), &help, &first, &err), SX_OK);
    assert_string_equal(c.server, "cli:2");
    assert_int_equal(c.partitions, 4);

    setenv("SHARDEX_TEST_VERBOSE", "off", 1);
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_false(c.verbose);
    assert_int_equal(parse(&c, ARGV("-v"), &help, &first, &err), SX_OK);
    assert_true(c.verbose);

    /* An empty variable counts as unset. */
    setenv("SHARDEX_TEST_SERVER", "", 1);
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_null(c.server);

    setenv("SHARDEX_TEST_SERVER", "nope", 1);
    expect_error(argv, "--server (from SHARDEX_TEST_SERVER): 'nope' is not HOST:PORT (no port)");
    setenv("SHARDEX_TEST_SERVER", "h:1", 1);
    setenv("SHARDEX_TEST_PARTITIONS", "1000", 1);
    expect_error(argv,
                 "--partitions (from SHARDEX_TEST_PARTITIONS): 1000 is above the maximum 256");
    setenv("SHARDEX_TEST_PARTITIONS", "8", 1);
    setenv("SHARDEX_TEST_VERBOSE", "maybe", 1);
    expect_error(argv, "--verbose (from SHARDEX_TEST_VERBOSE): 'maybe' is not a boolean "
                       "(1, true, yes, on, 0, false, no, off)");
    /* A bad variable for a flag given on the command line is not read. */
    assert_int_equal(parse(&c, ARGV("-v"), &help, &first, &err), SX_OK);
}

static sx_status parse_req(req_cfg *c, char **argv, bool *help, sx_err *err)
{
    *c = (req_cfg){0};
    sx_err_clear(err);
    return sx_flags_parse(&req_spec, c, argc_of(argv), argv, help, NULL, err);
}

static void test_required(void **state)
{
    (void)state;
    req_cfg c;
    bool help;
    sx_err err;
    char *none[] = {"reqprog", NULL};
    assert_int_equal(parse_req(&c, none, &help, &err), SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "--data-dir is required (or set SHARDEX_TEST_DATA_DIR)");
    char *dir_only[] = {"reqprog", "--data-dir", "/d", NULL};
    assert_int_equal(parse_req(&c, dir_only, &help, &err), SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "--shard is required");
    char *both[] = {"reqprog", "--data-dir", "/d", "--shard", "0", NULL};
    assert_int_equal(parse_req(&c, both, &help, &err), SX_OK);
    assert_string_equal(c.data_dir, "/d");
    assert_int_equal(c.shard, 0);

    setenv("SHARDEX_TEST_DATA_DIR", "/env", 1);
    char *shard_only[] = {"reqprog", "--shard", "2", NULL};
    assert_int_equal(parse_req(&c, shard_only, &help, &err), SX_OK);
    assert_string_equal(c.data_dir, "/env");
    assert_int_equal(c.shard, 2);

    /* --help needs no required flag. */
    unsetenv("SHARDEX_TEST_DATA_DIR");
    char *help_only[] = {"reqprog", "--help", NULL};
    assert_int_equal(parse_req(&c, help_only, &help, &err), SX_OK);
    assert_true(help);
}

static void test_help(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    char *const *cases[] = {ARGV("--help"), ARGV("-h"), ARGV("-vh"),
                            ARGV("--help", "--partitions", "0"), ARGV("-p", "4", "-h", "--bogus")};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        help = false;
        assert_int_equal(parse(&c, (char **)cases[i], &help, &first, &err), SX_OK);
        assert_true(help);
    }
    /* Flags before --help are still checked. */
    expect_error(ARGV("--partitions", "0", "--help"), "--partitions: 0 is below the minimum 1");
    assert_int_equal(parse(&c, ARGV("-v"), &help, &first, &err), SX_OK);
    assert_false(help);
}

static void test_positional(void **state)
{
    (void)state;
    cfg c;
    bool help;
    int first;
    sx_err err;
    /* Parsing stops at the subcommand: its own flags are left alone. */
    char **argv = ARGV("--server", "h:1", "put", "--json", "-x");
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_int_equal(first, 3);
    assert_string_equal(argv[first], "put");
    assert_string_equal(argv[first + 1], "--json");

    argv = ARGV("put");
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_int_equal(first, 1);

    /* "--" ends the flags and is skipped. */
    argv = ARGV("-v", "--", "--not-a-flag");
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_int_equal(first, 3);
    assert_string_equal(argv[first], "--not-a-flag");

    argv = ARGV("-v", "-");
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_int_equal(first, 2);

    argv = ARGV("-v", "-p", "3");
    assert_int_equal(parse(&c, argv, &help, &first, &err), SX_OK);
    assert_int_equal(first, 4);

    /* Without first_arg, positional arguments are refused. */
    c = defaults;
    argv = ARGV("-v", "put");
    assert_int_equal(sx_flags_parse(&test_spec, &c, 3, argv, &help, NULL, &err),
                     SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg, "unexpected argument 'put'");
}

/* getopt keeps state between calls (mid-cluster position, "+" mode); each
 * parse must start afresh whatever the last one left behind. */
static void test_repeated_parsing(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        cfg c;
        bool help;
        int first;
        sx_err err;
        expect_error(ARGV("-vxq"), "unknown flag '-x'"); /* stops inside a cluster */
        assert_int_equal(parse(&c, ARGV("-q", "-p", "7", "cmd", "-v"), &help, &first, &err), SX_OK);
        assert_false(c.verbose);
        assert_true(c.quiet);
        assert_int_equal(c.partitions, 7);
        assert_int_equal(first, 4);
        expect_error(ARGV("-p"), "--partitions: missing value");
        req_cfg r;
        char *rargv[] = {"reqprog", "--shard", "9", "--data-dir", "/x", NULL};
        assert_int_equal(parse_req(&r, rargv, &help, &err), SX_OK);
        assert_int_equal(r.shard, 9);
        assert_int_equal(parse(&c, ARGV("-hv"), &help, &first, &err),
                         SX_OK); /* stops mid-cluster */
        assert_true(help);
    }
}

static char *capture_usage(const void *defs)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    sx_flags_usage(&test_spec, defs, f);
    fclose(f);
    return text;
}

/* The line of text that mentions needle ("--name "). */
static const char *line_with(const char *text, const char *needle, char *line, size_t cap)
{
    const char *p = strstr(text, needle);
    assert_non_null(p);
    while (p > text && p[-1] != '\n')
        p--;
    size_t n = strcspn(p, "\n");
    assert_true(n < cap);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

static void test_usage(void **state)
{
    (void)state;
    char *text = capture_usage(&defaults);
    assert_non_null(strstr(text, "usage: testprog [FLAGS] COMMAND [ARGS]\n"));
    assert_non_null(strstr(text, "Does nothing, carefully."));
    for (size_t i = 0; i < test_spec.count; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "--%s", test_flags[i].name);
        assert_non_null(strstr(text, needle));
    }
    char line[512];
    assert_string_equal(line_with(text, "--verbose", line, sizeof(line)),
                        "  -v, --verbose            log more (env: SHARDEX_TEST_VERBOSE)");
    assert_string_equal(line_with(text, "--name", line, sizeof(line)),
                        "  -n, --name NAME          a name (default: \"hello world\")");
    assert_string_equal(line_with(text, "--offset", line, sizeof(line)),
                        "      --offset N           an offset (-100..100; default: 0)");
    assert_string_equal(line_with(text, "--big", line, sizeof(line)),
                        "      --big N              any int64 (default: -5)");
    assert_string_equal(line_with(text, "--partitions", line, sizeof(line)),
                        "  -p, --partitions N       number of partitions (1..256; default: 8; "
                        "env: SHARDEX_TEST_PARTITIONS)");
    assert_string_equal(line_with(text, "--timeout", line, sizeof(line)),
                        "      --timeout DURATION   how long to wait (1ms..1h; default: 5s)");
    assert_string_equal(line_with(text, "--interval", line, sizeof(line)),
                        "      --interval DURATION  between ticks (default: 250ms)");
    assert_string_equal(line_with(text, "--cache", line, sizeof(line)),
                        "      --cache SIZE         cache size (default: 64MiB)");
    assert_string_equal(line_with(text, "--segment", line, sizeof(line)),
                        "      --segment SIZE       segment size (4KiB..1GiB; default: 1MiB)");
    assert_string_equal(line_with(text, "--mode", line, sizeof(line)),
                        "  -m, --mode CHOICE        durability (one of: fast, safe, paranoid; "
                        "default: safe)");
    assert_string_equal(
        line_with(text, "--server", line, sizeof(line)),
        "  -s, --server HOST:PORT   coordinator address (env: SHARDEX_TEST_SERVER)");
    assert_string_equal(line_with(text, "--help", line, sizeof(line)),
                        "  -h, --help               print this help and exit");
    free(text);

    /* Required flags say so; NULL defaults print no default. */
    text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    req_cfg rdef = {0};
    sx_flags_usage(&req_spec, &rdef, f);
    fclose(f);
    assert_non_null(strstr(text, "usage: reqprog [FLAGS]\n"));
    assert_string_equal(line_with(text, "--data-dir", line, sizeof(line)),
                        "      --data-dir DIR  where data lives (env: SHARDEX_TEST_DATA_DIR; "
                        "required)");
    assert_string_equal(line_with(text, "--shard", line, sizeof(line)),
                        "      --shard N       which shard (required)");
    free(text);
}

/* Runs sx_flags_log_config with stderr sent to a temporary file; returns what it wrote. */
static char *capture_log(const void *config)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), STDERR_FILENO);
    sx_log_level level = sx_log_get_level();
    sx_log_set_level(SX_LOG_INFO);
    sx_flags_log_config(&test_spec, config, "testprog");
    sx_log_set_level(level);
    dup2(saved, STDERR_FILENO);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long n = ftell(tmp);
    rewind(tmp);
    char *text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return text;
}

static void test_log_config(void **state)
{
    (void)state;
    cfg c = defaults;
    c.verbose = true;
    c.server = "h:1";
    c.mode = "a=b\"c\\\n";
    char *text = capture_log(&c);
    const char *want = " INFO testprog: config verbose=true quiet=false name=\"hello world\" "
                       "offset=0 big=-5 partitions=8 count=3 timeout=5s interval=250ms "
                       "cache=64MiB segment=1MiB mode=\"a=b\\\"c\\\\\\n\" server=h:1\n";
    assert_non_null(strstr(text, want));
    assert_int_equal(strchr(text, '\n') - text + 1, strlen(text)); /* one line */
    free(text);

    c = defaults;
    c.name = "";
    text = capture_log(&c);
    assert_non_null(strstr(text, " name=\"\" "));
    assert_non_null(strstr(text, " server=(none)\n"));
    free(text);
}

/* ---------------------------------------------------------- config files -- */

/* A program with .config: a config file, and derived env variables. */
typedef struct conf_cfg {
    const char *listen;
    const char *data_dir;
    uint64_t write_buffer; /* 1MiB..1GiB */
    uint64_t lease_ms;     /* 50ms..10m */
    const char *fsync;
    bool verbose;
    uint32_t replicas; /* 1..7 */
    int64_t offset;    /* -100..100 */
} conf_cfg;

static const char *const fsyncs[] = {"batch", "always", "never", NULL};

static const sx_flag conf_flags[] = {
    {.name = "listen",
     .type = SX_FLAG_HOSTPORT,
     .offset = SX_FLAG_OFFSET(conf_cfg, listen, const char *),
     .help = "address to serve on"},
    {.name = "data-dir",
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(conf_cfg, data_dir, const char *),
     .metavar = "DIR",
     .help = "where data lives",
     .required = true},
    {.name = "write-buffer",
     .type = SX_FLAG_SIZE,
     .offset = SX_FLAG_OFFSET(conf_cfg, write_buffer, uint64_t),
     .help = "memtable size",
     .min = 1 << 20,
     .max = 1 << 30},
    {.name = "lease",
     .type = SX_FLAG_DURATION_MS,
     .offset = SX_FLAG_OFFSET(conf_cfg, lease_ms, uint64_t),
     .help = "lease",
     .min = 50,
     .max = 600000},
    {.name = "fsync",
     .type = SX_FLAG_CHOICE,
     .offset = SX_FLAG_OFFSET(conf_cfg, fsync, const char *),
     .choices = fsyncs,
     .help = "durability"},
    {.name = "verbose",
     .short_name = 'v',
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(conf_cfg, verbose, bool),
     .help = "log more",
     .env = "SHARDEX_TEST_VERBOSE"},
    {.name = "replicas",
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(conf_cfg, replicas, uint32_t),
     .help = "replicas",
     .min = 1,
     .max = 7},
    {.name = "offset",
     .type = SX_FLAG_INT,
     .offset = SX_FLAG_OFFSET(conf_cfg, offset, int64_t),
     .help = "an offset",
     .min = -100,
     .max = 100},
};
#define NCONF (sizeof(conf_flags) / sizeof(conf_flags[0]))

static const sx_flags_spec conf_spec = {
    .prog = "confprog",
    .flags = conf_flags,
    .count = NCONF,
    .config = true,
};

static const conf_cfg conf_defaults = {.listen = "127.0.0.1:7100",
                                       .write_buffer = 32u << 20,
                                       .lease_ms = 2000,
                                       .fsync = "batch",
                                       .replicas = 3};

/* The variables conf_spec reads, derived or not: unset around each test. */
static const char *const conf_env[] = {"SHARDEX_LISTEN",       "SHARDEX_DATA_DIR",
                                       "SHARDEX_WRITE_BUFFER", "SHARDEX_LEASE",
                                       "SHARDEX_FSYNC",        "SHARDEX_TEST_VERBOSE",
                                       "SHARDEX_REPLICAS",     "SHARDEX_OFFSET",
                                       "SHARDEX_CONFIG",       NULL};

/* Each config test runs in a fresh directory of its own, so that files are
 * named as an operator would name them ("worker.conf") in the messages. */
static char conf_dir[256];
static char conf_cwd[4096];

static void conf_unset(void)
{
    unset_env(NULL);
    for (const char *const *e = conf_env; *e; e++)
        unsetenv(*e);
}

static int conf_setup(void **state)
{
    (void)state;
    conf_unset();
    assert_non_null(getcwd(conf_cwd, sizeof(conf_cwd)));
    sx_h_tmpdir(conf_dir, sizeof(conf_dir), "flags");
    assert_int_equal(chdir(conf_dir), 0);
    return 0;
}

static int conf_teardown(void **state)
{
    (void)state;
    assert_int_equal(chdir(conf_cwd), 0);
    sx_h_tmpdir_done(conf_dir);
    conf_unset();
    return 0;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* c is conf_defaults, field by field (a memcmp would compare padding). */
static void assert_conf_defaults(const conf_cfg *c)
{
    const conf_cfg *d = &conf_defaults;
    assert_true(same_str(c->listen, d->listen) && same_str(c->data_dir, d->data_dir) &&
                c->write_buffer == d->write_buffer && c->lease_ms == d->lease_ms &&
                same_str(c->fsync, d->fsync) && c->verbose == d->verbose &&
                c->replicas == d->replicas && c->offset == d->offset);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* One parse of conf_spec from the defaults; *file must be freed by the caller. */
typedef struct conf_run {
    conf_cfg c;
    bool help;
    bool given[NCONF];
    sx_flags_file *file;
    sx_err err;
} conf_run;

static sx_status conf_parse(conf_run *r, char **argv)
{
    r->c = conf_defaults;
    r->file = (sx_flags_file *)&r->file; /* must be overwritten */
    sx_err_clear(&r->err);
    return sx_flags_parse_given(&conf_spec, &r->c, argc_of(argv), argv, &r->help, NULL, r->given,
                                &r->file, &r->err);
}

#define CONF_ARGV(...) ((char *[]){"confprog", __VA_ARGS__, NULL})

/* Writes text to worker.conf and parses `--config worker.conf`, expecting msg. */
static void expect_conf_error(const char *text, const char *msg)
{
    write_file("worker.conf", text, strlen(text));
    conf_run r;
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, msg);
    assert_null(r.file);
    assert_conf_defaults(&r.c); /* nothing applied */
}

static void test_config_file_values(void **state)
{
    (void)state;
    const char text[] = "# a worker\n"
                        "\n"
                        "   # an indented comment\n"
                        "listen = 0.0.0.0:7200\n"
                        "data-dir=\"/var/lib/a dir # with a hash\"   # and a comment\n"
                        "\twrite-buffer\t=\t64MiB\t\n"
                        "lease = 5s # unquoted, then a comment\r\n"
                        "fsync = \"always\"\n"
                        "verbose = yes\n"
                        "offset = -7#not a comment: no blank before '#'\n";
    write_file("worker.conf", text, sizeof(text) - 1);
    conf_run r;
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "worker.conf:10: offset: '-7#not a comment: no blank before "
                                   "'#'' is not an integer");
    const char fixed[] = "# a worker\n"
                         "\n"
                         "   # an indented comment\n"
                         "listen = 0.0.0.0:7200\n"
                         "data-dir=\"/var/lib/a dir # with a hash\"   # and a comment\n"
                         "\twrite-buffer\t=\t64MiB\t\n"
                         "lease = 5s # unquoted, then a comment\r\n"
                         "fsync = \"always\"\n"
                         "verbose = yes\n"
                         "offset = -7 # a comment\n"
                         "replicas = \"5\""; /* no newline at the end */
    write_file("worker.conf", fixed, sizeof(fixed) - 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_OK);
    assert_string_equal(r.c.listen, "0.0.0.0:7200");
    assert_string_equal(r.c.data_dir, "/var/lib/a dir # with a hash");
    assert_int_equal(r.c.write_buffer, 64u << 20);
    assert_int_equal(r.c.lease_ms, 5000);
    assert_string_equal(r.c.fsync, "always");
    assert_true(r.c.verbose);
    assert_int_equal(r.c.offset, -7);
    assert_int_equal(r.c.replicas, 5);
    for (size_t i = 0; i < NCONF; i++)
        assert_true(r.given[i]); /* a value from the file counts as given */
    assert_non_null(r.file);
    assert_string_equal(sx_flags_file_path(r.file), "worker.conf");
    sx_flags_file_free(r.file);

    /* Escapes: \" and \\ only; quotes keep blanks; "" is an empty value. */
    const char quoted[] = "data-dir = \"  a \\\"b\\\" c\\\\d  \"\n"
                          "listen=\"h:1\"\n"
                          "fsync = never\n";
    write_file("worker.conf", quoted, sizeof(quoted) - 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_OK);
    assert_string_equal(r.c.data_dir, "  a \"b\" c\\d  ");
    assert_string_equal(r.c.listen, "h:1");
    assert_false(r.given[2]);
    assert_int_equal(r.c.write_buffer, 32u << 20); /* not in the file: the default */
    sx_flags_file_free(r.file);
    write_file("worker.conf", "data-dir = \"\"\n", 14);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_OK);
    assert_string_equal(r.c.data_dir, "");
    sx_flags_file_free(r.file);

    /* An empty file, or one of comments only, sets nothing. */
    write_file("empty.conf", "", 0);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "empty.conf", "--data-dir", "/d")),
                     SX_OK);
    assert_int_equal(r.c.replicas, 3);
    assert_non_null(r.file);
    sx_flags_file_free(r.file);
}

static void test_config_precedence(void **state)
{
    (void)state;
    const char text[] = "data-dir = /file\n"
                        "write-buffer = 2m\n"
                        "lease = 3s\n"
                        "replicas = 4\n";
    write_file("worker.conf", text, sizeof(text) - 1);
    setenv("SHARDEX_WRITE_BUFFER", "4m", 1);
    setenv("SHARDEX_LEASE", "4s", 1);
    conf_run r;
    /* lease: cli > env > file; write-buffer: env > file; replicas: file;
     * offset: the default. */
    assert_int_equal(conf_parse(&r, CONF_ARGV("--lease", "5s", "--config", "worker.conf")), SX_OK);
    assert_int_equal(r.c.lease_ms, 5000);
    assert_int_equal(r.c.write_buffer, 4u << 20);
    assert_int_equal(r.c.replicas, 4);
    assert_string_equal(r.c.data_dir, "/file");
    assert_int_equal(r.c.offset, 0);
    assert_true(r.given[3] && r.given[2] && r.given[6] && r.given[1]);
    assert_false(r.given[7]);
    sx_flags_file_free(r.file);

    /* SHARDEX_CONFIG names the file when --config does not. */
    unsetenv("SHARDEX_WRITE_BUFFER");
    unsetenv("SHARDEX_LEASE");
    setenv("SHARDEX_CONFIG", "worker.conf", 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("-v")), SX_OK);
    assert_int_equal(r.c.lease_ms, 3000);
    assert_int_equal(r.c.write_buffer, 2u << 20);
    assert_true(r.c.verbose);
    assert_string_equal(sx_flags_file_path(r.file), "worker.conf");
    sx_flags_file_free(r.file);

    /* --config beats SHARDEX_CONFIG; an empty SHARDEX_CONFIG is unset. */
    write_file("other.conf", "data-dir = /other\n", 18);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config=other.conf")), SX_OK);
    assert_string_equal(r.c.data_dir, "/other");
    assert_int_equal(r.c.lease_ms, 2000);
    sx_flags_file_free(r.file);
    setenv("SHARDEX_CONFIG", "", 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--data-dir", "/d")), SX_OK);
    assert_null(r.file);
    setenv("SHARDEX_CONFIG", "missing.conf", 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--data-dir", "/d")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config (from SHARDEX_CONFIG): missing.conf: no such file");

    /* Every line is checked, even one whose flag the command line sets. */
    unsetenv("SHARDEX_CONFIG");
    write_file("worker.conf", "lease = 1ms\n", 12);
    assert_int_equal(
        conf_parse(&r, CONF_ARGV("--lease", "1s", "--data-dir", "/d", "--config", "worker.conf")),
        SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "worker.conf:1: lease: 1ms is below the minimum 50ms");
}

static void test_config_errors(void **state)
{
    (void)state;
    expect_conf_error("listen = 127.0.0.1:7000\n"
                      "\n"
                      "# the memtable\n"
                      "write-buffer = 12\n",
                      "worker.conf:4: write-buffer: 12 is below the minimum 1MiB");
    expect_conf_error("write-buffer = 2g\n",
                      "worker.conf:1: write-buffer: 2g is above the maximum 1GiB");
    expect_conf_error("lease = soon\n", "worker.conf:1: lease: 'soon' is not a duration (e.g. "
                                        "500ms, 2s, 1m, 1h, 7d; no unit: ms)");
    expect_conf_error("replicas = 8\n", "worker.conf:1: replicas: 8 is above the maximum 7");
    expect_conf_error("fsync = sometimes\n",
                      "worker.conf:1: fsync: 'sometimes' is not one of: batch, always, never");
    expect_conf_error("verbose = maybe\n", "worker.conf:1: verbose: 'maybe' is not a boolean "
                                           "(1, true, yes, on, 0, false, no, off)");
    expect_conf_error("listen = nope\n",
                      "worker.conf:1: listen: 'nope' is not HOST:PORT (no port)");
    expect_conf_error("listn = h:1\n", "worker.conf:1: listn: unknown key");
    expect_conf_error("write_buffer = 64m\n",
                      "worker.conf:1: write_buffer: unknown key (did you mean write-buffer?)");
    expect_conf_error("help = 1\n", "worker.conf:1: help: unknown key");
    expect_conf_error("config = other.conf\n",
                      "worker.conf:1: config: not a key (a config file cannot name another)");
    expect_conf_error("listen = h:1\nlease = 1s\nlisten = h:2\n",
                      "worker.conf:3: listen: repeated (first on line 1)");
    expect_conf_error("listen h:1\n", "worker.conf:1: listen: expected 'key = value'");
    expect_conf_error("  = h:1\n", "worker.conf:1: no key before '='");
    expect_conf_error("data-dir =\n", "worker.conf:1: data-dir: missing value (\"\" for an empty "
                                      "one; a comment starts at '#')");
    expect_conf_error("data-dir = # nothing\n", "worker.conf:1: data-dir: missing value (\"\" "
                                                "for an empty one; a comment starts at '#')");
    expect_conf_error("data-dir = \"/x\n", "worker.conf:1: data-dir: no closing quote");
    expect_conf_error("data-dir = \"/x\\\"\n", "worker.conf:1: data-dir: no closing quote");
    expect_conf_error("data-dir = \"a\\nb\"\n",
                      "worker.conf:1: data-dir: unknown escape '\\n' (only \\\" and \\\\)");
    expect_conf_error("data-dir = \"/x\" y\n",
                      "worker.conf:1: data-dir: text after the closing quote");
    expect_conf_error("[worker]\n", "worker.conf:1: [worker]: expected 'key = value'");

    /* A NUL byte, which no C string can carry on. */
    write_file("worker.conf", "lease = 1s\nlisten = h:1\0\n", 25);
    conf_run r;
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "worker.conf:2: a NUL byte");

    /* Files that cannot be read. */
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "missing.conf")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config: missing.conf: no such file");
    assert_null(r.file);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config: empty file name");
    assert_int_equal(mkdir("adir", 0755), 0);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "adir")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config: read adir: Is a directory");
    size_t big = SX_FLAGS_FILE_MAX + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '#', big);
    write_file("huge.conf", huge, big);
    free(huge);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "huge.conf")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config: huge.conf: larger than 1048576 bytes");
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--config: missing value");
    assert_int_equal(conf_parse(&r, CONF_ARGV("--conf", "x")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "unknown flag '--conf' (did you mean --config?)");

    /* Nothing is applied on any error, the command line's values included. */
    write_file("worker.conf", "replicas = 0\n", 13);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--lease", "9s", "--config", "worker.conf")),
                     SX_INVALID_ARGUMENT);
    assert_conf_defaults(&r.c);
    setenv("SHARDEX_OFFSET", "1000", 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--lease", "9s", "--data-dir", "/d")),
                     SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--offset (from SHARDEX_OFFSET): 1000 is above the maximum 100");
    assert_conf_defaults(&r.c);

    /* A spec without .config knows no --config. */
    expect_error(ARGV("--config", "worker.conf"), "unknown flag '--config'");
}

static void test_config_required_and_help(void **state)
{
    (void)state;
    conf_run r;
    assert_int_equal(conf_parse(&r, CONF_ARGV("-v")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg, "--data-dir is required (or set SHARDEX_DATA_DIR, or data-dir "
                                   "in the config file)");
    write_file("worker.conf", "data-dir = /from/file\n", 22);
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "worker.conf")), SX_OK);
    assert_string_equal(r.c.data_dir, "/from/file");
    sx_flags_file_free(r.file);

    /* --help reads no file, even a missing one, and writes nothing. */
    assert_int_equal(conf_parse(&r, CONF_ARGV("--config", "missing.conf", "--lease", "9s", "-h")),
                     SX_OK);
    assert_true(r.help);
    assert_null(r.file);
    assert_conf_defaults(&r.c);
    for (size_t i = 0; i < NCONF; i++)
        assert_false(r.given[i]);
}

static void test_derived_env(void **state)
{
    (void)state;
    char buf[64];
    assert_string_equal(sx_flags_env(&conf_spec, &conf_flags[2], buf, sizeof(buf)),
                        "SHARDEX_WRITE_BUFFER");
    assert_string_equal(sx_flags_env(&conf_spec, &conf_flags[1], buf, sizeof(buf)),
                        "SHARDEX_DATA_DIR");
    /* An explicit .env stays; a spec without .config derives none. */
    assert_string_equal(sx_flags_env(&conf_spec, &conf_flags[5], buf, sizeof(buf)),
                        "SHARDEX_TEST_VERBOSE");
    assert_null(sx_flags_env(&test_spec, &test_flags[1], buf, sizeof(buf)));
    assert_string_equal(sx_flags_env(&test_spec, &test_flags[0], buf, sizeof(buf)),
                        "SHARDEX_TEST_VERBOSE");

    setenv("SHARDEX_DATA_DIR", "/env", 1);
    setenv("SHARDEX_WRITE_BUFFER", "64m", 1);
    setenv("SHARDEX_FSYNC", "never", 1);
    conf_run r;
    assert_int_equal(conf_parse(&r, CONF_ARGV("-v")), SX_OK);
    assert_string_equal(r.c.data_dir, "/env");
    assert_int_equal(r.c.write_buffer, 64u << 20);
    assert_string_equal(r.c.fsync, "never");
    assert_null(r.file);
    setenv("SHARDEX_WRITE_BUFFER", "12", 1);
    assert_int_equal(conf_parse(&r, CONF_ARGV("-v")), SX_INVALID_ARGUMENT);
    assert_string_equal(r.err.msg,
                        "--write-buffer (from SHARDEX_WRITE_BUFFER): 12 is below the minimum 1MiB");
}

static void test_config_usage(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    sx_flags_usage(&conf_spec, &conf_defaults, f);
    fclose(f);
    char line[512];
    assert_string_equal(line_with(text, "--write-buffer", line, sizeof(line)),
                        "      --write-buffer SIZE  memtable size (1MiB..1GiB; default: 32MiB; "
                        "env: SHARDEX_WRITE_BUFFER)");
    assert_string_equal(line_with(text, "--data-dir", line, sizeof(line)),
                        "      --data-dir DIR       where data lives (env: SHARDEX_DATA_DIR; "
                        "required)");
    assert_string_equal(line_with(text, "  -v, --verbose", line, sizeof(line)),
                        "  -v, --verbose            log more (env: SHARDEX_TEST_VERBOSE)");
    assert_string_equal(line_with(text, "--config", line, sizeof(line)),
                        "      --config FILE        read flags from FILE, key = value lines (see "
                        "below; env: SHARDEX_CONFIG)");
    assert_non_null(strstr(text, "\nconfig file (--config FILE, or SHARDEX_CONFIG): one `key = "
                                 "value` per line, the key being\na flag's long name, e.g. "
                                 "`listen = 127.0.0.1:7100`;"));
    assert_non_null(strstr(text, "\nelse its env variable, else the config file, else its "
                                 "default.\n"));
    free(text);
}

/* SX_FLAG_OFFSET is offsetof; the type check costs nothing at run time. */
static void test_offset_macro(void **state)
{
    (void)state;
    assert_int_equal(SX_FLAG_OFFSET(cfg, partitions, uint32_t), offsetof(cfg, partitions));
    assert_int_equal(SX_FLAG_OFFSET(cfg, server, const char *), offsetof(cfg, server));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_args_keeps_defaults, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_every_type, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_last_occurrence_wins, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_int_errors, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_uint32_errors, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_duration, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_size, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_choice, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_hostport_flag, unset_env, unset_env),
        cmocka_unit_test(test_hostport_parse),
        cmocka_unit_test(test_hostport_list),
        cmocka_unit_test_setup_teardown(test_unknown_and_malformed_flags, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_null_err_accepted, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_env_fallback, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_required, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_help, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_positional, unset_env, unset_env),
        cmocka_unit_test_setup_teardown(test_repeated_parsing, unset_env, unset_env),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_log_config),
        cmocka_unit_test(test_offset_macro),
        cmocka_unit_test_setup_teardown(test_config_file_values, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(test_config_precedence, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(test_config_required_and_help, conf_setup, conf_teardown),
        cmocka_unit_test_setup_teardown(test_derived_env, conf_setup, conf_teardown),
        cmocka_unit_test(test_config_usage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
