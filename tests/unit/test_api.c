/*
 * test_api.c - tokens, the health report, and the HTTP server against a real RocksDB
 * holding two tenants' alerts, incidents and timelines, through a small HTTP/1.0 client
 * over a loopback socket.
 */
#include "vgtest.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"

#define TOK_A_READER "vgt_a_reader_0123456789"
#define TOK_A_ADMIN  "vgt_a_admin_0123456789"
#define TOK_B_READER "vgt_b_reader_0123456789"
#define TOK_Q_READER "vgt_q_reader_0123456789"

/* ---- tokens ------------------------------------------------------------------------ */

static void test_token_hash(void **state)
{
    char hex[65];

    /* FIPS 180-2 test vector. */
    assert_int_equal(api_token_hash("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_token_file(void **state)
{
    char *dir = vgt_tmpdir("api-tok"), path[512], tok1[80], tok2[80], err[256], hex[65];
    const struct api_token *t;
    api_tokens *ts = NULL;
    unsigned bad = 99;
    FILE *f;

    snprintf(path, sizeof(path), "%s/tokens", dir);
    assert_int_equal(api_token_add(path, "acme", API_ROLE_READER, "ci-bot", tok1, sizeof(tok1), err,
                                   sizeof(err)),
                     0);
    assert_int_equal(
        api_token_add(path, "globex", API_ROLE_ADMIN, NULL, tok2, sizeof(tok2), err, sizeof(err)),
        0);
    assert_int_equal(strlen(tok1), 68);
    assert_memory_equal(tok1, "vgt_", 4);
    assert_string_not_equal(tok1, tok2);
    /* Hand-written lines: a comment, a blank, and four bad ones. */
    assert_int_equal(api_token_hash("manual", 6, hex), 0);
    f = fopen(path, "a");
    fprintf(f, "# comment\n\n");
    fprintf(f, "acme superuser %s\n", hex);
    fprintf(f, "acme reader 1234\n");
    fprintf(f, "acme reader\n");
    fprintf(f, "acme reader %s name extra\n", hex);
    fprintf(f, "initech admin %s ops\n", hex);
    fclose(f);
    assert_int_equal(api_tokens_load(path, &ts, &bad, err, sizeof(err)), 0);
    assert_int_equal(bad, 4);
    assert_int_equal(api_tokens_count(ts), 3);
    t = api_tokens_check(ts, tok1, strlen(tok1));
    assert_non_null(t);
    assert_string_equal(t->tenant, "acme");
    assert_int_equal(t->role, API_ROLE_READER);
    assert_string_equal(t->name, "ci-bot");
    t = api_tokens_check(ts, tok2, strlen(tok2));
    assert_non_null(t);
    assert_string_equal(t->tenant, "globex");
    assert_int_equal(t->role, API_ROLE_ADMIN);
    assert_string_equal(t->name, "");
    t = api_tokens_check(ts, "manual", 6);
    assert_non_null(t);
    assert_string_equal(t->tenant, "initech");
    /* Near misses: a prefix, one changed character, empty. */
    assert_null(api_tokens_check(ts, tok1, strlen(tok1) - 1));
    tok1[10] = tok1[10] == 'a' ? 'b' : 'a';
    assert_null(api_tokens_check(ts, tok1, strlen(tok1)));
    assert_null(api_tokens_check(ts, "", 0));
    /* The token itself is nowhere in the file. */
    {
        char *txt = vgt_read_file(path, NULL);

        assert_null(strstr(txt, tok2));
        assert_non_null(strstr(txt, "globex admin "));
        free(txt);
    }
    /* Bad tenant or name, missing file. */
    assert_int_equal(
        api_token_add(path, "ac me", API_ROLE_READER, NULL, tok1, sizeof(tok1), err, sizeof(err)),
        -VG_EINVAL);
    assert_int_equal(
        api_token_add(path, "acme", API_ROLE_READER, "a\tb", tok1, sizeof(tok1), err, sizeof(err)),
        -VG_EINVAL);
    api_tokens_destroy(ts);
    snprintf(path, sizeof(path), "%s/none/tokens", dir);
    assert_int_equal(api_tokens_load(path, &ts, NULL, err, sizeof(err)), -VG_EIO);
    vgt_rmtree(dir);
    free(dir);
}

/* ---- health ------------------------------------------------------------------------ */

static void healthy_input(struct api_health_input *in)
{
    memset(in, 0, sizeof(*in));
    in->broker_reachable = true;
    in->database_open = true;
    in->database_bytes = 4096;
    in->rules_loaded = 12;
    in->consumer_lag = 10;
    in->last_event_us = INT64_C(1767225600) * VG_US_PER_SEC;
    in->events_total = 5000;
    in->version = "test";
}

static void test_health_rules(void **state)
{
    struct api_health_input in;
    struct api_health h;

    healthy_input(&in);
    api_health_eval(&in, &h);
    assert_true(h.healthy);
    assert_int_equal(h.nissues, 0);

    in.broker_reachable = false;
    in.rules_loaded = 0;
    in.consumer_lag = API_HEALTH_DEFAULT_MAX_LAG + 1;
    api_health_eval(&in, &h);
    assert_false(h.healthy);
    assert_int_equal(h.nissues, 3);
    assert_string_equal(h.issues[0], "broker_unreachable");
    assert_string_equal(h.issues[1], "no_rules_loaded");
    assert_string_equal(h.issues[2], "consumer_lag_high");

    healthy_input(&in);
    in.consumer_lag = 500;
    in.max_consumer_lag = 100;
    api_health_eval(&in, &h);
    assert_int_equal(h.nissues, 1);
    assert_string_equal(h.issues[0], "consumer_lag_high");
    in.consumer_lag = -1; /* unknown lag is not an issue */
    api_health_eval(&in, &h);
    assert_true(h.healthy);

    healthy_input(&in);
    in.database_open = false;
    in.write_errors_recent = 2;
    in.lost_upstream_recent = 1;
    api_health_eval(&in, &h);
    assert_int_equal(h.nissues, 3);
    assert_string_equal(h.issues[0], "database_closed");
    assert_string_equal(h.issues[1], "storage_write_errors");
    assert_string_equal(h.issues[2], "events_lost_upstream");
}

static void test_health_render(void **state)
{
    struct api_health_input in;
    json_error_t je;
    json_t *o;
    char *s;

    healthy_input(&in);
    in.rules_loaded = 0;
    s = api_health_text(&in);
    assert_non_null(s);
    assert_non_null(strstr(s, "healthy                         : false\n"));
    assert_non_null(strstr(s, "health_issues                   : [\"no_rules_loaded\"]\n"));
    assert_non_null(strstr(s, "rules_loaded                    : 0\n"));
    assert_non_null(strstr(s, "last_event_time                 : \"2026-01-01T00:00:00"));
    vg_free(s);
    s = api_health_json(&in);
    assert_non_null(s);
    o = json_loads(s, 0, &je);
    assert_non_null(o);
    assert_false(json_is_true(json_object_get(o, "healthy")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "health_issues"), 0)),
                        "no_rules_loaded");
    assert_int_equal(json_integer_value(json_object_get(o, "consumer_lag")), 10);
    assert_int_equal(json_integer_value(json_object_get(o, "database_bytes")), 4096);
    assert_int_equal(json_integer_value(json_object_get(o, "events_total")), 5000);
    assert_true(json_is_true(json_object_get(o, "database_open")));
    json_decref(o);
    vg_free(s);
}

/* ---- the server: fixture ----------------------------------------------------------- */

struct fx {
    char *dir;
    sto_db *db;
    api_tokens *tokens;
    api_metrics *metrics;
    api_server *srv;
    uint16_t port;
    bool broker_up;
    int admin_calls;
    char admin_seen[512];
};

static void put_alert(sto_wbatch *wb, const char *id, const char *tenant, int64_t t_s)
{
    Vigil__Alert a = VIGIL__ALERT__INIT;

    a.id = (char *)id;
    a.tenant_id = (char *)tenant;
    a.machine_id = "m1";
    a.title = "Test alert";
    a.rule_id = "rule-1";
    a.severity = VIGIL__SEVERITY__SEVERITY_HIGH;
    a.first_event_us = t_s * VG_US_PER_SEC;
    a.last_event_us = t_s * VG_US_PER_SEC;
    sto_put_alert(wb, &a, false);
}

static void put_incident(sto_wbatch *wb, const char *id, const char *tenant)
{
    Vigil__Incident inc = VIGIL__INCIDENT__INIT;
    char *alerts[1] = {"a1"};

    inc.id = (char *)id;
    inc.tenant_id = (char *)tenant;
    inc.title = "Incident of one alert";
    inc.severity = VIGIL__SEVERITY__SEVERITY_MEDIUM;
    inc.alert_ids = alerts;
    inc.n_alert_ids = 1;
    sto_put_incident(wb, &inc);
}

/* Three events of machine m1 of tenant A, at day 20454 + 10, 20, 30 s. */
static void put_timeline(sto_wbatch *wb)
{
    Vigil__TelemetryBatch tb = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev[3], *evp[3];
    Vigil__GenericEvent gen[3];
    int64_t base = INT64_C(1767225600) * VG_US_PER_SEC;
    uint8_t *blk;
    size_t len;

    for (int i = 0; i < 3; i++) {
        vigil__event__init(&ev[i]);
        vigil__generic_event__init(&gen[i]);
        gen[i].category = "test";
        gen[i].event_id = 4688 + i;
        ev[i].seq = 100 + i;
        ev[i].ts_us = base + (10 + 10 * i) * VG_US_PER_SEC;
        ev[i].kind_case = VIGIL__EVENT__KIND_GENERIC;
        ev[i].generic = &gen[i];
        evp[i] = &ev[i];
    }
    tb.tenant_id = "tenant-a";
    tb.machine_id = "m1";
    tb.first_seq = 100;
    tb.events = evp;
    tb.n_events = 3;
    assert_int_equal(sto_block_encode(&tb, &blk, &len), 0);
    sto_put_block(wb, vg_machine_key("tenant-a", "m1"), ev[0].ts_us, 100, blk, len);
    vg_free(blk);
}

static void fx_health(void *ctx, struct api_health_input *in)
{
    struct fx *f = ctx;

    healthy_input(in);
    in->broker_reachable = f->broker_up;
    in->database_bytes = sto_disk_bytes(f->db);
}

static void fx_collect(void *ctx, struct api_metrics_out *out)
{
    struct fx *f = ctx;
    struct ing_stats st = {0};
    struct cor_shard_stats sh[1] = {{0}};
    struct api_vigil_metrics v = {0};
    struct ing_incidents_stats is = {.alerts = 5, .old = 7};

    struct api_memory mem = {.resident = 123456789, .rocksdb_memtables = 4096};

    v.incidents = &is;
    v.memory = &mem;
    st.events = 3;
    st.alerts[3] = 3;
    sh[0].in_depth = 2;
    sh[0].proctab_bytes = 777;
    v.ing = &st;
    v.shards = sh;
    v.nshards = 1;
    v.have_storage = true;
    v.storage_bytes = sto_disk_bytes(f->db);
    api_metrics_vigil(out, &v);
}

static int fx_admin(void *ctx, const struct api_admin_req *req, char *msg, size_t msglen)
{
    struct fx *f = ctx;

    f->admin_calls++;
    snprintf(f->admin_seen, sizeof(f->admin_seen), "%s %s %s %s [%s]", req->method, req->path,
             req->tenant, req->token_name, req->body);
    snprintf(msg, msglen, "reload scheduled");
    return strcmp(req->path, "/v1/rules/reload") == 0 ? 202 : 404;
}

static void add_token(api_tokens *ts, const char *tok, const char *tenant, enum api_role r,
                      const char *name)
{
    char hex[65];

    assert_int_equal(api_token_hash(tok, strlen(tok), hex), 0);
    assert_int_equal(api_tokens_add(ts, tenant, r, hex, name), 0);
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct sto_opts so = {0};
    struct api_cfg cfg = {0};
    char err[256];
    sto_wbatch *wb;

    f->dir = vgt_tmpdir("api");
    so.path = f->dir;
    assert_int_equal(sto_open(&so, &f->db, err, sizeof(err)), 0);
    wb = sto_wbatch_new();
    put_alert(wb, "a1", "tenant-a", 1767225600 + 100);
    put_alert(wb, "a2", "tenant-a", 1767225600 + 200);
    put_alert(wb, "a3", "tenant-a", 1767225600 + 300);
    put_alert(wb, "b1", "tenant-b", 1767225600 + 150);
    put_incident(wb, "inc-a", "tenant-a");
    put_incident(wb, "inc-b", "tenant-b");
    put_timeline(wb);
    assert_int_equal(sto_write(f->db, wb, err, sizeof(err)), 0);
    sto_wbatch_destroy(wb);

    f->tokens = api_tokens_new();
    add_token(f->tokens, TOK_A_READER, "tenant-a", API_ROLE_READER, "a-reader");
    add_token(f->tokens, TOK_A_ADMIN, "tenant-a", API_ROLE_ADMIN, "a-admin");
    add_token(f->tokens, TOK_B_READER, "tenant-b", API_ROLE_READER, "b-reader");
    /* A tenant id needing JSON escaping (ids are any non-blank bytes). */
    add_token(f->tokens, TOK_Q_READER, "q\"t\\", API_ROLE_READER, "q-reader");
    f->metrics = api_metrics_new();
    assert_int_equal(api_metrics_register(f->metrics, fx_collect, f), 0);
    f->broker_up = true;

    cfg.port = 0;
    cfg.db = f->db;
    cfg.tokens = f->tokens;
    cfg.metrics = f->metrics;
    cfg.health = fx_health;
    cfg.health_ctx = f;
    cfg.admin = fx_admin;
    cfg.admin_ctx = f;
    assert_int_equal(api_server_start(&cfg, &f->srv, err, sizeof(err)), 0);
    f->port = api_server_port(f->srv);
    assert_true(f->port != 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    api_server_stop(f->srv);
    api_metrics_destroy(f->metrics);
    api_tokens_destroy(f->tokens);
    sto_close(f->db);
    sto_thread_cleanup();
    vgt_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- the client -------------------------------------------------------------------- */

struct resp {
    int status;
    char *head; /* status line and headers */
    char *body;
};

static void resp_free(struct resp *r)
{
    free(r->head);
    free(r->body);
}

/* One HTTP/1.0 request; the server closes the connection after the response. */
static struct resp http(struct fx *f, const char *method, const char *path, const char *token,
                        const char *body)
{
    struct sockaddr_in sa = {0};
    struct resp r = {0};
    char req[2048], *buf = NULL, *sep;
    size_t len = 0, cap = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    assert_true(fd >= 0);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req),
                 "%s %s HTTP/1.0\r\nHost: localhost\r\n%s%s%sContent-Length: %zu\r\n\r\n", method,
                 path, token ? "Authorization: Bearer " : "", token ? token : "",
                 token ? "\r\n" : "", body ? strlen(body) : 0);
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    for (size_t off = 0, blen = body ? strlen(body) : 0; off < blen; off += (size_t)n) {
        n = write(fd, body + off, blen - off);
        assert_true(n > 0);
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len - 1);
        assert_true(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    assert_int_equal(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1);
    sep = strstr(buf, "\r\n\r\n");
    assert_non_null(sep);
    r.head = strndup(buf, (size_t)(sep - buf));
    r.body = strdup(sep + 4);
    free(buf);
    return r;
}

static json_t *body_json(const struct resp *r)
{
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);

    if (o == NULL)
        fail_msg("not JSON (%s): %s", je.text, r->body);
    return o;
}

/* The ids of a /v1/alerts answer, comma-separated. */
static void alert_ids(const struct resp *r, char *out, size_t cap)
{
    json_t *o = body_json(r), *arr = json_object_get(o, "alerts");

    out[0] = '\0';
    assert_true(json_is_array(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        strncat(out, json_string_value(json_object_get(json_array_get(arr, i), "id")),
                cap - strlen(out) - 2);
        strcat(out, ",");
    }
    json_decref(o);
}

/* ---- the server: tests ------------------------------------------------------------- */

static void test_unauthenticated(void **state)
{
    struct fx *f = *state;
    static const char *const paths[] = {"/v1/alerts", "/v1/alerts/a1", "/metrics",
                                        "/health",    "/nowhere",      "/v1/rules/reload"};
    uint64_t before = api_server_refused(f->srv);

    for (size_t i = 0; i < VG_ARRAY_SIZE(paths); i++) {
        struct resp r = http(f, "GET", paths[i], NULL, NULL);

        assert_int_equal(r.status, 401);
        assert_non_null(strcasestr(r.head, "WWW-Authenticate: Bearer"));
        resp_free(&r);
        r = http(f, "GET", paths[i], "vgt_not_a_token", NULL);
        assert_int_equal(r.status, 401);
        resp_free(&r);
    }
    assert_int_equal(api_server_refused(f->srv) - before, 2 * VG_ARRAY_SIZE(paths));
    assert_int_equal(f->admin_calls, 0);
}

static void test_roles(void **state)
{
    struct fx *f = *state;
    struct resp r;
    json_t *o;

    r = http(f, "POST", "/v1/rules/reload", TOK_A_READER, "{}");
    assert_int_equal(r.status, 403);
    resp_free(&r);
    r = http(f, "PUT", "/v1/settings/retention_days", TOK_B_READER, "90");
    assert_int_equal(r.status, 403);
    resp_free(&r);
    r = http(f, "GET", "/v1/settings/retention_days", TOK_A_READER, NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_int_equal(f->admin_calls, 0);

    r = http(f, "POST", "/v1/rules/reload", TOK_A_ADMIN, "{\"why\":\"test\"}");
    assert_int_equal(r.status, 202);
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "reload scheduled");
    json_decref(o);
    resp_free(&r);
    assert_int_equal(f->admin_calls, 1);
    assert_string_equal(f->admin_seen,
                        "POST /v1/rules/reload tenant-a a-admin [{\"why\":\"test\"}]");
    /* The admin role also reads. */
    r = http(f, "GET", "/v1/alerts", TOK_A_ADMIN, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* A body over the limit (64 KiB) is refused before the hook sees it. */
    {
        char *big = malloc(70001);

        memset(big, 'x', 70000);
        big[70000] = '\0';
        r = http(f, "PUT", "/v1/settings/huge", TOK_A_ADMIN, big);
        assert_int_equal(r.status, 413);
        resp_free(&r);
        free(big);
    }
    /* Admin paths take POST and PUT only. */
    r = http(f, "GET", "/v1/rules/reload", TOK_A_ADMIN, NULL);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    assert_int_equal(f->admin_calls, 1);
}

static void test_alerts_by_tenant(void **state)
{
    struct fx *f = *state;
    char ids[256];
    struct resp r;
    json_t *o;

    r = http(f, "GET", "/v1/alerts", TOK_A_READER, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Content-Type: application/json"));
    alert_ids(&r, ids, sizeof(ids));
    assert_string_equal(ids, "a3,a2,a1,");
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "tenant-a");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 3);
    assert_false(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    resp_free(&r);

    r = http(f, "GET", "/v1/alerts", TOK_B_READER, NULL);
    assert_int_equal(r.status, 200);
    alert_ids(&r, ids, sizeof(ids));
    assert_string_equal(ids, "b1,");
    resp_free(&r);

    /* The tenant id in the answer is escaped (regression: it was once left unterminated). */
    r = http(f, "GET", "/v1/alerts", TOK_Q_READER, NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "q\"t\\");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 0);
    json_decref(o);
    resp_free(&r);

    /* since/until (Unix seconds or ISO-8601) and limit. */
    r = http(f, "GET", "/v1/alerts?since=1767225750&until=2026-01-01T00:04:00Z", TOK_A_READER,
             NULL);
    assert_int_equal(r.status, 200);
    alert_ids(&r, ids, sizeof(ids));
    assert_string_equal(ids, "a2,");
    resp_free(&r);
    r = http(f, "GET", "/v1/alerts?limit=2", TOK_A_READER, NULL);
    alert_ids(&r, ids, sizeof(ids));
    assert_string_equal(ids, "a3,a2,");
    o = body_json(&r);
    assert_true(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    resp_free(&r);
    r = http(f, "GET", "/v1/alerts?limit=0", TOK_A_READER, NULL);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    r = http(f, "GET", "/v1/alerts?since=yesterday", TOK_A_READER, NULL);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    r = http(f, "DELETE", "/v1/alerts", TOK_A_READER, NULL);
    assert_int_equal(r.status, 405);
    resp_free(&r);
}

static void test_foreign_ids(void **state)
{
    struct fx *f = *state;
    struct resp r, missing;
    uint64_t before;
    json_t *o;

    r = http(f, "GET", "/v1/alerts/a1", TOK_A_READER, NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "a1");
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "High");
    json_decref(o);
    resp_free(&r);

    /* Another tenant's id answers exactly like an id that does not exist. */
    missing = http(f, "GET", "/v1/alerts/zz-nonexistent", TOK_A_READER, NULL);
    assert_int_equal(missing.status, 404);
    before = api_server_refused(f->srv);
    r = http(f, "GET", "/v1/alerts/b1", TOK_A_READER, NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, missing.body);
    assert_int_equal(api_server_refused(f->srv), before + 1);
    resp_free(&r);
    resp_free(&missing);
    r = http(f, "GET", "/v1/alerts/b1", TOK_B_READER, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    r = http(f, "GET", "/v1/incidents/inc-a", TOK_A_READER, NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "inc-a");
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "SEVERITY_MEDIUM");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "alert_ids"), 0)),
                        "a1");
    json_decref(o);
    resp_free(&r);
    r = http(f, "GET", "/v1/incidents/inc-b", TOK_A_READER, NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    r = http(f, "GET", "/v1/incidents/inc-b", TOK_B_READER, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_timeline(void **state)
{
    struct fx *f = *state;
    struct resp r;
    json_t *o, *evs;

    r = http(f, "GET", "/v1/timeline?machine=m1", TOK_A_READER, NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    evs = json_object_get(o, "events");
    assert_int_equal(json_array_size(evs), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(evs, i);

        assert_int_equal(json_integer_value(json_object_get(e, "seq")), 100 + i);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(e, "generic"), "event_id")),
            4688 + i);
        /* Unset oneof members are left out. */
        assert_null(json_object_get(e, "process_created"));
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 0), "time")),
                        "2026-01-01T00:00:10.000000Z");
    json_decref(o);
    resp_free(&r);

    r = http(f, "GET", "/v1/timeline?machine=m1&order=desc&limit=2&from=1767225605", TOK_A_READER,
             NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    evs = json_object_get(o, "events");
    assert_int_equal(json_array_size(evs), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(evs, 0), "seq")), 102);
    assert_true(json_is_true(json_object_get(o, "truncated")));
    json_decref(o);
    resp_free(&r);

    /* Tenant B's machine "m1" is another machine: nothing there. */
    r = http(f, "GET", "/v1/timeline?machine=m1", TOK_B_READER, NULL);
    assert_int_equal(r.status, 200);
    o = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(o, "events")), 0);
    json_decref(o);
    resp_free(&r);
    r = http(f, "GET", "/v1/timeline", TOK_A_READER, NULL);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    r = http(f, "GET", "/v1/timeline?machine=%ff%fe", TOK_A_READER, NULL);
    assert_int_equal(r.status, 400);
    resp_free(&r);
}

static void test_metrics_endpoint(void **state)
{
    struct fx *f = *state;
    struct resp r = http(f, "GET", "/metrics", TOK_B_READER, NULL);

    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE vigil_events_total counter\n"));
    assert_non_null(strstr(r.body, "vigil_events_total{stage=\"accepted\"} 3\n"));
    assert_non_null(strstr(r.body, "vigil_alerts_total{severity=\"High\"} 3\n"));
    assert_non_null(strstr(r.body, "vigil_incident_stage_records_total{kind=\"alert\"} 5\n"));
    assert_non_null(strstr(r.body, "vigil_incident_stage_records_total{kind=\"old\"} 7\n"));
    assert_non_null(strstr(r.body, "vigil_memory_bytes{part=\"resident\"} 123456789\n"));
    assert_non_null(strstr(r.body, "vigil_shard_process_table_bytes{shard=\"0\"} 777\n"));
    assert_non_null(strstr(r.body, "vigil_memory_bytes{part=\"rocksdb_memtables\"} 4096\n"));
    assert_null(strstr(r.body, "vigil_memory_bytes{part=\"heap_allocated\"}")); /* zero: left out */
    assert_non_null(strstr(r.body, "vigil_ring_depth{shard=\"0\"} 2\n"));
    assert_non_null(strstr(r.body, "# TYPE vigil_storage_bytes gauge\n"));
    resp_free(&r);
}

static void test_health_endpoint(void **state)
{
    struct fx *f = *state;
    struct resp r = http(f, "GET", "/health", TOK_A_READER, NULL);
    json_t *o;

    assert_int_equal(r.status, 200);
    o = body_json(&r);
    assert_true(json_is_true(json_object_get(o, "healthy")));
    assert_int_equal(json_array_size(json_object_get(o, "health_issues")), 0);
    assert_true(json_is_true(json_object_get(o, "broker_reachable")));
    assert_true(json_is_true(json_object_get(o, "database_open")));
    assert_true(json_integer_value(json_object_get(o, "database_bytes")) > 0);
    assert_int_equal(json_integer_value(json_object_get(o, "rules_loaded")), 12);
    assert_string_equal(json_string_value(json_object_get(o, "last_event_time")),
                        "2026-01-01T00:00:00.000000Z");
    json_decref(o);
    resp_free(&r);

    f->broker_up = false;
    r = http(f, "GET", "/health", TOK_A_READER, NULL);
    assert_int_equal(r.status, 503);
    o = body_json(&r);
    assert_false(json_is_true(json_object_get(o, "healthy")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "health_issues"), 0)),
                        "broker_unreachable");
    json_decref(o);
    resp_free(&r);
    r = http(f, "GET", "/health?format=text", TOK_A_READER, NULL);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "broker_reachable                : false\n"));
    resp_free(&r);
    f->broker_up = true;
}

static void test_unknown_path(void **state)
{
    struct fx *f = *state;
    struct resp r = http(f, "GET", "/v1/alerts/a1/extra", TOK_A_READER, NULL);

    assert_int_equal(r.status, 404);
    resp_free(&r);
    r = http(f, "GET", "/v2/alerts", TOK_A_READER, NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
}

/* The operator tenant: /metrics and /health for its tokens only. */
static void test_ops_tenant(void **state)
{
    struct fx *f = *state;
    struct api_cfg cfg = {0};
    api_server *srv;
    uint16_t port = f->port;
    char err[256];
    struct resp r;

    cfg.db = f->db;
    cfg.tokens = f->tokens;
    cfg.metrics = f->metrics;
    cfg.health = fx_health;
    cfg.health_ctx = f;
    cfg.ops_tenant = "tenant-b";
    assert_int_equal(api_server_start(&cfg, &srv, err, sizeof(err)), 0);
    f->port = api_server_port(srv);
    r = http(f, "GET", "/metrics", TOK_A_ADMIN, NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    r = http(f, "GET", "/metrics", TOK_B_READER, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = http(f, "GET", "/health", TOK_A_READER, NULL);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    /* No admin hook: 501. */
    r = http(f, "POST", "/v1/rules/reload", TOK_A_ADMIN, NULL);
    assert_int_equal(r.status, 501);
    resp_free(&r);
    api_server_stop(srv);
    f->port = port;
}

/*
 * The running server reads its token file again when it changes: a token added after the
 * start works, a deleted line revokes its token, and a removed file refuses everyone, with
 * no restart. Each change is waited for by asking again (the file is looked at no more than
 * every 250 ms).
 */
static int status_within(struct fx *f, const char *token, int want)
{
    uint64_t t0 = vg_mono_ns();
    struct resp r;
    int st;

    for (;;) {
        r = http(f, "GET", "/metrics", token, NULL);
        st = r.status;
        resp_free(&r);
        if (st == want || vgt_elapsed_s(t0) > 10)
            return st;
        nanosleep(&(struct timespec){0, 50 * 1000000}, NULL); /* poll interval */
    }
}

static void test_token_reload(void **state)
{
    struct fx *f = *state;
    char *dir = vgt_tmpdir("api-reload"), path[512], tmp[520], tok1[80], tok2[80], err[256];
    char line[256];
    struct api_cfg cfg = {0};
    api_tokens *ts = NULL;
    api_server *srv;
    uint16_t port = f->port;
    FILE *in, *out;

    snprintf(path, sizeof(path), "%s/tokens", dir);
    assert_int_equal(
        api_token_add(path, "ops", API_ROLE_READER, "one", tok1, sizeof(tok1), err, sizeof(err)),
        0);
    assert_int_equal(api_tokens_load(path, &ts, NULL, err, sizeof(err)), 0);
    cfg.tokens = ts;
    cfg.tokens_path = path;
    cfg.metrics = f->metrics;
    assert_int_equal(api_server_start(&cfg, &srv, err, sizeof(err)), 0);
    f->port = api_server_port(srv);
    assert_int_equal(status_within(f, tok1, 200), 200);

    /* Added while it runs. */
    assert_int_equal(
        api_token_add(path, "ops", API_ROLE_READER, "two", tok2, sizeof(tok2), err, sizeof(err)),
        0);
    assert_int_equal(status_within(f, tok2, 200), 200);
    assert_int_equal(status_within(f, tok1, 200), 200);

    /* The first line deleted (the file written anew, renamed over). */
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    in = fopen(path, "r");
    out = fopen(tmp, "w");
    assert_non_null(in);
    assert_non_null(out);
    while (fgets(line, sizeof(line), in))
        if (strstr(line, " one\n") == NULL)
            fputs(line, out);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(status_within(f, tok1, 401), 401);
    assert_int_equal(status_within(f, tok2, 200), 200);

    /* The file removed: nobody. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(status_within(f, tok2, 401), 401);

    api_server_stop(srv);
    f->port = port;
    api_tokens_destroy(ts);
    vgt_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_hash),
        cmocka_unit_test(test_token_file),
        cmocka_unit_test(test_health_rules),
        cmocka_unit_test(test_health_render),
        cmocka_unit_test_setup_teardown(test_unauthenticated, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_roles, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_alerts_by_tenant, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_ids, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeline, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_health_endpoint, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_path, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ops_tenant, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_token_reload, fx_setup, fx_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
