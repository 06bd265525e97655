/*
 * bench_report.c - vigil bench's outputs: the human summary with the goals (met or not, by
 * how much, and which stage holds back), the JSON of every figure, and the gnuplot plot.
 *
 * THREAD SAFETY: pure functions of a finished report; any thread.
 */
#include "bench.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_GOAL_EPS      1000000.0
#define BENCH_GOAL_RATIO    0.60
#define BENCH_GOAL_P99_MS   50.0
#define BENCH_GOAL_MACHINES 1000000.0
#define BENCH_GOAL_RSS      (4.0 * 1024 * 1024 * 1024)

static const struct bench_latency *bench_half_load(const struct bench_report *r)
{
    for (size_t i = 0; i < r->nlat; i++)
        if (r->pipeline.events_per_sec > 0 &&
            r->lat[i].offered_eps > 0.4 * r->pipeline.events_per_sec &&
            r->lat[i].offered_eps < 0.6 * r->pipeline.events_per_sec)
            return &r->lat[i];
    return r->nlat > 1 ? &r->lat[1] : NULL;
}

/* The stage with the lowest rate alone, i.e. the one that holds the pipeline back. */
static const struct bench_stage *bench_slowest(const struct bench_report *r)
{
    const struct bench_stage *s = NULL;

    for (size_t i = 0; i < r->nstages; i++)
        if (r->stages[i].events_per_sec > 0 &&
            (s == NULL || r->stages[i].events_per_sec < s->events_per_sec))
            s = &r->stages[i];
    return s;
}

static double bench_e2e(const struct bench_report *r)
{
    return r->kafka_ran ? r->pipeline.events_per_sec : 0;
}

static double bench_latency_p99(const struct bench_report *r)
{
    const struct bench_latency *l = bench_half_load(r);

    return l ? l->p99_ms : -1;
}

void bench_report_print(const struct bench_report *r, FILE *f)
{
    const struct bench_stage *slow = bench_slowest(r);
    const struct bench_latency *half = bench_half_load(r);
    double e2e = bench_e2e(r), mem1m = r->rss_bytes_per_machine * BENCH_GOAL_MACHINES;

    fprintf(f, "\n== vigil bench ==\n");
    fprintf(f, "machine           %s, %d cores\n", r->machine, r->nproc);
    fprintf(f, "command           %s\n", r->command);
    fprintf(f, "rules             %u loaded from %u files (%u skipped, %u correlation rules)\n",
            r->rules_loaded, r->rule_files, r->rules_skipped, r->correlation_rules);
    fprintf(f, "data              %llu events, %llu batches, %u machines, %.1f MiB packed\n",
            (unsigned long long)r->events, (unsigned long long)r->batches, r->machines,
            (double)r->bytes / 1048576.0);
    fprintf(f, "\nthroughput (medians of runs)\n");
    if (r->kafka_ran) {
        fprintf(f, "  end to end, Kafka -> RocksDB   %10.0f events/s  (%.2f us CPU/event)\n",
                r->pipeline.events_per_sec, r->pipeline.cpu_us_per_event);
        fprintf(f, "  consume alone (librdkafka)     %10.0f events/s  (%.2f us CPU/event)\n",
                r->consume.events_per_sec, r->consume.cpu_us_per_event);
        fprintf(f, "  consume + decode alone         %10.0f events/s  (%.2f us CPU/event)\n",
                r->consume_decode.events_per_sec, r->consume_decode.cpu_us_per_event);
    }
    fprintf(f, "  store alone (RocksDB)          %10.0f events/s\n", r->store.events_per_sec);
    fprintf(f, "  in-process, one thread         %10.0f events/s  (decode->correlate->store)\n",
            r->inproc.events_per_sec);
    if (r->ceiling_name != NULL)
        fprintf(f,
                "  ceiling: %s, %.0f events/s; pipeline at %.0f%% of it, %.0f%% of "
                "consume+decode\n",
                r->ceiling_name, r->ceiling_eps, r->ratio_to_ceiling * 100,
                r->ratio_to_consume_decode * 100);
    fprintf(f, "\nstages alone, one thread (us per event, events/s)\n");
    for (size_t i = 0; i < r->nstages; i++)
        fprintf(f, "  %-10s %8.3f us  %12.0f/s\n", r->stages[i].name, r->stages[i].cpu_us_per_event,
                r->stages[i].events_per_sec);
    if (r->nthreads > 0) {
        fprintf(f, "\npipeline threads, CPU per event (first run)\n");
        for (size_t i = 0; i < r->nthreads; i++)
            if (r->threads[i].cpu_us_per_event >= 0.005)
                fprintf(f, "  %-16s %8.3f us\n", r->threads[i].name,
                        r->threads[i].cpu_us_per_event);
    }
    if (r->nlat > 0) {
        fprintf(f, "\nevent-to-alert latency (producer send -> alert durable and emitted)\n");
        for (size_t i = 0; i < r->nlat; i++)
            fprintf(f,
                    "  offered %9.0f/s (took %9.0f/s)  %5llu alerts  p50 %7.1f ms  p99 %7.1f ms  "
                    "p99.9 %7.1f ms\n",
                    r->lat[i].offered_eps, r->lat[i].achieved_eps,
                    (unsigned long long)r->lat[i].samples, r->lat[i].p50_ms, r->lat[i].p99_ms,
                    r->lat[i].p999_ms);
    }
    fprintf(f, "\nstorage           %.1f bytes on disk per event (after compaction)\n",
            r->bytes_per_event);
    fprintf(f,
            "memory            %.0f bytes resident per tracked machine (%u machines, RSS "
            "%.0f MiB, peak %.0f MiB)\n",
            r->rss_bytes_per_machine, r->mem_machines, (double)r->rss_after_bytes / 1048576.0,
            (double)r->rss_peak_bytes / 1048576.0);
    fprintf(f,
            "detection         %llu of %llu injected attack steps found; %llu alerts, %llu on "
            "benign activity\n",
            (unsigned long long)r->truths_found, (unsigned long long)r->truths,
            (unsigned long long)r->alerts_total, (unsigned long long)r->alerts_benign);
    for (size_t i = 0; i < r->nbenign_titles; i++)
        fprintf(f, "                    benign: %llu x %s\n",
                (unsigned long long)r->benign_counts[i], r->benign_titles[i]);
    fprintf(f, "upstream          lost_upstream %llu, dead letters %llu%s\n",
            (unsigned long long)r->lost_upstream, (unsigned long long)r->dead_letters,
            r->lost_upstream == 0 ? " (the broker kept everything)"
                                  : "  ** DATA LOST AT BROKER **");
    if (r->nby_shards > 0 || r->nby_machines > 0) {
        fprintf(f, "scaling          ");
        for (size_t i = 0; i < r->nby_shards; i++)
            fprintf(f, " %u shards %.0f/s;", r->by_shards[i].x, r->by_shards[i].events_per_sec);
        for (size_t i = 0; i < r->nby_machines; i++)
            fprintf(f, " %u machines %.0f/s;", r->by_machines[i].x,
                    r->by_machines[i].events_per_sec);
        fprintf(f, "\n");
    }

    fprintf(f, "\ngoals\n");
    fprintf(f, "  [%s] >= 1,000,000 events/s end to end: %.0f (%.0f%% of the goal)%s%s\n",
            e2e >= BENCH_GOAL_EPS ? "met" : "MISSED", e2e, e2e / BENCH_GOAL_EPS * 100,
            e2e < BENCH_GOAL_EPS && slow ? "; slowest stage alone: " : "",
            e2e < BENCH_GOAL_EPS && slow ? slow->name : "");
    fprintf(f, "  [%s] pipeline >= 60%% of consume+decode: %.0f%%\n",
            r->ratio_to_consume_decode >= BENCH_GOAL_RATIO ? "met" : "MISSED",
            r->ratio_to_consume_decode * 100);
    fprintf(f, "  [%s] p99 event-to-alert < 50 ms at half load: %s%.1f ms\n",
            half && half->samples > 0 && half->p99_ms < BENCH_GOAL_P99_MS ? "met" : "MISSED",
            half && half->samples > 0 ? "" : "(no samples) ", half ? half->p99_ms : 0.0);
    fprintf(f, "  [%s] 1,000,000 machines < 4 GiB resident: %.2f GiB projected (%.0f B/machine)\n",
            r->rss_bytes_per_machine > 0 && mem1m < BENCH_GOAL_RSS ? "met" : "MISSED",
            mem1m / (1024.0 * 1024 * 1024), r->rss_bytes_per_machine);
    if (r->tl_ran) {
        fprintf(f,
                "timeline          %u days x %u machines, %llu events in %llu blocks, %.0f MiB; "
                "page of %.0f: p50 %.2f ms, p99 %.2f ms (reopened), p50 %.2f ms, p99 %.2f ms "
                "(warm); goal 10 ms %s\n",
                r->tl_days, r->tl_machines, (unsigned long long)r->tl_events,
                (unsigned long long)r->tl_blocks, (double)r->tl_disk_bytes / 1048576.0,
                r->tl_page_events, r->tl_page_ms_p50, r->tl_page_ms_p99, r->tl_page_warm_ms_p50,
                r->tl_page_warm_ms_p99, r->tl_page_ms_p99 < 10 ? "met" : "MISSED");
        fprintf(f,
                "replay            read back %.0f events/s; with rules %.0f events/s on %u shard "
                "threads (%.2f us CPU an event), %.0f events/s on one; goal 2,000,000 %s (%.2fx "
                "the goal); medians of %d interleaved runs, on %u threads:",
                r->readback_eps, r->replay_eps, r->replay_threads, r->replay_cpu_us_per_event,
                r->replay1_eps, r->replay_eps >= 2e6 ? "met" : "MISSED", r->replay_eps / 2e6,
                r->replay_nruns, r->replay_threads);
        for (int i = 0; i < r->replay_nruns; i++)
            fprintf(f, " %.0f", r->replay_runs[i]);
        fprintf(f, "\n");
    }
    fprintf(f, "wall time         %.1f s\n", r->wall_s);
}

static json_t *bench_rate_json(const struct bench_rate *r)
{
    json_t *runs = json_array();

    for (int i = 0; i < r->nruns; i++)
        json_array_append_new(runs, json_real(r->runs[i]));
    return json_pack("{s:f,s:f,s:o}", "events_per_second", r->events_per_sec, "cpu_us_per_event",
                     r->cpu_us_per_event, "runs", runs);
}

int bench_report_json(const struct bench_report *r, const char *path)
{
    json_t *j = json_object(), *a;
    int rc;

    json_object_set_new(j, "command", json_string(r->command));
    json_object_set_new(j, "machine", json_pack("{s:s,s:i}", "cpu", r->machine, "nproc", r->nproc));
    json_object_set_new(j, "events_per_second", json_real(bench_e2e(r)));
    json_object_set_new(j, "ceiling_events_per_second", json_real(r->ceiling_eps));
    json_object_set_new(j, "ceiling_stage", json_string(r->ceiling_name ? r->ceiling_name : ""));
    json_object_set_new(j, "ratio_to_ceiling", json_real(r->ratio_to_ceiling));
    json_object_set_new(j, "ratio_to_consume_decode", json_real(r->ratio_to_consume_decode));
    json_object_set_new(j, "latency_p99_ms", json_real(bench_latency_p99(r)));
    json_object_set_new(j, "bytes_per_event", json_real(r->bytes_per_event));
    json_object_set_new(j, "rss_bytes_per_machine", json_real(r->rss_bytes_per_machine));
    json_object_set_new(j, "rules_loaded", json_integer(r->rules_loaded));
    json_object_set_new(j, "rules",
                        json_pack("{s:i,s:i,s:i,s:f}", "files", r->rule_files, "skipped",
                                  r->rules_skipped, "correlation", r->correlation_rules,
                                  "load_seconds", r->rules_load_s));
    json_object_set_new(j, "data",
                        json_pack("{s:I,s:I,s:I,s:i}", "events", (json_int_t)r->events, "batches",
                                  (json_int_t)r->batches, "bytes", (json_int_t)r->bytes, "machines",
                                  r->machines));
    json_object_set_new(j, "pipeline", bench_rate_json(&r->pipeline));
    json_object_set_new(j, "consume", bench_rate_json(&r->consume));
    json_object_set_new(j, "consume_decode", bench_rate_json(&r->consume_decode));
    json_object_set_new(j, "store", bench_rate_json(&r->store));
    json_object_set_new(j, "inproc", bench_rate_json(&r->inproc));
    a = json_array();
    for (size_t i = 0; i < r->nstages; i++)
        json_array_append_new(a, json_pack("{s:s,s:f,s:f}", "stage", r->stages[i].name,
                                           "events_per_second", r->stages[i].events_per_sec,
                                           "cpu_us_per_event", r->stages[i].cpu_us_per_event));
    json_object_set_new(j, "stages", a);
    a = json_array();
    for (size_t i = 0; i < r->nthreads; i++)
        json_array_append_new(a, json_pack("{s:s,s:f}", "thread", r->threads[i].name,
                                           "cpu_us_per_event", r->threads[i].cpu_us_per_event));
    json_object_set_new(j, "threads", a);
    a = json_array();
    for (size_t i = 0; i < r->nlat; i++)
        json_array_append_new(a, json_pack("{s:f,s:f,s:I,s:f,s:f,s:f,s:f,s:I}",
                                           "offered_events_per_second", r->lat[i].offered_eps,
                                           "achieved_events_per_second", r->lat[i].achieved_eps,
                                           "samples", (json_int_t)r->lat[i].samples, "p50_ms",
                                           r->lat[i].p50_ms, "p99_ms", r->lat[i].p99_ms, "p999_ms",
                                           r->lat[i].p999_ms, "max_ms", r->lat[i].max_ms,
                                           "lost_upstream", (json_int_t)r->lat[i].lost_upstream));
    json_object_set_new(j, "latency", a);
    json_object_set_new(j, "storage",
                        json_pack("{s:I,s:f}", "disk_bytes", (json_int_t)r->disk_bytes,
                                  "bytes_per_event", r->bytes_per_event));
    json_object_set_new(
        j, "memory",
        json_pack("{s:i,s:I,s:I,s:I,s:I,s:f,s:f}", "machines", r->mem_machines, "events",
                  (json_int_t)r->mem_events, "rss_base_bytes", (json_int_t)r->rss_base_bytes,
                  "rss_after_bytes", (json_int_t)r->rss_after_bytes, "rss_peak_bytes",
                  (json_int_t)r->rss_peak_bytes, "rss_bytes_per_machine", r->rss_bytes_per_machine,
                  "events_per_second", r->mem_events_per_sec));
    json_object_set_new(j, "detection",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "injected", (json_int_t)r->truths,
                                  "found", (json_int_t)r->truths_found, "alerts",
                                  (json_int_t)r->alerts_total, "alerts_attack",
                                  (json_int_t)r->alerts_attack, "alerts_benign",
                                  (json_int_t)r->alerts_benign));
    json_object_set_new(j, "upstream",
                        json_pack("{s:I,s:I,s:I}", "lost_upstream", (json_int_t)r->lost_upstream,
                                  "dead_letters", (json_int_t)r->dead_letters, "broker_messages",
                                  (json_int_t)r->broker_messages));
    a = json_array();
    for (size_t i = 0; i < r->nby_shards; i++)
        json_array_append_new(a, json_pack("{s:i,s:f}", "shards", r->by_shards[i].x,
                                           "events_per_second", r->by_shards[i].events_per_sec));
    json_object_set_new(j, "scaling_shards", a);
    a = json_array();
    for (size_t i = 0; i < r->nby_machines; i++)
        json_array_append_new(a, json_pack("{s:i,s:f}", "machines", r->by_machines[i].x,
                                           "events_per_second", r->by_machines[i].events_per_sec));
    json_object_set_new(j, "scaling_machines", a);
    if (r->tl_ran) {
        json_object_set_new(j, "timeline_page_ms_p50", json_real(r->tl_page_ms_p50));
        json_object_set_new(j, "timeline_page_ms_p99", json_real(r->tl_page_ms_p99));
        json_object_set_new(
            j, "timeline",
            json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:f,s:i,s:f,s:f,s:f}", "days", r->tl_days,
                      "machines", r->tl_machines, "events", (json_int_t)r->tl_events,
                      "paged_machine_events", (json_int_t)r->tl_busy_events, "blocks",
                      (json_int_t)r->tl_blocks, "disk_bytes", (json_int_t)r->tl_disk_bytes,
                      "build_seconds", r->tl_build_s, "pages", r->tl_pages, "page_events",
                      r->tl_page_events, "warm_page_ms_p50", r->tl_page_warm_ms_p50,
                      "warm_page_ms_p99", r->tl_page_warm_ms_p99));
        json_object_set_new(j, "replay_events_per_second", json_real(r->replay_eps));
        json_object_set_new(j, "readback_events_per_second", json_real(r->readback_eps));
        json_object_set_new(j, "replay_cpu_us_per_event", json_real(r->replay_cpu_us_per_event));
        json_object_set_new(j, "replay_threads", json_integer(r->replay_threads));
        json_object_set_new(j, "replay_one_thread_events_per_second", json_real(r->replay1_eps));
        {
            json_t *ra = json_array(), *r1 = json_array(), *rb = json_array();

            for (int i = 0; i < r->replay_nruns; i++) {
                json_array_append_new(ra, json_real(r->replay_runs[i]));
                json_array_append_new(r1, json_real(r->replay1_runs[i]));
                json_array_append_new(rb, json_real(r->readback_runs[i]));
            }
            json_object_set_new(j, "replay_runs", ra);
            json_object_set_new(j, "replay_one_thread_runs", r1);
            json_object_set_new(j, "readback_runs", rb);
        }
    }
    json_object_set_new(j, "wall_seconds", json_real(r->wall_s));
    rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    return rc == 0 ? 0 : -VG_EIO;
}

/* Writes the data files and a gnuplot script, then runs gnuplot for bench.png. */
int bench_report_plot(const struct bench_report *r, const char *dir, char *err, size_t errlen)
{
    char path[1100], cmd[2400];
    FILE *f;

    if (strchr(dir, '\'') != NULL) {
        snprintf(err, errlen, "bad directory name");
        return -VG_EINVAL;
    }
    snprintf(path, sizeof(path), "%s/throughput.dat", dir);
    if ((f = fopen(path, "w")) == NULL)
        goto out_io;
    fprintf(f, "# label events_per_second\n");
    fprintf(f,
            "\"consume\" %.0f\n\"consume+decode\" %.0f\n\"store\" %.0f\n\"in-process\" %.0f\n"
            "\"pipeline\" %.0f\n",
            r->consume.events_per_sec, r->consume_decode.events_per_sec, r->store.events_per_sec,
            r->inproc.events_per_sec, r->pipeline.events_per_sec);
    for (size_t i = 0; i < r->nby_shards; i++)
        fprintf(f, "\"%u shards\" %.0f\n", r->by_shards[i].x, r->by_shards[i].events_per_sec);
    fclose(f);
    snprintf(path, sizeof(path), "%s/latency.dat", dir);
    if ((f = fopen(path, "w")) == NULL)
        goto out_io;
    fprintf(f, "# offered p50_ms p99_ms p999_ms\n");
    for (size_t i = 0; i < r->nlat; i++)
        fprintf(f, "%.0f %.3f %.3f %.3f\n", r->lat[i].offered_eps, r->lat[i].p50_ms,
                r->lat[i].p99_ms, r->lat[i].p999_ms);
    fclose(f);
    snprintf(path, sizeof(path), "%s/plot.gp", dir);
    if ((f = fopen(path, "w")) == NULL)
        goto out_io;
    fprintf(f, "set terminal pngcairo size 1200,500 noenhanced\n"
               "set output 'bench.png'\n"
               "set multiplot layout 1,2 title 'vigil bench'\n"
               "set title 'throughput (events/s)'\n"
               "set style fill solid 0.6\nset boxwidth 0.7\nset xtics rotate by -30\n"
               "set yrange [0:*]\nset grid ytics\n"
               "plot 'throughput.dat' using 0:2:xtic(1) with boxes notitle\n"
               "set title 'event-to-alert latency'\nset xtics norotate\n"
               "set xlabel 'offered load (events/s)'\nset ylabel 'ms'\n"
               "set logscale y\nset yrange [*:*]\n"
               "plot 'latency.dat' using 1:2 with linespoints title 'p50', "
               "'' using 1:3 with linespoints title 'p99', "
               "'' using 1:4 with linespoints title 'p99.9'\n"
               "unset multiplot\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "cd '%s' && gnuplot plot.gp 2>gnuplot.log", dir);
    if (system(cmd) != 0) {
        snprintf(err, errlen, "gnuplot failed (see %s/gnuplot.log)", dir);
        return -VG_EIO;
    }
    return 0;
out_io:
    snprintf(err, errlen, "cannot write %s", path);
    return -VG_EIO;
}
