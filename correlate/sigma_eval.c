/*
 * sigma_eval.c - evaluates one event against a ruleset: scans the event's route once for
 * the literals of its short fields (laid end to end), each other field once with its own
 * databases (or, for a field with a few literals, searches for each), looks its value up
 * among the field's whole-value literals, marks the matchers that hit, the required-hit
 * clauses they satisfy, and their rules as candidates, then
 * evaluates only the candidates and the route's always-evaluated rules (those that can
 * match with no string hit, e.g. `not filter`). Lazy matchers (filters) were not scanned
 * for: their hit is looked up when a rule being evaluated needs it.
 *
 * THREAD SAFETY: any number of threads may evaluate against one ruleset at once, each with
 * its own cor_scratch.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "sigma_int.h"

/* Kleene logic for the static "can it match with no hit" question. */
enum { SIG_F = 0, SIG_U = 1, SIG_T = 2 };

struct sig_scan_ctx {
    cor_scratch *s;
    const struct sig_hsdb *d; /* the database or set being scanned */
    uint32_t grp;             /* its group in the bucket */
    uint32_t tag;             /* its kind, SIG_MK_* << SIG_MK_SHIFT, for the memo's log */
    bool log;                 /* the value is to be kept in the memo: log each report */
};

/* ---- scratch ------------------------------------------------------------------------ */

static int sig_scratch_bucket(cor_scratch *s, const struct sig_bucket *b)
{
    size_t i;

    if (b->comb.db && hs_alloc_scratch(b->comb.db, &s->hs) != HS_SUCCESS)
        return -VG_ENOMEM;
    if (b->ngroups > s->maxgroups)
        s->maxgroups = b->ngroups;
    for (i = 0; i < b->ngroups; i++) {
        if (b->groups[i].lit.db && hs_alloc_scratch(b->groups[i].lit.db, &s->hs) != HS_SUCCESS)
            return -VG_ENOMEM;
        if (b->groups[i].re.db && hs_alloc_scratch(b->groups[i].re.db, &s->hs) != HS_SUCCESS)
            return -VG_ENOMEM;
    }
    return 0;
}

/* Writes a zero into every page of a fresh zeroed block of n > 0 bytes, so that its page
 * faults are taken here and not by the first events evaluated: the stamps and the memo
 * span a few hundred KiB, which the allocator hands out as pages not yet mapped. */
static void sig_touch(void *p, size_t n)
{
    volatile uint8_t *b = p;
    size_t i;

    for (i = 0; i < n; i += 4096)
        b[i] = 0;
    b[n - 1] = 0; /* the last page, when the block does not start on a page */
}

cor_scratch *cor_scratch_new(const cor_ruleset *rs)
{
    cor_scratch *s = vg_calloc(1, sizeof(*s));
    size_t i;
    int os, c;

    if (!s)
        return NULL;
    s->rs = rs;
    s->mstamp = vg_calloc(rs->nm + 1, sizeof(*s->mstamp));
    s->mdone = vg_calloc(rs->nm + 1, sizeof(*s->mdone));
    s->rcl = vg_calloc(rs->nrules + 1, sizeof(*s->rcl));
    s->ncandw = (rs->nrules + 63) / 64;
    s->cand = vg_calloc(s->ncandw + 1, sizeof(*s->cand));
    s->nsumw = (s->ncandw + 63) / 64;
    s->candsum = vg_calloc(s->nsumw + 1, sizeof(*s->candsum));
    s->slot = vg_calloc(rs->nslots + 1, sizeof(*s->slot));
    s->md = pcre2_match_data_create(16, NULL);
    s->rule_ns = vg_calloc(rs->nrules + 1, sizeof(*s->rule_ns));
    if (!s->mstamp || !s->mdone || !s->rcl || !s->cand || !s->candsum || !s->slot || !s->md ||
        !s->rule_ns)
        goto out_free;
    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            if (sig_scratch_bucket(s, &rs->cat[os][c]) < 0)
                goto out_free;
    for (i = 0; i < rs->nsvc; i++)
        if (sig_scratch_bucket(s, &rs->svc[i]) < 0)
            goto out_free;
    for (i = 0; i < rs->nm; i++)
        if (rs->m[i].lazy_db && hs_alloc_scratch(rs->m[i].lazy_db, &s->hs) != HS_SUCCESS)
            goto out_free;
    s->gfrom = vg_calloc(s->maxgroups + 1, sizeof(*s->gfrom));
    s->gto = vg_calloc(s->maxgroups + 1, sizeof(*s->gto));
    s->gmemo = vg_calloc(s->maxgroups + 1, sizeof(*s->gmemo));
    s->memo = vg_calloc(SIG_MEMO_SLOTS, sizeof(*s->memo));
    s->mtag = vg_calloc(SIG_MEMO_SLOTS, sizeof(*s->mtag));
    s->mlast = vg_calloc(SIG_MEMO_SLOTS / 2, sizeof(*s->mlast));
    s->gtag = vg_calloc(s->maxgroups + 1, sizeof(*s->gtag));
    s->mlog = vg_calloc(SIG_MEMO_LOG, sizeof(*s->mlog));
    if (!s->gfrom || !s->gto || !s->gmemo || !s->memo || !s->mtag || !s->mlast || !s->gtag ||
        !s->mlog)
        goto out_free;
    sig_touch(s->mstamp, (rs->nm + 1) * sizeof(*s->mstamp));
    sig_touch(s->mdone, (rs->nm + 1) * sizeof(*s->mdone));
    sig_touch(s->rcl, (rs->nrules + 1) * sizeof(*s->rcl));
    sig_touch(s->memo, SIG_MEMO_SLOTS * sizeof(*s->memo));
    return s;

out_free:
    cor_scratch_destroy(s);
    return NULL;
}

void cor_scratch_destroy(cor_scratch *s)
{
    if (!s)
        return;
    if (s->hs)
        hs_free_scratch(s->hs);
    if (s->md)
        pcre2_match_data_free(s->md);
    vg_free(s->mstamp);
    vg_free(s->mdone);
    vg_free(s->rcl);
    vg_free(s->cbuf);
    vg_free(s->gfrom);
    vg_free(s->gto);
    vg_free(s->gmemo);
    vg_free(s->memo);
    vg_free(s->mtag);
    vg_free(s->mlast);
    vg_free(s->gtag);
    vg_free(s->mlog);
    vg_free(s->cand);
    vg_free(s->candsum);
    vg_free(s->slot);
    vg_free(s->rule_ns);
    vg_free(s);
}

uint64_t cor_scratch_rule_ns(const cor_scratch *s, uint32_t index)
{
    return index < s->rs->nrules ? __atomic_load_n(&s->rule_ns[index], __ATOMIC_RELAXED) : 0;
}

/* ---- field access ------------------------------------------------------------------- */

/* A typed slot; names without one are looked up in extra, once per event and name (a
 * linear search with strcasecmp: many rules read the same few names). */
static bool sig_get(cor_scratch *s, const struct vg_evview *v, const struct sig_fref *f,
                    struct vg_str *out)
{
    struct sig_slotval *sv;

    if (f->typed >= 0) {
        *out = v->f[f->typed];
        /* An empty slot: no extra entry carries the field either (vg_evview_build fills the
         * slot from any), and lineage comes from the process table only, never from what an
         * event says. */
        return out->p != NULL;
    }
    if (v->n_extra == 0)
        return false;
    if (VG_NEVER(f->slot >= s->rs->nslots))
        return vg_evview_get(v, f->name, out);
    sv = &s->slot[f->slot];
    if (sv->gen != s->gen) {
        sv->gen = s->gen;
        sv->present = vg_evview_get(v, f->name, &sv->v);
    }
    *out = sv->v;
    return sv->present;
}

/* ---- matchers ----------------------------------------------------------------------- */

/* Does s contain p[0..n), ASCII-caseless? What a caseless literal scan would report.
 * Lazy matchers make this the hottest loop of evaluation: 16 positions at a time, the
 * literal's first and last bytes compared with bit 0x20 ignored (a superset of the
 * caseless equality), then each candidate compared exactly. First and last rather than
 * the first two: many literals start with a pair found in every path (":\", "\W"). The
 * last positions are one more block, overlapping the previous one, rather than a byte
 * loop: most fields are short (an Image path is a block or two). */
static bool sig_has_caseless(const struct vg_str *s, const uint8_t *p, size_t n)
{
    const uint8_t *h = (const uint8_t *)s->p;
    uint8_t f0, f1;
    size_t i = 0;

    if (n == 0)
        return true;
    if (n > s->n)
        return false;
    f0 = p[0] | 0x20;
    f1 = p[n - 1] | 0x20;
#ifdef __SSE2__
    if (s->n >= n + 15) {
        const __m128i bit = _mm_set1_epi8(0x20);
        const __m128i c0 = _mm_set1_epi8((char)f0);
        const __m128i c1 = _mm_set1_epi8((char)f1);
        const size_t last = s->n - n - 15; /* the last block's first candidate */
        for (;;) {
            size_t at = i < last ? i : last;
            __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(h + at)), bit);
            __m128i b = _mm_or_si128(_mm_loadu_si128((const __m128i *)(h + at + n - 1)), bit);
            unsigned mask = (unsigned)_mm_movemask_epi8(
                _mm_and_si128(_mm_cmpeq_epi8(a, c0), _mm_cmpeq_epi8(b, c1)));
            mask &= 0xffffu << (i - at); /* positions before i were looked at */
            while (mask) {
                size_t k = at + (size_t)__builtin_ctz(mask);
                mask &= mask - 1;
                if (sig_eq_caseless(h + k, p, n))
                    return true;
            }
            if (at == last)
                return false;
            i += 16;
        }
    }
#endif
    for (; i + n <= s->n; i++)
        if ((h[i] | 0x20) == f0 && (h[i + n - 1] | 0x20) == f1 && sig_eq_caseless(h + i, p, n))
            return true;
    return false;
}

static int sig_on_first(unsigned int id, unsigned long long from, unsigned long long to,
                        unsigned int flags, void *ctx)
{
    *(bool *)ctx = true;
    return 1; /* the first match answers: stop */
}

/* Does one lazy regex's own database match s? */
static bool sig_hs_has(cor_scratch *s, const hs_database_t *db, const struct vg_str *str)
{
    bool hit = false;

    (void)hs_scan(db, str->p ? str->p : "", (unsigned)str->n, 0, s->hs, sig_on_first, &hit);
    return hit;
}

/* n bytes equal (ASCII case aside unless cased), as the scan's HS_FLAG_CASELESS compares:
 * inline, not strncasecmp (a libc call through the locale, 4 % of evaluation in lazy
 * endswith checks). */
static bool sig_mem_eq(const char *a, const char *b, size_t n, bool cased)
{
    return cased ? memcmp(a, b, n) == 0
                 : sig_eq_caseless((const uint8_t *)a, (const uint8_t *)b, n);
}

/* A pure literal at its position. A caseless contains needs no check: the (caseless)
 * prefilter hit was the whole literal. */
static bool sig_lit_match(const struct sig_matcher *m, const struct vg_str *s)
{
    const char *l = (const char *)m->lit;
    size_t i;

    if (m->nlit > s->n)
        return false;
    switch (m->pos) {
    case SIG_EXACT:
        return m->nlit == s->n && sig_mem_eq(s->p, l, m->nlit, m->cased);
    case SIG_STARTS:
        return sig_mem_eq(s->p, l, m->nlit, m->cased);
    case SIG_ENDS:
        return sig_mem_eq(s->p + s->n - m->nlit, l, m->nlit, m->cased);
    case SIG_CONTAINS:
        if (!m->cased) /* the prefilter hit, when there was a prefilter */
            return m->in_db || sig_has_caseless(s, m->lit, m->nlit);
        for (i = 0; i + m->nlit <= s->n; i++)
            if (memcmp(s->p + i, l, m->nlit) == 0)
                return true;
        return false;
    }
    return false;
}

/* A lazy matcher's hit. A pure literal at a fixed position (exact, startswith, endswith) is
 * compared there at once: a match implies the caseless search's hit, and whatever needs
 * the hit (required hits, the matcher itself) needs the match, so nothing is lost by
 * asking the stronger question, and the search over the whole field is saved. */
static bool sig_lazy_hit(cor_scratch *s, const struct sig_matcher *m, const struct vg_str *str)
{
    if (m->is_re)
        return sig_hs_has(s, m->lazy_db, str);
    if (m->vlit && m->pos != SIG_CONTAINS)
        return sig_lit_match(m, str);
    return sig_has_caseless(str, m->pre, m->npre);
}

/* Did matcher mid's prefilter hit in this event? Scanned matchers were stamped by the
 * scan; a lazy one is checked now, once per event. str is its field's value when the
 * caller has it, else NULL. */
static bool sig_hit(cor_scratch *s, uint32_t mid, const struct vg_evview *v,
                    const struct vg_str *str)
{
    const struct sig_matcher *m = &s->rs->m[mid];
    struct vg_str own;

    if (m->lazy && s->mdone[mid] != s->gen) {
        s->mdone[mid] = s->gen;
        if (!str)
            str = sig_get(s, v, m->field, &own) ? &own : NULL;
        if (str && sig_lazy_hit(s, m, str))
            s->mstamp[mid] = s->gen;
    }
    return s->mstamp[mid] == s->gen;
}

static bool sig_num_of(const struct vg_str *s, double *d)
{
    char buf[64], *end;

    if (s->n == 0 || s->n >= sizeof(buf))
        return false;
    memcpy(buf, s->p, s->n);
    buf[s->n] = 0;
    if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))
        *d = (double)strtoull(buf, &end, 16);
    else
        *d = strtod(buf, &end);
    return *end == 0 && end != buf;
}

static bool sig_cidr_match(cor_scratch *sc, const struct sig_matcher *m, const struct vg_str *s)
{
    char buf[64];
    const uint8_t *a = sc->addr.a;
    unsigned full, rest;

    if (s->n == 0 || s->n >= sizeof(buf))
        return false;
    /* The same value of the same event parsed for the same family: reuse it. */
    if (sc->addr.gen != sc->gen || sc->addr.p != s->p || sc->addr.n != s->n ||
        sc->addr.family != m->family) {
        memcpy(buf, s->p, s->n);
        buf[s->n] = 0;
        sc->addr.gen = sc->gen;
        sc->addr.p = s->p;
        sc->addr.n = s->n;
        sc->addr.family = m->family;
        sc->addr.ok = inet_pton(m->family, buf, sc->addr.a) == 1;
    }
    if (!sc->addr.ok)
        return false;
    full = m->prefix / 8;
    rest = m->prefix % 8;
    if (memcmp(a, m->net, full) != 0)
        return false;
    return rest == 0 || ((a[full] ^ m->net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool sig_fieldref_match(cor_scratch *sc, const struct sig_matcher *m,
                               const struct vg_evview *v, const struct vg_str *s)
{
    struct vg_str o;
    size_t i;

    if (!sig_get(sc, v, &m->ref, &o) || o.n > s->n)
        return false;
    switch (m->pos) {
    case SIG_EXACT:
        return o.n == s->n && sig_mem_eq(s->p, o.p, o.n, m->cased);
    case SIG_STARTS:
        return sig_mem_eq(s->p, o.p, o.n, m->cased);
    case SIG_ENDS:
        return sig_mem_eq(s->p + s->n - o.n, o.p, o.n, m->cased);
    case SIG_CONTAINS:
        for (i = 0; i + o.n <= s->n; i++)
            if (sig_mem_eq(s->p + i, o.p, o.n, m->cased))
                return true;
        return false;
    }
    return false;
}

static bool sig_re_match(cor_scratch *s, const pcre2_code *re, const struct vg_str *str)
{
    return pcre2_match(re, (PCRE2_SPTR)(str->p ? str->p : ""), str->n, 0, 0, s->md, NULL) >= 0;
}

static bool sig_matcher(cor_scratch *s, uint32_t mid, const struct vg_evview *v, bool present,
                        const struct vg_str *str)
{
    const struct sig_matcher *m = &s->rs->m[mid];
    double d;

    switch (m->kind) {
    case SIG_M_HS:
        if (!present || (m->in_db && !sig_hit(s, mid, v, str)))
            return false;
        if (m->vlit)
            return sig_lit_match(m, str);
        return m->re ? sig_re_match(s, m->re, str) : true;
    case SIG_M_ANY:
        return present;
    case SIG_M_EMPTY:
        return present && str->n == 0;
    case SIG_M_NULL:
        return !present || str->n == 0;
    case SIG_M_EXISTS:
        return present == m->exists;
    case SIG_M_NUM:
        if (!present || !sig_num_of(str, &d))
            return false;
        switch (m->op) {
        case SIG_LT:
            return d < m->num;
        case SIG_LTE:
            return d <= m->num;
        case SIG_GT:
            return d > m->num;
        case SIG_GTE:
            return d >= m->num;
        }
        return false;
    case SIG_M_CIDR:
        return present && sig_cidr_match(s, m, str);
    case SIG_M_FIELDREF:
        return present && sig_fieldref_match(s, m, v, str);
    }
    return false;
}

/* A keyword matches when any value of the event matches it. */
static bool sig_keyword(cor_scratch *s, uint32_t mid, const struct vg_evview *v)
{
    const struct sig_matcher *m = &s->rs->m[mid];
    size_t i;

    if (m->kind != SIG_M_HS || !m->re)
        return sig_matcher(s, mid, v, false, NULL);
    for (i = 0; i < VG_F__COUNT; i++) /* the event's own values: not its ancestors' */
        if (v->f[i].p && !vg_field_is_list((int)i) && sig_re_match(s, m->re, &v->f[i]))
            return true;
    for (i = 0; i < v->n_extra; i++) {
        const char *val = v->extra[i]->value;
        struct vg_str str = {val, val ? strlen(val) : 0};
        if (val && sig_re_match(s, m->re, &str))
            return true;
    }
    return false;
}

static bool sig_fmatch_eval(cor_scratch *s, const struct sig_fmatch *fm, const struct vg_evview *v)
{
    struct vg_str str = {NULL, 0};
    bool present = false, r;
    size_t k;

    if (fm->field.typed != SIG_FIELD_KEYWORDS)
        present = sig_get(s, v, &fm->field, &str);
    for (k = 0; k < fm->n; k++) {
        r = fm->field.typed == SIG_FIELD_KEYWORDS ? sig_keyword(s, fm->m[k], v)
                                                  : sig_matcher(s, fm->m[k], v, present, &str);
        if (fm->all && !r)
            return false;
        if (!fm->all && r)
            return true;
    }
    return fm->all && fm->n > 0;
}

static bool sig_sel_eval(cor_scratch *s, const struct sig_sel *sel, const struct vg_evview *v)
{
    size_t i, f;

    for (i = 0; i < sel->n; i++) {
        for (f = 0; f < sel->items[i].n; f++)
            if (!sig_fmatch_eval(s, &sel->items[i].fm[f], v))
                break;
        if (f == sel->items[i].n)
            return true;
    }
    return false;
}

static bool sig_cond_eval(cor_scratch *s, const struct sig_rule *r, const struct sig_cnode *c,
                          const struct vg_evview *v)
{
    size_t i;

    switch (c->kind) {
    case SIG_C_AND:
        for (i = 0; i < c->n; i++)
            if (!sig_cond_eval(s, r, c->kids[i], v))
                return false;
        return true;
    case SIG_C_OR:
        for (i = 0; i < c->n; i++)
            if (sig_cond_eval(s, r, c->kids[i], v))
                return true;
        return false;
    case SIG_C_NOT:
        return !sig_cond_eval(s, r, c->kids[0], v);
    case SIG_C_SEL:
        return sig_sel_eval(s, &r->sels[c->sel], v);
    case SIG_C_TRUE:
        return true;
    case SIG_C_FALSE:
        return false;
    }
    return false;
}

/* ---- static analysis ---------------------------------------------------------------- */

static int sig_and3(int a, int b)
{
    return a < b ? a : b;
}

static int sig_or3(int a, int b)
{
    return a > b ? a : b;
}

static int sig_fmatch3(const struct cor_ruleset *rs, const struct sig_fmatch *fm)
{
    int acc = fm->all ? SIG_T : SIG_F;
    size_t k;

    for (k = 0; k < fm->n; k++) {
        const struct sig_matcher *m = &rs->m[fm->m[k]];
        int x = (m->kind == SIG_M_HS && m->in_db && fm->field.typed != SIG_FIELD_KEYWORDS) ? SIG_F
                                                                                           : SIG_U;
        acc = fm->all ? sig_and3(acc, x) : sig_or3(acc, x);
    }
    return fm->n ? acc : SIG_F;
}

static int sig_sel3(const struct cor_ruleset *rs, const struct sig_sel *sel)
{
    int acc = SIG_F;
    size_t i, f;

    for (i = 0; i < sel->n; i++) {
        int item = SIG_T;
        for (f = 0; f < sel->items[i].n; f++)
            item = sig_and3(item, sig_fmatch3(rs, &sel->items[i].fm[f]));
        acc = sig_or3(acc, item);
    }
    return acc;
}

static int sig_cond3(const struct cor_ruleset *rs, const struct sig_rule *r,
                     const struct sig_cnode *c)
{
    int acc;
    size_t i;

    switch (c->kind) {
    case SIG_C_AND:
        for (acc = SIG_T, i = 0; i < c->n; i++)
            acc = sig_and3(acc, sig_cond3(rs, r, c->kids[i]));
        return acc;
    case SIG_C_OR:
        for (acc = SIG_F, i = 0; i < c->n; i++)
            acc = sig_or3(acc, sig_cond3(rs, r, c->kids[i]));
        return acc;
    case SIG_C_NOT:
        return SIG_T - sig_cond3(rs, r, c->kids[0]);
    case SIG_C_SEL:
        return sig_sel3(rs, &r->sels[c->sel]);
    case SIG_C_TRUE:
        return SIG_T;
    case SIG_C_FALSE:
        return SIG_F;
    }
    return SIG_U;
}

bool sig_rule_may_match_without_hits(const struct cor_ruleset *rs, const struct sig_rule *r)
{
    return sig_cond3(rs, r, r->cond) != SIG_F;
}

/* ---- evaluation --------------------------------------------------------------------- */

static void sig_candidate(cor_scratch *s, uint32_t rule)
{
    s->cand[rule / 64] |= UINT64_C(1) << (rule % 64);
    s->candsum[rule / 4096] |= UINT64_C(1) << (rule / 64 % 64);
}

/* The clauses of rule ri a scan hit this event. */
static inline uint32_t sig_rule_got(const cor_scratch *s, size_t ri)
{
    return s->rcl[ri].gen == s->gen ? s->rcl[ri].got : 0;
}

/* The rule's required hits (sigma_req.c) all present, once those only a scan satisfies
 * are (rneed: checked by the caller without reading the rule; most candidates end
 * there)? got: the clauses a scan hit (sig_rule_got). The lazy matchers of the others are
 * looked for now. */
static bool sig_req_met(cor_scratch *s, const struct sig_rule *r, uint32_t got,
                        const struct vg_evview *v)
{
    uint32_t k, i;

    for (k = 0; k < r->nreq; k++) {
        if (got >> k & 1)
            continue;
        for (i = r->lreq_off[k]; i < r->lreq_off[k + 1]; i++)
            if (sig_hit(s, r->lreq[i], v, NULL))
                break;
        if (i == r->lreq_off[k + 1])
            return false;
    }
    return true;
}

/* What a hit of one matcher does: stamps it, marks the required-hit clauses of its rule it
 * satisfies, and wakes the rule when it is a trigger. */
static inline void sig_act_apply(cor_scratch *s, const struct sig_act *a)
{
    s->mstamp[a->mid] = s->gen;
    if (a->clmask) {
        struct sig_rclauses *c = &s->rcl[a->rule];
        if (c->gen != s->gen) {
            c->gen = s->gen;
            c->got = 0;
        }
        c->got |= a->clmask;
    }
    if (a->wake)
        sig_candidate(s, a->rule);
}

/* Logs a report of the scans of group grp's value, for the memo (struct sig_memo). */
static inline void sig_mlog(cor_scratch *s, uint32_t grp, uint32_t id)
{
    if (s->nmlog < SIG_MEMO_LOG)
        s->mlog[s->nmlog++] = (struct sig_mlog){grp, id};
    else
        s->nmlog = SIG_MEMO_LOG + 1;
}

static int sig_on_hit(unsigned int id, unsigned long long from, unsigned long long to,
                      unsigned int flags, void *ctx)
{
    struct sig_scan_ctx *sc = ctx;
    cor_scratch *s = sc->s;
    uint32_t k;

    if (sc->log)
        sig_mlog(s, sc->grp, sc->tag | id);
    for (k = sc->d->first[id]; k < sc->d->first[id + 1]; k++)
        sig_act_apply(s, &sc->d->act[k]);
    return 0;
}

struct sig_comb_ctx {
    cor_scratch *s;
    const struct sig_comb *c;
};

/* A run of the combined database's matchers hit: applied once an event (the first
 * occurrence stamps them). */
static inline void sig_comb_run(cor_scratch *s, const struct sig_comb *c,
                                const struct sig_crun *run)
{
    uint32_t k;

    if (s->mstamp[c->act[run->act].mid] == s->gen)
        return;
    for (k = run->act; k < run->act_to; k++)
        sig_act_apply(s, &c->act[k]);
}

/* ---- the memo of recent values (struct sig_memo) ----------------------------------- */

static bool sig_memo_has(const struct sig_memo *e, const struct sig_group *g,
                         const struct vg_str *str)
{
    return e->g == g && e->n == str->n && (str->n == 0 || memcmp(e->v, str->p, str->n) == 0);
}

/* Group g's value str in the memo: its entry, or NULL with *put the entry a scan of it is to
 * fill (the way of its set not hit last) and *tag its tag; *put NULL when the value is too
 * long to keep. */
static struct sig_memo *sig_memo_find(cor_scratch *s, const struct sig_group *g,
                                      const struct vg_str *str, struct sig_memo **put,
                                      uint16_t *tag)
{
    uint64_t h;
    size_t set, w;

    *put = NULL;
    if (str->n > SIG_MEMO_MAXLEN || s->memo_off)
        return NULL;
    h = vg_hash64(str->n ? str->p : "", str->n, (uint64_t)(uintptr_t)g);
    set = (size_t)(h & (SIG_MEMO_SLOTS / 2 - 1));
    *tag = (uint16_t)(h >> 48 | 1);
    for (w = 0; w < 2; w++)
        if (s->mtag[2 * set + w] == *tag && sig_memo_has(&s->memo[2 * set + w], g, str)) {
            s->mlast[set] = (uint8_t)w;
            return &s->memo[2 * set + w];
        }
    *put = &s->memo[2 * set + 1 - s->mlast[set]];
    return NULL;
}

/* Keeps in e (tag tag) what the scans just done logged for group grp (g, value str). */
static void sig_memo_put(cor_scratch *s, struct sig_memo *e, uint16_t tag,
                         const struct sig_group *g, uint32_t grp, const struct vg_str *str)
{
    uint32_t i, k, n = 0;

    e->g = NULL;
    s->mtag[e - s->memo] = 0;
    if (s->nmlog > SIG_MEMO_LOG)
        return; /* reports were dropped: what the entry would hold is not all */
    for (i = 0; i < s->nmlog; i++) {
        if (s->mlog[i].grp != grp)
            continue;
        for (k = 0; k < n && e->hit[k] != s->mlog[i].id; k++)
            ;
        if (k < n)
            continue;
        if (n == SIG_MEMO_HITS)
            return;
        e->hit[n++] = s->mlog[i].id;
    }
    if (str->n)
        memcpy(e->v, str->p, str->n);
    e->n = (uint16_t)str->n;
    e->nhit = (uint8_t)n;
    e->g = g;
    s->mtag[e - s->memo] = tag;
    s->memo_miss++;
}

/* Does again what the scans of group g (of bucket b) did for the value kept in e. */
static void sig_memo_replay(cor_scratch *s, const struct sig_bucket *b, const struct sig_group *g,
                            const struct sig_memo *e)
{
    const struct sig_hsdb *const from[] = {
        [SIG_MK_LIT] = &g->lit,   [SIG_MK_RE] = &g->re, [SIG_MK_EXACT] = &g->exact,
        [SIG_MK_TAIL] = &g->tail, [SIG_MK_EQ] = &g->eq,
    };
    uint32_t k, a;

    for (k = 0; k < e->nhit; k++) {
        uint32_t id = SIG_MK_ID(e->hit[k]), kind = e->hit[k] >> SIG_MK_SHIFT;
        const struct sig_hsdb *d = from[kind];
        if (kind == SIG_MK_COMB) {
            sig_comb_run(s, &b->comb, &b->comb.run[id]);
            continue;
        }
        for (a = d->first[id]; a < d->first[id + 1]; a++)
            sig_act_apply(s, &d->act[a]);
    }
    s->memo_hits++;
}

/* ---- one field's scans -------------------------------------------------------------- */

/* A database of a few literals, without Hyperscan: the same hits, found one by one. */
static void sig_scan_direct(struct sig_scan_ctx *sc, const struct vg_str *str)
{
    const struct sig_hsdb *d = sc->d;
    size_t p;

    for (p = 0; p < d->npat; p++) {
        const struct sig_matcher *m = &sc->s->rs->m[d->ids[d->first[p]]];
        if (sig_has_caseless(str, m->pre, m->npre))
            (void)sig_on_hit((unsigned)p, 0, 0, 0, sc);
    }
}

/* A report of the combined database: the occurrence [to - len, to) counts for the run of
 * matchers whose field holds all of it (not one straddling two fields); each such run is
 * logged for the memo when its field's value is to be kept. */
static int sig_on_comb(unsigned int id, unsigned long long from, unsigned long long to,
                       unsigned int flags, void *ctx)
{
    const struct sig_comb_ctx *cc = ctx;
    cor_scratch *s = cc->s;
    const struct sig_comb *c = cc->c;
    unsigned long long start = to - c->plen[id];
    uint32_t r;

    (void)from;
    (void)flags;
    for (r = c->first[id]; r < c->first[id + 1]; r++) {
        const struct sig_crun *run = &c->run[r];
        if (start < s->gfrom[run->grp] || to > s->gto[run->grp])
            continue; /* another field */
        if (s->gmemo[run->grp])
            sig_mlog(s, run->grp, (uint32_t)SIG_MK_COMB << SIG_MK_SHIFT | r);
        sig_comb_run(s, c, run);
    }
    return 0;
}

/* Appends str to the combined buffer as group i's value. */
static bool sig_comb_put(cor_scratch *s, size_t i, size_t *total, const struct vg_str *str)
{
    if (*total + str->n > s->ccap) {
        size_t cap = *total + str->n < 2048 ? 4096 : 2 * (*total + str->n);
        char *p = vg_realloc(s->cbuf, cap);
        if (!p)
            return false; /* the field is not scanned: no hits, no false alerts */
        s->cbuf = p;
        s->ccap = cap;
    }
    if (str->n)
        memcpy(s->cbuf + *total, str->p, str->n);
    s->gfrom[i] = (uint32_t)*total;
    *total += str->n;
    s->gto[i] = (uint32_t)*total;
    return true;
}

/* A set's lookup of v (sc->d: exact, tail or anchored), caseless (the keys are lower-cased). */
static void sig_scan_exact(struct sig_scan_ctx *sc, const char *v, size_t n)
{
    const struct sig_hsdb *d = sc->d;
    uint32_t hash, h, p;
    uint64_t e;
    size_t i;

    if (n == 0 || n > d->maxlen || !(d->lenmap[n / 64] >> (n % 64) & 1))
        return;
    hash = sig_exact_hash((const uint8_t *)v, n);
    for (h = hash & d->hmask; (e = d->htab[h]) != SIG_EXACT_EMPTY; h = (h + 1) & d->hmask) {
        p = (uint32_t)e;
        if ((uint32_t)(e >> 32) != hash || d->klen[p] != n)
            continue;
        for (i = 0; i < n && sig_lc((uint8_t)v[i]) == d->key[p][i]; i++)
            ;
        if (i == n) {
            (void)sig_on_hit(p, 0, 0, 0, sc);
            return;
        }
    }
}

/* The last of each separator of seps (bit k: sig_tail_sep[k]) in str, NULL when absent:
 * one walk back over 16-byte blocks for all of them (three memrchr calls cost a tenth of
 * evaluation), bytewise for the first few bytes. */
static void sig_last_seps(const struct vg_str *str, unsigned seps, const char *at[SIG_TAIL_NSEP])
{
    const char *p = str->p;
    size_t end = str->n, k;

    for (k = 0; k < SIG_TAIL_NSEP; k++)
        at[k] = NULL;
#ifdef __SSE2__
    for (; end >= 16 && seps; end -= 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(p + end - 16));
        for (k = 0; k < SIG_TAIL_NSEP; k++) {
            unsigned m;
            if (!(seps >> k & 1))
                continue;
            m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(sig_tail_sep[k])));
            if (m) {
                at[k] = p + end - 16 + (31 - __builtin_clz(m));
                seps &= ~(1u << k);
            }
        }
    }
#endif
    while (end > 0 && seps) {
        end--;
        for (k = 0; k < SIG_TAIL_NSEP; k++)
            if ((seps >> k & 1) && p[end] == sig_tail_sep[k]) {
                at[k] = p + end;
                seps &= ~(1u << k);
            }
    }
}

/* The tail set: the value from its last separator on, looked up once per separator. */
static void sig_scan_tail(struct sig_scan_ctx *sc, const struct sig_group *g,
                          const struct vg_str *str)
{
    const char *at[SIG_TAIL_NSEP];
    size_t k;

    if (str->n == 0)
        return;
    sig_last_seps(str, g->tail_seps, at);
    for (k = 0; k < SIG_TAIL_NSEP; k++)
        if (at[k])
            sig_scan_exact(sc, at[k], (size_t)(str->p + str->n - at[k]));
}

/* The anchored set: around every '=' of the value, the bytes of each shape whose name,
 * when it has one, is there. */
static void sig_scan_eq(struct sig_scan_ctx *sc, const struct sig_group *g,
                        const struct vg_str *str)
{
    const char *p = str->p, *end = str->p + str->n, *e;
    size_t i;

    while (p < end && (e = memchr(p, '=', (size_t)(end - p)))) {
        size_t at = (size_t)(e - str->p);
        for (i = 0; i < g->eq_n; i++) {
            const uint8_t *from = (const uint8_t *)e - g->eq_k[i];
            if (at < g->eq_k[i] || at + 1 + g->eq_h[i] > str->n ||
                (g->eq_name[i] && !sig_eq_caseless(from, g->eq_name[i], g->eq_k[i])))
                continue;
            sig_scan_exact(sc, (const char *)from, (size_t)g->eq_k[i] + 1 + g->eq_h[i]);
        }
        p = e + 1;
    }
}

/* The field's lookups: exact value, tail, anchored. */
static void sig_scan_sets(cor_scratch *s, const struct sig_group *g, uint32_t grp, bool log,
                          const struct vg_str *str)
{
    struct sig_scan_ctx sc = {s, NULL, grp, 0, log};

    if (g->exact.htab) {
        sc.d = &g->exact;
        sc.tag = (uint32_t)SIG_MK_EXACT << SIG_MK_SHIFT;
        sig_scan_exact(&sc, str->p, str->n);
    }
    if (g->tail.htab) {
        sc.d = &g->tail;
        sc.tag = (uint32_t)SIG_MK_TAIL << SIG_MK_SHIFT;
        sig_scan_tail(&sc, g, str);
    }
    if (g->eq.htab) {
        sc.d = &g->eq;
        sc.tag = (uint32_t)SIG_MK_EQ << SIG_MK_SHIFT;
        sig_scan_eq(&sc, g, str);
    }
}

/* Database d (of kind SIG_MK_LIT or SIG_MK_RE) of group grp over str. False when Hyperscan
 * failed (only a bad scratch): the hits are then missing (no false alerts) and the value is
 * not kept in the memo. */
static bool sig_scan_db(cor_scratch *s, const struct sig_hsdb *d, uint32_t kind, uint32_t grp,
                        bool log, const struct vg_str *str)
{
    struct sig_scan_ctx sc = {s, d, grp, kind << SIG_MK_SHIFT, log};

    return hs_scan(d->db, str->p ? str->p : "", (unsigned)str->n, 0, s->hs, sig_on_hit, &sc) ==
           HS_SUCCESS;
}

/* Every field of bucket b's rules: a value the memo holds is replayed; else its lookups and
 * databases run (logging their reports when the memo is to keep it), its short fields' value
 * going to the combined buffer, scanned once at the end. */
static void sig_scan_bucket(cor_scratch *s, const struct sig_bucket *b, const struct vg_evview *v)
{
    struct sig_comb_ctx cc = {s, &b->comb};
    size_t i, total = 0;
    bool pend = false;

    s->nmlog = 0;
    for (i = 0; i < b->ngroups; i++) {
        const struct sig_group *g = &b->groups[i];
        bool comb = b->in_comb && b->in_comb[i], ok = true;
        struct sig_memo *e = NULL, *hit;
        struct vg_str str;
        uint16_t tag = 0;
        bool keep;
        if (comb) {
            s->gfrom[i] = 1; /* no occurrence fits */
            s->gto[i] = 0;
            s->gmemo[i] = NULL;
        }
        if (!sig_get(s, v, &g->field, &str))
            continue;
        if (g->memo && (hit = sig_memo_find(s, g, &str, &e, &tag))) {
            sig_memo_replay(s, b, g, hit);
            continue;
        }
        keep = e != NULL; /* the memo is to keep the value: its scans log their reports */
        sig_scan_sets(s, g, (uint32_t)i, keep, &str);
        if (comb) {
            if (sig_comb_put(s, i, &total, &str)) {
                s->gmemo[i] = e;
                s->gtag[i] = tag;
                pend |= keep;
            }
        } else if (g->lit.direct) {
            struct sig_scan_ctx sc = {s, &g->lit, (uint32_t)i, (uint32_t)SIG_MK_LIT << SIG_MK_SHIFT,
                                      keep};
            sig_scan_direct(&sc, &str);
        } else if (g->lit.db) {
            ok = sig_scan_db(s, &g->lit, SIG_MK_LIT, (uint32_t)i, keep, &str);
        }
        if (g->re.db && !sig_scan_db(s, &g->re, SIG_MK_RE, (uint32_t)i, keep, &str)) {
            ok = false;
            if (comb)
                s->gmemo[i] = NULL;
        }
        if (keep && !comb && ok)
            sig_memo_put(s, e, tag, g, (uint32_t)i, &str);
    }
    if (total > 0 &&
        hs_scan(b->comb.db, s->cbuf, (unsigned)total, 0, s->hs, sig_on_comb, &cc) == HS_SUCCESS &&
        pend)
        for (i = 0; i < b->ngroups; i++)
            if (b->in_comb[i] && s->gmemo[i]) {
                struct vg_str str = {s->cbuf + s->gfrom[i], s->gto[i] - s->gfrom[i]};
                sig_memo_put(s, s->gmemo[i], s->gtag[i], &b->groups[i], (uint32_t)i, &str);
            }
    for (i = 0; i < b->nalways; i++)
        sig_candidate(s, b->always[i]);
}

static const struct sig_bucket *sig_svc_find(const cor_ruleset *rs, Vigil__Os os, const char *svc)
{
    size_t i;

    for (i = 0; i < rs->nsvc; i++)
        if (rs->svc[i].os == os && strcasecmp(rs->svc[i].service, svc) == 0)
            return &rs->svc[i];
    return NULL;
}

#define SIG_TIME_EVERY 16u

/* Evaluates the candidates of word w of the bitmap, in rule order, and clears it. */
static int sig_eval_word(cor_scratch *s, size_t w, const struct vg_evview *v, bool timed,
                         cor_match_fn fn, void *ctx)
{
    const cor_ruleset *rs = s->rs;
    uint64_t bits = s->cand[w];
    int matched = 0;

    s->cand[w] = 0;
    while (bits) {
        size_t ri = w * 64 + (size_t)__builtin_ctzll(bits);
        uint32_t got = sig_rule_got(s, ri);
        bits &= bits - 1;
        if ((got & rs->rneed[ri]) != rs->rneed[ri])
            continue; /* a clause only a scan satisfies did not hit */
        const struct sig_rule *r = rs->rules[ri];
        uint64_t t0 = timed ? vg_mono_ns() : 0;
        bool hit = sig_req_met(s, r, got, v) && sig_cond_eval(s, r, r->cond, v);

        if (timed)
            __atomic_store_n(&s->rule_ns[ri],
                             __atomic_load_n(&s->rule_ns[ri], __ATOMIC_RELAXED) +
                                 (vg_mono_ns() - t0) * SIG_TIME_EVERY,
                             __ATOMIC_RELAXED);
        if (hit) {
            matched++;
            if (fn)
                fn(ctx, &r->info);
        }
    }
    return matched;
}

int cor_rules_eval(const cor_ruleset *rs, cor_scratch *s, const struct vg_evview *v,
                   cor_match_fn fn, void *ctx)
{
    Vigil__Os os = (unsigned)v->os < SIG_NOS ? v->os : VIGIL__OS__OS_UNKNOWN;
    int matched = 0;
    size_t sw, w;
    /* Per-rule CPU time is sampled (one event in SIG_TIME_EVERY, scaled up), so that timing
     * costs next to nothing. It covers a rule's own verification and condition, not the
     * shared multi-pattern scan, which no single rule owns. */
    bool timed = ++s->sample >= SIG_TIME_EVERY;

    if (VG_NEVER(s->rs != rs))
        return 0;
    if (++s->gen == 0) { /* wrapped: old stamps could look current */
        memset(s->mstamp, 0, (rs->nm + 1) * sizeof(*s->mstamp));
        memset(s->mdone, 0, (rs->nm + 1) * sizeof(*s->mdone));
        memset(s->rcl, 0, (rs->nrules + 1) * sizeof(*s->rcl));
        memset(&s->addr, 0, sizeof(s->addr));
        memset(s->slot, 0, (rs->nslots + 1) * sizeof(*s->slot));
        s->gen = 1;
    }
    if (v->cat > VG_CAT_NONE && v->cat < VG_CAT__COUNT)
        sig_scan_bucket(s, &rs->cat[os][v->cat], v);
    if (v->service) {
        const struct sig_bucket *b = sig_svc_find(rs, os, v->service);
        if (b)
            sig_scan_bucket(s, b, v);
    }
    /* Rule order, so that callers see the same order on every run; the bits are cleared
     * on the way for the next event. */
    for (sw = 0; sw < s->nsumw; sw++) {
        uint64_t words = s->candsum[sw];
        s->candsum[sw] = 0;
        while (words) {
            w = sw * 64 + (size_t)__builtin_ctzll(words);
            words &= words - 1;
            matched += sig_eval_word(s, w, v, timed, fn, ctx);
        }
    }
    if (timed)
        s->sample = 0;
    return matched;
}
