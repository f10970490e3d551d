/* sx_limits.h: the limits of shardex's client contract (shardex.v1).
 *
 * Every request is checked against these before anything is written
 * (common/validate.h does the checking); a request over a limit gets
 * INVALID_ARGUMENT naming the limit. Clients may rely on these numbers: raise
 * them only with care, never lower them. Not "limits.h": common/ is on the
 * include path and that name would hide the C library's <limits.h>.
 * Sizes are in bytes; "packed" means the protobuf wire size
 * (protobuf_c_message_get_packed_size).
 */
#ifndef SX_LIMITS_H
#define SX_LIMITS_H

/* Document ids and field names (bytes of UTF-8, never empty). */
#define SX_ID_MAX_BYTES 256         /* an id is 1..256 bytes of UTF-8 */
#define SX_FIELD_NAME_MAX_BYTES 128 /* a field name is 1..128 bytes of UTF-8 */

/* Documents. */
#define SX_STRING_VALUE_MAX_BYTES 4096 /* a string value is at most 4096 bytes of UTF-8 */
#define SX_DOC_FIELDS_MAX 256          /* fields in one document */
#define SX_DOC_MAX_BYTES (1024 * 1024) /* packed Document, 1 MiB */

/* Requests. */
#define SX_REQUEST_DOCS_MAX 10000               /* documents per Put, ids per Delete */
#define SX_REQUEST_MAX_BYTES (16 * 1024 * 1024) /* packed Put or Delete request, 16 MiB */

/* Indexes. */
#define SX_MAX_TERM_PARTITIONS 4096 /* term partitions of one global index, as created */

/* Queries. */
#define SX_QUERY_LIMIT_DEFAULT 100 /* hits per page when the request's limit is 0 */
#define SX_QUERY_LIMIT_MAX 10000   /* the largest limit a query may ask for */

#endif
