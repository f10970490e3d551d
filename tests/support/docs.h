/* docs.h: documents for integration tests: a small spec of a document, and
 * Put/Get through a chosen worker of a test cluster. */
#ifndef SX_TEST_DOCS_H
#define SX_TEST_DOCS_H

#include "cluster.h"
#include "shardex/v1/shardex.pb-c.h"

/* A document with fields "text" (string), "n" (int) and, when pad is set, "pad". */
typedef struct sx_doc_spec {
    char id[64];
    char text[64];
    int64_t n;
    const char *pad;
} sx_doc_spec;

/* Fills d[0..n) with documents whose ids fall in log partition p of c
 * ("<tag>-<i>" for increasing i, skipping the others), texts "<tag> text <k>",
 * n = k. */
void sx_docs_for_partition(const sx_cluster *c, uint32_t p, const char *tag, sx_doc_spec *d,
                           size_t n);

/* Puts docs through worker `via`; *out (if not NULL) receives the response
 * (sx_rpc_free it; NULL on error). */
sx_status sx_docs_put(sx_cluster *c, uint32_t via, const sx_doc_spec *docs, size_t n,
                      uint64_t timeout_ms, Shardex__V1__PutResponse **out, sx_err *err);

/* Gets id through worker `via`, after the token if not NULL (10 s deadline).
 * *out receives the response (sx_rpc_free it). */
sx_status sx_docs_get(sx_cluster *c, uint32_t via, const char *id,
                      const Shardex__V1__WriteToken *after, Shardex__V1__GetResponse **out,
                      sx_err *err);

/* Writes one Put (of the document "direct") for partition p straight to
 * worker via's Replication.Write, bypassing routing, with a 1.5 s deadline:
 * what a (maybe deposed) leader acknowledges. Returns the call's status. */
sx_status sx_docs_write_direct(sx_cluster *c, uint32_t via, uint32_t p, sx_err *err);

/* The "text" field of a document, or "". */
const char *sx_doc_text(const Shardex__V1__Document *d);

#endif
