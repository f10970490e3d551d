/* metrics_http.h: the daemons' Prometheus endpoint: GET /metrics answers
 * 200 with the registry rendered (text/plain; version=0.0.4); another path is
 * 404 and another method on /metrics 405. Served by libmicrohttpd on threads
 * of its own (one polling thread; each scrape renders on it), so a slow
 * scrape never holds an RPC thread.
 *
 * Not here: TLS, authentication, compression (a scrape is a few hundred kB at
 * most): bind it to an address only the monitoring network reaches.
 */
#ifndef SX_METRICS_HTTP_H
#define SX_METRICS_HTTP_H

#include "flags.h"
#include "metrics.h"
#include "status.h"

/* The flags of every daemon that serves metrics, rows of its flag table for a
 * config struct cfg_type with `const char *metrics_listen, *metrics_port_file`
 * (both NULL by default: off). */
/* clang-format off */
#define SX_METRICS_HTTP_FLAGS(cfg_type)                                                            \
    {.name = "metrics-listen", .type = SX_FLAG_HOSTPORT,                                           \
     .offset = SX_FLAG_OFFSET(cfg_type, metrics_listen, const char *),                             \
     .help = "serve Prometheus metrics over HTTP at /metrics on this address (port 0: any "        \
             "free port, see --metrics-port-file); off when not given"},                           \
    {.name = "metrics-port-file", .type = SX_FLAG_STRING,                                          \
     .offset = SX_FLAG_OFFSET(cfg_type, metrics_port_file, const char *), .metavar = "FILE",       \
     .help = "write the metrics endpoint's bound port here once serving"}
/* clang-format on */

typedef struct sx_metrics_http sx_metrics_http;

/* Serves m at listen ("HOST:PORT" or "[V6]:PORT"; HOST a name or a numeric
 * address, PORT 0 for any free port) and, when port_file is not NULL, writes
 * the bound port there (sx_daemon_write_port_file) once it serves. m is
 * borrowed until sx_metrics_http_stop. On SX_OK *out is the caller's, to stop
 * with sx_metrics_http_stop; else NULL. Codes: SX_INVALID_ARGUMENT for a bad
 * address, SX_UNAVAILABLE when it cannot be bound, the port file's codes. */
sx_status sx_metrics_http_start(sx_metrics *m, const char *listen, const char *port_file,
                                sx_metrics_http **out, sx_err *err);

/* The bound port. */
int sx_metrics_http_port(const sx_metrics_http *h);

/* Stops serving: closes the listening socket, waits for a scrape in progress
 * (and the collectors it runs) to end, frees h. Accepts NULL. Call before
 * freeing anything a collector reads. */
void sx_metrics_http_stop(sx_metrics_http *h);

#endif
