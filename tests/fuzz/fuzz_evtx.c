/*
 * fuzz_evtx.c - libFuzzer harness for the EVTX importer (ingest/evtx.c), both layers of it:
 *   1. the input as one record's Event XML, as libevtx renders it, through
 *      ing_evtx_record_json (vigil's own XML-to-schema mapping: System envelope,
 *      EventData/Data[@Name], UserData leaves, hex un-padding, CR escaping, categories);
 *      a record that converts must be a schema object that ing_import_json_event accepts
 *      or refuses with a reason, and a converted event keeps the round trip of import.h;
 *   2. the input as an .evtx file (its first 8 bytes made the "ElfFile\0" magic, so the
 *      mutator spends its time past it) through ing_import_open / ing_import_next: libevtx
 *      parses the header, chunks and records, vigil converts them; a file libevtx refuses
 *      is a clear error, every batch decodes, the counters add up.
 * The seeds are hand-written XML records and EVTX headers made by seeds/gen_seeds.c;
 * nothing from ../shared (tests/fuzz/README.md).
 *
 * THREAD MODEL: libFuzzer's one thread.
 */
#include "fuzz_importer.h"

#define EVTX_MAGIC     "ElfFile"  /* with its NUL: 8 bytes */
#define EVTX_MAX_INPUT (4u << 20) /* a bigger input is not more interesting */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void fuzz_record(const uint8_t *data, size_t size)
{
    vg_arena *a = vg_arena_new(4096);
    struct ing_import_line ln;
    json_t *j = NULL;
    char err[160] = "";
    int rc;

    FUZZ_CHECK(a != NULL);
    rc = ing_evtx_record_json((const char *)data, size, &j);
    FUZZ_CHECK(rc == 1 || rc == -VG_EINVAL);
    if (rc == 1) {
        const json_t *d = json_object_get(j, "data");

        /* What evtx.c promises of its output: the schema's envelope and an object of data. */
        FUZZ_CHECK(json_is_object(j) && json_is_string(json_object_get(j, "ts")));
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(j, "os")), "windows") == 0);
        FUZZ_CHECK(json_is_object(d));
        rc = ing_import_json_event(j, DEFAULT_TENANT, a, &ln, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == -VG_EINVAL);
        if (rc == 0) {
            FUZZ_CHECK(ln.ev != NULL && ln.tenant != NULL && ln.host != NULL);
            fuzz_roundtrip(j, &ln);
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
        json_decref(j);
    }
    vg_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file;

    if (size > EVTX_MAX_INPUT)
        return 0;
    fuzz_record(data, size);
    if (size < sizeof(EVTX_MAGIC))
        return 0;
    file = malloc(size);
    FUZZ_CHECK(file != NULL);
    memcpy(file, data, size);
    memcpy(file, EVTX_MAGIC, sizeof(EVTX_MAGIC));
    fuzz_file(file, size, true);
    free(file);
    return 0;
}
