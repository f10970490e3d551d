/* cmd_write.c: `shardex put` and `shardex delete`, one request each, printing
 * one write token per document or id. */
#include "cmd.h"

#include "load_parse.h"
#include "mem.h"
#include "out.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints tokens, one "P:OFFSET" per line, or as a Put/DeleteResponse (same
 * shape) under --json. */
static void print_tokens(const sx_cmd_common *c, const Shardex__V1__WriteToken *tok, size_t n)
{
    if (!c->json) {
        for (size_t i = 0; i < n; i++)
            printf("%" PRIu32 ":%" PRIu64 "\n", tok[i].partition, tok[i].offset);
        return;
    }
    Shardex__V1__PutResponse r = SHARDEX__V1__PUT_RESPONSE__INIT;
    Shardex__V1__WriteToken **p = sx_calloc(n ? n : 1, sizeof(*p));
    for (size_t i = 0; i < n; i++)
        p[i] = (Shardex__V1__WriteToken *)&tok[i];
    r.n_tokens = n;
    r.tokens = p;
    sx_cmd_print_json(sx_out_pb_json(&r.base));
    free(p);
}

/* ------------------------------------------------------------------- put -- */

typedef struct put_cfg {
    sx_cmd_common common;
    bool string;
} put_cfg;

static const sx_flag put_flags[] = {
    {.name = "string",
     .type = SX_FLAG_BOOL,
     .offset = SX_FLAG_OFFSET(put_cfg, string, bool),
     .help = "every VALUE of FIELD=VALUE is a string, even 42"},
    SX_CMD_COMMON_FLAGS(put_cfg),
};

static const sx_flags_spec put_spec = {
    .prog = "shardex put",
    .synopsis = "[FLAGS] ID [FIELD=VALUE...]\n       shardex put [FLAGS] JSON...",
    .description =
        "Writes a document (replacing any with the same id) and prints its write token P:OFFSET\n"
        "(log partition, offset), which get and query take with --after to read their writes.\n"
        "\n"
        "  shardex put vim section=editors installed-size=3920 tag=tui tag=modal\n"
        "\n"
        "FIELD=VALUE splits at the first '='. A VALUE written as a decimal int64 (42, -7; not\n"
        "+7 or 007) is an int unless --string; any other VALUE is a string. A FIELD given more\n"
        "than once is multi-valued, in the order given.\n"
        "\n"
        "When the first argument starts with '{', every argument is a JSON document\n"
        "{\"id\": ID, \"fields\": {NAME: VALUE or [VALUE, ...]}} with string and integer values;\n"
        "they are written in one request and their tokens printed one per line, in order:\n"
        "\n"
        "  shardex put '{\"id\": \"vim\", \"fields\": {\"tag\": [\"tui\", \"modal\"], \"size\": "
        "3920}}'\n"
        "\n"
        "--json prints a PutResponse {\"tokens\": [{\"partition\": P, \"offset\": N}, ...]}.\n"
        "Exit status: 0 written; 2 usage; 3 the cluster could not answer (a document may have\n"
        "been written or not: putting the same document again is safe); 5 refused by the server\n"
        "(a bad id, field or size: nothing was written).",
    .flags = put_flags,
    .count = sizeof(put_flags) / sizeof(put_flags[0]),
};

/* put's JSON documents are parsed as `shardex load` parses a JSON line, but
 * with string ids only and the limits left to the server, so that a document
 * it refuses is exit 5 here as one given as FIELD=VALUE is. */
static const sx_load_parse_opts json_opts = {.no_limits = true, .string_ids = true};

/* Document number `no` (from 1) from its JSON text; NULL after a usage
 * error. */
static Shardex__V1__Document *json_doc(const char *text, size_t no)
{
    sx_load_parse_rec r;
    Shardex__V1__Document *d = NULL;
    switch (sx_load_parse_json_line(&json_opts, text, strlen(text), no, &r)) {
    case SX_LOAD_PARSE_REC_PUT:
        d = r.doc;
        r.doc = NULL;
        break;
    case SX_LOAD_PARSE_REC_BAD:
        sx_cmd_usage_error("put", "document %zu: %s", no, r.msg);
        break;
    default: /* blank, or a delete record */
        sx_cmd_usage_error("put", "document %zu: a document is {\"id\": ID, \"fields\": {...}}",
                           no);
    }
    sx_load_parse_rec_clear(&r);
    return d;
}

/* A document from ID FIELD=VALUE...; NULL after a usage error. */
static Shardex__V1__Document *args_doc(const put_cfg *cfg, char *const *pos, size_t n)
{
    Shardex__V1__Document *d = sx_doc_new(pos[0]);
    for (size_t i = 1; i < n; i++) {
        const char *eq = strchr(pos[i], '=');
        if (!eq || eq == pos[i]) {
            sx_cmd_usage_error("put", "'%s': expected FIELD=VALUE", pos[i]);
            sx_doc_free(d);
            return NULL;
        }
        char *name = sx_malloc((size_t)(eq - pos[i]) + 1);
        memcpy(name, pos[i], (size_t)(eq - pos[i]));
        name[eq - pos[i]] = '\0';
        int64_t iv = 0;
        if (!cfg->string && sx_cmd_int_parse(eq + 1, &iv))
            sx_doc_add_int(d, name, iv);
        else
            sx_doc_add_str(d, name, eq + 1);
        free(name);
    }
    return d;
}

int sx_cmd_put(const sx_cli *cli, int argc, char **argv)
{
    put_cfg cfg = {.common = sx_cmd_common_init(cli)};
    put_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("put", &put_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    Shardex__V1__Document **docs = NULL;
    size_t n = 0;
    sx_client *cl = NULL;
    Shardex__V1__WriteToken *tok = NULL;
    if (a.npos == 0) {
        code = sx_cmd_usage_error("put", "an ID (or a JSON document) is required");
        goto out;
    }
    if (a.pos[0][0] == '{') {
        docs = sx_calloc(a.npos, sizeof(*docs));
        for (; n < a.npos; n++) {
            docs[n] = json_doc(a.pos[n], n + 1);
            if (!docs[n]) {
                code = SX_EXIT_USAGE;
                goto out;
            }
        }
    } else {
        docs = sx_calloc(1, sizeof(*docs));
        docs[0] = args_doc(&cfg, a.pos, a.npos);
        if (!docs[0]) {
            code = SX_EXIT_USAGE;
            goto out;
        }
        n = 1;
    }
    code = sx_cmd_connect("put", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    tok = sx_calloc(n, sizeof(*tok));
    sx_err err = {0};
    sx_status st = sx_client_put(cl, docs, n, tok, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("put", &cfg.common, st, err.msg);
        goto out;
    }
    print_tokens(&cfg.common, tok, n);
out:
    free(tok);
    sx_cmd_disconnect(cl);
    for (size_t i = 0; i < n; i++)
        sx_doc_free(docs[i]);
    free(docs);
    sx_cmd_args_free(&a);
    return code;
}

/* ---------------------------------------------------------------- delete -- */

typedef struct delete_cfg {
    sx_cmd_common common;
} delete_cfg;

static const sx_flag delete_flags[] = {
    SX_CMD_COMMON_FLAGS(delete_cfg),
};

static const sx_flags_spec delete_spec = {
    .prog = "shardex delete",
    .synopsis = "[FLAGS] ID...",
    .description =
        "Deletes the documents with these ids, in one request, and prints one write token\n"
        "P:OFFSET per id, in order. Deleting an id that does not exist is not an error (it gets\n"
        "a token too).\n"
        "\n"
        "--json prints a DeleteResponse {\"tokens\": [{\"partition\": P, \"offset\": N}, ...]}.\n"
        "Exit status: 0 deleted; 2 usage; 3 the cluster could not answer (deleting again is\n"
        "safe); 5 refused by the server (a bad id: nothing was deleted).",
    .flags = delete_flags,
    .count = sizeof(delete_flags) / sizeof(delete_flags[0]),
};

int sx_cmd_delete(const sx_cli *cli, int argc, char **argv)
{
    delete_cfg cfg = {.common = sx_cmd_common_init(cli)};
    delete_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("delete", &delete_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__WriteToken *tok = NULL;
    if (a.npos == 0) {
        code = sx_cmd_usage_error("delete", "at least one ID is required");
        goto out;
    }
    code = sx_cmd_connect("delete", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    tok = sx_calloc(a.npos, sizeof(*tok));
    sx_err err = {0};
    sx_status st = sx_client_delete(cl, (const char *const *)a.pos, a.npos, tok, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("delete", &cfg.common, st, err.msg);
        goto out;
    }
    print_tokens(&cfg.common, tok, a.npos);
out:
    free(tok);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}
