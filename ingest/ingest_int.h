/*
 * ingest_int.h - ingest's internals shared between its files (and its tests).
 */
#ifndef VG_INGEST_INT_H
#define VG_INGEST_INT_H

#include <librdkafka/rdkafka.h>

#include "ingest.h"

/* "alerts.tenant" carries alerts and, marked by this header, telemetry sightings
 * (correlate/sightings.h) for the incident stage's prevalence. */
#define ING_HDR_TYPE       "vigil-type"
#define ING_TYPE_SIGHTINGS "sightings"

/* A produced message whose delivery someone waits for (the alert outbox). */
struct ing_delivery {
    void (*done)(struct ing_delivery *d, bool ok); /* on the thread that polls the producer */
};

static inline void ing_delivered(void *opaque, bool ok)
{
    struct ing_delivery *d = opaque;

    d->done(d, ok);
}

/* A client configuration for a client of type (RD_KAFKA_PRODUCER or RD_KAFKA_CONSUMER): the
 * brokers, then cfg's -X settings but those librdkafka documents for the other type only
 * (every client gets the same -X list; librdkafka would warn about each). */
rd_kafka_conf_t *ing_conf_new(const struct ing_kafka_cfg *cfg, const char *brokers,
                              rd_kafka_type_t type, char *err, size_t errlen);
int ing_produce_opaque(ing_producer *p, const char *topic, const void *key, size_t keylen,
                       const void *val, size_t vallen, const struct ing_kv *headers,
                       size_t nheaders, struct ing_delivery *opaque);
/* After a produce on p was refused for a full queue (queue.buffering.max.*): waits up to
 * 10 ms for deliveries and returns ING_WAIT_AGAIN to try again; ING_WAIT_TOO_LARGE once the
 * queue was found with nothing queued three times running (*empty counts them; start it at
 * 0): the message alone is larger than the queue's bound and would wait forever (once could
 * be another thread's poll emptying the queue just then); ING_WAIT_DEADLINE once the
 * producer's deadline (ing_producer_set_deadline) has passed: the message (to what, for the
 * log) is given up, counted as failed and as not sent, and only the first is logged. */
enum ing_wait { ING_WAIT_AGAIN, ING_WAIT_TOO_LARGE, ING_WAIT_DEADLINE };
enum ing_wait ing_producer_wait_room(ing_producer *p, int *empty, const char *what);

#endif
