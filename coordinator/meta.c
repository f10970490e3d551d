/* meta.c: the metadata store on LevelDB (through common/store), or in etcd
 * (common/etcd.h) with the election of meta.h. */
#include "meta.h"

#include "clock.h"
#include "etcd.h"
#include "log.h"
#include "mem.h"
#include "shardex/v1/shardex.pb-c.h"
#include "store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAP_KEY[] = "cluster-map";

typedef struct etcd_meta {
    sx_etcd *etcd;
    char *self;
    char leader_key[300], map_key[300];
    char self_key[600]; /* /shardex/NAME/coordinators/SELF, bound to the lease; "" without self */
    char coords_prefix[300];
    int64_t ttl_s;
    uint64_t margin_ms;
    int64_t lease; /* 0: none yet */
    sx_etcd_keepalive *keepalive;
    pthread_mutex_t mu; /* below */
    int64_t epoch;      /* 0: not leading */
    uint64_t
        valid_until_ms;   /* leading surely until then (the last renewal's date + TTL - margin) */
    bool lost;            /* the keepalive ended: never leading again */
    bool broken;          /* its stream broke (UNAVAILABLE): sx_meta_maintain opens another */
    bool vacant;          /* the watch saw the leader key go (sx_meta_vacant) */
    bool watch_ended;     /* the watch is over: the next campaign starts another */
    sx_etcd_watch *watch; /* the leader key, while following */
} etcd_meta;

struct sx_meta {
    sx_store *store; /* the embedded store, or */
    etcd_meta *etcd; /* etcd */
};

sx_status sx_meta_open(const char *dir, sx_meta **out, sx_err *err)
{
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/meta", dir);
    sx_store_opts o = {.sync = true, .block_cache_bytes = 1u << 20};
    sx_store *s = NULL;
    sx_status st = sx_store_open(path, &o, &s, err);
    if (st != SX_OK)
        return st;
    sx_meta *m = sx_calloc(1, sizeof(*m));
    m->store = s;
    *out = m;
    return SX_OK;
}

static void etcd_meta_close(etcd_meta *e);

void sx_meta_close(sx_meta *m)
{
    if (!m)
        return;
    sx_store_close(m->store);
    etcd_meta_close(m->etcd);
    free(m);
}

/* Every coordinator registered under the cluster, the leader marked. */
static void etcd_coordinators(etcd_meta *e, sx_arena *a, Shardex__V1__ClusterStatusResponse *out)
{
    sx_etcd_range *r = NULL;
    sx_err err = {0};
    if (sx_etcd_get(e->etcd, e->coords_prefix, true, &r, &err) != SX_OK) {
        SX_LOG(SX_LOG_WARN, "meta", "coordinators not listed: %s", err.msg);
        return;
    }
    out->coordinators = sx_arena_alloc(a, (r->count + 1) * sizeof(*out->coordinators));
    for (size_t i = 0; i < r->count; i++) {
        Shardex__V1__CoordinatorStatus *cs = sx_arena_alloc(a, sizeof(*cs));
        shardex__v1__coordinator_status__init(cs);
        cs->address = sx_arena_strdup(a, r->kvs[i].key + strlen(e->coords_prefix));
        cs->leader = strcmp(cs->address, e->self) == 0;
        out->coordinators[out->n_coordinators++] = cs;
    }
    sx_etcd_range_free(r);
}

typedef struct member_check {
    sx_etcd *etcd;
    size_t i;
    pthread_t thread;
    bool started;
    sx_status st;
    sx_err err;
    uint64_t ms;
} member_check;

static void *check_member(void *arg)
{
    member_check *mc = arg;
    uint64_t t0 = sx_clock_now_ms();
    mc->st = sx_etcd_member_check(mc->etcd, mc->i, 1000, &mc->err);
    mc->ms = sx_clock_now_ms() - t0;
    return NULL;
}

/* Each member's health, asked of each alone, all at once (a second at most). */
static void etcd_members(etcd_meta *e, sx_arena *a, Shardex__V1__ClusterStatusResponse *out)
{
    size_t n = sx_etcd_member_count(e->etcd);
    member_check *mc = sx_calloc(n ? n : 1, sizeof(*mc));
    for (size_t i = 0; i < n; i++) {
        mc[i] = (member_check){.etcd = e->etcd, .i = i};
        mc[i].started = pthread_create(&mc[i].thread, NULL, check_member, &mc[i]) == 0;
        if (!mc[i].started)
            check_member(&mc[i]);
    }
    out->etcd_members = sx_arena_alloc(a, (n + 1) * sizeof(*out->etcd_members));
    for (size_t i = 0; i < n; i++) {
        if (mc[i].started)
            pthread_join(mc[i].thread, NULL);
        Shardex__V1__EtcdMemberStatus *ms = sx_arena_alloc(a, sizeof(*ms));
        shardex__v1__etcd_member_status__init(ms);
        ms->endpoint = sx_arena_strdup(a, sx_etcd_member(e->etcd, i));
        ms->healthy = mc[i].st == SX_OK;
        ms->latency_ms = (uint32_t)mc[i].ms;
        if (!ms->healthy)
            ms->error = sx_arena_strdup(a, mc[i].err.msg);
        out->etcd_members[out->n_etcd_members++] = ms;
    }
    free(mc);
}

void sx_meta_status(sx_meta *m, const char *self, sx_arena *a,
                    Shardex__V1__ClusterStatusResponse *out)
{
    out->coordinator_epoch = (uint64_t)sx_meta_epoch(m);
    if (!m->etcd) {
        out->metadata = "embedded";
        out->coordinators = sx_arena_alloc(a, sizeof(*out->coordinators));
        Shardex__V1__CoordinatorStatus *cs = sx_arena_alloc(a, sizeof(*cs));
        shardex__v1__coordinator_status__init(cs);
        cs->address = sx_arena_strdup(a, self ? self : "");
        cs->leader = true;
        out->coordinators[out->n_coordinators++] = cs;
        return;
    }
    out->metadata = "etcd";
    etcd_coordinators(m->etcd, a, out);
    etcd_members(m->etcd, a, out);
}

static sx_status etcd_load(etcd_meta *e, Shardex__Internal__V1__ClusterMap **out, sx_err *err);
static sx_status etcd_save(etcd_meta *e, const void *packed, size_t len, sx_err *err);

sx_status sx_meta_load(sx_meta *m, Shardex__Internal__V1__ClusterMap **out, sx_err *err)
{
    *out = NULL;
    if (m->etcd)
        return etcd_load(m->etcd, out, err);
    sx_buf val = {0};
    bool found = false;
    sx_status st = sx_store_get(m->store, NULL, MAP_KEY, sizeof(MAP_KEY) - 1, &val, &found, err);
    if (st != SX_OK || !found) {
        sx_buf_free(&val);
        return st;
    }
    *out = shardex__internal__v1__cluster_map__unpack(NULL, val.len, val.data);
    sx_buf_free(&val);
    if (!*out)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: the stored cluster map does not decode");
    return SX_OK;
}

sx_status sx_meta_save(sx_meta *m, const void *packed, size_t len, sx_err *err)
{
    if (m->etcd)
        return etcd_save(m->etcd, packed, len, err);
    return sx_store_put(m->store, MAP_KEY, sizeof(MAP_KEY) - 1, packed, len, SX_SYNC_YES, err);
}

/* ------------------------------------------------------------------ etcd -- */

static void on_renewed(void *arg, int64_t ttl_s, uint64_t sent_ms)
{
    etcd_meta *e = arg;
    uint64_t until = sent_ms + (uint64_t)ttl_s * 1000u;
    pthread_mutex_lock(&e->mu);
    until = until > e->margin_ms ? until - e->margin_ms : 0;
    if (until > e->valid_until_ms)
        e->valid_until_ms = until;
    pthread_mutex_unlock(&e->mu);
}

static void on_lease_end(void *arg, sx_status st, const sx_err *err)
{
    etcd_meta *e = arg;
    /* A stream that broke (its member went away) says nothing about the
     * lease, which the other members keep: another stream can renew it. */
    bool broken = st == SX_UNAVAILABLE;
    pthread_mutex_lock(&e->mu);
    if (broken)
        e->broken = true;
    else if (st != SX_CANCELLED) /* stopped by us: closing, which resigns */
        e->lost = true;
    pthread_mutex_unlock(&e->mu);
    if (st != SX_CANCELLED)
        SX_LOG(broken ? SX_LOG_WARN : SX_LOG_ERROR, "meta", "etcd lease %s status=%s msg=\"%s\"",
               broken ? "keepalive broke, moving to another member:" : "lost", sx_status_name(st),
               err && err->msg[0] ? err->msg : "");
}

void sx_meta_maintain(sx_meta *m)
{
    etcd_meta *e = m ? m->etcd : NULL;
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    bool again = e->broken && !e->lost;
    pthread_mutex_unlock(&e->mu);
    if (!again)
        return;
    sx_etcd_keepalive_stop(e->keepalive); /* over already: frees it */
    e->keepalive = NULL;
    sx_etcd_keepalive_opts ko = {.on_renewed = on_renewed, .on_end = on_lease_end, .arg = e};
    sx_err err = {0};
    pthread_mutex_lock(&e->mu);
    e->broken = false;
    pthread_mutex_unlock(&e->mu);
    if (sx_etcd_keepalive_start(e->etcd, e->lease, e->ttl_s, &ko, &e->keepalive, &err) != SX_OK) {
        e->keepalive = NULL;
        pthread_mutex_lock(&e->mu);
        e->broken = true; /* the next call tries again (leading ends when the lease may) */
        pthread_mutex_unlock(&e->mu);
        SX_LOG(SX_LOG_WARN, "meta", "etcd keepalive not reopened: %s", err.msg);
    }
}

sx_status sx_meta_open_etcd(const sx_meta_etcd_opts *o, sx_meta **out, sx_err *err)
{
    *out = NULL;
    if (!o->cluster || !o->cluster[0] || strchr(o->cluster, '/'))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "cluster: a name without '/' is needed");
    etcd_meta *e = sx_calloc(1, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    e->self = sx_strdup(o->self ? o->self : "");
    e->ttl_s = o->ttl_s ? o->ttl_s : 5;
    e->margin_ms = o->margin_ms ? o->margin_ms : (uint64_t)e->ttl_s * 1000u / 3;
    snprintf(e->leader_key, sizeof(e->leader_key), "/shardex/%s/leader", o->cluster);
    snprintf(e->map_key, sizeof(e->map_key), "/shardex/%s/map", o->cluster);
    snprintf(e->coords_prefix, sizeof(e->coords_prefix), "/shardex/%s/coordinators/", o->cluster);
    if (e->self[0])
        snprintf(e->self_key, sizeof(e->self_key), "%s%s", e->coords_prefix, e->self);
    /* Each member gets a third of the lease (0.5..2 s) before the next is
     * tried: a member cut off answers nothing, and a campaign or a save
     * that waited on it for long would outlast the lease. */
    uint64_t per_member = (uint64_t)e->ttl_s * 1000u / 3;
    per_member = per_member < 500 ? 500 : per_member > 2000 ? 2000 : per_member;
    sx_etcd_opts eo = {.endpoints = o->endpoints, .timeout_ms = per_member};
    sx_status st = sx_etcd_open(&eo, &e->etcd, err);
    /* The lease first, kept alive from now on: a campaign binds the key to it. */
    if (st == SX_OK)
        st = sx_etcd_lease_grant(e->etcd, e->ttl_s, &e->lease, NULL, err);
    if (st == SX_OK) {
        sx_etcd_keepalive_opts ko = {.on_renewed = on_renewed, .on_end = on_lease_end, .arg = e};
        st = sx_etcd_keepalive_start(e->etcd, e->lease, e->ttl_s, &ko, &e->keepalive, err);
    }
    /* Every coordinator running says so, for as long as its lease lives:
     * `shardex status` lists them. */
    if (st == SX_OK && e->self_key[0])
        st = sx_etcd_put(e->etcd, e->self_key, e->self, strlen(e->self), e->lease, NULL, err);
    if (st != SX_OK) {
        etcd_meta_close(e);
        return st;
    }
    sx_meta *m = sx_calloc(1, sizeof(*m));
    m->etcd = e;
    *out = m;
    return SX_OK;
}

static void on_leader_event(void *arg, const sx_etcd_event *ev)
{
    etcd_meta *e = arg;
    if (!ev->deleted)
        return;
    pthread_mutex_lock(&e->mu);
    e->vacant = true;
    pthread_mutex_unlock(&e->mu);
}

static void on_watch_end(void *arg, sx_status st, const sx_err *err)
{
    (void)st;
    (void)err;
    etcd_meta *e = arg;
    pthread_mutex_lock(&e->mu);
    e->watch_ended = true;
    e->vacant = true; /* whatever happened meanwhile, a campaign finds out */
    pthread_mutex_unlock(&e->mu);
}

/* A follower watches the leader key from `from` on, so that it campaigns as
 * soon as the key goes (resigned, or its lease expired) instead of at its
 * next periodic try. Best effort: without a watch the periodic try remains. */
static void watch_leader(etcd_meta *e, int64_t from)
{
    pthread_mutex_lock(&e->mu);
    bool ended = e->watch_ended;
    e->watch_ended = false;
    pthread_mutex_unlock(&e->mu);
    if (e->watch && !ended)
        return;
    sx_etcd_watch_stop(e->watch);
    e->watch = NULL;
    sx_etcd_watch_opts wo = {.key = e->leader_key,
                             .start_revision = from,
                             .on_event = on_leader_event,
                             .on_end = on_watch_end,
                             .arg = e};
    sx_err err = {0};
    if (sx_etcd_watch_start(e->etcd, &wo, &e->watch, NULL, &err) != SX_OK) {
        e->watch = NULL;
        SX_LOG(SX_LOG_DEBUG, "meta", "no watch on %s: %s", e->leader_key, err.msg);
    }
}

static sx_status won_at(etcd_meta *e, int64_t epoch, bool *won)
{
    pthread_mutex_lock(&e->mu);
    e->epoch = epoch;
    pthread_mutex_unlock(&e->mu);
    *won = true;
    SX_LOG(SX_LOG_INFO, "meta", "leading key=%s epoch=%" PRId64 " lease=%" PRId64, e->leader_key,
           epoch, e->lease);
    sx_etcd_watch_stop(e->watch); /* a leader has nobody to watch */
    e->watch = NULL;
    return SX_OK;
}

sx_status sx_meta_campaign(sx_meta *m, bool *won, char *leader, size_t cap, sx_err *err)
{
    *won = false;
    if (cap)
        leader[0] = '\0';
    etcd_meta *e = m->etcd;
    if (!e) {
        *won = true; /* the embedded store has one coordinator */
        return SX_OK;
    }
    pthread_mutex_lock(&e->mu);
    bool already = e->epoch > 0, lost = e->lost;
    pthread_mutex_unlock(&e->mu);
    if (lost)
        return sx_err_set(err, SX_UNAVAILABLE, "etcd: this coordinator's lease is gone");
    if (already) {
        *won = true;
        return SX_OK;
    }
    sx_etcd_cmp absent = {.key = e->leader_key, .target = SX_ETCD_CREATE, .op = SX_ETCD_EQUAL};
    sx_etcd_op claim = {
        .key = e->leader_key, .value = e->self, .value_len = strlen(e->self), .lease = e->lease};
    sx_etcd_txn t = {.cmps = &absent, .ncmps = 1, .then_ops = &claim, .nthen = 1};
    bool ok = false;
    int64_t rev = 0;
    sx_status st = sx_etcd_txn_run(e->etcd, &t, &ok, &rev, err);
    if (st != SX_OK)
        return st;
    if (ok)
        return won_at(e, rev, won);
    sx_etcd_range *r = NULL;
    if (sx_etcd_get(e->etcd, e->leader_key, false, &r, NULL) == SX_OK) {
        if (r->count == 1 && r->kvs[0].lease == e->lease) {
            /* Ours: the claim was applied by a member that then did not
             * answer, and applied again elsewhere it failed its compare. */
            int64_t epoch = r->kvs[0].create_revision;
            sx_etcd_range_free(r);
            return won_at(e, epoch, won);
        }
        if (r->count == 1 && cap)
            snprintf(leader, cap, "%.*s", (int)r->kvs[0].value_len, (const char *)r->kvs[0].value);
        watch_leader(e, r->revision + 1);
    }
    sx_etcd_range_free(r);
    return SX_OK;
}

bool sx_meta_vacant(sx_meta *m)
{
    etcd_meta *e = m->etcd;
    if (!e)
        return false;
    pthread_mutex_lock(&e->mu);
    bool v = e->vacant;
    e->vacant = false;
    pthread_mutex_unlock(&e->mu);
    return v;
}

bool sx_meta_leading(sx_meta *m, uint64_t now_ms)
{
    etcd_meta *e = m->etcd;
    if (!e)
        return true;
    pthread_mutex_lock(&e->mu);
    bool yes = e->epoch > 0 && !e->lost && now_ms < e->valid_until_ms;
    pthread_mutex_unlock(&e->mu);
    return yes;
}

int64_t sx_meta_epoch(const sx_meta *m)
{
    if (!m->etcd)
        return 0;
    pthread_mutex_lock(&m->etcd->mu);
    int64_t ep = m->etcd->epoch;
    pthread_mutex_unlock(&m->etcd->mu);
    return ep;
}

static sx_status etcd_load(etcd_meta *e, Shardex__Internal__V1__ClusterMap **out, sx_err *err)
{
    sx_etcd_range *r = NULL;
    sx_status st = sx_etcd_get(e->etcd, e->map_key, false, &r, err);
    if (st == SX_OK && r->count == 1) {
        *out =
            shardex__internal__v1__cluster_map__unpack(NULL, r->kvs[0].value_len, r->kvs[0].value);
        if (!*out)
            st = sx_err_set(err, SX_DATA_LOSS, "metadata: %s in etcd does not decode", e->map_key);
    }
    sx_etcd_range_free(r);
    return st;
}

static sx_status etcd_save(etcd_meta *e, const void *packed, size_t len, sx_err *err)
{
    pthread_mutex_lock(&e->mu);
    int64_t epoch = e->epoch;
    pthread_mutex_unlock(&e->mu);
    if (epoch <= 0)
        return sx_err_set(err, SX_FAILED_PRECONDITION, "metadata: not leading: nothing is saved");
    /* Fenced: only while the leader key is still the one this leader made. */
    sx_etcd_cmp ours = {
        .key = e->leader_key, .target = SX_ETCD_CREATE, .op = SX_ETCD_EQUAL, .number = epoch};
    sx_etcd_op put = {.key = e->map_key, .value = packed, .value_len = len};
    sx_etcd_txn t = {.cmps = &ours, .ncmps = 1, .then_ops = &put, .nthen = 1};
    bool ok = false;
    sx_status st = sx_etcd_txn_run(e->etcd, &t, &ok, NULL, err);
    if (st == SX_OK && !ok)
        st = sx_err_set(err, SX_ABORTED,
                        "metadata: deposed: %s is no longer the key of epoch %" PRId64
                        " (another coordinator leads)",
                        e->leader_key, epoch);
    return st;
}

static void etcd_meta_close(etcd_meta *e)
{
    if (!e)
        return;
    sx_etcd_watch_stop(e->watch);
    sx_etcd_keepalive_stop(e->keepalive);
    /* Resign: the leader key goes with the lease. Not when the lease is
     * lost: gone or going by itself, and etcd may not answer (no quorum). */
    pthread_mutex_lock(&e->mu);
    bool lost = e->lost;
    pthread_mutex_unlock(&e->mu);
    if (e->lease && !lost) {
        sx_err err = {0};
        if (sx_etcd_lease_revoke(e->etcd, e->lease, &err) != SX_OK && err.code != SX_NOT_FOUND)
            SX_LOG(SX_LOG_WARN, "meta", "lease not revoked: %s", err.msg);
    }
    sx_etcd_close(e->etcd);
    pthread_mutex_destroy(&e->mu);
    free(e->self);
    free(e);
}
