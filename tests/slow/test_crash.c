/*
 * test_crash.c - crash safety from the outside: `vigil run` is SIGKILLed at 10 seeded
 * points of a stream of simulated telemetry and restarted each time; in the end its
 * database must hold every produced (machine, seq) exactly once, its offsets must be the
 * partitions' ends, its alert outbox must be empty, and its set of alert ids must equal
 * that of a reference `vigil run` that consumed the same stream, uninterrupted, in another
 * consumer group with its own data directory.
 *
 * The embedded broker runs as `vigil broker` in its own process so that it survives the
 * kills. It keeps only the newest 5 MB of each partition, so the test paces its producer:
 * no partition ever holds more than PACE_BYTES (uncompressed) beyond the lowest offset
 * either group has committed, so what the broker discards has been consumed by both.
 *
 * Kill points come from a seeded generator: a third of them a random delay (0-6 s) after
 * the process started (start-up, outbox re-send, group join), the others a random delay
 * (0-3 s) after it was assigned its partitions (while it consumes, seals and writes). With
 * SEED the 10 kills are 4 after the start (0.4, 2.0, 3.8 and 5.1 s) and 6 after the
 * assignment (0.08 s, as it restores state, then 0.25, 0.7, 2.4, 2.8 and 3.0 s).
 * Everything that waits polls a condition against a deadline.
 *
 * THREAD MODEL: one thread (the test's) produces, reads delivery reports, queries the
 * groups' committed offsets, spawns and kills the child processes and, once they are gone,
 * reads their databases. Children get PR_SET_PDEATHSIG so that they die with the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "sim.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

#define NPARTS     12
#define MACHINES   200
#define TENANTS    4
#define RATE       100.0 /* events per machine per simulated second */
#define SIM_S      25    /* simulated seconds: MACHINES * RATE * SIM_S events */
#define KILLS      10
#define SEED       0x5eed20b2ull /* the kill points above */
#define PACE_BYTES (3u << 20)    /* the broker keeps 5 MB (compressed) per partition */
#define DEADLINE_S 280
#define TOPIC      "telemetry"

struct part {      /* what the test produced to one partition */
    uint64_t *cum; /* cum[o]: bytes of offsets 0..o */
    size_t n, cap;
};

struct cx {
    char *dir;
    char brokers[256];
    char offsets_key[160];
    pid_t broker, crash, ref;
    rd_kafka_t *prod;
    rd_kafka_t *q_crash, *q_ref; /* consumers that never join: committed offsets only */
    struct part parts[NPARTS];
    uint64_t inflight_bytes;
    size_t inflight;
    int dr_errors;
    struct vgt_ledger ledger; /* what was produced */
    uint64_t rng;
};

/* ---- fixture ---------------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct cx *c = opaque;
    struct part *p;

    (void)rk;
    /* Runs on the test's thread, inside rd_kafka_poll/flush. */
    c->inflight--;
    c->inflight_bytes -= m->len;
    if (m->err || m->partition < 0 || m->partition >= NPARTS) {
        c->dr_errors++;
        return;
    }
    p = &c->parts[m->partition];
    if ((size_t)m->offset != p->n) { /* idempotent producer: dense, in order */
        c->dr_errors++;
        return;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4096;
        p->cum = realloc(p->cum, p->cap * sizeof(*p->cum));
        if (p->cum == NULL)
            abort(); /* a test out of memory cannot go on */
    }
    p->cum[p->n] = (p->n ? p->cum[p->n - 1] : 0) + m->len;
    p->n++;
}

static rd_kafka_t *new_client(struct cx *c, rd_kafka_type_t type, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char err[512];

    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_PRODUCER) {
        assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "compression.codec", "zstd", err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rd_kafka_conf_set_opaque(conf, c);
    } else {
        assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
    }
    rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (rk == NULL)
        fail_msg("rd_kafka_new: %s", err);
    return rk;
}

static int cx_setup(void **state)
{
    struct cx *c = calloc(1, sizeof(*c));
    char addr_file[512];
    uint64_t t0 = vg_mono_ns();

    if (c == NULL)
        return -1;
    vg_log_set_level(VG_LOG_WARN);
    c->dir = vgt_tmpdir("crash");
    c->rng = SEED;
    if (c->dir == NULL)
        return -1;
    vgt_ledger_init(&c->ledger);
    *state = c;
    snprintf(addr_file, sizeof(addr_file), "%s/broker.addr", c->dir);
    {
        char log[512];
        const char *argv[] = {VG_VIGIL_BIN, "broker", "--partitions", "12", "--address-file",
                              addr_file,    NULL};

        snprintf(log, sizeof(log), "%s/broker.log", c->dir);
        c->broker = vgt_spawn(log, argv);
    }
    for (;;) {
        char *s = vgt_read_file(addr_file, NULL);

        if (s != NULL) {
            snprintf(c->brokers, sizeof(c->brokers), "%.*s", (int)strcspn(s, "\n"), s);
            free(s);
            break;
        }
        if (vgt_elapsed_s(t0) > 20) {
            print_error("broker did not write its address\n");
            return -1;
        }
        nanosleep(&(struct timespec){0, 20000000}, NULL); /* poll interval */
    }
    return 0;
}

static int cx_teardown(void **state)
{
    struct cx *c = *state;

    /* Children first: a failed assertion jumps here with them still running. */
    vgt_stop_proc(&c->crash, SIGKILL, 10);
    vgt_stop_proc(&c->ref, SIGKILL, 10);
    if (c->prod)
        rd_kafka_destroy(c->prod);
    if (c->q_crash)
        rd_kafka_destroy(c->q_crash);
    if (c->q_ref)
        rd_kafka_destroy(c->q_ref);
    vgt_stop_proc(&c->broker, SIGTERM, 10);
    rd_kafka_wait_destroyed(10000);
    vgt_ledger_free(&c->ledger);
    for (int i = 0; i < NPARTS; i++)
        free(c->parts[i].cum);
    sto_thread_cleanup();
    if (getenv("VG_KEEP_TMP") == NULL)
        vgt_rmtree(c->dir);
    free(c->dir);
    free(c);
    return 0;
}

/* ---- producing -------------------------------------------------------------------- */

static void produce(struct cx *c, const char *key, const void *val, size_t len)
{
    rd_kafka_resp_err_t e;

    for (;;) {
        e = rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(c->prod, 10);
    }
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    c->inflight++;
    c->inflight_bytes += len;
}

/* Committed offsets of the group behind q (0 where none). */
static void committed(rd_kafka_t *q, int64_t *off)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    rd_kafka_resp_err_t e;

    for (int i = 0; i < NPARTS; i++)
        rd_kafka_topic_partition_list_add(l, TOPIC, i);
    e = rd_kafka_committed(q, l, 5000);
    for (int i = 0; i < NPARTS; i++)
        off[i] = e == 0 && l->elems[i].err == 0 && l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
}

/* The most any partition holds beyond what both groups committed, plus what is in flight
 * (which may all land on one partition). */
static uint64_t ahead_bytes(struct cx *c, const int64_t *a, const int64_t *b)
{
    uint64_t most = 0;

    for (int i = 0; i < NPARTS; i++) {
        const struct part *p = &c->parts[i];
        int64_t low = a[i] < b[i] ? a[i] : b[i];
        uint64_t total = p->n ? p->cum[p->n - 1] : 0;
        uint64_t done = low > 0 && (size_t)low <= p->n ? p->cum[low - 1] : 0;

        if (total - done > most)
            most = total - done;
    }
    return most + c->inflight_bytes;
}

static bool all_committed(struct cx *c, const int64_t *off)
{
    for (int i = 0; i < NPARTS; i++)
        if ((size_t)off[i] != c->parts[i].n)
            return false;
    return true;
}

static uint64_t rnd(struct cx *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

/* ---- the processes under test ------------------------------------------------------ */

static pid_t start_run(struct cx *c, const char *name, int n)
{
    char data[512], log[512], jsonl[512], group[64];
    const char *argv[] = {VG_VIGIL_BIN, "run", "--brokers", c->brokers, "--group", group, "--data",
                          data, "--alerts-jsonl", jsonl, "--no-api", "--lateness", "2", "-q",
                          /* The broker frees a dead member's partitions after its session
                           * times out: keep that short (vgtest.h). */
                          "-X", "session.timeout.ms=" VGT_SESSION_MS_STR, "-X",
                          "heartbeat.interval.ms=" VGT_HEARTBEAT_MS_STR, NULL};

    snprintf(group, sizeof(group), "vigil-%s", name);
    snprintf(data, sizeof(data), "%s/%s-data", c->dir, name);
    snprintf(jsonl, sizeof(jsonl), "%s/%s-alerts.jsonl", c->dir, name);
    snprintf(log, sizeof(log), "%s/%s-%02d.log", c->dir, name, n);
    return vgt_spawn(log, argv);
}

/* ---- checking a database ---------------------------------------------------------- */

struct ids {
    char **id;
    size_t n, cap;
};

static void ids_add(struct ids *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->id = realloc(s->id, s->cap * sizeof(*s->id));
        assert_non_null(s->id);
    }
    s->id[s->n++] = strdup(id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes repeats; returns how many repeats there were. */
static size_t ids_sort_unique(struct ids *s)
{
    size_t w = 0, dups = 0;

    qsort(s->id, s->n, sizeof(*s->id), cmp_str);
    for (size_t i = 0; i < s->n; i++) {
        if (w > 0 && strcmp(s->id[w - 1], s->id[i]) == 0) {
            free(s->id[i]);
            dups++;
            continue;
        }
        s->id[w++] = s->id[i];
    }
    s->n = w;
    return dups;
}

static void ids_free(struct ids *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->id[i]);
    free(s->id);
}

static bool on_alert(void *ctx, const Vigil__Alert *a)
{
    ids_add(ctx, a->id);
    return true;
}

static bool on_outbox(void *ctx, const char *id)
{
    (void)id;
    (*(size_t *)ctx)++;
    return true;
}

/* Every machine's timeline holds exactly its produced events, each once; the offsets are
 * the partitions' ends; the outbox is empty. Fills the stored alert ids. */
static void check_db(struct cx *c, const char *name, struct ids *alerts)
{
    struct sto_opts so = {0};
    sto_db *db;
    char path[512], err[512];
    size_t outbox = 0;

    snprintf(path, sizeof(path), "%s/%s-data", c->dir, name);
    so.path = path;
    if (sto_open(&so, &db, err, sizeof(err)) != 0)
        fail_msg("%s: %s", path, err);
    vgt_ledger_check(&c->ledger, db, name);
    for (int i = 0; i < NPARTS; i++) {
        int64_t off = -1;

        assert_int_equal(sto_get_offset(db, c->offsets_key, i, &off), 0);
        if ((size_t)off != c->parts[i].n)
            fail_msg("%s: partition %d: stored offset %lld, end %zu", name, i, (long long)off,
                     c->parts[i].n);
    }
    assert_int_equal(sto_scan_outbox(db, on_outbox, &outbox), 0);
    if (outbox != 0)
        fail_msg("%s: %zu alerts still in the outbox after a clean stop", name, outbox);
    for (int t = 1; t <= TENANTS; t++) {
        char tenant[32];

        snprintf(tenant, sizeof(tenant), "tenant-%d", t);
        assert_int_equal(sto_scan_alerts(db, tenant, INT64_MIN, INT64_MAX, on_alert, alerts), 0);
    }
    assert_int_equal(ids_sort_unique(alerts), 0); /* the index lists an alert once */
    sto_close(db);
}

/* The ids in an alerts JSON-lines file (appended to by every run of one instance). */
static size_t jsonl_ids(struct cx *c, const char *name, struct ids *out)
{
    char path[512], line[65536];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s-alerts.jsonl", c->dir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        json_t *j = json_loads(line, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "id"));

        /* A kill may cut the last line of a run short; a whole line must carry an id. */
        if (id != NULL)
            ids_add(out, id);
        else if (strchr(line, '\n') != NULL && j != NULL)
            fail_msg("%s: alert line without id: %s", path, line);
        json_decref(j);
    }
    fclose(f);
    return ids_sort_unique(out);
}

static void assert_same_ids(const char *what, const struct ids *a, const struct ids *b)
{
    size_t i = 0, j = 0;
    bool same = true;

    while (i < a->n || j < b->n) {
        int d = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->id[i], b->id[j]);

        if (d == 0) {
            i++, j++;
            continue;
        }
        same = false;
        print_error("%s: alert %s only in the %s\n", what, d < 0 ? a->id[i] : b->id[j],
                    d < 0 ? "first" : "second");
        d < 0 ? i++ : j++;
    }
    if (!same)
        fail_msg("%s: %zu and %zu alert ids differ", what, a->n, b->n);
}

/* ---- the test --------------------------------------------------------------------- */

static void test_crash_restart(void **state)
{
    struct cx *c = *state;
    struct bench_sim_opts o;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    int64_t off_crash[NPARTS] = {0}, off_ref[NPARTS] = {0};
    uint64_t t0 = vg_mono_ns(), t_spawn, t_assigned = 0, t_query = 0, delay;
    uint64_t downtime_ns = 0, t_killed = 0;
    bool sim_done = false, assigned = false, mode_after_assign;
    Vigil__TelemetryBatch *held = NULL;
    int kills = 0, rc, kills_before_assign = 0;
    struct ids crash_ids = {0}, ref_ids = {0}, jl = {0};
    size_t jl_dups;
    char log[512];

    assert_non_null(a);
    c->prod = new_client(c, RD_KAFKA_PRODUCER, NULL);
    c->q_crash = new_client(c, RD_KAFKA_CONSUMER, "vigil-crash");
    c->q_ref = new_client(c, RD_KAFKA_CONSUMER, "vigil-ref");
    {
        char *cid = rd_kafka_clusterid(c->prod, 10000);

        assert_non_null(cid);
        snprintf(c->offsets_key, sizeof(c->offsets_key), "%s/%s", cid, TOPIC);
        free(cid);
    }
    bench_sim_opts_default(&o);
    o.machines = MACHINES;
    o.tenants = TENANTS;
    o.events_per_machine_per_sec = RATE;
    o.start_us = vg_now_us() / VG_US_PER_SEC * VG_US_PER_SEC;
    o.duration_us = SIM_S * VG_US_PER_SEC;
    o.scenario_start_us = VG_US_PER_SEC;
    o.scenario_every_us = 5 * VG_US_PER_SEC; /* alerts all along the stream */
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);

    c->ref = start_run(c, "ref", 0);
    c->crash = start_run(c, "crash", 0);
    t_spawn = vg_mono_ns();
    mode_after_assign = rnd(c) % 3 != 0;
    delay = rnd(c) % (mode_after_assign ? 3000 : 6000);

    /* Produce, paced, while killing and restarting the crash instance. */
    while (!sim_done || kills < KILLS) {
        uint64_t now = vg_mono_ns();
        bool idle = true;

        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("deadline: %d kills, %" PRIu64 " events produced", kills, c->ledger.events);
        vgt_check_alive(c->broker, "vigil broker");
        vgt_check_alive(c->ref, "vigil run (reference)");
        vgt_check_alive(c->crash, "vigil run (crashing)");
        if (now - t_query > 50000000u) {
            committed(c->q_crash, off_crash);
            committed(c->q_ref, off_ref);
            t_query = now;
        }
        /* Produce up to 64 batches while every partition is within the pace. */
        for (int i = 0; i < 64 && !sim_done; i++) {
            uint8_t *buf;
            size_t len;

            if (ahead_bytes(c, off_crash, off_ref) > PACE_BYTES)
                break;
            if (held == NULL) {
                vg_arena_reset(a);
                rc = bench_sim_next(s, a, &held);
                assert_true(rc >= 0);
                if (rc == 0) {
                    sim_done = true;
                    held = NULL;
                    break;
                }
            }
            assert_int_equal(bench_sim_pack(held, a, &buf, &len), 0);
            vgt_ledger_add(&c->ledger, held);
            produce(c, held->machine_id, buf, len);
            held = NULL;
            idle = false;
        }
        rd_kafka_poll(c->prod, 0);
        assert_int_equal(c->dr_errors, 0);

        /* The kill schedule. */
        if (kills < KILLS) {
            if (!assigned) {
                snprintf(log, sizeof(log), "%s/crash-%02d.log", c->dir, kills);
                if (vgt_file_has(log, "ingest: assigned")) {
                    assigned = true;
                    t_assigned = vg_mono_ns();
                    if (t_killed != 0)
                        downtime_ns += t_assigned - t_killed;
                }
            }
            if ((!mode_after_assign && now - t_spawn >= delay * 1000000u) ||
                (mode_after_assign && assigned && now - t_assigned >= delay * 1000000u)) {
                kills_before_assign += !assigned;
                vgt_stop_proc(&c->crash, SIGKILL, 10);
                t_killed = vg_mono_ns();
                kills++;
                c->crash = start_run(c, "crash", kills);
                t_spawn = vg_mono_ns();
                assigned = false;
                mode_after_assign = rnd(c) % 3 != 0;
                delay = rnd(c) % (mode_after_assign ? 3000 : 6000);
                idle = false;
            }
        }
        if (idle)
            nanosleep(&(struct timespec){0, 2000000}, NULL); /* poll interval */
    }
    assert_int_equal(rd_kafka_flush(c->prod, 30000), 0);
    assert_int_equal(c->inflight, 0);
    assert_int_equal(c->dr_errors, 0);
    print_message("  %d kills (%d before assignment) while producing %" PRIu64
                  " events in %.1f s; %.1f s without a consuming instance\n",
                  kills, kills_before_assign, c->ledger.events, vgt_elapsed_s(t0),
                  (double)downtime_ns / 1e9);

    /* The last instance and the reference catch up; then both stop cleanly. */
    for (;;) {
        committed(c->q_crash, off_crash);
        committed(c->q_ref, off_ref);
        if (all_committed(c, off_crash) && all_committed(c, off_ref))
            break;
        vgt_check_alive(c->crash, "vigil run (crashing)");
        vgt_check_alive(c->ref, "vigil run (reference)");
        if (vgt_elapsed_s(t0) > DEADLINE_S + 60)
            fail_msg("deadline: the instances did not commit the partitions' ends");
        nanosleep(&(struct timespec){0, 100000000}, NULL); /* poll interval */
    }
    print_message("  both caught up at %.1f s\n", vgt_elapsed_s(t0));
    rc = vgt_stop_proc(&c->crash, SIGTERM, 30);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    rc = vgt_stop_proc(&c->ref, SIGTERM, 30);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);

    /* The broker keeps the newest 5 MB of a partition, so old data is gone by now; the
     * pace kept it from dropping anything not yet committed by both groups (which the
     * timeline check below would catch). The ends are what the test produced. */
    for (int i = 0; i < NPARTS; i++) {
        int64_t lo = -1, hi = -1;

        assert_int_equal(rd_kafka_query_watermark_offsets(c->prod, TOPIC, i, &lo, &hi, 10000), 0);
        assert_int_equal((size_t)hi, c->parts[i].n);
    }
    check_db(c, "ref", &ref_ids);
    check_db(c, "crash", &crash_ids);
    print_message("  alerts: %zu stored by the reference, %zu by the crashed instance\n", ref_ids.n,
                  crash_ids.n);
    assert_true(ref_ids.n >= bench_sim_truth_count(s) / 2);
    assert_same_ids("reference vs crashed", &ref_ids, &crash_ids);
    /* Every stored alert went out (JSON lines are written with the Kafka send), some of
     * them again after a crash: at least once, with the same id. */
    jl_dups = jsonl_ids(c, "crash", &jl);
    print_message("  crashed instance's JSON lines: %zu ids, %zu re-sent\n", jl.n, jl_dups);
    assert_same_ids("stored vs JSON lines", &crash_ids, &jl);
    ids_free(&crash_ids);
    ids_free(&ref_ids);
    ids_free(&jl);
    bench_sim_free(s);
    vg_arena_destroy(a);
    print_message("  total %.1f s\n", vgt_elapsed_s(t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crash_restart, cx_setup, cx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
