/* peers_data.c: the Debian catalogue in memory for bench_peers (peers_data.h).
 * Parsing is client/load_parse.c's, as `shardex load --id-field Package` does
 * it; this file only keeps the records, drops repeated ids (PostgreSQL's
 * primary key would refuse them, shardex would overwrite), and writes each
 * document again as JSON for PostgreSQL.
 */
#include "peers_data.h"

#include "hmap.h"
#include "load_parse.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BAD_SHOWN 5 /* refused stanzas named on stderr; the rest are counted */

void peers_json_string(sx_buf *b, const char *s, size_t n)
{
    sx_buf_push(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            sx_buf_push(b, '\\');
            sx_buf_push(b, c);
        } else if (c == '\n') {
            sx_buf_append(b, "\\n", 2);
        } else if (c == '\t') {
            sx_buf_append(b, "\\t", 2);
        } else if (c < 0x20) {
            char u[8];
            snprintf(u, sizeof(u), "\\u%04x", c);
            sx_buf_append(b, u, 6);
        } else {
            sx_buf_push(b, c); /* UTF-8 passes as it is: the parser checked it */
        }
    }
    sx_buf_push(b, '"');
}

/* The document's fields as one JSON object; a field's first value only
 * (stanzas have no repeated names: the parser refuses them). */
static char *doc_json(const Shardex__V1__Document *doc, size_t *len)
{
    sx_buf b = {0};
    sx_buf_push(&b, '{');
    for (size_t i = 0; i < doc->n_fields; i++) {
        const Shardex__V1__Field *f = doc->fields[i];
        if (i)
            sx_buf_push(&b, ',');
        peers_json_string(&b, f->name, strlen(f->name));
        sx_buf_push(&b, ':');
        if (f->value && f->value->kind_case == SHARDEX__V1__VALUE__KIND_I) {
            char num[32];
            int k = snprintf(num, sizeof(num), "%" PRId64, f->value->i);
            sx_buf_append(&b, num, (size_t)k);
        } else {
            const char *s = f->value && f->value->s ? f->value->s : "";
            peers_json_string(&b, s, strlen(s));
        }
    }
    sx_buf_push(&b, '}');
    *len = b.len;
    sx_buf_push(&b, '\0');
    return (char *)b.data;
}

/* Keeps rec's document unless its id was seen; takes ownership of it. */
static void keep(peers_data *d, sx_hmap *ids, size_t *cap, sx_load_parse_rec *rec)
{
    bool created = false;
    sx_hmap_upsert(ids, rec->doc->id, strlen(rec->doc->id), &created);
    if (!created) {
        d->duplicates++;
        return;
    }
    if (d->n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        d->d = sx_realloc(d->d, *cap * sizeof(*d->d));
    }
    peers_doc *p = &d->d[d->n++];
    memset(p, 0, sizeof(*p));
    p->doc = rec->doc;
    rec->doc = NULL;
    d->truncated += rec->truncated;
}

static void handle(peers_data *d, sx_hmap *ids, size_t *cap, sx_load_parse_rec *rec)
{
    if (rec->kind == SX_LOAD_PARSE_REC_NONE)
        return;
    d->stanzas++;
    if (rec->kind == SX_LOAD_PARSE_REC_PUT) {
        keep(d, ids, cap, rec);
    } else if (rec->kind == SX_LOAD_PARSE_REC_BAD) {
        if (d->bad++ < BAD_SHOWN)
            fprintf(stderr, "bench_peers: catalogue line %" PRIu64 ": %s (not loaded)\n", rec->line,
                    rec->msg);
    }
    sx_load_parse_rec_clear(rec);
}

/* Every stanza of fd, up to opts->max_docs kept documents. */
static bool read_stanzas(int fd, const peers_data_opts *opts, peers_data *d, char *why, size_t cap)
{
    static const char *const ints[] = {PEERS_F_SIZE, NULL};
    sx_load_parse_opts po = {.id_field = "Package",
                             .int_fields = ints,
                             .only_fields = opts->only_fields,
                             .truncate = true};
    sx_load_parse_reader *rd = sx_load_parse_reader_new(fd, 0);
    sx_load_parse_deb *deb = sx_load_parse_deb_new(&po);
    sx_hmap ids = {0};
    size_t docs_cap = 0;
    bool ok = true;
    while (!opts->max_docs || d->n < opts->max_docs) {
        const char *line = NULL;
        size_t len = 0;
        uint64_t lineno = 0;
        sx_load_parse_rec rec = {0};
        sx_load_parse_result r = sx_load_parse_reader_next(rd, &line, &len, &lineno);
        if (r == SX_LOAD_PARSE_ERROR && errno == EINTR)
            continue;
        if (r == SX_LOAD_PARSE_ERROR) {
            snprintf(why, cap, "reading the catalogue: %s", strerror(errno));
            ok = false;
            break;
        }
        if (r == SX_LOAD_PARSE_EOF) {
            sx_load_parse_deb_end(deb, &rec);
            handle(d, &ids, &docs_cap, &rec);
            break;
        }
        if (r == SX_LOAD_PARSE_TOO_LONG)
            sx_load_parse_deb_feed_bad(deb, lineno, "a line longer than the reader's limit");
        else
            sx_load_parse_deb_feed(deb, line, len, lineno, &rec);
        handle(d, &ids, &docs_cap, &rec);
    }
    sx_hmap_free(&ids, NULL);
    sx_load_parse_deb_free(deb);
    sx_load_parse_reader_free(rd);
    return ok;
}

/* The JSON body, maintainer and size of every kept document. */
static void derive(peers_data *d)
{
    for (size_t i = 0; i < d->n; i++) {
        peers_doc *p = &d->d[i];
        p->json = doc_json(p->doc, &p->json_len);
        d->json_bytes += p->json_len;
        d->pb_bytes += protobuf_c_message_get_packed_size(&p->doc->base);
        for (size_t k = 0; k < p->doc->n_fields; k++) {
            const Shardex__V1__Field *f = p->doc->fields[k];
            if (!f->value)
                continue;
            if (strcmp(f->name, PEERS_F_MAINTAINER) == 0 &&
                f->value->kind_case == SHARDEX__V1__VALUE__KIND_S)
                p->maintainer = f->value->s;
            if (strcmp(f->name, PEERS_F_SIZE) == 0 &&
                f->value->kind_case == SHARDEX__V1__VALUE__KIND_I) {
                p->has_size = true;
                p->size = f->value->i;
            }
        }
    }
}

bool peers_data_load(const peers_data_opts *opts, peers_data *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    const char *what = opts->catalogue ? opts->catalogue : "`apt-cache dumpavail`";
    FILE *pipe = NULL;
    int fd = -1;
    if (opts->catalogue) {
        fd = open(opts->catalogue, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(why, cap, "--catalogue %s: %s", opts->catalogue, strerror(errno));
            return false;
        }
    } else {
        pipe = popen("apt-cache dumpavail 2>/dev/null", "r");
        if (!pipe) {
            snprintf(why, cap, "cannot run apt-cache dumpavail: %s", strerror(errno));
            return false;
        }
        fd = fileno(pipe);
    }
    bool ok = read_stanzas(fd, opts, out, why, cap);
    if (pipe) {
        /* Stopped early (max_docs): apt-cache may die of the closed pipe. */
        bool early = opts->max_docs && out->n >= opts->max_docs;
        int st = pclose(pipe);
        if (ok && !early && (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)) {
            snprintf(why, cap, "apt-cache dumpavail failed (status %d); pass --catalogue FILE", st);
            ok = false;
        }
    } else {
        close(fd);
    }
    if (ok && out->n == 0) {
        snprintf(why, cap,
                 "%s holds no package stanza; pass --catalogue FILE (e.g. /var/lib/dpkg/status)",
                 what);
        ok = false;
    }
    if (ok)
        derive(out);
    return ok;
}

void peers_data_free(peers_data *d)
{
    for (size_t i = 0; i < d->n; i++) {
        sx_doc_free(d->d[i].doc);
        free(d->d[i].json);
    }
    free(d->d);
    memset(d, 0, sizeof(*d));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Maintainers with min..max packages, sorted by name (borrowed from counts). */
static char **with_count(const sx_hmap *counts, size_t min, size_t max, size_t *n)
{
    char **v = sx_calloc(sx_hmap_len(counts) + 1, sizeof(*v));
    *n = 0;
    size_t pos = 0;
    const char *key;
    void *val;
    while (sx_hmap_next(counts, &pos, &key, NULL, &val))
        if ((uintptr_t)val >= min && (uintptr_t)val <= max)
            v[(*n)++] = (char *)key;
    qsort(v, *n, sizeof(*v), cmp_str);
    return v;
}

void peers_data_pick(const peers_data *d, size_t ntypical, peers_picks *out)
{
    memset(out, 0, sizeof(*out));
    sx_hmap counts = {0};
    for (size_t i = 0; i < d->n; i++)
        if (d->d[i].maintainer) {
            const char *m = d->d[i].maintainer;
            void **slot = sx_hmap_upsert(&counts, m, strlen(m), NULL);
            *slot = (void *)((uintptr_t)*slot + 1);
        }
    size_t pos = 0, n = 0;
    const char *key;
    void *val;
    while (sx_hmap_next(&counts, &pos, &key, NULL, &val))
        if ((uintptr_t)val > out->hot_count ||
            ((uintptr_t)val == out->hot_count && out->hot && strcmp(key, out->hot) < 0)) {
            free(out->hot);
            out->hot = sx_strdup(key);
            out->hot_count = (uintptr_t)val;
        }
    char **v = with_count(&counts, PEERS_TYPICAL_MIN, PEERS_TYPICAL_MAX, &n);
    if (n == 0) { /* a small --docs: any maintainer will do */
        free(v);
        v = with_count(&counts, 1, SIZE_MAX, &n);
    }
    size_t k = ntypical < n ? ntypical : n;
    out->typical = sx_calloc(k ? k : 1, sizeof(*out->typical));
    out->typical_count = sx_calloc(k ? k : 1, sizeof(*out->typical_count));
    for (size_t i = 0; i < k; i++) {
        const char *name = v[(2 * i + 1) * n / (2 * k)]; /* even steps; k = 1: the middle */
        sx_hmap_get(&counts, name, strlen(name), &val);
        out->typical[i] = sx_strdup(name);
        out->typical_count[i] = (uintptr_t)val;
    }
    out->ntypical = k;
    free(v);
    sx_hmap_free(&counts, NULL);
}

void peers_picks_free(peers_picks *p)
{
    for (size_t i = 0; i < p->ntypical; i++)
        free(p->typical[i]);
    free(p->typical);
    free(p->typical_count);
    free(p->hot);
    memset(p, 0, sizeof(*p));
}

size_t peers_data_count_range(const peers_data *d, int64_t lo, int64_t hi)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->d[i].has_size && d->d[i].size >= lo && d->d[i].size <= hi;
    return n;
}

const peers_doc *peers_data_nth(const peers_data *d, uint64_t seq, char *id, size_t cap)
{
    const peers_doc *p = &d->d[seq % d->n];
    if (seq < d->n)
        snprintf(id, cap, "%s", p->doc->id);
    else
        snprintf(id, cap, "%" PRIu64 "/%s", seq / d->n, p->doc->id);
    return p;
}
