/* load_driver.h: the loop of `shardex load` (client/load.c, read_all) over a
 * fuzz input, for fuzz_load_jsonl.c and fuzz_load_deb.c: the input in a memfd,
 * read by the line reader (sx_load_parse_reader), each line fed to the
 * format's parser, and every record checked:
 *   - PUT has a document and DELETE an id, which pass the server's checks
 *     (common/validate.h) unless opts.no_limits: "a record the server would
 *     refuse never reaches a batch" (load_parse.h);
 *   - BAD has a message, and the message is valid UTF-8 (it is printed, and
 *     written in --json output);
 *   - a record's line is one the reader has given.
 * Static functions in a header: each target includes it once. */
#ifndef SX_FUZZ_LOAD_DRIVER_H
#define SX_FUZZ_LOAD_DRIVER_H

#include "fuzz.h"

#include "load_parse.h"
#include "validate.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The options byte: bit 0 truncate, bit 1 no_limits, bit 2 string_ids,
 * bit 3 only_fields, bits 4-5 the reader's longest line (0: the default, else
 * 16, 64 or 256 bytes, so that too long lines happen). */
static size_t fuzz_load_opts(uint8_t b, sx_load_parse_opts *o, const char *const *only)
{
    o->truncate = b & 1;
    o->no_limits = b & 2;
    o->string_ids = b & 4;
    o->only_fields = (b & 8) ? only : NULL;
    static const size_t max_line[] = {0, 16, 64, 256};
    return max_line[(b >> 4) & 3];
}

static void fuzz_load_check(const sx_load_parse_opts *o, const sx_load_parse_rec *r,
                            uint64_t lineno)
{
    SX_FUZZ_CHECK(r->line <= lineno);
    switch (r->kind) {
    case SX_LOAD_PARSE_REC_PUT:
        SX_FUZZ_CHECK(r->doc && r->doc->id);
        if (!o->no_limits)
            SX_FUZZ_CHECK(sx_validate_document_unnamed(r->doc, NULL) == SX_OK);
        /* The bulk writer packs it. */
        (void)protobuf_c_message_get_packed_size(&r->doc->base);
        break;
    case SX_LOAD_PARSE_REC_DELETE:
        SX_FUZZ_CHECK(r->id);
        if (!o->no_limits)
            SX_FUZZ_CHECK(sx_validate_id(r->id, NULL) == SX_OK);
        break;
    case SX_LOAD_PARSE_REC_BAD:
        SX_FUZZ_CHECK(r->msg[0] != '\0' && sx_utf8_valid(r->msg, strlen(r->msg)));
        break;
    default:
        break;
    }
}

/* Runs the loop on data with o; deb (NULL for JSON Lines) is the stanza parser. */
static void fuzz_load_run(const sx_load_parse_opts *o, size_t max_line, sx_load_parse_deb *deb,
                          const uint8_t *data, size_t size)
{
    int fd = memfd_create("sx-fuzz-load", 0);
    SX_FUZZ_CHECK(fd >= 0);
    SX_FUZZ_CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    SX_FUZZ_CHECK(lseek(fd, 0, SEEK_SET) == 0);
    sx_load_parse_reader *rd = sx_load_parse_reader_new(fd, max_line);
    (void)sx_load_parse_reader_peek(rd); /* load.c tells the format by it */
    uint64_t last = 0;
    for (;;) {
        const char *line = NULL;
        size_t len = 0;
        uint64_t lineno = 0;
        sx_load_parse_rec rec = {0};
        sx_load_parse_result lr = sx_load_parse_reader_next(rd, &line, &len, &lineno);
        SX_FUZZ_CHECK(lr != SX_LOAD_PARSE_ERROR);
        if (lr == SX_LOAD_PARSE_EOF) {
            if (deb)
                sx_load_parse_deb_end(deb, &rec);
            fuzz_load_check(o, &rec, last);
            sx_load_parse_rec_clear(&rec);
            break;
        }
        SX_FUZZ_CHECK(lineno == last + 1);
        last = lineno;
        if (lr == SX_LOAD_PARSE_TOO_LONG) {
            if (deb)
                sx_load_parse_deb_feed_bad(deb, lineno, "the line is too long");
            continue;
        }
        if (deb)
            sx_load_parse_deb_feed(deb, line, len, lineno, &rec);
        else
            sx_load_parse_json_line(o, line, len, lineno, &rec);
        fuzz_load_check(o, &rec, lineno);
        sx_load_parse_rec_clear(&rec);
    }
    SX_FUZZ_CHECK(sx_load_parse_reader_bytes(rd) <= size);
    sx_load_parse_reader_free(rd);
    close(fd);
}

#endif
