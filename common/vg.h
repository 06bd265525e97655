/*
 * vg.h - the pieces every vigil module shares: errors, logging, the allocation hook,
 * the batch arena, hashing and the clock.
 *
 * THREAD SAFETY: everything here may be called from any thread. The log level and the
 * allocation-failure injector are set before threads start (tests) and read with relaxed
 * atomics afterwards.
 */
#ifndef VG_H
#define VG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Error codes: functions named as actions return 0 or one of these, negated. */
enum vg_err {
    VG_OK = 0,
    VG_ENOMEM = 1,  /* allocation failed; retriable */
    VG_EINVAL = 2,  /* bad input or argument; fatal for that input, never for the process */
    VG_EIO = 3,     /* storage or file error */
    VG_EKAFKA = 4,  /* Kafka client error */
    VG_EFULL = 5,   /* a ring or buffer is full; retriable */
    VG_ENOENT = 6,  /* not found */
    VG_EDECODE = 7, /* bytes that do not decode */
    VG_ETENANT = 8, /* a machine claimed by another tenant */
    VG_EUNSUP = 9,  /* valid but not supported */
};

const char *vg_strerror(int err); /* err may be negative */

/* True when an error is worth retrying (the rd_kafka_error_is_retriable idea). */
static inline bool vg_err_retriable(int err)
{
    err = err < 0 ? -err : err;
    return err == VG_ENOMEM || err == VG_EFULL || err == VG_EKAFKA;
}

/* ---- logging ---------------------------------------------------------------------- */

enum vg_log_level { VG_LOG_ERROR = 0, VG_LOG_WARN, VG_LOG_INFO, VG_LOG_DEBUG };

extern int vg_log_level_; /* read through vg_log_enabled() */

static inline bool vg_log_enabled(int level)
{
    return level <= __atomic_load_n(&vg_log_level_, __ATOMIC_RELAXED);
}

void vg_log_set_level(int level);
/* Set where log lines go; NULL means stderr. Not thread safe: call before threads start. */
void vg_log_set_stream(void *FILE_ptr);
void vg_log_write(int level, const char *module, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The level is tested before any argument is formatted (Redis serverLog). */
#define vg_log(level, module, ...)                                                                 \
    do {                                                                                           \
        if (vg_log_enabled(level))                                                                 \
            vg_log_write(level, module, 0, __VA_ARGS__);                                           \
    } while (0)
/* errno is passed explicitly, as nginx's ngx_log_error does. */
#define vg_log_errno(level, module, errnum, ...)                                                   \
    do {                                                                                           \
        if (vg_log_enabled(level))                                                                 \
            vg_log_write(level, module, errnum, __VA_ARGS__);                                      \
    } while (0)
#ifdef NDEBUG
#define vg_debug(module, ...) ((void)0)
#else
#define vg_debug(module, ...) vg_log(VG_LOG_DEBUG, module, __VA_ARGS__)
#endif

/* ---- allocation ------------------------------------------------------------------- */

/*
 * Every heap allocation of vigil's own goes through these, so that a test can make the
 * Nth allocation fail (SQLite's test_malloc.c). vg_malloc never aborts: callers handle NULL.
 */
void *vg_malloc(size_t n);
void *vg_calloc(size_t nmemb, size_t n);
void *vg_realloc(void *p, size_t n);
void vg_free(void *p);
char *vg_strdup(const char *s);
char *vg_strndup(const char *s, size_t n);

/* Tests: fail the nth allocation from now (1 = the next one) and every one after it while
 * sticky is true; 0 turns injection off. */
void vg_alloc_fail_after(long nth, bool sticky);

/* "Cannot happen, stay safe anyway" (SQLite's ALWAYS/NEVER): asserts in debug builds, and
 * evaluates to the condition in release builds so the caller can recover. */
#ifdef NDEBUG
#define VG_ALWAYS(x) (x)
#define VG_NEVER(x)  (x)
#else
#include <assert.h>
#define VG_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define VG_NEVER(x)  ((x) ? (assert(!#x), 1) : 0)
#endif

/* ---- the batch arena -------------------------------------------------------------- */

/*
 * A bump allocator for everything that belongs to one batch (nginx pools). Memory is
 * released all at once by vg_arena_reset or vg_arena_destroy. Not thread safe: an arena
 * belongs to one thread at a time, and moves with the batch it holds.
 */
typedef struct vg_arena vg_arena;

vg_arena *vg_arena_new(size_t chunk_size); /* NULL on allocation failure */
void vg_arena_destroy(vg_arena *a);
void *vg_arena_alloc(vg_arena *a, size_t n); /* 16-byte aligned; NULL on failure */
char *vg_arena_strndup(vg_arena *a, const char *s, size_t n);
void vg_arena_reset(vg_arena *a); /* keeps the first chunk for reuse */
size_t vg_arena_used(const vg_arena *a);
/* A protobuf-c allocator drawing from the arena; free is a no-op. */
void vg_arena_pb_allocator(vg_arena *a, ProtobufCAllocator *out);

/* ---- hashing ---------------------------------------------------------------------- */

/* Seeded 64-bit hash (XXH3). */
uint64_t vg_hash64(const void *p, size_t n, uint64_t seed);
/* The machine key: hash of (tenant, machine), computed once at ingest and used for
 * routing (key % nshards) and for storage keys. */
uint64_t vg_machine_key(const char *tenant, const char *machine);

/* ---- time ------------------------------------------------------------------------- */

#define VG_US_PER_SEC INT64_C(1000000)
#define VG_US_PER_DAY (INT64_C(86400) * VG_US_PER_SEC)

/* Wall clock in Unix microseconds. Tests may inject a clock (retention). */
int64_t vg_now_us(void);
typedef int64_t (*vg_clock_fn)(void *ctx);
void vg_set_clock(vg_clock_fn fn, void *ctx); /* NULL restores the real clock */
/* Monotonic nanoseconds, for measuring. */
uint64_t vg_mono_ns(void);
/* Formats ts as ISO-8601 UTC with microseconds ("2026-11-29T17:26:12.000123Z"). Returns
 * buf. buf must hold 32 bytes. */
char *vg_fmt_time(int64_t ts_us, char *buf);
/* Parses ISO-8601 UTC ("2026-11-29T17:26:12[.ffffff]Z", or a date) or Unix seconds.
 * Returns 0 and sets *ts_us, or -VG_EINVAL. */
int vg_parse_time(const char *s, int64_t *ts_us);

/* ---- misc ------------------------------------------------------------------------- */

#define VG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VG_CACHELINE     64
#define VG_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define VG_MAX(a, b)     ((a) > (b) ? (a) : (b))

/* Writes s JSON-escaped (without quotes) to buf. Invalid UTF-8 bytes become \u00XX.
 * Like snprintf: returns the length needed (without the NUL); the output is truncated to
 * cap - 1 bytes and NUL-terminated when cap > 0. */
size_t vg_json_escape(char *buf, size_t cap, const char *s, size_t n);

/* ---- u64 -> pointer map ----------------------------------------------------------- */

/*
 * An open-addressing hash map from non-zero 64-bit keys (already well mixed, such as
 * machine keys) to pointers; linear probing, backward-shift deletion, grows at 70 %. Not
 * thread safe: owned by one thread (a shard).
 */
struct vg_u64map {
    uint64_t *keys; /* 0 = empty slot */
    void **vals;
    size_t cap; /* power of two */
    size_t count;
};

int vg_u64map_init(struct vg_u64map *m, size_t expected);
void vg_u64map_free(struct vg_u64map *m); /* does not free the values */
void *vg_u64map_get(const struct vg_u64map *m, uint64_t key);
int vg_u64map_put(struct vg_u64map *m, uint64_t key, void *val); /* replaces */
void *vg_u64map_del(struct vg_u64map *m, uint64_t key);          /* returns the value */
/* Iteration: *pos starts at 0; returns false at the end. Not valid across put/del. */
bool vg_u64map_next(const struct vg_u64map *m, size_t *pos, uint64_t *key, void **val);

#endif /* VG_H */
