/* keys.c: order-preserving key encoding (see keys.h for the formats).
 *
 * Why the string format sorts: a content byte is never 0x00 unescaped, so at
 * the first difference between two strings either both bytes are content
 * (memcmp order), or one string has ended (0x00 0x01) or has a 0x00 (0x00 0xFF)
 * where the other has a larger byte, or both have 0x00 and the terminator's
 * 0x01 sorts below the escape's 0xFF. A shorter string thus sorts before its
 * extensions whatever follows it in a composite key.
 */
#include "keys.h"

#include <string.h>

#define STR_ESC 0x00  /* first byte of both two-byte sequences */
#define STR_ZERO 0xFF /* 0x00 0xFF: a 0x00 content byte */
#define STR_END 0x01  /* 0x00 0x01: end of the string */

#define I64_SIGN (UINT64_C(1) << 63)

static void put_be(sx_buf *b, uint64_t v, size_t width)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < width; i++)
        tmp[i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    sx_buf_append(b, tmp, width);
}

void sx_key_append_str(sx_buf *b, const void *s, size_t n)
{
    const uint8_t *p = s;
    /* Reserve the common case (no zeros) once; zeros grow it as they come. */
    sx_buf_reserve(b, n + 2);
    size_t i = 0;
    while (i < n) {
        const uint8_t *z = memchr(p + i, 0, n - i);
        size_t run = z ? (size_t)(z - (p + i)) : n - i;
        sx_buf_append(b, p + i, run);
        i += run;
        if (i < n) {
            sx_buf_push(b, STR_ESC);
            sx_buf_push(b, STR_ZERO);
            i++;
        }
    }
    sx_buf_push(b, STR_ESC);
    sx_buf_push(b, STR_END);
}

void sx_key_append_i64(sx_buf *b, int64_t v)
{
    put_be(b, (uint64_t)v ^ I64_SIGN, 8);
}

void sx_key_append_u64(sx_buf *b, uint64_t v)
{
    put_be(b, v, 8);
}

void sx_key_append_u32(sx_buf *b, uint32_t v)
{
    put_be(b, v, 4);
}

void sx_key_append_u8(sx_buf *b, uint8_t v)
{
    sx_buf_push(b, v);
}

void sx_key_reader_init(sx_key_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
}

bool sx_key_reader_done(const sx_key_reader *r)
{
    return r->pos == r->len;
}

/* Reads width big-endian bytes; the bound check is phrased so it cannot
 * overflow whatever pos and len hold. */
static bool get_be(sx_key_reader *r, size_t width, uint64_t *out)
{
    if (r->pos > r->len || r->len - r->pos < width)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | r->p[r->pos + i];
    r->pos += width;
    *out = v;
    return true;
}

bool sx_key_read_str(sx_key_reader *r, sx_buf *out)
{
    if (r->pos > r->len)
        return false;
    size_t out_len = out ? out->len : 0;
    size_t i = r->pos;
    while (i < r->len) {
        const uint8_t *z = memchr(r->p + i, STR_ESC, r->len - i);
        if (!z)
            break; /* unterminated */
        size_t run = (size_t)(z - (r->p + i));
        if (out)
            sx_buf_append(out, r->p + i, run);
        i += run;
        if (r->len - i < 2)
            break; /* 0x00 as the last byte */
        uint8_t tag = r->p[i + 1];
        if (tag == STR_END) {
            r->pos = i + 2;
            return true;
        }
        if (tag != STR_ZERO)
            break; /* bad escape */
        if (out)
            sx_buf_push(out, 0);
        i += 2;
    }
    if (out)
        out->len = out_len;
    return false;
}

bool sx_key_read_i64(sx_key_reader *r, int64_t *out)
{
    uint64_t u;
    if (!get_be(r, 8, &u))
        return false;
    u ^= I64_SIGN;
    /* Converting a uint64 above INT64_MAX to int64 is implementation-defined;
     * build negatives from their complement instead. */
    *out = u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)~u - 1;
    return true;
}

bool sx_key_read_u64(sx_key_reader *r, uint64_t *out)
{
    return get_be(r, 8, out);
}

bool sx_key_read_u32(sx_key_reader *r, uint32_t *out)
{
    uint64_t u;
    if (!get_be(r, 4, &u))
        return false;
    *out = (uint32_t)u;
    return true;
}

bool sx_key_read_u8(sx_key_reader *r, uint8_t *out)
{
    uint64_t u;
    if (!get_be(r, 1, &u))
        return false;
    *out = (uint8_t)u;
    return true;
}

bool sx_key_prefix_successor(const void *prefix, size_t n, sx_buf *out)
{
    const uint8_t *p = prefix;
    sx_buf_reset(out);
    while (n > 0 && p[n - 1] == 0xFF)
        n--;
    if (n == 0)
        return false;
    sx_buf_append(out, p, n);
    out->data[n - 1]++;
    return true;
}
