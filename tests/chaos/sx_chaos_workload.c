/* sx_chaos_workload: the workload and the checkers of the partition-failure
 * suite (issue 11), as one program that runs against any shardex cluster
 * (workers on loopback, or inside the lab's namespaces: deploy/lab.sh).
 *
 *   sx_chaos_workload run   --servers A,B,C --history H [--seconds S --writers N --keys K --seed X]
 *   sx_chaos_workload check --servers A,B,C --history H [--settle-ms MS --verify PATH/shardex]
 *   sx_chaos_workload faults --servers A[,B] --spec RULES   (wl_faults.c)
 *
 * It is a client only: it neither starts nor stops the cluster (the caller
 * kills, pauses and cuts while `run` runs, heals, then runs `check`); `faults`
 * sets the workers' own rpc fault layer. The commands are wl_run.c,
 * wl_check.c and wl_faults.c; this file parses the flags (wl.h).
 */
#include "flags.h"
#include "log.h"
#include "wl.h"

#include <stdio.h>
#include <string.h>

#define OFF(m, t) SX_FLAG_OFFSET(sx_wl_cfg, m, t)

/* Rows both commands have. */
#define COMMON_FLAGS(timeout_help)                                                                 \
    {.name = "servers",                                                                            \
     .short_name = 's',                                                                            \
     .type = SX_FLAG_STRING,                                                                       \
     .offset = OFF(servers, const char *),                                                         \
     .metavar = "HOST:PORT[,...]",                                                                 \
     .help = "workers of the cluster, comma-separated (any one routes every call)",                \
     .env = "SHARDEX_SERVER",                                                                      \
     .required = true},                                                                            \
        {.name = "history",                                                                        \
         .type = SX_FLAG_STRING,                                                                   \
         .offset = OFF(history, const char *),                                                     \
         .metavar = "FILE",                                                                        \
         .help = "the history file: one line per operation (tests/chaos/wl_history.h)",            \
         .required = true},                                                                        \
    {                                                                                              \
        .name = "timeout-ms", .type = SX_FLAG_DURATION_MS, .offset = OFF(timeout_ms, uint64_t),    \
        .metavar = "MS", .help = timeout_help, .min = 1, .max = 600000                             \
    }

static const sx_flag run_flags[] = {
    COMMON_FLAGS("deadline of each write, every attempt included"),
    {.name = "seconds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(seconds, uint32_t),
     .metavar = "S",
     .help = "how long the writers write",
     .min = 1,
     .max = 86400},
    {.name = "writers",
     .type = SX_FLAG_UINT32,
     .offset = OFF(writers, uint32_t),
     .metavar = "N",
     .help = "writer threads, each with its own keys",
     .min = 1,
     .max = 256},
    {.name = "keys",
     .type = SX_FLAG_UINT32,
     .offset = OFF(keys, uint32_t),
     .metavar = "K",
     .help = "keys per writer",
     .min = 1,
     .max = 1000000},
    {.name = "seed",
     .type = SX_FLAG_STRING,
     .offset = OFF(seed, const char *),
     .metavar = "X",
     .help = "seed of the choices (decimal or 0x hex); printed at start; default: the clock",
     .env = "SHARDEX_TEST_SEED"},
    {.name = "run",
     .type = SX_FLAG_STRING,
     .offset = OFF(run, const char *),
     .metavar = "TAG",
     .help = "prefix of keys and values (letters, digits, - or _); default: r<wall-clock ms, hex>"},
    {.name = "index",
     .type = SX_FLAG_STRING,
     .offset = OFF(index, const char *),
     .metavar = "NAME",
     .help = "the indexes NAME_v and NAME_g (LOCAL+GLOBAL), made if missing"},
    {.name = "groups",
     .type = SX_FLAG_UINT32,
     .offset = OFF(groups, uint32_t),
     .metavar = "G",
     .help = "distinct values of field g",
     .min = 1,
     .max = 1000},
    {.name = "pause-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(pause_ms, uint64_t),
     .metavar = "MS",
     .help = "pause of a writer between two operations",
     .max = 60000},
    {.name = "delete-pct",
     .type = SX_FLAG_UINT32,
     .offset = OFF(delete_pct, uint32_t),
     .metavar = "PCT",
     .help = "share of deletes",
     .max = 100},
    {.name = "bad-pct",
     .type = SX_FLAG_UINT32,
     .offset = OFF(bad_pct, uint32_t),
     .metavar = "PCT",
     .help = "share of Puts the server must refuse (an empty field name)",
     .max = 100},
};

static const sx_flag check_flags[] = {
    COMMON_FLAGS("deadline of each read and query page, retries included"),
    {.name = "settle-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(settle_ms, uint64_t),
     .metavar = "MS",
     .help = "first wait until ClusterStatus shows every partition led with a whole ISR and "
             "the indexes ready; 0: do not wait",
     .max = 3600000},
    {.name = "sample",
     .type = SX_FLAG_UINT32,
     .offset = OFF(sample, uint32_t),
     .metavar = "N",
     .help = "older (overwritten or deleted) values queried too: they must hit nothing",
     .max = 1000000},
    {.name = "verify",
     .type = SX_FLAG_STRING,
     .offset = OFF(verify, const char *),
     .metavar = "PATH",
     .help = "the shardex tool: run its verify too (non-zero exit: violation V)"},
    {.name = "max-rows",
     .type = SX_FLAG_UINT32,
     .offset = OFF(max_rows, uint32_t),
     .metavar = "N",
     .help = "violations printed (all are counted); 0: all"},
};

static const sx_flag faults_flags[] = {
    {.name = "servers",
     .short_name = 's',
     .type = SX_FLAG_STRING,
     .offset = OFF(servers, const char *),
     .metavar = "HOST:PORT[,...]",
     .help = "the workers whose outgoing calls get the rules, comma-separated",
     .required = true},
    {.name = "spec",
     .type = SX_FLAG_STRING,
     .offset = OFF(spec, const char *),
     .metavar = "RULES",
     .help = "fault rules, e.g. \"seed=7;method=Append,drop=0.2\" (common/rpc.h); \"\": clear",
     .required = true},
    {.name = "timeout-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(timeout_ms, uint64_t),
     .metavar = "MS",
     .help = "deadline of each SetFaults call",
     .min = 1,
     .max = 600000},
};

static const sx_flags_spec run_spec = {
    .prog = "sx_chaos_workload run",
    .synopsis = "--servers HOST:PORT[,...] --history FILE [FLAGS]",
    .description =
        "Writers put, overwrite and delete their own keys (TAG-wW-kK, values TAG-wW-opM), one\n"
        "document per call, until --seconds pass, through every failure, and record each\n"
        "operation with its outcome (ok, fail: proved not applied, unknown) in the history.",
    .flags = run_flags,
    .count = sizeof(run_flags) / sizeof(run_flags[0]),
};

static const sx_flags_spec check_spec = {
    .prog = "sx_chaos_workload check",
    .synopsis = "--servers HOST:PORT[,...] --history FILE [FLAGS]",
    .description =
        "Reads back every key of the history and queries the indexes LOCAL and GLOBAL, and\n"
        "prints the violations (A: final state not allowed by the history, U: read what no\n"
        "writer wrote, L/G: a query differs from the documents, D: a duplicate hit, V: verify\n"
        "failed, E: could not check) and each writer's availability. Exit 0: none; 1: a\n"
        "violation; 3: only E; 4: the history could not be read.",
    .flags = check_flags,
    .count = sizeof(check_flags) / sizeof(check_flags[0]),
};

static const sx_flags_spec faults_spec = {
    .prog = "sx_chaos_workload faults",
    .synopsis = "--servers HOST:PORT[,...] --spec RULES",
    .description =
        "Replaces the rpc fault layer's rules of each worker's outgoing calls (drop, drop_reply,\n"
        "dup, delay, fail: lossy, slow and duplicating links) through WorkerAdmin.SetFaults.\n"
        "Exit 0: every worker took them; 2: a bad spec; 3: a worker could not be reached.",
    .flags = faults_flags,
    .count = sizeof(faults_flags) / sizeof(faults_flags[0]),
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: sx_chaos_workload run|check|faults [FLAGS]   (sx_chaos_workload COMMAND --help)\n"
        "The workload and checkers of the partition-failure suite (tests/chaos/README.md).\n");
}

/* A tag or index name: it goes into ids, values, index names and the
 * history's space-separated fields. NULL is fine (a default). */
static bool name_ok(const char *s)
{
    if (!s)
        return true;
    size_t n = strlen(s);
    return n >= 1 && n <= 40 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_") == n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? SX_WL_EXIT_USAGE : SX_WL_EXIT_OK;
    }
    bool is_run = strcmp(argv[1], "run") == 0, is_faults = strcmp(argv[1], "faults") == 0;
    if (!is_run && !is_faults && strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "sx_chaos_workload: unknown command \"%s\"\n", argv[1]);
        usage(stderr);
        return SX_WL_EXIT_USAGE;
    }
    const sx_flags_spec *spec = is_run ? &run_spec : is_faults ? &faults_spec : &check_spec;
    sx_wl_cfg defaults = {.timeout_ms = is_run      ? 2000
                                        : is_faults ? 4000
                                                    : 10000,
                          .seconds = 10,
                          .writers = 4,
                          .keys = 50,
                          .groups = 8,
                          .index = "chaos",
                          .pause_ms = 5,
                          .delete_pct = 20,
                          .bad_pct = 2,
                          .sample = 200,
                          .max_rows = 100};
    sx_wl_cfg cfg = defaults;
    bool help = false;
    sx_err err = {0};
    if (sx_flags_parse(spec, &cfg, argc - 1, argv + 1, &help, NULL, &err) != SX_OK) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", spec->prog, err.msg, spec->prog);
        return SX_WL_EXIT_USAGE;
    }
    if (help) {
        sx_flags_usage(spec, &defaults, stdout);
        return SX_WL_EXIT_OK;
    }
    if (!name_ok(cfg.run) || !name_ok(cfg.index) || !cfg.index) {
        fprintf(stderr, "%s: --run and --index: 1..40 letters, digits, '-' or '_'\n", spec->prog);
        return SX_WL_EXIT_USAGE;
    }
    if (cfg.delete_pct + cfg.bad_pct > 100) {
        fprintf(stderr, "%s: --delete-pct plus --bad-pct is above 100\n", spec->prog);
        return SX_WL_EXIT_USAGE;
    }
    sx_log_set_level(SX_LOG_WARN);
    if (is_faults)
        return sx_wl_faults(&cfg);
    return is_run ? sx_wl_run(&cfg) : sx_wl_check(&cfg);
}
