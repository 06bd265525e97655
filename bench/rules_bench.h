/*
 * rules_bench.h - `vigil bench-rules`: the cost of Sigma rule evaluation alone, as a
 * function of the number of rules loaded, on two event mixes: the simulator's realistic
 * mix (bench/sim.h) and the real recordings (shared/data/telemetry through the JSON-lines
 * importer). Views are built once before timing; what is timed is cor_rules_eval alone
 * ("eval") and vg_evview_build + cor_rules_eval ("view+eval", what a shard pays per event
 * for detection). Not a timed test: it prints figures, it asserts nothing about speed.
 *
 * THREAD SAFETY: one thread; no global state.
 */
#ifndef VG_RULES_BENCH_H
#define VG_RULES_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_RULES_MAX_DIRS 16

struct bench_rules_opts {
    size_t sim_events;         /* simulated events to generate (default 50,000) */
    const char *telemetry_dir; /* real recordings (*.jsonl, recursive); NULL: none */
    const char *rule_dirs[BENCH_RULES_MAX_DIRS]; /* "all rules" */
    size_t nrule_dirs;
    size_t subset;  /* the middle rule set: the first N rule files (default 100) */
    unsigned runs;  /* runs of each measurement, median quoted (default 3) */
    uint64_t seed;  /* simulator seed (default 1) */
    FILE *out;      /* the table and the JSON line (default stdout) */
    FILE *progress; /* progress lines, or NULL */
};

/* One (rule set, event mix) cell. */
struct bench_rules_cell {
    double eval_eps;     /* events/s through cor_rules_eval, median */
    double viewev_eps;   /* events/s through vg_evview_build + cor_rules_eval, median */
    uint64_t matches;    /* rule matches over the mix (same on every run) */
    uint64_t match_hash; /* hash of every (event, rule) match, to compare engines */
};

#define BENCH_RULES_NSETS 3 /* none, subset, all */
#define BENCH_RULES_NMIX  2 /* simulated, real */

struct bench_rules_result {
    size_t nrules[BENCH_RULES_NSETS];
    double load_ms[BENCH_RULES_NSETS]; /* median load time */
    size_t nevents[BENCH_RULES_NMIX];
    struct bench_rules_cell cell[BENCH_RULES_NSETS][BENCH_RULES_NMIX];
};

void bench_rules_opts_default(struct bench_rules_opts *o);

/*
 * Runs the benchmark and prints its table and one JSON line to o->out. Returns 0 and fills
 * *res, or a negative vg_err with detail in err (no rules loadable, no events).
 */
int bench_rules_run(const struct bench_rules_opts *o, struct bench_rules_result *res, char *err,
                    size_t errlen);

#endif /* VG_RULES_BENCH_H */
