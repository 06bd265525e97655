/*
 * corr.h - Sigma correlation rules (event_count, value_count, temporal, temporal_ordered)
 * over the matches of single-event Sigma rules, in event time, with sliding windows, a
 * lateness bound and deterministic alert identities. Semantics: correlate/CORRELATION.md.
 *
 * Two halves, as rules.h: a cor_corrset is loaded once, immutable and shared by all shards
 * (reference counted, atomically); a cor_corrstate belongs to one shard thread and holds the
 * open groups of that shard's machines.
 *
 * THREAD SAFETY: cor_corrset_* may be called from any thread once loaded. Everything on a
 * cor_corrstate runs on the one thread that owns it (@locality shard thread) and is never
 * locked; a state moves between threads only as a whole, with a happens-before edge.
 */
#ifndef VG_CORR_H
#define VG_CORR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evview.h"
#include "proctab.h"
#include "rules.h"

typedef struct cor_corrset cor_corrset;
typedef struct cor_corrstate cor_corrstate;

/* Pseudo group-by fields (vigil extensions; see CORRELATION.md). */
#define COR_CORR_F_TREE   "vigil.process_tree"   /* root of the matching process's activity */
#define COR_CORR_F_PARENT "vigil.parent_process" /* parent of the matching process */

#define COR_CORR_DEFAULT_LATENESS_US (300 * INT64_C(1000000))

struct cor_corr_load_summary {
    unsigned files;        /* YAML files read */
    unsigned correlations; /* correlation documents seen */
    unsigned loaded;       /* correlations usable */
    unsigned skipped;      /* correlations not loaded (each logged with its reason) */
    unsigned unsupported;  /* of skipped: valid Sigma that vigil does not support (value_sum,
                            * value_avg, value_percentile, chaining) */
    unsigned names;        /* base rules with a `name` (name -> id map entries) */
    unsigned bad_docs;     /* documents that are not mappings, or YAML errors */
};

/*
 * Reads every YAML document under the directories (recursively, sorted; a path may also be
 * a file). Correlation documents become correlations; other documents only feed the
 * name -> id map, since correlations reference base rules by `name` or `id`. A broken or
 * unsupported correlation is logged (file, id, reason), counted in *sum and skipped; it is
 * never fatal. Returns 0 and *out (reference count 1; it may hold no correlation), or a
 * negative vg_err when a directory cannot be read or memory runs out (detail in err).
 */
int cor_corrset_load(const char *const *dirs, size_t ndirs, cor_corrset **out,
                     struct cor_corr_load_summary *sum, char *err, size_t errlen);
void cor_corrset_ref(cor_corrset *cs);
void cor_corrset_unref(cor_corrset *cs); /* NULL is fine */
size_t cor_corrset_count(const cor_corrset *cs);
/* The i-th correlation's info (group is COR_GROUP_MACHINE, index is i); NULL past the end. */
const struct cor_rule_info *cor_corrset_rule(const cor_corrset *cs, uint32_t i);
/* Finds a correlation by id (case-insensitive); NULL if absent. */
const struct cor_rule_info *cor_corrset_find(const cor_corrset *cs, const char *id);
/* True when some correlation references this base rule id. */
bool cor_corrset_wants(const cor_corrset *cs, const char *rule_id);
/* True when the base rule's own alerts are to be suppressed: it is referenced by a
 * correlation with `generate: false` (Sigma's default) and by none with `generate: true`. */
bool cor_corrset_suppresses(const cor_corrset *cs, const char *rule_id);

/* ---- per-shard state -------------------------------------------------------------- */

/* One base-rule match, as the shard sees it. Everything is borrowed for the call. */
struct cor_corr_match {
    uint64_t mkey;                /* vg_machine_key(tenant, machine) */
    const char *tenant;           /* part of the alert identity */
    const char *machine;          /* machine id */
    const struct vg_evview *view; /* group-by and value_count fields are read from it */
    int64_t ts_us;                /* event time */
    uint64_t seq;                 /* sensor sequence number */
    const cor_proc *proc;         /* the process the event is about (NULL if unknown): for
                                   * vigil.process_tree and vigil.parent_process */
    const char *kind;             /* "process_creation" ... (evidence), may be NULL */
    const char *summary;          /* one line for an analyst (evidence), may be NULL */
};

struct cor_corr_kv {
    const char *key; /* the group-by field as the correlation names it */
    const char *value;
};

/* An event that made a correlation fire. */
struct cor_corr_ev {
    uint64_t seq;
    int64_t ts_us;
    const char *rule_id; /* the base rule it matched */
    const char *kind;    /* "" when not given */
    const char *summary; /* "" when not given */
};

/*
 * A correlation that fired (is_new) or grew (an update of the same alert). All pointers are
 * valid only during the callback. The id is a function of (correlation id, tenant, machine,
 * group values, the first event of the episode), so it does not depend on arrival order.
 */
struct cor_corr_fire {
    const struct cor_rule_info *rule; /* the correlation (owned by the corrset) */
    char id[33];                      /* 32 hex digits */
    bool is_new;
    uint64_t mkey;
    const char *tenant;
    const char *machine;
    const struct cor_corr_kv *group_by; /* in the correlation's group-by order */
    size_t n_group_by;
    int64_t first_ts_us;              /* first event of the episode */
    int64_t last_ts_us;               /* newest event of the episode */
    uint32_t count;                   /* events in the episode so far */
    const struct cor_corr_ev *events; /* the events added by this fire, in event time order */
    size_t n_events;
};

typedef void (*cor_corr_fire_fn)(void *ctx, const struct cor_corr_fire *f);

struct cor_corrstate_stats {
    uint64_t matches;    /* base-rule matches fed for some correlation */
    uint64_t late;       /* arrived behind the watermark: counted, not correlated */
    uint64_t no_group;   /* a group-by field absent from the event: not correlated */
    uint64_t overflow;   /* dropped because a group or a machine's buffer was full */
    uint64_t enomem;     /* dropped for want of memory */
    uint64_t duplicates; /* a match already held, applied again (re-delivery after a
                          * takeover or restart): dropped */
    uint64_t fires;      /* new correlation alerts */
    uint64_t updates;    /* updates of them */
    size_t pending;      /* matches waiting in reorder buffers */
    size_t groups;       /* open groups */
    size_t machines;     /* machines with state */
    size_t bytes;        /* heap bytes held (not counting malloc overhead) */
};

/*
 * A state for one shard. lateness_us (< 0: the default, 5 minutes) is how far behind the
 * newest event of its machine an event may arrive and still be correlated as if it had come
 * in order; correlation results are held back by that much event time. The state takes a
 * reference on cs. NULL on allocation failure.
 */
cor_corrstate *cor_corrstate_new(cor_corrset *cs, int64_t lateness_us, cor_corr_fire_fn out,
                                 void *ctx);
void cor_corrstate_destroy(cor_corrstate *st); /* NULL is fine; fires nothing */

/* Feeds one base-rule match. Does nothing when no correlation references rule_id. Fires
 * (through out) what the watermark releases. */
void cor_corrstate_on_match(cor_corrstate *st, const char *rule_id, const struct cor_corr_match *m);

/*
 * Moves the state's clock to now_us (event time: the shard's newest event time; never the wall
 * clock, which a replay of old data is far behind): machines silent for at least the lateness bound
 * of this clock have their time extrapolated, their held matches released and their windows closed;
 * expired groups are freed. Call it regularly (each barrier): it keeps memory bounded.
 */
void cor_corrstate_advance(cor_corrstate *st, int64_t now_us);
/* Releases and closes everything (shutdown, seal-all, end of a replay). */
void cor_corrstate_flush(cor_corrstate *st);
/* Drops all state of one machine without firing (the machine moved to another shard). */
void cor_corrstate_drop_machine(cor_corrstate *st, uint64_t mkey);
void cor_corrstate_get_stats(const cor_corrstate *st, struct cor_corrstate_stats *out);

/* ---- moving a machine's state (the changelog; correlate/state.c) ----------------------- */

/* True when the state holds anything of machine mkey (pending matches or open groups). */
bool cor_corrstate_has_machine(const cor_corrstate *st, uint64_t mkey);

/*
 * Fills out (initialised here) with machine mkey's pending matches and open groups, for a
 * snapshot. Arrays come from arena a; strings are borrowed from the state and stay valid
 * until the next call that changes st (pack right away). Returns 1 when the machine has
 * state, 0 when it has none (out is left empty), -VG_ENOMEM.
 */
int cor_corrstate_export(const cor_corrstate *st, uint64_t mkey, vg_arena *a,
                         Vigil__CorrMachineState *out);

/*
 * Replaces machine mkey's state with a snapshot's (the machine's current state, if any, is
 * dropped without firing). Groups and matches of correlations or base rules this set does
 * not know (the rules changed between the two owners) are skipped and counted in *skipped.
 * Fires nothing: what the snapshot's owner had judged stays judged. Returns 0, -VG_EINVAL
 * (NULL arguments) or -VG_ENOMEM (the machine then holds what was imported so far).
 */
int cor_corrstate_import(cor_corrstate *st, uint64_t mkey, const char *tenant, const char *machine,
                         const Vigil__CorrMachineState *in, size_t *skipped);

/*
 * The values of the pseudo fields for a process, "image[pid]@ctime_us": the root of its
 * activity tree (the top-most ancestor below a session or service root: init, sshd, cron,
 * an interactive shell, services.exe, explorer.exe, ...; see CORRELATION.md), or its parent.
 * Return false (and buf "") when p or its parent is unknown.
 */
bool cor_corr_tree_label(const cor_proc *p, char *buf, size_t len);
bool cor_corr_parent_label(const cor_proc *p, char *buf, size_t len);

#endif /* VG_CORR_H */
