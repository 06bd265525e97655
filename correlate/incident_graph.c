/*
 * incident_graph.c - builds a Vigil__Incident (summary, severity, graph) from the alerts
 * of one incident held by the incident stage.
 *
 * Graph: one node per alert, machine, process (of the alerts' process trees; the same
 * process in two alerts is one node, which shows the lineage), file (by SHA256; a file
 * without a hash is scoped to its machine), address, domain, URL, user and registry key.
 * Edges: alert raised_on machine, alert triggered_by process, process parent_of process,
 * alert executed file (process image), alert touched file, alert connected_to address or
 * domain, alert requested url, alert used_account user, alert modified registry key,
 * alert targets machine (a machine entity other than its own). Common entities are left
 * out: they link nothing and would connect everything. Alerts are taken in (time, id)
 * order and nodes and edges are emitted in first-seen order, so the message depends only
 * on the set of alerts.
 *
 * THREAD SAFETY: the incident stage's thread only.
 */
#include "incident.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shared with incident.c (the module keeps one public header). */
struct ci_alert;
int cor_inc_build(cor_incidents *ci, struct ci_alert *root, vg_arena *arena, Vigil__Incident **out);
struct ci_alert **cor_inc_members(struct ci_alert *root, size_t *n);
const uint8_t *cor_inc_alert_packed(const struct ci_alert *x, size_t *len);
const char *cor_inc_alert_tenant(const struct ci_alert *x);
void cor_inc_alert_incident_id(const struct ci_alert *x, char *buf);
uint64_t cor_inc_entity_key(const char *tenant, Vigil__EntityKind kind, const char *value,
                            const char *sha256);
bool cor_inc_entity_common(cor_incidents *ci, uint64_t key);

struct ci_graph {
    vg_arena *a;
    Vigil__GraphNode **nodes;
    size_t nnodes, capnodes;
    Vigil__GraphEdge **edges;
    size_t nedges, capedges;
    struct vg_u64map seen; /* hash of a node id or an edge -> 1 */
    int err;
};

/* ---- small helpers ---------------------------------------------------------------- */

static char *ci_fmt(vg_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *ci_fmt(vg_arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = vg_arena_alloc(a, (size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static char *ci_lower(vg_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *d = vg_arena_alloc(a, n + 1);

    if (d == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    return d;
}

static const char *ci_basename(const char *path)
{
    const char *b = path;

    for (const char *p = path; *p; p++)
        if (*p == '\\' || *p == '/')
            b = p + 1;
    return *b ? b : path;
}

static int ci_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes duplicates and empty strings; returns the new count. */
static size_t ci_sort_unique(char **v, size_t n)
{
    size_t k = 0;

    qsort(v, n, sizeof(*v), ci_strcmp);
    for (size_t i = 0; i < n; i++)
        if (v[i][0] != '\0' && (k == 0 || strcmp(v[k - 1], v[i]) != 0))
            v[k++] = v[i];
    return k;
}

/* ---- graph builder ---------------------------------------------------------------- */

static bool ci_seen(struct ci_graph *g, const char *a, const char *b, const char *c)
{
    uint64_t h = vg_hash64(a, strlen(a) + 1, 0x9e3779b97f4a7c15ULL);

    if (b)
        h = vg_hash64(b, strlen(b) + 1, h);
    if (c)
        h = vg_hash64(c, strlen(c) + 1, h);
    h = h ? h : 1;
    if (vg_u64map_get(&g->seen, h) != NULL)
        return true;
    if (vg_u64map_put(&g->seen, h, (void *)1) < 0)
        g->err = -VG_ENOMEM;
    return false;
}

static int ci_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    void *p;
    size_t c;

    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 32;
    p = vg_realloc(*arr, c * elem);
    if (p == NULL)
        return -VG_ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

/* Adds a node unless its id is known; returns id (NULL after an allocation failure). */
static const char *ci_node(struct ci_graph *g, char *id, const char *kind, const char *label)
{
    Vigil__GraphNode *n;

    if (id == NULL || label == NULL) {
        g->err = -VG_ENOMEM;
        return NULL;
    }
    if (ci_seen(g, "n", id, NULL))
        return id;
    n = vg_arena_alloc(g->a, sizeof(*n));
    if (n == NULL || ci_grow((void **)&g->nodes, &g->capnodes, g->nnodes, sizeof(*n)) < 0) {
        g->err = -VG_ENOMEM;
        return NULL;
    }
    vigil__graph_node__init(n);
    n->id = id;
    n->kind = (char *)kind;
    n->label = (char *)label;
    g->nodes[g->nnodes++] = n;
    return id;
}

static void ci_edge(struct ci_graph *g, const char *from, const char *to, const char *relation)
{
    Vigil__GraphEdge *e;

    if (from == NULL || to == NULL || ci_seen(g, from, to, relation))
        return;
    e = vg_arena_alloc(g->a, sizeof(*e));
    if (e == NULL || ci_grow((void **)&g->edges, &g->capedges, g->nedges, sizeof(*e)) < 0) {
        g->err = -VG_ENOMEM;
        return;
    }
    vigil__graph_edge__init(e);
    e->from = (char *)from;
    e->to = (char *)to;
    e->relation = (char *)relation;
    g->edges[g->nedges++] = e;
}

static const char *ci_machine_node(struct ci_graph *g, const char *machine, const char *name)
{
    return ci_node(g, ci_fmt(g->a, "machine:%s", machine), "machine",
                   name && name[0] ? name : machine);
}

static void ci_graph_tree(struct ci_graph *g, const Vigil__Alert *al, const char *anode)
{
    const char **ids = vg_arena_alloc(g->a, (al->n_process_tree + 1) * sizeof(*ids));

    if (ids == NULL) {
        g->err = -VG_ENOMEM;
        return;
    }
    for (size_t i = 0; i < al->n_process_tree; i++) {
        const Vigil__ProcessNode *p = al->process_tree[i];

        ids[i] =
            ci_node(g,
                    ci_fmt(g->a, "process:%s:%" PRIu32 ":%" PRId64, al->machine_id, p->pid,
                           p->creation_time_us),
                    "process", ci_fmt(g->a, "%s (%" PRIu32 ")", ci_basename(p->image), p->pid));
        if (p->trigger)
            ci_edge(g, anode, ids[i], "triggered_by");
    }
    for (size_t i = 0; i < al->n_process_tree; i++) {
        int32_t pi = al->process_tree[i]->parent_index;

        if (pi >= 0 && (size_t)pi < al->n_process_tree && (size_t)pi != i)
            ci_edge(g, ids[pi], ids[i], "parent_of");
    }
}

/* One entity of an alert as a node and an edge from the alert. */
static void ci_graph_entity(cor_incidents *ci, struct ci_graph *g, const Vigil__Alert *al,
                            const char *anode, const Vigil__Entity *en)
{
    uint64_t key = cor_inc_entity_key(al->tenant_id, en->kind, en->value, en->sha256);
    vg_arena *a = g->a;
    const char *n;

    if (key != 0 && cor_inc_entity_common(ci, key))
        return;
    switch (en->kind) {
    case VIGIL__ENTITY_KIND__ENTITY_MACHINE:
        if (strcmp(en->value, al->machine_id) != 0 && en->value[0])
            ci_edge(g, anode, ci_machine_node(g, en->value, NULL), "targets");
        return;
    case VIGIL__ENTITY_KIND__ENTITY_PROCESS:
        if (key == 0)
            return; /* the process tree shows it */
        n = ci_node(g, ci_fmt(a, "file:%s", ci_lower(a, en->sha256)), "file",
                    ci_basename(en->value));
        ci_edge(g, anode, n, "executed");
        return;
    case VIGIL__ENTITY_KIND__ENTITY_FILE:
        if (key != 0)
            n = ci_node(g, ci_fmt(a, "file:%s", ci_lower(a, en->sha256)), "file",
                        en->value[0] ? ci_basename(en->value) : en->sha256);
        else if (en->value[0])
            n = ci_node(g, ci_fmt(a, "file:%s:%s", al->machine_id, en->value), "file",
                        ci_basename(en->value));
        else
            return;
        ci_edge(g, anode, n, "touched");
        return;
    default:
        break;
    }
    if (key == 0 && en->kind != VIGIL__ENTITY_KIND__ENTITY_REGISTRY)
        return; /* loopback, local accounts: not identities */
    switch (en->kind) {
    case VIGIL__ENTITY_KIND__ENTITY_IP:
        n = ci_node(g, ci_fmt(a, "address:%s", ci_lower(a, en->value)), "address", en->value);
        ci_edge(g, anode, n, "connected_to");
        break;
    case VIGIL__ENTITY_KIND__ENTITY_DOMAIN:
        n = ci_node(g, ci_fmt(a, "domain:%s", ci_lower(a, en->value)), "domain", en->value);
        ci_edge(g, anode, n, "connected_to");
        break;
    case VIGIL__ENTITY_KIND__ENTITY_URL:
        n = ci_node(g, ci_fmt(a, "url:%s", en->value), "url", en->value);
        ci_edge(g, anode, n, "requested");
        break;
    case VIGIL__ENTITY_KIND__ENTITY_USER:
        n = ci_node(g, ci_fmt(a, "user:%s", ci_lower(a, en->value)), "user", en->value);
        ci_edge(g, anode, n, "used_account");
        break;
    case VIGIL__ENTITY_KIND__ENTITY_REGISTRY:
        if (en->value[0] == '\0')
            return;
        n = ci_node(g, ci_fmt(a, "registry:%s:%s", al->machine_id, en->value), "registry",
                    ci_basename(en->value));
        ci_edge(g, anode, n, "modified");
        break;
    default:
        break;
    }
}

static void ci_graph_alert(cor_incidents *ci, struct ci_graph *g, const Vigil__Alert *al)
{
    const char *anode =
        ci_node(g, ci_fmt(g->a, "alert:%s", al->id), "alert", al->title[0] ? al->title : al->id);

    if (al->machine_id[0])
        ci_edge(g, anode, ci_machine_node(g, al->machine_id, al->machine_name), "raised_on");
    ci_graph_tree(g, al, anode);
    for (size_t i = 0; i < al->n_entities; i++)
        if (al->entities[i] != NULL)
            ci_graph_entity(ci, g, al, anode, al->entities[i]);
}

static int ci_graph_build(cor_incidents *ci, vg_arena *a, Vigil__Alert **al, size_t n,
                          Vigil__Incident *inc)
{
    struct ci_graph g = {.a = a};
    int rc;

    if (vg_u64map_init(&g.seen, 64 * n) < 0)
        return -VG_ENOMEM;
    for (size_t i = 0; i < n && g.err == 0; i++)
        ci_graph_alert(ci, &g, al[i]);
    rc = g.err;
    if (rc == 0) {
        inc->nodes = vg_arena_alloc(a, (g.nnodes + 1) * sizeof(*inc->nodes));
        inc->edges = vg_arena_alloc(a, (g.nedges + 1) * sizeof(*inc->edges));
        if (inc->nodes == NULL || inc->edges == NULL) {
            rc = -VG_ENOMEM;
        } else {
            memcpy(inc->nodes, g.nodes, g.nnodes * sizeof(*g.nodes));
            memcpy(inc->edges, g.edges, g.nedges * sizeof(*g.edges));
            inc->n_nodes = g.nnodes;
            inc->n_edges = g.nedges;
        }
    }
    vg_free(g.nodes);
    vg_free(g.edges);
    vg_u64map_free(&g.seen);
    return rc;
}

/* ---- summary ---------------------------------------------------------------------- */

/* The severity rule (incident.h): the highest, one level up for breadth. */
static Vigil__Severity ci_severity(Vigil__Alert **al, size_t n, size_t nmachines, size_t ntactics)
{
    Vigil__Severity s = VIGIL__SEVERITY__SEVERITY_INFORMATIONAL;

    for (size_t i = 0; i < n; i++)
        if (al[i]->severity > s && al[i]->severity <= VIGIL__SEVERITY__SEVERITY_HIGH)
            s = al[i]->severity;
    if ((nmachines >= 3 || ntactics >= 3) && s < VIGIL__SEVERITY__SEVERITY_HIGH)
        s = (Vigil__Severity)(s + 1);
    return s;
}

static Vigil__AlertStatus ci_status(Vigil__Alert **al, size_t n)
{
    bool all_resolved = true, any_progress = false;

    for (size_t i = 0; i < n; i++) {
        all_resolved &= al[i]->status == VIGIL__ALERT_STATUS__ALERT_STATUS_RESOLVED;
        any_progress |= al[i]->status != VIGIL__ALERT_STATUS__ALERT_STATUS_NEW;
    }
    return all_resolved   ? VIGIL__ALERT_STATUS__ALERT_STATUS_RESOLVED
           : any_progress ? VIGIL__ALERT_STATUS__ALERT_STATUS_IN_PROGRESS
                          : VIGIL__ALERT_STATUS__ALERT_STATUS_NEW;
}

/* The top alert: highest severity, then earliest (al is in time order). */
static const Vigil__Alert *ci_top(Vigil__Alert **al, size_t n)
{
    const Vigil__Alert *top = al[0];

    for (size_t i = 1; i < n; i++)
        if (al[i]->severity > top->severity)
            top = al[i];
    return top;
}

static char *ci_title(vg_arena *a, Vigil__Alert **al, size_t n, size_t nmachines)
{
    const Vigil__Alert *top = ci_top(al, n);
    const char *mname = top->machine_name[0] ? top->machine_name : top->machine_id;

    if (n == 1)
        return ci_fmt(a, "%s", top->title);
    if (nmachines <= 1)
        return ci_fmt(a, "Multi-stage incident on %s (%zu alerts): %s", mname, n, top->title);
    return ci_fmt(a, "Multi-stage incident involving %zu machines (%zu alerts): %s", nmachines, n,
                  top->title);
}

static int ci_summary(vg_arena *a, Vigil__Alert **al, size_t n, Vigil__Incident *inc)
{
    size_t ntac = 0, k = 0;

    inc->alert_ids = vg_arena_alloc(a, n * sizeof(char *));
    inc->machine_ids = vg_arena_alloc(a, n * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        ntac += al[i]->n_mitre_tactics;
    inc->mitre_tactics = vg_arena_alloc(a, (ntac + 1) * sizeof(char *));
    if (inc->alert_ids == NULL || inc->machine_ids == NULL || inc->mitre_tactics == NULL)
        return -VG_ENOMEM;
    inc->first_event_us = al[0]->first_event_us;
    inc->last_event_us = al[0]->last_event_us;
    for (size_t i = 0; i < n; i++) {
        inc->alert_ids[i] = al[i]->id;
        inc->machine_ids[i] = al[i]->machine_id;
        for (size_t j = 0; j < al[i]->n_mitre_tactics; j++)
            inc->mitre_tactics[k++] = al[i]->mitre_tactics[j];
        inc->first_event_us = VG_MIN(inc->first_event_us, al[i]->first_event_us);
        inc->last_event_us = VG_MAX(inc->last_event_us, al[i]->last_event_us);
    }
    inc->n_alert_ids = n;
    inc->n_machine_ids = ci_sort_unique(inc->machine_ids, n);
    inc->n_mitre_tactics = ci_sort_unique(inc->mitre_tactics, k);
    inc->severity = ci_severity(al, n, inc->n_machine_ids, inc->n_mitre_tactics);
    inc->status = ci_status(al, n);
    inc->title = ci_title(a, al, n, inc->n_machine_ids);
    return inc->title ? 0 : -VG_ENOMEM;
}

int cor_inc_build(cor_incidents *ci, struct ci_alert *root, vg_arena *arena, Vigil__Incident **out)
{
    ProtobufCAllocator alloc;
    struct ci_alert **m;
    Vigil__Alert **al = NULL;
    Vigil__Incident *inc;
    char id[COR_INCIDENT_ID_MAX];
    size_t n = 0;
    int rc = -VG_ENOMEM;

    m = cor_inc_members(root, &n);
    if (m == NULL)
        return -VG_ENOMEM;
    vg_arena_pb_allocator(arena, &alloc);
    al = vg_arena_alloc(arena, n * sizeof(*al));
    inc = vg_arena_alloc(arena, sizeof(*inc));
    if (al == NULL || inc == NULL)
        goto out_free_members;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *p = cor_inc_alert_packed(m[i], &len);

        al[i] = vigil__alert__unpack(&alloc, len, p);
        if (al[i] == NULL)
            goto out_free_members; /* packed by us: only memory can fail */
    }
    vigil__incident__init(inc);
    cor_inc_alert_incident_id(m[0], id);
    inc->id = ci_fmt(arena, "%s", id);
    inc->tenant_id = ci_fmt(arena, "%s", cor_inc_alert_tenant(m[0]));
    if (inc->id == NULL || inc->tenant_id == NULL)
        goto out_free_members;
    rc = ci_summary(arena, al, n, inc);
    if (rc == 0)
        rc = ci_graph_build(ci, arena, al, n, inc);
    if (rc == 0)
        *out = inc;
out_free_members:
    vg_free(m);
    return rc;
}
