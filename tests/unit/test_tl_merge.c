/*
 * test_tl_merge.c - merging small timeline blocks (storage/sto_merge.c) against a real
 * RocksDB in a temporary directory: a machine-day reads back the same events in the same
 * order after merging; late events and re-deliveries after a merge land exactly once;
 * retention still drops whole days and gives the space back; a page spans merged and
 * unmerged blocks; a writer racing the merge loses nothing; the background thread merges,
 * and after a restart also the newest days that the previous process left unmerged.
 */
#include "vgtest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage_int.h"

#define DAY0 INT64_C(20000)
#define T0   (DAY0 * VG_US_PER_DAY + INT64_C(8) * 3600 * VG_US_PER_SEC)

struct tev {
    int64_t ts;
    uint64_t seq;
};

struct evbuf {
    Vigil__Event ev;
    Vigil__ProcessRef actor;
    Vigil__FileEvent file;
    char cmd[96];
    char path[96];
};

/* What a machine's timeline must hold: every event written, once. */
struct truth {
    struct tev *ev;
    size_t n, cap;
};

static const uint64_t MA = 0x1111, MB = 0x2222;

static void fill_event(struct evbuf *b, int64_t ts, uint64_t seq)
{
    vigil__event__init(&b->ev);
    vigil__process_ref__init(&b->actor);
    vigil__file_event__init(&b->file);
    snprintf(b->cmd, sizeof(b->cmd), "svc.exe -k netsvcs -p %llu", (unsigned long long)seq);
    snprintf(b->path, sizeof(b->path), "C:\\Temp\\f%llu.tmp", (unsigned long long)seq);
    b->actor.pid = (uint32_t)(1000 + seq % 50);
    b->actor.image = "C:\\Windows\\System32\\svchost.exe";
    b->actor.command_line = b->cmd;
    b->file.op = VIGIL__FILE_OP__FILE_CREATED;
    b->file.path = b->path;
    b->file.size = seq * 17;
    b->ev.seq = seq;
    b->ev.ts_us = ts;
    b->ev.actor = &b->actor;
    b->ev.kind_case = VIGIL__EVENT__KIND_FILE;
    b->ev.file = &b->file;
}

static void truth_add(struct truth *t, int64_t ts, uint64_t seq)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->ev[i].ts == ts && t->ev[i].seq == seq)
            return; /* a re-delivery: still once */
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->ev = realloc(t->ev, t->cap * sizeof(*t->ev));
        assert_non_null(t->ev);
    }
    t->ev[t->n].ts = ts;
    t->ev[t->n].seq = seq;
    t->n++;
}

static int cmp_tev(const void *a, const void *b)
{
    const struct tev *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One block of n events in the given (arrival) order, keyed by the first, either bare (as
 * the shards write) or as a zstd frame (sto_block_encode). Adds them to t when given. */
static void put_block(sto_wbatch *wb, uint64_t mkey, const struct tev *evs, size_t n, bool zstd,
                      struct truth *t)
{
    struct evbuf *bufs = calloc(n, sizeof(*bufs));
    Vigil__Event **ptrs = calloc(n, sizeof(*ptrs));
    Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT;
    uint8_t *blk;
    size_t len;

    assert_non_null(bufs);
    assert_non_null(ptrs);
    for (size_t i = 0; i < n; i++) {
        fill_event(&bufs[i], evs[i].ts, evs[i].seq);
        ptrs[i] = &bufs[i].ev;
        if (t != NULL)
            truth_add(t, evs[i].ts, evs[i].seq);
    }
    tb.tenant_id = "t1";
    tb.machine_id = "m";
    tb.first_seq = evs[0].seq;
    tb.n_events = n;
    tb.events = ptrs;
    if (zstd) {
        assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);
    } else {
        len = vigil__telemetry_batch__get_packed_size(&tb);
        blk = vg_malloc(len);
        assert_non_null(blk);
        vigil__telemetry_batch__pack(&tb, blk);
    }
    sto_put_block(wb, mkey, evs[0].ts, evs[0].seq, blk, len);
    vg_free(blk);
    free(ptrs);
    free(bufs);
}

static sto_db *open_db(const char *path, int merge_ms)
{
    struct sto_opts o = {.path = path, .cache_bytes = 8 << 20, .merge_interval_ms = merge_ms};
    char err[256] = "";
    sto_db *db = NULL;

    if (sto_open(&o, &db, err, sizeof(err)) != 0)
        fail_msg("sto_open(%s): %s", path, err);
    return db;
}

static void write_batch(sto_db *db, sto_wbatch *wb)
{
    char err[256] = "";

    assert_int_equal(sto_write(db, wb, err, sizeof(err)), 0);
    sto_wbatch_clear(wb);
}

/*
 * Writes nblocks blocks of per events for mkey from ts0 on (an event every 500 ms), seq
 * from seq0. Every block's third event arrives two minutes late (its time is earlier than
 * the block's first), as a sensor that buffered it would send it.
 */
static void write_blocks(sto_db *db, uint64_t mkey, int64_t ts0, uint64_t seq0, int nblocks,
                         int per, bool zstd, struct truth *t)
{
    sto_wbatch *wb = sto_wbatch_new();
    struct tev evs[64];

    assert_true(per <= 64);
    for (int b = 0; b < nblocks; b++) {
        for (int i = 0; i < per; i++) {
            uint64_t k = (uint64_t)(b * per + i);

            evs[i].seq = seq0 + k;
            evs[i].ts = ts0 + (int64_t)k * 500000 - (i == 2 ? 120 * VG_US_PER_SEC : 0);
        }
        put_block(wb, mkey, evs, (size_t)per, zstd, t);
        if (b % 16 == 15)
            write_batch(db, wb);
    }
    write_batch(db, wb);
    sto_wbatch_destroy(wb);
}

/* Reads [from, to] and checks it equals the truth's events in that range, in order, with
 * their contents intact. Returns the number of events. */
static size_t check_read(sto_db *db, uint64_t mkey, struct truth *t, int64_t from, int64_t to,
                         bool desc)
{
    struct tev *want = malloc((t->n + 1) * sizeof(*want));
    const Vigil__Event *ev;
    sto_tl_iter *it;
    size_t n = 0, got = 0;
    int rc;

    assert_non_null(want);
    for (size_t i = 0; i < t->n; i++)
        if (t->ev[i].ts >= from && t->ev[i].ts <= to)
            want[n++] = t->ev[i];
    qsort(want, n, sizeof(*want), cmp_tev);
    assert_int_equal(sto_tl_open(db, mkey, from, to, desc, &it), 0);
    while ((rc = sto_tl_next(it, &ev)) == 1) {
        const struct tev *w;
        char cmd[96];

        assert_true(got < n);
        w = &want[desc ? n - 1 - got : got];
        assert_int_equal(ev->ts_us, w->ts);
        assert_int_equal(ev->seq, w->seq);
        assert_int_equal(ev->kind_case, VIGIL__EVENT__KIND_FILE);
        assert_int_equal(ev->file->size, ev->seq * 17);
        snprintf(cmd, sizeof(cmd), "svc.exe -k netsvcs -p %llu", (unsigned long long)ev->seq);
        assert_string_equal(ev->actor->command_line, cmd);
        got++;
    }
    sto_tl_close(it);
    assert_int_equal(rc, 0);
    assert_int_equal(got, n);
    free(want);
    return got;
}

/* Timeline keys (and events stored in them, duplicates included) of one machine-day. */
static size_t count_keys(sto_db *db, uint32_t day, uint64_t mkey, size_t *events, size_t *merged)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db->rdb, ro, db->cf[STO_CF_TIMELINE]);
    uint8_t p[STO_TL_PREFIX_LEN];
    size_t n = 0;

    if (events != NULL)
        *events = 0;
    if (merged != NULL)
        *merged = 0;
    sto_be32(p, day);
    sto_be64(p + 4, mkey);
    for (rocksdb_iter_seek(it, (const char *)p, sizeof(p)); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        Vigil__TelemetryBatch *b;

        if (memcmp(k, p, sizeof(p)) != 0)
            break;
        n++;
        if (merged != NULL && klen == STO_TL_MKEY_LEN)
            (*merged)++;
        if (events != NULL && sto_block_decode(v, vlen, NULL, &b) == 0) {
            *events += b->n_events;
            vigil__telemetry_batch__free_unpacked(b, NULL);
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return n;
}

struct fx {
    char *dir;
    sto_db *db;
    struct truth ta, tb; /* machines MA and MB */
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->dir = vgt_tmpdir("tlmerge");
    f->db = open_db(f->dir, -1);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    sto_close(f->db);
    sto_thread_cleanup();
    vgt_rmtree(f->dir);
    free(f->dir);
    free(f->ta.ev);
    free(f->tb.ev);
    free(f);
    return 0;
}

static void check_all(struct fx *f)
{
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, false);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, true);
    check_read(f->db, MB, &f->tb, INT64_MIN, INT64_MAX, false);
    check_read(f->db, MB, &f->tb, INT64_MIN, INT64_MAX, true);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_merge_same_events(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    size_t evs, merged;
    uint32_t d = (uint32_t)DAY0;

    write_blocks(f->db, MA, T0, 1, 60, 8, false, &f->ta);
    write_blocks(f->db, MA, T0 + VG_US_PER_DAY, 1000, 30, 8, true, &f->ta);
    write_blocks(f->db, MB, T0, 1, 20, 8, false, &f->tb);
    assert_int_equal(count_keys(f->db, d, MA, NULL, NULL), 60);
    check_all(f);

    assert_int_equal(sto_tl_merge(f->db, 0, UINT32_MAX, &st), 0);
    assert_int_equal(st.blocks_in, 110);
    assert_int_equal(st.runs, 3);
    assert_int_equal(st.events, 880);
    assert_int_equal(st.conflicts, 0);
    assert_int_equal(count_keys(f->db, d, MA, &evs, &merged), 1);
    assert_int_equal(evs, 480);
    assert_int_equal(merged, 1);
    assert_int_equal(count_keys(f->db, d + 1, MA, NULL, NULL), 1);
    assert_int_equal(count_keys(f->db, d, MB, NULL, NULL), 1);
    check_all(f);
    /* Bounds inside a merged block, to the microsecond. */
    check_read(f->db, MA, &f->ta, f->ta.ev[37].ts, f->ta.ev[201].ts, false);
    check_read(f->db, MA, &f->ta, f->ta.ev[37].ts + 1, f->ta.ev[201].ts - 1, true);

    /* Nothing left to merge: a second pass changes nothing. */
    memset(&st, 0, sizeof(st));
    assert_int_equal(sto_tl_merge(f->db, 0, UINT32_MAX, &st), 0);
    assert_int_equal(st.runs, 0);
    check_all(f);
}

static void test_merge_late_and_redelivery(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    sto_wbatch *wb = sto_wbatch_new();
    struct tev again[16], late[3];
    size_t evs, merged;
    uint32_t d = (uint32_t)DAY0;

    write_blocks(f->db, MA, T0, 1, 20, 8, false, &f->ta);
    assert_int_equal(sto_tl_merge_machine_day(f->db, d, MA, &st), 0);
    assert_int_equal(st.runs, 1);
    assert_int_equal(count_keys(f->db, d, MA, NULL, NULL), 1);

    /* Block 5 delivered again with block 6's events too, under block 5's own key (the
     * writer's 28-byte key, beside the merged block's 29-byte one). */
    for (int i = 0; i < 16; i++) {
        again[i].seq = 1 + 40 + (uint64_t)i;
        again[i].ts = T0 + (int64_t)(40 + i) * 500000 - (i % 8 == 2 ? 120 * VG_US_PER_SEC : 0);
    }
    put_block(wb, MA, again, 16, false, &f->ta);
    /* Late events: hours before everything else of the day, one of them twice. */
    late[0] = (struct tev){T0 - 3600 * VG_US_PER_SEC, 900000};
    late[1] = (struct tev){T0 - 1800 * VG_US_PER_SEC, 900001};
    late[2] = late[0];
    put_block(wb, MA, late, 3, true, &f->ta);
    write_batch(f->db, wb);
    assert_int_equal(f->ta.n, 162);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, false);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, true);

    /* Merging again folds them in: one block, every event stored once. */
    memset(&st, 0, sizeof(st));
    assert_int_equal(sto_tl_merge_machine_day(f->db, d, MA, &st), 0);
    assert_int_equal(st.runs, 1);
    assert_int_equal(st.blocks_in, 3);
    /* The late block's key sorts first, so it heads the new run and the old merged block
     * is folded into it: one block, each event once. */
    assert_int_equal(count_keys(f->db, d, MA, &evs, &merged), 1);
    assert_int_equal(merged, 1);
    assert_int_equal(evs, 162);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, false);

    /* The same re-delivery once more, after the second merge. */
    put_block(wb, MA, again, 16, false, &f->ta);
    write_batch(f->db, wb);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, true);
    sto_wbatch_destroy(wb);
}

static void test_merge_page_spans(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    const Vigil__Event *ev;
    sto_tl_iter *it;
    size_t merged;
    uint32_t d = (uint32_t)DAY0;
    int64_t at;
    int n = 0;

    write_blocks(f->db, MA, T0, 1, 50, 8, false, &f->ta);
    assert_int_equal(sto_tl_merge(f->db, d, d, &st), 0);
    /* After the merge: more small blocks later the same day, and the next day. */
    write_blocks(f->db, MA, T0 + 400 * 500000, 401, 30, 8, false, &f->ta);
    write_blocks(f->db, MA, T0 + VG_US_PER_DAY, 5000, 10, 8, false, &f->ta);
    assert_int_equal(count_keys(f->db, d, MA, NULL, &merged), 31);
    assert_int_equal(merged, 1);
    qsort(f->ta.ev, f->ta.n, sizeof(*f->ta.ev), cmp_tev);
    /* A page of 300 from inside the merged block on, across the unmerged ones into the
     * next day; and the page before it, newest first. */
    at = f->ta.ev[250].ts;
    assert_int_equal(sto_tl_open(f->db, MA, at, INT64_MAX, false, &it), 0);
    while (n < 300 && sto_tl_next(it, &ev) == 1) {
        assert_int_equal(ev->ts_us, f->ta.ev[250 + n].ts);
        assert_int_equal(ev->seq, f->ta.ev[250 + n].seq);
        n++;
    }
    sto_tl_close(it);
    assert_int_equal(n, 300);
    at = f->ta.ev[620].ts;
    n = 0;
    assert_int_equal(sto_tl_open(f->db, MA, INT64_MIN, at, true, &it), 0);
    while (n < 300 && sto_tl_next(it, &ev) == 1) {
        assert_int_equal(ev->seq, f->ta.ev[620 - n].seq);
        n++;
    }
    sto_tl_close(it);
    assert_int_equal(n, 300);
    check_read(f->db, MA, &f->ta, f->ta.ev[390].ts, f->ta.ev[410].ts, false);
}

static void test_merge_corrupt_block_stays(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    sto_wbatch *wb = sto_wbatch_new();
    static const char junk[] = "\x28\xb5\x2f\xfd not a block";
    uint64_t before;
    uint32_t d = (uint32_t)DAY0;

    write_blocks(f->db, MA, T0, 1, 20, 8, false, &f->ta);
    /* Keyed between block 9 and block 10. */
    sto_put_block(wb, MA, T0 + 80 * 500000 - 1, 0, junk, sizeof(junk));
    write_batch(f->db, wb);
    assert_int_equal(sto_tl_merge(f->db, d, d, &st), 0);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.runs, 2);
    assert_int_equal(st.blocks_in, 20);
    assert_int_equal(count_keys(f->db, d, MA, NULL, NULL), 3);
    before = sto_corrupt_count(f->db);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, false);
    assert_int_equal(sto_corrupt_count(f->db), before + 1);
    sto_wbatch_destroy(wb);
}

static void test_merge_retention(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    uint64_t before, after;
    int64_t now;

    for (int day = 0; day < 10; day++) {
        write_blocks(f->db, MA, T0 + day * VG_US_PER_DAY, 1 + (uint64_t)day * 1000, 40, 8, false,
                     &f->ta);
        write_blocks(f->db, MB, T0 + day * VG_US_PER_DAY, 1 + (uint64_t)day * 1000, 40, 8, false,
                     &f->tb);
    }
    assert_int_equal(sto_tl_merge(f->db, 0, UINT32_MAX, &st), 0);
    assert_int_equal(st.runs, 20);
    assert_int_equal(sto_compact_all(f->db), 0);
    before = sto_disk_bytes(f->db);
    /* Retention (183 days) with the cutoff at day 6: days 0-5 go, whole. */
    now = (DAY0 + 6) * VG_US_PER_DAY + INT64_C(183) * VG_US_PER_DAY;
    assert_int_equal(sto_retention_run(f->db, now), 6);
    assert_int_equal(sto_compact_all(f->db), 0);
    after = sto_disk_bytes(f->db);
    assert_true(after < before);
    for (uint32_t day = 0; day < 10; day++)
        assert_int_equal(count_keys(f->db, (uint32_t)DAY0 + day, MA, NULL, NULL), day < 6 ? 0 : 1);
    {
        struct truth keep = {0};

        for (size_t i = 0; i < f->ta.n; i++)
            if (f->ta.ev[i].ts >= (DAY0 + 6) * VG_US_PER_DAY)
                truth_add(&keep, f->ta.ev[i].ts, f->ta.ev[i].seq);
        assert_int_equal(keep.n, 4 * 320);
        assert_int_equal(check_read(f->db, MA, &keep, INT64_MIN, INT64_MAX, false), 4 * 320);
        free(keep.ev);
    }
    /* A merge after retention brings nothing back. */
    memset(&st, 0, sizeof(st));
    assert_int_equal(sto_tl_merge(f->db, 0, UINT32_MAX, &st), 0);
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL), 0);
}

/* A writer that keeps adding late events and re-deliveries to the day being merged. */
struct racer {
    sto_db *db;
    struct truth *t;
    int rounds;
    int finished; /* atomic: set when the last write is done */
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    sto_wbatch *wb = sto_wbatch_new();
    char err[256];

    for (int i = 0; i < r->rounds; i++) {
        struct tev evs[4];

        for (int j = 0; j < 4; j++) {
            /* New late events, and (every other round) a repeat of a stored one. */
            evs[j].seq = 100000 + (uint64_t)(i * 4 + j);
            evs[j].ts = T0 - (int64_t)(i * 4 + j + 1) * VG_US_PER_SEC;
        }
        if (i % 2 == 1) {
            int k = i % 100 + (i % 100 % 8 == 2); /* an event stored as written (not late) */

            evs[3] = (struct tev){T0 + (int64_t)k * 500000, 1 + (uint64_t)k};
        }
        put_block(wb, MA, evs, 4, i % 3 == 0, r->t);
        if (sto_write(r->db, wb, err, sizeof(err)) != 0)
            fail_msg("racer write: %s", err);
        sto_wbatch_clear(wb);
    }
    sto_wbatch_destroy(wb);
    sto_thread_cleanup();
    __atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_merge_races_writer(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    struct truth late = {0};
    struct racer r = {.db = f->db, .t = &late, .rounds = 300};
    pthread_t th;

    write_blocks(f->db, MA, T0, 1, 60, 8, false, &f->ta);
    assert_int_equal(pthread_create(&th, NULL, racer_main, &r), 0);
    /* Merge as fast as possible while it writes; a run it touched is left alone. */
    while (!__atomic_load_n(&r.finished, __ATOMIC_ACQUIRE))
        assert_int_equal(sto_tl_merge_machine_day(f->db, (uint32_t)DAY0, MA, &st), 0);
    pthread_join(th, NULL);
    assert_int_equal(sto_tl_merge_machine_day(f->db, (uint32_t)DAY0, MA, &st), 0);
    for (size_t i = 0; i < late.n; i++)
        truth_add(&f->ta, late.ev[i].ts, late.ev[i].seq);
    assert_int_equal(f->ta.n, 480 + 1050); /* 300 x 4 written, 150 of them repeats */
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, false);
    check_read(f->db, MA, &f->ta, INT64_MIN, INT64_MAX, true);
    assert_true(st.runs > 0);
    free(late.ev);
}

static void test_merge_thread(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    uint64_t t0 = vg_mono_ns();

    sto_close(f->db);
    f->db = open_db(f->dir, 20);
    write_blocks(f->db, MA, T0, 1, 20, 8, false, &f->ta);
    write_blocks(f->db, MB, T0 + VG_US_PER_DAY, 1, 40, 8, false, &f->tb);
    /* A pass may come between two writes and merge part of a day; the next one merges the
     * rest, topping up the small merged block before it. */
    while (vgt_elapsed_s(t0) < 20) {
        struct timespec ts = {0, 10 * 1000000};

        if (count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL) == 1 &&
            count_keys(f->db, (uint32_t)DAY0 + 1, MB, NULL, NULL) == 1)
            break;
        nanosleep(&ts, NULL);
    }
    /* A later write to the day is merged into the (still small) block before it by the
     * next pass. */
    write_blocks(f->db, MA, T0 + 160 * 500000, 161, 5, 8, false, &f->ta);
    while (vgt_elapsed_s(t0) < 20 && count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL) != 1) {
        struct timespec ts = {0, 10 * 1000000};

        nanosleep(&ts, NULL);
    }
    sto_merge_totals(f->db, &st);
    assert_true(st.runs >= 2);
    assert_true(st.blocks_in >= 66);
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL), 1);
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0 + 1, MB, NULL, NULL), 1);
    check_all(f);
}

/* Blocks written by a process that stopped before its merge pass (here: one without the
 * thread) are merged by the next process's first pass when they lie on the two newest days,
 * with nothing written after the restart; an older day is left to a later write. */
static void test_merge_after_restart(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    uint64_t t0 = vg_mono_ns();

    write_blocks(f->db, MA, T0 - 2 * VG_US_PER_DAY, 1, 10, 8, false, &f->ta);
    write_blocks(f->db, MA, T0, 81, 20, 8, false, &f->ta);
    write_blocks(f->db, MB, T0 + VG_US_PER_DAY, 1, 30, 8, true, &f->tb);
    assert_true(count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL) >= 20);
    sto_close(f->db);
    f->db = open_db(f->dir, 20);
    while (vgt_elapsed_s(t0) < 20 && (count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL) != 1 ||
                                      count_keys(f->db, (uint32_t)DAY0 + 1, MB, NULL, NULL) != 1)) {
        struct timespec ts = {0, 10 * 1000000};

        nanosleep(&ts, NULL);
    }
    sto_merge_totals(f->db, &st);
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0, MA, NULL, NULL), 1);
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0 + 1, MB, NULL, NULL), 1);
    assert_int_equal(st.blocks_in, 50);
    /* Two days before the newest: not the catch-up's business. */
    assert_int_equal(count_keys(f->db, (uint32_t)DAY0 - 2, MA, NULL, NULL), 10);
    check_all(f);
}

/*
 * A merge pass reads a block around each machine-day it visits; being maintenance, it must
 * not keep what it reads in the block cache. With 2,000 machines its passes filled vigil
 * run's 256 MiB cache in seconds, evicting what queries read and adding that much resident
 * memory. Here CACHE_MACHINES machines' blocks are written while the thread waits for its
 * first pass, flushed to table files, and the cache's charge is compared before and after
 * the pass that merges them all.
 */
#define CACHE_MACHINES 64
#define CACHE_PASS_MS  5000

static void test_merge_leaves_cache(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};
    struct truth t = {0};
    struct sto_mem m0, m1;
    uint64_t t0;

    sto_close(f->db);
    t0 = vg_mono_ns();
    f->db = open_db(f->dir, CACHE_PASS_MS);
    for (uint64_t k = 0; k < CACHE_MACHINES; k++)
        write_blocks(f->db, 0x10000 + k * 0x101, T0, 1, 24, 8, false, &t);
    assert_int_equal(sto_compact_all(f->db), 0);
    sto_mem_usage(f->db, &m0);
    if (vgt_elapsed_s(t0) * 1000 > CACHE_PASS_MS / 2) {
        /* The pass may have run before the blocks were in table files: nothing shown. */
        free(t.ev);
        print_message("  inconclusive: writing took %.1f s\n", vgt_elapsed_s(t0));
        skip();
    }
    while (vgt_elapsed_s(t0) < 30) {
        sto_merge_totals(f->db, &st);
        if (st.runs >= CACHE_MACHINES)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000000}, NULL); /* poll interval */
    }
    sto_mem_usage(f->db, &m1);
    print_message("  %llu runs merged %llu blocks; block cache %llu -> %llu bytes\n",
                  (unsigned long long)st.runs, (unsigned long long)st.blocks_in,
                  (unsigned long long)m0.block_cache, (unsigned long long)m1.block_cache);
    assert_int_equal(st.runs, CACHE_MACHINES);
    assert_int_equal(st.blocks_in, CACHE_MACHINES * 24);
    /* One 16 KiB data block of slack (a metadata block may be charged). */
    assert_true(m1.block_cache <= m0.block_cache + 16 * 1024);
    free(t.ev);
}

/* The read-ahead iterator hands out what the plain one does, in the same order, across
 * slot and day boundaries, and closes cleanly in the middle. */
static void test_ahead_same_as_plain(void **state)
{
    struct fx *f = *state;
    struct sto_merge_stats st = {0};

    for (int day = 0; day < 4; day++)
        write_blocks(f->db, MA, T0 + day * VG_US_PER_DAY, 1 + (uint64_t)day * 10000, 400, 8,
                     day == 1, &f->ta);
    /* Days 0 and 1 merged, 2 and 3 not. */
    assert_int_equal(sto_tl_merge(f->db, (uint32_t)DAY0, (uint32_t)DAY0 + 1, &st), 0);
    assert_int_equal(st.blocks_in, 800);
    for (int desc = 0; desc < 2; desc++) {
        sto_tl_iter *a, *b;
        const Vigil__Event *ea, *eb;
        size_t n = 0;
        int ra, rb;

        assert_int_equal(sto_tl_open(f->db, MA, INT64_MIN, INT64_MAX, desc, &a), 0);
        assert_int_equal(sto_tl_open_ahead(f->db, MA, INT64_MIN, INT64_MAX, desc, &b), 0);
        for (;;) {
            ra = sto_tl_next(a, &ea);
            rb = sto_tl_next(b, &eb);
            assert_int_equal(ra, rb);
            if (ra != 1)
                break;
            assert_int_equal(ea->ts_us, eb->ts_us);
            assert_int_equal(ea->seq, eb->seq);
            assert_string_equal(ea->file->path, eb->file->path);
            n++;
        }
        assert_int_equal(ra, 0);
        assert_int_equal(sto_tl_next(b, &eb), 0); /* the end repeats */
        assert_int_equal(n, 4 * 3200);
        sto_tl_close(a);
        sto_tl_close(b);
    }
    /* Closed after a few events, with the helper blocked on full slots. */
    {
        sto_tl_iter *b;
        const Vigil__Event *eb;

        assert_int_equal(sto_tl_open_ahead(f->db, MA, INT64_MIN, INT64_MAX, false, &b), 0);
        for (int i = 0; i < 10; i++)
            assert_int_equal(sto_tl_next(b, &eb), 1);
        sto_tl_close(b);
        /* And an empty range. */
        assert_int_equal(sto_tl_open_ahead(f->db, MA, 10, 9, false, &b), 0);
        assert_int_equal(sto_tl_next(b, &eb), 0);
        sto_tl_close(b);
    }
    check_read(f->db, MA, &f->ta, T0 + VG_US_PER_DAY / 2, T0 + 2 * VG_US_PER_DAY, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_merge_same_events, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_late_and_redelivery, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_page_spans, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_corrupt_block_stays, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_retention, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_races_writer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_thread, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_after_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_merge_leaves_cache, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ahead_same_as_plain, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
