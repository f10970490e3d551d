/* psnap.c: see psnap.h. */
#include "psnap.h"

#include "crashpoint.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- server -- */

typedef struct session {
    uint64_t id; /* 0: free slot */
    uint32_t partition;
    uint64_t epoch;
    sx_plog *log;
    const sx_snapshot *snap;
    uint64_t applied;
    uint64_t last_ms;
} session;

struct sx_psnap_server {
    pthread_mutex_t mu;
    uint64_t next_id;
    session s[SX_PSNAP_MAX_SESSIONS];
};

sx_psnap_server *sx_psnap_server_create(void)
{
    sx_psnap_server *s = sx_calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    /* Ids differ across restarts (the follower may hold one from before):
     * start from the wall clock's microseconds. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->next_id = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    return s;
}

static void end_session(session *x)
{
    if (x->id)
        sx_store_release_snapshot(sx_plog_store(x->log), x->snap);
    memset(x, 0, sizeof(*x));
}

void sx_psnap_server_destroy(sx_psnap_server *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++)
        end_session(&s->s[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

size_t sx_psnap_server_sessions(sx_psnap_server *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++)
        n += s->s[i].id != 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Drops sessions idle for SX_PSNAP_IDLE_MS. mu held. */
static void expire_locked(sx_psnap_server *s, uint64_t now_ms)
{
    for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++)
        if (s->s[i].id && now_ms - s->s[i].last_ms > SX_PSNAP_IDLE_MS) {
            SX_LOG(SX_LOG_INFO, "psnap", "partition=%u snapshot session=%" PRIu64 " expired",
                   s->s[i].partition, s->s[i].id);
            end_session(&s->s[i]);
        }
}

void sx_psnap_server_expire(sx_psnap_server *s, uint64_t now_ms)
{
    pthread_mutex_lock(&s->mu);
    expire_locked(s, now_ms);
    pthread_mutex_unlock(&s->mu);
}

void sx_psnap_server_drop(sx_psnap_server *s, sx_plog *log)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++)
        if (s->s[i].id && s->s[i].log == log)
            end_session(&s->s[i]);
    pthread_mutex_unlock(&s->mu);
}

/* The session req names, or a new one (session 0). mu held. */
static sx_status find_session_locked(sx_psnap_server *s, sx_plog *log, uint64_t now_ms,
                                     const Shardex__Internal__V1__SnapshotRequest *req,
                                     session **out, sx_err *err)
{
    if (req->session) {
        for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++) {
            session *x = &s->s[i];
            if (x->id == req->session && x->partition == req->partition && x->epoch == req->epoch &&
                x->log == log) {
                *out = x;
                return SX_OK;
            }
        }
        return sx_err_set(err, SX_NOT_FOUND,
                          "partition %u: snapshot session %" PRIu64
                          " is unknown or expired; start a new one (session 0)",
                          req->partition, req->session);
    }
    for (size_t i = 0; i < SX_PSNAP_MAX_SESSIONS; i++) {
        session *x = &s->s[i];
        if (x->id)
            continue;
        x->id = s->next_id++;
        x->partition = req->partition;
        x->epoch = req->epoch;
        x->log = log;
        x->snap = sx_plog_snapshot(log, &x->applied);
        x->last_ms = now_ms;
        SX_LOG(SX_LOG_INFO, "psnap", "partition=%u snapshot session=%" PRIu64 " at offset=%" PRIu64,
               x->partition, x->id, x->applied);
        *out = x;
        return SX_OK;
    }
    return sx_err_set(err, SX_RESOURCE_EXHAUSTED,
                      "partition %u: %d snapshot sessions are open already; retry later",
                      req->partition, SX_PSNAP_MAX_SESSIONS);
}

static ProtobufCBinaryData copy_bytes(sx_arena *arena, const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, sx_arena_alloc(arena, n + 1)};
    memcpy(b.data, p, n);
    return b;
}

sx_status sx_psnap_serve(sx_psnap_server *s, sx_plog *log, uint64_t now_ms,
                         const Shardex__Internal__V1__SnapshotRequest *req,
                         Shardex__Internal__V1__SnapshotResponse *resp, sx_arena *arena,
                         sx_err *err)
{
    size_t budget = req->max_bytes && req->max_bytes < SX_PSNAP_CHUNK_BYTES ? req->max_bytes
                                                                            : SX_PSNAP_CHUNK_BYTES;
    pthread_mutex_lock(&s->mu);
    expire_locked(s, now_ms);
    session *x = NULL;
    sx_status st = find_session_locked(s, log, now_ms, req, &x, err);
    if (st != SX_OK) {
        pthread_mutex_unlock(&s->mu);
        return st;
    }
    /* The session stays ours while mu is held: the scan of one chunk is
     * short (a budget of bytes), and calls of one transfer come in turn. */
    x->last_ms = now_ms;
    resp->session = x->id;
    resp->offset = x->applied;
    sx_iter *it = sx_store_iter_range(sx_plog_store(log), x->snap, NULL, 0, NULL, 0);
    if (req->cursor.len) {
        sx_iter_seek(it, req->cursor.data, req->cursor.len);
        size_t kl;
        if (sx_iter_valid(it)) {
            const void *k = sx_iter_key(it, &kl);
            if (kl == req->cursor.len && memcmp(k, req->cursor.data, kl) == 0)
                sx_iter_next(it);
        }
    }
    size_t cap = 64, n = 0, bytes = 0;
    Shardex__Internal__V1__SnapshotPair **pairs = sx_arena_alloc(arena, cap * sizeof(*pairs));
    while (sx_iter_valid(it) && (n == 0 || bytes < budget)) {
        size_t kl, vl, nl;
        const void *k = sx_iter_key(it, &kl);
        const void *v = sx_iter_value(it, &vl);
        const void *past = sx_plog_snapshot_skip(k, kl, &nl);
        if (past) {
            sx_iter_seek(it, past, nl);
            continue;
        }
        if (sx_plog_snapshot_keep(k, kl, v, vl, x->applied)) {
            if (n == cap) {
                Shardex__Internal__V1__SnapshotPair **more =
                    sx_arena_alloc(arena, 2 * cap * sizeof(*more));
                memcpy(more, pairs, n * sizeof(*more));
                pairs = more;
                cap *= 2;
            }
            Shardex__Internal__V1__SnapshotPair *pr = sx_arena_alloc(arena, sizeof(*pr));
            shardex__internal__v1__snapshot_pair__init(pr);
            pr->key = copy_bytes(arena, k, kl);
            pr->value = copy_bytes(arena, v, vl);
            pairs[n++] = pr;
            bytes += kl + vl;
        }
        resp->next_cursor = copy_bytes(arena, k, kl);
        sx_iter_next(it);
    }
    st = sx_iter_status(it, err);
    resp->done = st == SX_OK && !sx_iter_valid(it);
    sx_iter_destroy(it);
    resp->pairs = pairs;
    resp->n_pairs = n;
    if (resp->done)
        end_session(x);
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ------------------------------------------------------------- writer -- */

struct sx_psnap_writer {
    sx_store *store;
    char *path;
    sx_buf last; /* the last key written */
};

sx_status sx_psnap_writer_open(const char *path, sx_psnap_writer **out, sx_err *err)
{
    *out = NULL;
    sx_status st = sx_store_destroy_files(path, err);
    if (st != SX_OK)
        return st;
    sx_psnap_writer *w = sx_calloc(1, sizeof(*w));
    sx_store_opts so = {0};
    st = sx_store_open(path, &so, &w->store, err);
    if (st != SX_OK) {
        free(w);
        return st;
    }
    w->path = sx_strdup(path);
    *out = w;
    return SX_OK;
}

sx_status sx_psnap_writer_put(sx_psnap_writer *w, Shardex__Internal__V1__SnapshotPair **pairs,
                              size_t n, sx_err *err)
{
    const uint8_t *prev = w->last.data;
    size_t prev_len = w->last.len; /* 0: nothing written yet (keys are never empty) */
    for (size_t i = 0; i < n; i++) {
        const ProtobufCBinaryData *k = &pairs[i]->key;
        size_t m = k->len < prev_len ? k->len : prev_len;
        int c = m ? memcmp(k->data, prev, m) : 0;
        bool ascends = prev_len == 0 || c > 0 || (c == 0 && k->len > prev_len);
        const char *why = k->len == 0         ? "empty"
                          : k->data[0] == 'L' ? "a log entry (never part of a snapshot)"
                          : !ascends          ? "not above the previous key"
                                              : NULL;
        if (why)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "snapshot pairs[%zu].key: %s", i, why);
        prev = k->data;
        prev_len = k->len;
    }
    sx_batch *b = sx_batch_create();
    for (size_t i = 0; i < n; i++)
        sx_batch_put(b, pairs[i]->key.data, pairs[i]->key.len, pairs[i]->value.data,
                     pairs[i]->value.len);
    sx_status st = sx_store_write(w->store, b, SX_SYNC_NO, err);
    sx_batch_destroy(b);
    if (st == SX_OK && n > 0) {
        sx_buf_reset(&w->last);
        sx_buf_append(&w->last, pairs[n - 1]->key.data, pairs[n - 1]->key.len);
    }
    return st;
}

sx_status sx_psnap_writer_seal(sx_psnap_writer *w, uint64_t applied, sx_err *err)
{
    sx_batch *b = sx_batch_create();
    sx_plog_snapshot_seal(b, applied);
    SX_CRASH_POINT("snapshot-before-seal");
    sx_status st = sx_store_write(w->store, b, SX_SYNC_YES, err);
    sx_batch_destroy(b);
    sx_store_close(w->store);
    w->store = NULL;
    return st;
}

void sx_psnap_writer_close(sx_psnap_writer *w)
{
    if (!w)
        return;
    sx_store_close(w->store);
    sx_buf_free(&w->last);
    free(w->path);
    free(w);
}

/* --------------------------------------------------------------- swap -- */

static char *with_suffix(const char *dir, const char *suffix)
{
    size_t n = strlen(dir) + strlen(suffix) + 1;
    char *s = sx_malloc(n);
    snprintf(s, n, "%s%s", dir, suffix);
    return s;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* fsync of the directory that holds path: renames in it become durable. */
static sx_status sync_parent(const char *path, sx_err *err)
{
    char *parent = sx_strdup(path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    int fd = open(slash ? parent : ".", O_RDONLY | O_DIRECTORY);
    sx_status st = SX_OK;
    if (fd < 0 || fsync(fd) != 0)
        st = sx_err_set(err, SX_INTERNAL, "fsync of %s: %s", slash ? parent : ".", strerror(errno));
    if (fd >= 0)
        close(fd);
    free(parent);
    return st;
}

static sx_status rename_or_fail(const char *from, const char *to, sx_err *err)
{
    if (rename(from, to) != 0)
        return sx_err_set(err, SX_INTERNAL, "rename %s to %s: %s", from, to, strerror(errno));
    return SX_OK;
}

sx_status sx_psnap_swap(const char *dir, sx_err *err)
{
    char *snap = with_suffix(dir, ".snap"), *old = with_suffix(dir, ".old");
    sx_status st = SX_OK;
    if (exists(dir)) {
        if (exists(old))
            st = sx_store_destroy_files(old, err); /* a swap before this one left it */
        if (st == SX_OK)
            st = rename_or_fail(dir, old, err);
    }
    SX_CRASH_POINT("snapshot-swap-renamed-old");
    if (st == SX_OK)
        st = rename_or_fail(snap, dir, err);
    if (st == SX_OK)
        st = sync_parent(dir, err);
    SX_CRASH_POINT("snapshot-swap-renamed-new");
    free(snap);
    free(old);
    return st;
}

/* Whether the store at path holds the seal (opened and closed here). */
static sx_status sealed(const char *path, bool *out, sx_err *err)
{
    sx_store *s = NULL;
    sx_store_opts so = {.no_create = true};
    *out = false;
    sx_status st = sx_store_open(path, &so, &s, err);
    if (st == SX_NOT_FOUND || st == SX_DATA_LOSS) {
        sx_err_clear(err);
        return SX_OK; /* not even a store: cut short */
    }
    if (st == SX_OK)
        st = sx_plog_snapshot_complete(s, out, NULL, err);
    sx_store_close(s);
    return st;
}

/* One partition directory's leftovers (dir is data_dir/partitions/pNNNN). */
static sx_status recover_one(const char *dir, sx_err *err)
{
    char *snap = with_suffix(dir, ".snap"), *old = with_suffix(dir, ".old");
    sx_status st = SX_OK;
    bool whole = false;
    if (exists(snap) && (st = sealed(snap, &whole, err)) == SX_OK) {
        if (whole) {
            SX_LOG(SX_LOG_WARN, "psnap", "finishing the swap of the snapshot %s", snap);
            st = sx_psnap_swap(dir, err);
        } else {
            SX_LOG(SX_LOG_WARN, "psnap", "deleting the snapshot copy cut short %s", snap);
            st = sx_store_destroy_files(snap, err);
        }
    }
    if (st == SX_OK && exists(old)) {
        if (exists(dir)) {
            st = sx_store_destroy_files(old, err);
        } else {
            /* Only the first rename happened and the copy is gone: the old
             * store is the one the worker has. */
            SX_LOG(SX_LOG_WARN, "psnap", "putting %s back in place of %s", old, dir);
            st = rename_or_fail(old, dir, err);
            if (st == SX_OK)
                st = sync_parent(dir, err);
        }
    }
    free(snap);
    free(old);
    return st;
}

sx_status sx_psnap_recover(const char *data_dir, sx_err *err)
{
    size_t cap = strlen(data_dir) + 32;
    char *parts = sx_malloc(cap);
    snprintf(parts, cap, "%s/partitions", data_dir);
    DIR *d = opendir(parts);
    if (!d) {
        sx_status st = errno == ENOENT ? SX_OK
                                       : sx_err_set(err, SX_INTERNAL, "cannot list %s: %s", parts,
                                                    strerror(errno));
        free(parts);
        return st;
    }
    /* Names first, then the work: the renames change the directory. */
    uint32_t *todo = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned p;
        int used = 0;
        if (sscanf(e->d_name, "p%u%n", &p, &used) == 1 && used >= 5 &&
            (strcmp(e->d_name + used, ".snap") == 0 || strcmp(e->d_name + used, ".old") == 0)) {
            todo = sx_realloc(todo, (n + 1) * sizeof(*todo));
            todo[n++] = p;
        }
    }
    closedir(d);
    sx_status st = SX_OK;
    for (size_t i = 0; st == SX_OK && i < n; i++) {
        char *dir = sx_malloc(cap + 16);
        snprintf(dir, cap + 16, "%s/p%04u", parts, todo[i]);
        st = recover_one(dir, err);
        free(dir);
    }
    free(todo);
    free(parts);
    return st;
}
