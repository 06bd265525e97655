/*
 * api.h - vigil's HTTP face: a Prometheus metrics registry, API tokens (tenant + role),
 * the health report, and the HTTP server (libmicrohttpd) that serves them together with
 * tenant-scoped reads of alerts, incidents and timelines.
 *
 * THREAD MODEL:
 *   MHD thread   libmicrohttpd's internal polling thread (one): runs every request handler,
 *                the metrics collectors, the health callback and the admin hook.
 *   caller       registers collectors and loads tokens before api_server_start, stops the
 *                server with api_server_stop before destroying what the server borrows.
 * Collectors and the health callback run on the MHD thread concurrently with the pipeline's own
 * threads, so they must only read what is safe to read from another thread (atomics, the
 * pipeline's stats calls, storage reads). The metrics registry itself takes a mutex, so
 * collectors may also be registered while the server runs.
 */
#ifndef VG_API_H
#define VG_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "correlate.h"
#include "ingest.h"
#include "storage.h"
#include "vg.h"

/* ---- metrics ---------------------------------------------------------------------- */

typedef struct api_metrics api_metrics;
/* The samples of one scrape, filled by the collectors. Only valid inside a collect call. */
struct api_metrics_out;

enum api_metric_type { API_COUNTER = 0, API_GAUGE };

struct api_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* */
    const char *value; /* any UTF-8; escaped on output */
};

/* Called at every scrape, on the MHD thread. Appends samples to out with
 * api_metrics_add / api_metrics_add_u64. */
typedef void (*api_collect_fn)(void *ctx, struct api_metrics_out *out);

api_metrics *api_metrics_new(void); /* NULL on allocation failure */
void api_metrics_destroy(api_metrics *m);
/* Adds a collector; ctx is borrowed and must outlive the registry (or the server using
 * it). Returns 0 or -VG_ENOMEM. */
int api_metrics_register(api_metrics *m, api_collect_fn fn, void *ctx);

/*
 * Appends one sample of family name (counters conventionally end in _total). help is used
 * the first time a family appears in a scrape. Samples of one family may come from
 * several collectors and in any order: the output groups them, HELP and TYPE once per
 * family. Returns 0, or -VG_EINVAL (bad metric or label name, or the family was added
 * before with another type; the sample is dropped and counted in
 * vigil_metrics_rejected_total), or -VG_ENOMEM.
 */
int api_metrics_add(struct api_metrics_out *out, const char *name, enum api_metric_type type,
                    const char *help, const struct api_label *labels, size_t nlabels, double value);
/* The same for an exact 64-bit count (a double would round counts above 2^53). */
int api_metrics_add_u64(struct api_metrics_out *out, const char *name, enum api_metric_type type,
                        const char *help, const struct api_label *labels, size_t nlabels,
                        uint64_t value);

/* Runs every collector and renders Prometheus text exposition format 0.0.4. Returns 0 and
 * *text (vg_malloc'd, NUL-terminated, owned by the caller) and *len, or -VG_ENOMEM. */
int api_metrics_render(api_metrics *m, char **text, size_t *len);

/* Per-partition consumer lag (messages behind the high watermark). */
struct api_partition_lag {
    int32_t partition;
    int64_t lag;
};

/* Per-rule counters, by rule. */
struct api_rule_counter {
    const char *rule_id;
    const char *title;
    uint64_t hits;
    double cpu_seconds;
};

/* Where the process's memory is, in bytes (vigil_memory_bytes{part}); a zero part is left
 * out. */
struct api_memory {
    uint64_t resident;       /* VmRSS */
    uint64_t heap_allocated; /* the allocator's live allocations (jemalloc stats.allocated) */
    uint64_t heap_resident;  /* the allocator's resident pages (jemalloc stats.resident) */
    uint64_t rocksdb_block_cache, rocksdb_memtables, rocksdb_table_readers; /* sto_mem_usage */
};

/* Everything vigil's own families are rendered from; any pointer may be NULL (its families
 * are left out). The collector fills this on each scrape and calls api_metrics_vigil. */
struct api_vigil_metrics {
    const struct ing_stats *ing;
    const struct ing_incidents_stats *incidents; /* the incident stage */
    const struct cor_shard_stats *shards;        /* shards[i] is shard i */
    size_t nshards;
    const struct api_partition_lag *lags;
    size_t nlags;
    const struct api_rule_counter *rules;
    size_t nrules;
    bool have_storage;
    uint64_t storage_bytes;          /* sto_disk_bytes */
    const struct api_memory *memory; /* NULL: no vigil_memory_bytes */
};

/*
 * Appends vigil's families: vigil_events_total{stage}, vigil_messages_total,
 * vigil_consumed_bytes_total, vigil_dead_letters_total, vigil_alerts_total{severity},
 * vigil_alerts_updated_total, vigil_lost_upstream_total, vigil_write_errors_total,
 * vigil_storage_writes_total, vigil_blocks_written_total, vigil_offset_commits_total,
 * vigil_partition_pauses_total, vigil_partitions_assigned,
 * vigil_last_event_timestamp_seconds, vigil_ring_depth{shard}, vigil_shard_machines{shard},
 * vigil_shard_processes{shard}, vigil_shard_process_table_bytes{shard},
 * vigil_consumer_lag{partition}, vigil_storage_bytes, vigil_rule_hits_total{rule_id,title},
 * vigil_rule_cpu_seconds_total{rule_id}; the incident stage's
 * vigil_incident_stage_records_total{kind}, vigil_incidents_emitted_total,
 * vigil_incidents_retired_total; vigil_memory_bytes{part}.
 * stage="consumed" counts events that reached a shard (accepted + duplicate): ing_stats
 * counts consumed messages, not events, before decoding.
 */
void api_metrics_vigil(struct api_metrics_out *out, const struct api_vigil_metrics *v);

/* ---- tokens ----------------------------------------------------------------------- */

enum api_role {
    API_ROLE_READER = 0, /* alerts, incidents, timelines, health, metrics of its tenant */
    API_ROLE_ADMIN = 1,  /* all of reader, plus settings and rule reloads */
};

#define API_TENANT_MAX 128
#define API_NAME_MAX   64

/* One token, as loaded: never the token itself, only its SHA-256. */
struct api_token {
    char tenant[API_TENANT_MAX + 1];
    enum api_role role;
    uint8_t hash[32];
    char name[API_NAME_MAX + 1]; /* "" when the line has none */
};

typedef struct api_tokens api_tokens;

const char *api_role_name(enum api_role r);
/* "reader" or "admin" -> 0 and *r; -VG_EINVAL otherwise. */
int api_role_parse(const char *s, enum api_role *r);

/*
 * Loads a token file: one token a line, `tenant role sha256hex [name]`, blank lines and
 * lines starting with '#' ignored. A bad line is logged (file:line, reason), counted in
 * *bad (may be NULL) and skipped. Returns 0 and *out, or -VG_EIO (cannot read the file;
 * detail in err) or -VG_ENOMEM.
 */
int api_tokens_load(const char *path, api_tokens **out, unsigned *bad, char *err, size_t errlen);
api_tokens *api_tokens_new(void);
/* Adds one entry (tests, or a caller with its own store). Returns 0, -VG_EINVAL, -VG_ENOMEM. */
int api_tokens_add(api_tokens *t, const char *tenant, enum api_role role, const char *sha256hex,
                   const char *name);
size_t api_tokens_count(const api_tokens *t);
void api_tokens_destroy(api_tokens *t);
/* The entry whose hash is SHA-256(token), or NULL. Compares against every entry in
 * constant time per entry (CRYPTO_memcmp, no early exit). The entry is owned by t. */
const struct api_token *api_tokens_check(const api_tokens *t, const char *token, size_t len);

/* SHA-256 of token as 64 lowercase hex digits and a NUL into hex. Returns 0 or -VG_EIO. */
int api_token_hash(const char *token, size_t len, char hex[65]);
/*
 * Makes a new random token (32 bytes from getrandom, as "vgt_" + 64 hex digits) into
 * token (cap >= 69) and, when line is not NULL, its token-file line
 * ("tenant role hash [name]", no newline; cap linecap). Returns 0, -VG_EINVAL (bad tenant
 * or name: empty, too long, or containing whitespace/control characters), or -VG_EIO.
 */
int api_token_generate(const char *tenant, enum api_role role, const char *name, char *token,
                       size_t cap, char *line, size_t linecap);
/* api_token_generate, then appends the line to path (created 0600 when missing). The
 * token is shown once to the caller and never stored. Returns 0 or a negative vg_err with
 * detail in err. */
int api_token_add(const char *path, const char *tenant, enum api_role role, const char *name,
                  char *token, size_t cap, char *err, size_t errlen);

/* ---- health ----------------------------------------------------------------------- */

/* Filled by the caller (the health callback) for every report. */
struct api_health_input {
    bool broker_reachable;
    bool database_open;
    uint64_t database_bytes;
    size_t rules_loaded;
    int64_t consumer_lag;         /* total over assigned partitions; < 0 when unknown */
    int64_t max_consumer_lag;     /* threshold; 0 = API_HEALTH_DEFAULT_MAX_LAG */
    uint64_t write_errors_recent; /* storage write errors in the caller's recent window */
    uint64_t lost_upstream_recent;
    int64_t last_event_us; /* 0 when no event yet */
    uint64_t events_total;
    uint64_t alerts_total;
    uint64_t dead_letters_total;
    uint64_t lost_upstream_total;
    uint32_t partitions;
    const char *version; /* may be NULL */
};

#define API_HEALTH_DEFAULT_MAX_LAG INT64_C(1000000)
#define API_HEALTH_MAX_ISSUES      8

struct api_health {
    bool healthy;
    size_t nissues;
    const char *issues[API_HEALTH_MAX_ISSUES]; /* static strings */
};

/*
 * Judges the input: healthy when the broker is reachable, the database open, at least one
 * rule loaded, no recent storage write error, no events recently lost upstream, and the
 * consumer lag (when known) at most the threshold. Each failed rule adds one issue.
 */
void api_health_eval(const struct api_health_input *in, struct api_health *out);
/* The report as "key: value" lines (like `mdatp health`), or as one JSON object (with a
 * trailing newline). vg_malloc'd, owned by the caller; NULL on allocation failure. */
char *api_health_text(const struct api_health_input *in);
char *api_health_json(const struct api_health_input *in);

/* ---- the HTTP server -------------------------------------------------------------- */

typedef struct api_server api_server;

/* An admin request (POST/PUT under /v1/settings/ or /v1/rules/), after authorization. */
struct api_admin_req {
    const char *method; /* "POST", "PUT" */
    const char *path;   /* "/v1/rules/reload", "/v1/settings/NAME" ... */
    const char *tenant; /* of the token */
    const char *token_name;
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
};

struct api_cfg {
    const char *bind_addr;    /* IPv4 literal; default "127.0.0.1" */
    uint16_t port;            /* 0: an ephemeral port (see api_server_port) */
    sto_db *db;               /* borrowed; NULL: the /v1 reads answer 503 */
    const api_tokens *tokens; /* borrowed; required */
    /* When set (copied), the token file tokens came from: the server reads it again when it changes
     * (looked at no more than every 250 ms, at a request), so that `vigil token add` needs
     * no restart; a file that cannot be read keeps the tokens in use; a missing one refuses
     * everyone. */
    const char *tokens_path;
    api_metrics *metrics; /* borrowed; NULL: /metrics answers 503 */
    /* Fills the health input on the MHD thread; NULL: /health answers 503. */
    void (*health)(void *ctx, struct api_health_input *in);
    void *health_ctx;
    /* Handles an authorized admin request; returns the HTTP status (e.g. 202 for a rule
     * reload) and a short message in msg. NULL: admin paths answer 501. */
    int (*admin)(void *ctx, const struct api_admin_req *req, char *msg, size_t msglen);
    void *admin_ctx;
    /* When set, /metrics and /health need a token of this tenant (an operator tenant);
     * NULL: any valid token. Both are service-wide and carry no tenant's data. */
    const char *ops_tenant;
    unsigned max_limit;     /* cap of ?limit=; default 1000 */
    unsigned default_limit; /* default 100 */
    size_t max_body;        /* admin request bodies; default 64 KiB */
};

/* Starts the server thread. Returns 0 and *out, or -VG_EINVAL / -VG_EIO / -VG_ENOMEM with
 * detail in err. */
int api_server_start(const struct api_cfg *cfg, api_server **out, char *err, size_t errlen);
/* The port bound (the ephemeral one when cfg.port was 0). */
uint16_t api_server_port(const api_server *s);
/* Requests refused since start (401, 403, and 404 for another tenant's object). */
uint64_t api_server_refused(const api_server *s);
/* Stops the thread, closes connections, frees s. */
void api_server_stop(api_server *s);

#endif /* VG_API_H */
