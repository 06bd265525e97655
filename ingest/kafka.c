/*
 * kafka.c - librdkafka set-up shared by vigil's clients: configuration from -X pairs, the
 * producer (alerts, dead letters, simulate) and the embedded mock cluster.
 *
 * THREAD SAFETY: ing_produce and ing_producer_flush may be called from any thread
 * (librdkafka's producer is thread safe). Delivery reports are served by whoever polls:
 * ing_produce and ing_producer_flush poll.
 */
#include "ingest.h"
#include "ingest_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

const char *const ing_default_topics[ING_DEFAULT_NTOPICS] = {"telemetry", "telemetry.dlq", "alerts",
                                                             "alerts.tenant", "incidents"};

struct ing_mock {
    rd_kafka_t *rk; /* hosts the cluster */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
};

struct ing_producer {
    rd_kafka_t *rk;
    uint64_t failed;      /* atomic: written by the delivery callback */
    uint64_t queue_full;  /* atomic: produces that found the queue full */
    bool shed;            /* fail instead of waiting when the queue is full (set before use) */
    uint64_t deadline_ns; /* atomic: 0, or when waits for room and flushes give up */
    uint64_t unsent;      /* atomic: produces given up at the deadline */
};

static void ing_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 errors, 4 warnings, 5-6 info, 7 debug */
    vg_log(level <= 3   ? VG_LOG_ERROR
           : level == 4 ? VG_LOG_WARN
           : level <= 6 ? VG_LOG_INFO
                        : VG_LOG_DEBUG,
           "kafka", "%s: %s", fac, buf);
}

/*
 * The properties librdkafka documents for consumers only ("C") and producers only ("P"),
 * read once from its own property table (rd_kafka_conf_properties_show: "name | C/P | ..."),
 * so that the list follows the library's version. Each line is "\n<name>\t" in its list.
 */
static char *ing_scope_c, *ing_scope_p;
static pthread_once_t ing_scope_once = PTHREAD_ONCE_INIT;

static void ing_scope_load(void)
{
    char *text = NULL, *line, *save = NULL;
    size_t len = 0, nc = 0, np = 0;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL)
        return;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    ing_scope_c = calloc(len + 2, 1);
    ing_scope_p = calloc(len + 2, 1);
    if (text == NULL || ing_scope_c == NULL || ing_scope_p == NULL) {
        free(ing_scope_c);
        free(ing_scope_p);
        ing_scope_c = ing_scope_p = NULL;
        free(text);
        return;
    }
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char name[128], scope[8];

        if (sscanf(line, "%127s | %7s |", name, scope) != 2 || scope[1] != '\0')
            continue;
        if (scope[0] == 'C')
            nc += (size_t)sprintf(ing_scope_c + nc, "\n%s\t", name);
        else if (scope[0] == 'P')
            np += (size_t)sprintf(ing_scope_p + np, "\n%s\t", name);
    }
    free(text);
}

/* true when key is documented for the other type of client only. */
static bool ing_other_scope(const char *key, rd_kafka_type_t type)
{
    const char *list;
    char pat[136];

    (void)pthread_once(&ing_scope_once, ing_scope_load);
    list = type == RD_KAFKA_PRODUCER ? ing_scope_c : ing_scope_p;
    if (list == NULL || snprintf(pat, sizeof(pat), "\n%s\t", key) >= (int)sizeof(pat))
        return false;
    return strstr(list, pat) != NULL;
}

rd_kafka_conf_t *ing_conf_new(const struct ing_kafka_cfg *cfg, const char *brokers,
                              rd_kafka_type_t type, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, ing_log_cb);
    if (brokers != NULL &&
        rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, errlen) != RD_KAFKA_CONF_OK)
        goto out_destroy;
    for (size_t i = 0; cfg != NULL && i < cfg->nprops; i++) {
        if (ing_other_scope(cfg->props[i].key, type))
            continue; /* for the other kind of client */
        if (rd_kafka_conf_set(conf, cfg->props[i].key, cfg->props[i].value, err, errlen) !=
            RD_KAFKA_CONF_OK)
            goto out_destroy;
    }
    return conf;

out_destroy:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- the embedded broker ---------------------------------------------------------- */

int ing_mock_start(int brokers, int partitions, const char *const *topics, size_t ntopics,
                   ing_mock **out, char *err, size_t errlen)
{
    ing_mock *m = vg_calloc(1, sizeof(*m));
    rd_kafka_conf_t *conf;

    if (m == NULL)
        return -VG_ENOMEM;
    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, ing_log_cb);
    /* The handle only hosts the cluster: its own "no bootstrap.servers" notice is noise. */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (m->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (m->mc == NULL) {
        snprintf(err, errlen, "cannot start the embedded Kafka broker");
        goto out_free;
    }
    for (size_t i = 0; i < ntopics; i++) {
        if (rd_kafka_mock_topic_create(m->mc, topics[i], partitions, 1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "cannot create topic %s", topics[i]);
            goto out_free;
        }
    }
    m->bootstraps = vg_strdup(rd_kafka_mock_cluster_bootstraps(m->mc));
    if (m->bootstraps == NULL)
        goto out_free;
    *out = m;
    return 0;

out_free:
    ing_mock_stop(m);
    return -VG_EKAFKA;
}

const char *ing_mock_bootstraps(const ing_mock *m)
{
    return m->bootstraps;
}

void *ing_mock_cluster(ing_mock *m)
{
    return m->mc;
}

void ing_mock_stop(ing_mock *m)
{
    if (m == NULL)
        return;
    if (m->mc)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    vg_free(m->bootstraps);
    vg_free(m);
}

/* ---- the producer ----------------------------------------------------------------- */

static void ing_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    ing_producer *p = opaque;

    (void)rk;
    if (msg->err) {
        __atomic_add_fetch(&p->failed, 1, __ATOMIC_RELAXED);
        /* Purged at destroy: counted and said there, once. */
        if (msg->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
            msg->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
            vg_log(VG_LOG_ERROR, "kafka", "delivery to %s failed: %s",
                   rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
    }
    if (msg->_private != NULL)
        ing_delivered(msg->_private, msg->err == 0);
}

int ing_producer_new(const struct ing_kafka_cfg *cfg, ing_producer **out, char *err, size_t errlen)
{
    ing_producer *p = vg_calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf;

    if (p == NULL)
        return -VG_ENOMEM;
    conf = ing_conf_new(cfg, cfg->brokers, RD_KAFKA_PRODUCER, err, errlen);
    if (conf == NULL)
        goto out_free;
    /* Idempotence keeps retried produce requests from duplicating alerts at the broker. */
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set(conf, "linger.ms", "5", NULL, 0);
    rd_kafka_conf_set(conf, "compression.codec", "zstd", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, ing_dr_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    *out = p;
    return 0;

out_free:
    vg_free(p);
    return -VG_EKAFKA;
}

int ing_produce_opaque(ing_producer *p, const char *topic, const void *key, size_t keylen,
                       const void *val, size_t vallen, const struct ing_kv *headers,
                       size_t nheaders, struct ing_delivery *opaque)
{
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t e;
    bool waited = false;
    int empty = 0;
    enum ing_wait w;

    for (;;) {
        if (nheaders) {
            hdrs = rd_kafka_headers_new(nheaders);
            for (size_t i = 0; i < nheaders; i++)
                rd_kafka_header_add(hdrs, headers[i].key, -1, headers[i].value, -1);
        }
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, keylen),
                              RD_KAFKA_V_VALUE((void *)val, vallen),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        hdrs = NULL;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            vg_log(VG_LOG_ERROR, "kafka", "produce to %s: %s", topic, rd_kafka_err2str(e));
            return -VG_EKAFKA;
        }
        if (!waited)
            __atomic_fetch_add(&p->queue_full, 1, __ATOMIC_RELAXED);
        waited = true;
        if (p->shed)
            return -VG_EFULL;
        w = ing_producer_wait_room(p, &empty, topic); /* backpressure: wait for deliveries */
        if (w == ING_WAIT_TOO_LARGE)
            vg_log(VG_LOG_ERROR, "kafka",
                   "produce to %s: a message of %zu bytes does not fit the producer's queue "
                   "(queue.buffering.max.kbytes)",
                   topic, vallen);
        if (w != ING_WAIT_AGAIN)
            return -VG_EKAFKA;
    }
    rd_kafka_poll(p->rk, 0);
    return 0;
}

int ing_produce(ing_producer *p, const char *topic, const void *key, size_t keylen, const void *val,
                size_t vallen, const struct ing_kv *headers, size_t nheaders)
{
    return ing_produce_opaque(p, topic, key, keylen, val, vallen, headers, nheaders, NULL);
}

int ing_producer_flush(ing_producer *p, int timeout_ms)
{
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

void ing_producer_set_deadline(ing_producer *p, uint64_t mono_ns)
{
    __atomic_store_n(&p->deadline_ns, mono_ns, __ATOMIC_RELAXED);
}

int ing_producer_flush_until(ing_producer *p, int timeout_ms)
{
    uint64_t dl = __atomic_load_n(&p->deadline_ns, __ATOMIC_RELAXED), now = vg_mono_ns();

    if (dl != 0) {
        int64_t left_ms = dl > now ? (int64_t)((dl - now) / 1000000u) : 0;

        if (left_ms < 1000)
            left_ms = 1000;
        if (left_ms < timeout_ms)
            timeout_ms = (int)left_ms;
    }
    return ing_producer_flush(p, timeout_ms);
}

uint64_t ing_producer_failed(const ing_producer *p)
{
    return __atomic_load_n(&p->failed, __ATOMIC_RELAXED);
}

void ing_producer_shed(ing_producer *p)
{
    p->shed = true;
}

enum ing_wait ing_producer_wait_room(ing_producer *p, int *empty, const char *what)
{
    uint64_t dl = __atomic_load_n(&p->deadline_ns, __ATOMIC_RELAXED);

    *empty = rd_kafka_outq_len(p->rk) == 0 ? *empty + 1 : 0;
    if (*empty == 3)
        return ING_WAIT_TOO_LARGE;
    if (dl != 0 && vg_mono_ns() >= dl) {
        __atomic_fetch_add(&p->failed, 1, __ATOMIC_RELAXED);
        if (__atomic_fetch_add(&p->unsent, 1, __ATOMIC_RELAXED) == 0)
            vg_log(VG_LOG_ERROR, "kafka",
                   "produce to %s: the queue is still full at shutdown (the broker takes "
                   "nothing): not sent (later ones that find no room are counted at the end)",
                   what);
        return ING_WAIT_DEADLINE;
    }
    rd_kafka_poll(p->rk, 10);
    return ING_WAIT_AGAIN;
}

uint64_t ing_producer_queue_full(const ing_producer *p)
{
    return __atomic_load_n(&p->queue_full, __ATOMIC_RELAXED);
}

void *ing_producer_handle(ing_producer *p)
{
    return p->rk;
}

void ing_producer_destroy(ing_producer *p)
{
    if (p == NULL)
        return;
    if (p->unsent > 0)
        vg_log(VG_LOG_ERROR, "kafka", "%llu messages not sent at shutdown: no room in the queue",
               (unsigned long long)p->unsent);
    if (ing_producer_flush_until(p, 10000) > 0) {
        vg_log(VG_LOG_ERROR, "kafka", "%d messages not delivered at shutdown",
               rd_kafka_outq_len(p->rk));
        /* Their delivery reports, as failures, before the handle goes: the callers free what
         * the reports carry (an alert stays in the outbox). */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000);
    }
    rd_kafka_destroy(p->rk);
    vg_free(p);
}
