/*
 * storage_int.h - the inside of storage/: the sto_db struct, column family indexes and
 * the key codecs shared by storage.c, sto_block.c and sto_timeline.c. Tests may include it.
 *
 * THREAD SAFETY: the struct is set up by sto_open and torn down by sto_close on one thread;
 * in between its fields are read-only except the counters, which are relaxed atomics
 * (statistics only, nothing is ordered by them).
 */
#ifndef VG_STORAGE_INT_H
#define VG_STORAGE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <rocksdb/c.h>

#include "storage.h"

#define STO_MOD "storage"

/* Column family indexes; sto_cf_names[] lists them in the same order. */
enum sto_cf {
    STO_CF_DEFAULT = 0,
    STO_CF_TIMELINE,
    STO_CF_MACHINES,
    STO_CF_PROCESSES,
    STO_CF_ALERTS,
    STO_CF_ALERT_IDX,
    STO_CF_OUTBOX,
    STO_CF_INCIDENTS,
    STO_CF_OFFSETS,
    STO_CF_META,
    STO_CF_COUNT
};

extern const char *const sto_cf_names[STO_CF_COUNT];

/* Timeline key: day(4) | mkey(8) | first_ts biased(8) | first_seq(8); a merged block's key
 * is the first key of the run it replaced + STO_TL_MERGED_TAG (sto_merge.c). */
#define STO_TL_KEY_LEN    28
#define STO_TL_MKEY_LEN   29
#define STO_TL_MERGED_TAG 0x01
#define STO_TL_PREFIX_LEN 12 /* day | mkey */
/* Process key: mkey(8) | pid(4) | creation time biased(8). */
#define STO_PROC_KEY_LEN 20

/* A machine-day that a write touched (the background merge looks at these). */
struct sto_dm {
    uint32_t day;
    uint64_t mkey;
    int64_t from_ts; /* the earliest first_ts of the blocks written: a pass walks from there */
};

struct sto_db {
    rocksdb_t *rdb;
    rocksdb_column_family_handle_t *cf[STO_CF_COUNT]; /* NULL: absent (read-only, old DB) */
    rocksdb_options_t *dbopt;                         /* db-wide options */
    rocksdb_options_t *cfopt[STO_CF_COUNT];           /* per-CF options, kept until close */
    rocksdb_cache_t *cache;                           /* block cache shared by all CFs */
    rocksdb_readoptions_t *ropt;                      /* point reads; shared, read-only */
    rocksdb_writeoptions_t *wopt;                     /* WAL on, sync per sto_opts.sync */
    char *path;                                       /* data directory */
    char *secondary;      /* secondary instance directory, removed on close, or NULL */
    bool ro;              /* opened read-only (as a secondary) */
    int64_t retention_us; /* timeline retention */
    uint64_t corrupt;     /* corrupt blocks/records met by reads (relaxed atomic) */
    /* Writes that may overlap a merge's run serialise on wlock: sto_write, retention's
     * deletions, and a merge's check-and-replace. It also guards the fields below. */
    pthread_mutex_t wlock;
    bool wlock_ok;                    /* wlock initialised */
    pthread_cond_t merge_cond;        /* wakes the merge thread (with wlock) */
    bool merge_cond_ok;               /* merge_cond initialised */
    pthread_t merge_thread;           /* "vg-sto-merge" */
    bool merge_running;               /* the thread was started and not yet joined */
    bool merge_stop;                  /* asks the thread to end */
    int64_t merge_interval_ms;        /* time between two passes */
    struct sto_dm *dirty;             /* machine-days written since the last pass */
    size_t ndirty, capdirty;          /* entries, allocated entries */
    uint64_t dirty_dropped;           /* entries not recorded (list full or no memory) */
    struct sto_merge_stats merge_tot; /* the thread's totals */
};

/* Starts the background merge thread of a read-write database (sto_merge.c). */
int sto_merge_start(sto_db *db);
/* Stops and joins it; no-op when it was not started. */
void sto_merge_stop(sto_db *db);
/* Records the machine-days of a written batch for the next merge pass; wlock held. */
void sto_merge_note(sto_db *db, const struct sto_dm *dm, size_t n);

static inline void sto_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void sto_be64(uint8_t *p, uint64_t v)
{
    sto_be32(p, (uint32_t)(v >> 32));
    sto_be32(p + 4, (uint32_t)v);
}

static inline uint32_t sto_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t sto_rd64(const uint8_t *p)
{
    return (uint64_t)sto_rd32(p) << 32 | sto_rd32(p + 4);
}

/* Signed times are stored XOR 1<<63 so that negative values sort first. */
static inline uint64_t sto_bias(int64_t v)
{
    return (uint64_t)v ^ (UINT64_C(1) << 63);
}

static inline int64_t sto_unbias(uint64_t v)
{
    return (int64_t)(v ^ (UINT64_C(1) << 63));
}

static inline void sto_tl_key(uint8_t *k, uint32_t day, uint64_t mkey, int64_t first_ts,
                              uint64_t first_seq)
{
    sto_be32(k, day);
    sto_be64(k + 4, mkey);
    sto_be64(k + 12, sto_bias(first_ts));
    sto_be64(k + 20, first_seq);
}

/* Counts a corrupt block or record met by a read (statistics). */
static inline void sto_count_corrupt(sto_db *db)
{
    __atomic_fetch_add(&db->corrupt, 1, __ATOMIC_RELAXED);
}

/* Appends the serialized vigil.TelemetryBatch inside a stored block (the value itself when
 * bare, else its zstd frame decompressed) to *buf, which grows with vg_realloc (*used
 * bytes of *cap). The batch starts at the old *used. Returns 0, -VG_EDECODE (nothing
 * appended) or -VG_ENOMEM (sto_block.c). */
int sto_block_append(const void *val, size_t len, uint8_t **buf, size_t *used, size_t *cap);

/* Memory a thread keeps between two timeline iterators (sto_timeline.c), so that its pages
 * reuse memory already mapped: a page fault on fresh memory costs several microseconds on
 * a VM, and a day's blocks are megabytes. Freed with the thread's zstd contexts. */
struct sto_scratch {
    vg_arena *arena; /* NULL when nothing is kept */
    uint8_t *buf;    /* a day's blocks */
    size_t bufcap;   /* bytes */
    void *ent;       /* a day's event entries */
    size_t entcap;   /* entries */
    void *ahead;     /* a read-ahead helper parked idle between iterators, or NULL */
};

/* Ends a parked read-ahead helper's thread and frees it (sto_timeline.c). */
void sto_tl_ahead_retire(void *ah);

/* The calling thread's scratch, or NULL when out of memory (sto_block.c). */
struct sto_scratch *sto_scratch_get(void);

/* ---- the protobuf wire format, read without unpacking ---------------------------- */

/* Reads a base-128 varint; false when it runs past end or over 10 bytes. */
static inline bool sto_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    uint64_t r = 0;

    for (unsigned sh = 0; sh < 70 && q < end; sh += 7) {
        uint8_t b = *q++;

        r |= (uint64_t)(b & 0x7f) << (sh < 64 ? sh : 63);
        if (!(b & 0x80)) {
            *v = r;
            *p = q;
            return true;
        }
    }
    return false;
}

/* Skips one field's value of wire type wt. */
static inline bool sto_pb_skip(const uint8_t **p, const uint8_t *end, unsigned wt)
{
    uint64_t n;

    switch (wt) {
    case 0:
        return sto_pb_varint(p, end, &n);
    case 1:
        n = 8;
        break;
    case 2:
        if (!sto_pb_varint(p, end, &n))
            return false;
        break;
    case 5:
        n = 4;
        break;
    default:
        return false;
    }
    if (n > (uint64_t)(end - *p))
        return false;
    *p += n;
    return true;
}

/* Reads an event's seq (field 1) and ts_us (field 2) from its serialized bytes, as
 * protobuf would (absent: 0; repeated: the last). False when the bytes do not parse. */
static inline bool sto_pb_event_key(const uint8_t *e, const uint8_t *end, int64_t *ts,
                                    uint64_t *seq)
{
    uint64_t tag, v;

    *ts = 0;
    *seq = 0;
    while (e < end) {
        if (!sto_pb_varint(&e, end, &tag))
            return false;
        if (tag == (1 << 3) || tag == (2 << 3)) {
            if (!sto_pb_varint(&e, end, &v))
                return false;
            if (tag == (1 << 3))
                *seq = v;
            else
                *ts = (int64_t)v;
        } else if (!sto_pb_skip(&e, end, (unsigned)(tag & 7))) {
            return false;
        }
    }
    return true;
}

/* Field 8 of vigil.TelemetryBatch (events), length-delimited; field 7 (first_seq). */
#define STO_PB_TAG_EVENT     ((8u << 3) | 2)
#define STO_PB_TAG_FIRST_SEQ (7u << 3)

/* Copies a RocksDB error string into err (when given) and frees it. */
void sto_take_err(char *rerr, char *err, size_t errlen);

#endif /* VG_STORAGE_INT_H */
