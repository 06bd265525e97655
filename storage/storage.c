/*
 * storage.c - opening the RocksDB database, column family options, write batches, point
 * reads, scans, retention and size accounting. The layout is documented in storage.h
 * and storage/README.md; timeline blocks are in sto_block.c, the timeline iterator in
 * sto_timeline.c.
 *
 * THREAD SAFETY: one sto_db serves every thread (RocksDB is thread safe). A sto_wbatch
 * belongs to one thread. sto_write may run on one writer thread at a time; reads and
 * scans run on any thread concurrently with it. sto_retention_run and sto_compact_all
 * may run on any one thread; they block while RocksDB compacts.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage_int.h"

#define STO_DEFAULT_CACHE     ((size_t)256 << 20)
#define STO_DEFAULT_RETENTION (INT64_C(183) * VG_US_PER_DAY)
#define STO_BLOCK_SIZE        (16 * 1024)
#define STO_SCHEMA_VERSION    "1"
/* A pass of the background merge every 30 s: a quiet machine (2 events/s, a block every
 * 5 s) has gathered six blocks by then; a busy one has blocks big enough to be left. */
#define STO_MERGE_INTERVAL_MS 30000

/* RocksDB's BottommostLevelCompaction::kForce: rewrite the last level too, so range
 * tombstones are applied there and the space comes back. */
#define STO_BOTTOMMOST_FORCE 2

/* Batch operations (see struct sto_wbatch). */
enum sto_op { STO_OP_PUT = 1, STO_OP_DEL = 2 };

/*
 * sto_wbatch_new() takes no database, so the column family handles are unknown when a
 * put is made. A batch therefore records its operations in one flat buffer, each as
 * struct sto_rec followed by key and value, and sto_write replays them into a
 * rocksdb_writebatch_t with the database's handles (one extra copy, cheap next to the
 * write itself).
 */
struct sto_rec {
    uint8_t op;    /* enum sto_op */
    uint8_t cf;    /* enum sto_cf */
    uint32_t klen; /* key bytes that follow */
    uint32_t vlen; /* value bytes that follow the key */
};

struct sto_wbatch {
    uint8_t *buf;             /* records, back to back (unaligned: read with memcpy) */
    size_t len;               /* bytes used */
    size_t cap;               /* bytes allocated */
    size_t nops;              /* records */
    bool failed;              /* an allocation failed: sto_write refuses the batch */
    rocksdb_writebatch_t *wb; /* reused by sto_write; NULL until the first write */
    sto_db *db;               /* sto_wbatch_bind: blocks go straight into wb */
    size_t direct_bytes;      /* bytes put straight into wb */
    struct sto_dm *dm;        /* machine-days of the blocks put (for the merge thread) */
    size_t ndm, capdm;        /* entries, allocated entries */
};

const char *const sto_cf_names[STO_CF_COUNT] = {
    "default",   "timeline", "machines",  "processes", "alerts",
    "alert_idx", "outbox",   "incidents", "offsets",   "meta",
};

static int sto_mkdir_p(const char *path);
static int sto_rmtree(const char *path);
static void sto_set_err(char *err, size_t errlen, const char *fmt, const char *arg);
static void sto_make_options(sto_db *db, const struct sto_opts *o);
static int sto_open_rw(sto_db *db, char *err, size_t errlen);
static int sto_open_secondary(sto_db *db, char *err, size_t errlen);
static int sto_check_schema(sto_db *db, char *err, size_t errlen);
static uint8_t *sto_rec_add(sto_wbatch *b, enum sto_op op, enum sto_cf cf, size_t klen,
                            size_t vlen);
static void sto_rec_put(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen, const void *v,
                        size_t vlen);
static void sto_rec_del(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen);
static void sto_rec_put_msg(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen,
                            const ProtobufCMessage *m);
static size_t sto_alert_idx_key(uint8_t *k, const Vigil__Alert *a);
static int sto_get_raw(sto_db *db, enum sto_cf cf, const void *k, size_t klen,
                       const ProtobufCMessageDescriptor *d, void **out);
static rocksdb_iterator_t *sto_iter(sto_db *db, enum sto_cf cf, rocksdb_readoptions_t **ro,
                                    const uint8_t *lo, size_t lolen, const uint8_t *hi,
                                    size_t hilen);
static int sto_iter_done(rocksdb_iterator_t *it, rocksdb_readoptions_t *ro);
static bool sto_prefix_next(uint8_t *k, size_t n);
static void sto_wbatch_note(sto_wbatch *b, uint32_t day, uint64_t mkey, int64_t ts);
static uint64_t sto_wal_bytes(const char *path);
static int sto_compact_cf(sto_db *db, enum sto_cf cf, const char *lo, size_t lolen, const char *hi,
                          size_t hilen);

/* ---- open and close --------------------------------------------------------------- */

int sto_open(const struct sto_opts *o, sto_db **out, char *err, size_t errlen)
{
    sto_db *db;
    int rc;

    *out = NULL;
    if (o == NULL || o->path == NULL || o->path[0] == '\0') {
        sto_set_err(err, errlen, "%s", "no data directory");
        return -VG_EINVAL;
    }
    db = vg_calloc(1, sizeof(*db));
    if (db == NULL)
        return -VG_ENOMEM;
    db->path = vg_strdup(o->path);
    if (db->path == NULL) {
        rc = -VG_ENOMEM;
        goto out_close;
    }
    db->ro = o->read_only;
    db->wlock_ok = pthread_mutex_init(&db->wlock, NULL) == 0;
    db->merge_cond_ok = pthread_cond_init(&db->merge_cond, NULL) == 0;
    if (!db->wlock_ok || !db->merge_cond_ok) {
        rc = -VG_ENOMEM;
        goto out_close;
    }
    db->retention_us = o->retention_us > 0 ? o->retention_us : STO_DEFAULT_RETENTION;
    sto_make_options(db, o);
    rc = db->ro ? sto_open_secondary(db, err, errlen) : sto_open_rw(db, err, errlen);
    if (rc != 0)
        goto out_close;
    if (!db->ro && (rc = sto_check_schema(db, err, errlen)) != 0)
        goto out_close;
    if (!db->ro && o->merge_interval_ms >= 0) {
        db->merge_interval_ms = o->merge_interval_ms ? o->merge_interval_ms : STO_MERGE_INTERVAL_MS;
        if ((rc = sto_merge_start(db)) != 0) {
            sto_set_err(err, errlen, "%s", "cannot start the timeline merge thread");
            goto out_close;
        }
    }
    *out = db;
    return 0;
out_close:
    sto_close(db);
    return rc;
}

/* Flushes every memtable, so that the next open (and every read-only secondary, which
 * replays the primary's WAL on open) has no log to replay. */
static void sto_flush_all(sto_db *db)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();

    if (fo == NULL)
        return;
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < STO_CF_COUNT; i++) {
        char *rerr = NULL;

        if (db->cf[i] == NULL)
            continue;
        rocksdb_flush_cf(db->rdb, fo, db->cf[i], &rerr);
        if (rerr != NULL) {
            vg_log(VG_LOG_WARN, STO_MOD, "flush %s at close: %s", sto_cf_names[i], rerr);
            rocksdb_free(rerr);
        }
    }
    rocksdb_flushoptions_destroy(fo);
}

void sto_close(sto_db *db)
{
    if (db == NULL)
        return;
    sto_merge_stop(db);
    if (db->rdb != NULL && !db->ro)
        sto_flush_all(db);
    for (int i = 0; i < STO_CF_COUNT; i++)
        if (db->cf[i] != NULL)
            rocksdb_column_family_handle_destroy(db->cf[i]);
    if (db->rdb != NULL)
        rocksdb_close(db->rdb);
    for (int i = 0; i < STO_CF_COUNT; i++)
        if (db->cfopt[i] != NULL)
            rocksdb_options_destroy(db->cfopt[i]);
    if (db->dbopt != NULL)
        rocksdb_options_destroy(db->dbopt);
    if (db->cache != NULL)
        rocksdb_cache_destroy(db->cache);
    if (db->ropt != NULL)
        rocksdb_readoptions_destroy(db->ropt);
    if (db->wopt != NULL)
        rocksdb_writeoptions_destroy(db->wopt);
    if (db->secondary != NULL) {
        sto_rmtree(db->secondary);
        vg_free(db->secondary);
    }
    if (db->merge_cond_ok)
        pthread_cond_destroy(&db->merge_cond);
    if (db->wlock_ok)
        pthread_mutex_destroy(&db->wlock);
    vg_free(db->dirty);
    vg_free(db->path);
    vg_free(db);
}

int sto_catch_up(sto_db *db)
{
    char *rerr = NULL;

    if (!db->ro)
        return -VG_EINVAL;
    rocksdb_try_catch_up_with_primary(db->rdb, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_WARN, STO_MOD, "catch up with primary: %s", rerr);
        rocksdb_free(rerr);
        return -VG_EIO;
    }
    return 0;
}

/* ---- write batches ---------------------------------------------------------------- */

sto_wbatch *sto_wbatch_new(void)
{
    return vg_calloc(1, sizeof(sto_wbatch));
}

void sto_wbatch_destroy(sto_wbatch *b)
{
    if (b == NULL)
        return;
    if (b->wb != NULL)
        rocksdb_writebatch_destroy(b->wb);
    vg_free(b->dm);
    vg_free(b->buf);
    vg_free(b);
}

void sto_wbatch_clear(sto_wbatch *b)
{
    b->len = 0;
    b->nops = 0;
    b->failed = false;
    b->direct_bytes = 0;
    b->ndm = 0;
    if (b->wb != NULL)
        rocksdb_writebatch_clear(b->wb);
}

size_t sto_wbatch_bytes(const sto_wbatch *b)
{
    return b->len + b->direct_bytes;
}

int sto_wbatch_bind(sto_wbatch *b, sto_db *db)
{
    if (b->len != 0 || b->direct_bytes != 0 || db->ro)
        return -VG_EINVAL;
    if (b->wb == NULL && (b->wb = rocksdb_writebatch_create()) == NULL)
        return -VG_ENOMEM;
    b->db = db;
    return 0;
}

void sto_put_block(sto_wbatch *b, uint64_t mkey, int64_t first_ts_us, uint64_t first_seq,
                   const void *block, size_t len)
{
    uint8_t k[STO_TL_KEY_LEN];
    uint32_t day = sto_day(first_ts_us);

    sto_tl_key(k, day, mkey, first_ts_us, first_seq);
    if (b->db != NULL) {
        /* Bound: the block (the bulk of every write) is copied once, into RocksDB's batch. */
        rocksdb_writebatch_put_cf(b->wb, b->db->cf[STO_CF_TIMELINE], (const char *)k, sizeof(k),
                                  block, len);
        b->direct_bytes += sizeof(k) + len;
        b->nops++;
    } else {
        sto_rec_put(b, STO_CF_TIMELINE, k, sizeof(k), block, len);
    }
    sto_wbatch_note(b, day, mkey, first_ts_us);
}

void sto_put_machine(sto_wbatch *b, uint64_t mkey, const Vigil__MachineRecord *m)
{
    uint8_t k[8];

    sto_be64(k, mkey);
    sto_rec_put_msg(b, STO_CF_MACHINES, k, sizeof(k), &m->base);
}

void sto_put_process(sto_wbatch *b, uint64_t mkey, const Vigil__ProcessRecord *p)
{
    uint8_t k[STO_PROC_KEY_LEN];
    uint32_t pid = p->process ? p->process->pid : 0;
    int64_t ctime = p->process ? p->process->creation_time_us : 0;

    sto_be64(k, mkey);
    sto_be32(k + 8, pid);
    sto_be64(k + 12, sto_bias(ctime));
    sto_rec_put_msg(b, STO_CF_PROCESSES, k, sizeof(k), &p->base);
}

void sto_put_alert(sto_wbatch *b, const Vigil__Alert *a, bool outbox)
{
    size_t idlen = strlen(a->id);
    uint8_t *k;

    sto_rec_put_msg(b, STO_CF_ALERTS, a->id, idlen, &a->base);
    k = sto_rec_add(b, STO_OP_PUT, STO_CF_ALERT_IDX, 16 + idlen, 0);
    if (k != NULL)
        sto_alert_idx_key(k, a);
    if (outbox)
        sto_rec_put(b, STO_CF_OUTBOX, a->id, idlen, "", 0);
}

void sto_put_alert_replacing(sto_wbatch *b, const Vigil__Alert *a, const Vigil__Alert *old,
                             bool outbox)
{
    if (old != NULL &&
        (old->last_event_us != a->last_event_us || strcmp(old->tenant_id, a->tenant_id) != 0)) {
        uint8_t *k = sto_rec_add(b, STO_OP_DEL, STO_CF_ALERT_IDX, 16 + strlen(old->id), 0);

        if (k != NULL)
            sto_alert_idx_key(k, old);
    }
    sto_put_alert(b, a, outbox);
}

void sto_put_incident(sto_wbatch *b, const Vigil__Incident *inc)
{
    sto_rec_put_msg(b, STO_CF_INCIDENTS, inc->id, strlen(inc->id), &inc->base);
}

void sto_put_offset(sto_wbatch *b, const char *topic, int32_t partition, int64_t next_offset)
{
    size_t tl = strlen(topic);
    uint8_t *k = sto_rec_add(b, STO_OP_PUT, STO_CF_OFFSETS, tl + 5, 8);

    if (k == NULL)
        return;
    memcpy(k, topic, tl);
    k[tl] = '\0';
    sto_be32(k + tl + 1, (uint32_t)partition);
    sto_be64(k + tl + 5, (uint64_t)next_offset);
}

void sto_del_incident(sto_wbatch *b, const char *incident_id)
{
    sto_rec_del(b, STO_CF_INCIDENTS, incident_id, strlen(incident_id));
}

void sto_del_outbox(sto_wbatch *b, const char *alert_id)
{
    sto_rec_del(b, STO_CF_OUTBOX, alert_id, strlen(alert_id));
}

int sto_write(sto_db *db, sto_wbatch *b, char *err, size_t errlen)
{
    const uint8_t *p = b->buf, *end = b->buf + b->len;
    char *rerr = NULL;

    if (db->ro) {
        sto_set_err(err, errlen, "%s", "database is open read-only");
        return -VG_EUNSUP;
    }
    if (b->failed) {
        sto_set_err(err, errlen, "%s", "write batch lost an operation (out of memory)");
        return -VG_ENOMEM;
    }
    if (b->db != NULL && b->db != db) {
        sto_set_err(err, errlen, "%s", "write batch bound to another database");
        return -VG_EINVAL;
    }
    if (b->wb == NULL && (b->wb = rocksdb_writebatch_create()) == NULL)
        return -VG_ENOMEM;
    if (b->db == NULL)
        rocksdb_writebatch_clear(b->wb);
    while (p < end) {
        struct sto_rec r;
        const char *k, *v;

        memcpy(&r, p, sizeof(r));
        k = (const char *)p + sizeof(r);
        v = k + r.klen;
        if (r.op == STO_OP_PUT)
            rocksdb_writebatch_put_cf(b->wb, db->cf[r.cf], k, r.klen, v, r.vlen);
        else
            rocksdb_writebatch_delete_cf(b->wb, db->cf[r.cf], k, r.klen);
        p = (const uint8_t *)v + r.vlen;
    }
    pthread_mutex_lock(&db->wlock);
    rocksdb_write(db->rdb, db->wopt, b->wb, &rerr);
    if (rerr == NULL && db->merge_running)
        sto_merge_note(db, b->dm, b->ndm);
    pthread_mutex_unlock(&db->wlock);
    if (rerr != NULL) {
        /* An unbound batch is replayed from its records on a retry. A bound one keeps its
         * direct puts; its staged records are appended again on a retry, the same
         * operations in the same order, so the outcome is the same. */
        if (b->db == NULL)
            rocksdb_writebatch_clear(b->wb);
        sto_take_err(rerr, err, errlen);
        return -VG_EIO;
    }
    rocksdb_writebatch_clear(b->wb);
    b->direct_bytes = 0;
    return 0;
}

/* ---- point reads ------------------------------------------------------------------ */

int sto_get_machine(sto_db *db, uint64_t mkey, Vigil__MachineRecord **out)
{
    uint8_t k[8];

    sto_be64(k, mkey);
    return sto_get_raw(db, STO_CF_MACHINES, k, sizeof(k), &vigil__machine_record__descriptor,
                       (void **)out);
}

int sto_get_process(sto_db *db, uint64_t mkey, uint32_t pid, int64_t ctime_us,
                    Vigil__ProcessRecord **out)
{
    uint8_t k[STO_PROC_KEY_LEN];

    sto_be64(k, mkey);
    sto_be32(k + 8, pid);
    sto_be64(k + 12, sto_bias(ctime_us));
    return sto_get_raw(db, STO_CF_PROCESSES, k, sizeof(k), &vigil__process_record__descriptor,
                       (void **)out);
}

int sto_get_alert(sto_db *db, const char *id, Vigil__Alert **out)
{
    return sto_get_raw(db, STO_CF_ALERTS, id, strlen(id), &vigil__alert__descriptor, (void **)out);
}

int sto_get_incident(sto_db *db, const char *id, Vigil__Incident **out)
{
    return sto_get_raw(db, STO_CF_INCIDENTS, id, strlen(id), &vigil__incident__descriptor,
                       (void **)out);
}

bool sto_has_alert(sto_db *db, const char *id)
{
    rocksdb_pinnableslice_t *ps;
    char *rerr = NULL;

    if (db->cf[STO_CF_ALERTS] == NULL)
        return false;
    ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[STO_CF_ALERTS], id, strlen(id), &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_WARN, STO_MOD, "get alert %s: %s", id, rerr);
        rocksdb_free(rerr);
    }
    if (ps == NULL)
        return false;
    rocksdb_pinnableslice_destroy(ps);
    return true;
}

int sto_get_offset(sto_db *db, const char *topic, int32_t partition, int64_t *next_offset)
{
    size_t tl = strlen(topic), vlen;
    rocksdb_pinnableslice_t *ps;
    uint8_t *k;
    char *rerr = NULL;
    const char *v;
    int rc = -VG_ENOENT;

    if (db->cf[STO_CF_OFFSETS] == NULL)
        return -VG_ENOENT;
    k = vg_malloc(tl + 5);
    if (k == NULL)
        return -VG_ENOMEM;
    memcpy(k, topic, tl);
    k[tl] = '\0';
    sto_be32(k + tl + 1, (uint32_t)partition);
    ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[STO_CF_OFFSETS], (char *)k, tl + 5, &rerr);
    vg_free(k);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "get offset %s/%d: %s", topic, partition, rerr);
        rocksdb_free(rerr);
        return -VG_EIO;
    }
    if (ps == NULL)
        return -VG_ENOENT;
    v = rocksdb_pinnableslice_value(ps, &vlen);
    if (vlen == 8) {
        *next_offset = (int64_t)sto_rd64((const uint8_t *)v);
        rc = 0;
    } else {
        sto_count_corrupt(db);
        rc = -VG_EDECODE;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

/* ---- machine ownership ------------------------------------------------------------ */

#define STO_OWNER_PREFIX "owner:"

void sto_put_owner(sto_wbatch *b, const char *machine_id, const char *tenant)
{
    char k[256];
    int n = snprintf(k, sizeof(k), STO_OWNER_PREFIX "%s", machine_id);

    if (n > 0 && (size_t)n < sizeof(k))
        sto_rec_put(b, STO_CF_META, k, (size_t)n, tenant, strlen(tenant));
}

int sto_get_owner(sto_db *db, const char *machine_id, char *tenant, size_t tenantlen)
{
    rocksdb_pinnableslice_t *ps;
    char k[256], *rerr = NULL;
    const char *v;
    size_t vlen;
    int n = snprintf(k, sizeof(k), STO_OWNER_PREFIX "%s", machine_id);

    if (n <= 0 || (size_t)n >= sizeof(k) || db->cf[STO_CF_META] == NULL)
        return -VG_EINVAL;
    ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[STO_CF_META], k, (size_t)n, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "get owner of %s: %s", machine_id, rerr);
        rocksdb_free(rerr);
        return -VG_EIO;
    }
    if (ps == NULL)
        return -VG_ENOENT;
    v = rocksdb_pinnableslice_value(ps, &vlen);
    snprintf(tenant, tenantlen, "%.*s", (int)vlen, v);
    rocksdb_pinnableslice_destroy(ps);
    return 0;
}

/* ---- scans ------------------------------------------------------------------------ */

int sto_scan_processes(sto_db *db, uint64_t mkey,
                       bool (*fn)(void *ctx, const Vigil__ProcessRecord *p), void *ctx)
{
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint8_t lo[8], hi[8];
    bool more = true;

    sto_be64(lo, mkey);
    memcpy(hi, lo, 8);
    it = sto_iter(db, STO_CF_PROCESSES, &ro, lo, 8, hi, sto_prefix_next(hi, 8) ? 8 : 0);
    if (it == NULL)
        return db->cf[STO_CF_PROCESSES] == NULL ? 0 : -VG_ENOMEM;
    for (rocksdb_iter_seek(it, (const char *)lo, 8); more && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        Vigil__ProcessRecord *p;

        if (klen != STO_PROC_KEY_LEN || memcmp(k, lo, 8) != 0)
            break;
        p = vigil__process_record__unpack(NULL, vlen, (const uint8_t *)v);
        if (p == NULL) {
            sto_count_corrupt(db);
            continue;
        }
        more = fn(ctx, p);
        vigil__process_record__free_unpacked(p, NULL);
    }
    return sto_iter_done(it, ro);
}

int sto_scan_outbox(sto_db *db, bool (*fn)(void *ctx, const char *id), void *ctx)
{
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = sto_iter(db, STO_CF_OUTBOX, &ro, NULL, 0, NULL, 0);
    bool more = true;

    if (it == NULL)
        return db->cf[STO_CF_OUTBOX] == NULL ? 0 : -VG_ENOMEM;
    for (rocksdb_iter_seek_to_first(it); more && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        char *id = vg_strndup(k, klen);

        if (id == NULL) {
            rocksdb_iter_destroy(it);
            rocksdb_readoptions_destroy(ro);
            return -VG_ENOMEM;
        }
        more = fn(ctx, id);
        vg_free(id);
    }
    return sto_iter_done(it, ro);
}

int sto_scan_machines(sto_db *db,
                      bool (*fn)(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m),
                      void *ctx)
{
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = sto_iter(db, STO_CF_MACHINES, &ro, NULL, 0, NULL, 0);
    bool more = true;

    if (it == NULL)
        return db->cf[STO_CF_MACHINES] == NULL ? 0 : -VG_ENOMEM;
    for (rocksdb_iter_seek_to_first(it); more && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        Vigil__MachineRecord *m;

        m = klen == 8 ? vigil__machine_record__unpack(NULL, vlen, (const uint8_t *)v) : NULL;
        if (m == NULL) {
            sto_count_corrupt(db);
            continue;
        }
        more = fn(ctx, sto_rd64((const uint8_t *)k), m);
        vigil__machine_record__free_unpacked(m, NULL);
    }
    return sto_iter_done(it, ro);
}

int sto_scan_alerts(sto_db *db, const char *tenant, int64_t from_us, int64_t to_us,
                    bool (*fn)(void *ctx, const Vigil__Alert *a), void *ctx)
{
    uint64_t th = vg_hash64(tenant, strlen(tenant), 0);
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint8_t lo[16], hi[16];
    bool more = true;
    int rc;

    if (from_us > to_us)
        return 0;
    sto_be64(lo, th);
    sto_be64(lo + 8, sto_bias(from_us));
    sto_be64(hi, th);
    sto_be64(hi + 8, sto_bias(to_us));
    /* Entries at exactly to_us extend hi with the id, so the bound is hi's successor. */
    it = sto_iter(db, STO_CF_ALERT_IDX, &ro, lo, 16, hi, sto_prefix_next(hi, 16) ? 16 : 0);
    if (it == NULL)
        return db->cf[STO_CF_ALERT_IDX] == NULL ? 0 : -VG_ENOMEM;
    for (rocksdb_iter_seek_to_last(it); more && rocksdb_iter_valid(it); rocksdb_iter_prev(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        Vigil__Alert *a;
        char *id;

        if (klen < 16 || sto_rd64(k) != th)
            break;
        id = vg_strndup((const char *)k + 16, klen - 16);
        if (id == NULL) {
            more = false;
            continue;
        }
        rc = sto_get_alert(db, id, &a);
        vg_free(id);
        if (rc != 0)
            continue; /* an index entry whose alert is gone */
        /* Hash collisions and entries left by an update that did not use
         * sto_put_alert_replacing are filtered here. */
        if (strcmp(a->tenant_id, tenant) == 0 && sto_bias(a->last_event_us) == sto_rd64(k + 8))
            more = fn(ctx, a);
        vigil__alert__free_unpacked(a, NULL);
    }
    return sto_iter_done(it, ro);
}

/* ---- retention and size ----------------------------------------------------------- */

int sto_retention_run(sto_db *db, int64_t now_us)
{
    rocksdb_column_family_handle_t *cf = db->cf[STO_CF_TIMELINE];
    uint32_t cutoff = sto_day(now_us - db->retention_us), day = 0;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    uint8_t lo[4], hi[4];
    char *rerr = NULL;
    int days = 0, rc;

    if (db->ro)
        return -VG_EUNSUP;
    if (cutoff == 0)
        return 0;
    sto_be32(lo, 0);
    sto_be32(hi, cutoff);
    /* Count the days that hold data, hopping from one day to the next by seeking. */
    it = sto_iter(db, STO_CF_TIMELINE, &ro, lo, 4, hi, 4);
    if (it == NULL)
        return -VG_ENOMEM;
    for (rocksdb_iter_seek(it, (const char *)lo, 4); rocksdb_iter_valid(it);) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        uint8_t next[4];

        if (klen < 4)
            break;
        day = sto_rd32(k);
        days++;
        if (day == UINT32_MAX)
            break;
        sto_be32(next, day + 1);
        rocksdb_iter_seek(it, (const char *)next, 4);
    }
    if ((rc = sto_iter_done(it, ro)) != 0)
        return rc;
    if (days == 0)
        return 0;
    /* Whole files first (no rewrite), then a tombstone for the rest, then the compaction
     * that applies it and gives the space back. */
    pthread_mutex_lock(&db->wlock); /* a merge must not put back a block of these days */
    rocksdb_delete_file_in_range_cf(db->rdb, cf, (const char *)lo, 4, (const char *)hi, 4, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_WARN, STO_MOD, "retention: delete files: %s", rerr);
        rocksdb_free(rerr);
        rerr = NULL;
    }
    rocksdb_delete_range_cf(db->rdb, db->wopt, cf, (const char *)lo, 4, (const char *)hi, 4, &rerr);
    pthread_mutex_unlock(&db->wlock);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "retention: delete range: %s", rerr);
        rocksdb_free(rerr);
        return -VG_EIO;
    }
    if ((rc = sto_compact_cf(db, STO_CF_TIMELINE, (const char *)lo, 4, (const char *)hi, 4)))
        return rc;
    vg_log(VG_LOG_INFO, STO_MOD, "retention: dropped %d timeline days before day %u", days, cutoff);
    return days;
}

uint64_t sto_disk_bytes(sto_db *db)
{
    uint64_t total = 0, v;

    for (int i = 0; i < STO_CF_COUNT; i++)
        if (db->cf[i] != NULL &&
            rocksdb_property_int_cf(db->rdb, db->cf[i], "rocksdb.live-sst-files-size", &v) == 0)
            total += v;
    return total + sto_wal_bytes(db->path);
}

void sto_mem_usage(sto_db *db, struct sto_mem *m)
{
    uint64_t v;

    memset(m, 0, sizeof(*m));
    if (db->cache != NULL)
        m->block_cache = rocksdb_cache_get_usage(db->cache);
    for (int i = 0; i < STO_CF_COUNT; i++) {
        if (db->cf[i] == NULL)
            continue;
        if (rocksdb_property_int_cf(db->rdb, db->cf[i], "rocksdb.size-all-mem-tables", &v) == 0)
            m->memtables += v;
        if (rocksdb_property_int_cf(db->rdb, db->cf[i], "rocksdb.estimate-table-readers-mem", &v) ==
            0)
            m->table_readers += v;
    }
}

int sto_compact_all(sto_db *db)
{
    rocksdb_flushoptions_t *fo;
    int rc = 0;

    if (db->ro)
        return -VG_EUNSUP;
    fo = rocksdb_flushoptions_create();
    if (fo == NULL)
        return -VG_ENOMEM;
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < STO_CF_COUNT && rc == 0; i++) {
        char *rerr = NULL;

        rocksdb_flush_cf(db->rdb, fo, db->cf[i], &rerr);
        if (rerr != NULL) {
            vg_log(VG_LOG_ERROR, STO_MOD, "flush %s: %s", sto_cf_names[i], rerr);
            rocksdb_free(rerr);
            rc = -VG_EIO;
            break;
        }
        rc = sto_compact_cf(db, i, NULL, 0, NULL, 0);
    }
    rocksdb_flushoptions_destroy(fo);
    return rc;
}

char *sto_property(sto_db *db, const char *cf, const char *prop)
{
    char *v = NULL, *copy;

    for (int i = 0; i < STO_CF_COUNT; i++)
        if (strcmp(sto_cf_names[i], cf) == 0 && db->cf[i] != NULL)
            v = rocksdb_property_value_cf(db->rdb, db->cf[i], prop);
    if (v == NULL)
        return NULL;
    copy = vg_strdup(v);
    rocksdb_free(v);
    return copy;
}

uint64_t sto_corrupt_count(sto_db *db)
{
    return __atomic_load_n(&db->corrupt, __ATOMIC_RELAXED);
}

void sto_take_err(char *rerr, char *err, size_t errlen)
{
    sto_set_err(err, errlen, "%s", rerr);
    vg_log(VG_LOG_ERROR, STO_MOD, "%s", rerr);
    rocksdb_free(rerr);
}

/* ---- helpers: opening ------------------------------------------------------------- */

static void sto_set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, arg);
}

/*
 * The timeline takes nearly all the bytes. Flushes and the upper levels use LZ4, cheap on
 * the write path; the bottom level, where six months settle, uses zstd with a dictionary
 * trained per file, since one machine's events repeat paths, images and hashes. Four
 * memtables of 64 MiB let the writer go on while one flushes, instead of stalling.
 */
static void sto_timeline_options(rocksdb_options_t *co)
{
    static const int per_level[] = {
        rocksdb_lz4_compression,  rocksdb_lz4_compression,  rocksdb_zstd_compression,
        rocksdb_zstd_compression, rocksdb_zstd_compression, rocksdb_zstd_compression,
        rocksdb_zstd_compression,
    };

    rocksdb_options_set_write_buffer_size(co, 64u << 20);
    rocksdb_options_set_max_write_buffer_number(co, 4);
    rocksdb_options_set_compression_per_level(co, per_level, VG_ARRAY_SIZE(per_level));
    /* window bits -14, level 6, strategy 0, 64 KiB dictionary, enabled */
    rocksdb_options_set_bottommost_compression_options(co, -14, 6, 0, 64 << 10, 1);
    rocksdb_options_set_bottommost_compression_options_zstd_max_train_bytes(co, 64 * (64 << 10), 1);
}

/* Builds the db-wide and per-CF options; allocation failures surface at open. */
static void sto_make_options(sto_db *db, const struct sto_opts *o)
{
    rocksdb_block_based_table_options_t *scan, *point;

    db->cache = rocksdb_cache_create_lru(o->cache_bytes ? o->cache_bytes : STO_DEFAULT_CACHE);
    db->dbopt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(db->dbopt, 1);
    rocksdb_options_set_create_missing_column_families(db->dbopt, 1);
    rocksdb_options_set_max_background_jobs(db->dbopt, 4);
    rocksdb_options_set_keep_log_file_num(db->dbopt, 5);
    rocksdb_options_set_info_log_level(db->dbopt, 2 /* WARN */);
    /* A secondary instance must keep every file open (RocksDB requirement). It opens them
     * per column family each time it replays the primary's manifest, by default with 16
     * threads started for every such call: a `vigil timeline` query started ~370 threads. */
    if (db->ro) {
        rocksdb_options_set_max_open_files(db->dbopt, -1);
        rocksdb_options_set_max_file_opening_threads(db->dbopt, 2);
    }

    /* The timeline is only ever scanned by prefix: no whole-key bloom filter. */
    scan = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_size(scan, STO_BLOCK_SIZE);
    rocksdb_block_based_options_set_block_cache(scan, db->cache);
    point = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_size(point, STO_BLOCK_SIZE);
    rocksdb_block_based_options_set_block_cache(point, db->cache);
    rocksdb_block_based_options_set_filter_policy(point,
                                                  rocksdb_filterpolicy_create_bloom_full(10));

    for (int i = 0; i < STO_CF_COUNT; i++) {
        rocksdb_options_t *co = rocksdb_options_create_copy(db->dbopt);
        bool pt = i == STO_CF_MACHINES || i == STO_CF_PROCESSES || i == STO_CF_ALERTS;

        rocksdb_options_set_compression(co, rocksdb_zstd_compression);
        rocksdb_options_set_bottommost_compression(co, rocksdb_zstd_compression);
        rocksdb_options_set_level_compaction_dynamic_level_bytes(co, 1);
        rocksdb_options_set_block_based_table_factory(co, pt ? point : scan);
        if (i == STO_CF_TIMELINE)
            sto_timeline_options(co);
        db->cfopt[i] = co;
    }
    /* The factories copied the table options (and share the cache and the filter). */
    rocksdb_block_based_options_destroy(scan);
    rocksdb_block_based_options_destroy(point);

    db->ropt = rocksdb_readoptions_create();
    db->wopt = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(db->wopt, o->sync);
}

static int sto_open_rw(sto_db *db, char *err, size_t errlen)
{
    char *rerr = NULL;

    if (sto_mkdir_p(db->path) != 0) {
        sto_set_err(err, errlen, "cannot create %s", db->path);
        return -VG_EIO;
    }
    db->rdb =
        rocksdb_open_column_families(db->cfopt[0], db->path, STO_CF_COUNT, sto_cf_names,
                                     (const rocksdb_options_t *const *)db->cfopt, db->cf, &rerr);
    if (rerr != NULL) {
        sto_take_err(rerr, err, errlen);
        db->rdb = NULL;
        memset(db->cf, 0, sizeof(db->cf));
        return -VG_EIO;
    }
    return 0;
}

/*
 * Opens as a RocksDB secondary instance, which works while `vigil run` holds the primary
 * (a plain read-only open would too, but would not follow the primary's WAL later). Only
 * the column families that exist are opened; the others stay NULL and read as empty.
 */
static int sto_open_secondary(sto_db *db, char *err, size_t errlen)
{
    static atomic_uint seq;
    rocksdb_column_family_handle_t *h[64];
    const rocksdb_options_t *opts[64];
    char **names, *rerr = NULL;
    size_t n = 0, sz;
    int rc = 0;

    names = rocksdb_list_column_families(db->dbopt, db->path, &n, &rerr);
    if (rerr != NULL) {
        sto_take_err(rerr, err, errlen);
        /* RocksDB returns an empty array even on error. */
        rocksdb_list_column_families_destroy(names, n);
        return -VG_EIO;
    }
    if (n > VG_ARRAY_SIZE(h)) {
        sto_set_err(err, errlen, "%s: too many column families", db->path);
        rc = -VG_EUNSUP;
        goto out_free_names;
    }
    sz = strlen(db->path) + 64;
    db->secondary = vg_malloc(sz);
    if (db->secondary == NULL) {
        rc = -VG_ENOMEM;
        goto out_free_names;
    }
    snprintf(db->secondary, sz, "%s/.secondary-%ld-%u", db->path, (long)getpid(),
             atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed));
    sto_rmtree(db->secondary); /* a leftover of a crashed process with the same pid */
    for (size_t i = 0; i < n; i++) {
        opts[i] = db->cfopt[0];
        for (int c = 0; c < STO_CF_COUNT; c++)
            if (strcmp(names[i], sto_cf_names[c]) == 0)
                opts[i] = db->cfopt[c];
    }
    db->rdb = rocksdb_open_as_secondary_column_families(db->dbopt, db->path, db->secondary, (int)n,
                                                        (const char *const *)names, opts, h, &rerr);
    if (rerr != NULL) {
        sto_take_err(rerr, err, errlen);
        db->rdb = NULL;
        rc = -VG_EIO;
        goto out_free_names;
    }
    for (size_t i = 0; i < n; i++) {
        int c = STO_CF_COUNT;

        while (--c >= 0 && strcmp(names[i], sto_cf_names[c]) != 0)
            ;
        if (c >= 0)
            db->cf[c] = h[i];
        else
            rocksdb_column_family_handle_destroy(h[i]); /* not ours: never read */
    }
    rc = sto_catch_up(db) == 0 ? 0 : -VG_EIO;
out_free_names:
    rocksdb_list_column_families_destroy(names, n);
    return rc;
}

/* Stamps a new database with the layout version and refuses one of another version. */
static int sto_check_schema(sto_db *db, char *err, size_t errlen)
{
    static const char key[] = "schema";
    rocksdb_pinnableslice_t *ps;
    char *rerr = NULL;
    const char *v;
    size_t vlen;
    int rc = 0;

    ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[STO_CF_META], key, sizeof(key) - 1, &rerr);
    if (rerr != NULL) {
        sto_take_err(rerr, err, errlen);
        return -VG_EIO;
    }
    if (ps == NULL) {
        rocksdb_put_cf(db->rdb, db->wopt, db->cf[STO_CF_META], key, sizeof(key) - 1,
                       STO_SCHEMA_VERSION, strlen(STO_SCHEMA_VERSION), &rerr);
        if (rerr != NULL) {
            sto_take_err(rerr, err, errlen);
            return -VG_EIO;
        }
        return 0;
    }
    v = rocksdb_pinnableslice_value(ps, &vlen);
    if (vlen != strlen(STO_SCHEMA_VERSION) || memcmp(v, STO_SCHEMA_VERSION, vlen) != 0) {
        sto_set_err(err, errlen, "%s: unknown storage schema version", db->path);
        rc = -VG_EUNSUP;
    }
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int sto_mkdir_p(const char *path)
{
    char *p = vg_strdup(path);
    int rc = 0;

    if (p == NULL)
        return -VG_ENOMEM;
    for (char *s = p + 1; *s != '\0' && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -VG_EIO;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = -VG_EIO;
    vg_free(p);
    return rc;
}

static int sto_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int sto_rmtree(const char *path)
{
    return nftw(path, sto_rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -VG_EIO;
}

/* ---- helpers: batches ------------------------------------------------------------- */

/* Appends a record header and room for key and value; returns the key's address (the
 * value follows it), or NULL after marking the batch failed. */
static uint8_t *sto_rec_add(sto_wbatch *b, enum sto_op op, enum sto_cf cf, size_t klen, size_t vlen)
{
    struct sto_rec r = {.op = (uint8_t)op, .cf = (uint8_t)cf};
    size_t need = sizeof(r) + klen + vlen;
    uint8_t *p;

    if (b->failed || klen > UINT32_MAX || vlen > UINT32_MAX)
        goto out_fail;
    if (b->cap - b->len < need) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap - b->len < need)
            cap *= 2;
        p = vg_realloc(b->buf, cap);
        if (p == NULL)
            goto out_fail;
        b->buf = p;
        b->cap = cap;
    }
    r.klen = (uint32_t)klen;
    r.vlen = (uint32_t)vlen;
    p = b->buf + b->len;
    memcpy(p, &r, sizeof(r));
    b->len += need;
    b->nops++;
    return p + sizeof(r);
out_fail:
    if (!b->failed)
        vg_log(VG_LOG_ERROR, STO_MOD, "write batch: out of memory; the batch will be refused");
    b->failed = true;
    return NULL;
}

static void sto_rec_put(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen, const void *v,
                        size_t vlen)
{
    uint8_t *p = sto_rec_add(b, STO_OP_PUT, cf, klen, vlen);

    if (p == NULL)
        return;
    memcpy(p, k, klen);
    if (vlen)
        memcpy(p + klen, v, vlen);
}

static void sto_rec_del(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen)
{
    uint8_t *p = sto_rec_add(b, STO_OP_DEL, cf, klen, 0);

    if (p != NULL)
        memcpy(p, k, klen);
}

/* Packs the message straight into the batch. */
static void sto_rec_put_msg(sto_wbatch *b, enum sto_cf cf, const void *k, size_t klen,
                            const ProtobufCMessage *m)
{
    size_t vlen = protobuf_c_message_get_packed_size(m);
    uint8_t *p = sto_rec_add(b, STO_OP_PUT, cf, klen, vlen);

    if (p == NULL)
        return;
    memcpy(p, k, klen);
    protobuf_c_message_pack(m, p + klen);
}

/* Remembers the machine-day of a block for the merge thread; consecutive puts of one
 * machine-day are noted once. Out of memory only costs the merge a chance. */
static void sto_wbatch_note(sto_wbatch *b, uint32_t day, uint64_t mkey, int64_t ts)
{
    if (b->ndm > 0 && b->dm[b->ndm - 1].day == day && b->dm[b->ndm - 1].mkey == mkey) {
        if (ts < b->dm[b->ndm - 1].from_ts)
            b->dm[b->ndm - 1].from_ts = ts;
        return;
    }
    if (b->ndm == b->capdm) {
        size_t cap = b->capdm ? b->capdm * 2 : 64;
        struct sto_dm *dm = vg_realloc(b->dm, cap * sizeof(*dm));

        if (dm == NULL)
            return;
        b->dm = dm;
        b->capdm = cap;
    }
    b->dm[b->ndm].day = day;
    b->dm[b->ndm].mkey = mkey;
    b->dm[b->ndm].from_ts = ts;
    b->ndm++;
}

/* Writes tenant_hash | last_event biased | id into k (16 + strlen(id) bytes). */
static size_t sto_alert_idx_key(uint8_t *k, const Vigil__Alert *a)
{
    size_t idlen = strlen(a->id);

    sto_be64(k, vg_hash64(a->tenant_id, strlen(a->tenant_id), 0));
    sto_be64(k + 8, sto_bias(a->last_event_us));
    memcpy(k + 16, a->id, idlen);
    return 16 + idlen;
}

/* ---- helpers: reads --------------------------------------------------------------- */

static int sto_get_raw(sto_db *db, enum sto_cf cf, const void *k, size_t klen,
                       const ProtobufCMessageDescriptor *d, void **out)
{
    rocksdb_pinnableslice_t *ps;
    char *rerr = NULL;
    const char *v;
    size_t vlen;

    *out = NULL;
    if (db->cf[cf] == NULL)
        return -VG_ENOENT;
    ps = rocksdb_get_pinned_cf(db->rdb, db->ropt, db->cf[cf], k, klen, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "get from %s: %s", sto_cf_names[cf], rerr);
        rocksdb_free(rerr);
        return -VG_EIO;
    }
    if (ps == NULL)
        return -VG_ENOENT;
    v = rocksdb_pinnableslice_value(ps, &vlen);
    *out = protobuf_c_message_unpack(d, NULL, vlen, (const uint8_t *)v);
    rocksdb_pinnableslice_destroy(ps);
    if (*out == NULL) {
        sto_count_corrupt(db);
        vg_log(VG_LOG_WARN, STO_MOD, "corrupt record in %s", sto_cf_names[cf]);
        return -VG_EDECODE;
    }
    return 0;
}

/* An iterator over cf bounded to [lo, hi) (either may be absent: len 0); *ro must be
 * destroyed with it (sto_iter_done). NULL when cf is absent or out of memory. */
static rocksdb_iterator_t *sto_iter(sto_db *db, enum sto_cf cf, rocksdb_readoptions_t **ro,
                                    const uint8_t *lo, size_t lolen, const uint8_t *hi,
                                    size_t hilen)
{
    rocksdb_iterator_t *it;

    *ro = NULL;
    if (db->cf[cf] == NULL)
        return NULL;
    *ro = rocksdb_readoptions_create();
    /* The bounds are not copied by RocksDB: the callers' arrays outlive the iterator. */
    if (lolen)
        rocksdb_readoptions_set_iterate_lower_bound(*ro, (const char *)lo, lolen);
    if (hilen)
        rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)hi, hilen);
    it = rocksdb_create_iterator_cf(db->rdb, *ro, db->cf[cf]);
    if (it == NULL) {
        rocksdb_readoptions_destroy(*ro);
        *ro = NULL;
    }
    return it;
}

/* Destroys a scan's iterator and options; returns 0 or -VG_EIO if the scan failed. */
static int sto_iter_done(rocksdb_iterator_t *it, rocksdb_readoptions_t *ro)
{
    char *rerr = NULL;
    int rc = 0;

    rocksdb_iter_get_error(it, &rerr);
    if (rerr != NULL) {
        vg_log(VG_LOG_ERROR, STO_MOD, "scan: %s", rerr);
        rocksdb_free(rerr);
        rc = -VG_EIO;
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* Turns k into the smallest key greater than every key with prefix k (big-endian +1).
 * Returns false when there is none (all 0xff). */
static bool sto_prefix_next(uint8_t *k, size_t n)
{
    while (n-- > 0)
        if (++k[n] != 0)
            return true;
    return false;
}

/* Sum of the sizes of the WAL files (NNNNNN.log) in the data directory. */
static uint64_t sto_wal_bytes(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    uint64_t total = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        struct stat st;

        if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* Compacts [lo, hi] of a column family (NULL: unbounded), forcing the last level. */
static int sto_compact_cf(sto_db *db, enum sto_cf cf, const char *lo, size_t lolen, const char *hi,
                          size_t hilen)
{
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();

    if (co == NULL)
        return -VG_ENOMEM;
    rocksdb_compactoptions_set_bottommost_level_compaction(co, STO_BOTTOMMOST_FORCE);
    rocksdb_compact_range_cf_opt(db->rdb, db->cf[cf], co, lo, lolen, hi, hilen);
    rocksdb_compactoptions_destroy(co);
    return 0;
}
