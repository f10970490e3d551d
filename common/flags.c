/* flags.c: sx_flags_parse over getopt_long, --help and the config log line.
 *
 * getopt_long sees a struct option array and an optstring built from the table
 * on each call. Long options get val = FLAG_VAL + index so that a returned
 * value maps straight back to its row (short options map by their letter);
 * --help is row `count`. The table is the only description of the flags: there
 * is no second list to keep in step.
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

#include "log.h"
#include "mem.h"

/* Long options return FLAG_VAL + row index: above every char getopt returns. */
#define FLAG_VAL 256

/* Room for "--name (from ENV_VAR)" in messages; longer names are cut. */
#define WHO_MAX 128

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
        (void)f;
    }
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

static sx_status parse_integer(const sx_flag *f, void *config, const char *who, const char *s,
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
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not an integer", who, s);
    /* On overflow v is clamped to the int64 range, which may equal the limit. */
    bool overflow = errno == ERANGE;
    bool below = overflow ? v < 0 : v < f_eff.min;
    bool above = overflow ? v > 0 : v > f_eff.max;
    sx_status rc = check_range(&f_eff, who, s, below, above, err);
    if (rc != SX_OK)
        return rc;
    if (f->type == SX_FLAG_UINT32)
        *(uint32_t *)field(config, f) = (uint32_t)v;
    else
        *(int64_t *)field(config, f) = (int64_t)v;
    return SX_OK;
}

typedef struct unit {
    const char *suffix;
    uint64_t mult;
} unit;

static const unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}, {NULL, 0},
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
static sx_status parse_scaled(const sx_flag *f, void *config, const char *who, const char *s,
                              sx_err *err)
{
    bool duration = f->type == SX_FLAG_DURATION_MS;
    const unit *units = duration ? duration_units : size_units;
    const char *what = duration ? "a duration (e.g. 500ms, 2s, 1m, 1h; no unit: ms)"
                                : "a size (e.g. 64, 4k, 4KiB, 8m, 1g; binary units)";
    if (!isdigit((unsigned char)s[0]))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not %s", who, s, what);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    bool overflow = errno == ERANGE;
    const unit *u = units;
    /* Durations are case-sensitive ("m" is minutes); sizes are not ("4K"). */
    while (u->suffix && (duration ? strcmp(end, u->suffix) : strcasecmp(end, u->suffix)) != 0)
        u++;
    if (!u->suffix)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is not %s", who, s, what);
    overflow = overflow || v > UINT64_MAX / u->mult;
    uint64_t total = overflow ? UINT64_MAX : (uint64_t)v * u->mult;
    if (overflow && !has_limits(f))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s: '%s' is too large", who, s);
    if (has_limits(f)) {
        bool below = total<(uint64_t)f->min, above = total>(uint64_t) f->max;
        sx_status rc = check_range(f, who, s, below, above, err);
        if (rc != SX_OK)
            return rc;
    }
    *(uint64_t *)field(config, f) = total;
    return SX_OK;
}

static sx_status parse_choice(const sx_flag *f, void *config, const char *who, const char *s,
                              sx_err *err)
{
    for (const char *const *c = f->choices; *c; c++) {
        if (strcmp(s, *c) == 0) {
            *(const char **)field(config, f) = s;
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

static sx_status parse_bool(const sx_flag *f, void *config, const char *who, const char *s,
                            sx_err *err)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *(bool *)field(config, f) = strcasecmp(s, yes[i]) == 0;
            return SX_OK;
        }
    }
    return sx_err_set(err, SX_INVALID_ARGUMENT,
                      "%s: '%s' is not a boolean (1, true, yes, on, 0, false, no, off)", who, s);
}

/* Parses s as f's value into config; who names the flag in messages. */
static sx_status set_value(const sx_flag *f, void *config, const char *who, const char *s,
                           sx_err *err)
{
    switch (f->type) {
    case SX_FLAG_BOOL:
        return parse_bool(f, config, who, s, err);
    case SX_FLAG_STRING:
        *(const char **)field(config, f) = s;
        return SX_OK;
    case SX_FLAG_INT:
    case SX_FLAG_UINT32:
        return parse_integer(f, config, who, s, err);
    case SX_FLAG_DURATION_MS:
    case SX_FLAG_SIZE:
        return parse_scaled(f, config, who, s, err);
    case SX_FLAG_CHOICE:
        return parse_choice(f, config, who, s, err);
    case SX_FLAG_HOSTPORT: {
        sx_status rc = sx_hostport_parse(s, NULL, 0, NULL, err);
        if (rc != SX_OK)
            return err ? sx_err_prefix(err, "%s", who) : rc;
        *(const char **)field(config, f) = s;
        return SX_OK;
    }
    }
    return sx_err_set(err, SX_INTERNAL, "%s: unknown flag type %d", who, (int)f->type);
}

/* The row for a getopt_long result c, or count for --help, or -1. */
static long row_of(const sx_flags_spec *spec, int c)
{
    if (c >= FLAG_VAL && (size_t)(c - FLAG_VAL) <= spec->count)
        return c - FLAG_VAL;
    if (c == 'h')
        return (long)spec->count;
    for (size_t i = 0; i < spec->count; i++)
        if (c != 0 && spec->flags[i].short_name == c)
            return (long)i;
    return -1;
}

static const char *row_name(const sx_flags_spec *spec, long row)
{
    return (size_t)row == spec->count ? "help" : spec->flags[row].name;
}

/* The command-line half of sx_flags_parse: getopt_long over argv. */
static sx_status parse_args(const sx_flags_spec *spec, void *config, int argc, char **argv,
                            const struct option *longopts, const char *optstring, bool *seen,
                            bool *help, int *next, sx_err *err)
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
        if ((size_t)row == spec->count) {
            *help = true;
            return SX_OK;
        }
        const sx_flag *f = &spec->flags[row];
        seen[row] = true;
        if (f->type == SX_FLAG_BOOL) {
            *(bool *)field(config, f) = true;
            continue;
        }
        char who[WHO_MAX];
        snprintf(who, sizeof(who), "--%s", f->name);
        sx_status rc = set_value(f, config, who, optarg, err);
        if (rc != SX_OK)
            return rc;
    }
    *next = optind;
    return SX_OK;
}

/* The environment and required-flag half of sx_flags_parse. */
static sx_status parse_env(const sx_flags_spec *spec, void *config, bool *seen, sx_err *err)
{
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        if (seen[i] || !f->env)
            continue;
        const char *v = getenv(f->env);
        if (!v || !v[0])
            continue;
        char who[WHO_MAX];
        snprintf(who, sizeof(who), "--%s (from %s)", f->name, f->env);
        sx_status rc = set_value(f, config, who, v, err);
        if (rc != SX_OK)
            return rc;
        seen[i] = true;
    }
    for (size_t i = 0; i < spec->count; i++) {
        const sx_flag *f = &spec->flags[i];
        if (!f->required || seen[i])
            continue;
        if (f->env)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s is required (or set %s)", f->name,
                              f->env);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "--%s is required", f->name);
    }
    return SX_OK;
}

sx_status sx_flags_parse(const sx_flags_spec *spec, void *config, int argc, char **argv, bool *help,
                         int *first_arg, sx_err *err)
{
    return sx_flags_parse_given(spec, config, argc, argv, help, first_arg, NULL, err);
}

sx_status sx_flags_parse_given(const sx_flags_spec *spec, void *config, int argc, char **argv,
                               bool *help, int *first_arg, bool *given, sx_err *err)
{
    check_table(spec);
    *help = false;
    struct option *longopts = sx_calloc(spec->count + 2, sizeof(*longopts));
    char *optstring = sx_malloc(2 * spec->count + 5);
    bool *seen = sx_calloc(spec->count + 1, sizeof(*seen));

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
    longopts[spec->count] = (struct option){"help", no_argument, NULL, FLAG_VAL + (int)spec->count};

    int saved_opterr = opterr;
    opterr = 0; /* messages come back through err, not on stderr */
    int next = argc;
    sx_status rc =
        parse_args(spec, config, argc, argv, longopts, optstring, seen, help, &next, err);
    opterr = saved_opterr;
    if (rc == SX_OK && !*help) {
        if (!first_arg && next < argc)
            rc = sx_err_set(err, SX_INVALID_ARGUMENT, "unexpected argument '%s'", argv[next]);
        else
            rc = parse_env(spec, config, seen, err);
        if (rc == SX_OK && first_arg)
            *first_arg = next;
    }
    if (given)
        memcpy(given, seen, spec->count * sizeof(*given));
    free(seen);
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

/* The parenthesized notes after a flag's help: limits, choices, default, env, required. */
static void notes(sx_buf *b, const sx_flag *f, const void *defaults)
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
    /* A required flag's default is never used, so it is not shown. */
    const char *def = defaults && !f->required ? format_value(tmp, sizeof(tmp), f, defaults) : NULL;
    if (def && !(f->type == SX_FLAG_BOOL && !*(const bool *)cfield(defaults, f))) {
        buf_printf(b, "%sdefault: ", sep);
        append_quoted(b, def);
        sep = "; ";
    }
    if (f->env) {
        buf_printf(b, "%senv: %s", sep, f->env);
        sep = "; ";
    }
    if (f->required) {
        buf_printf(b, "%srequired", sep);
        sep = "; ";
    }
    if (sep[0] == ';')
        sx_buf_push(b, ')');
}

void sx_flags_usage(const sx_flags_spec *spec, const void *defaults, FILE *out)
{
    sx_buf b = {0};
    size_t width = 0;
    for (size_t i = 0; i <= spec->count; i++) {
        sx_buf_reset(&b);
        if (i == spec->count)
            left_column(&b, 'h', "help", "");
        else
            left_column(&b, spec->flags[i].short_name, spec->flags[i].name,
                        metavar_of(&spec->flags[i]));
        if (b.len > width)
            width = b.len;
    }
    fprintf(out, "usage: %s %s\n", spec->prog, spec->synopsis ? spec->synopsis : "[FLAGS]");
    if (spec->description)
        fprintf(out, "\n%s\n", spec->description);
    fprintf(out, "\nflags:\n");
    for (size_t i = 0; i <= spec->count; i++) {
        sx_buf_reset(&b);
        const sx_flag *f = i < spec->count ? &spec->flags[i] : NULL;
        if (f)
            left_column(&b, f->short_name, f->name, metavar_of(f));
        else
            left_column(&b, 'h', "help", "");
        while (b.len < width + 2)
            sx_buf_push(&b, ' ');
        buf_puts(&b, f ? (f->help ? f->help : "") : "print this help and exit");
        if (f)
            notes(&b, f, defaults);
        fprintf(out, "%s\n", buf_cstr(&b));
    }
    sx_buf_free(&b);
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
