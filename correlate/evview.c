/*
 * evview.c - the flat, Sigma-named view of one telemetry event (see evview.h).
 *
 * vg_fields[] below is the single source of truth for which Sigma field names have a
 * typed home and what they mean; correlate/FIELDS.md renders it for people.
 *
 * THREAD SAFETY: the tables are const; a view belongs to the thread that built it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "vg.h"
#include "evview.h"

struct vg_field_def {
    const char *name; /* Sigma / Sysmon / Windows Security field name */
    enum vg_field f;  /* its typed home */
    bool canonical;   /* the name vg_field_name returns */
    const char *note; /* what it holds, and from where */
};

/* Sorted by name, case-insensitively (vg_field_by_name binary-searches; a unit test checks
 * the order and that every field has exactly one canonical name). */
static const struct vg_field_def vg_fields[] = {
    {"AncestorCommandLine", VG_F_ANCESTOR_COMMAND_LINE, true,
     "vigil: the command lines of the process's known ancestors (process_creation: of the new "
     "process; otherwise of the actor), parent first; a value matches when it matches one of "
     "them (SIGMA.md, Lineage)"},
    {"AncestorImage", VG_F_ANCESTOR_IMAGE, true, "vigil: as AncestorCommandLine, the images"},
    {"AuthenticationPackageName", VG_F_AUTH_PACKAGE, true, "logon: LogonEvent.auth_package"},
    {"Channel", VG_F_CHANNEL, true, "imported: the event log channel (kept in extra)"},
    {"CommandLine", VG_F_COMMAND_LINE, true,
     "process_creation: the new process; otherwise the actor"},
    {"Computer", VG_F_COMPUTER, true, "batch machine_name (else machine_id)"},
    {"CurrentDirectory", VG_F_CURRENT_DIRECTORY, true, "as CommandLine"},
    {"DestinationHostname", VG_F_DESTINATION_HOSTNAME, true,
     "network: remote_hostname, outbound connections only"},
    {"DestinationIp", VG_F_DESTINATION_IP, true,
     "network: Sysmon 3 semantics, the side that accepted: remote_ip when Initiated=true, "
     "local_ip when Initiated=false"},
    {"DestinationPort", VG_F_DESTINATION_PORT, true, "network: as DestinationIp, decimal"},
    {"Details", VG_F_DETAILS, true, "registry: value_data"},
    {"EventID", VG_F_EVENT_ID, true,
     "generic: event_id; typed kinds: the Sysmon id of the kind (1, 5, 3, 11, 2, 23, 22, 12, "
     "13, 14, 7) or Security 4624/4625 for logons"},
    {"EventType", VG_F_EVENT_TYPE, true,
     "registry: CreateKey, DeleteKey, SetValue, DeleteValue, RenameKey"},
    {"Hashes", VG_F_HASHES, true,
     "\"SHA1=..,MD5=..,SHA256=..\" (parts present) of the new process / actor; image_load and "
     "file events: \"SHA256=..\" of the image or file"},
    {"Image", VG_F_IMAGE, true, "process_creation: the new process; otherwise the actor"},
    {"ImageLoaded", VG_F_IMAGE_LOADED, true, "image_load: path"},
    {"Initiated", VG_F_INITIATED, true, "network: \"true\" unless inbound"},
    {"IntegrityLevel", VG_F_INTEGRITY_LEVEL, true, "as CommandLine"},
    {"IpAddress", VG_F_IP_ADDRESS, true, "logon: source_ip"},
    {"IpPort", VG_F_IP_PORT, true, "logon: source_port, decimal"},
    {"LogonId", VG_F_LOGON_ID, true,
     "as CommandLine; logon events: LogonEvent.logon_id (TargetLogonId)"},
    {"LogonType", VG_F_LOGON_TYPE, true, "logon: decimal, always present (0 is System)"},
    {"md5", VG_F_MD5, true, "as Hashes, hex"},
    {"NewName", VG_F_NEW_NAME, true, "registry rename: new_name"},
    {"NewProcessName", VG_F_IMAGE, false, "alias of Image (Security 4688)"},
    {"OriginalFileName", VG_F_ORIGINAL_FILE_NAME, true, "as CommandLine"},
    {"ParentCommandLine", VG_F_PARENT_COMMAND_LINE, true,
     "process_creation: the actor; other kinds: filled by the shard from its process table"},
    {"ParentImage", VG_F_PARENT_IMAGE, true, "as ParentCommandLine"},
    {"ParentProcessId", VG_F_PARENT_PROCESS_ID, true, "as ParentCommandLine, decimal"},
    {"ParentProcessName", VG_F_PARENT_IMAGE, false, "alias of ParentImage (Security 4688)"},
    {"ParentUser", VG_F_PARENT_USER, true, "as ParentCommandLine"},
    {"ProcessId", VG_F_PROCESS_ID, true, "as CommandLine, decimal"},
    {"ProcessName", VG_F_IMAGE, false, "alias of Image (Security logon events)"},
    {"Protocol", VG_F_PROTOCOL, true, "network: tcp, udp, icmp (lower case, as Sysmon)"},
    {"Provider_Name", VG_F_PROVIDER_NAME, true, "generic: provider; imported: kept in extra"},
    {"QueryName", VG_F_QUERY_NAME, true, "dns: query_name"},
    {"QueryResults", VG_F_QUERY_RESULTS, true, "dns: results"},
    {"QueryStatus", VG_F_QUERY_STATUS, true, "dns: status, decimal, always present"},
    {"sha1", VG_F_SHA1, true, "as Hashes, hex"},
    {"sha256", VG_F_SHA256, true, "as Hashes, hex"},
    {"Signature", VG_F_SIGNATURE, true, "image_load: signer"},
    {"Signed", VG_F_SIGNED, true, "image_load: \"true\" / \"false\", always present"},
    {"SourceFilename", VG_F_SOURCE_FILENAME, true, "file rename: previous_path"},
    {"SourceIp", VG_F_SOURCE_IP, true,
     "network: Sysmon 3 semantics, the initiator: local_ip when Initiated=true, remote_ip "
     "when Initiated=false"},
    {"SourcePort", VG_F_SOURCE_PORT, true, "network: as SourceIp, decimal"},
    {"TargetDomainName", VG_F_TARGET_DOMAIN_NAME, true, "logon: account_domain"},
    {"TargetFilename", VG_F_TARGET_FILENAME, true, "file events: path"},
    {"TargetObject", VG_F_TARGET_OBJECT, true,
     "registry: key, or key\\value_name when value_name is set"},
    {"TargetUserName", VG_F_TARGET_USER_NAME, true, "logon: account"},
    {"User", VG_F_USER, true,
     "as CommandLine (account); logon events without an actor account: "
     "TargetDomainName\\TargetUserName"},
    {"WorkstationName", VG_F_WORKSTATION_NAME, true, "logon: workstation"},
};

static const char *const vg_cat_names[VG_CAT__COUNT] = {
    [VG_CAT_NONE] = "",
    [VG_CAT_PROCESS_CREATION] = "process_creation",
    [VG_CAT_PROCESS_TERMINATION] = "process_termination",
    [VG_CAT_FILE_EVENT] = "file_event",
    [VG_CAT_FILE_CHANGE] = "file_change",
    [VG_CAT_FILE_DELETE] = "file_delete",
    [VG_CAT_FILE_RENAME] = "file_rename",
    [VG_CAT_FILE_ACCESS] = "file_access",
    [VG_CAT_NETWORK_CONNECTION] = "network_connection",
    [VG_CAT_DNS_QUERY] = "dns_query",
    [VG_CAT_REGISTRY_ADD] = "registry_add",
    [VG_CAT_REGISTRY_DELETE] = "registry_delete",
    [VG_CAT_REGISTRY_SET] = "registry_set",
    [VG_CAT_REGISTRY_RENAME] = "registry_rename",
    [VG_CAT_REGISTRY_EVENT] = "registry_event",
    [VG_CAT_IMAGE_LOAD] = "image_load",
    [VG_CAT_DRIVER_LOAD] = "driver_load",
    [VG_CAT_CREATE_REMOTE_THREAD] = "create_remote_thread",
    [VG_CAT_PROCESS_ACCESS] = "process_access",
    [VG_CAT_RAW_ACCESS_THREAD] = "raw_access_thread",
    [VG_CAT_PIPE_CREATED] = "pipe_created",
    [VG_CAT_WMI_EVENT] = "wmi_event",
    [VG_CAT_CREATE_STREAM_HASH] = "create_stream_hash",
    [VG_CAT_PROCESS_TAMPERING] = "process_tampering",
    [VG_CAT_PS_SCRIPT] = "ps_script",
    [VG_CAT_PS_MODULE] = "ps_module",
    [VG_CAT_PS_CLASSIC_START] = "ps_classic_start",
    [VG_CAT_PS_CLASSIC_PROVIDER_START] = "ps_classic_provider_start",
    [VG_CAT_PS_CLASSIC_SCRIPT] = "ps_classic_script",
    [VG_CAT_LOGON] = "logon",
    [VG_CAT_SOFTWARE] = "software",
    [VG_CAT_OTHER] = "other",
};

/* Event log channel -> Sigma service, for imported events of a typed kind (their service
 * is not carried by the protobuf; the channel kept in extra tells it). From Sigma's
 * mappings/thor.yml. */
static const struct {
    const char *channel;
    const char *service;
} vg_channel_services[] = {
    {"Security", "security"},
    {"System", "system"},
    {"Application", "application"},
    {"Microsoft-Windows-Sysmon/Operational", "sysmon"},
    {"Linux-Sysmon/Operational", "sysmon"},
    {"Microsoft-Windows-PowerShell/Operational", "powershell"},
    {"Windows PowerShell", "powershell-classic"},
    {"Microsoft-Windows-TaskScheduler/Operational", "taskscheduler"},
    {"Microsoft-Windows-WMI-Activity/Operational", "wmi"},
    {"Microsoft-Windows-Windows Defender/Operational", "windefend"},
    {"Microsoft-Windows-Bits-Client/Operational", "bits-client"},
};

/* Sysmon's EventType for each registry operation. */
static const char *const vg_reg_event_types[] = {
    [VIGIL__REGISTRY_OP__REGISTRY_OP_UNKNOWN] = NULL,
    [VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED] = "CreateKey",
    [VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED] = "DeleteKey",
    [VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET] = "SetValue",
    [VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED] = "DeleteValue",
    [VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED] = "RenameKey",
};

static void ev_put(struct vg_evview *v, enum vg_field f, const char *s);
static void ev_putn(struct vg_evview *v, enum vg_field f, const char *s, size_t n);
static void ev_put_u(struct vg_evview *v, enum vg_field f, uint64_t n);
static void ev_process(struct vg_evview *v, const Vigil__ProcessRef *p);
static void ev_parent(struct vg_evview *v, const Vigil__ProcessRef *p);
static void ev_hashes(struct vg_evview *v, const char *sha1, const char *md5, const char *sha256);
static void ev_kind(struct vg_evview *v, const Vigil__Event *ev);
static void ev_extra(struct vg_evview *v);
static const char *ev_service_of_channel(const struct vg_str *ch);

/* ---- names -------------------------------------------------------------------------- */

int vg_field_by_name(const char *name)
{
    size_t lo = 0, hi = VG_ARRAY_SIZE(vg_fields);

    if (name == NULL)
        return -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcasecmp(name, vg_fields[mid].name);

        if (c == 0)
            return (int)vg_fields[mid].f;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const char *vg_field_name(enum vg_field f)
{
    for (size_t i = 0; i < VG_ARRAY_SIZE(vg_fields); i++)
        if (vg_fields[i].f == f && vg_fields[i].canonical)
            return vg_fields[i].name;
    return NULL;
}

enum vg_cat vg_cat_by_name(const char *category)
{
    if (category == NULL || *category == '\0')
        return VG_CAT_NONE;
    for (int c = 1; c < VG_CAT__COUNT; c++)
        if (strcasecmp(category, vg_cat_names[c]) == 0)
            return (enum vg_cat)c;
    return VG_CAT_NONE;
}

const char *vg_cat_name(enum vg_cat c)
{
    if (c < 0 || c >= VG_CAT__COUNT)
        return "";
    return vg_cat_names[c];
}

/* For tests and FIELDS.md: the i-th row of the field table, or false past its end. */
bool vg_field_def_at(size_t i, const char **name, int *field, bool *canonical, const char **note)
{
    if (i >= VG_ARRAY_SIZE(vg_fields))
        return false;
    *name = vg_fields[i].name;
    *field = (int)vg_fields[i].f;
    *canonical = vg_fields[i].canonical;
    *note = vg_fields[i].note;
    return true;
}

/* ---- building ----------------------------------------------------------------------- */

void vg_evview_build(struct vg_evview *v, const Vigil__TelemetryBatch *batch,
                     const Vigil__Event *ev)
{
    memset(v->f, 0, sizeof(v->f));
    memset(v->from_extra, 0, sizeof(v->from_extra));
    v->cat = VG_CAT_NONE;
    v->os = batch ? batch->os : VIGIL__OS__OS_UNKNOWN;
    v->service = NULL;
    v->ts_us = ev->ts_us;
    v->seq = ev->seq;
    v->extra = ev->extra;
    v->n_extra = ev->n_extra;
    v->ev = ev;
    v->batch = batch;
    v->num_used = 0;

    if (batch != NULL)
        ev_put(v, VG_F_COMPUTER,
               batch->machine_name && *batch->machine_name ? batch->machine_name
                                                           : batch->machine_id);
    ev_kind(v, ev);
    ev_extra(v);
    if (v->service == NULL)
        v->service = ev_service_of_channel(&v->f[VG_F_CHANNEL]);
}

bool vg_evview_get(const struct vg_evview *v, const char *name, struct vg_str *out)
{
    int f = vg_field_by_name(name);
    /* The source's own text under exactly this name comes first: two aliases of one typed
     * field (NewProcessName, ProcessName) may carry different values in one event. Only a
     * field that an extra entry named can have one (ev_extra), so the others, most of the
     * lookups, skip the scan. */
    bool scan = f >= 0 && !vg_field_is_list(f) && (v->from_extra[f / 64] >> (f % 64) & 1) != 0;

    for (size_t i = 0; scan && i < v->n_extra; i++) {
        const Vigil__KeyValue *kv = v->extra[i];

        if (kv != NULL && kv->key != NULL && strcasecmp(kv->key, name) == 0) {
            out->p = kv->value ? kv->value : "";
            out->n = strlen(out->p);
            return true;
        }
    }
    if (f >= 0 && v->f[f].p != NULL) {
        *out = v->f[f];
        return true;
    }
    /* Names without a typed home; and a lineage name the shard did not fill, so that an
     * imported event's own data under that name still reads back (import.h). */
    for (size_t i = 0; (f < 0 || vg_field_is_list(f)) && i < v->n_extra; i++) {
        const Vigil__KeyValue *kv = v->extra[i];

        if (kv != NULL && kv->key != NULL && strcasecmp(kv->key, name) == 0) {
            out->p = kv->value ? kv->value : "";
            out->n = strlen(out->p);
            return true;
        }
    }
    out->p = NULL;
    out->n = 0;
    return false;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Empty strings are absent: proto3 cannot tell "" from unset. */
static void ev_put(struct vg_evview *v, enum vg_field f, const char *s)
{
    if (s != NULL && *s != '\0')
        ev_putn(v, f, s, strlen(s));
}

static void ev_putn(struct vg_evview *v, enum vg_field f, const char *s, size_t n)
{
    v->f[f].p = s;
    v->f[f].n = n;
}

/* A value being built in v->num from pieces (numbers, Hashes, joined paths), without
 * vsnprintf: the view is built for every event, and the format parser cost more than all
 * of the rest of the view. */
struct ev_fmt {
    char *p;     /* v->num + v->num_used */
    size_t n;    /* bytes written */
    size_t room; /* bytes left in v->num, the NUL included */
    bool over;   /* a piece did not fit */
};

static void ev_fmt_begin(struct vg_evview *v, struct ev_fmt *b)
{
    b->p = v->num + v->num_used;
    b->n = 0;
    b->room = sizeof(v->num) - v->num_used;
    b->over = false;
}

static void ev_fmt_cat(struct ev_fmt *b, const char *s, size_t n)
{
    if (b->over || n >= b->room - b->n) {
        b->over = true;
        return;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void ev_fmt_str(struct ev_fmt *b, const char *s)
{
    ev_fmt_cat(b, s, strlen(s));
}

/* n in decimal, as %llu writes it. */
static void ev_fmt_u64(struct ev_fmt *b, uint64_t n)
{
    char d[20];
    size_t i = sizeof(d);

    do {
        d[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    ev_fmt_cat(b, d + i, sizeof(d) - i);
}

/* Sets field f to the value built. A value that does not fit is left absent rather than
 * cut: a truncated value would match rules it should not. */
static void ev_fmt_end(struct vg_evview *v, enum vg_field f, struct ev_fmt *b)
{
    if (b->over)
        return;
    b->p[b->n] = '\0';
    ev_putn(v, f, b->p, b->n);
    v->num_used += b->n + 1;
}

/* f = n in decimal, present even when 0. */
static void ev_put_dec(struct vg_evview *v, enum vg_field f, uint64_t n)
{
    struct ev_fmt b;

    ev_fmt_begin(v, &b);
    ev_fmt_u64(&b, n);
    ev_fmt_end(v, f, &b);
}

/* f = a "\\" b (registry key and value, domain and account). */
static void ev_put_join(struct vg_evview *v, enum vg_field f, const char *a, const char *c)
{
    struct ev_fmt b;

    ev_fmt_begin(v, &b);
    ev_fmt_str(&b, a);
    ev_fmt_cat(&b, "\\", 1);
    ev_fmt_str(&b, c);
    ev_fmt_end(v, f, &b);
}

static void ev_put_u(struct vg_evview *v, enum vg_field f, uint64_t n)
{
    if (n != 0)
        ev_put_dec(v, f, n);
}

static void ev_put_bool(struct vg_evview *v, enum vg_field f, bool b)
{
    ev_putn(v, f, b ? "true" : "false", b ? 4 : 5);
}

/* Sysmon writes Hashes as SHA1=..,MD5=..,SHA256=..[,IMPHASH=..], in that order. */
static void ev_hashes(struct vg_evview *v, const char *sha1, const char *md5, const char *sha256)
{
    bool h1 = sha1 && *sha1, h5 = md5 && *md5, h256 = sha256 && *sha256;
    struct ev_fmt b;

    if (!h1 && !h5 && !h256)
        return;
    ev_fmt_begin(v, &b);
    if (h1) {
        ev_fmt_cat(&b, "SHA1=", 5);
        ev_fmt_str(&b, sha1);
    }
    if (h5) {
        if (h1)
            ev_fmt_cat(&b, ",", 1);
        ev_fmt_cat(&b, "MD5=", 4);
        ev_fmt_str(&b, md5);
    }
    if (h256) {
        if (h1 || h5)
            ev_fmt_cat(&b, ",", 1);
        ev_fmt_cat(&b, "SHA256=", 7);
        ev_fmt_str(&b, sha256);
    }
    ev_fmt_end(v, VG_F_HASHES, &b);
}

/* The process fields (Image, CommandLine, ...) from p. */
static void ev_process(struct vg_evview *v, const Vigil__ProcessRef *p)
{
    if (p == NULL)
        return;
    ev_put(v, VG_F_IMAGE, p->image);
    ev_put(v, VG_F_COMMAND_LINE, p->command_line);
    ev_put(v, VG_F_ORIGINAL_FILE_NAME, p->original_file_name);
    ev_put(v, VG_F_USER, p->account);
    ev_put(v, VG_F_INTEGRITY_LEVEL, p->integrity_level);
    ev_put(v, VG_F_CURRENT_DIRECTORY, p->current_directory);
    ev_put(v, VG_F_LOGON_ID, p->logon_id);
    ev_put_u(v, VG_F_PROCESS_ID, p->pid);
    ev_put(v, VG_F_SHA256, p->sha256);
    ev_put(v, VG_F_SHA1, p->sha1);
    ev_put(v, VG_F_MD5, p->md5);
    ev_hashes(v, p->sha1, p->md5, p->sha256);
}

static void ev_parent(struct vg_evview *v, const Vigil__ProcessRef *p)
{
    if (p == NULL)
        return;
    ev_put(v, VG_F_PARENT_IMAGE, p->image);
    ev_put(v, VG_F_PARENT_COMMAND_LINE, p->command_line);
    ev_put(v, VG_F_PARENT_USER, p->account);
    ev_put_u(v, VG_F_PARENT_PROCESS_ID, p->pid);
}

/* Hashes of an object (a loaded image, a file) rather than of the actor. */
static void ev_object_sha256(struct vg_evview *v, const char *sha256)
{
    v->f[VG_F_SHA256] = (struct vg_str){0};
    v->f[VG_F_SHA1] = (struct vg_str){0};
    v->f[VG_F_MD5] = (struct vg_str){0};
    v->f[VG_F_HASHES] = (struct vg_str){0};
    ev_put(v, VG_F_SHA256, sha256);
    ev_hashes(v, NULL, NULL, sha256);
}

static void ev_file(struct vg_evview *v, const Vigil__FileEvent *fe)
{
    static const struct {
        enum vg_cat cat;
        uint32_t eid;
    } ops[] = {
        [VIGIL__FILE_OP__FILE_OP_UNKNOWN] = {VG_CAT_FILE_EVENT, 0},
        [VIGIL__FILE_OP__FILE_CREATED] = {VG_CAT_FILE_EVENT, 11},
        [VIGIL__FILE_OP__FILE_MODIFIED] = {VG_CAT_FILE_CHANGE, 2},
        [VIGIL__FILE_OP__FILE_DELETED] = {VG_CAT_FILE_DELETE, 23},
        [VIGIL__FILE_OP__FILE_RENAMED] = {VG_CAT_FILE_RENAME, 0},
        [VIGIL__FILE_OP__FILE_READ] = {VG_CAT_FILE_ACCESS, 0},
    };
    unsigned op = (unsigned)fe->op < VG_ARRAY_SIZE(ops) ? (unsigned)fe->op : 0;

    v->cat = ops[op].cat;
    ev_put_u(v, VG_F_EVENT_ID, ops[op].eid);
    ev_put(v, VG_F_TARGET_FILENAME, fe->path);
    ev_put(v, VG_F_SOURCE_FILENAME, fe->previous_path);
    ev_object_sha256(v, fe->sha256);
}

/* Sysmon 3: Source is the side that initiated the connection. For an outbound connection
 * that is this machine (local -> remote); for an inbound one it is the remote peer, and
 * Destination is the local side (Sysmon then reports the local listening port as
 * DestinationPort). DestinationHostname is only the remote name for outbound. */
static void ev_network(struct vg_evview *v, const Vigil__NetworkConnection *n)
{
    static const char *const protos[] = {NULL, "tcp", "udp", "icmp"};
    bool out = !n->inbound;

    v->cat = VG_CAT_NETWORK_CONNECTION;
    ev_put_u(v, VG_F_EVENT_ID, 3);
    if ((unsigned)n->protocol < VG_ARRAY_SIZE(protos))
        ev_put(v, VG_F_PROTOCOL, protos[n->protocol]);
    ev_put_bool(v, VG_F_INITIATED, out);
    ev_put(v, VG_F_SOURCE_IP, out ? n->local_ip : n->remote_ip);
    ev_put_u(v, VG_F_SOURCE_PORT, out ? n->local_port : n->remote_port);
    ev_put(v, VG_F_DESTINATION_IP, out ? n->remote_ip : n->local_ip);
    ev_put_u(v, VG_F_DESTINATION_PORT, out ? n->remote_port : n->local_port);
    if (out)
        ev_put(v, VG_F_DESTINATION_HOSTNAME, n->remote_hostname);
}

static void ev_registry(struct vg_evview *v, const Vigil__RegistryEvent *r)
{
    static const enum vg_cat cats[] = {
        [VIGIL__REGISTRY_OP__REGISTRY_OP_UNKNOWN] = VG_CAT_REGISTRY_EVENT,
        [VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED] = VG_CAT_REGISTRY_ADD,
        [VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED] = VG_CAT_REGISTRY_DELETE,
        [VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET] = VG_CAT_REGISTRY_SET,
        [VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED] = VG_CAT_REGISTRY_DELETE,
        [VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED] = VG_CAT_REGISTRY_RENAME,
    };
    static const uint32_t eids[] = {12, 12, 12, 13, 12, 14};
    unsigned op = (unsigned)r->op < VG_ARRAY_SIZE(cats) ? (unsigned)r->op : 0;

    v->cat = cats[op];
    ev_put_u(v, VG_F_EVENT_ID, eids[op]);
    ev_put(v, VG_F_EVENT_TYPE, vg_reg_event_types[op]);
    if (r->value_name != NULL && *r->value_name != '\0')
        ev_put_join(v, VG_F_TARGET_OBJECT, r->key ? r->key : "", r->value_name);
    else
        ev_put(v, VG_F_TARGET_OBJECT, r->key);
    ev_put(v, VG_F_DETAILS, r->value_data);
    ev_put(v, VG_F_NEW_NAME, r->new_name);
}

static void ev_logon(struct vg_evview *v, const Vigil__LogonEvent *l)
{
    v->cat = VG_CAT_LOGON;
    v->service = "security";
    ev_put_u(v, VG_F_EVENT_ID, l->success ? 4624 : 4625);
    /* Always present: 0 is a real logon type (System, at boot). */
    ev_put_dec(v, VG_F_LOGON_TYPE, (unsigned)l->logon_type);
    ev_put(v, VG_F_TARGET_USER_NAME, l->account);
    ev_put(v, VG_F_TARGET_DOMAIN_NAME, l->account_domain);
    ev_put(v, VG_F_IP_ADDRESS, l->source_ip);
    ev_put_u(v, VG_F_IP_PORT, l->source_port);
    ev_put(v, VG_F_WORKSTATION_NAME, l->workstation);
    ev_put(v, VG_F_LOGON_ID, l->logon_id);
    ev_put(v, VG_F_AUTH_PACKAGE, l->auth_package);
    if (v->f[VG_F_USER].p == NULL && l->account != NULL && *l->account != '\0') {
        if (l->account_domain != NULL && *l->account_domain != '\0')
            ev_put_join(v, VG_F_USER, l->account_domain, l->account);
        else
            ev_put(v, VG_F_USER, l->account);
    }
}

static void ev_kind(struct vg_evview *v, const Vigil__Event *ev)
{
    if (ev->kind_case != VIGIL__EVENT__KIND_PROCESS_CREATED)
        ev_process(v, ev->actor);
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        v->cat = VG_CAT_PROCESS_CREATION;
        ev_put_u(v, VG_F_EVENT_ID, 1);
        ev_process(v, ev->process_created->process);
        ev_parent(v, ev->actor);
        break;
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        v->cat = VG_CAT_PROCESS_TERMINATION;
        ev_put_u(v, VG_F_EVENT_ID, 5);
        break;
    case VIGIL__EVENT__KIND_FILE:
        ev_file(v, ev->file);
        break;
    case VIGIL__EVENT__KIND_NETWORK:
        ev_network(v, ev->network);
        break;
    case VIGIL__EVENT__KIND_DNS:
        v->cat = VG_CAT_DNS_QUERY;
        ev_put_u(v, VG_F_EVENT_ID, 22);
        ev_put(v, VG_F_QUERY_NAME, ev->dns->query_name);
        ev_put(v, VG_F_QUERY_RESULTS, ev->dns->results);
        ev_put_dec(v, VG_F_QUERY_STATUS, (unsigned)ev->dns->status);
        break;
    case VIGIL__EVENT__KIND_REGISTRY:
        ev_registry(v, ev->registry);
        break;
    case VIGIL__EVENT__KIND_LOGON:
        ev_logon(v, ev->logon);
        break;
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        v->cat = VG_CAT_IMAGE_LOAD;
        ev_put_u(v, VG_F_EVENT_ID, 7);
        ev_put(v, VG_F_IMAGE_LOADED, ev->image_load->path);
        ev_put_bool(v, VG_F_SIGNED, ev->image_load->signed_);
        ev_put(v, VG_F_SIGNATURE, ev->image_load->signer);
        ev_object_sha256(v, ev->image_load->sha256);
        break;
    case VIGIL__EVENT__KIND_SOFTWARE:
        v->cat = VG_CAT_SOFTWARE;
        break;
    case VIGIL__EVENT__KIND_GENERIC: {
        const Vigil__GenericEvent *g = ev->generic;

        v->cat = vg_cat_by_name(g->category);
        if (v->cat == VG_CAT_NONE)
            v->cat = VG_CAT_OTHER;
        if (g->service != NULL && *g->service != '\0')
            v->service = g->service;
        ev_put(v, VG_F_PROVIDER_NAME, g->provider);
        ev_put_u(v, VG_F_EVENT_ID, g->event_id);
        break;
    }
    default:
        break;
    }
}

/* An extra entry named like a typed field is the source's own text: it wins (see
 * vg_evview_get in evview.h). Cost: one binary search per extra entry. */
static void ev_extra(struct vg_evview *v)
{
    for (size_t i = 0; i < v->n_extra; i++) {
        const Vigil__KeyValue *kv = v->extra[i];
        int f;

        if (kv == NULL || kv->key == NULL)
            continue;
        f = vg_field_by_name(kv->key);
        if (f >= 0 && !vg_field_is_list(f)) { /* lineage is the process table's, not the event's */
            ev_putn(v, (enum vg_field)f, kv->value ? kv->value : "",
                    kv->value ? strlen(kv->value) : 0);
            v->from_extra[f / 64] |= UINT64_C(1) << (f % 64);
        }
    }
}

static const char *ev_service_of_channel(const struct vg_str *ch)
{
    if (ch->p == NULL)
        return NULL;
    for (size_t i = 0; i < VG_ARRAY_SIZE(vg_channel_services); i++)
        if (strlen(vg_channel_services[i].channel) == ch->n &&
            strncasecmp(ch->p, vg_channel_services[i].channel, ch->n) == 0)
            return vg_channel_services[i].service;
    return NULL;
}
