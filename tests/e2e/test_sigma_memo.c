/*
 * test_sigma_memo.c - the memo of recent values (correlate/sigma_int.h) changes no answer
 * on real data: every shared SigmaHQ rule over every recorded event of
 * ../shared/data/telemetry, evaluated once through a scratch that replays what it scanned
 * before and once through one that scans every value, must match the same rules on every
 * event; and the memo must have answered for a good part of the values.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "import.h"
#include "rules.h"
#include "sigma_int.h"
#include "vg.h"

static char **g_files;
static size_t g_nfiles;

static int add_jsonl(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);
    char **p;

    (void)st;
    (void)ftw;
    if (flag != FTW_F || n < 6 || strcmp(path + n - 6, ".jsonl") != 0)
        return 0;
    p = realloc(g_files, (g_nfiles + 1) * sizeof(*p));
    assert_non_null(p);
    g_files = p;
    g_files[g_nfiles] = strdup(path);
    assert_non_null(g_files[g_nfiles]);
    g_nfiles++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_memo_same_answers(void **state)
{
    char *d1 = vgt_shared("sigma/rules");
    char *d2 = vgt_shared("sigma/rules-threat-hunting");
    char *tele = vgt_shared("telemetry");
    const char *dirs[] = {d1, d2};
    struct cor_load_summary sum;
    cor_ruleset *rs = NULL;
    cor_scratch *on, *off;
    vg_arena *arena = vg_arena_new(1 << 20);
    char err[256] = "";
    size_t f, events = 0;
    long matches = 0;

    (void)state;
    assert_non_null(arena);
    assert_int_equal(cor_ruleset_load(dirs, 2, &rs, &sum, err, sizeof(err)), 0);
    assert_true(sum.loaded > 1000);
    on = cor_scratch_new(rs);
    off = cor_scratch_new(rs);
    assert_non_null(on);
    assert_non_null(off);
    off->memo_off = true;
    assert_int_equal(nftw(tele, add_jsonl, 16, FTW_PHYS), 0);
    assert_true(g_nfiles > 100);
    qsort(g_files, g_nfiles, sizeof(*g_files), cmp_str); /* the same stream every run */
    for (f = 0; f < g_nfiles; f++) {
        ing_importer *im = NULL;
        Vigil__TelemetryBatch *b;
        int rc;
        assert_int_equal(ing_import_open(g_files[f], "memo", &im, err, sizeof(err)), 0);
        while ((rc = ing_import_next(im, arena, 256, &b)) == 1) {
            for (size_t i = 0; i < b->n_events; i++) {
                struct vgt_matches a = {0, 0}, c = {0, 0};
                struct vg_evview v;
                int na, nc;
                vg_evview_build(&v, b, b->events[i]);
                na = cor_rules_eval(rs, on, &v, vgt_on_match, &a);
                nc = cor_rules_eval(rs, off, &v, vgt_on_match, &c);
                if (na != nc || a.h != c.h)
                    fail_msg("%s, event %zu of a batch: %d matches with the memo, %d without",
                             g_files[f], i, na, nc);
                matches += na;
                events++;
            }
            vg_arena_reset(arena);
        }
        assert_int_equal(rc, 0);
        ing_import_close(im);
        free(g_files[f]);
    }
    free(g_files);
    g_files = NULL;
    g_nfiles = 0;
    printf("memo: %zu events, %ld matches, %llu values replayed, %llu scanned and kept\n", events,
           matches, (unsigned long long)on->memo_hits, (unsigned long long)on->memo_miss);
    assert_true(events > 30000);
    assert_true(matches > 1000);
    assert_true(on->memo_hits > on->memo_miss); /* it answered for most values it kept */
    assert_int_equal(off->memo_hits + off->memo_miss, 0);
    cor_scratch_destroy(on);
    cor_scratch_destroy(off);
    cor_ruleset_unref(rs);
    vg_arena_destroy(arena);
    free(d1);
    free(d2);
    free(tele);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memo_same_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
