/* cmd_index.c: `shardex index create|drop|list`: the index catalog. */
#include "cmd.h"

#include "clock.h"
#include "mem.h"
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How often --wait asks whether the index is READY. */
#define WAIT_POLL_MS 100

static const char *type_name(Shardex__V1__ValueType t)
{
    return t == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT      ? "int"
           : t == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING ? "string"
                                                             : "?";
}

static const char *state_name(Shardex__V1__IndexState s)
{
    return s == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY      ? "READY"
           : s == SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING ? "BUILDING"
                                                                 : "UNSPECIFIED";
}

static const char *kept_name(const Shardex__V1__IndexSpec *s)
{
    return s->local && s->global ? "local,global" : s->local ? "local" : s->global ? "global" : "-";
}

/* The BACKFILL cell: while BUILDING, the share of documents passed and the
 * time left at the current rate; "-" when unknown (no partition counted yet),
 * "done" once READY. */
static void backfill_cell(sx_table *t, const Shardex__V1__IndexInfo *ix)
{
    if (ix->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY) {
        sx_table_cell(t, "done");
    } else if (ix->backfill_total_docs == 0) {
        sx_table_cell(t, "-");
    } else {
        uint64_t done = ix->backfill_done_docs < ix->backfill_total_docs ? ix->backfill_done_docs
                                                                         : ix->backfill_total_docs;
        double pct = 100.0 * (double)done / (double)ix->backfill_total_docs;
        if (ix->eta_seconds > 0)
            sx_table_cell(t, "%.0f%% eta %.0fs", pct, ix->eta_seconds);
        else
            sx_table_cell(t, "%.0f%%", pct);
    }
}

void sx_cmd_index_table(Shardex__V1__IndexInfo *const *ix, size_t n, int indent)
{
    if (n == 0) {
        printf("%*sno indexes\n", indent, "");
        return;
    }
    sx_table *t = sx_table_new();
    sx_table_col(t, "NAME", SX_ALIGN_LEFT);
    sx_table_col(t, "FIELD", SX_ALIGN_LEFT);
    sx_table_col(t, "TYPE", SX_ALIGN_LEFT);
    sx_table_col(t, "KEPT", SX_ALIGN_LEFT);
    sx_table_col(t, "M", SX_ALIGN_RIGHT);
    sx_table_col(t, "STATE", SX_ALIGN_LEFT);
    sx_table_col(t, "MISTYPED", SX_ALIGN_RIGHT);
    sx_table_col(t, "BACKFILL", SX_ALIGN_LEFT);
    for (size_t i = 0; i < n; i++) {
        const Shardex__V1__IndexSpec *s = ix[i]->spec;
        if (!s)
            continue;
        sx_table_cell(t, "%s", s->name);
        sx_table_cell(t, "%s", s->field);
        sx_table_cell(t, "%s", type_name(s->type));
        sx_table_cell(t, "%s", kept_name(s));
        if (s->global && ix[i]->splits_in_progress) /* serving, and a split being built */
            sx_table_cell(t, "%zu (splitting)",
                          ix[i]->n_term_layout ? ix[i]->n_term_layout : (size_t)s->term_partitions);
        else if (s->global)
            sx_table_cell(t, "%zu",
                          ix[i]->n_term_layout ? ix[i]->n_term_layout : (size_t)s->term_partitions);
        else
            sx_table_cell(t, "-");
        sx_table_cell(t, "%s", state_name(ix[i]->state));
        sx_table_cell(t, "%" PRIu64, ix[i]->mistyped_docs);
        backfill_cell(t, ix[i]);
    }
    sx_table_print(t, stdout, indent, true);
    sx_table_free(t);
    /* Salted hot values (docs/indexes.md "Hot values"): where their entries
     * spread. */
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; ix[i]->spec && k < ix[i]->n_hot_values; k++) {
            const Shardex__V1__HotValue *h = ix[i]->hot_values[k];
            if (!h->value)
                continue;
            printf("%*shot value of %s: ", indent, "", ix[i]->spec->name);
            if (h->value->kind_case == SHARDEX__V1__VALUE__KIND_I)
                printf("%" PRId64, h->value->i);
            else
                printf("\"%s\"", h->value->s ? h->value->s : "");
            printf(" spread over %u term partitions", h->ways);
            if (h->share > 0)
                printf(" (%.1f%% of its changes)", 100.0 * h->share);
            printf("\n");
        }
    }
}

/* ---------------------------------------------------------------- create -- */

typedef struct create_cfg {
    sx_cmd_common common;
    const char *field;
    const char *type;
    bool local, global;
    uint32_t term_partitions;
    const char *partitioning;
    const char *split_points;
    bool wait;
} create_cfg;

static const char *const types[] = {"string", "int", NULL};
static const char *const partitionings[] = {"hash", "range", NULL};

#define COFF(m, t) SX_FLAG_OFFSET(create_cfg, m, t)
static const sx_flag create_flags[] = {
    {.name = "field",
     .short_name = 'f',
     .type = SX_FLAG_STRING,
     .offset = COFF(field, const char *),
     .metavar = "FIELD",
     .help = "the document field to index (required)"},
    {.name = "type",
     .short_name = 't',
     .type = SX_FLAG_CHOICE,
     .offset = COFF(type, const char *),
     .choices = types,
     .help = "type of the values indexed; a document whose field has the other type is counted "
             "as mistyped, not indexed"},
    {.name = "local",
     .type = SX_FLAG_BOOL,
     .offset = COFF(local, bool),
     .help = "keep it document-partitioned: each log partition indexes its own documents"},
    {.name = "global",
     .type = SX_FLAG_BOOL,
     .offset = COFF(global, bool),
     .help = "keep it term-partitioned: M term partitions by value, updated asynchronously"},
    {.name = "term-partitions",
     .short_name = 'm',
     .type = SX_FLAG_UINT32,
     .offset = COFF(term_partitions, uint32_t),
     .metavar = "M",
     .help = "term partitions of the global index; 0: the cluster's default"},
    {.name = "partitioning",
     .type = SX_FLAG_CHOICE,
     .offset = COFF(partitioning, const char *),
     .choices = partitionings,
     .help = "how values map to term partitions: by hash, or by contiguous ranges bounded by "
             "--split-points (a range query then reads only the partitions that cover it)"},
    {.name = "split-points",
     .type = SX_FLAG_STRING,
     .offset = COFF(split_points, const char *),
     .metavar = "V1,V2,...",
     .help = "range partitioning: the increasing values that start term partitions 1..M-1; "
             "without it, the worker chooses the M-quantiles (M: --term-partitions, else the "
             "cluster's default) of a sample of the field's values in the data now, fewer when "
             "distinct values run out (none yet: one term partition, grown by index split)"},
    {.name = "wait",
     .short_name = 'w',
     .type = SX_FLAG_BOOL,
     .offset = COFF(wait, bool),
     .help = "wait (up to --timeout-ms) until the backfill is done and the index is READY"},
    SX_CMD_COMMON_FLAGS(create_cfg),
};

static const sx_flags_spec create_spec = {
    .prog = "shardex index create",
    .synopsis = "NAME --field FIELD [--type string|int] [--local] [--global] [FLAGS]",
    .description =
        "Creates an index of FIELD named NAME, kept LOCAL and GLOBAL unless one of --local and\n"
        "--global is given. It is BUILDING while the documents already written are backfilled,\n"
        "then READY (see --wait, and shardex index list).\n"
        "\n"
        "  shardex index create section --field section --wait\n"
        "  shardex index create size --field installed-size --type int --local\n"
        "  shardex index create pkg --field package --global --partitioning range \\\n"
        "      --split-points g,m,s\n"
        "  shardex index create size-r --field size --type int --global --partitioning range -m 8\n"
        "\n"
        "--json prints a CreateIndexResponse {\"index\": {\"spec\": {...}, \"state\": ...}} (with\n"
        "--wait, the index once READY). Exit status: 0 created; 2 usage; 3 the cluster could not\n"
        "answer, or --wait ran out of time; 5 refused (the name is taken, a bad spec).",
    .flags = create_flags,
    .count = sizeof(create_flags) / sizeof(create_flags[0]),
};

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls until index `name` is READY; on SX_OK *info is it (a copy the caller
 * frees with the response *list). */
static sx_status wait_ready(sx_client *cl, const char *name, uint64_t timeout_ms,
                            Shardex__V1__ListIndexesResponse **list, Shardex__V1__IndexInfo **info,
                            sx_err *err)
{
    uint64_t deadline = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        Shardex__V1__ListIndexesResponse *l = NULL;
        sx_status st = sx_client_list_indexes(cl, &l, err);
        if (st != SX_OK)
            return st;
        Shardex__V1__IndexInfo *found = NULL;
        for (size_t i = 0; i < l->n_indexes; i++)
            if (l->indexes[i]->spec && strcmp(l->indexes[i]->spec->name, name) == 0)
                found = l->indexes[i];
        if (!found) {
            sx_client_free(l);
            return sx_err_set(err, SX_NOT_FOUND, "index \"%s\" is gone (dropped meanwhile?)", name);
        }
        if (found->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY) {
            *list = l;
            *info = found;
            return SX_OK;
        }
        sx_client_free(l);
        if (sx_clock_now_ms() + WAIT_POLL_MS > deadline)
            return sx_err_set(err, SX_DEADLINE_EXCEEDED,
                              "index \"%s\" is still BUILDING after %" PRIu64 " ms", name,
                              timeout_ms);
        sleep_ms(WAIT_POLL_MS);
    }
}

/* Parses --split-points "V1,V2,..." as values of the index's type into
 * arena-free storage the caller frees with free_splits. False with a message
 * on a malformed int or an empty value. */
static bool parse_splits(const char *list, bool is_int, Shardex__V1__IndexSpec *spec,
                         const char **why)
{
    size_t n = 1;
    for (const char *c = list; *c; c++)
        n += *c == ',';
    spec->split_points = sx_calloc(n, sizeof(*spec->split_points));
    const char *p = list;
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!len) {
            *why = "--split-points: an empty value";
            return false;
        }
        Shardex__V1__Value *v = sx_calloc(1, sizeof(*v));
        shardex__v1__value__init(v);
        spec->split_points[spec->n_split_points++] = v;
        char *text = sx_malloc(len + 1);
        memcpy(text, p, len);
        text[len] = 0;
        if (is_int) {
            char *end = NULL;
            errno = 0;
            long long x = strtoll(text, &end, 10);
            bool bad = errno || *end;
            free(text);
            if (bad) {
                *why = "--split-points: not an int";
                return false;
            }
            v->kind_case = SHARDEX__V1__VALUE__KIND_I;
            v->i = x;
        } else {
            v->kind_case = SHARDEX__V1__VALUE__KIND_S;
            v->s = text;
        }
        p += len + 1;
    }
    return true;
}

static void free_splits(Shardex__V1__IndexSpec *spec)
{
    for (size_t i = 0; i < spec->n_split_points; i++) {
        if (spec->split_points[i]->kind_case == SHARDEX__V1__VALUE__KIND_S)
            free(spec->split_points[i]->s);
        free(spec->split_points[i]);
    }
    free(spec->split_points);
}

static int index_create(const sx_cli *cli, int argc, char **argv)
{
    create_cfg cfg = {.common = sx_cmd_common_init(cli), .type = "string", .partitioning = "hash"};
    create_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("index create", &create_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__CreateIndexResponse *r = NULL;
    Shardex__V1__ListIndexesResponse *l = NULL;
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    if (a.npos != 1) {
        code = sx_cmd_usage_error("index create",
                                  a.npos ? "one NAME at a time" : "the index NAME is required");
        goto out;
    }
    if (!cfg.field || !*cfg.field) {
        code = sx_cmd_usage_error("index create", "--field is required");
        goto out;
    }
    bool range = strcmp(cfg.partitioning, "range") == 0;
    if (cfg.split_points && !range) {
        code = sx_cmd_usage_error("index create", "--split-points needs --partitioning range");
        goto out;
    }
    if (range) {
        const char *why = "";
        spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
        if (cfg.split_points &&
            !parse_splits(cfg.split_points, strcmp(cfg.type, "int") == 0, &spec, &why)) {
            code = sx_cmd_usage_error("index create", "%s", why);
            goto out;
        }
    }
    code = sx_cmd_connect("index create", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    spec.name = a.pos[0];
    spec.field = (char *)cfg.field;
    spec.type = strcmp(cfg.type, "int") == 0 ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                                             : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = cfg.local || !cfg.global;
    spec.global = cfg.global || !cfg.local;
    spec.term_partitions = cfg.term_partitions;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    sx_status st = sx_client_create_index(cl, &spec, &r, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("index create", &cfg.common, st, err.msg);
        goto out;
    }
    Shardex__V1__IndexInfo *info = r->index;
    if (cfg.wait) {
        st = wait_ready(cl, spec.name, cfg.common.timeout_ms, &l, &info, &err);
        if (st != SX_OK) {
            code = sx_cmd_fail("index create", &cfg.common, st, err.msg);
            goto out;
        }
    }
    if (cfg.common.json) {
        Shardex__V1__CreateIndexResponse out = SHARDEX__V1__CREATE_INDEX_RESPONSE__INIT;
        out.index = info;
        sx_cmd_print_json(sx_out_pb_json(&out.base));
    } else if (info && info->spec) {
        const Shardex__V1__IndexSpec *s = info->spec;
        printf("created index %s: field %s, %s, %s", s->name, s->field, type_name(s->type),
               kept_name(s));
        if (s->global)
            printf(", %" PRIu32 " term partition%s%s%s", s->term_partitions,
                   s->term_partitions == 1 ? "" : "s",
                   s->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE ? " by range"
                                                                                    : "",
                   s->n_split_points ? " at " : "");
        for (size_t i = 0; s->global && i < s->n_split_points; i++) {
            const Shardex__V1__Value *v = s->split_points[i];
            if (v->kind_case == SHARDEX__V1__VALUE__KIND_I)
                printf("%s%" PRId64, i ? "," : "", v->i);
            else
                printf("%s%s", i ? "," : "", v->s ? v->s : "");
        }
        printf("; %s", state_name(info->state));
        if (cfg.wait)
            printf(" after %" PRIu64 " ms", sx_clock_now_ms() - t0);
        printf("\n");
    }
out:
    free_splits(&spec);
    sx_client_free(l);
    sx_client_free(r);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ------------------------------------------------------------------ drop -- */

typedef sx_cmd_plain plain_cfg;

static const sx_flag plain_flags[] = {
    SX_CMD_COMMON_FLAGS(plain_cfg),
};

static const sx_flags_spec drop_spec = {
    .prog = "shardex index drop",
    .synopsis = "NAME [FLAGS]",
    .description = "Drops the index NAME everywhere: its entries are deleted and queries on it\n"
                   "answer NOT_FOUND. The documents stay.\n"
                   "\n"
                   "--json prints a DropIndexResponse (an empty object). Exit status: 0 dropped;\n"
                   "2 usage; 3 the cluster could not answer; 4 no index has this name.",
    .flags = plain_flags,
    .count = sizeof(plain_flags) / sizeof(plain_flags[0]),
};

static int index_drop(const sx_cli *cli, int argc, char **argv)
{
    plain_cfg cfg = {.common = sx_cmd_common_init(cli)};
    plain_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("index drop", &drop_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    if (a.npos != 1) {
        code = sx_cmd_usage_error("index drop",
                                  a.npos ? "one NAME at a time" : "the index NAME is required");
        goto out;
    }
    code = sx_cmd_connect("index drop", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_drop_index(cl, a.pos[0], &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("index drop", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json) {
        Shardex__V1__DropIndexResponse r = SHARDEX__V1__DROP_INDEX_RESPONSE__INIT;
        sx_cmd_print_json(sx_out_pb_json(&r.base));
    } else {
        printf("dropped index %s\n", a.pos[0]);
    }
out:
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ------------------------------------------------------------------ list -- */

static const sx_flags_spec list_spec = {
    .prog = "shardex index list",
    .synopsis = "[FLAGS]",
    .description =
        "Lists the indexes: name, field, value type, how it is kept (local, global), its term\n"
        "partitions M (global only), state (BUILDING while backfilled, READY), and how many\n"
        "documents have the field with a value of the other type (not indexed), and the\n"
        "backfill's progress while BUILDING: the share of the documents passed and the time\n"
        "left at the current rate (\"-\" until a partition counted its documents).\n"
        "\n"
        "--json prints a ListIndexesResponse {\"indexes\": [{\"spec\": {...}, \"state\": ...,\n"
        "\"mistyped_docs\": N, \"backfill_done_docs\": N, \"backfill_total_docs\": N,\n"
        "\"eta_seconds\": S}]}. Exit status: 0 listed; 2 usage; 3 the cluster could not answer.",
    .flags = plain_flags,
    .count = sizeof(plain_flags) / sizeof(plain_flags[0]),
};

static int index_list(const sx_cli *cli, int argc, char **argv)
{
    plain_cfg cfg = {.common = sx_cmd_common_init(cli)};
    plain_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("index list", &list_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (a.npos) {
        code = sx_cmd_usage_error("index list", "unexpected argument '%s'", a.pos[0]);
        goto out;
    }
    code = sx_cmd_connect("index list", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = sx_client_list_indexes(cl, &l, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("index list", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json)
        sx_cmd_print_json(sx_out_pb_json(&l->base));
    else
        sx_cmd_index_table(l->indexes, l->n_indexes, 0);
out:
    sx_client_free(l);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ----------------------------------------------------------------- split -- */

typedef struct split_cfg {
    sx_cmd_common common;
    uint32_t partition;
    const char *at;
} split_cfg;

static const sx_flag split_flags[] = {
    SX_CMD_COMMON_FLAGS(split_cfg),
    {.name = "partition",
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(split_cfg, partition, uint32_t),
     .metavar = "T",
     .help = "the term partition to split, as `shardex status` numbers it (required)",
     .min = 0,
     .max = UINT32_MAX},
    {.name = "at",
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(split_cfg, at, const char *),
     .metavar = "VALUE",
     .help = "the first value of the upper half, of the index's type (default: the "
             "partition's median, as its owner last counted it)"},
};

static const sx_flags_spec split_spec = {
    .prog = "shardex index split",
    .synopsis = "NAME --partition T [--at VALUE] [FLAGS]",
    .description =
        "Splits term partition T of the range-partitioned index NAME in two, online: values\n"
        "below VALUE go to one new partition, the rest to another. Writes and queries go on;\n"
        "the new partitions are built from the documents and the writes since, then take\n"
        "over in one map version (docs/indexes.md, \"Online split\"). Answers once the split\n"
        "is recorded; `shardex index list` says \"splitting\" until the swap.\n"
        "\n"
        "--json prints a SplitIndexResponse. Exit status: 0 recorded; 2 usage; 3 the cluster\n"
        "could not answer; 4 no index has this name; 5 refused (not range-partitioned, T not\n"
        "serving, VALUE outside T's range, a split in progress).",
    .flags = split_flags,
    .count = sizeof(split_flags) / sizeof(split_flags[0]),
};

static int index_split(const sx_cli *cli, int argc, char **argv)
{
    split_cfg cfg = {.common = sx_cmd_common_init(cli), .partition = UINT32_MAX};
    split_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("index split", &split_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__ListIndexesResponse *l = NULL;
    Shardex__V1__SplitIndexResponse *r = NULL;
    Shardex__V1__IndexSpec at_spec = SHARDEX__V1__INDEX_SPEC__INIT;
    if (a.npos != 1) {
        code = sx_cmd_usage_error("index split",
                                  a.npos ? "one NAME at a time" : "the index NAME is required");
        goto out;
    }
    if (cfg.partition == UINT32_MAX) {
        code = sx_cmd_usage_error("index split", "--partition T is required");
        goto out;
    }
    code = sx_cmd_connect("index split", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    sx_status st = SX_OK;
    if (cfg.at) {
        /* --at is read as the index's type, which the catalog tells. */
        st = sx_client_list_indexes(cl, &l, &err);
        bool is_int = false, found = false;
        for (size_t i = 0; st == SX_OK && i < l->n_indexes; i++)
            if (l->indexes[i]->spec && strcmp(l->indexes[i]->spec->name, a.pos[0]) == 0) {
                found = true;
                is_int = l->indexes[i]->spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
            }
        if (st == SX_OK && !found)
            st = sx_err_set(&err, SX_NOT_FOUND, "index \"%s\" does not exist", a.pos[0]);
        const char *why = NULL;
        if (st == SX_OK && !parse_splits(cfg.at, is_int, &at_spec, &why)) {
            code = sx_cmd_usage_error("index split", "--at: %s",
                                      is_int ? "not an int" : "an empty value");
            goto out;
        }
        if (st == SX_OK && at_spec.n_split_points != 1) {
            code = sx_cmd_usage_error("index split", "--at: one value");
            goto out;
        }
    }
    if (st == SX_OK)
        st = sx_client_split_index(cl, a.pos[0], cfg.partition,
                                   at_spec.n_split_points ? at_spec.split_points[0] : NULL, &r,
                                   &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("index split", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json) {
        sx_cmd_print_json(sx_out_pb_json(&r->base));
    } else {
        printf("splitting term partition %u of index %s; the new partitions take over once "
               "built\n",
               cfg.partition, a.pos[0]);
        if (r->index)
            sx_cmd_index_table(&r->index, 1, 0);
    }
out:
    free_splits(&at_spec);
    sx_client_free(r);
    sx_client_free(l);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ------------------------------------------------------------------ salt -- */

typedef struct salt_cfg {
    sx_cmd_common common;
    const char *value;
    uint32_t ways;
} salt_cfg;

static const sx_flag salt_flags[] = {
    SX_CMD_COMMON_FLAGS(salt_cfg),
    {.name = "value",
     .type = SX_FLAG_STRING,
     .offset = SX_FLAG_OFFSET(salt_cfg, value, const char *),
     .metavar = "V",
     .help = "the hot value, of the index's type (required)"},
    {.name = "ways",
     .type = SX_FLAG_UINT32,
     .offset = SX_FLAG_OFFSET(salt_cfg, ways, uint32_t),
     .metavar = "K",
     .help = "term partitions to spread it over, 2 .. the index's (default: the "
             "coordinator's --hot-value-ways, capped at the index's)",
     .min = 0,
     .max = UINT32_MAX},
};

static const sx_flags_spec salt_spec = {
    .prog = "shardex index salt",
    .synopsis = "NAME --value V [--ways K] [FLAGS]",
    .description =
        "Spreads a hot value V of the global index NAME over K term partitions: from each log\n"
        "partition's marker on, a document's entry for V goes to one of them, chosen by a hash\n"
        "of its id; an equality query on V reads all K (docs/indexes.md, \"Hot values\").\n"
        "Nothing is rebuilt: entries written before stay where they are until changed.\n"
        "Answers once the salt is recorded.\n"
        "\n"
        "--json prints a SaltIndexResponse. Exit status: 0 recorded; 2 usage; 3 the cluster\n"
        "could not answer; 4 no index has this name; 5 refused (not GLOBAL, V already salted,\n"
        "K out of range, the most salted values).",
    .flags = salt_flags,
    .count = sizeof(salt_flags) / sizeof(salt_flags[0]),
};

static int index_salt(const sx_cli *cli, int argc, char **argv)
{
    salt_cfg cfg = {.common = sx_cmd_common_init(cli)};
    salt_cfg defaults = cfg;
    sx_cmd_args a;
    int code = sx_cmd_parse("index salt", &salt_spec, &cfg, &defaults, argc, argv, NULL, &a);
    if (code != SX_CMD_CONTINUE)
        return code;
    sx_client *cl = NULL;
    Shardex__V1__ListIndexesResponse *l = NULL;
    Shardex__V1__SaltIndexResponse *r = NULL;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    if (a.npos != 1) {
        code = sx_cmd_usage_error("index salt",
                                  a.npos ? "one NAME at a time" : "the index NAME is required");
        goto out;
    }
    if (!cfg.value) {
        code = sx_cmd_usage_error("index salt", "--value V is required");
        goto out;
    }
    code = sx_cmd_connect("index salt", &cfg.common, &cl);
    if (code != SX_EXIT_OK)
        goto out;
    sx_err err = {0};
    /* --value is read as the index's type, which the catalog tells. */
    sx_status st = sx_client_list_indexes(cl, &l, &err);
    bool is_int = false, found = false;
    for (size_t i = 0; st == SX_OK && i < l->n_indexes; i++)
        if (l->indexes[i]->spec && strcmp(l->indexes[i]->spec->name, a.pos[0]) == 0) {
            found = true;
            is_int = l->indexes[i]->spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
        }
    if (st == SX_OK && !found)
        st = sx_err_set(&err, SX_NOT_FOUND, "index \"%s\" does not exist", a.pos[0]);
    if (st == SX_OK && is_int) {
        char *end = NULL;
        errno = 0;
        long long i = strtoll(cfg.value, &end, 10);
        if (!cfg.value[0] || *end || errno) {
            code = sx_cmd_usage_error("index salt", "--value: not an int");
            goto out;
        }
        v.kind_case = SHARDEX__V1__VALUE__KIND_I;
        v.i = i;
    } else {
        v.kind_case = SHARDEX__V1__VALUE__KIND_S;
        v.s = (char *)cfg.value;
    }
    if (st == SX_OK)
        st = sx_client_salt_index(cl, a.pos[0], &v, cfg.ways, &r, &err);
    if (st != SX_OK) {
        code = sx_cmd_fail("index salt", &cfg.common, st, err.msg);
        goto out;
    }
    if (cfg.common.json) {
        sx_cmd_print_json(sx_out_pb_json(&r->base));
    } else {
        printf("salted a value of index %s; writes spread from each log partition's marker on\n",
               a.pos[0]);
        if (r->index)
            sx_cmd_index_table(&r->index, 1, 0);
    }
out:
    sx_client_free(r);
    sx_client_free(l);
    sx_cmd_disconnect(cl);
    sx_cmd_args_free(&a);
    return code;
}

/* ----------------------------------------------------------------- index -- */

static const sx_cmd_sub subs[] = {
    {"create", index_create}, {"drop", index_drop}, {"list", index_list},
    {"split", index_split},   {"salt", index_salt},
};

static const sx_flags_spec index_spec = {
    .prog = "shardex index",
    .synopsis = "create|drop|list|split|salt [ARGS] [FLAGS]",
    .description = "Manages the secondary indexes. `shardex index SUBCOMMAND --help` describes "
                   "each:\n"
                   "  create NAME --field FIELD  create an index of a field, LOCAL and/or GLOBAL\n"
                   "  drop NAME                  drop an index\n"
                   "  list                       list the indexes with their state\n"
                   "  split NAME --partition T   split a range index's term partition online\n"
                   "  salt NAME --value V        spread a hot value over several term partitions",
    .flags = plain_flags,
    .count = sizeof(plain_flags) / sizeof(plain_flags[0]),
};

int sx_cmd_index(const sx_cli *cli, int argc, char **argv)
{
    return sx_cmd_subcommands(cli, "index", &index_spec, subs, sizeof(subs) / sizeof(subs[0]), argc,
                              argv);
}
