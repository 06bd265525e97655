/*
 * fuzz_decode.c - libFuzzer harness for ing_decode, the first code that sees a Kafka
 * message's bytes: the envelope walk, protobuf-c unpacking into an arena and validation.
 * An input that decodes is taken further, as the pipeline takes it: every event's view is
 * built and evaluated against the built-in rules, then the batch runs through a fresh
 * in-process shard (process table, blocks, alerts, correlation), and every sealed block
 * must read back through storage's block decoder as the batch's own machine.
 *
 * Properties checked (abort on violation): no crash, no leak, no sanitizer report; the raw
 * slices of a decoded batch lie inside the input and unpack to events with the same
 * sequence numbers; a rejected input always has a reason; sealed blocks decode and belong
 * to the batch's (tenant, machine).
 *
 * THREAD MODEL: libFuzzer's one thread; the ruleset is loaded once and read-only after.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlate.h"
#include "corr.h"
#include "evview.h"
#include "fuzz.h"
#include "ingest.h"
#include "rules.h"
#include "storage.h"

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_decode: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static cor_ruleset *g_rules; /* the built-in rules; NULL if they did not load */
static cor_corrset *g_corr;
static cor_scratch *g_scratch;

static void fuzz_load_rules(void)
{
    const char *dir = VG_SOURCE_DIR "/rules";
    char err[256];

    if (cor_ruleset_load(&dir, 1, &g_rules, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_decode: built-in rules did not load: %s\n", err);
        abort();
    }
    if (cor_corrset_load(&dir, 1, &g_corr, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_decode: built-in correlations did not load: %s\n", err);
        abort();
    }
    g_scratch = cor_scratch_new(g_rules);
    FUZZ_CHECK(g_scratch != NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    fuzz_load_rules();
    return 0;
}

static void fuzz_on_match(void *ctx, const struct cor_rule_info *rule)
{
    (*(unsigned *)ctx)++;
    FUZZ_CHECK(rule != NULL && rule->id != NULL);
}

/* Views of every event: all typed fields and extras read back, then rule evaluation. */
static void fuzz_views(const Vigil__TelemetryBatch *b)
{
    for (size_t i = 0; i < b->n_events; i++) {
        struct vg_evview v;
        struct vg_str s;
        unsigned hits = 0;

        vg_evview_build(&v, b, b->events[i]);
        for (int f = 0; f < VG_F__COUNT; f++)
            if (vg_evview_get(&v, vg_field_name((enum vg_field)f), &s))
                FUZZ_CHECK(s.p != NULL);
        for (size_t k = 0; k < v.n_extra; k++)
            if (v.extra[k] != NULL && v.extra[k]->key != NULL)
                (void)vg_evview_get(&v, v.extra[k]->key, &s);
        cor_rules_eval(g_rules, g_scratch, &v, fuzz_on_match, &hits);
    }
}

static void fuzz_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in; /* both items live on the harness's stack */
}

static void fuzz_reject(void *ctx, struct cor_in *in, const char *reason)
{
    (void)in;
    FUZZ_CHECK(reason != NULL && reason[0] != '\0');
    (*(unsigned *)ctx)++;
}

/* The sealed blocks of one unit belong to the batch's machine and decode as storage reads
 * them; alerts render as JSON and carry the batch's tenant. */
static void fuzz_check_unit(const struct cor_unit *u, const Vigil__TelemetryBatch *b, uint64_t mkey)
{
    for (size_t i = 0; i < u->nblocks; i++) {
        Vigil__TelemetryBatch *tb = NULL;

        FUZZ_CHECK(u->blocks[i].mkey == mkey);
        FUZZ_CHECK(sto_block_decode(u->blocks[i].data, u->blocks[i].len, NULL, &tb) == 0);
        FUZZ_CHECK(strcmp(tb->tenant_id, b->tenant_id) == 0);
        FUZZ_CHECK(strcmp(tb->machine_id, b->machine_id) == 0);
        FUZZ_CHECK(tb->n_events == u->blocks[i].nevents);
        vigil__telemetry_batch__free_unpacked(tb, NULL);
    }
    for (size_t i = 0; i < u->nalerts; i++) {
        const Vigil__Alert *a = u->alerts[i].alert;
        char *js = cor_alert_to_json(a);

        FUZZ_CHECK(strcmp(a->tenant_id, b->tenant_id) == 0);
        FUZZ_CHECK(js != NULL);
        free(js);
    }
}

/* The batch through a fresh shard, then a seal-all barrier: a fresh shard per input keeps
 * every run independent of the inputs before it, so a crash reproduces from its file. */
static void fuzz_shard(const struct ing_batch *ib)
{
    unsigned rejected = 0;
    struct cor_shard_cfg cfg = {
        .nshards = 1,
        .rules = g_rules,
        .corr = g_corr,
        .block_max_events = 16, /* small blocks: several per batch */
        .release = fuzz_release,
        .reject = fuzz_reject,
        .ctx = &rejected,
    };
    uint64_t mkey = vg_machine_key(ib->batch->tenant_id, ib->batch->machine_id);
    struct cor_in in = {
        .batch = ib->batch,
        .raw = ib->raw,
        .raw_len = ib->raw_len,
        .mkey = mkey,
        .partition = -1,
    };
    struct cor_in bar = {.is_barrier = true};
    struct cor_unit *u;
    cor_shard *s = NULL;

    FUZZ_CHECK(cor_shard_new(&cfg, &s) == 0);
    cor_shard_process(s, &in);
    bar.barrier = cor_barrier_new(1, true, NULL, 0, 1);
    FUZZ_CHECK(bar.barrier != NULL);
    cor_shard_process(s, &bar);
    while ((u = cor_shard_pop_unit(s)) != NULL) {
        fuzz_check_unit(u, ib->batch, mkey);
        cor_unit_free(u);
    }
    cor_shard_destroy(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ing_limits l;
    struct ing_batch ib;
    char reason[256] = "";
    vg_arena *a;
    int rc;

    if (g_rules == NULL) /* the regression driver may run without Initialize */
        LLVMFuzzerInitialize(NULL, NULL);
    ing_limits_default(&l);
    a = vg_arena_new(4096);
    FUZZ_CHECK(a != NULL);
    rc = ing_decode(data, size, &l, FUZZ_NOW_US, a, &ib, reason, sizeof(reason));
    if (rc != 0) {
        FUZZ_CHECK(rc == -VG_EDECODE || rc == -VG_EINVAL);
        FUZZ_CHECK(reason[0] != '\0');
        goto out;
    }
    FUZZ_CHECK(ib.batch != NULL && ib.batch->tenant_id != NULL && ib.batch->machine_id != NULL);
    for (size_t i = 0; i < ib.batch->n_events; i++) {
        Vigil__Event *ev;

        FUZZ_CHECK(ib.raw[i] >= data && ib.raw[i] + ib.raw_len[i] <= data + size);
        ev = vigil__event__unpack(NULL, ib.raw_len[i], ib.raw[i]);
        FUZZ_CHECK(ev != NULL);
        FUZZ_CHECK(ev->seq == ib.batch->events[i]->seq);
        /* ing_decode's one-pass decoder (evdec.c) must give protobuf-c's event. */
        {
            size_t la = vigil__event__get_packed_size(ev);
            size_t lb = vigil__event__get_packed_size(ib.batch->events[i]);
            uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);

            FUZZ_CHECK(pa != NULL && pb != NULL && la == lb);
            vigil__event__pack(ev, pa);
            vigil__event__pack(ib.batch->events[i], pb);
            FUZZ_CHECK(memcmp(pa, pb, la) == 0);
            free(pa);
            free(pb);
        }
        vigil__event__free_unpacked(ev, NULL);
    }
    fuzz_views(ib.batch);
    fuzz_shard(&ib);
out:
    vg_arena_destroy(a);
    return 0;
}
