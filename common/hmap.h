/* hmap.h: a small hash map from byte-string keys to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), power-of-two capacity, grown at 70% load. Keys are copied (and
 * NUL-terminated, so a key that is a C string reads back as one); values are
 * the caller's pointers, never looked at. Hashing is sx_hash64 (XXH64 with a
 * fixed seed): fine for data the process trusts (a log it replays), not for
 * keys an attacker chooses to collide.
 *
 * Not thread-safe: one owner at a time. Not ordered: iteration order is the
 * slot order, which changes as the map grows.
 */
#ifndef SX_HMAP_H
#define SX_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_hmap_slot sx_hmap_slot;

/* A map. Valid when zeroed (empty); free with sx_hmap_free. */
typedef struct sx_hmap {
    sx_hmap_slot *slots; /* cap slots, NULL until the first insert */
    size_t cap;          /* a power of two, or 0 */
    size_t len;          /* keys held */
} sx_hmap;

/* Looks key (n bytes; NULL when n is 0) up: true and *val (val may be NULL)
 * when present, false when not. */
bool sx_hmap_get(const sx_hmap *m, const void *key, size_t n, void **val);

/* The value slot of key, inserted with value NULL if missing (*created tells
 * which; created may be NULL). The pointer is valid until the next insert or
 * remove; write the value through it. Aborts on OOM. */
void **sx_hmap_upsert(sx_hmap *m, const void *key, size_t n, bool *created);

/* Sets key to val. Returns true when it replaced a value, which goes to *old
 * (old may be NULL: then the caller must already own the old value). */
bool sx_hmap_put(sx_hmap *m, const void *key, size_t n, void *val, void **old);

/* Removes key: true and its value in *val (val may be NULL) when it was there. */
bool sx_hmap_remove(sx_hmap *m, const void *key, size_t n, void **val);

size_t sx_hmap_len(const sx_hmap *m);

/* Iteration: start with *pos = 0; each call that returns true gives one entry
 * (key borrowed from the map, NUL-terminated, n bytes before the NUL; key, n
 * and val may be NULL) and advances *pos. Any insert or remove invalidates pos. */
bool sx_hmap_next(const sx_hmap *m, size_t *pos, const char **key, size_t *n, void **val);

/* Frees the map's memory, calling free_val (unless NULL) on every value first;
 * the map is empty (zeroed) again. Accepts a zeroed map. */
void sx_hmap_free(sx_hmap *m, void (*free_val)(void *));

#endif
