/* coord_index.c: the index catalog (docs/indexes.md): create, drop, list,
 * backfill tracking (BUILDING -> READY), the index layer's part of
 * heartbeats, and the two state machines that reshape a global index from
 * those reports: online range splits (by size or load, or asked) and
 * hot-value salting (detected, or asked; recorded inactive, then active).
 *
 * Every entry point takes c->mu (coord_internal.h); the functions ending in
 * _locked expect it held. Not here: the stored map's other parts (coord.c).
 */
#include "coord_internal.h"

#include "ixkey.h"
#include "log.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------- index entries -- */

void sx__coord_clear_index_reports(worker *wk)
{
    for (size_t i = 0; i < wk->ntreports; i++) {
        free(wk->treports[i].wm);
        sx_ixkey_value_free(wk->treports[i].median);
    }
    free(wk->treports);
    free(wk->ixreports);
    wk->treports = NULL;
    wk->ixreports = NULL;
    wk->ntreports = wk->nixreports = 0;
}

#define HOT_TOP 3
typedef struct hot_part {
    uint64_t window;
    size_t n;
    Shardex__V1__Value *v[HOT_TOP]; /* owned (sx_ixkey_value_dup) */
    uint64_t count[HOT_TOP];
} hot_part;

/* A deep copy of message m, through its packed form (the library has no copy). */
static ProtobufCMessage *msg_dup(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = sx_malloc(n + 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCMessage *o = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    free(buf);
    if (!o) { /* we just packed it: only memory can fail */
        SX_LOG(SX_LOG_ERROR, "coord", "cannot copy a %s (out of memory)", m->descriptor->name);
        abort();
    }
    return o;
}

static Shardex__Internal__V1__IndexSalt *salt_dup(const Shardex__Internal__V1__IndexSalt *sa)
{
    return (Shardex__Internal__V1__IndexSalt *)msg_dup(&sa->base);
}

static Shardex__Internal__V1__IndexSplit *split_dup(const Shardex__Internal__V1__IndexSplit *sp)
{
    return (Shardex__Internal__V1__IndexSplit *)msg_dup(&sp->base);
}

/* The split points are borrowed by the spec: it is packed before e changes. */
static void spec_partitioning(Shardex__V1__IndexSpec *spec, const index_entry *e)
{
    spec->partitioning = e->partitioning;
    spec->n_split_points = e->nsplits;
    spec->split_points = e->splits;
}

/* e's spec as routing needs it (def_of), its strings borrowed from e. */
static void spec_view(const index_entry *e, Shardex__V1__IndexSpec *spec)
{
    shardex__v1__index_spec__init(spec);
    spec->name = e->name;
    spec->field = e->field;
    spec->type = e->type;
    spec->global = e->global;
    spec->term_partitions = e->term_partitions;
    spec_partitioning(spec, e);
}

static void copy_partitioning(index_entry *e, const Shardex__V1__IndexSpec *spec)
{
    e->partitioning = spec->partitioning;
    e->nsplits = spec->n_split_points;
    e->splits = sx_calloc(e->nsplits + 1, sizeof(*e->splits));
    for (size_t i = 0; i < e->nsplits; i++)
        e->splits[i] = sx_ixkey_value_dup(spec->split_points[i]);
}

void sx__coord_index_free(index_entry *e)
{
    for (size_t i = 0; i < e->nsplits; i++)
        sx_ixkey_value_free(e->splits[i]);
    free(e->splits);
    for (size_t i = 0; i < e->nosplits; i++)
        shardex__internal__v1__index_split__free_unpacked(e->osplits[i], NULL);
    free(e->osplits);
    for (size_t i = 0; i < e->nosalts; i++)
        shardex__internal__v1__index_salt__free_unpacked(e->osalts[i], NULL);
    free(e->osalts);
    free(e->salt_share);
    free(e->salt_announced);
    if (e->hot) {
        for (size_t p = 0; p < e->hot_parts; p++)
            for (size_t k = 0; k < e->hot[p].n; k++)
                sx_ixkey_value_free(e->hot[p].v[k]);
        free(e->hot);
    }
    free(e->name);
    free(e->field);
    free(e->backfilled);
}

Shardex__Internal__V1__IndexEntry *sx__coord_index_msg(const sx_coord *c, const index_entry *e,
                                                       sx_arena *a)
{
    Shardex__Internal__V1__IndexEntry *o = sx_arena_alloc(a, sizeof(*o));
    shardex__internal__v1__index_entry__init(o);
    Shardex__V1__IndexSpec *spec = sx_arena_alloc(a, sizeof(*spec));
    spec_view(e, spec);
    spec->local = e->local;
    o->spec = spec;
    o->state = e->state;
    o->id = e->id;
    o->first_term = e->first_term;
    o->n_splits = e->nosplits;
    o->splits = e->osplits;
    o->n_salts = e->nosalts;
    o->salts = e->osalts;
    o->backfilled = sx_arena_alloc(a, c->set.partitions * sizeof(uint32_t));
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (e->backfilled[p])
            o->backfilled[o->n_backfilled++] = p;
    return o;
}

sx_status sx__coord_index_load(sx_coord *c, index_entry *e,
                               const Shardex__Internal__V1__IndexEntry *o,
                               const Shardex__Internal__V1__ClusterMap *m, sx_err *err)
{
    if (!o->spec)
        return sx_err_set(err, SX_DATA_LOSS, "metadata: stored index %" PRIu64 " has no spec",
                          o->id);
    e->name = sx_strdup(o->spec->name);
    e->field = sx_strdup(o->spec->field);
    e->type = o->spec->type;
    e->local = o->spec->local;
    e->global = o->spec->global;
    e->term_partitions = o->spec->term_partitions;
    copy_partitioning(e, o->spec);
    e->state = o->state;
    e->id = o->id;
    e->first_term = o->first_term;
    e->osplits = sx_calloc(o->n_splits + 1, sizeof(*e->osplits));
    for (size_t k = 0; k < o->n_splits; k++)
        if (o->splits[k])
            e->osplits[e->nosplits++] = split_dup(o->splits[k]);
    e->osalts = sx_calloc(o->n_salts + 1, sizeof(*e->osalts));
    for (size_t k = 0; k < o->n_salts; k++)
        if (o->salts[k])
            e->osalts[e->nosalts++] = salt_dup(o->salts[k]);
    e->salt_share = sx_calloc(e->nosalts + 1, sizeof(*e->salt_share));
    e->salt_announced = sx_calloc(e->nosalts + 1, sizeof(*e->salt_announced));
    for (size_t k = 0; k < e->nosalts; k++)
        e->salt_announced[k] = m->version;
    if ((uint64_t)e->first_term + ix_terms(e) > m->n_terms)
        return sx_err_set(err, SX_DATA_LOSS,
                          "metadata: stored index %" PRIu64 " has term partitions beyond the map's",
                          o->id);
    e->backfilled = sx_calloc(c->set.partitions, sizeof(bool));
    for (size_t k = 0; k < o->n_backfilled; k++)
        if (o->backfilled[k] < c->set.partitions)
            e->backfilled[o->backfilled[k]] = true;
    return SX_OK;
}

/* ----------------------------------------------------- heartbeat reports -- */

static void splits_step_locked(sx_coord *c, uint64_t now_ms);
static void hot_step_locked(sx_coord *c);
static index_entry *find_index_id_locked(sx_coord *c, uint64_t id);

/* Keeps what partition p's leader (worker w) counted of index r's hot values. */
static void hot_report_locked(sx_coord *c, int32_t w, const Shardex__Internal__V1__IndexReport *r)
{
    if (r->partition >= c->set.partitions || c->parts[r->partition].leader != w)
        return;
    index_entry *e = find_index_id_locked(c, r->index_id);
    if (!e || !e->global)
        return;
    if (!e->hot) {
        e->hot_parts = c->set.partitions;
        e->hot = sx_calloc(e->hot_parts, sizeof(*e->hot));
    }
    hot_part *h = &e->hot[r->partition];
    for (size_t k = 0; k < h->n; k++)
        sx_ixkey_value_free(h->v[k]);
    h->n = 0;
    h->window = r->window_changes;
    for (size_t k = 0; k < r->n_hot && h->n < HOT_TOP; k++) {
        if (!r->hot[k]->value || r->hot[k]->value->kind_case == SHARDEX__V1__VALUE__KIND__NOT_SET)
            continue;
        h->v[h->n] = sx_ixkey_value_dup(r->hot[k]->value);
        h->count[h->n++] = r->hot[k]->changes;
    }
}

/* r's load streak, from r and the report it follows (prev: the same term
 * partition at the same epoch from the same worker, or NULL). */
static void load_streak(const sx_coord *c, term_report *r, const term_report *prev, uint64_t now_ms)
{
    r->load_above =
        c->term_split_load && r->writes_per_s + r->reads_per_s > (double)c->term_split_load;
    if (!r->load_above)
        r->load_since_ms = 0;
    else if (prev && prev->load_above)
        r->load_since_ms = prev->load_since_ms;
    else
        r->load_since_ms = now_ms;
}

/* A rate from the network: what is not a finite number >= 0 (a worker's bug)
 * counts as no load, so that it neither splits nor reaches JSON or /metrics. */
static double rate_of(double x)
{
    return isfinite(x) && x > 0 ? x : 0;
}

/* Copies a heartbeat's term reports, their load streaks continued from
 * wk's previous reports. */
static term_report *copy_term_reports(const sx_coord *c, const worker *wk,
                                      Shardex__Internal__V1__TermReport *const *terms,
                                      size_t nterms, uint64_t now_ms)
{
    term_report *out = sx_calloc(nterms + 1, sizeof(*out));
    for (size_t i = 0; i < nterms; i++) {
        const Shardex__Internal__V1__TermReport *x = terms[i];
        term_report *r = &out[i];
        *r = (term_report){.index_id = x->index_id,
                           .t = x->term_partition,
                           .epoch = x->epoch,
                           .ready = x->ready,
                           .nwm = x->n_watermarks,
                           .oldest_as_of_ms = x->oldest_as_of_ms,
                           .entries = x->entries,
                           .writes_per_s = rate_of(x->writes_per_s),
                           .reads_per_s = rate_of(x->reads_per_s)};
        if (x->median && x->median->kind_case != SHARDEX__V1__VALUE__KIND__NOT_SET)
            r->median = sx_ixkey_value_dup(x->median);
        r->wm = sx_calloc(r->nwm + 1, sizeof(*r->wm));
        if (r->nwm)
            memcpy(r->wm, x->watermarks, r->nwm * sizeof(*r->wm));
        const term_report *prev = NULL;
        for (size_t k = 0; k < wk->ntreports && !prev; k++)
            if (wk->treports[k].index_id == r->index_id && wk->treports[k].t == r->t &&
                wk->treports[k].epoch == r->epoch)
                prev = &wk->treports[k];
        load_streak(c, r, prev, now_ms);
    }
    return out;
}

void sx_coord_index_reports(sx_coord *c, const char *id,
                            Shardex__Internal__V1__IndexReport *const *ix, size_t nix,
                            Shardex__Internal__V1__TermReport *const *terms, size_t nterms,
                            uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    int32_t w = sx__coord_find_worker_locked(c, id);
    if (w >= 0) {
        worker *wk = &c->workers[w];
        term_report *tr = copy_term_reports(c, wk, terms, nterms, now_ms);
        sx__coord_clear_index_reports(wk);
        wk->ixreports = sx_calloc(nix + 1, sizeof(*wk->ixreports));
        for (size_t i = 0; i < nix; i++) {
            wk->ixreports[i] = *ix[i];
            hot_report_locked(c, w, ix[i]);
            wk->ixreports[i].n_hot = 0; /* borrowed from the request: not kept */
            wk->ixreports[i].hot = NULL;
        }
        wk->nixreports = nix;
        wk->treports = tr;
        wk->ntreports = nterms;
        splits_step_locked(c, now_ms);
        hot_step_locked(c);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Salts recorded but not active (docs/indexes.md "Hot values"): one turns
 * active, in seq order per index, once every live worker's heartbeat says it
 * installed a map version at or after the one that recorded it. Until then
 * queries read the salt set but no leader appends the marker: a query
 * planned on a map without the salt reads only the value's own partition,
 * which holds every entry of the value until a marker. */
void sx__coord_salts_activate_locked(sx_coord *c, uint64_t now_ms)
{
    uint64_t least = UINT64_MAX;
    for (uint32_t w = 0; w < c->nworkers; w++) {
        const worker *wk = &c->workers[w];
        if (wk->alive && !wk->removed && wk->lease_deadline_ms > now_ms &&
            wk->known_version < least)
            least = wk->known_version;
    }
    bool changed = false;
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        for (size_t k = 0; k < e->nosalts; k++) {
            if (e->osalts[k]->active)
                continue;
            if (least == UINT64_MAX || least < e->salt_announced[k])
                break; /* in seq order */
            e->osalts[k]->active = true;
            changed = true;
            SX_LOG(SX_LOG_INFO, "coord", "index value salt active name=%s seq=%zu", e->name, k + 1);
        }
    }
    if (changed)
        sx__coord_commit_locked(c, "index salt active");
}

/* ----------------------------------------------------------- the catalog -- */

static index_entry *find_index_locked(sx_coord *c, const char *name)
{
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (strcmp(c->indexes[i].name, name) == 0)
            return &c->indexes[i];
    return NULL;
}

static index_entry *find_index_id_locked(sx_coord *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (c->indexes[i].id == id)
            return &c->indexes[i];
    return NULL;
}

sx_status sx_coord_report_backfill(sx_coord *c, const char *id, uint64_t index_id,
                                   uint32_t partition, uint64_t epoch,
                                   Shardex__V1__IndexState *state, sx_err *err)
{
    pthread_mutex_lock(&c->mu);
    sx_status st = SX_OK;
    index_entry *e = NULL;
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (c->indexes[i].id == index_id)
            e = &c->indexes[i];
    int32_t w = sx__coord_find_worker_locked(c, id);
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index id %" PRIu64 " does not exist (dropped?)",
                        index_id);
    } else if (partition >= c->set.partitions) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "partition: %u is outside 0..%u", partition,
                        c->set.partitions - 1);
    } else if (w < 0 || c->parts[partition].leader != w || c->parts[partition].epoch != epoch) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker %s is not the leader of partition %u at epoch %" PRIu64, id,
                        partition, epoch);
    } else {
        *state = e->state;
        if (!e->backfilled[partition]) {
            e->backfilled[partition] = true;
            uint32_t done = 0;
            for (uint32_t p = 0; p < c->set.partitions; p++)
                done += e->backfilled[p];
            if (done == c->set.partitions) {
                e->state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
                SX_LOG(SX_LOG_INFO, "coord", "index ready name=%s id=%" PRIu64, e->name, e->id);
            }
            *state = e->state;
            sx__coord_commit_locked(c, "backfill reported");
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > SX_INDEX_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static Shardex__V1__Value *value_in_arena(sx_arena *a, const Shardex__V1__Value *v)
{
    Shardex__V1__Value *o = sx_arena_alloc(a, sizeof(*o));
    *o = *v;
    if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        o->s = sx_arena_strdup(a, v->s ? v->s : "");
    return o;
}

/* e's routing with its splits (done_only: those swapped in), borrowing from
 * e and spec (which spec_partitioning filled). */
static void def_of(const index_entry *e, Shardex__V1__IndexSpec *spec, bool done_only,
                   sx_ixkey_def *d)
{
    sx_ixkey_def_from_spec(d, e->id, spec);
    d->layout = e->osplits;
    d->nlayout = e->nosplits;
    if (done_only && d->nlayout && !e->osplits[d->nlayout - 1]->done)
        d->nlayout--;
    d->salts = e->osalts;
    d->nsalts = e->nosalts;
}

/* What index e's partitions' leaders report, into info: the sums of their
 * mistyped documents and backfill progress, and the time left at their
 * summed rate. */
static void reports_locked(const sx_coord *c, const index_entry *e, Shardex__V1__IndexInfo *info)
{
    uint64_t left = 0;
    double rate = 0;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        int32_t l = c->parts[p].leader;
        if (l < 0)
            continue;
        const worker *wk = &c->workers[l];
        for (size_t i = 0; i < wk->nixreports; i++) {
            const Shardex__Internal__V1__IndexReport *r = &wk->ixreports[i];
            if (r->index_id != e->id || r->partition != p)
                continue;
            info->mistyped_docs += r->mistyped_docs;
            info->backfill_done_docs += r->backfill_done_docs;
            info->backfill_total_docs += r->backfill_total_docs;
            if (r->backfilling) {
                left += r->backfill_total_docs > r->backfill_done_docs
                            ? r->backfill_total_docs - r->backfill_done_docs
                            : 0;
                rate += r->backfill_docs_per_s;
            }
        }
    }
    if (e->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING && left && rate > 0)
        info->eta_seconds = (double)left / rate;
}

Shardex__V1__IndexInfo *sx__coord_info_of(const sx_coord *c, const index_entry *e, sx_arena *a)
{
    Shardex__V1__IndexInfo *info = sx_arena_alloc(a, sizeof(*info));
    shardex__v1__index_info__init(info);
    Shardex__V1__IndexSpec *spec = sx_arena_alloc(a, sizeof(*spec));
    spec_view(e, spec);
    spec->local = e->local;
    spec->name = sx_arena_strdup(a, e->name);
    spec->field = sx_arena_strdup(a, e->field);
    /* The split points too: the answer is packed after the lock is let go,
     * when a DropIndex may have freed e's. */
    spec->split_points = sx_arena_alloc(a, (e->nsplits + 1) * sizeof(*spec->split_points));
    for (size_t i = 0; i < e->nsplits; i++)
        spec->split_points[i] = value_in_arena(a, e->splits[i]);
    info->spec = spec;
    info->state = e->state;
    if (e->nosplits) {
        sx_ixkey_def d;
        def_of(e, spec, true, &d);
        uint32_t count = ix_terms(e);
        info->term_layout = sx_arena_alloc(a, (count + 1) * sizeof(*info->term_layout));
        const Shardex__V1__Value **lower = sx_arena_alloc(a, (count + 1) * sizeof(*lower));
        info->n_term_layout = sx_ixkey_layout_order(&d, info->term_layout, lower);
        info->layout_bounds = sx_arena_alloc(a, (count + 1) * sizeof(*info->layout_bounds));
        for (size_t i = 1; i < info->n_term_layout; i++) /* values in arena: e may change */
            info->layout_bounds[info->n_layout_bounds++] = value_in_arena(a, lower[i]);
        bool last_done = e->osplits[e->nosplits - 1]->done;
        info->splits_in_progress = last_done ? 0 : 1;
        info->splits_done = (uint32_t)e->nosplits - info->splits_in_progress;
    }
    reports_locked(c, e, info);
    info->hot_values = sx_arena_alloc(a, (e->nosalts + 1) * sizeof(*info->hot_values));
    for (size_t i = 0; i < e->nosalts; i++) {
        Shardex__V1__HotValue *h = sx_arena_alloc(a, sizeof(*h));
        shardex__v1__hot_value__init(h);
        h->value = value_in_arena(a, e->osalts[i]->value);
        h->ways = e->osalts[i]->ways;
        h->share = e->salt_share ? e->salt_share[i] : 0;
        info->hot_values[info->n_hot_values++] = h;
    }
    return info;
}

sx_status sx_coord_create_index(sx_coord *c, const Shardex__V1__IndexSpec *spec, sx_arena *arena,
                                Shardex__V1__IndexInfo **info, sx_err *err)
{
    *info = NULL;
    if (!spec)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec: required");
    if (!valid_name(spec->name))
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec.name: must be 1..%d bytes of letters, digits, '_', '-' or '.'",
                          SX_INDEX_NAME_MAX);
    size_t flen = strlen(spec->field);
    if (flen < 1 || flen > SX_INDEX_NAME_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec.field: must be 1..%d bytes",
                          SX_INDEX_NAME_MAX);
    if (spec->type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING &&
        spec->type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec.type: must be VALUE_TYPE_STRING or VALUE_TYPE_INT");
    if (!spec->local && !spec->global)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "spec: an index must be kept LOCAL, GLOBAL or both");
    if (spec->term_partitions > SX_MAX_TERM_PARTITIONS)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "spec.term_partitions: %u is above %u",
                          spec->term_partitions, SX_MAX_TERM_PARTITIONS);
    char msg[160];
    if (!sx_ixkey_check_partitioning(spec, SX_MAX_TERM_PARTITIONS, msg, sizeof(msg)))
        return sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    pthread_mutex_lock(&c->mu);
    if (find_index_locked(c, spec->name)) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_ALREADY_EXISTS, "index \"%s\" already exists", spec->name);
    }
    c->indexes = sx_realloc(c->indexes, (c->nindexes + 1) * sizeof(*c->indexes));
    index_entry *e = &c->indexes[c->nindexes++];
    memset(e, 0, sizeof(*e));
    e->name = sx_strdup(spec->name);
    e->field = sx_strdup(spec->field);
    e->type = spec->type;
    e->local = spec->local;
    e->global = spec->global;
    copy_partitioning(e, spec);
    e->state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
    e->id = c->next_index_id++;
    e->backfilled = sx_calloc(c->set.partitions, sizeof(bool));
    if (e->global) {
        e->term_partitions = e->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE
                                 ? (uint32_t)e->nsplits + 1
                             : spec->term_partitions ? spec->term_partitions
                                                     : c->set.term_partitions;
        e->first_term = c->nterms;
        c->terms = sx_realloc(c->terms, (c->nterms + e->term_partitions) * sizeof(*c->terms));
        for (uint32_t t = 0; t < e->term_partitions; t++)
            c->terms[c->nterms + t] = (sx_term_part){.epoch = 0, .owner = -1};
        c->nterms += e->term_partitions;
    }
    sx__coord_assign_locked(c);
    sx__coord_commit_locked(c, "index created");
    SX_LOG(SX_LOG_INFO, "coord",
           "index created name=%s field=%s id=%" PRIu64
           " local=%d global=%d term_partitions=%u range=%d",
           e->name, e->field, e->id, e->local, e->global, e->term_partitions,
           e->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE);
    *info = sx__coord_info_of(c, e, arena);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

sx_status sx_coord_drop_index(sx_coord *c, const char *name, sx_err *err)
{
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name);
    if (!e) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name);
    }
    uint32_t first = e->first_term, m = ix_terms(e);
    if (e->global) {
        memmove(&c->terms[first], &c->terms[first + m],
                (c->nterms - first - m) * sizeof(*c->terms));
        c->nterms -= m;
        for (uint32_t i = 0; i < c->nindexes; i++)
            if (c->indexes[i].global && c->indexes[i].first_term > first)
                c->indexes[i].first_term -= m;
    }
    SX_LOG(SX_LOG_INFO, "coord", "index dropped name=%s id=%" PRIu64, e->name, e->id);
    sx__coord_index_free(e);
    size_t at = (size_t)(e - c->indexes);
    memmove(e, e + 1, (c->nindexes - at - 1) * sizeof(*e));
    c->nindexes--;
    sx__coord_assign_locked(c); /* owners rebalance over what is left */
    sx__coord_commit_locked(c, "index dropped");
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

/* ---------------------------------------------------------- online split -- */

/* The owner's report of term partition t of e at its current epoch. */
static const term_report *term_report_locked(const sx_coord *c, const index_entry *e, uint32_t t)
{
    const sx_term_part *tp = &c->terms[e->first_term + t];
    if (tp->owner < 0)
        return NULL;
    const worker *ow = &c->workers[tp->owner];
    for (size_t r = 0; ow->alive && r < ow->ntreports; r++) {
        const term_report *tr = &ow->treports[r];
        if (tr->index_id == e->id && tr->t == t && tr->epoch == tp->epoch)
            return tr;
    }
    return NULL;
}

/* Records split (seq next) of t at `at` in e: two new term partitions after
 * e's others, owners assigned, one new map version. The leaders append the
 * marker to their partitions when they see it (ixlead.c). */
static void split_start_locked(sx_coord *c, index_entry *e, uint32_t t,
                               const Shardex__V1__Value *at, const char *why)
{
    uint32_t lo = ix_terms(e), pos = e->first_term + lo;
    c->terms = sx_realloc(c->terms, (c->nterms + 2) * sizeof(*c->terms));
    memmove(&c->terms[pos + 2], &c->terms[pos], (c->nterms - pos) * sizeof(*c->terms));
    c->terms[pos] = c->terms[pos + 1] = (sx_term_part){.epoch = 0, .owner = -1};
    c->nterms += 2;
    for (uint32_t i = 0; i < c->nindexes; i++)
        if (&c->indexes[i] != e && c->indexes[i].global && c->indexes[i].first_term >= pos)
            c->indexes[i].first_term += 2;
    Shardex__Internal__V1__IndexSplit sp = SHARDEX__INTERNAL__V1__INDEX_SPLIT__INIT;
    sp.index_id = e->id;
    sp.seq = (uint32_t)e->nosplits + 1;
    sp.term = t;
    sp.at = (Shardex__V1__Value *)at;
    sp.lo = lo;
    sp.hi = lo + 1;
    e->osplits = sx_realloc(e->osplits, (e->nosplits + 1) * sizeof(*e->osplits));
    e->osplits[e->nosplits++] = split_dup(&sp);
    sx__coord_assign_locked(c);
    sx__coord_commit_locked(c, why);
    SX_LOG(SX_LOG_INFO, "coord",
           "index split started name=%s id=%" PRIu64 " seq=%u term=%u lo=%u hi=%u (%s)", e->name,
           e->id, sp.seq, t, lo, lo + 1, why);
}

/* Why t of e cannot split now (FAILED_PRECONDITION), or SX_OK. */
static sx_status split_allowed_locked(const index_entry *e, sx_err *err)
{
    if (e->nosplits && !e->osplits[e->nosplits - 1]->done)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\": a split is in progress (term partition %u); one at a time",
                          e->name, e->osplits[e->nosplits - 1]->term);
    if (e->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\" is still building; split it once it is READY", e->name);
    if (e->term_partitions + e->nosplits + 1 > SX_MAX_TERM_PARTITIONS)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "index \"%s\" has %u term partitions, the most (%u)", e->name,
                          e->term_partitions + (uint32_t)e->nosplits, SX_MAX_TERM_PARTITIONS);
    return SX_OK;
}

sx_status sx_coord_split_index(sx_coord *c, const char *name, uint32_t t,
                               const Shardex__V1__Value *at, sx_arena *arena,
                               Shardex__V1__IndexInfo **info, sx_err *err)
{
    *info = NULL;
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name ? name : "");
    sx_status st = SX_OK;
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name ? name : "");
        goto out;
    }
    if (!e->global || e->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT,
                        "name: index \"%s\" is not range-partitioned (GLOBAL, --partitioning "
                        "range)",
                        e->name);
        goto out;
    }
    if ((st = split_allowed_locked(e, err)) != SX_OK)
        goto out;
    Shardex__V1__IndexSpec spec;
    spec_view(e, &spec);
    sx_ixkey_def d;
    def_of(e, &spec, false, &d);
    const term_report *tr = NULL;
    if (!at || at->kind_case == SHARDEX__V1__VALUE__KIND__NOT_SET) {
        tr = t < ix_terms(e) ? term_report_locked(c, e, t) : NULL;
        at = tr ? tr->median : NULL;
    }
    char msg[200];
    if (!at && t < ix_terms(e) && !c->terms[e->first_term + t].retired) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "at: term partition %u of \"%s\" has no median yet (its owner counts "
                        "its entries now and then); give a value",
                        t, e->name);
    } else if (!sx_ixkey_check_split(&d, t, at, msg, sizeof(msg))) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    } else {
        split_start_locked(c, e, t, at, "index split asked");
        *info = sx__coord_info_of(c, e, arena);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* Records salt (seq next) of value v over `ways` term partitions (chosen
 * by sx_ixkey_plan_salt) in e: one new map version; the leaders append the
 * marker when they see it (ixlead.c). No partition is added or rebuilt. */
static void salt_record_locked(sx_coord *c, index_entry *e, const Shardex__V1__Value *v,
                               uint32_t ways, uint32_t *terms, const char *why)
{
    Shardex__Internal__V1__IndexSalt sa = SHARDEX__INTERNAL__V1__INDEX_SALT__INIT;
    sa.index_id = e->id;
    sa.seq = (uint32_t)e->nosalts + 1;
    sa.value = (Shardex__V1__Value *)v;
    sa.ways = ways;
    sa.n_terms = ways;
    sa.terms = terms;
    sa.active = false; /* sx__coord_salts_activate_locked */
    e->osalts = sx_realloc(e->osalts, (e->nosalts + 1) * sizeof(*e->osalts));
    e->osalts[e->nosalts++] = salt_dup(&sa);
    e->salt_share = sx_realloc(e->salt_share, e->nosalts * sizeof(*e->salt_share));
    e->salt_share[e->nosalts - 1] = 0;
    e->salt_announced = sx_realloc(e->salt_announced, e->nosalts * sizeof(*e->salt_announced));
    sx__coord_commit_locked(c, why);
    e->salt_announced[e->nosalts - 1] = c->version;
    SX_LOG(SX_LOG_INFO, "coord",
           "index value salted name=%s id=%" PRIu64 " seq=%u ways=%u first_term=%u (%s)", e->name,
           e->id, sa.seq, ways, terms[0], why);
}

/* The ways of a salt asked with `ways` (0: the default, capped at the
 * serving partitions of e). */
static uint32_t salt_ways_locked(const sx_coord *c, const index_entry *e, uint32_t ways)
{
    if (ways)
        return ways;
    uint32_t serving = e->term_partitions + (uint32_t)e->nosplits; /* each split adds one */
    if (e->nosplits && !e->osplits[e->nosplits - 1]->done)
        serving--;
    uint32_t k = c->hot_value_ways ? c->hot_value_ways : SX_HOT_VALUE_WAYS_DEFAULT;
    return k < serving ? k : serving;
}

sx_status sx_coord_salt_index(sx_coord *c, const char *name, const Shardex__V1__Value *value,
                              uint32_t ways, sx_arena *arena, Shardex__V1__IndexInfo **info,
                              sx_err *err)
{
    *info = NULL;
    pthread_mutex_lock(&c->mu);
    index_entry *e = find_index_locked(c, name ? name : "");
    sx_status st = SX_OK;
    if (!e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", name ? name : "");
        goto out;
    }
    if (e->nosalts >= SX_MAX_SALTS_PER_INDEX) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "value: index \"%s\" has %zu salted values, the most (%u)", e->name,
                        e->nosalts, SX_MAX_SALTS_PER_INDEX);
        goto out;
    }
    Shardex__V1__IndexSpec spec;
    spec_view(e, &spec);
    sx_ixkey_def d;
    def_of(e, &spec, true, &d);
    uint32_t k = e->global ? salt_ways_locked(c, e, ways) : 0;
    uint32_t *terms = sx_calloc(k + 1, sizeof(*terms));
    char msg[200];
    if (!sx_ixkey_plan_salt(&d, value, k, terms, msg, sizeof(msg))) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "%s", msg);
    } else {
        salt_record_locked(c, e, value, k, terms, "index salt asked");
        *info = sx__coord_info_of(c, e, arena);
    }
    free(terms);
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}

/* Hot values (docs/indexes.md "Hot values"), at every heartbeat's index
 * reports: an index's changes over its partitions' leaders' windows, and each
 * value's share of them (the sum of the counts reported for it over the sum
 * of the windows: a lower bound, as the sketch's counts are). A salted
 * value's share is kept for display; the first unsalted one whose share
 * reaches --hot-value-share, out of at least --hot-value-min-changes, is
 * salted with the default ways (READY indexes with 2 or more serving term
 * partitions; one salt per step). */
static void hot_step_locked(sx_coord *c)
{
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        if (!e->global || !e->hot)
            continue;
        uint64_t total = 0;
        for (size_t p = 0; p < e->hot_parts; p++)
            total += e->hot[p].window;
        if (!total)
            continue;
        const Shardex__V1__Value *cand = NULL;
        double cand_share = 0;
        for (size_t p = 0; p < e->hot_parts; p++) {
            for (size_t k = 0; k < e->hot[p].n; k++) {
                const Shardex__V1__Value *v = e->hot[p].v[k];
                uint64_t sum = 0;
                for (size_t q = 0; q < e->hot_parts; q++)
                    for (size_t j = 0; j < e->hot[q].n; j++)
                        if (e->hot[q].v[j]->kind_case == v->kind_case &&
                            sx_ixkey_value_cmp(v->kind_case == SHARDEX__V1__VALUE__KIND_I,
                                               e->hot[q].v[j], v) == 0)
                            sum += e->hot[q].count[j];
                double share = (double)sum / (double)total;
                bool salted = false;
                for (size_t s = 0; s < e->nosalts; s++)
                    if (e->osalts[s]->value->kind_case == v->kind_case &&
                        sx_ixkey_value_cmp(v->kind_case == SHARDEX__V1__VALUE__KIND_I,
                                           e->osalts[s]->value, v) == 0) {
                        salted = true;
                        e->salt_share[s] = share;
                    }
                if (!salted && share > cand_share) {
                    cand = v;
                    cand_share = share;
                }
            }
        }
        if (!cand || c->hot_value_share <= 0 || cand_share < c->hot_value_share ||
            total < c->hot_value_min_changes ||
            e->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY ||
            e->nosalts >= SX_MAX_SALTS_PER_INDEX)
            continue;
        Shardex__V1__IndexSpec spec;
        spec_view(e, &spec);
        sx_ixkey_def d;
        def_of(e, &spec, true, &d);
        uint32_t k = salt_ways_locked(c, e, 0);
        uint32_t *terms = sx_calloc(k + 1, sizeof(*terms));
        char msg[200];
        Shardex__V1__Value *v = sx_ixkey_value_dup(cand); /* e->hot may change below */
        if (sx_ixkey_plan_salt(&d, v, k, terms, msg, sizeof(msg))) {
            SX_LOG(SX_LOG_INFO, "coord",
                   "index name=%s hot value share=%.3f of %" PRIu64 " changes", e->name, cand_share,
                   total);
            salt_record_locked(c, e, v, k, terms, "hot value");
            e->salt_share[e->nosalts - 1] = cand_share;
        }
        sx_ixkey_value_free(v);
        free(terms);
    }
}

/* Why tr's term partition is due for a split (into why), or false. */
static bool split_due(const sx_coord *c, const term_report *tr, uint64_t now_ms, char *why,
                      size_t cap)
{
    if (c->term_split_entries && tr->entries > c->term_split_entries) {
        snprintf(why, cap,
                 "term partition of %" PRIu64 " entries, above --term-split-entries %" PRIu64,
                 tr->entries, c->term_split_entries);
        return true;
    }
    if (c->term_split_load && tr->load_above && now_ms >= tr->load_since_ms &&
        now_ms - tr->load_since_ms >= c->term_split_load_window_ms) {
        snprintf(why, cap,
                 "term partition at %.1f writes/s + %.1f reads/s, above --term-split-load %" PRIu64
                 " for %" PRIu64 " ms",
                 tr->writes_per_s, tr->reads_per_s, c->term_split_load, now_ms - tr->load_since_ms);
        return true;
    }
    return false;
}

/* The split state machine, run at every heartbeat's index reports:
 *   in progress --both shadows' owners report them ready at their current
 *     epoch (every wm[p] > 0, which for a shadow means wm[p] >= the marker's
 *     offset C_p: its first shipment from p is a rebuild at or after C_p)-->
 *     done: the parent is retired (owner -1: its owner wipes it) in the same
 *     map version that makes the shadows serve;
 *   no split in progress, READY, a serving term partition whose owner
 *     counted more than term_split_entries entries, or whose load has been
 *     above term_split_load for term_split_load_window_ms (split_due)
 *     --> a split at its median (the first such partition in term order).
 */
static void splits_step_locked(sx_coord *c, uint64_t now_ms)
{
    for (uint32_t i = 0; i < c->nindexes; i++) {
        index_entry *e = &c->indexes[i];
        if (!e->global || e->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE)
            continue;
        Shardex__Internal__V1__IndexSplit *last = e->nosplits ? e->osplits[e->nosplits - 1] : NULL;
        if (last && !last->done) {
            const term_report *a = term_report_locked(c, e, last->lo);
            const term_report *b = term_report_locked(c, e, last->hi);
            if (!a || !b || !a->ready || !b->ready)
                continue;
            last->done = true;
            sx_term_part *tp = &c->terms[e->first_term + last->term];
            tp->retired = true;
            if (tp->owner >= 0) {
                tp->owner = -1;
                tp->epoch++;
            }
            sx__coord_commit_locked(c, "index split swapped");
            SX_LOG(SX_LOG_INFO, "coord",
                   "index split done name=%s id=%" PRIu64
                   " seq=%u term=%u retired, %u and %u serve",
                   e->name, e->id, last->seq, last->term, last->lo, last->hi);
            continue;
        }
        if ((!c->term_split_entries && !c->term_split_load) ||
            split_allowed_locked(e, &(sx_err){0}) != SX_OK)
            continue;
        for (uint32_t t = 0; t < ix_terms(e); t++) {
            if (c->terms[e->first_term + t].retired)
                continue;
            const term_report *tr = term_report_locked(c, e, t);
            char why[200];
            if (!tr || !tr->ready || !tr->median || !split_due(c, tr, now_ms, why, sizeof(why)))
                continue;
            Shardex__V1__IndexSpec spec;
            spec_view(e, &spec);
            sx_ixkey_def d;
            def_of(e, &spec, false, &d);
            char msg[200];
            if (!sx_ixkey_check_split(&d, t, tr->median, msg, sizeof(msg)))
                continue; /* e.g. every entry holds one value: nothing to split at */
            Shardex__V1__Value *at = sx_ixkey_value_dup(tr->median);
            split_start_locked(c, e, t, at, why);
            sx_ixkey_value_free(at);
            break;
        }
    }
}

void sx_coord_list_indexes(sx_coord *c, sx_arena *arena, Shardex__V1__ListIndexesResponse *out)
{
    pthread_mutex_lock(&c->mu);
    out->n_indexes = c->nindexes;
    out->indexes = sx_arena_alloc(arena, (c->nindexes + 1) * sizeof(*out->indexes));
    for (uint32_t i = 0; i < c->nindexes; i++)
        out->indexes[i] = sx__coord_info_of(c, &c->indexes[i], arena);
    pthread_mutex_unlock(&c->mu);
}
