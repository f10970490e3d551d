/* peers_pg.c: the private PostgreSQL server's life (peers_pg.h): directory,
 * initdb, configuration, pg_ctl start and stop, and what crashed runs left.
 * Commands are run with the test harness (sx_h_run_wait: no shell, a
 * timeout, output to a file), prefixed with `runuser -u postgres --` as root.
 */
#include "peers_pg.h"

#include "benchlib.h"
#include "clock.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DIR_PREFIX "bench-peers-pg."
#define OWNER_FILE "bench.pid" /* the benchmark process that made the directory */
#define PG_PORT "5432"         /* only names the socket file: no TCP */
#define RUNUSER "/usr/sbin/runuser"
#define DEFAULT_BINDIR "/usr/lib/postgresql/15/bin"
#define INITDB_MS 180000
#define PG_CTL_MS 120000
#define PG_CTL_WAIT_S "90" /* pg_ctl -t: shorter than PG_CTL_MS, so pg_ctl says why */
#define GONE_MS 15000      /* a signalled postmaster has this long to exit */

static const char *tmp_base(void)
{
    const char *t = getenv("TMPDIR");
    return t && t[0] ? t : "/tmp";
}

/* The first line of path into out, without its newline; false if unreadable. */
static bool read_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return ok;
}

/* Whether pid runs a program named comm (/proc/PID/comm): a pid alone may
 * have been reused since it was written down. */
static bool runs(pid_t pid, const char *comm)
{
    char path[64], name[64];
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    return pid > 0 && read_line(path, name, sizeof(name)) && strcmp(name, comm) == 0;
}

/* Sends sig to a postmaster (not our child) and waits until it is gone,
 * SIGKILL after GONE_MS. */
static void end_postmaster(pid_t pid, int sig)
{
    kill(pid, sig);
    uint64_t t0 = sx_clock_now_ms();
    while (runs(pid, "postgres") && sx_clock_now_ms() - t0 < GONE_MS)
        sx_clock_sleep_ms(20);
    if (runs(pid, "postgres"))
        kill(pid, SIGKILL);
}

static pid_t postmaster_of(const char *dir)
{
    char path[512], line[32];
    snprintf(path, sizeof(path), "%s/data/postmaster.pid", dir);
    return read_line(path, line, sizeof(line)) ? (pid_t)atol(line) : 0;
}

/* A directory is stale when the benchmark that made it is gone (or, without
 * its owner file, when it is more than ten minutes old). */
static bool stale(const char *dir)
{
    char path[512], line[32];
    snprintf(path, sizeof(path), "%s/" OWNER_FILE, dir);
    if (read_line(path, line, sizeof(line)))
        return !runs((pid_t)atol(line), "bench_peers");
    struct stat st;
    return stat(dir, &st) == 0 && time(NULL) - st.st_mtime > 600;
}

void peers_pg_sweep(void)
{
    DIR *d = opendir(tmp_base());
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0)
            continue;
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", tmp_base(), e->d_name);
        if (!stale(dir))
            continue;
        pid_t pm = postmaster_of(dir);
        if (runs(pm, "postgres"))
            end_postmaster(pm, SIGQUIT); /* immediate shutdown: its data is thrown away */
        sx_h_rmtree(dir);
        fprintf(stderr, "bench_peers: removed %s, left by a run that is gone%s\n", dir,
                runs(pm, "postgres") ? " (its postmaster would not stop)" : "");
    }
    closedir(d);
}

/* Runs argv (argv[0] a path; as postgres when root) with its output in
 * DIR/log; true when it exited 0. Otherwise why says so and the log is
 * printed to stderr. */
static bool run_logged(const peers_pg *pg, const char *log, char *const *argv, uint64_t timeout_ms,
                       char *why, size_t cap)
{
    char *full[24];
    size_t n = 0;
    if (pg->as_postgres) {
        full[n++] = RUNUSER;
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (size_t i = 0; argv[i] && n < sizeof(full) / sizeof(full[0]) - 1; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", pg->dir, log);
    sx_h_run r = sx_h_run_wait(full, NULL, NULL, path, path, timeout_ms);
    int code = r.code;
    sx_h_run_free(&r);
    if (code == 0)
        return true;
    const char *base = strrchr(argv[0], '/');
    char what[96], how[64];
    snprintf(what, sizeof(what), "%s%s%s", base ? base + 1 : argv[0],
             argv[1] && argv[1][0] != '-' ? " " : "", argv[1] && argv[1][0] != '-' ? argv[1] : "");
    if (code < 0)
        snprintf(how, sizeof(how), "timed out after %llu s or was killed",
                 (unsigned long long)(timeout_ms / 1000));
    else
        snprintf(how, sizeof(how), "failed with exit %d", code);
    fprintf(stderr, "bench_peers: %s %s; its output (%s):\n", what, how, path);
    sx_h_dump_log(path, 60);
    snprintf(why, cap, "%s %s (its output is above)", what, how);
    return false;
}

static void find_bindir(const peers_pg_opts *opts, peers_pg *pg)
{
    snprintf(pg->bindir, sizeof(pg->bindir), "%s", opts->bindir ? opts->bindir : "");
    if (pg->bindir[0])
        return;
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (p) {
        if (!fgets(pg->bindir, sizeof(pg->bindir), p))
            pg->bindir[0] = '\0';
        pg->bindir[strcspn(pg->bindir, "\n")] = '\0';
        pclose(p);
    }
    if (!pg->bindir[0])
        snprintf(pg->bindir, sizeof(pg->bindir), "%s", DEFAULT_BINDIR);
}

/* mkdtemp, the owner file, and the postgres user's ownership when root. */
static bool make_dir(peers_pg *pg, char *why, size_t cap)
{
    int n = snprintf(pg->dir, sizeof(pg->dir), "%s/" DIR_PREFIX "XXXXXX", tmp_base());
    /* The socket's path must fit a sockaddr_un. */
    if (n < 0 || (size_t)n >= sizeof(pg->dir) ||
        (size_t)n + sizeof("/.s.PGSQL." PG_PORT) > sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(why, cap, "TMPDIR %s is too long for a Unix socket path (at most %zu bytes)",
                 tmp_base(), sizeof(((struct sockaddr_un *)0)->sun_path) - 40);
        return false;
    }
    if (!mkdtemp(pg->dir)) {
        snprintf(why, cap, "mkdtemp %s: %s", pg->dir, strerror(errno));
        return false;
    }
    pg->created = true;
    char path[512];
    snprintf(path, sizeof(path), "%s/" OWNER_FILE, pg->dir);
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return false;
    }
    pg->as_postgres = geteuid() == 0;
    if (pg->as_postgres) {
        const struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(why, cap,
                     "running as root needs the postgres user (Debian's postgresql "
                     "package makes it) to own %s: %s",
                     pg->dir, pw ? strerror(errno) : "no such user");
            return false;
        }
    }
    return true;
}

/* Our settings, appended to the postgresql.conf initdb wrote. */
static bool configure(const peers_pg *pg, char *why, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data/postgresql.conf", pg->dir);
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return false;
    }
    fprintf(f,
            "\n# bench_peers: a Unix socket in the run's directory, no TCP\n"
            "listen_addresses = ''\n"
            "unix_socket_directories = '%s'\n"
            "port = " PG_PORT "\n"
            "# the defaults, spelled out: every commit is flushed to disk\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "full_page_writes = on\n",
            pg->dir);
    if (fclose(f) != 0) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool peers_pg_start(const peers_pg_opts *opts, peers_pg *pg, char *why, size_t cap)
{
    memset(pg, 0, sizeof(*pg));
    find_bindir(opts, pg);
    if (!make_dir(pg, why, cap))
        return false;
    char initdb[300], pg_ctl[300], data[300], log[300];
    snprintf(initdb, sizeof(initdb), "%s/initdb", pg->bindir);
    snprintf(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", pg->bindir);
    snprintf(data, sizeof(data), "%s/data", pg->dir);
    snprintf(log, sizeof(log), "%s/postgres.log", pg->dir);
    if (access(initdb, X_OK) != 0) {
        snprintf(why, cap, "%s: %s (install Debian's postgresql, or pass --pg-bin DIR)", initdb,
                 strerror(errno));
        return false;
    }
    char *init_argv[] = {initdb,
                         "-D",
                         data,
                         "-U",
                         "postgres",
                         "--auth=trust",
                         "--encoding=UTF8",
                         "--locale=C.UTF-8",
                         "--no-instructions",
                         NULL};
    if (!run_logged(pg, "initdb.log", init_argv, INITDB_MS, why, cap) || !configure(pg, why, cap))
        return false;
    char *start_argv[] = {pg_ctl, "start", "-D", data, "-l", log, "-w", "-t", PG_CTL_WAIT_S, NULL};
    if (!run_logged(pg, "pg_ctl-start.log", start_argv, PG_CTL_MS, why, cap)) {
        sx_h_dump_log(log, 40);
        return false;
    }
    pg->started = true;
    pg->postmaster = postmaster_of(pg->dir);
    if (!runs(pg->postmaster, "postgres")) {
        snprintf(why, cap, "pg_ctl started a server, but %s/postmaster.pid names no postmaster",
                 data);
        return false;
    }
    return true;
}

void peers_pg_stop(peers_pg *pg)
{
    if (pg->started) {
        char pg_ctl[300], data[300], why[512];
        snprintf(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", pg->bindir);
        snprintf(data, sizeof(data), "%s/data", pg->dir);
        char *argv[] = {pg_ctl, "stop", "-D", data, "-m", "fast", "-w", "-t", PG_CTL_WAIT_S, NULL};
        bool ok = run_logged(pg, "pg_ctl-stop.log", argv, PG_CTL_MS, why, sizeof(why));
        if (!ok && runs(pg->postmaster, "postgres"))
            end_postmaster(pg->postmaster, SIGQUIT);
        pg->started = false;
    }
    if (pg->created) {
        sx_h_rmtree(pg->dir);
        pg->created = false;
    }
}

PGconn *peers_pg_connect(const peers_pg *pg, char *why, size_t cap)
{
    const char *keys[] = {"host", "port", "dbname", "user", "application_name", NULL};
    const char *vals[] = {pg->dir, PG_PORT, "postgres", "postgres", "bench_peers", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(why, cap, "connecting to PostgreSQL on %s: %s", pg->dir, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

uint64_t peers_pg_cpu_us(const peers_pg *pg)
{
    return pg->postmaster > 0 ? sx_bench_proc_tree_cpu_us(pg->postmaster) : 0;
}
