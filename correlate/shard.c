/*
 * shard.c - one correlator shard: a thread that owns its machines outright.
 *
 * THREAD SAFETY: cor_shard_push is called by the one producer thread (vg-consume);
 * cor_shard_pop_unit by the one consumer thread (vg-writer); everything else here runs on
 * the shard's own thread (vg-shard-N), or on the caller's thread for cor_shard_process when
 * the shard is not started. Statistics are written by the shard thread with relaxed atomic
 * stores and read by anyone.
 *
 * Per event: drop re-deliveries by sequence number, update the process table, build the
 * event view, run the rules, fold matches into alerts, append the raw event to the
 * machine's open timeline block. Blocks seal when full, when the day changes, when they are
 * older than block_max_age, or at a seal-all barrier; sealed blocks and alerts travel to
 * the writer in one unit per barrier.
 *
 * The changelog (cfg.snapshots; state.h, ingest/changelog.h): machines whose process table
 * or correlation state changed are marked dirty; a checkpoint barrier (every commit interval
 * and every seal-all) snapshots them, after expiry and the windows' advance, into the unit,
 * with a tombstone for a machine whose state is gone. A snapshot to restore arrives on the
 * inbound ring like a batch, ahead of the machine's telemetry, and is applied on this thread:
 * it replaces what the shard held of the machine, and the machine's stored timeline is then
 * not replayed over it (cor_rebuild_procs stays the fallback with no snapshot).
 */
#include "correlate.h"

#include <pthread.h>
#include <sys/types.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ck_ring.h>

#include "corr.h"
#include "proctab.h"
#include "state.h"
#include "sightings.h"

#define COR_EVIDENCE_MAX 16
#define COR_TREE_MAX     64
#define COR_SWEEP_MAX    256 /* machines a checkpoint looks at for expired state */

/* A pending-offset ticket: one per open block, queued per partition in opening order. */
struct cor_ticket {
    struct cor_ticket *next;
    int64_t offset;
    int64_t opened_us;     /* wall clock */
    struct cor_machine *m; /* owner while open; NULL once sealed */
};

struct cor_part {
    int32_t partition;
    struct cor_ticket *head, *tail;
};

struct cor_block_buf {
    uint8_t *buf; /* a serialized TelemetryBatch being built */
    size_t len, cap;
    uint32_t nevents;
    uint32_t day;
    int64_t first_ts_us;
    uint64_t first_seq, last_seq;
    int64_t last_ts_us;
    struct cor_ticket *ticket; /* NULL when no block is open */
    uint32_t last_len;         /* size of the previous sealed block: the next one's first
                                  allocation, so a busy machine does not regrow each block */
};

struct cor_machine {
    uint64_t mkey;
    char *tenant;
    char *machine_id;
    char *name;
    Vigil__Os os;
    char *os_version;
    char *sensor_version;
    uint64_t last_seq;   /* highest sequence number accepted */
    uint64_t sealed_seq; /* highest sequence number in a sealed block */
    int64_t first_seen_us;
    int64_t last_event_us;
    uint64_t events; /* accepted, all time */
    struct cor_block_buf blk;
    /* the changelog (cfg.snapshots) */
    int32_t partition; /* the partition its telemetry came from last */
    bool dirty;        /* state changed since its last snapshot (in s->dirty) */
    bool snapped;      /* the changelog holds a snapshot of it (not a tombstone) */
    bool swept;        /* looked at once since it went idle */
};

/* A machine restored from the changelog that has sent nothing here yet: what a tombstone
 * needs once its state expires. */
struct cor_restored {
    char *tenant, *machine;
    int32_t partition;
    int64_t last_event_us;
};

/* An alert this shard created or updated, kept so later matches fold into it. */
struct cor_alert_state {
    uint8_t *packed; /* the stored Vigil__Alert */
    size_t len;
};

struct cor_shard {
    struct cor_shard_cfg cfg;
    pthread_t thread;
    bool started;
    int stop; /* atomic: set by cor_shard_stop, read by the shard */

    struct ck_ring in_ring; /* producer: vg-consume; consumer: this shard */
    struct ck_ring_buffer *in_buf;
    struct ck_ring out_ring; /* producer: this shard; consumer: vg-writer */
    struct ck_ring_buffer *out_buf;

    struct vg_u64map machines; /* mkey -> struct cor_machine */
    struct vg_u64map alerts;   /* alert key -> struct cor_alert_state */
    /* The unit being built: hash of an alert id -> its index in unit->alerts + 1, so that
     * an update finds the alert without a scan (a replay's one unit holds every alert of
     * the run, and the scan made it quadratic). Keys NULL: not set up, scan instead. */
    struct vg_u64map unit_alerts;
    bool unit_alerts_bad; /* a put failed: the map is incomplete until the next unit */
    cor_proctab *procs;
    cor_scratch *scratch;
    cor_corrstate *corr;    /* open correlation windows of this shard's machines */
    struct cor_part *parts; /* pending tickets by partition */
    size_t nparts, capparts;
    struct cor_unit *unit;   /* being filled until the next barrier */
    vg_arena *scratch_arena; /* per-event scratch */

    /* The event being evaluated, for the match callback. */
    struct cor_machine *cur_m;
    const Vigil__Event *cur_ev;
    const struct vg_evview *cur_view;
    cor_proc *cur_proc; /* subject: created process, else actor */
    cor_proc *cur_actor;
    uint64_t cur_recv_ns;
    int64_t last_event_us; /* newest event time seen: the clock of process expiry */

    cor_sightings *sightings; /* entities seen, for the incident stage's prevalence */
    bool lineage;             /* some rule reads AncestorImage / AncestorCommandLine */
    struct cor_list {         /* their values for the current event (evview.h) */
        char *p;
        size_t n, cap;
    } anc_img, anc_cmd;

    uint64_t *rule_hits;   /* per rule index: matches (relaxed atomics; read by metrics) */
    uint64_t *rule_alerts; /* per rule index: new alerts */
    size_t nrules;

    /* the changelog (cfg.snapshots) */
    struct cor_machine **dirty; /* machines whose state changed since the last checkpoint */
    size_t ndirty, capdirty;
    struct vg_u64map restored; /* mkey -> struct cor_restored */
    size_t sweep_pos;          /* cursor over machines, for expired state */

    struct cor_shard_stats st __attribute__((aligned(VG_CACHELINE)));
};

static void *cor_shard_main(void *arg);
static void cor_handle_batch(cor_shard *s, struct cor_in *in);
static void cor_handle_barrier(cor_shard *s, struct cor_barrier *b);
static struct cor_machine *cor_machine_get(cor_shard *s, const Vigil__TelemetryBatch *tb,
                                           uint64_t mkey, const char **why);
static void cor_machine_free(struct cor_machine *m);
static void cor_rebuild_procs(cor_shard *s, struct cor_machine *m);
static void cor_handle_restore(cor_shard *s, const Vigil__MachineState *ms, int32_t partition);
static void cor_mark_dirty(cor_shard *s, struct cor_machine *m, int32_t partition);
static void cor_checkpoint(cor_shard *s, struct cor_unit *u, bool all);
static void cor_restored_free(struct cor_restored *r);
static void cor_forget_owned(cor_shard *s);
static void cor_event(cor_shard *s, struct cor_machine *m, const Vigil__TelemetryBatch *tb,
                      const Vigil__Event *ev);
static void cor_on_match(void *ctx, const struct cor_rule_info *rule);
static void cor_on_corr_fire(void *ctx, const struct cor_corr_fire *f);
static int cor_block_append(cor_shard *s, struct cor_machine *m, int32_t partition, int64_t offset,
                            const Vigil__Event *ev, const uint8_t *raw, size_t rawlen);
static void cor_block_seal(cor_shard *s, struct cor_machine *m);
static struct cor_unit *cor_unit_new(uint32_t shard);
static struct cor_part *cor_part_get(cor_shard *s, int32_t partition);
static void cor_stat_add(uint64_t *field, uint64_t n);

static const char *const cor_sev_names[] = {"Informational", "Low", "Medium", "High"};
static const char *const cor_cat_names[] = {
    "SuspiciousActivity", "Collection",          "CommandAndControl",
    "CredentialAccess",   "DefenseEvasion",      "Discovery",
    "Execution",          "Exfiltration",        "Exploit",
    "InitialAccess",      "LateralMovement",     "Malware",
    "Persistence",        "PrivilegeEscalation", "Ransomware",
    "UnwantedSoftware",
};

/* ---- public ----------------------------------------------------------------------- */

const char *cor_severity_name(Vigil__Severity sev)
{
    return (unsigned)sev < VG_ARRAY_SIZE(cor_sev_names) ? cor_sev_names[sev] : "Unknown";
}

const char *cor_category_name(Vigil__Category c)
{
    return (unsigned)c < VG_ARRAY_SIZE(cor_cat_names) ? cor_cat_names[c] : "Unknown";
}

struct cor_barrier *cor_barrier_new(uint64_t id, bool seal_all, const struct cor_offset *parts,
                                    size_t nparts, int refs)
{
    struct cor_barrier *b = vg_calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->dispatched = vg_malloc((nparts ? nparts : 1) * sizeof(*parts));
    if (b->dispatched == NULL) {
        vg_free(b);
        return NULL;
    }
    if (nparts)
        memcpy(b->dispatched, parts, nparts * sizeof(*parts));
    b->id = id;
    b->seal_all = seal_all;
    b->nparts = nparts;
    b->refs = refs;
    return b;
}

void cor_barrier_unref(struct cor_barrier *b)
{
    /* acq_rel: the last owner must see every other owner's use before freeing. */
    if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        vg_free(b->dispatched);
        vg_free(b);
    }
}

void cor_unit_free(struct cor_unit *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < u->nblocks; i++)
        vg_free(u->blocks[i].data);
    vg_free(u->blocks);
    vg_free(u->machines);
    vg_free(u->alerts);
    vg_free(u->pending);
    for (size_t i = 0; i < u->nsnaps; i++) {
        vg_free(u->snaps[i].key);
        vg_free(u->snaps[i].val);
    }
    vg_free(u->snaps);
    if (u->barrier)
        cor_barrier_unref(u->barrier);
    vg_arena_destroy(u->arena);
    vg_free(u);
}

int cor_shard_new(const struct cor_shard_cfg *cfg, cor_shard **out)
{
    cor_shard *s = vg_calloc(1, sizeof(*s));

    if (s == NULL)
        return -VG_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.in_ring_size == 0)
        s->cfg.in_ring_size = 4096;
    if (s->cfg.out_ring_size == 0)
        s->cfg.out_ring_size = 64;
    if (s->cfg.block_max_events == 0)
        s->cfg.block_max_events = 256;
    if (s->cfg.block_max_bytes == 0)
        s->cfg.block_max_bytes = 64u << 10;
    if (s->cfg.block_max_age_us == 0)
        s->cfg.block_max_age_us = 5 * VG_US_PER_SEC;
    if (s->cfg.proc_window_us == 0)
        s->cfg.proc_window_us = 3600 * VG_US_PER_SEC;
    s->in_buf = vg_calloc(s->cfg.in_ring_size, sizeof(*s->in_buf));
    s->out_buf = vg_calloc(s->cfg.out_ring_size, sizeof(*s->out_buf));
    s->procs = cor_proctab_new(1024);
    s->unit = cor_unit_new(cfg->index);
    s->scratch_arena = vg_arena_new(16384);
    s->sightings = cfg->sightings ? cor_sightings_new(0) : NULL;
    if (s->in_buf == NULL || s->out_buf == NULL || s->procs == NULL || s->unit == NULL ||
        s->scratch_arena == NULL || (cfg->sightings && s->sightings == NULL) ||
        vg_u64map_init(&s->machines, 1024) < 0 || vg_u64map_init(&s->alerts, 64) < 0 ||
        vg_u64map_init(&s->restored, 16) < 0)
        goto out_free;
    if (cfg->corr != NULL &&
        (s->corr = cor_corrstate_new(cfg->corr,
                                     cfg->corr_lateness_us == 0  ? COR_CORR_DEFAULT_LATENESS_US
                                     : cfg->corr_lateness_us < 0 ? 0
                                                                 : cfg->corr_lateness_us,
                                     cor_on_corr_fire, s)) == NULL)
        goto out_free;
    if (cfg->rules != NULL) {
        s->nrules = cor_ruleset_count(cfg->rules);
        s->lineage = cor_ruleset_uses_lineage(cfg->rules, -1);
        s->scratch = cor_scratch_new(cfg->rules);
        s->rule_hits = vg_calloc(s->nrules + 1, sizeof(*s->rule_hits));
        s->rule_alerts = vg_calloc(s->nrules + 1, sizeof(*s->rule_alerts));
        if (s->scratch == NULL || s->rule_hits == NULL || s->rule_alerts == NULL)
            goto out_free;
    }
    /* References are taken last, when nothing can fail any more. */
    if (cfg->rules != NULL)
        cor_ruleset_ref(cfg->rules);
    if (cfg->corr != NULL)
        cor_corrset_ref(cfg->corr);
    ck_ring_init(&s->in_ring, s->cfg.in_ring_size);
    ck_ring_init(&s->out_ring, s->cfg.out_ring_size);
    *out = s;
    return 0;

out_free:
    s->cfg.rules = NULL; /* no reference was taken */
    s->cfg.corr = NULL;
    cor_shard_destroy(s);
    return -VG_ENOMEM;
}

void cor_shard_destroy(cor_shard *s)
{
    size_t pos = 0;
    uint64_t k;
    void *v;
    struct cor_unit *u;

    if (s == NULL)
        return;
    if (s->started)
        cor_shard_stop(s);
    while (s->machines.keys != NULL && vg_u64map_next(&s->machines, &pos, &k, &v))
        cor_machine_free(v);
    vg_u64map_free(&s->machines);
    pos = 0;
    while (s->alerts.keys != NULL && vg_u64map_next(&s->alerts, &pos, &k, &v)) {
        vg_free(((struct cor_alert_state *)v)->packed);
        vg_free(v);
    }
    vg_u64map_free(&s->alerts);
    if (s->unit_alerts.keys != NULL)
        vg_u64map_free(&s->unit_alerts);
    pos = 0;
    while (s->restored.keys != NULL && vg_u64map_next(&s->restored, &pos, &k, &v))
        cor_restored_free(v);
    if (s->restored.keys != NULL)
        vg_u64map_free(&s->restored);
    vg_free(s->dirty);
    for (size_t i = 0; i < s->nparts; i++) {
        struct cor_ticket *t, *next;

        for (t = s->parts[i].head; t != NULL; t = next) {
            next = t->next;
            vg_free(t);
        }
    }
    vg_free(s->parts);
    while (s->out_buf != NULL && (u = cor_shard_pop_unit(s)) != NULL)
        cor_unit_free(u);
    cor_unit_free(s->unit);
    cor_sightings_free(s->sightings);
    vg_free(s->anc_img.p);
    vg_free(s->anc_cmd.p);
    if (s->procs)
        cor_proctab_destroy(s->procs);
    if (s->scratch)
        cor_scratch_destroy(s->scratch);
    if (s->cfg.rules)
        cor_ruleset_unref(s->cfg.rules);
    cor_corrstate_destroy(s->corr);
    if (s->cfg.corr)
        cor_corrset_unref(s->cfg.corr);
    vg_arena_destroy(s->scratch_arena);
    vg_free(s->rule_hits);
    vg_free(s->rule_alerts);
    vg_free(s->in_buf);
    vg_free(s->out_buf);
    vg_free(s);
}

int cor_shard_start(cor_shard *s)
{
    char name[16];

    if (pthread_create(&s->thread, NULL, cor_shard_main, s) != 0)
        return -VG_ENOMEM;
    snprintf(name, sizeof(name), "vg-shard-%u", s->cfg.index);
    pthread_setname_np(s->thread, name);
    s->started = true;
    return 0;
}

void cor_shard_stop(cor_shard *s)
{
    if (!s->started)
        return;
    /* release: pairs with the acquire load in cor_shard_main. */
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    pthread_join(s->thread, NULL);
    s->started = false;
}

int cor_shard_push(cor_shard *s, struct cor_in *in)
{
    /* ck_ring's SPSC enqueue publishes the entry with a release fence. */
    if (!ck_ring_enqueue_spsc(&s->in_ring, s->in_buf, in))
        return -VG_EFULL;
    return 0;
}

struct cor_unit *cor_shard_pop_unit(cor_shard *s)
{
    struct cor_unit *u;

    if (!ck_ring_dequeue_spsc(&s->out_ring, s->out_buf, &u))
        return NULL;
    return u;
}

void cor_shard_get_stats(cor_shard *s, struct cor_shard_stats *st)
{
    uint64_t *dst = (uint64_t *)st;
    const uint64_t *src = (const uint64_t *)&s->st;

    for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    st->in_depth = ck_ring_size(&s->in_ring);
}

void cor_shard_rule_counts(cor_shard *s, uint32_t index, uint64_t *hits, uint64_t *alerts)
{
    *hits = index < s->nrules ? __atomic_load_n(&s->rule_hits[index], __ATOMIC_RELAXED) : 0;
    *alerts = index < s->nrules ? __atomic_load_n(&s->rule_alerts[index], __ATOMIC_RELAXED) : 0;
}

uint64_t cor_shard_rule_ns(cor_shard *s, uint32_t index)
{
    return s->scratch != NULL ? cor_scratch_rule_ns(s->scratch, index) : 0;
}

void cor_shard_process(cor_shard *s, struct cor_in *in)
{
    if (in->restore != NULL)
        cor_handle_restore(s, in->restore, in->partition);
    else if (in->is_barrier)
        cor_handle_barrier(s, in->barrier);
    else
        cor_handle_batch(s, in);
    if (s->cfg.release)
        s->cfg.release(s->cfg.ctx, in);
}

/* ---- the shard thread ------------------------------------------------------------- */

static void *cor_shard_main(void *arg)
{
    cor_shard *s = arg;
    unsigned idle = 0;

    for (;;) {
        struct cor_in *in;

        if (ck_ring_dequeue_spsc(&s->in_ring, s->in_buf, &in)) {
            cor_shard_process(s, in);
            idle = 0;
            continue;
        }
        /* acquire: pairs with the release store in cor_shard_stop; the ring is empty and
         * the producer has stopped, so nothing more will come. */
        if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE))
            break;
        /* Back off: spin briefly, then sleep up to 1 ms, to spare the two cores. */
        if (++idle < 64) {
            __builtin_ia32_pause();
        } else {
            struct timespec ts = {0, idle < 256 ? 50000 : 1000000};

            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- batches ---------------------------------------------------------------------- */

static void cor_handle_batch(cor_shard *s, struct cor_in *in)
{
    const Vigil__TelemetryBatch *tb = in->batch;
    const char *why = NULL;
    struct cor_machine *m = cor_machine_get(s, tb, in->mkey, &why);
    uint64_t accepted = 0, dups = 0;

    cor_stat_add(&s->st.batches, 1);
    if (s->unit == NULL && (s->unit = cor_unit_new(s->cfg.index)) == NULL)
        m = NULL; /* out of memory: dead-letter the batch rather than lose it */
    if (m == NULL) {
        cor_stat_add(&s->st.rejected, 1);
        if (s->cfg.reject)
            s->cfg.reject(s->cfg.ctx, in, why ? why : "out of memory");
        return;
    }
    s->cur_recv_ns = in->recv_ns;
    for (size_t i = 0; i < tb->n_events; i++) {
        const Vigil__Event *ev = tb->events[i];

        /* Sensors number events strictly upwards per machine, and one machine's batches
         * arrive in order on one partition, so anything at or below the high-water mark is
         * a re-delivery. */
        if (ev->seq <= m->last_seq) {
            dups++;
            continue;
        }
        m->last_seq = ev->seq;
        if (ev->ts_us > m->last_event_us)
            m->last_event_us = ev->ts_us;
        m->events++;
        cor_event(s, m, tb, ev);
        /* Out of memory loses a sighting at worst; a later event reports it again. */
        if (s->sightings != NULL)
            (void)cor_sightings_event(s->sightings, m->mkey, m->tenant, m->machine_id, ev);
        if (in->raw != NULL)
            cor_block_append(s, m, in->partition, in->offset, ev, in->raw[i], in->raw_len[i]);
        accepted++;
    }
    if (accepted > 0 && s->cfg.snapshots)
        cor_mark_dirty(s, m, in->partition);
    cor_stat_add(&s->st.events, accepted);
    cor_stat_add(&s->st.duplicates, dups);
    s->unit->events += accepted;
}

static struct cor_machine *cor_machine_get(cor_shard *s, const Vigil__TelemetryBatch *tb,
                                           uint64_t mkey, const char **why)
{
    struct cor_machine *m = vg_u64map_get(&s->machines, mkey);
    Vigil__MachineRecord *rec = NULL;

    if (m != NULL) {
        if (strcmp(m->tenant, tb->tenant_id) != 0 || strcmp(m->machine_id, tb->machine_id) != 0) {
            /* Two (tenant, machine) pairs with one 64-bit key: refuse rather than mix. */
            *why = "machine key collision";
            return NULL;
        }
        return m;
    }
    m = vg_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->mkey = mkey;
    m->tenant = vg_strdup(tb->tenant_id);
    m->machine_id = vg_strdup(tb->machine_id);
    m->name = vg_strdup(tb->machine_name);
    m->os = tb->os;
    m->os_version = vg_strdup(tb->os_version);
    m->sensor_version = vg_strdup(tb->sensor_version);
    m->first_seen_us = vg_now_us();
    if (m->tenant == NULL || m->machine_id == NULL || m->name == NULL || m->os_version == NULL ||
        m->sensor_version == NULL)
        goto out_free;
    /* A machine seen before this process started: resume its dedup state. */
    if (s->cfg.db != NULL && sto_get_machine(s->cfg.db, mkey, &rec) == 0) {
        if (strcmp(rec->tenant_id, tb->tenant_id) != 0 ||
            strcmp(rec->machine_id, tb->machine_id) != 0) {
            vigil__machine_record__free_unpacked(rec, NULL);
            *why = "machine key collision";
            goto out_free;
        }
        m->last_seq = m->sealed_seq = rec->last_seq;
        m->first_seen_us = rec->first_seen_us;
        m->last_event_us = rec->last_event_us;
        m->events = rec->events;
        vigil__machine_record__free_unpacked(rec, NULL);
        /* A state restored from the changelog wins over the own timeline, which lacks
         * what another owner saw. */
        if (vg_u64map_get(&s->restored, mkey) == NULL)
            cor_rebuild_procs(s, m);
    }
    {
        struct cor_restored *r = vg_u64map_del(&s->restored, mkey);

        if (r != NULL) {
            m->snapped = true;
            m->partition = r->partition;
            cor_restored_free(r);
        }
    }
    if (vg_u64map_put(&s->machines, mkey, m) < 0)
        goto out_free;
    cor_stat_add(&s->st.machines, 1);
    return m;

out_free:
    cor_machine_free(m);
    return NULL;
}

/* A machine this process has not seen yet, but the database has (a restart, or its
 * partition came back here) and the changelog had no snapshot of: its process tree is
 * rebuilt from the stored timeline of the last process window. Open correlation windows are
 * not rebuilt this way; the changelog moves them. */
static void cor_rebuild_procs(cor_shard *s, struct cor_machine *m)
{
    sto_tl_iter *it;
    const Vigil__Event *ev;
    size_t n = 0;

    if (sto_tl_open(s->cfg.db, m->mkey, m->last_event_us - s->cfg.proc_window_us, m->last_event_us,
                    false, &it) < 0)
        return;
    while (sto_tl_next(it, &ev) == 1) {
        cor_proctab_on_event(s->procs, m->mkey, ev);
        n++;
    }
    sto_tl_close(it);
    vg_debug("correlate", "machine %s: process table rebuilt from %zu stored events", m->machine_id,
             n);
}

static void cor_machine_free(struct cor_machine *m)
{
    if (m == NULL)
        return;
    vg_free(m->tenant);
    vg_free(m->machine_id);
    vg_free(m->name);
    vg_free(m->os_version);
    vg_free(m->sensor_version);
    vg_free(m->blk.buf);
    if (m->blk.ticket)
        m->blk.ticket->m = NULL;
    vg_free(m);
}

/* ---- one event -------------------------------------------------------------------- */

#define COR_LINEAGE_MAX 64 /* ancestors listed at most (a loop in bad data stops too) */
#define COR_LINEAGE_MAX_BYTES                                                                      \
    (64u << 10) /* per list: a deep chain of long command lines                                    \
                   must not cost every descendant's event more */

/* Appends one element; false (the list unchanged) when it would pass the byte cap or
 * memory runs out. */
static bool cor_list_add(struct cor_list *l, const char *s)
{
    size_t n = strlen(s);

    if (l->n + n + 2 > COR_LINEAGE_MAX_BYTES)
        return false;
    if (l->n + n + 2 > l->cap) {
        size_t cap = VG_MAX(l->cap * 2, l->n + n + 256);
        char *p = vg_realloc(l->p, cap);

        if (p == NULL)
            return false;
        l->p = p;
        l->cap = cap;
    }
    if (l->n == 0)
        l->p[l->n++] = VG_LIST_SEP;
    memcpy(l->p + l->n, s, n);
    /* A separator inside a value would forge an element boundary: substitute it. */
    for (char *q = memchr(l->p + l->n, VG_LIST_SEP, n); q != NULL;
         q = memchr(q + 1, VG_LIST_SEP, (size_t)(l->p + l->n + n - q - 1)))
        *q = VG_LIST_SEP_SUB;
    l->n += n;
    l->p[l->n++] = VG_LIST_SEP;
    return true;
}

/* AncestorImage and AncestorCommandLine of the view: the known ancestors of the event's
 * process (proc), parent first, from the process table, each list up to its byte cap.
 * Absent when none is known (or memory ran out: a lineage rule then does not match, as
 * for an unknown parent). */
static void cor_view_lineage(cor_shard *s, struct vg_evview *v, const cor_proc *proc)
{
    bool img = true, cmd = true;
    int depth = 0;

    s->anc_img.n = s->anc_cmd.n = 0;
    for (const cor_proc *p = proc ? cor_proc_parent(proc) : NULL;
         p != NULL && depth < COR_LINEAGE_MAX && (img || cmd); p = cor_proc_parent(p), depth++) {
        img = img && cor_list_add(&s->anc_img, cor_proc_image(p));
        cmd = cmd && cor_list_add(&s->anc_cmd, cor_proc_command_line(p));
    }
    if (s->anc_img.n > 0)
        v->f[VG_F_ANCESTOR_IMAGE] = (struct vg_str){s->anc_img.p, s->anc_img.n};
    if (s->anc_cmd.n > 0)
        v->f[VG_F_ANCESTOR_COMMAND_LINE] = (struct vg_str){s->anc_cmd.p, s->anc_cmd.n};
}

static void cor_event(cor_shard *s, struct cor_machine *m, const Vigil__TelemetryBatch *tb,
                      const Vigil__Event *ev)
{
    struct vg_evview v;
    cor_proc *actor = NULL, *subject = NULL;
    const Vigil__ProcessRef *a = ev->actor;

    if (a != NULL && a->pid != 0)
        actor = cor_proctab_upsert(s->procs, m->mkey, a, 0, 0, ev->ts_us);
    subject = actor;
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        if (ev->process_created->process != NULL)
            subject = cor_proctab_upsert(s->procs, m->mkey, ev->process_created->process,
                                         a ? a->pid : 0, a ? a->creation_time_us : 0, ev->ts_us);
        break;
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        if (actor != NULL)
            cor_proctab_exit(s->procs, actor, ev->ts_us, ev->process_exited->exit_code);
        break;
    default:
        break;
    }
    if (s->scratch == NULL)
        return;
    if (ev->ts_us > s->last_event_us)
        s->last_event_us = ev->ts_us;
    vg_evview_build(&v, tb, ev);
    v.os = m->os;
    /* Never what the event says (evview.c leaves them to the shard), and only for the
     * categories whose rules read them. */
    v.f[VG_F_ANCESTOR_IMAGE] = v.f[VG_F_ANCESTOR_COMMAND_LINE] = (struct vg_str){0};
    if (s->lineage && cor_ruleset_uses_lineage(s->cfg.rules, (int)v.cat))
        cor_view_lineage(s, &v, subject);
    s->cur_m = m;
    s->cur_ev = ev;
    s->cur_view = &v;
    s->cur_proc = subject;
    s->cur_actor = actor;
    cor_rules_eval(s->cfg.rules, s->scratch, &v, cor_on_match, s);
    s->cur_view = NULL;
    s->cur_ev = NULL;
}

/* ---- alerts ----------------------------------------------------------------------- */

static const char *cor_event_kind(const Vigil__Event *ev)
{
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        return "process_creation";
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        return "process_termination";
    case VIGIL__EVENT__KIND_FILE:
        return "file_event";
    case VIGIL__EVENT__KIND_NETWORK:
        return "network_connection";
    case VIGIL__EVENT__KIND_DNS:
        return "dns_query";
    case VIGIL__EVENT__KIND_REGISTRY:
        return "registry_event";
    case VIGIL__EVENT__KIND_LOGON:
        return "logon";
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        return "image_load";
    case VIGIL__EVENT__KIND_SOFTWARE:
        return "software_inventory";
    case VIGIL__EVENT__KIND_GENERIC:
        return ev->generic->category[0] ? ev->generic->category : "generic";
    default:
        return "unknown";
    }
}

/* One line an analyst can read, into the arena. */
static char *cor_event_summary(vg_arena *a, const Vigil__Event *ev)
{
    char buf[1024];
    const Vigil__ProcessRef *p = ev->actor;
    const char *img = p && p->image[0] ? p->image : "?";

    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        snprintf(buf, sizeof(buf), "%s started %s", img,
                 ev->process_created->process ? ev->process_created->process->command_line : "?");
        break;
    case VIGIL__EVENT__KIND_FILE:
        snprintf(buf, sizeof(buf), "%s file op %d on %s", img, ev->file->op, ev->file->path);
        break;
    case VIGIL__EVENT__KIND_NETWORK:
        snprintf(buf, sizeof(buf), "%s connected to %s:%u", img, ev->network->remote_ip,
                 ev->network->remote_port);
        break;
    case VIGIL__EVENT__KIND_DNS:
        snprintf(buf, sizeof(buf), "%s resolved %s", img, ev->dns->query_name);
        break;
    case VIGIL__EVENT__KIND_REGISTRY:
        snprintf(buf, sizeof(buf), "%s registry op %d on %s %s", img, ev->registry->op,
                 ev->registry->key, ev->registry->value_name);
        break;
    case VIGIL__EVENT__KIND_LOGON:
        snprintf(buf, sizeof(buf), "logon %s of %s from %s (type %u)",
                 ev->logon->success ? "success" : "failure", ev->logon->account,
                 ev->logon->source_ip, ev->logon->logon_type);
        break;
    default:
        snprintf(buf, sizeof(buf), "%s %s", img, cor_event_kind(ev));
        break;
    }
    return vg_arena_strndup(a, buf, strlen(buf));
}

static char *cor_dup(vg_arena *a, const char *str)
{
    char *d;

    if (str == NULL)
        return "";
    d = vg_arena_strndup(a, str, strlen(str));
    return d ? d : "";
}

static char **cor_dup_list(vg_arena *a, const char *const *list, size_t n)
{
    char **d = n ? vg_arena_alloc(a, n * sizeof(*d)) : NULL;

    for (size_t i = 0; d != NULL && i < n; i++)
        d[i] = cor_dup(a, list[i]);
    return d;
}

/* The process an alert folds on, by the rule's grouping. */
static const cor_proc *cor_anchor(cor_shard *s, enum cor_group g)
{
    if (g == COR_GROUP_MACHINE)
        return NULL;
    if (g == COR_GROUP_PARENT) {
        if (s->cur_ev->kind_case == VIGIL__EVENT__KIND_PROCESS_CREATED)
            return s->cur_actor;
        return s->cur_actor ? cor_proc_parent(s->cur_actor) : NULL;
    }
    return s->cur_proc;
}

static void cor_alert_id(cor_shard *s, const struct cor_rule_info *r, const cor_proc *anchor,
                         char out[33], uint64_t *key)
{
    char buf[512];
    int n;
    uint64_t h1, h2;

    /* Every string is length-prefixed, so no choice of ids can make two tenants' (or
     * machines') inputs read the same: ("a|b", "c") and ("a", "b|c") differ. */
    if (anchor != NULL)
        n = snprintf(buf, sizeof(buf), "%zu:%s|%zu:%s|%zu:%s|p%u|%lld", strlen(s->cur_m->tenant),
                     s->cur_m->tenant, strlen(s->cur_m->machine_id), s->cur_m->machine_id,
                     strlen(r->id), r->id, cor_proc_pid(anchor), (long long)cor_proc_ctime(anchor));
    else /* machine-wide rules fold per day of event time */
        n = snprintf(buf, sizeof(buf), "%zu:%s|%zu:%s|%zu:%s|d%u", strlen(s->cur_m->tenant),
                     s->cur_m->tenant, strlen(s->cur_m->machine_id), s->cur_m->machine_id,
                     strlen(r->id), r->id, sto_day(s->cur_ev->ts_us));
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    /* vigil.window: each aligned window of event time is an alert of its own (a rule with
     * no window keeps the ids it always had). */
    if (r->fold_window_us > 0 && (size_t)n < sizeof(buf) - 24)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, "|w%lld",
                      (long long)(s->cur_ev->ts_us / r->fold_window_us));
    h1 = vg_hash64(buf, (size_t)n, 0x616c657274);
    h2 = vg_hash64(buf, (size_t)n, h1);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
    *key = h1 ? h1 : 1;
}

static void cor_add_evidence(vg_arena *a, Vigil__Alert *al, const Vigil__Event *ev)
{
    Vigil__EvidenceEvent *e, **arr;

    if (al->n_evidence >= COR_EVIDENCE_MAX)
        return;
    e = vg_arena_alloc(a, sizeof(*e));
    arr = vg_arena_alloc(a, (al->n_evidence + 1) * sizeof(*arr));
    if (e == NULL || arr == NULL)
        return;
    vigil__evidence_event__init(e);
    e->seq = ev->seq;
    e->ts_us = ev->ts_us;
    e->kind = (char *)cor_event_kind(ev);
    e->summary = cor_event_summary(a, ev);
    if (al->n_evidence)
        memcpy(arr, al->evidence, al->n_evidence * sizeof(*arr));
    arr[al->n_evidence++] = e;
    al->evidence = arr;
}

static void cor_add_entity(vg_arena *a, Vigil__Alert *al, Vigil__EntityKind kind, const char *value,
                           const char *sha256)
{
    Vigil__Entity *e, **arr;

    if (value == NULL || value[0] == '\0')
        return;
    for (size_t i = 0; i < al->n_entities; i++)
        if (al->entities[i]->kind == kind && strcmp(al->entities[i]->value, value) == 0)
            return;
    e = vg_arena_alloc(a, sizeof(*e));
    arr = vg_arena_alloc(a, (al->n_entities + 1) * sizeof(*arr));
    if (e == NULL || arr == NULL)
        return;
    vigil__entity__init(e);
    e->kind = kind;
    e->value = vg_arena_strndup(a, value, strlen(value));
    e->sha256 = sha256 ? vg_arena_strndup(a, sha256, strlen(sha256)) : "";
    if (al->n_entities)
        memcpy(arr, al->entities, al->n_entities * sizeof(*arr));
    arr[al->n_entities++] = e;
    al->entities = arr;
}

struct cor_entity_ctx {
    vg_arena *a;
    Vigil__Alert *al;
};

static void cor_entity_cb(void *ctx, Vigil__EntityKind kind, const char *value, const char *sha256)
{
    struct cor_entity_ctx *c = ctx;

    cor_add_entity(c->a, c->al, kind, value, sha256);
}

/* Entities of one event, for incident linking: machine, user, files, addresses. The
 * shard's sightings (sightings.h) report the same entities of every event. */
static void cor_add_entities(vg_arena *a, Vigil__Alert *al, const struct cor_machine *m,
                             const Vigil__Event *ev)
{
    struct cor_entity_ctx c = {a, al};

    cor_add_entity(a, al, VIGIL__ENTITY_KIND__ENTITY_MACHINE, m->machine_id, NULL);
    cor_event_entities(ev, cor_entity_cb, &c);
}

/* The index of the alert with this id in the unit being built, or -1. */
static ssize_t cor_unit_find_alert(cor_shard *s, const char *id, uint64_t h)
{
    struct cor_unit *u = s->unit;
    uintptr_t i;

    if (s->unit_alerts.keys != NULL && !s->unit_alerts_bad) {
        i = (uintptr_t)vg_u64map_get(&s->unit_alerts, h);
        if (i == 0)
            return -1; /* the map holds every alert of the unit */
        if (i <= u->nalerts && strcmp(u->alerts[i - 1].alert->id, id) == 0)
            return (ssize_t)i - 1;
        /* two ids with one hash: scan */
    }
    for (size_t k = 0; k < u->nalerts; k++)
        if (strcmp(u->alerts[k].alert->id, id) == 0)
            return (ssize_t)k;
    return -1;
}

/* Forgets the unit's alert index once the unit has been handed out. */
static void cor_unit_alerts_reset(cor_shard *s)
{
    if (s->unit_alerts.keys != NULL && s->unit_alerts.count > 0)
        vg_u64map_free(&s->unit_alerts);
    s->unit_alerts_bad = false;
}

static void cor_unit_add_alert(cor_shard *s, Vigil__Alert *al, bool is_new)
{
    struct cor_unit *u = s->unit;
    uint64_t h = vg_hash64(al->id, strlen(al->id), 0x756e6974) | 1;
    ssize_t at = cor_unit_find_alert(s, al->id, h);

    /* An alert updated twice before a barrier travels once, as its newest state. */
    if (at >= 0) {
        u->alerts[at].alert = al;
        return;
    }
    if (u->nalerts == u->capalerts) {
        size_t cap = u->capalerts ? u->capalerts * 2 : 8;
        struct cor_alert_out *n = vg_realloc(u->alerts, cap * sizeof(*n));

        if (n == NULL)
            return;
        u->alerts = n;
        u->capalerts = cap;
    }
    if ((s->unit_alerts.keys == NULL && vg_u64map_init(&s->unit_alerts, 64) < 0) ||
        vg_u64map_put(&s->unit_alerts, h, (void *)(uintptr_t)(u->nalerts + 1)) < 0)
        s->unit_alerts_bad = true;
    u->alerts[u->nalerts].alert = al;
    u->alerts[u->nalerts].is_new = is_new;
    u->alerts[u->nalerts].recv_ns = s->cur_recv_ns;
    u->nalerts++;
}

/* Remembers the alert's newest state, packed, for the next match that folds into it. */
static void cor_alert_remember(cor_shard *s, uint64_t key, struct cor_alert_state *st,
                               const Vigil__Alert *al)
{
    size_t len = vigil__alert__get_packed_size(al);
    uint8_t *p = vg_malloc(len);

    if (p == NULL)
        return;
    vigil__alert__pack(al, p);
    if (st == NULL) {
        st = vg_calloc(1, sizeof(*st));
        if (st == NULL || vg_u64map_put(&s->alerts, key, st) < 0) {
            vg_free(st);
            vg_free(p);
            return;
        }
    }
    vg_free(st->packed);
    st->packed = p;
    st->len = len;
}

/* The alert's current state, unpacked into the unit's arena: from this shard's memory or,
 * for an alert an earlier run stored, from RocksDB. NULL when it is new. *stored_before is
 * set when it came from RocksDB. */
static Vigil__Alert *cor_alert_load(cor_shard *s, uint64_t key, const char *id,
                                    struct cor_alert_state **st, bool *stored_before)
{
    vg_arena *a = s->unit->arena;
    ProtobufCAllocator alloc;
    Vigil__Alert *al = NULL, *stored = NULL;

    *stored_before = false;
    vg_arena_pb_allocator(a, &alloc);
    *st = vg_u64map_get(&s->alerts, key);
    if (*st != NULL)
        return vigil__alert__unpack(&alloc, (*st)->len, (*st)->packed);
    if (s->cfg.db != NULL && sto_get_alert(s->cfg.db, id, &stored) == 0) {
        size_t len = vigil__alert__get_packed_size(stored);
        uint8_t *tmp = vg_arena_alloc(a, len);

        if (tmp != NULL) {
            vigil__alert__pack(stored, tmp);
            al = vigil__alert__unpack(&alloc, len, tmp);
        }
        vigil__alert__free_unpacked(stored, NULL);
        *stored_before = al != NULL;
    }
    return al;
}

/* A new alert of rule r on machine m, in the unit's arena. */
static Vigil__Alert *cor_alert_new(cor_shard *s, const struct cor_rule_info *r,
                                   const struct cor_machine *m, const char *id, int64_t ts_us,
                                   const char *source)
{
    vg_arena *a = s->unit->arena;
    Vigil__Alert *al = vg_arena_alloc(a, sizeof(*al));

    if (al == NULL)
        return NULL;
    vigil__alert__init(al);
    al->id = cor_dup(a, id);
    /* Copies: the writer reads the alert after this machine or ruleset may be gone. */
    al->tenant_id = cor_dup(a, m->tenant);
    al->machine_id = cor_dup(a, m->machine_id);
    al->machine_name = cor_dup(a, m->name);
    al->title = cor_dup(a, r->title);
    al->description = cor_dup(a, r->description);
    al->severity = r->severity;
    al->category = r->category;
    al->mitre_techniques = cor_dup_list(a, r->techniques, r->n_techniques);
    al->n_mitre_techniques = al->mitre_techniques ? r->n_techniques : 0;
    al->mitre_tactics = cor_dup_list(a, r->tactics, r->n_tactics);
    al->n_mitre_tactics = al->mitre_tactics ? r->n_tactics : 0;
    al->detection_source = (char *)source;
    al->rule_id = cor_dup(a, r->id);
    al->first_event_us = al->last_event_us = ts_us;
    al->status = VIGIL__ALERT_STATUS__ALERT_STATUS_NEW;
    cor_add_entity(a, al, VIGIL__ENTITY_KIND__ENTITY_MACHINE, m->machine_id, NULL);
    cor_stat_add(&s->st.alerts_new, 1);
    if (r->index < s->nrules && strcmp(source, "sigma") == 0)
        cor_stat_add(&s->rule_alerts[r->index], 1);
    return al;
}

static void cor_on_match(void *ctx, const struct cor_rule_info *r)
{
    cor_shard *s = ctx;
    struct cor_machine *m = s->cur_m;
    const Vigil__Event *ev = s->cur_ev;
    vg_arena *a = s->unit->arena;
    const cor_proc *anchor = cor_anchor(s, r->group);
    struct cor_alert_state *st;
    Vigil__Alert *al;
    char id[33];
    uint64_t key;
    bool is_new = false, stored_before;

    cor_stat_add(&s->st.rule_hits, 1);
    if (r->index < s->nrules)
        cor_stat_add(&s->rule_hits[r->index], 1);
    if (s->corr != NULL && cor_corrset_wants(s->cfg.corr, r->id)) {
        struct cor_corr_match cm = {
            .mkey = m->mkey,
            .tenant = m->tenant,
            .machine = m->machine_id,
            .view = s->cur_view,
            .ts_us = ev->ts_us,
            .seq = ev->seq,
            .proc = s->cur_proc,
            .kind = cor_event_kind(ev),
            .summary = cor_event_summary(s->scratch_arena, ev),
        };

        cor_corrstate_on_match(s->corr, r->id, &cm);
        vg_arena_reset(s->scratch_arena);
        /* A step of a correlation raises no alert of its own unless it asks to. */
        if (cor_corrset_suppresses(s->cfg.corr, r->id))
            return;
    }
    /* A muted rule (vigil.suppress) is counted, never raised. */
    if (r->suppressed)
        return;
    cor_alert_id(s, r, anchor, id, &key);
    al = cor_alert_load(s, key, id, &st, &stored_before);
    if (al != NULL && stored_before && ev->ts_us <= al->last_event_us)
        return; /* a re-delivered event, folded in before the restart */
    if (al != NULL) {
        if (ev->ts_us < al->first_event_us)
            al->first_event_us = ev->ts_us;
        if (ev->ts_us > al->last_event_us)
            al->last_event_us = ev->ts_us;
        cor_stat_add(&s->st.alerts_updated, 1);
    } else {
        if ((al = cor_alert_new(s, r, m, id, ev->ts_us, "sigma")) == NULL)
            return;
        is_new = true;
    }
    al->event_count++;
    cor_add_evidence(a, al, ev);
    cor_add_entities(a, al, m, ev);
    /* The process tree as the shard knows it now: ancestors, trigger, descendants. */
    if (s->cur_proc != NULL || anchor != NULL) {
        al->n_process_tree = 0;
        al->process_tree = NULL;
        cor_proctab_alert_tree(s->procs, anchor ? anchor : s->cur_proc, a, al, COR_TREE_MAX);
    }
    cor_alert_remember(s, key, st, al);
    cor_unit_add_alert(s, al, is_new);
}

/* The process a correlation grouped on, from a vigil.process_tree / vigil.parent_process
 * value ("image[pid]@ctime"), for the alert's process tree. */
static const cor_proc *cor_corr_anchor(cor_shard *s, const struct cor_corr_fire *f)
{
    for (size_t i = 0; i < f->n_group_by; i++) {
        const char *v = f->group_by[i].value, *lb;
        unsigned long pid;
        long long ctime;

        if (strcmp(f->group_by[i].key, COR_CORR_F_TREE) != 0 &&
            strcmp(f->group_by[i].key, COR_CORR_F_PARENT) != 0)
            continue;
        lb = strrchr(v, '[');
        if (lb != NULL && sscanf(lb, "[%lu]@%lld", &pid, &ctime) == 2)
            return cor_proctab_get(s->procs, f->mkey, (uint32_t)pid, ctime);
    }
    return NULL;
}

/* A correlation fired or grew: one alert per episode (f->id), folded like the others. */
static void cor_on_corr_fire(void *ctx, const struct cor_corr_fire *f)
{
    cor_shard *s = ctx;
    struct cor_machine *m = vg_u64map_get(&s->machines, f->mkey);
    struct cor_alert_state *st;
    const cor_proc *anchor;
    Vigil__Alert *al;
    vg_arena *a;
    uint64_t key = vg_hash64(f->id, 32, 0x616c657274) | 1;
    bool is_new = false, stored_before;

    if (m == NULL || s->unit == NULL)
        return;
    /* A fire may come from the clock alone (cor_corrstate_advance): the state changed. */
    if (s->cfg.snapshots)
        cor_mark_dirty(s, m, m->partition);
    a = s->unit->arena;
    al = cor_alert_load(s, key, f->id, &st, &stored_before);
    if (al != NULL && stored_before && f->last_ts_us <= al->last_event_us)
        return; /* re-delivered events: this episode was stored before a restart */
    if (al == NULL) {
        if ((al = cor_alert_new(s, f->rule, m, f->id, f->first_ts_us, "correlation")) == NULL)
            return;
        is_new = true;
        al->group_by = vg_arena_alloc(a, (f->n_group_by + 1) * sizeof(*al->group_by));
        for (size_t i = 0; al->group_by != NULL && i < f->n_group_by; i++) {
            Vigil__Alert__KeyValue *kv = vg_arena_alloc(a, sizeof(*kv));

            if (kv == NULL)
                break;
            vigil__alert__key_value__init(kv);
            kv->key = cor_dup(a, f->group_by[i].key);
            kv->value = cor_dup(a, f->group_by[i].value);
            al->group_by[al->n_group_by++] = kv;
        }
    } else {
        cor_stat_add(&s->st.alerts_updated, 1);
    }
    al->first_event_us = f->first_ts_us;
    al->last_event_us = f->last_ts_us;
    al->event_count = f->count;
    for (size_t i = 0; i < f->n_events && al->n_evidence < COR_EVIDENCE_MAX; i++) {
        Vigil__EvidenceEvent *e = vg_arena_alloc(a, sizeof(*e)), **arr;

        arr = vg_arena_alloc(a, (al->n_evidence + 1) * sizeof(*arr));
        if (e == NULL || arr == NULL)
            break;
        vigil__evidence_event__init(e);
        e->seq = f->events[i].seq;
        e->ts_us = f->events[i].ts_us;
        e->kind = cor_dup(a, f->events[i].kind);
        e->summary = cor_dup(a, f->events[i].summary);
        if (al->n_evidence)
            memcpy(arr, al->evidence, al->n_evidence * sizeof(*arr));
        arr[al->n_evidence++] = e;
        al->evidence = arr;
    }
    anchor = cor_corr_anchor(s, f);
    if (anchor != NULL) {
        /* With its hash, like a single-event alert's process: a path alone never links. */
        cor_add_entity(a, al, VIGIL__ENTITY_KIND__ENTITY_PROCESS, cor_proc_image(anchor),
                       cor_proc_field(anchor, COR_PF_SHA256));
        cor_add_entity(a, al, VIGIL__ENTITY_KIND__ENTITY_USER, cor_proc_account(anchor), NULL);
        al->n_process_tree = 0;
        al->process_tree = NULL;
        cor_proctab_alert_tree(s->procs, anchor, a, al, COR_TREE_MAX);
    }
    cor_alert_remember(s, key, st, al);
    cor_unit_add_alert(s, al, is_new);
}

/* ---- timeline blocks -------------------------------------------------------------- */

static int cor_buf_reserve(struct cor_block_buf *b, size_t more)
{
    size_t cap;
    uint8_t *n;

    if (b->len + more <= b->cap)
        return 0;
    /* A million open blocks must stay affordable: start small, or at what this machine's
     * previous block needed. */
    cap = b->cap ? b->cap : VG_MAX((size_t)1024, (size_t)b->last_len);
    while (cap < b->len + more)
        cap *= 2;
    n = vg_realloc(b->buf, cap);
    if (n == NULL)
        return -VG_ENOMEM;
    b->buf = n;
    b->cap = cap;
    return 0;
}

static size_t cor_put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Starts a block: the batch header (tenant, machine, name, os...) serialized once. */
static int cor_block_open(cor_shard *s, struct cor_machine *m, int32_t partition, int64_t offset,
                          const Vigil__Event *ev)
{
    Vigil__TelemetryBatch hdr = VIGIL__TELEMETRY_BATCH__INIT;
    struct cor_block_buf *b = &m->blk;
    struct cor_ticket *t;
    struct cor_part *p;
    size_t len;

    hdr.tenant_id = m->tenant;
    hdr.machine_id = m->machine_id;
    hdr.machine_name = m->name;
    hdr.os = m->os;
    hdr.os_version = m->os_version;
    hdr.sensor_version = m->sensor_version;
    hdr.first_seq = ev->seq;
    len = vigil__telemetry_batch__get_packed_size(&hdr);
    if (cor_buf_reserve(b, len) < 0)
        return -VG_ENOMEM;
    b->len = vigil__telemetry_batch__pack(&hdr, b->buf);
    b->nevents = 0;
    b->day = sto_day(ev->ts_us);
    b->first_ts_us = ev->ts_us;
    b->first_seq = ev->seq;
    t = vg_calloc(1, sizeof(*t));
    p = cor_part_get(s, partition);
    if (t == NULL || p == NULL) {
        vg_free(t);
        return -VG_ENOMEM;
    }
    t->offset = offset;
    t->opened_us = vg_now_us();
    t->m = m;
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    b->ticket = t;
    return 0;
}

static int cor_block_append(cor_shard *s, struct cor_machine *m, int32_t partition, int64_t offset,
                            const Vigil__Event *ev, const uint8_t *raw, size_t rawlen)
{
    struct cor_block_buf *b = &m->blk;

    if (b->ticket != NULL &&
        (b->day != sto_day(ev->ts_us) || b->nevents >= s->cfg.block_max_events ||
         b->len + rawlen > s->cfg.block_max_bytes))
        cor_block_seal(s, m);
    if (b->ticket == NULL && cor_block_open(s, m, partition, offset, ev) < 0)
        return -VG_ENOMEM;
    if (cor_buf_reserve(b, rawlen + 11) < 0)
        return -VG_ENOMEM;
    /* A repeated field 8 entry: tag, length, the event's own bytes. Concatenated protobuf
     * fields parse as one message, so the buffer stays a valid TelemetryBatch. */
    b->buf[b->len++] = (8 << 3) | 2;
    b->len += cor_put_varint(b->buf + b->len, rawlen);
    memcpy(b->buf + b->len, raw, rawlen);
    b->len += rawlen;
    b->nevents++;
    b->last_seq = ev->seq;
    b->last_ts_us = ev->ts_us;
    return 0;
}

static void cor_unit_add_machine(cor_shard *s, struct cor_machine *m)
{
    struct cor_unit *u = s->unit;
    Vigil__MachineRecord *r;

    if (u->nmachines == u->capmachines) {
        size_t cap = u->capmachines ? u->capmachines * 2 : 16;
        Vigil__MachineRecord **n = vg_realloc(u->machines, cap * sizeof(*n));

        if (n == NULL)
            return;
        u->machines = n;
        u->capmachines = cap;
    }
    r = vg_arena_alloc(u->arena, sizeof(*r));
    if (r == NULL)
        return;
    vigil__machine_record__init(r);
    r->tenant_id = vg_arena_strndup(u->arena, m->tenant, strlen(m->tenant));
    r->machine_id = vg_arena_strndup(u->arena, m->machine_id, strlen(m->machine_id));
    r->machine_name = vg_arena_strndup(u->arena, m->name, strlen(m->name));
    r->os = m->os;
    r->os_version = vg_arena_strndup(u->arena, m->os_version, strlen(m->os_version));
    r->sensor_version = vg_arena_strndup(u->arena, m->sensor_version, strlen(m->sensor_version));
    r->first_seen_us = m->first_seen_us;
    r->last_event_us = m->last_event_us;
    r->last_seq = m->sealed_seq;
    r->events = m->events;
    u->machines[u->nmachines++] = r;
}

static void cor_block_seal(cor_shard *s, struct cor_machine *m)
{
    struct cor_block_buf *b = &m->blk;
    struct cor_unit *u = s->unit;
    struct cor_block *blk;

    if (b->ticket == NULL)
        return;
    b->ticket->m = NULL; /* the ticket is popped at the next barrier */
    b->ticket = NULL;
    if (b->nevents == 0)
        return;
    if (u->nblocks == u->capblocks) {
        size_t cap = u->capblocks ? u->capblocks * 2 : 64;
        struct cor_block *n = vg_realloc(u->blocks, cap * sizeof(*n));

        if (n == NULL)
            return;
        u->blocks = n;
        u->capblocks = cap;
    }
    blk = &u->blocks[u->nblocks++];
    blk->mkey = m->mkey;
    blk->first_ts_us = b->first_ts_us;
    blk->first_seq = b->first_seq;
    blk->nevents = b->nevents;
    /* The buffer moves to the unit; the machine starts its next block afresh. */
    blk->data = b->buf;
    blk->len = b->len;
    b->last_len = (uint32_t)VG_MIN(b->len + b->len / 8, s->cfg.block_max_bytes + 1024);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->nevents = 0;
    m->sealed_seq = b->last_seq;
    cor_unit_add_machine(s, m);
    cor_stat_add(&s->st.blocks_sealed, 1);
}

/* ---- barriers --------------------------------------------------------------------- */

static struct cor_part *cor_part_get(cor_shard *s, int32_t partition)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i].partition == partition)
            return &s->parts[i];
    if (s->nparts == s->capparts) {
        size_t cap = s->capparts ? s->capparts * 2 : 16;
        struct cor_part *n = vg_realloc(s->parts, cap * sizeof(*n));

        if (n == NULL)
            return NULL;
        s->parts = n;
        s->capparts = cap;
    }
    s->parts[s->nparts] = (struct cor_part){.partition = partition};
    return &s->parts[s->nparts++];
}

static void cor_handle_barrier(cor_shard *s, struct cor_barrier *b)
{
    struct cor_corrstate_stats cst;
    int64_t now = vg_now_us();
    struct cor_unit *u;
    size_t np = 0;
    unsigned spins = 0;

    for (size_t i = 0; i < s->nparts; i++) {
        struct cor_part *p = &s->parts[i];

        /* Tickets queue in opening order: seal the blocks that are too old (or all of
         * them at a seal-all barrier), then drop sealed tickets from the head. */
        for (struct cor_ticket *t = p->head; t != NULL; t = t->next) {
            if (!b->seal_all && now - t->opened_us < s->cfg.block_max_age_us)
                break;
            if (t->m != NULL)
                cor_block_seal(s, t->m);
        }
        while (p->head != NULL && p->head->m == NULL) {
            struct cor_ticket *t = p->head;

            p->head = t->next;
            if (p->head == NULL)
                p->tail = NULL;
            vg_free(t);
        }
    }
    while (s->unit == NULL && (s->unit = cor_unit_new(s->cfg.index)) == NULL) {
        struct timespec ts = {0, 1000000}; /* a barrier must go through: wait for memory */

        nanosleep(&ts, NULL);
    }
    u = s->unit;
    u->pending = vg_malloc((s->nparts ? s->nparts : 1) * sizeof(*u->pending));
    for (size_t i = 0; u->pending != NULL && i < s->nparts; i++)
        if (s->parts[i].head != NULL)
            u->pending[np++] = (struct cor_offset){s->parts[i].partition, s->parts[i].head->offset};
    u->npending = np;
    u->barrier = b; /* the shard's reference moves to the unit */
    if (s->sightings != NULL &&
        cor_sightings_drain(s->sightings, u->arena, &u->sightings, &u->nsightings) < 0)
        u->nsightings = 0; /* kept queued for the next barrier */
    if (s->last_event_us != 0)
        cor_proctab_expire(s->procs, s->last_event_us, s->cfg.proc_window_us, 4096);
    /* Correlation windows move with event time, never the wall clock (a replay of old data
     * would look idle); a seal-all barrier (shutdown, revocation) closes them all. */
    if (s->corr != NULL && !b->seal_all && s->last_event_us != 0)
        cor_corrstate_advance(s->corr, s->last_event_us);
    /* After expiry and the windows' advance: what this round fired is in this unit, and
     * the snapshot says so (a new owner does not fire it again). At a seal-all, before the
     * windows close: the next owner goes on with them open. */
    if (b->snapshot != COR_SNAP_NONE && s->cfg.snapshots)
        cor_checkpoint(s, u, b->snapshot == COR_SNAP_ALL);
    if (s->corr != NULL) {
        /* Held-back alerts are not delayed until some instance takes the partition: they
         * fire now. The next owner restores the windows as they were before, so such an
         * alert may be raised there again, with the same id. */
        if (b->seal_all)
            cor_corrstate_flush(s->corr);
        cor_corrstate_get_stats(s->corr, &cst);
        __atomic_store_n(&s->st.corr_late, cst.late, __ATOMIC_RELAXED);
        __atomic_store_n(&s->st.corr_pending, (uint64_t)cst.pending, __ATOMIC_RELAXED);
    }
    if (b->seal_all && s->cfg.snapshots)
        cor_forget_owned(s);
    __atomic_store_n(&s->st.processes, cor_proctab_count(s->procs), __ATOMIC_RELAXED);
    __atomic_store_n(&s->st.proctab_bytes, cor_proctab_bytes(s->procs), __ATOMIC_RELAXED);
    __atomic_store_n(&s->st.machines, s->machines.count, __ATOMIC_RELAXED);
    s->unit = cor_unit_new(s->cfg.index); /* NULL: retried at the next batch */
    cor_unit_alerts_reset(s);
    /* The writer must get every barrier: wait while its ring is full. */
    while (!ck_ring_enqueue_spsc(&s->out_ring, s->out_buf, u)) {
        struct timespec ts = {0, spins++ < 10 ? 100000 : 1000000};

        nanosleep(&ts, NULL);
    }
}

/* ---- the changelog ---------------------------------------------------------------- */

static void cor_restored_free(struct cor_restored *r)
{
    if (r == NULL)
        return;
    vg_free(r->tenant);
    vg_free(r->machine);
    vg_free(r);
}

static void cor_mark_dirty(cor_shard *s, struct cor_machine *m, int32_t partition)
{
    m->partition = partition;
    m->swept = false;
    if (m->dirty)
        return;
    if (s->ndirty == s->capdirty) {
        size_t cap = s->capdirty ? s->capdirty * 2 : 64;
        struct cor_machine **n = vg_realloc(s->dirty, cap * sizeof(*n));

        if (n == NULL) {
            cor_stat_add(&s->st.snap_errors, 1); /* its next event tries again */
            return;
        }
        s->dirty = n;
        s->capdirty = cap;
    }
    m->dirty = true;
    s->dirty[s->ndirty++] = m;
}

/* A snapshot from the changelog, before any telemetry of its partition reaches this shard
 * (the consumer pushes it on this ring first). It replaces what this shard may hold of the
 * machine (a partition that comes back). */
static void cor_handle_restore(cor_shard *s, const Vigil__MachineState *ms, int32_t partition)
{
    struct cor_snap_restore_stats rst = {0};
    uint64_t mkey = vg_machine_key(ms->tenant_id, ms->machine_id);
    struct cor_machine *m = vg_u64map_get(&s->machines, mkey);
    /* Processes merge (upserts: dropping a machine's first is a walk of the whole table,
     * per machine, at every rebalance); the correlation state is replaced. Processes this
     * shard kept from an earlier ownership and the snapshot's owner expired linger here
     * until they expire again. */
    if (cor_snap_restore(s->procs, s->corr, ms, false, &rst) < 0)
        vg_log(VG_LOG_WARN, "correlate", "machine %s: snapshot restored in part (no memory)",
               ms->machine_id);
    if (ms->last_event_us > s->last_event_us)
        s->last_event_us = ms->last_event_us;
    if (m != NULL) {
        m->snapped = true;
        m->partition = partition;
    } else {
        struct cor_restored *r = vg_calloc(1, sizeof(*r));

        if (r != NULL) {
            r->tenant = vg_strdup(ms->tenant_id);
            r->machine = vg_strdup(ms->machine_id);
            r->partition = partition;
            r->last_event_us = ms->last_event_us;
        }
        if (r == NULL || r->tenant == NULL || r->machine == NULL) {
            /* Without the entry the machine's own timeline is replayed over the restored
             * processes (upserts: nothing is lost), and no tombstone follows. */
            cor_restored_free(r);
        } else {
            cor_restored_free(vg_u64map_del(&s->restored, mkey));
            if (vg_u64map_put(&s->restored, mkey, r) < 0)
                cor_restored_free(r);
        }
    }
    cor_stat_add(&s->st.restored, 1);
    cor_stat_add(&s->st.restore_skipped, rst.skipped);
}

/* After a seal-all barrier (revocation, shutdown) this shard owns no partition until
 * telemetry or a restore comes again: it must never write a snapshot of a machine another
 * instance may own now (a sweep, a fire of the flush), which would overwrite that owner's. */
static void cor_forget_owned(cor_shard *s)
{
    size_t pos = 0;
    uint64_t k;
    void *v;

    while (vg_u64map_next(&s->machines, &pos, &k, &v)) {
        struct cor_machine *m = v;

        m->dirty = false;
        m->snapped = false;
        m->swept = true;
    }
    s->ndirty = 0;
    pos = 0;
    while (vg_u64map_next(&s->restored, &pos, &k, &v))
        cor_restored_free(v);
    /* Emptied in place: no allocation, so nothing can fail here. */
    memset(s->restored.keys, 0, s->restored.cap * sizeof(*s->restored.keys));
    memset(s->restored.vals, 0, s->restored.cap * sizeof(*s->restored.vals));
    s->restored.count = 0;
}

/* A request for machine m (borrowed strings). */
static struct cor_snap_req cor_req_of(const struct cor_machine *m)
{
    return (struct cor_snap_req){.mkey = m->mkey,
                                 .tenant = m->tenant,
                                 .machine = m->machine_id,
                                 .last_event_us = m->last_event_us,
                                 .last_seq = m->last_seq};
}

static bool cor_idle(const cor_shard *s, int64_t last_event_us)
{
    return s->last_event_us - last_event_us > s->cfg.proc_window_us;
}

/* The machines a checkpoint looks at: the dirty ones (every one when all), a slice of idle
 * ones whose state may have expired since their last snapshot, and idle restored machines
 * that never reported here. Fills reqs and the parallel owner arrays (ms[i] NULL: a
 * restored machine, rkeys[i] its key). */
static size_t cor_checkpoint_pick(cor_shard *s, bool all, struct cor_snap_req *reqs,
                                  struct cor_machine **ms, uint64_t *rkeys, size_t cap)
{
    size_t n = 0, pos, looked = 0;
    uint64_t k;
    void *v;

    for (size_t i = 0; i < s->ndirty && n < cap; i++) {
        ms[n] = s->dirty[i];
        rkeys[n] = 0;
        reqs[n++] = cor_req_of(s->dirty[i]);
    }
    pos = all ? 0 : s->sweep_pos;
    while (n < cap && (all || looked < COR_SWEEP_MAX) &&
           vg_u64map_next(&s->machines, &pos, &k, &v)) {
        struct cor_machine *m = v;

        looked++;
        if (m->dirty || !(all || (m->snapped && !m->swept && cor_idle(s, m->last_event_us))))
            continue;
        m->swept = !all;
        ms[n] = m;
        rkeys[n] = 0;
        reqs[n++] = cor_req_of(m);
    }
    s->sweep_pos = all || looked < COR_SWEEP_MAX ? 0 : pos;
    pos = 0;
    while (n < cap && vg_u64map_next(&s->restored, &pos, &k, &v)) {
        struct cor_restored *r = v;

        if (!all && !cor_idle(s, r->last_event_us))
            continue;
        ms[n] = NULL;
        rkeys[n] = k;
        reqs[n++] = (struct cor_snap_req){.mkey = k,
                                          .tenant = r->tenant,
                                          .machine = r->machine,
                                          .last_event_us = r->last_event_us};
    }
    return n;
}

/* Moves one built snapshot (or a tombstone: val NULL) into the unit. false when there is no
 * room (val stays the caller's). */
static bool cor_unit_add_snap(struct cor_unit *u, int32_t partition, const char *tenant,
                              const char *machine, uint8_t *val, size_t len)
{
    char key[512];
    size_t kl = cor_snap_key(tenant, machine, key, sizeof(key));
    struct cor_snap_out *o;

    if (kl == 0)
        return false;
    if (u->nsnaps == u->capsnaps) {
        size_t cap = u->capsnaps ? u->capsnaps * 2 : 16;
        struct cor_snap_out *n = vg_realloc(u->snaps, cap * sizeof(*n));

        if (n == NULL)
            return false;
        u->snaps = n;
        u->capsnaps = cap;
    }
    o = &u->snaps[u->nsnaps];
    if ((o->key = vg_malloc(kl + 1)) == NULL)
        return false;
    memcpy(o->key, key, kl + 1);
    o->keylen = kl;
    o->partition = partition;
    o->val = val;
    o->len = len;
    u->nsnaps++;
    return true;
}

/*
 * A checkpoint: the snapshots of the machines whose state changed go into the unit, which
 * the writer produces to the changelog before it commits the offsets of this round. The
 * state is at least as new as those offsets (it holds the events of open blocks too);
 * re-applying the events after the offsets is idempotent (README "Guarantees").
 */
static void cor_checkpoint(cor_shard *s, struct cor_unit *u, bool all)
{
    size_t cap = s->ndirty + COR_SWEEP_MAX + s->restored.count + (all ? s->machines.count : 0);
    struct cor_snap_req *reqs = vg_calloc(cap, sizeof(*reqs));
    struct cor_machine **ms = vg_calloc(cap, sizeof(*ms));
    uint64_t *rkeys = vg_calloc(cap, sizeof(*rkeys));
    size_t n;

    if (reqs == NULL || ms == NULL || rkeys == NULL) {
        cor_stat_add(&s->st.snap_errors, 1); /* the dirty list waits for the next one */
        goto out_free;
    }
    n = cor_checkpoint_pick(s, all, reqs, ms, rkeys, cap);
    cor_snap_build(s->procs, s->corr, reqs, n, 0);
    s->ndirty = 0;
    for (size_t i = 0; i < n; i++) {
        struct cor_machine *m = ms[i];
        struct cor_restored *r = m == NULL ? vg_u64map_get(&s->restored, rkeys[i]) : NULL;
        bool snapped = m != NULL ? m->snapped : true;
        int32_t part = m != NULL ? m->partition : r->partition;

        if (m != NULL)
            m->dirty = false;
        if (reqs[i].rc < 0) {
            /* A snapshot older than the offsets about to be committed must not stay: a
             * tombstone sends the next owner to the fallback (its own timeline). */
            cor_stat_add(&s->st.snap_errors, 1);
            vg_log(VG_LOG_WARN, "correlate", "machine %s: no changelog snapshot (%s)",
                   reqs[i].machine, reqs[i].rc == -VG_EFULL ? "too big" : "out of memory");
            vg_free(reqs[i].val);
            reqs[i].val = NULL;
            if (m != NULL && reqs[i].rc == -VG_ENOMEM)
                cor_mark_dirty(s, m, m->partition); /* try again at the next checkpoint */
        }
        if (reqs[i].val == NULL && !snapped)
            continue; /* no state now, none in the changelog */
        if (!cor_unit_add_snap(u, part, reqs[i].tenant, reqs[i].machine, reqs[i].val,
                               reqs[i].len)) {
            vg_free(reqs[i].val);
            cor_stat_add(&s->st.snap_errors, 1);
            continue;
        }
        cor_stat_add(reqs[i].val != NULL ? &s->st.snapshots : &s->st.tombstones, 1);
        if (m != NULL)
            m->snapped = reqs[i].val != NULL;
        else if (reqs[i].val == NULL) /* its state expired: forget it */
            cor_restored_free(vg_u64map_del(&s->restored, rkeys[i]));
    }

out_free:
    vg_free(reqs);
    vg_free(ms);
    vg_free(rkeys);
}

static struct cor_unit *cor_unit_new(uint32_t shard)
{
    struct cor_unit *u = vg_calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    u->shard = shard;
    u->arena = vg_arena_new(16384);
    if (u->arena == NULL) {
        vg_free(u);
        return NULL;
    }
    return u;
}

static void cor_stat_add(uint64_t *field, uint64_t n)
{
    /* Only the shard thread writes; readers tolerate a stale value. */
    __atomic_store_n(field, __atomic_load_n(field, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
