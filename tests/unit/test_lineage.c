/*
 * test_lineage.c - rules over a process's ancestors (AncestorImage, AncestorCommandLine):
 * the shard fills them from its process table, a value matches when it matches one
 * ancestor (exact, startswith, endswith, contains, wildcards inside one ancestor), a
 * process whose ancestry lacks the value does not match, other categories see the actor's
 * ancestors, keywords do not search ancestors, an event cannot supply its own lineage nor
 * forge a boundary with the separator byte, and a rule set without lineage rules does not
 * ask for the walk (per category).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgtest.h"

#include "correlate.h"
#include "rules.h"

#define T0 (INT64_C(1789999980) * VG_US_PER_SEC)

#define R_OFFICE "22222222-0000-4000-8000-000000000001"
#define R_EXACT  "22222222-0000-4000-8000-000000000002"
#define R_START  "22222222-0000-4000-8000-000000000003"
#define R_WILD   "22222222-0000-4000-8000-000000000004"
#define R_CMD    "22222222-0000-4000-8000-000000000005"
#define R_START2 "22222222-0000-4000-8000-000000000006"
#define R_KEYW   "22222222-0000-4000-8000-000000000007"
#define R_NET    "22222222-0000-4000-8000-000000000008"

static const char *const rules_yaml[] = {
    /* PowerShell anywhere below Word. */
    "title: Office ancestry\nid: " R_OFFICE "\nlevel: high\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    Image|endswith: '\\powershell.exe'\n"
    "    AncestorImage|endswith: '\\WINWORD.EXE'\n  condition: sel\n",
    /* An exact ancestor. */
    "title: Exact ancestor\nid: " R_EXACT "\nlevel: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    AncestorImage: 'C:\\Windows\\explorer.exe'\n"
    "    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
    /* startswith one ancestor, never a later part of the list. */
    "title: Starts\nid: " R_START "\nlevel: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    AncestorImage|startswith: 'WINWORD'\n  condition: sel\n",
    /* A wildcard does not reach from one ancestor into the next. */
    "title: Wild\nid: " R_WILD "\nlevel: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    AncestorImage: '*cmd.exe*WINWORD.EXE'\n  condition: sel\n",
    /* startswith a later ancestor than the parent. */
    "title: Starts later\nid: " R_START2 "\nlevel: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    AncestorImage|startswith: 'C:\\Program Files\\Microsoft Office'\n"
    "    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
    /* Keywords search the event's own values, not its ancestors'. */
    "title: Keyword\nid: " R_KEYW "\nlevel: low\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  kw:\n    - 'Invoice_'\n  condition: kw\n",
    /* Another category: the acting process's ancestors. */
    "title: Net below Word\nid: " R_NET "\nlevel: medium\n"
    "logsource: {product: windows, category: network_connection}\n"
    "detection:\n  sel:\n    AncestorImage|endswith: '\\WINWORD.EXE'\n  condition: sel\n",
    /* A command line of an ancestor. */
    "title: Ancestor command line\nid: " R_CMD "\nlevel: medium\n"
    "logsource: {product: windows, category: process_creation}\n"
    "detection:\n  sel:\n    AncestorCommandLine|contains: 'Invoice_'\n"
    "    Image|endswith: '\\whoami.exe'\n  condition: sel\n",
};

static int setup(void **state)
{
    struct vgt_rules_shard *f =
        vgt_rules_shard_new("lineage", rules_yaml, VG_ARRAY_SIZE(rules_yaml));

    assert_true(cor_ruleset_uses_lineage(f->rs, -1));
    assert_true(cor_ruleset_uses_lineage(f->rs, VG_CAT_PROCESS_CREATION));
    assert_true(cor_ruleset_uses_lineage(f->rs, VG_CAT_NETWORK_CONNECTION));
    assert_false(cor_ruleset_uses_lineage(f->rs, VG_CAT_FILE_EVENT));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    vgt_rules_shard_free(*state);
    return 0;
}

static void feed_event(struct vgt_rules_shard *f, Vigil__Event *ev)
{
    ev->seq = ++f->seq;
    vgt_shard_process_event(f->s, ev);
}

/* parent (ppid, pimage) starts (pid, image, cmd) at T0 + pid ms; the event carries one
 * extra entry when xkey is given. */
static void spawn_x(struct vgt_rules_shard *f, uint32_t ppid, const char *pimage, const char *pcmd,
                    uint32_t pid, const char *image, const char *cmd, const char *xkey,
                    const char *xval)
{
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef parent = VIGIL__PROCESS_REF__INIT, child = VIGIL__PROCESS_REF__INIT;
    Vigil__ProcessCreated pc = VIGIL__PROCESS_CREATED__INIT;
    Vigil__KeyValue kv = VIGIL__KEY_VALUE__INIT, *kvs[1] = {&kv};

    parent.pid = ppid;
    parent.creation_time_us = T0 + ppid * 1000;
    parent.image = (char *)pimage;
    parent.command_line = (char *)pcmd;
    child.pid = pid;
    child.creation_time_us = T0 + pid * 1000;
    child.image = (char *)image;
    child.command_line = (char *)cmd;
    pc.process = &child;
    ev.ts_us = child.creation_time_us;
    ev.actor = &parent;
    ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    ev.process_created = &pc;
    if (xkey != NULL) {
        kv.key = (char *)xkey;
        kv.value = (char *)xval;
        ev.n_extra = 1;
        ev.extra = kvs;
    }
    feed_event(f, &ev);
}

/* A connection by process (pid, image) at T0 + 1000 s. */
static void connect_by(struct vgt_rules_shard *f, uint32_t pid, const char *image)
{
    Vigil__Event ev = VIGIL__EVENT__INIT;
    Vigil__ProcessRef actor = VIGIL__PROCESS_REF__INIT;
    Vigil__NetworkConnection net = VIGIL__NETWORK_CONNECTION__INIT;

    actor.pid = pid;
    actor.creation_time_us = T0 + pid * 1000;
    actor.image = (char *)image;
    net.remote_ip = "203.0.113.9";
    net.remote_port = 443;
    ev.ts_us = T0 + 1000 * VG_US_PER_SEC;
    ev.actor = &actor;
    ev.kind_case = VIGIL__EVENT__KIND_NETWORK;
    ev.network = &net;
    feed_event(f, &ev);
}

/* parent (ppid, pimage) starts (pid, image, cmd) at T0 + pid ms. */
static void spawn(struct vgt_rules_shard *f, uint32_t ppid, const char *pimage, const char *pcmd,
                  uint32_t pid, const char *image, const char *cmd)
{
    spawn_x(f, ppid, pimage, pcmd, pid, image, cmd, NULL, NULL);
}

/* The pids (Alert trigger process) that raised the rule's alerts, in order, as "pid,pid". */
static void alerts_of(struct vgt_rules_shard *f, const char *rule_id, char *out, size_t cap)
{
    struct cor_barrier *b = cor_barrier_new(1, true, NULL, 0, 1);
    struct cor_in in = {.is_barrier = true, .barrier = b};
    struct cor_unit *u;
    size_t n = 0;

    out[0] = '\0';
    cor_shard_process(f->s, &in);
    while ((u = cor_shard_pop_unit(f->s)) != NULL) {
        for (size_t i = 0; i < u->nalerts; i++) {
            const Vigil__Alert *a = u->alerts[i].alert;

            if (strcmp(a->rule_id, rule_id) != 0 || !u->alerts[i].is_new)
                continue;
            for (size_t k = 0; k < a->n_process_tree; k++)
                if (a->process_tree[k]->trigger)
                    n += (size_t)snprintf(out + n, cap - n, "%s%u", n ? "," : "",
                                          a->process_tree[k]->pid);
        }
        cor_unit_free(u);
    }
}

/* explorer (10) > WINWORD (20) > cmd (30) > powershell (40) > whoami (50); and apart,
 * explorer (10) > cmd (60) > powershell (70), which has no Word above it. */
static void tree(struct vgt_rules_shard *f)
{
    spawn(f, 4, "C:\\Windows\\System32\\userinit.exe", "userinit.exe", 10,
          "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE");
    spawn(f, 10, "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", 20,
          "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
          "WINWORD.EXE /n C:\\Users\\a\\Downloads\\Invoice_7.docm");
    spawn(f, 20, "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
          "WINWORD.EXE /n C:\\Users\\a\\Downloads\\Invoice_7.docm", 30,
          "C:\\Windows\\System32\\cmd.exe", "cmd.exe /c powershell");
    spawn(f, 30, "C:\\Windows\\System32\\cmd.exe", "cmd.exe /c powershell", 40,
          "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell -nop");
    spawn(f, 40, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
          "powershell -nop", 50, "C:\\Windows\\System32\\whoami.exe", "whoami /all");
    spawn(f, 10, "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", 60,
          "C:\\Windows\\System32\\cmd.exe", "cmd.exe");
    spawn(f, 60, "C:\\Windows\\System32\\cmd.exe", "cmd.exe", 70,
          "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell");
}

static void test_endswith_any_ancestor(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    /* Word is the grandparent of 40; 70 has only cmd and explorer above it. */
    alerts_of(f, R_OFFICE, pids, sizeof(pids));
    assert_string_equal(pids, "40");
}

static void test_exact(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    /* explorer is four levels above whoami. */
    alerts_of(f, R_EXACT, pids, sizeof(pids));
    assert_string_equal(pids, "50");
}

static void test_command_line(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    alerts_of(f, R_CMD, pids, sizeof(pids));
    assert_string_equal(pids, "50");
}

static void test_positions_stay_in_one_ancestor(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    /* No ancestor's image starts with "WINWORD" (they are full paths). */
    alerts_of(f, R_START, pids, sizeof(pids));
    assert_string_equal(pids, "");
}

static void test_wildcards_stay_in_one_ancestor(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    /* cmd.exe and WINWORD.EXE are both ancestors of 40, but in two elements: a wildcard
     * does not join them. */
    alerts_of(f, R_WILD, pids, sizeof(pids));
    assert_string_equal(pids, "");
}

static void test_startswith_later_ancestor(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    /* Word is whoami's third ancestor. */
    alerts_of(f, R_START2, pids, sizeof(pids));
    assert_string_equal(pids, "50");
}

/* A keyword names the event's own values: Word's creation has Invoice_ in its command
 * line, cmd's in its ParentCommandLine; the deeper descendants have it only in their
 * ancestors' command lines, which keywords do not search. */
static void test_keywords_not_ancestors(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    alerts_of(f, R_KEYW, pids, sizeof(pids));
    assert_string_equal(pids, "20,30");
}

/* A network event: the acting process's ancestors. */
static void test_other_category(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    connect_by(f, 40, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe");
    connect_by(f, 70, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe");
    alerts_of(f, R_NET, pids, sizeof(pids));
    assert_string_equal(pids, "40");
}

/* An event cannot claim its own ancestry: an extra entry named AncestorImage is not the
 * lineage (PowerShell 70 has no Word above it). */
static void test_event_cannot_supply_lineage(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    tree(f);
    spawn_x(f, 70, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell",
            80, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "powershell -c 1",
            "AncestorImage", "C:\\Office\\WINWORD.EXE");
    alerts_of(f, R_OFFICE, pids, sizeof(pids));
    assert_string_equal(pids, "40");
}

/* A separator byte inside a value does not forge an element boundary: an ancestor named
 * "X<RS>C:\Windows\explorer.exe" is not explorer.exe. */
static void test_separator_in_value(void **state)
{
    struct vgt_rules_shard *f = *state;
    char pids[128];

    spawn(f, 4, "C:\\x\\init.exe", "init", 110,
          "X\x1e"
          "C:\\Windows\\explorer.exe",
          "x");
    spawn(f, 110,
          "X\x1e"
          "C:\\Windows\\explorer.exe",
          "x", 120, "C:\\Windows\\System32\\whoami.exe", "whoami");
    alerts_of(f, R_EXACT, pids, sizeof(pids));
    assert_string_equal(pids, "");
}

/* Without lineage rules the shard does not walk ancestors. */
static void test_not_used(void **state)
{
    const char *dirs[] = {VG_SOURCE_DIR "/rules"};
    struct cor_load_summary sum;
    cor_ruleset *rs = NULL;
    char err[256];

    (void)state;
    assert_int_equal(cor_ruleset_load(dirs, 1, &rs, &sum, err, sizeof(err)), 0);
    assert_false(cor_ruleset_uses_lineage(rs, -1));
    assert_false(cor_ruleset_uses_lineage(rs, VG_CAT_PROCESS_CREATION));
    cor_ruleset_unref(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_endswith_any_ancestor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_positions_stay_in_one_ancestor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcards_stay_in_one_ancestor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startswith_later_ancestor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keywords_not_ancestors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_category, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_cannot_supply_lineage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_separator_in_value, setup, teardown),
        cmocka_unit_test(test_not_used),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
