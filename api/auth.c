/*
 * auth.c - API tokens: the token file, SHA-256 hashes, constant-time checks, and making
 * new tokens.
 *
 * Token file: one token a line, `tenant role sha256hex [name]`. Only the hash of a token
 * is ever stored; the token itself is shown once when it is made. A token is 32 random
 * bytes, so a plain (unsalted) SHA-256 cannot be reversed by guessing.
 *
 * THREAD SAFETY: an api_tokens is immutable once loaded; api_tokens_check may run on any
 * number of threads at once. The other functions are reentrant.
 */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

struct api_tokens {
    struct api_token *v;
    size_t n, cap;
};

static bool api_word_ok(const char *s, size_t max);
static int api_hex_decode(const char *hex, uint8_t out[32]);
static int api_sha256(const void *p, size_t n, uint8_t out[32]);
static void api_hex(const uint8_t *p, size_t n, char *out);
static int api_tokens_parse_line(api_tokens *t, char *line, const char **why);

/* ---- roles ------------------------------------------------------------------------ */

const char *api_role_name(enum api_role r)
{
    return r == API_ROLE_ADMIN ? "admin" : "reader";
}

int api_role_parse(const char *s, enum api_role *r)
{
    if (strcmp(s, "reader") == 0)
        *r = API_ROLE_READER;
    else if (strcmp(s, "admin") == 0)
        *r = API_ROLE_ADMIN;
    else
        return -VG_EINVAL;
    return 0;
}

/* ---- the token set ---------------------------------------------------------------- */

api_tokens *api_tokens_new(void)
{
    return vg_calloc(1, sizeof(api_tokens));
}

void api_tokens_destroy(api_tokens *t)
{
    if (t == NULL)
        return;
    /* The hashes are not secrets, but there is no reason to leave them in freed memory. */
    if (t->v)
        OPENSSL_cleanse(t->v, t->cap * sizeof(*t->v));
    vg_free(t->v);
    vg_free(t);
}

size_t api_tokens_count(const api_tokens *t)
{
    return t->n;
}

int api_tokens_add(api_tokens *t, const char *tenant, enum api_role role, const char *sha256hex,
                   const char *name)
{
    struct api_token *e;

    if (!api_word_ok(tenant, API_TENANT_MAX) || (name && *name && !api_word_ok(name, API_NAME_MAX)))
        return -VG_EINVAL;
    if (role != API_ROLE_READER && role != API_ROLE_ADMIN)
        return -VG_EINVAL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct api_token *v = vg_realloc(t->v, cap * sizeof(*v));

        if (v == NULL)
            return -VG_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    e = &t->v[t->n];
    memset(e, 0, sizeof(*e));
    if (api_hex_decode(sha256hex, e->hash) < 0)
        return -VG_EINVAL;
    snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
    e->role = role;
    t->n++;
    return 0;
}

int api_tokens_load(const char *path, api_tokens **out, unsigned *bad, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    api_tokens *t;
    char line[512];
    unsigned lineno = 0, nbad = 0;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -VG_EIO;
    }
    t = api_tokens_new();
    if (t == NULL) {
        rc = -VG_ENOMEM;
        goto out_close;
    }
    while (fgets(line, sizeof(line), f)) {
        const char *why = NULL;
        size_t len = strlen(line);

        lineno++;
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            int c;

            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            why = "line too long";
        } else if ((rc = api_tokens_parse_line(t, line, &why)) == -VG_ENOMEM) {
            goto out_free;
        }
        rc = 0;
        if (why) {
            vg_log(VG_LOG_WARN, "api", "%s:%u: token line skipped: %s", path, lineno, why);
            nbad++;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -VG_EIO;
        goto out_free;
    }
    if (bad)
        *bad = nbad;
    *out = t;
    t = NULL;
out_free:
    api_tokens_destroy(t);
out_close:
    fclose(f);
    return rc;
}

/* One line: sets *why for a line that is not a token (and is not blank or a comment). */
static int api_tokens_parse_line(api_tokens *t, char *line, const char **why)
{
    char *save = NULL, *tenant, *role, *hash, *name;
    enum api_role r;
    int rc;

    line[strcspn(line, "\r\n")] = '\0';
    tenant = strtok_r(line, " \t", &save);
    if (tenant == NULL || tenant[0] == '#')
        return 0;
    role = strtok_r(NULL, " \t", &save);
    hash = strtok_r(NULL, " \t", &save);
    name = strtok_r(NULL, " \t", &save);
    if (role == NULL || hash == NULL) {
        *why = "expected: tenant role sha256hex [name]";
        return 0;
    }
    if (strtok_r(NULL, " \t", &save) != NULL) {
        *why = "extra fields after the name";
        return 0;
    }
    if (api_role_parse(role, &r) < 0) {
        *why = "role is neither reader nor admin";
        return 0;
    }
    rc = api_tokens_add(t, tenant, r, hash, name);
    if (rc == -VG_EINVAL)
        *why = "bad tenant, name or hash (64 hex digits)";
    return rc == -VG_ENOMEM ? rc : 0;
}

const struct api_token *api_tokens_check(const api_tokens *t, const char *token, size_t len)
{
    const struct api_token *found = NULL;
    uint8_t h[32];

    if (t == NULL || token == NULL || len == 0 || api_sha256(token, len, h) < 0)
        return NULL;
    /* Every entry is compared, whether or not an earlier one matched, so the time taken
     * does not say which entry (or whether any) matched. */
    for (size_t i = 0; i < t->n; i++) {
        bool eq = CRYPTO_memcmp(h, t->v[i].hash, sizeof(h)) == 0;

        if (eq && found == NULL)
            found = &t->v[i];
    }
    return found;
}

/* ---- hashing and new tokens ------------------------------------------------------- */

int api_token_hash(const char *token, size_t len, char hex[65])
{
    uint8_t h[32];

    if (api_sha256(token, len, h) < 0)
        return -VG_EIO;
    api_hex(h, sizeof(h), hex);
    return 0;
}

int api_token_generate(const char *tenant, enum api_role role, const char *name, char *token,
                       size_t cap, char *line, size_t linecap)
{
    uint8_t rnd[32];
    char hash[65];
    size_t got = 0;

    if (!api_word_ok(tenant, API_TENANT_MAX) || (name && *name && !api_word_ok(name, API_NAME_MAX)))
        return -VG_EINVAL;
    if (cap < 4 + 2 * sizeof(rnd) + 1 || (role != API_ROLE_READER && role != API_ROLE_ADMIN))
        return -VG_EINVAL;
    while (got < sizeof(rnd)) {
        ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -VG_EIO;
        got += (size_t)n;
    }
    memcpy(token, "vgt_", 4);
    api_hex(rnd, sizeof(rnd), token + 4);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    if (api_token_hash(token, strlen(token), hash) < 0)
        return -VG_EIO;
    if (line != NULL &&
        (size_t)snprintf(line, linecap, "%s %s %s%s%s", tenant, api_role_name(role), hash,
                         name && *name ? " " : "", name ? name : "") >= linecap)
        return -VG_EINVAL;
    return 0;
}

int api_token_add(const char *path, const char *tenant, enum api_role role, const char *name,
                  char *token, size_t cap, char *err, size_t errlen)
{
    char line[API_TENANT_MAX + API_NAME_MAX + 96];
    size_t len;
    int fd, rc;

    rc = api_token_generate(tenant, role, name, token, cap, line, sizeof(line) - 1);
    if (rc < 0) {
        snprintf(err, errlen, "%s",
                 rc == -VG_EINVAL ? "bad tenant or name (no spaces)" : "no randomness or hash");
        return rc;
    }
    len = strlen(line);
    line[len++] = '\n';
    /* O_APPEND: two concurrent `vigil token add` runs each append whole lines. */
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out_wipe;
    }
    if (write(fd, line, len) != (ssize_t)len || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        goto out_wipe;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out_wipe;
    }
    return 0;
out_wipe:
    /* The caller must not hand out a token that was never recorded. */
    OPENSSL_cleanse(token, cap);
    return -VG_EIO;
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Non-empty, at most max bytes, no whitespace or control characters (the file is split on
 * whitespace, and names end up in logs). */
static bool api_word_ok(const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL || *s == '\0')
        return false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];

        if (c <= ' ' || c == 0x7f || n >= max)
            return false;
    }
    return true;
}

static int api_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int api_hex_decode(const char *hex, uint8_t out[32])
{
    if (hex == NULL || strlen(hex) != 64)
        return -VG_EINVAL;
    for (int i = 0; i < 32; i++) {
        int hi = api_hexval(hex[2 * i]), lo = api_hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -VG_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void api_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int api_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int len = 0;

    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return -VG_EIO;
    return 0;
}
