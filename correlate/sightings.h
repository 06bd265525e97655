/*
 * sightings.h - the entities each machine's telemetry shows (binaries by SHA256, remote
 * addresses, domains, accounts), collected by a shard for the incident stage's prevalence.
 *
 * Why: the incident stage must not link alerts through an entity that is common in the
 * tenant (a system binary's hash, a DNS server's address). Learnt from alerts alone,
 * prevalence only counts machines that alerted: two alerting machines that both ran
 * powershell.exe share its hash, and nothing says every other machine runs it too. So
 * every shard reports what its machines' telemetry shows, and the tenant's machine count
 * comes from the same reports (a machine with no entity still reports itself), whichever
 * instance consumes its telemetry.
 *
 * Volume: a (machine, entity) pair is reported at most once per event-time day, which
 * keeps the incident stage's records fresh (their window is days) at a few hundred small
 * entries per machine and day. The dedupe memory is a fixed-size lossy cache (slots of
 * 8 bytes, a collision only means a repeated report, which the incident stage ignores),
 * so it does not grow with the fleet.
 *
 * THREAD SAFETY: none; a cor_sightings belongs to one shard thread. cor_event_entities is
 * reentrant.
 */
#ifndef VG_SIGHTINGS_H
#define VG_SIGHTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "alert.pb-c.h"
#include "telemetry.pb-c.h"
#include "vg.h"

/* Calls fn for each linking entity an event names besides its machine: the process (image
 * and SHA256) and its account, a file with its hash, remote address, domain and URL of a
 * connection, a DNS query's name, a registry key, a logon's account (DOMAIN\account) and
 * source address. Values are only valid during the call; empty ones are skipped. */
typedef void (*cor_entity_fn)(void *ctx, Vigil__EntityKind kind, const char *value,
                              const char *sha256);
void cor_event_entities(const Vigil__Event *ev, cor_entity_fn fn, void *ctx);

typedef struct cor_sightings cor_sightings;

struct cor_sightings_stats {
    uint64_t reported; /* (machine, entity) pairs queued (not counting the machine itself) */
    uint64_t repeats;  /* pairs already reported that day (cache hits), likewise */
};

/* cache_slots: the dedupe cache's size, rounded up to a power of two (0: 2^20, 8 MiB).
 * Returns NULL on allocation failure. */
cor_sightings *cor_sightings_new(size_t cache_slots);
void cor_sightings_free(cor_sightings *cs); /* NULL is fine */

/*
 * Notes the prevalence-counted entities of ev (hashes, addresses, domains, accounts;
 * not registry keys or URLs) on the machine (mkey: vg_machine_key of tenant and machine).
 * Pairs not yet reported on ev's day are queued. Returns 0 or -VG_ENOMEM (what was queued
 * stays; the rest is reported with a later event).
 */
int cor_sightings_event(cor_sightings *cs, uint64_t mkey, const char *tenant,
                        const char *machine_id, const Vigil__Event *ev);

/* Moves everything queued into arena as one Sightings message per machine; *out is an
 * arena array of *n pointers. Returns 0 or -VG_ENOMEM (then nothing is lost: the queue
 * stays for the next call). */
int cor_sightings_drain(cor_sightings *cs, vg_arena *arena, Vigil__Sightings ***out, size_t *n);

void cor_sightings_get_stats(const cor_sightings *cs, struct cor_sightings_stats *st);

#endif /* VG_SIGHTINGS_H */
