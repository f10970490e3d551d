/* fuzz_load_jsonl.c: the JSON Lines parser of `shardex load` and `shardex
 * put` (sx_load_parse_json_line, client/load_parse.c) behind the line reader.
 * Input: an options byte (load_driver.h), then the file. The JSON itself is
 * parsed by Debian's jansson, not instrumented: the coverage is that of
 * load_parse.c's checks and conversions. */
#include "load_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const only[] = {"name", "tags", NULL};
    sx_load_parse_opts o = {0};
    size_t max_line = fuzz_load_opts(data[0], &o, only);
    fuzz_load_run(&o, max_line, NULL, data + 1, size - 1);
    return 0;
}
