/*
 * bench_cmd.c - vigil bench: options and output files; the work is in bench/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "cli.h"

static void bench_usage(void)
{
    printf(
        "usage: vigil bench [options]\n"
        "Generates realistic telemetry once (bench/sim.h, with injected attacks as ground\n"
        "truth), then measures on those same bytes, in one run:\n"
        "  in-process   decode -> route -> correlate -> store on one thread, each stage timed,\n"
        "               and rule evaluation alone (no Kafka)\n"
        "  kafka        the bytes pre-loaded into the embedded broker (or --brokers): consuming\n"
        "               alone (librdkafka), consuming and decoding alone, and the whole\n"
        "               pipeline (vigil run's) end to end into RocksDB; the ceiling is the\n"
        "               lowest of consume, consume+decode and store alone\n"
        "  latency      a producer thread paces the bytes at 10%%, 50%%, 90%% of the measured\n"
        "               peak; event-to-alert latency p50/p99/p99.9 (producer send -> alert\n"
        "               durable and emitted), matched through the alerts' evidence\n"
        "  memory       many machines at a low rate through one in-process shard: resident\n"
        "               bytes per tracked machine (VmRSS)\n"
        "  scaling      the pipeline over shard counts, the shard over machine counts\n"
        "  timeline     six months of stored timeline: a page of 1,000 events, and replay\n"
        "               read-back alone and through the rules (not in the default list)\n"
        "Writes OUT/summary.txt, OUT/bench.json (every figure), OUT/bench.png (gnuplot).\n"
        "\n"
        "options:\n"
        "  --modes LIST         comma list of inproc,kafka,latency,memory,scaling,timeline\n"
        "                       (default all: every one but timeline)\n"
        "  --brokers LIST       external Kafka (topics vigil-bench, vigil-bench-lat-0..2);\n"
        "                       default: the embedded broker\n"
        "  -X key=value         librdkafka property for every client of the bench, repeatable\n"
        "  --rules DIR          more Sigma rules, repeatable (plus the built-in rules: %s)\n"
        "  --no-builtin-rules   do not load the built-in rules\n"
        "  --out DIR            output directory (default bench-out)\n"
        "  --machines N         simulated machines (default 2000)\n"
        "  --rate R             events per machine per second, simulated (default 60)\n"
        "  --seconds S          simulated span of the data (default 8)\n"
        "  --batch N            events per sensor batch (default 100)\n"
        "  --shards N           pipeline shards (default 2)\n"
        "  --partitions N       embedded broker partitions (default 64)\n"
        "  --repeats N          runs of each throughput measurement, median quoted (default 3)\n"
        "  --latency-seconds S  length of each latency run (default 5)\n"
        "  --memory-machines N  machines of the memory run (default 1000000)\n"
        "  --seed S             simulator seed (default 1)\n"
        "  --smoke              a short form (seconds) that only checks the report is complete\n"
        "  --no-plot            do not run gnuplot\n"
        "  -q, --quiet          no progress lines\n"
        "The standard benchmark (a few minutes):\n"
        "  vigil bench --rules ../shared/data/sigma/rules --rules "
        "../shared/data/sigma/correlation\n",
        cli_builtin_rules_dir());
}

static void bench_progress(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "vigil bench: %s\n", line);
}

static int bench_parse_modes(const char *s, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } m[] = {{"inproc", BENCH_MODE_INPROC},   {"kafka", BENCH_MODE_KAFKA},
             {"latency", BENCH_MODE_LATENCY}, {"memory", BENCH_MODE_MEMORY},
             {"scaling", BENCH_MODE_SCALING}, {"timeline", BENCH_MODE_TIMELINE},
             {"all", BENCH_MODE_ALL}};
    char buf[256], *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", s);
    *out = 0;
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i;

        for (i = 0; i < VG_ARRAY_SIZE(m); i++)
            if (strcmp(tok, m[i].name) == 0)
                break;
        if (i == VG_ARRAY_SIZE(m))
            return -1;
        *out |= m[i].bit;
    }
    return *out ? 0 : -1;
}

static int bench_opt(struct bench_opts *o, int argc, char **argv, int *i, bool *nobuiltin)
{
    const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

#define BENCH_IS(s) (strcmp(a, s) == 0)
    if (BENCH_IS("--no-builtin-rules")) {
        *nobuiltin = true;
        return 1;
    }
    if (BENCH_IS("--no-plot")) {
        o->plot = false;
        return 1;
    }
    if (BENCH_IS("--quiet") || BENCH_IS("-q")) {
        o->quiet = true;
        return 1;
    }
    if (v == NULL)
        return 0;
    (*i)++;
    if (BENCH_IS("--modes")) {
        if (bench_parse_modes(v, &o->modes) < 0)
            return -1;
    } else if (BENCH_IS("--brokers") || BENCH_IS("-b")) {
        o->brokers = v;
    } else if (BENCH_IS("-X")) {
        char *eq = strchr(v, '=');

        if (eq == NULL || eq == v || o->nprops == VG_ARRAY_SIZE(o->props))
            return -1;
        *eq = '\0';
        o->props[o->nprops].key = v;
        o->props[o->nprops++].value = eq + 1;
    } else if (BENCH_IS("--rules")) {
        if (o->nrule_dirs == BENCH_MAX_RULE_DIRS - 1)
            return -1;
        o->rule_dirs[o->nrule_dirs++] = v;
    } else if (BENCH_IS("--out")) {
        o->out_dir = v;
    } else if (BENCH_IS("--machines")) {
        o->machines = (uint32_t)strtoul(v, NULL, 10);
    } else if (BENCH_IS("--rate")) {
        o->rate = strtod(v, NULL);
    } else if (BENCH_IS("--seconds")) {
        o->sim_seconds = strtod(v, NULL);
    } else if (BENCH_IS("--batch")) {
        o->events_per_batch = (uint32_t)strtoul(v, NULL, 10);
    } else if (BENCH_IS("--shards")) {
        o->shards = (uint32_t)strtoul(v, NULL, 10);
    } else if (BENCH_IS("--partitions")) {
        o->partitions = atoi(v);
    } else if (BENCH_IS("--repeats")) {
        o->repeats = atoi(v);
    } else if (BENCH_IS("--latency-seconds")) {
        o->latency_seconds = strtod(v, NULL);
    } else if (BENCH_IS("--memory-machines")) {
        o->memory_machines = (uint32_t)strtoul(v, NULL, 10);
    } else if (BENCH_IS("--seed")) {
        o->seed = strtoull(v, NULL, 10);
    } else {
        (*i)--;
        return 0;
    }
#undef BENCH_IS
    return 1;
}

static int bench_check(const struct bench_opts *o)
{
    if (o->machines == 0 || o->rate <= 0 || o->sim_seconds <= 0 || o->events_per_batch == 0 ||
        o->shards == 0 || o->shards > 64 || o->partitions < 1 || o->partitions > 256 ||
        o->repeats < 1 || o->repeats > 5 || o->latency_seconds <= 0 || o->memory_machines == 0) {
        fprintf(stderr, "vigil bench: option out of range (see --help)\n");
        return -1;
    }
    return 0;
}

static void bench_outputs(const struct bench_opts *o, struct bench_report *r)
{
    char path[1100], err[256];
    FILE *f;

    bench_report_print(r, stdout);
    snprintf(path, sizeof(path), "%s/summary.txt", o->out_dir);
    if ((f = fopen(path, "w")) != NULL) {
        bench_report_print(r, f);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/bench.json", o->out_dir);
    if (bench_report_json(r, path) < 0)
        fprintf(stderr, "vigil bench: cannot write %s\n", path);
    if (o->plot && bench_report_plot(r, o->out_dir, err, sizeof(err)) < 0)
        fprintf(stderr, "vigil bench: plot: %s\n", err);
    printf("\nwritten: %s/summary.txt, %s/bench.json%s%s%s\n", o->out_dir, o->out_dir,
           o->plot ? ", " : "", o->plot ? o->out_dir : "", o->plot ? "/bench.png" : "");
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o;
    struct bench_report *r;
    bool nobuiltin = false, smoke = false;
    const char *extra[BENCH_MAX_RULE_DIRS];
    size_t nextra;
    char err[512];
    int rc = 1, n = 0;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--smoke") == 0)
            smoke = true;
    if (smoke)
        bench_opts_smoke(&o);
    else
        bench_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int k;

        if (strcmp(argv[i], "--smoke") == 0)
            continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bench_usage();
            return 0;
        }
        if ((k = bench_opt(&o, argc, argv, &i, &nobuiltin)) <= 0) {
            fprintf(stderr, "vigil bench: bad option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (bench_check(&o) < 0)
        return 2;
    /* Built-in rules first, then the --rules directories. */
    nextra = o.nrule_dirs;
    memcpy(extra, o.rule_dirs, nextra * sizeof(*extra));
    o.nrule_dirs = 0;
    if (!nobuiltin)
        o.rule_dirs[o.nrule_dirs++] = cli_builtin_rules_dir();
    for (size_t i = 0; i < nextra; i++)
        o.rule_dirs[o.nrule_dirs++] = extra[i];
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return 1;
    for (int i = 0; i < argc && n < (int)sizeof(r->command) - 2; i++)
        n += snprintf(r->command + n, sizeof(r->command) - (size_t)n, "%s%s", i ? " " : "vigil ",
                      argv[i]);
    mkdir(o.out_dir, 0755);
    if (bench_run(&o, r, o.quiet ? NULL : bench_progress, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil bench: %s\n", err);
        goto out;
    }
    bench_outputs(&o, r);
    rc = 0;
out:
    free(r);
    return rc;
}
