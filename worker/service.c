/* service.c: the worker's RPC surface in one table: every service, method,
 * handler and execution pool. Handlers live next to what they serve
 * (router.c, query.c, replservice.c, ixservice.c, adminservice.c); adding a
 * method is a handler there and a row here.
 *
 * Pools (rpc.h): INLINE runs on the completion-queue thread and must never
 * block; BLOCKING is work that makes progress by itself (fsync, LevelDB);
 * WAITING waits for an offset or a watermark; ROUTING waits for other calls,
 * possibly to this same worker. Nothing waits on its own pool: a router's
 * calls are served by BLOCKING or WAITING handlers or by the replicas'
 * threads, a WAITING handler's offset by the appender's applies.
 */
#include "service.h"

#include "adminservice.h"
#include "ixservice.h"
#include "query.h"
#include "replservice.h"
#include "router.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#define SHARDEX (&shardex__v1__shardex__descriptor)
#define REPLICATION (&shardex__internal__v1__replication__descriptor)
#define INDEX (&shardex__internal__v1__index__descriptor)
#define ADMIN (&shardex__internal__v1__worker_admin__descriptor)

typedef struct row {
    const ProtobufCServiceDescriptor *svc;
    sx_rpc_method m;
} row;

static const row worker_methods[] = {
    /* shardex.v1.Shardex, the client contract: any worker takes any call. */
    {SHARDEX, {"Put", sx_router_put, SX_RPC_ROUTING}},       /* to each partition's leader */
    {SHARDEX, {"Delete", sx_router_delete, SX_RPC_ROUTING}}, /* likewise */
    {SHARDEX, {"Get", sx_router_get, SX_RPC_ROUTING}},       /* to the id's leader */
    {SHARDEX, {"Query", sx_query_on_query, SX_RPC_ROUTING}}, /* plan, fan out, merge */
    {SHARDEX, {"ClusterStatus", sx_adminservice_forward, SX_RPC_ROUTING}},    /* coordinator */
    {SHARDEX, {"CreateIndex", sx_adminservice_create_index, SX_RPC_ROUTING}}, /* samples first */
    {SHARDEX, {"DropIndex", sx_adminservice_forward, SX_RPC_ROUTING}},
    {SHARDEX, {"ListIndexes", sx_adminservice_forward, SX_RPC_ROUTING}},
    {SHARDEX, {"DrainWorker", sx_adminservice_forward, SX_RPC_ROUTING}},
    {SHARDEX, {"RemoveWorker", sx_adminservice_forward, SX_RPC_ROUTING}},
    {SHARDEX, {"SplitIndex", sx_adminservice_forward, SX_RPC_ROUTING}},
    {SHARDEX, {"SaltIndex", sx_adminservice_forward, SX_RPC_ROUTING}},
    /* Replication, between workers. */
    {REPLICATION, {"Append", sx_replservice_append, SX_RPC_BLOCKING}}, /* fsync */
    {REPLICATION, {"Write", sx_replservice_write, SX_RPC_INLINE}},     /* deferred reply */
    {REPLICATION, {"Read", sx_replservice_read, SX_RPC_WAITING}},      /* for an offset */
    {REPLICATION, {"ReadMany", sx_replservice_read_many, SX_RPC_WAITING}},
    {REPLICATION, {"Snapshot", sx_replservice_snapshot, SX_RPC_BLOCKING}}, /* LevelDB reads */
    /* Index, between workers and from `shardex verify`. */
    {INDEX, {"Ship", sx_ixservice_ship, SX_RPC_BLOCKING}},           /* LevelDB write */
    {INDEX, {"ScanLocal", sx_ixservice_scan_local, SX_RPC_WAITING}}, /* for an offset */
    {INDEX, {"ScanTerm", sx_ixservice_scan_term, SX_RPC_WAITING}},   /* for a watermark */
    {INDEX, {"Digest", sx_ixservice_digest, SX_RPC_BLOCKING}},       /* a scan */
    /* WorkerAdmin, for operators, checkers and tests. */
    {ADMIN, {"GetMap", sx_adminservice_get_map, SX_RPC_INLINE}},
    {ADMIN, {"Status", sx_adminservice_status, SX_RPC_INLINE}},
    {ADMIN, {"ReadLog", sx_adminservice_read_log, SX_RPC_BLOCKING}},
    {ADMIN, {"ScanDocs", sx_adminservice_scan_docs, SX_RPC_BLOCKING}},
    {ADMIN, {"SetFaults", sx_adminservice_set_faults, SX_RPC_INLINE}},
    {ADMIN, {"RefreshMap", sx_adminservice_refresh_map, SX_RPC_INLINE}},
};

/* The handlers' histograms (service.h), next to the table of handlers. */
static void add_metrics(sx_worker_ctx *w)
{
    static const char *const method[] = {"method"}, *const mode[] = {"mode"};
    sx_metric_family *ack = sx_metrics_family(
        w->metrics, SX_METRIC_HISTOGRAM, "shardex_write_ack_seconds",
        "Time from the start of a Put or Delete on this worker to its acknowledgement "
        "(every document committed on min-isr replicas and applied by its leader), successful "
        "requests only, by method",
        method, 1, sx_metrics_latency_buckets, sx_metrics_latency_nbuckets);
    sx_metric_family *query = sx_metrics_family(
        w->metrics, SX_METRIC_HISTOGRAM, "shardex_query_seconds",
        "Time this worker's Query handler took (plan, scans, merge, documents), successful "
        "queries only, by the mode served (local: every log partition's leader; global: the "
        "term partitions' owners)",
        mode, 1, sx_metrics_latency_buckets, sx_metrics_latency_nbuckets);
    /* The writes other workers route to partitions this worker leads: the
     * backfill's throttle watches them too (a leader's disk serves them). */
    w->m.lead_write = sx_metrics_histogram(
        w->metrics, "shardex_lead_write_seconds",
        "Time from a Replication.Write's arrival at this worker, the log partition's leader, to "
        "its answer (committed on min-isr replicas and applied): the writes other workers routed "
        "here, successful ones only",
        sx_metrics_latency_buckets, sx_metrics_latency_nbuckets);
    w->m.put_ack = sx_metric_histogram(ack, (const char *[]){"put"});
    w->m.delete_ack = sx_metric_histogram(ack, (const char *[]){"delete"});
    w->m.query_local = sx_metric_histogram(query, (const char *[]){"local"});
    w->m.query_global = sx_metric_histogram(query, (const char *[]){"global"});
    w->m.query_partial = sx_metrics_counter(
        w->metrics, "shardex_query_partial_total",
        "Queries this worker answered partial: some log partitions did not answer within the "
        "query's budget_ms");
    w->m.follower_scans = sx_metrics_counter(
        w->metrics, "shardex_query_follower_scans_total",
        "Log partitions of this worker's queries that a follower answered (hedged reads with "
        "max_staleness_ms)");
}

sx_status sx_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err)
{
    add_metrics(w);
    sx_status st = SX_OK;
    for (size_t i = 0; st == SX_OK && i < sizeof(worker_methods) / sizeof(worker_methods[0]); i++)
        st = sx_rpc_server_add_service(srv, worker_methods[i].svc, &worker_methods[i].m, 1, w, err);
    return st;
}
