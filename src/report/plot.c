/* Learning curves: per-step aggregation over seeds, gnuplot data + script. */
#include "gkd/plot.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"

void gkd_plot_files_free(gkd_plot_files *f) {
    free(f->dat);
    free(f->gp);
    free(f->png);
    free(f->svg);
    f->dat = f->gp = f->png = f->svg = NULL;
}

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}


/* File-name-safe copy: keeps [A-Za-z0-9.=-], maps the rest to '_'. */
static void sanitize(char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '=' || *s == '-'))
            *s = '_';
}


typedef struct {
    double x, y;
} point;

static int cmp_point(const void *a, const void *b) {
    const point *p = a, *q = b;
    return (p->x > q->x) - (p->x < q->x);
}

/* (x, y) pairs of one cell where both are measured, sorted by x (stable for
 * equal x: the later row wins when aggregating). */
static int cell_points(point **out, int *n, const char *cell_dir, const char *file, const char *xcol,
                       const char *ycol) {
    int rc = 0;
    gkd_csv *c = NULL;
    point *pts = NULL;
    char *path = fmt_alloc("%s/%s", cell_dir, file);
    if (!path) return gkd_error(GKD_ENOMEM, "out of memory");
    if ((rc = gkd_csv_read(&c, path))) goto done;
    int xi = gkd_csv_col(c, xcol), yi = gkd_csv_col(c, ycol);
    if (xi < 0 || yi < 0) {
        rc = gkd_error(GKD_EINVAL, "%s: no column '%s'", path, xi < 0 ? xcol : ycol);
        goto done;
    }
    pts = malloc((c->nrows + 1) * sizeof *pts);
    if (!pts) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    int m = 0;
    for (size_t r = 0; r < c->nrows; r++) {
        double x = 0, y = 0;
        int rx = gkd_results_number(&x, gkd_csv_get(c, r, xi));
        int ry = gkd_results_number(&y, gkd_csv_get(c, r, yi));
        if (rx < 0 || ry < 0) {
            rc = gkd_error_wrap(rx < 0 ? rx : ry, "%s:%ld", path, c->lines[r]);
            goto done;
        }
        if (rx == 1 && ry == 1 && isfinite(x)) {
            /* Several rows at one x (e.g. per-source rows): the last wins. */
            if (m > 0 && pts[m - 1].x == x) pts[m - 1].y = y;
            else pts[m++] = (point){x, y};
        }
    }
    qsort(pts, (size_t)m, sizeof *pts, cmp_point);
    *out = pts;
    *n = m;
    pts = NULL;
done:
    free(pts);
    free(path);
    gkd_csv_free(c);
    return rc;
}

/* One data block: x mean lo hi n, aggregated over the cells' curves. */
static int write_block(gkd_csv_buf *b, point **curves, const int *npts, int ncurves, gkd_plot_band band,
                       int *max_n) {
    int rc = 0;
    int *pos = calloc((size_t)ncurves + 1, sizeof *pos);
    double *vals = malloc(((size_t)ncurves + 1) * sizeof *vals);
    if (!pos || !vals) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    *max_n = 0;
    for (;;) {
        /* Next smallest x over all curves. */
        int have = 0;
        double x = 0;
        for (int c = 0; c < ncurves; c++)
            if (pos[c] < npts[c] && (!have || curves[c][pos[c]].x < x)) {
                x = curves[c][pos[c]].x;
                have = 1;
            }
        if (!have) break;
        int n = 0;
        for (int c = 0; c < ncurves; c++)
            if (pos[c] < npts[c] && curves[c][pos[c]].x == x) vals[n++] = curves[c][pos[c]++].y;
        double sum = 0, lo = vals[0], hi = vals[0];
        for (int k = 0; k < n; k++) {
            sum += vals[k];
            lo = fmin(lo, vals[k]);
            hi = fmax(hi, vals[k]);
        }
        double mean = sum / n;
        if (band == GKD_BAND_STD) {
            double ss = 0;
            for (int k = 0; k < n; k++) ss += (vals[k] - mean) * (vals[k] - mean);
            double sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
            lo = mean - sd;
            hi = mean + sd;
        }
        if (n > *max_n) *max_n = n;
        char sx[40], sm[40], sl[40], sh[40];
        gkd_format_double(sx, sizeof sx, x);
        gkd_format_double(sm, sizeof sm, mean);
        gkd_format_double(sl, sizeof sl, lo);
        gkd_format_double(sh, sizeof sh, hi);
        if ((rc = gkd_csv_buf_printf(b, "%s %s %s %s %d\n", sx, sm, sl, sh, n))) goto done;
    }
done:
    free(pos);
    free(vals);
    return rc;
}

/* A byte that would end a gnuplot command or a comment line: a newline
 * in an axis value would otherwise close the string it sits in and run
 * what follows as gnuplot code (system() included). */
static int is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/* gnuplot single-quoted string: ' is written as '' (the only escape there)
 * and control characters as '?', so the string is always one token. */
static int put_gp_string(gkd_csv_buf *b, const char *s) {
    int rc = gkd_csv_buf_printf(b, "'");
    for (; *s && !rc; s++)
        rc = *s == '\'' ? gkd_csv_buf_printf(b, "''")
                        : gkd_csv_buf_printf(b, "%c", is_control((unsigned char)*s) ? '?' : *s);
    return rc ? rc : gkd_csv_buf_printf(b, "'");
}

/* s with control characters as '?', for comment lines (into buf). */
static const char *comment_safe(char *buf, size_t size, const char *s) {
    size_t n = 0;
    for (; *s && n + 1 < size; s++) buf[n++] = is_control((unsigned char)*s) ? '?' : *s;
    buf[n] = '\0';
    return buf;
}

static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};

int gkd_plot_learning_curves(gkd_plot_files *files, const char *dir, const gkd_plot_opts *o) {
    int rc = 0, *sel = NULL, nsel = 0, nskipped = 0, nser = 0;
    gkd_results *r = NULL;
    gkd_csv_buf dat = GKD_CSV_BUF_INIT, gp = GKD_CSV_BUF_INIT;
    char *out_dir = NULL, *base = NULL, *title = NULL;
    char **labels = NULL;
    int *series_n = NULL;
    memset(files, 0, sizeof *files);
    const char *xcol = o->x ? o->x : "step";
    const char *file = o->source == GKD_PLOT_METRICS ? "metrics.csv" : "eval.csv";
    if (!o->metric || !o->by) return gkd_error(GKD_EINVAL, "a --metric and a --by axis are required");
    if ((rc = gkd_results_open(&r, dir))) goto done;
    const char *grouped[1] = {o->by};
    if ((rc = gkd_results_select(&sel, &nsel, &nskipped, r, o->where, o->nwhere, grouped, 1))) goto done;
    files->nskipped = nskipped;
    int a = gkd_results_axis(r, o->by);
    labels = calloc((size_t)r->nvalues[a] + 1, sizeof *labels);
    series_n = calloc((size_t)r->nvalues[a] + 1, sizeof *series_n);
    if (!labels || !series_n) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }

    /* Names: <metric>_by_<by>[_vs_<x>][_<k=v>...]. */
    out_dir = o->out_dir ? strdup(o->out_dir) : fmt_alloc("%s/figures", dir);
    size_t blen = strlen(o->metric) + strlen(o->by) + strlen(xcol) + 16;
    for (int i = 0; i < o->nwhere; i++) blen += strlen(o->where[i].key) + strlen(o->where[i].value) + 2;
    base = calloc(blen, 1);
    if (!out_dir || !base) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    size_t bl = (size_t)snprintf(base, blen, "%s_by_%s", o->metric, o->by);
    if (strcmp(xcol, "step")) bl += (size_t)snprintf(base + bl, blen - bl, "_vs_%s", xcol);
    for (int i = 0; i < o->nwhere; i++)
        bl += (size_t)snprintf(base + bl, blen - bl, "_%s=%s", o->where[i].key, o->where[i].value);
    sanitize(base);
    if ((rc = gkd_mkdir_p(out_dir))) goto done;
    files->dat = fmt_alloc("%s/%s.dat", out_dir, base);
    files->gp = fmt_alloc("%s/%s.gp", out_dir, base);
    files->png = fmt_alloc("%s/%s.png", out_dir, base);
    files->svg = fmt_alloc("%s/%s.svg", out_dir, base);
    size_t tlen = strlen(o->metric) + strlen(o->by) + 64;
    for (int i = 0; i < o->nwhere; i++) tlen += strlen(o->where[i].key) + strlen(o->where[i].value) + 3;
    title = calloc(tlen, 1);
    if (!files->dat || !files->gp || !files->png || !files->svg || !title) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    size_t tl = (size_t)snprintf(title, tlen, "%s by %s", o->metric, o->by);
    for (int i = 0; i < o->nwhere; i++)
        tl += (size_t)snprintf(title + tl, tlen - tl, "%s%s=%s", i ? ", " : " (", o->where[i].key, o->where[i].value);
    if (o->nwhere) snprintf(title + tl, tlen - tl, ")");
    /* The title also heads comment lines of both files. */
    for (char *c = title; *c; c++)
        if (is_control((unsigned char)*c)) *c = '?';

    const char *band_text = o->band == GKD_BAND_STD ? "mean ± std over seeds" : "min..max over seeds";
    rc = gkd_csv_buf_printf(&dat, "# %s: mean over seeds per %s; band: %s\n# from %s/*/%s\n# columns: %s mean lo hi n\n", title,
             xcol, band_text, dir, file, xcol);
    if (rc) goto done;
    /* One block per --by value, in axis order; blocks are separated by two
     * blank lines so gnuplot addresses them with `index`. */
    for (int k = 0; k < r->nvalues[a]; k++) {
        const char *value = r->values[a][k];
        int ncur = 0;
        point **curves = calloc((size_t)nsel + 1, sizeof *curves);
        int *npts = calloc((size_t)nsel + 1, sizeof *npts);
        if (!curves || !npts) {
            free(curves);
            free(npts);
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
        for (int s = 0; s < nsel && !rc; s++) {
            const gkd_result_cell *c = &r->cells[sel[s]];
            const char *v = gkd_result_cell_axis(c, o->by);
            if (!v || strcmp(v, value)) continue;
            rc = cell_points(&curves[ncur], &npts[ncur], c->dir, file, xcol, o->metric);
            if (!rc) ncur++;
        }
        if (!rc && ncur > 0) {
            char safe_by[256], safe_value[1024];
            rc = gkd_csv_buf_printf(&dat, "%s# %s=%s\n", nser ? "\n\n" : "\n",
                                    comment_safe(safe_by, sizeof safe_by, o->by),
                                    comment_safe(safe_value, sizeof safe_value, value));
            int max_n = 0;
            if (!rc) rc = write_block(&dat, curves, npts, ncur, o->band, &max_n);
            labels[nser] = (char *)value;
            series_n[nser] = max_n;
            nser++;
        }
        for (int c = 0; c < ncur; c++) free(curves[c]);
        free(curves);
        free(npts);
        if (rc) goto done;
    }
    files->nseries = nser;

    const char *name = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    rc |= gkd_csv_buf_printf(&gp, "# %s: learning curves written by gkd plot.\n# Regenerate from this directory: gnuplot %s.gp\n",
              title, name);
    rc |= gkd_csv_buf_printf(&gp, "if (strstrt(GPVAL_TERMINALS, \"pngcairo\") > 0) {\n"
                   "    set terminal pngcairo size 960,600 noenhanced font \"sans,11\"\n"
                   "} else {\n"
                   "    set terminal png size 960,600 noenhanced\n"
                   "}\n");
    rc |= gkd_csv_buf_printf(&gp, "set output '%s.png'\nset title ", name);
    rc |= put_gp_string(&gp, title);
    rc |= gkd_csv_buf_printf(&gp, "\nset xlabel ");
    rc |= put_gp_string(&gp, xcol);
    rc |= gkd_csv_buf_printf(&gp, "\nset ylabel ");
    char ylabel[512];
    snprintf(ylabel, sizeof ylabel, "%s (line: mean, band: %s)", o->metric, band_text);
    rc |= put_gp_string(&gp, ylabel);
    rc |= gkd_csv_buf_printf(&gp, "\nset key outside right top title ");
    rc |= put_gp_string(&gp, o->by);
    rc |= gkd_csv_buf_printf(&gp, "\nset grid\nset style fill transparent solid 0.2 noborder\nplot ");
    for (int s = 0; s < nser; s++) {
        const char *col = palette[s % (int)(sizeof palette / sizeof *palette)];
        char label[512];
        snprintf(label, sizeof label, "%s (n=%d)", labels[s], series_n[s]);
        rc |= gkd_csv_buf_printf(&gp, "%s'%s.dat' index %d using 1:3:4 with filledcurves lc rgb '%s' notitle, \\\n", s ? ", \\\n     " : "",
                  name, s, col);
        rc |= gkd_csv_buf_printf(&gp, "     '%s.dat' index %d using 1:2 with linespoints lw 2 pt 7 ps 0.7 lc rgb '%s' title ", name, s, col);
        rc |= put_gp_string(&gp, label);
    }
    rc |= gkd_csv_buf_printf(&gp, "\nset terminal svg size 960,600 dynamic noenhanced font \"sans,11\" background rgb 'white'\n"
                   "set output '%s.svg'\nreplot\nunset output\n",
              name);
    if (rc) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = gkd_file_write_atomic(files->dat, dat.data, dat.len))) goto done;
    if ((rc = gkd_file_write_atomic(files->gp, gp.data, gp.len))) goto done;
    if (o->render) rc = gkd_gnuplot_run(files->gp);
done:
    if (rc) gkd_plot_files_free(files);
    free(labels);
    free(series_n);
    free(title);
    free(base);
    free(out_dir);
    free(sel);
    gkd_csv_buf_free(&dat);
    gkd_csv_buf_free(&gp);
    gkd_results_free(r);
    return rc;
}

int gkd_gnuplot_available(void) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char *copy = strdup(path);
    int found = 0;
    for (char *save = NULL, *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char *exe = fmt_alloc("%s/gnuplot", *d ? d : ".");
        found = exe && access(exe, X_OK) == 0;
        free(exe);
    }
    free(copy);
    return found;
}

int gkd_gnuplot_run(const char *gp_path) {
    int rc = 0;
    char *dir = NULL, *log = NULL, *cmd = NULL, *text = NULL;
    const char *slash = strrchr(gp_path, '/');
    const char *name = slash ? slash + 1 : gp_path;
    if (!gkd_gnuplot_available())
        return gkd_error(GKD_EIO, "gnuplot not found on PATH (install gnuplot-nox); the data and script are in %s",
                         gp_path);
    if (strchr(gp_path, '\'')) return gkd_error(GKD_EINVAL, "%s: path contains a single quote", gp_path);
    dir = slash ? strndup(gp_path, (size_t)(slash - gp_path)) : strdup(".");
    log = fmt_alloc("%s.log", gp_path);
    cmd = log ? fmt_alloc("gnuplot 2>'%s'", log) : NULL;
    if (!dir || !cmd) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    FILE *p = popen(cmd, "w");
    if (!p) {
        rc = gkd_error(GKD_EIO, "cannot start gnuplot: %s", strerror(errno));
        goto done;
    }
    /* cd so the script's relative file names resolve next to it. */
    fprintf(p, "cd '%s'\nload '%s'\n", dir, name);
    int status = pclose(p);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        size_t len = 0;
        if (gkd_file_read(&text, &len, log) == 0 && len > 0) {
            char *nl = text;
            while (*nl == '\n' || *nl == ' ') nl++;
            char *end = strchr(nl, '\n');
            if (end) *end = '\0';
            rc = gkd_error(GKD_EIO, "gnuplot failed on %s: %s (log: %s)", gp_path, nl, log);
        } else {
            rc = gkd_error(GKD_EIO, "gnuplot failed on %s (exit status %d)", gp_path, status);
        }
        goto done;
    }
    unlink(log);
done:
    free(text);
    free(cmd);
    free(log);
    free(dir);
    return rc;
}
