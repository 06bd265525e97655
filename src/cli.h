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
    const char *api;    /* ADDRESS:PORT of the HTTP API; NULL: 127.0.0.1:8787 */
    const char *tokens; /* token file; NULL: DATA/tokens */
    bool no_api;
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
int cmd_health(int argc, char **argv);
int cmd_token(int argc, char **argv);

#define VIGIL_VERSION "0.1.0"

struct api_metrics;
struct api_tokens;
struct api_server;

/* The HTTP API, metrics and health of a running pipeline (service.c). */
struct cli_service {
    ing_pipeline *pipe; /* borrowed */
    ing_incidents *inc; /* borrowed; NULL: no incident stage metrics */
    sto_db *db;         /* borrowed */
    cor_ruleset *rules; /* borrowed */
    struct api_metrics *metrics;
    struct api_tokens *tokens;
    struct api_server *server;
    char health_path[4096];
    uint64_t last_write_errors, last_lost; /* at the previous health report */
};

/* Starts the API (unless --no-api); a port that cannot be bound is a warning, not fatal. */
int cli_service_start(struct cli_service *sv, const struct cli_common *c);
/* Writes DATA/health.json; call once a second. */
void cli_service_tick(struct cli_service *sv);
void cli_service_stop(struct cli_service *sv);
int cmd_broker(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_rules(int argc, char **argv);
int cli_alert_decode(const char *path);

#endif
