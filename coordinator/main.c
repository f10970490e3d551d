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
    const char *data_dir;
    const char *port_file;
    uint32_t partitions;
    uint32_t replication;
    uint32_t min_isr;
    uint32_t term_partitions;
    uint64_t lease_ms;
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
    SX_DAEMON_LOG_FLAGS(config),
    SX_METRICS_HTTP_FLAGS(config),
    SX_DAEMON_TLS_FLAGS(config),
    SX_DAEMON_LIMIT_FLAGS(config),
    {.name = "metadata",
     .type = SX_FLAG_STRING,
     .offset = OFF(metadata, const char *),
     .metavar = "etcd://HOST:PORT[,...]",
     .help = "keep the cluster's metadata in etcd instead of data-dir: several coordinators "
             "with the same metadata and cluster elect one leader; the others wait to take "
             "over (docs/architecture.md)"},
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
             "stops answering etcd; it stops acting a third of it before"},
};
enum { F_LISTEN, F_DATA_DIR, F_PORT_FILE, F_PARTITIONS, F_REPLICATION, F_MIN_ISR, F_TERM };

static const sx_flags_spec spec = {
    .prog = "shardex-coordinator",
    .synopsis = "--data-dir DIR [FLAGS]",
    .description = "The shardex control plane: registers workers, judges their leases, assigns "
                   "log and term partitions with epochs, keeps the index catalog. Cluster "
                   "settings (partitions, replication, min-isr, term-partitions) are fixed when "
                   "the data directory is created; a restart with different ones is refused.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
    .config = true,
};

/* Health checks: the one coordinator leads while it runs. */
static bool coordinator_serving(void *arg)
{
    (void)arg;
    return true;
}

static const char *const coordinator_services[] = {"shardex.internal.v1.Coordinator",
                                                   "shardex.v1.Shardex", NULL};
static const sx_health coordinator_health = {.services = coordinator_services,
                                             .serving = coordinator_serving};

/* With metadata in etcd: becomes the leader before serving anything, trying
 * again every half second while another coordinator leads (a follower does
 * not listen: workers find the leader among their --coordinator addresses).
 * 0: leading, *meta open; 1: stopped by a signal while following; -1: etcd
 * failed (err). */
static int campaign(const config *cfg, sx_meta **meta, sx_err *err)
{
    sx_meta_etcd_opts eo = {.endpoints = cfg->metadata,
                            .cluster = cfg->cluster,
                            .self = cfg->listen,
                            .ttl_s = (uint32_t)((cfg->metadata_lease_ms + 999) / 1000)};
    if (sx_meta_open_etcd(&eo, meta, err) != SX_OK)
        return -1;
    char was[300] = "";
    for (;;) {
        bool won = false;
        char leader[300];
        if (sx_meta_campaign(*meta, &won, leader, sizeof(leader), err) != SX_OK) {
            sx_meta_close(*meta);
            *meta = NULL;
            return -1;
        }
        if (won)
            return 0;
        if (strcmp(was, leader) != 0) {
            SX_LOG(SX_LOG_INFO, "coordinator", "following leader=%s cluster=%s", leader,
                   cfg->cluster);
            sx_daemon_notify("STATUS=following %s", leader);
            snprintf(was, sizeof(was), "%s", leader);
        }
        int sig = sx_daemon_wait_signal(500);
        if (sig == SIGTERM || sig == SIGINT) {
            sx_meta_close(*meta);
            *meta = NULL;
            return 1;
        }
    }
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
                  .cluster = "shardex",
                  .metadata_lease_ms = 5000,
                  .max_message_size = 4u << 20,
                  .max_streams = 1024,
                  .max_calls_per_client = 1024,
                  .max_deadline_ms = 300000,
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
    sx_meta *meta = NULL; /* etcd's, borrowed from c once open: its leadership */
    if (cfg.metadata) {
        int got = campaign(&cfg, &meta, &err);
        if (got != 0) {
            rc = got > 0 ? 0 : 1;
            goto done; /* a signal while following (rc 0), or etcd failed (1) */
        }
    } else if (!cfg.data_dir) {
        sx_err_set(&err, SX_INVALID_ARGUMENT, "data-dir: required unless metadata names etcd");
        goto fail;
    } else if (sx_mkdirs(cfg.data_dir, &err) != SX_OK) {
        goto fail;
    }
    sx_coord_opts o = {
        .data_dir = cfg.data_dir,
        .meta = meta,
        .settings = {cfg.partitions, cfg.replication, cfg.min_isr,
                     given[F_TERM] ? cfg.term_partitions : cfg.partitions},
        .given_partitions = given[F_PARTITIONS],
        .given_replication = given[F_REPLICATION],
        .given_min_isr = given[F_MIN_ISR],
        .given_term_partitions = given[F_TERM],
        .lease_ms = (uint32_t)cfg.lease_ms,
        .tick_ms = (uint32_t)tick,
    };
    if (sx_coord_open(&o, sx_clock_now_ms(), &c, &err) != SX_OK)
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
        sx_coord_service_add(srv, c, &err) != SX_OK ||
        sx_health_add(srv, &coordinator_health, &health, &err) != SX_OK ||
        sx_rpc_server_start(srv, &err) != SX_OK)
        goto fail;
    if (cfg.port_file &&
        sx_daemon_write_port_file(cfg.port_file, sx_rpc_server_port(srv), &err) != SX_OK)
        goto fail;
    sx_coord_metrics_add(metrics, c, cfg.data_dir);
    if (metrics && sx_metrics_http_start(metrics, cfg.metrics_listen, cfg.metrics_port_file, &http,
                                         &err) != SX_OK)
        goto fail;
    SX_LOG(SX_LOG_INFO, "coordinator", "serving port=%d", sx_rpc_server_port(srv));
    /* The one coordinator leads from its start: ready once it listens. */
    sx_daemon_notify("READY=1\nSTATUS=serving on port %d", sx_rpc_server_port(srv));

    int sig;
    while ((sig = sx_daemon_wait_signal(tick)) == 0 || sig == SIGHUP) {
        if (sig == SIGHUP)
            sx_daemon_reload(auth);
        if (meta && !sx_meta_leading(meta, sx_clock_now_ms())) {
            /* Before the etcd lease can run out: another coordinator may
             * lead then, and this one must not answer anything. */
            SX_LOG(SX_LOG_ERROR, "coordinator",
                   "stopping: the etcd lease is not surely ours any more epoch=%" PRId64,
                   sx_meta_epoch(meta));
            sx_daemon_notify("STOPPING=1\nSTATUS=lost the leadership (etcd lease)");
            rc = 1;
            goto done;
        }
        sx_coord_tick(c, sx_clock_now_ms());
    }
    SX_LOG(SX_LOG_INFO, "coordinator", "stopping signal=%d", sig);
    sx_daemon_notify("STOPPING=1\nSTATUS=stopping (signal %d)", sig);
    rc = 0;
    goto done;
fail:
    SX_LOG(SX_LOG_ERROR, "coordinator", "%s", err.msg);
    fprintf(stderr, "shardex-coordinator: %s\n", err.msg);
done:
    sx_metrics_http_stop(http); /* first: its collector reads c */
    sx_rpc_server_destroy(srv);
    sx_health_service_destroy(health);
    sx_coord_close(c);
    sx_rpc_wait_shutdown(2000);
    sx_metrics_destroy(metrics); /* last: the server counted into it */
    sx_auth_destroy(auth);
    sx_flags_file_free(file);
    return rc;
}
