/*
 * fuzz.h - helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): quiet logging
 * and an in-memory file for entry points that read a path.
 *
 * THREAD MODEL: a harness runs on libFuzzer's one thread (or the regression driver's); the
 * static state here belongs to it.
 */
#ifndef VG_FUZZ_H
#define VG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vg.h"

/* The harness entry points; the regression driver calls them too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* 2026-01-05T08:00:00Z: the "now" every harness validates against, so that an input
 * behaves the same on every run (time limits are part of validation). */
#define FUZZ_NOW_US (INT64_C(1767600000) * VG_US_PER_SEC)

/* Broken input is the normal case here, and the product logs every piece of it: keep the
 * log off unless VG_FUZZ_LOG is set (to see why an input was refused). */
static inline void fuzz_quiet(void)
{
    vg_log_set_level(getenv("VG_FUZZ_LOG") != NULL ? VG_LOG_DEBUG : -1);
}

/*
 * Puts data into one memfd (made on first use, reused after) and writes a path that
 * opens it ("/proc/self/fd/N") into path. A memfd is a regular file, so loaders that
 * stat() their argument treat it as a file; nothing touches the disk. Returns 0 or -1.
 */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
    static int fd = -1;
    size_t off = 0;

    if (fd < 0 && (fd = memfd_create("vg-fuzz-input", MFD_CLOEXEC)) < 0)
        return -1;
    if (ftruncate(fd, 0) != 0)
        return -1;
    while (off < size) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);

        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    snprintf(path, pathlen, "/proc/self/fd/%d", fd);
    return 0;
}

#endif /* VG_FUZZ_H */
