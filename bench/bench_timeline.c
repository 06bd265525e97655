/*
 * bench_timeline.c - six months of stored timeline: how long a page of 1,000 events takes
 * (the investigation view) and how fast stored history reads back, alone and through the
 * rules (the `vigil replay --history` path).
 *
 * The database is built with the real layout: one simulated day of telemetry for a few
 * machines is generated once, then for each of tl_days days its events are shifted by
 * that many days (time) and sequence numbers (so they stay strictly increasing), packed
 * again (the raw bytes the shard appends) and run through an in-process shard without
 * rules. Seal-all barriers every 5 s of event time stand in for the live shard's
 * block_max_age (5 s of wall time, which is event time when sensors are live), so the
 * blocks are the ones the live pipeline would write for this load. Only ts_us and seq are
 * shifted: process creation times inside the events keep the first day's values.
 *
 * THREAD MODEL: building and paging run on the caller's thread; the shards are never
 * started (cor_shard_process). The replay runs through cor_hreplay, whose shard threads
 * ("vg-replay-N") each read their machines ahead. RocksDB's own background threads compact.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corr.h"
#include "hreplay.h"
#include "sim.h"

#define TL_PAGE_EVENTS   1000
#define TL_SEAL_EVERY_US (5 * VG_US_PER_SEC)
#define TL_WRITE_BYTES   (4u << 20)

struct tl_build {
    cor_shard *shard;
    sto_db *db;
    sto_wbatch *wb;
    uint64_t barrier_id;
    uint64_t blocks, events, rejected;
};

struct tl_page {
    int64_t at_us;
    bool descending;
};

static void tl_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* inputs live in the caller's arena; barriers move into units */
}

static void tl_reject(void *ctx, struct cor_in *in, const char *reason)
{
    struct tl_build *b = ctx;

    (void)in;
    (void)reason;
    b->rejected++;
}

static void tl_say(bench_progress_fn pf, void *pc, const char *line)
{
    if (pf != NULL)
        pf(pc, line);
}

static int tl_flush(struct tl_build *b)
{
    char err[256];
    int rc;

    if (sto_wbatch_bytes(b->wb) == 0)
        return 0;
    rc = sto_write(b->db, b->wb, err, sizeof(err));
    if (rc < 0)
        vg_log(VG_LOG_ERROR, "bench", "timeline write: %s", err);
    sto_wbatch_clear(b->wb);
    return rc;
}

/* Seals every open block and stages what the shard hands back, as the writer would. */
static int tl_seal(struct tl_build *b)
{
    struct cor_barrier *br = cor_barrier_new(++b->barrier_id, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = br};
    struct cor_unit *u;

    if (br == NULL)
        return -VG_ENOMEM;
    cor_shard_process(b->shard, &in);
    while ((u = cor_shard_pop_unit(b->shard)) != NULL) {
        for (size_t i = 0; i < u->nblocks; i++)
            sto_put_block(b->wb, u->blocks[i].mkey, u->blocks[i].first_ts_us,
                          u->blocks[i].first_seq, u->blocks[i].data, u->blocks[i].len);
        for (size_t i = 0; i < u->nmachines; i++)
            sto_put_machine(b->wb,
                            vg_machine_key(u->machines[i]->tenant_id, u->machines[i]->machine_id),
                            u->machines[i]);
        b->blocks += u->nblocks;
        cor_unit_free(u);
    }
    return sto_wbatch_bytes(b->wb) >= TL_WRITE_BYTES ? tl_flush(b) : 0;
}

/* Decodes batch i of the day, moves it day days on, packs each event again and feeds the
 * shard. */
static int tl_feed(struct tl_build *b, const struct bench_data *d, size_t i, uint32_t day,
                   uint64_t seq_per_day, vg_arena *a, int64_t *first_ts)
{
    int64_t shift = (int64_t)day * VG_US_PER_DAY;
    uint64_t sshift = (uint64_t)day * seq_per_day;
    struct ing_limits lim;
    struct ing_batch ib;
    struct cor_in in;
    uint8_t **raw;
    size_t *rlen;
    char reason[256];
    Vigil__TelemetryBatch *bt;

    ing_limits_default(&lim);
    if (ing_decode(d->buf + d->off[i], d->blen[i], &lim, INT64_MAX / 4, a, &ib, reason,
                   sizeof(reason)) < 0) {
        b->rejected++;
        return 0;
    }
    bt = (Vigil__TelemetryBatch *)ib.batch;
    if (bt->n_events == 0)
        return 0;
    *first_ts = bt->events[0]->ts_us + shift;
    raw = vg_arena_alloc(a, (bt->n_events + 1) * sizeof(*raw));
    rlen = vg_arena_alloc(a, (bt->n_events + 1) * sizeof(*rlen));
    if (raw == NULL || rlen == NULL)
        return -VG_ENOMEM;
    bt->first_seq += sshift;
    for (size_t k = 0; k < bt->n_events; k++) {
        Vigil__Event *ev = bt->events[k];

        ev->ts_us += shift;
        ev->seq += sshift;
        rlen[k] = vigil__event__get_packed_size(ev);
        if ((raw[k] = vg_arena_alloc(a, rlen[k] ? rlen[k] : 1)) == NULL)
            return -VG_ENOMEM;
        vigil__event__pack(ev, raw[k]);
    }
    memset(&in, 0, sizeof(in));
    in.batch = bt;
    in.raw = (const uint8_t *const *)raw;
    in.raw_len = rlen;
    in.mkey = d->mkey[i];
    in.partition = -1;
    cor_shard_process(b->shard, &in);
    b->events += bt->n_events;
    return 0;
}

/* Merges the small blocks, as the storage's merge thread does in the live service a pass
 * at a time (the bench opens the database without that thread, so that the build and the
 * merge are measured apart and the layout does not depend on timing). */
static int tl_merge(sto_db *db, bench_progress_fn pf, void *pc)
{
    struct sto_merge_stats ms = {0};
    uint64_t t0 = vg_mono_ns();
    char line[256];
    int rc = sto_tl_merge(db, 0, UINT32_MAX, &ms);

    if (rc < 0)
        return rc;
    snprintf(line, sizeof(line),
             "timeline: merged %llu small blocks into %llu (%llu events) in %.1f s; %llu "
             "conflicts, %llu corrupt",
             (unsigned long long)ms.blocks_in, (unsigned long long)ms.runs,
             (unsigned long long)ms.events, (double)(vg_mono_ns() - t0) / 1e9,
             (unsigned long long)ms.conflicts, (unsigned long long)ms.corrupt);
    tl_say(pf, pc, line);
    return 0;
}

static int tl_build_db(const struct bench_opts *o, const struct bench_data *d, sto_db *db,
                       struct bench_report *r, bench_progress_fn pf, void *pc)
{
    struct tl_build b;
    struct cor_shard_cfg sc;
    vg_arena *a = vg_arena_new(1 << 20);
    uint64_t seq_per_day = 0;
    int64_t open_since = INT64_MIN;
    char line[256];
    int rc = -VG_ENOMEM;

    memset(&b, 0, sizeof(b));
    memset(&sc, 0, sizeof(sc));
    sc.nshards = 1;
    sc.release = tl_release;
    sc.reject = tl_reject;
    sc.ctx = &b;
    b.db = db;
    if (a == NULL || (b.wb = sto_wbatch_new()) == NULL || cor_shard_new(&sc, &b.shard) < 0)
        goto out;
    for (size_t i = 0; i < d->n; i++)
        if (d->last_seq[i] + 1 > seq_per_day)
            seq_per_day = d->last_seq[i] + 1;
    for (uint32_t day = 0; day < o->tl_days; day++) {
        for (size_t i = 0; i < d->n; i++) {
            int64_t ts = 0;

            vg_arena_reset(a);
            if ((rc = tl_feed(&b, d, i, day, seq_per_day, a, &ts)) < 0)
                goto out;
            /* Blocks live at most TL_SEAL_EVERY_US of event time, as they live at most
             * block_max_age of wall time in the live shard. */
            if (open_since == INT64_MIN)
                open_since = ts;
            else if (ts >= open_since + TL_SEAL_EVERY_US) {
                if ((rc = tl_seal(&b)) < 0)
                    goto out;
                open_since = INT64_MIN;
            }
        }
        if ((rc = tl_seal(&b)) < 0)
            goto out;
        if (day % 30 == 29 && pf != NULL) {
            snprintf(line, sizeof(line), "timeline: %u/%u days written (%llu events)", day + 1,
                     o->tl_days, (unsigned long long)b.events);
            tl_say(pf, pc, line);
        }
    }
    if ((rc = tl_flush(&b)) < 0)
        goto out;
    if ((rc = tl_merge(db, pf, pc)) < 0)
        goto out;
    rc = sto_compact_all(db);
    r->tl_events = b.events;
    r->tl_blocks = b.blocks;
out:
    cor_shard_destroy(b.shard);
    sto_wbatch_destroy(b.wb);
    vg_arena_destroy(a);
    return rc;
}

/* ---- paging ------------------------------------------------------------------------- */

static int tl_dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

static double tl_pct(const double *sorted, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* The calling thread's CPU time in ms: a page's cost apart from the time other processes
 * of a shared machine take from it. */
static double tl_thread_cpu_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Times each page: open at its point, up to TL_PAGE_EVENTS events, close. cpu (2 values,
 * p50 and p99 of the thread's CPU time a page) may be NULL. */
static int tl_pages_run(sto_db *db, uint64_t mkey, const struct tl_page *pg, size_t n, double *p50,
                        double *p99, uint64_t *events, double *cpu)
{
    double *ms = vg_malloc((n ? n : 1) * 2 * sizeof(*ms)), *cms;

    if (ms == NULL)
        return -VG_ENOMEM;
    cms = ms + (n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        double c0 = tl_thread_cpu_ms();
        uint64_t t0 = vg_mono_ns();
        const Vigil__Event *ev;
        sto_tl_iter *it;
        int k = 0;

        if (sto_tl_open(db, mkey, pg[i].descending ? INT64_MIN / 2 : pg[i].at_us,
                        pg[i].descending ? pg[i].at_us : INT64_MAX / 2, pg[i].descending,
                        &it) < 0) {
            vg_free(ms);
            return -VG_EIO;
        }
        while (k < TL_PAGE_EVENTS && sto_tl_next(it, &ev) == 1)
            k++;
        sto_tl_close(it);
        ms[i] = (double)(vg_mono_ns() - t0) / 1e6;
        cms[i] = tl_thread_cpu_ms() - c0;
        *events += (uint64_t)k;
    }
    qsort(ms, n, sizeof(*ms), tl_dbl_cmp);
    qsort(cms, n, sizeof(*cms), tl_dbl_cmp);
    *p50 = tl_pct(ms, n, 0.50);
    *p99 = tl_pct(ms, n, 0.99);
    if (cpu != NULL) {
        cpu[0] = tl_pct(cms, n, 0.50);
        cpu[1] = tl_pct(cms, n, 0.99);
    }
    vg_free(ms);
    return 0;
}

/* ---- reading back ------------------------------------------------------------------- */

struct tl_read {
    sto_db *db;
    uint64_t events;
    int64_t sum_ts; /* so the read cannot be optimised away */
};

/* One machine's stored events in time order, read as replay --history reads them (a
 * helper thread reads and unpacks ahead), without the rules. */
static bool tl_read_machine(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    struct tl_read *t = ctx;
    const Vigil__Event *ev;
    sto_tl_iter *it;

    (void)m;
    if (sto_tl_open_ahead(t->db, mkey, INT64_MIN / 2, INT64_MAX / 2, false, &it) < 0)
        return true;
    while (sto_tl_next(it, &ev) == 1) {
        t->events++;
        t->sum_ts += ev->ts_us;
    }
    sto_tl_close(it);
    return true;
}

/* The replay command's path (cor_hreplay): every machine through the rules on `threads`
 * shard threads (0: the online CPUs), each reading its machines ahead. Returns 0 or a
 * negative vg_err; sets the rate, the CPU an event over all threads and on the shard
 * threads, and the alerts. */
static int tl_replay(sto_db *db, const struct cor_shard_cfg *sc, unsigned threads, double *eps,
                     double *cpu_us, double *eval_us, uint64_t *events, uint64_t *alerts)
{
    struct cor_hreplay_cfg hc;
    cor_hreplay *hr = NULL;
    uint64_t t0;
    double c0;
    int rc;

    memset(&hc, 0, sizeof(hc));
    hc.db = db;
    hc.threads = threads;
    hc.from_us = INT64_MIN / 2;
    hc.to_us = INT64_MAX / 2;
    hc.shard = *sc;
    c0 = bench_cpu_us();
    t0 = vg_mono_ns();
    if ((rc = cor_hreplay_new(&hc, &hr)) < 0 || (rc = cor_hreplay_run(hr, NULL, NULL, 50)) < 0)
        goto out;
    cor_hreplay_counts(hr, events, NULL, NULL);
    *alerts = 0;
    for (unsigned i = 0; i < cor_hreplay_threads(hr); i++) {
        const struct cor_unit *u = cor_hreplay_unit(hr, i);

        *alerts += u ? u->nalerts : 0;
    }
    *eps = (double)*events / ((double)(vg_mono_ns() - t0) / 1e9);
    *cpu_us = *events ? (bench_cpu_us() - c0) / (double)*events : 0;
    /* The evaluating threads alone (the reading is on the iterators' helper threads). */
    *eval_us = *events ? (double)cor_hreplay_shard_cpu_ns(hr) / 1e3 / (double)*events : 0;
out:
    cor_hreplay_free(hr);
    return rc;
}

/* Read-back alone, the replay on one shard thread and on the online CPUs, each run
 * o->repeats times (at most 5) in turn, so that the machine's load falls on all three
 * alike; the report quotes each one's median. */
static int tl_readback(const struct bench_opts *o, cor_ruleset *rules, sto_db *db,
                       struct bench_report *r, double *eval_us)
{
    struct cor_corr_load_summary cs;
    struct cor_shard_cfg sc;
    cor_corrset *corr = NULL;
    char err[256];
    double cpu[5], eval[5];
    int runs = o->repeats < 1 ? 1 : o->repeats > 5 ? 5 : o->repeats;
    int rc = 0;

    /* The replay command's shards: the rules and the correlation rules of the same
     * directories. */
    memset(&cs, 0, sizeof(cs));
    if (cor_corrset_load(o->rule_dirs, o->nrule_dirs, &corr, &cs, err, sizeof(err)) < 0) {
        vg_log(VG_LOG_WARN, "bench", "correlation rules: %s (replay without them)", err);
        corr = NULL;
    }
    memset(&sc, 0, sizeof(sc));
    sc.rules = rules;
    sc.corr = corr;
    r->replay_nruns = 0;
    for (int i = 0; i < runs; i++) {
        struct tl_read t = {.db = db};
        uint64_t t0 = vg_mono_ns(), ev1 = 0, al1 = 0;
        double cpu1 = 0, eval1 = 0;

        if ((rc = sto_scan_machines(db, tl_read_machine, &t)) < 0)
            goto out;
        r->tl_readback_events = t.events;
        r->readback_runs[i] = (double)t.events / ((double)(vg_mono_ns() - t0) / 1e9);
        /* One shard thread (what a replay did before it had several), then the default of
         * vigil replay --history: as many as there are CPUs. */
        if ((rc = tl_replay(db, &sc, 1, &r->replay1_runs[i], &cpu1, &eval1, &ev1, &al1)) < 0 ||
            (rc = tl_replay(db, &sc, 0, &r->replay_runs[i], &cpu[i], &eval[i], &r->tl_replay_events,
                            &r->tl_replay_alerts)) < 0)
            goto out;
        r->replay_nruns = i + 1;
        if (ev1 != r->tl_replay_events || al1 != r->tl_replay_alerts)
            vg_log(VG_LOG_ERROR, "bench",
                   "replay on one thread saw %llu events and %llu alerts, on several %llu and %llu",
                   (unsigned long long)ev1, (unsigned long long)al1,
                   (unsigned long long)r->tl_replay_events,
                   (unsigned long long)r->tl_replay_alerts);
    }
    r->readback_eps = bench_median(r->readback_runs, runs);
    r->replay1_eps = bench_median(r->replay1_runs, runs);
    r->replay_eps = bench_median(r->replay_runs, runs);
    r->replay_cpu_us_per_event = bench_median(cpu, runs);
    *eval_us = bench_median(eval, runs);
    {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

        r->replay_threads = ncpu > 0 ? (unsigned)ncpu : 1;
    }
out:
    cor_corrset_unref(corr);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------ */

static int tl_open(const char *dir, sto_db **db)
{
    struct sto_opts so = {.path = dir, .merge_interval_ms = -1};
    char err[256];
    int rc = sto_open(&so, db, err, sizeof(err));

    if (rc < 0)
        vg_log(VG_LOG_ERROR, "bench", "timeline storage: %s", err);
    return rc;
}

static void tl_sim_opts(const struct bench_opts *o, int64_t day0, struct bench_sim_opts *so)
{
    bench_sim_opts_default(so);
    so->seed = o->seed;
    so->machines = o->tl_machines;
    so->tenants = 1;
    so->events_per_machine_per_sec = o->tl_rate;
    /* The active window starts at 08:00 UTC of the first day. */
    so->start_us = day0 + 8 * 3600 * VG_US_PER_SEC;
    so->duration_us = (int64_t)(o->tl_active_s * 1e6);
    so->scenarios = false;
}

/* Random points between a day after the first event and a day before the last, so each
 * page finds its 1,000 events; alternately ascending and descending. */
static void tl_make_pages(struct tl_page *pg, size_t n, int64_t from, int64_t to, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pg[i].at_us = from + (int64_t)(x % (uint64_t)(to - from));
        pg[i].descending = i % 2 == 1;
    }
}

int bench_timeline_run(const struct bench_opts *o, cor_ruleset *rules, const char *db_dir,
                       struct bench_report *r, bench_progress_fn pf, void *pc)
{
    int64_t day0 = (vg_now_us() / VG_US_PER_DAY - (int64_t)o->tl_days) * VG_US_PER_DAY;
    struct bench_sim_opts so;
    struct bench_data d;
    struct tl_page *pg = NULL;
    sto_db *db = NULL;
    uint64_t t0 = vg_mono_ns(), got = 0;
    double cpu[2][2] = {{0}}, eval_us = 0;
    char err[256], line[256];
    int rc;

    memset(&d, 0, sizeof(d));
    tl_sim_opts(o, day0, &so);
    if ((rc = bench_data_make(&d, &so, err, sizeof(err))) < 0) {
        vg_log(VG_LOG_ERROR, "bench", "timeline data: %s", err);
        goto out;
    }
    snprintf(line, sizeof(line), "timeline: %u machines x %llu events/day x %u days",
             o->tl_machines, (unsigned long long)(d.events / (o->tl_machines ? o->tl_machines : 1)),
             o->tl_days);
    tl_say(pf, pc, line);
    if ((rc = tl_open(db_dir, &db)) < 0 || (rc = tl_build_db(o, &d, db, r, pf, pc)) < 0)
        goto out;
    r->tl_build_s = (double)(vg_mono_ns() - t0) / 1e9;
    r->tl_disk_bytes = sto_disk_bytes(db);
    r->tl_days = o->tl_days;
    r->tl_machines = o->tl_machines;
    for (size_t i = 0; i < d.n; i++)
        if (d.mkey[i] == d.mkey[0])
            r->tl_busy_events += d.nev[i];
    r->tl_busy_events *= o->tl_days;
    snprintf(line, sizeof(line), "timeline: %llu events in %llu blocks, %.0f MiB on disk, %.1f s",
             (unsigned long long)r->tl_events, (unsigned long long)r->tl_blocks,
             (double)r->tl_disk_bytes / 1048576.0, r->tl_build_s);
    tl_say(pf, pc, line);
    /* Cold-ish: a fresh RocksDB (empty block cache); the OS page cache is still warm. */
    sto_close(db);
    db = NULL;
    if ((rc = tl_open(db_dir, &db)) < 0)
        goto out;
    r->tl_pages = o->tl_pages;
    if ((pg = vg_malloc((o->tl_pages ? o->tl_pages : 1) * sizeof(*pg))) == NULL) {
        rc = -VG_ENOMEM;
        goto out;
    }
    tl_make_pages(pg, o->tl_pages, day0 + VG_US_PER_DAY,
                  day0 + ((int64_t)o->tl_days - 1) * VG_US_PER_DAY, o->seed);
    if ((rc = tl_pages_run(db, d.mkey[0], pg, o->tl_pages, &r->tl_page_ms_p50, &r->tl_page_ms_p99,
                           &got, cpu[0])) < 0 ||
        (rc = tl_pages_run(db, d.mkey[0], pg, o->tl_pages, &r->tl_page_warm_ms_p50,
                           &r->tl_page_warm_ms_p99, &got, cpu[1])) < 0)
        goto out;
    r->tl_page_events = o->tl_pages ? (double)got / (2.0 * o->tl_pages) : 0;
    snprintf(line, sizeof(line),
             "timeline: page of %.0f events: p50 %.2f ms, p99 %.2f ms (reopened); p50 %.2f ms, "
             "p99 %.2f ms (warm)",
             r->tl_page_events, r->tl_page_ms_p50, r->tl_page_ms_p99, r->tl_page_warm_ms_p50,
             r->tl_page_warm_ms_p99);
    tl_say(pf, pc, line);
    snprintf(line, sizeof(line),
             "timeline: CPU time a page (this thread): p50 %.2f ms, p99 %.2f ms (reopened); "
             "p50 %.2f ms, p99 %.2f ms (warm)",
             cpu[0][0], cpu[0][1], cpu[1][0], cpu[1][1]);
    tl_say(pf, pc, line);
    if ((rc = tl_readback(o, rules, db, r, &eval_us)) < 0)
        goto out;
    snprintf(line, sizeof(line),
             "timeline: read back %.0f events/s; replay with rules %.0f events/s on %u shard "
             "threads (%.2f us CPU an event, of which %.2f us on the shard threads; %llu "
             "alerts), %.0f events/s on one",
             r->readback_eps, r->replay_eps, r->replay_threads, r->replay_cpu_us_per_event, eval_us,
             (unsigned long long)r->tl_replay_alerts, r->replay1_eps);
    tl_say(pf, pc, line);
    r->tl_ran = true;
out:
    vg_free(pg);
    sto_close(db);
    bench_data_free(&d);
    return rc;
}
