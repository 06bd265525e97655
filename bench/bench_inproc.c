/*
 * bench_inproc.c - the in-process measurements (no Kafka): decode -> route -> shard ->
 * store on one thread with each stage timed, rule evaluation alone, detection against
 * the ground truth, and the streaming runs for memory per machine and machine scaling.
 *
 * THREAD SAFETY: everything here runs on the caller's thread; the shards used are never
 * started (cor_shard_process).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define BENCH_BARRIER_BATCHES 512

struct bench_alert {
    uint64_t idh;
    char machine[128];
    char title[128];
    int64_t first_us, last_us;
    uint64_t max_seq;
};

struct bench_inproc {
    cor_shard *shard;
    sto_db *db;
    sto_wbatch *wb;
    uint64_t barrier_id;
    uint64_t rejected;
    double store_ns, emit_ns;
    struct bench_alert *alerts;
    size_t nalerts, capalerts;
    struct vg_u64map byid;
};

static void bench_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* batches live in the caller's arena */
}

static void bench_reject(void *ctx, struct cor_in *in, const char *reason)
{
    struct bench_inproc *b = ctx;

    (void)in;
    (void)reason;
    b->rejected++;
}

static int bench_shard_open(struct bench_inproc *b, cor_ruleset *rules, sto_db *db)
{
    struct cor_shard_cfg sc;

    memset(&sc, 0, sizeof(sc));
    sc.nshards = 1;
    sc.rules = rules;
    sc.db = db;
    sc.release = bench_release;
    sc.reject = bench_reject;
    sc.ctx = b;
    sc.sightings = true; /* as in vigil run */
    return cor_shard_new(&sc, &b->shard);
}

/* Keeps the final state of every alert, for detection. */
static void bench_note_alert(struct bench_inproc *b, const Vigil__Alert *a)
{
    uint64_t h = vg_hash64(a->id, strlen(a->id), 7) | 1;
    void *v = vg_u64map_get(&b->byid, h);
    struct bench_alert *x;
    size_t i;

    if (v != NULL) {
        i = (size_t)(uintptr_t)v - 1;
    } else {
        size_t cap = b->capalerts;

        if (b->nalerts == cap) {
            struct bench_alert *n;

            cap = cap ? cap * 2 : 256;
            n = vg_realloc(b->alerts, cap * sizeof(*n));
            if (n == NULL)
                return;
            b->alerts = n;
            b->capalerts = cap;
        }
        i = b->nalerts++;
        if (vg_u64map_put(&b->byid, h, (void *)(uintptr_t)(i + 1)) < 0) {
            b->nalerts--;
            return;
        }
    }
    x = &b->alerts[i];
    x->idh = h;
    snprintf(x->machine, sizeof(x->machine), "%s", a->machine_id);
    snprintf(x->title, sizeof(x->title), "%s", a->title);
    x->first_us = a->first_event_us;
    x->last_us = a->last_event_us;
    x->max_seq = 0;
    for (size_t k = 0; k < a->n_evidence; k++)
        if (a->evidence[k]->seq > x->max_seq)
            x->max_seq = a->evidence[k]->seq;
}

/* Writes one unit as the pipeline's writer does (blocks, machine records, alerts), then
 * emits its new alerts as the writer would (packed, and as JSON). */
static void bench_store_unit(struct bench_inproc *b, struct cor_unit *u)
{
    uint64_t t0 = vg_mono_ns(), t1;
    char err[256];

    if (b->db != NULL) {
        for (size_t i = 0; i < u->nblocks; i++)
            sto_put_block(b->wb, u->blocks[i].mkey, u->blocks[i].first_ts_us,
                          u->blocks[i].first_seq, u->blocks[i].data, u->blocks[i].len);
        for (size_t i = 0; i < u->nmachines; i++)
            sto_put_machine(b->wb,
                            vg_machine_key(u->machines[i]->tenant_id, u->machines[i]->machine_id),
                            u->machines[i]);
        for (size_t i = 0; i < u->nalerts; i++)
            sto_put_alert(b->wb, u->alerts[i].alert, u->alerts[i].is_new);
        if (sto_write(b->db, b->wb, err, sizeof(err)) < 0)
            vg_log(VG_LOG_ERROR, "bench", "write: %s", err);
        sto_wbatch_clear(b->wb);
    }
    t1 = vg_mono_ns();
    b->store_ns += (double)(t1 - t0);
    for (size_t i = 0; i < u->nalerts; i++) {
        const Vigil__Alert *a = u->alerts[i].alert;

        bench_note_alert(b, a);
        if (u->alerts[i].is_new) {
            size_t len = vigil__alert__get_packed_size(a);
            uint8_t *buf = vg_malloc(len);
            char *js = cor_alert_to_json(a);

            if (buf != NULL)
                vigil__alert__pack(a, buf);
            vg_free(buf);
            free(js);
        }
    }
    b->emit_ns += (double)(vg_mono_ns() - t1);
}

static void bench_barrier(struct bench_inproc *b, bool seal_all, bool store)
{
    struct cor_barrier *br = cor_barrier_new(++b->barrier_id, seal_all, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = br};
    struct cor_unit *u;

    if (br == NULL)
        return;
    cor_shard_process(b->shard, &in);
    while ((u = cor_shard_pop_unit(b->shard)) != NULL) {
        if (store)
            bench_store_unit(b, u);
        cor_unit_free(u);
    }
}

static void bench_inproc_close(struct bench_inproc *b)
{
    cor_shard_destroy(b->shard);
    sto_wbatch_destroy(b->wb);
    vg_free(b->alerts);
    vg_u64map_free(&b->byid);
    memset(b, 0, sizeof(*b));
}

static void bench_add_stage(struct bench_report *r, const char *name, double ns, uint64_t events)
{
    struct bench_stage *s;

    if (r->nstages == VG_ARRAY_SIZE(r->stages))
        return;
    s = &r->stages[r->nstages++];
    s->name = name;
    s->cpu_us_per_event = events ? ns / 1e3 / (double)events : 0;
    s->events_per_sec = ns > 0 ? (double)events / (ns / 1e9) : 0;
}

/* ---- detection ---------------------------------------------------------------------- */

static bool bench_alert_is_attack(const struct bench_data *d, const struct bench_alert *a)
{
    for (size_t i = 0; i < d->ntruth; i++) {
        const struct bench_sim_truth *t = &d->truth[i];

        /* Scenario machines keep their benign activity too: an alert counts as the
         * attack's when it is on that machine and starts within a minute after it. */
        if (t->emitted && strcmp(t->machine, a->machine) == 0 &&
            a->last_us >= t->ts_us - VG_US_PER_SEC && a->first_us <= t->ts_us + 60 * VG_US_PER_SEC)
            return true;
    }
    return false;
}

static bool bench_truth_found(const struct bench_inproc *b, const struct bench_sim_truth *t)
{
    for (size_t i = 0; i < b->nalerts; i++) {
        const struct bench_alert *a = &b->alerts[i];

        if (strcmp(t->machine, a->machine) == 0 && a->first_us <= t->ts_us + VG_US_PER_SEC &&
            a->last_us >= t->ts_us - VG_US_PER_SEC)
            return true;
    }
    return false;
}

static void bench_note_benign(struct bench_report *r, const char *title)
{
    for (size_t i = 0; i < r->nbenign_titles; i++)
        if (strcmp(r->benign_titles[i], title) == 0) {
            r->benign_counts[i]++;
            return;
        }
    if (r->nbenign_titles < VG_ARRAY_SIZE(r->benign_titles)) {
        snprintf(r->benign_titles[r->nbenign_titles], sizeof(r->benign_titles[0]), "%s", title);
        r->benign_counts[r->nbenign_titles++] = 1;
    }
}

static void bench_detection(const struct bench_data *d, const struct bench_inproc *b,
                            struct bench_report *r)
{
    r->truths = r->truths_found = 0;
    for (size_t i = 0; i < d->ntruth; i++) {
        if (!d->truth[i].emitted)
            continue;
        r->truths++;
        r->truths_found += bench_truth_found(b, &d->truth[i]);
    }
    r->alerts_total = b->nalerts;
    r->alerts_attack = r->alerts_benign = 0;
    for (size_t i = 0; i < b->nalerts; i++) {
        if (bench_alert_is_attack(d, &b->alerts[i])) {
            r->alerts_attack++;
        } else {
            r->alerts_benign++;
            bench_note_benign(r, b->alerts[i].title);
        }
    }
}

/* ---- the in-process pass ------------------------------------------------------------ */

/*
 * decode -> route -> shard -> store (+ emit) on this thread over every batch of d, each
 * stage timed on its own; fills the stage table, the in-process rate (r->inproc, one
 * run), the storing-alone rate (r->store) and detection. db: a fresh database.
 */
int bench_inproc_run(const struct bench_data *d, cor_ruleset *rules, sto_db *db,
                     struct bench_report *r, double *eps_out)
{
    struct bench_inproc b;
    struct ing_limits lim;
    vg_arena *a = vg_arena_new(1 << 20);
    double dec_ns = 0, route_ns = 0, shard_ns = 0, cpu0;
    uint64_t t0, events = 0;
    int rc = -VG_ENOMEM;

    memset(&b, 0, sizeof(b));
    ing_limits_default(&lim);
    b.db = db;
    if (a == NULL || vg_u64map_init(&b.byid, 1024) < 0 || (b.wb = sto_wbatch_new()) == NULL ||
        bench_shard_open(&b, rules, db) < 0)
        goto out;
    cpu0 = bench_thread_cpu_us();
    t0 = vg_mono_ns();
    for (size_t i = 0; i < d->n; i++) {
        struct ing_batch ib;
        struct cor_in in;
        char reason[128];
        uint64_t ta, tb, tc;

        vg_arena_reset(a);
        ta = vg_mono_ns();
        if (ing_decode(d->buf + d->off[i], d->blen[i], &lim, vg_now_us(), a, &ib, reason,
                       sizeof(reason)) < 0) {
            b.rejected++;
            continue;
        }
        tb = vg_mono_ns();
        memset(&in, 0, sizeof(in));
        in.batch = ib.batch;
        in.raw = ib.raw;
        in.raw_len = ib.raw_len;
        in.mkey = vg_machine_key(ib.batch->tenant_id, ib.batch->machine_id);
        in.partition = -1;
        in.recv_ns = tb;
        tc = vg_mono_ns();
        cor_shard_process(b.shard, &in);
        shard_ns += (double)(vg_mono_ns() - tc);
        dec_ns += (double)(tb - ta);
        route_ns += (double)(tc - tb);
        events += ib.batch->n_events;
        if ((i + 1) % BENCH_BARRIER_BATCHES == 0) {
            uint64_t tbar = vg_mono_ns();
            double before = b.store_ns + b.emit_ns;

            bench_barrier(&b, false, true);
            /* The barrier's own shard work (sealing, block compression) is the shard's. */
            shard_ns += (double)(vg_mono_ns() - tbar) - (b.store_ns + b.emit_ns - before);
        }
    }
    {
        uint64_t tbar = vg_mono_ns();
        double before = b.store_ns + b.emit_ns;

        bench_barrier(&b, true, true);
        shard_ns += (double)(vg_mono_ns() - tbar) - (b.store_ns + b.emit_ns - before);
    }
    {
        double wall = (double)(vg_mono_ns() - t0) / 1e9;
        double cpu = bench_thread_cpu_us() - cpu0;

        r->inproc.runs[r->inproc.nruns++] = (double)events / wall;
        r->inproc.events_per_sec = (double)events / wall;
        r->inproc.cpu_us_per_event = cpu / (double)(events ? events : 1);
        if (eps_out)
            *eps_out = (double)events / wall;
    }
    if (r->nstages == 0) {
        bench_add_stage(r, "decode", dec_ns, events);
        bench_add_stage(r, "route", route_ns, events);
        bench_add_stage(r, "correlate", shard_ns, events); /* rules included; see "rules" */
        bench_add_stage(r, "store", b.store_ns, events);
        bench_add_stage(r, "emit", b.emit_ns, events);
        r->store.events_per_sec = b.store_ns > 0 ? (double)events / (b.store_ns / 1e9) : 0;
        r->store.cpu_us_per_event = b.store_ns / 1e3 / (double)(events ? events : 1);
        r->store.runs[r->store.nruns++] = r->store.events_per_sec;
        bench_detection(d, &b, r);
    }
    rc = 0;
out:
    bench_inproc_close(&b);
    vg_arena_destroy(a);
    return rc;
}

/* Rule evaluation alone: every event's view against the rule set, with one scratch. */
static void bench_count_match(void *ctx, const struct cor_rule_info *rule)
{
    (void)rule;
    (*(uint64_t *)ctx)++;
}

int bench_rules_alone(const struct bench_data *d, cor_ruleset *rules, struct bench_report *r)
{
    struct ing_limits lim;
    vg_arena *a = vg_arena_new(1 << 20);
    cor_scratch *sc = rules ? cor_scratch_new(rules) : NULL;
    double ns = 0;
    uint64_t events = 0, matches = 0;
    struct vg_evview *v = vg_malloc(sizeof(*v));

    ing_limits_default(&lim);
    if (a == NULL || sc == NULL || v == NULL) {
        vg_arena_destroy(a);
        cor_scratch_destroy(sc);
        vg_free(v);
        return -VG_ENOMEM;
    }
    for (size_t i = 0; i < d->n; i++) {
        struct ing_batch ib;
        char reason[128];
        uint64_t t0;

        vg_arena_reset(a);
        if (ing_decode(d->buf + d->off[i], d->blen[i], &lim, vg_now_us(), a, &ib, reason,
                       sizeof(reason)) < 0)
            continue;
        t0 = vg_mono_ns();
        for (size_t k = 0; k < ib.batch->n_events; k++) {
            vg_evview_build(v, ib.batch, ib.batch->events[k]);
            cor_rules_eval(rules, sc, v, bench_count_match, &matches);
        }
        ns += (double)(vg_mono_ns() - t0);
        events += ib.batch->n_events;
    }
    bench_add_stage(r, "rules", ns, events);
    vg_arena_destroy(a);
    cor_scratch_destroy(sc);
    vg_free(v);
    return 0;
}

/* ---- streaming runs: many machines, memory per machine ------------------------------ */

/*
 * Generates, packs, decodes and correlates so's telemetry on this thread without keeping
 * the bytes (sealed units are dropped: storage is measured elsewhere), so that the
 * process's growth is the tracked machines' state. Returns 0 and fills the rates and RSS.
 */
int bench_stream(const struct bench_sim_opts *so, cor_ruleset *rules, double *eps,
                 uint64_t *events_out, uint64_t *rss_base, uint64_t *rss_after)
{
    struct bench_inproc b;
    struct ing_limits lim;
    bench_sim *sim = NULL;
    vg_arena *a = vg_arena_new(1 << 20), *pa = vg_arena_new(1 << 20);
    double ns = 0;
    uint64_t events = 0, nb = 0;
    size_t sim_base = 0;
    char err[256];
    int rc = -VG_ENOMEM, k;

    memset(&b, 0, sizeof(b));
    ing_limits_default(&lim);
    if (a == NULL || pa == NULL || vg_u64map_init(&b.byid, 16) < 0 ||
        bench_shard_open(&b, rules, NULL) < 0)
        goto out;
    if ((rc = bench_sim_new(so, &sim, err, sizeof(err))) < 0) {
        vg_log(VG_LOG_ERROR, "bench", "simulator: %s", err);
        goto out;
    }
    sim_base = bench_sim_state_bytes(sim);
    if (rss_base)
        *rss_base = bench_rss_bytes();
    for (;;) {
        Vigil__TelemetryBatch *sb;
        struct ing_batch ib;
        struct cor_in in;
        uint8_t *buf;
        size_t len;
        char reason[128];
        uint64_t t0;

        vg_arena_reset(pa);
        vg_arena_reset(a);
        k = bench_sim_next(sim, pa, &sb);
        if (k <= 0)
            break;
        if (bench_sim_pack(sb, pa, &buf, &len) < 0)
            continue;
        t0 = vg_mono_ns();
        if (ing_decode(buf, len, &lim, vg_now_us(), a, &ib, reason, sizeof(reason)) < 0)
            continue;
        memset(&in, 0, sizeof(in));
        in.batch = ib.batch;
        in.raw = ib.raw;
        in.raw_len = ib.raw_len;
        in.mkey = vg_machine_key(ib.batch->tenant_id, ib.batch->machine_id);
        in.partition = -1;
        cor_shard_process(b.shard, &in);
        events += ib.batch->n_events;
        if (++nb % (BENCH_BARRIER_BATCHES * 8) == 0)
            bench_barrier(&b, false, false);
        ns += (double)(vg_mono_ns() - t0);
    }
    bench_barrier(&b, false, false);
    if (rss_after) /* the generator's own growth is not the pipeline's */
        *rss_after = bench_rss_bytes() - (bench_sim_state_bytes(sim) - sim_base);
    *eps = ns > 0 ? (double)events / (ns / 1e9) : 0;
    if (events_out)
        *events_out = events;
    rc = 0;
out:
    bench_sim_free(sim);
    bench_inproc_close(&b);
    vg_arena_destroy(a);
    vg_arena_destroy(pa);
    return rc;
}
