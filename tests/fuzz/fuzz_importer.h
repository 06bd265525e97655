/*
 * fuzz_importer.h - the importer's properties, shared by the harnesses whose input reaches
 * it (fuzz_import.c: JSON lines; fuzz_evtx.c: EVTX records and files):
 *   - the round-trip guarantee of import.h for one converted line (every string data[K]
 *     comes back from vg_evview_get, no residual), except for keys differing only in case;
 *   - every batch the importer returns packs into a TelemetryBatch that ing_decode decodes;
 *   - the importer's counters add up over a whole file.
 * Included by one harness per executable (static functions).
 *
 * THREAD MODEL: libFuzzer's one thread.
 */
#ifndef VG_FUZZ_IMPORTER_H
#define VG_FUZZ_IMPORTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "evview.h"
#include "fuzz.h"
#include "import.h"
#include "ingest.h"

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define DEFAULT_TENANT "tenant-fuzz"

/* Two data keys that differ only in case cannot both come back (import.h, known limits). */
static bool fuzz_case_twins(const json_t *data)
{
    const char *k1, *k2;
    json_t *v1, *v2;

    json_object_foreach((json_t *)data, k1, v1)
    {
        json_object_foreach((json_t *)data, k2, v2)
        {
            if (k1 != k2 && strcasecmp(k1, k2) == 0)
                return true;
        }
    }
    return false;
}

/* The round-trip guarantee of import.h for one converted line. */
static void fuzz_roundtrip(const json_t *line, const struct ing_import_line *ln)
{
    const json_t *data = json_object_get(line, "data");
    Vigil__TelemetryBatch b;
    Vigil__Event *evp[1] = {ln->ev};
    struct vg_evview v;
    const char *key;
    json_t *val;

    vigil__telemetry_batch__init(&b);
    b.tenant_id = (char *)ln->tenant;
    b.machine_id = (char *)ln->host;
    b.machine_name = (char *)ln->host;
    b.os = ln->os;
    b.n_events = 1;
    b.events = evp;
    vg_evview_build(&v, &b, ln->ev);
    if (!json_is_object(data) || fuzz_case_twins(data))
        return;
    FUZZ_CHECK(ln->residual == 0);
    json_object_foreach((json_t *)data, key, val)
    {
        const char *want = json_string_value(val);
        struct vg_str got;

        if (want == NULL)
            continue; /* wrong types make the line bad; the converter said it was not */
        if (!vg_evview_get(&v, key, &got) || got.n != json_string_length(val) ||
            memcmp(got.p, want, got.n) != 0) {
            fprintf(stderr, "fuzz_import: data[%s] = \"%s\" comes back as \"%.*s\"\n", key, want,
                    got.p ? (int)got.n : 6, got.p ? got.p : "(none)");
            FUZZ_CHECK(!"round trip");
        }
    }
}

/* An imported batch is a TelemetryBatch like a sensor's: it packs and decodes. */
static void fuzz_decodes(const Vigil__TelemetryBatch *b)
{
    size_t len = vigil__telemetry_batch__get_packed_size(b);
    uint8_t *buf = malloc(len ? len : 1);
    vg_arena *a = vg_arena_new(4096);
    struct ing_limits l;
    struct ing_batch ib;
    char reason[256] = "";
    int rc;

    FUZZ_CHECK(buf != NULL && a != NULL);
    vigil__telemetry_batch__pack(b, buf);
    ing_limits_default(&l);
    rc = ing_decode(buf, len, &l, FUZZ_NOW_US, a, &ib, reason, sizeof(reason));
    if (rc == -VG_EDECODE)
        fprintf(stderr, "fuzz_import: an imported batch does not decode: %s\n", reason);
    FUZZ_CHECK(rc == 0 || rc == -VG_EINVAL); /* time limits may refuse old recordings */
    if (rc == 0) {
        FUZZ_CHECK(ib.batch->n_events == b->n_events);
        FUZZ_CHECK(strcmp(ib.batch->tenant_id, b->tenant_id) == 0);
        FUZZ_CHECK(strcmp(ib.batch->machine_id, b->machine_id) == 0);
    }
    vg_arena_destroy(a);
    free(buf);
}

/*
 * The input as a file through ing_import_open / ing_import_next in batches of 3. A JSON-lines
 * file always opens; an EVTX file (by its magic) may be refused as a whole with -VG_EIO
 * when libevtx cannot read its header (refuse_ok).
 */
static void fuzz_file(const uint8_t *data, size_t size, bool refuse_ok)
{
    struct ing_import_stats st;
    ing_importer *im = NULL;
    vg_arena *a = vg_arena_new(4096);
    char path[64], err[256];
    uint64_t events = 0;
    int rc;

    FUZZ_CHECK(a != NULL);
    FUZZ_CHECK(fuzz_memfile(data, size, path, sizeof(path)) == 0);
    rc = ing_import_open(path, DEFAULT_TENANT, &im, err, sizeof(err));
    if (rc == -VG_EIO && refuse_ok) {
        FUZZ_CHECK(err[0] != '\0');
        vg_arena_destroy(a);
        return;
    }
    FUZZ_CHECK(rc == 0);
    for (;;) {
        Vigil__TelemetryBatch *b = NULL;

        rc = ing_import_next(im, a, 3, &b);
        if (rc <= 0)
            break;
        FUZZ_CHECK(b->n_events >= 1 && b->n_events <= 3);
        FUZZ_CHECK(b->tenant_id != NULL && b->machine_id != NULL);
        events += b->n_events;
        fuzz_decodes(b);
        vg_arena_reset(a);
    }
    FUZZ_CHECK(rc == 0);
    ing_import_stats(im, &st);
    FUZZ_CHECK(st.events == events);
    FUZZ_CHECK(st.events + st.bad_lines == st.lines);
    ing_import_close(im);
    vg_arena_destroy(a);
}

#endif /* VG_FUZZ_IMPORTER_H */
