/* shardex-worker: the data plane. Parses flags, loads (or creates) its stable
 * id, wires its modules together, serves RPCs, and keeps its membership until
 * SIGTERM/SIGINT.
 *
 * The pipeline, as wired in main() below (every arrow an argument passed
 * where the next stage is opened, nothing installed from afar):
 *
 *   Put/Delete (router) --Replication.Write--> leader's replica (replica.c)
 *     --append, replicate, commit--> log of p (plog)
 *     --apply, one batch per step--> documents (plog) + local index entries
 *                                    + outbox (pindex: the plog's observer)
 *     --on_applied--> shipper (ixlead: sx_ixlead_kick)
 *     --Index.Ship--> term partitions on their owners (tstore)
 *   maps: membership --on_map--> replicas (roles) and term partitions (owners)
 *
 * Threads and pools: see docs/architecture.md. Metrics (--metrics-listen):
 * one registry, given to the modules that count (rpc server, replicas,
 * handlers) where they are created, a collector for what the replicas and
 * stores hold (wmetrics.h), and the HTTP endpoint; docs/operations.md. */
#include "auth.h"
#include "backfill.h"
#include "clock.h"
#include "crashpoint.h"
#include "daemon.h"
#include "flags.h"
#include "fsutil.h"
#include "health.h"
#include "ixlead.h"
#include "log.h"
#include "membership.h"
#include "metrics_http.h"
#include "rpc.h"
#include "service.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "tstore.h"
#include "wmetrics.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct config {
    const char *coordinator;
    const char *listen;
    const char *advertise;
    const char *data_dir;
    const char *port_file;
    const char *fsync;
    uint64_t write_buffer;
    const char *log_retention;
    int64_t log_retention_entries;
    /* --log-retention as read (parse_retention) */
    bool retention_off;
    uint64_t retention_bytes, retention_ms;
    uint64_t stop_timeout_ms;
    uint64_t backfill_max_write_p99_ms;
    uint32_t backfill_chunk;
    const char *log_level;
    const char *log_format;
    const char *metrics_listen;
    const char *metrics_port_file;
    const char *tls_cert, *tls_key, *tls_ca, *auth_tokens;
    bool allow_faults;
    uint64_t max_message_size, max_deadline_ms;
    uint32_t max_streams, max_calls_per_client;
} config;

static const char *const fsync_modes[] = {"batch", "always", "never", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(config, m, t)
static const sx_flag flags[] = {
    {.name = "coordinator",
     .type = SX_FLAG_STRING,
     .offset = OFF(coordinator, const char *),
     .metavar = "HOST:PORT[,...]",
     .help = "the coordinator's address, or every coordinator's (comma-separated) when they "
             "keep the metadata in etcd: the worker calls the one that answers",
     .env = "SHARDEX_COORDINATOR",
     .required = true},
    {.name = "listen",
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(listen, const char *),
     .help = "address to serve on (port 0: any free port, see --port-file)"},
    {.name = "advertise",
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(advertise, const char *),
     .help = "address other nodes and clients use to reach this worker (default: --listen "
             "with the bound port; 127.0.0.1 for a wildcard host)"},
    {.name = "data-dir",
     .type = SX_FLAG_STRING,
     .offset = OFF(data_dir, const char *),
     .metavar = "DIR",
     .help = "where this worker's id and data live (created if missing)",
     .required = true},
    {.name = "port-file",
     .type = SX_FLAG_STRING,
     .offset = OFF(port_file, const char *),
     .metavar = "FILE",
     .help = "write the bound port here once serving"},
    {.name = "fsync",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(fsync, const char *),
     .choices = fsync_modes,
     .help = "what durable means: batch = one fsync per group of concurrent writes, always = "
             "one per write request, never = leave it to the OS (acknowledged writes can be "
             "lost in a crash)"},
    {.name = "write-buffer",
     .type = SX_FLAG_SIZE,
     .offset = OFF(write_buffer, uint64_t),
     .min = 1u << 20,
     .max = 1u << 30,
     .help = "memtable of each LevelDB store (every log partition's and the term partitions'): "
             "larger means fewer flushes and compactions while writing, and up to twice this "
             "much memory per store"},
    {.name = "log-retention",
     .type = SX_FLAG_STRING,
     .offset = OFF(log_retention, const char *),
     .metavar = "off|min|SIZE|DURATION",
     .help = "log retention: 'off' keeps each partition's whole log; otherwise each log keeps "
             "what every replica it feeds still needs plus 1000 entries ('min'), and at least "
             "its newest SIZE of entries (e.g. 1GiB, 512MiB; by their mean size) or the entries "
             "of the last DURATION (e.g. 7d, 12h, 30m); the rest, which the documents hold, is "
             "removed. A replica the log no longer reaches copies a snapshot of the leader's "
             "store instead (docs/operations.md)"},
    {.name = "log-retention-entries",
     .type = SX_FLAG_INT,
     .offset = OFF(log_retention_entries, int64_t),
     .min = 0,
     .max = INT64_C(1) << 48,
     .metavar = "N",
     .help = "log retention: also keep at least each log's last N entries (0: no such minimum); "
             "with --log-retention off, N > 0 turns retention on"},
    {.name = "stop-timeout",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(stop_timeout_ms, uint64_t),
     .min = 100,
     .max = 600000,
     .help = "on SIGTERM or SIGINT, how long the worker may take to answer the writes it "
             "accepted and to hand its leaderships and term partitions to other workers (through "
             "the coordinator) before it stops; what is not handed over by then moves once its "
             "lease runs out, as after a crash"},
    {.name = "backfill-max-write-p99",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(backfill_max_write_p99_ms, uint64_t),
     .min = 0,
     .max = 60000,
     .help = "bound on this worker's foreground write latency (p99 of the Puts and Deletes it "
             "acknowledges and of the writes other workers route to partitions it leads, over "
             "200 ms windows) while it backfills a new index: the backfill's "
             "chunks shrink and pauses between them grow while the p99 is above it, and grow "
             "back below it; 0: unthrottled (the backfill runs flat out)"},
    {.name = "backfill-chunk",
     .type = SX_FLAG_UINT32,
     .offset = OFF(backfill_chunk, uint32_t),
     .min = 1,
     .max = 1000000,
     .metavar = "N",
     .help = "most documents a backfill chunk indexes in one batch (holding its partition's "
             "lock for that long); the throttle works below it"},
    {.name = "allow-faults",
     .type = SX_FLAG_BOOL,
     .offset = OFF(allow_faults, bool),
     .help = "let WorkerAdmin.SetFaults change this worker's fault rules at run time (tests, "
             "the chaos suite); without it the call is refused"},
    SX_DAEMON_LOG_FLAGS(config),
    SX_METRICS_HTTP_FLAGS(config),
    SX_DAEMON_TLS_FLAGS(config),
    SX_DAEMON_LIMIT_FLAGS(config),
};

static const sx_flags_spec spec = {
    .prog = "shardex-worker",
    .synopsis = "--coordinator HOST:PORT --data-dir DIR [FLAGS]",
    .description = "A shardex data-plane node: registers with the coordinator, hosts the log "
                   "partitions and term partitions it is assigned, serves the client API.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
    .config = true,
};

/* The worker's stable id: made once, kept in DIR/worker-id. */
static sx_status load_worker_id(const char *dir, char *id, size_t cap, sx_err *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/worker-id", dir);
    sx_buf b = {0};
    bool found = false;
    sx_status st = sx_file_read(path, 128, &b, &found, err);
    if (st == SX_OK && found) {
        size_t n = b.len;
        while (n > 0 && (b.data[n - 1] == '\n' || b.data[n - 1] == ' '))
            n--;
        if (n == 0 || n >= cap)
            st = sx_err_set(err, SX_DATA_LOSS, "%s: not a worker id", path);
        else {
            memcpy(id, b.data, n);
            id[n] = '\0';
        }
    } else if (st == SX_OK) {
        unsigned char r[6] = {0};
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t got = read(fd, r, sizeof(r));
            (void)got;
            close(fd);
        }
        snprintf(id, cap, "w-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
        char line[64];
        int n = snprintf(line, sizeof(line), "%s\n", id);
        st = sx_file_write_atomic(path, line, (size_t)n, err);
    }
    sx_buf_free(&b);
    return st;
}

/* Every newer map goes to the replicas and to the term partitions. */
static void on_map(void *arg, sx_partmap *map)
{
    sx_worker_ctx *w = arg;
    sx_replica_on_map(w->replicas, map);
    sx_tstore_on_map(w->terms, sx_partmap_msg(map), sx_partmap_self(map));
}

static size_t replica_reports(void *arg, Shardex__Internal__V1__ReplicaReport *out, size_t cap)
{
    return sx_replica_reports(((sx_worker_ctx *)arg)->replicas, out, cap);
}

static void more_reports(void *arg, sx_arena *arena, Shardex__Internal__V1__HeartbeatRequest *req)
{
    sx_worker_ctx *w = arg;
    req->n_indexes = sx_ixlead_reports(w->replicas, arena, &req->indexes);
    req->n_terms = sx_tstore_reports(w->terms, arena, &req->terms);
}

/* --log-retention: a word, a duration (a unit of ms, s, m, h, d: "m" is
 * minutes) or a size (any other unit: KiB, MiB, GiB, TiB, k, g, ...). A bare
 * number says neither and is refused. */
static sx_status parse_retention(config *cfg, sx_err *err)
{
    const char *v = cfg->log_retention;
    static const char who[] = "--log-retention";
    cfg->retention_off = false;
    cfg->retention_bytes = cfg->retention_ms = 0;
    if (strcmp(v, "off") == 0) {
        cfg->retention_off = cfg->log_retention_entries == 0;
        return SX_OK;
    }
    if (strcmp(v, "min") == 0)
        return SX_OK;
    size_t digits = strspn(v, "0123456789");
    const char *unit = v + digits;
    if (digits == 0 || *unit == '\0')
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "%s: '%s' is not off, min, a size (e.g. 1GiB) or a duration (e.g. 7d)",
                          who, v);
    static const char *const time_units[] = {"ms", "s", "m", "h", "d", NULL};
    bool duration = false;
    for (const char *const *u = time_units; *u; u++)
        duration |= strcmp(unit, *u) == 0;
    uint64_t n = 0;
    sx_status st = sx_flags_parse_scaled(v, duration, who, &n, err);
    if (st == SX_OK && n == 0)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' keeps nothing; say min", who, v);
    if (st == SX_OK && duration)
        cfg->retention_ms = n;
    else if (st == SX_OK)
        cfg->retention_bytes = n;
    return st;
}

/* Parses the command line, environment and config file into cfg (whose
 * strings may point into *file, freed by the caller) and sets up logging: -1
 * to go on, else the exit code (0 after --help, 2 for a bad command line). */
static int parse_args(int argc, char **argv, config *cfg, sx_flags_file **file)
{
    config defaults = *cfg;
    bool help = false;
    sx_err err = {0};
    if (sx_flags_parse_given(&spec, cfg, argc, argv, &help, NULL, NULL, file, &err) != SX_OK) {
        fprintf(stderr, "shardex-worker: %s\nTry --help.\n", err.msg);
        return 2;
    }
    if (help) {
        sx_flags_usage(&spec, &defaults, stdout);
        return 0;
    }
    if (sx_hostport_list(cfg->coordinator, NULL, NULL, &err) != SX_OK) {
        fprintf(stderr, "shardex-worker: --coordinator: %s\nTry --help.\n", err.msg);
        return 2;
    }
    if (parse_retention(cfg, &err) != SX_OK) {
        fprintf(stderr, "shardex-worker: %s\nTry --help.\n", err.msg);
        return 2;
    }
    sx_daemon_set_logging(cfg->log_level, cfg->log_format);
    sx_flags_log_config(&spec, cfg, "worker");
    if (*file)
        SX_LOG(SX_LOG_INFO, "worker", "config file=%s", sx_flags_file_path(*file));
    return -1;
}

/* Everything a running worker holds, in the order it is wired. */
typedef struct worker {
    char id[64];
    char advertise[300];
    int port;
    sx_rpc_client *rpc;
    sx_ixlead *ixlead;     /* the shipper */
    sx_backfill *backfill; /* index backfills, in chunks */
    sx_worker_ctx ctx;     /* replicas, term partitions, membership: what handlers see */
    sx_rpc_server *srv;
    sx_health health; /* grpc.health.v1: SERVING while it holds a lease */
    sx_health_service *health_svc;
    atomic_bool joined;    /* ctx.member is set (health checks come before) */
    sx_metrics *metrics;   /* with --metrics-listen, else NULL: every metric a no-op */
    sx_metrics_http *http; /* serves it once the worker joined */
    bool secure;           /* TLS on: tls and auth below */
    sx_rpc_tls tls;
    sx_auth *auth;
} worker;

/* The stores and the pipeline behind them: shipper, replicas (whose applies
 * feed their indexes and wake the shipper), term partitions. */
static sx_status open_stores(const config *cfg, worker *w, sx_err *err)
{
    w->ixlead = sx_ixlead_create(
        &(sx_ixlead_opts){.worker_id = w->id, .coordinator = cfg->coordinator, .rpc = w->rpc});
    sx_replica_opts ro = {
        .data_dir = cfg->data_dir,
        .worker_id = w->id,
        .coordinator = cfg->coordinator,
        .rpc = w->rpc,
        .on_applied = sx_ixlead_kick,
        .on_applied_arg = w->ixlead,
        .fsync = strcmp(cfg->fsync, "always") == 0  ? SX_FSYNC_ALWAYS
                 : strcmp(cfg->fsync, "never") == 0 ? SX_FSYNC_NEVER
                                                    : SX_FSYNC_BATCH,
        .write_buffer_bytes = cfg->write_buffer,
        .log_retention_off = cfg->retention_off,
        .log_retention_entries = (uint64_t)cfg->log_retention_entries,
        .log_retention_bytes = cfg->retention_bytes,
        .log_retention_ms = cfg->retention_ms,
        .metrics = w->metrics,
    };
    char terms_dir[4200];
    snprintf(terms_dir, sizeof(terms_dir), "%s/terms", cfg->data_dir);
    sx_status st = sx_replica_create(&ro, &w->ctx.replicas, err);
    if (st == SX_OK)
        st = sx_tstore_open(terms_dir, NULL, cfg->write_buffer, &w->ctx.terms, err);
    return st;
}

/* Whether the worker is registered and holds a lease (it can lead, follow
 * and route), for health checks and the service manager; before it joined,
 * or while the coordinator does not answer it, it does not. *ms_since_ok:
 * since its last answered heartbeat. */
static bool holds_lease(worker *w, uint64_t *ms_since_ok)
{
    *ms_since_ok = UINT64_MAX;
    if (!atomic_load(&w->joined))
        return false;
    sx_membership_view v;
    sx_membership_get_view(w->ctx.member, &v);
    sx_partmap_release(v.map);
    *ms_since_ok = v.ms_since_ok;
    return v.index >= 0 && v.lease_valid;
}

static bool worker_serving(void *arg)
{
    uint64_t since;
    return holds_lease(arg, &since);
}

static const char *const worker_services[] = {"shardex.v1.Shardex", NULL};

/* Serving: every service of the worker on one server (see service.c). */
static sx_status serve(const config *cfg, worker *w, sx_err *err)
{
    sx_rpc_server_opts so = {.listen = cfg->listen,
                             .pool_threads = 16,
                             /* Reads waiting for an offset and routers waiting for other calls: a
                              * pool each, so that neither can starve what it waits for. */
                             .wait_threads = 64,
                             .routing_threads = 64,
                             .max_message_bytes = cfg->max_message_size,
                             .max_streams_per_connection = cfg->max_streams,
                             .max_calls_per_client = cfg->max_calls_per_client,
                             .max_deadline_ms = cfg->max_deadline_ms,
                             .metrics = w->metrics,
                             .tls = w->secure ? &w->tls : NULL,
                             .authorize = w->secure ? sx_auth_authorize : NULL,
                             .authorize_arg = w->auth};
    sx_status st = sx_rpc_server_create(&so, &w->srv, err);
    w->ctx.srv = w->srv;
    if (st == SX_OK)
        st = sx_service_add(w->srv, &w->ctx, err);
    w->health = (sx_health){.services = worker_services, .serving = worker_serving, .arg = w};
    if (st == SX_OK)
        st = sx_health_add(w->srv, &w->health, &w->health_svc, err);
    if (st == SX_OK)
        st = sx_rpc_server_start(w->srv, err);
    if (st == SX_OK) {
        w->port = sx_rpc_server_port(w->srv);
        sx_daemon_advertise(cfg->listen, cfg->advertise, w->port, w->advertise,
                            sizeof(w->advertise));
    }
    return st;
}

/* Joins the cluster: membership (maps to the replicas and term partitions,
 * reports from them), then the shipper, which reads both. */
static sx_status join(const config *cfg, worker *w, sx_err *err)
{
    sx_membership_opts mo = {
        .coordinator = cfg->coordinator,
        .worker_id = w->id,
        .address = w->advertise,
        .rpc = w->rpc,
        .on_map = on_map,
        .reports = replica_reports,
        .arg = &w->ctx,
        .more_reports = more_reports,
        .more_arg = &w->ctx,
    };
    char epoch_file[4200];
    snprintf(epoch_file, sizeof(epoch_file), "%s/coordinator-epoch", cfg->data_dir);
    mo.epoch_file = epoch_file;
    mo.lost = sx_replica_lost(w->ctx.replicas, &mo.nlost); /* found by open_stores */
    sx_status st = sx_membership_start(&mo, &w->ctx.member, err);
    if (st != SX_OK)
        return st;
    atomic_store(&w->joined, true);
    sx_replica_attach_member(w->ctx.replicas, w->ctx.member);
    sx_ixlead_start(w->ixlead, w->ctx.replicas, w->ctx.member);
    w->backfill = sx_backfill_create(&(sx_backfill_opts){
        .max_write_p99_ms = cfg->backfill_max_write_p99_ms,
        .max_chunk = cfg->backfill_chunk,
        .watch = {w->ctx.m.put_ack, w->ctx.m.delete_ack, w->ctx.m.lead_write},
    });
    sx_backfill_start(w->backfill, w->ctx.replicas);
    return SX_OK;
}

static sx_status start(const config *cfg, worker *w, sx_err *err)
{
    sx_status st = sx_mkdirs(cfg->data_dir, err);
    if (st == SX_OK)
        st = load_worker_id(cfg->data_dir, w->id, sizeof(w->id), err);
    if (st == SX_OK)
        st = sx_daemon_security(cfg->tls_cert, cfg->tls_key, cfg->tls_ca, cfg->auth_tokens, &w->tls,
                                &w->secure, &w->auth, err);
    /* Its calls to other nodes present its own certificate: a node's. */
    sx_rpc_client_opts co = {.tls = w->secure ? &w->tls : NULL};
    if (st == SX_OK)
        st = sx_rpc_client_create(&co, &w->rpc, err);
    /* Always: the backfill's throttle reads the write latencies; served over
     * HTTP only with --metrics-listen. */
    w->metrics = sx_metrics_create();
    w->ctx = (sx_worker_ctx){.worker_id = w->id,
                             .coordinator = cfg->coordinator,
                             .rpc = w->rpc,
                             .metrics = w->metrics,
                             .allow_faults = cfg->allow_faults};
    if (st == SX_OK)
        st = open_stores(cfg, w, err);
    if (st == SX_OK)
        st = serve(cfg, w, err);
    /* Before joining, so that a metrics address that cannot be bound stops the
     * worker before the coordinator counts it in; the collector of what
     * joining sets up comes after. */
    if (st == SX_OK && cfg->metrics_listen)
        st = sx_metrics_http_start(w->metrics, cfg->metrics_listen, cfg->metrics_port_file,
                                   &w->http, err);
    if (st == SX_OK)
        st = join(cfg, w, err);
    if (st == SX_OK)
        sx_wmetrics_add(w->metrics, &w->ctx, cfg->data_dir);
    if (st == SX_OK && cfg->port_file)
        st = sx_daemon_write_port_file(cfg->port_file, w->port, err);
    return st;
}

/* What the service manager is told (sx_daemon_notify): READY=1 once the
 * worker serves and holds a lease (registered, heartbeats answered), then a
 * STATUS line whenever the lease is lost or regained. */
typedef enum { NOT_YET, SERVING, NO_LEASE } readiness;

static readiness tell_readiness(worker *w, readiness was)
{
    uint64_t since;
    bool ok = holds_lease(w, &since);
    if (was == NOT_YET && ok)
        sx_daemon_notify("READY=1\nSTATUS=serving on %s as worker %s", w->advertise, w->id);
    else if (was == SERVING && !ok)
        sx_daemon_notify("STATUS=no lease: the coordinator has not answered for %" PRIu64
                         " ms; not serving writes",
                         since);
    else if (was == NO_LEASE && ok)
        sx_daemon_notify("STATUS=serving on %s as worker %s", w->advertise, w->id);
    else
        return was;
    return ok ? SERVING : NO_LEASE;
}

/* Tells the other live workers of map m that it exists (WorkerAdmin.
 * RefreshMap): each heartbeats at once and learns what it leads now, instead
 * of at its next period (lease/4). Waits for their answers up to wait_ms;
 * one that does not answer hears at its next heartbeat, as before. */
typedef struct refresh_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
} refresh_wait;

static void refresh_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    (void)st;
    (void)err;
    sx_rpc_free(resp);
    refresh_wait *rw = arg;
    pthread_mutex_lock(&rw->mu);
    rw->pending--;
    pthread_cond_broadcast(&rw->cv);
    pthread_mutex_unlock(&rw->mu);
}

static void tell_peers(worker *w, uint64_t wait_ms)
{
    sx_membership_view v;
    sx_membership_get_view(w->ctx.member, &v);
    if (!v.map)
        return;
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(v.map);
    Shardex__Internal__V1__RefreshMapRequest req = SHARDEX__INTERNAL__V1__REFRESH_MAP_REQUEST__INIT;
    req.version = m->version;
    refresh_wait rw = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sx_cond_init_monotonic(&rw.cv);
    sx_rpc_call_opts o = {.timeout_ms = wait_ms};
    for (size_t i = 0; i < m->n_workers; i++) {
        const Shardex__Internal__V1__WorkerEntry *e = m->workers[i];
        if (!e->alive || strcmp(e->id, w->id) == 0)
            continue;
        pthread_mutex_lock(&rw.mu);
        rw.pending++;
        pthread_mutex_unlock(&rw.mu);
        sx_rpc_invoke_async(w->rpc, e->address, &shardex__internal__v1__worker_admin__descriptor,
                            "RefreshMap", &req.base, &o, refresh_done, &rw);
    }
    sx_partmap_release(v.map);
    /* Every call completes by its deadline, so this wait ends: rw lives until then. */
    pthread_mutex_lock(&rw.mu);
    while (rw.pending > 0)
        pthread_cond_wait(&rw.cv, &rw.mu);
    pthread_mutex_unlock(&rw.mu);
    pthread_cond_destroy(&rw.cv);
}

/* A worker stopping on purpose hands its roles over first, so that writes
 * pause for a map change instead of a lease: it admits no new write as a
 * leader, answers the ones it accepted (half the time allowed), then asks the
 * coordinator to move its leaderships and term partitions now, installs the
 * answer and tells the other workers (tell_peers). Calls in flight finish
 * afterwards, in stop(). */
static void hand_over(worker *w, uint64_t timeout_ms)
{
    if (!atomic_load(&w->joined))
        return;
    uint64_t start = sx_clock_now_ms();
    sx_membership_stop_leading(w->ctx.member);
    size_t unanswered = sx_replica_wait_idle(w->ctx.replicas, start + timeout_ms / 2);
    uint64_t now = sx_clock_now_ms();
    uint64_t left = start + timeout_ms > now ? start + timeout_ms - now : 1;
    sx_err err = {0};
    if (sx_membership_leave(w->ctx.member, left, &err) == SX_OK) {
        tell_peers(w, 500);
        SX_LOG(SX_LOG_INFO, "worker", "handed over id=%s ms=%" PRIu64 " unanswered_writes=%zu",
               w->id, sx_clock_now_ms() - start, unanswered);
    } else
        SX_LOG(SX_LOG_WARN, "worker",
               "not handed over id=%s status=%s msg=\"%s\": its roles move when its lease runs "
               "out",
               w->id, sx_status_name(err.code), err.msg);
}

/* Calls stop first; then the shipper and membership stop calling into the
 * replicas; then the replicas stop (they read the lease, and may wake the
 * shipper, until the end). Accepts a partly started worker. */
static void stop(worker *w)
{
    sx_metrics_http_stop(w->http); /* first: its collector reads everything below */
    sx_rpc_server_destroy(w->srv);
    sx_health_service_destroy(w->health_svc);
    sx_ixlead_stop(w->ixlead);
    sx_backfill_destroy(w->backfill);
    sx_membership_halt(w->ctx.member);
    sx_replica_destroy(w->ctx.replicas);
    sx_ixlead_destroy(w->ixlead);
    sx_membership_stop(w->ctx.member);
    sx_tstore_close(w->ctx.terms);
    sx_rpc_client_destroy(w->rpc);
    sx_rpc_wait_shutdown(2000);
    sx_metrics_destroy(w->metrics); /* last: the modules above counted into it */
    sx_auth_destroy(w->auth);
}

int main(int argc, char **argv)
{
    sx_daemon_block_signals();
    sx_log_set_process("worker");
    config cfg = {.listen = "127.0.0.1:7100",
                  .fsync = "batch",
                  .write_buffer = 32u << 20,
                  .log_retention = "min", /* snapshots feed who the log cannot */
                  .stop_timeout_ms = 10000,
                  .backfill_max_write_p99_ms = 50,
                  .backfill_chunk = 1000,
                  /* Room for a whole Put (16 MiB) and its envelope. */
                  .max_message_size = 20u << 20,
                  .max_streams = 1024,
                  .max_calls_per_client = 1024,
                  .max_deadline_ms = 300000,
                  .log_level = "info",
                  .log_format = "text"};
    sx_flags_file *file = NULL; /* cfg's strings may point into it: freed last */
    int rc = parse_args(argc, argv, &cfg, &file);
    if (rc >= 0)
        return rc;
    sx_crash_points_init();
    sx_delay_points_init();
    worker w = {0};
    sx_err err = {0};
    if (start(&cfg, &w, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "worker", "%s", err.msg);
        fprintf(stderr, "shardex-worker: %s\n", err.msg);
        stop(&w);
        sx_flags_file_free(file);
        return 1;
    }
    SX_LOG(SX_LOG_INFO, "worker", "serving id=%s port=%d advertise=%s", w.id, w.port, w.advertise);
    readiness ready = tell_readiness(&w, NOT_YET);
    int sig;
    while ((sig = sx_daemon_wait_signal(ready == NOT_YET ? 20 : 200)) == 0 || sig == SIGHUP) {
        if (sig == SIGHUP)
            sx_daemon_reload(w.auth);
        ready = tell_readiness(&w, ready);
    }
    SX_LOG(SX_LOG_INFO, "worker", "stopping signal=%d", sig);
    sx_daemon_notify("STOPPING=1\nSTATUS=stopping (signal %d): handing over its roles", sig);
    hand_over(&w, cfg.stop_timeout_ms);
    stop(&w);
    sx_flags_file_free(file);
    return 0;
}
