/*
 * test_decode.c - ing_decode: the envelope walk (header fields, events, raw event slices)
 * and every validation rule with its reason text; vg_machine_key's properties.
 *
 * THREAD MODEL: single-threaded; ing_decode is reentrant.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest.h"
#include "telemetry.pb-c.h"
#include "vg.h"
#include "vgtest.h"

/* 2026-01-05T08:00:00Z: "now" for every decode, so the tests do not depend on the clock. */
#define NOW_US    (INT64_C(1767600000) * VG_US_PER_SEC)
#define Y2000_US  (INT64_C(946684800) * VG_US_PER_SEC)
#define MAX_EV    8
#define TENANT    "tenant-7"
#define MACHINE   "WIN-tenant-7-000042"
#define REASONLEN 256

/* ---- building batches with the generated API ------------------------------------- */

struct tev {
    Vigil__Event ev;
    Vigil__ProcessRef actor, child;
    Vigil__ProcessCreated pc;
    Vigil__FileEvent file;
    Vigil__DnsQuery dns;
    Vigil__ProcessExited ex;
    Vigil__KeyValue kv;
    Vigil__KeyValue *kvp[1];
};

struct tbatch {
    Vigil__TelemetryBatch b;
    struct tev ev[MAX_EV];
    Vigil__Event *evp[MAX_EV];
};

/* Event i of a test batch: a process creation, a file write, a DNS query or an exit in
 * turn, each with its own values so that a mix-up between events shows. */
static void tev_init(struct tev *t, size_t i, uint64_t seq, int64_t ts)
{
    static char cmd[MAX_EV][64], path[MAX_EV][64], name[MAX_EV][64];

    vigil__event__init(&t->ev);
    vigil__process_ref__init(&t->actor);
    vigil__process_ref__init(&t->child);
    vigil__process_created__init(&t->pc);
    vigil__file_event__init(&t->file);
    vigil__dns_query__init(&t->dns);
    vigil__process_exited__init(&t->ex);
    vigil__key_value__init(&t->kv);
    snprintf(cmd[i], sizeof(cmd[i]), "notepad.exe C:\\doc-%zu.txt", i);
    snprintf(path[i], sizeof(path[i]), "C:\\Users\\anna\\file-%zu.bin", i);
    snprintf(name[i], sizeof(name[i]), "host-%zu.example.com", i);
    t->ev.seq = seq;
    t->ev.ts_us = ts;
    t->actor.pid = 1000 + (uint32_t)i;
    t->actor.creation_time_us = ts - VG_US_PER_SEC;
    t->actor.image = "C:\\Windows\\explorer.exe";
    t->actor.command_line = "explorer.exe";
    t->ev.actor = &t->actor;
    t->kv.key = "source";
    t->kv.value = "test";
    t->kvp[0] = &t->kv;
    t->ev.n_extra = 1;
    t->ev.extra = t->kvp;
    switch (i % 4) {
    case 0:
        t->child.pid = 2000 + (uint32_t)i;
        t->child.creation_time_us = ts;
        t->child.image = "C:\\Windows\\notepad.exe";
        t->child.command_line = cmd[i];
        t->pc.process = &t->child;
        t->ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
        t->ev.process_created = &t->pc;
        break;
    case 1:
        t->file.op = VIGIL__FILE_OP__FILE_MODIFIED;
        t->file.path = path[i];
        t->file.size = 4096 + i;
        t->ev.kind_case = VIGIL__EVENT__KIND_FILE;
        t->ev.file = &t->file;
        break;
    case 2:
        t->dns.query_name = name[i];
        t->dns.query_type = 28;
        t->ev.kind_case = VIGIL__EVENT__KIND_DNS;
        t->ev.dns = &t->dns;
        break;
    default:
        t->ex.exit_code = -(int32_t)i;
        t->ev.kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
        t->ev.process_exited = &t->ex;
        break;
    }
}

static void tbatch_init(struct tbatch *t, size_t n)
{
    assert_true(n <= MAX_EV);
    vigil__telemetry_batch__init(&t->b);
    t->b.tenant_id = TENANT;
    t->b.machine_id = MACHINE;
    t->b.machine_name = "DESKTOP-42";
    t->b.os = VIGIL__OS__OS_WINDOWS;
    t->b.os_version = "10.0.22631";
    t->b.sensor_version = "10.8750.22621.1000";
    t->b.first_seq = 100;
    for (size_t i = 0; i < n; i++) {
        tev_init(&t->ev[i], i, 100 + i, NOW_US - (int64_t)(n - i) * VG_US_PER_SEC);
        t->evp[i] = &t->ev[i].ev;
    }
    t->b.n_events = n;
    t->b.events = n ? t->evp : NULL;
}

struct fixture {
    vg_arena *a;
    struct ing_limits l;
    struct ing_batch out;
    char reason[REASONLEN];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->a = vg_arena_new(1 << 16)) == NULL) {
        free(f);
        return -1;
    }
    ing_limits_default(&f->l);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    vg_arena_destroy(f->a);
    free(f);
    return 0;
}

/* Decodes with the fixture's limits at NOW_US; the reason is cleared first. */
static int dec(struct fixture *f, const void *buf, size_t len)
{
    vg_arena_reset(f->a);
    f->reason[0] = '\0';
    return ing_decode(buf, len, &f->l, NOW_US, f->a, &f->out, f->reason, sizeof(f->reason));
}

/* Packs t, expects the rejection rc with a reason containing each of the fragments. */
static void expect_reject(struct fixture *f, const Vigil__TelemetryBatch *b, int rc,
                          const char *frag1, const char *frag2)
{
    size_t len;
    uint8_t *buf = vgt_pack_batch(b, &len);
    int got = dec(f, buf, len);

    if (got != rc || strstr(f->reason, frag1) == NULL ||
        (frag2 != NULL && strstr(f->reason, frag2) == NULL))
        print_error("rc %d (want %d), reason \"%s\" (want \"%s\" and \"%s\")\n", got, rc, f->reason,
                    frag1, frag2 ? frag2 : "");
    assert_int_equal(got, rc);
    assert_non_null(strstr(f->reason, frag1));
    if (frag2 != NULL)
        assert_non_null(strstr(f->reason, frag2));
    free(buf);
}

static void expect_ok(struct fixture *f, const Vigil__TelemetryBatch *b)
{
    size_t len;
    uint8_t *buf = vgt_pack_batch(b, &len);
    int got = dec(f, buf, len);

    if (got != 0)
        print_error("rejected: %s\n", f->reason);
    assert_int_equal(got, 0);
    assert_int_equal(f->out.batch->n_events, b->n_events);
    free(buf);
}

/* ---- valid batches ---------------------------------------------------------------- */

/* Every header field and event comes through, and raw[i] is exactly events[i]'s bytes. */
static void test_valid_batch(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    const Vigil__TelemetryBatch *b;
    size_t len;
    uint8_t *buf;

    tbatch_init(&t, 6);
    buf = vgt_pack_batch(&t.b, &len);
    assert_int_equal(dec(f, buf, len), 0);
    b = f->out.batch;
    assert_non_null(b);
    assert_string_equal(b->tenant_id, TENANT);
    assert_string_equal(b->machine_id, MACHINE);
    assert_string_equal(b->machine_name, "DESKTOP-42");
    assert_int_equal(b->os, VIGIL__OS__OS_WINDOWS);
    assert_string_equal(b->os_version, "10.0.22631");
    assert_string_equal(b->sensor_version, "10.8750.22621.1000");
    assert_int_equal(b->first_seq, 100);
    assert_int_equal(b->n_events, 6);
    for (size_t i = 0; i < b->n_events; i++) {
        const Vigil__Event *e = b->events[i], *want = &t.ev[i].ev;
        size_t elen;
        uint8_t *ebuf = vgt_pack_event(want, &elen);
        Vigil__Event *re;

        assert_int_equal(e->seq, 100 + i);
        assert_int_equal(e->ts_us, want->ts_us);
        assert_int_equal(e->kind_case, want->kind_case);
        assert_non_null(e->actor);
        assert_int_equal(e->actor->pid, 1000 + i);
        assert_string_equal(e->actor->image, "C:\\Windows\\explorer.exe");
        assert_int_equal(e->n_extra, 1);
        assert_string_equal(e->extra[0]->key, "source");
        assert_string_equal(e->extra[0]->value, "test");
        switch (i % 4) {
        case 0:
            assert_string_equal(e->process_created->process->command_line,
                                want->process_created->process->command_line);
            assert_int_equal(e->process_created->process->pid, 2000 + i);
            break;
        case 1:
            assert_string_equal(e->file->path, want->file->path);
            assert_int_equal(e->file->size, 4096 + i);
            break;
        case 2:
            assert_string_equal(e->dns->query_name, want->dns->query_name);
            break;
        default:
            assert_int_equal(e->process_exited->exit_code, -(int32_t)i);
            break;
        }
        /* The raw slice lies inside the input and is the event's own serialization. */
        assert_true(f->out.raw[i] >= buf && f->out.raw[i] + f->out.raw_len[i] <= buf + len);
        assert_int_equal(f->out.raw_len[i], elen);
        assert_memory_equal(f->out.raw[i], ebuf, elen);
        re = vigil__event__unpack(NULL, f->out.raw_len[i], f->out.raw[i]);
        assert_non_null(re);
        assert_int_equal(re->seq, 100 + i);
        assert_int_equal(re->ts_us, want->ts_us);
        vigil__event__free_unpacked(re, NULL);
        free(ebuf);
    }
    free(buf);
}

/* Appends a TelemetryBatch.events entry (tag, varint length, bytes) at msg + n. */
static size_t put_event(uint8_t *msg, size_t n, const uint8_t *ev, size_t elen)
{
    size_t v = elen;

    msg[n++] = (8 << 3) | 2;
    while (v >= 0x80) {
        msg[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    msg[n++] = (uint8_t)v;
    memcpy(msg + n, ev, elen);
    return n + elen;
}

/* Protobuf allows fields in any order and unknown fields: header fields between events,
 * and a field vigil does not know, still decode, and raw slices still match. */
static void test_valid_interleaved(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    Vigil__TelemetryBatch only = VIGIL__TELEMETRY_BATCH__INIT;
    uint8_t msg[4096], *piece, *ev[3];
    size_t n = 0, plen, elen[3];
    static const uint8_t unknown[] = {(15 << 3) | 0, 0x96, 0x01}; /* field 15 = 150 */

    tbatch_init(&t, 3);
    for (int i = 0; i < 3; i++)
        ev[i] = vgt_pack_event(&t.ev[i].ev, &elen[i]);
    /* event 0 */
    n = put_event(msg, n, ev[0], elen[0]);
    /* tenant */
    only.tenant_id = TENANT;
    piece = vgt_pack_batch(&only, &plen);
    memcpy(msg + n, piece, plen);
    n += plen;
    free(piece);
    /* event 1, unknown field, machine, event 2 */
    n = put_event(msg, n, ev[1], elen[1]);
    memcpy(msg + n, unknown, sizeof(unknown));
    n += sizeof(unknown);
    vigil__telemetry_batch__init(&only);
    only.machine_id = MACHINE;
    piece = vgt_pack_batch(&only, &plen);
    memcpy(msg + n, piece, plen);
    n += plen;
    free(piece);
    n = put_event(msg, n, ev[2], elen[2]);

    assert_int_equal(dec(f, msg, n), 0);
    assert_string_equal(f->out.batch->tenant_id, TENANT);
    assert_string_equal(f->out.batch->machine_id, MACHINE);
    assert_int_equal(f->out.batch->n_events, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->out.batch->events[i]->seq, 100 + i);
        assert_int_equal(f->out.raw_len[i], elen[i]);
        assert_memory_equal(f->out.raw[i], ev[i], elen[i]);
        free(ev[i]);
    }
}

/* ---- rejections ------------------------------------------------------------------- */

static void test_garbage(void **state)
{
    struct fixture *f = *state;
    static const char text[] = "this is not a protobuf message at all";
    static const uint8_t ff[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t field0[] = {0x00, 0x01};                       /* field number 0 */
    static const uint8_t toolong[] = {(1 << 3) | 2, 0x7f, 'a'};         /* 127 bytes claimed */
    static const uint8_t group[] = {(3 << 3) | 3, (3 << 3) | 4};        /* groups: unused */
    static const uint8_t badevent[] = {(8 << 3) | 2, 0x02, 0xff, 0xff}; /* event body */
    struct {
        const void *p;
        size_t n;
        int rc;
        const char *frag;
    } cases[] = {
        {text, sizeof(text) - 1, -VG_EDECODE, "not a TelemetryBatch"},
        {ff, sizeof(ff), -VG_EDECODE, "not a TelemetryBatch"},
        {field0, sizeof(field0), -VG_EDECODE, "not a TelemetryBatch"},
        {toolong, sizeof(toolong), -VG_EDECODE, "not a TelemetryBatch"},
        {group, sizeof(group), -VG_EDECODE, "not a TelemetryBatch"},
        {badevent, sizeof(badevent), -VG_EDECODE, "event 0 does not decode"},
    };
    uint8_t *copy;

    for (size_t i = 0; i < VG_ARRAY_SIZE(cases); i++) {
        int rc;

        copy = malloc(cases[i].n);
        assert_non_null(copy);
        memcpy(copy, cases[i].p, cases[i].n);
        rc = dec(f, copy, cases[i].n);
        if (rc != cases[i].rc || strstr(f->reason, cases[i].frag) == NULL)
            print_error("case %zu: rc %d reason \"%s\"\n", i, rc, f->reason);
        assert_int_equal(rc, cases[i].rc);
        assert_non_null(strstr(f->reason, cases[i].frag));
        free(copy);
    }
    /* Nothing at all is a valid empty message, which has no ids. */
    assert_int_equal(dec(f, "", 0), -VG_EINVAL);
    assert_string_equal(f->reason, "missing tenant id");
}

/*
 * Every prefix of a valid message either decodes or is rejected, never crashes. The
 * message is built from one piece per field, so the field boundaries are known: a prefix
 * ending on a boundary is a valid protobuf (rejected only by validation when it lacks ids
 * or events, else accepted with the events it holds); any other prefix is bad framing.
 */
static void test_truncated_prefixes(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    Vigil__TelemetryBatch one;
    uint8_t *msg = NULL;
    size_t len = 0, bounds[16], nbounds = 0, evbound[16] = {0}, accepted = 0;

    tbatch_init(&t, 5);
    for (int field = 0; field < 12; field++) {
        size_t plen;
        uint8_t *piece;

        vigil__telemetry_batch__init(&one);
        switch (field) {
        case 0:
            one.tenant_id = t.b.tenant_id;
            break;
        case 1:
            one.machine_id = t.b.machine_id;
            break;
        case 2:
            one.machine_name = t.b.machine_name;
            break;
        case 3:
            one.os = t.b.os;
            break;
        case 4:
            one.os_version = t.b.os_version;
            break;
        case 5:
            one.sensor_version = t.b.sensor_version;
            break;
        case 6:
            one.first_seq = 100000; /* a multi-byte varint */
            break;
        default:
            one.n_events = 1;
            one.events = &t.evp[field - 7];
            break;
        }
        piece = vgt_pack_batch(&one, &plen);
        assert_true(plen > 0);
        msg = realloc(msg, len + plen);
        assert_non_null(msg);
        memcpy(msg + len, piece, plen);
        len += plen;
        free(piece);
        bounds[nbounds] = len;
        evbound[nbounds] = field >= 7 ? (size_t)(field - 6) : 0;
        nbounds++;
    }
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        size_t k, nev = 0;
        bool boundary = cut == 0;
        int rc;

        assert_non_null(p);
        memcpy(p, msg, cut);
        for (k = 0; k < nbounds; k++) {
            if (bounds[k] == cut) {
                boundary = true;
                nev = evbound[k];
            }
        }
        rc = dec(f, p, cut);
        if (boundary && nev > 0) {
            if (rc != 0)
                print_error("prefix %zu: %s\n", cut, f->reason);
            assert_int_equal(rc, 0);
            assert_int_equal(f->out.batch->n_events, nev);
            assert_int_equal(f->out.batch->events[nev - 1]->seq, 100 + nev - 1);
            accepted++;
        } else if (boundary) {
            assert_int_equal(rc, -VG_EINVAL);
            assert_true(strstr(f->reason, "missing") != NULL ||
                        strcmp(f->reason, "batch holds no events") == 0);
        } else {
            if (rc != -VG_EDECODE)
                print_error("prefix %zu of %zu: rc %d %s\n", cut, len, rc, f->reason);
            assert_int_equal(rc, -VG_EDECODE);
            assert_true(f->reason[0] != '\0');
        }
        free(p);
    }
    assert_int_equal(accepted, 5);
    free(msg);
}

static void test_missing_ids(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    tbatch_init(&t, 2);
    t.b.tenant_id = "";
    expect_reject(f, &t.b, -VG_EINVAL, "missing tenant id", NULL);
    tbatch_init(&t, 2);
    t.b.machine_id = "";
    expect_reject(f, &t.b, -VG_EINVAL, "missing machine id", NULL);
}

static void test_long_ids(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    char id[130];

    memset(id, 'x', 128);
    id[128] = '\0';
    tbatch_init(&t, 1);
    t.b.tenant_id = id; /* exactly the limit */
    t.b.machine_id = id;
    expect_ok(f, &t.b);
    id[128] = 'y';
    id[129] = '\0';
    tbatch_init(&t, 1);
    t.b.tenant_id = id;
    expect_reject(f, &t.b, -VG_EINVAL, "tenant id longer than 128 bytes", NULL);
    tbatch_init(&t, 1);
    t.b.machine_id = id;
    expect_reject(f, &t.b, -VG_EINVAL, "machine id longer than 128 bytes", NULL);
    /* The limit is a setting, not a constant. */
    f->l.max_id_bytes = 8;
    tbatch_init(&t, 1);
    expect_reject(f, &t.b, -VG_EINVAL, "machine id longer than 8 bytes", NULL);
}

static void test_zero_events(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    tbatch_init(&t, 0);
    expect_reject(f, &t.b, -VG_EINVAL, "batch holds no events", NULL);
}

static void test_max_events(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    f->l.max_events = 4;
    tbatch_init(&t, 4);
    expect_ok(f, &t.b);
    tbatch_init(&t, 5);
    expect_reject(f, &t.b, -VG_EINVAL, "5 events exceed the limit of 4", NULL);
}

static void test_seq_not_increasing(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    tbatch_init(&t, 4);
    t.ev[2].ev.seq = t.ev[1].ev.seq; /* repeated */
    expect_reject(f, &t.b, -VG_EINVAL, "event 2: sequence number 101 not increasing", NULL);
    tbatch_init(&t, 4);
    t.ev[3].ev.seq = 50; /* going back */
    expect_reject(f, &t.b, -VG_EINVAL, "event 3: sequence number 50 not increasing", NULL);
    tbatch_init(&t, 4);
    t.ev[0].ev.seq = 0; /* sensors number from 1 */
    expect_reject(f, &t.b, -VG_EINVAL, "event 0: sequence number 0 not increasing", NULL);
    /* Gaps are fine: a sensor may drop events. */
    tbatch_init(&t, 4);
    t.ev[3].ev.seq = 1000;
    expect_ok(f, &t.b);
}

static void test_timestamps(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    tbatch_init(&t, 3);
    t.ev[0].ev.ts_us = Y2000_US; /* the first instant allowed */
    expect_ok(f, &t.b);
    t.ev[0].ev.ts_us = Y2000_US - 1;
    expect_reject(f, &t.b, -VG_EINVAL, "event 0: timestamp 1999-12-31T23:59:59.999999Z",
                  "out of range");
    tbatch_init(&t, 3);
    t.ev[2].ev.ts_us = NOW_US + VG_US_PER_DAY; /* a day ahead: clock skew tolerated */
    expect_ok(f, &t.b);
    t.ev[2].ev.ts_us = NOW_US + VG_US_PER_DAY + 1;
    expect_reject(f, &t.b, -VG_EINVAL, "event 2: timestamp", "out of range");
    t.ev[2].ev.ts_us = 0;
    expect_reject(f, &t.b, -VG_EINVAL, "event 2: timestamp", "out of range");
    t.ev[2].ev.ts_us = -5;
    expect_reject(f, &t.b, -VG_EINVAL, "event 2: timestamp", "out of range");
}

/* A 10 MB command line: the message limit is raised above it, so the field limit alone
 * must reject it; with the field limit raised too it decodes. */
static void test_oversized_field(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    size_t big = 10u << 20, len;
    char *cmd = malloc(big + 1);
    uint8_t *buf;

    assert_non_null(cmd);
    memset(cmd, 'A', big);
    cmd[big] = '\0';
    tbatch_init(&t, 1);
    t.ev[0].child.command_line = cmd;
    f->l.max_message_bytes = 64u << 20;
    buf = vgt_pack_batch(&t.b, &len);
    assert_true(len > big && len < f->l.max_message_bytes);
    assert_int_equal(dec(f, buf, len), -VG_EINVAL);
    assert_string_equal(f->reason, "event 0: field command_line is oversized or not UTF-8");
    f->l.max_field_bytes = 16u << 20;
    assert_int_equal(dec(f, buf, len), 0);
    assert_int_equal(strlen(f->out.batch->events[0]->process_created->process->command_line), big);
    free(buf);
    /* The default field limit, 64 KiB, at its edge. */
    ing_limits_default(&f->l);
    cmd[64u << 10] = '\0';
    expect_ok(f, &t.b);
    cmd[64u << 10] = 'A';
    cmd[(64u << 10) + 1] = '\0';
    expect_reject(f, &t.b, -VG_EINVAL, "event 0: field command_line is oversized", NULL);
    /* A header string is held to the same limit. */
    tbatch_init(&t, 1);
    t.b.os_version = cmd;
    expect_reject(f, &t.b, -VG_EINVAL, "batch field os_version is oversized", NULL);
    free(cmd);
}

static void test_invalid_utf8(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    static const char *const bad[] = {
        "cmd.exe /c \xc3\x28",         /* bad continuation */
        "cmd.exe /c \xc0\xaf",         /* overlong '/' */
        "cmd.exe /c \xed\xa0\x80",     /* UTF-16 surrogate */
        "cmd.exe /c \xf4\x90\x80\x80", /* beyond U+10FFFF */
        "cmd.exe /c \xe2\x82",         /* truncated sequence at the end */
        "cmd.exe /c \xff",             /* never valid */
    };

    for (size_t i = 0; i < VG_ARRAY_SIZE(bad); i++) {
        tbatch_init(&t, 1);
        t.ev[0].child.command_line = (char *)bad[i];
        expect_reject(f, &t.b, -VG_EINVAL, "event 0: field command_line", "not UTF-8");
    }
    tbatch_init(&t, 1);
    t.ev[0].child.command_line = "notepad.exe C:\\na\xc3\xafve\\\xe6\x97\xa5\xe6\x9c\xac "
                                 "\xf0\x9f\x98\x80.txt";
    expect_ok(f, &t.b);
    /* In an extra field and in the header too. */
    tbatch_init(&t, 2);
    t.ev[1].kv.value = "\xc3\x28";
    expect_reject(f, &t.b, -VG_EINVAL, "event 1: field value", "not UTF-8");
    tbatch_init(&t, 1);
    t.b.machine_name = "DESKTOP-\xc3\x28";
    expect_reject(f, &t.b, -VG_EINVAL, "batch field machine_name", "not UTF-8");
}

static void test_no_kind(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;

    tbatch_init(&t, 3);
    t.ev[1].ev.kind_case = VIGIL__EVENT__KIND__NOT_SET;
    expect_reject(f, &t.b, -VG_EINVAL, "event 1: no event kind", NULL);
}

static void test_message_limit(void **state)
{
    struct fixture *f = *state;
    struct tbatch t;
    size_t len;
    uint8_t *buf;
    char want[128];

    tbatch_init(&t, 4);
    buf = vgt_pack_batch(&t.b, &len);
    f->l.max_message_bytes = len;
    assert_int_equal(dec(f, buf, len), 0);
    f->l.max_message_bytes = len - 1;
    assert_int_equal(dec(f, buf, len), -VG_EINVAL);
    snprintf(want, sizeof(want), "message of %zu bytes exceeds the limit of %zu", len, len - 1);
    assert_string_equal(f->reason, want);
    free(buf);
}

/* ---- the machine key -------------------------------------------------------------- */

static void test_machine_key(void **state)
{
    char t1[32], m1[32];
    uint64_t k = vg_machine_key("tenant-1", "WIN-0001");

    (void)state;
    /* Stable: the same ids from other buffers give the same key. */
    snprintf(t1, sizeof(t1), "tenant-%d", 1);
    snprintf(m1, sizeof(m1), "WIN-%04d", 1);
    assert_int_equal(vg_machine_key(t1, m1), k);
    assert_int_equal(vg_machine_key("tenant-1", "WIN-0001"), k);
    assert_int_not_equal(k, 0);
    /* The tenant is part of the key: one sensor id in two tenants is two machines. */
    assert_int_not_equal(vg_machine_key("tenant-2", "WIN-0001"), k);
    assert_int_not_equal(vg_machine_key("tenant-1", "WIN-0002"), k);
    /* The split between tenant and machine matters. */
    assert_int_not_equal(vg_machine_key("ab", "c"), vg_machine_key("a", "bc"));
    assert_int_not_equal(vg_machine_key("tenant-1WIN", "-0001"),
                         vg_machine_key("tenant-1", "WIN-0001"));
    /* Swapping tenant and machine is another machine. */
    assert_int_not_equal(vg_machine_key("x", "y"), vg_machine_key("y", "x"));
    /* No collisions over a modest population (a 64-bit hash should have none). */
    {
        enum { N = 20000 };
        uint64_t *keys = malloc(N * sizeof(*keys));

        assert_non_null(keys);
        for (int i = 0; i < N; i++) {
            snprintf(t1, sizeof(t1), "tenant-%d", i % 7);
            snprintf(m1, sizeof(m1), "m-%d", i);
            keys[i] = vg_machine_key(t1, m1);
        }
        for (int i = 0; i < N; i++)
            for (int j = i + 1; j < N && j < i + 64; j++)
                assert_int_not_equal(keys[i], keys[j]);
        free(keys);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_valid_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_not_increasing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_limit, setup, teardown),
        cmocka_unit_test(test_machine_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
