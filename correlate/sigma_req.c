/*
 * sigma_req.c - load-time analysis that keeps evaluation cheap: field lookup cache slots,
 * and per rule the hits it requires before it is worth evaluating.
 *
 * Required hits. A string matcher in a Hyperscan database (in_db) can only be true when
 * the scan of its field hit it. From the condition tree we derive, per rule, a necessary
 * condition over such hits in conjunctive form: a few clauses, each a set of matchers of
 * which at least one must have hit. `sel_a and sel_b` needs a hit in both; `1 of sel_*`
 * needs a hit in any; `not x` needs nothing. A rule woken by a hit is evaluated only when
 * all its clauses hold, and only the matchers of one clause (the one whose literals look
 * rarest) wake it at all. This is exact: a rule skipped here would have evaluated false.
 *
 * THREAD SAFETY: load time only, on the loading thread.
 */
#include <string.h>
#include <strings.h>

#include "sigma_int.h"

#define RQ_MAX_CLAUSES 8 /* kept per node: more are dropped (a weaker, still valid need) */
/* A rule's clauses are bits of a byte (sig_matcher.clmask, cor_ruleset.rneed). */
_Static_assert(RQ_MAX_CLAUSES <= 8, "clause masks are 8 bits");
#define RQ_MAX_WIDTH 512 /* matchers in one clause: a wider one is dropped */

/* A clause: at least one of m[0..n) hit. */
struct rq_clause {
    uint32_t *m;
    size_t n;
};

/* A conjunction of clauses; n == 0 means "no constraint". */
struct rq_set {
    struct rq_clause c[RQ_MAX_CLAUSES];
    size_t n;
};

struct rq_ctx {
    const struct cor_ruleset *rs;
    const struct sig_rule *r;
    vg_arena *tmp; /* every clause array of one rule's analysis */
    bool oom;
};

static void rq_cond(struct rq_ctx *x, const struct sig_cnode *c, struct rq_set *out);

/* ---- field slots -------------------------------------------------------------------- */

static int sig_slot_of(struct cor_ruleset *rs, struct sig_fref *f)
{
    size_t i;

    if (f->typed == SIG_FIELD_KEYWORDS || !f->name)
        return 0;
    for (i = 0; i < rs->nslots; i++)
        if (strcasecmp(rs->slot_name[i], f->name) == 0)
            break;
    if (i == rs->nslots) {
        if (rs->nslots == rs->cap_slots) {
            size_t cap = rs->cap_slots ? rs->cap_slots * 2 : 64;
            const char **p = vg_realloc(rs->slot_name, cap * sizeof(*p));
            if (!p)
                return -VG_ENOMEM;
            rs->slot_name = p;
            rs->cap_slots = cap;
        }
        rs->slot_name[rs->nslots++] = f->name;
    }
    f->slot = (uint32_t)i;
    return 0;
}

int sig_assign_slots(struct cor_ruleset *rs)
{
    size_t r, s, i, f, k;
    int rc;

    for (r = 0; r < rs->nrules; r++) {
        struct sig_rule *ru = rs->rules[r];
        for (s = 0; s < ru->nsels; s++)
            for (i = 0; i < ru->sels[s].n; i++)
                for (f = 0; f < ru->sels[s].items[i].n; f++) {
                    struct sig_fmatch *fm = &ru->sels[s].items[i].fm[f];
                    if ((rc = sig_slot_of(rs, &fm->field)) < 0)
                        return rc;
                    for (k = 0; k < fm->n; k++)
                        if (rs->m[fm->m[k]].kind == SIG_M_FIELDREF &&
                            (rc = sig_slot_of(rs, &rs->m[fm->m[k]].ref)) < 0)
                            return rc;
                }
    }
    return 0;
}

/* ---- clause algebra ----------------------------------------------------------------- */

/* Adds a clause to a conjunction; past the cap the widest is dropped. */
static void rq_add(struct rq_set *s, struct rq_clause c)
{
    size_t i, widest = 0;

    if (c.n == 0 || c.n > RQ_MAX_WIDTH)
        return;
    if (s->n < RQ_MAX_CLAUSES) {
        s->c[s->n++] = c;
        return;
    }
    for (i = 1; i < s->n; i++)
        if (s->c[i].n > s->c[widest].n)
            widest = i;
    if (c.n < s->c[widest].n)
        s->c[widest] = c;
}

static void rq_and(struct rq_set *acc, const struct rq_set *b)
{
    size_t i;

    for (i = 0; i < b->n; i++)
        rq_add(acc, b->c[i]);
}

static void rq_sort(struct rq_set *s)
{
    size_t i, j;

    for (i = 1; i < s->n; i++) {
        struct rq_clause c = s->c[i];
        for (j = i; j > 0 && s->c[j - 1].n > c.n; j--)
            s->c[j] = s->c[j - 1];
        s->c[j] = c;
    }
}

/* The disjunction of n conjunctions: if each alternative i needs clause c_i, the
 * disjunction needs the union of the c_i. Pairs the narrowest clause of each alternative,
 * then the second narrowest, and so on. Any alternative without constraint leaves none. */
static void rq_or(struct rq_ctx *x, struct rq_set *alts, size_t n, struct rq_set *out)
{
    size_t i, k, kmax = 0;

    out->n = 0;
    if (n == 0)
        return;
    for (i = 0; i < n; i++) {
        if (alts[i].n == 0)
            return;
        rq_sort(&alts[i]);
        if (alts[i].n > kmax)
            kmax = alts[i].n;
    }
    if (n == 1) {
        *out = alts[0];
        return;
    }
    for (k = 0; k < kmax; k++) {
        struct rq_clause c = {NULL, 0};
        size_t w = 0;
        for (i = 0; i < n; i++)
            w += alts[i].c[k < alts[i].n ? k : alts[i].n - 1].n;
        if (w > RQ_MAX_WIDTH)
            break; /* later ones are wider still */
        if (!(c.m = vg_arena_alloc(x->tmp, w * sizeof(*c.m)))) {
            x->oom = true;
            return;
        }
        for (i = 0; i < n; i++) {
            const struct rq_clause *ci = &alts[i].c[k < alts[i].n ? k : alts[i].n - 1];
            memcpy(c.m + c.n, ci->m, ci->n * sizeof(*c.m));
            c.n += ci->n;
        }
        rq_add(out, c);
    }
}

/* ---- the condition tree ------------------------------------------------------------- */

static bool rq_prefiltered(const struct cor_ruleset *rs, uint32_t mid)
{
    return rs->m[mid].kind == SIG_M_HS && rs->m[mid].in_db;
}

/* One `field: values`: OR of its matchers (a clause when every one needs a hit), or with
 * `all`, AND (each prefiltered matcher is a clause of its own). */
static void rq_fmatch(struct rq_ctx *x, const struct sig_fmatch *fm, struct rq_set *out)
{
    size_t k;

    out->n = 0;
    if (fm->field.typed == SIG_FIELD_KEYWORDS || fm->n == 0)
        return;
    if (fm->all) {
        for (k = 0; k < fm->n; k++)
            if (rq_prefiltered(x->rs, fm->m[k]))
                rq_add(out, (struct rq_clause){&fm->m[k], 1});
        return;
    }
    for (k = 0; k < fm->n; k++)
        if (!rq_prefiltered(x->rs, fm->m[k]))
            return;
    rq_add(out, (struct rq_clause){fm->m, fm->n});
}

static void rq_sel(struct rq_ctx *x, const struct sig_sel *sel, struct rq_set *out)
{
    struct rq_set *alts = vg_arena_alloc(x->tmp, (sel->n + 1) * sizeof(*alts));
    size_t i, f;

    out->n = 0;
    if (!alts) {
        x->oom = true;
        return;
    }
    for (i = 0; i < sel->n; i++) {
        alts[i].n = 0;
        for (f = 0; f < sel->items[i].n; f++) {
            struct rq_set one;
            rq_fmatch(x, &sel->items[i].fm[f], &one);
            rq_and(&alts[i], &one);
        }
    }
    rq_or(x, alts, sel->n, out);
}

static void rq_cond(struct rq_ctx *x, const struct sig_cnode *c, struct rq_set *out)
{
    struct rq_set *kids;
    size_t i;

    out->n = 0;
    switch (c->kind) {
    case SIG_C_SEL:
        rq_sel(x, &x->r->sels[c->sel], out);
        return;
    case SIG_C_AND:
        for (i = 0; i < c->n; i++) {
            struct rq_set one;
            rq_cond(x, c->kids[i], &one);
            rq_and(out, &one);
        }
        return;
    case SIG_C_OR:
        if (!(kids = vg_arena_alloc(x->tmp, (c->n + 1) * sizeof(*kids)))) {
            x->oom = true;
            return;
        }
        for (i = 0; i < c->n; i++)
            rq_cond(x, c->kids[i], &kids[i]);
        rq_or(x, kids, c->n, out);
        return;
    case SIG_C_NOT:   /* a negation needs no hit */
    case SIG_C_TRUE:  /* nor does a constant */
    case SIG_C_FALSE: /* (never true: any need is valid; none is simplest) */
        return;
    }
}

/* ---- per rule ----------------------------------------------------------------------- */

/* A whole value "true" or "false" (Initiated, ...): half of a boolean field's events carry
 * it, however long the word. */
static bool rq_boolean(const struct sig_matcher *m)
{
    return !m->is_re && m->vlit && m->pos == SIG_EXACT &&
           ((m->nlit == 4 && strncasecmp((const char *)m->lit, "true", 4) == 0) ||
            (m->nlit == 5 && strncasecmp((const char *)m->lit, "false", 5) == 0));
}

/* How rare a clause's hits should be: its shortest prefilter literal (regexes count as
 * short, a boolean value as the shortest), longer is rarer; then fewer matchers. */
static size_t rq_rarity(const struct cor_ruleset *rs, const struct rq_clause *c)
{
    size_t k, best = SIZE_MAX;

    for (k = 0; k < c->n; k++) {
        const struct sig_matcher *m = &rs->m[c->m[k]];
        size_t len = rq_boolean(m) ? 0 : m->is_re ? 2 : m->npre;
        if (len < best)
            best = len;
    }
    return best;
}

static size_t rq_pick(const struct cor_ruleset *rs, const struct rq_set *s)
{
    size_t i, pick = 0;

    for (i = 1; i < s->n; i++) {
        size_t a = rq_rarity(rs, &s->c[i]), b = rq_rarity(rs, &s->c[pick]);
        if (a > b || (a == b && s->c[i].n < s->c[pick].n))
            pick = i;
    }
    return pick;
}

/* Stores the clauses (the picked one first) and makes only its matchers triggers. */
static int rq_store(struct cor_ruleset *rs, struct sig_rule *r, const struct rq_set *s)
{
    size_t i, k, total = 0, pick = rq_pick(rs, s), at = 0;
    uint32_t nk = 0;

    for (i = 0; i < s->n; i++)
        total += s->c[i].n;
    r->req = vg_arena_alloc(rs->arena, (total + 1) * sizeof(*r->req));
    r->req_off = vg_arena_alloc(rs->arena, (s->n + 1) * sizeof(*r->req_off));
    if (!r->req || !r->req_off)
        return -VG_ENOMEM;
    for (i = 0; i < s->n; i++) {
        const struct rq_clause *c = &s->c[i == 0 ? pick : i == pick ? 0 : i];
        r->req_off[nk++] = (uint32_t)at;
        memcpy(r->req + at, c->m, c->n * sizeof(*r->req));
        at += c->n;
    }
    r->req_off[nk] = (uint32_t)at;
    r->nreq = nk;
    /* Every matcher of the rule is one of its own (matchers are never shared). */
    for (k = r->req_off[0]; k < r->req_off[1]; k++)
        rs->m[r->req[k]].trigger = true;
    return 0;
}

static void rq_untrigger(struct cor_ruleset *rs, const struct sig_rule *r)
{
    size_t s, i, f, k;

    for (s = 0; s < r->nsels; s++)
        for (i = 0; i < r->sels[s].n; i++)
            for (f = 0; f < r->sels[s].items[i].n; f++)
                for (k = 0; k < r->sels[s].items[i].fm[f].n; k++)
                    rs->m[r->sels[s].items[i].fm[f].m[k]].trigger = false;
}

int sig_build_req(struct cor_ruleset *rs)
{
    struct rq_ctx x = {.rs = rs};
    size_t i;
    int rc = 0;

    if (!(x.tmp = vg_arena_new(1 << 16)))
        return -VG_ENOMEM;
    for (i = 0; i < rs->nrules && rc == 0; i++) {
        struct sig_rule *r = rs->rules[i];
        struct rq_set s;
        x.r = r;
        x.oom = false;
        rq_cond(&x, r->cond, &s);
        if (x.oom) {
            rc = -VG_ENOMEM;
        } else if (s.n > 0) {
            rq_untrigger(rs, r);
            rc = rq_store(rs, r, &s);
        }
        vg_arena_reset(x.tmp);
    }
    vg_arena_destroy(x.tmp);
    return rc;
}

/* ---- clause masks ------------------------------------------------------------------- */

/* A matcher whose hit a scan stamps: prefiltered, not looked for on demand. */
static bool rq_scanned(const struct cor_ruleset *rs, uint32_t mid)
{
    return rq_prefiltered(rs, mid) && !rs->m[mid].lazy;
}

int sig_build_clauses(struct cor_ruleset *rs)
{
    size_t i;
    uint32_t k, j, nl;

    sig_free_clauses(rs);
    if (!(rs->rneed = vg_calloc(rs->nrules + 1, sizeof(*rs->rneed))))
        return -VG_ENOMEM;
    for (i = 0; i < rs->nm; i++)
        rs->m[i].clmask = 0;
    for (i = 0; i < rs->nrules; i++) {
        struct sig_rule *r = rs->rules[i];
        nl = 0;
        for (j = 0; r->nreq && j < r->req_off[r->nreq]; j++)
            nl += !rq_scanned(rs, r->req[j]);
        r->lreq = vg_arena_alloc(rs->arena, (nl + 1) * sizeof(*r->lreq));
        r->lreq_off = vg_arena_alloc(rs->arena, (r->nreq + 1) * sizeof(*r->lreq_off));
        if (!r->lreq || !r->lreq_off)
            return -VG_ENOMEM;
        nl = 0;
        for (k = 0; k < r->nreq; k++) { /* k < RQ_MAX_CLAUSES: fits the masks */
            r->lreq_off[k] = nl;
            for (j = r->req_off[k]; j < r->req_off[k + 1]; j++) {
                if (rq_scanned(rs, r->req[j]))
                    rs->m[r->req[j]].clmask |= (uint8_t)(1u << k);
                else
                    r->lreq[nl++] = r->req[j];
            }
            if (r->lreq_off[k] == nl)
                rs->rneed[i] |= (uint8_t)(1u << k);
        }
        r->lreq_off[r->nreq] = nl;
    }
    return 0;
}

void sig_free_clauses(struct cor_ruleset *rs)
{
    vg_free(rs->rneed);
    rs->rneed = NULL;
}
