/*
 * vgtest.h - helpers shared by the cmocka tests: temporary directories, the shared data
 * folder, reading files, child processes, and the ledger of produced events that the
 * pipeline tests check stored timelines against.
 */
#ifndef VGTEST_H
#define VGTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Makes a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *vgt_tmpdir(const char *tag);
/* Removes a directory tree (rm -rf). */
void vgt_rmtree(const char *path);
/* Path under ../shared/data, malloc'd. */
char *vgt_shared(const char *rel);
/* Reads a whole file; malloc'd, NUL-terminated; NULL on error. */
char *vgt_read_file(const char *path, size_t *len);
/* Writes text to dir/name (asserts). */
void vgt_write_file(const char *dir, const char *name, const char *text);

#include <stdbool.h>
#include <sys/types.h>

/* Runs argv (argv[0] a path) with stdout and stderr appended to log; the child dies with
 * the test (PR_SET_PDEATHSIG). Returns its pid (asserts on failure). */
pid_t vgt_spawn(const char *log, const char *const *argv);
/* Signals *pid and reaps it, SIGKILL after timeout_s; *pid becomes 0. Returns the wait
 * status (-1 when it had to be killed), 0 when there was no process. */
int vgt_stop_proc(pid_t *pid, int sig, int timeout_s);
/* Fails the test if the child has exited on its own. */
void vgt_check_alive(pid_t pid, const char *what);
/* True when the file contains needle. */
bool vgt_file_has(const char *path, const char *needle);
/* Seconds since t0 (vg_mono_ns()). */
double vgt_elapsed_s(uint64_t t0);

/* ---- consumer groups on the embedded broker --------------------------------------- */

/*
 * The session of the consumer groups that tests start, stop or kill members of on the
 * embedded broker (librdkafka 2.0.2's mock cluster, in process or as `vigil broker`). That
 * broker takes the session timeout of the JoinGroup request as it is (it has no
 * group.min.session.timeout.ms) and drops a member whose last heartbeat or join is that
 * old (checked once a second). It answers the first join of an empty group after 3 s, and
 * any later rebalance after the session timeout less one second. So a kill costs a test
 * about two sessions and a join or a leave one; and the session must outlast the 3 s of a
 * first join, which sends no heartbeat (at 3 s or less the joining member is dropped before
 * it is answered, and the group never forms). In the rebalance window the living members
 * must hear of it (on a heartbeat) and join again, so they heartbeat often (librdkafka's
 * default interval, 3 s, is the whole window).
 */
#define VGT_SESSION_MS       4000
#define VGT_HEARTBEAT_MS     500
#define VGT_STR_(x)          #x
#define VGT_STR(x)           VGT_STR_(x) /* a macro's value as a string literal */
#define VGT_SESSION_MS_STR   VGT_STR(VGT_SESSION_MS)
#define VGT_HEARTBEAT_MS_STR VGT_STR(VGT_HEARTBEAT_MS)

/* ---- the events a test produced, to check a stored timeline against ---------------- */

#include "correlate.h"
#include "rules.h"
#include "storage.h"

/* Packs ev into a buffer of exactly its packed size (ASan sees any over-read); malloc'd,
 * asserts. */
uint8_t *vgt_pack_event(const Vigil__Event *ev, size_t *len);
/* The same for a batch. */
uint8_t *vgt_pack_batch(const Vigil__TelemetryBatch *b, size_t *len);
#include "telemetry.pb-c.h"
#include "vg.h"

struct vgt_ledger_machine {
    uint64_t mkey;
    char id[64];
    uint64_t *seq; /* produced, in order */
    size_t n, cap;
};

struct vgt_ledger {
    struct vg_u64map machines; /* mkey -> struct vgt_ledger_machine */
    uint64_t events;           /* produced in all */
};

void vgt_ledger_init(struct vgt_ledger *l); /* asserts */
/* Records a batch's events as produced (a batch the pipeline must store). */
void vgt_ledger_add(struct vgt_ledger *l, const Vigil__TelemetryBatch *b);
/* Fails unless every machine's timeline in db holds exactly its produced events, each
 * once, the totals add up and nothing is corrupt. what prefixes the messages (NULL: none). */
void vgt_ledger_check(const struct vgt_ledger *l, sto_db *db, const char *what);
void vgt_ledger_free(struct vgt_ledger *l); /* a zeroed ledger is fine */

/* A one-shard correlator over rules written to a temporary directory, for tests that
 * drive it with cor_shard_process: vgt_rules_shard_new writes yaml[i] as DIR/r<i>.yml,
 * loads them (every one must load) and makes the shard (no thread; its release callback
 * does nothing). Asserts. seq is the tests' own event counter. */
struct vgt_rules_shard {
    char *dir;
    cor_ruleset *rs;
    cor_shard *s;
    uint64_t seq;
};
struct vgt_rules_shard *vgt_rules_shard_new(const char *tag, const char *const *yaml, size_t n);
/* Processes ev as a batch of its own, of machine "m" of tenant "t" (Windows). */
void vgt_shard_process_event(cor_shard *s, Vigil__Event *ev);
/* Frees what vgt_rules_shard_new made; NULL is fine. */
void vgt_rules_shard_free(struct vgt_rules_shard *f);

/* What cor_rules_eval matched on one event, to compare two evaluations: a cor_match_fn
 * (ctx: struct vgt_matches, zeroed first) that counts the matches and hashes their rule
 * ids in order. */
struct vgt_matches {
    uint64_t h;
    int n;
};
void vgt_on_match(void *ctx, const struct cor_rule_info *ri);

#endif
