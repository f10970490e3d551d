/* validate.h: checks of client requests against the contract's limits.
 *
 * Every Put, Delete and Get is checked here before anything is written or
 * looked up (DESIGN.md, "Bad input"): id and field name sizes, value presence
 * and sizes, UTF-8, counts per request, packed sizes. The limits are in
 * common/sx_limits.h. Value types against an index's type are not checked here:
 * a mistyped value is stored and counted, not rejected.
 *
 * Pure functions: no I/O, no locks, no global state, no allocation (stack
 * only); any thread may call them. The messages they give are meant for the
 * client: they name what is wrong by position and name and state the limit,
 * e.g. `docs[3] (id "abc"): fields[7] ("title"): string value is 5000 bytes;
 * the limit is 4096`. Ids and names quoted in messages are cut to about 40
 * bytes and escaped (quotes, backslashes, control and invalid bytes), so any
 * input gives a readable, valid UTF-8 message.
 *
 * Every check (sx_validate_*, but sx_validate_quote) returns SX_OK, or
 * SX_INVALID_ARGUMENT with err (optional) set to the message of the first
 * problem found.
 *
 * The daemons link it, and so does the tool: `shardex load` checks each
 * record with these functions before sending it (client/load_parse.c).
 */
#ifndef SX_VALIDATE_H
#define SX_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "shardex/v1/shardex.pb-c.h"
#include "status.h"
#include "sx_limits.h"

/* True when s[0..n) is strict UTF-8: shortest forms only, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence, no stray
 * continuation byte. A NUL byte is U+0000 and so valid here; protobuf-c
 * strings are NUL-terminated C strings, so the ids, names and values this
 * module sees never contain one. s may be NULL when n is 0. */
bool sx_utf8_valid(const char *s, size_t n);

/* The offset of the first byte of s[0..n) that does not start a well-formed
 * sequence (by sx_utf8_valid's rule), or n when s is valid UTF-8. */
size_t sx_utf8_invalid_at(const char *s, size_t n);

/* Room for what sx_validate_quote writes: 40 bytes, "...", NUL. */
#define SX_VALIDATE_QUOTE_BUF 44

/* Writes s[0..n) to out (SX_VALIDATE_QUOTE_BUF bytes) for showing between
 * double quotes in a message, as this module's messages show ids and names:
 * valid UTF-8 as is but `"` and `\` escaped, controls and bytes that are not
 * UTF-8 as \xNN or \u00NN, cut at a sequence boundary after about 40 bytes
 * with "...". Returns out. */
const char *sx_validate_quote(char *out, const char *s, size_t n);

/* Checks one id as Get receives it: 1..SX_ID_MAX_BYTES bytes of UTF-8.
 * id may be NULL (treated as empty). Message: "id is empty; ids are 1..256
 * bytes" and the like. */
sx_status sx_validate_id(const char *id, sx_err *err);

/* Checks one document, docs[index] of its request (index only names it in
 * the message): the id as sx_validate_id; at most SX_DOC_FIELDS_MAX fields;
 * each field's name 1..SX_FIELD_NAME_MAX_BYTES bytes of UTF-8; each field has
 * a value with its kind set (a Field without one is invalid); string values
 * UTF-8 of at most SX_STRING_VALUE_MAX_BYTES; the packed document at most
 * SX_DOC_MAX_BYTES. Messages start with `docs[<index>]` and, when the id is
 * not empty, ` (id "<id>")`. Field names need not be unique here. */
sx_status sx_validate_document(const Shardex__V1__Document *doc, size_t index, sx_err *err);

/* Checks a document as sx_validate_document does, for a document that is not
 * in a request: messages do not name it (`id is empty; ...`, `fields[7]
 * ("title"): ...`, `document is ... bytes packed; ...`), the caller says where
 * it came from (`shardex load`: its line). */
sx_status sx_validate_document_unnamed(const Shardex__V1__Document *doc, sx_err *err);

/* Checks one field, fields[index] of its document, as sx_validate_document
 * checks each: name, value, kind, string size and UTF-8. Messages start with
 * `fields[<index>]` and, when the name is not empty, ` ("<name>")`. For
 * checking a document field by field as it is built. */
sx_status sx_validate_field(const Shardex__V1__Field *f, size_t index, sx_err *err);

/* Checks a Put: 1..SX_REQUEST_DOCS_MAX documents, the packed request at most
 * SX_REQUEST_MAX_BYTES, then every document in order (the first bad one is
 * reported). Request-level problems read "docs: ..." or "request: ...".
 * The same id may appear more than once in one request: that is allowed and
 * the later document wins, as if sent in order in separate Puts. */
sx_status sx_validate_put(const Shardex__V1__PutRequest *req, sx_err *err);

/* Checks a Delete: 1..SX_REQUEST_DOCS_MAX ids, the packed request at most
 * SX_REQUEST_MAX_BYTES, then every id as sx_validate_id, in order; messages
 * name the id by position: `ids[4] (id "x"): ...`. Repeated ids are allowed. */
sx_status sx_validate_delete(const Shardex__V1__DeleteRequest *req, sx_err *err);

#endif
