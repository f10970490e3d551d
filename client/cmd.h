/* cmd.h: what the commands of the shardex tool (client/cmd_*.c) share:
 * the flags every command takes (--server, --timeout-ms, --json), a command
 * line parsed with positional arguments anywhere among the flags, a client
 * connected to the servers, write tokens and values as the tool spells them,
 * and errors reported the one way (stderr, plus a JSON object under --json)
 * with their exit code (cli.h).
 *
 * Not here: the output primitives (out.h), libshardex itself (shardex.h).
 * Single-threaded, like the tool.
 */
#ifndef SX_CMD_H
#define SX_CMD_H

#include "cli.h"
#include "flags.h"
#include "shardex.h"

#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The commands, each `int f(const sx_cli *, int argc, char **argv)` with
 * argv[0] its name (cli.h). */
int sx_cmd_put(const sx_cli *cli, int argc, char **argv);
int sx_cmd_get(const sx_cli *cli, int argc, char **argv);
int sx_cmd_delete(const sx_cli *cli, int argc, char **argv);
int sx_cmd_query(const sx_cli *cli, int argc, char **argv);
int sx_cmd_index(const sx_cli *cli, int argc, char **argv);
int sx_cmd_status(const sx_cli *cli, int argc, char **argv);

int sx_cmd_worker(const sx_cli *cli, int argc, char **argv);

/* A worker's state as status and `worker` print it: "removed", "drained"
 * (draining and holding nothing: safe to stop), "draining" or "active". */
const char *sx_cmd_worker_state(const Shardex__V1__WorkerStatus *w);

/* Prints indexes as `index list` does (also status's section), each line
 * indented by `indent` spaces. */
void sx_cmd_index_table(Shardex__V1__IndexInfo *const *ix, size_t n, int indent);

/* ---------------------------------------------------------------- flags -- */

/* The settings every command takes; the first member of each command's
 * config struct, pre-filled from the sx_cli by sx_cmd_common_init. */
typedef struct sx_cmd_common {
    const char *server;                              /* one or several HOST:PORT, comma-separated */
    uint64_t timeout_ms;                             /* deadline of each call */
    bool json;                                       /* one JSON object on stdout */
    const char *tls_ca, *tls_cert, *tls_key, *token; /* as the sx_cli has them */
} sx_cmd_common;

sx_cmd_common sx_cmd_common_init(const sx_cli *cli);

/* The three flag rows of sx_cmd_common for a config struct `cfg_type` whose
 * member `common` is one; put them at the end of a command's table. */
/* clang-format off */
#define SX_CMD_COMMON_FLAGS(cfg_type)                                                              \
    {.name = "json", .type = SX_FLAG_BOOL,                                                         \
     .offset = SX_FLAG_OFFSET(cfg_type, common.json, bool),                                        \
     .help = "print one JSON object (the response message, proto field names) for scripts"},       \
    {.name = "server", .short_name = 's', .type = SX_FLAG_STRING,                                  \
     .offset = SX_FLAG_OFFSET(cfg_type, common.server, const char *),                              \
     .metavar = "HOST:PORT[,...]", .help = "workers of the cluster, as before the command"},       \
    {.name = "timeout-ms", .type = SX_FLAG_DURATION_MS,                                            \
     .offset = SX_FLAG_OFFSET(cfg_type, common.timeout_ms, uint64_t), .metavar = "MS",             \
     .help = "deadline of each call, as before the command", .min = 1, .max = 3600000}
/* clang-format on */

/* A parsed command line: what is not a flag, in order, and every value of
 * the one repeatable flag (see sx_cmd_parse). Free with sx_cmd_args_free. */
typedef struct sx_cmd_args {
    char **pos; /* positional arguments (borrowed from argv) */
    size_t npos;
    char **rep; /* values of the repeatable flag (borrowed from argv) */
    size_t nrep;
} sx_cmd_args;

void sx_cmd_args_free(sx_cmd_args *a);

/* sx_cmd_parse's "go on" answer; any other answer is the exit code. */
#define SX_CMD_CONTINUE (-1)

/* Parses argv (argv[0] the command's own word) with spec for the command
 * `cmd` (as messages name it: "put", "index create") into cfg, which starts
 * with an sx_cmd_common and whose fields hold the defaults (`defaults` a copy, for --help).
 * Unlike sx_flags_parse alone, positional arguments may come anywhere among
 * the flags (`get ID --after T`); after "--" everything is positional.
 * `repeatable` names a flag (without dashes; a STRING row of spec, for
 * --help) whose every occurrence is collected into args->rep rather than the
 * last winning; NULL: none. The server list is checked.
 * Returns SX_CMD_CONTINUE, or SX_EXIT_OK after printing --help to stdout, or
 * SX_EXIT_USAGE after printing the error to stderr. */
int sx_cmd_parse(const char *cmd, const sx_flags_spec *spec, void *cfg, const void *defaults,
                 int argc, char **argv, const char *repeatable, sx_cmd_args *args);

/* Prints `shardex: CMD: message` and the --help hint to stderr; returns
 * SX_EXIT_USAGE. */
int sx_cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A command made of subcommands (`shardex index create ...`): the flags
 * before the subcommand apply to it; --help prints spec's usage; runs the
 * subcommand named by the first argument. spec's flags are the common ones
 * alone, SX_CMD_COMMON_FLAGS(sx_cmd_plain). */
typedef struct sx_cmd_plain {
    sx_cmd_common common;
} sx_cmd_plain;
typedef struct sx_cmd_sub {
    const char *name;
    sx_cli_cmd_cb run;
} sx_cmd_sub;
int sx_cmd_subcommands(const sx_cli *cli, const char *cmd, const sx_flags_spec *spec,
                       const sx_cmd_sub *subs, size_t nsubs, int argc, char **argv);

/* --------------------------------------------------------------- servers -- */

/* Splits "HOST:PORT[,HOST:PORT...]" into a NULL-terminated array of copies
 * (free with sx_cmd_servers_free), checking each with sx_hostport_parse and
 * the count against SX_CLIENT_MAX_SERVERS. SX_INVALID_ARGUMENT naming the bad
 * one. */
sx_status sx_cmd_servers(const char *list, char ***out, size_t *n, sx_err *err);
void sx_cmd_servers_free(char **servers);

/* A client of c->server with c->timeout_ms. On failure, reports it (as
 * sx_cmd_fail) and returns its exit code; else SX_EXIT_OK and *out (close it
 * with sx_cmd_disconnect). */
int sx_cmd_connect(const char *cmd, const sx_cmd_common *c, sx_client **out);
/* Closes the client and lets gRPC shut down before the process exits. */
void sx_cmd_disconnect(sx_client *cl);

/* ---------------------------------------------------------------- errors -- */

/* The exit code for a call that failed with st (cli.h): UNAVAILABLE and
 * DEADLINE_EXCEEDED (and what says the cluster could not answer: CANCELLED,
 * ABORTED, INTERNAL, UNKNOWN, DATA_LOSS) give 3, NOT_FOUND 4, the rest 5. */
int sx_cmd_exit_code(sx_status st);

/* Reports a failed call: `shardex: WHAT: message` on stderr and, under
 * --json, {"command", "status", "error", "exit"} on stdout. Returns the exit
 * code (sx_cmd_exit_code). */
int sx_cmd_fail(const char *what, const sx_cmd_common *c, sx_status st, const char *msg);

/* ---------------------------------------------------------------- tokens -- */

/* Parses a write token "P:OFFSET" (decimal). */
bool sx_cmd_token_parse(const char *s, Shardex__V1__WriteToken *out);

/* Adds every token of each value (one token, or several separated by commas)
 * to set. False after printing a usage error for `cmd`. */
bool sx_cmd_tokens(const char *cmd, char *const *vals, size_t n, sx_token_set *set);

/* ---------------------------------------------------------------- values -- */

/* Parses a decimal int64 written the canonical way ("0", "42", "-7"; no
 * sign on zero, no "+", no leading zeros, no spaces), so that a value that is
 * an int prints back as written. */
bool sx_cmd_int_parse(const char *s, int64_t *out);

/* A value as the tool prints it: an int as its digits, a string quoted and
 * escaped as a JSON string ("red"), an unset value as "(none)". Caller frees. */
char *sx_cmd_value_text(const Shardex__V1__Value *v);

/* A document's fields as `name=value name=value ...` (values as above).
 * Caller frees. */
char *sx_cmd_fields_text(const Shardex__V1__Document *d);

/* Prints j to stdout as the command's JSON output, then json_decrefs it. */
void sx_cmd_print_json(json_t *j);

#endif
