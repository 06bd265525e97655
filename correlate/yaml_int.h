/*
 * yaml_int.h - the small libyaml helpers the Sigma rule and correlation loaders share.
 *
 * THREAD SAFETY: reentrant; documents belong to the loading thread.
 */
#ifndef VG_YAML_INT_H
#define VG_YAML_INT_H

#include <stdint.h>

#include <yaml.h>

#include "rules.h"
#include "vg.h"

/* The value node of key in a mapping node, or NULL (also when map is not a mapping). */
yaml_node_t *cor_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key);
/* A scalar node's text, or NULL when n is not a scalar. */
const char *cor_yaml_scalar(yaml_node_t *n);
/* cor_yaml_scalar(cor_yaml_get(doc, map, key)). */
const char *cor_yaml_str(yaml_document_t *doc, yaml_node_t *map, const char *key);
/* A Sigma duration ("30s", "90m", "1h", "2d", at most a year) in microseconds, or -1 when
 * malformed. */
int64_t cor_duration_us(const char *s);

/* A Sigma level -> severity: informational, low, medium (also when missing or unknown),
 * high and critical -> High. */
Vigil__Severity cor_rule_severity(const char *level);
/* Fills ri's techniques, tactics and category from a rule's tags node (NULL: none), in
 * arena. Returns 0 or -VG_ENOMEM. */
int cor_rule_tags(vg_arena *arena, yaml_document_t *doc, yaml_node_t *tags,
                  struct cor_rule_info *ri);

#endif
