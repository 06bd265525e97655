/*
 * test_retention.c - 200 days of two machines' timelines (about 200,000 events with
 * realistic, partly incompressible strings), then retention at day 200 with the default
 * 183 days: the first 17 days are gone, every later event is intact, and the files shrink
 * in proportion.
 */
#include "vgtest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

#define DAY0    INT64_C(20000) /* first day of data (2024-10-04) */
#define NDAYS   200
#define NMACH   2
#define PER_DAY 500
#define PER_BLK 100
#define KEEP    183 /* the default retention, in days */
#define DROPPED (NDAYS - KEEP)

struct evbuf {
    Vigil__Event ev;
    Vigil__ProcessRef actor;
    Vigil__ProcessCreated pc;
    Vigil__ProcessRef child;
    Vigil__NetworkConnection net;
    char image[80], cmd[160], sha[65], cimage[80], ccmd[200], csha[65], ip[24], host[64];
};

static int64_t fake_now;
static uint64_t rng_state = 0x243f6a8885a308d3u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void hex(char *out, int nbytes)
{
    static const char d[] = "0123456789abcdef";

    for (int i = 0; i < nbytes; i++) {
        unsigned v = (unsigned)(rng() & 0xff);

        out[2 * i] = d[v >> 4];
        out[2 * i + 1] = d[v & 15];
    }
    out[2 * nbytes] = '\0';
}

static const char *const images[] = {
    "C:\\Windows\\System32\\svchost.exe",
    "C:\\Windows\\explorer.exe",
    "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "C:\\Windows\\System32\\cmd.exe",
    "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
};

/* Event seq of a machine; strings derive from seq so a reader can check them. */
static void fill_event(struct evbuf *b, int64_t ts, uint64_t seq)
{
    const char *img = images[seq % VG_ARRAY_SIZE(images)];

    vigil__event__init(&b->ev);
    vigil__process_ref__init(&b->actor);
    snprintf(b->image, sizeof(b->image), "%s", img);
    snprintf(b->cmd, sizeof(b->cmd), "\"%s\" --type=renderer --seq=%" PRIu64 " --field-trial=%u",
             img, seq, (unsigned)(rng() % 100000));
    hex(b->sha, 32);
    b->actor.pid = (uint32_t)(400 + seq % 3000);
    b->actor.creation_time_us = ts - 1000000;
    b->actor.image = b->image;
    b->actor.command_line = b->cmd;
    b->actor.sha256 = b->sha;
    b->actor.account = "CORP\\alice";
    b->actor.integrity_level = "Medium";
    b->ev.seq = seq;
    b->ev.ts_us = ts;
    b->ev.actor = &b->actor;
    if (seq % 2 == 0) {
        vigil__process_created__init(&b->pc);
        vigil__process_ref__init(&b->child);
        snprintf(b->cimage, sizeof(b->cimage), "%s", images[(seq / 2) % VG_ARRAY_SIZE(images)]);
        snprintf(b->ccmd, sizeof(b->ccmd),
                 "%s -NoProfile -ExecutionPolicy Bypass -File C:\\ProgramData\\task%u.ps1",
                 b->cimage, (unsigned)(rng() % 1000));
        hex(b->csha, 32);
        b->child.pid = (uint32_t)(5000 + seq % 60000);
        b->child.creation_time_us = ts;
        b->child.image = b->cimage;
        b->child.command_line = b->ccmd;
        b->child.sha256 = b->csha;
        b->pc.process = &b->child;
        b->ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
        b->ev.process_created = &b->pc;
    } else {
        vigil__network_connection__init(&b->net);
        snprintf(b->ip, sizeof(b->ip), "10.%u.%u.%u", (unsigned)(rng() % 256),
                 (unsigned)(rng() % 256), (unsigned)(rng() % 256));
        snprintf(b->host, sizeof(b->host), "cdn%u.example.net", (unsigned)(rng() % 5000));
        b->net.protocol = VIGIL__PROTOCOL__PROTOCOL_TCP;
        b->net.local_ip = "192.168.1.20";
        b->net.local_port = (uint32_t)(49152 + rng() % 16000);
        b->net.remote_ip = b->ip;
        b->net.remote_port = 443;
        b->net.remote_hostname = b->host;
        b->ev.kind_case = VIGIL__EVENT__KIND_NETWORK;
        b->ev.network = &b->net;
    }
}

/* Event time of a machine's i-th event of day d: spread over the day, increasing. */
static int64_t event_ts(int d, int i)
{
    return (DAY0 + d) * VG_US_PER_DAY + (int64_t)i * (VG_US_PER_DAY / PER_DAY) + 17;
}

static uint64_t event_seq(int d, int i)
{
    return (uint64_t)d * PER_DAY + (uint64_t)i + 1;
}

static void write_days(sto_db *db)
{
    struct evbuf *bufs = calloc(PER_BLK, sizeof(*bufs));
    Vigil__Event *ptrs[PER_BLK];
    sto_wbatch *wb = sto_wbatch_new();
    char err[256];

    assert_non_null(bufs);
    for (int d = 0; d < NDAYS; d++) {
        for (int m = 0; m < NMACH; m++) {
            for (int b = 0; b < PER_DAY / PER_BLK; b++) {
                Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT;
                uint8_t *blk;
                size_t len;

                for (int i = 0; i < PER_BLK; i++) {
                    int k = b * PER_BLK + i;

                    fill_event(&bufs[i], event_ts(d, k), event_seq(d, k));
                    ptrs[i] = &bufs[i].ev;
                }
                tb.tenant_id = "tenant-1";
                tb.machine_id = m ? "WS-0002" : "WS-0001";
                tb.first_seq = ptrs[0]->seq;
                tb.n_events = PER_BLK;
                tb.events = ptrs;
                assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);
                sto_put_block(wb, (uint64_t)m + 1, ptrs[0]->ts_us, ptrs[0]->seq, blk, len);
                vg_free(blk);
            }
        }
        sto_put_offset(wb, "telemetry", 0, d + 1);
        assert_int_equal(sto_write(db, wb, err, sizeof(err)), 0);
        sto_wbatch_clear(wb);
    }
    sto_wbatch_destroy(wb);
    free(bufs);
}

/* Counts a machine's events in [from, to] and checks they are the expected ones, in
 * order: seqs consecutive from first_seq, times and command lines matching. */
static uint64_t check_events(sto_db *db, uint64_t mkey, int64_t from, int64_t to,
                             uint64_t first_seq)
{
    sto_tl_iter *it;
    const Vigil__Event *ev;
    uint64_t n = 0, want = first_seq;
    char needle[48];
    int rc;

    assert_int_equal(sto_tl_open(db, mkey, from, to, false, &it), 0);
    while ((rc = sto_tl_next(it, &ev)) == 1) {
        uint64_t s = want - 1;

        assert_int_equal(ev->seq, want);
        assert_int_equal(ev->ts_us, event_ts((int)(s / PER_DAY), (int)(s % PER_DAY)));
        snprintf(needle, sizeof(needle), "--seq=%" PRIu64 " ", want);
        assert_non_null(strstr(ev->actor->command_line, needle));
        assert_int_equal(ev->kind_case, want % 2 == 0 ? VIGIL__EVENT__KIND_PROCESS_CREATED
                                                      : VIGIL__EVENT__KIND_NETWORK);
        want++;
        n++;
    }
    assert_int_equal(rc, 0);
    sto_tl_close(it);
    return n;
}

static void test_retention(void **state)
{
    char *dir = vgt_tmpdir("retention");
    struct sto_opts o = {.path = dir, .cache_bytes = 32 << 20};
    int64_t cutoff_us = (DAY0 + DROPPED) * VG_US_PER_DAY;
    uint64_t before, after, expect_drop;
    char err[256] = "";
    sto_db *db;
    int64_t off;

    assert_int_equal(sto_open(&o, &db, err, sizeof(err)), 0);
    write_days(db);
    assert_int_equal(sto_compact_all(db), 0);
    before = sto_disk_bytes(db);
    print_message("before retention: %" PRIu64 " bytes\n", before);
    assert_true(before > 4u << 20); /* several MB, or the size check means nothing */
    for (uint64_t m = 1; m <= NMACH; m++)
        assert_int_equal(check_events(db, m, INT64_MIN, INT64_MAX, 1), NDAYS * PER_DAY);

    /* Day 199 is the newest day of data; "now" is day 200 by the injected clock. */
    fake_now = (DAY0 + NDAYS) * VG_US_PER_DAY + 3600 * VG_US_PER_SEC;
    vg_set_clock(fake_clock, NULL);
    assert_int_equal(vg_now_us(), fake_now);
    /* A run a day early drops one day less. */
    assert_int_equal(sto_retention_run(db, vg_now_us() - VG_US_PER_DAY), DROPPED - 1);
    assert_int_equal(sto_retention_run(db, vg_now_us()), 1);
    assert_int_equal(sto_retention_run(db, vg_now_us()), 0); /* idempotent */
    vg_set_clock(NULL, NULL);
    after = sto_disk_bytes(db);
    print_message("after retention: %" PRIu64 " bytes\n", after);

    for (uint64_t m = 1; m <= NMACH; m++) {
        /* Nothing before the cutoff day, all of it from the cutoff on. */
        assert_int_equal(check_events(db, m, INT64_MIN, cutoff_us - 1, 1), 0);
        assert_int_equal(check_events(db, m, INT64_MIN, INT64_MAX, event_seq(DROPPED, 0)),
                         KEEP * PER_DAY);
        assert_int_equal(
            check_events(db, m, cutoff_us, cutoff_us + VG_US_PER_DAY - 1, event_seq(DROPPED, 0)),
            PER_DAY);
    }
    /* Other column families are untouched. */
    assert_int_equal(sto_get_offset(db, "telemetry", 0, &off), 0);
    assert_int_equal(off, NDAYS);

    /* The files shrank by about the share of days dropped (8.5 %), give or take. */
    expect_drop = before / NDAYS * DROPPED;
    assert_true(after < before);
    assert_true(before - after >= expect_drop * 6 / 10);
    assert_true(before - after <= expect_drop * 16 / 10);

    /* The drop is durable. */
    sto_close(db);
    assert_int_equal(sto_open(&o, &db, err, sizeof(err)), 0);
    assert_int_equal(check_events(db, 1, INT64_MIN, INT64_MAX, event_seq(DROPPED, 0)),
                     KEEP * PER_DAY);
    sto_close(db);
    vgt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    sto_thread_cleanup();
    return rc;
}
