/* fuzz_config.c: the config file parser of common/flags.c (the format at the
 * top of flags.h), through sx__flags_parse_text, on a table with one flag of
 * every type, limited and not.
 *
 * Input: the file's bytes. Properties: an error is SX_INVALID_ARGUMENT whose
 * message begins with the file's name and leaves the config struct as it was;
 * a file that parses, written back as `key = value` lines (every value set,
 * strings double-quoted with \" and \\ escaped, numbers in their base unit),
 * parses to the same values; the file's text outlives the parse only in the
 * sx_flags_file, which is freed (a leak fails the run).
 */
#include "fuzz.h"

#include "flags_internal.h"
#include "mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define NAME "fuzz.conf"

typedef struct cfg {
    bool b;
    const char *s;
    int64_t i;      /* -100..100 */
    int64_t big;    /* int64 range */
    uint32_t u;     /* 1..256 */
    uint32_t u_any; /* uint32 range */
    uint64_t d;     /* 1ms..1h */
    uint64_t d_any;
    uint64_t z; /* 4KiB..1GiB */
    uint64_t z_any;
    const char *c;
    const char *h;
} cfg;

static const char *const modes[] = {"fast", "safe", "paranoid", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(cfg, m, t)
static const sx_flag flags[] = {
    {.name = "b", .type = SX_FLAG_BOOL, .offset = OFF(b, bool)},
    {.name = "data-dir", .type = SX_FLAG_STRING, .offset = OFF(s, const char *)},
    {.name = "i", .type = SX_FLAG_INT, .offset = OFF(i, int64_t), .min = -100, .max = 100},
    {.name = "big", .type = SX_FLAG_INT, .offset = OFF(big, int64_t)},
    {.name = "u", .type = SX_FLAG_UINT32, .offset = OFF(u, uint32_t), .min = 1, .max = 256},
    {.name = "u-any", .type = SX_FLAG_UINT32, .offset = OFF(u_any, uint32_t)},
    {.name = "d",
     .type = SX_FLAG_DURATION_MS,
     .offset = OFF(d, uint64_t),
     .min = 1,
     .max = 3600000},
    {.name = "d-any", .type = SX_FLAG_DURATION_MS, .offset = OFF(d_any, uint64_t)},
    {.name = "z", .type = SX_FLAG_SIZE, .offset = OFF(z, uint64_t), .min = 4096, .max = 1 << 30},
    {.name = "z-any", .type = SX_FLAG_SIZE, .offset = OFF(z_any, uint64_t)},
    {.name = "mode", .type = SX_FLAG_CHOICE, .offset = OFF(c, const char *), .choices = modes},
    {.name = "listen", .type = SX_FLAG_HOSTPORT, .offset = OFF(h, const char *)},
};

static const sx_flags_spec spec = {
    .prog = "fuzz",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
    .config = true,
};

static const cfg defaults = {.i = 7, .u = 8, .d = 5000, .z = 1 << 20, .c = "safe"};

static void line(sx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(sx_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    SX_FUZZ_CHECK(n > 0 && (size_t)n < sizeof(tmp));
    sx_buf_append(b, tmp, (size_t)n);
}

static void quoted(sx_buf *b, const char *key, const char *s)
{
    if (!s)
        return;
    line(b, "%s = \"", key);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sx_buf_push(b, '\\');
        sx_buf_push(b, (uint8_t)*s);
    }
    sx_buf_append(b, "\"\n", 2);
}

/* c as a config file that sets every value it holds. */
static void write_back(const cfg *c, sx_buf *b)
{
    line(b, "b = %s\n", c->b ? "true" : "false");
    quoted(b, "data-dir", c->s);
    line(b, "i = %" PRId64 "\n", c->i);
    line(b, "big = %" PRId64 "\n", c->big);
    line(b, "u = %" PRIu32 "\n", c->u);
    line(b, "u-any = %" PRIu32 "\n", c->u_any);
    line(b, "d = %" PRIu64 "ms\n", c->d);
    line(b, "d-any = %" PRIu64 "\n", c->d_any);
    line(b, "z = %" PRIu64 "\n", c->z);
    line(b, "z-any = %" PRIu64 "b\n", c->z_any);
    quoted(b, "mode", c->c);
    quoted(b, "listen", c->h);
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same(const cfg *x, const cfg *y)
{
    return x->b == y->b && same_str(x->s, y->s) && x->i == y->i && x->big == y->big &&
           x->u == y->u && x->u_any == y->u_any && x->d == y->d && x->d_any == y->d_any &&
           x->z == y->z && x->z_any == y->z_any && same_str(x->c, y->c) && same_str(x->h, y->h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg c = defaults;
    sx_flags_file *file = NULL;
    sx_err err = {0};
    sx_status st = sx__flags_parse_text(&spec, &c, NAME, (const char *)data, size, &file, &err);
    if (st != SX_OK) {
        SX_FUZZ_CHECK(st == SX_INVALID_ARGUMENT && err.code == st && !file);
        SX_FUZZ_CHECK(strncmp(err.msg, NAME ":", strlen(NAME) + 1) == 0);
        SX_FUZZ_CHECK(same(&c, &defaults));
        return 0;
    }
    SX_FUZZ_CHECK(file && strcmp(sx_flags_file_path(file), NAME) == 0);
    sx_buf text = {0};
    write_back(&c, &text);
    cfg again = defaults;
    sx_flags_file *file2 = NULL;
    st = sx__flags_parse_text(&spec, &again, NAME, (const char *)text.data, text.len, &file2, &err);
    if (st != SX_OK)
        fprintf(stderr, "written back: %s\n", err.msg);
    SX_FUZZ_CHECK(st == SX_OK);
    SX_FUZZ_CHECK(same(&c, &again));
    sx_flags_file_free(file2);
    sx_buf_free(&text);
    sx_flags_file_free(file);
    return 0;
}
