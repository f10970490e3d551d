/* keys.h: order-preserving key encoding.
 *
 * Encoded keys compared with memcmp (LevelDB's default bytewise comparator)
 * sort exactly like the values they encode, so an index scan is a plain range
 * scan. A composite key is the concatenation of its components and sorts
 * component by component; strings are self-delimiting for that reason.
 *
 * Encodings (stable: they are on disk and on the wire):
 *   str  bytes with 0x00 written as 0x00 0xFF, then the terminator 0x00 0x01
 *   i64  8 bytes big-endian with the sign bit flipped (negatives first)
 *   u64, u32, u8  big-endian
 * No type tags: the reader must know the schema of the key it decodes.
 *
 * Pure functions on caller memory; no I/O, no locks, no global state: every
 * thread may call them, each on its own buffers and readers.
 */
#ifndef SX_KEYS_H
#define SX_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* Appenders: each appends one component to b (growing it; aborts on OOM).
 * s may be NULL when n is 0. */
void sx_key_append_str(sx_buf *b, const void *s, size_t n);
void sx_key_append_i64(sx_buf *b, int64_t v);
void sx_key_append_u64(sx_buf *b, uint64_t v);
void sx_key_append_u32(sx_buf *b, uint32_t v);
void sx_key_append_u8(sx_buf *b, uint8_t v);

/* A cursor over an encoded key. Borrows p (not copied): keep it alive and
 * unchanged while reading. Fields are public so that callers can find where a
 * component starts (p + pos), e.g. to build a prefix from a decoded key. */
typedef struct sx_key_reader {
    const uint8_t *p;
    size_t len;
    size_t pos; /* offset of the next unread byte, <= len */
} sx_key_reader;

void sx_key_reader_init(sx_key_reader *r, const void *p, size_t len);

/* Readers: each decodes one component at r->pos and advances past it.
 * Return false on truncated or malformed input (an unterminated string, a 0x00
 * followed by anything but 0xFF or 0x01), never reading outside [p, p + len);
 * on false r and out are left unchanged. The input may come from disk or the
 * network: these are the checks, callers need no others.
 * sx_key_read_str appends the decoded bytes to out; out may be NULL to skip. */
bool sx_key_read_str(sx_key_reader *r, sx_buf *out);
bool sx_key_read_i64(sx_key_reader *r, int64_t *out);
bool sx_key_read_u64(sx_key_reader *r, uint64_t *out);
bool sx_key_read_u32(sx_key_reader *r, uint32_t *out);
bool sx_key_read_u8(sx_key_reader *r, uint8_t *out);

/* True when every byte has been read (a decoder checks this last, so that
 * trailing garbage is rejected). */
bool sx_key_reader_done(const sx_key_reader *r);

/* Sets out (replacing its contents) to the smallest key greater than every key
 * that starts with prefix: trailing 0xFF bytes dropped, the last byte
 * incremented. Returns false, with out empty, when no such key exists (prefix
 * empty or all 0xFF): the range has no upper bound. prefix must not point
 * into out's memory. */
bool sx_key_prefix_successor(const void *prefix, size_t n, sx_buf *out);

#endif
