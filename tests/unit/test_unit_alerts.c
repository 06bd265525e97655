/*
 * test_unit_alerts.c - a shard's unit holds each alert once, in its newest state, however
 * many alerts it holds (a replay's one unit holds every alert of the run: the shard finds
 * an alert being updated through an index, not a scan), and forgets them at the barrier:
 * an update after it travels in the next unit as an update.
 *
 * THREAD SAFETY: single-threaded; the shard runs on the test thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "correlate.h"
#include "rules.h"

#define T0       (INT64_C(1789999980) * VG_US_PER_SEC)
#define NPARENTS 2000

static const char rule_yaml[] = "title: Every child of a parent\n"
                                "id: 22222222-0000-4000-8000-000000000001\n"
                                "level: low\n"
                                "logsource: {product: windows, category: process_creation}\n"
                                "detection:\n  sel:\n    CommandLine|contains: count-me\n"
                                "  condition: sel\n"
                                "vigil: {group: parent}\n";

static int setup(void **state)
{
    const char *const yaml[] = {rule_yaml};

    *state = vgt_rules_shard_new("unitalerts", yaml, 1);
    return 0;
}

static int teardown(void **state)
{
    vgt_rules_shard_free(*state);
    return 0;
}

/* Parent `parent` starts child `child` at ts: a match folded into the parent's alert. */
static void feed(struct vgt_rules_shard *f, uint32_t parent, uint32_t child, int64_t ts)
{
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef pp = VIGIL__PROCESS_REF__INIT, cp = VIGIL__PROCESS_REF__INIT;
    Vigil__ProcessCreated pc = VIGIL__PROCESS_CREATED__INIT;

    pp.pid = parent;
    pp.creation_time_us = T0 - VG_US_PER_SEC;
    pp.image = "C:\\Windows\\System32\\cmd.exe";
    cp.pid = child;
    cp.creation_time_us = ts;
    cp.image = "C:\\Tools\\x.exe";
    cp.command_line = "run count-me";
    pc.process = &cp;
    ev.seq = ++f->seq;
    ev.ts_us = ts;
    ev.actor = &pp;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    ev.process_created = &pc;
    vgt_shard_process_event(f->s, &ev);
}

static int id_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Seals a unit and checks it: NPARENTS alerts, distinct ids, each with `evidence` events,
 * its newest span_us after its first, new or not as asked. */
static void check_unit(struct vgt_rules_shard *f, size_t evidence, int64_t span_us, bool is_new)
{
    struct cor_barrier *b = cor_barrier_new(1, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = b};
    struct cor_unit *u;
    char **ids = calloc(NPARENTS, sizeof(*ids));
    size_t n = 0;

    assert_non_null(ids);
    cor_shard_process(f->s, &in);
    u = cor_shard_pop_unit(f->s);
    assert_non_null(u);
    assert_null(cor_shard_pop_unit(f->s));
    assert_int_equal(u->nalerts, NPARENTS);
    for (size_t i = 0; i < u->nalerts; i++) {
        const Vigil__Alert *al = u->alerts[i].alert;

        assert_int_equal(al->n_evidence, evidence);
        assert_int_equal(al->last_event_us - al->first_event_us, span_us);
        assert_int_equal(u->alerts[i].is_new, is_new);
        ids[n++] = al->id;
    }
    qsort(ids, n, sizeof(*ids), id_cmp);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    free(ids);
    cor_unit_free(u);
}

static void test_many_alerts_once_each(void **state)
{
    struct vgt_rules_shard *f = *state;
    uint32_t child = 10000;

    /* Three rounds over every parent before the barrier: each alert created, then updated
     * twice, interleaved with all the others. */
    for (int r = 0; r < 3; r++)
        for (uint32_t p = 0; p < NPARENTS; p++)
            feed(f, 100 + p, child++, T0 + r * VG_US_PER_SEC + p);
    check_unit(f, 3, 2 * VG_US_PER_SEC, true);
    /* After the barrier the same alerts are updates, once each again. */
    for (int r = 3; r < 5; r++)
        for (uint32_t p = 0; p < NPARENTS; p++)
            feed(f, 100 + p, child++, T0 + r * VG_US_PER_SEC + p);
    check_unit(f, 5, 4 * VG_US_PER_SEC, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_alerts_once_each, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
