/*
 * storage.h - vigil's RocksDB layout: timeline blocks, machines, processes, alerts,
 * the alert outbox, incidents and Kafka offsets, with retention by event-time day.
 *
 * Column families and keys (all integers big-endian, so keys sort by them):
 *   timeline   day(u32) | mkey(u64) | first_ts_us(i64 biased) | first_seq(u64)
 *              -> block: zstd of a serialized vigil.TelemetryBatch holding one machine's
 *                 events of that day, in arrival order
 *   machines   mkey(u64) -> vigil.MachineRecord
 *   processes  mkey(u64) | pid(u32) | creation_time_us(i64 biased) -> vigil.ProcessRecord
 *   alerts     alert id (string) -> vigil.Alert
 *   alert_idx  tenant_hash(u64) | last_event_us(i64 biased) | alert id -> empty
 *   outbox     alert id -> empty: written, not yet acknowledged by Kafka
 *   incidents  incident id -> vigil.Incident
 *   offsets    topic '\0' partition(u32) -> next offset to consume (i64, 8 bytes)
 *   meta       name -> value (schema version, ...)
 * "biased" = value XOR 1<<63, so negative times sort first.
 *
 * THREAD SAFETY: one sto_db is shared by all threads. Writes go through sto_wbatch, which
 * belongs to one thread; sto_write may be called from one writer thread at a time. Reads
 * (sto_get_*, iterators) may run on any thread concurrently with writes. sto_block_encode
 * and sto_block_decode may run on any thread (they keep per-thread zstd contexts). A
 * read-write database runs one thread of its own, "vg-sto-merge" (sto_tl_merge); sto_write,
 * retention's deletions and a merge's replace take one lock, so a merge never loses a block
 * written or dropped meanwhile. sto_tl_open_ahead uses a "vg-tl-ahead" thread per
 * iterator; at close it stays parked, idle, for the calling thread's next read-ahead
 * iterator, until sto_thread_cleanup or the calling thread's exit.
 */
#ifndef VG_STORAGE_H
#define VG_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.pb-c.h"
#include "storage.pb-c.h"
#include "telemetry.pb-c.h"
#include "vg.h"

typedef struct sto_db sto_db;
typedef struct sto_wbatch sto_wbatch;
typedef struct sto_tl_iter sto_tl_iter;

struct sto_opts {
    const char *path;      /* data directory; created if missing */
    bool read_only;        /* open as a secondary/read-only view (for investigation commands
                              while `vigil run` owns the directory) */
    bool sync;             /* fsync the WAL on every write (default false: the WAL is written
                              but not fsynced; Kafka re-delivers what a power loss drops) */
    size_t cache_bytes;    /* block cache; 0 = default (256 MiB) */
    int64_t retention_us;  /* 0 = default (183 days) */
    int merge_interval_ms; /* background merge of small timeline blocks (sto_tl_merge): a
                              storage thread merges the machine-days written since its last
                              pass this often; 0 = default (30 s), < 0 = no thread */
};

/* Opens or creates the database. Returns 0 and *out, or a negative vg_err with detail in
 * err. */
int sto_open(const struct sto_opts *o, sto_db **out, char *err, size_t errlen);
void sto_close(sto_db *db);

/* ---- blocks: encoded on shard threads, written by the writer ----------------------- */

/* Serializes and zstd-compresses a block (one machine's events of one day). *out is
 * vg_malloc'd and owned by the caller. Returns 0 or -VG_ENOMEM/-VG_EIO. */
int sto_block_encode(const Vigil__TelemetryBatch *block, uint8_t **out, size_t *outlen);
/* Decompresses and decodes a block with allocator alloc (NULL: protobuf-c's default).
 * Free with vigil__telemetry_batch__free_unpacked(b, alloc). */
int sto_block_decode(const void *val, size_t len, ProtobufCAllocator *alloc,
                     Vigil__TelemetryBatch **out);
/* Frees the calling thread's zstd contexts now rather than at thread exit (they are also
 * freed by a thread-exit destructor; the main thread may call this before exiting). */
void sto_thread_cleanup(void);

/* The day bucket of an event time. */
static inline uint32_t sto_day(int64_t ts_us)
{
    int64_t d = ts_us / VG_US_PER_DAY;

    if (ts_us < 0 && ts_us % VG_US_PER_DAY != 0)
        d--;
    return (uint32_t)(d < 0 ? 0 : d > UINT32_MAX ? UINT32_MAX : d);
}

/* ---- write batches ---------------------------------------------------------------- */

sto_wbatch *sto_wbatch_new(void);
/* Binds an empty batch to a database, so that timeline blocks are copied once, straight
 * into RocksDB's own batch, rather than staged first. A bound batch writes only to db. */
int sto_wbatch_bind(sto_wbatch *b, sto_db *db);
void sto_wbatch_destroy(sto_wbatch *b);
void sto_wbatch_clear(sto_wbatch *b);
size_t sto_wbatch_bytes(const sto_wbatch *b);

/* Each put copies its arguments into the batch. */
/* A block's key day is sto_day(first_ts_us), and the timeline looks for an event only under
 * the day of its own time: every event of a block must fall on that day (split blocks at
 * midnight, by event time, and put late events in a block of their own day). */
void sto_put_block(sto_wbatch *b, uint64_t mkey, int64_t first_ts_us, uint64_t first_seq,
                   const void *block, size_t len);
void sto_put_machine(sto_wbatch *b, uint64_t mkey, const Vigil__MachineRecord *m);
void sto_put_process(sto_wbatch *b, uint64_t mkey, const Vigil__ProcessRecord *p);
/* Puts the alert, its tenant index entry and (when outbox) an outbox entry. */
void sto_put_alert(sto_wbatch *b, const Vigil__Alert *a, bool outbox);
void sto_put_incident(sto_wbatch *b, const Vigil__Incident *inc);
void sto_put_offset(sto_wbatch *b, const char *topic, int32_t partition, int64_t next_offset);
void sto_del_outbox(sto_wbatch *b, const char *alert_id);
void sto_del_incident(sto_wbatch *b, const char *incident_id);
/* Like sto_put_alert for an alert that replaces old (the stored version of the same id, or
 * NULL): also deletes old's tenant index entry when its tenant or last event time changed,
 * so that sto_scan_alerts finds the alert once, under its new time. */
void sto_put_alert_replacing(sto_wbatch *b, const Vigil__Alert *a, const Vigil__Alert *old,
                             bool outbox);

/* Writes the batch atomically (WAL on). Returns 0 or -VG_EIO with detail in err. */
int sto_write(sto_db *db, sto_wbatch *b, char *err, size_t errlen);

/* ---- point reads ------------------------------------------------------------------ */

/* Each returns 0 and a message to free with its __free_unpacked(m, NULL), -VG_ENOENT, or
 * -VG_EIO. */
int sto_get_machine(sto_db *db, uint64_t mkey, Vigil__MachineRecord **out);
int sto_get_process(sto_db *db, uint64_t mkey, uint32_t pid, int64_t ctime_us,
                    Vigil__ProcessRecord **out);
int sto_get_alert(sto_db *db, const char *id, Vigil__Alert **out);
int sto_get_incident(sto_db *db, const char *id, Vigil__Incident **out);
/* True when the alert id is stored. */
bool sto_has_alert(sto_db *db, const char *id);
/* Returns 0 and *next_offset, or -VG_ENOENT. */
int sto_get_offset(sto_db *db, const char *topic, int32_t partition, int64_t *next_offset);

/* Machine ownership: a machine belongs to the tenant it first reported under (meta CF,
 * key "owner:" machine id -> tenant id). sto_get_owner returns 0 and the tenant,
 * -VG_ENOENT, -VG_EINVAL (id too long) or -VG_EIO. */
void sto_put_owner(sto_wbatch *b, const char *machine_id, const char *tenant);
int sto_get_owner(sto_db *db, const char *machine_id, char *tenant, size_t tenantlen);

/* ---- scans ------------------------------------------------------------------------ */

/* Calls fn for every process of a machine (for rebuilding a process table); fn returns
 * false to stop. Records are freed after fn returns. */
int sto_scan_processes(sto_db *db, uint64_t mkey,
                       bool (*fn)(void *ctx, const Vigil__ProcessRecord *p), void *ctx);
/* Calls fn for each alert id in the outbox. */
int sto_scan_outbox(sto_db *db, bool (*fn)(void *ctx, const char *id), void *ctx);
/* Calls fn for every machine record. */
int sto_scan_machines(sto_db *db,
                      bool (*fn)(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m),
                      void *ctx);
/* Calls fn for the tenant's alerts whose last event time is in [from, to], newest first. */
int sto_scan_alerts(sto_db *db, const char *tenant, int64_t from_us, int64_t to_us,
                    bool (*fn)(void *ctx, const Vigil__Alert *a), void *ctx);

/*
 * Timeline: a machine's events with from_us <= ts_us <= to_us, in time order (ts, seq),
 * ascending or descending. Blocks are decoded a day at a time; each event returned is
 * valid until the next call to sto_tl_next or sto_tl_close.
 */
int sto_tl_open(sto_db *db, uint64_t mkey, int64_t from_us, int64_t to_us, bool descending,
                sto_tl_iter **out);
/* Like sto_tl_open, but a helper thread reads, sorts and unpacks ahead while the caller
 * works on the events (long scans such as a replay; a page is faster without the thread).
 * Events are handed out in the same order; each is valid until the next sto_tl_next. The
 * helper is the one the calling thread's previous read-ahead iterator parked, if any. */
int sto_tl_open_ahead(sto_db *db, uint64_t mkey, int64_t from_us, int64_t to_us, bool descending,
                      sto_tl_iter **out);
/* Returns 1 with *ev set, 0 at the end, or a negative vg_err. */
int sto_tl_next(sto_tl_iter *it, const Vigil__Event **ev);
void sto_tl_close(sto_tl_iter *it);

/*
 * Merging small blocks. The live shard seals a machine's block every few seconds (that
 * bounds the Kafka commit lag), so a quiet machine leaves thousands of tiny blocks a day
 * and every read decodes them one by one. A merge replaces a run of adjacent small blocks
 * of one machine-day by one block of the same events, sorted by (ts, seq) and without
 * repeats, in ONE write batch (the put and the deletes), so a reader sees either the old
 * blocks or the merged one. A merged block's key is the run's first key with a 0x01 byte
 * appended (29 bytes): the writer's keys are 28 bytes, so a re-delivered block can never
 * overwrite a merged one; it lands beside it and reads drop the repeats. The run is read
 * again under the write lock before it is replaced, so a block written (or dropped by
 * retention) meanwhile is never lost: that run is left for the next pass.
 */
struct sto_merge_stats {
    uint64_t runs;      /* runs replaced by a merged block */
    uint64_t blocks_in; /* blocks those runs held */
    uint64_t events;    /* events written into merged blocks */
    uint64_t conflicts; /* runs left alone because a write changed them meanwhile */
    uint64_t corrupt;   /* blocks that did not decode (left as they are) */
};

/* Merges the small blocks of every machine on days [from_day, to_day]. Any thread, beside
 * the writer and readers; st (may be NULL) is added to. Returns 0 or a negative vg_err. */
int sto_tl_merge(sto_db *db, uint32_t from_day, uint32_t to_day, struct sto_merge_stats *st);
/* The same for one machine's blocks of one day. */
int sto_tl_merge_machine_day(sto_db *db, uint32_t day, uint64_t mkey, struct sto_merge_stats *st);
/* Totals of the background merge thread since open (zeros when it is off). */
void sto_merge_totals(sto_db *db, struct sto_merge_stats *st);

/* ---- retention and size ----------------------------------------------------------- */

/* Drops every timeline day older than now_us - retention with one range deletion and
 * compacts the range so the space is given back. Returns the number of days dropped
 * (>= 0) or a negative vg_err. */
int sto_retention_run(sto_db *db, int64_t now_us);
/* Bytes of the database's live SST and WAL files (RocksDB's own accounting). */
uint64_t sto_disk_bytes(sto_db *db);

/* What the open database holds in memory, from RocksDB's own accounting: the block cache's
 * charge (blocks, and index and filter blocks, which are cached), the memtables of every
 * column family (active, immutable and pinned), and the table readers outside the cache. */
struct sto_mem {
    uint64_t block_cache, memtables, table_readers;
};
void sto_mem_usage(sto_db *db, struct sto_mem *m);
/* Flushes memtables and compacts everything (benchmarks measure bytes after this). */
int sto_compact_all(sto_db *db);
/* RocksDB property text for a column family, vg_malloc'd, or NULL. */
char *sto_property(sto_db *db, const char *cf, const char *prop);
/* Corrupt timeline blocks and records skipped by reads since open. */
uint64_t sto_corrupt_count(sto_db *db);
/* Read-only (secondary) view: replays what the primary wrote since the last catch-up.
 * Returns 0, -VG_EINVAL on a read-write database, or -VG_EIO. */
int sto_catch_up(sto_db *db);

#endif /* VG_STORAGE_H */
