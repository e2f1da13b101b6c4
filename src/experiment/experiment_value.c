/* Parsing one scalar of the experiment file into a typed, canonical value.
 * Canonical text is what cell names, duplicate checks, written configs and
 * hashes use, so `1.0` and `1` or `jsd(0.10)` and `jsd(0.1)` are the same. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "experiment_internal.h"
#include "gkd/divergence.h"
#include "gkd/error.h"
#include "gkd/parse.h"

#define MAX_STRING 1024
#define MAX_PATH 4096

/* A copy of s owned by e (freed with it). */
char *exp_strdup(gkd_experiment *e, const char *s) {
    if (e->num_allocs == e->cap_allocs) {
        size_t cap = e->cap_allocs ? 2 * e->cap_allocs : 64;
        void **a = realloc(e->allocs, cap * sizeof *a);
        if (!a) return NULL;
        e->allocs = a;
        e->cap_allocs = cap;
    }
    char *d = strdup(s);
    if (d) e->allocs[e->num_allocs++] = d;
    return d;
}

/* A value quoted for a one-line message: control characters shown as '?',
 * long values shortened. */
static const char *msgval(char *buf, size_t cap, const char *s) {
    size_t n = 0, lim = cap - 4 < 48 ? cap - 4 : 48;
    for (; s[n] && n < lim; n++) buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s[n]) { memcpy(buf + n, "...", 3); n += 3; }
    buf[n] = '\0';
    return buf;
}

void exp_format_double(char *buf, size_t cap, double v) {
    if (v == 0) v = 0; /* -0 -> 0 */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int parse_int(const exp_key *k, const char *s, long min, long max, long *out) {
    char q[64];
    if (!*s) return gkd_error(GKD_EINVAL, "%s: expected an integer, got an empty value", k->path);
    if (gkd_parse_long(out, s, min, max, k->path) == 0) return 0;
    const char *p = s + (*s == '-' || *s == '+');
    int digits = *p != '\0';
    for (; *p; p++) digits &= *p >= '0' && *p <= '9';
    if (!digits) return gkd_error(GKD_EINVAL, "%s: expected an integer, got '%s'", k->path, msgval(q, sizeof q, s));
    return gkd_error(GKD_EINVAL, "%s: %s is out of range [%ld, %ld]", k->path, msgval(q, sizeof q, s), min, max);
}

static int parse_number(const exp_key *k, const char *s, double *out) {
    char q[64], range[96];
    if (!*s) return gkd_error(GKD_EINVAL, "%s: expected a number, got an empty value", k->path);
    const gkd_setting_range r = exp_key_range(k);
    gkd_setting_range_text(&r, range, sizeof range);
    double v;
    if (gkd_parse_double(&v, s, -HUGE_VAL, HUGE_VAL, k->path) != 0) {
        /* Finite-looking but overflowing input is out of range, not a type error. */
        char *end;
        (void)strtod(s, &end);
        if (*end == '\0' && !isnan(strtod(s, NULL)) && strncasecmp(s + (*s == '-' || *s == '+'), "inf", 3))
            return gkd_error(GKD_EINVAL, "%s: %s is out of range %s", k->path, msgval(q, sizeof q, s), range);
        return gkd_error(GKD_EINVAL, "%s: expected a number, got '%s'", k->path, msgval(q, sizeof q, s));
    }
    if (!gkd_setting_range_holds(&r, v))
        return gkd_error(GKD_EINVAL, "%s: %s is out of range %s", k->path, msgval(q, sizeof q, s), range);
    *out = v;
    return 0;
}

static int parse_choice(const exp_key *k, const char *s, long *out) {
    const char *cands[8];
    char words[8][32], q[64];
    int n = 0;
    for (const char *p = k->choices; *p && n < 8;) {
        size_t len = strcspn(p, "|");
        if (len >= sizeof words[0]) len = sizeof words[0] - 1;
        memcpy(words[n], p, len);
        words[n][len] = '\0';
        cands[n] = words[n];
        if (!strcmp(s, words[n])) { *out = n; return 0; }
        n++;
        p += strcspn(p, "|");
        if (*p) p++;
    }
    const char *hint = exp_suggest(s, cands, n);
    if (hint)
        return gkd_error(GKD_EINVAL, "%s: expected one of %s, got '%s' (did you mean '%s'?)", k->path, k->choices,
                         msgval(q, sizeof q, s), hint);
    return gkd_error(GKD_EINVAL, "%s: expected one of %s, got '%s'", k->path, k->choices, msgval(q, sizeof q, s));
}

/* Divergence names are validated by the divergence module's parser; the
 * canonical spelling is its formatter's. */
static int parse_divergence(const exp_key *k, const char *s, char *canon, size_t cap) {
    gkd_divergence d;
    if (gkd_divergence_parse(&d, s) != 0) {
        char msg[512];
        const char *m = gkd_last_error();
        if (!strncmp(m, "divergence: ", 12)) m += 12;
        snprintf(msg, sizeof msg, "%s", m);
        return gkd_error(GKD_EINVAL, "%s: %s", k->path, msg);
    }
    gkd_divergence_format(&d, canon, cap);
    return 0;
}

static int valid_time(const char *s) {
    const char *p = s;
    const char *dash = strchr(s, '-');
    if (dash) {
        if (dash == s) return 0;
        for (; p < dash; p++)
            if (*p < '0' || *p > '9') return 0;
        p = dash + 1;
    }
    int groups = 0;
    while (1) {
        int digits = 0;
        while (*p >= '0' && *p <= '9') { p++; digits++; }
        if (digits == 0 || digits > 4) return 0;
        groups++;
        if (*p == ':') { p++; continue; }
        break;
    }
    return *p == '\0' && groups <= 3;
}

static int valid_mem(const char *s) {
    if (!*s) return 1;
    const char *p = s;
    while (*p >= '0' && *p <= '9') p++;
    if (p == s || p - s > 12) return 0;
    if (*p && strchr("KMGT", *p)) p++;
    return *p == '\0';
}

static int resolve_path(gkd_experiment *e, const exp_key *k, const char *s, exp_value *out) {
    char q[64];
    if (!*s) return gkd_error(GKD_EINVAL, "%s: expected a path, got an empty value", k->path);
    size_t n = strlen(s), nd = strlen(e->dir);
    if (n + nd + 2 > MAX_PATH) return gkd_error(GKD_EINVAL, "%s: path '%s' is too long", k->path, msgval(q, sizeof q, s));
    char buf[MAX_PATH];
    if (s[0] == '/') {
        memcpy(buf, s, n + 1);
    } else {
        memcpy(buf, e->dir, nd);
        buf[nd] = '/';
        memcpy(buf + nd + 1, s, n + 1);
    }
    out->text = exp_strdup(e, buf);
    return out->text ? 0 : gkd_error(GKD_ENOMEM, "out of memory");
}

int exp_parse_value(gkd_experiment *e, const exp_key *k, const char *s, exp_value *out) {
    char canon[128], q[64];
    memset(out, 0, sizeof *out);
    out->raw = exp_strdup(e, s);
    if (!out->raw) return gkd_error(GKD_ENOMEM, "out of memory");
    size_t len = strlen(s);
    int rc = 0;
    switch (k->kind) {
    case K_INT:
        if ((rc = parse_int(k, s, (long)k->min, (long)k->max, &out->l))) return rc;
        snprintf(canon, sizeof canon, "%ld", out->l);
        break;
    case K_U64:
    case K_SEEDS:
        if ((rc = parse_int(k, s, 0, LONG_MAX, &out->l))) return rc;
        snprintf(canon, sizeof canon, "%ld", out->l);
        break;
    case K_DOUBLE:
        if ((rc = parse_number(k, s, &out->d))) return rc;
        exp_format_double(canon, sizeof canon, out->d);
        break;
    case K_BOOL: {
        static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
        static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
        int found = 0;
        for (int i = 0; i < 9 && !found; i++) {
            if (!strcmp(s, yes[i])) { out->l = 1; found = 1; }
            else if (!strcmp(s, no[i])) { out->l = 0; found = 1; }
        }
        if (!found) return gkd_error(GKD_EINVAL, "%s: expected true or false, got '%s'", k->path, msgval(q, sizeof q, s));
        snprintf(canon, sizeof canon, "%s", out->l ? "true" : "false");
        break;
    }
    case K_ENUM:
    case K_ENUM_STR:
        if ((rc = parse_choice(k, s, &out->l))) return rc;
        snprintf(canon, sizeof canon, "%s", s);
        break;
    case K_DIV:
        if ((rc = parse_divergence(k, s, canon, sizeof canon))) return rc;
        break;
    case K_NAME:
        if (!*s) return gkd_error(GKD_EINVAL, "%s: expected a name, got an empty value", k->path);
        if (len > 100) return gkd_error(GKD_EINVAL, "%s: longer than 100 characters", k->path);
        for (const char *p = s; *p; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  *p == '_' || *p == '.' || *p == '-'))
                return gkd_error(GKD_EINVAL, "%s: '%s' must match [A-Za-z0-9_.-]+ (it is used as a directory name)",
                                 k->path, msgval(q, sizeof q, s));
        if (!strcmp(s, ".") || !strcmp(s, ".."))
            return gkd_error(GKD_EINVAL, "%s: '%s' cannot be used as a directory name", k->path, s);
        out->text = out->raw;
        return 0;
    case K_STR:
        if (len > MAX_STRING) return gkd_error(GKD_EINVAL, "%s: longer than %d characters", k->path, MAX_STRING);
        if (!strcmp(k->path, "task.alphabet") && (len == 0 || len > 256))
            return gkd_error(GKD_EINVAL, "%s: expected 1..256 characters, got %zu", k->path, len);
        if (!strcmp(k->path, "slurm.partition"))
            for (const char *p = s; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '.' || *p == ',' || *p == '-'))
                    return gkd_error(GKD_EINVAL, "%s: '%s' is not a partition name ([A-Za-z0-9_.,-]*)", k->path,
                                     msgval(q, sizeof q, s));
        out->text = out->raw;
        return 0;
    case K_PATH:
        return resolve_path(e, k, s, out);
    case K_INIT:
        if (!strcmp(s, "sft")) out->l = GKD_INIT_SFT;
        else if (!strcmp(s, "random")) out->l = GKD_INIT_RANDOM;
        else {
            /* A bare word is far more likely a misspelled mode than a checkpoint. */
            if (!strchr(s, '/') && !strchr(s, '.')) {
                static const char *const modes[] = {"sft", "random"};
                const char *hint = exp_suggest(s, modes, 2);
                if (hint)
                    return gkd_error(GKD_EINVAL, "%s: expected sft, random or a checkpoint path, got '%s' (did you mean '%s'?)",
                                     k->path, msgval(q, sizeof q, s), hint);
                return gkd_error(GKD_EINVAL,
                                 "%s: expected sft, random or a checkpoint path (containing '/' or '.'), got '%s'",
                                 k->path, msgval(q, sizeof q, s));
            }
            out->l = GKD_INIT_CHECKPOINT;
            return resolve_path(e, k, s, out);
        }
        out->text = out->raw;
        return 0;
    case K_TIME:
        if (!valid_time(s))
            return gkd_error(GKD_EINVAL, "%s: expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got '%s'",
                             k->path, msgval(q, sizeof q, s));
        out->text = out->raw;
        return 0;
    case K_VARIANTS: /* names are checked by the variants parser */
    case K_LABELS:   /* and labels by theirs */
        out->text = out->raw;
        return 0;
    case K_MEM:
        if (!valid_mem(s))
            return gkd_error(GKD_EINVAL, "%s: expected a size like 4G (digits with optional K|M|G|T), got '%s'",
                             k->path, msgval(q, sizeof q, s));
        out->text = out->raw;
        return 0;
    }
    out->text = exp_strdup(e, canon);
    return out->text ? 0 : gkd_error(GKD_ENOMEM, "out of memory");
}
