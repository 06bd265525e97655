/*
 * proctab.c - the per-shard process table (see proctab.h for the model).
 *
 * Three chained hash indexes, all intrusive so that no lookup allocates:
 *   - procs, by hash(mkey, pid), chained through hnext. Every process of that pid (pid reuse)
 *     sits in one chain, so exact lookup and find_pid walk the same short chain;
 *   - waiting, by hash(mkey, ppid), holding processes whose recorded parent is absent,
 *     chained through the sibling links (a waiting process is in no child list);
 *   - strings, by content, the refcounted interned string groups.
 * Lists of children and waiting chains keep "prev of the first is the last", so appending
 * and removing are O(1) and children stay in link order.
 *
 * Every process counts its live (not exited) descendants in nlive; link, unlink and exit
 * walk the ancestors to keep the counts (O(depth)). Parent links never form a cycle: a link
 * that would is refused and counted.
 *
 * THREAD SAFETY: one shard thread owns a table and everything reached from it; no locks.
 */
#include "proctab.h"

#include <assert.h>
#include <string.h>

/* ---- private types ------------------------------------------------------------------- */

enum {
    PT_G_IMAGE = 0, /* image, sha256, sha1, md5, original file name */
    PT_G_USER,      /* account, integrity level, logon id */
    PT_G_CMD,       /* command line */
    PT_G_CWD,       /* current directory */
    PT_G__COUNT
};

#define PT_G_MAXN      5
#define PT_MIN_BUCKETS 64
#define PT_SEED        UINT64_C(0x70726f6374616231)
#define PT_ISTR_SEED   UINT64_C(0x697374722d736565)
#define PT_F_EXITED    0x1u /* exit recorded */
#define PT_F_QUEUED    0x2u /* on the exit queue */
#define PT_F_WAITING   0x4u /* in the waiting index */
#define PT_F_PRESUMED  0x8u /* exit presumed by expire_idle: undone if seen again */

/* An interned group of n strings, stored back to back after off[n], each NUL-terminated. */
struct cor_istr {
    struct cor_istr *next; /* hash chain */
    uint64_t hash;
    uint32_t refs;  /* processes using it */
    uint32_t n;     /* strings in the group */
    uint32_t dlen;  /* bytes of string data, NULs included */
    uint32_t off[]; /* offset of each string in the data */
};

struct cor_proc {
    struct cor_proc *hnext;    /* chain in procs */
    struct cor_proc *parent;   /* NULL: unknown, absent, or refused (cycle) */
    struct cor_proc *child;    /* first child; child->sib_prev is the last */
    struct cor_proc *sib_next; /* next sibling, or next in a waiting chain */
    struct cor_proc *sib_prev; /* previous; the first's points at the last */
    struct cor_proc *qnext;    /* next on the exit queue */
    struct cor_istr *str[PT_G__COUNT];
    uint64_t mkey;
    int64_t ctime;   /* creation time, µs; 0 if never known */
    int64_t pctime;  /* recorded parent's creation time */
    int64_t exit_us; /* 0 while running */
    int64_t seen_us; /* newest time seen */
    uint32_t pid;
    uint32_t ppid; /* recorded parent pid; (0, 0) is unknown */
    int32_t exit_code;
    uint32_t nlive; /* live descendants */
    uint32_t flags; /* PT_F_* */
};

struct cor_proctab {
    cor_proc **buckets; /* procs index */
    size_t nbuckets;    /* power of two */
    size_t count;
    size_t min_buckets;  /* never shrink below the size asked for */
    cor_proc **wbuckets; /* waiting index */
    size_t nwbuckets;
    size_t nwaiting;
    struct cor_istr **ibuckets; /* string index */
    size_t nibuckets;
    size_t nstr;
    size_t str_bytes;
    cor_proc *qhead, *qtail; /* exit queue, in exit arrival order */
    size_t nqueued;
    size_t idle_cursor; /* next bucket expire_idle looks at */
    size_t bytes;       /* everything above that lives on the heap */
    struct cor_proctab_stats st;
};

/* Which group and slot each field lives in. */
static const struct {
    uint8_t g, i;
} pt_fmap[COR_PF__COUNT] = {
    [COR_PF_IMAGE] = {PT_G_IMAGE, 0},
    [COR_PF_SHA256] = {PT_G_IMAGE, 1},
    [COR_PF_SHA1] = {PT_G_IMAGE, 2},
    [COR_PF_MD5] = {PT_G_IMAGE, 3},
    [COR_PF_ORIGINAL_FILE_NAME] = {PT_G_IMAGE, 4},
    [COR_PF_ACCOUNT] = {PT_G_USER, 0},
    [COR_PF_INTEGRITY_LEVEL] = {PT_G_USER, 1},
    [COR_PF_LOGON_ID] = {PT_G_USER, 2},
    [COR_PF_COMMAND_LINE] = {PT_G_CMD, 0},
    [COR_PF_CURRENT_DIRECTORY] = {PT_G_CWD, 0},
};
static const uint8_t pt_gsize[PT_G__COUNT] = {5, 3, 1, 1};

/* ---- prototypes of helpers ----------------------------------------------------------- */

static uint64_t pt_hash(uint64_t mkey, uint32_t pid);
static size_t pt_pow2(size_t n);
static cor_proc **pt_bucket(const cor_proctab *pt, uint64_t mkey, uint32_t pid);
static int pt_resize_procs(cor_proctab *pt, size_t nb);
static int pt_resize_waiting(cor_proctab *pt, size_t nb);
static int pt_resize_strings(cor_proctab *pt, size_t nb);
static void pt_maybe_shrink(cor_proctab *pt);
static void pt_list_append(cor_proc **head, cor_proc *n);
static void pt_list_remove(cor_proc **head, cor_proc *n);
static int pt_waiting_add(cor_proctab *pt, cor_proc *n);
static void pt_waiting_remove(cor_proctab *pt, cor_proc *n);
static void pt_adopt_waiting(cor_proctab *pt, cor_proc *n);
static void pt_link_parent(cor_proctab *pt, cor_proc *n);
static void pt_link_child(cor_proc *parent, cor_proc *c);
static void pt_unlink_child(cor_proctab *pt, cor_proc *c);
static void pt_ancestors_sub(cor_proctab *pt, cor_proc *from, uint32_t delta);
static void pt_enqueue(cor_proctab *pt, cor_proc *p);
static void pt_revive(cor_proc *p);
static void pt_remove(cor_proctab *pt, cor_proc *p);
static void pt_free_proc(cor_proctab *pt, cor_proc *p);
static const char *pt_ref_field(const Vigil__ProcessRef *r, enum cor_pfield f);
static int pt_set_strings(cor_proctab *pt, cor_proc *p, const Vigil__ProcessRef *r);
static struct cor_istr *pt_intern(cor_proctab *pt, const char *const *v, uint32_t n, int *err);
static void pt_release(cor_proctab *pt, struct cor_istr *e);
static const char *pt_istr_get(const struct cor_istr *e, unsigned i);
static cor_proc *pt_create(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRef *ref,
                           int64_t ctime, int64_t seen_us);
static int pt_fill_node(vg_arena *a, const cor_proc *p, int32_t parent_index, bool trigger,
                        Vigil__ProcessNode **out);

/* ---- public: the table --------------------------------------------------------------- */

cor_proctab *cor_proctab_new(size_t expected)
{
    cor_proctab *pt = vg_calloc(1, sizeof(*pt));

    if (pt == NULL)
        return NULL;
    pt->bytes = sizeof(*pt);
    pt->min_buckets = pt_pow2(expected < PT_MIN_BUCKETS ? PT_MIN_BUCKETS : expected);
    if (pt_resize_procs(pt, pt->min_buckets) != 0 || pt_resize_waiting(pt, PT_MIN_BUCKETS) != 0 ||
        pt_resize_strings(pt, PT_MIN_BUCKETS) != 0) {
        cor_proctab_destroy(pt);
        return NULL;
    }
    return pt;
}

void cor_proctab_destroy(cor_proctab *pt)
{
    size_t i;
    cor_proc *p, *next;

    if (pt == NULL)
        return;
    /* Free nodes straight from the procs index: links between them no longer matter. */
    for (i = 0; i < pt->nbuckets; i++) {
        for (p = pt->buckets[i]; p != NULL; p = next) {
            next = p->hnext;
            pt_free_proc(pt, p);
        }
    }
    vg_free(pt->buckets);
    vg_free(pt->wbuckets);
    vg_free(pt->ibuckets);
    vg_free(pt);
}

cor_proc *cor_proctab_get(cor_proctab *pt, uint64_t mkey, uint32_t pid, int64_t ctime)
{
    cor_proc *p;

    for (p = *pt_bucket(pt, mkey, pid); p != NULL; p = p->hnext)
        if (p->pid == pid && p->ctime == ctime && p->mkey == mkey)
            return p;
    return NULL;
}

cor_proc *cor_proctab_find_pid(cor_proctab *pt, uint64_t mkey, uint32_t pid, int64_t ts_us)
{
    cor_proc *p, *best = NULL;

    for (p = *pt_bucket(pt, mkey, pid); p != NULL; p = p->hnext) {
        if (p->pid != pid || p->mkey != mkey || p->ctime > ts_us)
            continue;
        /* A presumed exit is a guess: an event naming the pid may still be this process. */
        if ((p->flags & (PT_F_EXITED | PT_F_PRESUMED)) == PT_F_EXITED && p->exit_us < ts_us)
            continue;
        if (best == NULL || p->ctime > best->ctime)
            best = p;
    }
    return best;
}

cor_proc *cor_proctab_upsert(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRef *ref,
                             uint32_t ppid, int64_t pctime, int64_t seen_us)
{
    cor_proc *p = NULL;

    if (pt == NULL || ref == NULL) {
        if (pt != NULL)
            pt->st.bad_input++;
        return NULL;
    }
    if (ref->creation_time_us == 0)
        p = cor_proctab_find_pid(pt, mkey, ref->pid, seen_us);
    if (p == NULL)
        p = cor_proctab_get(pt, mkey, ref->pid, ref->creation_time_us);
    if (p == NULL) {
        p = pt_create(pt, mkey, ref, ref->creation_time_us, seen_us);
        if (p == NULL)
            return NULL;
    } else {
        if (seen_us > p->seen_us)
            p->seen_us = seen_us;
        /* On failure the older strings stay: stale but consistent, and counted. */
        (void)pt_set_strings(pt, p, ref);
        if ((p->flags & PT_F_PRESUMED) && seen_us > p->exit_us)
            pt_revive(p);
    }
    if (ppid == 0 && pctime == 0)
        return p;
    if (p->ppid == 0 && p->pctime == 0) {
        p->ppid = ppid;
        p->pctime = pctime;
        pt_link_parent(pt, p);
    } else if (p->ppid != ppid || (p->pctime != pctime && pctime != 0)) {
        pt->st.bad_input++; /* a process has one parent: the first one recorded */
    }
    return p;
}

cor_proc *cor_proctab_on_event(cor_proctab *pt, uint64_t mkey, const Vigil__Event *ev)
{
    cor_proc *actor = NULL;
    Vigil__ProcessRef child;
    uint32_t ppid = 0;
    int64_t pctime = 0;

    if (pt == NULL || ev == NULL)
        return NULL;
    if (ev->actor != NULL) {
        actor = cor_proctab_upsert(pt, mkey, ev->actor, 0, 0, ev->ts_us);
        ppid = ev->actor->pid;
        pctime = actor != NULL ? actor->ctime : ev->actor->creation_time_us;
    }
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        if (ev->process_created == NULL || ev->process_created->process == NULL)
            return actor;
        child = *ev->process_created->process; /* shallow: only the creation time changes */
        if (child.creation_time_us == 0)
            child.creation_time_us = ev->ts_us;
        return cor_proctab_upsert(pt, mkey, &child, ppid, pctime, ev->ts_us);
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        if (actor != NULL && ev->process_exited != NULL)
            cor_proctab_exit(pt, actor, ev->ts_us, ev->process_exited->exit_code);
        return actor;
    default:
        return actor;
    }
}

void cor_proctab_exit(cor_proctab *pt, cor_proc *p, int64_t exit_us, int32_t code)
{
    if (p == NULL)
        return;
    if (p->flags & PT_F_EXITED) {
        if (p->flags & PT_F_PRESUMED) {
            /* The real exit replaces the guess; the live counts already took it. */
            p->flags &= ~PT_F_PRESUMED;
            p->exit_us = exit_us;
            p->exit_code = code;
            pt_enqueue(pt, p);
        }
        return;
    }
    p->flags |= PT_F_EXITED;
    p->exit_us = exit_us;
    p->exit_code = code;
    pt_ancestors_sub(pt, p->parent, 1);
    pt_enqueue(pt, p);
}

size_t cor_proctab_expire(cor_proctab *pt, int64_t now_us, int64_t window_us, size_t max_work)
{
    int64_t cutoff;
    size_t work, removed = 0;
    cor_proc *p;

    if (__builtin_sub_overflow(now_us, VG_MAX(window_us, 0), &cutoff))
        cutoff = INT64_MIN; /* a window reaching before time began: nothing is old enough */
    for (work = 0; work < max_work && pt->qhead != NULL; work++) {
        p = pt->qhead;
        if (p->exit_us >= cutoff)
            break;
        pt->qhead = p->qnext;
        if (pt->qhead == NULL)
            pt->qtail = NULL;
        p->qnext = NULL;
        p->flags &= ~PT_F_QUEUED;
        pt->nqueued--;
        if (p->nlive > 0 || !(p->flags & PT_F_EXITED))
            continue;
        /* re-queued when its last live descendant exits, or when it exits */ /* re-queued
                                                                                 when its
                                                                                 last live
                                                                                 descendant
                                                                                 exits */
        pt_remove(pt, p);
        removed++;
    }
    if (removed > 0)
        pt_maybe_shrink(pt);
    return removed;
}

size_t cor_proctab_expire_idle(cor_proctab *pt, int64_t now_us, int64_t idle_us, size_t max_work)
{
    int64_t cutoff;
    size_t work, presumed = 0;
    cor_proc *p;

    if (__builtin_sub_overflow(now_us, VG_MAX(idle_us, 0), &cutoff))
        cutoff = INT64_MIN;

    for (work = 0; work < max_work; work++) {
        if (pt->idle_cursor >= pt->nbuckets)
            pt->idle_cursor = 0; /* wrapped, or the index shrank under the cursor */
        for (p = pt->buckets[pt->idle_cursor]; p != NULL; p = p->hnext) {
            if ((p->flags & PT_F_EXITED) || p->nlive > 0 || p->seen_us >= cutoff)
                continue;
            cor_proctab_exit(pt, p, p->seen_us, 0);
            p->flags |= PT_F_PRESUMED;
            presumed++;
        }
        pt->idle_cursor++;
    }
    pt->st.presumed_exits += presumed;
    return presumed;
}

void cor_proctab_drop_if(cor_proctab *pt, bool (*pred)(uint64_t mkey, void *ctx), void *ctx)
{
    cor_proc **pp, *p, *dead = NULL;
    size_t i;

    /* Parents, children and ancestors of a machine's processes are all of that machine, so
     * the doomed are unhashed and freed without tree bookkeeping; only the indexes shared
     * with other machines (procs, waiting, the exit queue) need unlinking. */
    for (i = 0; i < pt->nbuckets; i++) {
        pp = &pt->buckets[i];
        while ((p = *pp) != NULL) {
            if (pred(p->mkey, ctx)) {
                *pp = p->hnext;
                p->hnext = dead;
                dead = p;
            } else {
                pp = &p->hnext;
            }
        }
    }
    pp = &pt->qhead;
    pt->qtail = NULL;
    while ((p = *pp) != NULL) {
        if (pred(p->mkey, ctx)) {
            *pp = p->qnext;
            pt->nqueued--;
        } else {
            pt->qtail = p;
            pp = &p->qnext;
        }
    }
    while ((p = dead) != NULL) {
        dead = p->hnext;
        if (p->flags & PT_F_WAITING)
            pt_waiting_remove(pt, p);
        pt->st.removed++;
        pt_free_proc(pt, p);
    }
    pt_maybe_shrink(pt);
}

void cor_proctab_foreach_if(const cor_proctab *pt, bool (*pred)(uint64_t mkey, void *ctx),
                            void (*fn)(const cor_proc *p, void *ctx), void *ctx)
{
    for (size_t i = 0; pt != NULL && i < pt->nbuckets; i++)
        for (const cor_proc *p = pt->buckets[i]; p != NULL; p = p->hnext)
            if (pred(p->mkey, ctx))
                fn(p, ctx);
}

static bool pt_is_mkey(uint64_t mkey, void *ctx)
{
    return mkey == *(const uint64_t *)ctx;
}

void cor_proctab_drop_machine(cor_proctab *pt, uint64_t mkey)
{
    cor_proctab_drop_if(pt, pt_is_mkey, &mkey);
}

size_t cor_proctab_ancestors(const cor_proctab *pt, const cor_proc *p, const cor_proc **out,
                             size_t max)
{
    size_t n = 0;

    (void)pt;
    for (p = p != NULL ? p->parent : NULL; p != NULL && n < max; p = p->parent)
        out[n++] = p;
    return n;
}

int cor_proctab_alert_tree(const cor_proctab *pt, const cor_proc *trigger, vg_arena *arena,
                           Vigil__Alert *alert, size_t max_nodes)
{
    const cor_proc **procs, *c;
    Vigil__ProcessNode **nodes;
    size_t nanc, i, n = 0, head;
    int rc;

    if (pt == NULL || trigger == NULL || arena == NULL || alert == NULL || max_nodes == 0 ||
        pt->count == 0)
        return -VG_EINVAL;
    max_nodes = VG_MIN(max_nodes, pt->count); /* no tree is larger; keeps the sizes sane */
    alert->n_process_tree = 0;
    alert->process_tree = NULL;
    procs = vg_arena_alloc(arena, max_nodes * sizeof(*procs));
    nodes = vg_arena_alloc(arena, max_nodes * sizeof(*nodes));
    if (procs == NULL || nodes == NULL)
        return -VG_ENOMEM;
    /* Nearest ancestors first, then reversed so that the tree reads from the root down. */
    nanc = cor_proctab_ancestors(pt, trigger, procs, max_nodes - 1);
    for (i = 0; i < nanc / 2; i++) {
        c = procs[i];
        procs[i] = procs[nanc - 1 - i];
        procs[nanc - 1 - i] = c;
    }
    procs[nanc] = trigger;
    for (n = 0; n <= nanc; n++) {
        rc = pt_fill_node(arena, procs[n], (int32_t)n - 1, n == nanc, &nodes[n]);
        if (rc != 0)
            return rc;
    }
    /* Breadth first below the trigger: procs doubles as the queue. */
    for (head = nanc; head < n && n < max_nodes; head++) {
        for (c = procs[head]->child; c != NULL && n < max_nodes; c = c->sib_next) {
            rc = pt_fill_node(arena, c, (int32_t)head, false, &nodes[n]);
            if (rc != 0)
                return rc;
            procs[n++] = c;
        }
    }
    alert->process_tree = nodes;
    alert->n_process_tree = n;
    return 0;
}

void cor_proc_to_record(const cor_proc *p, Vigil__ProcessRecord *rec, Vigil__ProcessRef *ref)
{
    vigil__process_record__init(rec);
    vigil__process_ref__init(ref);
    ref->pid = p->pid;
    ref->creation_time_us = p->ctime;
    /* protobuf-c wants char *; the strings are only read by pack. */
    ref->image = (char *)cor_proc_field(p, COR_PF_IMAGE);
    ref->command_line = (char *)cor_proc_field(p, COR_PF_COMMAND_LINE);
    ref->sha256 = (char *)cor_proc_field(p, COR_PF_SHA256);
    ref->sha1 = (char *)cor_proc_field(p, COR_PF_SHA1);
    ref->md5 = (char *)cor_proc_field(p, COR_PF_MD5);
    ref->account = (char *)cor_proc_field(p, COR_PF_ACCOUNT);
    ref->integrity_level = (char *)cor_proc_field(p, COR_PF_INTEGRITY_LEVEL);
    ref->current_directory = (char *)cor_proc_field(p, COR_PF_CURRENT_DIRECTORY);
    ref->original_file_name = (char *)cor_proc_field(p, COR_PF_ORIGINAL_FILE_NAME);
    ref->logon_id = (char *)cor_proc_field(p, COR_PF_LOGON_ID);
    rec->process = ref;
    rec->parent_pid = p->ppid;
    rec->parent_creation_time_us = p->pctime;
    rec->exit_time_us = (p->flags & PT_F_EXITED) ? p->exit_us : 0;
    rec->exit_code = p->exit_code;
}

cor_proc *cor_proctab_upsert_record(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRecord *rec,
                                    int64_t seen_us)
{
    cor_proc *p;

    if (rec == NULL || rec->process == NULL) {
        pt->st.bad_input++;
        return NULL;
    }
    p = cor_proctab_upsert(pt, mkey, rec->process, rec->parent_pid, rec->parent_creation_time_us,
                           seen_us);
    if (p != NULL && rec->exit_time_us != 0)
        cor_proctab_exit(pt, p, rec->exit_time_us, rec->exit_code);
    return p;
}

size_t cor_proctab_count(const cor_proctab *pt)
{
    return pt->count;
}

size_t cor_proctab_bytes(const cor_proctab *pt)
{
    return pt->bytes;
}

void cor_proctab_get_stats(const cor_proctab *pt, struct cor_proctab_stats *st)
{
    *st = pt->st;
    st->procs = pt->count;
    st->bytes = pt->bytes;
    st->strings = pt->nstr;
    st->string_bytes = pt->str_bytes;
    st->waiting = pt->nwaiting;
    st->exit_queue = pt->nqueued;
}

/* ---- public: a process --------------------------------------------------------------- */

cor_proc *cor_proc_parent(const cor_proc *p)
{
    return p->parent;
}

cor_proc *cor_proc_first_child(const cor_proc *p)
{
    return p->child;
}

cor_proc *cor_proc_next_sibling(const cor_proc *p)
{
    /* A waiting process chains through the same links, but has no siblings. */
    return p->parent != NULL ? p->sib_next : NULL;
}

uint64_t cor_proc_mkey(const cor_proc *p)
{
    return p->mkey;
}

uint32_t cor_proc_pid(const cor_proc *p)
{
    return p->pid;
}

int64_t cor_proc_ctime(const cor_proc *p)
{
    return p->ctime;
}

uint32_t cor_proc_ppid(const cor_proc *p)
{
    return p->ppid;
}

int64_t cor_proc_pctime(const cor_proc *p)
{
    return p->pctime;
}

bool cor_proc_exited(const cor_proc *p)
{
    return (p->flags & PT_F_EXITED) != 0;
}

int64_t cor_proc_exit_us(const cor_proc *p)
{
    return (p->flags & PT_F_EXITED) ? p->exit_us : 0;
}

int32_t cor_proc_exit_code(const cor_proc *p)
{
    return p->exit_code;
}

int64_t cor_proc_seen_us(const cor_proc *p)
{
    return p->seen_us;
}

uint32_t cor_proc_live_descendants(const cor_proc *p)
{
    return p->nlive;
}

const char *cor_proc_field(const cor_proc *p, enum cor_pfield f)
{
    if ((unsigned)f >= COR_PF__COUNT)
        return "";
    return pt_istr_get(p->str[pt_fmap[f].g], pt_fmap[f].i);
}

const char *cor_proc_image(const cor_proc *p)
{
    return cor_proc_field(p, COR_PF_IMAGE);
}

const char *cor_proc_command_line(const cor_proc *p)
{
    return cor_proc_field(p, COR_PF_COMMAND_LINE);
}

const char *cor_proc_account(const cor_proc *p)
{
    return cor_proc_field(p, COR_PF_ACCOUNT);
}

/* ---- helpers: indexes ---------------------------------------------------------------- */

static uint64_t pt_hash(uint64_t mkey, uint32_t pid)
{
    uint64_t k[2] = {mkey, pid};

    return vg_hash64(k, sizeof(k), PT_SEED);
}

static size_t pt_pow2(size_t n)
{
    size_t p = PT_MIN_BUCKETS;

    while (p < n && p < (SIZE_MAX >> 2))
        p <<= 1;
    return p;
}

static cor_proc **pt_bucket(const cor_proctab *pt, uint64_t mkey, uint32_t pid)
{
    return &pt->buckets[pt_hash(mkey, pid) & (pt->nbuckets - 1)];
}

static cor_proc **pt_wbucket(const cor_proctab *pt, uint64_t mkey, uint32_t ppid)
{
    return &pt->wbuckets[pt_hash(mkey, ppid) & (pt->nwbuckets - 1)];
}

/* Rehashes procs into nb buckets. On failure the old index stays and -VG_ENOMEM returns:
 * a fuller table is slower, not wrong. */
static int pt_resize_procs(cor_proctab *pt, size_t nb)
{
    cor_proc **nbk = vg_calloc(nb, sizeof(*nbk)), *p, *next;
    size_t i, h;

    if (nbk == NULL) {
        pt->st.enomem++;
        return -VG_ENOMEM;
    }
    for (i = 0; i < pt->nbuckets; i++) {
        for (p = pt->buckets[i]; p != NULL; p = next) {
            next = p->hnext;
            h = pt_hash(p->mkey, p->pid) & (nb - 1);
            p->hnext = nbk[h];
            nbk[h] = p;
        }
    }
    vg_free(pt->buckets);
    pt->bytes += nb * sizeof(*nbk);
    pt->bytes -= pt->nbuckets * sizeof(*nbk);
    pt->buckets = nbk;
    pt->nbuckets = nb;
    return 0;
}

static int pt_resize_waiting(cor_proctab *pt, size_t nb)
{
    cor_proc **old = pt->wbuckets, *p;
    size_t i, oldn = pt->nwbuckets;

    pt->wbuckets = vg_calloc(nb, sizeof(*pt->wbuckets));
    if (pt->wbuckets == NULL) {
        pt->wbuckets = old;
        pt->st.enomem++;
        return -VG_ENOMEM;
    }
    pt->nwbuckets = nb;
    for (i = 0; i < oldn; i++) {
        while ((p = old[i]) != NULL) {
            pt_list_remove(&old[i], p);
            pt_list_append(pt_wbucket(pt, p->mkey, p->ppid), p);
        }
    }
    vg_free(old);
    pt->bytes += nb * sizeof(*old);
    pt->bytes -= oldn * sizeof(*old);
    return 0;
}

static int pt_resize_strings(cor_proctab *pt, size_t nb)
{
    struct cor_istr **nbk = vg_calloc(nb, sizeof(*nbk)), *e, *next;
    size_t i, h;

    if (nbk == NULL) {
        pt->st.enomem++;
        return -VG_ENOMEM;
    }
    for (i = 0; i < pt->nibuckets; i++) {
        for (e = pt->ibuckets[i]; e != NULL; e = next) {
            next = e->next;
            h = e->hash & (nb - 1);
            e->next = nbk[h];
            nbk[h] = e;
        }
    }
    vg_free(pt->ibuckets);
    pt->bytes += nb * sizeof(*nbk);
    pt->bytes -= pt->nibuckets * sizeof(*nbk);
    pt->ibuckets = nbk;
    pt->nibuckets = nb;
    return 0;
}

/* Gives back index memory after a large expiry, so bytes used returns near its baseline. */
static void pt_maybe_shrink(cor_proctab *pt)
{
    if (pt->nbuckets > pt->min_buckets && pt->count < pt->nbuckets / 8)
        (void)pt_resize_procs(pt, VG_MAX(pt->min_buckets, pt_pow2(pt->count * 2)));
    if (pt->nwbuckets > PT_MIN_BUCKETS && pt->nwaiting < pt->nwbuckets / 8)
        (void)pt_resize_waiting(pt, pt_pow2(pt->nwaiting * 2));
    if (pt->nibuckets > PT_MIN_BUCKETS && pt->nstr < pt->nibuckets / 8)
        (void)pt_resize_strings(pt, pt_pow2(pt->nstr * 2));
}

/* Appends n to a list whose first element's sib_prev is its last. */
static void pt_list_append(cor_proc **head, cor_proc *n)
{
    cor_proc *first = *head;

    n->sib_next = NULL;
    if (first == NULL) {
        n->sib_prev = n;
        *head = n;
        return;
    }
    n->sib_prev = first->sib_prev;
    first->sib_prev->sib_next = n;
    first->sib_prev = n;
}

static void pt_list_remove(cor_proc **head, cor_proc *n)
{
    cor_proc *first = *head;

    if (n == first) {
        *head = n->sib_next;
        if (n->sib_next != NULL)
            n->sib_next->sib_prev = n->sib_prev;
    } else {
        n->sib_prev->sib_next = n->sib_next;
        if (n->sib_next != NULL)
            n->sib_next->sib_prev = n->sib_prev;
        else
            first->sib_prev = n->sib_prev; /* n was the last */
    }
    n->sib_next = NULL;
    n->sib_prev = NULL;
}

static int pt_waiting_add(cor_proctab *pt, cor_proc *n)
{
    if (pt->nwaiting >= pt->nwbuckets)
        (void)pt_resize_waiting(pt, pt->nwbuckets * 2);
    pt_list_append(pt_wbucket(pt, n->mkey, n->ppid), n);
    n->flags |= PT_F_WAITING;
    pt->nwaiting++;
    return 0;
}

static void pt_waiting_remove(cor_proctab *pt, cor_proc *n)
{
    pt_list_remove(pt_wbucket(pt, n->mkey, n->ppid), n);
    n->flags &= ~PT_F_WAITING;
    pt->nwaiting--;
}

/* ---- helpers: the tree --------------------------------------------------------------- */

/* Links every process waiting for n as its parent under n. n is new: no cycle is possible. */
static void pt_adopt_waiting(cor_proctab *pt, cor_proc *n)
{
    cor_proc **head, *w, *next;

    if (pt->nwaiting == 0)
        return;
    head = pt_wbucket(pt, n->mkey, n->pid);
    for (w = *head; w != NULL; w = next) {
        next = w->sib_next;
        if (w->ppid != n->pid || w->pctime != n->ctime || w->mkey != n->mkey)
            continue;
        pt_waiting_remove(pt, w);
        pt_link_child(n, w);
    }
}

/* Links n, which has no parent, under its recorded parent, or makes it wait for it. */
static void pt_link_parent(cor_proctab *pt, cor_proc *n)
{
    cor_proc *par, *a;

    if (n->ppid == n->pid && (n->pctime == n->ctime || n->pctime == 0)) {
        pt->st.bad_input++; /* its own parent: keep it a root */
        n->ppid = 0;
        n->pctime = 0;
        return;
    }
    if (n->pctime == 0) {
        /* Parent named by pid only: the one alive when n was created. */
        par = cor_proctab_find_pid(pt, n->mkey, n->ppid, n->ctime != 0 ? n->ctime : n->seen_us);
        if (par != NULL)
            n->pctime = par->ctime;
    } else {
        par = cor_proctab_get(pt, n->mkey, n->ppid, n->pctime);
    }
    if (par == NULL) {
        (void)pt_waiting_add(pt, n);
        return;
    }
    for (a = par; a != NULL; a = a->parent) {
        if (a == n) {
            pt->st.bad_input++; /* a cycle: only bad input makes one */
            return;
        }
    }
    pt_link_child(par, n);
}

static void pt_link_child(cor_proc *parent, cor_proc *c)
{
    uint32_t delta = c->nlive + !(c->flags & PT_F_EXITED);
    cor_proc *a;

    c->parent = parent;
    pt_list_append(&parent->child, c);
    for (a = parent; a != NULL && delta != 0; a = a->parent)
        a->nlive += delta;
}

static void pt_unlink_child(cor_proctab *pt, cor_proc *c)
{
    cor_proc *parent = c->parent;

    pt_list_remove(&parent->child, c);
    c->parent = NULL;
    pt_ancestors_sub(pt, parent, c->nlive + !(c->flags & PT_F_EXITED));
}

/* Takes delta live descendants from `from` and its ancestors; an exited one left with none
 * becomes removable again, so it goes back on the exit queue. */
static void pt_ancestors_sub(cor_proctab *pt, cor_proc *from, uint32_t delta)
{
    cor_proc *a;

    if (delta == 0)
        return;
    for (a = from; a != NULL; a = a->parent) {
        if (VG_NEVER(a->nlive < delta))
            a->nlive = delta;
        a->nlive -= delta;
        if (a->nlive == 0 && (a->flags & PT_F_EXITED))
            pt_enqueue(pt, a);
    }
}

/* Undoes a presumed exit: p is running after all. It may stay on the exit queue; expire
 * skips running processes. */
static void pt_revive(cor_proc *p)
{
    cor_proc *a;

    p->flags &= ~(PT_F_EXITED | PT_F_PRESUMED);
    p->exit_us = 0;
    p->exit_code = 0;
    for (a = p->parent; a != NULL; a = a->parent)
        a->nlive++;
}

static void pt_enqueue(cor_proctab *pt, cor_proc *p)
{
    if (p->flags & PT_F_QUEUED)
        return;
    p->flags |= PT_F_QUEUED;
    p->qnext = NULL;
    if (pt->qtail != NULL)
        pt->qtail->qnext = p;
    else
        pt->qhead = p;
    pt->qtail = p;
    pt->nqueued++;
}

/* Removes p (not on the exit queue) from every index and frees it. Its children keep their
 * recorded parent and wait for it. */
static void pt_remove(cor_proctab *pt, cor_proc *p)
{
    cor_proc **pp, *c;

    assert(!(p->flags & PT_F_QUEUED));
    for (pp = pt_bucket(pt, p->mkey, p->pid); *pp != p; pp = &(*pp)->hnext)
        assert(*pp != NULL);
    *pp = p->hnext;
    if (p->parent != NULL)
        pt_unlink_child(pt, p);
    else if (p->flags & PT_F_WAITING)
        pt_waiting_remove(pt, p);
    while ((c = p->child) != NULL) {
        /* Its live count left with p; the ancestors above p were adjusted by the unlink. */
        pt_list_remove(&p->child, c);
        c->parent = NULL;
        (void)pt_waiting_add(pt, c);
    }
    pt->st.removed++;
    pt_free_proc(pt, p);
}

static void pt_free_proc(cor_proctab *pt, cor_proc *p)
{
    unsigned g;

    for (g = 0; g < PT_G__COUNT; g++)
        pt_release(pt, p->str[g]);
    pt->count--;
    pt->bytes -= sizeof(*p);
    vg_free(p);
}

static cor_proc *pt_create(cor_proctab *pt, uint64_t mkey, const Vigil__ProcessRef *ref,
                           int64_t ctime, int64_t seen_us)
{
    cor_proc *p = vg_calloc(1, sizeof(*p));

    if (p == NULL) {
        pt->st.enomem++;
        return NULL;
    }
    p->mkey = mkey;
    p->pid = ref->pid;
    p->ctime = ctime;
    p->seen_us = seen_us;
    pt->count++;
    pt->bytes += sizeof(*p);
    if (pt_set_strings(pt, p, ref) != 0) {
        pt_free_proc(pt, p);
        return NULL;
    }
    if (pt->count > pt->nbuckets)
        (void)pt_resize_procs(pt, pt->nbuckets * 2);
    p->hnext = *pt_bucket(pt, mkey, p->pid);
    *pt_bucket(pt, mkey, p->pid) = p;
    pt->st.inserted++;
    pt_adopt_waiting(pt, p);
    return p;
}

/* ---- helpers: strings ---------------------------------------------------------------- */

static const char *pt_ref_field(const Vigil__ProcessRef *r, enum cor_pfield f)
{
    const char *s = NULL;

    switch (f) {
    case COR_PF_IMAGE:
        s = r->image;
        break;
    case COR_PF_SHA256:
        s = r->sha256;
        break;
    case COR_PF_SHA1:
        s = r->sha1;
        break;
    case COR_PF_MD5:
        s = r->md5;
        break;
    case COR_PF_ORIGINAL_FILE_NAME:
        s = r->original_file_name;
        break;
    case COR_PF_ACCOUNT:
        s = r->account;
        break;
    case COR_PF_INTEGRITY_LEVEL:
        s = r->integrity_level;
        break;
    case COR_PF_LOGON_ID:
        s = r->logon_id;
        break;
    case COR_PF_COMMAND_LINE:
        s = r->command_line;
        break;
    case COR_PF_CURRENT_DIRECTORY:
        s = r->current_directory;
        break;
    case COR_PF__COUNT:
        break;
    }
    return s != NULL ? s : "";
}

/*
 * Merges the non-empty strings of r into p, group by group: a group changes only when some
 * new string differs from the stored one. Returns 0 or -VG_ENOMEM (groups already merged
 * stay merged; the failing one keeps its old strings).
 */
static int pt_set_strings(cor_proctab *pt, cor_proc *p, const Vigil__ProcessRef *r)
{
    const char *v[PT_G__COUNT][PT_G_MAXN];
    bool changed[PT_G__COUNT] = {false};
    struct cor_istr *e;
    unsigned f, g;
    int err;

    for (f = 0; f < COR_PF__COUNT; f++) {
        const char *nv = pt_ref_field(r, f), *ov = cor_proc_field(p, f);

        g = pt_fmap[f].g;
        v[g][pt_fmap[f].i] = *nv != '\0' ? nv : ov;
        if (*nv != '\0' && strcmp(nv, ov) != 0)
            changed[g] = true;
    }
    for (g = 0; g < PT_G__COUNT; g++) {
        if (!changed[g])
            continue;
        e = pt_intern(pt, v[g], pt_gsize[g], &err);
        if (err != 0)
            return err;
        pt_release(pt, p->str[g]);
        p->str[g] = e;
    }
    return 0;
}

/* Returns a referenced group equal to v[0..n) (NULL when all are empty); *err is 0 or
 * -VG_ENOMEM / -VG_EINVAL (too long). */
static struct cor_istr *pt_intern(cor_proctab *pt, const char *const *v, uint32_t n, int *err)
{
    size_t len[PT_G_MAXN], total = 0, sz;
    uint64_t h = PT_ISTR_SEED;
    struct cor_istr *e;
    uint32_t i;
    bool empty = true;
    char *d;

    *err = 0;
    for (i = 0; i < n; i++) {
        len[i] = strlen(v[i]);
        total += len[i] + 1;
        empty = empty && len[i] == 0;
        h = vg_hash64(v[i], len[i], h + i);
    }
    if (empty)
        return NULL;
    if (total > UINT32_MAX / 2) {
        pt->st.bad_input++;
        *err = -VG_EINVAL;
        return NULL;
    }
    for (e = pt->ibuckets[h & (pt->nibuckets - 1)]; e != NULL; e = e->next) {
        if (e->hash != h || e->n != n || e->dlen != total)
            continue;
        for (i = 0; i < n; i++)
            if (memcmp(pt_istr_get(e, i), v[i], len[i] + 1) != 0)
                break;
        if (i == n) {
            e->refs++;
            return e;
        }
    }
    sz = sizeof(*e) + n * sizeof(e->off[0]) + total;
    e = vg_malloc(sz);
    if (e == NULL) {
        pt->st.enomem++;
        *err = -VG_ENOMEM;
        return NULL;
    }
    e->hash = h;
    e->refs = 1;
    e->n = n;
    e->dlen = (uint32_t)total;
    d = (char *)(e->off + n);
    for (i = 0, total = 0; i < n; i++) {
        e->off[i] = (uint32_t)total;
        memcpy(d + total, v[i], len[i] + 1);
        total += len[i] + 1;
    }
    if (pt->nstr >= pt->nibuckets)
        (void)pt_resize_strings(pt, pt->nibuckets * 2);
    e->next = pt->ibuckets[h & (pt->nibuckets - 1)];
    pt->ibuckets[h & (pt->nibuckets - 1)] = e;
    pt->nstr++;
    pt->str_bytes += sz;
    pt->bytes += sz;
    return e;
}

static void pt_release(cor_proctab *pt, struct cor_istr *e)
{
    struct cor_istr **pp;

    if (e == NULL || --e->refs > 0)
        return;
    for (pp = &pt->ibuckets[e->hash & (pt->nibuckets - 1)]; *pp != e; pp = &(*pp)->next)
        assert(*pp != NULL);
    *pp = e->next;
    pt->nstr--;
    pt->str_bytes -= sizeof(*e) + e->n * sizeof(e->off[0]) + e->dlen;
    pt->bytes -= sizeof(*e) + e->n * sizeof(e->off[0]) + e->dlen;
    vg_free(e);
}

static const char *pt_istr_get(const struct cor_istr *e, unsigned i)
{
    return e != NULL ? (const char *)(e->off + e->n) + e->off[i] : "";
}

/* ---- helpers: alerts ----------------------------------------------------------------- */

static char *pt_arena_str(vg_arena *a, const char *s)
{
    return vg_arena_strndup(a, s, strlen(s));
}

static int pt_fill_node(vg_arena *a, const cor_proc *p, int32_t parent_index, bool trigger,
                        Vigil__ProcessNode **out)
{
    Vigil__ProcessNode *n = vg_arena_alloc(a, sizeof(*n));

    if (n == NULL)
        return -VG_ENOMEM;
    vigil__process_node__init(n);
    n->pid = p->pid;
    n->creation_time_us = p->ctime;
    n->image = pt_arena_str(a, cor_proc_image(p));
    n->command_line = pt_arena_str(a, cor_proc_command_line(p));
    n->account = pt_arena_str(a, cor_proc_account(p));
    if (n->image == NULL || n->command_line == NULL || n->account == NULL)
        return -VG_ENOMEM;
    n->parent_index = parent_index;
    n->trigger = trigger;
    n->exit_time_us = cor_proc_exit_us(p);
    *out = n;
    return 0;
}
