/*
 * u64map.c - open-addressing map from 64-bit keys to pointers (see vg.h).
 *
 * THREAD SAFETY: none; a map belongs to one thread.
 */
#include "vg.h"

#include <string.h>

static int vg_u64map_grow(struct vg_u64map *m);

int vg_u64map_init(struct vg_u64map *m, size_t expected)
{
    size_t cap = 16;

    while (cap * 7 / 10 < expected)
        cap <<= 1;
    m->keys = vg_calloc(cap, sizeof(*m->keys));
    m->vals = vg_calloc(cap, sizeof(*m->vals));
    if (m->keys == NULL || m->vals == NULL) {
        /* Left empty, so that the caller's cleanup may vg_u64map_free it like any map. */
        vg_free(m->keys);
        vg_free(m->vals);
        memset(m, 0, sizeof(*m));
        return -VG_ENOMEM;
    }
    m->cap = cap;
    m->count = 0;
    return 0;
}

void vg_u64map_free(struct vg_u64map *m)
{
    vg_free(m->keys);
    vg_free(m->vals);
    memset(m, 0, sizeof(*m));
}

static inline size_t vg_u64map_slot(const struct vg_u64map *m, uint64_t key)
{
    /* Keys are hashes already; fold the high bits in for keys that are not. */
    return (size_t)(key ^ (key >> 29)) & (m->cap - 1);
}

void *vg_u64map_get(const struct vg_u64map *m, uint64_t key)
{
    size_t i = vg_u64map_slot(m, key);

    while (m->keys[i] != 0) {
        if (m->keys[i] == key)
            return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

int vg_u64map_put(struct vg_u64map *m, uint64_t key, void *val)
{
    size_t i;

    if (VG_NEVER(key == 0))
        return -VG_EINVAL;
    if ((m->count + 1) * 10 > m->cap * 7 && vg_u64map_grow(m) < 0)
        return -VG_ENOMEM;
    i = vg_u64map_slot(m, key);
    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == 0)
        m->count++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

void *vg_u64map_del(struct vg_u64map *m, uint64_t key)
{
    size_t i = vg_u64map_slot(m, key), j;
    void *val;

    while (m->keys[i] != key) {
        if (m->keys[i] == 0)
            return NULL;
        i = (i + 1) & (m->cap - 1);
    }
    val = m->vals[i];
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    j = i;
    for (;;) {
        size_t home;

        j = (j + 1) & (m->cap - 1);
        if (m->keys[j] == 0)
            break;
        home = vg_u64map_slot(m, m->keys[j]);
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->count--;
    return val;
}

bool vg_u64map_next(const struct vg_u64map *m, size_t *pos, uint64_t *key, void **val)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->keys[i] != 0) {
            *key = m->keys[i];
            *val = m->vals[i];
            *pos = i + 1;
            return true;
        }
    }
    *pos = m->cap;
    return false;
}

static int vg_u64map_grow(struct vg_u64map *m)
{
    struct vg_u64map n;
    size_t pos = 0;
    uint64_t k;
    void *v;

    if (vg_u64map_init(&n, m->cap) < 0) /* init doubles: cap*0.7 < cap */
        return -VG_ENOMEM;
    while (vg_u64map_next(m, &pos, &k, &v))
        vg_u64map_put(&n, k, v);
    vg_u64map_free(m);
    *m = n;
    return 0;
}
