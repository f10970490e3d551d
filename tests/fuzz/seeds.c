/* seeds.c: writes the seed corpora of the fuzz targets, in the format each
 * target reads (its header says which), built with the project's own
 * encoders so that they are what the daemons and the tool really see:
 *
 *   sx_fuzz_seeds DIR      (DIR: tests/fuzz/corpus)
 *
 * writes DIR/<target>/seed-<name> for requests, page_token, keys, clustermap,
 * load_jsonl, load_deb, config and tokens, replacing files of the same name and leaving any
 * other file (regression inputs: crash-*) alone. Run it again after changing
 * a format; commit what it writes.
 */
#include "fuzz.h"

#include "auth.h"
#include "clustermap.h"
#include "grpc/health/v1/health.pb-c.h"
#include "ixkey.h"
#include "keys.h"
#include "mem.h"
#include "qplan.h"
#include "shardex.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static void write_seed(const char *target, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/seed-%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* A seed of a target whose input is one byte and then bytes. */
static void write_with(const char *target, const char *name, uint8_t first, const void *p, size_t n)
{
    sx_buf b = {0};
    sx_buf_push(&b, first);
    sx_buf_append(&b, p, n);
    write_seed(target, name, b.data, b.len);
    sx_buf_free(&b);
}

static ProtobufCBinaryData packed(const ProtobufCMessage *m)
{
    ProtobufCBinaryData b;
    b.len = protobuf_c_message_get_packed_size(m);
    b.data = sx_malloc(b.len + 1);
    protobuf_c_message_pack(m, b.data);
    return b;
}

static void write_request(const char *name, uint8_t row, const ProtobufCMessage *m)
{
    ProtobufCBinaryData b = packed(m);
    write_with("requests", name, row, b.data, b.len);
    free(b.data);
}

/* An entry key enc(value) ++ enc(id). */
static ProtobufCBinaryData entry_key(bool is_int, const char *s, int64_t i, const char *id)
{
    sx_buf b = {0};
    if (is_int)
        sx_key_append_i64(&b, i);
    else
        sx_key_append_str(&b, s, strlen(s));
    sx_key_append_str(&b, id, strlen(id));
    return (ProtobufCBinaryData){b.len, b.data};
}

/* ------------------------------------------------------------ requests -- */

static void public_requests(void)
{
    Shardex__V1__Document *d1 = sx_doc_new("pkg:libc6");
    sx_doc_add_str(d1, "f", "GNU C Library");
    sx_doc_add_str(d1, "tags", "libs");
    sx_doc_add_str(d1, "tags", "core");
    sx_doc_add_int(d1, "n", 13552);
    Shardex__V1__Document *d2 = sx_doc_new("caf\xc3\xa9");
    sx_doc_add_int(d2, "n", -7);
    Shardex__V1__Document *docs[] = {d1, d2};
    Shardex__V1__PutRequest put = SHARDEX__V1__PUT_REQUEST__INIT;
    put.n_docs = 2;
    put.docs = docs;
    write_request("put", SX_FUZZ_ROW_PUT, &put.base);

    char *ids[] = {"pkg:libc6", "a", "caf\xc3\xa9"};
    Shardex__V1__DeleteRequest del = SHARDEX__V1__DELETE_REQUEST__INIT;
    del.n_ids = 3;
    del.ids = ids;
    write_request("delete", SX_FUZZ_ROW_DELETE, &del.base);

    Shardex__V1__WriteToken tok = SHARDEX__V1__WRITE_TOKEN__INIT;
    tok.partition = 2;
    tok.offset = 1200;
    Shardex__V1__WriteToken *toks[] = {&tok};
    Shardex__V1__GetRequest get = SHARDEX__V1__GET_REQUEST__INIT;
    get.id = "pkg:libc6";
    get.n_after = 1;
    get.after = toks;
    write_request("get", SX_FUZZ_ROW_GET, &get.base);

    /* Queries on fuzz_requests.c's indexes: by_f (strings, id 9), by_n (ints). */
    Shardex__V1__Value eq = SHARDEX__V1__VALUE__INIT;
    eq.kind_case = SHARDEX__V1__VALUE__KIND_S;
    eq.s = "GNU C Library";
    Shardex__V1__QueryRequest q = SHARDEX__V1__QUERY_REQUEST__INIT;
    q.index = "by_f";
    q.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    q.eq = &eq;
    q.limit = 10;
    q.n_after = 1;
    q.after = toks;
    write_request("query-eq", SX_FUZZ_ROW_QUERY, &q.base);
    sx_arena a = {0};
    ProtobufCBinaryData last = entry_key(false, "GNU C Library", 0, "pkg:libc6");
    q.page_token = sx_qplan_token(&a, 9, &last);
    q.mode = SHARDEX__V1__MODE__MODE_GLOBAL;
    write_request("query-eq-page", SX_FUZZ_ROW_QUERY, &q.base);
    free(last.data);

    Shardex__V1__Value lo = SHARDEX__V1__VALUE__INIT, hi = SHARDEX__V1__VALUE__INIT;
    lo.kind_case = hi.kind_case = SHARDEX__V1__VALUE__KIND_I;
    lo.i = -10;
    hi.i = 20000;
    Shardex__V1__Range r = SHARDEX__V1__RANGE__INIT;
    r.min = &lo;
    r.max = &hi;
    Shardex__V1__QueryRequest qr = SHARDEX__V1__QUERY_REQUEST__INIT;
    qr.index = "by_n";
    qr.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
    qr.range = &r;
    qr.include_docs = true;
    last = entry_key(true, NULL, 13552, "pkg:libc6");
    qr.page_token = sx_qplan_token(&a, 10, &last);
    write_request("query-range-page", SX_FUZZ_ROW_QUERY, &qr.base);
    free(last.data);
    sx_arena_free(&a);

    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "by_n";
    spec.field = "n";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    spec.global = true;
    spec.term_partitions = 3;
    Shardex__V1__CreateIndexRequest ci = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    ci.spec = &spec;
    write_request("create-index", SX_FUZZ_ROW_CREATE_INDEX, &ci.base);
    /* IndexSpec 7-8: range partitioning with its split points. */
    Shardex__V1__Value sp[2];
    Shardex__V1__Value *spp[2] = {&sp[0], &sp[1]};
    for (int k = 0; k < 2; k++) {
        shardex__v1__value__init(&sp[k]);
        sp[k].kind_case = SHARDEX__V1__VALUE__KIND_I;
        sp[k].i = 1000 * (k + 1);
    }
    spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    spec.term_partitions = 0;
    spec.n_split_points = 2;
    spec.split_points = spp;
    write_request("create-index-range", SX_FUZZ_ROW_CREATE_INDEX, &ci.base);
    Shardex__V1__DropIndexRequest di = SHARDEX__V1__DROP_INDEX_REQUEST__INIT;
    di.name = "by_n";
    write_request("drop-index", SX_FUZZ_ROW_DROP_INDEX, &di.base);
    Shardex__V1__ListIndexesRequest li = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
    write_request("list-indexes", SX_FUZZ_ROW_LIST_INDEXES, &li.base);
    Shardex__V1__ClusterStatusRequest cs = SHARDEX__V1__CLUSTER_STATUS_REQUEST__INIT;
    write_request("cluster-status", SX_FUZZ_ROW_CLUSTER_STATUS, &cs.base);
    Shardex__V1__DrainWorkerRequest dw = SHARDEX__V1__DRAIN_WORKER_REQUEST__INIT;
    dw.worker_id = "w2";
    dw.cancel = true;
    write_request("drain-worker", SX_FUZZ_ROW_DRAIN_WORKER, &dw.base);
    Shardex__V1__RemoveWorkerRequest rw = SHARDEX__V1__REMOVE_WORKER_REQUEST__INIT;
    rw.worker_id = "w3";
    rw.force = true;
    write_request("remove-worker", SX_FUZZ_ROW_REMOVE_WORKER, &rw.base);
    Shardex__V1__SplitIndexRequest si = SHARDEX__V1__SPLIT_INDEX_REQUEST__INIT;
    Shardex__V1__Value at = SHARDEX__V1__VALUE__INIT;
    at.kind_case = SHARDEX__V1__VALUE__KIND_I;
    at.i = 500;
    si.name = "by_n";
    si.term_partition = 1;
    si.at = &at;
    write_request("split-index", SX_FUZZ_ROW_SPLIT_INDEX, &si.base);
    Shardex__V1__SaltIndexRequest sa = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    Shardex__V1__Value hot = SHARDEX__V1__VALUE__INIT;
    hot.kind_case = SHARDEX__V1__VALUE__KIND_S;
    hot.s = "maint@debian.org";
    sa.name = "by_maint";
    sa.value = &hot;
    sa.ways = 4;
    write_request("salt-index", SX_FUZZ_ROW_SALT_INDEX, &sa.base);
    sx_doc_free(d1);
    sx_doc_free(d2);
}

static void coordinator_requests(void)
{
    uint32_t lost[] = {1, 3};
    Shardex__Internal__V1__RegisterRequest reg = SHARDEX__INTERNAL__V1__REGISTER_REQUEST__INIT;
    reg.worker_id = "w1";
    reg.address = "127.0.0.1:7001";
    reg.n_lost_partitions = 2;
    reg.lost_partitions = lost;
    reg.nonce = 77;
    write_request("register", SX_FUZZ_ROW_REGISTER, &reg.base);

    Shardex__Internal__V1__ReplicaReport rr = SHARDEX__INTERNAL__V1__REPLICA_REPORT__INIT;
    rr.partition = 1;
    rr.log_end_offset = 40;
    rr.applied_offset = rr.commit_offset = 38;
    Shardex__Internal__V1__ReplicaReport *rrs[] = {&rr};
    Shardex__Internal__V1__IndexReport ir = SHARDEX__INTERNAL__V1__INDEX_REPORT__INIT;
    ir.index_id = 9;
    ir.partition = 1;
    ir.mistyped_docs = 2;
    Shardex__Internal__V1__IndexReport *irs[] = {&ir};
    uint64_t wms[] = {38, 12, 0, 5};
    Shardex__Internal__V1__TermReport tr = SHARDEX__INTERNAL__V1__TERM_REPORT__INIT;
    tr.index_id = 9;
    tr.term_partition = 2;
    tr.epoch = 4;
    tr.ready = true;
    tr.n_watermarks = 4;
    tr.watermarks = wms;
    Shardex__Internal__V1__TermReport *trs[] = {&tr};
    Shardex__Internal__V1__HeartbeatRequest hb = SHARDEX__INTERNAL__V1__HEARTBEAT_REQUEST__INIT;
    hb.worker_id = "w1";
    hb.incarnation = 3;
    hb.map_version = 17;
    hb.n_replicas = 1;
    hb.replicas = rrs;
    hb.n_indexes = 1;
    hb.indexes = irs;
    hb.n_terms = 1;
    hb.terms = trs;
    hb.seq = 99;
    write_request("heartbeat", SX_FUZZ_ROW_HEARTBEAT, &hb.base);

    /* fuzz_requests.c's sample partition: epoch 3, isr_version 5, replicas 0-2. */
    int32_t isr[] = {0, 1, 2};
    uint64_t inc[] = {1, 1, 2};
    Shardex__Internal__V1__ChangeIsrRequest ch = SHARDEX__INTERNAL__V1__CHANGE_ISR_REQUEST__INIT;
    ch.worker_id = "w0";
    ch.partition = 0;
    ch.epoch = 3;
    ch.isr_version = 5;
    ch.n_isr = 3;
    ch.isr = isr;
    ch.n_incarnations = 3;
    ch.incarnations = inc;
    write_request("change-isr", SX_FUZZ_ROW_CHANGE_ISR, &ch.base);

    Shardex__Internal__V1__ReportBackfillRequest rb =
        SHARDEX__INTERNAL__V1__REPORT_BACKFILL_REQUEST__INIT;
    rb.worker_id = "w1";
    rb.index_id = 9;
    rb.partition = 2;
    rb.epoch = 4;
    write_request("report-backfill", SX_FUZZ_ROW_REPORT_BACKFILL, &rb.base);
    Shardex__Internal__V1__GetMapRequest gm = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    write_request("get-map", SX_FUZZ_ROW_GET_MAP, &gm.base);
}

static ProtobufCBinaryData packed_put_op(void)
{
    Shardex__V1__Document *d = sx_doc_new("pkg:bash");
    sx_doc_add_str(d, "f", "GNU Bourne Again SHell");
    sx_doc_add_int(d, "n", 7175);
    sx_doc_add_int(d, "n", 7175);
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
    op.put = d;
    ProtobufCBinaryData b = packed(&op.base);
    sx_doc_free(d);
    return b;
}

static void worker_requests(void)
{
    ProtobufCBinaryData k1 = entry_key(false, "GNU C Library", 0, "pkg:libc6");
    sx_buf nul = {0}; /* a value with a NUL byte */
    sx_key_append_str(&nul, "a\0b", 3);
    sx_key_append_str(&nul, "x", 1);
    ProtobufCBinaryData k2 = {nul.len, nul.data};
    Shardex__Internal__V1__Change c1 = SHARDEX__INTERNAL__V1__CHANGE__INIT;
    c1.key = k1;
    c1.version = 5;
    c1.offset = 31;
    Shardex__Internal__V1__Change c2 = c1;
    c2.remove = true;
    c2.key = k2;
    Shardex__Internal__V1__Change *cs[] = {&c1, &c2};
    Shardex__Internal__V1__ShipRequest ship = SHARDEX__INTERNAL__V1__SHIP_REQUEST__INIT;
    ship.index_id = 9;
    ship.term_partition = 1;
    ship.owner_epoch = 2;
    ship.partition = 3;
    ship.leader_epoch = 4;
    ship.partitions = 4;
    ship.prev_offset = 30;
    ship.up_to_offset = 31;
    ship.n_changes = 2;
    ship.changes = cs;
    ship.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    write_request("ship", SX_FUZZ_ROW_SHIP, &ship.base);

    Shardex__Internal__V1__ScanRequest scan = SHARDEX__INTERNAL__V1__SCAN_REQUEST__INIT;
    scan.index_id = 10;
    scan.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    ProtobufCBinaryData s = entry_key(true, NULL, -10, "a"), e = entry_key(true, NULL, 99, "z");
    scan.start = s;
    scan.end = e;
    scan.limit = 100;
    scan.partitions = 4;
    write_request("scan", SX_FUZZ_ROW_SCAN, &scan.base);

    Shardex__Internal__V1__DigestRequest dg = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    dg.index_id = 9;
    dg.partition = 1;
    dg.term = true;
    dg.entries = true;
    dg.epoch = 2;
    write_request("digest", SX_FUZZ_ROW_DIGEST, &dg.base);

    ProtobufCBinaryData put = packed_put_op();
    Shardex__Internal__V1__LogOp del = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    del.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
    del.delete_ = "pkg:libc6";
    ProtobufCBinaryData delb = packed(&del.base);
    Shardex__Internal__V1__AppendEntry e1 = SHARDEX__INTERNAL__V1__APPEND_ENTRY__INIT;
    e1.epoch = 4;
    e1.op = put;
    Shardex__Internal__V1__AppendEntry e2 = e1;
    e2.op = delb;
    Shardex__Internal__V1__AppendEntry *es[] = {&e1, &e2};
    Shardex__Internal__V1__AppendRequest ap = SHARDEX__INTERNAL__V1__APPEND_REQUEST__INIT;
    ap.partition = 1;
    ap.epoch = 4;
    ap.leader_id = "w0";
    ap.prev_offset = 30;
    ap.prev_epoch = 4;
    ap.n_entries = 2;
    ap.entries = es;
    ap.commit_offset = 30;
    write_request("append", SX_FUZZ_ROW_APPEND, &ap.base);

    ProtobufCBinaryData ops[] = {put, delb};
    Shardex__Internal__V1__WriteRequest wr = SHARDEX__INTERNAL__V1__WRITE_REQUEST__INIT;
    wr.partition = 1;
    wr.n_ops = 2;
    wr.ops = ops;
    write_request("write", SX_FUZZ_ROW_WRITE, &wr.base);

    Shardex__Internal__V1__ReadRequest rd = SHARDEX__INTERNAL__V1__READ_REQUEST__INIT;
    rd.partition = 1;
    rd.id = "pkg:bash";
    rd.after_offset = 31;
    write_request("read", SX_FUZZ_ROW_READ, &rd.base);
    char *ids[] = {"pkg:bash", "pkg:libc6"};
    Shardex__Internal__V1__ReadManyRequest rm = SHARDEX__INTERNAL__V1__READ_MANY_REQUEST__INIT;
    rm.partition = 1;
    rm.n_ids = 2;
    rm.ids = ids;
    write_request("read-many", SX_FUZZ_ROW_READ_MANY, &rm.base);
    Shardex__Internal__V1__SnapshotRequest sn = SHARDEX__INTERNAL__V1__SNAPSHOT_REQUEST__INIT;
    sn.partition = 1;
    sn.epoch = 3;
    sn.session = 1765000000000001u;
    sn.cursor = (ProtobufCBinaryData){5, (uint8_t *)"Dpkg:"};
    sn.max_bytes = 1u << 20;
    write_request("snapshot", SX_FUZZ_ROW_SNAPSHOT, &sn.base);

    Shardex__Internal__V1__WorkerStatusRequest ws =
        SHARDEX__INTERNAL__V1__WORKER_STATUS_REQUEST__INIT;
    write_request("worker-status", SX_FUZZ_ROW_WORKER_STATUS, &ws.base);
    Shardex__Internal__V1__ReadLogRequest rl = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
    rl.partition = 2;
    rl.from_offset = 1;
    rl.max_entries = 500;
    write_request("read-log", SX_FUZZ_ROW_READ_LOG, &rl.base);
    Shardex__Internal__V1__ScanDocsRequest sd = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    sd.partition = 3;
    write_request("scan-docs", SX_FUZZ_ROW_SCAN_DOCS, &sd.base);
    sd.sample = 25001; /* a sampler's (worker/sample.h) */
    sd.field = "installed-size";
    write_request("scan-docs-sample", SX_FUZZ_ROW_SCAN_DOCS, &sd.base);
    Shardex__Internal__V1__SetFaultsRequest sf = SHARDEX__INTERNAL__V1__SET_FAULTS_REQUEST__INIT;
    sf.spec = "seed=7;method=Append,fail=0.2,code=UNAVAILABLE;method=*,peer=127.0.0.1:1,"
              "delay=0.5,delay_ms=1-20;method=/shardex.v1.Shardex/Put,drop_reply=0.1,dup=0.1";
    write_request("set-faults", SX_FUZZ_ROW_SET_FAULTS, &sf.base);
    write_with("requests", "log-op-put", SX_FUZZ_ROW_LOG_OP, put.data, put.len);
    Shardex__Internal__V1__LeaveRequest lv = SHARDEX__INTERNAL__V1__LEAVE_REQUEST__INIT;
    lv.worker_id = "w-0a1b2c3d4e5f";
    lv.incarnation = 7;
    write_request("leave", SX_FUZZ_ROW_LEAVE, &lv.base);
    Grpc__Health__V1__HealthCheckRequest hc = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    hc.service = "shardex.v1.Shardex";
    write_request("health-check", SX_FUZZ_ROW_HEALTH_CHECK, &hc.base);
    Shardex__Internal__V1__RefreshMapRequest rfm = SHARDEX__INTERNAL__V1__REFRESH_MAP_REQUEST__INIT;
    rfm.version = 42;
    write_request("refresh-map", SX_FUZZ_ROW_REFRESH_MAP, &rfm.base);

    free(k1.data);
    free(k2.data);
    free(s.data);
    free(e.data);
    free(put.data);
    free(delb.data);
}

/* ---------------------------------------------------------- page_token -- */

/* fuzz_page_token.c: a shape byte, then a token of index 42. */
static void page_tokens(void)
{
    sx_arena a = {0};
    ProtobufCBinaryData k = entry_key(false, "b", 0, "pkg:libc6");
    ProtobufCBinaryData t = sx_qplan_token(&a, 42, &k);
    write_with("page_token", "eq-string", 0, t.data, t.len);
    write_with("page_token", "range-string-global", 2 | (2 << 2), t.data, t.len);
    free(k.data);
    k = entry_key(true, NULL, 500, "x");
    t = sx_qplan_token(&a, 42, &k);
    write_with("page_token", "range-int", 3, t.data, t.len);
    write_with("page_token", "eq-int-local", 1 | (1 << 2), t.data, t.len);
    free(k.data);
    t = sx_qplan_token(&a, 7, &(ProtobufCBinaryData){1, (uint8_t *)"z"});
    write_with("page_token", "other-index", 0, t.data, t.len);
    write_with("page_token", "none", 0, NULL, 0);
    sx_arena_free(&a);
}

/* ---------------------------------------------------------------- keys -- */

/* fuzz_keys.c: a schema byte (schemas[byte % 8]; bit 3: an int entry key,
 * bit 4: an int value key), then the key. */
static void keys(void)
{
    sx_buf b = {0};
    sx_key_append_str(&b, "hello\0world", 11);
    write_with("keys", "s", 0, b.data, b.len);
    sx_buf_reset(&b);
    sx_key_append_i64(&b, -42);
    write_with("keys", "i", 1 | 16, b.data, b.len);
    sx_buf_reset(&b);
    sx_key_append_str(&b, "GNU C Library", 13);
    sx_key_append_str(&b, "pkg:libc6", 9);
    write_with("keys", "ss-entry", 2, b.data, b.len);
    sx_buf_reset(&b);
    sx_key_append_i64(&b, 13552);
    sx_key_append_str(&b, "pkg:libc6", 9);
    write_with("keys", "is-entry", 3 | 8 | 16, b.data, b.len);
    sx_buf_reset(&b);
    sx_key_append_u8(&b, 'd');
    sx_key_append_u64(&b, 1200);
    sx_key_append_str(&b, "id", 2);
    write_with("keys", "bqs", 4, b.data, b.len);
    sx_buf_reset(&b);
    sx_key_append_u32(&b, 3);
    sx_key_append_str(&b, "", 0);
    sx_key_append_u64(&b, UINT64_MAX);
    write_with("keys", "lsq", 6, b.data, b.len);
    sx_buf_free(&b);
}

/* ---------------------------------------------------------- clustermap -- */

/* A map of nw workers (dead: the ones in `dead`) and P partitions, assigned
 * by sx_assign from nothing, with one global index of M term partitions. */
static void write_map(const char *name, uint32_t nw, uint32_t dead_mask, uint32_t P, uint32_t R,
                      uint32_t M)
{
    sx_log_part parts[16];
    sx_term_part terms[8];
    bool alive[16];
    memset(parts, 0, sizeof(parts));
    for (uint32_t p = 0; p < P; p++)
        parts[p].leader = -1;
    for (uint32_t t = 0; t < M; t++)
        terms[t] = (sx_term_part){.epoch = 0, .owner = -1};
    for (uint32_t w = 0; w < nw; w++)
        alive[w] = true;
    sx_assign_settings set = {.replication = R, .min_isr = R > 1 ? 2 : 1};
    sx_assign(&set, alive, nw, parts, P, terms, M, NULL);
    for (uint32_t w = 0; w < nw; w++)
        alive[w] = !(dead_mask & (1u << w));
    sx_assign(&set, alive, nw, parts, P, terms, M, NULL);

    Shardex__Internal__V1__ClusterSettings cs = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    cs.partitions = P;
    cs.replication = R;
    cs.min_isr = set.min_isr;
    cs.term_partitions = M;
    cs.cluster_id = "c0ffee";
    Shardex__Internal__V1__WorkerEntry we[16], *wp[16];
    char ids[16][8], addrs[16][24];
    for (uint32_t w = 0; w < nw; w++) {
        shardex__internal__v1__worker_entry__init(&we[w]);
        snprintf(ids[w], sizeof(ids[w]), "w%u", w);
        snprintf(addrs[w], sizeof(addrs[w]), "127.0.0.1:%u", 7000 + w);
        we[w].id = ids[w];
        we[w].address = addrs[w];
        we[w].alive = alive[w];
        we[w].incarnation = w + 1;
        wp[w] = &we[w];
    }
    Shardex__Internal__V1__LogPartition lp[16], *lpp[16];
    for (uint32_t p = 0; p < P; p++) {
        shardex__internal__v1__log_partition__init(&lp[p]);
        lp[p].epoch = parts[p].epoch;
        lp[p].isr_version = parts[p].isr_version;
        lp[p].leader = parts[p].leader;
        lp[p].n_replicas = parts[p].nreplicas;
        lp[p].replicas = parts[p].replicas;
        lp[p].n_isr = parts[p].nisr;
        lp[p].isr = parts[p].isr;
        lp[p].n_elr = parts[p].nelr;
        lp[p].elr = parts[p].elr;
        lpp[p] = &lp[p];
    }
    Shardex__Internal__V1__TermPartition tp[8], *tpp[8];
    for (uint32_t t = 0; t < M; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tp[t].epoch = terms[t].epoch;
        tp[t].owner = terms[t].owner;
        tpp[t] = &tp[t];
    }
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "by_f";
    spec.field = "f";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = spec.global = true;
    spec.term_partitions = M;
    uint32_t backfilled[] = {0, 1};
    Shardex__Internal__V1__IndexEntry ie = SHARDEX__INTERNAL__V1__INDEX_ENTRY__INIT;
    ie.spec = &spec;
    ie.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
    ie.id = 9;
    ie.n_backfilled = 2;
    ie.backfilled = backfilled;
    Shardex__Internal__V1__IndexEntry *iep[] = {&ie};

    Shardex__Internal__V1__ClusterMap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 17;
    m.settings = &cs;
    m.lease_ms = 2000;
    m.n_workers = nw;
    m.workers = wp;
    m.n_partitions = P;
    m.partitions = lpp;
    m.n_terms = M;
    m.terms = tpp;
    m.n_indexes = M ? 1 : 0;
    m.indexes = iep;
    m.next_incarnation = nw + 1;
    m.next_index_id = 10;
    ProtobufCBinaryData b = packed(&m.base);
    write_seed("clustermap", name, b.data, b.len);
    free(b.data);
}

static void clustermaps(void)
{
    write_map("three-workers", 3, 0, 4, 2, 3);
    write_map("one-dead", 3, 1u << 1, 4, 3, 3);
    write_map("five-workers-two-dead", 5, (1u << 0) | (1u << 3), 8, 3, 4);
    write_map("one-worker-no-index", 1, 0, 2, 1, 0);
    write_map("all-dead", 2, 3, 3, 2, 2);
}

/* -------------------------------------------------------- load parsers -- */

/* load_driver.h: an options byte (0: the defaults), then the file. */
static void load_inputs(void)
{
    static const char jsonl[] =
        "{\"id\": \"pkg:libc6\", \"fields\": {\"name\": \"GNU C Library\", \"tags\": [\"libs\", "
        "\"core\"], \"n\": 13552}}\n"
        "\n"
        "{\"id\": 42, \"fields\": {\"name\": \"caf\\u00e9\", \"n\": -3, \"tags\": []}}\r\n"
        "{\"delete\": \"pkg:libc6\"}\n"
        "{\"id\": \"x\", \"fields\": {\"f\": 1.5}}\n"
        "{\"id\": \"\", \"fields\": {\"\": \"y\"}}\n"
        "{\"delete\": \"a\"";
    write_with("load_jsonl", "mixed", 0, jsonl, sizeof(jsonl) - 1);
    write_with("load_jsonl", "mixed-strict-ids-truncate", 1 | 4 | 8, jsonl, sizeof(jsonl) - 1);
    write_with("load_jsonl", "mixed-short-lines", 1 << 4, jsonl, sizeof(jsonl) - 1);

    static const char deb[] =
        "\xEF\xBB\xBFPackage: libc6\n"
        "Status: install ok installed\n"
        "Priority: optional\n"
        "Installed-Size: 13552\n"
        "Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n"
        "Version: 2.36-9+deb12u4\n"
        "Depends: libgcc-s1\n"
        "Description: GNU C Library: Shared libraries\n"
        " Contains the standard libraries that are used by nearly all programs on\n"
        " the system.\n"
        " .\n"
        " This package includes shared versions of the standard C library.\n"
        "\n"
        "# a comment\n"
        "Package: bash\n"
        "Size: 1500k\n"
        "Installed-Size: 7175\n"
        "Version: 5.2.15-2+b2\n"
        "\r\n"
        "Package: broken\n"
        "Installed-Size: lots\n"
        "Installed-Size: 3\n"
        "-Bad: name\n"
        "\n"
        "Package: last\n"
        "Size: 12\n";
    write_with("load_deb", "status", 0, deb, sizeof(deb) - 1);
    write_with("load_deb", "status-only-truncate", 1 | 8, deb, sizeof(deb) - 1);
    write_with("load_deb", "status-short-lines", 2 << 4, deb, sizeof(deb) - 1);
}

/* -------------------------------------------------------- config files -- */

/* fuzz_config.c: a config file as it is, for the keys of its table. */
static void config_files(void)
{
    static const char every[] = "# every key of fuzz_config.c's table\n"
                                "b = yes\n"
                                "data-dir = \"/var/lib/shardex # not a comment\"\n"
                                "i = -100\n"
                                "big = -9223372036854775808\n"
                                "u = 256\n"
                                "u-any = 4294967295\n"
                                "d = 2s\n"
                                "d-any = 1h\n"
                                "z = 4KiB\n"
                                "z-any = 1t\n"
                                "mode = paranoid   # a comment after a value\n"
                                "listen = [::1]:7000\n";
    static const char spaced[] = "\n   # indented comment\r\n"
                                 "\tlisten\t=\t127.0.0.1:0\t\r\n"
                                 "mode=\"fast\"#tight\r\n"
                                 "data-dir = \"a \\\"quoted\\\" \\\\ path \"\n"
                                 "b = off";
    static const char bad[] = "listen = 127.0.0.1:7000\n"
                              "u = 0\n"
                              "listen = again:1\n"
                              "write_buffer = 1\n"
                              "no equals sign\n"
                              "data-dir = \"unterminated\n";
    write_seed("config", "every-key", every, sizeof(every) - 1);
    write_seed("config", "spaced-crlf", spaced, sizeof(spaced) - 1);
    write_seed("config", "errors", bad, sizeof(bad) - 1);
}

/* ------------------------------------------------------- tokens files -- */

/* fuzz_tokens.c: a daemon's tokens file (auth.h), as it is. Each refused
 * seed is refused for one reason, at its last line. */
static void tokens_files(void)
{
    static const char good[] = "# NAME ROLE TOKEN [EXPIRES]\n"
                               "reader read 0123456789abcdef0123456789abcdef\n"
                               "writer write c0ffee-token-of-the-writer 2027-01-31T00:00:00Z\n"
                               "\tadmin   admin  Zm9vYmFyYmF6cXV4cXV1eA==\t# an admin, indented\r\n"
                               "\n"
                               "   # a blank line above, a comment here\n"
                               "old read expired-token-aaaaaaaaaaaa 2001-01-01T00:00:00Z\n"
                               "leap write leap-day-token-bbbbbbbbbb 2028-02-29T23:59:59Z\n"
                               "shortest read 0123456789abcdef\n"
                               "last admin no-newline-at-the-end-1234";
    static const char comments[] = "# nothing but comments and blanks\n\n \t \r\n"
                                   "#reader read 0123456789abcdef0123456789abcdef\n"
                                   "   # indented\n";
    static const char crlf[] = "reader read 0123456789abcdef0123456789abcdef\r\n"
                               "writer write abcdefabcdefabcdefabcdef 2030-06-15T12:30:45Z\r\n";
    static const struct {
        const char *name, *text;
    } bad[] = {
        {"bad-role", "reader read 0123456789abcdef0123456789abcdef\n"
                     "root root rrrrrrrrrrrrrrrrrrrrrrrr\n"},
        {"bad-role-case", "w Write wwwwwwwwwwwwwwwwwwwwwwww\n"},
        {"bad-role-node", "n node nnnnnnnnnnnnnnnnnnnnnnnn\n"},
        {"short-token", "reader read 0123456789abcdef0123456789abcdef\n"
                        "shorty write 0123456789abcde\n"},
        {"duplicate", "reader read 0123456789abcdef0123456789abcdef\n"
                      "writer write sssssssssssssssssssssss\n"
                      "again admin 0123456789abcdef0123456789abcdef\n"},
        {"expiry-month", "x read xxxxxxxxxxxxxxxxxxxxxxxx 2027-13-01T00:00:00Z\n"},
        {"expiry-no-zone", "x read xxxxxxxxxxxxxxxxxxxxxxxx 2027-01-31T00:00:00\n"},
        {"expiry-epoch", "x read xxxxxxxxxxxxxxxxxxxxxxxx 1970-01-01T00:00:00Z\n"},
        {"expiry-date-only", "x read xxxxxxxxxxxxxxxxxxxxxxxx 2027-01-31\n"},
        {"two-fields", "reader read\n"},
        {"five-fields", "x read xxxxxxxxxxxxxxxxxxxxxxxx 2027-01-31T00:00:00Z extra\n"},
        {"long-name", "a-name-of-sixty-four-characters-is-one-too-many-for-the-table-xx "
                      "read yyyyyyyyyyyyyyyyyyyyyyyy\n"},
        {"control-byte", "reader read 0123456789abcdef\x01"
                         "0123456789abcdef\n"},
        {"utf8-name", "r\xc3\xa9"
                      "ader read 0123456789abcdef0123456789abcdef\n"},
    };
    write_seed("tokens", "good", good, sizeof(good) - 1);
    write_seed("tokens", "comments", comments, sizeof(comments) - 1);
    write_seed("tokens", "crlf", crlf, sizeof(crlf) - 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        write_seed("tokens", bad[i].name, bad[i].text, strlen(bad[i].text));
    /* The longest token (255 characters) and one past it. */
    char line[300];
    for (int len = SX_AUTH_TOKEN_MAX - 1; len <= SX_AUTH_TOKEN_MAX; len++) {
        int n = snprintf(line, sizeof(line), "long admin %.*s\n", len,
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        write_seed("tokens", len < SX_AUTH_TOKEN_MAX ? "longest-token" : "long-token", line,
                   (size_t)n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    public_requests();
    coordinator_requests();
    worker_requests();
    page_tokens();
    keys();
    clustermaps();
    load_inputs();
    config_files();
    tokens_files();
    return 0;
}
