/*
 * tools.c - vigil broker, vigil import, vigil replay, vigil alert decode: the embedded
 * broker on its own, real recordings into telemetry, and rules over a file without Kafka.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "changelog.h"
#include "cli.h"
#include "import.h"

/* ---- broker ----------------------------------------------------------------------- */

int cmd_broker(int argc, char **argv)
{
    int partitions = 6, brokers = 1;
    const char *addr_file = NULL, *group = "vigil";
    ing_mock *m;
    char err[256];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc)
            partitions = atoi(argv[++i]);
        else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
            brokers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--address-file") == 0 && i + 1 < argc)
            addr_file = argv[++i];
        else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc)
            group = argv[++i];
        else {
            printf("usage: vigil broker [--partitions N] [--brokers N] [--address-file F]\n"
                   "                    [--group G]\n"
                   "Runs the embedded Kafka broker (librdkafka's mock cluster) alone, for\n"
                   "trials and tests: vigil run --brokers ADDRESS, kcat -b ADDRESS. It\n"
                   "cannot create topics on request: G.changelog, the correlator state of\n"
                   "consumer group G (default vigil), is created at start.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (partitions < 1 || brokers < 1 ||
        ing_mock_start(brokers, partitions, ing_default_topics, ING_DEFAULT_NTOPICS, &m, err,
                       sizeof(err)) < 0) {
        fprintf(stderr, "vigil broker: %s\n", partitions < 1 || brokers < 1 ? "bad count" : err);
        return 1;
    }
    if (ing_changelog_mock_create(m, group, partitions) < 0)
        fprintf(stderr, "vigil broker: no changelog topic for group %s\n", group);
    printf("%s\n", ing_mock_bootstraps(m));
    fflush(stdout);
    if (addr_file != NULL) {
        char tmp[4096];
        FILE *f;

        /* Written whole then renamed, so a reader never sees half an address. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", addr_file);
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%s\n", ing_mock_bootstraps(m)) < 0 || fclose(f) != 0 ||
            rename(tmp, addr_file) != 0) {
            perror(addr_file);
            ing_mock_stop(m);
            return 1;
        }
    }
    cli_install_signals();
    while (!cli_interrupted()) {
        struct timespec ts = {0, 100000000};

        nanosleep(&ts, NULL);
    }
    ing_mock_stop(m);
    return 0;
}

/* ---- import ----------------------------------------------------------------------- */

int cmd_import(int argc, char **argv)
{
    const char *input = NULL, *output = NULL, *tenant = "default";
    struct cli_common c;
    struct ing_import_stats ist;
    ing_importer *im = NULL;
    ing_producer *prod = NULL;
    vg_arena *a = NULL;
    FILE *out = NULL;
    char err[256];
    uint64_t batches = 0;
    int rc = 1, k;

    cli_common_defaults(&c);
    for (int i = 1; i < argc; i++) {
        k = cli_common_opt(&c, argc, argv, &i);
        if (k < 0)
            return 2;
        if (k == 1)
            continue;
        if (strcmp(argv[i], "--input") == 0 && i + 1 < argc)
            input = argv[++i];
        else if (strcmp(argv[i], "--output") == 0 && i + 1 < argc)
            output = argv[++i];
        else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc)
            tenant = argv[++i];
        else {
            printf("usage: vigil import --input FILE.jsonl|FILE.evtx [--tenant T]\n"
                   "       (--brokers LIST [--topic telemetry] [-X k=v] | --output FILE)\n"
                   "Turns JSON lines (the schema of shared/data/telemetry), or a Windows event\n"
                   "log (.evtx, read with libevtx), into telemetry\n"
                   "batches, one per run of events of one machine, and sends them to Kafka\n"
                   "keyed by machine, or writes them to FILE: a single batch as its bare\n"
                   "protobuf bytes (what kcat -P sends as one message), several as\n"
                   "length-prefixed records (4-byte big-endian length, then the batch).\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (input == NULL || (c.brokers == NULL) == (output == NULL)) {
        fprintf(stderr, "vigil import: --input and one of --brokers or --output are required\n");
        return 2;
    }
    if ((a = vg_arena_new(1 << 16)) == NULL ||
        ing_import_open(input, tenant, &im, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil import: %s\n", err);
        goto out;
    }
    if (c.brokers != NULL) {
        struct ing_kafka_cfg kc = {.brokers = c.brokers, .props = c.props, .nprops = c.nprops};

        if (ing_producer_new(&kc, &prod, err, sizeof(err)) < 0) {
            fprintf(stderr, "vigil import: %s\n", err);
            goto out;
        }
    } else if ((out = fopen(output, "wb")) == NULL) {
        perror(output);
        goto out;
    }
    {
        /* Batches are held back by one so that a file with one batch gets it bare. */
        uint8_t *held = NULL;
        size_t held_len = 0;

        for (;;) {
            Vigil__TelemetryBatch *b;
            uint8_t *buf;
            size_t len;

            vg_arena_reset(a);
            k = ing_import_next(im, a, 1000, &b);
            if (k <= 0)
                break;
            len = vigil__telemetry_batch__get_packed_size(b);
            buf = vg_malloc(len);
            if (buf == NULL)
                break;
            vigil__telemetry_batch__pack(b, buf);
            batches++;
            if (prod != NULL) {
                ing_produce(prod, c.topic ? c.topic : "telemetry", b->machine_id,
                            strlen(b->machine_id), buf, len, NULL, 0);
                vg_free(buf);
                continue;
            }
            if (held != NULL) {
                uint8_t hdr[4] = {held_len >> 24, held_len >> 16, held_len >> 8, held_len};

                fwrite(hdr, 1, 4, out);
                fwrite(held, 1, held_len, out);
                vg_free(held);
            }
            held = buf;
            held_len = len;
        }
        if (held != NULL) {
            if (batches > 1) {
                uint8_t hdr[4] = {held_len >> 24, held_len >> 16, held_len >> 8, held_len};

                fwrite(hdr, 1, 4, out);
            }
            fwrite(held, 1, held_len, out);
            vg_free(held);
        }
    }
    ing_import_stats(im, &ist);
    fprintf(stderr,
            "vigil import: %llu lines, %llu events in %llu batches, %llu bad lines skipped, "
            "%llu events without a typed model\n",
            (unsigned long long)ist.lines, (unsigned long long)ist.events,
            (unsigned long long)batches, (unsigned long long)ist.bad_lines,
            (unsigned long long)ist.unmapped);
    rc = k < 0 ? 1 : 0;
out:
    if (out != NULL && fclose(out) != 0)
        rc = 1;
    ing_producer_destroy(prod);
    ing_import_close(im);
    vg_arena_destroy(a);
    return rc;
}

/* ---- alert decode ----------------------------------------------------------------- */

/* Reads a serialized Alert (as kcat -C -f '%s' writes one) and prints it as JSON. */
int cli_alert_decode(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    Vigil__Alert *a;
    char *js;

    if (f == NULL) {
        perror(path);
        return 1;
    }
    do {
        if (len == cap) {
            uint8_t *nb = vg_realloc(buf, cap = cap ? cap * 2 : 65536);

            if (nb == NULL)
                break;
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    if (f != stdin)
        fclose(f);
    a = buf ? vigil__alert__unpack(NULL, len, buf) : NULL;
    vg_free(buf);
    if (a == NULL) {
        fprintf(stderr, "vigil alert decode: %s is not a vigil.Alert\n", path);
        return 1;
    }
    js = cor_alert_to_json(a);
    puts(js ? js : "{}");
    free(js);
    vigil__alert__free_unpacked(a, NULL);
    return 0;
}
