/* load_parse.c: lines, JSON Lines and Debian stanzas for `shardex load` (see
 * load_parse.h).
 *
 * Every document is checked with the server's own checks (common/validate.h,
 * against common/sx_limits.h) as it is built: the id first, each field as it
 * is added (so that a problem is reported at its field's line), the whole
 * document last, so that a record the server would refuse is reported at its
 * line and never sent. tests/unit/test_load_parse.c holds both to the same
 * answers.
 */
#include "load_parse.h"

#include "mem.h"
#include "sx_limits.h"
#include "validate.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* First allocation of the line reader's buffer; it grows to max_line. */
#define READ_CHUNK (64u * 1024)

/* ----------------------------------------------------------------- utf-8 -- */

/* The longest prefix of s[0..n) of at most max bytes that ends on a sequence
 * boundary (s is valid UTF-8). */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t i = max;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

bool sx_load_parse_parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/* -------------------------------------------------------------- messages -- */

static sx_load_parse_rec_kind bad(sx_load_parse_rec *r, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Turns r into a BAD record at line, freeing what it held. */
static sx_load_parse_rec_kind bad(sx_load_parse_rec *r, uint64_t line, const char *fmt, ...)
{
    sx_doc_free(r->doc);
    free(r->id);
    r->doc = NULL;
    r->id = NULL;
    r->kind = SX_LOAD_PARSE_REC_BAD;
    r->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
    return SX_LOAD_PARSE_REC_BAD;
}

void sx_load_parse_rec_clear(sx_load_parse_rec *r)
{
    sx_doc_free(r->doc);
    free(r->id);
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------- documents -- */

static bool in_list(const char *const *list, const char *name, bool ci)
{
    for (; list && *list; list++)
        if (ci ? strcasecmp(*list, name) == 0 : strcmp(*list, name) == 0)
            return true;
    return false;
}

/* Checks an id (len bytes, NUL-terminated) as the server will; if it is
 * refused, r becomes BAD at line. */
static bool id_ok(sx_load_parse_rec *r, uint64_t line, const char *id, size_t len)
{
    sx_err err = {0};
    char q[SX_VALIDATE_QUOTE_BUF];
    if (sx_validate_id(id, &err) == SX_OK)
        return true;
    bad(r, line, "%s%s%s", err.msg, len ? ": " : "", len ? sx_validate_quote(q, id, len) : "");
    return false;
}

/* A document being built from a record, with the server's checks. */
typedef struct builder {
    const sx_load_parse_opts *o;
    bool ci; /* names compare case-insensitively (Debian) */
    sx_load_parse_rec *r;
    uint64_t line; /* where a problem is reported */
} builder;

/* Starts r as a PUT of id (len bytes, checked). */
static bool build_start(builder *b, const char *id, size_t len)
{
    if (!b->o->no_limits && !id_ok(b->r, b->line, id, len))
        return false;
    b->r->kind = SX_LOAD_PARSE_REC_PUT;
    b->r->doc = sx_doc_new(id);
    return true;
}

/* Checks the field just added (the document's last) as the server will;
 * `hint` ends the message of a refusal. */
static bool check_added(builder *b, const char *hint)
{
    const Shardex__V1__Document *d = b->r->doc;
    sx_err err = {0};
    if (b->o->no_limits ||
        sx_validate_field(d->fields[d->n_fields - 1], d->n_fields - 1, &err) == SX_OK)
        return true;
    bad(b->r, b->line, "%s%s", err.msg, hint);
    return false;
}

/* The document stops growing at the server's count limit: a line of 8 MiB
 * could hold millions of values, and they are not all allocated to be
 * refused. */
static bool room_for_value(builder *b, const char *name)
{
    char q[SX_VALIDATE_QUOTE_BUF];
    if (b->r->doc->n_fields < SX_DOC_FIELDS_MAX || b->o->no_limits)
        return true;
    bad(b->r, b->line, "more than %d values (at field \"%s\"); a document holds at most %d",
        SX_DOC_FIELDS_MAX, sx_validate_quote(q, name, strlen(name)), SX_DOC_FIELDS_MAX);
    return false;
}

static bool add_int(builder *b, const char *name, int64_t v)
{
    if (!room_for_value(b, name))
        return false;
    sx_doc_add_int(b->r->doc, name, v);
    return check_added(b, "");
}

/* Adds a string value s (len bytes, NUL-terminated) of field name, typed by
 * the int options, and checks it. */
static bool add_str(builder *b, const char *name, const char *s, size_t len)
{
    char q[SX_VALIDATE_QUOTE_BUF], qn[SX_VALIDATE_QUOTE_BUF];
    bool strict = in_list(b->o->int_fields, name, b->ci);
    if (strict || in_list(b->o->int_if_parses, name, b->ci)) {
        int64_t v;
        if (sx_load_parse_parse_int(s, len, &v))
            return add_int(b, name, v);
        if (strict) {
            bad(b->r, b->line, "field \"%s\": \"%s\" is not an integer (an int field)",
                sx_validate_quote(qn, name, strlen(name)), sx_validate_quote(q, s, len));
            return false;
        }
    }
    /* Whole and valid before it is cut at a character boundary (truncate). */
    size_t at;
    if (memchr(s, '\0', len)) {
        bad(b->r, b->line, "field \"%s\": value holds a NUL byte",
            sx_validate_quote(qn, name, strlen(name)));
        return false;
    }
    if ((at = sx_utf8_invalid_at(s, len)) != len) {
        bad(b->r, b->line, "field \"%s\": string value is not valid UTF-8 (at byte %zu)",
            sx_validate_quote(qn, name, strlen(name)), at);
        return false;
    }
    if (!room_for_value(b, name))
        return false;
    bool over = len > SX_STRING_VALUE_MAX_BYTES && !b->o->no_limits;
    if (!over || !b->o->truncate) {
        sx_doc_add_str(b->r->doc, name, s);
        return check_added(b, over ? " (--truncate cuts such values)" : "");
    }
    size_t cut = utf8_cut(s, len, SX_STRING_VALUE_MAX_BYTES);
    char *t = sx_memdup(s, cut + 1);
    t[cut] = '\0';
    sx_doc_add_str(b->r->doc, name, t);
    free(t);
    b->r->truncated++;
    return check_added(b, "");
}

/* The checks of the whole document, last (as the server's): its fields passed
 * theirs as they were added, so what is left is its packed size. */
static bool build_end(builder *b)
{
    sx_err err = {0};
    if (b->o->no_limits || sx_validate_document_unnamed(b->r->doc, &err) == SX_OK)
        return true;
    bad(b->r, b->line, "%s", err.msg);
    return false;
}

/* ------------------------------------------------------------ JSON Lines -- */

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static const char *jtype(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or an exponent";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

/* The text of an id given as a string or an integer (unless o->string_ids),
 * into buf; NULL (and r BAD) otherwise. */
static const char *json_id(const sx_load_parse_opts *o, const json_t *j, const char *key, char *buf,
                           size_t cap, size_t *len, sx_load_parse_rec *r)
{
    if (json_is_string(j)) {
        *len = json_string_length(j);
        return json_string_value(j);
    }
    if (json_is_integer(j) && !o->string_ids) {
        *len = (size_t)snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return buf;
    }
    bad(r, r->line, "\"%s\" is %s; an id is a string%s", key, jtype(j),
        o->string_ids ? "" : " (or an integer)");
    return NULL;
}

/* One value (not an array) of field name. */
static bool json_value(builder *b, const char *name, const json_t *v, bool in_array)
{
    char qn[SX_VALIDATE_QUOTE_BUF];
    if (json_is_string(v))
        return add_str(b, name, json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return add_int(b, name, (int64_t)json_integer_value(v));
    bad(b->r, b->line, "field \"%s\": %s%s; values are strings or integers%s",
        sx_validate_quote(qn, name, strlen(name)), in_array ? "an element is " : "value is ",
        jtype(v), in_array ? "" : ", or an array of them");
    return false;
}

sx_load_parse_rec_kind sx_load_parse_json_line(const sx_load_parse_opts *opts, const char *line,
                                               size_t len, uint64_t lineno, sx_load_parse_rec *out)
{
    memset(out, 0, sizeof(*out));
    out->line = lineno;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (blank(line, len))
        return SX_LOAD_PARSE_REC_NONE;
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) /* jansson quotes the input near the error: up to its first byte that is not UTF-8 */
        return bad(out, lineno, "bad JSON at column %d: %.*s", je.column,
                   (int)sx_utf8_invalid_at(je.text, strlen(je.text)), je.text);
    char q[SX_VALIDATE_QUOTE_BUF], idbuf[32];
    if (!json_is_object(j)) {
        bad(out, lineno,
            "a record is a JSON object ({\"id\": ..., \"fields\": {...}} or "
            "{\"delete\": ...}), not %s",
            jtype(j));
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "id") != 0 && strcmp(key, "fields") != 0 && strcmp(key, "delete") != 0) {
            bad(out, lineno,
                "unknown key \"%s\"; a record has \"id\" and \"fields\", or \"delete\"",
                sx_validate_quote(q, key, strlen(key)));
            goto done;
        }
    }
    json_t *del = json_object_get(j, "delete"), *jid = json_object_get(j, "id");
    json_t *fields = json_object_get(j, "fields");
    size_t idlen = 0;
    const char *id;
    if (del) {
        if (jid || fields) {
            bad(out, lineno, "a delete record has only \"delete\"");
            goto done;
        }
        if (!(id = json_id(opts, del, "delete", idbuf, sizeof(idbuf), &idlen, out)))
            goto done;
        if (!id_ok(out, lineno, id, idlen))
            goto done;
        out->kind = SX_LOAD_PARSE_REC_DELETE;
        out->id = sx_strdup(id);
        goto done;
    }
    if (!jid) {
        bad(out, lineno,
            "no \"id\"; a record is {\"id\": ..., \"fields\": {...}} or "
            "{\"delete\": ...}");
        goto done;
    }
    if (!(id = json_id(opts, jid, "id", idbuf, sizeof(idbuf), &idlen, out)))
        goto done;
    if (fields && !json_is_object(fields)) {
        bad(out, lineno, "\"fields\" is %s; it is an object of name: value", jtype(fields));
        goto done;
    }
    builder b = {.o = opts, .ci = false, .r = out, .line = lineno};
    if (!build_start(&b, id, idlen))
        goto done;
    json_object_foreach(fields, key, v)
    {
        if (opts->only_fields && !in_list(opts->only_fields, key, false))
            continue;
        if (!json_is_array(v)) {
            if (!json_value(&b, key, v, false))
                goto done;
            continue;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_value(&b, key, e, true))
                goto done;
        }
    }
    build_end(&b);
done:
    json_decref(j);
    return out->kind;
}

/* ---------------------------------------------------------------- Debian -- */

/* One field of the stanza being read. */
typedef struct dfield {
    char name[SX_FIELD_NAME_MAX_BYTES + 1];
    sx_buf value; /* joined lines, NUL-terminated when the stanza ends */
    uint64_t line;
} dfield;

struct sx_load_parse_deb {
    const sx_load_parse_opts *o;
    bool open;         /* a stanza has started */
    uint64_t first;    /* its first line */
    uint64_t last;     /* its last line so far */
    size_t bytes;      /* of its lines, bounded by SX_LOAD_MAX_LINE */
    bool bad;          /* a problem was found; the rest of the stanza is only skipped */
    uint64_t bad_line; /* of the first problem */
    char msg[SX_ERR_MSG_MAX];
    dfield *f; /* n in use; their value buffers are kept across stanzas */
    size_t n, cap;
};

sx_load_parse_deb *sx_load_parse_deb_new(const sx_load_parse_opts *opts)
{
    sx_load_parse_deb *d = sx_calloc(1, sizeof(*d));
    d->o = opts;
    return d;
}

void sx_load_parse_deb_free(sx_load_parse_deb *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->cap; i++)
        sx_buf_free(&d->f[i].value);
    free(d->f);
    free(d);
}

static void deb_bad(sx_load_parse_deb *d, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void deb_bad(sx_load_parse_deb *d, uint64_t line, const char *fmt, ...)
{
    if (d->bad)
        return;
    d->bad = true;
    d->bad_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
}

static void deb_open(sx_load_parse_deb *d, uint64_t lineno)
{
    if (d->open)
        return;
    d->open = true;
    d->first = lineno;
    d->bytes = 0;
    d->bad = false;
    d->n = 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static void deb_field(sx_load_parse_deb *d, const char *line, size_t len, uint64_t lineno)
{
    char q[SX_VALIDATE_QUOTE_BUF];
    const char *colon = memchr(line, ':', len);
    if (!colon) {
        deb_bad(d, lineno, "expected \"Name: value\" or a continuation line, got \"%s\"",
                sx_validate_quote(q, line, len));
        return;
    }
    size_t nlen = (size_t)(colon - line);
    if (nlen == 0) {
        deb_bad(d, lineno, "a field name is empty (the line starts with ':')");
        return;
    }
    if (nlen > SX_FIELD_NAME_MAX_BYTES) {
        deb_bad(d, lineno, "field name \"%s\" is %zu bytes; the limit is %d",
                sx_validate_quote(q, line, nlen), nlen, SX_FIELD_NAME_MAX_BYTES);
        return;
    }
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c <= 0x20 || c >= 0x7F || (i == 0 && c == '-')) {
            deb_bad(d, lineno,
                    "field name \"%s\": %s at byte %zu; names are printable ASCII without ':' or "
                    "spaces, not starting with '-' (deb822)",
                    sx_validate_quote(q, line, nlen),
                    c == ' ' || c == '\t' ? "a space"
                    : c >= 0x80           ? "a non-ASCII byte"
                                          : "a bad byte",
                    i);
            return;
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        if (strlen(d->f[i].name) == nlen && strncasecmp(d->f[i].name, line, nlen) == 0) {
            deb_bad(d, lineno, "field \"%s\" repeats (first at line %" PRIu64 ")",
                    sx_validate_quote(q, line, nlen), d->f[i].line);
            return;
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 32;
        d->f = sx_realloc(d->f, cap * sizeof(*d->f));
        memset(d->f + d->cap, 0, (cap - d->cap) * sizeof(*d->f));
        d->cap = cap;
    }
    dfield *f = &d->f[d->n++];
    memcpy(f->name, line, nlen);
    f->name[nlen] = '\0';
    f->line = lineno;
    sx_buf_reset(&f->value);
    const char *v = colon + 1, *end = line + len;
    while (v < end && is_space(*v))
        v++;
    while (end > v && is_space(end[-1]))
        end--;
    sx_buf_append(&f->value, v, (size_t)(end - v));
}

sx_load_parse_rec_kind sx_load_parse_deb_feed(sx_load_parse_deb *d, const char *line, size_t len,
                                              uint64_t lineno, sx_load_parse_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (blank(line, len))
        return d->open ? sx_load_parse_deb_end(d, out) : SX_LOAD_PARSE_REC_NONE;
    if (line[0] == '#')
        return SX_LOAD_PARSE_REC_NONE; /* a comment, inside a stanza or not */
    deb_open(d, lineno);
    d->last = lineno;
    if (d->bad)
        return SX_LOAD_PARSE_REC_NONE;
    d->bytes += len + 1;
    if (d->bytes > SX_LOAD_MAX_LINE) {
        deb_bad(d, lineno, "the stanza is over %u bytes", SX_LOAD_MAX_LINE);
        return SX_LOAD_PARSE_REC_NONE;
    }
    if (memchr(line, '\0', len)) {
        deb_bad(d, lineno, "the line holds a NUL byte");
        return SX_LOAD_PARSE_REC_NONE;
    }
    if (is_space(line[0])) {
        if (d->n == 0) {
            deb_bad(d, lineno,
                    "a continuation line (starting with a space or tab) before any "
                    "field");
            return SX_LOAD_PARSE_REC_NONE;
        }
        sx_buf *v = &d->f[d->n - 1].value;
        while (len > 1 && is_space(line[len - 1]))
            len--;
        sx_buf_push(v, '\n');
        sx_buf_append(v, line + 1, len - 1);
        return SX_LOAD_PARSE_REC_NONE;
    }
    deb_field(d, line, len, lineno);
    return SX_LOAD_PARSE_REC_NONE;
}

void sx_load_parse_deb_feed_bad(sx_load_parse_deb *d, uint64_t lineno, const char *msg)
{
    deb_open(d, lineno);
    d->last = lineno;
    deb_bad(d, lineno, "%s", msg);
}

sx_load_parse_rec_kind sx_load_parse_deb_end(sx_load_parse_deb *d, sx_load_parse_rec *out)
{
    memset(out, 0, sizeof(*out));
    if (!d->open)
        return SX_LOAD_PARSE_REC_NONE;
    d->open = false;
    out->line = d->first;
    if (d->bad)
        return bad(out, d->bad_line, "%s", d->msg);
    const sx_load_parse_opts *o = d->o;
    char q[SX_VALIDATE_QUOTE_BUF];
    const dfield *idf = NULL;
    for (size_t i = 0; i < d->n && !idf; i++)
        if (strcasecmp(d->f[i].name, o->id_field) == 0)
            idf = &d->f[i];
    if (!idf)
        return bad(out, d->first,
                   "the stanza (lines %" PRIu64 "-%" PRIu64 ") has no \"%s\" field "
                   "for the id",
                   d->first, d->last, sx_validate_quote(q, o->id_field, strlen(o->id_field)));
    for (size_t i = 0; i < d->n; i++)
        sx_buf_push(&d->f[i].value, '\0');
    builder b = {.o = o, .ci = true, .r = out, .line = idf->line};
    char idname[SX_VALIDATE_QUOTE_BUF];
    sx_validate_quote(idname, idf->name, strlen(idf->name));
    if (!build_start(&b, (const char *)idf->value.data, idf->value.len - 1)) {
        /* Name the field the id came from. */
        char msg[SX_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", out->msg);
        return bad(out, idf->line, "field \"%s\" (the id): %s", idname, msg);
    }
    for (size_t i = 0; i < d->n; i++) {
        const dfield *f = &d->f[i];
        if (o->only_fields && !in_list(o->only_fields, f->name, true))
            continue;
        b.line = f->line;
        if (!add_str(&b, f->name, (const char *)f->value.data, f->value.len - 1))
            return SX_LOAD_PARSE_REC_BAD;
    }
    b.line = d->first;
    build_end(&b);
    return out->kind;
}

/* ---------------------------------------------------------------- lines -- */

struct sx_load_parse_reader {
    int fd;
    size_t max; /* longest line returned */
    char *buf;  /* [start, end) not yet returned */
    size_t cap, start, end;
    size_t scanned; /* bytes after start known to hold no newline */
    bool eof;
    bool bom_done;   /* the start of the input was checked for a byte order mark */
    bool discarding; /* inside a line longer than max: dropping bytes up to its newline */
    uint64_t bytes, lineno;
};

sx_load_parse_reader *sx_load_parse_reader_new(int fd, size_t max_line)
{
    sx_load_parse_reader *r = sx_calloc(1, sizeof(*r));
    r->fd = fd;
    r->max = max_line ? max_line : SX_LOAD_MAX_LINE;
    r->cap = READ_CHUNK;
    r->buf = sx_malloc(r->cap);
    return r;
}

void sx_load_parse_reader_free(sx_load_parse_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

uint64_t sx_load_parse_reader_bytes(const sx_load_parse_reader *r)
{
    return r->bytes;
}

/* Reads more input after end, compacting or growing the buffer (up to a
 * line's worth and a chunk). 0 on success or end of input, -1 on error. */
static int fill(sx_load_parse_reader *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        r->cap = r->cap * 2 > r->max + READ_CHUNK ? r->max + READ_CHUNK : r->cap * 2;
        r->buf = sx_realloc(r->buf, r->cap);
    }
    ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
    if (n < 0)
        return -1;
    if (n == 0)
        r->eof = true;
    r->end += (size_t)n;
    if (!r->bom_done && (r->end >= 3 || r->eof)) {
        r->bom_done = true;
        if (r->end >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) {
            r->start = 3;
            r->bytes = 3;
        }
    }
    return 0;
}

sx_load_parse_result sx_load_parse_reader_next(sx_load_parse_reader *r, const char **line,
                                               size_t *len, uint64_t *lineno)
{
    for (;;) {
        char *from = r->buf + r->start;
        size_t have = r->end - r->start;
        char *nl = r->bom_done ? memchr(from + r->scanned, '\n', have - r->scanned) : NULL;
        if (nl || (r->eof && (have > 0 || r->discarding))) {
            size_t n = nl ? (size_t)(nl - from) : have, used = nl ? n + 1 : n;
            r->start += used;
            r->bytes += used;
            r->scanned = 0;
            *lineno = ++r->lineno;
            if (r->discarding) {
                r->discarding = false;
                *line = NULL;
                *len = r->max;
                return SX_LOAD_PARSE_TOO_LONG;
            }
            if (n > r->max) {
                *line = NULL;
                *len = r->max;
                return SX_LOAD_PARSE_TOO_LONG;
            }
            if (n > 0 && from[n - 1] == '\r')
                n--;
            *line = from;
            *len = n;
            return SX_LOAD_PARSE_LINE;
        }
        if (r->eof)
            return SX_LOAD_PARSE_EOF;
        r->scanned = r->bom_done ? have : 0;
        if (r->discarding || have > r->max) {
            /* Past the limit: the line is reported, never held whole. */
            r->discarding = true;
            r->bytes += have;
            r->start = r->end = r->scanned = 0;
        }
        if (fill(r) < 0)
            return SX_LOAD_PARSE_ERROR;
    }
}

int sx_load_parse_reader_peek(sx_load_parse_reader *r)
{
    size_t i = 0;
    for (;;) {
        for (; r->bom_done && r->start + i < r->end; i++) {
            char c = r->buf[r->start + i];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
                return (unsigned char)c;
        }
        if (r->eof || r->end - r->start >= r->max)
            return -1;
        size_t before = r->start;
        if (fill(r) < 0)
            return -1;
        if (r->start != before) /* a byte order mark was dropped */
            i = 0;
    }
}
