/*
 * health.c - the health report: judged from a struct api_health_input the caller fills,
 * rendered as "key: value" lines or as JSON. The same report serves `vigil health` and
 * GET /health.
 *
 * THREAD SAFETY: reentrant.
 */
#include "api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"

static void api_issue(struct api_health *h, const char *what)
{
    if (h->nissues < API_HEALTH_MAX_ISSUES)
        h->issues[h->nissues++] = what;
    h->healthy = false;
}

static int64_t api_max_lag(const struct api_health_input *in)
{
    return in->max_consumer_lag > 0 ? in->max_consumer_lag : API_HEALTH_DEFAULT_MAX_LAG;
}

void api_health_eval(const struct api_health_input *in, struct api_health *out)
{
    memset(out, 0, sizeof(*out));
    out->healthy = true;
    if (!in->broker_reachable)
        api_issue(out, "broker_unreachable");
    if (!in->database_open)
        api_issue(out, "database_closed");
    if (in->rules_loaded == 0)
        api_issue(out, "no_rules_loaded");
    if (in->write_errors_recent > 0)
        api_issue(out, "storage_write_errors");
    if (in->lost_upstream_recent > 0)
        api_issue(out, "events_lost_upstream");
    if (in->consumer_lag > api_max_lag(in))
        api_issue(out, "consumer_lag_high");
}

/* "" for no event yet, else ISO-8601. */
static const char *api_last_event(const struct api_health_input *in, char buf[32])
{
    return in->last_event_us ? vg_fmt_time(in->last_event_us, buf) : "";
}

char *api_health_text(const struct api_health_input *in)
{
    struct api_health h;
    struct api_buf b = {0};
    char ts[32];

    api_health_eval(in, &h);
    api_buf_printf(&b, "healthy                         : %s\n", h.healthy ? "true" : "false");
    api_buf_puts(&b, "health_issues                   : [");
    for (size_t i = 0; i < h.nissues; i++)
        api_buf_printf(&b, "%s\"%s\"", i ? ", " : "", h.issues[i]);
    api_buf_puts(&b, "]\n");
    if (in->version)
        api_buf_printf(&b, "version                         : \"%s\"\n", in->version);
    api_buf_printf(&b, "broker_reachable                : %s\n",
                   in->broker_reachable ? "true" : "false");
    if (in->consumer_lag >= 0)
        api_buf_printf(&b, "consumer_lag                    : %lld\n", (long long)in->consumer_lag);
    else
        api_buf_puts(&b, "consumer_lag                    : unavailable\n");
    api_buf_printf(&b, "consumer_lag_threshold          : %lld\n", (long long)api_max_lag(in));
    api_buf_printf(&b, "partitions_assigned             : %u\n", in->partitions);
    api_buf_printf(&b, "database_open                   : %s\n",
                   in->database_open ? "true" : "false");
    api_buf_printf(&b, "database_bytes                  : %llu\n",
                   (unsigned long long)in->database_bytes);
    api_buf_printf(&b, "storage_write_errors_recent     : %llu\n",
                   (unsigned long long)in->write_errors_recent);
    api_buf_printf(&b, "rules_loaded                    : %zu\n", in->rules_loaded);
    api_buf_printf(&b, "last_event_time                 : \"%s\"\n", api_last_event(in, ts));
    api_buf_printf(&b, "events_total                    : %llu\n",
                   (unsigned long long)in->events_total);
    api_buf_printf(&b, "alerts_total                    : %llu\n",
                   (unsigned long long)in->alerts_total);
    api_buf_printf(&b, "dead_letters_total              : %llu\n",
                   (unsigned long long)in->dead_letters_total);
    api_buf_printf(&b, "lost_upstream_total             : %llu\n",
                   (unsigned long long)in->lost_upstream_total);
    return api_buf_take(&b, NULL);
}

/* Adds to o; returns false once anything failed to allocate. */
static bool api_set(json_t *o, const char *k, json_t *v)
{
    return v != NULL && json_object_set_new(o, k, v) == 0;
}

char *api_health_json(const struct api_health_input *in)
{
    struct api_health h;
    json_t *o = json_object(), *issues = json_array();
    char ts[32], *s = NULL, *out = NULL;
    bool ok = o != NULL && issues != NULL;

    api_health_eval(in, &h);
    for (size_t i = 0; ok && i < h.nissues; i++)
        ok = json_array_append_new(issues, json_string(h.issues[i])) == 0;
    ok = ok && api_set(o, "healthy", json_boolean(h.healthy));
    ok = ok && api_set(o, "health_issues", json_incref(issues));
    if (in->version)
        ok = ok && api_set(o, "version", json_string(in->version));
    ok = ok && api_set(o, "broker_reachable", json_boolean(in->broker_reachable));
    ok = ok && api_set(o, "consumer_lag",
                       in->consumer_lag >= 0 ? json_integer(in->consumer_lag) : json_null());
    ok = ok && api_set(o, "consumer_lag_threshold", json_integer(api_max_lag(in)));
    ok = ok && api_set(o, "partitions_assigned", json_integer(in->partitions));
    ok = ok && api_set(o, "database_open", json_boolean(in->database_open));
    ok = ok && api_set(o, "database_bytes", json_integer((json_int_t)in->database_bytes));
    ok = ok && api_set(o, "storage_write_errors_recent",
                       json_integer((json_int_t)in->write_errors_recent));
    ok = ok && api_set(o, "rules_loaded", json_integer((json_int_t)in->rules_loaded));
    ok = ok && api_set(o, "last_event_time",
                       in->last_event_us ? json_string(api_last_event(in, ts)) : json_null());
    ok = ok && api_set(o, "events_total", json_integer((json_int_t)in->events_total));
    ok = ok && api_set(o, "alerts_total", json_integer((json_int_t)in->alerts_total));
    ok = ok && api_set(o, "dead_letters_total", json_integer((json_int_t)in->dead_letters_total));
    ok = ok && api_set(o, "lost_upstream_total", json_integer((json_int_t)in->lost_upstream_total));
    if (ok)
        s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (s != NULL) {
        size_t n = strlen(s);

        /* json_dumps allocates with malloc; callers free with vg_free. */
        out = vg_malloc(n + 2);
        if (out != NULL) {
            memcpy(out, s, n);
            memcpy(out + n, "\n", 2);
        }
    }
    free(s);
    json_decref(issues);
    json_decref(o);
    return out;
}
