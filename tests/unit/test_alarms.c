/* test_alarms.c: what `shardex status` raises alarms for (client/alarms.h),
 * one cluster status at a time: a healthy one raises none; each fault raises
 * its own line, and thresholds are taken as given. */
#include "alarms.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef Shardex__V1__ClusterStatusResponse status;

/* A healthy cluster: 2 workers, 2 log partitions at R=2, one term partition. */
typedef struct fx {
    status r;
    Shardex__V1__WorkerStatus w[2], *wp[2];
    Shardex__V1__LogPartitionStatus p[2], *pp[2];
    Shardex__V1__ReplicaStatus rep[2][2], *repp[2][2];
    Shardex__V1__TermPartitionStatus t, *tp;
} fx;

static void healthy(fx *f)
{
    memset(f, 0, sizeof(*f));
    shardex__v1__cluster_status_response__init(&f->r);
    f->r.partitions = 2;
    f->r.replication = 2;
    f->r.min_isr = 1;
    static const char *const ids[] = {"w-a", "w-b"};
    for (int i = 0; i < 2; i++) {
        shardex__v1__worker_status__init(&f->w[i]);
        f->w[i].id = (char *)ids[i];
        f->w[i].address = "127.0.0.1:1";
        f->w[i].alive = true;
        f->w[i].lease_remaining_ms = 1500;
        f->wp[i] = &f->w[i];
        shardex__v1__log_partition_status__init(&f->p[i]);
        f->p[i].partition = (uint32_t)i;
        f->p[i].leader = (char *)ids[i];
        f->p[i].available = true;
        for (int k = 0; k < 2; k++) {
            shardex__v1__replica_status__init(&f->rep[i][k]);
            f->rep[i][k].worker_id = (char *)ids[k];
            f->rep[i][k].in_sync = true;
            f->repp[i][k] = &f->rep[i][k];
        }
        f->p[i].replicas = f->repp[i];
        f->p[i].n_replicas = 2;
        f->pp[i] = &f->p[i];
    }
    shardex__v1__term_partition_status__init(&f->t);
    f->t.index = "by_color";
    f->t.owner = "w-a";
    f->t.ready = true;
    f->t.lag_offsets = 10;
    f->tp = &f->t;
    f->r.workers = f->wp;
    f->r.n_workers = 2;
    f->r.log_partitions = f->pp;
    f->r.n_log_partitions = 2;
    f->r.term_partitions = &f->tp;
    f->r.n_term_partitions = 1;
}

static char lines[4096];

static void collect(void *arg, const char *line)
{
    (void)arg;
    strncat(lines, line, sizeof(lines) - strlen(lines) - 2);
    strcat(lines, "\n");
}

static size_t alarms_of(const fx *f, uint64_t max_lag, uint64_t lease_warn_ms)
{
    lines[0] = '\0';
    sx_alarm_opts o = {.max_lag = max_lag, .lease_warn_ms = lease_warn_ms};
    return sx_alarms(&f->r, &o, collect, NULL);
}

static void expect(const fx *f, const char *want)
{
    size_t n = alarms_of(f, 100, 500);
    if (n != 1 || !strstr(lines, want))
        fail_msg("want one alarm \"%s\", got %zu:\n%s", want, n, lines);
}

static void test_alarms(void **state)
{
    (void)state;
    fx f;
    healthy(&f);
    if (alarms_of(&f, 100, 500) != 0)
        fail_msg("a healthy cluster raised:\n%s", lines);
    /* Thresholds: lag 10 is over 5, a 1500 ms lease is under 2000. */
    assert_int_equal(alarms_of(&f, 5, 500), 1);
    assert_non_null(strstr(lines, "term partition 0 of index by_color lags 10 offsets"));
    assert_int_equal(alarms_of(&f, 100, 2000), 2);
    assert_non_null(strstr(lines, "worker w-a (127.0.0.1:1) is near lease expiry: 1500 ms left"));

    healthy(&f);
    f.w[1].alive = false;
    expect(&f, "worker w-b (127.0.0.1:1) is dead");

    healthy(&f);
    f.p[1].leader = "";
    expect(&f, "log partition 1 has no leader");

    healthy(&f);
    f.p[0].available = false;
    expect(&f, "log partition 0 is unavailable");

    healthy(&f);
    f.rep[0][1].in_sync = false;
    expect(&f, "log partition 0 is under-replicated: 1 of 2 in sync");

    healthy(&f);
    f.t.owner = "";
    expect(&f, "term partition 0 of index by_color has no owner");

    healthy(&f);
    f.t.ready = false;
    expect(&f, "term partition 0 of index by_color is not ready");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alarms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
