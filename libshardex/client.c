/* client.c: libshardex's blocking calls, the plan that takes each call through
 * the servers, document building and token sets. The bulk writer is bulk.c.
 *
 * Every call is one loop: start an attempt on the plan's next server, and on
 * failure ask the plan whether the failure allows another attempt (shardex.h
 * gives the rules; not_sent below decides what "proves nothing was
 * processed"). The rpc layer's own retries are not used: they repeat one
 * address, and a client of several workers should move to the next instead.
 */
#include "client_internal.h"

#include "clock.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A server that refused a connection is tried last for this long. */
#define DOWN_MS 1000
/* Pause after a round of every server: doubles from PAUSE_BASE_MS to PAUSE_CAP_MS. */
#define PAUSE_BASE_MS 50
#define PAUSE_CAP_MS 1000

/* ------------------------------------------------------------------ plan -- */

static uint64_t jitter_draw(sx_client *c)
{
    uint64_t z = atomic_fetch_add(&c->jitter, 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether a failure proves that no worker processed the request, so that a
 * write may be sent again. The rpc layer gives gRPC's message for transport
 * failures and the server's message otherwise, under the same UNAVAILABLE;
 * the messages below can only come from failures before any processing:
 *   - gRPC could not connect, or could not resolve the name (nothing sent);
 *   - a worker that has not joined the cluster refuses before validating;
 *   - the rpc fault layer failed the call without sending it (fail=), so
 *     that tests can drive failover.
 * A worker that tried the partition's leader and failed summarises with
 * "may not have been written", even when its last failure was a refused
 * connection (an earlier attempt may have been appended): never a proof. A
 * worker forwarding a catalog call to an unreachable coordinator passes
 * gRPC's message on, and that is a proof (the coordinator got nothing). */
static bool not_sent(sx_status st, const sx_err *e)
{
    static const char *const prefixes[] = {
        "failed to connect to all addresses",
        "DNS resolution failed",
        "this worker has not joined the cluster yet",
    };
    if (st != SX_UNAVAILABLE || strstr(e->msg, "may not have been written"))
        return false;
    if (strstr(e->msg, ": fault injected: call failed"))
        return true;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(e->msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

void sx__plan_start(sx_client *c, sx__plan *p, bool idempotent)
{
    size_t n = c->nservers, start = atomic_fetch_add(&c->rotation, 1) % n, k = 0;
    uint64_t now = sx_clock_now_ms();
    /* Up servers in rotation order, then down ones in rotation order. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            size_t s = (start + i) % n;
            bool down = atomic_load(&c->down_until[s]) > now;
            if (down == (pass == 1))
                p->order[k++] = (uint8_t)s;
        }
    }
    p->deadline_ms = now + c->timeout_ms;
    p->attempts = 0;
    p->cur = p->order[0];
    p->idempotent = idempotent;
}

const char *sx__plan_next(sx_client *c, sx__plan *p, sx_rpc_call_opts *o)
{
    p->cur = p->order[p->attempts % c->nservers];
    p->attempts++;
    uint64_t now = sx_clock_now_ms();
    uint64_t left = p->deadline_ms > now ? p->deadline_ms - now : 1;
    if (p->idempotent && c->attempt_timeout_ms && c->attempt_timeout_ms < left)
        left = c->attempt_timeout_ms;
    *o = (sx_rpc_call_opts){.timeout_ms = left};
    return c->servers[p->cur];
}

bool sx__plan_retry(sx_client *c, sx__plan *p, sx_status st, const sx_err *e, uint64_t *delay_ms)
{
    bool nothing_sent = not_sent(st, e);
    if (nothing_sent)
        atomic_store(&c->down_until[p->cur], sx_clock_now_ms() + DOWN_MS);
    if (p->attempts >= c->max_attempts)
        return false;
    bool may =
        nothing_sent || (p->idempotent && (st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED));
    if (!may)
        return false;
    uint64_t d = 0;
    if (p->attempts % c->nservers == 0) {
        /* Every server failed this round: pause, half of it random. */
        uint32_t round = p->attempts / (uint32_t)c->nservers;
        uint32_t shift = round - 1 < 5 ? round - 1 : 5;
        uint64_t cap = (uint64_t)PAUSE_BASE_MS << shift;
        if (cap > PAUSE_CAP_MS)
            cap = PAUSE_CAP_MS;
        d = cap / 2 + jitter_draw(c) % (cap / 2 + 1);
    }
    /* An attempt needs some time to be worth starting. */
    if (sx_clock_now_ms() + d + 10 >= p->deadline_ms)
        return false;
    *delay_ms = d;
    return true;
}

void sx__plan_end(sx_client *c, const sx__plan *p, const char *method, sx_status st, sx_err *e)
{
    if (st == SX_OK) {
        atomic_store(&c->down_until[p->cur], 0);
        return;
    }
    if (p->attempts > 1)
        sx_err_prefix(e, "%s via %s (attempt %u)", method, c->servers[p->cur], p->attempts);
    else
        sx_err_prefix(e, "%s via %s", method, c->servers[p->cur]);
}

/* ---------------------------------------------------------------- client -- */

/* An option, else the environment variable of that name (empty: unset). */
static const char *opts_or_env(const char *v, const char *name)
{
    if (v && v[0])
        return v;
    const char *e = getenv(name);
    return e && e[0] ? e : NULL;
}

sx_status sx_client_open(const sx_client_opts *opts, sx_client **out, sx_err *err)
{
    *out = NULL;
    if (!opts || !opts->servers || opts->nservers == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "servers: at least one address is needed");
    if (opts->nservers > SX_CLIENT_MAX_SERVERS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "servers: %zu addresses, at most %d",
                          opts->nservers, SX_CLIENT_MAX_SERVERS);
    for (size_t i = 0; i < opts->nservers; i++)
        if (!opts->servers[i] || !opts->servers[i][0])
            return sx_err_set(err, SX_INVALID_ARGUMENT, "servers[%zu]: empty address", i);
    sx_rpc_tls tls = {.cert_file = opts_or_env(opts->tls_cert, "SHARDEX_TLS_CERT"),
                      .key_file = opts_or_env(opts->tls_key, "SHARDEX_TLS_KEY"),
                      .ca_file = opts_or_env(opts->tls_ca, "SHARDEX_TLS_CA")};
    if ((tls.cert_file || tls.key_file) && !tls.ca_file)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "tls: a client certificate needs the CA (tls_ca, SHARDEX_TLS_CA) too");
    sx_rpc_client_opts ro = {.max_message_bytes = opts->max_message_bytes
                                                      ? opts->max_message_bytes
                                                      : SX_CLIENT_DEFAULT_MAX_MESSAGE,
                             .tls = tls.ca_file ? &tls : NULL,
                             .token = opts_or_env(opts->token, "SHARDEX_TOKEN")};
    sx_rpc_client *rpc = NULL;
    sx_status st = sx_rpc_client_create(&ro, &rpc, err);
    if (st != SX_OK)
        return st;
    sx_client *c = sx_calloc(1, sizeof(*c));
    c->rpc = rpc;
    c->nservers = opts->nservers;
    c->servers = sx_calloc(c->nservers, sizeof(*c->servers));
    for (size_t i = 0; i < c->nservers; i++)
        c->servers[i] = sx_strdup(opts->servers[i]);
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : SX_CLIENT_DEFAULT_TIMEOUT_MS;
    c->attempt_timeout_ms = opts->attempt_timeout_ms;
    c->max_attempts = opts->max_attempts ? opts->max_attempts : UINT32_MAX;
    atomic_init(&c->rotation, (size_t)(sx_clock_now_ns() % c->nservers));
    atomic_init(&c->jitter, sx_clock_now_ns() ^ (uint64_t)(uintptr_t)c);
    for (size_t i = 0; i < SX_CLIENT_MAX_SERVERS; i++)
        atomic_init(&c->down_until[i], 0);
    *out = c;
    return SX_OK;
}

void sx_client_close(sx_client *c)
{
    if (!c)
        return;
    sx_rpc_client_destroy(c->rpc);
    for (size_t i = 0; i < c->nservers; i++)
        free(c->servers[i]);
    free(c->servers);
    free(c);
}

void sx_client_free(void *resp)
{
    sx_rpc_free(resp);
}

/* One blocking call of the contract, through the plan. */
static sx_status call(sx_client *c, const char *method, bool idempotent,
                      const ProtobufCMessage *req, ProtobufCMessage **resp, sx_err *err)
{
    sx__plan p;
    sx__plan_start(c, &p, idempotent);
    sx_err e = {0};
    for (;;) {
        sx_rpc_call_opts o;
        const char *addr = sx__plan_next(c, &p, &o);
        sx_status st = sx_rpc_invoke(c->rpc, addr, SX__SHARDEX_SVC, method, req, resp, &o, &e);
        uint64_t delay = 0;
        if (st == SX_OK || !sx__plan_retry(c, &p, st, &e, &delay)) {
            sx__plan_end(c, &p, method, st, &e);
            if (st != SX_OK && err)
                *err = e;
            return st;
        }
        if (delay)
            sx_clock_sleep_ms(delay);
    }
}

/* Copies n tokens of a write response into out (may be NULL). */
static sx_status take_tokens(const char *method, Shardex__V1__WriteToken *const *tokens,
                             size_t ntokens, size_t n, Shardex__V1__WriteToken *out, sx_err *err)
{
    if (ntokens != n)
        return sx_err_set(err, SX_INTERNAL, "%s: the server returned %zu tokens for %zu writes",
                          method, ntokens, n);
    for (size_t i = 0; out && i < n; i++) {
        shardex__v1__write_token__init(&out[i]);
        out[i].partition = tokens[i]->partition;
        out[i].offset = tokens[i]->offset;
    }
    return SX_OK;
}

sx_status sx_client_put(sx_client *c, Shardex__V1__Document *const *docs, size_t n,
                        Shardex__V1__WriteToken *tokens_out, sx_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!docs[i])
            return sx_err_set(err, SX_INVALID_ARGUMENT, "docs[%zu]: NULL document", i);
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    req.n_docs = n;
    req.docs = (Shardex__V1__Document **)docs; /* the request is only read */
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "Put", false, &req.base, &resp, err);
    if (st != SX_OK)
        return st;
    const Shardex__V1__PutResponse *pr = (const void *)resp;
    st = take_tokens("Put", pr->tokens, pr->n_tokens, n, tokens_out, err);
    sx_rpc_free(resp);
    return st;
}

sx_status sx_client_delete(sx_client *c, const char *const *ids, size_t n,
                           Shardex__V1__WriteToken *tokens_out, sx_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (!ids[i])
            return sx_err_set(err, SX_INVALID_ARGUMENT, "ids[%zu]: NULL id", i);
    Shardex__V1__DeleteRequest req = SHARDEX__V1__DELETE_REQUEST__INIT;
    req.n_ids = n;
    req.ids = (char **)ids;
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "Delete", false, &req.base, &resp, err);
    if (st != SX_OK)
        return st;
    const Shardex__V1__DeleteResponse *dr = (const void *)resp;
    st = take_tokens("Delete", dr->tokens, dr->n_tokens, n, tokens_out, err);
    sx_rpc_free(resp);
    return st;
}

sx_status sx_client_get(sx_client *c, const char *id, Shardex__V1__WriteToken *const *after,
                        size_t n_after, Shardex__V1__GetResponse **out, sx_err *err)
{
    *out = NULL;
    if (!id)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "id: NULL");
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    req.n_after = n_after;
    req.after = (Shardex__V1__WriteToken **)after;
    return call(c, "Get", true, &req.base, (ProtobufCMessage **)out, err);
}

sx_status sx_client_query(sx_client *c, const Shardex__V1__QueryRequest *req,
                          Shardex__V1__QueryResponse **out, sx_err *err)
{
    *out = NULL;
    return call(c, "Query", true, &req->base, (ProtobufCMessage **)out, err);
}

sx_status sx_client_create_index(sx_client *c, const Shardex__V1__IndexSpec *spec,
                                 Shardex__V1__CreateIndexResponse **out, sx_err *err)
{
    if (out)
        *out = NULL;
    Shardex__V1__CreateIndexRequest req = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    req.spec = (Shardex__V1__IndexSpec *)spec;
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "CreateIndex", false, &req.base, &resp, err);
    if (st == SX_OK && out)
        *out = (Shardex__V1__CreateIndexResponse *)resp;
    else
        sx_rpc_free(resp);
    return st;
}

sx_status sx_client_drop_index(sx_client *c, const char *name, sx_err *err)
{
    if (!name)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "name: NULL");
    Shardex__V1__DropIndexRequest req = SHARDEX__V1__DROP_INDEX_REQUEST__INIT;
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "DropIndex", false, &req.base, &resp, err);
    sx_rpc_free(resp);
    return st;
}

sx_status sx_client_list_indexes(sx_client *c, Shardex__V1__ListIndexesResponse **out, sx_err *err)
{
    *out = NULL;
    Shardex__V1__ListIndexesRequest req = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
    return call(c, "ListIndexes", true, &req.base, (ProtobufCMessage **)out, err);
}

sx_status sx_client_status(sx_client *c, Shardex__V1__ClusterStatusResponse **out, sx_err *err)
{
    *out = NULL;
    Shardex__V1__ClusterStatusRequest req = SHARDEX__V1__CLUSTER_STATUS_REQUEST__INIT;
    return call(c, "ClusterStatus", true, &req.base, (ProtobufCMessage **)out, err);
}

sx_status sx_client_drain_worker(sx_client *c, const char *id, bool cancel,
                                 Shardex__V1__DrainWorkerResponse **out, sx_err *err)
{
    *out = NULL;
    if (!id)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "id: NULL");
    Shardex__V1__DrainWorkerRequest req = SHARDEX__V1__DRAIN_WORKER_REQUEST__INIT;
    req.worker_id = (char *)id;
    req.cancel = cancel;
    /* Idempotent: it sets a flag. */
    return call(c, "DrainWorker", true, &req.base, (ProtobufCMessage **)out, err);
}

sx_status sx_client_remove_worker(sx_client *c, const char *id, bool force,
                                  Shardex__V1__RemoveWorkerResponse **out, sx_err *err)
{
    if (out)
        *out = NULL;
    if (!id)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "id: NULL");
    Shardex__V1__RemoveWorkerRequest req = SHARDEX__V1__REMOVE_WORKER_REQUEST__INIT;
    req.worker_id = (char *)id;
    req.force = force;
    ProtobufCMessage *resp = NULL;
    /* Idempotent: removing a removed worker changes nothing. */
    sx_status st = call(c, "RemoveWorker", true, &req.base, &resp, err);
    if (st == SX_OK && out)
        *out = (Shardex__V1__RemoveWorkerResponse *)resp;
    else
        sx_rpc_free(resp);
    return st;
}

sx_status sx_client_split_index(sx_client *c, const char *name, uint32_t t,
                                const Shardex__V1__Value *at, Shardex__V1__SplitIndexResponse **out,
                                sx_err *err)
{
    if (out)
        *out = NULL;
    if (!name)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "name: NULL");
    Shardex__V1__SplitIndexRequest req = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    req.name = (char *)name;
    req.term_partition = t;
    req.at = (Shardex__V1__Value *)at;
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "SplitIndex", false, &req.base, &resp, err);
    if (st == SX_OK && out)
        *out = (Shardex__V1__SplitIndexResponse *)resp;
    else
        sx_rpc_free(resp);
    return st;
}

sx_status sx_client_salt_index(sx_client *c, const char *name, const Shardex__V1__Value *value,
                               uint32_t ways, Shardex__V1__SaltIndexResponse **out, sx_err *err)
{
    if (out)
        *out = NULL;
    if (!name)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "name: NULL");
    Shardex__V1__SaltIndexRequest req = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    req.name = (char *)name;
    req.value = (Shardex__V1__Value *)value;
    req.ways = ways;
    ProtobufCMessage *resp = NULL;
    sx_status st = call(c, "SaltIndex", false, &req.base, &resp, err);
    if (st == SX_OK && out)
        *out = (Shardex__V1__SaltIndexResponse *)resp;
    else
        sx_rpc_free(resp);
    return st;
}

/* ------------------------------------------------------------- documents -- */

/* A document from sx_doc_new: the generated struct first, so that the box is
 * found from the document; fields, values and strings in the arena, the
 * array of field pointers grown by hand. */
typedef struct docbox {
    Shardex__V1__Document doc;
    sx_arena arena;
    size_t cap; /* room in doc.fields */
} docbox;

Shardex__V1__Document *sx_doc_new(const char *id)
{
    docbox *b = sx_calloc(1, sizeof(*b));
    shardex__v1__document__init(&b->doc);
    b->doc.id = sx_arena_strdup(&b->arena, id ? id : "");
    return &b->doc;
}

static Shardex__V1__Value *add_field(Shardex__V1__Document *doc, const char *name)
{
    docbox *b = (docbox *)doc;
    if (doc->n_fields == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 8;
        doc->fields = sx_realloc(doc->fields, b->cap * sizeof(*doc->fields));
    }
    Shardex__V1__Field *f = sx_arena_alloc(&b->arena, sizeof(*f));
    shardex__v1__field__init(f);
    f->name = sx_arena_strdup(&b->arena, name ? name : "");
    f->value = sx_arena_alloc(&b->arena, sizeof(*f->value));
    shardex__v1__value__init(f->value);
    doc->fields[doc->n_fields++] = f;
    return f->value;
}

void sx_doc_add_str(Shardex__V1__Document *doc, const char *name, const char *value)
{
    Shardex__V1__Value *v = add_field(doc, name);
    v->kind_case = SHARDEX__V1__VALUE__KIND_S;
    v->s = sx_arena_strdup(&((docbox *)doc)->arena, value ? value : "");
}

void sx_doc_add_int(Shardex__V1__Document *doc, const char *name, int64_t value)
{
    Shardex__V1__Value *v = add_field(doc, name);
    v->kind_case = SHARDEX__V1__VALUE__KIND_I;
    v->i = value;
}

void sx_doc_free(Shardex__V1__Document *doc)
{
    if (!doc)
        return;
    docbox *b = (docbox *)doc;
    free(doc->fields);
    sx_arena_free(&b->arena);
    free(b);
}

const Shardex__V1__Value *sx_doc_field(const Shardex__V1__Document *doc, const char *name)
{
    for (size_t i = 0; doc && i < doc->n_fields; i++)
        if (doc->fields[i]->name && strcmp(doc->fields[i]->name, name) == 0)
            return doc->fields[i]->value;
    return NULL;
}

/* ---------------------------------------------------------------- tokens -- */

void sx_token_set_add(sx_token_set *s, const Shardex__V1__WriteToken *tok)
{
    size_t i = 0;
    while (i < s->n && s->ptrs[i]->partition < tok->partition)
        i++;
    if (i < s->n && s->ptrs[i]->partition == tok->partition) {
        if (tok->offset > s->ptrs[i]->offset)
            s->ptrs[i]->offset = tok->offset;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->ptrs = sx_realloc(s->ptrs, s->cap * sizeof(*s->ptrs));
    }
    Shardex__V1__WriteToken *t = sx_malloc(sizeof(*t));
    shardex__v1__write_token__init(t);
    t->partition = tok->partition;
    t->offset = tok->offset;
    memmove(&s->ptrs[i + 1], &s->ptrs[i], (s->n - i) * sizeof(*s->ptrs));
    s->ptrs[i] = t;
    s->n++;
}

void sx_token_set_free(sx_token_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ptrs[i]);
    free(s->ptrs);
    *s = (sx_token_set){0};
}
