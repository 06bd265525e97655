/*
 * import.c - JSON lines (shared telemetry schema) -> TelemetryBatch (see import.h).
 *
 * A line is mapped in two steps. First its data fields are put into the typed protobuf
 * home of its kind (chosen from the line's Sigma category, or Security 4624/4625 for
 * logons). Then the event is checked the way rules will see it: a view is built
 * (vg_evview_build) and every data key looked up with vg_evview_get; each key whose value
 * does not come back byte for byte is appended to Event.extra verbatim, which overrides the
 * typed rendering. This repeats until nothing changes, so the round trip holds by
 * construction and the typed homes never have to be perfect renderings of every source
 * dialect (hex pids in Security events, IMPHASH in Hashes, "0" ports ...).
 *
 * THREAD SAFETY: an importer belongs to one thread; ing_import_json_event is reentrant.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vg.h"
#include "evview.h"
#include "import.h"

#define ING_MAX_LINE      (64u << 20) /* longer lines are bad input */
#define ING_ROUNDTRIP_MAX 4           /* verify passes; 2 suffice unless aliases collide */

enum ing_kind {
    ING_K_GENERIC = 0,
    ING_K_PROC_CREATE,
    ING_K_PROC_EXIT,
    ING_K_FILE,
    ING_K_NET,
    ING_K_DNS,
    ING_K_REG,
    ING_K_IMAGE_LOAD,
    ING_K_LOGON,
};

/* What a line's Sigma category maps to. */
static const struct {
    const char *category;
    enum ing_kind kind;
    int op; /* FileOp or RegistryOp default */
} ing_cat_kinds[] = {
    {"process_creation", ING_K_PROC_CREATE, 0},
    {"process_termination", ING_K_PROC_EXIT, 0},
    {"file_event", ING_K_FILE, VIGIL__FILE_OP__FILE_CREATED},
    {"file_change", ING_K_FILE, VIGIL__FILE_OP__FILE_MODIFIED},
    {"file_delete", ING_K_FILE, VIGIL__FILE_OP__FILE_DELETED},
    {"file_rename", ING_K_FILE, VIGIL__FILE_OP__FILE_RENAMED},
    {"file_access", ING_K_FILE, VIGIL__FILE_OP__FILE_READ},
    {"network_connection", ING_K_NET, 0},
    {"dns_query", ING_K_DNS, 0},
    {"registry_add", ING_K_REG, VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED},
    {"registry_delete", ING_K_REG, VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED},
    {"registry_set", ING_K_REG, VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET},
    {"registry_rename", ING_K_REG, VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED},
    {"registry_event", ING_K_REG, VIGIL__REGISTRY_OP__REGISTRY_OP_UNKNOWN},
    {"image_load", ING_K_IMAGE_LOAD, 0},
};

/* Sysmon EventType -> RegistryOp. */
static const struct {
    const char *name;
    Vigil__RegistryOp op;
} ing_reg_ops[] = {
    {"CreateKey", VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED},
    {"DeleteKey", VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED},
    {"SetValue", VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET},
    {"DeleteValue", VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED},
    {"RenameKey", VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED},
};

/* Per-(tenant, host) sequence counter. */
struct ing_machine {
    char *key; /* tenant '\0' host, vg_malloc'd; NULL: empty slot */
    size_t klen;
    uint64_t hash;
    uint64_t seq; /* last sequence number given */
};

struct ing_importer {
    FILE *fp;
    ing_evtx *evtx; /* an .evtx input instead of fp (evtx.c) */
    bool own_fp;    /* false for stdin */
    char *tenant;   /* the default tenant */
    char *line;     /* read buffer (vg_malloc'd) */
    size_t cap;
    json_t *pending; /* a parsed line that starts the next batch */
    struct ing_machine *m;
    size_t m_cap; /* power of two */
    size_t m_used;
    struct ing_import_stats st;
};

/* Conversion state of one line. */
struct ing_conv {
    vg_arena *a;
    const json_t *data;
    Vigil__Event *ev;
    size_t extra_cap;
    int64_t ts_us;
};

static int ing_read_line(ing_importer *im, size_t *len);
static int ing_skip_line(ing_importer *im, size_t *len);
static uint64_t *ing_machine_seq(ing_importer *im, const char *tenant, const char *host);
static int ing_envelope(const json_t *j, const char *def_tenant, const char **tenant,
                        const char **host, char *err, size_t errlen);
static int ing_map(struct ing_conv *c, const json_t *j, enum ing_kind kind, int op);
static int ing_roundtrip(struct ing_conv *c, const json_t *j, struct ing_import_line *out);
static int ing_validate(const json_t *j, char *err, size_t errlen);

/* ---- the importer ------------------------------------------------------------------- */

/* An EVTX file (by its magic) is read through evtx.c instead of as lines. */
static int ing_import_open_evtx(ing_importer *im, const char *path, char *err, size_t errlen)
{
    char head[8];
    size_t n = fread(head, 1, sizeof(head), im->fp);

    if (!ing_evtx_sniff(head, n)) {
        rewind(im->fp);
        return 0;
    }
    fclose(im->fp);
    im->fp = NULL;
    im->own_fp = false;
    return ing_evtx_open(path, &im->evtx, err, errlen);
}

int ing_import_open(const char *path, const char *default_tenant, ing_importer **out, char *err,
                    size_t errlen)
{
    ing_importer *im = vg_calloc(1, sizeof(*im));
    int rc = -VG_ENOMEM;

    if (im == NULL)
        goto out_err;
    im->tenant = vg_strdup(default_tenant ? default_tenant : "");
    im->m_cap = 64;
    im->m = vg_calloc(im->m_cap, sizeof(*im->m));
    if (im->tenant == NULL || im->m == NULL)
        goto out_err;
    if (strcmp(path, "-") == 0) {
        im->fp = stdin;
    } else {
        im->fp = fopen(path, "rb");
        if (im->fp == NULL) {
            snprintf(err, errlen, "import: cannot open %s: %s", path, strerror(errno));
            rc = -VG_EIO;
            goto out_free;
        }
        im->own_fp = true;
        if ((rc = ing_import_open_evtx(im, path, err, errlen)) < 0)
            goto out_free;
    }
    *out = im;
    return 0;

out_err:
    snprintf(err, errlen, "import: out of memory");
out_free:
    ing_import_close(im);
    return rc;
}

void ing_import_close(ing_importer *im)
{
    if (im == NULL)
        return;
    if (im->own_fp)
        fclose(im->fp);
    ing_evtx_close(im->evtx);
    json_decref(im->pending);
    for (size_t i = 0; i < im->m_cap && im->m; i++)
        vg_free(im->m[i].key);
    vg_free(im->m);
    vg_free(im->line);
    vg_free(im->tenant);
    vg_free(im);
}

void ing_import_stats(const ing_importer *im, struct ing_import_stats *st)
{
    *st = im->st;
}

/* The next line that parses as a JSON object; NULL at EOF or on error (*rc). */
static json_t *ing_next_json(ing_importer *im, int *rc)
{
    size_t len;
    json_error_t jerr;

    *rc = 0;
    while (im->evtx != NULL) {
        json_t *j = NULL;
        int r = ing_evtx_next(im->evtx, &j);

        if (r == 1)
            im->st.lines++;
        if (r == 1 || r == 0 || r == -VG_ENOMEM) {
            *rc = r == 1 ? 0 : r;
            return j;
        }
        im->st.lines++;
        im->st.bad_lines++; /* a record that does not decode */
    }
    for (;;) {
        int r = ing_read_line(im, &len);
        json_t *j;

        if (r <= 0) {
            *rc = r;
            return NULL;
        }
        while (len > 0 && (im->line[len - 1] == '\n' || im->line[len - 1] == '\r'))
            im->line[--len] = '\0';
        if (len == 0 || strspn(im->line, " \t") == len)
            continue;
        im->st.lines++;
        j = json_loadb(im->line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (j != NULL && json_is_object(j))
            return j;
        vg_debug("import", "line %" PRIu64 ": %s", im->st.lines, j ? "not an object" : jerr.text);
        json_decref(j);
        im->st.bad_lines++;
    }
}

int ing_import_next(ing_importer *im, vg_arena *arena, size_t max_events,
                    Vigil__TelemetryBatch **out)
{
    Vigil__TelemetryBatch *b;
    char err[160];
    int rc = 0;

    if (max_events == 0)
        return -VG_EINVAL;
    b = vg_arena_alloc(arena, sizeof(*b));
    if (b == NULL)
        return -VG_ENOMEM;
    vigil__telemetry_batch__init(b);
    b->events = vg_arena_alloc(arena, max_events * sizeof(*b->events));
    if (b->events == NULL)
        return -VG_ENOMEM;
    while (b->n_events < max_events) {
        json_t *j = im->pending;
        const char *tenant, *host;
        struct ing_import_line ln;
        uint64_t *seq;

        im->pending = NULL;
        if (j == NULL && (j = ing_next_json(im, &rc)) == NULL)
            break;
        /* Validate before the machine check, so that a bad line never ends a batch. */
        if (ing_validate(j, err, sizeof(err)) < 0 ||
            ing_envelope(j, im->tenant, &tenant, &host, err, sizeof(err)) < 0) {
            vg_debug("import", "line %" PRIu64 ": %s", im->st.lines, err);
            im->st.bad_lines++;
            json_decref(j);
            continue;
        }
        if (b->n_events > 0 &&
            (strcmp(tenant, b->tenant_id) != 0 || strcmp(host, b->machine_id) != 0)) {
            im->pending = j; /* starts the next batch */
            break;
        }
        rc = ing_import_json_event(j, im->tenant, arena, &ln, err, sizeof(err));
        if (rc == -VG_EINVAL) {
            vg_debug("import", "line %" PRIu64 ": %s", im->st.lines, err);
            im->st.bad_lines++;
            json_decref(j);
            rc = 0;
            continue;
        }
        seq = rc == 0 ? ing_machine_seq(im, tenant, host) : NULL;
        json_decref(j);
        if (rc < 0 || seq == NULL)
            return rc < 0 ? rc : -VG_ENOMEM;
        if (b->n_events == 0) {
            b->tenant_id = (char *)ln.tenant;
            b->machine_id = (char *)ln.host;
            b->machine_name = (char *)ln.host;
            b->os = ln.os;
        }
        ln.ev->seq = ++*seq;
        b->events[b->n_events++] = ln.ev;
        im->st.events++;
        im->st.unmapped += ln.generic;
        im->st.shadowed += ln.shadowed;
    }
    if (rc < 0)
        return rc;
    if (b->n_events == 0)
        return 0;
    b->first_seq = b->events[0]->seq;
    *out = b;
    return 1;
}

/* Reads one line into im->line. Returns 1, 0 at EOF, or -VG_EIO / -VG_ENOMEM. A line
 * longer than ING_MAX_LINE is consumed and comes back as text that does not parse, so
 * the caller counts it as a bad line. */
static int ing_read_line(ing_importer *im, size_t *len)
{
    size_t n = 0;

    for (;;) {
        if (im->cap - n < 2) {
            size_t ncap = im->cap ? im->cap * 2 : 4096;
            char *p;

            if (ncap > ING_MAX_LINE)
                return ing_skip_line(im, len);
            p = vg_realloc(im->line, ncap);
            if (p == NULL)
                return -VG_ENOMEM;
            im->line = p;
            im->cap = ncap;
        }
        if (fgets(im->line + n, (int)VG_MIN(im->cap - n, (size_t)INT32_MAX), im->fp) == NULL) {
            if (ferror(im->fp))
                return -VG_EIO;
            im->line[n] = '\0';
            *len = n;
            return n > 0 ? 1 : 0;
        }
        n += strlen(im->line + n);
        if (n > 0 && im->line[n - 1] == '\n') {
            *len = n;
            return 1;
        }
    }
}

/* A line over ING_MAX_LINE: consume it and hand back one byte that never parses. */
static int ing_skip_line(ing_importer *im, size_t *len)
{
    int ch;

    while ((ch = getc(im->fp)) != EOF && ch != '\n')
        ;
    if (ferror(im->fp))
        return -VG_EIO;
    im->line[0] = '\x01';
    im->line[1] = '\0';
    *len = 1;
    return 1;
}

static uint64_t *ing_machine_seq(ing_importer *im, const char *tenant, const char *host)
{
    size_t tl = strlen(tenant), hl = strlen(host), klen = tl + 1 + hl;
    uint64_t h = vg_machine_key(tenant, host);
    size_t i;

    if (2 * (im->m_used + 1) > im->m_cap) {
        size_t ncap = im->m_cap * 2;
        struct ing_machine *nm = vg_calloc(ncap, sizeof(*nm));

        if (nm == NULL)
            return NULL;
        for (size_t k = 0; k < im->m_cap; k++) {
            if (im->m[k].key == NULL)
                continue;
            for (i = im->m[k].hash & (ncap - 1); nm[i].key; i = (i + 1) & (ncap - 1))
                ;
            nm[i] = im->m[k];
        }
        vg_free(im->m);
        im->m = nm;
        im->m_cap = ncap;
    }
    for (i = h & (im->m_cap - 1); im->m[i].key; i = (i + 1) & (im->m_cap - 1)) {
        struct ing_machine *m = &im->m[i];

        if (m->hash == h && m->klen == klen && memcmp(m->key, tenant, tl) == 0 &&
            memcmp(m->key + tl + 1, host, hl) == 0)
            return &m->seq;
    }
    im->m[i].key = vg_malloc(klen + 1);
    if (im->m[i].key == NULL)
        return NULL;
    memcpy(im->m[i].key, tenant, tl + 1);
    memcpy(im->m[i].key + tl + 1, host, hl + 1);
    im->m[i].klen = klen;
    im->m[i].hash = h;
    im->m[i].seq = 0;
    im->m_used++;
    return &im->m[i].seq;
}

/* ---- one line ----------------------------------------------------------------------- */

/* A string member, or NULL when absent or null; -1 when present with another type. */
static int ing_opt_str(const json_t *j, const char *key, const char **out)
{
    const json_t *v = json_object_get(j, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

static int ing_opt_uint(const json_t *j, const char *key, bool *present, uint64_t *out)
{
    const json_t *v = json_object_get(j, key);

    *present = false;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *present = true;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int ing_envelope(const json_t *j, const char *def_tenant, const char **tenant,
                        const char **host, char *err, size_t errlen)
{
    if (ing_opt_str(j, "tenant", tenant) < 0 || ing_opt_str(j, "host", host) < 0) {
        snprintf(err, errlen, "tenant or host is not a string");
        return -VG_EINVAL;
    }
    if (*tenant == NULL || **tenant == '\0')
        *tenant = def_tenant ? def_tenant : "";
    if (*host == NULL || **host == '\0')
        *host = "unknown-host";
    return 0;
}

static char *ing_dup(struct ing_conv *c, const char *s)
{
    return s ? vg_arena_strndup(c->a, s, strlen(s)) : NULL;
}

/* The data value of key, or NULL. */
static const char *ing_get(const struct ing_conv *c, const char *key)
{
    return json_string_value(json_object_get(c->data, key));
}

/* Copies data[key] into *dst when present. Returns -VG_ENOMEM on failure. */
static int ing_set(struct ing_conv *c, char **dst, const char *key)
{
    const char *s = ing_get(c, key);

    if (s == NULL)
        return 0;
    *dst = ing_dup(c, s);
    return *dst ? 0 : -VG_ENOMEM;
}

/* Decimal or 0x-hex (Security events write pids in hex) into a uint32. */
static bool ing_parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long long v;
    int base = 10;

    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ')
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    errno = 0;
    v = strtoull(s, &end, base);
    if (errno != 0 || *end != '\0' || end == s || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static void ing_set_u32(struct ing_conv *c, uint32_t *dst, const char *key)
{
    uint32_t v;

    if (ing_parse_u32(ing_get(c, key), &v))
        *dst = v;
}

/* Sysmon Hashes "SHA1=..,MD5=..,SHA256=..,IMPHASH=.." -> the three the protobuf carries. */
static int ing_hashes(struct ing_conv *c, const char *hashes, char **sha1, char **md5,
                      char **sha256)
{
    const char *p = hashes;

    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char **dst = NULL;

        if (eq != NULL && eq < p + len) {
            size_t kl = (size_t)(eq - p);

            if (kl == 4 && strncasecmp(p, "SHA1", 4) == 0)
                dst = sha1;
            else if (kl == 3 && strncasecmp(p, "MD5", 3) == 0)
                dst = md5;
            else if (kl == 6 && strncasecmp(p, "SHA256", 6) == 0)
                dst = sha256;
        }
        if (dst != NULL) {
            *dst = vg_arena_strndup(c->a, eq + 1, len - (size_t)(eq + 1 - p));
            if (*dst == NULL)
                return -VG_ENOMEM;
        }
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

static Vigil__ProcessRef *ing_proc_new(struct ing_conv *c)
{
    Vigil__ProcessRef *p = vg_arena_alloc(c->a, sizeof(*p));

    if (p != NULL)
        vigil__process_ref__init(p);
    return p;
}

static void *ing_msg_new(struct ing_conv *c, size_t size, void (*init)(void *))
{
    void *m = vg_arena_alloc(c->a, size);

    if (m != NULL)
        init(m);
    return m;
}
#define ING_NEW(c, type, init) ((type *)ing_msg_new((c), sizeof(type), (void (*)(void *))(init)))

/* "DOMAIN\user" (or "user") from two data keys. */
static int ing_account(struct ing_conv *c, char **dst, const char *user_key, const char *domain_key)
{
    const char *u = ing_get(c, user_key), *d = ing_get(c, domain_key);
    size_t ul, dl;

    if (u == NULL || *u == '\0' || strcmp(u, "-") == 0)
        return 0;
    if (d == NULL || *d == '\0' || strcmp(d, "-") == 0)
        return ing_set(c, dst, user_key);
    ul = strlen(u);
    dl = strlen(d);
    *dst = vg_arena_alloc(c->a, dl + ul + 2);
    if (*dst == NULL)
        return -VG_ENOMEM;
    memcpy(*dst, d, dl);
    (*dst)[dl] = '\\';
    memcpy(*dst + dl + 1, u, ul + 1);
    return 0;
}

/* The acting process of an event that is not a process creation. */
static int ing_actor(struct ing_conv *c, Vigil__ProcessRef *a)
{
    int rc = 0;

    rc |= ing_set(c, &a->image, ing_get(c, "Image") ? "Image" : "ProcessName");
    rc |= ing_set(c, &a->account, "User");
    ing_set_u32(c, &a->pid, "ProcessId");
    return rc ? -VG_ENOMEM : 0;
}

/* Windows mandatory label SID -> Sysmon's IntegrityLevel words. */
static const char *ing_integrity_of_label(const char *sid)
{
    static const struct {
        const char *sid, *level;
    } labels[] = {
        {"S-1-16-0", "Untrusted"},     {"S-1-16-4096", "Low"},   {"S-1-16-8192", "Medium"},
        {"S-1-16-8448", "Medium"},     {"S-1-16-12288", "High"}, {"S-1-16-16384", "System"},
        {"S-1-16-20480", "Protected"},
    };

    for (size_t i = 0; sid != NULL && i < VG_ARRAY_SIZE(labels); i++)
        if (strcasecmp(sid, labels[i].sid) == 0)
            return labels[i].level;
    return NULL;
}

static int ing_map_proc_create(struct ing_conv *c)
{
    Vigil__ProcessCreated *pc = ING_NEW(c, Vigil__ProcessCreated, vigil__process_created__init);
    Vigil__ProcessRef *p = ing_proc_new(c), *a = c->ev->actor;
    int rc = 0;

    if (pc == NULL || p == NULL)
        return -VG_ENOMEM;
    pc->process = p;
    c->ev->kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    c->ev->process_created = pc;
    p->creation_time_us = c->ts_us;
    rc |= ing_set(c, &p->command_line, "CommandLine");
    if (ing_get(c, "NewProcessName") != NULL) {
        /* Security 4688: ProcessId is the creator's, both in hex; the creator's account
         * is the Subject. */
        rc |= ing_set(c, &p->image, "NewProcessName");
        rc |= ing_set(c, &a->image, "ParentProcessName");
        ing_set_u32(c, &p->pid, "NewProcessId");
        ing_set_u32(c, &a->pid, "ProcessId");
        rc |= ing_account(c, &p->account, "SubjectUserName", "SubjectDomainName");
        rc |= ing_account(c, &a->account, "SubjectUserName", "SubjectDomainName");
        rc |= ing_set(c, &p->logon_id, "SubjectLogonId");
        if (ing_integrity_of_label(ing_get(c, "MandatoryLabel")) != NULL)
            p->integrity_level = (char *)ing_integrity_of_label(ing_get(c, "MandatoryLabel"));
    } else {
        /* Sysmon 1 (Windows and Linux) and auditd execve, which use Sysmon's names. */
        rc |= ing_set(c, &p->image, "Image");
        rc |= ing_set(c, &p->account, "User");
        rc |= ing_set(c, &p->integrity_level, "IntegrityLevel");
        rc |= ing_set(c, &p->current_directory, "CurrentDirectory");
        rc |= ing_set(c, &p->original_file_name, "OriginalFileName");
        rc |= ing_set(c, &p->logon_id, "LogonId");
        ing_set_u32(c, &p->pid, "ProcessId");
        rc |= ing_hashes(c, ing_get(c, "Hashes"), &p->sha1, &p->md5, &p->sha256);
        rc |= ing_set(c, &a->image, "ParentImage");
        rc |= ing_set(c, &a->command_line, "ParentCommandLine");
        rc |= ing_set(c, &a->account, "ParentUser");
        ing_set_u32(c, &a->pid, "ParentProcessId");
    }
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_file(struct ing_conv *c, int op)
{
    Vigil__FileEvent *f = ING_NEW(c, Vigil__FileEvent, vigil__file_event__init);
    char *sha1 = NULL, *md5 = NULL;
    int rc;

    if (f == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_FILE;
    c->ev->file = f;
    f->op = (Vigil__FileOp)op;
    rc = ing_set(c, &f->path, "TargetFilename");
    rc |= ing_set(c, &f->previous_path, "SourceFilename");
    rc |= ing_hashes(c, ing_get(c, "Hashes"), &sha1, &md5, &f->sha256);
    return rc ? -VG_ENOMEM : 0;
}

/* Sysmon 3: Source is the initiator (see evview.c). */
static int ing_map_net(struct ing_conv *c)
{
    Vigil__NetworkConnection *n =
        ING_NEW(c, Vigil__NetworkConnection, vigil__network_connection__init);
    const char *proto = ing_get(c, "Protocol"), *init = ing_get(c, "Initiated");
    bool in;
    int rc = 0;

    if (n == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_NETWORK;
    c->ev->network = n;
    if (proto != NULL)
        n->protocol = strcasecmp(proto, "tcp") == 0    ? VIGIL__PROTOCOL__PROTOCOL_TCP
                      : strcasecmp(proto, "udp") == 0  ? VIGIL__PROTOCOL__PROTOCOL_UDP
                      : strcasecmp(proto, "icmp") == 0 ? VIGIL__PROTOCOL__PROTOCOL_ICMP
                                                       : VIGIL__PROTOCOL__PROTOCOL_UNKNOWN;
    in = init != NULL && strcasecmp(init, "false") == 0;
    n->inbound = in;
    rc |= ing_set(c, &n->local_ip, in ? "DestinationIp" : "SourceIp");
    rc |= ing_set(c, &n->remote_ip, in ? "SourceIp" : "DestinationIp");
    rc |= ing_set(c, &n->remote_hostname, in ? "SourceHostname" : "DestinationHostname");
    ing_set_u32(c, &n->local_port, in ? "DestinationPort" : "SourcePort");
    ing_set_u32(c, &n->remote_port, in ? "SourcePort" : "DestinationPort");
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_dns(struct ing_conv *c)
{
    Vigil__DnsQuery *d = ING_NEW(c, Vigil__DnsQuery, vigil__dns_query__init);
    int rc;

    if (d == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_DNS;
    c->ev->dns = d;
    rc = ing_set(c, &d->query_name, "QueryName");
    rc |= ing_set(c, &d->results, "QueryResults");
    ing_set_u32(c, &d->status, "QueryStatus");
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_reg(struct ing_conv *c, int op, int64_t event_id)
{
    Vigil__RegistryEvent *r = ING_NEW(c, Vigil__RegistryEvent, vigil__registry_event__init);
    const char *type = ing_get(c, "EventType");
    int rc;

    if (r == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_REGISTRY;
    c->ev->registry = r;
    if (op == VIGIL__REGISTRY_OP__REGISTRY_OP_UNKNOWN && event_id == 14)
        op = VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED;
    for (size_t i = 0; type != NULL && i < VG_ARRAY_SIZE(ing_reg_ops); i++)
        if (strcasecmp(type, ing_reg_ops[i].name) == 0)
            op = ing_reg_ops[i].op;
    r->op = (Vigil__RegistryOp)op;
    /* TargetObject stays whole in key: splitting off a value name cannot be done
     * reliably (names may hold backslashes) and the view joins them anyway. */
    rc = ing_set(c, &r->key, "TargetObject");
    rc |= ing_set(c, &r->value_data, "Details");
    rc |= ing_set(c, &r->new_name, "NewName");
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_image_load(struct ing_conv *c)
{
    Vigil__ImageLoad *il = ING_NEW(c, Vigil__ImageLoad, vigil__image_load__init);
    const char *sig = ing_get(c, "Signed");
    char *sha1 = NULL, *md5 = NULL;
    int rc;

    if (il == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_IMAGE_LOAD;
    c->ev->image_load = il;
    rc = ing_set(c, &il->path, "ImageLoaded");
    rc |= ing_set(c, &il->signer, "Signature");
    il->signed_ = sig != NULL && strcasecmp(sig, "true") == 0;
    rc |= ing_hashes(c, ing_get(c, "Hashes"), &sha1, &md5, &il->sha256);
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_logon(struct ing_conv *c, int64_t event_id)
{
    Vigil__LogonEvent *l = ING_NEW(c, Vigil__LogonEvent, vigil__logon_event__init);
    int rc;

    if (l == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_LOGON;
    c->ev->logon = l;
    l->success = event_id == 4624;
    ing_set_u32(c, &l->logon_type, "LogonType");
    rc = ing_set(c, &l->account, "TargetUserName");
    rc |= ing_set(c, &l->account_domain, "TargetDomainName");
    rc |= ing_set(c, &l->source_ip, "IpAddress");
    ing_set_u32(c, &l->source_port, "IpPort");
    rc |= ing_set(c, &l->workstation, "WorkstationName");
    rc |= ing_set(c, &l->logon_id, "TargetLogonId");
    rc |= ing_set(c, &l->auth_package, "AuthenticationPackageName");
    rc |= ing_set(c, &l->failure_reason, "FailureReason");
    return rc ? -VG_ENOMEM : 0;
}

static int ing_map_generic(struct ing_conv *c, const json_t *j, int64_t event_id)
{
    Vigil__GenericEvent *g = ING_NEW(c, Vigil__GenericEvent, vigil__generic_event__init);
    const char *s;

    if (g == NULL)
        return -VG_ENOMEM;
    c->ev->kind_case = VIGIL__EVENT__KIND_GENERIC;
    c->ev->generic = g;
    g->event_id = event_id >= 0 && event_id <= UINT32_MAX ? (uint32_t)event_id : 0;
    if ((ing_opt_str(j, "category", &s), s) && (g->category = ing_dup(c, s)) == NULL)
        return -VG_ENOMEM;
    if ((ing_opt_str(j, "service", &s), s) && (g->service = ing_dup(c, s)) == NULL)
        return -VG_ENOMEM;
    if ((ing_opt_str(j, "provider", &s), s) && (g->provider = ing_dup(c, s)) == NULL)
        return -VG_ENOMEM;
    return 0;
}

/* The kind of a line: by its Sigma category; Security 4624/4625 are logons. */
static enum ing_kind ing_kind_of(const json_t *j, int64_t event_id, int *op)
{
    const char *cat, *prov, *chan;

    *op = 0;
    ing_opt_str(j, "category", &cat);
    for (size_t i = 0; cat != NULL && i < VG_ARRAY_SIZE(ing_cat_kinds); i++) {
        if (strcmp(cat, ing_cat_kinds[i].category) == 0) {
            *op = ing_cat_kinds[i].op;
            return ing_cat_kinds[i].kind;
        }
    }
    ing_opt_str(j, "provider", &prov);
    ing_opt_str(j, "channel", &chan);
    if (cat == NULL && (event_id == 4624 || event_id == 4625) &&
        ((prov != NULL && strcmp(prov, "Microsoft-Windows-Security-Auditing") == 0) ||
         (chan != NULL && strcasecmp(chan, "Security") == 0)))
        return ING_K_LOGON;
    return ING_K_GENERIC;
}

static int ing_map(struct ing_conv *c, const json_t *j, enum ing_kind kind, int op)
{
    bool has_eid;
    uint64_t eid = 0;
    int64_t event_id;
    int rc;

    ing_opt_uint(j, "event_id", &has_eid, &eid);
    event_id = has_eid ? (int64_t)VG_MIN(eid, (uint64_t)INT64_MAX) : -1;
    if (kind != ING_K_PROC_CREATE && (rc = ing_actor(c, c->ev->actor)) < 0)
        return rc;
    switch (kind) {
    case ING_K_PROC_CREATE:
        return ing_map_proc_create(c);
    case ING_K_PROC_EXIT:
        c->ev->kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
        c->ev->process_exited = ING_NEW(c, Vigil__ProcessExited, vigil__process_exited__init);
        return c->ev->process_exited ? 0 : -VG_ENOMEM;
    case ING_K_FILE:
        return ing_map_file(c, op);
    case ING_K_NET:
        return ing_map_net(c);
    case ING_K_DNS:
        return ing_map_dns(c);
    case ING_K_REG:
        return ing_map_reg(c, op, event_id);
    case ING_K_IMAGE_LOAD:
        return ing_map_image_load(c);
    case ING_K_LOGON:
        return ing_map_logon(c, event_id);
    case ING_K_GENERIC:
    default:
        return ing_map_generic(c, j, event_id);
    }
}

/* Validates the line's types: data an object of strings, envelope strings or null. */
static int ing_validate(const json_t *j, char *err, size_t errlen)
{
    static const char *const strs[] = {"ts",      "os",       "host",    "provider",
                                       "channel", "category", "service", "tenant"};
    const json_t *data = json_object_get(j, "data"), *v;
    const char *key, *s;
    bool present;
    uint64_t u;
    int64_t ts_us;

    for (size_t i = 0; i < VG_ARRAY_SIZE(strs); i++) {
        if (ing_opt_str(j, strs[i], &s) < 0) {
            snprintf(err, errlen, "\"%s\" is not a string", strs[i]);
            return -VG_EINVAL;
        }
    }
    if (ing_opt_uint(j, "event_id", &present, &u) < 0 || (present && u > UINT32_MAX) ||
        ing_opt_uint(j, "record_id", &present, &u) < 0) {
        snprintf(err, errlen, "event_id or record_id is not a non-negative integer");
        return -VG_EINVAL;
    }
    if (ing_opt_str(j, "ts", &s), s == NULL || vg_parse_time(s, &ts_us) < 0) {
        snprintf(err, errlen, "missing or bad \"ts\"");
        return -VG_EINVAL;
    }
    if (data != NULL && !json_is_object(data) && !json_is_null(data)) {
        snprintf(err, errlen, "\"data\" is not an object");
        return -VG_EINVAL;
    }
    json_object_foreach((json_t *)data, key, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "data \"%.60s\" is not a string", key);
            return -VG_EINVAL;
        }
    }
    return 0;
}

static Vigil__Os ing_os(const char *s)
{
    if (s == NULL)
        return VIGIL__OS__OS_UNKNOWN;
    if (strcasecmp(s, "windows") == 0)
        return VIGIL__OS__OS_WINDOWS;
    if (strcasecmp(s, "linux") == 0)
        return VIGIL__OS__OS_LINUX;
    if (strcasecmp(s, "macos") == 0)
        return VIGIL__OS__OS_MACOS;
    return VIGIL__OS__OS_UNKNOWN;
}

int ing_import_json_event(const json_t *j, const char *default_tenant, vg_arena *arena,
                          struct ing_import_line *out, char *err, size_t errlen)
{
    struct ing_conv c = {.a = arena};
    const char *ts, *tenant, *host, *os;
    enum ing_kind kind;
    bool has_eid;
    uint64_t eid = 0;
    int op, rc;

    memset(out, 0, sizeof(*out));
    if (!json_is_object(j)) {
        snprintf(err, errlen, "not a JSON object");
        return -VG_EINVAL;
    }
    if ((rc = ing_validate(j, err, errlen)) < 0)
        return rc;
    ing_opt_str(j, "ts", &ts);
    if (ts == NULL || vg_parse_time(ts, &c.ts_us) < 0)
        return -VG_EINVAL; /* checked by ing_validate */
    if ((rc = ing_envelope(j, default_tenant, &tenant, &host, err, errlen)) < 0)
        return rc;
    ing_opt_str(j, "os", &os);
    c.data = json_object_get(j, "data");
    if (!json_is_object(c.data))
        c.data = NULL; /* json_object_get on NULL returns NULL: no fields */
    c.ev = ING_NEW(&c, Vigil__Event, vigil__event__init);
    if (c.ev == NULL || (c.ev->actor = ing_proc_new(&c)) == NULL)
        return -VG_ENOMEM;
    c.ev->ts_us = c.ts_us;
    out->tenant = ing_dup(&c, tenant);
    out->host = ing_dup(&c, host);
    out->os = ing_os(os);
    out->ev = c.ev;
    if (out->tenant == NULL || out->host == NULL)
        return -VG_ENOMEM;
    ing_opt_uint(j, "event_id", &has_eid, &eid);
    kind = ing_kind_of(j, has_eid ? (int64_t)eid : -1, &op);
    out->generic = kind == ING_K_GENERIC;
    if ((rc = ing_map(&c, j, kind, op)) < 0)
        return rc;
    return ing_roundtrip(&c, j, out);
}

/* ---- the round trip ----------------------------------------------------------------- */

static int ing_extra_add(struct ing_conv *c, const char *key, const char *value)
{
    Vigil__KeyValue *kv;

    if (c->ev->n_extra == c->extra_cap) {
        size_t ncap = c->extra_cap ? c->extra_cap * 2 : 16;
        Vigil__KeyValue **na = vg_arena_alloc(c->a, ncap * sizeof(*na));

        if (na == NULL)
            return -VG_ENOMEM;
        if (c->ev->n_extra)
            memcpy(na, c->ev->extra, c->ev->n_extra * sizeof(*na));
        c->ev->extra = na;
        c->extra_cap = ncap;
    }
    kv = ING_NEW(c, Vigil__KeyValue, vigil__key_value__init);
    if (kv == NULL || (kv->key = ing_dup(c, key)) == NULL ||
        (kv->value = ing_dup(c, value)) == NULL)
        return -VG_ENOMEM;
    c->ev->extra[c->ev->n_extra++] = kv;
    return 0;
}

static bool ing_extra_has(const Vigil__Event *ev, const char *key)
{
    for (size_t i = 0; i < ev->n_extra; i++)
        if (strcasecmp(ev->extra[i]->key, key) == 0)
            return true;
    return false;
}

static bool ing_data_has(const json_t *data, const char *key)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)data, k, v)
    {
        if (strcasecmp(k, key) == 0)
            return true;
    }
    return false;
}

#define ING_CHECK_STUCK 2 /* in extra already and still disagreeing */

/* Checks one expected (key, value); appends it to extra when the view disagrees. Returns
 * 1 when appended, 0 when fine, ING_CHECK_STUCK when it already is in extra and still
 * disagrees (a collision of two names of one typed field), or -VG_ENOMEM. */
static int ing_check(struct ing_conv *c, const struct vg_evview *v, const char *key,
                     const char *value)
{
    struct vg_str got;
    size_t n = strlen(value);

    if (vg_evview_get(v, key, &got) && got.n == n && memcmp(got.p, value, n) == 0)
        return 0;
    if (ing_extra_has(c->ev, key))
        return ING_CHECK_STUCK;
    return ing_extra_add(c, key, value) < 0 ? -VG_ENOMEM : 1;
}

/* The envelope as rules see it, unless data has a key of that name (data wins). */
static int ing_envelope_fields(const json_t *j, char names[][16], const char *vals[], char *num,
                               size_t numlen)
{
    const json_t *data = json_object_get(j, "data");
    bool has;
    uint64_t u;
    int n = 0;
    const char *s;

    ing_opt_uint(j, "event_id", &has, &u);
    if (has && !ing_data_has(data, "EventID")) {
        snprintf(num, numlen / 2, "%" PRIu64, u);
        strcpy(names[n], "EventID");
        vals[n++] = num;
    }
    ing_opt_uint(j, "record_id", &has, &u);
    if (has && !ing_data_has(data, "EventRecordID")) {
        snprintf(num + numlen / 2, numlen / 2, "%" PRIu64, u);
        strcpy(names[n], "EventRecordID");
        vals[n++] = num + numlen / 2;
    }
    if ((ing_opt_str(j, "provider", &s), s) && !ing_data_has(data, "Provider_Name")) {
        strcpy(names[n], "Provider_Name");
        vals[n++] = s;
    }
    if ((ing_opt_str(j, "channel", &s), s) && !ing_data_has(data, "Channel")) {
        strcpy(names[n], "Channel");
        vals[n++] = s;
    }
    return n;
}

static int ing_roundtrip(struct ing_conv *c, const json_t *j, struct ing_import_line *out)
{
    Vigil__TelemetryBatch b;
    struct vg_evview v;
    char names[4][16], num[48];
    const char *vals[4];
    int nenv = ing_envelope_fields(j, names, vals, num, sizeof(num));

    vigil__telemetry_batch__init(&b);
    b.machine_id = b.machine_name = (char *)out->host;
    b.tenant_id = (char *)out->tenant;
    b.os = out->os;
    for (int pass = 0; pass < ING_ROUNDTRIP_MAX; pass++) {
        const char *key;
        json_t *val;
        int added = 0, stuck = 0, r;

        vg_evview_build(&v, &b, c->ev);
        json_object_foreach((json_t *)c->data, key, val)
        {
            r = ing_check(c, &v, key, json_string_value(val));
            if (r == -VG_ENOMEM)
                return r;
            if (r == 1 && vg_field_by_name(key) >= 0)
                out->shadowed++;
            added += r == 1;
            stuck += r == ING_CHECK_STUCK;
        }
        for (int i = 0; i < nenv; i++) {
            r = ing_check(c, &v, names[i], vals[i]);
            if (r == -VG_ENOMEM)
                return r;
            added += r == 1;
            stuck += r == ING_CHECK_STUCK;
        }
        out->residual = (unsigned)stuck;
        if (added == 0)
            break;
    }
    return 0;
}

long long ing_import_tell(const ing_importer *im)
{
    long pos = im->evtx != NULL ? -1 : ftell(im->fp);

    return pos < 0 ? -1 : (long long)pos;
}
