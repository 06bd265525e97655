/*
 * import.h - `vigil import`: recorded telemetry in the shared JSON-lines schema
 * (shared/data/telemetry/README.md: ts, os, host, provider, channel, event_id, record_id,
 * category, service, data{...}) turned into TelemetryBatch protobufs, one batch per run of
 * events of one (tenant, host).
 *
 * The guarantee: for every key K of a line's data, vg_evview_get(view of the imported
 * event, K) returns exactly data[K]. Values go to their typed protobuf home when there is
 * one; a value whose typed form would not render back byte for byte (hex process ids,
 * Hashes with IMPHASH, "0" ports, "" values ...) is also kept verbatim in Event.extra under
 * its own name, where it overrides the typed rendering (evview.h). Every data key without
 * a typed home goes to Event.extra. The line's envelope is kept the same way: EventID,
 * Provider_Name, Channel (and Computer, from the batch) are available to rules unless
 * data has a key of that name, which wins.
 *
 * Exceptions to the round trip: none on the shared telemetry and regression data
 * (test_import asserts zero mismatches over all 35,933 + 166 events). Known limits that
 * the data does not exercise: two data keys differing only in case cannot both come back
 * (lookups are case-insensitive, as Sigma's are). By design, not exceptions: the line's
 * category registry_event becomes the precise registry_add/delete/set/rename when the
 * EventType tells it, and categories vigil has no enum for (sysmon_status,
 * clipboard_capture) are VG_CAT_OTHER with the name kept in GenericEvent.category.
 *
 * THREAD SAFETY: an importer belongs to one thread.
 */
#ifndef ING_IMPORT_H
#define ING_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "telemetry.pb-c.h"
#include "vg.h"

typedef struct ing_importer ing_importer;

struct ing_import_stats {
    uint64_t lines;     /* non-empty lines read */
    uint64_t events;    /* events returned in batches */
    uint64_t bad_lines; /* lines that did not parse or had wrong types; skipped */
    uint64_t unmapped;  /* events with no typed model (imported as GenericEvent) */
    uint64_t shadowed;  /* data fields also kept in extra because the typed form differs */
};

/* One converted line. Everything lives in the arena given to ing_import_json_event. */
struct ing_import_line {
    const char *tenant; /* the line's "tenant", else the default */
    const char *host;   /* the line's host, else "unknown-host" */
    Vigil__Os os;
    Vigil__Event *ev;  /* seq is left 0: numbering is the caller's */
    bool generic;      /* no typed model: a GenericEvent */
    unsigned shadowed; /* data fields kept in extra as well as typed */
    unsigned residual; /* fields that still do not round-trip (0 unless a bug) */
};

/*
 * Opens a JSON-lines file ("-" is stdin, not closed). default_tenant is copied. Returns 0
 * and *out, or -VG_EIO / -VG_ENOMEM with detail in err.
 */
int ing_import_open(const char *path, const char *default_tenant, ing_importer **out, char *err,
                    size_t errlen);

/*
 * The next batch: consecutive events of one (tenant, host), at most max_events, in file
 * order (a line of another machine ends the batch and starts the next one). Event.seq
 * counts per (tenant, host) from 1 in file order; record_id is kept in extra as
 * "EventRecordID" rather than used, since it is absent for some sources and not unique
 * across recordings. Lines that do not parse (not JSON, invalid UTF-8, missing or bad
 * "ts", wrong types) are counted in bad_lines and skipped. The batch and all its strings
 * live in arena; the caller resets the arena after use.
 * Returns 1 and *out, 0 at end of input, or a negative vg_err (-VG_EIO read error,
 * -VG_ENOMEM).
 */
int ing_import_next(ing_importer *im, vg_arena *arena, size_t max_events,
                    Vigil__TelemetryBatch **out);

void ing_import_stats(const ing_importer *im, struct ing_import_stats *st);
void ing_import_close(ing_importer *im); /* NULL is fine */
/* Bytes of input read so far (for progress), or -1 when unknown. */
long long ing_import_tell(const ing_importer *im);

/*
 * Converts one parsed line into an Event in arena (strings copied). Returns 0, -VG_EINVAL
 * for a line that does not fit the schema (detail in err), or -VG_ENOMEM.
 */
int ing_import_json_event(const json_t *line, const char *default_tenant, vg_arena *arena,
                          struct ing_import_line *out, char *err, size_t errlen);

/* ---- EVTX (evtx.c) -------------------------------------------------------------------
 * Windows .evtx files read with libevtx. ing_import_open detects them by their magic
 * ("ElfFile\0" at offset 0) and turns each record into the JSON-lines schema (envelope from
 * System, data from EventData/Data[@Name] and UserData leaves by element name, category
 * and service derived as the telemetry README says), then converts it like a line: the
 * import guarantee above holds for EVTX input too. A record that does not decode counts
 * as a bad line. Unnamed EventData/Data elements are left out (no name to key them by).
 */
typedef struct ing_evtx ing_evtx;

/* True when the first n bytes of a file are an EVTX file header's magic. */
bool ing_evtx_sniff(const void *head, size_t n);
/* Opens an .evtx file. Returns 0, or -VG_EIO (not an EVTX file, corrupt header, cannot
 * read) / -VG_ENOMEM with detail in err. */
int ing_evtx_open(const char *path, ing_evtx **out, char *err, size_t errlen);
/* The next record as a new JSON object (caller json_decref()s it). Returns 1, 0 at end,
 * -VG_EINVAL for a record that does not decode (skipped: call again), -VG_ENOMEM. */
int ing_evtx_next(ing_evtx *x, json_t **out);
/* Records consumed so far. */
int ing_evtx_position(const ing_evtx *x);
void ing_evtx_close(ing_evtx *x); /* NULL is fine */
/* One record's Event XML (as libevtx renders it) to a JSON object. Returns 1, -VG_EINVAL,
 * -VG_ENOMEM. */
int ing_evtx_record_json(const char *xml, size_t len, json_t **out);

#endif /* ING_IMPORT_H */
