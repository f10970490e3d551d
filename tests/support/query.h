/* query.h: secondary indexes from integration tests: documents with any
 * fields, Put and Delete that remember the latest write token of every log
 * partition, CreateIndex/DropIndex/ListIndexes, Query one page or every page,
 * and an in-test model (id -> current document) that says what an index must
 * answer, with a comparison that names the first difference.
 *
 * The model is the client contract's rules, written again independently of
 * common/ixkey.c: a document gives one hit per distinct value of the field
 * with the index's type, a value of the other type is not indexed and makes
 * the document mistyped, hits are ordered by (value, id) with strings compared
 * bytewise and ints numerically.
 *
 * Calls block and are made with the cluster's client; the model and the hit
 * lists are not thread-safe (one owner at a time).
 */
#ifndef SX_TEST_QUERY_H
#define SX_TEST_QUERY_H

#include "cluster.h"
#include "shardex/v1/shardex.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fields per test document; string values and ids are short. */
#define SX_QDOC_FIELDS 8
#define SX_QVAL_STR 32
#define SX_QID 48
/* Log partitions a token set can hold. */
#define SX_QTOKENS_MAX 64

/* A value: an int64 or a string. */
typedef struct sx_qval {
    bool is_int;
    int64_t i;
    char s[SX_QVAL_STR];
} sx_qval;

typedef struct sx_qfield {
    char name[16];
    sx_qval v;
} sx_qfield;

/* A document; a name may repeat (multi-valued field). */
typedef struct sx_qdoc {
    char id[SX_QID];
    uint32_t n;
    sx_qfield f[SX_QDOC_FIELDS];
} sx_qdoc;

sx_qval sx_qval_int(int64_t i);
sx_qval sx_qval_str(const char *s);
/* Appends a field to d (asserts room). */
void sx_qdoc_add(sx_qdoc *d, const char *name, sx_qval v);
/* Writes a short form of v ("\"red\"" or "-3") into buf; returns buf. */
const char *sx_qval_fmt(const sx_qval *v, char *buf, size_t cap);

/* The latest acknowledged offset of every log partition (0: none). */
typedef struct sx_qtokens {
    uint64_t off[SX_QTOKENS_MAX];
} sx_qtokens;

void sx_qtokens_add(sx_qtokens *t, const Shardex__V1__WriteToken *tok);

/* Every call goes through the worker at addr (one of c->worker_addr; a
 * caller racing with restarts passes a copy). */

/* Puts docs; every token is added to *tokens (may be NULL); *out (may be
 * NULL) receives the response (sx_rpc_free it). */
sx_status sx_q_put(sx_cluster *c, const char *addr, const sx_qdoc *docs, size_t n,
                   uint64_t timeout_ms, sx_qtokens *tokens, Shardex__V1__PutResponse **out,
                   sx_err *err);
/* Puts one document {id, v: value} with rpc (a client of the caller's own,
 * TLS or not) through addr; the call's status, its message in err. */
sx_status sx_q_put_one(sx_rpc_client *rpc, const char *addr, const char *id, const char *value,
                       uint64_t timeout_ms, sx_err *err);

/* Deletes ids, as sx_q_put. */
sx_status sx_q_delete(sx_cluster *c, const char *addr, const char *const *ids, size_t n,
                      uint64_t timeout_ms, sx_qtokens *tokens, Shardex__V1__DeleteResponse **out,
                      sx_err *err);

/* ---------------------------------------------------------------- indexes -- */

typedef struct sx_qindex {
    const char *name;
    const char *field;
    bool is_int;
    bool local, global;
    uint32_t term_partitions; /* 0: the cluster default */
    /* nsplits > 0: PARTITIONING_RANGE with these split points (increasing,
     * of the index's type); M is then nsplits + 1. range without them: the
     * worker chooses them from the data (worker/sample.h). */
    bool range;
    size_t nsplits;
    sx_qval splits[8];
} sx_qindex;

sx_status sx_q_create_index(sx_cluster *c, const char *addr, const sx_qindex *ix, sx_err *err);
sx_status sx_q_drop_index(sx_cluster *c, const char *addr, const char *name, sx_err *err);
/* *out: the response (sx_rpc_free it). */
sx_status sx_q_list_indexes(sx_cluster *c, const char *addr, Shardex__V1__ListIndexesResponse **out,
                            sx_err *err);
/* The index named `name` in l, or NULL. Borrowed from l. */
const Shardex__V1__IndexInfo *sx_q_find_index(const Shardex__V1__ListIndexesResponse *l,
                                              const char *name);
/* Polls ListIndexes until `name` is READY (true) or timeout_ms passes (false). */
bool sx_q_wait_ready(sx_cluster *c, const char *addr, const char *name, uint64_t timeout_ms);

/* ----------------------------------------------------------------- query -- */

/* An equality (range false: eq) or an inclusive range with optional ends. */
typedef struct sx_qmatch {
    bool range;
    sx_qval eq;
    bool has_min, has_max;
    sx_qval min, max;
} sx_qmatch;

typedef struct sx_qreq {
    const char *index;
    sx_qmatch match;
    Shardex__V1__Mode mode;
    uint32_t limit;
    const sx_qtokens *after; /* NULL: none; else every partition with an offset */
    bool include_docs;
    uint64_t timeout_ms; /* 0: 10 s */
    /* Answers that say how complete they are (QueryRequest 9-11; 0: off). */
    uint32_t budget_ms;
    uint32_t max_staleness_ms;
    uint32_t hedge_after_ms;
} sx_qreq;

/* One page: *out receives the response (sx_rpc_free it; NULL on error).
 * page_token may be NULL (the first page). */
sx_status sx_q_query(sx_cluster *c, const char *addr, const sx_qreq *q,
                     const ProtobufCBinaryData *page_token, Shardex__V1__QueryResponse **out,
                     sx_err *err);

typedef struct sx_qhit {
    char id[SX_QID];
    sx_qval v;
} sx_qhit;

/* A growable list of hits. Valid when zeroed; free with sx_qhits_free. */
typedef struct sx_qhits {
    sx_qhit *h;
    size_t n, cap;
} sx_qhits;

void sx_qhits_push(sx_qhits *l, const sx_qhit *h);
void sx_qhits_free(sx_qhits *l);

/* What sx_q_query_all saw across pages. */
typedef struct sx_qpages {
    sx_qhits hits;
    uint32_t pages;
    Shardex__V1__Mode mode; /* of the first page */
    uint32_t contacted;     /* partitions_contacted of the first page */
    bool mixed;             /* a later page said another mode or a larger count */
    bool shrank;            /* a later page contacted fewer partitions (a range-partitioned
                             * index's next page starts in the partition of its last hit) */
    bool docs_ok;           /* include_docs: every hit had a document with its id */
} sx_qpages;

/* Every page of q, following next_page_token; fills *out (sx_qhits_free
 * out->hits). On error out holds the pages before it. At most 100000 pages. */
sx_status sx_q_query_all(sx_cluster *c, const char *addr, const sx_qreq *q, sx_qpages *out,
                         sx_err *err);

/* Compares got with want; on a difference writes the first one (position,
 * both hits, both counts) into why and returns false. */
bool sx_qhits_equal(const sx_qhits *got, const sx_qhits *want, char *why, size_t cap);

/* Describes a query: "color == \"red\", GLOBAL, limit 7, 8 tokens",
 * "size in [-3, +inf), LOCAL, limit 10000, 0 tokens". Returns buf. */
const char *sx_qreq_fmt(const sx_qreq *q, char *buf, size_t cap);

/* True when the protobuf document has d's id and d's fields in order. */
bool sx_qdoc_equal_pb(const sx_qdoc *d, const Shardex__V1__Document *pb);

/* ----------------------------------------------------------------- model -- */

typedef struct sx_model sx_model;

/* An empty model; destroy with sx_model_destroy (accepts NULL). */
sx_model *sx_model_create(void);
void sx_model_destroy(sx_model *m);

/* The document with that id replaces any other; delete of a missing id: nothing. */
void sx_model_put(sx_model *m, const sx_qdoc *d);
void sx_model_delete(sx_model *m, const char *id);
/* The current document, or NULL. Borrowed until the next change. */
const sx_qdoc *sx_model_get(const sx_model *m, const char *id);
size_t sx_model_len(const sx_model *m);

/* The hits an index on `field` of type is_int must give for match, in
 * (value, id) order, appended to *out (cleared first). */
void sx_model_expect(const sx_model *m, const char *field, bool is_int, const sx_qmatch *match,
                     sx_qhits *out);
/* Documents with some value of `field` of the other type than is_int. */
uint64_t sx_model_mistyped(const sx_model *m, const char *field, bool is_int);

#endif
