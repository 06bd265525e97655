/*
 * test_incident.c - the incident stage: the reference three-machine attack with noise and
 * a second tenant, order independence (every permutation of the attack, shuffles of
 * everything with prevalence learnt in between), merges, the window, expiry, updates,
 * the severity rule, JSON and DOT output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "vgtest.h"
#include "incident.h"

#define T0  INT64_C(1700000000000000)
#define MIN (INT64_C(60) * VG_US_PER_SEC)
#define HR  (INT64_C(60) * MIN)

#define H_PAYLOAD "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define H_SVCHOST "5f8a3b1c9d0e2f4a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
#define H_PWSH    "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000"
#define IP_DNS    "10.0.0.53"
#define IP_C2     "203.0.113.7"
#define NMACH     10
#define NATTACK   4
#define NNOISE    7

/* ---- building alerts -------------------------------------------------------------- */

static char *sdup(vg_arena *a, const char *s)
{
    return vg_arena_strndup(a, s, strlen(s));
}

static void *grow(vg_arena *a, void *old, size_t n, size_t elem)
{
    void *p = vg_arena_alloc(a, (n + 1) * elem);

    assert_non_null(p);
    if (n)
        memcpy(p, old, n * elem);
    return p;
}

static Vigil__Alert *mk(vg_arena *a, const char *tenant, const char *id, const char *machine,
                        int64_t ts, Vigil__Severity sev, const char *tactic, const char *title)
{
    Vigil__Alert *al = vg_arena_alloc(a, sizeof(*al));
    char name[64];

    assert_non_null(al);
    vigil__alert__init(al);
    al->id = sdup(a, id);
    al->tenant_id = sdup(a, tenant);
    al->machine_id = sdup(a, machine);
    snprintf(name, sizeof(name), "%s.corp.example", machine);
    al->machine_name = sdup(a, name);
    al->title = sdup(a, title);
    al->severity = sev;
    al->first_event_us = ts;
    al->last_event_us = ts + MIN;
    if (tactic) {
        al->mitre_tactics = grow(a, NULL, 0, sizeof(char *));
        al->mitre_tactics[0] = sdup(a, tactic);
        al->n_mitre_tactics = 1;
    }
    return al;
}

static void ent(vg_arena *a, Vigil__Alert *al, Vigil__EntityKind kind, const char *value,
                const char *sha)
{
    Vigil__Entity *e = vg_arena_alloc(a, sizeof(*e));

    assert_non_null(e);
    vigil__entity__init(e);
    e->kind = kind;
    e->value = sdup(a, value);
    e->sha256 = sdup(a, sha ? sha : "");
    al->entities = grow(a, al->entities, al->n_entities, sizeof(*e));
    al->entities[al->n_entities++] = e;
}

static void proc(vg_arena *a, Vigil__Alert *al, uint32_t pid, int64_t ct, const char *image,
                 int32_t parent, bool trigger)
{
    Vigil__ProcessNode *p = vg_arena_alloc(a, sizeof(*p));

    assert_non_null(p);
    vigil__process_node__init(p);
    p->pid = pid;
    p->creation_time_us = ct;
    p->image = sdup(a, image);
    p->parent_index = parent;
    p->trigger = trigger;
    al->process_tree = grow(a, al->process_tree, al->n_process_tree, sizeof(p));
    al->process_tree[al->n_process_tree++] = p;
}

#define E_MACHINE VIGIL__ENTITY_KIND__ENTITY_MACHINE
#define E_PROCESS VIGIL__ENTITY_KIND__ENTITY_PROCESS
#define E_FILE    VIGIL__ENTITY_KIND__ENTITY_FILE
#define E_IP      VIGIL__ENTITY_KIND__ENTITY_IP
#define E_USER    VIGIL__ENTITY_KIND__ENTITY_USER
#define E_DOMAIN  VIGIL__ENTITY_KIND__ENTITY_DOMAIN
#define SEV_LOW   VIGIL__SEVERITY__SEVERITY_LOW
#define SEV_MED   VIGIL__SEVERITY__SEVERITY_MEDIUM
#define SEV_HIGH  VIGIL__SEVERITY__SEVERITY_HIGH

/* The attack of the issue (alerts 0..3 = A, B, C, D) and noise (4..10) of a tenant. */
static size_t scenario(vg_arena *a, const char *t, Vigil__Alert **out)
{
    char id[64], m[16];
    Vigil__Alert *al;
    size_t n = 0;

#define ID(s) (snprintf(id, sizeof(id), "%s-%s", t, s), id)
    /* A: an Office document starts PowerShell, which downloads a binary. */
    al = mk(a, t, ID("A"), "m1", T0, SEV_MED, "Execution",
            "Office application started \"PowerShell\" downloading a binary");
    ent(a, al, E_MACHINE, "m1", NULL);
    ent(a, al, E_PROCESS, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", H_PWSH);
    ent(a, al, E_FILE, "C:\\Users\\alice\\AppData\\Local\\Temp\\Nupdate.exe", H_PAYLOAD);
    ent(a, al, E_IP, IP_C2, NULL);
    ent(a, al, E_IP, IP_DNS, NULL);
    ent(a, al, E_USER, "CORP\\alice", NULL);
    proc(a, al, 4100, T0 - 5 * MIN, "C:\\Program Files\\Microsoft Office\\WINWORD.EXE", -1, false);
    proc(a, al, 4200, T0 - MIN, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", 0,
         true);
    out[n++] = al;
    /* B: credential dumping on the same machine, from the downloaded binary. */
    al = mk(a, t, ID("B"), "m1", T0 + 30 * MIN, SEV_MED, "Credential Access",
            "Credential dumping from LSASS memory");
    ent(a, al, E_MACHINE, "m1", NULL);
    ent(a, al, E_USER, "NT AUTHORITY\\SYSTEM", NULL);
    proc(a, al, 4100, T0 - 5 * MIN, "C:\\Program Files\\Microsoft Office\\WINWORD.EXE", -1, false);
    proc(a, al, 4200, T0 - MIN, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", 0,
         false);
    proc(a, al, 4300, T0 + 29 * MIN, "C:\\Users\\alice\\AppData\\Local\\Temp\\Nupdate.exe", 1,
         true);
    out[n++] = al;
    /* C: lateral movement through a remote service running the same binary on m2. */
    al = mk(a, t, ID("C"), "m2", T0 + 2 * HR, SEV_MED, "Lateral Movement",
            "Remote service created running an unsigned binary");
    ent(a, al, E_MACHINE, "m2", NULL);
    ent(a, al, E_FILE, "C:\\Windows\\Nupdate.exe", H_PAYLOAD);
    ent(a, al, E_PROCESS, "C:\\Windows\\System32\\svchost.exe", H_SVCHOST);
    ent(a, al, E_USER, "CORP\\adm-bob", NULL);
    ent(a, al, E_IP, "10.0.1.11", NULL);
    ent(a, al, E_IP, IP_DNS, NULL);
    proc(a, al, 700, T0 - 48 * HR, "C:\\Windows\\System32\\services.exe", -1, false);
    proc(a, al, 5200, T0 + 2 * HR, "C:\\Windows\\Nupdate.exe", 0, true);
    out[n++] = al;
    /* D: mass file renames on m3 by the same account. */
    al = mk(a, t, ID("D"), "m3", T0 + 3 * HR, SEV_LOW, "Impact",
            "Mass file renames (possible ransomware)");
    ent(a, al, E_MACHINE, "m3", NULL);
    ent(a, al, E_USER, "corp\\ADM-BOB", NULL);
    ent(a, al, E_IP, IP_DNS, NULL);
    ent(a, al, E_DOMAIN, "time.windows.com.", NULL);
    proc(a, al, 6100, T0 + 3 * HR, "C:\\ProgramData\\r.exe", -1, true);
    out[n++] = al;
    /* Noise on m4..m10: only the DNS server, svchost's hash, local accounts, and the same
     * NTP domain as D on m4 and m5 (3 machines with D: common in a tenant of 10). */
    for (int i = 4; i <= NMACH; i++) {
        char s[16];

        snprintf(m, sizeof(m), "m%d", i);
        snprintf(s, sizeof(s), "N%d", i);
        al = mk(a, t, ID(s), m, T0 + (i - 4) * 20 * MIN, SEV_LOW, "Discovery",
                "Suspicious service query");
        ent(a, al, E_MACHINE, m, NULL);
        ent(a, al, E_IP, IP_DNS, NULL);
        ent(a, al, E_PROCESS, "C:\\Windows\\System32\\svchost.exe", H_SVCHOST);
        ent(a, al, E_USER, "NT AUTHORITY\\NETWORK SERVICE", NULL);
        ent(a, al, E_IP, "127.0.0.1", NULL);
        if (i <= 5)
            ent(a, al, E_DOMAIN, "TIME.windows.com", NULL);
        out[n++] = al;
    }
#undef ID
    return n;
}

/* Telemetry sightings: the DNS server and svchost on every machine of the tenant. */
static void observe_one(cor_incidents *ci, const char *t, int machine, int what)
{
    char m[16];

    snprintf(m, sizeof(m), "m%d", machine);
    if (what == 0)
        assert_int_equal(cor_incidents_observe(ci, t, m, E_IP, IP_DNS, NULL, T0), 0);
    else
        assert_int_equal(cor_incidents_observe(ci, t, m, E_PROCESS, "svchost.exe", H_SVCHOST, T0),
                         0);
}

static void observe_all(cor_incidents *ci, const char *t)
{
    for (int i = 1; i <= NMACH; i++) {
        observe_one(ci, t, i, 0);
        observe_one(ci, t, i, 1);
    }
}

static void add(cor_incidents *ci, const Vigil__Alert *al, char *id)
{
    char tmp[COR_INCIDENT_ID_MAX];
    bool changed;

    assert_int_equal(cor_incidents_add(ci, al, id ? id : tmp, &changed), 0);
    assert_true(changed);
}

/* The current incident of an alert (incidents merge and split after an add). */
static void current(cor_incidents *ci, const Vigil__Alert *al, char *id)
{
    bool changed = true;

    assert_int_equal(cor_incidents_add(ci, al, id, &changed), 0);
    assert_false(changed);
}

static void drain(cor_incidents *ci)
{
    struct cor_incident_change c;

    while (cor_incidents_next_change(ci, &c))
        ;
}

/* The incident of an alert, as JSON (malloc'd). */
static char *incident_json(cor_incidents *ci, const Vigil__Alert *al, char *id_out)
{
    char id[COR_INCIDENT_ID_MAX];
    vg_arena *ar = vg_arena_new(0);
    Vigil__Incident *inc;
    bool changed;
    char *js;

    assert_non_null(ar);
    assert_int_equal(cor_incidents_add(ci, al, id, &changed), 0);
    assert_false(changed); /* the same alert again is no change */
    assert_int_equal(cor_incidents_get(ci, id, ar, &inc), 0);
    assert_string_equal(inc->id, id);
    js = cor_incident_to_json(inc);
    assert_non_null(js);
    if (id_out)
        strcpy(id_out, id);
    vg_arena_destroy(ar);
    return js;
}

static bool has_str(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_reference_scenario(void **state)
{
    vg_arena *a = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert *t1[16], *t2[16];
    char ids1[16][COR_INCIDENT_ID_MAX], ids2[16][COR_INCIDENT_ID_MAX];
    size_t n1, n2;
    Vigil__Incident *inc;
    vg_arena *ar = vg_arena_new(0);

    (void)state;
    n1 = scenario(a, "t1", t1);
    n2 = scenario(a, "t2", t2);
    assert_int_equal(n1, NATTACK + NNOISE);
    observe_all(ci, "t1");
    observe_all(ci, "t2");
    assert_true(cor_incidents_is_common(ci, "t1", E_IP, IP_DNS, NULL));
    assert_true(cor_incidents_is_common(ci, "t1", E_FILE, "x", H_SVCHOST));
    for (size_t i = 0; i < n1; i++)
        add(ci, t1[i], ids1[i]);
    for (size_t i = 0; i < n2; i++)
        add(ci, t2[i], ids2[i]);
    for (size_t i = 0; i < n1; i++)
        current(ci, t1[i], ids1[i]);
    for (size_t i = 0; i < n2; i++)
        current(ci, t2[i], ids2[i]);
    assert_false(cor_incidents_is_common(ci, "t1", E_FILE, "x", H_PAYLOAD));
    assert_false(cor_incidents_is_common(ci, "t1", E_USER, "CORP\\adm-bob", NULL));
    /* time.windows.com is on m3, m4, m5: 3 of 10 machines, common. */
    assert_true(cor_incidents_is_common(ci, "t1", E_DOMAIN, "time.windows.com", NULL));

    /* One incident holds the four attack alerts; it is named after A, the earliest. */
    for (size_t i = 0; i < NATTACK; i++)
        assert_string_equal(ids1[i], ids1[0]);
    assert_int_equal(cor_incidents_get(ci, ids1[0], ar, &inc), 0);
    assert_string_equal(inc->tenant_id, "t1");
    assert_int_equal(inc->n_alert_ids, 4);
    assert_string_equal(inc->alert_ids[0], "t1-A");
    assert_string_equal(inc->alert_ids[1], "t1-B");
    assert_string_equal(inc->alert_ids[2], "t1-C");
    assert_string_equal(inc->alert_ids[3], "t1-D");
    assert_int_equal(inc->n_machine_ids, 3);
    assert_string_equal(inc->machine_ids[0], "m1");
    assert_string_equal(inc->machine_ids[1], "m2");
    assert_string_equal(inc->machine_ids[2], "m3");
    /* Highest is Medium; 3 machines (and 4 tactics) raise it to High. */
    assert_int_equal(inc->severity, SEV_HIGH);
    assert_int_equal(inc->n_mitre_tactics, 4);
    assert_int_equal(inc->first_event_us, T0);
    assert_int_equal(inc->last_event_us, T0 + 3 * HR + MIN);
    assert_non_null(strstr(inc->title, "3 machines"));
    /* Common entities are not in the graph; shared ones are one node. */
    for (size_t i = 0; i < inc->n_nodes; i++) {
        assert_null(strstr(inc->nodes[i]->id, IP_DNS));
        assert_null(strstr(inc->nodes[i]->id, H_SVCHOST));
    }
    {
        size_t hashnodes = 0, pwsh = 0, bob = 0;

        for (size_t i = 0; i < inc->n_nodes; i++) {
            hashnodes += strcmp(inc->nodes[i]->id, "file:" H_PAYLOAD) == 0;
            pwsh += strstr(inc->nodes[i]->id, "process:m1:4200:") != NULL;
            bob += strcmp(inc->nodes[i]->id, "user:corp\\adm-bob") == 0;
        }
        assert_int_equal(hashnodes, 1);
        assert_int_equal(pwsh, 1);
        assert_int_equal(bob, 1);
    }

    /* Noise links to nothing: each noise alert is alone. */
    for (size_t i = NATTACK; i < n1; i++) {
        assert_string_not_equal(ids1[i], ids1[0]);
        for (size_t j = NATTACK; j < i; j++)
            assert_string_not_equal(ids1[i], ids1[j]);
    }
    /* The other tenant: its own incident, never the first tenant's. */
    for (size_t i = 0; i < n2; i++)
        for (size_t j = 0; j < n1; j++)
            assert_string_not_equal(ids2[i], ids1[j]);
    for (size_t i = 1; i < NATTACK; i++)
        assert_string_equal(ids2[i], ids2[0]);
    for (size_t i = 0; i < n2; i++) {
        assert_int_equal(cor_incidents_get(ci, ids2[i], ar, &inc), 0);
        assert_string_equal(inc->tenant_id, "t2");
        for (size_t j = 0; j < inc->n_alert_ids; j++)
            assert_memory_equal(inc->alert_ids[j], "t2-", 3);
    }
    for (size_t i = 0; i < n1; i++) {
        assert_int_equal(cor_incidents_get(ci, ids1[i], ar, &inc), 0);
        for (size_t j = 0; j < inc->n_alert_ids; j++)
            assert_memory_equal(inc->alert_ids[j], "t1-", 3);
    }
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
    vg_arena_destroy(a);
}

/* Without telemetry sightings, prevalence from alerts alone and tenant size from the
 * caller: the DNS server is on 9 of 10 machines' alerts. */
static void test_prevalence_from_alerts(void **state)
{
    vg_arena *a = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert *al[16];
    char ids[16][COR_INCIDENT_ID_MAX];
    size_t n;

    (void)state;
    n = scenario(a, "t1", al);
    assert_int_equal(cor_incidents_tenant_machines(ci, "t1", 10), 0);
    for (size_t i = 0; i < n; i++)
        add(ci, al[i], ids[i]);
    for (size_t i = 0; i < n; i++)
        current(ci, al[i], ids[i]);
    assert_true(cor_incidents_is_common(ci, "t1", E_IP, IP_DNS, NULL));
    /* svchost's hash is on 8 machines' alerts: common. */
    assert_true(cor_incidents_is_common(ci, "t1", E_PROCESS, "svchost.exe", H_SVCHOST));
    for (size_t i = 1; i < NATTACK; i++)
        assert_string_equal(ids[i], ids[0]);
    for (size_t i = NATTACK; i < n; i++)
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    /* With the tenant declared at 50 machines, the DNS server (9 machines, 18 %) is not
     * common any more: everything links through it. */
    assert_int_equal(cor_incidents_tenant_machines(ci, "t1", 50), 0);
    assert_false(cor_incidents_is_common(ci, "t1", E_IP, IP_DNS, NULL));
    {
        char id0[COR_INCIDENT_ID_MAX], idn[COR_INCIDENT_ID_MAX];
        char *j0 = incident_json(ci, al[0], id0), *jn = incident_json(ci, al[n - 1], idn);

        assert_string_equal(id0, idn);
        free(j0);
        free(jn);
    }
    cor_incidents_free(ci);
    vg_arena_destroy(a);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The incidents of all alerts as one string: "alert=incident-json\n"... (malloc'd). */
static char *snapshot(cor_incidents *ci, Vigil__Alert **al, size_t n)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);

    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char *js = incident_json(ci, al[i], NULL);
        size_t need = strlen(al[i]->id) + strlen(js) + 3;

        while (len + need >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        len += (size_t)sprintf(out + len, "%s=%s\n", al[i]->id, js);
        free(js);
    }
    return out;
}

static void test_order_independence_permutations(void **state)
{
    static const int perms[24][4] = {
        {0, 1, 2, 3}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {0, 3, 2, 1},
        {1, 0, 2, 3}, {1, 0, 3, 2}, {1, 2, 0, 3}, {1, 2, 3, 0}, {1, 3, 0, 2}, {1, 3, 2, 0},
        {2, 0, 1, 3}, {2, 0, 3, 1}, {2, 1, 0, 3}, {2, 1, 3, 0}, {2, 3, 0, 1}, {2, 3, 1, 0},
        {3, 0, 1, 2}, {3, 0, 2, 1}, {3, 1, 0, 2}, {3, 1, 2, 0}, {3, 2, 0, 1}, {3, 2, 1, 0}};
    vg_arena *a = vg_arena_new(0);
    Vigil__Alert *al[16];
    char *ref = NULL;

    (void)state;
    scenario(a, "t1", al);
    for (size_t p = 0; p < 24; p++) {
        cor_incidents *ci = cor_incidents_new(NULL);
        char id[COR_INCIDENT_ID_MAX], *js;

        observe_all(ci, "t1");
        for (int i = 0; i < 4; i++)
            add(ci, al[perms[p][i]], NULL);
        js = snapshot(ci, al, NATTACK);
        if (ref == NULL)
            ref = js;
        else {
            assert_string_equal(js, ref);
            free(js);
        }
        /* The last alert added reports the incident named after A. */
        assert_int_equal(cor_incidents_add(ci, al[perms[p][3]], id, NULL), 0);
        assert_non_null(strstr(ref, id));
        cor_incidents_free(ci);
    }
    free(ref);
    vg_arena_destroy(a);
}

/* 50 shuffles of everything, two tenants, with the prevalence sightings shuffled in too
 * (entities become common midway, which splits incidents that linked through them). */
static void test_order_independence_shuffles(void **state)
{
    enum { NOBS = 2 * NMACH };
    vg_arena *a = vg_arena_new(0);
    Vigil__Alert *al[32];
    size_t n = 0, nitems;
    int items[64];
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char *ref = NULL;
    struct cor_incident_stats st;
    uint64_t rebuilds = 0;

    (void)state;
    n += scenario(a, "t1", al + n);
    n += scenario(a, "t2", al + n);
    nitems = n + 2 * NOBS; /* items: alert i, or observation (tenant, machine, what) */
    for (int round = 0; round <= 50; round++) {
        cor_incidents *ci = cor_incidents_new(NULL);
        char *js;

        for (size_t i = 0; i < nitems; i++)
            items[i] = (int)i;
        for (size_t i = nitems - 1; round > 0 && i > 0; i--) {
            size_t j = rng_next(&seed) % (i + 1);
            int tmp = items[i];

            items[i] = items[j];
            items[j] = tmp;
        }
        for (size_t i = 0; i < nitems; i++) {
            int it = items[i];

            if ((size_t)it < n) {
                add(ci, al[it], NULL);
            } else {
                int o = it - (int)n;

                observe_one(ci, o < NOBS ? "t1" : "t2", (o % NOBS) / 2 + 1, o % 2);
            }
        }
        js = snapshot(ci, al, n);
        cor_incidents_get_stats(ci, &st);
        rebuilds += st.rebuilds;
        if (ref == NULL) {
            ref = js;
            assert_non_null(strstr(ref, "\"severity\":\"High\""));
        } else {
            assert_string_equal(js, ref);
            free(js);
        }
        assert_int_equal(st.alerts_held, n);
        cor_incidents_free(ci);
    }
    /* Some orders made an entity common after it had linked alerts: splits were tested. */
    assert_true(rebuilds > 0);
    free(ref);
    vg_arena_destroy(a);
}

static void test_merge(void **state)
{
    vg_arena *a = vg_arena_new(0);
    Vigil__Alert *p, *q, *r;
    char ip[COR_INCIDENT_ID_MAX], iq[COR_INCIDENT_ID_MAX], ir[COR_INCIDENT_ID_MAX];
    struct cor_incident_change c;
    bool retired_q = false, updated_p = false;

    (void)state;
    p = mk(a, "t", "P", "ma", T0, SEV_LOW, "Execution", "P");
    ent(a, p, E_FILE, "C:\\x.exe", H_PAYLOAD);
    q = mk(a, "t", "Q", "mb", T0 + HR, SEV_LOW, "Execution", "Q");
    ent(a, q, E_IP, IP_C2, NULL);
    r = mk(a, "t", "R", "mc", T0 + 2 * HR, SEV_MED, "Command and Control", "R");
    ent(a, r, E_FILE, "C:\\y.exe", H_PAYLOAD);
    ent(a, r, E_IP, IP_C2, NULL);
    for (int order = 0; order < 2; order++) {
        cor_incidents *ci = cor_incidents_new(NULL);
        vg_arena *ar = vg_arena_new(0);
        Vigil__Incident *inc;

        if (order == 0) {
            add(ci, p, ip);
            add(ci, q, iq);
            assert_string_not_equal(ip, iq);
            drain(ci);
            add(ci, r, ir);
            while (cor_incidents_next_change(ci, &c)) {
                assert_string_equal(c.tenant, "t");
                retired_q |= strcmp(c.id, iq) == 0 && c.kind == COR_INCIDENT_RETIRED;
                updated_p |= strcmp(c.id, ip) == 0 && c.kind == COR_INCIDENT_UPDATED;
            }
            assert_true(retired_q);
            assert_true(updated_p);
            assert_int_equal(cor_incidents_get(ci, iq, ar, &inc), -VG_ENOENT);
        } else {
            add(ci, r, ir);
            add(ci, q, iq);
            add(ci, p, ip);
            current(ci, r, ir);
        }
        /* Either way: one incident, named after P, the earliest. */
        assert_string_equal(ir, ip);
        assert_int_equal(cor_incidents_get(ci, ip, ar, &inc), 0);
        assert_int_equal(inc->n_alert_ids, 3);
        assert_string_equal(inc->alert_ids[0], "P");
        assert_int_equal(inc->severity, SEV_HIGH); /* Medium, 3 machines */
        cor_incidents_free(ci);
        vg_arena_destroy(ar);
    }
    vg_arena_destroy(a);
}

static void test_window(void **state)
{
    vg_arena *a = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert *x, *y, *z, *w;
    char ix[COR_INCIDENT_ID_MAX], iy[COR_INCIDENT_ID_MAX], iz[COR_INCIDENT_ID_MAX];
    char iw[COR_INCIDENT_ID_MAX];

    (void)state;
    /* 25 hours apart, sharing only the machine: two incidents. */
    x = mk(a, "t", "X", "m1", T0, SEV_LOW, NULL, "X");
    y = mk(a, "t", "Y", "m1", T0 + 25 * HR, SEV_LOW, NULL, "Y");
    add(ci, x, ix);
    add(ci, y, iy);
    assert_string_not_equal(ix, iy);
    /* 23 hours apart on another machine: linked. */
    z = mk(a, "t", "Z", "m2", T0, SEV_LOW, NULL, "Z");
    w = mk(a, "t", "W", "m2", T0 + 23 * HR, SEV_LOW, NULL, "W");
    add(ci, z, iz);
    add(ci, w, iw);
    assert_string_equal(iz, iw);
    /* An alert at 12 h on m1 is within the window of both X and Y: it bridges them. */
    x = mk(a, "t", "V", "m1", T0 + 12 * HR, SEV_LOW, NULL, "V");
    add(ci, x, iy);
    assert_string_equal(ix, iy);
    cor_incidents_free(ci);
    vg_arena_destroy(a);
}

static void test_expire(void **state)
{
    vg_arena *a = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    vg_arena *ar = vg_arena_new(0);
    Vigil__Alert *x, *y, *late;
    Vigil__Incident *inc;
    char ix[COR_INCIDENT_ID_MAX], iy[COR_INCIDENT_ID_MAX], il[COR_INCIDENT_ID_MAX];
    struct cor_incident_change c;
    struct cor_incident_stats st;
    bool closed = false;

    (void)state;
    x = mk(a, "t", "X", "m1", T0, SEV_LOW, NULL, "X");
    ent(a, x, E_IP, IP_C2, NULL);
    y = mk(a, "t", "Y", "m2", T0 + 30 * HR, SEV_LOW, NULL, "Y");
    add(ci, x, ix);
    assert_int_equal(cor_incidents_expire(ci, 0), 0); /* nothing is idle yet */
    add(ci, y, iy);
    drain(ci);
    assert_int_equal(cor_incidents_expire(ci, 0), 1);
    while (cor_incidents_next_change(ci, &c))
        closed |= strcmp(c.id, ix) == 0 && c.kind == COR_INCIDENT_CLOSED;
    assert_true(closed);
    assert_int_equal(cor_incidents_get(ci, ix, ar, &inc), -VG_ENOENT);
    assert_int_equal(cor_incidents_get(ci, iy, ar, &inc), 0);
    cor_incidents_get_stats(ci, &st);
    assert_int_equal(st.alerts_held, 1);
    assert_int_equal(st.closed, 1);
    /* A late alert of the closed incident's machine starts a new one (same id: named
     * after X no more, after itself). */
    late = mk(a, "t", "L", "m1", T0 + HR, SEV_LOW, NULL, "L");
    ent(a, late, E_IP, IP_C2, NULL);
    add(ci, late, il);
    assert_string_not_equal(il, ix);
    assert_string_not_equal(il, iy);
    /* Wall clock far ahead closes everything; stale prevalence goes too. */
    assert_int_equal(cor_incidents_expire(ci, T0 + 30 * VG_US_PER_DAY), 2);
    cor_incidents_get_stats(ci, &st);
    assert_int_equal(st.alerts_held, 0);
    assert_int_equal(st.entities_held, 0);
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
    vg_arena_destroy(a);
}

static void test_update(void **state)
{
    vg_arena *a = vg_arena_new(0), *ar = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert *x, *y, *x2, *x3;
    Vigil__Incident *inc;
    char ix[COR_INCIDENT_ID_MAX], iy[COR_INCIDENT_ID_MAX], id[COR_INCIDENT_ID_MAX];
    struct cor_incident_stats st;
    bool changed;

    (void)state;
    x = mk(a, "t", "X", "m1", T0, SEV_LOW, NULL, "X");
    y = mk(a, "t", "Y", "m2", T0 + HR, SEV_LOW, NULL, "Y");
    ent(a, y, E_USER, "CORP\\eve", NULL);
    add(ci, x, ix);
    add(ci, y, iy);
    assert_string_not_equal(ix, iy);
    /* Re-delivered, with its incident filled in: no change. */
    x->incident_id = ix;
    assert_int_equal(cor_incidents_add(ci, x, id, &changed), 0);
    assert_false(changed);
    assert_string_equal(id, ix);
    /* The alert grows an entity shared with Y: one incident, named after X. */
    x2 = mk(a, "t", "X", "m1", T0, SEV_MED, NULL, "X");
    x2->event_count = 2;
    ent(a, x2, E_USER, "corp\\EVE", NULL);
    add(ci, x2, id);
    assert_string_equal(id, ix);
    assert_int_equal(cor_incidents_get(ci, ix, ar, &inc), 0);
    assert_int_equal(inc->n_alert_ids, 2);
    assert_int_equal(inc->severity, SEV_MED); /* the updated severity */
    assert_int_equal(cor_incidents_get(ci, iy, ar, &inc), -VG_ENOENT);
    /* Rewritten without the shared account: split again, Y gets its id back. */
    x3 = mk(a, "t", "X", "m1", T0, SEV_MED, NULL, "X");
    add(ci, x3, id);
    assert_string_equal(id, ix);
    assert_int_equal(cor_incidents_get(ci, iy, ar, &inc), 0);
    assert_int_equal(inc->n_alert_ids, 1);
    assert_string_equal(inc->alert_ids[0], "Y");
    /* Moved after Y and sharing the account again: linked, with Y now the earliest. */
    x3 = mk(a, "t", "X", "m1", T0 + 3 * HR, SEV_MED, NULL, "X");
    ent(a, x3, E_USER, "CORP\\eve", NULL);
    add(ci, x3, id);
    assert_string_equal(id, iy);
    assert_int_equal(cor_incidents_get(ci, ix, ar, &inc), -VG_ENOENT);
    cor_incidents_get_stats(ci, &st);
    assert_int_equal(st.alerts_added, 2);
    assert_int_equal(st.alerts_updated, 3);
    assert_int_equal(st.alerts_same, 1);
    assert_true(st.rebuilds >= 2);
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
    vg_arena_destroy(a);
}

/* A machine alerting all day does not make one unbounded incident. */
static void test_cap(void **state)
{
    struct cor_incident_cfg cfg = {.max_alerts = 3};
    vg_arena *a = vg_arena_new(0), *ar = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(&cfg);
    Vigil__Alert *al[7];
    char ids[7][COR_INCIDENT_ID_MAX], aid[8];
    struct cor_incident_stats st;
    size_t total = 0;

    (void)state;
    for (int i = 0; i < 7; i++) {
        snprintf(aid, sizeof(aid), "K%d", i);
        al[i] = mk(a, "t", aid, "m1", T0 + i * HR, SEV_LOW, NULL, "k");
        add(ci, al[i], NULL);
    }
    for (int i = 0; i < 7; i++) {
        Vigil__Incident *inc;
        bool first = true;

        current(ci, al[i], ids[i]);
        for (int j = 0; j < i; j++)
            first &= strcmp(ids[i], ids[j]) != 0;
        if (!first)
            continue;
        assert_int_equal(cor_incidents_get(ci, ids[i], ar, &inc), 0);
        assert_true(inc->n_alert_ids <= 3);
        total += inc->n_alert_ids;
    }
    assert_int_equal(total, 7); /* every alert in exactly one incident */
    assert_string_equal(ids[0], ids[2]);
    assert_string_not_equal(ids[0], ids[3]);
    cor_incidents_get_stats(ci, &st);
    assert_true(st.capped > 0);
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
    vg_arena_destroy(a);
}

static void test_severity_rule(void **state)
{
    vg_arena *a = vg_arena_new(0);
    static const struct {
        int machines, tactics;
        Vigil__Severity top, want;
    } cases[] = {
        {1, 1, SEV_MED, SEV_MED},
        {2, 2, SEV_MED, SEV_MED},
        {3, 1, SEV_MED, SEV_HIGH},
        {1, 3, SEV_LOW, SEV_MED},
        {3, 3, SEV_HIGH, SEV_HIGH},
        {2, 2, SEV_HIGH, SEV_HIGH},
        {1, 4, VIGIL__SEVERITY__SEVERITY_INFORMATIONAL, SEV_LOW},
    };
    static const char *const tactics[] = {"Execution", "Persistence", "Discovery", "Impact"};

    (void)state;
    for (size_t k = 0; k < VG_ARRAY_SIZE(cases); k++) {
        cor_incidents *ci = cor_incidents_new(NULL);
        vg_arena *ar = vg_arena_new(0);
        Vigil__Incident *inc;
        char id[COR_INCIDENT_ID_MAX], aid[16], m[16];
        int n = VG_MAX(cases[k].machines, cases[k].tactics);

        /* A large tenant: the shared account is not common. */
        assert_int_equal(cor_incidents_tenant_machines(ci, "t", 100), 0);

        for (int i = 0; i < n; i++) {
            Vigil__Alert *al;

            snprintf(aid, sizeof(aid), "S%zu-%d", k, i);
            snprintf(m, sizeof(m), "m%d", i % cases[k].machines);
            al = mk(a, "t", aid, m, T0 + i * MIN,
                    i == 0 ? cases[k].top : VIGIL__SEVERITY__SEVERITY_INFORMATIONAL,
                    tactics[i % cases[k].tactics], "s");
            ent(a, al, E_USER, "CORP\\carol", NULL);
            add(ci, al, id);
        }
        assert_int_equal(cor_incidents_get(ci, id, ar, &inc), 0);
        assert_int_equal(inc->n_alert_ids, n);
        assert_int_equal(inc->n_machine_ids, cases[k].machines);
        assert_int_equal(inc->n_mitre_tactics, cases[k].tactics);
        assert_int_equal(inc->severity, cases[k].want);
        cor_incidents_free(ci);
        vg_arena_destroy(ar);
    }
    vg_arena_destroy(a);
}

static void test_bad_input(void **state)
{
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert al = VIGIL__ALERT__INIT;
    struct cor_incident_stats st;
    vg_arena *ar = vg_arena_new(0);
    Vigil__Incident *inc;

    (void)state;
    assert_int_equal(cor_incidents_add(ci, &al, NULL, NULL), -VG_EINVAL); /* no id */
    al.id = "x";
    assert_int_equal(cor_incidents_add(ci, &al, NULL, NULL), -VG_EINVAL); /* no tenant */
    assert_int_equal(cor_incidents_observe(ci, "t", "", E_IP, "1.2.3.4", NULL, T0), -VG_EINVAL);
    assert_int_equal(cor_incidents_get(ci, "inc-zz", ar, &inc), -VG_ENOENT);
    assert_int_equal(cor_incidents_get(ci, "inc-00000000000000zz", ar, &inc), -VG_ENOENT);
    assert_int_equal(cor_incidents_get(ci, "inc-0000000000000001", ar, &inc), -VG_ENOENT);
    /* An alert without a machine is held alone. */
    al.tenant_id = "t";
    assert_int_equal(cor_incidents_add(ci, &al, NULL, NULL), 0);
    cor_incidents_get_stats(ci, &st);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.alerts_held, 1);
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
}

/* ---- output ----------------------------------------------------------------------- */

/* Reads a DOT quoted string at *p (after the quote); returns a malloc'd copy. */
static char *dot_quoted(const char **p)
{
    const char *s = *p;
    char *out = malloc(strlen(s) + 1), *o = out;

    assert_non_null(out);
    while (*s && *s != '"') {
        if (*s == '\\' && s[1])
            s++;
        *o++ = *s++;
    }
    assert_int_equal(*s, '"');
    *o = '\0';
    *p = s + 1;
    return out;
}

/* Checks the DOT text: braces balance outside strings, statements are node or edge
 * statements, and every edge endpoint was declared as a node. Returns the edge count. */
static size_t dot_check(const char *dot, const Vigil__Incident *inc)
{
    const char *p = dot;
    int depth = 0;
    size_t nnodes = 0, nedges = 0, cap = 256;
    char **nodes = malloc(cap * sizeof(*nodes));

    assert_non_null(nodes);
    assert_int_equal(strncmp(dot, "digraph ", 8), 0);
    while (*p) {
        if (*p == '{') {
            depth++;
            p++;
        } else if (*p == '}') {
            depth--;
            assert_true(depth >= 0);
            p++;
        } else if (*p == '"') {
            const char *line_start = p;
            char *a;

            p++;
            a = dot_quoted(&p);
            while (*p == ' ')
                p++;
            if (strncmp(p, "->", 2) == 0) {
                char *b;
                bool fa = false, fb = false;

                p += 2;
                while (*p == ' ')
                    p++;
                assert_int_equal(*p, '"');
                p++;
                b = dot_quoted(&p);
                for (size_t i = 0; i < nnodes; i++) {
                    fa |= strcmp(nodes[i], a) == 0;
                    fb |= strcmp(nodes[i], b) == 0;
                }
                assert_true(fa);
                assert_true(fb);
                free(a);
                free(b);
                nedges++;
            } else if (*p == '[' && depth == 1 && (line_start == dot || line_start[-1] == ' ')) {
                if (nnodes == cap) {
                    cap *= 2;
                    nodes = realloc(nodes, cap * sizeof(*nodes));
                    assert_non_null(nodes);
                }
                nodes[nnodes++] = a;
            } else {
                free(a);
            }
            /* skip the attribute list */
            if (*p == '[') {
                while (*p && *p != ']') {
                    if (*p == '"') {
                        p++;
                        free(dot_quoted(&p));
                    } else {
                        p++;
                    }
                }
            }
        } else {
            p++;
        }
    }
    assert_int_equal(depth, 0);
    assert_int_equal(nnodes, inc->n_nodes);
    assert_int_equal(nedges, inc->n_edges);
    for (size_t i = 0; i < nnodes; i++)
        free(nodes[i]);
    free(nodes);
    return nedges;
}

static void test_output(void **state)
{
    vg_arena *a = vg_arena_new(0), *ar = vg_arena_new(0);
    cor_incidents *ci = cor_incidents_new(NULL);
    Vigil__Alert *al[16];
    Vigil__Incident *inc;
    char id[COR_INCIDENT_ID_MAX], *js, *dot;
    json_t *o, *v;
    json_error_t jerr;
    size_t n;

    (void)state;
    n = scenario(a, "t1", al);
    observe_all(ci, "t1");
    for (size_t i = 0; i < n; i++)
        add(ci, al[i], i == 0 ? id : NULL);
    assert_int_equal(cor_incidents_get(ci, id, ar, &inc), 0);

    js = cor_incident_to_json(inc);
    assert_non_null(js);
    assert_null(strchr(js, '\n'));
    o = json_loads(js, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "id")), id);
    assert_string_equal(json_string_value(json_object_get(o, "tenant")), "t1");
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "High");
    v = json_object_get(o, "alert_ids");
    assert_int_equal(json_array_size(v), 4);
    assert_string_equal(json_string_value(json_array_get(v, 2)), "t1-C");
    v = json_object_get(o, "machines");
    assert_int_equal(json_array_size(v), 3);
    assert_string_equal(json_string_value(json_array_get(v, 1)), "m2");
    assert_int_equal(json_array_size(json_object_get(o, "tactics")), 4);
    assert_int_equal(json_array_size(json_object_get(o, "nodes")), inc->n_nodes);
    assert_int_equal(json_array_size(json_object_get(o, "edges")), inc->n_edges);
    assert_non_null(json_object_get(json_array_get(json_object_get(o, "edges"), 0), "relation"));
    assert_string_equal(json_string_value(json_object_get(o, "first_event")),
                        "2023-11-14T22:13:20.000000Z");
    json_decref(o);
    free(js);
    assert_true(has_str(inc->machine_ids, inc->n_machine_ids, "m3"));

    dot = cor_incident_to_dot(inc);
    assert_non_null(dot);
    /* Labels hold quotes and Windows paths ("\N" would be a DOT escape). */
    assert_non_null(strstr(dot, "\\\"PowerShell\\\""));
    assert_non_null(strstr(dot, "[label=\"CORP\\\\alice\""));
    assert_true(dot_check(dot, inc) > 10);
    if (access("/usr/bin/dot", X_OK) == 0) {
        char *dir = vgt_tmpdir("incident-dot"), path[512], cmd[2048];
        FILE *f;

        snprintf(path, sizeof(path), "%s/inc.dot", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(dot, f);
        fclose(f);
        snprintf(cmd, sizeof(cmd), "/usr/bin/dot -Tsvg '%s' -o '%s.svg' 2>'%s.err'", path, path,
                 path);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "%s.err", path);
        {
            size_t len = 0;
            char *err = vgt_read_file(cmd, &len);

            assert_non_null(err);
            assert_int_equal(len, 0); /* no warnings either */
            free(err);
        }
        vgt_rmtree(dir);
        free(dir);
    } else {
        print_message("dot not installed: rendering not checked\n");
    }
    vg_free(dot);
    cor_incidents_free(ci);
    vg_arena_destroy(ar);
    vg_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_scenario),
        cmocka_unit_test(test_prevalence_from_alerts),
        cmocka_unit_test(test_order_independence_permutations),
        cmocka_unit_test(test_order_independence_shuffles),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_severity_rule),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_output),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
