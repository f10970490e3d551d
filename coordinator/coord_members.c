/* coord_members.c: the worker registry: registration, heartbeats and
 * leases (coord.h, docs/architecture.md "Leases"), leaving, the tick that
 * declares workers dead, leaders' ISR changes, and drain and remove.
 *
 * Every entry point takes c->mu (coord_internal.h) and ends a change in
 * sx__coord_commit_locked. Not here: the index layer's part of a heartbeat
 * (sx_coord_index_reports, coord_index.c).
 */
#include "coord_internal.h"

#include "log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- leases -- */

/* The lease's derived limits, after lease_ms is set or changed. The pause limit
 * is above three ticks, so that late ticks of a busy machine never look like a
 * pause (if every tick did, nobody would ever be judged), and at least half a
 * lease: a shorter gap, plus a heartbeat period, is still within lease + margin,
 * so it cannot make anyone look dead. */
void sx__coord_lease_rules_locked(sx_coord *c)
{
    c->margin_ms = c->lease_ms / 4 > 100 ? c->lease_ms / 4 : 100;
    c->unanswered_max_ms = 2 * (uint64_t)c->lease_ms;
    uint64_t three_ticks = 3 * (uint64_t)c->tick_ms;
    c->pause_ms = !c->tick_ms ? 0 : three_ticks > c->lease_ms / 2 ? three_ticks : c->lease_ms / 2;
}

/* Every worker known alive: a lease as if it had just heartbeated. */
void sx__coord_fresh_leases_locked(sx_coord *c, uint64_t now_ms)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        c->workers[i].lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
}

/* When the gap since the last tick is a pause of the coordinator's own (it was
 * stopped, or starved): the heartbeats that arrived meanwhile may still be
 * queued, so nobody is judged on that gap; everyone starts a fresh lease now,
 * as after a restart, and the gap is remembered (held_ms). */
static void notice_pause_locked(sx_coord *c, uint64_t now_ms)
{
    if (!c->pause_ms || now_ms <= c->last_tick_ms || now_ms - c->last_tick_ms <= c->pause_ms)
        return;
    SX_LOG(SX_LOG_WARN, "coord",
           "paused ms=%" PRIu64 " tick_ms=%u reason=\"the coordinator did not run\" "
           "action=\"fresh leases for every live worker\"",
           now_ms - c->last_tick_ms, c->tick_ms);
    c->down_from_ms = c->last_tick_ms;
    c->down_to_ms = c->last_tick_ms = now_ms;
    sx__coord_fresh_leases_locked(c, now_ms);
}

/* How much of a worker's last unanswered_ms (up to now) counts against it:
 * all of it but the part the coordinator itself did not run. */
static uint64_t held_ms(const sx_coord *c, uint64_t now_ms, uint64_t unanswered_ms)
{
    uint64_t from = unanswered_ms < now_ms ? now_ms - unanswered_ms : 0;
    uint64_t lo = from > c->down_from_ms ? from : c->down_from_ms;
    uint64_t hi = now_ms < c->down_to_ms ? now_ms : c->down_to_ms;
    return unanswered_ms - (hi > lo ? hi - lo : 0);
}

/* ------------------------------------------------------------ membership -- */

sx_status sx_coord_register(sx_coord *c, const char *id, const char *address, uint64_t now_ms,
                            int32_t *index, uint64_t *incarnation, sx_coord_map **map, sx_err *err)
{
    return sx_coord_register_ex(c, id, address, 0, NULL, 0, now_ms, index, incarnation, map, err);
}

sx_status sx_coord_register_lost(sx_coord *c, const char *id, const char *address,
                                 const uint32_t *lost, size_t nlost, uint64_t now_ms,
                                 int32_t *index, uint64_t *incarnation, sx_coord_map **map,
                                 sx_err *err)
{
    return sx_coord_register_ex(c, id, address, 0, lost, nlost, now_ms, index, incarnation, map,
                                err);
}

sx_status sx_coord_register_nonce(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                                  uint64_t now_ms, int32_t *index, uint64_t *incarnation,
                                  sx_coord_map **map, sx_err *err)
{
    return sx_coord_register_ex(c, id, address, nonce, NULL, 0, now_ms, index, incarnation, map,
                                err);
}

/* A worker that registers again leaves the isr of p when it lost p's store
 * (even as the last member: sx_clustermap_store_lost), else when another live
 * member remains (it has verified nothing in the current epoch); the elr rule
 * applies to the latter. Returns whether p lost a store of an isr or elr member. */
static bool leave_isr_locked(sx_coord *c, uint32_t p, int32_t w, bool lost)
{
    sx_log_part *lp = &c->parts[p];
    if (lost) {
        if (!sx_clustermap_store_lost(lp, w))
            return false;
        SX_LOG(SX_LOG_WARN, "coord",
               "partition=%u worker=%s lost its store: out of the isr and the eligible leaders "
               "isr_size=%u",
               p, c->workers[w].id, lp->nisr);
        return true;
    }
    if (!sx_clustermap_has(lp->isr, lp->nisr, w))
        return false;
    bool other = false;
    for (uint32_t k = 0; k < lp->nisr; k++)
        other |= lp->isr[k] != w && c->workers[lp->isr[k]].alive;
    if (!other)
        return false;
    int32_t old[SX_MAX_REPLICAS];
    uint32_t nold = lp->nisr, n = 0;
    memcpy(old, lp->isr, sizeof(old));
    for (uint32_t k = 0; k < lp->nisr; k++)
        if (lp->isr[k] != w)
            lp->isr[n++] = lp->isr[k];
    lp->nisr = n;
    lp->isr_version++;
    if (lp->leader == w) {
        lp->leader = -1; /* assignment picks one from the remaining ISR */
        lp->epoch++;
    }
    sx_clustermap_track_elr(lp, old, nold, c->set.min_isr);
    return false;
}

/* A retried registration (see sx_coord_register_nonce): its process never
 * heard the first answer, so it has acted on nothing; it gets the same answer,
 * and a fresh lease because this reply may be the one it hears. */
static bool register_retried_locked(sx_coord *c, int32_t w, const char *address, uint64_t nonce,
                                    uint64_t now_ms)
{
    worker *wk = &c->workers[w];
    if (!nonce || nonce != wk->reg_nonce || !wk->alive || wk->heartbeated ||
        strcmp(wk->addr, address) != 0)
        return false;
    wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
    SX_LOG(SX_LOG_INFO, "coord",
           "worker registered again id=%s index=%d incarnation=%" PRIu64
           " reason=\"retried by the same process\"",
           wk->id, w, wk->incarnation);
    return true;
}

sx_status sx_coord_register_ex(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                               const uint32_t *lost, size_t nlost, uint64_t now_ms, int32_t *index,
                               uint64_t *incarnation, sx_coord_map **map, sx_err *err)
{
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    if (!address[0] || strlen(address) > 256)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "address: must be 1..256 bytes");
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    int32_t w = sx__coord_find_worker_locked(c, id);
    if (w >= 0 && register_retried_locked(c, w, address, nonce, now_ms)) {
        *index = w;
        *incarnation = c->workers[w].incarnation;
        *map = sx__coord_acquire_locked(c);
        pthread_mutex_unlock(&c->mu);
        return SX_OK;
    }
    if (w < 0) {
        c->workers = sx_realloc(c->workers, (c->nworkers + 1) * sizeof(*c->workers));
        w = (int32_t)c->nworkers++;
        memset(&c->workers[w], 0, sizeof(c->workers[w]));
        c->workers[w].id = sx_strdup(id);
    }
    worker *wk = &c->workers[w];
    if (wk->removed) {
        /* Removed for good: it is in no replica set, so it starts empty. */
        wk->removed = false;
        SX_LOG(SX_LOG_INFO, "coord",
               "worker registers again after its removal id=%s index=%d: "
               "a new, empty worker",
               id, w);
    }
    /* A new incarnation of a leader is a new leadership: the process that
     * wrote under the old epoch may have lost what it had not made durable,
     * and the same epoch must never name two different histories. */
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (c->parts[p].leader == w)
            c->parts[p].epoch++;
    /* A new process has verified nothing in the current epochs: it leaves
     * every ISR that keeps another live member, and its leaders re-admit it
     * once it has caught up (rule 3). One that lost a partition's store holds
     * none of what it acknowledged there: it leaves that ISR and the eligible
     * leaders even as the last member, and never leads with what is left. */
    bool *lost_p = sx_calloc(c->set.partitions + 1, sizeof(bool));
    for (size_t i = 0; i < nlost; i++)
        if (lost[i] < c->set.partitions)
            lost_p[lost[i]] = true;
    for (uint32_t p = 0; p < c->set.partitions; p++)
        lost_p[p] = leave_isr_locked(c, p, w, lost_p[p]);
    for (uint32_t t = 0; t < c->nterms; t++)
        if (c->terms[t].owner == w)
            c->terms[t].epoch++;
    free(wk->addr);
    wk->addr = sx_strdup(address);
    wk->alive = true;
    wk->incarnation = c->next_incarnation++;
    wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
    wk->reg_nonce = nonce;
    wk->hb_seq = 0;
    wk->heartbeated = false;
    free(wk->reports);
    wk->reports = NULL;
    wk->nreports = 0;
    sx__coord_clear_index_reports(wk);
    SX_LOG(SX_LOG_INFO, "coord",
           "worker registered id=%s index=%d addr=%s incarnation=%" PRIu64 " lost_stores=%zu", id,
           w, address, wk->incarnation, nlost);
    sx__coord_assign_locked(c);
    for (uint32_t p = 0; p < c->set.partitions; p++)
        if (lost_p[p] && c->parts[p].leader < 0 && c->parts[p].nisr == 0)
            sx__coord_report_isr_lost_locked(c, p);
    free(lost_p);
    sx__coord_commit_locked(c, "register");
    *index = w;
    *incarnation = wk->incarnation;
    *map = sx__coord_acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

sx_status sx_coord_heartbeat(sx_coord *c, const char *id, uint64_t incarnation,
                             uint64_t known_version,
                             Shardex__Internal__V1__ReplicaReport *const *reports, size_t nreports,
                             uint64_t now_ms, sx_coord_map **map, sx_err *err)
{
    return sx_coord_heartbeat_heard(c, id, incarnation, NULL, known_version, reports, nreports,
                                    now_ms, map, err);
}

/* The lease of wk after a heartbeat received at now_ms (numbered above every
 * earlier one, so the worker's earlier calls are over: their answers were
 * heard, which unanswered_ms then says, or never will be). Its answer may be
 * the one the worker hears and counts its lease from (sent before now_ms):
 * alive until now + lease + margin. Unless the worker has not heard us for
 * too long, not counting our own pauses: then this answer renews nothing,
 * and the worker's lease is what the worker itself has, which ended a lease
 * after its last answered call was sent (before now - unanswered_ms). */
static sx_status renew_locked(sx_coord *c, worker *wk, const sx_coord_heard *heard, uint64_t now_ms,
                              sx_err *err)
{
    uint64_t held = held_ms(c, now_ms, heard->unanswered_ms);
    if (held <= c->unanswered_max_ms) {
        wk->lease_deadline_ms = now_ms + c->lease_ms + c->margin_ms;
        return SX_OK;
    }
    uint64_t answered = heard->unanswered_ms < now_ms ? now_ms - heard->unanswered_ms : 0;
    wk->lease_deadline_ms = answered + c->lease_ms + c->margin_ms;
    SX_LOG(SX_LOG_WARN, "coord",
           "lease not renewed id=%s incarnation=%" PRIu64 " unanswered_ms=%" PRIu64
           " held_ms=%" PRIu64 " limit_ms=%" PRIu64,
           wk->id, wk->incarnation, heard->unanswered_ms, held, c->unanswered_max_ms);
    return sx_err_set(err, SX_FAILED_PRECONDITION,
                      "worker %s has heard no answer for %" PRIu64 " ms (limit %" PRIu64
                      "): its lease is not renewed; register again",
                      wk->id, held, c->unanswered_max_ms);
}

sx_status sx_coord_heartbeat_heard(sx_coord *c, const char *id, uint64_t incarnation,
                                   const sx_coord_heard *heard, uint64_t known_version,
                                   Shardex__Internal__V1__ReplicaReport *const *reports,
                                   size_t nreports, uint64_t now_ms, sx_coord_map **map,
                                   sx_err *err)
{
    static const sx_coord_heard nothing = {0, 0};
    if (!heard)
        heard = &nothing;
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    int32_t w = sx__coord_find_worker_locked(c, id);
    if (w < 0 || !c->workers[w].alive || c->workers[w].incarnation != incarnation) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker %s incarnation %" PRIu64 " is not current: register again", id,
                          incarnation);
    }
    worker *wk = &c->workers[w];
    sx_status st = SX_OK;
    bool newest = !heard->seq || heard->seq > wk->hb_seq; /* else late or duplicated */
    if (newest) {
        wk->hb_seq = heard->seq ? heard->seq : wk->hb_seq;
        wk->heartbeated = true;
        wk->known_version = known_version;
        st = renew_locked(c, wk, heard, now_ms, err);
    }
    if (st == SX_OK && newest) {
        wk->reports = sx_realloc(wk->reports, (nreports + 1) * sizeof(*wk->reports));
        wk->nreports = nreports;
        for (size_t i = 0; i < nreports; i++)
            wk->reports[i] = *reports[i]; /* no pointers inside beyond the descriptor */
    }
    if (st == SX_OK && newest)
        sx__coord_salts_activate_locked(c, now_ms);
    if (st == SX_OK && known_version != c->version)
        *map = sx__coord_acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return st;
}

sx_status sx_coord_leave(sx_coord *c, const char *id, uint64_t incarnation, sx_coord_map **map,
                         sx_err *err)
{
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    int32_t w = sx__coord_find_worker_locked(c, id);
    if (w < 0 || c->workers[w].incarnation != incarnation) {
        pthread_mutex_unlock(&c->mu);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker %s incarnation %" PRIu64 " is not current: nothing to leave", id,
                          incarnation);
    }
    worker *wk = &c->workers[w];
    if (wk->alive) {
        wk->alive = false;
        SX_LOG(SX_LOG_INFO, "coord",
               "worker left id=%s index=%d incarnation=%" PRIu64
               " reason=\"stopping: its roles move now\"",
               wk->id, w, incarnation);
        sx__coord_assign_locked(c);
        sx__coord_commit_locked(c, "worker left");
    }
    *map = sx__coord_acquire_locked(c);
    pthread_mutex_unlock(&c->mu);
    return SX_OK;
}

void sx_coord_tick(sx_coord *c, uint64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    notice_pause_locked(c, now_ms);
    if (now_ms > c->last_tick_ms)
        c->last_tick_ms = now_ms;
    bool died = false;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        worker *wk = &c->workers[i];
        if (wk->alive && now_ms > wk->lease_deadline_ms) {
            wk->alive = false;
            died = true;
            SX_LOG(SX_LOG_WARN, "coord",
                   "worker dead id=%s index=%u reason=\"lease expired %" PRIu64 " ms ago\"", wk->id,
                   i, now_ms - wk->lease_deadline_ms);
        }
    }
    if (died) {
        sx__coord_assign_locked(c);
        sx__coord_commit_locked(c, "lease expired");
    }
    pthread_mutex_unlock(&c->mu);
}

/* Every member of ch's ISR is the live process the leader verified. */
static sx_status members_verified_locked(const sx_coord *c, const sx_coord_isr_change *ch,
                                         sx_err *err)
{
    if (ch->nincarnations != ch->nisr)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "incarnations: %zu given for %zu isr members (one each)",
                          ch->nincarnations, ch->nisr);
    for (size_t i = 0; i < ch->nisr; i++) {
        int32_t w = ch->isr[i];
        if (w < 0 || (size_t)w >= c->nworkers)
            continue; /* not a replica: sx_clustermap_change_isr names it */
        const worker *wk = &c->workers[w];
        if (!wk->alive || wk->incarnation != ch->incarnations[i])
            return sx_err_set(err, SX_FAILED_PRECONDITION,
                              "isr change of partition %u: worker %d is %s%" PRIu64
                              ", not incarnation %" PRIu64 " as the leader verified",
                              ch->partition, w, wk->alive ? "incarnation " : "dead, was ",
                              wk->incarnation, ch->incarnations[i]);
    }
    return SX_OK;
}

sx_status sx_coord_change_isr(sx_coord *c, const char *id, const sx_coord_isr_change *ch,
                              sx_coord_map **map, sx_err *err)
{
    *map = NULL;
    pthread_mutex_lock(&c->mu);
    sx_status st = SX_OK;
    int32_t w = sx__coord_find_worker_locked(c, id);
    uint32_t partition = ch->partition;
    if (partition >= c->set.partitions) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "partition: %u is outside 0..%u", partition,
                        c->set.partitions - 1);
    } else if (w < 0 || !c->workers[w].alive || c->parts[partition].leader != w) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker %s does not lead partition %u at epoch %" PRIu64, id, partition,
                        c->parts[partition].epoch);
    } else if (ch->nisr > SX_MAX_REPLICAS) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "isr: more than %d members", SX_MAX_REPLICAS);
    } else if ((st = members_verified_locked(c, ch, err)) == SX_OK) {
        sx_log_part next = c->parts[partition];
        st = sx_clustermap_change_isr(&next, ch->epoch, ch->isr_version, ch->isr,
                                      (uint32_t)ch->nisr, err);
        if (st == SX_OK) {
            const sx_log_part *was = &c->parts[partition];
            sx_clustermap_track_elr(&next, was->isr, was->nisr, c->set.min_isr);
            c->parts[partition] = next;
            sx__coord_assign_locked(c); /* a grown isr may let leadership spread out */
            sx__coord_commit_locked(c, "isr change");
            *map = sx__coord_acquire_locked(c);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

sx_status sx_coord_drain(sx_coord *c, const char *id, bool cancel, uint64_t now_ms, sx_arena *arena,
                         Shardex__V1__WorkerStatus **out, sx_err *err)
{
    *out = NULL;
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    pthread_mutex_lock(&c->mu);
    int32_t w = sx__coord_find_worker_locked(c, id);
    sx_status st = SX_OK;
    if (w < 0) {
        st = sx_err_set(err, SX_NOT_FOUND, "worker_id: no worker \"%s\" has registered", id);
    } else if (c->workers[w].removed) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" was removed; it holds nothing", id);
    } else {
        worker *wk = &c->workers[w];
        if (wk->draining == cancel) {
            wk->draining = !cancel;
            SX_LOG(SX_LOG_INFO, "coord", "worker %s id=%s index=%d alive=%d",
                   cancel ? "undrained" : "draining", id, w, wk->alive);
            sx__coord_assign_locked(c);
            sx__coord_commit_locked(c, cancel ? "worker undrained" : "worker draining");
        }
        *out = sx__coord_worker_status_locked(c, (uint32_t)w, now_ms, arena);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

sx_status sx_coord_remove(sx_coord *c, const char *id, bool force, sx_arena *arena, uint32_t **lost,
                          size_t *nlost, sx_err *err)
{
    *lost = NULL;
    *nlost = 0;
    if (!id[0] || strlen(id) > 64)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "worker_id: must be 1..64 bytes");
    pthread_mutex_lock(&c->mu);
    int32_t w = sx__coord_find_worker_locked(c, id);
    sx_status st = SX_OK;
    if (w < 0) {
        st = sx_err_set(err, SX_NOT_FOUND, "worker_id: no worker \"%s\" has registered", id);
        goto out;
    }
    worker *wk = &c->workers[w];
    if (wk->removed)
        goto out;
    if (wk->alive) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" is alive (incarnation %" PRIu64
                        "); only a dead worker can be removed: stop it first, or drain it",
                        id, wk->incarnation);
        goto out;
    }
    uint32_t *sole = sx_arena_alloc(arena, (c->set.partitions + 1) * sizeof(*sole));
    size_t nsole = 0;
    char which[256] = "";
    size_t n = 0;
    for (uint32_t p = 0; p < c->set.partitions; p++) {
        if (!sx_clustermap_sole_holder(&c->parts[p], w))
            continue;
        sole[nsole++] = p;
        if (n < sizeof(which))
            n += (size_t)snprintf(which + n, sizeof(which) - n, "%s%u", nsole > 1 ? "," : "", p);
    }
    if (nsole && !force) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "worker_id: worker \"%s\" is the only replica known to hold the committed "
                        "entries of %zu partition(s) (%s); bring it back, or remove it with force "
                        "and lose them",
                        id, nsole, which);
        goto out;
    }
    wk->removed = true;
    wk->draining = false;
    if (nsole)
        SX_LOG(SX_LOG_ERROR, "coord",
               "worker removed by force id=%s index=%d: the committed entries only it held are "
               "lost partitions=%s",
               id, w, which);
    else
        SX_LOG(SX_LOG_INFO, "coord", "worker removed id=%s index=%d", id, w);
    sx__coord_assign_locked(c);
    sx__coord_commit_locked(c, "worker removed");
    *lost = sole;
    *nlost = nsole;
out:
    pthread_mutex_unlock(&c->mu);
    return st;
}
