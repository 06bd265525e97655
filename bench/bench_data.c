/*
 * bench_data.c - the benchmark's data: every simulated batch generated once and packed
 * back to back in memory, so that every measurement replays the same bytes; and the
 * process measurements (CPU time, resident memory).
 *
 * THREAD SAFETY: a bench_data is built on one thread and read-only afterwards (the latency
 * producer thread reads it while the caller's thread waits).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static int bench_grow(void **p, size_t *cap, size_t need, size_t elem);
static const char *bench_intern(struct bench_data *d, const char *s);
static int bench_data_add(struct bench_data *d, const Vigil__TelemetryBatch *b, const uint8_t *buf,
                          size_t len);

int bench_data_make(struct bench_data *d, const struct bench_sim_opts *so, char *err, size_t errlen)
{
    bench_sim *sim = NULL;
    vg_arena *a = vg_arena_new(1 << 20);
    int rc = -VG_ENOMEM, k;

    memset(d, 0, sizeof(*d));
    if (a == NULL)
        goto out;
    rc = bench_sim_new(so, &sim, err, errlen);
    if (rc < 0)
        goto out;
    while (vg_arena_reset(a), 1) {
        Vigil__TelemetryBatch *b;
        uint8_t *buf;
        size_t len;

        k = bench_sim_next(sim, a, &b);
        if (k == 0)
            break;
        if (k < 0 || bench_sim_pack(b, a, &buf, &len) < 0 || bench_data_add(d, b, buf, len) < 0) {
            snprintf(err, errlen, "out of memory generating batch %zu", d->n);
            rc = -VG_ENOMEM;
            goto out;
        }
    }
    d->ntruth = bench_sim_truth_count(sim);
    d->truth = vg_calloc(d->ntruth ? d->ntruth : 1, sizeof(*d->truth));
    if (d->truth == NULL)
        goto out;
    for (size_t i = 0; i < d->ntruth; i++) {
        struct bench_sim_truth *t = &d->truth[i];

        *t = *bench_sim_truth_get(sim, i);
        t->tenant = bench_intern(d, t->tenant);
        t->machine = bench_intern(d, t->machine);
        t->title = bench_intern(d, t->title);
        t->severity = bench_intern(d, t->severity);
    }
    rc = 0;
out:
    bench_sim_free(sim);
    vg_arena_destroy(a);
    if (rc < 0)
        bench_data_free(d);
    return rc;
}

void bench_data_free(struct bench_data *d)
{
    vg_free(d->buf);
    vg_free(d->off);
    vg_free(d->blen);
    vg_free(d->nev);
    vg_free(d->mkey);
    vg_free(d->last_seq);
    vg_free(d->machine);
    vg_free(d->truth);
    for (size_t i = 0; i < d->nstrs; i++)
        vg_free(d->strs[i]);
    vg_free(d->strs);
    memset(d, 0, sizeof(*d));
}

/* ---- process measurements ---------------------------------------------------------- */

static double bench_clock_us(clockid_t c)
{
    struct timespec ts;

    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

double bench_cpu_us(void)
{
    return bench_clock_us(CLOCK_PROCESS_CPUTIME_ID);
}

double bench_thread_cpu_us(void)
{
    return bench_clock_us(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t bench_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    uint64_t kb = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0) {
            kb = strtoull(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

uint64_t bench_rss_bytes(void)
{
    return bench_status_kb("VmRSS:");
}

uint64_t bench_hwm_bytes(void)
{
    return bench_status_kb("VmHWM:");
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Grows *p to hold need elements; returns 0 or -VG_ENOMEM (the old array stays valid). */
static int bench_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t c = *cap ? *cap : 1024;
    void *n;

    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    n = vg_realloc(*p, c * elem);
    if (n == NULL)
        return -VG_ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* Strings are few (machine ids, titles): a linear search on the newest ones is enough,
 * since a machine's batches cluster in time. Falls back to a new copy. */
static const char *bench_intern(struct bench_data *d, const char *s)
{
    size_t lo = d->nstrs > 64 ? d->nstrs - 64 : 0;
    size_t cap = d->capstrs;
    char *c;

    if (s == NULL)
        return "";
    for (size_t i = d->nstrs; i > lo; i--)
        if (strcmp(d->strs[i - 1], s) == 0)
            return d->strs[i - 1];
    if (bench_grow((void **)&d->strs, &cap, d->nstrs + 1, sizeof(char *)) < 0)
        return "";
    d->capstrs = cap;
    if ((c = vg_strdup(s)) == NULL)
        return "";
    d->strs[d->nstrs++] = c;
    return c;
}

static int bench_data_add(struct bench_data *d, const Vigil__TelemetryBatch *b, const uint8_t *buf,
                          size_t len)
{
    size_t capn = d->capn, i = d->n;

    if (bench_grow((void **)&d->buf, &d->cap, d->len + len, 1) < 0)
        return -VG_ENOMEM;
    if (d->n + 1 > d->capn) {
        size_t c;

#define BENCH_GROW_ARR(arr)                                                                        \
    c = d->capn;                                                                                   \
    if (bench_grow((void **)&d->arr, &c, d->n + 1, sizeof(*d->arr)) < 0)                           \
        return -VG_ENOMEM;                                                                         \
    capn = c;
        BENCH_GROW_ARR(off)
        BENCH_GROW_ARR(blen)
        BENCH_GROW_ARR(nev)
        BENCH_GROW_ARR(mkey)
        BENCH_GROW_ARR(last_seq)
        BENCH_GROW_ARR(machine)
#undef BENCH_GROW_ARR
        d->capn = capn;
    }
    memcpy(d->buf + d->len, buf, len);
    d->off[i] = d->len;
    d->blen[i] = (uint32_t)len;
    d->nev[i] = (uint32_t)b->n_events;
    d->mkey[i] = vg_machine_key(b->tenant_id, b->machine_id);
    d->last_seq[i] = b->n_events ? b->events[b->n_events - 1]->seq : 0;
    d->machine[i] = (char *)bench_intern(d, b->machine_id);
    d->len += len;
    d->n++;
    d->events += b->n_events;
    return 0;
}
