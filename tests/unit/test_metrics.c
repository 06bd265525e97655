/*
 * test_metrics.c - the Prometheus registry: family grouping (HELP/TYPE once), label and
 * HELP escaping, value formatting, rejected samples, and vigil's own families.
 */
#include "vgtest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static char *render(api_metrics *m)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(api_metrics_render(m, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- grouping ---------------------------------------------------------------------- */

static void collect_a(void *ctx, struct api_metrics_out *out)
{
    struct api_label l = {"shard", "0"};

    assert_int_equal(api_metrics_add_u64(out, "x_total", API_COUNTER, "X things.", &l, 1, 5), 0);
    assert_int_equal(api_metrics_add(out, "y", API_GAUGE, "Y level.", NULL, 0, 2.5), 0);
}

static void collect_b(void *ctx, struct api_metrics_out *out)
{
    struct api_label l = {"shard", "1"};

    /* Same family from another collector, after another family: must join x_total. */
    assert_int_equal(api_metrics_add_u64(out, "x_total", API_COUNTER, "ignored", &l, 1, 7), 0);
}

static void test_grouping(void **state)
{
    api_metrics *m = api_metrics_new();
    char *text;

    assert_non_null(m);
    assert_int_equal(api_metrics_register(m, collect_a, NULL), 0);
    assert_int_equal(api_metrics_register(m, collect_b, NULL), 0);
    text = render(m);
    assert_string_equal(text, "# HELP x_total X things.\n"
                              "# TYPE x_total counter\n"
                              "x_total{shard=\"0\"} 5\n"
                              "x_total{shard=\"1\"} 7\n"
                              "# HELP y Y level.\n"
                              "# TYPE y gauge\n"
                              "y 2.5\n"
                              "# HELP vigil_metrics_rejected_total Metric samples dropped for a "
                              "bad name or a type clash.\n"
                              "# TYPE vigil_metrics_rejected_total counter\n"
                              "vigil_metrics_rejected_total 0\n");
    vg_free(text);
    /* A second scrape starts from nothing: no samples carried over. */
    text = render(m);
    assert_int_equal(count(text, "x_total{"), 2);
    vg_free(text);
    api_metrics_destroy(m);
}

/* ---- escaping ---------------------------------------------------------------------- */

static void collect_escape(void *ctx, struct api_metrics_out *out)
{
    struct api_label l[2] = {{"path", "C:\\Windows\\\"x\"\nnext"}, {"plain", "ok"}};

    assert_int_equal(
        api_metrics_add(out, "esc", API_GAUGE, "Help with \\ and\nnewline \"q\".", l, 2, 1), 0);
}

static void test_escaping(void **state)
{
    api_metrics *m = api_metrics_new();
    char *text;

    assert_int_equal(api_metrics_register(m, collect_escape, NULL), 0);
    text = render(m);
    /* HELP escapes backslash and newline but not quotes; label values all three. */
    assert_non_null(strstr(text, "# HELP esc Help with \\\\ and\\nnewline \"q\".\n"));
    assert_non_null(
        strstr(text, "esc{path=\"C:\\\\Windows\\\\\\\"x\\\"\\nnext\",plain=\"ok\"} 1\n"));
    /* Every line is either a comment or a sample: the newline in the value did not split. */
    for (char *line = text; *line; line = strchr(line, '\n') + 1)
        assert_true(line[0] == '#' || strncmp(line, "esc{", 4) == 0 ||
                    strncmp(line, "vigil_metrics_rejected_total ", 29) == 0);
    vg_free(text);
    api_metrics_destroy(m);
}

/* ---- values and rejections --------------------------------------------------------- */

static void collect_values(void *ctx, struct api_metrics_out *out)
{
    static const struct {
        const char *v;
        double d;
    } vals[] = {{"a", 0.1}, {"b", 1e300}, {"c", 3}, {"d", -0.5}, {"e", 123456789012.0}};
    struct api_label l = {"k", NULL};

    for (size_t i = 0; i < VG_ARRAY_SIZE(vals); i++) {
        l.value = vals[i].v;
        assert_int_equal(api_metrics_add(out, "v", API_GAUGE, "values", &l, 1, vals[i].d), 0);
    }
    l.value = "nan";
    api_metrics_add(out, "v", API_GAUGE, "values", &l, 1, NAN);
    l.value = "pinf";
    api_metrics_add(out, "v", API_GAUGE, "values", &l, 1, INFINITY);
    l.value = "ninf";
    api_metrics_add(out, "v", API_GAUGE, "values", &l, 1, -INFINITY);
    assert_int_equal(api_metrics_add_u64(out, "big_total", API_COUNTER, "big", NULL, 0, UINT64_MAX),
                     0);
    /* Rejections: bad metric name, bad label name, reserved label, NULL value, type clash. */
    assert_int_equal(api_metrics_add(out, "9bad", API_GAUGE, "", NULL, 0, 1), -VG_EINVAL);
    assert_int_equal(api_metrics_add(out, "bad-name", API_GAUGE, "", NULL, 0, 1), -VG_EINVAL);
    l = (struct api_label){"a-b", "x"};
    assert_int_equal(api_metrics_add(out, "v", API_GAUGE, "", &l, 1, 1), -VG_EINVAL);
    l = (struct api_label){"__name", "x"};
    assert_int_equal(api_metrics_add(out, "v", API_GAUGE, "", &l, 1, 1), -VG_EINVAL);
    l = (struct api_label){"k", NULL};
    assert_int_equal(api_metrics_add(out, "v", API_GAUGE, "", &l, 1, 1), -VG_EINVAL);
    assert_int_equal(api_metrics_add(out, "v", API_COUNTER, "", NULL, 0, 1), -VG_EINVAL);
    /* A colon is allowed in metric names (recording rules). */
    assert_int_equal(api_metrics_add(out, "job:v:rate", API_GAUGE, "r", NULL, 0, 1), 0);
}

static void test_values(void **state)
{
    api_metrics *m = api_metrics_new();
    char *text;

    assert_int_equal(api_metrics_register(m, collect_values, NULL), 0);
    text = render(m);
    assert_non_null(strstr(text, "v{k=\"a\"} 0.1\n"));
    assert_non_null(strstr(text, "v{k=\"b\"} 1e+300\n"));
    assert_non_null(strstr(text, "v{k=\"c\"} 3\n"));
    assert_non_null(strstr(text, "v{k=\"d\"} -0.5\n"));
    assert_non_null(strstr(text, "v{k=\"e\"} 123456789012\n"));
    assert_non_null(strstr(text, "v{k=\"nan\"} NaN\n"));
    assert_non_null(strstr(text, "v{k=\"pinf\"} +Inf\n"));
    assert_non_null(strstr(text, "v{k=\"ninf\"} -Inf\n"));
    assert_non_null(strstr(text, "big_total 18446744073709551615\n"));
    assert_non_null(strstr(text, "job:v:rate 1\n"));
    assert_null(strstr(text, "9bad"));
    assert_null(strstr(text, "a-b"));
    assert_non_null(strstr(text, "\nvigil_metrics_rejected_total 6\n"));
    /* The rejected samples left no partial line behind: v has exactly its 8 samples. */
    assert_int_equal(count(text, "\nv{"), 8);
    assert_int_equal(count(text, "# TYPE v gauge\n"), 1);
    vg_free(text);
    api_metrics_destroy(m);
}

/* ---- vigil's families -------------------------------------------------------------- */

static void collect_vigil(void *ctx, struct api_metrics_out *out)
{
    struct ing_stats st = {0};
    struct cor_shard_stats sh[2] = {{0}};
    struct api_partition_lag lags[3] = {{0, 10}, {1, 0}, {2, 12345}};
    struct api_rule_counter rules[2] = {
        {"1c2b8f3e-0000-4000-8000-000000000001", "Suspicious \"whoami\" run", 42, 0.125},
        {"r2", "Back\\slash", 0, 0}};
    struct api_vigil_metrics v = {0};

    st.messages = 100;
    st.bytes = 34800;
    st.events = 9000;
    st.duplicates = 25;
    st.dead_letters = 3;
    st.alerts[0] = 1;
    st.alerts[3] = 4;
    st.lost_upstream = 7;
    st.last_event_us = INT64_C(1767225600) * VG_US_PER_SEC + 500000;
    st.partitions = 3;
    st.producer_waits = 11;
    sh[0].in_depth = 17;
    sh[1].in_depth = 0;
    sh[1].machines = 9;
    v.ing = &st;
    v.shards = sh;
    v.nshards = 2;
    v.lags = lags;
    v.nlags = 3;
    v.rules = rules;
    v.nrules = 2;
    v.have_storage = true;
    v.storage_bytes = 1048576;
    api_metrics_vigil(out, &v);
}

static void test_vigil_families(void **state)
{
    static const char *const expect[] = {
        "vigil_events_total{stage=\"consumed\"} 9025\n",
        "vigil_events_total{stage=\"accepted\"} 9000\n",
        "vigil_events_total{stage=\"duplicate\"} 25\n",
        "vigil_messages_total 100\n",
        "vigil_dead_letters_total 3\n",
        "vigil_alerts_total{severity=\"Informational\"} 1\n",
        "vigil_alerts_total{severity=\"Low\"} 0\n",
        "vigil_alerts_total{severity=\"High\"} 4\n",
        "vigil_lost_upstream_total 7\n",
        "vigil_producer_queue_waits_total 11\n",
        "vigil_last_event_timestamp_seconds 1767225600.5\n",
        "vigil_partitions_assigned 3\n",
        "vigil_ring_depth{shard=\"0\"} 17\n",
        "vigil_ring_depth{shard=\"1\"} 0\n",
        "vigil_shard_machines{shard=\"1\"} 9\n",
        "vigil_consumer_lag{partition=\"2\"} 12345\n",
        "vigil_storage_bytes 1048576\n",
        "vigil_rule_hits_total{rule_id=\"1c2b8f3e-0000-4000-8000-000000000001\",title="
        "\"Suspicious \\\"whoami\\\" run\"} 42\n",
        "vigil_rule_hits_total{rule_id=\"r2\",title=\"Back\\\\slash\"} 0\n",
        "vigil_rule_cpu_seconds_total{rule_id=\"1c2b8f3e-0000-4000-8000-000000000001\"} 0.125\n",
    };
    static const char *const families[] = {
        "vigil_events_total counter",    "vigil_alerts_total counter",
        "vigil_ring_depth gauge",        "vigil_consumer_lag gauge",
        "vigil_rule_hits_total counter", "vigil_rule_cpu_seconds_total counter",
        "vigil_storage_bytes gauge",     "vigil_last_event_timestamp_seconds gauge",
    };
    api_metrics *m = api_metrics_new();
    char *text, *copy, *save = NULL;
    char seen[64][128];
    size_t nseen = 0;

    assert_int_equal(api_metrics_register(m, collect_vigil, NULL), 0);
    text = render(m);
    for (size_t i = 0; i < VG_ARRAY_SIZE(expect); i++) {
        if (strstr(text, expect[i]) == NULL)
            fail_msg("missing line: %s\nin:\n%s", expect[i], text);
    }
    for (size_t i = 0; i < VG_ARRAY_SIZE(families); i++) {
        char t[160];

        snprintf(t, sizeof(t), "# TYPE %s\n", families[i]);
        assert_int_equal(count(text, t), 1);
    }
    /* Line by line: every sample's family had its TYPE line first, and every family's
     * TYPE appears once (the samples of one family are contiguous). */
    copy = strdup(text);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char fam[128];

        if (strncmp(line, "# TYPE ", 7) == 0) {
            sscanf(line + 7, "%127s", fam);
            for (size_t i = 0; i < nseen; i++)
                assert_string_not_equal(seen[i], fam);
            assert_true(nseen < 64);
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", fam);
            continue;
        }
        if (line[0] == '#')
            continue;
        snprintf(fam, sizeof(fam), "%.*s", (int)strcspn(line, "{ "), line);
        assert_true(nseen > 0);
        assert_string_equal(seen[nseen - 1], fam);
    }
    free(copy);
    vg_free(text);
    api_metrics_destroy(m);
}

/* Allocation failures while rendering give -VG_ENOMEM and leak nothing. */
static void test_render_oom(void **state)
{
    api_metrics *m = api_metrics_new();
    int ok = 0, failed = 0;

    assert_int_equal(api_metrics_register(m, collect_vigil, NULL), 0);
    for (long nth = 1; nth < 200; nth++) {
        char *text = NULL;
        size_t len;
        int rc;

        vg_alloc_fail_after(nth, false);
        rc = api_metrics_render(m, &text, &len);
        vg_alloc_fail_after(0, false);
        if (rc == 0) {
            ok++;
            vg_free(text);
        } else {
            assert_int_equal(rc, -VG_ENOMEM);
            assert_null(text);
            failed++;
        }
    }
    assert_true(failed > 0);
    assert_true(ok > 0);
    api_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grouping),   cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_values),     cmocka_unit_test(test_vigil_families),
        cmocka_unit_test(test_render_oom),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
