/* health.c: see health.h.
 *
 * Watch streams are kept in a list that one thread walks every poll: the
 * daemon's state is read once per round and each stream is sent the status
 * it has not seen yet. A stream the rpc layer ends (the client left, the
 * server stops) is marked by on_cancel and finished by the thread, so that
 * finishing happens in one place. */
#include "health.h"

#include "clock.h"
#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving_status;

typedef struct watcher {
    sx_rpc_call *call;
    char *service;
    int last;       /* the status last sent; -1: none yet */
    sx_status gone; /* SX_OK, or why the rpc layer ended the stream */
    struct watcher *next;
} watcher;

struct sx_health_service {
    const sx_health *h;
    pthread_mutex_t mu; /* below */
    pthread_cond_t cv;  /* a new watcher, an ended one, stop */
    watcher *watchers;
    bool stop;
    pthread_t thread;
};

static bool known(const sx_health *h, const char *service)
{
    if (!service[0])
        return true; /* the server as a whole */
    for (const char *const *s = h->services; *s; s++)
        if (strcmp(*s, service) == 0)
            return true;
    return false;
}

static serving_status status_of(bool serving)
{
    return serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static sx_status on_check(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                          void *arg, sx_err *err)
{
    (void)call;
    const sx_health *h = ((sx_health_service *)arg)->h;
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)reqm;
    Grpc__Health__V1__HealthCheckResponse *resp = (void *)respm;
    if (!known(h, req->service))
        return sx_err_set(err, SX_NOT_FOUND, "service: \"%.128s\" is not served here",
                          req->service);
    resp->status = status_of(h->serving(h->arg));
    return SX_OK;
}

/* ---------------------------------------------------------------- Watch -- */

typedef struct cancel_arg {
    sx_health_service *hs;
    watcher *w;
} cancel_arg;

static void on_watch_cancel(void *arg, sx_status why)
{
    cancel_arg *ca = arg;
    pthread_mutex_lock(&ca->hs->mu);
    ca->w->gone = why;
    pthread_cond_broadcast(&ca->hs->cv);
    pthread_mutex_unlock(&ca->hs->mu);
}

static sx_status on_watch(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                          void *arg, sx_err *err)
{
    (void)respm;
    (void)err;
    sx_health_service *hs = arg;
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)reqm;
    watcher *w = sx_calloc(1, sizeof(*w));
    w->call = call;
    w->service = sx_strdup(req->service);
    w->last = -1;
    cancel_arg *ca = sx_rpc_call_alloc(call, sizeof(*ca));
    *ca = (cancel_arg){hs, w};
    pthread_mutex_lock(&hs->mu);
    w->next = hs->watchers;
    hs->watchers = w;
    pthread_cond_broadcast(&hs->cv); /* its first status now, not at the next poll */
    pthread_mutex_unlock(&hs->mu);
    sx_rpc_call_on_cancel(call, on_watch_cancel, ca);
    return SX_OK;
}

static void watcher_end(watcher *w, sx_status why)
{
    sx_err err = {0};
    sx_err_set(&err, why,
               why == SX_UNAVAILABLE ? "the server is stopping" : "the watch was cancelled");
    sx_rpc_call_finish(w->call, why, &err);
    free(w->service);
    free(w);
}

/* One round (hs->mu held): ends the streams that are over, sends each other
 * one its status if it changed. The daemon's state is read once. */
static void watch_round_locked(sx_health_service *hs)
{
    const sx_health *h = hs->h;
    serving_status now = status_of(h->serving(h->arg));
    for (watcher **pw = &hs->watchers; *pw;) {
        watcher *w = *pw;
        if (w->gone != SX_OK) {
            *pw = w->next;
            watcher_end(w, w->gone);
            continue;
        }
        int st =
            known(h, w->service)
                ? (int)now
                : (int)GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
        if (st != w->last) {
            Grpc__Health__V1__HealthCheckResponse m = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
            m.status = (serving_status)st;
            /* Not sent (a full queue, a stream ending): tried again next round. */
            if (sx_rpc_call_send(w->call, &m.base) == SX_OK)
                w->last = st;
        }
        pw = &w->next;
    }
}

static void *watch_main(void *arg)
{
    sx_health_service *hs = arg;
    pthread_mutex_lock(&hs->mu);
    while (!hs->stop) {
        watch_round_locked(hs);
        if (hs->watchers)
            sx_cond_wait_ms(&hs->cv, &hs->mu, SX_HEALTH_POLL_MS);
        else
            pthread_cond_wait(&hs->cv, &hs->mu);
    }
    while (hs->watchers) { /* the server is gone: nothing is sent any more */
        watcher *w = hs->watchers;
        hs->watchers = w->next;
        watcher_end(w, SX_UNAVAILABLE);
    }
    pthread_mutex_unlock(&hs->mu);
    return NULL;
}

static const sx_rpc_method methods[] = {
    {"Check", on_check, SX_RPC_INLINE},
    {"Watch", on_watch, SX_RPC_STREAM},
};

sx_status sx_health_add(sx_rpc_server *srv, const sx_health *h, sx_health_service **out,
                        sx_err *err)
{
    sx_health_service *hs = sx_calloc(1, sizeof(*hs));
    hs->h = h;
    pthread_mutex_init(&hs->mu, NULL);
    sx_cond_init_monotonic(&hs->cv);
    sx_status st = sx_rpc_server_add_service(srv, &grpc__health__v1__health__descriptor, methods,
                                             sizeof(methods) / sizeof(methods[0]), hs, err);
    if (st != SX_OK) {
        pthread_cond_destroy(&hs->cv);
        pthread_mutex_destroy(&hs->mu);
        free(hs);
        *out = NULL;
        return st;
    }
    pthread_create(&hs->thread, NULL, watch_main, hs);
    pthread_setname_np(hs->thread, "health-watch");
    *out = hs;
    return SX_OK;
}

void sx_health_service_destroy(sx_health_service *hs)
{
    if (!hs)
        return;
    pthread_mutex_lock(&hs->mu);
    hs->stop = true;
    pthread_cond_broadcast(&hs->cv);
    pthread_mutex_unlock(&hs->mu);
    pthread_join(hs->thread, NULL);
    pthread_cond_destroy(&hs->cv);
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}
