/* cmd_query.c: `shardex query`: one page of a query, or every page (--all),
 * as a table of (value, id) with a footer saying how it was served. */
#include "cmd.h"

#include "clock.h"
#include "mem.h"
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct query_cfg {
    sx_cmd_common common;
    const char *index;
    const char *eq, *min, *max;
    const char *mode;
    uint32_t limit;
    bool all;
    bool docs;
    const char *page_token;
    const char *after; /* for --help only: sx_cmd_parse collects every --after */
    uint32_t budget_ms;
    uint32_t max_staleness_ms;
    uint32_t hedge_after_ms;
} query_cfg;

static const char *const modes[] = {"auto", "local", "global", NULL};

#define QOFF(m, t) SX_FLAG_OFFSET(query_cfg, m, t)
static const sx_flag query_flags[] = {
    {.name = "index",
     .short_name = 'i',
     .type = SX_FLAG_STRING,
     .offset = QOFF(index, const char *),
     .metavar = "NAME",
     .help = "the index to query (required)"},
    {.name = "eq",
     .type = SX_FLAG_STRING,
     .offset = QOFF(eq, const char *),
     .metavar = "VALUE",
     .help = "hits whose value equals VALUE"},
    {.name = "min",
     .type = SX_FLAG_STRING,
     .offset = QOFF(min, const char *),
     .metavar = "VALUE",
     .help = "hits whose value is at least VALUE (inclusive; unset: no lower bound)"},
    {.name = "max",
     .type = SX_FLAG_STRING,
     .offset = QOFF(max, const char *),
     .metavar = "VALUE",
     .help = "hits whose value is at most VALUE (inclusive; unset: no upper bound)"},
    {.name = "mode",
     .type = SX_FLAG_CHOICE,
     .offset = QOFF(mode, const char *),
     .choices = modes,
     .help = "local: scatter to every log partition; global: the term partitions holding the "
             "values; auto: the server chooses"},
    {.name = "limit",
     .short_name = 'n',
     .type = SX_FLAG_UINT32,
     .offset = QOFF(limit, uint32_t),
     .metavar = "N",
     .help = "hits per page; 0: the server's default (100)",
     .min = 0,
     .max = 10000},
    {.name = "all",
     .type = SX_FLAG_BOOL,
     .offset = QOFF(all, bool),
     .help = "page through every hit (--limit per page)"},
    {.name = "docs",
     .type = SX_FLAG_BOOL,
     .offset = QOFF(docs, bool),
     .help = "include each hit's document"},
    {.name = "page-token",
     .type = SX_FLAG_STRING,
     .offset = QOFF(page_token, const char *),
     .metavar = "TOKEN",
     .help = "start after the page that printed this next page token"},
    {.name = "after",
     .type = SX_FLAG_STRING,
     .offset = QOFF(after, const char *),
     .metavar = "P:OFFSET[,...]",
     .help = "wait until these writes are visible in the index (repeatable)"},
    {.name = "budget-ms",
     .type = SX_FLAG_UINT32,
     .offset = QOFF(budget_ms, uint32_t),
     .metavar = "N",
     .help = "LOCAL: answer within N ms with the partitions that answered, naming the missing "
             "ones (0: wait for all)",
     .min = 0,
     .max = 3600000},
    {.name = "max-staleness-ms",
     .type = SX_FLAG_UINT32,
     .offset = QOFF(max_staleness_ms, uint32_t),
     .metavar = "N",
     .help = "LOCAL: when a leader is slow, also ask a follower that can prove it is at most N ms "
             "stale; the first answer wins (0: leaders only)",
     .min = 0,
     .max = 3600000},
    {.name = "hedge-after-ms",
     .type = SX_FLAG_UINT32,
     .offset = QOFF(hedge_after_ms, uint32_t),
     .metavar = "N",
     .help = "ask the follower this long after the leader (0: a quarter of --budget-ms, or 50)",
     .min = 0,
     .max = 3600000},
    SX_CMD_COMMON_FLAGS(query_cfg),
};

static const sx_flags_spec query_spec = {
    .prog = "shardex query",
    .synopsis = "--index NAME (--eq VALUE | [--min VALUE] [--max VALUE]) [FLAGS]",
    .description =
        "Finds the documents whose indexed field has a value, or a value in a range, and prints\n"
        "the hits ordered by (value, id): a document whose multi-valued field matches twice is\n"
        "two hits. VALUE is typed by the index (shardex index list): an int index takes\n"
        "decimal integers, a string index takes any text (--eq 42 on it means the string \"42\").\n"
        "A footer says how many hits, the mode that served them (LOCAL or GLOBAL), how many\n"
        "partitions were contacted, how stale the view may be, the time taken, and the token of\n"
        "the next page when there is one.\n"
        "\n"
        "  shardex query --index section --eq editors --mode global\n"
        "  shardex query --index installed-size --min 1000 --max 2000 --all\n"
        "\n"
        "--json prints a QueryResponse {\"hits\": [{\"id\": ..., \"value\": {\"s\" or \"i\": "
        "...},\n"
        "\"doc\": ...}], \"next_page_token\": base64, \"mode\": \"MODE_LOCAL\" or "
        "\"MODE_GLOBAL\",\n"
        "\"partitions_contacted\": N, \"staleness_ms\": N} plus \"pages\" and \"elapsed_ms\"; "
        "with\n"
        "--all, the pages merged (partitions summed, the highest staleness, the last mode).\n"
        "\n"
        "--budget-ms N answers within N ms with what answered: a partial answer says so\n"
        "(\"partial\": true), names the log partitions missing (\"missing_partitions\") and has\n"
        "the hits of the others only; its next page token resumes each partition where it\n"
        "stood, so the missing ones are read on the next page (--all stops at a partial page\n"
        "and prints that token). --max-staleness-ms N hedges a slow leader's scan to a\n"
        "follower that can prove it is at most N ms stale (\"follower_partitions\" names the\n"
        "partitions it served; staleness_ms is the worst bound).\n"
        "Exit status: 0 answered (no hit included); 2 usage; 3 the cluster could not answer (a\n"
        "term partition without an owner, --after not met in time); 4 no such index; 5 refused\n"
        "(a value of the wrong type, an index still BUILDING or not kept in the mode asked).",
    .flags = query_flags,
    .count = sizeof(query_flags) / sizeof(query_flags[0]),
};

/* An integer as an int index takes it: decimal, a sign allowed, within int64. */
static bool lenient_int(const char *s, int64_t *out)
{
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    if (*d < '0' || *d > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* A VALUE of the command line as the index's type wants it. An int index
 * whose VALUE is not an integer gets a string, for the server to refuse with
 * its own message. */
static Shardex__V1__Value *make_value(const char *s, bool is_int)
{
    Shardex__V1__Value *v = sx_calloc(1, sizeof(*v));
    shardex__v1__value__init(v);
    int64_t i = 0;
    if (is_int && lenient_int(s, &i)) {
        v->kind_case = SHARDEX__V1__VALUE__KIND_I;
        v->i = i;
    } else {
        v->kind_case = SHARDEX__V1__VALUE__KIND_S;
        v->s = (char *)s;
    }
    return v;
}

/* Whether index `name` holds ints; an unknown index counts as int when the
 * values look like ints (the server then answers NOT_FOUND anyway). */
static sx_status index_is_int(sx_client *cl, const query_cfg *cfg, bool *is_int, sx_err *err)
{
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_status st = sx_client_list_indexes(cl, &l, err);
    if (st != SX_OK)
        return st;
    int64_t dummy;
    *is_int = cfg->eq ? sx_cmd_int_parse(cfg->eq, &dummy)
                      : (!cfg->min || sx_cmd_int_parse(cfg->min, &dummy)) &&
                            (!cfg->max || sx_cmd_int_parse(cfg->max, &dummy));
    for (size_t i = 0; i < l->n_indexes; i++) {
        const Shardex__V1__IndexSpec *s = l->indexes[i]->spec;
        if (s && s->name && strcmp(s->name, cfg->index) == 0)
            *is_int = s->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    }
    sx_client_free(l);
    return SX_OK;
}

static const char *mode_name(Shardex__V1__Mode m)
{
    return m == SHARDEX__V1__MODE__MODE_LOCAL    ? "LOCAL"
           : m == SHARDEX__V1__MODE__MODE_GLOBAL ? "GLOBAL"
                                                 : "UNSPECIFIED";
}

/* The pages of one run, merged: hits borrowed from the pages. */
typedef struct merged {
    Shardex__V1__QueryResponse **pages;
    size_t npages;
    Shardex__V1__QueryResponse sum;
    unsigned modes; /* bit per Mode seen */
} merged;

static void merge_page(merged *m, Shardex__V1__QueryResponse *r)
{
    m->pages = sx_realloc(m->pages, (m->npages + 1) * sizeof(*m->pages));
    m->pages[m->npages++] = r;
    m->sum.hits = sx_realloc(m->sum.hits, (m->sum.n_hits + r->n_hits + 1) * sizeof(*m->sum.hits));
    if (r->n_hits)
        memcpy(m->sum.hits + m->sum.n_hits, r->hits, r->n_hits * sizeof(*r->hits));
    m->sum.n_hits += r->n_hits;
    m->sum.next_page_token = r->next_page_token;
    m->sum.mode = r->mode;
    m->sum.partial |= r->partial;
    /* The last page's missing and follower partitions: what the token resumes. */
    m->sum.missing_partitions = r->missing_partitions;
    m->sum.n_missing_partitions = r->n_missing_partitions;
    m->sum.follower_partitions = r->follower_partitions;
    m->sum.n_follower_partitions = r->n_follower_partitions;
    m->sum.partitions_contacted += r->partitions_contacted;
    if (r->staleness_ms > m->sum.staleness_ms)
        m->sum.staleness_ms = r->staleness_ms;
    m->modes |= 1u << (r->mode & 7);
}

static void print_text(const query_cfg *cfg, const merged *m, double elapsed_ms)
{
    const Shardex__V1__QueryResponse *s = &m->sum;
    if (s->n_hits) {
        sx_table *t = sx_table_new();
        sx_table_col(t, "VALUE", SX_ALIGN_LEFT);
        sx_table_col(t, "ID", SX_ALIGN_LEFT);
        if (cfg->docs)
            sx_table_col(t, "DOCUMENT", SX_ALIGN_LEFT);
        for (size_t i = 0; i < s->n_hits; i++) {
            const Shardex__V1__Hit *h = s->hits[i];
            char *v = sx_cmd_value_text(h->value);
            sx_table_cell(t, "%s", v);
            sx_table_cell(t, "%s", h->id);
            free(v);
            if (cfg->docs) {
                char *f = sx_cmd_fields_text(h->doc);
                sx_table_cell(t, "%s", f);
                free(f);
            }
        }
        sx_table_print(t, stdout, 0, true);
        sx_table_free(t);
    }
    const char *mode = mode_name(s->mode);
    if (m->modes ==
        ((1u << SHARDEX__V1__MODE__MODE_LOCAL) | (1u << SHARDEX__V1__MODE__MODE_GLOBAL)))
        mode = "LOCAL and GLOBAL";
    printf("%zu hit%s; mode %s, %" PRIu32 " partition%s contacted, stale by at most %" PRIu64
           " ms; %.1f ms",
           s->n_hits, s->n_hits == 1 ? "" : "s", mode, s->partitions_contacted,
           s->partitions_contacted == 1 ? "" : "s", s->staleness_ms, elapsed_ms);
    if (m->npages > 1)
        printf(", %zu pages", m->npages);
    printf("\n");
    if (s->partial) {
        printf("partial: %zu partition%s did not answer within %" PRIu32 " ms:",
               s->n_missing_partitions, s->n_missing_partitions == 1 ? "" : "s", cfg->budget_ms);
        for (size_t i = 0; i < s->n_missing_partitions; i++)
            printf(" %" PRIu32, s->missing_partitions[i]);
        printf("\n");
    }
    if (s->n_follower_partitions) {
        printf("served by followers:");
        for (size_t i = 0; i < s->n_follower_partitions; i++)
            printf(" %" PRIu32, s->follower_partitions[i]);
        printf("\n");
    }
    if (s->next_page_token.len) {
        char *tok = sx_out_base64(s->next_page_token.data, s->next_page_token.len);
        printf("next page: --page-token %s\n", tok);
        free(tok);
    }
}

int sx_cmd_query(const sx_cli *cli, int argc, char **argv)
{
    query_cfg cfg = {.common = sx_cmd_common_init(cli), .mode = "auto"};
    query_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("query", &query_spec, &cfg, &defaults, argc, argv, "after", &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_token_set after = {0};
    sx_client *cl = NULL;
    merged m = {.sum = SHARDEX__V1__QUERY_RESPONSE__INIT};
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    Shardex__V1__Range range = SHARDEX__V1__RANGE__INIT;
    Shardex__V1__Value *eq = NULL, *min = NULL, *max = NULL;
    unsigned char *page = NULL;
    size_t page_len = 0;
    if (a.npos) {
        code = sx_cmd_usage_error("query", "unexpected argument '%s'", a.pos[0]);
        goto out;
    }
    if (!cfg.index || !*cfg.index) {
        code = sx_cmd_usage_error("query", "--index is required");
        goto out;
    }
    if (!cfg.eq && !cfg.min && !cfg.max) {
        code = sx_cmd_usage_error("query", "give --eq VALUE, or --min and/or --max");
        goto out;
    }
    if (cfg.eq && (cfg.min || cfg.max)) {
        code = sx_cmd_usage_error("query", "--eq and --min/--max do not go together");
        goto out;
    }
    if (cfg.page_token && !sx_out_base64_decode(cfg.page_token, &page, &page_len)) {
        code = sx_cmd_usage_error("query", "--page-token: not a token this tool printed");
        goto out;
    }
    if (!sx_cmd_tokens("query", a.rep, a.nrep, &after)) {
        code = SX_EXIT_USAGE;
        goto out;
    }
    code = sx_cmd_connect("query", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    bool is_int = false;
    sx_status st = index_is_int(cl, &cfg, &is_int, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("query", &cfg.common, st, err.msg);
        goto out;
    }
    req.index = (char *)cfg.index;
    if (cfg.eq) {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        req.eq = eq = make_value(cfg.eq, is_int);
    } else {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
        req.range = &range;
        range.min = min = cfg.min ? make_value(cfg.min, is_int) : NULL;
        range.max = max = cfg.max ? make_value(cfg.max, is_int) : NULL;
    }
    req.mode = strcmp(cfg.mode, "local") == 0    ? SHARDEX__V1__MODE__MODE_LOCAL
               : strcmp(cfg.mode, "global") == 0 ? SHARDEX__V1__MODE__MODE_GLOBAL
                                                 : SHARDEX__V1__MODE__MODE_UNSPECIFIED;
    req.limit = cfg.limit;
    req.include_docs = cfg.docs;
    req.budget_ms = cfg.budget_ms;
    req.max_staleness_ms = cfg.max_staleness_ms;
    req.hedge_after_ms = cfg.hedge_after_ms;
    req.after = after.ptrs;
    req.n_after = after.n;
    req.page_token.data = page;
    req.page_token.len = page_len;
    uint64_t t0 = sx_clock_now_ns();
    for (;;) {
        Shardex__V1__QueryResponse *r = NULL;
        st = sx_client_query(cl, &req, &r, &err);
        if (st != SX_OK) {
            code = sx_cmd_fail("query", &cfg.common, st, err.msg);
            goto out;
        }
        merge_page(&m, r);
        /* A partial page always has a next token (the missing partitions
         * remain to read): the user decides whether to go on. */
        if (!cfg.all || r->next_page_token.len == 0 || r->partial)
            break;
        req.page_token = r->next_page_token;
    }
    double elapsed = (double)(sx_clock_now_ns() - t0) / 1e6;
    if (cfg.common.json) {
        json_t *j = sx_out_pb_json(&m.sum.base);
        json_object_set_new(j, "pages", json_integer((json_int_t)m.npages));
        json_object_set_new(j, "elapsed_ms",
                            json_real((double)(int64_t)(elapsed * 1000 + 0.5) / 1000));
        sx_cmd_print_json(j);
    } else {
        print_text(&cfg, &m, elapsed);
    }
out:
    for (size_t i = 0; i < m.npages; i++)
        sx_client_free(m.pages[i]);
    free(m.pages);
    free(m.sum.hits);
    free(eq); /* not req.eq: a union with req.range */
    free(min);
    free(max);
    free(page);
    sx_cmd_disconnect(cl);
    sx_token_set_free(&after);
    sx_cmd_args_free(&a);
    return code;
}
