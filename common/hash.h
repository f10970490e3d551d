/* hash.h: the hash that decides partitions, fixed as a contract.
 *
 * Everything that must agree on where a document or a term lives (coordinator,
 * workers, the client, tools in other languages) computes it with these rules.
 * Changing the seed, the byte layout or the reduction moves every document to
 * another partition, so they do not change; tests/unit/test_hash.c pins vectors.
 * This is not a cryptographic hash and not for hash tables that face attackers.
 *
 * The contract, reproducible in any language with an XXH64 implementation:
 *
 *   hash64(bytes)             = XXH64(bytes, seed 0), the 64-bit result taken as
 *                               an unsigned number (no byte swapping of the result)
 *   partition_of(id, P)       = hash64(id bytes) mod P
 *   term_partition(index, t, M) = hash64(term_bytes) mod M, where term_bytes is
 *       the index name's bytes (UTF-8, no terminator), one 0x00 byte, then
 *         's' (0x73) followed by the string's bytes, for a string term, or
 *         'i' (0x69) followed by the int64 as 8 bytes, two's complement,
 *                    big-endian, for an integer term.
 *
 * Example: the string term "red" in index "color" hashes the 10 bytes
 * "color" 00 73 "red"; the integer term -1 in index "n" hashes
 * 6e 00 69 ff ff ff ff ff ff ff ff.
 */
#ifndef SX_HASH_H
#define SX_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH64 of the n bytes at p with seed 0. p may be NULL when n is 0.
 * Pure; any thread. */
uint64_t sx_hash64(const void *p, size_t n);

/* The document partition of the n-byte id: sx_hash64(id, n) % partitions.
 * partitions must be > 0 (asserted). */
uint32_t sx_partition_of(const void *id, size_t n, uint32_t partitions);

/* The partition of a global index's string term: the n bytes at s (which may
 * hold any byte, including 0x00) in the index named by the NUL-terminated
 * string index, reduced mod m (> 0, asserted). Layout in the comment above. */
uint32_t sx_term_partition_of_str(const char *index, const void *s, size_t n, uint32_t m);

/* The partition of a global index's integer term v, reduced mod m (> 0,
 * asserted). Layout in the comment above. */
uint32_t sx_term_partition_of_int(const char *index, int64_t v, uint32_t m);

#endif
