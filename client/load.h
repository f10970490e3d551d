/* load.h: `shardex load`, bulk loading JSON Lines or Debian control stanzas
 * (load_parse.h) into a cluster through libshardex's bulk writer.
 *
 * Records are read one at a time and sent in batches with several in flight;
 * every record ends in exactly one of: written (a Put acknowledged), deleted
 * (a Delete acknowledged), skipped (refused, by the loader's own checks or by
 * the server, under --on-error skip; reported with its line number) or
 * not written (the load stopped before it was acknowledged: the bad record
 * that stopped it under --on-error stop, records after it, a batch the
 * cluster failed to acknowledge (which may have been written), Ctrl-C). Nothing is written of
 * a refused record: the loader checks the server's limits before a record
 * joins a batch, and when the server still refuses a batch under skip, the
 * batch is sent again without the documents it names, so that only those are
 * skipped. The summary ends with the latest write token of every log
 * partition touched, for read-your-writes (`--after`).
 *
 * Exit status: 0 everything read was written or skipped by request; 5 the
 * load stopped on a bad record or a batch the server refused (the records
 * read before it were written, as far as acknowledged); 3 the cluster could
 * not be reached or failed a batch; 2 usage, or an input that cannot be
 * read; 130 interrupted (the summary is printed all the same).
 *
 * For tests, SHARDEX_LOAD_NO_LIMITS in the environment turns the loader's
 * size and count checks off, so that the server's refusals (and the resend
 * without the refused documents) can be provoked.
 *
 * Single-threaded, like the tool: runs on main's thread.
 */
#ifndef SX_LOAD_H
#define SX_LOAD_H

#include "cli.h"

/* Exit status of a load stopped by Ctrl-C (128 + SIGINT). */
#define SX_LOAD_EXIT_INTERRUPTED 130

/* `shardex load [FILE|-] [--format jsonl|debian] [--id-field NAME]
 * [--int-fields A,B] [--fields A,B] [--truncate] [--batch N] [--inflight K]
 * [--on-error stop|skip] [--json] [--server ...] [--timeout-ms MS]`;
 * argv[0] is "load". Returns the exit status above. */
int sx_cmd_load(const sx_cli *cli, int argc, char **argv);

#endif
