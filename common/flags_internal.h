/* flags_internal.h: what tests reach below flags.h. The config file parser
 * on text in memory, for the fuzz target (tests/fuzz/fuzz_config.c), which
 * would otherwise have to write every input to a file. */
#ifndef SX_FLAGS_INTERNAL_H
#define SX_FLAGS_INTERNAL_H

#include "flags.h"

/* Parses text (len bytes, any bytes) as a config file called name (the
 * format at the top of flags.h) into config: every key the text sets is
 * written, other fields keep their values; nothing is written on error.
 * No argv, no environment, no required check. *file receives a copy of
 * name and text that string values point into (free with
 * sx_flags_file_free), or NULL on error. Errors as for a file read by
 * sx_flags_parse_given, SX_INVALID_ARGUMENT. */
sx_status sx__flags_parse_text(const sx_flags_spec *spec, void *config, const char *name,
                               const char *text, size_t len, sx_flags_file **file, sx_err *err);

#endif
