/*
 * gen_seeds.c - writes the fuzz seeds of fuzz_decode, fuzz_import, fuzz_evtx and fuzz_state from
 * sources the project owns: vigil's own simulator (bench/sim.h) and hand-made edge cases. Nothing
 * is read from ../shared (DESIGN.md: shared data is read by tests, never copied in), so the corpora
 * grown from these seeds hold nothing of it.
 *
 *   gen_seeds OUTDIR RULES_DIR   writes OUTDIR/decode/ (packed TelemetryBatch messages) and
 *                      OUTDIR/import/ (JSON lines in the schema of `vigil import`,
 *                      each line written here from a simulated event) and
 *                      OUTDIR/evtx/ (EVTX file headers; make_seeds.sh adds the XML records)
 *                      OUTDIR/state/ (changelog snapshots of made-up machines, with the
 *                      correlations of RULES_DIR, vigil's own rules/)
 *
 * The output is deterministic (fixed simulator seeds), except the state seeds' taken_us.
 * tests/fuzz/seeds/make_seeds.sh builds and runs it and adds the Sigma seeds;
 * tests/fuzz/README.md says how the seeds become the saved corpora.
 *
 * THREAD MODEL: single-threaded tool.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "corr.h"
#include "evview.h"
#include "proctab.h"
#include "sim.h"
#include "state.h"
#include "telemetry.pb-c.h"
#include "vg.h"

/* The "now" of the harnesses (fuzz.h): seeds are timed just before it, so they validate. */
#define NOW_US     (INT64_C(1767600000) * VG_US_PER_SEC)
#define MAX_DECODE 320
#define MAX_IMPORT 170

static char g_out[512];
static unsigned g_ndecode, g_nimport;

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_file(const char *sub, const char *name, const void *p, size_t n)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", g_out, sub, name);
    f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
        die(path);
}

static void put_decode(const char *tag, const void *p, size_t n)
{
    char name[96];

    snprintf(name, sizeof(name), "%s-%03u.pb", tag, g_ndecode++);
    write_file("decode", name, p, n);
}

static void put_batch(const char *tag, const Vigil__TelemetryBatch *b)
{
    size_t n = vigil__telemetry_batch__get_packed_size(b);
    uint8_t *buf = malloc(n ? n : 1);

    if (buf == NULL)
        die("malloc");
    vigil__telemetry_batch__pack(b, buf);
    put_decode(tag, buf, n);
    free(buf);
}

/* ---- JSON lines from simulated events ----------------------------------------------- */

static void iso_ts(int64_t us, char *out, size_t n)
{
    time_t s = (time_t)(us / VG_US_PER_SEC);
    struct tm tm;

    gmtime_r(&s, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % VG_US_PER_SEC));
}

static void dset(json_t *d, const char *k, const char *v)
{
    if (v != NULL)
        json_object_set_new(d, k, json_string(v));
}

static void dsetu(json_t *d, const char *k, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    dset(d, k, buf);
}

/* A Sysmon-style process GUID made up from (pid, creation time): not a real one. */
static void guid(const Vigil__ProcessRef *p, char *out, size_t n)
{
    uint64_t t = p ? (uint64_t)p->creation_time_us : 0;

    snprintf(out, n, "{5a1c0de0-%04x-%04x-%04x-%012" PRIx64 "}", (unsigned)((t >> 32) & 0xffff),
             (unsigned)((t >> 16) & 0xffff), p ? (unsigned)(p->pid & 0xffff) : 0u,
             t & UINT64_C(0xffffffffffff));
}

static void hashes(const Vigil__ProcessRef *p, json_t *d)
{
    char buf[400];

    if (p == NULL || p->sha256 == NULL || p->sha256[0] == '\0')
        return;
    snprintf(buf, sizeof(buf), "SHA1=%s,MD5=%s,SHA256=%s", p->sha1 ? p->sha1 : "",
             p->md5 ? p->md5 : "", p->sha256);
    dset(d, "Hashes", buf);
}

static void proc_fields(json_t *d, const Vigil__ProcessRef *p, bool lnx)
{
    char g[64];

    if (p == NULL)
        return;
    dset(d, "Image", p->image);
    dset(d, "CommandLine", p->command_line);
    dset(d, "User", p->account);
    dsetu(d, "ProcessId", p->pid);
    guid(p, g, sizeof(g));
    dset(d, "ProcessGuid", g);
    dset(d, "CurrentDirectory", p->current_directory);
    if (!lnx) {
        dset(d, "IntegrityLevel", p->integrity_level);
        dset(d, "OriginalFileName", p->original_file_name);
        dset(d, "LogonId", p->logon_id);
        hashes(p, d);
    } else {
        dset(d, "Hashes", "-");
    }
}

/* Variant v picks among equivalent encodings of one event (Sysmon vs Security vs auditd). */
static json_t *ev_json(const Vigil__TelemetryBatch *b, const Vigil__Event *e, unsigned v)
{
    bool lnx = b->os == VIGIL__OS__OS_LINUX;
    json_t *j = json_object(), *d = json_object();
    const char *prov = lnx ? "Linux-Sysmon" : "Microsoft-Windows-Sysmon";
    const char *chan = lnx ? "Linux-Sysmon/Operational" : "Microsoft-Windows-Sysmon/Operational";
    const char *service = "sysmon", *cat = NULL;
    int eid = 0;
    char ts[40], g[64];

    iso_ts(e->ts_us, ts, sizeof(ts));
    switch (e->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED: {
        const Vigil__ProcessRef *c = e->process_created->process, *p = e->actor;

        cat = "process_creation";
        if (!lnx && v % 3 == 1) { /* Security 4688 */
            char hex[24];

            prov = "Microsoft-Windows-Security-Auditing";
            chan = "Security";
            service = "security";
            eid = 4688;
            dset(d, "NewProcessName", c ? c->image : NULL);
            dset(d, "CommandLine", c ? c->command_line : NULL);
            dset(d, "ParentProcessName", p ? p->image : NULL);
            snprintf(hex, sizeof(hex), "0x%x", c ? c->pid : 0u);
            dset(d, "NewProcessId", hex);
            snprintf(hex, sizeof(hex), "0x%x", p ? p->pid : 0u);
            dset(d, "ProcessId", hex);
            dset(d, "SubjectUserName", "operator");
            dset(d, "SubjectDomainName", "VIGILLAB");
            dset(d, "TargetUserName", "-");
            dset(d, "TokenElevationType", v % 2 ? "%%1936" : "%%1938");
            dset(d, "MandatoryLabel", "S-1-16-8192");
            break;
        }
        if (lnx && v % 3 == 2) { /* auditd execve */
            char key[24], cmd[512] = "";
            const char *cl = c && c->command_line ? c->command_line : "";
            int argc = 0;

            prov = "auditd";
            chan = "auditd";
            service = "auditd";
            dset(d, "type", "SYSCALL");
            dset(d, "syscall", "59");
            dset(d, "success", "yes");
            dset(d, "exe", c ? c->image : "");
            dset(d, "comm", "x");
            dsetu(d, "pid", c ? c->pid : 0);
            dsetu(d, "ppid", p ? p->pid : 0);
            dset(d, "uid", "1000");
            dset(d, "auid", "1000");
            dset(d, "euid", "1000");
            dset(d, "tty", "pts1");
            dset(d, "ses", "7");
            dset(d, "key", "vigil-exec");
            for (const char *s = cl; *s != '\0' && argc < 8;) {
                size_t n = strcspn(s, " ");

                snprintf(key, sizeof(key), "execve_a%d", argc++);
                snprintf(cmd, sizeof(cmd), "%.*s", (int)n, s);
                dset(d, key, cmd);
                s += n;
                s += strspn(s, " ");
            }
            dsetu(d, "argc", (uint64_t)argc);
            dset(d, "cwd", c && c->current_directory ? c->current_directory : "/");
            dset(d, "path0_name", c ? c->image : "");
            dset(d, "path0_nametype", "NORMAL");
            dset(d, "proctitle", cl);
            dset(d, "record_types", "SYSCALL,EXECVE,CWD,PATH,PROCTITLE");
            dset(d, "Image", c ? c->image : "");
            dset(d, "CommandLine", cl);
            dset(d, "CurrentDirectory", c && c->current_directory ? c->current_directory : "/");
            dset(d, "User", "1000");
            dsetu(d, "ProcessId", c ? c->pid : 0);
            dsetu(d, "ParentProcessId", p ? p->pid : 0);
            break;
        }
        eid = 1;
        proc_fields(d, c, lnx);
        if (p != NULL) {
            dset(d, "ParentImage", p->image);
            dset(d, "ParentCommandLine", p->command_line);
            dsetu(d, "ParentProcessId", p->pid);
            guid(p, g, sizeof(g));
            dset(d, "ParentProcessGuid", g);
            if (v % 2)
                dset(d, "ParentUser", p->account);
        }
        break;
    }
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        eid = 5;
        cat = "process_termination";
        proc_fields(d, e->actor, lnx);
        break;
    case VIGIL__EVENT__KIND_FILE: {
        const Vigil__FileEvent *f = e->file;

        switch (f->op) {
        case VIGIL__FILE_OP__FILE_DELETED:
            eid = 23;
            cat = "file_delete";
            break;
        case VIGIL__FILE_OP__FILE_MODIFIED:
            eid = 2;
            cat = "file_change";
            break;
        default:
            eid = 11;
            cat = "file_event";
            break;
        }
        dset(d, "Image", e->actor ? e->actor->image : NULL);
        dsetu(d, "ProcessId", e->actor ? e->actor->pid : 0);
        dset(d, "TargetFilename", f->path);
        dset(d, "CreationUtcTime", ts);
        if (f->previous_path != NULL && f->previous_path[0] != '\0')
            dset(d, "SourceFilename", f->previous_path);
        if (v % 2)
            dset(d, "User", e->actor ? e->actor->account : NULL);
        break;
    }
    case VIGIL__EVENT__KIND_NETWORK: {
        const Vigil__NetworkConnection *n = e->network;
        static const char *const proto[] = {"", "tcp", "udp", "icmp"};

        eid = 3;
        cat = "network_connection";
        dset(d, "Image", e->actor ? e->actor->image : NULL);
        dset(d, "User", e->actor ? e->actor->account : NULL);
        dset(d, "Protocol", proto[n->protocol <= 3 ? n->protocol : 0]);
        dset(d, "Initiated", n->inbound ? "false" : "true");
        dset(d, "SourceIp", n->inbound ? n->remote_ip : n->local_ip);
        dsetu(d, "SourcePort", n->inbound ? n->remote_port : n->local_port);
        dset(d, "DestinationIp", n->inbound ? n->local_ip : n->remote_ip);
        dsetu(d, "DestinationPort", n->inbound ? n->local_port : n->remote_port);
        dset(d, "DestinationHostname", n->remote_hostname);
        dset(d, "DestinationIsIpv6", "false");
        break;
    }
    case VIGIL__EVENT__KIND_DNS:
        eid = 22;
        cat = "dns_query";
        dset(d, "Image", e->actor ? e->actor->image : NULL);
        dset(d, "QueryName", e->dns->query_name);
        dset(d, "QueryResults", e->dns->results);
        dsetu(d, "QueryStatus", e->dns->status);
        break;
    case VIGIL__EVENT__KIND_REGISTRY: {
        const Vigil__RegistryEvent *r = e->registry;
        char obj[1024];

        snprintf(obj, sizeof(obj), "%s%s%s", r->key ? r->key : "",
                 r->value_name && r->value_name[0] ? "\\" : "", r->value_name ? r->value_name : "");
        dset(d, "Image", e->actor ? e->actor->image : NULL);
        dset(d, "TargetObject", obj);
        switch (r->op) {
        case VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET:
            eid = 13;
            cat = "registry_set";
            dset(d, "EventType", "SetValue");
            dset(d, "Details", r->value_data);
            break;
        case VIGIL__REGISTRY_OP__REGISTRY_KEY_RENAMED:
            eid = 14;
            cat = "registry_event";
            dset(d, "EventType", "RenameKey");
            dset(d, "NewName", r->new_name);
            break;
        case VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED:
        case VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED:
            eid = 12;
            cat = "registry_delete";
            dset(d, "EventType",
                 r->op == VIGIL__REGISTRY_OP__REGISTRY_KEY_DELETED ? "DeleteKey" : "DeleteValue");
            break;
        default:
            eid = 12;
            cat = v % 2 ? "registry_add" : "registry_event";
            if (v % 2)
                dset(d, "EventType", "CreateKey");
            break;
        }
        break;
    }
    case VIGIL__EVENT__KIND_LOGON: {
        const Vigil__LogonEvent *l = e->logon;

        prov = "Microsoft-Windows-Security-Auditing";
        chan = "Security";
        service = "security";
        eid = l->success ? 4624 : 4625;
        dset(d, "TargetUserName", l->account);
        dset(d, "TargetDomainName", l->account_domain);
        dset(d, "TargetLogonId", l->logon_id);
        dsetu(d, "LogonType", l->logon_type);
        dset(d, "IpAddress", l->source_ip);
        dsetu(d, "IpPort", l->source_port);
        dset(d, "WorkstationName", l->workstation);
        dset(d, "LogonProcessName", "NtLmSsp ");
        dset(d, "AuthenticationPackageName", l->auth_package);
        dset(d, "ProcessName", e->actor && e->actor->image ? e->actor->image : "-");
        dset(d, "SubjectUserName", "-");
        if (!l->success) {
            dset(d, "Status", "0xc000006d");
            dset(d, "SubStatus", l->failure_reason ? l->failure_reason : "0xc0000064");
        }
        break;
    }
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        eid = 7;
        cat = "image_load";
        dset(d, "Image", e->actor ? e->actor->image : NULL);
        dset(d, "ImageLoaded", e->image_load->path);
        dset(d, "Signed", e->image_load->signed_ ? "true" : "false");
        dset(d, "Signature", e->image_load->signer);
        dset(d, "SignatureStatus", "Valid");
        if (e->image_load->sha256 != NULL && e->image_load->sha256[0] != '\0') {
            char h[128];

            snprintf(h, sizeof(h), "SHA256=%s", e->image_load->sha256);
            dset(d, "Hashes", h);
        }
        break;
    default: /* software inventory: no Sigma home; an unmodelled service event */
        prov = "Application";
        chan = "Application";
        service = "application";
        eid = 11707;
        if (e->kind_case == VIGIL__EVENT__KIND_SOFTWARE) {
            dset(d, "Product", e->software->name);
            dset(d, "Version", e->software->version);
            dset(d, "Manufacturer", e->software->vendor);
        }
        break;
    }
    json_object_set_new(j, "ts", json_string(ts));
    json_object_set_new(j, "os", json_string(lnx ? "linux" : "windows"));
    json_object_set_new(j, "host", v % 7 == 6 ? json_null() : json_string(b->machine_name));
    json_object_set_new(j, "provider", json_string(prov));
    json_object_set_new(j, "channel", json_string(chan));
    json_object_set_new(j, "event_id", eid ? json_integer(eid) : json_null());
    json_object_set_new(j, "record_id", json_integer((json_int_t)(e->seq + 1000)));
    json_object_set_new(j, "category", cat ? json_string(cat) : json_null());
    json_object_set_new(j, "service", json_string(service));
    json_object_set_new(j, "data", d);
    json_object_set_new(j, "rec", json_string("vigil-sim:generated"));
    if (v % 5 == 4)
        json_object_set_new(j, "tenant", json_string(b->tenant_id));
    return j;
}

/* Extra Windows kinds vigil has no typed model for (GenericEvent on import), made from one
 * simulated process. */
static json_t *generic_json(const Vigil__TelemetryBatch *b, const Vigil__Event *e, unsigned which)
{
    json_t *j = json_object(), *d = json_object();
    const Vigil__ProcessRef *p = e->actor;
    const char *img = p && p->image ? p->image : "C:\\Windows\\System32\\svchost.exe";
    const char *cat, *prov = "Microsoft-Windows-Sysmon",
                     *chan = "Microsoft-Windows-Sysmon/Operational";
    const char *service = "sysmon";
    int eid;
    char ts[40], g[64];

    iso_ts(e->ts_us, ts, sizeof(ts));
    guid(p, g, sizeof(g));
    switch (which % 6) {
    case 0:
        eid = 10;
        cat = "process_access";
        dset(d, "SourceImage", img);
        dset(d, "SourceProcessGUID", g);
        dset(d, "TargetImage", "C:\\Windows\\system32\\lsass.exe");
        dset(d, "GrantedAccess", which % 2 ? "0x1010" : "0x1fffff");
        dset(d, "CallTrace", "C:\\Windows\\SYSTEM32\\ntdll.dll+9d4c4|UNKNOWN(00000000)");
        break;
    case 1:
        eid = 8;
        cat = "create_remote_thread";
        dset(d, "SourceImage", img);
        dset(d, "TargetImage", "C:\\Windows\\explorer.exe");
        dset(d, "StartAddress", "0x00007FF6A1B20000");
        dset(d, "StartFunction", "");
        break;
    case 2:
        eid = 17;
        cat = "pipe_created";
        dset(d, "Image", img);
        dset(d, "PipeName", "\\vigil_seed_pipe");
        dset(d, "EventType", "CreatePipe");
        break;
    case 3:
        eid = 4104;
        cat = "ps_script";
        prov = "Microsoft-Windows-PowerShell";
        chan = "Microsoft-Windows-PowerShell/Operational";
        service = "powershell";
        dset(d, "MessageNumber", "1");
        dset(d, "MessageTotal", "1");
        dset(d, "ScriptBlockText", p && p->command_line ? p->command_line : "Get-Process");
        dset(d, "ScriptBlockId", g);
        dset(d, "Path", "");
        break;
    case 4:
        eid = 7045;
        cat = NULL;
        prov = "Service Control Manager";
        chan = "System";
        service = "system";
        dset(d, "ServiceName", "vigilseed");
        dset(d, "ImagePath", img);
        dset(d, "ServiceType", "user mode service");
        dset(d, "StartType", "demand start");
        dset(d, "AccountName", "LocalSystem");
        break;
    default:
        eid = 4672;
        cat = NULL;
        prov = "Microsoft-Windows-Security-Auditing";
        chan = "Security";
        service = "security";
        dset(d, "SubjectUserName", "operator");
        dset(d, "SubjectDomainName", "VIGILLAB");
        dset(d, "SubjectLogonId", "0x3e7");
        dset(d, "PrivilegeList", "SeDebugPrivilege\r\n\t\t\tSeBackupPrivilege");
        break;
    }
    json_object_set_new(j, "ts", json_string(ts));
    json_object_set_new(j, "os", json_string("windows"));
    json_object_set_new(j, "host", json_string(b->machine_name));
    json_object_set_new(j, "provider", json_string(prov));
    json_object_set_new(j, "channel", json_string(chan));
    json_object_set_new(j, "event_id", json_integer(eid));
    json_object_set_new(j, "record_id", json_null());
    json_object_set_new(j, "category", cat ? json_string(cat) : json_null());
    json_object_set_new(j, "service", json_string(service));
    json_object_set_new(j, "data", d);
    return j;
}

/* ---- decode seeds ------------------------------------------------------------------- */

struct simcfg {
    const char *tag;
    uint64_t seed;
    uint32_t machines, tenants, per_batch, mask;
    double linux_share, rate;
    int64_t duration_us;
    unsigned keep; /* batches of this run to keep */
};

/* A small signature of a batch: OS and which kinds it carries. */
static unsigned batch_sig(const Vigil__TelemetryBatch *b)
{
    unsigned sig = (unsigned)b->os << 12;

    for (size_t i = 0; i < b->n_events; i++)
        sig |= 1u << (b->events[i]->kind_case % 12);
    return sig;
}

static bool batch_has_truth(const bench_sim *s, const Vigil__TelemetryBatch *b)
{
    for (size_t i = 0; i < bench_sim_truth_count(s); i++) {
        const struct bench_sim_truth *t = bench_sim_truth_get(s, i);

        if (t->emitted && strcmp(t->machine, b->machine_id) == 0 && t->seq >= b->first_seq &&
            t->seq < b->first_seq + b->n_events)
            return true;
    }
    return false;
}

/* Runs one simulator configuration; keeps batches that bring a new (OS, kinds) signature
 * or carry a scenario's triggering event, then every k-th, up to cfg->keep. Import lines
 * are made from the kept batches too. */
static void run_sim(const struct simcfg *cfg, FILE **imp_file, unsigned *imp_lines)
{
    struct bench_sim_opts o;
    bench_sim *s = NULL;
    vg_arena *a = vg_arena_new(1 << 16);
    unsigned sigs[256], nsig = 0, kept = 0, seen = 0;
    char err[256];
    Vigil__TelemetryBatch *b;

    bench_sim_opts_default(&o);
    o.seed = cfg->seed;
    o.machines = cfg->machines;
    o.tenants = cfg->tenants;
    o.linux_share = cfg->linux_share;
    o.start_us = NOW_US - 30 * VG_US_PER_SEC - cfg->duration_us;
    o.duration_us = cfg->duration_us;
    o.events_per_machine_per_sec = cfg->rate;
    o.events_per_batch = cfg->per_batch;
    o.scenario_start_us = cfg->duration_us / 8;
    o.scenario_mask = cfg->mask;
    if (a == NULL || bench_sim_new(&o, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "gen_seeds: simulator %s: %s\n", cfg->tag, err);
        exit(1);
    }
    while (kept < cfg->keep && g_ndecode < MAX_DECODE && bench_sim_next(s, a, &b) == 1) {
        unsigned sig = batch_sig(b);
        bool fresh = true, take;

        for (unsigned i = 0; i < nsig; i++)
            fresh = fresh && sigs[i] != sig;
        seen++;
        take = fresh || batch_has_truth(s, b) || seen % 23 == 0;
        if (take) {
            if (fresh && nsig < 256)
                sigs[nsig++] = sig;
            put_batch(cfg->tag, b);
            kept++;
            /* JSON lines of this batch: a file of up to 6 lines, several machines mixed. */
            for (size_t i = 0; i < b->n_events && i < 6; i++) {
                json_t *j = ev_json(b, b->events[i], (unsigned)(seen + i));
                char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

                if (*imp_file == NULL && g_nimport < MAX_IMPORT) {
                    char path[1024];

                    snprintf(path, sizeof(path), "%s/import/sim-%03u.jsonl", g_out, g_nimport++);
                    if ((*imp_file = fopen(path, "w")) == NULL)
                        die(path);
                    *imp_lines = 0;
                }
                if (*imp_file != NULL) {
                    fprintf(*imp_file, "%s\n", line);
                    if (b->os == VIGIL__OS__OS_WINDOWS && (seen + i) % 4 == 0) {
                        json_t *gj = generic_json(b, b->events[i], (unsigned)(seen / 4 + i));
                        char *gl = json_dumps(gj, JSON_COMPACT | JSON_PRESERVE_ORDER);

                        fprintf(*imp_file, "%s\n", gl);
                        free(gl);
                        json_decref(gj);
                    }
                    if (++*imp_lines >= 2 + (seen % 5)) {
                        fclose(*imp_file);
                        *imp_file = NULL;
                    }
                }
                free(line);
                json_decref(j);
            }
        }
        vg_arena_reset(a);
    }
    bench_sim_free(s);
    vg_arena_destroy(a);
}

/* Hand-made decode edge cases: odd but well-formed batches, then broken bytes. */
static void decode_edges(void)
{
    Vigil__TelemetryBatch b;
    Vigil__Event e[6], *ep[6];
    Vigil__ProcessRef actor, child;
    Vigil__ProcessCreated pc;
    Vigil__GenericEvent gen;
    Vigil__KeyValue kv[3], *kvp[3];
    Vigil__FileEvent fe;
    Vigil__NetworkConnection net;
    static const uint8_t raw[][24] = {
        {0x0a, 0x05, 't', 'e', 'n', 'a', 'n'},           /* truncated string */
        {0x42, 0xff, 0xff, 0xff, 0xff, 0x0f},            /* event length far past the end */
        {0x42, 0x02, 0x08},                              /* event: truncated varint */
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* 11-byte varint tag */
         0xff, 0xff, 0x01},
        {0x0b, 0x0c},                              /* group wire types */
        {0x0d, 0x01, 0x02, 0x03},                  /* fixed32 cut short */
        {0x42, 0x00, 0x42, 0x00, 0x42, 0x00},      /* three empty events */
        {0x20, 0x63},                              /* os = 99 */
        {0x42, 0x04, 0xf2, 0x01, 0x01, 0x00},      /* extra: KeyValue with a tag 0 */
        {0x0a, 0x02, 0xc3, 0x28, 0x12, 0x01, 'm'}, /* tenant not UTF-8 */
    };
    static const size_t rawlen[] = {7, 6, 3, 11, 2, 4, 6, 2, 6, 7};

    put_decode("edge-empty", "", 0);
    for (size_t i = 0; i < sizeof(rawlen) / sizeof(rawlen[0]); i++)
        put_decode("edge-raw", raw[i], rawlen[i]);

    vigil__telemetry_batch__init(&b);
    vigil__process_ref__init(&actor);
    vigil__process_ref__init(&child);
    vigil__process_created__init(&pc);
    vigil__generic_event__init(&gen);
    vigil__file_event__init(&fe);
    vigil__network_connection__init(&net);
    for (int i = 0; i < 6; i++) {
        vigil__event__init(&e[i]);
        ep[i] = &e[i];
        e[i].seq = 100 + (uint64_t)i;
        e[i].ts_us = NOW_US - 60 * VG_US_PER_SEC + i;
    }
    for (int i = 0; i < 3; i++) {
        vigil__key_value__init(&kv[i]);
        kvp[i] = &kv[i];
    }
    b.tenant_id = "tenant-edge";
    b.machine_id = "m-edge-1";
    b.machine_name = "EDGE-WS01";
    b.os = VIGIL__OS__OS_WINDOWS;
    b.first_seq = 100;

    /* No events. */
    put_batch("edge-noevents", &b);
    /* No tenant; no machine. */
    b.tenant_id = "";
    put_batch("edge-notenant", &b);
    b.tenant_id = "tenant-edge";
    b.machine_id = "";
    put_batch("edge-nomachine", &b);
    b.machine_id = "m-edge-1";

    /* A process creation whose child has every field. */
    actor.pid = 4242;
    actor.creation_time_us = NOW_US - 3600 * VG_US_PER_SEC;
    actor.image = "C:\\Windows\\explorer.exe";
    actor.account = "VIGILLAB\\operator";
    child.pid = 5151;
    child.creation_time_us = NOW_US - 60 * VG_US_PER_SEC;
    child.image = "C:\\Windows\\System32\\cmd.exe";
    child.command_line = "cmd.exe /c whoami /all";
    child.sha256 = "0000000000000000000000000000000000000000000000000000000000000001";
    child.sha1 = "0000000000000000000000000000000000000002";
    child.md5 = "00000000000000000000000000000003";
    child.account = "VIGILLAB\\operator";
    child.integrity_level = "High";
    child.current_directory = "C:\\Users\\operator\\";
    child.original_file_name = "Cmd.Exe";
    child.logon_id = "0x2f1a0";
    pc.process = &child;
    e[0].actor = &actor;
    e[0].kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    e[0].process_created = &pc;
    /* An event with no kind, with extras (one empty key, one override of a typed field). */
    kv[0].key = "";
    kv[0].value = "x";
    kv[1].key = "Image";
    kv[1].value = "C:\\override.exe";
    kv[2].key = "VigilSeedField";
    kv[2].value = "";
    e[1].actor = &actor;
    e[1].n_extra = 3;
    e[1].extra = kvp;
    /* A generic event. */
    gen.category = "process_access";
    gen.service = "sysmon";
    gen.provider = "Microsoft-Windows-Sysmon";
    gen.event_id = 10;
    e[2].kind_case = VIGIL__EVENT__KIND_GENERIC;
    e[2].generic = &gen;
    e[2].n_extra = 2;
    e[2].extra = kvp + 1;
    /* A rename and an inbound connection. */
    fe.op = VIGIL__FILE_OP__FILE_RENAMED;
    fe.path = "C:\\Users\\operator\\Documents\\a.docx.locked";
    fe.previous_path = "C:\\Users\\operator\\Documents\\a.docx";
    fe.size = UINT64_MAX;
    e[3].actor = &child;
    e[3].kind_case = VIGIL__EVENT__KIND_FILE;
    e[3].file = &fe;
    net.protocol = 7;
    net.inbound = true;
    net.local_ip = "fe80::1";
    net.local_port = 70000;
    net.remote_ip = "not-an-ip";
    e[4].actor = &child;
    e[4].kind_case = VIGIL__EVENT__KIND_NETWORK;
    e[4].network = &net;
    e[5].kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    e[5].process_created = &pc; /* no actor */
    b.n_events = 6;
    b.events = ep;
    put_batch("edge-mixed", &b);

    /* Sequence numbers out of order; duplicate; first_seq disagreeing. */
    e[1].seq = 100;
    put_batch("edge-dupseq", &b);
    e[1].seq = 101;
    b.first_seq = 7;
    put_batch("edge-firstseq", &b);
    b.first_seq = 100;
    /* Times: far future, before 2000, decreasing. */
    e[2].ts_us = NOW_US + 3 * VG_US_PER_DAY;
    put_batch("edge-future", &b);
    e[2].ts_us = 1000;
    put_batch("edge-past", &b);
    e[2].ts_us = NOW_US - 3600 * VG_US_PER_SEC;
    put_batch("edge-backwards", &b);
    e[2].ts_us = NOW_US - 60 * VG_US_PER_SEC + 2;
    /* Linux and unknown OS with the same events; a long tenant id. */
    b.os = VIGIL__OS__OS_LINUX;
    put_batch("edge-linux", &b);
    b.os = VIGIL__OS__OS_MACOS;
    put_batch("edge-macos", &b);
    b.os = VIGIL__OS__OS_WINDOWS;
    b.tenant_id =
        "tenant-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    put_batch("edge-longtenant", &b);
    b.tenant_id = "tenant-edge";
    /* One event alone; then a truncated copy of the mixed batch. */
    b.n_events = 1;
    put_batch("edge-one", &b);
    b.n_events = 6;
    {
        size_t n = vigil__telemetry_batch__get_packed_size(&b);
        uint8_t *buf = malloc(n);

        if (buf == NULL)
            die("malloc");
        vigil__telemetry_batch__pack(&b, buf);
        put_decode("edge-cut", buf, n / 2);
        put_decode("edge-cut", buf, n - 1);
        free(buf);
    }
}

/* ---- hand-made import lines --------------------------------------------------------- */

static void put_import(const char *name, const char *text)
{
    write_file("import", name, text, strlen(text));
}

static void import_edges(void)
{
    put_import("edge-empty.jsonl", "");
    put_import("edge-blank-lines.jsonl", "\n\r\n   \n");
    put_import("edge-not-json.jsonl", "{\"ts\":\"2026-01-05T07:00:00.000000Z\",\"data\":{\n"
                                      "[1,2,3]\n\"just a string\"\nnull\n");
    put_import("edge-bad-ts.jsonl",
               "{\"ts\":\"yesterday\",\"os\":\"windows\",\"data\":{}}\n"
               "{\"ts\":12,\"os\":\"windows\",\"data\":{}}\n"
               "{\"os\":\"windows\",\"data\":{\"Image\":\"C:\\\\a.exe\"}}\n"
               "{\"ts\":\"2026-02-30T25:61:61.999999Z\",\"os\":\"linux\",\"data\":{}}\n"
               "{\"ts\":\"1969-12-31T23:59:59Z\",\"os\":\"linux\",\"data\":{}}\n"
               "{\"ts\":\"2026-01-05T07:00:00+02:00\",\"os\":\"linux\",\"data\":{}}\n");
    put_import("edge-types.jsonl",
               "{\"ts\":\"2026-01-05T07:00:00.000001Z\",\"os\":\"windows\",\"host\":\"WS-1\","
               "\"event_id\":\"1\",\"category\":\"process_creation\",\"data\":{\"Image\":7}}\n"
               "{\"ts\":\"2026-01-05T07:00:00.000002Z\",\"os\":\"windows\",\"host\":[],"
               "\"event_id\":1,\"data\":[]}\n"
               "{\"ts\":\"2026-01-05T07:00:00.000003Z\",\"os\":\"plan9\",\"host\":\"WS-1\","
               "\"event_id\":-1,\"record_id\":18446744073709551615,\"data\":{\"A\":null}}\n"
               "{\"ts\":\"2026-01-05T07:00:00.000004Z\",\"os\":\"windows\",\"host\":\"WS-1\","
               "\"event_id\":1,\"category\":\"no_such_category\",\"service\":\"nope\","
               "\"data\":{\"Image\":\"C:\\\\x.exe\",\"Nested\":{\"a\":\"b\"}}}\n");
    put_import(
        "edge-case-twins.jsonl",
        "{\"ts\":\"2026-01-05T07:00:01.000000Z\",\"os\":\"windows\",\"host\":\"WS-2\","
        "\"provider\":\"Microsoft-Windows-Sysmon\",\"channel\":"
        "\"Microsoft-Windows-Sysmon/Operational\",\"event_id\":1,\"category\":"
        "\"process_creation\",\"service\":\"sysmon\",\"data\":{\"Image\":"
        "\"C:\\\\Tools\\\\one.exe\",\"image\":\"C:\\\\Tools\\\\two.exe\",\"EventID\":\"9\"}}\n");
    put_import(
        "edge-envelope-in-data.jsonl",
        "{\"ts\":\"2026-01-05T07:00:02.000000Z\",\"os\":\"windows\",\"host\":\"WS-3\","
        "\"provider\":\"Microsoft-Windows-Sysmon\",\"channel\":"
        "\"Microsoft-Windows-Sysmon/Operational\",\"event_id\":13,\"category\":"
        "\"registry_set\",\"service\":\"sysmon\",\"data\":{\"Channel\":\"Other\","
        "\"Provider_Name\":\"Other\",\"Computer\":\"WS-OTHER\",\"EventType\":\"SetValue\","
        "\"TargetObject\":\"HKLM\\\\SOFTWARE\\\\VigilSeed\\\\Run\\\\x\","
        "\"Details\":\"DWORD (0x00000001)\"}}\n"
        "{\"ts\":\"2026-01-05T07:00:02.000001Z\",\"os\":\"windows\",\"host\":\"WS-3\","
        "\"event_id\":12,\"category\":\"registry_event\",\"service\":\"sysmon\","
        "\"data\":{\"EventType\":\"DeleteValue\",\"TargetObject\":\"HKU\\\\S-1-5-21\\\\x\"}}\n"
        "{\"ts\":\"2026-01-05T07:00:02.000002Z\",\"os\":\"windows\",\"host\":\"WS-3\","
        "\"event_id\":14,\"category\":\"registry_event\",\"service\":\"sysmon\","
        "\"data\":{\"EventType\":\"RenameKey\",\"TargetObject\":\"HKLM\\\\a\","
        "\"NewName\":\"HKLM\\\\b\"}}\n");
    put_import("edge-odd-values.jsonl",
               "{\"ts\":\"2026-01-05T07:00:03.000000Z\",\"os\":\"windows\",\"host\":\"WS-4\","
               "\"provider\":\"Microsoft-Windows-Sysmon\",\"event_id\":3,\"category\":"
               "\"network_connection\",\"service\":\"sysmon\",\"data\":{\"Image\":"
               "\"C:\\\\a b\\\\c.exe \",\"SourcePort\":\"0\",\"DestinationPort\":\"0443\","
               "\"Initiated\":\"True\",\"Protocol\":\"TCP\",\"DestinationIp\":\"::ffff:10.1.2.3\","
               "\"ProcessId\":\"0x1a2b\",\"Hashes\":\"SHA1=AB,IMPHASH=CD\","
               "\"SourceIp\":\"\"}}\n"
               "{\"ts\":\"2026-01-05T07:00:03.000001Z\",\"os\":\"windows\",\"host\":\"WS-4\","
               "\"event_id\":4625,\"category\":null,\"service\":\"security\",\"data\":"
               "{\"LogonType\":\"x\",\"IpPort\":\"-\",\"IpAddress\":\"-\",\"TargetUserName\":"
               "\"\\u00e9l\\u00e8ve\",\"ProcessName\":\"-\"}}\n"
               "{\"ts\":\"2026-01-05T07:00:03.000002Z\",\"os\":\"windows\",\"host\":\"WS-4\","
               "\"event_id\":1,\"category\":\"process_creation\",\"service\":\"sysmon\",\"data\":"
               "{\"CommandLine\":\"a\\u0000b\",\"Image\":\"\\r\\n\",\"_truncated\":\"true\"}}\n");
    put_import("edge-crlf-tenants.jsonl",
               "{\"ts\":\"2026-01-05T07:00:04.000000Z\",\"os\":\"linux\",\"host\":\"lnx-1\","
               "\"tenant\":\"tenant-a\",\"event_id\":1,\"category\":\"process_creation\","
               "\"data\":{\"Image\":\"/usr/bin/id\"}}\r\n"
               "{\"ts\":\"2026-01-05T07:00:04.000001Z\",\"os\":\"linux\",\"host\":\"lnx-1\","
               "\"tenant\":\"tenant-b\",\"event_id\":1,\"category\":\"process_creation\","
               "\"data\":{\"Image\":\"/usr/bin/id\"}}\r\n"
               "{\"ts\":\"2026-01-05T07:00:04.000002Z\",\"os\":\"linux\",\"host\":\"lnx-1\","
               "\"tenant\":\"\",\"data\":{}}");
    /* Invalid UTF-8 in a value. */
    put_import("edge-bad-utf8.jsonl",
               "{\"ts\":\"2026-01-05T07:00:05.000000Z\",\"os\":\"windows\",\"data\":{\"Image\":"
               "\"C:\\\\\xc3\x28.exe\"}}\n");
}

/* ---- EVTX: file and chunk headers (the record XML seeds are files in seeds/evtx/) ----- */

/* CRC-32 (IEEE 802.3, reflected), the checksum of EVTX headers; bitwise, seeds are few. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * An EVTX file: the 4,096-byte file header (magic, chunk numbers, next record id, header
 * size 128, version 3.1, block size 4,096, chunk count, flags, CRC-32 of its first 120
 * bytes) and nchunks empty 64 KiB chunks (magic, record numbers, header size 128, free
 * space offset 512, CRC-32 of bytes 0-120 and 128-512). No records: writing binary XML is
 * left to the mutator.
 */
static void put_evtx(const char *name, unsigned nchunks, bool bad_crc)
{
    size_t size = 4096 + (size_t)nchunks * 65536;
    uint8_t *f = calloc(1, size);

    if (f == NULL)
        die("calloc");
    memcpy(f, "ElfFile", 8);
    put_le(f + 8, 0, 8);
    put_le(f + 16, nchunks ? nchunks - 1 : 0, 8);
    put_le(f + 24, 1, 8);
    put_le(f + 32, 128, 4);
    put_le(f + 36, 1, 2);
    put_le(f + 38, 3, 2);
    put_le(f + 40, 4096, 2);
    put_le(f + 42, nchunks, 2);
    put_le(f + 124, crc32_ieee(f, 120) ^ (bad_crc ? 1u : 0u), 4);
    for (unsigned c = 0; c < nchunks; c++) {
        uint8_t *k = f + 4096 + (size_t)c * 65536;
        uint8_t both[120 + 384];

        memcpy(k, "ElfChnk", 8);
        put_le(k + 8, 1, 8);
        put_le(k + 16, 0, 8);
        put_le(k + 24, 1, 8);
        put_le(k + 32, 0, 8);
        put_le(k + 40, 128, 4);
        put_le(k + 44, 512, 4);
        put_le(k + 48, 512, 4);
        put_le(k + 52, crc32_ieee(k + 512, 0), 4);
        memcpy(both, k, 120);
        memcpy(both + 120, k + 128, 384);
        put_le(k + 124, crc32_ieee(both, sizeof(both)), 4);
    }
    write_file("evtx", name, f, size);
    free(f);
}

static void evtx_edges(void)
{
    put_evtx("empty.evtx", 0, false);
    put_evtx("one-chunk.evtx", 1, false);
    put_evtx("bad-crc.evtx", 1, true);
}

/* ---- changelog snapshots (state.h) ---------------------------------------------------- */

#define SNAP_T0 (NOW_US - 600 * VG_US_PER_SEC)

static void snap_spawn(cor_proctab *pt, uint64_t mkey, uint32_t ppid, uint32_t pid,
                       const char *image, const char *cmd)
{
    Vigil__ProcessRef r;

    vigil__process_ref__init(&r);
    r.pid = pid;
    r.creation_time_us = SNAP_T0 + pid;
    r.image = (char *)image;
    r.command_line = (char *)cmd;
    r.account = "root";
    if (cor_proctab_upsert(pt, mkey, &r, ppid, ppid ? SNAP_T0 + ppid : 0, SNAP_T0 + pid) == NULL)
        die("cor_proctab_upsert");
}

/* A match of the Linux sensitive-file search rule (rules/) by process pid at t seconds. */
static void snap_match(cor_proctab *pt, cor_corrstate *cs, uint64_t mkey, const char *machine,
                       uint32_t pid, int t, uint64_t seq, const char *cmd)
{
    struct vg_evview v;
    struct cor_corr_match m;

    memset(&v, 0, sizeof(v));
    v.cat = VG_CAT_PROCESS_CREATION;
    v.f[VG_F_COMMAND_LINE] = (struct vg_str){cmd, strlen(cmd)};
    memset(&m, 0, sizeof(m));
    m.mkey = mkey;
    m.tenant = "tenant-fuzz";
    m.machine = machine;
    m.view = &v;
    m.ts_us = SNAP_T0 + (int64_t)t * VG_US_PER_SEC;
    m.seq = seq;
    m.proc = cor_proctab_get(pt, mkey, pid, SNAP_T0 + pid);
    m.kind = "process_creation";
    m.summary = cmd;
    cor_corrstate_on_match(cs, "c3a91f52-6d7e-4b08-b1e4-7a2f9d0c5e13", &m);
}

static void snap_fire(void *ctx, const struct cor_corr_fire *f)
{
    (void)ctx;
    (void)f;
}

/* Snapshots of a Linux machine with a process tree (and an exited process) and the
 * sensitive-file correlation half filled: one match released into a group, one pending
 * behind the lateness bound; a machine with processes only (a machine with neither has no
 * snapshot: nothing is written for it). Unlike the other seeds these are not byte for
 * byte the same from run to run: a snapshot records when it was taken (taken_us). */
static void state_seeds(const char *rules_dir)
{
    const char *dirs[] = {rules_dir};
    cor_corrset *corr = NULL;
    char err[256] = "";
    const char *machines[] = {"lnx-fuzz-01", "lnx-fuzz-02", "lnx-fuzz-03"};

    if (cor_corrset_load(dirs, 1, &corr, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "gen_seeds: %s: %s\n", rules_dir, err);
        exit(1);
    }
    for (size_t k = 0; k < VG_ARRAY_SIZE(machines); k++) {
        cor_proctab *pt = cor_proctab_new(0);
        cor_corrstate *cs =
            cor_corrstate_new(corr, k == 0 ? 120 * VG_US_PER_SEC : 0, snap_fire, NULL);
        uint64_t mkey = vg_machine_key("tenant-fuzz", machines[k]);
        struct cor_snap_req rq = {.mkey = mkey,
                                  .tenant = "tenant-fuzz",
                                  .machine = machines[k],
                                  .last_event_us = SNAP_T0 + 300 * VG_US_PER_SEC,
                                  .last_seq = 40};
        char name[64];

        if (pt == NULL || cs == NULL)
            die("state");
        if (k < 2) {
            snap_spawn(pt, mkey, 0, 1, "/sbin/init", "/sbin/init");
            snap_spawn(pt, mkey, 1, 500, "/usr/sbin/sshd", "sshd: root [priv]");
            snap_spawn(pt, mkey, 500, 600, "/usr/bin/bash", "-bash");
            snap_spawn(pt, mkey, 600, 700, "/usr/bin/bash", "bash /tmp/enum.sh");
            snap_spawn(pt, mkey, 700, 800, "/usr/bin/find", "find / -name id_rsa");
            snap_spawn(pt, mkey, 700, 900, "/usr/bin/cat", "cat /etc/os-release");
            cor_proctab_exit(pt, cor_proctab_get(pt, mkey, 900, SNAP_T0 + 900),
                             SNAP_T0 + 200 * VG_US_PER_SEC, 0);
        }
        if (k == 0) {
            snap_match(pt, cs, mkey, machines[k], 800, 10, 20, "find / -name id_rsa");
            cor_corrstate_advance(cs, SNAP_T0 + 200 * VG_US_PER_SEC);
            snap_spawn(pt, mkey, 700, 1000, "/usr/bin/grep", "grep -r 'PRIVATE KEY' /home");
            snap_match(pt, cs, mkey, machines[k], 1000, 290, 39, "grep -r 'PRIVATE KEY' /home");
        }
        cor_snap_build(pt, cs, &rq, 1, 0);
        if (rq.val != NULL) {
            snprintf(name, sizeof(name), "snapshot-%zu.bin", k);
            write_file("state", name, rq.val, rq.len);
            vg_free(rq.val);
        }
        cor_corrstate_destroy(cs);
        cor_proctab_destroy(pt);
    }
    write_file("state", "empty.bin", "", 0);
    write_file("state", "garbage.bin", "\x08\xff\xff\x12", 4);
    cor_corrset_unref(corr);
}

static void mkdir_or_die(const char *sub)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s", g_out, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path);
}

int main(int argc, char **argv)
{
    /* Windows-heavy, Linux-heavy, mixed; batch sizes 1..32; each scenario alone and all. */
    static const struct simcfg cfgs[] = {
        {"sim-win", 11, 6, 2, 4, 0, 0.0, 5.0, 12 * VG_US_PER_SEC, 45},
        {"sim-lnx", 12, 6, 2, 4, 0, 1.0, 5.0, 12 * VG_US_PER_SEC, 45},
        {"sim-mix", 13, 12, 3, 8, 0, 0.4, 4.0, 16 * VG_US_PER_SEC, 50},
        {"sim-one", 14, 4, 2, 1, 0, 0.5, 3.0, 8 * VG_US_PER_SEC, 30},
        {"sim-big", 15, 3, 1, 32, 0, 0.3, 20.0, 12 * VG_US_PER_SEC, 20},
        {"sim-winref", 16, 4, 2, 4, BENCH_SIM_RUN_WIN_REF, 0.25, 5.0, 8 * VG_US_PER_SEC, 25},
        {"sim-lnxref", 17, 4, 2, 4, BENCH_SIM_RUN_LNX_REF, 0.75, 5.0, 8 * VG_US_PER_SEC, 25},
        {"sim-chain", 18, 6, 2, 16, BENCH_SIM_RUN_CHAIN, 0.2, 5.0, 14 * VG_US_PER_SEC, 45},
        {"sim-many", 19, 40, 7, 4, 0, 0.3, 1.0, 10 * VG_US_PER_SEC, 30},
    };
    FILE *imp = NULL;
    unsigned imp_lines = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds OUTDIR RULES_DIR\n");
        return 2;
    }
    snprintf(g_out, sizeof(g_out), "%s", argv[1]);
    mkdir_or_die("");
    mkdir_or_die("decode");
    mkdir_or_die("import");
    mkdir_or_die("evtx");
    mkdir_or_die("state");
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++)
        run_sim(&cfgs[i], &imp, &imp_lines);
    if (imp != NULL)
        fclose(imp);
    decode_edges();
    import_edges();
    evtx_edges();
    state_seeds(argv[2]);
    printf("gen_seeds: %u decode seeds, %u simulated import files in %s\n", g_ndecode, g_nimport,
           g_out);
    return 0;
}
