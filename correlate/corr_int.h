/*
 * corr_int.h - the inside of a cor_corrset, shared by corr_load.c (which builds it) and
 * corr.c (which runs it), and readable by tests.
 *
 * THREAD SAFETY: as corr.h: a loaded set is immutable.
 */
#ifndef VG_CORR_INT_H
#define VG_CORR_INT_H

#include <stdatomic.h>

#include "corr.h"
#include "vg.h"

#define CORR_MAX_REFS  64 /* temporal types keep one bit per referenced rule */
#define CORR_MAX_GROUP 16

enum corr_type {
    CORR_EVENT_COUNT = 0,
    CORR_VALUE_COUNT,
    CORR_TEMPORAL,
    CORR_TEMPORAL_ORDERED,
};

/* The condition: every set bound must hold (Sigma's AND of criteria). */
enum corr_op { CORR_GT = 0, CORR_GTE, CORR_LT, CORR_LTE, CORR_EQ, CORR_NEQ, CORR_OP__COUNT };

struct corr_cond {
    unsigned mask; /* bit (1 << enum corr_op) per criterion present */
    int64_t v[CORR_OP__COUNT];
};

struct corr_rule {
    struct cor_rule_info info;
    const char *name; /* may be NULL */
    enum corr_type type;
    int64_t span_us;
    struct corr_cond cond;
    bool monotone; /* only lower bounds: once true for a window, true for any superset */
    bool generate; /* referenced rules keep their own alerts */
    size_t nrefs;
    const char **refs; /* resolved base rule ids, in the order of `rules` */
    size_t ngroup;
    const char **group;  /* group-by names as written (reported in Alert.group_by) */
    const char **gfield; /* [g * nrefs + p]: the field read for group g from base rule p */
    size_t nvfield;
    const char **vfield; /* [f * nrefs + p]: value_count fields */
};

/* One base rule used by correlations. */
struct corr_use {
    uint32_t corr; /* index of the correlation */
    uint32_t pos;  /* position in its `rules` */
};

struct corr_base {
    const char *id;
    struct corr_base *next; /* same hash */
    struct corr_use *uses;  /* in the arena */
    size_t nuses;
    bool generate; /* some correlation using it says generate: true */
};

struct cor_corrset {
    atomic_int refs;
    vg_arena *arena;
    struct corr_rule **rules;
    size_t nrules;
    struct vg_u64map bases; /* corr_base_key(id) -> struct corr_base (chained) */
    int64_t max_span_us;
};

/* The map key of a base rule id: case-insensitive, never 0. */
uint64_t corr_base_key(const char *id);
const struct corr_base *corr_base_find(const cor_corrset *cs, const char *id);

#endif /* VG_CORR_INT_H */
