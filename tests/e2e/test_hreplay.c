/*
 * test_hreplay.c - stored history replayed through several shard threads (cor_hreplay, the
 * path of vigil replay --history) gives exactly what one shard thread gives.
 *
 * The data: the simulator's scenarios (the reference tests, the attack chain with its
 * correlation) over 24 machines of two tenants, stored through an in-process shard into a
 * real RocksDB in a temp dir, as the writer stores it. Then the built-in rules and
 * correlations are replayed over it on 1, 2, 3 and 7 threads, and the alerts (as JSON
 * lines, sorted) and the sightings must be the same set every time, with alerts on several
 * machines; a replay of one tenant gives that tenant's part of the full replay.
 *
 * THREAD SAFETY: the store runs on the test thread; cor_hreplay starts its own threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corr.h"
#include "correlate.h"
#include "hreplay.h"
#include "ingest.h"
#include "rules.h"
#include "sim.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

struct fx {
    char *dir;
    sto_db *db;
    cor_ruleset *rules;
    cor_corrset *corr;
    uint64_t events; /* stored */
};

/* What one replay gave, sorted: alerts as JSON lines, sightings as "tenant|machine|ts|n". */
struct out {
    char **alerts;
    size_t nalerts;
    char **sightings;
    size_t nsightings;
    uint64_t events, machines, rejected;
};

static void store_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* batches live in the test's arena; barriers move into units */
}

static void store_reject(void *ctx, struct cor_in *in, const char *reason)
{
    (void)ctx;
    (void)in;
    fail_msg("batch rejected while storing: %s", reason);
}

/* Seals every open block and writes blocks and machine records, as the writer does. */
static void store_seal(cor_shard *s, sto_db *db, sto_wbatch *wb, uint64_t id)
{
    struct cor_barrier *br = cor_barrier_new(id, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = br};
    struct cor_unit *u;
    char err[256];

    assert_non_null(br);
    cor_shard_process(s, &in);
    while ((u = cor_shard_pop_unit(s)) != NULL) {
        for (size_t i = 0; i < u->nblocks; i++)
            sto_put_block(wb, u->blocks[i].mkey, u->blocks[i].first_ts_us, u->blocks[i].first_seq,
                          u->blocks[i].data, u->blocks[i].len);
        for (size_t i = 0; i < u->nmachines; i++)
            sto_put_machine(wb,
                            vg_machine_key(u->machines[i]->tenant_id, u->machines[i]->machine_id),
                            u->machines[i]);
        cor_unit_free(u);
    }
    if (sto_write(db, wb, err, sizeof(err)) != 0)
        fail_msg("write: %s", err);
    sto_wbatch_clear(wb);
}

/* The simulator's telemetry, decoded as ingest decodes it, stored without rules. */
static uint64_t store_history(sto_db *db)
{
    struct bench_sim_opts o;
    struct cor_shard_cfg sc;
    struct ing_limits lim;
    bench_sim *sim = NULL;
    cor_shard *s = NULL;
    sto_wbatch *wb = sto_wbatch_new();
    vg_arena *a = vg_arena_new(1 << 16), *da = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    uint64_t events = 0, id = 0;
    char err[256];
    int rc, n = 0;

    assert_non_null(wb);
    assert_non_null(a);
    assert_non_null(da);
    bench_sim_opts_default(&o);
    o.machines = 24;
    o.tenants = 2;
    o.duration_us = 20 * VG_US_PER_SEC;
    memset(&sc, 0, sizeof(sc));
    sc.nshards = 1;
    sc.release = store_release;
    sc.reject = store_reject;
    assert_int_equal(cor_shard_new(&sc, &s), 0);
    if (bench_sim_new(&o, &sim, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    ing_limits_default(&lim);
    while ((rc = bench_sim_next(sim, a, &b)) == 1) {
        size_t len = vigil__telemetry_batch__get_packed_size(b);
        uint8_t *buf = vg_arena_alloc(da, len ? len : 1);
        struct ing_batch ib;
        struct cor_in in;
        char reason[256];

        assert_non_null(buf);
        vigil__telemetry_batch__pack(b, buf);
        /* Simulated times are in 2026: judge them against a clock just after. */
        if (ing_decode(buf, len, &lim, INT64_C(1800000000) * VG_US_PER_SEC, da, &ib, reason,
                       sizeof(reason)) != 0)
            fail_msg("decode: %s", reason);
        memset(&in, 0, sizeof(in));
        in.batch = ib.batch;
        in.raw = ib.raw;
        in.raw_len = ib.raw_len;
        in.mkey = vg_machine_key(ib.batch->tenant_id, ib.batch->machine_id);
        in.partition = -1;
        cor_shard_process(s, &in);
        events += ib.batch->n_events;
        vg_arena_reset(a);
        /* Blocks of a few batches each, so that a machine's history is many blocks. */
        if (++n % 64 == 0) {
            store_seal(s, db, wb, ++id);
            vg_arena_reset(da);
        }
    }
    assert_int_equal(rc, 0);
    store_seal(s, db, wb, ++id);
    bench_sim_free(sim);
    cor_shard_destroy(s);
    sto_wbatch_destroy(wb);
    vg_arena_destroy(a);
    vg_arena_destroy(da);
    return events;
}

static int group_setup(void **state)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    struct cor_corr_load_summary csum;
    struct sto_opts so = {.merge_interval_ms = -1};
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL)
        return -1;
    if (cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)) != 0 ||
        cor_corrset_load(dirs, 1, &f->corr, &csum, err, sizeof(err)) != 0) {
        print_error("rules: %s\n", err);
        return -1;
    }
    f->dir = vgt_tmpdir("hreplay");
    so.path = f->dir;
    if (sto_open(&so, &f->db, err, sizeof(err)) != 0) {
        print_error("open: %s\n", err);
        return -1;
    }
    f->events = store_history(f->db);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;

    sto_close(f->db);
    vgt_rmtree(f->dir);
    free(f->dir);
    cor_ruleset_unref(f->rules);
    cor_corrset_unref(f->corr);
    free(f);
    return 0;
}

static int str_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool want_tenant1(void *ctx, const Vigil__MachineRecord *m)
{
    (void)ctx;
    return strcmp(m->tenant_id, "tenant-1") == 0;
}

/* Replays the stored history on `threads` shard threads (tenant-1 only when one_tenant). */
static void replay(struct fx *f, unsigned threads, bool one_tenant, struct out *o)
{
    struct cor_hreplay_cfg hc;
    cor_hreplay *hr = NULL;
    size_t na = 0, ns = 0;

    memset(o, 0, sizeof(*o));
    memset(&hc, 0, sizeof(hc));
    hc.db = f->db;
    hc.threads = threads;
    hc.from_us = INT64_MIN / 2;
    hc.to_us = INT64_MAX / 2;
    hc.want = one_tenant ? want_tenant1 : NULL;
    hc.shard.rules = f->rules;
    hc.shard.corr = f->corr;
    hc.shard.sightings = true;
    assert_int_equal(cor_hreplay_new(&hc, &hr), 0);
    assert_int_equal(cor_hreplay_threads(hr), threads);
    assert_int_equal(cor_hreplay_run(hr, NULL, NULL, 10), 0);
    cor_hreplay_counts(hr, &o->events, &o->machines, &o->rejected);
    for (unsigned i = 0; i < threads; i++) {
        const struct cor_unit *u = cor_hreplay_unit(hr, i);

        assert_non_null(u);
        na += u->nalerts;
        ns += u->nsightings;
    }
    assert_null(cor_hreplay_unit(hr, threads));
    o->alerts = calloc(na + 1, sizeof(char *));
    o->sightings = calloc(ns + 1, sizeof(char *));
    assert_non_null(o->alerts);
    assert_non_null(o->sightings);
    for (unsigned i = 0; i < threads; i++) {
        const struct cor_unit *u = cor_hreplay_unit(hr, i);

        for (size_t k = 0; k < u->nalerts; k++)
            assert_non_null(o->alerts[o->nalerts++] = cor_alert_to_json(u->alerts[k].alert));
        for (size_t k = 0; k < u->nsightings; k++) {
            const Vigil__Sightings *sg = u->sightings[k];
            char line[512];

            snprintf(line, sizeof(line), "%s|%s|%lld|%zu", sg->tenant_id, sg->machine_id,
                     (long long)sg->ts_us, sg->n_entities);
            assert_non_null(o->sightings[o->nsightings++] = strdup(line));
        }
    }
    qsort(o->alerts, o->nalerts, sizeof(char *), str_cmp);
    qsort(o->sightings, o->nsightings, sizeof(char *), str_cmp);
    cor_hreplay_free(hr);
}

static void out_free(struct out *o)
{
    for (size_t i = 0; i < o->nalerts; i++)
        free(o->alerts[i]);
    for (size_t i = 0; i < o->nsightings; i++)
        free(o->sightings[i]);
    free(o->alerts);
    free(o->sightings);
}

static void assert_same(const struct out *a, const struct out *b)
{
    assert_int_equal(a->events, b->events);
    assert_int_equal(a->machines, b->machines);
    assert_int_equal(a->nalerts, b->nalerts);
    for (size_t i = 0; i < a->nalerts; i++)
        assert_string_equal(a->alerts[i], b->alerts[i]);
    assert_int_equal(a->nsightings, b->nsightings);
    for (size_t i = 0; i < a->nsightings; i++)
        assert_string_equal(a->sightings[i], b->sightings[i]);
}

/* Distinct "machine" values among the alert lines. */
static size_t alert_machines(const struct out *o)
{
    char seen[64][64];
    size_t n = 0;

    for (size_t i = 0; i < o->nalerts; i++) {
        const char *p = strstr(o->alerts[i], "\"machine\":");
        char id[64];
        size_t k;

        assert_non_null(p);
        p += strlen("\"machine\":");
        while (*p == ' ' || *p == '"')
            p++;
        for (k = 0; k < sizeof(id) - 1 && p[k] != '"' && p[k] != '\0'; k++)
            id[k] = p[k];
        id[k] = '\0';
        for (k = 0; k < n && strcmp(seen[k], id) != 0; k++)
            ;
        if (k == n && n < 64)
            strcpy(seen[n++], id);
    }
    return n;
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_threads_same_alerts(void **state)
{
    struct fx *f = *state;
    static const unsigned threads[] = {2, 3, 7};
    struct out one, many;

    replay(f, 1, false, &one);
    /* The data is worth comparing: every stored event read, alerts (and correlations) on
     * several machines of both tenants, nothing rejected. */
    assert_int_equal(one.events, f->events);
    assert_int_equal(one.machines, 24);
    assert_int_equal(one.rejected, 0);
    assert_true(one.nalerts >= 10);
    assert_true(alert_machines(&one) >= 4);
    assert_non_null(strstr(one.alerts[0], "tenant-")); /* the JSON names the tenant */
    assert_true(one.nsightings >= 24);
    print_message("one thread: %llu events, %zu alerts on %zu machines, %zu sightings\n",
                  (unsigned long long)one.events, one.nalerts, alert_machines(&one),
                  one.nsightings);
    for (size_t i = 0; i < VG_ARRAY_SIZE(threads); i++) {
        replay(f, threads[i], false, &many);
        assert_same(&one, &many);
        out_free(&many);
    }
    out_free(&one);
}

static void test_threads_one_tenant(void **state)
{
    struct fx *f = *state;
    struct out all, t1;
    size_t k = 0;

    replay(f, 1, false, &all);
    replay(f, 3, true, &t1);
    assert_int_equal(t1.machines, 12);
    assert_true(t1.nalerts > 0 && t1.nalerts < all.nalerts);
    /* Exactly the full replay's alerts of tenant-1, in the same sorted order. */
    for (size_t i = 0; i < all.nalerts; i++) {
        if (strstr(all.alerts[i], "\"tenant\":\"tenant-1\"") == NULL)
            continue;
        assert_true(k < t1.nalerts);
        assert_string_equal(all.alerts[i], t1.alerts[k]);
        k++;
    }
    assert_int_equal(k, t1.nalerts);
    out_free(&all);
    out_free(&t1);
}

/* More threads than machines: one thread a machine at most. */
static void test_threads_capped_by_machines(void **state)
{
    struct fx *f = *state;
    struct cor_hreplay_cfg hc;
    cor_hreplay *hr = NULL;

    memset(&hc, 0, sizeof(hc));
    hc.db = f->db;
    hc.threads = 100;
    hc.from_us = INT64_MIN / 2;
    hc.to_us = INT64_MAX / 2;
    hc.shard.rules = f->rules;
    assert_int_equal(cor_hreplay_new(&hc, &hr), 0);
    assert_int_equal(cor_hreplay_threads(hr), 24);
    cor_hreplay_free(hr); /* never run: frees its shards */
}

/* Out of memory anywhere in setting up: an error and nothing leaked, or a whole replay;
 * never a short list of machines (which would miss their alerts). */
static void test_new_out_of_memory(void **state)
{
    struct fx *f = *state;
    struct cor_hreplay_cfg hc;
    int failed = 0;

    memset(&hc, 0, sizeof(hc));
    hc.db = f->db;
    hc.threads = 3;
    hc.from_us = INT64_MIN / 2;
    hc.to_us = INT64_MAX / 2;
    hc.shard.rules = f->rules;
    hc.shard.corr = f->corr;
    for (long n = 1; n <= 400; n++) {
        cor_hreplay *hr = NULL;
        int rc;

        vg_alloc_fail_after(n, false);
        rc = cor_hreplay_new(&hc, &hr);
        vg_alloc_fail_after(0, false);
        if (rc == 0) {
            const char *t, *m;
            uint64_t ev;
            size_t k = 0;

            while (cor_hreplay_machine(hr, k, &t, &m, &ev))
                k++;
            assert_int_equal(k, 24);
            cor_hreplay_free(hr);
        } else {
            assert_int_equal(rc, -VG_ENOMEM);
            assert_null(hr);
            failed++;
        }
    }
    assert_true(failed > 24); /* the listing's and the shards' allocations were hit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_same_alerts),
        cmocka_unit_test(test_threads_one_tenant),
        cmocka_unit_test(test_threads_capped_by_machines),
        cmocka_unit_test(test_new_out_of_memory),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
