/* rpc_fault.c: the client-side fault layer: parse rules, decide per attempt.
 *
 * Decisions come from one splitmix64 stream per rule set, so a seed and the
 * same sequence of calls replay the same faults. With several threads calling
 * at once the interleaving decides which call gets which draw; tests that need
 * exact replay drive calls from one thread.
 */
#include "rpc_internal.h"

#include "mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rule {
    char *method; /* NULL: every method */
    char *peer;   /* NULL: every peer */
    double fail, drop, drop_reply, dup, delay;
    sx_status code;
    uint32_t delay_min_ms, delay_max_ms;
} rule;

struct sx__faults {
    pthread_mutex_t mu;
    uint64_t rng;
    rule *rules;
    size_t n;
    sx_rpc_fault_stats stats;
};

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double draw(sx__faults *f)
{
    return (double)(splitmix64(&f->rng) >> 11) * 0x1.0p-53;
}

static bool parse_fraction(const char *key, const char *v, double *out, sx_err *err)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || d > 1)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "faults: %s=%s: expected a fraction between 0 and 1", key, v) == SX_OK;
    *out = d;
    return true;
}

static bool parse_code(const char *v, sx_status *out, sx_err *err)
{
    for (int i = 1; i < SX_STATUS_COUNT; i++) {
        if (strcmp(v, sx_status_name((sx_status)i)) == 0) {
            *out = (sx_status)i;
            return true;
        }
    }
    sx_err_set(err, SX_INVALID_ARGUMENT, "faults: code=%s: not a status name such as UNAVAILABLE",
               v);
    return false;
}

static bool parse_item(sx__faults *f, rule *r, bool *is_seed, char *item, sx_err *err)
{
    char *eq = strchr(item, '=');
    if (!eq) {
        sx_err_set(err, SX_INVALID_ARGUMENT, "faults: \"%s\": expected key=value", item);
        return false;
    }
    *eq = '\0';
    const char *k = item, *v = eq + 1;
    if (strcmp(k, "seed") == 0) {
        char *end;
        errno = 0;
        unsigned long long seed = strtoull(v, &end, 10);
        if (errno || end == v || *end) {
            sx_err_set(err, SX_INVALID_ARGUMENT, "faults: seed=%s: expected an integer", v);
            return false;
        }
        f->rng = seed;
        *is_seed = true;
        return true;
    }
    if (strcmp(k, "method") == 0) {
        free(r->method);
        r->method = strcmp(v, "*") == 0 ? NULL : sx_strdup(v);
        return true;
    }
    if (strcmp(k, "peer") == 0) {
        free(r->peer);
        r->peer = strcmp(v, "*") == 0 ? NULL : sx_strdup(v);
        return true;
    }
    if (strcmp(k, "fail") == 0)
        return parse_fraction(k, v, &r->fail, err);
    if (strcmp(k, "drop") == 0)
        return parse_fraction(k, v, &r->drop, err);
    if (strcmp(k, "drop_reply") == 0)
        return parse_fraction(k, v, &r->drop_reply, err);
    if (strcmp(k, "dup") == 0)
        return parse_fraction(k, v, &r->dup, err);
    if (strcmp(k, "delay") == 0)
        return parse_fraction(k, v, &r->delay, err);
    if (strcmp(k, "code") == 0)
        return parse_code(v, &r->code, err);
    if (strcmp(k, "delay_ms") == 0) {
        unsigned a, b;
        int used = 0;
        if (sscanf(v, "%u-%u%n", &a, &b, &used) != 2 || v[used] || a > b || b > 600000) {
            sx_err_set(err, SX_INVALID_ARGUMENT,
                       "faults: delay_ms=%s: expected MIN-MAX milliseconds, MAX at most 600000", v);
            return false;
        }
        r->delay_min_ms = a;
        r->delay_max_ms = b;
        return true;
    }
    sx_err_set(err, SX_INVALID_ARGUMENT,
               "faults: unknown key \"%s\" (seed, method, peer, fail, code, drop, drop_reply, "
               "dup, delay, delay_ms)",
               k);
    return false;
}

void sx__faults_free(sx__faults *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->rules[i].method);
        free(f->rules[i].peer);
    }
    free(f->rules);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

sx_status sx__faults_parse(const char *spec, sx__faults **out, sx_err *err)
{
    *out = NULL;
    if (!spec || !spec[0])
        return SX_OK;
    sx__faults *f = sx_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->rng = 1;
    char *copy = sx_strdup(spec);
    char *save_rule = NULL;
    for (char *rs = strtok_r(copy, ";", &save_rule); rs; rs = strtok_r(NULL, ";", &save_rule)) {
        rule r = {.code = SX_UNAVAILABLE, .delay_min_ms = 1, .delay_max_ms = 50};
        bool is_seed = false, any_rule_key = false;
        char *save_item = NULL;
        for (char *it = strtok_r(rs, ",", &save_item); it; it = strtok_r(NULL, ",", &save_item)) {
            bool seed_item = false;
            if (!parse_item(f, &r, &seed_item, it, err)) {
                free(r.method);
                free(r.peer);
                free(copy);
                sx__faults_free(f);
                return SX_INVALID_ARGUMENT;
            }
            is_seed |= seed_item;
            any_rule_key |= !seed_item;
        }
        if (is_seed && !any_rule_key)
            continue;
        if (r.fail + r.drop + r.drop_reply + r.dup > 1.0) {
            free(r.method);
            free(r.peer);
            free(copy);
            sx__faults_free(f);
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "faults: fail + drop + drop_reply + dup exceed 1 in one rule");
        }
        f->rules = sx_realloc(f->rules, (f->n + 1) * sizeof(*f->rules));
        f->rules[f->n++] = r;
    }
    free(copy);
    *out = f;
    return SX_OK;
}

static bool method_matches(const char *pattern, const char *path)
{
    if (!pattern)
        return true;
    if (pattern[0] == '/')
        return strcmp(pattern, path) == 0;
    const char *slash = strrchr(path, '/');
    return strcmp(pattern, slash ? slash + 1 : path) == 0;
}

sx__fault_action sx__faults_decide(sx__faults *f, const char *path, const char *addr)
{
    sx__fault_action a = {.kind = SX__FAULT_NONE};
    if (!f)
        return a;
    for (size_t i = 0; i < f->n; i++) {
        const rule *r = &f->rules[i];
        if (!method_matches(r->method, path) || (r->peer && strcmp(r->peer, addr) != 0))
            continue;
        pthread_mutex_lock(&f->mu);
        f->stats.calls++;
        /* One draw picks among the exclusive faults, a second decides the delay. */
        double x = draw(f), y = draw(f);
        uint64_t span = (uint64_t)r->delay_max_ms - r->delay_min_ms + 1;
        uint64_t d = r->delay_min_ms + splitmix64(&f->rng) % span;
        if (x < r->fail) {
            a.kind = SX__FAULT_FAIL;
            a.fail_code = r->code;
            f->stats.failed++;
        } else if (x < r->fail + r->drop) {
            a.kind = SX__FAULT_DROP;
            f->stats.dropped++;
        } else if (x < r->fail + r->drop + r->drop_reply) {
            a.kind = SX__FAULT_DROP_REPLY;
            f->stats.dropped++;
        } else if (x < r->fail + r->drop + r->drop_reply + r->dup) {
            a.kind = SX__FAULT_DUP;
            f->stats.duplicated++;
        }
        if (y < r->delay) {
            a.delay_ms = d;
            f->stats.delayed++;
        }
        pthread_mutex_unlock(&f->mu);
        break;
    }
    return a;
}

void sx__faults_stats(sx__faults *f, sx_rpc_fault_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    *out = f->stats;
    pthread_mutex_unlock(&f->mu);
}
