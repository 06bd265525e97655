/*
 * test_evview.c - correlate/evview.c: the field table (order, canonical names, aliases,
 * FIELDS.md in step with it), category names, and the view of every event kind built from
 * hand-made protobuf events (process fields vs parent fields, Hashes, Sysmon network
 * direction, registry EventType and TargetObject, logon, generic, extra overrides).
 */
#include "vgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "evview.h"

static void expect(const struct vg_evview *v, const char *name, const char *want)
{
    struct vg_str got;

    if (want == NULL) {
        if (vg_evview_get(v, name, &got))
            fail_msg("%s: expected absent, got '%.*s'", name, (int)got.n, got.p);
        return;
    }
    if (!vg_evview_get(v, name, &got))
        fail_msg("%s: expected '%s', absent", name, want);
    if (got.n != strlen(want) || memcmp(got.p, want, got.n) != 0)
        fail_msg("%s: expected '%s', got '%.*s'", name, want, (int)got.n, got.p);
}

/* ---- tables ------------------------------------------------------------------------- */

static void test_field_table(void **state)
{
    const char *name, *note, *prev = NULL;
    int field, canon_count[VG_F__COUNT] = {0};
    bool canonical;

    (void)state;
    for (size_t i = 0; vg_field_def_at(i, &name, &field, &canonical, &note); i++) {
        assert_true(field >= 0 && field < VG_F__COUNT);
        assert_non_null(note);
        if (prev != NULL && strcasecmp(prev, name) >= 0)
            fail_msg("field table out of order at %s", name);
        assert_int_equal(vg_field_by_name(name), field);
        canon_count[field] += canonical;
        prev = name;
    }
    for (int f = 0; f < VG_F__COUNT; f++) {
        if (canon_count[f] != 1)
            fail_msg("field %d has %d canonical names", f, canon_count[f]);
        assert_int_equal(vg_field_by_name(vg_field_name((enum vg_field)f)), f);
    }
    assert_int_equal(vg_field_by_name("commandLINE"), VG_F_COMMAND_LINE);
    assert_int_equal(vg_field_by_name("NewProcessName"), VG_F_IMAGE);
    assert_int_equal(vg_field_by_name("ParentProcessName"), VG_F_PARENT_IMAGE);
    assert_string_equal(vg_field_name(VG_F_IMAGE), "Image");
    assert_int_equal(vg_field_by_name("ProcessGuid"), -1);
    assert_int_equal(vg_field_by_name(""), -1);
    assert_int_equal(vg_field_by_name(NULL), -1);
    /* The view lives on a shard's stack. */
    assert_true(sizeof(struct vg_evview) <= 2048);
}

static void test_cat_names(void **state)
{
    (void)state;
    for (int c = 1; c < VG_CAT__COUNT; c++)
        assert_int_equal(vg_cat_by_name(vg_cat_name((enum vg_cat)c)), c);
    assert_int_equal(vg_cat_by_name("Process_Creation"), VG_CAT_PROCESS_CREATION);
    assert_int_equal(vg_cat_by_name("sysmon_status"), VG_CAT_NONE);
    assert_int_equal(vg_cat_by_name(NULL), VG_CAT_NONE);
    assert_string_equal(vg_cat_name(VG_CAT_REGISTRY_EVENT), "registry_event");
    assert_string_equal(vg_cat_name(VG_CAT__COUNT), "");
}

/* FIELDS.md is the field table rendered; it must not drift from the code. Run with
 * VGT_WRITE_FIELDS=1 to regenerate it. */
static void test_fields_md_in_step(void **state)
{
    const char *name, *note;
    int field;
    bool canonical;
    size_t cap = 1 << 16, n = 0, flen = 0;
    char *md = malloc(cap), *file, *path;

    (void)state;
    assert_non_null(md);
    n += (size_t)snprintf(
        md + n, cap - n,
        "# Rule view fields\n\n"
        "Generated from `vg_fields[]` in `correlate/evview.c` (the single source of truth) by\n"
        "`VGT_WRITE_FIELDS=1 tests/unit/test_evview`; `test_evview` fails when they differ.\n\n"
        "A Sigma field name with a typed home is read from the event's protobuf fields; every\n"
        "other name is looked up in `Event.extra` (case-insensitive). An `extra` entry whose\n"
        "name is listed here overrides the typed value: importers keep the source's exact\n"
        "text there when the typed form would not render back byte for byte.\n\n"
        "| Sigma name | typed field | canonical | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; vg_field_def_at(i, &name, &field, &canonical, &note); i++) {
        n += (size_t)snprintf(md + n, cap - n, "| `%s` | %s | %s | ", name,
                              vg_field_name((enum vg_field)field), canonical ? "yes" : "alias");
        for (const char *p = note; *p && n + 4 < cap; p++) {
            if (*p == '|')
                md[n++] = '\\';
            md[n++] = *p;
        }
        n += (size_t)snprintf(md + n, cap - n, " |\n");
    }
    assert_true(n < cap);
    assert_true(asprintf(&path, "%s/correlate/FIELDS.md", VG_SOURCE_DIR) > 0);
    if (getenv("VGT_WRITE_FIELDS") != NULL) {
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_int_equal(fwrite(md, 1, n, f), n);
        fclose(f);
    }
    file = vgt_read_file(path, &flen);
    assert_non_null(file);
    assert_int_equal(flen, n);
    assert_memory_equal(file, md, n);
    free(file);
    free(path);
    free(md);
}

/* ---- kinds -------------------------------------------------------------------------- */

struct fixture {
    Vigil__TelemetryBatch b;
    Vigil__Event ev;
    Vigil__ProcessRef actor, proc;
    Vigil__ProcessCreated pc;
    struct vg_evview v;
};

static void fx_init(struct fixture *x)
{
    memset(x, 0, sizeof(*x));
    vigil__telemetry_batch__init(&x->b);
    vigil__event__init(&x->ev);
    vigil__process_ref__init(&x->actor);
    vigil__process_ref__init(&x->proc);
    vigil__process_created__init(&x->pc);
    x->b.machine_id = "m-1";
    x->b.machine_name = "WS01";
    x->b.os = VIGIL__OS__OS_WINDOWS;
    x->ev.seq = 42;
    x->ev.ts_us = 1000;
    x->ev.actor = &x->actor;
    x->actor.image = "C:\\Windows\\explorer.exe";
    x->actor.command_line = "explorer.exe";
    x->actor.pid = 1200;
    x->actor.account = "CORP\\alice";
    x->actor.sha256 = "AC";
}

static void test_process_created(void **state)
{
    struct fixture x;

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    x.ev.process_created = &x.pc;
    x.pc.process = &x.proc;
    x.proc.image = "C:\\Windows\\System32\\cmd.exe";
    x.proc.command_line = "cmd /c whoami";
    x.proc.pid = 4321;
    x.proc.sha1 = "S1";
    x.proc.md5 = "M5";
    x.proc.sha256 = "S256";
    x.proc.integrity_level = "High";
    x.proc.original_file_name = "Cmd.Exe";
    x.proc.account = "CORP\\bob";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_PROCESS_CREATION);
    assert_null(x.v.service);
    assert_int_equal(x.v.seq, 42);
    assert_int_equal(x.v.ts_us, 1000);
    expect(&x.v, "Image", "C:\\Windows\\System32\\cmd.exe");
    expect(&x.v, "NewProcessName", "C:\\Windows\\System32\\cmd.exe");
    expect(&x.v, "CommandLine", "cmd /c whoami");
    expect(&x.v, "ProcessId", "4321");
    expect(&x.v, "User", "CORP\\bob");
    expect(&x.v, "IntegrityLevel", "High");
    expect(&x.v, "OriginalFileName", "Cmd.Exe");
    expect(&x.v, "Hashes", "SHA1=S1,MD5=M5,SHA256=S256");
    expect(&x.v, "sha256", "S256");
    expect(&x.v, "ParentImage", "C:\\Windows\\explorer.exe");
    expect(&x.v, "ParentCommandLine", "explorer.exe");
    expect(&x.v, "ParentProcessId", "1200");
    expect(&x.v, "ParentUser", "CORP\\alice");
    expect(&x.v, "EventID", "1");
    expect(&x.v, "Computer", "WS01");
    expect(&x.v, "CurrentDirectory", NULL);
    expect(&x.v, "Provider_Name", NULL);

    /* Only some hashes; no machine name. */
    x.proc.sha1 = "";
    x.proc.md5 = NULL;
    x.b.machine_name = "";
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "Hashes", "SHA256=S256");
    expect(&x.v, "Computer", "m-1");
    x.proc.sha256 = "";
    x.proc.md5 = "M5";
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "Hashes", "MD5=M5");
}

static void test_network_direction(void **state)
{
    struct fixture x;
    Vigil__NetworkConnection n = VIGIL__NETWORK_CONNECTION__INIT;

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_NETWORK;
    x.ev.network = &n;
    n.protocol = VIGIL__PROTOCOL__PROTOCOL_UDP;
    n.local_ip = "10.0.0.5";
    n.local_port = 51000;
    n.remote_ip = "8.8.8.8";
    n.remote_port = 53;
    n.remote_hostname = "dns.google";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_NETWORK_CONNECTION);
    expect(&x.v, "Image", "C:\\Windows\\explorer.exe"); /* the actor */
    expect(&x.v, "ParentImage", NULL);                  /* the shard fills it */
    expect(&x.v, "Protocol", "udp");
    expect(&x.v, "Initiated", "true");
    expect(&x.v, "SourceIp", "10.0.0.5");
    expect(&x.v, "SourcePort", "51000");
    expect(&x.v, "DestinationIp", "8.8.8.8");
    expect(&x.v, "DestinationPort", "53");
    expect(&x.v, "DestinationHostname", "dns.google");
    expect(&x.v, "EventID", "3");

    n.inbound = true; /* Sysmon: Source is the remote initiator */
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "Initiated", "false");
    expect(&x.v, "SourceIp", "8.8.8.8");
    expect(&x.v, "SourcePort", "53");
    expect(&x.v, "DestinationIp", "10.0.0.5");
    expect(&x.v, "DestinationPort", "51000");
    expect(&x.v, "DestinationHostname", NULL);
}

static void test_registry(void **state)
{
    static const struct {
        Vigil__RegistryOp op;
        enum vg_cat cat;
        const char *type, *eid;
    } cases[] = {
        {VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED, VG_CAT_REGISTRY_ADD, "CreateKey", "12"},
        {VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED, VG_CAT_REGISTRY_DELETE, "DeleteKey", "12"},
        {VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET, VG_CAT_REGISTRY_SET, "SetValue", "13"},
        {VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED, VG_CAT_REGISTRY_DELETE, "DeleteValue", "12"},
        {VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED, VG_CAT_REGISTRY_RENAME, "RenameKey", "14"},
        {VIGIL__REGISTRY_OP__REGISTRY_OP_UNKNOWN, VG_CAT_REGISTRY_EVENT, NULL, "12"},
    };
    struct fixture x;
    Vigil__RegistryEvent r = VIGIL__REGISTRY_EVENT__INIT;
    char longname[1200];

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_REGISTRY;
    x.ev.registry = &r;
    r.key = "HKLM\\Software\\Run";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r.op = cases[i].op;
        vg_evview_build(&x.v, &x.b, &x.ev);
        assert_int_equal(x.v.cat, cases[i].cat);
        expect(&x.v, "EventType", cases[i].type);
        expect(&x.v, "EventID", cases[i].eid);
        expect(&x.v, "TargetObject", "HKLM\\Software\\Run");
    }
    r.op = VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET;
    r.value_name = "evil";
    r.value_data = "C:\\x.exe";
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "TargetObject", "HKLM\\Software\\Run\\evil");
    expect(&x.v, "Details", "C:\\x.exe");
    r.op = VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED;
    r.value_name = "";
    r.new_name = "HKLM\\Software\\Run2";
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "NewName", "HKLM\\Software\\Run2");
    /* A join that does not fit the view's buffer is absent, never cut short. */
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    r.value_name = longname;
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "TargetObject", NULL);
}

static void test_logon(void **state)
{
    struct fixture x;
    Vigil__LogonEvent l = VIGIL__LOGON_EVENT__INIT;

    (void)state;
    fx_init(&x);
    x.actor = (Vigil__ProcessRef)VIGIL__PROCESS_REF__INIT;
    x.ev.kind_case = VIGIL__EVENT__KIND_LOGON;
    x.ev.logon = &l;
    l.success = false;
    l.logon_type = 0;
    l.account = "admin";
    l.account_domain = "CORP";
    l.source_ip = "10.1.1.1";
    l.source_port = 0;
    l.workstation = "KALI";
    l.auth_package = "NTLM";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_LOGON);
    assert_string_equal(x.v.service, "security");
    expect(&x.v, "EventID", "4625");
    expect(&x.v, "LogonType", "0");
    expect(&x.v, "TargetUserName", "admin");
    expect(&x.v, "TargetDomainName", "CORP");
    expect(&x.v, "User", "CORP\\admin");
    expect(&x.v, "IpAddress", "10.1.1.1");
    expect(&x.v, "IpPort", NULL);
    expect(&x.v, "WorkstationName", "KALI");
    expect(&x.v, "AuthenticationPackageName", "NTLM");
    l.success = true;
    l.logon_type = 10;
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "EventID", "4624");
    expect(&x.v, "LogonType", "10");
}

static void test_file_and_image(void **state)
{
    static const struct {
        Vigil__FileOp op;
        enum vg_cat cat;
    } ops[] = {
        {VIGIL__FILE_OP__FILE_CREATED, VG_CAT_FILE_EVENT},
        {VIGIL__FILE_OP__FILE_MODIFIED, VG_CAT_FILE_CHANGE},
        {VIGIL__FILE_OP__FILE_DELETED, VG_CAT_FILE_DELETE},
        {VIGIL__FILE_OP__FILE_RENAMED, VG_CAT_FILE_RENAME},
        {VIGIL__FILE_OP__FILE_READ, VG_CAT_FILE_ACCESS},
    };
    struct fixture x;
    Vigil__FileEvent f = VIGIL__FILE_EVENT__INIT;
    Vigil__ImageLoad il = VIGIL__IMAGE_LOAD__INIT;

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_FILE;
    x.ev.file = &f;
    f.path = "C:\\t\\new.txt";
    f.previous_path = "C:\\t\\old.txt";
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        f.op = ops[i].op;
        vg_evview_build(&x.v, &x.b, &x.ev);
        assert_int_equal(x.v.cat, ops[i].cat);
        expect(&x.v, "TargetFilename", "C:\\t\\new.txt");
        expect(&x.v, "SourceFilename", "C:\\t\\old.txt");
        expect(&x.v, "Hashes", NULL); /* the file's, not the actor's */
    }
    f.sha256 = "F256";
    vg_evview_build(&x.v, &x.b, &x.ev);
    expect(&x.v, "Hashes", "SHA256=F256");

    x.ev.kind_case = VIGIL__EVENT__KIND_IMAGE_LOAD;
    x.ev.image_load = &il;
    il.path = "C:\\evil.dll";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_IMAGE_LOAD);
    expect(&x.v, "ImageLoaded", "C:\\evil.dll");
    expect(&x.v, "Signed", "false");
    expect(&x.v, "Signature", NULL);
    expect(&x.v, "sha256", NULL);
    expect(&x.v, "Image", "C:\\Windows\\explorer.exe");
}

static void test_dns_and_exit(void **state)
{
    struct fixture x;
    Vigil__DnsQuery d = VIGIL__DNS_QUERY__INIT;
    Vigil__ProcessExited pe = VIGIL__PROCESS_EXITED__INIT;

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_DNS;
    x.ev.dns = &d;
    d.query_name = "evil.example";
    d.results = "1.2.3.4;";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_DNS_QUERY);
    expect(&x.v, "QueryName", "evil.example");
    expect(&x.v, "QueryResults", "1.2.3.4;");
    expect(&x.v, "QueryStatus", "0");
    x.ev.kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
    x.ev.process_exited = &pe;
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_PROCESS_TERMINATION);
    expect(&x.v, "EventID", "5");
    expect(&x.v, "ProcessId", "1200");
    expect(&x.v, "Hashes", "SHA256=AC");
}

static void test_generic_and_extra(void **state)
{
    struct fixture x;
    Vigil__GenericEvent g = VIGIL__GENERIC_EVENT__INIT;
    Vigil__KeyValue kv[3] = {VIGIL__KEY_VALUE__INIT, VIGIL__KEY_VALUE__INIT,
                             VIGIL__KEY_VALUE__INIT};
    Vigil__KeyValue *extra[3] = {&kv[0], &kv[1], &kv[2]};

    (void)state;
    fx_init(&x);
    x.ev.kind_case = VIGIL__EVENT__KIND_GENERIC;
    x.ev.generic = &g;
    x.ev.extra = extra;
    x.ev.n_extra = 3;
    kv[0].key = "TargetImage";
    kv[0].value = "C:\\Windows\\System32\\lsass.exe";
    kv[1].key = "ProcessId"; /* the source's own text overrides the typed pid */
    kv[1].value = "0x4b0";
    kv[2].key = "Channel";
    kv[2].value = "Security";
    g.category = "process_access";
    g.provider = "Microsoft-Windows-Sysmon";
    g.event_id = 10;
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_PROCESS_ACCESS);
    assert_string_equal(x.v.service, "security"); /* from the channel */
    expect(&x.v, "targetimage", "C:\\Windows\\System32\\lsass.exe");
    expect(&x.v, "ProcessId", "0x4b0");
    expect(&x.v, "EventID", "10");
    expect(&x.v, "Provider_Name", "Microsoft-Windows-Sysmon");
    expect(&x.v, "Image", "C:\\Windows\\explorer.exe");
    expect(&x.v, "GrantedAccess", NULL);

    g.category = "";
    g.service = "system";
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_OTHER);
    assert_string_equal(x.v.service, "system"); /* generic.service wins over the channel */

    x.ev.kind_case = VIGIL__EVENT__KIND_SOFTWARE;
    x.ev.n_extra = 0;
    vg_evview_build(&x.v, &x.b, &x.ev);
    assert_int_equal(x.v.cat, VG_CAT_SOFTWARE);
    assert_null(x.v.service);
    vg_evview_build(&x.v, NULL, &x.ev); /* no batch: no Computer, no crash */
    expect(&x.v, "Computer", NULL);
    assert_int_equal(x.v.os, VIGIL__OS__OS_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_table),
        cmocka_unit_test(test_cat_names),
        cmocka_unit_test(test_fields_md_in_step),
        cmocka_unit_test(test_process_created),
        cmocka_unit_test(test_network_direction),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_logon),
        cmocka_unit_test(test_file_and_image),
        cmocka_unit_test(test_dns_and_exit),
        cmocka_unit_test(test_generic_and_extra),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
