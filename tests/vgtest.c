#include "vgtest.h"

#include "vg.h"

#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *vgt_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p;

    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (asprintf(&p, "%s/vigil-%s-XXXXXX", base, tag) < 0)
        return NULL;
    if (mkdtemp(p) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

static int vgt_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void vgt_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, vgt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *vgt_shared(const char *rel)
{
    char *p;

    if (asprintf(&p, "%s/data/%s", VG_SHARED_DIR, rel) < 0)
        return NULL;
    return p;
}

char *vgt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else if (buf != NULL) {
            buf[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* ---- child processes (whole-binary tests) --------------------------------------- */

void vgt_write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* Any message packed into a buffer of exactly its packed size. */
static uint8_t *vgt_pack_msg(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf;

    *len = protobuf_c_message_get_packed_size(m);
    buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

uint8_t *vgt_pack_batch(const Vigil__TelemetryBatch *b, size_t *len)
{
    return vgt_pack_msg(&b->base, len);
}

uint8_t *vgt_pack_event(const Vigil__Event *ev, size_t *len)
{
    return vgt_pack_msg(&ev->base, len);
}

pid_t vgt_spawn(const char *log, const char *const *argv)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd < 0 || nul < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    return pid;
}

/* Signals the process and reaps it, SIGKILL after timeout_s. Returns its wait status. */
int vgt_stop_proc(pid_t *pid, int sig, int timeout_s)
{
    uint64_t t0 = vg_mono_ns();
    int status = -1;

    if (*pid <= 0)
        return 0;
    kill(*pid, sig);
    for (;;) {
        pid_t r = waitpid(*pid, &status, WNOHANG);

        if (r == *pid || (r < 0 && errno == ECHILD))
            break;
        if (vg_mono_ns() - t0 > (uint64_t)timeout_s * 1000000000u) {
            print_error("pid %d did not exit after signal %d: SIGKILL\n", (int)*pid, sig);
            kill(*pid, SIGKILL);
            waitpid(*pid, &status, 0);
            status = -1;
            break;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL); /* poll interval */
    }
    *pid = 0;
    return status;
}

/* Fails if the child exited on its own. */
void vgt_check_alive(pid_t pid, const char *what)
{
    int status;

    if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
        fail_msg("%s (pid %d) exited by itself: status %d", what, (int)pid, status);
}

bool vgt_file_has(const char *path, const char *needle)
{
    char *s = vgt_read_file(path, NULL);
    bool found = s != NULL && strstr(s, needle) != NULL;

    free(s);
    return found;
}

double vgt_elapsed_s(uint64_t t0)
{
    return (double)(vg_mono_ns() - t0) / 1e9;
}

/* ---- ledger ----------------------------------------------------------------------- */

void vgt_ledger_init(struct vgt_ledger *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(vg_u64map_init(&l->machines, 256), 0);
}

void vgt_ledger_add(struct vgt_ledger *l, const Vigil__TelemetryBatch *b)
{
    uint64_t mkey = vg_machine_key(b->tenant_id, b->machine_id);
    struct vgt_ledger_machine *m = vg_u64map_get(&l->machines, mkey);

    if (m == NULL) {
        m = calloc(1, sizeof(*m));
        assert_non_null(m);
        m->mkey = mkey;
        snprintf(m->id, sizeof(m->id), "%s", b->machine_id);
        assert_int_equal(vg_u64map_put(&l->machines, mkey, m), 0);
    }
    for (size_t i = 0; i < b->n_events; i++) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->seq = realloc(m->seq, m->cap * sizeof(*m->seq));
            assert_non_null(m->seq);
        }
        m->seq[m->n++] = b->events[i]->seq;
    }
    l->events += b->n_events;
}

static int vgt_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

void vgt_ledger_check(const struct vgt_ledger *l, sto_db *db, const char *what)
{
    const char *pre = what ? what : "", *sep = what ? ": " : "";
    size_t pos = 0;
    uint64_t k, total = 0;
    void *v;

    while (vg_u64map_next(&l->machines, &pos, &k, &v)) {
        const struct vgt_ledger_machine *m = v;
        uint64_t *got = malloc((m->n + 1) * sizeof(*got)),
                 *want = malloc((m->n + 1) * sizeof(*want));
        const Vigil__Event *ev;
        sto_tl_iter *it;
        size_t n = 0;
        int rc;

        assert_non_null(got);
        assert_non_null(want);
        assert_int_equal(sto_tl_open(db, m->mkey, 0, INT64_MAX, false, &it), 0);
        while ((rc = sto_tl_next(it, &ev)) == 1) {
            if (n == m->n)
                fail_msg("%s%s%s: more events stored than the %zu produced", pre, sep, m->id, m->n);
            got[n++] = ev->seq;
        }
        sto_tl_close(it);
        assert_int_equal(rc, 0);
        if (n != m->n)
            fail_msg("%s%s%s: %zu events stored, %zu produced", pre, sep, m->id, n, m->n);
        memcpy(want, m->seq, n * sizeof(*want));
        qsort(got, n, sizeof(*got), vgt_cmp_u64);
        qsort(want, n, sizeof(*want), vgt_cmp_u64);
        for (size_t i = 0; i < n; i++)
            if (got[i] != want[i] || (i > 0 && got[i] == got[i - 1]))
                fail_msg("%s%s%s: seq %llu stored where %llu was produced", pre, sep, m->id,
                         (unsigned long long)got[i], (unsigned long long)want[i]);
        total += n;
        free(got);
        free(want);
    }
    assert_int_equal(total, l->events);
    assert_int_equal(sto_corrupt_count(db), 0);
}

void vgt_ledger_free(struct vgt_ledger *l)
{
    size_t pos = 0;
    uint64_t k;
    void *v;

    while (l->machines.keys != NULL && vg_u64map_next(&l->machines, &pos, &k, &v)) {
        free(((struct vgt_ledger_machine *)v)->seq);
        free(v);
    }
    vg_u64map_free(&l->machines);
    memset(l, 0, sizeof(*l));
}

/* ---- a shard over rules ----------------------------------------------------------- */

static void vgt_release_nothing(void *ctx, struct cor_in *in)
{
    (void)ctx;
    (void)in;
}

struct vgt_rules_shard *vgt_rules_shard_new(const char *tag, const char *const *yaml, size_t n)
{
    struct vgt_rules_shard *f = calloc(1, sizeof(*f));
    struct cor_shard_cfg cfg = {.nshards = 1, .release = vgt_release_nothing};
    struct cor_load_summary sum;
    const char *dirs[1];
    char name[32], err[256] = "";

    assert_non_null(f);
    f->dir = vgt_tmpdir(tag);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "r%zu.yml", i);
        vgt_write_file(f->dir, name, yaml[i]);
    }
    dirs[0] = f->dir;
    if (cor_ruleset_load(dirs, 1, &f->rs, &sum, err, sizeof(err)) != 0)
        fail_msg("rules: %s", err);
    assert_int_equal(sum.loaded, n);
    cfg.rules = f->rs;
    assert_int_equal(cor_shard_new(&cfg, &f->s), 0);
    return f;
}

void vgt_shard_process_event(cor_shard *s, Vigil__Event *ev)
{
    Vigil__TelemetryBatch b = VIGIL__TELEMETRY_BATCH__INIT;
    Vigil__Event *evs[1] = {ev};
    struct cor_in in = {0};

    b.tenant_id = "t";
    b.machine_id = "m";
    b.os = VIGIL__OS__OS_WINDOWS;
    b.n_events = 1;
    b.events = evs;
    in.batch = &b;
    in.mkey = vg_machine_key("t", "m");
    in.partition = -1;
    cor_shard_process(s, &in);
}

void vgt_rules_shard_free(struct vgt_rules_shard *f)
{
    if (f == NULL)
        return;
    cor_shard_destroy(f->s);
    cor_ruleset_unref(f->rs);
    if (f->dir != NULL) {
        vgt_rmtree(f->dir);
        free(f->dir);
    }
    free(f);
}

void vgt_on_match(void *ctx, const struct cor_rule_info *ri)
{
    struct vgt_matches *m = ctx;

    m->h = vg_hash64(ri->id, strlen(ri->id), m->h);
    m->n++;
}
