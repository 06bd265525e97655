/*
 * incident.c - the incident stage: entity index, prevalence, union-find over alerts,
 * expiry (see incident.h for the rules).
 *
 * How linking stays independent of arrival order. Every linking entity keeps a posting
 * list of the alerts that carry it, sorted by (time, alert hash). On a line, "at most the
 * window apart" connects exactly the runs whose consecutive gaps are within the window,
 * so an alert only needs to be joined with its neighbours in each list; a whole-tenant
 * recomputation sweeps the lists the same way. Links are only ever added except when an
 * entity becomes common or an alert is rewritten: then the tenant is recomputed.
 *
 * THREAD SAFETY: none; the stage's thread only.
 */
#include "incident.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define CI_SEED        UINT64_C(0x1c1de47a5eed0001)
#define CI_MINLINE     2 /* machines kept inline before an entity gets a set */
#define CI_DEF_WINDOW  (INT64_C(24) * 3600 * VG_US_PER_SEC)
#define CI_DEF_PREV    (INT64_C(7) * VG_US_PER_DAY)
#define CI_DEF_SHARE   0.2
#define CI_DEF_MINMACH 3
#define CI_DEF_MAXINC  1000

/* Entity kinds as the index sees them: files and process images share CI_HASH. */
enum ci_kind { CI_MACHINE = 1, CI_USER, CI_HASH, CI_IP, CI_DOMAIN, CI_URL, CI_LINEAGE };

struct ci_tenant;

struct ci_alert {
    uint64_t idh; /* hash of (tenant, id); key of ci->alerts; names the incident */
    char *id;
    struct ci_tenant *t;
    int64_t ts;      /* first_event_us: the link time */
    int64_t last;    /* last_event_us: activity, for closing */
    uint8_t *packed; /* the alert without evidence and description */
    size_t len;
    struct ci_entity **ents; /* linking entities, distinct */
    size_t nents;
    struct ci_alert *parent;   /* union-find */
    struct ci_alert *ring;     /* next member of the same incident (circular) */
    struct ci_alert *earliest; /* at a root: the incident's earliest alert */
    uint32_t rank;
    uint32_t size; /* at a root: members */
    size_t tidx;   /* index in t->alerts */
};

struct ci_entity {
    uint64_t key; /* hash of (tenant, kind, normalized value); key of ci->entities */
    struct ci_tenant *t;
    uint8_t kind;   /* enum ci_kind */
    bool common;    /* prevalence says it must not link */
    uint32_t epoch; /* last recomputation that swept it */
    int64_t last_seen;
    ssize_t cand;   /* index in t->cands, or -1 */
    uint32_t nmach; /* distinct machines seen with it */
    uint64_t mach[CI_MINLINE];
    struct vg_u64map *mset; /* when nmach > CI_MINLINE */
    struct ci_alert **post; /* sorted by (ts, idh) */
    size_t npost, cappost;
};

struct ci_tenant {
    uint64_t key;
    char *id;
    struct vg_u64map machines; /* machine entity keys seen */
    uint32_t nset;             /* machine count set by the caller, 0 = counted */
    struct ci_alert **alerts;
    size_t nalerts, capalerts;
    struct ci_entity **cands; /* entities on >= common_min_machines machines */
    size_t ncands, capcands;
    int64_t hwm;  /* newest alert event time */
    bool rebuild; /* links must be recomputed */
    /* The machine count at which some common entity may stop being common (machines only
     * make entities rarer): below it a new machine changes no flag, so the candidates are
     * not walked for each of a fleet's machines. UINT32_MAX: none is common. */
    uint32_t flip_at;
};

struct cor_incidents {
    struct cor_incident_cfg cfg;
    struct vg_u64map tenants;  /* tenant key -> ci_tenant */
    struct vg_u64map alerts;   /* idh -> ci_alert */
    struct vg_u64map entities; /* key -> ci_entity */
    struct cor_incident_change *chg;
    size_t nchg, capchg, chgpos;
    struct vg_u64map chgidx; /* idh -> index + 1 */
    uint32_t epoch;
    bool quiet; /* recomputing: unions record no changes */
    struct cor_incident_stats st;
};

/* A linking entity of an alert before it is interned. */
struct ci_ref {
    uint64_t key;
    uint8_t kind;
};

static struct ci_tenant *ci_tenant_get(cor_incidents *ci, const char *tenant, bool create);
static uint64_t ci_hash(uint64_t seed, const char *s, size_t n, bool lower);
static uint64_t ci_ref_key(uint64_t tkey, Vigil__EntityKind kind, const char *value,
                           const char *sha256, uint8_t *ckind);
static struct ci_alert *ci_find(struct ci_alert *x);
static void ci_union(cor_incidents *ci, struct ci_alert *a, struct ci_alert *b);
static void ci_note(cor_incidents *ci, const struct ci_alert *earliest,
                    enum cor_incident_change_kind kind);
static void ci_settle(cor_incidents *ci, struct ci_tenant *t);
static void ci_recheck(cor_incidents *ci, struct ci_entity *e);
static void ci_entity_free(cor_incidents *ci, struct ci_entity *e);

/* Shared with incident_graph.c (not public: the module keeps one header). */
int cor_inc_build(cor_incidents *ci, struct ci_alert *root, vg_arena *arena, Vigil__Incident **out);
struct ci_alert **cor_inc_members(struct ci_alert *root, size_t *n);
const uint8_t *cor_inc_alert_packed(const struct ci_alert *x, size_t *len);
const char *cor_inc_alert_tenant(const struct ci_alert *x);
void cor_inc_alert_incident_id(const struct ci_alert *x, char *buf);
uint64_t cor_inc_entity_key(const char *tenant, Vigil__EntityKind kind, const char *value,
                            const char *sha256);
bool cor_inc_entity_common(cor_incidents *ci, uint64_t key);

/* ---- public ----------------------------------------------------------------------- */

cor_incidents *cor_incidents_new(const struct cor_incident_cfg *cfg)
{
    cor_incidents *ci = vg_calloc(1, sizeof(*ci));

    if (ci == NULL)
        return NULL;
    if (cfg != NULL)
        ci->cfg = *cfg;
    if (ci->cfg.window_us <= 0)
        ci->cfg.window_us = CI_DEF_WINDOW;
    if (!(ci->cfg.common_share > 0.0 && ci->cfg.common_share <= 1.0))
        ci->cfg.common_share = CI_DEF_SHARE;
    if (ci->cfg.common_min_machines == 0)
        ci->cfg.common_min_machines = CI_DEF_MINMACH;
    if (ci->cfg.prevalence_window_us <= 0)
        ci->cfg.prevalence_window_us = CI_DEF_PREV;
    if (ci->cfg.max_alerts == 0)
        ci->cfg.max_alerts = CI_DEF_MAXINC;
    if (vg_u64map_init(&ci->tenants, 16) < 0 || vg_u64map_init(&ci->alerts, 1024) < 0 ||
        vg_u64map_init(&ci->entities, 1024) < 0 || vg_u64map_init(&ci->chgidx, 64) < 0) {
        cor_incidents_free(ci);
        return NULL;
    }
    return ci;
}

static void ci_alert_free(struct ci_alert *x)
{
    vg_free(x->id);
    vg_free(x->packed);
    vg_free(x->ents);
    vg_free(x);
}

void cor_incidents_free(cor_incidents *ci)
{
    size_t pos = 0;
    uint64_t k;
    void *v;

    if (ci == NULL)
        return;
    while (ci->alerts.keys && vg_u64map_next(&ci->alerts, &pos, &k, &v))
        ci_alert_free(v);
    pos = 0;
    while (ci->entities.keys && vg_u64map_next(&ci->entities, &pos, &k, &v)) {
        struct ci_entity *e = v;

        if (e->mset) {
            vg_u64map_free(e->mset);
            vg_free(e->mset);
        }
        vg_free(e->post);
        vg_free(e);
    }
    pos = 0;
    while (ci->tenants.keys && vg_u64map_next(&ci->tenants, &pos, &k, &v)) {
        struct ci_tenant *t = v;

        vg_u64map_free(&t->machines);
        vg_free(t->alerts);
        vg_free(t->cands);
        vg_free(t->id);
        vg_free(t);
    }
    vg_u64map_free(&ci->tenants);
    vg_u64map_free(&ci->alerts);
    vg_u64map_free(&ci->entities);
    vg_u64map_free(&ci->chgidx);
    vg_free(ci->chg);
    vg_free(ci);
}

void cor_incidents_get_stats(const cor_incidents *ci, struct cor_incident_stats *st)
{
    *st = ci->st;
    st->alerts_held = ci->alerts.count;
    st->entities_held = ci->entities.count;
    st->tenants = ci->tenants.count;
}

bool cor_incidents_next_change(cor_incidents *ci, struct cor_incident_change *out)
{
    if (ci->chgpos >= ci->nchg) {
        if (ci->nchg) {
            /* Drained: start over so the queue does not grow. */
            ci->nchg = ci->chgpos = 0;
            vg_u64map_free(&ci->chgidx);
            if (vg_u64map_init(&ci->chgidx, 64) < 0)
                memset(&ci->chgidx, 0, sizeof(ci->chgidx));
        }
        return false;
    }
    *out = ci->chg[ci->chgpos++];
    return true;
}

/* ---- hashing and entity normalization --------------------------------------------- */

/* Hash of s, ASCII-lowercased when lower, chained from seed; never 0 (map keys). */
static uint64_t ci_hash(uint64_t seed, const char *s, size_t n, bool lower)
{
    char buf[256];
    uint64_t h = vg_hash64(&n, sizeof(n), seed);

    while (n > 0) {
        size_t k = VG_MIN(n, sizeof(buf));

        for (size_t i = 0; i < k; i++) {
            char c = s[i];

            buf[i] = (lower && c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        h = vg_hash64(buf, k, h);
        s += k;
        n -= k;
    }
    return h ? h : 1;
}

static uint64_t ci_kind_seed(uint64_t tkey, uint8_t kind)
{
    return vg_hash64(&kind, 1, tkey);
}

static bool ci_local_user(const char *u)
{
    static const char *const names[] = {"system",
                                        "local system",
                                        "localsystem",
                                        "local service",
                                        "localservice",
                                        "network service",
                                        "networkservice",
                                        "root",
                                        "nt authority\\system",
                                        "nt authority\\local service",
                                        "nt authority\\network service"};

    for (size_t i = 0; i < VG_ARRAY_SIZE(names); i++)
        if (strcasecmp(u, names[i]) == 0)
            return true;
    return strncasecmp(u, "nt authority\\", 13) == 0 ||
           strncasecmp(u, "font driver host\\", 17) == 0 ||
           strncasecmp(u, "window manager\\", 15) == 0;
}

static bool ci_local_ip(const char *ip)
{
    return ip[0] == '\0' || strcmp(ip, "-") == 0 || strncmp(ip, "127.", 4) == 0 ||
           strcmp(ip, "::1") == 0 || strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0 ||
           strncasecmp(ip, "::ffff:127.", 11) == 0;
}

/* The linking key of an entity, or 0 when it does not link. */
static uint64_t ci_ref_key(uint64_t tkey, Vigil__EntityKind kind, const char *value,
                           const char *sha256, uint8_t *ckind)
{
    size_t n;

    value = value ? value : "";
    sha256 = sha256 ? sha256 : "";
    switch (kind) {
    case VIGIL__ENTITY_KIND__ENTITY_MACHINE:
        *ckind = CI_MACHINE;
        return value[0] ? ci_hash(ci_kind_seed(tkey, CI_MACHINE), value, strlen(value), false) : 0;
    case VIGIL__ENTITY_KIND__ENTITY_FILE:
    case VIGIL__ENTITY_KIND__ENTITY_PROCESS:
        *ckind = CI_HASH;
        return sha256[0] ? ci_hash(ci_kind_seed(tkey, CI_HASH), sha256, strlen(sha256), true) : 0;
    case VIGIL__ENTITY_KIND__ENTITY_IP:
        *ckind = CI_IP;
        return ci_local_ip(value) ? 0
                                  : ci_hash(ci_kind_seed(tkey, CI_IP), value, strlen(value), true);
    case VIGIL__ENTITY_KIND__ENTITY_DOMAIN:
        *ckind = CI_DOMAIN;
        n = strlen(value);
        if (n > 0 && value[n - 1] == '.')
            n--;
        if (n == 0 || (n == 9 && strncasecmp(value, "localhost", 9) == 0))
            return 0;
        return ci_hash(ci_kind_seed(tkey, CI_DOMAIN), value, n, true);
    case VIGIL__ENTITY_KIND__ENTITY_USER:
        *ckind = CI_USER;
        return (value[0] == '\0' || ci_local_user(value))
                   ? 0
                   : ci_hash(ci_kind_seed(tkey, CI_USER), value, strlen(value), true);
    case VIGIL__ENTITY_KIND__ENTITY_URL:
        *ckind = CI_URL;
        return value[0] ? ci_hash(ci_kind_seed(tkey, CI_URL), value, strlen(value), false) : 0;
    default:
        return 0;
    }
}

static uint64_t ci_lineage_key(uint64_t tkey, const char *machine, uint32_t pid, int64_t ctime)
{
    uint64_t h = ci_hash(ci_kind_seed(tkey, CI_LINEAGE), machine, strlen(machine), false);
    int64_t v[2] = {pid, ctime};

    h = vg_hash64(v, sizeof(v), h);
    return h ? h : 1;
}

/* Whether prevalence applies: machines and a machine's processes are never common. */
static bool ci_kind_prevalent(uint8_t kind)
{
    return kind != CI_MACHINE && kind != CI_LINEAGE;
}

/* Entity key as seen from outside (tests, graph): 0 when it does not link. */
uint64_t cor_inc_entity_key(const char *tenant, Vigil__EntityKind kind, const char *value,
                            const char *sha256)
{
    uint8_t ck;

    return ci_ref_key(ci_hash(CI_SEED, tenant, strlen(tenant), false), kind, value, sha256, &ck);
}

bool cor_inc_entity_common(cor_incidents *ci, uint64_t key)
{
    struct ci_entity *e = key ? vg_u64map_get(&ci->entities, key) : NULL;

    return e != NULL && e->common;
}

bool cor_incidents_is_common(cor_incidents *ci, const char *tenant, Vigil__EntityKind kind,
                             const char *value, const char *sha256)
{
    if (tenant == NULL)
        return false;
    return cor_inc_entity_common(ci, cor_inc_entity_key(tenant, kind, value, sha256));
}

/* ---- tenants, machines, prevalence ------------------------------------------------ */

static struct ci_tenant *ci_tenant_get(cor_incidents *ci, const char *tenant, bool create)
{
    uint64_t key = ci_hash(CI_SEED, tenant, strlen(tenant), false);
    struct ci_tenant *t = vg_u64map_get(&ci->tenants, key);

    if (t != NULL || !create)
        return t;
    t = vg_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->key = key;
    t->id = vg_strdup(tenant);
    t->hwm = INT64_MIN;
    t->flip_at = UINT32_MAX;
    if (t->id == NULL || vg_u64map_init(&t->machines, 16) < 0) {
        vg_free(t->id);
        vg_free(t);
        return NULL;
    }
    if (vg_u64map_put(&ci->tenants, key, t) < 0) {
        vg_u64map_free(&t->machines);
        vg_free(t->id);
        vg_free(t);
        return NULL;
    }
    return t;
}

/* The larger of the count the caller set (all the tenant's machines it knows) and the
 * machines seen in alerts: a set count from one instance of several can be too small. */
static uint32_t ci_tenant_nmachines(const struct ci_tenant *t)
{
    return VG_MAX(t->nset, (uint32_t)t->machines.count);
}

/* Recomputes common flags after the tenant's machine count changed. */
static void ci_tenant_recheck(cor_incidents *ci, struct ci_tenant *t)
{
    t->flip_at = UINT32_MAX; /* recomputed by ci_recheck over the common ones */
    for (size_t i = 0; i < t->ncands; i++)
        ci_recheck(ci, t->cands[i]);
}

/* Registers a machine of the tenant; returns 0 or -VG_ENOMEM. */
static int ci_tenant_machine(cor_incidents *ci, struct ci_tenant *t, uint64_t mkey)
{
    if (vg_u64map_get(&t->machines, mkey) != NULL)
        return 0;
    if (vg_u64map_put(&t->machines, mkey, (void *)1) < 0)
        return -VG_ENOMEM;
    if (t->machines.count > t->nset && t->machines.count >= t->flip_at)
        ci_tenant_recheck(ci, t);
    return 0;
}

static struct ci_entity *ci_entity_get(cor_incidents *ci, struct ci_tenant *t, uint64_t key,
                                       uint8_t kind)
{
    struct ci_entity *e = vg_u64map_get(&ci->entities, key);

    if (e != NULL)
        return e;
    e = vg_calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->key = key;
    e->t = t;
    e->kind = kind;
    e->cand = -1;
    e->last_seen = INT64_MIN;
    if (vg_u64map_put(&ci->entities, key, e) < 0) {
        vg_free(e);
        return NULL;
    }
    return e;
}

static void ci_cand_del(struct ci_tenant *t, struct ci_entity *e)
{
    if (e->cand < 0)
        return;
    t->cands[e->cand] = t->cands[t->ncands - 1];
    t->cands[e->cand]->cand = e->cand;
    t->ncands--;
    e->cand = -1;
}

static int ci_cand_add(cor_incidents *ci, struct ci_tenant *t, struct ci_entity *e)
{
    if (e->cand >= 0 || e->nmach < ci->cfg.common_min_machines)
        return 0;
    if (t->ncands == t->capcands) {
        size_t cap = t->capcands ? t->capcands * 2 : 16;
        struct ci_entity **n = vg_realloc(t->cands, cap * sizeof(*n));

        if (n == NULL)
            return -VG_ENOMEM;
        t->cands = n;
        t->capcands = cap;
    }
    e->cand = (ssize_t)t->ncands;
    t->cands[t->ncands++] = e;
    return 0;
}

/* Adds a machine to the entity's set; returns 1 when new, 0 when known, <0 on error. */
static int ci_entity_machine(struct ci_entity *e, uint64_t mkey)
{
    if (e->mset == NULL) {
        for (uint32_t i = 0; i < e->nmach; i++)
            if (e->mach[i] == mkey)
                return 0;
        if (e->nmach < CI_MINLINE) {
            e->mach[e->nmach++] = mkey;
            return 1;
        }
        e->mset = vg_malloc(sizeof(*e->mset));
        if (e->mset == NULL || vg_u64map_init(e->mset, 8) < 0) {
            vg_free(e->mset);
            e->mset = NULL;
            return -VG_ENOMEM;
        }
        for (uint32_t i = 0; i < e->nmach; i++)
            if (vg_u64map_put(e->mset, e->mach[i], (void *)1) < 0)
                return -VG_ENOMEM;
    }
    if (vg_u64map_get(e->mset, mkey) != NULL)
        return 0;
    if (vg_u64map_put(e->mset, mkey, (void *)1) < 0)
        return -VG_ENOMEM;
    e->nmach++;
    return 1;
}

/* A sighting of a prevalence-counted entity on a machine. */
static int ci_sight(cor_incidents *ci, struct ci_entity *e, uint64_t mkey, int64_t ts)
{
    int rc;

    if (ts > e->last_seen)
        e->last_seen = ts;
    if (!ci_kind_prevalent(e->kind))
        return 0;
    rc = ci_entity_machine(e, mkey);
    if (rc <= 0)
        return rc;
    rc = ci_cand_add(ci, e->t, e);
    ci_recheck(ci, e);
    return rc;
}

int cor_incidents_observe(cor_incidents *ci, const char *tenant, const char *machine_id,
                          Vigil__EntityKind kind, const char *value, const char *sha256,
                          int64_t ts_us)
{
    struct ci_tenant *t;
    struct ci_entity *e;
    uint64_t key, mkey;
    uint8_t ck;
    int rc;

    if (tenant == NULL || tenant[0] == '\0' || machine_id == NULL || machine_id[0] == '\0') {
        ci->st.rejected++;
        return -VG_EINVAL;
    }
    t = ci_tenant_get(ci, tenant, true);
    if (t == NULL)
        return -VG_ENOMEM;
    mkey = ci_hash(ci_kind_seed(t->key, CI_MACHINE), machine_id, strlen(machine_id), false);
    rc = ci_tenant_machine(ci, t, mkey);
    key = ci_ref_key(t->key, kind, value, sha256, &ck);
    if (rc == 0 && key != 0 && ci_kind_prevalent(ck)) {
        e = ci_entity_get(ci, t, key, ck);
        rc = e ? ci_sight(ci, e, mkey, ts_us) : -VG_ENOMEM;
    }
    ci_settle(ci, t);
    return rc;
}

int cor_incidents_observe_all(cor_incidents *ci, const Vigil__Sightings *sg)
{
    int rc = 0, r;

    if (sg->n_entities == 0)
        return cor_incidents_observe(ci, sg->tenant_id, sg->machine_id,
                                     VIGIL__ENTITY_KIND__ENTITY_MACHINE, sg->machine_id, NULL,
                                     sg->ts_us);
    for (size_t i = 0; i < sg->n_entities; i++) {
        const Vigil__Entity *e = sg->entities[i];

        r = cor_incidents_observe(ci, sg->tenant_id, sg->machine_id, e->kind, e->value, e->sha256,
                                  sg->ts_us);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

int cor_incidents_tenant_machines(cor_incidents *ci, const char *tenant, uint32_t n)
{
    struct ci_tenant *t;

    if (tenant == NULL || tenant[0] == '\0')
        return -VG_EINVAL;
    t = ci_tenant_get(ci, tenant, true);
    if (t == NULL)
        return -VG_ENOMEM;
    t->nset = n;
    ci_tenant_recheck(ci, t);
    ci_settle(ci, t);
    return 0;
}

/* ---- union-find and postings ------------------------------------------------------ */

static bool ci_earlier(const struct ci_alert *a, const struct ci_alert *b)
{
    return a->ts < b->ts || (a->ts == b->ts && strcmp(a->id, b->id) < 0);
}

static struct ci_alert *ci_find(struct ci_alert *x)
{
    while (x->parent != x) {
        x->parent = x->parent->parent; /* path halving */
        x = x->parent;
    }
    return x;
}

static void ci_union(cor_incidents *ci, struct ci_alert *a, struct ci_alert *b)
{
    struct ci_alert *ra = ci_find(a), *rb = ci_find(b), *tmp, *lost;

    if (ra == rb)
        return;
    if ((uint64_t)ra->size + rb->size > ci->cfg.max_alerts) {
        ci->st.capped++;
        return;
    }
    if (ra->rank < rb->rank) {
        tmp = ra;
        ra = rb;
        rb = tmp;
    }
    rb->parent = ra;
    if (ra->rank == rb->rank)
        ra->rank++;
    ra->size += rb->size;
    tmp = ra->ring; /* splice the two member rings */
    ra->ring = rb->ring;
    rb->ring = tmp;
    lost = ra->earliest;
    if (ci_earlier(rb->earliest, ra->earliest))
        ra->earliest = rb->earliest;
    else
        lost = rb->earliest;
    if (!ci->quiet) {
        ci->st.merges++;
        ci_note(ci, lost, COR_INCIDENT_RETIRED);
        ci_note(ci, ra->earliest, COR_INCIDENT_UPDATED);
    }
}

static int ci_post_cmp(const struct ci_alert *a, const struct ci_alert *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->idh < b->idh ? -1 : a->idh > b->idh;
}

/* First index whose alert is not before x. */
static size_t ci_post_pos(const struct ci_entity *e, const struct ci_alert *x)
{
    size_t lo = 0, hi = e->npost;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (ci_post_cmp(e->post[mid], x) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts x into e's postings; joins it with its neighbours within the window when link. */
static int ci_post_add(cor_incidents *ci, struct ci_entity *e, struct ci_alert *x, bool link)
{
    size_t i;

    if (e->npost == e->cappost) {
        size_t cap = e->cappost ? e->cappost * 2 : 4;
        struct ci_alert **n = vg_realloc(e->post, cap * sizeof(*n));

        if (n == NULL)
            return -VG_ENOMEM;
        e->post = n;
        e->cappost = cap;
    }
    i = ci_post_pos(e, x);
    memmove(e->post + i + 1, e->post + i, (e->npost - i) * sizeof(*e->post));
    e->post[i] = x;
    e->npost++;
    if (!link || e->common)
        return 0;
    if (i > 0 && x->ts - e->post[i - 1]->ts <= ci->cfg.window_us)
        ci_union(ci, x, e->post[i - 1]);
    if (i + 1 < e->npost && e->post[i + 1]->ts - x->ts <= ci->cfg.window_us)
        ci_union(ci, x, e->post[i + 1]);
    return 0;
}

static void ci_post_del(struct ci_entity *e, const struct ci_alert *x)
{
    size_t i = ci_post_pos(e, x);

    if (VG_NEVER(i >= e->npost || e->post[i] != x))
        return;
    memmove(e->post + i, e->post + i + 1, (e->npost - i - 1) * sizeof(*e->post));
    e->npost--;
}

/* Joins the runs of e's postings (consecutive alerts within the window). */
static void ci_union_runs(cor_incidents *ci, struct ci_entity *e)
{
    for (size_t i = 1; i < e->npost; i++)
        if (e->post[i]->ts - e->post[i - 1]->ts <= ci->cfg.window_us)
            ci_union(ci, e->post[i], e->post[i - 1]);
}

/* Recomputes e's common flag; a flip changes links. */
static void ci_recheck(cor_incidents *ci, struct ci_entity *e)
{
    const struct cor_incident_cfg *c = &ci->cfg;
    uint32_t m = ci_tenant_nmachines(e->t);
    bool common = ci_kind_prevalent(e->kind) && e->nmach >= c->common_min_machines &&
                  (double)e->nmach > c->common_share * (double)m;

    if (common) {
        /* Common while share * machines < nmach: from about nmach / share machines on it
         * may not be (rounded down: at worst one recheck too early). */
        double at = (double)e->nmach / c->common_share;
        uint32_t flip = at >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)at;

        if (flip < e->t->flip_at)
            e->t->flip_at = flip;
    }
    if (common == e->common)
        return;
    e->common = common;
    if (e->npost < 2)
        return;
    if (common)
        e->t->rebuild = true; /* links through it must go: incidents may split */
    else
        ci_union_runs(ci, e);
}

/* Recomputes every incident of the tenant from its postings. */
static int ci_rebuild(cor_incidents *ci, struct ci_tenant *t)
{
    struct ci_alert **old = NULL;
    size_t nold = 0;

    t->rebuild = false;
    ci->st.rebuilds++;
    if (t->nalerts) {
        old = vg_malloc(t->nalerts * sizeof(*old));
        if (old == NULL)
            return -VG_ENOMEM;
    }
    for (size_t i = 0; i < t->nalerts; i++) {
        struct ci_alert *x = t->alerts[i];

        if (ci_find(x) == x)
            old[nold++] = x->earliest;
    }
    for (size_t i = 0; i < t->nalerts; i++) {
        struct ci_alert *x = t->alerts[i];

        x->parent = x->ring = x->earliest = x;
        x->rank = 0;
        x->size = 1;
    }
    ci->epoch++;
    ci->quiet = true;
    for (size_t i = 0; i < t->nalerts; i++) {
        struct ci_alert *x = t->alerts[i];

        for (size_t j = 0; j < x->nents; j++) {
            struct ci_entity *e = x->ents[j];

            if (e->epoch == ci->epoch)
                continue;
            e->epoch = ci->epoch;
            if (!e->common)
                ci_union_runs(ci, e);
        }
    }
    ci->quiet = false;
    for (size_t i = 0; i < t->nalerts; i++) {
        struct ci_alert *x = t->alerts[i];

        if (ci_find(x) == x)
            ci_note(ci, x->earliest, COR_INCIDENT_UPDATED);
    }
    for (size_t i = 0; i < nold; i++)
        if (ci_find(old[i])->earliest != old[i])
            ci_note(ci, old[i], COR_INCIDENT_RETIRED);
    vg_free(old);
    return 0;
}

static void ci_settle(cor_incidents *ci, struct ci_tenant *t)
{
    if (t->rebuild)
        (void)ci_rebuild(ci, t);
}

/* ---- changes ---------------------------------------------------------------------- */

static void ci_incident_id(uint64_t idh, char *buf)
{
    snprintf(buf, COR_INCIDENT_ID_MAX, "inc-%016" PRIx64, idh);
}

static void ci_note(cor_incidents *ci, const struct ci_alert *earliest,
                    enum cor_incident_change_kind kind)
{
    uintptr_t idx = (uintptr_t)vg_u64map_get(&ci->chgidx, earliest->idh);
    struct cor_incident_change *c;

    if (idx != 0) {
        ci->chg[idx - 1].kind = kind;
        return;
    }
    if (ci->nchg == ci->capchg) {
        size_t cap = ci->capchg ? ci->capchg * 2 : 16;
        struct cor_incident_change *n = vg_realloc(ci->chg, cap * sizeof(*n));

        if (n == NULL)
            return; /* the caller still learns its own incident from the return value */
        ci->chg = n;
        ci->capchg = cap;
    }
    if (ci->chgidx.keys == NULL ||
        vg_u64map_put(&ci->chgidx, earliest->idh, (void *)(uintptr_t)(ci->nchg + 1)) < 0)
        return;
    c = &ci->chg[ci->nchg++];
    ci_incident_id(earliest->idh, c->id);
    c->tenant = earliest->t->id;
    c->kind = kind;
}

/* ---- alerts ----------------------------------------------------------------------- */

/* Packs the part of the alert the incident needs: evidence and description stay out, and
 * incident_id too, so that an alert sent back with its incident set is not a change. */
static int ci_pack(const Vigil__Alert *a, uint8_t **out, size_t *len)
{
    Vigil__Alert c = *a;

    c.n_evidence = 0;
    c.evidence = NULL;
    c.description = (char *)"";
    c.incident_id = (char *)"";
    *len = vigil__alert__get_packed_size(&c);
    *out = vg_malloc(*len ? *len : 1);
    if (*out == NULL)
        return -VG_ENOMEM;
    vigil__alert__pack(&c, *out);
    return 0;
}

static bool ci_refs_has(const struct ci_ref *r, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].key == key)
            return true;
    return false;
}

/* The alert's distinct linking entities; *out is vg_malloc'd. */
static int ci_alert_refs(const struct ci_tenant *t, const Vigil__Alert *a, struct ci_ref **out,
                         size_t *n)
{
    size_t cap = a->n_entities + a->n_process_tree + 1, k = 0;
    struct ci_ref *r = vg_malloc(cap * sizeof(*r));
    uint8_t ck;
    uint64_t key;

    if (r == NULL)
        return -VG_ENOMEM;
    key = ci_ref_key(t->key, VIGIL__ENTITY_KIND__ENTITY_MACHINE, a->machine_id, NULL, &ck);
    if (key)
        r[k++] = (struct ci_ref){key, ck};
    for (size_t i = 0; i < a->n_entities; i++) {
        const Vigil__Entity *en = a->entities[i];

        if (en == NULL)
            continue;
        key = ci_ref_key(t->key, en->kind, en->value, en->sha256, &ck);
        if (key && !ci_refs_has(r, k, key))
            r[k++] = (struct ci_ref){key, ck};
    }
    for (size_t i = 0; a->machine_id[0] && i < a->n_process_tree; i++) {
        const Vigil__ProcessNode *p = a->process_tree[i];

        if (p == NULL || p->pid == 0 || p->creation_time_us == 0)
            continue;
        key = ci_lineage_key(t->key, a->machine_id, p->pid, p->creation_time_us);
        if (!ci_refs_has(r, k, key))
            r[k++] = (struct ci_ref){key, CI_LINEAGE};
    }
    *out = r;
    *n = k;
    return 0;
}

static int ci_tenant_push(struct ci_tenant *t, struct ci_alert *x)
{
    if (t->nalerts == t->capalerts) {
        size_t cap = t->capalerts ? t->capalerts * 2 : 64;
        struct ci_alert **n = vg_realloc(t->alerts, cap * sizeof(*n));

        if (n == NULL)
            return -VG_ENOMEM;
        t->alerts = n;
        t->capalerts = cap;
    }
    x->tidx = t->nalerts;
    t->alerts[t->nalerts++] = x;
    return 0;
}

static struct ci_alert *ci_alert_new(cor_incidents *ci, struct ci_tenant *t, uint64_t idh,
                                     const Vigil__Alert *a)
{
    struct ci_alert *x = vg_calloc(1, sizeof(*x));

    if (x == NULL)
        return NULL;
    x->idh = idh;
    x->t = t;
    x->id = vg_strdup(a->id);
    x->ts = a->first_event_us;
    x->parent = x->ring = x->earliest = x;
    x->size = 1;
    if (x->id == NULL || ci_tenant_push(t, x) < 0)
        goto out_free;
    if (vg_u64map_put(&ci->alerts, idh, x) < 0) {
        t->nalerts--;
        goto out_free;
    }
    return x;
out_free:
    vg_free(x->id);
    vg_free(x);
    return NULL;
}

/* Interns the refs as x's entities and counts their sightings on the alert's machine. */
static int ci_alert_entities(cor_incidents *ci, struct ci_tenant *t, struct ci_alert *x,
                             const struct ci_ref *r, size_t n, uint64_t mkey, int64_t ts)
{
    struct ci_entity **ents = vg_malloc((n ? n : 1) * sizeof(*ents));
    size_t k = 0;
    int rc = 0;

    if (ents == NULL)
        return -VG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct ci_entity *e = ci_entity_get(ci, t, r[i].key, r[i].kind);

        if (e == NULL) {
            rc = -VG_ENOMEM;
            continue;
        }
        ents[k++] = e;
        if (mkey != 0 && ci_sight(ci, e, mkey, ts) < 0)
            rc = -VG_ENOMEM;
    }
    vg_free(x->ents);
    x->ents = ents;
    x->nents = k;
    return rc;
}

static bool ci_ents_has(const struct ci_alert *x, const struct ci_entity *e)
{
    for (size_t i = 0; i < x->nents; i++)
        if (x->ents[i] == e)
            return true;
    return false;
}

/* Replaces x's entities with the refs. Links only grow when the time is the same and no
 * entity went away; otherwise the tenant is recomputed. */
static int ci_alert_reindex(cor_incidents *ci, struct ci_tenant *t, struct ci_alert *x,
                            const Vigil__Alert *a, const struct ci_ref *r, size_t n, uint64_t mkey)
{
    struct ci_entity **old = x->ents;
    size_t nold = x->nents;
    bool grow = x->ts == a->first_event_us;
    int rc;

    for (size_t i = 0; grow && i < nold; i++)
        grow = ci_refs_has(r, n, old[i]->key);
    x->ents = NULL;
    x->nents = 0;
    if (!grow) {
        for (size_t i = 0; i < nold; i++)
            ci_post_del(old[i], x);
        x->ts = a->first_event_us;
        t->rebuild = true;
    }
    rc = ci_alert_entities(ci, t, x, r, n, mkey, VG_MAX(a->first_event_us, a->last_event_us));
    for (size_t i = 0; i < x->nents; i++) {
        bool known = false;

        for (size_t j = 0; grow && j < nold; j++)
            known |= old[j] == x->ents[i];
        if (!known && ci_post_add(ci, x->ents[i], x, grow) < 0)
            rc = -VG_ENOMEM;
    }
    /* Entities the alert no longer has and nobody else holds go (no prevalence kept). */
    for (size_t i = 0; !grow && i < nold; i++)
        if (old[i]->npost == 0 && !ci_ents_has(x, old[i]) && !ci_kind_prevalent(old[i]->kind))
            ci_entity_free(ci, old[i]);
    vg_free(old);
    return rc;
}

int cor_incidents_add(cor_incidents *ci, const Vigil__Alert *a, char *incident_id, bool *changed)
{
    struct ci_tenant *t;
    struct ci_alert *x;
    struct ci_ref *r = NULL;
    uint8_t *packed = NULL;
    size_t nr = 0, len = 0;
    uint64_t idh, mkey = 0;
    bool is_new;
    int rc;

    if (changed)
        *changed = false;
    if (a == NULL || a->id == NULL || a->id[0] == '\0' || a->tenant_id == NULL ||
        a->tenant_id[0] == '\0' || a->machine_id == NULL) {
        ci->st.rejected++;
        return -VG_EINVAL;
    }
    t = ci_tenant_get(ci, a->tenant_id, true);
    if (t == NULL)
        return -VG_ENOMEM;
    idh = ci_hash(t->key, a->id, strlen(a->id), false);
    x = vg_u64map_get(&ci->alerts, idh);
    if (x != NULL && (x->t != t || strcmp(x->id, a->id) != 0)) {
        ci->st.rejected++; /* a 64-bit hash collision: never seen, but never fatal */
        return -VG_EINVAL;
    }
    rc = ci_pack(a, &packed, &len);
    if (rc < 0)
        return rc;
    if (x != NULL && x->len == len && memcmp(x->packed, packed, len) == 0) {
        ci->st.alerts_same++;
        goto out_id;
    }
    rc = ci_alert_refs(t, a, &r, &nr);
    if (rc < 0)
        goto out_free;
    if (a->machine_id[0]) {
        mkey = r[0].key; /* the machine entity comes first */
        if (ci_tenant_machine(ci, t, mkey) < 0)
            rc = -VG_ENOMEM;
    }
    is_new = x == NULL;
    if (is_new) {
        x = ci_alert_new(ci, t, idh, a);
        if (x == NULL) {
            rc = -VG_ENOMEM;
            goto out_free;
        }
        ci->st.alerts_added++;
    } else {
        ci->st.alerts_updated++;
    }
    vg_free(x->packed);
    x->packed = packed;
    x->len = len;
    packed = NULL;
    x->last = VG_MAX(a->first_event_us, a->last_event_us);
    if (x->last > t->hwm)
        t->hwm = x->last;
    if (is_new) {
        if (ci_alert_entities(ci, t, x, r, nr, mkey, x->last) < 0)
            rc = -VG_ENOMEM;
        for (size_t i = 0; i < x->nents; i++)
            if (ci_post_add(ci, x->ents[i], x, true) < 0)
                rc = -VG_ENOMEM;
    } else if (ci_alert_reindex(ci, t, x, a, r, nr, mkey) < 0) {
        rc = -VG_ENOMEM;
    }
    ci_settle(ci, t);
    ci_note(ci, ci_find(x)->earliest, COR_INCIDENT_UPDATED);
    if (changed)
        *changed = true;
out_id:
    if (incident_id)
        ci_incident_id(ci_find(x)->earliest->idh, incident_id);
out_free:
    vg_free(packed);
    vg_free(r);
    return rc;
}

int cor_incidents_get(cor_incidents *ci, const char *incident_id, vg_arena *arena,
                      Vigil__Incident **out)
{
    struct ci_alert *x;
    uint64_t idh;
    char *end;

    if (incident_id == NULL || strncmp(incident_id, "inc-", 4) != 0 || strlen(incident_id) != 20)
        return -VG_ENOENT;
    idh = strtoull(incident_id + 4, &end, 16);
    if (*end != '\0')
        return -VG_ENOENT;
    x = vg_u64map_get(&ci->alerts, idh);
    if (x == NULL || ci_find(x)->earliest != x)
        return -VG_ENOENT;
    return cor_inc_build(ci, ci_find(x), arena, out);
}

/* ---- expiry ----------------------------------------------------------------------- */

static void ci_entity_free(cor_incidents *ci, struct ci_entity *e)
{
    vg_u64map_del(&ci->entities, e->key);
    ci_cand_del(e->t, e);
    if (e->mset) {
        vg_u64map_free(e->mset);
        vg_free(e->mset);
    }
    vg_free(e->post);
    vg_free(e);
}

/* Removes one alert of a closing incident. */
static void ci_alert_drop(cor_incidents *ci, struct ci_alert *x)
{
    struct ci_tenant *t = x->t;

    for (size_t i = 0; i < x->nents; i++) {
        struct ci_entity *e = x->ents[i];

        ci_post_del(e, x);
        if (e->npost == 0 && !ci_kind_prevalent(e->kind))
            ci_entity_free(ci, e);
    }
    vg_u64map_del(&ci->alerts, x->idh);
    t->alerts[x->tidx] = t->alerts[t->nalerts - 1];
    t->alerts[x->tidx]->tidx = x->tidx;
    t->nalerts--;
    ci_alert_free(x);
}

static int64_t ci_incident_last(struct ci_alert *root)
{
    int64_t last = root->last;

    for (struct ci_alert *m = root->ring; m != root; m = m->ring)
        last = VG_MAX(last, m->last);
    return last;
}

static size_t ci_tenant_expire(cor_incidents *ci, struct ci_tenant *t, int64_t now_us)
{
    int64_t ref = VG_MAX(t->hwm, now_us), cutoff;
    struct ci_alert **close;
    size_t n = 0;

    if (t->nalerts == 0 || ref == INT64_MIN)
        return 0;
    cutoff = ref - ci->cfg.window_us;
    close = vg_malloc(t->nalerts * sizeof(*close));
    if (close == NULL)
        return 0;
    for (size_t i = 0; i < t->nalerts; i++) {
        struct ci_alert *x = t->alerts[i];

        if (ci_find(x) == x && ci_incident_last(x) < cutoff)
            close[n++] = x;
    }
    for (size_t i = 0; i < n; i++) {
        struct ci_alert *root = close[i], *m = root->ring, *next;

        ci_note(ci, root->earliest, COR_INCIDENT_CLOSED);
        while (m != root) {
            next = m->ring;
            ci_alert_drop(ci, m);
            m = next;
        }
        ci_alert_drop(ci, root);
    }
    vg_free(close);
    ci->st.closed += n;
    return n;
}

/* Forgets prevalence records no alert holds and nobody saw within the prevalence window. */
static void ci_entities_expire(cor_incidents *ci, int64_t now_us)
{
    struct ci_entity **gone = vg_malloc((ci->entities.count + 1) * sizeof(*gone));
    size_t pos = 0, n = 0;
    uint64_t k;
    void *v;

    if (gone == NULL)
        return;
    while (vg_u64map_next(&ci->entities, &pos, &k, &v)) {
        struct ci_entity *e = v;
        int64_t ref = VG_MAX(e->t->hwm, now_us);

        if (e->npost == 0 && ref != INT64_MIN && e->last_seen < ref - ci->cfg.prevalence_window_us)
            gone[n++] = e;
    }
    for (size_t i = 0; i < n; i++)
        ci_entity_free(ci, gone[i]);
    vg_free(gone);
}

size_t cor_incidents_expire(cor_incidents *ci, int64_t now_us)
{
    size_t pos = 0, n = 0;
    uint64_t k;
    void *v;

    while (vg_u64map_next(&ci->tenants, &pos, &k, &v))
        n += ci_tenant_expire(ci, v, now_us);
    ci_entities_expire(ci, now_us);
    return n;
}

/* ---- graph building (used by incident_graph.c) ------------------------------------ */

static int ci_member_cmp(const void *pa, const void *pb)
{
    const struct ci_alert *a = *(const struct ci_alert *const *)pa;
    const struct ci_alert *b = *(const struct ci_alert *const *)pb;

    return ci_earlier(a, b) ? -1 : ci_earlier(b, a) ? 1 : 0;
}

/* Members of the incident rooted at root, ordered by (time, id); vg_malloc'd. */
struct ci_alert **cor_inc_members(struct ci_alert *root, size_t *n)
{
    size_t k = 1, i = 0;
    struct ci_alert **v;

    for (struct ci_alert *m = root->ring; m != root; m = m->ring)
        k++;
    v = vg_malloc(k * sizeof(*v));
    if (v == NULL)
        return NULL;
    v[i++] = root;
    for (struct ci_alert *m = root->ring; m != root; m = m->ring)
        v[i++] = m;
    qsort(v, k, sizeof(*v), ci_member_cmp);
    *n = k;
    return v;
}

/* The packed alert of a member, and the tenant id. */
const uint8_t *cor_inc_alert_packed(const struct ci_alert *x, size_t *len)
{
    *len = x->len;
    return x->packed;
}

const char *cor_inc_alert_tenant(const struct ci_alert *x)
{
    return x->t->id;
}

void cor_inc_alert_incident_id(const struct ci_alert *x, char *buf)
{
    ci_incident_id(x->idh, buf);
}
