/* load_parse.h: the input side of `shardex load`: lines from a file
 * descriptor, and the two record formats made of them, JSON Lines and Debian
 * control stanzas, turned into documents and deletes checked against the
 * limits the server enforces, with the server's checks (common/validate.h), so
 * that a record the server would refuse never reaches a batch. `shardex put`
 * parses its JSON documents here too (sx_load_parse_json_line).
 *
 * Not here: sending (load.c, through libshardex's bulk writer), progress and
 * the summary. The parsers do no I/O; the line reader only read(2)s its fd.
 * Nothing is shared between threads: one owner per reader and parser.
 *
 * JSON Lines, one record per line (blank lines are skipped):
 *   {"id": "a", "fields": {"name": "x", "tags": ["p", "q"], "n": -3}}
 *   {"delete": "a"}
 * An id is a string (or an integer, taken as its decimal text); "fields" is
 * optional; a value is a string, an integer (int64) or an array of those (a
 * multi-valued field; [] gives no value). Anything else (floats, true/false,
 * null, nested objects or arrays, other keys, duplicate keys) is refused.
 *
 * Debian control stanzas (deb822: dpkg's status, `apt-cache dumpavail`):
 * `Name: value` lines, a stanza per block of lines separated by blank (or
 * all-whitespace) lines; a line starting with a space or tab continues the
 * field before it and is joined to it with "\n" (less that first space/tab,
 * trailing whitespace cut: " ." stays "."); lines starting with '#' are
 * comments. The id is the value of opts.id_field. A name is 1..128 bytes of
 * printable ASCII without ':' (deb822), not starting with '-' or '#', kept as
 * written ("Installed-Size"); option names match it case-insensitively, as
 * deb822 says. A repeated name in a stanza is refused.
 *
 * A value is a string unless its field is an int field: opts.int_fields
 * (strict: a string that is not a decimal int64 refuses the record) or
 * opts.int_if_parses (a string that parses becomes an int, others stay
 * strings; meant for the fields of the cluster's int indexes). JSON integers
 * are ints whatever the options.
 */
#ifndef SX_LOAD_PARSE_H
#define SX_LOAD_PARSE_H

#include "shardex.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line the reader returns: a JSON record of a 1 MiB document with
 * every byte escaped fits; a longer line is reported, not loaded. */
#define SX_LOAD_MAX_LINE (8u * 1024 * 1024)

/* --------------------------------------------------------------- records -- */

/* What a record is. */
typedef enum {
    SX_LOAD_PARSE_REC_NONE = 0, /* nothing (a blank line, or no stanza ended) */
    SX_LOAD_PARSE_REC_PUT,      /* doc is set */
    SX_LOAD_PARSE_REC_DELETE,   /* id is set */
    SX_LOAD_PARSE_REC_BAD,      /* msg says why; nothing of the record is to be written */
} sx_load_parse_rec_kind;

typedef struct sx_load_parse_rec {
    sx_load_parse_rec_kind kind;
    uint64_t line;              /* first line of the record; BAD: the line at fault */
    Shardex__V1__Document *doc; /* PUT: owned (sx_load_parse_rec_clear frees it) */
    char *id;                   /* DELETE: owned */
    size_t truncated;           /* values cut to SX_STRING_VALUE_MAX_BYTES (opts.truncate) */
    char msg[SX_ERR_MSG_MAX];   /* BAD: the problem, without the line number */
} sx_load_parse_rec;

/* Frees what r holds and zeroes it. Accepts a zeroed record. */
void sx_load_parse_rec_clear(sx_load_parse_rec *r);

/* Options of both formats; valid when zeroed (for JSON Lines). Name lists are
 * NULL-terminated (NULL: none) and borrowed while parsing. */
typedef struct sx_load_parse_opts {
    const char *id_field;             /* Debian: required */
    const char *const *int_fields;    /* strict int fields */
    const char *const *int_if_parses; /* lenient int fields */
    const char *const *only_fields;   /* NULL: every field; else only these (the id is
                                         taken from id_field whether listed or not) */
    bool truncate;                    /* cut longer string values at a UTF-8 boundary
                                         instead of refusing the record */
    bool no_limits;                   /* leave the size and count limits
                                         (sx_limits.h) to the server: `shardex put`,
                                         which reports its refusals, and tests,
                                         which provoke them */
    bool string_ids;                  /* JSON: an id is a string, not an integer
                                         (`shardex put`) */
} sx_load_parse_opts;

/* Parses a decimal int64: optional '-' or '+', digits only, no spaces, no
 * overflow. */
bool sx_load_parse_parse_int(const char *s, size_t n, int64_t *out);

/* ------------------------------------------------------------ JSON Lines -- */

/* Parses one line (len bytes, without its newline; a trailing '\r' is
 * ignored) numbered lineno into *out (zeroed or cleared first). Returns the
 * kind: NONE for a blank line. The text may span lines (JSON whitespace):
 * `shardex put` gives it each of its JSON arguments, numbered from 1. */
sx_load_parse_rec_kind sx_load_parse_json_line(const sx_load_parse_opts *opts, const char *line,
                                               size_t len, uint64_t lineno, sx_load_parse_rec *out);

/* ---------------------------------------------------------------- Debian -- */

typedef struct sx_load_parse_deb sx_load_parse_deb;

/* A stanza parser; opts (with id_field) is borrowed for its life. Free with
 * sx_load_parse_deb_free. */
sx_load_parse_deb *sx_load_parse_deb_new(const sx_load_parse_opts *opts);
void sx_load_parse_deb_free(sx_load_parse_deb *d); /* accepts NULL */

/* Feeds one line (without its newline; a trailing '\r' is ignored). When it
 * ends a stanza (a blank line after one), *out (zeroed or cleared) gets the
 * stanza's record and that kind is returned; otherwise NONE. A stanza with
 * a problem is BAD, reported at the line of the first problem once the
 * stanza ends (so that skipping it skips all of its lines). */
sx_load_parse_rec_kind sx_load_parse_deb_feed(sx_load_parse_deb *d, const char *line, size_t len,
                                              uint64_t lineno, sx_load_parse_rec *out);

/* Feeds a line the reader could not return (too long): its stanza is BAD
 * with msg. */
void sx_load_parse_deb_feed_bad(sx_load_parse_deb *d, uint64_t lineno, const char *msg);

/* At the end of the input: the last stanza's record, if one is open. */
sx_load_parse_rec_kind sx_load_parse_deb_end(sx_load_parse_deb *d, sx_load_parse_rec *out);

/* ---------------------------------------------------------------- lines -- */

typedef struct sx_load_parse_reader sx_load_parse_reader;

/* What sx_load_parse_reader_next gives. */
typedef enum {
    SX_LOAD_PARSE_LINE,     /* *line, *len: a line without "\n" or "\r\n" */
    SX_LOAD_PARSE_TOO_LONG, /* a line of more than max_line bytes, consumed; *len is max_line */
    SX_LOAD_PARSE_EOF,      /* no more input */
    SX_LOAD_PARSE_ERROR,    /* read(2) failed: errno says why (EINTR: call again to go on) */
} sx_load_parse_result;

/* A reader of fd (not closed by it) with lines up to max_line bytes (0:
 * SX_LOAD_MAX_LINE). A UTF-8 byte order mark at the start is dropped. Free
 * with sx_load_parse_reader_free. */
sx_load_parse_reader *sx_load_parse_reader_new(int fd, size_t max_line);
void sx_load_parse_reader_free(sx_load_parse_reader *r); /* accepts NULL */

/* The next line, numbered from 1 in *lineno. *line is borrowed until the next
 * call and not NUL-terminated. A last line without a newline is a line. */
sx_load_parse_result sx_load_parse_reader_next(sx_load_parse_reader *r, const char **line,
                                               size_t *len, uint64_t *lineno);

/* The first byte that is not whitespace, without consuming anything; -1 at
 * the end of the input (or after max_line bytes of whitespace) or on a read
 * error. For telling JSON Lines ('{') from stanzas. */
int sx_load_parse_reader_peek(sx_load_parse_reader *r);

/* Bytes consumed so far (lines returned, with their newlines). */
uint64_t sx_load_parse_reader_bytes(const sx_load_parse_reader *r);

#endif
