/* qplan.h: what a Shardex.Query will do, decided before anything is sent.
 *
 * A pure function of (the request, the index's map entry, P): no RPC, no
 * threads, no clock. worker/query.c runs the plan (fans the scans out with
 * worker/fanout.h and merges them); everything it refuses without asking
 * another worker is refused here, with the message the client sees.
 *
 * Steps, in order (the first failure is the answer):
 *   1. the request alone: an index named, limit at most SX_QUERY_LIMIT_MAX
 *      (0: SX_QUERY_LIMIT_DEFAULT), a match set (eq or range);
 *   2. the map (sx_qplan_make only): joined (P > 0), the index exists;
 *   3. the key range [start, end) of entry keys enc(value) ++ enc(id)
 *      (common/ixkey.h): eq is every key that starts with enc(value); a range
 *      runs from enc(min) (open: from the first) to just past every key that
 *      starts with enc(max) (open: to the last). eq, range.min and range.max
 *      must have the index's type;
 *   4. the page token, when given: the next page starts just after its last
 *      key (or at start, whichever is later); a position token (below): each
 *      log partition starts just after its own position, and the plan is
 *      LOCAL;
 *   5. every after[i].partition below P;
 *   6. the mode (sx_qplan_mode), then the targets: LOCAL scans every log
 *      partition p (ScanLocal on its leader, documents from the same snapshot
 *      when include_docs); GLOBAL scans the one term partition of an eq value
 *      (sx_ixkey_term_of) and, for a range, all M term partitions of a
 *      hash-partitioned index or, of a range-partitioned one, only those from
 *      the term partition of start to that of range.max, in value order
 *      (ScanTerm on the owner; partitions_contacted counts them). In auto
 *      mode a GLOBAL scan of an index also kept LOCAL asks for a view at most
 *      SX_QPLAN_AUTO_MAX_STALENESS_MS old, and the query falls back to LOCAL
 *      when the term partitions cannot answer (sx_qplan_falls_back,
 *      sx_qplan_go_local).
 *
 * Page token (opaque to clients): u8 SX_QPLAN_TOKEN_VERSION, u64 index id,
 * then the last key returned (common/keys.h encodings). The id makes a token
 * of another index, or of a dropped and re-created one, refused.
 *
 * A partial page (some log partitions did not answer within the budget)
 * cannot say "every hit up to key K has been read": the missing partitions
 * were not read at all. Its token holds a position per log partition
 * instead: u8 SX_QPLAN_TOKEN_POSITIONS, u64 index id, u32 P, then for each
 * partition p a u32 length and the last key read from p (length 0: nothing
 * read yet, start at the range's start). The next page scans each partition
 * just after its own position (step 4), so a partition missing from one page
 * is read from where it stood when it answers on a later one: no hit is
 * skipped or repeated, but hits of a late partition may come after larger
 * keys of earlier pages (each page is ordered; the sequence of pages is not,
 * until every partition has answered). Such a token continues LOCAL only
 * (auto mode is served LOCAL; GLOBAL is refused), and the query answers with
 * a position token again until the positions meet (then a plain one).
 *
 * Memory: everything a plan points to is in the caller's arena, or borrowed
 * from the request (the `after` tokens), which must outlive the plan; nothing
 * is borrowed from the map, so the map may be released once the plan is made.
 * Any thread; a plan is used by one thread at a time.
 */
#ifndef SX_QPLAN_H
#define SX_QPLAN_H

#include "ixkey.h"
#include "mem.h"
#include "partmap.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The first byte of every page token: one last key for every partition. */
#define SX_QPLAN_TOKEN_VERSION 1
/* The first byte of a token with one position per log partition (a partial
 * answer's, see above). */
#define SX_QPLAN_TOKEN_POSITIONS 2
/* A hedge is sent this long after a leader's scan when the query has no
 * budget to take a quarter of. */
#define SX_QPLAN_HEDGE_DEFAULT_MS 50
/* Auto mode serves GLOBAL only from term partitions this fresh (when LOCAL
 * can answer instead). */
#define SX_QPLAN_AUTO_MAX_STALENESS_MS 1000

typedef struct sx_qplan {
    sx_ixkey_def def; /* the index; name and field copied into the arena */
    uint32_t P;       /* log partitions */
    uint32_t limit;   /* hits per page, resolved (never 0) */
    bool eq;          /* the match is eq (else a range) */
    bool auto_mode;   /* the client left the mode to the server */
    bool include_docs;
    size_t n_after; /* the request's read-your-writes tokens, borrowed */
    Shardex__V1__WriteToken **after;
    ProtobufCBinaryData start, end; /* entry keys [start, end); empty: open */
    ProtobufCBinaryData max;        /* a range's enc(range.max); empty: open (or eq) */
    bool global;                    /* the chosen mode: GLOBAL (term partitions) or LOCAL */
    size_t n;                       /* targets */
    uint32_t *targets;              /* n of them: term partitions t (GLOBAL) or log partitions p */
    Shardex__Internal__V1__ScanRequest *reqs; /* n of them, the scan for each target */
    /* Answers that say how complete they are (LOCAL only; query.c): */
    uint32_t budget_ms;        /* answer within this with what answered (0: wait for all) */
    uint32_t max_staleness_ms; /* hedge slow leaders' scans to followers this fresh (0: no) */
    uint32_t hedge_ms;         /* hedge after this (resolved: hedge_after_ms, budget/4, or
                                * SX_QPLAN_HEDGE_DEFAULT_MS) */
    bool positional;           /* the page token held one position per partition */
    ProtobufCBinaryData *pos;  /* [P] the last key read from p (len 0: none), from the token */
    bool force_local;          /* such a token continues LOCAL */
    /* Set by the run (query.c) when the newest map retired a target (an
     * online split swapped it out): the query is planned again. */
    _Atomic bool retired;
} sx_qplan;

/* Plans req against map (NULL: not joined yet), steps 1-6 above. On SX_OK
 * *out is filled (in arena). Codes and messages:
 *   SX_INVALID_ARGUMENT  "index: required", "limit: %u is above %u",
 *                        "match: set eq or range",
 *                        "eq: index \"%s\" holds %s values" (and range.min,
 *                        range.max), "page_token: malformed",
 *                        "page_token: belongs to another index (or \"%s\" was
 *                        re-created)", "after[%zu].partition: %u is not below
 *                        %u partitions";
 *   SX_UNAVAILABLE       "this worker has not joined the cluster yet";
 *   SX_NOT_FOUND         "index \"%s\" does not exist";
 *   SX_FAILED_PRECONDITION from sx_qplan_mode. */
sx_status sx_qplan_make(const Shardex__V1__QueryRequest *req, const sx_partmap *map,
                        sx_arena *arena, sx_qplan *out, sx_err *err);

/* The same with the index's map entry e (borrowed for the call) and P given
 * (steps 1 and 3-6): for callers, and tests, without a map. P > 0. */
sx_status sx_qplan_make_index(const Shardex__V1__QueryRequest *req,
                              const Shardex__Internal__V1__IndexEntry *e, uint32_t P,
                              sx_arena *arena, sx_qplan *out, sx_err *err);

/* The mode for a query that asked for `asked` on index def in state `state`:
 *   MODE_LOCAL   LOCAL; SX_FAILED_PRECONDITION "index \"%s\" is not kept
 *                LOCAL" when it is not;
 *   MODE_GLOBAL  GLOBAL; SX_FAILED_PRECONDITION "... is not kept GLOBAL";
 *   otherwise    GLOBAL when the index is kept GLOBAL and either READY or
 *                not kept LOCAL (then nothing else could answer); else LOCAL.
 * *global: GLOBAL chosen. */
sx_status sx_qplan_mode(const sx_ixkey_def *def, Shardex__V1__IndexState state,
                        Shardex__V1__Mode asked, bool *global, sx_err *err);

/* Whether a GLOBAL run of pl that failed with st is to be served LOCAL
 * instead: auto mode, the index is also kept LOCAL, and st is SX_UNAVAILABLE
 * (stale, being rebuilt, no owner) or SX_DEADLINE_EXCEEDED. */
bool sx_qplan_falls_back(const sx_qplan *pl, sx_status st);

/* Re-targets pl LOCAL: every log partition, as if LOCAL had been chosen. */
void sx_qplan_go_local(sx_qplan *pl, sx_arena *arena);

/* The page token after last_key of index index_id, in arena. */
ProtobufCBinaryData sx_qplan_token(sx_arena *arena, uint64_t index_id,
                                   const ProtobufCBinaryData *last_key);

/* Reads token tok for index index_id (named `name` in messages): *last_key
 * is the last key it returned (borrowed from tok). SX_INVALID_ARGUMENT
 * "page_token: malformed" (bad version, truncated, no key) or "page_token:
 * belongs to another index (or \"<name>\" was re-created)". */
sx_status sx_qplan_token_read(const ProtobufCBinaryData *tok, uint64_t index_id, const char *name,
                              ProtobufCBinaryData *last_key, sx_err *err);

/* A partial page's token: index index_id, P partitions, pos[p] the last
 * key read from p (len 0: none). In arena. */
ProtobufCBinaryData sx_qplan_positions_token(sx_arena *arena, uint64_t index_id, uint32_t P,
                                             const ProtobufCBinaryData *pos);

/* Reads such a token: *pos (P entries, in arena; keys borrowed from tok).
 * SX_INVALID_ARGUMENT "page_token: malformed", "page_token: belongs to
 * another index (...)", "page_token: made for %u partitions, the cluster has
 * %u". */
sx_status sx_qplan_positions_read(const ProtobufCBinaryData *tok, uint64_t index_id,
                                  const char *name, uint32_t P, sx_arena *arena,
                                  ProtobufCBinaryData **pos, sx_err *err);

/* Entry keys in their order (bytewise, a prefix first): <0, 0, >0. */
int sx_qplan_key_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b);

#endif
