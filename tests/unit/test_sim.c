/*
 * test_sim.c - the telemetry generator: determinism, sensor invariants, process-tree
 * consistency, event mix, scenarios and memory per machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim.h"
#include "vg.h"
#include "vgtest.h"

/* ---- a small table of processes, keyed by (machine, pid, creation time) ------------- */

enum { P_LIVE = 1, P_EXITED = 2 };

struct tproc {
    uint64_t mkey; /* 0: empty */
    uint32_t pid;
    int64_t ctime;
    int state;
};

struct tpid { /* (machine, pid) -> live creation time (0: none) and last creation time */
    uint64_t mkey;
    uint32_t pid;
    int64_t live_ctime;
    int64_t last_ctime;
};

struct ttab {
    struct tproc *p;
    struct tpid *q;
    size_t cap; /* power of two */
};

static void ttab_init(struct ttab *t, size_t cap)
{
    t->cap = cap;
    t->p = calloc(cap, sizeof(*t->p));
    t->q = calloc(cap, sizeof(*t->q));
    assert_non_null(t->p);
    assert_non_null(t->q);
}

static void ttab_free(struct ttab *t)
{
    free(t->p);
    free(t->q);
}

static struct tproc *ttab_proc(struct ttab *t, uint64_t mkey, uint32_t pid, int64_t ctime)
{
    size_t i = (size_t)(mkey ^ (pid * 0x9e3779b97f4a7c15ull) ^ (uint64_t)ctime * 31) & (t->cap - 1);

    for (;; i = (i + 1) & (t->cap - 1)) {
        struct tproc *e = &t->p[i];

        if (e->mkey == 0) {
            e->mkey = mkey;
            e->pid = pid;
            e->ctime = ctime;
            return e;
        }
        if (e->mkey == mkey && e->pid == pid && e->ctime == ctime)
            return e;
    }
}

static struct tpid *ttab_pid(struct ttab *t, uint64_t mkey, uint32_t pid)
{
    size_t i = (size_t)(mkey ^ (pid * 0x9e3779b97f4a7c15ull)) & (t->cap - 1);

    for (;; i = (i + 1) & (t->cap - 1)) {
        struct tpid *e = &t->q[i];

        if (e->mkey == 0) {
            e->mkey = mkey;
            e->pid = pid;
            return e;
        }
        if (e->mkey == mkey && e->pid == pid)
            return e;
    }
}

/* ---- helpers ---------------------------------------------------------------------- */

static uint32_t machine_index(const char *machine_id, uint32_t tenants)
{
    /* "WIN-tenant-7-000123": tenant 7, number 123 -> index (123 - 1) * T + 6 */
    const char *p = strstr(machine_id, "tenant-");
    unsigned t = 0, num = 0;

    assert_non_null(p);
    assert_int_equal(sscanf(p, "tenant-%u-%u", &t, &num), 2);
    return (num - 1) * tenants + (t - 1);
}

/* Hash of every packed batch of a run. */
static uint64_t run_hash(const struct bench_sim_opts *o, uint64_t *events)
{
    bench_sim *s = NULL;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    uint64_t h = 0;
    int rc;

    assert_non_null(a);
    assert_int_equal(bench_sim_new(o, &s, NULL, 0), 0);
    *events = 0;
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        uint8_t *buf;
        size_t len;

        assert_int_equal(bench_sim_pack(b, a, &buf, &len), 0);
        h = vg_hash64(buf, len, h);
        *events += b->n_events;
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    bench_sim_free(s);
    vg_arena_destroy(a);
    return h;
}

static void small_opts(struct bench_sim_opts *o)
{
    bench_sim_opts_default(o);
    o->machines = 300;
    o->tenants = 3;
    o->duration_us = 30 * VG_US_PER_SEC;
    o->events_per_machine_per_sec = 20;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_determinism(void **state)
{
    struct bench_sim_opts o;
    uint64_t n1, n2, n3, h1, h2, h3;

    (void)state;
    small_opts(&o);
    o.seed = 42;
    h1 = run_hash(&o, &n1);
    h2 = run_hash(&o, &n2);
    assert_true(n1 > 100000);
    assert_int_equal(n1, n2);
    assert_true(h1 == h2);
    o.seed = 43;
    h3 = run_hash(&o, &n3);
    assert_true(h3 != h1);
}

static void test_bad_options(void **state)
{
    struct bench_sim_opts o;
    bench_sim *s = (bench_sim *)&o;
    char err[128] = "";

    (void)state;
    bench_sim_opts_default(&o);
    o.machines = 0;
    assert_int_equal(bench_sim_new(&o, &s, err, sizeof(err)), -VG_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "machines"));
    bench_sim_opts_default(&o);
    o.tenants = 2000; /* more tenants than machines */
    assert_int_equal(bench_sim_new(&o, &s, err, sizeof(err)), -VG_EINVAL);
    bench_sim_opts_default(&o);
    o.linux_share = 1.5;
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), -VG_EINVAL);
    bench_sim_opts_default(&o);
    vg_alloc_fail_after(2, true);
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), -VG_ENOMEM);
    vg_alloc_fail_after(0, false);
    assert_null(s);
}

struct inv {
    uint64_t events;
    uint64_t by_kind[BENCH_SIM_KIND__COUNT];
    uint64_t pid_reuses;
    uint64_t win_bad_pid;
    uint64_t preexisting_actors;
};

static enum bench_sim_kind kind_of(const Vigil__Event *ev)
{
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        return BENCH_SIM_PROC_CREATE;
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        return BENCH_SIM_PROC_EXIT;
    case VIGIL__EVENT__KIND_FILE:
        return BENCH_SIM_FILE;
    case VIGIL__EVENT__KIND_NETWORK:
        return BENCH_SIM_NETWORK;
    case VIGIL__EVENT__KIND_DNS:
        return BENCH_SIM_DNS;
    case VIGIL__EVENT__KIND_REGISTRY:
        return BENCH_SIM_REGISTRY;
    case VIGIL__EVENT__KIND_LOGON:
        return BENCH_SIM_LOGON;
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        return BENCH_SIM_IMAGE_LOAD;
    case VIGIL__EVENT__KIND_SOFTWARE:
        return BENCH_SIM_SOFTWARE;
    default:
        fail_msg("event without a kind");
        return BENCH_SIM_KIND__COUNT;
    }
}

/* The actor of every event must be alive: created earlier in the stream and not exited,
 * or a process that existed before the run started (boot processes, the user session). */
static void check_actor(struct ttab *t, struct inv *iv, uint64_t mkey, int64_t start,
                        const Vigil__ProcessRef *a, const Vigil__Event *ev)
{
    struct tproc *p;

    assert_non_null(a);
    assert_true(a->pid != 0);
    assert_true(a->image[0] != '\0');
    assert_true(a->creation_time_us <= ev->ts_us);
    p = ttab_proc(t, mkey, a->pid, a->creation_time_us);
    if (a->creation_time_us < start) {
        if (p->state == 0)
            p->state = P_LIVE;
        iv->preexisting_actors++;
    }
    if (p->state != P_LIVE)
        fail_msg("actor pid %u ctime %lld (%s) is not alive at seq %llu", a->pid,
                 (long long)a->creation_time_us, a->image, (unsigned long long)ev->seq);
}

static void check_event(struct ttab *t, struct inv *iv, uint64_t mkey, bool win, int64_t start,
                        const Vigil__Event *ev)
{
    enum bench_sim_kind k = kind_of(ev);

    iv->by_kind[k]++;
    check_actor(t, iv, mkey, start, ev->actor, ev);
    if (win && ev->actor->pid % 4 != 0)
        iv->win_bad_pid++;
    if (k == BENCH_SIM_PROC_CREATE) {
        const Vigil__ProcessRef *c = ev->process_created->process;
        struct tproc *p = ttab_proc(t, mkey, c->pid, c->creation_time_us);
        struct tpid *q = ttab_pid(t, mkey, c->pid);

        assert_int_equal(c->creation_time_us, ev->ts_us);
        assert_int_equal(p->state, 0);   /* never created twice */
        assert_true(q->live_ctime == 0); /* no two live processes share a pid */
        if (q->last_ctime != 0 && q->last_ctime != c->creation_time_us)
            iv->pid_reuses++;
        if (win && c->pid % 4 != 0)
            iv->win_bad_pid++;
        p->state = P_LIVE;
        q->live_ctime = q->last_ctime = c->creation_time_us;
    } else if (k == BENCH_SIM_PROC_EXIT) {
        struct tproc *p = ttab_proc(t, mkey, ev->actor->pid, ev->actor->creation_time_us);
        struct tpid *q = ttab_pid(t, mkey, ev->actor->pid);

        p->state = P_EXITED;
        q->live_ctime = 0;
    }
}

static void test_invariants(void **state)
{
    struct bench_sim_opts o;
    struct bench_sim_stats st;
    struct inv iv;
    struct ttab t;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    uint64_t *last_seq;
    int64_t *last_ts, last_batch_ts = INT64_MIN;
    double share[BENCH_SIM_KIND__COUNT];
    int rc, k;

    (void)state;
    small_opts(&o);
    o.scenarios = true;
    o.scenario_every_us = 10 * VG_US_PER_SEC;
    memset(&iv, 0, sizeof(iv));
    ttab_init(&t, 1 << 20);
    last_seq = calloc(o.machines, sizeof(*last_seq));
    last_ts = calloc(o.machines, sizeof(*last_ts));
    assert_non_null(a);
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        uint32_t idx = machine_index(b->machine_id, o.tenants);
        uint64_t mkey = (uint64_t)idx + 1;
        bool win = b->os == VIGIL__OS__OS_WINDOWS;
        size_t i;

        assert_true(idx < o.machines);
        assert_true(b->n_events >= 1 && b->n_events <= o.events_per_batch);
        assert_int_equal(b->first_seq, b->events[0]->seq);
        assert_true(b->first_seq > last_seq[idx]);
        /* batches come in the order of their first event */
        assert_true(b->events[0]->ts_us >= last_batch_ts);
        last_batch_ts = b->events[0]->ts_us;
        assert_true(strncmp(b->machine_id, win ? "WIN-" : "lnx-", 4) == 0);
        for (i = 0; i < b->n_events; i++) {
            const Vigil__Event *ev = b->events[i];

            assert_true(ev->seq > last_seq[idx]);
            assert_true(ev->ts_us >= last_ts[idx]);
            assert_true(ev->ts_us >= o.start_us && ev->ts_us < o.start_us + o.duration_us);
            last_seq[idx] = ev->seq;
            last_ts[idx] = ev->ts_us;
            check_event(&t, &iv, mkey, win, o.start_us, ev);
            iv.events++;
        }
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    bench_sim_stats(s, &st);
    assert_int_equal(st.events, iv.events);
    for (k = 0; k < BENCH_SIM_KIND__COUNT; k++) {
        assert_int_equal(st.by_kind[k], iv.by_kind[k]);
        share[k] = (double)iv.by_kind[k] / (double)iv.events;
        print_message("  %-16s %8llu  %5.1f %%\n", bench_sim_kind_name(k),
                      (unsigned long long)iv.by_kind[k], 100.0 * share[k]);
    }
    print_message("  pid reuses %llu, pre-existing actors %llu\n",
                  (unsigned long long)iv.pid_reuses, (unsigned long long)iv.preexisting_actors);
    /* the mix, within broad bounds */
    assert_true(share[BENCH_SIM_FILE] > 0.25 && share[BENCH_SIM_FILE] < 0.50);
    assert_true(share[BENCH_SIM_NETWORK] > 0.15 && share[BENCH_SIM_NETWORK] < 0.35);
    assert_true(share[BENCH_SIM_FILE] + share[BENCH_SIM_NETWORK] > 0.5);
    assert_true(share[BENCH_SIM_PROC_CREATE] + share[BENCH_SIM_PROC_EXIT] > 0.05);
    assert_true(share[BENCH_SIM_PROC_CREATE] + share[BENCH_SIM_PROC_EXIT] < 0.20);
    assert_true(share[BENCH_SIM_REGISTRY] > 0.04 && share[BENCH_SIM_REGISTRY] < 0.20);
    assert_true(share[BENCH_SIM_DNS] > 0.03 && share[BENCH_SIM_DNS] < 0.15);
    assert_true(share[BENCH_SIM_IMAGE_LOAD] > 0.02 && share[BENCH_SIM_IMAGE_LOAD] < 0.15);
    assert_true(share[BENCH_SIM_LOGON] > 0.005 && share[BENCH_SIM_LOGON] < 0.08);
    assert_true(iv.by_kind[BENCH_SIM_SOFTWARE] > 0 && share[BENCH_SIM_SOFTWARE] < 0.01);
    assert_true(share[BENCH_SIM_FILE] > share[BENCH_SIM_PROC_CREATE]);
    /* pids come back with new creation times; Windows pids are multiples of 4 */
    assert_true(iv.pid_reuses > 10);
    assert_int_equal(iv.win_bad_pid, 0);
    assert_true(iv.preexisting_actors > 0);
    bench_sim_free(s);
    vg_arena_destroy(a);
    free(last_seq);
    free(last_ts);
    ttab_free(&t);
}

/* What the scenario test saw, per machine index. */
struct seen {
    int win_ref;      /* powershell reference process creations */
    int win_net;      /* the 127.0.0.1:80 connection after it */
    int win_file;     /* the invoice.exe create after that */
    int lnx_script;   /* script starts */
    int lnx_children; /* children of the script */
    int renames;      /* *.locked renames */
    int lateral;      /* services.exe starting PSEXESVC.exe */
    uint32_t ps_pid;  /* the reference powershell, to tie its network and file events */
    int64_t ps_ctime;
};

static void scan_scenarios(const Vigil__TelemetryBatch *b, struct seen *sn, const bench_sim *s)
{
    size_t i, j;

    for (i = 0; i < b->n_events; i++) {
        const Vigil__Event *ev = b->events[i];
        const Vigil__ProcessRef *a = ev->actor;

        if (ev->kind_case == VIGIL__EVENT__KIND_PROCESS_CREATED) {
            const Vigil__ProcessRef *c = ev->process_created->process;

            if (strcmp(c->command_line, BENCH_SIM_WIN_REF_CMDLINE) == 0) {
                assert_string_equal(c->image, BENCH_SIM_WIN_REF_IMAGE);
                assert_string_equal(a->image, BENCH_SIM_WIN_REF_PARENT);
                assert_int_equal(b->os, VIGIL__OS__OS_WINDOWS);
                sn->win_ref++;
                sn->ps_pid = c->pid;
                sn->ps_ctime = c->creation_time_us;
                /* the ground truth names this very event */
                for (j = 0; j < bench_sim_truth_count(s); j++) {
                    const struct bench_sim_truth *t = bench_sim_truth_get(s, j);

                    if (t->kind == BENCH_SCEN_WIN_REF && t->seq == ev->seq &&
                        strcmp(t->machine, b->machine_id) == 0) {
                        assert_true(t->emitted);
                        assert_int_equal(t->ts_us, ev->ts_us);
                        assert_string_equal(t->tenant, b->tenant_id);
                        break;
                    }
                }
                assert_true(j < bench_sim_truth_count(s));
            }
            if (strcmp(c->command_line, BENCH_SIM_LNX_REF_CMDLINE) == 0) {
                assert_string_equal(c->image, BENCH_SIM_LNX_REF_IMAGE);
                assert_int_equal(b->os, VIGIL__OS__OS_LINUX);
                sn->lnx_script++;
            }
            if (strcmp(a->command_line, BENCH_SIM_LNX_REF_CMDLINE) == 0)
                sn->lnx_children++;
            if (strcmp(c->image, "C:\\Windows\\PSEXESVC.exe") == 0 &&
                strstr(a->image, "services.exe") != NULL)
                sn->lateral++;
        } else if (ev->kind_case == VIGIL__EVENT__KIND_NETWORK && sn->ps_pid == a->pid &&
                   sn->ps_ctime == a->creation_time_us) {
            if (strcmp(ev->network->remote_ip, "127.0.0.1") == 0 && ev->network->remote_port == 80)
                sn->win_net++;
        } else if (ev->kind_case == VIGIL__EVENT__KIND_FILE) {
            const Vigil__FileEvent *f = ev->file;
            size_t n = strlen(f->path);

            if (sn->ps_pid == a->pid && sn->ps_ctime == a->creation_time_us &&
                f->op == VIGIL__FILE_OP__FILE_CREATED &&
                strcmp(f->path, BENCH_SIM_WIN_REF_FILE) == 0)
                sn->win_file++;
            if (f->op == VIGIL__FILE_OP__FILE_RENAMED && n > 7 &&
                strcmp(f->path + n - 7, ".locked") == 0)
                sn->renames++;
        }
    }
}

static void test_scenarios(void **state)
{
    struct bench_sim_opts o;
    struct seen *sn;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    size_t i, counts[BENCH_SCEN__COUNT] = {0};
    bool tenant_seen[16] = {false};
    int rc, win_ref = 0, lnx = 0, kids = 0, ransom_machines = 0, lateral = 0;
    uint32_t m;

    (void)state;
    /* the demo: 1,000 machines, 20 s, defaults */
    bench_sim_opts_default(&o);
    assert_true(o.tenants <= 16);
    sn = calloc(o.machines, sizeof(*sn));
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        scan_scenarios(b, &sn[machine_index(b->machine_id, o.tenants)], s);
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    for (m = 0; m < o.machines; m++) {
        win_ref += sn[m].win_ref;
        assert_int_equal(sn[m].win_net, sn[m].win_ref);
        assert_int_equal(sn[m].win_file, sn[m].win_ref);
        lnx += sn[m].lnx_script;
        kids += sn[m].lnx_children;
        if (sn[m].renames > 0) {
            assert_int_equal(sn[m].renames % 200, 0);
            ransom_machines++;
        }
        lateral += sn[m].lateral;
    }
    print_message("  win-ref %d, linux-ref %d (%d children), lateral %d, ransomware on %d\n",
                  win_ref, lnx, kids, lateral, ransom_machines);
    for (i = 0; i < bench_sim_truth_count(s); i++) {
        const struct bench_sim_truth *t = bench_sim_truth_get(s, i);
        unsigned tn = 0;

        assert_true(t->emitted); /* the defaults fit every scenario into 20 s */
        assert_true(t->ts_us >= t->planned_us);
        assert_int_equal(sscanf(t->tenant, "tenant-%u", &tn), 1);
        assert_true(tn >= 1 && tn <= o.tenants);
        tenant_seen[tn - 1] = true;
        counts[t->kind]++;
        if (t->kind == BENCH_SCEN_WIN_REF)
            assert_string_equal(t->title, "Suspicious PowerShell command line");
        if (t->kind == BENCH_SCEN_LNX_REF)
            assert_string_equal(t->title, "Enumeration of files with sensitive data");
        /* a chain's parts share a tenant but not a machine */
        if (t->kind == BENCH_SCEN_CHAIN_LATERAL) {
            const struct bench_sim_truth *d = bench_sim_truth_get(s, i - 2);

            assert_int_equal(d->kind, BENCH_SCEN_CHAIN_DOWNLOAD);
            assert_int_equal(d->chain, t->chain);
            assert_string_equal(d->tenant, t->tenant);
            assert_string_not_equal(d->machine, t->machine);
        }
        /* and happen in the order of the attack */
        if (t->kind == BENCH_SCEN_CHAIN_RANSOM) {
            const struct bench_sim_truth *l = bench_sim_truth_get(s, i - 1);
            const struct bench_sim_truth *c = bench_sim_truth_get(s, i - 2);
            const struct bench_sim_truth *d = bench_sim_truth_get(s, i - 3);

            assert_int_equal(d->kind, BENCH_SCEN_CHAIN_DOWNLOAD);
            assert_int_equal(c->kind, BENCH_SCEN_CHAIN_CREDDUMP);
            assert_true(d->ts_us < c->ts_us && c->ts_us < l->ts_us && l->ts_us < t->ts_us);
            assert_string_not_equal(t->machine, l->machine);
            assert_string_not_equal(t->machine, d->machine);
        }
    }
    for (i = 0; i < o.tenants; i++)
        assert_true(tenant_seen[i]);
    /* one of each per tenant, each seen in the stream as it was recorded */
    assert_int_equal(counts[BENCH_SCEN_WIN_REF], o.tenants);
    assert_int_equal(counts[BENCH_SCEN_LNX_REF], o.tenants);
    assert_int_equal(counts[BENCH_SCEN_CHAIN_RANSOM], o.tenants);
    assert_int_equal(win_ref, (int)o.tenants);
    assert_int_equal(lnx, (int)o.tenants);
    assert_true(kids >= 6 * lnx && kids <= 10 * lnx);
    assert_int_equal(lateral, (int)o.tenants);
    assert_int_equal(ransom_machines, (int)o.tenants);
    bench_sim_free(s);
    vg_arena_destroy(a);
    free(sn);
}

/* Scenarios off means no scenario at all, and no truth. */
static void test_no_scenarios(void **state)
{
    struct bench_sim_opts o;
    struct bench_sim_stats st;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    struct seen sn;
    int rc;

    (void)state;
    bench_sim_opts_default(&o);
    o.machines = 200;
    o.scenarios = false;
    memset(&sn, 0, sizeof(sn));
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    assert_int_equal(bench_sim_truth_count(s), 0);
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        scan_scenarios(b, &sn, s);
        vg_arena_reset(a);
    }
    assert_int_equal(rc, 0);
    bench_sim_stats(s, &st);
    assert_int_equal(st.scenario_events, 0);
    assert_int_equal(sn.win_ref + sn.lnx_script + sn.renames + sn.lateral, 0);
    assert_true(st.events > 10000);
    bench_sim_free(s);
    vg_arena_destroy(a);
}

/* Tenants too small for some scenarios get the ones that fit; a single machine works. */
static void test_tiny(void **state)
{
    struct bench_sim_opts o;
    struct bench_sim_stats st;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 12);
    Vigil__TelemetryBatch *b;
    size_t i;
    int rc, k;

    (void)state;
    for (k = 0; k < 3; k++) {
        bench_sim_opts_default(&o);
        o.machines = k == 0 ? 1 : 5;
        o.tenants = k == 0 ? 1 : 3;
        o.linux_share = k == 2 ? 1.0 : 0.4;
        o.events_per_batch = 1 + (uint32_t)k * 5;
        assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
        while ((rc = bench_sim_next(s, a, &b)) == 1) {
            assert_true(b->n_events >= 1 && b->n_events <= o.events_per_batch);
            vg_arena_reset(a);
        }
        assert_int_equal(rc, 0);
        bench_sim_stats(s, &st);
        assert_true(st.events > 0);
        for (i = 0; i < bench_sim_truth_count(s); i++) {
            const struct bench_sim_truth *t = bench_sim_truth_get(s, i);

            if (k == 2) /* no Windows machine at all */
                assert_int_equal(t->kind, BENCH_SCEN_LNX_REF);
            /* a chain needs three Windows machines in one tenant: never with 5 in 3 */
            assert_true(t->kind == BENCH_SCEN_WIN_REF || t->kind == BENCH_SCEN_LNX_REF);
        }
        bench_sim_free(s);
    }
    vg_arena_destroy(a);
}

/* Bound: 256 bytes of generator state per machine at 100,000 machines. */
static void test_memory_per_machine(void **state)
{
    struct bench_sim_opts o;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 16);
    Vigil__TelemetryBatch *b;
    size_t bytes;
    int i;

    (void)state;
    bench_sim_opts_default(&o);
    o.machines = 100000;
    o.tenants = 100;
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    for (i = 0; i < 20000; i++) {
        assert_int_equal(bench_sim_next(s, a, &b), 1);
        vg_arena_reset(a);
    }
    bytes = bench_sim_state_bytes(s);
    print_message("  %zu bytes for %u machines: %.1f a machine (machine struct + heap %zu)\n",
                  bytes, o.machines, (double)bytes / o.machines, bench_sim_machine_bytes());
    assert_true(bench_sim_machine_bytes() <= 240);
    assert_true(bytes / o.machines < 256);
    assert_true(bytes >= (size_t)o.machines * bench_sim_machine_bytes());
    bench_sim_free(s);
    vg_arena_destroy(a);
}

/* Speed is printed, never asserted: machines differ. */
static void test_speed(void **state)
{
    struct bench_sim_opts o;
    bench_sim *s;
    vg_arena *a = vg_arena_new(1 << 20);
    Vigil__TelemetryBatch *b;
    uint64_t n = 0, bytes = 0, t0, t1, t2;
    int rc;

    (void)state;
    bench_sim_opts_default(&o);
    o.machines = 10000;
    o.duration_us = 20 * VG_US_PER_SEC;
    o.events_per_machine_per_sec = 10;
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    t0 = vg_mono_ns();
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        n += b->n_events;
        vg_arena_reset(a);
    }
    t1 = vg_mono_ns();
    assert_int_equal(rc, 0);
    bench_sim_free(s);
    assert_int_equal(bench_sim_new(&o, &s, NULL, 0), 0);
    vg_arena_reset(a);
    while ((rc = bench_sim_next(s, a, &b)) == 1) {
        uint8_t *buf;
        size_t len;

        assert_int_equal(bench_sim_pack(b, a, &buf, &len), 0);
        bytes += len;
        vg_arena_reset(a);
    }
    t2 = vg_mono_ns();
    print_message("  %llu events: generate %.2f M events/s; generate+pack %.2f M events/s, "
                  "%.0f bytes an event packed\n",
                  (unsigned long long)n, n / ((t1 - t0) / 1e3), n / ((t2 - t1) / 1e3),
                  (double)bytes / n);
    bench_sim_free(s);
    vg_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),  cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_invariants),   cmocka_unit_test(test_scenarios),
        cmocka_unit_test(test_no_scenarios), cmocka_unit_test(test_memory_per_machine),
        cmocka_unit_test(test_tiny),         cmocka_unit_test(test_speed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
