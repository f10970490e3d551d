/* fuzz_page_token.c: Query's next_page_token, which a client sends back as
 * page_token and may have changed: the decoder (sx_qplan_token_read) and the
 * plan it starts (sx_qplan_make_index, step 4 of qplan.h).
 *
 * Input: one byte for the query's shape (bit 0: an int index, else strings;
 * bit 1: a range, else eq; bits 2-3: the mode), then the token. Properties:
 * a token that reads encodes back to the same bytes (sx_qplan_token), is
 * refused for another index, and a plan made with it starts after its last
 * key and scans only term or log partitions that exist; an eq page that can
 * hold keys scans the term partition of the value asked for.
 */
#include "fuzz.h"

#include "qplan.h"

#include <string.h>

#define NP 4  /* log partitions */
#define NM 3  /* term partitions */
#define ID 42 /* the index's id, as the tokens of the seeds name it */

static void plan(const uint8_t shape, const ProtobufCBinaryData *tok, bool read_ok,
                 const ProtobufCBinaryData *last)
{
    bool is_int = shape & 1, range = shape & 2;
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "ix";
    spec.field = "f";
    spec.type = is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                       : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = spec.global = true;
    spec.term_partitions = NM;
    Shardex__Internal__V1__IndexEntry e = SHARDEX__INTERNAL__V1__INDEX_ENTRY__INIT;
    e.spec = &spec;
    e.id = ID;
    e.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;

    Shardex__V1__Value lo = SHARDEX__V1__VALUE__INIT, hi = SHARDEX__V1__VALUE__INIT;
    lo.kind_case = hi.kind_case = is_int ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S;
    lo.i = -5, hi.i = 1000;
    lo.s = "b", hi.s = "m";
    Shardex__V1__Range r = SHARDEX__V1__RANGE__INIT;
    r.min = &lo, r.max = &hi;
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    req.index = "ix";
    req.page_token = *tok;
    req.mode = (Shardex__V1__Mode)((shape >> 2) & 3);
    if (range) {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
        req.range = &r;
    } else {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        req.eq = &lo;
    }

    sx_arena arena = {0};
    sx_qplan pl;
    sx_err err = {0};
    sx_status st = sx_qplan_make_index(&req, &e, NP, &arena, &pl, &err);
    SX_FUZZ_CHECK((st == SX_OK) == read_ok || req.mode > SHARDEX__V1__MODE__MODE_GLOBAL);
    if (st == SX_OK) {
        SX_FUZZ_CHECK(sx_qplan_key_cmp(&pl.start, last) > 0);
        uint32_t bound = pl.global ? NM : NP;
        SX_FUZZ_CHECK(pl.n >= 1 && pl.n <= bound);
        for (size_t i = 0; i < pl.n; i++)
            SX_FUZZ_CHECK(pl.targets[i] < bound);
        /* An eq page that can hold keys goes to the value's term partition,
         * wherever the token starts it. */
        if (pl.global && pl.eq && sx_qplan_key_cmp(&pl.start, &pl.end) < 0) {
            sx_buf v = {0};
            SX_FUZZ_CHECK(sx_ixkey_append_value(&v, is_int, &lo));
            SX_FUZZ_CHECK(pl.targets[0] == sx_ixkey_term_of(&pl.def, v.data, v.len));
            sx_buf_free(&v);
        }
    }
    sx_arena_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ProtobufCBinaryData tok = {size - 1, size > 1 ? (uint8_t *)data + 1 : NULL};
    ProtobufCBinaryData last = {0, NULL};
    sx_err err = {0};
    bool ok = sx_qplan_token_read(&tok, ID, "ix", &last, &err) == SX_OK;
    if (ok) {
        SX_FUZZ_CHECK(last.len > 0 && last.data >= tok.data &&
                      last.data + last.len == tok.data + tok.len);
        sx_arena arena = {0};
        ProtobufCBinaryData again = sx_qplan_token(&arena, ID, &last);
        SX_FUZZ_CHECK(again.len == tok.len && memcmp(again.data, tok.data, tok.len) == 0);
        sx_arena_free(&arena);
        ProtobufCBinaryData other;
        SX_FUZZ_CHECK(sx_qplan_token_read(&tok, ID + 1, "ix", &other, &err) == SX_INVALID_ARGUMENT);
    } else {
        SX_FUZZ_CHECK(err.code == SX_INVALID_ARGUMENT && err.msg[0] != '\0');
    }
    plan(data[0], &tok, ok || tok.len == 0, &last);
    return 0;
}
