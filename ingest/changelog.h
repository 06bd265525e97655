/*
 * changelog.h - the compacted changelog topic that moves correlator state with its Kafka
 * partition (state.h): topic set-up, restoring a partition's snapshots, producing records.
 *
 * The topic is "<group>.changelog" (one per consumer group, as Kafka Streams scopes its
 * changelogs by application id), cleanup.policy=compact, with as many partitions as the
 * telemetry topic: a machine's snapshots go to the partition its telemetry comes from.
 *
 * THREAD MODEL: ing_changelog_new and ing_changelog_restore run on the pipeline's consumer
 * thread (the restore inside the rebalance callback); ing_changelog_put on the writer thread;
 * the statistics are relaxed atomics, read by anyone.
 */
#ifndef VG_CHANGELOG_H
#define VG_CHANGELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "correlate.h"
#include "ingest.h"
#include "storage.pb-c.h"

typedef struct ing_changelog ing_changelog;

struct ing_changelog_stats {
    uint64_t produced;   /* snapshots produced */
    uint64_t tombstones; /* tombstones produced */
    uint64_t failed;     /* records whose delivery failed (a full snapshot follows) */
    uint64_t read;       /* records read while restoring */
    uint64_t restored;   /* snapshots handed to the shards (the newest of each key) */
    uint64_t bad;        /* records that did not decode: counted, logged, skipped */
    uint64_t restore_ms; /* time spent restoring, all partitions */
    uint64_t queue_full; /* records that waited for room in the producer's queue */
    bool enabled;        /* false: the topic is missing and could not be created */
};

/*
 * Sets the changelog up for group over telemetry topic `topic`, through the consumer rk
 * (metadata) and a restore reader of its own. A missing topic is created (compacted, as many
 * partitions as the telemetry topic) where the cluster allows it; when it cannot be (the
 * embedded broker has no CreateTopics) or its partition count differs, the changelog is
 * disabled, loudly: state then does not move and is rebuilt from the own timeline.
 * Returns 0 (enabled or not) or -VG_ENOMEM / -VG_EKAFKA with detail in err.
 */
int ing_changelog_new(const struct ing_kafka_cfg *cfg, const char *brokers, const char *group,
                      const char *topic, void *rk, ing_changelog **out, char *err, size_t errlen);
void ing_changelog_destroy(ing_changelog *c);
bool ing_changelog_enabled(const ing_changelog *c);
const char *ing_changelog_topic(const ing_changelog *c);

/*
 * Reads changelog partition `partition` from its beginning to its high watermark and calls
 * fn with the newest snapshot of each key (tombstones delete). fn takes ownership of ms
 * (cor_snap_state_free). Bad records are counted, logged and skipped. Returns the number of
 * snapshots handed over, or a negative vg_err when the partition could not be read (then
 * nothing is handed over).
 */
int ing_changelog_restore(ing_changelog *c, int32_t partition,
                          void (*fn)(void *ctx, int32_t partition, Vigil__MachineState *ms),
                          void *ctx);

/* Produces one record (a tombstone when o->val is NULL) with delivery report opaque d.
 * Blocks while the producer's queue is full, until the producer's deadline if one is set
 * (ing_producer_set_deadline; then the record counts as failed). Returns 0 or -VG_EKAFKA. */
int ing_changelog_put(ing_changelog *c, ing_producer *prod, const struct cor_snap_out *o, void *d);
/* A delivery of a record failed (called from the delivery report). */
void ing_changelog_failed(ing_changelog *c);

/* The embedded broker has no CreateTopics: creates group's changelog topic on it (partitions:
 * as the telemetry topic's). Returns 0 or -VG_EKAFKA. */
int ing_changelog_mock_create(ing_mock *m, const char *group, int partitions);

void ing_changelog_get_stats(const ing_changelog *c, struct ing_changelog_stats *st);
/* The pipeline's changelog statistics (pipeline.c). */
void ing_pipeline_changelog_stats(ing_pipeline *p, struct ing_changelog_stats *st);

#endif /* VG_CHANGELOG_H */
