/*
 * sigma_index.c - routes compiled rules to (os, category) and (os, service) buckets and
 * compiles, per bucket and field, the string matchers of all its rules into one Hyperscan
 * database. Also knows which fields vigil's own telemetry supplies per category.
 *
 * THREAD SAFETY: load time only, on the loading thread.
 */
#include <stdio.h>
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
                    if (m->kind != SIG_M_HS || !m->in_db)
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

/* The literal database: prefilter literals, all caseless (verification is exact). */
static int sig_lit_compile(cor_ruleset *rs, struct sig_group *g)
{
    struct sig_hsdb *d = &g->lit;
    const char **pats = vg_malloc((d->n + 1) * sizeof(*pats));
    unsigned *flags = vg_malloc((d->n + 1) * sizeof(*flags));
    unsigned *ids = vg_malloc((d->n + 1) * sizeof(*ids));
    size_t *lens = vg_malloc((d->n + 1) * sizeof(*lens));
    hs_compile_error_t *ce = NULL;
    size_t i;
    int rc = 0;

    if (!pats || !flags || !ids || !lens) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    for (i = 0; i < d->n; i++) {
        pats[i] = (const char *)rs->m[d->ids[i]].pre;
        lens[i] = rs->m[d->ids[i]].npre;
        flags[i] = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
        ids[i] = (unsigned)i;
    }
    if (d->n && hs_compile_lit_multi(pats, flags, ids, lens, (unsigned)d->n, HS_MODE_BLOCK, NULL,
                                     &d->db, &ce) != HS_SUCCESS) {
        /* Cannot happen for literals; stay correct anyway: evaluate them directly. */
        vg_log(VG_LOG_ERROR, MOD, "Hyperscan refused the literals of field %s: %s", g->field.name,
               ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        d->db = NULL;
        for (i = 0; i < d->n; i++) {
            struct sig_matcher *m = &rs->m[d->ids[i]];
            m->in_db = false;
            if (!m->re && !(m->re = sig_pcre_compile(m->pattern, m->hs_flags)))
                vg_log(VG_LOG_WARN, MOD, "pattern '%s' never matches", m->pattern);
        }
        d->n = 0;
    }
out_free:
    vg_free(pats);
    vg_free(flags);
    vg_free(ids);
    vg_free(lens);
    return rc;
}

/* The regex database of `re` values. A pattern Hyperscan refuses in company (each was
 * accepted alone at compile time) is moved to PCRE2 and the rest compiled again. */
static int sig_re_compile(cor_ruleset *rs, struct sig_group *g)
{
    struct sig_hsdb *d = &g->re;
    const char **pats = vg_malloc((d->n + 1) * sizeof(*pats));
    unsigned *flags = vg_malloc((d->n + 1) * sizeof(*flags));
    unsigned *ids = vg_malloc((d->n + 1) * sizeof(*ids));
    int rc = 0;

    if (!pats || !flags || !ids) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    while (d->n > 0) {
        hs_compile_error_t *ce = NULL;
        struct sig_matcher *m;
        size_t i;
        int bad;
        for (i = 0; i < d->n; i++) {
            pats[i] = rs->m[d->ids[i]].pattern;
            flags[i] = rs->m[d->ids[i]].hs_flags;
            ids[i] = (unsigned)i;
        }
        if (hs_compile_multi(pats, flags, ids, (unsigned)d->n, HS_MODE_BLOCK, NULL, &d->db, &ce) ==
            HS_SUCCESS)
            break;
        bad = ce && ce->expression >= 0 && (size_t)ce->expression < d->n ? ce->expression
                                                                         : (int)d->n - 1;
        vg_log(VG_LOG_WARN, MOD, "Hyperscan refused regex '%s' of field %s: %s", pats[bad],
               g->field.name, ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        d->db = NULL;
        m = &rs->m[d->ids[bad]];
        m->in_db = false;
        if (!m->re && !(m->re = sig_pcre_compile(m->pattern, m->hs_flags)))
            vg_log(VG_LOG_WARN, MOD, "pattern '%s' never matches", m->pattern);
        d->ids[bad] = d->ids[--d->n];
    }
out_free:
    vg_free(pats);
    vg_free(flags);
    vg_free(ids);
    return rc;
}

static int sig_group_compile(cor_ruleset *rs, struct sig_group *g)
{
    int rc = sig_lit_compile(rs, g);

    return rc < 0 ? rc : sig_re_compile(rs, g);
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

int sig_build_index(struct cor_ruleset *rs, char *err, size_t errlen)
{
    size_t i;
    int os, c, rc;

    for (i = 0; i < rs->nrules; i++)
        sig_mark_triggers(rs, rs->rules[i], rs->rules[i]->cond, true);
    if ((rc = sig_assign_slots(rs)) < 0) /* before routing: groups copy the field refs */
        goto out_err;
    if ((rc = sig_route_all(rs, 1)) < 0)
        goto out_err;
    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            if ((rc = sig_compile_bucket(rs, &rs->cat[os][c])) < 0)
                goto out_err;
    for (i = 0; i < rs->nsvc; i++)
        if ((rc = sig_compile_bucket(rs, &rs->svc[i])) < 0)
            goto out_err;
    /* Only now: a pattern moved to PCRE2 above is no longer prefiltered. */
    if ((rc = sig_build_req(rs)) < 0)
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
    size_t i;

    for (i = 0; i < b->ngroups; i++) {
        hs_free_database(b->groups[i].lit.db);
        hs_free_database(b->groups[i].re.db);
        vg_free(b->groups[i].lit.ids);
        vg_free(b->groups[i].re.ids);
    }
    vg_free(b->groups);
    vg_free(b->always);
    memset(b, 0, sizeof(*b));
}

void sig_free_index(struct cor_ruleset *rs)
{
    size_t i;
    int os, c;

    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            sig_bucket_free(&rs->cat[os][c]);
    for (i = 0; i < rs->nsvc; i++)
        sig_bucket_free(&rs->svc[i]);
    vg_free(rs->svc);
    rs->svc = NULL;
    rs->nsvc = 0;
    vg_free(rs->slot_name);
    rs->slot_name = NULL;
    rs->nslots = 0;
}
