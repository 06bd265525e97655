/*
 * pipeline.c - vigil run: the consumer thread, routing to shards, backpressure, barriers,
 * and the writer thread that makes everything durable before offsets move.
 *
 * THREADS (see ingest.h):
 *   vg-consume  ing_consume_main: the only caller of the consumer handle's poll/assign/
 *               pause/resume, and the only producer of every shard's inbound ring.
 *   vg-writer   ing_writer_main: the only consumer of every shard's outbound ring, the only
 *               writer of RocksDB, the one that produces alerts and changelog records, polls
 *               the producers and commits.
 *   vg-shard-N  correlate.h; they call ing_release / ing_reject (below) on their own thread.
 * Dead letters are produced on the consumer thread (undecodable) or a shard's (rejected),
 * and ing_produce polls the producer, so delivery reports (the outbox's, the checkpoint
 * epochs') run on any of these threads, mostly the writer.
 * Shared between threads: the statistics (relaxed atomics), written_barrier (mutex + cond:
 * the consumer waits for a barrier to be written at revocation and shutdown), the
 * checkpoint epochs' in-flight counts and the delivered outbox ids (ep_lock), and the
 * commit offsets handed from writer to consumer handle (rd_kafka_commit is thread safe).
 *
 * Durability: a barrier leaves the consumer every barrier_ms carrying, per partition, the
 * highest offset routed before it. Each shard answers with what it sealed since the last
 * barrier and the lowest offset still in an open block. When the writer has the answer of
 * every shard, the offset safe to resume from is, per partition, min(dispatched + 1, lowest
 * open); it is written in the same RocksDB batch as the blocks, and only then committed to
 * Kafka. On start, offsets come from RocksDB, so a crash resumes where durable state ends;
 * events re-delivered from there are dropped by sequence number in the shards.
 *
 * The changelog (changelog.h): every commit_ms the consumer makes a barrier a checkpoint.
 * Each shard answers it with snapshots of the machines whose correlator state changed (a
 * seal-all barrier is always one); the writer produces them, after the round is durable, to
 * "<group>.changelog" (partition = the machine's telemetry partition), and commits to Kafka
 * only the offsets of a checkpoint round whose snapshots were all delivered. So the newest
 * snapshot of every machine is at least as new as the committed offset.
 *
 * Commits: what the commit producer carries (changelog records, alerts, their alerts.tenant
 * copies, dead letters) must be at the broker before the offsets that cover it. Every
 * message counts in the checkpoint epoch open when it is produced (struct ing_epoch), until
 * its delivery report; a checkpoint round closes its epoch after producing everything, and
 * its offsets are committed, asynchronously, at the first round after its epoch and every
 * earlier one drained. So commits follow the commit interval under a steady stream of
 * alerts (the producer never idle), delayed only by the broker's acknowledgements, and the
 * writer never waits for them but at a seal-all barrier. A lost changelog record stops
 * commits until a full snapshot is delivered; a lost alert stays in the outbox (sent again
 * at the next start) and, like a lost dead letter, does not hold commits. When a partition is
 * assigned, the rebalance callback reads its changelog partition to the high watermark and
 * pushes each snapshot on its shard's ring before the partition is assigned at all, so the
 * shard restores a machine's state before it sees any of its telemetry.
 */
#include "ingest.h"
#include "ingest_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "changelog.h"
#include "correlate.h"
#include "state.h"
#include "storage.h"

#define ING_MAX_PARTS  256
#define ING_POLL_BATCH 256
/* Checkpoint epochs tracked at once: more rounds' worth of undelivered messages than this
 * and new checkpoints share the newest epoch (their commits then wait for one another). */
#define ING_EPOCHS 16
/* The bound of the producer of alerts, dead letters and changelog records, in KiB (256 MiB;
 * -X queue.buffering.max.kbytes overrides it). */
#define ING_PRODUCER_QUEUE_KB "262144"
/* A stop waits this long for room in a full producer queue (a broker that takes nothing),
 * then gives up on what is left: alerts stay in the outbox for the next start, changelog
 * records count as lost (no commit without a full snapshot). */
#define ING_STOP_GRACE_NS (10 * 1000000000ull)

/* A consumed message on its way through a shard. */
struct ing_msg {
    struct cor_in in; /* first: shards hand back a cor_in pointer */
    rd_kafka_message_t *rkm;
    vg_arena *arena;
    struct ing_msg *next; /* in a partition's waiting queue */
    uint32_t shard;       /* routed to */
    size_t cost;          /* counted in that shard's in_bytes until released */
};

struct ing_part {
    int32_t partition;
    bool assigned;
    bool paused;
    int64_t dispatched; /* highest offset routed or dead-lettered; -1: none yet */
    int32_t blocked;    /* the shard over its byte budget that refused the message at the
                           head of the waiting queue (not decoded again until it has room);
                           -1: none */
    int64_t committed;  /* last offset stored as safe (next to consume) */
    struct ing_msg *wait_head, *wait_tail; /* consumed, not yet routed (ring full) */
    size_t waiting;
};

/* An alert produced to Kafka whose delivery empties its outbox entry. */
struct ing_outbox_item {
    struct ing_delivery d;
    ing_pipeline *p;
    uint32_t slot; /* its checkpoint epoch's (struct ing_epoch) */
    char id[40];
};

/*
 * A checkpoint epoch: every message the commit producer carries is produced in the epoch
 * open at the time, and the writer closes an epoch at the end of each checkpoint round
 * (after the round's changelog records and alerts). A checkpoint's offsets may be committed
 * once its epoch and every earlier one have nothing in flight. Each message's delivery
 * report opaque names its epoch: one of the two deliveries here, or an outbox item's slot.
 * Slot e % ING_EPOCHS serves epoch e; it is reused only once its previous epoch drained.
 */
struct ing_epoch {
    struct ing_delivery rec;  /* alerts.tenant copies and dead letters */
    struct ing_delivery snap; /* changelog records: a failure also asks for a full snapshot */
    ing_pipeline *p;
    uint64_t inflight; /* produced, not reported yet; under ep_lock */
};

/* A checkpoint round's offsets, waiting for its epoch to drain (writer thread). */
struct ing_ckpt {
    uint64_t epoch;
    uint64_t at_ns;             /* when it was first pending */
    int64_t off[ING_MAX_PARTS]; /* next to consume; -1: none */
};

struct ing_pipeline {
    struct ing_pipeline_cfg cfg;
    char *brokers, *group, *topic, *dlq_topic, *alerts_topic, *alerts_tenant_topic;
    char *offsets_ns;   /* "<cluster id>/<topic>": offsets of another cluster (a new
                           embedded broker, say) never apply */
    rd_kafka_t *rk;     /* the consumer */
    ing_producer *prod; /* alerts, dead letters, changelog records: commits wait for them */
    /* Sightings (fire and forget) on a producer of their own with a bounded queue: they are
     * shed, not queued, when the broker falls behind, and commits never wait for them. */
    ing_producer *side_prod;
    struct ing_kv *side_props; /* the producers' settings: a queue bound, then the -X ones */
    cor_shard **shards;
    uint32_t nshards;
    /* Per shard (atomic): bytes of the messages routed to it and not yet released, the
     * message and its decoded form. A shard's ring is bounded by count; this bounds it by
     * bytes, as a shard that falls behind must not hold thousands of large messages. */
    uint64_t *in_bytes;

    pthread_t consume_thread, writer_thread;
    bool started;
    int stop_consume; /* atomic */
    int stop_writer;  /* atomic */

    /* consumer thread only */
    struct ing_part parts[ING_MAX_PARTS];
    struct vg_u64map owners; /* hash(machine id) -> hash(tenant) | 1: who owns a machine */
    uint64_t next_barrier;
    uint64_t last_barrier_ns;

    /* writer thread only */
    sto_wbatch *wb;
    uint64_t next_retention_ns;    /* when the writer next drops expired timeline days */
    int64_t stored[ING_MAX_PARTS]; /* next offset stored per partition; -1: none */
    int owned[ING_MAX_PARTS];      /* atomic: set by the consumer thread while a partition is
                                      assigned; the writer commits owned partitions only */

    pthread_mutex_t lock; /* guards written_barrier */
    pthread_cond_t cond;
    uint64_t written_barrier; /* highest barrier whose batch is durable */

    /* the changelog */
    ing_changelog *cl;       /* always set; may be disabled */
    uint64_t last_ckpt_ns;   /* consumer thread: when the last checkpoint barrier left */
    int need_full;           /* atomic: a record was lost; next checkpoint snapshots all */
    bool full_wait;          /* writer: no commit until a full checkpoint was produced */
    uint64_t cl_failed_seen; /* writer: changelog delivery failures already acted on */

    /* Checkpoints and their deliveries. Delivery reports run on whichever thread polls the
     * producer: the writer, and the consumer and shard threads when they produce a dead
     * letter (ing_produce polls). */
    pthread_mutex_t ep_lock; /* guards ep[].inflight, ep_cur and outbox_done */
    struct ing_epoch ep[ING_EPOCHS];
    uint64_t ep_cur;     /* the open epoch: what is produced now belongs to it */
    uint64_t ep_drained; /* writer: every epoch below it has nothing in flight (<= ep_cur) */
    char **outbox_done;  /* alert ids delivered, to delete from the outbox */
    size_t noutbox_done, capoutbox_done;
    struct ing_ckpt pend[ING_EPOCHS]; /* writer: checkpoints not committed, oldest first */
    size_t npend;
    int64_t ckpt[ING_MAX_PARTS]; /* writer: the offsets ing_commit commits; -1: none */
    uint64_t last_wait_log_ns;   /* writer: when commits waiting on deliveries were last logged */

    int64_t lag[ING_MAX_PARTS]; /* per partition, -1 unassigned (relaxed atomics) */
    int brokers_down;           /* atomic: set by the error callback on all-brokers-down */
    uint64_t last_lag_ns;       /* consumer thread only */

    struct ing_stats st; /* relaxed atomics */
};

static void *ing_consume_main(void *arg);
static void *ing_writer_main(void *arg);
static void ing_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts, void *opaque);
static void ing_dispatch(ing_pipeline *p, rd_kafka_message_t *rkm);
static bool ing_route(ing_pipeline *p, struct ing_part *pt, rd_kafka_message_t *rkm);
static void ing_drain_waiting(ing_pipeline *p, bool block);
static uint64_t ing_send_barrier(ing_pipeline *p, bool seal_all);
static void ing_wait_written(ing_pipeline *p, uint64_t id);
static void ing_release(void *ctx, struct cor_in *in);
static void ing_reject(void *ctx, struct cor_in *in, const char *reason);
static void ing_dead_letter(ing_pipeline *p, const rd_kafka_message_t *rkm, const char *reason);
static void ing_stat_add(uint64_t *f, uint64_t n);
static bool ing_owner_ok(ing_pipeline *p, const Vigil__TelemetryBatch *b);
static void ing_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
static int ing_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque);
static void ing_update_lag(ing_pipeline *p);
static void ing_restore_partitions(ing_pipeline *p, const rd_kafka_topic_partition_list_t *parts);
static void ing_group_starts(ing_pipeline *p, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *parts);
static void ing_epoch_delivered(struct ing_delivery *d, bool ok);
static void ing_snap_delivered(struct ing_delivery *d, bool ok);
static uint32_t ing_epoch_hold(ing_pipeline *p);
static void ing_epoch_release(ing_pipeline *p, uint32_t slot);
static void ing_checkpoint_written(ing_pipeline *p, struct cor_unit **units,
                                   const struct cor_barrier *b);
static void ing_checkpoint_close(ing_pipeline *p);
static void ing_checkpoint_commit(ing_pipeline *p, bool seal_all);
static bool ing_commit_allowed(ing_pipeline *p);

/* ---- life cycle ------------------------------------------------------------------- */

int ing_pipeline_new(const struct ing_pipeline_cfg *cfg, ing_pipeline **out, char *err,
                     size_t errlen)
{
    ing_pipeline *p = vg_calloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    char qk[32];

    if (p == NULL)
        return -VG_ENOMEM;
    p->cfg = *cfg;
    if (p->cfg.nshards == 0)
        p->cfg.nshards = 2;
    if (p->cfg.barrier_ms <= 0)
        p->cfg.barrier_ms = 20;
    if (p->cfg.commit_ms <= 0)
        p->cfg.commit_ms = 1000;
    if (p->cfg.limits.max_message_bytes == 0)
        ing_limits_default(&p->cfg.limits);
    if (p->cfg.queue_kbytes == 0)
        p->cfg.queue_kbytes = 16384;
    if (p->cfg.shard_queue_kbytes == 0)
        p->cfg.shard_queue_kbytes = 65536;
    p->brokers = vg_strdup(cfg->kafka.brokers ? cfg->kafka.brokers : "");
    p->group = vg_strdup(cfg->kafka.group ? cfg->kafka.group : "vigil");
    p->topic = vg_strdup(cfg->kafka.topic ? cfg->kafka.topic : "telemetry");
    p->dlq_topic = vg_strdup(cfg->kafka.dlq_topic ? cfg->kafka.dlq_topic : "telemetry.dlq");
    p->alerts_topic = vg_strdup(cfg->kafka.alerts_topic ? cfg->kafka.alerts_topic : "alerts");
    p->alerts_tenant_topic = vg_strdup("alerts.tenant");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_mutex_init(&p->ep_lock, NULL);
    for (int i = 0; i < ING_EPOCHS; i++) {
        p->ep[i].rec.done = ing_epoch_delivered;
        p->ep[i].snap.done = ing_snap_delivered;
        p->ep[i].p = p;
    }
    for (int i = 0; i < ING_MAX_PARTS; i++) {
        p->parts[i].partition = i;
        p->parts[i].dispatched = -1;
        p->parts[i].blocked = -1;
        p->parts[i].committed = -1;
        p->stored[i] = -1;
        p->ckpt[i] = -1;
        p->lag[i] = -1;
    }
    p->wb = sto_wbatch_new();
    if (p->wb != NULL && sto_wbatch_bind(p->wb, cfg->db) < 0) {
        sto_wbatch_destroy(p->wb);
        p->wb = NULL;
    }
    if (vg_u64map_init(&p->owners, 1024) < 0)
        p->wb = NULL; /* reported as out of memory below */
    if (p->brokers == NULL || p->group == NULL || p->topic == NULL || p->dlq_topic == NULL ||
        p->alerts_topic == NULL || p->alerts_tenant_topic == NULL || p->wb == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    p->cfg.kafka.brokers = p->brokers;
    /* Each producer's queue is bounded ahead of the -X settings (which may override it).
     * librdkafka's default, 1 GiB, let an unpaced burst to a slow broker hold 1.5 GiB of
     * alerts and changelog records: with a bound, a full queue makes their producer (the
     * writer thread) wait for deliveries, the shards' out rings fill behind it, and the
     * consumer pauses, as for any slow stage. Sightings are shed, not queued, when the
     * broker falls behind: 8 MiB of their own. */
    p->side_props = vg_calloc(p->cfg.kafka.nprops + 1, sizeof(*p->side_props));
    if (p->side_props == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out_free;
    }
    if (p->cfg.kafka.nprops > 0)
        memcpy(p->side_props + 1, p->cfg.kafka.props, p->cfg.kafka.nprops * sizeof(*p->side_props));
    {
        struct ing_kafka_cfg bounded = p->cfg.kafka;

        bounded.props = p->side_props;
        bounded.nprops = p->cfg.kafka.nprops + 1;
        p->side_props[0] = (struct ing_kv){"queue.buffering.max.kbytes", ING_PRODUCER_QUEUE_KB};
        if (ing_producer_new(&bounded, &p->prod, err, errlen) < 0)
            goto out_free;
        p->side_props[0] = (struct ing_kv){"queue.buffering.max.kbytes", "8192"};
        if (ing_producer_new(&bounded, &p->side_prod, err, errlen) < 0)
            goto out_free;
        ing_producer_shed(p->side_prod);
    }

    conf = ing_conf_new(&p->cfg.kafka, p->brokers, RD_KAFKA_CONSUMER, err, errlen);
    if (conf == NULL)
        goto out_free;
    snprintf(qk, sizeof(qk), "%zu", p->cfg.queue_kbytes);
    if (rd_kafka_conf_set(conf, "group.id", p->group, err, errlen) != RD_KAFKA_CONF_OK ||
        /* Offsets are committed by the writer, after the data is durable. */
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, errlen) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, errlen) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "queued.max.messages.kbytes", qk, err, errlen) != RD_KAFKA_CONF_OK)
        goto out_free;
    if (p->cfg.session_timeout_ms > 0) {
        char st[16];

        snprintf(st, sizeof(st), "%d", p->cfg.session_timeout_ms);
        if (rd_kafka_conf_set(conf, "session.timeout.ms", st, err, errlen) != RD_KAFKA_CONF_OK)
            goto out_free;
    }
    rd_kafka_conf_set_rebalance_cb(conf, ing_rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, ing_error_cb);
    rd_kafka_conf_set_stats_cb(conf, ing_stats_cb);
    rd_kafka_conf_set(conf, "statistics.interval.ms", "1000", NULL, 0);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (p->rk == NULL)
        goto out_free;
    conf = NULL;
    rd_kafka_poll_set_consumer(p->rk);
    if (ing_changelog_new(&p->cfg.kafka, p->brokers, p->group, p->topic, p->rk, &p->cl, err,
                          errlen) < 0)
        goto out_free;

    p->nshards = p->cfg.nshards;
    p->shards = vg_calloc(p->nshards, sizeof(*p->shards));
    p->in_bytes = vg_calloc(p->nshards, sizeof(*p->in_bytes));
    if (p->shards == NULL || p->in_bytes == NULL)
        goto out_free;
    for (uint32_t i = 0; i < p->nshards; i++) {
        struct cor_shard_cfg sc = {
            .index = i,
            .nshards = p->nshards,
            .rules = p->cfg.rules,
            .corr = p->cfg.corr,
            .corr_lateness_us = p->cfg.corr_lateness_us,
            .db = p->cfg.db,
            .block_max_age_us = p->cfg.block_max_age_us,
            .release = ing_release,
            .reject = ing_reject,
            .ctx = p,
            .snapshots = ing_changelog_enabled(p->cl),
            .sightings = true, /* to alerts.tenant, for the incident stage */
        };

        if (cor_shard_new(&sc, &p->shards[i]) < 0) {
            snprintf(err, errlen, "cannot create shard %u", i);
            goto out_free;
        }
    }
    *out = p;
    return 0;

out_free:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ing_pipeline_destroy(p);
    return -VG_EKAFKA;
}

static void ing_requeue_outbox(ing_pipeline *p);

int ing_pipeline_start(ing_pipeline *p, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t e;

    {
        char *cid = rd_kafka_clusterid(p->rk, 10000);
        size_t n = strlen(p->topic) + (cid ? strlen(cid) : 7) + 2;

        p->offsets_ns = vg_malloc(n);
        if (p->offsets_ns == NULL) {
            free(cid);
            rd_kafka_topic_partition_list_destroy(topics);
            snprintf(err, errlen, "out of memory");
            return -VG_ENOMEM;
        }
        snprintf(p->offsets_ns, n, "%s/%s", cid ? cid : "unknown", p->topic);
        if (cid == NULL)
            vg_log(VG_LOG_WARN, "ingest", "cluster id not known after 10 s: is %s reachable?",
                   p->brokers);
        free(cid); /* rd_kafka_clusterid's string is the caller's, to free() */
    }
    rd_kafka_topic_partition_list_add(topics, p->topic, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(p->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        snprintf(err, errlen, "subscribe to %s: %s", p->topic, rd_kafka_err2str(e));
        return -VG_EKAFKA;
    }
    ing_requeue_outbox(p);
    for (uint32_t i = 0; i < p->nshards; i++)
        if (cor_shard_start(p->shards[i]) < 0)
            goto out_threads;
    if (pthread_create(&p->writer_thread, NULL, ing_writer_main, p) != 0)
        goto out_threads;
    pthread_setname_np(p->writer_thread, "vg-writer");
    if (pthread_create(&p->consume_thread, NULL, ing_consume_main, p) != 0) {
        __atomic_store_n(&p->stop_writer, 1, __ATOMIC_RELEASE);
        pthread_join(p->writer_thread, NULL);
        goto out_threads;
    }
    pthread_setname_np(p->consume_thread, "vg-consume");
    p->started = true;
    return 0;

out_threads:
    snprintf(err, errlen, "cannot start threads");
    for (uint32_t i = 0; i < p->nshards; i++)
        cor_shard_stop(p->shards[i]);
    return -VG_ENOMEM;
}

void ing_pipeline_stop(ing_pipeline *p)
{
    if (p == NULL || !p->started)
        return;
    /* The consumer drains what it holds, sends a last seal-all barrier, waits for it to be
     * written, commits, and closes the consumer (leaving the group). With a broker that
     * takes nothing, the writer's waits for room in the producer's queue (and its flushes)
     * end at a deadline, so that the stop ends too. */
    {
        uint64_t dl = vg_mono_ns() + ING_STOP_GRACE_NS;

        ing_producer_set_deadline(p->prod, dl);
        ing_producer_set_deadline(p->side_prod, dl);
    }
    __atomic_store_n(&p->stop_consume, 1, __ATOMIC_RELEASE);
    pthread_join(p->consume_thread, NULL);
    __atomic_store_n(&p->stop_writer, 1, __ATOMIC_RELEASE);
    pthread_join(p->writer_thread, NULL);
    for (uint32_t i = 0; i < p->nshards; i++)
        cor_shard_stop(p->shards[i]);
    p->started = false;
}

void ing_pipeline_destroy(ing_pipeline *p)
{
    if (p == NULL)
        return;
    ing_pipeline_stop(p);
    for (uint32_t i = 0; p->shards != NULL && i < p->nshards; i++)
        cor_shard_destroy(p->shards[i]);
    vg_free(p->shards);
    vg_free(p->in_bytes);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    ing_producer_destroy(p->prod); /* flushes: changelog records' reports still see p */
    ing_producer_destroy(p->side_prod);
    vg_free(p->side_props);
    ing_changelog_destroy(p->cl);
    sto_wbatch_destroy(p->wb);
    if (p->owners.keys != NULL)
        vg_u64map_free(&p->owners);
    for (size_t i = 0; i < p->noutbox_done; i++)
        vg_free(p->outbox_done[i]);
    vg_free(p->outbox_done);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->ep_lock);
    vg_free(p->brokers);
    vg_free(p->group);
    vg_free(p->topic);
    vg_free(p->offsets_ns);
    vg_free(p->dlq_topic);
    vg_free(p->alerts_topic);
    vg_free(p->alerts_tenant_topic);
    vg_free(p);
}

void ing_pipeline_stats(ing_pipeline *p, struct ing_stats *st)
{
    const uint64_t *src = (const uint64_t *)&p->st;
    uint64_t *dst = (uint64_t *)st;
    struct cor_shard_stats ss;

    memset(st, 0, sizeof(*st));
    for (size_t i = 0; i < offsetof(struct ing_stats, last_event_us) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    st->last_event_us = __atomic_load_n(&p->st.last_event_us, __ATOMIC_RELAXED);
    st->partitions = __atomic_load_n(&p->st.partitions, __ATOMIC_RELAXED);
    {
        struct ing_changelog_stats cs;

        ing_changelog_get_stats(p->cl, &cs);
        st->producer_waits = (p->prod ? ing_producer_queue_full(p->prod) : 0) + cs.queue_full;
    }
    st->events = st->duplicates = 0;
    for (uint32_t i = 0; i < p->nshards; i++) {
        cor_shard_get_stats(p->shards[i], &ss);
        st->events += ss.events;
        st->duplicates += ss.duplicates;
    }
}

/* ---- the consumer thread ---------------------------------------------------------- */

static void *ing_consume_main(void *arg)
{
    ing_pipeline *p = arg;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(p->rk);
    rd_kafka_message_t *msgs[ING_POLL_BATCH];
    uint64_t last;

    p->last_barrier_ns = vg_mono_ns();
    while (!__atomic_load_n(&p->stop_consume, __ATOMIC_ACQUIRE)) {
        ssize_t n;
        uint64_t now;

        ing_drain_waiting(p, false);
        n = rd_kafka_consume_batch_queue(q, 5, msgs, ING_POLL_BATCH);
        for (ssize_t i = 0; i < n; i++)
            ing_dispatch(p, msgs[i]);
        now = vg_mono_ns();
        if (now - p->last_lag_ns >= 1000000000u) {
            ing_update_lag(p);
            p->last_lag_ns = now;
        }
        if (now - p->last_barrier_ns >= (uint64_t)p->cfg.barrier_ms * 1000000u) {
            ing_send_barrier(p, false);
            p->last_barrier_ns = now;
        }
    }
    /* Shut down: route everything consumed, then make it all durable and commit. */
    ing_drain_waiting(p, true);
    last = ing_send_barrier(p, true);
    ing_wait_written(p, last);
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(p->rk); /* runs the revoke callback, which seals once more */
    return NULL;
}

static void ing_dispatch(ing_pipeline *p, rd_kafka_message_t *rkm)
{
    struct ing_part *pt;

    if (rkm->err) {
        if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* nothing to do */
        } else if (rkm->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                   rkm->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            /* The broker no longer has what we need: data lost upstream. Say so loudly. */
            ing_stat_add(&p->st.lost_upstream, 1);
            vg_log(VG_LOG_ERROR, "ingest",
                   "partition %d: offset out of range: telemetry was lost at the broker "
                   "(retention outran this consumer): %s",
                   rkm->partition, rd_kafka_message_errstr(rkm));
        } else {
            vg_log(VG_LOG_WARN, "ingest", "consume error: %s", rd_kafka_message_errstr(rkm));
        }
        rd_kafka_message_destroy(rkm);
        return;
    }
    if (rkm->partition < 0 || rkm->partition >= ING_MAX_PARTS) {
        vg_log(VG_LOG_ERROR, "ingest", "partition %d beyond the %d supported", rkm->partition,
               ING_MAX_PARTS);
        rd_kafka_message_destroy(rkm);
        return;
    }
    ing_stat_add(&p->st.messages, 1);
    ing_stat_add(&p->st.bytes, rkm->len);
    __atomic_store_n(&p->brokers_down, 0, __ATOMIC_RELAXED);
    pt = &p->parts[rkm->partition];
    if (pt->dispatched < 0 && rkm->offset > 0 && pt->wait_tail == NULL) {
        /* No stored offset: the group starts at the earliest the broker still has. Older
         * messages, if the partition ever had any, are gone: say so, once. */
        vg_log(VG_LOG_WARN, "ingest",
               "partition %d: starting at offset %lld with no stored offset; the %lld "
               "messages before it (if any were produced) are no longer at the broker",
               rkm->partition, (long long)rkm->offset, (long long)rkm->offset);
    }
    if (pt->dispatched >= 0 && rkm->offset > pt->dispatched + 1 && pt->wait_tail == NULL) {
        uint64_t gap = (uint64_t)(rkm->offset - pt->dispatched - 1);

        /* Kafka offsets of a plain topic are dense; a gap means the broker dropped data. */
        ing_stat_add(&p->st.lost_upstream, gap);
        vg_log(VG_LOG_ERROR, "ingest", "partition %d: %llu messages missing before offset %lld",
               rkm->partition, (unsigned long long)gap, (long long)rkm->offset);
    }
    /* Keep partition order: behind anything already waiting. */
    if (pt->wait_tail != NULL || !ing_route(p, pt, rkm)) {
        struct ing_msg *m = vg_calloc(1, sizeof(*m));

        if (m == NULL) {
            /* Cannot even queue it: wait for the shards instead of losing it. */
            while (!ing_route(p, pt, rkm)) {
                struct timespec ts = {0, 1000000};

                nanosleep(&ts, NULL);
            }
            return;
        }
        m->rkm = rkm;
        if (pt->wait_tail)
            pt->wait_tail->next = m;
        else
            pt->wait_head = m;
        pt->wait_tail = m;
        pt->waiting++;
        if (!pt->paused) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(rkm->rkt), rkm->partition);
            rd_kafka_pause_partitions(p->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            pt->paused = true;
            ing_stat_add(&p->st.pauses, 1);
        }
    }
}

/* Decodes and routes one message to its shard, or dead-letters it. Returns false when the
 * shard's ring is full (nothing was done; try again later). */
/* Would shard si go over its byte budget with cost more? Never when it holds nothing: a
 * message alone goes through, however large. */
static bool ing_shard_full(ing_pipeline *p, uint32_t si, size_t cost)
{
    uint64_t held = __atomic_load_n(&p->in_bytes[si], __ATOMIC_ACQUIRE);

    return held > 0 && held + cost > (uint64_t)p->cfg.shard_queue_kbytes * 1024u;
}

static bool ing_route(ing_pipeline *p, struct ing_part *pt, rd_kafka_message_t *rkm)
{
    struct ing_batch b;
    struct ing_msg *m;
    vg_arena *a;
    char reason[256];
    size_t chunk = rkm->len * 3 + 4096, cost = chunk + rkm->len;
    uint64_t held;
    int64_t offset;
    uint32_t si;
    int rc;

    if (pt->blocked >= 0) {
        if (ing_shard_full(p, (uint32_t)pt->blocked, cost))
            return false;
        pt->blocked = -1;
    }
    a = vg_arena_new(chunk);
    if (a == NULL)
        return false;
    rc = ing_decode(rkm->payload, rkm->len, &p->cfg.limits, vg_now_us(), a, &b, reason,
                    sizeof(reason));
    if (rc == -VG_ENOMEM) {
        vg_arena_destroy(a);
        return false;
    }
    if (rc == 0 && !ing_owner_ok(p, b.batch)) {
        snprintf(reason, sizeof(reason), "machine %s belongs to another tenant",
                 b.batch->machine_id);
        rc = -VG_ETENANT;
    }
    if (rc < 0) {
        vg_arena_destroy(a);
        ing_dead_letter(p, rkm, reason);
        pt->dispatched = rkm->offset;
        rd_kafka_message_destroy(rkm);
        return true;
    }
    m = vg_arena_alloc(a, sizeof(*m));
    if (m == NULL) {
        vg_arena_destroy(a);
        return false;
    }
    memset(m, 0, sizeof(*m));
    m->rkm = rkm;
    m->arena = a;
    m->in.batch = b.batch;
    m->in.raw = b.raw;
    m->in.raw_len = b.raw_len;
    m->in.mkey = vg_machine_key(b.batch->tenant_id, b.batch->machine_id);
    m->in.partition = rkm->partition;
    m->in.offset = rkm->offset;
    m->in.recv_ns = vg_mono_ns();
    m->in.opaque = m;
    /* Hash once, upstream: the machine key picks the shard. Over its byte budget, the shard
     * takes nothing more: the caller waits, as for a full ring. Only this thread adds, so
     * the check cannot be overtaken. */
    si = (uint32_t)(m->in.mkey % p->nshards);
    if (ing_shard_full(p, si, cost)) {
        vg_arena_destroy(a);
        pt->blocked = (int32_t)si;
        ing_stat_add(&p->st.shard_full, 1);
        return false;
    }
    m->shard = si;
    m->cost = cost;
    held = __atomic_add_fetch(&p->in_bytes[si], cost, __ATOMIC_RELAXED);
    /* Once pushed, the message is the shard's: it may be released (rkm and m freed) at
     * once, so nothing of it is read after. */
    offset = rkm->offset;
    if (cor_shard_push(p->shards[si], &m->in) < 0) {
        __atomic_sub_fetch(&p->in_bytes[si], cost, __ATOMIC_RELAXED);
        vg_arena_destroy(a);
        return false;
    }
    if (held > __atomic_load_n(&p->st.shard_bytes_peak, __ATOMIC_RELAXED))
        __atomic_store_n(&p->st.shard_bytes_peak, held, __ATOMIC_RELAXED); /* only this thread */
    pt->dispatched = offset;
    return true;
}

/* Lag per partition from the high watermarks librdkafka caches from fetch responses (no
 * broker round trip). Consumer thread. */
static void ing_update_lag(ing_pipeline *p)
{
    for (int i = 0; i < ING_MAX_PARTS; i++) {
        struct ing_part *pt = &p->parts[i];
        int64_t lo, hi, lag = -1;

        if (pt->assigned && rd_kafka_get_watermark_offsets(p->rk, p->topic, i, &lo, &hi) == 0 &&
            hi >= 0)
            lag = hi - (pt->dispatched + 1) > 0 ? hi - (pt->dispatched + 1) : 0;
        __atomic_store_n(&p->lag[i], lag, __ATOMIC_RELAXED);
    }
}

static void ing_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ing_pipeline *p = opaque;

    (void)rk;
    /* Only "all down" sets the flag; a transport error of one connection says nothing of
     * the others. What clears it is the statistics below seeing a broker up. */
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        __atomic_store_n(&p->brokers_down, 1, __ATOMIC_RELAXED);
    vg_log(VG_LOG_WARN, "kafka", "consumer: %s: %s", rd_kafka_err2name(err), reason);
}

/* librdkafka's statistics, once a second: reachable when any real broker (not a bootstrap
 * placeholder) is UP. Runs on the consumer thread, inside its poll. */
static int ing_stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    ing_pipeline *p = opaque;
    json_t *root = json_loadb(json, len, 0, NULL), *brokers, *b;
    const char *name;
    int up = 0, known = 0;

    (void)rk;
    if (root != NULL && (brokers = json_object_get(root, "brokers")) != NULL) {
        json_object_foreach(brokers, name, b)
        {
            if (json_integer_value(json_object_get(b, "nodeid")) < 0)
                continue;
            const char *state = json_string_value(json_object_get(b, "state"));

            known++;
            up += state != NULL && strcmp(state, "UP") == 0;
        }
        if (known > 0)
            __atomic_store_n(&p->brokers_down, up == 0, __ATOMIC_RELAXED);
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

size_t ing_pipeline_lag(ing_pipeline *p, int32_t *partitions, int64_t *lags, size_t max)
{
    size_t n = 0;

    for (int i = 0; i < ING_MAX_PARTS && n < max; i++) {
        int64_t lag = __atomic_load_n(&p->lag[i], __ATOMIC_RELAXED);

        if (lag >= 0) {
            partitions[n] = i;
            lags[n++] = lag;
        }
    }
    return n;
}

uint32_t ing_pipeline_nshards(const ing_pipeline *p)
{
    return p->nshards;
}

struct cor_shard *ing_pipeline_shard(ing_pipeline *p, uint32_t i)
{
    return i < p->nshards ? p->shards[i] : NULL;
}

bool ing_pipeline_broker_ok(ing_pipeline *p)
{
    return !__atomic_load_n(&p->brokers_down, __ATOMIC_RELAXED) &&
           __atomic_load_n(&p->st.partitions, __ATOMIC_RELAXED) > 0;
}

/* A machine belongs to the tenant it first reported under. The consumer thread keeps the
 * owners it has seen; RocksDB keeps them across restarts (written with machine records). */
static bool ing_owner_ok(ing_pipeline *p, const Vigil__TelemetryBatch *b)
{
    uint64_t mh = vg_hash64(b->machine_id, strlen(b->machine_id), 0x6f776e6572) | 1;
    uint64_t th = vg_hash64(b->tenant_id, strlen(b->tenant_id), 0x74656e616e74) | 1;
    uintptr_t known = (uintptr_t)vg_u64map_get(&p->owners, mh);
    char owner[256];

    if (known == 0) {
        if (sto_get_owner(p->cfg.db, b->machine_id, owner, sizeof(owner)) == 0)
            known = (uintptr_t)(vg_hash64(owner, strlen(owner), 0x74656e616e74) | 1);
        else
            known = (uintptr_t)th; /* first report: this tenant claims it */
        if (vg_u64map_put(&p->owners, mh, (void *)known) < 0)
            return (uint64_t)known == th; /* cannot remember: still decide */
    }
    return (uint64_t)known == th;
}

static void ing_drain_waiting(ing_pipeline *p, bool block)
{
    for (int i = 0; i < ING_MAX_PARTS; i++) {
        struct ing_part *pt = &p->parts[i];

        while (pt->wait_head != NULL) {
            struct ing_msg *m = pt->wait_head;

            if (!ing_route(p, pt, m->rkm)) {
                struct timespec ts = {0, 200000};

                if (!block)
                    break;
                nanosleep(&ts, NULL);
                continue;
            }
            pt->wait_head = m->next;
            if (pt->wait_head == NULL)
                pt->wait_tail = NULL;
            pt->waiting--;
            vg_free(m);
        }
        if (pt->wait_head == NULL && pt->paused) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

            rd_kafka_topic_partition_list_add(l, p->topic, pt->partition);
            rd_kafka_resume_partitions(p->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            pt->paused = false;
        }
    }
}

/* Sends a barrier through every shard; returns its id. Blocks while a ring is full: every
 * barrier must arrive. */
static uint64_t ing_send_barrier(ing_pipeline *p, bool seal_all)
{
    struct cor_offset offs[ING_MAX_PARTS];
    struct cor_barrier *b;
    size_t n = 0;
    uint64_t id = ++p->next_barrier;

    uint64_t now = vg_mono_ns();

    for (int i = 0; i < ING_MAX_PARTS; i++)
        if (p->parts[i].assigned && p->parts[i].dispatched >= 0)
            offs[n++] = (struct cor_offset){i, p->parts[i].dispatched};
    /* One reference per shard (each passes it to its unit; the writer drops them). */
    while ((b = cor_barrier_new(id, seal_all, offs, n, (int)p->nshards)) == NULL) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    /* A checkpoint every commit interval and at every seal-all: offsets are committed only
     * at checkpoints (the writer), so that the changelog is never behind them. */
    if (seal_all || now - p->last_ckpt_ns >= (uint64_t)p->cfg.commit_ms * 1000000u) {
        /* acquire: pairs with the writer's release store when a record was lost. */
        b->snapshot =
            __atomic_exchange_n(&p->need_full, 0, __ATOMIC_ACQ_REL) ? COR_SNAP_ALL : COR_SNAP_DIRTY;
        p->last_ckpt_ns = now;
    }
    for (uint32_t i = 0; i < p->nshards; i++) {
        struct cor_in *in;

        while ((in = vg_calloc(1, sizeof(*in))) == NULL) {
            struct timespec ts = {0, 1000000};

            nanosleep(&ts, NULL);
        }
        in->is_barrier = true;
        in->barrier = b;
        in->opaque = in; /* freed by ing_release */
        while (cor_shard_push(p->shards[i], in) < 0) {
            struct timespec ts = {0, 200000};

            nanosleep(&ts, NULL);
        }
    }
    return id;
}

static void ing_wait_written(ing_pipeline *p, uint64_t id)
{
    pthread_mutex_lock(&p->lock);
    while (p->written_barrier < id && !__atomic_load_n(&p->stop_writer, __ATOMIC_ACQUIRE))
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void ing_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ing_pipeline *p = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            int64_t off;

            if (tp->partition < 0 || tp->partition >= ING_MAX_PARTS)
                continue;
            /* RocksDB, not the group's committed offset, says where durable state ends. */
            if (sto_get_offset(p->cfg.db, p->offsets_ns, tp->partition, &off) == 0) {
                tp->offset = off;
                p->parts[tp->partition].dispatched = off - 1;
            } else {
                p->parts[tp->partition].dispatched = -1;
            }
            p->parts[tp->partition].assigned = true;
            __atomic_store_n(&p->owned[tp->partition], 1, __ATOMIC_RELEASE);
            vg_debug("ingest", "assigned %s[%d] from offset %lld (offsets under %s)", tp->topic,
                     tp->partition, (long long)tp->offset, p->offsets_ns);
        }
        vg_log(VG_LOG_INFO, "ingest", "assigned %d partitions of %s", parts->cnt, p->topic);
        ing_group_starts(p, rk, parts);
        /* Before the partitions are assigned, so before any of their telemetry is fetched:
         * the shards restore each machine's state ahead of its first batch. */
        ing_restore_partitions(p, parts);
        __atomic_store_n(&p->st.partitions, (uint32_t)parts->cnt, __ATOMIC_RELAXED);
        rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or lost): everything consumed from these partitions becomes durable and its
     * offsets committed before another member may take them. */
    ing_drain_waiting(p, true);
    if (!__atomic_load_n(&p->stop_writer, __ATOMIC_ACQUIRE))
        ing_wait_written(p, ing_send_barrier(p, true));
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];

        if (tp->partition >= 0 && tp->partition < ING_MAX_PARTS) {
            p->parts[tp->partition].assigned = false;
            p->parts[tp->partition].dispatched = -1;
            /* After the seal-all barrier above was written and committed. */
            __atomic_store_n(&p->owned[tp->partition], 0, __ATOMIC_RELEASE);
        }
    }
    __atomic_store_n(&p->st.partitions, 0, __ATOMIC_RELAXED);
    rd_kafka_assign(rk, NULL);
}

/* ---- callbacks from the shards ---------------------------------------------------- */

static void ing_release(void *ctx, struct cor_in *in)
{
    if (in->restore != NULL) { /* a restored snapshot: the item and the message */
        cor_snap_state_free((Vigil__MachineState *)in->restore);
        vg_free(in);
        return;
    }
    if (in->is_barrier) {
        vg_free(in->opaque); /* the item itself; the barrier lives on in the unit */
        return;
    }
    {
        ing_pipeline *p = ctx;
        struct ing_msg *m = in->opaque;
        vg_arena *a = m->arena;

        __atomic_sub_fetch(&p->in_bytes[m->shard], m->cost, __ATOMIC_RELEASE);
        rd_kafka_message_destroy(m->rkm);
        vg_arena_destroy(a); /* m lives in it */
    }
}

static void ing_reject(void *ctx, struct cor_in *in, const char *reason)
{
    struct ing_msg *m = in->opaque;

    ing_dead_letter(ctx, m->rkm, reason);
}

static void ing_dead_letter(ing_pipeline *p, const rd_kafka_message_t *rkm, const char *reason)
{
    char part[16], off[24];
    struct ing_kv hdrs[4] = {
        {"reason", reason},
        {"source_topic", rd_kafka_topic_name(rkm->rkt)},
        {"source_partition", part},
        {"source_offset", off},
    };
    uint32_t slot;

    snprintf(part, sizeof(part), "%d", rkm->partition);
    snprintf(off, sizeof(off), "%lld", (long long)rkm->offset);
    ing_stat_add(&p->st.dead_letters, 1);
    vg_log(VG_LOG_WARN, "ingest", "dead letter from %s[%d]@%lld: %s", hdrs[1].value, rkm->partition,
           (long long)rkm->offset, reason);
    /* Produced before the barrier that covers its offset leaves (consumer thread) or is
     * answered (shard thread): its epoch is never later than that checkpoint's. */
    slot = ing_epoch_hold(p);
    if (ing_produce_opaque(p->prod, p->dlq_topic, rkm->key, rkm->key_len, rkm->payload, rkm->len,
                           hdrs, 4, &p->ep[slot].rec) < 0)
        ing_epoch_release(p, slot);
}

/* ---- the writer thread ------------------------------------------------------------ */

static void ing_outbox_done(struct ing_delivery *d, bool ok)
{
    struct ing_outbox_item *it = (struct ing_outbox_item *)d;
    ing_pipeline *p = it->p;

    /* Runs on whichever thread polls the producer (mostly the writer). A failed delivery
     * stays in the outbox and is sent again at the next start: it does not hold commits. */
    pthread_mutex_lock(&p->ep_lock);
    if (ok && p->noutbox_done < 65536) {
        if (p->noutbox_done == p->capoutbox_done) {
            size_t cap = p->capoutbox_done ? p->capoutbox_done * 2 : 64;
            char **n = vg_realloc(p->outbox_done, cap * sizeof(*n));

            if (n != NULL) {
                p->outbox_done = n;
                p->capoutbox_done = cap;
            }
        }
        if (p->noutbox_done < p->capoutbox_done)
            p->outbox_done[p->noutbox_done++] = vg_strdup(it->id);
    }
    pthread_mutex_unlock(&p->ep_lock);
    ing_epoch_release(p, it->slot);
    vg_free(it);
}

/* Every alert state, new or updated, also goes to the tenant-keyed topic the incident
 * stage reads, so one tenant's alerts meet in one place whichever instance raised them. */
static void ing_repartition(ing_pipeline *p, const Vigil__Alert *a, const uint8_t *buf, size_t len)
{
    uint32_t slot = ing_epoch_hold(p);

    if (ing_produce_opaque(p->prod, p->alerts_tenant_topic, a->tenant_id, strlen(a->tenant_id), buf,
                           len, NULL, 0, &p->ep[slot].rec) < 0)
        ing_epoch_release(p, slot);
}

/* Entities the unit's machines showed (correlate/sightings.h), to the tenant-keyed topic
 * beside the alerts, marked by a header. Fire and forget: a lost sighting is reported
 * again the next day, and until then only weakens the incident stage's prevalence. */
static void ing_emit_sightings(ing_pipeline *p, const struct cor_unit *u)
{
    static const struct ing_kv hdr = {ING_HDR_TYPE, ING_TYPE_SIGHTINGS};

    for (size_t i = 0; i < u->nsightings; i++) {
        const Vigil__Sightings *sg = u->sightings[i];
        size_t len = vigil__sightings__get_packed_size(sg);
        uint8_t *buf = vg_malloc(len ? len : 1);

        if (buf == NULL)
            continue;
        vigil__sightings__pack(sg, buf);
        if (ing_produce(p->side_prod, p->alerts_tenant_topic, sg->tenant_id, strlen(sg->tenant_id),
                        buf, len, &hdr, 1) == 0)
            ing_stat_add(&p->st.sightings, sg->n_entities);
        else /* its queue is full: shed (reported again the next day) */
            ing_stat_add(&p->st.sightings_shed, sg->n_entities);
        vg_free(buf);
    }
}

static void ing_emit_update(ing_pipeline *p, const Vigil__Alert *a)
{
    size_t len = vigil__alert__get_packed_size(a);
    uint8_t *buf = vg_malloc(len);

    if (buf != NULL) {
        vigil__alert__pack(a, buf);
        ing_repartition(p, a, buf, len);
    }
    vg_free(buf);
}

static void ing_emit(ing_pipeline *p, const Vigil__Alert *a)
{
    size_t len = vigil__alert__get_packed_size(a);
    uint8_t *buf = vg_malloc(len);
    struct ing_outbox_item *it = vg_calloc(1, sizeof(*it));

    if (buf != NULL && it != NULL) {
        vigil__alert__pack(a, buf);
        it->d.done = ing_outbox_done;
        it->p = p;
        snprintf(it->id, sizeof(it->id), "%s", a->id);
        ing_repartition(p, a, buf, len);
        it->slot = ing_epoch_hold(p);
        if (ing_produce_opaque(p->prod, p->alerts_topic, a->machine_id, strlen(a->machine_id), buf,
                               len, NULL, 0, &it->d) < 0) {
            ing_epoch_release(p, it->slot);
            vg_free(it); /* stays in the outbox */
        }
        it = NULL;
    }
    vg_free(it);
    vg_free(buf);
    if (p->cfg.alerts_jsonl != NULL) {
        char *js = cor_alert_to_json(a);

        if (js != NULL) {
            fputs(js, p->cfg.alerts_jsonl);
            fputc('\n', p->cfg.alerts_jsonl);
            free(js);
        }
    }
    if (p->cfg.on_alert)
        p->cfg.on_alert(p->cfg.on_alert_ctx, &a->base);
}

/* Alerts written but not acknowledged by Kafka before the last stop: send them again (same
 * ids, so a consumer that saw them already can tell). */
static bool ing_outbox_one(void *ctx, const char *id)
{
    ing_pipeline *p = ctx;
    Vigil__Alert *a;

    if (sto_get_alert(p->cfg.db, id, &a) == 0) {
        ing_emit(p, a);
        vigil__alert__free_unpacked(a, NULL);
    }
    return true;
}

static void ing_requeue_outbox(ing_pipeline *p)
{
    sto_scan_outbox(p->cfg.db, ing_outbox_one, p);
}

static void ing_commit(ing_pipeline *p, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    rd_kafka_resp_err_t e;

    for (int i = 0; i < ING_MAX_PARTS; i++) {
        /* acquire: pairs with the release stores in the rebalance callback. A partition
         * given up is not committed again: such commits, sent while the group rebalances,
         * fail and make librdkafka rejoin, round after round. */
        if (!__atomic_load_n(&p->owned[i], __ATOMIC_ACQUIRE)) {
            p->stored[i] = -1;
            p->ckpt[i] = -1;
            continue;
        }
        /* A checkpoint's offsets, not the newest stored: the changelog covers those. */
        if (p->ckpt[i] >= 0)
            rd_kafka_topic_partition_list_add(l, p->topic, i)->offset = p->ckpt[i];
    }
    if (l->cnt > 0) {
        e = rd_kafka_commit(p->rk, l, sync ? 0 : 1);
        /* The last commit before a stop or a revocation is what another member starts
         * from: retry what may pass in a moment (coordinator moving, group rebalancing),
         * for up to five seconds. */
        for (int tries = 0;
             sync && tries < 25 &&
             (e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
              e == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
              e == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
              e == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ||
              e == RD_KAFKA_RESP_ERR__WAIT_COORD || e == RD_KAFKA_RESP_ERR__TIMED_OUT);
             tries++) {
            struct timespec ts = {0, 200000000};

            nanosleep(&ts, NULL);
            e = rd_kafka_commit(p->rk, l, 0);
        }
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            vg_log(VG_LOG_WARN, "ingest", "offset commit: %s (RocksDB keeps the offsets)",
                   rd_kafka_err2str(e));
        else
            ing_stat_add(&p->st.commits, 1);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Writes one round: the units of every shard for one barrier. */
static void ing_write_round(ing_pipeline *p, struct cor_unit **units)
{
    struct cor_barrier *b = units[0]->barrier;
    int64_t safe[ING_MAX_PARTS];
    char err[256];
    uint64_t blocks = 0;

    for (int i = 0; i < ING_MAX_PARTS; i++)
        safe[i] = -1;
    for (size_t i = 0; i < b->nparts; i++)
        if (b->dispatched[i].partition >= 0 && b->dispatched[i].partition < ING_MAX_PARTS)
            safe[b->dispatched[i].partition] = b->dispatched[i].offset + 1;
    for (uint32_t s = 0; s < p->nshards; s++) {
        struct cor_unit *u = units[s];

        for (size_t i = 0; i < u->npending; i++) {
            int32_t pt = u->pending[i].partition;

            if (pt >= 0 && pt < ING_MAX_PARTS && safe[pt] > u->pending[i].offset)
                safe[pt] = u->pending[i].offset;
        }
        for (size_t i = 0; i < u->nblocks; i++)
            sto_put_block(p->wb, u->blocks[i].mkey, u->blocks[i].first_ts_us,
                          u->blocks[i].first_seq, u->blocks[i].data, u->blocks[i].len);
        blocks += u->nblocks;
        for (size_t i = 0; i < u->nmachines; i++)
            sto_put_machine(p->wb,
                            vg_machine_key(u->machines[i]->tenant_id, u->machines[i]->machine_id),
                            u->machines[i]);
        for (size_t i = 0; i < u->nalerts; i++)
            sto_put_alert(p->wb, u->alerts[i].alert, u->alerts[i].is_new);
    }
    for (int i = 0; i < ING_MAX_PARTS; i++) {
        if (safe[i] > p->stored[i]) {
            sto_put_offset(p->wb, p->offsets_ns, i, safe[i]);
            p->stored[i] = safe[i];
        }
    }
    pthread_mutex_lock(&p->ep_lock);
    for (size_t i = 0; i < p->noutbox_done; i++) {
        sto_del_outbox(p->wb, p->outbox_done[i]);
        vg_free(p->outbox_done[i]);
    }
    p->noutbox_done = 0;
    pthread_mutex_unlock(&p->ep_lock);
    while (sto_write(p->cfg.db, p->wb, err, sizeof(err)) < 0) {
        struct timespec ts = {0, 100000000};

        /* Nothing moves on until the batch is durable: offsets stay where they were. */
        ing_stat_add(&p->st.write_errors, 1);
        vg_log(VG_LOG_ERROR, "storage", "write failed, retrying: %s", err);
        nanosleep(&ts, NULL);
        if (__atomic_load_n(&p->stop_writer, __ATOMIC_ACQUIRE))
            break;
    }
    sto_wbatch_clear(p->wb);
    ing_stat_add(&p->st.writes, 1);
    ing_stat_add(&p->st.blocks, blocks);
    if (b->snapshot != COR_SNAP_NONE)
        ing_checkpoint_written(p, units, b);
    /* Sightings first, so that the incident stage usually knows what is common before the
     * alerts of the same round arrive (on their own producer, the order is not guaranteed;
     * the stage recomputes a tenant's incidents when an entity turns common). Durable, then
     * the alerts may leave. */
    for (uint32_t s = 0; s < p->nshards; s++)
        ing_emit_sightings(p, units[s]);
    for (uint32_t s = 0; s < p->nshards; s++) {
        struct cor_unit *u = units[s];

        for (size_t i = 0; i < u->nalerts; i++) {
            const Vigil__Alert *a = u->alerts[i].alert;

            if (a->last_event_us > __atomic_load_n(&p->st.last_event_us, __ATOMIC_RELAXED))
                __atomic_store_n(&p->st.last_event_us, a->last_event_us, __ATOMIC_RELAXED);
            if (!u->alerts[i].is_new) {
                ing_stat_add(&p->st.alerts_updated, 1);
                ing_emit_update(p, a);
                continue;
            }
            ing_stat_add(&p->st.alerts[a->severity & 3], 1);
            ing_emit(p, a);
        }
    }
    if (p->cfg.alerts_jsonl != NULL)
        fflush(p->cfg.alerts_jsonl);
    /* Dead letters, alerts and changelog records must be at the broker before their offsets
     * are. A checkpoint round closes its epoch once it has produced everything; its offsets
     * are committed, in a later round, as soon as its epoch and the earlier ones have drained
     * (delivery reports are served between rounds). Nothing here waits for the broker, but a
     * seal-all barrier, whose commit is the last before another member takes over. */
    if (b->snapshot != COR_SNAP_NONE)
        ing_checkpoint_close(p);
    ing_checkpoint_commit(p, b->seal_all);
    /* Only now may a waiter (revocation, shutdown) go on to close the consumer: a seal-all
     * barrier's commit is synchronous and must finish first. */
    pthread_mutex_lock(&p->lock);
    p->written_barrier = b->id;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void *ing_writer_main(void *arg)
{
    ing_pipeline *p = arg;
    struct cor_unit **units = vg_calloc(p->nshards, sizeof(*units));
    uint32_t have = 0;

    p->next_retention_ns = vg_mono_ns() + 10 * 1000000000ull;

    while (units != NULL) {
        bool progress = false;

        for (uint32_t s = 0; s < p->nshards; s++) {
            if (units[s] == NULL && (units[s] = cor_shard_pop_unit(p->shards[s])) != NULL) {
                have++;
                progress = true;
            }
        }
        if (have == p->nshards) {
            ing_write_round(p, units);
            for (uint32_t s = 0; s < p->nshards; s++) {
                cor_unit_free(units[s]);
                units[s] = NULL;
            }
            have = 0;
            continue;
        }
        if (vg_mono_ns() >= p->next_retention_ns) {
            /* Retention by event-time day: one range deletion, no per-event deletes. It runs
             * on this thread, the only writer, and blocks it while RocksDB compacts the
             * dropped range (rare: once an hour, and little to do between two runs). */
            int days = sto_retention_run(p->cfg.db, vg_now_us());

            if (days > 0)
                vg_log(VG_LOG_INFO, "storage", "retention dropped %d days of timeline", days);
            p->next_retention_ns = vg_mono_ns() + 3600 * 1000000000ull;
        }
        rd_kafka_poll(ing_producer_handle(p->prod), 0);
        rd_kafka_poll(ing_producer_handle(p->side_prod), 0);
        if (!progress) {
            struct timespec ts = {0, 500000};

            if (__atomic_load_n(&p->stop_writer, __ATOMIC_ACQUIRE) && have == 0)
                break;
            nanosleep(&ts, NULL);
        }
    }
    if (units != NULL) {
        for (uint32_t s = 0; s < p->nshards; s++)
            cor_unit_free(units[s]);
        vg_free(units);
    }
    rd_kafka_poll(ing_producer_handle(p->prod), 0);
    /* Wake anyone still waiting for a barrier. */
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void ing_stat_add(uint64_t *f, uint64_t n)
{
    __atomic_add_fetch(f, n, __ATOMIC_RELAXED);
}

/* ---- the changelog ---------------------------------------------------------------- */

/* One snapshot read back: onto its shard's ring (the consumer thread is its only producer),
 * ahead of the telemetry of its partition. Takes ms. */
static void ing_restore_one(void *ctx, int32_t partition, Vigil__MachineState *ms)
{
    ing_pipeline *p = ctx;
    struct cor_in *in;
    cor_shard *s = p->shards[vg_machine_key(ms->tenant_id, ms->machine_id) % p->nshards];

    while ((in = vg_calloc(1, sizeof(*in))) == NULL) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    in->restore = ms;
    in->partition = partition;
    in->offset = -1;
    in->opaque = in; /* freed with ms by ing_release */
    while (cor_shard_push(s, in) < 0) {
        struct timespec ts = {0, 200000};

        nanosleep(&ts, NULL);
    }
}

/* Consumer thread, inside the rebalance callback. A partition whose changelog cannot be read
 * goes on without: its machines' process trees are then rebuilt from the own timeline. */
static void ing_restore_partitions(ing_pipeline *p, const rd_kafka_topic_partition_list_t *parts)
{
    if (!ing_changelog_enabled(p->cl))
        return;
    for (int i = 0; i < parts->cnt; i++) {
        int32_t pt = parts->elems[i].partition;

        if (pt >= 0 && pt < ING_MAX_PARTS)
            (void)ing_changelog_restore(p->cl, pt, ing_restore_one, p);
    }
}

/* ---- checkpoints and their deliveries --------------------------------------------- */

/* Any thread, before producing a message on the commit producer: it counts in the open
 * epoch until its delivery report, or until ing_epoch_release when it could not be produced.
 * Returns the epoch's slot. */
static uint32_t ing_epoch_hold(ing_pipeline *p)
{
    uint32_t slot;

    /* Under the lock, so that the writer never closes and drains an epoch between a
     * producer's choice of it and the count. */
    pthread_mutex_lock(&p->ep_lock);
    slot = (uint32_t)(p->ep_cur % ING_EPOCHS);
    p->ep[slot].inflight++;
    pthread_mutex_unlock(&p->ep_lock);
    return slot;
}

static void ing_epoch_release(ing_pipeline *p, uint32_t slot)
{
    pthread_mutex_lock(&p->ep_lock);
    p->ep[slot].inflight--;
    pthread_mutex_unlock(&p->ep_lock);
}

/* Writer thread, under ep_lock: moves ep_drained past the closed epochs with nothing in
 * flight. Slot sharing is safe: an epoch opens only when its slot's previous one drained. */
static void ing_epoch_drain_locked(ing_pipeline *p)
{
    while (p->ep_drained < p->ep_cur && p->ep[p->ep_drained % ING_EPOCHS].inflight == 0)
        p->ep_drained++;
}

/* Delivery report of a dead letter or an alerts.tenant copy, on whichever thread polls the
 * producer. A failure is counted and logged by the producer (kafka.c) and, as today, does
 * not hold commits back: there is nothing to send it again from. */
static void ing_epoch_delivered(struct ing_delivery *d, bool ok)
{
    struct ing_epoch *e = (struct ing_epoch *)((char *)d - offsetof(struct ing_epoch, rec));

    (void)ok;
    ing_epoch_release(e->p, (uint32_t)(e - e->p->ep));
}

/* Delivery report of a changelog record. */
static void ing_snap_delivered(struct ing_delivery *d, bool ok)
{
    struct ing_epoch *e = (struct ing_epoch *)((char *)d - offsetof(struct ing_epoch, snap));

    /* Counted before the release: once the writer sees the epoch drained (under ep_lock),
     * it sees the failure too. */
    if (!ok)
        ing_changelog_failed(e->p->cl);
    ing_epoch_release(e->p, (uint32_t)(e - e->p->ep));
}

/* Writer thread: a checkpoint round is durable; its changelog records go out. */
static void ing_checkpoint_written(ing_pipeline *p, struct cor_unit **units,
                                   const struct cor_barrier *b)
{
    if (ing_changelog_enabled(p->cl)) {
        for (uint32_t s = 0; s < p->nshards; s++) {
            for (size_t i = 0; i < units[s]->nsnaps; i++) {
                uint32_t slot = ing_epoch_hold(p);

                if (ing_changelog_put(p->cl, p->prod, &units[s]->snaps[i], &p->ep[slot].snap) < 0)
                    ing_epoch_release(p, slot); /* counted as failed: a full snapshot follows */
            }
        }
    }
    if (b->snapshot == COR_SNAP_ALL)
        p->full_wait = false;
}

/* Writer thread, at the end of a checkpoint round (its changelog records and alerts are
 * produced): its offsets wait for its epoch to drain, and the next epoch opens. */
static void ing_checkpoint_close(ing_pipeline *p)
{
    struct ing_ckpt *c;
    uint64_t e;

    pthread_mutex_lock(&p->ep_lock);
    e = p->ep_cur;
    ing_epoch_drain_locked(p);
    /* Every slot busy with an undrained epoch: this checkpoint's epoch stays open, and the
     * next checkpoint takes its place below (it waits for the same deliveries and more). */
    if (e + 1 - p->ep_drained < ING_EPOCHS)
        p->ep_cur = e + 1;
    pthread_mutex_unlock(&p->ep_lock);
    if (p->full_wait)
        return; /* a record was lost: only a full checkpoint's offsets may be committed */
    if (p->npend > 0 && p->pend[p->npend - 1].epoch == e) {
        c = &p->pend[p->npend - 1];
    } else {
        if (p->npend == ING_EPOCHS) { /* not reached (one per open epoch); dropping is safe */
            memmove(p->pend, p->pend + 1, (ING_EPOCHS - 1) * sizeof(*p->pend));
            p->npend--;
        }
        c = &p->pend[p->npend++];
        c->at_ns = vg_mono_ns();
    }
    c->epoch = e;
    memcpy(c->off, p->stored, sizeof(c->off));
}

/* Writer thread, every round: commits the newest pending checkpoint whose epoch and every
 * earlier one have drained, without waiting for the broker. A seal-all barrier's commit is
 * the last before another member takes the partitions: it waits (up to 10 s) for what is
 * in flight, and commits synchronously the newest checkpoint that drained; what has not is
 * given up (the next owner re-reads from that commit; RocksDB keeps this instance's). */
static void ing_checkpoint_commit(ing_pipeline *p, bool seal_all)
{
    size_t n = 0;
    bool open_clear;
    uint64_t now, ival = (uint64_t)p->cfg.commit_ms * 1000000u, inflight = 0;

    if (seal_all && p->full_wait)
        vg_log(VG_LOG_WARN, "ingest",
               "changelog records were lost and no full snapshot was delivered since: offsets "
               "not committed (the next owner re-reads from the previous commit)");
    if (p->npend == 0)
        return;
    if (seal_all)
        (void)ing_producer_flush_until(p->prod, 10000); /* serves the delivery reports here */
    pthread_mutex_lock(&p->ep_lock);
    ing_epoch_drain_locked(p);
    /* The open epoch (shared by the newest checkpoints when every slot was busy) counts as
     * drained at a moment it has nothing in flight. */
    open_clear = p->ep_drained == p->ep_cur && p->ep[p->ep_cur % ING_EPOCHS].inflight == 0;
    for (int i = 0; i < ING_EPOCHS; i++)
        inflight += p->ep[i].inflight;
    pthread_mutex_unlock(&p->ep_lock);
    /* After the epochs were seen drained: a failure reported in them is counted by now. A
     * failure drops what is pending. */
    if (ing_commit_allowed(p))
        while (n < p->npend &&
               (p->pend[n].epoch < p->ep_drained || (p->pend[n].epoch == p->ep_cur && open_clear)))
            n++;
    if (n > 0) {
        memcpy(p->ckpt, p->pend[n - 1].off, sizeof(p->ckpt));
        ing_commit(p, seal_all);
        memmove(p->pend, p->pend + n, (p->npend - n) * sizeof(*p->pend));
        p->npend -= n;
    }
    if (seal_all && p->npend > 0) {
        vg_log(VG_LOG_WARN, "ingest",
               "%llu messages still in flight after 10 s: the last offsets are not committed "
               "(the next owner re-reads from the previous commit)",
               (unsigned long long)inflight);
        p->npend = 0; /* never committed later: the partitions may have moved meanwhile */
    }
    now = vg_mono_ns();
    if (p->npend > 0 && now - p->pend[0].at_ns >= 10 * ival &&
        now - p->last_wait_log_ns >= 10 * ival) {
        vg_log(VG_LOG_WARN, "ingest",
               "offset commits wait for %llu messages in flight (the oldest pending checkpoint "
               "is %.1f s old; RocksDB keeps the offsets)",
               (unsigned long long)inflight, (double)(now - p->pend[0].at_ns) / 1e9);
        p->last_wait_log_ns = now;
    }
}

/* Writer thread: may drained checkpoints be committed? Not while a changelog record is lost:
 * the pending checkpoints are dropped, the next checkpoint snapshots every machine, and
 * commits wait for it (and for its own records to be delivered). */
static bool ing_commit_allowed(ing_pipeline *p)
{
    struct ing_changelog_stats cs;

    if (!ing_changelog_enabled(p->cl))
        return true;
    ing_changelog_get_stats(p->cl, &cs);
    if (cs.failed != p->cl_failed_seen) {
        p->cl_failed_seen = cs.failed;
        p->full_wait = true;
        p->npend = 0;
        /* release: pairs with the consumer's exchange when it builds the next checkpoint. */
        __atomic_store_n(&p->need_full, 1, __ATOMIC_RELEASE);
        vg_log(VG_LOG_WARN, "ingest",
               "changelog records were lost: offsets wait for a full snapshot of every machine");
    }
    return !p->full_wait;
}

void ing_pipeline_changelog_stats(ing_pipeline *p, struct ing_changelog_stats *st)
{
    ing_changelog_get_stats(p->cl, st);
}

/* Consumer thread, in the rebalance callback. Each assigned partition starts at the later
 * of this instance's durable offset (RocksDB) and the group's committed offset. Every member
 * commits only what its own RocksDB holds, so a group commit beyond ours means another
 * instance owned the partition meanwhile and has everything before it: starting from our
 * older offset would store and alert on its events a second time here. A partition with no
 * offset in this RocksDB (never owned here) starts at the group's commit; known here, the
 * first message there is not mistaken for data lost at the broker. Without an answer from
 * the group (timeout), our own offset stands: more re-processing, nothing lost. */
static void ing_group_starts(ing_pipeline *p, rd_kafka_t *rk,
                             rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt + 1);

    for (int i = 0; i < parts->cnt; i++) {
        int32_t pt = parts->elems[i].partition;

        if (pt >= 0 && pt < ING_MAX_PARTS)
            rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, pt);
    }
    if (l->cnt > 0 && rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int32_t pt = l->elems[i].partition;
            int64_t group = l->elems[i].offset;
            rd_kafka_topic_partition_t *tp;

            if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR || group <= 0 ||
                group - 1 <= p->parts[pt].dispatched)
                continue;
            if (p->parts[pt].dispatched >= 0) {
                vg_log(VG_LOG_INFO, "ingest",
                       "%s[%d]: the group committed %lld, past this instance's %lld (another "
                       "member owned it meanwhile): starting there",
                       l->elems[i].topic, pt, (long long)group,
                       (long long)p->parts[pt].dispatched + 1);
                tp = rd_kafka_topic_partition_list_find(parts, l->elems[i].topic, pt);
                if (tp != NULL)
                    tp->offset = group;
            }
            p->parts[pt].dispatched = group - 1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}
