/*
 * rules_bench.c - `vigil bench-rules`: events per second through Sigma rule evaluation
 * with no rules, the first N rule files and all rules, on the simulated mix and on the real
 * recordings. See rules_bench.h.
 *
 * Method: every event of both mixes is kept in memory (protobuf in an arena) and its view
 * built once, so that the timed loops do nothing but evaluate. Each measurement is run
 * `runs` times and the median quoted. Each cell also records a hash of every (event index,
 * rule index) match: two builds of the engine that evaluate the same must print the same
 * hashes, which is how an optimisation is checked for exact semantics.
 *
 * THREAD SAFETY: one thread.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "import.h"
#include "rules.h"
#include "rules_bench.h"
#include "sim.h"
#include "vg.h"

#define BR_MAX_RUNS 15

/* One event mix held in memory. */
struct br_mix {
    const char *name;
    vg_arena *arena;                     /* every batch and its strings */
    const Vigil__TelemetryBatch **batch; /* per event */
    const Vigil__Event **ev;             /* per event */
    struct vg_evview *view;              /* per event, pre-built */
    size_t n;
    size_t cap;
};

/* A sorted list of rule file paths. */
struct br_files {
    char **p;
    size_t n;
    size_t cap;
};

struct br_count {
    uint64_t matches;
    uint64_t hash;
    size_t event;
};

static const char *const br_set_name[BENCH_RULES_NSETS] = {"none", "subset", "all"};

/* ---- helpers ------------------------------------------------------------------------ */

static void br_progress(const struct bench_rules_opts *o, const char *fmt, const char *a)
{
    if (o->progress) {
        fprintf(o->progress, "vigil bench-rules: ");
        fprintf(o->progress, fmt, a);
        fputc('\n', o->progress);
    }
}

static int br_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double br_median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), br_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t br_mix64(uint64_t h, uint64_t x)
{
    h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static void br_on_match(void *ctx, const struct cor_rule_info *rule)
{
    struct br_count *c = ctx;

    c->matches++;
    c->hash = br_mix64(c->hash, ((uint64_t)c->event << 20) ^ rule->index);
}

/* ---- event mixes -------------------------------------------------------------------- */

static int br_mix_push(struct br_mix *m, const Vigil__TelemetryBatch *b, const Vigil__Event *ev)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        const Vigil__TelemetryBatch **nb = vg_realloc(m->batch, cap * sizeof(*nb));
        const Vigil__Event **ne;
        if (!nb)
            return -VG_ENOMEM;
        m->batch = nb;
        ne = vg_realloc(m->ev, cap * sizeof(*ne));
        if (!ne)
            return -VG_ENOMEM;
        m->ev = ne;
        m->cap = cap;
    }
    m->batch[m->n] = b;
    m->ev[m->n++] = ev;
    return 0;
}

static int br_mix_views(struct br_mix *m)
{
    size_t i;

    m->view = vg_malloc((m->n + 1) * sizeof(*m->view));
    if (!m->view)
        return -VG_ENOMEM;
    for (i = 0; i < m->n; i++)
        vg_evview_build(&m->view[i], m->batch[i], m->ev[i]);
    return 0;
}

static void br_mix_free(struct br_mix *m)
{
    if (m->arena)
        vg_arena_destroy(m->arena);
    vg_free(m->batch);
    vg_free(m->ev);
    vg_free(m->view);
    memset(m, 0, sizeof(*m));
}

static int br_sim_load(const struct bench_rules_opts *o, struct br_mix *m)
{
    struct bench_sim_opts so;
    bench_sim *sim = NULL;
    Vigil__TelemetryBatch *b;
    int rc;

    m->name = "simulated";
    if (!(m->arena = vg_arena_new(1 << 22)))
        return -VG_ENOMEM;
    bench_sim_opts_default(&so);
    so.seed = o->seed;
    so.duration_us = 5 * 24 * 3600 * VG_US_PER_SEC; /* long enough; we stop at sim_events */
    if ((rc = bench_sim_new(&so, &sim, NULL, 0)) < 0)
        return rc;
    while (m->n < o->sim_events && (rc = bench_sim_next(sim, m->arena, &b)) == 1) {
        size_t i;
        for (i = 0; i < b->n_events && m->n < o->sim_events && rc >= 0; i++)
            rc = br_mix_push(m, b, b->events[i]);
        if (rc < 0)
            break;
    }
    bench_sim_free(sim);
    return rc < 0 ? rc : br_mix_views(m);
}

static bool br_has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);

    return n > k && strcmp(s + n - k, suf) == 0;
}

static int br_files_add(struct br_files *f, const char *path)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        char **p = vg_realloc(f->p, cap * sizeof(*p));
        if (!p)
            return -VG_ENOMEM;
        f->p = p;
        f->cap = cap;
    }
    if (!(f->p[f->n] = vg_malloc(strlen(path) + 1)))
        return -VG_ENOMEM;
    strcpy(f->p[f->n++], path);
    return 0;
}

static void br_files_free(struct br_files *f)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        vg_free(f->p[i]);
    vg_free(f->p);
    memset(f, 0, sizeof(*f));
}

/* Files under dir with one of the suffixes, recursively, in the rule loader's order
 * (alphasort at each level), so that "the first N" are the rules the loader reads first. */
static int br_list(const char *dir, const char *const *suf, struct br_files *f, int depth)
{
    struct dirent **ents = NULL;
    int n, i, rc = 0;

    if (depth > 32)
        return 0;
    if ((n = scandir(dir, &ents, NULL, alphasort)) < 0)
        return -VG_EIO;
    for (i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        const char *name = ents[i]->d_name;
        if (rc == 0 && name[0] != '.' &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path) &&
            stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rc = br_list(path, suf, f, depth + 1) == -VG_ENOMEM ? -VG_ENOMEM : 0;
            else if (S_ISREG(st.st_mode) &&
                     (br_has_suffix(name, suf[0]) || (suf[1] && br_has_suffix(name, suf[1]))))
                rc = br_files_add(f, path);
        }
        free(ents[i]); /* scandir allocates with malloc */
    }
    free(ents);
    return rc;
}

static int br_real_load(const struct bench_rules_opts *o, struct br_mix *m)
{
    static const char *const suf[] = {".jsonl", NULL};
    struct br_files files = {0};
    char err[256];
    size_t i;
    int rc;

    m->name = "real";
    if (!(m->arena = vg_arena_new(1 << 22)))
        return -VG_ENOMEM;
    if ((rc = br_list(o->telemetry_dir, suf, &files, 0)) < 0)
        goto out_files;
    for (i = 0; i < files.n && rc >= 0; i++) {
        ing_importer *im;
        Vigil__TelemetryBatch *b;
        if (ing_import_open(files.p[i], "tenant-bench", &im, err, sizeof(err)) < 0)
            continue; /* unreadable: counted as no events */
        while ((rc = ing_import_next(im, m->arena, 1000, &b)) == 1) {
            size_t k;
            for (k = 0; k < b->n_events && rc >= 0; k++)
                rc = br_mix_push(m, b, b->events[k]);
            if (rc < 0)
                break;
        }
        ing_import_close(im);
    }
    if (rc >= 0)
        rc = br_mix_views(m);
out_files:
    br_files_free(&files);
    return rc;
}

/* ---- measurement -------------------------------------------------------------------- */

/* One pass over the mix; returns events/s, or a negative vg_err. with_view: build each
 * view again (in a scratch view) as a shard does. Each pass has a scratch of its own, so
 * that none starts with the memo of recent values (sigma_int.h) another pass filled. */
static double br_pass(const cor_ruleset *rs, const struct br_mix *m, bool with_view,
                      struct br_count *c)
{
    cor_scratch *s = cor_scratch_new(rs);
    struct vg_evview tmp;
    uint64_t t0;
    size_t i;

    if (!s)
        return -VG_ENOMEM;
    memset(c, 0, sizeof(*c));
    t0 = vg_mono_ns();
    for (i = 0; i < m->n; i++) {
        const struct vg_evview *v = &m->view[i];
        c->event = i;
        if (with_view) {
            vg_evview_build(&tmp, m->batch[i], m->ev[i]);
            v = &tmp;
        }
        cor_rules_eval(rs, s, v, br_on_match, c);
    }
    t0 = vg_mono_ns() - t0;
    cor_scratch_destroy(s);
    return (double)m->n / ((double)t0 / 1e9);
}

static int br_measure(const struct bench_rules_opts *o, const cor_ruleset *rs,
                      const struct br_mix *m, struct bench_rules_cell *cell)
{
    double e[BR_MAX_RUNS], ve[BR_MAX_RUNS];
    struct br_count c;
    unsigned r;

    /* warm caches; also the reference match set */
    if (br_pass(rs, m, false, &c) < 0)
        return -VG_ENOMEM;
    cell->matches = c.matches;
    cell->match_hash = c.hash;
    for (r = 0; r < o->runs; r++) {
        if ((e[r] = br_pass(rs, m, false, &c)) < 0 || (ve[r] = br_pass(rs, m, true, &c)) < 0)
            return -VG_ENOMEM;
    }
    cell->eval_eps = br_median(e, o->runs);
    cell->viewev_eps = br_median(ve, o->runs);
    return 0;
}

/* Loads a rule set `runs` times (median time) and keeps the last. */
static int br_load(const struct bench_rules_opts *o, const char *const *paths, size_t n,
                   cor_ruleset **out, double *ms, char *err, size_t errlen)
{
    double t[BR_MAX_RUNS];
    unsigned r;
    int rc;

    *out = NULL;
    for (r = 0; r < o->runs; r++) {
        uint64_t t0 = vg_mono_ns();
        if (*out)
            cor_ruleset_unref(*out);
        if ((rc = cor_ruleset_load(paths, n, out, NULL, err, errlen)) < 0)
            return rc;
        t[r] = (double)(vg_mono_ns() - t0) / 1e6;
    }
    *ms = br_median(t, o->runs);
    return 0;
}

/* ---- report ------------------------------------------------------------------------- */

static void br_print(const struct bench_rules_opts *o, const struct bench_rules_result *res,
                     const struct br_mix *mix)
{
    FILE *f = o->out;
    int s, x;

    fprintf(f, "\nSigma rule evaluation (median of %u runs; views pre-built for 'eval')\n",
            o->runs);
    fprintf(f, "%-8s %6s %9s  %-10s %8s %12s %8s %12s %8s %10s\n", "set", "rules", "load ms", "mix",
            "events", "eval ev/s", "us/ev", "view+eval/s", "us/ev", "matches");
    for (s = 0; s < BENCH_RULES_NSETS; s++)
        for (x = 0; x < BENCH_RULES_NMIX; x++) {
            const struct bench_rules_cell *c = &res->cell[s][x];
            if (!mix[x].n)
                continue;
            fprintf(f, "%-8s %6zu %9.0f  %-10s %8zu %12.0f %8.2f %12.0f %8.2f %10llu\n",
                    br_set_name[s], res->nrules[s], res->load_ms[s], mix[x].name, mix[x].n,
                    c->eval_eps, 1e6 / c->eval_eps, c->viewev_eps, 1e6 / c->viewev_eps,
                    (unsigned long long)c->matches);
        }
    for (x = 0; x < BENCH_RULES_NMIX; x++)
        if (mix[x].n)
            fprintf(f, "ratio all/none, %-9s: eval %.3f, view+eval %.3f\n", mix[x].name,
                    res->cell[2][x].eval_eps / res->cell[0][x].eval_eps,
                    res->cell[2][x].viewev_eps / res->cell[0][x].viewev_eps);
    fprintf(f, "{\"bench\":\"rules\",\"runs\":%u", o->runs);
    for (s = 0; s < BENCH_RULES_NSETS; s++) {
        fprintf(f, ",\"%s\":{\"rules\":%zu,\"load_ms\":%.1f", br_set_name[s], res->nrules[s],
                res->load_ms[s]);
        for (x = 0; x < BENCH_RULES_NMIX; x++) {
            const struct bench_rules_cell *c = &res->cell[s][x];
            if (!mix[x].n)
                continue;
            fprintf(f,
                    ",\"%s\":{\"events\":%zu,\"eval_eps\":%.0f,\"view_eval_eps\":%.0f,"
                    "\"matches\":%llu,\"match_hash\":\"%016llx\"}",
                    mix[x].name, mix[x].n, c->eval_eps, c->viewev_eps,
                    (unsigned long long)c->matches, (unsigned long long)c->match_hash);
        }
        fputc('}', f);
    }
    for (x = 0; x < BENCH_RULES_NMIX; x++)
        if (mix[x].n)
            fprintf(f, ",\"ratio_%s\":{\"eval\":%.4f,\"view_eval\":%.4f}", mix[x].name,
                    res->cell[2][x].eval_eps / res->cell[0][x].eval_eps,
                    res->cell[2][x].viewev_eps / res->cell[0][x].viewev_eps);
    fprintf(f, "}\n");
}

/* ---- public ------------------------------------------------------------------------- */

void bench_rules_opts_default(struct bench_rules_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->sim_events = 50000;
    o->subset = 100;
    o->runs = 3;
    o->seed = 1;
    o->out = stdout;
}

int bench_rules_run(const struct bench_rules_opts *o, struct bench_rules_result *res, char *err,
                    size_t errlen)
{
    static const char *const suf[] = {".yml", ".yaml"};
    struct br_mix mix[BENCH_RULES_NMIX] = {{0}};
    struct br_files files = {0};
    cor_ruleset *rs = NULL;
    size_t i, nsub;
    int s, x, rc = 0;

    memset(res, 0, sizeof(*res));
    if (o->runs < 1 || o->runs > BR_MAX_RUNS) {
        snprintf(err, errlen, "runs must be 1 .. %d", BR_MAX_RUNS);
        return -VG_EINVAL;
    }
    for (i = 0; i < o->nrule_dirs && rc >= 0; i++)
        if ((rc = br_list(o->rule_dirs[i], suf, &files, 0)) < 0)
            snprintf(err, errlen, "cannot list rules under %s", o->rule_dirs[i]);
    if (rc < 0)
        goto out_free;
    br_progress(o, "generating %s simulated events", "the");
    if ((rc = br_sim_load(o, &mix[0])) < 0) {
        snprintf(err, errlen, "simulator: %s", vg_strerror(rc));
        goto out_free;
    }
    if (o->telemetry_dir) {
        br_progress(o, "importing %s", o->telemetry_dir);
        if ((rc = br_real_load(o, &mix[1])) < 0) {
            snprintf(err, errlen, "importing %s: %s", o->telemetry_dir, vg_strerror(rc));
            goto out_free;
        }
    }
    for (x = 0; x < BENCH_RULES_NMIX; x++)
        res->nevents[x] = mix[x].n;
    nsub = files.n < o->subset ? files.n : o->subset;
    for (s = 0; s < BENCH_RULES_NSETS; s++) {
        size_t n = s == 0 ? 0 : s == 1 ? nsub : files.n;
        br_progress(o, "rule set %s: loading", br_set_name[s]);
        if ((rc = br_load(o, (const char *const *)files.p, n, &rs, &res->load_ms[s], err, errlen)) <
            0)
            goto out_free;
        res->nrules[s] = cor_ruleset_count(rs);
        for (x = 0; x < BENCH_RULES_NMIX; x++) {
            if (!mix[x].n)
                continue;
            br_progress(o, "measuring on the %s mix", mix[x].name);
            if ((rc = br_measure(o, rs, &mix[x], &res->cell[s][x])) < 0) {
                snprintf(err, errlen, "out of memory");
                goto out_free;
            }
        }
        cor_ruleset_unref(rs);
        rs = NULL;
    }
    br_print(o, res, mix);

out_free:
    cor_ruleset_unref(rs);
    for (x = 0; x < BENCH_RULES_NMIX; x++)
        br_mix_free(&mix[x]);
    br_files_free(&files);
    return rc < 0 ? rc : 0;
}
