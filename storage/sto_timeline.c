/*
 * sto_timeline.c - a machine's timeline between two times, one day at a time.
 *
 * Timeline keys start with the day, so one machine's blocks of a day are contiguous
 * (day | mkey | first_ts | first_seq) but its days are not. The iterator finds the next
 * day that holds the machine's blocks with a seek (days without data cost one seek, and
 * the seek jumps straight over runs of days that hold nobody's data) and reads that day's
 * blocks from where the seek landed. It does not decode them: it walks each serialized
 * batch's wire format for every event's (ts, seq) and byte range (a few nanoseconds an
 * event), keeps the events inside [from, to], sorts them by (ts, seq), drops re-delivered
 * duplicates, and unpacks an event only when it is handed out (vg_event_unpack: one pass
 * into the arena). A page of 1,000 events thus unpacks 1,000 events, not the whole day.
 *
 * sto_tl_open_ahead puts the reading on a helper thread ("vg-tl-ahead"): it walks the days
 * and unpacks events into slots of STO_AHEAD_EVENTS, up to STO_AHEAD_SLOTS ahead, while
 * the caller's thread takes them (a replay evaluates rules on one core while the other
 * reads). A slot is handed back when the caller moves past its last event. At close the
 * helper is parked in the caller thread's scratch rather than ended, and the thread's next
 * read-ahead iterator gives it its next job: a replay opens one for every machine, and a
 * fresh thread each time faulted its memory (slots, RocksDB's block buffers) in anew.
 *
 * THREAD SAFETY: an iterator belongs to one thread; many iterators may run at once, and
 * concurrently with writes (each iterator reads one RocksDB snapshot, taken at open). An
 * ahead iterator's helper thread owns the inner iterator; the two threads share only the
 * slots, under ah->lock.
 */
#include <pthread.h>
#include <stdlib.h>

#include "evdec.h"
#include "storage_int.h"

#define STO_TL_ARENA_CHUNK (1024 * 1024)
/* A thread keeps an iterator's buffers for the next one up to this size each. */
#define STO_TL_KEEP_BYTES (32u << 20)

/* One stored event of the current day, not yet unpacked. */
struct sto_tl_ent {
    int64_t ts;
    uint64_t seq;
    size_t off; /* its serialized bytes: buf + off */
    size_t len;
};

#define STO_AHEAD_SLOTS  3
#define STO_AHEAD_EVENTS 2048

/* Events unpacked ahead by the helper thread. */
struct sto_tl_slot {
    vg_arena *arena;          /* the events' memory */
    ProtobufCAllocator alloc; /* draws from arena */
    const Vigil__Event **ev;  /* in yield order */
    size_t n;                 /* events in ev (room for STO_AHEAD_EVENTS) */
    bool end;                 /* the last slot: rc follows the events */
    int rc;                   /* 0 or a negative vg_err, when end */
};

struct sto_tl_ahead {
    sto_tl_iter *inner; /* walked by the helper thread only */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a slot was filled or handed back, or stop */
    struct sto_tl_slot slot[STO_AHEAD_SLOTS];
    uint64_t filled;   /* slots filled so far (under lock) */
    uint64_t released; /* slots handed back so far (under lock) */
    bool stop;         /* close asks the helper to end its job (under lock) */
    bool quit;         /* the helper is to end (under lock) */
    uint64_t job;      /* jobs given to the helper (under lock) */
    uint64_t job_done; /* jobs the helper has finished (under lock) */
    bool holding;      /* the caller's thread holds slot[released % SLOTS] */
    size_t pos;        /* next event of the held slot (caller's thread) */
};

struct sto_tl_iter {
    sto_db *db;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *ri;
    uint64_t mkey;
    int64_t from, to;         /* inclusive event-time bounds */
    uint32_t day;             /* next day to look at */
    uint32_t first_day;       /* sto_day(from) */
    uint32_t last_day;        /* sto_day(to) */
    bool desc;                /* newest first */
    bool done;                /* no days left */
    vg_arena *arena;          /* the events handed out (reset once it has grown) */
    ProtobufCAllocator alloc; /* draws from arena */
    uint8_t *buf;             /* the current day's blocks, serialized (kept across days) */
    size_t used, bufcap;      /* bytes in buf, allocated */
    struct sto_tl_ent *ent;   /* the current day's events, ascending */
    size_t nev, cap, pos;     /* entries, allocated, handed out */
    struct sto_tl_ahead *ah;  /* sto_tl_open_ahead: the helper and its slots, else NULL */
};

static int sto_tl_next_day(sto_tl_iter *it);
static int sto_tl_load_day(sto_tl_iter *it, uint32_t day);
static int sto_tl_index_block(sto_tl_iter *it, size_t off, bool *sorted);
static int sto_tl_cmp(const void *a, const void *b);
static int sto_tl_iter_err(sto_tl_iter *it);
static int sto_tl_next_raw(sto_tl_iter *it, const uint8_t **p, size_t *len);
static int sto_tl_ahead_next(struct sto_tl_ahead *ah, const Vigil__Event **ev);
static void *sto_tl_ahead_main(void *arg);
static void sto_tl_ahead_free(struct sto_tl_ahead *ah);
static void sto_tl_ahead_fill(struct sto_tl_ahead *ah);
static int sto_tl_ahead_new(struct sto_tl_ahead **out);

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
        struct sto_scratch *sc = sto_scratch_get();

        if (sc != NULL && sc->arena != NULL) {
            it->arena = sc->arena;
            it->buf = sc->buf;
            it->bufcap = sc->bufcap;
            it->ent = sc->ent;
            it->cap = sc->entcap;
            sc->arena = NULL; /* not sc->ahead: the parked helper stays */
            sc->buf = NULL;
            sc->ent = NULL;
            sc->bufcap = sc->entcap = 0;
        } else {
            it->arena = vg_arena_new(STO_TL_ARENA_CHUNK);
        }
        if (it->arena != NULL)
            vg_arena_pb_allocator(it->arena, &it->alloc);
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

int sto_tl_open_ahead(sto_db *db, uint64_t mkey, int64_t from_us, int64_t to_us, bool descending,
                      sto_tl_iter **out)
{
    struct sto_scratch *sc = sto_scratch_get();
    struct sto_tl_ahead *ah = NULL;
    sto_tl_iter *it;
    int rc;

    *out = NULL;
    if ((it = vg_calloc(1, sizeof(*it))) == NULL)
        return -VG_ENOMEM;
    it->db = db;
    it->done = true; /* the outer iterator only hands out the helper's slots */
    if (sc != NULL && sc->ahead != NULL) {
        ah = sc->ahead; /* this thread's parked helper, idle between jobs */
        sc->ahead = NULL;
    } else if ((rc = sto_tl_ahead_new(&ah)) < 0) {
        vg_free(it);
        return rc;
    }
    if ((rc = sto_tl_open(db, mkey, from_us, to_us, descending, &ah->inner)) < 0) {
        sto_tl_ahead_retire(ah);
        vg_free(it);
        return rc;
    }
    pthread_mutex_lock(&ah->lock);
    ah->filled = ah->released = 0;
    ah->holding = false;
    ah->pos = 0;
    ah->stop = false;
    ah->job++;
    pthread_cond_broadcast(&ah->cond);
    pthread_mutex_unlock(&ah->lock);
    it->ah = ah;
    *out = it;
    return 0;
}

/* A helper with its slots and its thread, waiting for a job. Returns 0 or -VG_ENOMEM. */
static int sto_tl_ahead_new(struct sto_tl_ahead **out)
{
    struct sto_tl_ahead *ah = vg_calloc(1, sizeof(*ah));

    *out = NULL;
    if (ah == NULL)
        return -VG_ENOMEM;
    for (int i = 0; i < STO_AHEAD_SLOTS; i++) {
        struct sto_tl_slot *sl = &ah->slot[i];

        if ((sl->arena = vg_arena_new(STO_TL_ARENA_CHUNK)) == NULL ||
            (sl->ev = vg_malloc(STO_AHEAD_EVENTS * sizeof(*sl->ev))) == NULL)
            goto out_free;
        vg_arena_pb_allocator(sl->arena, &sl->alloc);
    }
    if (pthread_mutex_init(&ah->lock, NULL) != 0)
        goto out_free;
    if (pthread_cond_init(&ah->cond, NULL) != 0) {
        pthread_mutex_destroy(&ah->lock);
        goto out_free;
    }
    if (pthread_create(&ah->thread, NULL, sto_tl_ahead_main, ah) != 0) {
        pthread_cond_destroy(&ah->cond);
        pthread_mutex_destroy(&ah->lock);
        goto out_free;
    }
    pthread_setname_np(ah->thread, "vg-tl-ahead");
    *out = ah;
    return 0;
out_free:
    sto_tl_ahead_free(ah);
    return -VG_ENOMEM;
}

/* Ends an idle helper's thread and frees it (storage_int.h). @locality the thread that
 * parked it, or the one that made it. */
void sto_tl_ahead_retire(void *arg)
{
    struct sto_tl_ahead *ah = arg;

    if (ah == NULL)
        return;
    pthread_mutex_lock(&ah->lock);
    ah->quit = true;
    pthread_cond_broadcast(&ah->cond);
    pthread_mutex_unlock(&ah->lock);
    pthread_join(ah->thread, NULL);
    pthread_cond_destroy(&ah->cond);
    pthread_mutex_destroy(&ah->lock);
    sto_tl_ahead_free(ah);
}

int sto_tl_next(sto_tl_iter *it, const Vigil__Event **ev)
{
    const uint8_t *p;
    size_t len;
    int rc;

    *ev = NULL;
    if (it->ah != NULL)
        return sto_tl_ahead_next(it->ah, ev);
    while ((rc = sto_tl_next_raw(it, &p, &len)) == 1) {
        Vigil__Event *u;

        /* An event need only live until the next call: the arena is emptied once it has
         * grown, so it never leaves its first chunk (no page faults on fresh memory). */
        if (vg_arena_used(it->arena) > STO_TL_ARENA_CHUNK / 2)
            vg_arena_reset(it->arena);
        u = vg_event_unpack(it->arena, &it->alloc, p, len);
        if (u != NULL) {
            *ev = u;
            return 1;
        }
        sto_count_corrupt(it->db);
    }
    return rc;
}

void sto_tl_close(sto_tl_iter *it)
{
    if (it == NULL)
        return;
    if (it->ah != NULL) {
        struct sto_tl_ahead *ah = it->ah;
        struct sto_scratch *sc;

        /* End the job and wait until the helper has let go of the inner iterator. */
        pthread_mutex_lock(&ah->lock);
        ah->stop = true;
        pthread_cond_broadcast(&ah->cond);
        while (ah->job_done != ah->job)
            pthread_cond_wait(&ah->cond, &ah->lock);
        pthread_mutex_unlock(&ah->lock);
        sto_tl_close(ah->inner);
        ah->inner = NULL;
        sc = sto_scratch_get();
        if (sc != NULL && sc->ahead == NULL)
            sc->ahead = ah; /* parked for this thread's next read-ahead iterator */
        else
            sto_tl_ahead_retire(ah);
    }
    if (it->ri != NULL)
        rocksdb_iter_destroy(it->ri);
    if (it->ro != NULL)
        rocksdb_readoptions_destroy(it->ro);
    if (it->arena != NULL && it->bufcap <= STO_TL_KEEP_BYTES &&
        it->cap * sizeof(*it->ent) <= STO_TL_KEEP_BYTES) {
        struct sto_scratch *sc = sto_scratch_get();

        /* Kept for the thread's next iterator (see struct sto_scratch). */
        if (sc != NULL && sc->arena == NULL) {
            vg_arena_reset(it->arena);
            sc->arena = it->arena;
            sc->buf = it->buf;
            sc->bufcap = it->bufcap;
            sc->ent = it->ent;
            sc->entcap = it->cap;
            it->arena = NULL;
            it->buf = NULL;
            it->ent = NULL;
        }
    }
    vg_arena_destroy(it->arena);
    vg_free(it->ent);
    vg_free(it->buf);
    vg_free(it);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* The next event's serialized bytes (valid until the next day is loaded): 1, 0 at the
 * end, or a negative vg_err. */
static int sto_tl_next_raw(sto_tl_iter *it, const uint8_t **p, size_t *len)
{
    const struct sto_tl_ent *e;
    int rc;

    while (it->pos >= it->nev) {
        if (it->done)
            return 0;
        if ((rc = sto_tl_next_day(it)) < 0)
            return rc;
    }
    e = &it->ent[it->desc ? it->nev - 1 - it->pos : it->pos];
    it->pos++;
    *p = it->buf + e->off;
    *len = e->len;
    return 1;
}

/* @locality the caller's thread. Hands out the held slot's events; at its end, hands the
 * slot back and waits for the next. */
static int sto_tl_ahead_next(struct sto_tl_ahead *ah, const Vigil__Event **ev)
{
    for (;;) {
        struct sto_tl_slot *sl;

        if (!ah->holding) {
            pthread_mutex_lock(&ah->lock);
            while (ah->filled == ah->released)
                pthread_cond_wait(&ah->cond, &ah->lock);
            pthread_mutex_unlock(&ah->lock);
            ah->holding = true;
            ah->pos = 0;
        }
        /* The held slot is the caller's alone until it is handed back (released is only
         * changed by this thread; the helper reads it under the lock). */
        sl = &ah->slot[ah->released % STO_AHEAD_SLOTS];
        if (ah->pos < sl->n) {
            *ev = sl->ev[ah->pos++];
            return 1;
        }
        if (sl->end)
            return sl->rc; /* stays held: the end repeats */
        pthread_mutex_lock(&ah->lock);
        ah->holding = false;
        ah->released++;
        pthread_cond_broadcast(&ah->cond);
        pthread_mutex_unlock(&ah->lock);
    }
}

/* @locality vg-tl-ahead. Waits for a job (sto_tl_open_ahead), fills slots for it, and
 * waits for the next, until retired. */
static void *sto_tl_ahead_main(void *arg)
{
    struct sto_tl_ahead *ah = arg;

    for (;;) {
        uint64_t job;

        pthread_mutex_lock(&ah->lock);
        while (!ah->quit && ah->job == ah->job_done)
            pthread_cond_wait(&ah->cond, &ah->lock);
        job = ah->job;
        pthread_mutex_unlock(&ah->lock);
        if (job == ah->job_done) /* quit, with no job pending (job_done is only ours) */
            break;
        sto_tl_ahead_fill(ah);
        pthread_mutex_lock(&ah->lock);
        ah->job_done = job;
        pthread_cond_broadcast(&ah->cond);
        pthread_mutex_unlock(&ah->lock);
    }
    sto_thread_cleanup();
    return NULL;
}

/* @locality vg-tl-ahead. Fills slots until the inner iterator ends or close asks the job to
 * stop; the slot holding the last events carries the end. */
static void sto_tl_ahead_fill(struct sto_tl_ahead *ah)
{
    bool end = false;

    while (!end) {
        struct sto_tl_slot *sl;
        const uint8_t *p;
        size_t len;
        int rc = 0;

        pthread_mutex_lock(&ah->lock);
        while (!ah->stop && ah->filled - ah->released >= STO_AHEAD_SLOTS)
            pthread_cond_wait(&ah->cond, &ah->lock);
        if (ah->stop) {
            pthread_mutex_unlock(&ah->lock);
            break;
        }
        sl = &ah->slot[ah->filled % STO_AHEAD_SLOTS];
        pthread_mutex_unlock(&ah->lock);
        vg_arena_reset(sl->arena);
        sl->n = 0;
        while (sl->n < STO_AHEAD_EVENTS && (rc = sto_tl_next_raw(ah->inner, &p, &len)) == 1) {
            Vigil__Event *u = vg_event_unpack(sl->arena, &sl->alloc, p, len);

            if (u != NULL)
                sl->ev[sl->n++] = u;
            else
                sto_count_corrupt(ah->inner->db);
        }
        end = rc <= 0;
        sl->end = end;
        sl->rc = rc < 0 ? rc : 0;
        pthread_mutex_lock(&ah->lock);
        ah->filled++;
        pthread_cond_broadcast(&ah->cond);
        pthread_mutex_unlock(&ah->lock);
    }
}

/* Frees the slots and closes the inner iterator (the helper has ended or never began). */
static void sto_tl_ahead_free(struct sto_tl_ahead *ah)
{
    for (int i = 0; i < STO_AHEAD_SLOTS; i++) {
        vg_arena_destroy(ah->slot[i].arena);
        vg_free(ah->slot[i].ev);
    }
    sto_tl_close(ah->inner);
    vg_free(ah);
}

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

/*
 * Indexes every block of (day, mkey), starting where the day walk's seek left the RocksDB
 * iterator (on the day's first block ascending, on its last descending: the order of the
 * blocks does not matter, the events are sorted), and keeps the events within [from, to]
 * sorted by (ts, seq), once each. The blocks' bytes are copied into buf (decompressed when
 * they are zstd frames), since the events are unpacked from them later.
 */
static int sto_tl_load_day(sto_tl_iter *it, uint32_t day)
{
    uint8_t prefix[STO_TL_PREFIX_LEN];
    bool sorted = true;
    size_t w = 0;
    int rc;

    it->used = 0;
    sto_be32(prefix, day);
    sto_be64(prefix + 4, it->mkey);
    for (; rocksdb_iter_valid(it->ri);
         it->desc ? rocksdb_iter_prev(it->ri) : rocksdb_iter_next(it->ri)) {
        size_t klen, vlen, off = it->used;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it->ri, &klen);
        const char *v;

        if (klen < STO_TL_PREFIX_LEN || memcmp(k, prefix, sizeof(prefix)) != 0)
            break;
        /* No early stop on the key's first_ts: events of a block are in arrival order,
         * so a block that starts after `to` may still hold earlier events. */
        v = rocksdb_iter_value(it->ri, &vlen);
        rc = sto_block_append(v, vlen, &it->buf, &it->used, &it->bufcap);
        if (rc == 0)
            rc = sto_tl_index_block(it, off, &sorted);
        if (rc == -VG_ENOMEM)
            return rc;
        if (rc != 0) {
            sto_count_corrupt(it->db);
            vg_log(VG_LOG_WARN, STO_MOD, "corrupt timeline block (day %u, machine %016llx)", day,
                   (unsigned long long)it->mkey);
        }
    }
    if (!sorted)
        qsort(it->ent, it->nev, sizeof(*it->ent), sto_tl_cmp);
    /* A block re-delivered in other pieces repeats events: keep one of each (ts, seq). */
    for (size_t r = 0; r < it->nev; r++)
        if (w == 0 || it->ent[r].seq != it->ent[w - 1].seq || it->ent[r].ts != it->ent[w - 1].ts)
            it->ent[w++] = it->ent[r];
    it->nev = w;
    return sto_tl_iter_err(it);
}

/*
 * Walks one serialized vigil.TelemetryBatch: for each event (field 8) reads its seq
 * (field 1) and ts_us (field 2) and adds it when ts is within [from, to]. A block whose
 * wire format does not hold together adds nothing and returns -VG_EDECODE; an event whose
 * body is bad inside a sound frame is found (and counted) when it is unpacked.
 */
static int sto_tl_index_block(sto_tl_iter *it, size_t off, bool *sorted)
{
    const uint8_t *p = it->buf + off, *end = it->buf + it->used;
    size_t n0 = it->nev;

    while (p < end) {
        uint64_t tag, elen, seq;
        const uint8_t *e, *eend;
        int64_t ts;
        struct sto_tl_ent *x;

        if (!sto_pb_varint(&p, end, &tag))
            goto out_bad;
        if (tag != STO_PB_TAG_EVENT) {
            if (!sto_pb_skip(&p, end, (unsigned)(tag & 7)))
                goto out_bad;
            continue;
        }
        if (!sto_pb_varint(&p, end, &elen) || elen > (uint64_t)(end - p))
            goto out_bad;
        e = p;
        eend = p + elen;
        p = eend;
        if (!sto_pb_event_key(e, eend, &ts, &seq))
            goto out_bad;
        if (ts < it->from || ts > it->to)
            continue;
        if (it->nev == it->cap) {
            size_t cap = it->cap ? it->cap * 2 : 4096;

            if ((x = vg_realloc(it->ent, cap * sizeof(*x))) == NULL)
                return -VG_ENOMEM;
            it->ent = x;
            it->cap = cap;
        }
        x = &it->ent[it->nev++];
        x->ts = ts;
        x->seq = seq;
        x->off = (size_t)(eend - elen - it->buf);
        x->len = (size_t)elen;
        if (it->nev > 1 && *sorted && sto_tl_cmp(x - 1, x) >= 0)
            *sorted = false;
    }
    return 0;
out_bad:
    it->nev = n0;
    it->used = off;
    return -VG_EDECODE;
}

static int sto_tl_cmp(const void *a, const void *b)
{
    const struct sto_tl_ent *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
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
