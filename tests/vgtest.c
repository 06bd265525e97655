#include "vgtest.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *vgt_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (asprintf(&p, "%s/vigil-%s-XXXXXX", base, tag) < 0)
        return NULL;
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static int vgt_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void vgt_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, vgt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *vgt_shared(const char *rel)
{
    char *p;

    if (asprintf(&p, "%s/data/%s", VG_SHARED_DIR, rel) < 0)
        return NULL;
    return p;
}

char *vgt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else if (buf != NULL) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}
