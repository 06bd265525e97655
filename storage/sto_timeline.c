/*
 * sto_timeline.c - a machine's timeline between two times, one day at a time.
 *
 * Timeline keys start with the day, so one machine's blocks of a day are contiguous
 * (day | mkey | first_ts | first_seq) but its days are not. The iterator finds the next
 * day that holds the machine's blocks with a seek (days without data cost one seek, and
 * the seek jumps straight over runs of days that hold nobody's data), decodes every block
 * of that day into an arena, keeps the events inside [from, to], sorts them by (ts, seq),
 * drops re-delivered duplicates, and hands them out one by one.
 *
 * THREAD SAFETY: an iterator belongs to one thread; many iterators may run at once, and
 * concurrently with writes (each iterator reads one RocksDB snapshot, taken at open).
 */
#include <stdlib.h>

#include "storage_int.h"

#define STO_TL_ARENA_CHUNK (256 * 1024)

struct sto_tl_iter {
    sto_db *db;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *ri;
    uint64_t mkey;
    int64_t from, to;        /* inclusive event-time bounds */
    uint32_t day;            /* next day to look at */
    uint32_t first_day;      /* sto_day(from) */
    uint32_t last_day;       /* sto_day(to) */
    bool desc;               /* newest first */
    bool done;               /* no days left */
    vg_arena *arena;         /* the current day's decoded blocks */
    const Vigil__Event **ev; /* the current day's events, in yield order */
    size_t nev, cap, pos;
};

static int sto_tl_next_day(sto_tl_iter *it);
static int sto_tl_load_day(sto_tl_iter *it, uint32_t day);
static int sto_tl_push(sto_tl_iter *it, const Vigil__Event *e);
static int sto_tl_cmp_asc(const void *a, const void *b);
static int sto_tl_cmp_desc(const void *a, const void *b);
static int sto_tl_iter_err(sto_tl_iter *it);

int sto_tl_open(sto_db *db, uint64_t mkey, int64_t from_us, int64_t to_us, bool descending,
                sto_tl_iter **out)
{
    sto_tl_iter *it;

    *out = NULL;
    it = vg_calloc(1, sizeof(*it));
    if (it == NULL)
        return -VG_ENOMEM;
    it->db = db;
    it->mkey = mkey;
    it->from = from_us;
    it->to = to_us;
    it->desc = descending;
    it->first_day = sto_day(from_us);
    it->last_day = sto_day(to_us);
    it->day = descending ? it->last_day : it->first_day;
    it->done = from_us > to_us || db->cf[STO_CF_TIMELINE] == NULL;
    if (!it->done) {
        it->arena = vg_arena_new(STO_TL_ARENA_CHUNK);
        it->ro = rocksdb_readoptions_create();
        /* A timeline query reads months of cold blocks once; do not evict hot ones. */
        rocksdb_readoptions_set_fill_cache(it->ro, 0);
        it->ri = rocksdb_create_iterator_cf(db->rdb, it->ro, db->cf[STO_CF_TIMELINE]);
        if (it->arena == NULL || it->ri == NULL) {
            sto_tl_close(it);
            return -VG_ENOMEM;
        }
    }
    *out = it;
    return 0;
}

int sto_tl_next(sto_tl_iter *it, const Vigil__Event **ev)
{
    int rc;

    *ev = NULL;
    while (it->pos >= it->nev) {
        if (it->done)
            return 0;
        if ((rc = sto_tl_next_day(it)) < 0)
            return rc;
    }
    *ev = it->ev[it->pos++];
    return 1;
}

void sto_tl_close(sto_tl_iter *it)
{
    if (it == NULL)
        return;
    if (it->ri != NULL)
        rocksdb_iter_destroy(it->ri);
    if (it->ro != NULL)
        rocksdb_readoptions_destroy(it->ro);
    vg_arena_destroy(it->arena);
    vg_free(it->ev);
    vg_free(it);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Finds the next day (in the iterator's direction) holding the machine's blocks and
 * loads it; sets done when there is none. Returns 0 or a negative vg_err. */
static int sto_tl_next_day(sto_tl_iter *it)
{
    uint8_t k[STO_TL_KEY_LEN];

    it->nev = it->pos = 0;
    while (!it->done) {
        size_t klen;
        const uint8_t *rk;
        uint32_t kday;
        uint64_t kmkey;

        if (it->desc) {
            if (it->day < it->first_day)
                break;
            /* The last key of (day, mkey), or the one before it. */
            sto_be32(k, it->day);
            sto_be64(k + 4, it->mkey);
            memset(k + STO_TL_PREFIX_LEN, 0xff, STO_TL_KEY_LEN - STO_TL_PREFIX_LEN);
            rocksdb_iter_seek_for_prev(it->ri, (const char *)k, sizeof(k));
        } else {
            if (it->day > it->last_day)
                break;
            sto_be32(k, it->day);
            sto_be64(k + 4, it->mkey);
            rocksdb_iter_seek(it->ri, (const char *)k, STO_TL_PREFIX_LEN);
        }
        if (!rocksdb_iter_valid(it->ri))
            break;
        rk = (const uint8_t *)rocksdb_iter_key(it->ri, &klen);
        if (klen < STO_TL_PREFIX_LEN) {
            sto_count_corrupt(it->db);
            break;
        }
        kday = sto_rd32(rk);
        kmkey = sto_rd64(rk + 4);
        if (kday == it->day && kmkey == it->mkey) {
            uint32_t day = it->day;
            int rc;

            if (it->desc ? day == 0 : day == UINT32_MAX)
                it->done = true;
            else
                it->day = it->desc ? day - 1 : day + 1;
            if ((rc = sto_tl_load_day(it, day)) < 0)
                return rc;
            if (it->nev > 0)
                return 0;
        } else if (kday != it->day) {
            it->day = kday; /* jump over days that hold no data at all */
        } else if (it->desc ? it->day == 0 : it->day == UINT32_MAX) {
            break;
        } else {
            it->day = it->desc ? it->day - 1 : it->day + 1; /* other machines only */
        }
    }
    it->done = true;
    return sto_tl_iter_err(it);
}

/* Decodes every block of (day, mkey) and keeps the events within [from, to], sorted. */
static int sto_tl_load_day(sto_tl_iter *it, uint32_t day)
{
    ProtobufCAllocator alloc;
    uint8_t prefix[STO_TL_PREFIX_LEN];
    size_t w = 0;
    int rc;

    vg_arena_reset(it->arena);
    vg_arena_pb_allocator(it->arena, &alloc);
    sto_be32(prefix, day);
    sto_be64(prefix + 4, it->mkey);
    for (rocksdb_iter_seek(it->ri, (const char *)prefix, sizeof(prefix));
         rocksdb_iter_valid(it->ri); rocksdb_iter_next(it->ri)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it->ri, &klen);
        const char *v;
        Vigil__TelemetryBatch *b;

        if (klen < STO_TL_PREFIX_LEN || memcmp(k, prefix, sizeof(prefix)) != 0)
            break;
        /* No early stop on the key's first_ts: events of a block are in arrival order,
         * so a block that starts after `to` may still hold earlier events. */
        v = rocksdb_iter_value(it->ri, &vlen);
        rc = sto_block_decode(v, vlen, &alloc, &b);
        if (rc == -VG_ENOMEM)
            return rc;
        if (rc != 0) {
            sto_count_corrupt(it->db);
            vg_log(VG_LOG_WARN, STO_MOD, "corrupt timeline block (day %u, machine %016llx)", day,
                   (unsigned long long)it->mkey);
            continue;
        }
        for (size_t i = 0; i < b->n_events; i++) {
            const Vigil__Event *e = b->events[i];

            if (e->ts_us >= it->from && e->ts_us <= it->to && (rc = sto_tl_push(it, e)) < 0)
                return rc;
        }
    }
    if (it->nev > 1)
        qsort(it->ev, it->nev, sizeof(*it->ev), it->desc ? sto_tl_cmp_desc : sto_tl_cmp_asc);
    /* A block re-delivered in other pieces repeats events: keep one of each (ts, seq). */
    for (size_t r = 0; r < it->nev; r++)
        if (w == 0 || it->ev[r]->seq != it->ev[w - 1]->seq ||
            it->ev[r]->ts_us != it->ev[w - 1]->ts_us)
            it->ev[w++] = it->ev[r];
    it->nev = w;
    return sto_tl_iter_err(it);
}

static int sto_tl_push(sto_tl_iter *it, const Vigil__Event *e)
{
    if (it->nev == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 1024;
        const Vigil__Event **ev = vg_realloc(it->ev, cap * sizeof(*ev));

        if (ev == NULL)
            return -VG_ENOMEM;
        it->ev = ev;
        it->cap = cap;
    }
    it->ev[it->nev++] = e;
    return 0;
}

static int sto_tl_cmp_asc(const void *a, const void *b)
{
    const Vigil__Event *x = *(const Vigil__Event *const *)a;
    const Vigil__Event *y = *(const Vigil__Event *const *)b;

    if (x->ts_us != y->ts_us)
        return x->ts_us < y->ts_us ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int sto_tl_cmp_desc(const void *a, const void *b)
{
    return sto_tl_cmp_asc(b, a);
}

static int sto_tl_iter_err(sto_tl_iter *it)
{
    char *rerr = NULL;

    rocksdb_iter_get_error(it->ri, &rerr);
    if (rerr == NULL)
        return 0;
    vg_log(VG_LOG_ERROR, STO_MOD, "timeline scan: %s", rerr);
    rocksdb_free(rerr);
    it->done = true;
    return -VG_EIO;
}
