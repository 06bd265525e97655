/*
 * investigate.c - vigil simulate, vigil timeline, vigil alert show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "incident.h"
#include "sim.h"

/* ---- simulate --------------------------------------------------------------------- */

int cmd_simulate(int argc, char **argv)
{
    struct cli_common c;
    struct bench_sim_opts so;
    struct ing_kafka_cfg kc;
    ing_producer *prod = NULL;
    bench_sim *sim = NULL;
    vg_arena *a = NULL;
    bool realtime = false;
    char err[256];
    uint64_t n = 0, ev = 0, t0;
    int rc = 1;

    cli_common_defaults(&c);
    bench_sim_opts_default(&so);
    so.scenarios = true;
    for (int i = 1; i < argc; i++) {
        int k = cli_common_opt(&c, argc, argv, &i);

        if (k < 0)
            return 2;
        if (k == 1)
            continue;
        if (strcmp(argv[i], "--machines") == 0 && i + 1 < argc)
            so.machines = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--tenants") == 0 && i + 1 < argc)
            so.tenants = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            so.events_per_machine_per_sec = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            so.seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--realtime") == 0)
            realtime = true;
        else if (strcmp(argv[i], "--no-scenarios") == 0)
            so.scenarios = false;
        else {
            printf("usage: vigil simulate --brokers LIST [--topic telemetry] [-X k=v]\n"
                   "       [--machines N] [--tenants T] [--rate EVENTS_PER_MACHINE_PER_S]\n"
                   "       [--duration SECONDS] [--seed S] [--realtime] [--no-scenarios]\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (c.brokers == NULL) {
        fprintf(stderr, "vigil simulate: --brokers is required\n");
        return 2;
    }
    so.start_us = vg_now_us();
    if (c.duration_s > 0)
        so.duration_us = (int64_t)(c.duration_s * 1e6);
    kc = (struct ing_kafka_cfg){.brokers = c.brokers, .props = c.props, .nprops = c.nprops};
    if ((a = vg_arena_new(1 << 16)) == NULL || bench_sim_new(&so, &sim, err, sizeof(err)) < 0 ||
        ing_producer_new(&kc, &prod, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil simulate: %s\n", err);
        goto out;
    }
    cli_install_signals();
    t0 = vg_mono_ns();
    while (!cli_interrupted()) {
        Vigil__TelemetryBatch *b;
        uint8_t *buf;
        size_t len;

        vg_arena_reset(a);
        if (bench_sim_next(sim, a, &b) <= 0)
            break;
        if (realtime) {
            int64_t ahead = (b->events[b->n_events - 1]->ts_us - so.start_us) -
                            (int64_t)((vg_mono_ns() - t0) / 1000);

            if (ahead > 2000) {
                struct timespec ts = {ahead / 1000000, (ahead % 1000000) * 1000};

                nanosleep(&ts, NULL);
            }
        }
        if (bench_sim_pack(b, a, &buf, &len) == 0 &&
            ing_produce(prod, c.topic ? c.topic : "telemetry", b->machine_id, strlen(b->machine_id),
                        buf, len, NULL, 0) == 0) {
            n++;
            ev += b->n_events;
        }
    }
    fprintf(stderr, "vigil simulate: %llu batches, %llu events produced\n", (unsigned long long)n,
            (unsigned long long)ev);
    rc = 0;
out:
    ing_producer_destroy(prod);
    bench_sim_free(sim);
    vg_arena_destroy(a);
    return rc;
}

/* ---- timeline --------------------------------------------------------------------- */

static const char *tl_kind(const Vigil__Event *ev)
{
    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        return "process";
    case VIGIL__EVENT__KIND_PROCESS_EXITED:
        return "exit";
    case VIGIL__EVENT__KIND_FILE:
        return "file";
    case VIGIL__EVENT__KIND_NETWORK:
        return "network";
    case VIGIL__EVENT__KIND_DNS:
        return "dns";
    case VIGIL__EVENT__KIND_REGISTRY:
        return "registry";
    case VIGIL__EVENT__KIND_LOGON:
        return "logon";
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        return "image_load";
    case VIGIL__EVENT__KIND_SOFTWARE:
        return "software";
    case VIGIL__EVENT__KIND_GENERIC:
        return "other";
    default:
        return "?";
    }
}

static void tl_detail(const Vigil__Event *ev, char *buf, size_t n)
{
    const char *img = ev->actor ? ev->actor->image : "";

    switch (ev->kind_case) {
    case VIGIL__EVENT__KIND_PROCESS_CREATED:
        snprintf(buf, n, "%s -> %s", img,
                 ev->process_created->process ? ev->process_created->process->command_line : "");
        break;
    case VIGIL__EVENT__KIND_FILE:
        snprintf(buf, n, "%s op=%d %s", img, ev->file->op, ev->file->path);
        break;
    case VIGIL__EVENT__KIND_NETWORK:
        snprintf(buf, n, "%s %s:%u -> %s:%u %s", img, ev->network->local_ip,
                 ev->network->local_port, ev->network->remote_ip, ev->network->remote_port,
                 ev->network->remote_hostname);
        break;
    case VIGIL__EVENT__KIND_DNS:
        snprintf(buf, n, "%s %s", img, ev->dns->query_name);
        break;
    case VIGIL__EVENT__KIND_REGISTRY:
        snprintf(buf, n, "%s op=%d %s %s=%s", img, ev->registry->op, ev->registry->key,
                 ev->registry->value_name, ev->registry->value_data);
        break;
    case VIGIL__EVENT__KIND_LOGON:
        snprintf(buf, n, "%s %s type=%u from %s", ev->logon->success ? "success" : "failure",
                 ev->logon->account, ev->logon->logon_type, ev->logon->source_ip);
        break;
    case VIGIL__EVENT__KIND_IMAGE_LOAD:
        snprintf(buf, n, "%s loaded %s", img, ev->image_load->path);
        break;
    default:
        snprintf(buf, n, "%s", img);
        break;
    }
}

int cmd_timeline(int argc, char **argv)
{
    const char *data = "./data", *tenant = NULL, *machine = NULL, *type = NULL, *fmt = "table";
    int64_t from = INT64_MIN / 2, to = INT64_MAX / 2;
    long limit = 100;
    bool desc = false, have_cursor = false;
    long long cur_ts = 0;
    unsigned long long cur_seq = 0;
    struct sto_opts so = {0};
    sto_db *db = NULL;
    sto_tl_iter *it = NULL;
    const Vigil__Event *ev;
    char err[256];
    long shown = 0;
    int rc = 1, k;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--desc") == 0) {
            desc = true;
            continue;
        }
        if (v == NULL || strcmp(a, "--help") == 0) {
            printf("usage: vigil timeline --tenant T --machine M [--data DIR] [--from TIME]\n"
                   "       [--to TIME] [--type KIND] [--limit N] [--desc] [--cursor C]\n"
                   "       [--format table|json]\n"
                   "TIME is ISO-8601 UTC (2026-11-29T17:00:00Z) or Unix seconds. Events come\n"
                   "in time order (newest first with --desc); when more remain after --limit,\n"
                   "the last line on stderr is the --cursor that continues from there.\n"
                   "KIND: process exit file network dns registry logon image_load software "
                   "other\n");
            return strcmp(a, "--help") == 0 ? 0 : 2;
        }
        i++;
        if (strcmp(a, "--data") == 0)
            data = v;
        else if (strcmp(a, "--tenant") == 0)
            tenant = v;
        else if (strcmp(a, "--machine") == 0)
            machine = v;
        else if (strcmp(a, "--type") == 0)
            type = v;
        else if (strcmp(a, "--format") == 0)
            fmt = v;
        else if (strcmp(a, "--limit") == 0)
            limit = atol(v);
        else if (strcmp(a, "--cursor") == 0 && sscanf(v, "%lld:%llu", &cur_ts, &cur_seq) == 2)
            have_cursor = true;
        else if ((strcmp(a, "--from") == 0 && vg_parse_time(v, &from) == 0) ||
                 (strcmp(a, "--to") == 0 && vg_parse_time(v, &to) == 0))
            continue;
        else {
            fprintf(stderr, "vigil timeline: bad option %s %s\n", a, v);
            return 2;
        }
    }
    if (tenant == NULL || machine == NULL) {
        fprintf(stderr, "vigil timeline: --tenant and --machine are required\n");
        return 2;
    }
    so.path = data;
    so.read_only = true;
    if (sto_open(&so, &db, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil timeline: %s: %s\n", data, err);
        return 1;
    }
    /* A cursor is the (time, seq) of the last event shown: start from its time and skip up
     * to and including it. */
    if (have_cursor && !desc && cur_ts > from)
        from = cur_ts;
    if (have_cursor && desc && cur_ts < to)
        to = cur_ts;
    if (sto_tl_open(db, vg_machine_key(tenant, machine), from, to, desc, &it) < 0) {
        fprintf(stderr, "vigil timeline: cannot read the timeline\n");
        goto out;
    }
    while ((k = sto_tl_next(it, &ev)) == 1) {
        char ts[32], detail[1024];

        if (type != NULL && strcmp(type, tl_kind(ev)) != 0)
            continue;
        if (have_cursor &&
            (desc ? (ev->ts_us > cur_ts || (ev->ts_us == cur_ts && ev->seq >= cur_seq))
                  : (ev->ts_us < cur_ts || (ev->ts_us == cur_ts && ev->seq <= cur_seq))))
            continue;
        if (shown == limit) {
            fprintf(stderr, "more: --cursor %lld:%llu\n", (long long)cur_ts,
                    (unsigned long long)cur_seq);
            break;
        }
        cur_ts = ev->ts_us;
        cur_seq = ev->seq;
        have_cursor = false; /* from here on, every event is past it */
        tl_detail(ev, detail, sizeof(detail));
        if (strcmp(fmt, "json") == 0) {
            json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "ts", vg_fmt_time(ev->ts_us, ts), "seq",
                                  (json_int_t)ev->seq, "kind", tl_kind(ev), "detail", detail);
            char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

            if (s)
                puts(s);
            free(s);
            json_decref(o);
        } else {
            printf("%s  %8llu  %-10s %s\n", vg_fmt_time(ev->ts_us, ts), (unsigned long long)ev->seq,
                   tl_kind(ev), detail);
        }
        shown++;
    }
    rc = 0;
out:
    if (it)
        sto_tl_close(it);
    sto_close(db);
    return rc;
}

/* ---- alert show ------------------------------------------------------------------- */

static void alert_tree(const Vigil__Alert *a, int parent, int depth)
{
    for (size_t i = 0; i < a->n_process_tree; i++) {
        const Vigil__ProcessNode *p = a->process_tree[i];

        if (p->parent_index != parent)
            continue;
        printf("  %*s%s%s (pid %u) %s%s\n", depth * 2, "", depth ? "└─ " : "", p->image, p->pid,
               p->command_line, p->trigger ? "   <== alert" : "");
        alert_tree(a, (int)i, depth + 1);
    }
}

int cmd_alert(int argc, char **argv)
{
    const char *data = "./data", *id = NULL, *fmt = "text";
    struct sto_opts so = {0};
    sto_db *db = NULL;
    Vigil__Alert *a = NULL;
    char err[256], ts[32];
    int rc = 1;

    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return cli_alert_decode(argv[2]);
    if (argc < 3 || strcmp(argv[1], "show") != 0) {
        printf("usage: vigil alert show ID [--data DIR] [--format text|json|dot]\n"
               "       vigil alert decode FILE|-   (a serialized vigil.Alert, as JSON)\n");
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    id = argv[2];
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data") == 0)
            data = argv[i + 1];
        else if (strcmp(argv[i], "--format") == 0)
            fmt = argv[i + 1];
    }
    so.path = data;
    so.read_only = true;
    if (sto_open(&so, &db, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil alert: %s: %s\n", data, err);
        return 1;
    }
    if (sto_get_alert(db, id, &a) < 0) {
        fprintf(stderr, "vigil alert: no alert %s\n", id);
        goto out;
    }
    if (strcmp(fmt, "json") == 0) {
        char *js = cor_alert_to_json(a);

        puts(js ? js : "{}");
        free(js);
    } else if (strcmp(fmt, "dot") == 0) {
        printf("digraph alert {\n  rankdir=LR;\n  node [shape=box];\n");
        for (size_t i = 0; i < a->n_process_tree; i++) {
            const Vigil__ProcessNode *p = a->process_tree[i];
            const char *base = strrchr(p->image, '\\')  ? strrchr(p->image, '\\') + 1
                               : strrchr(p->image, '/') ? strrchr(p->image, '/') + 1
                                                        : p->image;

            printf("  p%zu [label=\"%s\\npid %u\"%s];\n", i, base, p->pid,
                   p->trigger ? ", color=red" : "");
            if (p->parent_index >= 0)
                printf("  p%d -> p%zu;\n", p->parent_index, i);
        }
        printf("}\n");
    } else {
        printf("%s  [%s, %s]\n", a->title, cor_severity_name(a->severity),
               cor_category_name(a->category));
        printf("id %s  rule %s  tenant %s  machine %s\n", a->id, a->rule_id, a->tenant_id,
               a->machine_id);
        printf("first %s  ", vg_fmt_time(a->first_event_us, ts));
        printf("last %s  events %u\n", vg_fmt_time(a->last_event_us, ts), a->event_count);
        for (size_t i = 0; i < a->n_mitre_techniques; i++)
            printf("%s%s", i ? ", " : "MITRE ", a->mitre_techniques[i]);
        printf("\nevidence:\n");
        for (size_t i = 0; i < a->n_evidence; i++)
            printf("  %s  %s\n", vg_fmt_time(a->evidence[i]->ts_us, ts), a->evidence[i]->summary);
        printf("process tree:\n");
        alert_tree(a, -1, 0);
    }
    rc = 0;
out:
    if (a)
        vigil__alert__free_unpacked(a, NULL);
    sto_close(db);
    return rc;
}

/* ---- incident show ---------------------------------------------------------------- */

int cmd_incident(int argc, char **argv)
{
    const char *data = "./data", *fmt = "text";
    struct sto_opts so = {0};
    sto_db *db = NULL;
    Vigil__Incident *inc = NULL;
    char err[256], ts[32];
    int rc = 1;

    if (argc < 3 || strcmp(argv[1], "show") != 0) {
        printf("usage: vigil incident show ID [--data DIR] [--format text|json|dot]\n"
               "dot renders with Graphviz: vigil incident show ID --format dot | dot -Tsvg\n");
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--data") == 0)
            data = argv[i + 1];
        else if (strcmp(argv[i], "--format") == 0)
            fmt = argv[i + 1];
    }
    so.path = data;
    so.read_only = true;
    if (sto_open(&so, &db, err, sizeof(err)) < 0) {
        fprintf(stderr, "vigil incident: %s: %s\n", data, err);
        return 1;
    }
    if (sto_get_incident(db, argv[2], &inc) < 0) {
        fprintf(stderr, "vigil incident: no incident %s\n", argv[2]);
        goto out;
    }
    if (strcmp(fmt, "json") == 0 || strcmp(fmt, "dot") == 0) {
        bool json = strcmp(fmt, "json") == 0;
        char *s = json ? cor_incident_to_json(inc) : cor_incident_to_dot(inc);

        fputs(s ? s : "", stdout);
        if (json)
            fputc('\n', stdout);
        if (json)
            free(s);
        else
            vg_free(s);
    } else {
        printf("%s  [%s]\nid %s  tenant %s  %zu alerts on %zu machines\n", inc->title,
               cor_severity_name(inc->severity), inc->id, inc->tenant_id, inc->n_alert_ids,
               inc->n_machine_ids);
        printf("first %s  ", vg_fmt_time(inc->first_event_us, ts));
        printf("last %s\n", vg_fmt_time(inc->last_event_us, ts));
        for (size_t i = 0; i < inc->n_machine_ids; i++)
            printf("machine  %s\n", inc->machine_ids[i]);
        for (size_t i = 0; i < inc->n_alert_ids; i++)
            printf("alert    %s\n", inc->alert_ids[i]);
        for (size_t i = 0; i < inc->n_edges; i++)
            printf("edge     %s -[%s]-> %s\n", inc->edges[i]->from, inc->edges[i]->relation,
                   inc->edges[i]->to);
    }
    rc = 0;
out:
    if (inc)
        vigil__incident__free_unpacked(inc, NULL);
    sto_close(db);
    return rc;
}
