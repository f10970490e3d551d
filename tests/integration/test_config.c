/* test_config.c: config files (--config FILE, SHARDEX_CONFIG) as the real
 * daemons read them, and the example files in deploy/ kept in step with the
 * daemons' flags:
 *  - a bad value in a worker's file: exit 2 naming the file, line and key;
 *    an unknown key in a coordinator's file likewise;
 *  - `--config FILE --help` prints the flags with their env variables and
 *    the config file paragraph, exit 0, without reading FILE;
 *  - a coordinator started from a file alone (listen, data dir, port file,
 *    lease) serves, and logs the file's values as its configuration; the
 *    same through SHARDEX_CONFIG, with the command line beating the file;
 *  - deploy/worker.conf.example and deploy/coordinator.conf.example list every
 *    flag of --help once, each with the default --help shows (commented out),
 *    required ones set, and no other key.
 * The parser itself is unit-tested (tests/unit/test_flags.c) and fuzzed
 * (tests/fuzz/fuzz_config.c).
 */
#include "fsutil.h"
#include "harness.h"
#include "mem.h"

#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* How long one run of a daemon that should exit at once may take. */
#define RUN_MS 20000
#define WAIT_MS 20000

static char dir[256];

static int setup(void **state)
{
    (void)state;
    sx_h_tmpdir(dir, sizeof(dir), "config");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sx_h_tmpdir_done(dir);
    return 0;
}

static void bin_path(const char *rel, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", SX_BUILD_DIR, rel);
}

/* dir/name with text in it; its path into out. */
static void write_conf(const char *name, const char *text, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Runs a daemon (a path under the build dir) with args (NULL-terminated)
 * to its end, with env's extra variables (NULL: none). */
static sx_h_run run(const char *rel, const char *const *env, const char *const *args)
{
    char bin[512], out[512], err[512];
    bin_path(rel, bin, sizeof(bin));
    snprintf(out, sizeof(out), "%s/run.out", dir);
    snprintf(err, sizeof(err), "%s/run.err", dir);
    char *argv[16] = {bin};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    sx_h_run r = sx_h_run_wait(argv, NULL, env, out, err, RUN_MS);
    if (getenv("SHARDEX_TEST_VERBOSE"))
        sx_h_run_print(rel, &r);
    return r;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_exit(const char *what, const sx_h_run *r, int code, const char *in_out,
                        const char *in_err)
{
    if (r->code != code || (in_out && !strstr(r->out, in_out)) ||
        (in_err && !strstr(r->err, in_err))) {
        sx_h_run_print(what, r);
        fail_msg("%s: exit %d (expected %d), stdout with '%s', stderr with '%s'", what, r->code,
                 code, in_out ? in_out : "", in_err ? in_err : "");
    }
}

static void test_bad_files_exit_2(void **state)
{
    (void)state;
    char path[512], want[1024];
    write_conf("worker.conf",
               "# a worker\n"
               "coordinator = 127.0.0.1:1\n"
               "data-dir = \"/nonexistent/never-created\"\n"
               "\n"
               "fsync = batch\n"
               "log-level = info\n"
               "write-buffer = 12\n",
               path, sizeof(path));
    sx_h_run r = run("worker/shardex-worker", NULL, ARGS("--config", path));
    snprintf(want, sizeof(want), "shardex-worker: %s:7: write-buffer: 12 is below the minimum 1MiB",
             path);
    expect_exit("worker --config", &r, 2, NULL, want);
    sx_h_run_free(&r);

    write_conf("coordinator.conf", "data-dir = /nonexistent/never-created\nlease_ms = 1s\n", path,
               sizeof(path));
    r = run("coordinator/shardex-coordinator", NULL, ARGS("--config", path));
    snprintf(want, sizeof(want), "%s:2: lease_ms: unknown key (did you mean lease-ms?)", path);
    expect_exit("coordinator --config", &r, 2, NULL, want);
    sx_h_run_free(&r);

    /* Through SHARDEX_CONFIG, and a file that is not there. */
    char env[600];
    snprintf(env, sizeof(env), "SHARDEX_CONFIG=%s/missing.conf", dir);
    r = run("worker/shardex-worker", (const char *const[]){env, NULL}, ARGS("--data-dir", dir));
    snprintf(want, sizeof(want), "--config (from SHARDEX_CONFIG): %s/missing.conf: no such file",
             dir);
    expect_exit("worker SHARDEX_CONFIG", &r, 2, NULL, want);
    sx_h_run_free(&r);
}

static void test_help_shows_keys_and_env(void **state)
{
    (void)state;
    sx_h_run r = run("worker/shardex-worker", NULL, ARGS("--config", "/missing.conf", "--help"));
    expect_exit("worker --config --help", &r, 0, "--config FILE", NULL);
    expect_exit("worker --help", &r, 0, "(1MiB..1GiB; default: 32MiB; env: SHARDEX_WRITE_BUFFER)",
                NULL);
    expect_exit("worker --help", &r, 0, "config file (--config FILE, or SHARDEX_CONFIG)", NULL);
    sx_h_run_free(&r);
    r = run("coordinator/shardex-coordinator", NULL, ARGS("--help"));
    expect_exit("coordinator --help", &r, 0, "env: SHARDEX_LEASE_MS", NULL);
    expect_exit("coordinator --help", &r, 0, "e.g. `listen = 127.0.0.1:7000`", NULL);
    sx_h_run_free(&r);
}

/* A coordinator from its file: serves on the port it writes, logs the
 * file's values; then again through SHARDEX_CONFIG with a flag beating it. */
static void start_coordinator(const char *const *env, const char *const *args, const char *log,
                              const char *port_file, const char *const *want_log)
{
    char bin[512];
    bin_path("coordinator/shardex-coordinator", bin, sizeof(bin));
    char *argv[8] = {bin};
    for (size_t i = 0; args[i] && i < 6; i++)
        argv[i + 1] = (char *)args[i];
    pid_t pid = sx_h_spawn_env(argv, log, env);
    int port = sx_h_wait_port_file(port_file, pid, WAIT_MS);
    if (port <= 0) {
        sx_h_dump_log(log, 40);
        sx_h_kill9(pid);
        fail_msg("the coordinator wrote no port file %s", port_file);
    }
    sx_h_stop(pid, 5000);
    sx_buf b = {0};
    bool found = false;
    assert_int_equal(sx_file_read(log, 1 << 20, &b, &found, NULL), SX_OK);
    sx_buf_push(&b, 0);
    for (; *want_log; want_log++) {
        if (!strstr((const char *)b.data, *want_log)) {
            sx_h_dump_log(log, 40);
            fail_msg("no '%s' in the coordinator's log", *want_log);
        }
    }
    sx_buf_free(&b);
}

static void test_coordinator_from_file(void **state)
{
    (void)state;
    char path[512], text[2048], ports[512], log[512], env[600];
    snprintf(ports, sizeof(ports), "%s/coord.port", dir);
    snprintf(text, sizeof(text),
             "# all the coordinator needs\n"
             "listen = 127.0.0.1:0\n"
             "data-dir = \"%s/coord data\"\n"
             "port-file = %s\n"
             "lease-ms = 1500   # ms\n"
             "partitions = 2\n",
             dir, ports);
    write_conf("coordinator.conf", text, path, sizeof(path));
    snprintf(log, sizeof(log), "%s/coord1.log", dir);
    char file_line[600];
    snprintf(file_line, sizeof(file_line), "config file=%s\n", path);
    start_coordinator(
        NULL, ARGS("--config", path), log, ports,
        ARGS("partitions=2 replication=3 min-isr=2 term-partitions=0 lease-ms=1500ms", file_line));
    unlink(ports);
    snprintf(env, sizeof(env), "SHARDEX_CONFIG=%s", path);
    snprintf(log, sizeof(log), "%s/coord2.log", dir);
    start_coordinator((const char *const[]){env, "SHARDEX_LEASE_MS=3s", NULL},
                      ARGS("--lease-ms", "2500"), log, ports, ARGS("lease-ms=2500ms", file_line));
}

/* A flag as --help shows it, or a key as an example file sets it. */
typedef struct key {
    char name[64];
    char value[256]; /* --help: the default shown ("" for none); example: the value */
    bool required;   /* --help: "required"; example: set (not commented out) */
} key;

#define MAX_KEYS 32

/* The flags of a daemon's --help, but --help and --config themselves. */
static size_t help_keys(const char *rel, key *out)
{
    sx_h_run r = run(rel, NULL, ARGS("--help"));
    expect_exit(rel, &r, 0, NULL, NULL);
    regex_t re;
    assert_int_equal(regcomp(&re, "^ +(-[a-z], )?--([a-z0-9-]+)", REG_EXTENDED | REG_NEWLINE), 0);
    size_t n = 0;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        regmatch_t m[3];
        if (regexec(&re, line, 3, m, 0) != 0)
            continue;
        key k = {0};
        snprintf(k.name, sizeof(k.name), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
        if (strcmp(k.name, "help") == 0 || strcmp(k.name, "config") == 0)
            continue;
        /* The notes are the last parentheses: every flag has one, its env. */
        const char *notes = strrchr(line, '(');
        assert_non_null(notes);
        const char *def = strstr(notes, "default: ");
        if (def)
            snprintf(k.value, sizeof(k.value), "%.*s", (int)strcspn(def + 9, ";)"), def + 9);
        /* "required unless ...": the examples are for the default mode, which needs it. */
        k.required = strstr(notes, "required)") != NULL || strstr(line, "required unless") != NULL;
        assert_true(n < MAX_KEYS);
        out[n++] = k;
    }
    regfree(&re);
    sx_h_run_free(&r);
    return n;
}

/* The keys of an example file: "#key = value" shows a default, "key = value"
 * sets a value (required flags), "# ..." is prose; nothing else is allowed. */
static size_t example_keys(const char *rel, key *out)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SX_SOURCE_DIR, rel);
    sx_buf text = {0};
    bool found = false;
    assert_int_equal(sx_file_read(path, 1 << 20, &text, &found, NULL), SX_OK);
    assert_true(found);
    sx_buf_push(&text, 0);
    regex_t re;
    assert_int_equal(regcomp(&re, "^(#?)([a-z0-9-]+) = (.*)$", REG_EXTENDED | REG_NEWLINE), 0);
    size_t n = 0;
    for (char *line = strtok((char *)text.data, "\n"); line; line = strtok(NULL, "\n")) {
        regmatch_t m[4];
        if (regexec(&re, line, 4, m, 0) != 0) {
            if (line[0] != '#' || (line[1] != ' ' && line[1] != '\0'))
                fail_msg("%s: neither a setting nor prose: '%s'", rel, line);
            continue;
        }
        key k = {.required = m[1].rm_eo == m[1].rm_so};
        snprintf(k.name, sizeof(k.name), "%.*s", (int)(m[2].rm_eo - m[2].rm_so), line + m[2].rm_so);
        snprintf(k.value, sizeof(k.value), "%.*s", (int)(m[3].rm_eo - m[3].rm_so),
                 line + m[3].rm_so);
        assert_true(n < MAX_KEYS);
        out[n++] = k;
    }
    regfree(&re);
    sx_buf_free(&text);
    return n;
}

/* Every flag once, in --help's order; required ones set; the others
 * commented out, with the default --help shows when it shows one. */
static void check_example(const char *daemon, const char *example)
{
    key want[MAX_KEYS], got[MAX_KEYS];
    size_t nw = help_keys(daemon, want), ng = example_keys(example, got);
    assert_true(nw > 0);
    for (size_t i = 0; i < nw || i < ng; i++) {
        const key *w = i < nw ? &want[i] : NULL, *g = i < ng ? &got[i] : NULL;
        if (!w || !g || strcmp(w->name, g->name) != 0)
            fail_msg("%s: key %zu is %s, --help of %s has %s there", example, i + 1,
                     g ? g->name : "(none)", daemon, w ? w->name : "(none)");
        if (w->required != g->required)
            fail_msg("%s: %s is %s, but it is %srequired", example, g->name,
                     g->required ? "set" : "commented out", w->required ? "" : "not ");
        if (!w->required && w->value[0] && strcmp(w->value, g->value) != 0)
            fail_msg("%s: %s shows '%s', --help's default is '%s'", example, g->name, g->value,
                     w->value);
    }
}

static void test_examples_are_current(void **state)
{
    (void)state;
    check_example("worker/shardex-worker", "deploy/worker.conf.example");
    check_example("coordinator/shardex-coordinator", "deploy/coordinator.conf.example");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_files_exit_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_shows_keys_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coordinator_from_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_examples_are_current, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
