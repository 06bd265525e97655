/*
 * test_evtx.c - .evtx input (ingest/evtx.c): every SigmaHQ regression case's .evtx against
 * the .jsonl converted from it, field by field, both as the schema's JSON object and
 * through the importer and the rule view; EVTX detection in ing_import_open; corrupt files
 * and records are errors, never crashes.
 */
#include "vgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "evview.h"
#include "import.h"

#define MAX_EV 64

struct mism {
    char name[64];
    unsigned n;
};

struct totals {
    unsigned cases, events, fields, mismatches;
    struct mism m[128];
    size_t nm;
};

static void mism_add(struct totals *t, const char *field, const char *cse, const char *want,
                     const char *got)
{
    size_t i;

    t->mismatches++;
    if (t->mismatches <= 20)
        printf("mismatch %s in %s: want \"%.80s\" got \"%.80s\"\n", field, cse, want,
               got ? got : "(none)");
    for (i = 0; i < t->nm && strcmp(t->m[i].name, field) != 0; i++)
        ;
    if (i == t->nm && t->nm < VG_ARRAY_SIZE(t->m))
        snprintf(t->m[t->nm++].name, sizeof(t->m[0].name), "%s", field);
    if (i < t->nm)
        t->m[i].n++;
}

/* Reads all events of path into arena: batches[i] and events[i]. Returns the count. */
static size_t import_all(const char *path, vg_arena *a, const Vigil__TelemetryBatch **batches,
                         const Vigil__Event **events, struct ing_import_stats *st)
{
    ing_importer *im = NULL;
    Vigil__TelemetryBatch *b;
    char err[256];
    size_t n = 0;
    int k;

    assert_int_equal(ing_import_open(path, "t1", &im, err, sizeof(err)), 0);
    while ((k = ing_import_next(im, a, 1000, &b)) == 1) {
        for (size_t i = 0; i < b->n_events; i++) {
            assert_true(n < MAX_EV);
            batches[n] = b;
            events[n++] = b->events[i];
        }
    }
    assert_int_equal(k, 0);
    ing_import_stats(im, st);
    ing_import_close(im);
    return n;
}

/* The schema JSON of each record, straight from evtx.c. */
static size_t evtx_json_all(const char *path, json_t **out)
{
    ing_evtx *x = NULL;
    char err[256];
    size_t n = 0;
    int k;

    assert_int_equal(ing_evtx_open(path, &x, err, sizeof(err)), 0);
    while ((k = ing_evtx_next(x, &out[n])) == 1)
        assert_true(++n < MAX_EV);
    assert_int_equal(k, 0);
    ing_evtx_close(x);
    return n;
}

static void compare_case(struct totals *t, const char *evtx, const char *jsonl)
{
    static const char *const env[] = {"ts",       "os",        "host",     "provider", "channel",
                                      "event_id", "record_id", "category", "service"};
    const Vigil__TelemetryBatch *eb[MAX_EV], *jb[MAX_EV];
    const Vigil__Event *ee[MAX_EV], *je[MAX_EV];
    json_t *ej[MAX_EV], *lines[MAX_EV];
    struct ing_import_stats est, jst;
    vg_arena *a = vg_arena_new(1 << 16);
    FILE *f = fopen(jsonl, "rb");
    char buf[1 << 16];
    size_t nl = 0, ne, nj, nx;

    assert_non_null(a);
    assert_non_null(f);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        if (buf[0] != '{')
            continue;
        assert_true(nl < MAX_EV);
        lines[nl] = json_loads(buf, 0, NULL);
        assert_non_null(lines[nl]);
        nl++;
    }
    fclose(f);

    ne = import_all(evtx, a, eb, ee, &est);
    nj = import_all(jsonl, a, jb, je, &jst);
    nx = evtx_json_all(evtx, ej);
    assert_int_equal(est.bad_lines, 0);
    assert_int_equal(jst.bad_lines, 0);
    if (ne != nl || nj != nl || nx != nl) {
        printf("count mismatch in %s: evtx %zu, jsonl %zu (%zu imported), json %zu\n", evtx, ne, nl,
               nj, nx);
        t->mismatches++;
    }
    for (size_t i = 0; i < nl && i < ne && i < nj && i < nx; i++) {
        const json_t *data = json_object_get(lines[i], "data"), *val;
        const char *key;
        struct vg_evview ve, vj;

        t->events++;
        /* The schema object evtx.c builds equals the converted line (bar "rec"). */
        for (size_t k = 0; k < VG_ARRAY_SIZE(env); k++) {
            json_t *w = json_object_get(lines[i], env[k]), *g = json_object_get(ej[i], env[k]);
            char *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
            char *gs = g ? json_dumps(g, JSON_ENCODE_ANY) : NULL;

            t->fields++;
            if (ws == NULL || gs == NULL || strcmp(ws, gs) != 0)
                mism_add(t, env[k], evtx, ws ? ws : "(none)", gs);
            free(ws);
            free(gs);
        }
        if (json_object_size(json_object_get(ej[i], "data")) != json_object_size(data))
            mism_add(t, "data-size", evtx, "", "");
        /* And both import to events whose rule view gives the line's values. */
        vg_evview_build(&ve, eb[i], ee[i]);
        vg_evview_build(&vj, jb[i], je[i]);
        assert_int_equal(ee[i]->ts_us, je[i]->ts_us);
        assert_string_equal(eb[i]->machine_id, jb[i]->machine_id);
        assert_int_equal(ve.cat, vj.cat);
        json_object_foreach((json_t *)data, key, val)
        {
            const char *want = json_string_value(val);
            struct vg_str g1, g2;
            char gs[256];

            t->fields++;
            if (!vg_evview_get(&ve, key, &g1)) {
                mism_add(t, key, evtx, want, NULL);
                continue;
            }
            snprintf(gs, sizeof(gs), "%.*s", (int)VG_MIN(g1.n, 255u), g1.p);
            if (g1.n != strlen(want) || memcmp(g1.p, want, g1.n) != 0)
                mism_add(t, key, evtx, want, gs);
            else if (!vg_evview_get(&vj, key, &g2) || g2.n != g1.n || memcmp(g2.p, g1.p, g1.n) != 0)
                mism_add(t, key, jsonl, want, gs);
        }
    }
    for (size_t i = 0; i < nl; i++)
        json_decref(lines[i]);
    for (size_t i = 0; i < nx; i++)
        json_decref(ej[i]);
    vg_arena_destroy(a);
}

static void test_regression_cases(void **state)
{
    char *manifest = vgt_shared("sigma-regression/manifest.jsonl");
    FILE *f = fopen(manifest, "rb");
    struct totals *t = calloc(1, sizeof(*t));
    char buf[8192];

    assert_non_null(f);
    assert_non_null(t);
    while (fgets(buf, sizeof(buf), f) != NULL) {
        json_t *c = json_loads(buf, 0, NULL);
        char rel[1024], *evtx, *jsonl;

        if (c == NULL)
            continue;
        snprintf(rel, sizeof(rel), "sigma-regression/%s",
                 json_string_value(json_object_get(c, "evtx")));
        evtx = vgt_shared(rel);
        snprintf(rel, sizeof(rel), "sigma-regression/%s",
                 json_string_value(json_object_get(c, "jsonl")));
        jsonl = vgt_shared(rel);
        compare_case(t, evtx, jsonl);
        t->cases++;
        free(evtx);
        free(jsonl);
        json_decref(c);
    }
    fclose(f);
    free(manifest);
    printf("evtx vs jsonl: %u cases, %u events, %u fields, %u mismatches\n", t->cases, t->events,
           t->fields, t->mismatches);
    for (size_t i = 0; i < t->nm; i++)
        printf("  %s: %u\n", t->m[i].name, t->m[i].n);
    assert_int_equal(t->cases, 152);
    assert_int_equal(t->events, 166);
    assert_int_equal(t->mismatches, 0);
    free(t);
}

static char *write_tmp(const char *dir, const char *name, const void *p, size_t n)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    FILE *f;

    assert_non_null(path);
    sprintf(path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
    return path;
}

/* A file with the magic but a garbage header is an open error; a real file with its chunk
 * bytes scrambled imports what decodes and counts the rest, without crashing. */
static void test_corrupt(void **state)
{
    char *dir = vgt_tmpdir("evtx"), *p, *src, *data, err[256];
    unsigned char junk[8192];
    ing_importer *im = NULL;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    struct ing_import_stats st;
    json_t *j = NULL;
    size_t len;
    int k;

    assert_non_null(a);
    memset(junk, 0xA5, sizeof(junk));
    memcpy(junk, "ElfFile\0", 8);
    p = write_tmp(dir, "bad.evtx", junk, sizeof(junk));
    assert_true(ing_import_open(p, "t", &im, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "evtx"));
    free(p);

    /* The magic alone. */
    p = write_tmp(dir, "short.evtx", "ElfFile\0", 8);
    assert_true(ing_import_open(p, "t", &im, err, sizeof(err)) < 0);
    free(p);

    src = vgt_shared("sigma-regression/regression_data/rules/windows/builtin/security/"
                     "win_security_explicit_credential_local_logon/"
                     "e3c6d245-7b8f-4e2a-c17f-a9d0e5b38f62.evtx");
    data = vgt_read_file(src, &len);
    assert_non_null(data);
    assert_true(len > 4096 + 1024);
    for (size_t off = 4096 + 512; off < len; off += 7) /* records start after 512 B */
        data[off] ^= 0x5A;
    p = write_tmp(dir, "scrambled.evtx", data, len);
    if (ing_import_open(p, "t", &im, err, sizeof(err)) == 0) {
        while ((k = ing_import_next(im, a, 100, &b)) == 1)
            vg_arena_reset(a);
        assert_true(k == 0 || k == -VG_EIO);
        ing_import_stats(im, &st);
        assert_int_equal(st.events, 0); /* the one record is scrambled */
        ing_import_close(im);
    }
    free(p);
    free(data);
    free(src);

    /* XML that is not an Event, or not XML. */
    assert_int_equal(ing_evtx_record_json("<x/>", 4, &j), -VG_EINVAL);
    assert_int_equal(ing_evtx_record_json("<Event><System>", 15, &j), -VG_EINVAL);
    assert_int_equal(ing_evtx_record_json("\x01\x02", 2, &j), -VG_EINVAL);
    assert_null(j);
    vgt_rmtree(dir);
    free(dir);
    vg_arena_destroy(a);
}

/* The record JSON of a hand-written Event: hex un-padding, CR kept, UserData flattened,
 * 100 ns time cut to microseconds, category from EventType. */
static void test_record_json(void **state)
{
    static const char xml[] =
        "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System>"
        "<Provider Name=\"Microsoft-Windows-Sysmon\"/><EventID>12</EventID>"
        "<TimeCreated SystemTime=\"2024-01-02T03:04:05.1234567Z\"/>"
        "<EventRecordID>77</EventRecordID><Channel>Microsoft-Windows-Sysmon/Operational</Channel>"
        "<Computer>pc1</Computer></System><EventData><Data Name=\"EventType\">DeleteKey</Data>"
        "<Data Name=\"LogonId\">0x00000000000003e7</Data><Data Name=\"Pid\">0x00000010</Data>"
        "<Data Name=\"Id\">0x000000000000000000</Data><Data Name=\"Empty\"/>"
        "<Data Name=\"Cmd\">a\r\nb &amp; c </Data><Data>unnamed</Data></EventData>"
        "<UserData><Ev xmlns=\"u\"><A>1</A><B><C>deep</C></B></Ev></UserData></Event>";
    json_t *j = NULL, *d;

    assert_int_equal(ing_evtx_record_json(xml, strlen(xml), &j), 1);
    assert_string_equal(json_string_value(json_object_get(j, "ts")), "2024-01-02T03:04:05.123456Z");
    assert_string_equal(json_string_value(json_object_get(j, "host")), "pc1");
    assert_string_equal(json_string_value(json_object_get(j, "category")), "registry_delete");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "sysmon");
    assert_int_equal(json_integer_value(json_object_get(j, "event_id")), 12);
    assert_int_equal(json_integer_value(json_object_get(j, "record_id")), 77);
    d = json_object_get(j, "data");
    assert_string_equal(json_string_value(json_object_get(d, "LogonId")), "0x3e7");
    assert_string_equal(json_string_value(json_object_get(d, "Pid")), "0x10");
    /* 20 characters: not libevtx's padding, kept */
    assert_string_equal(json_string_value(json_object_get(d, "Id")), "0x000000000000000000");
    assert_string_equal(json_string_value(json_object_get(d, "Empty")), "");
    assert_string_equal(json_string_value(json_object_get(d, "Cmd")), "a\r\nb & c ");
    assert_string_equal(json_string_value(json_object_get(d, "A")), "1");
    assert_string_equal(json_string_value(json_object_get(d, "C")), "deep");
    assert_int_equal(json_object_size(d), 8);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_json),
        cmocka_unit_test(test_regression_cases),
        cmocka_unit_test(test_corrupt),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
