/* fuzz_requests.c: every request message a worker or the coordinator decodes,
 * through the decoder the rpc server uses (protobuf_c_message_unpack with the
 * method's input descriptor, as sx__rpc_unpack) and then the checks its
 * handler runs before touching any state.
 *
 * Input: one byte that picks a row of `rows` (modulo their count), then the
 * packed message. One target rather than one per message: the messages share
 * one decoder and most of their parts (Document, Value, WriteToken), so one
 * corpus lets libFuzzer carry what it learnt about one to the others, and one
 * binary keeps the build and the few seconds in make test small. Rows are
 * append-only: the seeds in corpus/requests/ name their message by position
 * (seeds.c writes them). At start the target walks the descriptors of every
 * service the daemons serve and stops if a method's request has no row, so a
 * new method cannot go unfuzzed.
 *
 * For every message: what unpacks packs again, and that packing (when it
 * unpacks: check_repack) packs to the same bytes. Then, per message, the
 * handler's checks: sx_validate_put/delete/id (worker/router.c; a refusal's
 * message must be valid UTF-8, as validate.h says), sx_qplan_make_index against
 * two index entries (worker/query.c), the fault rules of SetFaults
 * (sx__faults_parse), the packed LogOps of Append and Write decoded as apply
 * decodes them, with each put's index values (sx_ixkey_doc_values), the keys
 * of Scan and Ship split as entry keys, and ChangeIsr's compare-and-set on a
 * sample partition, whose result must still pass sx_clustermap_check. Not
 * reached: the coordinator's checks of Register, Heartbeat, ReportBackfill,
 * the rest of CreateIndex (its partitioning is checked here with
 * sx_ixkey_check_partitioning), DropIndex, DrainWorker, RemoveWorker and SplitIndex
 * (its value check is sx_ixkey_check_split, unit-tested), which run inside
 * sx_coord under its lock with
 * the metadata store (coordinator/coord.c).
 */
#include "fuzz.h"

#include "clustermap.h"
#include "grpc/health/v1/health.pb-c.h"
#include "ixkey.h"
#include "keys.h"
#include "mem.h"
#include "qplan.h"
#include "rpc_internal.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "sx_limits.h"
#include "validate.h"

#include <string.h>

typedef void check_fn(const ProtobufCMessage *m);

/* One message the daemons decode, and the checks that follow. */
typedef struct row {
    const ProtobufCMessageDescriptor *desc;
    check_fn *check; /* NULL: decoding is all the handler does before its state */
} row;

/* ------------------------------------------------------- shared pieces -- */

/* Three indexes of a map: strings kept LOCAL and GLOBAL (ready), ints kept
 * GLOBAL only (building), on the fields "f" and "n", and ints on "n"
 * range-partitioned at -10, 0, 10 (ready). */
static Shardex__V1__IndexSpec spec_s, spec_i, spec_r;
static Shardex__Internal__V1__IndexEntry entry_s, entry_i, entry_r;
static Shardex__V1__Value splits_r[3];
static Shardex__V1__Value *splits_rp[3];
#define NP 4 /* log partitions */
#define NM 3 /* term partitions of each hash-partitioned index */
#define NIX 3

static void init_entries(void)
{
    shardex__v1__index_spec__init(&spec_s);
    spec_s.name = "by_f";
    spec_s.field = "f";
    spec_s.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec_s.local = spec_s.global = true;
    spec_s.term_partitions = NM;
    shardex__internal__v1__index_entry__init(&entry_s);
    entry_s.spec = &spec_s;
    entry_s.id = 9;
    entry_s.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    spec_i = spec_s;
    spec_i.name = "by_n";
    spec_i.field = "n";
    spec_i.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    spec_i.local = false;
    entry_i = entry_s;
    entry_i.spec = &spec_i;
    entry_i.id = 10;
    entry_i.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
    for (int k = 0; k < 3; k++) {
        shardex__v1__value__init(&splits_r[k]);
        splits_r[k].kind_case = SHARDEX__V1__VALUE__KIND_I;
        splits_r[k].i = 10 * (k - 1);
        splits_rp[k] = &splits_r[k];
    }
    spec_r = spec_i;
    spec_r.name = "by_n_range";
    spec_r.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    spec_r.term_partitions = 4;
    spec_r.n_split_points = 3;
    spec_r.split_points = splits_rp;
    entry_r = entry_i;
    entry_r.spec = &spec_r;
    entry_r.id = 11;
    entry_r.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
}

/* What apply derives from a document: its values for each index. */
static void index_values(const Shardex__V1__Document *doc)
{
    const Shardex__Internal__V1__IndexEntry *es[] = {&entry_s, &entry_i, &entry_r};
    size_t cap = doc ? doc->n_fields : 0;
    size_t *offs = sx_calloc(cap + 1, sizeof(size_t)), *lens = sx_calloc(cap + 1, sizeof(size_t));
    sx_buf keys = {0};
    for (size_t k = 0; k < NIX; k++) {
        sx_ixkey_def d;
        sx_ixkey_def_from_spec(&d, es[k]->id, es[k]->spec);
        bool mistyped;
        size_t n = sx_ixkey_doc_values(&d, doc, &keys, offs, lens, cap, &mistyped);
        SX_FUZZ_CHECK(n <= cap);
        for (size_t i = 0; i < n; i++) {
            SX_FUZZ_CHECK(offs[i] + lens[i] <= keys.len);
            uint32_t t = sx_ixkey_term_of(&d, keys.data + offs[i], lens[i]);
            SX_FUZZ_CHECK(t < d.term_partitions);
            if (i > 0) { /* sorted, no duplicates */
                ProtobufCBinaryData a = {lens[i - 1], keys.data + offs[i - 1]};
                ProtobufCBinaryData b = {lens[i], keys.data + offs[i]};
                SX_FUZZ_CHECK(sx_qplan_key_cmp(&a, &b) < 0);
                /* by range: a larger value is never in an earlier partition */
                SX_FUZZ_CHECK(!d.range ||
                              sx_ixkey_term_of(&d, keys.data + offs[i - 1], lens[i - 1]) <= t);
            }
        }
    }
    sx_buf_free(&keys);
    free(offs);
    free(lens);
}

/* A packed LogOp as a follower stores it and apply decodes it. */
static void log_op(const uint8_t *p, size_t n)
{
    Shardex__Internal__V1__LogOp *op = shardex__internal__v1__log_op__unpack(NULL, n, p);
    if (!op)
        return;
    if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT)
        index_values(op->put);
    shardex__internal__v1__log_op__free_unpacked(op, NULL);
}

/* An index entry key as a scan or a ship carries it: what splits encodes
 * back to the same key (but for a string value with a NUL byte, which the
 * C string of the decoded Value cuts short). */
static void entry_key(bool is_int, const ProtobufCBinaryData *k)
{
    Shardex__V1__Value v;
    sx_buf s = {0}, id = {0};
    if (sx_ixkey_split_key(is_int, k->data, k->len, &v, &s, &id) &&
        (is_int || strlen(v.s) + 1 == s.len)) {
        sx_buf again = {0};
        SX_FUZZ_CHECK(sx_ixkey_append_value(&again, is_int, &v));
        sx_key_append_str(&again, id.data, id.len);
        SX_FUZZ_CHECK(again.len == k->len && memcmp(again.data, k->data, k->len) == 0);
        sx_buf_free(&again);
    }
    sx_buf_free(&s);
    sx_buf_free(&id);
}

/* -------------------------------------------------------------- checks -- */

/* validate.h: a refusal's message is readable, valid UTF-8, whatever the
 * input (the client sees it verbatim). */
static bool validated(sx_status st, const sx_err *err)
{
    if (st != SX_OK)
        SX_FUZZ_CHECK(st == SX_INVALID_ARGUMENT && err->msg[0] != '\0' &&
                      sx_utf8_valid(err->msg, strlen(err->msg)));
    return st == SX_OK;
}

static void check_put(const ProtobufCMessage *m)
{
    const Shardex__V1__PutRequest *req = (const void *)m;
    sx_err err = {0};
    if (!validated(sx_validate_put(req, &err), &err))
        return;
    for (size_t i = 0; i < req->n_docs; i++) {
        /* The router packs each document into a LogOp put (worker/router.c). */
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = req->docs[i];
        size_t n = protobuf_c_message_get_packed_size(&op.base);
        SX_FUZZ_CHECK(n <= SX_DOC_MAX_BYTES + 16);
        uint8_t *buf = sx_malloc(n + 1);
        protobuf_c_message_pack(&op.base, buf);
        log_op(buf, n);
        free(buf);
    }
}

static void check_delete(const ProtobufCMessage *m)
{
    sx_err err = {0};
    validated(sx_validate_delete((const void *)m, &err), &err);
}

static void check_get(const ProtobufCMessage *m)
{
    sx_err err = {0};
    validated(sx_validate_id(((const Shardex__V1__GetRequest *)m)->id, &err), &err);
}

static void check_plan(const sx_qplan *pl)
{
    uint32_t bound = pl->global ? pl->def.term_partitions : pl->P;
    SX_FUZZ_CHECK(pl->limit >= 1 && pl->limit <= SX_QUERY_LIMIT_MAX);
    SX_FUZZ_CHECK(pl->n >= 1 && pl->n <= bound);
    for (size_t i = 0; i < pl->n; i++)
        SX_FUZZ_CHECK(pl->targets[i] < bound && pl->reqs[i].partition == pl->targets[i]);
    /* A range-partitioned range: consecutive term partitions in value order. */
    for (size_t i = 1; pl->global && pl->def.range && i < pl->n; i++)
        SX_FUZZ_CHECK(pl->targets[i] == pl->targets[i - 1] + 1);
}

/* CreateIndex's partitioning check (the rest runs inside sx_coord): what it
 * accepts routes each split point to the partition it starts. */
static void check_create_index(const ProtobufCMessage *m)
{
    const Shardex__V1__CreateIndexRequest *req = (const void *)m;
    char msg[160];
    if (!req->spec)
        return;
    if (!sx_ixkey_check_partitioning(req->spec, SX_MAX_TERM_PARTITIONS, msg, sizeof(msg))) {
        SX_FUZZ_CHECK(msg[0] != '\0');
        return;
    }
    if (req->spec->partitioning != SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE)
        return;
    Shardex__V1__IndexSpec spec = *req->spec;
    spec.name = "x";
    spec.term_partitions = (uint32_t)spec.n_split_points + 1;
    sx_ixkey_def d;
    sx_ixkey_def_from_spec(&d, 1, &spec);
    sx_buf b = {0};
    for (size_t i = 0; i < spec.n_split_points; i++) {
        b.len = 0;
        SX_FUZZ_CHECK(sx_ixkey_append_value(&b, d.is_int, spec.split_points[i]));
        SX_FUZZ_CHECK(sx_ixkey_term_of(&d, b.data, b.len) == i + 1);
    }
    sx_buf_free(&b);
}

static void check_query(const ProtobufCMessage *m)
{
    const Shardex__V1__QueryRequest *req = (const void *)m;
    const Shardex__Internal__V1__IndexEntry *es[] = {&entry_s, &entry_i, &entry_r};
    for (size_t k = 0; k < NIX; k++) {
        sx_arena arena = {0};
        sx_qplan pl;
        sx_err err = {0};
        if (sx_qplan_make_index(req, es[k], NP, &arena, &pl, &err) == SX_OK) {
            check_plan(&pl);
            if (sx_qplan_falls_back(&pl, SX_UNAVAILABLE)) {
                sx_qplan_go_local(&pl, &arena);
                check_plan(&pl);
            }
        } else {
            SX_FUZZ_CHECK(err.msg[0] != '\0');
        }
        sx_arena_free(&arena);
    }
}

static void check_change_isr(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__ChangeIsrRequest *req = (const void *)m;
    if (req->n_isr > SX_MAX_REPLICAS) /* the coordinator's first check */
        return;
    /* Workers 0..3; partition led by 0 with replicas 0, 1, 2 and isr 0, 1. */
    sx_log_part p = {.epoch = 3, .isr_version = 5, .leader = 0, .nreplicas = 3, .nisr = 2};
    p.replicas[0] = 0, p.replicas[1] = 1, p.replicas[2] = 2;
    p.isr[0] = 0, p.isr[1] = 1;
    sx_log_part was = p;
    uint64_t epoch = req->epoch % 2 ? 3 : req->epoch; /* odd: the current one */
    uint64_t version = req->isr_version % 2 ? 5 : req->isr_version;
    if (sx_clustermap_change_isr(&p, epoch, version, req->isr, (uint32_t)req->n_isr, NULL) !=
        SX_OK) {
        SX_FUZZ_CHECK(memcmp(&p, &was, sizeof(p)) == 0);
        return;
    }
    sx_clustermap_track_elr(&p, was.isr, was.nisr, 2);
    SX_FUZZ_CHECK(sx_clustermap_check(&p, 1, NULL, 0, 4, NULL) == SX_OK);
}

static void check_scan(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__ScanRequest *req = (const void *)m;
    bool is_int = req->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    entry_key(is_int, &req->start);
    entry_key(is_int, &req->end);
}

static void check_ship(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__ShipRequest *req = (const void *)m;
    for (size_t i = 0; i < req->n_changes; i++) {
        entry_key(false, &req->changes[i]->key);
        entry_key(true, &req->changes[i]->key);
    }
}

static void check_append(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__AppendRequest *req = (const void *)m;
    for (size_t i = 0; i < req->n_entries; i++)
        log_op(req->entries[i]->op.data, req->entries[i]->op.len);
}

static void check_write(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__WriteRequest *req = (const void *)m;
    for (size_t i = 0; i < req->n_ops; i++)
        log_op(req->ops[i].data, req->ops[i].len);
}

static void check_set_faults(const ProtobufCMessage *m)
{
    sx__faults *f = NULL;
    if (sx__faults_parse(((const Shardex__Internal__V1__SetFaultsRequest *)m)->spec, &f, NULL) !=
        SX_OK)
        return;
    if (f) {
        for (int i = 0; i < 4; i++)
            sx__faults_decide(f, "/shardex.v1.Shardex/Put", "127.0.0.1:1");
        sx__faults_free(f);
    }
}

static void check_log_op(const ProtobufCMessage *m)
{
    const Shardex__Internal__V1__LogOp *op = (const void *)m;
    if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT)
        index_values(op->put);
}

/* ---------------------------------------------------------------- rows -- */

/* Indexed by SX_FUZZ_ROW_* (fuzz.h): append-only. */
static const row rows[SX_FUZZ_ROWS] = {
    [SX_FUZZ_ROW_PUT] = {&shardex__v1__put_request__descriptor, check_put},
    [SX_FUZZ_ROW_DELETE] = {&shardex__v1__delete_request__descriptor, check_delete},
    [SX_FUZZ_ROW_GET] = {&shardex__v1__get_request__descriptor, check_get},
    [SX_FUZZ_ROW_QUERY] = {&shardex__v1__query_request__descriptor, check_query},
    [SX_FUZZ_ROW_CREATE_INDEX] = {&shardex__v1__create_index_request__descriptor,
                                  check_create_index},
    [SX_FUZZ_ROW_DROP_INDEX] = {&shardex__v1__drop_index_request__descriptor, NULL},
    [SX_FUZZ_ROW_LIST_INDEXES] = {&shardex__v1__list_indexes_request__descriptor, NULL},
    [SX_FUZZ_ROW_CLUSTER_STATUS] = {&shardex__v1__cluster_status_request__descriptor, NULL},
    [SX_FUZZ_ROW_REGISTER] = {&shardex__internal__v1__register_request__descriptor, NULL},
    [SX_FUZZ_ROW_HEARTBEAT] = {&shardex__internal__v1__heartbeat_request__descriptor, NULL},
    [SX_FUZZ_ROW_CHANGE_ISR] = {&shardex__internal__v1__change_isr_request__descriptor,
                                check_change_isr},
    [SX_FUZZ_ROW_REPORT_BACKFILL] = {&shardex__internal__v1__report_backfill_request__descriptor,
                                     NULL},
    [SX_FUZZ_ROW_GET_MAP] = {&shardex__internal__v1__get_map_request__descriptor, NULL},
    [SX_FUZZ_ROW_SHIP] = {&shardex__internal__v1__ship_request__descriptor, check_ship},
    [SX_FUZZ_ROW_SCAN] = {&shardex__internal__v1__scan_request__descriptor, check_scan},
    [SX_FUZZ_ROW_DIGEST] = {&shardex__internal__v1__digest_request__descriptor, NULL},
    [SX_FUZZ_ROW_APPEND] = {&shardex__internal__v1__append_request__descriptor, check_append},
    [SX_FUZZ_ROW_WRITE] = {&shardex__internal__v1__write_request__descriptor, check_write},
    [SX_FUZZ_ROW_READ] = {&shardex__internal__v1__read_request__descriptor, NULL},
    [SX_FUZZ_ROW_READ_MANY] = {&shardex__internal__v1__read_many_request__descriptor, NULL},
    [SX_FUZZ_ROW_WORKER_STATUS] = {&shardex__internal__v1__worker_status_request__descriptor, NULL},
    [SX_FUZZ_ROW_READ_LOG] = {&shardex__internal__v1__read_log_request__descriptor, NULL},
    [SX_FUZZ_ROW_SCAN_DOCS] = {&shardex__internal__v1__scan_docs_request__descriptor, NULL},
    [SX_FUZZ_ROW_SET_FAULTS] = {&shardex__internal__v1__set_faults_request__descriptor,
                                check_set_faults},
    /* Not a request: the op of Append and Write, decoded again at apply. */
    [SX_FUZZ_ROW_LOG_OP] = {&shardex__internal__v1__log_op__descriptor, check_log_op},
    [SX_FUZZ_ROW_LEAVE] = {&shardex__internal__v1__leave_request__descriptor, NULL},
    /* Check and Watch of grpc.health.v1.Health take the same message. */
    [SX_FUZZ_ROW_HEALTH_CHECK] = {&grpc__health__v1__health_check_request__descriptor, NULL},
    [SX_FUZZ_ROW_REFRESH_MAP] = {&shardex__internal__v1__refresh_map_request__descriptor, NULL},
    [SX_FUZZ_ROW_DRAIN_WORKER] = {&shardex__v1__drain_worker_request__descriptor, NULL},
    [SX_FUZZ_ROW_REMOVE_WORKER] = {&shardex__v1__remove_worker_request__descriptor, NULL},
    [SX_FUZZ_ROW_SNAPSHOT] = {&shardex__internal__v1__snapshot_request__descriptor, NULL},
    [SX_FUZZ_ROW_SPLIT_INDEX] = {&shardex__v1__split_index_request__descriptor, NULL},
    [SX_FUZZ_ROW_SALT_INDEX] = {&shardex__v1__salt_index_request__descriptor, NULL},
};
#define NROWS SX_FUZZ_ROWS

/* Every service a daemon serves (not the testing Echo). */
static const ProtobufCServiceDescriptor *const services[] = {
    &shardex__v1__shardex__descriptor,
    &shardex__internal__v1__coordinator__descriptor,
    &shardex__internal__v1__index__descriptor,
    &shardex__internal__v1__replication__descriptor,
    &shardex__internal__v1__worker_admin__descriptor,
    &grpc__health__v1__health__descriptor,
};

static void check_rows_cover_services(void)
{
    for (size_t r = 0; r < NROWS; r++)
        SX_FUZZ_CHECK(rows[r].desc != NULL);
    for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++) {
        for (unsigned i = 0; i < services[s]->n_methods; i++) {
            const ProtobufCMethodDescriptor *md = &services[s]->methods[i];
            size_t r = 0;
            while (r < NROWS && rows[r].desc != md->input)
                r++;
            if (r == NROWS) {
                fprintf(stderr, "fuzz_requests: %s.%s takes %s, which has no row\n",
                        services[s]->name, md->name, md->input->name);
                abort();
            }
        }
    }
}

/* ---------------------------------------------------------------- main -- */

/* pack(unpack(x)) packs to the size it announced, and when it unpacks, it
 * packs to the same bytes again. It may not unpack: protobuf-c 1.4.1 keeps a
 * field number 0 read from a tag of more than one byte (0x82 0x00) as an
 * unknown field and packs it as the one-byte tag it then refuses (0x02). */
static void check_repack(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *a = sx_malloc(n + 1);
    SX_FUZZ_CHECK(protobuf_c_message_pack(m, a) == n);
    ProtobufCMessage *again = protobuf_c_message_unpack(desc, NULL, n, a);
    if (!again) {
        free(a);
        return;
    }
    size_t n2 = protobuf_c_message_get_packed_size(again);
    SX_FUZZ_CHECK(n2 == n);
    uint8_t *b = sx_malloc(n2 + 1);
    protobuf_c_message_pack(again, b);
    SX_FUZZ_CHECK(memcmp(a, b, n) == 0);
    protobuf_c_message_free_unpacked(again, NULL);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        check_rows_cover_services();
        init_entries();
        ready = true;
    }
    if (size < 1)
        return 0;
    const row *r = &rows[data[0] % NROWS];
    ProtobufCMessage *m = protobuf_c_message_unpack(r->desc, NULL, size - 1, data + 1);
    if (!m)
        return 0;
    check_repack(r->desc, m);
    if (r->check)
        r->check(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
