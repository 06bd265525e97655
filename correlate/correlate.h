/*
 * correlate.h - the sharded correlator. Each shard is one thread that owns its machines
 * outright: their dedup state, process table, open timeline blocks and alert state.
 * Nothing locks shard state; other threads reach a shard only through its inbound ring
 * (ingest -> shard) and read its results from its outbound ring (shard -> writer), both
 * Concurrency Kit single-producer/single-consumer rings.
 *
 * Barriers: the producer of the inbound ring sends a barrier through every shard at a
 * fixed interval. A shard answers a barrier with one unit on its outbound ring holding
 * everything it sealed since the previous barrier, plus, per Kafka partition, the lowest
 * offset whose events still sit in an open (unsealed) block. The writer combines the
 * answers of all shards into the offsets that are safe to store and commit.
 */
#ifndef VG_CORRELATE_H
#define VG_CORRELATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.pb-c.h"
#include "rules.h"
#include "storage.h"
#include "storage.pb-c.h"
#include "telemetry.pb-c.h"
#include "vg.h"

typedef struct cor_shard cor_shard;

/* One partition's position. */
struct cor_offset {
    int32_t partition;
    int64_t offset;
};

/* What a barrier asks the shards to snapshot for the changelog (state.h). */
enum cor_snap_mode {
    COR_SNAP_NONE = 0,
    COR_SNAP_DIRTY, /* a checkpoint: machines whose state changed since the last one */
    COR_SNAP_ALL,   /* every machine with state (after a snapshot failed to be delivered) */
};

/* A barrier, shared by all shards (reference counted; the last shard to drop it frees
 * it through cor_barrier_unref). */
struct cor_barrier {
    uint64_t id;
    int refs;         /* atomic; one per shard plus the writer */
    bool seal_all;    /* seal every open block (shutdown, revocation) */
    uint8_t snapshot; /* enum cor_snap_mode; set before the barrier is pushed */
    size_t nparts;
    struct cor_offset *dispatched; /* per partition: highest offset routed before it */
};

struct cor_barrier *cor_barrier_new(uint64_t id, bool seal_all, const struct cor_offset *parts,
                                    size_t nparts, int refs);
void cor_barrier_unref(struct cor_barrier *b);

/* An item on a shard's inbound ring; ownership moves to the shard with the enqueue and
 * back to the ingest side through cfg.release. */
struct cor_in {
    bool is_barrier;
    struct cor_barrier *barrier;        /* is_barrier */
    const Vigil__TelemetryBatch *batch; /* decoded, in arena */
    const uint8_t *const *raw;          /* serialized events, parallel to batch->events */
    const size_t *raw_len;
    uint64_t mkey;     /* vg_machine_key(tenant, machine) */
    int32_t partition; /* -1 when not from Kafka */
    int64_t offset;
    uint64_t recv_ns; /* vg_mono_ns() at consumption, for latency */
    void *opaque;     /* owner's (the Kafka message, the arena...) */
    /* Not NULL: no batch, a changelog snapshot to restore before the machine's telemetry
     * (partition: the one it moves with). Borrowed; the owner frees it after release. */
    const Vigil__MachineState *restore;
};

/* A sealed timeline block: a serialized TelemetryBatch. */
struct cor_block {
    uint64_t mkey;
    int64_t first_ts_us;
    uint64_t first_seq;
    uint8_t *data; /* vg_malloc'd */
    size_t len;
    uint32_t nevents;
};

/* An alert to store and, when is_new, to emit. */
struct cor_alert_out {
    Vigil__Alert *alert; /* in the unit's arena */
    bool is_new;
    uint64_t recv_ns; /* when the event that made it was consumed */
};

/* A changelog record: one machine's snapshot, or a tombstone (val NULL). */
struct cor_snap_out {
    int32_t partition; /* the machine's telemetry partition, hence its changelog partition */
    char *key;         /* vg_malloc'd; cor_snap_key */
    size_t keylen;
    uint8_t *val; /* vg_malloc'd serialized MachineState; NULL: tombstone */
    size_t len;
};

/* What a shard hands the writer at each barrier. Owned by the writer once dequeued;
 * freed with cor_unit_free. */
struct cor_unit {
    uint32_t shard;
    vg_arena *arena;
    struct cor_block *blocks;
    size_t nblocks, capblocks;
    Vigil__MachineRecord **machines; /* records of machines whose blocks sealed */
    size_t nmachines, capmachines;
    struct cor_alert_out *alerts;
    size_t nalerts, capalerts;
    Vigil__Sightings **sightings; /* per machine: entities first seen (sightings.h); arena */
    size_t nsightings;
    struct cor_barrier *barrier; /* the barrier this unit answers (a reference) */
    struct cor_offset *pending;  /* per partition: lowest offset in an open block */
    size_t npending;
    uint64_t events;            /* events accepted since the previous unit */
    struct cor_snap_out *snaps; /* changelog records (snapshot barriers only) */
    size_t nsnaps, capsnaps;
};

void cor_unit_free(struct cor_unit *u);

struct cor_shard_cfg {
    uint32_t index;
    uint32_t nshards;
    cor_ruleset *rules;        /* shared; the shard takes a reference */
    struct cor_corrset *corr;  /* correlation rules (corr.h); shared, referenced; NULL ok */
    int64_t corr_lateness_us;  /* how late an event may be and still correlate in order;
                                  0: default (5 minutes); negative: none */
    sto_db *db;                /* for reading machine records and alerts */
    unsigned in_ring_size;     /* power of two; default 4096 */
    unsigned out_ring_size;    /* power of two; default 64 */
    uint32_t block_max_events; /* default 256 */
    size_t block_max_bytes;    /* default 64 KiB */
    int64_t block_max_age_us;  /* wall time a block stays open; default 5 s */
    int64_t proc_window_us;    /* exited processes kept this long; default 1 h */
    /* Gives an input item back to its owner; called on the shard thread. */
    void (*release)(void *ctx, struct cor_in *in);
    /* Rejects a batch (dead letter) with a reason; called on the shard thread, then
     * release follows. */
    void (*reject)(void *ctx, struct cor_in *in, const char *reason);
    void *ctx;
    /* Snapshot machines at snapshot barriers (a changelog is kept); a seal-all barrier
     * snapshots before it closes the correlation windows, then snapshots nothing more until
     * telemetry or a restore comes (the partitions may belong to another instance now). */
    bool snapshots;
    /* Report the entities each machine shows (sightings.h) in the units, for the incident
     * stage's prevalence: the pipeline does; a replay only when it groups incidents. */
    bool sightings;
};

struct cor_shard_stats {
    uint64_t batches;
    uint64_t events;     /* accepted */
    uint64_t duplicates; /* dropped as re-deliveries */
    uint64_t rejected;   /* batches rejected */
    uint64_t alerts_new;
    uint64_t alerts_updated;
    uint64_t rule_hits;
    uint64_t blocks_sealed;
    uint64_t machines;        /* tracked now */
    uint64_t processes;       /* tracked now */
    uint64_t proctab_bytes;   /* heap bytes of the process table (nodes, strings, indexes) */
    uint64_t in_depth;        /* items waiting on the inbound ring */
    uint64_t corr_late;       /* base-rule matches too late to correlate */
    uint64_t corr_pending;    /* matches waiting in correlation reorder buffers */
    uint64_t snapshots;       /* changelog snapshots taken */
    uint64_t tombstones;      /* changelog tombstones (a machine's state expired) */
    uint64_t snap_errors;     /* snapshots that could not be taken (too big, no memory) */
    uint64_t restored;        /* snapshots restored */
    uint64_t restore_skipped; /* entries of restored snapshots not restored */
};

int cor_shard_new(const struct cor_shard_cfg *cfg, cor_shard **out);
/* Starts the shard thread "vg-shard-N". */
int cor_shard_start(cor_shard *s);
/* Stops after the inbound ring is drained; joins the thread. */
void cor_shard_stop(cor_shard *s);
void cor_shard_destroy(cor_shard *s);

/* Producer side (one thread): returns 0, or -VG_EFULL when the ring is full. */
int cor_shard_push(cor_shard *s, struct cor_in *in);
/* Consumer side of the outbound ring (one thread): a unit or NULL. */
struct cor_unit *cor_shard_pop_unit(cor_shard *s);
void cor_shard_get_stats(cor_shard *s, struct cor_shard_stats *st);
/* Matches and new alerts of the rule with this index (cor_rule_info.index) so far; any
 * thread. */
void cor_shard_rule_counts(cor_shard *s, uint32_t index, uint64_t *hits, uint64_t *alerts);
/* CPU time the rule with this index cost this shard, in ns (sampled). Any thread. */
uint64_t cor_shard_rule_ns(cor_shard *s, uint32_t index);

/* Runs one inbound item on the calling thread, for in-process use without threads
 * (replay, benchmarks, tests): the shard must not be started. */
void cor_shard_process(cor_shard *s, struct cor_in *in);

/* Alert helpers shared with replay and the command. */
const char *cor_severity_name(Vigil__Severity s); /* "Informational", "Low", ... */
const char *cor_category_name(Vigil__Category c); /* "Execution", ... */
/* The alert as one JSON line (no newline), malloc'd; NULL on allocation failure. */
char *cor_alert_to_json(const Vigil__Alert *a);

#endif /* VG_CORRELATE_H */
