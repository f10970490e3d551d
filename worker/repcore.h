/* repcore.h: the decisions of log replication for one hosted partition
 * replica, as a pure state machine (REPLICATION.md rules 2, 3, 4, 6, 7).
 *
 * No threads, no clock reads, no locks, no RPC, no I/O: the time, the log's
 * positions and what was heard come in as arguments; decisions come out as
 * small structs that the driver (replica.c) executes (truncate, append,
 * apply, send, ask the coordinator). The state is a plain struct the driver
 * embeds and guards with its own lock; tests walk it step by step.
 *
 * Roles, and who moves between them:
 *
 *   any --map (sx_repcore_plan_map, sx_repcore_take_map)--> NONE | FOLLOWER
 *           manager thread, per newer map: FOLLOWER when the map lists this
 *           worker among p's replicas and another leads, NONE when it does
 *           not list it. A LEADER stops leading first (sx_repcore_unlead).
 *   any --map, then sx_repcore_lead--> LEADER at epoch E
 *           manager thread, when the map names this worker leader and it did
 *           not lead, or led another epoch, or other followers (worker,
 *           incarnation or address changed): stop, record (E, leo + 1) in the
 *           epoch table (the driver), then lead: hw from the persisted commit
 *           offset, never the leo (rule 7), every follower unsynced.
 *           It serves reads (its applied state as the partition's) only
 *           once hw reached epoch_start - 1 and that is applied
 *           (sx_repcore_serving): its log up to there may hold entries an
 *           earlier leader committed and acknowledged, above the commit
 *           offset it had persisted.
 *   LEADER --sx_repcore_fence--> LEADER, fenced
 *           session: a follower refused our epoch (it knows a newer one).
 *   LEADER --sx_repcore_follow_plan--> LEADER, fenced
 *           Append handler: a newer leader reached us before our map did.
 *           A fenced leader admits no writes and commits nothing; the next
 *           map moves it.
 *
 * Leader, per follower (a "peer", one per session, slots in map order):
 *   unsynced --probe acked (sx_repcore_acked)--> synced, match = leo sent
 *   unsynced --mismatch (sx_repcore_mismatched)--> synced, match = common
 *           prefix of the two epoch tables (rule 6), then entries from there
 *   synced --acked--> match = prev + entries sent, last ack = now
 *   `match` counts only what the follower verified in this epoch (rule 4).
 *
 * Leader, the ISR (rule 3: changes go through the coordinator):
 *   commit  sx_repcore_update_hw: hw = min(leo, match of every ISR and
 *           pending follower), only while the ISR has min_isr members and
 *           every one of those followers synced in this epoch; hw only rises.
 *   shrink  sx_repcore_session_step: an ISR (or pending) follower behind
 *           our leo that has not acknowledged for lag_timeout is to be
 *           dropped: the step carries the ChangeIsr to ask, again every
 *           SX_REPCORE_SHRINK_RETRY_MS after an answer while it still lags.
 *           Until the coordinator accepts (sx_repcore_shrink_answered,
 *           sx_repcore_isr_accepted), commits wait for it.
 *   expand  sx_repcore_expand, after an ack (sx_repcore_expand_due): every
 *           follower outside the ISR whose match >= max(hw, first offset of
 *           the epoch - 1), that acknowledged within lag_timeout / 2, in the
 *           incarnation the newest map names, is asked in (while our lease
 *           is valid and the newest map names us leader; again every
 *           SX_REPCORE_EXPAND_RETRY_MS while refused); from that moment it
 *           is PENDING (the "maximal ISR": commits wait for it, since the
 *           coordinator may count it in sync and elect it) until a map shows
 *           it in the ISR or no longer a replica, a new epoch or another
 *           role begins, or a shrink of it is accepted.
 *
 * Leader, log retention (sx_repcore_log_floor; docs/architecture.md):
 *   floor   min(our applied, applied and match of every ISR and pending
 *           follower, and of every other follower that answered in this
 *           epoch) less SX_REPCORE_TRIM_MARGIN, and no higher than
 *           leo - keep_entries; 0 (trim nothing) while an ISR or pending
 *           follower has not answered in this leadership (another one: for
 *           lag_timeout from its start), when retention is off
 *           (keep_entries < 0), or when not leading. Sent with every
 *           Append (log_floor); each replica removes its entries below
 *           min(floor, its own applied) (sx_plog_trim). Never above the
 *           index streams' hold (sx_repcore_hold_for_indexes): the log is
 *           kept from just after the lowest watermark any term partition
 *           acknowledged, so `shardex verify` can recompute term partitions
 *           from it.
 *
 * Follower:
 *   append  sx_repcore_follow_plan: epochs below the highest known are
 *           refused (rule 2); a new epoch resets `verified`; prev must hold
 *           prev's epoch (else mismatch: the sender compares epoch tables);
 *           entries already held are skipped, the first conflict truncates,
 *           the rest is appended; then sx_repcore_follow_done raises
 *           `verified` and gives the apply bound min(leader's commit,
 *           verified) (rule 7).
 *
 * Thread-safety: none; the caller serializes calls on one sx_repcore.
 */
#ifndef SX_REPCORE_H
#define SX_REPCORE_H

#include "clustermap.h" /* SX_MAX_REPLICAS */
#include "plog.h"       /* sx_epoch_start */
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Log retention: entries kept below the floor every replica could still
 * need, so that a follower a little behind (a reply lost, a restart) is sent
 * entries, not refused; and the least progress worth a trim. */
#define SX_REPCORE_TRIM_MARGIN 1000
#define SX_REPCORE_TRIM_STEP 256

/* Timing of a leader's sessions. */
#define SX_REPCORE_IDLE_MS 200         /* an idle session still sends this often */
#define SX_REPCORE_SHRINK_RETRY_MS 500 /* a shrink is asked again this long after an answer */
#define SX_REPCORE_EXPAND_RETRY_MS 250 /* an expansion is asked again this long after asking */

typedef enum {
    SX_REPCORE_NONE = 0,     /* not a replica of p in the map */
    SX_REPCORE_FOLLOWER = 1, /* a replica, another worker leads */
    SX_REPCORE_LEADER = 2,   /* the map names this worker leader */
} sx_repcore_role;

/* "none", "follower" or "leader" (static strings). */
const char *sx_repcore_role_name(sx_repcore_role role);

/* A replica of p as a map names it. address is borrowed: for the call, or,
 * once sx_repcore_lead copied it into a peer, for as long as that leadership
 * lasts (the driver holds the map it came from). */
typedef struct sx_repcore_replica {
    int32_t worker;
    uint64_t incarnation; /* the worker's process */
    const char *address;
} sx_repcore_replica;

/* Partition p in one map version. Arrays are borrowed for the call. */
typedef struct sx_repcore_map {
    uint64_t epoch;
    uint64_t isr_version;
    int32_t leader; /* -1: none */
    const sx_repcore_replica *replicas;
    uint32_t nreplicas;
    const int32_t *isr;
    uint32_t nisr;
    uint32_t min_isr;
} sx_repcore_map;

/* A ChangeIsr to ask the coordinator for: compare-and-set at (epoch,
 * isr_version), the ISR becoming isr[0..nisr). */
typedef struct sx_repcore_isr_change {
    uint64_t epoch;
    uint64_t isr_version;
    int32_t isr[SX_MAX_REPLICAS];
    uint64_t incarnations[SX_MAX_REPLICAS]; /* isr[i]'s process as this leadership
                                              verified it: ours, or its session's */
    uint32_t nisr;
} sx_repcore_isr_change;

/* A leader's knowledge of one follower (one session). */
typedef struct sx_repcore_peer {
    sx_repcore_replica who;
    uint64_t match;           /* it holds our log up to here, verified in this epoch */
    bool synced;              /* match is known */
    uint64_t last_ack_ms;     /* last acknowledged send (or when the leadership began) */
    uint64_t last_send_ms;    /* last answered or failed send */
    uint64_t sent_commit;     /* the hw it acknowledged */
    uint64_t shrink_asked_ms; /* last shrink asked for it, 0: none since its last ack */
    uint64_t applied;         /* its applied offset as its last answer in this epoch said */
    bool applied_known;       /* it answered an Append of this leadership */
} sx_repcore_peer;

/* One replica's replication state. Zeroed plus sx_repcore_init is a NONE
 * replica. Fields are readable by the caller; change them only through the
 * functions below. */
typedef struct sx_repcore {
    uint32_t lag_timeout_ms;   /* an ISR follower silent this long while behind is dropped */
    int32_t self;              /* this worker's index in the last map taken, -1 before */
    uint64_t self_incarnation; /* this process, as that map names it */

    /* from the map (and the coordinator's answers to our ISR changes) */
    sx_repcore_role role;
    uint64_t epoch; /* the map's epoch of p */
    uint64_t isr_version;
    int32_t isr[SX_MAX_REPLICAS];
    uint32_t nisr;
    uint32_t min_isr;
    int32_t pending[SX_MAX_REPLICAS]; /* asked into the ISR, not yet shown in or out */
    uint32_t npending;

    /* leader */
    uint64_t hw;          /* commit offset: only rises within a leadership */
    uint64_t epoch_start; /* first offset of our epoch */
    bool fenced;          /* a follower knows a newer epoch */
    sx_repcore_peer peers[SX_MAX_REPLICAS];
    uint32_t npeers;
    uint64_t expand_asked_ms; /* last expansion asked, 0: none this leadership */
    uint64_t index_hold;      /* the floor stays at or below this; 0: no hold */

    /* follower */
    uint64_t known_epoch;    /* highest epoch any leader or map has shown us */
    uint64_t verified;       /* our log matches the leader's up to here, in verified_epoch */
    uint64_t verified_epoch; /* the epoch whose leader verified it */
    uint64_t leader_commit;  /* as last heard */
} sx_repcore;

/* A replica that knows epochs up to known_epoch (its epoch table's highest). */
void sx_repcore_init(sx_repcore *c, uint64_t known_epoch, uint32_t lag_timeout_ms);

/* ---------------------------------------------------------------- roles -- */

/* What a map asks of the driver, in this order: stop leading (stop sessions
 * and the appender, fail waiting writes, then sx_repcore_unlead), take the
 * map (sx_repcore_take_map), then lead (record the epoch, sx_repcore_lead)
 * or, still leading, recompute the commit point (the ISR may have shrunk). */
typedef struct sx_repcore_map_plan {
    bool stop_leading;
    bool lead;
    bool recommit;
} sx_repcore_map_plan;

sx_repcore_map_plan sx_repcore_plan_map(const sx_repcore *c, int32_t self, const sx_repcore_map *m);

/* The leadership's sessions are gone: forget the peers. */
void sx_repcore_unlead(sx_repcore *c);

/* Takes p's entry of a newer map: role (except LEADER, which sx_repcore_lead
 * takes), epoch, ISR, min_isr; pending additions end on a new epoch, a role
 * other than leader, or once the map shows them in the ISR or not among the
 * replicas. SX_INVALID_ARGUMENT, nothing changed, when the map holds more
 * than SX_MAX_REPLICAS replicas or ISR members (a map the partmap checked
 * never does). */
sx_status sx_repcore_take_map(sx_repcore *c, int32_t self, const sx_repcore_map *m, sx_err *err);

/* Starts leading at m's epoch (after sx_repcore_take_map(m)), once the driver
 * recorded (epoch, leo + 1) in the epoch table: hw = max(commit, applied) as
 * persisted, never the leo (rule 7); one unsynced peer per replica other than
 * self, in map order, its last ack counted from now_ms. */
void sx_repcore_lead(sx_repcore *c, const sx_repcore_map *m, uint64_t commit, uint64_t applied,
                     uint64_t leo, uint64_t now_ms);

/* Leading: the map names us, and no follower has shown a newer epoch. */
bool sx_repcore_leading(const sx_repcore *c);
/* The commit offset as this replica knows it: a leader's hw, a follower's
 * leader's as last heard. */
uint64_t sx_repcore_commit(const sx_repcore *c);

/* Rule 7 for reads: whether a leader's applied state (documents, local
 * indexes) may be served as the partition's, with applied its applied offset.
 * Its log up to the start of its epoch (epoch_start - 1) may hold entries that
 * earlier leaders committed and acknowledged while the commit offset it
 * persisted lags them; they are committed in this epoch once hw reaches
 * epoch_start - 1 (followers answered in this epoch), and readable once
 * applied. False for anything but a leader that is not fenced. */
bool sx_repcore_serving(const sx_repcore *c, uint64_t applied);

/* ------------------------------------------------------------- leader -- */

/* Whether a write may be queued: SX_OK; SX_ABORTED when not leading (or
 * fenced); SX_FAILED_PRECONDITION when the ISR is below min_isr. */
sx_status sx_repcore_admit(const sx_repcore *c);

/* Rule 4: raises hw towards min(leo, match of every ISR and pending
 * follower) when the ISR has min_isr members and every such follower synced
 * in this epoch. Returns whether hw rose. */
bool sx_repcore_update_hw(sx_repcore *c, uint64_t leo);

/* What session `slot` does next. */
typedef struct sx_repcore_step {
    bool idle; /* nothing new: wait up to wait_ms (or until woken), then ask again */
    uint64_t wait_ms;
    bool shrink; /* first ask the coordinator for `change` (drops the follower) */
    sx_repcore_isr_change change;
    uint64_t epoch;  /* send an Append at our epoch, */
    uint64_t prev;   /* after prev (with prev's epoch), */
    bool entries;    /* with entries from prev + 1 (else a probe or heartbeat), */
    uint64_t commit; /* and our hw */
} sx_repcore_step;

/* Decides session slot's next step at now_ms with the log ending at leo. A
 * shrink decision counts as asked at now_ms. */
void sx_repcore_session_step(sx_repcore *c, uint32_t slot, uint64_t leo, uint64_t now_ms,
                             sx_repcore_step *out);

/* The coordinator answered the shrink of step.change for slot at now_ms
 * (accepted or not): the retry interval counts from now; accepted, the
 * follower is no longer pending. Install the answer's ISR with
 * sx_repcore_isr_accepted. */
void sx_repcore_shrink_answered(sx_repcore *c, uint32_t slot, bool accepted, uint64_t now_ms);

/* The coordinator accepted one of our ISR changes and answered with p's
 * ISR at isr_version: taken when it is for our epoch and newer than ours.
 * SX_INVALID_ARGUMENT (nothing taken) for more than SX_MAX_REPLICAS members.
 * The caller then runs sx_repcore_update_hw. */
sx_status sx_repcore_isr_accepted(sx_repcore *c, uint64_t epoch, uint64_t isr_version,
                                  const int32_t *isr, size_t nisr, sx_err *err);

/* A send of session slot ended at now_ms (answered or not). */
void sx_repcore_sent(sx_repcore *c, uint32_t slot, uint64_t now_ms);

/* The follower accepted step `sent` (n entries of it) at now_ms: match =
 * prev + n, synced. Returns whether hw rose (leo: our log end now). */
bool sx_repcore_acked(sx_repcore *c, uint32_t slot, const sx_repcore_step *sent, size_t n,
                      uint64_t now_ms, uint64_t leo);

/* The follower's answer to a send of slot said it has applied `applied`. */
void sx_repcore_peer_applied(sx_repcore *c, uint32_t slot, uint64_t applied);

/* The log floor to announce (see "log retention" above): entries below it
 * are applied by every replica this leadership must still send to, less the
 * margin, and beyond the retention asked (keep_entries < 0: keep everything).
 * 0: trim nothing. applied and leo are ours. Never rises above our applied.
 * A follower outside the ISR that has not answered holds it at 0 until
 * lag_timeout after the leadership began (now_ms: the time now). */
uint64_t sx_repcore_log_floor(const sx_repcore *c, uint64_t applied, uint64_t leo,
                              int64_t keep_entries, uint64_t now_ms);

/* The index streams of this leader need the log from `from` on (the lowest
 * watermark a term partition acknowledged, plus one); 0: they hold nothing.
 * The floor never rises above it. Set by the index shipper each round. */
void sx_repcore_hold_for_indexes(sx_repcore *c, uint64_t from);

/* The follower's entry at prev differs: the common prefix of both logs, from
 * both whole epoch tables (sx_plog_common_prefix), becomes its match (synced:
 * entries are sent from there). Returns that match. */
uint64_t sx_repcore_mismatched(sx_repcore *c, uint32_t slot, const sx_epoch_start *ours,
                               size_t nours, uint64_t our_leo, const sx_epoch_start *theirs,
                               size_t ntheirs, uint64_t their_leo);

/* A follower refused our epoch (rule 2). Returns whether this newly fenced us. */
bool sx_repcore_fence(sx_repcore *c);

/* Whether an expansion may be worth asking now (cheap, to call after every
 * ack): leading, past the retry interval, and some peer outside the ISR
 * caught up. sx_repcore_expand decides. */
bool sx_repcore_expand_due(const sx_repcore *c, uint64_t now_ms);

/* What the driver knows of the newest map and the lease, for expansion. */
typedef struct sx_repcore_newest {
    bool lease_valid;
    int32_t leader;                     /* p's leader in the newest map */
    const sx_repcore_replica *replicas; /* p's replicas there (incarnations), borrowed */
    uint32_t nreplicas;
} sx_repcore_newest;

/* Rule 3: every peer outside the ISR that is caught up (match >= max(hw,
 * epoch_start - 1)), acknowledged within lag_timeout / 2 of now_ms, and is the
 * incarnation the newest map names, while the lease is valid and the newest
 * map still names us leader. Returns true with out = the ISR plus those, at
 * our (epoch, isr_version): they are pending from now on, and the retry
 * interval starts. */
bool sx_repcore_expand(sx_repcore *c, uint64_t now_ms, const sx_repcore_newest *newest,
                       sx_repcore_isr_change *out);

/* ----------------------------------------------------------- follower -- */

/* A leader's Append, as the core needs it (arrays borrowed for the call). */
typedef struct sx_repcore_append {
    uint64_t epoch;
    uint64_t prev_offset;
    uint64_t prev_epoch;
    uint64_t commit;
    const uint64_t *epochs; /* of the entries prev_offset + 1 ... */
    size_t n;
} sx_repcore_append;

/* Our log where the Append lands. */
typedef struct sx_repcore_local {
    uint64_t leo;
    bool prev_read;         /* prev_offset <= leo and its epoch was read */
    uint64_t prev_epoch;    /* our entry's at prev_offset (0 at offset 0) */
    const uint64_t *epochs; /* ours at prev_offset + 1 ..., 0 where unreadable */
    size_t nepochs;         /* min(n, leo - prev_offset) when prev_offset <= leo, else 0 */
} sx_repcore_local;

typedef enum {
    SX_REPCORE_APPEND_STALE,    /* epoch below what we know: refuse (FAILED_PRECONDITION) */
    SX_REPCORE_APPEND_LEADING,  /* we lead an older epoch: now fenced; refuse (UNAVAILABLE) */
    SX_REPCORE_APPEND_MISMATCH, /* prev does not hold prev's epoch: answer our epoch table */
    SX_REPCORE_APPEND_ACCEPT,   /* truncate if asked, append [append_from, n), follow_done */
} sx_repcore_append_verdict;

typedef struct sx_repcore_append_plan {
    sx_repcore_append_verdict verdict;
    uint64_t known_epoch; /* STALE: the highest epoch we know; LEADING: the epoch we lead */
    bool truncate;        /* remove every entry above truncate_to first */
    uint64_t truncate_to;
    size_t append_from; /* entries before it are held already */
} sx_repcore_append_plan;

/* Decides what an Append does (fence, new epoch, prev check, skip, truncate). */
void sx_repcore_follow_plan(sx_repcore *c, const sx_repcore_append *a, const sx_repcore_local *l,
                            sx_repcore_append_plan *out);

/* The accepted Append a is written: verified rises to prev + n. Returns the
 * apply bound, min(a's commit, verified) (rule 7). */
uint64_t sx_repcore_follow_done(sx_repcore *c, const sx_repcore_append *a);

#endif
