/* metrics_http.c: /metrics over libmicrohttpd (metrics_http.h).
 *
 * One internal polling thread of MHD accepts, reads the request and calls
 * on_request, which renders the registry into a fresh buffer: scrapes are
 * rare (every few seconds) and the registry serializes them anyway, so a
 * thread per connection would buy nothing. MHD_stop_daemon joins that thread,
 * so after sx_metrics_http_stop no collector runs.
 */
#include "metrics_http.h"

#include "daemon.h"
#include "log.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Connections served at once, and how long an idle one stays open: a scraper
 * or two, and a test. */
#define HTTP_CONNECTION_LIMIT 16
#define HTTP_IDLE_TIMEOUT_S 30

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct sx_metrics_http {
    sx_metrics *m;
    struct MHD_Daemon *d;
    int port;
};

/* MHD's own messages (a bind failure, a broken client) go to our log. The
 * attribute tells clang's -Wformat-nonliteral that fmt is MHD's format. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    SX_LOG(SX_LOG_WARN, "metrics", "http: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    sx_metrics_http *h = cls;
    /* MHD calls first with the headers only; a request with a body (a POST)
     * calls again with it. Answering on the first call is enough: anything
     * but GET/HEAD is refused without reading a body. */
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    (void)con_cls;
    if (strcmp(url, "/metrics") != 0) {
        static const char nf[] = "not found: metrics are at /metrics\n";
        return reply(conn, MHD_HTTP_NOT_FOUND, nf, sizeof(nf) - 1, "text/plain");
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char na[] = "method not allowed: GET /metrics\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, na, sizeof(na) - 1, "text/plain");
    }
    sx_buf out = {0};
    sx_metrics_render(h->m, &out);
    enum MHD_Result rc =
        reply(conn, MHD_HTTP_OK, out.data ? (const char *)out.data : "", out.len, CONTENT_TYPE);
    sx_buf_free(&out);
    return rc;
}

sx_status sx_metrics_http_start(sx_metrics *m, const char *listen, const char *port_file,
                                sx_metrics_http **out, sx_err *err)
{
    *out = NULL;
    char host[256];
    uint16_t port = 0;
    sx_status st = sx_hostport_parse(listen, host, sizeof(host), &port, err);
    if (st != SX_OK)
        return st;
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, service, &hints, &ai);
    if (gai != 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "metrics: cannot resolve %s: %s", listen,
                          gai_strerror(gai));
    sx_metrics_http *h = sx_calloc(1, sizeof(*h));
    h->m = m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The logger first: MHD warns about any option before it. */
    h->d = MHD_start_daemon(flags, port, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        free(h);
        return sx_err_set(err, SX_UNAVAILABLE, "metrics: cannot listen on %s", listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    if (port_file && (st = sx_daemon_write_port_file(port_file, h->port, err)) != SX_OK) {
        sx_metrics_http_stop(h);
        return st;
    }
    SX_LOG(SX_LOG_INFO, "metrics", "serving addr=%s port=%d path=/metrics", listen, h->port);
    *out = h;
    return SX_OK;
}

int sx_metrics_http_port(const sx_metrics_http *h)
{
    return h->port;
}

void sx_metrics_http_stop(sx_metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d); /* joins its thread: no scrape runs after this */
    free(h);
}
