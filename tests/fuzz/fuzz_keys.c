/* fuzz_keys.c: the key codecs, common/keys.h and common/ixkey.h, on bytes
 * read from disk or the network (decoders) and on arbitrary values (encoders).
 *
 * Input: one byte that picks a schema (the types of a key's components, or an
 * entry key of a string or int index), then the key. Properties:
 *   - decoding never reads outside the input (ASan) and, when it succeeds,
 *     encoding what it decoded gives the same bytes back (one encoding per
 *     key);
 *   - order: the input split in two strings or two i64s encodes in the order
 *     of the values (memcmp of the strings, < of the ints);
 *   - sx_key_prefix_successor is above the prefix and every extension of it;
 *   - an entry key splits (sx_ixkey_split_key) into what it was built from;
 *   - any bytes as a value key have a term partition (sx_ixkey_term_of).
 */
#include "fuzz.h"

#include "ixkey.h"
#include "keys.h"

#include <string.h>

/* Component types of a schema. */
enum { C_STR, C_I64, C_U64, C_U32, C_U8 };

/* Eight schemas, as the keys of the store use them (and a few more). */
static const char *const schemas[] = {
    "s", "i", "ss", "is", "bqs", "qs", "lsq", "sibl",
};

static int type_of(char c)
{
    switch (c) {
    case 's':
        return C_STR;
    case 'i':
        return C_I64;
    case 'q':
        return C_U64;
    case 'l':
        return C_U32;
    default:
        return C_U8;
    }
}

/* Decodes data with schema, encodes what it read into out; false when the
 * key does not decode. */
static bool decode_encode(const char *schema, const uint8_t *data, size_t size, sx_buf *out)
{
    sx_key_reader r;
    sx_key_reader_init(&r, data, size);
    sx_buf s = {0};
    bool ok = true;
    for (const char *c = schema; ok && *c; c++) {
        size_t pos = r.pos;
        switch (type_of(*c)) {
        case C_STR:
            sx_buf_reset(&s);
            ok = sx_key_read_str(&r, &s);
            if (ok)
                sx_key_append_str(out, s.data, s.len);
            break;
        case C_I64: {
            int64_t v;
            ok = sx_key_read_i64(&r, &v);
            if (ok)
                sx_key_append_i64(out, v);
            break;
        }
        case C_U64: {
            uint64_t v;
            ok = sx_key_read_u64(&r, &v);
            if (ok)
                sx_key_append_u64(out, v);
            break;
        }
        case C_U32: {
            uint32_t v;
            ok = sx_key_read_u32(&r, &v);
            if (ok)
                sx_key_append_u32(out, v);
            break;
        }
        default: {
            uint8_t v;
            ok = sx_key_read_u8(&r, &v);
            if (ok)
                sx_key_append_u8(out, v);
            break;
        }
        }
        /* On failure the reader stays where it was. */
        SX_FUZZ_CHECK(ok || r.pos == pos);
        SX_FUZZ_CHECK(r.pos <= r.len);
    }
    sx_buf_free(&s);
    return ok && sx_key_reader_done(&r);
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

static int bytes_cmp(const void *a, size_t na, const void *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    int c = n ? memcmp(a, b, n) : 0;
    return c ? sign(c) : (na > nb) - (na < nb);
}

/* Two strings, and two i64s, encode in the order of their values. */
static void check_order(const uint8_t *data, size_t size)
{
    size_t half = size / 2;
    sx_buf a = {0}, b = {0};
    sx_key_append_str(&a, data, half);
    sx_key_append_str(&b, data + half, size - half);
    SX_FUZZ_CHECK(bytes_cmp(a.data, a.len, b.data, b.len) ==
                  bytes_cmp(data, half, data + half, size - half));
    if (size >= 16) {
        int64_t x, y;
        memcpy(&x, data, 8);
        memcpy(&y, data + 8, 8);
        sx_buf_reset(&a);
        sx_buf_reset(&b);
        sx_key_append_i64(&a, x);
        sx_key_append_i64(&b, y);
        SX_FUZZ_CHECK(bytes_cmp(a.data, a.len, b.data, b.len) == (x > y) - (x < y));
    }
    sx_buf_free(&a);
    sx_buf_free(&b);
}

static void check_successor(const uint8_t *data, size_t size)
{
    sx_buf succ = {0}, ext = {0};
    if (sx_key_prefix_successor(data, size, &succ)) {
        SX_FUZZ_CHECK(bytes_cmp(succ.data, succ.len, data, size) > 0);
        sx_buf_append(&ext, data, size);
        for (int i = 0; i < 4; i++)
            sx_buf_push(&ext, 0xFF);
        SX_FUZZ_CHECK(bytes_cmp(succ.data, succ.len, ext.data, ext.len) > 0);
    } else {
        SX_FUZZ_CHECK(succ.len == 0);
        for (size_t i = 0; i < size; i++)
            SX_FUZZ_CHECK(data[i] == 0xFF);
    }
    sx_buf_free(&succ);
    sx_buf_free(&ext);
}

/* An entry key of an index of the given type: a split key builds back. */
static void check_entry_key(bool is_int, const uint8_t *data, size_t size)
{
    Shardex__V1__Value v;
    sx_buf s = {0}, id = {0}, again = {0};
    if (sx_ixkey_split_key(is_int, data, size, &v, &s, &id)) {
        SX_FUZZ_CHECK(id.cap > id.len && id.data[id.len] == '\0');
        if (is_int) {
            sx_key_append_i64(&again, v.i);
        } else {
            SX_FUZZ_CHECK(s.len >= 1 && s.data[s.len - 1] == '\0');
            sx_key_append_str(&again, s.data, s.len - 1);
        }
        sx_key_append_str(&again, id.data, id.len);
        SX_FUZZ_CHECK(again.len == size && memcmp(again.data, data, size) == 0);
    } else {
        SX_FUZZ_CHECK(id.len == 0);
    }
    sx_buf_free(&s);
    sx_buf_free(&id);
    sx_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++, size--;
    const char *schema = schemas[sel % 8];
    sx_buf out = {0};
    if (decode_encode(schema, data, size, &out))
        SX_FUZZ_CHECK(out.len == size && memcmp(out.data, data, size) == 0);
    sx_buf_free(&out);
    check_entry_key(sel & 8, data, size);
    /* The term partition of a value key that may be malformed. */
    sx_ixkey_def d = {.id = 1,
                      .name = "ix",
                      .field = "f",
                      .is_int = sel & 16,
                      .global = true,
                      .term_partitions = 1u + sel % 5};
    SX_FUZZ_CHECK(sx_ixkey_term_of(&d, data, size) < d.term_partitions);
    check_order(data, size);
    check_successor(data, size);
    return 0;
}
