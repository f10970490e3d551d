/* docs.c: Put and Get for integration tests. */
#include "docs.h"

#include "hash.h"
#include "mem.h"
#include "shardex/internal/v1/replication.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)

sx_status sx_docs_put(sx_cluster *c, uint32_t via, const sx_doc_spec *docs, size_t n,
                      uint64_t timeout_ms, Shardex__V1__PutResponse **out, sx_err *err)
{
    Shardex__V1__Document *d = sx_calloc(n, sizeof(*d));
    Shardex__V1__Document **dp = sx_calloc(n, sizeof(*dp));
    Shardex__V1__Field *f = sx_calloc(3 * n, sizeof(*f));
    Shardex__V1__Field **fp = sx_calloc(3 * n, sizeof(*fp));
    Shardex__V1__Value *v = sx_calloc(3 * n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        shardex__v1__document__init(&d[i]);
        d[i].id = (char *)docs[i].id;
        for (size_t k = 0; k < 3; k++) {
            shardex__v1__field__init(&f[3 * i + k]);
            shardex__v1__value__init(&v[3 * i + k]);
            f[3 * i + k].value = &v[3 * i + k];
            fp[3 * i + k] = &f[3 * i + k];
        }
        f[3 * i].name = "text";
        v[3 * i].kind_case = SHARDEX__V1__VALUE__KIND_S;
        v[3 * i].s = (char *)docs[i].text;
        f[3 * i + 1].name = "n";
        v[3 * i + 1].kind_case = SHARDEX__V1__VALUE__KIND_I;
        v[3 * i + 1].i = docs[i].n;
        f[3 * i + 2].name = "pad";
        v[3 * i + 2].kind_case = SHARDEX__V1__VALUE__KIND_S;
        v[3 * i + 2].s = (char *)docs[i].pad;
        d[i].n_fields = docs[i].pad ? 3 : 2;
        d[i].fields = &fp[3 * i];
        dp[i] = &d[i];
    }
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    req.docs = dp;
    req.n_docs = n;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->worker_addr[via], SHARDEX_SVC, "Put", &req.base, &resp, &o, err);
    if (out)
        *out = (void *)resp;
    else
        sx_rpc_free(resp);
    free(d);
    free(dp);
    free(f);
    free(fp);
    free(v);
    return st;
}

sx_status sx_docs_get(sx_cluster *c, uint32_t via, const char *id,
                      const Shardex__V1__WriteToken *after, Shardex__V1__GetResponse **out,
                      sx_err *err)
{
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    Shardex__V1__WriteToken *a[1] = {(Shardex__V1__WriteToken *)after};
    if (after) {
        req.after = a;
        req.n_after = 1;
    }
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->worker_addr[via], SHARDEX_SVC, "Get", &req.base, &resp, &o, err);
    *out = (void *)resp;
    return st;
}

sx_status sx_docs_write_direct(sx_cluster *c, uint32_t via, uint32_t p, sx_err *err)
{
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    d.id = "direct";
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
    op.put = &d;
    uint8_t buf[64];
    ProtobufCBinaryData b = {protobuf_c_message_pack(&op.base, buf), buf};
    Shardex__Internal__V1__WriteRequest req = SHARDEX__INTERNAL__V1__WRITE_REQUEST__INIT;
    req.partition = p;
    req.ops = &b;
    req.n_ops = 1;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 1500};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->worker_addr[via], &shardex__internal__v1__replication__descriptor,
                      "Write", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

const char *sx_doc_text(const Shardex__V1__Document *d)
{
    for (size_t i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i]->name, "text") == 0)
            return d->fields[i]->value->s;
    return "";
}

void sx_docs_for_partition(const sx_cluster *c, uint32_t p, const char *tag, sx_doc_spec *d,
                           size_t n)
{
    size_t k = 0;
    for (uint32_t i = 0; k < n; i++) {
        char id[64];
        int len = snprintf(id, sizeof(id), "%.40s-%u", tag, i);
        if (sx_partition_of(id, (size_t)len, c->opts.partitions) != p)
            continue;
        memcpy(d[k].id, id, sizeof(id));
        snprintf(d[k].text, sizeof(d[k].text), "%.40s text %zu", tag, k);
        d[k].n = (int64_t)k;
        d[k].pad = NULL;
        k++;
    }
}
