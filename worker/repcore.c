/* repcore.c: the replication decisions (see repcore.h). Pure: every input is
 * an argument, every effect is on the sx_repcore given or in the returned
 * decision. */
#include "repcore.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

const char *sx_repcore_role_name(sx_repcore_role role)
{
    switch (role) {
    case SX_REPCORE_FOLLOWER:
        return "follower";
    case SX_REPCORE_LEADER:
        return "leader";
    default:
        return "none";
    }
}

void sx_repcore_init(sx_repcore *c, uint64_t known_epoch, uint32_t lag_timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->self = -1;
    c->known_epoch = known_epoch;
    c->lag_timeout_ms = lag_timeout_ms;
}

static bool has(const int32_t *set, uint32_t n, int32_t w)
{
    return sx_clustermap_has(set, n, w);
}

static bool hosts(const sx_repcore_map *m, int32_t w)
{
    for (uint32_t i = 0; i < m->nreplicas; i++)
        if (m->replicas[i].worker == w)
            return true;
    return false;
}

static void drop_pending(sx_repcore *c, int32_t f)
{
    for (uint32_t i = 0; i < c->npending; i++) {
        if (c->pending[i] == f) {
            c->pending[i] = c->pending[--c->npending];
            return;
        }
    }
}

/* ---------------------------------------------------------------- roles -- */

static sx_repcore_role wanted_role(int32_t self, const sx_repcore_map *m)
{
    if (self < 0 || !hosts(m, self))
        return SX_REPCORE_NONE;
    return m->leader == self ? SX_REPCORE_LEADER : SX_REPCORE_FOLLOWER;
}

/* Whether the peers are exactly m's replicas other than self, in the same
 * processes at the same addresses. */
static bool same_followers(const sx_repcore *c, int32_t self, const sx_repcore_map *m)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < m->nreplicas; k++) {
        const sx_repcore_replica *f = &m->replicas[k];
        if (f->worker == self)
            continue;
        n++;
        bool found = false;
        for (uint32_t i = 0; i < c->npeers; i++) {
            const sx_repcore_replica *p = &c->peers[i].who;
            found |= p->worker == f->worker && p->incarnation == f->incarnation && p->address &&
                     f->address && strcmp(p->address, f->address) == 0;
        }
        if (!found)
            return false;
    }
    return n == c->npeers;
}

sx_repcore_map_plan sx_repcore_plan_map(const sx_repcore *c, int32_t self, const sx_repcore_map *m)
{
    sx_repcore_map_plan plan = {0};
    sx_repcore_role want = wanted_role(self, m);
    bool leading = c->role == SX_REPCORE_LEADER;
    plan.lead = want == SX_REPCORE_LEADER &&
                (!leading || c->epoch != m->epoch || !same_followers(c, self, m));
    plan.stop_leading = leading && (want != SX_REPCORE_LEADER || plan.lead);
    plan.recommit = want == SX_REPCORE_LEADER && !plan.lead;
    return plan;
}

void sx_repcore_unlead(sx_repcore *c)
{
    c->npeers = 0;
}

sx_status sx_repcore_take_map(sx_repcore *c, int32_t self, const sx_repcore_map *m, sx_err *err)
{
    if (m->nreplicas > SX_MAX_REPLICAS || m->nisr > SX_MAX_REPLICAS)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "%u replicas and %u in the isr: at most %d of each are supported",
                          m->nreplicas, m->nisr, SX_MAX_REPLICAS);
    sx_repcore_role want = wanted_role(self, m);
    bool new_epoch = c->epoch != m->epoch;
    c->self = self;
    for (uint32_t k = 0; k < m->nreplicas; k++)
        if (m->replicas[k].worker == self)
            c->self_incarnation = m->replicas[k].incarnation;
    if (want != SX_REPCORE_LEADER)
        c->role = want;
    c->epoch = m->epoch;
    if (m->epoch > c->known_epoch && want != SX_REPCORE_LEADER)
        c->known_epoch = m->epoch;
    c->isr_version = m->isr_version;
    c->nisr = m->nisr;
    if (m->nisr)
        memcpy(c->isr, m->isr, m->nisr * sizeof(*m->isr));
    c->min_isr = m->min_isr;
    /* Pending additions survive a restart of our sessions within the epoch:
     * a request may still be on its way to the coordinator. */
    if (new_epoch || want != SX_REPCORE_LEADER)
        c->npending = 0;
    for (uint32_t i = 0; i < c->npending;) {
        int32_t f = c->pending[i];
        if (has(c->isr, c->nisr, f) || !hosts(m, f))
            c->pending[i] = c->pending[--c->npending];
        else
            i++;
    }
    return SX_OK;
}

void sx_repcore_lead(sx_repcore *c, const sx_repcore_map *m, uint64_t commit, uint64_t applied,
                     uint64_t leo, uint64_t now_ms)
{
    c->role = SX_REPCORE_LEADER;
    c->fenced = false;
    c->hw = commit > applied ? commit : applied; /* not our leo: rule 7 */
    c->epoch_start = leo + 1;
    c->known_epoch = m->epoch;
    c->expand_asked_ms = 0;
    c->npeers = 0;
    for (uint32_t k = 0; k < m->nreplicas && c->npeers < SX_MAX_REPLICAS; k++) {
        if (m->replicas[k].worker == c->self)
            continue;
        sx_repcore_peer *p = &c->peers[c->npeers++];
        memset(p, 0, sizeof(*p));
        p->who = m->replicas[k];
        p->last_ack_ms = now_ms;
    }
}

bool sx_repcore_leading(const sx_repcore *c)
{
    return c->role == SX_REPCORE_LEADER && !c->fenced;
}

uint64_t sx_repcore_commit(const sx_repcore *c)
{
    return c->role == SX_REPCORE_LEADER ? c->hw : c->leader_commit;
}

bool sx_repcore_serving(const sx_repcore *c, uint64_t applied)
{
    if (!sx_repcore_leading(c))
        return false;
    uint64_t acked = c->epoch_start - 1; /* what earlier leaders may have acknowledged */
    return c->hw >= acked && applied >= acked;
}

/* ------------------------------------------------------------- commit -- */

sx_status sx_repcore_admit(const sx_repcore *c)
{
    if (!sx_repcore_leading(c))
        return SX_ABORTED;
    return c->nisr < c->min_isr ? SX_FAILED_PRECONDITION : SX_OK;
}

static const sx_repcore_peer *peer_of(const sx_repcore *c, int32_t f)
{
    for (uint32_t k = 0; k < c->npeers; k++)
        if (c->peers[k].who.worker == f)
            return &c->peers[k];
    return NULL;
}

bool sx_repcore_update_hw(sx_repcore *c, uint64_t leo)
{
    if (!sx_repcore_leading(c) || c->nisr < c->min_isr)
        return false;
    uint64_t m = leo;
    for (uint32_t i = 0; i < c->nisr + c->npending; i++) {
        int32_t f = i < c->nisr ? c->isr[i] : c->pending[i - c->nisr];
        if (f == c->self)
            continue;
        const sx_repcore_peer *p = peer_of(c, f);
        if (!p || !p->synced)
            return false; /* a follower we cannot vouch for in this epoch */
        if (p->match < m)
            m = p->match;
    }
    if (m <= c->hw)
        return false;
    c->hw = m;
    return true;
}

/* ------------------------------------------------------------ sessions -- */

static bool counts_for_commit(const sx_repcore *c, int32_t f)
{
    return has(c->isr, c->nisr, f) || has(c->pending, c->npending, f);
}

/* An ISR (or pending) follower behind us, silent for lag_timeout, and not
 * asked about within the retry interval. */
static bool should_shrink(const sx_repcore *c, const sx_repcore_peer *p, uint64_t leo, uint64_t now)
{
    if (!counts_for_commit(c, p->who.worker) || p->match >= leo)
        return false;
    if (now <= p->last_ack_ms || now - p->last_ack_ms <= c->lag_timeout_ms)
        return false;
    return p->shrink_asked_ms == 0 || now < p->shrink_asked_ms ||
           now - p->shrink_asked_ms > SX_REPCORE_SHRINK_RETRY_MS;
}

/* Names the process of each member of out's ISR as this leadership verified
 * it, so that the coordinator refuses the change if one restarted since. */
static void name_processes(const sx_repcore *c, sx_repcore_isr_change *out)
{
    for (uint32_t i = 0; i < out->nisr; i++) {
        out->incarnations[i] = out->isr[i] == c->self ? c->self_incarnation : 0;
        for (uint32_t k = 0; k < c->npeers; k++)
            if (c->peers[k].who.worker == out->isr[i])
                out->incarnations[i] = c->peers[k].who.incarnation;
    }
}

static void isr_without(const sx_repcore *c, int32_t f, sx_repcore_isr_change *out)
{
    out->epoch = c->epoch;
    out->isr_version = c->isr_version;
    out->nisr = 0;
    for (uint32_t i = 0; i < c->nisr; i++)
        if (c->isr[i] != f)
            out->isr[out->nisr++] = c->isr[i];
    name_processes(c, out);
}

void sx_repcore_session_step(sx_repcore *c, uint32_t slot, uint64_t leo, uint64_t now_ms,
                             sx_repcore_step *out)
{
    assert(slot < c->npeers);
    sx_repcore_peer *p = &c->peers[slot];
    memset(out, 0, sizeof(*out));
    uint64_t since = now_ms > p->last_send_ms ? now_ms - p->last_send_ms : 0;
    if (p->synced && p->match >= leo && p->sent_commit == c->hw && since < SX_REPCORE_IDLE_MS) {
        out->idle = true;
        out->wait_ms = SX_REPCORE_IDLE_MS - since;
        return;
    }
    if (should_shrink(c, p, leo, now_ms)) {
        out->shrink = true;
        isr_without(c, p->who.worker, &out->change);
        p->shrink_asked_ms = now_ms;
    }
    out->epoch = c->epoch;
    out->prev = p->synced ? p->match : leo;
    out->entries = p->synced && out->prev < leo;
    out->commit = c->hw;
}

void sx_repcore_shrink_answered(sx_repcore *c, uint32_t slot, bool accepted, uint64_t now_ms)
{
    assert(slot < c->npeers);
    /* The interval counts from the answer: a slow or absent coordinator
     * still leaves time to keep shipping (and being fenced). */
    c->peers[slot].shrink_asked_ms = now_ms;
    if (accepted)
        drop_pending(c, c->peers[slot].who.worker);
}

sx_status sx_repcore_isr_accepted(sx_repcore *c, uint64_t epoch, uint64_t isr_version,
                                  const int32_t *isr, size_t nisr, sx_err *err)
{
    if (nisr > SX_MAX_REPLICAS)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "an isr of %zu members: at most %d are supported", nisr, SX_MAX_REPLICAS);
    if (epoch != c->epoch || isr_version <= c->isr_version)
        return SX_OK; /* a map already told us as much, or more */
    c->isr_version = isr_version;
    c->nisr = (uint32_t)nisr;
    if (nisr)
        memcpy(c->isr, isr, nisr * sizeof(*isr));
    return SX_OK;
}

void sx_repcore_sent(sx_repcore *c, uint32_t slot, uint64_t now_ms)
{
    assert(slot < c->npeers);
    c->peers[slot].last_send_ms = now_ms;
}

bool sx_repcore_acked(sx_repcore *c, uint32_t slot, const sx_repcore_step *sent, size_t n,
                      uint64_t now_ms, uint64_t leo)
{
    assert(slot < c->npeers);
    sx_repcore_peer *p = &c->peers[slot];
    p->match = sent->prev + n;
    p->synced = true;
    p->sent_commit = sent->commit;
    p->last_ack_ms = now_ms;
    p->shrink_asked_ms = 0;
    return sx_repcore_update_hw(c, leo);
}

void sx_repcore_peer_applied(sx_repcore *c, uint32_t slot, uint64_t applied)
{
    assert(slot < c->npeers);
    c->peers[slot].applied = applied;
    c->peers[slot].applied_known = true;
}

/* Why this floor is safe: a follower is sent entries from its match + 1, and
 * an applied entry is committed, so never truncated and never needed again by
 * the replica that applied it. Below min(applied, match) of every follower
 * that counts, nobody this leadership sends to needs an entry. ISR and pending
 * members count even before they answer (their position is unknown: no
 * floor), since any of them may be elected and must be able to feed the
 * others; other followers count once they answered, so that one catching up
 * is not cut off, and hold the floor for a lag timeout from the start of the
 * leadership until they do (one the previous leader was feeding answers by
 * then; a dead one does not hold the log forever: it will need a snapshot). */
uint64_t sx_repcore_log_floor(const sx_repcore *c, uint64_t applied, uint64_t leo,
                              int64_t keep_entries, uint64_t now_ms)
{
    if (keep_entries < 0 || !sx_repcore_leading(c))
        return 0;
    uint64_t safe = applied;
    for (uint32_t i = 0; i < c->npeers; i++) {
        const sx_repcore_peer *p = &c->peers[i];
        bool counts = counts_for_commit(c, p->who.worker);
        if (!p->synced || !p->applied_known) {
            /* Others are waited for a lag timeout from the start of this
             * leadership (last_ack_ms starts there): a live follower that
             * the previous leader fed answers by then. */
            if (counts || now_ms < p->last_ack_ms + c->lag_timeout_ms)
                return 0;
            continue;
        }
        uint64_t need = p->applied < p->match ? p->applied : p->match;
        if (need < safe)
            safe = need;
    }
    uint64_t floor = safe > SX_REPCORE_TRIM_MARGIN ? safe - SX_REPCORE_TRIM_MARGIN : 0;
    uint64_t keep = (uint64_t)keep_entries;
    uint64_t by_retention = leo > keep ? leo - keep : 0;
    if (floor > by_retention)
        floor = by_retention;
    return c->index_hold && floor > c->index_hold ? c->index_hold : floor;
}

void sx_repcore_hold_for_indexes(sx_repcore *c, uint64_t from)
{
    c->index_hold = from;
}

uint64_t sx_repcore_mismatched(sx_repcore *c, uint32_t slot, const sx_epoch_start *ours,
                               size_t nours, uint64_t our_leo, const sx_epoch_start *theirs,
                               size_t ntheirs, uint64_t their_leo)
{
    assert(slot < c->npeers);
    sx_repcore_peer *p = &c->peers[slot];
    p->match = sx_plog_common_prefix(ours, nours, our_leo, theirs, ntheirs, their_leo);
    p->synced = true;
    return p->match;
}

bool sx_repcore_fence(sx_repcore *c)
{
    bool was = c->fenced;
    c->fenced = true;
    return !was;
}

/* ----------------------------------------------------------- expansion -- */

/* Rule 3 on what we know of p: verified up to max(hw, start of our epoch -
 * 1), and heard from recently (a follower that stopped answering keeps the
 * match it had, which would otherwise re-admit it at once). */
static bool caught_up(const sx_repcore *c, const sx_repcore_peer *p, uint64_t now)
{
    uint64_t need = c->hw > c->epoch_start - 1 ? c->hw : c->epoch_start - 1;
    uint64_t silent = now > p->last_ack_ms ? now - p->last_ack_ms : 0;
    return p->synced && p->match >= need && silent <= c->lag_timeout_ms / 2;
}

static bool retry_due(const sx_repcore *c, uint64_t now)
{
    return c->expand_asked_ms == 0 || now < c->expand_asked_ms ||
           now - c->expand_asked_ms >= SX_REPCORE_EXPAND_RETRY_MS;
}

bool sx_repcore_expand_due(const sx_repcore *c, uint64_t now_ms)
{
    if (!sx_repcore_leading(c) || !retry_due(c, now_ms))
        return false;
    for (uint32_t k = 0; k < c->npeers; k++)
        if (!has(c->isr, c->nisr, c->peers[k].who.worker) && caught_up(c, &c->peers[k], now_ms))
            return true;
    return false;
}

/* The process the newest map names is the one we verified: a restarted
 * follower's new process has proven nothing yet. */
static bool named_as(const sx_repcore_newest *nm, const sx_repcore_replica *who)
{
    for (uint32_t i = 0; i < nm->nreplicas; i++)
        if (nm->replicas[i].worker == who->worker)
            return nm->replicas[i].incarnation == who->incarnation;
    return false;
}

bool sx_repcore_expand(sx_repcore *c, uint64_t now_ms, const sx_repcore_newest *newest,
                       sx_repcore_isr_change *out)
{
    if (!sx_repcore_leading(c) || !retry_due(c, now_ms) || !newest->lease_valid ||
        newest->leader != c->self)
        return false;
    out->epoch = c->epoch;
    out->isr_version = c->isr_version;
    out->nisr = c->nisr;
    memcpy(out->isr, c->isr, c->nisr * sizeof(*c->isr));
    for (uint32_t k = 0; k < c->npeers; k++) {
        const sx_repcore_peer *p = &c->peers[k];
        int32_t f = p->who.worker;
        if (has(out->isr, out->nisr, f) || !caught_up(c, p, now_ms) || !named_as(newest, &p->who))
            continue;
        assert(out->nisr < SX_MAX_REPLICAS);
        out->isr[out->nisr++] = f;
        /* We ask next: from now on commits wait for it. */
        if (!has(c->pending, c->npending, f))
            c->pending[c->npending++] = f;
    }
    if (out->nisr == c->nisr)
        return false;
    name_processes(c, out);
    c->expand_asked_ms = now_ms;
    return true;
}

/* ----------------------------------------------------------- follower -- */

/* Index of the first entry that conflicts with ours, or where ours end. */
static size_t first_new(const sx_repcore_append *a, const sx_repcore_local *l, bool *conflict)
{
    *conflict = false;
    size_t i = 0;
    for (; i < a->n && i < l->nepochs; i++) {
        if (l->epochs[i] != a->epochs[i]) {
            *conflict = true;
            break;
        }
    }
    return i;
}

void sx_repcore_follow_plan(sx_repcore *c, const sx_repcore_append *a, const sx_repcore_local *l,
                            sx_repcore_append_plan *out)
{
    memset(out, 0, sizeof(*out));
    if (a->epoch < c->known_epoch || a->epoch < c->epoch) {
        out->verdict = SX_REPCORE_APPEND_STALE;
        out->known_epoch = c->known_epoch > c->epoch ? c->known_epoch : c->epoch;
        return;
    }
    if (c->role == SX_REPCORE_LEADER) {
        /* A newer leader exists and our map has not said so yet: stop taking
         * writes; the sender retries once the map has moved us. */
        c->fenced = true;
        out->verdict = SX_REPCORE_APPEND_LEADING;
        out->known_epoch = c->epoch;
        return;
    }
    if (a->epoch > c->known_epoch)
        c->known_epoch = a->epoch;
    if (a->epoch != c->verified_epoch) {
        c->verified_epoch = a->epoch;
        c->verified = 0; /* nothing is verified in a new epoch until prev matches */
    }
    if (a->prev_offset > l->leo || !l->prev_read || l->prev_epoch != a->prev_epoch) {
        out->verdict = SX_REPCORE_APPEND_MISMATCH;
        return;
    }
    bool conflict = false;
    out->verdict = SX_REPCORE_APPEND_ACCEPT;
    out->append_from = first_new(a, l, &conflict);
    out->truncate = conflict;
    out->truncate_to = a->prev_offset + out->append_from;
}

uint64_t sx_repcore_follow_done(sx_repcore *c, const sx_repcore_append *a)
{
    uint64_t verified = a->prev_offset + a->n;
    if (verified > c->verified)
        c->verified = verified;
    if (a->commit > c->leader_commit)
        c->leader_commit = a->commit;
    /* Rule 7: only what this leader committed and verified with us in this
     * epoch; a commit offset from another epoch says nothing about our tail. */
    return a->commit < c->verified ? a->commit : c->verified;
}
