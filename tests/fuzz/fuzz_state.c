/*
 * fuzz_state.c - libFuzzer harness for changelog snapshots (correlate/state.h): the bytes a
 * new owner reads from the `<group>.changelog` topic when it takes a partition over, which
 * anything that can write to the topic controls.
 *   1. cor_snap_decode: a snapshot is accepted or refused with a reason, never trusted;
 *   2. an accepted one is restored (cor_snap_restore) into a fresh process table and a
 *      correlation state of vigil's own correlation rules (rules/), snapshotted again
 *      (cor_snap_build), and that snapshot must decode and name the same machine;
 *   3. the restored correlation state is flushed: whatever it fires belongs to the
 *      snapshot's tenant and machine.
 * Seeds are snapshots written by seeds/gen_seeds.c from vigil's own rules and made-up
 * processes (tests/fuzz/README.md).
 *
 * THREAD MODEL: libFuzzer's one thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corr.h"
#include "fuzz.h"
#include "proctab.h"
#include "state.h"

#define STATE_CHECK(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_state: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static cor_corrset *g_corr;

struct fires {
    const Vigil__MachineState *ms;
    size_t n;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    char err[256] = "";

    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (cor_corrset_load(dirs, 1, &g_corr, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_state: cannot load %s: %s\n", dirs[0], err);
        abort();
    }
    return 0;
}

static void on_fire(void *ctx, const struct cor_corr_fire *f)
{
    struct fires *x = ctx;

    STATE_CHECK(strcmp(f->tenant, x->ms->tenant_id) == 0);
    STATE_CHECK(strcmp(f->machine, x->ms->machine_id) == 0);
    STATE_CHECK(f->mkey == vg_machine_key(x->ms->tenant_id, x->ms->machine_id));
    x->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Vigil__MachineState *ms = NULL, *again = NULL;
    struct cor_snap_restore_stats st = {0};
    struct cor_snap_req rq = {0};
    struct fires x = {0};
    cor_proctab *pt;
    cor_corrstate *cs;
    char reason[256] = "";
    int rc;

    rc = cor_snap_decode(data, size, &ms, reason, sizeof(reason));
    STATE_CHECK(rc == 0 || rc == -VG_EDECODE);
    if (rc != 0) {
        STATE_CHECK(reason[0] != '\0');
        return 0;
    }
    x.ms = ms;
    pt = cor_proctab_new(0);
    cs = cor_corrstate_new(g_corr, 300 * VG_US_PER_SEC, on_fire, &x);
    STATE_CHECK(pt != NULL && cs != NULL);
    rc = cor_snap_restore(pt, cs, ms, true, &st);
    STATE_CHECK(rc == 0);

    rq.mkey = vg_machine_key(ms->tenant_id, ms->machine_id);
    rq.tenant = ms->tenant_id;
    rq.machine = ms->machine_id;
    rq.last_event_us = ms->last_event_us;
    rq.last_seq = ms->last_seq;
    (void)cor_snap_build(pt, cs, &rq, 1, 0);
    STATE_CHECK(rq.rc == 0 || rq.rc == -VG_EFULL);
    if (rq.val != NULL) {
        rc = cor_snap_decode(rq.val, rq.len, &again, reason, sizeof(reason));
        if (rc != 0)
            fprintf(stderr,
                    "fuzz_state: a restored state snapshots into bytes that do not "
                    "decode: %s\n",
                    reason);
        STATE_CHECK(rc == 0);
        STATE_CHECK(strcmp(again->tenant_id, ms->tenant_id) == 0);
        STATE_CHECK(strcmp(again->machine_id, ms->machine_id) == 0);
        STATE_CHECK(again->n_processes <= st.procs);
        cor_snap_state_free(again);
        vg_free(rq.val);
    }
    cor_corrstate_flush(cs);
    cor_corrstate_destroy(cs);
    cor_proctab_destroy(pt);
    cor_snap_state_free(ms);
    return 0;
}
