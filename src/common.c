/*
 * common.c - option parsing shared by the subcommands, rule loading, signals.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t cli_sig;

static void cli_on_signal(int sig)
{
    cli_sig = sig;
}

void cli_install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool cli_interrupted(void)
{
    return cli_sig != 0;
}

void cli_common_defaults(struct cli_common *c)
{
    memset(c, 0, sizeof(*c));
    c->data_dir = "./data";
    c->shards = 2;
    c->partitions = 6;
}

const char *cli_builtin_rules_dir(void)
{
    const char *env = getenv("VIGIL_RULES_DIR");

    return env && *env ? env : VIGIL_RULES_DIR;
}

static const char *cli_val(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "vigil: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_common_opt(struct cli_common *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;

#define CLI_IS(s) (strcmp(a, s) == 0)
    if (CLI_IS("--brokers") || CLI_IS("-b")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->brokers = v;
    } else if (CLI_IS("--group") || CLI_IS("-G")) {
        if ((c->group = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--topic") || CLI_IS("-t")) {
        if ((c->topic = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--data")) {
        if ((c->data_dir = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--rules")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        if (c->nrule_dirs == CLI_MAX_RULE_DIRS) {
            fprintf(stderr, "vigil: at most %d --rules\n", CLI_MAX_RULE_DIRS);
            return -1;
        }
        c->rule_dirs[c->nrule_dirs++] = v;
    } else if (CLI_IS("--no-builtin-rules")) {
        c->no_builtin_rules = true;
    } else if (CLI_IS("-X")) {
        char *eq;

        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        eq = strchr(v, '=');
        if (eq == NULL || eq == v || c->nprops == CLI_MAX_PROPS) {
            fprintf(stderr, "vigil: -X takes key=value\n");
            return -1;
        }
        *eq = '\0';
        c->props[c->nprops].key = v;
        c->props[c->nprops++].value = eq + 1;
    } else if (CLI_IS("--alerts-jsonl")) {
        if ((c->alerts_jsonl = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--incidents-jsonl")) {
        if ((c->incidents_jsonl = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--api")) {
        if ((c->api = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--tokens")) {
        if ((c->tokens = cli_val(argc, argv, i)) == NULL)
            return -1;
    } else if (CLI_IS("--no-api")) {
        c->no_api = true;
    } else if (CLI_IS("--shards")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->shards = (uint32_t)strtoul(v, NULL, 10);
        if (c->shards == 0 || c->shards > 256) {
            fprintf(stderr, "vigil: --shards takes 1..256\n");
            return -1;
        }
    } else if (CLI_IS("--partitions")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->partitions = atoi(v);
        if (c->partitions < 1 || c->partitions > 256) {
            fprintf(stderr, "vigil: --partitions takes 1..256\n");
            return -1;
        }
    } else if (CLI_IS("--duration")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->duration_s = strtod(v, NULL);
    } else if (CLI_IS("--retention")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->retention_days = strtod(v, NULL);
        if (c->retention_days <= 0) {
            fprintf(stderr, "vigil: --retention takes a number of days\n");
            return -1;
        }
    } else if (CLI_IS("--lateness")) {
        if ((v = cli_val(argc, argv, i)) == NULL)
            return -1;
        c->lateness_s = strtod(v, NULL);
        if (c->lateness_s <= 0) {
            fprintf(stderr, "vigil: --lateness takes seconds (> 0)\n");
            return -1;
        }
    } else if (CLI_IS("--quiet") || CLI_IS("-q")) {
        c->quiet = true;
    } else {
        return 0;
    }
#undef CLI_IS
    return 1;
}

int cli_load_rules(const struct cli_common *c, cor_ruleset **out, struct cor_corrset **corr)
{
    struct cor_corr_load_summary csum;
    const char *dirs[CLI_MAX_RULE_DIRS + 1];
    struct cor_load_summary sum;
    char err[256];
    size_t n = 0;
    uint64_t t0 = vg_mono_ns();

    if (!c->no_builtin_rules)
        dirs[n++] = cli_builtin_rules_dir();
    for (size_t i = 0; i < c->nrule_dirs; i++)
        dirs[n++] = c->rule_dirs[i];
    memset(&sum, 0, sizeof(sum));
    if (cor_ruleset_load(dirs, n, out, &sum, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil: rules: %s\n", err);
        return -1;
    }
    memset(&csum, 0, sizeof(csum));
    if (cor_corrset_load(dirs, n, corr, &csum, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil: correlation rules: %s\n", err);
        cor_ruleset_unref(*out);
        *out = NULL;
        return -1;
    }
    fprintf(stderr,
            "vigil: rules: %u loaded from %u files, %u skipped; correlations: %u loaded, %u "
            "skipped; in %.0f ms\n",
            sum.loaded, sum.files, sum.skipped, csum.loaded, csum.skipped,
            (double)(vg_mono_ns() - t0) / 1e6);
    return 0;
}
