/*
 * corr_load.c - reads Sigma correlation rules (libyaml) into a cor_corrset: parses each
 * correlation document into a draft, collects the name -> id map from every other document,
 * then resolves references, aliases and group-by fields once all files are read (a rule may
 * be referenced before the document that names it).
 *
 * THREAD SAFETY: cor_corrset_load runs on one thread and touches nothing global except the
 * log. The finished set is immutable; ref/unref may be called from any thread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "corr_int.h"
#include "yaml_int.h"

#define MOD "corr"

/* A rule's `name`, for the name -> id map. */
struct cl_name {
    const char *name;
    const char *id; /* NULL when the document has none */
    bool is_corr;
};

struct cl_alias {
    const char *alias;
    size_t n;
    const char **rule; /* rule names as the alias map writes them */
    const char **field;
};

/* A correlation as parsed, before its references are resolved. */
struct cl_draft {
    struct corr_rule *r;
    const char *path;
    const char **raw; /* `rules` as written */
    size_t nraw;
    struct cl_alias *aliases;
    size_t naliases;
    const char **vraw; /* value_count fields as written */
    bool cond_given;
};

struct cl_loader {
    cor_corrset *cs;
    struct cor_corr_load_summary *sum;
    struct cl_name *names;
    size_t nnames, capnames;
    const char **ids; /* ids of every non-correlation document */
    size_t nids, capids;
    struct cl_draft *drafts;
    size_t ndrafts, capdrafts;
};

static const char *const cl_op_names[CORR_OP__COUNT] = {"gt", "gte", "lt", "lte", "eq", "neq"};

/* ---- YAML helpers ------------------------------------------------------------------ */

static const char *cl_dup(cor_corrset *cs, const char *s)
{
    return s ? vg_arena_strndup(cs->arena, s, strlen(s)) : NULL;
}

/* A scalar or a sequence of scalars, copied into the arena. Returns the count, or -1 on a
 * malformed node, -2 on allocation failure. */
static long cl_str_list(cor_corrset *cs, yaml_document_t *doc, yaml_node_t *n, const char ***out)
{
    yaml_node_item_t *it;
    size_t cnt = 0;

    *out = NULL;
    if (!n)
        return 0;
    if (n->type == YAML_SCALAR_NODE) {
        *out = vg_arena_alloc(cs->arena, sizeof(**out));
        if (!*out || !((*out)[0] = cl_dup(cs, cor_yaml_scalar(n))))
            return -2;
        return 1;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return -1;
    *out = vg_arena_alloc(cs->arena,
                          (size_t)(n->data.sequence.items.top - n->data.sequence.items.start + 1) *
                              sizeof(**out));
    if (!*out)
        return -2;
    for (it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const char *s = cor_yaml_scalar(yaml_document_get_node(doc, *it));
        if (!s)
            return -1;
        if (!((*out)[cnt++] = cl_dup(cs, s)))
            return -2;
    }
    return (long)cnt;
}

/* ---- parsing one correlation ---------------------------------------------------------- */

static int cl_condition(struct cl_loader *ld, struct cl_draft *d, yaml_document_t *doc,
                        yaml_node_t *c, char *why, size_t whylen)
{
    struct corr_rule *r = d->r;

    if (!c)
        return 0;
    if (c->type != YAML_MAPPING_NODE) {
        snprintf(why, whylen, "condition is not a mapping");
        return -VG_EINVAL;
    }
    for (yaml_node_pair_t *p = c->data.mapping.pairs.start; p < c->data.mapping.pairs.top; p++) {
        const char *k = cor_yaml_scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        int op = -1;

        if (!k)
            continue;
        if (strcmp(k, "field") == 0) {
            long n = cl_str_list(ld->cs, doc, v, &d->vraw);
            if (n == -2)
                return -VG_ENOMEM;
            if (n <= 0 || n > CORR_MAX_GROUP) {
                snprintf(why, whylen, "condition field is malformed");
                return -VG_EINVAL;
            }
            r->nvfield = (size_t)n;
            continue;
        }
        for (int i = 0; i < CORR_OP__COUNT; i++)
            if (strcmp(k, cl_op_names[i]) == 0)
                op = i;
        if (op < 0) {
            snprintf(why, whylen, "condition has unknown criterion '%s'", k);
            return -VG_EINVAL;
        }
        const char *s = cor_yaml_scalar(v);
        char *end;
        errno = 0;
        long long val = s ? strtoll(s, &end, 10) : 0;
        if (!s || errno || *end != '\0' || end == s) {
            snprintf(why, whylen, "condition %s needs an integer", k);
            return -VG_EINVAL;
        }
        r->cond.mask |= 1u << op;
        r->cond.v[op] = val;
    }
    d->cond_given = r->cond.mask != 0;
    return 0;
}

static int cl_aliases(struct cl_loader *ld, struct cl_draft *d, yaml_document_t *doc,
                      yaml_node_t *a, char *why, size_t whylen)
{
    size_t n;

    if (!a)
        return 0;
    if (a->type != YAML_MAPPING_NODE) {
        snprintf(why, whylen, "aliases is not a mapping");
        return -VG_EINVAL;
    }
    n = (size_t)(a->data.mapping.pairs.top - a->data.mapping.pairs.start);
    d->aliases = vg_arena_alloc(ld->cs->arena, (n + 1) * sizeof(*d->aliases));
    if (!d->aliases)
        return -VG_ENOMEM;
    memset(d->aliases, 0, (n + 1) * sizeof(*d->aliases)); /* arena memory is not zeroed */
    for (yaml_node_pair_t *p = a->data.mapping.pairs.start; p < a->data.mapping.pairs.top; p++) {
        const char *name = cor_yaml_scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *m = yaml_document_get_node(doc, p->value);
        struct cl_alias *al = &d->aliases[d->naliases];
        size_t k;

        if (!name || !m || m->type != YAML_MAPPING_NODE) {
            snprintf(why, whylen, "alias %s is not a mapping of rule -> field", name ? name : "?");
            return -VG_EINVAL;
        }
        k = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
        al->alias = cl_dup(ld->cs, name);
        al->rule = vg_arena_alloc(ld->cs->arena, (k + 1) * sizeof(*al->rule));
        al->field = vg_arena_alloc(ld->cs->arena, (k + 1) * sizeof(*al->field));
        if (!al->alias || !al->rule || !al->field)
            return -VG_ENOMEM;
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < m->data.mapping.pairs.top;
             q++) {
            const char *rn = cor_yaml_scalar(yaml_document_get_node(doc, q->key));
            const char *fn = cor_yaml_scalar(yaml_document_get_node(doc, q->value));
            if (!rn || !fn) {
                snprintf(why, whylen, "alias %s has a malformed entry", name);
                return -VG_EINVAL;
            }
            al->rule[al->n] = cl_dup(ld->cs, rn);
            al->field[al->n] = cl_dup(ld->cs, fn);
            if (!al->rule[al->n] || !al->field[al->n])
                return -VG_ENOMEM;
            al->n++;
        }
        d->naliases++;
    }
    return 0;
}

static int cl_type(const char *t, enum corr_type *out, bool *unsupported)
{
    static const char *const names[] = {"event_count", "value_count", "temporal",
                                        "temporal_ordered"};

    for (size_t i = 0; i < VG_ARRAY_SIZE(names); i++) {
        if (t && strcmp(t, names[i]) == 0) {
            *out = (enum corr_type)i;
            return 0;
        }
    }
    *unsupported = t && (strcmp(t, "value_sum") == 0 || strcmp(t, "value_avg") == 0 ||
                         strcmp(t, "value_percentile") == 0);
    return -1;
}

/* The correlation section. Returns 0, -VG_EINVAL / -VG_EUNSUP with why, or -VG_ENOMEM. */
static int cl_section(struct cl_loader *ld, struct cl_draft *d, yaml_document_t *doc,
                      yaml_node_t *c, char *why, size_t whylen)
{
    struct corr_rule *r = d->r;
    const char *type = cor_yaml_str(doc, c, "type");
    bool unsup = false;
    long n;
    int rc;

    if (c->type != YAML_MAPPING_NODE) {
        snprintf(why, whylen, "correlation is not a mapping");
        return -VG_EINVAL;
    }
    if (cl_type(type, &r->type, &unsup) < 0) {
        snprintf(why, whylen, "correlation type '%s' %s", type ? type : "(none)",
                 unsup ? "not supported" : "unknown");
        return unsup ? -VG_EUNSUP : -VG_EINVAL;
    }
    n = cl_str_list(ld->cs, doc, cor_yaml_get(doc, c, "rules"), &d->raw);
    if (n == -2)
        return -VG_ENOMEM;
    if (n <= 0 || n > CORR_MAX_REFS) {
        snprintf(why, whylen, "rules must list 1 to %d rules", CORR_MAX_REFS);
        return -VG_EINVAL;
    }
    d->nraw = (size_t)n;
    n = cl_str_list(ld->cs, doc, cor_yaml_get(doc, c, "group-by"), &r->group);
    if (n == -2)
        return -VG_ENOMEM;
    if (n < 0 || n > CORR_MAX_GROUP) {
        snprintf(why, whylen, "group-by is malformed");
        return -VG_EINVAL;
    }
    r->ngroup = (size_t)n;
    r->span_us = cor_duration_us(cor_yaml_str(doc, c, "timespan"));
    if (r->span_us <= 0) {
        snprintf(why, whylen, "timespan missing or malformed (want e.g. 30s, 5m, 1h, 1d)");
        return -VG_EINVAL;
    }
    if ((rc = cl_condition(ld, d, doc, cor_yaml_get(doc, c, "condition"), why, whylen)) < 0)
        return rc;
    if ((rc = cl_aliases(ld, d, doc, cor_yaml_get(doc, c, "aliases"), why, whylen)) < 0)
        return rc;
    return 0;
}

/* Checks the condition against the type and fills the defaults. */
static int cl_check_condition(struct cl_draft *d, char *why, size_t whylen)
{
    struct corr_rule *r = d->r;
    const unsigned upper = (1u << CORR_LT) | (1u << CORR_LTE) | (1u << CORR_EQ) | (1u << CORR_NEQ);

    switch (r->type) {
    case CORR_EVENT_COUNT:
    case CORR_VALUE_COUNT:
        if (!d->cond_given) {
            snprintf(why, whylen, "%s needs a condition",
                     r->type == CORR_EVENT_COUNT ? "event_count" : "value_count");
            return -VG_EINVAL;
        }
        if (r->type == CORR_VALUE_COUNT && r->nvfield == 0) {
            snprintf(why, whylen, "value_count needs condition.field");
            return -VG_EINVAL;
        }
        break;
    case CORR_TEMPORAL:
        if (!d->cond_given) { /* every referenced rule */
            r->cond.mask = 1u << CORR_GTE;
            r->cond.v[CORR_GTE] = (int64_t)d->nraw;
        }
        break;
    case CORR_TEMPORAL_ORDERED:
        if (d->cond_given)
            vg_log(VG_LOG_INFO, MOD,
                   "%s: temporal_ordered ignores its condition (all rules, in "
                   "order)",
                   r->info.id);
        r->cond.mask = 1u << CORR_GTE;
        r->cond.v[CORR_GTE] = (int64_t)d->nraw;
        break;
    }
    r->monotone = (r->cond.mask & upper) == 0;
    return 0;
}

/* ---- the loader ------------------------------------------------------------------------ */

static int cl_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    size_t c;
    void *p;

    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 64;
    p = vg_realloc(*arr, c * elem);
    if (!p)
        return -VG_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

static void cl_skip(struct cl_loader *ld, const char *path, const char *id, const char *why,
                    bool unsupported)
{
    ld->sum->skipped++;
    ld->sum->unsupported += unsupported;
    vg_log(VG_LOG_WARN, MOD, "skipped correlation %s (%s): %s", id ? id : "?", path, why);
}

static int cl_add_name(struct cl_loader *ld, const char *name, const char *id, bool is_corr)
{
    struct cl_name *nm;

    if (!name)
        return 0;
    if (cl_grow((void **)&ld->names, &ld->capnames, ld->nnames, sizeof(*ld->names)) < 0)
        return -VG_ENOMEM;
    nm = &ld->names[ld->nnames];
    nm->name = cl_dup(ld->cs, name);
    nm->id = cl_dup(ld->cs, id);
    nm->is_corr = is_corr;
    if (!nm->name || (id && !nm->id))
        return -VG_ENOMEM;
    ld->nnames++;
    ld->sum->names += !is_corr;
    return 0;
}

static int cl_add_id(struct cl_loader *ld, const char *id)
{
    if (!id)
        return 0;
    if (cl_grow((void **)&ld->ids, &ld->capids, ld->nids, sizeof(*ld->ids)) < 0)
        return -VG_ENOMEM;
    if (!(ld->ids[ld->nids] = cl_dup(ld->cs, id)))
        return -VG_ENOMEM;
    ld->nids++;
    return 0;
}

/* One correlation document. Returns 0 (loaded as a draft or skipped) or -VG_ENOMEM. */
static int cl_load_corr(struct cl_loader *ld, const char *path, yaml_document_t *doc,
                        yaml_node_t *root)
{
    const char *id = cor_yaml_str(doc, root, "id"), *title = cor_yaml_str(doc, root, "title");
    const char *gen = cor_yaml_str(doc, root, "generate");
    char why[256] = "";
    struct cl_draft *d;
    struct corr_rule *r;
    int rc;

    ld->sum->correlations++;
    rc = cl_add_name(ld, cor_yaml_str(doc, root, "name"), id, true);
    if (rc < 0)
        return rc;
    {
        enum corr_type t;
        bool unsup = false;
        const char *ty = cor_yaml_str(doc, cor_yaml_get(doc, root, "correlation"), "type");
        if (cl_type(ty, &t, &unsup) < 0 && unsup) { /* say so even when the id is missing */
            snprintf(why, sizeof(why), "correlation type '%s' not supported", ty);
            cl_skip(ld, path, id, why, true);
            return 0;
        }
    }
    if (!id || !title) {
        cl_skip(ld, path, id,
                !id ? "missing id (vigil needs it for alert identity)" : "missing title", false);
        return 0;
    }
    if (cl_grow((void **)&ld->drafts, &ld->capdrafts, ld->ndrafts, sizeof(*ld->drafts)) < 0)
        return -VG_ENOMEM;
    d = &ld->drafts[ld->ndrafts];
    memset(d, 0, sizeof(*d));
    r = d->r = vg_arena_alloc(ld->cs->arena, sizeof(*r));
    if (!r)
        return -VG_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->info.id = cl_dup(ld->cs, id);
    r->info.title = cl_dup(ld->cs, title);
    r->info.description = cl_dup(ld->cs, cor_yaml_str(doc, root, "description"));
    r->info.path = d->path = cl_dup(ld->cs, path);
    r->info.severity = cor_rule_severity(cor_yaml_str(doc, root, "level"));
    r->info.group = COR_GROUP_MACHINE;
    r->name = cl_dup(ld->cs, cor_yaml_str(doc, root, "name"));
    r->generate = gen && strcasecmp(gen, "true") == 0;
    if (!r->info.id || !r->info.title || !r->info.path)
        return -VG_ENOMEM;
    if ((rc = cor_rule_tags(ld->cs->arena, doc, cor_yaml_get(doc, root, "tags"), &r->info)) < 0)
        return rc;
    rc = cl_section(ld, d, doc, cor_yaml_get(doc, root, "correlation"), why, sizeof(why));
    if (rc == 0)
        rc = cl_check_condition(d, why, sizeof(why));
    if (rc == -VG_ENOMEM)
        return rc;
    if (rc < 0) {
        cl_skip(ld, path, id, why, rc == -VG_EUNSUP);
        return 0;
    }
    ld->ndrafts++;
    return 0;
}

static int cl_load_file(struct cl_loader *ld, const char *path)
{
    yaml_parser_t parser;
    FILE *f = fopen(path, "rb");
    int rc = 0;

    if (!f) {
        vg_log_errno(VG_LOG_WARN, MOD, errno, "cannot open rule file %s", path);
        ld->sum->bad_docs++;
        return 0;
    }
    ld->sum->files++;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return -VG_ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    while (rc == 0) {
        yaml_document_t doc;
        yaml_node_t *root;

        if (!yaml_parser_load(&parser, &doc)) {
            vg_log(VG_LOG_WARN, MOD, "%s: YAML error: %s at line %zu", path,
                   parser.problem ? parser.problem : "?", parser.problem_mark.line + 1);
            ld->sum->bad_docs++;
            break; /* the parser cannot resume after an error */
        }
        root = yaml_document_get_root_node(&doc);
        if (!root) {
            yaml_document_delete(&doc);
            break;
        }
        if (root->type != YAML_MAPPING_NODE)
            ld->sum->bad_docs++;
        else if (cor_yaml_get(&doc, root, "correlation"))
            rc = cl_load_corr(ld, path, &doc, root);
        else {
            rc = cl_add_name(ld, cor_yaml_str(&doc, root, "name"), cor_yaml_str(&doc, root, "id"),
                             false);
            if (rc == 0)
                rc = cl_add_id(ld, cor_yaml_str(&doc, root, "id"));
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static bool cl_is_yaml(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

/* Recursive, in sorted order so that correlation indexes are the same on every load. */
static int cl_load_dir(struct cl_loader *ld, const char *dir, int depth)
{
    struct dirent **ents = NULL;
    int n, rc = 0;

    if (depth > 32)
        return 0;
    n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) {
        vg_log_errno(VG_LOG_WARN, MOD, errno, "cannot read rule directory %s", dir);
        return -VG_EIO;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat sb;
        const char *name = ents[i]->d_name;
        if (rc == 0 && name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path) &&
            stat(path, &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                rc = cl_load_dir(ld, path, depth + 1) == -VG_ENOMEM ? -VG_ENOMEM : 0;
            else if (S_ISREG(sb.st_mode) && cl_is_yaml(name))
                rc = cl_load_file(ld, path);
        }
        free(ents[i]); /* scandir allocates with malloc */
    }
    free(ents);
    return rc;
}

/* ---- resolution ------------------------------------------------------------------------- */

static const struct cl_name *cl_find_name(const struct cl_loader *ld, const char *s)
{
    for (size_t i = 0; i < ld->nnames; i++)
        if (strcmp(ld->names[i].name, s) == 0)
            return &ld->names[i];
    return NULL;
}

static const struct cl_name *cl_name_of_id(const struct cl_loader *ld, const char *id)
{
    for (size_t i = 0; i < ld->nnames; i++)
        if (ld->names[i].id && strcasecmp(ld->names[i].id, id) == 0)
            return &ld->names[i];
    return NULL;
}

static bool cl_known_id(const struct cl_loader *ld, const char *id)
{
    for (size_t i = 0; i < ld->nids; i++)
        if (strcasecmp(ld->ids[i], id) == 0)
            return true;
    return false;
}

static bool cl_is_corr_id(const struct cl_loader *ld, const char *s)
{
    for (size_t i = 0; i < ld->ndrafts; i++)
        if (strcasecmp(ld->drafts[i].r->info.id, s) == 0)
            return true;
    return false;
}

/* `rules` -> base rule ids. Returns 0, -VG_EINVAL / -VG_EUNSUP with why. */
static int cl_resolve_refs(struct cl_loader *ld, struct cl_draft *d, char *why, size_t whylen)
{
    struct corr_rule *r = d->r;

    r->refs = vg_arena_alloc(ld->cs->arena, d->nraw * sizeof(*r->refs));
    if (!r->refs)
        return -VG_ENOMEM;
    for (size_t p = 0; p < d->nraw; p++) {
        const struct cl_name *nm = cl_find_name(ld, d->raw[p]);
        const char *s = d->raw[p];

        if ((nm && nm->is_corr) || (!nm && cl_is_corr_id(ld, s))) {
            snprintf(why, whylen, "references correlation '%s': chaining is not supported", s);
            return -VG_EUNSUP;
        }
        if (nm && !nm->id) {
            snprintf(why, whylen, "referenced rule '%s' has no id", s);
            return -VG_EINVAL;
        }
        if (!nm && !cl_known_id(ld, s)) {
            snprintf(why, whylen, "references unknown rule '%s'", s);
            return -VG_EINVAL;
        }
        r->refs[p] = nm ? nm->id : s;
        for (size_t q = 0; q < p; q++) {
            if (strcasecmp(r->refs[q], r->refs[p]) == 0) {
                snprintf(why, whylen, "rule '%s' referenced twice", s);
                return -VG_EINVAL;
            }
        }
    }
    r->nrefs = d->nraw;
    return 0;
}

/* The field read for `want` (a group-by or value field name) from base rule p: the alias's
 * field for that rule if `want` is an alias, else `want` itself. */
static const char *cl_field_for(const struct cl_loader *ld, const struct cl_draft *d,
                                const char *want, size_t p)
{
    const struct cl_name *nm = cl_name_of_id(ld, d->r->refs[p]);

    for (size_t a = 0; a < d->naliases; a++) {
        const struct cl_alias *al = &d->aliases[a];
        if (strcmp(al->alias, want) != 0)
            continue;
        for (size_t k = 0; k < al->n; k++)
            if (strcmp(al->rule[k], d->raw[p]) == 0 || (nm && strcmp(al->rule[k], nm->name) == 0) ||
                strcasecmp(al->rule[k], d->r->refs[p]) == 0)
                return al->field[k];
        vg_log(VG_LOG_WARN, MOD,
               "%s: alias %s has no field for rule %s; its events carry no "
               "value",
               d->r->info.id, want, d->raw[p]);
        return want;
    }
    return want;
}

static int cl_resolve_fields(struct cl_loader *ld, struct cl_draft *d)
{
    struct corr_rule *r = d->r;
    size_t np = r->nrefs;

    r->gfield = vg_arena_alloc(ld->cs->arena, (r->ngroup * np + 1) * sizeof(*r->gfield));
    r->vfield = vg_arena_alloc(ld->cs->arena, (r->nvfield * np + 1) * sizeof(*r->vfield));
    if (!r->gfield || !r->vfield)
        return -VG_ENOMEM;
    for (size_t p = 0; p < np; p++) {
        for (size_t g = 0; g < r->ngroup; g++)
            r->gfield[g * np + p] = cl_field_for(ld, d, r->group[g], p);
        for (size_t f = 0; f < r->nvfield; f++)
            r->vfield[f * np + p] = cl_field_for(ld, d, d->vraw[f], p);
    }
    return 0;
}

static int cl_index_base(cor_corrset *cs, const struct corr_rule *r, uint32_t ci, size_t p)
{
    uint64_t key = corr_base_key(r->refs[p]);
    struct corr_base *head = vg_u64map_get(&cs->bases, key), *b;
    struct corr_use *u;

    for (b = head; b && strcasecmp(b->id, r->refs[p]) != 0; b = b->next)
        ;
    if (!b) {
        b = vg_arena_alloc(cs->arena, sizeof(*b));
        if (!b)
            return -VG_ENOMEM;
        memset(b, 0, sizeof(*b));
        b->id = r->refs[p];
        b->next = head;
        if (vg_u64map_put(&cs->bases, key, b) < 0)
            return -VG_ENOMEM;
    }
    u = vg_arena_alloc(cs->arena, (b->nuses + 1) * sizeof(*u));
    if (!u)
        return -VG_ENOMEM;
    if (b->nuses)
        memcpy(u, b->uses, b->nuses * sizeof(*u));
    u[b->nuses].corr = ci;
    u[b->nuses].pos = (uint32_t)p;
    b->uses = u;
    b->nuses++;
    b->generate = b->generate || r->generate;
    return 0;
}

static int cl_push(cor_corrset *cs, struct corr_rule *r)
{
    struct corr_rule **n = vg_realloc(cs->rules, (cs->nrules + 1) * sizeof(*n));

    if (!n)
        return -VG_ENOMEM;
    cs->rules = n;
    r->info.index = (uint32_t)cs->nrules;
    for (size_t p = 0; p < r->nrefs; p++)
        if (cl_index_base(cs, r, r->info.index, p) < 0)
            return -VG_ENOMEM;
    cs->rules[cs->nrules++] = r;
    if (r->span_us > cs->max_span_us)
        cs->max_span_us = r->span_us;
    return 0;
}

static int cl_resolve_all(struct cl_loader *ld)
{
    for (size_t i = 0; i < ld->ndrafts; i++) {
        struct cl_draft *d = &ld->drafts[i];
        char why[256] = "";
        bool dup = false;
        int rc;

        for (size_t k = 0; k < ld->cs->nrules; k++)
            dup = dup || strcasecmp(ld->cs->rules[k]->info.id, d->r->info.id) == 0;
        if (dup) {
            cl_skip(ld, d->path, d->r->info.id, "duplicate correlation id", false);
            continue;
        }
        rc = cl_resolve_refs(ld, d, why, sizeof(why));
        if (rc == 0)
            rc = cl_resolve_fields(ld, d);
        if (rc == 0)
            rc = cl_push(ld->cs, d->r);
        if (rc == -VG_ENOMEM)
            return rc;
        if (rc < 0) {
            cl_skip(ld, d->path, d->r->info.id, why, rc == -VG_EUNSUP);
            continue;
        }
        ld->sum->loaded++;
    }
    return 0;
}

/* ---- public ------------------------------------------------------------------------------ */

uint64_t corr_base_key(const char *id)
{
    char buf[128];
    size_t n = 0;
    uint64_t h;

    for (; id[n] && n < sizeof(buf); n++)
        buf[n] = (char)((id[n] >= 'A' && id[n] <= 'Z') ? id[n] + 32 : id[n]);
    h = vg_hash64(buf, n, 0x636f7272);
    return h ? h : 1;
}

const struct corr_base *corr_base_find(const cor_corrset *cs, const char *id)
{
    const struct corr_base *b;

    if (!cs || !id)
        return NULL;
    for (b = vg_u64map_get(&cs->bases, corr_base_key(id)); b; b = b->next)
        if (strcasecmp(b->id, id) == 0)
            return b;
    return NULL;
}

static void cl_free(cor_corrset *cs)
{
    if (!cs)
        return;
    vg_u64map_free(&cs->bases);
    vg_free(cs->rules);
    if (cs->arena)
        vg_arena_destroy(cs->arena);
    vg_free(cs);
}

int cor_corrset_load(const char *const *dirs, size_t ndirs, cor_corrset **out,
                     struct cor_corr_load_summary *sum, char *err, size_t errlen)
{
    struct cor_corr_load_summary local;
    struct cl_loader ld;
    int rc = 0;

    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof(*sum));
    memset(&ld, 0, sizeof(ld));
    *out = NULL;
    ld.sum = sum;
    ld.cs = vg_calloc(1, sizeof(*ld.cs));
    if (!ld.cs || !(ld.cs->arena = vg_arena_new(1 << 14)) || vg_u64map_init(&ld.cs->bases, 16)) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    atomic_init(&ld.cs->refs, 1);
    for (size_t i = 0; i < ndirs && rc == 0; i++) {
        struct stat sb;
        if (stat(dirs[i], &sb) == 0 && S_ISREG(sb.st_mode))
            rc = cl_load_file(&ld, dirs[i]);
        else
            rc = cl_load_dir(&ld, dirs[i], 0);
        if (rc < 0 && rc != -VG_ENOMEM)
            snprintf(err, errlen, "cannot read rule directory %s", dirs[i]);
    }
    if (rc == 0)
        rc = cl_resolve_all(&ld);
    if (rc < 0)
        goto out_free;
    vg_log(VG_LOG_INFO, MOD,
           "correlations: %u files, %u seen, %u loaded, %u skipped (%u "
           "unsupported), %u named base rules",
           sum->files, sum->correlations, sum->loaded, sum->skipped, sum->unsupported, sum->names);
    *out = ld.cs;
    ld.cs = NULL;

out_free:
    if (rc == -VG_ENOMEM)
        snprintf(err, errlen, "out of memory loading correlation rules");
    cl_free(ld.cs);
    vg_free(ld.names);
    vg_free(ld.ids);
    vg_free(ld.drafts);
    return rc;
}

void cor_corrset_ref(cor_corrset *cs)
{
    atomic_fetch_add_explicit(&cs->refs, 1, memory_order_relaxed);
}

void cor_corrset_unref(cor_corrset *cs)
{
    /* acq_rel: the last owner sees every other owner's reads finished before freeing. */
    if (cs && atomic_fetch_sub_explicit(&cs->refs, 1, memory_order_acq_rel) == 1)
        cl_free(cs);
}

size_t cor_corrset_count(const cor_corrset *cs)
{
    return cs ? cs->nrules : 0;
}

const struct cor_rule_info *cor_corrset_rule(const cor_corrset *cs, uint32_t i)
{
    return cs && i < cs->nrules ? &cs->rules[i]->info : NULL;
}

const struct cor_rule_info *cor_corrset_find(const cor_corrset *cs, const char *id)
{
    for (size_t i = 0; cs && id && i < cs->nrules; i++)
        if (strcasecmp(cs->rules[i]->info.id, id) == 0)
            return &cs->rules[i]->info;
    return NULL;
}

bool cor_corrset_wants(const cor_corrset *cs, const char *rule_id)
{
    return corr_base_find(cs, rule_id) != NULL;
}

bool cor_corrset_suppresses(const cor_corrset *cs, const char *rule_id)
{
    const struct corr_base *b = corr_base_find(cs, rule_id);

    return b != NULL && !b->generate;
}
