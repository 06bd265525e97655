/*
 * state.c - a machine's correlator state as a changelog snapshot (state.h): building many
 * snapshots in one pass over the process table, decoding them defensively, restoring them.
 *
 * THREAD SAFETY: see state.h. cor_snap_build and cor_snap_restore run on the shard thread
 * that owns the table and the correlation state (@locality shard thread).
 */
#include "state.h"

#include <stdio.h>
#include <string.h>

#include "vg.h"

struct snap_ctx {
    struct vg_u64map idx; /* mkey -> request index + 1 */
    struct cor_snap_req *reqs;
    bool enomem;
};

static bool snap_wanted(uint64_t mkey, void *ctx);
static void snap_collect(const cor_proc *p, void *ctx);
static int snap_one(const cor_corrstate *cs, struct cor_snap_req *r, bool live_only,
                    size_t max_bytes);

/* ---- public ----------------------------------------------------------------------- */

size_t cor_snap_build(const cor_proctab *pt, const cor_corrstate *cs, struct cor_snap_req *reqs,
                      size_t n, size_t max_bytes)
{
    struct snap_ctx c = {.reqs = reqs};
    size_t failed = 0;

    if (max_bytes == 0)
        max_bytes = COR_SNAP_MAX_BYTES;
    for (size_t i = 0; i < n; i++) {
        reqs[i].val = NULL;
        reqs[i].len = 0;
        reqs[i].rc = 0;
        reqs[i].procs = NULL;
        reqs[i].nprocs = reqs[i].capprocs = 0;
    }
    if (vg_u64map_init(&c.idx, n ? n : 1) < 0)
        goto out_enomem;
    for (size_t i = 0; i < n; i++)
        if (vg_u64map_put(&c.idx, reqs[i].mkey, (void *)(uintptr_t)(i + 1)) < 0)
            goto out_enomem;
    /* One pass over the table for all machines: a checkpoint snapshots many at once. */
    cor_proctab_foreach_if(pt, snap_wanted, snap_collect, &c);
    if (c.enomem)
        goto out_enomem;
    for (size_t i = 0; i < n; i++) {
        struct cor_snap_req *r = &reqs[i];

        r->rc = snap_one(cs, r, false, max_bytes);
        if (r->rc == -VG_EFULL) /* a busy machine: its live processes matter most */
            r->rc = snap_one(cs, r, true, max_bytes);
        failed += r->rc < 0;
    }
    goto out_free;

out_enomem:
    for (size_t i = 0; i < n; i++)
        reqs[i].rc = -VG_ENOMEM;
    failed = n;
out_free:
    for (size_t i = 0; i < n; i++) {
        vg_free(reqs[i].procs);
        reqs[i].procs = NULL;
    }
    if (c.idx.keys != NULL)
        vg_u64map_free(&c.idx);
    return failed;
}

size_t cor_snap_key(const char *tenant, const char *machine, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%zu:%s|%s", strlen(tenant), tenant, machine);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int cor_snap_decode(const void *buf, size_t len, Vigil__MachineState **out, char *reason,
                    size_t reasonlen)
{
    Vigil__MachineState *ms;
    const char *why = NULL;

    *out = NULL;
    ms = buf != NULL && len > 0 ? vigil__machine_state__unpack(NULL, len, buf) : NULL;
    if (ms == NULL) {
        snprintf(reason, reasonlen, "not a MachineState (%zu bytes)", len);
        return -VG_EDECODE;
    }
    if (ms->version != COR_SNAP_VERSION)
        why = "unknown snapshot version";
    else if (ms->tenant_id[0] == '\0' || ms->machine_id[0] == '\0')
        why = "snapshot without tenant or machine id";
    for (size_t i = 0; why == NULL && i < ms->n_processes; i++)
        if (ms->processes[i]->record == NULL || ms->processes[i]->record->process == NULL ||
            ms->processes[i]->record->process->pid == 0)
            why = "snapshot process without pid";
    if (why != NULL) {
        snprintf(reason, reasonlen, "%s (version %u)", why, ms->version);
        vigil__machine_state__free_unpacked(ms, NULL);
        return -VG_EDECODE;
    }
    *out = ms;
    return 0;
}

void cor_snap_state_free(Vigil__MachineState *ms)
{
    if (ms != NULL)
        vigil__machine_state__free_unpacked(ms, NULL);
}

int cor_snap_restore(cor_proctab *pt, cor_corrstate *cs, const Vigil__MachineState *ms,
                     bool drop_procs, struct cor_snap_restore_stats *st)
{
    uint64_t mkey;
    size_t skipped = 0, procs = 0;
    int rc = 0;

    if (pt == NULL || ms == NULL)
        return -VG_EINVAL;
    mkey = vg_machine_key(ms->tenant_id, ms->machine_id);
    if (drop_procs)
        cor_proctab_drop_machine(pt, mkey);
    /* Parents may come after their children: the table links them as they arrive. */
    for (size_t i = 0; i < ms->n_processes; i++) {
        const Vigil__SnapProcess *sp = ms->processes[i];

        if (cor_proctab_upsert_record(pt, mkey, sp->record, sp->seen_us) != NULL)
            procs++;
        else
            skipped++;
    }
    if (cs != NULL && ms->corr != NULL)
        rc = cor_corrstate_import(cs, mkey, ms->tenant_id, ms->machine_id, ms->corr, &skipped);
    else if (cs != NULL)
        cor_corrstate_drop_machine(cs, mkey);
    if (st != NULL) {
        st->procs += procs;
        st->skipped += skipped;
    }
    return rc;
}

/* ---- helpers ---------------------------------------------------------------------- */

static bool snap_wanted(uint64_t mkey, void *ctx)
{
    struct snap_ctx *c = ctx;

    return vg_u64map_get(&c->idx, mkey) != NULL;
}

static void snap_collect(const cor_proc *p, void *ctx)
{
    struct snap_ctx *c = ctx;
    struct cor_snap_req *r = &c->reqs[(uintptr_t)vg_u64map_get(&c->idx, cor_proc_mkey(p)) - 1];

    if (r->nprocs == r->capprocs) {
        size_t cap = r->capprocs ? r->capprocs * 2 : 16;
        const cor_proc **n = vg_realloc(r->procs, cap * sizeof(*n));

        if (n == NULL) {
            c->enomem = true;
            return;
        }
        r->procs = n;
        r->capprocs = cap;
    }
    r->procs[r->nprocs++] = p;
}

/* Packs one machine's snapshot into r->val. 0 (val NULL when there is no state),
 * -VG_EFULL, -VG_ENOMEM. */
static int snap_one(const cor_corrstate *cs, struct cor_snap_req *r, bool live_only,
                    size_t max_bytes)
{
    Vigil__MachineState ms = VIGIL__MACHINE_STATE__INIT;
    Vigil__CorrMachineState corr;
    vg_arena *a = vg_arena_new(16384);
    int rc = 0, have;

    r->val = NULL;
    r->len = 0;
    if (a == NULL)
        return -VG_ENOMEM;
    have = cor_corrstate_export(cs, r->mkey, a, &corr);
    ms.processes = vg_arena_alloc(a, (r->nprocs ? r->nprocs : 1) * sizeof(*ms.processes));
    if (have < 0 || ms.processes == NULL) {
        rc = -VG_ENOMEM;
        goto out_arena;
    }
    for (size_t i = 0; i < r->nprocs; i++) {
        Vigil__SnapProcess *sp = vg_arena_alloc(a, sizeof(*sp));
        Vigil__ProcessRecord *rec = vg_arena_alloc(a, sizeof(*rec));
        Vigil__ProcessRef *ref = vg_arena_alloc(a, sizeof(*ref));

        if (sp == NULL || rec == NULL || ref == NULL) {
            rc = -VG_ENOMEM;
            goto out_arena;
        }
        if (live_only && cor_proc_exited(r->procs[i]))
            continue;
        vigil__snap_process__init(sp);
        cor_proc_to_record(r->procs[i], rec, ref);
        sp->record = rec;
        sp->seen_us = cor_proc_seen_us(r->procs[i]);
        ms.processes[ms.n_processes++] = sp;
    }
    if (ms.n_processes == 0 && have == 0)
        goto out_arena; /* nothing: the caller writes a tombstone if it wrote a snapshot */
    ms.version = COR_SNAP_VERSION;
    ms.tenant_id = (char *)r->tenant; /* protobuf-c wants char *; only read by pack */
    ms.machine_id = (char *)r->machine;
    ms.last_event_us = r->last_event_us;
    ms.last_seq = r->last_seq;
    ms.corr = have > 0 ? &corr : NULL;
    ms.taken_us = vg_now_us();
    r->len = vigil__machine_state__get_packed_size(&ms);
    if (r->len > max_bytes) {
        r->len = 0;
        rc = -VG_EFULL;
        goto out_arena;
    }
    if ((r->val = vg_malloc(r->len ? r->len : 1)) == NULL) {
        r->len = 0;
        rc = -VG_ENOMEM;
        goto out_arena;
    }
    vigil__machine_state__pack(&ms, r->val);

out_arena:
    vg_arena_destroy(a);
    return rc;
}
