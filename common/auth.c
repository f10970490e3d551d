/* auth.c: see auth.h. */
#include "auth.h"

#include "clock.h"
#include "fsutil.h"
#include "hmap.h"
#include "log.h"
#include "mem.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The tokens file is small: a line per client. */
#define TOKENS_FILE_MAX (4u << 20)

typedef struct token {
    char name[64];
    sx_role role;
    char secret[SX_AUTH_TOKEN_MAX];
    size_t len;
    uint64_t expires_ms; /* wall clock; 0: never */
} token;

struct sx_auth {
    char *file; /* NULL: no tokens */
    pthread_mutex_t mu;
    token *tokens; /* the table in force */
    size_t n;
};

const char *sx_role_name(sx_role r)
{
    static const char *const names[] = {"none", "read", "write", "admin", "node"};
    return (unsigned)r <= SX_ROLE_NODE ? names[r] : "?";
}

static sx_role role_named(const char *s, size_t n)
{
    for (sx_role r = SX_ROLE_READ; r <= SX_ROLE_ADMIN; r++)
        if (strlen(sx_role_name(r)) == n && memcmp(s, sx_role_name(r), n) == 0)
            return r;
    return SX_ROLE_NONE;
}

sx_role sx_auth_method_role(const char *method)
{
    static const char health[] = "/grpc.health.v1.Health/";
    static const char pub[] = "/shardex.v1.Shardex/";
    static const struct {
        const char *name;
        sx_role role;
    } public_methods[] = {
        {"Get", SX_ROLE_READ},           {"Query", SX_ROLE_READ}, {"ListIndexes", SX_ROLE_READ},
        {"ClusterStatus", SX_ROLE_READ}, {"Put", SX_ROLE_WRITE},  {"Delete", SX_ROLE_WRITE},
    };
    if (strncmp(method, health, sizeof(health) - 1) == 0)
        return SX_ROLE_NONE;
    if (strncmp(method, pub, sizeof(pub) - 1) != 0)
        return SX_ROLE_NODE; /* internal and test services: nodes only */
    const char *name = method + sizeof(pub) - 1;
    for (size_t i = 0; i < sizeof(public_methods) / sizeof(public_methods[0]); i++)
        if (strcmp(name, public_methods[i].name) == 0)
            return public_methods[i].role;
    return SX_ROLE_ADMIN; /* CreateIndex, DropIndex, and whatever comes next: fail closed */
}

sx_role sx_auth_cert_role(const char *cert_id)
{
    if (!cert_id)
        return SX_ROLE_NONE;
    size_t np = strlen(SX_AUTH_NODE_PREFIX), cp = strlen(SX_AUTH_CLIENT_PREFIX);
    if (strncmp(cert_id, SX_AUTH_NODE_PREFIX, np) == 0 && cert_id[np])
        return SX_ROLE_NODE;
    if (strncmp(cert_id, SX_AUTH_CLIENT_PREFIX, cp) != 0)
        return SX_ROLE_NONE;
    const char *role = cert_id + cp, *slash = strchr(role, '/');
    if (!slash || !slash[1])
        return SX_ROLE_NONE; /* spiffe://shardex/client/ROLE/NAME: both needed */
    return role_named(role, (size_t)(slash - role));
}

/* ------------------------------------------------------------ the tokens -- */

/* "2027-01-31T00:00:00Z" as milliseconds since the epoch; 0 when it is not one. */
static uint64_t parse_utc(const char *s, size_t n)
{
    char buf[32];
    if (n != 20 || s[19] != 'Z')
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct tm tm = {0};
    char *end = strptime(buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return 0;
    time_t t = timegm(&tm);
    return t > 0 ? (uint64_t)t * 1000u : 0;
}

/* The next blank-separated word of [*p, end) (none: len 0). */
static size_t next_word(const char **p, const char *end, const char **word)
{
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
    *word = *p;
    while (*p < end && **p != ' ' && **p != '\t')
        (*p)++;
    return (size_t)(*p - *word);
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* One line (no newline, no comment) into *t; false with a message in err. */
static bool parse_line(const char *line, size_t len, const char *file, unsigned no, token *t,
                       sx_err *err)
{
    const char *p = line, *end = line + len, *w[5];
    size_t n[5], nw = 0;
    while (nw < 5 && (n[nw] = next_word(&p, end, &w[nw])) > 0)
        nw++;
    if (nw < 3 || nw > 4) {
        sx_err_set(err, SX_INVALID_ARGUMENT,
                   "%s:%u: expected NAME ROLE TOKEN [EXPIRES], found %zu field%s", file, no, nw,
                   nw == 1 ? "" : "s");
        return false;
    }
    memset(t, 0, sizeof(*t));
    if (n[0] >= sizeof(t->name) || !printable(w[0], n[0])) {
        sx_err_set(err, SX_INVALID_ARGUMENT,
                   "%s:%u: name: %zu bytes; at most %zu printable ASCII characters", file, no, n[0],
                   sizeof(t->name) - 1);
        return false;
    }
    memcpy(t->name, w[0], n[0]);
    if ((t->role = role_named(w[1], n[1])) == SX_ROLE_NONE) {
        sx_err_set(err, SX_INVALID_ARGUMENT,
                   "%s:%u: role of %s: \"%.*s\" is not read, write or admin", file, no, t->name,
                   (int)(n[1] < 32 ? n[1] : 32), w[1]);
        return false;
    }
    if (n[2] < SX_AUTH_TOKEN_MIN || n[2] >= SX_AUTH_TOKEN_MAX || !printable(w[2], n[2])) {
        sx_err_set(err, SX_INVALID_ARGUMENT,
                   "%s:%u: token of %s: %zu characters; %d to %d printable ones are needed", file,
                   no, t->name, n[2], SX_AUTH_TOKEN_MIN, SX_AUTH_TOKEN_MAX - 1);
        return false;
    }
    memcpy(t->secret, w[2], n[2]);
    t->len = n[2];
    if (nw == 4 && (t->expires_ms = parse_utc(w[3], n[3])) == 0) {
        sx_err_set(err, SX_INVALID_ARGUMENT,
                   "%s:%u: expiry of %s: \"%.*s\" is not an UTC time as 2027-01-31T00:00:00Z", file,
                   no, t->name, (int)(n[3] < 32 ? n[3] : 32), w[3]);
        return false;
    }
    return true;
}

/* Frees a token table after overwriting its secrets. */
static void wipe_free(token *tokens, size_t n)
{
    if (tokens)
        explicit_bzero(tokens, n * sizeof(*tokens));
    free(tokens);
}

sx_status sx_auth_load_text(sx_auth *a, const char *file, const char *text, size_t len, sx_err *err)
{
    token *tokens = NULL;
    size_t n = 0, cap = 0;
    sx_hmap seen = {0}; /* secret -> the index of its line's entry */
    unsigned no = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        no++;
        const char *hash = memchr(p, '#', (size_t)(eol - p));
        const char *stop = hash ? hash : eol;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
            stop--;
        const char *q = p;
        while (q < stop && (*q == ' ' || *q == '\t'))
            q++;
        if (q < stop) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                tokens = sx_realloc(tokens, cap * sizeof(*tokens));
            }
            if (!parse_line(q, (size_t)(stop - q), file, no, &tokens[n], err)) {
                wipe_free(tokens, n + 1);
                sx_hmap_free(&seen, NULL);
                return SX_INVALID_ARGUMENT;
            }
            /* Unique tokens, found by hashing: a long file loads in linear time. */
            bool created = false;
            void **slot = sx_hmap_upsert(&seen, tokens[n].secret, tokens[n].len, &created);
            if (!created) {
                sx_err_set(err, SX_INVALID_ARGUMENT,
                           "%s:%u: the token of %s is also %s's: each must be unique", file, no,
                           tokens[n].name, tokens[(uintptr_t)*slot].name);
                wipe_free(tokens, n + 1);
                sx_hmap_free(&seen, NULL);
                return SX_INVALID_ARGUMENT;
            }
            *slot = (void *)(uintptr_t)n;
            n++;
        }
        p = nl ? nl + 1 : end;
    }
    sx_hmap_free(&seen, NULL);
    pthread_mutex_lock(&a->mu);
    token *old = a->tokens;
    size_t nold = a->n;
    a->tokens = tokens;
    a->n = n;
    pthread_mutex_unlock(&a->mu);
    wipe_free(old, nold);
    return SX_OK;
}

sx_status sx_auth_reload(sx_auth *a, sx_err *err)
{
    if (!a->file)
        return SX_OK;
    sx_buf b = {0};
    bool found = false;
    sx_err e = {0};
    sx_status st = sx_file_read(a->file, TOKENS_FILE_MAX, &b, &found, &e);
    if (st == SX_OK && !found)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s: no such tokens file", a->file);
    else if (st != SX_OK)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "tokens file: %s", e.msg);
    else
        st = sx_auth_load_text(a, a->file, (const char *)b.data, b.len, err);
    if (b.data)
        explicit_bzero(b.data, b.len);
    sx_buf_free(&b);
    return st;
}

sx_status sx_auth_create(const char *tokens_file, sx_auth **out, sx_err *err)
{
    sx_auth *a = sx_calloc(1, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    a->file = tokens_file ? sx_strdup(tokens_file) : NULL;
    sx_status st = sx_auth_reload(a, err);
    if (st != SX_OK) {
        sx_auth_destroy(a);
        a = NULL;
    }
    *out = a;
    return st;
}

void sx_auth_destroy(sx_auth *a)
{
    if (!a)
        return;
    wipe_free(a->tokens, a->n);
    free(a->file);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

size_t sx_auth_tokens(sx_auth *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->n;
    pthread_mutex_unlock(&a->mu);
    return n;
}

/* Whether the secret of t is s: the same work whatever s is and wherever it
 * differs (all SX_AUTH_TOKEN_MAX bytes are compared). */
static bool same_secret(const token *t, const char *s, size_t n)
{
    unsigned char diff = (unsigned char)(t->len != n);
    for (size_t i = 0; i < SX_AUTH_TOKEN_MAX; i++) {
        unsigned char x = i < n ? (unsigned char)s[i] : 0;
        diff |= (unsigned char)(x ^ (unsigned char)t->secret[i]);
    }
    return diff == 0;
}

/* ------------------------------------------------------------ decisions -- */

/* sx_auth_decide, also writing the name of the token's holder into holder
 * (cap bytes, "" when no token matched; holder may be NULL). */
static sx_status decide(sx_auth *a, const sx_rpc_peer *peer, const char *method,
                        uint64_t now_wall_ms, char *holder, size_t cap, sx_err *err)
{
    if (holder)
        holder[0] = '\0';
    sx_role need = sx_auth_method_role(method);
    if (need == SX_ROLE_NONE)
        return SX_OK;
    sx_role role = sx_auth_cert_role(peer->cert_id);
    char who[128];
    snprintf(who, sizeof(who), "%s", peer->cert_id ? peer->cert_id : "");
    if (peer->token) {
        size_t n = strnlen(peer->token, SX_AUTH_TOKEN_MAX);
        token found = {0};
        bool match = false;
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < a->n; i++) /* no early exit: every entry is compared */
            if (same_secret(&a->tokens[i], peer->token, n)) {
                found = a->tokens[i];
                match = true;
            }
        pthread_mutex_unlock(&a->mu);
        if (!match)
            return sx_err_set(err, SX_UNAUTHENTICATED, "%s: the bearer token is not known here",
                              method);
        if (found.expires_ms && now_wall_ms >= found.expires_ms)
            return sx_err_set(err, SX_UNAUTHENTICATED,
                              "%s: the token of %s expired %" PRIu64 " s ago", method, found.name,
                              (now_wall_ms - found.expires_ms) / 1000);
        if (found.role > role)
            role = found.role;
        snprintf(who, sizeof(who), "token of %s", found.name);
        if (holder)
            snprintf(holder, cap, "token:%s", found.name);
        explicit_bzero(found.secret, sizeof(found.secret));
    }
    if (!who[0])
        return sx_err_set(err, SX_UNAUTHENTICATED,
                          "%s needs the %s role: present a client certificate or a bearer token",
                          method, sx_role_name(need));
    if (role < need)
        return sx_err_set(err, SX_PERMISSION_DENIED, "%s needs the %s role; %s has %s", method,
                          sx_role_name(need), who,
                          role == SX_ROLE_NONE ? "no role" : sx_role_name(role));
    return SX_OK;
}

sx_status sx_auth_decide(sx_auth *a, const sx_rpc_peer *peer, const char *method,
                         uint64_t now_wall_ms, sx_err *err)
{
    return decide(a, peer, method, now_wall_ms, NULL, 0, err);
}

sx_status sx_auth_authorize(void *auth, sx_rpc_peer *peer, const char *method, sx_err *err)
{
    /* Nodes' calls are the cluster's own work: no per-client limit. A token
     * client without a certificate is limited as its token's holder, over
     * however many connections. */
    peer->unlimited = sx_auth_cert_role(peer->cert_id) == SX_ROLE_NODE;
    char holder[sizeof(peer->client)];
    sx_status st = decide(auth, peer, method, sx_clock_wall_ms(), holder, sizeof(holder), err);
    if (st == SX_OK && !peer->cert_id && holder[0])
        snprintf(peer->client, sizeof(peer->client), "%s", holder);
    return st;
}
