/*
 * pbjson.c - any protobuf-c message as JSON, by walking its descriptor, so that the API
 * shows every field of timeline events and incidents without a hand-written mapping per
 * message (and new .proto fields appear by themselves).
 *
 * THREAD SAFETY: reentrant.
 */
#include "api_int.h"

#include <string.h>

#include "vg.h"

/* Beyond 2^53 a JSON number loses digits in most readers: such values go as strings. */
#define API_JSON_SAFE_INT (INT64_C(1) << 53)

static json_t *api_pb_value(const ProtobufCFieldDescriptor *f, const void *p);

static json_t *api_pb_int(int64_t v)
{
    char buf[32];

    if (v > -API_JSON_SAFE_INT && v < API_JSON_SAFE_INT)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return json_string(buf);
}

static json_t *api_pb_uint(uint64_t v)
{
    char buf[32];

    if (v < (uint64_t)API_JSON_SAFE_INT)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    return json_string(buf);
}

static json_t *api_pb_bytes(const ProtobufCBinaryData *d)
{
    static const char hex[] = "0123456789abcdef";
    char *s = vg_malloc(d->len * 2 + 1);
    json_t *j;

    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < d->len; i++) {
        s[2 * i] = hex[d->data[i] >> 4];
        s[2 * i + 1] = hex[d->data[i] & 15];
    }
    s[d->len * 2] = '\0';
    j = json_string(s);
    vg_free(s);
    return j;
}

static json_t *api_pb_enum(const ProtobufCFieldDescriptor *f, int v)
{
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, v);

    return ev ? json_string(ev->name) : json_integer(v);
}

/* One value of field f stored at p. */
static json_t *api_pb_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return api_pb_int(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return api_pb_uint(*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return api_pb_enum(f, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;

        /* json_string refuses invalid UTF-8: keep the field, say so. */
        json_t *j = json_string(s ? s : "");
        return j ? j : json_string("(invalid UTF-8)");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return api_pb_bytes((const ProtobufCBinaryData *)p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;

        return sub ? api_pb_to_json(sub) : json_null();
    }
    }
    return json_null();
}

static size_t api_pb_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* False for a field that is not there: an unset oneof member, an absent optional, a NULL
 * sub-message. */
static bool api_pb_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;

    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        f->type != PROTOBUF_C_TYPE_STRING)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
        return *(void *const *)(base + f->offset) != NULL;
    return true;
}

json_t *api_pb_to_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        json_t *v;

        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);

            v = json_array();
            for (size_t k = 0; v && k < n; k++)
                json_array_append_new(v, api_pb_value(f, arr + k * api_pb_size(f)));
        } else {
            if (!api_pb_present(m, f))
                continue;
            v = api_pb_value(f, base + f->offset);
        }
        if (v == NULL || json_object_set_new(o, f->name, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
