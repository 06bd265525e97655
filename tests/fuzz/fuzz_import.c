/*
 * fuzz_import.c - libFuzzer harness for the JSON-lines importer (`vigil import`), both
 * ways in:
 *   1. line by line through ing_import_json_event, as an embedding caller parses lines
 *      itself; every converted event must keep the importer's documented guarantee
 *      (import.h): for each string value data[K], vg_evview_get(view, K) gives it back byte
 *      for byte, and the converter reports no residual mismatch;
 *   2. the whole input as a file through ing_import_open / ing_import_next in batches of 3;
 *      every batch must pack into a TelemetryBatch that ing_decode can decode (the importer
 *      feeds the same pipeline as the sensors), and the counters must add up.
 * The properties live in fuzz_importer.h, shared with fuzz_evtx.c (the EVTX way in).
 *
 * THREAD MODEL: libFuzzer's one thread.
 */
#include "fuzz_importer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void fuzz_lines(const uint8_t *data, size_t size)
{
    vg_arena *a = vg_arena_new(4096);
    const uint8_t *p = data, *end = data + size;

    FUZZ_CHECK(a != NULL);
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        struct ing_import_line ln;
        json_error_t jerr;
        char err[160] = "";
        json_t *j;
        int rc;

        while (len > 0 && p[len - 1] == '\r')
            len--;
        j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
        p += (nl ? nl + 1 : end) - p;
        if (j == NULL)
            continue;
        rc = ing_import_json_event(j, DEFAULT_TENANT, a, &ln, err, sizeof(err));
        if (rc != 0 && rc != -VG_EINVAL)
            fprintf(stderr, "fuzz_import: ing_import_json_event returned %d (%s): %s\n", rc,
                    vg_strerror(rc), err);
        FUZZ_CHECK(rc == 0 || rc == -VG_EINVAL);
        if (rc == 0) {
            FUZZ_CHECK(ln.ev != NULL && ln.tenant != NULL && ln.host != NULL);
            fuzz_roundtrip(j, &ln);
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
        json_decref(j);
        vg_arena_reset(a);
    }
    vg_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_lines(data, size);
    fuzz_file(data, size, ing_evtx_sniff(data, size));
    return 0;
}
