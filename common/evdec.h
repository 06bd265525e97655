/*
 * evdec.h - vigil.Event records decoded in one pass into an arena (evdec.c).
 *
 * THREAD SAFETY: reentrant; the arena belongs to the calling thread.
 */
#ifndef VG_EVDEC_H
#define VG_EVDEC_H

#include <stddef.h>
#include <stdint.h>

#include "telemetry.pb-c.h"
#include "vg.h"

/* Decodes a serialized vigil.Event as protobuf-c's packer writes it (each known field at
 * most once, no unknown fields) into memory from `a`; NULL when the record is anything
 * else or out of memory. The event lives as long as the arena's memory. */
Vigil__Event *vg_event_decode(vg_arena *a, const uint8_t *p, size_t len);

/* vg_event_decode, or protobuf-c's unpacker with `alloc` when that gives up: the result
 * is protobuf-c's on every input, NULL for a record that does not decode. */
Vigil__Event *vg_event_unpack(vg_arena *a, ProtobufCAllocator *alloc, const uint8_t *p, size_t len);

#endif
