/* test_validate.c: unit tests for common/validate.h (request checks).
 *
 * Every limit of common/sx_limits.h at its boundary (at the limit passes, one
 * over fails, with a message naming the field and the limit), a table of
 * well-formed and malformed UTF-8, missing values, empty ids and names, the
 * per-request counts and packed sizes, escaping of junk in messages, and that
 * the first bad document is the one reported. Big requests share their
 * strings and fields (protobuf-c packs a repeated pointer as many elements),
 * so they cost little memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sx_limits.h"
#include "validate.h"

/* Room for the longest test string: a string value just over its limit, and
 * the ids and values used to push a request over its packed size. */
#define BIG_LEN (256 * 1024)

/* BIG_LEN 'v's; big_str(n) is a NUL-terminated run of n of them. */
static char *big;

static const char *big_str(size_t n)
{
    assert_true(n <= BIG_LEN);
    return big + BIG_LEN - n;
}

static int setup(void **state)
{
    (void)state;
    big = malloc(BIG_LEN + 1);
    assert_non_null(big);
    memset(big, 'v', BIG_LEN);
    big[BIG_LEN] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(big);
    return 0;
}

static void set_str(Shardex__V1__Field *f, Shardex__V1__Value *v, const char *name, const char *s)
{
    shardex__v1__field__init(f);
    shardex__v1__value__init(v);
    f->name = (char *)name;
    f->value = v;
    v->kind_case = SHARDEX__V1__VALUE__KIND_S;
    v->s = (char *)s;
}

static void set_doc(Shardex__V1__Document *d, const char *id, Shardex__V1__Field **fields, size_t n)
{
    shardex__v1__document__init(d);
    d->id = (char *)id;
    d->fields = fields;
    d->n_fields = n;
}

static size_t packed(const void *msg)
{
    return protobuf_c_message_get_packed_size((const ProtobufCMessage *)msg);
}

/* Asserts st is INVALID_ARGUMENT and err's message is exactly want. */
static void expect_msg(sx_status st, const sx_err *err, const char *want)
{
    assert_int_equal(st, SX_INVALID_ARGUMENT);
    assert_int_equal(err->code, SX_INVALID_ARGUMENT);
    assert_string_equal(err->msg, want);
    assert_true(sx_utf8_valid(err->msg, strlen(err->msg)));
}

/* Asserts st is INVALID_ARGUMENT and err's message starts with prefix and
 * contains part. */
static void expect_has(sx_status st, const sx_err *err, const char *prefix, const char *part)
{
    assert_int_equal(st, SX_INVALID_ARGUMENT);
    assert_int_equal(err->code, SX_INVALID_ARGUMENT);
    if (strncmp(err->msg, prefix, strlen(prefix)) != 0 || !strstr(err->msg, part))
        fail_msg("message \"%s\": want prefix \"%s\" and \"%s\"", err->msg, prefix, part);
    assert_true(sx_utf8_valid(err->msg, strlen(err->msg)));
}

/* ---- UTF-8 ---- */

static void test_utf8_table(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
        const char *what;
    } cases[] = {
        {"", 0, true, "empty"},
        {"a", 1, true, "ASCII"},
        {"\x7f", 1, true, "U+007F, last 1-byte"},
        {"a\0b", 3, true, "NUL is U+0000"},
        {"\xc2\x80", 2, true, "U+0080, first 2-byte"},
        {"\xc3\xa9", 2, true, "U+00E9"},
        {"\xdf\xbf", 2, true, "U+07FF, last 2-byte"},
        {"\xe0\xa0\x80", 3, true, "U+0800, first 3-byte"},
        {"\xe2\x82\xac", 3, true, "U+20AC"},
        {"\xed\x9f\xbf", 3, true, "U+D7FF, below the surrogates"},
        {"\xee\x80\x80", 3, true, "U+E000, above the surrogates"},
        {"\xef\xbf\xbf", 3, true, "U+FFFF, last 3-byte"},
        {"\xf0\x90\x80\x80", 4, true, "U+10000, first 4-byte"},
        {"\xf0\x9f\x98\x80", 4, true, "U+1F600"},
        {"\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF, the last code point"},
        {"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 11, true, "mixed"},
        {"\xc0\x80", 2, false, "overlong 2-byte NUL"},
        {"\xc0\xaf", 2, false, "overlong 2-byte '/'"},
        {"\xc1\xbf", 2, false, "overlong 2-byte U+007F"},
        {"\xe0\x80\x80", 3, false, "overlong 3-byte NUL"},
        {"\xe0\x9f\xbf", 3, false, "overlong 3-byte U+07FF"},
        {"\xf0\x80\x80\x80", 4, false, "overlong 4-byte NUL"},
        {"\xf0\x8f\xbf\xbf", 4, false, "overlong 4-byte U+FFFF"},
        {"\xed\xa0\x80", 3, false, "U+D800, first surrogate"},
        {"\xed\xbf\xbf", 3, false, "U+DFFF, last surrogate"},
        {"\xed\xa0\xbd\xed\xb8\x80", 6, false, "CESU-8 surrogate pair"},
        {"\xf4\x90\x80\x80", 4, false, "U+110000"},
        {"\xf5\x80\x80\x80", 4, false, "F5 lead"},
        {"\xf7\xbf\xbf\xbf", 4, false, "U+1FFFFF"},
        {"\xf8\x88\x80\x80\x80", 5, false, "5-byte form"},
        {"\xfc\x84\x80\x80\x80\x80", 6, false, "6-byte form"},
        {"\xc2", 1, false, "truncated 2-byte"},
        {"\xe2\x82", 2, false, "truncated 3-byte"},
        {"\xf0\x9f\x98", 3, false, "truncated 4-byte"},
        {"abc\xe2\x82", 5, false, "truncated at the end"},
        {"\xc2\x61", 2, false, "ASCII in place of a continuation"},
        {"\xe2\x82\x61", 3, false, "ASCII as a third byte"},
        {"\xf0\x9f\x98\x61", 4, false, "ASCII as a fourth byte"},
        {"\x80", 1, false, "stray continuation 0x80"},
        {"\xbf", 1, false, "stray continuation 0xBF"},
        {"a\x80\x62", 3, false, "stray continuation inside"},
        {"\xc3\xa9\xa9", 3, false, "one continuation too many"},
        {"\xfe", 1, false, "0xFE"},
        {"\xff", 1, false, "0xFF"},
        {"\xfe\xff", 2, false, "UTF-16 BOM bytes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (sx_utf8_valid(cases[i].s, cases[i].n) != cases[i].ok)
            fail_msg("%s: want %s", cases[i].what, cases[i].ok ? "valid" : "invalid");
    assert_true(sx_utf8_valid(NULL, 0));
    /* Only the first n bytes count. */
    assert_true(sx_utf8_valid("a\xff", 1));
    assert_false(sx_utf8_valid("\xc3\xa9", 1));
    assert_false(sx_utf8_valid("\xe2\x82\xac", 2));
    assert_false(sx_utf8_valid("\xf0\x9f\x98\x80", 3));
}

/* ---- ids (Get) ---- */

static void test_id(void **state)
{
    (void)state;
    sx_err err = {0};
    char id[SX_ID_MAX_BYTES + 2];

    expect_msg(sx_validate_id("", &err), &err, "id is empty; ids are 1..256 bytes");
    expect_msg(sx_validate_id(NULL, &err), &err, "id is empty; ids are 1..256 bytes");
    assert_int_equal(sx_validate_id("a", &err), SX_OK);

    memset(id, 'i', SX_ID_MAX_BYTES);
    id[SX_ID_MAX_BYTES] = '\0';
    assert_int_equal(sx_validate_id(id, &err), SX_OK);
    id[SX_ID_MAX_BYTES] = 'i';
    id[SX_ID_MAX_BYTES + 1] = '\0';
    expect_msg(sx_validate_id(id, &err), &err, "id is 257 bytes; the limit is 256");

    /* The limit is in bytes: 254 ASCII and one 2-byte character is 256. */
    memset(id, 'i', SX_ID_MAX_BYTES - 2);
    memcpy(id + SX_ID_MAX_BYTES - 2, "\xc3\xa9", 3);
    assert_int_equal(sx_validate_id(id, &err), SX_OK);

    expect_msg(sx_validate_id("ab\xff", &err), &err, "id is not valid UTF-8 (at byte 2)");
    expect_msg(sx_validate_id("\xed\xa0\x80", &err), &err, "id is not valid UTF-8 (at byte 0)");
    assert_int_equal(sx_validate_id("", NULL), SX_INVALID_ARGUMENT);
}

/* ---- documents ---- */

static void test_doc_id(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Document d;
    char id[SX_ID_MAX_BYTES + 2];

    set_doc(&d, "", NULL, 0);
    expect_msg(sx_validate_document(&d, 0, &err), &err,
               "docs[0]: id is empty; ids are 1..256 bytes");

    set_doc(&d, "x", NULL, 0); /* no fields is a valid document */
    assert_int_equal(sx_validate_document(&d, 0, &err), SX_OK);

    memset(id, 'i', SX_ID_MAX_BYTES);
    id[SX_ID_MAX_BYTES] = '\0';
    d.id = id;
    assert_int_equal(sx_validate_document(&d, 0, &err), SX_OK);
    id[SX_ID_MAX_BYTES] = 'i';
    id[SX_ID_MAX_BYTES + 1] = '\0';
    /* The id in the message is cut to 40 bytes. */
    expect_msg(sx_validate_document(&d, 5, &err), &err,
               "docs[5] (id \"iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii...\"): id is 257 bytes; "
               "the limit is 256");

    d.id = "ok\xc0\x80";
    expect_msg(sx_validate_document(&d, 1, &err), &err,
               "docs[1] (id \"ok\\xc0\\x80\"): id is not valid UTF-8 (at byte 2)");
}

static void test_doc_fields_count(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f;
    Shardex__V1__Value v;
    Shardex__V1__Field *fields[SX_DOC_FIELDS_MAX + 1];
    Shardex__V1__Document d;

    set_str(&f, &v, "f", "v");
    for (size_t i = 0; i <= SX_DOC_FIELDS_MAX; i++)
        fields[i] = &f;
    set_doc(&d, "x", fields, SX_DOC_FIELDS_MAX);
    assert_int_equal(sx_validate_document(&d, 2, &err), SX_OK);
    d.n_fields = SX_DOC_FIELDS_MAX + 1;
    expect_msg(sx_validate_document(&d, 2, &err), &err,
               "docs[2] (id \"x\"): 257 fields; the limit is 256");
}

static void test_field_name(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f[2];
    Shardex__V1__Value v[2];
    Shardex__V1__Field *fields[2] = {&f[0], &f[1]};
    Shardex__V1__Document d;
    char name[SX_FIELD_NAME_MAX_BYTES + 2];

    set_str(&f[0], &v[0], "title", "t");
    set_str(&f[1], &v[1], "", "t");
    set_doc(&d, "d", fields, 2);
    expect_msg(sx_validate_document(&d, 0, &err), &err,
               "docs[0] (id \"d\"): fields[1]: name is empty; names are 1..128 bytes");
    f[1].name = NULL;
    expect_msg(sx_validate_document(&d, 0, &err), &err,
               "docs[0] (id \"d\"): fields[1]: name is empty; names are 1..128 bytes");

    memset(name, 'n', SX_FIELD_NAME_MAX_BYTES);
    name[SX_FIELD_NAME_MAX_BYTES] = '\0';
    f[1].name = name;
    assert_int_equal(sx_validate_document(&d, 0, &err), SX_OK);
    name[SX_FIELD_NAME_MAX_BYTES] = 'n';
    name[SX_FIELD_NAME_MAX_BYTES + 1] = '\0';
    expect_msg(sx_validate_document(&d, 0, &err), &err,
               "docs[0] (id \"d\"): fields[1] (\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...\"): "
               "name is 129 bytes; the limit is 128");

    f[1].name = "b\xe9t";
    expect_msg(sx_validate_document(&d, 0, &err), &err,
               "docs[0] (id \"d\"): fields[1] (\"b\\xe9t\"): name is not valid UTF-8 (at byte 1)");
}

static void test_field_value_missing(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f;
    Shardex__V1__Value v;
    Shardex__V1__Field *fields[1] = {&f};
    Shardex__V1__Document d;

    set_str(&f, &v, "title", "t");
    set_doc(&d, "abc", fields, 1);
    f.value = NULL;
    expect_msg(
        sx_validate_document(&d, 0, &err), &err,
        "docs[0] (id \"abc\"): fields[0] (\"title\"): no value; every field needs a string or "
        "an integer");
    f.value = &v;
    v.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    expect_msg(
        sx_validate_document(&d, 0, &err), &err,
        "docs[0] (id \"abc\"): fields[0] (\"title\"): value has no kind; set a string (s) or "
        "an integer (i)");
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = INT64_MIN;
    assert_int_equal(sx_validate_document(&d, 0, &err), SX_OK);
}

static void test_field_string_value(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f[8];
    Shardex__V1__Value v[8];
    Shardex__V1__Field *fields[8];
    Shardex__V1__Document d;

    for (size_t i = 0; i < 8; i++) {
        set_str(&f[i], &v[i], "f", "");
        fields[i] = &f[i];
    }
    f[7].name = "title";
    v[7].s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES);
    set_doc(&d, "abc", fields, 8);
    assert_int_equal(sx_validate_document(&d, 3, &err), SX_OK); /* "" values are fine */
    v[7].s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES + 1);
    expect_msg(sx_validate_document(&d, 3, &err), &err,
               "docs[3] (id \"abc\"): fields[7] (\"title\"): string value is 4097 bytes; the limit "
               "is 4096");
    v[7].s = NULL; /* hand-built: treated as "" */
    assert_int_equal(sx_validate_document(&d, 3, &err), SX_OK);
    v[7].s = "caf\xc3\xa9 \xed\xbf\xbf";
    expect_msg(sx_validate_document(&d, 3, &err), &err,
               "docs[3] (id \"abc\"): fields[7] (\"title\"): string value is not valid UTF-8 (at "
               "byte 6)");
}

/* Shortens the string values of k1, then k2 (both start at 4096 bytes, and
 * stay at or above 200, where every length prefix keeps its size) so that msg
 * packs to exactly target bytes. */
static void tune(const void *msg, Shardex__V1__Value *k1, Shardex__V1__Value *k2, size_t target)
{
    k1->s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES);
    k2->s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES);
    size_t size = packed(msg);
    assert_true(size >= target);
    size_t d = size - target, room = SX_STRING_VALUE_MAX_BYTES - 200;
    size_t d1 = d < room ? d : room, d2 = d - d1;
    assert_true(d2 <= room);
    k1->s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES - d1);
    k2->s = (char *)big_str(SX_STRING_VALUE_MAX_BYTES - d2);
    assert_int_equal(packed(msg), target);
}

static void test_doc_packed_size(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f[3];
    Shardex__V1__Value v[3];
    Shardex__V1__Field *fields[SX_DOC_FIELDS_MAX];
    Shardex__V1__Document d;

    /* Two tunable fields, then full ones until the document is big enough. */
    for (size_t i = 0; i < 3; i++)
        set_str(&f[i], &v[i], "f", big_str(SX_STRING_VALUE_MAX_BYTES));
    fields[0] = &f[0];
    fields[1] = &f[1];
    for (size_t i = 2; i < SX_DOC_FIELDS_MAX; i++)
        fields[i] = &f[2];
    set_doc(&d, "big", fields, 2);
    while (packed(&d) < SX_DOC_MAX_BYTES + 1) {
        assert_true(d.n_fields < SX_DOC_FIELDS_MAX);
        d.n_fields++;
    }

    tune(&d, &v[0], &v[1], SX_DOC_MAX_BYTES);
    assert_int_equal(sx_validate_document(&d, 9, &err), SX_OK);
    tune(&d, &v[0], &v[1], SX_DOC_MAX_BYTES + 1);
    expect_msg(sx_validate_document(&d, 9, &err), &err,
               "docs[9] (id \"big\"): document is 1048577 bytes packed; the limit is 1048576 (1 "
               "MiB)");
}

/* Junk in ids and names is escaped, cut at a character boundary, and the
 * longest message still fits whole. */
static void test_message_escaping(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f;
    Shardex__V1__Value v;
    Shardex__V1__Field *fields[1] = {&f};
    Shardex__V1__Document d;
    char id[64], name[128];

    set_str(&f, &v, "n\"\\\n", big_str(SX_STRING_VALUE_MAX_BYTES + 1));
    set_doc(&d, "a\"b\\c\nd\x7f\xc2\x85\xff", fields, 1);
    expect_msg(
        sx_validate_document(&d, 0, &err), &err,
        "docs[0] (id \"a\\\"b\\\\c\\x0ad\\x7f\\u0085\\xff\"): id is not valid UTF-8 (at byte "
        "10)");
    d.id = "a\"b\\c\nd\x7f\xc2\x85";
    expect_msg(
        sx_validate_document(&d, 0, &err), &err,
        "docs[0] (id \"a\\\"b\\\\c\\x0ad\\x7f\\u0085\"): fields[0] (\"n\\\"\\\\\\x0a\"): string "
        "value is 4097 bytes; the limit is 4096");

    /* 30 x U+00E9 (60 bytes): cut after 20 of them (40 bytes). */
    for (size_t i = 0; i < 30; i++)
        memcpy(id + 2 * i, "\xc3\xa9", 2);
    id[60] = '\0';
    d.id = id;
    f.name = "t";
    expect_has(
        sx_validate_document(&d, 0, &err), &err,
        "docs[0] (id \"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9...\"): fields[0] (\"t\")",
        "the limit is 4096");

    /* Worst case: a huge index and ids and names that are all escapes. */
    memset(id, 0x01, 63);
    id[63] = '\0';
    memset(name, 0x02, 127);
    name[127] = '\0';
    f.name = name;
    v.s = "\xff";
    expect_has(sx_validate_document(&d, SIZE_MAX, &err), &err, "docs[18446744073709551615] (id \"",
               "string value is not valid UTF-8 (at byte 0)");
    assert_true(strlen(err.msg) < SX_ERR_MSG_MAX - 1); /* not cut */
    assert_non_null(strstr(err.msg, "\\x01\\x01...\"): fields[0] (\"\\x02"));
}

/* ---- one document or field alone (shardex load) ---- */

static void test_unnamed_and_field(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field f, *fields[] = {&f};
    Shardex__V1__Value v;
    Shardex__V1__Document d;
    set_str(&f, &v, "title", big_str(SX_STRING_VALUE_MAX_BYTES + 1));
    set_doc(&d, "abc", fields, 1);
    /* The same checks as sx_validate_document, without naming the document. */
    expect_msg(sx_validate_document_unnamed(&d, &err), &err,
               "fields[0] (\"title\"): string value is 4097 bytes; the limit is 4096");
    expect_msg(sx_validate_field(&f, 7, &err), &err,
               "fields[7] (\"title\"): string value is 4097 bytes; the limit is 4096");
    d.id = "";
    expect_msg(sx_validate_document_unnamed(&d, &err), &err, "id is empty; ids are 1..256 bytes");
    d.id = "abc";
    v.s = "ok";
    assert_int_equal(sx_validate_document_unnamed(&d, &err), SX_OK);
    assert_int_equal(sx_validate_field(&f, 0, &err), SX_OK);
    f.name = "";
    expect_msg(sx_validate_field(&f, 2, &err), &err,
               "fields[2]: name is empty; names are 1..128 bytes");

    assert_int_equal(sx_utf8_invalid_at("ab\xc3\xa9", 4), 4);
    assert_int_equal(sx_utf8_invalid_at("ab\xc3\xa9\xff", 5), 4);
    char q[SX_VALIDATE_QUOTE_BUF];
    assert_string_equal(sx_validate_quote(q, "a\"\x01", 3), "a\\\"\\x01");
}

/* ---- Put ---- */

static void test_put_count(void **state)
{
    (void)state;
    sx_err err = {0};
    enum { N = SX_REQUEST_DOCS_MAX + 1 };
    Shardex__V1__Field f;
    Shardex__V1__Value v;
    Shardex__V1__Field *fields[1] = {&f};
    Shardex__V1__Document *docs = calloc(N, sizeof(*docs));
    Shardex__V1__Document **ptrs = calloc(N, sizeof(*ptrs));
    char(*ids)[8] = calloc(N, sizeof(*ids));
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    assert_non_null(docs);
    assert_non_null(ptrs);
    assert_non_null(ids);

    expect_msg(sx_validate_put(&req, &err), &err, "docs: at least one document");

    set_str(&f, &v, "title", "hello");
    for (size_t i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "d%05zu", i);
        set_doc(&docs[i], ids[i], fields, 1);
        ptrs[i] = &docs[i];
    }
    req.docs = ptrs;
    req.n_docs = SX_REQUEST_DOCS_MAX;
    sx_err_clear(&err);
    assert_int_equal(sx_validate_put(&req, &err), SX_OK);
    assert_int_equal(err.code, SX_OK);
    req.n_docs = N;
    expect_msg(sx_validate_put(&req, &err), &err, "docs: 10001 documents; the limit is 10000");
    assert_int_equal(sx_validate_put(&req, NULL), SX_INVALID_ARGUMENT);

    /* The same id twice is allowed (the later wins). */
    req.n_docs = 2;
    ptrs[1] = &docs[0];
    assert_int_equal(sx_validate_put(&req, &err), SX_OK);

    free(ids);
    free(ptrs);
    free(docs);
}

/* 17 documents, each under 1 MiB, that pack to exactly 16 MiB, then one byte
 * more. */
static void test_put_packed_size(void **state)
{
    (void)state;
    sx_err err = {0};
    enum { NDOCS = 17, FULL = 250 };
    Shardex__V1__Field f[3];
    Shardex__V1__Value v[3];
    Shardex__V1__Field *full[FULL], *last[SX_DOC_FIELDS_MAX];
    Shardex__V1__Document docs[NDOCS], *ptrs[NDOCS];
    char ids[NDOCS][8];
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;

    for (size_t i = 0; i < 3; i++)
        set_str(&f[i], &v[i], "f", big_str(SX_STRING_VALUE_MAX_BYTES));
    for (size_t i = 0; i < FULL; i++)
        full[i] = &f[2];
    last[0] = &f[0];
    last[1] = &f[1];
    for (size_t i = 2; i < SX_DOC_FIELDS_MAX; i++)
        last[i] = &f[2];
    for (size_t i = 0; i < NDOCS; i++) {
        snprintf(ids[i], sizeof(ids[i]), "doc%02zu", i);
        set_doc(&docs[i], ids[i], full, FULL);
        ptrs[i] = &docs[i];
    }
    set_doc(&docs[NDOCS - 1], ids[NDOCS - 1], last, 2);
    req.docs = ptrs;
    req.n_docs = NDOCS;
    while (packed(&req) < SX_REQUEST_MAX_BYTES + 1) {
        assert_true(docs[NDOCS - 1].n_fields < SX_DOC_FIELDS_MAX);
        docs[NDOCS - 1].n_fields++;
    }

    tune(&req, &v[0], &v[1], SX_REQUEST_MAX_BYTES);
    for (size_t i = 0; i < NDOCS; i++)
        assert_true(packed(&docs[i]) <= SX_DOC_MAX_BYTES);
    assert_int_equal(sx_validate_put(&req, &err), SX_OK);
    tune(&req, &v[0], &v[1], SX_REQUEST_MAX_BYTES + 1);
    expect_msg(sx_validate_put(&req, &err), &err,
               "request is 16777217 bytes packed; the limit is 16777216 (16 MiB)");
}

static void test_put_first_error_wins(void **state)
{
    (void)state;
    sx_err err = {0};
    Shardex__V1__Field good, noname, toolong;
    Shardex__V1__Value v[3];
    Shardex__V1__Field *f_good[1] = {&good}, *f_bad1[2] = {&good, &noname};
    Shardex__V1__Field *f_bad2[2] = {&toolong, &noname};
    Shardex__V1__Document docs[4], *ptrs[4] = {&docs[0], &docs[1], &docs[2], &docs[3]};
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;

    set_str(&good, &v[0], "title", "t");
    set_str(&noname, &v[1], "", "t");
    set_str(&toolong, &v[2], "body", big_str(SX_STRING_VALUE_MAX_BYTES + 1));
    set_doc(&docs[0], "a", f_good, 1);
    set_doc(&docs[1], "b", f_bad2, 2);
    set_doc(&docs[2], "c", f_bad1, 2);
    set_doc(&docs[3], "", f_good, 1);
    req.docs = ptrs;
    req.n_docs = 4;
    /* docs[1] is the first bad document, and its fields[0] the first bad field. */
    expect_msg(sx_validate_put(&req, &err), &err,
               "docs[1] (id \"b\"): fields[0] (\"body\"): string value is 4097 bytes; the limit is "
               "4096");
    ptrs[1] = &docs[0];
    expect_msg(sx_validate_put(&req, &err), &err,
               "docs[2] (id \"c\"): fields[1]: name is empty; names are 1..128 bytes");
    ptrs[2] = &docs[0];
    expect_msg(sx_validate_put(&req, &err), &err, "docs[3]: id is empty; ids are 1..256 bytes");
    ptrs[3] = &docs[0];
    assert_int_equal(sx_validate_put(&req, &err), SX_OK);
}

/* ---- Delete ---- */

static void test_delete(void **state)
{
    (void)state;
    sx_err err = {0};
    enum { N = SX_REQUEST_DOCS_MAX + 1 };
    char **ids = calloc(N, sizeof(*ids));
    char id[SX_ID_MAX_BYTES + 2];
    Shardex__V1__DeleteRequest req = SHARDEX__V1__DELETE_REQUEST__INIT;
    assert_non_null(ids);

    expect_msg(sx_validate_delete(&req, &err), &err, "ids: at least one id");

    memset(id, 'i', SX_ID_MAX_BYTES);
    id[SX_ID_MAX_BYTES] = '\0';
    for (size_t i = 0; i < N; i++)
        ids[i] = id;
    req.ids = ids;
    req.n_ids = SX_REQUEST_DOCS_MAX;
    assert_int_equal(sx_validate_delete(&req, &err), SX_OK); /* 10000 ids of 256 bytes */
    req.n_ids = N;
    expect_msg(sx_validate_delete(&req, &err), &err, "ids: 10001 ids; the limit is 10000");

    req.n_ids = 5;
    ids[4] = "";
    expect_msg(sx_validate_delete(&req, &err), &err, "ids[4]: id is empty; ids are 1..256 bytes");
    id[SX_ID_MAX_BYTES] = 'i';
    id[SX_ID_MAX_BYTES + 1] = '\0';
    ids[0] = "ok";
    expect_has(sx_validate_delete(&req, &err), &err, "ids[1] (id \"iiii",
               "...\"): id is 257 bytes; the limit is 256");
    ids[1] = "ok";
    ids[2] = ids[3] = "x\xf4\x90\x80\x80";
    expect_msg(sx_validate_delete(&req, &err), &err,
               "ids[2] (id \"x\\xf4\\x90\\x80\\x80\"): id is not valid UTF-8 (at byte 1)");

    /* Over 16 MiB packed (ids that are each too long: size is checked first). */
    for (size_t i = 0; i < 70; i++)
        ids[i] = (char *)big_str(BIG_LEN);
    req.n_ids = 70;
    expect_has(sx_validate_delete(&req, &err), &err, "request is ",
               " bytes packed; the limit is 16777216 (16 MiB)");

    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_doc_id),
        cmocka_unit_test(test_doc_fields_count),
        cmocka_unit_test(test_field_name),
        cmocka_unit_test(test_field_value_missing),
        cmocka_unit_test(test_field_string_value),
        cmocka_unit_test(test_doc_packed_size),
        cmocka_unit_test(test_message_escaping),
        cmocka_unit_test(test_unnamed_and_field),
        cmocka_unit_test(test_put_count),
        cmocka_unit_test(test_put_packed_size),
        cmocka_unit_test(test_put_first_error_wins),
        cmocka_unit_test(test_delete),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
