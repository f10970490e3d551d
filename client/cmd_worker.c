/* cmd_worker.c: `shardex worker drain|undrain|remove`: taking a worker out of
 * the cluster (the coordinator's DrainWorker and RemoveWorker, admin role).
 * The moves themselves are the coordinator's (common/clustermap.h, "Moves");
 * this only asks, and with --wait polls ClusterStatus until the worker holds
 * nothing. */
#include "cmd.h"

#include "clock.h"
#include "out.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* How often drain --wait asks whether the worker is drained. */
#define WAIT_POLL_MS 250

const char *sx_cmd_worker_state(const Shardex__V1__WorkerStatus *w)
{
    return w->removed ? "removed" : w->drained ? "drained" : w->draining ? "draining" : "active";
}

/* ----------------------------------------------------------------- drain -- */

typedef struct drain_cfg {
    sx_cmd_common common;
    bool wait;
    bool cancel;
} drain_cfg;

static const sx_flag drain_flags[] = {
    {.name = "wait",
     .short_name = 'w',
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(drain_cfg, wait, bool),
     .help = "wait (up to --timeout-ms) until the worker holds nothing: safe to stop"},
    {.name = "cancel",
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(drain_cfg, cancel, bool),
     .help = "undrain instead (as `shardex worker undrain ID`)"},
    SX_CMD_COMMON_FLAGS(drain_cfg),
};

static const sx_flags_spec drain_spec = {
    .prog = "shardex worker drain",
    .synopsis = "ID [--wait] [--cancel] [FLAGS]",
    .description =
        "Drains the worker ID (its stable id, as `shardex status` lists it): it gets no new\n"
        "replica, leadership or term partition, and the coordinator moves everything it holds\n"
        "to the other workers: leaderships first (a new epoch each), term partitions, and each\n"
        "replica by adding one elsewhere, letting it catch up and join the ISR, then dropping\n"
        "this one (never below min ISR; at most the coordinator's --max-moves at a time). A\n"
        "drain is stored: it survives restarts of the worker and the coordinator. It is\n"
        "drained, safe to stop, when it holds nothing; a replica stays where no other worker\n"
        "can take it (fewer other workers than the replication factor).\n"
        "\n"
        "  shardex worker drain w3 --wait --timeout-ms 120000 && systemctl stop shardex-worker\n"
        "\n"
        "Prints the worker's state (draining or drained) and what it still holds. --json prints\n"
        "a DrainWorkerResponse {\"worker\": {...}}. Exit status: 0 asked (with --wait: drained);\n"
        "2 usage; 3 the cluster could not answer, or --wait ran out of time; 4 no worker has\n"
        "this id; 5 refused (a removed worker).",
    .flags = drain_flags,
    .count = sizeof(drain_flags) / sizeof(drain_flags[0]),
};

static const sx_flag undrain_flags[] = {
    SX_CMD_COMMON_FLAGS(drain_cfg),
};

static const sx_flags_spec undrain_spec = {
    .prog = "shardex worker undrain",
    .synopsis = "ID [FLAGS]",
    .description =
        "Undoes `shardex worker drain ID`: the worker may take replicas, leaderships and term\n"
        "partitions again, and the coordinator's balancing moves its share back to it (at most\n"
        "--max-moves replica moves at a time). Moves in flight off it finish or are balanced\n"
        "back; nothing is lost either way.\n"
        "\n"
        "Prints the worker's state. --json prints a DrainWorkerResponse {\"worker\": {...}}.\n"
        "Exit status: 0 asked; 2 usage; 3 the cluster could not answer; 4 no worker has this\n"
        "id; 5 refused (a removed worker).",
    .flags = undrain_flags,
    .count = sizeof(undrain_flags) / sizeof(undrain_flags[0]),
};

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void print_worker(const Shardex__V1__WorkerStatus *w)
{
    printf("worker %s: %s, %s; holds %" PRIu32 " replicas, leads %" PRIu32
           " log partitions, owns %" PRIu32 " term partitions%s\n",
           w->id, sx_cmd_worker_state(w), w->alive ? "alive" : "dead", w->replicas, w->leaders,
           w->term_partitions, w->drained ? ": safe to stop" : "");
}

/* Asks again (DrainWorker is idempotent and answers the status) until the
 * worker is drained; *r is the last answer. */
static sx_status wait_drained(sx_client *cl, const char *id, uint64_t timeout_ms,
                              Shardex__V1__DrainWorkerResponse **r, sx_err *err)
{
    uint64_t deadline = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        if ((*r)->worker && (*r)->worker->drained)
            return SX_OK;
        if (sx_clock_now_ms() + WAIT_POLL_MS > deadline) {
            const Shardex__V1__WorkerStatus *w = (*r)->worker;
            return sx_err_set(err, SX_DEADLINE_EXCEEDED,
                              "worker %s still holds %" PRIu32 " replicas, leads %" PRIu32
                              " and owns %" PRIu32 " term partitions after %" PRIu64 " ms",
                              id, w ? w->replicas : 0, w ? w->leaders : 0,
                              w ? w->term_partitions : 0, timeout_ms);
        }
        sleep_ms(WAIT_POLL_MS);
        sx_client_free(*r);
        *r = NULL;
        sx_status st = sx_client_drain_worker(cl, id, false, r, err);
        if (st != SX_OK)
            return st;
    }
}

static int drain_run(const sx_cli *cli, int argc, char **argv, const char *cmd, bool undrain)
{
    drain_cfg cfg = {.common = sx_cmd_common_init(cli)};
    drain_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse(cmd, undrain ? &undrain_spec : &drain_spec, &cfg, &defaults, argc, argv,
                            NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__DrainWorkerResponse *r = NULL;
    bool cancel = undrain || cfg.cancel;
    if (a.npos != 1 || !*a.pos[0]) {
        code = sx_cmd_usage_error(cmd, a.npos > 1 ? "one worker ID at a time"
                                                  : "the worker ID is required");
        goto out;
    }
    if (cancel && cfg.wait) {
        code = sx_cmd_usage_error(cmd, "--wait waits for a drain; it does not go with --cancel");
        goto out;
    }
    code = sx_cmd_connect(cmd, &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_drain_worker(cl, a.pos[0], cancel, &r, &err);
    if (st == SX_OK && cfg.wait)
        st = wait_drained(cl, a.pos[0], cfg.common.timeout_ms, &r, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail(cmd, &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json)
        sx_cmd_print_json(sx_out_pb_json(&r->base));
    else if (r->worker)
        print_worker(r->worker);
out:
    sx_client_free(r);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

static int worker_drain(const sx_cli *cli, int argc, char **argv)
{
    return drain_run(cli, argc, argv, "worker drain", false);
}

static int worker_undrain(const sx_cli *cli, int argc, char **argv)
{
    return drain_run(cli, argc, argv, "worker undrain", true);
}

/* ---------------------------------------------------------------- remove -- */

typedef struct remove_cfg {
    sx_cmd_common common;
    bool force;
} remove_cfg;

static const sx_flag remove_flags[] = {
    {.name = "force",
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(remove_cfg, force, bool),
     .help = "remove it even where it is the only replica known to hold a partition's "
             "committed entries: those are lost"},
    SX_CMD_COMMON_FLAGS(remove_cfg),
};

static const sx_flags_spec remove_spec = {
    .prog = "shardex worker remove",
    .synopsis = "ID [--force] [FLAGS]",
    .description =
        "Forgets the dead worker ID for good: it leaves every partition's replicas, ISR and\n"
        "eligible leaders, and its replicas are re-created on the other workers (they copy the\n"
        "log from the partition's leader). A live worker is refused: stop it first (or drain\n"
        "it, which loses nothing). If the same id registers again later it joins as a new,\n"
        "empty worker.\n"
        "\n"
        "Where it is the only replica known to hold a partition's committed entries (the last\n"
        "of its ISR, or of its eligible leaders, e.g. with replication 1), removing it would\n"
        "lose them, so it is refused, naming those partitions. --force removes it anyway: each\n"
        "such partition continues from what its other replicas hold (they may miss\n"
        "acknowledged writes), or empty when it has no other replica; the answer lists them.\n"
        "\n"
        "--json prints a RemoveWorkerResponse {\"lost_partitions\": [...]}. Exit status: 0\n"
        "removed (or already removed); 2 usage; 3 the cluster could not answer; 4 no worker\n"
        "has this id; 5 refused (alive, or the only holder without --force).",
    .flags = remove_flags,
    .count = sizeof(remove_flags) / sizeof(remove_flags[0]),
};

static int worker_remove(const sx_cli *cli, int argc, char **argv)
{
    remove_cfg cfg = {.common = sx_cmd_common_init(cli)};
    remove_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("worker remove", &remove_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__RemoveWorkerResponse *r = NULL;
    if (a.npos != 1 || !*a.pos[0]) {
        code = sx_cmd_usage_error("worker remove", a.npos > 1 ? "one worker ID at a time"
                                                              : "the worker ID is required");
        goto out;
    }
    code = sx_cmd_connect("worker remove", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_remove_worker(cl, a.pos[0], cfg.force, &r, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("worker remove", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json) {
        sx_cmd_print_json(sx_out_pb_json(&r->base));
    } else {
        printf("removed worker %s", a.pos[0]);
        if (r->n_lost_partitions) {
            printf("; committed entries lost in partitions");
            for (size_t i = 0; i < r->n_lost_partitions; i++)
                printf("%s%" PRIu32, i ? "," : " ", r->lost_partitions[i]);
        }
        printf("\n");
    }
out:
    sx_client_free(r);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ---------------------------------------------------------------- worker -- */

typedef sx_cmd_plain plain_cfg;

static const sx_flag plain_flags[] = {
    SX_CMD_COMMON_FLAGS(plain_cfg),
};

static const sx_cmd_sub subs[] = {
    {"drain", worker_drain},
    {"undrain", worker_undrain},
    {"remove", worker_remove},
};

static const sx_flags_spec worker_spec = {
    .prog = "shardex worker",
    .synopsis = "drain|undrain|remove ID [FLAGS]",
    .description = "Takes workers out of the cluster (admin role). `shardex worker SUBCOMMAND "
                   "--help`\n"
                   "describes each:\n"
                   "  drain ID [--wait]   move everything off a worker, then it is safe to stop\n"
                   "  undrain ID          let a draining worker take replicas and roles again\n"
                   "  remove ID [--force] forget a dead worker for good; its replicas are\n"
                   "                      re-created on the others\n"
                   "`shardex status` shows each worker's state and the moves in flight.",
    .flags = plain_flags,
    .count = sizeof(plain_flags) / sizeof(plain_flags[0]),
};

int sx_cmd_worker(const sx_cli *cli, int argc, char **argv)
{
    return sx_cmd_subcommands(cli, "worker", &worker_spec, subs, sizeof(subs) / sizeof(subs[0]),
                              argc, argv);
}
