/*
 * state.h - snapshots of the correlator state of one machine, for the changelog topic that
 * moves it with its Kafka partition (ingest/changelog.c): the machine's process table
 * entries (live, and exited ones still inside the expiry window, so alert trees stay whole)
 * and its correlation state (pending matches, open groups and their episodes), as one
 * Vigil__MachineState (proto/storage.proto).
 *
 * Snapshots are taken on the shard thread that owns the machine, at checkpoint barriers
 * (correlate.h), and restored on that thread from a cor_in the consumer thread pushed on
 * the shard's ring. Decoding (cor_snap_decode) is pure and runs on any thread.
 *
 * THREAD SAFETY: cor_snap_build and cor_snap_restore touch a process table and a correlation
 * state, so they run on the thread that owns them (@locality shard thread); the rest may be
 * called from any thread.
 */
#ifndef VG_STATE_H
#define VG_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corr.h"
#include "proctab.h"
#include "storage.pb-c.h"

#define COR_SNAP_VERSION   1
#define COR_SNAP_MAX_BYTES (900u << 10) /* under Kafka's default message.max.bytes (1 MB) */

/* One machine to snapshot, and the result. */
struct cor_snap_req {
    uint64_t mkey;
    const char *tenant;
    const char *machine;
    int64_t last_event_us;
    uint64_t last_seq;
    /* out */
    uint8_t *val; /* vg_malloc'd serialized MachineState; NULL: the machine has no state */
    size_t len;
    int rc; /* 0, or -VG_EFULL (too big even without exited processes), -VG_ENOMEM */
    /* private */
    const cor_proc **procs;
    size_t nprocs, capprocs;
};

/*
 * Snapshots n machines from pt and cs (cs may be NULL) in one pass over the table. A snapshot
 * larger than max_bytes (0: COR_SNAP_MAX_BYTES) is retried with its live processes only,
 * then given up (rc -VG_EFULL). Each reqs[i].val is the caller's, to vg_free. Returns the
 * number of machines that failed.
 */
size_t cor_snap_build(const cor_proctab *pt, const cor_corrstate *cs, struct cor_snap_req *reqs,
                      size_t n, size_t max_bytes);

/* The changelog key of a machine: "<tenant length>:<tenant>|<machine>" (length-prefixed, so
 * no ids containing '|' can alias another pair). Returns its length (without the NUL), or
 * 0 when it does not fit in cap. */
size_t cor_snap_key(const char *tenant, const char *machine, char *buf, size_t cap);

/*
 * Decodes and checks a snapshot (version, ids present, every process and correlation entry
 * present). Returns 0 and *out (free with cor_snap_state_free), or -VG_EDECODE with the
 * reason in reason. Never trusts the bytes.
 */
int cor_snap_decode(const void *buf, size_t len, Vigil__MachineState **out, char *reason,
                    size_t reasonlen);
void cor_snap_state_free(Vigil__MachineState *ms); /* NULL is fine */

struct cor_snap_restore_stats {
    size_t procs;   /* processes restored */
    size_t skipped; /* entries not restored (unknown correlation or rule, bad process) */
};

/*
 * Replaces machine vg_machine_key(ms->tenant_id, ms->machine_id)'s processes (when
 * drop_procs: the table may hold some) and correlation state (cs may be NULL) with the
 * snapshot's. Returns 0, or -VG_ENOMEM (what was restored so far stays).
 */
int cor_snap_restore(cor_proctab *pt, cor_corrstate *cs, const Vigil__MachineState *ms,
                     bool drop_procs, struct cor_snap_restore_stats *st);

#endif /* VG_STATE_H */
