/*
 * buf.c - the growable string buffer of api_int.h.
 *
 * THREAD SAFETY: reentrant; a buffer belongs to one thread.
 */
#include "api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vg.h"

static bool api_buf_reserve(struct api_buf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->oom)
        return false;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    p = vg_realloc(b->p, cap);
    if (p == NULL) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void api_buf_append(struct api_buf *b, const char *s, size_t n)
{
    if (!api_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void api_buf_puts(struct api_buf *b, const char *s)
{
    api_buf_append(b, s, strlen(s));
}

void api_buf_printf(struct api_buf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        api_buf_append(b, tmp, (size_t)n);
        return;
    }
    /* Longer than the stack buffer: format straight into the reserved tail. */
    if (!api_buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *api_buf_take(struct api_buf *b, size_t *len)
{
    char *p;

    if (b->oom) {
        api_buf_free(b);
        return NULL;
    }
    if (b->p == NULL && !api_buf_reserve(b, 0))
        return NULL;
    if (b->len == 0)
        b->p[0] = '\0';
    p = b->p;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof(*b));
    return p;
}

void api_buf_free(struct api_buf *b)
{
    vg_free(b->p);
    memset(b, 0, sizeof(*b));
}
