/*
 * fuzz_sigma.c - libFuzzer harness for the Sigma rule loaders: the input is one rule file
 * (any number of YAML documents), loaded both by cor_ruleset_load (detection rules) and
 * cor_corrset_load (correlations) from an in-memory file. Whatever loaded then runs, as a
 * deployment would run it, over two fixed batches (a Windows and a Linux machine with
 * process creations, file, network, DNS, registry, logon and image-load events) through a
 * fresh in-process shard; alerts must carry their batch's tenant and render as JSON.
 *
 * The loaders have no from-memory entry point; they take a path and stat() it, so the
 * bytes go to a memfd and the path is /proc/self/fd/N (fuzz.h).
 *
 * THREAD MODEL: libFuzzer's one thread.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "correlate.h"
#include "corr.h"
#include "fuzz.h"
#include "ingest.h"
#include "rules.h"

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_sigma: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define T0  (FUZZ_NOW_US - 3600 * VG_US_PER_SEC)
#define NEV 8

/* ---- the fixed batches -------------------------------------------------------------- */

struct fev {
    Vigil__Event ev;
    Vigil__ProcessRef actor, child;
    Vigil__ProcessCreated pc;
    Vigil__FileEvent file;
    Vigil__NetworkConnection net;
    Vigil__DnsQuery dns;
    Vigil__RegistryEvent reg;
    Vigil__LogonEvent logon;
    Vigil__ImageLoad img;
};

struct fbatch {
    Vigil__TelemetryBatch b;
    struct fev ev[NEV];
    Vigil__Event *evp[NEV];
    uint8_t *packed;
    size_t len;
};

static struct fbatch g_win, g_lnx;

static void fev_init(struct fev *f, struct fbatch *fb, size_t i, const char *img, const char *cmd)
{
    vigil__event__init(&f->ev);
    vigil__process_ref__init(&f->actor);
    f->ev.seq = i + 1;
    f->ev.ts_us = T0 + (int64_t)i * VG_US_PER_SEC;
    f->actor.pid = 100 + (uint32_t)i;
    f->actor.creation_time_us = T0 - VG_US_PER_SEC;
    f->actor.image = (char *)img;
    f->actor.command_line = (char *)cmd;
    f->actor.account = "alice";
    f->actor.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    f->ev.actor = &f->actor;
    fb->evp[i] = &f->ev;
}

static void fev_child(struct fev *f, uint32_t pid, const char *img, const char *cmd)
{
    vigil__process_ref__init(&f->child);
    vigil__process_created__init(&f->pc);
    f->child.pid = pid;
    f->child.creation_time_us = f->ev.ts_us;
    f->child.image = (char *)img;
    f->child.command_line = (char *)cmd;
    f->child.account = "alice";
    f->child.integrity_level = "High";
    f->child.current_directory = "C:\\Users\\alice\\";
    f->child.original_file_name = "PowerShell.EXE";
    f->child.sha1 = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
    f->child.md5 = "098f6bcd4621d373cade4e832627b4f6";
    f->pc.process = &f->child;
    f->ev.kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    f->ev.process_created = &f->pc;
}

static void fev_others(struct fev *f, size_t kind, bool windows)
{
    switch (kind) {
    case 0:
        vigil__file_event__init(&f->file);
        f->file.op = VIGIL__FILE_OP__FILE_CREATED;
        f->file.path = windows ? "C:\\test-MDATP-test\\invoice.exe" : "/tmp/.x/id_rsa";
        f->file.sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        f->ev.kind_case = VIGIL__EVENT__KIND_FILE;
        f->ev.file = &f->file;
        break;
    case 1:
        vigil__network_connection__init(&f->net);
        f->net.protocol = VIGIL__PROTOCOL__PROTOCOL_TCP;
        f->net.local_ip = "10.0.0.5";
        f->net.local_port = 49152;
        f->net.remote_ip = "203.0.113.7";
        f->net.remote_port = 443;
        f->net.remote_hostname = "evil.example.com";
        f->ev.kind_case = VIGIL__EVENT__KIND_NETWORK;
        f->ev.network = &f->net;
        break;
    case 2:
        vigil__dns_query__init(&f->dns);
        f->dns.query_name = "evil.example.com";
        f->dns.query_type = 1;
        f->dns.results = "203.0.113.7";
        f->ev.kind_case = VIGIL__EVENT__KIND_DNS;
        f->ev.dns = &f->dns;
        break;
    case 3:
        vigil__registry_event__init(&f->reg);
        f->reg.op = VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET;
        f->reg.key = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run";
        f->reg.value_name = "updater";
        f->reg.value_data = "C:\\Users\\Public\\u.exe";
        f->reg.value_type = "REG_SZ";
        f->ev.kind_case = VIGIL__EVENT__KIND_REGISTRY;
        f->ev.registry = &f->reg;
        break;
    case 4:
        vigil__logon_event__init(&f->logon);
        f->logon.success = true;
        f->logon.logon_type = 3;
        f->logon.account = "administrator";
        f->logon.account_domain = "CORP";
        f->logon.source_ip = "10.0.0.9";
        f->logon.auth_package = "NTLM";
        f->ev.kind_case = VIGIL__EVENT__KIND_LOGON;
        f->ev.logon = &f->logon;
        break;
    default:
        vigil__image_load__init(&f->img);
        f->img.path = windows ? "C:\\Windows\\System32\\dbghelp.dll" : "/lib/libpam.so";
        f->img.signed_ = false;
        f->ev.kind_case = VIGIL__EVENT__KIND_IMAGE_LOAD;
        f->ev.image_load = &f->img;
        break;
    }
}

static void fbatch_pack(struct fbatch *fb)
{
    fb->b.n_events = NEV;
    fb->b.events = fb->evp;
    fb->b.first_seq = 1;
    fb->len = vigil__telemetry_batch__get_packed_size(&fb->b);
    fb->packed = malloc(fb->len);
    FUZZ_CHECK(fb->packed != NULL);
    vigil__telemetry_batch__pack(&fb->b, fb->packed);
}

static void fuzz_build_batches(void)
{
    static const char *const lnx_cmds[] = {"find / -name id_rsa", "cat /etc/shadow",
                                           "grep -r PRIVATE KEY /home", "ls -la ~/.aws"};
    static const char *const lnx_imgs[] = {"/usr/bin/find", "/usr/bin/cat", "/usr/bin/grep",
                                           "/usr/bin/ls"};

    vigil__telemetry_batch__init(&g_win.b);
    g_win.b.tenant_id = "tenant-a";
    g_win.b.machine_id = "WIN-FUZZ-1";
    g_win.b.machine_name = "win-fuzz-1";
    g_win.b.os = VIGIL__OS__OS_WINDOWS;
    for (size_t i = 0; i < NEV; i++) {
        struct fev *f = &g_win.ev[i];

        if (i == 0) {
            fev_init(f, &g_win, i, "C:\\Windows\\explorer.exe", "explorer.exe");
            fev_child(f, 200, "C:\\Windows\\System32\\cmd.exe", "cmd.exe");
        } else if (i == 1) {
            fev_init(f, &g_win, i, "C:\\Windows\\System32\\cmd.exe", "cmd.exe");
            f->actor.pid = 200;
            f->actor.creation_time_us = T0;
            fev_child(f, 300, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                      "powershell.exe -NoExit -ExecutionPolicy Bypass -WindowStyle Hidden "
                      "(New-Object System.Net.WebClient).DownloadFile('http://127.0.0.1/1.exe', "
                      "'C:\\\\test-MDATP-test\\\\invoice.exe')");
        } else {
            fev_init(f, &g_win, i, "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                     "powershell.exe -enc SQBFAFgA");
            f->actor.pid = 300;
            f->actor.creation_time_us = T0 + VG_US_PER_SEC;
            fev_others(f, i - 2, true);
        }
    }
    fbatch_pack(&g_win);

    vigil__telemetry_batch__init(&g_lnx.b);
    g_lnx.b.tenant_id = "tenant-b";
    g_lnx.b.machine_id = "lnx-fuzz-1";
    g_lnx.b.machine_name = "lnx-fuzz-1";
    g_lnx.b.os = VIGIL__OS__OS_LINUX;
    for (size_t i = 0; i < NEV; i++) {
        struct fev *f = &g_lnx.ev[i];

        fev_init(f, &g_lnx, i, "/usr/bin/bash", "bash /tmp/mde_linux_edr_diy.sh");
        f->actor.pid = 4000;
        if (i < 4)
            fev_child(f, 5000 + (uint32_t)i, lnx_imgs[i], lnx_cmds[i]);
        else
            fev_others(f, i - 4, false);
    }
    fbatch_pack(&g_lnx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    fuzz_build_batches();
    return 0;
}

/* ---- running what loaded ------------------------------------------------------------ */

static void fuzz_release(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in;
}

static void fuzz_reject(void *ctx, struct cor_in *in, const char *reason)
{
    (void)ctx;
    (void)in;
    (void)reason;
    FUZZ_CHECK(!"a valid fixed batch was rejected");
}

static void fuzz_feed(cor_shard *s, const struct fbatch *fb, vg_arena *a)
{
    struct ing_limits l;
    struct ing_batch ib;
    struct cor_in in = {.partition = -1};
    char reason[256];

    ing_limits_default(&l);
    FUZZ_CHECK(ing_decode(fb->packed, fb->len, &l, FUZZ_NOW_US, a, &ib, reason, sizeof(reason)) ==
               0);
    in.batch = ib.batch;
    in.raw = ib.raw;
    in.raw_len = ib.raw_len;
    in.mkey = vg_machine_key(ib.batch->tenant_id, ib.batch->machine_id);
    cor_shard_process(s, &in);
}

static void fuzz_check_alert(const Vigil__Alert *a, const cor_ruleset *rs, const cor_corrset *cs)
{
    char *js = cor_alert_to_json(a);

    FUZZ_CHECK(js != NULL);
    free(js);
    if (strcmp(a->machine_id, g_win.b.machine_id) == 0)
        FUZZ_CHECK(strcmp(a->tenant_id, g_win.b.tenant_id) == 0);
    else
        FUZZ_CHECK(strcmp(a->machine_id, g_lnx.b.machine_id) == 0 &&
                   strcmp(a->tenant_id, g_lnx.b.tenant_id) == 0);
    FUZZ_CHECK(a->rule_id != NULL);
    (void)rs;
    (void)cs;
}

static void fuzz_run(cor_ruleset *rs, cor_corrset *cs)
{
    struct cor_shard_cfg cfg = {
        .nshards = 1,
        .rules = rs,
        .corr = cs,
        .release = fuzz_release,
        .reject = fuzz_reject,
    };
    struct cor_in bar = {.is_barrier = true};
    struct cor_unit *u;
    cor_shard *s = NULL;
    vg_arena *a = vg_arena_new(1 << 14);

    FUZZ_CHECK(a != NULL);
    FUZZ_CHECK(cor_shard_new(&cfg, &s) == 0);
    fuzz_feed(s, &g_win, a);
    fuzz_feed(s, &g_lnx, a);
    bar.barrier = cor_barrier_new(1, true, NULL, 0, 1);
    FUZZ_CHECK(bar.barrier != NULL);
    cor_shard_process(s, &bar);
    while ((u = cor_shard_pop_unit(s)) != NULL) {
        for (size_t i = 0; i < u->nalerts; i++) {
            fuzz_check_alert(u->alerts[i].alert, rs, cs);
            if (getenv("VG_FUZZ_LOG") != NULL)
                fprintf(stderr, "fuzz_sigma: alert %s on %s\n", u->alerts[i].alert->title,
                        u->alerts[i].alert->machine_id);
        }
        cor_unit_free(u);
    }
    cor_shard_destroy(s);
    vg_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cor_load_summary sum;
    struct cor_corr_load_summary csum;
    cor_ruleset *rs = NULL;
    cor_corrset *cs = NULL;
    char path[64], err[256];
    const char *p = path;

    if (g_win.packed == NULL)
        LLVMFuzzerInitialize(NULL, NULL);
    FUZZ_CHECK(fuzz_memfile(data, size, path, sizeof(path)) == 0);
    if (cor_ruleset_load(&p, 1, &rs, &sum, err, sizeof(err)) == 0) {
        FUZZ_CHECK(cor_ruleset_count(rs) == sum.loaded);
        for (uint32_t i = 0; i < cor_ruleset_count(rs); i++)
            FUZZ_CHECK(cor_ruleset_rule(rs, i) != NULL && cor_ruleset_rule(rs, i)->index == i);
    } else {
        FUZZ_CHECK(rs == NULL);
    }
    if (cor_corrset_load(&p, 1, &cs, &csum, err, sizeof(err)) == 0) {
        FUZZ_CHECK(cor_corrset_count(cs) == csum.loaded);
    } else {
        FUZZ_CHECK(cs == NULL);
    }
    if (rs != NULL)
        fuzz_run(rs, cs);
    cor_corrset_unref(cs);
    cor_ruleset_unref(rs);
    return 0;
}
