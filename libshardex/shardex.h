/* shardex.h: libshardex, the C client of a shardex cluster.
 *
 * A client talks to one or several workers (any worker accepts any call of
 * shardex.v1.Shardex and routes it) and offers every call of the contract,
 * blocking, plus a bulk writer that batches documents and keeps several
 * batches in flight. Values in and out are the generated protobuf-c types of
 * proto/shardex/v1/shardex.proto; small helpers build documents and collect
 * write tokens for read-your-writes.
 *
 * Not here: the command-line tool (client/), TLS and bearer tokens (later: a
 * field of sx_client_opts), streaming.
 *
 * Servers, attempts and retries. Each call starts at the next server of a
 * rotation (so that calls spread over the workers), servers that refused a
 * connection in the last second last, and tries until the deadline
 * (timeout_ms covers every attempt and every pause) or max_attempts.
 * After every server has been tried once, it pauses (50 ms doubling to 1 s,
 * half of it random) before the next round. What is retried depends on what
 * a failure proves:
 *   - reads (Get, Query, ListIndexes, ClusterStatus) change nothing, so they
 *     are retried on UNAVAILABLE and DEADLINE_EXCEEDED (the latter only when
 *     attempt_timeout_ms cut an attempt short), on the next server;
 *   - writes (Put, Delete) and catalog changes (CreateIndex, DropIndex) are
 *     sent again only when the failure proves that no server processed them:
 *     the connection could not be made (refused, unreachable, name not
 *     resolved) or the worker answered that it has not joined the cluster.
 *     Any other failure (a reset connection, a deadline, an UNAVAILABLE from
 *     a worker that tried the partition's leader) may come after the write
 *     was appended; sending it again could then apply it twice, and between
 *     the two copies another client's write of the same id would be undone.
 *     The call returns the error and the caller decides. Resending the same
 *     Put is safe for a caller that is the only writer of those ids: the
 *     documents get the same content and a higher version. The same holds
 *     for Delete (a delete of a missing id changes nothing). A CreateIndex
 *     sent again may answer ALREADY_EXISTS, a DropIndex NOT_FOUND: check with
 *     sx_client_list_indexes.
 *
 * Errors: every fallible call returns an sx_status and fills the optional
 * sx_err with the same code and a message: the server's own message (which
 * names the field and the limit for INVALID_ARGUMENT), prefixed with the
 * method and the server that gave it, e.g.
 * `Put via 127.0.0.1:7001: docs[1]: id is empty; ids are 1..256 bytes`, or,
 * when several attempts were made, the last one's, with its number.
 * Codes are gRPC's canonical ones (DESIGN.md, "Client contract"). "Not found"
 * from Get is not an error (found is false).
 *
 * Threads: an sx_client may be shared by any number of threads. A bulk
 * writer belongs to one thread at a time; its callback runs on that thread.
 */
#ifndef SHARDEX_H
#define SHARDEX_H

#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most server addresses a client takes. */
#define SX_CLIENT_MAX_SERVERS 64
/* Deadline of one call when the options leave it 0. */
#define SX_CLIENT_DEFAULT_TIMEOUT_MS 10000u
/* Receive limit when the options leave it 0: pages of documents can be large. */
#define SX_CLIENT_DEFAULT_MAX_MESSAGE (64u * 1024 * 1024)

/* ---------------------------------------------------------------- client -- */

typedef struct sx_client sx_client;

typedef struct sx_client_opts {
    const char *const *servers;  /* worker addresses "host:port", 1..SX_CLIENT_MAX_SERVERS */
    size_t nservers;             /* copied by sx_client_open */
    uint64_t timeout_ms;         /* one call, every attempt included; 0: 10000 */
    uint64_t attempt_timeout_ms; /* reads: one attempt on one server; 0: the rest of the call's */
    uint32_t max_attempts;       /* per call, over all servers; 0: as the deadline allows */
    size_t max_message_bytes;    /* receive limit; 0: SX_CLIENT_DEFAULT_MAX_MESSAGE */
    /* TLS (docs/security.md): the CA that signed the workers' certificates
     * (PEM file; set: every call goes over TLS), and this client's own
     * certificate and key, if it authenticates with one; and/or a bearer
     * token, sent with every call. Each left NULL is taken from the
     * environment, as the shardex tool does: SHARDEX_TLS_CA, SHARDEX_TLS_CERT,
     * SHARDEX_TLS_KEY, SHARDEX_TOKEN (unset or empty: none). */
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *token;
} sx_client_opts; /* valid when zeroed but for servers */

/* Creates a client of the cluster those workers belong to. Connections are
 * made on first use, so a dead address is not an error here (calls go on to
 * the next). SX_INVALID_ARGUMENT for no servers, too many, or an empty
 * address. Caller closes it with sx_client_close. */
sx_status sx_client_open(const sx_client_opts *opts, sx_client **out, sx_err *err);

/* Closes the connections and frees. Every call on c must have returned and
 * every bulk writer on it been closed first. Accepts NULL. */
void sx_client_close(sx_client *c);

/* Frees any response this library returned (a Shardex__V1__*Response).
 * Accepts NULL. */
void sx_client_free(void *resp);

/* ---------------------------------------------------------------- writes -- */

/* Puts n documents (1..SX_REQUEST_DOCS_MAX, SX_REQUEST_MAX_BYTES packed) in
 * one request. The request is validated whole before anything is written:
 * one bad document gives INVALID_ARGUMENT naming it (docs[i]) and writes
 * nothing. On SX_OK, tokens_out (may be NULL; else room for n) receives each
 * document's write token, in order. A document id that repeats in docs is
 * written in order (the last one wins). On UNAVAILABLE or DEADLINE_EXCEEDED
 * some documents may have been written: the message names them, and putting
 * them again is safe for their only writer (see the top of this file). The
 * documents are borrowed for the call and not changed. */
sx_status sx_client_put(sx_client *c, Shardex__V1__Document *const *docs, size_t n,
                        Shardex__V1__WriteToken *tokens_out, sx_err *err);

/* Deletes n ids (1..SX_REQUEST_DOCS_MAX) as sx_client_put puts documents:
 * validated whole, tokens_out (may be NULL) gets one token per id. Deleting
 * an id that does not exist is not an error (it still gets a token). */
sx_status sx_client_delete(sx_client *c, const char *const *ids, size_t n,
                           Shardex__V1__WriteToken *tokens_out, sx_err *err);

/* ----------------------------------------------------------------- reads -- */

/* Reads the document `id` from its partition's leader, after the tokens
 * (NULL when n_after is 0: none) have been applied there: a token of the
 * id's partition makes the read wait until that write is visible, tokens of
 * other partitions are ignored, so a token set (below) can be passed whole.
 * DEADLINE_EXCEEDED if that does not happen in time. On SX_OK *out is the
 * response (free with sx_client_free): found, doc and version (the token of
 * its last write); an id that does not exist gives found == false. */
sx_status sx_client_get(sx_client *c, const char *id, Shardex__V1__WriteToken *const *after,
                        size_t n_after, Shardex__V1__GetResponse **out, sx_err *err);

/* Runs one page of a query (the request is the contract's QueryRequest: index,
 * eq or range, mode, limit, page_token, after, include_docs, and for LOCAL
 * budget_ms, max_staleness_ms, hedge_after_ms; borrowed for the call). On
 * SX_OK *out is the page (free with sx_client_free): hits in (value, id)
 * order, next_page_token (empty on the last page: pass it back in the
 * request for the next), the mode that served it, partitions contacted and
 * a staleness bound. With budget_ms the page may be partial: partial is set,
 * missing_partitions names the log partitions that did not answer in time
 * (their hits are not in the page) and the next page token resumes each
 * partition where it stood, so the next page reads them (it is never empty
 * on a partial page). With max_staleness_ms a slow leader's scan is also
 * sent to a follower that can prove it is that fresh; follower_partitions
 * names those that a follower served. Give the call a deadline (the
 * client's) longer than the budget: the budget is the server's. NOT_FOUND for an unknown index,
 * FAILED_PRECONDITION for an index still BUILDING in the mode asked, UNAVAILABLE while a term
 * partition has no owner, DEADLINE_EXCEEDED when `after` cannot be met. */
sx_status sx_client_query(sx_client *c, const Shardex__V1__QueryRequest *req,
                          Shardex__V1__QueryResponse **out, sx_err *err);

/* --------------------------------------------------------------- catalog -- */

/* Creates an index (name, field, type, LOCAL and/or GLOBAL, term partitions;
 * the spec is borrowed). PARTITIONING_RANGE without split_points: the worker
 * chooses them from a sample of the data (the response's spec has them;
 * docs/indexes.md, "Range partitioning"). It is BUILDING while existing
 * documents are backfilled, then READY: poll sx_client_list_indexes.
 * ALREADY_EXISTS when the name is taken, INVALID_ARGUMENT naming the bad
 * field of the spec. On SX_OK, *out (out may be NULL) is the response (free
 * with sx_client_free). */
sx_status sx_client_create_index(sx_client *c, const Shardex__V1__IndexSpec *spec,
                                 Shardex__V1__CreateIndexResponse **out, sx_err *err);

/* Drops the index `name` everywhere. NOT_FOUND when there is none. */
sx_status sx_client_drop_index(sx_client *c, const char *name, sx_err *err);

/* Every index with its state, count of mistyped documents and, while BUILDING,
 * its backfill's progress (backfill_done_docs of about backfill_total_docs,
 * eta_seconds). On SX_OK *out is the response (free with sx_client_free). */
sx_status sx_client_list_indexes(sx_client *c, Shardex__V1__ListIndexesResponse **out, sx_err *err);

/* Splits term partition t of range-partitioned index `name` in two online at
 * `at` (NULL: the partition's median as its owner last counted it); the two
 * new partitions take over once built (docs/indexes.md "Online split"). On
 * SX_OK *out (out may be NULL) is the response: the index after the split
 * was recorded (free with sx_client_free). INVALID_ARGUMENT naming the field
 * (not range-partitioned, t not serving, at outside t's range),
 * FAILED_PRECONDITION (a split in progress, no median yet), NOT_FOUND.
 * Admin role. Not retried: a second split would split again. */
sx_status sx_client_split_index(sx_client *c, const char *name, uint32_t t,
                                const Shardex__V1__Value *at, Shardex__V1__SplitIndexResponse **out,
                                sx_err *err);

/* Salts a hot value of global index `name` over `ways` term partitions (0:
 * the coordinator's --hot-value-ways), docs/indexes.md "Hot values". On
 * SX_OK *out (out may be NULL) is the index after the salt was recorded
 * (free with sx_client_free). INVALID_ARGUMENT naming the field (name: not
 * GLOBAL; value: of the other type, already salted; ways: out of [2, M]),
 * FAILED_PRECONDITION (the most salted values), NOT_FOUND. Admin role. Not
 * retried by the library (a repeat is refused as already salted). */
sx_status sx_client_salt_index(sx_client *c, const char *name, const Shardex__V1__Value *value,
                               uint32_t ways, Shardex__V1__SaltIndexResponse **out, sx_err *err);

/* The cluster as the coordinator sees it: settings, workers (alive, lease),
 * log partitions (leader, replicas, ISR, offsets), term partitions, indexes.
 * On SX_OK *out is the response (free with sx_client_free). */
sx_status sx_client_status(sx_client *c, Shardex__V1__ClusterStatusResponse **out, sx_err *err);

/* ---------------------------------------------------------------- workers -- */

/* Drains worker `id` (cancel: undrains it): it gets nothing new and its
 * replicas, leaderships and term partitions move off it. On SX_OK *out is
 * the response, its status (drained: it holds nothing, safe to stop); free
 * with sx_client_free. NOT_FOUND for an unknown id. Admin role. */
sx_status sx_client_drain_worker(sx_client *c, const char *id, bool cancel,
                                 Shardex__V1__DrainWorkerResponse **out, sx_err *err);

/* Forgets dead worker `id` for good; its replicas are re-created elsewhere.
 * FAILED_PRECONDITION when it is alive, or (unless force) the only replica
 * known to hold some partition's committed entries; with force those are
 * lost. On SX_OK *out (out may be NULL) is the response: the partitions lost.
 * Admin role. */
sx_status sx_client_remove_worker(sx_client *c, const char *id, bool force,
                                  Shardex__V1__RemoveWorkerResponse **out, sx_err *err);

/* ------------------------------------------------------------- documents -- */

/* A document built field by field: sx_doc_new copies id; each add appends a
 * field (a name may repeat: a multi-valued field), copying name and value.
 * The result is an ordinary Shardex__V1__Document for every call above; free
 * it with sx_doc_free, and only documents made by sx_doc_new (documents in
 * responses belong to the response). Allocation failure aborts. Nothing is
 * validated here: the server does it. */
Shardex__V1__Document *sx_doc_new(const char *id);
void sx_doc_add_str(Shardex__V1__Document *doc, const char *name, const char *value);
void sx_doc_add_int(Shardex__V1__Document *doc, const char *name, int64_t value);
void sx_doc_free(Shardex__V1__Document *doc); /* accepts NULL */

/* The first value of field `name` in doc, or NULL. Borrowed from doc. */
const Shardex__V1__Value *sx_doc_field(const Shardex__V1__Document *doc, const char *name);

/* ---------------------------------------------------------------- tokens -- */

/* The latest write token of every log partition added, for read-your-writes:
 * pass `ptrs` and `n` as a request's `after` (QueryRequest.after and
 * n_after, or sx_client_get's). Valid when zeroed; free with
 * sx_token_set_free. Not thread-safe. */
typedef struct sx_token_set {
    Shardex__V1__WriteToken **ptrs; /* n tokens, ascending by partition */
    size_t n;
    size_t cap;
} sx_token_set;

/* Keeps the higher offset of tok's partition. Aborts on allocation failure. */
void sx_token_set_add(sx_token_set *s, const Shardex__V1__WriteToken *tok);
void sx_token_set_free(sx_token_set *s); /* empty (zeroed) again */

/* ------------------------------------------------------------------ bulk -- */

/* A bulk writer: documents and deletes are copied into batches of up to
 * batch_docs operations (and about batch_bytes packed), each batch is one Put
 * or one Delete request, and up to max_inflight batches are in flight at
 * once, each sent to the next server of the rotation and retried on another
 * server under the rules for writes above.
 *
 * Order per id is kept: an operation on an id that an unanswered batch holds
 * waits until that batch is answered (so a Put then a Delete of the same id
 * end deleted). Operations on different ids may be applied in any order.
 *
 * Every batch, written or failed, is reported once to `done`, on the thread
 * that calls the bulk functions, from inside sx_bulk_put, sx_bulk_delete,
 * sx_bulk_flush or sx_bulk_close; done may call the client, not the bulk.
 * After a failed batch, the bulk stops unless keep_going: later operations
 * are refused with the first error, and the batch being filled is reported
 * with SX_ABORTED (nothing of it was sent). Documents of a failed batch may
 * still have been written (see writes above). */

typedef struct sx_bulk sx_bulk;

/* One batch as reported; everything is borrowed for the callback only. */
typedef struct sx_bulk_result {
    sx_status status;                         /* SX_OK: every operation was written */
    const sx_err *err;                        /* the failure; code SX_OK on success */
    bool is_delete;                           /* a Delete batch (docs is NULL) */
    size_t n;                                 /* operations in the batch */
    const Shardex__V1__Document *const *docs; /* Put batches: the documents, as added */
    const char *const *ids;                   /* the ids, in order */
    const Shardex__V1__WriteToken *tokens;    /* SX_OK: n tokens, in order; else NULL */
} sx_bulk_result;

typedef void (*sx_bulk_done_cb)(void *arg, const sx_bulk_result *r);

typedef struct sx_bulk_opts {
    size_t batch_docs;    /* operations per request; 0: 500; at most SX_REQUEST_DOCS_MAX */
    size_t batch_bytes;   /* packed documents per request; 0: 4 MiB; at most 16 MiB */
    size_t max_inflight;  /* batches sent and not yet reported; 0: 4 */
    bool keep_going;      /* after a failed batch, go on sending the rest */
    sx_bulk_done_cb done; /* per batch; NULL: none (sx_bulk_close still gives the first error) */
    void *arg;            /* passed to done */
} sx_bulk_opts;           /* valid when zeroed */

/* Creates a bulk writer on c (which must outlive it); opts may be NULL.
 * SX_INVALID_ARGUMENT for limits above the maximums. Close with sx_bulk_close. */
sx_status sx_bulk_open(sx_client *c, const sx_bulk_opts *opts, sx_bulk **out, sx_err *err);

/* Adds a Put of doc (copied: the caller keeps doc). Sends the current batch
 * when it is full, and then blocks while max_inflight batches are out,
 * reporting the batches that finish. A document that alone exceeds
 * batch_bytes goes in a batch of its own (the server judges its size). When
 * the bulk has stopped, returns the first error and copies nothing. */
sx_status sx_bulk_put(sx_bulk *b, const Shardex__V1__Document *doc, sx_err *err);

/* Adds a Delete of id (copied), as sx_bulk_put. Deletes travel in Delete
 * batches: a delete after puts sends the puts' batch first. */
sx_status sx_bulk_delete(sx_bulk *b, const char *id, sx_err *err);

/* Sends the current batch and waits until every batch has been answered and
 * reported. Returns the first error of the bulk's life so far (SX_OK if
 * none). The bulk stays usable (a stopped one stays stopped). */
sx_status sx_bulk_flush(sx_bulk *b, sx_err *err);

/* sx_bulk_flush, then frees the writer. Returns the first error of the
 * bulk's life. Accepts NULL (SX_OK). */
sx_status sx_bulk_close(sx_bulk *b, sx_err *err);

#endif
