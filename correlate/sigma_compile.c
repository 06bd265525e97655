/*
 * sigma_compile.c - turns a Sigma detection into selections, matchers and a condition tree,
 * and builds the per-route Hyperscan databases that decide every string matcher of every
 * rule with one scan per event field.
 *
 * THREAD SAFETY: load time only, on the loading thread.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <yaml.h>

#include "sigma_int.h"
#include "yaml_int.h"

#define MOD "sigma"

/* Modifiers of one `field|...` key. */
struct sig_mods {
    enum sig_pos pos;
    bool all, re, re_i, re_m, re_s, cased, windash, cidr, exists, fieldref, num;
    bool list; /* the field is a list (vg_field_is_list): match one element */
    enum sig_numop op;
    const char *enc[4]; /* value transforms in order: base64, base64offset, utf16le, ... */
    size_t nenc;
};

/* A value as a token list: literal bytes, '*' and '?'. */
enum sig_tok { SIG_T_LIT, SIG_T_STAR, SIG_T_QMARK };
struct sig_val {
    uint8_t *b; /* bytes (for literals) */
    uint8_t *t; /* enum sig_tok per position */
    size_t n;
    size_t cap;
};

/* A growable string for building regexes. */
struct sig_buf {
    char *p;
    size_t n, cap;
    bool oom;
};

struct sig_cctx {
    cor_ruleset *rs;
    struct sig_rule *r;
    yaml_document_t *doc;
    char *why;
    size_t whylen;
};

/* ---- growable helpers ------------------------------------------------------------- */

static void sig_buf_put(struct sig_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *p = vg_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sig_buf_str(struct sig_buf *b, const char *s)
{
    sig_buf_put(b, s, strlen(s));
}

static void sig_buf_byte(struct sig_buf *b, uint8_t c)
{
    char x[8];

    if (isalnum(c) || c == '_') {
        x[0] = (char)c;
        sig_buf_put(b, x, 1);
    } else {
        snprintf(x, sizeof(x), "\\x%02x", c);
        sig_buf_put(b, x, 4);
    }
}

static int sig_val_push(struct sig_val *v, uint8_t b, enum sig_tok t)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint8_t *nb = vg_realloc(v->b, cap), *nt;
        if (!nb)
            return -VG_ENOMEM;
        v->b = nb;
        nt = vg_realloc(v->t, cap);
        if (!nt)
            return -VG_ENOMEM;
        v->t = nt;
        v->cap = cap;
    }
    v->b[v->n] = b;
    v->t[v->n++] = (uint8_t)t;
    return 0;
}

static void sig_val_free(struct sig_val *v)
{
    vg_free(v->b);
    vg_free(v->t);
    memset(v, 0, sizeof(*v));
}

static int sig_new_matcher(struct sig_cctx *c, enum sig_mkind kind, uint32_t *id)
{
    cor_ruleset *rs = c->rs;

    if (rs->nm == rs->cap_m) {
        size_t cap = rs->cap_m ? rs->cap_m * 2 : 1024;
        struct sig_matcher *m = vg_realloc(rs->m, cap * sizeof(*m));
        if (!m)
            return -VG_ENOMEM;
        rs->m = m;
        rs->cap_m = cap;
    }
    memset(&rs->m[rs->nm], 0, sizeof(rs->m[0]));
    rs->m[rs->nm].kind = kind;
    rs->m[rs->nm].rule = c->r->info.index;
    *id = (uint32_t)rs->nm++;
    return 0;
}

static int sig_unsup(struct sig_cctx *c, int rc, const char *fmt, const char *arg)
{
    snprintf(c->why, c->whylen, fmt, arg ? arg : "");
    return rc;
}

/* ---- value transforms --------------------------------------------------------------- */

/* Sigma wildcard parsing: '\' escapes '*', '?' and '\'; before any other byte it is a
 * literal backslash (pySigma's rule). */
static int sig_parse_wild(const char *s, struct sig_val *v, bool wild)
{
    size_t i, n = strlen(s);
    int rc = 0;

    for (i = 0; i < n && rc == 0; i++) {
        uint8_t ch = (uint8_t)s[i];
        if (ch == '\\' && i + 1 < n && (s[i + 1] == '*' || s[i + 1] == '?' || s[i + 1] == '\\')) {
            rc = sig_val_push(v, (uint8_t)s[++i], SIG_T_LIT);
        } else if (wild && ch == '*') {
            rc = sig_val_push(v, ch, SIG_T_STAR);
        } else if (wild && ch == '?') {
            rc = sig_val_push(v, ch, SIG_T_QMARK);
        } else {
            rc = sig_val_push(v, ch, SIG_T_LIT);
        }
    }
    return rc;
}

/* UTF-8 to UTF-16 (le or be); invalid bytes pass as one code unit each. */
static int sig_utf16(const struct sig_val *in, struct sig_val *out, bool be)
{
    size_t i = 0;
    int rc = 0;

    while (i < in->n && rc == 0) {
        uint32_t cp = in->b[i];
        size_t len = 1, k;
        if (cp >= 0xf0 && i + 3 < in->n)
            cp &= 0x07, len = 4;
        else if (cp >= 0xe0 && i + 2 < in->n)
            cp &= 0x0f, len = 3;
        else if (cp >= 0xc0 && i + 1 < in->n)
            cp &= 0x1f, len = 2;
        for (k = 1; k < len; k++)
            cp = (cp << 6) | (in->b[i + k] & 0x3f);
        i += len;
        if (cp >= 0x10000) {
            uint32_t hi = 0xd800 + ((cp - 0x10000) >> 10), lo = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            rc = be ? sig_val_push(out, (uint8_t)(hi >> 8), SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)hi, SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)(lo >> 8), SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)lo, SIG_T_LIT)
                    : sig_val_push(out, (uint8_t)hi, SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)(hi >> 8), SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)lo, SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)(lo >> 8), SIG_T_LIT);
        } else {
            rc = be ? sig_val_push(out, (uint8_t)(cp >> 8), SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)cp, SIG_T_LIT)
                    : sig_val_push(out, (uint8_t)cp, SIG_T_LIT) ||
                          sig_val_push(out, (uint8_t)(cp >> 8), SIG_T_LIT);
        }
    }
    return rc ? -VG_ENOMEM : 0;
}

static int sig_b64(const uint8_t *p, size_t n, struct sig_val *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    int rc = 0;

    for (i = 0; i < n && rc == 0; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            x |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            x |= p[i + 2];
        rc |= sig_val_push(out, (uint8_t)tab[(x >> 18) & 63], SIG_T_LIT);
        rc |= sig_val_push(out, (uint8_t)tab[(x >> 12) & 63], SIG_T_LIT);
        rc |= sig_val_push(out, i + 1 < n ? (uint8_t)tab[(x >> 6) & 63] : '=', SIG_T_LIT);
        rc |= sig_val_push(out, i + 2 < n ? (uint8_t)tab[x & 63] : '=', SIG_T_LIT);
    }
    return rc ? -VG_ENOMEM : 0;
}

/* base64offset: the three encodings of the value at the three alignments, with the bytes
 * that depend on the unknown neighbours cut off (pySigma's offsets). */
static int sig_b64offset(const struct sig_val *in, struct sig_val out[3])
{
    static const size_t start[3] = {0, 2, 3};
    static const size_t endcut[3] = {0, 3, 2};
    int i;

    for (i = 0; i < 3; i++) {
        struct sig_val tmp = {0}, pre = {0};
        size_t k, s, e;
        int rc = 0;
        for (k = 0; k < (size_t)i && rc == 0; k++)
            rc = sig_val_push(&pre, ' ', SIG_T_LIT);
        for (k = 0; k < in->n && rc == 0; k++)
            rc = sig_val_push(&pre, in->b[k], SIG_T_LIT);
        if (rc == 0)
            rc = sig_b64(pre.b, pre.n, &tmp);
        s = start[i];
        e = tmp.n >= endcut[(in->n + (size_t)i) % 3] ? tmp.n - endcut[(in->n + (size_t)i) % 3] : 0;
        for (k = s; k < e && rc == 0; k++)
            rc = sig_val_push(&out[i], tmp.b[k], SIG_T_LIT);
        sig_val_free(&tmp);
        sig_val_free(&pre);
        if (rc)
            return -VG_ENOMEM;
    }
    return 0;
}

static bool sig_wordc(uint8_t c)
{
    return isalnum(c) || c == '_';
}

/* The Hyperscan / PCRE2 regex of a wildcard value at a position. Returns 1 when the value
 * matches anything (only wildcards), 0 with *out set, or a negative error. */
static int sig_val_regex(const struct sig_val *v, enum sig_pos pos, bool windash, bool list,
                         struct sig_buf *out)
{
    /* In a list, wildcards stay inside one element. */
    const char *star = list ? "[^\\x1e]*" : ".*", *qmark = list ? "[^\\x1e]" : ".";
    size_t a = 0, z = v->n, i;
    bool lead = false, trail = false;

    while (a < z && v->t[a] == SIG_T_STAR)
        a++, lead = true;
    while (z > a && v->t[z - 1] == SIG_T_STAR)
        z--, trail = true;
    if (a == z && (lead || trail))
        return 1;
    if ((pos == SIG_EXACT || pos == SIG_STARTS) && !lead)
        sig_buf_str(out, "\\A");
    for (i = a; i < z; i++) {
        if (v->t[i] == SIG_T_STAR) {
            sig_buf_str(out, star);
        } else if (v->t[i] == SIG_T_QMARK) {
            sig_buf_str(out, qmark);
        } else if (windash && (v->b[i] == '-' || v->b[i] == '/') &&
                   (i == 0 || v->t[i - 1] != SIG_T_LIT || !sig_wordc(v->b[i - 1])) &&
                   i + 1 < v->n && v->t[i + 1] == SIG_T_LIT && sig_wordc(v->b[i + 1])) {
            sig_buf_str(out, "(?:-|/|\\xe2\\x80\\x93|\\xe2\\x80\\x94|\\xe2\\x80\\x95)");
        } else {
            sig_buf_byte(out, v->b[i]);
        }
    }
    if ((pos == SIG_EXACT || pos == SIG_ENDS) && !trail)
        sig_buf_str(out, "\\z");
    if (out->oom)
        return -VG_ENOMEM;
    if (out->n == 0)
        sig_buf_put(out, "", 0);
    return out->oom ? -VG_ENOMEM : 0;
}

/* ---- matchers ----------------------------------------------------------------------- */

pcre2_code *sig_pcre_compile(const char *pat, unsigned hs_flags)
{
    uint32_t opt = 0;
    int errc;
    PCRE2_SIZE erro;

    if (hs_flags & HS_FLAG_CASELESS)
        opt |= PCRE2_CASELESS;
    if (hs_flags & HS_FLAG_DOTALL)
        opt |= PCRE2_DOTALL;
    if (hs_flags & HS_FLAG_MULTILINE)
        opt |= PCRE2_MULTILINE;
    return pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opt, &errc, &erro, NULL);
}

/* A `re` value (Hyperscan regex database when it takes it, else PCRE2), or a keyword
 * (always PCRE2: it reads every field). */
static int sig_add_regex(struct sig_cctx *c, const char *pat, unsigned flags, bool keyword,
                         uint32_t *id)
{
    struct sig_matcher *m;
    int rc = sig_new_matcher(c, SIG_M_HS, id);

    if (rc < 0)
        return rc;
    m = &c->rs->m[*id];
    m->is_re = true;
    m->pattern = vg_arena_strndup(c->rs->arena, pat, strlen(pat));
    m->hs_flags = flags | HS_FLAG_SINGLEMATCH;
    if (!m->pattern)
        return -VG_ENOMEM;
    if (!keyword) {
        hs_database_t *db = NULL;
        hs_compile_error_t *ce = NULL;
        if (hs_compile(pat, m->hs_flags, HS_MODE_BLOCK, NULL, &db, &ce) == HS_SUCCESS) {
            hs_free_database(db);
            m->in_db = true;
            return 0;
        }
        hs_free_compile_error(ce);
    }
    m->re = sig_pcre_compile(pat, flags);
    if (!m->re)
        return sig_unsup(c, -VG_EINVAL, "invalid regular expression '%s'", pat);
    return 0;
}

static const uint8_t *sig_adup_bytes(struct sig_cctx *c, const uint8_t *p, size_t n)
{
    uint8_t *d = vg_arena_alloc(c->rs->arena, n + 1);

    if (d) {
        memcpy(d, p, n);
        d[n] = 0;
    }
    return d;
}

static bool sig_windash_byte(const struct sig_val *v, size_t i, bool windash)
{
    return windash && (v->b[i] == '-' || v->b[i] == '/');
}

/* A wildcard value: the longest literal run prefilters, PCRE2 verifies. A pure literal is
 * verified by comparison alone. */
static int sig_add_pattern(struct sig_cctx *c, const struct sig_mods *md, const struct sig_val *v,
                           const char *regex, unsigned flags, bool keyword, uint32_t *id)
{
    struct sig_matcher *m;
    size_t i, run = 0, best = 0, best_at = 0;
    bool pure = true;
    int rc = sig_new_matcher(c, SIG_M_HS, id);

    if (rc < 0)
        return rc;
    m = &c->rs->m[*id];
    m->pos = md->pos;
    m->cased = md->cased;
    m->hs_flags = HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH;
    for (i = 0; i < v->n; i++) {
        if (v->t[i] != SIG_T_LIT || sig_windash_byte(v, i, md->windash)) {
            pure = false;
            run = 0;
            continue;
        }
        if (++run > best) {
            best = run;
            best_at = i + 1 - run;
        }
    }
    m->pattern = vg_arena_strndup(c->rs->arena, regex, strlen(regex));
    m->pre = sig_adup_bytes(c, v->b + best_at, best);
    m->npre = best;
    if (!m->pattern || !m->pre)
        return -VG_ENOMEM;
    m->in_db = !keyword && best > 0;
    if (pure && !keyword) {
        m->vlit = true;
        m->lit = m->pre;
        m->nlit = m->npre;
        return 0;
    }
    m->re = sig_pcre_compile(regex, flags);
    if (!m->re)
        return sig_unsup(c, -VG_EINVAL, "cannot compile value '%s'", regex);
    return 0;
}

static int sig_add_simple(struct sig_cctx *c, enum sig_mkind kind, uint32_t *id)
{
    return sig_new_matcher(c, kind, id);
}

static int sig_parse_num(const char *s, double *out)
{
    char *end;

    if (!s || !*s)
        return -VG_EINVAL;
    *out = strtod(s, &end);
    return *end || isnan(*out) ? -VG_EINVAL : 0;
}

static int sig_add_cidr(struct sig_cctx *c, const char *s, uint32_t *id)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    struct sig_matcher *m;
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    long pfx;
    int rc;

    if (n >= sizeof(addr))
        return sig_unsup(c, -VG_EINVAL, "bad cidr '%s'", s);
    memcpy(addr, s, n);
    addr[n] = 0;
    if ((rc = sig_new_matcher(c, SIG_M_CIDR, id)) < 0)
        return rc;
    m = &c->rs->m[*id];
    if (inet_pton(AF_INET, addr, m->net) == 1)
        m->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, m->net) == 1)
        m->family = AF_INET6;
    else
        return sig_unsup(c, -VG_EINVAL, "bad cidr '%s'", s);
    pfx = slash ? strtol(slash + 1, NULL, 10) : (m->family == AF_INET ? 32 : 128);
    if (pfx < 0 || pfx > (m->family == AF_INET ? 32 : 128))
        return sig_unsup(c, -VG_EINVAL, "bad cidr '%s'", s);
    m->prefix = (unsigned)pfx;
    return 0;
}

static bool sig_is_null(yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;

    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0 ||
            strcmp(s, "~") == 0);
}

/*
 * A value of a list field (VG_LIST_SEP before and after every element) as a search
 * anywhere in the list: startswith X is "SEP X", endswith X is "X SEP", an exact X is
 * "SEP X SEP", contains stays as it is. Replaces *v; returns 0 or -VG_ENOMEM.
 */
static int sig_val_listify(struct sig_val *v, enum sig_pos pos)
{
    struct sig_val o = {0};
    int rc = 0;

    if (pos == SIG_EXACT || pos == SIG_STARTS)
        rc = sig_val_push(&o, (uint8_t)VG_LIST_SEP, SIG_T_LIT);
    for (size_t i = 0; i < v->n && rc == 0; i++)
        rc = sig_val_push(&o, v->b[i], (enum sig_tok)v->t[i]);
    if (rc == 0 && (pos == SIG_EXACT || pos == SIG_ENDS))
        rc = sig_val_push(&o, (uint8_t)VG_LIST_SEP, SIG_T_LIT);
    sig_val_free(v);
    *v = o;
    return rc;
}

/* Adds the string matcher(s) of one value (several for base64offset: OR). */
static int sig_add_string(struct sig_cctx *c, const struct sig_mods *md, const char *s,
                          bool keyword, uint32_t *ids, size_t *nids)
{
    struct sig_val v = {0}, alt[3] = {{0}};
    struct sig_mods lm;
    size_t nalt = 1, i, e;
    int rc;
    unsigned flags = HS_FLAG_DOTALL | (md->cased ? 0 : HS_FLAG_CASELESS);

    rc = sig_parse_wild(s, &v, md->nenc == 0);
    for (e = 0; e < md->nenc && rc == 0; e++) {
        struct sig_val o = {0};
        if (strcmp(md->enc[e], "base64offset") == 0) {
            if (nalt != 1) {
                rc = sig_unsup(c, -VG_EUNSUP, "base64offset applied twice%s", NULL);
                break;
            }
            rc = sig_b64offset(&v, alt);
            sig_val_free(&v);
            nalt = 3;
            continue;
        }
        for (i = 0; i < nalt && rc == 0; i++) {
            struct sig_val *in = nalt == 1 ? &v : &alt[i];
            memset(&o, 0, sizeof(o));
            if (strcmp(md->enc[e], "base64") == 0)
                rc = sig_b64(in->b, in->n, &o);
            else
                rc = sig_utf16(in, &o, strcmp(md->enc[e], "utf16be") == 0);
            sig_val_free(in);
            *in = o;
        }
    }
    if (md->list) { /* one element of the list: positions become searches (above) */
        lm = *md;
        lm.pos = SIG_CONTAINS;
        for (i = 0; i < nalt && rc == 0; i++)
            rc = sig_val_listify(nalt == 1 ? &v : &alt[i], md->pos);
        md = &lm;
    }
    for (i = 0; i < nalt && rc == 0; i++) {
        struct sig_val *in = nalt == 1 ? &v : &alt[i];
        struct sig_buf b = {0};
        int r = sig_val_regex(in, md->pos, md->windash, md->list, &b);
        if (r < 0) {
            rc = r;
        } else if (r == 1 || (in->n == 0 && md->pos != SIG_EXACT)) {
            rc = sig_add_simple(c, SIG_M_ANY, &ids[(*nids)++]);
        } else if (in->n == 0) {
            rc = sig_add_simple(c, SIG_M_EMPTY, &ids[(*nids)++]);
        } else {
            rc = sig_add_pattern(c, md, in, b.p, flags, keyword, &ids[(*nids)++]);
        }
        vg_free(b.p);
    }
    sig_val_free(&v);
    for (i = 0; i < 3; i++)
        sig_val_free(&alt[i]);
    return rc;
}

/* The matchers of one scalar value under md. ids has room for 3. */
static int sig_value(struct sig_cctx *c, const struct sig_mods *md, yaml_node_t *n, bool keyword,
                     uint32_t *ids, size_t *nids)
{
    const char *s;
    int rc;

    if (!n || n->type != YAML_SCALAR_NODE)
        return sig_unsup(c, -VG_EUNSUP, "value is not a scalar%s", NULL);
    s = (const char *)n->data.scalar.value;
    if (md->exists) {
        if ((rc = sig_add_simple(c, SIG_M_EXISTS, &ids[0])) < 0)
            return rc;
        c->rs->m[ids[0]].exists = strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0;
        *nids = 1;
        return 0;
    }
    if (sig_is_null(n)) {
        *nids = 1;
        return sig_add_simple(c, SIG_M_NULL, &ids[0]);
    }
    if (md->num) {
        double d;
        if (sig_parse_num(s, &d) < 0)
            return sig_unsup(c, -VG_EINVAL, "not a number: '%s'", s);
        if ((rc = sig_add_simple(c, SIG_M_NUM, &ids[0])) < 0)
            return rc;
        c->rs->m[ids[0]].op = md->op;
        c->rs->m[ids[0]].num = d;
        *nids = 1;
        return 0;
    }
    if (md->cidr) {
        *nids = 1;
        return sig_add_cidr(c, s, &ids[0]);
    }
    if (md->fieldref) {
        struct sig_matcher *m;
        if ((rc = sig_add_simple(c, SIG_M_FIELDREF, &ids[0])) < 0)
            return rc;
        m = &c->rs->m[ids[0]];
        m->ref.typed = vg_field_by_name(s);
        m->ref.name = vg_arena_strndup(c->rs->arena, s, strlen(s));
        m->pos = md->pos;
        m->cased = md->cased;
        *nids = 1;
        return m->ref.name ? 0 : -VG_ENOMEM;
    }
    if (md->re) {
        unsigned f = HS_FLAG_ALLOWEMPTY | (md->re_i ? HS_FLAG_CASELESS : 0) |
                     (md->re_m ? HS_FLAG_MULTILINE : 0) | (md->re_s ? HS_FLAG_DOTALL : 0);
        *nids = 1;
        return sig_add_regex(c, s, f, keyword, &ids[0]);
    }
    *nids = 0;
    return sig_add_string(c, md, s, keyword, ids, nids);
}

static int sig_mods_parse(struct sig_cctx *c, char *mods, struct sig_mods *md)
{
    char *save = NULL, *m;

    memset(md, 0, sizeof(*md));
    for (m = strtok_r(mods, "|", &save); m; m = strtok_r(NULL, "|", &save)) {
        if (strcmp(m, "contains") == 0)
            md->pos = SIG_CONTAINS;
        else if (strcmp(m, "startswith") == 0)
            md->pos = SIG_STARTS;
        else if (strcmp(m, "endswith") == 0)
            md->pos = SIG_ENDS;
        else if (strcmp(m, "all") == 0)
            md->all = true;
        else if (strcmp(m, "re") == 0)
            md->re = true;
        else if (md->re && strcmp(m, "i") == 0)
            md->re_i = true;
        else if (md->re && strcmp(m, "m") == 0)
            md->re_m = true;
        else if (md->re && strcmp(m, "s") == 0)
            md->re_s = true;
        else if (strcmp(m, "cased") == 0)
            md->cased = true;
        else if (strcmp(m, "windash") == 0)
            md->windash = true;
        else if (strcmp(m, "cidr") == 0)
            md->cidr = true;
        else if (strcmp(m, "exists") == 0)
            md->exists = true;
        else if (strcmp(m, "fieldref") == 0)
            md->fieldref = true;
        else if (strcmp(m, "lt") == 0 || strcmp(m, "lte") == 0 || strcmp(m, "gt") == 0 ||
                 strcmp(m, "gte") == 0) {
            md->num = true;
            md->op = m[0] == 'l' ? (m[2] ? SIG_LTE : SIG_LT) : (m[2] ? SIG_GTE : SIG_GT);
        } else if (strcmp(m, "base64") == 0 || strcmp(m, "base64offset") == 0 ||
                   strcmp(m, "utf16le") == 0 || strcmp(m, "utf16be") == 0 ||
                   strcmp(m, "wide") == 0) {
            if (md->nenc == VG_ARRAY_SIZE(md->enc))
                return sig_unsup(c, -VG_EUNSUP, "too many encoding modifiers%s", NULL);
            md->enc[md->nenc++] = strcmp(m, "wide") == 0 ? "utf16le" : m;
        } else {
            return sig_unsup(c, -VG_EUNSUP, "modifier '%s' not supported", m);
        }
    }
    return 0;
}

/* One `field|mods: value(s)` entry. keyword: a keyword list (no field). */
static int sig_fmatch(struct sig_cctx *c, const char *key, yaml_node_t *val, struct sig_fmatch *fm)
{
    char kbuf[256], *bar;
    struct sig_mods md;
    size_t nvals;
    bool keyword = false;
    yaml_node_item_t *it;
    int rc;

    if (strlen(key) >= sizeof(kbuf))
        return sig_unsup(c, -VG_EINVAL, "field name too long%s", NULL);
    strcpy(kbuf, key);
    bar = strchr(kbuf, '|');
    if (bar)
        *bar++ = 0;
    if ((rc = sig_mods_parse(c, bar ? bar : (char[]){0}, &md)) < 0)
        return rc;
    if (!kbuf[0]) {
        /* `'|all': [...]`: keywords with modifiers; keywords always search inside values. */
        keyword = true;
        if (md.pos == SIG_EXACT)
            md.pos = SIG_CONTAINS;
        if (md.re || md.cidr || md.exists || md.fieldref || md.num)
            return sig_unsup(c, -VG_EUNSUP, "keyword modifiers '%s' not supported", key);
    }
    fm->field.typed = keyword ? SIG_FIELD_KEYWORDS : vg_field_by_name(kbuf);
    if (!keyword && vg_field_is_list(fm->field.typed)) {
        if (md.cidr || md.num || md.fieldref)
            return sig_unsup(c, -VG_EUNSUP, "'%s': lineage fields take string values only", key);
        md.list = true;
        /* The categories whose events must carry it; a rule routed by service alone (no
         * category) may see any event. */
        for (size_t k = 0; k < c->r->ncats; k++)
            c->rs->lineage_cats |= UINT64_C(1) << c->r->cats[k];
        if (c->r->ncats == 0)
            c->rs->lineage_cats = ~UINT64_C(0);
    }
    fm->field.name = keyword ? "keywords" : vg_arena_strndup(c->rs->arena, kbuf, strlen(kbuf));
    fm->all = md.all;
    if (!fm->field.name)
        return -VG_ENOMEM;
    if (!val)
        return sig_unsup(c, -VG_EINVAL, "no value for '%s'", key);
    nvals = val->type == YAML_SEQUENCE_NODE
                ? (size_t)(val->data.sequence.items.top - val->data.sequence.items.start)
                : 1;
    fm->m = vg_arena_alloc(c->rs->arena, (nvals * 3 + 1) * sizeof(*fm->m));
    if (!fm->m)
        return -VG_ENOMEM;
    if (val->type != YAML_SEQUENCE_NODE)
        return sig_value(c, &md, val, keyword, fm->m, &fm->n);
    if (nvals == 0)
        return sig_unsup(c, -VG_EINVAL, "empty value list for '%s'", key);
    for (it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
        size_t k = 0;
        if ((rc = sig_value(c, &md, yaml_document_get_node(c->doc, *it), keyword, fm->m + fm->n,
                            &k)) < 0)
            return rc;
        /* base64offset gives three alternatives of one value: with `all` they must be
         * folded into one value, which this engine cannot do. */
        if (k > 1 && md.all)
            return sig_unsup(c, -VG_EUNSUP, "base64offset with all not supported%s", NULL);
        fm->n += k;
    }
    return 0;
}

static int sig_item_map(struct sig_cctx *c, yaml_node_t *map, struct sig_item *item)
{
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), i;
    int rc;

    item->fm = vg_arena_alloc(c->rs->arena, (n + 1) * sizeof(*item->fm));
    if (!item->fm)
        return -VG_ENOMEM;
    memset(item->fm, 0, (n + 1) * sizeof(*item->fm));
    for (i = 0; i < n; i++) {
        yaml_node_pair_t *p = map->data.mapping.pairs.start + i;
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (!k || k->type != YAML_SCALAR_NODE)
            return sig_unsup(c, -VG_EINVAL, "selection key is not a scalar%s", NULL);
        rc = sig_fmatch(c, (const char *)k->data.scalar.value,
                        yaml_document_get_node(c->doc, p->value), &item->fm[i]);
        if (rc < 0)
            return rc;
    }
    item->n = n;
    return 0;
}

/* A keyword list: one item with one OR entry on the pseudo field. */
static int sig_item_keywords(struct sig_cctx *c, yaml_node_t *seq, struct sig_item *item)
{
    struct sig_mods md;
    struct sig_fmatch *fm;
    size_t n, i;
    int rc;

    memset(&md, 0, sizeof(md));
    md.pos = SIG_CONTAINS;
    n = seq->type == YAML_SEQUENCE_NODE
            ? (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start)
            : 1;
    fm = vg_arena_alloc(c->rs->arena, sizeof(*fm));
    if (!fm)
        return -VG_ENOMEM;
    memset(fm, 0, sizeof(*fm));
    fm->field.typed = SIG_FIELD_KEYWORDS;
    fm->field.name = "keywords";
    fm->m = vg_arena_alloc(c->rs->arena, (n * 3 + 1) * sizeof(*fm->m));
    if (!fm->m)
        return -VG_ENOMEM;
    for (i = 0; i < n; i++) {
        yaml_node_t *v = seq->type == YAML_SEQUENCE_NODE
                             ? yaml_document_get_node(c->doc, seq->data.sequence.items.start[i])
                             : seq;
        size_t k = 0;
        if (!v || v->type != YAML_SCALAR_NODE || sig_is_null(v))
            return sig_unsup(c, -VG_EUNSUP, "keyword list with a non-string item%s", NULL);
        if ((rc = sig_value(c, &md, v, true, fm->m + fm->n, &k)) < 0)
            return rc;
        fm->n += k;
    }
    item->fm = fm;
    item->n = 1;
    return 0;
}

static int sig_selection(struct sig_cctx *c, const char *name, yaml_node_t *v, struct sig_sel *sel)
{
    size_t n, i;
    bool maps = true, scalars = true;

    sel->name = vg_arena_strndup(c->rs->arena, name, strlen(name));
    if (!sel->name)
        return -VG_ENOMEM;
    if (v->type == YAML_MAPPING_NODE) {
        sel->items = vg_arena_alloc(c->rs->arena, sizeof(*sel->items));
        if (!sel->items)
            return -VG_ENOMEM;
        sel->n = 1;
        return sig_item_map(c, v, sel->items);
    }
    if (v->type == YAML_SCALAR_NODE) {
        sel->items = vg_arena_alloc(c->rs->arena, sizeof(*sel->items));
        sel->n = 1;
        return sel->items ? sig_item_keywords(c, v, sel->items) : -VG_ENOMEM;
    }
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    for (i = 0; i < n; i++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        maps &= e && e->type == YAML_MAPPING_NODE;
        scalars &= e && e->type == YAML_SCALAR_NODE;
    }
    if (n == 0 || (!maps && !scalars))
        return sig_unsup(c, -VG_EUNSUP, "selection '%s' mixes maps and keywords", name);
    if (scalars) {
        sel->items = vg_arena_alloc(c->rs->arena, sizeof(*sel->items));
        sel->n = 1;
        return sel->items ? sig_item_keywords(c, v, sel->items) : -VG_ENOMEM;
    }
    sel->items = vg_arena_alloc(c->rs->arena, n * sizeof(*sel->items));
    if (!sel->items)
        return -VG_ENOMEM;
    for (i = 0; i < n; i++) {
        int rc = sig_item_map(c, yaml_document_get_node(c->doc, v->data.sequence.items.start[i]),
                              &sel->items[i]);
        if (rc < 0)
            return rc;
    }
    sel->n = n;
    return 0;
}

static void sig_mark_extra(struct sig_rule *r)
{
    size_t s, i, f, k;

    for (s = 0; s < r->nsels; s++)
        for (i = 0; i < r->sels[s].n; i++)
            for (f = 0; f < r->sels[s].items[i].n; f++) {
                int t = r->sels[s].items[i].fm[f].field.typed;
                bool native = false;
                if (t == SIG_FIELD_KEYWORDS)
                    continue;
                if (r->service)
                    native = t >= 0;
                for (k = 0; k < r->ncats; k++)
                    native |= sig_field_native(r->cats[k], t);
                if (!native)
                    r->extra_only = true;
            }
}

int sig_compile_detection(struct cor_ruleset *rs, struct sig_rule *r, yaml_document_t *doc,
                          yaml_node_t *det, char *why, size_t whylen)
{
    struct sig_cctx c = {rs, r, doc, why, whylen};
    yaml_node_t *cond;
    yaml_node_pair_t *p;
    size_t n;
    int rc;

    if (!det || det->type != YAML_MAPPING_NODE)
        return sig_unsup(&c, -VG_EINVAL, "no detection%s", NULL);
    n = (size_t)(det->data.mapping.pairs.top - det->data.mapping.pairs.start);
    r->sels = vg_arena_alloc(rs->arena, (n + 1) * sizeof(*r->sels));
    if (!r->sels)
        return -VG_ENOMEM;
    for (p = det->data.mapping.pairs.start; p < det->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *name = k && k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : "";
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (strcmp(name, "condition") == 0 || strcmp(name, "timeframe") == 0)
            continue;
        if (!v)
            return sig_unsup(&c, -VG_EINVAL, "empty selection '%s'", name);
        rc = sig_selection(&c, name, v, &r->sels[r->nsels]);
        if (rc < 0)
            return rc;
        r->nsels++;
    }
    cond = NULL;
    for (p = det->data.mapping.pairs.start; p < det->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, "condition") == 0)
            cond = yaml_document_get_node(doc, p->value);
    }
    if (!cond)
        return sig_unsup(&c, -VG_EINVAL, "no condition%s", NULL);
    if (cond->type == YAML_SCALAR_NODE) {
        rc = sig_cond_parse(rs, r, (const char *)cond->data.scalar.value, &r->cond, why, whylen);
    } else if (cond->type == YAML_SEQUENCE_NODE) {
        /* A list of conditions: any of them. */
        struct sig_cnode * or = vg_arena_alloc(rs->arena, sizeof(* or));
        size_t nc = (size_t)(cond->data.sequence.items.top - cond->data.sequence.items.start);
        size_t i;
        if (! or || !(or->kids = vg_arena_alloc(rs->arena, (nc + 1) * sizeof(* or->kids))))
            return -VG_ENOMEM;
        or->kind = SIG_C_OR;
        or->n = 0;
        rc = 0;
        for (i = 0; i < nc && rc == 0; i++) {
            const char *s =
                cor_yaml_scalar(yaml_document_get_node(doc, cond->data.sequence.items.start[i]));
            if (!s)
                return sig_unsup(&c, -VG_EINVAL, "condition list item is not a string%s", NULL);
            rc = sig_cond_parse(rs, r, s, & or->kids[or->n++], why, whylen);
        }
        r->cond = or ;
    } else {
        return sig_unsup(&c, -VG_EINVAL, "condition is not a string%s", NULL);
    }
    if (rc < 0)
        return rc;
    sig_mark_extra(r);
    return 0;
}
