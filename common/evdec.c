/*
 * evdec.c - a vigil.Event decoder for the hot read paths: the timeline's reads and the
 * ingest decode stage.
 *
 * protobuf-c's generic unpacker walks each message twice (a scan, then the parse),
 * looks every field up in its descriptor and makes one allocation per sub-message and
 * per string. On a replay that was most of the reading thread's time, more than zstd.
 * This decoder walks the bytes once, with one switch per message type, and takes one
 * arena allocation for the event and all its strings, and one for each sub-message
 * present: the strings fit in the record's own length, since each takes at least a tag
 * byte and a length byte of the wire format beside its content, and those pay for its
 * NUL. So the event takes about as much arena as protobuf-c's unpacking of it.
 *
 * It decodes what protobuf-c's packer writes for the messages of telemetry.proto:
 * every known field once, with its wire type. Anything else (an unknown field, a field
 * or a oneof member twice, which protobuf-c merges or overrides, more extra entries than
 * VG_EVDEC_MAX_EXTRA) makes it give up, and vg_event_unpack hands the record to
 * protobuf-c, which decides. So on every record the result equals protobuf-c's, which
 * tests/unit/test_evdec.c checks on simulated, imported and mutated records.
 *
 * THREAD SAFETY: none needed; the arena belongs to the calling thread.
 */
#include <string.h>

#include "evdec.h"

/* Extra entries a record may carry for the fast path (kept on the stack while parsing). */
#define VG_EVDEC_MAX_EXTRA 96

struct ed {
    vg_arena *a;                            /* the event's sub-messages */
    char *s;                                /* next free byte for strings */
    Vigil__KeyValue kv[VG_EVDEC_MAX_EXTRA]; /* extra entries, copied out at the end */
    size_t nkv;
};

/* A base-128 varint of at most 10 bytes; one byte is the common case. */
static inline bool ed_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    uint64_t r = 0;

    if (q < end && *q < 0x80) {
        *v = *q;
        *p = q + 1;
        return true;
    }
    for (unsigned sh = 0; sh < 64 && q < end; sh += 7) {
        uint8_t b = *q++;

        r |= (uint64_t)(b & 0x7f) << sh;
        if (!(b & 0x80)) {
            *v = r;
            *p = q;
            return true;
        }
    }
    return false;
}

/* Reads a tag; field 0 is never valid. */
static inline bool ed_tag(const uint8_t **p, const uint8_t *end, uint32_t *field, unsigned *wt)
{
    uint64_t t;

    if (!ed_varint(p, end, &t) || t >> 3 == 0 || t >> 3 > UINT32_MAX)
        return false;
    *field = (uint32_t)(t >> 3);
    *wt = (unsigned)(t & 7);
    return true;
}

/* A length-delimited value: its bytes [*sp, *sp + *sn). */
static inline bool ed_len(const uint8_t **p, const uint8_t *end, const uint8_t **sp, size_t *sn)
{
    uint64_t n;

    if (!ed_varint(p, end, &n) || n > (uint64_t)(end - *p))
        return false;
    *sp = *p;
    *sn = (size_t)n;
    *p += n;
    return true;
}

static inline bool ed_string(struct ed *d, const uint8_t **p, const uint8_t *end, unsigned wt,
                             char **out)
{
    const uint8_t *sp;
    size_t sn;

    if (wt != 2 || !ed_len(p, end, &sp, &sn))
        return false;
    memcpy(d->s, sp, sn);
    d->s[sn] = '\0';
    *out = d->s;
    d->s += sn + 1;
    return true;
}

static inline bool ed_u64(const uint8_t **p, const uint8_t *end, unsigned wt, uint64_t *v)
{
    return wt == 0 && ed_varint(p, end, v);
}

/* Field numbers below 32 may be seen once each; `seen` has a bit for each. */
static inline bool ed_once(uint32_t *seen, uint32_t field)
{
    uint32_t bit = field < 32 ? UINT32_C(1) << field : 0;

    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

/* The message bodies. Each returns false on anything it does not decode as protobuf-c's
 * packer wrote it. Numbers are narrowed as protobuf-c narrows them (the low bits). */

/* Field bodies inside a message's switch: each leaves the function false when the value
 * is not of the field's wire type or runs past the end. */
#define ED_STR(member)                                                                             \
    do {                                                                                           \
        if (!ed_string(d, &p, end, wt, &m->member))                                                \
            return false;                                                                          \
    } while (0)
#define ED_NUM(member, type)                                                                       \
    do {                                                                                           \
        if (!ed_u64(&p, end, wt, &v))                                                              \
            return false;                                                                          \
        m->member = (type)v;                                                                       \
    } while (0)
#define ED_BOOL(member)                                                                            \
    do {                                                                                           \
        if (!ed_u64(&p, end, wt, &v))                                                              \
            return false;                                                                          \
        m->member = v != 0;                                                                        \
    } while (0)

static bool ed_process_ref(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__ProcessRef *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(pid, uint32_t);
            break;
        case 2:
            ED_NUM(creation_time_us, int64_t);
            break;
        case 3:
            ED_STR(image);
            break;
        case 4:
            ED_STR(command_line);
            break;
        case 5:
            ED_STR(sha256);
            break;
        case 6:
            ED_STR(sha1);
            break;
        case 7:
            ED_STR(md5);
            break;
        case 8:
            ED_STR(account);
            break;
        case 9:
            ED_STR(integrity_level);
            break;
        case 10:
            ED_STR(current_directory);
            break;
        case 11:
            ED_STR(original_file_name);
            break;
        case 12:
            ED_STR(logon_id);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_key_value(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__KeyValue *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_STR(key);
            break;
        case 2:
            ED_STR(value);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_process_created(struct ed *d, const uint8_t *p, const uint8_t *end,
                               Vigil__ProcessCreated *m)
{
    Vigil__ProcessRef *proc;
    const uint8_t *sp;
    size_t sn;
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            if (wt != 2 || !ed_len(&p, end, &sp, &sn))
                return false;
            if ((proc = vg_arena_alloc(d->a, sizeof(*proc))) == NULL)
                return false;
            *proc = (Vigil__ProcessRef)VIGIL__PROCESS_REF__INIT;
            if (!ed_process_ref(d, sp, sp + sn, proc))
                return false;
            m->process = proc;
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_process_exited(struct ed *d, const uint8_t *p, const uint8_t *end,
                              Vigil__ProcessExited *m)
{
    (void)d;
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(exit_code, int32_t);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_file(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__FileEvent *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(op, Vigil__FileOp);
            break;
        case 2:
            ED_STR(path);
            break;
        case 3:
            ED_STR(previous_path);
            break;
        case 4:
            ED_STR(sha256);
            break;
        case 5:
            ED_NUM(size, uint64_t);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_network(struct ed *d, const uint8_t *p, const uint8_t *end,
                       Vigil__NetworkConnection *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(protocol, Vigil__Protocol);
            break;
        case 2:
            ED_BOOL(inbound);
            break;
        case 3:
            ED_STR(local_ip);
            break;
        case 4:
            ED_NUM(local_port, uint32_t);
            break;
        case 5:
            ED_STR(remote_ip);
            break;
        case 6:
            ED_NUM(remote_port, uint32_t);
            break;
        case 7:
            ED_STR(remote_hostname);
            break;
        case 8:
            ED_STR(url);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_dns(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__DnsQuery *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_STR(query_name);
            break;
        case 2:
            ED_NUM(query_type, uint32_t);
            break;
        case 3:
            ED_STR(results);
            break;
        case 4:
            ED_NUM(status, uint32_t);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_registry(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__RegistryEvent *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(op, Vigil__RegistryOp);
            break;
        case 2:
            ED_STR(key);
            break;
        case 3:
            ED_STR(value_name);
            break;
        case 4:
            ED_STR(value_data);
            break;
        case 5:
            ED_STR(value_type);
            break;
        case 6:
            ED_STR(new_name);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_logon(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__LogonEvent *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_BOOL(success);
            break;
        case 2:
            ED_NUM(logon_type, uint32_t);
            break;
        case 3:
            ED_STR(account);
            break;
        case 4:
            ED_STR(account_domain);
            break;
        case 5:
            ED_STR(source_ip);
            break;
        case 6:
            ED_NUM(source_port, uint32_t);
            break;
        case 7:
            ED_STR(workstation);
            break;
        case 8:
            ED_STR(logon_id);
            break;
        case 9:
            ED_STR(auth_package);
            break;
        case 10:
            ED_STR(failure_reason);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_image_load(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__ImageLoad *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_STR(path);
            break;
        case 2:
            ED_STR(sha256);
            break;
        case 3:
            ED_BOOL(signed_);
            break;
        case 4:
            ED_STR(signer);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_software(struct ed *d, const uint8_t *p, const uint8_t *end,
                        Vigil__SoftwareInventory *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_STR(name);
            break;
        case 2:
            ED_STR(version);
            break;
        case 3:
            ED_STR(vendor);
            break;
        default:
            return false;
        }
    }
    return true;
}

static bool ed_generic(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__GenericEvent *m)
{
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_STR(category);
            break;
        case 2:
            ED_STR(service);
            break;
        case 3:
            ED_STR(provider);
            break;
        case 4:
            ED_NUM(event_id, uint32_t);
            break;
        default:
            return false;
        }
    }
    return true;
}

/* One member of the kind oneof: field number n, its bytes [p, end). */
#define ED_KIND(CASE, member, Type, INIT, fn)                                                      \
    case VIGIL__EVENT__KIND_##CASE: {                                                              \
        Vigil__##Type *k = vg_arena_alloc(d->a, sizeof(*k));                                       \
                                                                                                   \
        if (k == NULL)                                                                             \
            return false;                                                                          \
        *k = (Vigil__##Type)VIGIL__##INIT##__INIT;                                                 \
        ev->member = k;                                                                            \
        return fn(d, p, end, k);                                                                   \
    }

static bool ed_kind(struct ed *d, Vigil__Event *ev, uint32_t n, const uint8_t *p,
                    const uint8_t *end)
{
    switch (n) {
        ED_KIND(PROCESS_CREATED, process_created, ProcessCreated, PROCESS_CREATED,
                ed_process_created)
        ED_KIND(PROCESS_EXITED, process_exited, ProcessExited, PROCESS_EXITED, ed_process_exited)
        ED_KIND(FILE, file, FileEvent, FILE_EVENT, ed_file)
        ED_KIND(NETWORK, network, NetworkConnection, NETWORK_CONNECTION, ed_network)
        ED_KIND(DNS, dns, DnsQuery, DNS_QUERY, ed_dns)
        ED_KIND(REGISTRY, registry, RegistryEvent, REGISTRY_EVENT, ed_registry)
        ED_KIND(LOGON, logon, LogonEvent, LOGON_EVENT, ed_logon)
        ED_KIND(IMAGE_LOAD, image_load, ImageLoad, IMAGE_LOAD, ed_image_load)
        ED_KIND(SOFTWARE, software, SoftwareInventory, SOFTWARE_INVENTORY, ed_software)
        ED_KIND(GENERIC, generic, GenericEvent, GENERIC_EVENT, ed_generic)
    default:
        return false;
    }
}

static bool ed_event(struct ed *d, Vigil__Event *m, const uint8_t *p, const uint8_t *end)
{
    Vigil__ProcessRef *actor;
    const uint8_t *sp;
    size_t sn;
    uint32_t seen = 0, f;
    unsigned wt;
    uint64_t v;

    (void)v;
    while (p < end) {
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))
            return false;
        switch (f) {
        case 1:
            ED_NUM(seq, uint64_t);
            break;
        case 2:
            ED_NUM(ts_us, int64_t);
            break;
        case 3:
            if (wt != 2 || !ed_len(&p, end, &sp, &sn))
                return false;
            if ((actor = vg_arena_alloc(d->a, sizeof(*actor))) == NULL)
                return false;
            *actor = (Vigil__ProcessRef)VIGIL__PROCESS_REF__INIT;
            if (!ed_process_ref(d, sp, sp + sn, actor))
                return false;
            m->actor = actor;
            break;
        case 10:
        case 11:
        case 12:
        case 13:
        case 14:
        case 15:
        case 16:
        case 17:
        case 18:
        case 19:
            /* A second member of the oneof: protobuf-c keeps the last; leave that to it. */
            if (wt != 2 || m->kind_case != VIGIL__EVENT__KIND__NOT_SET ||
                !ed_len(&p, end, &sp, &sn) || !ed_kind(d, m, f, sp, sp + sn))
                return false;
            m->kind_case = (Vigil__Event__KindCase)f;
            break;
        case 30:
            seen &= ~(UINT32_C(1) << 30); /* repeated */
            if (wt != 2 || d->nkv == VG_EVDEC_MAX_EXTRA || !ed_len(&p, end, &sp, &sn))
                return false;
            d->kv[d->nkv] = (Vigil__KeyValue)VIGIL__KEY_VALUE__INIT;
            if (!ed_key_value(d, sp, sp + sn, &d->kv[d->nkv]))
                return false;
            d->nkv++;
            break;
        default:
            return false;
        }
    }
    return true;
}

Vigil__Event *vg_event_decode(vg_arena *a, const uint8_t *p, size_t len)
{
    struct ed d;
    Vigil__Event *ev;
    Vigil__KeyValue **ptr, *kv;

    /* The event, then room for its strings: at most len bytes (see the file's comment), + 1
     * for an empty record. */
    ev = vg_arena_alloc(a, sizeof(*ev) + len + 1);
    if (ev == NULL)
        return NULL;
    *ev = (Vigil__Event)VIGIL__EVENT__INIT;
    d.a = a;
    d.s = (char *)(ev + 1);
    d.nkv = 0;
    if (!ed_event(&d, ev, p, p + len))
        return NULL;
    if (d.nkv > 0) {
        ptr = vg_arena_alloc(a, d.nkv * (sizeof(*ptr) + sizeof(*kv)));
        if (ptr == NULL)
            return NULL;
        kv = (Vigil__KeyValue *)(ptr + d.nkv);
        memcpy(kv, d.kv, d.nkv * sizeof(*kv));
        for (size_t i = 0; i < d.nkv; i++)
            ptr[i] = &kv[i];
        ev->extra = ptr;
        ev->n_extra = d.nkv;
    }
    return ev;
}

Vigil__Event *vg_event_unpack(vg_arena *a, ProtobufCAllocator *alloc, const uint8_t *p, size_t len)
{
    Vigil__Event *ev = vg_event_decode(a, p, len);

    return ev != NULL ? ev : vigil__event__unpack(alloc, len, p);
}
