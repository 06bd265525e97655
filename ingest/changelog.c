/*
 * changelog.c - the changelog topic (changelog.h): set-up, restore, produce.
 *
 * Restore reads a partition with librdkafka's simple (legacy) consumer API on a handle of its
 * own, outside any group: it must not disturb the group the pipeline's consumer is in, and it
 * must read from the beginning whatever the group committed. The newest record of each key
 * wins, as compaction would leave it, so a broker that does not compact (the embedded one)
 * gives the same result, only slower.
 *
 * THREAD MODEL: see changelog.h.
 */
#include "changelog.h"
#include "ingest_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "state.h"

#define CL_TIMEOUT_MS 10000
#define CL_RESTORE_S  120 /* a partition's restore gives up after this long */

struct ing_changelog {
    char *name;
    bool enabled;
    int32_t partitions;
    rd_kafka_t *reader; /* simple consumer for restores */
    rd_kafka_topic_t *rkt;
    struct ing_changelog_stats st; /* relaxed atomics */
};

/* The newest record of one key, while a partition is read. */
struct cl_rec {
    char *key;
    size_t keylen;
    uint8_t *val; /* NULL: tombstone */
    size_t len;
    struct cl_rec *next; /* same hash */
};

static int cl_setup_topic(ing_changelog *c, rd_kafka_t *rk, const char *topic, char *err,
                          size_t errlen);
static int cl_create(ing_changelog *c, rd_kafka_t *rk, int32_t partitions, char *err,
                     size_t errlen);
static void cl_stat_add(uint64_t *f, uint64_t n);

/* ---- public ----------------------------------------------------------------------- */

int ing_changelog_new(const struct ing_kafka_cfg *cfg, const char *brokers, const char *group,
                      const char *topic, void *rk, ing_changelog **out, char *err, size_t errlen)
{
    ing_changelog *c = vg_calloc(1, sizeof(*c));
    rd_kafka_conf_t *conf = NULL;
    size_t n = strlen(group) + sizeof(".changelog");

    if (c == NULL || (c->name = vg_malloc(n)) == NULL) {
        vg_free(c);
        snprintf(err, errlen, "out of memory");
        return -VG_ENOMEM;
    }
    snprintf(c->name, n, "%s.changelog", group);
    *out = c;
    if (cl_setup_topic(c, rk, topic, err, errlen) < 0) {
        vg_log(strstr(err, "embedded") != NULL ? VG_LOG_WARN : VG_LOG_ERROR, "ingest",
               "changelog %s: %s: correlator state will not move with its partitions (a new "
               "owner rebuilds process trees from its own timeline only)",
               c->name, err);
        return 0;
    }
    conf = ing_conf_new(cfg, brokers, RD_KAFKA_CONSUMER, err, errlen);
    if (conf == NULL)
        return -VG_EKAFKA;
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
    /* The read ends at the high watermark: the broker need not wait for more. */
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", NULL, 0);
    c->reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (c->reader == NULL) {
        rd_kafka_conf_destroy(conf);
        return -VG_EKAFKA;
    }
    c->rkt = rd_kafka_topic_new(c->reader, c->name, NULL);
    if (c->rkt == NULL) {
        snprintf(err, errlen, "topic handle: %s", rd_kafka_err2str(rd_kafka_last_error()));
        return -VG_EKAFKA;
    }
    c->enabled = true;
    __atomic_store_n(&c->st.enabled, true, __ATOMIC_RELAXED);
    vg_log(VG_LOG_INFO, "ingest", "changelog %s: %d partitions", c->name, c->partitions);
    return 0;
}

void ing_changelog_destroy(ing_changelog *c)
{
    if (c == NULL)
        return;
    if (c->rkt != NULL)
        rd_kafka_topic_destroy(c->rkt);
    if (c->reader != NULL)
        rd_kafka_destroy(c->reader);
    vg_free(c->name);
    vg_free(c);
}

bool ing_changelog_enabled(const ing_changelog *c)
{
    return c != NULL && c->enabled;
}

const char *ing_changelog_topic(const ing_changelog *c)
{
    return c != NULL ? c->name : "";
}

static void cl_recs_free(struct vg_u64map *m)
{
    size_t pos = 0;
    uint64_t k;
    void *v;

    while (vg_u64map_next(m, &pos, &k, &v)) {
        for (struct cl_rec *r = v, *next; r != NULL; r = next) {
            next = r->next;
            vg_free(r->key);
            vg_free(r->val);
            vg_free(r);
        }
    }
    vg_u64map_free(m);
}

/* Keeps rkm as the newest record of its key. -VG_ENOMEM when it cannot. */
static int cl_keep(struct vg_u64map *m, const rd_kafka_message_t *rkm)
{
    uint64_t h = vg_hash64(rkm->key, rkm->key_len, 0x636c) | 1;
    struct cl_rec *head = vg_u64map_get(m, h), *r;

    for (r = head; r != NULL; r = r->next)
        if (r->keylen == rkm->key_len && memcmp(r->key, rkm->key, r->keylen) == 0)
            break;
    if (r == NULL) {
        if ((r = vg_calloc(1, sizeof(*r))) == NULL || (r->key = vg_malloc(rkm->key_len)) == NULL) {
            vg_free(r);
            return -VG_ENOMEM;
        }
        memcpy(r->key, rkm->key, rkm->key_len);
        r->keylen = rkm->key_len;
        r->next = head;
        if (vg_u64map_put(m, h, r) < 0) {
            vg_free(r->key);
            vg_free(r);
            return -VG_ENOMEM;
        }
    }
    vg_free(r->val);
    r->val = NULL;
    r->len = 0;
    if (rkm->payload != NULL) {
        if ((r->val = vg_malloc(rkm->len ? rkm->len : 1)) == NULL)
            return -VG_ENOMEM;
        memcpy(r->val, rkm->payload, rkm->len);
        r->len = rkm->len;
    }
    return 0;
}

/* Reads the partition from lo to hi into m. 0 or a negative vg_err. */
static int cl_read(ing_changelog *c, int32_t partition, int64_t hi, struct vg_u64map *m)
{
    uint64_t deadline = vg_mono_ns() + CL_RESTORE_S * 1000000000ull;
    int64_t next = 0;
    int rc = 0;

    if (rd_kafka_consume_start(c->rkt, partition, RD_KAFKA_OFFSET_BEGINNING) < 0)
        return -VG_EKAFKA;
    while (next < hi && rc == 0) {
        rd_kafka_message_t *rkm = rd_kafka_consume(c->rkt, partition, 200);

        if (vg_mono_ns() > deadline)
            rc = -VG_EKAFKA;
        if (rkm == NULL)
            continue;
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = hi; /* the end, whatever the watermark said */
        } else if (rkm->err) {
            vg_log(VG_LOG_WARN, "ingest", "changelog %s[%d]: %s", c->name, partition,
                   rd_kafka_message_errstr(rkm));
        } else {
            next = rkm->offset + 1;
            cl_stat_add(&c->st.read, 1);
            if (rkm->key == NULL) {
                cl_stat_add(&c->st.bad, 1);
                vg_log(VG_LOG_WARN, "ingest", "changelog %s[%d]@%lld: record without key", c->name,
                       partition, (long long)rkm->offset);
            } else {
                rc = cl_keep(m, rkm);
            }
        }
        rd_kafka_message_destroy(rkm);
    }
    rd_kafka_consume_stop(c->rkt, partition);
    return rc;
}

int ing_changelog_restore(ing_changelog *c, int32_t partition,
                          void (*fn)(void *ctx, int32_t partition, Vigil__MachineState *ms),
                          void *ctx)
{
    uint64_t t0 = vg_mono_ns();
    struct vg_u64map m;
    int64_t lo, hi;
    size_t pos = 0;
    uint64_t k;
    void *v;
    int rc, n = 0;

    if (!ing_changelog_enabled(c))
        return 0;
    if (rd_kafka_query_watermark_offsets(c->reader, c->name, partition, &lo, &hi, CL_TIMEOUT_MS) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        vg_log(VG_LOG_ERROR, "ingest", "changelog %s[%d]: no watermarks: state not restored",
               c->name, partition);
        return -VG_EKAFKA;
    }
    if (hi <= lo)
        return 0;
    if (vg_u64map_init(&m, 64) < 0)
        return -VG_ENOMEM;
    rc = cl_read(c, partition, hi, &m);
    while (rc == 0 && vg_u64map_next(&m, &pos, &k, &v)) {
        for (struct cl_rec *r = v; r != NULL; r = r->next) {
            Vigil__MachineState *ms;
            char why[256];

            if (r->val == NULL)
                continue; /* a tombstone: the state expired */
            if (cor_snap_decode(r->val, r->len, &ms, why, sizeof(why)) < 0) {
                cl_stat_add(&c->st.bad, 1);
                vg_log(VG_LOG_WARN, "ingest", "changelog %s[%d] key %.*s: %s: skipped", c->name,
                       partition, (int)VG_MIN(r->keylen, (size_t)200), r->key, why);
                continue;
            }
            fn(ctx, partition, ms);
            n++;
        }
    }
    cl_recs_free(&m);
    cl_stat_add(&c->st.restored, (uint64_t)n);
    cl_stat_add(&c->st.restore_ms, (vg_mono_ns() - t0) / 1000000u);
    if (rc < 0) {
        vg_log(VG_LOG_ERROR, "ingest", "changelog %s[%d]: read failed: state not restored", c->name,
               partition);
        return rc;
    }
    vg_log(VG_LOG_INFO, "ingest", "changelog %s[%d]: %d machine states restored (%lld records)",
           c->name, partition, n, (long long)(hi - lo));
    return n;
}

int ing_changelog_put(ing_changelog *c, ing_producer *prod, const struct cor_snap_out *o, void *d)
{
    void *val = o->val;
    size_t len = o->val != NULL ? o->len : 0;
    rd_kafka_resp_err_t e;
    enum ing_wait w = ING_WAIT_AGAIN;
    int empty = 0;

    for (bool waited = false;; waited = true) {
        e = rd_kafka_producev(ing_producer_handle(prod), RD_KAFKA_V_TOPIC(c->name),
                              RD_KAFKA_V_PARTITION(o->partition), RD_KAFKA_V_KEY(o->key, o->keylen),
                              RD_KAFKA_V_VALUE(val, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        if (!waited)
            cl_stat_add(&c->st.queue_full, 1);
        w = ing_producer_wait_room(prod, &empty, c->name);
        if (w != ING_WAIT_AGAIN)
            break; /* larger alone than the queue's bound, or a stop with no room */
    }
    if (e) {
        if (w != ING_WAIT_DEADLINE) /* that one the producer logged and counted */
            vg_log(VG_LOG_ERROR, "ingest", "changelog %s[%d]: produce of %zu bytes: %s", c->name,
                   o->partition, len, rd_kafka_err2str(e));
        ing_changelog_failed(c);
        return -VG_EKAFKA;
    }
    cl_stat_add(o->val != NULL ? &c->st.produced : &c->st.tombstones, 1);
    return 0;
}

int ing_changelog_mock_create(ing_mock *m, const char *group, int partitions)
{
    char name[256];

    snprintf(name, sizeof(name), "%s.changelog", group != NULL && group[0] ? group : "vigil");
    /* The mock ignores topic configs: it never compacts, and keeps every record (up to its
     * retention); restore keeps the newest per key, so the result is the same. */
    return rd_kafka_mock_topic_create(ing_mock_cluster(m), name, partitions, 1) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR
               ? 0
               : -VG_EKAFKA;
}

void ing_changelog_failed(ing_changelog *c)
{
    cl_stat_add(&c->st.failed, 1);
}

void ing_changelog_get_stats(const ing_changelog *c, struct ing_changelog_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (c == NULL)
        return;
    st->produced = __atomic_load_n(&c->st.produced, __ATOMIC_RELAXED);
    st->tombstones = __atomic_load_n(&c->st.tombstones, __ATOMIC_RELAXED);
    st->failed = __atomic_load_n(&c->st.failed, __ATOMIC_RELAXED);
    st->read = __atomic_load_n(&c->st.read, __ATOMIC_RELAXED);
    st->restored = __atomic_load_n(&c->st.restored, __ATOMIC_RELAXED);
    st->bad = __atomic_load_n(&c->st.bad, __ATOMIC_RELAXED);
    st->restore_ms = __atomic_load_n(&c->st.restore_ms, __ATOMIC_RELAXED);
    st->queue_full = __atomic_load_n(&c->st.queue_full, __ATOMIC_RELAXED);
    st->enabled = c->enabled;
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Finds both topics; creates the changelog when missing. 0, or -VG_EKAFKA (disabled). */
static int cl_setup_topic(ing_changelog *c, rd_kafka_t *rk, const char *topic, char *err,
                          size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    int32_t tparts = -1, cparts = -1;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, CL_TIMEOUT_MS);

    if (e) {
        snprintf(err, errlen, "metadata: %s", rd_kafka_err2str(e));
        return -VG_EKAFKA;
    }
    for (int i = 0; i < md->topic_cnt; i++) {
        if (md->topics[i].err)
            continue;
        if (strcmp(md->topics[i].topic, topic) == 0)
            tparts = md->topics[i].partition_cnt;
        else if (strcmp(md->topics[i].topic, c->name) == 0)
            cparts = md->topics[i].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    if (tparts <= 0) {
        snprintf(err, errlen, "telemetry topic %s not found", topic);
        return -VG_EKAFKA;
    }
    if (cparts < 0) {
        char *cid = rd_kafka_clusterid(rk, CL_TIMEOUT_MS);
        /* librdkafka's mock cluster names itself so; it has no CreateTopics and leaves the
         * request unanswered until it times out. */
        bool mock = cid != NULL && strncmp(cid, "mockCluster", 11) == 0;

        free(cid); /* rd_kafka_clusterid's string is the caller's, to free() */
        if (mock) {
            snprintf(err, errlen, "missing, and the embedded broker cannot create topics");
            return -VG_EKAFKA;
        }
        if (cl_create(c, rk, tparts, err, errlen) < 0)
            return -VG_EKAFKA;
    }
    if (cparts >= 0 && cparts != tparts) {
        snprintf(err, errlen, "%d partitions, telemetry topic %s has %d", cparts, topic, tparts);
        return -VG_EKAFKA;
    }
    c->partitions = tparts;
    return 0;
}

static int cl_create(ing_changelog *c, rd_kafka_t *rk, int32_t partitions, char *err, size_t errlen)
{
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(c->name, partitions, -1, err, errlen);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    int rc = -VG_EKAFKA;

    if (nt == NULL || q == NULL)
        goto out_free;
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (opts != NULL)
        rd_kafka_AdminOptions_set_request_timeout(opts, CL_TIMEOUT_MS, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    ev = rd_kafka_queue_poll(q, CL_TIMEOUT_MS + 1000);
    if (ev == NULL) {
        snprintf(err, errlen, "missing, and creating it timed out");
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "missing, and cannot be created: %s",
                 rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);

        if (n == 1 && rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            snprintf(err, errlen, "missing, and cannot be created: %s",
                     rd_kafka_topic_result_error_string(res[0]));
        else
            rc = 0;
    }

out_free:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    if (opts != NULL)
        rd_kafka_AdminOptions_destroy(opts);
    if (q != NULL)
        rd_kafka_queue_destroy(q);
    if (nt != NULL)
        rd_kafka_NewTopic_destroy(nt);
    if (rc == 0)
        vg_log(VG_LOG_INFO, "ingest", "changelog %s created (compacted, %d partitions)", c->name,
               partitions);
    return rc;
}

static void cl_stat_add(uint64_t *f, uint64_t n)
{
    __atomic_add_fetch(f, n, __ATOMIC_RELAXED);
}
