/*
 * test_corr_spec.c - the Sigma correlation specification's own examples and test rules
 * (shared/data/sigma/correlation): what loads, what is skipped and why (unsupported types,
 * missing ids, references to rules that are not there); then the spec's event_count and
 * value_count test rules, unmodified, run against the base rules they reference (given
 * here, since the spec does not ship them). The spec files carry no events or expected
 * results, so the events and expectations are this test's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "corr.h"
#include "vg.h"

#define S       INT64_C(1000000)
#define T0      (INT64_C(1767225600) * S)
#define FAILED  "5638f7c0-ac70-491d-8465-2a65075e0d86"
#define SPEC_EC "0e95725d-7320-415d-80f7-004da920fc11"
#define SPEC_VC "0e95725d-7320-415d-80f7-004da920fc12"

static void load(const char *const *dirs, size_t n, cor_corrset **cs,
                 struct cor_corr_load_summary *sum)
{
    char err[256] = "";

    assert_int_equal(cor_corrset_load(dirs, n, cs, sum, err, sizeof(err)), 0);
    assert_non_null(*cs);
}

static void test_spec_examples(void **state)
{
    char *dir = vgt_shared("sigma/correlation/spec_examples");
    const char *dirs[] = {dir};
    struct cor_corr_load_summary sum;
    cor_corrset *cs = NULL;

    (void)state;
    load(dirs, 1, &cs, &sum);
    assert_int_equal(sum.files, 9);
    assert_int_equal(sum.correlations, 9);
    /* none loads: each references rules the examples do not define (by id, or by a name
     * whose document has no id), lacks an id, lacks a type, or is a metric type */
    assert_int_equal(sum.loaded, 0);
    assert_int_equal(sum.skipped, 9);
    assert_int_equal(sum.unsupported, 3); /* value_sum, value_avg, value_percentile */
    assert_int_equal(sum.names, 2);       /* example_13's internal_error, new_network_connection */
    assert_int_equal(cor_corrset_count(cs), 0);
    cor_corrset_unref(cs);
    free(dir);
}

static void test_spec_tests_alone(void **state)
{
    char *dir = vgt_shared("sigma/correlation/spec_tests");
    const char *dirs[] = {dir};
    struct cor_corr_load_summary sum;
    cor_corrset *cs = NULL;

    (void)state;
    load(dirs, 1, &cs, &sum);
    assert_int_equal(sum.files, 8);
    assert_int_equal(sum.correlations, 8);
    assert_int_equal(sum.loaded, 0);
    assert_int_equal(sum.skipped, 8);
    assert_int_equal(sum.unsupported, 3);
    cor_corrset_unref(cs);
    free(dir);
}

/* The base rules the spec's tests reference, which the spec does not ship. */
static const char base_yml[] =
    "title: Failed logon\nid: " FAILED "\nname: failed_login\n"
    "logsource: {product: windows, service: security}\n"
    "detection: {sel: {EventID: 4625}, condition: sel}\n"
    "---\ntitle: recon a\nid: 30000000-0000-4000-8000-00000000000a\nname: recon_cmd_a\n"
    "logsource: {category: process_creation, product: windows}\n"
    "detection: {sel: {Image|endswith: whoami.exe}, condition: sel}\n";

struct fires {
    unsigned n, nnew;
    char last_id[33];
    uint32_t last_count;
    char group[256];
    char corr[64];
};

static void on_fire(void *ctx, const struct cor_corr_fire *f)
{
    struct fires *fs = ctx;
    size_t off = 0;

    fs->n++;
    fs->nnew += f->is_new;
    memcpy(fs->last_id, f->id, 33);
    fs->last_count = f->count;
    snprintf(fs->corr, sizeof(fs->corr), "%s", f->rule->id);
    for (size_t i = 0; i < f->n_group_by; i++)
        off += (size_t)snprintf(fs->group + off, sizeof(fs->group) - off, "%s%s=%s", i ? "," : "",
                                f->group_by[i].key, f->group_by[i].value);
}

/* A failed logon from computer/workstation/user, with the fields where imported Windows
 * events carry them (extra, by original name). */
static void logon(cor_corrstate *st, int64_t ts, uint64_t seq, const char *computer, const char *ws,
                  const char *user)
{
    Vigil__KeyValue kv[3], *kvp[3];
    Vigil__Event ev = VIGIL__EVENT__INIT;
    struct vg_evview v;
    struct cor_corr_match m;
    const char *keys[3] = {"ComputerName", "WorkstationName", "User"};
    const char *vals[3] = {computer, ws, user};

    for (int i = 0; i < 3; i++) {
        vigil__key_value__init(&kv[i]);
        kv[i].key = (char *)keys[i];
        kv[i].value = (char *)vals[i];
        kvp[i] = &kv[i];
    }
    /* The fields as an imported Security event carries them: in extra (User has a typed
     * home, which the view fills from extra). */
    ev.ts_us = ts;
    ev.seq = seq;
    ev.extra = kvp;
    ev.n_extra = 3;
    vg_evview_build(&v, NULL, &ev);
    v.cat = VG_CAT_LOGON;
    memset(&m, 0, sizeof(m));
    m.mkey = 7;
    m.tenant = "t";
    m.machine = "dc-1";
    m.view = &v;
    m.ts_us = ts;
    m.seq = seq;
    cor_corrstate_on_match(st, FAILED, &m);
}

static void test_spec_tests_run(void **state)
{
    char *spec = vgt_shared("sigma/correlation/spec_tests");
    char *tmp = vgt_tmpdir("corrspec");
    const char *dirs[] = {spec, tmp};
    struct cor_corr_load_summary sum;
    cor_corrset *cs = NULL;
    cor_corrstate *st;
    struct fires fs;
    char user[32];

    (void)state;
    vgt_write_file(tmp, "base.yml", base_yml);
    load(dirs, 2, &cs, &sum);
    /* event_count.yml and value_count.yml load; event_count_ecs.yml repeats event_count's
     * id; temporal*.yml have no id; three metric types are unsupported */
    assert_int_equal(sum.loaded, 2);
    assert_int_equal(sum.skipped, 6);
    assert_int_equal(sum.unsupported, 3);
    assert_non_null(cor_corrset_find(cs, SPEC_EC));
    assert_non_null(cor_corrset_find(cs, SPEC_VC));
    assert_true(cor_corrset_suppresses(cs, FAILED));

    /* event_count: 100 failed logons on one computer within an hour (gte: 100) */
    memset(&fs, 0, sizeof(fs));
    st = cor_corrstate_new(cs, 0, on_fire, &fs);
    assert_non_null(st);
    for (int i = 0; i < 99; i++)
        logon(st, T0 + i * 30 * S, (uint64_t)i + 1, "WS1", "w", "alice");
    assert_int_equal(fs.n, 0);
    logon(st, T0 + 99 * 30 * S, 100, "WS1", "w", "alice");
    assert_int_equal(fs.n, 1);
    assert_string_equal(fs.corr, SPEC_EC);
    assert_int_equal(fs.last_count, 100);
    assert_string_equal(fs.group, "ComputerName=WS1");
    /* 100 spread over more than an hour on another computer: no window holds them all */
    for (int i = 0; i < 100; i++)
        logon(st, T0 + 10000 * S + i * 37 * S, (uint64_t)i + 200, "WS2", "w", "bob");
    assert_int_equal(fs.n, 1);
    cor_corrstate_destroy(st);

    /* value_count: 100 distinct users per (computer, workstation) in a day */
    memset(&fs, 0, sizeof(fs));
    st = cor_corrstate_new(cs, 0, on_fire, &fs);
    assert_non_null(st);
    for (int i = 0; i < 150; i++) {
        snprintf(user, sizeof(user), "user%d", i % 99); /* 99 distinct: never 100 */
        logon(st, T0 + i * 60 * S, (uint64_t)i + 1, "SRV", "kiosk", user);
    }
    assert_int_equal(fs.n, 0); /* and event_count: 150 in 2.5 h, never 100 in an hour */
    snprintf(user, sizeof(user), "user-new");
    logon(st, T0 + 150 * 60 * S, 151, "SRV", "kiosk", user);
    assert_int_equal(fs.n, 1);
    assert_int_equal(fs.nnew, 1);
    assert_int_equal(fs.last_count, 151);
    assert_string_equal(fs.corr, SPEC_VC);
    assert_string_equal(fs.group, "ComputerName=SRV,WorkstationName=kiosk");
    cor_corrstate_destroy(st);

    cor_corrset_unref(cs);
    vgt_rmtree(tmp);
    free(tmp);
    free(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_spec_tests_alone),
        cmocka_unit_test(test_spec_tests_run),
    };

    vg_log_set_level(VG_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
