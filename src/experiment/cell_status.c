/* Cell markers (running / done / failed) and the grid status read from a
 * results tree; see include/gkd/cell_status.h and docs/slurm.md. */
#include "gkd/cell_status.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/parse.h"

static const char *const state_names[GKD_CELL_NSTATES] = {"pending", "running", "failed", "stale",
                                                          "done"};

const char *gkd_cell_state_name(gkd_cell_state s) {
    return (s >= 0 && s < GKD_CELL_NSTATES) ? state_names[s] : "?";
}

static int join_path(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return gkd_error(GKD_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}


static void job_id(char *out, size_t cap) {
    const char *array = getenv("SLURM_ARRAY_JOB_ID"), *task = getenv("SLURM_ARRAY_TASK_ID");
    const char *job = getenv("SLURM_JOB_ID");
    if (array && task) snprintf(out, cap, "%s_%s", array, task);
    else if (job) snprintf(out, cap, "%s", job);
    else snprintf(out, cap, "local");
}

static void host_name(char *out, size_t cap) {
    if (gethostname(out, cap) != 0) snprintf(out, cap, "unknown");
    out[cap - 1] = '\0';
}

static int remove_marker(const char *cell_dir, const char *name) {
    char path[4096];
    int rc = join_path(path, sizeof path, cell_dir, name);
    if (rc) return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return gkd_error(GKD_EIO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void utc_now(char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int gkd_cell_mark_running(const char *cell_dir) {
    char path[4096], host[256], job[128], when[32], text[1024];
    int rc = remove_marker(cell_dir, "failed");
    if (rc) return rc;
    if ((rc = join_path(path, sizeof path, cell_dir, "running"))) return rc;
    host_name(host, sizeof host);
    job_id(job, sizeof job);
    utc_now(when, sizeof when);
    snprintf(text, sizeof text, "pid=%ld\nhost=%s\njob=%s\nstarted=%s\n", (long)getpid(), host, job,
             when);
    return gkd_file_write_atomic(path, text, strlen(text));
}

int gkd_cell_heartbeat(const char *cell_dir) {
    char path[4096];
    int rc = join_path(path, sizeof path, cell_dir, "running");
    if (rc) return rc;
    if (utimensat(AT_FDCWD, path, NULL, 0) != 0)
        return gkd_error(GKD_EIO, "cannot touch %s: %s", path, strerror(errno));
    return 0;
}

int gkd_cell_mark_done(const char *cell_dir) {
    char path[4096], host[256], job[128], when[32], text[1024];
    int rc = join_path(path, sizeof path, cell_dir, "done");
    if (rc) return rc;
    host_name(host, sizeof host);
    job_id(job, sizeof job);
    utc_now(when, sizeof when);
    snprintf(text, sizeof text, "finished=%s\nhost=%s\njob=%s\n", when, host, job);
    if ((rc = gkd_file_write_atomic(path, text, strlen(text)))) return rc;
    return remove_marker(cell_dir, "running");
}

int gkd_cell_mark_failed(const char *cell_dir, const char *message) {
    char path[4096], host[256], job[128];
    int rc = join_path(path, sizeof path, cell_dir, "failed");
    if (rc) return rc;
    host_name(host, sizeof host);
    job_id(job, sizeof job);
    size_t cap = strlen(message) + 512;
    char *text = malloc(cap);
    if (!text) return gkd_error(GKD_ENOMEM, "out of memory");
    /* The message is one line by contract: newlines would split it. */
    size_t n = 0;
    for (const char *p = message; *p; p++) text[n++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    snprintf(text + n, cap - n, "\nhost=%s\njob=%s\n", host, job);
    rc = gkd_file_write_atomic(path, text, strlen(text));
    free(text);
    if (rc) {
        /* The disk may be full. Renaming `running` to `failed` needs no new
         * space, so the cell still shows as failed (its first line is then
         * the pid= line of the attempt), not as running until it goes stale. */
        char running[4096];
        if (!join_path(running, sizeof running, cell_dir, "running")) (void)rename(running, path);
        return rc;
    }
    return remove_marker(cell_dir, "running");
}

/* 1 if cell_dir/name exists; its mtime in *mtime. */
static int marker(const char *cell_dir, const char *name, time_t *mtime) {
    char path[4096];
    struct stat sb;
    if (join_path(path, sizeof path, cell_dir, name) != 0) return 0;
    if (stat(path, &sb) != 0) return 0;
    if (mtime) *mtime = sb.st_mtime;
    return 1;
}

int gkd_cell_state_read(gkd_cell_state *out, const char *cell_dir, time_t now) {
    time_t beat = 0;
    if (strlen(cell_dir) > 4000) return gkd_error(GKD_EINVAL, "path too long: %s", cell_dir);
    if (marker(cell_dir, "done", NULL)) *out = GKD_CELL_DONE;
    else if (marker(cell_dir, "running", &beat) && now - beat <= GKD_CELL_STALE_SECONDS)
        *out = GKD_CELL_RUNNING;
    else if (marker(cell_dir, "failed", NULL)) *out = GKD_CELL_FAILED;
    else if (beat != 0) *out = GKD_CELL_STALE;
    else *out = GKD_CELL_PENDING;
    return 0;
}

/* Whole file into a NUL-terminated buffer; *out = NULL if it does not exist. */
static int read_file(char **out, const char *path) {
    *out = NULL;
    FILE *f = NULL;
    int rc_open = gkd_fopen_read(&f, path);
    if (rc_open) return errno == ENOENT ? 0 : rc_open;
    int rc = 0;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    for (;;) {
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) { rc = gkd_error(GKD_EIO, "cannot read %s", path); goto done; }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return rc;
}

/* Split one CSV line in place into at most `max` fields ("..." quoting with
 * "" for a quote). Returns the number of fields, or -1 if there are more. */
static int split_csv(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        char *w = p;
        fields[n++] = w;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') break;
                if (*p == '"' && p[1] == '"') { *w++ = '"'; p += 2; continue; }
                if (*p == '"') { p++; break; }
                *w++ = *p++;
            }
            while (*p && *p != ',') p++;
        } else {
            while (*p && *p != ',') *w++ = *p++;
        }
        char sep = *p;
        *w = '\0';
        if (sep == '\0') return n;
        p++;
    }
}

/* Next line of a buffer (in place), without its \n or \r\n; NULL at the end. */
static char *next_line(char **cursor) {
    char *s = *cursor;
    if (!s || *s == '\0') return NULL;
    char *nl = strchr(s, '\n');
    if (nl) { *nl = '\0'; *cursor = nl + 1; }
    else *cursor = s + strlen(s);
    size_t len = strlen(s);
    if (len && s[len - 1] == '\r') s[len - 1] = '\0';
    return s;
}

#define MAX_COLUMNS 256

int gkd_cell_last_step(char *out, size_t cap, const char *cell_dir) {
    char path[4096], *text = NULL, *fields[MAX_COLUMNS];
    out[0] = '\0';
    int rc = join_path(path, sizeof path, cell_dir, "metrics.csv");
    if (rc) return rc;
    if ((rc = read_file(&text, path)) || !text) return rc;
    /* A row without its newline is still being appended: not a step yet. */
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n') {
        char *cut = strrchr(text, '\n');
        if (cut) cut[1] = '\0';
        else text[0] = '\0';
    }
    char *cursor = text, *header = next_line(&cursor), *line, *last = NULL;
    while ((line = next_line(&cursor)))
        if (*line) last = line;
    if (header && last) {
        int col = 0, nh = split_csv(header, fields, MAX_COLUMNS);
        for (int i = 0; i < nh; i++)
            if (!strcmp(fields[i], "step")) { col = i; break; }
        int nf = split_csv(last, fields, MAX_COLUMNS);
        /* A row cut short while the runner appends has no such column yet. */
        if (nf > col) snprintf(out, cap, "%s", fields[col]);
    }
    free(text);
    return 0;
}

void gkd_grid_status_free(gkd_grid_status *st) {
    if (!st) return;
    for (int i = 0; i < st->ncells; i++) {
        free(st->cells[i].dir);
        if (st->cells[i].values)
            for (int a = 0; a < st->naxes; a++) free(st->cells[i].values[a]);
        free(st->cells[i].values);
    }
    free(st->cells);
    for (int a = 0; a < st->naxes; a++) free(st->axes[a]);
    free(st->axes);
    free(st);
}

int gkd_grid_status_read(gkd_grid_status **out, const char *exp_dir, time_t now) {
    char path[4096], *text = NULL, *fields[MAX_COLUMNS];
    gkd_grid_status *st = NULL;
    int rc = 0, lineno = 1;
    *out = NULL;
    struct stat sb;
    if (stat(exp_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = gkd_error(GKD_EIO, "%s: no such results directory", exp_dir);
        goto done;
    }
    if ((rc = join_path(path, sizeof path, exp_dir, "grid.csv"))) goto done;
    if ((rc = read_file(&text, path))) goto done;
    if (!text) { rc = gkd_error(GKD_EIO, "%s: no such file (not a gkd results directory?)", path); goto done; }

    st = calloc(1, sizeof *st);
    if (!st) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    char *cursor = text, *line = next_line(&cursor);
    int nh = line ? split_csv(line, fields, MAX_COLUMNS) : 0;
    if (nh < 2 || strcmp(fields[0], "cell") || strcmp(fields[1], "dir")) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: header must start with cell,dir", path);
        goto done;
    }
    st->naxes = nh - 2;
    st->axes = calloc((size_t)st->naxes + 1, sizeof *st->axes);
    if (!st->axes) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
    for (int a = 0; a < st->naxes; a++)
        if (!(st->axes[a] = strdup(fields[a + 2]))) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }

    int cap = 0;
    while ((line = next_line(&cursor))) {
        lineno++;
        if (*line == '\0') continue;
        int nf = split_csv(line, fields, MAX_COLUMNS);
        if (nf != nh) {
            rc = gkd_error(GKD_EFORMAT, "%s:%d: %d fields, header has %d", path, lineno, nf, nh);
            goto done;
        }
        long idx;
        if ((rc = gkd_parse_long(&idx, fields[0], 0, 100000000L, "cell index"))) {
            rc = gkd_error_wrap(rc, "%s:%d", path, lineno);
            goto done;
        }
        if (idx != st->ncells) {
            rc = gkd_error(GKD_EFORMAT, "%s:%d: cell %ld out of order (expected %d)", path, lineno, idx,
                           st->ncells);
            goto done;
        }
        if (st->ncells == cap) {
            int ncap = cap ? 2 * cap : 16;
            gkd_grid_cell *grown = realloc(st->cells, (size_t)ncap * sizeof *grown);
            if (!grown) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
            st->cells = grown;
            cap = ncap;
        }
        gkd_grid_cell *c = &st->cells[st->ncells++];
        memset(c, 0, sizeof *c);
        c->cell = (int)idx;
        c->dir = strdup(fields[1]);
        c->values = calloc((size_t)st->naxes + 1, sizeof *c->values);
        if (!c->dir || !c->values) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }
        for (int a = 0; a < st->naxes; a++)
            if (!(c->values[a] = strdup(fields[a + 2]))) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto done; }

        char cell_dir[4096];
        if (c->dir[0] == '/') snprintf(cell_dir, sizeof cell_dir, "%s", c->dir);
        else if ((rc = join_path(cell_dir, sizeof cell_dir, exp_dir, c->dir))) goto done;
        if ((rc = gkd_cell_state_read(&c->state, cell_dir, now))) goto done;
        if (c->state == GKD_CELL_RUNNING || c->state == GKD_CELL_STALE)
            if ((rc = gkd_cell_last_step(c->last_step, sizeof c->last_step, cell_dir))) goto done;
        st->counts[c->state]++;
    }
    *out = st;
    st = NULL;
done:
    free(text);
    gkd_grid_status_free(st);
    return rc;
}
