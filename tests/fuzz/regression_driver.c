/*
 * regression_driver.c - replays saved fuzz inputs without libFuzzer: a plain main() that
 * feeds every file of the directories (or files) named on the command line to the
 * harness's LLVMFuzzerTestOneInput, in sorted order, once each. Linked with one harness
 * per executable; ctest runs it over tests/fuzz/corpus/<name>/ in the ordinary build, so
 * `make test` replays every corpus. A harness aborts on a broken property, and a
 * sanitizer build reports what libFuzzer would have reported.
 *
 * Fails (exit 1) when an argument cannot be read or holds no input at all: a replay of
 * nothing would pass for the wrong reason.
 *
 * THREAD MODEL: single-threaded.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "storage.h"

static int fuzz_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "regression: cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        return -1;
    }
    /* An exact-size heap copy, so that ASan sees any read past the input's end. */
    buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf == NULL || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)) {
        fprintf(stderr, "regression: cannot read %s\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 0;
}

/* Returns the number of inputs replayed, or -1. */
static long fuzz_replay(const char *path)
{
    struct dirent **ents = NULL;
    struct stat st;
    long done = 0;
    int n;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "regression: %s does not exist\n", path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return fuzz_replay_file(path) == 0 ? 1 : -1;
    n = scandir(path, &ents, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "regression: cannot list %s\n", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char full[4096];

        if (done >= 0 && ents[i]->d_name[0] != '.' &&
            (size_t)snprintf(full, sizeof(full), "%s/%s", path, ents[i]->d_name) < sizeof(full) &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode))
            done = fuzz_replay_file(full) == 0 ? done + 1 : -1;
        free(ents[i]);
    }
    free(ents);
    return done;
}

int main(int argc, char **argv)
{
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        long n = fuzz_replay(argv[i]);

        if (n < 0)
            return 1;
        printf("%s: %ld inputs replayed\n", argv[i], n);
        total += n;
    }
    sto_thread_cleanup();
    if (total == 0) {
        fprintf(stderr, "regression: no inputs\n");
        return 1;
    }
    printf("regression: %ld inputs replayed, all passed\n", total);
    return 0;
}
