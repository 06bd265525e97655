/*
 * cli.h - the vigil command: argument parsing helpers and the subcommands. Wiring only;
 * the work is done by the folder libraries.
 */
#ifndef VG_CLI_H
#define VG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corr.h"
#include "correlate.h"
#include "ingest.h"
#include "storage.h"

#define CLI_MAX_RULE_DIRS 16
#define CLI_MAX_PROPS     64

/* Options common to the subcommands that run the pipeline. */
struct cli_common {
    const char *brokers;
    const char *group;
    const char *topic;
    const char *data_dir;
    const char *rule_dirs[CLI_MAX_RULE_DIRS];
    size_t nrule_dirs;
    bool no_builtin_rules;
    struct ing_kv props[CLI_MAX_PROPS];
    size_t nprops;
    const char *alerts_jsonl;
    const char *incidents_jsonl;
    uint32_t shards;
    int partitions;        /* embedded broker */
    double duration_s;     /* 0: until SIGINT/SIGTERM */
    double retention_days; /* 0: storage's default (183) */
    double lateness_s;     /* correlation lateness bound; 0: default (300) */
    bool quiet;
};

/* Parses one common option at argv[*i]; returns 1 if consumed (advancing *i past its
 * value), 0 if not a common option, -1 on error (message printed). */
int cli_common_opt(struct cli_common *c, int argc, char **argv, int *i);
void cli_common_defaults(struct cli_common *c);
/* Loads the built-in rules plus --rules directories; prints the load summary. */
/* Loads the single-event rules and the correlation rules of the same directories. */
int cli_load_rules(const struct cli_common *c, cor_ruleset **out, struct cor_corrset **corr);
const char *cli_builtin_rules_dir(void);
/* True once SIGINT or SIGTERM arrived. */
bool cli_interrupted(void);
void cli_install_signals(void);

int cmd_run(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_timeline(int argc, char **argv);
int cmd_alert(int argc, char **argv);
int cmd_incident(int argc, char **argv);
int cmd_broker(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_rules(int argc, char **argv);
int cli_alert_decode(const char *path);

#endif
