/* shardex: the command-line tool. Parses the flags before the command, picks
 * the command from a table and hands it the rest of argv (client/cli.h).
 * Adding a command is one function and one row of `commands`. */
#include "cli.h"
#include "flags.h"
#include "log.h"
#include "verify.h"

#include <stdio.h>
#include <string.h>

typedef struct config {
    const char *server;
    uint64_t timeout_ms;
    const char *log_level;
} config;

static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(config, m, t)
static const sx_flag flags[] = {
    {.name = "server",
     .short_name = 's',
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(server, const char *),
     .help = "a worker of the cluster (any one)",
     .env = "SHARDEX_SERVER"},
    {.name = "timeout-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(timeout_ms, uint64_t),
     .metavar = "MS",
     .help = "deadline of each call",
     .min = 1,
     .max = 3600000},
    {.name = "log-level",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(log_level, const char *),
     .choices = log_levels,
     .help = "threshold of the log lines on stderr",
     .env = "SHARDEX_LOG_LEVEL"},
};

static const sx_flags_spec spec = {
    .prog = "shardex",
    .synopsis = "[--server HOST:PORT] COMMAND [FLAGS]",
    .description = "The shardex command-line tool. `shardex COMMAND --help` describes a command.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

typedef struct command {
    const char *name;
    const char *summary; /* one line for --help */
    sx_cli_cmd_fn run;
} command;

static const command commands[] = {
    {"verify", "recompute every index from the log and compare with what is served", sx_cli_verify},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(const config *defaults, FILE *out)
{
    sx_flags_usage(&spec, defaults, out);
    fputs("\ncommands:\n", out);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    sx_log_set_process("shardex");
    config cfg = {.server = SX_CLI_DEFAULT_SERVER,
                  .timeout_ms = SX_CLI_DEFAULT_TIMEOUT_MS,
                  .log_level = "warn"};
    config defaults = cfg;
    bool help = false;
    int first = argc;
    sx_err err = {0};
    if (sx_flags_parse(&spec, &cfg, argc, argv, &help, &first, &err) != SX_OK) {
        fprintf(stderr, "shardex: %s\nTry 'shardex --help'.\n", err.msg);
        return SX_EXIT_USAGE;
    }
    if (help) {
        usage(&defaults, stdout);
        return SX_EXIT_OK;
    }
    if (first >= argc) {
        usage(&defaults, stderr);
        return SX_EXIT_USAGE;
    }
    sx_log_level level = SX_LOG_WARN;
    sx_log_level_parse(cfg.log_level, &level);
    sx_log_set_level(level);
    const char *name = argv[first];
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            sx_cli cli = {.prog = "shardex", .server = cfg.server, .timeout_ms = cfg.timeout_ms};
            return commands[i].run(&cli, argc - first, argv + first);
        }
    }
    fprintf(stderr, "shardex: unknown command '%s'\nTry 'shardex --help'.\n", name);
    return SX_EXIT_USAGE;
}
