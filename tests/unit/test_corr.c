/*
 * test_corr.c - Sigma correlation rules: loading and reference resolution, every
 * correlation type with thresholds and ranges, sliding (not tumbling) windows, episodes,
 * out-of-order and shuffled input giving identical alerts, late matches, event-time order
 * for temporal_ordered, distinct values, aliases, bounded memory, process-tree labels and
 * the built-in Linux test correlation through the real Sigma engine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "corr.h"
#include "proctab.h"
#include "rules.h"
#include "vg.h"

#define S         INT64_C(1000000)
#define T0        (INT64_C(1767225600) * S)
#define ID_A      "00000000-0000-4000-8000-00000000000a"
#define ID_B      "00000000-0000-4000-8000-00000000000b"
#define ID_C      "00000000-0000-4000-8000-00000000000c"
#define ID_D      "00000000-0000-4000-8000-00000000000d"
#define ID_E      "00000000-0000-4000-8000-00000000000e"
#define C_COUNT   "10000000-0000-4000-8000-000000000001"
#define C_RANGE   "10000000-0000-4000-8000-000000000002"
#define C_VC      "10000000-0000-4000-8000-000000000003"
#define C_TEMP    "10000000-0000-4000-8000-000000000004"
#define C_ORDERED "10000000-0000-4000-8000-000000000005"
#define C_ALIAS   "10000000-0000-4000-8000-000000000006"

static const char base_yml[] = "title: A\nid: " ID_A "\nname: rule_a\n"
                               "logsource: {category: process_creation, product: linux}\n"
                               "detection: {sel: {Image: a}, condition: sel}\n"
                               "---\ntitle: B\nid: " ID_B "\nname: rule_b\n"
                               "logsource: {category: process_creation, product: linux}\n"
                               "detection: {sel: {Image: b}, condition: sel}\n"
                               "---\ntitle: C\nid: " ID_C "\nname: rule_c\n"
                               "logsource: {category: process_creation, product: linux}\n"
                               "detection: {sel: {Image: c}, condition: sel}\n"
                               "---\ntitle: D\nid: " ID_D "\nname: rule_d\n"
                               "logsource: {category: process_creation, product: linux}\n"
                               "detection: {sel: {Image: d}, condition: sel}\n"
                               "---\ntitle: E\nid: " ID_E "\nname: rule_e\n"
                               "logsource: {product: windows, service: security}\n"
                               "detection: {sel: {EventID: 4625}, condition: sel}\n";

static const char corr_yml[] =
    "title: count\nid: " C_COUNT "\nlevel: high\ntags: [attack.discovery, attack.t1083]\n"
    "correlation:\n  type: event_count\n  rules: [rule_a]\n  group-by: [User]\n"
    "  timespan: 60s\n  condition: {gte: 3}\n"
    "---\ntitle: range\nid: " C_RANGE "\n"
    "correlation:\n  type: event_count\n  rules: [rule_b]\n  group-by: [User]\n"
    "  timespan: 1m\n  condition: {gt: 2, lte: 4}\n"
    "---\ntitle: distinct\nid: " C_VC "\n"
    "correlation:\n  type: value_count\n  rules: [rule_c]\n  group-by: [User]\n"
    "  timespan: 60s\n  condition: {field: CommandLine, gte: 3}\n"
    "---\ntitle: temporal\nid: " C_TEMP "\n"
    "correlation:\n  type: temporal\n  rules: [rule_a, rule_b, rule_c]\n  group-by: [User]\n"
    "  timespan: 60s\n"
    "---\ntitle: ordered\nid: " C_ORDERED "\n"
    "correlation:\n  type: temporal_ordered\n  rules: [rule_a, " ID_B ", rule_c]\n"
    "  group-by: [User]\n  timespan: 60s\n"
    "---\ntitle: alias\nid: " C_ALIAS "\ngenerate: true\n"
    "correlation:\n  type: temporal\n  rules: [" ID_D ", rule_e]\n  group-by: [who]\n"
    "  timespan: 30s\n  aliases:\n    who:\n      rule_d: User\n      rule_e: TargetUserName\n";

static const char bad_yml[] =
    "title: sum\nid: 20000000-0000-4000-8000-000000000001\n"
    "correlation: {type: value_sum, rules: [rule_a], group-by: [User], timespan: 1h,\n"
    "  condition: {field: x, gt: 1}}\n"
    "---\ntitle: no id\n"
    "correlation: {type: event_count, rules: [rule_a], group-by: [User], timespan: 1h,\n"
    "  condition: {gt: 1}}\n"
    "---\ntitle: unknown ref\nid: 20000000-0000-4000-8000-000000000003\n"
    "correlation: {type: event_count, rules: [nope], group-by: [User], timespan: 1h,\n"
    "  condition: {gt: 1}}\n"
    "---\ntitle: chained\nid: 20000000-0000-4000-8000-000000000004\n"
    "correlation: {type: temporal, rules: [inner, rule_a], group-by: [User], timespan: 1h}\n"
    "---\ntitle: inner\nid: 20000000-0000-4000-8000-000000000005\nname: inner\n"
    "correlation: {type: event_count, rules: [rule_a], group-by: [User], timespan: 1x,\n"
    "  condition: {gt: 1}}\n"
    "---\ntitle: no condition\nid: 20000000-0000-4000-8000-000000000006\n"
    "correlation: {type: event_count, rules: [rule_a], group-by: [User], timespan: 1h}\n";

/* ---- fixture ------------------------------------------------------------------------ */

struct rec {
    char id[33];
    char corr[40];
    bool is_new;
    uint32_t count;
    int64_t first, last;
    size_t n_events;
    char group[128];
};

struct fx {
    char *dir;
    cor_corrset *cs;
    struct cor_corr_load_summary sum;
    cor_corrstate *st;
    struct rec *recs;
    size_t n, cap;
};

static void on_fire(void *ctx, const struct cor_corr_fire *f)
{
    struct fx *x = ctx;
    struct rec *r;
    size_t off = 0;

    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->recs = realloc(x->recs, x->cap * sizeof(*x->recs));
        assert_non_null(x->recs);
    }
    r = &x->recs[x->n++];
    memset(r, 0, sizeof(*r));
    memcpy(r->id, f->id, 33);
    snprintf(r->corr, sizeof(r->corr), "%s", f->rule->id);
    r->is_new = f->is_new;
    r->count = f->count;
    r->first = f->first_ts_us;
    r->last = f->last_ts_us;
    r->n_events = f->n_events;
    for (size_t i = 0; i < f->n_group_by; i++)
        off += (size_t)snprintf(r->group + off, sizeof(r->group) - off, "%s%s=%s", i ? "," : "",
                                f->group_by[i].key, f->group_by[i].value);
    /* the evidence is in event-time order and inside the episode */
    for (size_t i = 0; i < f->n_events; i++) {
        assert_true(f->events[i].ts_us >= f->first_ts_us && f->events[i].ts_us <= f->last_ts_us);
        if (i)
            assert_true(f->events[i - 1].ts_us <= f->events[i].ts_us);
    }
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    const char *dirs[1];
    char err[256] = "";

    assert_non_null(x);
    x->dir = vgt_tmpdir("corr");
    vgt_write_file(x->dir, "base.yml", base_yml);
    vgt_write_file(x->dir, "corr.yml", corr_yml);
    dirs[0] = x->dir;
    assert_int_equal(cor_corrset_load(dirs, 1, &x->cs, &x->sum, err, sizeof(err)), 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;

    cor_corrstate_destroy(x->st);
    cor_corrset_unref(x->cs);
    vgt_rmtree(x->dir);
    free(x->dir);
    free(x->recs);
    free(x);
    return 0;
}

static void start(struct fx *x, int64_t lateness)
{
    cor_corrstate_destroy(x->st);
    x->n = 0;
    x->st = cor_corrstate_new(x->cs, lateness, on_fire, x);
    assert_non_null(x->st);
}

/* One match of rule_id at T0 + ts_s seconds. */
static void feed_f(struct fx *x, const char *rule_id, uint64_t mkey, double ts_s, uint64_t seq,
                   enum vg_field field, const char *user, const char *cmd)
{
    struct vg_evview v;
    struct cor_corr_match m;
    char summary[64];

    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    if (user) {
        v.f[field].p = user;
        v.f[field].n = strlen(user);
    }
    if (cmd) {
        v.f[VG_F_COMMAND_LINE].p = cmd;
        v.f[VG_F_COMMAND_LINE].n = strlen(cmd);
    }
    snprintf(summary, sizeof(summary), "event %llu", (unsigned long long)seq);
    memset(&m, 0, sizeof(m));
    m.mkey = mkey;
    m.tenant = "t1";
    m.machine = mkey == 1 ? "m1" : "mx";
    m.view = &v;
    m.ts_us = T0 + (int64_t)(ts_s * (double)S);
    m.seq = seq;
    m.kind = "process_creation";
    m.summary = summary;
    cor_corrstate_on_match(x->st, rule_id, &m);
}

static void feed(struct fx *x, const char *rule_id, uint64_t mkey, double ts_s, uint64_t seq,
                 const char *user)
{
    feed_f(x, rule_id, mkey, ts_s, seq, VG_F_USER, user, NULL);
}

/* Fires of one correlation (optionally of one group). */
static size_t count_fires(const struct fx *x, const char *corr, const char *group, size_t *new_out,
                          const struct rec **last)
{
    size_t n = 0, nn = 0;

    for (size_t i = 0; i < x->n; i++) {
        if (strcmp(x->recs[i].corr, corr) != 0 || (group && strcmp(x->recs[i].group, group) != 0))
            continue;
        n++;
        nn += x->recs[i].is_new;
        if (last)
            *last = &x->recs[i];
    }
    if (new_out)
        *new_out = nn;
    return n;
}

static struct cor_corrstate_stats stats(const struct fx *x)
{
    struct cor_corrstate_stats s;

    cor_corrstate_get_stats(x->st, &s);
    return s;
}

/* ---- loading ------------------------------------------------------------------------ */

static void test_load(void **state)
{
    struct fx *x = *state;
    const struct cor_rule_info *ri;
    struct cor_corr_load_summary sum;
    cor_corrset *cs = NULL;
    const char *dirs[1];
    char err[256] = "";
    char *dir = vgt_tmpdir("corrbad");

    assert_int_equal(x->sum.correlations, 6);
    assert_int_equal(x->sum.loaded, 6);
    assert_int_equal(x->sum.skipped, 0);
    assert_int_equal(x->sum.names, 5);
    assert_int_equal(cor_corrset_count(x->cs), 6);
    ri = cor_corrset_find(x->cs, C_COUNT);
    assert_non_null(ri);
    assert_string_equal(ri->title, "count");
    assert_int_equal(ri->severity, VIGIL__SEVERITY__SEVERITY_HIGH);
    assert_int_equal(ri->category, VIGIL__CATEGORY__CATEGORY_DISCOVERY);
    assert_int_equal(ri->n_techniques, 1);
    assert_string_equal(ri->techniques[0], "T1083");
    assert_int_equal(ri->group, COR_GROUP_MACHINE);
    assert_ptr_equal(cor_corrset_rule(x->cs, ri->index), ri);
    assert_null(cor_corrset_rule(x->cs, 6));
    /* referenced by name or id; generate: false suppresses, generate: true keeps */
    assert_true(cor_corrset_wants(x->cs, ID_A));
    assert_true(cor_corrset_wants(x->cs, "00000000-0000-4000-8000-00000000000A"));
    assert_true(cor_corrset_suppresses(x->cs, ID_B));
    assert_true(cor_corrset_wants(x->cs, ID_D));
    assert_false(cor_corrset_suppresses(x->cs, ID_D));
    assert_false(cor_corrset_wants(x->cs, C_COUNT));
    assert_false(cor_corrset_wants(x->cs, "nope"));

    /* broken and unsupported correlations are skipped, never fatal */
    vgt_write_file(dir, "base.yml", base_yml);
    vgt_write_file(dir, "bad.yml", bad_yml);
    dirs[0] = dir;
    assert_int_equal(cor_corrset_load(dirs, 1, &cs, &sum, err, sizeof(err)), 0);
    assert_int_equal(sum.correlations, 6);
    assert_int_equal(sum.loaded, 0);
    assert_int_equal(sum.skipped, 6);
    assert_int_equal(sum.unsupported, 2); /* value_sum, chaining */
    assert_int_equal(cor_corrset_count(cs), 0);
    assert_false(cor_corrset_wants(cs, ID_A));
    cor_corrset_unref(cs);

    /* a missing directory is an error */
    dirs[0] = "/nonexistent/vigil/rules";
    assert_true(cor_corrset_load(dirs, 1, &cs, &sum, err, sizeof(err)) < 0);
    assert_null(cs);
    vgt_rmtree(dir);
    free(dir);
}

/* ---- windows ------------------------------------------------------------------------ */

/* 50 s, 70 s, 100 s within 60 s of each other: a sliding window anchored at 50 s holds all
 * three; fixed windows [0,60) [60,120) would hold 1 and 2 and never fire. */
static void test_event_count_sliding(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;
    size_t nnew;

    start(x, 0);
    feed(x, ID_A, 1, 50, 1, "u1");
    feed(x, ID_A, 1, 70, 2, "u1");
    assert_int_equal(count_fires(x, C_COUNT, NULL, NULL, NULL), 0);
    feed(x, ID_A, 1, 100, 3, "u1");
    assert_int_equal(count_fires(x, C_COUNT, "User=u1", &nnew, &r), 1);
    assert_int_equal(nnew, 1);
    assert_int_equal(r->count, 3);
    assert_int_equal(r->n_events, 3);
    assert_true(r->first == T0 + 50 * S && r->last == T0 + 100 * S);
    /* 50, 70, 111: no window of 60 s holds three */
    feed(x, ID_A, 1, 150, 4, "u2");
    feed(x, ID_A, 1, 170, 5, "u2");
    feed(x, ID_A, 1, 211, 6, "u2");
    assert_int_equal(count_fires(x, C_COUNT, "User=u2", NULL, NULL), 0);
    /* the boundary is inclusive: 300, 330, 360 */
    feed(x, ID_A, 1, 300, 7, "u3");
    feed(x, ID_A, 1, 330, 8, "u3");
    feed(x, ID_A, 1, 360, 9, "u3");
    assert_int_equal(count_fires(x, C_COUNT, "User=u3", NULL, NULL), 1);
    /* temporal saw rule_a only: nothing */
    assert_int_equal(count_fires(x, C_TEMP, NULL, NULL, NULL), 0);
}

/* A long run is one episode (one alert, updated); a run after a gap is a new alert. */
static void test_episodes(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;
    size_t nnew, n;
    char first_id[33];

    start(x, 0);
    for (int i = 0; i <= 20; i++)
        feed(x, ID_A, 1, 10.0 * i, (uint64_t)i + 1, "u");
    n = count_fires(x, C_COUNT, NULL, &nnew, &r);
    assert_int_equal(nnew, 1);
    assert_int_equal(n, 19); /* fires at the 3rd event, then one update per event */
    assert_int_equal(r->count, 21);
    assert_true(r->first == T0 && r->last == T0 + 200 * S);
    for (size_t i = 1; i < x->n; i++)
        assert_string_equal(x->recs[i].id, x->recs[0].id);
    memcpy(first_id, x->recs[0].id, 33);
    for (int i = 0; i < 3; i++)
        feed(x, ID_A, 1, 500.0 + i, (uint64_t)i + 100, "u");
    n = count_fires(x, C_COUNT, NULL, &nnew, &r);
    assert_int_equal(nnew, 2);
    assert_int_equal(r->count, 3);
    assert_true(r->is_new);
    assert_string_not_equal(r->id, first_id);
    assert_int_equal(strlen(r->id), 32);
}

/* gt 2, lte 4: judged when the window is complete; a burst of 6 is not "3 to 4". */
static void test_range_condition(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;

    start(x, 0);
    for (int i = 0; i < 3; i++)
        feed(x, ID_B, 11, 10.0 * i, (uint64_t)i + 1, "r");
    for (int i = 0; i < 6; i++)
        feed(x, ID_B, 12, 10.0 * i, (uint64_t)i + 1, "r");
    for (int i = 0; i < 2; i++)
        feed(x, ID_B, 13, 10.0 * i, (uint64_t)i + 1, "r");
    /* windows reach to 60 s and beyond: not judged yet */
    assert_int_equal(count_fires(x, C_RANGE, NULL, NULL, NULL), 0);
    cor_corrstate_advance(x->st, T0 + 1000 * S);
    assert_int_equal(x->n, 1);
    assert_string_equal(x->recs[0].corr, C_RANGE);
    r = &x->recs[0];
    assert_int_equal(r->count, 3);
    assert_true(r->first == T0 && r->last == T0 + 20 * S);
    /* an upper bound is also judged as later events arrive (no advance needed) */
    start(x, 0);
    for (int i = 0; i < 4; i++)
        feed(x, ID_B, 11, 10.0 * i, (uint64_t)i + 1, "r");
    feed(x, ID_B, 11, 500, 9, "r");
    assert_int_equal(count_fires(x, C_RANGE, NULL, NULL, &r), 1);
    assert_int_equal(r->count, 4);
}

static void test_value_count_distinct(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;
    static const char *const cmds[] = {"a", "b", "a", "c"};

    start(x, 0);
    for (int i = 0; i < 5; i++)
        feed_f(x, ID_C, 1, i, (uint64_t)i + 1, VG_F_USER, "v1", "same");
    /* no CommandLine: counted as an event, not as a value */
    for (int i = 0; i < 3; i++)
        feed_f(x, ID_C, 1, 10 + i, (uint64_t)i + 10, VG_F_USER, "v1", NULL);
    assert_int_equal(count_fires(x, C_VC, NULL, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        feed_f(x, ID_C, 1, 100 + i, (uint64_t)i + 20, VG_F_USER, "v2", cmds[i]);
    assert_int_equal(count_fires(x, C_VC, "User=v2", NULL, &r), 1);
    assert_true(r->is_new);
    assert_int_equal(r->count, 4);
    assert_int_equal(r->last, T0 + 103 * S);
    /* a match without the group-by field is not correlated */
    feed_f(x, ID_C, 1, 200, 99, VG_F_USER, NULL, "x");
    assert_int_equal(stats(x).no_group, 3); /* once per correlation using rule_c */
}

static void test_temporal(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;

    start(x, 0);
    /* any order in event time fires temporal; ordered only wants a, b, c */
    feed(x, ID_B, 1, 10, 1, "p");
    feed(x, ID_C, 1, 20, 2, "p");
    feed(x, ID_A, 1, 30, 3, "p");
    assert_int_equal(count_fires(x, C_TEMP, "User=p", NULL, &r), 1);
    assert_int_equal(r->count, 3);
    assert_int_equal(count_fires(x, C_ORDERED, "User=p", NULL, NULL), 0);
    feed(x, ID_A, 1, 110, 4, "q");
    feed(x, ID_B, 1, 120, 5, "q");
    feed(x, ID_C, 1, 130, 6, "q");
    assert_int_equal(count_fires(x, C_ORDERED, "User=q", NULL, &r), 1);
    assert_int_equal(r->count, 3);
    assert_int_equal(count_fires(x, C_TEMP, "User=q", NULL, NULL), 1);
    /* c too late for a's window */
    feed(x, ID_A, 1, 210, 7, "s");
    feed(x, ID_B, 1, 220, 8, "s");
    feed(x, ID_C, 1, 280, 9, "s");
    assert_int_equal(count_fires(x, C_TEMP, "User=s", NULL, NULL), 0);
    assert_int_equal(count_fires(x, C_ORDERED, "User=s", NULL, NULL), 0);
}

/* temporal_ordered follows event time, not arrival. */
static void test_ordered_event_time(void **state)
{
    struct fx *x = *state;

    start(x, 120 * S);
    feed(x, ID_C, 1, 30, 3, "o1"); /* arrive c, b, a; happened a, b, c */
    feed(x, ID_B, 1, 20, 2, "o1");
    feed(x, ID_A, 1, 10, 1, "o1");
    feed(x, ID_A, 1, 60, 4, "o2"); /* arrive a, b, c; happened c, b, a */
    feed(x, ID_B, 1, 50, 5, "o2");
    feed(x, ID_C, 1, 40, 6, "o2");
    assert_int_equal(x->n, 0);                 /* held back by the lateness bound */
    assert_int_equal(stats(x).pending, 6 * 3); /* each rule feeds three correlations */
    cor_corrstate_flush(x->st);
    assert_int_equal(count_fires(x, C_ORDERED, "User=o1", NULL, NULL), 1);
    assert_int_equal(count_fires(x, C_ORDERED, "User=o2", NULL, NULL), 0);
    assert_int_equal(count_fires(x, C_TEMP, "User=o2", NULL, NULL), 1);
    assert_int_equal(stats(x).late, 0);
}

static void test_late(void **state)
{
    struct fx *x = *state;

    start(x, 10 * S);
    feed(x, ID_A, 1, 100, 1, "l");
    feed(x, ID_A, 1, 110, 2, "l");
    feed(x, ID_A, 1, 200, 3, "l"); /* watermark 190 */
    feed(x, ID_A, 1, 120, 4, "l"); /* would make 100, 110, 120: late, ignored */
    assert_int_equal(stats(x).late, 1);
    feed(x, ID_A, 1, 195, 5, "l"); /* within the bound */
    assert_int_equal(stats(x).late, 1);
    cor_corrstate_flush(x->st);
    assert_int_equal(count_fires(x, C_COUNT, NULL, NULL, NULL), 0);
    /* within the bound, the same match completes the window */
    start(x, 10 * S);
    feed(x, ID_A, 1, 100, 1, "l");
    feed(x, ID_A, 1, 110, 2, "l");
    feed(x, ID_A, 1, 125, 3, "l");
    feed(x, ID_A, 1, 120, 4, "l");
    cor_corrstate_flush(x->st);
    assert_int_equal(count_fires(x, C_COUNT, NULL, NULL, NULL), 2); /* new + update */
    assert_int_equal(stats(x).late, 0);
}

static void test_aliases(void **state)
{
    struct fx *x = *state;
    const struct rec *r = NULL;

    start(x, 0);
    feed_f(x, ID_D, 1, 10, 1, VG_F_USER, "alice", NULL);
    feed_f(x, ID_E, 1, 15, 2, VG_F_TARGET_USER_NAME, "alice", NULL);
    assert_int_equal(count_fires(x, C_ALIAS, NULL, NULL, &r), 1);
    assert_string_equal(r->group, "who=alice");
    assert_int_equal(r->count, 2);
    /* different values, or the value in the other rule's field: no correlation */
    feed_f(x, ID_D, 1, 100, 3, VG_F_USER, "bob", NULL);
    feed_f(x, ID_E, 1, 101, 4, VG_F_TARGET_USER_NAME, "carol", NULL);
    feed_f(x, ID_E, 1, 102, 5, VG_F_USER, "bob", NULL);
    assert_int_equal(count_fires(x, C_ALIAS, NULL, NULL, NULL), 1);
    assert_int_equal(stats(x).no_group, 1);
}

/* ---- determinism ---------------------------------------------------------------------- */

struct gen_ev {
    const char *rule;
    uint64_t mkey;
    double ts;
    uint64_t seq;
    const char *user;
    const char *cmd;
    double key; /* arrival order */
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t gen_stream(struct gen_ev *evs, size_t n)
{
    static const char *const rules[] = {ID_A, ID_B, ID_C};
    static const char *const users[] = {"u0", "u1", "u2", "u3"};
    static const char *const cmds[] = {"x", "y", "z", "w"};
    uint64_t rng = 0x9e3779b97f4a7c15ull, seq[4] = {0};
    double t = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t mk = 1 + rng_next(&rng) % 3;
        t += (double)(rng_next(&rng) % 8000) / 1000.0;
        evs[i].rule = rules[rng_next(&rng) % 3];
        evs[i].mkey = mk;
        evs[i].ts = t;
        evs[i].seq = ++seq[mk];
        evs[i].user = users[rng_next(&rng) % 4];
        evs[i].cmd = cmds[rng_next(&rng) % 4];
        evs[i].key = t;
    }
    return n;
}

static int cmp_key(const void *a, const void *b)
{
    const struct gen_ev *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs the stream in its current order; returns the sorted fire signatures. */
static char **run_stream(struct fx *x, struct gen_ev *evs, size_t n, int64_t lateness, size_t *nsig)
{
    char **sig;

    start(x, lateness);
    for (size_t i = 0; i < n; i++)
        feed_f(x, evs[i].rule, evs[i].mkey, evs[i].ts, evs[i].seq, VG_F_USER, evs[i].user,
               evs[i].cmd);
    cor_corrstate_flush(x->st);
    assert_int_equal(stats(x).late, 0);
    sig = calloc(x->n + 1, sizeof(*sig));
    assert_non_null(sig);
    for (size_t i = 0; i < x->n; i++) {
        const struct rec *r = &x->recs[i];
        sig[i] = malloc(256);
        assert_non_null(sig[i]);
        snprintf(sig[i], 256, "%s %s %d %u %zu %lld %lld %s", r->corr, r->id, r->is_new, r->count,
                 r->n_events, (long long)r->first, (long long)r->last, r->group);
    }
    qsort(sig, x->n, sizeof(*sig), cmp_str);
    *nsig = x->n;
    return sig;
}

static void free_sig(char **sig, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(sig[i]);
    free(sig);
}

static void test_shuffled_identical(void **state)
{
    struct fx *x = *state;
    enum { N = 600 };
    struct gen_ev *evs = calloc(N, sizeof(*evs));
    char **base, **other;
    size_t nbase, nother, kinds = 0;
    uint64_t rng = 12345;
    const char *const corrs[] = {C_COUNT, C_VC, C_TEMP, C_ORDERED, C_RANGE};

    assert_non_null(evs);
    gen_stream(evs, N);
    base = run_stream(x, evs, N, 30 * S, &nbase);
    for (size_t k = 0; k < VG_ARRAY_SIZE(corrs); k++)
        kinds += count_fires(x, corrs[k], NULL, NULL, NULL) > 0;
    assert_int_equal(kinds, VG_ARRAY_SIZE(corrs)); /* every type fired: the test has teeth */
    for (int round = 0; round < 6; round++) {
        int64_t lateness = round < 4 ? 30 * S : INT64_C(1) << 50;
        /* bounded displacement (< 25 s) under a 30 s bound, or a full shuffle under an
         * unbounded one */
        for (size_t i = 0; i < N; i++)
            evs[i].key = round < 4 ? evs[i].ts + (double)(rng_next(&rng) % 25000) / 1000.0
                                   : (double)(rng_next(&rng) % 1000000);
        qsort(evs, N, sizeof(*evs), cmp_key);
        other = run_stream(x, evs, N, lateness, &nother);
        assert_int_equal(nother, nbase);
        for (size_t i = 0; i < nbase; i++)
            assert_string_equal(other[i], base[i]);
        free_sig(other, nother);
    }
    free_sig(base, nbase);
    free(evs);
}

/* ---- memory --------------------------------------------------------------------------- */

static void test_memory_bounded(void **state)
{
    struct fx *x = *state;
    char user[32];
    size_t max_groups = 0, bytes_mid = 0, max_bytes = 0;
    struct cor_corrstate_stats s;
    const int n = 200000;

    start(x, 5 * S);
    for (int i = 0; i < n; i++) {
        double t = i * 0.01; /* 100 matches a second, 2000 s */
        snprintf(user, sizeof(user), "user%d", (i * 7919) % 1000);
        feed(x, ID_A, 1 + (uint64_t)(i % 4), t, (uint64_t)i + 1, user);
        if (i % 1000 == 999) {
            cor_corrstate_advance(x->st, T0 + (int64_t)(t * (double)S));
            s = stats(x);
            max_groups = VG_MAX(max_groups, s.groups);
            max_bytes = VG_MAX(max_bytes, s.bytes);
            if (i == n / 2 - 1)
                bytes_mid = s.bytes;
        }
    }
    s = stats(x);
    /* ~65 s of matches live at a time (timespan + lateness): ~6500 items, 1000 users x 4
     * machines x 3 correlations at most */
    assert_true(max_groups <= 12000);
    assert_true(s.bytes < 2 * bytes_mid + 65536);
    assert_true(max_bytes < 16u << 20);
    cor_corrstate_advance(x->st, T0 + 10000 * S);
    s = stats(x);
    assert_int_equal(s.groups, 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.machines, 0);
    assert_int_equal(s.bytes, 0);
    assert_true(count_fires(x, C_COUNT, NULL, NULL, NULL) > 0);
}

/* ---- process trees -------------------------------------------------------------------- */

static Vigil__ProcessRef mkref(uint32_t pid, int64_t ctime, const char *image, const char *cmd)
{
    Vigil__ProcessRef r;

    vigil__process_ref__init(&r);
    r.pid = pid;
    r.creation_time_us = ctime;
    r.image = (char *)image;
    r.command_line = (char *)cmd;
    return r;
}

static cor_proc *spawn(cor_proctab *pt, uint32_t ppid, int64_t pct, uint32_t pid, int64_t ct,
                       const char *image, const char *cmd)
{
    Vigil__ProcessRef r = mkref(pid, ct, image, cmd);
    cor_proc *p = cor_proctab_upsert(pt, 1, &r, ppid, pct, ct);

    assert_non_null(p);
    return p;
}

static void test_tree_label(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    char buf[256];
    cor_proc *find, *script, *sub;

    (void)state;
    spawn(pt, 0, 0, 1, T0, "/usr/lib/systemd/systemd", "/sbin/init");
    spawn(pt, 1, T0, 100, T0 + 1, "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D");
    spawn(pt, 100, T0 + 1, 200, T0 + 2, "/usr/bin/bash", "-bash");
    script = spawn(pt, 200, T0 + 2, 300, T0 + 3, "/usr/bin/bash", "bash /tmp/s.sh");
    find = spawn(pt, 300, T0 + 3, 400, T0 + 4, "/usr/bin/find", "find / -name id_rsa");
    sub = spawn(pt, 400, T0 + 4, 500, T0 + 5, "/usr/bin/xargs", "xargs grep KEY");
    assert_true(cor_corr_tree_label(find, buf, sizeof(buf)));
    assert_string_equal(buf, "/usr/bin/bash[300]@1767225600000003");
    assert_true(cor_corr_tree_label(sub, buf, sizeof(buf)));
    assert_string_equal(buf, "/usr/bin/bash[300]@1767225600000003");
    assert_true(cor_corr_tree_label(script, buf, sizeof(buf)));
    assert_string_equal(buf, "/usr/bin/bash[300]@1767225600000003");
    assert_true(cor_corr_parent_label(sub, buf, sizeof(buf)));
    assert_string_equal(buf, "/usr/bin/find[400]@1767225600000004");
    /* an interactive shell is its own root; unknown parents stop the climb */
    spawn(pt, 77, T0, 600, T0 + 6, "/usr/bin/bash", "bash -i");
    assert_true(cor_corr_tree_label(cor_proctab_get(pt, 1, 600, T0 + 6), buf, sizeof(buf)));
    assert_string_equal(buf, "/usr/bin/bash[600]@1767225600000006");
    assert_false(cor_corr_parent_label(cor_proctab_get(pt, 1, 600, T0 + 6), buf, sizeof(buf)));
    assert_string_equal(buf, "");
    assert_false(cor_corr_tree_label(NULL, buf, sizeof(buf)));
    cor_proctab_destroy(pt);
}

/* ---- the built-in Linux test correlation, through the Sigma engine -------------------- */

struct lnx_ctx {
    cor_corrstate *st;
    struct cor_corr_match *m;
    unsigned base_hits;
};

static void lnx_match(void *ctx, const struct cor_rule_info *rule)
{
    struct lnx_ctx *c = ctx;

    c->base_hits++;
    cor_corrstate_on_match(c->st, rule->id, c->m);
}

/* Runs the reference script's commands (bench/sim.c) under a new script process. */
static void lnx_run(cor_ruleset *rs, cor_scratch *sc, cor_proctab *pt, struct lnx_ctx *c,
                    uint32_t script_pid, int64_t t)
{
    static const char *const kids[][2] = {
        {"/usr/bin/find", "find / -name \"*.pem\""},
        {"/usr/bin/find", "find / -name id_rsa"},
        {"/usr/bin/grep", "grep -r \"PRIVATE KEY\" /home"},
        {"/usr/bin/ls", "ls -la /etc/shadow"},
        {"/usr/bin/find", "find / -name \"*.kdbx\""},
        {"/usr/bin/cat", "cat /root/.aws/credentials"},
        {"/usr/bin/find", "find / -name \"*.key\" -path \"*ssl*\""},
        {"/usr/bin/grep", "grep -rl \"password\" /etc /home"},
    };

    spawn(pt, 200, T0 + 2, script_pid, t, "/usr/bin/bash", "bash /tmp/mde_linux_edr_diy.sh");
    for (size_t k = 0; k < VG_ARRAY_SIZE(kids); k++) {
        int64_t ct = t + (int64_t)(k + 1) * 100000;
        cor_proc *p =
            spawn(pt, script_pid, t, script_pid + 1 + (uint32_t)k, ct, kids[k][0], kids[k][1]);
        struct vg_evview v;
        struct cor_corr_match m;

        memset(&v, 0, sizeof(v));
        v.cat = VG_CAT_PROCESS_CREATION;
        v.os = VIGIL__OS__OS_LINUX;
        v.ts_us = ct;
        v.f[VG_F_IMAGE].p = kids[k][0];
        v.f[VG_F_IMAGE].n = strlen(kids[k][0]);
        v.f[VG_F_COMMAND_LINE].p = kids[k][1];
        v.f[VG_F_COMMAND_LINE].n = strlen(kids[k][1]);
        memset(&m, 0, sizeof(m));
        m.mkey = 1;
        m.tenant = "t1";
        m.machine = "lnx-1";
        m.view = &v;
        m.ts_us = ct;
        m.seq = (uint64_t)ct;
        m.proc = p;
        c->m = &m;
        cor_rules_eval(rs, sc, &v, lnx_match, c);
    }
}

static void test_linux_reference_rule(void **state)
{
    struct fx *x = *state;
    const char *path = VG_SOURCE_DIR "/rules/vigil_linux_sensitive_enum_corr.yml";
    const char *dirs[] = {path};
    struct cor_load_summary rsum;
    struct cor_corr_load_summary csum;
    cor_ruleset *rs = NULL;
    cor_corrset *cs = NULL;
    cor_proctab *pt = cor_proctab_new(0);
    cor_scratch *sc;
    struct lnx_ctx c = {0};
    const struct cor_rule_info *ri;
    char err[256] = "";

    assert_int_equal(cor_ruleset_load(dirs, 1, &rs, &rsum, err, sizeof(err)), 0);
    assert_int_equal(rsum.loaded, 1);
    assert_int_equal(rsum.correlations, 1);
    assert_int_equal(cor_corrset_load(dirs, 1, &cs, &csum, err, sizeof(err)), 0);
    assert_int_equal(csum.loaded, 1);
    ri = cor_corrset_rule(cs, 0);
    assert_string_equal(ri->title, "Enumeration of files with sensitive data");
    assert_int_equal(ri->severity, VIGIL__SEVERITY__SEVERITY_LOW);
    assert_int_equal(ri->category, VIGIL__CATEGORY__CATEGORY_DISCOVERY);
    assert_string_equal(ri->techniques[0], "T1083");
    assert_true(cor_corrset_suppresses(cs, cor_ruleset_rule(rs, 0)->id));
    sc = cor_scratch_new(rs);
    assert_non_null(sc);

    /* swap the fixture's set for the real one */
    cor_corrstate_destroy(x->st);
    x->st = NULL;
    x->n = 0;
    c.st = cor_corrstate_new(cs, -1, on_fire, x);
    assert_non_null(c.st);
    spawn(pt, 0, 0, 1, T0, "/usr/lib/systemd/systemd", "/sbin/init");
    spawn(pt, 1, T0, 100, T0 + 1, "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D");
    spawn(pt, 100, T0 + 1, 200, T0 + 2, "/usr/bin/bash", "-bash");
    lnx_run(rs, sc, pt, &c, 1000, T0 + 10 * S);
    assert_int_equal(c.base_hits, 6);             /* six of the eight commands match the step */
    assert_int_equal(x->n, 0);                    /* held for the lateness bound */
    lnx_run(rs, sc, pt, &c, 2000, T0 + 1200 * S); /* the script again, 20 minutes later */
    cor_corrstate_flush(c.st);
    /* once per run, not once per command: the first fire holds the first two commands,
     * each later command updates the same alert */
    assert_int_equal(x->n, 10);
    size_t nnew = 0;
    for (size_t i = 0; i < x->n; i++) {
        bool run1 = strstr(x->recs[i].group, "[1000]") != NULL;
        nnew += x->recs[i].is_new;
        assert_string_equal(x->recs[i].id, x->recs[run1 ? 0 : 5].id);
    }
    assert_int_equal(nnew, 2);
    assert_true(x->recs[0].is_new && x->recs[5].is_new);
    assert_int_equal(x->recs[0].n_events, 2);
    assert_int_equal(x->recs[4].count, 6);
    assert_int_equal(x->recs[9].count, 6);
    assert_string_equal(x->recs[0].group,
                        "vigil.process_tree=/usr/bin/bash[1000]@1767225610000000");
    assert_string_not_equal(x->recs[0].id, x->recs[5].id);
    cor_corrstate_destroy(c.st);
    cor_scratch_destroy(sc);
    cor_proctab_destroy(pt);
    cor_corrset_unref(cs);
    cor_ruleset_unref(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_event_count_sliding),
        cmocka_unit_test(test_episodes),
        cmocka_unit_test(test_range_condition),
        cmocka_unit_test(test_value_count_distinct),
        cmocka_unit_test(test_temporal),
        cmocka_unit_test(test_ordered_event_time),
        cmocka_unit_test(test_late),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_shuffled_identical),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_tree_label),
        cmocka_unit_test(test_linux_reference_rule),
    };

    vg_log_set_level(VG_LOG_ERROR);
    return cmocka_run_group_tests(tests, setup, teardown);
}
