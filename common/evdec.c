/*
 * evdec.c - a vigil.Event decoder for the hot read paths: the timeline's reads and the
 * ingest decode stage.
 *
 * protobuf-c's generic unpacker walks each message twice (a scan, then the parse),
 * looks every field up in its descriptor and makes one allocation per sub-message and
 * per string. On a replay that was most of the reading thread's time, more than zstd.
 * This decoder walks the bytes once, with one switch per message type, and takes one
 * arena allocation for the event, its actor, its kind and all its strings: the strings
 * fit in the record's own length, since each takes at least a tag byte and a length
 * byte of the wire format beside its content, and those pay for its NUL.
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
    char *s;                                /* next free byte for strings */
    Vigil__KeyValue kv[VG_EVDEC_MAX_EXTRA]; /* extra entries, copied out at the end */
    size_t nkv;
};

/* The event's fixed parts, allocated as one. */
struct ed_fixed {
    Vigil__Event ev;
    Vigil__ProcessRef actor;
    Vigil__ProcessRef created; /* process_created.process */
    union {
        Vigil__ProcessCreated process_created;
        Vigil__ProcessExited process_exited;
        Vigil__FileEvent file;
        Vigil__NetworkConnection network;
        Vigil__DnsQuery dns;
        Vigil__RegistryEvent registry;
        Vigil__LogonEvent logon;
        Vigil__ImageLoad image_load;
        Vigil__SoftwareInventory software;
        Vigil__GenericEvent generic;
    } k;
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

#define ED_BEGIN                                                                                   \
    uint32_t seen = 0, f;                                                                          \
    unsigned wt;                                                                                   \
    uint64_t v;                                                                                    \
    (void)v;                                                                                       \
    while (p < end) {                                                                              \
        if (!ed_tag(&p, end, &f, &wt) || !ed_once(&seen, f))                                       \
            return false;                                                                          \
        switch (f) {
#define ED_END                                                                                     \
    default:                                                                                       \
        return false;                                                                              \
        }                                                                                          \
        }                                                                                          \
        return true;
#define ED_STR(n, member)                                                                          \
    case n:                                                                                        \
        if (!ed_string(d, &p, end, wt, &m->member))                                                \
            return false;                                                                          \
        break;
#define ED_NUM(n, member, type)                                                                    \
    case n:                                                                                        \
        if (!ed_u64(&p, end, wt, &v))                                                              \
            return false;                                                                          \
        m->member = (type)v;                                                                       \
        break;
#define ED_BOOL(n, member)                                                                         \
    case n:                                                                                        \
        if (!ed_u64(&p, end, wt, &v))                                                              \
            return false;                                                                          \
        m->member = v != 0;                                                                        \
        break;

static bool ed_process_ref(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__ProcessRef *m)
{
    ED_BEGIN
    ED_NUM(1, pid, uint32_t)
    ED_NUM(2, creation_time_us, int64_t)
    ED_STR(3, image)
    ED_STR(4, command_line)
    ED_STR(5, sha256)
    ED_STR(6, sha1)
    ED_STR(7, md5)
    ED_STR(8, account)
    ED_STR(9, integrity_level)
    ED_STR(10, current_directory)
    ED_STR(11, original_file_name)
    ED_STR(12, logon_id)
    ED_END
}

static bool ed_key_value(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__KeyValue *m)
{
    ED_BEGIN
    ED_STR(1, key)
    ED_STR(2, value)
    ED_END
}

static bool ed_process_created(struct ed *d, const uint8_t *p, const uint8_t *end,
                               Vigil__ProcessCreated *m, Vigil__ProcessRef *proc)
{
    const uint8_t *sp;
    size_t sn;

    ED_BEGIN
case 1:
    if (wt != 2 || !ed_len(&p, end, &sp, &sn))
        return false;
    *proc = (Vigil__ProcessRef)VIGIL__PROCESS_REF__INIT;
    if (!ed_process_ref(d, sp, sp + sn, proc))
        return false;
    m->process = proc;
    break;
    ED_END
}

static bool ed_process_exited(struct ed *d, const uint8_t *p, const uint8_t *end,
                              Vigil__ProcessExited *m)
{
    (void)d;
    ED_BEGIN
    ED_NUM(1, exit_code, int32_t)
    ED_END
}

static bool ed_file(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__FileEvent *m)
{
    ED_BEGIN
    ED_NUM(1, op, Vigil__FileOp)
    ED_STR(2, path)
    ED_STR(3, previous_path)
    ED_STR(4, sha256)
    ED_NUM(5, size, uint64_t)
    ED_END
}

static bool ed_network(struct ed *d, const uint8_t *p, const uint8_t *end,
                       Vigil__NetworkConnection *m)
{
    ED_BEGIN
    ED_NUM(1, protocol, Vigil__Protocol)
    ED_BOOL(2, inbound)
    ED_STR(3, local_ip)
    ED_NUM(4, local_port, uint32_t)
    ED_STR(5, remote_ip)
    ED_NUM(6, remote_port, uint32_t)
    ED_STR(7, remote_hostname)
    ED_STR(8, url)
    ED_END
}

static bool ed_dns(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__DnsQuery *m)
{
    ED_BEGIN
    ED_STR(1, query_name)
    ED_NUM(2, query_type, uint32_t)
    ED_STR(3, results)
    ED_NUM(4, status, uint32_t)
    ED_END
}

static bool ed_registry(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__RegistryEvent *m)
{
    ED_BEGIN
    ED_NUM(1, op, Vigil__RegistryOp)
    ED_STR(2, key)
    ED_STR(3, value_name)
    ED_STR(4, value_data)
    ED_STR(5, value_type)
    ED_STR(6, new_name)
    ED_END
}

static bool ed_logon(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__LogonEvent *m)
{
    ED_BEGIN
    ED_BOOL(1, success)
    ED_NUM(2, logon_type, uint32_t)
    ED_STR(3, account)
    ED_STR(4, account_domain)
    ED_STR(5, source_ip)
    ED_NUM(6, source_port, uint32_t)
    ED_STR(7, workstation)
    ED_STR(8, logon_id)
    ED_STR(9, auth_package)
    ED_STR(10, failure_reason)
    ED_END
}

static bool ed_image_load(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__ImageLoad *m)
{
    ED_BEGIN
    ED_STR(1, path)
    ED_STR(2, sha256)
    ED_BOOL(3, signed_)
    ED_STR(4, signer)
    ED_END
}

static bool ed_software(struct ed *d, const uint8_t *p, const uint8_t *end,
                        Vigil__SoftwareInventory *m)
{
    ED_BEGIN
    ED_STR(1, name)
    ED_STR(2, version)
    ED_STR(3, vendor)
    ED_END
}

static bool ed_generic(struct ed *d, const uint8_t *p, const uint8_t *end, Vigil__GenericEvent *m)
{
    ED_BEGIN
    ED_STR(1, category)
    ED_STR(2, service)
    ED_STR(3, provider)
    ED_NUM(4, event_id, uint32_t)
    ED_END
}

/* One member of the kind oneof: field number n, its bytes [p, end). */
static bool ed_kind(struct ed *d, struct ed_fixed *x, uint32_t n, const uint8_t *p,
                    const uint8_t *end)
{
    Vigil__Event *ev = &x->ev;

    switch (n) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        x->k.process_created = (Vigil__ProcessCreated)VIGIL__PROCESS_CREATED__INIT;
        ev->process_created = &x->k.process_created;
        return ed_process_created(d, p, end, ev->process_created, &x->created);
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        x->k.process_exited = (Vigil__ProcessExited)VIGIL__PROCESS_EXITED__INIT;
        ev->process_exited = &x->k.process_exited;
        return ed_process_exited(d, p, end, ev->process_exited);
    case VIGIL__EVENT__KIND_FILE:
        x->k.file = (Vigil__FileEvent)VIGIL__FILE_EVENT__INIT;
        ev->file = &x->k.file;
        return ed_file(d, p, end, ev->file);
    case VIGIL__EVENT__KIND_NETWORK:
        x->k.network = (Vigil__NetworkConnection)VIGIL__NETWORK_CONNECTION__INIT;
        ev->network = &x->k.network;
        return ed_network(d, p, end, ev->network);
    case VIGIL__EVENT__KIND_DNS:
        x->k.dns = (Vigil__DnsQuery)VIGIL__DNS_QUERY__INIT;
        ev->dns = &x->k.dns;
        return ed_dns(d, p, end, ev->dns);
    case VIGIL__EVENT__KIND_REGISTRY:
        x->k.registry = (Vigil__RegistryEvent)VIGIL__REGISTRY_EVENT__INIT;
        ev->registry = &x->k.registry;
        return ed_registry(d, p, end, ev->registry);
    case VIGIL__EVENT__KIND_LOGON:
        x->k.logon = (Vigil__LogonEvent)VIGIL__LOGON_EVENT__INIT;
        ev->logon = &x->k.logon;
        return ed_logon(d, p, end, ev->logon);
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        x->k.image_load = (Vigil__ImageLoad)VIGIL__IMAGE_LOAD__INIT;
        ev->image_load = &x->k.image_load;
        return ed_image_load(d, p, end, ev->image_load);
    case VIGIL__EVENT__KIND_SOFTWARE:
        x->k.software = (Vigil__SoftwareInventory)VIGIL__SOFTWARE_INVENTORY__INIT;
        ev->software = &x->k.software;
        return ed_software(d, p, end, ev->software);
    case VIGIL__EVENT__KIND_GENERIC:
        x->k.generic = (Vigil__GenericEvent)VIGIL__GENERIC_EVENT__INIT;
        ev->generic = &x->k.generic;
        return ed_generic(d, p, end, ev->generic);
    default:
        return false;
    }
}

static bool ed_event(struct ed *d, struct ed_fixed *x, const uint8_t *p, const uint8_t *end)
{
    Vigil__Event *m = &x->ev;
    const uint8_t *sp;
    size_t sn;

    ED_BEGIN
    ED_NUM(1, seq, uint64_t)
    ED_NUM(2, ts_us, int64_t)
case 3:
    if (wt != 2 || !ed_len(&p, end, &sp, &sn))
        return false;
    x->actor = (Vigil__ProcessRef)VIGIL__PROCESS_REF__INIT;
    if (!ed_process_ref(d, sp, sp + sn, &x->actor))
        return false;
    m->actor = &x->actor;
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
    if (wt != 2 || m->kind_case != VIGIL__EVENT__KIND__NOT_SET || !ed_len(&p, end, &sp, &sn) ||
        !ed_kind(d, x, f, sp, sp + sn))
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
    ED_END
}

Vigil__Event *vg_event_decode(vg_arena *a, const uint8_t *p, size_t len)
{
    struct ed d;
    struct ed_fixed *x;
    Vigil__KeyValue **ptr, *kv;

    /* The strings need at most len bytes (see the file's comment), + 1 for an empty record. */
    x = vg_arena_alloc(a, sizeof(*x) + len + 1);
    if (x == NULL)
        return NULL;
    x->ev = (Vigil__Event)VIGIL__EVENT__INIT;
    d.s = (char *)(x + 1);
    d.nkv = 0;
    if (!ed_event(&d, x, p, p + len))
        return NULL;
    if (d.nkv > 0) {
        ptr = vg_arena_alloc(a, d.nkv * (sizeof(*ptr) + sizeof(*kv)));
        if (ptr == NULL)
            return NULL;
        kv = (Vigil__KeyValue *)(ptr + d.nkv);
        memcpy(kv, d.kv, d.nkv * sizeof(*kv));
        for (size_t i = 0; i < d.nkv; i++)
            ptr[i] = &kv[i];
        x->ev.extra = ptr;
        x->ev.n_extra = d.nkv;
    }
    return &x->ev;
}

Vigil__Event *vg_event_unpack(vg_arena *a, ProtobufCAllocator *alloc, const uint8_t *p, size_t len)
{
    Vigil__Event *ev = vg_event_decode(a, p, len);

    return ev != NULL ? ev : vigil__event__unpack(alloc, len, p);
}
