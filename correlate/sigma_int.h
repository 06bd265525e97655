/*
 * sigma_int.h - the Sigma rule engine's private structures, shared by sigma_load.c (YAML to
 * rules), sigma_compile.c (detection and condition to matchers, Hyperscan databases) and
 * sigma_eval.c (per-event evaluation). Tests may include it.
 *
 * Shape: a ruleset owns an arena holding every rule, selection and matcher; Hyperscan
 * databases and PCRE2 codes are owned by the ruleset and freed with it. Every string value
 * test of every rule is one "matcher" with a dense id. Matchers Hyperscan can decide and
 * whose hits wake or gate a rule are compiled, per (os, category, field), into a literal
 * and a regex multi-pattern database, and whole-value literals into a hash set: scanning a
 * field once decides all of them. The literals of a route's short fields also share one
 * database (sig_comb) scanned once over those fields end to end. Literals
 * and regexes that only filter are "lazy": searched for when their rule is evaluated. The others
 * (numbers, cidr, exists, fieldref, regexes Hyperscan rejects) run only when their rule is
 * evaluated.
 *
 * THREAD SAFETY: everything here is immutable once cor_ruleset_load returns; a cor_scratch
 * is one thread's.
 */
#ifndef VG_SIGMA_INT_H
#define VG_SIGMA_INT_H

#include <stdatomic.h>
#include <string.h>

#include <hs/hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rules.h"
#include "vg.h"

/* ASCII case folding, as Hyperscan's HS_FLAG_CASELESS does (independent of the locale). */
static inline uint8_t sig_lc(uint8_t c)
{
    return (uint8_t)((unsigned)(c - 'A') < 26u ? c + ('a' - 'A') : c);
}

/* n bytes equal but for ASCII case (NULs compared like any byte). */
static inline bool sig_eq_caseless(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (sig_lc(a[i]) != sig_lc(b[i]))
            return false;
    return true;
}

#define SIG_FIELD_KEYWORDS (-2) /* pseudo field: any value of the event */

/* Which field a matcher reads: a typed slot, or a name looked up in extra. */
struct sig_fref {
    int typed;        /* enum vg_field, -1 for extra-only, SIG_FIELD_KEYWORDS */
    const char *name; /* Sigma name as written (arena) */
    uint32_t slot;    /* per-event lookup cache slot of name (case-insensitive), set by
                       * sig_build_index: a name missing from the typed slots is looked up
                       * in extra once per event, not once per matcher */
};

enum sig_mkind {
    SIG_M_HS,       /* a string test, prefiltered by Hyperscan when in_db */
    SIG_M_ANY,      /* field present, any value ('*') */
    SIG_M_EMPTY,    /* field present and empty ('') */
    SIG_M_NULL,     /* field absent or empty (null) */
    SIG_M_EXISTS,   /* exists: true / false */
    SIG_M_NUM,      /* lt / lte / gt / gte */
    SIG_M_CIDR,     /* address in a network */
    SIG_M_FIELDREF, /* equal to (or contains...) another field */
};

enum sig_numop { SIG_LT, SIG_LTE, SIG_GT, SIG_GTE };
enum sig_pos { SIG_EXACT, SIG_CONTAINS, SIG_STARTS, SIG_ENDS };

struct sig_matcher {
    enum sig_mkind kind;
    uint32_t rule; /* owning rule's index */
    /* SIG_M_HS. A hit of the Hyperscan pattern (literal `pre`, or regex `pattern` for a
     * `re` value) is necessary; then the value is verified by literal comparison (vlit),
     * by PCRE2 (re), or not at all (a `re` value Hyperscan decides by itself). A matcher
     * not in_db (no literal to prefilter with, or a regex Hyperscan refuses) runs PCRE2
     * whenever its rule is evaluated. */
    bool in_db;             /* prefiltered: a hit is necessary (scanned for, or lazy) */
    bool trigger;           /* a hit makes its rule a candidate: the matcher is under an even
                             * number of `not`s somewhere (hits of matchers only ever negated
                             * cannot turn a rule true, so they never wake it) */
    bool is_re;             /* `re` value: Hyperscan regex database, else literal database */
    bool lazy;              /* in_db matcher that wakes no rule (not a trigger): left out of the
                             * databases, its "hit" is a caseless search for pre in the field (a
                             * regex: a scan of lazy_db), done only when its rule is evaluated.
                             * Most literals are such (filters, later clauses) and the commonest:
                             * scanning for them cost most of the Hyperscan time. */
    hs_database_t *lazy_db; /* a lazy regex's own database (owned: sig_free_index) */
    const struct sig_fref *field; /* the field it reads (its fmatch's), for lazy checks */
    const char *pattern; /* the regex (arena): HS pattern for is_re, PCRE2 source otherwise */
    unsigned hs_flags;   /* Hyperscan flags of pattern */
    const uint8_t *pre;  /* literal prefilter (arena) */
    size_t npre;
    bool vlit; /* verify by comparing lit at pos */
    const uint8_t *lit;
    size_t nlit;
    pcre2_code *re;    /* PCRE2 verification / direct evaluation, or NULL */
    bool exists;       /* SIG_M_EXISTS */
    enum sig_numop op; /* SIG_M_NUM */
    double num;
    int family; /* SIG_M_CIDR: AF_INET / AF_INET6 */
    uint8_t net[16];
    unsigned prefix;
    struct sig_fref ref; /* SIG_M_FIELDREF */
    enum sig_pos pos;
    bool cased;
    uint8_t clmask; /* a scanned matcher: the required-hit clauses of its rule its hit
                     * satisfies (bit k: clause k; sig_build_clauses) */
};

/* One `field|mods: values` entry: OR (or AND with `all`) of its matchers. */
struct sig_fmatch {
    struct sig_fref field;
    uint32_t *m; /* matcher ids */
    size_t n;
    bool all;
};

/* A map: AND of its entries. */
struct sig_item {
    struct sig_fmatch *fm;
    size_t n;
};

/* A named search identifier: OR of its maps (a list of maps, or a single map). */
struct sig_sel {
    const char *name;
    struct sig_item *items;
    size_t n;
};

enum sig_ckind { SIG_C_AND, SIG_C_OR, SIG_C_NOT, SIG_C_SEL, SIG_C_TRUE, SIG_C_FALSE };

struct sig_cnode {
    enum sig_ckind kind;
    struct sig_cnode **kids;
    size_t n;
    uint32_t sel; /* SIG_C_SEL */
};

struct sig_rule {
    struct cor_rule_info info;
    struct sig_sel *sels;
    size_t nsels;
    struct sig_cnode *cond;
    Vigil__Os os;        /* OS_UNKNOWN: any */
    enum vg_cat cats[5]; /* routed categories (registry_event covers four) */
    size_t ncats;
    const char *service; /* service-routed rule (no category), or NULL */
    bool extra_only;     /* reads a field vigil's own telemetry never supplies */
    bool always;         /* can match with no Hyperscan hit: always evaluated */
    /* Required hits, computed by sig_build_req: the rule can be true only if, for every
     * clause k, some matcher in req[req_off[k] .. req_off[k+1]) hit (a necessary condition
     * derived from the condition tree; `not` contributes nothing). Only the matchers of
     * clause 0 are triggers: they alone make the rule a candidate. nreq 0: no constraint,
     * every positive matcher is a trigger. */
    uint32_t *req;
    uint32_t *req_off; /* nreq + 1 offsets */
    uint32_t nreq;
    /* Built by sig_build_clauses once laziness is final. A scan that hits one of clause k's
     * scanned matchers sets bit k of the rule's word in the scratch (sig_matcher.clmask), so
     * that the clauses are checked in one load instead of a walk over their matchers (a wide
     * clause that did not hit was walked in full: 15 hit checks an event). Only the lazy
     * matchers of a clause, lreq[lreq_off[k] .. lreq_off[k + 1]), are left to look for. */
    uint32_t *lreq;
    uint32_t *lreq_off; /* nreq + 1 offsets */
};

/* What a hit of one scanned matcher does, kept beside the database so that a report reads
 * one compact run instead of each matcher's structure (sig_build_acts). */
struct sig_act {
    uint32_t mid;   /* mark it hit */
    uint32_t rule;  /* its rule */
    uint8_t clmask; /* set these bits of the rule's clause word (sig_matcher.clmask) */
    bool wake;      /* a trigger: make the rule a candidate */
};

#define SIG_EQ_MAXSHAPES 8 /* an anchored set of more shapes stays in the scan */

/* Hyperscan patterns of one kind for one (route, field). Matchers with the same pattern
 * share one Hyperscan pattern: Hyperscan id p stands for ids[first[p] .. first[p + 1]). */
struct sig_hsdb {
    hs_database_t *db;
    struct sig_act *act; /* per ids entry, once compiled */
    uint32_t *ids;       /* matcher ids, grouped by pattern once compiled */
    size_t n;
    size_t cap;
    uint32_t *first; /* npat + 1 offsets into ids */
    size_t npat;
    bool direct; /* a few literals and no database: each is looked for in turn, cheaper
                  * than a Hyperscan scan's fixed cost (SIG_DIRECT_MAX) */
    /* An exact-value set (sig_group.exact): pattern p is the lower-cased key[p] of klen[p]
     * bytes, found through an open-addressing table indexed by sig_exact_hash & hmask. A
     * slot holds the key's whole hash above its pattern number (SIG_EXACT_EMPTY: empty),
     * so that a probe that misses, the common case, reads the table alone. */
    const uint8_t **key;
    uint32_t *klen;
    uint64_t *htab;
    uint32_t hmask;
    uint32_t maxlen;
    uint64_t lenmap[4]; /* bit n: some key is n bytes long */
};

/* What a tail key may start with: path separators, and the dot of an extension. */
static const char sig_tail_sep[] = {'\\', '/', '.'};
#define SIG_TAIL_NSEP 3

#define SIG_EXACT_EMPTY  UINT64_MAX /* an empty slot of sig_hsdb.htab */
#define SIG_EXACT_MAXLEN 255        /* longer exact values stay in the literal database */
/* An exact set is kept apart only when it is large or takes the field's last literals out
 * of Hyperscan; else its few literals stay in the database (hashing every value of a
 * field cost more than their share of the scan). */
#define SIG_EXACT_MIN 16

/* A hash of a value that ignores ASCII case without folding it first: bytes are taken
 * with bit 0x20 set, which maps a letter's two cases to one byte (and any other byte to
 * one byte), so values equal but for case hash alike. From the first and last eight
 * bytes and the length: keys are compared in full anyway, and this reads a value of any
 * length in two loads. */
static inline uint32_t sig_exact_hash(const uint8_t *p, size_t n)
{
    uint64_t a = 0, b = 0;
    size_t i;

    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
    } else {
        for (i = 0; i < n; i++)
            a = a << 8 | p[i];
    }
    a = (a | UINT64_C(0x2020202020202020)) * UINT64_C(0x9e3779b97f4a7c15);
    b = (b | UINT64_C(0x2020202020202020)) ^ n;
    a ^= b * UINT64_C(0xc2b2ae3d27d4eb4f);
    return (uint32_t)(a >> 32) ^ (uint32_t)a;
}

#define SIG_DIRECT_MAX 4

/* All matchers of one (route, field): a literal database, a regex database, and the
 * literals that must equal the whole value (`field: value` without wildcards: DestinationPort
 * lists, OriginalFileName, Initiated), found by one hash lookup of the value instead of a
 * scan. A lookup hit means the value equals the literal, caseless: stronger than the scan's
 * "contains", and exactly what such a matcher then verifies, so no answer changes.
 * The tail set does the same for a value's last component: `Image|endswith: '\\cmd.exe'`
 * (half of SigmaHQ's string values) holds exactly when the value, from its last '\\' on,
 * is '\\cmd.exe', since the literal has no other '\\'; likewise '/bash' from the last '/'
 * and an extension ('.exe') from the last '.'. One lookup per separator replaces hundreds
 * of literals in the scan, each reported wherever it occurs.
 * The anchored set takes contains literals with one '=' of a few shapes (name length, value
 * length): Hashes' 'IMPHASH=<32 hex>', 'SHA256=<64 hex>'. Every occurrence of such a
 * literal puts its '=' on one of the value's, so looking up, around each '=' of the value,
 * the bytes each shape spans finds every occurrence: the field's scan is not needed. */
struct sig_group {
    struct sig_fref field;
    struct sig_hsdb lit;
    struct sig_hsdb re;
    struct sig_hsdb exact;
    struct sig_hsdb tail;
    uint8_t tail_seps; /* bit k: some tail key starts with sig_tail_sep[k] */
    struct sig_hsdb eq;
    /* eq's keys have their one '=' at offset eq_k[i] and eq_h[i] bytes after it, for one
     * of the eq_n shapes i; eq_name[i], when not NULL, is the name before the '=' that
     * every key of shape i has (caseless). */
    uint8_t eq_n;
    uint8_t eq_k[SIG_EQ_MAXSHAPES];
    uint8_t eq_h[SIG_EQ_MAXSHAPES];
    const uint8_t *eq_name[SIG_EQ_MAXSHAPES];
    bool memo; /* its values are kept in the memo (struct sig_memo): answering one costs a
                * scan or several lookups (a field of whole values only is looked up once,
                * as cheap as a probe of the memo) */
};

/* The literals of a bucket's short fields (paths, names, ports: not command lines or
 * hashes) in one database, scanned once over those fields laid end to end instead of once
 * a field: a scan's fixed cost, not its bytes, dominated such fields. A literal is reported
 * at every occurrence (no HS_FLAG_SINGLEMATCH: the first may lie in another field); an
 * occurrence counts for the run of pattern p's matchers whose field holds all of it. */
struct sig_crun {
    uint32_t grp; /* the bucket's group (field) */
    uint32_t act; /* its matchers: act[act .. act_to) */
    uint32_t act_to;
};

struct sig_comb {
    hs_database_t *db;
    struct sig_act *act;  /* grouped by pattern, then by group */
    struct sig_crun *run; /* runs of act of one pattern and group */
    uint32_t *first;      /* npat + 1 offsets into run */
    uint32_t *plen;       /* per pattern: its length */
    size_t npat;
};

/* Rules of one route: (os, category) or (os, service). */
struct sig_bucket {
    const char *service; /* NULL for category buckets */
    Vigil__Os os;
    struct sig_group *groups;
    size_t ngroups;
    struct sig_comb comb; /* db NULL: every group scanned on its own */
    bool *in_comb;        /* per group: its literals are in comb */
    uint32_t *always;     /* rules evaluated on every event of the route */
    size_t nalways;
    size_t cap_always;
};

#define SIG_NOS 4 /* Vigil__Os values */

struct cor_ruleset {
    atomic_int refs; /* cor_ruleset_ref/unref: relaxed increment, acq_rel decrement */
    vg_arena *arena; /* rules, selections, strings */
    struct sig_rule **rules;
    size_t nrules;
    size_t cap_rules;
    struct sig_matcher *m;
    size_t nm;
    size_t cap_m;
    struct sig_bucket cat[SIG_NOS][VG_CAT__COUNT];
    struct sig_bucket *svc; /* service buckets */
    size_t nsvc;
    size_t cap_svc;
    uint64_t lineage_cats;  /* bit per enum vg_cat: a rule of it reads VG_F_ANCESTOR_* */
    uint8_t *rneed;         /* per rule: its required-hit clauses without a lazy matcher, which only
                             * a scan satisfies (bit k: clause k; sig_build_clauses): a candidate
                             * whose clause word lacks one is dropped without reading the rule */
    const char **slot_name; /* field lookup cache slots (see sig_fref.slot) */
    size_t nslots;
    size_t cap_slots;
};

/* One cached field lookup of the current event. */
struct sig_slotval {
    uint32_t gen; /* equal to cor_scratch.gen: looked up for this event */
    bool present;
    struct vg_str v;
};

/* Scan results of recent field values, so that a value seen again is not scanned again:
 * telemetry repeats itself (the same images, parents, service command lines), and a
 * Hyperscan scan of a short field costs a thousand instructions, mostly fixed. An entry
 * holds a (group, value) and everything the field's scans and lookups reported for it,
 * each report tagged with where it came from (SIG_MK_*): the combined database's runs, the
 * literal and regex databases' patterns, the exact, tail and anchored sets' keys. What they
 * report is a function of the field's value alone, so a replay stamps what they would.
 * Two-way set associative by hash: a probe compares the set's two tags (a compact array)
 * before it reads an entry, and a value scanned and kept replaces the way not hit last, so
 * values seen once evict one another rather than the values that recur (direct-mapped, a
 * busy command line was scanned again after every few hundred new values). A value longer
 * than SIG_MEMO_MAXLEN, or one with more than SIG_MEMO_HITS distinct reports, is scanned
 * every time. */
#define SIG_MEMO_SLOTS  1024 /* entries, two a set */
#define SIG_MEMO_MAXLEN 160
#define SIG_MEMO_HITS   11
#define SIG_MEMO_LOG    512 /* reports logged for one bucket's fields; more: nothing is kept */

enum sig_mkind_memo { SIG_MK_COMB, SIG_MK_LIT, SIG_MK_RE, SIG_MK_EXACT, SIG_MK_TAIL, SIG_MK_EQ };
#define SIG_MK_SHIFT 29 /* a report: its kind above, the run or pattern number below */
#define SIG_MK_ID(h) ((h) & ((UINT32_C(1) << SIG_MK_SHIFT) - 1))

struct sig_memo {
    const struct sig_group *g; /* NULL: empty */
    uint16_t n;                /* the value's length */
    uint8_t nhit;
    uint32_t hit[SIG_MEMO_HITS]; /* reports (SIG_MK_*), distinct */
    char v[SIG_MEMO_MAXLEN];
};

struct sig_mlog {
    uint32_t grp; /* the bucket's group */
    uint32_t id;  /* the report, tagged (SIG_MK_*) */
};

/* The required-hit clauses of one rule that a scan hit, for the event of generation gen (an
 * older gen: none). */
struct sig_rclauses {
    uint32_t gen;
    uint32_t got; /* bit k: clause k */
};

struct cor_scratch {
    hs_scratch_t *hs;
    struct sig_memo *memo;         /* SIG_MEMO_SLOTS */
    uint16_t *mtag;                /* per memo entry: its value's hash tag, 0 when empty */
    uint8_t *mlast;                /* per memo set: the way hit last */
    uint16_t *gtag;                /* per group of the bucket: the tag of its gmemo entry */
    struct sig_memo **gmemo;       /* per group of the bucket: its slot to fill after the
                                    * combined scan, or NULL */
    struct sig_mlog *mlog;         /* SIG_MEMO_LOG: the reports of the scan in progress */
    uint32_t nmlog;                /* (SIG_MEMO_LOG + 1: more were dropped) */
    uint64_t memo_hits, memo_miss; /* values replayed, values scanned and kept */
    bool memo_off;                 /* every value scanned (tests compare with it) */
    uint32_t gen;                  /* current event's generation; stamps equal to it are "hit" */
    uint32_t *mstamp;              /* per matcher */
    uint32_t *mdone;               /* per lazy matcher: equal to gen once checked this event */
    struct sig_rclauses *rcl;      /* per rule: the clauses a scan hit this event */
    /* The last address parsed for a cidr matcher: a rule lists up to 20 networks for one
     * field, and parsing it again for each cost 5 % of evaluation. */
    struct {
        uint32_t gen;
        const char *p;
        size_t n;
        int family;
        bool ok;
        uint8_t a[16];
    } addr;
    char *cbuf; /* the combined fields of the event, end to end */
    size_t ccap;
    uint32_t *gfrom; /* per group of the bucket: where its value lies in cbuf */
    uint32_t *gto;   /* (gfrom > gto: not in cbuf) */
    size_t maxgroups;
    uint64_t *cand;           /* candidate rules of this event: one bit per rule, so that they are
                               * visited in rule order without sorting; all clear between events */
    size_t ncandw;            /* words of cand */
    uint64_t *candsum;        /* one bit per word of cand that may be non-zero, so that an
                               * event visits only those (1,825 rules: 29 words, 1-3 used) */
    size_t nsumw;             /* words of candsum */
    struct sig_slotval *slot; /* per field slot: the current event's value */
    pcre2_match_data *md;
    const struct cor_ruleset *rs;
    uint64_t *rule_ns; /* per rule: sampled evaluation time, scaled (relaxed atomics:
                        * the owner writes, metrics read from any thread) */
    uint32_t sample;   /* events since the last timed one */
};

/* sigma_compile.c */
/* Builds rule r's selections and condition from a parsed detection (a yaml node of doc).
 * Returns 0, or -VG_EUNSUP / -VG_EINVAL with a reason in why. */
struct yaml_document_s;
struct yaml_node_s;
int sig_compile_detection(struct cor_ruleset *rs, struct sig_rule *r, struct yaml_document_s *doc,
                          struct yaml_node_s *det, char *why, size_t whylen);
/* PCRE2 code equivalent to a Hyperscan pattern with its flags; NULL when invalid. */
pcre2_code *sig_pcre_compile(const char *pat, unsigned hs_flags);

/* sigma_cond.c */
/* Parses a condition string over r's selections. Returns 0, or -VG_EUNSUP / -VG_EINVAL
 * with a reason in why. Nodes live in rs's arena. */
int sig_cond_parse(struct cor_ruleset *rs, struct sig_rule *r, const char *s,
                   struct sig_cnode **out, char *why, size_t whylen);

/* sigma_index.c */
/* Decides which rules are always evaluated and builds the Hyperscan databases. */
int sig_build_index(struct cor_ruleset *rs, char *err, size_t errlen);
void sig_free_index(struct cor_ruleset *rs);
/* True when vigil's own telemetry can carry field f for category c. */
bool sig_field_native(enum vg_cat c, int typed);

/* sigma_req.c */
/* Assigns field cache slots to every field reference (before routing). */
int sig_assign_slots(struct cor_ruleset *rs);
/* Computes every rule's required hits and its triggers from the matchers' in_db (a
 * pattern Hyperscan later refuses changes them: sig_build_index then runs this again). */
int sig_build_req(struct cor_ruleset *rs);
/* Marks, per scanned matcher, the clauses of its rule it satisfies (clmask), lists per
 * clause its lazy matchers, and per rule the clauses only a scan satisfies (rneed) (after
 * the last sig_build_req and laziness). */
int sig_build_clauses(struct cor_ruleset *rs);
/* Fills every database's act[] (after sig_build_clauses). */
int sig_build_acts(struct cor_ruleset *rs);
/* Builds every bucket's combined database (after sig_build_acts) and decides which groups
 * the memo keeps values of. */
int sig_build_comb(struct cor_ruleset *rs);
void sig_free_clauses(struct cor_ruleset *rs);

/* sigma_eval.c */
/* Three-valued static evaluation: can the rule match with no Hyperscan hit at all? */
bool sig_rule_may_match_without_hits(const struct cor_ruleset *rs, const struct sig_rule *r);

#endif /* VG_SIGMA_INT_H */
