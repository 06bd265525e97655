/*
 * test_evdec.c - vg_event_decode against protobuf-c's own unpacker: on every record either
 * the one-pass decoder gives up or both give the same event (compared by packing them),
 * and vg_event_unpack always gives protobuf-c's answer.
 *
 * Records: one event of every kind with every field of telemetry.proto set (filled through
 * the descriptors, so a field added to the schema and not to the decoder fails here), the
 * simulator's mix, real recordings through the importer, and those records mutated
 * (truncated, bytes changed, fields repeated or unknown).
 *
 * THREAD MODEL: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evdec.h"
#include "import.h"
#include "sim.h"
#include "telemetry.pb-c.h"
#include "vg.h"
#include "vgtest.h"

static bool same_packed(const Vigil__Event *a, const Vigil__Event *b)
{
    size_t la, lb;
    uint8_t *pa = vgt_pack_event(a, &la), *pb = vgt_pack_event(b, &lb);
    bool same = la == lb && memcmp(pa, pb, la) == 0;

    free(pa);
    free(pb);
    return same;
}

/* Decodes p both ways and checks that they agree; returns whether the one-pass decoder
 * took it. With `canonical`, the record is protobuf-c's packing of an event, which the
 * decoder must take and pack back byte for byte. */
static bool check_record(const uint8_t *p, size_t len, bool canonical)
{
    vg_arena *a = vg_arena_new(4096);
    ProtobufCAllocator alloc;
    Vigil__Event *fast, *ref, *both;
    bool took;

    assert_non_null(a);
    vg_arena_pb_allocator(a, &alloc);
    fast = vg_event_decode(a, p, len);
    ref = vigil__event__unpack(NULL, len, p);
    both = vg_event_unpack(a, &alloc, p, len);
    took = fast != NULL;
    if (fast != NULL) {
        assert_non_null(ref);
        assert_true(same_packed(fast, ref));
        assert_int_equal(fast->n_extra, ref->n_extra);
        assert_int_equal(fast->kind_case, ref->kind_case);
    }
    assert_int_equal(both != NULL, ref != NULL);
    if (ref != NULL)
        assert_true(same_packed(both, ref));
    if (canonical) {
        size_t l2;
        uint8_t *again;

        assert_non_null(fast);
        again = vgt_pack_event(fast, &l2);
        assert_int_equal(l2, len);
        assert_memory_equal(again, p, len);
        free(again);
    }
    vigil__event__free_unpacked(ref, NULL);
    vg_arena_destroy(a);
    return took;
}

/* ---- every field of every message, through the descriptors ------------------------- */

static void fill_message(vg_arena *a, ProtobufCMessage *m, unsigned *ctr, int oneof_pick);

static void *new_message(vg_arena *a, const ProtobufCMessageDescriptor *d, unsigned *ctr)
{
    ProtobufCMessage *m = vg_arena_alloc(a, d->sizeof_message);

    assert_non_null(m);
    d->message_init(m);
    fill_message(a, m, ctr, -1);
    return m;
}

/* Sets every field of m to a value of its own (the counter makes each distinct), and of
 * the oneof only the member numbered oneof_pick. Multi-byte varints and negative int32s
 * are chosen on purpose. */
static void fill_message(vg_arena *a, ProtobufCMessage *m, unsigned *ctr, int oneof_pick)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *slot = (char *)m + f->offset;
        char text[96];
        unsigned c = ++*ctr;

        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if ((int)f->id != oneof_pick)
                continue;
            *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            void **arr = vg_arena_alloc(a, 3 * sizeof(*arr));

            /* telemetry.proto repeats messages only; anything else needs a case here. */
            assert_int_equal(f->type, PROTOBUF_C_TYPE_MESSAGE);
            assert_non_null(arr);
            for (int j = 0; j < 3; j++)
                arr[j] = new_message(a, f->descriptor, ctr);
            *(size_t *)((char *)m + f->quantifier_offset) = 3;
            *(void ***)slot = arr;
            continue;
        }
        switch (f->type) {
        case PROTOBUF_C_TYPE_INT32:
            *(int32_t *)slot = -(int32_t)c;
            break;
        case PROTOBUF_C_TYPE_UINT32:
            *(uint32_t *)slot = 0x80000000u + c;
            break;
        case PROTOBUF_C_TYPE_ENUM:
            *(int *)slot = (int)(c % 3 + 1);
            break;
        case PROTOBUF_C_TYPE_INT64:
            *(int64_t *)slot = (int64_t)c << 40;
            break;
        case PROTOBUF_C_TYPE_UINT64:
            *(uint64_t *)slot = UINT64_C(0xfedcba9876543210) + c;
            break;
        case PROTOBUF_C_TYPE_BOOL:
            *(protobuf_c_boolean *)slot = 1;
            break;
        case PROTOBUF_C_TYPE_STRING:
            snprintf(text, sizeof(text), "%s-%u \xc3\xa9 %s", f->name, c, d->short_name);
            *(char **)slot = vg_arena_strndup(a, text, strlen(text));
            assert_non_null(*(char **)slot);
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            *(void **)slot = new_message(a, f->descriptor, ctr);
            break;
        default:
            /* A type the decoder does not read: it needs a case in evdec.c and here. */
            fail_msg("field %s.%s has type %d", d->name, f->name, (int)f->type);
        }
    }
}

/* The oneof members of Event, by field number. */
static size_t kind_numbers(int *out, size_t cap)
{
    const ProtobufCMessageDescriptor *d = &vigil__event__descriptor;
    size_t n = 0;

    for (unsigned i = 0; i < d->n_fields; i++)
        if ((d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && n < cap)
            out[n++] = (int)d->fields[i].id;
    return n;
}

/* Packs the every-field event of each kind (and one of no kind) into recs. */
static size_t full_records(uint8_t **recs, size_t *lens, size_t cap)
{
    int kinds[32];
    size_t nk = kind_numbers(kinds, 32), n = 0;
    unsigned ctr = 0;

    assert_int_equal(nk, 10);
    for (size_t k = 0; k <= nk && n < cap; k++) {
        vg_arena *a = vg_arena_new(4096);
        Vigil__Event *ev;

        assert_non_null(a);
        ev = vg_arena_alloc(a, sizeof(*ev));
        assert_non_null(ev);
        vigil__event__init(ev);
        fill_message(a, &ev->base, &ctr, k < nk ? kinds[k] : -1);
        recs[n] = vgt_pack_event(ev, &lens[n]);
        n++;
        vg_arena_destroy(a);
    }
    return n;
}

static void test_every_field(void **state)
{
    uint8_t *recs[16];
    size_t lens[16], n = full_records(recs, lens, 16);
    vg_arena *a = vg_arena_new(4096);

    assert_non_null(a);
    for (size_t i = 0; i < n; i++) {
        Vigil__Event *ev;

        assert_true(check_record(recs[i], lens[i], true));
        /* Spot checks on the decoded values themselves, beside the packed comparison. */
        ev = vg_event_decode(a, recs[i], lens[i]);
        assert_non_null(ev);
        assert_non_null(ev->actor);
        assert_int_equal(ev->n_extra, 3);
        assert_non_null(strstr(ev->actor->command_line, "command_line-"));
        assert_non_null(strstr(ev->extra[2]->value, "value-"));
        if (ev->kind_case == VIGIL__EVENT__KIND_PROCESS_EXITED)
            assert_true(ev->process_exited->exit_code < 0);
        if (ev->kind_case == VIGIL__EVENT__KIND_PROCESS_CREATED)
            assert_true(ev->process_created->process->pid > 0x80000000u);
        vg_arena_reset(a);
        free(recs[i]);
    }
    vg_arena_destroy(a);
}

/* An empty record, and present-but-empty strings and messages (which the packer never
 * writes for proto3, but another writer may). */
static void test_edge_records(void **state)
{
    static const uint8_t empty_actor[] = {0x1a, 0x00};
    static const uint8_t empty_image[] = {0x1a, 0x02, 0x1a, 0x00};
    static const uint8_t empty_kind[] = {0x08, 0x05, 0x62, 0x00};
    static const uint8_t empty_extra[] = {0xf2, 0x01, 0x00, 0xf2, 0x01, 0x02, 0x12, 0x00};
    vg_arena *a = vg_arena_new(4096);
    Vigil__Event *ev;

    assert_non_null(a);
    assert_true(check_record((const uint8_t *)"", 0, true));
    assert_true(check_record(empty_actor, sizeof(empty_actor), false));
    assert_true(check_record(empty_image, sizeof(empty_image), false));
    assert_true(check_record(empty_kind, sizeof(empty_kind), false));
    assert_true(check_record(empty_extra, sizeof(empty_extra), false));
    ev = vg_event_decode(a, empty_kind, sizeof(empty_kind));
    assert_non_null(ev);
    assert_int_equal(ev->seq, 5);
    assert_int_equal(ev->kind_case, VIGIL__EVENT__KIND_FILE);
    assert_string_equal(ev->file->path, "");
    ev = vg_event_decode(a, empty_extra, sizeof(empty_extra));
    assert_non_null(ev);
    assert_int_equal(ev->n_extra, 2);
    assert_string_equal(ev->extra[1]->key, "");
    assert_string_equal(ev->extra[1]->value, "");
    vg_arena_destroy(a);
}

/* What the decoder leaves to protobuf-c: the answers must still be protobuf-c's. */
static void test_left_to_protobuf_c(void **state)
{
    /* seq twice (the last wins), an unknown field, two members of the oneof, and a
     * wire type that does not fit the field. */
    static const uint8_t twice[] = {0x08, 0x05, 0x08, 0x07};
    static const uint8_t unknown[] = {0x08, 0x05, 0xa0, 0x06, 0x01};
    static const uint8_t two_kinds[] = {0x5a, 0x00, 0x62, 0x00};
    static const uint8_t bad_type[] = {0x0a, 0x01, 0x41};
    Vigil__Event *ev;

    assert_false(check_record(twice, sizeof(twice), false));
    assert_false(check_record(unknown, sizeof(unknown), false));
    assert_false(check_record(two_kinds, sizeof(two_kinds), false));
    assert_false(check_record(bad_type, sizeof(bad_type), false));
    ev = vigil__event__unpack(NULL, sizeof(twice), twice);
    assert_non_null(ev);
    assert_int_equal(ev->seq, 7);
    vigil__event__free_unpacked(ev, NULL);
}

/* Every truncation of every full record, every byte of each changed three ways, and each
 * with a copy of a field appended: agreement on all, whoever decodes. */
static void test_mutations(void **state)
{
    uint8_t *recs[16];
    size_t lens[16], n = full_records(recs, lens, 16);
    static const uint8_t xors[] = {0x01, 0x80, 0xff};
    size_t took = 0, total = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t *m = malloc(lens[i] * 2 + 8);

        assert_non_null(m);
        for (size_t cut = 0; cut < lens[i]; cut++, total++)
            took += check_record(recs[i], cut, false);
        for (size_t pos = 0; pos < lens[i]; pos++) {
            for (size_t x = 0; x < sizeof(xors); x++, total++) {
                memcpy(m, recs[i], lens[i]);
                m[pos] ^= xors[x];
                took += check_record(m, lens[i], false);
            }
        }
        /* The record twice over: every field repeated (protobuf-c merges messages and
         * keeps the last scalar). */
        memcpy(m, recs[i], lens[i]);
        memcpy(m + lens[i], recs[i], lens[i]);
        assert_false(check_record(m, lens[i] * 2, false));
        free(recs[i]);
        free(m);
    }
    /* Some mutations leave a valid record (a changed string byte), which the decoder
     * takes; most do not. Both kinds must have happened for the test to mean anything. */
    assert_true(took > 0);
    assert_true(took < total);
}

static void test_simulated(void **state)
{
    struct bench_sim_opts o;
    bench_sim *sim = NULL;
    vg_arena *a = vg_arena_new(1 << 20);
    Vigil__TelemetryBatch *b;
    size_t events = 0, kinds_seen = 0;
    bool seen[32] = {false};
    int rc;

    assert_non_null(a);
    bench_sim_opts_default(&o);
    o.machines = 60;
    o.duration_us = 12 * VG_US_PER_SEC;
    assert_int_equal(bench_sim_new(&o, &sim, NULL, 0), 0);
    while ((rc = bench_sim_next(sim, a, &b)) == 1) {
        for (size_t i = 0; i < b->n_events; i++) {
            size_t len;
            uint8_t *rec = vgt_pack_event(b->events[i], &len);

            assert_true(check_record(rec, len, true));
            free(rec);
            if ((unsigned)b->events[i]->kind_case < 32)
                seen[b->events[i]->kind_case] = true;
            events++;
        }
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    for (int k = 0; k < 32; k++)
        kinds_seen += seen[k];
    assert_true(events > 1000);
    assert_true(kinds_seen >= 5);
    bench_sim_free(sim);
    vg_arena_destroy(a);
}

/* Real recordings through the importer (every file, in sorted order, up to 20,000
 * events): Windows and Linux events with many extra entries. */
static void test_real(void **state)
{
    char *dir = vgt_shared("telemetry");
    char cmd[1024], path[1024];
    size_t events = 0, took = 0, with_extra = 0;
    FILE *ls;

    assert_non_null(dir);
    snprintf(cmd, sizeof(cmd), "find '%s' -name '*.jsonl' | LC_ALL=C sort", dir);
    ls = popen(cmd, "r");
    assert_non_null(ls);
    while (events < 20000 && fgets(path, sizeof(path), ls) != NULL) {
        ing_importer *im = NULL;
        vg_arena *a = vg_arena_new(1 << 20);
        Vigil__TelemetryBatch *b;
        char err[256];
        int rc;

        path[strcspn(path, "\n")] = '\0';
        assert_non_null(a);
        assert_int_equal(ing_import_open(path, "t", &im, err, sizeof(err)), 0);
        while ((rc = ing_import_next(im, a, 64, &b)) == 1) {
            for (size_t i = 0; i < b->n_events; i++) {
                size_t len;
                uint8_t *rec = vgt_pack_event(b->events[i], &len);

                took += check_record(rec, len, false);
                with_extra += b->events[i]->n_extra > 0;
                free(rec);
                events++;
            }
            vg_arena_reset(a);
        }
        assert_int_equal(rc, 0);
        ing_import_close(im);
        vg_arena_destroy(a);
    }
    /* Drain the listing so that pclose does not kill find mid-write. */
    while (fgets(path, sizeof(path), ls) != NULL)
        ;
    pclose(ls);
    free(dir);
    print_message("real events: %zu, %zu with extra entries, %zu decoded in one pass\n", events,
                  with_extra, took);
    assert_true(events >= 20000);
    assert_true(with_extra > 0);
    /* Only events with more extra entries than the decoder keeps may fall back. */
    assert_true(took * 100 >= events * 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field),        cmocka_unit_test(test_edge_records),
        cmocka_unit_test(test_left_to_protobuf_c), cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_simulated),          cmocka_unit_test(test_real),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
