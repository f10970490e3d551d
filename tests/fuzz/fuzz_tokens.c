/* fuzz_tokens.c: the daemons' tokens file (`NAME ROLE TOKEN [EXPIRES]` lines,
 * auth.h) through sx_auth_load_text, and sx_auth_decide with the tokens the
 * input holds, against a fixed list of methods (one per role) and peers with
 * and without a certificate.
 *
 * Input: the file's bytes. A small model of the format (auth.h's words: lines,
 * '#' comments, blank-separated fields) runs beside the parser. Properties:
 * - a file is refused (SX_INVALID_ARGUMENT, "fuzz.tokens:LINE: ...") at or
 *   before the first line the model finds bad (field count, name, role,
 *   token length or characters, a token seen before); a line before that can
 *   only be refused for its expiry; a file the model finds good and that has
 *   no expiry loads; a loaded file has a token per data line;
 * - a refused file keeps the table in force (a token loaded before it still
 *   decides as before);
 * - each loaded token (the first 8) decides as the model says: for each
 *   method, OK when the token's role (or the certificate's, if higher) is
 *   enough, else PERMISSION_DENIED; at the end of time an expiring token is
 *   UNAUTHENTICATED; the token changed in a byte, cut by one or grown by one
 *   is UNAUTHENTICATED unless it is another loaded token; health is open;
 * - no decision's message holds the token presented (unless the method, the
 *   certificate or a token's name holds it).
 */
#include "fuzz.h"

#include "auth.h"
#include "mem.h"

#include <stdbool.h>
#include <string.h>

#define NAME "fuzz.tokens"
#define CHECKED_LINES 8 /* tokens whose decisions are checked, per input */

/* One line that holds more than blanks and a comment, as the model reads it. */
typedef struct mline {
    unsigned no;      /* 1-based */
    const char *w[5]; /* its first words */
    size_t n[5];
    size_t nw; /* words, counted up to 5 */
    sx_role role;
} mline;

static const struct {
    const char *method;
    sx_role need;
} methods[] = {
    {"/grpc.health.v1.Health/Check", SX_ROLE_NONE},
    {"/shardex.v1.Shardex/Get", SX_ROLE_READ},
    {"/shardex.v1.Shardex/Put", SX_ROLE_WRITE},
    {"/shardex.v1.Shardex/CreateIndex", SX_ROLE_ADMIN},
    {"/shardex.v1.Shardex/SomethingNew", SX_ROLE_ADMIN},
    {"/shardex.internal.v1.Replication/Append", SX_ROLE_NODE},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static const struct {
    const char *id; /* NULL: no certificate */
    sx_role role;
} certs[] = {
    {NULL, SX_ROLE_NONE},
    {"spiffe://shardex/client/read/r", SX_ROLE_READ},
    {"spiffe://shardex/client/admin/a", SX_ROLE_ADMIN},
    {"spiffe://shardex/node/n", SX_ROLE_NODE},
    {"spiffe://shardex/client/root/x", SX_ROLE_NONE},
    {"CN-only", SX_ROLE_NONE},
    {"", SX_ROLE_NONE},
};
#define NCERTS (sizeof(certs) / sizeof(certs[0]))

/* Loaded before the input, to see that a refused file leaves it in force. */
static const char fixed[] = "fixed write fixed-token-0123456789\n";
static const char fixed_token[] = "fixed-token-0123456789";

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] > '~')
            return false;
    return true;
}

static sx_role role_of(const char *s, size_t n)
{
    static const char *const names[] = {"read", "write", "admin"};
    for (size_t i = 0; i < 3; i++)
        if (strlen(names[i]) == n && memcmp(s, names[i], n) == 0)
            return (sx_role)(SX_ROLE_READ + i);
    return SX_ROLE_NONE;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The data lines of text into *out (caller frees); returns how many. */
static size_t model_lines(const char *text, size_t len, mline **out)
{
    mline *m = NULL;
    size_t n = 0, cap = 0;
    unsigned no = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
        const char *stop = memchr(p, '#', (size_t)(eol - p));
        no++;
        if (!stop)
            stop = eol;
        while (stop > p && (blank(stop[-1]) || stop[-1] == '\r'))
            stop--;
        const char *q = p;
        while (q < stop && blank(*q))
            q++;
        if (q < stop) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                m = sx_realloc(m, cap * sizeof(*m));
            }
            mline *l = &m[n++];
            memset(l, 0, sizeof(*l));
            l->no = no;
            while (q < stop && l->nw < 5) {
                const char *w = q;
                while (q < stop && !blank(*q))
                    q++;
                l->w[l->nw] = w;
                l->n[l->nw++] = (size_t)(q - w);
                while (q < stop && blank(*q))
                    q++;
            }
            if (l->nw >= 2)
                l->role = role_of(l->w[1], l->n[1]);
        }
        p = nl ? nl + 1 : end;
    }
    *out = m;
    return n;
}

/* Whether line i is bad for a reason the model sees (not its expiry). */
static bool model_bad(const mline *m, size_t i)
{
    const mline *l = &m[i];
    if (l->nw < 3 || l->nw > 4)
        return true;
    if (l->n[0] >= 64 || !printable(l->w[0], l->n[0]) || l->role == SX_ROLE_NONE)
        return true;
    if (l->n[2] < SX_AUTH_TOKEN_MIN || l->n[2] >= SX_AUTH_TOKEN_MAX || !printable(l->w[2], l->n[2]))
        return true;
    for (size_t j = 0; j < i; j++)
        if (m[j].n[2] == l->n[2] && memcmp(m[j].w[2], l->w[2], l->n[2]) == 0)
            return true;
    return false;
}

/* The loaded line whose token is tok (NUL-terminated), or NULL. */
static const mline *model_find(const mline *m, size_t n, const char *tok)
{
    size_t len = strlen(tok);
    for (size_t i = 0; i < n; i++)
        if (m[i].n[2] == len && memcmp(m[i].w[2], tok, len) == 0)
            return &m[i];
    return NULL;
}

/* What sx_auth_decide must answer (auth.h). */
static sx_status expected(sx_role need, size_t cert, const char *tok, const mline *found,
                          bool expired)
{
    if (need == SX_ROLE_NONE)
        return SX_OK;
    sx_role role = certs[cert].role;
    if (tok) {
        if (!found || expired)
            return SX_UNAUTHENTICATED;
        if (found->role > role)
            role = found->role;
    } else if (!certs[cert].id || !certs[cert].id[0]) {
        return SX_UNAUTHENTICATED;
    }
    return role >= need ? SX_OK : SX_PERMISSION_DENIED;
}

/* The message may name tok only where the method, the certificate or a
 * token's name does. */
static bool may_hold(const mline *m, size_t n, const char *msg, const char *method, size_t cert,
                     const char *tok)
{
    if (!tok || !strstr(msg, tok))
        return true;
    if (strstr(method, tok) || (certs[cert].id && strstr(certs[cert].id, tok)))
        return true;
    size_t len = strlen(tok);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k + len <= m[i].n[0]; k++)
            if (memcmp(m[i].w[0] + k, tok, len) == 0)
                return true;
    return false;
}

/* Decides every method for tok (NULL: none) with certificate cert at now;
 * found and expired as the model says. */
static void decide_all(sx_auth *a, const mline *m, size_t n, size_t cert, const char *tok,
                       const mline *found, bool expired, uint64_t now)
{
    sx_rpc_peer peer = {.tls = true, .cert_id = certs[cert].id, .token = tok};
    for (size_t k = 0; k < NMETHODS; k++) {
        sx_err err = {0};
        sx_status st = sx_auth_decide(a, &peer, methods[k].method, now, &err);
        sx_status want = expected(methods[k].need, cert, tok, found, expired);
        if (st != want)
            fprintf(stderr, "%s cert=%s token=%s: %s (%s), expected %s\n", methods[k].method,
                    certs[cert].id ? certs[cert].id : "(none)", tok ? tok : "(none)",
                    sx_status_name(st), err.msg, sx_status_name(want));
        SX_FUZZ_CHECK(st == want);
        if (st != SX_OK) {
            SX_FUZZ_CHECK(err.code == st);
            SX_FUZZ_CHECK(strncmp(err.msg, methods[k].method, strlen(methods[k].method)) == 0);
            SX_FUZZ_CHECK(may_hold(m, n, err.msg, methods[k].method, cert, tok));
        }
    }
}

/* tok and what it becomes changed in a byte, cut by one, grown by one. */
static void check_token(sx_auth *a, const mline *m, size_t n, size_t i)
{
    const mline *l = &m[i];
    char tok[SX_AUTH_TOKEN_MAX + 2];
    size_t len = l->n[2];
    memcpy(tok, l->w[2], len);
    tok[len] = '\0';
    size_t cert = i % NCERTS;
    bool expires = l->nw == 4;
    decide_all(a, m, n, cert, tok, l, false, 1); /* before any expiry: they are after 1970 */
    decide_all(a, m, n, (i + 3) % NCERTS, tok, l, expires, UINT64_MAX);

    tok[i % len] ^= 1;
    decide_all(a, m, n, cert, tok, model_find(m, n, tok), false, 1);
    tok[i % len] ^= 1;
    tok[len - 1] = '\0';
    decide_all(a, m, n, cert, tok, model_find(m, n, tok), false, 1);
    tok[len - 1] = l->w[2][len - 1];
    tok[len] = 'x';
    tok[len + 1] = '\0';
    decide_all(a, m, n, cert, tok, model_find(m, n, tok), false, 1);
}

/* The line number of a load error's message "fuzz.tokens:LINE: ...", 0 if none. */
static unsigned error_line(const char *msg)
{
    size_t p = strlen(NAME);
    if (strncmp(msg, NAME ":", p + 1) != 0)
        return 0;
    unsigned no = 0;
    for (p++; msg[p] >= '0' && msg[p] <= '9' && no < 100000000; p++)
        no = no * 10 + (unsigned)(msg[p] - '0');
    return msg[p] == ':' ? no : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    mline *m = NULL;
    size_t n = model_lines(text, size, &m);
    size_t first_bad = n; /* index of the first line the model finds bad; n: none */
    bool any_expiry = false;
    for (size_t i = 0; i < n; i++) {
        any_expiry |= m[i].nw == 4;
        if (first_bad == n && model_bad(m, i))
            first_bad = i;
    }

    sx_auth *a = NULL;
    sx_err err = {0};
    SX_FUZZ_CHECK(sx_auth_create(NULL, &a, &err) == SX_OK && a);
    SX_FUZZ_CHECK(sx_auth_load_text(a, NAME, fixed, sizeof(fixed) - 1, &err) == SX_OK);
    SX_FUZZ_CHECK(sx_auth_tokens(a) == 1);

    sx_status st = sx_auth_load_text(a, NAME, text, size, &err);
    if (st != SX_OK) {
        SX_FUZZ_CHECK(st == SX_INVALID_ARGUMENT && err.code == st);
        unsigned no = error_line(err.msg);
        size_t at = 0;
        while (at < n && m[at].no != no)
            at++;
        if (at == n || at > first_bad)
            fprintf(stderr, "refused at line %u (%s); the model's first bad line: %u\n", no,
                    err.msg, first_bad < n ? m[first_bad].no : 0);
        SX_FUZZ_CHECK(at < n && at <= first_bad);
        if (at < first_bad) /* only its expiry can be wrong */
            SX_FUZZ_CHECK(m[at].nw == 4 && strstr(err.msg, "expiry"));
        /* The table in force stays: the fixed token still writes. */
        SX_FUZZ_CHECK(sx_auth_tokens(a) == 1);
        mline fixed_line = {.role = SX_ROLE_WRITE};
        decide_all(a, NULL, 0, 0, fixed_token, &fixed_line, false, 1);
    } else {
        SX_FUZZ_CHECK(first_bad == n);
        SX_FUZZ_CHECK(sx_auth_tokens(a) == n);
        if (!model_find(m, n, fixed_token))
            decide_all(a, m, n, 0, fixed_token, NULL, false, 1);
        for (size_t i = 0; i < n && i < CHECKED_LINES; i++)
            check_token(a, m, n, i);
    }
    if (first_bad == n && !any_expiry)
        SX_FUZZ_CHECK(st == SX_OK);

    /* No token: the certificate alone decides; an empty token is no token known. */
    for (size_t c = 0; c < NCERTS; c++)
        decide_all(a, m, n, c, NULL, NULL, false, 1);
    decide_all(a, m, n, 0, "", NULL, false, 1);

    sx_auth_destroy(a);
    free(m);
    return 0;
}
