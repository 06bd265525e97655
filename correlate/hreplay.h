/*
 * hreplay.h - stored history replayed through several shards at once (vigil replay
 * --history, the timeline bench's replay).
 *
 * In a replay, machines are independent: every piece of shard state (dedup, process table,
 * alert folding, correlation groups, sightings) is keyed by machine, and a replay sends one
 * seal-all barrier only at its end, so no correlation window is advanced by another
 * machine's clock. So each machine is read by one shard thread from start to end through
 * its own read-ahead iterator, as vigil run maps a machine to one shard, and the threads
 * take the next machine from a shared counter. Which thread replays which machine depends
 * on timing; what each machine yields does not, so callers that sort the merged alerts get
 * the same output for any number of threads.
 *
 * THREAD SAFETY: cor_hreplay_new, _run, the accessors and _free are called by one thread
 * (the caller's). _run starts "vg-replay-N" threads, each owning one shard, and joins them
 * before it returns; the progress callback runs on the caller's thread.
 */
#ifndef VG_HREPLAY_H
#define VG_HREPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "correlate.h"

typedef struct cor_hreplay cor_hreplay;

struct cor_hreplay_cfg {
    sto_db *db;       /* read only; outlives the replay */
    unsigned threads; /* shard threads; 0: the online CPUs (at least 1) */
    int64_t from_us, to_us;
    /* Which machines to replay; NULL: every machine in the database. Called on the
     * caller's thread during cor_hreplay_new. */
    bool (*want)(void *ctx, const Vigil__MachineRecord *m);
    void *want_ctx;
    /* The shards' configuration: rules, corr, corr_lateness_us, sightings, proc_window_us
     * are used; index, nshards, release, reject, ctx and snapshots are set here. */
    struct cor_shard_cfg shard;
};

/* Progress as the caller's thread sees it (relaxed counters of the replay threads). */
struct cor_hreplay_progress {
    uint64_t events;        /* handed to the shards so far */
    uint64_t machines_done; /* machines read to their end */
    uint64_t machines;      /* machines to replay */
    uint64_t expected;      /* events the machine records say are stored (all time: a
                               --from/--to window reads fewer) */
};

/* Lists the wanted machines (copies of their records). Returns 0 or a negative vg_err. */
int cor_hreplay_new(const struct cor_hreplay_cfg *cfg, cor_hreplay **out);
void cor_hreplay_free(cor_hreplay *hr); /* NULL is fine */

/*
 * Replays every wanted machine, then closes every shard with a seal-all barrier (held-back
 * correlations fire). Calls progress (if not NULL) about every interval_ms on the caller's
 * thread while the threads run, and once at the end. Returns 0 or a negative vg_err (a
 * thread could not start: what the started ones did is kept).
 */
int cor_hreplay_run(cor_hreplay *hr,
                    void (*progress)(void *ctx, const struct cor_hreplay_progress *p), void *ctx,
                    unsigned interval_ms);

/* After run: shard i's unit (the alerts and sightings of its machines over the whole
 * replay), owned by hr; NULL past the last shard or for a shard that got no memory. The
 * shards are 0 .. cor_hreplay_threads() - 1. */
struct cor_unit *cor_hreplay_unit(const cor_hreplay *hr, unsigned i);
/* Events replayed, machines that had at least one event, batches rejected by the shards. */
void cor_hreplay_counts(const cor_hreplay *hr, uint64_t *events, uint64_t *machines,
                        uint64_t *rejected);
/* The i-th wanted machine (biggest first, by the events its record counts) and the events
 * it yielded; false past the end. */
bool cor_hreplay_machine(const cor_hreplay *hr, size_t i, const char **tenant, const char **machine,
                         uint64_t *events);
/* Sums cor_shard_rule_counts over the shards. */
void cor_hreplay_rule_counts(const cor_hreplay *hr, uint32_t index, uint64_t *hits,
                             uint64_t *alerts);
/* CPU time of the shard threads after run, summed (not their read-ahead helpers). */
uint64_t cor_hreplay_shard_cpu_ns(const cor_hreplay *hr);
/* Shard threads the replay uses. */
unsigned cor_hreplay_threads(const cor_hreplay *hr);

#endif
