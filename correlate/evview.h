/*
 * evview.h - the flat view of one event that rules evaluate: its Sigma logsource and its
 * fields under Sigma's (Sysmon / Windows Security) names, built once per event from the
 * telemetry protobuf.
 *
 * THREAD SAFETY: a view belongs to the thread that built it (a shard or an importer).
 */
#ifndef VG_EVVIEW_H
#define VG_EVVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry.pb-c.h"

/* Sigma logsource categories vigil routes rules by. */
enum vg_cat {
    VG_CAT_NONE = 0,
    VG_CAT_PROCESS_CREATION,
    VG_CAT_PROCESS_TERMINATION,
    VG_CAT_FILE_EVENT, /* created */
    VG_CAT_FILE_CHANGE,
    VG_CAT_FILE_DELETE,
    VG_CAT_FILE_RENAME,
    VG_CAT_FILE_ACCESS,
    VG_CAT_NETWORK_CONNECTION,
    VG_CAT_DNS_QUERY,
    VG_CAT_REGISTRY_ADD,
    VG_CAT_REGISTRY_DELETE,
    VG_CAT_REGISTRY_SET,
    VG_CAT_REGISTRY_RENAME,
    VG_CAT_REGISTRY_EVENT,
    VG_CAT_IMAGE_LOAD,
    VG_CAT_DRIVER_LOAD,
    VG_CAT_CREATE_REMOTE_THREAD,
    VG_CAT_PROCESS_ACCESS,
    VG_CAT_RAW_ACCESS_THREAD,
    VG_CAT_PIPE_CREATED,
    VG_CAT_WMI_EVENT,
    VG_CAT_CREATE_STREAM_HASH,
    VG_CAT_PROCESS_TAMPERING,
    VG_CAT_PS_SCRIPT,
    VG_CAT_PS_MODULE,
    VG_CAT_PS_CLASSIC_START,
    VG_CAT_PS_CLASSIC_PROVIDER_START,
    VG_CAT_PS_CLASSIC_SCRIPT,
    VG_CAT_LOGON,    /* Security 4624/4625 ...; service "security" */
    VG_CAT_SOFTWARE, /* software inventory; no Sigma category */
    VG_CAT_OTHER,    /* a generic event with only a service */
    VG_CAT__COUNT
};

/* Fields with a typed home in telemetry.proto, by Sigma name. */
enum vg_field {
    VG_F_IMAGE = 0,
    VG_F_COMMAND_LINE,
    VG_F_PARENT_IMAGE,
    VG_F_PARENT_COMMAND_LINE,
    VG_F_ORIGINAL_FILE_NAME,
    VG_F_USER,
    VG_F_PARENT_USER,
    VG_F_HASHES, /* "SHA1=..,MD5=..,SHA256=.." as Sysmon writes it */
    VG_F_SHA256,
    VG_F_SHA1,
    VG_F_MD5,
    VG_F_INTEGRITY_LEVEL,
    VG_F_CURRENT_DIRECTORY,
    VG_F_PROCESS_ID,
    VG_F_PARENT_PROCESS_ID,
    VG_F_LOGON_ID,
    VG_F_TARGET_FILENAME,
    VG_F_SOURCE_FILENAME, /* previous name of a rename */
    VG_F_TARGET_OBJECT,
    VG_F_DETAILS,
    VG_F_EVENT_TYPE, /* registry: CreateKey, SetValue, DeleteKey, DeleteValue, RenameKey */
    VG_F_NEW_NAME,
    VG_F_PROTOCOL,
    VG_F_INITIATED,
    VG_F_SOURCE_IP,
    VG_F_SOURCE_PORT,
    VG_F_DESTINATION_IP,
    VG_F_DESTINATION_PORT,
    VG_F_DESTINATION_HOSTNAME,
    VG_F_QUERY_NAME,
    VG_F_QUERY_RESULTS,
    VG_F_QUERY_STATUS,
    VG_F_IMAGE_LOADED,
    VG_F_SIGNED,
    VG_F_SIGNATURE,
    VG_F_LOGON_TYPE,
    VG_F_TARGET_USER_NAME,
    VG_F_TARGET_DOMAIN_NAME,
    VG_F_IP_ADDRESS,
    VG_F_IP_PORT,
    VG_F_WORKSTATION_NAME,
    VG_F_AUTH_PACKAGE,
    VG_F_EVENT_ID,
    VG_F_COMPUTER,
    VG_F_PROVIDER_NAME, /* imported and generic events: the Windows event provider */
    VG_F_CHANNEL,       /* imported events: the Windows event log channel */
    /* Lineage (vigil's own names): lists, filled by the shard from its process table when a
     * rule uses them (cor_ruleset_uses_lineage). The value is every known ancestor of the
     * event's process, parent first, each followed by VG_LIST_SEP and the whole preceded by
     * it; a Sigma value matches when it matches one ancestor (sigma_compile.c). */
    VG_F_ANCESTOR_IMAGE,
    VG_F_ANCESTOR_COMMAND_LINE,
    VG_F__COUNT
};

/* Separates the elements of a list field (U+001E RECORD SEPARATOR). The shard replaces it
 * inside elements (VG_LIST_SEP_SUB), so that no value can forge an element boundary. */
#define VG_LIST_SEP     '\x1e'
#define VG_LIST_SEP_SUB '\x1f'

/* Whether a typed field holds a list (see VG_F_ANCESTOR_IMAGE). */
static inline bool vg_field_is_list(int f)
{
    return f == VG_F_ANCESTOR_IMAGE || f == VG_F_ANCESTOR_COMMAND_LINE;
}

struct vg_str {
    const char *p; /* NULL: the event has no such field */
    size_t n;
};

struct vg_evview {
    enum vg_cat cat;
    Vigil__Os os;
    const char *service; /* Sigma logsource service, or NULL */
    int64_t ts_us;
    uint64_t seq;
    struct vg_str f[VG_F__COUNT]; /* typed fields */
    /* Typed fields that an extra entry named (under any of their names): only for these can
     * vg_evview_get find the source's own text under an alias. */
    uint64_t from_extra[(VG_F__COUNT + 63) / 64];
    Vigil__KeyValue **extra; /* untyped fields by original name (borrowed) */
    size_t n_extra;
    const Vigil__Event *ev;             /* the event (borrowed) */
    const Vigil__TelemetryBatch *batch; /* its batch (borrowed) */
    char num[800];                      /* storage for fields formatted from numbers, Hashes and
                                           joined registry paths */
    size_t num_used;
};

/* Sigma field name -> enum vg_field, case-insensitive; -1 when it has no typed home.
 * Aliases (NewProcessName -> Image, ...) are listed in correlate/FIELDS.md. */
int vg_field_by_name(const char *name);
const char *vg_field_name(enum vg_field f);
/* Sigma category / service name -> enum vg_cat (VG_CAT_NONE if unknown). */
enum vg_cat vg_cat_by_name(const char *category);
const char *vg_cat_name(enum vg_cat c);

/* The i-th row of the documented field table (name, enum vg_field, canonical, note), for
 * tests and for rendering FIELDS.md; false past its end. */
bool vg_field_def_at(size_t i, const char **name, int *field, bool *canonical, const char **note);

/* Fills v from an event of a batch. Strings are borrowed from ev and batch, which must
 * outlive v. Parent fields for non-process-creation events are left empty; the shard fills
 * them from the process table when it knows them. Every extra entry named as a typed field
 * (canonical name or alias; not a lineage field) fills that field's slot, so a typed slot
 * left empty means that no extra entry carries the field under any of its names: readers
 * need not search extra for it. */
void vg_evview_build(struct vg_evview *v, const Vigil__TelemetryBatch *batch,
                     const Vigil__Event *ev);
/* The value of a field by Sigma name: typed first, then extra (case-insensitive name).
 * Lineage fields (vg_field_is_list) come from the shard only: an extra entry of that name
 * is returned only when the shard did not fill the field (an imported event read back).
 * An extra entry whose name is a typed field's name (canonical or alias) overrides the
 * typed rendering in v->f: it is the source's own text (an importer keeps it there when
 * the typed form would not render back byte for byte, e.g. hex process ids, Hashes with
 * IMPHASH). Returns false when the event has no such field. */
bool vg_evview_get(const struct vg_evview *v, const char *name, struct vg_str *out);

#endif /* VG_EVVIEW_H */
