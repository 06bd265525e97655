/*
 * evtx.c - Windows .evtx files read with libevtx, each record turned into the shared
 * JSON-lines schema (shared/data/telemetry/README.md) so that the JSON importer converts
 * it: one code path from a line (or a record) to an Event.
 *
 * A record's XML as libevtx renders it is parsed with libxml2; the values are made to match
 * what the converter of the shared data produced from the same XML (evtxexport -f xml):
 * SystemTime cut to microseconds, libevtx's zero-padded hex (0x00000000000003e7) un-padded
 * to the Windows form (0x3e7) for 10- and 18-character values, CR kept (libxml2 would turn
 * CR LF into LF, so CRs are escaped as character references before parsing).
 *
 * THREAD SAFETY: a reader belongs to one thread. libxml2 is used without global state
 * changes (no xmlCleanupParser), so several readers on several threads are fine.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libevtx.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "import.h"

#define ING_EVTX_MAX_XML (16u << 20) /* a record's XML larger than this is bad input */

struct ing_evtx {
    libevtx_file_t *file;
    int n;    /* records in the file */
    int next; /* index of the next record */
    char *buf;
    size_t cap;
};

static void ing_evtx_liberr(libevtx_error_t **e, const char *what, const char *path, char *err,
                            size_t errlen)
{
    char detail[256] = "";

    if (e != NULL && *e != NULL) {
        libevtx_error_sprint(*e, detail, sizeof(detail));
        libevtx_error_free(e);
    }
    snprintf(err, errlen, "evtx: %s %s: %s", what, path, detail);
}

bool ing_evtx_sniff(const void *head, size_t n)
{
    return n >= 8 && memcmp(head, "ElfFile\0", 8) == 0;
}

int ing_evtx_open(const char *path, ing_evtx **out, char *err, size_t errlen)
{
    libevtx_error_t *e = NULL;
    ing_evtx *x = vg_calloc(1, sizeof(*x));

    if (x == NULL) {
        snprintf(err, errlen, "evtx: out of memory");
        return -VG_ENOMEM;
    }
    if (libevtx_file_initialize(&x->file, &e) != 1) {
        ing_evtx_liberr(&e, "cannot initialise for", path, err, errlen);
        goto fail;
    }
    if (libevtx_file_open(x->file, path, LIBEVTX_OPEN_READ, &e) != 1) {
        ing_evtx_liberr(&e, "cannot open", path, err, errlen);
        libevtx_file_free(&x->file, NULL);
        goto fail;
    }
    if (libevtx_file_get_number_of_records(x->file, &x->n, &e) != 1) {
        ing_evtx_liberr(&e, "cannot count the records of", path, err, errlen);
        goto fail;
    }
    *out = x;
    return 0;

fail:
    ing_evtx_close(x);
    return -VG_EIO;
}

void ing_evtx_close(ing_evtx *x)
{
    if (x == NULL)
        return;
    if (x->file != NULL) {
        libevtx_file_close(x->file, NULL);
        libevtx_file_free(&x->file, NULL);
    }
    vg_free(x->buf);
    vg_free(x);
}

/* The XML of record i into x->buf. Returns its length or a negative vg_err. */
static long ing_evtx_xml(ing_evtx *x, int i)
{
    libevtx_record_t *rec = NULL;
    libevtx_error_t *e = NULL;
    size_t size = 0, need;
    uint8_t *raw = NULL;
    long rc = -VG_EINVAL;

    if (libevtx_file_get_record_by_index(x->file, i, &rec, &e) != 1 ||
        libevtx_record_get_utf8_xml_string_size(rec, &size, &e) != 1 || size == 0 ||
        size > ING_EVTX_MAX_XML)
        goto out;
    raw = vg_malloc(size);
    if (raw == NULL) {
        rc = -VG_ENOMEM;
        goto out;
    }
    if (libevtx_record_get_utf8_xml_string(rec, raw, size, &e) != 1)
        goto out;
    raw[size - 1] = '\0';
    size = strlen((char *)raw);
    if (size + 1 > x->cap) {
        char *nb = vg_malloc(size + 1);

        if (nb == NULL) {
            rc = -VG_ENOMEM;
            goto out;
        }
        vg_free(x->buf);
        x->buf = nb;
        x->cap = size + 1;
    }
    memcpy(x->buf, raw, size + 1);
    need = size;
    rc = (long)need;
out:
    if (e != NULL) {
        char detail[200] = "";

        libevtx_error_sprint(e, detail, sizeof(detail));
        vg_debug("evtx", "record %d: %s", i, detail);
        libevtx_error_free(&e);
    }
    vg_free(raw);
    if (rec != NULL)
        libevtx_record_free(&rec, NULL);
    return rc;
}

int ing_evtx_next(ing_evtx *x, json_t **out)
{
    long len;

    if (x->next >= x->n)
        return 0;
    len = ing_evtx_xml(x, x->next++);
    if (len < 0)
        return (int)len;
    return ing_evtx_record_json(x->buf, (size_t)len, out);
}

int ing_evtx_position(const ing_evtx *x)
{
    return x->next;
}

/* ---- XML to the JSON-lines schema --------------------------------------------------- */

static bool ing_is(const xmlNode *n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *ing_child(const xmlNode *n, const char *name)
{
    for (const xmlNode *c = n ? n->children : NULL; c != NULL; c = c->next)
        if (ing_is(c, name))
            return c;
    return NULL;
}

/* An element's text ("" when empty) or an attribute's value; the caller xmlFree()s it. */
static char *ing_text(const xmlNode *n)
{
    xmlChar *s = xmlNodeGetContent(n);

    return s != NULL ? (char *)s : (char *)xmlStrdup((const xmlChar *)"");
}

/* libevtx pads hex to 8 or 16 digits; Windows does not. "0x00000000000003e7" -> "0x3e7". */
static void ing_unpad_hex(char *s)
{
    size_t n = strlen(s), z;

    if ((n != 10 && n != 18) || s[0] != '0' || s[1] != 'x' || s[2] != '0')
        return;
    for (size_t k = 2; k < n; k++)
        if (!isxdigit((unsigned char)s[k]))
            return;
    for (z = 2; z < n - 1 && s[z] == '0'; z++)
        ;
    memmove(s + 2, s + z, n - z + 1);
}

static int ing_put_str(json_t *o, const char *key, const char *val)
{
    return json_object_set_new(o, key, val ? json_string(val) : json_null()) == 0 ? 0 : -VG_ENOMEM;
}

/* Adds the element's value under key, un-padding hex. Invalid UTF-8 is bad input. */
static int ing_put_data(json_t *data, const char *key, const xmlNode *n)
{
    char *v = ing_text(n);
    json_t *js;
    int rc = 0;

    if (v == NULL)
        return -VG_ENOMEM;
    ing_unpad_hex(v);
    js = json_string(v);
    if (js == NULL || json_object_set_new(data, key, js) < 0)
        rc = -VG_EINVAL;
    xmlFree(v);
    return rc;
}

/* UserData children flattened by element name: leaves only, at any depth. */
static int ing_flatten(json_t *data, const xmlNode *n)
{
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        bool leaf = true;
        int rc;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        for (const xmlNode *g = c->children; g != NULL; g = g->next)
            leaf &= g->type != XML_ELEMENT_NODE;
        rc = leaf ? ing_put_data(data, (const char *)c->name, c) : ing_flatten(data, c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *ing_service_of(const char *ch)
{
    static const struct {
        const char *channel, *service;
    } map[] = {
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
        {"DNS Server", "dns-server"},
        {"Microsoft-Windows-Windows Firewall With Advanced Security/Firewall", "firewall-as"},
    };

    for (size_t i = 0; ch != NULL && i < VG_ARRAY_SIZE(map); i++)
        if (strcmp(ch, map[i].channel) == 0)
            return map[i].service;
    return NULL;
}

/* The README's category table, plus what the shared data shows for Sysmon 4/16
 * (sysmon_status) and 24 (clipboard_capture). */
static const char *ing_category_of(const char *ch, long eid, const json_t *data)
{
    static const char *const sysmon[] = {
        [1] = "process_creation",     [2] = "file_change",         [3] = "network_connection",
        [4] = "sysmon_status",        [16] = "sysmon_status",      [24] = "clipboard_capture",
        [5] = "process_termination",  [6] = "driver_load",         [7] = "image_load",
        [8] = "create_remote_thread", [9] = "raw_access_thread",   [10] = "process_access",
        [11] = "file_event",          [12] = "registry_add",       [13] = "registry_set",
        [14] = "registry_event",      [15] = "create_stream_hash", [17] = "pipe_created",
        [18] = "pipe_created",        [19] = "wmi_event",          [20] = "wmi_event",
        [21] = "wmi_event",           [22] = "dns_query",          [23] = "file_delete",
        [25] = "process_tampering",   [26] = "file_delete",
    };

    if (ch == NULL)
        return NULL;
    if (strcmp(ch, "Microsoft-Windows-Sysmon/Operational") == 0 ||
        strcmp(ch, "Linux-Sysmon/Operational") == 0) {
        const char *et = json_string_value(json_object_get(data, "EventType"));

        if (eid < 0 || eid >= (long)VG_ARRAY_SIZE(sysmon))
            return NULL;
        if (eid == 12 && et == NULL)
            return "registry_event"; /* the EventType was lost */
        if (eid == 12 && strncmp(et, "Delete", 6) == 0)
            return "registry_delete";
        return sysmon[eid];
    }
    if (strcmp(ch, "Security") == 0 && eid == 4688)
        return "process_creation";
    if (strcmp(ch, "Microsoft-Windows-PowerShell/Operational") == 0)
        return eid == 4104 ? "ps_script" : eid == 4103 ? "ps_module" : NULL;
    if (strcmp(ch, "Windows PowerShell") == 0)
        return eid == 400   ? "ps_classic_start"
               : eid == 600 ? "ps_classic_provider_start"
               : eid == 800 ? "ps_classic_script"
                            : NULL;
    return NULL;
}

/* "2026-07-17T14:18:34.0722132Z" -> "2026-07-17T14:18:34.072213Z" (the schema's form). */
static void ing_ts_us(const char *in, char *out, size_t outlen)
{
    const char *dot = strchr(in, '.');
    size_t digits = 0;

    if (dot == NULL || outlen < 40 || (size_t)(dot - in) > 20) {
        snprintf(out, outlen, "%s", in);
        return;
    }
    while (isdigit((unsigned char)dot[1 + digits]))
        digits++;
    snprintf(out, outlen, "%.*s.%.*s%.*sZ", (int)(dot - in), in, (int)VG_MIN(digits, 6), dot + 1,
             (int)(6 - VG_MIN(digits, 6)), "000000");
}

static bool ing_parse_long(const char *s, long *out)
{
    char *end;
    long v;

    if (s == NULL || !isdigit((unsigned char)*s))
        return false;
    v = strtol(s, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

int ing_evtx_record_json(const char *xml, size_t len, json_t **out)
{
    xmlDoc *doc = NULL;
    const xmlNode *ev, *sys, *n;
    json_t *j = NULL, *data = NULL;
    char *s = NULL, *esc = NULL, ts[64];
    const char *ch;
    long eid = -1, rid;
    int rc = -VG_EINVAL;

    if (len > INT32_MAX / 5)
        return -VG_EINVAL;
    if (memchr(xml, '\r', len) != NULL) {
        /* libxml2 normalises CR LF to LF as XML requires; Windows values keep their CRs. */
        size_t k = 0;

        esc = vg_malloc(len * 5 + 1);
        if (esc == NULL)
            return -VG_ENOMEM;
        for (size_t i = 0; i < len; i++) {
            if (xml[i] == '\r') {
                memcpy(esc + k, "&#13;", 5);
                k += 5;
            } else {
                esc[k++] = xml[i];
            }
        }
        xml = esc;
        len = k;
    }
    doc = xmlReadMemory(xml, (int)len, NULL, "UTF-8",
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    ev = doc ? xmlDocGetRootElement(doc) : NULL;
    sys = ing_child(ev, "System");
    if (!ing_is(ev, "Event") || sys == NULL)
        goto out;
    j = json_object();
    data = json_object();
    if (j == NULL || data == NULL) {
        rc = -VG_ENOMEM;
        goto out;
    }

    n = ing_child(sys, "TimeCreated");
    s = n ? (char *)xmlGetProp(n, (const xmlChar *)"SystemTime") : NULL;
    if (s == NULL)
        goto out; /* ts is required */
    ing_ts_us(s, ts, sizeof(ts));
    xmlFree(s);
    s = NULL;
    if (ing_put_str(j, "ts", ts) < 0 || ing_put_str(j, "os", "windows") < 0)
        goto nomem;

#define ING_SYS_TEXT(elem, key)                                                                    \
    do {                                                                                           \
        n = ing_child(sys, elem);                                                                  \
        s = n ? ing_text(n) : NULL;                                                                \
        if (ing_put_str(j, key, s) < 0)                                                            \
            goto nomem;                                                                            \
        xmlFree(s);                                                                                \
        s = NULL;                                                                                  \
    } while (0)
    ING_SYS_TEXT("Computer", "host");
    ING_SYS_TEXT("Channel", "channel");
#undef ING_SYS_TEXT
    n = ing_child(sys, "Provider");
    s = n ? (char *)xmlGetProp(n, (const xmlChar *)"Name") : NULL;
    if (ing_put_str(j, "provider", s) < 0)
        goto nomem;
    xmlFree(s);
    s = NULL;
    n = ing_child(sys, "EventID");
    s = n ? ing_text(n) : NULL;
    if (ing_parse_long(s, &eid) && eid <= UINT32_MAX) {
        if (json_object_set_new(j, "event_id", json_integer(eid)) < 0)
            goto nomem;
    } else {
        eid = -1;
        if (json_object_set_new(j, "event_id", json_null()) < 0)
            goto nomem;
    }
    xmlFree(s);
    n = ing_child(sys, "EventRecordID");
    s = n ? ing_text(n) : NULL;
    if (json_object_set_new(j, "record_id",
                            ing_parse_long(s, &rid) ? json_integer(rid) : json_null()) < 0)
        goto nomem;
    xmlFree(s);
    s = NULL;

    /* EventData/Data[@Name]; unnamed Data (classic events' insertion strings) have no name
     * to key them by in the schema and are left out. */
    n = ing_child(ev, "EventData");
    for (const xmlNode *d = n ? n->children : NULL; d != NULL; d = d->next) {
        char *name;

        if (!ing_is(d, "Data"))
            continue;
        name = (char *)xmlGetProp(d, (const xmlChar *)"Name");
        rc = name ? ing_put_data(data, name, d) : 0;
        xmlFree(name);
        if (rc < 0)
            goto out;
    }
    n = ing_child(ev, "UserData");
    if (n != NULL && (rc = ing_flatten(data, n)) < 0)
        goto out;

    ch = json_string_value(json_object_get(j, "channel"));
    if (ing_put_str(j, "category", ing_category_of(ch, eid, data)) < 0 ||
        ing_put_str(j, "service", ing_service_of(ch)) < 0 || json_object_set(j, "data", data) < 0)
        goto nomem;
    *out = j;
    j = NULL;
    rc = 1;
    goto out;

nomem:
    rc = -VG_ENOMEM;
out:
    xmlFree(s);
    json_decref(data);
    json_decref(j);
    xmlFreeDoc(doc);
    vg_free(esc);
    return rc;
}
