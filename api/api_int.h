/*
 * api_int.h - pieces shared by the api/ sources and their tests: a growable string
 * buffer and protobuf-to-JSON rendering. Not part of the public interface.
 *
 * THREAD SAFETY: reentrant; a buffer belongs to one thread.
 */
#ifndef VG_API_INT_H
#define VG_API_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* A growable NUL-terminated string. After an allocation failure oom is set, later appends
 * are ignored, and the owner reports -VG_ENOMEM once at the end. */
struct api_buf {
    char *p; /* vg_malloc'd; NULL until the first append */
    size_t len, cap;
    bool oom;
};

void api_buf_append(struct api_buf *b, const char *s, size_t n);
void api_buf_puts(struct api_buf *b, const char *s);
void api_buf_printf(struct api_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Gives the string to the caller (vg_free) and resets b; NULL when oom (b freed). A buffer
 * with nothing appended yields "". */
char *api_buf_take(struct api_buf *b, size_t *len);
void api_buf_free(struct api_buf *b);

/* Any protobuf-c message as a JSON object: field names from the .proto, enums by value
 * name, bytes as hex, 64-bit integers beyond JSON's safe range as strings, unset oneof
 * members and absent sub-messages left out. New reference, or NULL on allocation
 * failure. */
json_t *api_pb_to_json(const ProtobufCMessage *m);

#endif /* VG_API_INT_H */
