/*
 * bench.c - vigil bench's driver: generates the data once, runs every measurement on it in
 * one process, and fills the report.
 *
 * THREAD MODEL: see bench.h; everything here runs on the caller's thread.
 */
#include "bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

/* bench_inproc.c */
int bench_inproc_run(const struct bench_data *d, cor_ruleset *rules, sto_db *db,
                     struct bench_report *r, double *eps_out);
int bench_rules_alone(const struct bench_data *d, cor_ruleset *rules, struct bench_report *r);
int bench_stream(const struct bench_sim_opts *so, cor_ruleset *rules, double *eps,
                 uint64_t *events_out, uint64_t *rss_base, uint64_t *rss_after);
/* bench_kafka.c */
int bench_kafka_load(const struct bench_data *d, const char *brokers, const char *topic, char *err,
                     size_t errlen);
int bench_consume(const struct bench_data *d, const char *brokers, const char *topic,
                  int partitions, bool decode, int run, struct bench_rate *out, uint64_t *lost);
int bench_latency_run(const struct bench_data *d, cor_ruleset *rules, const char *brokers,
                      const char *topic, const char *db_dir, uint32_t shards, double rate,
                      double seconds, struct bench_latency *out, bench_progress_fn progress,
                      void *pctx);
int bench_pipeline_throughput(const struct bench_data *d, cor_ruleset *rules, const char *brokers,
                              const char *topic, const char *db_dir, uint32_t shards, int run,
                              bool compact, struct bench_report *r, double *eps,
                              bench_progress_fn progress, void *pctx);

void bench_kafka_props(const struct ing_kv *props, size_t n);

#define BENCH_TOPIC "vigil-bench"

static const double bench_loads[] = {0.10, 0.50, 0.90};

void bench_opts_default(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->modes = BENCH_MODE_ALL;
    o->out_dir = "bench-out";
    /* About a million events; 8 simulated seconds so every step of the attack chain
     * (+1 s, +4 s, +7 s after its round starts) is in the data. */
    o->machines = 2000;
    o->rate = 60;
    o->sim_seconds = 8;
    o->events_per_batch = 100;
    o->shards = 2;
    o->partitions = 64;
    o->repeats = 3;
    o->latency_seconds = 5;
    o->memory_machines = 1000000;
    o->scale_shards[0] = 1;
    o->scale_shards[1] = 2;
    o->scale_shards[2] = 4;
    o->nscale_shards = 3;
    o->scale_machines[0] = 1000;
    o->scale_machines[1] = 10000;
    o->scale_machines[2] = 100000;
    o->nscale_machines = 3;
    o->seed = 1;
    /* Six months of 3 machines, each 2 events/s for an hour a day: 7,200 events a machine
     * a day, about 4 million stored events. */
    o->tl_days = 183;
    o->tl_machines = 3;
    o->tl_rate = 2;
    o->tl_active_s = 3600;
    o->tl_pages = 200;
    o->plot = true;
}

void bench_opts_smoke(struct bench_opts *o)
{
    bench_opts_default(o);
    o->machines = 200;
    o->rate = 20;
    o->sim_seconds = 2;
    o->events_per_batch = 20;
    o->partitions = 4;
    o->repeats = 1;
    o->latency_seconds = 1.5;
    o->memory_machines = 2000;
    o->nscale_shards = 2;
    o->scale_machines[0] = 100;
    o->scale_machines[1] = 1000;
    o->nscale_machines = 2;
    o->tl_days = 14;
    o->tl_active_s = 600;
    o->tl_pages = 20;
}

static void bench_say(bench_progress_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void bench_say(bench_progress_fn fn, void *ctx, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (fn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fn(ctx, line);
}

static void bench_sim_opts_for(const struct bench_opts *o, uint32_t machines, double rate,
                               double seconds, uint32_t per_batch, struct bench_sim_opts *so)
{
    bench_sim_opts_default(so);
    so->seed = o->seed;
    so->machines = machines;
    so->tenants = machines < 10 ? machines : 10;
    so->events_per_machine_per_sec = rate;
    so->events_per_batch = per_batch;
    so->duration_us = (int64_t)(seconds * 1e6);
    /* Recent enough to pass ingest's validation (no more than a day in the future, and
     * not replayed as ancient history). */
    so->start_us = vg_now_us() - so->duration_us - 60 * VG_US_PER_SEC;
    so->scenarios = true;
    so->scenario_start_us = (int64_t)(seconds * 1e6 / 10);
    so->scenario_every_us = (int64_t)(seconds * 1e6 / 4);
}

double bench_median(const double *v, int n)
{
    double s[8];

    if (n <= 0 || n > 8)
        return 0;
    memcpy(s, v, (size_t)n * sizeof(double));
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];

            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void bench_rate_finish(struct bench_rate *r)
{
    if (r->nruns > 0)
        r->events_per_sec = bench_median(r->runs, r->nruns);
}

static int bench_load_rules(const struct bench_opts *o, cor_ruleset **rules, struct bench_report *r,
                            char *err, size_t errlen)
{
    struct cor_load_summary sum;
    uint64_t t0 = vg_mono_ns();
    int rc;

    memset(&sum, 0, sizeof(sum));
    rc = cor_ruleset_load(o->rule_dirs, o->nrule_dirs, rules, &sum, err, errlen);
    if (rc < 0)
        return rc;
    r->rules_loaded = sum.loaded;
    r->rule_files = sum.files;
    r->rules_skipped = sum.skipped;
    r->correlation_rules = sum.correlations;
    r->rules_load_s = (double)(vg_mono_ns() - t0) / 1e9;
    return 0;
}

static void bench_machine_info(struct bench_report *r)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];

    r->nproc = (int)sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(r->machine, sizeof(r->machine), "unknown");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');

            if (c != NULL) {
                c += 2;
                c[strcspn(c, "\n")] = '\0';
                snprintf(r->machine, sizeof(r->machine), "%s", c);
            }
            break;
        }
    fclose(f);
}

/* Scratch RocksDB directories live under out_dir/db and are wiped before each use. */
static void bench_db_path(const struct bench_opts *o, const char *name, char *buf, size_t n)
{
    char cmd[1200];

    snprintf(buf, n, "%s/db/%s", o->out_dir, name);
    if (strchr(buf, '\'') == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", buf);
        if (system(cmd) != 0)
            vg_log(VG_LOG_WARN, "bench", "could not wipe %s", buf);
    }
    mkdir(buf, 0755);
}

static int bench_inproc_all(const struct bench_opts *o, const struct bench_data *d,
                            cor_ruleset *rules, struct bench_report *r, bench_progress_fn pf,
                            void *pc)
{
    char path[1024], err[256];

    for (int i = 0; i < o->repeats; i++) {
        struct sto_opts so = {.path = path};
        sto_db *db;
        double eps = 0;

        bench_db_path(o, "inproc", path, sizeof(path));
        if (sto_open(&so, &db, err, sizeof(err)) < 0) {
            vg_log(VG_LOG_ERROR, "bench", "storage: %s", err);
            return -VG_EIO;
        }
        bench_inproc_run(d, rules, db, r, &eps);
        sto_close(db);
        bench_say(pf, pc, "in-process run %d/%d: %.0f events/s (decode -> correlate -> store)",
                  i + 1, o->repeats, eps);
    }
    bench_rate_finish(&r->inproc);
    bench_rules_alone(d, rules, r);
    return 0;
}

static int bench_kafka_all(const struct bench_opts *o, const struct bench_data *d,
                           cor_ruleset *rules, const char *brokers, struct bench_report *r,
                           bench_progress_fn pf, void *pc)
{
    char path[1024], err[256];
    uint64_t lost = 0;

    bench_say(pf, pc, "loading %zu batches (%llu events) into topic %s", d->n,
              (unsigned long long)d->events, BENCH_TOPIC);
    if (bench_kafka_load(d, brokers, BENCH_TOPIC, err, sizeof(err)) < 0) {
        vg_log(VG_LOG_ERROR, "bench", "load: %s", err);
        return -VG_EKAFKA;
    }
    r->broker_messages = d->n;
    for (int i = 0; i < o->repeats; i++) {
        double eps = 0;

        bench_consume(d, brokers, BENCH_TOPIC, o->partitions, false, i, &r->consume, &lost);
        bench_consume(d, brokers, BENCH_TOPIC, o->partitions, true, i, &r->consume_decode, &lost);
        bench_say(pf, pc, "ceiling run %d/%d: consume %.0f/s, consume+decode %.0f/s", i + 1,
                  o->repeats, r->consume.runs[r->consume.nruns - 1],
                  r->consume_decode.runs[r->consume_decode.nruns - 1]);
        bench_db_path(o, "pipeline", path, sizeof(path));
        bench_pipeline_throughput(d, rules, brokers, BENCH_TOPIC, path, o->shards, i, i == 0, r,
                                  &eps, pf, pc);
        r->pipeline.runs[r->pipeline.nruns++] = eps;
        bench_say(pf, pc, "pipeline run %d/%d: %.0f events/s end to end (%u shards)", i + 1,
                  o->repeats, eps, o->shards);
    }
    r->lost_upstream += lost;
    bench_rate_finish(&r->consume);
    bench_rate_finish(&r->consume_decode);
    bench_rate_finish(&r->pipeline);
    r->kafka_ran = true;
    return 0;
}

static void bench_ceiling(struct bench_report *r)
{
    struct {
        const char *name;
        double eps;
    } c[] = {{"consume", r->consume.events_per_sec},
             {"consume+decode", r->consume_decode.events_per_sec},
             {"store", r->store.events_per_sec}};

    r->ceiling_eps = 0;
    for (size_t i = 0; i < VG_ARRAY_SIZE(c); i++)
        if (c[i].eps > 0 && (r->ceiling_eps == 0 || c[i].eps < r->ceiling_eps)) {
            r->ceiling_eps = c[i].eps;
            r->ceiling_name = c[i].name;
        }
    r->ratio_to_ceiling = r->ceiling_eps > 0 ? r->pipeline.events_per_sec / r->ceiling_eps : 0;
    r->ratio_to_consume_decode = r->consume_decode.events_per_sec > 0
                                     ? r->pipeline.events_per_sec / r->consume_decode.events_per_sec
                                     : 0;
}

static int bench_latency_all(const struct bench_opts *o, const struct bench_data *d,
                             cor_ruleset *rules, const char *brokers, struct bench_report *r,
                             bench_progress_fn pf, void *pc)
{
    double peak =
        r->pipeline.events_per_sec > 0 ? r->pipeline.events_per_sec : r->inproc.events_per_sec;
    char path[1024], topic[64];

    if (peak <= 0)
        peak = 100000; /* latency alone: a nominal peak */
    for (size_t i = 0; i < VG_ARRAY_SIZE(bench_loads) && i < BENCH_MAX_LOADS; i++) {
        struct bench_latency *l = &r->lat[r->nlat];

        snprintf(topic, sizeof(topic), "%s-lat-%zu", BENCH_TOPIC, i);
        bench_db_path(o, "latency", path, sizeof(path));
        bench_say(pf, pc, "latency at %.0f%% of peak: offered %.0f events/s for %.1f s",
                  bench_loads[i] * 100, peak * bench_loads[i], o->latency_seconds);
        if (bench_latency_run(d, rules, brokers, topic, path, o->shards, peak * bench_loads[i],
                              o->latency_seconds, l, pf, pc) == 0)
            r->nlat++;
        r->lost_upstream += l->lost_upstream;
        bench_say(pf, pc, "  %llu alerts timed: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms",
                  (unsigned long long)l->samples, l->p50_ms, l->p99_ms, l->p999_ms);
    }
    return 0;
}

static void bench_memory(const struct bench_opts *o, cor_ruleset *rules, struct bench_report *r,
                         bench_progress_fn pf, void *pc)
{
    struct bench_sim_opts so;
    uint64_t base = 0, after = 0;
    double eps = 0;

    /* A low rate per machine: every machine tracked, few events each. */
    bench_sim_opts_for(o, o->memory_machines, 0.5, 4, 8, &so);
    so.scenarios = false;
    bench_say(pf, pc, "memory: %u machines through one in-process shard", o->memory_machines);
    if (bench_stream(&so, rules, &eps, &r->mem_events, &base, &after) < 0)
        return;
    r->mem_machines = o->memory_machines;
    r->rss_base_bytes = base;
    r->rss_after_bytes = after;
    r->rss_peak_bytes = bench_hwm_bytes();
    r->rss_bytes_per_machine =
        after > base ? (double)(after - base) / (double)o->memory_machines : 0;
    r->mem_events_per_sec = eps;
    bench_say(pf, pc, "  %.0f bytes resident per machine (%llu events, RSS %.0f MiB)",
              r->rss_bytes_per_machine, (unsigned long long)r->mem_events,
              (double)after / 1048576.0);
}

static void bench_scaling(const struct bench_opts *o, const struct bench_data *d,
                          cor_ruleset *rules, const char *brokers, struct bench_report *r,
                          bench_progress_fn pf, void *pc)
{
    char path[1024];

    for (size_t i = 0; brokers != NULL && i < o->nscale_shards; i++) {
        double eps = 0;

        if (o->scale_shards[i] == o->shards && r->pipeline.events_per_sec > 0) {
            eps = r->pipeline.events_per_sec; /* measured already, same data */
        } else {
            bench_db_path(o, "scale", path, sizeof(path));
            bench_pipeline_throughput(d, rules, brokers, BENCH_TOPIC, path, o->scale_shards[i],
                                      100 + (int)i, false, NULL, &eps, pf, pc);
        }
        r->by_shards[r->nby_shards++] = (struct bench_scale){o->scale_shards[i], eps};
        bench_say(pf, pc, "scaling: %u shards -> %.0f events/s", o->scale_shards[i], eps);
    }
    for (size_t i = 0; i < o->nscale_machines; i++) {
        struct bench_sim_opts so;
        double total = d->events > 0 ? (double)d->events : 1e6, eps = 0;
        double rate = total / o->sim_seconds / (double)o->scale_machines[i];

        /* The same number of events spread over more machines. */
        bench_sim_opts_for(o, o->scale_machines[i], rate, o->sim_seconds, o->events_per_batch, &so);
        if (bench_stream(&so, rules, &eps, NULL, NULL, NULL) == 0)
            r->by_machines[r->nby_machines++] = (struct bench_scale){o->scale_machines[i], eps};
        bench_say(pf, pc, "scaling: %u machines -> %.0f events/s (in-process shard)",
                  o->scale_machines[i], eps);
    }
}

int bench_run(const struct bench_opts *o, struct bench_report *r, bench_progress_fn pf, void *pc,
              char *err, size_t errlen)
{
    static const char *const topics[] = {
        BENCH_TOPIC, BENCH_TOPIC "-lat-0", BENCH_TOPIC "-lat-1", BENCH_TOPIC "-lat-2",
        "alerts",    "telemetry.dlq"};
    struct bench_sim_opts so;
    struct bench_data d;
    cor_ruleset *rules = NULL;
    ing_mock *mock = NULL;
    const char *brokers = o->brokers;
    char dbdir[1024];
    uint64_t t0 = vg_mono_ns();
    int rc;

    memset(&d, 0, sizeof(d));
    bench_kafka_props(o->props, o->nprops);
    bench_machine_info(r);
    snprintf(dbdir, sizeof(dbdir), "%s/db", o->out_dir);
    mkdir(o->out_dir, 0755);
    mkdir(dbdir, 0755);
    bench_say(pf, pc, "loading rules from %zu directories", o->nrule_dirs);
    if ((rc = bench_load_rules(o, &rules, r, err, errlen)) < 0)
        goto out;
    bench_say(pf, pc, "%u rules loaded (%u correlation rules) in %.1f s", r->rules_loaded,
              r->correlation_rules, r->rules_load_s);
    /* Memory first, before the data exists: freed buffers would blur the RSS. */
    if (o->modes & BENCH_MODE_MEMORY)
        bench_memory(o, rules, r, pf, pc);
    if (o->modes & BENCH_MODE_TIMELINE) {
        bench_db_path(o, "timeline", dbdir, sizeof(dbdir));
        bench_timeline_run(o, rules, dbdir, r, pf, pc);
    }
    if ((o->modes & ~(BENCH_MODE_MEMORY | BENCH_MODE_TIMELINE)) == 0) {
        rc = 0; /* nothing else needs the throughput data */
        goto out;
    }
    bench_sim_opts_for(o, o->machines, o->rate, o->sim_seconds, o->events_per_batch, &so);
    bench_say(pf, pc, "generating %u machines x %.0f events/s x %.1f s", o->machines, o->rate,
              o->sim_seconds);
    if ((rc = bench_data_make(&d, &so, err, errlen)) < 0)
        goto out;
    r->events = d.events;
    r->batches = d.n;
    r->bytes = d.len;
    r->machines = o->machines;
    bench_say(pf, pc, "%llu events in %zu batches, %.1f MiB packed", (unsigned long long)d.events,
              d.n, (double)d.len / 1048576.0);
    if (o->modes & BENCH_MODE_INPROC)
        bench_inproc_all(o, &d, rules, r, pf, pc);
    if ((o->modes & (BENCH_MODE_KAFKA | BENCH_MODE_LATENCY)) && brokers == NULL) {
        if ((rc = ing_mock_start(1, o->partitions, topics, VG_ARRAY_SIZE(topics), &mock, err,
                                 errlen)) < 0)
            goto out;
        brokers = ing_mock_bootstraps(mock);
    }
    if (o->modes & BENCH_MODE_KAFKA)
        bench_kafka_all(o, &d, rules, brokers, r, pf, pc);
    bench_ceiling(r);
    if (o->modes & BENCH_MODE_LATENCY)
        bench_latency_all(o, &d, rules, brokers, r, pf, pc);
    if (o->modes & BENCH_MODE_SCALING)
        bench_scaling(o, &d, rules, (o->modes & BENCH_MODE_KAFKA) ? brokers : NULL, r, pf, pc);
    rc = 0;
out:
    r->wall_s = (double)(vg_mono_ns() - t0) / 1e9;
    bench_data_free(&d);
    if (rules)
        cor_ruleset_unref(rules);
    ing_mock_stop(mock);
    return rc;
}
