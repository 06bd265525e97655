/*
 * sto_merge.c - merging runs of small timeline blocks of one machine-day into one block.
 *
 * The live shard seals a machine's open block after a few seconds, so that the Kafka
 * offsets committed in the same write batch never lag far behind; a quiet machine thus
 * leaves one tiny block every few seconds, and a read of its timeline decodes thousands.
 * A merge walks a machine-day's blocks in key order, gathers runs of adjacent small blocks
 * (each under STO_MERGE_SMALL bytes, together under STO_MERGE_CAP), sorts their events by
 * (ts, seq), drops repeats, and writes ONE batch that puts the merged block and deletes the
 * run's keys, so readers (each on its own snapshot) see one or the other. Nothing is
 * unpacked: events are found in the wire format and their bytes copied as they are, so a
 * merge costs little more than the copies.
 *
 * Safe beside the writer and retention: the run is read without any lock, then read again
 * under db->wlock (which sto_write and sto_retention_run's deletions also hold) and replaced
 * only if every key and value is still the same and nothing was inserted between them. The
 * merged key is the run's first key + STO_TL_MERGED_TAG: the writer only makes 28-byte
 * keys, so a re-delivered block can never overwrite a merged one, and the only key that can
 * sort between a 28-byte key K and its successors is K + tag itself, which the check covers.
 * A merged block that is still small may be merged again; its key then stays the same.
 *
 * THREAD SAFETY: sto_tl_merge* run on any thread (one merge at a time per machine-day is
 * not required: a second merge of the same run fails its check). The background thread
 * ("vg-sto-merge", started by sto_open for a read-write database) waits on merge_cond,
 * takes the machine-days noted by sto_write and merges them; sto_close stops it first.
 * The list of machine-days lives only in memory, so its first pass after an open also
 * walks the two newest days the database holds: the days that were being written when the
 * previous process stopped or crashed, whose last small blocks no later write would note.
 */
#include <stdlib.h>
#include <time.h>

#include "storage_int.h"

/* A block this big is left alone: it already costs one decode per ~100 events or more. */
#define STO_MERGE_SMALL (32u * 1024)
/* A merged block holds at most about this many bytes of blocks (a page of the timeline
 * decodes at most one such block beyond what it shows). */
#define STO_MERGE_CAP    (256u * 1024)
#define STO_MERGE_MAXRUN 4096
/* The machine-days kept for the next pass; past this, writes are not noted (their blocks
 * stay small until a later write to the same machine-day notes it again). */
#define STO_DIRTY_MAX (1u << 20)

struct sto_blk {
    uint8_t *k, *v; /* copies of the key and value (vg_malloc'd) */
    size_t klen, vlen;
};

/* An event of a run: its key and where its bytes are in the run's buf. */
struct sto_mev {
    int64_t ts;
    uint64_t seq;
    size_t off, len;
};

struct sto_run {
    struct sto_blk *b;   /* the blocks, in key order */
    size_t n, cap;       /* blocks, allocated */
    size_t bytes;        /* sum of the values */
    uint8_t *buf;        /* the blocks' serialized batches, back to back */
    size_t used, bufcap; /* bytes in buf, allocated */
    size_t *boff;        /* per block: where its batch starts in buf */
    size_t *bev;         /* per block: its first entry in ev */
    struct sto_mev *ev;  /* the events found, block by block */
    size_t nev, capev;   /* entries, allocated */
    uint8_t *out;        /* the merged block being built */
    size_t outcap;       /* allocated */
};

static int sto_merge_walk(sto_db *db, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                          size_t hilen, struct sto_merge_stats *st);
static int sto_run_add(struct sto_run *r, const char *k, size_t klen, const char *v, size_t vlen);
static void sto_run_clear(struct sto_run *r);
static int sto_run_flush(sto_db *db, struct sto_run *r, struct sto_merge_stats *st);
static int sto_run_index(struct sto_run *r, size_t i);
static int sto_run_merge(sto_db *db, struct sto_run *r, size_t s, size_t e,
                         struct sto_merge_stats *st);
static size_t sto_varint_put(uint8_t *p, uint64_t v);
static int sto_run_replace(sto_db *db, struct sto_run *r, size_t s, size_t e, const uint8_t *mk,
                           size_t mklen, const uint8_t *val, size_t vlen);
static bool sto_run_unchanged(sto_db *db, const struct sto_run *r, size_t s, size_t e);
static int sto_ev_cmp(const void *a, const void *b);
static int sto_dm_cmp(const void *a, const void *b);
static int sto_merge_from(sto_db *db, const struct sto_dm *dm, struct sto_merge_stats *st);
static int sto_merge_catch_up(sto_db *db, struct sto_merge_stats *st);
static void *sto_merge_main(void *arg);
static void sto_stats_add(struct sto_merge_stats *to, const struct sto_merge_stats *from);

int sto_tl_merge(sto_db *db, uint32_t from_day, uint32_t to_day, struct sto_merge_stats *st)
{
    uint8_t lo[4], hi[4];
    struct sto_merge_stats tmp = {0};
    int rc;

    if (db->ro)
        return -VG_EUNSUP;
    if (from_day > to_day || db->cf[STO_CF_TIMELINE] == NULL)
        return 0;
    sto_be32(lo, from_day);
    sto_be32(hi, to_day + 1);
    rc = sto_merge_walk(db, lo, 4, hi, to_day == UINT32_MAX ? 0 : 4, st ? st : &tmp);
    return rc;
}

int sto_tl_merge_machine_day(sto_db *db, uint32_t day, uint64_t mkey, struct sto_merge_stats *st)
{
    uint8_t lo[STO_TL_PREFIX_LEN], hi[STO_TL_PREFIX_LEN];
    struct sto_merge_stats tmp = {0};
    size_t hilen = sizeof(hi);
    int i;

    if (db->ro)
        return -VG_EUNSUP;
    if (db->cf[STO_CF_TIMELINE] == NULL)
        return 0;
    sto_be32(lo, day);
    sto_be64(lo + 4, mkey);
    memcpy(hi, lo, sizeof(hi));
    for (i = (int)sizeof(hi) - 1; i >= 0 && ++hi[i] == 0; i--)
        ;
    if (i < 0)
        hilen = 0; /* all 0xff: no upper bound */
    return sto_merge_walk(db, lo, sizeof(lo), hi, hilen, st ? st : &tmp);
}

void sto_merge_totals(sto_db *db, struct sto_merge_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (!db->wlock_ok)
        return;
    pthread_mutex_lock(&db->wlock);
    *st = db->merge_tot;
    pthread_mutex_unlock(&db->wlock);
}

/* ---- the background thread -------------------------------------------------------- */

int sto_merge_start(sto_db *db)
{
    if (db->ro || db->merge_running)
        return 0;
    db->merge_stop = false;
    if (pthread_create(&db->merge_thread, NULL, sto_merge_main, db) != 0)
        return -VG_ENOMEM;
    pthread_setname_np(db->merge_thread, "vg-sto-merge");
    pthread_mutex_lock(&db->wlock);
    db->merge_running = true;
    pthread_mutex_unlock(&db->wlock);
    return 0;
}

void sto_merge_stop(sto_db *db)
{
    bool running;

    if (!db->wlock_ok)
        return;
    pthread_mutex_lock(&db->wlock);
    running = db->merge_running;
    __atomic_store_n(&db->merge_stop, true, __ATOMIC_RELAXED); /* read unlocked in a pass */
    pthread_cond_broadcast(&db->merge_cond);
    pthread_mutex_unlock(&db->wlock);
    if (!running)
        return;
    pthread_join(db->merge_thread, NULL);
    pthread_mutex_lock(&db->wlock);
    db->merge_running = false;
    pthread_mutex_unlock(&db->wlock);
}

/* Called by sto_write with wlock held: appends the batch's machine-days. */
void sto_merge_note(sto_db *db, const struct sto_dm *dm, size_t n)
{
    if (n == 0)
        return;
    if (db->ndirty + n > db->capdirty) {
        size_t cap = db->capdirty ? db->capdirty : 1024;
        struct sto_dm *d;

        while (cap < db->ndirty + n)
            cap *= 2;
        if (cap > STO_DIRTY_MAX || (d = vg_realloc(db->dirty, cap * sizeof(*d))) == NULL) {
            db->dirty_dropped += n;
            return;
        }
        db->dirty = d;
        db->capdirty = cap;
    }
    memcpy(db->dirty + db->ndirty, dm, n * sizeof(*dm));
    db->ndirty += n;
}

/*
 * @locality vg-sto-merge. Every merge_interval_ms: takes the machine-days written since the
 * last pass (sorted, once each) and merges their small blocks. The list is taken whole, so
 * a write during the pass is merged in the next one.
 */
static void *sto_merge_main(void *arg)
{
    sto_db *db = arg;
    bool caught_up = false;

    pthread_mutex_lock(&db->wlock);
    while (!db->merge_stop) {
        struct sto_merge_stats st = {0};
        struct timespec until;
        struct sto_dm *dm;
        size_t n, u = 0;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += db->merge_interval_ms / 1000;
        until.tv_nsec += (db->merge_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!db->merge_stop && pthread_cond_timedwait(&db->merge_cond, &db->wlock, &until) == 0)
            ;
        if (db->merge_stop)
            break;
        dm = db->dirty;
        n = db->ndirty;
        db->dirty = NULL;
        db->ndirty = db->capdirty = 0;
        pthread_mutex_unlock(&db->wlock);

        if (!caught_up)
            caught_up = sto_merge_catch_up(db, &st) != -VG_EIO;
        if (n > 1)
            qsort(dm, n, sizeof(*dm), sto_dm_cmp);
        for (size_t i = 0; i < n && !__atomic_load_n(&db->merge_stop, __ATOMIC_RELAXED); i++) {
            if (u > 0 && dm[u - 1].day == dm[i].day && dm[u - 1].mkey == dm[i].mkey)
                continue;
            dm[u++] = dm[i];
            if (sto_merge_from(db, &dm[i], &st) == -VG_EIO)
                break; /* the database is in trouble; the next pass tries again */
        }
        vg_free(dm);
        sto_thread_cleanup();
        pthread_mutex_lock(&db->wlock);
        sto_stats_add(&db->merge_tot, &st);
        if (st.runs > 0)
            vg_debug(STO_MOD, "merge pass: %llu runs, %llu blocks", (unsigned long long)st.runs,
                     (unsigned long long)st.blocks_in);
    }
    pthread_mutex_unlock(&db->wlock);
    sto_thread_cleanup();
    return NULL;
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Walks the timeline keys in [lo, hi) (hi absent: to the end), gathering runs of small
 * blocks of one machine-day and merging each run of two or more. */
static int sto_merge_walk(sto_db *db, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                          size_t hilen, struct sto_merge_stats *st)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = NULL;
    struct sto_run r;
    char *rerr = NULL;
    int rc = 0;

    memset(&r, 0, sizeof(r));
    if (ro == NULL)
        return -VG_ENOMEM;
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_readahead_size(ro, 2u << 20);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, lolen);
    if (hilen)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, hilen);
    if ((it = rocksdb_create_iterator_cf(db->rdb, ro, db->cf[STO_CF_TIMELINE])) == NULL) {
        rc = -VG_ENOMEM;
        goto out;
    }
    for (rocksdb_iter_seek(it, (const char *)lo, lolen); rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;

        /* A long walk (the catch-up pass over whole days) must not hold up sto_close; the
         * run gathered so far is dropped, not half-written: each run is one batch. */
        if (__atomic_load_n(&db->merge_stop, __ATOMIC_RELAXED)) {
            sto_run_clear(&r);
            break;
        }
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        bool same = r.n > 0 && memcmp(k, r.b[0].k, STO_TL_PREFIX_LEN) == 0;
        bool mergeable =
            (klen == STO_TL_KEY_LEN || (klen == STO_TL_MKEY_LEN && k[28] == STO_TL_MERGED_TAG)) &&
            vlen < STO_MERGE_SMALL;

        if (r.n > 0 &&
            (!same || !mergeable || r.bytes + vlen > STO_MERGE_CAP || r.n == STO_MERGE_MAXRUN))
            rc = sto_run_flush(db, &r, st);
        if (rc == 0 && mergeable)
            rc = sto_run_add(&r, k, klen, v, vlen);
    }
    if (rc == 0 && r.n > 0)
        rc = sto_run_flush(db, &r, st);
    rocksdb_iter_get_error(it, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "timeline merge scan: %s", rerr);
        rocksdb_free(rerr);
        rc = -VG_EIO;
    }
out:
    sto_run_clear(&r);
    vg_free(r.b);
    vg_free(r.ev);
    vg_free(r.buf);
    vg_free(r.boff);
    vg_free(r.bev);
    vg_free(r.out);
    if (it != NULL)
        rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

static int sto_run_add(struct sto_run *r, const char *k, size_t klen, const char *v, size_t vlen)
{
    struct sto_blk *b;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;

        if ((b = vg_realloc(r->b, cap * sizeof(*b))) == NULL)
            return -VG_ENOMEM;
        r->b = b;
        r->cap = cap;
    }
    b = &r->b[r->n];
    b->k = vg_malloc(klen);
    b->v = vg_malloc(vlen ? vlen : 1);
    if (b->k == NULL || b->v == NULL) {
        vg_free(b->k);
        vg_free(b->v);
        return -VG_ENOMEM;
    }
    memcpy(b->k, k, klen);
    memcpy(b->v, v, vlen);
    b->klen = klen;
    b->vlen = vlen;
    r->n++;
    r->bytes += vlen;
    return 0;
}

static void sto_run_clear(struct sto_run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        vg_free(r->b[i].k);
        vg_free(r->b[i].v);
    }
    r->n = 0;
    r->bytes = 0;
}

/* Indexes the run; merges each stretch of two or more blocks between corrupt ones. */
static int sto_run_flush(sto_db *db, struct sto_run *r, struct sto_merge_stats *st)
{
    size_t s = 0;
    int rc = 0;

    if (r->n < 2)
        goto out;
    vg_free(r->boff);
    vg_free(r->bev);
    r->bev = NULL;
    if ((r->boff = vg_malloc((r->n + 1) * sizeof(*r->boff))) == NULL ||
        (r->bev = vg_malloc((r->n + 1) * sizeof(*r->bev))) == NULL) {
        rc = -VG_ENOMEM;
        goto out;
    }
    r->used = 0;
    r->nev = 0;
    for (size_t i = 0; i <= r->n && rc == 0; i++) {
        int irc = i < r->n ? sto_run_index(r, i) : 1;

        if (irc == 0)
            continue;
        if (irc == -VG_ENOMEM) {
            rc = irc;
            break;
        }
        if (i < r->n)
            st->corrupt++; /* left where it is: the reader counts and skips it */
        if (i - s >= 2)
            rc = sto_run_merge(db, r, s, i, st);
        s = i + 1;
    }
out:
    sto_run_clear(r);
    return rc;
}

/* Appends block i's batch to buf and its events to ev. A block that does not parse adds
 * nothing and returns -VG_EDECODE. */
static int sto_run_index(struct sto_run *r, size_t i)
{
    const uint8_t *p, *end;
    size_t n0 = r->nev, u0 = r->used;
    int rc;

    r->boff[i] = r->used;
    r->bev[i] = r->nev;
    r->boff[i + 1] = r->used;
    r->bev[i + 1] = r->nev;
    rc = sto_block_append(r->b[i].v, r->b[i].vlen, &r->buf, &r->used, &r->bufcap);
    if (rc != 0)
        return rc;
    p = r->buf + u0;
    end = r->buf + r->used;
    while (p < end) {
        uint64_t tag, elen, seq;
        int64_t ts;
        struct sto_mev *x;

        if (!sto_pb_varint(&p, end, &tag))
            goto out_bad;
        if (tag != STO_PB_TAG_EVENT) {
            if (!sto_pb_skip(&p, end, (unsigned)(tag & 7)))
                goto out_bad;
            continue;
        }
        if (!sto_pb_varint(&p, end, &elen) || elen > (uint64_t)(end - p) ||
            !sto_pb_event_key(p, p + elen, &ts, &seq))
            goto out_bad;
        if (r->nev == r->capev) {
            size_t cap = r->capev ? r->capev * 2 : 4096;

            if ((x = vg_realloc(r->ev, cap * sizeof(*x))) == NULL)
                return -VG_ENOMEM;
            r->ev = x;
            r->capev = cap;
        }
        x = &r->ev[r->nev++];
        x->ts = ts;
        x->seq = seq;
        x->off = (size_t)(p - r->buf);
        x->len = (size_t)elen;
        p += elen;
    }
    r->boff[i + 1] = r->used;
    r->bev[i + 1] = r->nev;
    return 0;
out_bad:
    r->nev = n0;
    r->used = u0;
    r->boff[i + 1] = u0;
    r->bev[i + 1] = n0;
    return -VG_EDECODE;
}

/* Merges blocks [s, e) of the run into one batch: the first block's header fields as they
 * are, first_seq of the first event, then the events sorted by (ts, seq), once each. */
static int sto_run_merge(sto_db *db, struct sto_run *r, size_t s, size_t e,
                         struct sto_merge_stats *st)
{
    struct sto_mev *ev = r->ev + r->bev[s];
    size_t n = r->bev[e] - r->bev[s], w = 0, need, len = 0;
    const uint8_t *p = r->buf + r->boff[s], *end = r->buf + r->boff[s + 1];
    uint8_t mk[STO_TL_MKEY_LEN];
    int rc;

    qsort(ev, n, sizeof(*ev), sto_ev_cmp);
    /* Re-deliveries repeat (ts, seq): keep the first. */
    for (size_t i = 0; i < n; i++)
        if (w == 0 || ev[i].seq != ev[w - 1].seq || ev[i].ts != ev[w - 1].ts)
            ev[w++] = ev[i];
    need = (size_t)(end - p) + 11;
    for (size_t i = 0; i < w; i++)
        need += 11 + ev[i].len;
    if (need > r->outcap) {
        uint8_t *o = vg_realloc(r->out, need);

        if (o == NULL)
            return -VG_ENOMEM;
        r->out = o;
        r->outcap = need;
    }
    /* The header: every field of the first batch but first_seq and the events (it parsed
     * when it was indexed). */
    while (p < end) {
        const uint8_t *f = p;
        uint64_t tag;

        if (!sto_pb_varint(&p, end, &tag) || !sto_pb_skip(&p, end, (unsigned)(tag & 7)))
            break;
        if (tag == STO_PB_TAG_EVENT || tag == STO_PB_TAG_FIRST_SEQ)
            continue;
        memcpy(r->out + len, f, (size_t)(p - f));
        len += (size_t)(p - f);
    }
    if (w > 0 && ev[0].seq != 0) {
        r->out[len++] = STO_PB_TAG_FIRST_SEQ;
        len += sto_varint_put(r->out + len, ev[0].seq);
    }
    for (size_t i = 0; i < w; i++) {
        r->out[len++] = STO_PB_TAG_EVENT;
        len += sto_varint_put(r->out + len, ev[i].len);
        memcpy(r->out + len, r->buf + ev[i].off, ev[i].len);
        len += ev[i].len;
    }
    /* The run's first key, tagged (it already is when the run starts with a merged block). */
    memcpy(mk, r->b[s].k, STO_TL_KEY_LEN);
    mk[STO_TL_KEY_LEN] = STO_TL_MERGED_TAG;
    rc = sto_run_replace(db, r, s, e, mk, sizeof(mk), r->out, len);
    if (rc == 1) {
        st->conflicts++;
        return 0;
    }
    if (rc == 0) {
        st->runs++;
        st->blocks_in += e - s;
        st->events += w;
    }
    return rc;
}

/* Under wlock: checks the run is unchanged, then puts the merged block and deletes the
 * other keys in one write. Returns 0, 1 when the run changed (left alone), or -VG_EIO. */
static int sto_run_replace(sto_db *db, struct sto_run *r, size_t s, size_t e, const uint8_t *mk,
                           size_t mklen, const uint8_t *val, size_t vlen)
{
    rocksdb_column_family_handle_t *cf = db->cf[STO_CF_TIMELINE];
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    char *rerr = NULL;
    int rc = 0;

    if (wb == NULL)
        return -VG_ENOMEM;
    rocksdb_writebatch_put_cf(wb, cf, (const char *)mk, mklen, (const char *)val, vlen);
    for (size_t i = s; i < e; i++)
        if (r->b[i].klen != mklen || memcmp(r->b[i].k, mk, mklen) != 0)
            rocksdb_writebatch_delete_cf(wb, cf, (const char *)r->b[i].k, r->b[i].klen);
    pthread_mutex_lock(&db->wlock);
    if (!sto_run_unchanged(db, r, s, e))
        rc = 1;
    else
        rocksdb_write(db->rdb, db->wopt, wb, &rerr);
    pthread_mutex_unlock(&db->wlock);
    rocksdb_writebatch_destroy(wb);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "timeline merge write: %s", rerr);
        rocksdb_free(rerr);
        rc = -VG_EIO;
    }
    return rc;
}

/* Under wlock: true when the keys from the run's first to its last are exactly the run's,
 * with the same values. The merged key (first key + tag) sorts inside that range or is
 * the first key itself, so it is covered too. */
static bool sto_run_unchanged(sto_db *db, const struct sto_run *r, size_t s, size_t e)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it;
    bool ok = true;
    size_t i = s;

    if (ro == NULL)
        return false;
    rocksdb_readoptions_set_fill_cache(ro, 0);
    it = rocksdb_create_iterator_cf(db->rdb, ro, db->cf[STO_CF_TIMELINE]);
    if (it == NULL) {
        rocksdb_readoptions_destroy(ro);
        return false;
    }
    rocksdb_iter_seek(it, (const char *)r->b[s].k, r->b[s].klen);
    for (; ok && i < e; i++, rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k, *v;

        if (!rocksdb_iter_valid(it)) {
            ok = false;
            break;
        }
        k = rocksdb_iter_key(it, &klen);
        v = rocksdb_iter_value(it, &vlen);
        ok = klen == r->b[i].klen && memcmp(k, r->b[i].k, klen) == 0 && vlen == r->b[i].vlen &&
             memcmp(v, r->b[i].v, vlen) == 0;
    }
    if (ok) {
        char *rerr = NULL;

        rocksdb_iter_get_error(it, &rerr);
        if (rerr != NULL) {
            rocksdb_free(rerr);
            ok = false;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return ok;
}

static int sto_ev_cmp(const void *a, const void *b)
{
    const struct sto_mev *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    /* Equal keys keep their order, so the first copy is the one kept (qsort is not
     * stable on its own). */
    return x->off < y->off ? -1 : x->off > y->off;
}

static size_t sto_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static int sto_dm_cmp(const void *a, const void *b)
{
    const struct sto_dm *x = a, *y = b;

    if (x->day != y->day)
        return x->day < y->day ? -1 : 1;
    if (x->mkey != y->mkey)
        return x->mkey < y->mkey ? -1 : 1;
    return x->from_ts < y->from_ts ? -1 : x->from_ts > y->from_ts;
}

/* A pass over one machine-day: from the earliest block written since the last pass (or
 * the small block just before it, which is topped up), so a busy machine's day (big
 * blocks, left alone) is not read again every pass. */
static int sto_merge_from(sto_db *db, const struct sto_dm *dm, struct sto_merge_stats *st)
{
    uint8_t lo[STO_TL_MKEY_LEN], hi[STO_TL_PREFIX_LEN];
    size_t lolen = STO_TL_PREFIX_LEN + 8, hilen = sizeof(hi);
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    int i;

    sto_be32(lo, dm->day);
    sto_be64(lo + 4, dm->mkey);
    sto_be64(lo + STO_TL_PREFIX_LEN, sto_bias(dm->from_ts));
    memcpy(hi, lo, sizeof(hi));
    for (i = (int)sizeof(hi) - 1; i >= 0 && ++hi[i] == 0; i--)
        ;
    if (i < 0)
        hilen = 0;
    if ((ro = rocksdb_readoptions_create()) == NULL)
        return -VG_ENOMEM;
    /* Maintenance: the block it lands on is not kept in the cache. One a machine-day each
     * pass filled the whole cache (256 MiB in seconds with 2,000 machines), evicting what
     * queries read and adding that much resident memory. */
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_readoptions_set_iterate_lower_bound(ro, (const char *)lo, STO_TL_PREFIX_LEN);
    if ((it = rocksdb_create_iterator_cf(db->rdb, ro, db->cf[STO_CF_TIMELINE])) != NULL) {
        rocksdb_iter_seek_for_prev(it, (const char *)lo, lolen);
        if (rocksdb_iter_valid(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);

            (void)rocksdb_iter_value(it, &vlen);
            if (klen <= sizeof(lo) && klen > STO_TL_PREFIX_LEN &&
                memcmp(k, lo, STO_TL_PREFIX_LEN) == 0 && vlen < STO_MERGE_SMALL) {
                memcpy(lo, k, klen);
                lolen = klen;
            }
        }
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    return sto_merge_walk(db, lo, lolen, hi, hilen, st);
}

/* The first pass after an open: the newest day in the timeline and the day before it (a
 * process stopped just after midnight left both half-merged). Older days were complete when
 * the process that wrote them was still running and merged them, or were written late, by
 * a backlog, and are noted again by the next late write. */
static int sto_merge_catch_up(sto_db *db, struct sto_merge_stats *st)
{
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint32_t last = 0;
    bool any = false;

    if ((ro = rocksdb_readoptions_create()) == NULL)
        return -VG_ENOMEM;
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if ((it = rocksdb_create_iterator_cf(db->rdb, ro, db->cf[STO_CF_TIMELINE])) != NULL) {
        rocksdb_iter_seek_to_last(it);
        if (rocksdb_iter_valid(it)) {
            size_t klen;
            const char *k = rocksdb_iter_key(it, &klen);

            if (klen >= STO_TL_PREFIX_LEN) {
                last = sto_rd32((const uint8_t *)k);
                any = true;
            }
        }
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    if (!any)
        return 0;
    return sto_tl_merge(db, last > 0 ? last - 1 : 0, last, st);
}

static void sto_stats_add(struct sto_merge_stats *to, const struct sto_merge_stats *from)
{
    to->runs += from->runs;
    to->blocks_in += from->blocks_in;
    to->events += from->events;
    to->conflicts += from->conflicts;
    to->corrupt += from->corrupt;
}
