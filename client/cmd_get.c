/* cmd_get.c: `shardex get ID`: one document with its version, fields aligned. */
#include "cmd.h"

#include "out.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct get_cfg {
    sx_cmd_common common;
    const char *after; /* for --help only: sx_cmd_parse collects every --after */
} get_cfg;

static const sx_flag get_flags[] = {
    {.name = "after",
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(get_cfg, after, const char *),
     .metavar = "P:OFFSET[,...]",
     .help = "wait until these writes are visible (repeatable; tokens of other partitions are "
             "ignored)"},
    SX_CMD_COMMON_FLAGS(get_cfg),
};

static const sx_flags_spec get_spec = {
    .prog = "shardex get",
    .synopsis = "[FLAGS] ID",
    .description =
        "Reads the document ID from the leader of its log partition and prints its id, its\n"
        "version (the write token P:OFFSET of its last write) and its fields, one per line and\n"
        "aligned, in the order written: ints as digits, strings quoted (\"42\" is a string).\n"
        "\n"
        "  shardex get vim --after 3:17\n"
        "\n"
        "--json prints a GetResponse {\"found\": true, \"doc\": {\"id\": ..., \"fields\": "
        "[{\"name\":\n"
        "..., \"value\": {\"s\": ...} or {\"i\": ...}}, ...]}, \"version\": {\"partition\", "
        "\"offset\"}}.\n"
        "Exit status: 0 found; 2 usage; 3 the cluster could not answer, or --after could not be\n"
        "met in time; 4 no document has this id (--json then prints {\"found\": false}).",
    .flags = get_flags,
    .count = sizeof(get_flags) / sizeof(get_flags[0]),
};

static void print_doc(const Shardex__V1__GetResponse *g)
{
    printf("id: %s\n", g->doc && g->doc->id ? g->doc->id : "");
    if (g->version)
        printf("version: %" PRIu32 ":%" PRIu64 "\n", g->version->partition, g->version->offset);
    const Shardex__V1__Document *d = g->doc;
    if (!d || d->n_fields == 0) {
        printf("fields: (none)\n");
        return;
    }
    printf("fields:\n");
    sx_table *t = sx_table_new();
    sx_table_col(t, "FIELD", SX_ALIGN_LEFT);
    sx_table_col(t, "VALUE", SX_ALIGN_LEFT);
    for (size_t i = 0; i < d->n_fields; i++) {
        char *v = sx_cmd_value_text(d->fields[i]->value);
        sx_table_cell(t, "%s", d->fields[i]->name);
        sx_table_cell(t, "%s", v);
        free(v);
    }
    sx_table_print(t, stdout, 2, false);
    sx_table_free(t);
}

int sx_cmd_get(const sx_cli *cli, int argc, char **argv)
{
    get_cfg cfg = {.common = sx_cmd_common_init(cli)};
    get_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("get", &get_spec, &cfg, &defaults, argc, argv, "after", &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_token_set after = {0};
    sx_client *cl = NULL;
    Shardex__V1__GetResponse *g = NULL;
    if (a.npos != 1) {
        code = sx_cmd_usage_error("get", a.npos ? "one ID at a time" : "an ID is required");
        goto out;
    }
    if (!sx_cmd_tokens("get", a.rep, a.nrep, &after)) {
        code = SX_EXIT_USAGE;
        goto out;
    }
    code = sx_cmd_connect("get", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_get(cl, a.pos[0], after.ptrs, after.n, &g, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("get", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json)
        sx_cmd_print_json(sx_out_pb_json(&g->base));
    if (!g->found) {
        fprintf(stderr, "shardex: get: no document has the id \"%s\"\n", a.pos[0]);
        code = SX_EXIT_NOT_FOUND;
    } else if (!cfg.common.json) {
        print_doc(g);
    }
out:
    sx_client_free(g);
    sx_cmd_disconnect(cl);
    sx_token_set_free(&after);
    sx_cmd_args_free(&a);
    return code;
}
