/* wl_history.h: the history file of the chaos workload (sx_chaos_workload):
 * one line per operation a writer made, written while the workload runs and
 * read back by `check`.
 *
 *   # sx_chaos_workload history 1 run=TAG seed=S writers=N keys=K groups=G index=NAME t0=MS
 *   WRITER OP KIND KEY VALUE START END OUTCOME TOKEN STATUS MESSAGE...
 *   # end t1=MS
 *
 *   WRITER   writer number, 0..N-1; its keys and values carry it (TAG-wW-kK, TAG-wW-opM)
 *   OP       the writer's operation number, from 1, in the order it made them
 *   KIND     put (a key the writer last left deleted or never wrote), overwrite,
 *            delete, or bad (a Put the server must refuse: a field with an empty name)
 *   KEY      the document id
 *   VALUE    the value of field v that the Put wrote ("-" for a delete); field g
 *            holds sx_hist_group(VALUE, G)
 *   START, END  monotonic ms (CLOCK_MONOTONIC) around the call
 *   OUTCOME  ok (acknowledged), fail (the library's rules prove it was not
 *            applied), unknown (it may or may not have been applied)
 *   TOKEN    PARTITION:OFFSET of an ok write, else "-"
 *   STATUS   the call's status name (OK, UNAVAILABLE, ...)
 *   MESSAGE  the error message to the end of the line ("-" when none)
 *
 * Lines starting with '#' other than the header are comments; the trailer
 * (written when the run ends) gives the end time for the availability figures.
 * Keys and values never hold spaces. Not here: running or checking (wl.h).
 * Not thread-safe: one owner per sx_history; sx_hist_format is pure.
 */
#ifndef SX_WL_HISTORY_H
#define SX_WL_HISTORY_H

#include "mem.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a writer did. */
typedef enum {
    SX_HIST_PUT,       /* a Put of a key the writer left deleted, or never wrote */
    SX_HIST_OVERWRITE, /* a Put of a key the writer last put */
    SX_HIST_DELETE,    /* a Delete */
    SX_HIST_BAD,       /* a Put with an invalid field: must be refused */
} sx_hist_kind;

/* What the call proved. */
typedef enum {
    SX_HIST_OK,      /* acknowledged: applied, with a write token */
    SX_HIST_FAIL,    /* definitely not applied */
    SX_HIST_UNKNOWN, /* may or may not have been applied */
} sx_hist_outcome;

/* One operation (one line). Strings are borrowed from the history's arena. */
typedef struct sx_hist_op {
    uint32_t writer;
    uint64_t op;
    sx_hist_kind kind;
    const char *key;
    const char *value; /* NULL for a delete */
    uint64_t start_ms, end_ms;
    sx_hist_outcome outcome;
    bool has_token;
    uint32_t partition; /* the token, when has_token */
    uint64_t offset;
    const char *status; /* status name */
    const char *msg;    /* "" when none */
} sx_hist_op;

/* A history read back. Valid when zeroed; free with sx_hist_free. */
typedef struct sx_history {
    char run[64];
    uint64_t seed;
    uint32_t writers, keys, groups;
    char index[64];
    uint64_t t0_ms, t1_ms; /* run start; end (0: no trailer) */
    sx_hist_op *ops;       /* in file order */
    size_t n, cap;
    sx_arena arena;
} sx_history;

const char *sx_hist_kind_name(sx_hist_kind k);
const char *sx_hist_outcome_name(sx_hist_outcome o);

/* The group value (field g) of a put value: "g" and sx_hash64(value) % groups,
 * written into out (cap >= 16). Pure. */
const char *sx_hist_group(const char *value, uint32_t groups, char *out, size_t cap);

/* The header line (with its newline) of h's run fields into out. Pure. */
void sx_hist_format_header(const sx_history *h, char *out, size_t cap);

/* One operation's line (with its newline) into out; newlines in the message
 * become spaces, and a line longer than cap is cut (its message). Pure. */
void sx_hist_format(const sx_hist_op *op, char *out, size_t cap);

/* Reads the history file at path into *h (zeroed first). SX_INVALID_ARGUMENT
 * naming the line for a malformed line or a missing header, SX_NOT_FOUND when
 * the file cannot be opened. On error *h is freed. */
sx_status sx_hist_read(const char *path, sx_history *h, sx_err *err);

/* Parses one line (no newline) into h: the header, the trailer, a comment
 * (ignored) or an operation (appended). SX_INVALID_ARGUMENT naming what is
 * wrong. */
sx_status sx_hist_parse_line(sx_history *h, char *line, sx_err *err);

void sx_hist_free(sx_history *h); /* empty (zeroed) again; accepts a zeroed history */

#endif
