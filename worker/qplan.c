/* qplan.c: see qplan.h. Steps run in the order qplan.h lists them, so that a
 * request with several faults always gets the same message. */
#include "qplan.h"

#include "keys.h"
#include "sx_limits.h"

#include <string.h>

static ProtobufCBinaryData in_arena(sx_arena *arena, const sx_buf *b)
{
    return (ProtobufCBinaryData){b->len, b->len ? sx_arena_memdup(arena, b->data, b->len) : NULL};
}

static bool value_ok(const Shardex__V1__Value *v, bool is_int)
{
    return v && v->kind_case == (is_int ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S);
}

/* Step 1. */
static sx_status check_request(const Shardex__V1__QueryRequest *req, sx_err *err)
{
    if (!req->index || !req->index[0])
        return sx_err_set(err, SX_INVALID_ARGUMENT, "index: required");
    if (req->limit > SX_QUERY_LIMIT_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "limit: %u is above %u", req->limit,
                          SX_QUERY_LIMIT_MAX);
    if (req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH__NOT_SET)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "match: set eq or range");
    return SX_OK;
}

/* Step 3: [start, end) of the match into pl (in arena). */
static sx_status key_range(const Shardex__V1__QueryRequest *req, sx_qplan *pl, sx_arena *arena,
                           sx_err *err)
{
    bool is_int = pl->def.is_int;
    const char *type = is_int ? "int" : "string";
    const Shardex__V1__Range *r = pl->eq ? NULL : req->range;
    if (pl->eq && !value_ok(req->eq, is_int))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "eq: index \"%s\" holds %s values", req->index,
                          type);
    if (r && r->min && !value_ok(r->min, is_int))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "range.min: index \"%s\" holds %s values",
                          req->index, type);
    if (r && r->max && !value_ok(r->max, is_int))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "range.max: index \"%s\" holds %s values",
                          req->index, type);
    sx_buf start = {0}, end = {0}, max = {0};
    if (pl->eq) {
        sx_ixkey_append_value(&start, is_int, req->eq);
        sx_key_prefix_successor(start.data, start.len, &end);
    }
    if (r && r->min)
        sx_ixkey_append_value(&start, is_int, r->min);
    if (r && r->max) {
        sx_ixkey_append_value(&max, is_int, r->max);
        sx_key_prefix_successor(max.data, max.len, &end);
    }
    pl->start = in_arena(arena, &start);
    pl->end = in_arena(arena, &end);
    pl->max = in_arena(arena, &max);
    sx_buf_free(&start);
    sx_buf_free(&end);
    sx_buf_free(&max);
    return SX_OK;
}

/* k ++ 0x00: the smallest key after k, in arena. */
static ProtobufCBinaryData key_after(sx_arena *arena, const ProtobufCBinaryData *k)
{
    uint8_t *after = sx_arena_alloc(arena, k->len + 1);
    memcpy(after, k->data, k->len);
    after[k->len] = 0;
    return (ProtobufCBinaryData){k->len + 1, after};
}

/* Step 4 for a partial page's token: each partition resumes after its own
 * position. The token forces LOCAL, whose targets are those partitions. */
static sx_status page_positions(const Shardex__V1__QueryRequest *req, sx_qplan *pl, sx_arena *arena,
                                sx_err *err)
{
    sx_status st = sx_qplan_positions_read(&req->page_token, pl->def.id, req->index, pl->P, arena,
                                           &pl->pos, err);
    if (st != SX_OK)
        return st;
    if (req->mode == SHARDEX__V1__MODE__MODE_GLOBAL || !pl->def.local)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "page_token: continues a partial LOCAL answer; query LOCAL");
    pl->positional = true;
    pl->force_local = true;
    return SX_OK;
}

/* Step 4: a page token moves start to just after its last key. */
static sx_status page_start(const Shardex__V1__QueryRequest *req, sx_qplan *pl, sx_arena *arena,
                            sx_err *err)
{
    if (!req->page_token.len)
        return SX_OK;
    if (req->page_token.data[0] == SX_QPLAN_TOKEN_POSITIONS)
        return page_positions(req, pl, arena, err);
    ProtobufCBinaryData last;
    sx_status st = sx_qplan_token_read(&req->page_token, pl->def.id, req->index, &last, err);
    if (st != SX_OK)
        return st;
    for (uint32_t p = 0; p < pl->P; p++)
        pl->pos[p] = last; /* every partition was read up to it */
    /* last ++ 0x00: the smallest key after last. */
    uint8_t *after = sx_arena_alloc(arena, last.len + 1);
    memcpy(after, last.data, last.len);
    ProtobufCBinaryData next = {last.len + 1, after};
    if (sx_qplan_key_cmp(&next, &pl->start) > 0)
        pl->start = next;
    return SX_OK;
}

/* Step 5. */
static sx_status check_after(const Shardex__V1__QueryRequest *req, uint32_t P, sx_err *err)
{
    for (size_t i = 0; i < req->n_after; i++)
        if (req->after[i]->partition >= P)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "after[%zu].partition: %u is not below %u partitions", i,
                              req->after[i]->partition, P);
    return SX_OK;
}

sx_status sx_qplan_mode(const sx_ixkey_def *def, Shardex__V1__IndexState state,
                        Shardex__V1__Mode asked, bool *global, sx_err *err)
{
    if (asked == SHARDEX__V1__MODE__MODE_LOCAL) {
        if (!def->local)
            return sx_err_set(err, SX_FAILED_PRECONDITION, "index \"%s\" is not kept LOCAL",
                              def->name);
        *global = false;
    } else if (asked == SHARDEX__V1__MODE__MODE_GLOBAL) {
        if (!def->global)
            return sx_err_set(err, SX_FAILED_PRECONDITION, "index \"%s\" is not kept GLOBAL",
                              def->name);
        *global = true;
    } else {
        *global =
            def->global && (state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY || !def->local);
    }
    return SX_OK;
}

/* Whether the match's keys [start, end) meet the entries of a salted value
 * (the keys starting with enc(value)). */
static bool meets_salt(const sx_qplan *pl, const Shardex__Internal__V1__IndexSalt *salt)
{
    sx_buf vk = {0}, succ = {0};
    sx_ixkey_append_value(&vk, pl->def.is_int, salt->value);
    sx_key_prefix_successor(vk.data, vk.len, &succ);
    ProtobufCBinaryData lo = {vk.len, vk.data}, hi = {succ.len, succ.data};
    bool meets = (!pl->start.len || !hi.len || sx_qplan_key_cmp(&pl->start, &hi) < 0) &&
                 (!pl->end.len || sx_qplan_key_cmp(&lo, &pl->end) < 0);
    sx_buf_free(&vk);
    sx_buf_free(&succ);
    return meets;
}

/* Adds t to targets[*n] unless there already. */
static void add_target(uint32_t *targets, size_t *n, uint32_t t)
{
    for (size_t i = 0; i < *n; i++)
        if (targets[i] == t)
            return;
    targets[(*n)++] = t;
}

/* GLOBAL: the term partitions to scan, into pl->targets / pl->n. An eq
 * reads its value's partition, or every partition of its salt set; a range
 * reads the partitions whose ranges meet it (all of them when hashed), plus
 * the salt sets of salted values it covers, whose entries lie outside their
 * partitions' ranges (docs/indexes.md "Hot values"). Every target scans the
 * same [start, end): a partition holds an entry only where the entry routes,
 * so the union is every entry once, and the merge orders them by key. */
static void global_targets(sx_qplan *pl, sx_arena *arena)
{
    uint32_t count = sx_ixkey_term_count(&pl->def);
    size_t cap = count + 1;
    for (size_t i = 0; i < pl->def.nsalts; i++)
        cap += pl->def.salts[i]->n_terms;
    uint32_t *tg = sx_arena_alloc(arena, cap * sizeof(*tg));
    uint32_t *scratch = sx_arena_alloc(arena, cap * sizeof(*scratch));
    size_t n = 0;
    if (pl->eq) {
        /* start is enc(value) or, with a page token, the key just after the
         * token's: the term partition of the value it starts with. */
        add_target(tg, &n, sx_ixkey_term_of(&pl->def, pl->start.data, pl->start.len));
    } else {
        uint32_t *order = sx_arena_alloc(arena, cap * sizeof(*order));
        const Shardex__V1__Value **lower = sx_arena_alloc(arena, cap * sizeof(*lower));
        size_t m = sx_ixkey_layout_order(&pl->def, order, lower);
        size_t first = 0, last = m - 1;
        if (pl->def.range) {
            /* Only the term partitions whose ranges meet [start, max], in
             * value order under the map's layout: start (moved past a page
             * token's last key) is in the first, max in the last. */
            uint32_t ft = pl->start.len ? sx_ixkey_term_of(&pl->def, pl->start.data, pl->start.len)
                                        : order[0];
            uint32_t lt =
                pl->max.len ? sx_ixkey_term_of(&pl->def, pl->max.data, pl->max.len) : order[m - 1];
            for (size_t k = 0; k < m; k++) {
                if (order[k] == ft)
                    first = k;
                if (order[k] == lt)
                    last = k;
            }
            if (last < first)
                last = first; /* an empty range: one, which has nothing */
        }
        for (size_t k = first; k <= last; k++)
            add_target(tg, &n, order[k]);
    }
    for (size_t i = 0; i < pl->def.nsalts; i++) {
        if (!meets_salt(pl, pl->def.salts[i]))
            continue;
        size_t ns = sx_ixkey_salt_terms(&pl->def, pl->def.salts[i], scratch);
        for (size_t k = 0; k < ns; k++)
            add_target(tg, &n, scratch[k]);
    }
    pl->n = n;
    pl->targets = tg;
}

/* Step 6, the targets of the chosen mode (pl->global): one scan each. */
static void set_targets(sx_qplan *pl, sx_arena *arena)
{
    if (pl->global) {
        global_targets(pl, arena);
    } else {
        pl->n = pl->P;
        pl->targets = sx_arena_alloc(arena, pl->n * sizeof(*pl->targets));
        for (size_t i = 0; i < pl->n; i++)
            pl->targets[i] = (uint32_t)i;
    }
    pl->reqs = sx_arena_alloc(arena, pl->n * sizeof(*pl->reqs));
    for (size_t i = 0; i < pl->n; i++) {
        Shardex__Internal__V1__ScanRequest *s = &pl->reqs[i];
        shardex__internal__v1__scan_request__init(s);
        s->index_id = pl->def.id;
        s->type = pl->def.is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                                 : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
        s->start = pl->start;
        s->end = pl->end;
        s->limit = pl->limit;
        s->n_after = pl->n_after;
        s->after = pl->after;
        s->partitions = pl->P;
        if (pl->global) {
            if (pl->auto_mode && pl->def.local)
                s->max_staleness_ms = SX_QPLAN_AUTO_MAX_STALENESS_MS;
        } else {
            s->include_docs = pl->include_docs;
            if (pl->positional && pl->pos[i].len) {
                ProtobufCBinaryData next = key_after(arena, &pl->pos[i]);
                if (sx_qplan_key_cmp(&next, &s->start) > 0)
                    s->start = next;
            }
        }
        s->partition = pl->targets[i];
    }
}

/* A copy of a range index's split points (the plan outlives the map). */
static Shardex__V1__Value *const *splits_in_arena(sx_arena *arena, Shardex__V1__Value *const *src,
                                                  size_t n)
{
    Shardex__V1__Value **out = sx_arena_alloc(arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i] = sx_arena_alloc(arena, sizeof(*out[i]));
        *out[i] = *src[i];
        if (src[i]->kind_case == SHARDEX__V1__VALUE__KIND_S)
            out[i]->s = sx_arena_strdup(arena, src[i]->s ? src[i]->s : "");
    }
    return out;
}

/* A copy of a layout's splits (the plan outlives the map). */
static Shardex__Internal__V1__IndexSplit *const *
layout_in_arena(sx_arena *arena, Shardex__Internal__V1__IndexSplit *const *src, size_t n)
{
    Shardex__Internal__V1__IndexSplit **out = sx_arena_alloc(arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i] = sx_arena_alloc(arena, sizeof(*out[i]));
        *out[i] = *src[i];
        out[i]->at = (Shardex__V1__Value *)splits_in_arena(arena, &src[i]->at, 1)[0];
    }
    return out;
}

/* A copy of an index's salts (the plan outlives the map). */
static Shardex__Internal__V1__IndexSalt *const *
salts_in_arena(sx_arena *arena, Shardex__Internal__V1__IndexSalt *const *src, size_t n)
{
    Shardex__Internal__V1__IndexSalt **out = sx_arena_alloc(arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        out[i] = sx_arena_alloc(arena, sizeof(*out[i]));
        *out[i] = *src[i];
        out[i]->value = (Shardex__V1__Value *)splits_in_arena(arena, &src[i]->value, 1)[0];
        out[i]->terms = src[i]->n_terms ? sx_arena_memdup(arena, src[i]->terms,
                                                          src[i]->n_terms * sizeof(*src[i]->terms))
                                        : NULL;
    }
    return out;
}

/* Steps 3-6, after step 1. */
static sx_status plan_index(const Shardex__V1__QueryRequest *req,
                            const Shardex__Internal__V1__IndexEntry *e, uint32_t P, sx_arena *arena,
                            sx_qplan *pl, sx_err *err)
{
    *pl = (sx_qplan){
        .P = P,
        .limit = req->limit ? req->limit : SX_QUERY_LIMIT_DEFAULT,
        .eq = req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH_EQ,
        .auto_mode = req->mode == SHARDEX__V1__MODE__MODE_UNSPECIFIED,
        .include_docs = req->include_docs,
        .n_after = req->n_after,
        .after = req->after,
        .budget_ms = req->budget_ms,
        .max_staleness_ms = req->max_staleness_ms,
        .hedge_ms = req->hedge_after_ms ? req->hedge_after_ms
                    : req->budget_ms    ? (req->budget_ms + 3) / 4
                                        : SX_QPLAN_HEDGE_DEFAULT_MS,
    };
    /* The layout the map has swapped in: a split's shadows are read only
     * from the map version that retires its parent (docs/indexes.md). */
    sx_partmap_def(e, true, &pl->def);
    pl->def.name = sx_arena_strdup(arena, pl->def.name); /* outlives the map */
    pl->def.field = sx_arena_strdup(arena, pl->def.field);
    pl->def.splits = splits_in_arena(arena, pl->def.splits, pl->def.nsplits);
    pl->def.layout = layout_in_arena(arena, pl->def.layout, pl->def.nlayout);
    pl->def.salts = salts_in_arena(arena, pl->def.salts, pl->def.nsalts);
    /* Positions: nothing read yet from any partition (a token changes that). */
    pl->pos = sx_arena_alloc(arena, (P + 1) * sizeof(*pl->pos));
    memset(pl->pos, 0, (P + 1) * sizeof(*pl->pos));
    sx_status st = key_range(req, pl, arena, err);
    if (st == SX_OK)
        st = page_start(req, pl, arena, err);
    if (st == SX_OK)
        st = check_after(req, P, err);
    if (st == SX_OK)
        st = sx_qplan_mode(&pl->def, e->state,
                           pl->force_local ? SHARDEX__V1__MODE__MODE_LOCAL : req->mode, &pl->global,
                           err);
    if (st == SX_OK)
        set_targets(pl, arena);
    return st;
}

sx_status sx_qplan_make(const Shardex__V1__QueryRequest *req, const sx_partmap *map,
                        sx_arena *arena, sx_qplan *out, sx_err *err)
{
    sx_status st = check_request(req, err);
    if (st != SX_OK)
        return st;
    uint32_t P = map ? sx_partmap_partitions(map) : 0;
    if (!P)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    const Shardex__Internal__V1__IndexEntry *e = sx_partmap_index_named(map, req->index);
    if (!e)
        return sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", req->index);
    return plan_index(req, e, P, arena, out, err);
}

sx_status sx_qplan_make_index(const Shardex__V1__QueryRequest *req,
                              const Shardex__Internal__V1__IndexEntry *e, uint32_t P,
                              sx_arena *arena, sx_qplan *out, sx_err *err)
{
    sx_status st = check_request(req, err);
    return st == SX_OK ? plan_index(req, e, P, arena, out, err) : st;
}

bool sx_qplan_falls_back(const sx_qplan *pl, sx_status st)
{
    return pl->auto_mode && pl->global && pl->def.local &&
           (st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED);
}

void sx_qplan_go_local(sx_qplan *pl, sx_arena *arena)
{
    pl->global = false;
    set_targets(pl, arena);
}

ProtobufCBinaryData sx_qplan_token(sx_arena *arena, uint64_t index_id,
                                   const ProtobufCBinaryData *last_key)
{
    sx_buf tok = {0};
    sx_key_append_u8(&tok, SX_QPLAN_TOKEN_VERSION);
    sx_key_append_u64(&tok, index_id);
    sx_buf_append(&tok, last_key->data, last_key->len);
    ProtobufCBinaryData out = in_arena(arena, &tok);
    sx_buf_free(&tok);
    return out;
}

sx_status sx_qplan_token_read(const ProtobufCBinaryData *tok, uint64_t index_id, const char *name,
                              ProtobufCBinaryData *last_key, sx_err *err)
{
    sx_key_reader kr;
    uint8_t ver = 0;
    uint64_t id = 0;
    sx_key_reader_init(&kr, tok->data, tok->len);
    if (!sx_key_read_u8(&kr, &ver) || ver != SX_QPLAN_TOKEN_VERSION || !sx_key_read_u64(&kr, &id) ||
        kr.pos == kr.len)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "page_token: malformed");
    if (id != index_id)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "page_token: belongs to another index (or \"%s\" was re-created)", name);
    *last_key = (ProtobufCBinaryData){kr.len - kr.pos, (uint8_t *)kr.p + kr.pos};
    return SX_OK;
}

int sx_qplan_key_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

ProtobufCBinaryData sx_qplan_positions_token(sx_arena *arena, uint64_t index_id, uint32_t P,
                                             const ProtobufCBinaryData *pos)
{
    sx_buf tok = {0};
    sx_key_append_u8(&tok, SX_QPLAN_TOKEN_POSITIONS);
    sx_key_append_u64(&tok, index_id);
    sx_key_append_u32(&tok, P);
    for (uint32_t p = 0; p < P; p++) {
        sx_key_append_u32(&tok, (uint32_t)pos[p].len);
        sx_buf_append(&tok, pos[p].data, pos[p].len);
    }
    ProtobufCBinaryData out = in_arena(arena, &tok);
    sx_buf_free(&tok);
    return out;
}

sx_status sx_qplan_positions_read(const ProtobufCBinaryData *tok, uint64_t index_id,
                                  const char *name, uint32_t P, sx_arena *arena,
                                  ProtobufCBinaryData **pos, sx_err *err)
{
    sx_key_reader kr;
    uint8_t ver = 0;
    uint64_t id = 0;
    uint32_t n = 0;
    sx_key_reader_init(&kr, tok->data, tok->len);
    if (!sx_key_read_u8(&kr, &ver) || ver != SX_QPLAN_TOKEN_POSITIONS ||
        !sx_key_read_u64(&kr, &id) || !sx_key_read_u32(&kr, &n))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "page_token: malformed");
    if (id != index_id)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "page_token: belongs to another index (or \"%s\" was re-created)", name);
    if (n != P)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "page_token: made for %u partitions, the cluster has %u", n, P);
    ProtobufCBinaryData *out = sx_arena_alloc(arena, (P + 1) * sizeof(*out));
    for (uint32_t p = 0; p < P; p++) {
        uint32_t len = 0;
        if (!sx_key_read_u32(&kr, &len) || len > kr.len - kr.pos)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "page_token: malformed");
        out[p] = (ProtobufCBinaryData){len, len ? (uint8_t *)kr.p + kr.pos : NULL};
        kr.pos += len;
    }
    if (kr.pos != kr.len)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "page_token: malformed");
    *pos = out;
    return SX_OK;
}
