/* cmd.c: what the commands of the shardex tool share (cmd.h): parsing with
 * positional arguments among the flags, servers, errors and exit codes,
 * tokens and values as the tool spells them. */
#include "cmd.h"

#include "mem.h"
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- flags -- */

sx_cmd_common sx_cmd_common_init(const sx_cli *cli)
{
    return (sx_cmd_common){
        .server = cli->server_list ? cli->server_list : cli->server,
        .timeout_ms = cli->timeout_ms,
        .json = cli->json,
        .tls_ca = cli->tls_ca,
        .tls_cert = cli->tls_cert,
        .tls_key = cli->tls_key,
        .token = cli->token,
    };
}

void sx_cmd_args_free(sx_cmd_args *a)
{
    free(a->pos);
    free(a->rep);
    *a = (sx_cmd_args){0};
}

int sx_cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "shardex: %s: %s\nTry 'shardex %s --help'.\n", cmd, msg, cmd);
    return SX_EXIT_USAGE;
}

static void push(char ***arr, size_t *n, char *s)
{
    *arr = sx_realloc(*arr, (*n + 1) * sizeof(**arr));
    (*arr)[(*n)++] = s;
}

int sx_cmd_parse(const char *cmd, const sx_flags_spec *spec, void *cfg, const void *defaults,
                 int argc, char **argv, const char *repeatable, sx_cmd_args *args)
{
    *args = (sx_cmd_args){0};
    /* First the repeatable flag's occurrences come out (getopt would keep only
     * the last), up to "--". */
    char **rest = sx_calloc((size_t)argc + 1, sizeof(*rest));
    size_t n = 0;
    rest[n++] = argv[0];
    size_t rl = repeatable ? strlen(repeatable) : 0;
    bool ended = false;
    int code = SX_CMD_CONTINUE;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!ended && strcmp(a, "--") == 0)
            ended = true;
        if (!ended && repeatable && strncmp(a, "--", 2) == 0 &&
            strncmp(a + 2, repeatable, rl) == 0) {
            if (a[2 + rl] == '\0') {
                if (i + 1 >= argc) {
                    code = sx_cmd_usage_error(cmd, "--%s: missing value", repeatable);
                    goto out;
                }
                push(&args->rep, &args->nrep, argv[++i]);
                continue;
            }
            if (a[2 + rl] == '=') {
                push(&args->rep, &args->nrep, a + 3 + rl);
                continue;
            }
        }
        rest[n++] = a;
    }
    /* Then flags and positional arguments in turn: each parse stops at a
     * positional argument, which becomes argv[0] of the next. */
    size_t base = 0;
    for (;;) {
        bool help = false;
        int first = 0;
        sx_err err = {0};
        if (sx_flags_parse(spec, cfg, (int)(n - base), rest + base, &help, &first, &err) != SX_OK) {
            code = sx_cmd_usage_error(cmd, "%s", err.msg);
            goto out;
        }
        if (help) {
            sx_flags_usage(spec, defaults, stdout);
            code = SX_EXIT_OK;
            goto out;
        }
        size_t at = base + (size_t)first;
        if (at >= n)
            break;
        if (at - 1 > base && strcmp(rest[at - 1], "--") == 0) {
            for (; at < n; at++)
                push(&args->pos, &args->npos, rest[at]);
            break;
        }
        push(&args->pos, &args->npos, rest[at]);
        base = at;
    }
    /* Every command's config starts with its sx_cmd_common (cmd.h). */
    const sx_cmd_common *c = cfg;
    char **servers = NULL;
    size_t ns = 0;
    sx_err err = {0};
    if (sx_cmd_servers(c->server, &servers, &ns, &err) != SX_OK) {
        code = sx_cmd_usage_error(cmd, "--server: %s", err.msg);
        goto out;
    }
    sx_cmd_servers_free(servers);
out:
    free(rest);
    if (code != SX_CMD_CONTINUE)
        sx_cmd_args_free(args);
    return code;
}

/* --------------------------------------------------------------- servers -- */

sx_status sx_cmd_servers(const char *list, char ***out, size_t *n, sx_err *err)
{
    *out = NULL;
    *n = 0;
    if (!list || !*list)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "no address given");
    char **v = sx_calloc(SX_CLIENT_MAX_SERVERS + 1, sizeof(*v));
    size_t k = 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (k == SX_CLIENT_MAX_SERVERS) {
            sx_cmd_servers_free(v);
            return sx_err_set(err, SX_INVALID_ARGUMENT, "more than %d addresses",
                              SX_CLIENT_MAX_SERVERS);
        }
        v[k] = sx_malloc(len + 1);
        memcpy(v[k], p, len);
        v[k][len] = '\0';
        uint16_t port = 0;
        if (sx_hostport_parse(v[k], NULL, 0, &port, err) != SX_OK || port == 0) {
            if (port == 0 && (!err || err->code == SX_OK))
                sx_err_set(err, SX_INVALID_ARGUMENT, "\"%s\": port 0", v[k]);
            sx_cmd_servers_free(v);
            return SX_INVALID_ARGUMENT;
        }
        k++;
        if (!p[len])
            break;
        p += len + 1;
    }
    *out = v;
    *n = k;
    return SX_OK;
}

void sx_cmd_servers_free(char **servers)
{
    if (!servers)
        return;
    for (char **p = servers; *p; p++)
        free(*p);
    free(servers);
}

int sx_cmd_connect(const char *cmd, const sx_cmd_common *c, sx_client **out)
{
    char **servers = NULL;
    size_t n = 0;
    sx_err err = {0};
    sx_status st = sx_cmd_servers(c->server, &servers, &n, &err);
    if (st == SX_OK) {
        sx_client_opts o = {.servers = (const char *const *)servers,
                            .nservers = n,
                            .timeout_ms = c->timeout_ms,
                            .tls_ca = c->tls_ca,
                            .tls_cert = c->tls_cert,
                            .tls_key = c->tls_key,
                            .token = c->token};
        st = sx_client_open(&o, out, &err);
    }
    sx_cmd_servers_free(servers);
    if (st != SX_OK)
        return sx_cmd_fail(cmd, c, st, err.msg);
    return SX_EXIT_OK;
}

void sx_cmd_disconnect(sx_client *cl)
{
    sx_client_close(cl);
}

/* ---------------------------------------------------------------- errors -- */

int sx_cmd_exit_code(sx_status st)
{
    switch (st) {
    case SX_OK:
        return SX_EXIT_OK;
    case SX_UNAVAILABLE:
    case SX_DEADLINE_EXCEEDED:
    case SX_CANCELLED:
    case SX_ABORTED:
    case SX_INTERNAL:
    case SX_UNKNOWN:
    case SX_DATA_LOSS:
        return SX_EXIT_UNAVAILABLE;
    case SX_NOT_FOUND:
        return SX_EXIT_NOT_FOUND;
    default:
        return SX_EXIT_REFUSED;
    }
}

int sx_cmd_fail(const char *what, const sx_cmd_common *c, sx_status st, const char *msg)
{
    int code = sx_cmd_exit_code(st);
    fprintf(stderr, "shardex: %s: %s\n", what, msg && *msg ? msg : sx_status_name(st));
    if (c && c->json) {
        json_t *j = json_object();
        json_object_set_new(j, "command", json_string(what));
        json_object_set_new(j, "status", json_string(sx_status_name(st)));
        json_t *m = json_string(msg ? msg : "");
        json_object_set_new(j, "error", m ? m : json_string("(not UTF-8)"));
        json_object_set_new(j, "exit", json_integer(code));
        sx_cmd_print_json(j);
    }
    return code;
}

void sx_cmd_print_json(json_t *j)
{
    sx_out_json_print(j, stdout);
    json_decref(j);
}

/* ---------------------------------------------------------------- tokens -- */

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool sx_cmd_token_parse(const char *s, Shardex__V1__WriteToken *out)
{
    const char *colon = strchr(s, ':');
    uint64_t p = 0, off = 0;
    if (!colon || !parse_u64(s, (size_t)(colon - s), &p) || p > UINT32_MAX ||
        !parse_u64(colon + 1, strlen(colon + 1), &off))
        return false;
    shardex__v1__write_token__init(out);
    out->partition = (uint32_t)p;
    out->offset = off;
    return true;
}

bool sx_cmd_tokens(const char *cmd, char *const *vals, size_t n, sx_token_set *set)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = vals[i];
        for (;;) {
            size_t len = strcspn(p, ",");
            char one[64];
            Shardex__V1__WriteToken t;
            if (len >= sizeof(one)) {
                sx_cmd_usage_error(cmd, "--after: '%.*s...' is not a token P:OFFSET", 20, p);
                return false;
            }
            memcpy(one, p, len);
            one[len] = '\0';
            if (!sx_cmd_token_parse(one, &t)) {
                sx_cmd_usage_error(cmd, "--after: '%s' is not a token P:OFFSET", one);
                return false;
            }
            sx_token_set_add(set, &t);
            if (!p[len])
                break;
            p += len + 1;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- values -- */

bool sx_cmd_int_parse(const char *s, int64_t *out)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    size_t len = strlen(d);
    if (len == 0 || len > 19 || strspn(d, "0123456789") != len)
        return false;
    if (d[0] == '0' && (len > 1 || d != s)) /* "007", "-0" */
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

char *sx_cmd_value_text(const Shardex__V1__Value *v)
{
    if (v && v->kind_case == SHARDEX__V1__VALUE__KIND_I) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%" PRId64, v->i);
        return sx_strdup(buf);
    }
    if (!v || v->kind_case != SHARDEX__V1__VALUE__KIND_S)
        return sx_strdup("(none)");
    json_t *j = json_string(v->s ? v->s : "");
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!s) /* not UTF-8 */
        return sx_strdup("(not UTF-8)");
    char *r = sx_strdup(s);
    free(s);
    return r;
}

char *sx_cmd_fields_text(const Shardex__V1__Document *d)
{
    sx_buf b = {0};
    for (size_t i = 0; d && i < d->n_fields; i++) {
        const Shardex__V1__Field *f = d->fields[i];
        char *v = sx_cmd_value_text(f->value);
        if (i)
            sx_buf_push(&b, ' ');
        sx_buf_append(&b, f->name, strlen(f->name));
        sx_buf_push(&b, '=');
        sx_buf_append(&b, v, strlen(v));
        free(v);
    }
    sx_buf_push(&b, '\0');
    return (char *)b.data;
}

int sx_cmd_subcommands(const sx_cli *cli, const char *cmd, const sx_flags_spec *spec,
                       const sx_cmd_sub *subs, size_t nsubs, int argc, char **argv)
{
    sx_cmd_plain cfg = {.common = sx_cmd_common_init(cli)};
    sx_cmd_plain defaults = cfg;
    bool help = false;
    int first = argc;
    sx_err err = {0};
    /* Flags before the subcommand (`index --json list`) apply to it. */
    if (sx_flags_parse(spec, &cfg, argc, argv, &help, &first, &err) != SX_OK)
        return sx_cmd_usage_error(cmd, "%s", err.msg);
    if (help) {
        sx_flags_usage(spec, &defaults, stdout);
        return SX_EXIT_OK;
    }
    char names[256] = "";
    for (size_t i = 0; i < nsubs; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof(names) - l, "%s%s",
                 i == 0          ? ""
                 : i + 1 < nsubs ? ", "
                                 : " or ",
                 subs[i].name);
    }
    if (first >= argc)
        return sx_cmd_usage_error(cmd, "a subcommand is required: %s", names);
    sx_cli sub = *cli;
    sub.server_list = cfg.common.server;
    sub.timeout_ms = cfg.common.timeout_ms;
    sub.json = cfg.common.json;
    for (size_t i = 0; i < nsubs; i++)
        if (strcmp(argv[first], subs[i].name) == 0)
            return subs[i].run(&sub, argc - first, argv + first);
    return sx_cmd_usage_error(cmd, "unknown subcommand '%s' (%s)", argv[first], names);
}
