/* flags.c: sx_flags_parse over getopt_long, the environment and config
 * files, --help and the config log line.
 *
 * getopt_long sees a struct option array and an optstring built from the table
 * on each call. Long options get val = FLAG_VAL + index so that a returned
 * value maps straight back to its row (short options map by their letter);
 * --help is row `count`, --config row `count + 1`. The table is the only
 * description of the flags: there is no second list to keep in step.
 *
 * Each source (argv, then the environment, then the config file) parses into
 * a staged slot per row and marks where it came from; config is written only
 * once every source has parsed, so an error leaves it untouched.
 */
#include "flags.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flags_internal.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"

/* Long options return FLAG_VAL + row index: above every char getopt returns. */
#define FLAG_VAL 256

/* Room for "--name (from ENV_VAR)" or "FILE:LINE: key" in messages; longer
 * ones are cut (the whole message is SX_ERR_MSG_MAX anyway). */
#define WHO_MAX 512

/* Room for an environment variable's name, derived ones included. */
#define ENV_MAX 128

/* The rows after the table's: --help and, with spec->config, --config. */
#define ROW_HELP(spec) ((long)(spec)->count)
#define ROW_CONFIG(spec) ((long)(spec)->count + 1)

/* One flag's value on its way to config; the member is the flag's type's. */
typedef union slot {
    bool b;        /* BOOL */
    const char *s; /* STRING, CHOICE, HOSTPORT */
    int64_t i;     /* INT */
    uint32_t u32;  /* UINT32 */
    uint64_t u64;  /* DURATION_MS, SIZE */
} slot;

/* Where a staged value came from; a later source here beats an earlier one. */
typedef enum { FROM_DEFAULT, FROM_FILE, FROM_ENV, FROM_ARGS } source;

/* What one sx_flags_parse_given call has parsed so far, per row. */
typedef struct staged {
    slot *v;
    source *from;
    const char *config_path; /* --config's value, or NULL */
} staged;

struct sx_flags_file {
    char *path; /* a copy: messages and sx_flags_file_path outlive argv's */
    char *text; /* the bytes read plus a NUL, cut into keys and values in place */
};

#define MS_PER_S UINT64_C(1000)
#define MS_PER_M UINT64_C(60000)
#define MS_PER_H UINT64_C(3600000)

static void *field(void *config, const sx_flag *f)
{
    return (char *)config + f->offset;
}

static const void *cfield(const void *config, const sx_flag *f)
{
    return (const char *)config + f->offset;
}

static bool has_limits(const sx_flag *f)
{
    return f->min != 0 || f->max != 0;
}

static bool takes_value(const sx_flag *f)
{
    return f->type != SX_FLAG_BOOL;
}

/* No two flags of a program read one variable, nor any the config file's. */
static void check_env_names(const sx_flags_spec *spec)
{
    for (size_t i = 0; i < spec->count; i++) {
        char a[ENV_MAX], b[ENV_MAX];
        const char *ea = sx_flags_env(spec, &spec->flags[i], a, sizeof(a));
        assert(strcmp(ea, SX_FLAGS_CONFIG_ENV) != 0);
        for (size_t j = 0; j < i; j++)
            assert(strcmp(ea, sx_flags_env(spec, &spec->flags[j], b, sizeof(b))) != 0);
        (void)ea;
        (void)b;
    }
}

const char *sx_flags_env(const sx_flags_spec *spec, const sx_flag *f, char *buf, size_t cap)
{
    if (f->env || !spec->config)
        return f->env;
    size_t pre = strlen(SX_FLAGS_ENV_PREFIX), n = strlen(f->name);
    assert(pre + n < cap);
    (void)cap;
    memcpy(buf, SX_FLAGS_ENV_PREFIX, pre);
    for (size_t i = 0; i < n; i++)
        buf[pre + i] = f->name[i] == '-' ? '_' : (char)toupper((unsigned char)f->name[i]);
    buf[pre + n] = '\0';
    return buf;
}

/* The table is code, not input: mistakes in it are bugs, caught by assert. */
static void check_table(const sx_flags_spec *spec)
{
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        assert(f->name && f->name[0] && !strchr(f->name, '=') && strcmp(f->name, "help") != 0);
        assert(f->short_name == 0 ||
               (isalnum((unsigned char)f->short_name) && f->short_name != 'h'));
        assert(f->type >= SX_FLAG_BOOL && f->type <= SX_FLAG_HOSTPORT);
        assert(f->type != SX_FLAG_CHOICE || (f->choices && f->choices[0]));
        switch (f->type) {
        case SX_FLAG_INT:
            assert(f->min <= f->max);
            break;
        case SX_FLAG_UINT32:
            assert(f->min <= f->max && f->min >= 0 && f->max <= (int64_t)UINT32_MAX);
            break;
        case SX_FLAG_DURATION_MS:
        case SX_FLAG_SIZE:
            assert(f->min <= f->max && f->min >= 0);
            break;
        default:
            assert(!has_limits(f)); /* limits on a type that ignores them */
            break;
        }
        for (size_t j = 0; j < i; j++) {
            assert(strcmp(f->name, spec->flags[j].name) != 0);
            assert(f->short_name == 0 || f->short_name != spec->flags[j].short_name);
        }
        /* A config key needs no quoting and derives a valid variable name. */
        assert(!spec->config ||
               (strspn(f->name, "abcdefghijklmnopqrstuvwxyz0123456789-") == strlen(f->name) &&
                strcmp(f->name, "config") != 0));
        (void)f;
    }
    if (spec->config)
        check_env_names(spec);
}

static void buf_printf(sx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(sx_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    sx_buf_reserve(b, (size_t)n + 1); /* vsnprintf writes the NUL too */
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void buf_puts(sx_buf *b, const char *s)
{
    sx_buf_append(b, s, strlen(s));
}

/* NUL-terminates b without counting the NUL, so b->data is a C string. */
static const char *buf_cstr(sx_buf *b)
{
    sx_buf_reserve(b, 1);
    b->data[b->len] = '\0';
    return (const char *)b->data;
}

/* The largest unit that divides ms exactly, so the text parses back to ms. */
static void format_duration(char *out, size_t cap, uint64_t ms)
{
    if (ms != 0 && ms % MS_PER_H == 0)
        snprintf(out, cap, "%" PRIu64 "h", ms / MS_PER_H);
    else if (ms != 0 && ms % MS_PER_M == 0)
        snprintf(out, cap, "%" PRIu64 "m", ms / MS_PER_M);
    else if (ms != 0 && ms % MS_PER_S == 0)
        snprintf(out, cap, "%" PRIu64 "s", ms / MS_PER_S);
    else
        snprintf(out, cap, "%" PRIu64 "ms", ms);
}

static void format_size(char *out, size_t cap, uint64_t bytes)
{
    static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        unsigned shift = 10u * (unsigned)(4 - i);
        uint64_t unit = UINT64_C(1) << shift;
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(out, cap, "%" PRIu64 "%s", bytes >> shift, units[i]);
            return;
        }
    }
    snprintf(out, cap, "%" PRIu64, bytes);
}

/* A limit of f in the flag's own units ("1", "500ms", "4KiB"). */
static void format_limit(char *out, size_t cap, const sx_flag *f, int64_t v)
{
    if (f->type == SX_FLAG_DURATION_MS)
        format_duration(out, cap, (uint64_t)v);
    else if (f->type == SX_FLAG_SIZE)
        format_size(out, cap, (uint64_t)v);
    else
        snprintf(out, cap, "%" PRId64, v);
}

/* The value of f in config as text; NULL for a NULL string. */
static const char *format_value(char *out, size_t cap, const sx_flag *f, const void *config)
{
    const void *p = cfield(config, f);
    switch (f->type) {
    case SX_FLAG_BOOL:
        return *(const bool *)p ? "true" : "false";
    case SX_FLAG_STRING:
    case SX_FLAG_CHOICE:
    case SX_FLAG_HOSTPORT:
        return *(const char *const *)p;
    case SX_FLAG_INT:
        snprintf(out, cap, "%" PRId64, *(const int64_t *)p);
        return out;
    case SX_FLAG_UINT32:
        snprintf(out, cap, "%" PRIu32, *(const uint32_t *)p);
        return out;
    case SX_FLAG_DURATION_MS:
        format_duration(out, cap, *(const uint64_t *)p);
        return out;
    case SX_FLAG_SIZE:
        format_size(out, cap, *(const uint64_t *)p);
        return out;
    }
    return NULL;
}

/* Appends s, double-quoted and escaped when a key=value reader would misread it. */
static void append_quoted(sx_buf *b, const char *s)
{
    bool quote = s[0] == '\0';
    for (const char *c = s; *c && !quote; c++)
        quote = *c == ' ' || *c == '"' || *c == '=' || *c == '\\' || iscntrl((unsigned char)*c);
    if (!quote) {
        buf_puts(b, s);
        return;
    }
    sx_buf_push(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            sx_buf_push(b, '\\');
            sx_buf_push(b, *c);
        } else if (*c == '\n') {
            buf_puts(b, "\\n");
        } else if (iscntrl(*c)) {
            buf_printf(b, "\\x%02x", *c);
        } else {
            sx_buf_push(b, *c);
        }
    }
    sx_buf_push(b, '"');
}

/* The message for a value below or above f's limits, naming the limit; SX_OK if neither. */
static sx_status check_range(const sx_flag *f, const char *who, const char *text, bool below,
                             bool above, sx_err *err)
{
    char lim[32];
    if (below) {
        format_limit(lim, sizeof(lim), f, f->min);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: %s is below the minimum %s", who, text,
                          lim);
    }
    if (above) {
        format_limit(lim, sizeof(lim), f, f->max);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: %s is above the maximum %s", who, text,
                          lim);
    }
    return SX_OK;
}

static sx_status parse_integer(const sx_flag *f, slot *v, const char *who, const char *s,
                               sx_err *err)
{
    sx_flag f_eff = *f; /* f with the type's range filled in when it has no limits */
    if (!has_limits(f)) {
        f_eff.min = f->type == SX_FLAG_UINT32 ? 0 : INT64_MIN;
        f_eff.max = f->type == SX_FLAG_UINT32 ? (int64_t)UINT32_MAX : INT64_MAX;
    }
    /* strtoll skips leading space and accepts "+"; a flag value should not. */
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not an integer", who, s);
    errno = 0;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (*end != '\0')
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not an integer", who, s);
    /* On overflow v is clamped to the int64 range, which may equal the limit. */
    bool overflow = errno == ERANGE;
    bool below = overflow ? n < 0 : n < f_eff.min;
    bool above = overflow ? n > 0 : n > f_eff.max;
    sx_status rc = check_range(&f_eff, who, s, below, above, err);
    if (rc != SX_OK)
        return rc;
    if (f->type == SX_FLAG_UINT32)
        v->u32 = (uint32_t)n;
    else
        v->i = (int64_t)n;
    return SX_OK;
}

typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

static const unit duration_units[] = {
    {"", 1},   {"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {"d", 24 * MS_PER_H},
    {NULL, 0},
};

/* Binary multiples: "4k" and "4KiB" are both 4096; "kb" is refused as ambiguous. */
static const unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", UINT64_C(1) << 10},
    {"kib", UINT64_C(1) << 10},
    {"m", UINT64_C(1) << 20},
    {"mib", UINT64_C(1) << 20},
    {"g", UINT64_C(1) << 30},
    {"gib", UINT64_C(1) << 30},
    {"t", UINT64_C(1) << 40},
    {"tib", UINT64_C(1) << 40},
    {NULL, 0},
};

/* DURATION_MS and SIZE: digits, then an optional unit from the list. */
static sx_status parse_scaled(const sx_flag *f, slot *v, const char *who, const char *s,
                              sx_err *err)
{
    bool duration = f->type == SX_FLAG_DURATION_MS;
    const unit *units = duration ? duration_units : size_units;
    const char *what = duration ? "a duration (e.g. 500ms, 2s, 1m, 1h, 7d; no unit: ms)"
                                : "a size (e.g. 64, 4k, 4KiB, 8m, 1g; binary units)";
    if (!isdigit((unsigned char)s[0]))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not %s", who, s, what);
    errno = 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    bool overflow = errno == ERANGE;
    const unit *u = units;
    /* Durations are case-sensitive ("m" is minutes); sizes are not ("4K"). */
    while (u->suffix && (duration ? strcmp(end, u->suffix) : strcasecmp(end, u->suffix)) != 0)
        u++;
    if (!u->suffix)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not %s", who, s, what);
    overflow = overflow || n > UINT64_MAX / u->mult;
    uint64_t total = overflow ? UINT64_MAX : (uint64_t)n * u->mult;
    if (overflow && !has_limits(f))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is too large", who, s);
    if (has_limits(f)) {
        bool below = total<(uint64_t)f->min, above = total>(uint64_t) f->max;
        sx_status rc = check_range(f, who, s, below, above, err);
        if (rc != SX_OK)
            return rc;
    }
    v->u64 = total;
    return SX_OK;
}

sx_status sx_flags_parse_scaled(const char *s, bool duration, const char *who, uint64_t *out,
                                sx_err *err)
{
    sx_flag f = {.type = duration ? SX_FLAG_DURATION_MS : SX_FLAG_SIZE};
    slot v = {0};
    sx_status st = parse_scaled(&f, &v, who, s, err);
    if (st == SX_OK)
        *out = v.u64;
    return st;
}

static sx_status parse_choice(const sx_flag *f, slot *v, const char *who, const char *s,
                              sx_err *err)
{
    for (const char *const *c = f->choices; *c; c++) {
        if (strcmp(s, *c) == 0) {
            v->s = s;
            return SX_OK;
        }
    }
    sx_buf list = {0};
    for (const char *const *c = f->choices; *c; c++)
        buf_printf(&list, "%s%s", c == f->choices ? "" : ", ", *c);
    sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not one of: %s", who, s, buf_cstr(&list));
    sx_buf_free(&list);
    return SX_INVALID_ARGUMENT;
}

static sx_status parse_bool(slot *v, const char *who, const char *s, sx_err *err)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            v->b = strcasecmp(s, yes[i]) == 0;
            return SX_OK;
        }
    }
    return sx_err_set(err, SX_INVALID_ARGUMENT,
                      "%s: '%s' is not a boolean (1, true, yes, on, 0, false, no, off)", who, s);
}

/* Parses s as f's value into *v; who names the flag in messages. */
static sx_status set_value(const sx_flag *f, slot *v, const char *who, const char *s, sx_err *err)
{
    switch (f->type) {
    case SX_FLAG_BOOL:
        return parse_bool(v, who, s, err);
    case SX_FLAG_STRING:
        v->s = s;
        return SX_OK;
    case SX_FLAG_INT:
    case SX_FLAG_UINT32:
        return parse_integer(f, v, who, s, err);
    case SX_FLAG_DURATION_MS:
    case SX_FLAG_SIZE:
        return parse_scaled(f, v, who, s, err);
    case SX_FLAG_CHOICE:
        return parse_choice(f, v, who, s, err);
    case SX_FLAG_HOSTPORT: {
        sx_status rc = sx_hostport_parse(s, NULL, 0, NULL, err);
        if (rc != SX_OK)
            return err ? sx_err_prefix(err, "%s", who) : rc;
        v->s = s;
        return SX_OK;
    }
    }
    return sx_err_set(err, SX_INTERNAL, "%s: unknown flag type %d", who, (int)f->type);
}

/* Writes a staged value into f's field of config. */
static void store(const sx_flag *f, void *config, const slot *v)
{
    void *p = field(config, f);
    switch (f->type) {
    case SX_FLAG_BOOL:
        *(bool *)p = v->b;
        break;
    case SX_FLAG_STRING:
    case SX_FLAG_CHOICE:
    case SX_FLAG_HOSTPORT:
        *(const char **)p = v->s;
        break;
    case SX_FLAG_INT:
        *(int64_t *)p = v->i;
        break;
    case SX_FLAG_UINT32:
        *(uint32_t *)p = v->u32;
        break;
    case SX_FLAG_DURATION_MS:
    case SX_FLAG_SIZE:
        *(uint64_t *)p = v->u64;
        break;
    }
}

/* The row for a getopt_long result c, ROW_HELP, ROW_CONFIG, or -1. */
static long row_of(const sx_flags_spec *spec, int c)
{
    if (c >= FLAG_VAL && (size_t)(c - FLAG_VAL) <= spec->count + 1)
        return c - FLAG_VAL;
    if (c == 'h')
        return ROW_HELP(spec);
    for (size_t i = 0; i < spec->count; i++)
        if (c != 0 && spec->flags[i].short_name == c)
            return (long)i;
    return -1;
}

static const char *row_name(const sx_flags_spec *spec, long row)
{
    if (row == ROW_HELP(spec))
        return "help";
    return row == ROW_CONFIG(spec) ? "config" : spec->flags[row].name;
}

/* The command-line source: getopt_long over argv. */
static sx_status parse_args(const sx_flags_spec *spec, staged *st, int argc, char **argv,
                            const struct option *longopts, const char *optstring, bool *help,
                            int *next, sx_err *err)
{
    optind = 0; /* glibc: 0 re-initializes getopt fully, including the "+" mode */
    for (;;) {
        int elem = optind ? optind : 1; /* argv index of the element getopt reads now */
        int c = getopt_long(argc, argv, optstring, longopts, NULL);
        if (c == -1)
            break;
        if (c == '?') {
            if (optopt >= FLAG_VAL)
                return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s does not take a value",
                                  row_name(spec, optopt - FLAG_VAL));
            if (optopt != 0)
                return sx_err_set(err, SX_INVALID_ARGUMENT, "unknown flag '-%c'", optopt);
            return sx_err_set(err, SX_INVALID_ARGUMENT, "unknown flag '%s'", argv[elem]);
        }
        if (c == ':') {
            long row = row_of(spec, optopt);
            assert(row >= 0);
            return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s: missing value", row_name(spec, row));
        }
        long row = row_of(spec, c);
        assert(row >= 0);
        if (c >= FLAG_VAL) {
            /* getopt_long took a unique prefix; require the whole name. */
            const char *arg = argv[elem] + 2;
            const char *name = row_name(spec, row);
            size_t n = strcspn(arg, "=");
            if (n != strlen(name) || strncmp(arg, name, n) != 0)
                return sx_err_set(err, SX_INVALID_ARGUMENT,
                                  "unknown flag '--%.*s' (did you mean --%s?)", (int)n, arg, name);
        }
        if (row == ROW_HELP(spec)) {
            *help = true;
            return SX_OK;
        }
        if (row == ROW_CONFIG(spec)) {
            st->config_path = optarg;
            continue;
        }
        const sx_flag *f = &spec->flags[row];
        st->from[row] = FROM_ARGS;
        if (f->type == SX_FLAG_BOOL) {
            st->v[row].b = true;
            continue;
        }
        char who[WHO_MAX];
        snprintf(who, sizeof(who), "--%s", f->name);
        sx_status rc = set_value(f, &st->v[row], who, optarg, err);
        if (rc != SX_OK)
            return rc;
    }
    *next = optind;
    return SX_OK;
}

/* The environment source: every flag the command line did not set. */
static sx_status parse_env(const sx_flags_spec *spec, staged *st, sx_err *err)
{
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        char name[ENV_MAX];
        const char *env = sx_flags_env(spec, f, name, sizeof(name));
        if (st->from[i] != FROM_DEFAULT || !env)
            continue;
        const char *v = getenv(env);
        if (!v || !v[0])
            continue;
        char who[WHO_MAX];
        snprintf(who, sizeof(who), "--%s (from %s)", f->name, env);
        sx_status rc = set_value(f, &st->v[i], who, v, err);
        if (rc != SX_OK)
            return rc;
        st->from[i] = FROM_ENV;
    }
    return SX_OK;
}

/* Every required flag has come from somewhere. */
static sx_status check_required(const sx_flags_spec *spec, const staged *st, sx_err *err)
{
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        if (!f->required || st->from[i] != FROM_DEFAULT)
            continue;
        char name[ENV_MAX];
        const char *env = sx_flags_env(spec, f, name, sizeof(name));
        if (spec->config)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "--%s is required (or set %s, or %s in the config file)", f->name,
                              env, f->name);
        if (env)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s is required (or set %s)", f->name,
                              env);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s is required", f->name);
    }
    return SX_OK;
}

/* ----------------------------------------------------------- config file -- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *skip_blanks(char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

/* The row whose long name is key, or -1. */
static long find_row(const sx_flags_spec *spec, const char *key)
{
    for (size_t i = 0; i < spec->count; i++)
        if (strcmp(spec->flags[i].name, key) == 0)
            return (long)i;
    return -1;
}

/* The message for a key that names no flag: a hint for "write_buffer". */
static sx_status unknown_key(const sx_flags_spec *spec, const char *who, const char *key,
                             sx_err *err)
{
    if (strcmp(key, "config") == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "%s: not a key (a config file cannot name another)", who);
    char dashed[64];
    size_t n = strlen(key);
    if (n < sizeof(dashed) && strchr(key, '_')) {
        for (size_t i = 0; i <= n; i++)
            dashed[i] = key[i] == '_' ? '-' : key[i];
        if (find_row(spec, dashed) >= 0)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: unknown key (did you mean %s?)", who,
                              dashed);
    }
    return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: unknown key", who);
}

/* Cuts the value out of s (the text after '=') in place: *out is unquoted
 * and unescaped, NUL-terminated. */
static sx_status cut_value(char *s, const char *who, char **out, sx_err *err)
{
    s = skip_blanks(s);
    if (*s == '"') {
        char *r = s + 1, *w = s + 1; /* read and write ends: unescaping only shrinks */
        for (; *r != '"'; r++) {
            if (*r == '\0')
                return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: no closing quote", who);
            if (*r == '\\') {
                r++;
                if (*r == '\0')
                    return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: no closing quote", who);
                if (*r != '"' && *r != '\\')
                    return sx_err_set(err, SX_INVALID_ARGUMENT,
                                      "%s: unknown escape '\\%c' (only \\\" and \\\\)", who, *r);
            }
            *w++ = *r;
        }
        char *after = skip_blanks(r + 1);
        if (*after != '\0' && *after != '#')
            return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: text after the closing quote", who);
        *w = '\0';
        *out = s + 1;
        return SX_OK;
    }
    /* Unquoted: up to a '#' that begins the value or follows a blank. */
    char *e = s;
    while (*e != '\0' && !(*e == '#' && (e == s || is_blank(e[-1]))))
        e++;
    while (e > s && is_blank(e[-1]))
        e--;
    *e = '\0';
    if (*s == '\0')
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "%s: missing value (\"\" for an empty one; a comment starts at '#')",
                          who);
    *out = s;
    return SX_OK;
}

/* One line (NUL-terminated, without its '\n') of the file called name into
 * v[row]; line_of[row] records the line number of each key seen. */
static sx_status parse_line(const sx_flags_spec *spec, const char *name, uint32_t line, char *s,
                            slot *v, uint32_t *line_of, sx_err *err)
{
    s = skip_blanks(s);
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '\r')
        s[--n] = '\0';
    if (*s == '\0' || *s == '#')
        return SX_OK;
    char who[WHO_MAX];
    char *eq = strchr(s, '=');
    if (!eq) {
        int word = (int)strcspn(s, " \t");
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s:%" PRIu32 ": %.*s: expected 'key = value'",
                          name, line, word, s);
    }
    char *kend = eq;
    while (kend > s && is_blank(kend[-1]))
        kend--;
    *kend = '\0';
    if (*s == '\0')
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s:%" PRIu32 ": no key before '='", name,
                          line);
    snprintf(who, sizeof(who), "%s:%" PRIu32 ": %s", name, line, s);
    long row = find_row(spec, s);
    if (row < 0)
        return unknown_key(spec, who, s, err);
    if (line_of[row])
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: repeated (first on line %" PRIu32 ")", who,
                          line_of[row]);
    char *value = NULL;
    sx_status rc = cut_value(eq + 1, who, &value, err);
    if (rc == SX_OK)
        rc = set_value(&spec->flags[row], &v[row], who, value, err);
    if (rc == SX_OK)
        line_of[row] = line;
    return rc;
}

/* Parses text (len bytes and a NUL, cut up in place) as the config file
 * called name: every key's value into v[row], its line number into
 * line_of[row] (zeroed by the caller; 0: not in the file). */
static sx_status parse_text(const sx_flags_spec *spec, const char *name, char *text, size_t len,
                            slot *v, uint32_t *line_of, sx_err *err)
{
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        uint32_t line = 1;
        for (const char *c = text; c < nul; c++)
            line += *c == '\n';
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s:%" PRIu32 ": a NUL byte", name, line);
    }
    char *end = text + len; /* the NUL after the text */
    uint32_t line = 0;
    for (char *p = text; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        *eol = '\0';
        sx_status rc = parse_line(spec, name, ++line, p, v, line_of, err);
        if (rc != SX_OK)
            return rc;
        p = eol + 1;
    }
    return SX_OK;
}

/* A file object owning a copy of path and text (len bytes; a NUL is added). */
static sx_flags_file *file_new(const char *path, const char *text, size_t len)
{
    sx_flags_file *file = sx_calloc(1, sizeof(*file));
    size_t plen = strlen(path);
    file->path = sx_malloc(plen + 1);
    memcpy(file->path, path, plen + 1);
    file->text = sx_malloc(len + 1);
    if (len)
        memcpy(file->text, text, len);
    file->text[len] = '\0';
    return file;
}

void sx_flags_file_free(sx_flags_file *file)
{
    if (!file)
        return;
    free(file->text);
    free(file->path);
    free(file);
}

const char *sx_flags_file_path(const sx_flags_file *file)
{
    return file->path;
}

/* Parses a config file's text into file-sourced slots, then hands them to
 * every row that no later source set. */
static sx_status apply_text(const sx_flags_spec *spec, staged *st, sx_flags_file *file, size_t len,
                            sx_err *err)
{
    slot *v = sx_calloc(spec->count + 1, sizeof(*v));
    uint32_t *line_of = sx_calloc(spec->count + 1, sizeof(*line_of));
    sx_status rc = parse_text(spec, file->path, file->text, len, v, line_of, err);
    for (size_t i = 0; rc == SX_OK && i < spec->count; i++) {
        if (line_of[i] && st->from[i] == FROM_DEFAULT) {
            st->v[i] = v[i];
            st->from[i] = FROM_FILE;
        }
    }
    free(line_of);
    free(v);
    return rc;
}

/* The config file source: reads the file that --config or SHARDEX_CONFIG
 * names (if any) into *file and applies it. */
static sx_status parse_file(const sx_flags_spec *spec, staged *st, sx_flags_file **file,
                            sx_err *err)
{
    const char *path = st->config_path;
    const char *who = "--config";
    if (!path) {
        path = getenv(SX_FLAGS_CONFIG_ENV);
        if (!path || !path[0])
            return SX_OK;
        who = "--config (from " SX_FLAGS_CONFIG_ENV ")";
    }
    if (!path[0])
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: empty file name", who);
    sx_buf b = {0};
    bool found = false;
    sx_err read_err = {0};
    sx_status rc = sx_file_read(path, SX_FLAGS_FILE_MAX, &b, &found, &read_err);
    if (rc == SX_OUT_OF_RANGE)
        rc = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: %s: larger than %u bytes", who, path,
                        SX_FLAGS_FILE_MAX);
    else if (rc != SX_OK)
        rc = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: %s", who, read_err.msg);
    else if (!found)
        rc = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: %s: no such file", who, path);
    if (rc == SX_OK) {
        *file = file_new(path, (const char *)b.data, b.len);
        rc = apply_text(spec, st, *file, b.len, err);
    }
    sx_buf_free(&b);
    return rc;
}

sx_status sx__flags_parse_text(const sx_flags_spec *spec, void *config, const char *name,
                               const char *text, size_t len, sx_flags_file **file, sx_err *err)
{
    check_table(spec);
    *file = file_new(name, text, len);
    staged st = {.v = sx_calloc(spec->count + 1, sizeof(*st.v)),
                 .from = sx_calloc(spec->count + 1, sizeof(*st.from))};
    sx_status rc = apply_text(spec, &st, *file, len, err);
    for (size_t i = 0; rc == SX_OK && i < spec->count; i++)
        if (st.from[i] != FROM_DEFAULT)
            store(&spec->flags[i], config, &st.v[i]);
    if (rc != SX_OK) {
        sx_flags_file_free(*file);
        *file = NULL;
    }
    free(st.from);
    free(st.v);
    return rc;
}

/* ----------------------------------------------------------------- parse -- */

sx_status sx_flags_parse(const sx_flags_spec *spec, void *config, int argc, char **argv, bool *help,
                         int *first_arg, sx_err *err)
{
    return sx_flags_parse_given(spec, config, argc, argv, help, first_arg, NULL, NULL, err);
}

/* getopt_long's tables for spec: longopts (count + 3 rows) and optstring. */
static void build_options(const sx_flags_spec *spec, struct option *longopts, char *optstring)
{
    /* "+": stop at the first positional argument; ":": report a missing value as ':'. */
    size_t k = 0;
    optstring[k++] = '+';
    optstring[k++] = ':';
    optstring[k++] = 'h';
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        longopts[i] = (struct option){f->name, takes_value(f) ? required_argument : no_argument,
                                      NULL, FLAG_VAL + (int)i};
        if (f->short_name) {
            optstring[k++] = f->short_name;
            if (takes_value(f))
                optstring[k++] = ':';
        }
    }
    optstring[k] = '\0';
    size_t n = spec->count;
    longopts[n++] = (struct option){"help", no_argument, NULL, FLAG_VAL + (int)ROW_HELP(spec)};
    if (spec->config)
        longopts[n++] =
            (struct option){"config", required_argument, NULL, FLAG_VAL + (int)ROW_CONFIG(spec)};
    longopts[n] = (struct option){0};
}

/* The sources after the command line, then the required check; config gets
 * the staged values only if all of it passed. */
static sx_status finish(const sx_flags_spec *spec, void *config, staged *st, sx_flags_file **file,
                        sx_err *err)
{
    sx_status rc = parse_env(spec, st, err);
    if (rc == SX_OK && spec->config)
        rc = parse_file(spec, st, file, err);
    if (rc == SX_OK)
        rc = check_required(spec, st, err);
    if (rc != SX_OK)
        return rc;
    for (size_t i = 0; i < spec->count; i++)
        if (st->from[i] != FROM_DEFAULT)
            store(&spec->flags[i], config, &st->v[i]);
    return SX_OK;
}

sx_status sx_flags_parse_given(const sx_flags_spec *spec, void *config, int argc, char **argv,
                               bool *help, int *first_arg, bool *given, sx_flags_file **file,
                               sx_err *err)
{
    check_table(spec);
    assert(!spec->config || file); /* the caller must own the file's text */
    sx_flags_file *read = NULL;
    *help = false;
    struct option *longopts = sx_calloc(spec->count + 3, sizeof(*longopts));
    char *optstring = sx_malloc(2 * spec->count + 5);
    staged st = {.v = sx_calloc(spec->count + 1, sizeof(*st.v)),
                 .from = sx_calloc(spec->count + 1, sizeof(*st.from))};
    build_options(spec, longopts, optstring);

    int saved_opterr = opterr;
    opterr = 0; /* messages come back through err, not on stderr */
    int next = argc;
    sx_status rc = parse_args(spec, &st, argc, argv, longopts, optstring, help, &next, err);
    opterr = saved_opterr;
    if (rc == SX_OK && !*help) {
        if (!first_arg && next < argc)
            rc = sx_err_set(err, SX_INVALID_ARGUMENT, "unexpected argument '%s'", argv[next]);
        else
            rc = finish(spec, config, &st, &read, err);
        if (rc == SX_OK && first_arg)
            *first_arg = next;
    }
    if (rc != SX_OK) {
        sx_flags_file_free(read);
        read = NULL;
    }
    if (file)
        *file = read;
    for (size_t i = 0; given && i < spec->count; i++)
        given[i] = rc == SX_OK && !*help && st.from[i] != FROM_DEFAULT;
    free(st.from);
    free(st.v);
    free(optstring);
    free(longopts);
    return rc;
}

static const char *metavar_of(const sx_flag *f)
{
    if (f->metavar)
        return f->metavar;
    switch (f->type) {
    case SX_FLAG_BOOL:
        return "";
    case SX_FLAG_INT:
    case SX_FLAG_UINT32:
        return "N";
    case SX_FLAG_DURATION_MS:
        return "DURATION";
    case SX_FLAG_SIZE:
        return "SIZE";
    case SX_FLAG_CHOICE:
        return "CHOICE";
    case SX_FLAG_HOSTPORT:
        return "HOST:PORT";
    case SX_FLAG_STRING:
        break;
    }
    return "VALUE";
}

/* "  -s, --name METAVAR" or "      --name METAVAR". */
static void left_column(sx_buf *b, char short_name, const char *name, const char *metavar)
{
    if (short_name)
        buf_printf(b, "  -%c, --%s", short_name, name);
    else
        buf_printf(b, "      --%s", name);
    if (metavar[0])
        buf_printf(b, " %s", metavar);
}

/* Whether f's value in defaults is within its limits (true when it has none). */
static bool default_in_range(const sx_flag *f, const void *defaults)
{
    if (!has_limits(f))
        return true;
    const void *p = cfield(defaults, f);
    if (f->type == SX_FLAG_INT)
        return *(const int64_t *)p >= f->min && *(const int64_t *)p <= f->max;
    uint64_t v = f->type == SX_FLAG_UINT32 ? *(const uint32_t *)p : *(const uint64_t *)p;
    return v >= (uint64_t)f->min && v <= (uint64_t)f->max;
}

/* The parenthesized notes after a flag's help: limits, choices, default, env, required. */
static void notes(sx_buf *b, const sx_flags_spec *spec, const sx_flag *f, const void *defaults)
{
    const char *sep = " (";
    if (has_limits(f)) {
        char lo[32], hi[32];
        format_limit(lo, sizeof(lo), f, f->min);
        format_limit(hi, sizeof(hi), f, f->max);
        buf_printf(b, "%s%s..%s", sep, lo, hi);
        sep = "; ";
    }
    if (f->type == SX_FLAG_CHOICE) {
        buf_printf(b, "%sone of:", sep);
        for (const char *const *c = f->choices; *c; c++)
            buf_printf(b, "%s%s", c == f->choices ? " " : ", ", *c);
        sep = "; ";
    }
    char tmp[48];
    /* A required flag's default is never used, and one outside the limits
     * stands for "worked out from other flags" (the help text says how): so
     * neither is shown, and neither could be written back as a value. */
    const char *def = defaults && !f->required && default_in_range(f, defaults)
                          ? format_value(tmp, sizeof(tmp), f, defaults)
                          : NULL;
    if (def && !(f->type == SX_FLAG_BOOL && !*(const bool *)cfield(defaults, f))) {
        buf_printf(b, "%sdefault: ", sep);
        append_quoted(b, def);
        sep = "; ";
    }
    char name[ENV_MAX];
    const char *env = sx_flags_env(spec, f, name, sizeof(name));
    if (env) {
        buf_printf(b, "%senv: %s", sep, env);
        sep = "; ";
    }
    if (f->required) {
        buf_printf(b, "%srequired", sep);
        sep = "; ";
    }
    if (sep[0] == ';')
        sx_buf_push(b, ')');
}

/* Usage rows after the table's: --config FILE (with spec->config), then --help. */
static size_t extra_rows(const sx_flags_spec *spec)
{
    return spec->config ? 2 : 1;
}

/* Row i of --help into b, without its help text: a flag, --config or --help. */
static const sx_flag *usage_left(sx_buf *b, const sx_flags_spec *spec, size_t i)
{
    if (i < spec->count) {
        const sx_flag *f = &spec->flags[i];
        left_column(b, f->short_name, f->name, metavar_of(f));
        return f;
    }
    if (spec->config && i == spec->count)
        left_column(b, 0, "config", "FILE");
    else
        left_column(b, 'h', "help", "");
    return NULL;
}

/* The paragraph after the flags of a spec with .config: the file's format,
 * with one of its flags as the example line, and the precedence. */
static void config_note(const sx_flags_spec *spec, const void *defaults, FILE *out)
{
    const sx_flag *f = &spec->flags[0];
    const char *value = metavar_of(f);
    char tmp[48];
    for (size_t i = 0; defaults && i < spec->count; i++) {
        const sx_flag *g = &spec->flags[i];
        const char *v = g->required || g->type == SX_FLAG_BOOL || !default_in_range(g, defaults)
                            ? NULL
                            : format_value(tmp, sizeof(tmp), g, defaults);
        if (v) {
            f = g;
            value = v;
            break;
        }
    }
    sx_buf b = {0};
    append_quoted(&b, value);
    fprintf(out,
            "\nconfig file (--config FILE, or %s): one `key = value` per line, the key being\n"
            "a flag's long name, e.g. `%s = %s`; '#' starts a comment; a value may be\n"
            "\"double-quoted\" (escapes: \\\" and \\\\). Each flag comes from the command line,\n"
            "else its env variable, else the config file, else its default.\n",
            SX_FLAGS_CONFIG_ENV, f->name, buf_cstr(&b));
    sx_buf_free(&b);
}

void sx_flags_usage(const sx_flags_spec *spec, const void *defaults, FILE *out)
{
    sx_buf b = {0};
    size_t width = 0, rows = spec->count + extra_rows(spec);
    for (size_t i = 0; i < rows; i++) {
        sx_buf_reset(&b);
        usage_left(&b, spec, i);
        if (b.len > width)
            width = b.len;
    }
    fprintf(out, "usage: %s %s\n", spec->prog, spec->synopsis ? spec->synopsis : "[FLAGS]");
    if (spec->description)
        fprintf(out, "\n%s\n", spec->description);
    fprintf(out, "\nflags:\n");
    for (size_t i = 0; i < rows; i++) {
        sx_buf_reset(&b);
        const sx_flag *f = usage_left(&b, spec, i);
        while (b.len < width + 2)
            sx_buf_push(&b, ' ');
        if (f) {
            buf_puts(&b, f->help ? f->help : "");
            notes(&b, spec, f, defaults);
        } else if (i == spec->count && spec->config) {
            buf_puts(&b,
                     "read flags from FILE, key = value lines (see below; env: " SX_FLAGS_CONFIG_ENV
                     ")");
        } else {
            buf_puts(&b, "print this help and exit");
        }
        fprintf(out, "%s\n", buf_cstr(&b));
    }
    sx_buf_free(&b);
    if (spec->config)
        config_note(spec, defaults, out);
}

void sx_flags_log_config(const sx_flags_spec *spec, const void *config, const char *component)
{
    sx_buf b = {0};
    buf_puts(&b, "config");
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        char tmp[48];
        const char *v = format_value(tmp, sizeof(tmp), f, config);
        buf_printf(&b, " %s=", f->name);
        if (v)
            append_quoted(&b, v);
        else
            buf_puts(&b, "(none)");
    }
    SX_LOG(SX_LOG_INFO, component, "%s", buf_cstr(&b));
    sx_buf_free(&b);
}

sx_status sx_hostport_parse(const char *s, char *host, size_t host_cap, uint16_t *port, sx_err *err)
{
    const char *h, *p; /* host start, and the ':' before the port */
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s': missing ']' after IPv6 address", s);
        h = s + 1;
        hlen = (size_t)(close - h);
        p = close + 1;
        if (*p != ':')
            return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s' is not [IPV6]:PORT", s);
    } else {
        p = strrchr(s, ':');
        if (!p)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s' is not HOST:PORT (no port)", s);
        h = s;
        hlen = (size_t)(p - h);
        if (memchr(h, ':', hlen))
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "'%s': an IPv6 address needs brackets, as in [::1]:7000", s);
    }
    if (hlen == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s': empty host", s);
    p++;
    size_t plen = strlen(p);
    bool digits = plen >= 1 && plen <= 5 && strspn(p, "0123456789") == plen;
    unsigned long pv = digits ? strtoul(p, NULL, 10) : 0;
    if (!digits || pv > 65535)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s': port '%s' is not a number in 0..65535",
                          s, p);
    if (host) {
        if (hlen >= host_cap)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "'%s': host longer than %zu bytes", s,
                              host_cap ? host_cap - 1 : 0);
        memcpy(host, h, hlen);
        host[hlen] = '\0';
    }
    if (port)
        *port = (uint16_t)pv;
    return SX_OK;
}

sx_status sx_hostport_list(const char *s, char ***out, size_t *n, sx_err *err)
{
    char **list = NULL;
    size_t count = 0;
    sx_status st = SX_OK;
    for (const char *p = s;; p++) {
        size_t len = strcspn(p, ",");
        char *one = sx_malloc(len + 1);
        memcpy(one, p, len);
        one[len] = '\0';
        if (len == 0)
            st =
                sx_err_set(err, SX_INVALID_ARGUMENT, "\"%.200s\": an empty address in the list", s);
        else
            st = sx_hostport_parse(one, NULL, 0, NULL, err);
        if (st != SX_OK) {
            free(one);
            break;
        }
        list = sx_realloc(list, (count + 1) * sizeof(*list));
        list[count++] = one;
        p += len;
        if (!*p)
            break;
    }
    if (st != SX_OK || !out) {
        sx_hostport_list_free(list, count);
        list = NULL;
        count = 0;
    }
    if (out)
        *out = list;
    if (n)
        *n = count;
    return st;
}

void sx_hostport_list_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}
