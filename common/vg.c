/*
 * vg.c - shared pieces: errors, logging, the allocation hook, the arena, hashing, time.
 *
 * THREAD SAFETY: all functions may be called from any thread, except vg_log_set_stream,
 * vg_set_clock and vg_alloc_fail_after, which are set-up calls made before threads start.
 */

#include "vg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

struct vg_arena_chunk {
    struct vg_arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[]; /* aligned payload */
};

struct vg_arena {
    struct vg_arena_chunk *head; /* current chunk; older ones follow */
    size_t chunk_size;           /* default size of a new chunk */
    size_t total_used;           /* bytes handed out since the last reset */
};

static const char *const vg_err_names[] = {
    [VG_OK] = "ok",
    [VG_ENOMEM] = "out of memory",
    [VG_EINVAL] = "invalid input",
    [VG_EIO] = "I/O error",
    [VG_EKAFKA] = "Kafka error",
    [VG_EFULL] = "full",
    [VG_ENOENT] = "not found",
    [VG_EDECODE] = "does not decode",
    [VG_ETENANT] = "machine belongs to another tenant",
    [VG_EUNSUP] = "not supported",
};

static const char *const vg_level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int vg_log_level_ = VG_LOG_INFO;
static FILE *vg_log_stream;
static long vg_alloc_countdown; /* 0: off; n: the nth allocation from now fails */
static bool vg_alloc_sticky;
static vg_clock_fn vg_clock;
static void *vg_clock_ctx;

const char *vg_strerror(int err)
{
    err = err < 0 ? -err : err;
    if (err >= (int)VG_ARRAY_SIZE(vg_err_names) || vg_err_names[err] == NULL)
        return "unknown error";
    return vg_err_names[err];
}

void vg_log_set_level(int level)
{
    __atomic_store_n(&vg_log_level_, level, __ATOMIC_RELAXED);
}

void vg_log_set_stream(void *stream)
{
    vg_log_stream = stream;
}

void vg_log_write(int level, const char *module, int errnum, const char *fmt, ...)
{
    char line[2048], ts[32];
    size_t off;
    va_list ap;

    off = (size_t)snprintf(line, sizeof(line), "%s %-5s %s: ", vg_fmt_time(vg_now_us(), ts),
                           vg_level_names[level < 0   ? 0
                                          : level > 3 ? 3
                                                      : level],
                           module);
    va_start(ap, fmt);
    if (off < sizeof(line))
        off += (size_t)vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    va_end(ap);
    if (errnum != 0 && off < sizeof(line))
        off += (size_t)snprintf(line + off, sizeof(line) - off, ": %s", strerror(errnum));
    if (off >= sizeof(line) - 1)
        off = sizeof(line) - 2;
    line[off++] = '\n';
    fwrite(line, 1, off, vg_log_stream ? vg_log_stream : stderr);
}

/* ---- allocation ------------------------------------------------------------------- */

static bool vg_alloc_should_fail(void)
{
    long n = __atomic_load_n(&vg_alloc_countdown, __ATOMIC_RELAXED);

    if (n == 0)
        return false;
    if (n == 1) {
        if (!vg_alloc_sticky)
            __atomic_store_n(&vg_alloc_countdown, 0, __ATOMIC_RELAXED);
        return true;
    }
    __atomic_sub_fetch(&vg_alloc_countdown, 1, __ATOMIC_RELAXED);
    return false;
}

void vg_alloc_fail_after(long nth, bool sticky)
{
    vg_alloc_sticky = sticky;
    __atomic_store_n(&vg_alloc_countdown, nth, __ATOMIC_RELAXED);
}

void *vg_malloc(size_t n)
{
    return vg_alloc_should_fail() ? NULL : malloc(n ? n : 1);
}

void *vg_calloc(size_t nmemb, size_t n)
{
    return vg_alloc_should_fail() ? NULL : calloc(nmemb ? nmemb : 1, n ? n : 1);
}

void *vg_realloc(void *p, size_t n)
{
    return vg_alloc_should_fail() ? NULL : realloc(p, n ? n : 1);
}

void vg_free(void *p)
{
    free(p);
}

char *vg_strndup(const char *s, size_t n)
{
    char *d = vg_malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *vg_strdup(const char *s)
{
    return vg_strndup(s, strlen(s));
}

/* ---- the arena -------------------------------------------------------------------- */

static struct vg_arena_chunk *vg_arena_chunk_new(size_t size)
{
    struct vg_arena_chunk *c = vg_malloc(sizeof(*c) + size);

    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

vg_arena *vg_arena_new(size_t chunk_size)
{
    vg_arena *a = vg_malloc(sizeof(*a));

    if (a == NULL)
        return NULL;
    a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
    a->total_used = 0;
    a->head = vg_arena_chunk_new(a->chunk_size);
    if (a->head == NULL) {
        vg_free(a);
        return NULL;
    }
    return a;
}

void vg_arena_destroy(vg_arena *a)
{
    struct vg_arena_chunk *c, *next;

    if (a == NULL)
        return;
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        vg_free(c);
    }
    vg_free(a);
}

void *vg_arena_alloc(vg_arena *a, size_t n)
{
    struct vg_arena_chunk *c = a->head;
    size_t need = (n + 15) & ~(size_t)15;
    void *p;

    if (need < n)
        return NULL;
    if (c->size - c->used < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;

        c = vg_arena_chunk_new(size);
        if (c == NULL)
            return NULL;
        /* An oversized chunk goes behind the head so the head keeps its free space. */
        if (need > a->chunk_size) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    p = (char *)c->data + c->used;
    c->used += need;
    a->total_used += need;
    return p;
}

char *vg_arena_strndup(vg_arena *a, const char *s, size_t n)
{
    char *d = vg_arena_alloc(a, n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void vg_arena_reset(vg_arena *a)
{
    struct vg_arena_chunk *c, *next, *keep = NULL;

    /* Keep one default-sized chunk; free the rest. */
    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        if (keep == NULL && c->size == a->chunk_size) {
            keep = c;
            continue;
        }
        vg_free(c);
    }
    if (keep == NULL)
        keep = vg_arena_chunk_new(a->chunk_size);
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    a->head = keep;
    a->total_used = 0;
}

size_t vg_arena_used(const vg_arena *a)
{
    return a->total_used;
}

static void *vg_arena_pb_alloc(void *data, size_t size)
{
    return vg_arena_alloc(data, size);
}

static void vg_arena_pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

void vg_arena_pb_allocator(vg_arena *a, ProtobufCAllocator *out)
{
    out->alloc = vg_arena_pb_alloc;
    out->free = vg_arena_pb_free;
    out->allocator_data = a;
}

/* ---- hashing ---------------------------------------------------------------------- */

uint64_t vg_hash64(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

uint64_t vg_machine_key(const char *tenant, const char *machine)
{
    size_t tl = strlen(tenant);

    /* The tenant's length is mixed in so ("ab","c") and ("a","bc") differ. */
    return vg_hash64(machine, strlen(machine), vg_hash64(tenant, tl, 0x76696769 + tl));
}

/* ---- time ------------------------------------------------------------------------- */

int64_t vg_now_us(void)
{
    struct timespec ts;

    if (vg_clock != NULL)
        return vg_clock(vg_clock_ctx);
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * VG_US_PER_SEC + ts.tv_nsec / 1000;
}

void vg_set_clock(vg_clock_fn fn, void *ctx)
{
    vg_clock = fn;
    vg_clock_ctx = ctx;
}

uint64_t vg_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *vg_fmt_time(int64_t ts_us, char *buf)
{
    /* buf holds 32 bytes: the year is bounded to 4 digits below. */
    time_t secs = (time_t)(ts_us / VG_US_PER_SEC);
    long frac = (long)(ts_us % VG_US_PER_SEC);
    struct tm tm;

    if (frac < 0) {
        frac += VG_US_PER_SEC;
        secs -= 1;
    }
    if (gmtime_r(&secs, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        snprintf(buf, 32, "%lld", (long long)ts_us);
        return buf;
    }
    snprintf(buf, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%06uZ", (unsigned)(tm.tm_year + 1900) % 10000,
             (unsigned)(tm.tm_mon + 1) % 100, (unsigned)tm.tm_mday % 100,
             (unsigned)tm.tm_hour % 100, (unsigned)tm.tm_min % 100, (unsigned)tm.tm_sec % 100,
             (unsigned)(frac % 1000000));
    return buf;
}

int vg_parse_time(const char *s, int64_t *ts_us)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, n = 0;
    double sec = 0;
    char *end;

    if (s == NULL || *s == '\0')
        return -VG_EINVAL;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10) {
        if (s[10] == 'T' || s[10] == ' ') {
            if (sscanf(s + 11, "%2d:%2d:%lf", &h, &mi, &sec) != 3)
                return -VG_EINVAL;
        } else if (s[10] != '\0') {
            return -VG_EINVAL;
        }
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
            return -VG_EINVAL;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        *ts_us = (int64_t)timegm(&tm) * VG_US_PER_SEC + (int64_t)(sec * 1e6 + 0.5);
        return 0;
    }
    errno = 0;
    sec = strtod(s, &end);
    if (errno != 0 || *end != '\0' || end == s)
        return -VG_EINVAL;
    *ts_us = (int64_t)(sec * 1e6);
    return 0;
}

/* ---- JSON escaping ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1-4), or 0 if it is not valid. */
static size_t vg_utf8_len(const unsigned char *p, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t vg_json_escape(char *buf, size_t cap, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t out = 0, i = 0;

#define VG_PUT(c)                                                                                  \
    do {                                                                                           \
        if (out < cap)                                                                             \
            buf[out] = (char)(c);                                                                  \
        out++;                                                                                     \
    } while (0)
    while (i < n) {
        unsigned char c = p[i];
        size_t ul;

        if (c == '"' || c == '\\') {
            VG_PUT('\\');
            VG_PUT(c);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            VG_PUT('\\');
            VG_PUT(c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
            i++;
        } else if (c < 0x20 || c == 0x7f || (ul = vg_utf8_len(p + i, n - i)) == 0) {
            static const char hex[] = "0123456789abcdef";

            /* Control bytes and invalid UTF-8 are written as \u00XX so output stays valid. */
            VG_PUT('\\');
            VG_PUT('u');
            VG_PUT('0');
            VG_PUT('0');
            VG_PUT(hex[c >> 4]);
            VG_PUT(hex[c & 15]);
            i++;
        } else {
            for (size_t k = 0; k < ul; k++)
                VG_PUT(p[i + k]);
            i += ul;
        }
    }
#undef VG_PUT
    /* Terminated like snprintf: always, when there is room for anything. */
    if (cap > 0)
        buf[out < cap ? out : cap - 1] = '\0';
    return out;
}
