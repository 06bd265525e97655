/*
 * bench.h - vigil bench: realistic load at scale, the cost of every stage, and the ceiling
 * the pipeline runs against, all measured in one run on the same bytes.
 *
 * The harness generates the simulated telemetry once (bench/sim.h), packs every batch into
 * one buffer in memory, and replays exactly those bytes through each measurement:
 *   in-process    decode alone, route alone, rule evaluation alone, the shard (correlation,
 *                 rules, blocks) alone, storing the sealed blocks alone, and the three
 *                 chained on one thread (no Kafka);
 *   kafka         the bytes pre-loaded into the embedded broker (or --brokers), then
 *                 consuming alone (librdkafka), consuming and decoding alone, and the whole
 *                 pipeline (ing_pipeline: consume, decode, route, shards, RocksDB, emit);
 *   latency       a producer thread paces the bytes at fixed offered loads while the
 *                 pipeline runs; every new alert is matched to the produce time of the batch
 *                 holding its newest evidence event;
 *   memory        many machines at a low rate through one in-process shard, VmRSS before
 *                 and after;
 *   scaling       the pipeline over shard counts, the shard over machine counts.
 *
 * THREAD MODEL: bench_run runs on the caller's thread and starts (and joins) the
 * pipeline's threads, one producer thread for latency runs, and nothing else. Progress is
 * reported through a callback on the caller's thread.
 */
#ifndef VG_BENCH_H
#define VG_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "correlate.h"
#include "ingest.h"
#include "vg.h"

#define BENCH_MAX_RULE_DIRS 16
#define BENCH_MAX_SCALE     8
#define BENCH_MAX_LOADS     4

/* What to run (bits of bench_opts.modes). */
#define BENCH_MODE_INPROC  (1u << 0)
#define BENCH_MODE_KAFKA   (1u << 1)
#define BENCH_MODE_LATENCY (1u << 2)
#define BENCH_MODE_MEMORY  (1u << 3)
#define BENCH_MODE_SCALING (1u << 4)
#define BENCH_MODE_ALL     0x1fu
/* Six months of stored timeline: paging and replay read-back (bench_timeline.c). Not in
 * BENCH_MODE_ALL: it builds its own database and adds about a minute. */
#define BENCH_MODE_TIMELINE (1u << 5)

struct bench_opts {
    unsigned modes;          /* BENCH_MODE_* bits */
    const char *brokers;     /* NULL: the embedded broker */
    struct ing_kv props[16]; /* -X key=value for every Kafka client of the bench */
    size_t nprops;
    const char *rule_dirs[BENCH_MAX_RULE_DIRS];
    size_t nrule_dirs;         /* every rule directory, built-in ones included */
    const char *out_dir;       /* report, JSON, plot, RocksDB scratch; created */
    uint32_t machines;         /* simulated machines of the throughput data */
    double rate;               /* events per machine per second (simulated) */
    double sim_seconds;        /* simulated span of the throughput data */
    uint32_t events_per_batch; /* sensor batch size */
    uint32_t shards;           /* pipeline shards */
    int partitions;            /* embedded broker partitions */
    int repeats;               /* runs of each throughput measurement (median) */
    double latency_seconds;    /* length of each latency run */
    uint32_t memory_machines;  /* machines of the memory measurement */
    uint32_t scale_shards[BENCH_MAX_SCALE];
    size_t nscale_shards;
    uint32_t scale_machines[BENCH_MAX_SCALE];
    size_t nscale_machines;
    uint64_t seed;
    /* timeline: tl_machines machines of one tenant, each tl_rate events/s during an active
     * window of tl_active_s a day, over tl_days days; tl_pages random pages timed. */
    uint32_t tl_days;
    uint32_t tl_machines;
    double tl_rate;
    double tl_active_s;
    uint32_t tl_pages;
    bool quiet; /* no progress line */
    bool plot;  /* run gnuplot */
};

/* The standard benchmark's settings. */
void bench_opts_default(struct bench_opts *o);
/* The short form run by `make test`: small, and checks only that the report is complete. */
void bench_opts_smoke(struct bench_opts *o);

/* The median of n (at most 8) values; 0 when n is 0 or out of range. */
double bench_median(const double *v, int n);

/* One measured throughput: median of the repeats. */
struct bench_rate {
    double events_per_sec;   /* median */
    double cpu_us_per_event; /* CPU of the measuring process per event (median run) */
    double runs[5];
    int nruns;
};

struct bench_stage {
    const char *name;      /* "decode", "route", ... */
    double events_per_sec; /* of this stage alone, on one thread */
    double cpu_us_per_event;
};

struct bench_thread_cpu {
    char name[20]; /* thread name ("vg-shard-0", "rdk:broker1", "rocksdb:low") */
    double cpu_us_per_event;
};

struct bench_latency {
    double offered_eps;  /* paced producer rate */
    double achieved_eps; /* events the pipeline took per second during the run */
    uint64_t samples;    /* alerts matched to a produce time */
    double p50_ms, p99_ms, p999_ms, max_ms;
    uint64_t lost_upstream;
};

struct bench_scale {
    uint32_t x; /* shards or machines */
    double events_per_sec;
};

struct bench_report {
    char command[1024];
    char machine[256]; /* CPU model */
    int nproc;
    /* data */
    uint64_t events, batches, bytes;
    uint32_t machines;
    unsigned rules_loaded, rule_files, rules_skipped, correlation_rules;
    double rules_load_s;
    /* in-process */
    struct bench_stage stages[8];
    size_t nstages;
    struct bench_rate inproc; /* decode -> correlate -> store on one thread */
    /* kafka */
    bool kafka_ran;
    struct bench_rate consume; /* consuming alone */
    struct bench_rate consume_decode;
    struct bench_rate pipeline; /* end to end, Kafka to RocksDB */
    struct bench_rate store;    /* storing alone (the sealed blocks, batched writes) */
    double ceiling_eps;         /* lowest of consume, consume+decode, store */
    const char *ceiling_name;
    double ratio_to_ceiling; /* pipeline / ceiling */
    double ratio_to_consume_decode;
    struct bench_thread_cpu threads[32];
    size_t nthreads;
    uint64_t lost_upstream, dead_letters, pipeline_events;
    uint64_t broker_messages;
    double bytes_per_event; /* on disk after compaction, pipeline run */
    uint64_t disk_bytes;
    /* latency */
    struct bench_latency lat[BENCH_MAX_LOADS];
    size_t nlat;
    /* memory */
    uint32_t mem_machines;
    uint64_t mem_events;
    uint64_t rss_base_bytes, rss_after_bytes, rss_peak_bytes;
    double rss_bytes_per_machine;
    double mem_events_per_sec;
    /* detection */
    uint64_t truths, truths_found, alerts_total, alerts_attack, alerts_benign;
    char benign_titles[5][128];
    uint64_t benign_counts[5];
    size_t nbenign_titles;
    /* scaling */
    struct bench_scale by_shards[BENCH_MAX_SCALE];
    size_t nby_shards;
    struct bench_scale by_machines[BENCH_MAX_SCALE];
    size_t nby_machines;
    /* timeline (BENCH_MODE_TIMELINE) */
    bool tl_ran;
    uint32_t tl_days, tl_machines;
    uint64_t tl_events;                              /* stored, all machines */
    uint64_t tl_busy_events;                         /* of the paged machine */
    uint64_t tl_blocks;                              /* timeline blocks written */
    uint64_t tl_disk_bytes;                          /* after compaction */
    double tl_build_s;                               /* generate, seal, write, compact */
    uint32_t tl_pages;                               /* pages timed in each pass */
    double tl_page_ms_p50, tl_page_ms_p99;           /* reopened database (empty block cache) */
    double tl_page_warm_ms_p50, tl_page_warm_ms_p99; /* the same pages again */
    double tl_page_events;                           /* mean events a page returned */
    uint64_t tl_readback_events, tl_replay_events, tl_replay_alerts;
    double readback_eps; /* sto_scan_machines + sto_tl iteration, no rules */
    double replay_eps;   /* the same, each event through cor_shard_process (replay --history) */
    double replay_cpu_us_per_event;
    double replay1_eps;      /* the same replay through one shard thread */
    unsigned replay_threads; /* shard threads of replay_eps (cor_hreplay, online CPUs) */
    /* Every run of the three (read-back, one thread, replay_threads), interleaved; the
     * figures above are their medians. */
    double readback_runs[5], replay1_runs[5], replay_runs[5];
    int replay_nruns;
    double wall_s;
};

typedef void (*bench_progress_fn)(void *ctx, const char *line);

/* Runs the benchmark. Returns 0 (the report may still say that goals were missed), or a
 * negative vg_err when it could not run (detail in err). */
int bench_run(const struct bench_opts *o, struct bench_report *r, bench_progress_fn progress,
              void *ctx, char *err, size_t errlen);

/* Output: the human summary (goals met or not, by how much, which stage holds back), the
 * JSON of every figure, and the gnuplot plot (PNG) with its data files. */
void bench_report_print(const struct bench_report *r, FILE *f);
int bench_report_json(const struct bench_report *r, const char *path);
int bench_report_plot(const struct bench_report *r, const char *dir, char *err, size_t errlen);

/* ---- internals shared by the bench_*.c files ---------------------------------------- */

/* The pre-generated data: every packed batch, back to back, with its machine id. */
struct bench_data {
    uint8_t *buf; /* all packed batches */
    size_t len, cap;
    size_t *off; /* off[i], len[i]: batch i in buf */
    uint32_t *blen;
    uint32_t *nev;      /* events of batch i */
    uint64_t *mkey;     /* vg_machine_key of batch i */
    uint64_t *last_seq; /* last sequence number of batch i */
    char **machine;     /* machine id of batch i (interned per machine) */
    size_t n, capn;
    uint64_t events;
    struct bench_sim_truth *truth; /* copies, strings interned */
    size_t ntruth;
    char **strs; /* interned strings, to free */
    size_t nstrs, capstrs;
};

struct bench_sim_opts;
int bench_data_make(struct bench_data *d, const struct bench_sim_opts *so, char *err,
                    size_t errlen);
void bench_data_free(struct bench_data *d);

/* Builds six months of timeline in db_dir (wiped by the caller) and times paging and
 * read-back into r (bench_timeline.c). Returns 0 or a negative vg_err. */
int bench_timeline_run(const struct bench_opts *o, cor_ruleset *rules, const char *db_dir,
                       struct bench_report *r, bench_progress_fn progress, void *ctx);

/* Process CPU time (user + system) in microseconds; thread CPU time likewise. */
double bench_cpu_us(void);
double bench_thread_cpu_us(void);
/* VmRSS and VmHWM of this process in bytes. */
uint64_t bench_rss_bytes(void);
uint64_t bench_hwm_bytes(void);

#endif /* VG_BENCH_H */
