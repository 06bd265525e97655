/*
 * test_faults.c - the pipeline under broker faults, injected with the mock cluster's own
 * fault injection (rdkafka_mock.h): the broker down for ten seconds, errors on Fetch and
 * on OffsetCommit requests, partition leaders moving between three brokers. Through each,
 * vigil keeps running and in the end holds every produced event exactly once, with the
 * partitions' ends as its stored offsets.
 *
 * THREAD MODEL: the test's thread produces, injects faults, polls the pipeline's
 * statistics and reads the database; the pipeline runs its own threads (ingest.h). Every
 * wait polls a condition against a deadline. The one timed interval is the fault itself
 * (the broker stays down for DOWN_S), during which the test keeps polling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "corr.h"
#include "correlate.h"
#include "ingest.h"
#include "rules.h"
#include "sim.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

#define NPARTS     4
#define DEADLINE_S 30
#define DOWN_S     10
#define TOPIC      "telemetry"

/* Kafka protocol request types (ApiKey), as rd_kafka_mock_push_request_errors takes them. */
#define API_FETCH         1
#define API_OFFSET_COMMIT 8

/* ---- fixture ---------------------------------------------------------------------- */

struct fx {
    char *dir;
    ing_mock *mock;
    rd_kafka_mock_cluster_t *mc;
    const char *brokers;
    sto_db *db;
    cor_ruleset *rules;
    cor_corrset *corr;
    rd_kafka_t *prod;
    size_t inflight;
    int dr_errors;
    struct vgt_ledger ledger; /* what was produced */
    char offsets_key[128];
    /* the simulation being produced */
    bench_sim *sim;
    vg_arena *arena;
    int64_t sim_start_us;
    bool sim_done;
    Vigil__TelemetryBatch *held; /* the batch that ended the last sim_produce_until */
    /* The running pipeline, which the teardown stops first: a failed assertion leaves the
     * test at once, and a pipeline left running would write to the database it closes. */
    ing_pipeline *pipe;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct fx *f = opaque;

    (void)rk;
    f->inflight--;
    if (m->err)
        f->dr_errors++;
}

static int fx_setup_n(void **state, int nbrokers)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    struct sto_opts so = {0};
    rd_kafka_conf_t *conf;
    struct fx *f = calloc(1, sizeof(*f));
    char err[512];

    if (f == NULL)
        return -1;
    vg_log_set_level(VG_LOG_WARN);
    f->dir = vgt_tmpdir("faults");
    so.path = f->dir;
    if (sto_open(&so, &f->db, err, sizeof(err)) != 0 ||
        ing_mock_start(nbrokers, NPARTS, ing_default_topics, ING_DEFAULT_NTOPICS, &f->mock, err,
                       sizeof(err)) != 0 ||
        cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)) != 0 ||
        cor_corrset_load(dirs, 1, &f->corr, NULL, err, sizeof(err)) != 0) {
        print_error("setup: %s\n", err);
        return -1;
    }
    f->mc = ing_mock_cluster(f->mock);
    f->brokers = ing_mock_bootstraps(f->mock);
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err))) {
        print_error("producer conf: %s\n", err);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, f);
    f->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    f->arena = vg_arena_new(1 << 16);
    vgt_ledger_init(&f->ledger);
    if (f->prod == NULL || f->arena == NULL) {
        print_error("producer: %s\n", err);
        return -1;
    }
    {
        char *cid = rd_kafka_clusterid(f->prod, 10000);

        if (cid == NULL) {
            print_error("no cluster id\n");
            return -1;
        }
        snprintf(f->offsets_key, sizeof(f->offsets_key), "%s/%s", cid, TOPIC);
        free(cid);
    }
    *state = f;
    return 0;
}

static int fx_setup1(void **state)
{
    return fx_setup_n(state, 1);
}

static int fx_setup3(void **state)
{
    return fx_setup_n(state, 3);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    if (f->pipe != NULL)
        ing_pipeline_destroy(f->pipe);
    vgt_ledger_free(&f->ledger);
    bench_sim_free(f->sim);
    vg_arena_destroy(f->arena);
    /* A fault a failed test left behind must not hold up the producer's teardown. */
    rd_kafka_mock_broker_set_up(f->mc, -1);
    rd_kafka_mock_clear_request_errors(f->mc, API_FETCH);
    rd_kafka_mock_clear_request_errors(f->mc, API_OFFSET_COMMIT);
    rd_kafka_flush(f->prod, 10000);
    rd_kafka_destroy(f->prod);
    cor_ruleset_unref(f->rules);
    cor_corrset_unref(f->corr);
    sto_close(f->db);
    ing_mock_stop(f->mock);
    rd_kafka_wait_destroyed(10000);
    sto_thread_cleanup();
    vgt_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void poll_interval(void)
{
    nanosleep(&(struct timespec){0, 5000000}, NULL); /* a poll interval, not a synchronisation */
}

/* ---- producing -------------------------------------------------------------------- */

static void sim_begin(struct fx *f, uint32_t machines, int64_t duration_s)
{
    struct bench_sim_opts o;

    bench_sim_opts_default(&o);
    o.machines = machines;
    o.tenants = 2;
    o.start_us = vg_now_us() / VG_US_PER_SEC * VG_US_PER_SEC;
    o.duration_us = duration_s * VG_US_PER_SEC;
    o.scenario_start_us = VG_US_PER_SEC;
    o.scenario_mask = BENCH_SIM_RUN_WIN_REF;
    f->sim_start_us = o.start_us;
    assert_int_equal(bench_sim_new(&o, &f->sim, NULL, 0), 0);
}

/* Produces the simulation's batches whose first event is before until_s simulated seconds
 * (all of them with INT64_MAX); does not wait for delivery. */
static void sim_produce_until(struct fx *f, int64_t until_s)
{
    Vigil__TelemetryBatch *b;
    int rc;

    for (;;) {
        uint8_t *buf;
        size_t len;
        rd_kafka_resp_err_t e;

        if (f->held != NULL) {
            b = f->held;
        } else {
            if (f->sim_done)
                return;
            vg_arena_reset(f->arena);
            rc = bench_sim_next(f->sim, f->arena, &b);
            assert_true(rc >= 0);
            if (rc == 0) {
                f->sim_done = true;
                return;
            }
        }
        if (until_s != INT64_MAX &&
            b->events[0]->ts_us - f->sim_start_us >= until_s * VG_US_PER_SEC) {
            f->held = b; /* still valid: the arena is reset only before the next batch */
            return;
        }
        f->held = NULL;
        assert_int_equal(bench_sim_pack(b, f->arena, &buf, &len), 0);
        vgt_ledger_add(&f->ledger, b);
        do {
            e = rd_kafka_producev(f->prod, RD_KAFKA_V_TOPIC(TOPIC),
                                  RD_KAFKA_V_KEY(b->machine_id, strlen(b->machine_id)),
                                  RD_KAFKA_V_VALUE(buf, len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(f->prod, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        assert_int_equal(e, 0);
        f->inflight++;
        rd_kafka_poll(f->prod, 0);
    }
}

static void flush_all(struct fx *f)
{
    assert_int_equal(rd_kafka_flush(f->prod, 60000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(f->inflight, 0);
    assert_int_equal(f->dr_errors, 0);
}

/* ---- the pipeline ----------------------------------------------------------------- */

/* session_ms 0: librdkafka's default (45 s). The embedded broker completes a rebalance
 * (a member rejoining after a commit error, say) only once the session timeout less a
 * second has passed, so a test that forces rebalances keeps it short, VGT_SESSION_MS, and
 * heartbeats often (vgtest.h). */
static ing_pipeline *pipeline_start(struct fx *f, const char *group, int session_ms)
{
    static struct ing_kv props[2];
    struct ing_pipeline_cfg cfg = {0};
    ing_pipeline *p = NULL;
    char err[512];
    size_t nprops = 0;

    cfg.kafka.brokers = f->brokers;
    cfg.kafka.group = group;
    cfg.nshards = 2;
    cfg.rules = f->rules;
    cfg.corr = f->corr;
    cfg.db = f->db;
    cfg.commit_ms = getenv("VGT_COMMIT_MS") ? atoi(getenv("VGT_COMMIT_MS")) : 200;
    cfg.session_timeout_ms = session_ms;
    if (session_ms > 0)
        props[nprops++] = (struct ing_kv){"heartbeat.interval.ms", VGT_HEARTBEAT_MS_STR};
    if (getenv("VGT_KAFKA_DEBUG") != NULL) { /* e.g. cgrp,fetch: librdkafka's own debug logs */
        props[nprops++] = (struct ing_kv){"debug", getenv("VGT_KAFKA_DEBUG")};
        vg_log_set_level(VG_LOG_DEBUG);
    }
    cfg.kafka.props = props;
    cfg.kafka.nprops = nprops;
    if (ing_pipeline_new(&cfg, &p, err, sizeof(err)) != 0)
        fail_msg("pipeline: %s", err);
    f->pipe = p; /* from here on, the teardown stops it if the test fails */
    if (ing_pipeline_start(p, err, sizeof(err)) != 0)
        fail_msg("pipeline start: %s", err);
    return p;
}

/* Polls until the pipeline accepted want events; false at the deadline. */
static bool wait_events(ing_pipeline *p, uint64_t want, int deadline_s, struct ing_stats *st)
{
    uint64_t t0 = vg_mono_ns();

    for (;;) {
        ing_pipeline_stats(p, st);
        if (st->events >= want)
            return true;
        if (vgt_elapsed_s(t0) > deadline_s) {
            print_error("deadline: %llu of %llu events, %llu duplicates, %llu messages\n",
                        (unsigned long long)st->events, (unsigned long long)want,
                        (unsigned long long)st->duplicates, (unsigned long long)st->messages);
            return false;
        }
        poll_interval();
    }
}

/* Stops and destroys the pipeline pipeline_start gave, returning its last statistics. */
static void pipeline_finish(struct fx *f, struct ing_stats *st)
{
    ing_pipeline_stop(f->pipe);
    ing_pipeline_stats(f->pipe, st);
    ing_pipeline_destroy(f->pipe);
    f->pipe = NULL;
}

/* ---- checking --------------------------------------------------------------------- */

/* RocksDB's offset of every partition is the partition's end, and so (after a clean stop)
 * is the group's committed offset. */
static void check_offsets(struct fx *f, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    rd_kafka_t *q;
    char err[512];

    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    q = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(q);
    for (int32_t p = 0; p < NPARTS; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    assert_int_equal(rd_kafka_committed(q, l, 10000), 0);
    for (int32_t p = 0; p < NPARTS; p++) {
        int64_t lo = -1, hi = -1, off = -1;

        assert_int_equal(rd_kafka_query_watermark_offsets(f->prod, TOPIC, p, &lo, &hi, 10000), 0);
        assert_int_equal(lo, 0);
        if (hi == 0)
            continue;
        assert_int_equal(sto_get_offset(f->db, f->offsets_key, p, &off), 0);
        if (off != hi || l->elems[p].offset != hi)
            fail_msg("partition %d: end %lld, RocksDB offset %lld, Kafka committed %lld", p,
                     (long long)hi, (long long)off, (long long)l->elems[p].offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(q);
}

static void check_stats(const struct ing_stats *st, uint64_t events)
{
    assert_int_equal(st->events, events);
    assert_int_equal(st->dead_letters, 0);
    assert_int_equal(st->lost_upstream, 0);
    assert_int_equal(st->write_errors, 0);
}

/* ---- a. the broker down for ten seconds -------------------------------------------- */

static void test_broker_down(void **state)
{
    struct fx *f = *state;
    struct ing_stats st;
    ing_pipeline *p;
    uint64_t t0, first_false = 0, ok_false_ns = 0, last_poll;
    bool ok, down_seen = false;

    sim_begin(f, 100, 8);
    sim_produce_until(f, 4);
    flush_all(f);
    p = pipeline_start(f, "vigil-down", 0);
    if (!wait_events(p, f->ledger.events, DEADLINE_S, &st))
        fail_msg("did not consume the first half");
    assert_true(ing_pipeline_broker_ok(p));

    /* Down for DOWN_S: the rest of the simulation queues up in the test's producer. */
    assert_int_equal(rd_kafka_mock_broker_set_down(f->mc, -1), 0);
    t0 = last_poll = vg_mono_ns();
    sim_produce_until(f, INT64_MAX);
    while (vgt_elapsed_s(t0) < DOWN_S) {
        uint64_t now = vg_mono_ns();

        ok = ing_pipeline_broker_ok(p);
        if (!ok) {
            if (!down_seen)
                first_false = now - t0;
            down_seen = true;
            ok_false_ns += now - last_poll;
        }
        last_poll = now;
        rd_kafka_poll(f->prod, 0);
        poll_interval();
    }
    assert_int_equal(rd_kafka_mock_broker_set_up(f->mc, -1), 0);
    print_message("  broker down %d s: broker_ok false after %.1f s, for %.1f s in all\n", DOWN_S,
                  (double)first_false / 1e9, (double)ok_false_ns / 1e9);
    flush_all(f);
    ok = wait_events(p, f->ledger.events, DEADLINE_S, &st);
    if (ok) {
        uint64_t t1 = vg_mono_ns();

        /* Healthy again once it consumes: the next message clears the flag. */
        while (!ing_pipeline_broker_ok(p) && vgt_elapsed_s(t1) < 10)
            poll_interval();
        ok = ing_pipeline_broker_ok(p);
    }
    pipeline_finish(f, &st);
    assert_true(ok);
    check_stats(&st, f->ledger.events);
    vgt_ledger_check(&f->ledger, f->db, NULL);
    check_offsets(f, "vigil-down");
    /* Reported unhealthy for most of the outage (librdkafka needs a moment to notice). */
    if (ok_false_ns < (DOWN_S / 2) * 1000000000ull) {
        /* Regression: brokers_down was cleared by every _TRANSPORT error, so broker_ok
         * stayed true through an outage; now librdkafka's broker states decide. */
        fail_msg("broker_ok was false for only %.1f s of the %d s outage",
                 (double)ok_false_ns / 1e9, DOWN_S);
    }
}

/* ---- b. errors on Fetch and OffsetCommit -------------------------------------------- */

/* Errors are pushed onto broker 1's own stack (it leads every partition and coordinates the
 * group), whose depth tells when the pipeline's requests have consumed them. */
static void push_errors(struct fx *f, int16_t api, size_t n, const rd_kafka_resp_err_t *errs)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(f->mc, 1, api, 1, errs[i], 0),
                         0);
}

/* Polls until broker 1 has answered every pushed error; false at the deadline. */
static bool wait_drained(struct fx *f, int deadline_s)
{
    uint64_t t0 = vg_mono_ns();

    for (;;) {
        size_t fetch = 0, commit = 0;

        assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(f->mc, 1, API_FETCH, &fetch), 0);
        assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(f->mc, 1, API_OFFSET_COMMIT, &commit),
                         0);
        if (fetch == 0 && commit == 0)
            return true;
        if (vgt_elapsed_s(t0) > deadline_s) {
            print_error("deadline: %zu Fetch and %zu OffsetCommit errors not yet answered\n", fetch,
                        commit);
            return false;
        }
        poll_interval();
    }
}

/* Polls until the group's committed offsets are the partitions' ends (while the pipeline
 * runs: commits recovered from the errors); false at the deadline. */
static bool wait_committed(struct fx *f, const char *group, int deadline_s)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *q;
    uint64_t t0 = vg_mono_ns();
    char err[512];
    bool done = false;

    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    q = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(q);
    while (!done && vgt_elapsed_s(t0) < deadline_s) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);

        for (int32_t p = 0; p < NPARTS; p++)
            rd_kafka_topic_partition_list_add(l, TOPIC, p);
        done = rd_kafka_committed(q, l, 5000) == 0;
        for (int32_t p = 0; done && p < NPARTS; p++) {
            int64_t lo, hi;

            done = rd_kafka_query_watermark_offsets(f->prod, TOPIC, p, &lo, &hi, 5000) == 0 &&
                   (hi == 0 || l->elems[p].offset == hi);
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (!done)
            nanosleep(&(struct timespec){0, 50000000}, NULL); /* poll interval */
    }
    rd_kafka_destroy(q);
    return done;
}

/* Runs a stream through a pipeline while inject() pushes request errors: before it starts
 * and again half way; each time waits until the running pipeline has met them all. Then
 * waits for every event and for the commits to reach the ends. Returns false (with the
 * reason printed) when the pipeline stalled. */
static bool run_with_errors(struct fx *f, const char *group,
                            void (*inject)(struct fx *f, bool second), struct ing_stats *st)
{
    ing_pipeline *p;
    bool ok;

    sim_begin(f, 200, 6);
    sim_produce_until(f, 3);
    flush_all(f);
    inject(f, false);
    p = pipeline_start(f, group, VGT_SESSION_MS);
    ok = wait_drained(f, DEADLINE_S) && wait_events(p, f->ledger.events, DEADLINE_S, st);
    if (ok) {
        inject(f, true);
        ok = wait_drained(f, DEADLINE_S);
        sim_produce_until(f, INT64_MAX);
        flush_all(f);
        ok = ok && wait_events(p, f->ledger.events, DEADLINE_S, st);
    }
    if (ok && !wait_committed(f, group, 30)) {
        print_error("the group's committed offsets did not reach the partitions' ends\n");
        ok = false;
    }
    pipeline_finish(f, st);
    print_message("  %llu events, %llu duplicates, %llu commits, %llu writes\n",
                  (unsigned long long)st->events, (unsigned long long)st->duplicates,
                  (unsigned long long)st->commits, (unsigned long long)st->writes);
    return ok;
}

/* Retriable errors: Fetch fails or the connection drops; the commit finds no coordinator. */
static void inject_retriable(struct fx *f, bool second)
{
    static const rd_kafka_resp_err_t fetch1[] = {
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,     RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR,      RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION};
    static const rd_kafka_resp_err_t commit1[] = {
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS};
    static const rd_kafka_resp_err_t fetch2[] = {
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART};
    static const rd_kafka_resp_err_t commit2[] = {RD_KAFKA_RESP_ERR__TRANSPORT,
                                                  RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                                  RD_KAFKA_RESP_ERR_NOT_COORDINATOR};

    if (!second) {
        push_errors(f, API_FETCH, 8, fetch1);
        push_errors(f, API_OFFSET_COMMIT, 4, commit1);
    } else {
        push_errors(f, API_FETCH, 4, fetch2);
        push_errors(f, API_OFFSET_COMMIT, 3, commit2);
    }
}

static void test_request_errors(void **state)
{
    struct fx *f = *state;
    struct ing_stats st;

    assert_true(run_with_errors(f, "vigil-errors", inject_retriable, &st));
    check_stats(&st, f->ledger.events);
    vgt_ledger_check(&f->ledger, f->db, NULL);
    check_offsets(f, "vigil-errors");
}

/* Commit errors that make the member rejoin the group: a rebalance mid-stream. */
static void inject_rejoin(struct fx *f, bool second)
{
    rd_kafka_resp_err_t e =
        second ? RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION : RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;

    push_errors(f, API_OFFSET_COMMIT, 1, &e);
}

static void test_commit_rejoin(void **state)
{
    struct fx *f = *state;
    struct ing_stats st;

    if (!run_with_errors(f, "vigil-rejoin", inject_rejoin, &st)) {
        /* Regression: the writer went on committing partitions it had given up, and
         * those commits, failing during the rebalance, kept the group rejoining. */
        fail_msg("the pipeline stalled after a commit error made it rejoin");
    }
    check_stats(&st, f->ledger.events);
    vgt_ledger_check(&f->ledger, f->db, NULL);
    check_offsets(f, "vigil-rejoin");
}

/* ---- c. leaders moving between three brokers ----------------------------------------- */

static void move_leaders(struct fx *f, int shift)
{
    for (int32_t p = 0; p < NPARTS; p++)
        assert_int_equal(rd_kafka_mock_partition_set_leader(f->mc, TOPIC, p, (p + shift) % 3 + 1),
                         0);
}

static void test_leader_change(void **state)
{
    struct fx *f = *state;
    struct ing_stats st;
    ing_pipeline *p;
    bool ok;

    sim_begin(f, 200, 9);
    sim_produce_until(f, 3);
    flush_all(f);
    p = pipeline_start(f, "vigil-leaders", 0);
    ok = wait_events(p, f->ledger.events, DEADLINE_S, &st);
    if (ok) {
        move_leaders(f, 1);
        sim_produce_until(f, 6);
        flush_all(f);
        ok = wait_events(p, f->ledger.events, DEADLINE_S, &st);
    }
    if (ok) {
        /* Move them again while the producer is still sending. */
        sim_produce_until(f, 7);
        move_leaders(f, 2);
        sim_produce_until(f, INT64_MAX);
        flush_all(f);
        ok = wait_events(p, f->ledger.events, DEADLINE_S, &st);
    }
    pipeline_finish(f, &st);
    assert_true(ok);
    print_message("  %llu events, %llu duplicates over two leader changes\n",
                  (unsigned long long)st.events, (unsigned long long)st.duplicates);
    check_stats(&st, f->ledger.events);
    vgt_ledger_check(&f->ledger, f->db, NULL);
    check_offsets(f, "vigil-leaders");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_broker_down, fx_setup1, fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_errors, fx_setup1, fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_rejoin, fx_setup1, fx_teardown),
        cmocka_unit_test_setup_teardown(test_leader_change, fx_setup3, fx_teardown),
    };

    if (getenv("VGT_FILTER") != NULL) /* run only the tests whose names match */
        cmocka_set_test_filter(getenv("VGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
