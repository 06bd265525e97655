/*
 * sigma_load.c - reads Sigma rule files (libyaml) into a cor_ruleset: metadata, logsource
 * routing, severity and MITRE mapping; hands each detection to sigma_compile.c.
 *
 * THREAD SAFETY: cor_ruleset_load runs on one thread and touches nothing global except the
 * log. The finished ruleset is immutable; ref/unref may be called from any thread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

#include "sigma_int.h"
#include "yaml_int.h"

#define MOD "sigma"

struct sig_loader {
    cor_ruleset *rs;
    struct cor_load_summary *sum;
};

/* ---- small helpers ---------------------------------------------------------------- */

static const char *sig_adup(cor_ruleset *rs, const char *s)
{
    return s ? vg_arena_strndup(rs->arena, s, strlen(s)) : NULL;
}

/* ---- logsource ---------------------------------------------------------------------- */

/* Routes a rule by its logsource. Returns 0 or -VG_EUNSUP with why. */
static int sig_logsource(cor_ruleset *rs, struct sig_rule *r, yaml_document_t *doc, yaml_node_t *ls,
                         char *why, size_t whylen)
{
    const char *product = cor_yaml_str(doc, ls, "product");
    const char *category = cor_yaml_str(doc, ls, "category");
    const char *service = cor_yaml_str(doc, ls, "service");

    if (!ls || ls->type != YAML_MAPPING_NODE) {
        snprintf(why, whylen, "no logsource");
        return -VG_EUNSUP;
    }
    r->os = VIGIL__OS__OS_UNKNOWN;
    if (product) {
        if (strcasecmp(product, "windows") == 0)
            r->os = VIGIL__OS__OS_WINDOWS;
        else if (strcasecmp(product, "linux") == 0)
            r->os = VIGIL__OS__OS_LINUX;
        else if (strcasecmp(product, "macos") == 0)
            r->os = VIGIL__OS__OS_MACOS;
        else {
            snprintf(why, whylen, "logsource product '%s' not supported", product);
            return -VG_EUNSUP;
        }
    }
    if (category) {
        enum vg_cat c;
        if (strcasecmp(category, "registry_event") == 0) {
            r->cats[r->ncats++] = VG_CAT_REGISTRY_ADD;
            r->cats[r->ncats++] = VG_CAT_REGISTRY_DELETE;
            r->cats[r->ncats++] = VG_CAT_REGISTRY_SET;
            r->cats[r->ncats++] = VG_CAT_REGISTRY_RENAME;
            r->cats[r->ncats++] = VG_CAT_REGISTRY_EVENT;
            return 0;
        }
        c = vg_cat_by_name(category);
        if (c == VG_CAT_NONE || c == VG_CAT_OTHER) {
            snprintf(why, whylen, "logsource category '%s' not supported", category);
            return -VG_EUNSUP;
        }
        r->cats[r->ncats++] = c;
        return 0;
    }
    if (service) {
        r->service = sig_adup(rs, service);
        return r->service ? 0 : -VG_ENOMEM;
    }
    snprintf(why, whylen, "logsource has neither category nor service");
    return -VG_EUNSUP;
}

static bool sig_id_taken(const cor_ruleset *rs, const char *id)
{
    size_t i;

    for (i = 0; i < rs->nrules; i++)
        if (strcasecmp(rs->rules[i]->info.id, id) == 0)
            return true;
    return false;
}

static int sig_push_rule(cor_ruleset *rs, struct sig_rule *r)
{
    if (rs->nrules == rs->cap_rules) {
        size_t cap = rs->cap_rules ? rs->cap_rules * 2 : 256;
        struct sig_rule **n = vg_realloc(rs->rules, cap * sizeof(*n));
        if (!n)
            return -VG_ENOMEM;
        rs->rules = n;
        rs->cap_rules = cap;
    }
    r->info.index = (uint32_t)rs->nrules;
    rs->rules[rs->nrules++] = r;
    return 0;
}

/* Drops the matchers a rejected rule had already added (they are always the newest). */
static void sig_drop_matchers(cor_ruleset *rs, uint32_t rule)
{
    while (rs->nm > 0 && rs->m[rs->nm - 1].rule == rule) {
        if (rs->m[rs->nm - 1].re)
            pcre2_code_free(rs->m[rs->nm - 1].re);
        rs->nm--;
    }
}

/* vigil's extension of a rule: `vigil: {group: process|parent|machine, window: 1h,
 * suppress: true}`. A malformed window is logged and ignored. */
static void sig_group_opt(cor_ruleset *rs, struct sig_rule *r, yaml_document_t *doc,
                          yaml_node_t *root)
{
    yaml_node_t *vn = cor_yaml_get(doc, root, "vigil");
    const char *g = cor_yaml_str(doc, vn, "group");
    const char *w = cor_yaml_str(doc, vn, "window");
    const char *sup = cor_yaml_str(doc, vn, "suppress");

    (void)rs;
    r->info.fold_window_us = VG_MAX(cor_duration_us(w), 0);
    if (w != NULL && r->info.fold_window_us == 0)
        vg_log(VG_LOG_WARN, "sigma",
               "rule %s: vigil.window '%s' is not a duration (30s, 10m, "
               "1h, 2d): ignored",
               r->info.id ? r->info.id : "?", w);
    r->info.suppressed =
        sup != NULL && (strcasecmp(sup, "true") == 0 || strcasecmp(sup, "yes") == 0);
    r->info.group = COR_GROUP_PROCESS;
    if (!g)
        return;
    if (strcasecmp(g, "parent") == 0)
        r->info.group = COR_GROUP_PARENT;
    else if (strcasecmp(g, "machine") == 0)
        r->info.group = COR_GROUP_MACHINE;
}

/* One YAML document that is a rule. Returns 0 when loaded, -VG_EUNSUP/-VG_EINVAL when
 * skipped (why says why), -VG_ENOMEM. */
static int sig_load_doc(struct sig_loader *ld, const char *path, yaml_document_t *doc,
                        yaml_node_t *root, char *why, size_t whylen)
{
    cor_ruleset *rs = ld->rs;
    struct sig_rule *r;
    const char *id = cor_yaml_str(doc, root, "id");
    const char *title = cor_yaml_str(doc, root, "title");
    int rc;

    if (!id || !title) {
        snprintf(why, whylen, "missing %s", !id ? "id" : "title");
        return -VG_EINVAL;
    }
    if (sig_id_taken(rs, id)) {
        snprintf(why, whylen, "duplicate rule id");
        return -VG_EINVAL;
    }
    r = vg_arena_alloc(rs->arena, sizeof(*r));
    if (!r)
        return -VG_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->info.id = sig_adup(rs, id);
    r->info.title = sig_adup(rs, title);
    r->info.description = sig_adup(rs, cor_yaml_str(doc, root, "description"));
    r->info.path = sig_adup(rs, path);
    r->info.severity = cor_rule_severity(cor_yaml_str(doc, root, "level"));
    r->info.index = (uint32_t)rs->nrules;
    if (!r->info.id || !r->info.title || !r->info.path)
        return -VG_ENOMEM;
    if ((rc = cor_rule_tags(rs->arena, doc, cor_yaml_get(doc, root, "tags"), &r->info)) < 0)
        return rc;
    sig_group_opt(rs, r, doc, root);
    rc = sig_logsource(rs, r, doc, cor_yaml_get(doc, root, "logsource"), why, whylen);
    if (rc < 0)
        return rc;
    rc = sig_compile_detection(rs, r, doc, cor_yaml_get(doc, root, "detection"), why, whylen);
    if (rc < 0) {
        sig_drop_matchers(rs, r->info.index);
        return rc;
    }
    return sig_push_rule(rs, r);
}

static void sig_skip(struct sig_loader *ld, const char *path, const char *id, const char *why)
{
    ld->sum->skipped++;
    vg_log(VG_LOG_WARN, MOD, "skipped rule %s (%s): %s", id ? id : "?", path, why);
}

/* Every document of one file. Errors of one document never stop the next one. */
static int sig_load_file(struct sig_loader *ld, const char *path)
{
    yaml_parser_t parser;
    FILE *f = fopen(path, "rb");
    int rc = 0;

    if (!f) {
        vg_log_errno(VG_LOG_WARN, MOD, errno, "cannot open rule file %s", path);
        ld->sum->skipped++;
        return 0;
    }
    ld->sum->files++;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return -VG_ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    for (;;) {
        yaml_document_t doc;
        yaml_node_t *root;
        char why[256] = "";

        if (!yaml_parser_load(&parser, &doc)) {
            snprintf(why, sizeof(why), "YAML error: %s at line %zu",
                     parser.problem ? parser.problem : "?", parser.problem_mark.line + 1);
            sig_skip(ld, path, NULL, why);
            break; /* the parser cannot resume after an error */
        }
        root = yaml_document_get_root_node(&doc);
        if (!root) {
            yaml_document_delete(&doc);
            break; /* end of stream */
        }
        if (root->type != YAML_MAPPING_NODE) {
            sig_skip(ld, path, NULL, "document is not a mapping");
        } else if (cor_yaml_get(&doc, root, "correlation")) {
            ld->sum->correlations++;
        } else if (cor_yaml_get(&doc, root, "action")) {
            vg_log(VG_LOG_WARN, MOD, "%s: rule collection document (action: %s) skipped", path,
                   cor_yaml_str(&doc, root, "action") ? cor_yaml_str(&doc, root, "action") : "?");
            ld->sum->skipped++;
        } else {
            rc = sig_load_doc(ld, path, &doc, root, why, sizeof(why));
            if (rc == 0)
                ld->sum->loaded++;
            else if (rc != -VG_ENOMEM) {
                if (strncmp(why, "unsupported field", 17) == 0)
                    ld->sum->unsupported_fields++;
                sig_skip(ld, path, cor_yaml_str(&doc, root, "id"), why);
                rc = 0;
            }
        }
        yaml_document_delete(&doc);
        if (rc < 0)
            break;
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

static bool sig_is_yaml(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".yaml") == 0);
}

/* Recursive, in sorted order so that rule indexes are the same on every load. */
static int sig_load_dir(struct sig_loader *ld, const char *dir, int depth)
{
    struct dirent **ents = NULL;
    int n, i, rc = 0;

    if (depth > 32)
        return 0;
    n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) {
        vg_log_errno(VG_LOG_WARN, MOD, errno, "cannot read rule directory %s", dir);
        return -VG_EIO;
    }
    for (i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        const char *name = ents[i]->d_name;
        if (rc == 0 && name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path) &&
            stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rc = sig_load_dir(ld, path, depth + 1) == -VG_ENOMEM ? -VG_ENOMEM : 0;
            else if (S_ISREG(st.st_mode) && sig_is_yaml(name))
                rc = sig_load_file(ld, path);
        }
        free(ents[i]); /* scandir allocates with malloc */
    }
    free(ents);
    return rc;
}

/* ---- public ------------------------------------------------------------------------- */

static void sig_ruleset_free(cor_ruleset *rs)
{
    size_t i;

    if (!rs)
        return;
    sig_free_index(rs);
    for (i = 0; i < rs->nm; i++)
        if (rs->m[i].re)
            pcre2_code_free(rs->m[i].re);
    vg_free(rs->m);
    vg_free(rs->rules);
    if (rs->arena)
        vg_arena_destroy(rs->arena);
    vg_free(rs);
}

int cor_ruleset_load(const char *const *dirs, size_t ndirs, cor_ruleset **out,
                     struct cor_load_summary *sum, char *err, size_t errlen)
{
    struct cor_load_summary local;
    struct sig_loader ld;
    cor_ruleset *rs;
    size_t i;
    int rc = 0;

    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof(*sum));
    *out = NULL;
    rs = vg_calloc(1, sizeof(*rs));
    if (!rs || !(rs->arena = vg_arena_new(1 << 16))) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    atomic_init(&rs->refs, 1);
    ld.rs = rs;
    ld.sum = sum;
    for (i = 0; i < ndirs; i++) {
        struct stat st;
        if (stat(dirs[i], &st) == 0 && S_ISREG(st.st_mode))
            rc = sig_load_file(&ld, dirs[i]);
        else
            rc = sig_load_dir(&ld, dirs[i], 0);
        if (rc == -VG_ENOMEM)
            goto out_free;
        if (rc < 0) {
            snprintf(err, errlen, "cannot read rule directory %s", dirs[i]);
            goto out_free;
        }
    }
    for (i = 0; i < rs->nrules; i++)
        sum->extra_fields += rs->rules[i]->extra_only;
    rc = sig_build_index(rs, err, errlen);
    if (rc < 0)
        goto out_free;
    vg_log(VG_LOG_INFO, MOD,
           "rules: %u files, %u loaded, %u skipped (%u for fields), %u correlation, "
           "%u reading fields only imported events carry",
           sum->files, sum->loaded, sum->skipped, sum->unsupported_fields, sum->correlations,
           sum->extra_fields);
    *out = rs;
    return 0;

out_free:
    if (rc == -VG_ENOMEM)
        snprintf(err, errlen, "out of memory loading rules");
    sig_ruleset_free(rs);
    return rc;
}

void cor_ruleset_ref(cor_ruleset *rs)
{
    atomic_fetch_add_explicit(&rs->refs, 1, memory_order_relaxed);
}

void cor_ruleset_unref(cor_ruleset *rs)
{
    /* acq_rel: the last owner sees every other owner's reads finished before freeing. */
    if (rs && atomic_fetch_sub_explicit(&rs->refs, 1, memory_order_acq_rel) == 1)
        sig_ruleset_free(rs);
}

_Static_assert(VG_CAT__COUNT <= 64, "lineage_cats has a bit per category");

bool cor_ruleset_uses_lineage(const cor_ruleset *rs, int cat)
{
    if (rs == NULL)
        return false;
    return cat < 0 ? rs->lineage_cats != 0
                   : cat < 64 && (rs->lineage_cats & (UINT64_C(1) << cat)) != 0;
}

size_t cor_ruleset_count(const cor_ruleset *rs)
{
    return rs ? rs->nrules : 0;
}

const struct cor_rule_info *cor_ruleset_rule(const cor_ruleset *rs, uint32_t index)
{
    if (!rs || index >= rs->nrules)
        return NULL;
    return &rs->rules[index]->info;
}
