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

static int sig_group_add(struct sig_bucket *b, const struct sig_fref *f, uint32_t mid)
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
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        uint32_t *ids = vg_realloc(g->ids, cap * sizeof(*ids));
        if (!ids)
            return -VG_ENOMEM;
        g->ids = ids;
        g->cap = cap;
    }
    g->ids[g->n++] = mid;
    return 0;
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
                    if (m->kind != SIG_M_HS || m->re)
                        continue;
                    if ((rc = sig_group_add(b, &fm->field, fm->m[k])) < 0)
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

/* Compiles one group. A pattern Hyperscan refuses is moved to PCRE2 (its rule then
 * evaluates it directly) and the rest is compiled again. */
static int sig_group_compile(cor_ruleset *rs, struct sig_group *g)
{
    const char **pats = vg_malloc((g->n + 1) * sizeof(*pats));
    unsigned *flags = vg_malloc((g->n + 1) * sizeof(*flags));
    unsigned *ids = vg_malloc((g->n + 1) * sizeof(*ids));
    int rc = 0;

    if (!pats || !flags || !ids) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    while (g->n > 0) {
        hs_compile_error_t *ce = NULL;
        size_t i;
        int bad;
        for (i = 0; i < g->n; i++) {
            pats[i] = rs->m[g->ids[i]].pattern;
            flags[i] = rs->m[g->ids[i]].hs_flags;
            ids[i] = (unsigned)i;
        }
        if (hs_compile_multi(pats, flags, ids, (unsigned)g->n, HS_MODE_BLOCK, NULL, &g->db, &ce) ==
            HS_SUCCESS)
            break;
        bad = ce ? ce->expression : -1;
        vg_log(VG_LOG_WARN, MOD, "Hyperscan refused pattern %d of field %s: %s", bad, g->field.name,
               ce && ce->message ? ce->message : "?");
        hs_free_compile_error(ce);
        g->db = NULL;
        if (bad < 0 || (size_t)bad >= g->n) {
            /* Not attributable to one pattern: everything goes to PCRE2. */
            for (i = 0; i < g->n; i++) {
                struct sig_matcher *m = &rs->m[g->ids[i]];
                if (!m->re && !(m->re = sig_pcre_compile(m->pattern, m->hs_flags)))
                    vg_log(VG_LOG_WARN, MOD, "pattern '%s' never matches", m->pattern);
            }
            g->n = 0;
            break;
        }
        {
            struct sig_matcher *m = &rs->m[g->ids[bad]];
            if (!m->re)
                m->re = sig_pcre_compile(m->pattern, m->hs_flags);
            g->ids[bad] = g->ids[--g->n];
        }
    }
out_free:
    vg_free(pats);
    vg_free(flags);
    vg_free(ids);
    return rc;
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

int sig_build_index(struct cor_ruleset *rs, char *err, size_t errlen)
{
    size_t i;
    int os, c, rc;

    if ((rc = sig_route_all(rs, 1)) < 0)
        goto out_err;
    for (os = 0; os < SIG_NOS; os++)
        for (c = 0; c < VG_CAT__COUNT; c++)
            if ((rc = sig_compile_bucket(rs, &rs->cat[os][c])) < 0)
                goto out_err;
    for (i = 0; i < rs->nsvc; i++)
        if ((rc = sig_compile_bucket(rs, &rs->svc[i])) < 0)
            goto out_err;
    /* Only now: a pattern moved to PCRE2 above can make its rule one that must always run. */
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
        hs_free_database(b->groups[i].db);
        vg_free(b->groups[i].ids);
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
}
