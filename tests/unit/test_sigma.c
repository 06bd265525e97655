/*
 * test_sigma.c - the Sigma rule engine: every modifier, wildcards and escaping, conditions,
 * logsource routing, case sensitivity, loader robustness and metadata mapping. Each check
 * has a matching and a non-matching event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "rules.h"
#include "sigma_int.h"
#include "vg.h"

/* ---- helpers ------------------------------------------------------------------------ */

static struct vg_evview ev(enum vg_cat cat, Vigil__Os os)
{
    struct vg_evview v;

    memset(&v, 0, sizeof(v));
    v.cat = cat;
    v.os = os;
    return v;
}

static struct vg_evview wproc(void)
{
    return ev(VG_CAT_PROCESS_CREATION, VIGIL__OS__OS_WINDOWS);
}

static void set(struct vg_evview *v, enum vg_field f, const char *s)
{
    v->f[f].p = s;
    v->f[f].n = s ? strlen(s) : 0;
}

/* Loads the rule files in dir; asserts that it loads. */
static cor_ruleset *load_dir(const char *dir, struct cor_load_summary *sum)
{
    const char *dirs[] = {dir};
    cor_ruleset *rs = NULL;
    char err[256] = "";

    assert_int_equal(cor_ruleset_load(dirs, 1, &rs, sum, err, sizeof(err)), 0);
    assert_non_null(rs);
    return rs;
}

/* A whole rule around a detection block (indented by 4) and a logsource block. */
static void rule_text(char *buf, size_t cap, const char *id, const char *logsource,
                      const char *detection)
{
    snprintf(buf, cap,
             "title: test rule %s\n"
             "id: %s\n"
             "level: high\n"
             "logsource:\n%s"
             "detection:\n%s",
             id, id, logsource, detection);
}

#define WIN_PROC "    product: windows\n    category: process_creation\n"

/* Writes one rule (rule_text) as dir/name. */
static void write_rule(const char *dir, const char *name, const char *id, const char *logsource,
                       const char *detection)
{
    char text[16384];

    rule_text(text, sizeof(text), id, logsource, detection);
    vgt_write_file(dir, name, text);
}

/* Frees what a test made: its scratch (or NULL), its ruleset and its rule directory. */
static void drop(cor_scratch *s, cor_ruleset *rs, char *dir)
{
    cor_scratch_destroy(s);
    cor_ruleset_unref(rs);
    vgt_rmtree(dir);
    free(dir);
}

/* Loads one rule (expects it to load), evaluates each event, frees everything. */
static int fire_ls(const char *logsource, const char *detection, const struct vg_evview *v)
{
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    int n;

    write_rule(dir, "r.yml", "11111111-1111-1111-1111-111111111111", logsource, detection);
    rs = load_dir(dir, &sum);
    if (sum.loaded != 1)
        fail_msg("rule did not load:\n%s", detection);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    n = cor_rules_eval(rs, s, v, NULL, NULL);
    drop(s, rs, dir);
    return n;
}

static int fire(const char *detection, const struct vg_evview *v)
{
    return fire_ls(WIN_PROC, detection, v);
}

/* Image=img, CommandLine=cmd on a Windows process_creation event. */
static int fire_cmd(const char *detection, const char *cmd)
{
    struct vg_evview v = wproc();

    set(&v, VG_F_IMAGE, "C:\\Windows\\System32\\cmd.exe");
    set(&v, VG_F_COMMAND_LINE, cmd);
    return fire(detection, &v);
}

/* ---- string matching ---------------------------------------------------------------- */

static void test_endswith_case_insensitive(void **state)
{
    const char *d = "    sel:\n        Image|endswith: '\\cmd.exe'\n    condition: sel\n";
    struct vg_evview v = wproc();

    set(&v, VG_F_IMAGE, "C:\\WINDOWS\\System32\\CMD.EXE");
    assert_int_equal(fire(d, &v), 1);
    set(&v, VG_F_IMAGE, "C:\\Windows\\System32\\cmd.exe.bak");
    assert_int_equal(fire(d, &v), 0);
    set(&v, VG_F_IMAGE, NULL);
    assert_int_equal(fire(d, &v), 0);
}

static void test_contains_startswith_exact(void **state)
{
    assert_int_equal(fire_cmd("    sel:\n        CommandLine|contains: 'whoami'\n"
                              "    condition: sel\n",
                              "cmd /c WHOAMI /all"),
                     1);
    assert_int_equal(fire_cmd("    sel:\n        CommandLine|contains: 'whoami'\n"
                              "    condition: sel\n",
                              "cmd /c who ami"),
                     0);
    assert_int_equal(fire_cmd("    sel:\n        CommandLine|startswith: 'cmd /c'\n"
                              "    condition: sel\n",
                              "CMD /C dir"),
                     1);
    assert_int_equal(fire_cmd("    sel:\n        CommandLine|startswith: 'cmd /c'\n"
                              "    condition: sel\n",
                              "x cmd /c dir"),
                     0);
    assert_int_equal(
        fire_cmd("    sel:\n        CommandLine: 'net user'\n    condition: sel\n", "NET USER"), 1);
    assert_int_equal(fire_cmd("    sel:\n        CommandLine: 'net user'\n    condition: sel\n",
                              "net user admin"),
                     0);
}

static void test_wildcards_and_escaping(void **state)
{
    const char *wild = "    sel:\n        CommandLine: 'a*b?d'\n    condition: sel\n";
    const char *esc = "    sel:\n        CommandLine: 'foo\\*bar\\?'\n    condition: sel\n";
    const char *bs = "    sel:\n        CommandLine: 'C:\\\\x\\Temp'\n    condition: sel\n";

    assert_int_equal(fire_cmd(wild, "a12345bcd"), 1);
    assert_int_equal(fire_cmd(wild, "a12345bd"), 0); /* ? needs exactly one */
    assert_int_equal(fire_cmd(wild, "a1bcdx"), 0);   /* anchored at the end */
    assert_int_equal(fire_cmd(esc, "foo*bar?"), 1);
    assert_int_equal(fire_cmd(esc, "fooXbarY"), 0);
    /* '\\' is one backslash; '\T' stays a backslash and a T. */
    assert_int_equal(fire_cmd(bs, "C:\\x\\Temp"), 1);
    assert_int_equal(fire_cmd(bs, "C:\\\\x\\Temp"), 0);
    /* A lone '*' means any value, but the field must be there. */
    {
        const char *any = "    sel:\n        OriginalFileName: '*'\n    condition: sel\n";
        struct vg_evview v = wproc();
        assert_int_equal(fire(any, &v), 0);
        set(&v, VG_F_ORIGINAL_FILE_NAME, "x.exe");
        assert_int_equal(fire(any, &v), 1);
    }
}

static void test_all_and_lists(void **state)
{
    const char *all = "    sel:\n        CommandLine|contains|all:\n            - 'alpha'\n"
                      "            - 'beta'\n    condition: sel\n";
    const char *any = "    sel:\n        CommandLine|contains:\n            - 'alpha'\n"
                      "            - 'beta'\n    condition: sel\n";

    assert_int_equal(fire_cmd(all, "x beta y alpha"), 1);
    assert_int_equal(fire_cmd(all, "x alpha y"), 0);
    assert_int_equal(fire_cmd(any, "x beta y"), 1);
    assert_int_equal(fire_cmd(any, "x gamma y"), 0);
}

static void test_map_is_and(void **state)
{
    const char *d = "    sel:\n        Image|endswith: '\\cmd.exe'\n"
                    "        CommandLine|contains: 'x'\n    condition: sel\n";

    assert_int_equal(fire_cmd(d, "echo x"), 1);
    assert_int_equal(fire_cmd(d, "echo y"), 0);
}

static void test_list_of_maps_is_or(void **state)
{
    const char *d = "    sel:\n        - CommandLine|contains: 'one'\n"
                    "        - CommandLine|contains: 'two'\n    condition: sel\n";

    assert_int_equal(fire_cmd(d, "two"), 1);
    assert_int_equal(fire_cmd(d, "three"), 0);
}

static void test_cased(void **state)
{
    const char *d = "    sel:\n        CommandLine|contains|cased: 'AbC'\n    condition: sel\n";

    assert_int_equal(fire_cmd(d, "xAbCx"), 1);
    assert_int_equal(fire_cmd(d, "xabcx"), 0);
}

static void test_re_and_flags(void **state)
{
    const char *plain = "    sel:\n        CommandLine|re: '^abc[0-9]+'\n    condition: sel\n";
    const char *ci = "    sel:\n        CommandLine|re|i: '^abc[0-9]+'\n    condition: sel\n";
    const char *ml = "    sel:\n        CommandLine|re|m: '^x$'\n    condition: sel\n";
    const char *dot = "    sel:\n        CommandLine|re|s: 'a.b'\n    condition: sel\n";
    /* A lookahead: Hyperscan refuses it, PCRE2 takes over. */
    const char *look = "    sel:\n        CommandLine|re: 'foo(?!bar)'\n    condition: sel\n";

    assert_int_equal(fire_cmd(plain, "abc12 rest"), 1);
    assert_int_equal(fire_cmd(plain, "ABC12 rest"), 0); /* re is case-sensitive */
    assert_int_equal(fire_cmd(ci, "ABC12 rest"), 1);
    assert_int_equal(fire_cmd(ci, "ABCx"), 0);
    assert_int_equal(fire_cmd(ml, "a\nx\nb"), 1);
    assert_int_equal(fire_cmd(plain, "zz\nabc1"), 0);
    assert_int_equal(
        fire_cmd("    sel:\n        CommandLine|re: '^x$'\n    condition: sel\n", "a\nx\nb"), 0);
    assert_int_equal(fire_cmd(dot, "a\nb"), 1);
    assert_int_equal(
        fire_cmd("    sel:\n        CommandLine|re: 'a.b'\n    condition: sel\n", "a\nb"), 0);
    assert_int_equal(fire_cmd(look, "foobaz"), 1);
    assert_int_equal(fire_cmd(look, "foobar"), 0);
}

static void test_base64_and_base64offset(void **state)
{
    /* Sigma's own example: base64offset of '/bin/bash' is L2Jpbi9iYXNo, 9iaW4vYmFza and
     * vYmluL2Jhc2 (the three alignments). */
    const char *d = "    sel:\n        CommandLine|base64offset|contains: '/bin/bash'\n"
                    "    condition: sel\n";
    const char *b = "    sel:\n        CommandLine|base64|contains: 'abc'\n"
                    "    condition: sel\n";

    assert_int_equal(fire_cmd(d, "echo L2Jpbi9iYXNo | base64 -d"), 1);
    assert_int_equal(fire_cmd(d, "echo xx9iaW4vYmFzaxx"), 1);
    assert_int_equal(fire_cmd(d, "echo QUJDvYmluL2Jhc2g="), 1);
    assert_int_equal(fire_cmd(d, "echo L2Jpbi9zaA=="), 0); /* /bin/sh */
    assert_int_equal(fire_cmd(b, "x YWJj y"), 1);
    assert_int_equal(fire_cmd(b, "x YWJk y"), 0);
}

static void test_utf16_wide(void **state)
{
    /* 'ab' as UTF-16LE is 61 00 62 00, base64 YQBiAA== */
    const char *d = "    sel:\n        CommandLine|wide|base64|contains: 'ab'\n"
                    "    condition: sel\n";
    const char *be = "    sel:\n        CommandLine|utf16be|base64|contains: 'ab'\n"
                     "    condition: sel\n";

    assert_int_equal(fire_cmd(d, "-enc YQBiAA=="), 1);
    assert_int_equal(fire_cmd(d, "-enc YWI="), 0);
    /* 00 61 00 62 -> AGEAYg== */
    assert_int_equal(fire_cmd(be, "-enc AGEAYg=="), 1);
    assert_int_equal(fire_cmd(be, "-enc YQBiAA=="), 0);
}

static void test_windash(void **state)
{
    const char *d = "    sel:\n        CommandLine|contains|windash: ' -enc '\n"
                    "    condition: sel\n";

    assert_int_equal(fire_cmd(d, "powershell -enc AAA"), 1);
    assert_int_equal(fire_cmd(d, "powershell /enc AAA"), 1);
    assert_int_equal(fire_cmd(d, "powershell \xe2\x80\x93"
                                 "enc AAA"),
                     1);
    assert_int_equal(fire_cmd(d, "powershell +enc AAA"), 0);
}

static void test_cidr(void **state)
{
    const char *ls = "    product: windows\n    category: network_connection\n";
    const char *d = "    sel:\n        DestinationIp|cidr:\n            - '10.0.0.0/8'\n"
                    "            - 'fe80::/10'\n    condition: sel\n";
    struct vg_evview v = ev(VG_CAT_NETWORK_CONNECTION, VIGIL__OS__OS_WINDOWS);

    set(&v, VG_F_DESTINATION_IP, "10.200.3.4");
    assert_int_equal(fire_ls(ls, d, &v), 1);
    set(&v, VG_F_DESTINATION_IP, "11.0.0.1");
    assert_int_equal(fire_ls(ls, d, &v), 0);
    set(&v, VG_F_DESTINATION_IP, "fe80::1");
    assert_int_equal(fire_ls(ls, d, &v), 1);
    set(&v, VG_F_DESTINATION_IP, "2001:db8::1");
    assert_int_equal(fire_ls(ls, d, &v), 0);
    set(&v, VG_F_DESTINATION_IP, "not an address");
    assert_int_equal(fire_ls(ls, d, &v), 0);
}

/* A boolean value ('true') is never the rule's trigger when another clause can be: the
 * port list wakes the rule, so an outbound connection to another port wakes nothing; and
 * the rule still needs both. */
static void test_boolean_not_trigger(void **state)
{
    const char *ls = "    product: windows\n    category: network_connection\n";
    const char *d = "    sel:\n        Initiated: 'true'\n"
                    "        DestinationPort:\n            - 4444\n            - 5555\n"
                    "    condition: sel\n";
    struct vg_evview v = ev(VG_CAT_NETWORK_CONNECTION, VIGIL__OS__OS_WINDOWS);
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    size_t i, ntrig = 0, nbool_trig = 0;
    cor_ruleset *rs;

    (void)state;
    write_rule(dir, "r.yml", "66666666-6666-6666-6666-666666666666", ls, d);
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    for (i = 0; i < rs->nm; i++) {
        const struct sig_matcher *m = &rs->m[i];
        bool boolean = m->nlit == 4 && memcmp(m->lit, "true", 4) == 0;

        ntrig += m->trigger && !m->lazy;
        nbool_trig += boolean && m->trigger && !m->lazy;
    }
    assert_int_equal(ntrig, 2); /* the two ports */
    assert_int_equal(nbool_trig, 0);
    drop(NULL, rs, dir);
    set(&v, VG_F_INITIATED, "true");
    set(&v, VG_F_DESTINATION_PORT, "4444");
    assert_int_equal(fire_ls(ls, d, &v), 1);
    set(&v, VG_F_DESTINATION_PORT, "443");
    assert_int_equal(fire_ls(ls, d, &v), 0);
    set(&v, VG_F_INITIATED, "false");
    set(&v, VG_F_DESTINATION_PORT, "5555");
    assert_int_equal(fire_ls(ls, d, &v), 0);
}

/* The parsed address is kept for the next cidr matcher of the same event only: an event
 * whose value lies at the same address with other bytes is parsed again. */
static void test_cidr_reparsed_per_event(void **state)
{
    const char *d = "    sel:\n        DestinationIp|cidr:\n            - '10.0.0.0/8'\n"
                    "            - '192.168.0.0/16'\n            - '172.16.0.0/12'\n"
                    "    condition: sel\n";
    static const char *const vals[] = {"10.1.2.3", "11.1.2.3", "172.20.0.1", "172.32.0.1",
                                       "192.168.9.9"};
    static const int want[] = {1, 0, 1, 0, 1};
    char *dir = vgt_tmpdir("sigma"), buf[32];
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    size_t i;

    (void)state;
    write_rule(dir, "r.yml", "66666666-6666-6666-6666-666666666666",
               "    product: windows\n    category: network_connection\n", d);
    rs = load_dir(dir, &sum);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < 5; i++) {
        struct vg_evview v = ev(VG_CAT_NETWORK_CONNECTION, VIGIL__OS__OS_WINDOWS);
        memset(buf, 0, sizeof(buf));
        memcpy(buf, vals[i], strlen(vals[i]));
        v.f[VG_F_DESTINATION_IP].p = buf;
        v.f[VG_F_DESTINATION_IP].n = 8; /* same pointer and length every time */
        if (cor_rules_eval(rs, s, &v, NULL, NULL) != want[i] && strlen(vals[i]) == 8)
            fail_msg("%s: want %d", vals[i], want[i]);
        v.f[VG_F_DESTINATION_IP].n = strlen(vals[i]);
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), want[i]);
    }
    drop(s, rs, dir);
}

static void test_exists(void **state)
{
    const char *yes = "    sel:\n        OriginalFileName|exists: true\n    condition: sel\n";
    const char *no = "    sel:\n        OriginalFileName|exists: false\n    condition: sel\n";
    struct vg_evview v = wproc();

    assert_int_equal(fire(yes, &v), 0);
    assert_int_equal(fire(no, &v), 1);
    set(&v, VG_F_ORIGINAL_FILE_NAME, "cmd.exe");
    assert_int_equal(fire(yes, &v), 1);
    assert_int_equal(fire(no, &v), 0);
}

static void test_numeric_compare(void **state)
{
    const char *d = "    sel:\n        ProcessId|gt: 100\n        ProcessId|lte: 200\n"
                    "    condition: sel\n";
    const char *lt = "    sel:\n        ProcessId|lt: abc\n    condition: sel\n";
    struct vg_evview v = wproc();

    set(&v, VG_F_PROCESS_ID, "200");
    assert_int_equal(fire(d, &v), 1);
    set(&v, VG_F_PROCESS_ID, "100");
    assert_int_equal(fire(d, &v), 0);
    set(&v, VG_F_PROCESS_ID, "abc");
    assert_int_equal(fire(d, &v), 0);
    /* A value that is not a number: the rule is refused, not misread. */
    {
        char *dir = vgt_tmpdir("sigma");
        struct cor_load_summary sum;
        cor_ruleset *rs;
        write_rule(dir, "r.yml", "22222222-2222-2222-2222-222222222222", WIN_PROC, lt);
        rs = load_dir(dir, &sum);
        assert_int_equal(sum.loaded, 0);
        assert_int_equal(sum.skipped, 1);
        drop(NULL, rs, dir);
    }
    /* Event values in hex, as Windows renders some numbers, compare by value. */
    set(&v, VG_F_PROCESS_ID, "0x96");
    assert_int_equal(fire(d, &v), 1);
}

static void test_fieldref(void **state)
{
    const char *d = "    sel:\n        ParentImage|fieldref: Image\n    condition: sel\n";
    const char *ends = "    sel:\n        CommandLine|fieldref|endswith: Image\n"
                       "    condition: sel\n";
    struct vg_evview v = wproc();

    set(&v, VG_F_IMAGE, "C:\\a\\b.exe");
    set(&v, VG_F_PARENT_IMAGE, "c:\\A\\B.EXE");
    assert_int_equal(fire(d, &v), 1);
    set(&v, VG_F_PARENT_IMAGE, "C:\\a\\c.exe");
    assert_int_equal(fire(d, &v), 0);
    set(&v, VG_F_COMMAND_LINE, "run C:\\a\\b.exe");
    assert_int_equal(fire(ends, &v), 1);
    set(&v, VG_F_COMMAND_LINE, "C:\\a\\b.exe run");
    assert_int_equal(fire(ends, &v), 0);
}

static void test_null_and_numbers(void **state)
{
    const char *nul = "    sel:\n        Image|endswith: '.exe'\n        ParentUser: null\n"
                      "    condition: sel\n";
    const char *num = "    sel:\n        EventID:\n            - 4688\n            - 1\n"
                      "    condition: sel\n";
    struct vg_evview v = wproc();

    set(&v, VG_F_IMAGE, "a.exe");
    assert_int_equal(fire(nul, &v), 1);
    set(&v, VG_F_PARENT_USER, "SYSTEM");
    assert_int_equal(fire(nul, &v), 0);
    set(&v, VG_F_EVENT_ID, "1");
    assert_int_equal(fire(num, &v), 1);
    set(&v, VG_F_EVENT_ID, "11");
    assert_int_equal(fire(num, &v), 0);
}

static void test_keywords(void **state)
{
    const char *d = "    keywords:\n        - 'mimikatz'\n        - 'sekurlsa::'\n"
                    "    condition: keywords\n";

    assert_int_equal(fire_cmd(d, "x SEKURLSA::logonpasswords"), 1);
    assert_int_equal(fire_cmd(d, "x kerberos::list"), 0);
    /* Keywords with modifiers: '|all' needs every one. */
    {
        const char *all = "    keywords:\n        '|all':\n            - 'alpha'\n"
                          "            - 'beta'\n    condition: keywords\n";
        assert_int_equal(fire_cmd(all, "beta and alpha"), 1);
        assert_int_equal(fire_cmd(all, "alpha only"), 0);
    }
}

static void test_extra_fields(void **state)
{
    const char *d = "    sel:\n        Product|contains: 'Sysinternals'\n    condition: sel\n";
    struct vg_evview v = wproc();
    Vigil__KeyValue kv = VIGIL__KEY_VALUE__INIT, *kvs[] = {&kv};

    kv.key = "Product";
    kv.value = "Sysinternals PsExec";
    assert_int_equal(fire(d, &v), 0); /* no extra: the field is absent */
    v.extra = kvs;
    v.n_extra = 1;
    assert_int_equal(fire(d, &v), 1);
    kv.value = "Microsoft Windows";
    assert_int_equal(fire(d, &v), 0);
}

/* ---- conditions --------------------------------------------------------------------- */

static const char *cond_rule(const char *cond, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "    sel_a:\n        CommandLine|contains: 'aaa'\n"
             "    sel_b:\n        CommandLine|contains: 'bbb'\n"
             "    filter:\n        CommandLine|contains: 'fff'\n"
             "    condition: %s\n",
             cond);
    return buf;
}

static void test_conditions(void **state)
{
    char b[1024];

    assert_int_equal(fire_cmd(cond_rule("sel_a and not filter", b, sizeof(b)), "aaa"), 1);
    assert_int_equal(fire_cmd(cond_rule("sel_a and not filter", b, sizeof(b)), "aaa fff"), 0);
    assert_int_equal(fire_cmd(cond_rule("1 of sel_*", b, sizeof(b)), "bbb"), 1);
    assert_int_equal(fire_cmd(cond_rule("1 of sel_*", b, sizeof(b)), "fff"), 0);
    assert_int_equal(fire_cmd(cond_rule("all of sel_*", b, sizeof(b)), "aaa bbb"), 1);
    assert_int_equal(fire_cmd(cond_rule("all of sel_*", b, sizeof(b)), "aaa"), 0);
    assert_int_equal(fire_cmd(cond_rule("1 of them", b, sizeof(b)), "fff"), 1);
    assert_int_equal(fire_cmd(cond_rule("1 of them", b, sizeof(b)), "zzz"), 0);
    assert_int_equal(fire_cmd(cond_rule("all of them", b, sizeof(b)), "aaa bbb fff"), 1);
    assert_int_equal(fire_cmd(cond_rule("all of them", b, sizeof(b)), "aaa bbb"), 0);
    assert_int_equal(fire_cmd(cond_rule("(sel_a or sel_b) and not filter", b, sizeof(b)), "bbb"),
                     1);
    assert_int_equal(
        fire_cmd(cond_rule("(sel_a or sel_b) and not filter", b, sizeof(b)), "bbb fff"), 0);
    /* and binds tighter than or */
    assert_int_equal(fire_cmd(cond_rule("sel_a or sel_b and filter", b, sizeof(b)), "aaa"), 1);
    assert_int_equal(fire_cmd(cond_rule("sel_a or sel_b and filter", b, sizeof(b)), "bbb"), 0);
    /* Only a negation: must be evaluated even when no pattern hits. */
    assert_int_equal(fire_cmd(cond_rule("not filter", b, sizeof(b)), "zzz"), 1);
    assert_int_equal(fire_cmd(cond_rule("not filter", b, sizeof(b)), "fff"), 0);
    assert_int_equal(fire_cmd(cond_rule("not (sel_a or filter)", b, sizeof(b)), "zzz"), 1);
    assert_int_equal(fire_cmd(cond_rule("not (sel_a or filter)", b, sizeof(b)), "aaa"), 0);
}

/* ---- routing ------------------------------------------------------------------------ */

static void test_logsource_routing(void **state)
{
    const char *d = "    sel:\n        Image|endswith: '\\evil.exe'\n    condition: sel\n";
    const char *reg = "    product: windows\n    category: registry_event\n";
    const char *dreg = "    sel:\n        TargetObject|contains: '\\Run\\'\n    condition: sel\n";
    struct vg_evview v = wproc();

    set(&v, VG_F_IMAGE, "C:\\evil.exe");
    assert_int_equal(fire(d, &v), 1);
    v.cat = VG_CAT_FILE_EVENT; /* same fields, other category */
    assert_int_equal(fire(d, &v), 0);
    v.cat = VG_CAT_PROCESS_CREATION;
    v.os = VIGIL__OS__OS_LINUX; /* windows rule, linux event */
    assert_int_equal(fire(d, &v), 0);

    /* registry_event covers add, delete, set and rename */
    v = ev(VG_CAT_REGISTRY_SET, VIGIL__OS__OS_WINDOWS);
    set(&v, VG_F_TARGET_OBJECT, "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\x");
    assert_int_equal(fire_ls(reg, dreg, &v), 1);
    v.cat = VG_CAT_REGISTRY_DELETE;
    assert_int_equal(fire_ls(reg, dreg, &v), 1);
    v.cat = VG_CAT_FILE_EVENT;
    assert_int_equal(fire_ls(reg, dreg, &v), 0);
}

static void test_service_routing(void **state)
{
    const char *ls = "    product: windows\n    service: security\n";
    const char *d = "    sel:\n        EventID: 4624\n        LogonType: 10\n"
                    "    condition: sel\n";
    struct vg_evview v = ev(VG_CAT_LOGON, VIGIL__OS__OS_WINDOWS);

    set(&v, VG_F_EVENT_ID, "4624");
    set(&v, VG_F_LOGON_TYPE, "10");
    v.service = "security";
    assert_int_equal(fire_ls(ls, d, &v), 1);
    v.service = "system";
    assert_int_equal(fire_ls(ls, d, &v), 0);
    v.service = NULL;
    assert_int_equal(fire_ls(ls, d, &v), 0);
}

/* ---- loader ------------------------------------------------------------------------- */

static void test_broken_files_skipped(void **state)
{
    char *dir = vgt_tmpdir("sigma");
    char good[2048];
    struct cor_load_summary sum;
    struct vg_evview v = wproc();
    cor_ruleset *rs;
    cor_scratch *s;

    rule_text(good, sizeof(good), "33333333-3333-3333-3333-333333333333", WIN_PROC,
              "    sel:\n        CommandLine|contains: 'good'\n    condition: sel\n");
    vgt_write_file(dir, "a_good.yml", good);
    vgt_write_file(dir, "b_broken.yml", "title: [unclosed\n  id: : :\n\t- nope");
    vgt_write_file(dir, "c_badmod.yml",
                   "title: t\nid: 44444444-4444-4444-4444-444444444444\nlogsource:\n"
                   "    category: process_creation\ndetection:\n    sel:\n"
                   "        CommandLine|expand: '%x%'\n    condition: sel\n");
    vgt_write_file(dir, "d_badcond.yml",
                   "title: t\nid: 55555555-5555-5555-5555-555555555555\nlogsource:\n"
                   "    category: process_creation\ndetection:\n    sel:\n"
                   "        CommandLine: x\n    condition: sel and nosuch\n");
    vgt_write_file(dir, "e_corr.yml",
                   "title: c\nid: 66666666-6666-6666-6666-666666666666\ncorrelation:\n"
                   "    type: event_count\n    rules: [a]\n");
    vgt_write_file(
        dir, "f_multi.yaml",
        "action: global\ntitle: g\n---\ntitle: m\nid: 77777777-7777-7777-7777-777777777777\n"
        "logsource:\n    category: process_creation\ndetection:\n    sel:\n"
        "        CommandLine|contains: multi\n    condition: sel\n");
    vgt_write_file(dir, "g_agg.yml",
                   "title: t\nid: 88888888-8888-8888-8888-888888888888\nlogsource:\n"
                   "    category: process_creation\ndetection:\n    sel:\n"
                   "        CommandLine: x\n    condition: sel | count() > 5\n");
    vgt_write_file(dir, "h_dup.yml", good); /* same id again */
    vgt_write_file(dir, "notes.txt", "not a rule");
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.files, 8);
    assert_int_equal(sum.loaded, 2);
    assert_int_equal(sum.correlations, 1);
    assert_int_equal(sum.skipped, 6); /* broken, badmod, badcond, global, agg, dup */
    assert_int_equal(cor_ruleset_count(rs), 2);
    s = cor_scratch_new(rs);
    set(&v, VG_F_COMMAND_LINE, "good multi");
    assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 2);
    set(&v, VG_F_COMMAND_LINE, "bad");
    assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 0);
    drop(s, rs, dir);
}

static void test_metadata(void **state)
{
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    const struct cor_rule_info *ri;
    cor_ruleset *rs;

    vgt_write_file(dir, "m.yml",
                   "title: meta\nid: 99999999-9999-9999-9999-999999999999\nlevel: critical\n"
                   "tags:\n    - attack.t1003.001\n    - attack.credential_access\n"
                   "    - attack.lateral-movement\n    - cve.2021.1234\n"
                   "logsource:\n    product: windows\n    category: process_access\n"
                   "detection:\n    sel:\n        TargetImage|endswith: '\\lsass.exe'\n"
                   "    condition: sel\nvigil:\n    group: machine\n");
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    assert_int_equal(sum.extra_fields, 1); /* TargetImage has no typed home */
    ri = cor_ruleset_rule(rs, 0);
    assert_non_null(ri);
    assert_string_equal(ri->title, "meta");
    assert_int_equal(ri->severity, VIGIL__SEVERITY__SEVERITY_HIGH);
    assert_int_equal(ri->category, VIGIL__CATEGORY__CATEGORY_CREDENTIAL_ACCESS);
    assert_int_equal(ri->n_techniques, 1);
    assert_string_equal(ri->techniques[0], "T1003.001");
    assert_int_equal(ri->n_tactics, 2);
    assert_string_equal(ri->tactics[1], "lateral-movement");
    assert_int_equal(ri->group, COR_GROUP_MACHINE);
    assert_null(cor_ruleset_rule(rs, 1));
    drop(NULL, rs, dir);
}

/* ---- the built-in rules --------------------------------------------------------------- */

/* ---- lazy matchers (checked on evaluation, not scanned for) -------------------------- */

/* Filter literals wake no rule, so they are not scanned for: each is looked for in its
 * field when the rule is evaluated. Every offset and length around the 16-byte steps of
 * that search, in either case, must agree with a plain caseless search. */
static void test_lazy_filters(void **state)
{
    static const char *const marker[] = {"Harmless-Marker-Longer-Than-16", "ok", "Q"};
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    size_t i, lazy = 0, scanned = 0, checked = 0;

    (void)state;
    write_rule(dir, "r.yml", "33333333-3333-3333-3333-333333333333", WIN_PROC,
               "    selection:\n"
               "        Image|endswith: 'x.exe'\n"
               "    filter:\n"
               "        CommandLine|contains:\n"
               "            - 'Harmless-Marker-Longer-Than-16'\n"
               "            - 'ok'\n"
               "            - 'Q'\n"
               "    filter_cased:\n"
               "        CommandLine|contains|cased: 'CaseD'\n"
               "    condition: selection and not 1 of filter*\n");
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    for (i = 0; i < rs->nm; i++) {
        lazy += rs->m[i].lazy;
        scanned += rs->m[i].in_db && !rs->m[i].lazy;
    }
    assert_int_equal(lazy, 4);    /* the filters */
    assert_int_equal(scanned, 1); /* the selection */
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (size_t mk = 0; mk < 3; mk++) {
        for (size_t len = 0; len < 70; len++) {
            for (size_t at = 0; at <= len + 1; at++) {
                char cmd[160];
                struct vg_evview v = wproc();
                size_t n = strlen(marker[mk]), k;
                bool has;
                int got;
                for (k = 0; k < len; k++)
                    cmd[k] = (char)('a' + (k * 7 + mk) % 26 == 'q' ? 'z' : 'a' + (k * 7 + mk) % 26);
                cmd[len] = 0;
                if (at + n <= len) { /* the marker at `at`, its case flipped when at is odd */
                    for (k = 0; k < n; k++) {
                        char c = marker[mk][k];
                        if (at % 2 && c >= 'a' && c <= 'z')
                            c = (char)(c - 32);
                        else if (at % 2 && c >= 'A' && c <= 'Z')
                            c = (char)(c + 32);
                        cmd[at + k] = c;
                    }
                }
                has = strcasestr(cmd, "Harmless-Marker-Longer-Than-16") || strcasestr(cmd, "ok") ||
                      strcasestr(cmd, "q") || strstr(cmd, "CaseD");
                set(&v, VG_F_COMMAND_LINE, cmd);
                set(&v, VG_F_IMAGE, "C:\\x.exe");
                got = cor_rules_eval(rs, s, &v, NULL, NULL);
                if (got != (has ? 0 : 1))
                    fail_msg("'%s': %d matches, expected %d", cmd, got, has ? 0 : 1);
                checked++;
            }
        }
    }
    assert_true(checked > 5000);
    {
        /* cased: only the exact case filters it out */
        struct vg_evview v = wproc();
        set(&v, VG_F_IMAGE, "C:\\x.exe");
        set(&v, VG_F_COMMAND_LINE, "run CaseD now");
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 0);
        set(&v, VG_F_COMMAND_LINE, "run cased now");
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 1);
        set(&v, VG_F_COMMAND_LINE, NULL); /* field absent: no filter hit */
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 1);
        /* The selection's one literal is looked for without Hyperscan (SIG_DIRECT_MAX); it
         * has no separator, or the tail lookup would take it. */
        assert_true(rs->cat[VIGIL__OS__OS_WINDOWS][VG_CAT_PROCESS_CREATION].groups[0].lit.direct);
        set(&v, VG_F_IMAGE, "D:\\dir\\X.EXE");
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 1);
        set(&v, VG_F_IMAGE, "D:\\dir\\x.exe.bak");
        assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 0);
    }
    drop(s, rs, dir);
}

/* ---- required hits (sigma_req.c) ---------------------------------------------------- */

/* Loads one rule and evaluates cmd/img pairs against it with one scratch (so stale hits of
 * an earlier event would show); out[i] is the match count of pair i. Returns the rule's
 * number of required-hit clauses. */
static uint32_t fire_pairs(const char *detection, const char *const (*pairs)[2], size_t n, int *out)
{
    char text[8192], *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    uint32_t nreq;
    size_t i;

    write_rule(dir, "r.yml", "22222222-2222-2222-2222-222222222222", WIN_PROC, detection);
    rs = load_dir(dir, &sum);
    if (sum.loaded != 1)
        fail_msg("rule did not load:\n%s", text);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < n; i++) {
        struct vg_evview v = wproc();
        set(&v, VG_F_COMMAND_LINE, pairs[i][0]);
        set(&v, VG_F_IMAGE, pairs[i][1]);
        out[i] = cor_rules_eval(rs, s, &v, NULL, NULL);
    }
    nreq = rs->rules[0]->nreq;
    drop(s, rs, dir);
    return nreq;
}

/* fire_pairs, and every pair's match count must be want's. */
static void expect_pairs(const char *detection, const char *const (*pairs)[2], size_t n,
                         const int *want)
{
    int r[32];

    assert_true(n <= VG_ARRAY_SIZE(r));
    fire_pairs(detection, pairs, n, r);
    for (size_t i = 0; i < n; i++)
        if (r[i] != want[i])
            fail_msg("event %zu ('%s' | '%s'): %d matches, want %d", i, pairs[i][0], pairs[i][1],
                     r[i], want[i]);
}

static void test_required_hits(void **state)
{
    static const char *const p[][2] = {
        {"run alpha", "C:\\x.exe"}, {"run alpha", "C:\\y.exe"}, {"run beta", "C:\\x.exe"},
        {"one two", "C:\\a.exe"},   {"one", "C:\\a.exe"},       {"two", "C:\\b.exe"},
        {"one", "C:\\b.exe"},
    };
    int r[7];

    (void)state;
    /* AND of two selections: both clauses required. */
    assert_int_equal(fire_pairs("    a:\n        CommandLine|contains: alpha\n"
                                "    b:\n        Image|endswith: '\\x.exe'\n"
                                "    condition: a and b\n",
                                p, 3, r),
                     2);
    assert_int_equal(r[0], 1);
    assert_int_equal(r[1], 0);
    assert_int_equal(r[2], 0);
    /* OR of a selection and an AND: one clause (alpha or one) would be wrong; hits of the
     * AND branch alone must still wake the rule. */
    fire_pairs("    a:\n        CommandLine|contains: alpha\n"
               "    b:\n        CommandLine|contains: one\n"
               "    c:\n        Image|endswith: '\\a.exe'\n"
               "    condition: a or (b and c)\n",
               p, 7, r);
    assert_int_equal(r[0], 1);
    assert_int_equal(r[3], 1);
    assert_int_equal(r[4], 1);
    assert_int_equal(r[5], 0);
    assert_int_equal(r[6], 0);
    /* A negated selection requires nothing. */
    assert_int_equal(fire_pairs("    a:\n        CommandLine|contains: alpha\n"
                                "    f:\n        Image|endswith: '\\y.exe'\n"
                                "    condition: a and not f\n",
                                p, 3, r),
                     1);
    assert_int_equal(r[0], 1);
    assert_int_equal(r[1], 0);
    assert_int_equal(r[2], 0);
    /* A list of maps: either map. */
    fire_pairs("    s:\n        - CommandLine|contains: one\n          Image|endswith: a.exe\n"
               "        - CommandLine|contains: two\n"
               "    condition: s\n",
               p, 7, r);
    assert_int_equal(r[3], 1);
    assert_int_equal(r[4], 1);
    assert_int_equal(r[5], 1);
    assert_int_equal(r[6], 0);
    /* `all`: every value a clause. */
    assert_int_equal(fire_pairs("    s:\n        CommandLine|contains|all: [one, two]\n"
                                "    condition: s\n",
                                p, 7, r),
                     2);
    assert_int_equal(r[3], 1);
    assert_int_equal(r[4], 0);
    assert_int_equal(r[5], 0);
    /* A value Hyperscan does not prefilter (no literal) adds no clause: the rule must still
     * fire on the other selection's hit. */
    assert_int_equal(fire_pairs("    a:\n        CommandLine|contains: one\n"
                                "    b:\n        Image: '*'\n"
                                "    condition: a and b\n",
                                p, 7, r),
                     1);
    assert_int_equal(r[3], 1);
    assert_int_equal(r[5], 0);
}

/* What one rule's detection compiles to in the Windows process_creation route: patterns
 * in each lookup set, matchers in the literal database, its patterns, regex databases. */
struct set_counts {
    size_t exact, tail, eq, lit, lit_npat, re_dbs;
};

static void count_sets(const char *detection, struct set_counts *c)
{
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    const struct sig_bucket *b;
    cor_ruleset *rs;
    size_t g;

    memset(c, 0, sizeof(*c));
    write_rule(dir, "r.yml", "33333333-3333-3333-3333-333333333333", WIN_PROC, detection);
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    b = &rs->cat[VIGIL__OS__OS_WINDOWS][VG_CAT_PROCESS_CREATION];
    for (g = 0; g < b->ngroups; g++) {
        c->exact += b->groups[g].exact.npat;
        c->tail += b->groups[g].tail.npat;
        c->eq += b->groups[g].eq.npat;
        c->lit += b->groups[g].lit.n;
        c->lit_npat += b->groups[g].lit.db ? b->groups[g].lit.npat : 0;
        c->re_dbs += b->groups[g].re.db != NULL;
    }
    drop(NULL, rs, dir);
}

/* Whole-value literals of a field with many of them are found by one hash lookup of the
 * value (sig_group.exact), not by the literal scan: a value that merely contains one must not
 * match, case is ignored unless `cased`, and each event starts afresh. */
static void test_exact_values(void **state)
{
    static const char *const p[][2] = {
        {"run-07", "C:\\a.exe"},  {"RUN-07", "C:\\a.exe"},     {"run-07 ", "C:\\a.exe"},
        {"xrun-07", "C:\\a.exe"}, {"ExactCased", "C:\\a.exe"}, {"exactcased", "C:\\a.exe"},
        {"", "C:\\a.exe"},        {"run-19", "C:\\a.exe"},     {"run-20", "C:\\a.exe"},
    };
    static const int want[] = {1, 1, 0, 0, 1, 0, 0, 1, 0};
    char det[2048], *at = det;
    struct set_counts c;
    int i;

    (void)state;
    at += sprintf(at, "    sel:\n        CommandLine:\n");
    for (i = 0; i < 20; i++)
        at += sprintf(at, "            - 'Run-%02d'\n", i);
    sprintf(at, "    sel2:\n        CommandLine|cased: 'ExactCased'\n"
                "    other:\n        CommandLine|contains: 'unrelated words'\n"
                "    condition: sel or sel2 or other\n");
    expect_pairs(det, p, VG_ARRAY_SIZE(p), want);
    /* The set was built: 21 whole values of CommandLine in the lookup, one literal in the
     * scan. */
    count_sets(det, &c);
    assert_int_equal(c.exact, 21);
    assert_int_equal(c.lit, 1);
}

/* A command line's literals and regexes are one Hyperscan database (the literals written
 * as regexes, every other byte escaped): a literal's punctuation must not act as regex
 * syntax, literals stay caseless and regexes keep their own flags. */
static void test_cmdline_literals_and_regexes(void **state)
{
    static const char *const p[][2] = {
        {"run A.B now", "C:\\x.exe"}, {"run aXb now", "C:\\x.exe"}, {"(X)", "C:\\x.exe"},
        {"x", "C:\\x.exe"},           {"C:\\WIN", "C:\\x.exe"},     {"$1", "C:\\x.exe"},
        {"[z]", "C:\\x.exe"},         {"z", "C:\\x.exe"},           {"plus+", "C:\\x.exe"},
        {"plu", "C:\\x.exe"},         {"abc12", "C:\\x.exe"},       {"ABC12", "C:\\x.exe"},
        {"QQW", "C:\\x.exe"},         {"qw", "C:\\x.exe"},
    };
    static const int want[] = {1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0};
    static const char det[] = "    sel:\n        CommandLine|contains:\n"
                              "            - 'a.b'\n            - '(x)'\n"
                              "            - 'c:\\win'\n            - '$1'\n"
                              "            - '[z]'\n            - 'plus+'\n"
                              "    re1:\n        CommandLine|re: '^abc[0-9]+'\n"
                              "    re2:\n        CommandLine|re|i: 'q{2}w'\n"
                              "    condition: sel or re1 or re2\n";
    struct set_counts c;

    (void)state;
    expect_pairs(det, p, VG_ARRAY_SIZE(p), want);
    /* One database of the eight patterns, no regex database of its own. */
    count_sets(det, &c);
    assert_int_equal(c.re_dbs, 0);
    assert_int_equal(c.lit_npat, 8);
}

/* endswith literals that are one component with its separator ('\\tool.exe', '/tool',
 * '.tmp') are found by a lookup of the value from its last separator on (sig_group.tail):
 * only a value ending with the whole component matches, whichever separators come before,
 * case is ignored unless `cased`, and the set replaces the literals in the scan. */
static void test_tail_values(void **state)
{
    static const char *const p[][2] = {
        {"x", "C:\\x\\tool-07.exe"},
        {"x", "C:\\x\\TOOL-07.EXE"},
        {"x", "tool-07.exe"},
        {"x", "C:\\x\\mytool-07.exe"},
        {"x", "C:\\tool-07.exe\\x"},
        {"x", "C:\\a/b\\tool-19.exe"},
        {"x", "C:\\a\\b/tool-19.exe"},
        {"x", "/usr/bin/tool-sh"},
        {"x", "C:\\x\\tool-sh"},
        {"x", "/a\\b/tool-sh"},
        {"x", "C:\\CasedTool.exe"},
        {"x", "C:\\casedtool.exe"},
        {"x", "C:\\x\\tool-20.exe"},
        {"x", "\\tool-00.exe"},
        {"x", ""},
        {"x", "C:\\x\\a.TMP"},
        {"x", "C:\\x.tmp\\a"},
        {"x", "C:\\a.tmp.bak"},
        /* longer than a 16-byte block: separators found in a block or in the bytes before */
        {"x", "\\a-very-long-tool-name-here.exe"},
        {"x", "C:\\dir/sub\\A-VERY-long-tool-name-here.exe"},
        {"x", "C:\\dir\\a-very-long-tool-name-here.exe/x"},
        {"x", "C:\\dir\\a-very-long-tool-name-here.exe.bak.tmp"},
    };
    static const int want[] = {1, 1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1};
    char det[2048], *at = det;
    struct set_counts c;
    int i;

    (void)state;
    at += sprintf(at, "    sel:\n        Image|endswith:\n");
    for (i = 0; i < 20; i++)
        at += sprintf(at, "            - '\\tool-%02d.exe'\n", i);
    sprintf(at, "            - '/tool-sh'\n            - '.tmp'\n"
                "            - '\\a-very-long-tool-name-here.exe'\n"
                "    sel2:\n        Image|endswith|cased: '\\CasedTool.exe'\n"
                "    other:\n        Image|contains: 'unrelated words'\n"
                "    condition: sel or sel2 or other\n");
    expect_pairs(det, p, VG_ARRAY_SIZE(p), want);
    /* The set was built: 24 components of Image in the lookup, one literal in the scan. */
    count_sets(det, &c);
    assert_int_equal(c.tail, 24);
    assert_int_equal(c.lit, 1);
}

/* contains literals with one '=' of a few shapes (Hashes' 'MD5=<32 hex>') are found by
 * lookups around each '=' of the value (sig_group.eq), with contains semantics: inside a
 * longer token too, caseless, and names that differ in a shape still found. */
static void test_anchored_values(void **state)
{
    static const char h32[] = "0123456789abcdef0123456789abcdef";
    char det[8192], *at = det, val[12][200], *dir = vgt_tmpdir("sigma");
    const char *algo[] = {"MD5", "SHA1", "SHA256", "IMPHASH"};
    static const int want[] = {1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0};
    struct cor_load_summary sum;
    struct set_counts c;
    cor_ruleset *rs;
    cor_scratch *s;
    int i;

    (void)state;
    /* 20 literals: name=hex, hex of 32, 40, 64, 32 digits, the i-th ending in digit i % 10 */
    at += sprintf(at, "    sel:\n        Hashes|contains:\n");
    for (i = 0; i < 20; i++) {
        size_t len = i % 4 == 1 ? 40 : i % 4 == 2 ? 64 : 32, k;
        at += sprintf(at, "            - '%s=", algo[i % 4]);
        for (k = 0; k + 1 < len; k++)
            *at++ = h32[(k + (size_t)i) % 32];
        at += sprintf(at, "%d'\n", i % 10);
    }
    sprintf(at, "            - 'AAA=%s'\n    condition: sel\n", h32); /* MD5's shape */
    /* literal 0 = MD5=<32>, 1 = SHA1=<40>, 2 = SHA256=<64>, 3 = IMPHASH=<32> */
    for (i = 0; i < 4; i++) {
        size_t len = i == 1 ? 40 : i == 2 ? 64 : 32, k;
        char *p = val[i] + sprintf(val[i], "SHA1=ffff,%s=", algo[i]);
        for (k = 0; k + 1 < len; k++)
            *p++ = h32[(k + (size_t)i) % 32];
        sprintf(p, "%d,IMPHASH=00", i);
    }
    strcpy(val[4], val[0]);
    val[4][strlen("SHA1=ffff,MD5=") + 5] = 'x'; /* one digit changed */
    val[5][0] = 'x';                            /* inside a longer token */
    strcpy(val[5] + 1, val[0] + strlen("SHA1=ffff,"));
    for (i = 0; val[0][i]; i++) /* upper case */
        val[6][i] = (char)(val[0][i] >= 'a' && val[0][i] <= 'z' ? val[0][i] - 32 : val[0][i]);
    val[6][i] = 0;
    strcpy(val[7], val[0]);
    val[7][strlen(val[7]) - strlen(",IMPHASH=00") - 1] = 0; /* truncated by one */
    sprintf(val[8], "MD5%s", h32);                          /* no '=' */
    sprintf(val[9], "AAA=%s", h32);                         /* the other name of a shape */
    sprintf(val[10], "AAB=%s", h32);
    val[11][0] = 0;
    write_rule(dir, "r.yml", "88888888-8888-8888-8888-888888888888", WIN_PROC, det);
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    count_sets(det, &c); /* 21 literals in the lookup, none scanned */
    assert_int_equal(c.eq, 21);
    assert_int_equal(c.lit, 0);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < 12; i++) {
        struct vg_evview v = wproc();
        int n;
        set(&v, VG_F_HASHES, val[i]);
        n = cor_rules_eval(rs, s, &v, NULL, NULL);
        if (n != want[i])
            fail_msg("event %d ('%s'): %d matches, want %d", i, val[i], n, want[i]);
    }
    drop(s, rs, dir);
}

/* Short fields (here Image and ParentImage) are scanned as one buffer (sig_bucket.comb):
 * a literal of one field found in the other, or straddling the two, must not hit, and one
 * found in another field first must still hit in its own. */
static void test_combined_fields(void **state)
{
    static const char *const p[][2] = {
        {"C:\\zz-", "yy\\x"},     {"yy\\x", "C:\\zz-"},   {"C:\\x", "C:\\qq1"},
        {"C:\\qq3.exe", "C:\\y"}, {"C:\\x", "C:\\PP5"},   {"C:\\zz-yy", "C:\\pp2"},
        {"C:\\pp1", "C:\\qq2"},   {"C:\\qq4", "C:\\qq4"}, {"C:\\pp3", "C:\\pp3"},
    };
    /* The last: ParentImage's literal occurs first in Image, then in its own field; only
     * every occurrence being reported (no single-match) finds the second. */
    static const int want[] = {0, 0, 0, 1, 1, 2, 0, 1, 1};
    static const char det[] = "    a:\n        Image|contains: [qq1, qq2, qq3, qq4, qq5, zz-yy]\n"
                              "    b:\n        ParentImage|contains: [pp1, pp2, pp3, pp4, pp5]\n"
                              "    condition: a\n";
    static const char det2[] = "    b:\n        ParentImage|contains: [pp1, pp2, pp3, pp4, pp5]\n"
                               "    condition: b\n";
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    size_t i;

    (void)state;
    write_rule(dir, "a.yml", "44444444-4444-4444-4444-444444444444", WIN_PROC, det);
    write_rule(dir, "b.yml", "55555555-5555-5555-5555-555555555555", WIN_PROC, det2);
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 2);
    assert_non_null(rs->cat[VIGIL__OS__OS_WINDOWS][VG_CAT_PROCESS_CREATION].comb.db);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct vg_evview v = wproc();
        int n;
        set(&v, VG_F_IMAGE, p[i][0]);
        set(&v, VG_F_PARENT_IMAGE, p[i][1]);
        n = cor_rules_eval(rs, s, &v, NULL, NULL);
        if (n != want[i])
            fail_msg("event %zu (%s | %s): %d matches, want %d", i, p[i][0], p[i][1], n, want[i]);
    }
    drop(s, rs, dir);
}

/* The memo of recent values (sigma_int.h) replays what the scans of a value reported:
 * a stream whose values repeat, in changing company, must match exactly as with every
 * value scanned, whether the value was kept, evicted, too long, or had too many reports. */
static void test_memo_replay(void **state)
{
    static const char *const rules[] = {
        "    a:\n        Image|contains: [qq1, qq2, qq3, qq4, qq5, qq6, qq7, qq8, qq9, zz-yy]\n"
        "    condition: a\n",
        "    b:\n        ParentImage|contains: [pp1, pp2, pp3, pp4, pp5]\n    condition: b\n",
        "    c:\n        CommandLine|contains: [alpha, beta, gamma, delta, epsilon, zeta]\n"
        "    r:\n        CommandLine|re: 'k[0-9]+x'\n    condition: c or r\n",
        "    a:\n        Image|contains: pp1\n    c:\n        CommandLine|contains: alpha\n"
        "    condition: a and c\n",
        "    c:\n        CommandLine|contains|all: [alpha, beta]\n    condition: c\n",
        "    a:\n        Image|contains: 'qq1'\n    b:\n        ParentImage|contains: 'qq1'\n"
        "    condition: a and not b\n",
    };
    static const char *const img[] = {
        "C:\\qq1",        "C:\\zz-yy", "C:\\pp1\\qq2", "C:\\x", "qq1qq2qq3qq4qq5qq6qq7qq8qq9",
        "C:\\QQ3\\a.exe", ""};
    static const char *const par[] = {"C:\\pp1", "D:\\pp2", "C:\\y", "C:\\qq1", "yy\\x"};
    static const char *const cmd[] = {"alpha", "alpha beta", "k12x gamma", "nothing", "zeta k1x"};
    char name[32], *dir = vgt_tmpdir("sigma"), longv[300], uniq[64];
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *on, *off;
    size_t i, k;
    int total = 0;

    (void)state;
    for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        char id[40];
        snprintf(id, sizeof(id), "99999999-9999-9999-9999-%012zu", i);
        snprintf(name, sizeof(name), "r%zu.yml", i);
        write_rule(dir, name, id, WIN_PROC, rules[i]);
    }
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 6);
    on = cor_scratch_new(rs);
    off = cor_scratch_new(rs);
    assert_non_null(on);
    assert_non_null(off);
    off->memo_off = true;
    for (k = 0; k < sizeof(longv) - 1; k++) /* longer than SIG_MEMO_MAXLEN, with a qq5 */
        longv[k] = k == 250 ? 'q' : k == 251 ? 'q' : k == 252 ? '5' : 'x';
    longv[sizeof(longv) - 1] = 0;
    for (i = 0; i < 3000; i++) {
        struct vg_evview v = wproc();
        struct vgt_matches a = {0, 0}, b = {0, 0};
        const char *im;
        if (i % 10 == 9) { /* a new value each time: evicts what was kept */
            snprintf(uniq, sizeof(uniq), "C:\\u%05zu\\qq%zu", i, i % 9 + 1);
            im = uniq;
        } else if (i % 13 == 12) {
            im = longv;
        } else {
            im = img[(i * 5 + i / 7) % 7];
        }
        set(&v, VG_F_IMAGE, im);
        set(&v, VG_F_PARENT_IMAGE, i % 11 == 10 ? NULL : par[(i * 3 + i / 5) % 5]);
        set(&v, VG_F_COMMAND_LINE, cmd[(i + i / 3) % 5]);
        int na = cor_rules_eval(rs, on, &v, vgt_on_match, &a);
        int nb = cor_rules_eval(rs, off, &v, vgt_on_match, &b);
        if (na != nb || a.h != b.h || a.n != b.n)
            fail_msg("event %zu (%s | %s | %s): %d matches with the memo, %d without", i, im,
                     v.f[VG_F_PARENT_IMAGE].p ? v.f[VG_F_PARENT_IMAGE].p : "-",
                     v.f[VG_F_COMMAND_LINE].p, na, nb);
        total += na;
    }
    assert_true(total > 1000);         /* the stream matches */
    assert_true(on->memo_hits > 3000); /* and the memo answered most values */
    assert_int_equal(off->memo_hits, 0);
    cor_scratch_destroy(on);
    drop(off, rs, dir);
}

/* Counts matches per rule (index below 8). */
static void count_per_rule(void *ctx, const struct cor_rule_info *ri)
{
    int *n = ctx;

    if (ri->index < 8)
        n[ri->index]++;
}

/* The memo keeps what a field's lookups reported too (exact, tail and anchored sets), with
 * the literal, regex and combined scans: a stream of repeating values must match as with
 * every value looked up, rule by rule, for rules that need hits of several fields at once
 * (each clause of a rule marked by a replay or a scan, in either order) and a negated one. */
static void test_memo_replays_lookups(void **state)
{
    static const char h32[] = "0123456789abcdef0123456789abcdef";
    static const char *const img[] = {"C:\\x\\tool-03.exe", "C:\\y\\TOOL-11.EXE", "C:\\z\\a.exe",
                                      "/usr/bin/tool-sh", "C:\\q\\tool-03.exe.bak"};
    static const char *const cmd[] = {"Run-04", "run-17", "tool-03 k12x", "Run-04 ", "k9x"};
    static const char *const par[] = {"C:\\pp\\x.exe", "C:\\y\\z.exe", "D:\\PP"};
    static const char *const small[] = {
        "    img:\n        Image|endswith: '\\tool-03.exe'\n"
        "    cmd:\n        CommandLine: 'Run-04'\n    condition: img and not cmd\n",
        "    re:\n        CommandLine|re: 'k[0-9]+x'\n"
        "    img:\n        Image|endswith: '\\tool-11.exe'\n    condition: re or img\n",
        "    cmd:\n        CommandLine|contains: 'tool-0'\n"
        "    img:\n        Image|endswith: '.exe'\n    condition: cmd and img\n",
        "    re:\n        Image|re: 'tool-[0-9]+\\.exe$'\n"
        "    lit:\n        Image|contains: ['y\\tool', aa1, aa2, aa3, aa4]\n"
        "    par:\n        ParentImage|contains: ['\\pp', bb1, bb2, bb3, bb4]\n"
        "    condition: re or lit or par\n",
    };
    int per_on[8] = {0}, per_off[8] = {0};
    char det[8192], *at, *dir = vgt_tmpdir("sigma");
    char hashes[4][160];
    struct cor_load_summary sum;
    const struct sig_bucket *b;
    cor_ruleset *rs;
    cor_scratch *on, *off;
    size_t i, g, nexact = 0, ntail = 0, neq = 0, nre = 0, ncomb = 0;
    int k, total = 0;

    (void)state;
    /* r0: a tail set and an exact set, both needed; r1: an anchored set; r2: a tail hit
     * without an exact one; r3: a regex or a tail hit; r4: a literal and an extension;
     * r5: a regex of Image (a database of its own) or literals of Image or ParentImage
     * (the combined scan). */
    at = det + sprintf(det, "    img:\n        Image|endswith:\n");
    for (k = 0; k < 20; k++)
        at += sprintf(at, "            - '\\tool-%02d.exe'\n", k);
    at += sprintf(at, "            - '/tool-sh'\n    cmd:\n        CommandLine:\n");
    for (k = 0; k < 20; k++)
        at += sprintf(at, "            - 'Run-%02d'\n", k);
    sprintf(at, "    condition: img and cmd\n");
    write_rule(dir, "r0.yml", "77777777-7777-7777-7777-000000000000", WIN_PROC, det);
    at = det + sprintf(det, "    sel:\n        Hashes|contains:\n");
    for (k = 0; k < 20; k++) {
        size_t n;
        at += sprintf(at, "            - 'MD5=");
        for (n = 0; n + 2 < 32; n++)
            *at++ = h32[(n + (size_t)k) % 32];
        at += sprintf(at, "%02d'\n", k);
    }
    sprintf(at, "    condition: sel\n");
    write_rule(dir, "r1.yml", "77777777-7777-7777-7777-000000000001", WIN_PROC, det);
    for (k = 2; k < 6; k++) {
        char id[40], name[16];
        snprintf(id, sizeof(id), "77777777-7777-7777-7777-%012d", k);
        snprintf(name, sizeof(name), "r%d.yml", k);
        write_rule(dir, name, id, WIN_PROC, small[k - 2]);
    }
    for (k = 0; k < 4; k++) { /* MD5 of literal 5, 7, none, 19; then more hashes */
        size_t n;
        char *p = hashes[k] + sprintf(hashes[k], "SHA1=ffff,MD5=");
        int lit = k == 0 ? 5 : k == 1 ? 7 : k == 2 ? 40 : 19;
        for (n = 0; n + 2 < 32; n++)
            *p++ = h32[(n + (size_t)lit) % 32];
        sprintf(p, "%02d,IMPHASH=00", lit);
    }
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 6);
    b = &rs->cat[VIGIL__OS__OS_WINDOWS][VG_CAT_PROCESS_CREATION];
    for (g = 0; g < b->ngroups; g++) { /* the sets were built, every field is kept */
        nexact += b->groups[g].exact.npat;
        ntail += b->groups[g].tail.npat;
        neq += b->groups[g].eq.npat;
        nre += b->groups[g].re.db != NULL;
        ncomb += b->in_comb && b->in_comb[g];
        assert_true(b->groups[g].memo);
    }
    assert_true(nexact >= 20 && ntail >= 21 && neq >= 20);
    assert_int_equal(nre, 1);   /* Image's regex */
    assert_int_equal(ncomb, 2); /* Image and ParentImage */
    on = cor_scratch_new(rs);
    off = cor_scratch_new(rs);
    assert_non_null(on);
    assert_non_null(off);
    off->memo_off = true;
    for (i = 0; i < 2000; i++) {
        struct vg_evview v = wproc();
        struct vgt_matches x = {0, 0}, y = {0, 0};
        set(&v, VG_F_IMAGE, img[(i + i / 7) % 5]);
        set(&v, VG_F_COMMAND_LINE, cmd[(i * 3 + i / 5) % 5]);
        set(&v, VG_F_HASHES, i % 17 == 16 ? NULL : hashes[(i + i / 3) % 4]);
        set(&v, VG_F_PARENT_IMAGE, par[(i * 7 + i / 11) % 3]);
        int na = cor_rules_eval(rs, on, &v, vgt_on_match, &x);
        int nb = cor_rules_eval(rs, off, &v, vgt_on_match, &y);
        if (na != nb || x.h != y.h || x.n != y.n)
            fail_msg("event %zu (%s | %s): %d matches with the memo, %d without", i,
                     v.f[VG_F_IMAGE].p, v.f[VG_F_COMMAND_LINE].p, na, nb);
        (void)cor_rules_eval(rs, on, &v, count_per_rule, per_on);
        (void)cor_rules_eval(rs, off, &v, count_per_rule, per_off);
        total += na;
    }
    for (k = 0; k < 6; k++) { /* every rule matched, as often with the memo as without */
        if (per_on[k] == 0 || per_on[k] != per_off[k])
            fail_msg("rule r%d: %d matches with the memo, %d without", k, per_on[k], per_off[k]);
    }
    assert_true(total > 1000);
    assert_true(on->memo_hits > 8000); /* the four fields of most events replayed */
    assert_int_equal(off->memo_hits, 0);
    cor_scratch_destroy(on);
    drop(off, rs, dir);
}

/* A value that recurs stays in the memo however many values seen once pass between its
 * events: those replace the other way of its set (sig_memo_find). Direct-mapped, 10,000
 * values seen once evicted it about ten times (each lands in its slot with odds 1/1,024). */
static void test_memo_keeps_recurring(void **state)
{
    char *dir = vgt_tmpdir("sigma"), uniq[64];
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    size_t i, n = 10000;
    int matches = 0;

    (void)state;
    write_rule(dir, "r.yml", "66666666-6666-6666-6666-666666666666", WIN_PROC,
               "    sel:\n        Image|endswith: ['\\keep.exe', '\\other.exe']\n"
               "    condition: sel\n");
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < 2 * n; i++) {
        struct vg_evview v = wproc();
        snprintf(uniq, sizeof(uniq), "C:\\u\\%06zu.exe", i);
        set(&v, VG_F_IMAGE, i % 2 ? uniq : "C:\\x\\keep.exe");
        matches += cor_rules_eval(rs, s, &v, NULL, NULL);
    }
    assert_int_equal(matches, (int)n); /* the recurring value matches every time */
    /* It was scanned once and replayed n - 1 times; only a value seen once landing in its
     * set before its first replay could evict it (odds 1/512 each time). */
    assert_true(s->memo_hits >= n - 3);
    assert_true(s->memo_hits <= n - 1);
    drop(s, rs, dir);
}

/* The scratch's generation counter wraps after 2^32 events: stamps, lazy checks and clause
 * words left from generation 1 must not count for the event that wraps to it. */
static void test_generation_wrap(void **state)
{
    static const char *const ev[][2] = {
        {"C:\\x\\tool-a.exe", "run zz-marker"},       /* generation 1: both clauses hit */
        {"C:\\x\\other.exe", "nothing"},              /* the last before the wrap */
        {"C:\\x\\tool-a.exe", "nothing of the kind"}, /* wraps to 1: the second misses */
        {"C:\\y\\tool-a.exe", "a zz-marker"},
    };
    static const int want[] = {1, 0, 0, 1};
    char *dir = vgt_tmpdir("sigma");
    struct cor_load_summary sum;
    cor_ruleset *rs;
    cor_scratch *s;
    size_t i;

    (void)state;
    write_rule(dir, "r.yml", "55555555-5555-5555-5555-555555555555", WIN_PROC,
               "    a:\n        Image|endswith: '\\tool-a.exe'\n"
               "    b:\n        CommandLine|contains: 'zz-marker'\n    condition: a and b\n");
    rs = load_dir(dir, &sum);
    assert_int_equal(sum.loaded, 1);
    s = cor_scratch_new(rs);
    assert_non_null(s);
    for (i = 0; i < VG_ARRAY_SIZE(ev); i++) {
        struct vg_evview v = wproc();
        int n;
        if (i == 1)
            s->gen = UINT32_MAX - 1; /* as after 2^32 - 2 events */
        set(&v, VG_F_IMAGE, ev[i][0]);
        set(&v, VG_F_COMMAND_LINE, ev[i][1]);
        n = cor_rules_eval(rs, s, &v, NULL, NULL);
        if (n != want[i])
            fail_msg("event %zu (%s | %s, generation %u): %d matches, want %d", i, ev[i][0],
                     ev[i][1], s->gen, n, want[i]);
    }
    assert_int_equal(s->gen, 2); /* wrapped */
    drop(s, rs, dir);
}

struct hits {
    const char *ids[8];
    int n;
};

static void on_match(void *ctx, const struct cor_rule_info *ri)
{
    struct hits *h = ctx;
    if (h->n < 8)
        h->ids[h->n++] = ri->id;
}

static void test_builtin_rules(void **state)
{
    struct cor_load_summary sum;
    cor_ruleset *rs = load_dir(VG_SOURCE_DIR "/rules", &sum);
    cor_scratch *s = cor_scratch_new(rs);
    struct vg_evview v = wproc();
    struct hits h = {{0}, 0};
    const struct cor_rule_info *ri;

    assert_int_equal(sum.skipped, 0);
    assert_true(sum.loaded >= 2);
    set(&v, VG_F_IMAGE, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe");
    set(&v, VG_F_PARENT_IMAGE, "C:\\Windows\\System32\\cmd.exe");
    set(&v, VG_F_COMMAND_LINE,
        "powershell.exe -NoExit -ExecutionPolicy Bypass -WindowStyle Hidden (New-Object "
        "System.Net.WebClient).DownloadFile('http://127.0.0.1/1.exe', "
        "'C:\\\\test-MDATP-test\\\\invoice.exe'); Start-Process "
        "'C:\\\\test-MDATP-test\\\\invoice.exe'");
    assert_int_equal(cor_rules_eval(rs, s, &v, on_match, &h), 1);
    assert_string_equal(h.ids[0], "5b0c8e1a-7d3f-4c2e-9a61-3f2d8b7e4c10");
    set(&v, VG_F_PARENT_IMAGE, "C:\\Windows\\explorer.exe");
    assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 0);

    v = ev(VG_CAT_PROCESS_CREATION, VIGIL__OS__OS_LINUX);
    set(&v, VG_F_IMAGE, "/usr/bin/find");
    set(&v, VG_F_COMMAND_LINE, "find / -name id_rsa");
    h.n = 0;
    assert_int_equal(cor_rules_eval(rs, s, &v, on_match, &h), 1);
    ri = NULL;
    for (uint32_t i = 0; i < cor_ruleset_count(rs); i++)
        if (strcmp(cor_ruleset_rule(rs, i)->id, h.ids[0]) == 0)
            ri = cor_ruleset_rule(rs, i);
    assert_non_null(ri);
    /* The Linux test alert is a correlation over this single-event base rule (rules/
     * vigil_linux_sensitive_enum_corr.yml); the alert's own title, group and severity belong
     * to the correlation engine. */
    assert_string_equal(ri->title, "Sensitive file search command (Linux)");
    assert_int_equal(ri->severity, VIGIL__SEVERITY__SEVERITY_INFORMATIONAL);
    set(&v, VG_F_COMMAND_LINE, "find / -name '*.txt'");
    assert_int_equal(cor_rules_eval(rs, s, &v, NULL, NULL), 0);
    cor_scratch_destroy(s);
    cor_ruleset_unref(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endswith_case_insensitive),
        cmocka_unit_test(test_contains_startswith_exact),
        cmocka_unit_test(test_wildcards_and_escaping),
        cmocka_unit_test(test_all_and_lists),
        cmocka_unit_test(test_map_is_and),
        cmocka_unit_test(test_list_of_maps_is_or),
        cmocka_unit_test(test_cased),
        cmocka_unit_test(test_exact_values),
        cmocka_unit_test(test_tail_values),
        cmocka_unit_test(test_cmdline_literals_and_regexes),
        cmocka_unit_test(test_anchored_values),
        cmocka_unit_test(test_memo_replay),
        cmocka_unit_test(test_memo_replays_lookups),
        cmocka_unit_test(test_memo_keeps_recurring),
        cmocka_unit_test(test_generation_wrap),
        cmocka_unit_test(test_combined_fields),
        cmocka_unit_test(test_re_and_flags),
        cmocka_unit_test(test_base64_and_base64offset),
        cmocka_unit_test(test_utf16_wide),
        cmocka_unit_test(test_windash),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_cidr_reparsed_per_event),
        cmocka_unit_test(test_boolean_not_trigger),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_numeric_compare),
        cmocka_unit_test(test_fieldref),
        cmocka_unit_test(test_null_and_numbers),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_extra_fields),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_logsource_routing),
        cmocka_unit_test(test_service_routing),
        cmocka_unit_test(test_broken_files_skipped),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_builtin_rules),
        cmocka_unit_test(test_required_hits),
        cmocka_unit_test(test_lazy_filters),
    };

    vg_log_set_level(VG_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
