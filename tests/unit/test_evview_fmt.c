/*
 * test_evview_fmt.c - the values the event view formats itself (numbers, Hashes, joined
 * registry paths and domain\account) without vsnprintf: the same text printf would write,
 * numbers at their extremes, and a value that does not fit the view's buffer left absent
 * (never cut), with the byte that would just fit still present.
 *
 * THREAD SAFETY: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evview.h"
#include "vgtest.h"

static void expect(const struct vg_evview *v, const char *name, const char *want)
{
    struct vg_str got;

    if (want == NULL) {
        if (vg_evview_get(v, name, &got))
            fail_msg("%s: expected absent, got %zu bytes", name, got.n);
        return;
    }
    if (!vg_evview_get(v, name, &got))
        fail_msg("%s: expected '%s', absent", name, want);
    if (got.n != strlen(want) || memcmp(got.p, want, got.n) != 0)
        fail_msg("%s: expected '%s', got '%.*s'", name, want, (int)got.n, got.p);
    assert_int_equal(got.p[got.n], '\0'); /* the view's values are NUL-terminated */
}

static void test_numbers(void **state)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef actor = VIGIL__PROCESS_REF__INIT;
    Vigil__NetworkConnection net = VIGIL__NETWORK_CONNECTION__INIT;
    struct vg_evview v;
    char want[32];

    (void)state;
    b.machine_id = "m1";
    actor.pid = UINT32_MAX;
    actor.image = "C:\\a.exe";
    ev.actor = &actor;
    ev.kind_case = VIGIL__EVENT__KIND_NETWORK;
    ev.network = &net;
    net.local_port = 1;
    net.remote_port = 65535;
    net.remote_ip = "10.0.0.1";
    vg_evview_build(&v, &b, &ev);
    snprintf(want, sizeof(want), "%u", UINT32_MAX);
    expect(&v, "ProcessId", want);
    expect(&v, "EventID", "3");
    expect(&v, "SourcePort", "1");
    expect(&v, "DestinationPort", "65535");
    /* 0 is absent for these (proto3 cannot tell 0 from unset)... */
    net.local_port = 0;
    vg_evview_build(&v, &b, &ev);
    expect(&v, "SourcePort", NULL);
}

static void test_zero_present(void **state)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__LogonEvent lo = VIGIL__LOGON_EVENT__INIT;
    Vigil__DnsQuery dns = VIGIL__DNS_QUERY__INIT;
    struct vg_evview v;

    (void)state;
    /* ...but a logon type and a DNS status are always present, 0 included. */
    ev.kind_case = VIGIL__EVENT__KIND_LOGON;
    ev.logon = &lo;
    lo.account = "alice";
    lo.account_domain = "CORP";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "LogonType", "0");
    expect(&v, "User", "CORP\\alice");
    lo.logon_type = 10;
    lo.account_domain = "";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "LogonType", "10");
    expect(&v, "User", "alice");
    ev.kind_case = VIGIL__EVENT__KIND_DNS;
    ev.dns = &dns;
    dns.query_name = "example.org";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "QueryStatus", "0");
    dns.status = 9003;
    vg_evview_build(&v, &b, &ev);
    expect(&v, "QueryStatus", "9003");
}

static void test_hashes_pairs(void **state)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef p = VIGIL__PROCESS_REF__INIT;
    Vigil__ProcessExited ex = VIGIL__PROCESS_EXITED__INIT;
    struct vg_evview v;

    (void)state;
    ev.actor = &p;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
    ev.process_exited = &ex;
    p.pid = 7;
    p.sha1 = "S1";
    p.sha256 = "S256";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "Hashes", "SHA1=S1,SHA256=S256");
    p.sha1 = "";
    p.md5 = "M5";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "Hashes", "MD5=M5,SHA256=S256");
    p.sha256 = "";
    p.sha1 = "S1";
    vg_evview_build(&v, &b, &ev);
    expect(&v, "Hashes", "SHA1=S1,MD5=M5");
}

/* key + "\\" + value of total length n, as a registry SetValue event with no actor (so the
 * only other formatted value is its EventID "13", 3 bytes with its NUL). */
static void registry_of_len(struct vg_evview *v, size_t n, char *key, char *val)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__RegistryEvent r = VIGIL__REGISTRY_EVENT__INIT;
    size_t kl = (n - 1) / 2;

    memset(key, 'k', kl);
    key[kl] = '\0';
    memset(val, 'v', n - 1 - kl);
    val[n - 1 - kl] = '\0';
    r.op = VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET;
    r.key = key;
    r.value_name = val;
    ev.kind_case = VIGIL__EVENT__KIND_REGISTRY;
    ev.registry = &r;
    vg_evview_build(v, &b, &ev);
}

static void test_too_long_is_absent(void **state)
{
    struct vg_evview v;
    size_t fit = sizeof(v.num) - 3 - 1; /* "13\0" before it, its own NUL after */
    char *key = malloc(sizeof(v.num) + 1), *val = malloc(sizeof(v.num) + 1);
    struct vg_str got;

    (void)state;
    assert_non_null(key);
    assert_non_null(val);
    registry_of_len(&v, fit, key, val);
    expect(&v, "EventID", "13");
    assert_true(vg_evview_get(&v, "TargetObject", &got));
    assert_int_equal(got.n, fit);
    assert_int_equal(got.p[strlen(key)], '\\');
    /* One byte more does not fit: absent, not cut; the rest of the view is intact. */
    registry_of_len(&v, fit + 1, key, val);
    expect(&v, "TargetObject", NULL);
    expect(&v, "EventID", "13");
    expect(&v, "EventType", "SetValue");
    free(key);
    free(val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_zero_present),
        cmocka_unit_test(test_hashes_pairs),
        cmocka_unit_test(test_too_long_is_absent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
