/*
 * yaml_util.c - libyaml helpers shared by the rule loaders (yaml_int.h).
 *
 * THREAD SAFETY: reentrant.
 */
#include "yaml_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vg.h"

yaml_node_t *cor_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    yaml_node_pair_t *p;

    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);

        if (k != NULL && k->type == YAML_SCALAR_NODE &&
            strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

const char *cor_yaml_scalar(yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

const char *cor_yaml_str(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    return cor_yaml_scalar(cor_yaml_get(doc, map, key));
}

int64_t cor_duration_us(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || !(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || v <= 0 || v > 366LL * 86400 || end[0] == '\0' || end[1] != '\0')
        return -1;
    switch (end[0]) {
    case 's':
        return v * VG_US_PER_SEC;
    case 'm':
        return v * 60 * VG_US_PER_SEC;
    case 'h':
        return v * 3600 * VG_US_PER_SEC;
    case 'd':
        return v * VG_US_PER_DAY;
    default:
        return -1;
    }
}
