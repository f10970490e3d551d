/* validate.c: request checks against common/sx_limits.h (see validate.h).
 *
 * Messages are composed from a "where" prefix (`docs[3] (id "abc")`,
 * `fields[7] ("title")`) and a problem stating the limit. Quoted ids and names
 * go through sx_validate_quote(), which keeps messages bounded and valid UTF-8
 * whatever the input: a message must fit SX_ERR_MSG_MAX with both an id and a
 * field name in it, and gRPC carries it as UTF-8.
 */
#include "validate.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Quoted text in a message is cut to this many output bytes, then "...". */
#define QUOTE_MAX (SX_VALIDATE_QUOTE_BUF - 4)
/* Room for a "where" prefix: `docs[<size_t>] (id "<quoted>")`. */
#define WHERE_BUF (SX_VALIDATE_QUOTE_BUF + 48)

/* Length of the well-formed UTF-8 sequence at p (n > 0 bytes available), or 0
 * when p does not start one. The second-byte ranges are those of RFC 3629's
 * grammar: they exclude overlong forms (E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90..BF); C0, C1 and F5..FF
 * never start a sequence. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

size_t sx_utf8_invalid_at(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0)
            return i;
        i += k;
    }
    return n;
}

bool sx_utf8_valid(const char *s, size_t n)
{
    return sx_utf8_invalid_at(s, n) == n;
}

/* Well-formed UTF-8 as is, except `"` and `\` escaped with a backslash, C0 and
 * C1 controls and DEL as \xNN or \u00NN, and bytes that are not UTF-8 as \xNN.
 * Stops at a sequence boundary before QUOTE_MAX output bytes and adds "...". */
const char *sx_validate_quote(char *out, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    while (i < n) {
        char piece[8];
        size_t plen, adv = utf8_seq(p + i, n - i);
        if (adv == 0) {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", p[i]);
            adv = 1;
        } else if (p[i] == '"' || p[i] == '\\') {
            piece[0] = '\\';
            piece[1] = (char)p[i];
            plen = 2;
        } else if (p[i] < 0x20 || p[i] == 0x7F) {
            plen = (size_t)snprintf(piece, sizeof(piece), "\\x%02x", p[i]);
        } else if (p[i] == 0xC2 && p[i + 1] < 0xA0) {
            /* U+0080..U+009F: C1 controls; some terminals act on them. */
            plen = (size_t)snprintf(piece, sizeof(piece), "\\u00%02x", p[i + 1]);
        } else {
            memcpy(piece, p + i, adv);
            plen = adv;
        }
        if (o + plen > QUOTE_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += adv;
    }
    out[o] = '\0';
    return out;
}

static sx_status invalid(sx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static sx_status invalid(sx_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sx_err_vset(err, SX_INVALID_ARGUMENT, fmt, ap);
    va_end(ap);
    return SX_INVALID_ARGUMENT;
}

/* `<what>[<index>]`, then ` (<label>"<quoted s>")` when s is not empty. */
static void where(char *out, const char *what, size_t index, const char *label, const char *s)
{
    if (!s || !*s) {
        snprintf(out, WHERE_BUF, "%s[%zu]", what, index);
        return;
    }
    char q[SX_VALIDATE_QUOTE_BUF];
    snprintf(out, WHERE_BUF, "%s[%zu] (%s\"%s\")", what, index, label,
             sx_validate_quote(q, s, strlen(s)));
}

/* The id checks; messages are prefixed with pre and ": " when pre is set. */
static sx_status check_id(const char *id, const char *pre, sx_err *err)
{
    const char *sep = pre ? ": " : "";
    size_t len = id ? strlen(id) : 0, bad;
    if (!pre)
        pre = "";
    if (len == 0)
        return invalid(err, "%s%sid is empty; ids are 1..%d bytes", pre, sep, SX_ID_MAX_BYTES);
    if (len > SX_ID_MAX_BYTES)
        return invalid(err, "%s%sid is %zu bytes; the limit is %d", pre, sep, len, SX_ID_MAX_BYTES);
    if ((bad = sx_utf8_invalid_at(id, len)) != len)
        return invalid(err, "%s%sid is not valid UTF-8 (at byte %zu)", pre, sep, bad);
    return SX_OK;
}

sx_status sx_validate_id(const char *id, sx_err *err)
{
    return check_id(id, NULL, err);
}

/* The field checks; messages are prefixed with pre and ": " when pre is set,
 * then with the field's "where". */
static sx_status check_field(const Shardex__V1__Field *f, const char *pre, size_t fi, sx_err *err)
{
    char fw[WHERE_BUF], w[2 * WHERE_BUF];
    size_t len = f->name ? strlen(f->name) : 0, bad;
    where(fw, "fields", fi, "", f->name);
    snprintf(w, sizeof(w), "%s%s%s", pre ? pre : "", pre ? ": " : "", fw);
    if (len == 0)
        return invalid(err, "%s: name is empty; names are 1..%d bytes", w, SX_FIELD_NAME_MAX_BYTES);
    if (len > SX_FIELD_NAME_MAX_BYTES)
        return invalid(err, "%s: name is %zu bytes; the limit is %d", w, len,
                       SX_FIELD_NAME_MAX_BYTES);
    if ((bad = sx_utf8_invalid_at(f->name, len)) != len)
        return invalid(err, "%s: name is not valid UTF-8 (at byte %zu)", w, bad);

    const Shardex__V1__Value *v = f->value;
    if (!v)
        return invalid(err, "%s: no value; every field needs a string or an integer", w);
    switch (v->kind_case) {
    case SHARDEX__V1__VALUE__KIND_I:
        return SX_OK;
    case SHARDEX__V1__VALUE__KIND_S:
        len = v->s ? strlen(v->s) : 0;
        if (len > SX_STRING_VALUE_MAX_BYTES)
            return invalid(err, "%s: string value is %zu bytes; the limit is %d", w, len,
                           SX_STRING_VALUE_MAX_BYTES);
        if ((bad = sx_utf8_invalid_at(v->s, len)) != len)
            return invalid(err, "%s: string value is not valid UTF-8 (at byte %zu)", w, bad);
        return SX_OK;
    default:
        /* KIND__NOT_SET, or a kind this build does not know. */
        return invalid(err, "%s: value has no kind; set a string (s) or an integer (i)", w);
    }
}

sx_status sx_validate_field(const Shardex__V1__Field *f, size_t index, sx_err *err)
{
    assert(f);
    return check_field(f, NULL, index, err);
}

/* The document checks; messages are prefixed with pre and ": " when pre is
 * set. */
static sx_status check_document(const Shardex__V1__Document *doc, const char *pre, sx_err *err)
{
    const char *p = pre ? pre : "", *sep = pre ? ": " : "";
    if (check_id(doc->id, pre, err) != SX_OK)
        return SX_INVALID_ARGUMENT;
    if (doc->n_fields > SX_DOC_FIELDS_MAX)
        return invalid(err, "%s%s%zu fields; the limit is %d", p, sep, doc->n_fields,
                       SX_DOC_FIELDS_MAX);
    assert(doc->n_fields == 0 || doc->fields);
    for (size_t i = 0; i < doc->n_fields; i++) {
        assert(doc->fields[i]); /* protobuf-c never unpacks a NULL element */
        if (check_field(doc->fields[i], pre, i, err) != SX_OK)
            return SX_INVALID_ARGUMENT;
    }
    /* Last: the fields' own limits are the clearer message when they apply. */
    size_t packed = protobuf_c_message_get_packed_size(&doc->base);
    if (packed > SX_DOC_MAX_BYTES)
        return invalid(err, "%s%sdocument is %zu bytes packed; the limit is %d (1 MiB)", p, sep,
                       packed, SX_DOC_MAX_BYTES);
    return SX_OK;
}

sx_status sx_validate_document(const Shardex__V1__Document *doc, size_t index, sx_err *err)
{
    assert(doc);
    char dw[WHERE_BUF];
    where(dw, "docs", index, "id ", doc->id);
    return check_document(doc, dw, err);
}

sx_status sx_validate_document_unnamed(const Shardex__V1__Document *doc, sx_err *err)
{
    assert(doc);
    return check_document(doc, NULL, err);
}

/* Request-level checks shared by Put and Delete. Size before items: a request
 * over the limit must be split whatever its items hold. */
static sx_status check_request(const ProtobufCMessage *req, size_t n, const char *field,
                               const char *one, const char *many, sx_err *err)
{
    if (n == 0)
        return invalid(err, "%s: at least one %s", field, one);
    if (n > SX_REQUEST_DOCS_MAX)
        return invalid(err, "%s: %zu %s; the limit is %d", field, n, many, SX_REQUEST_DOCS_MAX);
    size_t packed = protobuf_c_message_get_packed_size(req);
    if (packed > SX_REQUEST_MAX_BYTES)
        return invalid(err, "request is %zu bytes packed; the limit is %d (16 MiB)", packed,
                       SX_REQUEST_MAX_BYTES);
    return SX_OK;
}

sx_status sx_validate_put(const Shardex__V1__PutRequest *req, sx_err *err)
{
    assert(req);
    if (check_request(&req->base, req->n_docs, "docs", "document", "documents", err) != SX_OK)
        return SX_INVALID_ARGUMENT;
    for (size_t i = 0; i < req->n_docs; i++)
        if (sx_validate_document(req->docs[i], i, err) != SX_OK)
            return SX_INVALID_ARGUMENT;
    return SX_OK;
}

sx_status sx_validate_delete(const Shardex__V1__DeleteRequest *req, sx_err *err)
{
    assert(req);
    if (check_request(&req->base, req->n_ids, "ids", "id", "ids", err) != SX_OK)
        return SX_INVALID_ARGUMENT;
    for (size_t i = 0; i < req->n_ids; i++) {
        char w[WHERE_BUF];
        where(w, "ids", i, "id ", req->ids[i]);
        if (check_id(req->ids[i], w, err) != SX_OK)
            return SX_INVALID_ARGUMENT;
    }
    return SX_OK;
}
