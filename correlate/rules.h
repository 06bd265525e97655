/*
 * rules.h - the Sigma rule engine: load rule files, compile them into one shared, read-only
 * ruleset, and evaluate events against it with per-thread scratch space (Suricata's
 * DetectEngineCtx / DetectEngineThreadCtx split).
 *
 * THREAD SAFETY: a cor_ruleset is immutable after cor_ruleset_load and may be used by any
 * number of threads at once; its reference count is atomic. A cor_scratch belongs to one
 * thread.
 */
#ifndef VG_RULES_H
#define VG_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.pb-c.h"
#include "evview.h"

typedef struct cor_ruleset cor_ruleset;
typedef struct cor_scratch cor_scratch;

/* How matches of one rule fold into one alert (vigil's extension `vigil.group`, default
 * process): all matches on the same machine whose anchor process is the same, within
 * the rule's window, are one alert. */
enum cor_group {
    COR_GROUP_PROCESS = 0, /* the acting process (the created one for process_creation) */
    COR_GROUP_PARENT,      /* its parent: one alert per run of a script */
    COR_GROUP_MACHINE,     /* the machine */
};

struct cor_rule_info {
    const char *id; /* Sigma id (UUID) */
    const char *title;
    const char *description;
    const char *path; /* file it came from */
    Vigil__Severity severity;
    Vigil__Category category;
    const char *const *techniques; /* "T1059.001", ... */
    size_t n_techniques;
    const char *const *tactics; /* "execution", ... */
    size_t n_tactics;
    enum cor_group group;
    int64_t fold_window_us; /* vigil.window: matches of one anchor fold into one alert per
                               window of event time (aligned to the epoch); 0: no limit */
    bool suppressed;        /* vigil.suppress: matches are counted, no alert is raised */
    uint32_t index;         /* dense index in the ruleset, for per-rule counters */
};

struct cor_load_summary {
    unsigned files;              /* YAML files read */
    unsigned loaded;             /* rules compiled */
    unsigned skipped;            /* rules not loaded (unsupported or broken), each logged */
    unsigned unsupported_fields; /* rules skipped for naming a field vigil cannot supply */
    unsigned correlations;       /* correlation rules (loaded by the correlation engine) */
    unsigned extra_fields;       /* loaded rules reading a field vigil's own telemetry never
                                  * carries for their logsource: they can only match imported
                                  * events (whose untyped fields arrive in vg_evview.extra) */
};

/*
 * Loads every *.yml / *.yaml under the directories (recursively) and compiles them.
 * A broken or unsupported rule is logged (file, rule id, reason), counted in *sum and
 * skipped; it never stops the others. Returns 0 and *out (reference count 1), or a
 * negative vg_err when nothing could be built (detail in err).
 */
int cor_ruleset_load(const char *const *dirs, size_t ndirs, cor_ruleset **out,
                     struct cor_load_summary *sum, char *err, size_t errlen);
void cor_ruleset_ref(cor_ruleset *rs);
void cor_ruleset_unref(cor_ruleset *rs);
size_t cor_ruleset_count(const cor_ruleset *rs);
/* Whether some rule that events of category cat (enum vg_cat) reach reads a lineage field
 * (AncestorImage, AncestorCommandLine): only then does a shard walk the event's ancestors
 * to fill them. cat < 0: of any category. */
bool cor_ruleset_uses_lineage(const cor_ruleset *rs, int cat);
const struct cor_rule_info *cor_ruleset_rule(const cor_ruleset *rs, uint32_t index);

cor_scratch *cor_scratch_new(const cor_ruleset *rs);
void cor_scratch_destroy(cor_scratch *s);

/* Called once per rule that matches; the info is owned by the ruleset. */
typedef void (*cor_match_fn)(void *ctx, const struct cor_rule_info *rule);

/* CPU time spent evaluating the rule with this index on this scratch so far, in ns
 * (sampled: one event in 16, scaled). Any thread (relaxed). */
uint64_t cor_scratch_rule_ns(const cor_scratch *s, uint32_t index);

/* Evaluates one event. Returns the number of rules that matched. */
int cor_rules_eval(const cor_ruleset *rs, cor_scratch *s, const struct vg_evview *v,
                   cor_match_fn fn, void *ctx);

#endif /* VG_RULES_H */
