/*
 * test_storage.c - storage/ against a real RocksDB in a temporary directory: persistence,
 * the timeline's key order and bounds, block encoding and corrupt blocks, every record
 * kind, the alert index, and a read-only secondary view of a live primary.
 */
#include "vgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "storage.h"

#define DAY0 INT64_C(20000) /* 2024-10-04 */

struct tev {
    int64_t ts;
    uint64_t seq;
};

/* One event with a file payload and an actor, strings derived from seq. */
struct evbuf {
    Vigil__Event ev;
    Vigil__ProcessRef actor;
    Vigil__FileEvent file;
    char image[64];
    char cmd[96];
    char path[96];
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_event(struct evbuf *b, int64_t ts, uint64_t seq)
{
    vigil__event__init(&b->ev);
    vigil__process_ref__init(&b->actor);
    vigil__file_event__init(&b->file);
    snprintf(b->image, sizeof(b->image), "C:\\Windows\\System32\\svc%llu.exe",
             (unsigned long long)(seq % 7));
    snprintf(b->cmd, sizeof(b->cmd), "svc%llu.exe -k netsvcs -p %llu",
             (unsigned long long)(seq % 7), (unsigned long long)seq);
    snprintf(b->path, sizeof(b->path), "C:\\Users\\alice\\AppData\\Local\\Temp\\f%llu.tmp",
             (unsigned long long)seq);
    b->actor.pid = (uint32_t)(1000 + seq % 50);
    b->actor.image = b->image;
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

/* Encodes the events into one block and adds it to the batch (key from events[0]). */
static void put_block(sto_wbatch *wb, uint64_t mkey, const struct tev *evs, size_t n)
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
    }
    tb.tenant_id = "t1";
    tb.machine_id = "m";
    tb.first_seq = evs[0].seq;
    tb.n_events = n;
    tb.events = ptrs;
    assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);
    sto_put_block(wb, mkey, evs[0].ts, evs[0].seq, blk, len);
    vg_free(blk);
    free(ptrs);
    free(bufs);
}

static sto_db *open_db(const char *path, bool ro)
{
    struct sto_opts o = {.path = path, .read_only = ro, .cache_bytes = 8 << 20};
    char err[256] = "";
    sto_db *db = NULL;
    int rc = sto_open(&o, &db, err, sizeof(err));

    if (rc != 0)
        fail_msg("sto_open(%s): %d %s", path, rc, err);
    return db;
}

static void write_batch(sto_db *db, sto_wbatch *wb)
{
    char err[256] = "";

    assert_int_equal(sto_write(db, wb, err, sizeof(err)), 0);
    sto_wbatch_clear(wb);
}

static int cmp_tev(const void *a, const void *b)
{
    const struct tev *x = a, *y = b;

    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- persistence ------------------------------------------------------------------ */

static void test_open_reopen(void **state)
{
    char *dir = vgt_tmpdir("sto");
    char *sub;
    sto_wbatch *wb = sto_wbatch_new();
    Vigil__MachineRecord m = VIGIL__MACHINE_RECORD__INIT, *got = NULL;
    int64_t off = 0;
    sto_db *db;
    char *prop;

    assert_true(asprintf(&sub, "%s/a/b/data", dir) > 0);
    db = open_db(sub, false); /* creates missing parents */
    m.tenant_id = "tenant-1";
    m.machine_id = "WS-0042";
    m.machine_name = "ws-0042.corp.example";
    m.os = VIGIL__OS__OS_WINDOWS;
    m.last_seq = 123456;
    sto_put_machine(wb, 42, &m);
    sto_put_offset(wb, "telemetry", 3, INT64_C(9876543210));
    sto_put_offset(wb, "telemetry", -1, -5);
    assert_true(sto_wbatch_bytes(wb) > 0);
    write_batch(db, wb);
    assert_int_equal(sto_wbatch_bytes(wb), 0);
    /* Every column family exists. */
    prop = sto_property(db, "timeline", "rocksdb.estimate-num-keys");
    assert_non_null(prop);
    vg_free(prop);
    prop = sto_property(db, "meta", "rocksdb.estimate-num-keys");
    assert_non_null(prop);
    vg_free(prop);
    assert_null(sto_property(db, "nosuchcf", "rocksdb.estimate-num-keys"));
    sto_close(db);

    db = open_db(sub, false);
    assert_int_equal(sto_get_machine(db, 42, &got), 0);
    assert_string_equal(got->machine_id, "WS-0042");
    assert_string_equal(got->machine_name, "ws-0042.corp.example");
    assert_int_equal(got->os, VIGIL__OS__OS_WINDOWS);
    assert_int_equal(got->last_seq, 123456);
    vigil__machine_record__free_unpacked(got, NULL);
    assert_int_equal(sto_get_machine(db, 43, &got), -VG_ENOENT);
    assert_int_equal(sto_get_offset(db, "telemetry", 3, &off), 0);
    assert_int_equal(off, INT64_C(9876543210));
    assert_int_equal(sto_get_offset(db, "telemetry", -1, &off), 0);
    assert_int_equal(off, -5);
    assert_int_equal(sto_get_offset(db, "telemetry", 4, &off), -VG_ENOENT);
    assert_int_equal(sto_get_offset(db, "telemetr", 3, &off), -VG_ENOENT);
    sto_close(db);

    sto_wbatch_destroy(wb);
    free(sub);
    vgt_rmtree(dir);
    free(dir);
}

static void test_open_bad(void **state)
{
    struct sto_opts o = {.path = "/proc/vigil-no-such/dir"};
    char err[256] = "";
    sto_db *db = (sto_db *)1;

    assert_int_equal(sto_open(&o, &db, err, sizeof(err)), -VG_EIO);
    assert_null(db);
    assert_true(strlen(err) > 0);
    o.path = "";
    assert_int_equal(sto_open(&o, &db, err, sizeof(err)), -VG_EINVAL);
    /* Read-only on a directory with no database is an error, not a new database. */
    {
        char *dir = vgt_tmpdir("sto");

        o.path = dir;
        o.read_only = true;
        assert_int_equal(sto_open(&o, &db, err, sizeof(err)), -VG_EIO);
        vgt_rmtree(dir);
        free(dir);
    }
}

/* ---- blocks ----------------------------------------------------------------------- */

static void test_block_roundtrip(void **state)
{
    struct evbuf b[3];
    Vigil__Event *ptrs[3] = {&b[0].ev, &b[1].ev, &b[2].ev};
    Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT, *out = NULL;
    uint8_t *blk;
    size_t len;

    fill_event(&b[0], DAY0 * VG_US_PER_DAY + 5, 100);
    fill_event(&b[1], DAY0 * VG_US_PER_DAY + 1, 101);
    fill_event(&b[2], -7, 102);
    tb.tenant_id = "tenant-1";
    tb.machine_id = "WS-1";
    tb.first_seq = 100;
    tb.n_events = 3;
    tb.events = ptrs;
    assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);
    assert_true(len > 0);
    assert_int_equal(sto_block_decode(blk, len, NULL, &out), 0);
    assert_string_equal(out->tenant_id, "tenant-1");
    assert_string_equal(out->machine_id, "WS-1");
    assert_int_equal(out->first_seq, 100);
    assert_int_equal(out->n_events, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out->events[i]->seq, b[i].ev.seq);
        assert_int_equal(out->events[i]->ts_us, b[i].ev.ts_us);
        assert_int_equal(out->events[i]->kind_case, VIGIL__EVENT__KIND_FILE);
        assert_string_equal(out->events[i]->file->path, b[i].path);
        assert_string_equal(out->events[i]->actor->command_line, b[i].cmd);
    }
    vigil__telemetry_batch__free_unpacked(out, NULL);

    /* A bare packed batch (no zstd frame; RocksDB compresses it) decodes the same. */
    {
        size_t plen = vigil__telemetry_batch__get_packed_size(&tb);
        uint8_t *packed = malloc(plen);

        vigil__telemetry_batch__pack(&tb, packed);
        assert_int_equal(sto_block_decode(packed, plen, NULL, &out), 0);
        assert_int_equal(out->n_events, 3);
        assert_int_equal(out->events[2]->ts_us, -7);
        assert_string_equal(out->events[1]->file->path, b[1].path);
        vigil__telemetry_batch__free_unpacked(out, NULL);
        free(packed);
    }

    /* An empty batch round-trips too. */
    {
        Vigil__TelemetryBatch empty = VIGIL__TELEMETRY_BATCH__INIT;
        uint8_t *eb;
        size_t el;

        assert_int_equal(sto_block_encode(&empty, &eb, &el), 0);
        assert_int_equal(sto_block_decode(eb, el, NULL, &out), 0);
        assert_int_equal(out->n_events, 0);
        vigil__telemetry_batch__free_unpacked(out, NULL);
        vg_free(eb);
    }
    vg_free(blk);
}

static void test_block_corrupt(void **state)
{
    struct evbuf b[4];
    Vigil__Event *ptrs[4] = {&b[0].ev, &b[1].ev, &b[2].ev, &b[3].ev};
    Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT, *out = NULL;
    static const uint8_t junk[] = "this is not a zstd frame at all";
    uint8_t garbage[200], framed[512], *blk, *copy;
    size_t len, flen;
    int ok = 0;

    for (int i = 0; i < 4; i++)
        fill_event(&b[i], 1000 + i, (uint64_t)i);
    tb.n_events = 4;
    tb.events = ptrs;
    assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);

    assert_int_equal(sto_block_decode(NULL, 0, NULL, &out), -VG_EDECODE);
    assert_null(out);
    assert_int_equal(sto_block_decode(junk, sizeof(junk), NULL, &out), -VG_EDECODE);
    /* Every truncation is rejected. */
    for (size_t n = 0; n < len; n++)
        assert_int_equal(sto_block_decode(blk, n, NULL, &out), -VG_EDECODE);
    /* A valid zstd frame of bytes that are not a TelemetryBatch. */
    memset(garbage, 0xff, sizeof(garbage));
    flen = ZSTD_compress(framed, sizeof(framed), garbage, sizeof(garbage), 3);
    assert_false(ZSTD_isError(flen));
    assert_int_equal(sto_block_decode(framed, flen, NULL, &out), -VG_EDECODE);
    assert_null(out);
    /* Flipping any byte of the frame is caught (the frame carries a checksum). */
    copy = malloc(len);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, blk, len);
        copy[i] ^= 0x5a;
        if (sto_block_decode(copy, len, NULL, &out) == 0) {
            ok++;
            vigil__telemetry_batch__free_unpacked(out, NULL);
        } else {
            assert_null(out);
        }
    }
    assert_int_equal(ok, 0);
    free(copy);
    vg_free(blk);
}

/* ---- timeline --------------------------------------------------------------------- */

#define NM      3
#define NBLK    3
#define PER_BLK 20

static const uint64_t mkeys[NM] = {0x1111, 0x2222, 0x3333};
/* Day offsets from DAY0 that hold data, per machine (gaps test the day skipping). */
static const int days_of[NM][4] = {{0, 1, 3, 7}, {1, 2, 7, 40}, {0, 5, -1, -1}};

struct tl_fixture {
    char *dir;
    sto_db *db;
    struct tev *all[NM]; /* each machine's events, sorted (ts, seq) */
    size_t nall[NM];
};

static int tl_setup(void **state)
{
    struct tl_fixture *f = calloc(1, sizeof(*f));
    sto_wbatch *wb = sto_wbatch_new();
    uint64_t seq[NM] = {1, 1, 1};

    f->dir = vgt_tmpdir("sto");
    f->db = open_db(f->dir, false);
    for (int m = 0; m < NM; m++)
        f->all[m] = calloc(4 * NBLK * PER_BLK, sizeof(struct tev));
    /* Blocks of the machines interleaved in each batch, one batch per (day slot, block). */
    for (int d = 0; d < 4; d++) {
        for (int k = 0; k < NBLK; k++) {
            for (int m = 0; m < NM; m++) {
                struct tev evs[PER_BLK];

                if (days_of[m][d] < 0)
                    continue;
                for (int i = 0; i < PER_BLK; i++) {
                    /* Arrival order is not time order; some times repeat. */
                    evs[i].ts = (DAY0 + days_of[m][d]) * VG_US_PER_DAY +
                                (int64_t)(rng() % (VG_US_PER_DAY / 1000)) * 1000;
                    if (i % 5 == 4)
                        evs[i].ts = evs[i - 1].ts;
                    evs[i].seq = seq[m]++;
                    f->all[m][f->nall[m]++] = evs[i];
                }
                put_block(wb, mkeys[m], evs, PER_BLK);
            }
            write_batch(f->db, wb);
        }
    }
    for (int m = 0; m < NM; m++)
        qsort(f->all[m], f->nall[m], sizeof(struct tev), cmp_tev);
    sto_wbatch_destroy(wb);
    *state = f;
    return 0;
}

static int tl_teardown(void **state)
{
    struct tl_fixture *f = *state;

    sto_close(f->db);
    vgt_rmtree(f->dir);
    free(f->dir);
    for (int m = 0; m < NM; m++)
        free(f->all[m]);
    free(f);
    return 0;
}

/* Iterates and checks the result is exactly the expected slice of all[m]. The iterator
 * is closed before any assertion, so a failure does not leave it open under the DB. */
static void check_range(struct tl_fixture *f, int m, int64_t from, int64_t to, bool desc)
{
    size_t lo = 0, hi, n, got = 0, cap = f->nall[m] + 1;
    struct tev *res = calloc(cap, sizeof(*res));
    sto_tl_iter *it;
    const Vigil__Event *ev;
    int rc, kind_ok = 1, rc_after;

    while (lo < f->nall[m] && f->all[m][lo].ts < from)
        lo++;
    hi = lo;
    while (hi < f->nall[m] && f->all[m][hi].ts <= to)
        hi++;
    n = hi - lo;
    assert_int_equal(sto_tl_open(f->db, mkeys[m], from, to, desc, &it), 0);
    while ((rc = sto_tl_next(it, &ev)) == 1 && got < cap) {
        res[got].ts = ev->ts_us;
        res[got].seq = ev->seq;
        kind_ok &= ev->kind_case == VIGIL__EVENT__KIND_FILE;
        got++;
    }
    /* After the end it stays at the end. */
    rc_after = sto_tl_next(it, &ev);
    sto_tl_close(it);
    assert_int_equal(rc, 0);
    assert_int_equal(rc_after, 0);
    assert_true(kind_ok);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        const struct tev *want = &f->all[m][desc ? hi - 1 - i : lo + i];

        assert_int_equal(res[i].ts, want->ts);
        assert_int_equal(res[i].seq, want->seq);
    }
    free(res);
}

static void test_timeline_order(void **state)
{
    struct tl_fixture *f = *state;

    for (int m = 0; m < NM; m++) {
        size_t n = f->nall[m];

        assert_true(n > 0);
        /* Everything (the day walk must jump over four billion empty days). */
        check_range(f, m, INT64_MIN, INT64_MAX, false);
        check_range(f, m, INT64_MIN, INT64_MAX, true);
        check_range(f, m, 0, (DAY0 + 100) * VG_US_PER_DAY, false);
        /* Bounds are inclusive, to the microsecond. */
        check_range(f, m, f->all[m][5].ts, f->all[m][n - 6].ts, false);
        check_range(f, m, f->all[m][5].ts, f->all[m][n - 6].ts, true);
        check_range(f, m, f->all[m][5].ts + 1, f->all[m][n - 6].ts - 1, false);
        check_range(f, m, f->all[m][5].ts + 1, f->all[m][n - 6].ts - 1, true);
        /* A single instant, and a range inside one day. */
        check_range(f, m, f->all[m][9].ts, f->all[m][9].ts, false);
        check_range(f, m, f->all[m][2].ts, f->all[m][12].ts, true);
        /* Whole days. */
        check_range(f, m, (DAY0 + 1) * VG_US_PER_DAY, (DAY0 + 2) * VG_US_PER_DAY - 1, false);
        check_range(f, m, (DAY0 + 1) * VG_US_PER_DAY, (DAY0 + 7) * VG_US_PER_DAY - 1, true);
    }
    /* Machine 0 has nothing on day 2 and one event range spans machine 1's days only. */
    check_range(f, 0, (DAY0 + 2) * VG_US_PER_DAY, (DAY0 + 3) * VG_US_PER_DAY - 1, false);
}

static void test_timeline_empty(void **state)
{
    struct tl_fixture *f = *state;
    sto_tl_iter *it;
    const Vigil__Event *ev;

    /* from > to, an unknown machine, a range with no data. */
    assert_int_equal(sto_tl_open(f->db, mkeys[0], 10, 9, false, &it), 0);
    assert_int_equal(sto_tl_next(it, &ev), 0);
    assert_null(ev);
    sto_tl_close(it);
    assert_int_equal(sto_tl_open(f->db, 0x2223, INT64_MIN, INT64_MAX, true, &it), 0);
    assert_int_equal(sto_tl_next(it, &ev), 0);
    sto_tl_close(it);
    assert_int_equal(sto_tl_open(f->db, mkeys[0], (DAY0 + 8) * VG_US_PER_DAY,
                                 (DAY0 + 30) * VG_US_PER_DAY, false, &it),
                     0);
    assert_int_equal(sto_tl_next(it, &ev), 0);
    sto_tl_close(it);
}

static void test_timeline_corrupt_block(void **state)
{
    struct tl_fixture *f = *state;
    sto_wbatch *wb = sto_wbatch_new();
    uint64_t before = sto_corrupt_count(f->db);
    static const char junk[] = "\x28\xb5\x2f\xfd garbage, not a block";

    /* A corrupt block of machine 0 on day 3, keyed before its real blocks. */
    sto_put_block(wb, mkeys[0], (DAY0 + 3) * VG_US_PER_DAY, 0, junk, sizeof(junk));
    write_batch(f->db, wb);
    check_range(f, 0, INT64_MIN, INT64_MAX, false);
    assert_int_equal(sto_corrupt_count(f->db), before + 1);
    check_range(f, 0, INT64_MIN, INT64_MAX, true);
    assert_int_equal(sto_corrupt_count(f->db), before + 2);
    sto_wbatch_destroy(wb);
}

static void test_timeline_redelivery(void **state)
{
    struct tl_fixture *f = *state;
    sto_wbatch *wb = sto_wbatch_new();
    struct tev part[8];

    /* Events 3..10 of machine 2 delivered again as another block: yielded once. */
    memcpy(part, &f->all[2][3], sizeof(part));
    put_block(wb, mkeys[2], part, 8);
    write_batch(f->db, wb);
    check_range(f, 2, INT64_MIN, INT64_MAX, false);
    check_range(f, 2, INT64_MIN, INT64_MAX, true);
    sto_wbatch_destroy(wb);
}

/* ---- records ---------------------------------------------------------------------- */

static bool collect_proc(void *ctx, const Vigil__ProcessRecord *p)
{
    uint32_t *pids = ctx;

    pids[++pids[0]] = p->process->pid;
    return true;
}

static bool collect_outbox(void *ctx, const char *id)
{
    char *s = ctx;

    strcat(s, id);
    strcat(s, ",");
    return true;
}

static bool count_machines(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    uint64_t *sum = ctx;

    sum[0]++;
    sum[1] += mkey;
    assert_string_equal(m->tenant_id, "t");
    return true;
}

static bool stop_first(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    (*(int *)ctx)++;
    return false;
}

static void test_records(void **state)
{
    char *dir = vgt_tmpdir("sto");
    sto_db *db = open_db(dir, false);
    sto_wbatch *wb = sto_wbatch_new();
    Vigil__ProcessRecord pr = VIGIL__PROCESS_RECORD__INIT, *gp;
    Vigil__ProcessRef ref = VIGIL__PROCESS_REF__INIT;
    Vigil__MachineRecord mr = VIGIL__MACHINE_RECORD__INIT;
    Vigil__Incident inc = VIGIL__INCIDENT__INIT, *gi;
    Vigil__Alert a = VIGIL__ALERT__INIT, *ga;
    uint32_t pids[16] = {0};
    uint64_t sum[2] = {0, 0};
    char ids[256] = "";
    int stops = 0;

    /* Processes of two machines; pid order within machine 7, one negative ctime. */
    pr.process = &ref;
    ref.image = "C:\\Windows\\explorer.exe";
    static const uint32_t ps[] = {500, 4, 77};
    for (int i = 0; i < 3; i++) {
        ref.pid = ps[i];
        ref.creation_time_us = i == 1 ? -3 : 1000 * i;
        pr.exit_code = i;
        sto_put_process(wb, 7, &pr);
        sto_put_process(wb, 8, &pr);
    }
    ref.pid = 9;
    sto_put_process(wb, UINT64_MAX, &pr);
    mr.tenant_id = "t";
    for (uint64_t k = 1; k <= 5; k++)
        sto_put_machine(wb, k * 10, &mr);
    sto_put_machine(wb, UINT64_MAX, &mr);
    a.id = "alert-1";
    a.tenant_id = "t";
    a.title = "Suspicious PowerShell";
    a.severity = VIGIL__SEVERITY__SEVERITY_HIGH;
    a.last_event_us = 50;
    sto_put_alert(wb, &a, true);
    a.id = "alert-2";
    sto_put_alert(wb, &a, true);
    a.id = "alert-3";
    sto_put_alert(wb, &a, false);
    inc.id = "inc-1";
    inc.tenant_id = "t";
    inc.title = "Multi-stage incident";
    sto_put_incident(wb, &inc);
    write_batch(db, wb);

    assert_int_equal(sto_get_process(db, 7, 4, -3, &gp), 0);
    assert_int_equal(gp->process->pid, 4);
    assert_int_equal(gp->process->creation_time_us, -3);
    assert_int_equal(gp->exit_code, 1);
    assert_string_equal(gp->process->image, "C:\\Windows\\explorer.exe");
    vigil__process_record__free_unpacked(gp, NULL);
    assert_int_equal(sto_get_process(db, 7, 4, 3, &gp), -VG_ENOENT);
    assert_int_equal(sto_scan_processes(db, 7, collect_proc, pids), 0);
    assert_int_equal(pids[0], 3);
    assert_int_equal(pids[1], 4);
    assert_int_equal(pids[2], 77);
    assert_int_equal(pids[3], 500);
    pids[0] = 0;
    assert_int_equal(sto_scan_processes(db, UINT64_MAX, collect_proc, pids), 0);
    assert_int_equal(pids[0], 1);
    assert_int_equal(pids[1], 9);
    pids[0] = 0;
    assert_int_equal(sto_scan_processes(db, 9, collect_proc, pids), 0);
    assert_int_equal(pids[0], 0);

    assert_int_equal(sto_scan_machines(db, count_machines, sum), 0);
    assert_int_equal(sum[0], 6);
    assert_int_equal(sum[1], 150 + UINT64_MAX);
    assert_int_equal(sto_scan_machines(db, stop_first, &stops), 0);
    assert_int_equal(stops, 1);

    assert_true(sto_has_alert(db, "alert-2"));
    assert_false(sto_has_alert(db, "alert-4"));
    assert_int_equal(sto_get_alert(db, "alert-1", &ga), 0);
    assert_string_equal(ga->title, "Suspicious PowerShell");
    assert_int_equal(ga->severity, VIGIL__SEVERITY__SEVERITY_HIGH);
    vigil__alert__free_unpacked(ga, NULL);
    assert_int_equal(sto_get_alert(db, "alert-", &ga), -VG_ENOENT);
    assert_int_equal(sto_get_incident(db, "inc-1", &gi), 0);
    assert_string_equal(gi->title, "Multi-stage incident");
    vigil__incident__free_unpacked(gi, NULL);

    assert_int_equal(sto_scan_outbox(db, collect_outbox, ids), 0);
    assert_string_equal(ids, "alert-1,alert-2,");
    sto_del_outbox(wb, "alert-1");
    write_batch(db, wb);
    ids[0] = '\0';
    assert_int_equal(sto_scan_outbox(db, collect_outbox, ids), 0);
    assert_string_equal(ids, "alert-2,");

    /* A cleared batch writes nothing. */
    sto_del_outbox(wb, "alert-2");
    sto_wbatch_clear(wb);
    write_batch(db, wb);
    ids[0] = '\0';
    assert_int_equal(sto_scan_outbox(db, collect_outbox, ids), 0);
    assert_string_equal(ids, "alert-2,");

    sto_wbatch_destroy(wb);
    sto_close(db);
    vgt_rmtree(dir);
    free(dir);
}

/* A batch that lost an operation to an allocation failure is refused whole. */
static void test_wbatch_oom(void **state)
{
    char *dir = vgt_tmpdir("sto");
    sto_db *db = open_db(dir, false);
    sto_wbatch *wb = sto_wbatch_new();
    char big[8192], err[128];
    int64_t off;

    memset(big, 'x', sizeof(big));
    sto_put_offset(wb, "t", 0, 1);
    vg_alloc_fail_after(1, false);
    sto_put_block(wb, 1, 0, 0, big, sizeof(big)); /* needs to grow the buffer */
    vg_alloc_fail_after(0, false);
    assert_int_equal(sto_write(db, wb, err, sizeof(err)), -VG_ENOMEM);
    assert_int_equal(sto_get_offset(db, "t", 0, &off), -VG_ENOENT);
    sto_wbatch_clear(wb);
    sto_put_offset(wb, "t", 0, 1);
    write_batch(db, wb);
    assert_int_equal(sto_get_offset(db, "t", 0, &off), 0);
    assert_int_equal(off, 1);
    sto_wbatch_destroy(wb);
    sto_close(db);
    vgt_rmtree(dir);
    free(dir);
}

/* ---- the alert index -------------------------------------------------------------- */

struct seen {
    char ids[8][32];
    int64_t last[8];
    int n;
};

static bool collect_alert(void *ctx, const Vigil__Alert *a)
{
    struct seen *s = ctx;

    assert_true(s->n < 8);
    snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", a->id);
    s->last[s->n++] = a->last_event_us;
    return true;
}

static void test_alert_index(void **state)
{
    char *dir = vgt_tmpdir("sto");
    sto_db *db = open_db(dir, false);
    sto_wbatch *wb = sto_wbatch_new();
    Vigil__Alert a = VIGIL__ALERT__INIT, *old;
    struct seen s = {0};
    static const struct {
        const char *id, *tenant;
        int64_t last;
    } al[] = {{"a1", "acme", 100},  {"a2", "acme", 300}, {"a3", "acme", 200},
              {"b1", "other", 250}, {"a4", "acme", -10}, {"a5", "acme", INT64_MAX}};

    for (size_t i = 0; i < VG_ARRAY_SIZE(al); i++) {
        a.id = (char *)al[i].id;
        a.tenant_id = (char *)al[i].tenant;
        a.last_event_us = al[i].last;
        sto_put_alert(wb, &a, false);
    }
    write_batch(db, wb);

    /* Newest first, inclusive bounds, tenant-only. */
    assert_int_equal(sto_scan_alerts(db, "acme", 100, 300, collect_alert, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "a2");
    assert_string_equal(s.ids[1], "a3");
    assert_string_equal(s.ids[2], "a1");
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "acme", INT64_MIN, INT64_MAX, collect_alert, &s), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.ids[0], "a5");
    assert_string_equal(s.ids[4], "a4");
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "other", 0, 1000, collect_alert, &s), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.ids[0], "b1");
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "nobody", INT64_MIN, INT64_MAX, collect_alert, &s), 0);
    assert_int_equal(s.n, 0);

    /* a1 gains an event at 400: the replacing put moves its index entry. */
    assert_int_equal(sto_get_alert(db, "a1", &old), 0);
    a.id = "a1";
    a.tenant_id = "acme";
    a.last_event_us = 400;
    sto_put_alert_replacing(wb, &a, old, false);
    write_batch(db, wb);
    vigil__alert__free_unpacked(old, NULL);
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "acme", 0, 1000, collect_alert, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "a1");
    assert_int_equal(s.last[0], 400);
    assert_string_equal(s.ids[1], "a2");
    assert_string_equal(s.ids[2], "a3");
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "acme", 50, 150, collect_alert, &s), 0);
    assert_int_equal(s.n, 0);

    /* A plain put of a newer a3 leaves a stale entry, which the scan filters out. */
    a.id = "a3";
    a.last_event_us = 500;
    sto_put_alert(wb, &a, false);
    write_batch(db, wb);
    s.n = 0;
    assert_int_equal(sto_scan_alerts(db, "acme", 0, 1000, collect_alert, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "a3");
    assert_string_equal(s.ids[1], "a1");
    assert_string_equal(s.ids[2], "a2");

    sto_wbatch_destroy(wb);
    sto_close(db);
    vgt_rmtree(dir);
    free(dir);
}

/* ---- a read-only secondary beside a live primary ---------------------------------- */

static size_t count_secondaries(const char *dir)
{
    char cmd[512];
    FILE *p;
    size_t n = 0;
    char line[256];

    snprintf(cmd, sizeof(cmd), "ls -a '%s' | grep -c '^.secondary-'", dir);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(line, sizeof(line), p) != NULL)
        n = strtoul(line, NULL, 10);
    pclose(p);
    return n;
}

static void test_secondary(void **state)
{
    char *dir = vgt_tmpdir("sto");
    sto_db *db = open_db(dir, false), *ro;
    sto_wbatch *wb = sto_wbatch_new();
    struct tev evs[10];
    const Vigil__Event *ev;
    sto_tl_iter *it;
    int64_t off;
    char err[128];
    int n = 0;

    for (int i = 0; i < 10; i++) {
        evs[i].ts = DAY0 * VG_US_PER_DAY + i;
        evs[i].seq = (uint64_t)i + 1;
    }
    put_block(wb, 77, evs, 10);
    sto_put_offset(wb, "telemetry", 0, 11);
    write_batch(db, wb);
    assert_int_equal(sto_compact_all(db), 0); /* flushed to SST files */

    ro = open_db(dir, true);
    assert_int_equal(count_secondaries(dir), 1);
    assert_int_equal(sto_get_offset(ro, "telemetry", 0, &off), 0);
    assert_int_equal(off, 11);
    assert_int_equal(sto_tl_open(ro, 77, INT64_MIN, INT64_MAX, false, &it), 0);
    while (sto_tl_next(it, &ev) == 1)
        assert_int_equal(ev->seq, (uint64_t)++n);
    sto_tl_close(it);
    assert_int_equal(n, 10);
    /* Writes, retention and compaction are refused. */
    sto_put_offset(wb, "telemetry", 0, 12);
    assert_int_equal(sto_write(ro, wb, err, sizeof(err)), -VG_EUNSUP);
    assert_int_equal(sto_retention_run(ro, INT64_MAX / 2), -VG_EUNSUP);
    assert_int_equal(sto_compact_all(ro), -VG_EUNSUP);
    assert_int_equal(sto_catch_up(db), -VG_EINVAL);

    /* The primary moves on (WAL only, no flush); a catch-up sees it. */
    write_batch(db, wb);
    assert_int_equal(sto_get_offset(ro, "telemetry", 0, &off), 0);
    assert_int_equal(off, 11);
    assert_int_equal(sto_catch_up(ro), 0);
    assert_int_equal(sto_get_offset(ro, "telemetry", 0, &off), 0);
    assert_int_equal(off, 12);

    sto_close(ro);
    assert_int_equal(count_secondaries(dir), 0);
    sto_wbatch_destroy(wb);
    sto_close(db);
    vgt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_reopen),
        cmocka_unit_test(test_open_bad),
        cmocka_unit_test(test_block_roundtrip),
        cmocka_unit_test(test_block_corrupt),
        cmocka_unit_test_setup_teardown(test_timeline_order, tl_setup, tl_teardown),
        cmocka_unit_test_setup_teardown(test_timeline_empty, tl_setup, tl_teardown),
        cmocka_unit_test_setup_teardown(test_timeline_corrupt_block, tl_setup, tl_teardown),
        cmocka_unit_test_setup_teardown(test_timeline_redelivery, tl_setup, tl_teardown),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_wbatch_oom),
        cmocka_unit_test(test_alert_index),
        cmocka_unit_test(test_secondary),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    sto_thread_cleanup();
    return rc;
}
