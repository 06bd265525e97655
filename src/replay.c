/*
 * replay.c - vigil replay: the current rule set over a file, in-process and without Kafka,
 * through the same shard code as vigil run. Alerts go to their own output, never mixed
 * with live ones.
 */
#include <arpa/inet.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "import.h"
#include "hreplay.h"
#include "incident.h"

struct replay {
    cor_shard *shard; /* --input: the one shard, on this thread */
    cor_hreplay *hr;  /* --history: the shards, on threads of their own */
    uint64_t t0_ns, last_progress_ns;
    long long total_bytes; /* of the input, for the progress bar; <= 0: unknown */
    bool progress;         /* stderr is a terminal */
    FILE *out;
    FILE *inc_out; /* incidents as JSON lines, or NULL */
    uint64_t incidents;
    uint64_t events, batches, alerts, bad;
    struct ing_limits limits;
    /* Machines replayed per tenant, for the incident stage's prevalence (replay_incidents):
     * machine key -> 1, tenant hash -> index in tenants + 1. */
    struct vg_u64map mach_seen, tenant_idx;
    struct replay_tenant {
        char *id;
        uint32_t machines;
    } * tenants;
    size_t ntenants, captenants;
};

static void replay_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* batches live in the caller's arena */
}

static void replay_reject(void *ctx, struct cor_in *in, const char *reason)
{
    struct replay *r = ctx;

    r->bad++;
    fprintf(stderr, "vigil replay: batch of %s rejected: %s\n", in->batch->machine_id, reason);
}

/* One line, redrawn: how far, how fast, how long still. */
static void replay_progress(struct replay *r, long long done_bytes, bool last)
{
    uint64_t now = vg_mono_ns();
    double el = (double)(now - r->t0_ns) / 1e9, rate = el > 0 ? (double)r->events / el : 0;
    char bar[31];
    int fill;

    if (!r->progress || (!last && now - r->last_progress_ns < 250000000u))
        return;
    r->last_progress_ns = now;
    if (r->total_bytes > 0 && done_bytes >= 0) {
        double frac = (double)done_bytes / (double)r->total_bytes;
        double left = frac > 0 ? el / frac - el : 0;

        fill = (int)(frac * 30 + 0.5);
        fill = fill < 0 ? 0 : fill > 30 ? 30 : fill;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3.0f%%  %llu events  %.0f events/s  %.0fs left   ", bar,
                frac * 100, (unsigned long long)r->events, rate, left);
    } else {
        fprintf(stderr, "\r%llu events  %.0f events/s   ", (unsigned long long)r->events, rate);
    }
    if (last)
        fputc('\n', stderr);
}

static void replay_count_machine(struct replay *r, const char *tenant, uint64_t mkey);

static void replay_batch(struct replay *r, const Vigil__TelemetryBatch *b)
{
    struct cor_in in;

    memset(&in, 0, sizeof(in));
    in.batch = b;
    in.mkey = vg_machine_key(b->tenant_id, b->machine_id);
    replay_count_machine(r, b->tenant_id, in.mkey);
    in.partition = -1;
    cor_shard_process(r->shard, &in);
    r->batches++;
    r->events += b->n_events;
}

/* Alerts in their final state: one line each, ordered by first event. */
static int replay_cmp(const void *x, const void *y)
{
    const struct cor_alert_out *a = x, *b = y;

    if (a->alert->first_event_us != b->alert->first_event_us)
        return a->alert->first_event_us < b->alert->first_event_us ? -1 : 1;
    return strcmp(a->alert->id, b->alert->id);
}

/* The same incident logic as the live stage, over the replay's alerts in their final
 * state; one line per incident, ordered by id. */
static int replay_inc_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Counts a machine under its tenant the first time one of its batches is replayed. Out of
 * memory only leaves the count low (more entities common: fewer links, never wrong ones). */
static void replay_count_machine(struct replay *r, const char *tenant, uint64_t mkey)
{
    uint64_t tkey;
    uintptr_t i;

    if (tenant == NULL || tenant[0] == '\0' || mkey == 0)
        return;
    tkey = vg_hash64(tenant, strlen(tenant), 0x7e4a47c0a1e5eed1u) | 1;
    if ((r->mach_seen.keys == NULL && vg_u64map_init(&r->mach_seen, 1024) < 0) ||
        (r->tenant_idx.keys == NULL && vg_u64map_init(&r->tenant_idx, 16) < 0) ||
        vg_u64map_get(&r->mach_seen, mkey) != NULL)
        return;
    i = (uintptr_t)vg_u64map_get(&r->tenant_idx, tkey);
    if (i == 0) {
        if (r->ntenants == r->captenants) {
            size_t cap = r->captenants ? r->captenants * 2 : 16;
            struct replay_tenant *n = vg_realloc(r->tenants, cap * sizeof(*n));

            if (n == NULL)
                return;
            r->tenants = n;
            r->captenants = cap;
        }
        r->tenants[r->ntenants] = (struct replay_tenant){vg_strdup(tenant), 0};
        if (r->tenants[r->ntenants].id == NULL ||
            vg_u64map_put(&r->tenant_idx, tkey, (void *)(uintptr_t)(r->ntenants + 1)) < 0) {
            vg_free(r->tenants[r->ntenants].id);
            return;
        }
        i = ++r->ntenants;
    }
    if (vg_u64map_put(&r->mach_seen, mkey, (void *)1) == 0)
        r->tenants[i - 1].machines++;
}

static void replay_counts_free(struct replay *r)
{
    for (size_t i = 0; i < r->ntenants; i++)
        vg_free(r->tenants[i].id);
    vg_free(r->tenants);
    if (r->mach_seen.keys != NULL)
        vg_u64map_free(&r->mach_seen);
    if (r->tenant_idx.keys != NULL)
        vg_u64map_free(&r->tenant_idx);
}

/* Each tenant's machine count is the machines replayed (replay_count_machine), not only
 * those that raised alerts: otherwise an entity on the three machines of a quiet tenant's
 * attack would be common (3 of 3 > 20 %) and would not link. A replay of part of a fleet
 * (a few --machine, a capture of one host) counts only those machines, which makes more
 * entities common than in the live stage: fewer links, never wrong ones. */
static void replay_incidents(struct replay *r, const struct cor_alert_out *alerts, size_t nalerts,
                             Vigil__Sightings *const *sightings, size_t nsightings)
{
    struct cor_incident_cfg cfg = {0};
    cor_incidents *ci = cor_incidents_new(&cfg);
    struct cor_incident_change ch;
    vg_arena *a = vg_arena_new(1 << 16);
    char id[COR_INCIDENT_ID_MAX], **ids = NULL;
    size_t n = 0, cap = 0;
    bool changed;

    if (ci == NULL || a == NULL)
        goto out;
    for (size_t i = 0; i < r->ntenants; i++)
        cor_incidents_tenant_machines(ci, r->tenants[i].id, r->tenants[i].machines);
    /* What every machine's telemetry showed, before the alerts: the same prevalence the
     * live stage learns from the sightings on alerts.tenant. */
    for (size_t i = 0; i < nsightings; i++)
        cor_incidents_observe_all(ci, sightings[i]);
    for (size_t i = 0; i < nalerts; i++)
        cor_incidents_add(ci, alerts[i].alert, id, &changed);
    while (cor_incidents_next_change(ci, &ch)) {
        if (ch.kind != COR_INCIDENT_UPDATED)
            continue;
        if (n == cap) {
            char **nn = vg_realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));

            if (nn == NULL)
                break;
            ids = nn;
        }
        if ((ids[n] = vg_strdup(ch.id)) != NULL)
            n++;
    }
    if (n > 0)
        qsort(ids, n, sizeof(*ids), replay_inc_cmp);
    for (size_t i = 0; i < n; i++) {
        Vigil__Incident *inc;
        char *js;

        vg_arena_reset(a);
        /* An id merged away later has no incident any more: skip it. */
        if ((i > 0 && strcmp(ids[i], ids[i - 1]) == 0) ||
            cor_incidents_get(ci, ids[i], a, &inc) < 0 || inc == NULL)
            continue;
        if ((js = cor_incident_to_json(inc)) != NULL) {
            fprintf(r->inc_out, "%s\n", js);
            free(js);
            r->incidents++;
        }
    }
out:
    for (size_t i = 0; i < n; i++)
        vg_free(ids[i]);
    vg_free(ids);
    vg_arena_destroy(a);
    cor_incidents_free(ci);
}

/* Alerts (sorted here) as JSON lines, then the incidents they make. */
static void replay_emit(struct replay *r, struct cor_alert_out *alerts, size_t nalerts,
                        Vigil__Sightings *const *sightings, size_t nsightings)
{
    if (nalerts > 0)
        qsort(alerts, nalerts, sizeof(*alerts), replay_cmp);
    for (size_t i = 0; i < nalerts; i++) {
        char *js = cor_alert_to_json(alerts[i].alert);

        if (js != NULL) {
            fprintf(r->out, "%s\n", js);
            free(js);
            r->alerts++;
        }
    }
    if (r->inc_out != NULL)
        replay_incidents(r, alerts, nalerts, sightings, nsightings);
}

static void replay_finish(struct replay *r)
{
    struct cor_barrier *b = cor_barrier_new(1, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = b};
    struct cor_unit *u;

    if (b == NULL)
        return;
    cor_shard_process(r->shard, &in);
    while ((u = cor_shard_pop_unit(r->shard)) != NULL) {
        replay_emit(r, u->alerts, u->nalerts, u->sightings, u->nsightings);
        cor_unit_free(u);
    }
}

/* A file of telemetry batches: 4-byte big-endian length, then the batch; or one bare batch. */
static int replay_batches_file(struct replay *r, FILE *f, vg_arena *a)
{
    for (;;) {
        uint8_t hdr[4], *buf;
        uint32_t len;
        struct ing_batch b;
        char reason[256];

        vg_arena_reset(a);
        if (fread(hdr, 1, 4, f) != 4)
            return 0;
        len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
        buf = vg_arena_alloc(a, len ? len : 1);
        if (buf == NULL || fread(buf, 1, len, f) != len) {
            fprintf(stderr, "vigil replay: truncated record\n");
            return -1;
        }
        if (ing_decode(buf, len, &r->limits, INT64_MAX / 4, a, &b, reason, sizeof(reason)) < 0) {
            r->bad++;
            fprintf(stderr, "vigil replay: batch skipped: %s\n", reason);
            continue;
        }
        replay_batch(r, b.batch);
        replay_progress(r, ftell(f), false);
    }
}

/* ---- stored history --------------------------------------------------------------- */

struct replay_hist {
    struct replay *r;
    const char *tenant;
    const char *const *machines; /* NULL: all of the tenant's */
    size_t nmachines;
};

static bool replay_hist_wanted(void *ctx, const Vigil__MachineRecord *m)
{
    const struct replay_hist *h = ctx;

    if (strcmp(m->tenant_id, h->tenant) != 0)
        return false;
    for (size_t i = 0; i < h->nmachines; i++)
        if (strcmp(h->machines[i], m->machine_id) == 0)
            return true;
    return h->nmachines == 0;
}

/* Progress: the events read of those the machine records say are stored, or the machines
 * done, whichever is further (a --from/--to window reads fewer events than stored), in
 * millionths (total_bytes is 1,000,000 here). */
static void replay_hist_progress(void *ctx, const struct cor_hreplay_progress *p)
{
    struct replay *r = ctx;
    double by_ev = p->expected ? (double)p->events / (double)p->expected : 0;
    double by_m = p->machines ? (double)p->machines_done / (double)p->machines : 0;
    double f = by_ev > by_m ? by_ev : by_m;

    r->events = p->events;
    if (p->machines_done < p->machines && f > 0.999)
        f = 0.999;
    replay_progress(r, (long long)(f * 1e6), false);
}

/* Sightings of all shards in one order whatever the threads did: tenant, machine, time. */
static int replay_sight_cmp(const void *x, const void *y)
{
    const Vigil__Sightings *a = *(Vigil__Sightings *const *)x, *b = *(Vigil__Sightings *const *)y;
    int c = strcmp(a->tenant_id, b->tenant_id);

    if (c == 0)
        c = strcmp(a->machine_id, b->machine_id);
    if (c == 0 && a->ts_us != b->ts_us)
        c = a->ts_us < b->ts_us ? -1 : 1;
    return c;
}

/* The alerts and sightings of every shard, merged and emitted in one deterministic order:
 * what a single shard would have emitted. */
static int replay_hist_emit(struct replay *r, const cor_hreplay *hr)
{
    struct cor_alert_out *alerts = NULL;
    Vigil__Sightings **sg = NULL;
    size_t na = 0, ns = 0;
    unsigned nt = cor_hreplay_threads(hr);
    int rc = 0;

    for (unsigned i = 0; i < nt; i++) {
        const struct cor_unit *u = cor_hreplay_unit(hr, i);

        na += u ? u->nalerts : 0;
        ns += u ? u->nsightings : 0;
    }
    alerts = vg_malloc((na ? na : 1) * sizeof(*alerts));
    sg = vg_malloc((ns ? ns : 1) * sizeof(*sg));
    if (alerts == NULL || sg == NULL) {
        fprintf(stderr, "vigil replay: out of memory merging the shards' alerts\n");
        rc = -1;
        goto out;
    }
    na = ns = 0;
    for (unsigned i = 0; i < nt; i++) {
        const struct cor_unit *u = cor_hreplay_unit(hr, i);

        if (u == NULL)
            continue;
        memcpy(alerts + na, u->alerts, u->nalerts * sizeof(*alerts));
        na += u->nalerts;
        memcpy(sg + ns, u->sightings, u->nsightings * sizeof(*sg));
        ns += u->nsightings;
    }
    if (ns > 0)
        qsort(sg, ns, sizeof(*sg), replay_sight_cmp);
    replay_emit(r, alerts, na, sg, ns);
out:
    vg_free(alerts);
    vg_free(sg);
    return rc;
}

static int replay_history(struct replay *r, const struct cor_shard_cfg *sc, unsigned threads,
                          const char *data, const char *tenant, const char *const *machines,
                          size_t n, int64_t from, int64_t to)
{
    struct sto_opts so = {.path = data, .read_only = true};
    struct replay_hist h = {r, tenant, machines, n};
    struct cor_hreplay_cfg hc;
    cor_hreplay *hr = NULL;
    sto_db *db = NULL;
    const char *tn, *mn;
    uint64_t ev;
    char err[256];
    int rc = -1;

    if (sto_open(&so, &db, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil replay: %s: %s\n", data, err);
        return -1;
    }
    memset(&hc, 0, sizeof(hc));
    hc.db = db;
    hc.threads = threads;
    hc.from_us = from;
    hc.to_us = to;
    hc.want = replay_hist_wanted;
    hc.want_ctx = &h;
    hc.shard = *sc;
    r->t0_ns = vg_mono_ns(); /* the rate counts reading and evaluating, not opening */
    if (cor_hreplay_new(&hc, &hr) < 0) {
        fprintf(stderr, "vigil replay: %s: could not list the machines\n", data);
        goto out;
    }
    r->hr = hr;
    r->total_bytes = 1000000; /* progress in millionths (replay_hist_progress) */
    if (cor_hreplay_run(hr, replay_hist_progress, r, 250) < 0)
        goto out;
    cor_hreplay_counts(hr, &r->events, NULL, &ev);
    r->bad += ev;
    /* One batch a machine read, as before the threads; the incident stage's prevalence
     * counts the machines that had events. */
    for (size_t i = 0; cor_hreplay_machine(hr, i, &tn, &mn, &ev); i++) {
        r->batches++;
        if (ev > 0)
            replay_count_machine(r, tn, vg_machine_key(tn, mn));
    }
    rc = replay_hist_emit(r, hr);
out:
    if (rc < 0) {
        cor_hreplay_free(hr);
        r->hr = NULL;
    }
    sto_close(db);
    return rc;
}

struct replay_rule_row {
    const struct cor_rule_info *info;
    uint64_t hits, alerts;
};

static int replay_row_cmp(const void *x, const void *y)
{
    const struct replay_rule_row *a = x, *b = y;

    if (a->alerts != b->alerts)
        return a->alerts > b->alerts ? -1 : 1;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    return strcmp(a->info->id, b->info->id);
}

/* The noise table: rules that fired, most alerts first, per 10,000 events. */
static void replay_rule_stats(struct replay *r, const cor_ruleset *rules)
{
    size_t n = cor_ruleset_count(rules), k = 0;
    struct replay_rule_row *rows = vg_calloc(n + 1, sizeof(*rows));
    double per = r->events ? 10000.0 / (double)r->events : 0;

    if (rows == NULL)
        return;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t hits, alerts;

        if (r->hr != NULL)
            cor_hreplay_rule_counts(r->hr, i, &hits, &alerts);
        else
            cor_shard_rule_counts(r->shard, i, &hits, &alerts);
        if (hits > 0)
            rows[k++] = (struct replay_rule_row){cor_ruleset_rule(rules, i), hits, alerts};
    }
    qsort(rows, k, sizeof(*rows), replay_row_cmp);
    fprintf(stderr, "rules that fired: %zu of %zu over %llu events\n", k, n,
            (unsigned long long)r->events);
    fprintf(stderr, "%10s %10s %9s %9s  %-36s %s\n", "alerts/10k", "hits/10k", "alerts", "hits",
            "rule id", "title");
    for (size_t i = 0; i < k; i++)
        fprintf(stderr, "%10.2f %10.2f %9llu %9llu  %-36s %s\n", (double)rows[i].alerts * per,
                (double)rows[i].hits * per, (unsigned long long)rows[i].alerts,
                (unsigned long long)rows[i].hits, rows[i].info->id, rows[i].info->title);
    vg_free(rows);
}

static bool replay_is_jsonl(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? NULL : fopen(path, "rb");
    int c = ' ';
    char head[8];

    if (f == NULL)
        return true; /* stdin: JSON lines */
    if (fread(head, 1, sizeof(head), f) == sizeof(head) && ing_evtx_sniff(head, sizeof(head))) {
        fclose(f);
        return true; /* .evtx: the importer reads it */
    }
    rewind(f);
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t')
        ;
    fclose(f);
    return c == '{';
}

int cmd_replay(int argc, char **argv)
{
    struct cli_common c;
    const char *input = NULL, *tenant = "default", *machines[64];
    bool rule_stats = false, history = false;
    unsigned threads = 0;
    size_t nmachines = 0;
    int64_t from = INT64_MIN / 2, to = INT64_MAX / 2;
    struct replay r;
    struct cor_shard_cfg sc;
    cor_ruleset *rules = NULL;
    struct cor_corrset *corr = NULL;
    vg_arena *a = NULL;
    char err[256];
    int rc = 1;

    memset(&r, 0, sizeof(r));
    cli_common_defaults(&c);
    for (int i = 1; i < argc; i++) {
        int k = cli_common_opt(&c, argc, argv, &i);

        if (k < 0)
            return 2;
        if (k == 1)
            continue;
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            input = argv[++i];
        else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant = argv[++i];
        else if (strcmp(argv[i], "--history") == 0)
            history = true;
        else if (strcmp(argv[i], "--machine") == 0 && i + 1 < argc && nmachines < 64)
            machines[nmachines++] = argv[++i];
        else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc &&
                 vg_parse_time(argv[i + 1], &from) == 0)
            i++;
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc &&
                 vg_parse_time(argv[i + 1], &to) == 0)
            i++;
        else if (strcmp(argv[i], "--rule-stats") == 0)
            rule_stats = true;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0 &&
                 atoi(argv[i + 1]) <= 256)
            threads = (unsigned)atoi(argv[++i]);
        else {
            printf("usage: vigil replay (--input FILE | --history --data DIR --tenant T\n"
                   "       [--machine M]... [--from TIME] [--to TIME] [--threads N])\n"
                   "       [--rules DIR]... [--no-builtin-rules] [--lateness SECONDS]\n"
                   "       [--alerts-jsonl PATH|-] [--incidents-jsonl PATH|-] [--rule-stats]\n"
                   "Runs the current rules, in-process and without Kafka, over a file or over\n"
                   "stored history (read-only, beside a running vigil run). FILE is JSON lines\n"
                   "(the schema of shared/data/telemetry; --tenant for lines without one) or\n"
                   "telemetry batches (as vigil import --output writes them). Output never\n"
                   "mixes with live alerts: alerts (default stdout) and incidents go where\n"
                   "asked, once each, in their final state. --rule-stats prints, per rule\n"
                   "that fired, its matches and alerts per 10,000 events (noise). A --history\n"
                   "replay spreads the machines over N shard threads (default: the online\n"
                   "CPUs); the output is the same for any N.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if ((input == NULL) == !history) {
        fprintf(stderr, "vigil replay: one of --input FILE or --history is required\n");
        return 2;
    }
    ing_limits_default(&r.limits);
    r.limits.min_ts_us = INT64_MIN / 4; /* recordings may be old */
    r.out = stdout;
    if (c.alerts_jsonl != NULL && strcmp(c.alerts_jsonl, "-") != 0 &&
        (r.out = fopen(c.alerts_jsonl, "w")) == NULL) {
        perror(c.alerts_jsonl);
        return 1;
    }
    if (c.incidents_jsonl != NULL &&
        (r.inc_out = strcmp(c.incidents_jsonl, "-") == 0 ? stdout
                                                         : fopen(c.incidents_jsonl, "w")) == NULL) {
        perror(c.incidents_jsonl);
        goto out;
    }
    if (cli_load_rules(&c, &rules, &corr) < 0 || (a = vg_arena_new(1 << 16)) == NULL)
        goto out;
    memset(&sc, 0, sizeof(sc));
    sc.nshards = 1;
    sc.rules = rules;
    sc.corr = corr;
    sc.corr_lateness_us = c.lateness_s > 0 ? (int64_t)(c.lateness_s * 1e6) : 0;
    sc.release = replay_release;
    sc.reject = replay_reject;
    sc.ctx = &r;
    sc.sightings = r.inc_out != NULL; /* prevalence for the incidents, else not worth it */
    if (!history && cor_shard_new(&sc, &r.shard) < 0)
        goto out;
    r.t0_ns = vg_mono_ns();
    r.progress = isatty(2);
    if (input != NULL && strcmp(input, "-") != 0) {
        struct stat sb;

        if (stat(input, &sb) == 0 && S_ISREG(sb.st_mode))
            r.total_bytes = (long long)sb.st_size;
    }
    if (history) {
        if (replay_history(&r, &sc, threads, c.data_dir, tenant, machines, nmachines, from, to) < 0)
            goto out;
    } else if (replay_is_jsonl(input)) {
        ing_importer *im;
        Vigil__TelemetryBatch *b;
        struct ing_import_stats ist;
        int k;

        if (ing_import_open(input, tenant, &im, err, sizeof(err)) < 0) {
            fprintf(stderr, "vigil replay: %s\n", err);
            goto out;
        }
        while (vg_arena_reset(a), (k = ing_import_next(im, a, 1000, &b)) == 1) {
            replay_batch(&r, b);
            replay_progress(&r, ing_import_tell(im), false);
        }
        ing_import_stats(im, &ist);
        r.bad += ist.bad_lines;
        ing_import_close(im);
    } else {
        FILE *f = fopen(input, "rb");

        if (f == NULL) {
            perror(input);
            goto out;
        }
        replay_batches_file(&r, f, a);
        fclose(f);
    }
    replay_progress(&r, r.total_bytes, true);
    if (!history)
        replay_finish(&r);
    fprintf(stderr,
            "vigil replay: %llu events in %llu batches, %llu alerts, %llu incidents, %llu bad "
            "inputs, %.0f events/s\n",
            (unsigned long long)r.events, (unsigned long long)r.batches,
            (unsigned long long)r.alerts, (unsigned long long)r.incidents,
            (unsigned long long)r.bad,
            (double)r.events / ((double)(vg_mono_ns() - r.t0_ns) / 1e9 + 1e-9));
    if (rule_stats)
        replay_rule_stats(&r, rules);
    rc = 0;
out:
    if (r.out != stdout && r.out != NULL)
        fclose(r.out);
    if (r.inc_out != stdout && r.inc_out != NULL)
        fclose(r.inc_out);
    cor_shard_destroy(r.shard);
    cor_hreplay_free(r.hr);
    replay_counts_free(&r);
    if (rules)
        cor_ruleset_unref(rules);
    cor_corrset_unref(corr);
    vg_arena_destroy(a);
    return rc;
}
