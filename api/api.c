/*
 * api.c - the HTTP server (libmicrohttpd): authentication by bearer token, authorization by
 * role and tenant, and the endpoints (see api/README.md).
 *
 * Tenancy: a token belongs to one tenant, and every /v1 read is scoped to it. An alert or
 * incident of another tenant answers 404 exactly like an id that does not exist, so that a
 * token cannot probe which ids exist elsewhere; the attempt is still logged and counted.
 * A role violation (a reader on an admin path) answers 403; no or an unknown token 401.
 *
 * THREAD SAFETY: libmicrohttpd runs every handler on its one internal polling thread
 * (MHD_USE_INTERNAL_POLLING_THREAD, no thread per connection), so requests are handled
 * one at a time; a long scan delays the others, which the limit caps. The configuration
 * is copied at start and read-only afterwards; the refused counter is a relaxed atomic
 * (a statistic, ordered with nothing). api_server_start and api_server_stop run on the
 * caller's thread. The token file is read again on the MHD thread; every set read is kept
 * until the stop, as a request in progress may hold a token of an older one.
 */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "api_int.h"

struct api_server {
    struct MHD_Daemon *mhd;
    struct api_cfg cfg; /* copy; pointers borrowed */
    uint16_t port;
    uint64_t refused; /* relaxed atomic */
    /* MHD thread: the tokens in use (cfg.tokens, or the newest read of cfg.tokens_path),
     * the sets read since the start (freed at the stop), and what the file looked like. */
    const api_tokens *tokens;
    char *tokens_path; /* cfg.tokens_path points here */
    api_tokens **reads;
    size_t nreads;
    struct stat tok_st;
    bool tok_st_ok;
    uint64_t tok_checked_ns;
};

#define API_TOKENS_CHECK_NS (250 * 1000000ull)

/* One request, across the handler's calls for it. */
struct api_req {
    const struct api_token *tok; /* NULL: not authenticated */
    struct api_buf body;         /* admin requests only */
    bool body_too_big;
};

/* What a handler answers. body is vg_malloc'd (or NULL for an empty body). */
struct api_resp {
    unsigned status;
    const char *type;
    char *body;
    size_t len;
};

enum api_route {
    API_R_NONE = 0,
    API_R_METRICS,
    API_R_HEALTH,
    API_R_ALERTS,
    API_R_ALERT,
    API_R_INCIDENT,
    API_R_TIMELINE,
    API_R_ADMIN,
};

#define API_JSON "application/json"
#define API_PROM "text/plain; version=0.0.4; charset=utf-8"
#define API_TEXT "text/plain; charset=utf-8"

static enum MHD_Result api_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls);
static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe);
static void api_mhd_log(void *cls, const char *fmt, va_list ap);
static enum api_route api_route_of(const char *url, const char **id);
static void api_dispatch(api_server *s, struct MHD_Connection *c, const char *url,
                         const char *method, struct api_req *r, struct api_resp *out);
static void api_error(struct api_resp *out, unsigned status, const char *msg);
static void api_json_resp(struct api_resp *out, unsigned status, json_t *o);
static void api_refuse(api_server *s, const struct api_token *t, const char *url, unsigned status,
                       const char *why);

/* ---- the server ------------------------------------------------------------------- */

int api_server_start(const struct api_cfg *cfg, api_server **out, char *err, size_t errlen)
{
    struct sockaddr_in sa = {0};
    const union MHD_DaemonInfo *di;
    api_server *s;

    if (cfg->tokens == NULL) {
        snprintf(err, errlen, "no token set: every request needs a token");
        return -VG_EINVAL;
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cfg->port);
    if (inet_pton(AF_INET, cfg->bind_addr ? cfg->bind_addr : "127.0.0.1", &sa.sin_addr) != 1) {
        snprintf(err, errlen, "bad bind address %s (an IPv4 literal)", cfg->bind_addr);
        return -VG_EINVAL;
    }
    s = vg_calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -VG_ENOMEM;
    }
    s->cfg = *cfg;
    s->tokens = cfg->tokens;
    if (cfg->tokens_path != NULL && (s->tokens_path = vg_strdup(cfg->tokens_path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        vg_free(s);
        return -VG_ENOMEM;
    }
    s->cfg.tokens_path = s->tokens_path;
    /* The file as it was when cfg->tokens was read from it (just before this start). */
    s->tok_st_ok = cfg->tokens_path != NULL && stat(cfg->tokens_path, &s->tok_st) == 0;
    s->tok_checked_ns = vg_mono_ns();
    if (s->cfg.max_limit == 0)
        s->cfg.max_limit = 1000;
    if (s->cfg.default_limit == 0)
        s->cfg.default_limit = VG_MIN(100u, s->cfg.max_limit);
    if (s->cfg.max_body == 0)
        s->cfg.max_body = 64 * 1024;
    /* The logger goes first so that libmicrohttpd reports nothing through its own. */
    s->mhd = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, api_handle, s,
        MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, api_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (s->mhd == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%u",
                 cfg->bind_addr ? cfg->bind_addr : "127.0.0.1", (unsigned)cfg->port);
        vg_free(s->tokens_path);
        vg_free(s);
        return -VG_EIO;
    }
    di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    vg_log(VG_LOG_INFO, "api", "listening on %s:%u", cfg->bind_addr ? cfg->bind_addr : "127.0.0.1",
           (unsigned)s->port);
    *out = s;
    return 0;
}

uint16_t api_server_port(const api_server *s)
{
    return s->port;
}

uint64_t api_server_refused(const api_server *s)
{
    return __atomic_load_n(&s->refused, __ATOMIC_RELAXED);
}

void api_server_stop(api_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->mhd);
    for (size_t i = 0; i < s->nreads; i++)
        api_tokens_destroy(s->reads[i]);
    vg_free(s->reads);
    vg_free(s->tokens_path);
    vg_free(s);
}

/* MHD thread: reads the token file again when it changed since the last look. */
static void api_tokens_refresh(api_server *s)
{
    uint64_t now = vg_mono_ns();
    struct stat st;
    api_tokens *t = NULL, **reads;
    unsigned bad = 0;
    char err[256];
    bool ok;

    if (s->cfg.tokens_path == NULL || now - s->tok_checked_ns < API_TOKENS_CHECK_NS)
        return;
    s->tok_checked_ns = now;
    ok = stat(s->cfg.tokens_path, &st) == 0;
    if (!ok && errno != ENOENT)
        return; /* cannot tell: keep what is in use */
    if (ok == s->tok_st_ok &&
        (!ok || (st.st_ino == s->tok_st.st_ino && st.st_size == s->tok_st.st_size &&
                 st.st_mtim.tv_sec == s->tok_st.st_mtim.tv_sec &&
                 st.st_mtim.tv_nsec == s->tok_st.st_mtim.tv_nsec)))
        return;
    if (ok && api_tokens_load(s->cfg.tokens_path, &t, &bad, err, sizeof(err)) < 0) {
        vg_log(VG_LOG_WARN, "api", "tokens not read again: %s (the ones in use stay)", err);
        return;
    }
    if (!ok && (t = api_tokens_new()) == NULL)
        return;
    reads = vg_realloc(s->reads, (s->nreads + 1) * sizeof(*reads));
    if (reads == NULL) {
        api_tokens_destroy(t);
        return;
    }
    s->reads = reads;
    s->reads[s->nreads++] = t;
    s->tokens = t;
    s->tok_st_ok = ok;
    if (ok)
        s->tok_st = st;
    vg_log(VG_LOG_INFO, "api", "tokens read again from %s: %zu%s", s->cfg.tokens_path,
           api_tokens_count(t), ok ? "" : " (the file is gone: every request is refused)");
}

/* ---- the request cycle ------------------------------------------------------------ */

/* The token of "Authorization: Bearer TOKEN", or NULL. */
static const struct api_token *api_authenticate(api_server *s, struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    size_t len;

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    api_tokens_refresh(s);
    return api_tokens_check(s->tokens, h, len);
}

static enum MHD_Result api_queue(struct MHD_Connection *c, struct api_resp *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    if (r->body == NULL)
        resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    else
        resp = MHD_create_response_from_buffer_with_free_callback(r->len, r->body, vg_free);
    if (resp == NULL) {
        vg_free(r->body);
        return MHD_NO;
    }
    if (r->type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vigil\"");
    ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result api_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    api_server *s = cls;
    struct api_req *r = *con_cls;
    struct api_resp out = {0};

    if (r == NULL) {
        /* First call: headers only. Authenticate now, so a body is kept only for an
         * authenticated admin. */
        r = vg_calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->tok = api_authenticate(s, c);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (r->tok && r->tok->role == API_ROLE_ADMIN && !r->body_too_big) {
            if (r->body.len + *upload_size > s->cfg.max_body)
                r->body_too_big = true;
            else
                api_buf_append(&r->body, upload, *upload_size);
        }
        *upload_size = 0; /* consumed (or discarded) */
        return MHD_YES;
    }
    api_dispatch(s, c, url, method, r, &out);
    return api_queue(c, &out);
}

static void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode toe)
{
    struct api_req *r = *con_cls;

    if (r == NULL)
        return;
    api_buf_free(&r->body);
    vg_free(r);
    *con_cls = NULL;
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    vg_log(VG_LOG_WARN, "api", "libmicrohttpd: %s", msg);
}

/* ---- routing and authorization ---------------------------------------------------- */

/* The route of a path; *id is set to the id part of /v1/alerts/ID and /v1/incidents/ID. */
static enum api_route api_route_of(const char *url, const char **id)
{
    static const struct {
        const char *prefix;
        enum api_route route;
    } with_id[] = {{"/v1/alerts/", API_R_ALERT}, {"/v1/incidents/", API_R_INCIDENT}};

    if (strcmp(url, "/metrics") == 0)
        return API_R_METRICS;
    if (strcmp(url, "/health") == 0)
        return API_R_HEALTH;
    if (strcmp(url, "/v1/alerts") == 0)
        return API_R_ALERTS;
    if (strcmp(url, "/v1/timeline") == 0)
        return API_R_TIMELINE;
    if (strncmp(url, "/v1/settings/", 13) == 0 || strncmp(url, "/v1/rules/", 10) == 0)
        return API_R_ADMIN;
    for (size_t i = 0; i < VG_ARRAY_SIZE(with_id); i++) {
        size_t n = strlen(with_id[i].prefix);

        if (strncmp(url, with_id[i].prefix, n) == 0 && url[n] && strchr(url + n, '/') == NULL) {
            *id = url + n;
            return with_id[i].route;
        }
    }
    return API_R_NONE;
}

static void api_refuse(api_server *s, const struct api_token *t, const char *url, unsigned status,
                       const char *why)
{
    __atomic_fetch_add(&s->refused, 1, __ATOMIC_RELAXED);
    vg_log(status == MHD_HTTP_UNAUTHORIZED ? VG_LOG_INFO : VG_LOG_WARN, "api",
           "refused %u (%s): tenant=%s token=%s role=%s path=%s", status, why, t ? t->tenant : "-",
           t && t->name[0] ? t->name : "-", t ? api_role_name(t->role) : "-", url);
}

static void api_metrics_get(api_server *s, struct api_resp *out);
static void api_health_get(api_server *s, struct MHD_Connection *c, struct api_resp *out);
static void api_alerts_get(api_server *s, struct MHD_Connection *c, const struct api_token *t,
                           struct api_resp *out);
static void api_alert_get(api_server *s, const struct api_token *t, const char *id, const char *url,
                          struct api_resp *out);
static void api_incident_get(api_server *s, const struct api_token *t, const char *id,
                             const char *url, struct api_resp *out);
static void api_timeline_get(api_server *s, struct MHD_Connection *c, const struct api_token *t,
                             struct api_resp *out);
static void api_admin(api_server *s, const char *method, const char *url, struct api_req *r,
                      struct api_resp *out);

static void api_dispatch(api_server *s, struct MHD_Connection *c, const char *url,
                         const char *method, struct api_req *r, struct api_resp *out)
{
    const struct api_token *t = r->tok;
    const char *id = NULL;
    enum api_route route;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    if (t == NULL) {
        api_refuse(s, NULL, url, MHD_HTTP_UNAUTHORIZED, "no valid bearer token");
        api_error(out, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required");
        return;
    }
    route = api_route_of(url, &id);
    if (route == API_R_NONE) {
        api_error(out, MHD_HTTP_NOT_FOUND, "not found");
        return;
    }
    if (route == API_R_ADMIN && t->role != API_ROLE_ADMIN) {
        api_refuse(s, t, url, MHD_HTTP_FORBIDDEN, "admin role required");
        api_error(out, MHD_HTTP_FORBIDDEN, "this needs the admin role");
        return;
    }
    if ((route == API_R_METRICS || route == API_R_HEALTH) && s->cfg.ops_tenant &&
        strcmp(t->tenant, s->cfg.ops_tenant) != 0) {
        api_refuse(s, t, url, MHD_HTTP_FORBIDDEN, "operator tenant required");
        api_error(out, MHD_HTTP_FORBIDDEN, "this needs a token of the operator tenant");
        return;
    }
    if (route == API_R_ADMIN ? strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 : !get) {
        api_error(out, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
        return;
    }
    if (route >= API_R_ALERTS && route <= API_R_TIMELINE && s->cfg.db == NULL) {
        api_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "no database");
        return;
    }
    switch (route) {
    case API_R_METRICS:
        api_metrics_get(s, out);
        break;
    case API_R_HEALTH:
        api_health_get(s, c, out);
        break;
    case API_R_ALERTS:
        api_alerts_get(s, c, t, out);
        break;
    case API_R_ALERT:
        api_alert_get(s, t, id, url, out);
        break;
    case API_R_INCIDENT:
        api_incident_get(s, t, id, url, out);
        break;
    case API_R_TIMELINE:
        api_timeline_get(s, c, t, out);
        break;
    case API_R_ADMIN:
        api_admin(s, method, url, r, out);
        break;
    case API_R_NONE:
        break;
    }
}

/* ---- responses -------------------------------------------------------------------- */

/* Takes a jansson-malloc'd string into a vg_malloc'd body. */
static void api_body_from(struct api_resp *out, unsigned status, const char *type, char *s)
{
    size_t n;

    if (s == NULL) {
        out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }
    n = strlen(s);
    out->body = vg_malloc(n + 2);
    if (out->body == NULL) {
        out->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        free(s);
        return;
    }
    memcpy(out->body, s, n);
    memcpy(out->body + n, "\n", 2);
    out->len = n + 1;
    out->status = status;
    out->type = type;
    free(s);
}

/* Takes the reference to o. */
static void api_json_resp(struct api_resp *out, unsigned status, json_t *o)
{
    api_body_from(out, status, API_JSON,
                  o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL);
    json_decref(o);
}

static void api_error(struct api_resp *out, unsigned status, const char *msg)
{
    api_json_resp(out, status, json_pack("{s:s}", "error", msg));
    out->status = status; /* even when the body could not be built */
}

/* ---- query parameters ------------------------------------------------------------- */

/* A time parameter (ISO-8601 or Unix seconds); absent keeps *v. False when malformed. */
static bool api_arg_time(struct MHD_Connection *c, const char *name, int64_t *v)
{
    const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

    return s == NULL || vg_parse_time(s, v) == 0;
}

/* ?limit=N within 1..max_limit; absent gives the default. False when malformed. */
static bool api_arg_limit(api_server *s, struct MHD_Connection *c, unsigned *v)
{
    const char *p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    char *end;
    long n;

    *v = s->cfg.default_limit;
    if (p == NULL)
        return true;
    n = strtol(p, &end, 10);
    if (end == p || *end || n < 1)
        return false;
    *v = n > (long)s->cfg.max_limit ? s->cfg.max_limit : (unsigned)n;
    return true;
}

static bool api_utf8_ok(const char *s)
{
    json_t *j = json_string(s); /* NULL for invalid UTF-8 (or no memory: refuse then too) */

    json_decref(j);
    return j != NULL;
}

/* ---- endpoints -------------------------------------------------------------------- */

static void api_metrics_get(api_server *s, struct api_resp *out)
{
    if (s->cfg.metrics == NULL) {
        api_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "no metrics");
        return;
    }
    if (api_metrics_render(s->cfg.metrics, &out->body, &out->len) < 0) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    out->status = MHD_HTTP_OK;
    out->type = API_PROM;
}

/* 200 when healthy, 503 when not (load balancers read the status); the body is the report
 * either way, JSON by default or "key: value" lines with ?format=text. */
static void api_health_get(api_server *s, struct MHD_Connection *c, struct api_resp *out)
{
    const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    struct api_health_input in = {0};
    struct api_health h;
    bool text = fmt && strcmp(fmt, "text") == 0;

    if (s->cfg.health == NULL) {
        api_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "no health source");
        return;
    }
    in.consumer_lag = -1;
    s->cfg.health(s->cfg.health_ctx, &in);
    api_health_eval(&in, &h);
    out->body = text ? api_health_text(&in) : api_health_json(&in);
    if (out->body == NULL) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    out->len = strlen(out->body);
    out->status = h.healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    out->type = text ? API_TEXT : API_JSON;
}

struct api_alert_scan {
    struct api_buf b;
    unsigned limit, count;
    bool truncated;
};

static bool api_alert_scan_fn(void *ctx, const Vigil__Alert *a)
{
    struct api_alert_scan *sc = ctx;
    char *js;

    if (sc->count == sc->limit) {
        sc->truncated = true;
        return false;
    }
    js = cor_alert_to_json(a);
    if (js == NULL) {
        sc->b.oom = true;
        return false;
    }
    if (sc->count++)
        api_buf_puts(&sc->b, ",");
    api_buf_puts(&sc->b, js);
    free(js); /* json_dumps: malloc'd */
    return !sc->b.oom;
}

static void api_alerts_get(api_server *s, struct MHD_Connection *c, const struct api_token *t,
                           struct api_resp *out)
{
    struct api_alert_scan sc = {0};
    int64_t since = INT64_MIN, until = INT64_MAX;
    char tenant[6 * API_TENANT_MAX + 8]; /* worst case: every byte as \u00XX */
    size_t tlen;

    if (!api_arg_time(c, "since", &since) || !api_arg_time(c, "until", &until) ||
        !api_arg_limit(s, c, &sc.limit)) {
        api_error(out, MHD_HTTP_BAD_REQUEST, "bad since, until or limit");
        return;
    }
    api_buf_puts(&sc.b, "{\"tenant\":\"");
    /* vg_json_escape does not terminate: append the length it reports. */
    tlen = vg_json_escape(tenant, sizeof(tenant), t->tenant, strlen(t->tenant));
    api_buf_append(&sc.b, tenant, VG_MIN(tlen, sizeof(tenant)));
    api_buf_puts(&sc.b, "\",\"alerts\":[");
    if (sto_scan_alerts(s->cfg.db, t->tenant, since, until, api_alert_scan_fn, &sc) < 0) {
        api_buf_free(&sc.b);
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage read failed");
        return;
    }
    api_buf_printf(&sc.b, "],\"count\":%u,\"truncated\":%s}\n", sc.count,
                   sc.truncated ? "true" : "false");
    out->body = api_buf_take(&sc.b, &out->len);
    if (out->body == NULL) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    out->status = MHD_HTTP_OK;
    out->type = API_JSON;
}

static void api_alert_get(api_server *s, const struct api_token *t, const char *id, const char *url,
                          struct api_resp *out)
{
    Vigil__Alert *a = NULL;
    int rc = sto_get_alert(s->cfg.db, id, &a);

    if (rc == -VG_ENOENT) {
        api_error(out, MHD_HTTP_NOT_FOUND, "not found");
        return;
    }
    if (rc < 0) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage read failed");
        return;
    }
    if (strcmp(a->tenant_id, t->tenant) != 0) {
        /* Same answer as a missing id: existence elsewhere is not disclosed. */
        api_refuse(s, t, url, MHD_HTTP_NOT_FOUND, "alert of another tenant");
        api_error(out, MHD_HTTP_NOT_FOUND, "not found");
    } else {
        api_body_from(out, MHD_HTTP_OK, API_JSON, cor_alert_to_json(a));
    }
    vigil__alert__free_unpacked(a, NULL);
}

static void api_incident_get(api_server *s, const struct api_token *t, const char *id,
                             const char *url, struct api_resp *out)
{
    Vigil__Incident *inc = NULL;
    int rc = sto_get_incident(s->cfg.db, id, &inc);

    if (rc == -VG_ENOENT) {
        api_error(out, MHD_HTTP_NOT_FOUND, "not found");
        return;
    }
    if (rc < 0) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage read failed");
        return;
    }
    if (strcmp(inc->tenant_id, t->tenant) != 0) {
        api_refuse(s, t, url, MHD_HTTP_NOT_FOUND, "incident of another tenant");
        api_error(out, MHD_HTTP_NOT_FOUND, "not found");
    } else {
        api_json_resp(out, MHD_HTTP_OK, api_pb_to_json(&inc->base));
    }
    vigil__incident__free_unpacked(inc, NULL);
}

/* The events of one machine of the token's tenant: the machine key is computed from the
 * token's tenant, so another tenant's machine of the same name is simply not there. */
static void api_timeline_get(api_server *s, struct MHD_Connection *c, const struct api_token *t,
                             struct api_resp *out)
{
    const char *machine = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "machine");
    const char *order = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "order");
    int64_t from = INT64_MIN, to = INT64_MAX;
    json_t *o = NULL, *evs = NULL;
    sto_tl_iter *it = NULL;
    const Vigil__Event *ev;
    unsigned limit, n = 0;
    int k = 0;

    /* Machine ids are UTF-8 (validated at ingest): anything else cannot match, and could
     * not be echoed in JSON. */
    if (machine == NULL || *machine == '\0' || !api_utf8_ok(machine) ||
        !api_arg_time(c, "from", &from) || !api_arg_time(c, "to", &to) ||
        !api_arg_limit(s, c, &limit) ||
        (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0)) {
        api_error(out, MHD_HTTP_BAD_REQUEST, "need machine; bad from, to, limit or order");
        return;
    }
    if (sto_tl_open(s->cfg.db, vg_machine_key(t->tenant, machine), from, to,
                    order && strcmp(order, "desc") == 0, &it) < 0) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "storage read failed");
        return;
    }
    evs = json_array();
    while (evs && n < limit && (k = sto_tl_next(it, &ev)) == 1) {
        json_t *e = api_pb_to_json(&ev->base);
        char ts[32];

        if (e == NULL ||
            json_object_set_new(e, "time", json_string(vg_fmt_time(ev->ts_us, ts))) < 0 ||
            json_array_append_new(evs, e) < 0)
            goto out_fail;
        n++;
    }
    if (evs == NULL || k < 0)
        goto out_fail;
    /* One more event past the limit means the answer was cut short. */
    k = n == limit ? sto_tl_next(it, &ev) : 0;
    o = json_pack("{s:s,s:s,s:o,s:i,s:b}", "tenant", t->tenant, "machine", machine, "events", evs,
                  "count", (int)n, "truncated", k == 1);
    evs = NULL;
    sto_tl_close(it);
    api_json_resp(out, o ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR, o);
    return;
out_fail:
    json_decref(evs);
    sto_tl_close(it);
    api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, k < 0 ? "storage read failed" : "out of memory");
}

static void api_admin(api_server *s, const char *method, const char *url, struct api_req *r,
                      struct api_resp *out)
{
    struct api_admin_req ar = {0};
    char msg[256] = "";
    int status;

    if (r->body_too_big) {
        api_error(out, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        return;
    }
    if (r->body.oom) {
        api_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (s->cfg.admin == NULL) {
        api_error(out, MHD_HTTP_NOT_IMPLEMENTED, "no admin handler");
        return;
    }
    ar.method = method;
    ar.path = url;
    ar.tenant = r->tok->tenant;
    ar.token_name = r->tok->name;
    ar.body = r->body.p ? r->body.p : "";
    ar.body_len = r->body.len;
    vg_log(VG_LOG_INFO, "api", "admin %s %s by tenant=%s token=%s", method, url, ar.tenant,
           ar.token_name[0] ? ar.token_name : "-");
    status = s->cfg.admin(s->cfg.admin_ctx, &ar, msg, sizeof(msg));
    if (status < 100 || status > 599)
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    api_json_resp(out, (unsigned)status, json_pack("{s:i,s:s}", "status", status, "message", msg));
}
