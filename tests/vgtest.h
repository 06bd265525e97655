/*
 * vgtest.h - helpers shared by the cmocka tests: temporary directories, the shared data
 * folder, reading files.
 */
#ifndef VGTEST_H
#define VGTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Makes a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *vgt_tmpdir(const char *tag);
/* Removes a directory tree (rm -rf). */
void vgt_rmtree(const char *path);
/* Path under ../shared/data, malloc'd. */
char *vgt_shared(const char *rel);
/* Reads a whole file; malloc'd, NUL-terminated; NULL on error. */
char *vgt_read_file(const char *path, size_t *len);

#endif
