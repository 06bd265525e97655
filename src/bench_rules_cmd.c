/*
 * bench_rules_cmd.c - vigil bench-rules: options only; the work is in bench/rules_bench.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "rules_bench.h"

static void bench_rules_usage(void)
{
    printf("usage: vigil bench-rules [options]\n"
           "Events per second through Sigma rule evaluation alone (cor_rules_eval, views\n"
           "pre-built; and view building + evaluation) with no rules, the first N rule files\n"
           "and all rules, on the simulated event mix and on the real recordings. Prints a\n"
           "table, the ratio all/none and one JSON line (with a hash of every match, to check\n"
           "that two builds evaluate the same).\n"
           "\n"
           "options:\n"
           "  --events N       simulated events (default 50000)\n"
           "  --rules DIR      rule directory, repeatable (default SHARED/data/sigma/rules and\n"
           "                   SHARED/data/sigma/rules-threat-hunting)\n"
           "  --telemetry DIR  real recordings, *.jsonl (default SHARED/data/telemetry;\n"
           "                   'none' to skip)\n"
           "  --shared DIR     the shared directory (default $VG_SHARED_DIR, else ../shared)\n"
           "  --subset N       the middle rule set: the first N files (default 100)\n"
           "  --runs N         runs per measurement, median quoted (default 3)\n"
           "  --seed S         simulator seed (default 1)\n"
           "  -q, --quiet      no progress lines\n");
}

static int bench_rules_num(const char *opt, const char *s, unsigned long long max,
                           unsigned long long *out)
{
    char *end;

    if (!s) {
        fprintf(stderr, "vigil bench-rules: %s needs a value\n", opt);
        return -1;
    }
    *out = strtoull(s, &end, 10);
    if (*end || end == s || *out > max) {
        fprintf(stderr, "vigil bench-rules: bad value for %s: %s\n", opt, s);
        return -1;
    }
    return 0;
}

int cmd_bench_rules(int argc, char **argv)
{
    static char rules[2][4096], telem[4096];
    struct bench_rules_opts o;
    struct bench_rules_result res;
    const char *shared = getenv("VG_SHARED_DIR"), *tdir = NULL;
    unsigned long long v;
    char err[512];
    int i;

    if (!shared || !*shared)
        shared = "../shared";
    bench_rules_opts_default(&o);
    o.progress = stderr;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            bench_rules_usage();
            return 0;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            o.progress = NULL;
            continue;
        } else if (strcmp(a, "--rules") == 0 && val) {
            if (o.nrule_dirs == BENCH_RULES_MAX_DIRS) {
                fprintf(stderr, "vigil bench-rules: too many --rules\n");
                return 2;
            }
            o.rule_dirs[o.nrule_dirs++] = val;
        } else if (strcmp(a, "--telemetry") == 0 && val) {
            tdir = val;
        } else if (strcmp(a, "--shared") == 0 && val) {
            shared = val;
        } else if (strcmp(a, "--events") == 0) {
            if (bench_rules_num(a, val, 100000000ULL, &v) < 0)
                return 2;
            o.sim_events = (size_t)v;
        } else if (strcmp(a, "--subset") == 0) {
            if (bench_rules_num(a, val, 1000000ULL, &v) < 0)
                return 2;
            o.subset = (size_t)v;
        } else if (strcmp(a, "--runs") == 0) {
            if (bench_rules_num(a, val, 15, &v) < 0)
                return 2;
            o.runs = (unsigned)v;
        } else if (strcmp(a, "--seed") == 0) {
            if (bench_rules_num(a, val, ~0ULL, &v) < 0)
                return 2;
            o.seed = v;
        } else {
            fprintf(stderr, "vigil bench-rules: unknown option or missing value: %s\n", a);
            bench_rules_usage();
            return 2;
        }
        i++; /* the option's value */
    }
    if (o.nrule_dirs == 0) {
        snprintf(rules[0], sizeof(rules[0]), "%s/data/sigma/rules", shared);
        snprintf(rules[1], sizeof(rules[1]), "%s/data/sigma/rules-threat-hunting", shared);
        o.rule_dirs[0] = rules[0];
        o.rule_dirs[1] = rules[1];
        o.nrule_dirs = 2;
    }
    if (!tdir) {
        snprintf(telem, sizeof(telem), "%s/data/telemetry", shared);
        tdir = telem;
    }
    o.telemetry_dir = strcmp(tdir, "none") == 0 ? NULL : tdir;
    if (bench_rules_run(&o, &res, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil bench-rules: %s\n", err);
        return 1;
    }
    return 0;
}
