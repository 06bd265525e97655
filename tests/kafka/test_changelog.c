/*
 * test_changelog.c - correlator state moves with its partition through the changelog
 * topic: two pipelines in one consumer group on one embedded broker, each with its own
 * RocksDB in a temporary directory. Instance A sees a process tree start and the first
 * command of the Linux "Enumeration of files with sensitive data" correlation
 * (rules/vigil_linux_sensitive_enum_corr.yml: two distinct sensitive-file commands of one
 * activity tree); A stops; B, which never saw those events and has none of them in its
 * database, takes the partition, receives the second command, and must raise the
 * correlation once, with both commands as evidence and a process tree whose ancestors only
 * A saw.
 *
 * THREAD MODEL: the test's thread produces and polls statistics; the pipelines run their
 * own threads and call on_alert on their writer threads (collected under a mutex). Every
 * wait polls a condition against a deadline.
 */
#include <pthread.h>
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

#include "alert.pb-c.h"
#include "changelog.h"
#include "corr.h"
#include "correlate.h"
#include "ingest.h"
#include "rules.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

#define NPARTS     2
#define DEADLINE_S 60
#define GROUP      "clg"
#define CORR_ID    "5b0e7d1a-8c3f-4e62-9a47-2f6d1c8b3e90"
#define MACHINE    "lnx-web-01"

struct inst { /* one vigil instance */
    char *dir;
    sto_db *db;
    ing_pipeline *p;
    pthread_mutex_t lock;
    Vigil__Alert *corr[4]; /* correlation alerts raised (copies) */
    size_t ncorr;
    size_t nalerts;
};

struct fx {
    ing_mock *mock;
    const char *brokers;
    cor_ruleset *rules;
    cor_corrset *corr;
    ing_producer *prod;
    struct inst a, b;
    int64_t t0;      /* event time base */
    vg_arena *arena; /* the test's telemetry (freed in teardown, even after a failure) */
};

/* Writer thread of either instance. */
static void on_alert(void *ctx, const struct ProtobufCMessage *msg)
{
    struct inst *in = ctx;
    const Vigil__Alert *al = (const Vigil__Alert *)msg;

    pthread_mutex_lock(&in->lock);
    in->nalerts++;
    if (strcmp(al->rule_id, CORR_ID) == 0 && in->ncorr < 4) {
        size_t len = vigil__alert__get_packed_size(al);
        uint8_t *buf = malloc(len);

        assert_non_null(buf);
        vigil__alert__pack(al, buf);
        in->corr[in->ncorr++] = vigil__alert__unpack(NULL, len, buf);
        free(buf);
    }
    pthread_mutex_unlock(&in->lock);
}

static size_t ncorr(struct inst *in)
{
    size_t n;

    pthread_mutex_lock(&in->lock);
    n = in->ncorr;
    pthread_mutex_unlock(&in->lock);
    return n;
}

static int setup(void **state)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    struct fx *f = calloc(1, sizeof(*f));
    struct ing_kafka_cfg kc = {0};
    char err[512];

    if (f == NULL)
        return -1;
    vg_log_set_level(VG_LOG_WARN);
    if (ing_mock_start(1, NPARTS, ing_default_topics, ING_DEFAULT_NTOPICS, &f->mock, err,
                       sizeof(err)) != 0 ||
        ing_changelog_mock_create(f->mock, GROUP, NPARTS) != 0 ||
        cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)) != 0 ||
        cor_corrset_load(dirs, 1, &f->corr, NULL, err, sizeof(err)) != 0) {
        print_error("setup: %s\n", err);
        return -1;
    }
    f->brokers = ing_mock_bootstraps(f->mock);
    kc.brokers = f->brokers;
    if (ing_producer_new(&kc, &f->prod, err, sizeof(err)) != 0) {
        print_error("producer: %s\n", err);
        return -1;
    }
    f->t0 = vg_now_us() / VG_US_PER_SEC * VG_US_PER_SEC;
    *state = f;
    return 0;
}

static void inst_free(struct inst *in)
{
    ing_pipeline_destroy(in->p);
    in->p = NULL;
    for (size_t i = 0; i < in->ncorr; i++)
        vigil__alert__free_unpacked(in->corr[i], NULL);
    if (in->db != NULL)
        sto_close(in->db);
    if (in->dir != NULL) {
        vgt_rmtree(in->dir);
        free(in->dir);
    }
    pthread_mutex_destroy(&in->lock);
}

static int teardown(void **state)
{
    struct fx *f = *state;

    inst_free(&f->a);
    inst_free(&f->b);
    ing_producer_destroy(f->prod);
    cor_corrset_unref(f->corr);
    cor_ruleset_unref(f->rules);
    ing_mock_stop(f->mock);
    vg_arena_destroy(f->arena);
    free(f);
    return 0;
}

/* Heartbeats well inside the short session's rebalance window (vgtest.h). */
static const struct ing_kv group_props[] = {{"heartbeat.interval.ms", VGT_HEARTBEAT_MS_STR}};

/* A pipeline on the instance's database (opened on first use). */
static void inst_start(struct fx *f, struct inst *in, const char *tag, bool held_back)
{
    struct ing_pipeline_cfg cfg = {0};
    struct sto_opts so = {0};
    char err[512];

    if (in->db == NULL) {
        pthread_mutex_init(&in->lock, NULL);
        in->dir = vgt_tmpdir(tag);
        so.path = in->dir;
        if (sto_open(&so, &in->db, err, sizeof(err)) != 0)
            fail_msg("storage: %s", err);
    }
    cfg.kafka.brokers = f->brokers;
    cfg.kafka.group = GROUP;
    cfg.nshards = 2;
    cfg.rules = f->rules;
    cfg.corr = f->corr;
    /* -1: correlate as events arrive (the first command is in an open group when A stops);
     * 0: the default lateness bound, 5 minutes (it is still held back, pending) */
    cfg.corr_lateness_us = held_back ? 0 : -1;
    cfg.db = in->db;
    cfg.commit_ms = 200;
    cfg.block_max_age_us = 100000; /* blocks seal, and offsets move, within a round or two */
    /* The embedded broker holds a rebalance open for a session less a second (vgtest.h). */
    cfg.session_timeout_ms = VGT_SESSION_MS;
    cfg.kafka.props = group_props;
    cfg.kafka.nprops = 1;
    cfg.on_alert = on_alert;
    cfg.on_alert_ctx = in;
    if (ing_pipeline_new(&cfg, &in->p, err, sizeof(err)) != 0)
        fail_msg("pipeline: %s", err);
    if (ing_pipeline_start(in->p, err, sizeof(err)) != 0)
        fail_msg("pipeline start: %s", err);
}

/* ---- telemetry ---------------------------------------------------------------------- */

static Vigil__ProcessRef *ref(vg_arena *a, uint32_t pid, const char *image, const char *cmd,
                              int64_t t0)
{
    Vigil__ProcessRef *r = vg_arena_alloc(a, sizeof(*r));

    assert_non_null(r);
    vigil__process_ref__init(r);
    r->pid = pid;
    r->creation_time_us = t0 + pid; /* one creation time per pid, known to every event */
    r->image = (char *)image;
    r->command_line = (char *)cmd;
    r->account = "alice";
    return r;
}

/* seq: parent (pid, image, cmd) creates child (pid, image, cmd) at t0 + seq seconds. */
static Vigil__Event *spawn_ev(vg_arena *a, int64_t t0, uint64_t seq, uint32_t ppid,
                              const char *pimg, const char *pcmd, uint32_t pid, const char *img,
                              const char *cmd)
{
    Vigil__Event *e = vg_arena_alloc(a, sizeof(*e));
    Vigil__ProcessCreated *pc = vg_arena_alloc(a, sizeof(*pc));

    assert_non_null(e);
    assert_non_null(pc);
    vigil__event__init(e);
    vigil__process_created__init(pc);
    e->seq = seq;
    e->ts_us = t0 + (int64_t)seq * VG_US_PER_SEC;
    e->actor = ref(a, ppid, pimg, pcmd, t0);
    pc->process = ref(a, pid, img, cmd, t0);
    e->kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    e->process_created = pc;
    return e;
}

static void produce_batch(struct fx *f, Vigil__Event **evs, size_t n)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    uint8_t *buf;
    size_t len;

    b.tenant_id = "t1";
    b.machine_id = MACHINE;
    b.machine_name = "web-01";
    b.os = VIGIL__OS__OS_LINUX;
    b.first_seq = evs[0]->seq;
    b.events = evs;
    b.n_events = n;
    buf = vgt_pack_batch(&b, &len);
    assert_int_equal(ing_produce(f->prod, "telemetry", MACHINE, strlen(MACHINE), buf, len, NULL, 0),
                     0);
    free(buf);
    assert_int_equal(ing_producer_flush(f->prod, 10000), 0);
}

/* ---- waiting ------------------------------------------------------------------------ */

static bool deadline_passed(uint64_t t0)
{
    struct timespec ts = {0, 20000000};

    nanosleep(&ts, NULL);
    return vgt_elapsed_s(t0) > DEADLINE_S;
}

static void wait_assigned(struct inst *in, uint32_t want)
{
    uint64_t t0 = vg_mono_ns();
    struct ing_stats st;

    do {
        ing_pipeline_stats(in->p, &st);
        if (st.partitions == want)
            return;
    } while (!deadline_passed(t0));
    fail_msg("deadline: %u partitions assigned, want %u", st.partitions, want);
}

/* Until in has accepted want events and committed a checkpoint after it. */
static void wait_committed(struct inst *in, uint64_t want)
{
    uint64_t t0 = vg_mono_ns(), commits = 0;
    struct ing_stats st;
    struct ing_changelog_stats cs;

    do {
        ing_pipeline_stats(in->p, &st);
        ing_pipeline_changelog_stats(in->p, &cs);
        if (st.events >= want && commits == 0)
            commits = st.commits + 1; /* one more than when the events were in */
        if (commits != 0 && st.commits >= commits + 1 && cs.produced > 0)
            return;
    } while (!deadline_passed(t0));
    fail_msg("deadline: %llu events, %llu commits, %llu snapshots", (unsigned long long)st.events,
             (unsigned long long)st.commits, (unsigned long long)cs.produced);
}

/* The group's committed offsets, summed over the partitions, as the broker has them. */
static int64_t committed_total(struct fx *f)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPARTS);
    rd_kafka_t *rk;
    int64_t sum = 0;
    char err[256];

    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", GROUP, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)); /* never subscribes */
    assert_non_null(rk);
    for (int i = 0; i < NPARTS; i++)
        rd_kafka_topic_partition_list_add(l, "telemetry", i);
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (int i = 0; i < l->cnt; i++)
            sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return sum;
}

/* ---- the test ----------------------------------------------------------------------- */

static bool tree_has(const Vigil__Alert *al, const char *image)
{
    for (size_t i = 0; i < al->n_process_tree; i++)
        if (strcmp(al->process_tree[i]->image, image) == 0)
            return true;
    return false;
}

static void takeover(void **state, bool held_back)
{
    struct fx *f = *state;
    vg_arena *a = f->arena = vg_arena_new(8192);
    Vigil__Event *first[4], *second[2];
    struct ing_changelog_stats cs;
    struct ing_stats st;
    struct cor_shard_stats ss;
    const Vigil__Alert *al;
    uint64_t t0, restored = 0;
    const char *sh = "/usr/bin/bash", *script = "bash /tmp/enum.sh";

    assert_non_null(a);
    /* A alone: the whole tree and the first command (find ... id_rsa). */
    inst_start(f, &f->a, "clg-a", held_back);
    wait_assigned(&f->a, NPARTS);
    first[0] = spawn_ev(a, f->t0, 1, 1, "/sbin/init", "/sbin/init", 500, "/usr/sbin/sshd",
                        "sshd: alice [priv]");
    first[1] = spawn_ev(a, f->t0, 2, 500, "/usr/sbin/sshd", "sshd: alice [priv]", 600, sh, "-bash");
    first[2] = spawn_ev(a, f->t0, 3, 600, sh, "-bash", 700, sh, script);
    first[3] = spawn_ev(a, f->t0, 4, 700, sh, script, 800, "/usr/bin/find", "find / -name id_rsa");
    produce_batch(f, first, 4);
    wait_committed(&f->a, 4);
    /* The broker has A's offset past the batch (and so the changelog its snapshot): B must
     * not see these events again. */
    t0 = vg_mono_ns();
    while (committed_total(f) < 1 && !deadline_passed(t0))
        ;
    assert_int_equal(committed_total(f), 1);
    assert_int_equal(ncorr(&f->a), 0); /* one distinct command of two: nothing yet */

    /* Garbage in the changelog, as a broken producer or disk might leave it: B counts it,
     * logs it and goes on. */
    assert_int_equal(
        ing_produce(f->prod, GROUP ".changelog", "1:t1|junk", 9, "\x08\xff\xff", 3, NULL, 0), 0);
    assert_int_equal(ing_producer_flush(f->prod, 10000), 0);

    /* B joins, A leaves: B ends with every partition, the state of A's machine restored
     * from the changelog (at this rebalance or the next). */
    if (held_back) { /* the first command waits in A's reorder buffer */
        uint64_t pending = 0;

        for (uint32_t i = 0; i < ing_pipeline_nshards(f->a.p); i++) {
            cor_shard_get_stats(ing_pipeline_shard(f->a.p, i), &ss);
            pending += ss.corr_pending;
        }
        assert_int_equal(pending, 1);
    }
    inst_start(f, &f->b, "clg-b", held_back);
    wait_assigned(&f->b, 1);
    ing_pipeline_stop(f->a.p);
    wait_assigned(&f->b, NPARTS);
    ing_pipeline_changelog_stats(f->b.p, &cs);
    assert_true(cs.enabled);
    assert_true(cs.restored >= 1);
    assert_true(cs.bad >= 1); /* the garbage record, once per read of its partition */
    for (uint32_t i = 0; i < ing_pipeline_nshards(f->b.p); i++) {
        cor_shard_get_stats(ing_pipeline_shard(f->b.p, i), &ss);
        restored += ss.restored;
    }
    assert_true(restored >= 1);

    /* The second command (grep ... PRIVATE KEY), to B only. */
    second[0] =
        spawn_ev(a, f->t0, 5, 700, sh, script, 900, "/usr/bin/grep", "grep -r 'PRIVATE KEY' /home");
    /* Held back, the correlation waits for the machine's time to pass the lateness bound:
     * a later event moves it. */
    second[1] = spawn_ev(a, f->t0, 6, 600, sh, "-bash", 1000, "/usr/bin/sleep", "sleep 1");
    second[1]->ts_us = f->t0 + 400 * VG_US_PER_SEC;
    produce_batch(f, second, held_back ? 2 : 1);
    t0 = vg_mono_ns();
    while (ncorr(&f->b) == 0 && !deadline_passed(t0))
        ;
    assert_int_equal(ncorr(&f->b), 1);
    wait_committed(&f->b, 1); /* and a few rounds more: still one */
    assert_int_equal(ncorr(&f->b), 1);
    assert_int_equal(ncorr(&f->a), 0);

    /* B processed only the second batch: A's committed offset covered the first. */
    ing_pipeline_stats(f->b.p, &st);
    assert_int_equal(st.events, held_back ? 2 : 1);

    al = f->b.corr[0];
    assert_string_equal(al->machine_id, MACHINE);
    assert_int_equal(al->event_count, 2);
    assert_int_equal(al->n_evidence, 2);
    assert_non_null(strstr(al->evidence[0]->summary, "id_rsa"));
    assert_non_null(strstr(al->evidence[1]->summary, "PRIVATE KEY"));
    assert_int_equal(al->first_event_us, f->t0 + 4 * VG_US_PER_SEC);
    assert_int_equal(al->last_event_us, f->t0 + 5 * VG_US_PER_SEC);
    /* ancestors that only A saw, and both commands under the script */
    assert_true(tree_has(al, "/usr/sbin/sshd"));
    assert_true(tree_has(al, "/sbin/init"));
    assert_true(tree_has(al, "/usr/bin/find"));
    assert_true(tree_has(al, "/usr/bin/grep"));
}

/* After the takeover, B stops and A comes back with its own RocksDB, whose offset is
 * older than the group's commit (B's): A starts at the group's commit, so B's events are
 * neither stored nor alerted on a second time here. */
static void test_handback_starts_at_group_commit(void **state)
{
    struct fx *f = *state;
    Vigil__Event *third[1];
    struct ing_stats st;
    uint64_t t0;

    takeover(state, false);
    ing_pipeline_stop(f->b.p);
    t0 = vg_mono_ns();
    while (committed_total(f) < 2 && !deadline_passed(t0))
        ;
    assert_int_equal(committed_total(f), 2);
    ing_pipeline_destroy(f->a.p);
    f->a.p = NULL;
    inst_start(f, &f->a, "clg-a", false);
    wait_assigned(&f->a, NPARTS);
    third[0] = spawn_ev(f->arena, f->t0, 7, 600, "/usr/bin/bash", "-bash", 1100, "/usr/bin/sleep",
                        "sleep 2");
    produce_batch(f, third, 1);
    wait_committed(&f->a, 1);
    ing_pipeline_stats(f->a.p, &st);
    assert_int_equal(st.events, 1); /* the third batch only, not B's second again */
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(ncorr(&f->a), 0); /* B's correlation alert is not raised again */
}

/* The first command already in an open correlation group when A stops. */
static void test_takeover_moves_state(void **state)
{
    takeover(state, false);
}

/* The first command still held back by the lateness bound (pending) when A stops. */
static void test_takeover_moves_pending(void **state)
{
    takeover(state, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_takeover_moves_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_moves_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handback_starts_at_group_commit, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
