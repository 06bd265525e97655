/*
 * test_pipeline.c - the whole pipeline (ing_pipeline) against the embedded broker and a
 * real RocksDB in a temporary directory: end to end, a restart half way through, bad input
 * between good batches on one partition, and commits following the commit interval while
 * the producer always has alerts in flight.
 *
 * THREAD MODEL: the test's thread produces, polls the pipeline's statistics and reads
 * the topics and the database; the pipeline runs its own threads (ingest.h). Every wait
 * polls a condition against a deadline; nothing sleeps to synchronise.
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

#include "alert.pb-c.h"
#include "changelog.h"
#include "corr.h"
#include "correlate.h"
#include "ingest.h"
#include "ingest_int.h"
#include "rules.h"
#include "sim.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

#define NPARTS      4
#define DEADLINE_S  60
#define TOPIC       "telemetry"
#define DLQ_TOPIC   "telemetry.dlq"
#define ALERT_TOPIC "alerts"

/* ---- the fixture: broker, database, rules ----------------------------------------- */

struct msgrec { /* one produced message, as its delivery report placed it */
    int32_t partition;
    int64_t offset;
    uint32_t nevents;
    int err;
    bool done;
};

struct fx {
    char *dir;
    ing_mock *mock;
    const char *brokers;
    sto_db *db;
    cor_ruleset *rules;
    cor_corrset *corr;
    rd_kafka_t *prod; /* the test's own producer: its delivery reports give offsets */
    struct msgrec *recs;
    size_t nrecs, caprecs;
    struct vgt_ledger ledger;   /* produced in valid batches */
    int groups;                 /* for fresh consumer group names */
    char offsets_key[128];      /* "<cluster id>/telemetry": how the pipeline names offsets */
    int64_t block_max_age_us;   /* for the pipelines started; 0: their default (5 s) */
    const struct ing_kv *props; /* -X settings of the pipelines started */
    size_t nprops;
    size_t shard_queue_kbytes; /* for the pipelines started; 0: their default */
    size_t max_len;            /* the longest message produced */
    /* What a test has running, which the teardown stops first: a failed assertion leaves
     * the test at once, and a pipeline left running would go on writing to the database the
     * teardown closes. */
    ing_pipeline *pipe;
    rd_kafka_t *watch; /* a consumer in a pipeline's group, to read its committed offsets */
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct fx *f = opaque;
    size_t i = (size_t)(uintptr_t)m->_private - 1;

    (void)rk;
    /* Runs on the test's thread, inside rd_kafka_poll/flush. */
    f->recs[i].partition = m->partition;
    f->recs[i].offset = m->offset;
    f->recs[i].err = m->err;
    f->recs[i].done = true;
}

static int fx_setup_brokers(void **state, int nbrokers)
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
    f->dir = vgt_tmpdir("pipeline");
    so.path = f->dir;
    if (sto_open(&so, &f->db, err, sizeof(err)) != 0 ||
        ing_mock_start(nbrokers, NPARTS, ing_default_topics, ING_DEFAULT_NTOPICS, &f->mock, err,
                       sizeof(err)) != 0 ||
        cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)) != 0 ||
        cor_corrset_load(dirs, 1, &f->corr, NULL, err, sizeof(err)) != 0) {
        print_error("setup: %s\n", err);
        return -1;
    }
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
    vgt_ledger_init(&f->ledger);
    if (f->prod == NULL) {
        print_error("producer: %s\n", err);
        return -1;
    }
    /* The pipeline keeps offsets under the cluster id, so that another cluster's (a new
     * embedded broker's) offsets never apply. */
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

static int fx_setup(void **state)
{
    return fx_setup_brokers(state, 1);
}

/* Two brokers: the steady-alerts test puts the alert topics on a slow one of their own. */
static int fx_setup_two(void **state)
{
    return fx_setup_brokers(state, 2);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    if (f->pipe != NULL)
        ing_pipeline_destroy(f->pipe);
    if (f->watch != NULL)
        rd_kafka_destroy(f->watch);
    vgt_ledger_free(&f->ledger);
    free(f->recs);
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

/* ---- producing -------------------------------------------------------------------- */

/* Produces one message keyed by key; nevents valid events in it (0 for bad input). */
static void produce(struct fx *f, const char *key, const void *val, size_t len, uint32_t nevents)
{
    rd_kafka_resp_err_t e;

    if (f->nrecs == f->caprecs) {
        f->caprecs = f->caprecs ? f->caprecs * 2 : 1024;
        f->recs = realloc(f->recs, f->caprecs * sizeof(*f->recs));
        assert_non_null(f->recs);
    }
    memset(&f->recs[f->nrecs], 0, sizeof(f->recs[0]));
    f->recs[f->nrecs].nevents = nevents;
    if (len > f->max_len)
        f->max_len = len;
    f->nrecs++;
    for (;;) {
        e = rd_kafka_producev(f->prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE((void *)(uintptr_t)f->nrecs), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(f->prod, 10);
    }
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(f->prod, 0);
}

static void flush_all(struct fx *f)
{
    assert_int_equal(rd_kafka_flush(f->prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (size_t i = 0; i < f->nrecs; i++) {
        assert_true(f->recs[i].done);
        assert_int_equal(f->recs[i].err, 0);
    }
}

/* Produces a whole simulation, starting now so that event times validate. Returns the
 * generator (for its ground truth); free with bench_sim_free. */
static bench_sim *produce_sim(struct fx *f, uint32_t machines, int64_t duration_s)
{
    struct bench_sim_opts o;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    int rc;

    assert_non_null(a);
    bench_sim_opts_default(&o);
    o.machines = machines;
    o.tenants = 2;
    o.start_us = vg_now_us() / VG_US_PER_SEC * VG_US_PER_SEC;
    o.duration_us = duration_s * VG_US_PER_SEC;
    o.scenario_start_us = VG_US_PER_SEC;
    o.scenario_mask = BENCH_SIM_RUN_WIN_REF | BENCH_SIM_RUN_LNX_REF;
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        uint8_t *buf;
        size_t len;

        assert_int_equal(bench_sim_pack(b, a, &buf, &len), 0);
        vgt_ledger_add(&f->ledger, b);
        produce(f, b->machine_id, buf, len, (uint32_t)b->n_events);
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    vg_arena_destroy(a);
    flush_all(f);
    for (size_t i = 0; i < bench_sim_truth_count(s); i++)
        assert_true(bench_sim_truth_get(s, i)->emitted);
    return s;
}

/* ---- the pipeline ----------------------------------------------------------------- */

/*
 * The embedded broker (librdkafka 2.0.2's mock cluster) completes a rebalance that a
 * member's LeaveGroup started only after the group's session timeout less a second, so a
 * consumer that rejoins a group right after another left it waits about session.timeout.ms
 * (45 s by default). The restart test uses a short one, VGT_SESSION_MS, to stay quick
 * (vgtest.h), with heartbeats inside it.
 */

static ing_pipeline *pipeline_start(struct fx *f, const char *group, bool quick_rejoin)
{
    struct ing_pipeline_cfg cfg = {0};
    ing_pipeline *p = NULL;
    char err[512];

    /* With a changelog, as vigil run keeps one: offsets then move only at checkpoints, and a
     * restart restores the state it wrote (a second create of the topic fails harmlessly). */
    (void)ing_changelog_mock_create(f->mock, group, NPARTS);
    cfg.kafka.brokers = f->brokers;
    cfg.kafka.group = group;
    cfg.nshards = 2;
    cfg.rules = f->rules;
    cfg.corr = f->corr; /* the Linux reference alert is a correlation */
    cfg.db = f->db;
    cfg.commit_ms = 200;
    cfg.block_max_age_us = f->block_max_age_us;
    cfg.shard_queue_kbytes = f->shard_queue_kbytes;
    cfg.kafka.props = f->props;
    cfg.kafka.nprops = f->nprops;
    if (quick_rejoin) {
        static struct ing_kv all[8];

        assert_true(f->nprops < VG_ARRAY_SIZE(all));
        if (f->nprops > 0)
            memcpy(all, f->props, f->nprops * sizeof(*all));
        all[f->nprops] = (struct ing_kv){"heartbeat.interval.ms", VGT_HEARTBEAT_MS_STR};
        cfg.session_timeout_ms = VGT_SESSION_MS;
        cfg.kafka.props = all;
        cfg.kafka.nprops = f->nprops + 1;
    }
    if (ing_pipeline_new(&cfg, &p, err, sizeof(err)) != 0)
        fail_msg("pipeline: %s", err);
    f->pipe = p; /* from here on, the teardown stops it if the test fails */
    if (ing_pipeline_start(p, err, sizeof(err)) != 0)
        fail_msg("pipeline start: %s", err);
    return p;
}

/* Stops and frees the pipeline pipeline_start gave. */
static void pipeline_end(struct fx *f)
{
    ing_pipeline_destroy(f->pipe);
    f->pipe = NULL;
}

/* Polls the statistics until events + base reaches want (and dead letters reach dl);
 * fails at the deadline. */
static void wait_events(ing_pipeline *p, uint64_t base, uint64_t want, uint64_t dl,
                        struct ing_stats *st)
{
    uint64_t t0 = vg_mono_ns();

    for (;;) {
        ing_pipeline_stats(p, st);
        if (base + st->events >= want && st->dead_letters >= dl)
            return;
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("deadline: %llu+%llu of %llu events, %llu dead letters of %llu, %llu "
                     "duplicates, %llu messages",
                     (unsigned long long)base, (unsigned long long)st->events,
                     (unsigned long long)want, (unsigned long long)st->dead_letters,
                     (unsigned long long)dl, (unsigned long long)st->duplicates,
                     (unsigned long long)st->messages);
        struct timespec ts = {0, 2000000}; /* a poll interval, not a synchronisation */

        nanosleep(&ts, NULL);
    }
}

/* ---- checking the database -------------------------------------------------------- */

static bool count_machine(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    (void)mkey;
    (void)m;
    (*(size_t *)ctx)++;
    return true;
}

/* Every machine's stored timeline holds exactly its produced events, each once, and no
 * other machine is stored. */
static void check_timelines(struct fx *f)
{
    size_t nstored_machines = 0;

    vgt_ledger_check(&f->ledger, f->db, NULL);
    assert_int_equal(sto_scan_machines(f->db, count_machine, &nstored_machines), 0);
    assert_int_equal(nstored_machines, f->ledger.machines.count);
}

/* RocksDB's offset of every partition is the partition's end. */
static void check_offsets(struct fx *f, int min_nonempty)
{
    int nonempty = 0;

    for (int32_t p = 0; p < NPARTS; p++) {
        int64_t lo = -1, hi = -1, off = -1;

        assert_int_equal(rd_kafka_query_watermark_offsets(f->prod, TOPIC, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        if (hi == 0) {
            assert_int_equal(sto_get_offset(f->db, f->offsets_key, p, &off), -VG_ENOENT);
            continue;
        }
        nonempty++;
        assert_int_equal(sto_get_offset(f->db, f->offsets_key, p, &off), 0);
        if (off != hi)
            print_error("partition %d: stored offset %lld, end %lld\n", p, (long long)off,
                        (long long)hi);
        assert_int_equal(off, hi);
    }
    assert_true(nonempty >= min_nonempty);
}

/* ---- reading a topic -------------------------------------------------------------- */

typedef void (*msg_fn)(void *ctx, const rd_kafka_message_t *m);

/* Reads every message of a topic with a plain consumer in a fresh group; returns the
 * number read. */
static size_t read_topic(struct fx *f, const char *topic, msg_fn fn, void *ctx)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    rd_kafka_t *c;
    int64_t hi[NPARTS], next[NPARTS];
    size_t n = 0, want = 0;
    uint64_t t0 = vg_mono_ns();
    char err[512], group[64];

    snprintf(group, sizeof(group), "pipetest-check-%d", ++f->groups);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(c);
    rd_kafka_poll_set_consumer(c);
    for (int32_t p = 0; p < NPARTS; p++) {
        int64_t lo;

        assert_int_equal(rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi[p], 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(lo, 0); /* nothing aged out of the embedded broker */
        next[p] = 0;
        want += (size_t)hi[p];
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    assert_int_equal(rd_kafka_assign(c, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    while (n < want) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);

        if (vgt_elapsed_s(t0) > 30)
            fail_msg("%s: read %zu of %zu messages", topic, n, want);
        if (m == NULL)
            continue;
        if (m->err == 0) {
            assert_true(m->partition >= 0 && m->partition < NPARTS);
            assert_int_equal(m->offset, next[m->partition]);
            next[m->partition]++;
            fn(ctx, m);
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return n;
}

struct alert_ids {
    char (*id)[40];
    char (*machine)[64];
    char (*title)[96];
    int *count;
    size_t n, cap;
};

static void on_alert_msg(void *ctx, const rd_kafka_message_t *m)
{
    struct alert_ids *ai = ctx;
    Vigil__Alert *al = vigil__alert__unpack(NULL, m->len, m->payload);
    size_t i;

    assert_non_null(al);
    assert_int_equal(m->key_len, strlen(al->machine_id));
    assert_memory_equal(m->key, al->machine_id, m->key_len);
    for (i = 0; i < ai->n; i++)
        if (strcmp(ai->id[i], al->id) == 0)
            break;
    if (i == ai->n) {
        if (ai->n == ai->cap) {
            ai->cap = ai->cap ? ai->cap * 2 : 16;
            ai->id = realloc(ai->id, ai->cap * sizeof(*ai->id));
            ai->machine = realloc(ai->machine, ai->cap * sizeof(*ai->machine));
            ai->title = realloc(ai->title, ai->cap * sizeof(*ai->title));
            ai->count = realloc(ai->count, ai->cap * sizeof(*ai->count));
            assert_true(ai->id && ai->machine && ai->title && ai->count);
        }
        snprintf(ai->id[i], sizeof(ai->id[i]), "%s", al->id);
        snprintf(ai->machine[i], sizeof(ai->machine[i]), "%s", al->machine_id);
        snprintf(ai->title[i], sizeof(ai->title[i]), "%s", al->title);
        ai->count[i] = 0;
        ai->n++;
    }
    ai->count[i]++;
    vigil__alert__free_unpacked(al, NULL);
}

/* The alerts topic holds exactly one message per alert id, nnew in all, and one alert of
 * each scenario truth. */
static void check_alert_topic(struct fx *f, bench_sim *s, uint64_t nnew)
{
    struct alert_ids ai = {0};
    size_t ntruth = bench_sim_truth_count(s), n;

    n = read_topic(f, ALERT_TOPIC, on_alert_msg, &ai);
    /* Every alert id once; as many as the pipeline counted new. */
    assert_int_equal(n, nnew);
    for (size_t i = 0; i < ai.n; i++) {
        if (ai.count[i] != 1)
            print_error("alert %s (%s on %s) emitted %d times\n", ai.id[i], ai.title[i],
                        ai.machine[i], ai.count[i]);
        assert_int_equal(ai.count[i], 1);
        assert_true(sto_has_alert(f->db, ai.id[i]));
    }
    assert_int_equal(n, ai.n);
    /* Each reference scenario raised its alert, once. (That it raised no other alert is
     * test_route's concern: it depends on the rule set, not on the pipeline.) */
    for (size_t t = 0; t < ntruth; t++) {
        const struct bench_sim_truth *tr = bench_sim_truth_get(s, t);
        int found = 0;

        for (size_t i = 0; i < ai.n; i++)
            found += strcmp(ai.machine[i], tr->machine) == 0 && strcmp(ai.title[i], tr->title) == 0;
        if (found != 1)
            print_error("truth %s on %s: %d alerts\n", tr->title, tr->machine, found);
        assert_int_equal(found, 1);
    }
    free(ai.id);
    free(ai.machine);
    free(ai.title);
    free(ai.count);
}

static uint64_t alerts_new(const struct ing_stats *st)
{
    return st->alerts[0] + st->alerts[1] + st->alerts[2] + st->alerts[3];
}

/* ---- a. end to end ---------------------------------------------------------------- */

static void test_end_to_end(void **state)
{
    struct fx *f = *state;
    struct ing_stats st;
    ing_pipeline *p;
    bench_sim *s;
    uint64_t t0 = vg_mono_ns(), t1;

    s = produce_sim(f, 200, 5);
    print_message("  produced %zu batches, %llu events in %.2f s\n", f->nrecs,
                  (unsigned long long)f->ledger.events, vgt_elapsed_s(t0));
    t1 = vg_mono_ns();
    p = pipeline_start(f, "vigil-e2e", false);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    print_message("  pipeline: %.2f s, %llu events, %llu blocks, %llu writes\n", vgt_elapsed_s(t1),
                  (unsigned long long)st.events, (unsigned long long)st.blocks,
                  (unsigned long long)st.writes);
    assert_int_equal(st.events, f->ledger.events);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.dead_letters, 0);
    assert_int_equal(st.messages, f->nrecs);
    assert_int_equal(st.lost_upstream, 0);
    assert_int_equal(st.write_errors, 0);
    assert_true(alerts_new(&st) >= bench_sim_truth_count(s));
    check_timelines(f);
    check_offsets(f, 2);
    check_alert_topic(f, s, alerts_new(&st));
    bench_sim_free(s);
}

/* ---- b. restart ------------------------------------------------------------------- */

static uint8_t *small_batch(struct fx *f, const char *machine, const char *path, uint64_t seq0,
                            size_t n, size_t *len, bool expect);

/*
 * A run stopped half-way, then another in the same group: the second resumes at the offsets
 * the first stored. The first may have read everything by the time it stops (the broker is
 * fast), so a batch is produced between the runs: the second always has something to read.
 */
static void test_restart(void **state)
{
    struct fx *f = *state;
    struct ing_stats st1, st2;
    ing_pipeline *p;
    bench_sim *s;
    int64_t stored[NPARTS];
    uint64_t below = 0, above = 0, msgs_above = 0;
    uint8_t *buf;
    size_t len;

    s = produce_sim(f, 200, 8);
    p = pipeline_start(f, "vigil-restart", true);
    wait_events(p, 0, f->ledger.events / 2, 0, &st1);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st1);
    pipeline_end(f);
    print_message("  first run stopped at %llu of %llu events\n", (unsigned long long)st1.events,
                  (unsigned long long)f->ledger.events);
    assert_true(st1.events >= f->ledger.events / 2);
    assert_int_equal(st1.duplicates, 0);
    buf = small_batch(f, "WIN-restart-000001", "C:\\Windows\\Temp\\r.tmp", 1, 4, &len, true);
    produce(f, "WIN-restart-000001", buf, len, 4);
    free(buf);
    flush_all(f);
    /* The first run made durable exactly what it accepted: the events of every message
     * below the stored offsets. */
    for (int32_t pt = 0; pt < NPARTS; pt++)
        if (sto_get_offset(f->db, f->offsets_key, pt, &stored[pt]) != 0)
            stored[pt] = 0;
    for (size_t i = 0; i < f->nrecs; i++) {
        if (f->recs[i].offset < stored[f->recs[i].partition]) {
            below += f->recs[i].nevents;
        } else {
            above += f->recs[i].nevents;
            msgs_above++;
        }
    }
    assert_int_equal(below, st1.events);

    p = pipeline_start(f, "vigil-restart", true);
    wait_events(p, st1.events, f->ledger.events, 0, &st2);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st2);
    pipeline_end(f);
    print_message("  second run: %llu events, %llu duplicates, %llu messages\n",
                  (unsigned long long)st2.events, (unsigned long long)st2.duplicates,
                  (unsigned long long)st2.messages);
    /* It resumed at the stored offsets: what it read re-delivered nothing durable, or
     * counted it as duplicates. */
    assert_int_equal(st1.events + st2.events, f->ledger.events);
    assert_true(st2.events >= 4);
    assert_int_equal(st2.events + st2.duplicates, above);
    assert_int_equal(st2.messages, msgs_above);
    assert_int_equal(st2.dead_letters, 0);
    check_timelines(f);
    check_offsets(f, 2);
    check_alert_topic(f, s, alerts_new(&st1) + alerts_new(&st2));
    bench_sim_free(s);
}

/* ---- b2. the shards' byte budget ---------------------------------------------------- */

/*
 * Messages consumed wait for their shard within a byte budget per shard (the message and
 * its decoded form), not only a count: a shard that falls behind must not hold thousands of
 * large messages. The budget refuses, the partition waits as for a full ring, and nothing
 * is lost or stored twice. kbytes 64: several messages a shard, refused often; 1: every
 * message is over it alone and still goes through, one at a time (never two held).
 */
static void run_shard_budget(struct fx *f, size_t kbytes)
{
    struct ing_stats st;
    ing_pipeline *p;
    bench_sim *s;
    uint64_t one_max;

    s = produce_sim(f, 200, 4);
    f->shard_queue_kbytes = kbytes;
    p = pipeline_start(f, "vigil-budget", false);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    /* ing_route's reservation for the decoded form (3 x the message + 4 KiB), and the
     * message itself. */
    one_max = (uint64_t)f->max_len * 4 + 4096;
    print_message("  budget %zu KiB: %llu events, %llu refusals, peak %llu bytes held by a "
                  "shard (one message: up to %llu)\n",
                  kbytes, (unsigned long long)st.events, (unsigned long long)st.shard_full,
                  (unsigned long long)st.shard_bytes_peak, (unsigned long long)one_max);
    assert_int_equal(st.events, f->ledger.events);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.dead_letters, 0);
    assert_int_equal(st.messages, f->nrecs);
    assert_true(st.shard_full > 0);
    assert_true(st.pauses > 0);
    if (kbytes * 1024 >= one_max)
        assert_true(st.shard_bytes_peak <= kbytes * 1024);
    else
        assert_true(st.shard_bytes_peak <= one_max);
    check_timelines(f);
    check_offsets(f, 2);
    bench_sim_free(s);
}

static void test_shard_budget(void **state)
{
    run_shard_budget(*state, 64);
}

static void test_shard_budget_one(void **state)
{
    run_shard_budget(*state, 1);
}

/* ---- c. bad input ----------------------------------------------------------------- */

#define BAD_TENANT  "tenant-dlq"
#define BAD_MACHINE "WIN-dlq-000001"

#define BAD_PATH "C:\\Windows\\Temp\\x.tmp"

/* A packed batch of n events of machine from seq0, each creating the file at path;
 * malloc'd. expect: record it in the ledger (the pipeline must store it). */
static uint8_t *small_batch(struct fx *f, const char *machine, const char *path, uint64_t seq0,
                            size_t n, size_t *len, bool expect)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev[4], *evp[4];
    Vigil__ProcessRef actor = VIGIL__PROCESS_REF__INIT;
    Vigil__FileEvent fe = VIGIL__FILE_EVENT__INIT;
    int64_t now = vg_now_us();
    uint8_t *buf;

    assert_true(n <= 4);
    actor.pid = 777;
    actor.creation_time_us = now - 60 * VG_US_PER_SEC;
    actor.image = "C:\\Windows\\System32\\svchost.exe";
    fe.op = VIGIL__FILE_OP__FILE_CREATED;
    fe.path = (char *)path;
    b.tenant_id = BAD_TENANT;
    b.machine_id = (char *)machine;
    b.os = VIGIL__OS__OS_WINDOWS;
    b.first_seq = seq0;
    for (size_t i = 0; i < n; i++) {
        vigil__event__init(&ev[i]);
        ev[i].seq = seq0 + i;
        ev[i].ts_us = now - 10 * VG_US_PER_SEC + (int64_t)(seq0 + i) * 1000;
        ev[i].actor = &actor;
        ev[i].kind_case = VIGIL__EVENT__KIND_FILE;
        ev[i].file = &fe;
        evp[i] = &ev[i];
    }
    b.n_events = n;
    b.events = evp;
    *len = vigil__telemetry_batch__get_packed_size(&b);
    buf = malloc(*len);
    assert_non_null(buf);
    vigil__telemetry_batch__pack(&b, buf);
    if (expect)
        vgt_ledger_add(&f->ledger, &b);
    return buf;
}

struct dlq_seen {
    size_t n;
    char reason[4][256];
    uint8_t *payload[4];
    size_t len[4];
    int32_t partition[4];
};

static void on_dlq_msg(void *ctx, const rd_kafka_message_t *m)
{
    struct dlq_seen *d = ctx;
    rd_kafka_headers_t *h = NULL;
    const void *val;
    size_t vlen;

    assert_true(d->n < 4);
    assert_int_equal(rd_kafka_message_headers(m, &h), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_header_get_last(h, "reason", &val, &vlen),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    snprintf(d->reason[d->n], sizeof(d->reason[0]), "%.*s", (int)vlen, (const char *)val);
    assert_int_equal(rd_kafka_header_get_last(h, "source_topic", &val, &vlen),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(vlen, strlen(TOPIC));
    assert_memory_equal(val, TOPIC, vlen);
    assert_int_equal(m->key_len, strlen(BAD_MACHINE));
    assert_memory_equal(m->key, BAD_MACHINE, m->key_len);
    d->payload[d->n] = malloc(m->len + 1);
    assert_non_null(d->payload[d->n]);
    memcpy(d->payload[d->n], m->payload, m->len);
    d->len[d->n] = m->len;
    d->partition[d->n] = m->partition;
    d->n++;
}

static void test_bad_input(void **state)
{
    struct fx *f = *state;
    static const char garbage[] = "\xff\xfe garbage, not a TelemetryBatch \x01\x02";
    struct ing_stats st;
    struct dlq_seen d = {0};
    ing_pipeline *p;
    uint8_t *good[4], *trunc, *nomachine;
    size_t glen[4], tlen, nlen, trunc_len;

    /* All on one key, so one partition, in this order. */
    good[0] = small_batch(f, BAD_MACHINE, BAD_PATH, 1, 3, &glen[0], true);
    good[1] = small_batch(f, BAD_MACHINE, BAD_PATH, 4, 3, &glen[1], true);
    trunc = small_batch(f, BAD_MACHINE, BAD_PATH, 7, 3, &tlen, false);
    good[2] = small_batch(f, BAD_MACHINE, BAD_PATH, 7, 3, &glen[2], true);
    nomachine = small_batch(f, "", BAD_PATH, 10, 3, &nlen, false);
    good[3] = small_batch(f, BAD_MACHINE, BAD_PATH, 10, 4, &glen[3], true);
    trunc_len = tlen - 5; /* cut inside the last event */
    produce(f, BAD_MACHINE, good[0], glen[0], 3);
    produce(f, BAD_MACHINE, garbage, sizeof(garbage) - 1, 0);
    produce(f, BAD_MACHINE, good[1], glen[1], 3);
    produce(f, BAD_MACHINE, trunc, trunc_len, 0);
    produce(f, BAD_MACHINE, good[2], glen[2], 3);
    produce(f, BAD_MACHINE, nomachine, nlen, 0);
    produce(f, BAD_MACHINE, good[3], glen[3], 4);
    flush_all(f);
    for (size_t i = 1; i < f->nrecs; i++) {
        assert_int_equal(f->recs[i].partition, f->recs[0].partition);
        assert_int_equal(f->recs[i].offset, f->recs[i - 1].offset + 1);
    }

    p = pipeline_start(f, "vigil-dlq", false);
    wait_events(p, 0, f->ledger.events, 3, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    assert_int_equal(st.events, 13);
    assert_int_equal(st.dead_letters, 3);
    assert_int_equal(st.messages, 7);
    assert_int_equal(st.duplicates, 0);

    assert_int_equal(read_topic(f, DLQ_TOPIC, on_dlq_msg, &d), 3);
    /* One partition, one key: in the order produced, byte for byte, each explained. */
    assert_int_equal(d.partition[0], d.partition[1]);
    assert_int_equal(d.partition[1], d.partition[2]);
    assert_int_equal(d.len[0], sizeof(garbage) - 1);
    assert_memory_equal(d.payload[0], garbage, d.len[0]);
    assert_non_null(strstr(d.reason[0], "not a TelemetryBatch"));
    assert_int_equal(d.len[1], trunc_len);
    assert_memory_equal(d.payload[1], trunc, trunc_len);
    assert_non_null(strstr(d.reason[1], "bad wire format"));
    assert_int_equal(d.len[2], nlen);
    assert_memory_equal(d.payload[2], nomachine, nlen);
    assert_string_equal(d.reason[2], "missing machine id");
    check_timelines(f);
    check_offsets(f, 1);
    for (int i = 0; i < 3; i++)
        free(d.payload[i]);
    for (int i = 0; i < 4; i++)
        free(good[i]);
    free(trunc);
    free(nomachine);
}

/* ---- d. commits under a steady stream of alerts ----------------------------------- */

/*
 * Offsets may be committed only once what was produced for them (alerts, changelog
 * records) is acknowledged, but that must not need the producer to be idle: under a steady
 * stream of alerts its queue is never empty, and commits must still follow the commit
 * interval. The alert topics are led by a broker of their own that answers every request
 * STEADY_RTT_MS late, and every event fires a rule, so the producer always has alerts in
 * flight; telemetry, the changelog and the group stay on the prompt broker. Timeline blocks
 * seal after 100 ms (not 5 s), so that the offsets safe to commit move at every checkpoint
 * although the one machine's block is never idle. Over a window of STEADY_WINDOW_S seconds
 * (commit interval 200 ms: 30 intervals) the group's committed offsets must move at least
 * STEADY_MIN_ADVANCES times. Sampled every 50 ms, each move is a commit; the bound is a
 * fifth of what is due (about 30 here, 12 or more under ASan), and waiting for an idle
 * producer, or for ten overdue intervals, makes three at most (one was seen in 4 s).
 */
#define STEADY_GROUP        "vigil-steady"
#define STEADY_MACHINE      "WIN-steady-000001"
#define STEADY_PATH         "C:\\steady\\drop.tmp"
#define STEADY_RTT_MS       150
#define STEADY_WINDOW_S     6
#define STEADY_MIN_ADVANCES 6

static const char steady_rule[] = "title: Every steady drop\n"
                                  "id: 6c1f1e0a-3b6d-4b8e-9a55-0d7c2f4e8a11\n"
                                  "status: test\n"
                                  "logsource: {category: file_event, product: windows}\n"
                                  "detection:\n"
                                  "    selection:\n"
                                  "        TargetFilename|startswith: 'C:\\steady\\'\n"
                                  "    condition: selection\n"
                                  "level: low\n";

/* The sum of the group's committed offsets over the telemetry partitions (none: 0). */
static int64_t group_committed(rd_kafka_t *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    int64_t sum = 0;

    for (int32_t p = 0; p < NPARTS; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    assert_int_equal(rd_kafka_committed(c, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < l->cnt; i++) {
        /* A partition the coordinator could not answer for would make the sum drop, and the
         * next call look like a commit. */
        assert_int_equal(l->elems[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
        if (l->elems[i].offset > 0)
            sum += l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return sum;
}

/* One batch of two events, each firing the steady rule. */
static void produce_steady(struct fx *f, uint64_t *seq)
{
    size_t len;
    uint8_t *buf = small_batch(f, STEADY_MACHINE, STEADY_PATH, *seq, 2, &len, true);

    produce(f, STEADY_MACHINE, buf, len, 2);
    free(buf);
    *seq += 2;
}

/*
 * Two brokers: the steady rule replaces the shipped ones, the alert topics are led by
 * alerts_broker, group's changelog by changelog_broker, the rest (and the group) by broker
 * 1. Returns a consumer that reads the group's commits without joining it.
 */
static rd_kafka_t *steady_setup(struct fx *f, const char *group, int32_t alerts_broker,
                                int32_t changelog_broker)
{
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    const char *alert_topics[] = {ALERT_TOPIC, "alerts.tenant"};
    const char *dirs[1];
    struct cor_load_summary sum;
    char err[512], cl[128], *rdir = vgt_tmpdir("steady-rules");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *c;

    /* A rule that fires on every event of the test machine, instead of the shipped ones. */
    vgt_write_file(rdir, "steady.yml", steady_rule);
    dirs[0] = rdir;
    cor_ruleset_unref(f->rules);
    f->rules = NULL;
    assert_int_equal(cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)), 0);
    assert_int_equal(cor_ruleset_count(f->rules), 1);
    vgt_rmtree(rdir);
    free(rdir);

    assert_int_equal(ing_changelog_mock_create(f->mock, group, NPARTS), 0);
    snprintf(cl, sizeof(cl), "%s.changelog", group);
    for (int32_t pt = 0; pt < NPARTS; pt++) {
        assert_int_equal(rd_kafka_mock_partition_set_leader(mc, TOPIC, pt, 1), 0);
        assert_int_equal(rd_kafka_mock_partition_set_leader(mc, DLQ_TOPIC, pt, 1), 0);
        assert_int_equal(rd_kafka_mock_partition_set_leader(mc, cl, pt, changelog_broker), 0);
        for (size_t i = 0; i < 2; i++)
            assert_int_equal(
                rd_kafka_mock_partition_set_leader(mc, alert_topics[i], pt, alerts_broker), 0);
    }
    assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", group, 1), 0);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(c);
    f->watch = c;
    return c;
}

static void watch_end(struct fx *f)
{
    rd_kafka_destroy(f->watch);
    f->watch = NULL;
}

static void test_steady_alerts_commit(void **state)
{
    struct fx *f = *state;
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    rd_kafka_t *c;
    struct ing_stats st;
    ing_pipeline *p;
    uint64_t seq = 1, t0, last_sample = 0, alerts0;
    int64_t committed, first;
    int advances = 0, samples = 0;

    c = steady_setup(f, STEADY_GROUP, 2, 1);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 2, STEADY_RTT_MS), 0);
    f->block_max_age_us = 100000;
    p = pipeline_start(f, STEADY_GROUP, false);
    /* Warm up: the stream runs, alerts come, and a first commit has landed. */
    t0 = vg_mono_ns();
    for (;;) {
        produce_steady(f, &seq);
        ing_pipeline_stats(p, &st);
        if (alerts_new(&st) + st.alerts_updated > 0 && group_committed(c) > 0)
            break;
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("warm-up: %llu events, %llu alerts, no commit", (unsigned long long)st.events,
                     (unsigned long long)alerts_new(&st));
        struct timespec ts = {0, 10000000}; /* the stream's pace, not a synchronisation */

        nanosleep(&ts, NULL);
    }
    ing_pipeline_stats(p, &st);
    alerts0 = alerts_new(&st) + st.alerts_updated;
    first = committed = group_committed(c);
    /* The window: the stream goes on (a batch every 10 ms), the group's commits sampled. */
    t0 = vg_mono_ns();
    while (vgt_elapsed_s(t0) < STEADY_WINDOW_S) {
        produce_steady(f, &seq);
        if (vg_mono_ns() - last_sample >= 50000000u) {
            int64_t now = group_committed(c);

            advances += now > committed;
            committed = now;
            samples++;
            last_sample = vg_mono_ns();
        }
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    }
    ing_pipeline_stats(p, &st);
    print_message("  %d commit advances in %d samples over %d s (offsets %lld -> %lld), %llu "
                  "alerts in the window, %llu commits\n",
                  advances, samples, STEADY_WINDOW_S, (long long)first, (long long)committed,
                  (unsigned long long)(alerts_new(&st) + st.alerts_updated - alerts0),
                  (unsigned long long)st.commits);
    flush_all(f);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 2, 0), 0);
    /* The stop's seal-all barrier committed everything: the group is at the ends. */
    committed = group_committed(c);
    watch_end(f);
    assert_true(alerts_new(&st) + st.alerts_updated - alerts0 > 0);
    assert_true(advances >= STEADY_MIN_ADVANCES);
    assert_int_equal(st.events, f->ledger.events);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(committed, (int64_t)f->nrecs);
    check_timelines(f);
    check_offsets(f, 1);
}

/* ---- e. a lost changelog record --------------------------------------------------- */

/*
 * A changelog record the broker refuses for good (a permanent error: not retried) must stop
 * commits until a snapshot of every machine was delivered. The changelog is led by a broker
 * of its own, which fails its next LOST_ERRORS produce requests once a quiet machine (one
 * batch, then silence: no checkpoint after its first snapshots it again, as its state does
 * not change) has its snapshot there. From the first loss until the broker has answered
 * every error, every checkpoint's records (the full snapshots asked for included) are lost,
 * so the group's commits must not move: once at most, for a commit decided just before the
 * loss. After, commits resume, and only once a second snapshot of the quiet machine (a full
 * one) is in the changelog; two commits are awaited, as the first may be the one decided
 * before the loss.
 */
#define LOST_GROUP    "vigil-lost"
#define QUIET_MACHINE "WIN-quiet-000001"
#define LOST_ERRORS   15
#define API_PRODUCE   0

struct key_count {
    const char *machine;
    size_t n;
    size_t tombstones; /* of the machine */
    size_t all;        /* records of every machine */
};

static void on_changelog_msg(void *ctx, const rd_kafka_message_t *m)
{
    struct key_count *k = ctx;
    size_t ml = strlen(k->machine);
    const char *key = m->key;

    /* key "<tenant length>:<tenant>|<machine>"; a tombstone has no value */
    k->all++;
    if (m->key_len > ml && key[m->key_len - ml - 1] == '|' &&
        memcmp(key + m->key_len - ml, k->machine, ml) == 0) {
        if (m->payload != NULL)
            k->n++;
        else
            k->tombstones++;
    }
}

/* Snapshots of machine in the changelog (its newest included). */
static size_t changelog_snapshots(struct fx *f, const char *machine)
{
    struct key_count k = {machine, 0, 0, 0};

    read_topic(f, LOST_GROUP ".changelog", on_changelog_msg, &k);
    if (k.tombstones > 0)
        print_message("  %zu tombstones of %s in the changelog (%zu records)\n", k.tombstones,
                      machine, k.all);
    return k.n;
}

/* Streams steady batches until the group's committed offsets moved `want` times past
 * *committed (updated); fails at the deadline. */
static void stream_until_commits(struct fx *f, rd_kafka_t *c, uint64_t *seq, int64_t *committed,
                                 int want, const char *what)
{
    uint64_t t0 = vg_mono_ns();
    int advances = 0;

    while (advances < want) {
        int64_t now;

        produce_steady(f, seq);
        now = group_committed(c);
        advances += now > *committed;
        *committed = now;
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("%s: %d of %d commits", what, advances, want);
        struct timespec ts = {0, 10000000}; /* the stream's pace, not a synchronisation */

        nanosleep(&ts, NULL);
    }
}

static void test_lost_changelog_record(void **state)
{
    struct fx *f = *state;
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    rd_kafka_t *c = steady_setup(f, LOST_GROUP, 1, 2);
    struct ing_changelog_stats cs;
    struct ing_stats st;
    ing_pipeline *p;
    uint64_t seq = 1, t0;
    int64_t committed = 0;
    size_t quiet0 = 0, quiet1, len, left;
    int advances = 0;
    uint8_t *buf;

    f->block_max_age_us = 100000;
    p = pipeline_start(f, LOST_GROUP, false);
    buf = small_batch(f, QUIET_MACHINE, STEADY_PATH, 1, 2, &len, true);
    produce(f, QUIET_MACHINE, buf, len, 2);
    free(buf);
    /* Its events in and its snapshot in the changelog. Waited for as such: a number of
     * commits does not say it, as the checkpoints pending when its events arrive (taken
     * before them) may be the ones committed next. */
    t0 = vg_mono_ns();
    do {
        produce_steady(f, &seq);
        ing_pipeline_stats(p, &st);
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("warm-up: %llu events, no snapshot of the quiet machine",
                     (unsigned long long)st.events);
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    } while (st.events < 4 || (quiet0 = changelog_snapshots(f, QUIET_MACHINE)) == 0);
    assert_int_equal(quiet0, 1);
    committed = group_committed(c);
    stream_until_commits(f, c, &seq, &committed, 1, "warm-up");

    /* The changelog's broker refuses its next produce requests, for good. */
    for (int i = 0; i < LOST_ERRORS; i++)
        assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                             mc, 2, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    t0 = vg_mono_ns();
    do {
        produce_steady(f, &seq);
        ing_pipeline_changelog_stats(p, &cs);
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("no changelog record lost: %llu produced", (unsigned long long)cs.produced);
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    } while (cs.failed == 0);
    /* Every record lost until the errors are used up: no commit. */
    committed = group_committed(c);
    do {
        int64_t now;

        produce_steady(f, &seq);
        now = group_committed(c);
        advances += now > committed;
        committed = now;
        assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(mc, 2, API_PRODUCE, &left), 0);
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("%zu of %d errors not answered", left, LOST_ERRORS);
        struct timespec ts = {0, 10000000};

        nanosleep(&ts, NULL);
    } while (left > 0);
    ing_pipeline_changelog_stats(p, &cs);
    print_message("  %llu changelog records lost, %d commits meanwhile\n",
                  (unsigned long long)cs.failed, advances);
    if (advances > 1)
        fail_msg("%d commits while changelog records were being lost", advances);
    stream_until_commits(f, c, &seq, &committed, 2, "after the loss");
    /* The commits after the loss came after the full snapshot. */
    quiet1 = changelog_snapshots(f, QUIET_MACHINE);
    ing_pipeline_changelog_stats(p, &cs);
    ing_pipeline_stats(p, &st);
    print_message("  quiet machine's snapshots %zu -> %zu; changelog: %llu produced, %llu "
                  "tombstones, %llu failed; %llu commits\n",
                  quiet0, quiet1, (unsigned long long)cs.produced,
                  (unsigned long long)cs.tombstones, (unsigned long long)cs.failed,
                  (unsigned long long)st.commits);

    flush_all(f);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    watch_end(f);
    assert_true(quiet1 > quiet0);
    assert_int_equal(st.events, f->ledger.events);
    assert_int_equal(st.duplicates, 0);
    check_timelines(f);
}

/* ---- f. a full producer queue ----------------------------------------------------- */

/*
 * The producer of alerts and changelog records has a bounded queue: when the broker falls
 * behind, the writer waits for room instead of queueing without end. Here the queue is
 * 64 KiB (-X queue.buffering.max.kbytes, as a user may set it; the default is 256 MiB) and
 * the alert topics' broker answers STEADY_RTT_MS late, while a burst of batches, each event
 * firing a rule, arrives with no pause. The writer must have waited (producer_waits), and
 * nothing may be lost or stuck: every event stored once, every alert on the alerts topic
 * once, and the stop commits every offset.
 */
#define BOUNDED_GROUP   "vigil-bounded"
#define BOUNDED_BATCHES 200

static void test_bounded_queue(void **state)
{
    static const struct ing_kv props[] = {{"queue.buffering.max.kbytes", "64"}};
    struct fx *f = *state;
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    struct alert_ids ai = {0};
    struct ing_stats st;
    ing_pipeline *p;
    rd_kafka_t *c;
    uint64_t seq = 1;
    int64_t committed;
    size_t n;

    c = steady_setup(f, BOUNDED_GROUP, 2, 1);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 2, STEADY_RTT_MS), 0);
    f->block_max_age_us = 100000;
    f->props = props;
    f->nprops = 1;
    p = pipeline_start(f, BOUNDED_GROUP, false);
    for (int i = 0; i < BOUNDED_BATCHES; i++)
        produce_steady(f, &seq);
    flush_all(f);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    pipeline_end(f);
    f->props = NULL;
    f->nprops = 0;
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 2, 0), 0);
    committed = group_committed(c);
    watch_end(f);
    print_message("  %llu events, %llu new alerts, %llu updates, %llu produces waited\n",
                  (unsigned long long)st.events, (unsigned long long)alerts_new(&st),
                  (unsigned long long)st.alerts_updated, (unsigned long long)st.producer_waits);
    assert_true(st.producer_waits > 0);
    assert_int_equal(st.events, f->ledger.events);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(committed, (int64_t)f->nrecs);
    check_timelines(f);
    n = read_topic(f, ALERT_TOPIC, on_alert_msg, &ai);
    assert_true(alerts_new(&st) > 0);
    assert_int_equal(n, alerts_new(&st));
    assert_int_equal(ai.n, n);
    for (size_t i = 0; i < ai.n; i++)
        assert_int_equal(ai.count[i], 1);
    free(ai.id);
    free(ai.machine);
    free(ai.title);
    free(ai.count);
}

/*
 * A record larger than the whole queue's bound can never be queued: it must fail (a
 * changelog record: counted, and a full snapshot is asked for) instead of waiting for room
 * forever, which stopped the writer and with it the pipeline. A 1 KiB bound is smaller
 * than the machine's changelog snapshot; the stream must still be stored and the stop
 * must end.
 */
static void test_record_over_queue_bound(void **state)
{
    static const struct ing_kv props[] = {{"queue.buffering.max.kbytes", "1"}};
    struct fx *f = *state;
    struct ing_changelog_stats cs;
    struct ing_stats st;
    ing_pipeline *p;
    uint64_t seq = 1;

    (void)steady_setup(f, BOUNDED_GROUP "-1k", 1, 1);
    f->block_max_age_us = 100000;
    f->props = props;
    f->nprops = 1;
    p = pipeline_start(f, BOUNDED_GROUP "-1k", false);
    for (int i = 0; i < 20; i++)
        produce_steady(f, &seq);
    flush_all(f);
    wait_events(p, 0, f->ledger.events, 0, &st);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st);
    ing_pipeline_changelog_stats(p, &cs);
    pipeline_end(f);
    f->props = NULL;
    f->nprops = 0;
    watch_end(f);
    print_message("  %llu changelog records failed, %llu produced\n", (unsigned long long)cs.failed,
                  (unsigned long long)cs.produced);
    assert_true(cs.failed > 0);
    assert_int_equal(st.events, f->ledger.events);
    check_timelines(f);
}

/*
 * The sightings' producer sheds: a produce that finds its queue full fails at once
 * (-VG_EFULL, counted) instead of holding the writer. A 1 KiB queue, messages of 600 bytes
 * and a broker answering 500 ms late: the second produce already finds it full.
 */
static void test_shedding_producer(void **state)
{
    static const struct ing_kv props[] = {{"queue.buffering.max.kbytes", "1"}};
    struct fx *f = *state;
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    struct ing_kafka_cfg kc = {.brokers = f->brokers, .props = props, .nprops = 1};
    ing_producer *pr = NULL;
    char err[256], val[600];
    int full = 0;

    memset(val, 'x', sizeof(val));
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 1, 500), 0);
    assert_int_equal(ing_producer_new(&kc, &pr, err, sizeof(err)), 0);
    ing_producer_shed(pr);
    for (int i = 0; i < 10; i++) {
        int rc = ing_produce(pr, ALERT_TOPIC, "k", 1, val, sizeof(val), NULL, 0);

        assert_true(rc == 0 || rc == -VG_EFULL);
        full += rc == -VG_EFULL;
    }
    assert_true(full > 0);
    assert_int_equal(ing_producer_queue_full(pr), (uint64_t)full);
    ing_producer_destroy(pr);
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mc, 1, 0), 0);
}

/* ---- g. a stop with the alerts' broker gone --------------------------------------- */

/*
 * A stop while the broker of the alert topics takes nothing (down) must end, instead of
 * waiting for room in the full producer queue until librdkafka's message timeout (5
 * minutes) and more: the writer's waits give up after the stop's grace (10 s) and what was
 * not sent stays in the outbox. The next start, with the broker back, sends it and stores
 * the rest of the stream: every event stored once, every alert on the topic. A 64 KiB queue
 * fills at once.
 */
#define GONE_GROUP   "vigil-gone"
#define GONE_BOUND_S 60 /* the grace, a flush and a commit, with a wide margin: it hung */

static void test_stop_broker_gone(void **state)
{
    static const struct ing_kv props[] = {{"queue.buffering.max.kbytes", "64"}};
    struct fx *f = *state;
    rd_kafka_mock_cluster_t *mc = ing_mock_cluster(f->mock);
    struct alert_ids ai = {0};
    struct ing_stats st1, st2;
    ing_pipeline *p;
    uint64_t seq = 1, t0;
    double stop_s;

    (void)steady_setup(f, GONE_GROUP, 2, 1);
    f->block_max_age_us = 100000;
    f->props = props;
    f->nprops = 1;
    p = pipeline_start(f, GONE_GROUP, true);
    for (int i = 0; i < 50; i++)
        produce_steady(f, &seq);
    flush_all(f);
    wait_events(p, 0, f->ledger.events, 0, &st1);
    /* The alerts' broker goes; the stream goes on until the writer waits for room. */
    assert_int_equal(rd_kafka_mock_broker_set_down(mc, 2), 0);
    for (int i = 0; i < 300; i++)
        produce_steady(f, &seq);
    flush_all(f);
    t0 = vg_mono_ns();
    do {
        if (vgt_elapsed_s(t0) > DEADLINE_S)
            fail_msg("the producer's queue never filled");
        nanosleep(&(struct timespec){0, 10000000}, NULL); /* poll interval */
        ing_pipeline_stats(p, &st1);
    } while (st1.producer_waits == 0);
    t0 = vg_mono_ns();
    ing_pipeline_stop(p);
    stop_s = vgt_elapsed_s(t0);
    ing_pipeline_stats(p, &st1);
    pipeline_end(f);
    print_message("  stop with the alerts' broker down: %.1f s; %llu of %llu events, %llu new "
                  "alerts\n",
                  stop_s, (unsigned long long)st1.events, (unsigned long long)f->ledger.events,
                  (unsigned long long)alerts_new(&st1));
    assert_true(stop_s < GONE_BOUND_S);

    assert_int_equal(rd_kafka_mock_broker_set_up(mc, 2), 0);
    p = pipeline_start(f, GONE_GROUP, true);
    wait_events(p, st1.events, f->ledger.events, 0, &st2);
    ing_pipeline_stop(p);
    ing_pipeline_stats(p, &st2);
    pipeline_end(f);
    f->props = NULL;
    f->nprops = 0;
    watch_end(f);
    assert_int_equal(st1.events + st2.events, f->ledger.events);
    check_timelines(f);
    (void)read_topic(f, ALERT_TOPIC, on_alert_msg, &ai);
    print_message("  after the restart: %llu events, %llu new alerts; %zu alert ids on the "
                  "topic\n",
                  (unsigned long long)st2.events, (unsigned long long)alerts_new(&st2), ai.n);
    assert_int_equal(ai.n, alerts_new(&st1) + alerts_new(&st2));
    free(ai.id);
    free(ai.machine);
    free(ai.title);
    free(ai.count);
}

/* ---- h. -X settings by kind of client ------------------------------------------------ */

/* Every client is given the same -X list: each takes what librdkafka documents for its kind
 * (or for both), not what is for the other kind only (librdkafka would warn about each). */
static void test_conf_scope(void **state)
{
    static const struct ing_kv props[] = {
        {"heartbeat.interval.ms", "777"},       /* consumers only */
        {"queue.buffering.max.kbytes", "4321"}, /* producers only */
        {"client.id", "vigil-scope"},           /* both */
    };
    const struct ing_kafka_cfg kc = {.props = props, .nprops = VG_ARRAY_SIZE(props)};
    rd_kafka_type_t types[] = {RD_KAFKA_PRODUCER, RD_KAFKA_CONSUMER};
    char err[256], val[64];

    (void)state;
    for (size_t t = 0; t < 2; t++) {
        rd_kafka_conf_t *conf = ing_conf_new(&kc, "127.0.0.1:1", types[t], err, sizeof(err));
        size_t n;

        assert_non_null(conf);
        n = sizeof(val);
        assert_int_equal(rd_kafka_conf_get(conf, "heartbeat.interval.ms", val, &n),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(strcmp(val, "777") == 0, types[t] == RD_KAFKA_CONSUMER);
        n = sizeof(val);
        assert_int_equal(rd_kafka_conf_get(conf, "queue.buffering.max.kbytes", val, &n),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(strcmp(val, "4321") == 0, types[t] == RD_KAFKA_PRODUCER);
        n = sizeof(val);
        assert_int_equal(rd_kafka_conf_get(conf, "client.id", val, &n), RD_KAFKA_CONF_OK);
        assert_string_equal(val, "vigil-scope");
        rd_kafka_conf_destroy(conf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_end_to_end, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shard_budget, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shard_budget_one, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_steady_alerts_commit, fx_setup_two, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lost_changelog_record, fx_setup_two, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bounded_queue, fx_setup_two, fx_teardown),
        cmocka_unit_test_setup_teardown(test_record_over_queue_bound, fx_setup_two, fx_teardown),
        cmocka_unit_test_setup_teardown(test_shedding_producer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_broker_gone, fx_setup_two, fx_teardown),
        cmocka_unit_test(test_conf_scope),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
