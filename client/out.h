/* out.h: output helpers of the shardex tool, generic over what is printed:
 * aligned text tables for people, any protobuf-c message as a JSON object for
 * scripts, and base64 for bytes fields (page tokens).
 *
 * Not here: what a command prints (client/cmd_*.c), parsing (client/cmd.h).
 * Single-threaded; allocation failure aborts (mem.h).
 */
#ifndef SX_OUT_H
#define SX_OUT_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* ----------------------------------------------------------------- table -- */

/* A text table: a header row, then rows of cells, printed with each column as
 * wide as its widest cell (counted in UTF-8 code points), two spaces between
 * columns and no trailing blanks. Create, add columns, then add cells row by
 * row (sx_table_cell fills the next column; a row is complete when every
 * column has a cell), print, free. */
typedef struct sx_table sx_table;

typedef enum {
    SX_ALIGN_LEFT,  /* text */
    SX_ALIGN_RIGHT, /* numbers */
} sx_align;

sx_table *sx_table_new(void);
/* Adds a column; only before the first cell. header is copied. */
void sx_table_col(sx_table *t, const char *header, sx_align align);
/* The next cell, printf-formatted and copied; a NULL or empty result prints as
 * nothing. Control characters are shown as '?', so that a value cannot break
 * the layout. */
void sx_table_cell(sx_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Complete rows so far. */
size_t sx_table_rows(const sx_table *t);
/* Prints the header (unless !header) and every row to out, each line
 * starting with `indent` spaces. */
void sx_table_print(const sx_table *t, FILE *out, int indent, bool header);
void sx_table_free(sx_table *t); /* accepts NULL */

/* Number of UTF-8 code points in s (bytes that do not continue a sequence). */
size_t sx_out_width(const char *s);

/* ------------------------------------------------------------------ json -- */

/* msg as a JSON object, after the proto3 JSON mapping but with the proto
 * field names (snake_case), every field present (defaults included: 0, false,
 * "", [] ), except unset sub-messages and unset oneof members, which are
 * left out. Enums are their value names ("MODE_GLOBAL"), bytes are standard
 * base64, 64-bit integers are JSON numbers (an uint64 above INT64_MAX is a
 * decimal string). Caller json_decrefs it. */
json_t *sx_out_pb_json(const ProtobufCMessage *msg);

/* Prints j to out as one indented JSON object and a newline (keys in
 * insertion order; reals with 15 significant digits, so 0.58 prints as such). Returns false on a
 * write error. */
bool sx_out_json_print(const json_t *j, FILE *out);

/* ---------------------------------------------------------------- base64 -- */

/* Standard base64 (RFC 4648, with padding) of n bytes; caller frees. */
char *sx_out_base64(const void *p, size_t n);

/* Decodes standard or URL-safe base64, padding optional, into a new buffer
 * (caller frees *out; *n its length). False for anything else. */
bool sx_out_base64_decode(const char *s, unsigned char **out, size_t *n);

#endif
