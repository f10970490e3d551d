/* membership.c: register, heartbeat, keep the latest map (see membership.h).
 * It reports on replicas and installs maps; it decides nothing about them. */
#include "membership.h"

#include "clock.h"
#include "flags.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define COORD_SVC (&shardex__internal__v1__coordinator__descriptor)

struct sx_membership {
    char *coordinator, *id, *address;
    char **coords; /* coordinator split at its commas */
    size_t ncoords;
    _Atomic size_t cur; /* coords[cur] is in use */
    sx_rpc_client *rpc;
    void (*on_map)(void *arg, sx_partmap *map);
    size_t (*reports)(void *arg, Shardex__Internal__V1__ReplicaReport *out, size_t cap);
    void (*more_reports)(void *arg, sx_arena *arena, Shardex__Internal__V1__HeartbeatRequest *req);
    void *more_arg;
    void *arg;
    uint32_t *lost;           /* lost stores, until a registration told the coordinator */
    char *epoch_file;         /* NULL: the epoch seen is not kept across restarts */
    pthread_mutex_t epoch_mu; /* epoch_seen, and its file */
    uint64_t epoch_seen;      /* the highest coordinator epoch heard */
    size_t nlost;
    pthread_t thread;
    uint64_t nonce;  /* drawn once: a retried registration is known as ours */
    uint64_t hb_seq; /* the last heartbeat's number (membership thread only) */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* wakes the thread to stop */
    bool stop;
    bool halted;  /* the thread has been joined */
    bool refresh; /* heartbeat again without waiting (sx_membership_refresh) */
    bool registered;
    bool leaving; /* stopping on purpose: no lease from now on (sx_membership_stop_leading) */
    int32_t index;
    uint64_t incarnation;
    uint32_t lease_ms;
    uint64_t last_ok_sent_ms; /* 0: never */
    sx_partmap *map;          /* the newest map heard; NULL before */
};

/* Takes ownership of owner; installs map if it is newer than the current one.
 * A map that breaks the invariants is refused whole (and logged): nothing
 * acts on half of one. */
static void install_map(sx_membership *m, ProtobufCMessage *owner,
                        const Shardex__Internal__V1__ClusterMap *map)
{
    sx_partmap *pm = NULL;
    sx_err err = {0};
    if (sx_membership_epoch_check(m, map->coordinator_epoch, &err) != SX_OK) {
        SX_LOG(SX_LOG_WARN, "member", "map version=%" PRIu64 " refused: %s", map->version, err.msg);
        sx_rpc_free(owner);
        return;
    }
    if (sx_partmap_create(owner, map, m->id, &pm, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "member", "map refused: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&m->mu);
    sx_partmap *old = m->map;
    bool newer = !old || sx_partmap_version(pm) > sx_partmap_version(old);
    sx_partmap *cur = NULL;
    if (newer) {
        m->map = pm;
        cur = sx_partmap_acquire(pm); /* held until on_map returns */
        pm = old;
        SX_LOG(SX_LOG_INFO, "member", "map version=%" PRIu64, map->version);
    }
    pthread_mutex_unlock(&m->mu);
    sx_partmap_release(pm);
    if (cur) {
        if (m->on_map)
            m->on_map(m->arg, cur);
        sx_partmap_release(cur);
    }
}

const char *sx_membership_coordinator(sx_membership *m)
{
    if (m->ncoords == 0)
        return m->coordinator;
    return m->coords[atomic_load(&m->cur) % m->ncoords];
}

/* The coordinator at position `used` of the list did not answer, or does not
 * lead: the next one is tried, unless another call moved on already. */
static void next_coordinator(sx_membership *m, size_t used, const char *why)
{
    if (m->ncoords > 1 && atomic_compare_exchange_strong(&m->cur, &used, used + 1))
        SX_LOG(SX_LOG_INFO, "member", "coordinator=%s %s: trying %s", m->coords[used % m->ncoords],
               why, m->coords[(used + 1) % m->ncoords]);
}

/* A follower named the leader: use it when the list has it. True when the
 * coordinator in use changed to it (worth asking again at once). */
static bool follow_leader(sx_membership *m, size_t used, const char *leader)
{
    if (m->ncoords < 2)
        return false;
    for (size_t i = 0; leader[0] && i < m->ncoords; i++) {
        if (strcmp(m->coords[i], leader) != 0)
            continue;
        if (i == used % m->ncoords)
            return false; /* it names itself or the one just asked: nothing new */
        if (!atomic_compare_exchange_strong(&m->cur, &used, i))
            return true; /* another call moved already: ask the one in use now */
        SX_LOG(SX_LOG_INFO, "member", "coordinator=%s follows: going to the leader %s",
               m->coords[used % m->ncoords], leader);
        return true;
    }
    /* Unknown, or an address not in our list (a coordinator listening on a
     * wildcard address names that): the next one. */
    next_coordinator(m, used, "does not lead");
    return false;
}

/* The epoch an answer carries, when its message type has one. */
static bool answer_epoch(const ProtobufCMessage *resp, uint64_t *epoch)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(resp->descriptor, "coordinator_epoch");
    if (!f || f->type != PROTOBUF_C_TYPE_UINT64)
        return false;
    *epoch = *(const uint64_t *)((const char *)resp + f->offset);
    return true;
}

sx_status sx_membership_epoch_check(sx_membership *m, uint64_t epoch, sx_err *err)
{
    pthread_mutex_lock(&m->epoch_mu);
    sx_status st = SX_OK;
    if (epoch < m->epoch_seen) {
        st = sx_err_set(err, SX_UNAVAILABLE,
                        "coordinator epoch %" PRIu64 " is older than %" PRIu64
                        " seen: a deposed coordinator answered; refused",
                        epoch, m->epoch_seen);
    } else if (epoch > m->epoch_seen) {
        /* Durable before anything from this coordinator is acted on: after a
         * restart the worker still refuses the older one. */
        char text[32];
        int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", epoch);
        sx_err werr = {0};
        if (m->epoch_file && sx_file_write_atomic(m->epoch_file, text, (size_t)n, &werr) != SX_OK)
            st = sx_err_set(err, SX_UNAVAILABLE, "coordinator epoch %" PRIu64 " not kept: %s",
                            epoch, werr.msg);
        else {
            SX_LOG(SX_LOG_INFO, "member", "coordinator epoch=%" PRIu64 " (was %" PRIu64 ")", epoch,
                   m->epoch_seen);
            m->epoch_seen = epoch;
        }
    }
    pthread_mutex_unlock(&m->epoch_mu);
    return st;
}

bool sx_membership_answered(sx_membership *m, size_t used, sx_status *st, sx_err *err,
                            ProtobufCMessage **resp)
{
    char leader[300];
    if (*st == SX_OK) {
        uint64_t epoch;
        if (*resp && answer_epoch(*resp, &epoch) &&
            (*st = sx_membership_epoch_check(m, epoch, err)) != SX_OK) {
            SX_LOG(SX_LOG_WARN, "member", "coordinator=%s: %s", sx_membership_coordinator(m),
                   err->msg);
            sx_rpc_free(*resp);
            *resp = NULL;
            next_coordinator(m, used, "is deposed");
        }
        return false;
    }
    if (*st == SX_UNAVAILABLE || *st == SX_DEADLINE_EXCEEDED) {
        next_coordinator(m, used, "did not answer");
        return false;
    }
    if (sx_err_leader_hint(err, leader, sizeof(leader))) {
        /* Not an answer about this worker: only that another one leads. */
        *st = SX_UNAVAILABLE;
        return follow_leader(m, used, leader);
    }
    return false;
}

size_t sx_membership_coordinator_pos(sx_membership *m)
{
    return atomic_load(&m->cur);
}

/* sx_membership_invoke; fail_fast: no second, waiting attempt on the one
 * coordinator (a stopping worker does not wait for a coordinator that is down). */
static sx_status invoke(sx_membership *m, const ProtobufCServiceDescriptor *svc, const char *method,
                        const ProtobufCMessage *req, ProtobufCMessage **resp,
                        const sx_rpc_call_opts *opts, bool fail_fast, sx_err *err)
{
    for (int attempt = 0;; attempt++) {
        size_t used = atomic_load(&m->cur);
        const char *addr = m->ncoords ? m->coords[used % m->ncoords] : m->coordinator;
        *resp = NULL;
        sx_status st = sx_rpc_invoke(m->rpc, addr, svc, method, req, resp, opts, err);
        if (st == SX_UNAVAILABLE && m->ncoords <= 1 && !opts->wait_for_ready && !fail_fast) {
            /* The one coordinator: a channel backing off after a failed
             * connect fails at once though the coordinator may be back; a
             * call that waits for a connection (within its timeout) finds
             * out. With several, the next one is tried instead. */
            sx_rpc_call_opts wait = *opts;
            wait.wait_for_ready = true;
            st = sx_rpc_invoke(m->rpc, addr, svc, method, req, resp, &wait, err);
        }
        /* A follower answers at once: asking the leader it named costs one
         * round trip, once. */
        if (!sx_membership_answered(m, used, &st, err, resp) || attempt > 0)
            return st;
    }
}

sx_status sx_membership_invoke(sx_membership *m, const ProtobufCServiceDescriptor *svc,
                               const char *method, const ProtobufCMessage *req,
                               ProtobufCMessage **resp, const sx_rpc_call_opts *opts, sx_err *err)
{
    return invoke(m, svc, method, req, resp, opts, false, err);
}

static void do_register(sx_membership *m)
{
    Shardex__Internal__V1__RegisterRequest req = SHARDEX__INTERNAL__V1__REGISTER_REQUEST__INIT;
    req.worker_id = m->id;
    req.address = m->address;
    req.lost_partitions = m->lost;
    req.n_lost_partitions = m->nlost;
    req.nonce = m->nonce;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    /* A retry gets the first answer again (the nonce), so it can come soon:
     * before the coordinator's lease on a lost answer runs out, or a new
     * incarnation (and new epochs) would answer it. */
    pthread_mutex_lock(&m->mu);
    uint32_t lease = m->lease_ms < 1000 ? m->lease_ms : 1000;
    pthread_mutex_unlock(&m->mu);
    sx_rpc_call_opts o = {.timeout_ms = lease / 2 > 100 ? lease / 2 : 100, .wait_for_ready = true};
    uint64_t sent = sx_clock_now_ms();
    sx_status st = sx_membership_invoke(m, COORD_SVC, "RegisterWorker", &req.base, &resp, &o, &err);
    if (st != SX_OK) {
        SX_LOG(SX_LOG_WARN, "member", "register failed coordinator=%s status=%s msg=\"%s\"",
               sx_membership_coordinator(m), sx_status_name(st), err.msg);
        return;
    }
    Shardex__Internal__V1__RegisterResponse *r = (void *)resp;
    pthread_mutex_lock(&m->mu);
    m->registered = true;
    m->index = r->index;
    m->incarnation = r->incarnation;
    m->lease_ms = r->lease_ms ? r->lease_ms : 2000;
    m->last_ok_sent_ms = sent;
    pthread_mutex_unlock(&m->mu);
    SX_LOG(SX_LOG_INFO, "member",
           "registered id=%s index=%d incarnation=%" PRIu64 " lease_ms=%u lost_stores=%zu", m->id,
           r->index, r->incarnation, r->lease_ms, m->nlost);
    free(m->lost); /* the coordinator knows (this thread alone reads them) */
    m->lost = NULL;
    m->nlost = 0;
    if (r->map)
        install_map(m, resp, r->map);
    else
        sx_rpc_free(resp);
}

/* One report per hosted replica, however many: sized from the count the
 * callback gives (it only grows, so this ends). */
static void add_reports(sx_membership *m, sx_arena *arena,
                        Shardex__Internal__V1__HeartbeatRequest *req)
{
    if (!m->reports)
        return;
    Shardex__Internal__V1__ReplicaReport *reports = NULL;
    size_t cap = 0, n;
    while ((n = m->reports(m->arg, reports, cap)) > cap) {
        cap = n + 16;
        reports = sx_arena_alloc(arena, cap * sizeof(*reports));
    }
    req->replicas = sx_arena_alloc(arena, (n + 1) * sizeof(*req->replicas));
    for (size_t i = 0; i < n; i++)
        req->replicas[i] = &reports[i];
    req->n_replicas = n;
}

static void do_heartbeat(sx_membership *m)
{
    Shardex__Internal__V1__HeartbeatRequest req = SHARDEX__INTERNAL__V1__HEARTBEAT_REQUEST__INIT;
    pthread_mutex_lock(&m->mu);
    req.worker_id = m->id;
    req.incarnation = m->incarnation;
    req.map_version = m->map ? sx_partmap_version(m->map) : 0;
    req.seq = ++m->hb_seq;
    uint64_t last_ok = m->last_ok_sent_ms;
    uint32_t lease = m->lease_ms;
    pthread_mutex_unlock(&m->mu);
    sx_arena arena = {0};
    add_reports(m, &arena, &req);
    if (m->more_reports)
        m->more_reports(m->more_arg, &arena, &req);
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = lease / 2};
    uint64_t sent = sx_clock_now_ms();
    req.unanswered_ms = last_ok && sent > last_ok ? sent - last_ok : 0;
    sx_status st = sx_membership_invoke(m, COORD_SVC, "Heartbeat", &req.base, &resp, &o, &err);
    sx_arena_free(&arena);
    if (st == SX_FAILED_PRECONDITION) {
        SX_LOG(SX_LOG_WARN, "member", "declared dead by the coordinator: %s", err.msg);
        pthread_mutex_lock(&m->mu);
        m->registered = false;
        m->last_ok_sent_ms = 0; /* step down now */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    if (st != SX_OK) {
        SX_LOG(SX_LOG_DEBUG, "member", "heartbeat failed status=%s msg=\"%s\"", sx_status_name(st),
               err.msg);
        return;
    }
    Shardex__Internal__V1__HeartbeatResponse *r = (void *)resp;
    pthread_mutex_lock(&m->mu);
    if (sent > m->last_ok_sent_ms)
        m->last_ok_sent_ms = sent;
    if (r->lease_ms)
        m->lease_ms = r->lease_ms; /* the coordinator may restart with another lease */
    pthread_mutex_unlock(&m->mu);
    if (r->map)
        install_map(m, resp, r->map);
    else
        sx_rpc_free(resp);
}

static void *member_main(void *arg)
{
    sx_membership *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        bool registered = m->registered;
        m->refresh = false; /* this heartbeat answers the requests so far */
        pthread_mutex_unlock(&m->mu);
        if (registered)
            do_heartbeat(m);
        else
            do_register(m);
        pthread_mutex_lock(&m->mu);
        /* Registration is retried every 200 ms, sooner under a short lease. */
        uint64_t wait_ms = m->lease_ms / 4;
        if (!m->registered && wait_ms > 200)
            wait_ms = 200;
        if (wait_ms < 10)
            wait_ms = 10;
        uint64_t ns = sx_clock_now_ns() + wait_ms * 1000000ull;
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull)};
        while (!m->stop && !m->refresh && pthread_cond_timedwait(&m->cv, &m->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

sx_status sx_membership_start(const sx_membership_opts *opts, sx_membership **out, sx_err *err)
{
    sx_membership *m = sx_calloc(1, sizeof(*m));
    m->coordinator = sx_strdup(opts->coordinator);
    /* main checked the list; one that does not split leaves opts.coordinator alone */
    (void)sx_hostport_list(opts->coordinator, &m->coords, &m->ncoords, NULL);
    atomic_init(&m->cur, 0);
    m->id = sx_strdup(opts->worker_id);
    m->address = sx_strdup(opts->address);
    m->rpc = opts->rpc;
    m->on_map = opts->on_map;
    m->reports = opts->reports;
    m->more_reports = opts->more_reports;
    m->more_arg = opts->more_arg;
    m->arg = opts->arg;
    if (opts->nlost) {
        m->lost = sx_memdup(opts->lost, opts->nlost * sizeof(*m->lost));
        m->nlost = opts->nlost;
    }
    m->index = -1;
    m->lease_ms = 2000;
    pthread_mutex_init(&m->epoch_mu, NULL);
    if (opts->epoch_file) {
        m->epoch_file = sx_strdup(opts->epoch_file);
        sx_buf b = {0};
        bool found = false;
        sx_status st = sx_file_read(m->epoch_file, 64, &b, &found, err);
        if (st == SX_OK && found) {
            char text[65] = "";
            memcpy(text, b.data, b.len < 64 ? b.len : 64);
            char *end = NULL;
            m->epoch_seen = strtoull(text, &end, 10);
            if (end == text || (*end && *end != '\n'))
                st = sx_err_set(err, SX_DATA_LOSS, "%s: not a coordinator epoch", m->epoch_file);
        }
        sx_buf_free(&b);
        if (st != SX_OK) {
            pthread_mutex_destroy(&m->epoch_mu);
            free(m->epoch_file);
            sx_hostport_list_free(m->coords, m->ncoords);
            free(m->coordinator);
            free(m);
            return st;
        }
    }
    if (getrandom(&m->nonce, sizeof(m->nonce), 0) != (ssize_t)sizeof(m->nonce))
        m->nonce = sx_clock_now_ns() ^ ((uint64_t)getpid() << 32);
    m->nonce |= 1; /* never 0, which means none */
    pthread_mutex_init(&m->mu, NULL);
    sx_cond_init_monotonic(&m->cv);
    pthread_create(&m->thread, NULL, member_main, m);
    pthread_setname_np(m->thread, "membership");
    *out = m;
    return SX_OK;
}

void sx_membership_halt(sx_membership *m)
{
    if (!m || m->halted)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->halted = true;
}

void sx_membership_stop(sx_membership *m)
{
    if (!m)
        return;
    sx_membership_halt(m);
    sx_partmap_release(m->map);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->lost);
    pthread_mutex_destroy(&m->epoch_mu);
    free(m->epoch_file);
    sx_hostport_list_free(m->coords, m->ncoords);
    free(m->coordinator);
    free(m->id);
    free(m->address);
    free(m);
}

void sx_membership_get_view(sx_membership *m, sx_membership_view *out)
{
    uint64_t now = sx_clock_now_ms();
    pthread_mutex_lock(&m->mu);
    out->index = m->registered ? m->index : -1;
    out->incarnation = m->incarnation;
    out->ms_since_ok = m->last_ok_sent_ms ? now - m->last_ok_sent_ms : UINT64_MAX;
    out->lease_valid =
        m->registered && !m->leaving && m->last_ok_sent_ms && out->ms_since_ok < m->lease_ms;
    out->map = sx_partmap_acquire(m->map);
    pthread_mutex_unlock(&m->mu);
}

void sx_membership_refresh(sx_membership *m)
{
    pthread_mutex_lock(&m->mu);
    m->refresh = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void sx_membership_stop_leading(sx_membership *m)
{
    pthread_mutex_lock(&m->mu);
    if (!m->leaving)
        SX_LOG(SX_LOG_INFO, "member", "stopping: no new writes as a leader");
    m->leaving = true;
    pthread_mutex_unlock(&m->mu);
}

sx_status sx_membership_leave(sx_membership *m, uint64_t timeout_ms, sx_err *err)
{
    sx_membership_stop_leading(m);
    sx_membership_halt(m); /* no heartbeat renews a lease, no registration comes back */
    pthread_mutex_lock(&m->mu);
    bool registered = m->registered;
    Shardex__Internal__V1__LeaveRequest req = SHARDEX__INTERNAL__V1__LEAVE_REQUEST__INIT;
    req.worker_id = m->id;
    req.incarnation = m->incarnation;
    pthread_mutex_unlock(&m->mu);
    if (!registered)
        return sx_err_set(err, SX_FAILED_PRECONDITION, "not registered: nothing to hand over");
    ProtobufCMessage *resp = NULL;
    /* One attempt, failing fast when nothing listens: a stopping worker does
     * not wait for a coordinator that is down (its lease then decides). */
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_status st = invoke(m, COORD_SVC, "LeaveWorker", &req.base, &resp, &o, true, err);
    if (st != SX_OK)
        return st;
    const Shardex__Internal__V1__LeaveResponse *r = (const void *)resp;
    SX_LOG(SX_LOG_INFO, "member", "left the cluster id=%s map version=%" PRIu64, m->id,
           r->map ? r->map->version : 0);
    if (r->map)
        install_map(m, resp, r->map);
    else
        sx_rpc_free(resp);
    return SX_OK;
}
