/* flags.h: command-line flags from one table that also prints --help.
 *
 * Each program keeps its configuration in one struct, pre-filled with defaults
 * by the caller, and describes its flags in a static table of sx_flag rows that
 * say where in the struct each value goes. sx_flags_parse fills the struct from
 * argv (through getopt_long) and from environment variables; sx_flags_usage
 * prints --help from the same table; sx_flags_log_config logs the result.
 * There are no global configuration variables and no allocation that outlives
 * a call. This module does not read config files.
 *
 *   typedef struct { const char *server; uint32_t partitions; } cfg;
 *   static const sx_flag flags[] = {
 *       {.name = "server", .short_name = 's', .type = SX_FLAG_HOSTPORT,
 *        .offset = SX_FLAG_OFFSET(cfg, server, const char *), .metavar = "HOST:PORT",
 *        .help = "coordinator address", .env = "SHARDEX_SERVER", .required = true},
 *       {.name = "partitions", .type = SX_FLAG_UINT32,
 *        .offset = SX_FLAG_OFFSET(cfg, partitions, uint32_t), .metavar = "N",
 *        .help = "number of partitions", .min = 1, .max = 4096},
 *   };
 */
#ifndef SX_FLAGS_H
#define SX_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* A flag's type, which fixes the C type of its field in the config struct. */
typedef enum {
    SX_FLAG_BOOL,        /* bool; takes no value, present means true */
    SX_FLAG_STRING,      /* const char *; any value */
    SX_FLAG_INT,         /* int64_t; decimal, within [min, max] */
    SX_FLAG_UINT32,      /* uint32_t; decimal, within [min, max] */
    SX_FLAG_DURATION_MS, /* uint64_t milliseconds; "500", "500ms", "2s", "1m", "1h" */
    SX_FLAG_SIZE,        /* uint64_t bytes; "64", "4k", "4KiB", "8m", "1g", "1t" (binary units) */
    SX_FLAG_CHOICE,      /* const char *; one of the NULL-terminated `choices` */
    SX_FLAG_HOSTPORT,    /* const char *; "HOST:PORT" or "[V6]:PORT" (sx_hostport_parse) */
} sx_flag_type;

/* One row of a flag table. Fields not named for a type are ignored for it. */
typedef struct sx_flag {
    const char *name; /* long name without dashes; "help" is taken */
    char short_name;  /* a letter or digit, or 0 for none; 'h' is taken */
    sx_flag_type type;
    size_t offset;       /* offsetof(config struct, field); see SX_FLAG_OFFSET */
    const char *metavar; /* placeholder in --help, e.g. "HOST:PORT"; NULL: from the type */
    const char *help;    /* one line, no trailing period */
    /* Limits for INT, UINT32, DURATION_MS (ms) and SIZE (bytes), inclusive.
     * Both 0: no limit beyond the type's range. Otherwise min <= max, and for
     * the unsigned types 0 <= min (asserted). */
    int64_t min, max;
    const char *const *choices; /* CHOICE: NULL-terminated list of allowed values */
    const char *env;            /* environment variable read when the flag is not on the
                                   command line, or NULL; an empty value counts as unset */
    bool required;              /* must come from the command line or env */
} sx_flag;

/* offsetof(type, member), and a compile error (with -Werror) unless member has
 * C type ctype, so that a table row cannot write an int64_t into an int. */
#define SX_FLAG_OFFSET(type, member, ctype)                                                        \
    (offsetof(type, member) + 0 * sizeof((ctype *){0} = &((type *)0)->member))

/* A program's flags: the table plus the text around it in --help. */
typedef struct sx_flags_spec {
    const char *prog;        /* program name, e.g. "shardex-worker" */
    const char *synopsis;    /* after "usage: prog ", e.g. "[FLAGS]" or "[FLAGS] COMMAND [ARGS]" */
    const char *description; /* a paragraph, or NULL */
    const sx_flag *flags;
    size_t count;
} sx_flags_spec;

/* Parses argv into config, whose fields hold the defaults on entry.
 *
 * Flags are "--name VALUE", "--name=VALUE", "-s VALUE", "-sVALUE" and, for
 * bools, "--name"/"-s" (short bools combine: "-vq"). Long names must be spelled
 * out in full (getopt_long's abbreviations are rejected, so adding a flag never
 * breaks a script). A repeated flag: the last one wins. Parsing stops at the
 * first positional argument or at "--" ("+" ordering), so that
 * `shardex --server X put --json` leaves "put --json" to the subcommand.
 * Then every flag that did not appear and names an env variable that is set is
 * parsed from it (the command line beats the environment; bools take 1, true,
 * yes, on, 0, false, no, off). Then every required flag must have been given.
 *
 * --help / -h is built in: it sets *help to true and returns SX_OK at once,
 * without checking anything after it or any required flag; the caller prints
 * sx_flags_usage and exits 0. Otherwise *help is set to false.
 *
 * first_arg: receives the index in argv of the first positional argument
 * (argc when there is none). NULL: positional arguments are an error.
 *
 * Errors: SX_INVALID_ARGUMENT with a message that names the flag and, for a
 * value out of range, the limit ("--partitions: 0 is below the minimum 1");
 * config may then be partly written. String values (STRING, CHOICE, HOSTPORT)
 * point into argv or into the environment: do not unsetenv/setenv a variable
 * whose value config still points to.
 *
 * Uses getopt_long's global state (reset on every call, so calling it many
 * times in a process is fine): call it from one thread, before starting others.
 * The table is checked with assert (unique names, limits, choices). */
sx_status sx_flags_parse(const sx_flags_spec *spec, void *config, int argc, char **argv, bool *help,
                         int *first_arg, sx_err *err);

/* sx_flags_parse, and given[i] (an array of spec->count) tells whether flag i
 * came from the command line or the environment rather than from the default,
 * for settings that must not silently change once stored. */
sx_status sx_flags_parse_given(const sx_flags_spec *spec, void *config, int argc, char **argv,
                               bool *help, int *first_arg, bool *given, sx_err *err);

/* Prints usage to out: "usage: prog synopsis", the description, then one
 * aligned line per flag (and -h, --help) with its metavar and help, followed by
 * what applies of: the limits, the choices, the default (read from defaults, a
 * config struct holding the defaults, or NULL; NULL strings, false bools and
 * required flags show none), the env variable, and "required". */
void sx_flags_usage(const sx_flags_spec *spec, const void *defaults, FILE *out);

/* Logs the effective configuration as one INFO line from component:
 * "config name=value ..." in table order. Values with spaces, quotes or '='
 * are double-quoted with \" and \\ escaped; NULL strings show as name=(none);
 * durations and sizes as their exact numbers with units ("2s", "64MiB"). */
void sx_flags_log_config(const sx_flags_spec *spec, const void *config, const char *component);

/* Splits "HOST:PORT" or "[IPV6]:PORT" into host (without brackets, written
 * NUL-terminated into host, host_cap bytes) and port. PORT is 1 to 5 decimal
 * digits in 0..65535 (0: let the system choose, for listen addresses); HOST is
 * non-empty and, unless bracketed, has no ':'. host and port may be NULL to
 * only check s. Errors: SX_INVALID_ARGUMENT with a message quoting s; host and
 * port are then unspecified. Pure; any thread. */
sx_status sx_hostport_parse(const char *s, char *host, size_t host_cap, uint16_t *port,
                            sx_err *err);

#endif
