/*
 * test_proctab.c - the per-shard process table: identity under pid reuse, partial and
 * out-of-order trees, exits and expiry, bounded memory, machines kept apart, alert trees,
 * records, allocation failure.
 */
#include <stdio.h>
#include <string.h>

#include "vgtest.h"
#include "proctab.h"

#define M1 UINT64_C(0x1111111111111111)
#define M2 UINT64_C(0x2222222222222222)
#define T0 INT64_C(1700000000000000)
#define S  VG_US_PER_SEC

/* A ProcessRef over caller-owned strings. */
static Vigil__ProcessRef mkref(uint32_t pid, int64_t ctime, const char *image, const char *cmd)
{
    Vigil__ProcessRef r;

    vigil__process_ref__init(&r);
    r.pid = pid;
    r.creation_time_us = ctime;
    r.image = (char *)(image ? image : "");
    r.command_line = (char *)(cmd ? cmd : "");
    return r;
}

static cor_proc *add(cor_proctab *pt, uint64_t mkey, uint32_t pid, int64_t ctime, uint32_t ppid,
                     int64_t pctime, const char *image)
{
    Vigil__ProcessRef r = mkref(pid, ctime, image, NULL);
    cor_proc *p = cor_proctab_upsert(pt, mkey, &r, ppid, pctime, ctime);

    assert_non_null(p);
    return p;
}

static size_t nchildren(const cor_proc *p)
{
    size_t n = 0;

    for (p = cor_proc_first_child(p); p != NULL; p = cor_proc_next_sibling(p))
        n++;
    return n;
}

static void test_pid_reuse(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    cor_proc *a, *b;

    (void)state;
    a = add(pt, M1, 100, T0, 0, 0, "C:\\a.exe");
    cor_proctab_exit(pt, a, T0 + 10 * S, 0);
    b = add(pt, M1, 100, T0 + 20 * S, 0, 0, "C:\\b.exe");
    assert_ptr_not_equal(a, b);
    assert_int_equal(cor_proctab_count(pt), 2);
    assert_ptr_equal(cor_proctab_get(pt, M1, 100, T0), a);
    assert_ptr_equal(cor_proctab_get(pt, M1, 100, T0 + 20 * S), b);
    assert_null(cor_proctab_get(pt, M1, 100, T0 + 1));
    assert_string_equal(cor_proc_image(a), "C:\\a.exe");
    assert_string_equal(cor_proc_image(b), "C:\\b.exe");

    assert_null(cor_proctab_find_pid(pt, M1, 100, T0 - 1));     /* before either */
    assert_ptr_equal(cor_proctab_find_pid(pt, M1, 100, T0), a); /* at creation */
    assert_ptr_equal(cor_proctab_find_pid(pt, M1, 100, T0 + 5 * S), a);
    assert_ptr_equal(cor_proctab_find_pid(pt, M1, 100, T0 + 10 * S), a); /* at its exit */
    assert_null(cor_proctab_find_pid(pt, M1, 100, T0 + 15 * S));         /* a gone, b not yet */
    assert_ptr_equal(cor_proctab_find_pid(pt, M1, 100, T0 + 25 * S), b);
    assert_null(cor_proctab_find_pid(pt, M1, 101, T0 + 25 * S));

    /* A ref with no creation time updates the process alive at that time, never merges. */
    Vigil__ProcessRef r = mkref(100, 0, NULL, "b.exe --now");
    assert_ptr_equal(cor_proctab_upsert(pt, M1, &r, 0, 0, T0 + 30 * S), b);
    assert_string_equal(cor_proc_command_line(b), "b.exe --now");
    assert_string_equal(cor_proc_command_line(a), "");
    assert_int_equal(cor_proctab_count(pt), 2);
    cor_proctab_destroy(pt);
}

/* The parent is first seen as the actor of its child's ProcessCreated event. */
static void test_parent_from_actor(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    Vigil__ProcessRef parent = mkref(10, T0, "C:\\Windows\\explorer.exe", "explorer.exe");
    Vigil__ProcessRef child = mkref(20, 0, "C:\\Windows\\cmd.exe", "cmd.exe /c whoami");
    Vigil__ProcessCreated pc = VIGIL__PROCESS_CREATED__INIT;
    Vigil__ProcessExited px = VIGIL__PROCESS_EXITED__INIT;
    Vigil__Event ev = VIGIL__EVENT__INIT;
    cor_proc *c, *p;

    (void)state;
    pc.process = &child;
    ev.ts_us = T0 + 5 * S;
    ev.actor = &parent;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    ev.process_created = &pc;
    c = cor_proctab_on_event(pt, M1, &ev);
    assert_non_null(c);
    assert_int_equal(cor_proc_pid(c), 20);
    assert_true(cor_proc_ctime(c) == T0 + 5 * S); /* creation time 0 became the event time */
    p = cor_proc_parent(c);
    assert_non_null(p);
    assert_int_equal(cor_proc_pid(p), 10);
    assert_string_equal(cor_proc_image(p), "C:\\Windows\\explorer.exe");
    assert_null(cor_proc_parent(p));
    assert_int_equal(cor_proc_ppid(c), 10);
    assert_true(cor_proc_pctime(c) == T0);
    assert_int_equal(cor_proc_live_descendants(p), 1);

    /* The child exits: named by pid only, resolved by time. */
    Vigil__ProcessRef cref = mkref(20, 0, NULL, NULL);
    ev.ts_us = T0 + 9 * S;
    ev.actor = &cref;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
    ev.process_created = NULL;
    px.exit_code = 3;
    ev.process_exited = &px;
    assert_ptr_equal(cor_proctab_on_event(pt, M1, &ev), c);
    assert_true(cor_proc_exited(c));
    assert_true(cor_proc_exit_us(c) == T0 + 9 * S);
    assert_int_equal(cor_proc_exit_code(c), 3);
    assert_int_equal(cor_proc_live_descendants(p), 0);
    assert_int_equal(cor_proctab_count(pt), 2);
    cor_proctab_destroy(pt);
}

/* A child that arrives before its parent waits, and the parent adopts it on arrival. */
static void test_out_of_order_parent(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    struct cor_proctab_stats st;
    cor_proc *c1, *c2, *g, *p;

    (void)state;
    g = add(pt, M1, 30, T0 + 3 * S, 20, T0 + 2 * S, "grandchild");
    c1 = add(pt, M1, 20, T0 + 2 * S, 10, T0, "child");
    /* c1 arrived after g: g linked at once; c1 itself waits for 10. */
    assert_ptr_equal(cor_proc_parent(g), c1);
    c2 = add(pt, M1, 21, T0 + 4 * S, 10, T0, "child2");
    assert_null(cor_proc_parent(c1));
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.waiting, 2);

    /* A process of the same pid but another creation time is not the parent. */
    p = add(pt, M1, 10, T0 - 50 * S, 0, 0, "old 10");
    assert_null(cor_proc_parent(c1));

    p = add(pt, M1, 10, T0, 0, 0, "parent");
    assert_ptr_equal(cor_proc_parent(c1), p);
    assert_ptr_equal(cor_proc_parent(c2), p);
    assert_ptr_equal(cor_proc_first_child(p), c1); /* link order */
    assert_ptr_equal(cor_proc_next_sibling(c1), c2);
    assert_null(cor_proc_next_sibling(c2));
    assert_int_equal(cor_proc_live_descendants(p), 3);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.waiting, 0);

    const cor_proc *anc[8];
    assert_int_equal(cor_proctab_ancestors(pt, g, anc, 8), 2);
    assert_ptr_equal(anc[0], c1);
    assert_ptr_equal(anc[1], p);
    assert_int_equal(cor_proctab_ancestors(pt, g, anc, 1), 1);

    /* A parent learned later for a process first seen without one. */
    Vigil__ProcessRef r = mkref(40, T0 + 6 * S, "late", NULL);
    cor_proc *l = cor_proctab_upsert(pt, M1, &r, 0, 0, T0 + 6 * S);
    assert_null(cor_proc_parent(l));
    assert_ptr_equal(cor_proctab_upsert(pt, M1, &r, 21, T0 + 4 * S, T0 + 7 * S), l);
    assert_ptr_equal(cor_proc_parent(l), c2);
    assert_int_equal(cor_proc_live_descendants(p), 4);
    /* A conflicting parent afterwards is ignored and counted. */
    assert_ptr_equal(cor_proctab_upsert(pt, M1, &r, 20, T0 + 2 * S, T0 + 8 * S), l);
    assert_ptr_equal(cor_proc_parent(l), c2);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.bad_input, 1);
    cor_proctab_destroy(pt);
}

/* Parent given by pid only resolves to the one alive when the child was created. */
static void test_parent_by_pid_only(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    cor_proc *old, *cur, *c;

    (void)state;
    old = add(pt, M1, 10, T0, 0, 0, "old");
    cor_proctab_exit(pt, old, T0 + S, 0);
    cur = add(pt, M1, 10, T0 + 2 * S, 0, 0, "cur");
    c = add(pt, M1, 11, T0 + 3 * S, 10, 0, "c");
    assert_ptr_equal(cor_proc_parent(c), cur);
    assert_true(cor_proc_pctime(c) == T0 + 2 * S);
    c = add(pt, M1, 12, T0 + S / 2, 10, 0, "c-old");
    assert_ptr_equal(cor_proc_parent(c), old);
    cor_proctab_destroy(pt);
}

static void test_reparenting_and_orphans(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    struct cor_proctab_stats st;
    cor_proc *p, *c, *o;
    const cor_proc *anc[4];

    (void)state;
    p = add(pt, M1, 10, T0, 0, 0, "p");
    c = add(pt, M1, 20, T0 + S, 10, T0, "c");
    o = add(pt, M1, 30, T0 + S, 0, 0, "orphan");
    assert_null(cor_proc_parent(o));
    assert_int_equal(cor_proctab_ancestors(pt, o, anc, 4), 0);

    /* The parent exits; the live child keeps it in the tree long past the window. */
    cor_proctab_exit(pt, p, T0 + 2 * S, 0);
    assert_int_equal(cor_proctab_expire(pt, T0 + 1000 * S, 10 * S, 100), 0);
    assert_ptr_equal(cor_proctab_get(pt, M1, 10, T0), p);
    assert_ptr_equal(cor_proc_parent(c), p);

    /* The child exits late: the parent becomes removable; the child's exit is recent. */
    cor_proctab_exit(pt, c, T0 + 1000 * S, 0);
    assert_int_equal(cor_proctab_expire(pt, T0 + 1005 * S, 10 * S, 100), 1);
    assert_null(cor_proctab_get(pt, M1, 10, T0));
    assert_ptr_equal(cor_proctab_get(pt, M1, 20, T0 + S), c);
    assert_null(cor_proc_parent(c));
    assert_int_equal(cor_proc_ppid(c), 10); /* recorded parent kept */
    assert_true(cor_proc_pctime(c) == T0);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.waiting, 1);

    /* If the parent comes back (a late event), the child relinks. */
    p = add(pt, M1, 10, T0, 0, 0, "p again");
    assert_ptr_equal(cor_proc_parent(c), p);
    cor_proctab_exit(pt, p, T0 + 2 * S, 0);
    /* Later both expire, the orphan (running) stays. */
    assert_int_equal(cor_proctab_expire(pt, T0 + 2000 * S, 10 * S, 100), 2);
    assert_int_equal(cor_proctab_count(pt), 1);
    assert_ptr_equal(cor_proctab_get(pt, M1, 30, T0 + S), o);
    cor_proctab_destroy(pt);
}

/* Deep chain: the root is pinned while any descendant lives, then everything expires. */
static void test_live_descendant_pins_ancestors(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    cor_proc *n[6];
    int i;

    (void)state;
    n[0] = add(pt, M1, 100, T0, 0, 0, "n0");
    for (i = 1; i < 6; i++)
        n[i] = add(pt, M1, 100 + i, T0 + i, 100 + i - 1, T0 + i - 1, "n");
    for (i = 0; i < 5; i++)
        cor_proctab_exit(pt, n[i], T0 + S, 0);
    assert_int_equal(cor_proc_live_descendants(n[0]), 1);
    assert_int_equal(cor_proctab_expire(pt, T0 + 100 * S, S, 1000), 0);
    assert_int_equal(cor_proctab_count(pt), 6);
    cor_proctab_exit(pt, n[5], T0 + 50 * S, 0);
    assert_int_equal(cor_proc_live_descendants(n[0]), 0);
    /* The leaf exited at T0+50s: its ancestors go now, the leaf after its own window. */
    assert_int_equal(cor_proctab_expire(pt, T0 + 51 * S, 10 * S, 1000), 5);
    assert_int_equal(cor_proctab_count(pt), 1);
    assert_int_equal(cor_proctab_expire(pt, T0 + 61 * S, 10 * S, 1000), 1);
    assert_int_equal(cor_proctab_count(pt), 0);
    cor_proctab_destroy(pt);
}

static void test_expire_bounded_work(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    int i;

    (void)state;
    for (i = 0; i < 100; i++)
        cor_proctab_exit(pt, add(pt, M1, 1000 + i, T0 + i, 0, 0, "x"), T0 + i, 0);
    assert_int_equal(cor_proctab_expire(pt, INT64_MIN, S, 100), 0); /* no overflow */
    assert_int_equal(cor_proctab_expire(pt, T0 + 10 * S, S, 30), 30);
    assert_int_equal(cor_proctab_count(pt), 70);
    /* Only those whose exit is older than now - window. */
    assert_int_equal(cor_proctab_expire(pt, T0 + 50 + S, S, 1000), 20);
    assert_int_equal(cor_proctab_count(pt), 50);
    assert_null(cor_proctab_get(pt, M1, 1049, T0 + 49));
    assert_non_null(cor_proctab_get(pt, M1, 1050, T0 + 50));
    cor_proctab_destroy(pt);
}

/*
 * A million short-lived processes under a few long-lived parents, with expiry running as the
 * stream goes: the table stays bounded and its memory returns near where it started.
 */
static void test_million_short_lived(void **state)
{
    static const char *images[] = {
        "C:\\Windows\\System32\\cmd.exe", "C:\\Windows\\System32\\conhost.exe",
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "/usr/bin/bash"};
    const int64_t window = 60 * S, step = 1000; /* a process every ms of event time */
    cor_proctab *pt = cor_proctab_new(0);
    struct cor_proctab_stats st;
    size_t baseline, peak = 0, peak_bytes = 0, removed = 0;
    char cmd[64];
    int i;

    (void)state;
    for (i = 0; i < 4; i++)
        add(pt, M1, 4 + i, T0 - S, 0, 0, "C:\\Windows\\System32\\services.exe");
    baseline = cor_proctab_bytes(pt);
    for (i = 0; i < 1000000; i++) {
        int64_t t = T0 + (int64_t)i * step;
        Vigil__ProcessRef r = mkref((uint32_t)(8 + (i % 16000) * 4), t, images[i % 4], cmd);
        cor_proc *p;

        snprintf(cmd, sizeof(cmd), "cmd.exe /c job %d", i % 5000); /* repeats */
        r.command_line = cmd;
        r.account = "NT AUTHORITY\\SYSTEM";
        p = cor_proctab_upsert(pt, M1, &r, (uint32_t)(4 + i % 4), T0 - S, t);
        assert_non_null(p);
        cor_proctab_exit(pt, p, t + 10 * step, 0);
        if (i % 1000 == 999)
            removed += cor_proctab_expire(pt, t, window, 5000);
        if (cor_proctab_count(pt) > peak)
            peak = cor_proctab_count(pt);
        if (cor_proctab_bytes(pt) > peak_bytes)
            peak_bytes = cor_proctab_bytes(pt);
    }
    /* ~60 s of processes at one per ms, plus slack for the expiry cadence. */
    assert_true(peak < 62000 + 4 + 2000);
    assert_true(peak > 60000);
    /* ~150 bytes a process with shared strings, indexes included. */
    assert_true(peak_bytes - baseline < peak * 200);
    cor_proctab_get_stats(pt, &st);
    assert_true(st.strings < 5000 + 10);

    removed += cor_proctab_expire(pt, T0 + 1000000 * step + window + 11 * step, window, SIZE_MAX);
    assert_int_equal(removed, 1000000);
    assert_int_equal(cor_proctab_count(pt), 4);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.exit_queue, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(cor_proctab_bytes(pt) <= baseline + 4096);
    cor_proctab_destroy(pt);
}

static void test_machines_apart(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    cor_proc *a, *b, *ca, *cb;

    (void)state;
    a = add(pt, M1, 10, T0, 0, 0, "m1");
    b = add(pt, M2, 10, T0, 0, 0, "m2");
    assert_ptr_not_equal(a, b);
    ca = add(pt, M1, 11, T0 + S, 10, T0, "m1 child");
    cb = add(pt, M2, 11, T0 + S, 10, T0, "m2 child");
    assert_ptr_equal(cor_proc_parent(ca), a);
    assert_ptr_equal(cor_proc_parent(cb), b);
    assert_int_equal(nchildren(a), 1);
    assert_ptr_equal(cor_proctab_find_pid(pt, M2, 10, T0 + S), b);
    assert_string_equal(cor_proc_image(cor_proctab_get(pt, M1, 10, T0)), "m1");
    assert_true(cor_proc_mkey(b) == M2);

    /* A child on M2 waiting for a parent that only exists on M1 stays waiting. */
    cor_proc *w = add(pt, M2, 12, T0 + S, 99, T0, "w");
    add(pt, M1, 99, T0, 0, 0, "m1 99");
    assert_null(cor_proc_parent(w));

    cor_proctab_exit(pt, ca, T0 + 2 * S, 0);
    cor_proctab_drop_machine(pt, M2);
    assert_int_equal(cor_proctab_count(pt), 3);
    assert_null(cor_proctab_get(pt, M2, 10, T0));
    assert_ptr_equal(cor_proctab_get(pt, M1, 10, T0), a);
    struct cor_proctab_stats st;
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.exit_queue, 1);
    assert_int_equal(cor_proctab_expire(pt, T0 + 100 * S, S, 10), 1);
    cor_proctab_drop_machine(pt, M1);
    assert_int_equal(cor_proctab_count(pt), 0);
    cor_proctab_destroy(pt);
}

/* Growth: many processes, all retrievable, strings shared. */
static void test_growth_and_interning(void **state)
{
    cor_proctab *pt = cor_proctab_new(16);
    struct cor_proctab_stats st;
    uint32_t i;

    (void)state;
    for (i = 0; i < 200000; i++)
        add(pt, i % 2 ? M1 : M2, i, T0 + i, 0, 0, "C:\\Windows\\System32\\svchost.exe");
    for (i = 0; i < 200000; i++) {
        cor_proc *p = cor_proctab_get(pt, i % 2 ? M1 : M2, i, T0 + i);
        assert_non_null(p);
        assert_int_equal(cor_proc_pid(p), i);
        assert_null(cor_proctab_get(pt, i % 2 ? M2 : M1, i, T0 + i));
    }
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.strings, 1);
    assert_ptr_equal(cor_proc_image(cor_proctab_get(pt, M1, 1, T0 + 1)),
                     cor_proc_image(cor_proctab_get(pt, M2, 2, T0 + 2)));
    assert_true(st.bytes / st.procs < 170);
    cor_proctab_destroy(pt);
}

static void test_string_merge(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    Vigil__ProcessRef r = mkref(5, T0, "C:\\x.exe", "x.exe -a");
    struct cor_proctab_stats st;
    cor_proc *p;

    (void)state;
    r.sha256 = "aa";
    p = cor_proctab_upsert(pt, M1, &r, 0, 0, T0);
    r = mkref(5, T0, NULL, NULL);
    r.md5 = "bb";
    r.logon_id = "0x3e7";
    assert_ptr_equal(cor_proctab_upsert(pt, M1, &r, 0, 0, T0 + S), p);
    assert_string_equal(cor_proc_image(p), "C:\\x.exe"); /* empty never erases */
    assert_string_equal(cor_proc_field(p, COR_PF_SHA256), "aa");
    assert_string_equal(cor_proc_field(p, COR_PF_MD5), "bb");
    assert_string_equal(cor_proc_field(p, COR_PF_LOGON_ID), "0x3e7");
    assert_string_equal(cor_proc_command_line(p), "x.exe -a");
    assert_true(cor_proc_seen_us(p) == T0 + S);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.strings, 3); /* image group, user group, command line */
    cor_proctab_destroy(pt);
}

/*
 * root(1) -> a(2) -> b(3) -> trigger(4) -> {c1(5) -> {g1(7), g2(8)}, c2(6)}
 * with siblings a2(9) under root and b2(10) under a that must not appear.
 */
static void test_alert_tree(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    vg_arena *arena = vg_arena_new(4096);
    Vigil__Alert al = VIGIL__ALERT__INIT;
    cor_proc *t;
    size_t i;

    (void)state;
    add(pt, M1, 1, T0, 0, 0, "root");
    add(pt, M1, 2, T0 + 1, 1, T0, "a");
    add(pt, M1, 9, T0 + 2, 1, T0, "a2");
    add(pt, M1, 3, T0 + 3, 2, T0 + 1, "b");
    add(pt, M1, 10, T0 + 4, 2, T0 + 1, "b2");
    t = add(pt, M1, 4, T0 + 5, 3, T0 + 3, "trigger");
    add(pt, M1, 5, T0 + 6, 4, T0 + 5, "c1");
    add(pt, M1, 6, T0 + 7, 4, T0 + 5, "c2");
    add(pt, M1, 7, T0 + 8, 5, T0 + 6, "g1");
    add(pt, M1, 8, T0 + 9, 5, T0 + 6, "g2");
    cor_proctab_exit(pt, cor_proctab_get(pt, M1, 6, T0 + 7), T0 + 100, 1);

    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, 64), 0);
    static const char *want[] = {"root", "a", "b", "trigger", "c1", "c2", "g1", "g2"};
    static const int32_t wparent[] = {-1, 0, 1, 2, 3, 3, 4, 4};
    assert_int_equal(al.n_process_tree, 8);
    for (i = 0; i < 8; i++) {
        assert_string_equal(al.process_tree[i]->image, want[i]);
        assert_int_equal(al.process_tree[i]->parent_index, wparent[i]);
        assert_int_equal(al.process_tree[i]->trigger, i == 3);
    }
    assert_int_equal(al.process_tree[3]->pid, 4);
    assert_true(al.process_tree[3]->creation_time_us == T0 + 5);
    assert_true(al.process_tree[5]->exit_time_us == T0 + 100);
    assert_true(al.process_tree[4]->exit_time_us == 0);

    /* Cap: ancestors and trigger first, then the nearest descendants. */
    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, 5), 0);
    assert_int_equal(al.n_process_tree, 5);
    assert_string_equal(al.process_tree[4]->image, "c1");
    assert_int_equal(al.process_tree[4]->parent_index, 3);
    /* Too small for all ancestors: the nearest stay, the trigger is always there. */
    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, 2), 0);
    assert_int_equal(al.n_process_tree, 2);
    assert_string_equal(al.process_tree[0]->image, "b");
    assert_int_equal(al.process_tree[0]->parent_index, -1);
    assert_string_equal(al.process_tree[1]->image, "trigger");
    assert_true(al.process_tree[1]->trigger);
    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, 0), -VG_EINVAL);
    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, SIZE_MAX), 0);
    assert_int_equal(al.n_process_tree, 8);

    /* The tree survives the processes: it lives in the arena. Pack it as a check. */
    assert_int_equal(cor_proctab_alert_tree(pt, t, arena, &al, 64), 0);
    cor_proctab_destroy(pt);
    size_t len = vigil__alert__get_packed_size(&al);
    uint8_t *buf = vg_arena_alloc(arena, len);
    assert_int_equal(vigil__alert__pack(&al, buf), len);
    Vigil__Alert *back = vigil__alert__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->n_process_tree, 8);
    assert_string_equal(back->process_tree[7]->image, "g2");
    vigil__alert__free_unpacked(back, NULL);
    vg_arena_destroy(arena);
}

static void test_record_roundtrip(void **state)
{
    cor_proctab *pt = cor_proctab_new(0), *pt2 = cor_proctab_new(0);
    Vigil__ProcessRef r = mkref(77, T0, "/usr/bin/curl", "curl http://x");
    Vigil__ProcessRecord rec, *back;
    Vigil__ProcessRef ref;
    cor_proc *p, *q, *par;
    uint8_t buf[1024];
    size_t len;
    int f;

    (void)state;
    r.sha256 = "e3b0";
    r.sha1 = "da39";
    r.md5 = "d41d";
    r.account = "root";
    r.integrity_level = "System";
    r.current_directory = "/tmp";
    r.original_file_name = "curl";
    r.logon_id = "7";
    p = cor_proctab_upsert(pt, M1, &r, 70, T0 - S, T0);
    cor_proctab_exit(pt, p, T0 + S, 6);
    cor_proc_to_record(p, &rec, &ref);
    len = vigil__process_record__get_packed_size(&rec);
    assert_true(len < sizeof(buf));
    vigil__process_record__pack(&rec, buf);
    back = vigil__process_record__unpack(NULL, len, buf);
    assert_non_null(back);
    assert_int_equal(back->parent_pid, 70);
    assert_true(back->exit_time_us == T0 + S);

    par = add(pt2, M1, 70, T0 - S, 0, 0, "sh");
    q = cor_proctab_upsert_record(pt2, M1, back, T0 + 2 * S);
    vigil__process_record__free_unpacked(back, NULL);
    assert_non_null(q);
    assert_ptr_equal(cor_proc_parent(q), par);
    assert_int_equal(cor_proc_pid(q), 77);
    assert_true(cor_proc_ctime(q) == T0);
    assert_true(cor_proc_exited(q));
    assert_true(cor_proc_exit_us(q) == T0 + S);
    assert_int_equal(cor_proc_exit_code(q), 6);
    for (f = 0; f < COR_PF__COUNT; f++)
        assert_string_equal(cor_proc_field(q, f), cor_proc_field(p, f));
    assert_string_equal(cor_proc_field(q, COR_PF_LOGON_ID), "7");
    assert_int_equal(cor_proctab_expire(pt2, T0 + 100 * S, S, 10), 1);
    cor_proctab_destroy(pt);
    cor_proctab_destroy(pt2);
}

/* Lost exits (a reboot): idle running processes are presumed exited, then expire; one seen
 * again comes back to life; a real exit replaces the presumed one. */
static void test_expire_idle(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    struct cor_proctab_stats st;
    cor_proc *p1, *c, *p2, *p3, *p4;
    size_t n = 0;

    (void)state;
    p1 = add(pt, M1, 10, T0, 0, 0, "p1");
    c = add(pt, M1, 11, T0, 10, T0, "c");
    p2 = add(pt, M1, 12, T0 + 100 * S, 0, 0, "p2");
    p3 = add(pt, M1, 13, T0, 0, 0, "p3");
    p4 = add(pt, M1, 14, T0, 0, 0, "p4");
    /* Two full passes: the parent is pinned by its child until the child is presumed gone. */
    n += cor_proctab_expire_idle(pt, T0 + 50 * S, 10 * S, 64);
    n += cor_proctab_expire_idle(pt, T0 + 50 * S, 10 * S, 64);
    assert_int_equal(n, 4);
    assert_true(cor_proc_exited(p1) && cor_proc_exited(c) && cor_proc_exited(p3));
    assert_true(cor_proc_exit_us(c) == T0);
    assert_false(cor_proc_exited(p2));
    /* A presumed-exited process is still found by pid, and revives when seen again. */
    assert_ptr_equal(cor_proctab_find_pid(pt, M1, 13, T0 + 60 * S), p3);
    Vigil__ProcessRef r = mkref(13, 0, NULL, NULL);
    assert_ptr_equal(cor_proctab_upsert(pt, M1, &r, 0, 0, T0 + 60 * S), p3);
    assert_false(cor_proc_exited(p3));
    /* A real exit replaces the presumed one. */
    cor_proctab_exit(pt, p4, T0 + 45 * S, 9);
    assert_true(cor_proc_exit_us(p4) == T0 + 45 * S);
    assert_int_equal(cor_proc_exit_code(p4), 9);
    /* The exit queue is in arrival order, so p4's later exit may hold the others back until
     * it expires too: removal can be late, never early. */
    n = cor_proctab_expire(pt, T0 + 50 * S, 10 * S, 100);
    assert_true(n <= 2);
    assert_non_null(cor_proctab_get(pt, M1, 14, T0));
    assert_int_equal(n + cor_proctab_expire(pt, T0 + 60 * S, 10 * S, 100), 3);
    assert_null(cor_proctab_get(pt, M1, 10, T0));
    assert_null(cor_proctab_get(pt, M1, 14, T0));
    assert_ptr_equal(cor_proctab_get(pt, M1, 13, T0), p3);
    assert_int_equal(cor_proctab_count(pt), 2);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.presumed_exits, 4);
    assert_int_equal(st.exit_queue, 0);
    cor_proctab_destroy(pt);
}

/* Bad input: self-parent and a parent cycle are refused, never loop. */
static void test_bad_parents(void **state)
{
    cor_proctab *pt = cor_proctab_new(0);
    struct cor_proctab_stats st;
    cor_proc *a, *b;
    const cor_proc *anc[8];

    (void)state;
    a = add(pt, M1, 1, T0, 1, T0, "self");
    assert_null(cor_proc_parent(a));
    /* b waits for a2; a2 claims b as parent: b is adopted by a2, then a2 -> b is a cycle. */
    b = add(pt, M1, 2, T0, 3, T0, "b");
    a = add(pt, M1, 3, T0, 2, T0, "a2");
    assert_ptr_equal(cor_proc_parent(b), a);
    assert_null(cor_proc_parent(a));
    assert_int_equal(cor_proctab_ancestors(pt, b, anc, 8), 1);
    cor_proctab_get_stats(pt, &st);
    assert_int_equal(st.bad_input, 2);
    assert_null(cor_proctab_upsert(pt, M1, NULL, 0, 0, T0));
    cor_proctab_exit(pt, b, T0, 0);
    cor_proctab_exit(pt, a, T0, 0);
    assert_int_equal(cor_proctab_expire(pt, T0 + 10 * S, S, 10), 2);
    cor_proctab_destroy(pt);
}

/* Every allocation point failing in turn: NULL returned, counted, nothing leaks, the table
 * stays usable. */
static void test_alloc_failure(void **state)
{
    long nth;

    (void)state;
    for (nth = 1; nth < 12; nth++) {
        cor_proctab *pt = cor_proctab_new(0);
        Vigil__ProcessRef r = mkref(1, T0, "img", "cmd");
        struct cor_proctab_stats st;
        cor_proc *p;
        int i;

        assert_non_null(pt);
        r.account = "u";
        vg_alloc_fail_after(nth, false);
        for (i = 0; i < 4; i++) {
            r.pid = (uint32_t)i;
            p = cor_proctab_upsert(pt, M1, &r, 0, 0, T0);
            if (p != NULL)
                assert_int_equal(cor_proc_pid(p), i);
        }
        vg_alloc_fail_after(0, false);
        cor_proctab_get_stats(pt, &st);
        assert_int_equal(st.enomem, 4 - st.procs);
        assert_true(st.procs == 3 || st.procs == 4);
        r.pid = 9;
        assert_non_null(cor_proctab_upsert(pt, M1, &r, 0, 0, T0));
        cor_proctab_destroy(pt);
    }
    vg_alloc_fail_after(1, false);
    cor_proctab *none = cor_proctab_new(0);
    vg_alloc_fail_after(0, false);
    assert_null(none);
    vg_alloc_fail_after(3, false); /* the last index of a new table */
    none = cor_proctab_new(0);
    vg_alloc_fail_after(0, false);
    assert_null(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pid_reuse),
        cmocka_unit_test(test_parent_from_actor),
        cmocka_unit_test(test_out_of_order_parent),
        cmocka_unit_test(test_parent_by_pid_only),
        cmocka_unit_test(test_reparenting_and_orphans),
        cmocka_unit_test(test_live_descendant_pins_ancestors),
        cmocka_unit_test(test_expire_bounded_work),
        cmocka_unit_test(test_million_short_lived),
        cmocka_unit_test(test_machines_apart),
        cmocka_unit_test(test_growth_and_interning),
        cmocka_unit_test(test_string_merge),
        cmocka_unit_test(test_alert_tree),
        cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_expire_idle),
        cmocka_unit_test(test_bad_parents),
        cmocka_unit_test(test_alloc_failure),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
