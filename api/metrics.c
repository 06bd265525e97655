/*
 * metrics.c - the Prometheus metrics registry: collectors append samples at each scrape,
 * and the samples are rendered in text exposition format 0.0.4.
 *
 * Why collectors rather than registered counters: the pipeline already keeps its counters
 * (atomics in ingest, per-shard stats); copying them at scrape time needs no shared
 * mutable metric objects and no locking on the hot path.
 *
 * THREAD SAFETY: api_metrics_register and api_metrics_render may be called from any
 * thread; a mutex serializes them, so collectors never run concurrently with each other.
 * A struct api_metrics_out belongs to the rendering thread.
 */
#include "api.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

struct api_collector {
    api_collect_fn fn;
    void *ctx;
};

struct api_metrics {
    pthread_mutex_t mu; /* serializes registration and scrapes */
    struct api_collector *cols;
    size_t ncols, capcols;
};

/* One family of one scrape: its sample lines, already rendered. */
struct api_family {
    char *name;
    char *help;
    enum api_metric_type type;
    struct api_buf lines;
};

struct api_metrics_out {
    struct api_family *fams; /* in order of first appearance */
    size_t nfams, capfams;
    uint64_t rejected; /* samples dropped for bad names or a type clash */
    bool oom;
};

static bool api_name_ok(const char *s, bool colon);
static struct api_family *api_family_get(struct api_metrics_out *out, const char *name,
                                         enum api_metric_type type, const char *help);
static void api_escape(struct api_buf *b, const char *s, bool quote);
static int api_sample_start(struct api_metrics_out *out, const char *name,
                            enum api_metric_type type, const char *help,
                            const struct api_label *labels, size_t nlabels,
                            struct api_family **famp);
static void api_fmt_double(char *buf, size_t cap, double v);
static void api_out_free(struct api_metrics_out *out);

/* ---- the registry ----------------------------------------------------------------- */

api_metrics *api_metrics_new(void)
{
    api_metrics *m = vg_calloc(1, sizeof(*m));

    if (m != NULL)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

void api_metrics_destroy(api_metrics *m)
{
    if (m == NULL)
        return;
    pthread_mutex_destroy(&m->mu);
    vg_free(m->cols);
    vg_free(m);
}

int api_metrics_register(api_metrics *m, api_collect_fn fn, void *ctx)
{
    int rc = 0;

    pthread_mutex_lock(&m->mu);
    if (m->ncols == m->capcols) {
        size_t cap = m->capcols ? m->capcols * 2 : 8;
        struct api_collector *c = vg_realloc(m->cols, cap * sizeof(*c));

        if (c == NULL) {
            rc = -VG_ENOMEM;
            goto out_unlock;
        }
        m->cols = c;
        m->capcols = cap;
    }
    m->cols[m->ncols++] = (struct api_collector){fn, ctx};
out_unlock:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int api_metrics_render(api_metrics *m, char **text, size_t *len)
{
    struct api_metrics_out out = {0};
    struct api_buf b = {0};

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ncols; i++)
        m->cols[i].fn(m->cols[i].ctx, &out);
    pthread_mutex_unlock(&m->mu);
    api_metrics_add_u64(&out, "vigil_metrics_rejected_total", API_COUNTER,
                        "Metric samples dropped for a bad name or a type clash.", NULL, 0,
                        out.rejected);
    for (size_t i = 0; i < out.nfams; i++) {
        const struct api_family *f = &out.fams[i];

        api_buf_printf(&b, "# HELP %s ", f->name);
        api_escape(&b, f->help, false);
        api_buf_printf(&b, "\n# TYPE %s %s\n", f->name,
                       f->type == API_COUNTER ? "counter" : "gauge");
        if (f->lines.len)
            api_buf_append(&b, f->lines.p, f->lines.len);
        b.oom |= f->lines.oom;
    }
    b.oom |= out.oom;
    api_out_free(&out);
    *text = api_buf_take(&b, len);
    return *text ? 0 : -VG_ENOMEM;
}

/* ---- samples ---------------------------------------------------------------------- */

int api_metrics_add(struct api_metrics_out *out, const char *name, enum api_metric_type type,
                    const char *help, const struct api_label *labels, size_t nlabels, double value)
{
    struct api_family *f;
    char num[64];
    int rc = api_sample_start(out, name, type, help, labels, nlabels, &f);

    if (rc < 0)
        return rc;
    api_fmt_double(num, sizeof(num), value);
    api_buf_printf(&f->lines, " %s\n", num);
    return f->lines.oom ? -VG_ENOMEM : 0;
}

int api_metrics_add_u64(struct api_metrics_out *out, const char *name, enum api_metric_type type,
                        const char *help, const struct api_label *labels, size_t nlabels,
                        uint64_t value)
{
    struct api_family *f;
    int rc = api_sample_start(out, name, type, help, labels, nlabels, &f);

    if (rc < 0)
        return rc;
    api_buf_printf(&f->lines, " %llu\n", (unsigned long long)value);
    return f->lines.oom ? -VG_ENOMEM : 0;
}

/* Validates, finds the family and writes "name{labels}" to its lines; the caller adds the
 * value. */
static int api_sample_start(struct api_metrics_out *out, const char *name,
                            enum api_metric_type type, const char *help,
                            const struct api_label *labels, size_t nlabels,
                            struct api_family **famp)
{
    struct api_family *f;

    if (!api_name_ok(name, true))
        goto out_reject;
    for (size_t i = 0; i < nlabels; i++) {
        /* Names starting with __ are reserved for Prometheus itself. */
        if (!api_name_ok(labels[i].name, false) || strncmp(labels[i].name, "__", 2) == 0 ||
            labels[i].value == NULL)
            goto out_reject;
    }
    f = api_family_get(out, name, type, help ? help : "");
    if (f == NULL)
        return out->oom ? -VG_ENOMEM : (out->rejected++, -VG_EINVAL);
    api_buf_puts(&f->lines, name);
    for (size_t i = 0; i < nlabels; i++) {
        api_buf_printf(&f->lines, "%s%s=\"", i ? "," : "{", labels[i].name);
        api_escape(&f->lines, labels[i].value, true);
        api_buf_puts(&f->lines, "\"");
    }
    if (nlabels)
        api_buf_puts(&f->lines, "}");
    *famp = f;
    return 0;
out_reject:
    vg_debug("api", "metric sample %s rejected", name ? name : "(null)");
    out->rejected++;
    return -VG_EINVAL;
}

/* The family named name, created on first use; NULL on a type clash or allocation
 * failure (out->oom). */
static struct api_family *api_family_get(struct api_metrics_out *out, const char *name,
                                         enum api_metric_type type, const char *help)
{
    struct api_family *f;

    for (size_t i = 0; i < out->nfams; i++) {
        if (strcmp(out->fams[i].name, name) == 0)
            return out->fams[i].type == type ? &out->fams[i] : NULL;
    }
    if (out->nfams == out->capfams) {
        size_t cap = out->capfams ? out->capfams * 2 : 32;
        struct api_family *fams = vg_realloc(out->fams, cap * sizeof(*fams));

        if (fams == NULL)
            goto out_oom;
        out->fams = fams;
        out->capfams = cap;
    }
    f = &out->fams[out->nfams];
    memset(f, 0, sizeof(*f));
    f->type = type;
    f->name = vg_strdup(name);
    f->help = vg_strdup(help);
    if (f->name == NULL || f->help == NULL) {
        vg_free(f->name);
        vg_free(f->help);
        goto out_oom;
    }
    out->nfams++;
    return f;
out_oom:
    out->oom = true;
    return NULL;
}

static void api_out_free(struct api_metrics_out *out)
{
    for (size_t i = 0; i < out->nfams; i++) {
        vg_free(out->fams[i].name);
        vg_free(out->fams[i].help);
        api_buf_free(&out->fams[i].lines);
    }
    vg_free(out->fams);
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same without ':'. */
static bool api_name_ok(const char *s, bool colon)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p != s && c >= '0' && c <= '9');

        if (!ok)
            return false;
    }
    return true;
}

/* Label values escape backslash, double quote and newline; HELP text only backslash and
 * newline (format 0.0.4). */
static void api_escape(struct api_buf *b, const char *s, bool quote)
{
    const char *run = s;

    for (const char *p = s; *p; p++) {
        const char *rep = NULL;

        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (quote && *p == '"')
            rep = "\\\"";
        if (rep == NULL)
            continue;
        api_buf_append(b, run, (size_t)(p - run));
        api_buf_puts(b, rep);
        run = p + 1;
    }
    api_buf_puts(b, run);
}

/* The shortest of %.15g..%.17g that reads back as v; Prometheus spells the specials
 * NaN, +Inf, -Inf. */
static void api_fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* ---- vigil's own families --------------------------------------------------------- */

static void api_vigil_ingest(struct api_metrics_out *out, const struct ing_stats *st)
{
    static const char *const sev[4] = {"Informational", "Low", "Medium", "High"};
    static const char *const ev_help = "Telemetry events by stage (consumed = reached a shard).";
    struct api_label l;

    l = (struct api_label){"stage", "consumed"};
    api_metrics_add_u64(out, "vigil_events_total", API_COUNTER, ev_help, &l, 1,
                        st->events + st->duplicates);
    l.value = "accepted";
    api_metrics_add_u64(out, "vigil_events_total", API_COUNTER, ev_help, &l, 1, st->events);
    l.value = "duplicate";
    api_metrics_add_u64(out, "vigil_events_total", API_COUNTER, ev_help, &l, 1, st->duplicates);
    api_metrics_add_u64(out, "vigil_messages_total", API_COUNTER, "Kafka messages consumed.", NULL,
                        0, st->messages);
    api_metrics_add_u64(out, "vigil_consumed_bytes_total", API_COUNTER,
                        "Bytes of Kafka messages consumed.", NULL, 0, st->bytes);
    api_metrics_add_u64(out, "vigil_dead_letters_total", API_COUNTER,
                        "Messages sent to the dead-letter topic.", NULL, 0, st->dead_letters);
    for (int i = 0; i < 4; i++) {
        l = (struct api_label){"severity", sev[i]};
        api_metrics_add_u64(out, "vigil_alerts_total", API_COUNTER, "New alerts by severity.", &l,
                            1, st->alerts[i]);
    }
    api_metrics_add_u64(out, "vigil_alerts_updated_total", API_COUNTER,
                        "Updates of existing alerts.", NULL, 0, st->alerts_updated);
    api_metrics_add_u64(out, "vigil_lost_upstream_total", API_COUNTER,
                        "Messages the broker no longer had (retention outran the consumer).", NULL,
                        0, st->lost_upstream);
    api_metrics_add_u64(out, "vigil_write_errors_total", API_COUNTER, "Storage write errors.", NULL,
                        0, st->write_errors);
    api_metrics_add_u64(out, "vigil_sightings_total", API_COUNTER,
                        "Entity sightings (machine, binary/address/domain/account, once a day) "
                        "sent to the incident stage for prevalence.",
                        NULL, 0, st->sightings);
    api_metrics_add_u64(out, "vigil_sightings_shed_total", API_COUNTER,
                        "Entity sightings not sent because their producer's queue was full.", NULL,
                        0, st->sightings_shed);
    api_metrics_add_u64(out, "vigil_producer_queue_waits_total", API_COUNTER,
                        "Alerts, dead letters and changelog records that waited for room in "
                        "their producer's bounded queue (the broker is slower than vigil).",
                        NULL, 0, st->producer_waits);
    api_metrics_add_u64(out, "vigil_storage_writes_total", API_COUNTER,
                        "RocksDB write batches written.", NULL, 0, st->writes);
    api_metrics_add_u64(out, "vigil_blocks_written_total", API_COUNTER, "Timeline blocks written.",
                        NULL, 0, st->blocks);
    api_metrics_add_u64(out, "vigil_offset_commits_total", API_COUNTER, "Kafka offset commits.",
                        NULL, 0, st->commits);
    api_metrics_add_u64(out, "vigil_partition_pauses_total", API_COUNTER,
                        "Partition pauses for backpressure.", NULL, 0, st->pauses);
    api_metrics_add_u64(out, "vigil_shard_queue_full_total", API_COUNTER,
                        "Messages a shard over its byte budget refused for now (their partition "
                        "waits: backpressure).",
                        NULL, 0, st->shard_full);
    api_metrics_add_u64(out, "vigil_partitions_assigned", API_GAUGE,
                        "Kafka partitions assigned to this instance.", NULL, 0, st->partitions);
    api_metrics_add(out, "vigil_last_event_timestamp_seconds", API_GAUGE,
                    "Event time of the newest event accepted (Unix seconds; 0 = none).", NULL, 0,
                    (double)st->last_event_us / 1e6);
}

static void api_vigil_shards(struct api_metrics_out *out, const struct cor_shard_stats *sh,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        struct api_label l = {"shard", idx};

        snprintf(idx, sizeof(idx), "%zu", i);
        api_metrics_add_u64(out, "vigil_ring_depth", API_GAUGE,
                            "Items waiting on a shard's inbound ring.", &l, 1, sh[i].in_depth);
        api_metrics_add_u64(out, "vigil_shard_machines", API_GAUGE, "Machines a shard tracks.", &l,
                            1, sh[i].machines);
        api_metrics_add_u64(out, "vigil_shard_processes", API_GAUGE, "Processes a shard tracks.",
                            &l, 1, sh[i].processes);
        api_metrics_add_u64(out, "vigil_shard_process_table_bytes", API_GAUGE,
                            "Heap bytes of a shard's process table (nodes, strings, indexes; "
                            "not the allocator's overhead).",
                            &l, 1, sh[i].proctab_bytes);
    }
}

static void api_vigil_rules(struct api_metrics_out *out, const struct api_rule_counter *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct api_label l[2] = {{"rule_id", r[i].rule_id ? r[i].rule_id : ""},
                                 {"title", r[i].title ? r[i].title : ""}};

        api_metrics_add_u64(out, "vigil_rule_hits_total", API_COUNTER, "Matches by rule.", l, 2,
                            r[i].hits);
        api_metrics_add(out, "vigil_rule_cpu_seconds_total", API_COUNTER,
                        "CPU time spent evaluating a rule.", l, 1, r[i].cpu_seconds);
    }
}

static void api_vigil_incidents(struct api_metrics_out *out, const struct ing_incidents_stats *st)
{
    static const char *const help =
        "Records of alerts.tenant the incident stage took in, by kind: alert (grouped), "
        "sightings (entities applied to prevalence), old (re-read on an assignment but older "
        "than its window, skipped), bad (neither, skipped).";
    const struct {
        const char *kind;
        uint64_t n;
    } k[] = {
        {"alert", st->alerts}, {"sightings", st->sightings}, {"old", st->old}, {"bad", st->bad}};

    for (size_t i = 0; i < VG_ARRAY_SIZE(k); i++) {
        struct api_label l = {"kind", k[i].kind};

        api_metrics_add_u64(out, "vigil_incident_stage_records_total", API_COUNTER, help, &l, 1,
                            k[i].n);
    }
    api_metrics_add_u64(out, "vigil_incidents_emitted_total", API_COUNTER,
                        "Incident states stored and emitted (topic incidents).", NULL, 0,
                        st->emitted);
    api_metrics_add_u64(out, "vigil_incidents_retired_total", API_COUNTER,
                        "Incident ids merged away into another incident.", NULL, 0, st->retired);
}

static void api_vigil_memory(struct api_metrics_out *out, const struct api_memory *m)
{
    static const char *const help =
        "Memory by part: resident (VmRSS), heap_allocated and heap_resident (the allocator's "
        "live bytes and resident pages), rocksdb_block_cache, rocksdb_memtables, "
        "rocksdb_table_readers (RocksDB's own accounting; the cache and memtables are heap "
        "too).";
    const struct {
        const char *part;
        uint64_t n;
    } p[] = {{"resident", m->resident},
             {"heap_allocated", m->heap_allocated},
             {"heap_resident", m->heap_resident},
             {"rocksdb_block_cache", m->rocksdb_block_cache},
             {"rocksdb_memtables", m->rocksdb_memtables},
             {"rocksdb_table_readers", m->rocksdb_table_readers}};

    for (size_t i = 0; i < VG_ARRAY_SIZE(p); i++) {
        struct api_label l = {"part", p[i].part};

        if (p[i].n > 0)
            api_metrics_add_u64(out, "vigil_memory_bytes", API_GAUGE, help, &l, 1, p[i].n);
    }
}

void api_metrics_vigil(struct api_metrics_out *out, const struct api_vigil_metrics *v)
{
    if (v->ing)
        api_vigil_ingest(out, v->ing);
    if (v->incidents)
        api_vigil_incidents(out, v->incidents);
    if (v->memory)
        api_vigil_memory(out, v->memory);
    if (v->shards)
        api_vigil_shards(out, v->shards, v->nshards);
    for (size_t i = 0; v->lags && i < v->nlags; i++) {
        char part[16];
        struct api_label l = {"partition", part};

        snprintf(part, sizeof(part), "%d", (int)v->lags[i].partition);
        api_metrics_add(out, "vigil_consumer_lag", API_GAUGE,
                        "Messages behind the partition's high watermark.", &l, 1,
                        (double)v->lags[i].lag);
    }
    if (v->have_storage)
        api_metrics_add_u64(out, "vigil_storage_bytes", API_GAUGE,
                            "Bytes of the database's live SST and WAL files.", NULL, 0,
                            v->storage_bytes);
    if (v->rules)
        api_vigil_rules(out, v->rules, v->nrules);
}
