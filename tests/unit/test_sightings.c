/*
 * test_sightings.c - telemetry sightings for the incident stage's prevalence
 * (correlate/sightings.h): which entities of which events are reported, once per machine
 * and day, a machine with no entity still reported, and the point of it all: a binary that
 * every machine of the tenant runs stops linking two alerts once the sightings are applied
 * (cor_incidents_observe_all), while the attack's own binary still links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"
#include "incident.h"
#include "sightings.h"

#define DAY0   (INT64_C(20000) * VG_US_PER_DAY)
#define H_PWSH "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000"
#define H_DROP "d5e6f708192a3b4c5d6e7f8091a2b3c5f8a3b1c9d0e2f4a6b7c8d9e0f1a2b3c4"
#define TENANT "t-sight"
#define NFLEET 10

/* ---- events ------------------------------------------------------------------------ */

struct evs {
    Vigil__ProcessRef parent, child;
    Vigil__ProcessCreated pc;
    Vigil__NetworkConnection net;
    Vigil__DnsQuery dns;
    Vigil__RegistryEvent reg;
    Vigil__LogonEvent logon;
    Vigil__Event e_proc, e_net, e_dns, e_reg, e_logon, e_bare;
};

static void evs_init(struct evs *v, int64_t ts, const char *image, const char *sha)
{
    vigil__process_ref__init(&v->parent);
    v->parent.image = "C:\\Windows\\explorer.exe";
    v->parent.account = "CORP\\alice";
    vigil__process_ref__init(&v->child);
    v->child.image = (char *)image;
    v->child.sha256 = (char *)sha;
    v->child.account = "CORP\\alice";
    vigil__process_created__init(&v->pc);
    v->pc.process = &v->child;
    vigil__network_connection__init(&v->net);
    v->net.remote_ip = "198.51.100.20";
    v->net.url = "http://198.51.100.20/x"; /* URLs are not reported */
    vigil__dns_query__init(&v->dns);
    v->dns.query_name = "update.example.org";
    vigil__registry_event__init(&v->reg);
    v->reg.key = "HKLM\\Software\\Run"; /* registry keys are not reported */
    vigil__logon_event__init(&v->logon);
    v->logon.account = "bob";
    v->logon.account_domain = "CORP";
    v->logon.source_ip = "10.1.2.3";

    vigil__event__init(&v->e_proc);
    v->e_proc.ts_us = ts;
    v->e_proc.actor = &v->parent;
    v->e_proc.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    v->e_proc.process_created = &v->pc;
    vigil__event__init(&v->e_net);
    v->e_net.ts_us = ts + 1;
    v->e_net.kind_case = VIGIL__EVENT__KIND_NETWORK;
    v->e_net.network = &v->net;
    vigil__event__init(&v->e_dns);
    v->e_dns.ts_us = ts + 2;
    v->e_dns.kind_case = VIGIL__EVENT__KIND_DNS;
    v->e_dns.dns = &v->dns;
    vigil__event__init(&v->e_reg);
    v->e_reg.ts_us = ts + 3;
    v->e_reg.kind_case = VIGIL__EVENT__KIND_REGISTRY;
    v->e_reg.registry = &v->reg;
    vigil__event__init(&v->e_logon);
    v->e_logon.ts_us = ts + 4;
    v->e_logon.kind_case = VIGIL__EVENT__KIND_LOGON;
    v->e_logon.logon = &v->logon;
    vigil__event__init(&v->e_bare);
    v->e_bare.ts_us = ts + 5;
    v->e_bare.kind_case = VIGIL__EVENT__KIND_REGISTRY;
    v->e_bare.registry = &v->reg;
}

static bool has(const Vigil__Sightings *s, Vigil__EntityKind kind, const char *value,
                const char *sha)
{
    for (size_t i = 0; i < s->n_entities; i++)
        if (s->entities[i]->kind == kind && strcmp(s->entities[i]->value, value) == 0 &&
            strcmp(s->entities[i]->sha256, sha ? sha : "") == 0)
            return true;
    return false;
}

/* ---- entities of events ------------------------------------------------------------- */

struct seen {
    char buf[1024];
};

static void collect(void *ctx, Vigil__EntityKind kind, const char *value, const char *sha256)
{
    struct seen *s = ctx;
    size_t n = strlen(s->buf);

    snprintf(s->buf + n, sizeof(s->buf) - n, "%d:%s:%s;", (int)kind, value, sha256 ? sha256 : "");
}

static void test_event_entities(void **state)
{
    struct evs v;
    struct seen s = {""};

    (void)state;
    evs_init(&v, DAY0, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", H_PWSH);
    cor_event_entities(&v.e_proc, collect, &s);
    /* The created process (not the actor), then its account. */
    assert_string_equal(s.buf,
                        "1:C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe:" H_PWSH
                        ";5:CORP\\alice:;");
    s.buf[0] = '\0';
    cor_event_entities(&v.e_logon, collect, &s);
    assert_string_equal(s.buf, "5:CORP\\bob:;3:10.1.2.3:;");
    s.buf[0] = '\0';
    cor_event_entities(&v.e_net, collect, &s);
    assert_string_equal(s.buf, "3:198.51.100.20:;8:http://198.51.100.20/x:;");
}

/* ---- reporting and dedupe ----------------------------------------------------------- */

static size_t feed(cor_sightings *cs, const char *machine, struct evs *v)
{
    Vigil__Event *all[] = {&v->e_proc, &v->e_net, &v->e_dns, &v->e_reg, &v->e_logon};
    uint64_t mkey = vg_machine_key(TENANT, machine);

    for (size_t i = 0; i < VG_ARRAY_SIZE(all); i++)
        assert_int_equal(cor_sightings_event(cs, mkey, TENANT, machine, all[i]), 0);
    return VG_ARRAY_SIZE(all);
}

static void test_once_a_day(void **state)
{
    cor_sightings *cs = cor_sightings_new(1024);
    vg_arena *a = vg_arena_new(0);
    Vigil__Sightings **out;
    struct cor_sightings_stats st;
    struct evs v;
    size_t n;

    (void)state;
    assert_non_null(cs);
    evs_init(&v, DAY0 + 3600 * VG_US_PER_SEC, "C:\\Tools\\drop.exe", H_DROP);
    feed(cs, "m1", &v);
    assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0]->tenant_id, TENANT);
    assert_string_equal(out[0]->machine_id, "m1");
    assert_int_equal(out[0]->ts_us, v.e_logon.ts_us);
    /* Hash (as FILE: one identity whether run or written), two accounts, two addresses, one
     * domain; not the URL, not the registry key, not the path-only parent. */
    assert_int_equal(out[0]->n_entities, 6);
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_FILE, "C:\\Tools\\drop.exe", H_DROP));
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_USER, "CORP\\alice", NULL));
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_USER, "CORP\\bob", NULL));
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_IP, "198.51.100.20", NULL));
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_IP, "10.1.2.3", NULL));
    assert_true(has(out[0], VIGIL__ENTITY_KIND__ENTITY_DOMAIN, "update.example.org", NULL));

    /* The same events again that day: nothing new. */
    feed(cs, "m1", &v);
    assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
    assert_int_equal(n, 0);
    cor_sightings_get_stats(cs, &st);
    assert_int_equal(st.reported, 6);
    assert_int_equal(st.repeats, 6);

    /* Another machine: its own report. The next day: reported again, to keep the incident
     * stage's records (which expire) fresh. */
    feed(cs, "m2", &v);
    evs_init(&v, DAY0 + VG_US_PER_DAY + 60 * VG_US_PER_SEC, "C:\\Tools\\drop.exe", H_DROP);
    feed(cs, "m1", &v);
    assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0]->machine_id, "m2");
    assert_int_equal(out[0]->n_entities, 6);
    assert_string_equal(out[1]->machine_id, "m1");
    assert_int_equal(out[1]->n_entities, 6);

    /* A machine whose events name nothing reportable is still reported (machine count). */
    assert_int_equal(
        cor_sightings_event(cs, vg_machine_key(TENANT, "quiet"), TENANT, "quiet", &v.e_bare), 0);
    assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0]->machine_id, "quiet");
    assert_int_equal(out[0]->n_entities, 0);

    /* A report survives a round trip through its wire form (what alerts.tenant carries). */
    {
        size_t len = vigil__sightings__get_packed_size(out[0]);
        uint8_t *buf = malloc(len + 1);
        Vigil__Sightings *back;

        assert_non_null(buf);
        vigil__sightings__pack(out[0], buf);
        back = vigil__sightings__unpack(NULL, len, buf);
        assert_non_null(back);
        assert_string_equal(back->machine_id, "quiet");
        assert_string_equal(back->tenant_id, TENANT);
        vigil__sightings__free_unpacked(back, NULL);
        free(buf);
    }
    vg_arena_destroy(a);
    cor_sightings_free(cs);
}

/* ---- prevalence ---------------------------------------------------------------------- */

static Vigil__Alert *alert(vg_arena *a, const char *id, const char *machine, int64_t ts,
                           const char *image, const char *sha)
{
    Vigil__Alert *al = vg_arena_alloc(a, sizeof(*al));
    Vigil__Entity *e = vg_arena_alloc(a, 2 * sizeof(*e));
    Vigil__Entity **ep = vg_arena_alloc(a, 2 * sizeof(*ep));

    assert_true(al != NULL && e != NULL && ep != NULL);
    vigil__alert__init(al);
    al->id = (char *)id;
    al->tenant_id = TENANT;
    al->machine_id = (char *)machine;
    al->title = "test";
    al->severity = VIGIL__SEVERITY__SEVERITY_MEDIUM;
    al->first_event_us = ts;
    al->last_event_us = ts;
    vigil__entity__init(&e[0]);
    e[0].kind = VIGIL__ENTITY_KIND__ENTITY_MACHINE;
    e[0].value = (char *)machine;
    vigil__entity__init(&e[1]);
    e[1].kind = VIGIL__ENTITY_KIND__ENTITY_PROCESS;
    e[1].value = (char *)image;
    e[1].sha256 = (char *)sha;
    ep[0] = &e[0];
    ep[1] = &e[1];
    al->entities = ep;
    al->n_entities = 2;
    return al;
}

/* Two alerts on two machines sharing one binary: do they make one incident? The fleet's
 * sightings (PowerShell on all ten machines, the dropper on the two alerting ones) are
 * applied first when with_sightings. */
static bool linked(bool with_sightings, const char *sha_shared)
{
    cor_incidents *ci = cor_incidents_new(NULL);
    cor_sightings *cs = cor_sightings_new(0);
    vg_arena *a = vg_arena_new(0);
    char id1[COR_INCIDENT_ID_MAX], id2[COR_INCIDENT_ID_MAX];
    Vigil__Sightings **out;
    size_t n;
    bool same;

    assert_true(ci != NULL && cs != NULL && a != NULL);
    if (with_sightings) {
        /* Every machine of the fleet runs PowerShell; only m0 and m1 run the dropper. */
        for (int i = 0; i < NFLEET; i++) {
            char m[16];
            struct evs v;

            snprintf(m, sizeof(m), "m%d", i);
            evs_init(&v, DAY0 + i * VG_US_PER_SEC,
                     "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", H_PWSH);
            assert_int_equal(
                cor_sightings_event(cs, vg_machine_key(TENANT, m), TENANT, m, &v.e_proc), 0);
            if (i < 2) {
                evs_init(&v, DAY0 + i * VG_US_PER_SEC + 7, "C:\\Tools\\drop.exe", H_DROP);
                assert_int_equal(
                    cor_sightings_event(cs, vg_machine_key(TENANT, m), TENANT, m, &v.e_proc), 0);
            }
        }
        assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
        assert_int_equal(n, NFLEET);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(cor_incidents_observe_all(ci, out[i]), 0);
    }
    assert_int_equal(
        cor_incidents_add(
            ci, alert(a, "al-1", "m0", DAY0 + 60 * VG_US_PER_SEC, "x.exe", sha_shared), id1, NULL),
        0);
    assert_int_equal(
        cor_incidents_add(
            ci, alert(a, "al-2", "m1", DAY0 + 120 * VG_US_PER_SEC, "x.exe", sha_shared), id2, NULL),
        0);
    /* The second add may have moved the first alert: compare where both are now. */
    assert_int_equal(
        cor_incidents_add(
            ci, alert(a, "al-1", "m0", DAY0 + 60 * VG_US_PER_SEC, "x.exe", sha_shared), id1, NULL),
        0);
    same = strcmp(id1, id2) == 0;
    if (with_sightings)
        assert_int_equal(cor_incidents_is_common(ci, TENANT, VIGIL__ENTITY_KIND__ENTITY_PROCESS,
                                                 "x.exe", sha_shared),
                         strcmp(sha_shared, H_PWSH) == 0);
    vg_arena_destroy(a);
    cor_sightings_free(cs);
    cor_incidents_free(ci);
    return same;
}

static void test_common_binary_stops_linking(void **state)
{
    (void)state;
    /* From alerts alone, PowerShell on two alerting machines looks rare: it links. */
    assert_true(linked(false, H_PWSH));
    /* With the fleet's sightings it is on 10 of 10 machines: common, no link. */
    assert_false(linked(true, H_PWSH));
    /* The dropper is on 2 of 10: still links the two alerts. */
    assert_true(linked(true, H_DROP));
}

/* Machines that join the tenant later make a binary rarer: PowerShell on 10 of 10
 * machines is common, on 10 of 60 (17 %) no longer. Machines are counted from sightings
 * alone here (no count set), one at a time. */
static void test_fleet_growth_unmakes_common(void **state)
{
    cor_incidents *ci = cor_incidents_new(NULL);
    cor_sightings *cs = cor_sightings_new(0);
    vg_arena *a = vg_arena_new(0);
    Vigil__Sightings **out;
    size_t n;

    (void)state;
    assert_true(ci != NULL && cs != NULL && a != NULL);
    for (int i = 0; i < 60; i++) {
        char m[16];
        struct evs v;

        snprintf(m, sizeof(m), "g%d", i);
        evs_init(&v, DAY0 + i * VG_US_PER_SEC,
                 "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", H_PWSH);
        /* the first ten run PowerShell; the others only report themselves */
        assert_int_equal(cor_sightings_event(cs, vg_machine_key(TENANT, m), TENANT, m,
                                             i < 10 ? &v.e_proc : &v.e_bare),
                         0);
        assert_int_equal(cor_sightings_drain(cs, a, &out, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(cor_incidents_observe_all(ci, out[0]), 0);
        if (i == 9)
            assert_true(cor_incidents_is_common(ci, TENANT, VIGIL__ENTITY_KIND__ENTITY_PROCESS,
                                                "powershell.exe", H_PWSH));
        if (i == 48) /* 10 of 49 machines: 20.4 %, still common */
            assert_true(cor_incidents_is_common(ci, TENANT, VIGIL__ENTITY_KIND__ENTITY_PROCESS,
                                                "powershell.exe", H_PWSH));
    }
    /* 10 of 60 */
    assert_false(cor_incidents_is_common(ci, TENANT, VIGIL__ENTITY_KIND__ENTITY_PROCESS,
                                         "powershell.exe", H_PWSH));
    vg_arena_destroy(a);
    cor_sightings_free(cs);
    cor_incidents_free(ci);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_entities),
        cmocka_unit_test(test_once_a_day),
        cmocka_unit_test(test_common_binary_stops_linking),
        cmocka_unit_test(test_fleet_growth_unmakes_common),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
