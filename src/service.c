/*
 * service.c - what vigil run offers besides the pipeline: the HTTP query API with its
 * Prometheus metrics and health (api/), the health file that `vigil health` reads, and the
 * token command.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api.h"
#include "cli.h"

#define SVC_MAX_PARTS 256

/* jemalloc's control interface when the binary links it (vigil does; the test programs and
 * sanitizer builds, which use another allocator, do not): a weak reference is NULL then. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
    __attribute__((weak));

/* ---- the collector and the health input ------------------------------------------- */

static void svc_health_input(struct cli_service *sv, struct api_health_input *in)
{
    struct ing_stats st;
    int32_t parts[SVC_MAX_PARTS];
    int64_t lags[SVC_MAX_PARTS];
    size_t n;

    memset(in, 0, sizeof(*in));
    ing_pipeline_stats(sv->pipe, &st);
    n = ing_pipeline_lag(sv->pipe, parts, lags, SVC_MAX_PARTS);
    in->consumer_lag = n ? 0 : -1;
    for (size_t i = 0; i < n; i++)
        in->consumer_lag += lags[i];
    in->broker_reachable = ing_pipeline_broker_ok(sv->pipe);
    in->database_open = sv->db != NULL;
    in->database_bytes = sv->db ? sto_disk_bytes(sv->db) : 0;
    in->rules_loaded = sv->rules ? cor_ruleset_count(sv->rules) : 0;
    /* "Recent": since the previous health evaluation. */
    in->write_errors_recent = st.write_errors - sv->last_write_errors;
    in->lost_upstream_recent = st.lost_upstream - sv->last_lost;
    in->last_event_us = st.last_event_us;
    in->events_total = st.events;
    in->alerts_total = st.alerts[0] + st.alerts[1] + st.alerts[2] + st.alerts[3];
    in->dead_letters_total = st.dead_letters;
    in->lost_upstream_total = st.lost_upstream;
    in->partitions = st.partitions;
    in->version = "vigil " VIGIL_VERSION;
}

static void svc_health_cb(void *ctx, struct api_health_input *in)
{
    svc_health_input(ctx, in);
}

/* Where the memory is: VmRSS, the allocator's totals, RocksDB's parts. */
static void svc_memory(const struct cli_service *sv, struct api_memory *m)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size, rss;
    long page = sysconf(_SC_PAGESIZE);

    memset(m, 0, sizeof(*m));
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &size, &rss) == 2 && page > 0)
            m->resident = rss * (uint64_t)page;
        fclose(f);
    }
    if (mallctl != NULL) {
        uint64_t epoch = 1;
        size_t v, len = sizeof(v);

        /* The totals are refreshed only when the epoch advances. */
        if (mallctl("epoch", NULL, NULL, &epoch, sizeof(epoch)) == 0) {
            if (mallctl("stats.allocated", &v, &len, NULL, 0) == 0)
                m->heap_allocated = v;
            len = sizeof(v);
            if (mallctl("stats.resident", &v, &len, NULL, 0) == 0)
                m->heap_resident = v;
        }
    }
    if (sv->db != NULL) {
        struct sto_mem sm;

        sto_mem_usage(sv->db, &sm);
        m->rocksdb_block_cache = sm.block_cache;
        m->rocksdb_memtables = sm.memtables;
        m->rocksdb_table_readers = sm.table_readers;
    }
}

static void svc_collect(void *ctx, struct api_metrics_out *out)
{
    struct cli_service *sv = ctx;
    struct ing_stats st;
    uint32_t ns = ing_pipeline_nshards(sv->pipe);
    struct cor_shard_stats *ss = vg_calloc(ns ? ns : 1, sizeof(*ss));
    size_t nr = sv->rules ? cor_ruleset_count(sv->rules) : 0;
    struct api_rule_counter *rc = vg_calloc(nr ? nr : 1, sizeof(*rc));
    struct api_partition_lag lg[SVC_MAX_PARTS];
    int32_t parts[SVC_MAX_PARTS];
    int64_t lags[SVC_MAX_PARTS];
    struct api_vigil_metrics vm = {0};
    struct ing_incidents_stats is;
    struct api_memory mem;
    size_t nl, k = 0;

    if (ss == NULL || rc == NULL)
        goto out;
    ing_pipeline_stats(sv->pipe, &st);
    for (uint32_t i = 0; i < ns; i++)
        cor_shard_get_stats(ing_pipeline_shard(sv->pipe, i), &ss[i]);
    for (size_t r = 0; r < nr; r++) {
        uint64_t hits = 0, alerts = 0, ns_cpu = 0, h, a;

        for (uint32_t i = 0; i < ns; i++) {
            cor_shard_rule_counts(ing_pipeline_shard(sv->pipe, i), (uint32_t)r, &h, &a);
            hits += h;
            alerts += a;
            ns_cpu += cor_shard_rule_ns(ing_pipeline_shard(sv->pipe, i), (uint32_t)r);
        }
        /* Rules that matched or cost measurable time; 1,800 zero series would swamp a
         * scrape, and a slow rule that never matches is exactly what to find. */
        if (hits > 0 || ns_cpu > 0) {
            const struct cor_rule_info *ri = cor_ruleset_rule(sv->rules, (uint32_t)r);

            rc[k++] = (struct api_rule_counter){ri->id, ri->title, hits, (double)ns_cpu / 1e9};
        }
    }
    nl = ing_pipeline_lag(sv->pipe, parts, lags, SVC_MAX_PARTS);
    for (size_t i = 0; i < nl; i++)
        lg[i] = (struct api_partition_lag){parts[i], lags[i]};
    vm.ing = &st;
    if (sv->inc != NULL) {
        ing_incidents_stats(sv->inc, &is);
        vm.incidents = &is;
    }
    vm.shards = ss;
    vm.nshards = ns;
    vm.lags = lg;
    vm.nlags = nl;
    vm.rules = rc;
    vm.nrules = k;
    vm.have_storage = sv->db != NULL;
    vm.storage_bytes = sv->db ? sto_disk_bytes(sv->db) : 0;
    svc_memory(sv, &mem);
    vm.memory = &mem;
    api_metrics_vigil(out, &vm);
out:
    vg_free(ss);
    vg_free(rc);
}

static int svc_admin(void *ctx, const struct api_admin_req *req, char *msg, size_t msglen)
{
    (void)ctx;
    /* Authorized, but vigil applies settings and rule sets at start only, so say so. */
    snprintf(msg, msglen,
             "%s %s: not supported while running; restart vigil run with the new "
             "--rules",
             req->method, req->path);
    return 501;
}

/* ---- life cycle ------------------------------------------------------------------- */

static int svc_parse_addr(const char *s, char *addr, size_t addrlen, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    long p;
    char *end;

    if (colon == NULL || (size_t)(colon - s) >= addrlen)
        return -1;
    p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 0 || p > 65535)
        return -1;
    memcpy(addr, s, (size_t)(colon - s));
    addr[colon - s] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int cli_service_start(struct cli_service *sv, const struct cli_common *c)
{
    struct api_cfg ac = {0};
    char addr[64], err[256], path[4096];
    unsigned bad = 0;

    snprintf(sv->health_path, sizeof(sv->health_path), "%s/health.json", c->data_dir);
    if (c->no_api)
        return 0;
    if (svc_parse_addr(c->api ? c->api : "127.0.0.1:8787", addr, sizeof(addr), &ac.port) < 0) {
        fprintf(stderr, "vigil: --api takes ADDRESS:PORT\n");
        return -1;
    }
    if (c->tokens != NULL)
        snprintf(path, sizeof(path), "%s", c->tokens);
    else
        snprintf(path, sizeof(path), "%s/tokens", c->data_dir);
    if (api_tokens_load(path, &sv->tokens, &bad, err, sizeof(err)) < 0) {
        if (c->tokens != NULL) {
            fprintf(stderr, "vigil: tokens %s: %s\n", path, err);
            return -1;
        }
        sv->tokens = api_tokens_new(); /* no file yet: an API that refuses everyone */
    }
    sv->metrics = api_metrics_new();
    if (sv->tokens == NULL || sv->metrics == NULL ||
        api_metrics_register(sv->metrics, svc_collect, sv) < 0)
        return -1;
    ac.bind_addr = addr;
    ac.db = sv->db;
    ac.tokens = sv->tokens;
    ac.tokens_path = path; /* read again when it changes: no restart for a new token */
    ac.metrics = sv->metrics;
    ac.health = svc_health_cb;
    ac.health_ctx = sv;
    ac.admin = svc_admin;
    if (api_server_start(&ac, &sv->server, err, sizeof(err)) < 0) {
        /* The pipeline matters more than its API: run without it, loudly. */
        fprintf(stderr, "vigil: WARNING: no HTTP API on %s: %s\n", c->api ? c->api : addr, err);
        return 0;
    }
    if (!c->quiet)
        fprintf(stderr, "vigil: HTTP API on %s:%u (%zu tokens from %s; vigil token add)\n", addr,
                api_server_port(sv->server), api_tokens_count(sv->tokens), path);
    return 0;
}

/* Writes the health report for `vigil health` (whole, then renamed). Once a second. */
void cli_service_tick(struct cli_service *sv)
{
    struct api_health_input in;
    struct ing_stats st;
    char tmp[4200], *js;
    FILE *f;

    if (sv->pipe == NULL)
        return;
    svc_health_input(sv, &in);
    ing_pipeline_stats(sv->pipe, &st);
    sv->last_write_errors = st.write_errors;
    sv->last_lost = st.lost_upstream;
    js = api_health_json(&in);
    if (js == NULL)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", sv->health_path);
    if ((f = fopen(tmp, "w")) != NULL) {
        fprintf(f, "{\"written_us\":%lld,\"health\":%s}\n", (long long)vg_now_us(), js);
        if (fclose(f) == 0)
            rename(tmp, sv->health_path);
    }
    free(js);
}

void cli_service_stop(struct cli_service *sv)
{
    if (sv->server)
        api_server_stop(sv->server);
    if (sv->metrics)
        api_metrics_destroy(sv->metrics);
    if (sv->tokens)
        api_tokens_destroy(sv->tokens);
    sv->server = NULL;
    sv->metrics = NULL;
    sv->tokens = NULL;
}

/* ---- vigil health ----------------------------------------------------------------- */

int cmd_health(int argc, char **argv)
{
    const char *data = "./data", *fmt = "text";
    char path[4200], *text;
    size_t len;
    FILE *f;
    json_t *root, *h;
    json_error_t je;
    int64_t written, age_s;
    bool healthy;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc)
            fmt = argv[++i];
        else {
            printf("usage: vigil health [--data DIR] [--format text|json]\n"
                   "The health of the vigil run that owns DIR, one key: value a line; the exit\n"
                   "status is 0 when healthy, 1 when not.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    snprintf(path, sizeof(path), "%s/health.json", data);
    f = fopen(path, "r");
    if (f == NULL) {
        if (strcmp(fmt, "json") == 0)
            printf("{\"healthy\":false,\"health_issues\":[\"no vigil run has written %s\"]}\n",
                   path);
        else
            printf("healthy: false\nhealth_issues: [\"no vigil run has written %s\"]\n", path);
        return 1;
    }
    text = NULL;
    len = 0;
    root = json_loadf(f, 0, &je);
    fclose(f);
    (void)text;
    (void)len;
    if (root == NULL || (h = json_object_get(root, "health")) == NULL) {
        printf("healthy: false\nhealth_issues: [\"%s does not parse\"]\n", path);
        json_decref(root);
        return 1;
    }
    written = json_integer_value(json_object_get(root, "written_us"));
    age_s = (vg_now_us() - written) / VG_US_PER_SEC;
    /* A report older than a few seconds means no vigil run is writing it. */
    if (age_s > 10) {
        json_t *issues = json_object_get(h, "health_issues");
        char msg[128];

        snprintf(msg, sizeof(msg), "vigil run not running: last report %llds ago",
                 (long long)age_s);
        json_object_set_new(h, "healthy", json_false());
        if (json_is_array(issues))
            json_array_append_new(issues, json_string(msg));
    }
    healthy = json_is_true(json_object_get(h, "healthy"));
    if (strcmp(fmt, "json") == 0) {
        char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);

        puts(s ? s : "{}");
        free(s);
    } else {
        const char *k;
        json_t *v;

        json_object_foreach(h, k, v)
        {
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

            printf("%s: %s\n", k, s ? s : json_string_value(v));
            free(s);
        }
    }
    json_decref(root);
    return healthy ? 0 : 1;
}

/* ---- vigil token add -------------------------------------------------------------- */

int cmd_token(int argc, char **argv)
{
    const char *tenant = NULL, *role_s = "reader", *name = "", *file = NULL, *data = "./data";
    enum api_role role;
    char path[4096], tok[128], err[256];

    if (argc < 2 || strcmp(argv[1], "add") != 0)
        goto usage;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--tenant") == 0)
            tenant = argv[i + 1];
        else if (strcmp(argv[i], "--role") == 0)
            role_s = argv[i + 1];
        else if (strcmp(argv[i], "--name") == 0)
            name = argv[i + 1];
        else if (strcmp(argv[i], "--tokens") == 0)
            file = argv[i + 1];
        else if (strcmp(argv[i], "--data") == 0)
            data = argv[i + 1];
        else
            goto usage;
    }
    if (tenant == NULL || api_role_parse(role_s, &role) < 0)
        goto usage;
    if (file != NULL)
        snprintf(path, sizeof(path), "%s", file);
    else {
        mkdir(data, 0755);
        snprintf(path, sizeof(path), "%s/tokens", data);
    }
    if (api_token_add(path, tenant, role, name, tok, sizeof(tok), err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil token: %s\n", err);
        return 1;
    }
    /* The token itself is shown once; the file keeps only its SHA-256. */
    printf("%s\n", tok);
    fprintf(stderr,
            "vigil token: %s token for tenant %s added to %s (a running vigil run reads "
            "it within a second)\n",
            api_role_name(role), tenant, path);
    return 0;
usage:
    printf("usage: vigil token add --tenant T [--role reader|admin] [--name NAME]\n"
           "       [--data DIR | --tokens FILE]\n"
           "Prints a new bearer token for the HTTP API; the token file keeps its hash.\n");
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
