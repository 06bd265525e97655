/*
 * incident_out.c - an incident as one JSON line and its graph as Graphviz DOT. JSON field
 * names are stable: downstream tools parse them.
 *
 * THREAD SAFETY: reentrant.
 */
#include "incident.h"
#include "correlate.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* A growable string for the DOT text. */
struct ci_buf {
    char *p;
    size_t len, cap;
    bool err;
};

static json_t *ci_json_time(int64_t ts_us)
{
    char buf[32];

    return json_string(vg_fmt_time(ts_us, buf));
}

/* json_string returns NULL for invalid UTF-8; such bytes are replaced rather than lost. */
static json_t *ci_json_str(const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *fixed;
    size_t n;

    if (j != NULL)
        return j;
    n = strlen(s);
    fixed = vg_malloc(n + 1);
    if (fixed == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        fixed[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_string(fixed);
    vg_free(fixed);
    return j;
}

static json_t *ci_json_strs(char **v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, ci_json_str(v[i]));
    return arr;
}

static const char *ci_status_name(Vigil__AlertStatus s)
{
    return s == VIGIL__ALERT_STATUS__ALERT_STATUS_NEW           ? "New"
           : s == VIGIL__ALERT_STATUS__ALERT_STATUS_IN_PROGRESS ? "InProgress"
                                                                : "Resolved";
}

char *cor_incident_to_json(const Vigil__Incident *inc)
{
    json_t *o = json_object(), *nodes = json_array(), *edges = json_array();
    char *out = NULL;

    if (o == NULL || nodes == NULL || edges == NULL)
        goto out_free;
    for (size_t i = 0; i < inc->n_nodes; i++) {
        json_t *n = json_object();

        json_object_set_new(n, "id", ci_json_str(inc->nodes[i]->id));
        json_object_set_new(n, "kind", ci_json_str(inc->nodes[i]->kind));
        json_object_set_new(n, "label", ci_json_str(inc->nodes[i]->label));
        json_array_append_new(nodes, n);
    }
    for (size_t i = 0; i < inc->n_edges; i++) {
        json_t *e = json_object();

        json_object_set_new(e, "from", ci_json_str(inc->edges[i]->from));
        json_object_set_new(e, "to", ci_json_str(inc->edges[i]->to));
        json_object_set_new(e, "relation", ci_json_str(inc->edges[i]->relation));
        json_array_append_new(edges, e);
    }
    json_object_set_new(o, "id", ci_json_str(inc->id));
    json_object_set_new(o, "tenant", ci_json_str(inc->tenant_id));
    json_object_set_new(o, "title", ci_json_str(inc->title));
    json_object_set_new(o, "severity", json_string(cor_severity_name(inc->severity)));
    json_object_set_new(o, "status", json_string(ci_status_name(inc->status)));
    json_object_set_new(o, "alert_ids", ci_json_strs(inc->alert_ids, inc->n_alert_ids));
    json_object_set_new(o, "machines", ci_json_strs(inc->machine_ids, inc->n_machine_ids));
    json_object_set_new(o, "first_event", ci_json_time(inc->first_event_us));
    json_object_set_new(o, "last_event", ci_json_time(inc->last_event_us));
    json_object_set_new(o, "tactics", ci_json_strs(inc->mitre_tactics, inc->n_mitre_tactics));
    json_object_set(o, "nodes", nodes);
    json_object_set(o, "edges", edges);
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out_free:
    json_decref(nodes);
    json_decref(edges);
    json_decref(o);
    return out;
}

/* ---- DOT -------------------------------------------------------------------------- */

static void ci_put(struct ci_buf *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;

        while (b->len + n + 1 > cap)
            cap *= 2;
        p = vg_realloc(b->p, cap);
        if (p == NULL) {
            b->err = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void ci_puts(struct ci_buf *b, const char *s)
{
    ci_put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t ci_utf8_len(const unsigned char *s)
{
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A DOT double-quoted string. Backslashes are doubled because DOT labels give \N, \l, \n
 * ... meaning (a Windows path holds plenty); quotes escaped; control bytes and invalid
 * UTF-8 become '?'. */
static void ci_put_quoted(struct ci_buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");

    ci_put(b, "\"", 1);
    while (*p) {
        size_t n = ci_utf8_len(p);

        if (*p == '"' || *p == '\\') {
            ci_put(b, "\\", 1);
            ci_put(b, (const char *)p, 1);
        } else if (*p == '\n') {
            ci_put(b, "\\n", 2);
        } else if (n == 0 || *p < 0x20 || *p == 0x7f) {
            ci_put(b, "?", 1);
            n = 1;
        } else {
            ci_put(b, (const char *)p, n);
        }
        p += n ? n : 1;
    }
    ci_put(b, "\"", 1);
}

static const char *ci_shape(const char *kind)
{
    static const struct {
        const char *kind, *attrs;
    } shapes[] = {
        {"alert", "shape=octagon, style=filled, fillcolor=\"#f4cccc\""},
        {"machine", "shape=box3d"},
        {"process", "shape=box, style=rounded"},
        {"file", "shape=note"},
        {"address", "shape=ellipse, style=dashed"},
        {"domain", "shape=ellipse, style=dashed"},
        {"url", "shape=ellipse, style=dotted"},
        {"user", "shape=house"},
        {"registry", "shape=folder"},
    };

    for (size_t i = 0; kind && i < VG_ARRAY_SIZE(shapes); i++)
        if (strcmp(kind, shapes[i].kind) == 0)
            return shapes[i].attrs;
    return "shape=ellipse";
}

char *cor_incident_to_dot(const Vigil__Incident *inc)
{
    struct ci_buf b = {0};

    ci_puts(&b, "digraph incident {\n  graph [labelloc=t, label=");
    ci_put_quoted(&b, inc->title);
    ci_puts(&b, ", rankdir=LR];\n  node [fontname=\"Helvetica\", fontsize=10];\n"
                "  edge [fontname=\"Helvetica\", fontsize=8];\n  comment=");
    ci_put_quoted(&b, inc->id);
    ci_puts(&b, ";\n");
    for (size_t i = 0; i < inc->n_nodes; i++) {
        const Vigil__GraphNode *n = inc->nodes[i];

        ci_puts(&b, "  ");
        ci_put_quoted(&b, n->id);
        ci_puts(&b, " [label=");
        ci_put_quoted(&b, n->label);
        ci_puts(&b, ", ");
        ci_puts(&b, ci_shape(n->kind));
        ci_puts(&b, "];\n");
    }
    for (size_t i = 0; i < inc->n_edges; i++) {
        const Vigil__GraphEdge *e = inc->edges[i];

        ci_puts(&b, "  ");
        ci_put_quoted(&b, e->from);
        ci_puts(&b, " -> ");
        ci_put_quoted(&b, e->to);
        ci_puts(&b, " [label=");
        ci_put_quoted(&b, e->relation);
        ci_puts(&b, "];\n");
    }
    ci_puts(&b, "}\n");
    if (b.err) {
        vg_free(b.p);
        return NULL;
    }
    return b.p;
}
