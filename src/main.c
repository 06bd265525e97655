/*
 * main.c - vigil: one binary for the stream processor, the benchmark harness and the
 * investigation tools. Dispatches to the subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cmds[] = {
    {"run", cmd_run, "consume telemetry from Kafka, correlate, store, emit alerts"},
    {"demo", cmd_demo, "embedded broker + simulated sensors + vigil run, then a summary"},
    {"simulate", cmd_simulate, "produce simulated sensor telemetry to Kafka"},
    {"timeline", cmd_timeline, "show a machine's stored events in time order"},
    {"alert", cmd_alert, "alert show ID | alert decode FILE: an alert, its evidence, its tree"},
    {"replay", cmd_replay, "run the rules over a file (JSON lines or batches) without Kafka"},
    {"incident", cmd_incident, "incident show ID: an incident and its graph (json, dot)"},
    {"health", cmd_health, "the health of the vigil run owning a data directory"},
    {"token", cmd_token, "token add: a bearer token for the HTTP API (tenant, role)"},
    {"import", cmd_import, "JSON-lines recordings into telemetry batches (Kafka or a file)"},
    {"broker", cmd_broker, "run the embedded Kafka broker alone (trials and tests)"},
    {"bench", cmd_bench, "benchmark: throughput, stage costs, ceiling, latency, memory"},
    {"bench-rules", cmd_bench_rules,
     "benchmark: events/s through Sigma rule evaluation by rule count"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vigil COMMAND [options]   (vigil COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "vigil: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
