/*
 * sigma_cond.c - the Sigma condition language: and, or, not, parentheses, `1 of x*`,
 * `all of x*`, `1 of them`, `all of them`. Aggregations (`| count() ...`) and `near` are
 * refused: they belong to the correlation engine.
 *
 * Precedence, lowest first: or, and, not (as in pySigma).
 *
 * THREAD SAFETY: load time only, on the loading thread.
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sigma_int.h"

#define SIG_TOK_MAX 128

struct sig_cparse {
    cor_ruleset *rs;
    struct sig_rule *r;
    const char *s;
    char tok[SIG_TOK_MAX]; /* current token; "" at the end */
    char *why;
    size_t whylen;
    int depth;
};

static int sig_c_or(struct sig_cparse *p, struct sig_cnode **out);

static void sig_c_next(struct sig_cparse *p)
{
    size_t n = 0;

    while (isspace((unsigned char)*p->s))
        p->s++;
    if (*p->s == '(' || *p->s == ')' || *p->s == '|') {
        p->tok[0] = *p->s++;
        p->tok[1] = 0;
        return;
    }
    while (*p->s && !isspace((unsigned char)*p->s) && *p->s != '(' && *p->s != ')' &&
           *p->s != '|') {
        if (n + 1 < sizeof(p->tok))
            p->tok[n++] = *p->s;
        p->s++;
    }
    p->tok[n] = 0;
}

static bool sig_c_is(const struct sig_cparse *p, const char *kw)
{
    return strcasecmp(p->tok, kw) == 0;
}

static int sig_c_fail(struct sig_cparse *p, int rc, const char *fmt, const char *arg)
{
    snprintf(p->why, p->whylen, fmt, arg);
    return rc;
}

static struct sig_cnode *sig_c_node(struct sig_cparse *p, enum sig_ckind kind, size_t cap)
{
    struct sig_cnode *n = vg_arena_alloc(p->rs->arena, sizeof(*n));

    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    if (cap) {
        n->kids = vg_arena_alloc(p->rs->arena, cap * sizeof(*n->kids));
        if (!n->kids)
            return NULL;
    }
    return n;
}

static int sig_c_sel(struct sig_cparse *p, const char *name, struct sig_cnode **out)
{
    size_t i;

    for (i = 0; i < p->r->nsels; i++) {
        if (strcmp(p->r->sels[i].name, name) == 0) {
            if (!(*out = sig_c_node(p, SIG_C_SEL, 0)))
                return -VG_ENOMEM;
            (*out)->sel = (uint32_t)i;
            return 0;
        }
    }
    return sig_c_fail(p, -VG_EINVAL, "condition names unknown selection '%s'", name);
}

/* `1 of x` / `all of x`: x is a glob over selection names, or `them`. */
static int sig_c_of(struct sig_cparse *p, bool all, struct sig_cnode **out)
{
    struct sig_cnode *n;
    bool them;
    size_t i;

    sig_c_next(p);
    if (!sig_c_is(p, "of"))
        return sig_c_fail(p, -VG_EINVAL, "expected 'of' in condition near '%s'", p->tok);
    sig_c_next(p);
    them = sig_c_is(p, "them");
    if (!(n = sig_c_node(p, all ? SIG_C_AND : SIG_C_OR, p->r->nsels + 1)))
        return -VG_ENOMEM;
    for (i = 0; i < p->r->nsels; i++) {
        const char *name = p->r->sels[i].name;
        bool hit = them ? name[0] != '_' : fnmatch(p->tok, name, 0) == 0;
        if (!hit)
            continue;
        if (!(n->kids[n->n] = sig_c_node(p, SIG_C_SEL, 0)))
            return -VG_ENOMEM;
        n->kids[n->n++]->sel = (uint32_t)i;
    }
    if (n->n == 0)
        return sig_c_fail(p, -VG_EINVAL, "'of %s' matches no selection", p->tok);
    sig_c_next(p);
    *out = n;
    return 0;
}

static int sig_c_primary(struct sig_cparse *p, struct sig_cnode **out)
{
    int rc;

    if (++p->depth > 64)
        return sig_c_fail(p, -VG_EINVAL, "condition nested too deeply%s", "");
    if (sig_c_is(p, "not")) {
        struct sig_cnode *n = sig_c_node(p, SIG_C_NOT, 1);
        if (!n)
            return -VG_ENOMEM;
        sig_c_next(p);
        if ((rc = sig_c_primary(p, &n->kids[0])) < 0)
            return rc;
        n->n = 1;
        *out = n;
    } else if (sig_c_is(p, "(")) {
        sig_c_next(p);
        if ((rc = sig_c_or(p, out)) < 0)
            return rc;
        if (!sig_c_is(p, ")"))
            return sig_c_fail(p, -VG_EINVAL, "missing ')' in condition%s", "");
        sig_c_next(p);
    } else if (sig_c_is(p, "1") || sig_c_is(p, "any")) {
        rc = sig_c_of(p, false, out);
    } else if (sig_c_is(p, "all")) {
        rc = sig_c_of(p, true, out);
    } else if (sig_c_is(p, "|")) {
        return sig_c_fail(p, -VG_EUNSUP, "aggregation in condition not supported%s", "");
    } else if (sig_c_is(p, "near")) {
        return sig_c_fail(p, -VG_EUNSUP, "'near' not supported%s", "");
    } else if (!p->tok[0] || sig_c_is(p, ")") || sig_c_is(p, "and") || sig_c_is(p, "or")) {
        return sig_c_fail(p, -VG_EINVAL, "condition syntax error near '%s'", p->tok);
    } else if (isdigit((unsigned char)p->tok[0])) {
        return sig_c_fail(p, -VG_EUNSUP, "'%s of' not supported", p->tok);
    } else {
        if ((rc = sig_c_sel(p, p->tok, out)) < 0)
            return rc;
        sig_c_next(p);
    }
    p->depth--;
    return rc < 0 ? rc : 0;
}

/* A chain of one binary operator; `kind` is AND or OR. */
static int sig_c_chain(struct sig_cparse *p, enum sig_ckind kind, struct sig_cnode **out)
{
    const char *op = kind == SIG_C_AND ? "and" : "or";
    struct sig_cnode *first, *n;
    struct sig_cnode *kids[64];
    size_t nk = 0;
    int rc;

    rc = kind == SIG_C_AND ? sig_c_primary(p, &first) : sig_c_chain(p, SIG_C_AND, &first);
    if (rc < 0)
        return rc;
    kids[nk++] = first;
    while (sig_c_is(p, op)) {
        if (nk == VG_ARRAY_SIZE(kids))
            return sig_c_fail(p, -VG_EUNSUP, "condition too long%s", "");
        sig_c_next(p);
        rc = kind == SIG_C_AND ? sig_c_primary(p, &kids[nk]) : sig_c_chain(p, SIG_C_AND, &kids[nk]);
        if (rc < 0)
            return rc;
        nk++;
    }
    if (nk == 1) {
        *out = first;
        return 0;
    }
    if (!(n = sig_c_node(p, kind, nk)))
        return -VG_ENOMEM;
    memcpy(n->kids, kids, nk * sizeof(*kids));
    n->n = nk;
    *out = n;
    return 0;
}

static int sig_c_or(struct sig_cparse *p, struct sig_cnode **out)
{
    return sig_c_chain(p, SIG_C_OR, out);
}

int sig_cond_parse(struct cor_ruleset *rs, struct sig_rule *r, const char *s,
                   struct sig_cnode **out, char *why, size_t whylen)
{
    struct sig_cparse p = {.rs = rs, .r = r, .s = s, .why = why, .whylen = whylen};
    int rc;

    sig_c_next(&p);
    if ((rc = sig_c_or(&p, out)) < 0)
        return rc;
    if (sig_c_is(&p, "|"))
        return sig_c_fail(&p, -VG_EUNSUP, "aggregation in condition not supported%s", "");
    if (p.tok[0])
        return sig_c_fail(&p, -VG_EINVAL, "condition syntax error near '%s'", p.tok);
    return 0;
}
