/*
 * test_route.c - routing by machine key, and one correlator shard run in-process
 * (cor_shard_process, no thread): duplicates, barriers and timeline blocks, pending
 * offsets of open blocks, and the alerts of the two reference scenarios with the
 * built-in rules.
 *
 * THREAD MODEL: single-threaded; the shard is never started, so the release callback
 * runs on the test's thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "corr.h"
#include "correlate.h"
#include "ingest.h"
#include "rules.h"
#include "sim.h"
#include "vg.h"
#include "vgtest.h"

/* ---- routing ---------------------------------------------------------------------- */

/* 100,000 machine ids as the simulator names them spread over 2, 4 and 8 shards within
 * 3 % of the mean (the binomial standard deviation is under 1 % here), and the same id
 * always lands on the same shard. */
static void test_route_balance(void **state)
{
    enum { N = 100000, TENANTS = 10 };
    static const uint32_t nshards[] = {2, 4, 8};
    char id[48], tenant[24];

    (void)state;
    for (size_t k = 0; k < VG_ARRAY_SIZE(nshards); k++) {
        uint64_t count[8] = {0};
        double mean = (double)N / nshards[k];

        for (uint32_t i = 0; i < N; i++) {
            uint32_t t = i % TENANTS + 1, num = i / TENANTS + 1;
            uint64_t key;

            snprintf(tenant, sizeof(tenant), "tenant-%u", t);
            snprintf(id, sizeof(id), "%s-tenant-%u-%06u", i % 10 < 3 ? "lnx" : "WIN", t, num);
            key = vg_machine_key(tenant, id);
            assert_int_equal(key, vg_machine_key(tenant, id));
            count[key % nshards[k]]++;
        }
        for (uint32_t s = 0; s < nshards[k]; s++) {
            double dev = ((double)count[s] - mean) / mean;

            if (dev > 0.03 || dev < -0.03)
                print_error("%u shards: shard %u has %llu (mean %.0f)\n", nshards[k], s,
                            (unsigned long long)count[s], mean);
            assert_true(dev <= 0.03 && dev >= -0.03);
        }
    }
}

/* ---- feeding a shard -------------------------------------------------------------- */

/* One input item: it owns its arena, which holds the message bytes and the decoded batch
 * (raw event slices point into the bytes). */
struct item {
    struct cor_in in; /* first: the shard hands back this pointer */
    vg_arena *a;
};

struct ctx {
    uint64_t released; /* release callbacks, items and barriers */
    uint64_t rejected;
    char last_reject[128];
};

static void release_cb(void *c, struct cor_in *in)
{
    struct ctx *x = c;

    x->released++;
    if (in->is_barrier) {
        vg_free(in); /* the barrier reference moved to the unit */
        return;
    }
    vg_arena_destroy(((struct item *)in)->a);
    vg_free(in);
}

static void reject_cb(void *c, struct cor_in *in, const char *reason)
{
    struct ctx *x = c;

    (void)in;
    x->rejected++;
    snprintf(x->last_reject, sizeof(x->last_reject), "%s", reason);
}

/* Decodes a copy of buf and runs it through the shard. */
static void feed(cor_shard *s, const void *buf, size_t len, int32_t partition, int64_t offset)
{
    struct item *it = vg_calloc(1, sizeof(*it));
    struct ing_limits l;
    struct ing_batch b;
    char reason[256];
    void *copy;

    assert_non_null(it);
    it->a = vg_arena_new(len * 3 + 4096);
    assert_non_null(it->a);
    copy = vg_arena_alloc(it->a, len);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    ing_limits_default(&l);
    /* Simulated times are in 2026: judge them against a clock just after. */
    if (ing_decode(copy, len, &l, INT64_C(1800000000) * VG_US_PER_SEC, it->a, &b, reason,
                   sizeof(reason)) != 0)
        fail_msg("decode: %s", reason);
    it->in.batch = b.batch;
    it->in.raw = b.raw;
    it->in.raw_len = b.raw_len;
    it->in.mkey = vg_machine_key(b.batch->tenant_id, b.batch->machine_id);
    it->in.partition = partition;
    it->in.offset = offset;
    it->in.opaque = it;
    cor_shard_process(s, &it->in);
}

/* Sends a barrier through the shard and returns its unit. */
static struct cor_unit *barrier(cor_shard *s, uint64_t id, bool seal_all)
{
    struct cor_in *in = vg_calloc(1, sizeof(*in));
    struct cor_unit *u;

    assert_non_null(in);
    in->is_barrier = true;
    in->barrier = cor_barrier_new(id, seal_all, NULL, 0, 1);
    assert_non_null(in->barrier);
    cor_shard_process(s, in);
    u = cor_shard_pop_unit(s);
    assert_non_null(u);
    assert_int_equal(u->barrier->id, id);
    assert_null(cor_shard_pop_unit(s));
    return u;
}

/* The correlation rules of rules/, loaded with the ruleset by rules_setup. */
static cor_corrset *g_corr;

static cor_shard *shard_new(struct ctx *x, cor_ruleset *rules, int64_t max_age_us,
                            uint32_t block_max_events)
{
    struct cor_shard_cfg cfg = {
        .index = 0,
        .nshards = 1,
        .rules = rules,
        .corr = rules != NULL ? g_corr : NULL,
        .block_max_age_us = max_age_us,
        .block_max_events = block_max_events,
        .release = release_cb,
        .reject = reject_cb,
        .ctx = x,
    };
    cor_shard *s = NULL;

    assert_int_equal(cor_shard_new(&cfg, &s), 0);
    return s;
}

/* ---- what each machine should hold ------------------------------------------------ */

struct expect {
    uint64_t *seq;  /* in acceptance order */
    uint64_t *hash; /* of each event's serialized bytes */
    size_t n, cap, pos;
    char machine[64];
};

static void expect_add(struct vg_u64map *m, uint64_t mkey, const char *machine, uint64_t seq,
                       const void *raw, size_t len)
{
    struct expect *e = vg_u64map_get(m, mkey);

    if (e == NULL) {
        e = vg_calloc(1, sizeof(*e));
        assert_non_null(e);
        snprintf(e->machine, sizeof(e->machine), "%s", machine);
        assert_int_equal(vg_u64map_put(m, mkey, e), 0);
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 64;
        e->seq = vg_realloc(e->seq, e->cap * sizeof(*e->seq));
        e->hash = vg_realloc(e->hash, e->cap * sizeof(*e->hash));
        assert_non_null(e->seq);
        assert_non_null(e->hash);
    }
    e->seq[e->n] = seq;
    e->hash[e->n] = vg_hash64(raw, len, 7);
    e->n++;
}

static void expect_free(struct vg_u64map *m)
{
    size_t pos = 0;
    uint64_t k;
    void *v;

    while (vg_u64map_next(m, &pos, &k, &v)) {
        struct expect *e = v;

        vg_free(e->seq);
        vg_free(e->hash);
        vg_free(e);
    }
    vg_u64map_free(m);
}

/* Checks a unit's blocks against the expectation, in order, and returns its events. */
static uint64_t check_blocks(const struct cor_unit *u, struct vg_u64map *m)
{
    uint64_t events = 0;

    for (size_t i = 0; i < u->nblocks; i++) {
        const struct cor_block *blk = &u->blocks[i];
        struct expect *e = vg_u64map_get(m, blk->mkey);
        Vigil__TelemetryBatch *tb = vigil__telemetry_batch__unpack(NULL, blk->len, blk->data);

        assert_non_null(e);
        assert_non_null(tb);
        assert_string_equal(tb->machine_id, e->machine);
        assert_int_equal(vg_machine_key(tb->tenant_id, tb->machine_id), blk->mkey);
        assert_int_equal(tb->n_events, blk->nevents);
        assert_true(tb->n_events > 0);
        assert_int_equal(tb->first_seq, blk->first_seq);
        assert_int_equal(tb->events[0]->seq, blk->first_seq);
        assert_int_equal(tb->events[0]->ts_us, blk->first_ts_us);
        for (size_t j = 0; j < tb->n_events; j++) {
            size_t len = vigil__event__get_packed_size(tb->events[j]);
            uint8_t *buf = vg_malloc(len ? len : 1);

            assert_non_null(buf);
            vigil__event__pack(tb->events[j], buf);
            assert_true(e->pos < e->n);
            assert_int_equal(tb->events[j]->seq, e->seq[e->pos]);
            assert_int_equal(vg_hash64(buf, len, 7), e->hash[e->pos]);
            assert_int_equal(sto_day(tb->events[j]->ts_us), sto_day(blk->first_ts_us));
            e->pos++;
            vg_free(buf);
        }
        events += tb->n_events;
        vigil__telemetry_batch__free_unpacked(tb, NULL);
    }
    return events;
}

static void sim_opts(struct bench_sim_opts *o, uint32_t machines, int64_t duration_s)
{
    bench_sim_opts_default(o);
    o->machines = machines;
    o->tenants = 2;
    o->duration_us = duration_s * VG_US_PER_SEC;
}

/* ---- duplicates, barriers and blocks ---------------------------------------------- */

/* Every batch fed twice: the second copy is all duplicates. A seal-all barrier then hands
 * over blocks that hold, machine by machine and in order, exactly the accepted events. */
static void test_shard_duplicates_and_blocks(void **state)
{
    struct bench_sim_opts o;
    struct ctx x = {0};
    struct cor_shard_stats st;
    struct vg_u64map exp;
    bench_sim *sim;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    cor_shard *s;
    struct cor_unit *u;
    uint64_t events = 0, batches = 0, in_blocks = 0, unit_events = 0, off = 0;
    size_t pos = 0;
    uint64_t k;
    void *v;
    int rc;

    (void)state;
    assert_int_equal(vg_u64map_init(&exp, 64), 0);
    sim_opts(&o, 40, 12);
    o.scenarios = false;
    assert_int_equal(bench_sim_new(&o, &sim, NULL, 0), 0);
    /* Blocks of at most 16 events: machines seal several, so order across blocks counts. */
    s = shard_new(&x, NULL, 3600 * VG_US_PER_SEC, 16);
    while ((rc = bench_sim_next(sim, a, &b)) == 1) {
        uint8_t *buf;
        size_t len;
        uint64_t mkey = vg_machine_key(b->tenant_id, b->machine_id);

        assert_int_equal(bench_sim_pack(b, a, &buf, &len), 0);
        for (size_t i = 0; i < b->n_events; i++) {
            size_t elen = vigil__event__get_packed_size(b->events[i]);
            uint8_t *ebuf = vg_arena_alloc(a, elen + 1);

            assert_non_null(ebuf);
            vigil__event__pack(b->events[i], ebuf);
            expect_add(&exp, mkey, b->machine_id, b->events[i]->seq, ebuf, elen);
        }
        events += b->n_events;
        batches++;
        feed(s, buf, len, 0, (int64_t)off++);
        feed(s, buf, len, 0, (int64_t)off++); /* re-delivered */
        /* A barrier now and then: blocks then span several units. */
        if (batches % 97 == 0) {
            u = barrier(s, batches, false);
            in_blocks += check_blocks(u, &exp);
            unit_events += u->events;
            cor_unit_free(u);
        }
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    assert_true(events > 1000);
    cor_shard_get_stats(s, &st);
    assert_int_equal(st.events, events);
    assert_int_equal(st.duplicates, events);
    assert_int_equal(st.batches, 2 * batches);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(x.rejected, 0);
    assert_int_equal(x.released, 2 * batches + batches / 97);
    u = barrier(s, 1000000, true);
    in_blocks += check_blocks(u, &exp);
    unit_events += u->events;
    assert_int_equal(u->npending, 0); /* everything sealed */
    cor_unit_free(u);
    assert_int_equal(in_blocks, events);
    assert_int_equal(unit_events, events);
    while (vg_u64map_next(&exp, &pos, &k, &v)) {
        struct expect *e = v;

        if (e->pos != e->n)
            print_error("%s: %zu of %zu events in blocks\n", e->machine, e->pos, e->n);
        assert_int_equal(e->pos, e->n);
    }
    cor_shard_get_stats(s, &st);
    assert_int_equal(st.machines, exp.count);
    /* The simulator's machines run processes: the table holds them, and its bytes are
     * reported with them (at least a node's worth each). */
    assert_true(st.processes > 0);
    assert_true(st.proctab_bytes >= st.processes * 64);
    cor_shard_destroy(s);
    bench_sim_free(sim);
    expect_free(&exp);
    vg_arena_destroy(a);
}

/* ---- pending offsets -------------------------------------------------------------- */

/* A packed batch of n process-exit events of one machine, seq from seq0; malloc'd. */
static uint8_t *mini_batch(const char *machine, uint64_t seq0, size_t n, size_t *len)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev[8], *evp[8];
    Vigil__ProcessRef actor = VIGIL__PROCESS_REF__INIT;
    Vigil__ProcessExited ex = VIGIL__PROCESS_EXITED__INIT;
    uint8_t *buf;

    assert_true(n <= 8);
    actor.pid = 4242;
    actor.creation_time_us = INT64_C(1767600000) * VG_US_PER_SEC;
    actor.image = "/usr/bin/sleep";
    b.tenant_id = "tenant-1";
    b.machine_id = (char *)machine;
    b.first_seq = seq0;
    for (size_t i = 0; i < n; i++) {
        vigil__event__init(&ev[i]);
        ev[i].seq = seq0 + i;
        ev[i].ts_us = actor.creation_time_us + (int64_t)(seq0 + i) * 1000;
        ev[i].actor = &actor;
        ev[i].kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
        ev[i].process_exited = &ex;
        evp[i] = &ev[i];
    }
    b.n_events = n;
    b.events = evp;
    *len = vigil__telemetry_batch__get_packed_size(&b);
    buf = malloc(*len);
    assert_non_null(buf);
    vigil__telemetry_batch__pack(&b, buf);
    return buf;
}

static void feed_mini(cor_shard *s, const char *machine, uint64_t seq0, size_t n, int32_t part,
                      int64_t offset)
{
    size_t len;
    uint8_t *buf = mini_batch(machine, seq0, n, &len);

    feed(s, buf, len, part, offset);
    free(buf);
}

static int64_t pending_of(const struct cor_unit *u, int32_t partition)
{
    for (size_t i = 0; i < u->npending; i++)
        if (u->pending[i].partition == partition)
            return u->pending[i].offset;
    return -1;
}

/* Without seal-all and with a long block age, a barrier reports per partition the lowest
 * offset whose events still sit in an open block. */
static void test_shard_pending_offsets(void **state)
{
    struct ctx x = {0};
    cor_shard *s;
    struct cor_unit *u;

    (void)state;
    s = shard_new(&x, NULL, 3600 * VG_US_PER_SEC, 2);
    /* Nothing fed: nothing pending, no blocks. */
    u = barrier(s, 1, false);
    assert_int_equal(u->npending, 0);
    assert_int_equal(u->nblocks, 0);
    cor_unit_free(u);

    feed_mini(s, "A", 1, 1, 0, 10); /* A's block opens at offset 10 */
    feed_mini(s, "B", 1, 1, 0, 11); /* B's at 11 */
    feed_mini(s, "C", 1, 1, 3, 5);  /* C's at 5 on partition 3 */
    u = barrier(s, 2, false);
    assert_int_equal(u->nblocks, 0);
    assert_int_equal(u->npending, 2);
    assert_int_equal(pending_of(u, 0), 10);
    assert_int_equal(pending_of(u, 3), 5);
    assert_int_equal(u->events, 3);
    cor_unit_free(u);

    /* A fills its block (2 events) and its third event seals it: A's open block now
     * starts at offset 12, so B's 11 is the lowest open offset of partition 0. */
    feed_mini(s, "A", 2, 2, 0, 12);
    u = barrier(s, 3, false);
    assert_int_equal(u->nblocks, 1);
    assert_int_equal(u->blocks[0].nevents, 2);
    assert_int_equal(u->blocks[0].first_seq, 1);
    assert_int_equal(pending_of(u, 0), 11);
    assert_int_equal(pending_of(u, 3), 5);
    cor_unit_free(u);

    /* A re-delivery of offset 10 adds nothing and changes no pending offset. */
    feed_mini(s, "A", 1, 1, 0, 10);
    u = barrier(s, 4, false);
    assert_int_equal(u->nblocks, 0);
    assert_int_equal(u->events, 0);
    assert_int_equal(pending_of(u, 0), 11);
    cor_unit_free(u);

    /* Seal-all: every open block leaves, nothing stays pending. */
    u = barrier(s, 5, true);
    assert_int_equal(u->nblocks, 3); /* A (seq 3), B, C */
    assert_int_equal(u->npending, 0);
    cor_unit_free(u);
    u = barrier(s, 6, false);
    assert_int_equal(u->npending, 0);
    assert_int_equal(u->nblocks, 0);
    cor_unit_free(u);
    cor_shard_destroy(s);
    assert_int_equal(x.released, 5 + 6);
}

/* ---- alerts of the reference scenarios --------------------------------------------- */

struct alerts_seen {
    size_t nnew;
    uint8_t *last; /* packed newest state of the (first) new alert */
    size_t last_len;
    char id[40];
    size_t other_updates; /* updates of an alert that was never new here */
};

static void collect_alerts(const struct cor_unit *u, struct alerts_seen *as)
{
    for (size_t i = 0; i < u->nalerts; i++) {
        const Vigil__Alert *al = u->alerts[i].alert;

        if (u->alerts[i].is_new) {
            as->nnew++;
            print_message("  new alert: %s (%s) on %s\n", al->title,
                          cor_severity_name(al->severity), al->machine_id);
            if (as->nnew == 1)
                snprintf(as->id, sizeof(as->id), "%s", al->id);
        } else if (strcmp(al->id, as->id) != 0) {
            as->other_updates++;
            continue;
        }
        if (strcmp(al->id, as->id) == 0) {
            free(as->last);
            as->last_len = vigil__alert__get_packed_size(al);
            as->last = malloc(as->last_len);
            assert_non_null(as->last);
            vigil__alert__pack(al, as->last);
        }
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool contains_ci(const char *s, const char *needle)
{
    size_t m = strlen(needle);

    for (; *s; s++)
        if (strncasecmp(s, needle, m) == 0)
            return true;
    return false;
}

/* The Linux rule's selection, written out again here as the test's own oracle. */
static bool lnx_rule_matches(const Vigil__ProcessRef *p)
{
    static const char *const imgs[] = {"/find", "/grep", "/ls", "/cat", "/locate", "/egrep"};
    static const char *const cmds[] = {"id_rsa",      ".pem",        "PRIVATE KEY",
                                       "/etc/shadow", "credentials", ".kdbx",
                                       ".aws",        ".ssh",        "passwd"};
    bool img = false, cmd = false;

    for (size_t i = 0; i < VG_ARRAY_SIZE(imgs); i++)
        img = img || ends_with(p->image, imgs[i]);
    for (size_t i = 0; i < VG_ARRAY_SIZE(cmds); i++)
        cmd = cmd || contains_ci(p->command_line, cmds[i]);
    return img && cmd;
}

struct scen_run {
    struct alerts_seen as;
    const struct bench_sim_truth *truth; /* valid until the sim is freed */
    uint32_t children;                   /* processes the Linux script started */
    uint32_t matching;                   /* of them, those the rule selects */
};

/* Runs a simulation with one kind of scenario through a shard with the built-in rules. */
static void run_scenario(uint32_t mask, struct scen_run *r, bench_sim **simp, cor_ruleset *rules)
{
    struct bench_sim_opts o;
    struct ctx x = {0};
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    cor_shard *s;
    struct cor_unit *u;
    uint64_t n = 0, off = 0;
    int rc;

    sim_opts(&o, 30, 16);
    o.tenants = 1;
    o.scenario_mask = mask;
    assert_int_equal(bench_sim_new(&o, simp, NULL, 0), 0);
    assert_int_equal(bench_sim_truth_count(*simp), 1);
    s = shard_new(&x, rules, 3600 * VG_US_PER_SEC, 0);
    while ((rc = bench_sim_next(*simp, a, &b)) == 1) {
        uint8_t *buf;
        size_t len;

        assert_int_equal(bench_sim_pack(b, a, &buf, &len), 0);
        for (size_t i = 0; i < b->n_events; i++) {
            const Vigil__Event *ev = b->events[i];

            if (ev->kind_case == VIGIL__EVENT__KIND_PROCESS_CREATED && ev->actor != NULL &&
                strcmp(ev->actor->command_line, BENCH_SIM_LNX_REF_CMDLINE) == 0) {
                r->children++;
                r->matching += lnx_rule_matches(ev->process_created->process);
            }
        }
        feed(s, buf, len, 0, (int64_t)off++);
        if (++n % 50 == 0) {
            u = barrier(s, n, false);
            collect_alerts(u, &r->as);
            cor_unit_free(u);
        }
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    u = barrier(s, ++n, true);
    collect_alerts(u, &r->as);
    cor_unit_free(u);
    assert_int_equal(x.rejected, 0);
    r->truth = bench_sim_truth_get(*simp, 0);
    assert_true(r->truth->emitted);
    cor_shard_destroy(s);
    vg_arena_destroy(a);
}

static int rules_setup(void **state)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    cor_ruleset *rs = NULL;
    char err[256];

    if (cor_ruleset_load(dirs, 1, &rs, &sum, err, sizeof(err)) != 0) {
        print_error("rules: %s\n", err);
        return -1;
    }
    if (cor_corrset_load(dirs, 1, &g_corr, NULL, err, sizeof(err)) != 0) {
        print_error("correlation rules: %s\n", err);
        cor_ruleset_unref(rs);
        return -1;
    }
    *state = rs;
    return 0;
}

static int rules_teardown(void **state)
{
    cor_ruleset_unref(*state);
    cor_corrset_unref(g_corr);
    g_corr = NULL;
    return 0;
}

static void test_alert_windows_reference(void **state)
{
    struct scen_run r = {0};
    bench_sim *sim;
    Vigil__Alert *al;
    const Vigil__ProcessNode *trig = NULL;
    int ntrig = 0;

    run_scenario(BENCH_SIM_RUN_WIN_REF, &r, &sim, *state);
    assert_int_equal(r.as.nnew, 1);
    assert_int_equal(r.as.other_updates, 0);
    al = vigil__alert__unpack(NULL, r.as.last_len, r.as.last);
    assert_non_null(al);
    assert_string_equal(al->title, "Suspicious PowerShell command line");
    assert_string_equal(al->title, BENCH_SIM_WIN_REF_TITLE);
    assert_int_equal(al->severity, VIGIL__SEVERITY__SEVERITY_INFORMATIONAL);
    assert_int_equal(al->category, VIGIL__CATEGORY__CATEGORY_EXECUTION);
    assert_string_equal(al->machine_id, r.truth->machine);
    assert_string_equal(al->tenant_id, r.truth->tenant);
    assert_int_equal(al->event_count, 1);
    assert_int_equal(al->first_event_us, r.truth->ts_us);
    assert_int_equal(strlen(al->id), 32);
    /* The tree: the trigger is the reference powershell.exe, its parent cmd.exe. */
    for (size_t i = 0; i < al->n_process_tree; i++) {
        if (al->process_tree[i]->trigger) {
            trig = al->process_tree[i];
            ntrig++;
        }
    }
    assert_int_equal(ntrig, 1);
    assert_string_equal(trig->image, BENCH_SIM_WIN_REF_IMAGE);
    assert_string_equal(trig->command_line, BENCH_SIM_WIN_REF_CMDLINE);
    assert_true(trig->parent_index >= 0 && (size_t)trig->parent_index < al->n_process_tree);
    assert_string_equal(al->process_tree[trig->parent_index]->image, BENCH_SIM_WIN_REF_PARENT);
    vigil__alert__free_unpacked(al, NULL);
    free(r.as.last);
    bench_sim_free(sim);
}

/*
 * The Linux reference run is one correlation alert (rules/vigil_linux_sensitive_enum_corr.yml:
 * value_count of the sensitive-file commands grouped by process tree), raised when the
 * seal-all barrier closes the windows, folding every matching child; its base rule raises
 * nothing of its own (generate: false).
 */
static void test_alert_linux_reference(void **state)
{
    struct scen_run r = {0};
    bench_sim *sim;
    Vigil__Alert *al;

    run_scenario(BENCH_SIM_RUN_LNX_REF, &r, &sim, *state);
    print_message("  linux script: %u children, %u matching the rule\n", r.children, r.matching);
    assert_true(r.children > r.matching && r.matching > 1);
    assert_int_equal(r.as.nnew, 1);
    assert_int_equal(r.as.other_updates, 0);
    al = vigil__alert__unpack(NULL, r.as.last_len, r.as.last);
    assert_non_null(al);
    assert_string_equal(al->title, "Enumeration of files with sensitive data");
    assert_string_equal(al->title, BENCH_SIM_LNX_REF_TITLE);
    assert_int_equal(al->severity, VIGIL__SEVERITY__SEVERITY_LOW);
    assert_int_equal(al->category, VIGIL__CATEGORY__CATEGORY_DISCOVERY);
    assert_string_equal(al->machine_id, r.truth->machine);
    /* One alert for the run of the script, folding every matching child. */
    assert_int_equal(al->event_count, r.matching);
    assert_int_equal(al->n_evidence, r.matching);
    assert_int_equal(al->first_event_us, r.truth->ts_us);
    vigil__alert__free_unpacked(al, NULL);
    free(r.as.last);
    bench_sim_free(sim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_balance),
        cmocka_unit_test(test_shard_duplicates_and_blocks),
        cmocka_unit_test(test_shard_pending_offsets),
        cmocka_unit_test_setup_teardown(test_alert_windows_reference, rules_setup, rules_teardown),
        cmocka_unit_test_setup_teardown(test_alert_linux_reference, rules_setup, rules_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
