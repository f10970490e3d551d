/* fuzz_load_deb.c: the Debian control stanza parser of `shardex load`
 * (sx_load_parse_deb_*, client/load_parse.c) behind the line reader, with the
 * options a Packages file is loaded with: id field Package, Installed-Size a
 * strict int field, Size a lenient one. Input: an options byte
 * (load_driver.h), then the file. */
#include "load_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const ints[] = {"Installed-Size", NULL};
    static const char *const lenient[] = {"Size", NULL};
    static const char *const only[] = {"Version", "Depends", "Size", NULL};
    sx_load_parse_opts o = {.id_field = "Package", .int_fields = ints, .int_if_parses = lenient};
    size_t max_line = fuzz_load_opts(data[0], &o, only);
    sx_load_parse_deb *deb = sx_load_parse_deb_new(&o);
    fuzz_load_run(&o, max_line, deb, data + 1, size - 1);
    sx_load_parse_deb_free(deb);
    return 0;
}
