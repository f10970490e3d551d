/* test_metrics_scrape.c: the daemons' Prometheus endpoints (--metrics-listen,
 * common/metrics_http.h), scraped over real sockets from a real cluster
 * (a coordinator and two workers, P=4, R=2, every process on a port of its
 * own choosing, found through --metrics-port-file):
 *
 * - every scrape passes `promtool check metrics` (Debian's prometheus
 *   package; the test fails, saying so, when promtool is missing), lint
 *   included: before any traffic, and after it;
 * - what was done shows: documents applied grow by R times the puts and
 *   deletes written; Put, Delete and Query requests are counted by method and
 *   code, a refused Put as INVALID_ARGUMENT; the write ack and query latency
 *   histograms count each successful call once, by method and by mode, with
 *   +Inf buckets equal to their counts;
 * - the worker reports its replicas (every partition hosted R times, each led
 *   once), its lease and its stores; the coordinator its live workers, map
 *   version, partitions without flags raised, the index backfilled by every
 *   log partition and its term partitions ready;
 * - /metrics is text/plain; version=0.0.4; another path is 404, POST 405;
 * - a worker whose metrics address is in use exits 1 before it registers;
 * - a worker and the coordinator stopped with SIGTERM exit 0 (in the ASan
 *   build: without a leak) and their endpoints stop answering.
 */
#include "clock.h"
#include "cluster.h"
#include "harness.h"
#include "query.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 30000 /* generous: the machine is shared with the build */
#define P 4
#define R 2
#define WORKERS 2

/* ------------------------------------------------------------------ http -- */

typedef struct http_resp {
    int status;      /* 0: no answer */
    char ctype[128]; /* Content-Type */
    char *body;      /* NUL-terminated; free */
} http_resp;

/* One HTTP/1.0 request to 127.0.0.1:port (HTTP/1.0: the body ends at EOF,
 * never chunked), with a 10 s timeout on each socket operation. */
static http_resp http(int port, const char *method, const char *path)
{
    http_resp r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return r;
    }
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return r;
    }
    sx_buf b = {0};
    char chunk[8192];
    ssize_t got;
    while ((got = read(fd, chunk, sizeof(chunk))) > 0 || (got < 0 && errno == EINTR))
        if (got > 0)
            sx_buf_append(&b, chunk, (size_t)got);
    close(fd);
    sx_buf_push(&b, '\0');
    char *text = (char *)b.data;
    char *end = strstr(text, "\r\n\r\n");
    if (sscanf(text, "HTTP/1.%*d %d", &r.status) != 1 || !end) {
        r.status = 0;
        free(text);
        return r;
    }
    *end = '\0';
    const char *ct = strcasestr(text, "\r\nContent-Type:");
    if (ct) {
        ct += strlen("\r\nContent-Type:");
        while (*ct == ' ')
            ct++;
        size_t len = strcspn(ct, "\r\n");
        snprintf(r.ctype, sizeof(r.ctype), "%.*s", (int)len, ct);
    }
    r.body = strdup(end + 4);
    free(text);
    return r;
}

/* GET /metrics from port, which must answer 200 with the exposition format's
 * content type; the body (free it). */
static char *scrape(int port)
{
    http_resp r = http(port, "GET", "/metrics");
    if (r.status != 200)
        fail_msg("GET /metrics on port %d: status %d", port, r.status);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    return r.body;
}

/* -------------------------------------------------------------- promtool -- */

/* promtool's path from PATH, or NULL. */
static const char *find_promtool(char *buf, size_t cap)
{
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/bin", path ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, cap, "%s/promtool", d);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* `promtool check metrics` on text, which must pass without a word: a lint
 * problem (a counter without _total, a name with the wrong unit) fails too. */
static void promtool_check(const char *dir, const char *what, const char *text)
{
    char bin[512], in[512], out[512], err[512];
    if (!find_promtool(bin, sizeof(bin)))
        fail_msg("promtool not found in PATH: install Debian's prometheus package "
                 "(deploy/install-deps.sh does)");
    snprintf(in, sizeof(in), "%s/scrape.txt", dir);
    snprintf(out, sizeof(out), "%s/promtool.out", dir);
    snprintf(err, sizeof(err), "%s/promtool.err", dir);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    char *argv[] = {bin, "check", "metrics", NULL};
    sx_h_run r = sx_h_run_wait(argv, in, NULL, out, err, 30000);
    if (r.code != 0 || r.out[0] || r.err[0]) {
        sx_h_run_print(what, &r);
        fail_msg("promtool check metrics: %s does not pass", what);
    }
    sx_h_run_free(&r);
}

/* --------------------------------------------------------------- samples -- */

/* The sum of the samples of `name` (exactly: not name_bucket for name) whose
 * label set contains each of the comma-free fragments in labels (e.g.
 * "method=\"Put\"", "code=\"OK\""; NULL-terminated; NULL: any), and how many
 * there were (*n, may be NULL). */
static double sum_of(const char *text, const char *name, const char *const *labels, int *n)
{
    double sum = 0;
    int count = 0;
    size_t nlen = strlen(name);
    for (const char *line = text, *eol; *line; line = eol ? eol + 1 : line + strlen(line)) {
        eol = strchr(line, '\n');
        if (*line == '#' || strncmp(line, name, nlen) != 0 ||
            (line[nlen] != '{' && line[nlen] != ' '))
            continue;
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char l[1024];
        snprintf(l, sizeof(l), "%.*s", (int)len, line);
        char *close = strrchr(l, '}');
        bool match = true;
        for (size_t i = 0; labels && labels[i]; i++) {
            char *at = strstr(l, labels[i]);
            match &= at && (!close || at < close);
        }
        if (!match)
            continue;
        sum += strtod(strrchr(l, ' ') + 1, NULL);
        count++;
    }
    if (n)
        *n = count;
    return sum;
}

#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The sum of name's samples (matching labels) over every worker's scrape. */
static double workers_sum(char *const *texts, const char *name, const char *const *labels, int *n)
{
    double s = 0;
    int total = 0;
    for (int i = 0; i < WORKERS; i++) {
        int k = 0;
        s += sum_of(texts[i], name, labels, &k);
        total += k;
    }
    if (n)
        *n = total;
    return s;
}

typedef struct scrapes {
    sx_cluster *c;
    char *w[WORKERS];
    char *coord;
} scrapes;

static void scrapes_free(scrapes *s)
{
    for (int i = 0; i < WORKERS; i++) {
        free(s->w[i]);
        s->w[i] = NULL;
    }
    free(s->coord);
    s->coord = NULL;
}

static void scrape_all(scrapes *s)
{
    scrapes_free(s);
    for (int i = 0; i < WORKERS; i++)
        s->w[i] = scrape(s->c->worker_metrics_port[i]);
    s->coord = scrape(s->c->coord_metrics_port);
}

/* ------------------------------------------------------------- the story -- */

#define PUTS 5         /* Put calls */
#define DOCS_PER_PUT 4 /* documents each */
#define DELETED 2      /* ids in the one Delete call */
#define LOCAL_QUERIES 3
#define GLOBAL_QUERIES 2

/* The writes: PUTS Puts of DOCS_PER_PUT documents through alternate
 * workers, one Put refused (an empty id), one Delete. */
static void write_docs(sx_cluster *c, sx_qtokens *tokens)
{
    sx_err err = {0};
    for (int k = 0; k < PUTS; k++) {
        sx_qdoc d[DOCS_PER_PUT] = {0};
        for (int j = 0; j < DOCS_PER_PUT; j++) {
            snprintf(d[j].id, sizeof(d[j].id), "doc-%d-%d", k, j);
            sx_qdoc_add(&d[j], "color", sx_qval_str(j % 2 ? "red" : "blue"));
        }
        if (sx_q_put(c, c->worker_addr[k % WORKERS], d, DOCS_PER_PUT, 10000, tokens, NULL, &err) !=
            SX_OK)
            fail_msg("put %d: %s", k, err.msg);
    }
    sx_qdoc bad = {0}; /* an empty id */
    sx_qdoc_add(&bad, "color", sx_qval_str("red"));
    assert_int_equal(sx_q_put(c, c->worker_addr[0], &bad, 1, 10000, NULL, NULL, &err),
                     SX_INVALID_ARGUMENT);
    const char *ids[DELETED] = {"doc-0-0", "doc-1-1"};
    if (sx_q_delete(c, c->worker_addr[1], ids, DELETED, 10000, tokens, NULL, &err) != SX_OK)
        fail_msg("delete: %s", err.msg);
}

static void run_queries(sx_cluster *c, const sx_qtokens *tokens)
{
    sx_err err = {0};
    for (int k = 0; k < LOCAL_QUERIES + GLOBAL_QUERIES; k++) {
        bool global = k >= LOCAL_QUERIES;
        sx_qreq q = {.index = "color",
                     .match = {.eq = sx_qval_str("red")},
                     .mode =
                         global ? SHARDEX__V1__MODE__MODE_GLOBAL : SHARDEX__V1__MODE__MODE_LOCAL,
                     .after = tokens};
        Shardex__V1__QueryResponse *resp = NULL;
        if (sx_q_query(c, c->worker_addr[k % WORKERS], &q, NULL, &resp, &err) != SX_OK)
            fail_msg("query %d (%s): %s", k, global ? "GLOBAL" : "LOCAL", err.msg);
        /* 10 red documents, one deleted. */
        assert_int_equal(resp->n_hits, PUTS * DOCS_PER_PUT / 2 - 1);
        sx_rpc_free(&resp->base);
    }
}

/* Documents applied on every worker: R times each put and delete. */
static bool all_applied(void *arg)
{
    scrapes *s = arg;
    scrape_all(s);
    double want = R * (PUTS * DOCS_PER_PUT + DELETED);
    return workers_sum(s->w, "shardex_documents_applied_total", NULL, NULL) == want;
}

/* The coordinator sees the cluster settled: both workers live, every
 * partition with its R replicas in sync, every term partition ready. */
static bool coordinator_settled(void *arg)
{
    scrapes *s = arg;
    scrape_all(s);
    int nterm = 0;
    double ready =
        sum_of(s->coord, "shardex_term_partition_ready", LABELS("index=\"color\""), &nterm);
    return sum_of(s->coord, "shardex_coordinator_live_workers", NULL, NULL) == WORKERS &&
           sum_of(s->coord, "shardex_log_partition_isr_size", NULL, NULL) == P * R && nterm == P &&
           ready == P;
}

/* The coordinator counts one worker down, and the others live. */
static bool one_down(void *arg)
{
    scrapes *s = arg;
    scrapes_free(s);
    s->coord = scrape(s->c->coord_metrics_port);
    return sum_of(s->coord, "shardex_coordinator_down_workers", NULL, NULL) == 1 &&
           sum_of(s->coord, "shardex_coordinator_live_workers", NULL, NULL) == WORKERS - 1;
}

/* Every partition hosted R times and led once, as the workers say. */
static bool replicas_settled(void *arg)
{
    scrapes *s = arg;
    scrape_all(s);
    int hosted = 0;
    double led = workers_sum(s->w, "shardex_replica_leader", NULL, &hosted);
    return hosted == P * R && led == P;
}

static void check_worker_counts(scrapes *s)
{
    char *const *w = s->w;
    const char *put_ok[] = {"method=\"Put\"", "code=\"OK\"", NULL};
    assert_int_equal(workers_sum(w, "shardex_rpc_server_requests_total", put_ok, NULL), PUTS);
    assert_int_equal(workers_sum(w, "shardex_rpc_server_requests_total",
                                 LABELS("method=\"Put\"", "code=\"INVALID_ARGUMENT\""), NULL),
                     1);
    assert_int_equal(
        workers_sum(w, "shardex_rpc_server_requests_total",
                    LABELS("service=\"shardex.v1.Shardex\"", "method=\"Delete\"", "code=\"OK\""),
                    NULL),
        1);
    assert_int_equal(workers_sum(w, "shardex_rpc_server_requests_total",
                                 LABELS("method=\"Query\"", "code=\"OK\""), NULL),
                     LOCAL_QUERIES + GLOBAL_QUERIES);
    /* Handling time counts every answer, the refused one too. */
    assert_int_equal(
        workers_sum(w, "shardex_rpc_server_handling_seconds_count", LABELS("method=\"Put\""), NULL),
        PUTS + 1);
    /* Acknowledgements only: the refused Put is not one. */
    assert_int_equal(
        workers_sum(w, "shardex_write_ack_seconds_count", LABELS("method=\"put\""), NULL), PUTS);
    assert_int_equal(workers_sum(w, "shardex_write_ack_seconds_bucket",
                                 LABELS("method=\"put\"", "le=\"+Inf\""), NULL),
                     PUTS);
    assert_int_equal(
        workers_sum(w, "shardex_write_ack_seconds_count", LABELS("method=\"delete\""), NULL), 1);
    assert_true(workers_sum(w, "shardex_write_ack_seconds_sum", LABELS("method=\"put\""), NULL) >
                0);
    assert_int_equal(workers_sum(w, "shardex_query_seconds_count", LABELS("mode=\"local\""), NULL),
                     LOCAL_QUERIES);
    assert_int_equal(workers_sum(w, "shardex_query_seconds_count", LABELS("mode=\"global\""), NULL),
                     GLOBAL_QUERIES);
    assert_int_equal(workers_sum(w, "shardex_query_seconds_bucket",
                                 LABELS("mode=\"global\"", "le=\"+Inf\""), NULL),
                     GLOBAL_QUERIES);
    for (int i = 0; i < WORKERS; i++) {
        int n = 0;
        assert_int_equal(sum_of(w[i], "shardex_worker_lease_valid", NULL, NULL), 1);
        assert_true(sum_of(w[i], "shardex_store_disk_bytes", LABELS("store=\"terms\""), &n) > 0);
        assert_int_equal(n, 1);
        sum_of(w[i], "shardex_store_disk_bytes", LABELS("store=\"partitions/p"), &n);
        assert_int_equal(n, P * R / WORKERS); /* R = WORKERS: each hosts every partition */
    }
}

static void check_coordinator(scrapes *s)
{
    const char *t = s->coord;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(s->c);
    assert_non_null(m);
    double version = sum_of(t, "shardex_coordinator_map_version", NULL, NULL);
    assert_true(version >= 1 && version <= (double)m->version);
    sx_rpc_free(&m->base);
    assert_int_equal(sum_of(t, "shardex_coordinator_workers", NULL, NULL), WORKERS);
    assert_int_equal(sum_of(t, "shardex_coordinator_down_workers", NULL, NULL), 0);
    assert_int_equal(sum_of(t, "shardex_coordinator_leaderless_partitions", NULL, NULL), 0);
    assert_int_equal(sum_of(t, "shardex_coordinator_under_replicated_partitions", NULL, NULL), 0);
    assert_int_equal(sum_of(t, "shardex_coordinator_unowned_term_partitions", NULL, NULL), 0);
    int n = 0;
    assert_int_equal(sum_of(t, "shardex_log_partition_leaderless", NULL, &n), 0);
    assert_int_equal(n, P);
    assert_int_equal(sum_of(t, "shardex_log_partition_available", NULL, NULL), P);
    assert_int_equal(
        sum_of(t, "shardex_index_backfilled_partitions", LABELS("index=\"color\""), NULL), P);
    assert_int_equal(sum_of(t, "shardex_index_ready", LABELS("index=\"color\""), NULL), 1);
    sum_of(t, "shardex_term_partition_lag_seconds", LABELS("index=\"color\""), &n);
    assert_int_equal(n, P);
    /* Entries and load, per owned term partition (values: test_range_split). */
    sum_of(t, "shardex_term_partition_entries", LABELS("index=\"color\""), &n);
    assert_int_equal(n, P);
    sum_of(t, "shardex_term_partition_writes_per_second", LABELS("index=\"color\""), &n);
    assert_int_equal(n, P);
    sum_of(t, "shardex_term_partition_reads_per_second", LABELS("index=\"color\""), &n);
    assert_int_equal(n, P);
    /* Its own requests: the index created (forwarded by a worker), heartbeats. */
    assert_int_equal(sum_of(t, "shardex_rpc_server_requests_total",
                            LABELS("method=\"CreateIndex\"", "code=\"OK\""), NULL),
                     1);
    assert_true(sum_of(t, "shardex_rpc_server_requests_total",
                       LABELS("method=\"Heartbeat\"", "code=\"OK\""), NULL) > 0);
    assert_int_equal(sum_of(t, "shardex_coordinator_leading", NULL, NULL), 1);
    /* Its map's store on disk: none when the map is in etcd. */
    assert_int_equal(sum_of(t, "shardex_store_disk_bytes", LABELS("store=\"meta\""), NULL) > 0,
                     !s->c->opts.etcd);
}

static void check_http(sx_cluster *c)
{
    http_resp r = http(c->worker_metrics_port[0], "GET", "/nope");
    assert_int_equal(r.status, 404);
    free(r.body);
    r = http(c->coord_metrics_port, "POST", "/metrics");
    assert_int_equal(r.status, 405);
    free(r.body);
}

/* A worker told to serve metrics on an address in use (the coordinator's
 * endpoint) exits 1 saying so, before it registers: the coordinator never
 * counts it (check_coordinator sees WORKERS workers). */
static void check_port_in_use(sx_cluster *c)
{
    char bin[512], data[512], out[512], err[512], addr[64];
    sx_cluster_bin("worker/shardex-worker", bin, sizeof(bin));
    snprintf(data, sizeof(data), "%s/w-busy", c->dir);
    snprintf(out, sizeof(out), "%s/w-busy.out", c->dir);
    snprintf(err, sizeof(err), "%s/w-busy.err", c->dir);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", c->coord_metrics_port);
    char *argv[] = {bin,        "--coordinator", c->coord_addr,      "--data-dir", data,
                    "--listen", "127.0.0.1:0",   "--metrics-listen", addr,         NULL};
    sx_h_run r = sx_h_run_wait(argv, NULL, NULL, out, err, WAIT_MS);
    if (r.code != 1 || !strstr(r.err, "metrics: cannot listen on")) {
        sx_h_run_print("worker on a metrics port in use", &r);
        fail_msg("a worker whose metrics address is in use did not exit 1 saying so");
    }
    sx_h_run_free(&r);
}

static void test_metrics(void **state)
{
    (void)state;
    sx_cluster c;
    sx_cluster_opts o = {
        .workers = WORKERS, .partitions = P, .replication = R, .min_isr = 1, .metrics = true};
    assert_true(sx_cluster_start(&c, &o));
    scrapes s = {.c = &c};

    /* Before any traffic: valid, and nothing applied yet. */
    scrape_all(&s);
    for (int i = 0; i < WORKERS; i++) {
        promtool_check(c.dir, "a worker's first scrape", s.w[i]);
        assert_int_equal(sum_of(s.w[i], "shardex_documents_applied_total", NULL, NULL), 0);
    }
    promtool_check(c.dir, "the coordinator's first scrape", s.coord);
    check_port_in_use(&c);

    sx_err err = {0};
    sx_qindex ix = {.name = "color", .field = "color", .local = true, .global = true};
    if (sx_q_create_index(&c, c.worker_addr[0], &ix, &err) != SX_OK)
        fail_msg("create index: %s", err.msg);
    assert_true(sx_q_wait_ready(&c, c.worker_addr[0], "color", WAIT_MS));
    sx_qtokens tokens = {0};
    write_docs(&c, &tokens);
    run_queries(&c, &tokens);

    if (!sx_h_wait_for(all_applied, &s, WAIT_MS))
        fail_msg("documents applied: %g on the workers, want %d",
                 workers_sum(s.w, "shardex_documents_applied_total", NULL, NULL),
                 R * (PUTS * DOCS_PER_PUT + DELETED));
    if (!sx_h_wait_for(replicas_settled, &s, WAIT_MS))
        fail_msg("the workers do not report every partition hosted %d times and led once", R);
    if (!sx_h_wait_for(coordinator_settled, &s, WAIT_MS)) {
        fprintf(stderr, "%s\n", s.coord);
        fail_msg("the coordinator's metrics do not show the cluster settled");
    }
    for (int i = 0; i < WORKERS; i++)
        promtool_check(c.dir, "a worker's scrape after traffic", s.w[i]);
    promtool_check(c.dir, "the coordinator's scrape after traffic", s.coord);
    check_worker_counts(&s);
    check_coordinator(&s);
    check_http(&c);

    scrapes_free(&s);
    /* A graceful stop ends the endpoint with the rest, exit status 0 (under
     * the sanitizers: without a leak), and its port stops answering. */
    int port = c.worker_metrics_port[1];
    int st = sx_h_stop(c.worker_pid[1], WAIT_MS);
    c.worker_pid[1] = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* A worker that stopped without being drained or removed is down (the
     * ShardexWorkerDown alert), once it left or its lease expired. */
    if (!sx_h_wait_for(one_down, &s, WAIT_MS)) {
        fprintf(stderr, "%s\n", s.coord);
        fail_msg("the coordinator does not count the stopped worker down");
    }
    scrapes_free(&s);
    st = sx_h_stop(c.coord_pid, WAIT_MS);
    c.coord_pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    http_resp r = http(port, "GET", "/metrics");
    assert_int_equal(r.status, 0);
    free(r.body);
    sx_cluster_kill_all(&c);
    sx_cluster_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
