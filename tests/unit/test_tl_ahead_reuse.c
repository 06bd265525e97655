/*
 * test_tl_ahead_reuse.c - a read-ahead iterator's helper thread is parked at close and
 * reused by the same thread's next read-ahead iterator (a replay opens one a machine):
 * every machine still reads exactly its own events in order, whatever came before (a full
 * read, an early close, an empty range, a plain iterator in between), on several threads
 * at once, and a thread that ends (sto_thread_cleanup) retires its parked helper.
 *
 * THREAD SAFETY: the reader threads each own their iterators; the database is shared.
 */
#include "vgtest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage.h"

#define NMACH    4
#define NBLOCKS  6
#define NPERBLK  700
#define T0       (INT64_C(1789999980) * VG_US_PER_SEC)
#define NTHREADS 3

struct fx {
    char *dir;
    sto_db *db;
    uint64_t mkey[NMACH];
};

static struct fx *g_fx; /* for the reader threads */

/* Machine m's events: seq = m * 1,000,000 + i, one a millisecond from T0 + m seconds. */
static void put_machine(sto_wbatch *wb, struct fx *f, int m)
{
    char id[16];

    snprintf(id, sizeof(id), "m%d", m);
    f->mkey[m] = vg_machine_key("t", id);
    for (int b = 0; b < NBLOCKS; b++) {
        Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT;
        Vigil__Event evs[NPERBLK], *pev[NPERBLK];
        Vigil__FileEvent fe = VIGIL__FILE_EVENT__INIT;
        uint8_t *buf;
        size_t len;

        fe.path = "C:\\x";
        for (int i = 0; i < NPERBLK; i++) {
            uint64_t k = (uint64_t)b * NPERBLK + (uint64_t)i;

            vigil__event__init(&evs[i]);
            evs[i].seq = (uint64_t)m * 1000000u + k + 1;
            evs[i].ts_us = T0 + m * VG_US_PER_SEC + (int64_t)k * 1000;
            evs[i].kind_case = VIGIL__EVENT__KIND_FILE;
            evs[i].file = &fe;
            pev[i] = &evs[i];
        }
        tb.tenant_id = "t";
        tb.machine_id = id;
        tb.n_events = NPERBLK;
        tb.events = pev;
        buf = vgt_pack_batch(&tb, &len);
        sto_put_block(wb, f->mkey[m], evs[0].ts_us, evs[0].seq, buf, len);
        free(buf);
    }
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sto_opts so = {.merge_interval_ms = -1};
    sto_wbatch *wb = sto_wbatch_new();
    char err[256];

    if (f == NULL || wb == NULL)
        return -1;
    f->dir = vgt_tmpdir("tlahead");
    so.path = f->dir;
    if (sto_open(&so, &f->db, err, sizeof(err)) != 0)
        return -1;
    for (int m = 0; m < NMACH; m++)
        put_machine(wb, f, m);
    if (sto_write(f->db, wb, err, sizeof(err)) != 0)
        return -1;
    sto_wbatch_destroy(wb);
    g_fx = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    sto_close(f->db);
    vgt_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Reads machine m through a read-ahead iterator: all of it, or `stop_after` events. */
static void read_ahead(struct fx *f, int m, size_t stop_after)
{
    sto_tl_iter *it;
    const Vigil__Event *ev;
    size_t n = 0;
    int rc;

    assert_int_equal(sto_tl_open_ahead(f->db, f->mkey[m], INT64_MIN / 2, INT64_MAX / 2, false, &it),
                     0);
    while (n < stop_after && (rc = sto_tl_next(it, &ev)) == 1) {
        assert_int_equal(ev->seq, (uint64_t)m * 1000000u + n + 1);
        assert_int_equal(ev->ts_us, T0 + m * VG_US_PER_SEC + (int64_t)n * 1000);
        n++;
    }
    if (stop_after >= NBLOCKS * NPERBLK) {
        assert_int_equal(rc, 0);
        assert_int_equal(n, NBLOCKS * NPERBLK);
    }
    sto_tl_close(it);
}

/* The sequence every reader runs: each machine in turn, with early closes, an empty range
 * and a plain iterator between read-ahead ones. */
static void sequence(struct fx *f, int start)
{
    for (int r = 0; r < 2; r++) {
        for (int k = 0; k < NMACH; k++) {
            int m = (start + k) % NMACH;
            sto_tl_iter *it;
            const Vigil__Event *ev;

            read_ahead(f, m, SIZE_MAX);
            read_ahead(f, (m + 1) % NMACH, 5); /* closed with the helper still filling */
            assert_int_equal(sto_tl_open_ahead(f->db, f->mkey[m], 10, 9, false, &it), 0);
            assert_int_equal(sto_tl_next(it, &ev), 0);
            sto_tl_close(it);
            assert_int_equal(
                sto_tl_open(f->db, f->mkey[m], INT64_MIN / 2, INT64_MAX / 2, true, &it), 0);
            assert_int_equal(sto_tl_next(it, &ev), 1);
            assert_int_equal(ev->seq, (uint64_t)m * 1000000u + NBLOCKS * NPERBLK);
            sto_tl_close(it);
        }
    }
}

static void *reader_main(void *arg)
{
    sequence(g_fx, (int)(intptr_t)arg);
    sto_thread_cleanup(); /* retires this thread's parked helper */
    return NULL;
}

static void test_reuse_one_thread(void **state)
{
    sequence(*state, 0);
}

static void test_reuse_threads(void **state)
{
    pthread_t th[NTHREADS];

    (void)state;
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, (void *)(intptr_t)i), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_one_thread),
        cmocka_unit_test(test_reuse_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
