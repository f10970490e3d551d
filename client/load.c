/* load.c: `shardex load` (see load.h): the command line, the read loop, the
 * bulk writer's reports turned into counts, line numbers and tokens, the
 * progress line and the summary.
 *
 * Line numbers travel beside the bulk writer, not through it: `pending` maps
 * each id sent to the line numbers of its unreported operations, oldest
 * first. The bulk writer keeps an id in at most one unreported batch and
 * reports operations on one id in the order they were added, so the report of
 * a batch pops the oldest line of each of its ids.
 *
 * Not here: parsing (load_parse.c), batching and retries (libshardex).
 */
#include "load.h"

#include "clock.h"
#include "cmd.h"
#include "hash.h"
#include "hmap.h"
#include "load_parse.h"
#include "mem.h"
#include "sx_limits.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Problems and skipped line numbers kept for the summary (all are counted). */
#define KEEP_ERRORS 100
/* Skipped line numbers the text summary shows. */
#define SHOW_SKIPPED 10
/* Least time between two redraws of the progress line. */
#define PROGRESS_MS 250

static const char *const formats[] = {"auto", "jsonl", "debian", NULL};
static const char *const on_errors[] = {"stop", "skip", NULL};

typedef struct load_cfg {
    sx_cmd_common common; /* first: cmd.h */
    const char *format;
    const char *id_field;
    const char *int_fields;
    const char *fields;
    bool truncate;
    uint32_t batch;
    uint32_t inflight;
    const char *on_error;
} load_cfg;

#define LOFF(m, t) SX_FLAG_OFFSET(load_cfg, m, t)
static const sx_flag load_flags[] = {
    {.name = "format",
     .type = SX_FLAG_CHOICE,
     .offset = LOFF(format, const char *),
     .choices = formats,
     .help = "input format; auto: .jsonl/.ndjson/.json files and input starting with '{' are "
             "JSON Lines, the rest Debian stanzas"},
    {.name = "id-field",
     .type = SX_FLAG_STRING,
     .offset = LOFF(id_field, const char *),
     .metavar = "NAME",
     .help = "Debian: the field whose value is the document id"},
    {.name = "int-fields",
     .type = SX_FLAG_STRING,
     .offset = LOFF(int_fields, const char *),
     .metavar = "A,B",
     .help = "fields whose values are integers (a value that is not refuses its record); "
             "Debian default: the fields of the cluster's int indexes, when they parse"},
    {.name = "fields",
     .type = SX_FLAG_STRING,
     .offset = LOFF(fields, const char *),
     .metavar = "A,B",
     .help = "load only these fields (default: all)"},
    {.name = "truncate",
     .type = SX_FLAG_BOOL,
     .offset = LOFF(truncate, bool),
     .help = "cut string values longer than 4096 bytes instead of refusing their record"},
    {.name = "batch",
     .type = SX_FLAG_UINT32,
     .offset = LOFF(batch, uint32_t),
     .metavar = "N",
     .help = "records per request",
     .min = 1,
     .max = SX_REQUEST_DOCS_MAX},
    {.name = "inflight",
     .type = SX_FLAG_UINT32,
     .offset = LOFF(inflight, uint32_t),
     .metavar = "K",
     .help = "requests in flight at once",
     .min = 1,
     .max = 64},
    {.name = "on-error",
     .type = SX_FLAG_CHOICE,
     .offset = LOFF(on_error, const char *),
     .choices = on_errors,
     .help = "on a bad record: stop (exit 5) or skip it and go on (exit 0); both report it"},
    SX_CMD_COMMON_FLAGS(load_cfg),
};

static const sx_flags_spec load_spec = {
    .prog = "shardex load",
    .synopsis = "[FILE|-] [FLAGS]",
    .description =
        "Loads documents from FILE, or standard input (- or no FILE), in batches with several\n"
        "in flight. JSON Lines: one record a line, {\"id\": ID, \"fields\": {\"name\": value or\n"
        "[values]}} or {\"delete\": ID}, values strings or integers. Debian control stanzas\n"
        "(dpkg status, apt-cache dumpavail): `Name: value` lines, stanzas separated by blank\n"
        "lines, the id from --id-field, continuation lines joined with newlines, field names\n"
        "kept as written (Installed-Size).\n"
        "\n"
        "  apt-cache dumpavail | shardex load --fields Package,Section,Installed-Size\n"
        "  shardex load docs.jsonl --on-error skip --batch 1000\n"
        "\n"
        "A bad record is reported with its line number (`line 17: ...`) and nothing of it is\n"
        "written; then the load stops or skips it (--on-error). A progress line is drawn on a\n"
        "terminal. The summary counts records read, written, deleted, skipped and not written,\n"
        "and ends with the write tokens to pass as --after (P:OFFSET,...); --json prints it as\n"
        "one object. Exit status: 0 everything written (or skipped by request); 2 usage, or\n"
        "the input cannot be read; 3 the cluster could not answer; 5 stopped on a bad record\n"
        "or a batch the server refused; 130 interrupted (Ctrl-C; the summary is printed).",
    .flags = load_flags,
    .count = sizeof(load_flags) / sizeof(load_flags[0]),
};

/* ---------------------------------------------------------------- state -- */

/* A set of 64-bit id hashes, for counting ids that repeat; 0 is the empty
 * slot (a hash of 0 is stored as 1). */
typedef struct idset {
    uint64_t *v;
    size_t cap, len;
} idset;

/* Adds h; true when it was already there. */
static bool idset_add(idset *s, uint64_t h)
{
    if (h == 0)
        h = 1;
    if (2 * (s->len + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        uint64_t *v = sx_calloc(cap, sizeof(*v));
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->v[i])
                continue;
            size_t j = (size_t)s->v[i] & (cap - 1);
            while (v[j])
                j = (j + 1) & (cap - 1);
            v[j] = s->v[i];
        }
        free(s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t j = (size_t)h & (s->cap - 1);
    for (; s->v[j]; j = (j + 1) & (s->cap - 1))
        if (s->v[j] == h)
            return true;
    s->v[j] = h;
    s->len++;
    return false;
}

/* The line numbers of an id's unreported operations, oldest first. */
typedef struct pend {
    size_t n, cap;
    uint64_t *lines;
} pend;

typedef struct problem {
    uint64_t line;
    char msg[SX_ERR_MSG_MAX + 64];
} problem;

typedef struct loader {
    const load_cfg *cfg;
    bool skip; /* --on-error skip */
    sx_client *cl;
    sx_bulk *bulk;
    sx_hmap pending; /* id -> pend */
    sx_token_set tokens;
    idset seen; /* ids put so far */

    uint64_t read, written, deleted, skipped, repeated, truncated;
    problem errors[KEEP_ERRORS]; /* the first problems */
    size_t nerrors;
    uint64_t skipped_lines[KEEP_ERRORS];
    size_t nskipped_lines;

    bool halt;          /* stop reading */
    int code;           /* exit status so far */
    uint64_t stop_line; /* what stopped the load (0: none, or not a line) */
    char stop_msg[SX_ERR_MSG_MAX + 64];

    bool tty;   /* stderr is a terminal: draw progress */
    bool shown; /* the progress line is on screen */
    uint64_t t0, last_draw;
    uint64_t size; /* of a regular file; 0: unknown */
    sx_load_parse_reader *rd;
} loader;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* ------------------------------------------------------------- progress -- */

static void fmt_duration(char *buf, size_t cap, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (s < 60)
        snprintf(buf, cap, "%" PRIu64 ".%" PRIu64 "s", s, (ms % 1000) / 100);
    else if (s < 3600)
        snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, (s / 60) % 60);
}

static uint64_t rate(uint64_t n, uint64_t ms)
{
    return ms ? n * 1000 / ms : n;
}

static void progress_clear(loader *L)
{
    if (!L->shown)
        return;
    fputs("\r\033[K", stderr);
    L->shown = false;
}

static void progress(loader *L)
{
    if (!L->tty)
        return;
    uint64_t now = sx_clock_now_ms();
    if (now - L->last_draw < PROGRESS_MS)
        return;
    L->last_draw = now;
    uint64_t ms = now - L->t0, done = L->written + L->deleted;
    char el[32], eta[64] = "";
    fmt_duration(el, sizeof(el), ms);
    uint64_t got = sx_load_parse_reader_bytes(L->rd);
    if (L->size && got) {
        char left[32];
        uint64_t rest = got < L->size ? L->size - got : 0;
        fmt_duration(left, sizeof(left), (uint64_t)((double)ms * (double)rest / (double)got));
        snprintf(eta, sizeof(eta), "  %3u%%  ETA %s",
                 (unsigned)(got >= L->size ? 100 : got * 100 / L->size), left);
    }
    fprintf(stderr, "\r%" PRIu64 " docs  %" PRIu64 " docs/s  %s elapsed%s\033[K", done,
            rate(done, ms), el, eta);
    fflush(stderr);
    L->shown = true;
}

/* ------------------------------------------------------------- problems -- */

static void note(loader *L, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports a problem at line (0: none) on stderr and keeps it for the summary. */
static void note(loader *L, uint64_t line, const char *fmt, ...)
{
    problem p = {.line = line};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p.msg, sizeof(p.msg), fmt, ap);
    va_end(ap);
    progress_clear(L);
    if (line)
        fprintf(stderr, "shardex: load: line %" PRIu64 ": %s\n", line, p.msg);
    else
        fprintf(stderr, "shardex: load: %s\n", p.msg);
    if (L->nerrors < KEEP_ERRORS)
        L->errors[L->nerrors++] = p;
}

static void skipped(loader *L, uint64_t line)
{
    L->skipped++;
    if (L->nskipped_lines < KEEP_ERRORS)
        L->skipped_lines[L->nskipped_lines++] = line;
}

/* Stops the load with exit status code. The cluster failing outranks any
 * other reason (it is why the rest was not written); otherwise the first kind
 * of reason wins and, among reasons of that kind, the earliest line (batches
 * in flight are reported in any order). */
static void stop(loader *L, int code, uint64_t line, const char *msg)
{
    L->halt = true;
    bool take = L->code == SX_EXIT_OK ||
                (code == SX_EXIT_UNAVAILABLE && L->code != SX_EXIT_UNAVAILABLE) ||
                (code == L->code && line && (!L->stop_line || line < L->stop_line));
    if (!take)
        return;
    L->code = code;
    L->stop_line = line;
    snprintf(L->stop_msg, sizeof(L->stop_msg), "%s", msg);
}

/* --------------------------------------------------------------- pending -- */

static void pending_push(loader *L, const char *id, uint64_t line)
{
    void **slot = sx_hmap_upsert(&L->pending, id, strlen(id), NULL);
    pend *p = *slot;
    if (!p)
        p = *slot = sx_calloc(1, sizeof(*p));
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 2;
        p->lines = sx_realloc(p->lines, p->cap * sizeof(*p->lines));
    }
    p->lines[p->n++] = line;
}

static void pend_free(void *v)
{
    pend *p = v;
    if (p)
        free(p->lines);
    free(p);
}

/* Takes the oldest (or, !oldest, the newest) line of id; 0 if none. */
static uint64_t pending_pop(loader *L, const char *id, bool oldest)
{
    void *v = NULL;
    size_t len = strlen(id);
    if (!sx_hmap_get(&L->pending, id, len, &v) || !v)
        return 0;
    pend *p = v;
    uint64_t line = oldest ? p->lines[0] : p->lines[p->n - 1];
    if (oldest)
        memmove(p->lines, p->lines + 1, (p->n - 1) * sizeof(*p->lines));
    if (--p->n == 0) {
        sx_hmap_remove(&L->pending, id, len, NULL);
        pend_free(p);
    }
    return line;
}

/* ------------------------------------------------------------- batches -- */

/* The request index a server message names ("docs[3]" or "ids[3]"), or -1. */
static long named_index(const char *msg, size_t n)
{
    const char *keys[] = {"docs[", "ids["};
    for (size_t k = 0; k < 2; k++) {
        const char *p = strstr(msg, keys[k]);
        if (!p)
            continue;
        char *end = NULL;
        long i = strtol(p + strlen(keys[k]), &end, 10);
        if (end && *end == ']' && i >= 0 && (size_t)i < n)
            return i;
    }
    return -1;
}

static void lines_span(const uint64_t *lines, size_t n, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i] && lines[i] < *lo)
            *lo = lines[i];
        if (lines[i] > *hi)
            *hi = lines[i];
    }
    if (*lo == UINT64_MAX)
        *lo = 0;
}

/* Records of a batch that were not written: reported, and the load stops
 * (under skip too when the cluster failed: skipping is for bad records). */
static void batch_failed(loader *L, const sx_bulk_result *r, const uint64_t *lines, size_t n,
                         sx_status st, const char *msg)
{
    uint64_t lo, hi;
    lines_span(lines, n, &lo, &hi);
    if (st == SX_ABORTED) {
        note(L, 0, "lines %" PRIu64 "-%" PRIu64 " (%zu records) not sent: the load stopped", lo, hi,
             n);
        return;
    }
    int code = sx_cmd_exit_code(st);
    long k = named_index(msg, n);
    char what[SX_ERR_MSG_MAX + 64];
    if (code == SX_EXIT_UNAVAILABLE)
        snprintf(what, sizeof(what), "%s: %s", sx_status_name(st), msg);
    else
        snprintf(what, sizeof(what), "refused by the server: %s", msg);
    uint64_t at = k >= 0 ? lines[k] : lo;
    if (n == 1)
        note(L, at, "%s; not written", what);
    else if (k >= 0)
        note(L, at, "%s; its batch, lines %" PRIu64 "-%" PRIu64 " (%zu %s), was not written", what,
             lo, hi, n, r->is_delete ? "deletes" : "records");
    else
        note(L, 0, "lines %" PRIu64 "-%" PRIu64 " (%zu %s) not acknowledged: %s", lo, hi, n,
             r->is_delete ? "deletes" : "records", what);
    stop(L, code == SX_EXIT_UNAVAILABLE ? SX_EXIT_UNAVAILABLE : SX_EXIT_REFUSED, at, what);
}

static void send_part(loader *L, const sx_bulk_result *r, const uint64_t *lines, size_t from,
                      size_t n);

/* Operations [from, from+n) of r were refused together with msg (skip mode):
 * the one the message names (or the only one) is skipped and the others are
 * sent again; a refusal that names none is split in halves to find it. The
 * server checks a request whole, so nothing of a refused request was written. */
static void refused_part(loader *L, const sx_bulk_result *r, const uint64_t *lines, size_t from,
                         size_t n, const char *msg)
{
    long k = named_index(msg, n);
    if (k < 0 && n == 1)
        k = 0;
    if (k < 0) {
        send_part(L, r, lines, from, n / 2);
        send_part(L, r, lines, from + n / 2, n - n / 2);
        return;
    }
    note(L, lines[from + (size_t)k], "refused by the server: %s", msg);
    skipped(L, lines[from + (size_t)k]);
    send_part(L, r, lines, from, (size_t)k);
    send_part(L, r, lines, from + (size_t)k + 1, n - (size_t)k - 1);
}

/* Sends r's operations [from, from+n) as one request, from inside the bulk's
 * report: their ids are still held there, so later operations on them wait
 * and the order per id is kept. */
static void send_part(loader *L, const sx_bulk_result *r, const uint64_t *lines, size_t from,
                      size_t n)
{
    if (n == 0)
        return;
    if (L->halt && L->code == SX_EXIT_UNAVAILABLE) {
        batch_failed(L, r, lines + from, n, SX_ABORTED, "");
        return;
    }
    Shardex__V1__WriteToken *tok = sx_calloc(n, sizeof(*tok));
    sx_err err = {0};
    sx_status st;
    if (r->is_delete)
        st = sx_client_delete(L->cl, r->ids + from, n, tok, &err);
    else
        st = sx_client_put(L->cl, (Shardex__V1__Document *const *)r->docs + from, n, tok, &err);
    if (st == SX_OK) {
        for (size_t i = 0; i < n; i++)
            sx_token_set_add(&L->tokens, &tok[i]);
        if (r->is_delete)
            L->deleted += n;
        else
            L->written += n;
    } else if (st == SX_INVALID_ARGUMENT) {
        refused_part(L, r, lines, from, n, err.msg);
    } else {
        batch_failed(L, r, lines + from, n, st, err.msg);
    }
    free(tok);
}

/* The bulk writer's report of one batch (sx_bulk_done_cb). */
static void on_batch(void *arg, const sx_bulk_result *r)
{
    loader *L = arg;
    uint64_t *lines = sx_calloc(r->n ? r->n : 1, sizeof(*lines));
    for (size_t i = 0; i < r->n; i++)
        lines[i] = pending_pop(L, r->ids[i], true);
    if (r->status == SX_OK) {
        for (size_t i = 0; i < r->n; i++)
            sx_token_set_add(&L->tokens, &r->tokens[i]);
        if (r->is_delete)
            L->deleted += r->n;
        else
            L->written += r->n;
    } else if (r->status == SX_INVALID_ARGUMENT && L->skip) {
        refused_part(L, r, lines, 0, r->n, r->err->msg);
    } else {
        batch_failed(L, r, lines, r->n, r->status, r->err->msg);
    }
    free(lines);
}

/* --------------------------------------------------------------- records -- */

static void handle(loader *L, sx_load_parse_rec *rec)
{
    if (rec->kind == SX_LOAD_PARSE_REC_NONE)
        return;
    L->read++;
    L->truncated += rec->truncated;
    if (rec->kind == SX_LOAD_PARSE_REC_BAD) {
        note(L, rec->line, "%s", rec->msg);
        if (L->skip) {
            skipped(L, rec->line);
        } else {
            char m[SX_ERR_MSG_MAX + 64];
            snprintf(m, sizeof(m), "%s", rec->msg);
            stop(L, SX_EXIT_REFUSED, rec->line, m);
        }
        return;
    }
    const char *id = rec->kind == SX_LOAD_PARSE_REC_PUT ? rec->doc->id : rec->id;
    if (rec->kind == SX_LOAD_PARSE_REC_PUT && idset_add(&L->seen, sx_hash64(id, strlen(id))))
        L->repeated++;
    pending_push(L, id, rec->line);
    sx_err err = {0};
    sx_status st = rec->kind == SX_LOAD_PARSE_REC_PUT ? sx_bulk_put(L->bulk, rec->doc, &err)
                                                      : sx_bulk_delete(L->bulk, id, &err);
    if (st != SX_OK) {
        /* Not taken: the bulk stopped after a failed batch, reported already. */
        pending_pop(L, id, false);
        L->halt = true;
    }
}

/* ------------------------------------------------------------- summary -- */

static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    return j ? j : json_string("(not UTF-8)");
}

static char *after_text(const sx_token_set *t)
{
    sx_buf b = {0};
    for (size_t i = 0; i < t->n; i++) {
        char one[48];
        int k = snprintf(one, sizeof(one), "%s%" PRIu32 ":%" PRIu64, i ? "," : "",
                         t->ptrs[i]->partition, t->ptrs[i]->offset);
        sx_buf_append(&b, one, (size_t)k);
    }
    sx_buf_push(&b, '\0');
    return (char *)b.data;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summary_json(const loader *L, const char *input, const char *format,
                         const char *const *ints, uint64_t ms)
{
    uint64_t unwritten = L->read - L->written - L->deleted - L->skipped;
    json_t *j = json_object();
    json_object_set_new(j, "input", jstr(input));
    json_object_set_new(j, "format", jstr(format));
    json_object_set_new(j, "read", json_integer((json_int_t)L->read));
    json_object_set_new(j, "written", json_integer((json_int_t)L->written));
    json_object_set_new(j, "deleted", json_integer((json_int_t)L->deleted));
    json_object_set_new(j, "skipped", json_integer((json_int_t)L->skipped));
    json_object_set_new(j, "not_written", json_integer((json_int_t)unwritten));
    json_object_set_new(j, "repeated_ids", json_integer((json_int_t)L->repeated));
    json_object_set_new(j, "truncated_values", json_integer((json_int_t)L->truncated));
    json_t *sl = json_array();
    for (size_t i = 0; i < L->nskipped_lines; i++)
        json_array_append_new(sl, json_integer((json_int_t)L->skipped_lines[i]));
    json_object_set_new(j, "skipped_lines", sl);
    json_t *errs = json_array();
    for (size_t i = 0; i < L->nerrors; i++) {
        json_t *e = json_object();
        if (L->errors[i].line)
            json_object_set_new(e, "line", json_integer((json_int_t)L->errors[i].line));
        json_object_set_new(e, "message", jstr(L->errors[i].msg));
        json_array_append_new(errs, e);
    }
    json_object_set_new(j, "errors", errs);
    json_object_set_new(j, "stopped", json_boolean(L->code != SX_EXIT_OK));
    if (L->code != SX_EXIT_OK) {
        json_t *s = json_object();
        if (L->stop_line)
            json_object_set_new(s, "line", json_integer((json_int_t)L->stop_line));
        json_object_set_new(s, "reason", jstr(L->stop_msg));
        json_object_set_new(j, "stop", s);
    }
    json_t *in = json_array();
    for (size_t i = 0; ints && ints[i]; i++)
        json_array_append_new(in, jstr(ints[i]));
    json_object_set_new(j, "int_fields", in);
    json_object_set_new(j, "elapsed_ms", json_integer((json_int_t)ms));
    json_object_set_new(j, "docs_per_sec",
                        json_integer((json_int_t)rate(L->written + L->deleted, ms)));
    json_t *toks = json_array();
    for (size_t i = 0; i < L->tokens.n; i++)
        json_array_append_new(toks, json_pack("{s:I, s:I}", "partition",
                                              (json_int_t)L->tokens.ptrs[i]->partition, "offset",
                                              (json_int_t)L->tokens.ptrs[i]->offset));
    json_object_set_new(j, "tokens", toks);
    char *after = after_text(&L->tokens);
    json_object_set_new(j, "after", jstr(after));
    free(after);
    json_object_set_new(j, "exit", json_integer(L->code));
    sx_cmd_print_json(j);
}

static void summary_text(const loader *L, const char *input, const char *format,
                         const char *const *ints, uint64_t ms)
{
    uint64_t unwritten = L->read - L->written - L->deleted - L->skipped;
    char el[32];
    fmt_duration(el, sizeof(el), ms);
    printf("input           %s (%s)\n", input, format);
    printf("records         %" PRIu64 " read: %" PRIu64 " written, %" PRIu64 " deleted, %" PRIu64
           " skipped, %" PRIu64 " not written\n",
           L->read, L->written, L->deleted, L->skipped, unwritten);
    if (L->skipped) {
        printf("skipped lines   ");
        for (size_t i = 0; i < L->nskipped_lines && i < SHOW_SKIPPED; i++)
            printf("%s%" PRIu64, i ? ", " : "", L->skipped_lines[i]);
        if (L->skipped > SHOW_SKIPPED)
            printf(" (and %" PRIu64 " more)", L->skipped - SHOW_SKIPPED);
        printf("\n");
    }
    if (L->repeated)
        printf("repeated ids    %" PRIu64 " (a later record replaced an earlier one)\n",
               L->repeated);
    if (L->truncated)
        printf("truncated       %" PRIu64 " values cut to %d bytes\n", L->truncated,
               SX_STRING_VALUE_MAX_BYTES);
    if (ints && ints[0]) {
        printf("int fields      ");
        for (size_t i = 0; ints[i]; i++)
            printf("%s%s", i ? ", " : "", ints[i]);
        printf("\n");
    }
    if (L->code != SX_EXIT_OK) {
        if (L->stop_line)
            printf("stopped         at line %" PRIu64 ": %s\n", L->stop_line, L->stop_msg);
        else
            printf("stopped         %s\n", L->stop_msg);
    }
    printf("elapsed         %s (%" PRIu64 " docs/s)\n", el, rate(L->written + L->deleted, ms));
    char *after = after_text(&L->tokens);
    printf("after           %s\n", after[0] ? after : "(nothing written)");
    free(after);
    fflush(stdout);
}

/* ----------------------------------------------------------------- setup -- */

/* Splits a comma-separated list into a NULL-terminated array of copies. */
static char **split_names(const char *list, const char *flag, bool *ok)
{
    *ok = true;
    if (!list)
        return NULL;
    char **v = sx_calloc(strlen(list) + 2, sizeof(*v));
    size_t n = 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            sx_cmd_usage_error("load", "%s: an empty name in \"%s\"", flag, list);
            *ok = false;
            break;
        }
        v[n] = sx_malloc(len + 1);
        memcpy(v[n], p, len);
        v[n++][len] = '\0';
        if (!p[len])
            break;
        p += len + 1;
    }
    return v;
}

static void free_names(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* The fields of the cluster's int indexes, as a NULL-terminated array. */
static int int_index_fields(const load_cfg *cfg, sx_client *cl, char ***out)
{
    Shardex__V1__ListIndexesResponse *resp = NULL;
    sx_err err = {0};
    sx_status st = sx_client_list_indexes(cl, &resp, &err);
    if (st != SX_OK)
        return sx_cmd_fail("load: ListIndexes", &cfg->common, st, err.msg);
    char **v = sx_calloc(resp->n_indexes + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < resp->n_indexes; i++) {
        const Shardex__V1__IndexSpec *s = resp->indexes[i]->spec;
        if (!s || s->type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT || !s->field)
            continue;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcasecmp(v[k], s->field) == 0;
        if (!dup)
            v[n++] = sx_strdup(s->field);
    }
    sx_client_free(resp);
    *out = v;
    return SX_EXIT_OK;
}

/* ------------------------------------------------------------------ run -- */

/* Reads every record and hands it to the bulk writer. */
static void read_all(loader *L, bool jsonl, const sx_load_parse_opts *po)
{
    sx_load_parse_deb *deb = jsonl ? NULL : sx_load_parse_deb_new(po);
    for (uint64_t k = 0; !L->halt; k++) {
        if (interrupted) {
            stop(L, SX_LOAD_EXIT_INTERRUPTED, 0, "interrupted");
            break;
        }
        const char *line = NULL;
        size_t len = 0;
        uint64_t lineno = 0;
        sx_load_parse_rec rec = {0};
        sx_load_parse_result lr = sx_load_parse_reader_next(L->rd, &line, &len, &lineno);
        if (lr == SX_LOAD_PARSE_ERROR) {
            if (errno == EINTR)
                continue;
            char m[SX_ERR_MSG_MAX];
            snprintf(m, sizeof(m), "reading the input: %s", strerror(errno));
            note(L, 0, "%s", m);
            stop(L, SX_EXIT_USAGE, 0, m);
            break;
        }
        if (lr == SX_LOAD_PARSE_EOF) {
            if (deb) {
                sx_load_parse_deb_end(deb, &rec);
                handle(L, &rec);
                sx_load_parse_rec_clear(&rec);
            }
            break;
        }
        if (lr == SX_LOAD_PARSE_TOO_LONG) {
            char m[96];
            snprintf(m, sizeof(m), "the line is longer than %zu bytes", len);
            if (deb) {
                sx_load_parse_deb_feed_bad(deb, lineno, m);
                continue;
            }
            rec.kind = SX_LOAD_PARSE_REC_BAD;
            rec.line = lineno;
            snprintf(rec.msg, sizeof(rec.msg), "%s", m);
        } else if (jsonl) {
            sx_load_parse_json_line(po, line, len, lineno, &rec);
        } else {
            sx_load_parse_deb_feed(deb, line, len, lineno, &rec);
        }
        handle(L, &rec);
        sx_load_parse_rec_clear(&rec);
        if ((k & 63) == 0)
            progress(L);
    }
    sx_load_parse_deb_free(deb);
}

int sx_cmd_load(const sx_cli *cli, int argc, char **argv)
{
    load_cfg cfg = {.common = sx_cmd_common_init(cli),
                    .format = "auto",
                    .id_field = "Package",
                    .batch = 500,
                    .inflight = 4,
                    .on_error = "stop"};
    load_cfg defaults = cfg;
    sx_cmd_args args;
    int code = sx_cmd_parse("load", &load_spec, &cfg, &defaults, argc, argv, NULL, &args);
    if (code != SX_CMD_CONTINUE)
        return code;
    const char *path = args.npos ? args.pos[0] : "-";
    size_t npos = args.npos;
    sx_cmd_args_free(&args);
    if (npos > 1)
        return sx_cmd_usage_error("load", "one input at most (a file, or - for standard input)");
    if (cfg.id_field[0] == '\0')
        return sx_cmd_usage_error("load", "--id-field: empty");

    bool ok_ints = true, ok_fields = true;
    char **ints = split_names(cfg.int_fields, "--int-fields", &ok_ints);
    char **only = split_names(cfg.fields, "--fields", &ok_fields);
    char **index_ints = NULL;
    loader L = {.cfg = &cfg, .skip = strcmp(cfg.on_error, "skip") == 0};
    sx_load_parse_reader *rd = NULL;
    sx_client *cl = NULL;
    int fd = -1;
    bool stdin_input = strcmp(path, "-") == 0;
    const char *input = stdin_input ? "(standard input)" : path;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    struct sigaction sa_old, sa = {.sa_handler = on_sigint};
    bool handler = false;
    if (!ok_ints || !ok_fields) {
        code = SX_EXIT_USAGE;
        goto out;
    }

    fd = stdin_input ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        fprintf(stderr, "shardex: load: %s: %s\n", path,
                fd >= 0 && S_ISDIR(st.st_mode) ? "is a directory" : strerror(errno));
        code = SX_EXIT_USAGE;
        goto out;
    }
    L.size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    rd = L.rd = sx_load_parse_reader_new(fd, 0);
    bool jsonl;
    if (strcmp(cfg.format, "auto") != 0)
        jsonl = strcmp(cfg.format, "jsonl") == 0;
    else if (!stdin_input &&
             (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json")))
        jsonl = true;
    else
        jsonl = sx_load_parse_reader_peek(rd) == '{';
    const char *format = jsonl ? "jsonl" : "debian";

    /* Ctrl-C goes to this thread (gRPC's threads inherit the mask) and stops
     * the load between records, with a summary. */
    pthread_sigmask(SIG_BLOCK, &block, &old);
    code = sx_cmd_connect("load", &cfg.common, &cl);
    if (code == SX_EXIT_OK && !jsonl && !ints)
        code = int_index_fields(&cfg, cl, &index_ints);
    if (code != SX_EXIT_OK) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        goto out;
    }
    L.cl = cl;
    sx_bulk_opts bo = {.batch_docs = cfg.batch,
                       .max_inflight = cfg.inflight,
                       .keep_going = L.skip,
                       .done = on_batch,
                       .arg = &L};
    sx_err err = {0};
    if (sx_bulk_open(cl, &bo, &L.bulk, &err) != SX_OK) {
        code = sx_cmd_fail("load", &cfg.common, SX_INVALID_ARGUMENT, err.msg);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        goto out;
    }
    interrupted = 0;
    handler = sigaction(SIGINT, &sa, &sa_old) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    sx_load_parse_opts po = {.id_field = cfg.id_field,
                             .int_fields = (const char *const *)ints,
                             .int_if_parses = (const char *const *)index_ints,
                             .only_fields = (const char *const *)only,
                             .truncate = cfg.truncate,
                             /* A test hook: the server's own refusals, provoked. */
                             .no_limits = getenv("SHARDEX_LOAD_NO_LIMITS") != NULL};
    L.tty = isatty(STDERR_FILENO);
    L.t0 = L.last_draw = sx_clock_now_ms(); /* the first draw after PROGRESS_MS */
    read_all(&L, jsonl, &po);
    sx_bulk_close(L.bulk, NULL); /* every batch reported to on_batch */
    L.bulk = NULL;
    if (interrupted && L.code == SX_EXIT_OK)
        stop(&L, SX_LOAD_EXIT_INTERRUPTED, 0, "interrupted");
    uint64_t ms = sx_clock_now_ms() - L.t0;
    progress_clear(&L);
    /* Batches are reported in any order: show the lines in file order. */
    qsort(L.skipped_lines, L.nskipped_lines, sizeof(L.skipped_lines[0]), cmp_u64);
    const char *const *shown = (const char *const *)(ints ? ints : index_ints);
    if (cfg.common.json)
        summary_json(&L, input, format, shown, ms);
    else
        summary_text(&L, input, format, shown, ms);
    code = L.code;
out:
    if (handler)
        sigaction(SIGINT, &sa_old, NULL);
    sx_bulk_close(L.bulk, NULL);
    if (cl)
        sx_cmd_disconnect(cl);
    sx_load_parse_reader_free(rd);
    if (fd > STDIN_FILENO)
        close(fd);
    sx_hmap_free(&L.pending, pend_free);
    sx_token_set_free(&L.tokens);
    free(L.seen.v);
    free_names(ints);
    free_names(only);
    free_names(index_ints);
    return code;
}
