/* shardex: the command-line tool. Parses the flags before the command, picks
 * the command from a table and hands it the rest of argv (client/cli.h).
 * Adding a command is one function and one row of `commands`. */
#include "cli.h"
#include "cmd.h"
#include "flags.h"
#include "load.h"
#include "log.h"
#include "mem.h"
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct config {
    const char *server;
    uint64_t timeout_ms;
    bool json;
    const char *log_level;
    const char *tls_ca, *tls_cert, *tls_key, *token;
} config;

static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(config, m, t)
static const sx_flag flags[] = {
    {.name = "server",
     .short_name = 's',
     .type = SX_FLAG_STRING,
     .offset = OFF(server, const char *),
     .metavar = "HOST:PORT[,...]",
     .help = "workers of the cluster, comma-separated; any one routes every call, calls "
             "rotate over them and go on to the next when one is down",
     .env = "SHARDEX_SERVER"},
    {.name = "timeout-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(timeout_ms, uint64_t),
     .metavar = "MS",
     .help = "deadline of each call, retries included",
     .min = 1,
     .max = 3600000},
    {.name = "json",
     .type = SX_FLAG_BOOL,
     .offset = OFF(json, bool),
     .help = "print one JSON object (the response message, proto field names) for scripts"},
    {.name = "log-level",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(log_level, const char *),
     .choices = log_levels,
     .help = "threshold of the log lines on stderr",
     .env = "SHARDEX_LOG_LEVEL"},
    {.name = "tls-ca",
     .type = SX_FLAG_STRING,
     .offset = OFF(tls_ca, const char *),
     .metavar = "FILE",
     .help = "the CA (PEM) that signed the workers' certificates: calls go over TLS",
     .env = "SHARDEX_TLS_CA"},
    {.name = "tls-cert",
     .type = SX_FLAG_STRING,
     .offset = OFF(tls_cert, const char *),
     .metavar = "FILE",
     .help = "this client's certificate (PEM; deploy/certs.sh client ROLE NAME), with tls-key",
     .env = "SHARDEX_TLS_CERT"},
    {.name = "tls-key",
     .type = SX_FLAG_STRING,
     .offset = OFF(tls_key, const char *),
     .metavar = "FILE",
     .help = "the private key of tls-cert (PEM)",
     .env = "SHARDEX_TLS_KEY"},
    {.name = "token",
     .type = SX_FLAG_STRING,
     .offset = OFF(token, const char *),
     .metavar = "TOKEN",
     .help = "a bearer token the cluster knows (its auth-tokens file), sent with every call; "
             "prefer the environment variable, which other users cannot see in ps",
     .env = "SHARDEX_TOKEN"},
};

static const sx_flags_spec spec = {
    .prog = "shardex",
    .synopsis = "[--server HOST:PORT[,...]] [--timeout-ms MS] [--json] COMMAND [ARGS] [FLAGS]",
    .description =
        "The shardex command-line tool: writes, reads and queries documents, manages the\n"
        "indexes, shows and verifies a shardex cluster. `shardex COMMAND --help` (or `shardex\n"
        "help COMMAND`) describes a command; flags may also follow the command.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
    .config = true,
};

static int cmd_help(const sx_cli *cli, int argc, char **argv);

typedef struct command {
    const char *name;
    const char *args;    /* synopsis after the name, for --help */
    const char *summary; /* one line for --help */
    sx_cli_cmd_cb run;
    bool json_as_flag; /* reads --json from its argv only: main passes the global one there */
} command;

static const command commands[] = {
    {"put", "ID FIELD=VALUE... | JSON...", "write a document, print its write token", sx_cmd_put,
     false},
    {"get", "ID [--after P:OFFSET]", "read a document and its version", sx_cmd_get, false},
    {"delete", "ID...", "delete documents, print their write tokens", sx_cmd_delete, false},
    {"query", "--index NAME (--eq V | --min V --max V)", "find documents by an indexed value",
     sx_cmd_query, false},
    {"index", "create|drop|list", "manage the indexes", sx_cmd_index, false},
    {"status", "", "workers, log partitions, term partitions, indexes", sx_cmd_status, false},
    {"worker", "drain|undrain|remove ID",
     "take a worker out: move everything off it, or forget a "
     "dead one",
     sx_cmd_worker, false},
    {"load", "[FILE]", "bulk-load JSON Lines or Debian control stanzas", sx_cmd_load, false},
    {"verify", "", "recompute every index from the log and compare with what is served",
     sx_cli_verify, true},
    {"help", "[COMMAND]", "describe a command", cmd_help, false},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(const config *defaults, FILE *out)
{
    sx_flags_usage(&spec, defaults, out);
    fputs("\ncommands:\n", out);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char head[64];
        snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-47s %s\n", head, commands[i].summary);
    }
    fputs("\nexit status:\n", out);
#define SX__EXIT_HELP(name, value, meaning) fprintf(out, "  %d  %s\n", value, meaning);
    SX_EXIT_MAP(SX__EXIT_HELP)
#undef SX__EXIT_HELP
    fputs("\nerrors go to stderr as `shardex: COMMAND: message`; under --json a failed call\n"
          "also prints {\"command\", \"status\", \"error\", \"exit\"} on stdout.\n",
          out);
}

static const command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* `shardex help [COMMAND [SUBCOMMAND]]`: COMMAND's --help. */
static int cmd_help(const sx_cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        config defaults = {.server = SX_CLI_DEFAULT_SERVER,
                           .timeout_ms = SX_CLI_DEFAULT_TIMEOUT_MS,
                           .log_level = "warn"};
        usage(&defaults, stdout);
        return SX_EXIT_OK;
    }
    const command *c = find(argv[1]);
    if (!c || c->run == cmd_help) {
        fprintf(stderr, "shardex: help: unknown command '%s'\nTry 'shardex --help'.\n", argv[1]);
        return SX_EXIT_USAGE;
    }
    char **v = sx_calloc((size_t)argc + 1, sizeof(*v));
    for (int i = 1; i < argc; i++)
        v[i - 1] = argv[i];
    v[argc - 1] = "--help";
    int code = c->run(cli, argc, v);
    free(v);
    return code;
}

/* The command the flags lead to, once flags and servers are parsed. */
static int run_command(const config *cfg, char **servers, int argc, char **argv, int first)
{
    const command *c = find(argv[first]);
    if (!c) {
        fprintf(stderr, "shardex: unknown command '%s'\nTry 'shardex --help'.\n", argv[first]);
        return SX_EXIT_USAGE;
    }
    sx_cli cli = {.prog = "shardex",
                  .server = servers[0],
                  .server_list = cfg->server,
                  .timeout_ms = cfg->timeout_ms,
                  .json = cfg->json,
                  .tls_ca = cfg->tls_ca,
                  .tls_cert = cfg->tls_cert,
                  .tls_key = cfg->tls_key,
                  .token = cfg->token};
    int n = argc - first;
    char **v = sx_calloc((size_t)n + 2, sizeof(*v));
    memcpy(v, argv + first, (size_t)n * sizeof(*v));
    if (cfg->json && c->json_as_flag) { /* `shardex --json verify` is `shardex verify --json` */
        memmove(v + 2, v + 1, (size_t)(n - 1) * sizeof(*v));
        v[1] = "--json";
        n++;
    }
    int code = c->run(&cli, n, v);
    free(v);
    fflush(stdout);
    return code;
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
    sx_flags_file *file = NULL; /* cfg's strings may point into it: freed last */
    sx_err err = {0};
    if (sx_flags_parse_given(&spec, &cfg, argc, argv, &help, &first, NULL, &file, &err) != SX_OK) {
        fprintf(stderr, "shardex: %s\nTry 'shardex --help'.\n", err.msg);
        return SX_EXIT_USAGE;
    }
    int code = SX_EXIT_USAGE;
    char **servers = NULL;
    size_t nservers = 0;
    if (help) {
        usage(&defaults, stdout);
        code = SX_EXIT_OK;
    } else if (first >= argc) {
        usage(&defaults, stderr);
    } else if (sx_cmd_servers(cfg.server, &servers, &nservers, &err) != SX_OK) {
        const char *env = getenv("SHARDEX_SERVER");
        bool from_env = env && strcmp(env, cfg.server) == 0;
        fprintf(stderr, "shardex: --server%s: %s\nTry 'shardex --help'.\n",
                from_env ? " (from SHARDEX_SERVER)" : "", err.msg);
    } else {
        sx_log_level level = SX_LOG_WARN;
        sx_log_level_parse(cfg.log_level, &level);
        sx_log_set_level(level);
        code = run_command(&cfg, servers, argc, argv, first);
    }
    sx_cmd_servers_free(servers);
    sx_flags_file_free(file);
    return code;
}
