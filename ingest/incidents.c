/*
 * incidents.c - the incident stage: a consumer of the tenant-keyed alert topic that groups
 * each tenant's alerts into incidents (correlate/incident.h), stores them and emits them.
 *
 * THREADS: one thread, vg-incidents, owns the stage's consumer, its cor_incidents state and
 * its write batches. Statistics are relaxed atomics.
 *
 * Scale-out: the writer of every vigil instance produces each alert, new or updated, to
 * "alerts.tenant" keyed by tenant, so one tenant's alerts meet in one partition, and so in
 * one incident stage, however many instances run (the Kafka Streams repartition idea).
 * State: on each assignment the stage re-reads its partitions from one prevalence window
 * back (offsets for times; 7 days), so its state is rebuilt from the topic itself after a
 * restart or a rebalance; it commits no offsets. Of what it re-reads, sightings count for
 * prevalence and alerts only within one link window (24 h) of now, by record time: the
 * sightings are daily, and a re-read of one link window would forget every entity last
 * seen more than a day back. A broker that cannot look offsets up by time (librdkafka's
 * mock cluster, vigil's embedded broker, answers -1 to every lookup) is read from the
 * start instead, with the same filter. Incident ids are deterministic, and an incident whose
 * content did not change since it was stored is not emitted again.
 *
 * Tenant machine counts and prevalence. Whether an entity is common (seen on more than
 * 20 % of a tenant's machines, and so not linking) needs how many machines saw it and the
 * tenant's real machine count; from alerts alone, the incident engine would count only
 * the machines that raised alerts (then the account an attacker used on all three
 * machines of a quiet tenant's attack is "common", 3 of 3, and links nothing, while
 * PowerShell on two alerting machines of a thousand is "rare" and links them). So the
 * shards of every instance report what their machines' telemetry shows (Sightings records
 * on this same topic, header vigil-type=sightings, correlate/sightings.h): each machine
 * at least once a day, with the binaries, addresses, domains and accounts it showed that
 * day. They reach this stage whichever instance consumed the machine, so the counts hold
 * across instances. As a floor before the first sightings arrive (and for data stored by
 * a vigil without them), the stage also counts the machines in the local RocksDB
 * (sto_scan_machines) at start and then once a minute, on its own thread; with several
 * instances that count is partial, which the sightings make up for (the larger count
 * wins). The scan decodes every machine record between two polls, so its pause grows
 * with the fleet (not measured at a million machines).
 */
#include "ingest.h"
#include "ingest_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "incident.h"
#include "storage.h"

struct ing_incidents {
    struct ing_incidents_cfg cfg;
    char *topic, *out_topic, *group;
    rd_kafka_t *rk;
    ing_producer *prod;
    cor_incidents *ci;
    sto_wbatch *wb;
    vg_arena *arena;
    struct vg_u64map nmach; /* tenant hash -> machine count last set + 1 (stage thread) */
    pthread_t thread;
    bool started;
    int stop; /* atomic */
    struct ing_incidents_stats st;
};

static void *ing_inc_main(void *arg);
static void ing_inc_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, void *opaque);
static void ing_inc_flush(ing_incidents *s);
static void ing_inc_count_machines(ing_incidents *s);
static int64_t ing_inc_window_us(const ing_incidents *s, bool prevalence);
static bool ing_inc_too_old(const rd_kafka_message_t *m, int64_t max_age_ms);

#define ING_INC_COUNT_NS    (UINT64_C(60) * 1000000000u) /* machine counts refreshed this often */
#define ING_INC_TENANT_SEED UINT64_C(0x7e4a47c0a1e5eed1)

int ing_incidents_new(const struct ing_incidents_cfg *cfg, ing_incidents **out, char *err,
                      size_t errlen)
{
    ing_incidents *s = vg_calloc(1, sizeof(*s));
    struct cor_incident_cfg icfg = {.window_us = cfg->window_us,
                                    .prevalence_window_us = cfg->prevalence_window_us};
    rd_kafka_conf_t *conf;
    char group[256];

    if (s == NULL)
        return -VG_ENOMEM;
    s->cfg = *cfg;
    snprintf(group, sizeof(group), "%s.incidents", cfg->kafka.group ? cfg->kafka.group : "vigil");
    s->group = vg_strdup(group);
    s->topic = vg_strdup(cfg->topic ? cfg->topic : "alerts.tenant");
    s->out_topic = vg_strdup(cfg->out_topic ? cfg->out_topic : "incidents");
    s->ci = cor_incidents_new(&icfg);
    s->wb = sto_wbatch_new();
    s->arena = vg_arena_new(1 << 16);
    if (s->group == NULL || s->topic == NULL || s->out_topic == NULL || s->ci == NULL ||
        s->wb == NULL || s->arena == NULL || vg_u64map_init(&s->nmach, 64) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    if (ing_producer_new(&s->cfg.kafka, &s->prod, err, errlen) < 0)
        goto out_free;
    conf = ing_conf_new(&s->cfg.kafka, cfg->kafka.brokers, RD_KAFKA_CONSUMER, err, errlen);
    if (conf == NULL)
        goto out_free;
    if (rd_kafka_conf_set(conf, "group.id", s->group, err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errlen) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    if (cfg->session_timeout_ms > 0) {
        char st[16];

        snprintf(st, sizeof(st), "%d", cfg->session_timeout_ms);
        rd_kafka_conf_set(conf, "session.timeout.ms", st, NULL, 0);
    }
    rd_kafka_conf_set_rebalance_cb(conf, ing_inc_rebalance);
    rd_kafka_conf_set_opaque(conf, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (s->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    rd_kafka_poll_set_consumer(s->rk);
    *out = s;
    return 0;

out_free:
    ing_incidents_destroy(s);
    return -VG_EKAFKA;
}

int ing_incidents_start(ing_incidents *s, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t e;

    rd_kafka_topic_partition_list_add(t, s->topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(s->rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (e) {
        snprintf(err, errlen, "subscribe to %s: %s", s->topic, rd_kafka_err2str(e));
        return -VG_EKAFKA;
    }
    if (pthread_create(&s->thread, NULL, ing_inc_main, s) != 0) {
        snprintf(err, errlen, "cannot start the incident thread");
        return -VG_ENOMEM;
    }
    pthread_setname_np(s->thread, "vg-incidents");
    s->started = true;
    return 0;
}

void ing_incidents_stop(ing_incidents *s)
{
    if (s == NULL || !s->started)
        return;
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void ing_incidents_destroy(ing_incidents *s)
{
    if (s == NULL)
        return;
    ing_incidents_stop(s);
    if (s->rk != NULL)
        rd_kafka_destroy(s->rk);
    ing_producer_destroy(s->prod);
    cor_incidents_free(s->ci);
    sto_wbatch_destroy(s->wb);
    vg_arena_destroy(s->arena);
    if (s->nmach.keys != NULL)
        vg_u64map_free(&s->nmach);
    vg_free(s->group);
    vg_free(s->topic);
    vg_free(s->out_topic);
    vg_free(s);
}

void ing_incidents_stats(ing_incidents *s, struct ing_incidents_stats *st)
{
    st->alerts = __atomic_load_n(&s->st.alerts, __ATOMIC_RELAXED);
    st->bad = __atomic_load_n(&s->st.bad, __ATOMIC_RELAXED);
    st->sightings = __atomic_load_n(&s->st.sightings, __ATOMIC_RELAXED);
    st->emitted = __atomic_load_n(&s->st.emitted, __ATOMIC_RELAXED);
    st->retired = __atomic_load_n(&s->st.retired, __ATOMIC_RELAXED);
    st->old = __atomic_load_n(&s->st.old, __ATOMIC_RELAXED);
}

/* ---- the thread ------------------------------------------------------------------- */

/* Whether a message of the topic is a Sightings record (header vigil-type=sightings)
 * rather than an alert. */
static bool ing_is_sightings(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;

    return rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           rd_kafka_header_get_last(h, ING_HDR_TYPE, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
           n == strlen(ING_TYPE_SIGHTINGS) && memcmp(v, ING_TYPE_SIGHTINGS, n) == 0;
}

/* Telemetry sightings: prevalence and the tenant's machines (correlate/sightings.h). */
static void ing_inc_sightings(ing_incidents *s, const rd_kafka_message_t *m)
{
    Vigil__Sightings *sg = m->payload ? vigil__sightings__unpack(NULL, m->len, m->payload) : NULL;

    if (sg == NULL || sg->tenant_id[0] == '\0' || sg->machine_id[0] == '\0') {
        __atomic_add_fetch(&s->st.bad, 1, __ATOMIC_RELAXED);
        vg_log(VG_LOG_WARN, "incidents", "%s[%d]@%lld: a sightings record that does not decode",
               s->topic, m->partition, (long long)m->offset);
    } else {
        if (cor_incidents_observe_all(s->ci, sg) < 0)
            __atomic_add_fetch(&s->st.bad, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->st.sightings, sg->n_entities, __ATOMIC_RELAXED);
    }
    if (sg != NULL)
        vigil__sightings__free_unpacked(sg, NULL);
}

static void *ing_inc_main(void *arg)
{
    ing_incidents *s = arg;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(s->rk);
    rd_kafka_message_t *msgs[256];
    uint64_t last_flush = vg_mono_ns(), last_count, started = vg_mono_ns();
    int64_t link_ms = ing_inc_window_us(s, false) / 1000,
            prev_ms = ing_inc_window_us(s, true) / 1000;

    ing_inc_count_machines(s);
    last_count = vg_mono_ns();
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 50, msgs, 256);

        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            Vigil__Alert *a;
            char id[COR_INCIDENT_ID_MAX];
            bool changed, sightings = m->err == 0 && ing_is_sightings(m);

            if (m->err == 0 && ing_inc_too_old(m, sightings ? prev_ms : link_ms)) {
                __atomic_add_fetch(&s->st.old, 1, __ATOMIC_RELAXED);
            } else if (sightings) {
                ing_inc_sightings(s, m);
            } else if (m->err == 0 && m->payload != NULL &&
                       (a = vigil__alert__unpack(NULL, m->len, m->payload)) != NULL) {
                if (cor_incidents_add(s->ci, a, id, &changed) == 0)
                    __atomic_add_fetch(&s->st.alerts, 1, __ATOMIC_RELAXED);
                else
                    __atomic_add_fetch(&s->st.bad, 1, __ATOMIC_RELAXED);
                vigil__alert__free_unpacked(a, NULL);
            } else if (m->err == 0) {
                __atomic_add_fetch(&s->st.bad, 1, __ATOMIC_RELAXED);
                vg_log(VG_LOG_WARN, "incidents", "%s[%d]@%lld is not an alert", s->topic,
                       m->partition, (long long)m->offset);
            }
            rd_kafka_message_destroy(m);
        }
        /* Every 10 s while the stage is young (a fresh deployment fills up fast), then
         * once a minute: the scan reads every machine record. */
        if (vg_mono_ns() - last_count >= (vg_mono_ns() - started < 2 * ING_INC_COUNT_NS
                                              ? ING_INC_COUNT_NS / 6
                                              : ING_INC_COUNT_NS)) {
            ing_inc_count_machines(s);
            last_count = vg_mono_ns();
        }
        if (vg_mono_ns() - last_flush >= 200000000u) {
            ing_inc_flush(s);
            last_flush = vg_mono_ns();
        }
    }
    ing_inc_flush(s);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(s->rk);
    return NULL;
}

/* Stores and emits what changed since the last flush. */
static void ing_inc_flush(ing_incidents *s)
{
    struct cor_incident_change ch;
    char err[256];
    bool any = false;

    while (cor_incidents_next_change(s->ci, &ch)) {
        Vigil__Incident *inc = NULL, *old = NULL;

        vg_arena_reset(s->arena);
        if (ch.kind == COR_INCIDENT_RETIRED) {
            struct ing_kv h[] = {{"retired", ch.id}};

            sto_del_incident(s->wb, ch.id);
            ing_produce(s->prod, s->out_topic, ch.tenant, strlen(ch.tenant), NULL, 0, h, 1);
            __atomic_add_fetch(&s->st.retired, 1, __ATOMIC_RELAXED);
            any = true;
            continue;
        }
        if (ch.kind != COR_INCIDENT_UPDATED ||
            cor_incidents_get(s->ci, ch.id, s->arena, &inc) < 0 || inc == NULL)
            continue;
        /* Unchanged since stored (a rebuild after a restart): nothing to say. */
        if (s->cfg.db != NULL && sto_get_incident(s->cfg.db, ch.id, &old) == 0) {
            size_t a = vigil__incident__get_packed_size(inc);
            size_t b = vigil__incident__get_packed_size(old);
            bool same = false;

            if (a == b) {
                uint8_t *pa = vg_arena_alloc(s->arena, a + b + 2);

                if (pa != NULL) {
                    vigil__incident__pack(inc, pa);
                    vigil__incident__pack(old, pa + a + 1);
                    same = memcmp(pa, pa + a + 1, a) == 0;
                }
            }
            vigil__incident__free_unpacked(old, NULL);
            if (same)
                continue;
        }
        {
            size_t len = vigil__incident__get_packed_size(inc);
            uint8_t *buf = vg_arena_alloc(s->arena, len + 1);

            if (buf != NULL) {
                vigil__incident__pack(inc, buf);
                ing_produce(s->prod, s->out_topic, inc->tenant_id, strlen(inc->tenant_id), buf, len,
                            NULL, 0);
            }
        }
        if (s->cfg.db != NULL)
            sto_put_incident(s->wb, inc);
        if (s->cfg.incidents_jsonl != NULL) {
            char *js = cor_incident_to_json(inc);

            if (js != NULL) {
                fprintf(s->cfg.incidents_jsonl, "%s\n", js);
                free(js);
            }
        }
        if (s->cfg.on_incident != NULL)
            s->cfg.on_incident(s->cfg.on_incident_ctx, &inc->base);
        __atomic_add_fetch(&s->st.emitted, 1, __ATOMIC_RELAXED);
        any = true;
    }
    if (any && s->cfg.db != NULL && sto_write(s->cfg.db, s->wb, err, sizeof(err)) < 0)
        vg_log(VG_LOG_ERROR, "incidents", "storing incidents: %s", err);
    sto_wbatch_clear(s->wb);
    if (any && s->cfg.incidents_jsonl != NULL)
        fflush(s->cfg.incidents_jsonl);
    cor_incidents_expire(s->ci, 0);
}

/* The link window (prevalence false) or the prevalence window, with their defaults. */
static int64_t ing_inc_window_us(const ing_incidents *s, bool prevalence)
{
    if (prevalence)
        return s->cfg.prevalence_window_us > 0 ? s->cfg.prevalence_window_us : 7 * VG_US_PER_DAY;
    return s->cfg.window_us > 0 ? s->cfg.window_us : VG_US_PER_DAY;
}

/* Whether a record, by its Kafka timestamp, is older than max_age_ms: what an assignment
 * re-reads from before the window that still matters. A record without a timestamp is
 * kept. */
static bool ing_inc_too_old(const rd_kafka_message_t *m, int64_t max_age_ms)
{
    int64_t ts = rd_kafka_message_timestamp(m, NULL);

    return ts >= 0 && ts < vg_now_us() / 1000 - max_age_ms;
}

/* Each assignment re-reads one prevalence window back, so the stage's state is rebuilt
 * from the topic, whoever owned the partition before. */
static void ing_inc_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ing_incidents *s = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        int64_t link = ing_inc_window_us(s, false), prev = ing_inc_window_us(s, true);
        int64_t since_ms = (vg_now_us() - (link > prev ? link : prev)) / 1000;

        for (int i = 0; i < parts->cnt; i++)
            parts->elems[i].offset = since_ms;
        /* -1 for a partition is "no record that recent" from a real broker, but the
         * embedded one answers -1 to every time lookup: both are read from the start, and
         * what is older than its window is skipped as it comes (ing_inc_too_old). On a
         * real broker that is one pass over what retention keeps, only when nothing is
         * recent. */
        if (rd_kafka_offsets_for_times(rk, parts, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < parts->cnt; i++)
                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        }
        for (int i = 0; i < parts->cnt; i++)
            if (parts->elems[i].offset < 0)
                parts->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
    } else {
        ing_inc_flush(s);
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- tenant machine counts -------------------------------------------------------- */

struct ing_inc_tcount {
    char *tenant;
    uint64_t key;
    uint32_t n;
};

struct ing_inc_scan {
    struct vg_u64map idx; /* tenant hash -> index in v + 1 */
    struct ing_inc_tcount *v;
    size_t n, cap;
    bool oom;
};

static uint64_t ing_inc_tenant_key(const char *tenant)
{
    return vg_hash64(tenant, strlen(tenant), ING_INC_TENANT_SEED) | 1;
}

/* Counts one machine record under its tenant. */
static bool ing_inc_scan_machine(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    struct ing_inc_scan *sc = ctx;
    uint64_t key;
    uintptr_t i;

    (void)mkey;
    if (m->tenant_id == NULL || m->tenant_id[0] == '\0')
        return true;
    key = ing_inc_tenant_key(m->tenant_id);
    i = (uintptr_t)vg_u64map_get(&sc->idx, key);
    if (i != 0) {
        /* A 64-bit collision of two tenant ids would merge their counts: never seen. */
        if (!VG_NEVER(strcmp(sc->v[i - 1].tenant, m->tenant_id) != 0))
            sc->v[i - 1].n++;
        return true;
    }
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        struct ing_inc_tcount *v = vg_realloc(sc->v, cap * sizeof(*v));

        if (v == NULL) {
            sc->oom = true;
            return false;
        }
        sc->v = v;
        sc->cap = cap;
    }
    sc->v[sc->n] = (struct ing_inc_tcount){vg_strdup(m->tenant_id), key, 1};
    if (sc->v[sc->n].tenant == NULL ||
        vg_u64map_put(&sc->idx, key, (void *)(uintptr_t)(sc->n + 1)) < 0) {
        vg_free(sc->v[sc->n].tenant);
        sc->oom = true;
        return false;
    }
    sc->n++;
    return true;
}

/*
 * Sets each tenant's machine count from the local RocksDB (see the file header for what
 * several instances mean). Only counts that changed are set: each set rechecks the
 * tenant's candidate common entities. On a failed or partial scan nothing is set, so a
 * count never drops because of an error.
 * @locality the stage's thread
 */
static void ing_inc_count_machines(ing_incidents *s)
{
    struct ing_inc_scan sc = {0};
    uint64_t t0 = vg_mono_ns();
    size_t changed = 0;
    int rc;

    if (s->cfg.db == NULL)
        return;
    if (vg_u64map_init(&sc.idx, 64) < 0)
        return;
    rc = sto_scan_machines(s->cfg.db, ing_inc_scan_machine, &sc);
    for (size_t i = 0; rc == 0 && !sc.oom && i < sc.n; i++) {
        uintptr_t prev = (uintptr_t)vg_u64map_get(&s->nmach, sc.v[i].key);

        if (prev == (uintptr_t)sc.v[i].n + 1)
            continue;
        if (cor_incidents_tenant_machines(s->ci, sc.v[i].tenant, sc.v[i].n) == 0 &&
            vg_u64map_put(&s->nmach, sc.v[i].key, (void *)((uintptr_t)sc.v[i].n + 1)) == 0)
            changed++;
    }
    if (rc < 0 || sc.oom)
        vg_log(VG_LOG_WARN, "incidents", "counting machines per tenant failed (%s)",
               sc.oom ? "out of memory" : "storage error");
    vg_log(VG_LOG_DEBUG, "incidents", "machines of %zu tenants counted in %.1f ms, %zu changed",
           sc.n, (double)(vg_mono_ns() - t0) / 1e6, changed);
    for (size_t i = 0; i < sc.n; i++)
        vg_free(sc.v[i].tenant);
    vg_free(sc.v);
    vg_u64map_free(&sc.idx);
}
