/* test_load.c: `shardex load` against real processes (coordinator + 3
 * workers, P=8, R=3, min_isr=2), the tool run as a process (sx_h_run_wait, its
 * input a file on stdin or named), its --json summary parsed with jansson,
 * and what the cluster holds read back with Get (and a LOCAL query) after
 * the tokens the summary printed:
 *  a. JSON Lines with bad lines at known numbers (a float at 120, a record
 *     without id at 250), a blank line and a delete, --on-error stop: exit 5,
 *     every record before line 120 written, nothing of it or after it;
 *  b. the same under --on-error skip, from standard input: exit 0, lines 120
 *     and 250 reported and skipped, every other record written, the delete
 *     applied;
 *  c. records only the server refuses (the loader's own checks off through
 *     SHARDEX_LOAD_NO_LIMITS): under skip only those are skipped, the rest of
 *     their batches written; under stop, exit 5 at the first of them;
 *  d. 200 Debian stanzas of this machine (/var/lib/dpkg/status; synthetic
 *     ones make up the count if it has fewer) with a stanza without Package
 *     at a known line, an int index on Installed-Size: the field typed int
 *     through ListIndexes, continuation lines joined, the bad stanza skipped,
 *     every package found, the index holding exactly the packages with a size;
 *  e. the command line: a missing file and a bad flag exit 2, an unreachable
 *     cluster exits 3.
 * The cases share one cluster; ids differ per case.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"
#include "mem.h"
#include "shardex.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 30000
/* How long one run of the tool may take before the test gives up on it. */
#define CLI_MS 60000
#define P 8
/* Lines of the JSON Lines files of cases a and b, and their bad lines. */
#define NLINES 300
#define BAD_FLOAT 120
#define BAD_NOID 250
#define BLANK 50
#define DELETE_AT 200 /* deletes the id of line 10 */
/* Debian stanzas of case d. */
#define NSTANZAS 200

typedef struct fx {
    sx_cluster *c;
    sx_client *cl;
    char servers[256]; /* every worker, comma-separated, for --server */
} fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    fx *f = SX_FX_STATE_NEW(fx, &o, WAIT_MS);
    if (!f)
        return -1;
    sx_cluster *c = f->c;
    const char *servers[3] = {c->worker_addr[0], c->worker_addr[1], c->worker_addr[2]};
    snprintf(f->servers, sizeof(f->servers), "%s,%s,%s", servers[0], servers[1], servers[2]);
    sx_client_opts co = {.servers = servers, .nservers = 3};
    sx_err err = {0};
    if (sx_client_open(&co, &f->cl, &err) != SX_OK) {
        fprintf(stderr, "sx_client_open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_client_close(f->cl);
    sx_cluster_stop(f->c);
    free(f->c);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ the tool -- */

/* What one run of the tool did. */
typedef struct cli_run {
    sx_h_run run; /* exit, stdout, stderr, time (CLI_MS at most) */
    json_t *sum;  /* stdout parsed, when it is JSON (json_decref) */
} cli_run;

/* Runs `shardex ARGS...` (NULL-terminated) with stdin from `in` (NULL:
 * /dev/null), extra environment variables `env` (NULL-terminated, may be
 * NULL), stdout and stderr in files of the cluster's directory. */
static cli_run run_cli(fx *f, const char *in, const char *const *args, const char *const *env)
{
    char bin[512], outf[512], errf[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    snprintf(outf, sizeof(outf), "%s/load.out", f->c->dir);
    snprintf(errf, sizeof(errf), "%s/load.err", f->c->dir);
    char *argv[40] = {bin};
    size_t n = 1;
    for (; args[n - 1] && n < 39; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    cli_run r = {.run = sx_h_run_wait(argv, in, env, outf, errf, CLI_MS)};
    r.sum = json_loads(r.run.out, 0, NULL);
    if (getenv("SHARDEX_TEST_VERBOSE"))
        sx_h_run_print(args[0], &r.run);
    return r;
}

static void cli_free(cli_run *r)
{
    sx_h_run_free(&r->run);
    json_decref(r->sum);
}

/* Runs a load that must exit with want and print a JSON summary. */
static cli_run load(fx *f, const char *in, const char *const *args, const char *const *env,
                    int want)
{
    cli_run r = run_cli(f, in, args, env);
    if (r.run.code != want || !json_is_object(r.sum)) {
        sx_h_run_print("load", &r.run);
        SX_FX_FAIL(f->c, "load exited %d (wanted %d)%s", r.run.code, want,
                   json_is_object(r.sum) ? "" : " without a JSON summary");
    }
    fprintf(stderr, "load: exit %d in %" PRIu64 " ms\n", r.run.code, r.run.ms);
    return r;
}

static int64_t jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("summary: \"%s\" is not an integer", key);
    return (int64_t)json_integer_value(v);
}

/* The summary's skipped lines, compared with want (n of them). */
static void expect_skipped(const cli_run *r, const uint64_t *want, size_t n)
{
    json_t *a = json_object_get(r->sum, "skipped_lines");
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(json_integer_value(json_array_get(a, i)), want[i]);
    assert_int_equal(jint(r->sum, "skipped"), n);
}

/* stderr names `line N:`. */
static void expect_reported(const cli_run *r, uint64_t line)
{
    char want[48];
    snprintf(want, sizeof(want), "line %" PRIu64 ":", line);
    if (!strstr(r->run.err, want)) {
        sx_h_run_print("load", &r->run);
        fail_msg("stderr does not report %s", want);
    }
}

/* The summary's tokens, both as "tokens" and as the "after" text. */
static void summary_tokens(const cli_run *r, sx_token_set *set)
{
    json_t *a = json_object_get(r->sum, "tokens"), *t;
    size_t i;
    assert_true(json_is_array(a));
    json_array_foreach(a, i, t)
    {
        Shardex__V1__WriteToken tok = SHARDEX__V1__WRITE_TOKEN__INIT;
        tok.partition = (uint32_t)jint(t, "partition");
        tok.offset = (uint64_t)jint(t, "offset");
        assert_true(tok.partition < P);
        sx_token_set_add(set, &tok);
    }
    /* "after" spells the same tokens, as query --after takes them. */
    const char *after = json_string_value(json_object_get(r->sum, "after"));
    assert_non_null(after);
    size_t k = 0;
    for (const char *p = after; *p; k++) {
        unsigned part = 0;
        unsigned long long off = 0;
        assert_int_equal(sscanf(p, "%u:%llu", &part, &off), 2);
        assert_true(k < set->n);
        assert_int_equal(part, set->ptrs[k]->partition);
        assert_int_equal(off, set->ptrs[k]->offset);
        p += strcspn(p, ",");
        if (*p)
            p++;
    }
    assert_int_equal(k, set->n);
}

/* Get id after the tokens; the response (sx_client_free) or NULL if not found. */
static Shardex__V1__GetResponse *get(fx *f, const char *id, const sx_token_set *t)
{
    Shardex__V1__GetResponse *g = NULL;
    sx_err err = {0};
    sx_status st = sx_client_get(f->cl, id, t->ptrs, t->n, &g, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "Get %s: %s: %s", id, sx_status_name(st), err.msg);
    if (g->found)
        return g;
    sx_client_free(g);
    return NULL;
}

static void expect_absent(fx *f, const char *id, const sx_token_set *t)
{
    Shardex__V1__GetResponse *g = get(f, id, t);
    if (g) {
        sx_client_free(g);
        SX_FX_FAIL(f->c, "%s was written", id);
    }
}

static const Shardex__V1__Value *field(const Shardex__V1__GetResponse *g, const char *name)
{
    const Shardex__V1__Value *v = sx_doc_field(g->doc, name);
    if (!v)
        fail_msg("%s: no field %s", g->doc->id, name);
    return v;
}

/* ---------------------------------------------------------- JSON Lines -- */

/* The file of cases a and b: ids "<prefix>-<line>". */
static void write_jsonl(const char *path, const char *prefix)
{
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    for (int i = 1; i <= NLINES; i++) {
        if (i == BLANK)
            fprintf(o, "   \n");
        else if (i == BAD_FLOAT)
            fprintf(o, "{\"id\": \"%s-%d\", \"fields\": {\"n\": 1.5}}\n", prefix, i);
        else if (i == BAD_NOID)
            fprintf(o, "{\"fields\": {\"n\": %d}}\n", i);
        else if (i == DELETE_AT)
            fprintf(o, "{\"delete\": \"%s-10\"}\r\n", prefix);
        else
            fprintf(o,
                    "{\"id\": \"%s-%d\", \"fields\": {\"n\": %d, \"tag\": [\"t%d\", \"all\"], "
                    "\"name\": \"doc %d\"}}\n",
                    prefix, i, -i, i % 7, i);
    }
    fclose(o);
}

/* Every record of lines [1, upto) is as written (line 10 deleted if deleted),
 * none of [upto, NLINES] but those of lines after a stop are absent. */
static void check_jsonl(fx *f, const char *prefix, const sx_token_set *t, int upto, bool deleted,
                        bool rest_written)
{
    for (int i = 1; i <= NLINES; i++) {
        if (i == BLANK || i == BAD_NOID || i == DELETE_AT)
            continue;
        char id[32];
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        bool want = i != BAD_FLOAT && !(deleted && i == 10) && (i < upto || rest_written);
        Shardex__V1__GetResponse *g = get(f, id, t);
        if (!want) {
            if (g) {
                sx_client_free(g);
                SX_FX_FAIL(f->c, "%s (line %d) was written", id, i);
            }
            continue;
        }
        if (!g)
            SX_FX_FAIL(f->c, "%s (line %d) was not written", id, i);
        const Shardex__V1__Value *n = field(g, "n");
        assert_int_equal(n->kind_case, SHARDEX__V1__VALUE__KIND_I);
        assert_int_equal(n->i, -i);
        size_t tags = 0;
        for (size_t k = 0; k < g->doc->n_fields; k++)
            tags += strcmp(g->doc->fields[k]->name, "tag") == 0;
        assert_int_equal(tags, 2);
        sx_client_free(g);
    }
}

static void test_jsonl_stop(void **state)
{
    fx *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/stop.jsonl", f->c->dir);
    write_jsonl(path, "s");
    const char *args[] = {"--server", f->servers, "load",       path, "--on-error", "stop",
                          "--batch",  "25",       "--inflight", "3",  "--json",     NULL};
    cli_run r = load(f, NULL, args, NULL, 5);
    expect_reported(&r, BAD_FLOAT);
    /* Lines 1..120 are 119 records (one blank); 118 written, the bad one not. */
    assert_int_equal(jint(r.sum, "read"), BAD_FLOAT - 1);
    assert_int_equal(jint(r.sum, "written"), BAD_FLOAT - 2);
    assert_int_equal(jint(r.sum, "deleted"), 0);
    assert_int_equal(jint(r.sum, "skipped"), 0);
    assert_int_equal(jint(r.sum, "not_written"), 1);
    assert_true(json_is_true(json_object_get(r.sum, "stopped")));
    assert_int_equal(jint(json_object_get(r.sum, "stop"), "line"), BAD_FLOAT);
    assert_int_equal(jint(r.sum, "exit"), 5);
    sx_token_set t = {0};
    summary_tokens(&r, &t);
    check_jsonl(f, "s", &t, BAD_FLOAT, false, false);
    sx_token_set_free(&t);
    cli_free(&r);
}

static void test_jsonl_skip(void **state)
{
    fx *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/skip.jsonl", f->c->dir);
    write_jsonl(path, "k");
    /* From standard input, the format told by its first byte. */
    const char *args[] = {"--server", f->servers, "load",   "--on-error", "skip",
                          "--batch",  "40",       "--json", NULL};
    cli_run r = load(f, path, args, NULL, 0);
    expect_reported(&r, BAD_FLOAT);
    expect_reported(&r, BAD_NOID);
    const uint64_t want[] = {BAD_FLOAT, BAD_NOID};
    expect_skipped(&r, want, 2);
    assert_int_equal(jint(r.sum, "read"), NLINES - 1);
    assert_int_equal(jint(r.sum, "written"), NLINES - 1 - 2 - 1);
    assert_int_equal(jint(r.sum, "deleted"), 1);
    assert_int_equal(jint(r.sum, "not_written"), 0);
    assert_true(json_is_false(json_object_get(r.sum, "stopped")));
    assert_string_equal(json_string_value(json_object_get(r.sum, "format")), "jsonl");
    sx_token_set t = {0};
    summary_tokens(&r, &t);
    check_jsonl(f, "k", &t, NLINES + 1, true, true);
    sx_token_set_free(&t);
    cli_free(&r);
}

/* --------------------------------------------------- server refusals -- */

#define NREFUSE 60
#define REFUSE_ID 30  /* an id of 300 bytes */
#define REFUSE_VAL 45 /* a value of 5000 bytes */

static void write_refused(const char *path, const char *prefix)
{
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    for (int i = 1; i <= NREFUSE; i++) {
        if (i == REFUSE_ID)
            fprintf(o, "{\"id\": \"%s-%0300d\"}\n", prefix, i);
        else if (i == REFUSE_VAL)
            fprintf(o, "{\"id\": \"%s-%d\", \"fields\": {\"v\": \"%05000d\"}}\n", prefix, i, i);
        else
            fprintf(o, "{\"id\": \"%s-%d\", \"fields\": {\"v\": \"v%d\"}}\n", prefix, i, i);
    }
    fclose(o);
}

static void test_server_refusals(void **state)
{
    fx *f = *state;
    const char *env[] = {"SHARDEX_LOAD_NO_LIMITS=1", NULL};
    char path[512], id[64];
    snprintf(path, sizeof(path), "%s/refused.jsonl", f->c->dir);

    /* skip: only the two refused records are left out. */
    write_refused(path, "r");
    const char *skip[] = {"--server", f->servers, "load",       path,   "--batch",
                          "20",       "--json",   "--on-error", "skip", NULL};
    cli_run r = load(f, NULL, skip, env, 0);
    const uint64_t want[] = {REFUSE_ID, REFUSE_VAL};
    expect_skipped(&r, want, 2);
    expect_reported(&r, REFUSE_ID);
    expect_reported(&r, REFUSE_VAL);
    assert_non_null(strstr(r.run.err, "refused by the server"));
    assert_int_equal(jint(r.sum, "written"), NREFUSE - 2);
    sx_token_set t = {0};
    summary_tokens(&r, &t);
    for (int i = 1; i <= NREFUSE; i++) {
        if (i == REFUSE_ID)
            continue;
        snprintf(id, sizeof(id), "r-%d", i);
        Shardex__V1__GetResponse *g = get(f, id, &t);
        if ((g != NULL) != (i != REFUSE_VAL))
            SX_FX_FAIL(f->c, "%s: found %d", id, g != NULL);
        sx_client_free(g);
    }
    sx_token_set_free(&t);
    cli_free(&r);

    /* stop: exit 5 at the first refused line; its batch is not written. */
    write_refused(path, "q");
    const char *stop[] = {"--server", f->servers, "load", path, "--batch", "20", "--json", NULL};
    r = load(f, NULL, stop, env, 5);
    assert_int_equal(jint(json_object_get(r.sum, "stop"), "line"), REFUSE_ID);
    assert_true(jint(r.sum, "written") >= 20);
    /* Every record read is written or not; how far the reader got before
     * the refusal came back depends on timing (batches are in flight), but
     * it got past the refused batch. */
    assert_int_equal(jint(r.sum, "written") + jint(r.sum, "not_written"), jint(r.sum, "read"));
    assert_true(jint(r.sum, "read") >= 40 && jint(r.sum, "read") <= NREFUSE);
    summary_tokens(&r, &t);
    for (int i = 1; i <= 20; i++) {
        snprintf(id, sizeof(id), "q-%d", i);
        Shardex__V1__GetResponse *g = get(f, id, &t);
        if (!g)
            SX_FX_FAIL(f->c, "%s was not written", id);
        sx_client_free(g);
    }
    expect_absent(f, "q-45", &t);
    sx_token_set_free(&t);
    cli_free(&r);
}

/* --------------------------------------------------------------- Debian -- */

/* One stanza as the test reads it. */
typedef struct stanza {
    char *text;    /* the stanza's lines, each ending in "\n" */
    char *package; /* the id */
    bool has_size; /* Installed-Size is a decimal */
    int64_t size;
    char *description; /* joined as the loader must join it, or NULL */
} stanza;

/* The value of `name` in stanza text, continuation lines joined as deb822
 * and load_parse.h say ("\n", first space or tab dropped, trailing
 * whitespace cut); NULL when absent. */
static char *stanza_field(const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
            continue;
        sx_buf b = {0};
        const char *v = p + nl + 1, *e = strchr(v, '\n');
        while (*v == ' ' || *v == '\t')
            v++;
        const char *end = e;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        sx_buf_append(&b, v, (size_t)(end - v));
        for (p = e + 1; *p == ' ' || *p == '\t'; p = e + 1) {
            e = strchr(p, '\n');
            end = e;
            while (end > p + 1 && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            sx_buf_push(&b, '\n');
            sx_buf_append(&b, p + 1, (size_t)(end - p - 1));
        }
        sx_buf_push(&b, '\0');
        return (char *)b.data;
    }
    return NULL;
}

/* Up to max stanzas with distinct packages from path; returns how many. */
static size_t read_stanzas(const char *path, stanza *out, size_t max)
{
    char *all = NULL;
    FILE *in = fopen(path, "r");
    if (!in)
        return 0;
    sx_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), in)) > 0)
        sx_buf_append(&b, chunk, k);
    fclose(in);
    sx_buf_append(&b, "\n\n", 3); /* and the NUL */
    all = (char *)b.data;
    size_t n = 0;
    char *p = all;
    while (n < max && *p) {
        while (*p == '\n')
            p++;
        char *end = strstr(p, "\n\n");
        if (!end || !*p)
            break;
        char *text = sx_memdup(p, (size_t)(end - p) + 2);
        text[end - p + 1] = '\0';
        p = end + 2;
        char *pkg = stanza_field(text, "Package");
        bool dup = !pkg;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(out[i].package, pkg) == 0;
        if (dup || strlen(pkg) > 200) {
            free(pkg);
            free(text);
            continue;
        }
        stanza *s = &out[n++];
        s->text = text;
        s->package = pkg;
        char *size = stanza_field(text, "Installed-Size");
        char *endp = NULL;
        if (size && *size) {
            long long v = strtoll(size, &endp, 10);
            s->has_size = *endp == '\0';
            s->size = v;
        }
        free(size);
        s->description = stanza_field(text, "Description");
    }
    free(all);
    return n;
}

static void test_debian(void **state)
{
    fx *f = *state;
    sx_err err = {0};
    /* An int index on Installed-Size, before the load: the loader asks for it. */
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "isize";
    spec.field = "Installed-Size";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    spec.local = true;
    if (sx_client_create_index(f->cl, &spec, NULL, &err) != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex: %s", err.msg);

    stanza *st = calloc(NSTANZAS, sizeof(*st));
    size_t n = read_stanzas("/var/lib/dpkg/status", st, NSTANZAS);
    fprintf(stderr, "debian: %zu stanzas from /var/lib/dpkg/status\n", n);
    for (; n < NSTANZAS; n++) { /* a small system: synthetic ones make up the count */
        char text[512];
        snprintf(text, sizeof(text),
                 "Package: synthetic-%zu\nSection: test\nInstalled-Size: %zu\n"
                 "Description: synthetic package %zu\n more text\n .\n  indented\n",
                 n, n * 3, n);
        st[n].text = sx_strdup(text);
        st[n].package = stanza_field(text, "Package");
        st[n].has_size = true;
        st[n].size = (int64_t)n * 3;
        st[n].description = stanza_field(text, "Description");
    }
    /* The file: the stanzas, with one without Package after the 100th, and
     * extra blank lines at the end. */
    char path[512];
    snprintf(path, sizeof(path), "%s/status", f->c->dir);
    FILE *o = fopen(path, "w");
    assert_non_null(o);
    uint64_t line = 1, bad_line = 0;
    for (size_t i = 0; i < NSTANZAS; i++) {
        if (i == 100) {
            bad_line = line;
            fputs("Section: orphan\nVersion: 1.0\n\n", o);
            line += 3;
        }
        fputs(st[i].text, o);
        fputs("\n", o);
        for (const char *c = st[i].text; *c; c++)
            line += *c == '\n';
        line++;
    }
    fputs("\n\n", o);
    fclose(o);

    /* The index must be READY for its type to be counted on. */
    bool ready = false;
    for (uint64_t t0 = sx_clock_now_ms(); !ready && sx_clock_now_ms() - t0 < WAIT_MS;) {
        Shardex__V1__ListIndexesResponse *li = NULL;
        if (sx_client_list_indexes(f->cl, &li, &err) == SX_OK)
            for (size_t i = 0; i < li->n_indexes; i++)
                ready |= strcmp(li->indexes[i]->spec->name, "isize") == 0 &&
                         li->indexes[i]->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        sx_client_free(li);
        if (!ready)
            sx_clock_sleep_ms(50);
    }
    assert_true(ready);

    const char *args[] = {"--server", f->servers,   "load",   path, "--on-error",
                          "skip",     "--truncate", "--json", NULL};
    cli_run r = load(f, NULL, args, NULL, 0);
    assert_string_equal(json_string_value(json_object_get(r.sum, "format")), "debian");
    json_t *ints = json_object_get(r.sum, "int_fields");
    assert_int_equal(json_array_size(ints), 1);
    assert_string_equal(json_string_value(json_array_get(ints, 0)), "Installed-Size");
    expect_skipped(&r, &bad_line, 1);
    expect_reported(&r, bad_line);
    assert_non_null(strstr(r.run.err, "no \"Package\" field"));
    assert_int_equal(jint(r.sum, "read"), NSTANZAS + 1);
    assert_int_equal(jint(r.sum, "written"), NSTANZAS);
    assert_int_equal(jint(r.sum, "repeated_ids"), 0);

    sx_token_set t = {0};
    summary_tokens(&r, &t);
    size_t sized = 0;
    for (size_t i = 0; i < NSTANZAS; i++) {
        Shardex__V1__GetResponse *g = get(f, st[i].package, &t);
        if (!g)
            SX_FX_FAIL(f->c, "package %s was not written", st[i].package);
        assert_string_equal(field(g, "Package")->s, st[i].package);
        if (st[i].has_size) {
            sized++;
            const Shardex__V1__Value *v = field(g, "Installed-Size");
            assert_int_equal(v->kind_case, SHARDEX__V1__VALUE__KIND_I);
            assert_int_equal(v->i, st[i].size);
        }
        if (st[i].description) {
            const char *d = field(g, "Description")->s;
            size_t dl = strlen(st[i].description);
            if (dl <= 4096)
                assert_string_equal(d, st[i].description);
            else
                assert_memory_equal(d, st[i].description, strlen(d)); /* cut */
        }
        sx_client_free(g);
    }
    /* What the index holds: one entry per package with a size, no more. */
    Shardex__V1__QueryRequest q = SHARDEX__V1__QUERY_REQUEST__INIT;
    Shardex__V1__Range all = SHARDEX__V1__RANGE__INIT;
    q.index = "isize";
    q.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
    q.range = &all;
    q.mode = SHARDEX__V1__MODE__MODE_LOCAL;
    q.limit = 10000;
    q.after = t.ptrs;
    q.n_after = t.n;
    Shardex__V1__QueryResponse *qr = NULL;
    if (sx_client_query(f->cl, &q, &qr, &err) != SX_OK)
        SX_FX_FAIL(f->c, "Query: %s", err.msg);
    fprintf(stderr, "debian: %zu hits, %zu packages with a size\n", qr->n_hits, sized);
    assert_int_equal(qr->n_hits, sized);
    sx_client_free(qr);
    sx_token_set_free(&t);
    cli_free(&r);
    for (size_t i = 0; i < NSTANZAS; i++) {
        free(st[i].text);
        free(st[i].package);
        free(st[i].description);
    }
    free(st);
}

/* ------------------------------------------------------ command line -- */

static void test_command_line(void **state)
{
    fx *f = *state;
    char path[512];
    snprintf(path, sizeof(path), "%s/none.jsonl", f->c->dir);
    const char *missing[] = {"--server", f->servers, "load", path, NULL};
    cli_run r = run_cli(f, NULL, missing, NULL);
    assert_int_equal(r.run.code, 2);
    assert_non_null(strstr(r.run.err, "none.jsonl"));
    cli_free(&r);

    const char *badflag[] = {"load", "--batch", "0", NULL};
    r = run_cli(f, NULL, badflag, NULL);
    assert_int_equal(r.run.code, 2);
    cli_free(&r);

    const char *help[] = {"load", "--help", NULL};
    r = run_cli(f, NULL, help, NULL);
    assert_int_equal(r.run.code, 0);
    assert_non_null(strstr(r.run.out, "--on-error"));
    cli_free(&r);

    /* Nothing listens on port 1: exit 3 within the deadline. */
    snprintf(path, sizeof(path), "%s/stop.jsonl", f->c->dir);
    const char *down[] = {"--server", "127.0.0.1:1", "--timeout-ms", "1500",
                          "load",     path,          "--json",       NULL};
    r = run_cli(f, NULL, down, NULL);
    if (r.run.code != 3)
        sx_h_run_print("load (no cluster)", &r.run);
    assert_int_equal(r.run.code, 3);
    assert_true(r.run.ms < 10000);
    cli_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_stop),      cmocka_unit_test(test_jsonl_skip),
        cmocka_unit_test(test_server_refusals), cmocka_unit_test(test_debian),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
