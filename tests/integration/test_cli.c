/* test_cli.c: the `shardex` tool (client/) end to end, as a user runs it:
 * the built binary, spawned with its stdout and stderr captured, against real
 * processes (coordinator + 3 workers, P=4, R=3, min_isr=2, lease 1000 ms).
 *  - the command line: --help of the tool and of every command, `help CMD`,
 *    usage errors exit 2 with `shardex: CMD: ...` and a hint on stderr;
 *  - an unreachable cluster (a closed port) exits 3 within the deadline,
 *    with the error as JSON on stdout under --json;
 *  - put (FIELD=VALUE typed, --string, JSON documents), get (aligned text,
 *    --json, --after, not found exits 4), delete; a refused write exits 5
 *    with the server's message;
 *  - index create (--wait, --local/--global, -m), list, drop (unknown: 4),
 *    split (a range index's term partition; usage 2, unknown 4, refused 5),
 *    an existing name refused (5);
 *  - query: --eq and ranges typed by the index (--eq abc on an int index is
 *    refused: 5; --eq 42 on a string index is the string), LOCAL and
 *    GLOBAL, pages and --page-token, --all, --docs, --after, an unknown
 *    index (4), a mode the index is not kept in (5);
 *  - status as tables and as JSON;
 *  - several servers in --server (a dead one first), and SHARDEX_SERVER.
 * Every --json output is parsed back with jansson and checked. The cases
 * share one cluster and run in order.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

#define WAIT_MS 30000
/* How long one run of the tool may take before the test gives up on it. */
#define CLI_MS 20000
#define P 4
#define NDOCS 12

static const char *const COLORS[] = {"red", "green", "blue", "amber"};
#define NCOLORS 4

typedef struct fx {
    sx_cluster *c;
    char servers[256]; /* the three workers, comma-separated */
    char after[4096];  /* every write token so far, comma-separated: --after */
    int dead_port;     /* a loopback port nothing listens on */
} fx;

/* ------------------------------------------------------------ the tool -- */

/* What one run of the tool did. */
typedef struct run {
    int code;    /* exit status; -1: killed by a signal or ran out CLI_MS */
    char *out;   /* stdout, NUL-terminated (free) */
    char *err;   /* stderr (free) */
    uint64_t ms; /* wall time */
    char what[256];
} run;

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

static void print_run(const run *r)
{
    fprintf(stderr, "---- shardex %s: exit %d in %" PRIu64 " ms\n---- stdout:\n%s---- stderr:\n%s",
            r->what, r->code, r->ms, r->out, r->err);
}

static void fail_run(fx *f, const run *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_run(fx *f, const run *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r)
        print_run(r);
    if (f && f->c && (!r || r->code != 2))
        sx_cluster_dump_logs(f->c);
    fail_msg("%s", msg);
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Runs `shardex [--server SERVERS] ARGS...` (args NULL-terminated), with
 * `env` as its whole environment (NULL: the test's), capturing its output
 * through pipes, and waits for it. */
static run cli_env(fx *f, bool with_server, const char *const *env, const char *const *args)
{
    char bin[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    char *argv[64] = {bin};
    size_t n = 1;
    if (with_server) {
        argv[n++] = "--server";
        argv[n++] = f->servers;
    }
    run r = {.code = -1};
    for (size_t i = 0; args[i] && n < 63; i++) {
        argv[n++] = (char *)args[i];
        size_t l = strlen(r.what);
        snprintf(r.what + l, sizeof(r.what) - l, "%s%s", i ? " " : "", args[i]);
    }
    argv[n] = NULL;
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    uint64_t t0 = sx_clock_now_ms();
    pid_t pid = 0;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, env ? (char *const *)env : environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    assert_int_equal(rc, 0);
    size_t lo = 0, le = 0;
    r.out = calloc(1, 1);
    r.err = calloc(1, 1);
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        uint64_t now = sx_clock_now_ms();
        if (now - t0 > CLI_MS)
            break;
        if (poll(fds, 2, (int)(CLI_MS - (now - t0))) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[65536];
            ssize_t k = read(fds[i].fd, buf, sizeof(buf));
            if (k > 0) {
                if (i == 0)
                    append(&r.out, &lo, buf, (size_t)k);
                else
                    append(&r.err, &le, buf, (size_t)k);
            } else {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    uint64_t left = CLI_MS - (sx_clock_now_ms() - t0 < CLI_MS ? sx_clock_now_ms() - t0 : CLI_MS);
    int st = sx_h_wait_exit(pid, left + 100);
    r.ms = sx_clock_now_ms() - t0;
    if (st == -1)
        sx_h_kill9(pid);
    else if (WIFEXITED(st))
        r.code = WEXITSTATUS(st);
    if (getenv("SHARDEX_TEST_VERBOSE"))
        print_run(&r);
    return r;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* `shardex --server WORKERS ARGS...` */
#define CLI(f, ...) cli_env((f), true, NULL, ARGS(__VA_ARGS__))
/* `shardex ARGS...` */
#define CLI_RAW(f, ...) cli_env((f), false, NULL, ARGS(__VA_ARGS__))

static void expect_code(fx *f, const run *r, int code)
{
    if (r->code != code)
        fail_run(f, r, "shardex %s: exit %d, expected %d", r->what, r->code, code);
}

static void expect_out(fx *f, const run *r, const char *needle)
{
    if (!strstr(r->out, needle))
        fail_run(f, r, "shardex %s: stdout lacks \"%s\"", r->what, needle);
}

static void expect_err(fx *f, const run *r, const char *needle)
{
    if (!strstr(r->err, needle))
        fail_run(f, r, "shardex %s: stderr lacks \"%s\"", r->what, needle);
}

/* Runs and expects exit `code`; returns the run (run_free it). */
static run ok_run(fx *f, run r, int code)
{
    expect_code(f, &r, code);
    return r;
}

/* stdout of r parsed as one JSON object (json_decref it). */
static json_t *json_of(fx *f, const run *r)
{
    json_error_t jerr;
    json_t *j = json_loads(r->out, 0, &jerr);
    if (!j || !json_is_object(j))
        fail_run(f, r, "shardex %s: stdout is not one JSON object: %s (line %d)", r->what,
                 jerr.text, jerr.line);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return (int64_t)json_integer_value(v);
}

static bool jbool(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_boolean(v));
    return json_is_true(v);
}

static bool matches(const char *s, const char *re)
{
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE), 0);
    bool m = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return m;
}

/* Remembers the tokens printed by put/delete (one "P:OFFSET" per line). */
static void keep_tokens(fx *f, const run *r)
{
    const char *p = r->out;
    while (*p) {
        size_t len = strcspn(p, "\n");
        if (!matches(p, "^[0-9]+:[0-9]+$"))
            fail_run(f, r, "shardex %s: '%.*s' is not a write token", r->what, (int)len, p);
        size_t l = strlen(f->after);
        assert_true(l + len + 2 < sizeof(f->after));
        snprintf(f->after + l, sizeof(f->after) - l, "%s%.*s", l ? "," : "", (int)len, p);
        p += len;
        if (*p)
            p++;
    }
}

/* ---------------------------------------------------------------- fixture -- */

static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        return 1;
    close(s); /* bound, never listened: connections are refused */
    return ntohs(a.sin_port);
}

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    sx_cluster *c = sx_cluster_start_settled(&o, WAIT_MS);
    if (!c)
        return -1;
    fx *f = calloc(1, sizeof(*f));
    f->c = c;
    snprintf(f->servers, sizeof(f->servers), "%s,%s,%s", c->worker_addr[0], c->worker_addr[1],
             c->worker_addr[2]);
    f->dead_port = closed_port();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_cluster_kill_all(f->c);
    sx_cluster_stop(f->c);
    free(f->c);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ tests -- */

static void test_help_and_usage(void **state)
{
    fx *f = *state;
    run r = ok_run(f, CLI_RAW(f, "--help"), 0);
    static const char *const cmds[] = {"put",    "get",  "delete", "query", "index",
                                       "status", "load", "verify", "help"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "\n  %s ", cmds[i]);
        expect_out(f, &r, line);
    }
    expect_out(f, &r, "exit status:");
    expect_out(f, &r, "  3  the cluster could not be reached");
    expect_out(f, &r, "  4  not found");
    expect_out(f, &r, "  5  refused by the server");
    expect_out(f, &r, "SHARDEX_SERVER");
    run_free(&r);

    /* Every command's --help, and `help CMD` saying the same. */
    for (size_t i = 0; i + 1 < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char head[64];
        snprintf(head, sizeof(head), "usage: shardex %s", cmds[i]);
        r = ok_run(f, CLI_RAW(f, cmds[i], "--help"), 0);
        expect_out(f, &r, head);
        expect_out(f, &r, "--help");
        run h = ok_run(f, CLI_RAW(f, "help", cmds[i]), 0);
        if (strcmp(h.out, r.out) != 0)
            fail_run(f, &h, "help %s differs from %s --help", cmds[i], cmds[i]);
        run_free(&h);
        run_free(&r);
    }
    static const char *const subs[] = {"create", "drop", "list", "split", "salt"};
    for (size_t i = 0; i < 5; i++) {
        char head[64];
        snprintf(head, sizeof(head), "usage: shardex index %s", subs[i]);
        r = ok_run(f, CLI_RAW(f, "index", subs[i], "--help"), 0);
        expect_out(f, &r, head);
        run_free(&r);
        r = ok_run(f, CLI_RAW(f, "help", "index", subs[i]), 0);
        expect_out(f, &r, head);
        run_free(&r);
    }
    r = ok_run(f, CLI_RAW(f, "query", "--help"), 0);
    expect_out(f, &r, "--page-token");
    expect_out(f, &r, "4 no such index");
    run_free(&r);

    /* Usage errors: exit 2, nothing on stdout, `shardex: ...` and a hint. */
    const char *const *bad[] = {
        ARGS("frobnicate"),
        ARGS("help", "frobnicate"),
        ARGS("--bogus", "status"),
        ARGS("--server", "nohost", "status"),
        ARGS("--server", "127.0.0.1:1,", "status"),
        ARGS("--timeout-ms", "0", "status"),
        ARGS("get"),
        ARGS("get", "a", "b"),
        ARGS("get", "a", "--after", "3"),
        ARGS("get", "a", "--after"),
        ARGS("put"),
        ARGS("put", "x", "=1"),
        ARGS("put", "x", "novalue"),
        ARGS("put", "{\"id\": 1}"),
        ARGS("put", "{\"id\": \"x\", \"fields\": {\"a\": 1.5}}"),
        ARGS("put", "{not json"),
        ARGS("delete"),
        ARGS("query", "--eq", "1"),
        ARGS("query", "--index", "x"),
        ARGS("query", "--index", "x", "--eq", "1", "--min", "0"),
        ARGS("query", "--index", "x", "--eq", "1", "--mode", "sideways"),
        ARGS("query", "--index", "x", "--eq", "1", "--limit", "20000"),
        ARGS("query", "--index", "x", "--eq", "1", "--page-token", "!!"),
        ARGS("query", "--index", "x", "--eq", "1", "stray"),
        ARGS("index"),
        ARGS("index", "frob"),
        ARGS("index", "create", "x"),
        ARGS("index", "create", "--field", "f"),
        ARGS("index", "create", "x", "--field", "f", "--type", "float"),
        ARGS("index", "drop"),
        ARGS("index", "list", "extra"),
        ARGS("status", "--frob"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = ok_run(f, cli_env(f, true, NULL, bad[i]), 2);
        if (r.out[0])
            fail_run(f, &r, "a usage error printed on stdout");
        if (strncmp(r.err, "shardex: ", 9) != 0 || !strstr(r.err, "--help'"))
            fail_run(f, &r, "a usage error without `shardex: ...` and a hint");
        run_free(&r);
    }
    /* No command at all: the usage on stderr. */
    r = ok_run(f, CLI_RAW(f, "--timeout-ms", "100"), 2);
    expect_err(f, &r, "usage: shardex");
    run_free(&r);
}

static void test_unavailable(void **state)
{
    fx *f = *state;
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", f->dead_port);
    const char *const *calls[] = {
        ARGS("get", "x"),           ARGS("put", "x", "a=1"),
        ARGS("delete", "x"),        ARGS("query", "--index", "color", "--eq", "red"),
        ARGS("index", "list"),      ARGS("index", "create", "x", "--field", "x"),
        ARGS("index", "drop", "x"), ARGS("status"),
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        const char *args[16] = {"--server", dead, "--timeout-ms", "500"};
        size_t n = 4;
        for (size_t k = 0; calls[i][k]; k++)
            args[n++] = calls[i][k];
        args[n] = NULL;
        run r = ok_run(f, cli_env(f, false, NULL, args), 3);
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "shardex: %s", calls[i][0]);
        if (strncmp(r.err, prefix, strlen(prefix)) != 0)
            fail_run(f, &r, "stderr does not start with \"%s\"", prefix);
        expect_err(f, &r, dead);
        if (r.ms > 5000)
            fail_run(f, &r, "took %" PRIu64 " ms with --timeout-ms 500", r.ms);
        run_free(&r);
    }
    /* --json: the error as an object on stdout too. */
    run r = ok_run(f, CLI_RAW(f, "--server", dead, "--timeout-ms", "300", "--json", "status"), 3);
    json_t *j = json_of(f, &r);
    assert_string_equal(jstr(j, "command"), "status");
    assert_string_equal(jstr(j, "status"), "UNAVAILABLE");
    assert_int_equal(jint(j, "exit"), 3);
    assert_non_null(strstr(jstr(j, "error"), dead));
    json_decref(j);
    run_free(&r);
}

/* The value of field `name` (its first) in a GetResponse's doc, or NULL. */
static json_t *doc_field(json_t *doc, const char *name, size_t nth)
{
    size_t i;
    json_t *fl;
    json_array_foreach(json_object_get(doc, "fields"), i, fl)
    {
        if (strcmp(jstr(fl, "name"), name) == 0 && nth-- == 0)
            return json_object_get(fl, "value");
    }
    return NULL;
}

static void test_documents(void **state)
{
    fx *f = *state;
    /* The documents the query tests use: doc-00..doc-11, color (string),
     * size (int), tag (multi-valued). */
    for (int i = 0; i < NDOCS; i++) {
        char id[32], color[32], size[32], tag[32];
        snprintf(id, sizeof(id), "doc-%02d", i);
        snprintf(color, sizeof(color), "color=%s", COLORS[i % NCOLORS]);
        snprintf(size, sizeof(size), "size=%d", i * 10);
        snprintf(tag, sizeof(tag), "tag=t%d", i % 3);
        run r = ok_run(f, CLI(f, "put", id, color, size, "tag=all", tag), 0);
        if (!matches(r.out, "^[0-9]+:[0-9]+\n$"))
            fail_run(f, &r, "put did not print one token");
        keep_tokens(f, &r);
        run_free(&r);
    }

    /* get: aligned text, version = the token. */
    run p = ok_run(f,
                   CLI(f, "put", "vim", "section=editors", "installed-size=3920", "tag=tui",
                       "tag=modal", "code=007"),
                   0);
    keep_tokens(f, &p);
    char tok[64];
    snprintf(tok, sizeof(tok), "%.*s", (int)strcspn(p.out, "\n"), p.out);
    run r = ok_run(f, CLI(f, "get", "vim", "--after", tok), 0);
    char ver[80];
    snprintf(ver, sizeof(ver), "version: %s\n", tok);
    expect_out(f, &r, "id: vim\n");
    expect_out(f, &r, ver);
    expect_out(f, &r,
               "fields:\n"
               "  section         \"editors\"\n"
               "  installed-size  3920\n"
               "  tag             \"tui\"\n"
               "  tag             \"modal\"\n"
               "  code            \"007\"\n");
    run_free(&r);

    /* get --json: the GetResponse. */
    r = ok_run(f, CLI(f, "get", "vim", "--json", "--after", f->after), 0);
    json_t *j = json_of(f, &r);
    assert_true(jbool(j, "found"));
    json_t *doc = json_object_get(j, "doc");
    assert_string_equal(jstr(doc, "id"), "vim");
    assert_string_equal(jstr(doc_field(doc, "section", 0), "s"), "editors");
    assert_int_equal(jint(doc_field(doc, "installed-size", 0), "i"), 3920);
    assert_string_equal(jstr(doc_field(doc, "tag", 1), "s"), "modal");
    assert_string_equal(jstr(doc_field(doc, "code", 0), "s"), "007");
    json_t *v = json_object_get(j, "version");
    char jtok[64];
    snprintf(jtok, sizeof(jtok), "%" PRId64 ":%" PRId64, jint(v, "partition"), jint(v, "offset"));
    assert_string_equal(jtok, tok);
    json_decref(j);
    run_free(&r);
    run_free(&p);

    /* --string; JSON documents in, JSON tokens out (global --json). */
    r = ok_run(f, CLI(f, "put", "s1", "n=42", "--string"), 0);
    keep_tokens(f, &r);
    run_free(&r);
    r = ok_run(f, CLI(f, "get", "s1", "--json", "--after", f->after), 0);
    j = json_of(f, &r);
    assert_string_equal(jstr(doc_field(json_object_get(j, "doc"), "n", 0), "s"), "42");
    json_decref(j);
    run_free(&r);
    r = ok_run(f,
               CLI(f, "--json", "put",
                   "{\"id\": \"j1\", \"fields\": {\"tag\": [\"x\", \"y\"], \"n\": -5}}",
                   "{\"id\": \"j2\"}"),
               0);
    j = json_of(f, &r);
    json_t *toks = json_object_get(j, "tokens");
    assert_int_equal(json_array_size(toks), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(toks, i);
        assert_true(jint(t, "partition") < P);
        assert_true(jint(t, "offset") > 0);
        size_t l = strlen(f->after);
        snprintf(f->after + l, sizeof(f->after) - l, ",%" PRId64 ":%" PRId64, jint(t, "partition"),
                 jint(t, "offset"));
    }
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "get", "j1", "--json", "--after", f->after), 0);
    j = json_of(f, &r);
    doc = json_object_get(j, "doc");
    assert_string_equal(jstr(doc_field(doc, "tag", 0), "s"), "x");
    assert_string_equal(jstr(doc_field(doc, "tag", 1), "s"), "y");
    assert_int_equal(jint(doc_field(doc, "n", 0), "i"), -5);
    json_decref(j);
    run_free(&r);

    /* Not found: 4, with {"found": false} under --json. */
    r = ok_run(f, CLI(f, "get", "no-such-doc"), 4);
    expect_err(f, &r, "shardex: get: ");
    expect_err(f, &r, "no-such-doc");
    run_free(&r);
    r = ok_run(f, CLI(f, "get", "no-such-doc", "--json"), 4);
    j = json_of(f, &r);
    assert_false(jbool(j, "found"));
    assert_null(json_object_get(j, "doc"));
    json_decref(j);
    run_free(&r);

    /* Refused by the server: 5, its message, nothing written. */
    r = ok_run(f, CLI(f, "put", "", "a=1"), 5);
    expect_err(f, &r, "shardex: put: ");
    expect_err(f, &r, "id is empty");
    run_free(&r);
    r = ok_run(f, CLI(f, "put", "--json", "", "a=1"), 5);
    j = json_of(f, &r);
    assert_string_equal(jstr(j, "status"), "INVALID_ARGUMENT");
    assert_int_equal(jint(j, "exit"), 5);
    json_decref(j);
    run_free(&r);

    /* delete: one token per id; gone after them. */
    r = ok_run(f, CLI(f, "delete", "j1", "j2", "never-existed"), 0);
    if (!matches(r.out, "^[0-9]+:[0-9]+\n[0-9]+:[0-9]+\n[0-9]+:[0-9]+\n$"))
        fail_run(f, &r, "delete did not print three tokens");
    keep_tokens(f, &r);
    run_free(&r);
    r = ok_run(f, CLI(f, "get", "j1", "--after", f->after), 4);
    run_free(&r);
    r = ok_run(f, CLI(f, "delete", "--json", "s1"), 0);
    j = json_of(f, &r);
    assert_int_equal(json_array_size(json_object_get(j, "tokens")), 1);
    json_decref(j);
    run_free(&r);
}

/* The index named `name` in a ListIndexesResponse (or status), or NULL. */
static json_t *find_index(json_t *list, const char *name)
{
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(list, "indexes"), i, ix)
    {
        if (strcmp(jstr(json_object_get(ix, "spec"), "name"), name) == 0)
            return ix;
    }
    return NULL;
}

static void test_indexes(void **state)
{
    fx *f = *state;
    run r = ok_run(f, CLI(f, "index", "create", "color", "--field", "color", "--wait"), 0);
    expect_out(f, &r, "created index color: field color, string, local,global");
    expect_out(f, &r, "READY");
    run_free(&r);
    r = ok_run(f,
               CLI(f, "index", "create", "size", "--field", "size", "--type", "int", "--local",
                   "--wait", "--json"),
               0);
    json_t *j = json_of(f, &r);
    json_t *ix = json_object_get(j, "index");
    json_t *spec = json_object_get(ix, "spec");
    assert_string_equal(jstr(spec, "name"), "size");
    assert_string_equal(jstr(spec, "type"), "VALUE_TYPE_INT");
    assert_true(jbool(spec, "local"));
    assert_false(jbool(spec, "global"));
    assert_string_equal(jstr(ix, "state"), "INDEX_STATE_READY");
    json_decref(j);
    run_free(&r);
    r = ok_run(
        f, CLI(f, "index", "--json", "create", "tag", "-f", "tag", "--global", "-m", "3", "-w"), 0);
    j = json_of(f, &r);
    spec = json_object_get(json_object_get(j, "index"), "spec");
    assert_false(jbool(spec, "local"));
    assert_true(jbool(spec, "global"));
    assert_int_equal(jint(spec, "term_partitions"), 3);
    json_decref(j);
    run_free(&r);

    /* A taken name: refused (5). */
    r = ok_run(f, CLI(f, "index", "create", "color", "--field", "other"), 5);
    expect_err(f, &r, "shardex: index create: ");
    expect_err(f, &r, "already exists");
    run_free(&r);

    /* list: a table, and JSON. */
    r = ok_run(f, CLI(f, "index", "list"), 0);
    if (!matches(r.out, "^NAME +FIELD +TYPE +KEPT +M +STATE +MISTYPED +BACKFILL$") ||
        !matches(r.out, "^color +color +string +local,global +[0-9]+ +READY +0 +done$") ||
        !matches(r.out, "^size +size +int +local +- +READY +0 +done$") ||
        !matches(r.out, "^tag +tag +string +global +3 +READY +0 +done$"))
        fail_run(f, &r, "index list: not the table expected");
    run_free(&r);
    r = ok_run(f, CLI(f, "--json", "index", "list"), 0);
    j = json_of(f, &r);
    assert_int_equal(json_array_size(json_object_get(j, "indexes")), 3);
    assert_non_null(find_index(j, "color"));
    assert_int_equal(jint(find_index(j, "size"), "mistyped_docs"), 0);
    json_decref(j);
    run_free(&r);

    /* drop: 0, then 4 for the same name, and queries on it 4. */
    r = ok_run(f, CLI(f, "index", "create", "tmp", "--field", "color", "--local"), 0);
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "drop", "tmp"), 0);
    expect_out(f, &r, "dropped index tmp");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "drop", "tmp", "--json"), 4);
    j = json_of(f, &r);
    assert_string_equal(jstr(j, "status"), "NOT_FOUND");
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "create", "tmp2", "--field", "color", "--local"), 0);
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "drop", "tmp2", "--json"), 0);
    j = json_of(f, &r);
    assert_int_equal(json_object_size(j), 0); /* DropIndexResponse {} */
    json_decref(j);
    run_free(&r);
}

/* The ids of a QueryResponse's hits, space-separated, and checks that each
 * value has the kind wanted ('s' or 'i'). */
static void hit_ids(json_t *q, char kind, char *out, size_t cap)
{
    out[0] = '\0';
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(q, "hits"), i, h)
    {
        json_t *v = json_object_get(h, "value");
        assert_non_null(json_object_get(v, kind == 's' ? "s" : "i"));
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", l ? " " : "", jstr(h, "id"));
    }
}

static void test_queries(void **state)
{
    fx *f = *state;
    char ids[1024];
    /* --eq on a string index, GLOBAL and LOCAL, with every token. */
    run r = ok_run(f,
                   CLI(f, "query", "--index", "color", "--eq", "red", "--mode", "global", "--after",
                       f->after, "--json"),
                   0);
    json_t *j = json_of(f, &r);
    hit_ids(j, 's', ids, sizeof(ids));
    assert_string_equal(ids, "doc-00 doc-04 doc-08");
    assert_string_equal(jstr(j, "mode"), "MODE_GLOBAL");
    assert_int_equal(jint(j, "partitions_contacted"), 1);
    assert_string_equal(jstr(j, "next_page_token"), "");
    assert_int_equal(jint(j, "pages"), 1);
    assert_true(json_is_number(json_object_get(j, "elapsed_ms")));
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "color", "--eq", "red", "--mode", "local", "--json"),
               0);
    j = json_of(f, &r);
    hit_ids(j, 's', ids, sizeof(ids));
    assert_string_equal(ids, "doc-00 doc-04 doc-08");
    assert_string_equal(jstr(j, "mode"), "MODE_LOCAL");
    assert_int_equal(jint(j, "partitions_contacted"), P);
    json_decref(j);
    run_free(&r);

    /* The text: an aligned table and the footer. */
    r = ok_run(f, CLI(f, "query", "-i", "color", "--eq", "blue", "--mode", "local"), 0);
    expect_out(f, &r,
               "VALUE   ID\n"
               "\"blue\"  doc-02\n"
               "\"blue\"  doc-06\n"
               "\"blue\"  doc-10\n");
    if (!matches(r.out, "^3 hits; mode LOCAL, 4 partitions contacted, stale by at most [0-9]+ ms; "
                        "[0-9.]+ ms$"))
        fail_run(f, &r, "query: no footer");
    run_free(&r);

    /* Values typed by the index: an int index takes ints, ranges inclusive. */
    r = ok_run(f, CLI(f, "query", "--index", "size", "--min", "20", "--max", "50", "--json"), 0);
    j = json_of(f, &r);
    hit_ids(j, 'i', ids, sizeof(ids));
    assert_string_equal(ids, "doc-02 doc-03 doc-04 doc-05");
    assert_int_equal(
        jint(json_object_get(json_array_get(json_object_get(j, "hits"), 3), "value"), "i"), 50);
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "size", "--min", "100"), 0);
    expect_out(f, &r, "VALUE  ID\n100    doc-10\n110    doc-11\n2 hits");
    run_free(&r);
    /* ... and refuses anything else (5), with the server's message. */
    r = ok_run(f, CLI(f, "query", "--index", "size", "--eq", "abc"), 5);
    expect_err(f, &r, "shardex: query: ");
    expect_err(f, &r, "holds int values");
    run_free(&r);
    /* A string index takes 42 as the string "42": no hit, no error. */
    r = ok_run(f, CLI(f, "query", "--index", "color", "--eq", "42", "--json"), 0);
    j = json_of(f, &r);
    assert_int_equal(json_array_size(json_object_get(j, "hits")), 0);
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "color", "--eq", "42"), 0);
    expect_out(f, &r, "0 hits; mode");
    run_free(&r);

    /* Unknown index: 4; a mode it is not kept in: 5. */
    r = ok_run(f, CLI(f, "query", "--index", "nosuch", "--eq", "x"), 4);
    expect_err(f, &r, "nosuch");
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "nosuch", "--eq", "x", "--json"), 4);
    j = json_of(f, &r);
    assert_string_equal(jstr(j, "status"), "NOT_FOUND");
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "tag", "--eq", "all", "--mode", "local"), 5);
    expect_err(f, &r, "LOCAL");
    run_free(&r);

    /* Pages: a multi-valued field, 12 hits of "all" in pages of 5. */
    char expect_all[512] = "";
    for (int i = 0; i < NDOCS; i++) {
        size_t l = strlen(expect_all);
        snprintf(expect_all + l, sizeof(expect_all) - l, "%sdoc-%02d", i ? " " : "", i);
    }
    char got[1024] = "";
    char token[256] = "";
    int pages = 0;
    do {
        const char *args[16] = {"query",   "--index", "tag",     "--eq",  "all",
                                "--limit", "5",       "--after", f->after};
        size_t n = 9;
        if (token[0]) {
            args[n++] = "--page-token";
            args[n++] = token;
        }
        args[n] = NULL;
        r = ok_run(f, cli_env(f, true, NULL, args), 0);
        pages++;
        const char *p = r.out;
        p += strcspn(p, "\n") + 1; /* the header */
        while (*p == '"') {
            const char *id = p + strcspn(p, " ");
            id += strspn(id, " ");
            size_t len = strcspn(id, "\n");
            size_t l = strlen(got);
            snprintf(got + l, sizeof(got) - l, "%s%.*s", l ? " " : "", (int)len, id);
            p = id + len + 1;
        }
        const char *next = strstr(r.out, "next page: --page-token ");
        token[0] = '\0';
        if (next)
            snprintf(token, sizeof(token), "%.*s", (int)strcspn(next + 24, "\n"), next + 24);
        run_free(&r);
        assert_true(pages <= 4);
    } while (token[0]);
    assert_string_equal(got, expect_all);
    assert_int_equal(pages, 3);
    /* --all: the same in one run. */
    r = ok_run(f,
               CLI(f, "query", "--index", "tag", "--eq", "all", "--limit", "5", "--all", "--json",
                   "--docs"),
               0);
    j = json_of(f, &r);
    hit_ids(j, 's', ids, sizeof(ids));
    assert_string_equal(ids, expect_all);
    assert_int_equal(jint(j, "pages"), 3);
    assert_string_equal(jstr(j, "next_page_token"), "");
    json_t *doc = json_object_get(json_array_get(json_object_get(j, "hits"), 0), "doc");
    assert_string_equal(jstr(doc, "id"), "doc-00");
    assert_int_equal(json_array_size(json_object_get(doc, "fields")), 4);
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "tag", "--eq", "t1", "--docs"), 0);
    expect_out(f, &r, "\"t1\"   doc-01  color=\"green\" size=10 tag=\"all\" tag=\"t1\"\n");
    run_free(&r);

    /* Read-your-writes through the tool: a put's token, then a GLOBAL query. */
    r = ok_run(f, CLI(f, "put", "late", "color=red", "tag=all"), 0);
    char tok[64];
    snprintf(tok, sizeof(tok), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    run_free(&r);
    r = ok_run(f,
               CLI(f, "query", "--index", "color", "--eq", "red", "--mode", "global", "--after",
                   tok, "--json"),
               0);
    j = json_of(f, &r);
    hit_ids(j, 's', ids, sizeof(ids));
    assert_string_equal(ids, "doc-00 doc-04 doc-08 late");
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "delete", "late"), 0);
    snprintf(tok, sizeof(tok), "%.*s", (int)strcspn(r.out, "\n"), r.out);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "color", "--eq", "red", "--after", tok, "--json"), 0);
    j = json_of(f, &r);
    hit_ids(j, 's', ids, sizeof(ids));
    assert_string_equal(ids, "doc-00 doc-04 doc-08");
    json_decref(j);
    run_free(&r);
}

/* A range-partitioned index: split points chosen by the worker from the data
 * (the quartiles of size), or given, or none for a field no document holds
 * (one term partition); a narrow range query reads one term partition, an
 * open one all four. */
static bool no_alarms(void *arg)
{
    run r = CLI((fx *)arg, "status", "--check");
    bool none = r.code == 0;
    run_free(&r);
    return none;
}

static void test_range_indexes(void **state)
{
    fx *f = *state;
    run r = ok_run(f,
                   CLI(f, "index", "create", "size_r", "--field", "size", "--type", "int",
                       "--global", "--partitioning", "range", "-m", "4", "--wait"),
                   0);
    if (!matches(r.out, "^created index size_r: field size, int, global, 4 term partitions by "
                        "range at -?[0-9]+,-?[0-9]+,-?[0-9]+; READY"))
        fail_run(f, &r, "index create --partitioning range: not the line expected");
    run_free(&r);
    r = ok_run(f,
               CLI(f, "query", "--index", "size_r", "--min", "0", "--max", "0", "--mode", "global",
                   "--json"),
               0);
    json_t *j = json_of(f, &r);
    assert_int_equal(jint(j, "partitions_contacted"), 1);
    json_decref(j);
    run_free(&r);
    r = ok_run(f, CLI(f, "query", "--index", "size_r", "--min", "0", "--json"), 0);
    j = json_of(f, &r);
    assert_int_equal(jint(j, "partitions_contacted"), 4);
    json_decref(j);
    run_free(&r);
    r = ok_run(f,
               CLI(f, "index", "create", "color_r", "--field", "color", "--global",
                   "--partitioning", "range", "--split-points", "c,m", "--wait"),
               0);
    expect_out(f, &r, "3 term partitions by range at c,m; READY");
    run_free(&r);
    r = ok_run(f,
               CLI(f, "index", "create", "none_r", "--field", "absent", "--global",
                   "--partitioning", "range", "--wait"),
               0);
    expect_out(f, &r,
               "created index none_r: field absent, string, global, 1 term partition by "
               "range; READY");
    run_free(&r);
    /* Usage (2): not ints for an int index; split points without range. */
    r = ok_run(f,
               CLI(f, "index", "create", "bad", "--field", "size", "--type", "int", "--global",
                   "--partitioning", "range", "--split-points", "5,x"),
               2);
    expect_err(f, &r, "not an int");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "create", "bad", "--field", "size", "--split-points", "5"), 2);
    expect_err(f, &r, "--split-points needs --partitioning range");
    run_free(&r);
    /* Refused by the coordinator (5): not increasing. */
    r = ok_run(f,
               CLI(f, "index", "create", "bad", "--field", "color", "--global", "--partitioning",
                   "range", "--split-points", "m,c"),
               5);
    expect_err(f, &r, "not above the one before");
    run_free(&r);
    /* An online split (docs/indexes.md): recorded, then refusals by their exit codes. */
    r = ok_run(f, CLI(f, "index", "split", "color_r", "--partition", "1", "--at", "h"), 0);
    expect_out(f, &r, "splitting term partition 1 of index color_r");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "split", "color_r", "--at", "h"), 2);
    expect_err(f, &r, "--partition T is required");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "split", "size_r", "--partition", "0", "--at", "x"), 2);
    expect_err(f, &r, "--at: not an int");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "split", "nope", "--partition", "0", "--at", "1"), 4);
    expect_err(f, &r, "does not exist");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "split", "size_r", "--partition", "9", "--at", "1"), 5);
    expect_err(f, &r, "term_partition: 9");
    run_free(&r);
    /* A hot value salted (docs/indexes.md "Hot values"), then refusals. */
    r = ok_run(f, CLI(f, "index", "salt", "size_r", "--value", "5", "--ways", "2"), 0);
    expect_out(f, &r, "salted a value of index size_r");
    expect_out(f, &r, "hot value of size_r: 5 spread over 2 term partitions");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "salt", "size_r"), 2);
    expect_err(f, &r, "--value V is required");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "salt", "size_r", "--value", "x"), 2);
    expect_err(f, &r, "--value: not an int");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "salt", "nope", "--value", "1"), 4);
    expect_err(f, &r, "does not exist");
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "salt", "size_r", "--value", "5"), 5);
    expect_err(f, &r, "value: already salted");
    run_free(&r);
    /* Gone again: the status test after this one expects no alarm, and a term
     * partition is reported ready by its owner's heartbeat a little after
     * the index is READY. */
    r = ok_run(f, CLI(f, "index", "drop", "size_r"), 0);
    run_free(&r);
    r = ok_run(f, CLI(f, "index", "drop", "color_r"), 0);
    run_free(&r);
    /* The split's two term partitions, then the drops, rebalanced owners: a
     * term partition that moved is rebuilt before its owner reports it ready. */
    if (!sx_h_wait_for(no_alarms, f, 30000)) {
        r = CLI(f, "status", "--check");
        fail_run(f, &r, "status --check: alarms 30 s after the range indexes were dropped");
    }
}

static void test_status(void **state)
{
    fx *f = *state;
    run r = ok_run(f, CLI(f, "status"), 0);
    expect_out(f, &r, "cluster: 4 log partitions, replication 3, min ISR 2");
    expect_out(f, &r, "3/3 workers alive, 4/4 log partitions available");
    expect_out(f, &r, "\nworkers\n  ID ");
    expect_out(f, &r, "\nlog partitions (worker ids cut to ");
    expect_out(f, &r, "\nterm partitions\n  INDEX ");
    expect_out(f, &r, "\nindexes\n  NAME ");
    for (uint32_t i = 0; i < 3; i++) {
        expect_out(f, &r, f->c->worker_id[i]);
        expect_out(f, &r, f->c->worker_addr[i]);
    }
    if (!matches(r.out,
                 "^  P +EPOCH +LEADER +ISR +COMMIT +AVAILABLE +REPLICAS \\(LEO/APPLIED\\)$") ||
        !matches(r.out, "^  0 +[0-9]+ +w-[^ ]+ +[^ ,]+,[^ ,]+,[^ ,]+ +[0-9]+ +yes +"))
        fail_run(f, &r, "status: no log partition table");
    if (!matches(r.out, "^  INDEX +T +OWNER +EPOCH +READY +LAG +ENTRIES +WRITES/S +READS/S$") ||
        !matches(r.out, " [0-9]+ +[0-9]+\\.[0-9] +[0-9]+\\.[0-9]$"))
        fail_run(f, &r, "status: no term partition table with entries and load");
    run_free(&r);

    r = ok_run(f, CLI(f, "status", "--json"), 0);
    json_t *j = json_of(f, &r);
    assert_int_equal(jint(j, "partitions"), P);
    assert_int_equal(jint(j, "replication"), 3);
    assert_int_equal(jint(j, "min_isr"), 2);
    json_t *ws = json_object_get(j, "workers");
    assert_int_equal(json_array_size(ws), 3);
    size_t i;
    json_t *e;
    json_array_foreach(ws, i, e)
    {
        assert_true(jbool(e, "alive"));
        assert_true(strncmp(jstr(e, "id"), "w-", 2) == 0);
    }
    json_t *lps = json_object_get(j, "log_partitions");
    assert_int_equal(json_array_size(lps), P);
    json_array_foreach(lps, i, e)
    {
        assert_int_equal(jint(e, "partition"), (int64_t)i);
        assert_true(jbool(e, "available"));
        assert_true(jstr(e, "leader")[0]);
        assert_int_equal(json_array_size(json_object_get(e, "replicas")), 3);
        json_t *rep = json_array_get(json_object_get(e, "replicas"), 0);
        assert_true(jint(rep, "log_end_offset") >= jint(rep, "applied_offset"));
    }
    /* color (the cluster's default M) and tag (M = 3) are global. */
    size_t ntag = 0;
    json_array_foreach(json_object_get(j, "term_partitions"), i, e)
    {
        ntag += strcmp(jstr(e, "index"), "tag") == 0;
        assert_true(jstr(e, "owner")[0]);
    }
    assert_int_equal(ntag, 3);
    assert_non_null(find_index(j, "size"));
    json_decref(j);
    run_free(&r);

    /* Alarms: none on this cluster; every worker is "near lease expiry"
     * with a threshold above any lease, and --check then exits 1. */
    r = ok_run(f, CLI(f, "status"), 0);
    expect_out(f, &r, "\nalarms\n  none\n");
    run_free(&r);
    r = ok_run(f, CLI(f, "status", "--check"), 0);
    expect_out(f, &r, "ok: no alarm\n");
    run_free(&r);
    r = ok_run(f, CLI(f, "status", "--check", "--lease-warn", "1h"), 1);
    for (uint32_t w = 0; w < 3; w++) {
        char line[160];
        snprintf(line, sizeof(line), "ALARM: worker %s (%s) is near lease expiry",
                 f->c->worker_id[w], f->c->worker_addr[w]);
        expect_out(f, &r, line);
    }
    run_free(&r);
    r = ok_run(f, CLI(f, "status", "--check", "--json", "--lease-warn", "1h"), 1);
    j = json_of(f, &r);
    assert_int_equal(json_array_size(json_object_get(j, "alarms")), 3);
    json_decref(j);
    run_free(&r);
}

static void test_servers(void **state)
{
    fx *f = *state;
    /* A dead server first in the list: calls go on to the live ones. */
    char list[320];
    snprintf(list, sizeof(list), "127.0.0.1:%d,%s", f->dead_port, f->c->worker_addr[1]);
    for (int i = 0; i < 3; i++) {
        run r = ok_run(f, CLI_RAW(f, "--server", list, "get", "doc-01"), 0);
        expect_out(f, &r, "id: doc-01\n");
        run_free(&r);
    }
    /* SHARDEX_SERVER, and --server after the command beating it. */
    char env_server[320], path[4096];
    snprintf(env_server, sizeof(env_server), "SHARDEX_SERVER=%s", f->c->worker_addr[2]);
    snprintf(path, sizeof(path), "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    /* A cluster over TLS (SHARDEX_TEST_TLS=1): its client settings stay. */
    const char *env[8] = {env_server, path};
    char tls[3][600];
    const char *tls_vars[] = {"SHARDEX_TLS_CERT", "SHARDEX_TLS_KEY", "SHARDEX_TLS_CA"};
    for (size_t i = 0, n = 2; i < 3; i++)
        if (getenv(tls_vars[i])) {
            snprintf(tls[i], sizeof(tls[i]), "%s=%s", tls_vars[i], getenv(tls_vars[i]));
            env[n++] = tls[i];
        }
    run r = ok_run(f, cli_env(f, false, env, ARGS("index", "list")), 0);
    expect_out(f, &r, "color");
    run_free(&r);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", f->dead_port);
    r = ok_run(f, cli_env(f, false, env, ARGS("status", "--server", dead, "--timeout-ms", "300")),
               3);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage), cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_documents),      cmocka_unit_test(test_indexes),
        cmocka_unit_test(test_queries),        cmocka_unit_test(test_range_indexes),
        cmocka_unit_test(test_status),         cmocka_unit_test(test_servers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
