/* out.c: aligned text tables, protobuf-c messages as JSON, base64. Nothing in
 * here knows shardex's messages: the JSON mapping walks the descriptors. */
#include "out.h"

#include "mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------- table -- */

struct sx_table {
    size_t ncols;
    char **headers;
    sx_align *align;
    char **cells; /* row-major; ncells of them */
    size_t ncells, cap;
};

sx_table *sx_table_new(void)
{
    return sx_calloc(1, sizeof(sx_table));
}

void sx_table_col(sx_table *t, const char *header, sx_align align)
{
    t->headers = sx_realloc(t->headers, (t->ncols + 1) * sizeof(*t->headers));
    t->align = sx_realloc(t->align, (t->ncols + 1) * sizeof(*t->align));
    t->headers[t->ncols] = sx_strdup(header);
    t->align[t->ncols] = align;
    t->ncols++;
}

void sx_table_cell(sx_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("out of memory\n", stderr);
        abort();
    }
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (t->ncells == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->cells = sx_realloc(t->cells, t->cap * sizeof(*t->cells));
    }
    t->cells[t->ncells++] = s;
}

size_t sx_table_rows(const sx_table *t)
{
    return t->ncols ? t->ncells / t->ncols : 0;
}

size_t sx_out_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

static void print_row(const sx_table *t, char *const *row, const size_t *width, FILE *out,
                      int indent)
{
    fprintf(out, "%*s", indent, "");
    for (size_t c = 0; c < t->ncols; c++) {
        size_t pad = width[c] - sx_out_width(row[c]);
        bool last = c + 1 == t->ncols;
        if (t->align[c] == SX_ALIGN_RIGHT)
            fprintf(out, "%*s%s", (int)pad, "", row[c]);
        else
            fprintf(out, "%s%*s", row[c], last ? 0 : (int)pad, "");
        if (!last)
            fputs("  ", out);
    }
    fputc('\n', out);
}

void sx_table_print(const sx_table *t, FILE *out, int indent, bool header)
{
    if (!t->ncols)
        return;
    size_t *width = sx_calloc(t->ncols, sizeof(*width));
    size_t rows = sx_table_rows(t);
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = header ? sx_out_width(t->headers[c]) : 0;
        for (size_t r = 0; r < rows; r++) {
            size_t w = sx_out_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    if (header)
        print_row(t, t->headers, width, out, indent);
    for (size_t r = 0; r < rows; r++)
        print_row(t, t->cells + r * t->ncols, width, out, indent);
    free(width);
}

void sx_table_free(sx_table *t)
{
    if (!t)
        return;
    for (size_t c = 0; c < t->ncols; c++)
        free(t->headers[c]);
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->headers);
    free(t->align);
    free(t->cells);
    free(t);
}

/* ---------------------------------------------------------------- base64 -- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sx_out_base64(const void *p, size_t n)
{
    const unsigned char *b = p;
    char *s = sx_malloc(4 * ((n + 2) / 3) + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            v |= b[i + 2];
        s[k++] = B64[(v >> 18) & 63];
        s[k++] = B64[(v >> 12) & 63];
        s[k++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        s[k++] = i + 2 < n ? B64[v & 63] : '=';
    }
    s[k] = '\0';
    return s;
}

static int b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

bool sx_out_base64_decode(const char *s, unsigned char **out, size_t *n)
{
    size_t len = strlen(s);
    while (len && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return false;
    unsigned char *b = sx_malloc(len * 3 / 4 + 1);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int d = b64_digit(s[i]);
        if (d < 0) {
            free(b);
            return false;
        }
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[k++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out = b;
    *n = k;
    return true;
}

/* ------------------------------------------------------------------ json -- */

static json_t *u64_json(uint64_t v)
{
    if (v <= INT64_MAX)
        return json_integer((json_int_t)v);
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return json_string(buf);
}

/* One value of field f stored at p. */
static json_t *scalar_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return u64_json(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        json_t *j = json_string(s ? s : "");
        if (j)
            return j;
        /* Not UTF-8 (the server validates, but be safe): non-ASCII bytes as '?'. */
        char *c = sx_strdup(s);
        for (char *q = c; *q; q++)
            if ((unsigned char)*q >= 0x80)
                *q = '?';
        j = json_string(c);
        free(c);
        return j;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *s = sx_out_base64(b->data, b->len);
        json_t *j = json_string(s);
        free(s);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? sx_out_pb_json(m) : json_null();
    }
    }
    return json_null();
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

json_t *sx_out_pb_json(const ProtobufCMessage *msg)
{
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    const char *base = (const char *)msg;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)p;
            v = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(v, scalar_json(f, arr + k * elem_size(f)));
        } else {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                    continue;
            } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                       f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
                if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                    continue;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage *const *)p)
                continue;
            v = scalar_json(f, p);
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

bool sx_out_json_print(const json_t *j, FILE *out)
{
    if (json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) != 0)
        return false;
    return fputc('\n', out) != EOF;
}
