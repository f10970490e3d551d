/* ixkey.h: what an index holds for a document, and how its entries are keyed.
 *
 * Shared by the workers (apply, ship, scan) and the tools (verify recomputes
 * every index from the log with these same functions), so that "what the log
 * implies" has one definition.
 *
 * An index entry is (value, id) -> version, keyed by the entry key
 *     enc(value) ++ enc(id)
 * with common/keys.h encodings (a string value and the id: sx_key_append_str;
 * an int value: sx_key_append_i64), so keys sort by (value, id). A document
 * gives one entry per distinct value of the index's field with the index's
 * type; a value of the other type is not indexed and makes the document
 * "mistyped". A global index's entry lives in term partition
 * sx_term_partition_of_{str,int}(name, value, M) (common/hash.h) when it is
 * hash-partitioned; when range-partitioned, in the t with
 * split[t-1] <= value < split[t], comparing values in the order their keys
 * sort in (ints numerically, strings bytewise, a prefix first). The split
 * points are part of the spec, which every replica reads from the same
 * index_start marker in the log, so every replica routes a value alike.
 *
 * Online splits (docs/indexes.md, "Online split") extend the split points
 * with a layout: splits applied in order, each taking term partition `term`
 * to `lo` (values below `at`) and `hi` (the rest). A value's term partition
 * is the base one followed through the splits: sx_ixkey_term_of stays the
 * one routing function, and the caller decides which splits are in effect
 * (the outbox: every split marker applied; a query: the splits the map has
 * swapped in; verify: the splits of the log it replays).
 *
 * Pure functions on caller memory; any thread.
 */
#ifndef SX_IXKEY_H
#define SX_IXKEY_H

#include "mem.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An index as the apply path needs it. Strings are borrowed. */
typedef struct sx_ixkey_def {
    uint64_t id;
    const char *name;
    const char *field;
    bool is_int; /* VALUE_TYPE_INT; else strings */
    bool local, global;
    uint32_t term_partitions; /* M, > 0 when global */
    bool range;               /* PARTITIONING_RANGE: by split points, else by hash */
    size_t nsplits;           /* range: M - 1 split points, increasing, borrowed */
    Shardex__V1__Value *const *splits;
    /* range: the online splits in effect, in order (borrowed); every one but
     * the last must be done. When the last is not done, sx_ixkey_terms_of
     * also names its parent (the outbox writes both until the swap). */
    size_t nlayout;
    Shardex__Internal__V1__IndexSplit *const *layout;
    /* Hot values salted (docs/indexes.md "Hot values"), borrowed: an entry
     * (v, id) of version >= salt->from goes to salt->terms[slot(id)] instead
     * of v's own partition, then through the layout as any value. */
    size_t nsalts;
    Shardex__Internal__V1__IndexSalt *const *salts;
} sx_ixkey_def;

/* The seed of sx_ixkey_salt_slot's XXH64 (part of the routing contract). */
#define SX_IXKEY_SALT_SEED 0x5a17u

/* Fills d from a spec (borrowing its strings). */
void sx_ixkey_def_from_spec(sx_ixkey_def *d, uint64_t id, const Shardex__V1__IndexSpec *spec);

/* The distinct value keys (enc(value) only, no id) that doc gives index d,
 * sorted, as a list of (offset, length) into keys->data: vals[i] is
 * keys->data + offs[i], lens[i]. Returns the count (at most the document's
 * field count). keys is cleared first; offs/lens must hold cap entries (cap >=
 * doc->n_fields). *mistyped: some value of the field has the other type. */
size_t sx_ixkey_doc_values(const sx_ixkey_def *d, const Shardex__V1__Document *doc, sx_buf *keys,
                           size_t *offs, size_t *lens, size_t cap, bool *mistyped);

/* The term partition of an encoded value key (as sx_ixkey_doc_values gives;
 * anything after enc(value), such as an id, is ignored): the value's own
 * partition under d's layout, salts left out (a query adds a salted value's
 * partitions with sx_ixkey_salt_terms). */
uint32_t sx_ixkey_term_of(const sx_ixkey_def *d, const uint8_t *vkey, size_t n);

/* THE routing function: the term partitions a change of entry (value, id)
 * of `version` (the offset of the document it comes from) goes to. out[0]:
 * the value's own partition, or, when the value is salted with from <=
 * version, salt->terms[sx_ixkey_salt_slot(id)]; then followed through the
 * layout. out[1], when the count is 2, the parent of an unfinished last split
 * of d->layout whose range holds the value (the outbox writes both until the
 * swap). A pure function of (d: spec, splits and salts in effect, value, id,
 * version), so the outbox, a leader's rebuild and verify's replay agree. */
size_t sx_ixkey_terms_of(const sx_ixkey_def *d, const uint8_t *vkey, size_t n, const char *id,
                         size_t id_len, uint64_t version, uint32_t out[2]);

/* Which of a salt's `ways` term partitions an id's entries go to:
 * XXH64(id, SX_IXKEY_SALT_SEED) mod ways. */
uint32_t sx_ixkey_salt_slot(const char *id, size_t n, uint32_t ways);

/* The salt of value v in d (NULL: not salted). */
const Shardex__Internal__V1__IndexSalt *sx_ixkey_salt_of(const sx_ixkey_def *d,
                                                         const Shardex__V1__Value *v);

/* The distinct term partitions that may hold entries of a salted value under
 * d's layout (its terms followed through the splits), into out (at least
 * salt->n_terms entries). Returns the count. */
size_t sx_ixkey_salt_terms(const sx_ixkey_def *d, const Shardex__Internal__V1__IndexSalt *salt,
                           uint32_t *out);

/* Chooses the term partitions of a new salt of v over `ways` (the
 * coordinator; d: the map's layout, done splits only, and its salts): terms[0]
 * is v's own serving partition, then the next ones, (t0 + i) mod M for hash
 * partitioning, the next serving ones in value order (wrapping) for range.
 * Checks: d global, v of the index's type, not salted yet, 2 <= ways <= the
 * serving partitions. False with the message (for INVALID_ARGUMENT, naming
 * the field and the limit) in msg. terms must hold ways entries. */
bool sx_ixkey_plan_salt(const sx_ixkey_def *d, const Shardex__V1__Value *v, uint32_t ways,
                        uint32_t *terms, char *msg, size_t cap);

/* The number of term partition numbers d uses: M plus 2 per split of its
 * layout (retired ones included). */
uint32_t sx_ixkey_term_count(const sx_ixkey_def *d);

/* The term partitions serving under d's layout, in value order: terms[i]
 * owns [lower[i], lower[i+1]) (lower[0] NULL: open; borrowed from d). Both
 * arrays must hold sx_ixkey_term_count(d) entries. Returns the count. A hash
 * index: 0 .. M-1 with lower all NULL. */
size_t sx_ixkey_layout_order(const sx_ixkey_def *d, uint32_t *terms,
                             const Shardex__V1__Value **lower);

/* Checks a split of term partition t at `at` against d's layout (which must
 * hold every split made so far): d range-partitioned, t serving, at of the
 * index's type and strictly inside t's range. False with the message (for
 * INVALID_ARGUMENT, naming the field) in msg. */
bool sx_ixkey_check_split(const sx_ixkey_def *d, uint32_t t, const Shardex__V1__Value *at,
                          char *msg, size_t cap);

/* Compares two values of one type (is_int) in index order: <0, 0, >0. */
int sx_ixkey_value_cmp(bool is_int, const Shardex__V1__Value *a, const Shardex__V1__Value *b);

/* Checks a spec's partitioning against its type: RANGE needs global, and
 * split points of the spec's type, strictly increasing, at most max - 1 of
 * them, or none with term_partitions 1 (one partition owns every value);
 * HASH (or unspecified) takes none. On failure returns false and writes
 * the message (for INVALID_ARGUMENT) to msg. */
bool sx_ixkey_check_partitioning(const Shardex__V1__IndexSpec *spec, uint32_t max, char *msg,
                                 size_t cap);

/* A deep copy of v: caller frees with sx_ixkey_value_free. */
Shardex__V1__Value *sx_ixkey_value_dup(const Shardex__V1__Value *v);
void sx_ixkey_value_free(Shardex__V1__Value *v);

/* Appends enc(value) of v to b; false (b unchanged) when v's type is not the
 * index's or v is unset. */
bool sx_ixkey_append_value(sx_buf *b, bool is_int, const Shardex__V1__Value *v);

/* Splits an entry key into its value (decoded into *v: v->s points into sbuf,
 * which is replaced) and its id (appended to id, NUL-terminated, not counted
 * in its length). False when the key is malformed. */
bool sx_ixkey_split_key(bool is_int, const uint8_t *key, size_t n, Shardex__V1__Value *v,
                        sx_buf *sbuf, sx_buf *id);

/* The order-independent digest: acc plus XXH64(key ++ u64 version BE). */
uint64_t sx_ixkey_digest_add(uint64_t acc, const uint8_t *key, size_t n, uint64_t version);

#endif
