/* etcd.c: the etcd v3 client of etcd.h, over sx_rpc_invoke (keys, leases)
 * and sx_rpc_stream (keepalive, watch).
 *
 * A keepalive is a LeaseKeepAlive stream plus a ticker thread that sends a
 * request every TTL/3 and notices a whole TTL without an answer; a watch is a
 * Watch stream with one watcher. Both end through their stream's on_end,
 * which runs exactly once: a reason decided here (the lease gone, no answer,
 * etcd cancelled the watch) is recorded first, then the stream is cancelled,
 * and on_end reports the recorded reason instead of CANCELLED.
 */
#include "etcd.h"

#include "clock.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KV_SVC (&etcdserverpb__kv__descriptor)
#define LEASE_SVC (&etcdserverpb__lease__descriptor)
#define WATCH_SVC (&etcdserverpb__watch__descriptor)

/* Streams ask for a member with a leader: one cut from its cluster fails
 * them instead of keeping them open and silent (etcd's rpctypes). */
static const sx_rpc_metadata has_leader[] = {{"hasleader", "true"}};

/* Requests a keepalive remembers the send time of, to date each answer
 * (answers come in order). When full, new requests go undated, so an answer
 * is dated by an older request: never later than the truth. */
#define KA_RING 16
/* How long a call waits for a connection to a member it found unconnected
 * (invoke_one). */
#define CONNECT_WAIT_MS 1000
/* Never renew more often than this, whatever the TTL. */
#define KA_MIN_PERIOD_MS 200

struct sx_etcd {
    char **eps; /* "host:port" */
    size_t neps;
    _Atomic size_t cur; /* the member that answered last */
    sx_rpc_client *rpc;
    bool own_rpc;
    uint64_t timeout_ms;
};

/* ---------------------------------------------------------------- handle -- */

static sx_status parse_endpoints(sx_etcd *e, const char *list, sx_err *err)
{
    char *copy = sx_strdup(list), *save = NULL;
    sx_status st = SX_OK;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        /* etcd://host:port, as --metadata spells it, or etcd's own http://. */
        const char *schemes[] = {"etcd://", "http://"};
        for (size_t i = 0; i < 2; i++)
            if (strncmp(t, schemes[i], strlen(schemes[i])) == 0)
                t += strlen(schemes[i]);
        size_t n = strlen(t);
        while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '/'))
            t[--n] = '\0';
        const char *colon = strrchr(t, ':');
        if (n == 0 || !colon || colon == t || colon[1] == '\0') {
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "etcd endpoints: '%s' is not host:port", t);
            break;
        }
        e->eps = sx_realloc(e->eps, (e->neps + 1) * sizeof(*e->eps));
        e->eps[e->neps++] = sx_strdup(t);
    }
    free(copy);
    if (st == SX_OK && e->neps == 0)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "etcd endpoints: none in '%s'", list);
    return st;
}

sx_status sx_etcd_open(const sx_etcd_opts *opts, sx_etcd **out, sx_err *err)
{
    *out = NULL;
    if (!opts || !opts->endpoints)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "etcd: no endpoints");
    sx_etcd *e = sx_calloc(1, sizeof(*e));
    sx_status st = parse_endpoints(e, opts->endpoints, err);
    if (st != SX_OK)
        goto fail;
    e->timeout_ms = opts->timeout_ms ? opts->timeout_ms : SX_RPC_DEFAULT_TIMEOUT_MS;
    e->rpc = opts->rpc;
    if (!e->rpc) {
        sx_rpc_client_opts co = {.faults = ""}; /* the fault layer is for shardex's own calls */
        if ((st = sx_rpc_client_create(&co, &e->rpc, err)) != SX_OK)
            goto fail;
        e->own_rpc = true;
    }
    atomic_init(&e->cur, 0);
    *out = e;
    return SX_OK;
fail:
    sx_etcd_close(e);
    return st;
}

void sx_etcd_close(sx_etcd *e)
{
    if (!e)
        return;
    if (e->own_rpc)
        sx_rpc_client_destroy(e->rpc);
    for (size_t i = 0; i < e->neps; i++)
        free(e->eps[i]);
    free(e->eps);
    free(e);
}

/* A stream to member idx ended UNAVAILABLE: the next stream or call starts
 * with the member after it (unless another already moved on). */
static void endpoint_failed(sx_etcd *e, size_t idx)
{
    size_t expect = idx;
    atomic_compare_exchange_strong(&e->cur, &expect, (idx + 1) % e->neps);
}

/* The member streams open on: the one that answered last. */
static size_t endpoint_pick(sx_etcd *e)
{
    return atomic_load(&e->cur) % e->neps;
}

/* One member: a fail-fast attempt, and when it finds no connection, a
 * second that waits for one for up to CONNECT_WAIT_MS. Why: gRPC makes
 * connections only while some thread polls it, and a process with no server
 * and no call in flight has none (the core's backup poller runs every 5 s):
 * fail-fast calls alone, every one answered at once from the channel's
 * TRANSIENT_FAILURE, were seen to keep failing for 20 s after etcd came up.
 * A waiting call polls, so the connection is made during it. */
static sx_status invoke_one(sx_etcd *e, const char *ep, const ProtobufCServiceDescriptor *svc,
                            const char *method, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, sx_err *err)
{
    sx_rpc_call_opts o = {.timeout_ms = e->timeout_ms};
    sx_status st = sx_rpc_invoke(e->rpc, ep, svc, method, req, resp, &o, err);
    if (st != SX_UNAVAILABLE)
        return st;
    o.wait_for_ready = true;
    o.timeout_ms = e->timeout_ms < CONNECT_WAIT_MS ? e->timeout_ms : CONNECT_WAIT_MS;
    sx_err e2 = {0};
    st = sx_rpc_invoke(e->rpc, ep, svc, method, req, resp, &o, &e2);
    if (st == SX_DEADLINE_EXCEEDED) /* no connection within the wait: keep the first error */
        return SX_UNAVAILABLE;
    *err = e2;
    return st;
}

/* Calls method on the member that answered last, then on the others in turn
 * while they are UNAVAILABLE or silent (DEADLINE_EXCEEDED: a member cut off
 * by the network answers nothing, and may have no quorum behind it). */
static sx_status invoke(sx_etcd *e, const ProtobufCServiceDescriptor *svc, const char *method,
                        const ProtobufCMessage *req, ProtobufCMessage **resp, sx_err *err)
{
    size_t first = atomic_load(&e->cur) % e->neps;
    sx_status st = SX_UNAVAILABLE;
    sx_err e2 = {0};
    const char *ep = e->eps[first];
    for (size_t k = 0; k < e->neps; k++) {
        size_t i = (first + k) % e->neps;
        ep = e->eps[i];
        st = invoke_one(e, ep, svc, method, req, resp, &e2);
        if (st == SX_OK) {
            atomic_store(&e->cur, i);
            return SX_OK;
        }
        if (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED)
            break;
    }
    return sx_err_set(err, st, "etcd %s %s: %s", ep, method, e2.msg);
}

/* ------------------------------------------------------------------ keys -- */

/* The end of the range of keys that start with key[0..n) (etcd's
 * GetPrefixRangeEnd): the prefix with its last byte below 0xff incremented
 * and the rest cut; "\0" (every key from key on) when there is none. */
static ProtobufCBinaryData prefix_end(const char *key, size_t n)
{
    uint8_t *end = sx_malloc(n + 1);
    memcpy(end, key, n);
    for (size_t i = n; i > 0; i--) {
        if (end[i - 1] < 0xff) {
            end[i - 1]++;
            return (ProtobufCBinaryData){.len = i, .data = end};
        }
    }
    end[0] = 0;
    return (ProtobufCBinaryData){.len = 1, .data = end};
}

static ProtobufCBinaryData bytes_of(const void *p, size_t n)
{
    return (ProtobufCBinaryData){.len = n, .data = (uint8_t *)(uintptr_t)p};
}

typedef struct range_priv {
    Etcdserverpb__RangeResponse *resp;
    char *keys; /* the keys, NUL-terminated, one after another */
} range_priv;

static void kv_from(sx_etcd_kv *out, const Mvccpb__KeyValue *kv, const char *key)
{
    out->key = key;
    out->key_len = kv->key.len;
    out->value = kv->value.data;
    out->value_len = kv->value.len;
    out->create_revision = kv->create_revision;
    out->mod_revision = kv->mod_revision;
    out->version = kv->version;
    out->lease = kv->lease;
}

sx_status sx_etcd_get(sx_etcd *e, const char *key, bool prefix, sx_etcd_range **out, sx_err *err)
{
    *out = NULL;
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    size_t klen = strlen(key);
    req.key = bytes_of(key, klen);
    if (prefix)
        req.range_end = prefix_end(key, klen);
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, KV_SVC, "Range", &req.base, &resp, err);
    free(prefix ? req.range_end.data : NULL);
    if (st != SX_OK)
        return st;
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)resp;
    range_priv *p = sx_calloc(1, sizeof(*p));
    p->resp = r;
    size_t total = 0;
    for (size_t i = 0; i < r->n_kvs; i++)
        total += r->kvs[i]->key.len + 1;
    p->keys = sx_malloc(total ? total : 1);
    sx_etcd_range *res = sx_calloc(1, sizeof(*res));
    res->kvs = sx_calloc(r->n_kvs ? r->n_kvs : 1, sizeof(*res->kvs));
    char *k = p->keys;
    for (size_t i = 0; i < r->n_kvs; i++) {
        memcpy(k, r->kvs[i]->key.data, r->kvs[i]->key.len);
        k[r->kvs[i]->key.len] = '\0';
        kv_from(&res->kvs[i], r->kvs[i], k);
        k += r->kvs[i]->key.len + 1;
    }
    res->count = r->n_kvs;
    res->more = r->more;
    res->revision = r->header ? r->header->revision : 0;
    res->priv = p;
    *out = res;
    return SX_OK;
}

size_t sx_etcd_member_count(const sx_etcd *e)
{
    return e->neps;
}

const char *sx_etcd_member(const sx_etcd *e, size_t i)
{
    return i < e->neps ? e->eps[i] : NULL;
}

sx_status sx_etcd_member_check(sx_etcd *e, size_t i, uint64_t timeout_ms, sx_err *err)
{
    if (i >= e->neps)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "etcd: no member %zu", i);
    /* What `etcdctl endpoint health` does: a linearizable read, which only a
     * member in touch with a leader and a quorum can answer. */
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = bytes_of("health", 6);
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms, .wait_for_ready = true};
    sx_err e2 = {0};
    sx_status st = sx_rpc_invoke(e->rpc, e->eps[i], KV_SVC, "Range", &req.base, &resp, &o, &e2);
    sx_rpc_free(resp);
    if (st != SX_OK)
        return sx_err_set(err, st, "etcd %s: %s", e->eps[i], e2.msg);
    return SX_OK;
}

void sx_etcd_range_free(sx_etcd_range *r)
{
    if (!r)
        return;
    range_priv *p = r->priv;
    sx_rpc_free(&p->resp->base);
    free(p->keys);
    free(p);
    free(r->kvs);
    free(r);
}

sx_status sx_etcd_put(sx_etcd *e, const char *key, const void *value, size_t value_len,
                      int64_t lease, int64_t *revision, sx_err *err)
{
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = bytes_of(key, strlen(key));
    req.value = bytes_of(value, value_len);
    req.lease = lease;
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, KV_SVC, "Put", &req.base, &resp, err);
    if (st != SX_OK)
        return st;
    Etcdserverpb__PutResponse *r = (Etcdserverpb__PutResponse *)resp;
    if (revision)
        *revision = r->header ? r->header->revision : 0;
    sx_rpc_free(resp);
    return SX_OK;
}

sx_status sx_etcd_delete(sx_etcd *e, const char *key, bool prefix, int64_t *deleted,
                         int64_t *revision, sx_err *err)
{
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    size_t klen = strlen(key);
    req.key = bytes_of(key, klen);
    if (prefix)
        req.range_end = prefix_end(key, klen);
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, KV_SVC, "DeleteRange", &req.base, &resp, err);
    free(prefix ? req.range_end.data : NULL);
    if (st != SX_OK)
        return st;
    Etcdserverpb__DeleteRangeResponse *r = (Etcdserverpb__DeleteRangeResponse *)resp;
    if (deleted)
        *deleted = r->deleted;
    if (revision)
        *revision = r->header ? r->header->revision : 0;
    sx_rpc_free(resp);
    return SX_OK;
}

/* ---------------------------------------------------------- transactions -- */

/* The request messages of a transaction, freed together. */
typedef struct txn_msgs {
    Etcdserverpb__Compare *cmps;
    Etcdserverpb__Compare **cmp_ptrs;
    Etcdserverpb__RequestOp *ops;
    Etcdserverpb__RequestOp **op_ptrs;
    Etcdserverpb__PutRequest *puts;
    Etcdserverpb__DeleteRangeRequest *dels;
} txn_msgs;

static void txn_op(txn_msgs *m, size_t i, const sx_etcd_op *op)
{
    etcdserverpb__request_op__init(&m->ops[i]);
    m->op_ptrs[i] = &m->ops[i];
    if (op->del) {
        Etcdserverpb__DeleteRangeRequest *d = &m->dels[i];
        etcdserverpb__delete_range_request__init(d);
        size_t klen = strlen(op->key);
        d->key = bytes_of(op->key, klen);
        if (op->prefix)
            d->range_end = prefix_end(op->key, klen);
        m->ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        m->ops[i].request_delete_range = d;
    } else {
        Etcdserverpb__PutRequest *p = &m->puts[i];
        etcdserverpb__put_request__init(p);
        p->key = bytes_of(op->key, strlen(op->key));
        p->value = bytes_of(op->value, op->value_len);
        p->lease = op->lease;
        m->ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        m->ops[i].request_put = p;
    }
}

static void txn_cmp(txn_msgs *m, size_t i, const sx_etcd_cmp *c)
{
    Etcdserverpb__Compare *x = &m->cmps[i];
    etcdserverpb__compare__init(x);
    m->cmp_ptrs[i] = x;
    x->key = bytes_of(c->key, strlen(c->key));
    x->result = (Etcdserverpb__Compare__CompareResult)c->op;
    x->target = (Etcdserverpb__Compare__CompareTarget)c->target;
    switch (c->target) {
    case SX_ETCD_VERSION:
        x->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        x->version = c->number;
        break;
    case SX_ETCD_CREATE:
        x->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        x->create_revision = c->number;
        break;
    case SX_ETCD_MOD:
        x->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        x->mod_revision = c->number;
        break;
    case SX_ETCD_VALUE:
        x->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        x->value = bytes_of(c->value, c->value_len);
        break;
    }
}

sx_status sx_etcd_txn_run(sx_etcd *e, const sx_etcd_txn *t, bool *succeeded, int64_t *revision,
                          sx_err *err)
{
    *succeeded = false;
    size_t nops = t->nthen + t->nelse, n1 = nops ? nops : 1, nc = t->ncmps ? t->ncmps : 1;
    txn_msgs m = {
        .cmps = sx_calloc(nc, sizeof(*m.cmps)),
        .cmp_ptrs = sx_calloc(nc, sizeof(*m.cmp_ptrs)),
        .ops = sx_calloc(n1, sizeof(*m.ops)),
        .op_ptrs = sx_calloc(n1, sizeof(*m.op_ptrs)),
        .puts = sx_calloc(n1, sizeof(*m.puts)),
        .dels = sx_calloc(n1, sizeof(*m.dels)),
    };
    for (size_t i = 0; i < t->ncmps; i++)
        txn_cmp(&m, i, &t->cmps[i]);
    for (size_t i = 0; i < t->nthen; i++)
        txn_op(&m, i, &t->then_ops[i]);
    for (size_t i = 0; i < t->nelse; i++)
        txn_op(&m, t->nthen + i, &t->else_ops[i]);
    Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
    req.n_compare = t->ncmps;
    req.compare = m.cmp_ptrs;
    req.n_success = t->nthen;
    req.success = m.op_ptrs;
    req.n_failure = t->nelse;
    req.failure = m.op_ptrs + t->nthen;
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, KV_SVC, "Txn", &req.base, &resp, err);
    for (size_t i = 0; i < nops; i++)
        free(m.dels[i].range_end.data);
    free(m.cmps);
    free(m.cmp_ptrs);
    free(m.ops);
    free(m.op_ptrs);
    free(m.puts);
    free(m.dels);
    if (st != SX_OK)
        return st;
    Etcdserverpb__TxnResponse *r = (Etcdserverpb__TxnResponse *)resp;
    *succeeded = r->succeeded;
    if (revision)
        *revision = r->header ? r->header->revision : 0;
    sx_rpc_free(resp);
    return SX_OK;
}

/* ---------------------------------------------------------------- leases -- */

sx_status sx_etcd_lease_grant(sx_etcd *e, int64_t ttl_s, int64_t *id, int64_t *granted_ttl_s,
                              sx_err *err)
{
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl_s;
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, LEASE_SVC, "LeaseGrant", &req.base, &resp, err);
    if (st != SX_OK)
        return st;
    Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)resp;
    if (r->error && r->error[0]) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION, "etcd LeaseGrant: %s", r->error);
    } else {
        *id = r->id;
        if (granted_ttl_s)
            *granted_ttl_s = r->ttl;
    }
    sx_rpc_free(resp);
    return st;
}

sx_status sx_etcd_lease_revoke(sx_etcd *e, int64_t id, sx_err *err)
{
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = id;
    ProtobufCMessage *resp = NULL;
    sx_status st = invoke(e, LEASE_SVC, "LeaseRevoke", &req.base, &resp, err);
    sx_rpc_free(resp);
    return st;
}

/* ------------------------------------------------------------- keepalive -- */

struct sx_etcd_keepalive {
    sx_etcd *e;
    size_t ep_idx;
    int64_t id;
    uint64_t period_ms, ttl_ms;
    char ep[128];
    sx_etcd_keepalive_opts o;
    sx_rpc_stream *s;
    pthread_t ticker;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool stop;
    bool over;              /* the stream ended: the ticker has nothing to do */
    uint64_t sent[KA_RING]; /* send times of unanswered requests, oldest first */
    size_t nsent;
    uint64_t valid_until; /* the lease lives at least until then */
    sx_status reason;     /* an end decided here; SX_OK: the stream's */
    sx_err reason_err;
};

static void ka_msg(void *arg, ProtobufCMessage *msg)
{
    sx_etcd_keepalive *k = arg;
    Etcdserverpb__LeaseKeepAliveResponse *r = (Etcdserverpb__LeaseKeepAliveResponse *)msg;
    int64_t ttl = r->ttl;
    sx_rpc_free(msg);
    pthread_mutex_lock(&k->mu);
    uint64_t sent = k->nsent ? k->sent[0] : 0;
    if (k->nsent) {
        memmove(k->sent, k->sent + 1, (k->nsent - 1) * sizeof(k->sent[0]));
        k->nsent--;
    }
    bool gone = ttl <= 0;
    if (gone && k->reason == SX_OK)
        sx_err_set(&k->reason_err, k->reason = SX_NOT_FOUND,
                   "etcd %s LeaseKeepAlive: lease %lld is gone (TTL 0)", k->ep, (long long)k->id);
    else if (!gone && sent && sent + (uint64_t)ttl * 1000 > k->valid_until)
        k->valid_until = sent + (uint64_t)ttl * 1000;
    pthread_mutex_unlock(&k->mu);
    if (gone) {
        sx_rpc_stream_cancel(k->s);
    } else if (k->o.on_renewed && sent) {
        k->o.on_renewed(k->o.arg, ttl, sent);
    }
}

static void ka_end(void *arg, sx_status st, const sx_err *err)
{
    sx_etcd_keepalive *k = arg;
    sx_err e2 = {0};
    pthread_mutex_lock(&k->mu);
    k->over = true;
    if (k->reason != SX_OK) {
        st = k->reason;
        e2 = k->reason_err;
        if (st == SX_DEADLINE_EXCEEDED) /* a silent member: the next stream tries another */
            endpoint_failed(k->e, k->ep_idx);
    } else {
        sx_err_set(&e2, st, "etcd %s LeaseKeepAlive: %s", k->ep, err->msg);
        if (st == SX_UNAVAILABLE)
            endpoint_failed(k->e, k->ep_idx);
    }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    if (k->o.on_end)
        k->o.on_end(k->o.arg, st, &e2);
}

/* Sends a request every period, and ends the keepalive when a whole TTL
 * passed since the last renewal's request without another answer. */
static void *ka_main(void *arg)
{
    sx_etcd_keepalive *k = arg;
    uint64_t next = 0;
    pthread_mutex_lock(&k->mu);
    while (!k->stop && !k->over) {
        uint64_t now = sx_clock_now_ms();
        if (now >= k->valid_until && k->reason == SX_OK) {
            sx_err_set(&k->reason_err, k->reason = SX_DEADLINE_EXCEEDED,
                       "etcd %s LeaseKeepAlive: no answer for lease %lld within its TTL", k->ep,
                       (long long)k->id);
            pthread_mutex_unlock(&k->mu);
            sx_rpc_stream_cancel(k->s);
            pthread_mutex_lock(&k->mu);
            continue; /* wait for the end (over) or stop */
        }
        if (now >= next && k->reason == SX_OK) {
            if (k->nsent < KA_RING)
                k->sent[k->nsent++] = now;
            pthread_mutex_unlock(&k->mu);
            Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
            req.id = k->id;
            (void)sx_rpc_stream_send(k->s, &req.base); /* a failure ends the stream: ka_end */
            pthread_mutex_lock(&k->mu);
            next = now + k->period_ms;
            continue;
        }
        uint64_t wake =
            k->reason == SX_OK ? (next < k->valid_until ? next : k->valid_until) : now + 1000;
        sx_cond_wait_ms(&k->cv, &k->mu, wake > now ? wake - now : 1);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

sx_status sx_etcd_keepalive_start(sx_etcd *e, int64_t id, int64_t ttl_s,
                                  const sx_etcd_keepalive_opts *opts, sx_etcd_keepalive **out,
                                  sx_err *err)
{
    *out = NULL;
    if (ttl_s <= 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "etcd keepalive: TTL %lld", (long long)ttl_s);
    sx_etcd_keepalive *k = sx_calloc(1, sizeof(*k));
    k->id = id;
    k->ttl_ms = (uint64_t)ttl_s * 1000;
    k->period_ms = k->ttl_ms / 3 > KA_MIN_PERIOD_MS ? k->ttl_ms / 3 : KA_MIN_PERIOD_MS;
    if (opts)
        k->o = *opts;
    /* The lease was granted before now: it lives at most a TTL from here
     * unless an answer says otherwise. */
    k->valid_until = sx_clock_now_ms() + k->ttl_ms;
    pthread_mutex_init(&k->mu, NULL);
    sx_cond_init_monotonic(&k->cv);
    k->e = e;
    k->ep_idx = endpoint_pick(e);
    const char *ep = e->eps[k->ep_idx];
    snprintf(k->ep, sizeof(k->ep), "%s", ep);
    /* wait_for_ready: the stream drives the connection to a member not yet
     * connected (invoke_one says why); one that never answers ends by the TTL. */
    sx_rpc_stream_opts so = {.wait_for_ready = true,
                             .metadata = has_leader,
                             .nmetadata = 1,
                             .on_msg = ka_msg,
                             .on_end = ka_end,
                             .arg = k};
    sx_status st = sx_rpc_stream_open(e->rpc, ep, LEASE_SVC, "LeaseKeepAlive", &so, &k->s, err);
    if (st != SX_OK) {
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
        free(k);
        return st;
    }
    pthread_create(&k->ticker, NULL, ka_main, k);
    pthread_setname_np(k->ticker, "etcd-keepalive");
    *out = k;
    return SX_OK;
}

void sx_etcd_keepalive_stop(sx_etcd_keepalive *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->ticker, NULL);
    sx_rpc_stream_destroy(k->s); /* cancels: ka_end with CANCELLED, unless over */
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
}

/* ----------------------------------------------------------------- watch -- */

struct sx_etcd_watch {
    sx_etcd *e;
    size_t ep_idx;
    char ep[128];
    sx_etcd_watch_opts o;
    sx_rpc_stream *s;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    bool created;   /* etcd created the watcher: callbacks are for the user now */
    bool abandoned; /* start gave up: no user callback ever */
    bool over;      /* the stream ended */
    int64_t revision;
    sx_status reason; /* an end decided here (etcd cancelled the watch); SX_OK: the stream's */
    sx_err reason_err;
};

static void watch_events(sx_etcd_watch *w, const Etcdserverpb__WatchResponse *r)
{
    for (size_t i = 0; i < r->n_events; i++) {
        const Mvccpb__Event *ev = r->events[i];
        if (!ev->kv)
            continue;
        char *key = sx_malloc(ev->kv->key.len + 1);
        memcpy(key, ev->kv->key.data, ev->kv->key.len);
        key[ev->kv->key.len] = '\0';
        sx_etcd_event out = {.deleted = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE,
                             .revision = ev->kv->mod_revision};
        kv_from(&out.kv, ev->kv, key);
        w->o.on_event(w->o.arg, &out);
        free(key);
    }
}

static void watch_msg(void *arg, ProtobufCMessage *msg)
{
    sx_etcd_watch *w = arg;
    Etcdserverpb__WatchResponse *r = (Etcdserverpb__WatchResponse *)msg;
    pthread_mutex_lock(&w->mu);
    if (r->created && !w->created) {
        w->created = true;
        w->revision = r->header ? r->header->revision : 0;
        pthread_cond_broadcast(&w->cv);
    }
    bool deliver = w->created && !w->abandoned && w->o.on_event;
    if (r->canceled && w->reason == SX_OK) {
        if (r->compact_revision > 0)
            sx_err_set(&w->reason_err, w->reason = SX_OUT_OF_RANGE,
                       "etcd %s Watch: revision compacted (the oldest left is %lld)", w->ep,
                       (long long)r->compact_revision);
        else
            sx_err_set(&w->reason_err, w->reason = SX_ABORTED, "etcd %s Watch: cancelled: %s",
                       w->ep, r->cancel_reason && r->cancel_reason[0] ? r->cancel_reason : "?");
    }
    bool cancel = r->canceled;
    pthread_mutex_unlock(&w->mu);
    if (deliver)
        watch_events(w, r);
    sx_rpc_free(msg);
    if (cancel)
        sx_rpc_stream_cancel(w->s);
}

static void watch_end(void *arg, sx_status st, const sx_err *err)
{
    sx_etcd_watch *w = arg;
    sx_err e2 = {0};
    pthread_mutex_lock(&w->mu);
    w->over = true;
    if (w->reason != SX_OK) {
        st = w->reason;
        e2 = w->reason_err;
    } else {
        sx_err_set(&e2, st, "etcd %s Watch: %s", w->ep, err->msg);
        if (st == SX_UNAVAILABLE)
            endpoint_failed(w->e, w->ep_idx);
    }
    if (!w->created) { /* start reports it */
        w->reason = st;
        w->reason_err = e2;
    }
    bool tell = w->created && !w->abandoned && w->o.on_end;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (tell)
        w->o.on_end(w->o.arg, st, &e2);
}

static void watch_free(sx_etcd_watch *w)
{
    sx_rpc_stream_destroy(w->s);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* Sends the create request and waits for etcd's answer. */
static sx_status watch_create(sx_etcd *e, sx_etcd_watch *w, sx_err *err)
{
    Etcdserverpb__WatchCreateRequest c = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    size_t klen = strlen(w->o.key);
    c.key = bytes_of(w->o.key, klen);
    if (w->o.prefix)
        c.range_end = prefix_end(w->o.key, klen);
    c.start_revision = w->o.start_revision;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &c;
    sx_status st = sx_rpc_stream_send(w->s, &req.base);
    free(w->o.prefix ? c.range_end.data : NULL);
    uint64_t until = sx_clock_now_ms() + e->timeout_ms;
    pthread_mutex_lock(&w->mu);
    for (uint64_t now; st == SX_OK && !w->created && !w->over && (now = sx_clock_now_ms()) < until;)
        sx_cond_wait_ms(&w->cv, &w->mu, until - now);
    if (w->created && w->reason == SX_OK) {
        st = SX_OK;
    } else if (w->reason != SX_OK) {
        st = w->reason;
        if (err)
            *err = w->reason_err;
    } else {
        st = sx_err_set(err, SX_DEADLINE_EXCEEDED, "etcd %s Watch: not created within %llu ms",
                        w->ep, (unsigned long long)e->timeout_ms);
        endpoint_failed(e, w->ep_idx); /* the next watch tries another member */
    }
    if (st != SX_OK)
        w->abandoned = true;
    pthread_mutex_unlock(&w->mu);
    return st;
}

sx_status sx_etcd_watch_start(sx_etcd *e, const sx_etcd_watch_opts *opts, sx_etcd_watch **out,
                              int64_t *revision, sx_err *err)
{
    *out = NULL;
    if (!opts || !opts->key)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "etcd watch: no key");
    sx_etcd_watch *w = sx_calloc(1, sizeof(*w));
    w->o = *opts;
    pthread_mutex_init(&w->mu, NULL);
    sx_cond_init_monotonic(&w->cv);
    w->e = e;
    w->ep_idx = endpoint_pick(e);
    const char *ep = e->eps[w->ep_idx];
    snprintf(w->ep, sizeof(w->ep), "%s", ep);
    /* wait_for_ready, as for keepalives: watch_create's wait bounds it. */
    sx_rpc_stream_opts so = {.wait_for_ready = true,
                             .metadata = has_leader,
                             .nmetadata = 1,
                             .on_msg = watch_msg,
                             .on_end = watch_end,
                             .arg = w};
    sx_status st = sx_rpc_stream_open(e->rpc, ep, WATCH_SVC, "Watch", &so, &w->s, err);
    if (st == SX_OK)
        st = watch_create(e, w, err);
    if (st != SX_OK) {
        watch_free(w);
        return st;
    }
    if (revision)
        *revision = w->revision;
    *out = w;
    return SX_OK;
}

void sx_etcd_watch_stop(sx_etcd_watch *w)
{
    if (w)
        watch_free(w); /* cancels: watch_end with CANCELLED, unless over */
}
