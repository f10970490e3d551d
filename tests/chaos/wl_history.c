/* wl_history.c: the chaos workload's history lines, formatted and parsed
 * (format in wl_history.h). No I/O but sx_hist_read's reading of one file.
 */
#include "wl_history.h"

#include "hash.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_TAG "# sx_chaos_workload history 1 "
#define TRAILER_TAG "# end "
/* Fields of an operation line before the message. */
#define OP_FIELDS 10

static const char *const kind_names[] = {"put", "overwrite", "delete", "bad"};
static const char *const outcome_names[] = {"ok", "fail", "unknown"};

const char *sx_hist_kind_name(sx_hist_kind k)
{
    return kind_names[k];
}

const char *sx_hist_outcome_name(sx_hist_outcome o)
{
    return outcome_names[o];
}

const char *sx_hist_group(const char *value, uint32_t groups, char *out, size_t cap)
{
    uint64_t h = sx_hash64(value, strlen(value));
    snprintf(out, cap, "g%" PRIu64, groups ? h % groups : 0);
    return out;
}

void sx_hist_format_header(const sx_history *h, char *out, size_t cap)
{
    snprintf(out, cap,
             HEADER_TAG "run=%s seed=%" PRIu64 " writers=%u keys=%u groups=%u index=%s t0=%" PRIu64
                        "\n",
             h->run, h->seed, h->writers, h->keys, h->groups, h->index, h->t0_ms);
}

void sx_hist_format(const sx_hist_op *op, char *out, size_t cap)
{
    char tok[48] = "-";
    if (op->has_token)
        snprintf(tok, sizeof(tok), "%u:%" PRIu64, op->partition, op->offset);
    int n = snprintf(out, cap, "%u %" PRIu64 " %s %s %s %" PRIu64 " %" PRIu64 " %s %s %s ",
                     op->writer, op->op, kind_names[op->kind], op->key, op->value ? op->value : "-",
                     op->start_ms, op->end_ms, outcome_names[op->outcome], tok, op->status);
    if (n < 0 || (size_t)n + 2 >= cap)
        n = cap > 2 ? (int)cap - 2 : 0;
    size_t at = (size_t)n;
    const char *m = op->msg && op->msg[0] ? op->msg : "-";
    for (; *m && at + 2 < cap; m++)
        out[at++] = (*m == '\n' || *m == '\r') ? ' ' : *m;
    out[at++] = '\n';
    out[at] = '\0';
}

/* ----------------------------------------------------------------- parse -- */

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int index_of(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* One "name=value" of the header or trailer. */
static bool header_field(sx_history *h, const char *name, const char *v)
{
    char *str = strcmp(name, "run") == 0 ? h->run : strcmp(name, "index") == 0 ? h->index : NULL;
    if (str) { /* both are char[64] */
        if (!*v || strlen(v) >= sizeof(h->run))
            return false;
        strcpy(str, v);
        return true;
    }
    if (strcmp(name, "seed") == 0)
        return parse_u64(v, &h->seed);
    if (strcmp(name, "writers") == 0)
        return parse_u32(v, &h->writers);
    if (strcmp(name, "keys") == 0)
        return parse_u32(v, &h->keys);
    if (strcmp(name, "groups") == 0)
        return parse_u32(v, &h->groups);
    if (strcmp(name, "t0") == 0)
        return parse_u64(v, &h->t0_ms);
    if (strcmp(name, "t1") == 0)
        return parse_u64(v, &h->t1_ms);
    return true; /* unknown fields: from a later version, ignored */
}

static sx_status parse_fields(sx_history *h, char *rest, sx_err *err)
{
    char *save = NULL;
    for (char *f = strtok_r(rest, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(f, '=');
        if (!eq)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "header: \"%s\" is not name=value", f);
        *eq = '\0';
        if (!header_field(h, f, eq + 1))
            return sx_err_set(err, SX_INVALID_ARGUMENT, "header: bad value of %s", f);
    }
    return SX_OK;
}

static bool parse_token(sx_hist_op *op, const char *s)
{
    op->has_token = false;
    if (strcmp(s, "-") == 0)
        return true;
    const char *colon = strchr(s, ':');
    char part[16];
    if (!colon || (size_t)(colon - s) >= sizeof(part))
        return false;
    memcpy(part, s, (size_t)(colon - s));
    part[colon - s] = '\0';
    op->has_token = parse_u32(part, &op->partition) && parse_u64(colon + 1, &op->offset);
    return op->has_token;
}

/* Splits line into OP_FIELDS space-separated fields and the message after them. */
static bool split_op(char *line, char *f[OP_FIELDS], char **msg)
{
    char *p = line;
    for (int i = 0; i < OP_FIELDS; i++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return false;
        f[i] = p;
        while (*p && *p != ' ')
            p++;
        if (*p)
            *p++ = '\0';
    }
    while (*p == ' ')
        p++;
    *msg = p;
    return true;
}

static sx_status parse_op(sx_history *h, char *line, sx_err *err)
{
    char *f[OP_FIELDS], *msg;
    if (!split_op(line, f, &msg))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%d fields expected", OP_FIELDS);
    sx_hist_op op = {0};
    int kind = index_of(f[2], kind_names, 4), outcome = index_of(f[7], outcome_names, 3);
    if (!parse_u32(f[0], &op.writer) || !parse_u64(f[1], &op.op) || kind < 0 ||
        !parse_u64(f[5], &op.start_ms) || !parse_u64(f[6], &op.end_ms) || outcome < 0 ||
        !parse_token(&op, f[8]))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "a field is malformed");
    op.kind = (sx_hist_kind)kind;
    op.outcome = (sx_hist_outcome)outcome;
    if ((op.kind == SX_HIST_DELETE) != (strcmp(f[4], "-") == 0))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "a delete has value \"-\", a put has a value");
    if (op.outcome == SX_HIST_OK && !op.has_token)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "an ok operation needs a token");
    op.key = sx_arena_strdup(&h->arena, f[3]);
    op.value = op.kind == SX_HIST_DELETE ? NULL : sx_arena_strdup(&h->arena, f[4]);
    op.status = sx_arena_strdup(&h->arena, f[9]);
    op.msg = sx_arena_strdup(&h->arena, strcmp(msg, "-") == 0 ? "" : msg);
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->ops = sx_realloc(h->ops, h->cap * sizeof(*h->ops));
    }
    h->ops[h->n++] = op;
    return SX_OK;
}

sx_status sx_hist_parse_line(sx_history *h, char *line, sx_err *err)
{
    size_t hl = strlen(HEADER_TAG), tl = strlen(TRAILER_TAG);
    if (strncmp(line, HEADER_TAG, hl) == 0)
        return parse_fields(h, line + hl, err);
    if (strncmp(line, TRAILER_TAG, tl) == 0)
        return parse_fields(h, line + tl, err);
    if (line[0] == '#' || line[0] == '\0')
        return SX_OK;
    if (h->writers == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "an operation before the header");
    return parse_op(h, line, err);
}

sx_status sx_hist_read(const char *path, sx_history *h, sx_err *err)
{
    memset(h, 0, sizeof(*h));
    FILE *f = fopen(path, "r");
    if (!f)
        return sx_err_set(err, SX_NOT_FOUND, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    sx_status st = SX_OK;
    for (size_t no = 1; st == SX_OK && (len = getline(&line, &cap, f)) >= 0; no++) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        st = sx_hist_parse_line(h, line, err);
        if (st != SX_OK)
            sx_err_prefix(err, "%s:%zu", path, no);
    }
    free(line);
    fclose(f);
    if (st == SX_OK && h->writers == 0)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: no header line", path);
    if (st != SX_OK)
        sx_hist_free(h);
    return st;
}

void sx_hist_free(sx_history *h)
{
    free(h->ops);
    sx_arena_free(&h->arena);
    memset(h, 0, sizeof(*h));
}
