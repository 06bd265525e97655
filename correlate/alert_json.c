/*
 * alert_json.c - an alert as one JSON line, for --alerts-jsonl and the investigation
 * commands. Field names are stable: downstream tools parse them.
 *
 * THREAD SAFETY: reentrant.
 */
#include "correlate.h"

#include <jansson.h>
#include <string.h>

static json_t *cor_json_time(int64_t ts_us)
{
    char buf[32];

    return json_string(vg_fmt_time(ts_us, buf));
}

static json_t *cor_json_strs(char **v, size_t n)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static const char *const cor_entity_kinds[] = {"unknown", "process",  "file",    "ip", "domain",
                                               "user",    "registry", "machine", "url"};

static json_t *cor_json_entities(const Vigil__Alert *a)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < a->n_entities; i++) {
        const Vigil__Entity *e = a->entities[i];
        json_t *o = json_object();

        json_object_set_new(o, "kind",
                            json_string((unsigned)e->kind < VG_ARRAY_SIZE(cor_entity_kinds)
                                            ? cor_entity_kinds[e->kind]
                                            : "unknown"));
        json_object_set_new(o, "value", json_string(e->value));
        if (e->sha256[0])
            json_object_set_new(o, "sha256", json_string(e->sha256));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *cor_json_evidence(const Vigil__Alert *a)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < a->n_evidence; i++) {
        const Vigil__EvidenceEvent *e = a->evidence[i];

        json_array_append_new(arr, json_pack("{s:I,s:o,s:s,s:s}", "seq", (json_int_t)e->seq, "ts",
                                             cor_json_time(e->ts_us), "kind", e->kind, "summary",
                                             e->summary));
    }
    return arr;
}

static json_t *cor_json_tree(const Vigil__Alert *a)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < a->n_process_tree; i++) {
        const Vigil__ProcessNode *p = a->process_tree[i];
        json_t *o = json_pack("{s:i,s:o,s:s,s:s,s:s,s:i,s:b}", "pid", (int)p->pid, "created",
                              cor_json_time(p->creation_time_us), "image", p->image, "command_line",
                              p->command_line, "account", p->account, "parent_index",
                              (int)p->parent_index, "trigger", p->trigger);

        if (o != NULL && p->exit_time_us)
            json_object_set_new(o, "exited", cor_json_time(p->exit_time_us));
        json_array_append_new(arr, o);
    }
    return arr;
}

char *cor_alert_to_json(const Vigil__Alert *a)
{
    json_t *o = json_object(), *gb = json_object();
    char *out;

    /* json_string refuses invalid UTF-8; input was validated at ingest, and the importer
     * only passes UTF-8, so a NULL here is a bug, and the field is simply left out. */
    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "rule_id", json_string(a->rule_id));
    json_object_set_new(o, "title", json_string(a->title));
    json_object_set_new(o, "severity", json_string(cor_severity_name(a->severity)));
    json_object_set_new(o, "category", json_string(cor_category_name(a->category)));
    json_object_set_new(o, "tenant", json_string(a->tenant_id));
    json_object_set_new(o, "machine", json_string(a->machine_id));
    json_object_set_new(o, "machine_name", json_string(a->machine_name));
    json_object_set_new(o, "detection_source", json_string(a->detection_source));
    json_object_set_new(o, "mitre_techniques",
                        cor_json_strs(a->mitre_techniques, a->n_mitre_techniques));
    json_object_set_new(o, "mitre_tactics", cor_json_strs(a->mitre_tactics, a->n_mitre_tactics));
    json_object_set_new(o, "first_event", cor_json_time(a->first_event_us));
    json_object_set_new(o, "last_event", cor_json_time(a->last_event_us));
    json_object_set_new(o, "event_count", json_integer(a->event_count));
    json_object_set_new(o, "status",
                        json_string(a->status == 0   ? "New"
                                    : a->status == 1 ? "InProgress"
                                                     : "Resolved"));
    if (a->incident_id[0])
        json_object_set_new(o, "incident_id", json_string(a->incident_id));
    for (size_t i = 0; i < a->n_group_by; i++)
        json_object_set_new(gb, a->group_by[i]->key, json_string(a->group_by[i]->value));
    if (a->n_group_by)
        json_object_set_new(o, "group_by", gb);
    else
        json_decref(gb);
    json_object_set_new(o, "description", json_string(a->description));
    json_object_set_new(o, "evidence", cor_json_evidence(a));
    json_object_set_new(o, "entities", cor_json_entities(a));
    json_object_set_new(o, "process_tree", cor_json_tree(a));
    out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return out;
}
