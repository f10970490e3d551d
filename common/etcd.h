/* etcd.h: a small etcd v3 client over the rpc layer (rpc.h), for the
 * coordinators' metadata (issue 13): keys, transactions, leases kept alive by
 * a stream, and watches. It is etcd's gRPC API (proto/etcd/), not etcdctl.
 *
 * Not here: election, fencing, the map's layout under /shardex/NAME/ (the
 * coordinator builds those on this); auth, TLS to etcd (the rpc client given
 * may carry TLS), compaction, member management.
 *
 * Endpoints: a list of members. Every unary call goes to the member that
 * answered last, and on UNAVAILABLE or DEADLINE_EXCEEDED (a member cut off
 * answers nothing) tries the others in turn, each with the
 * call's own deadline. A put or a transaction that failed UNAVAILABLE may
 * have been applied before the connection broke, and the next member then
 * applies it again: make writes conditional (a transaction comparing
 * revisions), so that a second application fails its compares instead of
 * doing harm, and read to learn the outcome of a failed one. Streams
 * (keepalive, watch) open on the member that answered last and report their
 * end; they do not move, but the next one opens on another member when one
 * ended UNAVAILABLE or found its member silent (a watch not created in time,
 * a keepalive with no answer for a TTL).
 *
 * Keys are C strings (the project's keys in etcd are paths), values bytes.
 * "Not found" is no error: a get finds zero keys. Errors are sx_err with the
 * endpoint, the method and etcd's message ("etcdserver: ...").
 *
 * Threads: every function may be called from any thread, with one exception
 * each for keepalive_stop and watch_stop (not from their own callbacks).
 * Callbacks of a keepalive or a watch run on its stream's thread (rpc.h,
 * client streams), one at a time.
 */
#ifndef SX_ETCD_H
#define SX_ETCD_H

#include "rpc.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_etcd sx_etcd;

typedef struct sx_etcd_opts {
    const char *endpoints; /* "host:port[,host:port...]"; required */
    sx_rpc_client *rpc; /* borrowed, must outlive the handle; NULL: a plaintext client of its own */
    uint64_t timeout_ms; /* each unary call, per endpoint tried; 0: SX_RPC_DEFAULT_TIMEOUT_MS */
} sx_etcd_opts;

/* Makes a handle (no connection yet: the first call connects). Caller
 * closes it with sx_etcd_close. SX_INVALID_ARGUMENT for an empty or bad list. */
sx_status sx_etcd_open(const sx_etcd_opts *opts, sx_etcd **out, sx_err *err);

/* Frees the handle. Stop its keepalives and watches first. Accepts NULL. */
void sx_etcd_close(sx_etcd *e);

/* ------------------------------------------------------------------- keys -- */

/* One key as etcd stores it. */
typedef struct sx_etcd_kv {
    const char *key; /* NUL-terminated (etcd keys may hold any byte; ours do not) */
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision; /* the revision that created it */
    int64_t mod_revision;    /* the revision that last changed it */
    int64_t version;         /* changes since its creation, 1 for a new key */
    int64_t lease;           /* its lease; 0: none */
} sx_etcd_kv;

/* What a get read: kvs in key order, borrowed from the result. */
typedef struct sx_etcd_range {
    int64_t revision; /* the store's revision when it was read */
    size_t count;
    sx_etcd_kv *kvs;
    bool more; /* not all keys were returned (etcd's limit) */
    void *priv;
} sx_etcd_range;

/* Reads key, or every key that starts with it when prefix is set (an empty
 * key with prefix: the whole store). *out is the result, freed by the caller
 * with sx_etcd_range_free; count 0 when nothing matches. */
sx_status sx_etcd_get(sx_etcd *e, const char *key, bool prefix, sx_etcd_range **out, sx_err *err);
void sx_etcd_range_free(sx_etcd_range *r); /* accepts NULL */

/* The members, as the endpoint list named them ("host:port"). */
size_t sx_etcd_member_count(const sx_etcd *e);
const char *sx_etcd_member(const sx_etcd *e, size_t i); /* NULL past the end */

/* Whether member i alone answers a linearizable read within timeout_ms (it
 * is up and in touch with a quorum): SX_OK, else why not. */
sx_status sx_etcd_member_check(sx_etcd *e, size_t i, uint64_t timeout_ms, sx_err *err);

/* Writes key = value (value_len bytes), attached to lease (0: none).
 * *revision (may be NULL) is the revision of the write. */
sx_status sx_etcd_put(sx_etcd *e, const char *key, const void *value, size_t value_len,
                      int64_t lease, int64_t *revision, sx_err *err);

/* Deletes key, or every key with that prefix. *deleted and *revision (each
 * may be NULL) are how many keys went and the store's revision after. */
sx_status sx_etcd_delete(sx_etcd *e, const char *key, bool prefix, int64_t *deleted,
                         int64_t *revision, sx_err *err);

/* ----------------------------------------------------------- transactions -- */

/* What a compare looks at. */
typedef enum {
    SX_ETCD_VERSION = 0, /* the key's version (0: absent) */
    SX_ETCD_CREATE = 1,  /* its create_revision (0: absent) */
    SX_ETCD_MOD = 2,     /* its mod_revision (0: absent) */
    SX_ETCD_VALUE = 3,   /* its value (bytes) */
} sx_etcd_target;

/* How it compares: the key's field OP the given one. */
typedef enum {
    SX_ETCD_EQUAL = 0,
    SX_ETCD_GREATER = 1,
    SX_ETCD_LESS = 2,
    SX_ETCD_NOT_EQUAL = 3,
} sx_etcd_cmp_op;

typedef struct sx_etcd_cmp {
    const char *key;
    sx_etcd_target target;
    sx_etcd_cmp_op op;
    int64_t number;    /* for VERSION, CREATE, MOD */
    const void *value; /* for VALUE */
    size_t value_len;
} sx_etcd_cmp;

/* A put (value, lease) or a delete (of the key, or of a prefix). */
typedef struct sx_etcd_op {
    bool del;
    const char *key;
    const void *value;
    size_t value_len;
    int64_t lease;
    bool prefix; /* deletes only */
} sx_etcd_op;

typedef struct sx_etcd_txn {
    const sx_etcd_cmp *cmps; /* all must hold ... */
    size_t ncmps;
    const sx_etcd_op *then_ops; /* ... for these to be applied */
    size_t nthen;
    const sx_etcd_op *else_ops; /* else these */
    size_t nelse;
} sx_etcd_txn;

/* Runs the transaction atomically. *succeeded says whether every compare
 * held (then_ops applied) or not (else_ops applied); *revision (may be NULL)
 * is the store's revision after it: the revision of its writes when it wrote.
 * A failed compare is SX_OK with *succeeded false. */
sx_status sx_etcd_txn_run(sx_etcd *e, const sx_etcd_txn *t, bool *succeeded, int64_t *revision,
                          sx_err *err);

/* ----------------------------------------------------------------- leases -- */

/* Grants a lease of ttl_s seconds (etcd's minimum is about 2 s). *id is the
 * lease, *granted_ttl_s (may be NULL) the TTL etcd granted. */
sx_status sx_etcd_lease_grant(sx_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl_s,
                              sx_err *err);

/* Revokes a lease: its keys are deleted. SX_NOT_FOUND if it is gone already. */
sx_status sx_etcd_lease_revoke(sx_etcd *e, int64_t id, sx_err *err);

typedef struct sx_etcd_keepalive sx_etcd_keepalive;

/* An answer renewed the lease for ttl_s seconds, counted from sent_ms
 * (sx_clock_now_ms's clock), when the request it answers was sent: the lease
 * lives at least until sent_ms + ttl_s * 1000 by this process's clock. */
typedef void (*sx_etcd_renewed_cb)(void *arg, int64_t ttl_s, uint64_t sent_ms);

/* The keepalive is over, once: SX_NOT_FOUND when etcd says the lease is gone
 * (TTL 0), SX_DEADLINE_EXCEEDED when no answer came for a whole TTL since the
 * last renewal's request (the lease may have expired), SX_CANCELLED after
 * sx_etcd_keepalive_stop, else how the stream ended (UNAVAILABLE: etcd went
 * away). err (borrowed for the call) names the endpoint. */
typedef void (*sx_etcd_ended_cb)(void *arg, sx_status st, const sx_err *err);

typedef struct sx_etcd_keepalive_opts {
    sx_etcd_renewed_cb on_renewed; /* NULL: not told */
    sx_etcd_ended_cb on_end;       /* NULL: not told */
    void *arg;
} sx_etcd_keepalive_opts;

/* Keeps lease `id` of ttl_s seconds alive: a request at once and every
 * ttl_s/3 on a LeaseKeepAlive stream (with `hasleader: true`, so that a
 * member without a leader fails it), until the lease is gone, the stream
 * ends or it is stopped. Caller stops it with sx_etcd_keepalive_stop. */
sx_status sx_etcd_keepalive_start(sx_etcd *e, int64_t id, int64_t ttl_s,
                                  const sx_etcd_keepalive_opts *opts, sx_etcd_keepalive **out,
                                  sx_err *err);

/* Stops sending, ends the stream (on_end with SX_CANCELLED if it had not
 * ended), waits until no callback runs, frees. Not from its own callbacks.
 * Does not revoke the lease. Accepts NULL. */
void sx_etcd_keepalive_stop(sx_etcd_keepalive *k);

/* ---------------------------------------------------------------- watches -- */

/* One change, borrowed for the callback. */
typedef struct sx_etcd_event {
    bool deleted;     /* a delete (an expired lease's keys too); else a put */
    sx_etcd_kv kv;    /* a put: the key after it; a delete: key and mod_revision only */
    int64_t revision; /* the revision of the change (kv.mod_revision) */
} sx_etcd_event;

typedef void (*sx_etcd_event_cb)(void *arg, const sx_etcd_event *ev);

typedef struct sx_etcd_watch_opts {
    const char *key;        /* required */
    bool prefix;            /* every key that starts with key */
    int64_t start_revision; /* changes from this revision on (history replayed); 0: from now */
    sx_etcd_event_cb on_event;
    sx_etcd_ended_cb on_end; /* once: SX_CANCELLED after stop, SX_OUT_OF_RANGE when
                              * start_revision was compacted away, SX_ABORTED when etcd
                              * cancelled it, else the stream's end */
    void *arg;
} sx_etcd_watch_opts;

typedef struct sx_etcd_watch sx_etcd_watch;

/* Starts a watch and waits (the handle's timeout) until etcd has created it:
 * on SX_OK every change after *revision (may be NULL; the store's revision
 * when the watch began) or from start_revision on is delivered, in order. An
 * error here (etcd unreachable, a compacted start) means no watch and no
 * callback. Caller stops it with sx_etcd_watch_stop. */
sx_status sx_etcd_watch_start(sx_etcd *e, const sx_etcd_watch_opts *opts, sx_etcd_watch **out,
                              int64_t *revision, sx_err *err);

/* Ends the watch (on_end with SX_CANCELLED if it had not ended), waits until
 * no callback runs, frees. Not from its own callbacks. Accepts NULL. */
void sx_etcd_watch_stop(sx_etcd_watch *w);

#endif
