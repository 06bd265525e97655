/*
 * yaml_util.c - what the Sigma rule and correlation loaders share (yaml_int.h): libyaml
 * helpers, durations, and a rule's level and attack.* tags.
 *
 * THREAD SAFETY: reentrant.
 */
#include "yaml_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vg.h"

static const char *const cor_tactic_names[] = {
    "reconnaissance",  "resource-development",
    "initial-access",  "execution",
    "persistence",     "privilege-escalation",
    "defense-evasion", "credential-access",
    "discovery",       "lateral-movement",
    "collection",      "command-and-control",
    "exfiltration",    "impact",
};

static const Vigil__Category cor_tactic_cat[] = {
    VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY,
    VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY,
    VIGIL__CATEGORY__CATEGORY_INITIAL_ACCESS,
    VIGIL__CATEGORY__CATEGORY_EXECUTION,
    VIGIL__CATEGORY__CATEGORY_PERSISTENCE,
    VIGIL__CATEGORY__CATEGORY_PRIVILEGE_ESCALATION,
    VIGIL__CATEGORY__CATEGORY_DEFENSE_EVASION,
    VIGIL__CATEGORY__CATEGORY_CREDENTIAL_ACCESS,
    VIGIL__CATEGORY__CATEGORY_DISCOVERY,
    VIGIL__CATEGORY__CATEGORY_LATERAL_MOVEMENT,
    VIGIL__CATEGORY__CATEGORY_COLLECTION,
    VIGIL__CATEGORY__CATEGORY_COMMAND_AND_CONTROL,
    VIGIL__CATEGORY__CATEGORY_EXFILTRATION,
    VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY, /* impact: see cor_ransom */
};

Vigil__Severity cor_rule_severity(const char *level)
{
    if (!level)
        return VIGIL__SEVERITY__SEVERITY_MEDIUM;
    if (strcasecmp(level, "informational") == 0)
        return VIGIL__SEVERITY__SEVERITY_INFORMATIONAL;
    if (strcasecmp(level, "low") == 0)
        return VIGIL__SEVERITY__SEVERITY_LOW;
    if (strcasecmp(level, "high") == 0 || strcasecmp(level, "critical") == 0)
        return VIGIL__SEVERITY__SEVERITY_HIGH;
    return VIGIL__SEVERITY__SEVERITY_MEDIUM;
}

/* Returns the tactic index of an attack.* tag (underscores accepted), or -1. */
static int cor_tactic(const char *t)
{
    char buf[64];
    size_t i;

    for (i = 0; t[i] && i + 1 < sizeof(buf); i++)
        buf[i] = t[i] == '_' ? '-' : (char)((t[i] >= 'A' && t[i] <= 'Z') ? t[i] + 32 : t[i]);
    buf[i] = 0;
    for (i = 0; i < VG_ARRAY_SIZE(cor_tactic_names); i++)
        if (strcmp(buf, cor_tactic_names[i]) == 0)
            return (int)i;
    return -1;
}

static bool cor_is_technique(const char *t)
{
    size_t i;

    if ((t[0] != 't' && t[0] != 'T') || !t[1])
        return false;
    for (i = 1; t[i]; i++)
        if (!(t[i] >= '0' && t[i] <= '9') && t[i] != '.')
            return false;
    return true;
}

/* Whether the techniques make the alert a ransomware one: T1486 (data encrypted for
 * impact) always, T1490 (inhibit system recovery: shadow copies, backups deleted) under
 * the impact tactic. Impact has no category of its own; these two are what ransomware
 * does, and CATEGORY_RANSOMWARE is the category analysts triage first. */
static bool cor_ransom(const char *const *tech, size_t ntech, const char *const *tac, size_t ntac)
{
    bool impact = false;

    for (size_t i = 0; i < ntac; i++)
        impact |= strcmp(tac[i], "impact") == 0;
    for (size_t i = 0; i < ntech; i++) {
        if (strncasecmp(tech[i], "T1486", 5) == 0 && (tech[i][5] == '\0' || tech[i][5] == '.'))
            return true;
        if (impact && strncasecmp(tech[i], "T1490", 5) == 0 &&
            (tech[i][5] == '\0' || tech[i][5] == '.'))
            return true;
    }
    return false;
}

yaml_node_t *cor_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p;

    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);

        if (k != NULL && k->type == YAML_SCALAR_NODE &&
            strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

const char *cor_yaml_scalar(yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

const char *cor_yaml_str(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    return cor_yaml_scalar(cor_yaml_get(doc, map, key));
}

int64_t cor_duration_us(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || v <= 0 || v > 366LL * 86400 || end[0] == '\0' || end[1] != '\0')
        return -1;
    switch (end[0]) {
    case 's':
        return v * VG_US_PER_SEC;
    case 'm':
        return v * 60 * VG_US_PER_SEC;
    case 'h':
        return v * 3600 * VG_US_PER_SEC;
    case 'd':
        return v * VG_US_PER_DAY;
    default:
        return -1;
    }
}

/* ---- rule metadata ------------------------------------------------------------------ */

/* attack.* tags -> techniques ("T1059.001"), tactics and the category of the first
 * tactic (ransomware for T1486, or T1490 under impact: cor_ransom). */
int cor_rule_tags(vg_arena *arena, yaml_document_t *doc, yaml_node_t *tags,
                  struct cor_rule_info *ri)
{
    const char **tech, **tac;
    size_t ntech = 0, ntac = 0, n;
    bool have_cat = false;
    yaml_node_item_t *it;

    ri->category = VIGIL__CATEGORY__CATEGORY_SUSPICIOUS_ACTIVITY;
    if (!tags || tags->type != YAML_SEQUENCE_NODE)
        return 0;
    n = (size_t)(tags->data.sequence.items.top - tags->data.sequence.items.start);
    tech = vg_arena_alloc(arena, (n + 1) * sizeof(*tech));
    tac = vg_arena_alloc(arena, (n + 1) * sizeof(*tac));
    if (!tech || !tac)
        return -VG_ENOMEM;
    for (it = tags->data.sequence.items.start; it < tags->data.sequence.items.top; it++) {
        const char *t = cor_yaml_scalar(yaml_document_get_node(doc, *it));
        int ti;
        if (!t || strncasecmp(t, "attack.", 7) != 0)
            continue;
        t += 7;
        if (cor_is_technique(t)) {
            char *d = vg_arena_strndup(arena, t, strlen(t));
            if (!d)
                return -VG_ENOMEM;
            d[0] = 'T';
            tech[ntech++] = d;
        } else if ((ti = cor_tactic(t)) >= 0) {
            tac[ntac++] = cor_tactic_names[ti];
            if (!have_cat) {
                ri->category = cor_tactic_cat[ti];
                have_cat = true;
            }
        }
    }
    ri->techniques = tech;
    ri->n_techniques = ntech;
    ri->tactics = tac;
    ri->n_tactics = ntac;
    if (cor_ransom(tech, ntech, tac, ntac))
        ri->category = VIGIL__CATEGORY__CATEGORY_RANSOMWARE;
    return 0;
}
