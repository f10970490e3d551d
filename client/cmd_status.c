/* cmd_status.c: `shardex status`: the cluster as the coordinator sees it, as
 * tables: workers, log partitions, term partitions, indexes. */
#include "cmd.h"

#include "alarms.h"
#include "mem.h"
#include "out.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct status_cfg {
    sx_cmd_common common;
    bool check;
    int64_t max_lag;
    uint64_t lease_warn_ms;
} status_cfg;

static const sx_flag status_flags[] = {
    SX_CMD_COMMON_FLAGS(status_cfg),
    {.name = "check",
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(status_cfg, check, bool),
     .help = "print only the alarms and exit 1 while one is on (a monitoring probe)"},
    {.name = "max-lag",
     .type = SX_FLAG_INT,
     .offset = SX_FLAG_OFFSET(status_cfg, max_lag, int64_t),
     .metavar = "OFFSETS",
     .min = 0,
     .max = INT64_MAX,
     .help = "a term partition further behind than this is an alarm"},
    {.name = "lease-warn",
     .type = SX_FLAG_DURATION_MS,
     .offset = SX_FLAG_OFFSET(status_cfg, lease_warn_ms, uint64_t),
     .help = "a live worker with less lease left than this is an alarm"},
};

static const sx_flags_spec status_spec = {
    .prog = "shardex status",
    .synopsis = "[FLAGS]",
    .description =
        "Shows the cluster as the coordinator last told the worker asked: the settings (P log\n"
        "partitions, replication R, min ISR) and a summary, then\n"
        "  control plane    where the metadata lives (embedded, or etcd), the coordinators\n"
        "                   (which leads, its epoch), and with etcd each member's health\n"
        "  workers          id, address, alive (lease not expired), lease left, state (active;\n"
        "                   draining: shardex worker drain, its roles moving off; drained:\n"
        "                   draining and holding nothing, safe to stop; removed: shardex worker\n"
        "                   remove), replicas held, partitions led, term partitions owned\n"
        "  moves            replica moves in flight (at most the coordinator's --max-moves):\n"
        "                   partition, from, to, whether `to` is in sync yet\n"
        "  log partitions   p, epoch, leader, ISR (worker ids, cut to the shortest prefix that\n"
        "                   tells them apart, 6 characters at least), each replica's log end "
        "offset\n"
        "                   and applied offset (LEO/applied), commit offset, available (a live\n"
        "                   leader and at least min ISR in sync)\n"
        "  term partitions  index, t, owner, epoch, ready (rebuilt and serving), lag (offsets\n"
        "                   committed but not yet applied there, summed over log partitions)\n"
        "  indexes          as `shardex index list`\n"
        "\n"
        "  alarms           an etcd member that does not answer a linearizable read within\n"
        "                   a second, a dead worker (not a drained or removed one) or one near\n"
        "                   lease expiry (--lease-warn), a log\n"
        "                   partition without a leader, unavailable or under-replicated, a term\n"
        "                   partition without an owner, not ready or lagging (--max-lag)\n"
        "\n"
        "--json prints a ClusterStatusResponse (proto field names). --check prints only the\n"
        "alarms (--json: {\"alarms\": [...]}), for a monitoring probe. Exit status: 0 shown (a\n"
        "degraded cluster too: read the alarms), or --check with no alarm; 1 --check with an\n"
        "alarm on; 2 usage; 3 the cluster could not answer.",
    .flags = status_flags,
    .count = sizeof(status_flags) / sizeof(status_flags[0]),
};

/* Worker ids in the partition tables are cut to their first `idlen`
 * characters (at least MIN_ID_CHARS), the shortest prefix that still tells
 * every worker apart, as git shortens hashes: the tables stay narrow. */
#define MIN_ID_CHARS 6

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

static bool prefixes_unique(const Shardex__V1__ClusterStatusResponse *r, size_t len)
{
    for (size_t i = 0; i < r->n_workers; i++)
        for (size_t k = i + 1; k < r->n_workers; k++)
            if (strncmp(or_dash(r->workers[i]->id), or_dash(r->workers[k]->id), len) == 0 &&
                strcmp(or_dash(r->workers[i]->id), or_dash(r->workers[k]->id)) != 0)
                return false;
    return true;
}

static int short_id_len(const Shardex__V1__ClusterStatusResponse *r)
{
    size_t longest = 0;
    for (size_t i = 0; i < r->n_workers; i++)
        if (strlen(or_dash(r->workers[i]->id)) > longest)
            longest = strlen(or_dash(r->workers[i]->id));
    size_t len = MIN_ID_CHARS;
    while (len < longest && !prefixes_unique(r, len))
        len++;
    return (int)len;
}

static void print_workers(const Shardex__V1__ClusterStatusResponse *r)
{
    printf("\nworkers\n");
    if (!r->n_workers) {
        printf("  none\n");
        return;
    }
    sx_table *t = sx_table_new();
    sx_table_col(t, "ID", SX_ALIGN_LEFT);
    sx_table_col(t, "ADDRESS", SX_ALIGN_LEFT);
    sx_table_col(t, "ALIVE", SX_ALIGN_LEFT);
    sx_table_col(t, "LEASE LEFT", SX_ALIGN_RIGHT);
    sx_table_col(t, "STATE", SX_ALIGN_LEFT);
    sx_table_col(t, "REPLICAS", SX_ALIGN_RIGHT);
    sx_table_col(t, "LEADS", SX_ALIGN_RIGHT);
    sx_table_col(t, "TERMS", SX_ALIGN_RIGHT);
    for (size_t i = 0; i < r->n_workers; i++) {
        const Shardex__V1__WorkerStatus *w = r->workers[i];
        sx_table_cell(t, "%s", or_dash(w->id));
        sx_table_cell(t, "%s", or_dash(w->address));
        sx_table_cell(t, "%s", w->alive ? "yes" : w->removed || w->drained ? "no" : "NO");
        sx_table_cell(t, "%" PRIu64 " ms", w->lease_remaining_ms);
        sx_table_cell(t, "%s", sx_cmd_worker_state(w));
        sx_table_cell(t, "%" PRIu32, w->replicas);
        sx_table_cell(t, "%" PRIu32, w->leaders);
        sx_table_cell(t, "%" PRIu32, w->term_partitions);
    }
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
}

static void print_moves(const Shardex__V1__ClusterStatusResponse *r)
{
    printf("\nmoves in flight (at most %" PRIu32 ")\n", r->max_moves);
    if (!r->n_moves) {
        printf("  none\n");
        return;
    }
    sx_table *t = sx_table_new();
    sx_table_col(t, "P", SX_ALIGN_RIGHT);
    sx_table_col(t, "FROM", SX_ALIGN_LEFT);
    sx_table_col(t, "TO", SX_ALIGN_LEFT);
    sx_table_col(t, "TO IN SYNC", SX_ALIGN_LEFT);
    for (size_t i = 0; i < r->n_moves; i++) {
        const Shardex__V1__MoveStatus *m = r->moves[i];
        sx_table_cell(t, "%" PRIu32, m->partition);
        sx_table_cell(t, "%s", or_dash(m->from));
        sx_table_cell(t, "%s", or_dash(m->to));
        sx_table_cell(t, "%s", m->to_in_sync ? "yes" : "catching up");
    }
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
}

static void print_log_partitions(const Shardex__V1__ClusterStatusResponse *r, int idlen)
{
    printf("\nlog partitions (worker ids cut to %d characters)\n", idlen);
    if (!r->n_log_partitions) {
        printf("  none\n");
        return;
    }
    sx_table *t = sx_table_new();
    sx_table_col(t, "P", SX_ALIGN_RIGHT);
    sx_table_col(t, "EPOCH", SX_ALIGN_RIGHT);
    sx_table_col(t, "LEADER", SX_ALIGN_LEFT);
    sx_table_col(t, "ISR", SX_ALIGN_LEFT);
    sx_table_col(t, "COMMIT", SX_ALIGN_RIGHT);
    sx_table_col(t, "AVAILABLE", SX_ALIGN_LEFT);
    sx_table_col(t, "REPLICAS (LEO/APPLIED)", SX_ALIGN_LEFT);
    sx_buf isr = {0}, reps = {0};
    for (size_t i = 0; i < r->n_log_partitions; i++) {
        const Shardex__V1__LogPartitionStatus *p = r->log_partitions[i];
        sx_buf_reset(&isr);
        sx_buf_reset(&reps);
        for (size_t k = 0; k < p->n_replicas; k++) {
            const Shardex__V1__ReplicaStatus *rep = p->replicas[k];
            const char *id = or_dash(rep->worker_id);
            if (rep->in_sync) {
                if (isr.len)
                    sx_buf_push(&isr, ',');
                sx_buf_append(&isr, id, strnlen(id, (size_t)idlen));
            }
            char one[256];
            int n = snprintf(one, sizeof(one), "%s%.*s %" PRIu64 "/%" PRIu64, reps.len ? "  " : "",
                             idlen, id, rep->log_end_offset, rep->applied_offset);
            sx_buf_append(&reps, one, n > 0 ? strnlen(one, sizeof(one)) : 0);
        }
        sx_buf_push(&isr, '\0');
        sx_buf_push(&reps, '\0');
        sx_table_cell(t, "%" PRIu32, p->partition);
        sx_table_cell(t, "%" PRIu64, p->epoch);
        sx_table_cell(t, "%.*s", idlen, or_dash(p->leader));
        sx_table_cell(t, "%s", isr.len > 1 ? (char *)isr.data : "-");
        sx_table_cell(t, "%" PRIu64, p->commit_offset);
        sx_table_cell(t, "%s", p->available ? "yes" : "NO");
        sx_table_cell(t, "%s", (char *)reps.data);
    }
    sx_buf_free(&isr);
    sx_buf_free(&reps);
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
}

static void print_term_partitions(const Shardex__V1__ClusterStatusResponse *r, int idlen)
{
    printf("\nterm partitions\n");
    if (!r->n_term_partitions) {
        printf("  none (no global index)\n");
        return;
    }
    sx_table *t = sx_table_new();
    sx_table_col(t, "INDEX", SX_ALIGN_LEFT);
    sx_table_col(t, "T", SX_ALIGN_RIGHT);
    sx_table_col(t, "OWNER", SX_ALIGN_LEFT);
    sx_table_col(t, "EPOCH", SX_ALIGN_RIGHT);
    sx_table_col(t, "READY", SX_ALIGN_LEFT);
    sx_table_col(t, "LAG", SX_ALIGN_RIGHT);
    /* As its owner last reported: the count it splits on (--term-split-entries)
     * and its load (--term-split-load: writes + reads per second). */
    sx_table_col(t, "ENTRIES", SX_ALIGN_RIGHT);
    sx_table_col(t, "WRITES/S", SX_ALIGN_RIGHT);
    sx_table_col(t, "READS/S", SX_ALIGN_RIGHT);
    for (size_t i = 0; i < r->n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *tp = r->term_partitions[i];
        sx_table_cell(t, "%s", or_dash(tp->index));
        sx_table_cell(t, "%" PRIu32, tp->term_partition);
        sx_table_cell(t, "%.*s", idlen, or_dash(tp->owner));
        sx_table_cell(t, "%" PRIu64, tp->epoch);
        sx_table_cell(t, "%s", tp->ready ? "yes" : "NO");
        sx_table_cell(t, "%" PRIu64, tp->lag_offsets);
        sx_table_cell(t, "%" PRIu64, tp->entries);
        sx_table_cell(t, "%.1f", tp->writes_per_s);
        sx_table_cell(t, "%.1f", tp->reads_per_s);
    }
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
}

static void print_control_plane(const Shardex__V1__ClusterStatusResponse *r)
{
    printf("\ncontrol plane: metadata %s, leader epoch %" PRIu64 "\n", or_dash(r->metadata),
           r->coordinator_epoch);
    sx_table *t = sx_table_new();
    sx_table_col(t, "COORDINATOR", SX_ALIGN_LEFT);
    sx_table_col(t, "ROLE", SX_ALIGN_LEFT);
    for (size_t i = 0; i < r->n_coordinators; i++) {
        sx_table_cell(t, "%s", or_dash(r->coordinators[i]->address));
        sx_table_cell(t, "%s", r->coordinators[i]->leader ? "leader" : "follower");
    }
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
    if (r->n_etcd_members == 0)
        return;
    t = sx_table_new();
    sx_table_col(t, "ETCD MEMBER", SX_ALIGN_LEFT);
    sx_table_col(t, "HEALTHY", SX_ALIGN_LEFT);
    sx_table_col(t, "MS", SX_ALIGN_RIGHT);
    sx_table_col(t, "ERROR", SX_ALIGN_LEFT);
    for (size_t i = 0; i < r->n_etcd_members; i++) {
        const Shardex__V1__EtcdMemberStatus *m = r->etcd_members[i];
        sx_table_cell(t, "%s", or_dash(m->endpoint));
        sx_table_cell(t, "%s", m->healthy ? "yes" : "NO");
        sx_table_cell(t, "%" PRIu32, m->latency_ms);
        sx_table_cell(t, "%s", or_dash(m->error));
    }
    sx_table_print(t, stdout, 2, true);
    sx_table_free(t);
}

static void print_status(const Shardex__V1__ClusterStatusResponse *r)
{
    size_t alive = 0, avail = 0, ready = 0;
    size_t removed = 0, draining = 0;
    for (size_t i = 0; i < r->n_workers; i++) {
        alive += r->workers[i]->alive;
        removed += r->workers[i]->removed;
        draining += r->workers[i]->draining;
    }
    for (size_t i = 0; i < r->n_log_partitions; i++)
        avail += r->log_partitions[i]->available;
    for (size_t i = 0; i < r->n_term_partitions; i++)
        ready += r->term_partitions[i]->ready;
    printf("cluster: %" PRIu32 " log partitions, replication %" PRIu32 ", min ISR %" PRIu32
           ", map version %" PRIu64 "\n",
           r->partitions, r->replication, r->min_isr, r->map_version);
    printf("%zu/%zu workers alive, %zu/%zu log partitions available, %zu/%zu term partitions "
           "ready, %zu indexes\n",
           alive, r->n_workers - removed, avail, r->n_log_partitions, ready, r->n_term_partitions,
           r->n_indexes);
    if (draining || removed || r->n_moves)
        printf("%zu workers draining, %zu removed, %zu replica moves in flight\n", draining,
               removed, r->n_moves);
    print_control_plane(r);
    print_workers(r);
    print_moves(r);
    int idlen = short_id_len(r);
    print_log_partitions(r, idlen);
    print_term_partitions(r, idlen);
    printf("\nindexes\n");
    sx_cmd_index_table(r->indexes, r->n_indexes, 2);
}

static void print_alarm(void *arg, const char *line)
{
    printf("%s%s\n", (const char *)arg, line);
}

static void json_alarm(void *arg, const char *line)
{
    json_array_append_new(arg, json_string(line));
}

/* The alarms (alarms.h), as a section after the tables, or alone (--check,
 * as text or JSON); returns how many. */
static size_t report_alarms(const status_cfg *cfg, const Shardex__V1__ClusterStatusResponse *r)
{
    sx_alarm_opts o = {.max_lag = (uint64_t)cfg->max_lag, .lease_warn_ms = cfg->lease_warn_ms};
    if (cfg->check && cfg->common.json) {
        json_t *list = json_array();
        size_t n = sx_alarms(r, &o, json_alarm, list);
        json_t *j = json_object();
        json_object_set_new(j, "alarms", list);
        sx_cmd_print_json(j);
        return n;
    }
    if (!cfg->check)
        printf("\nalarms\n");
    size_t n = sx_alarms(r, &o, print_alarm, cfg->check ? "ALARM: " : "  ");
    if (n == 0)
        printf(cfg->check ? "ok: no alarm\n" : "  none\n");
    return n;
}

int sx_cmd_status(const sx_cli *cli, int argc, char **argv)
{
    status_cfg cfg = {.common = sx_cmd_common_init(cli), .max_lag = 10000, .lease_warn_ms = 500};
    status_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("status", &status_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__ClusterStatusResponse *r = NULL;
    if (a.npos) {
        code = sx_cmd_usage_error("status", "unexpected argument '%s'", a.pos[0]);
        goto out;
    }
    code = sx_cmd_connect("status", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_status(cl, &r, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("status", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.check) {
        code = report_alarms(&cfg, r) ? SX_EXIT_DIFFERENT : SX_EXIT_OK; /* 1: an alarm is on */
    } else if (cfg.common.json) {
        sx_cmd_print_json(sx_out_pb_json(&r->base));
    } else {
        print_status(r);
        report_alarms(&cfg, r);
    }
out:
    sx_client_free(r);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}
