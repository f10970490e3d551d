/* test_load_parse.c: unit tests for client/load_parse.h, the input side of
 * `shardex load`.
 *
 *  - JSON Lines: strings, ints (negative, int64 bounds), arrays, integer ids,
 *    deletes, blank lines and CRLF; floats, booleans, null, nested objects
 *    and arrays, unknown and duplicate keys, bad JSON refused with messages;
 *    --int-fields, --fields, --truncate at a UTF-8 boundary;
 *  - the server's limits at their boundaries (ids, names, values, values per
 *    document, packed size): the parser accepts exactly what
 *    common/validate.c accepts, checked against it;
 *  - Debian stanzas: several, continuation lines, blank and whitespace-only
 *    separators, trailing blank lines, comments, a stanza without the id
 *    field (and the next one still read), bad lines at the right line
 *    numbers, repeated and invalid names, strict and lenient int fields,
 *    invalid UTF-8, very long values, CRLF;
 *  - the line reader: newlines, CRLF, a last line without newline, a byte
 *    order mark, lines over the limit (in the middle and at the end), peek,
 *    and many lines across buffer refills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load_parse.h"
#include "mem.h"
#include "sx_limits.h"
#include "validate.h"

/* ---------------------------------------------------------------- helpers -- */

static const sx_load_parse_opts no_opts = {0};

static const char *str_of(const Shardex__V1__Document *d, const char *name)
{
    const Shardex__V1__Value *v = sx_doc_field(d, name);
    assert_non_null(v);
    assert_int_equal(v->kind_case, SHARDEX__V1__VALUE__KIND_S);
    return v->s;
}

static int64_t int_of(const Shardex__V1__Document *d, const char *name)
{
    const Shardex__V1__Value *v = sx_doc_field(d, name);
    assert_non_null(v);
    assert_int_equal(v->kind_case, SHARDEX__V1__VALUE__KIND_I);
    return v->i;
}

static sx_load_parse_rec_kind json(const sx_load_parse_opts *o, const char *line,
                                   sx_load_parse_rec *r)
{
    return sx_load_parse_json_line(o ? o : &no_opts, line, strlen(line), 7, r);
}

/* Parses line, expects BAD with a message containing `want`. */
static void json_bad(const sx_load_parse_opts *o, const char *line, const char *want)
{
    sx_load_parse_rec r;
    if (json(o, line, &r) != SX_LOAD_PARSE_REC_BAD)
        fail_msg("accepted: %.80s", line);
    assert_int_equal(r.line, 7);
    assert_null(r.doc);
    if (!strstr(r.msg, want))
        fail_msg("message \"%s\" lacks \"%s\" (line %.80s)", r.msg, want, line);
    assert_true(sx_utf8_valid(r.msg, strlen(r.msg))); /* printed, and in --json output */
    sx_load_parse_rec_clear(&r);
}

/* A JSON string literal of n copies of c. */
static char *run(char c, size_t n)
{
    char *s = sx_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------ JSON Lines -- */

static void test_json_values(void **state)
{
    (void)state;
    sx_load_parse_rec r;
    assert_int_equal(
        json(NULL,
             "{\"id\": \"a\", \"fields\": {\"name\": \"x\", \"tags\": [\"p\", \"q\", 5], "
             "\"n\": -3, \"max\": 9223372036854775807, \"min\": -9223372036854775808, "
             "\"empty\": [], \"u\": \"caf\\u00e9 \\ud83d\\ude00\"}}",
             &r),
        SX_LOAD_PARSE_REC_PUT);
    assert_int_equal(r.line, 7);
    assert_string_equal(r.doc->id, "a");
    assert_string_equal(str_of(r.doc, "name"), "x");
    assert_int_equal(int_of(r.doc, "n"), -3);
    assert_true(int_of(r.doc, "max") == INT64_MAX);
    assert_true(int_of(r.doc, "min") == INT64_MIN);
    assert_string_equal(str_of(r.doc, "u"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_null(sx_doc_field(r.doc, "empty")); /* [] is no value */
    /* name, tags x3, n, max, min, u */
    assert_int_equal(r.doc->n_fields, 8);
    size_t tags = 0;
    for (size_t i = 0; i < r.doc->n_fields; i++)
        if (strcmp(r.doc->fields[i]->name, "tags") == 0)
            tags++;
    assert_int_equal(tags, 3);
    sx_load_parse_rec_clear(&r);

    /* An integer id is its decimal text; "fields" may be left out. */
    assert_int_equal(json(NULL, "{\"id\": -42}", &r), SX_LOAD_PARSE_REC_PUT);
    assert_string_equal(r.doc->id, "-42");
    assert_int_equal(r.doc->n_fields, 0);
    sx_load_parse_rec_clear(&r);

    assert_int_equal(json(NULL, "  {\"delete\": \"gone\"}  ", &r), SX_LOAD_PARSE_REC_DELETE);
    assert_string_equal(r.id, "gone");
    assert_null(r.doc);
    sx_load_parse_rec_clear(&r);
    assert_int_equal(json(NULL, "{\"delete\": 17}", &r), SX_LOAD_PARSE_REC_DELETE);
    assert_string_equal(r.id, "17");
    sx_load_parse_rec_clear(&r);
}

static void test_json_blank_and_crlf(void **state)
{
    (void)state;
    sx_load_parse_rec r;
    assert_int_equal(json(NULL, "", &r), SX_LOAD_PARSE_REC_NONE);
    assert_int_equal(json(NULL, "   \t ", &r), SX_LOAD_PARSE_REC_NONE);
    assert_int_equal(json(NULL, "\r", &r), SX_LOAD_PARSE_REC_NONE);
    assert_int_equal(json(NULL, "{\"id\": \"a\", \"fields\": {\"k\": \"v\"}}\r", &r),
                     SX_LOAD_PARSE_REC_PUT);
    assert_string_equal(str_of(r.doc, "k"), "v");
    sx_load_parse_rec_clear(&r);
}

static void test_json_refused(void **state)
{
    (void)state;
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": 1.5}}", "fraction");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": 1e3}}", "fraction");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": [1, 2.0]}}", "an element is a number");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": true}}", "value is true");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": null}}", "value is null");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": {\"g\": 1}}}", "value is an object");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": [[1]]}}", "an element is an array");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": [1]}", "\"fields\" is an array");
    json_bad(NULL, "{\"fields\": {\"f\": 1}}", "no \"id\"");
    json_bad(NULL, "{\"id\": null}", "\"id\" is null");
    json_bad(NULL, "{\"id\": 1.5}", "\"id\" is a number");
    json_bad(NULL, "{\"id\": \"\"}", "id is empty");
    json_bad(NULL, "{\"delete\": \"\"}", "id is empty");
    json_bad(NULL, "{\"delete\": \"a\", \"id\": \"a\"}", "only \"delete\"");
    json_bad(NULL, "{\"id\": \"a\", \"field\": {}}", "unknown key \"field\"");
    json_bad(NULL, "{\"id\": \"a\", \"id\": \"b\"}", "bad JSON");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": 9223372036854775808}}", "bad JSON");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": \"x\\u0000y\"}}", "bad JSON");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": \"x\"}", "bad JSON at column");
    json_bad(NULL, "[{\"id\": \"a\"}]", "not an array");
    json_bad(NULL, "\"a\"", "bad JSON");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"\": \"x\"}}", "name is empty");
    json_bad(NULL, "{\"id\": \"a\", \"fields\": {\"f\": \"\xff\"}}", "bad JSON"); /* not UTF-8 */
    /* jansson quotes the bytes near the error, here a UTF-8 sequence cut short
     * (found by fuzz_load_jsonl): the message keeps only what is UTF-8. */
    json_bad(NULL, "{\"\\\xef\xbb\xbf\"}", "invalid escape near '\"\\");
}

static void test_json_options(void **state)
{
    (void)state;
    const char *ints[] = {"n", NULL};
    const char *only[] = {"keep", "n", NULL};
    sx_load_parse_opts o = {.int_fields = ints, .only_fields = only};
    sx_load_parse_rec r;
    assert_int_equal(json(&o,
                          "{\"id\": \"a\", \"fields\": {\"n\": \"-12\", \"keep\": \"7\", "
                          "\"drop\": 1.5}}",
                          &r),
                     SX_LOAD_PARSE_REC_PUT);
    assert_int_equal(int_of(r.doc, "n"), -12);
    assert_string_equal(str_of(r.doc, "keep"), "7"); /* not an int field: stays a string */
    assert_null(sx_doc_field(r.doc, "drop"));        /* not loaded, so not judged either */
    sx_load_parse_rec_clear(&r);
    json_bad(&o, "{\"id\": \"a\", \"fields\": {\"n\": \"twelve\"}}",
             "\"twelve\" is not an integer");
    json_bad(&o, "{\"id\": \"a\", \"fields\": {\"n\": \"1.0\"}}", "not an integer");

    /* Truncation keeps whole characters: 4095 bytes of 'a' then "é" (2 bytes)
     * is cut before the "é". */
    char *a = run('a', SX_STRING_VALUE_MAX_BYTES - 1);
    size_t cap = strlen(a) + 256;
    char *line = sx_malloc(cap);
    snprintf(line, cap, "{\"id\": \"t\", \"fields\": {\"s\": \"%s\\u00e9tail\"}}", a);
    sx_load_parse_opts t = {.truncate = true};
    assert_int_equal(json(&t, line, &r), SX_LOAD_PARSE_REC_PUT);
    assert_int_equal(r.truncated, 1);
    assert_int_equal(strlen(str_of(r.doc, "s")), SX_STRING_VALUE_MAX_BYTES - 1);
    sx_load_parse_rec_clear(&r);
    json_bad(NULL, line, "string value is 4101 bytes; the limit is 4096");
    free(line);
    free(a);
}

/* ------------------------------------------------- the server's verdict -- */

/* What common/validate.c says of a document of these sizes. */
static bool server_accepts(size_t id_len, size_t name_len, size_t value_len, size_t nvalues)
{
    char *id = run('i', id_len), *name = run('n', name_len), *val = run('v', value_len);
    Shardex__V1__Document *d = sx_doc_new(id);
    for (size_t i = 0; i < nvalues; i++)
        sx_doc_add_str(d, name, val);
    sx_err err = {0};
    bool ok = sx_validate_document(d, 0, &err) == SX_OK;
    sx_doc_free(d);
    free(id);
    free(name);
    free(val);
    return ok;
}

/* What the parser says of the same document as a JSON line. */
static bool parser_accepts(size_t id_len, size_t name_len, size_t value_len, size_t nvalues,
                           char *msg, size_t msg_cap)
{
    char *id = run('i', id_len), *name = run('n', name_len), *val = run('v', value_len);
    sx_buf b = {0};
    char head[64];
    snprintf(head, sizeof(head), "{\"id\": \"");
    sx_buf_append(&b, head, strlen(head));
    sx_buf_append(&b, id, id_len);
    sx_buf_append(&b, "\", \"fields\": {\"", 15);
    sx_buf_append(&b, name, name_len);
    sx_buf_append(&b, "\": [", 4);
    for (size_t i = 0; i < nvalues; i++) {
        if (i)
            sx_buf_push(&b, ',');
        sx_buf_push(&b, '"');
        sx_buf_append(&b, val, value_len);
        sx_buf_push(&b, '"');
    }
    sx_buf_append(&b, "]}}", 3);
    sx_load_parse_rec r;
    sx_load_parse_rec_kind k =
        sx_load_parse_json_line(&no_opts, (const char *)b.data, b.len, 1, &r);
    snprintf(msg, msg_cap, "%s", r.msg);
    if (k == SX_LOAD_PARSE_REC_PUT) {
        sx_err err = {0};
        assert_int_equal(sx_validate_document(r.doc, 0, &err), SX_OK);
    }
    sx_load_parse_rec_clear(&r);
    sx_buf_free(&b);
    free(id);
    free(name);
    free(val);
    return k == SX_LOAD_PARSE_REC_PUT;
}

static void test_limits_as_server(void **state)
{
    (void)state;
    static const struct {
        size_t id, name, value, n;
        const char *want; /* in the message when refused */
    } cases[] = {
        {1, 1, 0, 1, NULL},
        {SX_ID_MAX_BYTES, 1, 1, 1, NULL},
        {SX_ID_MAX_BYTES + 1, 1, 1, 1, "id is 257 bytes; the limit is 256"},
        {1, SX_FIELD_NAME_MAX_BYTES, 1, 1, NULL},
        {1, SX_FIELD_NAME_MAX_BYTES + 1, 1, 1, "is 129 bytes; the limit is 128"},
        {1, 1, SX_STRING_VALUE_MAX_BYTES, 1, NULL},
        {1, 1, SX_STRING_VALUE_MAX_BYTES + 1, 1, "4097 bytes; the limit is 4096"},
        {1, 1, 1, SX_DOC_FIELDS_MAX, NULL},
        {1, 1, 1, SX_DOC_FIELDS_MAX + 1, "more than 256 values"},
        /* A value of 4096 bytes packs to 4115 with an 8-byte name: 254 of them
         * are under 1 MiB, 255 over. */
        {8, 8, SX_STRING_VALUE_MAX_BYTES, 254, NULL},
        {8, 8, SX_STRING_VALUE_MAX_BYTES, 255, "bytes packed; the limit is 1048576"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[SX_ERR_MSG_MAX];
        bool p = parser_accepts(cases[i].id, cases[i].name, cases[i].value, cases[i].n, msg,
                                sizeof(msg));
        bool s = server_accepts(cases[i].id, cases[i].name, cases[i].value, cases[i].n);
        if (p != s)
            fail_msg("case %zu: parser %d, server %d (%s)", i, p, s, msg);
        if (p != (cases[i].want == NULL))
            fail_msg("case %zu: parser %d (%s)", i, p, msg);
        if (cases[i].want && !strstr(msg, cases[i].want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, msg, cases[i].want);
    }
}

static void test_parse_int(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_true(sx_load_parse_parse_int("0", 1, &v) && v == 0);
    assert_true(sx_load_parse_parse_int("-17", 3, &v) && v == -17);
    assert_true(sx_load_parse_parse_int("+5", 2, &v) && v == 5);
    assert_true(sx_load_parse_parse_int("9223372036854775807", 19, &v) && v == INT64_MAX);
    assert_true(sx_load_parse_parse_int("-9223372036854775808", 20, &v) && v == INT64_MIN);
    assert_false(sx_load_parse_parse_int("9223372036854775808", 19, &v));
    assert_false(sx_load_parse_parse_int("-9223372036854775809", 20, &v));
    assert_false(sx_load_parse_parse_int("", 0, &v));
    assert_false(sx_load_parse_parse_int("-", 1, &v));
    assert_false(sx_load_parse_parse_int("1 ", 2, &v));
    assert_false(sx_load_parse_parse_int("0x10", 4, &v));
    assert_false(sx_load_parse_parse_int("1.0", 3, &v));
}

/* ---------------------------------------------------------------- Debian -- */

/* Feeds text line by line (numbered from 1) to a Debian parser; collects the
 * records in out (up to cap); returns how many. */
static size_t deb(const sx_load_parse_opts *o, const char *text, sx_load_parse_rec *out, size_t cap)
{
    sx_load_parse_deb *d = sx_load_parse_deb_new(o);
    size_t n = 0;
    uint64_t lineno = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        assert_true(n < cap);
        if (sx_load_parse_deb_feed(d, p, len, ++lineno, &out[n]) != SX_LOAD_PARSE_REC_NONE)
            n++;
        p += len + (nl ? 1 : 0);
    }
    assert_true(n < cap);
    if (sx_load_parse_deb_end(d, &out[n]) != SX_LOAD_PARSE_REC_NONE)
        n++;
    sx_load_parse_deb_free(d);
    return n;
}

static void clear_all(sx_load_parse_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sx_load_parse_rec_clear(&r[i]);
}

static void test_deb_stanzas(void **state)
{
    (void)state;
    const char *ints[] = {"installed-size", NULL}; /* names match case-insensitively */
    sx_load_parse_opts o = {.id_field = "package", .int_fields = ints};
    const char *text = "\n"
                       "# a comment before the first stanza\n"
                       "Package: alpha\n"            /* 3 */
                       "Version: 1.0-2\n"            /* 4 */
                       "Installed-Size: 120\n"       /* 5 */
                       "Description: short text\n"   /* 6 */
                       " long line one   \n"         /* 7 */
                       " .\n"                        /* 8 */
                       "\t  indented\n"              /* 9 */
                       "Depends: libc6 (>= 2.36),\n" /* 10 */
                       "         zlib1g\n"           /* 11 */
                       " \t \n"                      /* 12: whitespace only separates */
                       "Package: beta\n"             /* 13 */
                       "# a comment inside\n"        /* 14 */
                       "Installed-Size:   7  \n"     /* 15 */
                       "Empty:\n"                    /* 16 */
                       "\n"
                       "\n";
    sx_load_parse_rec r[4];
    size_t n = deb(&o, text, r, 4);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].kind, SX_LOAD_PARSE_REC_PUT);
    assert_int_equal(r[0].line, 3);
    assert_string_equal(r[0].doc->id, "alpha");
    assert_string_equal(str_of(r[0].doc, "Package"), "alpha"); /* the id field is kept */
    assert_string_equal(str_of(r[0].doc, "Version"), "1.0-2");
    assert_int_equal(int_of(r[0].doc, "Installed-Size"), 120);
    assert_string_equal(str_of(r[0].doc, "Description"),
                        "short text\nlong line one\n.\n  indented");
    assert_string_equal(str_of(r[0].doc, "Depends"), "libc6 (>= 2.36),\n        zlib1g");
    assert_int_equal(r[1].kind, SX_LOAD_PARSE_REC_PUT);
    assert_int_equal(r[1].line, 13);
    assert_string_equal(r[1].doc->id, "beta");
    assert_int_equal(int_of(r[1].doc, "Installed-Size"), 7);
    assert_string_equal(str_of(r[1].doc, "Empty"), "");
    clear_all(r, n);

    /* The last stanza without a blank line after it; CRLF lines. */
    n = deb(&o, "Package: a\r\nSection: x\r\n\r\nPackage: b\r\nSection: y\r", r, 4);
    assert_int_equal(n, 2);
    assert_string_equal(str_of(r[0].doc, "Section"), "x");
    assert_string_equal(r[1].doc->id, "b");
    assert_string_equal(str_of(r[1].doc, "Section"), "y");
    clear_all(r, n);

    /* Nothing at all. */
    assert_int_equal(deb(&o, "\n\n# only a comment\n\n", r, 4), 0);
}

/* Parses text; expects the record at index `which` to be BAD at line `line`
 * with `want` in its message, and the others to be PUTs. */
static void deb_bad(const sx_load_parse_opts *o, const char *text, size_t nrec, size_t which,
                    uint64_t line, const char *want)
{
    sx_load_parse_rec r[8];
    size_t n = deb(o, text, r, 8);
    assert_int_equal(n, nrec);
    for (size_t i = 0; i < n; i++) {
        if (i != which) {
            if (r[i].kind != SX_LOAD_PARSE_REC_PUT)
                fail_msg("record %zu: %d (%s)", i, r[i].kind, r[i].msg);
            continue;
        }
        if (r[i].kind != SX_LOAD_PARSE_REC_BAD)
            fail_msg("record %zu accepted; wanted \"%s\"", i, want);
        assert_null(r[i].doc);
        if (r[i].line != line || !strstr(r[i].msg, want))
            fail_msg("record %zu: line %llu \"%s\"; wanted line %llu \"%s\"", i,
                     (unsigned long long)r[i].line, r[i].msg, (unsigned long long)line, want);
    }
    clear_all(r, n);
}

static void test_deb_bad(void **state)
{
    (void)state;
    const char *ints[] = {"Installed-Size", NULL};
    sx_load_parse_opts o = {.id_field = "Package", .int_fields = ints};
    /* A stanza without the id field: reported at its first line; the next is read. */
    deb_bad(&o, "Package: a\n\nSection: x\nVersion: 1\n\nPackage: c\n", 3, 1, 3,
            "(lines 3-4) has no \"Package\" field");
    deb_bad(&o, "Package: a\nno colon here\nSection: x\n\nPackage: b\n", 2, 0, 2,
            "expected \"Name: value\"");
    deb_bad(&o, " continued\nPackage: a\n", 1, 0, 1, "continuation line");
    deb_bad(&o, "Package: a\nSec tion: x\n", 1, 0, 2, "a space at byte 3");
    deb_bad(&o, "Package: a\n-X: y\n", 1, 0, 2, "not starting with '-'");
    deb_bad(&o, "Package: a\nN\xc3\xa4me: y\n", 1, 0, 2, "non-ASCII");
    deb_bad(&o, "Package: a\n: y\n", 1, 0, 2, "name is empty");
    deb_bad(&o, "Package: a\nSection: x\nsection: y\n", 1, 0, 3,
            "\"section\" repeats (first at line 2)");
    deb_bad(&o, "Package: a\nInstalled-Size: 12k\n", 1, 0, 2, "\"12k\" is not an integer");
    deb_bad(&o, "Package: a\nMaintainer: J\xf6rg\n", 1, 0, 2, "not valid UTF-8 (at byte 1)");
    deb_bad(&o, "Package:\nSection: x\n", 1, 0, 1, "(the id): id is empty");
    char *longid = run('p', SX_ID_MAX_BYTES + 1);
    char text[1024];
    snprintf(text, sizeof(text), "Section: x\nPackage: %s\n", longid);
    deb_bad(&o, text, 1, 0, 2, "id is 257 bytes");
    free(longid);
    /* The first problem of a stanza is the one reported. */
    deb_bad(&o, "Package: a\nbad\nInstalled-Size: x\n\nPackage: b\n", 2, 0, 2, "expected");
}

static void test_deb_types_and_fields(void **state)
{
    (void)state;
    const char *lenient[] = {"Size", "Installed-Size", NULL};
    const char *only[] = {"section", "size", NULL};
    sx_load_parse_opts o = {.id_field = "Package", .int_if_parses = lenient, .only_fields = only};
    sx_load_parse_rec r[4];
    size_t n = deb(&o,
                   "Package: a\nSection: x\nSize: 12\nVersion: 1\n\n"
                   "Package: b\nSize: 12k\n",
                   r, 4);
    assert_int_equal(n, 2);
    assert_int_equal(int_of(r[0].doc, "Size"), 12);
    assert_string_equal(str_of(r[0].doc, "Section"), "x");
    assert_null(sx_doc_field(r[0].doc, "Version"));
    assert_null(sx_doc_field(r[0].doc, "Package")); /* the id, not listed in --fields */
    assert_string_equal(r[0].doc->id, "a");
    assert_string_equal(str_of(r[1].doc, "Size"), "12k"); /* lenient: stays a string */
    clear_all(r, n);
}

static void test_deb_long(void **state)
{
    (void)state;
    sx_load_parse_opts o = {.id_field = "Package"};
    /* A 100 KB line: refused as a value over the limit, at its line. */
    size_t big = 100 * 1000;
    char *v = run('x', big);
    size_t cap = big + 128;
    char *text = sx_malloc(cap);
    snprintf(text, cap, "Package: a\nProvides: %s\n\nPackage: b\n", v);
    deb_bad(&o, text, 2, 0, 2, "string value is 100000 bytes; the limit is 4096");
    /* ... or cut with truncate. */
    sx_load_parse_opts t = {.id_field = "Package", .truncate = true};
    sx_load_parse_rec r[4];
    size_t n = deb(&t, text, r, 4);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].truncated, 1);
    assert_int_equal(strlen(str_of(r[0].doc, "Provides")), SX_STRING_VALUE_MAX_BYTES);
    clear_all(r, n);
    free(text);
    free(v);

    /* A line the reader could not return makes its stanza bad. */
    sx_load_parse_deb *d = sx_load_parse_deb_new(&o);
    sx_load_parse_rec rec;
    assert_int_equal(sx_load_parse_deb_feed(d, "Package: a", 10, 1, &rec), SX_LOAD_PARSE_REC_NONE);
    sx_load_parse_deb_feed_bad(d, 2, "the line is longer than 8388608 bytes");
    assert_int_equal(sx_load_parse_deb_feed(d, "Section: x", 10, 3, &rec), SX_LOAD_PARSE_REC_NONE);
    assert_int_equal(sx_load_parse_deb_feed(d, "", 0, 4, &rec), SX_LOAD_PARSE_REC_BAD);
    assert_int_equal(rec.line, 2);
    assert_non_null(strstr(rec.msg, "longer than"));
    sx_load_parse_rec_clear(&rec);
    assert_int_equal(sx_load_parse_deb_end(d, &rec), SX_LOAD_PARSE_REC_NONE);
    sx_load_parse_deb_free(d);
}

/* ---------------------------------------------------------------- lines -- */

/* A file descriptor reading back `n` bytes of data. */
static int input_of(const void *data, size_t n)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static void expect_line(sx_load_parse_reader *r, const char *want, uint64_t want_no)
{
    const char *line;
    size_t len;
    uint64_t no;
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_LINE);
    assert_int_equal(no, want_no);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(line, want, len);
}

static void test_reader_lines(void **state)
{
    (void)state;
    const char data[] = "\xEF\xBB\xBF{\"a\"}\r\n\nsecond\n\r\nlast";
    int fd = input_of(data, sizeof(data) - 1);
    sx_load_parse_reader *r = sx_load_parse_reader_new(fd, 0);
    assert_int_equal(sx_load_parse_reader_peek(r), '{');
    expect_line(r, "{\"a\"}", 1);
    expect_line(r, "", 2);
    expect_line(r, "second", 3);
    expect_line(r, "", 4);
    expect_line(r, "last", 5);
    const char *line;
    size_t len;
    uint64_t no;
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_EOF);
    assert_int_equal(sx_load_parse_reader_bytes(r), sizeof(data) - 1);
    sx_load_parse_reader_free(r);
    close(fd);

    fd = input_of("  \n\n Package: x\n", 16);
    r = sx_load_parse_reader_new(fd, 0);
    assert_int_equal(sx_load_parse_reader_peek(r), 'P');
    expect_line(r, "  ", 1);
    sx_load_parse_reader_free(r);
    close(fd);

    fd = input_of("", 0);
    r = sx_load_parse_reader_new(fd, 0);
    assert_int_equal(sx_load_parse_reader_peek(r), -1);
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_EOF);
    sx_load_parse_reader_free(r);
    close(fd);
}

static void test_reader_too_long(void **state)
{
    (void)state;
    /* max_line 16: a 100-byte line in the middle and a 40-byte one at the end. */
    sx_buf b = {0};
    sx_buf_append(&b, "short\n", 6);
    for (int i = 0; i < 100; i++)
        sx_buf_push(&b, 'x');
    sx_buf_append(&b, "\nexactly sixteen!\nafter\n", 24);
    for (int i = 0; i < 40; i++)
        sx_buf_push(&b, 'y');
    int fd = input_of(b.data, b.len);
    sx_load_parse_reader *r = sx_load_parse_reader_new(fd, 16);
    const char *line;
    size_t len;
    uint64_t no;
    expect_line(r, "short", 1);
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_TOO_LONG);
    assert_int_equal(no, 2);
    expect_line(r, "exactly sixteen!", 3);
    expect_line(r, "after", 4);
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_TOO_LONG);
    assert_int_equal(no, 5);
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_EOF);
    assert_int_equal(sx_load_parse_reader_bytes(r), b.len);
    sx_load_parse_reader_free(r);
    close(fd);
    sx_buf_free(&b);
}

static void test_reader_many(void **state)
{
    (void)state;
    /* 200,000 lines of varying length: several refills and compactions. */
    sx_buf b = {0};
    enum { N = 200000 };
    for (int i = 0; i < N; i++) {
        char one[64];
        int k = snprintf(one, sizeof(one), "line %d %.*s\n", i, i % 37,
                         "abcdefghijklmnopqrstuvwxyz0123456789");
        sx_buf_append(&b, one, (size_t)k);
    }
    int fd = input_of(b.data, b.len);
    sx_load_parse_reader *r = sx_load_parse_reader_new(fd, 0);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "line %d %.*s", i, i % 37,
                 "abcdefghijklmnopqrstuvwxyz0123456789");
        expect_line(r, want, (uint64_t)i + 1);
    }
    const char *line;
    size_t len;
    uint64_t no;
    assert_int_equal(sx_load_parse_reader_next(r, &line, &len, &no), SX_LOAD_PARSE_EOF);
    assert_int_equal(sx_load_parse_reader_bytes(r), b.len);
    sx_load_parse_reader_free(r);
    close(fd);
    sx_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),          cmocka_unit_test(test_json_blank_and_crlf),
        cmocka_unit_test(test_json_refused),         cmocka_unit_test(test_json_options),
        cmocka_unit_test(test_limits_as_server),     cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_deb_stanzas),          cmocka_unit_test(test_deb_bad),
        cmocka_unit_test(test_deb_types_and_fields), cmocka_unit_test(test_deb_long),
        cmocka_unit_test(test_reader_lines),         cmocka_unit_test(test_reader_too_long),
        cmocka_unit_test(test_reader_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
