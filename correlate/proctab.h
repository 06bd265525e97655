/*
 * proctab.h - the per-shard process table: every process of the shard's machines, keyed by
 * (machine key, pid, creation time), linked into process trees, expired some time after exit.
 *
 * One table holds all machines of a shard; the machine key (vg_machine_key) is part of every
 * key, so machines never mix. Processes are identified by (pid, creation time): a reused pid
 * is a different process. Strings are interned with reference counts, in groups that tend to
 * repeat together (image + hashes + original file name; account + integrity + logon id;
 * command line; current directory), so thousands of svchost.exe share one copy.
 *
 * Parents are linked on insert: a process whose parent is not in the table yet waits in an
 * index keyed by its recorded parent (pid, creation time), and the parent adopts its waiting
 * children when it arrives (out-of-order events, partial trees). cor_proc_parent() is then a
 * plain pointer read. A process whose parent is removed (expired, or dropped) keeps its
 * recorded ppid/pctime and waits again, so the tree relinks if the parent ever comes back.
 *
 * Expiry: an exited process is queued at exit; cor_proctab_expire() removes queued processes
 * whose exit is older than now - window and that have no live (not exited) descendant. A
 * process pinned by live descendants is re-queued when its last live descendant exits. The
 * queue is in arrival order of exits, so an exit that arrives late waits behind newer ones:
 * removal is late by at most about one window, never early.
 *
 * THREAD SAFETY: a cor_proctab belongs to one shard thread and is never locked; only that
 * thread may call anything here, including the cor_proc accessors (@locality shard thread).
 * A table moves between threads only as a whole, with a happens-before edge (thread start or
 * join, a ring handoff).
 */
#ifndef VG_PROCTAB_H
#define VG_PROCTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vg.h"
#include "telemetry.pb-c.h"
#include "alert.pb-c.h"
#include "storage.pb-c.h"

typedef struct cor_proctab cor_proctab;
typedef struct cor_proc cor_proc;

/* The ProcessRef strings a process keeps. */
enum cor_pfield {
    COR_PF_IMAGE = 0,
    COR_PF_SHA256,
    COR_PF_SHA1,
    COR_PF_MD5,
    COR_PF_ORIGINAL_FILE_NAME,
    COR_PF_ACCOUNT,
    COR_PF_INTEGRITY_LEVEL,
    COR_PF_LOGON_ID,
    COR_PF_COMMAND_LINE,
    COR_PF_CURRENT_DIRECTORY,
    COR_PF__COUNT
};

struct cor_proctab_stats {
    size_t procs;        /* processes held */
    size_t bytes;        /* heap bytes held: nodes, strings, indexes (not malloc overhead) */
    size_t strings;      /* interned string groups */
    size_t string_bytes; /* bytes of those groups */
    size_t waiting;      /* processes waiting for a parent not (or no longer) in the table */
    size_t exit_queue;   /* exited processes queued for expiry */
    uint64_t inserted;   /* processes ever created */
    uint64_t removed;    /* processes ever removed (expired or dropped) */
    uint64_t bad_input;  /* self-parents, parent cycles, conflicting parents: ignored, counted */
    uint64_t enomem;     /* allocation failures (the call failed or kept older strings) */
    uint64_t presumed_exits; /* running processes presumed exited by expire_idle */
};

/* A table sized for about `expected` processes (0: a small default); it grows and shrinks.
 * NULL on allocation failure. */
cor_proctab *cor_proctab_new(size_t expected);
void cor_proctab_destroy(cor_proctab *pt); /* frees every process; NULL is fine */

/*
 * Inserts or updates the process `ref` of machine `mkey`, seen at `seen_us`. The parent is
 * (ppid, pctime); (0, 0) means unknown. A known parent of an existing process whose parent
 * was unknown is recorded and linked; a different parent than the recorded one is ignored
 * and counted. A parent given by pid only (pctime 0) is resolved with cor_proctab_find_pid
 * at the child's creation time. A ref with creation time 0 is resolved the same way at
 * seen_us; if no process matches, a process with creation time 0 is created.
 * Non-empty strings of ref replace the stored ones; strings are copied. Exit state is never
 * undone by an upsert.
 * Returns the process (owned by the table, valid until it is removed by expire or drop), or
 * NULL on allocation failure or bad arguments (counted).
 */
cor_proc *cor_proctab_upsert(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRef *ref,
                             uint32_t ppid, int64_t pctime, int64_t seen_us);

/*
 * Applies one telemetry event: the actor is upserted (parent unknown); a ProcessCreated
 * upserts the new process with the actor as parent (a creation time of 0 becomes the event
 * time); a ProcessExited records the actor's exit at the event time. Returns the process the
 * event is about (the created process, else the actor), or NULL when there is none or on
 * allocation failure.
 */
cor_proc *cor_proctab_on_event(cor_proctab *pt, uint64_t mkey, const Vigil__Event *ev);

/* Exact lookup; NULL if absent. No allocation. */
cor_proc *cor_proctab_get(cor_proctab *pt, uint64_t mkey, uint32_t pid, int64_t ctime);

/* For an event that names a process by pid only: the newest process with that pid created at
 * or before ts_us and not exited before ts_us. NULL if none. */
cor_proc *cor_proctab_find_pid(cor_proctab *pt, uint64_t mkey, uint32_t pid, int64_t ts_us);

/* Records the exit of p (first exit wins, repeats are ignored, but a real exit replaces one
 * presumed by cor_proctab_expire_idle) and queues it for expiry. */
void cor_proctab_exit(cor_proctab *pt, cor_proc *p, int64_t exit_us, int32_t code);

/*
 * Removes exited processes whose exit is older than now_us - window_us and that have no live
 * descendant, examining at most max_work queued processes. Their children stay, with parent
 * NULL and their recorded ppid/pctime kept. Returns the number removed. Pointers to removed
 * processes are dead.
 */
size_t cor_proctab_expire(cor_proctab *pt, int64_t now_us, int64_t window_us, size_t max_work);

/*
 * Sensors lose exit events (a reboot ends every process silently), so a running process not
 * seen since now_us - idle_us and with no live descendant is presumed to have exited when it
 * was last seen, and then expires as any exited process. Looks at max_work hash buckets per
 * call, resuming where the last call stopped. Returns the number presumed exited. A presumed
 * exit is undone if the process is upserted again with a later seen_us, and find_pid still
 * finds such a process. Choose idle_us long (days): an idle daemon is presumed gone too.
 */
size_t cor_proctab_expire_idle(cor_proctab *pt, int64_t now_us, int64_t idle_us, size_t max_work);

/* Removes every process of one machine (it moves to another shard). O(table size). */
void cor_proctab_drop_machine(cor_proctab *pt, uint64_t mkey);
/* The same for every machine for which pred returns true, in one pass over the table. */
void cor_proctab_drop_if(cor_proctab *pt, bool (*pred)(uint64_t mkey, void *ctx), void *ctx);

/* Calls fn for every process of every machine for which pred returns true, in one pass over
 * the table (a snapshot of many machines at once: correlate/state.c). fn must not change the
 * table. */
void cor_proctab_foreach_if(const cor_proctab *pt, bool (*pred)(uint64_t mkey, void *ctx),
                            void (*fn)(const cor_proc *p, void *ctx), void *ctx);

/*
 * Writes up to max ancestors of p into out, nearest first (out[0] is the parent). Returns how
 * many were written.
 */
size_t cor_proctab_ancestors(const cor_proctab *pt, const cor_proc *p, const cor_proc **out,
                             size_t max);

/*
 * Fills alert->process_tree: the ancestors of trigger from the oldest down, the trigger
 * (trigger = true), then its descendants breadth first, at most max_nodes nodes in all. When
 * the ancestors alone exceed the cap, the nearest are kept. parent_index points into the
 * array (-1 for the first node). Nodes and strings come from arena; any previous
 * process_tree is replaced (not freed). Returns 0, -VG_EINVAL (max_nodes 0, NULL argument)
 * or -VG_ENOMEM (the alert's tree is then left empty).
 */
int cor_proctab_alert_tree(const cor_proctab *pt, const cor_proc *trigger, vg_arena *arena,
                           Vigil__Alert *alert, size_t max_nodes);

/*
 * Fills rec (and ref, which rec->process points to) from p, for persistence. Strings are
 * borrowed from the table: valid until the next call that modifies pt; do not free them.
 */
void cor_proc_to_record(const cor_proc *p, Vigil__ProcessRecord *rec, Vigil__ProcessRef *ref);
/* Upserts a stored process (its parent and exit included). Returns it, or NULL as upsert. */
cor_proc *cor_proctab_upsert_record(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRecord *rec,
                                    int64_t seen_us);

size_t cor_proctab_count(const cor_proctab *pt);
size_t cor_proctab_bytes(const cor_proctab *pt);
void cor_proctab_get_stats(const cor_proctab *pt, struct cor_proctab_stats *st);

/* ---- a process ------------------------------------------------------------------------ */

cor_proc *cor_proc_parent(const cor_proc *p);      /* NULL if unknown or not in the table */
cor_proc *cor_proc_first_child(const cor_proc *p); /* children in the order they linked */
cor_proc *cor_proc_next_sibling(const cor_proc *p);
uint64_t cor_proc_mkey(const cor_proc *p);
uint32_t cor_proc_pid(const cor_proc *p);
int64_t cor_proc_ctime(const cor_proc *p);
uint32_t cor_proc_ppid(const cor_proc *p); /* recorded, even when parent is NULL */
int64_t cor_proc_pctime(const cor_proc *p);
bool cor_proc_exited(const cor_proc *p);
int64_t cor_proc_exit_us(const cor_proc *p); /* 0 while running */
int32_t cor_proc_exit_code(const cor_proc *p);
int64_t cor_proc_seen_us(const cor_proc *p); /* newest seen_us given */
uint32_t cor_proc_live_descendants(const cor_proc *p);
/* Strings are never NULL ("" when unknown); they live until p changes or is removed. */
const char *cor_proc_field(const cor_proc *p, enum cor_pfield f);
const char *cor_proc_image(const cor_proc *p);
const char *cor_proc_command_line(const cor_proc *p);
const char *cor_proc_account(const cor_proc *p);

#endif /* VG_PROCTAB_H */
