/*
 * corr.c - the per-shard correlation state: reorder buffers per machine, groups per
 * (correlation, machine, group values), sliding windows in event time, episodes.
 *
 * Order: a match waits in its machine's reorder buffer, sorted by (time, seq, correlation,
 * rule), until the machine's watermark (its newest event time minus the lateness bound)
 * passes it; so every group sees its events in event-time order whatever the arrival order,
 * and the results depend only on the set of events. A match behind the watermark is late:
 * counted and dropped, since the windows it belongs to may already be judged.
 *
 * Windows: one per event, anchored at it: [t, t + timespan]. With only lower bounds in the
 * condition (monotone), the oldest open window is judged as each event arrives (it holds
 * every other open window's events). With an upper bound, a window is judged when the
 * watermark passes its end, and only if it is maximal (not inside the previous event's
 * window), so that the tail of a burst does not pass for a small burst.
 *
 * Episodes: firing windows that overlap (the new window's anchor is not after the episode's
 * newest event) are one episode, hence one alert, whose id derives from the episode's first
 * event.
 *
 * THREAD SAFETY: a cor_corrstate is used by its one shard thread only (@locality shard
 * thread); the corrset it references is immutable.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "corr_int.h"

#define MOD "corr"

#define CS_GROUP_MAX   65536  /* events a group keeps */
#define CS_PENDING_MAX 262144 /* matches a machine holds back */
#define CS_SEP         '\x1f' /* between group values */
#define CS_TEXT_MAX    240    /* evidence summary kept */

/* One match of one correlation, pending then in its group. */
struct cs_item {
    int64_t ts;
    uint64_t seq;
    uint32_t corr, pos;
    uint64_t vhash;  /* value_count: hash of the field values */
    bool has_value;  /* value_count: every value field present */
    bool in_ep;      /* counted in the group's episode */
    int64_t prev_ts; /* the group's previous event time (INT64_MIN: none) */
    char *gvals;     /* group values joined by CS_SEP */
    char *kind, *summary;
    size_t bytes;
};

struct cs_machine;

struct cs_group {
    uint64_t hkey;
    struct cs_group *hnext; /* same hash */
    struct cs_group *mnext; /* the machine's groups */
    struct cs_machine *m;
    uint32_t corr;
    char *gvals;
    struct cs_item **ev; /* ev[head .. n) in event-time order */
    size_t head, n, cap;
    size_t next_close; /* non-monotone: first window not yet judged */
    int64_t last_ts;
    bool ep_active;
    int64_t ep_start, ep_last;
    uint32_t ep_count;
    char ep_id[33];
};

struct cs_machine {
    uint64_t mkey;
    char *tenant, *machine;
    int64_t maxts;         /* newest event time */
    int64_t clock_at_last; /* the state's clock at its newest arrival */
    int64_t wm;            /* watermark applied: matches before it are late */
    bool have_wm;
    struct cs_item **pend; /* pend[phead .. npend), sorted */
    size_t phead, npend, cappend;
    struct cs_group *groups;
};

struct cor_corrstate {
    cor_corrset *cs;
    int64_t lateness;
    cor_corr_fire_fn out;
    void *ctx;
    int64_t clock;             /* newest event time seen, or given to advance */
    struct vg_u64map machines; /* mkey -> cs_machine */
    struct vg_u64map groups;   /* hkey -> cs_group (chained) */
    struct cor_corrstate_stats st;
    /* scratch for fires and distinct counts */
    struct cor_corr_ev *evbuf;
    size_t evcap;
    struct cor_corr_kv kv[CORR_MAX_GROUP];
    char kvbuf[4096];
    uint64_t *set;
    size_t setcap;
};

static void cs_release(cor_corrstate *st, struct cs_machine *m, int64_t release_upto,
                       int64_t close_upto);
static void cs_group_free(cor_corrstate *st, struct cs_group *g);
static void cs_item_free(cor_corrstate *st, struct cs_item *it);

/* ---- small helpers ------------------------------------------------------------------ */

static const struct corr_rule *cs_rule(const cor_corrstate *st, uint32_t corr)
{
    return st->cs->rules[corr];
}

static int cs_item_cmp(const struct cs_item *a, const struct cs_item *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    if (a->corr != b->corr)
        return a->corr < b->corr ? -1 : 1;
    if (a->pos != b->pos)
        return a->pos < b->pos ? -1 : 1;
    return 0;
}

static bool cs_cond(const struct corr_cond *c, int64_t x)
{
    return (!(c->mask & (1u << CORR_GT)) || x > c->v[CORR_GT]) &&
           (!(c->mask & (1u << CORR_GTE)) || x >= c->v[CORR_GTE]) &&
           (!(c->mask & (1u << CORR_LT)) || x < c->v[CORR_LT]) &&
           (!(c->mask & (1u << CORR_LTE)) || x <= c->v[CORR_LTE]) &&
           (!(c->mask & (1u << CORR_EQ)) || x == c->v[CORR_EQ]) &&
           (!(c->mask & (1u << CORR_NEQ)) || x != c->v[CORR_NEQ]);
}

static int64_t cs_sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* Appends a value to buf at *off, with a separator before all but the first. */
static bool cs_append(char *buf, size_t cap, size_t *off, const char *p, size_t n, bool first)
{
    if (*off + n + 2 > cap)
        return false;
    if (!first)
        buf[(*off)++] = CS_SEP;
    memcpy(buf + *off, p, n);
    *off += n;
    buf[*off] = '\0';
    return true;
}

/* The value of one field (or pseudo field) for a match. false when absent. */
static bool cs_field(const struct cor_corr_match *m, const char *f, char *tmp, size_t tmplen,
                     struct vg_str *out)
{
    if (strcasecmp(f, COR_CORR_F_TREE) == 0 || strcasecmp(f, COR_CORR_F_PARENT) == 0) {
        bool ok = strcasecmp(f, COR_CORR_F_TREE) == 0 ? cor_corr_tree_label(m->proc, tmp, tmplen)
                                                      : cor_corr_parent_label(m->proc, tmp, tmplen);
        out->p = tmp;
        out->n = strlen(tmp);
        return ok;
    }
    return m->view != NULL && vg_evview_get(m->view, f, out) && out->p != NULL;
}

/* ---- items ------------------------------------------------------------------------- */

static struct cs_item *cs_item_new(cor_corrstate *st, const struct cor_corr_match *m,
                                   const char *gvals, size_t glen)
{
    const char *kind = m->kind ? m->kind : "", *sum = m->summary ? m->summary : "";
    size_t kl = strlen(kind), sl = VG_MIN(strlen(sum), (size_t)CS_TEXT_MAX);
    size_t bytes = sizeof(struct cs_item) + glen + kl + sl + 3;
    struct cs_item *it = vg_malloc(bytes);
    char *p;

    if (!it)
        return NULL;
    memset(it, 0, sizeof(*it));
    p = (char *)(it + 1);
    it->gvals = p;
    memcpy(p, gvals, glen);
    p[glen] = '\0';
    p += glen + 1;
    it->kind = p;
    memcpy(p, kind, kl);
    p[kl] = '\0';
    p += kl + 1;
    it->summary = p;
    memcpy(p, sum, sl);
    p[sl] = '\0';
    it->ts = m->ts_us;
    it->seq = m->seq;
    it->prev_ts = INT64_MIN;
    it->bytes = bytes;
    st->st.bytes += bytes;
    return it;
}

static void cs_item_free(cor_corrstate *st, struct cs_item *it)
{
    if (!it)
        return;
    st->st.bytes -= it->bytes;
    vg_free(it);
}

/* ---- machines ---------------------------------------------------------------------- */

static struct cs_machine *cs_machine_get(cor_corrstate *st, const struct cor_corr_match *mt)
{
    struct cs_machine *m = vg_u64map_get(&st->machines, mt->mkey);

    if (m)
        return m;
    m = vg_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->mkey = mt->mkey;
    m->tenant = vg_strdup(mt->tenant ? mt->tenant : "");
    m->machine = vg_strdup(mt->machine ? mt->machine : "");
    if (!m->tenant || !m->machine || vg_u64map_put(&st->machines, mt->mkey, m) < 0) {
        vg_free(m->tenant);
        vg_free(m->machine);
        vg_free(m);
        return NULL;
    }
    st->st.bytes += sizeof(*m) + strlen(m->tenant) + strlen(m->machine) + 2;
    st->st.machines++;
    return m;
}

static void cs_machine_free(cor_corrstate *st, struct cs_machine *m)
{
    while (m->groups) {
        struct cs_group *g = m->groups;
        m->groups = g->mnext;
        cs_group_free(st, g);
    }
    for (size_t i = m->phead; i < m->npend; i++)
        cs_item_free(st, m->pend[i]);
    st->st.pending -= m->npend - m->phead;
    st->st.bytes -=
        sizeof(*m) + strlen(m->tenant) + strlen(m->machine) + 2 + m->cappend * sizeof(*m->pend);
    st->st.machines--;
    vg_free(m->pend);
    vg_free(m->tenant);
    vg_free(m->machine);
    vg_free(m);
}

/* Inserts into the reorder buffer, keeping it sorted (arrivals are mostly in order, so
 * the search from the back is short). */
static int cs_pend_insert(cor_corrstate *st, struct cs_machine *m, struct cs_item *it)
{
    size_t i;

    /* The same match again (an event re-delivered after a restart or a takeover, already in
     * a restored state): held once, so that re-application changes nothing. */
    for (i = m->npend; i > m->phead && cs_item_cmp(m->pend[i - 1], it) > 0; i--)
        ;
    if (i > m->phead && cs_item_cmp(m->pend[i - 1], it) == 0)
        return 1;
    if (m->npend - m->phead >= CS_PENDING_MAX)
        return -VG_EFULL;
    if (m->npend == m->cappend) {
        size_t live = m->npend - m->phead;
        if (m->phead > 0 && live < m->cappend / 2) { /* compact before growing */
            memmove(m->pend, m->pend + m->phead, live * sizeof(*m->pend));
            m->phead = 0;
            m->npend = live;
        } else {
            size_t cap = m->cappend ? m->cappend * 2 : 16;
            struct cs_item **n = vg_realloc(m->pend, cap * sizeof(*n));
            if (!n)
                return -VG_ENOMEM;
            st->st.bytes += (cap - m->cappend) * sizeof(*n);
            m->pend = n;
            m->cappend = cap;
        }
    }
    for (i = m->npend; i > m->phead && cs_item_cmp(m->pend[i - 1], it) > 0; i--)
        m->pend[i] = m->pend[i - 1];
    m->pend[i] = it;
    m->npend++;
    st->st.pending++;
    return 0;
}

/* ---- groups ------------------------------------------------------------------------ */

static uint64_t cs_group_key(uint32_t corr, uint64_t mkey, const char *gvals)
{
    uint64_t h = vg_hash64(gvals, strlen(gvals), mkey ^ ((uint64_t)corr << 32 | corr));

    return h ? h : 1;
}

static struct cs_group *cs_group_get(cor_corrstate *st, struct cs_machine *m, uint32_t corr,
                                     const char *gvals)
{
    uint64_t key = cs_group_key(corr, m->mkey, gvals);
    struct cs_group *head = vg_u64map_get(&st->groups, key), *g;
    size_t gl = strlen(gvals);

    for (g = head; g; g = g->hnext)
        if (g->corr == corr && g->m == m && strcmp(g->gvals, gvals) == 0)
            return g;
    g = vg_calloc(1, sizeof(*g) + gl + 1);
    if (!g)
        return NULL;
    g->gvals = (char *)(g + 1);
    memcpy(g->gvals, gvals, gl + 1);
    g->hkey = key;
    g->corr = corr;
    g->m = m;
    g->last_ts = INT64_MIN;
    g->hnext = head;
    if (vg_u64map_put(&st->groups, key, g) < 0) {
        vg_free(g);
        return NULL;
    }
    g->mnext = m->groups;
    m->groups = g;
    st->st.groups++;
    st->st.bytes += sizeof(*g) + gl + 1;
    return g;
}

/* Unlinks from the hash chain and frees (the caller unlinks it from the machine). */
static void cs_group_free(cor_corrstate *st, struct cs_group *g)
{
    struct cs_group *head = vg_u64map_get(&st->groups, g->hkey);

    if (head == g) {
        vg_u64map_del(&st->groups, g->hkey);
        if (g->hnext) /* after a delete the map has room: put cannot need to grow */
            (void)vg_u64map_put(&st->groups, g->hkey, g->hnext);
    } else {
        for (struct cs_group *p = head; p; p = p->hnext)
            if (p->hnext == g) {
                p->hnext = g->hnext;
                break;
            }
    }
    for (size_t i = g->head; i < g->n; i++)
        cs_item_free(st, g->ev[i]);
    st->st.groups--;
    st->st.bytes -= sizeof(*g) + strlen(g->gvals) + 1 + g->cap * sizeof(*g->ev);
    vg_free(g->ev);
    vg_free(g);
}

static int cs_group_push(cor_corrstate *st, struct cs_group *g, struct cs_item *it)
{
    if (g->n - g->head >= CS_GROUP_MAX)
        return -VG_EFULL;
    if (g->n == g->cap) {
        size_t live = g->n - g->head;
        if (g->head > 0 && live < g->cap / 2) {
            memmove(g->ev, g->ev + g->head, live * sizeof(*g->ev));
            g->next_close -= g->head;
            g->n = live;
            g->head = 0;
        } else {
            size_t cap = g->cap ? g->cap * 2 : 8;
            struct cs_item **n = vg_realloc(g->ev, cap * sizeof(*n));
            if (!n)
                return -VG_ENOMEM;
            st->st.bytes += (cap - g->cap) * sizeof(*n);
            g->ev = n;
            g->cap = cap;
        }
    }
    it->prev_ts = g->last_ts;
    g->last_ts = it->ts;
    g->ev[g->n++] = it;
    return 0;
}

/* Drops events that no window still to be judged can hold: before cutoff, and (for
 * judged-on-close windows) already judged. */
static void cs_group_trim(cor_corrstate *st, struct cs_group *g, int64_t cutoff)
{
    bool mono = cs_rule(st, g->corr)->monotone;

    if (g->next_close < g->head)
        g->next_close = g->head;
    while (g->head < g->n && g->ev[g->head]->ts < cutoff && (mono || g->head < g->next_close)) {
        cs_item_free(st, g->ev[g->head]);
        g->head++;
    }
    if (g->head == g->n)
        g->head = g->n = g->next_close = 0;
}

/* ---- windows ----------------------------------------------------------------------- */

/* The count the condition judges, for the window ev[a .. b]. */
static int64_t cs_measure(cor_corrstate *st, const struct cs_group *g, size_t a, size_t b)
{
    const struct corr_rule *r = cs_rule(st, g->corr);
    uint64_t seen = 0;
    int64_t cnt = 0;
    size_t need = 0;

    switch (r->type) {
    case CORR_EVENT_COUNT:
        return (int64_t)(b - a + 1);
    case CORR_TEMPORAL:
        for (size_t i = a; i <= b; i++)
            seen |= UINT64_C(1) << g->ev[i]->pos;
        return __builtin_popcountll(seen);
    case CORR_TEMPORAL_ORDERED:
        for (size_t i = a; i <= b && need < r->nrefs; i++)
            if (g->ev[i]->pos == need)
                need++;
        return (int64_t)need;
    case CORR_VALUE_COUNT:
        break;
    }
    /* distinct value hashes, open addressing; 0 marks an empty slot */
    size_t cap = 16;
    while (cap < 2 * (b - a + 1))
        cap *= 2;
    if (cap > st->setcap) {
        uint64_t *n = vg_realloc(st->set, cap * sizeof(*n));
        if (!n) {
            st->st.enomem++;
            return 0;
        }
        st->set = n;
        st->setcap = cap;
    }
    memset(st->set, 0, cap * sizeof(*st->set));
    for (size_t i = a; i <= b; i++) {
        uint64_t h = g->ev[i]->vhash ? g->ev[i]->vhash : 1;
        size_t s = (size_t)h & (cap - 1);
        if (!g->ev[i]->has_value)
            continue;
        while (st->set[s] != 0 && st->set[s] != h)
            s = (s + 1) & (cap - 1);
        if (st->set[s] == 0) {
            st->set[s] = h;
            cnt++;
        }
    }
    return cnt;
}

static void cs_episode_id(const cor_corrstate *st, const struct cs_group *g,
                          const struct cs_item *anchor, char out[33])
{
    const char *rid = cs_rule(st, g->corr)->info.id;
    char buf[1024];
    int n;
    uint64_t h1, h2;

    /* Length-prefixed strings, so that no ids can alias another tenant's or machine's; the
     * group values (up to 64 KiB) are hashed whole into the seed rather than cut to fit. */
    n = snprintf(buf, sizeof(buf), "corr|%zu:%s|%zu:%s|%zu:%s|%zu|%lld|%llu", strlen(rid), rid,
                 strlen(g->m->tenant), g->m->tenant, strlen(g->m->machine), g->m->machine,
                 strlen(g->gvals), (long long)anchor->ts, (unsigned long long)anchor->seq);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    h1 = vg_hash64(buf, (size_t)n, vg_hash64(g->gvals, strlen(g->gvals), 0x636f7272656c));
    h2 = vg_hash64(buf, (size_t)n, h1);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

/* Splits the group values into st->kv. */
static size_t cs_group_kv(cor_corrstate *st, const struct cs_group *g)
{
    const struct corr_rule *r = cs_rule(st, g->corr);
    size_t len = strlen(g->gvals);
    char *p = st->kvbuf;

    if (len >= sizeof(st->kvbuf))
        len = sizeof(st->kvbuf) - 1;
    memcpy(p, g->gvals, len);
    p[len] = '\0';
    for (size_t i = 0; i < r->ngroup; i++) {
        char *sep = strchr(p, CS_SEP);
        st->kv[i].key = r->group[i];
        st->kv[i].value = p;
        if (sep) {
            *sep = '\0';
            p = sep + 1;
        } else {
            p += strlen(p);
        }
    }
    return r->ngroup;
}

/* The window ev[a .. b] satisfies the condition: fold it into the episode and report. */
static void cs_fire(cor_corrstate *st, struct cs_group *g, size_t a, size_t b)
{
    const struct corr_rule *r = cs_rule(st, g->corr);
    struct cor_corr_fire f;
    size_t nnew = 0;

    memset(&f, 0, sizeof(f));
    f.is_new = !g->ep_active || g->ev[a]->ts > g->ep_last;
    if (f.is_new) {
        g->ep_active = true;
        g->ep_start = g->ev[a]->ts;
        g->ep_last = g->ev[a]->ts;
        g->ep_count = 0;
        cs_episode_id(st, g, g->ev[a], g->ep_id);
    }
    if (b - a + 1 > st->evcap) {
        size_t cap = VG_MAX(b - a + 1, 2 * st->evcap);
        struct cor_corr_ev *n = vg_realloc(st->evbuf, cap * sizeof(*n));
        if (!n) {
            st->st.enomem++;
            return;
        }
        st->evbuf = n;
        st->evcap = cap;
    }
    for (size_t i = a; i <= b; i++) {
        struct cs_item *it = g->ev[i];
        if (it->in_ep)
            continue;
        it->in_ep = true;
        st->evbuf[nnew].seq = it->seq;
        st->evbuf[nnew].ts_us = it->ts;
        st->evbuf[nnew].rule_id = r->refs[it->pos];
        st->evbuf[nnew].kind = it->kind;
        st->evbuf[nnew].summary = it->summary;
        nnew++;
        g->ep_count++;
        if (it->ts > g->ep_last)
            g->ep_last = it->ts;
    }
    if (nnew == 0)
        return; /* nothing new: the episode already holds this window */
    f.rule = &r->info;
    memcpy(f.id, g->ep_id, sizeof(f.id));
    f.mkey = g->m->mkey;
    f.tenant = g->m->tenant;
    f.machine = g->m->machine;
    f.n_group_by = cs_group_kv(st, g);
    f.group_by = st->kv;
    f.first_ts_us = g->ep_start;
    f.last_ts_us = g->ep_last;
    f.count = g->ep_count;
    f.events = st->evbuf;
    f.n_events = nnew;
    if (f.is_new)
        st->st.fires++;
    else
        st->st.updates++;
    if (st->out)
        st->out(st->ctx, &f);
}

/* Judges the windows that end before upto (conditions with an upper bound). */
static void cs_close_windows(cor_corrstate *st, struct cs_group *g, int64_t upto)
{
    const struct corr_rule *r = cs_rule(st, g->corr);

    if (g->next_close < g->head)
        g->next_close = g->head;
    while (g->next_close < g->n) {
        size_t a = g->next_close, b = a;
        const struct cs_item *an = g->ev[a];
        int64_t end = cs_sat_add(an->ts, r->span_us);

        if (end >= upto)
            break;
        while (b + 1 < g->n && g->ev[b + 1]->ts <= end)
            b++;
        /* maximal: the previous event's window does not hold all of this one */
        if ((an->prev_ts == INT64_MIN || cs_sat_add(an->prev_ts, r->span_us) < g->ev[b]->ts) &&
            cs_cond(&r->cond, cs_measure(st, g, a, b)))
            cs_fire(st, g, a, b);
        g->next_close++;
    }
}

/* One released match into its group, in event-time order. */
static void cs_apply(cor_corrstate *st, struct cs_machine *m, struct cs_item *it)
{
    const struct corr_rule *r = cs_rule(st, it->corr);
    struct cs_group *g = cs_group_get(st, m, it->corr, it->gvals);
    int rc;

    if (!g) {
        st->st.enomem++;
        cs_item_free(st, it);
        return;
    }
    /* A re-applied match at the watermark itself may already sit at the group's tail. */
    for (size_t i = g->n; i > g->head && g->ev[i - 1]->ts == it->ts; i--) {
        if (g->ev[i - 1]->seq == it->seq && g->ev[i - 1]->pos == it->pos) {
            st->st.duplicates++;
            cs_item_free(st, it);
            return;
        }
    }
    if (!r->monotone)
        cs_close_windows(st, g, it->ts);
    cs_group_trim(st, g, cs_sat_add(it->ts, -r->span_us));
    if ((rc = cs_group_push(st, g, it)) < 0) {
        if (rc == -VG_EFULL)
            st->st.overflow++;
        else
            st->st.enomem++;
        cs_item_free(st, it);
        return;
    }
    if (r->monotone && cs_cond(&r->cond, cs_measure(st, g, g->head, g->n - 1)))
        cs_fire(st, g, g->head, g->n - 1);
}

/* Frees the machine's groups that can hold nothing more. */
static void cs_gc_groups(cor_corrstate *st, struct cs_machine *m, int64_t wm)
{
    struct cs_group **pp = &m->groups;

    while (*pp) {
        struct cs_group *g = *pp;
        const struct corr_rule *r = cs_rule(st, g->corr);
        if (!r->monotone)
            cs_close_windows(st, g, wm);
        cs_group_trim(st, g, cs_sat_add(wm, -r->span_us));
        if (g->head == g->n) {
            *pp = g->mnext;
            cs_group_free(st, g);
        } else {
            pp = &g->mnext;
        }
    }
}

/* Releases pending matches up to release_upto, judges windows ending before close_upto. */
static void cs_release(cor_corrstate *st, struct cs_machine *m, int64_t release_upto,
                       int64_t close_upto)
{
    while (m->phead < m->npend && m->pend[m->phead]->ts <= release_upto) {
        struct cs_item *it = m->pend[m->phead++];
        st->st.pending--;
        cs_apply(st, m, it);
    }
    if (m->phead == m->npend)
        m->phead = m->npend = 0;
    if (!m->have_wm || release_upto > m->wm)
        m->wm = release_upto;
    m->have_wm = true;
    cs_gc_groups(st, m, close_upto);
}

/* ---- public ------------------------------------------------------------------------ */

cor_corrstate *cor_corrstate_new(cor_corrset *cs, int64_t lateness_us, cor_corr_fire_fn out,
                                 void *ctx)
{
    cor_corrstate *st;

    if (!cs)
        return NULL;
    st = vg_calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    if (vg_u64map_init(&st->machines, 16) < 0 || vg_u64map_init(&st->groups, 64) < 0) {
        vg_u64map_free(&st->machines);
        vg_free(st);
        return NULL;
    }
    cor_corrset_ref(cs);
    st->cs = cs;
    st->lateness = lateness_us < 0 ? COR_CORR_DEFAULT_LATENESS_US : lateness_us;
    st->out = out;
    st->ctx = ctx;
    st->clock = INT64_MIN;
    return st;
}

void cor_corrstate_destroy(cor_corrstate *st)
{
    size_t pos = 0;
    uint64_t key;
    void *val;

    if (!st)
        return;
    while (vg_u64map_next(&st->machines, &pos, &key, &val))
        cs_machine_free(st, val);
    vg_u64map_free(&st->machines);
    vg_u64map_free(&st->groups);
    vg_free(st->evbuf);
    vg_free(st->set);
    cor_corrset_unref(st->cs);
    vg_free(st);
}

/* The group values (and value hash) of a match for one correlation. false: a group-by
 * field is absent, or the values do not fit. */
static bool cs_values(const struct corr_rule *r, uint32_t pos, const struct cor_corr_match *m,
                      char *buf, size_t cap, size_t *len, uint64_t *vhash, bool *has_value)
{
    char tmp[512], vbuf[2048];
    size_t off = 0, voff = 0;
    struct vg_str s;

    buf[0] = '\0';
    for (size_t g = 0; g < r->ngroup; g++) {
        if (!cs_field(m, r->gfield[g * r->nrefs + pos], tmp, sizeof(tmp), &s) ||
            !cs_append(buf, cap, &off, s.p, s.n, g == 0))
            return false;
    }
    *len = off;
    *has_value = r->nvfield > 0;
    vbuf[0] = '\0';
    for (size_t f = 0; f < r->nvfield; f++) {
        if (!cs_field(m, r->vfield[f * r->nrefs + pos], tmp, sizeof(tmp), &s) ||
            !cs_append(vbuf, sizeof(vbuf), &voff, s.p, s.n, f == 0)) {
            *has_value = false;
            break;
        }
    }
    *vhash = *has_value ? vg_hash64(vbuf, voff, 0x76616c) : 0;
    return true;
}

void cor_corrstate_on_match(cor_corrstate *st, const char *rule_id, const struct cor_corr_match *mt)
{
    const struct corr_base *b = corr_base_find(st ? st->cs : NULL, rule_id);
    struct cs_machine *m;
    char gbuf[4096];

    if (!b || !mt)
        return;
    st->st.matches++;
    if (mt->ts_us > st->clock)
        st->clock = mt->ts_us;
    m = cs_machine_get(st, mt);
    if (!m) {
        st->st.enomem++;
        return;
    }
    if (m->have_wm && mt->ts_us < m->wm) {
        st->st.late++;
        return;
    }
    if (!m->have_wm) /* a new machine */
        m->maxts = mt->ts_us;
    m->maxts = VG_MAX(m->maxts, mt->ts_us);
    m->clock_at_last = st->clock;
    for (size_t u = 0; u < b->nuses; u++) {
        const struct corr_rule *r = cs_rule(st, b->uses[u].corr);
        size_t glen = 0;
        uint64_t vh = 0;
        bool hv = false;
        struct cs_item *it;
        int rc;

        if (!cs_values(r, b->uses[u].pos, mt, gbuf, sizeof(gbuf), &glen, &vh, &hv)) {
            st->st.no_group++;
            continue;
        }
        it = cs_item_new(st, mt, gbuf, glen);
        if (!it) {
            st->st.enomem++;
            continue;
        }
        it->corr = b->uses[u].corr;
        it->pos = b->uses[u].pos;
        it->vhash = vh;
        it->has_value = hv;
        if ((rc = cs_pend_insert(st, m, it)) != 0) {
            if (rc == 1)
                st->st.duplicates++;
            else if (rc == -VG_EFULL)
                st->st.overflow++;
            else
                st->st.enomem++;
            cs_item_free(st, it);
        }
    }
    {
        int64_t wm = cs_sat_add(m->maxts, -st->lateness);
        cs_release(st, m, wm, wm);
    }
}

void cor_corrstate_advance(cor_corrstate *st, int64_t now_us)
{
    size_t pos = 0;
    uint64_t key;
    void *val;
    uint64_t *gone = NULL;
    size_t ngone = 0, capgone = 0;

    if (!st)
        return;
    if (now_us > st->clock)
        st->clock = now_us;
    while (vg_u64map_next(&st->machines, &pos, &key, &val)) {
        struct cs_machine *m = val;
        int64_t idle = st->clock - m->clock_at_last;
        int64_t wm;

        if (idle < st->lateness)
            continue;
        /* silent for the lateness bound: its time is taken to have moved with the clock */
        wm = cs_sat_add(cs_sat_add(m->maxts, idle), -st->lateness);
        cs_release(st, m, wm, wm);
        if (m->phead == m->npend && !m->groups) {
            if (ngone == capgone) {
                size_t cap = capgone ? capgone * 2 : 16;
                uint64_t *n = vg_realloc(gone, cap * sizeof(*n));
                if (!n)
                    continue;
                gone = n;
                capgone = cap;
            }
            gone[ngone++] = key;
        }
    }
    /* forgotten machines lose their watermark: a match later than this is not seen as late */
    for (size_t i = 0; i < ngone; i++)
        cs_machine_free(st, vg_u64map_del(&st->machines, gone[i]));
    vg_free(gone);
}

void cor_corrstate_flush(cor_corrstate *st)
{
    size_t pos = 0;
    uint64_t key;
    void *val;

    if (!st)
        return;
    while (vg_u64map_next(&st->machines, &pos, &key, &val)) {
        struct cs_machine *m = val;
        cs_release(st, m, INT64_MAX, INT64_MAX);
        m->wm = m->maxts; /* later matches up to its newest time are still late */
    }
}

void cor_corrstate_drop_machine(cor_corrstate *st, uint64_t mkey)
{
    struct cs_machine *m = st ? vg_u64map_del(&st->machines, mkey) : NULL;

    if (m)
        cs_machine_free(st, m);
}

void cor_corrstate_get_stats(const cor_corrstate *st, struct cor_corrstate_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (st)
        *out = st->st;
}

/* ---- moving a machine's state ------------------------------------------------------ */

bool cor_corrstate_has_machine(const cor_corrstate *st, uint64_t mkey)
{
    return st != NULL && vg_u64map_get(&st->machines, mkey) != NULL;
}

/* One item as a snapshot entry; strings borrowed. pending: it names its correlation and
 * group values (a group's items take the group's). */
static void cs_item_export(const cor_corrstate *st, const struct cs_item *it, bool pending,
                           Vigil__CorrItemState *o)
{
    const struct corr_rule *r = cs_rule(st, it->corr);

    vigil__corr_item_state__init(o);
    if (pending) {
        o->corr_id = (char *)r->info.id; /* protobuf-c wants char *; only read by pack */
        o->gvals = it->gvals;
    }
    o->rule_id = (char *)r->refs[it->pos];
    o->ts_us = it->ts;
    o->seq = it->seq;
    o->vhash = it->vhash;
    o->has_value = it->has_value;
    o->in_ep = it->in_ep;
    o->prev_ts_us = it->prev_ts;
    o->kind = it->kind;
    o->summary = it->summary;
}

/* n items from items, as an arena array of snapshot entries; NULL (n > 0) on ENOMEM. */
static Vigil__CorrItemState **cs_items_export(const cor_corrstate *st, struct cs_item *const *items,
                                              size_t n, bool pending, vg_arena *a)
{
    Vigil__CorrItemState **arr = vg_arena_alloc(a, (n ? n : 1) * sizeof(*arr));
    Vigil__CorrItemState *o = vg_arena_alloc(a, (n ? n : 1) * sizeof(*o));

    if (arr == NULL || o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        cs_item_export(st, items[i], pending, &o[i]);
        arr[i] = &o[i];
    }
    return arr;
}

static int cs_group_export(const cor_corrstate *st, const struct cs_group *g, vg_arena *a,
                           Vigil__CorrGroupState *o)
{
    vigil__corr_group_state__init(o);
    o->corr_id = (char *)cs_rule(st, g->corr)->info.id;
    o->gvals = g->gvals;
    o->n_events = g->n - g->head;
    o->events = cs_items_export(st, g->ev + g->head, o->n_events, false, a);
    if (o->events == NULL)
        return -VG_ENOMEM;
    o->judged = g->next_close > g->head ? (uint32_t)(g->next_close - g->head) : 0;
    o->last_ts_us = g->last_ts;
    o->ep_active = g->ep_active;
    o->ep_start_us = g->ep_start;
    o->ep_last_us = g->ep_last;
    o->ep_count = g->ep_count;
    o->ep_id = (char *)g->ep_id;
    return 0;
}

int cor_corrstate_export(const cor_corrstate *st, uint64_t mkey, vg_arena *a,
                         Vigil__CorrMachineState *out)
{
    struct cs_machine *m;
    size_t ng = 0;

    vigil__corr_machine_state__init(out);
    m = st != NULL ? vg_u64map_get(&st->machines, mkey) : NULL;
    if (m == NULL)
        return 0;
    out->max_ts_us = m->maxts;
    out->watermark_us = m->wm;
    out->have_watermark = m->have_wm;
    out->n_pending = m->npend - m->phead;
    /* A machine with groups but nothing pending has no buffer yet (NULL + 0 is UB). */
    out->pending =
        cs_items_export(st, m->pend != NULL ? m->pend + m->phead : NULL, out->n_pending, true, a);
    for (const struct cs_group *g = m->groups; g; g = g->mnext)
        ng++;
    out->groups = vg_arena_alloc(a, (ng ? ng : 1) * sizeof(*out->groups));
    if (out->pending == NULL || out->groups == NULL)
        return -VG_ENOMEM;
    for (const struct cs_group *g = m->groups; g; g = g->mnext) {
        Vigil__CorrGroupState *o = vg_arena_alloc(a, sizeof(*o));

        if (o == NULL || cs_group_export(st, g, a, o) < 0)
            return -VG_ENOMEM;
        out->groups[out->n_groups++] = o;
    }
    return 1;
}

/* The correlation index and base-rule position named by a snapshot entry; false when this
 * set does not know them. */
static bool cs_resolve(const cor_corrstate *st, const char *corr_id, const char *rule_id,
                       uint32_t *corr, uint32_t *pos)
{
    const struct cor_rule_info *ri = cor_corrset_find(st->cs, corr_id);
    const struct corr_rule *r;

    if (ri == NULL || ri->index >= st->cs->nrules)
        return false;
    r = st->cs->rules[ri->index];
    for (size_t p = 0; p < r->nrefs; p++) {
        if (strcasecmp(r->refs[p], rule_id) == 0) {
            *corr = ri->index;
            *pos = (uint32_t)p;
            return true;
        }
    }
    return false;
}

static struct cs_item *cs_item_import(cor_corrstate *st, const Vigil__CorrItemState *e,
                                      const char *gvals, uint32_t corr, uint32_t pos)
{
    struct cor_corr_match mt = {
        .ts_us = e->ts_us, .seq = e->seq, .kind = e->kind, .summary = e->summary};
    struct cs_item *it = cs_item_new(st, &mt, gvals, strlen(gvals));

    if (it == NULL)
        return NULL;
    it->corr = corr;
    it->pos = pos;
    it->vhash = e->vhash;
    it->has_value = e->has_value;
    it->in_ep = e->in_ep;
    return it;
}

static int cs_group_import(cor_corrstate *st, struct cs_machine *m, const Vigil__CorrGroupState *gs,
                           size_t *skipped)
{
    struct cs_group *g = NULL;
    uint32_t corr, pos;

    for (size_t i = 0; i < gs->n_events; i++) {
        const Vigil__CorrItemState *e = gs->events[i];
        struct cs_item *it;

        if (!cs_resolve(st, gs->corr_id, e->rule_id, &corr, &pos)) {
            (*skipped)++;
            continue;
        }
        if (g == NULL && (g = cs_group_get(st, m, corr, gs->gvals)) == NULL)
            return -VG_ENOMEM;
        if ((it = cs_item_import(st, e, gs->gvals, corr, pos)) == NULL)
            return -VG_ENOMEM;
        if (cs_group_push(st, g, it) < 0) {
            cs_item_free(st, it);
            (*skipped)++;
            continue;
        }
        it->prev_ts = e->prev_ts_us;
    }
    if (g == NULL)
        return 0;
    g->next_close = g->head + VG_MIN((size_t)gs->judged, g->n - g->head);
    g->last_ts = gs->last_ts_us;
    g->ep_active = gs->ep_active;
    g->ep_start = gs->ep_start_us;
    g->ep_last = gs->ep_last_us;
    g->ep_count = gs->ep_count;
    snprintf(g->ep_id, sizeof(g->ep_id), "%s", gs->ep_id);
    return 0;
}

int cor_corrstate_import(cor_corrstate *st, uint64_t mkey, const char *tenant, const char *machine,
                         const Vigil__CorrMachineState *in, size_t *skipped)
{
    struct cor_corr_match mt = {.mkey = mkey, .tenant = tenant, .machine = machine};
    struct cs_machine *m;
    size_t skip = 0;
    int rc = 0;

    if (st == NULL || in == NULL || tenant == NULL || machine == NULL)
        return -VG_EINVAL;
    cor_corrstate_drop_machine(st, mkey);
    if (in->n_pending == 0 && in->n_groups == 0)
        return 0;
    if ((m = cs_machine_get(st, &mt)) == NULL)
        return -VG_ENOMEM;
    m->maxts = in->max_ts_us;
    m->wm = in->watermark_us;
    m->have_wm = in->have_watermark;
    if (m->maxts > st->clock)
        st->clock = m->maxts;
    /* The restore counts as an arrival: the machine idles from the new owner's clock. */
    m->clock_at_last = st->clock;
    for (size_t i = 0; rc == 0 && i < in->n_groups; i++)
        rc = cs_group_import(st, m, in->groups[i], &skip);
    for (size_t i = 0; rc == 0 && i < in->n_pending; i++) {
        const Vigil__CorrItemState *e = in->pending[i];
        struct cs_item *it;
        uint32_t corr, pos;
        int prc;

        if (!cs_resolve(st, e->corr_id, e->rule_id, &corr, &pos)) {
            skip++;
            continue;
        }
        if ((it = cs_item_import(st, e, e->gvals, corr, pos)) == NULL) {
            rc = -VG_ENOMEM;
            break;
        }
        if ((prc = cs_pend_insert(st, m, it)) != 0) {
            cs_item_free(st, it);
            if (prc < 0)
                skip++;
        }
    }
    if (skipped != NULL)
        *skipped += skip;
    return rc;
}

/* ---- process tree labels ------------------------------------------------------------- */

static const char *cs_basename(const char *path)
{
    const char *b = path;

    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            b = p + 1;
    return b;
}

static bool cs_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, list[i]) == 0)
            return true;
    return false;
}

/* A shell run with no script or command: a user's session, not an activity. */
static bool cs_interactive_shell(const char *img, const char *cmd)
{
    static const char *const shells[] = {"bash", "sh",      "dash", "zsh",     "ksh",
                                         "fish", "csh",     "tcsh", "cmd.exe", "powershell.exe",
                                         "pwsh", "pwsh.exe"};
    static const char *const flags[] = {
        "-l", "-i", "-il", "-li", "--login", "--interactive", "-NoLogo", "-NoExit"};
    const char *p = cmd;

    if (!cs_in(cs_basename(img), shells, VG_ARRAY_SIZE(shells)))
        return false;
    if (*p == '-') /* "-bash": a login shell */
        return true;
    if (*p == '"') { /* skip argv[0] */
        const char *q = strchr(p + 1, '"');
        p = q ? q + 1 : p + strlen(p);
    } else {
        while (*p && *p != ' ')
            p++;
    }
    for (;;) {
        char tok[32];
        size_t n = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            return true;
        while (p[n] && p[n] != ' ')
            n++;
        if (n >= sizeof(tok))
            return false;
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (!cs_in(tok, flags, VG_ARRAY_SIZE(flags)))
            return false;
        p += n;
    }
}

/* Processes above which an activity tree does not climb. */
static bool cs_session_root(const cor_proc *p)
{
    static const char *const roots[] = {
        "init",
        "systemd",
        "sshd",
        "login",
        "cron",
        "crond",
        "atd",
        "anacron",
        "agetty",
        "containerd-shim",
        "containerd-shim-runc-v2",
        "dockerd",
        "tmux",
        "tmux: server",
        "screen",
        "gdm-session-worker",
        "lightdm",
        "xrdp",
        "gnome-terminal-server",
        "konsole",
        "xterm",
        "services.exe",
        "wininit.exe",
        "winlogon.exe",
        "explorer.exe",
        "svchost.exe",
        "smss.exe",
        "userinit.exe",
        "wmiprvse.exe",
        "csrss.exe",
        "taskhostw.exe",
    };
    const char *img = cor_proc_image(p);

    if (cor_proc_pid(p) <= 1)
        return true;
    return cs_in(cs_basename(img), roots, VG_ARRAY_SIZE(roots)) ||
           cs_interactive_shell(img, cor_proc_command_line(p));
}

static bool cs_label(const cor_proc *p, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    if (!p || !len)
        return false;
    snprintf(buf, len, "%s[%u]@%lld", cor_proc_image(p)[0] ? cor_proc_image(p) : "?",
             cor_proc_pid(p), (long long)cor_proc_ctime(p));
    return true;
}

bool cor_corr_tree_label(const cor_proc *p, char *buf, size_t len)
{
    const cor_proc *cur = p;

    if (!p)
        return cs_label(NULL, buf, len);
    /* climb while the parent is known, not a session root, for at most 64 levels */
    for (int depth = 0; depth < 64 && !cs_session_root(cur); depth++) {
        const cor_proc *up = cor_proc_parent(cur);
        if (!up || cs_session_root(up))
            break;
        cur = up;
    }
    return cs_label(cur, buf, len);
}

bool cor_corr_parent_label(const cor_proc *p, char *buf, size_t len)
{
    return cs_label(p ? cor_proc_parent(p) : NULL, buf, len);
}
