/*
 * sto_block.c - timeline blocks: a protobuf-c packed vigil.TelemetryBatch, compressed as
 * one zstd frame (level 3) that records its content size and a content checksum.
 *
 * THREAD SAFETY: any thread. Each thread keeps its own ZSTD_CCtx/ZSTD_DCtx in C11
 * thread-local pointers, created on first use; a pthread key destructor frees them when
 * the thread exits, and sto_thread_cleanup frees them at once (for the main thread, whose
 * key destructors do not run at exit()).
 */
#include <pthread.h>
#include <stdlib.h>

#include <string.h>

#include <zstd.h>

#include "storage_int.h"

#define STO_ZSTD_LEVEL 3
/* A block is one machine's events of a day, written in pieces; anything claiming more
 * than this once decompressed is corrupt, and refusing it bounds the allocation. */
#define STO_BLOCK_MAX (256u << 20)

struct sto_zctx {
    ZSTD_CCtx *cctx;            /* NULL until the first encode on this thread */
    ZSTD_DCtx *dctx;            /* NULL until the first decode on this thread */
    struct sto_scratch scratch; /* kept between timeline iterators */
};

static struct sto_zctx *sto_zctx_get(void);
static ZSTD_CCtx *sto_cctx_new(void);
static void sto_zctx_free(void *p);

static _Thread_local struct sto_zctx *tl_zctx;
static pthread_key_t zctx_key;
static pthread_once_t zctx_once = PTHREAD_ONCE_INIT;
static bool zctx_key_ok;

int sto_block_encode(const Vigil__TelemetryBatch *block, uint8_t **out, size_t *outlen)
{
    struct sto_zctx *z = sto_zctx_get();
    size_t plen, bound, clen;
    uint8_t *packed = NULL, *cbuf = NULL;
    int rc = -VG_ENOMEM;

    *out = NULL;
    *outlen = 0;
    if (z == NULL)
        return -VG_ENOMEM;
    if (z->cctx == NULL && (z->cctx = sto_cctx_new()) == NULL)
        return -VG_ENOMEM;
    plen = vigil__telemetry_batch__get_packed_size(block);
    packed = vg_malloc(plen ? plen : 1);
    if (packed == NULL)
        goto out;
    vigil__telemetry_batch__pack(block, packed);
    bound = ZSTD_compressBound(plen);
    cbuf = vg_malloc(bound);
    if (cbuf == NULL)
        goto out_free_packed;
    clen = ZSTD_compress2(z->cctx, cbuf, bound, packed, plen);
    if (ZSTD_isError(clen)) {
        vg_log(VG_LOG_ERROR, STO_MOD, "zstd compress: %s", ZSTD_getErrorName(clen));
        vg_free(cbuf);
        rc = -VG_EIO;
        goto out_free_packed;
    }
    *out = cbuf;
    *outlen = clen;
    rc = 0;
out_free_packed:
    vg_free(packed);
out:
    return rc;
}

int sto_block_decode(const void *val, size_t len, ProtobufCAllocator *alloc,
                     Vigil__TelemetryBatch **out)
{
    struct sto_zctx *z = sto_zctx_get();
    unsigned long long n;
    uint8_t *buf;
    size_t got;
    int rc = -VG_EDECODE;

    *out = NULL;
    if (z == NULL)
        return -VG_ENOMEM;
    if (z->dctx == NULL && (z->dctx = ZSTD_createDCtx()) == NULL)
        return -VG_ENOMEM;
    if (val == NULL || len == 0)
        return -VG_EDECODE;
    /* A bare serialized TelemetryBatch, as the shards write blocks: RocksDB's own zstd
     * compresses it with its neighbours (one machine's blocks of a day are adjacent keys),
     * which costs the shards nothing. Only a zstd frame starts with its magic number; a
     * batch starts with the tag of field 1 (0x0a). */
    if (len < 4 || memcmp(val, "\x28\xb5\x2f\xfd", 4) != 0) {
        *out = vigil__telemetry_batch__unpack(alloc, len, val);
        return *out != NULL ? 0 : -VG_EDECODE;
    }
    /* Our encoder always records the content size; a frame without one is not ours. */
    n = ZSTD_getFrameContentSize(val, len);
    if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > STO_BLOCK_MAX)
        return -VG_EDECODE;
    buf = vg_malloc(n ? (size_t)n : 1);
    if (buf == NULL)
        return -VG_ENOMEM;
    got = ZSTD_decompressDCtx(z->dctx, buf, (size_t)n, val, len);
    if (ZSTD_isError(got) || got != n)
        goto out_free_buf;
    /* protobuf-c copies strings out of buf, so buf can go right after. */
    *out = vigil__telemetry_batch__unpack(alloc, got, buf);
    if (*out != NULL)
        rc = 0;
out_free_buf:
    vg_free(buf);
    return rc;
}

int sto_block_append(const void *val, size_t len, uint8_t **buf, size_t *used, size_t *cap)
{
    struct sto_zctx *z = NULL;
    unsigned long long n = len;
    bool frame;
    size_t got;

    if (val == NULL || len == 0)
        return -VG_EDECODE;
    frame = len >= 4 && memcmp(val, "\x28\xb5\x2f\xfd", 4) == 0;
    if (frame) {
        if ((z = sto_zctx_get()) == NULL)
            return -VG_ENOMEM;
        if (z->dctx == NULL && (z->dctx = ZSTD_createDCtx()) == NULL)
            return -VG_ENOMEM;
        n = ZSTD_getFrameContentSize(val, len);
        if (n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > STO_BLOCK_MAX)
            return -VG_EDECODE;
    }
    if (*cap - *used < n) {
        size_t c = *cap ? *cap : 64 * 1024;
        uint8_t *b;

        while (c - *used < n)
            c *= 2;
        if ((b = vg_realloc(*buf, c)) == NULL)
            return -VG_ENOMEM;
        *buf = b;
        *cap = c;
    }
    if (!frame) {
        memcpy(*buf + *used, val, len);
        *used += len;
        return 0;
    }
    got = ZSTD_decompressDCtx(z->dctx, *buf + *used, (size_t)n, val, len);
    if (ZSTD_isError(got) || got != n)
        return -VG_EDECODE;
    *used += got;
    return 0;
}

struct sto_scratch *sto_scratch_get(void)
{
    struct sto_zctx *z = sto_zctx_get();

    return z != NULL ? &z->scratch : NULL;
}

void sto_thread_cleanup(void)
{
    struct sto_zctx *z = tl_zctx;

    if (z == NULL)
        return;
    if (zctx_key_ok)
        pthread_setspecific(zctx_key, NULL);
    sto_zctx_free(z);
}

/* ---- helpers ---------------------------------------------------------------------- */

static void sto_zctx_key_init(void)
{
    zctx_key_ok = pthread_key_create(&zctx_key, sto_zctx_free) == 0;
}

/* The calling thread's contexts holder, or NULL when out of memory. */
static struct sto_zctx *sto_zctx_get(void)
{
    struct sto_zctx *z = tl_zctx;

    if (z != NULL)
        return z;
    pthread_once(&zctx_once, sto_zctx_key_init);
    z = vg_calloc(1, sizeof(*z));
    if (z == NULL)
        return NULL;
    /* Without the key the contexts still work; they just outlive the thread. */
    if (zctx_key_ok)
        pthread_setspecific(zctx_key, z);
    tl_zctx = z;
    return z;
}

/* Level 3 with a content checksum: RocksDB checksums its own blocks, but the 4 bytes
 * also catch a block damaged before it was written or by a bug of ours. */
static ZSTD_CCtx *sto_cctx_new(void)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();

    if (c == NULL)
        return NULL;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, STO_ZSTD_LEVEL)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1))) {
        ZSTD_freeCCtx(c);
        return NULL;
    }
    return c;
}

static void sto_zctx_free(void *p)
{
    struct sto_zctx *z = p;

    sto_tl_ahead_retire(z->scratch.ahead); /* joins its thread, which has its own zctx */
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    vg_arena_destroy(z->scratch.arena);
    vg_free(z->scratch.buf);
    vg_free(z->scratch.ent);
    vg_free(z);
    tl_zctx = NULL;
}
