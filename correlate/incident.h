/*
 * incident.h - the incident stage: groups the alerts of one tenant that share entities
 * (machine, user, file or process-image SHA256, remote address, domain, URL, process
 * lineage) within a time window into incidents, and builds each incident's graph.
 *
 * Linking rule. Two alerts of the same tenant link when they share a linking entity that
 * is not common in the tenant and their times (Alert.first_event_us, which an update of
 * the alert does not move) are at most window_us apart. Incidents are the connected
 * components of that relation, so the result depends only on the set of alerts held and
 * the tenant's entity prevalence, never on the order the alerts arrived in: a replay or a
 * shuffled delivery gives the same incidents with the same ids.
 *
 * Common entities. An entity (not a machine, not a process of a lineage) is common when
 * it was seen on at least common_min_machines machines and on more than common_share of
 * the tenant's machines: a DNS server's address, a system binary's hash. Common entities
 * do not link and are left out of the graph. Prevalence is learnt from every alert and
 * from cor_incidents_observe (raw sightings from telemetry); the tenant's machine count is
 * the number of machines seen, or the number set with cor_incidents_tenant_machines.
 * When an entity becomes common, the tenant's incidents are recomputed (they may split);
 * such changes are reported through cor_incidents_next_change.
 *
 * Never linking: local accounts whose name means a different principal on every machine
 * (SYSTEM, LOCAL SERVICE, NETWORK SERVICE, root), loopback and unspecified addresses,
 * files without a hash (a path alone is not an identity across machines), registry keys.
 *
 * Incident id: "inc-" and 16 hex digits of the hash of (tenant, id of the incident's
 * earliest alert), earliest by (first_event_us, alert id). When incidents merge, the
 * merged one keeps the id of the one with the earliest alert; the other id is retired.
 * A late alert earlier than every alert of its incident renames the incident.
 *
 * Severity rule: the highest severity of the incident's alerts, raised one level (at
 * most to High) when the incident spans three or more distinct MITRE tactics or three or
 * more machines.
 *
 * Size cap: an incident holds at most max_alerts alerts. A link that would make it larger
 * is not made (counted in capped), so a machine that raises an alert every few hours for
 * months, or a chain of busy accounts, yields several incidents rather than one that
 * never closes and costs O(alerts) at every update. Past the cap, which alerts end up
 * together depends on arrival order; below it, never.
 *
 * Closing and memory: an incident closes when cor_incidents_expire finds its newest
 * activity (max Alert.last_event_us) older than the window before the tenant's newest
 * event time (or before now_us when given). A closed incident's alerts and postings are
 * freed; an alert arriving later starts a new incident. Prevalence records expire after
 * prevalence_window_us without a sighting. The caller must call cor_incidents_expire
 * regularly (e.g. at every barrier), after draining and storing the changes.
 *
 * THREAD SAFETY: none. One cor_incidents belongs to one thread (the incident stage of a
 * tenant partition); every call runs on that thread.
 */
#ifndef VG_INCIDENT_H
#define VG_INCIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.pb-c.h"
#include "vg.h"

typedef struct cor_incidents cor_incidents;

#define COR_INCIDENT_ID_MAX 24 /* "inc-" + 16 hex digits + NUL, rounded up */

struct cor_incident_cfg {
    int64_t window_us;            /* link window; default 24 h */
    double common_share;          /* common above this share of machines; default 0.2 */
    uint32_t common_min_machines; /* ...and on at least this many machines; default 3 */
    int64_t prevalence_window_us; /* sightings remembered this long; default 7 days */
    uint32_t max_alerts;          /* an incident holds at most this many; default 1000 */
};

/* What happened to an incident since the last drain. */
enum cor_incident_change_kind {
    COR_INCIDENT_UPDATED = 1, /* new or changed: fetch with cor_incidents_get and store */
    COR_INCIDENT_RETIRED = 2, /* merged into another or split: the id no longer exists */
    COR_INCIDENT_CLOSED = 3,  /* closed by expiry: its stored state is final */
};

struct cor_incident_change {
    char id[COR_INCIDENT_ID_MAX];
    const char *tenant; /* owned by the stage; valid until cor_incidents_free */
    enum cor_incident_change_kind kind;
};

struct cor_incident_stats {
    uint64_t alerts_added;   /* new alerts */
    uint64_t alerts_updated; /* alerts seen again with new content */
    uint64_t alerts_same;    /* re-deliveries with identical content */
    uint64_t rejected;       /* bad input: no id, no tenant, undecodable */
    uint64_t merges;         /* incidents joined by an alert */
    uint64_t capped;         /* links not made because of max_alerts */
    uint64_t rebuilds;       /* tenant recomputations (an entity became common...) */
    uint64_t closed;         /* incidents closed by expiry */
    uint64_t alerts_held;    /* now */
    uint64_t entities_held;  /* now, postings and prevalence records */
    uint64_t tenants;        /* now */
};

/* A new stage; cfg may be NULL for the defaults, zero fields take their default.
 * Returns NULL on allocation failure. */
cor_incidents *cor_incidents_new(const struct cor_incident_cfg *cfg);
void cor_incidents_free(cor_incidents *ci);

/*
 * Adds an alert, or updates it when its id was added before. Copies what it needs; the
 * alert stays the caller's. On success writes the id of the incident the alert now
 * belongs to into incident_id (COR_INCIDENT_ID_MAX bytes; may be NULL) and sets *changed
 * (may be NULL) when any incident changed; every change, including merges and the
 * incidents of other alerts, is also queued for cor_incidents_next_change.
 * Returns 0, -VG_EINVAL for an alert without id or tenant (counted), -VG_ENOMEM.
 */
int cor_incidents_add(cor_incidents *ci, const Vigil__Alert *a, char *incident_id, bool *changed);

/* Records that machine_id of tenant saw an entity at ts_us (a telemetry sighting, for
 * prevalence). For ENTITY_FILE and ENTITY_PROCESS the identity is sha256; value is used
 * for the other kinds. Returns 0, -VG_EINVAL, -VG_ENOMEM. */
int cor_incidents_observe(cor_incidents *ci, const char *tenant, const char *machine_id,
                          Vigil__EntityKind kind, const char *value, const char *sha256,
                          int64_t ts_us);

/* Every sighting of a Sightings message (correlate/sightings.h); one with no entities
 * registers the machine in its tenant. Returns 0 or the first error (the rest is still
 * applied). */
int cor_incidents_observe_all(cor_incidents *ci, const Vigil__Sightings *sg);

/* Sets the tenant's machine count used for prevalence (0 = count the machines seen). */
int cor_incidents_tenant_machines(cor_incidents *ci, const char *tenant, uint32_t n);

/* Whether the entity is common in the tenant now (for tests and diagnostics). */
bool cor_incidents_is_common(cor_incidents *ci, const char *tenant, Vigil__EntityKind kind,
                             const char *value, const char *sha256);

/*
 * Builds the incident in arena: id, tenant, title, severity (the rule above), alert ids
 * (ordered by time, then id), machine ids and tactics (sorted), first and last event, and
 * the graph (nodes for alerts, machines, processes, files, addresses, domains, users;
 * edges naming the relation). Deterministic: the same alerts give the same message.
 * Returns 0, -VG_ENOENT when no open incident has that id, -VG_ENOMEM.
 */
int cor_incidents_get(cor_incidents *ci, const char *incident_id, vg_arena *arena,
                      Vigil__Incident **out);

/* Pops the next queued change into *out; returns false when there are none. Changes are
 * coalesced per id (the latest kind wins) and kept in the order first recorded. */
bool cor_incidents_next_change(cor_incidents *ci, struct cor_incident_change *out);

/* Closes incidents idle for longer than the window (see above) and forgets stale
 * prevalence. now_us 0 means each tenant's newest event time. Returns the number of
 * incidents closed; each is queued as COR_INCIDENT_CLOSED. */
size_t cor_incidents_expire(cor_incidents *ci, int64_t now_us);

void cor_incidents_get_stats(const cor_incidents *ci, struct cor_incident_stats *st);

/* Output (incident_out.c; reentrant). */

/* The incident as one JSON line (no newline): id, tenant, title, severity ("High"...),
 * status, alert_ids, machines, first_event, last_event, tactics, nodes [{id, kind,
 * label}], edges [{from, to, relation}]. malloc'd (free()); NULL on allocation failure. */
char *cor_incident_to_json(const Vigil__Incident *inc);

/* The incident graph as Graphviz DOT (a digraph; quoted, escaped ids and labels; node
 * shape by kind). vg_malloc'd (vg_free()); NULL on allocation failure. */
char *cor_incident_to_dot(const Vigil__Incident *inc);

#endif /* VG_INCIDENT_H */
