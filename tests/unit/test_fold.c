/*
 * test_fold.c - per-rule alert folding settings (vigil.window, vigil.suppress): matches of
 * one rule on one process fold into one alert per window of event time; a suppressed
 * rule is counted but raises nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "correlate.h"
#include "rules.h"

#define T0 (INT64_C(1789999980) * VG_US_PER_SEC) /* a minute boundary: 60 divides it */

static const char *const rules_yaml[] = {
    "title: Fold by minute\n"
    "id: 11111111-0000-4000-8000-000000000001\n"
    "level: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    CommandLine|contains: fold-me\n  condition: sel\n"
    "vigil: {group: parent, window: 1m}\n",
    "title: Muted\n"
    "id: 11111111-0000-4000-8000-000000000002\n"
    "level: high\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    CommandLine|contains: mute-me\n  condition: sel\n"
    "vigil: {suppress: true}\n",
};

static int setup(void **state)
{
    *state = vgt_rules_shard_new("fold", rules_yaml, VG_ARRAY_SIZE(rules_yaml));
    return 0;
}

static int teardown(void **state)
{
    vgt_rules_shard_free(*state);
    return 0;
}

/* One batch: a parent (pid 100) starting a child with the command line, at ts. */
static void feed(struct vgt_rules_shard *f, uint64_t seq, int64_t ts, uint32_t pid, const char *cmd)
{
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef parent = VIGIL__PROCESS_REF__INIT, child = VIGIL__PROCESS_REF__INIT;
    Vigil__ProcessCreated pc = VIGIL__PROCESS_CREATED__INIT;

    parent.pid = 100;
    parent.creation_time_us = T0 - VG_US_PER_SEC;
    parent.image = "C:\\Windows\\System32\\cmd.exe";
    child.pid = pid;
    child.creation_time_us = ts;
    child.image = "C:\\Tools\\x.exe";
    child.command_line = (char *)cmd;
    pc.process = &child;
    ev.seq = seq;
    ev.ts_us = ts;
    ev.actor = &parent;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    ev.process_created = &pc;
    vgt_shard_process_event(f->s, &ev);
}

/* The new alerts and folded updates of everything so far, by rule id. */
static void drain(struct vgt_rules_shard *f, const char *rule_id, unsigned *nnew, unsigned *nupd)
{
    struct cor_barrier *b = cor_barrier_new(1, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = b};
    struct cor_unit *u;

    *nnew = *nupd = 0;
    cor_shard_process(f->s, &in);
    while ((u = cor_shard_pop_unit(f->s)) != NULL) {
        for (size_t i = 0; i < u->nalerts; i++) {
            if (strcmp(u->alerts[i].alert->rule_id, rule_id) != 0)
                continue;
            if (u->alerts[i].is_new)
                (*nnew)++;
            else
                (*nupd)++;
        }
        cor_unit_free(u);
    }
}

static void test_window(void **state)
{
    struct vgt_rules_shard *f = *state;
    unsigned nnew, nupd;

    /* Three children of one parent in the first minute: one alert (grouped by parent). */
    feed(f, 1, T0 + 1 * VG_US_PER_SEC, 201, "run fold-me 1");
    feed(f, 2, T0 + 20 * VG_US_PER_SEC, 202, "run fold-me 2");
    feed(f, 3, T0 + 59 * VG_US_PER_SEC, 203, "run fold-me 3");
    drain(f, "11111111-0000-4000-8000-000000000001", &nnew, &nupd);
    assert_int_equal(nnew, 1);
    /* The next minute, and two minutes on: two more alerts. */
    feed(f, 4, T0 + 61 * VG_US_PER_SEC, 204, "run fold-me 4");
    feed(f, 5, T0 + 62 * VG_US_PER_SEC, 205, "run fold-me 5");
    feed(f, 6, T0 + 180 * VG_US_PER_SEC, 206, "run fold-me 6");
    drain(f, "11111111-0000-4000-8000-000000000001", &nnew, &nupd);
    assert_int_equal(nnew, 2);
    assert_int_equal(nupd, 0); /* 4 and 5 fold before the barrier: one state travels */
}

static void test_suppress(void **state)
{
    struct vgt_rules_shard *f = *state;
    unsigned nnew, nupd;
    uint64_t hits, alerts;
    const struct cor_rule_info *ri = NULL;

    feed(f, 10, T0 + 300 * VG_US_PER_SEC, 301, "mute-me now");
    feed(f, 11, T0 + 301 * VG_US_PER_SEC, 302, "mute-me again");
    drain(f, "11111111-0000-4000-8000-000000000002", &nnew, &nupd);
    assert_int_equal(nnew + nupd, 0);
    for (uint32_t i = 0; i < cor_ruleset_count(f->rs); i++)
        if (strcmp(cor_ruleset_rule(f->rs, i)->id, "11111111-0000-4000-8000-000000000002") == 0)
            ri = cor_ruleset_rule(f->rs, i);
    assert_non_null(ri);
    assert_true(ri->suppressed);
    cor_shard_rule_counts(f->s, ri->index, &hits, &alerts);
    assert_int_equal(hits, 2);
    assert_int_equal(alerts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suppress, setup, teardown),
    };

    vg_log_set_level(VG_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
