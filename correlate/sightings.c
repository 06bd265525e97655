/*
 * sightings.c - entities of events (shared with the alert builder) and the per-shard
 * collection of (machine, entity) sightings for the incident stage; see sightings.h.
 *
 * THREAD SAFETY: a cor_sightings belongs to one shard thread.
 */
#include "sightings.h"

#include <stdio.h>
#include <string.h>

#define CS_DEF_SLOTS (1u << 20)
#define CS_SEED      UINT64_C(0x51647e1a9c0ffee5)
#define CS_KIND_MUL  UINT64_C(0x9e3779b97f4a7c15)
#define CS_DAY_MUL   UINT64_C(0xc2b2ae3d27d4eb4f)
#define CS_HEARTBEAT 0 /* the "entity" that reports the machine itself */

/* ---- entities of an event ------------------------------------------------------------ */

/* A logon's account as DOMAIN\account, the way process accounts are written, so that the
 * account that logs on and the programs it then runs are one user entity. */
static void cor_logon_user(const Vigil__LogonEvent *lg, cor_entity_fn fn, void *ctx)
{
    const char *acct = lg->account, *dom = lg->account_domain;
    char buf[512];
    int n;

    if (acct != NULL && acct[0] != '\0' && dom != NULL && dom[0] != '\0' &&
        strchr(acct, '\\') == NULL) {
        n = snprintf(buf, sizeof(buf), "%s\\%s", dom, acct);
        if (n > 0 && (size_t)n < sizeof(buf))
            acct = buf;
    }
    fn(ctx, VIGIL__ENTITY_KIND__ENTITY_USER, acct, NULL);
}

static void cor_entity(cor_entity_fn fn, void *ctx, Vigil__EntityKind kind, const char *value,
                       const char *sha256)
{
    if (value != NULL && value[0] != '\0')
        fn(ctx, kind, value, sha256);
}

void cor_event_entities(const Vigil__Event *ev, cor_entity_fn fn, void *ctx)
{
    const Vigil__ProcessRef *p = ev->actor;

    if (ev->kind_case == VIGIL__EVENT__KIND_PROCESS_CREATED && ev->process_created->process)
        p = ev->process_created->process;
    if (p != NULL) {
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_PROCESS, p->image, p->sha256);
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_USER, p->account, NULL);
    }
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_FILE:
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_FILE, ev->file->path, ev->file->sha256);
        break;
    case VIGIL__EVENT__KIND_NETWORK:
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_IP, ev->network->remote_ip, NULL);
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_DOMAIN, ev->network->remote_hostname, NULL);
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_URL, ev->network->url, NULL);
        break;
    case VIGIL__EVENT__KIND_DNS:
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_DOMAIN, ev->dns->query_name, NULL);
        break;
    case VIGIL__EVENT__KIND_REGISTRY:
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_REGISTRY, ev->registry->key, NULL);
        break;
    case VIGIL__EVENT__KIND_LOGON:
        if (ev->logon->account != NULL && ev->logon->account[0] != '\0')
            cor_logon_user(ev->logon, fn, ctx);
        cor_entity(fn, ctx, VIGIL__ENTITY_KIND__ENTITY_IP, ev->logon->source_ip, NULL);
        break;
    default:
        break;
    }
}

/* ---- sightings ----------------------------------------------------------------------- */

struct cs_entity {
    Vigil__EntityKind kind;
    char *value, *sha256;
};

/* A machine with queued sightings. */
struct cs_machine {
    char *tenant, *machine_id;
    int64_t ts_us;
    struct cs_entity *ents;
    size_t n, cap;
};

struct cor_sightings {
    uint64_t *cache; /* lossy set of reported (machine, entity, day) hashes */
    uint64_t mask;
    struct vg_u64map pending; /* mkey -> index + 1 into queue */
    struct cs_machine *queue;
    size_t nqueue, capqueue;
    struct cor_sightings_stats st;
};

cor_sightings *cor_sightings_new(size_t cache_slots)
{
    cor_sightings *cs = vg_calloc(1, sizeof(*cs));
    size_t slots = 1;

    if (cs == NULL)
        return NULL;
    if (cache_slots == 0)
        cache_slots = CS_DEF_SLOTS;
    while (slots < cache_slots)
        slots <<= 1;
    cs->mask = slots - 1;
    cs->cache = vg_calloc(slots, sizeof(*cs->cache));
    if (cs->cache == NULL || vg_u64map_init(&cs->pending, 64) < 0) {
        vg_free(cs->cache);
        vg_free(cs);
        return NULL;
    }
    return cs;
}

static void cs_machine_clear(struct cs_machine *m)
{
    for (size_t i = 0; i < m->n; i++) {
        vg_free(m->ents[i].value);
        vg_free(m->ents[i].sha256);
    }
    vg_free(m->ents);
    vg_free(m->tenant);
    vg_free(m->machine_id);
    memset(m, 0, sizeof(*m));
}

static void cs_queue_clear(cor_sightings *cs)
{
    for (size_t i = 0; i < cs->nqueue; i++)
        cs_machine_clear(&cs->queue[i]);
    cs->nqueue = 0;
    vg_u64map_free(&cs->pending);
    memset(&cs->pending, 0, sizeof(cs->pending));
}

void cor_sightings_free(cor_sightings *cs)
{
    if (cs == NULL)
        return;
    cs_queue_clear(cs);
    vg_free(cs->queue);
    vg_free(cs->cache);
    vg_free(cs);
}

/* The cache slot now holding the pair when it was not yet reported that day (to clear
 * again if queueing fails), or NULL for a repeat. */
static uint64_t *cs_fresh(cor_sightings *cs, uint64_t mkey, unsigned kind, const char *s,
                          int64_t day)
{
    uint64_t h = vg_hash64(s, strlen(s),
                           mkey ^ CS_SEED ^ (kind * CS_KIND_MUL) ^ ((uint64_t)day * CS_DAY_MUL));
    uint64_t *slot;

    h |= 1; /* 0 marks an empty slot */
    slot = &cs->cache[h & cs->mask];
    if (*slot == h) {
        if (kind != CS_HEARTBEAT) /* the stats count entities, as reported does */
            cs->st.repeats++;
        return NULL;
    }
    *slot = h;
    return slot;
}

/* The queue entry of a machine, made on first use; NULL on allocation failure. */
static struct cs_machine *cs_machine(cor_sightings *cs, uint64_t mkey, const char *tenant,
                                     const char *machine_id)
{
    uintptr_t idx;
    struct cs_machine *m;

    if (cs->pending.keys == NULL && vg_u64map_init(&cs->pending, 64) < 0)
        return NULL;
    idx = (uintptr_t)vg_u64map_get(&cs->pending, mkey);
    if (idx != 0)
        return &cs->queue[idx - 1];
    if (cs->nqueue == cs->capqueue) {
        size_t cap = cs->capqueue ? cs->capqueue * 2 : 16;
        struct cs_machine *q = vg_realloc(cs->queue, cap * sizeof(*q));

        if (q == NULL)
            return NULL;
        cs->queue = q;
        cs->capqueue = cap;
    }
    m = &cs->queue[cs->nqueue];
    memset(m, 0, sizeof(*m));
    m->tenant = vg_strdup(tenant);
    m->machine_id = vg_strdup(machine_id);
    m->ts_us = INT64_MIN;
    if (m->tenant == NULL || m->machine_id == NULL ||
        vg_u64map_put(&cs->pending, mkey, (void *)(uintptr_t)(cs->nqueue + 1)) < 0) {
        cs_machine_clear(m);
        return NULL;
    }
    cs->nqueue++;
    return m;
}

static int cs_add(struct cs_machine *m, Vigil__EntityKind kind, const char *value,
                  const char *sha256)
{
    struct cs_entity *e;

    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        struct cs_entity *n = vg_realloc(m->ents, cap * sizeof(*n));

        if (n == NULL)
            return -VG_ENOMEM;
        m->ents = n;
        m->cap = cap;
    }
    e = &m->ents[m->n];
    e->kind = kind;
    e->value = vg_strdup(value);
    e->sha256 = vg_strdup(sha256 ? sha256 : "");
    if (e->value == NULL || e->sha256 == NULL) {
        vg_free(e->value);
        vg_free(e->sha256);
        return -VG_ENOMEM;
    }
    m->n++;
    return 0;
}

struct cs_event_ctx {
    cor_sightings *cs;
    uint64_t mkey;
    const char *tenant, *machine_id;
    int64_t day, ts_us;
    int rc;
};

static void cs_on_entity(void *arg, Vigil__EntityKind kind, const char *value, const char *sha256)
{
    struct cs_event_ctx *c = arg;
    const char *id = value;
    struct cs_machine *m;
    uint64_t *slot;

    switch (kind) {
    case VIGIL__ENTITY_KIND__ENTITY_PROCESS:
    case VIGIL__ENTITY_KIND__ENTITY_FILE:
        if (sha256 == NULL || sha256[0] == '\0')
            return; /* a path alone is no identity across machines: never links */
        id = sha256;
        kind = VIGIL__ENTITY_KIND__ENTITY_FILE; /* one hash, whether run or written */
        break;
    case VIGIL__ENTITY_KIND__ENTITY_IP:
    case VIGIL__ENTITY_KIND__ENTITY_DOMAIN:
    case VIGIL__ENTITY_KIND__ENTITY_USER:
        break;
    default:
        return; /* registry keys never link; URLs are per visit, not worth the volume */
    }
    if (c->rc != 0 || (slot = cs_fresh(c->cs, c->mkey, (unsigned)kind, id, c->day)) == NULL)
        return;
    m = cs_machine(c->cs, c->mkey, c->tenant, c->machine_id);
    if (m == NULL || cs_add(m, kind, value, sha256) < 0) {
        c->rc = -VG_ENOMEM;
        *slot = 0; /* not reported: a later event of the day tries again */
        return;
    }
    if (c->ts_us > m->ts_us)
        m->ts_us = c->ts_us;
    c->cs->st.reported++;
}

int cor_sightings_event(cor_sightings *cs, uint64_t mkey, const char *tenant,
                        const char *machine_id, const Vigil__Event *ev)
{
    struct cs_event_ctx c = {cs, mkey, tenant, machine_id, 0, ev->ts_us, 0};
    int64_t day =
        ev->ts_us >= 0 ? ev->ts_us / VG_US_PER_DAY : -1 - (-1 - ev->ts_us) / VG_US_PER_DAY;
    struct cs_machine *m;

    uint64_t *slot;

    c.day = day;
    if ((slot = cs_fresh(cs, mkey, CS_HEARTBEAT, "", day)) != NULL) {
        m = cs_machine(cs, mkey, tenant, machine_id);
        if (m == NULL) {
            *slot = 0;
            return -VG_ENOMEM;
        }
        if (ev->ts_us > m->ts_us)
            m->ts_us = ev->ts_us;
    }
    cor_event_entities(ev, cs_on_entity, &c);
    return c.rc;
}

int cor_sightings_drain(cor_sightings *cs, vg_arena *arena, Vigil__Sightings ***out, size_t *n)
{
    Vigil__Sightings **arr;

    *out = NULL;
    *n = 0;
    if (cs->nqueue == 0)
        return 0;
    arr = vg_arena_alloc(arena, cs->nqueue * sizeof(*arr));
    if (arr == NULL)
        return -VG_ENOMEM;
    for (size_t i = 0; i < cs->nqueue; i++) {
        const struct cs_machine *m = &cs->queue[i];
        Vigil__Sightings *s = vg_arena_alloc(arena, sizeof(*s));
        Vigil__Entity *ents = vg_arena_alloc(arena, (m->n ? m->n : 1) * sizeof(*ents));
        Vigil__Entity **ep = vg_arena_alloc(arena, (m->n ? m->n : 1) * sizeof(*ep));

        if (s == NULL || ents == NULL || ep == NULL)
            return -VG_ENOMEM;
        vigil__sightings__init(s);
        s->tenant_id = vg_arena_strndup(arena, m->tenant, strlen(m->tenant));
        s->machine_id = vg_arena_strndup(arena, m->machine_id, strlen(m->machine_id));
        if (s->tenant_id == NULL || s->machine_id == NULL)
            return -VG_ENOMEM;
        s->ts_us = m->ts_us;
        for (size_t k = 0; k < m->n; k++) {
            vigil__entity__init(&ents[k]);
            ents[k].kind = m->ents[k].kind;
            ents[k].value = vg_arena_strndup(arena, m->ents[k].value, strlen(m->ents[k].value));
            ents[k].sha256 = vg_arena_strndup(arena, m->ents[k].sha256, strlen(m->ents[k].sha256));
            if (ents[k].value == NULL || ents[k].sha256 == NULL)
                return -VG_ENOMEM;
            ep[k] = &ents[k];
        }
        s->n_entities = m->n;
        s->entities = ep;
        arr[i] = s;
    }
    *out = arr;
    *n = cs->nqueue;
    cs_queue_clear(cs);
    return 0;
}

void cor_sightings_get_stats(const cor_sightings *cs, struct cor_sightings_stats *st)
{
    *st = cs->st;
}
