/*
 * ingest.h - vigil's Kafka side and its pipeline: decoding and validating telemetry,
 * the dead-letter topic, routing to shards, the storage writer, alert emission, and the
 * embedded broker.
 *
 * THREAD MODEL of a running pipeline (ing_pipeline):
 *   vg-consume   one thread: polls the consumer group, decodes, validates, dead-letters,
 *                routes each batch to its shard's inbound ring, pauses partitions when a
 *                ring is full, and every barrier interval sends a barrier through all
 *                shards.
 *   vg-shard-N   S threads (correlate.h): own their machines outright.
 *   vg-writer    one thread: drains the shards' outbound rings into RocksDB write batches;
 *                when a barrier has passed every shard, writes the batch with the offsets it
 *                covers, then emits the new alerts and commits the offsets to Kafka.
 *   librdkafka's own threads run the delivery and log callbacks.
 */
#ifndef VG_INGEST_H
#define VG_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "telemetry.pb-c.h"
#include "vg.h"

/* ---- decoding and validation ------------------------------------------------------ */

struct ing_limits {
    size_t max_message_bytes; /* default 16 MiB */
    size_t max_field_bytes;   /* any one string; default 64 KiB */
    size_t max_events;        /* per batch; default 100,000 */
    size_t max_id_bytes;      /* tenant and machine ids; default 128 */
    int64_t min_ts_us;        /* default 2000-01-01 */
    int64_t max_future_us;    /* how far past now an event may be; default 1 day */
};

void ing_limits_default(struct ing_limits *l);

/* A decoded batch. The raw bytes of each event (a serialized vigil.Event) are kept so
 * that storage can append them to a timeline block without encoding them again. */
struct ing_batch {
    Vigil__TelemetryBatch *batch; /* header fields and events, in the arena */
    const uint8_t **raw;          /* raw[i]: serialized events[i], borrowed from the input */
    size_t *raw_len;
};

/*
 * Decodes a serialized TelemetryBatch by walking its envelope: header fields are unpacked
 * once and each event alone, into arena a. The input must outlive out (raw slices point
 * into it). Then validates it against l and now_us. Returns 0, or -VG_EDECODE / -VG_EINVAL
 * with the reason (one line, for the dead-letter header) in reason.
 */
int ing_decode(const void *buf, size_t len, const struct ing_limits *l, int64_t now_us, vg_arena *a,
               struct ing_batch *out, char *reason, size_t reasonlen);

/* ---- Kafka configuration ---------------------------------------------------------- */

struct ing_kv {
    const char *key;
    const char *value;
};

struct ing_kafka_cfg {
    const char *brokers;        /* NULL or "": start the embedded broker */
    const char *group;          /* default "vigil" */
    const char *topic;          /* default "telemetry" */
    const char *dlq_topic;      /* default "telemetry.dlq" */
    const char *alerts_topic;   /* default "alerts" */
    const struct ing_kv *props; /* -X key=value, passed to librdkafka (both clients) */
    size_t nprops;
};

/* ---- the embedded broker ---------------------------------------------------------- */

/* The topics vigil uses by default: telemetry, telemetry.dlq, alerts, alerts.tenant (the
 * incident stage's input, keyed by tenant), incidents. */
extern const char *const ing_default_topics[];
#define ING_DEFAULT_NTOPICS 5

typedef struct ing_mock ing_mock;

/* Starts librdkafka's mock cluster (brokers: 1 or more) with the telemetry, alerts,
 * incidents and dead-letter topics (partitions each). bootstraps is readable until
 * ing_mock_stop. Returns 0 or -VG_EKAFKA with detail in err. */
int ing_mock_start(int brokers, int partitions, const char *const *topics, size_t ntopics,
                   ing_mock **out, char *err, size_t errlen);
const char *ing_mock_bootstraps(const ing_mock *m);
/* The rd_kafka_mock_cluster_t, for fault injection in tests. */
void *ing_mock_cluster(ing_mock *m);
void ing_mock_stop(ing_mock *m);

/* ---- producing (simulate, tests, DLQ, alerts) -------------------------------------- */

typedef struct ing_producer ing_producer;

int ing_producer_new(const struct ing_kafka_cfg *cfg, ing_producer **out, char *err, size_t errlen);
/* Copies key and value. Blocks (polling) while the local queue is full, unless the producer
 * sheds (ing_producer_shed). Header pairs may be NULL. Returns 0, -VG_EFULL (shed) or
 * -VG_EKAFKA. Safe from any thread. */
int ing_produce(ing_producer *p, const char *topic, const void *key, size_t keylen, const void *val,
                size_t vallen, const struct ing_kv *headers, size_t nheaders);
/* Waits up to timeout_ms for everything produced to be acknowledged. Returns the number of
 * messages still outstanding (0 when all were delivered). */
int ing_producer_flush(ing_producer *p, int timeout_ms);
/* Messages that failed delivery permanently since creation. */
uint64_t ing_producer_failed(const ing_producer *p);
/* From now on a produce that finds the queue full fails at once with -VG_EFULL (counted as
 * ing_producer_queue_full) instead of waiting: for messages that may be dropped. */
void ing_producer_shed(ing_producer *p);
/* Produces that found the queue full (and waited for deliveries, or were shed). */
uint64_t ing_producer_queue_full(const ing_producer *p);
/* From mono_ns (vg_mono_ns) on, a produce that finds the queue full fails (-VG_EKAFKA)
 * instead of waiting for room, and the flushes of ing_producer_flush_until and
 * ing_producer_destroy end there (at least a second after the call): a stop with the broker
 * gone must end. Safe from any thread. */
void ing_producer_set_deadline(ing_producer *p, uint64_t mono_ns);
/* ing_producer_flush for up to timeout_ms, or less when the deadline comes first (but at
 * least a second). */
int ing_producer_flush_until(ing_producer *p, int timeout_ms);
void ing_producer_destroy(ing_producer *p); /* flushes up to 10 s (or the deadline) first */
/* The rd_kafka_t, for callers that need more. */
void *ing_producer_handle(ing_producer *p);

/* ---- the pipeline (vigil run) ------------------------------------------------------ */

typedef struct ing_pipeline ing_pipeline;
struct cor_ruleset;
struct cor_corrset;
struct sto_db;
struct ProtobufCMessage;

struct ing_pipeline_cfg {
    struct ing_kafka_cfg kafka; /* brokers must be set (the embedded broker's address) */
    uint32_t nshards;           /* default 2 */
    struct cor_ruleset *rules;  /* shared; may be NULL (no detection) */
    struct cor_corrset *corr;   /* correlation rules; shared; may be NULL */
    int64_t corr_lateness_us;   /* 0: default (5 minutes) */
    struct sto_db *db;          /* required */
    FILE *alerts_jsonl;         /* NULL: none */
    /* Called on the writer thread for every new alert once it is durable. */
    void (*on_alert)(void *ctx, const struct ProtobufCMessage *alert);
    void *on_alert_ctx;
    int barrier_ms;           /* default 50 */
    int commit_ms;            /* Kafka offset commit interval; default 1000 */
    struct ing_limits limits; /* zero: defaults */
    size_t queue_kbytes; /* librdkafka's fetch queue (queued.max.messages.kbytes: the one consumer
                            queue, all partitions); default 16 MiB */
    size_t shard_queue_kbytes; /* messages consumed and waiting for one shard, counted with
                                  their decoded form; default 64 MiB */
    int session_timeout_ms;    /* consumer group session; 0: librdkafka's default (45 s). The
                                  embedded broker waits a whole session out before it lets a
                                  restarted member rejoin, so short there */
    int64_t block_max_age_us;  /* default 5 s */
};

struct ing_stats {
    uint64_t messages; /* consumed */
    uint64_t bytes;
    uint64_t dead_letters; /* messages sent to the dead-letter topic */
    uint64_t events;       /* accepted by the shards */
    uint64_t duplicates;   /* re-delivered events dropped */
    uint64_t alerts[4];    /* new alerts by severity */
    uint64_t alerts_updated;
    uint64_t lost_upstream; /* messages the broker no longer had (offset gaps/resets) */
    uint64_t writes;        /* RocksDB write batches */
    uint64_t blocks;        /* timeline blocks written */
    uint64_t commits;       /* Kafka offset commits */
    uint64_t pauses;        /* partition pauses for backpressure */
    uint64_t write_errors;
    uint64_t sightings;        /* entity sightings sent to the incident stage */
    uint64_t sightings_shed;   /* not sent: their producer's queue was full */
    uint64_t producer_waits;   /* alerts, dead letters and changelog records that waited for
                                  room in their producer's bounded queue (backpressure) */
    uint64_t shard_full;       /* messages a shard over its byte budget (shard_queue_kbytes)
                                  refused for now: their partition waits (backpressure) */
    uint64_t shard_bytes_peak; /* most bytes one shard held waiting (the budget, or a single
                                  message above it) */
    int64_t last_event_us;
    uint32_t partitions; /* assigned now */
};

int ing_pipeline_new(const struct ing_pipeline_cfg *cfg, ing_pipeline **out, char *err,
                     size_t errlen);
/* Starts the threads and subscribes. Re-emits alerts left in the outbox by a crash. */
int ing_pipeline_start(ing_pipeline *p, char *err, size_t errlen);
/* Stops consuming, seals and writes everything consumed, commits, stops the threads. */
void ing_pipeline_stop(ing_pipeline *p);
void ing_pipeline_destroy(ing_pipeline *p);
void ing_pipeline_stats(ing_pipeline *p, struct ing_stats *st);
/* Consumer lag per assigned partition (high watermark minus the next offset routed), as of
 * the last second. Fills up to max pairs; returns how many. Any thread. */
size_t ing_pipeline_lag(ing_pipeline *p, int32_t *partitions, int64_t *lags, size_t max);
/* False while librdkafka reports all brokers down, or before partitions are assigned. */
bool ing_pipeline_broker_ok(ing_pipeline *p);
/* The shards, for their statistics and per-rule counters. Any thread. */
uint32_t ing_pipeline_nshards(const ing_pipeline *p);
struct cor_shard *ing_pipeline_shard(ing_pipeline *p, uint32_t i);

/* ---- the incident stage (incidents.c) --------------------------------------------- */

typedef struct ing_incidents ing_incidents;

struct ing_incidents_cfg {
    struct ing_kafka_cfg kafka;   /* brokers, group (the stage's group is GROUP.incidents) */
    const char *topic;            /* tenant-keyed alerts; default "alerts.tenant" */
    const char *out_topic;        /* default "incidents" (key: tenant) */
    struct sto_db *db;            /* incidents are stored here; may be NULL */
    FILE *incidents_jsonl;        /* NULL: none */
    int64_t window_us;            /* link window; 0: 24 h */
    int64_t prevalence_window_us; /* sightings count this long; 0: 7 days */
    int session_timeout_ms;
    /* Called on the stage's thread for every incident emitted (a Vigil__Incident). */
    void (*on_incident)(void *ctx, const struct ProtobufCMessage *incident);
    void *on_incident_ctx;
};

struct ing_incidents_stats {
    uint64_t alerts;    /* alerts grouped */
    uint64_t bad;       /* messages that were neither alerts nor sightings */
    uint64_t sightings; /* telemetry sightings applied to prevalence */
    uint64_t emitted;   /* incident states stored and emitted */
    uint64_t retired;   /* incident ids merged away */
    uint64_t old;       /* records re-read on an assignment but older than their window
                           (alerts: the link window; sightings: the prevalence window) */
};

int ing_incidents_new(const struct ing_incidents_cfg *cfg, ing_incidents **out, char *err,
                      size_t errlen);
int ing_incidents_start(ing_incidents *s, char *err, size_t errlen);
/* Flushes what changed, then stops the thread and leaves the group. */
void ing_incidents_stop(ing_incidents *s);
void ing_incidents_destroy(ing_incidents *s);
void ing_incidents_stats(ing_incidents *s, struct ing_incidents_stats *st);

#endif /* VG_INGEST_H */
