/* flags.h: command-line flags from one table that also prints --help.
 *
 * Each program keeps its configuration in one struct, pre-filled with defaults
 * by the caller, and describes its flags in a static table of sx_flag rows that
 * say where in the struct each value goes. sx_flags_parse fills the struct from
 * argv (through getopt_long), from environment variables and, for a program
 * whose spec has .config, from a config file; sx_flags_usage prints --help from
 * the same table; sx_flags_log_config logs the result. There are no global
 * configuration variables; the only allocation that outlives a call is the
 * config file's text, which the caller owns (sx_flags_file).
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
 *
 * Config files (a spec with .config). `--config FILE`, or when it is absent the
 * variable SHARDEX_CONFIG, names a file like
 *
 *     # shardex-worker
 *     coordinator = coord.example:7000
 *     data-dir    = "/var/lib/shardex/worker"   # quotes are optional
 *     write-buffer = 64MiB
 *
 *  - Each line is blank, a comment (its first non-blank character is '#') or
 *    KEY = VALUE. Lines end in LF or CRLF. Spaces and tabs around KEY, '=' and
 *    VALUE are ignored. There are no sections, includes or continuations.
 *  - KEY is a flag's long name exactly as after "--" on the command line
 *    ("write-buffer"; "write_buffer" is refused, with a hint). A key may appear
 *    once. "config" and "help" are not keys.
 *  - VALUE is what the command line takes after --KEY, parsed the same way
 *    with the same limits; a bool takes 1, true, yes, on, 0, false, no, off.
 *    Unquoted, it runs to the end of the line or to a '#' that begins it or
 *    follows a space or tab (a comment), trailing blanks dropped; it cannot be
 *    empty (write "" for an empty value). Double-quoted, it is taken as
 *    written, '#' and blanks included, with exactly two escapes, \" for " and
 *    \\ for \ (any other backslash is an error); only blanks and a comment may
 *    follow the closing quote.
 *  - At most SX_FLAGS_FILE_MAX bytes, no NUL byte.
 *
 * Every line is checked, even one whose flag the command line or the
 * environment sets. An error names the file, the line and the key:
 *   "worker.conf:7: write-buffer: 12 is below the minimum 1MiB"
 *   "worker.conf:3: listn: unknown key", "worker.conf:9: listen: repeated
 *   (first on line 2)", "worker.conf:4: listen: expected 'key = value'",
 *   "--config: worker.conf: no such file".
 *
 * Precedence, per flag: command line > environment > config file > the
 * default (what the config struct held on entry). In a spec with .config every
 * flag has an environment variable: its .env, or else one derived from its
 * name (sx_flags_env: "write-buffer" -> SHARDEX_WRITE_BUFFER).
 *
 * Memory: values from the file point into its text, which lives in an
 * sx_flags_file that sx_flags_parse_given hands to the caller, who frees it
 * after the last use of the config struct (the daemons: when they exit).
 */
#ifndef SX_FLAGS_H
#define SX_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

/* The largest config file read: far above any real one, small enough to hold. */
#define SX_FLAGS_FILE_MAX (1u << 20)

/* The environment variable that names the config file when --config is absent. */
#define SX_FLAGS_CONFIG_ENV "SHARDEX_CONFIG"

/* The prefix of derived environment variable names (sx_flags_env). */
#define SX_FLAGS_ENV_PREFIX "SHARDEX_"

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
                                   command line, or NULL (with .config in the spec: derived,
                                   see sx_flags_env); an empty value counts as unset */
    bool required;              /* must come from the command line, env or config file */
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
    /* Built-in --config FILE (see the top of this file), and an environment
     * variable for every flag. Then every name is [a-z0-9-] and none is
     * "config"; env names must not clash (both asserted). */
    bool config;
} sx_flags_spec;

/* A config file as read by sx_flags_parse_given: its text, which string values
 * that came from it point into. Owned by the caller, who frees it with
 * sx_flags_file_free after the last use of the config struct. */
typedef struct sx_flags_file sx_flags_file;

/* Frees file; accepts NULL. Strings in config that came from it dangle then. */
void sx_flags_file_free(sx_flags_file *file);

/* The path file was read from, as given; borrowed until sx_flags_file_free. */
const char *sx_flags_file_path(const sx_flags_file *file);

/* The environment variable of f in spec: f->env if set; else, when
 * spec->config, SX_FLAGS_ENV_PREFIX followed by f's name upper-cased with '-'
 * as '_', written NUL-terminated into buf (cap bytes; asserted to fit); else
 * NULL. Pure; any thread. */
const char *sx_flags_env(const sx_flags_spec *spec, const sx_flag *f, char *buf, size_t cap);

/* Parses argv into config, whose fields hold the defaults on entry.
 *
 * Flags are "--name VALUE", "--name=VALUE", "-s VALUE", "-sVALUE" and, for
 * bools, "--name"/"-s" (short bools combine: "-vq"). Long names must be spelled
 * out in full (getopt_long's abbreviations are rejected, so adding a flag never
 * breaks a script). A repeated flag: the last one wins. Parsing stops at the
 * first positional argument or at "--" ("+" ordering), so that
 * `shardex --server X put --json` leaves "put --json" to the subcommand.
 * Then every flag that did not appear and has an env variable that is set is
 * parsed from it (the command line beats the environment; bools take 1, true,
 * yes, on, 0, false, no, off). Then, for a spec with .config, the config file
 * (see the top of this file) gives the flags that neither set. Then every
 * required flag must have been given.
 *
 * --help / -h is built in: it sets *help to true and returns SX_OK at once,
 * without checking anything after it, reading a config file or checking any
 * required flag; config is left as it was; the caller prints sx_flags_usage
 * and exits 0. Otherwise *help is set to false.
 *
 * first_arg: receives the index in argv of the first positional argument
 * (argc when there is none). NULL: positional arguments are an error.
 *
 * Errors: SX_INVALID_ARGUMENT with a message that names the flag and, for a
 * value out of range, the limit ("--partitions: 0 is below the minimum 1"), or
 * for the config file its path, line and key; config is then unchanged
 * (nothing is written to it unless everything parsed).
 *
 * Memory: string values (STRING, CHOICE, HOSTPORT) point into argv, into the
 * environment or into the config file's text (sx_flags_parse_given's *file):
 * keep all three as they are while config is in use (do not unsetenv/setenv a
 * variable whose value config still points to).
 *
 * Uses getopt_long's global state (reset on every call, so calling it many
 * times in a process is fine): call it from one thread, before starting others.
 * The table is checked with assert (unique names, limits, choices, env names).
 * A spec with .config needs sx_flags_parse_given, for the file (asserted). */
sx_status sx_flags_parse(const sx_flags_spec *spec, void *config, int argc, char **argv, bool *help,
                         int *first_arg, sx_err *err);

/* sx_flags_parse, and:
 * given: NULL, or an array of spec->count that receives, for flag i, whether
 *   it came from the command line, the environment or the config file rather
 *   than from the default, for settings that must not silently change once
 *   stored.
 * file: NULL for a spec without .config; otherwise receives the config file
 *   read (free with sx_flags_file_free after the last use of config), or NULL
 *   when none was named, on --help and on error. */
sx_status sx_flags_parse_given(const sx_flags_spec *spec, void *config, int argc, char **argv,
                               bool *help, int *first_arg, bool *given, sx_flags_file **file,
                               sx_err *err);

/* Prints usage to out: "usage: prog synopsis", the description, then one
 * aligned line per flag (and -h, --help, and --config FILE for a spec with
 * .config) with its metavar and help, followed by what applies of: the
 * limits, the choices, the default (read from defaults, a config struct
 * holding the defaults, or NULL; NULL strings, false bools and required flags
 * show none), the env variable (derived ones too), and "required". With
 * .config, a closing paragraph says that a flag's config key is its long name,
 * with an example line, and the order of precedence. */
void sx_flags_usage(const sx_flags_spec *spec, const void *defaults, FILE *out);

/* Logs the effective configuration as one INFO line from component:
 * "config name=value ..." in table order. Values with spaces, quotes or '='
 * are double-quoted with \" and \\ escaped; NULL strings show as name=(none);
 * durations and sizes as their exact numbers with units ("2s", "64MiB"). */
void sx_flags_log_config(const sx_flags_spec *spec, const void *config, const char *component);

/* A duration (milliseconds; "500ms", "2s", "1m", "1h", "7d"; no unit: ms) or
 * a size (bytes; "64", "4k", "4KiB", "8m", "1g"; binary units) as flags of
 * those types read them, for a flag that takes either or a word (e.g.
 * --log-retention). SX_INVALID_ARGUMENT naming who. */
sx_status sx_flags_parse_scaled(const char *s, bool duration, const char *who, uint64_t *out,
                                sx_err *err);

/* Splits "HOST:PORT" or "[IPV6]:PORT" into host (without brackets, written
 * NUL-terminated into host, host_cap bytes) and port. PORT is 1 to 5 decimal
 * digits in 0..65535 (0: let the system choose, for listen addresses); HOST is
 * non-empty and, unless bracketed, has no ':'. host and port may be NULL to
 * only check s. Errors: SX_INVALID_ARGUMENT with a message quoting s; host and
 * port are then unspecified. Pure; any thread. */
sx_status sx_hostport_parse(const char *s, char *host, size_t host_cap, uint16_t *port,
                            sx_err *err);

/* Splits a comma-separated list of HOST:PORT (each checked as
 * sx_hostport_parse does) into *out, *n strings the caller frees with
 * sx_hostport_list_free (out may be NULL: only check). An empty item or an
 * empty list is SX_INVALID_ARGUMENT. */
sx_status sx_hostport_list(const char *s, char ***out, size_t *n, sx_err *err);
void sx_hostport_list_free(char **list, size_t n);

#endif
