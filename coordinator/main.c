/* shardex-coordinator: the control plane. Parses flags, opens the state,
 * serves RPCs, and judges leases on the main thread until SIGTERM/SIGINT. */
#include "auth.h"
#include "clock.h"
#include "coord.h"
#include "coord_metrics.h"
#include "daemon.h"
#include "flags.h"
#include "fsutil.h"
#include "health.h"
#include "log.h"
#include "meta.h"
#include "metrics_http.h"
#include "rpc.h"
#include "service.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct config {
    const char *listen;
    const char *advertise;
    const char *data_dir;
    const char *port_file;
    uint32_t partitions;
    uint32_t replication;
    uint32_t min_isr;
    uint32_t term_partitions;
    uint64_t lease_ms;
    uint32_t max_moves;
    int64_t term_split_entries;
    int64_t term_split_load;
    uint64_t term_split_load_window_ms;
    uint32_t hot_value_ways;
    const char *hot_value_share;
    int64_t hot_value_min_changes;
    double hot_share; /* hot_value_share, parsed (not a flag) */
    const char *log_level;
    const char *log_format;
    const char *metrics_listen;
    const char *metrics_port_file;
    const char *tls_cert, *tls_key, *tls_ca, *auth_tokens;
    uint64_t max_message_size, max_deadline_ms;
    uint32_t max_streams, max_calls_per_client;
    const char *metadata, *cluster;
    uint64_t metadata_lease_ms;
} config;

#define OFF(m, t) SX_FLAG_OFFSET(config, m, t)
static const sx_flag flags[] = {
    {.name = "listen",
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(listen, const char *),
     .help = "address to serve on (port 0: any free port, see --port-file)"},
    {.name = "advertise",
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(advertise, const char *),
     .help = "address workers and the other coordinators use to reach this one, as etcd "
             "records the leader (default: --listen with the bound port; 127.0.0.1 for a "
             "wildcard host)"},
    {.name = "data-dir",
     .type = SX_FLAG_STRING,
     .offset = OFF(data_dir, const char *),
     .metavar = "DIR",
     .help = "where the cluster metadata lives (created if missing); required unless "
             "metadata names etcd"},
    {.name = "port-file",
     .type = SX_FLAG_STRING,
     .offset = OFF(port_file, const char *),
     .metavar = "FILE",
     .help = "write the bound port here once serving"},
    {.name = "partitions",
     .type = SX_FLAG_UINT32,
     .offset = OFF(partitions, uint32_t),
     .help = "log partitions P (fixed when the data directory is created)",
     .min = 1,
     .max = SX_MAX_PARTITIONS},
    {.name = "replication",
     .type = SX_FLAG_UINT32,
     .offset = OFF(replication, uint32_t),
     .help = "replicas per log partition R (fixed at creation; a partition has min(R, live "
             "workers))",
     .min = 1,
     .max = 7},
    {.name = "min-isr",
     .type = SX_FLAG_UINT32,
     .offset = OFF(min_isr, uint32_t),
     .help = "in-sync replicas a write needs (fixed at creation)",
     .min = 1,
     .max = 7},
    {.name = "term-partitions",
     .type = SX_FLAG_UINT32,
     .offset = OFF(term_partitions, uint32_t),
     .help = "default term partitions M of a global index (fixed at creation; default: P)",
     .min = 1,
     .max = SX_MAX_TERM_PARTITIONS},
    {.name = "lease-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(lease_ms, uint64_t),
     .help = "worker lease: a worker silent this long is dead",
     .min = 50,
     .max = 600000},
    {.name = "max-moves",
     .type = SX_FLAG_UINT32,
     .offset = OFF(max_moves, uint32_t),
     .help = "replica moves in flight at once, cluster-wide (a joining worker's share, a "
             "drain): each adds a replica that copies its partition's log, then drops the old "
             "one",
     .min = 1,
     .max = SX_COORD_MAX_MOVES_LIMIT},
    {.name = "term-split-entries",
     .type = SX_FLAG_INT,
     .offset = OFF(term_split_entries, int64_t),
     .metavar = "N",
     .help = "split a range-partitioned index's term partition online at its median once its "
             "owner counts more than N entries (0: never; shardex index split does it by hand)",
     .min = 0,
     .max = 1000000000000},
    {.name = "term-split-load",
     .type = SX_FLAG_INT,
     .offset = OFF(term_split_load, int64_t),
     .metavar = "OPS",
     .help = "split a range-partitioned index's term partition online at its median once its "
             "load (index changes applied plus scans served per second, as its owner measures "
             "them over about 5 s) stays above OPS for --term-split-load-window (0: never); "
             "with --term-split-entries too, either starts a split",
     .min = 0,
     .max = 1000000000},
    {.name = "term-split-load-window",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(term_split_load_window_ms, uint64_t),
     .help = "how long a term partition's load must stay above --term-split-load, in every "
             "heartbeat of its owner, before it splits",
     .min = 0,
     .max = 3600000},
    {.name = "hot-value-ways",
     .type = SX_FLAG_UINT32,
     .offset = OFF(hot_value_ways, uint32_t),
     .metavar = "K",
     .help = "term partitions a salted hot value of a global index is spread over when shardex "
             "index salt gives no --ways (0: 8; at most the index's serving term partitions)",
     .min = 0,
     .max = 4096},
    {.name = "hot-value-share",
     .type = SX_FLAG_STRING,
     .offset = OFF(hot_value_share, const char *),
     .metavar = "S",
     .help = "salt a value of a global index by itself (spread it over --hot-value-ways term "
             "partitions) once it has this share of the index's recent changes, 0 < S <= 1, "
             "e.g. 0.05 (0: never; shardex index salt does it by hand)"},
    {.name = "hot-value-min-changes",
     .type = SX_FLAG_INT,
     .offset = OFF(hot_value_min_changes, int64_t),
     .metavar = "N",
     .help = "--hot-value-share acts only on an index with at least N recent changes counted "
             "(its log partitions' leaders count the last few thousand each)",
     .min = 1,
     .max = 1000000000},
    SX_DAEMON_LOG_FLAGS(config),
    SX_METRICS_HTTP_FLAGS(config),
    SX_DAEMON_TLS_FLAGS(config),
    SX_DAEMON_LIMIT_FLAGS(config),
    {.name = "metadata",
     .type = SX_FLAG_STRING,
     .offset = OFF(metadata, const char *),
     .metavar = "etcd://HOST:PORT[,...]",
     .help = "keep the cluster's metadata in etcd instead of data-dir: several coordinators "
             "with the same metadata and cluster elect one leader; the others listen too, "
             "answer with the leader's address, and take over when it goes "
             "(docs/architecture.md)"},
    {.name = "cluster",
     .type = SX_FLAG_STRING,
     .offset = OFF(cluster, const char *),
     .metavar = "NAME",
     .help = "the cluster's name in etcd: its keys are under /shardex/NAME/"},
    {.name = "metadata-lease",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(metadata_lease_ms, uint64_t),
     .min = 2000,
     .max = 600000,
     .help = "the leading coordinator's etcd lease: another takes over this long after it "
             "stops answering etcd; it steps down a third of it before and follows"},
};
enum {
    F_LISTEN,
    F_ADVERTISE,
    F_DATA_DIR,
    F_PORT_FILE,
    F_PARTITIONS,
    F_REPLICATION,
    F_MIN_ISR,
    F_TERM
};

static const sx_flags_spec spec = {
    .prog = "shardex-coordinator",
    .synopsis = "--data-dir DIR [FLAGS]",
    .description = "The shardex control plane: registers workers, judges their leases, assigns "
                   "log and term partitions with epochs, keeps the index catalog. Cluster "
                   "settings (partitions, replication, min-isr, term-partitions) are fixed when "
                   "the metadata is created (the data directory, or the cluster in etcd); a "
                   "restart with different ones is refused.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
    .config = true,
};

/* Health checks: SERVING while this coordinator leads (a follower is up but
 * answers nothing: NOT_SERVING). */
static bool coordinator_serving(void *arg)
{
    return sx_coord_front_leading(arg);
}

static const char *const coordinator_services[] = {"shardex.internal.v1.Coordinator",
                                                   "shardex.v1.Shardex", NULL};

/* With metadata in etcd: follows until it becomes the leader, answering
 * every call with the leader's address meanwhile (service.h). It campaigns
 * at once when the leader key goes (a watch), else every half second; an
 * etcd that fails (no quorum, a member down) is tried again as long as it
 * takes, with a fresh lease when the old one was lost: a follower never
 * gives up. 0: leading, *meta open; 1: stopped by a signal while following. */
static int campaign(const config *cfg, const char *self, sx_coord_front *front, sx_meta **meta)
{
    sx_meta_etcd_opts eo = {.endpoints = cfg->metadata,
                            .cluster = cfg->cluster,
                            .self = self,
                            .ttl_s = (uint32_t)((cfg->metadata_lease_ms + 999) / 1000)};
    char was[300] = "-", failed[SX_ERR_MSG_MAX] = "";
    uint64_t next_try = 0;
    for (;;) {
        uint64_t now = sx_clock_now_ms();
        if (now >= next_try || (*meta && sx_meta_vacant(*meta))) {
            next_try = now + 500;
            sx_err err = {0};
            bool won = false;
            char leader[300] = "";
            if (!*meta && sx_meta_open_etcd(&eo, meta, &err) != SX_OK)
                *meta = NULL;
            else if (sx_meta_campaign(*meta, &won, leader, sizeof(leader), &err) != SX_OK) {
                sx_meta_close(*meta); /* its lease may be gone: a new one next time */
                *meta = NULL;
            }
            if (won)
                return 0;
            if (err.code != SX_OK) {
                if (strcmp(failed, err.msg) != 0) /* once per kind of failure */
                    SX_LOG(SX_LOG_WARN, "coordinator", "etcd: %s; trying again", err.msg);
                snprintf(failed, sizeof(failed), "%s", err.msg);
            } else {
                failed[0] = '\0';
                sx_coord_front_follow(front, leader);
                if (strcmp(was, leader) != 0) {
                    SX_LOG(SX_LOG_INFO, "coordinator", "following leader=%s cluster=%s",
                           leader[0] ? leader : "(none yet)", cfg->cluster);
                    sx_daemon_notify("STATUS=following %s", leader[0] ? leader : "(none yet)");
                    snprintf(was, sizeof(was), "%s", leader);
                }
            }
        }
        sx_meta_maintain(*meta);
        int sig = sx_daemon_wait_signal(50);
        if (sig == SIGTERM || sig == SIGINT) {
            sx_meta_close(*meta); /* resigns nothing: it only had its registration */
            *meta = NULL;
            return 1;
        }
    }
}

/* Opens the coordinator's state: in data_dir, or in meta (etcd's, taken over). */
static sx_status open_coord(const config *cfg, const char *self, const bool *given, uint64_t tick,
                            sx_meta *meta, sx_coord **c, sx_err *err)
{
    sx_coord_opts o = {
        .data_dir = cfg->data_dir,
        .meta = meta,
        .address = self,
        .settings = {cfg->partitions, cfg->replication, cfg->min_isr,
                     given[F_TERM] ? cfg->term_partitions : cfg->partitions},
        .given_partitions = given[F_PARTITIONS],
        .given_replication = given[F_REPLICATION],
        .given_min_isr = given[F_MIN_ISR],
        .given_term_partitions = given[F_TERM],
        .lease_ms = (uint32_t)cfg->lease_ms,
        .tick_ms = (uint32_t)tick,
        .max_moves = cfg->max_moves,
        .term_split_entries = (uint64_t)cfg->term_split_entries,
        .term_split_load = (uint64_t)cfg->term_split_load,
        .term_split_load_window_ms = cfg->term_split_load_window_ms,
        .hot_value_ways = cfg->hot_value_ways,
        .hot_value_share = cfg->hot_share,
        .hot_value_min_changes = (uint64_t)cfg->hot_value_min_changes,
    };
    return sx_coord_open(&o, sx_clock_now_ms(), c, err);
}

int main(int argc, char **argv)
{
    sx_daemon_block_signals();
    sx_log_set_process("coordinator");
    config cfg = {.listen = "127.0.0.1:7000",
                  .partitions = 8,
                  .replication = 3,
                  .min_isr = 2,
                  .lease_ms = 2000,
                  .max_moves = SX_COORD_DEFAULT_MAX_MOVES,
                  .term_split_load_window_ms = 30000,
                  .cluster = "shardex",
                  .metadata_lease_ms = 5000,
                  .max_message_size = 4u << 20,
                  .max_streams = 1024,
                  .max_calls_per_client = 1024,
                  .max_deadline_ms = 300000,
                  .hot_value_share = "0",
                  .hot_value_min_changes = 1000,
                  .log_level = "info",
                  .log_format = "text"};
    config defaults = cfg;
    bool help = false;
    bool given[sizeof(flags) / sizeof(flags[0])];
    sx_flags_file *file = NULL; /* cfg's strings may point into it: freed last */
    sx_err err = {0};
    if (sx_flags_parse_given(&spec, &cfg, argc, argv, &help, NULL, given, &file, &err) != SX_OK) {
        fprintf(stderr, "shardex-coordinator: %s\nTry --help.\n", err.msg);
        return 2;
    }
    if (help) {
        sx_flags_usage(&spec, &defaults, stdout);
        return 0;
    }
    char *share_end = NULL;
    cfg.hot_share = strtod(cfg.hot_value_share, &share_end);
    if (!cfg.hot_value_share[0] || *share_end || !(cfg.hot_share >= 0 && cfg.hot_share <= 1)) {
        fprintf(stderr,
                "shardex-coordinator: --hot-value-share: \"%s\" is not a share in [0, 1]\n"
                "Try --help.\n",
                cfg.hot_value_share);
        return 2;
    }
    sx_daemon_set_logging(cfg.log_level, cfg.log_format);
    sx_flags_log_config(&spec, &cfg, "coordinator");
    if (file)
        SX_LOG(SX_LOG_INFO, "coordinator", "config file=%s", sx_flags_file_path(file));

    /* Judge leases often enough that detection costs little beyond the lease. */
    uint64_t tick = cfg.lease_ms / 10 > 20 ? cfg.lease_ms / 10 : 20;
    int rc = 1;
    sx_coord *c = NULL;
    sx_rpc_server *srv = NULL;
    sx_health_service *health = NULL;
    /* With --metrics-listen, else NULL: every metric a no-op. */
    sx_metrics *metrics = cfg.metrics_listen ? sx_metrics_create() : NULL;
    sx_metrics_http *http = NULL;
    sx_auth *auth = NULL;
    sx_meta *meta = NULL; /* etcd's, taken over by c once it leads */
    sx_coord_front *front = sx_coord_front_create();
    sx_health health_spec = {
        .services = coordinator_services, .serving = coordinator_serving, .arg = front};
    if (!cfg.metadata && !cfg.data_dir) {
        sx_err_set(&err, SX_INVALID_ARGUMENT, "data-dir: required unless metadata names etcd");
        goto fail;
    }
    /* The embedded store's one coordinator leads from its start: open before
     * listening, as always. With etcd it listens first, leading or not:
     * workers and tools are told who leads. */
    /* Its own address is known once it listens (port 0); the embedded store's
     * coordinator opens before that and is told then. */
    char self[300] = "";
    if (!cfg.metadata && (sx_mkdirs(cfg.data_dir, &err) != SX_OK ||
                          open_coord(&cfg, self, given, tick, NULL, &c, &err) != SX_OK))
        goto fail;
    sx_rpc_tls tls;
    bool secure = false;
    if (sx_daemon_security(cfg.tls_cert, cfg.tls_key, cfg.tls_ca, cfg.auth_tokens, &tls, &secure,
                           &auth, &err) != SX_OK)
        goto fail;
    sx_rpc_server_opts so = {.listen = cfg.listen,
                             .pool_threads = 4,
                             .max_message_bytes = cfg.max_message_size,
                             .max_streams_per_connection = cfg.max_streams,
                             .max_calls_per_client = cfg.max_calls_per_client,
                             .max_deadline_ms = cfg.max_deadline_ms,
                             .metrics = metrics,
                             .tls = secure ? &tls : NULL,
                             .authorize = secure ? sx_auth_authorize : NULL,
                             .authorize_arg = auth};
    if (sx_rpc_server_create(&so, &srv, &err) != SX_OK ||
        sx_coord_service_add(srv, front, &err) != SX_OK ||
        sx_health_add(srv, &health_spec, &health, &err) != SX_OK ||
        sx_rpc_server_start(srv, &err) != SX_OK)
        goto fail;
    if (cfg.port_file &&
        sx_daemon_write_port_file(cfg.port_file, sx_rpc_server_port(srv), &err) != SX_OK)
        goto fail;
    sx_daemon_advertise(cfg.listen, cfg.advertise, sx_rpc_server_port(srv), self, sizeof(self));
    if (c)
        sx_coord_set_address(c, self);
    SX_LOG(SX_LOG_INFO, "coordinator", "listening port=%d advertise=%s", sx_rpc_server_port(srv),
           self);
    sx_coord_metrics_add(metrics, front, cfg.metadata ? NULL : cfg.data_dir);
    if (metrics && sx_metrics_http_start(metrics, cfg.metrics_listen, cfg.metrics_port_file, &http,
                                         &err) != SX_OK)
        goto fail;
    if (cfg.metadata) /* up as a follower is up as designed: ready for systemd */
        sx_daemon_notify("READY=1\nSTATUS=following");
    int sig = 0;
    for (;;) { /* with etcd: follow, lead, and follow again when the lease is lost */
        sx_meta *leading = NULL; /* c's (closed by it, on failure too: resigned) */
        if (cfg.metadata) {
            if (campaign(&cfg, self, front, &meta) != 0)
                break; /* a signal while following */
            leading = meta;
            meta = NULL;
            sx_status st = open_coord(&cfg, self, given, tick, leading, &c, &err);
            if (st == SX_INVALID_ARGUMENT || st == SX_FAILED_PRECONDITION || st == SX_DATA_LOSS)
                goto fail; /* settings or metadata no coordinator can use: say so and stop */
            if (st != SX_OK) {
                SX_LOG(SX_LOG_WARN, "coordinator", "won but could not load: %s; following",
                       err.msg);
                continue;
            }
        }
        sx_coord_front_lead(front, c, leading);
        SX_LOG(SX_LOG_INFO, "coordinator", "serving port=%d epoch=%" PRIu64,
               sx_rpc_server_port(srv), sx_coord_epoch(c));
        sx_daemon_notify("READY=1\nSTATUS=serving on port %d as the leader",
                         sx_rpc_server_port(srv));
        while ((sig = sx_daemon_wait_signal(tick)) == 0 || sig == SIGHUP) {
            if (sig == SIGHUP)
                sx_daemon_reload(auth);
            sx_meta_maintain(leading);
            if (leading && !sx_meta_leading(leading, sx_clock_now_ms()))
                break;
            sx_coord_tick(c, sx_clock_now_ms());
        }
        if (sig != 0 && sig != SIGHUP)
            break;
        /* Before the etcd lease can run out: another coordinator may lead
         * then, and this one must not answer anything. It steps down,
         * forgets what it held (the next leader reads etcd), and follows. */
        SX_LOG(SX_LOG_ERROR, "coordinator",
               "stepping down: the etcd lease is not surely ours any more epoch=%" PRId64,
               sx_meta_epoch(leading));
        sx_daemon_notify("STATUS=lost the leadership (etcd lease): following");
        sx_coord_front_follow(front, "");
        sx_coord_close(c);
        c = NULL;
    }
    SX_LOG(SX_LOG_INFO, "coordinator", "stopping signal=%d", sig);
    sx_daemon_notify("STOPPING=1\nSTATUS=stopping");
    rc = 0;
    goto done;
fail:
    SX_LOG(SX_LOG_ERROR, "coordinator", "%s", err.msg);
    fprintf(stderr, "shardex-coordinator: %s\n", err.msg);
done:
    sx_metrics_http_stop(http); /* first: its collector reads c */
    sx_rpc_server_destroy(srv);
    sx_health_service_destroy(health);
    sx_coord_front_destroy(front);
    sx_coord_close(c);
    sx_meta_close(meta); /* a follower's, or one c never took */
    sx_rpc_wait_shutdown(2000);
    sx_metrics_destroy(metrics); /* last: the server counted into it */
    sx_auth_destroy(auth);
    sx_flags_file_free(file);
    return rc;
}
