/*
 * decode.c - decoding and validation of telemetry batches.
 *
 * A TelemetryBatch is decoded by walking its envelope: the header fields are copied aside
 * and unpacked once, and each event is unpacked alone, so that the raw bytes of every
 * event stay at hand for the timeline block (DESIGN.md: walking the envelope is 1.6x
 * faster than unpacking the batch as one nested message).
 *
 * THREAD SAFETY: reentrant; called on the consumer thread and by importers.
 */
#include "evdec.h"
#include "ingest.h"

#include <stdio.h>
#include <string.h>

#define ING_EVENTS_FIELD 8 /* TelemetryBatch.events */

struct ing_wire {
    const uint8_t *p;
    const uint8_t *end;
};

static int ing_varint(struct ing_wire *w, uint64_t *v);
static int ing_skip(struct ing_wire *w, uint32_t wiretype, const uint8_t **field_end);
static int ing_validate(const struct ing_batch *b, const struct ing_limits *l, int64_t now_us,
                        char *reason, size_t reasonlen);
static bool ing_utf8_valid(const char *s, size_t n);
static int ing_validate_msg(const ProtobufCMessage *m, const struct ing_limits *l, int depth,
                            const char **bad_field);

void ing_limits_default(struct ing_limits *l)
{
    l->max_message_bytes = 16u << 20;
    l->max_field_bytes = 64u << 10;
    l->max_events = 100000;
    l->max_id_bytes = 128;
    l->min_ts_us = INT64_C(946684800) * VG_US_PER_SEC; /* 2000-01-01 */
    l->max_future_us = VG_US_PER_DAY;
}

int ing_decode(const void *buf, size_t len, const struct ing_limits *l, int64_t now_us, vg_arena *a,
               struct ing_batch *out, char *reason, size_t reasonlen)
{
    struct ing_wire w = {buf, (const uint8_t *)buf + len};
    ProtobufCAllocator alloc;
    uint8_t *hdr;
    size_t hdr_len = 0, nev = 0, i = 0;
    Vigil__Event **events;

    memset(out, 0, sizeof(*out));
    if (len > l->max_message_bytes) {
        snprintf(reason, reasonlen, "message of %zu bytes exceeds the limit of %zu", len,
                 l->max_message_bytes);
        return -VG_EINVAL;
    }
    /* Pass 1: count events and header bytes, and check the framing. */
    while (w.p < w.end) {
        const uint8_t *start = w.p, *fend;
        uint64_t tag;

        if (ing_varint(&w, &tag) < 0 || (tag >> 3) == 0 ||
            ing_skip(&w, (uint32_t)(tag & 7), &fend) < 0)
            goto bad_wire;
        if ((tag >> 3) == ING_EVENTS_FIELD && (tag & 7) == 2)
            nev++;
        else
            hdr_len += (size_t)(fend - start);
        w.p = fend;
    }
    if (nev > l->max_events) {
        snprintf(reason, reasonlen, "%zu events exceed the limit of %zu", nev, l->max_events);
        return -VG_EINVAL;
    }
    hdr = vg_arena_alloc(a, hdr_len + 1);
    events = vg_arena_alloc(a, (nev + 1) * sizeof(*events));
    out->raw = vg_arena_alloc(a, (nev + 1) * sizeof(*out->raw));
    out->raw_len = vg_arena_alloc(a, (nev + 1) * sizeof(*out->raw_len));
    if (hdr == NULL || events == NULL || out->raw == NULL || out->raw_len == NULL)
        goto nomem;
    /* Pass 2: copy the header aside and unpack each event. */
    vg_arena_pb_allocator(a, &alloc);
    hdr_len = 0;
    w.p = buf;
    while (w.p < w.end) {
        const uint8_t *start = w.p, *fend;
        uint64_t tag = 0, elen = 0;

        ing_varint(&w, &tag);
        if ((tag >> 3) == ING_EVENTS_FIELD && (tag & 7) == 2) {
            ing_varint(&w, &elen);
            events[i] = vg_event_unpack(a, &alloc, w.p, (size_t)elen);
            if (events[i] == NULL) {
                snprintf(reason, reasonlen, "event %zu does not decode", i);
                return -VG_EDECODE;
            }
            out->raw[i] = w.p;
            out->raw_len[i] = (size_t)elen;
            i++;
            w.p += elen;
            continue;
        }
        ing_skip(&w, (uint32_t)(tag & 7), &fend);
        memcpy(hdr + hdr_len, start, (size_t)(fend - start));
        hdr_len += (size_t)(fend - start);
        w.p = fend;
    }
    out->batch = vigil__telemetry_batch__unpack(&alloc, hdr_len, hdr);
    if (out->batch == NULL) {
        snprintf(reason, reasonlen, "batch header does not decode");
        return -VG_EDECODE;
    }
    out->batch->n_events = nev;
    out->batch->events = events;
    return ing_validate(out, l, now_us, reason, reasonlen);

bad_wire:
    snprintf(reason, reasonlen, "not a TelemetryBatch: bad wire format at byte %zu",
             (size_t)(w.p - (const uint8_t *)buf));
    return -VG_EDECODE;
nomem:
    snprintf(reason, reasonlen, "out of memory decoding %zu bytes", len);
    return -VG_ENOMEM;
}

/* ---- wire format ------------------------------------------------------------------ */

static int ing_varint(struct ing_wire *w, uint64_t *v)
{
    uint64_t r = 0;
    unsigned shift = 0;

    while (w->p < w->end && shift < 64) {
        uint8_t b = *w->p++;

        r |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *v = r;
            return 0;
        }
        shift += 7;
    }
    return -VG_EDECODE;
}

/* Skips one field's payload; *field_end is where the field ends. */
static int ing_skip(struct ing_wire *w, uint32_t wiretype, const uint8_t **field_end)
{
    uint64_t v;

    switch (wiretype) {
    case 0:
        if (ing_varint(w, &v) < 0)
            return -VG_EDECODE;
        break;
    case 1:
        if (w->end - w->p < 8)
            return -VG_EDECODE;
        w->p += 8;
        break;
    case 2:
        if (ing_varint(w, &v) < 0 || v > (uint64_t)(w->end - w->p))
            return -VG_EDECODE;
        w->p += v;
        break;
    case 5:
        if (w->end - w->p < 4)
            return -VG_EDECODE;
        w->p += 4;
        break;
    default:
        return -VG_EDECODE; /* groups (3, 4) are not used by vigil's schema */
    }
    *field_end = w->p;
    return 0;
}

/* ---- validation ------------------------------------------------------------------- */

static int ing_validate(const struct ing_batch *b, const struct ing_limits *l, int64_t now_us,
                        char *reason, size_t reasonlen)
{
    const Vigil__TelemetryBatch *tb = b->batch;
    const char *bad = NULL;
    uint64_t prev_seq = 0;
    size_t tl = strlen(tb->tenant_id), ml = strlen(tb->machine_id);

    if (tl == 0 || ml == 0) {
        snprintf(reason, reasonlen, "missing %s id", tl == 0 ? "tenant" : "machine");
        return -VG_EINVAL;
    }
    if (tl > l->max_id_bytes || ml > l->max_id_bytes) {
        snprintf(reason, reasonlen, "%s id longer than %zu bytes",
                 tl > l->max_id_bytes ? "tenant" : "machine", l->max_id_bytes);
        return -VG_EINVAL;
    }
    if (tb->n_events == 0) {
        snprintf(reason, reasonlen, "batch holds no events");
        return -VG_EINVAL;
    }
    if (ing_validate_msg(&tb->base, l, 0, &bad) < 0) {
        snprintf(reason, reasonlen, "batch field %s is oversized or not UTF-8", bad);
        return -VG_EINVAL;
    }
    for (size_t i = 0; i < tb->n_events; i++) {
        const Vigil__Event *ev = tb->events[i];

        if (ev->seq == 0 || ev->seq <= prev_seq) {
            snprintf(reason, reasonlen, "event %zu: sequence number %llu not increasing", i,
                     (unsigned long long)ev->seq);
            return -VG_EINVAL;
        }
        prev_seq = ev->seq;
        if (ev->ts_us < l->min_ts_us || ev->ts_us > now_us + l->max_future_us) {
            char t[32];

            snprintf(reason, reasonlen, "event %zu: timestamp %s out of range", i,
                     vg_fmt_time(ev->ts_us, t));
            return -VG_EINVAL;
        }
        if (ev->kind_case == VIGIL__EVENT__KIND__NOT_SET) {
            snprintf(reason, reasonlen, "event %zu: no event kind", i);
            return -VG_EINVAL;
        }
        if (ing_validate_msg(&ev->base, l, 0, &bad) < 0) {
            snprintf(reason, reasonlen, "event %zu: field %s is oversized or not UTF-8", i, bad);
            return -VG_EINVAL;
        }
    }
    return 0;
}

/* Checks every string of a message (recursively, except the batch's events) for length
 * and UTF-8, through protobuf-c's descriptors. */
static int ing_validate_msg(const ProtobufCMessage *m, const struct ing_limits *l, int depth,
                            const char **bad_field)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    if (depth > 4)
        return 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            void *const *arr = *(void *const *const *)(base + f->offset);

            if (f->type == PROTOBUF_C_TYPE_MESSAGE && d == &vigil__telemetry_batch__descriptor)
                continue; /* events are validated one by one */
            for (size_t k = 0; k < n; k++) {
                if (f->type == PROTOBUF_C_TYPE_STRING) {
                    const char *s = arr[k];
                    size_t sl = strlen(s);

                    if (sl > l->max_field_bytes || !ing_utf8_valid(s, sl)) {
                        *bad_field = f->name;
                        return -VG_EINVAL;
                    }
                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
                           ing_validate_msg(arr[k], l, depth + 1, bad_field) < 0) {
                    return -VG_EINVAL;
                }
            }
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(const char *const *)(base + f->offset);
            size_t sl;

            if (s == NULL)
                continue;
            sl = strlen(s);
            if (sl > l->max_field_bytes || !ing_utf8_valid(s, sl)) {
                *bad_field = f->name;
                return -VG_EINVAL;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);

            /* A oneof member that is not the set case shares its slot: check the case. */
            if (sub == NULL)
                continue;
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            if (ing_validate_msg(sub, l, depth + 1, bad_field) < 0)
                return -VG_EINVAL;
        }
    }
    return 0;
}

static bool ing_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        unsigned char c = *p;
        size_t len;
        uint32_t cp;

        if (c < 0x80) {
            p++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += len;
    }
    return true;
}
