/*
 * hreplay.c - stored history replayed through several shards at once (see hreplay.h).
 *
 * THREAD SAFETY: the caller's thread lists the machines, starts the "vg-replay-N" threads
 * and joins them. A replay thread owns its shard (cor_shard_process on that thread; the
 * shard is never started) and the read-ahead iterator of the machine it reads; it shares
 * with the others only the next-machine counter and the progress counters (relaxed atomics:
 * they order nothing, the join publishes everything else), and each machine's event count,
 * written by the one thread that replays the machine and read after the join.
 */
#include "hreplay.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MOD               "hreplay"
#define HR_PROGRESS_EVERY 1024 /* events between updates of the shared counter */

struct hr_machine {
    uint64_t mkey;
    char *tenant, *machine, *name, *os_version, *sensor_version;
    Vigil__Os os;
    uint64_t expected; /* events its record says are stored */
    uint64_t events;   /* written by the thread that replays it */
};

struct hr_thread {
    cor_hreplay *hr;
    unsigned index;
    pthread_t thread;
    bool started;
    cor_shard *shard;
    struct cor_unit *unit; /* the final seal-all's answer */
    uint64_t rejected;     /* by this shard (its thread only) */
    uint64_t events;       /* this thread's events (its thread only) */
    uint64_t cpu_ns;       /* this thread's CPU time, taken as it ends */
} __attribute__((aligned(64)));

struct cor_hreplay {
    struct cor_hreplay_cfg cfg;
    struct hr_machine *m;
    size_t n, cap;
    uint64_t expected; /* sum of the machine records' event counts */
    bool list_failed;  /* out of memory while listing: the list is short */
    unsigned nthreads;
    struct hr_thread *t;
    /* Shared by the replay threads: relaxed atomics. */
    uint64_t next __attribute__((aligned(64))); /* next machine to take */
    uint64_t events __attribute__((aligned(64)));
    uint64_t done;    /* machines read to their end */
    uint64_t running; /* threads not yet finished */
};

static bool hr_list(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m);
static int hr_bigger_first(const void *x, const void *y);
static void *hr_main(void *arg);
static void hr_replay_machine(struct hr_thread *t, struct hr_machine *hm);
static void hr_release(void *ctx, struct cor_in *in);
static void hr_reject(void *ctx, struct cor_in *in, const char *reason);
static char *hr_dup(const char *s);

/* ---- public ----------------------------------------------------------------------- */

int cor_hreplay_new(const struct cor_hreplay_cfg *cfg, cor_hreplay **out)
{
    cor_hreplay *hr = vg_calloc(1, sizeof(*hr));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int rc;

    *out = NULL;
    if (hr == NULL)
        return -VG_ENOMEM;
    hr->cfg = *cfg;
    hr->nthreads = cfg->threads ? cfg->threads : ncpu > 0 ? (unsigned)ncpu : 1;
    if (hr->nthreads > 256)
        hr->nthreads = 256;
    if ((rc = sto_scan_machines(cfg->db, hr_list, hr)) < 0)
        goto out_free;
    if (hr->list_failed) {
        rc = -VG_ENOMEM; /* a replay that silently skipped machines would miss alerts */
        goto out_free;
    }
    /* The biggest machines first, so that the last ones to finish are small and the
     * threads end together (longest processing time first). */
    if (hr->n > 1)
        qsort(hr->m, hr->n, sizeof(*hr->m), hr_bigger_first);
    if (hr->n < hr->nthreads)
        hr->nthreads = hr->n > 0 ? (unsigned)hr->n : 1; /* a thread per machine at most */
    if ((hr->t = vg_calloc(hr->nthreads, sizeof(*hr->t))) == NULL) {
        rc = -VG_ENOMEM;
        goto out_free;
    }
    for (unsigned i = 0; i < hr->nthreads; i++) {
        struct cor_shard_cfg sc = cfg->shard;
        struct hr_thread *t = &hr->t[i];

        t->hr = hr;
        t->index = i;
        sc.index = i;
        sc.nshards = hr->nthreads;
        sc.release = hr_release;
        sc.reject = hr_reject;
        sc.ctx = t;
        sc.snapshots = false;
        if ((rc = cor_shard_new(&sc, &t->shard)) < 0)
            goto out_free;
    }
    *out = hr;
    return 0;
out_free:
    cor_hreplay_free(hr);
    return rc < 0 ? rc : -VG_ENOMEM;
}

void cor_hreplay_free(cor_hreplay *hr)
{
    if (hr == NULL)
        return;
    for (unsigned i = 0; hr->t != NULL && i < hr->nthreads; i++) {
        if (hr->t[i].unit != NULL)
            cor_unit_free(hr->t[i].unit);
        cor_shard_destroy(hr->t[i].shard);
    }
    vg_free(hr->t);
    for (size_t i = 0; i < hr->n; i++) {
        vg_free(hr->m[i].tenant);
        vg_free(hr->m[i].machine);
        vg_free(hr->m[i].name);
        vg_free(hr->m[i].os_version);
        vg_free(hr->m[i].sensor_version);
    }
    vg_free(hr->m);
    vg_free(hr);
}

int cor_hreplay_run(cor_hreplay *hr,
                    void (*progress)(void *ctx, const struct cor_hreplay_progress *p), void *ctx,
                    unsigned interval_ms)
{
    struct cor_hreplay_progress p = {.machines = hr->n, .expected = hr->expected};
    struct timespec ts = {0, (long)(interval_ms ? interval_ms : 250) * 1000000L};
    int rc = 0;

    __atomic_store_n(&hr->running, hr->nthreads, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < hr->nthreads; i++) {
        struct hr_thread *t = &hr->t[i];
        char name[32]; /* at most 256 threads: 13 characters, under the 15 allowed */

        if (pthread_create(&t->thread, NULL, hr_main, t) != 0) {
            vg_log(VG_LOG_ERROR, MOD, "could not start replay thread %u", i);
            __atomic_fetch_sub(&hr->running, hr->nthreads - i, __ATOMIC_RELAXED);
            rc = -VG_ENOMEM;
            break;
        }
        t->started = true;
        snprintf(name, sizeof(name), "vg-replay-%u", i);
        pthread_setname_np(t->thread, name);
    }
    /* The started threads take every machine between them. */
    while (__atomic_load_n(&hr->running, __ATOMIC_RELAXED) > 0) {
        nanosleep(&ts, NULL);
        if (progress != NULL) {
            p.events = __atomic_load_n(&hr->events, __ATOMIC_RELAXED);
            p.machines_done = __atomic_load_n(&hr->done, __ATOMIC_RELAXED);
            progress(ctx, &p);
        }
    }
    for (unsigned i = 0; i < hr->nthreads; i++)
        if (hr->t[i].started)
            pthread_join(hr->t[i].thread, NULL);
    if (progress != NULL) {
        p.events = hr->events;
        p.machines_done = hr->done;
        progress(ctx, &p);
    }
    return rc;
}

struct cor_unit *cor_hreplay_unit(const cor_hreplay *hr, unsigned i)
{
    return i < hr->nthreads ? hr->t[i].unit : NULL;
}

void cor_hreplay_counts(const cor_hreplay *hr, uint64_t *events, uint64_t *machines,
                        uint64_t *rejected)
{
    uint64_t nm = 0, rej = 0;

    for (size_t i = 0; i < hr->n; i++)
        nm += hr->m[i].events > 0;
    for (unsigned i = 0; i < hr->nthreads; i++)
        rej += hr->t[i].rejected;
    if (events != NULL)
        *events = hr->events;
    if (machines != NULL)
        *machines = nm;
    if (rejected != NULL)
        *rejected = rej;
}

bool cor_hreplay_machine(const cor_hreplay *hr, size_t i, const char **tenant, const char **machine,
                         uint64_t *events)
{
    if (i >= hr->n)
        return false;
    *tenant = hr->m[i].tenant;
    *machine = hr->m[i].machine;
    *events = hr->m[i].events;
    return true;
}

void cor_hreplay_rule_counts(const cor_hreplay *hr, uint32_t index, uint64_t *hits,
                             uint64_t *alerts)
{
    *hits = *alerts = 0;
    for (unsigned i = 0; i < hr->nthreads; i++) {
        uint64_t h, a;

        cor_shard_rule_counts(hr->t[i].shard, index, &h, &a);
        *hits += h;
        *alerts += a;
    }
}

uint64_t cor_hreplay_shard_cpu_ns(const cor_hreplay *hr)
{
    uint64_t ns = 0;

    for (unsigned i = 0; i < hr->nthreads; i++)
        ns += hr->t[i].cpu_ns;
    return ns;
}

unsigned cor_hreplay_threads(const cor_hreplay *hr)
{
    return hr->nthreads;
}

/* ---- helpers ---------------------------------------------------------------------- */

/* @locality the caller's thread (cor_hreplay_new). */
static bool hr_list(void *ctx, uint64_t mkey, const Vigil__MachineRecord *m)
{
    cor_hreplay *hr = ctx;
    struct hr_machine *hm;

    if (hr->cfg.want != NULL && !hr->cfg.want(hr->cfg.want_ctx, m))
        return true;
    if (hr->n == hr->cap) {
        size_t cap = hr->cap ? hr->cap * 2 : 64;
        struct hr_machine *n = vg_realloc(hr->m, cap * sizeof(*n));

        if (n == NULL) {
            hr->list_failed = true;
            return false;
        }
        hr->m = n;
        hr->cap = cap;
    }
    hm = &hr->m[hr->n];
    memset(hm, 0, sizeof(*hm));
    hm->mkey = mkey;
    hm->os = m->os;
    hm->tenant = hr_dup(m->tenant_id);
    hm->machine = hr_dup(m->machine_id);
    hm->name = hr_dup(m->machine_name);
    hm->os_version = hr_dup(m->os_version);
    hm->sensor_version = hr_dup(m->sensor_version);
    if (hm->tenant == NULL || hm->machine == NULL || hm->name == NULL || hm->os_version == NULL ||
        hm->sensor_version == NULL) {
        vg_free(hm->tenant);
        vg_free(hm->machine);
        vg_free(hm->name);
        vg_free(hm->os_version);
        vg_free(hm->sensor_version);
        hr->list_failed = true;
        return false; /* sto_scan_machines stops; cor_hreplay_new fails */
    }
    hm->expected = m->events;
    hr->expected += m->events;
    hr->n++;
    return true;
}

static int hr_bigger_first(const void *x, const void *y)
{
    const struct hr_machine *a = x, *b = y;

    if (a->expected != b->expected)
        return a->expected > b->expected ? -1 : 1;
    return a->mkey < b->mkey ? -1 : a->mkey > b->mkey; /* stable across runs */
}

/* @locality vg-replay-N. Takes machines until none is left, then closes its shard. */
static void *hr_main(void *arg)
{
    struct hr_thread *t = arg;
    cor_hreplay *hr = t->hr;
    struct cor_barrier *b;

    for (;;) {
        uint64_t i = __atomic_fetch_add(&hr->next, 1, __ATOMIC_RELAXED);

        if (i >= hr->n)
            break;
        hr_replay_machine(t, &hr->m[i]);
        __atomic_fetch_add(&hr->done, 1, __ATOMIC_RELAXED);
    }
    /* The end of the replay: seal everything, fire what correlations held back. */
    while ((b = cor_barrier_new(1, true, NULL, 0, 1)) == NULL) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
    }
    {
        struct cor_in in = {.is_barrier = true, .barrier = b};

        cor_shard_process(t->shard, &in);
    }
    t->unit = cor_shard_pop_unit(t->shard);
    /* One barrier, one unit; anything else would be a second barrier's. */
    for (struct cor_unit *u; (u = cor_shard_pop_unit(t->shard)) != NULL;)
        cor_unit_free(u);
    sto_thread_cleanup();
    {
        struct timespec cpu;

        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
            t->cpu_ns = (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
    }
    __atomic_fetch_sub(&hr->running, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* @locality vg-replay-N. One machine's stored events, in time order, one event a batch (no
 * copies: the iterator's event lives until the next one). */
static void hr_replay_machine(struct hr_thread *t, struct hr_machine *hm)
{
    cor_hreplay *hr = t->hr;
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    const Vigil__Event *ev;
    Vigil__Event *one[1];
    struct cor_in in;
    sto_tl_iter *it;
    uint64_t n = 0, unreported = 0;

    b.tenant_id = hm->tenant;
    b.machine_id = hm->machine;
    b.machine_name = hm->name;
    b.os = hm->os;
    b.os_version = hm->os_version;
    b.sensor_version = hm->sensor_version;
    b.n_events = 1;
    b.events = one;
    memset(&in, 0, sizeof(in));
    in.batch = &b;
    in.mkey = hm->mkey;
    in.partition = -1;
    /* A helper thread reads and unpacks ahead while this one runs the rules. */
    if (sto_tl_open_ahead(hr->cfg.db, hm->mkey, hr->cfg.from_us, hr->cfg.to_us, false, &it) < 0) {
        vg_log(VG_LOG_WARN, MOD, "machine %s: timeline could not be opened", hm->machine);
        return;
    }
    while (sto_tl_next(it, &ev) == 1) {
        one[0] = (Vigil__Event *)ev;
        b.first_seq = ev->seq;
        cor_shard_process(t->shard, &in);
        n++;
        if (++unreported == HR_PROGRESS_EVERY) {
            __atomic_fetch_add(&hr->events, unreported, __ATOMIC_RELAXED);
            unreported = 0;
        }
    }
    sto_tl_close(it);
    __atomic_fetch_add(&hr->events, unreported, __ATOMIC_RELAXED);
    hm->events = n;
    t->events += n;
}

static void hr_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* batches live on the replay thread's stack; barriers move into units */
}

/* @locality vg-replay-N (its own shard's callback). */
static void hr_reject(void *ctx, struct cor_in *in, const char *reason)
{
    struct hr_thread *t = ctx;

    t->rejected++;
    vg_log(VG_LOG_WARN, MOD, "batch of %s rejected: %s",
           in->batch != NULL ? in->batch->machine_id : "?", reason);
}

static char *hr_dup(const char *s)
{
    return vg_strdup(s != NULL ? s : "");
}
