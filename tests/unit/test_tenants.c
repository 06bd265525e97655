/*
 * test_tenants.c - tenant isolation as a property over random multi-tenant streams.
 *
 * For several seeds, a seeded generator makes event streams for machines of several
 * tenants, among them the same machine id under two tenants with the same sequence
 * numbers, event times, process ids and creation times (so that anything keyed by machine
 * id alone, rather than by vg_machine_key(tenant, machine), mixes them). Batches of random
 * size are interleaved at random, some delivered twice, and run through two in-process
 * shards (cor_shard_process, built-in rules and correlations of rules/), whose units are
 * written to a temporary RocksDB as ingest/pipeline.c's writer writes them. Every event
 * carries its tenant and machine in extra fields and every command line a tag, so that a
 * mix-up shows wherever it lands. Checked:
 *   - every sealed block's batch hashes to the block's machine key, and all its events
 *     carry that batch header's tenant and machine;
 *   - each (tenant, machine) timeline in storage holds exactly its own events, once, in
 *     order; its machine record names its own tenant; duplicates counted equal the events
 *     delivered twice;
 *   - every alert names a (tenant, machine) that exists, its evidence events are events of
 *     that stream, its process tree holds only that tenant's processes, no alert id is used
 *     by two tenants, and a tenant's alert index returns only its alerts;
 *   - the alerts that must fire do fire (so the checks above are not vacuous);
 *   - the incident engine, fed every alert, never puts alerts of two tenants in one
 *     incident.
 * The shard does not check machine ownership (ingest/pipeline.c ing_owner_ok sends a
 * batch that claims another tenant for a known machine id to the dead-letter topic): at
 * shard level the property is isolation by machine key.
 *
 * THREAD MODEL: single-threaded; the shards are never started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corr.h"
#include "correlate.h"
#include "incident.h"
#include "ingest.h"
#include "rules.h"
#include "storage.h"
#include "vg.h"
#include "vgtest.h"

#define NSHARDS    2
#define NOW_US     (INT64_C(1800000000) * VG_US_PER_SEC)
#define T0_US      (INT64_C(1767600000) * VG_US_PER_SEC) /* 2026-01-05T08:00:00Z */
#define STEP_US    (250 * INT64_C(1000))
#define MAX_EV     160
#define KEY_TENANT "vgtest_tenant"
#define KEY_MACH   "vgtest_machine"
#define SHARED_SHA "a3f1c2e4b5d6978812345678901234567890abcdefabcdefabcdef0123456789"

#define RULE_WIN_TEST "5b0c8e1a-7d3f-4c2e-9a61-3f2d8b7e4c10"
#define RULE_LSASS    "4a91c3e8-6b2d-4f70-9e5a-1d37b8c20e64"
#define RULE_LNX_CORR "5b0e7d1a-8c3f-4e62-9a47-2f6d1c8b3e90"

/* ---- a seeded generator ------------------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

/* ---- streams ------------------------------------------------------------------------ */

enum trig { TR_WIN_TEST = 0, TR_LSASS, TR_LNX, TR__COUNT };

struct stream {
    const char *tenant, *machine;
    Vigil__Os os;
    uint64_t mkey;
    char tag[160];            /* appended to every command line */
    Vigil__Event *ev[MAX_EV]; /* ev[i] has seq i + 1 */
    size_t nev, sent;         /* generated; delivered so far */
    uint8_t *last;            /* the last batch delivered, for a re-delivery */
    size_t last_len;
    unsigned trig[TR__COUNT];   /* triggers generated */
    unsigned alerts[TR__COUNT]; /* alerts seen for them */
    Vigil__ProcessRef *root;    /* explorer.exe / the login shell */
};

struct world {
    vg_arena *a; /* every generated event */
    struct stream *st;
    size_t nst;
};

static char *wdup(struct world *w, const char *s)
{
    char *p = vg_arena_strndup(w->a, s, strlen(s));

    assert_non_null(p);
    return p;
}

static Vigil__ProcessRef *proc_new(struct world *w, struct stream *s, uint32_t pid, int64_t ctime,
                                   const char *image, const char *cmd)
{
    Vigil__ProcessRef *p = vg_arena_alloc(w->a, sizeof(*p));
    char buf[512];

    assert_non_null(p);
    vigil__process_ref__init(p);
    snprintf(buf, sizeof(buf), "%s %s", cmd, s->tag);
    p->pid = pid;
    p->creation_time_us = ctime;
    p->image = wdup(w, image);
    p->command_line = wdup(w, buf);
    p->account = "alice";
    p->sha256 = SHARED_SHA;
    return p;
}

/* A new event of stream s at the next sequence number, with the stream's markers. Times
 * and pids depend on the sequence number only, so that the same machine id under two
 * tenants shows the same pids and creation times. */
static Vigil__Event *ev_new(struct world *w, struct stream *s, Vigil__ProcessRef *actor)
{
    Vigil__Event *e = vg_arena_alloc(w->a, sizeof(*e));
    Vigil__KeyValue **kv = vg_arena_alloc(w->a, 2 * sizeof(*kv));

    assert_true(s->nev < MAX_EV);
    assert_non_null(e);
    assert_non_null(kv);
    vigil__event__init(e);
    e->seq = s->nev + 1;
    e->ts_us = T0_US + (int64_t)e->seq * STEP_US;
    e->actor = actor;
    for (int i = 0; i < 2; i++) {
        kv[i] = vg_arena_alloc(w->a, sizeof(**kv));
        assert_non_null(kv[i]);
        vigil__key_value__init(kv[i]);
        kv[i]->key = i == 0 ? KEY_TENANT : KEY_MACH;
        kv[i]->value = (char *)(i == 0 ? s->tenant : s->machine);
    }
    e->extra = kv;
    e->n_extra = 2;
    s->ev[s->nev++] = e;
    return e;
}

/* parent starts image: a process creation; returns the child. */
static Vigil__ProcessRef *spawn(struct world *w, struct stream *s, Vigil__ProcessRef *parent,
                                const char *image, const char *cmd)
{
    Vigil__Event *e = ev_new(w, s, parent);
    Vigil__ProcessCreated *pc = vg_arena_alloc(w->a, sizeof(*pc));

    assert_non_null(pc);
    vigil__process_created__init(pc);
    pc->process = proc_new(w, s, 4000 + (uint32_t)e->seq, e->ts_us, image, cmd);
    e->kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    e->process_created = pc;
    return pc->process;
}

static void file_ev(struct world *w, struct stream *s)
{
    Vigil__Event *e = ev_new(w, s, s->root);
    Vigil__FileEvent *f = vg_arena_alloc(w->a, sizeof(*f));

    assert_non_null(f);
    vigil__file_event__init(f);
    f->op = VIGIL__FILE_OP__FILE_CREATED;
    f->path = s->os == VIGIL__OS__OS_WINDOWS ? "C:\\Users\\Public\\payload.bin" : "/tmp/payload";
    f->sha256 = SHARED_SHA;
    e->kind_case = VIGIL__EVENT__KIND_FILE;
    e->file = f;
}

static void net_ev(struct world *w, struct stream *s)
{
    Vigil__Event *e = ev_new(w, s, s->root);
    Vigil__NetworkConnection *n = vg_arena_alloc(w->a, sizeof(*n));

    assert_non_null(n);
    vigil__network_connection__init(n);
    n->protocol = VIGIL__PROTOCOL__PROTOCOL_TCP;
    n->local_ip = "10.1.2.3";
    n->local_port = 50000;
    n->remote_ip = "203.0.113.7"; /* the same address in every tenant */
    n->remote_port = 443;
    e->kind_case = VIGIL__EVENT__KIND_NETWORK;
    e->network = n;
}

/* One random step of a Windows or Linux machine: benign activity or a trigger. */
static void step(struct world *w, struct stream *s)
{
    uint32_t r = rnd_below(10);
    Vigil__ProcessRef *p;

    if (s->os == VIGIL__OS__OS_WINDOWS) {
        switch (r) {
        case 0:
            p = spawn(w, s, s->root, "C:\\Windows\\System32\\cmd.exe", "cmd.exe /c");
            spawn(w, s, p, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                  "powershell.exe -NoExit -ExecutionPolicy Bypass -WindowStyle Hidden "
                  "(New-Object System.Net.WebClient).DownloadFile('http://127.0.0.1/1.exe', "
                  "'C:\\\\test-MDATP-test\\\\invoice.exe')");
            s->trig[TR_WIN_TEST]++;
            return;
        case 1:
            spawn(w, s, s->root, "C:\\Tools\\procdump.exe", "procdump.exe -ma lsass.exe out.dmp");
            s->trig[TR_LSASS]++;
            return;
        case 2:
            file_ev(w, s);
            return;
        case 3:
            net_ev(w, s);
            return;
        default:
            spawn(w, s, s->root, "C:\\Windows\\System32\\notepad.exe", "notepad.exe notes.txt");
            return;
        }
    }
    switch (r) {
    case 0:
        p = spawn(w, s, s->root, "/usr/bin/bash", "bash ./enum.sh");
        spawn(w, s, p, "/usr/bin/find", "find / -name id_rsa");
        spawn(w, s, p, "/usr/bin/cat", "cat /etc/shadow");
        s->trig[TR_LNX]++;
        return;
    case 1:
        file_ev(w, s);
        return;
    case 2:
        net_ev(w, s);
        return;
    default:
        spawn(w, s, s->root, "/usr/bin/ls", "ls -la /var/log");
        return;
    }
}

static void stream_gen(struct world *w, struct stream *s, const char *tenant, const char *machine,
                       Vigil__Os os)
{
    Vigil__ProcessRef *boot;
    size_t want = 40 + rnd_below(MAX_EV - 50);

    memset(s, 0, sizeof(*s));
    s->tenant = tenant;
    s->machine = machine;
    s->os = os;
    s->mkey = vg_machine_key(tenant, machine);
    snprintf(s->tag, sizeof(s->tag), "#t=%s;m=%s;", tenant, machine);
    boot = proc_new(w, s, 400, T0_US - VG_US_PER_SEC,
                    os == VIGIL__OS__OS_WINDOWS ? "C:\\Windows\\System32\\userinit.exe"
                                                : "/usr/sbin/sshd",
                    os == VIGIL__OS__OS_WINDOWS ? "userinit.exe" : "sshd: alice");
    s->root = spawn(w, s, boot,
                    os == VIGIL__OS__OS_WINDOWS ? "C:\\Windows\\explorer.exe" : "/usr/bin/bash",
                    os == VIGIL__OS__OS_WINDOWS ? "explorer.exe" : "-bash");
    while (s->nev + 3 <= want)
        step(w, s);
}

/* The machines: three tenants, three machines each, and two machine ids that two tenants
 * both use. */
static void world_gen(struct world *w, const char *const *tenants, size_t ntenants)
{
    static char names[16][48];
    size_t n = 0;

    w->a = vg_arena_new(1 << 20);
    assert_non_null(w->a);
    w->st = vg_calloc(ntenants * 3 + 4, sizeof(*w->st));
    assert_non_null(w->st);
    for (size_t t = 0; t < ntenants; t++) {
        for (int m = 0; m < 3; m++) {
            snprintf(names[n], sizeof(names[n]), "%s-%d", m < 2 ? "WIN" : "lnx", m);
            stream_gen(w, &w->st[n], tenants[t], names[n],
                       m < 2 ? VIGIL__OS__OS_WINDOWS : VIGIL__OS__OS_LINUX);
            n++;
        }
    }
    /* Machine ids above repeat across tenants too ("WIN-0" of every tenant); these two
     * are in addition the exact same stream shape under two tenants. */
    stream_gen(w, &w->st[n++], tenants[0], "shared-win", VIGIL__OS__OS_WINDOWS);
    stream_gen(w, &w->st[n++], tenants[1], "shared-win", VIGIL__OS__OS_WINDOWS);
    stream_gen(w, &w->st[n++], tenants[1], "shared-lnx", VIGIL__OS__OS_LINUX);
    stream_gen(w, &w->st[n++], tenants[ntenants - 1], "shared-lnx", VIGIL__OS__OS_LINUX);
    w->nst = n;
}

/* Two streams of the same shape (the generator restarted from one seed for each). */
static void world_gen_pair(struct world *w, uint64_t seed, const char *const *pair)
{
    w->a = vg_arena_new(1 << 20);
    assert_non_null(w->a);
    w->st = vg_calloc(2, sizeof(*w->st));
    assert_non_null(w->st);
    for (size_t i = 0; i < 2; i++) {
        g_rng = seed;
        stream_gen(w, &w->st[i], pair[2 * i], pair[2 * i + 1], VIGIL__OS__OS_WINDOWS);
    }
    w->nst = 2;
}

static void world_free(struct world *w)
{
    for (size_t i = 0; i < w->nst; i++)
        vg_free(w->st[i].last);
    vg_free(w->st);
    vg_arena_destroy(w->a);
}

static struct stream *stream_find(struct world *w, const char *tenant, const char *machine)
{
    for (size_t i = 0; i < w->nst; i++)
        if (strcmp(w->st[i].tenant, tenant) == 0 && strcmp(w->st[i].machine, machine) == 0)
            return &w->st[i];
    return NULL;
}

static const char *kv_get(const Vigil__Event *e, const char *key)
{
    for (size_t i = 0; i < e->n_extra; i++)
        if (strcmp(e->extra[i]->key, key) == 0)
            return e->extra[i]->value;
    return NULL;
}

/* ---- shards, as the pipeline drives them --------------------------------------------- */

struct item {
    struct cor_in in; /* first: the shard hands back this pointer */
    vg_arena *a;
};

static void release_cb(void *c, struct cor_in *in)
{
    (void)c;
    if (in->is_barrier)
        return; /* on the test's stack */
    vg_arena_destroy(((struct item *)in)->a);
    vg_free(in);
}

static void reject_cb(void *c, struct cor_in *in, const char *reason)
{
    (void)c;
    (void)in;
    fail_msg("batch rejected: %s", reason);
}

static void feed(cor_shard **sh, const void *buf, size_t len)
{
    struct item *it = vg_calloc(1, sizeof(*it));
    struct ing_limits l;
    struct ing_batch b;
    char reason[256];
    void *copy;

    assert_non_null(it);
    it->a = vg_arena_new(len * 3 + 4096);
    assert_non_null(it->a);
    copy = vg_arena_alloc(it->a, len);
    assert_non_null(copy);
    memcpy(copy, buf, len);
    ing_limits_default(&l);
    if (ing_decode(copy, len, &l, NOW_US, it->a, &b, reason, sizeof(reason)) != 0)
        fail_msg("decode: %s", reason);
    it->in.batch = b.batch;
    it->in.raw = b.raw;
    it->in.raw_len = b.raw_len;
    it->in.mkey = vg_machine_key(b.batch->tenant_id, b.batch->machine_id);
    it->in.partition = -1;
    it->in.opaque = it;
    cor_shard_process(sh[it->in.mkey % NSHARDS], &it->in);
}

/* Every alert version seen, latest last: id -> packed alert. */
struct seen {
    char id[33];
    char tenant[64];
    uint8_t *packed;
    size_t len;
};

struct run {
    struct world *w;
    sto_db *db;
    sto_wbatch *wb;
    cor_shard *sh[NSHARDS];
    struct seen *alerts;
    size_t nalerts, cap;
    uint64_t barrier_id;
    uint64_t blocks;
};

/* A sealed block: its batch belongs to its machine key, and so does every event in it. */
static void check_block(struct run *r, const struct cor_block *blk)
{
    Vigil__TelemetryBatch *tb = NULL;

    assert_int_equal(sto_block_decode(blk->data, blk->len, NULL, &tb), 0);
    assert_int_equal(vg_machine_key(tb->tenant_id, tb->machine_id), blk->mkey);
    assert_non_null(stream_find(r->w, tb->tenant_id, tb->machine_id));
    assert_int_equal(tb->n_events, blk->nevents);
    for (size_t i = 0; i < tb->n_events; i++) {
        assert_string_equal(kv_get(tb->events[i], KEY_TENANT), tb->tenant_id);
        assert_string_equal(kv_get(tb->events[i], KEY_MACH), tb->machine_id);
    }
    vigil__telemetry_batch__free_unpacked(tb, NULL);
    r->blocks++;
}

/* An alert belongs to the stream it names: evidence events are that stream's, process
 * tree nodes carry that stream's tag (or no command line: a process the shard never saw
 * start), and its id is never another tenant's. */
static void check_alert(struct run *r, const Vigil__Alert *a)
{
    struct stream *s = stream_find(r->w, a->tenant_id, a->machine_id);
    struct seen *sn = NULL;

    if (s == NULL)
        fail_msg("alert %s names an unknown stream (%s, %s)", a->id, a->tenant_id, a->machine_id);
    assert_true(a->n_evidence > 0);
    for (size_t i = 0; i < a->n_evidence; i++) {
        uint64_t seq = a->evidence[i]->seq;

        assert_true(seq >= 1 && seq <= s->nev);
        assert_int_equal(a->evidence[i]->ts_us, s->ev[seq - 1]->ts_us);
    }
    for (size_t i = 0; i < a->n_process_tree; i++) {
        const char *cmd = a->process_tree[i]->command_line;

        if (cmd != NULL && cmd[0] != '\0' && strstr(cmd, s->tag) == NULL)
            fail_msg("alert %s of (%s, %s): process \"%s\" is not the stream's", a->id,
                     a->tenant_id, a->machine_id, cmd);
    }
    for (size_t i = 0; i < r->nalerts; i++)
        if (strcmp(r->alerts[i].id, a->id) == 0)
            sn = &r->alerts[i];
    if (sn != NULL) {
        if (strcmp(sn->tenant, a->tenant_id) != 0)
            fail_msg("alert id %s used by tenants %s and %s", a->id, sn->tenant, a->tenant_id);
        vg_free(sn->packed);
    } else {
        if (r->nalerts == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 64;
            r->alerts = vg_realloc(r->alerts, r->cap * sizeof(*r->alerts));
            assert_non_null(r->alerts);
        }
        sn = &r->alerts[r->nalerts++];
        snprintf(sn->id, sizeof(sn->id), "%s", a->id);
        snprintf(sn->tenant, sizeof(sn->tenant), "%s", a->tenant_id);
    }
    sn->len = vigil__alert__get_packed_size(a);
    sn->packed = vg_malloc(sn->len ? sn->len : 1);
    assert_non_null(sn->packed);
    vigil__alert__pack(a, sn->packed);
}

/* A barrier through both shards; their units checked and written as the writer does. */
static void barrier_round(struct run *r, bool seal_all)
{
    char err[256];
    struct cor_barrier *b = cor_barrier_new(++r->barrier_id, seal_all, NULL, 0, NSHARDS);

    assert_non_null(b);
    for (int i = 0; i < NSHARDS; i++) {
        struct cor_in in = {.is_barrier = true, .barrier = b};
        struct cor_unit *u;

        cor_shard_process(r->sh[i], &in);
        u = cor_shard_pop_unit(r->sh[i]);
        assert_non_null(u);
        for (size_t k = 0; k < u->nblocks; k++) {
            check_block(r, &u->blocks[k]);
            sto_put_block(r->wb, u->blocks[k].mkey, u->blocks[k].first_ts_us,
                          u->blocks[k].first_seq, u->blocks[k].data, u->blocks[k].len);
        }
        for (size_t k = 0; k < u->nmachines; k++)
            sto_put_machine(r->wb,
                            vg_machine_key(u->machines[k]->tenant_id, u->machines[k]->machine_id),
                            u->machines[k]);
        for (size_t k = 0; k < u->nalerts; k++) {
            check_alert(r, u->alerts[k].alert);
            sto_put_alert(r->wb, u->alerts[k].alert, false);
        }
        /* What the incident stage learns prevalence from names a machine under the tenant
         * it streams for, never another's. */
        for (size_t k = 0; k < u->nsightings; k++)
            if (stream_find(r->w, u->sightings[k]->tenant_id, u->sightings[k]->machine_id) == NULL)
                fail_msg("sightings of (%s, %s): no such stream", u->sightings[k]->tenant_id,
                         u->sightings[k]->machine_id);
        cor_unit_free(u);
    }
    assert_int_equal(sto_write(r->db, r->wb, err, sizeof(err)), 0);
    sto_wbatch_clear(r->wb);
}

/* Delivers every stream in random-size batches, interleaved at random; about one batch in
 * eight is delivered twice. Returns the number of events delivered twice. */
static uint64_t deliver(struct run *r)
{
    struct world *w = r->w;
    uint64_t twice = 0, batches = 0;

    for (;;) {
        size_t left = 0, pick;
        struct stream *s;
        Vigil__TelemetryBatch tb;
        size_t n;

        for (size_t i = 0; i < w->nst; i++)
            left += w->st[i].sent < w->st[i].nev;
        if (left == 0)
            break;
        pick = rnd_below((uint32_t)left);
        s = NULL;
        for (size_t i = 0; i < w->nst && s == NULL; i++)
            if (w->st[i].sent < w->st[i].nev && pick-- == 0)
                s = &w->st[i];
        n = 1 + rnd_below(12);
        if (n > s->nev - s->sent)
            n = s->nev - s->sent;
        vigil__telemetry_batch__init(&tb);
        tb.tenant_id = (char *)s->tenant;
        tb.machine_id = (char *)s->machine;
        tb.machine_name = (char *)s->machine;
        tb.os = s->os;
        tb.first_seq = s->ev[s->sent]->seq;
        tb.events = &s->ev[s->sent];
        tb.n_events = n;
        vg_free(s->last);
        s->last_len = vigil__telemetry_batch__get_packed_size(&tb);
        s->last = vg_malloc(s->last_len);
        assert_non_null(s->last);
        vigil__telemetry_batch__pack(&tb, s->last);
        feed(r->sh, s->last, s->last_len);
        s->sent += n;
        if (rnd_below(8) == 0) {
            feed(r->sh, s->last, s->last_len);
            twice += n;
        }
        if (++batches % 16 == 0)
            barrier_round(r, false);
    }
    barrier_round(r, true);
    return twice;
}

/* ---- what storage holds ------------------------------------------------------------- */

static void check_timeline(struct run *r, struct stream *s)
{
    Vigil__MachineRecord *m = NULL;
    sto_tl_iter *it = NULL;
    const Vigil__Event *e;
    uint64_t n = 0;
    int rc;

    assert_int_equal(
        sto_tl_open(r->db, s->mkey, T0_US - VG_US_PER_DAY, T0_US + VG_US_PER_DAY, false, &it), 0);
    while ((rc = sto_tl_next(it, &e)) == 1) {
        assert_true(n < s->nev);
        assert_int_equal(e->seq, n + 1);
        assert_int_equal(e->ts_us, s->ev[n]->ts_us);
        assert_string_equal(kv_get(e, KEY_TENANT), s->tenant);
        assert_string_equal(kv_get(e, KEY_MACH), s->machine);
        n++;
    }
    assert_int_equal(rc, 0);
    sto_tl_close(it);
    assert_int_equal(n, s->nev);
    assert_int_equal(sto_get_machine(r->db, s->mkey, &m), 0);
    assert_string_equal(m->tenant_id, s->tenant);
    assert_string_equal(m->machine_id, s->machine);
    assert_int_equal(m->last_seq, s->nev);
    vigil__machine_record__free_unpacked(m, NULL);
}

struct scan_ctx {
    const char *tenant;
    size_t n;
};

static bool scan_cb(void *ctx, const Vigil__Alert *a)
{
    struct scan_ctx *c = ctx;

    if (strcmp(a->tenant_id, c->tenant) != 0)
        fail_msg("tenant %s's alert index returned alert %s of %s", c->tenant, a->id, a->tenant_id);
    c->n++;
    return true;
}

/* ---- incidents ------------------------------------------------------------------------- */

static const char *alert_tenant(struct run *r, const char *id)
{
    for (size_t i = 0; i < r->nalerts; i++)
        if (strcmp(r->alerts[i].id, id) == 0)
            return r->alerts[i].tenant;
    return NULL;
}

static void check_incident(struct run *r, cor_incidents *ci, const char *id, const char *tenant,
                           size_t *multi)
{
    vg_arena *a = vg_arena_new(1 << 14);
    Vigil__Incident *inc = NULL;
    int rc;

    assert_non_null(a);
    rc = cor_incidents_get(ci, id, a, &inc);
    if (rc == -VG_ENOENT)
        goto out; /* merged away or split later in the drain */
    assert_int_equal(rc, 0);
    assert_string_equal(inc->tenant_id, tenant);
    for (size_t i = 0; i < inc->n_alert_ids; i++) {
        const char *t = alert_tenant(r, inc->alert_ids[i]);

        assert_non_null(t);
        if (strcmp(t, inc->tenant_id) != 0)
            fail_msg("incident %s of %s holds alert %s of %s", inc->id, inc->tenant_id,
                     inc->alert_ids[i], t);
    }
    *multi += inc->n_alert_ids > 1;
out:
    vg_arena_destroy(a);
}

static void check_incidents(struct run *r)
{
    cor_incidents *ci = cor_incidents_new(NULL);
    struct cor_incident_change ch;
    size_t multi = 0, changes = 0;

    assert_non_null(ci);
    for (size_t i = 0; i < r->nalerts; i++) {
        Vigil__Alert *a = vigil__alert__unpack(NULL, r->alerts[i].len, r->alerts[i].packed);
        char incid[COR_INCIDENT_ID_MAX];

        assert_non_null(a);
        assert_int_equal(cor_incidents_add(ci, a, incid, NULL), 0);
        vigil__alert__free_unpacked(a, NULL);
    }
    while (cor_incidents_next_change(ci, &ch)) {
        changes++;
        if (ch.kind == COR_INCIDENT_UPDATED)
            check_incident(r, ci, ch.id, ch.tenant, &multi);
    }
    assert_true(changes > 0);
    assert_true(multi > 0); /* alerts do link: the check above is not vacuous */
    cor_incidents_free(ci);
}

/* ---- the property --------------------------------------------------------------------- */

static cor_ruleset *g_rules;
static cor_corrset *g_corr;

static int rules_setup(void **state)
{
    const char *dir = VG_SOURCE_DIR "/rules";
    char err[256];

    (void)state;
    vg_log_set_level(VG_LOG_ERROR);
    if (cor_ruleset_load(&dir, 1, &g_rules, NULL, err, sizeof(err)) != 0 ||
        cor_corrset_load(&dir, 1, &g_corr, NULL, err, sizeof(err)) != 0) {
        print_error("rules: %s\n", err);
        return -1;
    }
    return 0;
}

static int rules_teardown(void **state)
{
    (void)state;
    cor_corrset_unref(g_corr);
    cor_ruleset_unref(g_rules);
    sto_thread_cleanup();
    return 0;
}

/* One run: the world of three tenants, or when pair is given (tenant, machine, tenant,
 * machine) two streams of the same shape. */
static void run_seed(uint64_t seed, const char *const *tenants, size_t ntenants,
                     const char *const *pair)
{
    struct world w = {0};
    struct run r = {.w = &w};
    struct sto_opts o = {0};
    struct cor_shard_stats st;
    uint64_t twice, dups = 0;
    char err[256], *dir = vgt_tmpdir("tenants");

    g_rng = seed;
    if (pair != NULL)
        world_gen_pair(&w, seed, pair);
    else
        world_gen(&w, tenants, ntenants);
    o.path = dir;
    assert_int_equal(sto_open(&o, &r.db, err, sizeof(err)), 0);
    r.wb = sto_wbatch_new();
    assert_non_null(r.wb);
    for (uint32_t i = 0; i < NSHARDS; i++) {
        struct cor_shard_cfg cfg = {
            .index = i,
            .nshards = NSHARDS,
            .rules = g_rules,
            .corr = g_corr,
            .db = r.db,
            .block_max_events = 24,
            .sightings = true,
            .release = release_cb,
            .reject = reject_cb,
        };
        assert_int_equal(cor_shard_new(&cfg, &r.sh[i]), 0);
    }

    twice = deliver(&r);

    for (uint32_t i = 0; i < NSHARDS; i++) {
        cor_shard_get_stats(r.sh[i], &st);
        dups += st.duplicates;
    }
    assert_int_equal(dups, twice);
    assert_true(r.blocks > 0);
    for (size_t i = 0; i < w.nst; i++)
        check_timeline(&r, &w.st[i]);

    /* The alerts that must fire did, each under its own stream. */
    for (size_t i = 0; i < r.nalerts; i++) {
        Vigil__Alert *a = vigil__alert__unpack(NULL, r.alerts[i].len, r.alerts[i].packed);
        struct stream *s;

        assert_non_null(a);
        s = stream_find(&w, a->tenant_id, a->machine_id);
        assert_non_null(s);
        if (strcmp(a->rule_id, RULE_WIN_TEST) == 0)
            s->alerts[TR_WIN_TEST]++;
        else if (strcmp(a->rule_id, RULE_LSASS) == 0)
            s->alerts[TR_LSASS]++;
        else if (strcmp(a->rule_id, RULE_LNX_CORR) == 0)
            s->alerts[TR_LNX]++;
        vigil__alert__free_unpacked(a, NULL);
    }
    for (size_t i = 0; i < w.nst; i++) {
        struct stream *s = &w.st[i];

        /* One alert per trigger: each anchors on its own process (or process tree). */
        assert_int_equal(s->alerts[TR_WIN_TEST], s->trig[TR_WIN_TEST]);
        assert_int_equal(s->alerts[TR_LSASS], s->trig[TR_LSASS]);
        if (s->trig[TR_LNX] > 0)
            assert_true(s->alerts[TR_LNX] > 0);
    }
    for (size_t t = 0; t < ntenants; t++) {
        struct scan_ctx c = {.tenant = tenants[t]};
        size_t want = 0;

        assert_int_equal(sto_scan_alerts(r.db, tenants[t], 0, INT64_MAX, scan_cb, &c), 0);
        for (size_t i = 0; i < r.nalerts; i++)
            want += strcmp(r.alerts[i].tenant, tenants[t]) == 0;
        assert_true(want > 0);
        assert_int_equal(c.n, want);
    }
    check_incidents(&r);
    print_message("seed %llu: %zu streams, %llu blocks, %zu alerts, %llu events delivered twice\n",
                  (unsigned long long)seed, w.nst, (unsigned long long)r.blocks, r.nalerts,
                  (unsigned long long)twice);

    for (uint32_t i = 0; i < NSHARDS; i++)
        cor_shard_destroy(r.sh[i]);
    for (size_t i = 0; i < r.nalerts; i++)
        vg_free(r.alerts[i].packed);
    vg_free(r.alerts);
    sto_wbatch_destroy(r.wb);
    sto_close(r.db);
    vgt_rmtree(dir);
    free(dir);
    world_free(&w);
}

/* Five seeds over three tenants; "WIN-0".."lnx-2" exist under every tenant, "shared-win"
 * and "shared-lnx" under two with identical stream shapes. */
static void test_tenants_isolation(void **state)
{
    static const char *const tenants[] = {"tenant-a", "tenant-b", "tenant-c"};
    static const uint64_t seeds[] = {1, 2, 3, 0x5eed, 20260105};

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_SIZE(seeds); i++)
        run_seed(seeds[i], tenants, VG_ARRAY_SIZE(tenants), NULL);
}

/* Tenant and machine ids may hold any UTF-8, '|' included. ("tenant-p|x", "m1") and
 * ("tenant-p", "x|m1") are different machines of different tenants, with different machine
 * keys; their alerts must stay apart too. (Regression: alert ids once hashed the ids joined
 * by '|', and these two collided.) */
static void test_tenants_separator_in_ids(void **state)
{
    static const char *const pair[] = {"tenant-p|x", "m1", "tenant-p", "x|m1"};
    static const char *const tenants[] = {"tenant-p|x", "tenant-p"};

    (void)state;
    run_seed(7, tenants, VG_ARRAY_SIZE(tenants), pair);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_isolation),
        cmocka_unit_test(test_tenants_separator_in_ids),
    };

    return cmocka_run_group_tests(tests, rules_setup, rules_teardown);
}
