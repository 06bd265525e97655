/*
 * test_state.c - changelog snapshots of a machine's correlator state (state.h): a process
 * tree and a half-filled correlation survive encode, decode and restore into a fresh table
 * and state; the restored state goes on exactly as the original (same alert, same id); the
 * events re-delivered after a takeover change nothing; garbage bytes and snapshots naming
 * unknown correlations are refused or skipped, never fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "corr.h"
#include "proctab.h"
#include "state.h"
#include "vg.h"

#define S    INT64_C(1000000)
#define T0   (INT64_C(1767225600) * S)
#define ID_C "00000000-0000-4000-8000-00000000000c"
#define C_VC "10000000-0000-4000-8000-000000000003"

static const char base_yml[] = "title: C\nid: " ID_C "\nname: rule_c\n"
                               "logsource: {category: process_creation, product: linux}\n"
                               "detection: {sel: {Image: c}, condition: sel}\n";
static const char corr_yml[] =
    "title: distinct\nid: " C_VC "\nlevel: low\n"
    "correlation:\n  type: value_count\n  rules: [rule_c]\n  group-by: [User]\n"
    "  timespan: 60s\n  condition: {field: CommandLine, gte: 3}\n";

struct fire {
    char id[33];
    bool is_new;
    uint32_t count;
    size_t n_events;
};

struct side { /* one owner: its table, its state, what it fired */
    cor_proctab *pt;
    cor_corrstate *st;
    struct fire fires[8];
    size_t n;
};

struct fx {
    char *dir;
    cor_corrset *cs;
    uint64_t mkey;
    struct side a, b;
};

static void on_fire(void *ctx, const struct cor_corr_fire *f)
{
    struct side *sd = ctx;
    struct fire *r;

    assert_true(sd->n < 8);
    r = &sd->fires[sd->n++];
    memcpy(r->id, f->id, 33);
    r->is_new = f->is_new;
    r->count = f->count;
    r->n_events = f->n_events;
}

static void side_init(struct fx *x, struct side *sd)
{
    memset(sd, 0, sizeof(*sd));
    sd->pt = cor_proctab_new(0);
    sd->st = cor_corrstate_new(x->cs, 10 * S, on_fire, sd);
    assert_non_null(sd->pt);
    assert_non_null(sd->st);
}

static void side_free(struct side *sd)
{
    cor_proctab_destroy(sd->pt);
    cor_corrstate_destroy(sd->st);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    const char *dirs[1];
    char err[256] = "";

    assert_non_null(x);
    x->dir = vgt_tmpdir("state");
    vgt_write_file(x->dir, "base.yml", base_yml);
    vgt_write_file(x->dir, "corr.yml", corr_yml);
    dirs[0] = x->dir;
    assert_int_equal(cor_corrset_load(dirs, 1, &x->cs, NULL, err, sizeof(err)), 0);
    x->mkey = vg_machine_key("t1", "m1");
    side_init(x, &x->a);
    side_init(x, &x->b);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;

    side_free(&x->a);
    side_free(&x->b);
    cor_corrset_unref(x->cs);
    vgt_rmtree(x->dir);
    free(x->dir);
    free(x);
    return 0;
}

/* One match of rule_c by user alice at T0 + ts_s, command line cmd. */
static void feed(struct fx *x, struct side *sd, int ts_s, uint64_t seq, const char *cmd)
{
    struct vg_evview v;
    struct cor_corr_match m;

    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.f[VG_F_USER].p = "alice";
    v.f[VG_F_USER].n = 5;
    v.f[VG_F_COMMAND_LINE].p = cmd;
    v.f[VG_F_COMMAND_LINE].n = strlen(cmd);
    memset(&m, 0, sizeof(m));
    m.mkey = x->mkey;
    m.tenant = "t1";
    m.machine = "m1";
    m.view = &v;
    m.ts_us = T0 + ts_s * S;
    m.seq = seq;
    m.kind = "process_creation";
    m.summary = cmd;
    cor_corrstate_on_match(sd->st, ID_C, &m);
}

static void spawn(cor_proctab *pt, uint64_t mkey, uint32_t ppid, uint32_t pid, const char *image)
{
    Vigil__ProcessRef r;

    vigil__process_ref__init(&r);
    r.pid = pid;
    r.creation_time_us = T0 + pid;
    r.image = (char *)image;
    r.command_line = (char *)image;
    assert_non_null(cor_proctab_upsert(pt, mkey, &r, ppid, ppid ? T0 + ppid : 0, T0 + pid));
}

/* A's machine: init > sshd > bash > script > find, and an exited cat under the script;
 * three matches, two released into the group (x1, x2) and one pending (x2 again). */
static void fill_a(struct fx *x)
{
    spawn(x->a.pt, x->mkey, 0, 1, "/sbin/init");
    spawn(x->a.pt, x->mkey, 1, 10, "/usr/sbin/sshd");
    spawn(x->a.pt, x->mkey, 10, 100, "/bin/bash");
    spawn(x->a.pt, x->mkey, 100, 200, "/tmp/enum.sh");
    spawn(x->a.pt, x->mkey, 200, 300, "/usr/bin/find");
    spawn(x->a.pt, x->mkey, 200, 400, "/usr/bin/cat");
    cor_proctab_exit(x->a.pt, cor_proctab_get(x->a.pt, x->mkey, 400, T0 + 400), T0 + 500, 0);
    /* another machine in the same table stays out of the snapshot */
    spawn(x->a.pt, 77, 0, 1, "/sbin/init");
    feed(x, &x->a, 0, 1, "x1");
    feed(x, &x->a, 20, 2, "x2");
    feed(x, &x->a, 30, 3, "x2");
}

static Vigil__MachineState *snapshot(struct fx *x, struct side *sd, uint8_t **bytes, size_t *len)
{
    struct cor_snap_req rq = {.mkey = x->mkey,
                              .tenant = "t1",
                              .machine = "m1",
                              .last_event_us = T0 + 30 * S,
                              .last_seq = 3};
    Vigil__MachineState *ms = NULL;
    char why[128];

    assert_int_equal(cor_snap_build(sd->pt, sd->st, &rq, 1, 0), 0);
    assert_int_equal(rq.rc, 0);
    assert_non_null(rq.val);
    assert_int_equal(cor_snap_decode(rq.val, rq.len, &ms, why, sizeof(why)), 0);
    *bytes = rq.val;
    *len = rq.len;
    return ms;
}

/* The corr part of a snapshot, packed: what must survive a round trip unchanged. */
static size_t pack_corr(const Vigil__MachineState *ms, uint8_t *buf, size_t cap)
{
    size_t n = vigil__corr_machine_state__get_packed_size(ms->corr);

    assert_true(n <= cap);
    return vigil__corr_machine_state__pack(ms->corr, buf);
}

static void test_round_trip(void **state)
{
    struct fx *x = *state;
    struct cor_snap_restore_stats rst = {0};
    Vigil__MachineState *ms, *ms2;
    uint8_t *bytes, *bytes2, c1[4096], c2[4096];
    size_t len, len2, n1, n2;
    const cor_proc *p, *chain[8];

    fill_a(x);
    ms = snapshot(x, &x->a, &bytes, &len);
    assert_string_equal(ms->tenant_id, "t1");
    assert_string_equal(ms->machine_id, "m1");
    assert_int_equal(ms->n_processes, 6); /* not machine 77's */
    assert_non_null(ms->corr);
    assert_int_equal(ms->corr->n_pending, 1);
    assert_int_equal(ms->corr->n_groups, 1);
    assert_int_equal(ms->corr->groups[0]->n_events, 2);
    assert_int_equal(x->a.n, 0); /* two distinct values of three: nothing fired */

    assert_int_equal(cor_snap_restore(x->b.pt, x->b.st, ms, false, &rst), 0);
    assert_int_equal(rst.procs, 6);
    assert_int_equal(rst.skipped, 0);
    /* the tree: find's ancestors up to init, in the new table */
    p = cor_proctab_get(x->b.pt, x->mkey, 300, T0 + 300);
    assert_non_null(p);
    assert_int_equal(cor_proctab_ancestors(x->b.pt, p, chain, 8), 4);
    assert_string_equal(cor_proc_image(chain[0]), "/tmp/enum.sh");
    assert_string_equal(cor_proc_image(chain[3]), "/sbin/init");
    p = cor_proctab_get(x->b.pt, x->mkey, 400, T0 + 400);
    assert_non_null(p);
    assert_true(cor_proc_exited(p));
    assert_int_equal(cor_proc_exit_us(p), T0 + 500);
    assert_null(cor_proctab_get(x->b.pt, 77, 1, T0 + 1));

    /* B's snapshot holds the same correlation state as A's */
    ms2 = snapshot(x, &x->b, &bytes2, &len2);
    assert_int_equal(ms2->n_processes, 6);
    n1 = pack_corr(ms, c1, sizeof(c1));
    n2 = pack_corr(ms2, c2, sizeof(c2));
    assert_int_equal(n1, n2);
    assert_memory_equal(c1, c2, n1);

    /* Both owners go on the same way: the third distinct value fires one alert with the
     * same id and all four events. B first sees the re-delivered events after its commit. */
    feed(x, &x->b, 0, 1, "x1");  /* behind the watermark: late */
    feed(x, &x->b, 20, 2, "x2"); /* at the watermark, already in the group */
    feed(x, &x->b, 30, 3, "x2"); /* pending */
    feed(x, &x->a, 40, 4, "x3");
    feed(x, &x->b, 40, 4, "x3");
    cor_corrstate_flush(x->a.st);
    cor_corrstate_flush(x->b.st);
    assert_int_equal(x->a.n, 1);
    assert_int_equal(x->b.n, 1);
    assert_true(x->b.fires[0].is_new);
    assert_string_equal(x->a.fires[0].id, x->b.fires[0].id);
    assert_int_equal(x->a.fires[0].count, 4);
    assert_int_equal(x->b.fires[0].count, 4);
    assert_int_equal(x->b.fires[0].n_events, 4);
    {
        struct cor_corrstate_stats st;

        cor_corrstate_get_stats(x->b.st, &st);
        assert_int_equal(st.duplicates, 2);
        assert_int_equal(st.late, 1);
    }
    cor_snap_state_free(ms);
    cor_snap_state_free(ms2);
    vg_free(bytes);
    vg_free(bytes2);
}

static void test_garbage(void **state)
{
    struct fx *x = *state;
    Vigil__MachineState *ms = NULL, bad = VIGIL__MACHINE_STATE__INIT;
    uint8_t junk[257], *bytes, buf[256];
    size_t len;
    char why[128];
    uint64_t rng = 42;

    assert_int_equal(cor_snap_decode(NULL, 0, &ms, why, sizeof(why)), -VG_EDECODE);
    assert_null(ms);
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + (size_t)(round % 256);

        for (size_t i = 0; i < n; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            junk[i] = (uint8_t)(rng >> 56);
        }
        if (cor_snap_decode(junk, n, &ms, why, sizeof(why)) == 0) {
            /* bytes that happen to parse must still have passed every check */
            assert_int_equal(ms->version, COR_SNAP_VERSION);
            cor_snap_state_free(ms);
        } else {
            assert_null(ms);
            assert_true(why[0] != '\0');
        }
    }
    /* a truncated real snapshot, and one of an unknown version */
    fill_a(x);
    ms = snapshot(x, &x->a, &bytes, &len);
    cor_snap_state_free(ms);
    assert_int_equal(cor_snap_decode(bytes, len - 3, &ms, why, sizeof(why)), -VG_EDECODE);
    bad.version = 99;
    bad.tenant_id = "t1";
    bad.machine_id = "m1";
    len = vigil__machine_state__pack(&bad, buf);
    assert_int_equal(cor_snap_decode(buf, len, &ms, why, sizeof(why)), -VG_EDECODE);
    assert_non_null(strstr(why, "version"));
    bad.version = COR_SNAP_VERSION;
    bad.machine_id = "";
    len = vigil__machine_state__pack(&bad, buf);
    assert_int_equal(cor_snap_decode(buf, len, &ms, why, sizeof(why)), -VG_EDECODE);
    vg_free(bytes);
}

/* The rules changed between two owners: what the new one does not know is skipped. */
static void test_unknown_correlation(void **state)
{
    struct fx *x = *state;
    struct cor_snap_restore_stats rst = {0};
    struct cor_corrstate_stats st;
    Vigil__MachineState *ms;
    uint8_t *bytes;
    size_t len;

    fill_a(x);
    ms = snapshot(x, &x->a, &bytes, &len);
    ms->corr->groups[0]->corr_id[0] = 'f'; /* another correlation id */
    ms->corr->pending[0]->rule_id[0] = 'f';
    assert_int_equal(cor_snap_restore(x->b.pt, x->b.st, ms, false, &rst), 0);
    assert_int_equal(rst.skipped, 3);
    assert_int_equal(rst.procs, 6);
    cor_corrstate_get_stats(x->b.st, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.groups, 0);
    cor_snap_state_free(ms);
    vg_free(bytes);
}

/* A machine with no state left gives no snapshot (the caller writes a tombstone). */
static void test_empty_is_tombstone(void **state)
{
    struct fx *x = *state;
    struct cor_snap_req rq = {.mkey = x->mkey, .tenant = "t1", .machine = "m1"};

    assert_int_equal(cor_snap_build(x->a.pt, x->a.st, &rq, 1, 0), 0);
    assert_int_equal(rq.rc, 0);
    assert_null(rq.val);
    /* and one too big for the limit is refused, not truncated silently */
    fill_a(x);
    assert_int_equal(cor_snap_build(x->a.pt, x->a.st, &rq, 1, 64), 1);
    assert_int_equal(rq.rc, -VG_EFULL);
    assert_null(rq.val);
}

static void test_key(void **state)
{
    char a[64], b[64];

    (void)state;
    assert_int_equal(cor_snap_key("a|b", "c", a, sizeof(a)), strlen("3:a|b|c"));
    assert_string_equal(a, "3:a|b|c");
    cor_snap_key("a", "b|c", b, sizeof(b));
    assert_string_equal(b, "1:a|b|c");
    assert_int_equal(cor_snap_key("tenant", "machine", a, 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_correlation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_is_tombstone, setup, teardown),
        cmocka_unit_test(test_key),
    };

    vg_log_set_level(VG_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
