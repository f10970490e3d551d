/* bulk.c: the bulk writer of shardex.h: batches, several in flight, order per
 * id, retries under the client's rules for writes.
 *
 * A batch goes through these states; only the owning thread (the one calling
 * sx_bulk_*) moves it, but for the one step marked (rpc):
 *
 *   filling   b->cur: operations are copied in; its ids map to it in `held`
 *   in flight sent with sx_rpc_invoke_async; counted in b->inflight
 *   answered  (rpc) the rpc thread stores the outcome and queues it on
 *             b->answered under b->mu, then signals b->cv
 *   resend    the answer was a failure that allows another attempt (nothing
 *             was sent): waits in b->resend until resend_at, still counted,
 *             its ids still held; then in flight again
 *   reported  done() has run; its ids are released; freed
 *
 * Invariants: an id is held by at most one unreported batch (an operation on
 * a held id first sends the batch being filled, if that holds it, and waits
 * until it is reported), which is what keeps the order per id; b->inflight
 * never exceeds max_inflight; every batch is reported exactly once.
 */
#include "client_internal.h"

#include "clock.h"
#include "hmap.h"
#include "mem.h"
#include "sx_limits.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_BATCH_DOCS 500
#define DEFAULT_BATCH_BYTES (4u * 1024 * 1024)
#define DEFAULT_MAX_INFLIGHT 4
/* Room for an operation's tag and length in the request, beyond its own bytes. */
#define OP_OVERHEAD 8
/* The longest the owning thread sleeps without looking for answers. */
#define WAIT_SLICE_MS 200

typedef struct batch batch;
struct batch {
    sx_bulk *b;
    bool is_delete;
    bool counted;                 /* in b->inflight */
    sx_arena arena;               /* the copies of documents and ids */
    Shardex__V1__Document **docs; /* Put batches: n copies */
    char **ids;                   /* n ids (into the copies, for Put batches) */
    size_t n, cap, bytes;
    sx__plan plan;
    uint64_t resend_at;
    /* outcome of the latest attempt, written by the rpc thread before queueing */
    sx_status st;
    sx_err err;
    Shardex__V1__WriteToken *tokens; /* SX_OK: n */
    batch *next;                     /* in b->answered or b->resend */
};

struct sx_bulk {
    sx_client *c;
    sx_bulk_opts o;
    batch *cur;      /* being filled, or NULL */
    size_t inflight; /* sent and not yet reported */
    batch *resend;   /* waiting to be sent again */
    sx_hmap held;    /* id -> the unreported batch holding it */
    sx_status first; /* the first failure, kept for every later call */
    sx_err first_err;
    bool stopped; /* a batch failed and keep_going is off */

    pthread_mutex_t mu; /* answered */
    pthread_cond_t cv;  /* signalled when a batch is answered */
    batch *answered;    /* oldest first */
    batch **answered_tail;
};

/* ---------------------------------------------------------------- batches -- */

static batch *batch_new(sx_bulk *b, bool is_delete)
{
    batch *t = sx_calloc(1, sizeof(*t));
    t->b = b;
    t->is_delete = is_delete;
    return t;
}

static void batch_free(batch *t)
{
    free(t->docs);
    free(t->ids);
    free(t->tokens);
    sx_arena_free(&t->arena);
    free(t);
}

static char *copy_str(sx_arena *a, const char *s)
{
    return sx_arena_strdup(a, s ? s : "");
}

static Shardex__V1__Document *copy_doc(sx_arena *a, const Shardex__V1__Document *d)
{
    Shardex__V1__Document *c = sx_arena_alloc(a, sizeof(*c));
    shardex__v1__document__init(c);
    c->id = copy_str(a, d->id);
    c->n_fields = d->n_fields;
    c->fields = sx_arena_alloc(a, (d->n_fields + 1) * sizeof(*c->fields));
    for (size_t i = 0; i < d->n_fields; i++) {
        const Shardex__V1__Field *f = d->fields[i];
        Shardex__V1__Field *g = sx_arena_alloc(a, sizeof(*g));
        shardex__v1__field__init(g);
        g->name = copy_str(a, f->name);
        if (f->value) {
            g->value = sx_arena_alloc(a, sizeof(*g->value));
            shardex__v1__value__init(g->value);
            g->value->kind_case = f->value->kind_case;
            if (f->value->kind_case == SHARDEX__V1__VALUE__KIND_S)
                g->value->s = copy_str(a, f->value->s);
            else
                g->value->i = f->value->i;
        }
        c->fields[i] = g;
    }
    return c;
}

/* Appends one operation (a document for Put batches, else an id). */
static void batch_add(batch *t, const Shardex__V1__Document *doc, const char *id, size_t bytes)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->ids = sx_realloc(t->ids, t->cap * sizeof(*t->ids));
        if (!t->is_delete)
            t->docs = sx_realloc(t->docs, t->cap * sizeof(*t->docs));
    }
    if (t->is_delete) {
        t->ids[t->n] = copy_str(&t->arena, id);
    } else {
        t->docs[t->n] = copy_doc(&t->arena, doc);
        t->ids[t->n] = t->docs[t->n]->id;
    }
    t->n++;
    t->bytes += bytes;
}

/* ---------------------------------------------------------------- sending -- */

static void on_answer(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    batch *t = arg;
    sx_bulk *b = t->b;
    t->st = st;
    if (st == SX_OK) {
        size_t n;
        Shardex__V1__WriteToken **tokens;
        if (t->is_delete) {
            n = ((const Shardex__V1__DeleteResponse *)resp)->n_tokens;
            tokens = ((const Shardex__V1__DeleteResponse *)resp)->tokens;
        } else {
            n = ((const Shardex__V1__PutResponse *)resp)->n_tokens;
            tokens = ((const Shardex__V1__PutResponse *)resp)->tokens;
        }
        if (n != t->n) {
            t->st = sx_err_set(&t->err, SX_INTERNAL,
                               "the server returned %zu tokens for %zu writes", n, t->n);
        } else {
            t->tokens = sx_calloc(t->n ? t->n : 1, sizeof(*t->tokens));
            for (size_t i = 0; i < t->n; i++) {
                shardex__v1__write_token__init(&t->tokens[i]);
                t->tokens[i].partition = tokens[i]->partition;
                t->tokens[i].offset = tokens[i]->offset;
            }
        }
    } else {
        t->err = *err;
    }
    sx_rpc_free(resp);
    pthread_mutex_lock(&b->mu);
    t->next = NULL;
    *b->answered_tail = t;
    b->answered_tail = &t->next;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static const char *method_of(const batch *t)
{
    return t->is_delete ? "Delete" : "Put";
}

/* One attempt of an in-flight batch, on the plan's next server. */
static void send_attempt(sx_bulk *b, batch *t)
{
    sx_rpc_call_opts o;
    const char *addr = sx__plan_next(b->c, &t->plan, &o);
    free(t->tokens);
    t->tokens = NULL;
    sx_err_clear(&t->err);
    if (t->is_delete) {
        Shardex__V1__DeleteRequest req = SHARDEX__V1__DELETE_REQUEST__INIT;
        req.n_ids = t->n;
        req.ids = t->ids;
        sx_rpc_invoke_async(b->c->rpc, addr, SX__SHARDEX_SVC, "Delete", &req.base, &o, on_answer,
                            t);
    } else {
        Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
        req.n_docs = t->n;
        req.docs = t->docs;
        sx_rpc_invoke_async(b->c->rpc, addr, SX__SHARDEX_SVC, "Put", &req.base, &o, on_answer, t);
    }
}

/* Reports a batch to done() and forgets it: records a failure, releases ids. */
static void finish(sx_bulk *b, batch *t)
{
    if (t->st != SX_OK && b->first == SX_OK) {
        b->first = t->st;
        b->first_err = t->err;
    }
    if (t->st != SX_OK && !b->o.keep_going)
        b->stopped = true;
    if (b->o.done) {
        sx_bulk_result r = {.status = t->st,
                            .err = &t->err,
                            .is_delete = t->is_delete,
                            .n = t->n,
                            .docs =
                                t->is_delete ? NULL : (const Shardex__V1__Document *const *)t->docs,
                            .ids = (const char *const *)t->ids,
                            .tokens = t->st == SX_OK ? t->tokens : NULL};
        b->o.done(b->o.arg, &r);
    }
    for (size_t i = 0; i < t->n; i++) {
        void *holder = NULL;
        size_t len = strlen(t->ids[i]);
        if (sx_hmap_get(&b->held, t->ids[i], len, &holder) && holder == t)
            sx_hmap_remove(&b->held, t->ids[i], len, NULL);
    }
    if (t->counted)
        b->inflight--;
    batch_free(t);
}

/* A batch never sent because the bulk stopped. */
static void abort_batch(sx_bulk *b, batch *t)
{
    t->st = sx_err_set(&t->err, SX_ABORTED, "not sent: the bulk stopped after a failed batch");
    finish(b, t);
}

/* Takes the answers the rpc thread queued: reports them, or schedules another
 * attempt; then sends the attempts that are due. Never blocks for long. */
static void take_answers(sx_bulk *b)
{
    pthread_mutex_lock(&b->mu);
    batch *list = b->answered;
    b->answered = NULL;
    b->answered_tail = &b->answered;
    pthread_mutex_unlock(&b->mu);
    while (list) {
        batch *t = list;
        list = t->next;
        uint64_t delay = 0;
        if (t->st != SX_OK && !b->stopped &&
            sx__plan_retry(b->c, &t->plan, t->st, &t->err, &delay)) {
            t->resend_at = sx_clock_now_ms() + delay;
            t->next = b->resend;
            b->resend = t;
            continue;
        }
        sx__plan_end(b->c, &t->plan, method_of(t), t->st, &t->err);
        finish(b, t);
    }
    uint64_t now = sx_clock_now_ms();
    for (batch **pp = &b->resend; *pp;) {
        batch *t = *pp;
        if (!b->stopped && t->resend_at > now) {
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        if (b->stopped) {
            sx__plan_end(b->c, &t->plan, method_of(t), t->st, &t->err);
            finish(b, t);
        } else {
            send_attempt(b, t);
        }
    }
}

/* Waits until an answer arrives, a resend is due, or WAIT_SLICE_MS pass;
 * then takes answers. */
static void step(sx_bulk *b)
{
    uint64_t until = sx_clock_now_ms() + WAIT_SLICE_MS;
    for (batch *t = b->resend; t; t = t->next)
        if (t->resend_at < until)
            until = t->resend_at;
    pthread_mutex_lock(&b->mu);
    while (!b->answered) {
        uint64_t now = sx_clock_now_ms();
        if (now >= until)
            break;
        uint64_t ns = sx_clock_now_ns() + (until - now) * 1000000ull;
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull)};
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    pthread_mutex_unlock(&b->mu);
    take_answers(b);
}

/* Sends the batch being filled, once a slot is free (or aborts it when the
 * bulk stops meanwhile). */
static void send_cur(sx_bulk *b)
{
    batch *t = b->cur;
    if (!t)
        return;
    b->cur = NULL;
    take_answers(b);
    while (b->inflight >= b->o.max_inflight && !b->stopped)
        step(b);
    if (b->stopped) {
        abort_batch(b, t);
        return;
    }
    t->counted = true;
    b->inflight++;
    sx__plan_start(b->c, &t->plan, false);
    send_attempt(b, t);
}

/* ------------------------------------------------------------------- api -- */

static sx_status stopped_error(sx_bulk *b, sx_err *err)
{
    return sx_err_set(err, b->first, "bulk stopped after a failed batch: %s", b->first_err.msg);
}

sx_status sx_bulk_open(sx_client *c, const sx_bulk_opts *opts, sx_bulk **out, sx_err *err)
{
    *out = NULL;
    sx_bulk_opts o = opts ? *opts : (sx_bulk_opts){0};
    if (o.batch_docs > SX_REQUEST_DOCS_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "batch_docs: %zu is above %d", o.batch_docs,
                          SX_REQUEST_DOCS_MAX);
    if (o.batch_bytes > SX_REQUEST_MAX_BYTES)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "batch_bytes: %zu is above %d", o.batch_bytes,
                          SX_REQUEST_MAX_BYTES);
    if (!o.batch_docs)
        o.batch_docs = DEFAULT_BATCH_DOCS;
    if (!o.batch_bytes)
        o.batch_bytes = DEFAULT_BATCH_BYTES;
    if (!o.max_inflight)
        o.max_inflight = DEFAULT_MAX_INFLIGHT;
    sx_bulk *b = sx_calloc(1, sizeof(*b));
    b->c = c;
    b->o = o;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    b->answered_tail = &b->answered;
    *out = b;
    return SX_OK;
}

/* Adds one operation, keeping the order per id and the batch limits. */
static sx_status add_op(sx_bulk *b, bool is_delete, const Shardex__V1__Document *doc,
                        const char *id, size_t bytes, sx_err *err)
{
    take_answers(b);
    if (b->stopped)
        return stopped_error(b, err);
    size_t len = strlen(id);
    void *holder = NULL;
    if (sx_hmap_get(&b->held, id, len, &holder)) {
        if (holder == b->cur)
            send_cur(b);
        while (!b->stopped && sx_hmap_get(&b->held, id, len, NULL))
            step(b);
        if (b->stopped)
            return stopped_error(b, err);
    }
    if (b->cur && (b->cur->is_delete != is_delete || b->cur->bytes + bytes > b->o.batch_bytes))
        send_cur(b);
    if (b->stopped)
        return stopped_error(b, err);
    if (!b->cur)
        b->cur = batch_new(b, is_delete);
    batch_add(b->cur, doc, id, bytes);
    sx_hmap_put(&b->held, id, len, b->cur, NULL);
    if (b->cur->n >= b->o.batch_docs)
        send_cur(b);
    return SX_OK;
}

sx_status sx_bulk_put(sx_bulk *b, const Shardex__V1__Document *doc, sx_err *err)
{
    if (!doc)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "doc: NULL");
    size_t bytes = protobuf_c_message_get_packed_size(&doc->base) + OP_OVERHEAD;
    return add_op(b, false, doc, doc->id ? doc->id : "", bytes, err);
}

sx_status sx_bulk_delete(sx_bulk *b, const char *id, sx_err *err)
{
    if (!id)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "id: NULL");
    return add_op(b, true, NULL, id, strlen(id) + OP_OVERHEAD, err);
}

sx_status sx_bulk_flush(sx_bulk *b, sx_err *err)
{
    if (b->stopped && b->cur) {
        batch *t = b->cur;
        b->cur = NULL;
        abort_batch(b, t);
    }
    send_cur(b);
    take_answers(b);
    while (b->inflight > 0)
        step(b);
    if (b->first != SX_OK)
        return sx_err_set(err, b->first, "%s", b->first_err.msg);
    return SX_OK;
}

sx_status sx_bulk_close(sx_bulk *b, sx_err *err)
{
    if (!b)
        return SX_OK;
    sx_status st = sx_bulk_flush(b, err);
    sx_hmap_free(&b->held, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
    return st;
}
