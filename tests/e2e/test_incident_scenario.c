/*
 * test_incident_scenario.c - the simulator's attack chain (Office macro -> encoded
 * PowerShell download -> LSASS dump -> PsExec-like service -> mass renames, over three
 * Windows machines of a tenant) through the built-in rules of rules/, an in-process shard
 * and the incident stage, as src/replay.c runs them.
 *
 * What it checks: every step of the chain raises its alert, and nothing else does (also
 * over a minute of noise of 200 machines); each tenant's chain is exactly one incident
 * holding its three machines, linked by the domain account stolen on the first machine
 * and used on the other two, with the severity the incident rule gives; the incidents of
 * one tenant never hold another tenant's alerts; the alerts and incidents do not depend
 * on how the batches of different machines interleave; two processes that reuse a pid on
 * one machine give two alerts with separate process trees.
 *
 * THREAD SAFETY: single-threaded; the shard runs on the test thread (cor_shard_process).
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
#include "incident.h"
#include "ingest.h"
#include "rules.h"
#include "sim.h"
#include "vg.h"
#include "vgtest.h"

/* The built-in chain rules (rules/vigil_chain_*.yml). */
#define RID_OFFICE "7c2f4e91-3a6d-4b58-8e17-c94a2d6b0f31" /* Office -> shell, medium */
#define RID_ENC    "2e8b5d07-9f4c-4a1e-b6d3-58a0c7e19f42" /* encoded PowerShell, medium */
#define RID_LSASS  "4a91c3e8-6b2d-4f70-9e5a-1d37b8c20e64" /* LSASS dump, high */
#define RID_PSEXEC "9d5e2b74-0c18-4e36-a8f1-6b4c93d07a25" /* remote service, high */
#define RID_RANSOM "1f6a8c39-d2e7-4b05-93c4-7e0b5a16d8f2" /* mass renames (correlation) */
#define RID_RENAME "83b0e5d1-7a4c-4f92-b6e8-25c9d0f17a3e" /* its base rule, no alerts */

static const char *const chain_rule_ids[] = {RID_OFFICE, RID_ENC,    RID_LSASS,
                                             RID_PSEXEC, RID_RANSOM, RID_RENAME};

#define SHUFFLE_WINDOW_US (5 * VG_US_PER_SEC) /* far inside the 5-minute lateness bound */

/* ---- fixtures ------------------------------------------------------------------------ */

struct fx {
    cor_ruleset *rules;
    cor_corrset *corr;
};

static int group_setup(void **state)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    struct cor_corr_load_summary csum;
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL)
        return -1;
    if (cor_ruleset_load(dirs, 1, &f->rules, &sum, err, sizeof(err)) != 0 ||
        cor_corrset_load(dirs, 1, &f->corr, &csum, err, sizeof(err)) != 0) {
        print_error("rules: %s\n", err);
        return -1;
    }
    /* A built-in rule that does not load is a defect, not a skip. */
    if (sum.skipped != 0 || csum.skipped != 0) {
        print_error("built-in rules skipped: %u single, %u correlations\n", sum.skipped,
                    csum.skipped);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;

    cor_ruleset_unref(f->rules);
    cor_corrset_unref(f->corr);
    free(f);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------- */

/* One serialized batch, as a sensor sends it. */
struct rec {
    uint8_t *buf;
    size_t len;
    int64_t ts_us; /* its first event's time */
    uint64_t mkey;
};

struct recs {
    struct rec *r;
    size_t n, cap;
};

static void recs_add(struct recs *rs, const Vigil__TelemetryBatch *b)
{
    struct rec *r;

    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 256;
        rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
        assert_non_null(rs->r);
    }
    r = &rs->r[rs->n++];
    r->len = vigil__telemetry_batch__get_packed_size(b);
    r->buf = malloc(r->len ? r->len : 1);
    assert_non_null(r->buf);
    assert_int_equal(vigil__telemetry_batch__pack(b, r->buf), r->len);
    r->ts_us = b->n_events > 0 ? b->events[0]->ts_us : 0;
    r->mkey = vg_machine_key(b->tenant_id, b->machine_id);
}

static void recs_free(struct recs *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->r[i].buf);
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

/* Runs the simulator to its end; returns it (for its ground truth) with every batch. */
static bench_sim *simulate(const struct bench_sim_opts *o, struct recs *rs)
{
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    bench_sim *sim = NULL;
    char err[256];
    int rc;

    assert_non_null(a);
    if (bench_sim_new(o, &sim, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    while ((rc = bench_sim_next(sim, a, &b)) == 1) {
        recs_add(rs, b);
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    vg_arena_destroy(a);
    return sim;
}

/* ---- one run: shard, then incidents ------------------------------------------------- */

struct item {
    struct cor_in in; /* first: the shard hands back this pointer */
    vg_arena *a;
};

struct ctx {
    uint64_t rejected;
};

static void release_cb(void *c, struct cor_in *in)
{
    (void)c;
    if (!in->is_barrier)
        vg_arena_destroy(((struct item *)in)->a);
    vg_free(in);
}

static void reject_cb(void *c, struct cor_in *in, const char *reason)
{
    (void)in;
    ((struct ctx *)c)->rejected++;
    print_error("batch rejected: %s\n", reason);
}

/* Decodes a copy of the record, as ingest does, and runs it through the shard. */
static void feed(cor_shard *s, const struct rec *r)
{
    struct item *it = vg_calloc(1, sizeof(*it));
    struct ing_limits l;
    struct ing_batch b;
    char reason[256];
    void *copy;

    assert_non_null(it);
    it->a = vg_arena_new(r->len * 3 + 4096);
    assert_non_null(it->a);
    copy = vg_arena_alloc(it->a, r->len);
    assert_non_null(copy);
    memcpy(copy, r->buf, r->len);
    ing_limits_default(&l);
    /* Simulated times are in 2026: judge them against a clock just after. */
    if (ing_decode(copy, r->len, &l, INT64_C(1800000000) * VG_US_PER_SEC, it->a, &b, reason,
                   sizeof(reason)) != 0)
        fail_msg("decode: %s", reason);
    it->in.batch = b.batch;
    it->in.raw = b.raw;
    it->in.raw_len = b.raw_len;
    it->in.mkey = vg_machine_key(b.batch->tenant_id, b.batch->machine_id);
    it->in.partition = -1;
    it->in.opaque = it;
    cor_shard_process(s, &it->in);
}

/* What a run produced: alerts in their final state and the open incidents, both sorted by
 * id and owned here (unpacked with the default allocator). */
struct result {
    Vigil__Alert **al;
    size_t nal;
    Vigil__Incident **inc;
    size_t ninc;
    Vigil__Sightings **sg; /* what the machines' telemetry showed (copies) */
    size_t nsg;
    uint64_t hits[VG_ARRAY_SIZE(chain_rule_ids)]; /* base-rule matches, chain rules */
};

static int alert_cmp(const void *x, const void *y)
{
    return strcmp((*(Vigil__Alert *const *)x)->id, (*(Vigil__Alert *const *)y)->id);
}

static int inc_cmp(const void *x, const void *y)
{
    return strcmp((*(Vigil__Incident *const *)x)->id, (*(Vigil__Incident *const *)y)->id);
}

static Vigil__Alert *alert_copy(const Vigil__Alert *a)
{
    size_t len = vigil__alert__get_packed_size(a);
    uint8_t *buf = malloc(len ? len : 1);
    Vigil__Alert *c;

    assert_non_null(buf);
    vigil__alert__pack(a, buf);
    c = vigil__alert__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(c);
    return c;
}

/* Keeps the newest state of each alert id (a later unit carries the later state). */
static void result_take_alert(struct result *res, const Vigil__Alert *a)
{
    for (size_t i = 0; i < res->nal; i++) {
        if (strcmp(res->al[i]->id, a->id) == 0) {
            vigil__alert__free_unpacked(res->al[i], NULL);
            res->al[i] = alert_copy(a);
            return;
        }
    }
    res->al = realloc(res->al, (res->nal + 1) * sizeof(*res->al));
    assert_non_null(res->al);
    res->al[res->nal++] = alert_copy(a);
}

/* The incident stage over the run's alerts, as replay runs it, except that each tenant's
 * machine count is set to what it onboarded (o: the simulation; NULL: leave it to the
 * machines seen). Otherwise only the machines that raised alerts count, and an entity
 * shared by the three machines of a quiet tenant's attack would be "common" (3 of 3 >
 * 20 %) and would not link. */
static void result_incidents(struct result *res, const struct bench_sim_opts *o)
{
    cor_incidents *ci = cor_incidents_new(NULL);
    vg_arena *a = vg_arena_new(1 << 16);
    struct cor_incident_change ch;
    char id[COR_INCIDENT_ID_MAX];

    assert_non_null(ci);
    assert_non_null(a);
    for (uint32_t t = 1; o != NULL && t <= o->tenants; t++) {
        char tenant[32];

        snprintf(tenant, sizeof(tenant), "tenant-%u", t);
        assert_int_equal(cor_incidents_tenant_machines(ci, tenant, o->machines / o->tenants), 0);
    }
    /* Prevalence from every machine's telemetry first, as the live stage gets it. */
    for (size_t i = 0; i < res->nsg; i++)
        assert_int_equal(cor_incidents_observe_all(ci, res->sg[i]), 0);
    for (size_t i = 0; i < res->nal; i++)
        assert_int_equal(cor_incidents_add(ci, res->al[i], id, NULL), 0);
    while (cor_incidents_next_change(ci, &ch)) {
        Vigil__Incident *inc;
        size_t len;
        uint8_t *buf;
        bool dup = false;

        /* Changes are coalesced per id, but an id merged away has no incident any more. */
        if (ch.kind != COR_INCIDENT_UPDATED || cor_incidents_get(ci, ch.id, a, &inc) != 0)
            continue;
        for (size_t i = 0; i < res->ninc; i++)
            dup |= strcmp(res->inc[i]->id, inc->id) == 0;
        if (!dup) {
            len = vigil__incident__get_packed_size(inc);
            buf = malloc(len ? len : 1);
            assert_non_null(buf);
            vigil__incident__pack(inc, buf);
            res->inc = realloc(res->inc, (res->ninc + 1) * sizeof(*res->inc));
            assert_non_null(res->inc);
            res->inc[res->ninc] = vigil__incident__unpack(NULL, len, buf);
            assert_non_null(res->inc[res->ninc]);
            res->ninc++;
            free(buf);
        }
        vg_arena_reset(a);
    }
    if (res->ninc > 0)
        qsort(res->inc, res->ninc, sizeof(*res->inc), inc_cmp);
    vg_arena_destroy(a);
    cor_incidents_free(ci);
}

/* Feeds the records in the given order (order[i] indexes rs; NULL: as stored), seals
 * everything (which also flushes the correlations) and builds the incidents. */
static void run(const struct fx *f, const struct recs *rs, const size_t *order,
                const struct bench_sim_opts *o, struct result *res)
{
    struct cor_shard_cfg cfg = {
        .nshards = 1,
        .rules = f->rules,
        .corr = f->corr,
        .sightings = true, /* prevalence as the live stage learns it */
        .release = release_cb,
        .reject = reject_cb,
    };
    struct ctx x = {0};
    struct cor_in *in = vg_calloc(1, sizeof(*in));
    struct cor_unit *u;
    cor_shard *s = NULL;

    memset(res, 0, sizeof(*res));
    cfg.ctx = &x;
    assert_non_null(in);
    assert_int_equal(cor_shard_new(&cfg, &s), 0);
    for (size_t i = 0; i < rs->n; i++)
        feed(s, &rs->r[order != NULL ? order[i] : i]);
    in->is_barrier = true;
    in->barrier = cor_barrier_new(1, true, NULL, 0, 1);
    assert_non_null(in->barrier);
    cor_shard_process(s, in);
    while ((u = cor_shard_pop_unit(s)) != NULL) {
        for (size_t i = 0; i < u->nalerts; i++)
            result_take_alert(res, u->alerts[i].alert);
        for (size_t i = 0; i < u->nsightings; i++) {
            size_t len = vigil__sightings__get_packed_size(u->sightings[i]);
            uint8_t *buf = malloc(len ? len : 1);

            assert_non_null(buf);
            vigil__sightings__pack(u->sightings[i], buf);
            res->sg = realloc(res->sg, (res->nsg + 1) * sizeof(*res->sg));
            assert_non_null(res->sg);
            res->sg[res->nsg] = vigil__sightings__unpack(NULL, len, buf);
            assert_non_null(res->sg[res->nsg]);
            res->nsg++;
            free(buf);
        }
        cor_unit_free(u);
    }
    for (size_t k = 0; k < VG_ARRAY_SIZE(chain_rule_ids); k++) {
        for (uint32_t i = 0; i < cor_ruleset_count(f->rules); i++) {
            uint64_t alerts;

            if (strcmp(cor_ruleset_rule(f->rules, i)->id, chain_rule_ids[k]) == 0)
                cor_shard_rule_counts(s, i, &res->hits[k], &alerts);
        }
    }
    cor_shard_destroy(s);
    assert_int_equal(x.rejected, 0);
    if (res->nal > 0)
        qsort(res->al, res->nal, sizeof(*res->al), alert_cmp);
    result_incidents(res, o);
}

static void result_free(struct result *res)
{
    for (size_t i = 0; i < res->nal; i++)
        vigil__alert__free_unpacked(res->al[i], NULL);
    for (size_t i = 0; i < res->ninc; i++)
        vigil__incident__free_unpacked(res->inc[i], NULL);
    for (size_t i = 0; i < res->nsg; i++)
        vigil__sightings__free_unpacked(res->sg[i], NULL);
    free(res->al);
    free(res->inc);
    free(res->sg);
    memset(res, 0, sizeof(*res));
}

/* ---- lookups ------------------------------------------------------------------------- */

static const Vigil__Alert *find_alert_id(const struct result *res, const char *id)
{
    for (size_t i = 0; i < res->nal; i++)
        if (strcmp(res->al[i]->id, id) == 0)
            return res->al[i];
    return NULL;
}

/* The one alert of a rule on a machine; fails when there is not exactly one. */
static const Vigil__Alert *the_alert(const struct result *res, const char *rule_id,
                                     const char *machine)
{
    const Vigil__Alert *found = NULL;
    int n = 0;

    for (size_t i = 0; i < res->nal; i++) {
        if (strcmp(res->al[i]->rule_id, rule_id) == 0 &&
            strcmp(res->al[i]->machine_id, machine) == 0) {
            found = res->al[i];
            n++;
        }
    }
    if (n != 1)
        fail_msg("rule %s on %s: %d alerts, want 1", rule_id, machine, n);
    return found;
}

static const Vigil__Incident *incident_of(const struct result *res, const char *alert_id)
{
    for (size_t i = 0; i < res->ninc; i++)
        for (size_t k = 0; k < res->inc[i]->n_alert_ids; k++)
            if (strcmp(res->inc[i]->alert_ids[k], alert_id) == 0)
                return res->inc[i];
    return NULL;
}

static bool has_string(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static bool is_chain_rule(const char *rule_id)
{
    for (size_t k = 0; k < VG_ARRAY_SIZE(chain_rule_ids); k++)
        if (strcmp(rule_id, chain_rule_ids[k]) == 0)
            return true;
    return false;
}

/* The chain of one tenant: its three machines, from the simulator's ground truth. */
struct chain {
    const char *tenant;
    const char *a, *b, *c; /* download + dump, lateral movement, ransomware */
};

static void chain_of(bench_sim *sim, const char *tenant, struct chain *ch)
{
    memset(ch, 0, sizeof(*ch));
    ch->tenant = tenant;
    for (size_t i = 0; i < bench_sim_truth_count(sim); i++) {
        const struct bench_sim_truth *t = bench_sim_truth_get(sim, i);

        if (strcmp(t->tenant, tenant) != 0)
            continue;
        assert_true(t->emitted);
        if (t->kind == BENCH_SCEN_CHAIN_DOWNLOAD || t->kind == BENCH_SCEN_CHAIN_CREDDUMP)
            ch->a = t->machine;
        else if (t->kind == BENCH_SCEN_CHAIN_LATERAL)
            ch->b = t->machine;
        else if (t->kind == BENCH_SCEN_CHAIN_RANSOM)
            ch->c = t->machine;
    }
    assert_non_null(ch->a);
    assert_non_null(ch->b);
    assert_non_null(ch->c);
    assert_string_not_equal(ch->a, ch->b);
    assert_string_not_equal(ch->b, ch->c);
    assert_string_not_equal(ch->a, ch->c);
}

/* ---- the chain scenario -------------------------------------------------------------- */

/* Two tenants of 30 machines (70 % Windows), 20 s, the chain in each tenant: noise from
 * 27 other machines of tenant-1 and from tenant-2, which runs the same chain. */
static void chain_opts(struct bench_sim_opts *o)
{
    bench_sim_opts_default(o);
    o->seed = 7;
    o->machines = 60;
    o->tenants = 2;
    o->duration_us = 20 * VG_US_PER_SEC;
    o->scenario_mask = BENCH_SIM_RUN_CHAIN;
}

static void check_step(const Vigil__Alert *al, const char *title, Vigil__Severity sev,
                       Vigil__Category cat, const char *technique)
{
    assert_string_equal(al->title, title);
    assert_int_equal(al->severity, sev);
    assert_int_equal(al->category, cat);
    assert_true(has_string(al->mitre_techniques, al->n_mitre_techniques, technique));
}

/* The trigger node of an alert's process tree. */
static const Vigil__ProcessNode *trigger_of(const Vigil__Alert *al)
{
    const Vigil__ProcessNode *t = NULL;
    int n = 0;

    for (size_t i = 0; i < al->n_process_tree; i++) {
        if (al->process_tree[i]->trigger) {
            t = al->process_tree[i];
            n++;
        }
    }
    assert_int_equal(n, 1);
    return t;
}

static const char *parent_image(const Vigil__Alert *al, const Vigil__ProcessNode *p)
{
    assert_true(p->parent_index >= 0 && (size_t)p->parent_index < al->n_process_tree);
    return al->process_tree[p->parent_index]->image;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* The one alert of a rule on a machine whose trigger's image ends with image. */
static const Vigil__Alert *the_alert_on(const struct result *res, const char *rule_id,
                                        const char *machine, const char *image)
{
    const Vigil__Alert *found = NULL;
    int n = 0;

    for (size_t i = 0; i < res->nal; i++) {
        const Vigil__Alert *al = res->al[i];

        if (strcmp(al->rule_id, rule_id) == 0 && strcmp(al->machine_id, machine) == 0 &&
            ends_with(trigger_of(al)->image, image)) {
            found = al;
            n++;
        }
    }
    if (n != 1)
        fail_msg("rule %s on %s for %s: %d alerts, want 1", rule_id, machine, image, n);
    return found;
}

/* The alert's user entities: exactly one, returned. */
static const char *user_of(const Vigil__Alert *al)
{
    const char *u = NULL;
    int n = 0;

    for (size_t i = 0; i < al->n_entities; i++) {
        if (al->entities[i]->kind == VIGIL__ENTITY_KIND__ENTITY_USER) {
            u = al->entities[i]->value;
            n++;
        }
    }
    assert_int_equal(n, 1);
    return u;
}

/* The alerts of one tenant's chain (check_chain_alerts). */
struct chain_alerts {
    const Vigil__Alert *off, *enc, *dump; /* first machine */
    const Vigil__Alert *lat, *lat_cmd;    /* second: PSEXESVC, and the command it ran */
    const Vigil__Alert *lat_c, *ran;      /* third: the locker service, its renames */
    const char *stolen;                   /* the account stolen on the first machine */
};

#define CHAIN_ALERTS 7

/* Every step's alert, and nothing else, for one tenant's chain. Returns the alert count. */
static size_t check_chain_alerts(const struct result *res, const struct chain *ch,
                                 struct chain_alerts *ca)
{
    struct chain_alerts x;
    size_t n = 0;

    x.off = the_alert(res, RID_OFFICE, ch->a);
    x.enc = the_alert(res, RID_ENC, ch->a);
    x.dump = the_alert(res, RID_LSASS, ch->a);
    x.lat = the_alert_on(res, RID_PSEXEC, ch->b, "\\PSEXESVC.exe");
    x.lat_cmd = the_alert_on(res, RID_PSEXEC, ch->b, "\\whoami.exe");
    x.lat_c = the_alert(res, RID_PSEXEC, ch->c);
    x.ran = the_alert(res, RID_RANSOM, ch->c);
    check_step(x.off, "Office application started a script interpreter or shell",
               VIGIL__SEVERITY__SEVERITY_MEDIUM, VIGIL__CATEGORY__CATEGORY_EXECUTION, "T1204.002");
    assert_true(ends_with(trigger_of(x.off)->image, "\\powershell.exe"));
    assert_true(ends_with(parent_image(x.off, trigger_of(x.off)), "\\WINWORD.EXE"));
    check_step(x.enc, "PowerShell encoded command", VIGIL__SEVERITY__SEVERITY_MEDIUM,
               VIGIL__CATEGORY__CATEGORY_EXECUTION, "T1059.001");
    check_step(x.dump, "Credential dumping from LSASS memory", VIGIL__SEVERITY__SEVERITY_HIGH,
               VIGIL__CATEGORY__CATEGORY_CREDENTIAL_ACCESS, "T1003.001");
    /* The dumper is the binary the encoded PowerShell downloaded: its child. */
    assert_true(ends_with(parent_image(x.dump, trigger_of(x.dump)), "\\powershell.exe"));
    check_step(x.lat, "Lateral movement: remote service execution (PsExec-like)",
               VIGIL__SEVERITY__SEVERITY_HIGH, VIGIL__CATEGORY__CATEGORY_LATERAL_MOVEMENT,
               "T1021.002");
    assert_true(ends_with(parent_image(x.lat, trigger_of(x.lat)), "\\services.exe"));
    /* The command PsExec ran on the second machine: the same rule, by its parent. */
    check_step(x.lat_cmd, "Lateral movement: remote service execution (PsExec-like)",
               VIGIL__SEVERITY__SEVERITY_HIGH, VIGIL__CATEGORY__CATEGORY_LATERAL_MOVEMENT,
               "T1021.002");
    assert_true(ends_with(parent_image(x.lat_cmd, trigger_of(x.lat_cmd)), "\\PSEXESVC.exe"));
    /* The ransomware binary is started the same way on the third machine (a service run
     * from C:\Windows\Temp): the lateral-movement rule rightly fires there too. */
    assert_true(ends_with(trigger_of(x.lat_c)->image, "\\locker.exe"));
    /* T1486 gives the Ransomware category (sigma_load.c, corr_load.c). */
    check_step(x.ran, "Ransomware-like mass file renames", VIGIL__SEVERITY__SEVERITY_HIGH,
               VIGIL__CATEGORY__CATEGORY_RANSOMWARE, "T1486");
    assert_string_equal(x.ran->detection_source, "correlation");
    /* All 200 renames fall into one minute of one activity tree: one episode. */
    assert_int_equal(x.ran->event_count, 200);
    assert_true(ends_with(trigger_of(x.ran)->image, "\\locker.exe"));
    /* The account: the first machine's user, whose credentials the dump took, runs the
     * remote command and the ransomware; PSEXESVC itself runs as SYSTEM. */
    x.stolen = user_of(x.off);
    assert_true(strncmp(x.stolen, "CONTOSO\\", 8) == 0);
    assert_string_equal(user_of(x.enc), x.stolen);
    assert_string_equal(user_of(x.dump), x.stolen);
    assert_string_equal(user_of(x.lat), "NT AUTHORITY\\SYSTEM");
    assert_string_equal(user_of(x.lat_cmd), x.stolen);
    assert_string_equal(user_of(x.lat_c), x.stolen);
    assert_string_equal(user_of(x.ran), x.stolen);
    for (size_t i = 0; i < res->nal; i++) {
        const Vigil__Alert *al = res->al[i];

        if (strcmp(al->tenant_id, ch->tenant) != 0)
            continue;
        n++;
        assert_true(al == x.off || al == x.enc || al == x.dump || al == x.lat || al == x.lat_cmd ||
                    al == x.lat_c || al == x.ran);
    }
    assert_int_equal(n, CHAIN_ALERTS);
    if (ca != NULL)
        *ca = x;
    return n;
}

/* Every alert an incident names is of the incident's tenant and machines. */
static void check_incident_tenancy(const struct result *res)
{
    size_t nal = 0;

    for (size_t i = 0; i < res->ninc; i++) {
        const Vigil__Incident *inc = res->inc[i];

        for (size_t k = 0; k < inc->n_alert_ids; k++) {
            const Vigil__Alert *al = find_alert_id(res, inc->alert_ids[k]);

            assert_non_null(al);
            assert_string_equal(al->tenant_id, inc->tenant_id);
            assert_true(has_string(inc->machine_ids, inc->n_machine_ids, al->machine_id));
            nal++;
        }
    }
    /* and every alert is in exactly one incident */
    assert_int_equal(nal, res->nal);
    for (size_t i = 0; i < res->nal; i++)
        assert_non_null(incident_of(res, res->al[i]->id));
}

/* The severity rule of incident.h, over the incident's own alerts: the highest alert
 * severity, raised one level (at most to High) at >= 3 tactics or >= 3 machines. */
static Vigil__Severity severity_rule(const struct result *res, const Vigil__Incident *inc)
{
    Vigil__Severity sev = VIGIL__SEVERITY__SEVERITY_INFORMATIONAL;

    for (size_t k = 0; k < inc->n_alert_ids; k++) {
        const Vigil__Alert *al = find_alert_id(res, inc->alert_ids[k]);

        assert_non_null(al);
        if (al->severity > sev)
            sev = al->severity;
    }
    if ((inc->n_mitre_tactics >= 3 || inc->n_machine_ids >= 3) &&
        sev < VIGIL__SEVERITY__SEVERITY_HIGH)
        sev++;
    return sev;
}

static bool has_node(const Vigil__Incident *inc, const char *id, const char *kind)
{
    for (size_t i = 0; i < inc->n_nodes; i++)
        if (strcmp(inc->nodes[i]->id, id) == 0 && strcmp(inc->nodes[i]->kind, kind) == 0)
            return true;
    return false;
}

static bool has_edge(const Vigil__Incident *inc, const char *from, const char *to,
                     const char *relation)
{
    for (size_t i = 0; i < inc->n_edges; i++)
        if (strcmp(inc->edges[i]->from, from) == 0 && strcmp(inc->edges[i]->to, to) == 0 &&
            strcmp(inc->edges[i]->relation, relation) == 0)
            return true;
    return false;
}

/* The graph shows the account as one user node that alerts of all three machines used;
 * common entities are left out of the graph, so this also says it is not common. */
static void check_account_link(const Vigil__Incident *inc, const struct chain_alerts *ca)
{
    const Vigil__Alert *users[] = {ca->off, ca->lat_cmd, ca->ran};
    char node[256], anode[128];

    snprintf(node, sizeof(node), "user:%s", ca->stolen);
    for (char *p = node; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
    assert_true(has_node(inc, node, "user"));
    for (size_t i = 0; i < VG_ARRAY_SIZE(users); i++) {
        snprintf(anode, sizeof(anode), "alert:%s", users[i]->id);
        assert_true(has_edge(inc, anode, node, "used_account"));
    }
}

/*
 * One tenant's chain is exactly one incident holding its three machines and its seven
 * alerts. What links the machines is what links a real intrusion: the account dumped on
 * the first machine (CONTOSO\<its user>) runs the command PsExec started on the second and
 * the ransomware service on the third. Each machine's own alerts also share the machine
 * and process lineage.
 *
 * Severity: the LSASS dump, both PsExec-like alerts and the mass renames are High, the
 * Office child and the encoded command Medium, so the highest is High; the incident spans
 * 6 tactics and 3 machines, which raises one level, but High is the top: High.
 */
static void check_chain_incident(const struct result *res, const struct chain *ch,
                                 const struct chain_alerts *ca)
{
    const char *all[] = {ch->a, ch->b, ch->c};
    const char *tall[] = {"credential-access", "defense-evasion", "execution", "impact",
                          "initial-access",    "lateral-movement"};
    const Vigil__Alert *als[] = {ca->off,     ca->enc,   ca->dump, ca->lat,
                                 ca->lat_cmd, ca->lat_c, ca->ran};
    const Vigil__Incident *inc = incident_of(res, ca->off->id);

    assert_non_null(inc);
    assert_string_equal(inc->tenant_id, ch->tenant);
    for (size_t i = 0; i < VG_ARRAY_SIZE(als); i++)
        assert_ptr_equal(incident_of(res, als[i]->id), inc);
    assert_int_equal(inc->n_alert_ids, CHAIN_ALERTS);
    assert_int_equal(inc->n_machine_ids, 3);
    for (size_t i = 0; i < VG_ARRAY_SIZE(all); i++)
        assert_true(has_string(inc->machine_ids, inc->n_machine_ids, all[i]));
    assert_int_equal(inc->n_mitre_tactics, VG_ARRAY_SIZE(tall));
    for (size_t i = 0; i < VG_ARRAY_SIZE(tall); i++)
        assert_true(has_string(inc->mitre_tactics, inc->n_mitre_tactics, tall[i]));
    assert_int_equal(severity_rule(res, inc), VIGIL__SEVERITY__SEVERITY_HIGH);
    assert_int_equal(inc->severity, VIGIL__SEVERITY__SEVERITY_HIGH);
    check_account_link(inc, ca);
}

/*
 * Why each tenant's machine count matters: with only the machines that raised alerts
 * counted (the incident engine's default), the stolen account is on 3 of 3 machines,
 * "common", and links nothing: each machine's alerts form their own incident.
 */
static void check_split_without_counts(const struct result *res, const struct chain *ch,
                                       const struct chain_alerts *ca)
{
    struct result r2 = {.al = res->al, .nal = res->nal};
    const Vigil__Incident *ia, *ib, *ic;

    result_incidents(&r2, NULL);
    ia = incident_of(&r2, ca->off->id);
    ib = incident_of(&r2, ca->lat_cmd->id);
    ic = incident_of(&r2, ca->ran->id);
    assert_non_null(ia);
    assert_non_null(ib);
    assert_non_null(ic);
    assert_true(ia != ib && ib != ic && ia != ic);
    assert_int_equal(ia->n_machine_ids, 1);
    assert_string_equal(ia->machine_ids[0], ch->a);
    assert_int_equal(ib->n_machine_ids, 1);
    assert_string_equal(ib->machine_ids[0], ch->b);
    assert_int_equal(ic->n_machine_ids, 1);
    assert_string_equal(ic->machine_ids[0], ch->c);
    for (size_t i = 0; i < r2.ninc; i++)
        vigil__incident__free_unpacked(r2.inc[i], NULL);
    free(r2.inc);
}

static void test_chain_incident(void **state)
{
    struct fx *f = *state;
    struct bench_sim_opts o;
    struct recs rs = {0};
    struct result res;
    struct chain c1, c2;
    struct chain_alerts a1, a2;
    bench_sim *sim;
    size_t n;

    chain_opts(&o);
    sim = simulate(&o, &rs);
    assert_int_equal(bench_sim_truth_count(sim), 8); /* four steps in each of two tenants */
    chain_of(sim, "tenant-1", &c1);
    chain_of(sim, "tenant-2", &c2);
    run(f, &rs, NULL, &o, &res);
    print_message("  %zu batches, %zu alerts, %zu incidents\n", rs.n, res.nal, res.ninc);
    n = check_chain_alerts(&res, &c1, &a1) + check_chain_alerts(&res, &c2, &a2);
    /* No other alert anywhere: the noise of the 54 other machines raised nothing. */
    assert_int_equal(res.nal, n);
    check_incident_tenancy(&res);
    check_chain_incident(&res, &c1, &a1);
    check_chain_incident(&res, &c2, &a2);
    /* Exactly one incident per tenant, and no incident mixes tenants (tenancy above). */
    assert_int_equal(res.ninc, 2);
    assert_string_not_equal(res.inc[0]->tenant_id, res.inc[1]->tenant_id);
    check_split_without_counts(&res, &c1, &a1);
    result_free(&res);
    recs_free(&rs);
    bench_sim_free(sim);
}

/* ---- out-of-order delivery ----------------------------------------------------------- */

struct slot {
    uint64_t window;
    uint64_t rnd;
    size_t idx;
};

static int slot_cmp(const void *x, const void *y)
{
    const struct slot *a = x, *b = y;

    if (a->window != b->window)
        return a->window < b->window ? -1 : 1;
    if (a->rnd != b->rnd)
        return a->rnd < b->rnd ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*
 * A delivery order as Kafka gives it: the batches of one machine (one partition key) stay
 * in order, since the shard drops an event whose sequence number is not above the
 * machine's newest as a re-delivery; batches of different machines are shuffled within
 * windows of SHUFFLE_WINDOW_US of event time. Returns how many batches moved.
 */
static size_t shuffle_order(const struct recs *rs, uint64_t seed, size_t *order)
{
    struct slot *sl = calloc(rs->n, sizeof(*sl));
    size_t moved = 0;
    int64_t t0 = rs->n ? rs->r[0].ts_us : 0;

    assert_non_null(sl);
    for (size_t i = 0; i < rs->n; i++)
        sl[i] = (struct slot){(uint64_t)((rs->r[i].ts_us - t0) / SHUFFLE_WINDOW_US),
                              mix64(seed * 0x9e3779b97f4a7c15ull + i), i};
    qsort(sl, rs->n, sizeof(*sl), slot_cmp);
    /* Put each machine's batches back in their own order into the positions the machine
     * drew: a stable pass per machine, in original order. */
    for (size_t i = 0; i < rs->n; i++)
        order[i] = SIZE_MAX;
    for (size_t i = 0; i < rs->n; i++) {
        size_t p = 0;

        /* the first position of this machine still free, in shuffled order */
        for (; p < rs->n; p++)
            if (order[p] == SIZE_MAX && rs->r[sl[p].idx].mkey == rs->r[i].mkey)
                break;
        assert_true(p < rs->n);
        order[p] = i;
    }
    for (size_t i = 0; i < rs->n; i++)
        moved += order[i] != i;
    free(sl);
    return moved;
}

static void check_same_alerts(const struct result *x, const struct result *y)
{
    assert_int_equal(x->nal, y->nal);
    for (size_t i = 0; i < x->nal; i++) {
        const Vigil__Alert *a = x->al[i], *b = y->al[i];

        assert_string_equal(a->id, b->id);
        assert_string_equal(a->title, b->title);
        assert_string_equal(a->machine_id, b->machine_id);
        assert_int_equal(a->severity, b->severity);
        assert_int_equal(a->event_count, b->event_count);
        assert_int_equal(a->first_event_us, b->first_event_us);
        assert_int_equal(a->last_event_us, b->last_event_us);
        assert_int_equal(a->n_process_tree, b->n_process_tree);
    }
}

static void check_same_incidents(const struct result *x, const struct result *y)
{
    assert_int_equal(x->ninc, y->ninc);
    for (size_t i = 0; i < x->ninc; i++) {
        const Vigil__Incident *a = x->inc[i], *b = y->inc[i];

        assert_string_equal(a->id, b->id);
        assert_string_equal(a->tenant_id, b->tenant_id);
        assert_int_equal(a->severity, b->severity);
        assert_int_equal(a->n_alert_ids, b->n_alert_ids);
        for (size_t k = 0; k < a->n_alert_ids; k++)
            assert_string_equal(a->alert_ids[k], b->alert_ids[k]);
        assert_int_equal(a->n_machine_ids, b->n_machine_ids);
        for (size_t k = 0; k < a->n_machine_ids; k++)
            assert_string_equal(a->machine_ids[k], b->machine_ids[k]);
    }
}

static void test_chain_out_of_order(void **state)
{
    struct fx *f = *state;
    struct bench_sim_opts o;
    struct recs rs = {0};
    struct result base, res;
    struct chain c1;
    bench_sim *sim;
    size_t *order;

    chain_opts(&o);
    sim = simulate(&o, &rs);
    chain_of(sim, "tenant-1", &c1);
    run(f, &rs, NULL, &o, &base);
    check_chain_alerts(&base, &c1, NULL);
    assert_int_equal(base.ninc, 2); /* one per tenant, whatever the order (compared below) */
    order = calloc(rs.n, sizeof(*order));
    assert_non_null(order);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        size_t moved = shuffle_order(&rs, seed, order);

        print_message("  seed %llu: %zu of %zu batches delivered elsewhere\n",
                      (unsigned long long)seed, moved, rs.n);
        assert_true(moved > rs.n / 2); /* the order really changed */
        run(f, &rs, order, &o, &res);
        check_same_alerts(&base, &res);
        check_same_incidents(&base, &res);
        result_free(&res);
    }
    free(order);
    result_free(&base);
    recs_free(&rs);
    bench_sim_free(sim);
}

/* ---- benign noise -------------------------------------------------------------------- */

static void test_chain_rules_quiet_on_noise(void **state)
{
    struct fx *f = *state;
    struct bench_sim_opts o;
    struct bench_sim_stats st;
    struct recs rs = {0};
    struct result res;
    bench_sim *sim;
    size_t mine = 0;

    bench_sim_opts_default(&o);
    o.seed = 11;
    o.machines = 200;
    o.tenants = 4;
    o.duration_us = 60 * VG_US_PER_SEC;
    o.scenarios = false;
    sim = simulate(&o, &rs);
    bench_sim_stats(sim, &st);
    /* The noise holds what the rules look at: process starts (Office, services.exe
     * children, cmd) and renames. */
    assert_true(st.events > 50000);
    assert_true(st.by_kind[BENCH_SIM_PROC_CREATE] > 1000);
    assert_true(st.by_kind[BENCH_SIM_FILE] > 10000);
    run(f, &rs, NULL, &o, &res);
    for (size_t i = 0; i < res.nal; i++) {
        if (is_chain_rule(res.al[i]->rule_id)) {
            print_error("benign alert: %s on %s\n", res.al[i]->title, res.al[i]->machine_id);
            mine++;
        }
    }
    print_message("  %llu benign events: %zu alerts in all, %zu of chain rules\n",
                  (unsigned long long)st.events, res.nal, mine);
    assert_int_equal(mine, 0);
    /* Not even a match: no single-event chain rule comes near firing. */
    for (size_t k = 0; k < VG_ARRAY_SIZE(chain_rule_ids); k++)
        assert_int_equal(res.hits[k], 0);
    result_free(&res);
    recs_free(&rs);
    bench_sim_free(sim);
}

/* ---- pid reuse ----------------------------------------------------------------------- */

#define T0 (INT64_C(1767600000) * VG_US_PER_SEC) /* 2026-01-05T08:00:00Z */

static Vigil__ProcessRef proc_ref(uint32_t pid, int64_t ctime, const char *image,
                                  const char *cmdline)
{
    Vigil__ProcessRef p = VIGIL__PROCESS_REF__INIT;

    p.pid = pid;
    p.creation_time_us = ctime;
    p.image = (char *)image;
    p.command_line = (char *)cmdline;
    p.account = (char *)"CONTOSO\\grace.chen";
    p.integrity_level = (char *)"Medium";
    return p;
}

/*
 * Two powershell.exe with pid 4242 on one machine, 30 s apart: the first started by
 * WINWORD.EXE (pid 3100) and exited, the second by EXCEL.EXE (pid 3300). Both match the
 * Office-child and encoded-command rules.
 */
static void pid_reuse_batch(struct recs *rs)
{
    static const char ps[] = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe";
    static const char word[] = "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE";
    static const char xl[] = "C:\\Program Files\\Microsoft Office\\root\\Office16\\EXCEL.EXE";
    static const char expl[] = "C:\\Windows\\explorer.exe";
    Vigil__ProcessRef explorer = proc_ref(2200, T0 - 3600 * VG_US_PER_SEC, expl, expl);
    Vigil__ProcessRef w = proc_ref(3100, T0, word, "WINWORD.EXE /n a.docm");
    Vigil__ProcessRef x = proc_ref(3300, T0 + 20 * VG_US_PER_SEC, xl, "EXCEL.EXE b.xlsm");
    Vigil__ProcessRef p1 = proc_ref(4242, T0 + VG_US_PER_SEC, ps, "powershell -enc SQBFAFgA");
    Vigil__ProcessRef p2 =
        proc_ref(4242, T0 + 30 * VG_US_PER_SEC, ps, "powershell -w hidden -enc SQBFAFgA");
    Vigil__ProcessCreated c[4] = {VIGIL__PROCESS_CREATED__INIT, VIGIL__PROCESS_CREATED__INIT,
                                  VIGIL__PROCESS_CREATED__INIT, VIGIL__PROCESS_CREATED__INIT};
    Vigil__ProcessExited ex = VIGIL__PROCESS_EXITED__INIT;
    Vigil__Event ev[5] = {VIGIL__EVENT__INIT, VIGIL__EVENT__INIT, VIGIL__EVENT__INIT,
                          VIGIL__EVENT__INIT, VIGIL__EVENT__INIT};
    Vigil__Event *evp[5];
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    /* parent, child, time of each start */
    Vigil__ProcessRef *par[4] = {&explorer, &w, &explorer, &x};
    Vigil__ProcessRef *kid[4] = {&w, &p1, &x, &p2};

    for (int i = 0, k = 0; i < 5; i++) {
        ev[i].seq = 100 + (uint64_t)i;
        evp[i] = &ev[i];
        if (i == 2) { /* the first powershell exits before its pid comes back */
            ev[i].ts_us = T0 + 10 * VG_US_PER_SEC;
            ev[i].actor = &p1;
            ev[i].kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
            ev[i].process_exited = &ex;
            continue;
        }
        c[k].process = kid[k];
        ev[i].ts_us = kid[k]->creation_time_us;
        ev[i].actor = par[k];
        ev[i].kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
        ev[i].process_created = &c[k];
        k++;
    }
    b.tenant_id = (char *)"tenant-1";
    b.machine_id = (char *)"WIN-pid-reuse";
    b.machine_name = (char *)"DESKTOP-PIDREUSE";
    b.os = VIGIL__OS__OS_WINDOWS;
    b.first_seq = 100;
    b.n_events = 5;
    b.events = evp;
    recs_add(rs, &b);
}

static bool tree_has(const Vigil__Alert *al, uint32_t pid, int64_t ctime)
{
    for (size_t i = 0; i < al->n_process_tree; i++)
        if (al->process_tree[i]->pid == pid && al->process_tree[i]->creation_time_us == ctime)
            return true;
    return false;
}

static void test_pid_reuse(void **state)
{
    struct fx *f = *state;
    struct recs rs = {0};
    struct result res;
    const Vigil__Alert *enc[2] = {NULL, NULL};
    const Vigil__ProcessNode *t[2];
    int n = 0;

    pid_reuse_batch(&rs);
    run(f, &rs, NULL, NULL, &res);
    for (size_t i = 0; i < res.nal; i++)
        if (strcmp(res.al[i]->rule_id, RID_ENC) == 0 && n < 2)
            enc[n++] = res.al[i];
    /* Two processes, two alerts per rule: Office child and encoded command, each twice. */
    assert_int_equal(n, 2);
    assert_int_equal(res.nal, 4);
    assert_string_not_equal(enc[0]->id, enc[1]->id);
    if (enc[0]->first_event_us > enc[1]->first_event_us) {
        const Vigil__Alert *tmp = enc[0];

        enc[0] = enc[1];
        enc[1] = tmp;
    }
    t[0] = trigger_of(enc[0]);
    t[1] = trigger_of(enc[1]);
    assert_int_equal(t[0]->pid, 4242);
    assert_int_equal(t[1]->pid, 4242);
    assert_int_equal(t[0]->creation_time_us, T0 + VG_US_PER_SEC);
    assert_int_equal(t[1]->creation_time_us, T0 + 30 * VG_US_PER_SEC);
    assert_true(ends_with(parent_image(enc[0], t[0]), "\\WINWORD.EXE"));
    assert_true(ends_with(parent_image(enc[1], t[1]), "\\EXCEL.EXE"));
    assert_int_equal(enc[0]->process_tree[t[0]->parent_index]->pid, 3100);
    assert_int_equal(enc[1]->process_tree[t[1]->parent_index]->pid, 3300);
    /* The trees do not merge: neither holds the other's powershell or Office parent. */
    assert_false(tree_has(enc[0], 4242, T0 + 30 * VG_US_PER_SEC));
    assert_false(tree_has(enc[0], 3300, T0 + 20 * VG_US_PER_SEC));
    assert_false(tree_has(enc[1], 4242, T0 + VG_US_PER_SEC));
    assert_false(tree_has(enc[1], 3100, T0));
    assert_int_equal(enc[0]->event_count, 1);
    assert_int_equal(enc[1]->event_count, 1);
    result_free(&res);
    recs_free(&rs);
}

/* ---- ransomware category ------------------------------------------------------------ */

#define RULE_HEAD(id, tags)                                                                        \
    "title: t " id "\nid: " id "\nname: r_" id "\ntags:\n" tags "logsource:\n"                     \
    "    category: process_creation\n    product: windows\ndetection:\n"                           \
    "    selection:\n        Image|endswith: '\\vssadmin.exe'\n    condition: selection\n"         \
    "level: high\n"

static Vigil__Category rule_category(const cor_ruleset *rs, const char *id)
{
    for (uint32_t i = 0; i < cor_ruleset_count(rs); i++)
        if (strcmp(cor_ruleset_rule(rs, i)->id, id) == 0)
            return cor_ruleset_rule(rs, i)->category;
    fail_msg("rule %s not loaded", id);
    return VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY;
}

/* T1486, or T1490 under impact, make a Ransomware alert, in Sigma rules and in
 * correlations; T1490 without impact, or impact with another technique, do not. */
static void test_ransom_category(void **state)
{
    char *dir = vgt_tmpdir("ransomcat");
    const char *dirs[1] = {dir};
    struct cor_load_summary sum;
    struct cor_corr_load_summary csum;
    cor_ruleset *rs = NULL;
    cor_corrset *cs = NULL;
    char err[256];

    assert_non_null(dir);
    vgt_write_file(dir, "a.yml", RULE_HEAD("a1", "    - attack.impact\n    - attack.t1486\n"));
    vgt_write_file(dir, "b.yml", RULE_HEAD("b1", "    - attack.impact\n    - attack.t1490\n"));
    vgt_write_file(dir, "c.yml",
                   RULE_HEAD("c1", "    - attack.defense-evasion\n    - attack.t1490\n"));
    vgt_write_file(dir, "d.yml", RULE_HEAD("d1", "    - attack.impact\n    - attack.t1485\n"));
    vgt_write_file(dir, "e.yml", RULE_HEAD("e1", "    - attack.execution\n    - attack.t1486\n"));
    vgt_write_file(dir, "f.yml",
                   "title: corr\nid: f1\ntags:\n    - attack.impact\n    - attack.t1490\n"
                   "correlation:\n    type: event_count\n    rules:\n        - r_d1\n"
                   "    group-by:\n        - vigil.process_tree\n    timespan: 1m\n"
                   "    condition:\n        gte: 3\nlevel: high\n");
    assert_int_equal(cor_ruleset_load(dirs, 1, &rs, &sum, err, sizeof(err)), 0);
    assert_int_equal(cor_corrset_load(dirs, 1, &cs, &csum, err, sizeof(err)), 0);
    assert_int_equal(sum.skipped, 0);
    assert_int_equal(csum.skipped, 0);
    assert_int_equal(rule_category(rs, "a1"), VIGIL__CATEGORY__CATEGORY_RANSOMWARE);
    assert_int_equal(rule_category(rs, "b1"), VIGIL__CATEGORY__CATEGORY_RANSOMWARE);
    assert_int_equal(rule_category(rs, "c1"), VIGIL__CATEGORY__CATEGORY_DEFENSE_EVASION);
    assert_int_equal(rule_category(rs, "d1"), VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY);
    assert_int_equal(rule_category(rs, "e1"), VIGIL__CATEGORY__CATEGORY_RANSOMWARE);
    assert_non_null(cor_corrset_find(cs, "f1"));
    assert_int_equal(cor_corrset_find(cs, "f1")->category, VIGIL__CATEGORY__CATEGORY_RANSOMWARE);
    /* and the built-in mass-renames correlation (T1486) */
    assert_int_equal(cor_corrset_find(((struct fx *)*state)->corr, RID_RANSOM)->category,
                     VIGIL__CATEGORY__CATEGORY_RANSOMWARE);
    cor_ruleset_unref(rs);
    cor_corrset_unref(cs);
    vgt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_incident),
        cmocka_unit_test(test_chain_out_of_order),
        cmocka_unit_test(test_chain_rules_quiet_on_noise),
        cmocka_unit_test(test_pid_reuse),
        cmocka_unit_test(test_ransom_category),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
