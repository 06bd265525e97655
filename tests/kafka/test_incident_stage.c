/*
 * test_incident_stage.c - the incident stage (ingest/incidents.c) rebuilds its state from
 * the tenant-keyed alert topic on the embedded broker (librdkafka's mock cluster), the way
 * it does after every restart or rebalance. The topic holds what a week of a running fleet
 * leaves: sightings from eight days, three days and one hour back, and alerts from 30 hours
 * and one hour back (record times set by the producer). A stage that starts must count the
 * sightings of the prevalence window (7 days) and group the alerts of the link window
 * (24 h), and skip the rest; a second stage of the same group, after the first stopped,
 * must come to the same. Before, the stage re-read one link window only, and on this
 * broker, which answers -1 to every offsets-for-times lookup, it read nothing at all.
 *
 * THREAD MODEL: the test's thread produces and polls statistics; the stage runs its own
 * thread and calls on_incident there (collected under a mutex).
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
#include "ingest.h"
#include "vg.h"
#include "vgtest.h"

#define DEADLINE_S 60
#define GROUP      "incstage"
#define TENANT     "acme"
#define HOUR_MS    (INT64_C(3600) * 1000)

struct fx {
    ing_mock *mock;
    const char *brokers;
    rd_kafka_t *prod;
    pthread_mutex_t lock;
    char seen[8][64]; /* alert ids in the incidents emitted */
    size_t nseen;
    size_t nincidents;
    bool overflow;
};

/* Stage thread. */
static void on_incident(void *ctx, const struct ProtobufCMessage *msg)
{
    struct fx *f = ctx;
    const Vigil__Incident *inc = (const Vigil__Incident *)msg;

    pthread_mutex_lock(&f->lock);
    f->nincidents++;
    for (size_t i = 0; i < inc->n_alert_ids; i++) {
        bool dup = false;

        for (size_t j = 0; j < f->nseen; j++)
            dup = dup || strcmp(f->seen[j], inc->alert_ids[i]) == 0;
        if (dup)
            continue;
        if (f->nseen == 8)
            f->overflow = true;
        else
            snprintf(f->seen[f->nseen++], sizeof(f->seen[0]), "%s", inc->alert_ids[i]);
    }
    pthread_mutex_unlock(&f->lock);
}

static void produce(struct fx *f, const void *buf, size_t len, int64_t ts_ms, bool sightings)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_resp_err_t e;

    assert_non_null(h);
    if (sightings)
        assert_int_equal(rd_kafka_header_add(h, "vigil-type", -1, "sightings", -1), 0);
    e = rd_kafka_producev(
        f->prod, RD_KAFKA_V_TOPIC("alerts.tenant"), RD_KAFKA_V_KEY(TENANT, strlen(TENANT)),
        RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(h);
        fail_msg("produce: %s", rd_kafka_err2str(e));
    }
}

/* A machine's sightings of n domains, named prefix0.example ... */
static void produce_sightings(struct fx *f, const char *machine, const char *prefix, int n,
                              int64_t ts_ms)
{
    Vigil__Sightings sg = VIGIL__SIGHTINGS__INIT;
    Vigil__Entity e[4], *ep[4];
    char names[4][32];
    uint8_t buf[1024];
    size_t len;

    assert_true(n <= 4);
    for (int i = 0; i < n; i++) {
        vigil__entity__init(&e[i]);
        snprintf(names[i], sizeof(names[i]), "%s%d.example", prefix, i);
        e[i].kind = VIGIL__ENTITY_KIND__ENTITY_DOMAIN;
        e[i].value = names[i];
        ep[i] = &e[i];
    }
    sg.tenant_id = TENANT;
    sg.machine_id = (char *)machine;
    sg.ts_us = ts_ms * 1000;
    sg.entities = ep;
    sg.n_entities = (size_t)n;
    len = vigil__sightings__get_packed_size(&sg);
    assert_true(len <= sizeof(buf));
    vigil__sightings__pack(&sg, buf);
    produce(f, buf, len, ts_ms, true);
}

static void produce_alert(struct fx *f, const char *id, const char *machine, int64_t ts_ms)
{
    Vigil__Alert al = VIGIL__ALERT__INIT;
    Vigil__Entity m = VIGIL__ENTITY__INIT, *ep[1] = {&m};
    uint8_t buf[1024];
    size_t len;

    al.id = (char *)id;
    al.tenant_id = TENANT;
    al.machine_id = (char *)machine;
    al.rule_id = "rule-1";
    al.title = "test alert";
    al.severity = VIGIL__SEVERITY__SEVERITY_MEDIUM;
    al.first_event_us = ts_ms * 1000;
    al.last_event_us = ts_ms * 1000;
    m.kind = VIGIL__ENTITY_KIND__ENTITY_MACHINE;
    m.value = (char *)machine;
    al.entities = ep;
    al.n_entities = 1;
    len = vigil__alert__get_packed_size(&al);
    assert_true(len <= sizeof(buf));
    vigil__alert__pack(&al, buf);
    produce(f, buf, len, ts_ms, false);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];

    if (f == NULL || conf == NULL)
        return -1;
    vg_log_set_level(VG_LOG_WARN);
    pthread_mutex_init(&f->lock, NULL);
    if (ing_mock_start(1, 1, ing_default_topics, ING_DEFAULT_NTOPICS, &f->mock, err, sizeof(err)) !=
        0) {
        print_error("setup: %s\n", err);
        return -1;
    }
    f->brokers = ing_mock_bootstraps(f->mock);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", f->brokers, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK ||
        (f->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err))) == NULL) {
        print_error("producer: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    rd_kafka_destroy(f->prod);
    ing_mock_stop(f->mock);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return 0;
}

/* Runs one stage of the group until it has taken in everything on the topic (by the
 * counters, which check_stage then checks exactly), then stops it. */
static void run_stage(struct fx *f, struct ing_incidents_stats *st)
{
    struct ing_incidents_cfg cfg = {0};
    ing_incidents *s = NULL;
    uint64_t t0 = vg_mono_ns();
    char err[512];

    cfg.kafka.brokers = f->brokers;
    cfg.kafka.group = GROUP;
    cfg.on_incident = on_incident;
    cfg.on_incident_ctx = f;
    cfg.session_timeout_ms = 6000;
    assert_int_equal(ing_incidents_new(&cfg, &s, err, sizeof(err)), 0);
    assert_int_equal(ing_incidents_start(s, err, sizeof(err)), 0);
    for (;;) {
        struct timespec ts = {0, 50 * 1000000};

        ing_incidents_stats(s, st);
        if ((st->old >= 2 && st->alerts >= 1 && st->sightings >= 5) ||
            vgt_elapsed_s(t0) > DEADLINE_S)
            break;
        nanosleep(&ts, NULL);
    }
    nanosleep(&(struct timespec){0, 400 * 1000000}, NULL); /* the stage's flush interval */
    ing_incidents_stop(s);
    ing_incidents_stats(s, st);
    ing_incidents_destroy(s);
}

static void check_stage(struct fx *f, const struct ing_incidents_stats *st)
{
    /* Eight days back: past the prevalence window. 30 hours back: an alert past the link
     * window. */
    assert_int_equal(st->old, 2);
    /* Three days back (3 domains) and one hour back (2 domains): counted. */
    assert_int_equal(st->sightings, 5);
    /* One hour back: grouped. */
    assert_int_equal(st->alerts, 1);
    assert_int_equal(st->bad, 0);
    pthread_mutex_lock(&f->lock);
    assert_false(f->overflow);
    assert_true(f->nincidents >= 1);
    assert_int_equal(f->nseen, 1);
    assert_string_equal(f->seen[0], "al-new");
    pthread_mutex_unlock(&f->lock);
}

static void test_rebuild_windows(void **state)
{
    struct fx *f = *state;
    int64_t now_ms = vg_now_us() / 1000;
    struct ing_incidents_stats st;

    produce_sightings(f, "m1", "eight", 4, now_ms - 8 * 24 * HOUR_MS);
    produce_sightings(f, "m1", "three", 3, now_ms - 3 * 24 * HOUR_MS);
    produce_alert(f, "al-old", "m1", now_ms - 30 * HOUR_MS);
    produce_sightings(f, "m2", "one", 2, now_ms - HOUR_MS);
    produce_alert(f, "al-new", "m2", now_ms - HOUR_MS);
    assert_int_equal(rd_kafka_flush(f->prod, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

    run_stage(f, &st);
    check_stage(f, &st);

    /* A restart: the next stage of the group rebuilds the same state from the topic. */
    pthread_mutex_lock(&f->lock);
    f->nseen = f->nincidents = 0;
    pthread_mutex_unlock(&f->lock);
    run_stage(f, &st);
    check_stage(f, &st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rebuild_windows, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
