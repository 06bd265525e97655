/*
 * sigma_index.c - routes compiled rules to (os, category) and (os, service) buckets and
 * compiles, per bucket and field, the string matchers of all its rules into Hyperscan
 * databases (one of literals, one of regexes; whole-value literals in a hash set; the
 * literals of the short fields again in one database per bucket, which is what is
 * scanned for them). Only matchers whose hit must be known on
 * every event are scanned for (triggers and required hits, see sigma_req.c); the rest are
 * "lazy", checked when their rule is evaluated. Matchers with the same pattern share one
 * Hyperscan pattern. Also knows which fields vigil's own telemetry supplies per category.
 *
 * THREAD SAFETY: load time only, on the loading thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sigma_int.h"

#define MOD "sigma"

/* ---- fields vigil's own sensors supply ------------------------------------------- */

static const int8_t sig_proc_fields[] = {VG_F_IMAGE,
                                         VG_F_COMMAND_LINE,
                                         VG_F_PARENT_IMAGE,
                                         VG_F_PARENT_COMMAND_LINE,
                                         VG_F_ORIGINAL_FILE_NAME,
                                         VG_F_USER,
                                         VG_F_PARENT_USER,
                                         VG_F_HASHES,
                                         VG_F_SHA256,
                                         VG_F_SHA1,
                                         VG_F_MD5,
                                         VG_F_INTEGRITY_LEVEL,
                                         VG_F_CURRENT_DIRECTORY,
                                         VG_F_PROCESS_ID,
                                         VG_F_PARENT_PROCESS_ID,
                                         VG_F_LOGON_ID,
                                         VG_F_COMPUTER,
                                         -1};
static const int8_t sig_file_fields[] = {
    VG_F_IMAGE,           VG_F_PROCESS_ID, VG_F_USER,     VG_F_TARGET_FILENAME,
    VG_F_SOURCE_FILENAME, VG_F_SHA256,     VG_F_COMPUTER, -1};
static const int8_t sig_net_fields[] = {VG_F_IMAGE,
                                        VG_F_PROCESS_ID,
                                        VG_F_USER,
                                        VG_F_PROTOCOL,
                                        VG_F_INITIATED,
                                        VG_F_SOURCE_IP,
                                        VG_F_SOURCE_PORT,
                                        VG_F_DESTINATION_IP,
                                        VG_F_DESTINATION_PORT,
                                        VG_F_DESTINATION_HOSTNAME,
                                        VG_F_COMPUTER,
                                        -1};
static const int8_t sig_reg_fields[] = {VG_F_IMAGE,         VG_F_PROCESS_ID, VG_F_USER,
                                        VG_F_TARGET_OBJECT, VG_F_DETAILS,    VG_F_EVENT_TYPE,
                                        VG_F_NEW_NAME,      VG_F_COMPUTER,   -1};
static const int8_t sig_dns_fields[] = {
    VG_F_IMAGE,         VG_F_PROCESS_ID,   VG_F_USER,     VG_F_QUERY_NAME,
    VG_F_QUERY_RESULTS, VG_F_QUERY_STATUS, VG_F_COMPUTER, -1};
static const int8_t sig_img_fields[] = {
    VG_F_IMAGE,  VG_F_PROCESS_ID, VG_F_USER, VG_F_IMAGE_LOADED, VG_F_SIGNED,   VG_F_SIGNATURE,
    VG_F_HASHES, VG_F_SHA256,     VG_F_SHA1, VG_F_MD5,          VG_F_COMPUTER, -1};
static const int8_t sig_logon_fields[] = {VG_F_LOGON_TYPE,
                                          VG_F_TARGET_USER_NAME,
                                          VG_F_TARGET_DOMAIN_NAME,
                                          VG_F_IP_ADDRESS,
                                          VG_F_IP_PORT,
                                          VG_F_WORKSTATION_NAME,
                                          VG_F_AUTH_PACKAGE,
                                          VG_F_EVENT_ID,
                                          VG_F_LOGON_ID,
                                          VG_F_COMPUTER,
                                          -1};

bool sig_field_native(enum vg_cat c, int typed)
{
    const int8_t *t;

    if (typed < 0)
        return false;
    if (vg_field_is_list(typed)) /* every event with a process, when the table knows it */
        return c != VG_CAT_LOGON;
    switch (c) {
    case VG_CAT_PROCESS_CREATION:
        t = sig_proc_fields;
        break;
    case VG_CAT_FILE_EVENT:
    case VG_CAT_FILE_CHANGE:
    case VG_CAT_FILE_DELETE:
    case VG_CAT_FILE_RENAME:
    case VG_CAT_FILE_ACCESS:
        t = sig_file_fields;
        break;
    case VG_CAT_NETWORK_CONNECTION:
        t = sig_net_fields;
        break;
    case VG_CAT_REGISTRY_ADD:
    case VG_CAT_REGISTRY_DELETE:
    case VG_CAT_REGISTRY_SET:
    case VG_CAT_REGISTRY_RENAME:
    case VG_CAT_REGISTRY_EVENT:
        t = sig_reg_fields;
        break;
    case VG_CAT_DNS_QUERY:
        t = sig_dns_fields;
        break;
    case VG_CAT_IMAGE_LOAD:
        t = sig_img_fields;
        break;
    case VG_CAT_LOGON:
        t = sig_logon_fields;
        break;
    default:
        return true; /* no table: any typed field may come */
    }
    for (; *t >= 0; t++)
        if (*t == typed)
            return true;
    return false;
}

/* ---- buckets and groups ------------------------------------------------------------- */

static bool sig_fref_eq(const struct sig_fref *a, const struct sig_fref *b)
{
    if (a->typed >= 0 || b->typed >= 0)
        return a->typed == b->typed;
    return strcasecmp(a->name, b->name) == 0;
}

static struct sig_bucket *sig_svc_bucket(cor_ruleset *rs, Vigil__Os os, const char *svc)
{
    size_t i;
    struct sig_bucket *b;

    for (i = 0; i < rs->nsvc; i++)
        if (rs->svc[i].os == os && strcasecmp(rs->svc[i].service, svc) == 0)
            return &rs->svc[i];
    if (rs->nsvc == rs->cap_svc) {
        size_t cap = rs->cap_svc ? rs->cap_svc * 2 : 16;
        b = vg_realloc(rs->svc, cap * sizeof(*b));
        if (!b)
            return NULL;
        rs->svc = b;
        rs->cap_svc = cap;
    }
    b = &rs->svc[rs->nsvc++];
    memset(b, 0, sizeof(*b));
    b->os = os;
    b->service = svc;
    return b;
}

static int sig_hsdb_add(struct sig_hsdb *d, uint32_t mid)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        uint32_t *ids = vg_realloc(d->ids, cap * sizeof(*ids));
        if (!ids)
            return -VG_ENOMEM;
        d->ids = ids;
        d->cap = cap;
    }
    d->ids[d->n++] = mid;
    return 0;
}

/* A pure literal compared with the whole value: decided by an exact-value lookup. */
static bool sig_exact_ok(const struct sig_matcher *m)
{
    return !m->is_re && m->vlit && m->pos == SIG_EXACT && m->npre == m->nlit && m->npre > 0 &&
           m->npre <= SIG_EXACT_MAXLEN;
}

/* A pure literal that must end the value and is one component with its separator
 * ('\\cmd.exe', '/bash', '.exe'): decided by a lookup of the value's tail. */
static bool sig_tail_ok(const struct sig_matcher *m)
{
    return !m->is_re && m->vlit && m->pos == SIG_ENDS && m->npre == m->nlit && m->npre > 1 &&
           m->npre <= SIG_EXACT_MAXLEN && memchr(sig_tail_sep, m->pre[0], SIG_TAIL_NSEP) &&
           !memchr(m->pre + 1, m->pre[0], m->npre - 1);
}

/* A pure literal looked for anywhere, with exactly one '=', not at either end
 * ('MD5=0123...'): an anchored-set candidate (sig_group_compile decides). */
static bool sig_eq_ok(const struct sig_matcher *m)
{
    const uint8_t *e;

    return !m->is_re && m->vlit && m->pos == SIG_CONTAINS && m->npre == m->nlit && m->npre >= 3 &&
           m->npre <= SIG_EXACT_MAXLEN && (e = memchr(m->pre, '=', m->npre)) && e > m->pre &&
           e < m->pre + m->npre - 1 && !memchr(e + 1, '=', (size_t)(m->pre + m->npre - e - 1));
}

static int sig_group_add(cor_ruleset *rs, struct sig_bucket *b, const struct sig_fref *f,
                         uint32_t mid)
{
    struct sig_group *g = NULL;
    size_t i;

    for (i = 0; i < b->ngroups; i++)
        if (sig_fref_eq(&b->groups[i].field, f))
            g = &b->groups[i];
    if (!g) {
        g = vg_realloc(b->groups, (b->ngroups + 1) * sizeof(*g));
        if (!g)
            return -VG_ENOMEM;
        b->groups = g;
        g = &b->groups[b->ngroups++];
        memset(g, 0, sizeof(*g));
        g->field = *f;
    }
    if (sig_exact_ok(&rs->m[mid]))
        return sig_hsdb_add(&g->exact, mid);
    if (sig_tail_ok(&rs->m[mid]))
        return sig_hsdb_add(&g->tail, mid);
    if (sig_eq_ok(&rs->m[mid]))
        return sig_hsdb_add(&g->eq, mid);
    return sig_hsdb_add(rs->m[mid].is_re ? &g->re : &g->lit, mid);
}

static int sig_bucket_always(struct sig_bucket *b, uint32_t rule)
{
    if (b->nalways == b->cap_always) {
        size_t cap = b->cap_always ? b->cap_always * 2 : 16;
        uint32_t *a = vg_realloc(b->always, cap * sizeof(*a));
        if (!a)
            return -VG_ENOMEM;
        b->always = a;
        b->cap_always = cap;
    }
    b->always[b->nalways++] = rule;
    return 0;
}

/* Adds rule r's Hyperscan matchers to bucket b (phase 1) or, when always, r itself to b's
 * always list (phase 2). */
static int sig_route(cor_ruleset *rs, struct sig_rule *r, struct sig_bucket *b, int phase)
{
    size_t s, i, f, k;
    int rc;

    if (phase == 2)
        return r->always ? sig_bucket_always(b, r->info.index) : 0;
    for (s = 0; s < r->nsels; s++)
        for (i = 0; i < r->sels[s].n; i++)
            for (f = 0; f < r->sels[s].items[i].n; f++) {
                struct sig_fmatch *fm = &r->sels[s].items[i].fm[f];
                if (fm->field.typed == SIG_FIELD_KEYWORDS)
                    continue;
                for (k = 0; k < fm->n; k++) {
                    struct sig_matcher *m = &rs->m[fm->m[k]];
                    if (m->kind != SIG_M_HS || !m->in_db || m->lazy)
                        continue;
                    if ((rc = sig_group_add(rs, b, &fm->field, fm->m[k])) < 0)
                        return rc;
                }
            }
    return 0;
}

static int sig_route_all(cor_ruleset *rs, int phase)
{
    size_t i, k;
    int os, rc;

    for (i = 0; i < rs->nrules; i++) {
        struct sig_rule *r = rs->rules[i];
        for (os = 0; os < SIG_NOS; os++) {
            if (r->os != VIGIL__OS__OS_UNKNOWN && (int)r->os != os)
                continue;
            if (r->service) {
                struct sig_bucket *b = sig_svc_bucket(rs, (Vigil__Os)os, r->service);
                if (!b)
                    return -VG_ENOMEM;
                if ((rc = sig_route(rs, r, b, phase)) < 0)
                    return rc;
            }
            for (k = 0; k < r->ncats; k++)
                if ((rc = sig_route(rs, r, &rs->cat[os][r->cats[k]], phase)) < 0)
                    return rc;
        }
    }
    return 0;
}

/* One matcher's Hyperscan pattern: its prefilter literal (always caseless: verification
 * is exact), or its `re` regex with its flags. */
struct sig_pat {
    const uint8_t *p;
    size_t n;
    unsigned flags;
    bool re;
    uint32_t mid;
};

static void sig_pat_of(const cor_ruleset *rs, uint32_t mid, struct sig_pat *p)
{
    const struct sig_matcher *m = &rs->m[mid];

    p->mid = mid;
    p->re = m->is_re;
    if (m->is_re) {
        p->p = (const uint8_t *)m->pattern;
        p->n = strlen(m->pattern);
        p->flags = m->hs_flags;
    } else {
        p->p = m->pre;
        p->n = m->npre;
        p->flags = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
    }
}

/* Same pattern (caseless for literals, which are all caseless)? 0 when equal. */
static int sig_pat_key_cmp(const struct sig_pat *x, const struct sig_pat *y)
{
    size_t i;

    if (x->re != y->re)
        return x->re ? 1 : -1;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    if (x->flags != y->flags)
        return x->flags < y->flags ? -1 : 1;
    for (i = 0; i < x->n; i++) {
        uint8_t a = x->re ? x->p[i] : sig_lc(x->p[i]), b = y->re ? y->p[i] : sig_lc(y->p[i]);
        if (a != b)
            return a < b ? -1 : 1;
    }
    return 0;
}

static int sig_pat_cmp(const void *a, const void *b)
{
    const struct sig_pat *x = a, *y = b;
    int c = sig_pat_key_cmp(x, y);

    return c ? c : (x->mid > y->mid) - (x->mid < y->mid);
}

/* Matcher mid leaves the databases: PCRE2 decides it whenever its rule is evaluated. */
static void sig_demote(cor_ruleset *rs, uint32_t mid)
{
    struct sig_matcher *m = &rs->m[mid];

    m->in_db = false;
    if (!m->re && !(m->re = sig_pcre_compile(m->pattern, m->hs_flags)))
        vg_log(VG_LOG_WARN, MOD, "pattern '%s' never matches", m->pattern);
}

/* Groups d's matchers by identical pattern (ids sorted by pattern, first[] the offsets),
 * fills the arrays handed to Hyperscan and returns the number of distinct patterns.
 * A literal in a database that also holds regexes is written as a regex, every byte
 * other than a letter or digit escaped. */
static size_t sig_db_patterns(cor_ruleset *rs, struct sig_hsdb *d, struct sig_pat *pat, bool mixed,
                              char *esc, const char **exprs, size_t *lens, unsigned *flags,
                              unsigned *hsids)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, k, np = 0;

    for (i = 0; i < d->n; i++)
        sig_pat_of(rs, d->ids[i], &pat[i]);
    qsort(pat, d->n, sizeof(*pat), sig_pat_cmp);
    for (i = 0; i < d->n; i++) {
        d->ids[i] = pat[i].mid;
        if (i > 0 && sig_pat_key_cmp(&pat[i - 1], &pat[i]) == 0)
            continue;
        d->first[np] = (uint32_t)i;
        flags[np] = pat[i].flags;
        hsids[np] = (unsigned)np;
        lens[np] = pat[i].n;
        if (pat[i].re || !mixed) {
            exprs[np] = (const char *)pat[i].p;
        } else {
            exprs[np] = esc;
            for (k = 0; k < pat[i].n; k++) {
                uint8_t c = pat[i].p[k];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
                    *esc++ = (char)c;
                } else {
                    *esc++ = '\\';
                    *esc++ = 'x';
                    *esc++ = hex[c >> 4];
                    *esc++ = hex[c & 15];
                }
            }
            *esc++ = 0;
        }
        np++;
    }
    d->first[np] = (uint32_t)d->n;
    d->npat = np;
    return np;
}

/* Compiles one database: identical patterns of several matchers become one Hyperscan
 * pattern (one report instead of one per rule: Hyperscan's cost per reported match, not
 * per byte, dominated the scans). Literals alone go through the literal API; with regexes
 * all are compiled as regexes. A pattern Hyperscan refuses in company (each was accepted
 * alone at compile time) is moved to PCRE2 and the rest compiled again. */
static int sig_db_compile(cor_ruleset *rs, const struct sig_group *g, struct sig_hsdb *d)
{
    struct sig_pat *pat = vg_malloc((d->n + 1) * sizeof(*pat));
    const char **exprs = vg_malloc((d->n + 1) * sizeof(*exprs));
    size_t *lens = vg_malloc((d->n + 1) * sizeof(*lens));
    unsigned *flags = vg_malloc((d->n + 1) * sizeof(*flags));
    unsigned *hsids = vg_malloc((d->n + 1) * sizeof(*hsids));
    char *esc = NULL;
    size_t i, esclen = 1;
    bool mixed = false;
    int rc = 0;

    d->first = vg_malloc((d->n + 1) * sizeof(*d->first));
    for (i = 0; i < d->n; i++) {
        const struct sig_matcher *m = &rs->m[d->ids[i]];
        mixed |= m->is_re;
        esclen += m->is_re ? 0 : 4 * m->npre + 1;
    }
    if (mixed)
        esc = vg_malloc(esclen);
    if (!pat || !exprs || !lens || !flags || !hsids || !d->first || (mixed && !esc)) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    while (d->n > 0) {
        hs_compile_error_t *ce = NULL;
        size_t np = sig_db_patterns(rs, d, pat, mixed, esc, exprs, lens, flags, hsids);
        hs_error_t e;
        size_t bad, from, to;

        if (!mixed && np <= SIG_DIRECT_MAX) {
            d->direct = true;
            break;
        }
        if (mixed)
            e = hs_compile_multi(exprs, flags, hsids, (unsigned)np, HS_MODE_BLOCK, NULL, &d->db,
                                 &ce);
        else
            e = hs_compile_lit_multi(exprs, flags, hsids, lens, (unsigned)np, HS_MODE_BLOCK, NULL,
                                     &d->db, &ce);
        if (e == HS_SUCCESS)
            break;
        bad = ce && ce->expression >= 0 && (size_t)ce->expression < np ? (size_t)ce->expression
                                                                       : np - 1;
        vg_log(VG_LOG_WARN, MOD, "Hyperscan refused pattern '%.*s' of field %s: %s", (int)lens[bad],
               exprs[bad], g->field.name, ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        d->db = NULL;
        from = d->first[bad];
        to = d->first[bad + 1];
        for (i = from; i < to; i++)
            sig_demote(rs, d->ids[i]);
        memmove(d->ids + from, d->ids + to, (d->n - to) * sizeof(*d->ids));
        d->n -= to - from;
        d->npat = 0;
    }
out_free:
    vg_free(pat);
    vg_free(exprs);
    vg_free(lens);
    vg_free(flags);
    vg_free(hsids);
    vg_free(esc);
    return rc;
}

/* Groups the exact set's matchers by pattern (as for a database) and fills its table. */
static int sig_exact_compile(cor_ruleset *rs, struct sig_hsdb *d)
{
    struct sig_pat *pat = vg_malloc((d->n + 1) * sizeof(*pat));
    const char **exprs = vg_malloc((d->n + 1) * sizeof(*exprs));
    size_t *lens = vg_malloc((d->n + 1) * sizeof(*lens));
    unsigned *flags = vg_malloc((d->n + 1) * sizeof(*flags));
    unsigned *hsids = vg_malloc((d->n + 1) * sizeof(*hsids));
    size_t np, p, k, size = 4;
    int rc = -VG_ENOMEM;

    d->first = vg_malloc((d->n + 1) * sizeof(*d->first));
    if (!pat || !exprs || !lens || !flags || !hsids || !d->first)
        goto out;
    np = sig_db_patterns(rs, d, pat, false, NULL, exprs, lens, flags, hsids);
    while (size < 2 * np)
        size *= 2;
    d->key = vg_malloc((np + 1) * sizeof(*d->key));
    d->klen = vg_malloc((np + 1) * sizeof(*d->klen));
    d->htab = vg_malloc(size * sizeof(*d->htab));
    if (!d->key || !d->klen || !d->htab)
        goto out;
    d->hmask = (uint32_t)(size - 1);
    memset(d->htab, 0xff, size * sizeof(*d->htab)); /* SIG_EXACT_EMPTY */
    for (p = 0; p < np; p++) {
        uint8_t *low = vg_arena_alloc(rs->arena, lens[p] + 1);
        uint32_t h, hash;
        if (!low)
            goto out;
        for (k = 0; k < lens[p]; k++)
            low[k] = sig_lc((uint8_t)exprs[p][k]);
        d->key[p] = low;
        d->klen[p] = (uint32_t)lens[p];
        if (lens[p] > d->maxlen)
            d->maxlen = (uint32_t)lens[p];
        d->lenmap[lens[p] / 64] |= UINT64_C(1) << (lens[p] % 64);
        hash = sig_exact_hash(low, lens[p]);
        for (h = hash & d->hmask; d->htab[h] != SIG_EXACT_EMPTY; h = (h + 1) & d->hmask)
            ;
        d->htab[h] = (uint64_t)hash << 32 | p;
    }
    rc = 0;
out:
    vg_free(pat);
    vg_free(exprs);
    vg_free(lens);
    vg_free(flags);
    vg_free(hsids);
    return rc;
}

/* g's anchored-set shapes; false when there are more than SIG_EQ_MAXSHAPES. */
static bool sig_eq_shapes(const cor_ruleset *rs, struct sig_group *g)
{
    size_t i, j;

    g->eq_n = 0;
    for (i = 0; i < g->eq.n; i++) {
        const struct sig_matcher *m = &rs->m[g->eq.ids[i]];
        size_t k = (size_t)((const uint8_t *)memchr(m->pre, '=', m->npre) - m->pre);
        size_t h = m->npre - k - 1;
        for (j = 0; j < g->eq_n && (g->eq_k[j] != k || g->eq_h[j] != h); j++)
            ;
        if (j < g->eq_n) {
            if (g->eq_name[j] && !sig_eq_caseless(g->eq_name[j], m->pre, k))
                g->eq_name[j] = NULL; /* names differ: no filter by name */
            continue;
        }
        if (g->eq_n == SIG_EQ_MAXSHAPES || k > UINT8_MAX || h > UINT8_MAX)
            return false;
        g->eq_k[g->eq_n] = (uint8_t)k;
        g->eq_name[g->eq_n] = m->pre;
        g->eq_h[g->eq_n++] = (uint8_t)h;
    }
    return true;
}

/* A small lookup set goes back into the field's literal database when that is scanned
 * anyway; an anchored set of too many shapes always does (one lookup a shape at every
 * '=' of a value would cost more than the scan). */
static int sig_set_fold(const cor_ruleset *rs, struct sig_group *g, struct sig_hsdb *set)
{
    size_t k;
    int rc = 0;

    if (set->n > 0 && ((set == &g->eq && !sig_eq_shapes(rs, g)) ||
                       (set->n < SIG_EXACT_MIN && g->lit.n > SIG_DIRECT_MAX))) {
        for (k = 0; k < set->n && rc == 0; k++)
            rc = sig_hsdb_add(&g->lit, set->ids[k]);
        set->n = 0;
    }
    return rc;
}

static bool sig_comb_type(int typed)
{
    return typed >= 0 && typed != VG_F_COMMAND_LINE && typed != VG_F_PARENT_COMMAND_LINE &&
           typed != VG_F_HASHES;
}

static int sig_group_compile(cor_ruleset *rs, struct sig_group *g)
{
    int rc = sig_set_fold(rs, g, &g->exact);
    size_t k, p;

    /* A field never in the combined database (a command line) is scanned once for its
     * literals and regexes together: the second scan's fixed cost was more than what the
     * literals lose by being compiled as regexes (callgrind: 4.4 M of 166 M fewer). */
    if (!sig_comb_type(g->field.typed) && g->re.n > 0 && g->lit.n > 0) {
        for (k = 0; k < g->re.n && rc == 0; k++)
            rc = sig_hsdb_add(&g->lit, g->re.ids[k]);
        g->re.n = 0;
    }

    if (rc == 0)
        rc = sig_set_fold(rs, g, &g->tail);
    if (rc == 0)
        rc = sig_set_fold(rs, g, &g->eq);
    if (rc == 0)
        rc = sig_db_compile(rs, g, &g->lit);
    if (rc == 0 && g->exact.n > 0)
        rc = sig_exact_compile(rs, &g->exact);
    if (rc == 0 && g->tail.n > 0 && (rc = sig_exact_compile(rs, &g->tail)) == 0)
        for (p = 0; p < g->tail.npat; p++)
            for (k = 0; k < SIG_TAIL_NSEP; k++)
                g->tail_seps |= (uint8_t)((g->tail.key[p][0] == sig_tail_sep[k]) << k);
    if (rc == 0 && g->eq.n > 0)
        rc = sig_exact_compile(rs, &g->eq);
    return rc < 0 ? rc : sig_db_compile(rs, g, &g->re);
}

static int sig_compile_bucket(cor_ruleset *rs, struct sig_bucket *b)
{
    size_t i;
    int rc;

    for (i = 0; i < b->ngroups; i++)
        if ((rc = sig_group_compile(rs, &b->groups[i])) < 0)
            return rc;
    return 0;
}

/* ---- what a hit does ---------------------------------------------------------------- */

static int sig_hsdb_acts(cor_ruleset *rs, struct sig_hsdb *d)
{
    size_t k;

    vg_free(d->act);
    d->act = NULL;
    if (d->n == 0)
        return 0;
    if (!(d->act = vg_malloc(d->n * sizeof(*d->act))))
        return -VG_ENOMEM;
    for (k = 0; k < d->n; k++) {
        uint32_t mid = d->ids[k];
        const struct sig_matcher *m = &rs->m[mid];
        d->act[k] = (struct sig_act){mid, m->rule, m->clmask, m->trigger};
    }
    return 0;
}

static int sig_bucket_acts(cor_ruleset *rs, struct sig_bucket *b)
{
    size_t i;
    int rc;

    for (i = 0; i < b->ngroups; i++)
        if ((rc = sig_hsdb_acts(rs, &b->groups[i].lit)) < 0 ||
            (rc = sig_hsdb_acts(rs, &b->groups[i].exact)) < 0 ||
            (rc = sig_hsdb_acts(rs, &b->groups[i].tail)) < 0 ||
            (rc = sig_hsdb_acts(rs, &b->groups[i].eq)) < 0 ||
            (rc = sig_hsdb_acts(rs, &b->groups[i].re)) < 0)
            return rc;
    return 0;
}

/* Applies fn to every bucket, categories of each OS then services; stops at an error. */
static int sig_each_bucket(cor_ruleset *rs, int (*fn)(cor_ruleset *, struct sig_bucket *))
{
    size_t i;
    int os, c, rc;

    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            if ((rc = fn(rs, &rs->cat[os][c])) < 0)
                return rc;
    for (i = 0; i < rs->nsvc; i++)
        if ((rc = fn(rs, &rs->svc[i])) < 0)
            return rc;
    return 0;
}

int sig_build_acts(cor_ruleset *rs)
{
    return sig_each_bucket(rs, sig_bucket_acts);
}

/* ---- one database for a bucket's short fields --------------------------------------- */

static bool sig_comb_field(const struct sig_group *g)
{
    return g->lit.db && !g->lit.direct && sig_comb_type(g->field.typed);
}

struct sig_cpat {
    struct sig_pat p;
    uint32_t grp;
    uint32_t k; /* index into the group's lit ids / act */
};

static int sig_cpat_cmp(const void *a, const void *b)
{
    const struct sig_cpat *x = a, *y = b;
    int c = sig_pat_key_cmp(&x->p, &y->p);

    if (c)
        return c;
    if (x->grp != y->grp)
        return x->grp < y->grp ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

static void sig_comb_free(struct sig_bucket *b)
{
    hs_free_database(b->comb.db);
    vg_free(b->comb.act);
    vg_free(b->comb.run);
    vg_free(b->comb.first);
    vg_free(b->comb.plen);
    vg_free(b->in_comb);
    memset(&b->comb, 0, sizeof(b->comb));
    b->in_comb = NULL;
}

static int sig_comb_bucket(cor_ruleset *rs, struct sig_bucket *b)
{
    struct sig_comb *c = &b->comb;
    struct sig_cpat *cp = NULL;
    const char **exprs = NULL;
    size_t *lens = NULL;
    unsigned *flags = NULL, *hsids = NULL;
    hs_compile_error_t *ce = NULL;
    size_t i, k, n = 0, np = 0, nrun = 0, ng = 0;
    int rc = -VG_ENOMEM;

    for (i = 0; i < b->ngroups; i++)
        if (sig_comb_field(&b->groups[i])) {
            n += b->groups[i].lit.n;
            ng++;
        }
    if (ng < 2)
        return 0;
    cp = vg_malloc(n * sizeof(*cp));
    exprs = vg_malloc(n * sizeof(*exprs));
    lens = vg_malloc(n * sizeof(*lens));
    flags = vg_malloc(n * sizeof(*flags));
    hsids = vg_malloc(n * sizeof(*hsids));
    c->act = vg_malloc(n * sizeof(*c->act));
    c->run = vg_malloc(n * sizeof(*c->run));
    c->first = vg_malloc((n + 1) * sizeof(*c->first));
    c->plen = vg_malloc(n * sizeof(*c->plen));
    b->in_comb = vg_calloc(b->ngroups, sizeof(*b->in_comb));
    if (!cp || !exprs || !lens || !flags || !hsids || !c->act || !c->run || !c->first || !c->plen ||
        !b->in_comb)
        goto out;
    for (i = 0, n = 0; i < b->ngroups; i++) {
        if (!sig_comb_field(&b->groups[i]))
            continue;
        b->in_comb[i] = true;
        for (k = 0; k < b->groups[i].lit.n; k++) {
            sig_pat_of(rs, b->groups[i].lit.ids[k], &cp[n].p);
            cp[n].grp = (uint32_t)i;
            cp[n++].k = (uint32_t)k;
        }
    }
    qsort(cp, n, sizeof(*cp), sig_cpat_cmp);
    for (i = 0; i < n; i++) {
        bool same = i > 0 && sig_pat_key_cmp(&cp[i - 1].p, &cp[i].p) == 0;
        c->act[i] = b->groups[cp[i].grp].lit.act[cp[i].k];
        if (same && cp[i - 1].grp == cp[i].grp) {
            c->run[nrun - 1].act_to++;
            continue;
        }
        c->run[nrun++] = (struct sig_crun){cp[i].grp, (uint32_t)i, (uint32_t)i + 1};
        if (same)
            continue;
        c->first[np] = (uint32_t)nrun - 1;
        c->plen[np] = (uint32_t)cp[i].p.n;
        exprs[np] = (const char *)cp[i].p.p;
        lens[np] = cp[i].p.n;
        flags[np] = HS_FLAG_CASELESS;
        hsids[np] = (unsigned)np;
        np++;
    }
    c->first[np] = (uint32_t)nrun;
    c->npat = np;
    if (hs_compile_lit_multi(exprs, flags, hsids, lens, (unsigned)np, HS_MODE_BLOCK, NULL, &c->db,
                             &ce) != HS_SUCCESS) {
        vg_log(VG_LOG_WARN, MOD, "one database for a route's fields: %s; scanning by field",
               ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        c->db = NULL;
        sig_comb_free(b);
    } else {
        for (i = 0; i < b->ngroups; i++)
            if (b->in_comb[i]) { /* never scanned again: the combined one answers */
                hs_free_database(b->groups[i].lit.db);
                b->groups[i].lit.db = NULL;
            }
    }
    rc = 0;
out:
    if (rc < 0)
        sig_comb_free(b);
    vg_free(cp);
    vg_free(exprs);
    vg_free(lens);
    vg_free(flags);
    vg_free(hsids);
    return rc;
}

/* Which of the bucket's groups the memo keeps values of (sig_group.memo). */
static int sig_memo_bucket(cor_ruleset *rs, struct sig_bucket *b)
{
    size_t i;

    (void)rs;
    for (i = 0; i < b->ngroups; i++) {
        struct sig_group *g = &b->groups[i];
        g->memo =
            (b->in_comb && b->in_comb[i]) || g->lit.db || g->re.db || g->tail.htab || g->eq.htab;
    }
    return 0;
}

int sig_build_comb(cor_ruleset *rs)
{
    int rc = sig_each_bucket(rs, sig_comb_bucket);

    return rc < 0 ? rc : sig_each_bucket(rs, sig_memo_bucket);
}

static void sig_mark_triggers(cor_ruleset *rs, const struct sig_rule *r, const struct sig_cnode *c,
                              bool positive)
{
    size_t i, f, k;

    if (c->kind == SIG_C_NOT) {
        sig_mark_triggers(rs, r, c->kids[0], !positive);
    } else if (c->kind == SIG_C_SEL) {
        const struct sig_sel *sel = &r->sels[c->sel];
        for (i = 0; positive && i < sel->n; i++)
            for (f = 0; f < sel->items[i].n; f++)
                for (k = 0; k < sel->items[i].fm[f].n; k++)
                    rs->m[sel->items[i].fm[f].m[k]].trigger = true;
    } else {
        for (i = 0; i < c->n; i++)
            sig_mark_triggers(rs, r, c->kids[i], positive);
    }
}

/* Every matcher learns the field it reads (matchers are never shared between entries). */
static void sig_set_fields(cor_ruleset *rs)
{
    size_t r, s, i, f, k;

    for (r = 0; r < rs->nrules; r++) {
        const struct sig_rule *ru = rs->rules[r];
        for (s = 0; s < ru->nsels; s++)
            for (i = 0; i < ru->sels[s].n; i++)
                for (f = 0; f < ru->sels[s].items[i].n; f++) {
                    const struct sig_fmatch *fm = &ru->sels[s].items[i].fm[f];
                    for (k = 0; k < fm->n; k++)
                        rs->m[fm->m[k]].field = &fm->field;
                }
    }
}

/* Triggers from the condition trees alone (every positive matcher), no required hits. */
static void sig_reset_triggers(cor_ruleset *rs)
{
    size_t i;

    for (i = 0; i < rs->nm; i++) {
        rs->m[i].trigger = false;
        rs->m[i].lazy = false;
    }
    for (i = 0; i < rs->nrules; i++) {
        rs->rules[i]->nreq = 0;
        sig_mark_triggers(rs, rs->rules[i], rs->rules[i]->cond, true);
    }
}

/* A prefiltered matcher that wakes no rule is checked on demand instead of scanned for:
 * filters, and the matchers of a later required-hit clause (sigma_req.c) of at most
 * SIG_LAZY_CLAUSE_MAX matchers; those are searched for only when clause 0 woke the rule.
 * Wider clauses stay scanned (making all of them lazy cost as much as it saved: 1.8 M
 * searches a bench pass), except their literals of at most SIG_LAZY_SHORT bytes: those
 * ("-r", "os", " ") hit most command lines, so scanning for them costs a report on
 * nearly every event, more than searching for them when the rule is woken.
 * A lazy regex is looked for with a Hyperscan database of its own, compiled with the
 * same flags (the same semantics as the scan); PCRE2 was tried: it backtracks on
 * '\+.*\+.*...' and cost eight times the whole evaluation. Regexes were a third of the
 * CommandLine scan's cost, mostly later clauses' ('.{1000,}', '\s-c\s'). */
#define SIG_LAZY_CLAUSE_MAX 4u
#define SIG_LAZY_SHORT      2u

static bool sig_lazy_short(const struct sig_matcher *m)
{
    return !m->is_re && m->npre <= SIG_LAZY_SHORT;
}

static bool sig_may_be_lazy(struct sig_matcher *m)
{
    hs_compile_error_t *ce = NULL;

    if (m->kind != SIG_M_HS || !m->in_db || m->trigger || !m->field ||
        m->field->typed == SIG_FIELD_KEYWORDS)
        return false;
    if (!m->is_re)
        return m->npre > 0;
    /* Compiled once and kept (freed with the index): a later round of sig_build_index may
     * scan it again. */
    if (!m->lazy_db &&
        hs_compile(m->pattern, m->hs_flags, HS_MODE_BLOCK, NULL, &m->lazy_db, &ce) != HS_SUCCESS) {
        hs_free_compile_error(ce);
        m->lazy_db = NULL;
    }
    return m->lazy_db != NULL;
}

static int sig_mark_lazy(cor_ruleset *rs)
{
    bool *inreq = vg_calloc(rs->nm + 1, sizeof(*inreq));
    size_t i, k;

    if (!inreq)
        return -VG_ENOMEM;
    for (i = 0; i < rs->nrules; i++) {
        const struct sig_rule *r = rs->rules[i];
        uint32_t c;
        for (c = 0; c < r->nreq; c++) {
            if (c > 0 && r->req_off[c + 1] - r->req_off[c] <= SIG_LAZY_CLAUSE_MAX)
                continue;
            for (k = r->req_off[c]; k < r->req_off[c + 1]; k++)
                if (c == 0 || !sig_lazy_short(&rs->m[r->req[k]]))
                    inreq[r->req[k]] = true;
        }
    }
    for (i = 0; i < rs->nm; i++)
        rs->m[i].lazy = !inreq[i] && sig_may_be_lazy(&rs->m[i]);
    vg_free(inreq);
    return 0;
}

static size_t sig_count_in_db(const cor_ruleset *rs)
{
    size_t i, n = 0;

    for (i = 0; i < rs->nm; i++)
        n += rs->m[i].in_db;
    return n;
}

static void sig_set_free(struct sig_hsdb *d)
{
    vg_free(d->act);
    vg_free(d->ids);
    vg_free(d->first);
    vg_free(d->key);
    vg_free(d->klen);
    vg_free(d->htab);
}

static void sig_bucket_free_groups(struct sig_bucket *b)
{
    size_t i;

    for (i = 0; i < b->ngroups; i++) {
        hs_free_database(b->groups[i].lit.db);
        hs_free_database(b->groups[i].re.db);
        sig_set_free(&b->groups[i].exact);
        sig_set_free(&b->groups[i].tail);
        sig_set_free(&b->groups[i].eq);
        vg_free(b->groups[i].lit.act);
        vg_free(b->groups[i].re.act);
        vg_free(b->groups[i].lit.ids);
        vg_free(b->groups[i].re.ids);
        vg_free(b->groups[i].lit.first);
        vg_free(b->groups[i].re.first);
    }
    vg_free(b->groups);
    b->groups = NULL;
    b->ngroups = 0;
    sig_comb_free(b);
}

static void sig_free_groups(cor_ruleset *rs)
{
    size_t i;
    int os, c;

    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            sig_bucket_free_groups(&rs->cat[os][c]);
    for (i = 0; i < rs->nsvc; i++)
        sig_bucket_free_groups(&rs->svc[i]);
}

/* Routes the scanned matchers and compiles every bucket's databases. */
static int sig_compile_all(cor_ruleset *rs)
{
    int rc = sig_route_all(rs, 1);

    return rc < 0 ? rc : sig_each_bucket(rs, sig_compile_bucket);
}

int sig_build_index(struct cor_ruleset *rs, char *err, size_t errlen)
{
    size_t i;
    int rc;

    sig_set_fields(rs);
    if ((rc = sig_assign_slots(rs)) < 0) /* before routing: groups copy the field refs */
        goto out_err;
    /* Required hits decide the triggers, triggers decide what is scanned for; a pattern
     * Hyperscan then refuses (moved to PCRE2) is no longer prefiltered, which changes the
     * required hits: start again without it. Each round moves at least one pattern out
     * for good, so this ends (in practice after one round). */
    for (;;) {
        size_t before = sig_count_in_db(rs);
        sig_reset_triggers(rs);
        if ((rc = sig_build_req(rs)) < 0)
            goto out_err;
        if ((rc = sig_mark_lazy(rs)) < 0)
            goto out_err;
        if ((rc = sig_compile_all(rs)) < 0)
            goto out_err;
        if (sig_count_in_db(rs) == before)
            break;
        sig_free_groups(rs);
    }
    if ((rc = sig_build_clauses(rs)) < 0 || (rc = sig_build_acts(rs)) < 0 ||
        (rc = sig_build_comb(rs)) < 0)
        goto out_err;
    for (i = 0; i < rs->nrules; i++)
        rs->rules[i]->always = sig_rule_may_match_without_hits(rs, rs->rules[i]);
    if ((rc = sig_route_all(rs, 2)) < 0)
        goto out_err;
    return 0;

out_err:
    snprintf(err, errlen, "building the rule index: %s", vg_strerror(rc));
    return rc;
}

static void sig_bucket_free(struct sig_bucket *b)
{
    sig_bucket_free_groups(b);
    vg_free(b->always);
    memset(b, 0, sizeof(*b));
}

void sig_free_index(struct cor_ruleset *rs)
{
    size_t i;
    int os, c;

    for (i = 0; i < rs->nm; i++) {
        hs_free_database(rs->m[i].lazy_db);
        rs->m[i].lazy_db = NULL;
    }
    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            sig_bucket_free(&rs->cat[os][c]);
    for (i = 0; i < rs->nsvc; i++)
        sig_bucket_free(&rs->svc[i]);
    vg_free(rs->svc);
    rs->svc = NULL;
    rs->nsvc = 0;
    sig_free_clauses(rs);
    vg_free(rs->slot_name);
    rs->slot_name = NULL;
    rs->nslots = 0;
}
