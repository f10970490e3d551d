/* wl_judge.h: the checkers of the chaos workload, as a pure core: given a
 * history (wl_history.h) and what a settled cluster answered (documents read
 * back, index query results), they name every violation. The driver
 * (wl_check.c) does the calls; nothing here does I/O but printing.
 *
 * Violations, by kind:
 *   A  a key's final state is not one the history allows. Each key has one
 *      writer, so its operations are totally ordered (by op number). Allowed:
 *      the state left by its last ok operation (a delete: not found), or by
 *      any unknown operation after it; with no ok operation, not found or any
 *      unknown operation's state. A failed (proved not applied) operation's
 *      value, an earlier value (an acknowledged write lost, or an unknown one
 *      applied late) and a missing document are A. So is a bad Put that was
 *      acknowledged.
 *   U  something read that no writer wrote: a value not in the history, or
 *      written to another key, a field g that does not match the value, a
 *      query hit on a document id the history does not have.
 *   L, G  a query in MODE_LOCAL (L) or MODE_GLOBAL (G) does not return exactly
 *      the documents whose current value (from the documents read back) is
 *      the value asked: a missing or an extra (stale) hit, a hit with another
 *      value, or an answer served in another mode.
 *      Hits on documents of other runs (ids not starting with the run's tag)
 *      are ignored: runs share the indexes and the g values.
 *   D  a document twice in one query's hits (the field is single-valued).
 *   V  `shardex verify` exited non-zero (added by the driver).
 *   E  the check could not be made: a read or query that failed after its
 *      retries (added by the driver); not a proof of a bug.
 *
 * Single-threaded: one owner per sx_judge.
 */
#ifndef SX_WL_JUDGE_H
#define SX_WL_JUDGE_H

#include "shardex.h"
#include "wl_history.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    SX_JUDGE_A, /* final state not allowed by the history */
    SX_JUDGE_U, /* read something no writer wrote */
    SX_JUDGE_L, /* LOCAL query differs from the documents */
    SX_JUDGE_G, /* GLOBAL query differs from the documents */
    SX_JUDGE_D, /* duplicate hit */
    SX_JUDGE_V, /* shardex verify failed */
    SX_JUDGE_E, /* could not check */
    SX_JUDGE_KINDS
} sx_judge_kind;

typedef struct sx_judge sx_judge;

/* A judge of history h (borrowed: h must outlive it). Free with sx_judge_free. */
sx_judge *sx_judge_create(const sx_history *h);
void sx_judge_free(sx_judge *j); /* accepts NULL */

/* ------------------------------------------------------------- documents -- */

/* The keys of the history, 0..n-1, in first-seen order. */
size_t sx_judge_nkeys(const sx_judge *j);
const char *sx_judge_key(const sx_judge *j, size_t i);

/* Adds the token of every ok operation on key i to ts (for Get's `after`). */
void sx_judge_key_tokens(const sx_judge *j, size_t i, sx_token_set *ts);

/* Records what a Get of key i answered (r borrowed for the call: found, and
 * fields v and g are copied). */
void sx_judge_doc(sx_judge *j, size_t i, const Shardex__V1__GetResponse *r);

/* Runs A and U over every key whose Get was recorded. Call once, after the
 * documents and before the queries. */
void sx_judge_check_docs(sx_judge *j);

/* --------------------------------------------------------------- queries -- */

/* One query to make: index and field, and the value asked (eq). */
typedef struct sx_judge_query {
    char index[80];
    char field[2]; /* "v" or "g" */
    const char *value;
} sx_judge_query;

/* The queries to make, into *out (caller frees with free(); values borrowed
 * from j): on index <index>_v, every current value and up to `sample` older
 * values from the history (chosen by the history's seed); on <index>_g,
 * every group g0..g<groups-1>. Call after sx_judge_check_docs. */
size_t sx_judge_queries(const sx_judge *j, uint32_t sample, sx_judge_query **out);

/* The hits of every page of one query, collected by the driver. Valid when
 * zeroed; free with sx_judge_hits_free. */
typedef struct sx_judge_hits {
    const char **ids;
    const char **values; /* NULL: the hit had no string value */
    size_t n, cap;
    sx_arena arena;
} sx_judge_hits;

void sx_judge_hits_add(sx_judge_hits *h, const char *id, const char *value);
void sx_judge_hits_free(sx_judge_hits *h);

/* Runs L or G (by `asked`) and D and U over one query's answer: the hits
 * against the documents read back. served: the mode the answer says it used. */
void sx_judge_query_result(sx_judge *j, const sx_judge_query *q, Shardex__V1__Mode asked,
                           Shardex__V1__Mode served, const sx_judge_hits *hits);

/* ---------------------------------------------------------------- report -- */

/* Adds a violation (the driver's V and E, or any other); printf-style detail. */
void sx_judge_add(sx_judge *j, sx_judge_kind kind, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

size_t sx_judge_count(const sx_judge *j, sx_judge_kind kind);

/* The table of violations (at most max_rows rows, 0: all) and the counts. */
void sx_judge_print(const sx_judge *j, size_t max_rows, FILE *out);

/* 0: none; 1: a violation of A, U, L, G, D or V; 3: only E (could not check). */
int sx_judge_exit_code(const sx_judge *j);

/* Per writer: operations, ok, fail, unknown, the share not ok, and the
 * longest time without an ok operation (from the run's start, between two
 * ok operations, to the run's end: its trailer, else the last operation);
 * per log partition (0..partitions-1; 0: none) the same gap, of the ok
 * tokens' partitions; then one line "availability: writer-gap-ms=W
 * partition-gap-ms=P cluster-gap-ms=C": the longest of each, and the
 * longest time with no ok operation anywhere. */
void sx_judge_print_availability(const sx_history *h, uint32_t partitions, FILE *out);

#endif
