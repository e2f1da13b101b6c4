/* Scanning a results tree: cells, their axes, and axis value order. */
#include "gkd/results.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/csv.h"
#include "gkd/error.h"

static char *join_path(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int file_exists(const char *dir, const char *name) {
    char *p = join_path(dir, name);
    struct stat st;
    int ok = p && stat(p, &st) == 0;
    free(p);
    return ok;
}

int gkd_results_number(double *v, const char *field) {
    if (!field[0]) return 0;
    char *end;
    errno = 0;
    double x = strtod(field, &end);
    if (*end != '\0' || end == field) {
        /* The field goes into a one-line message: no CR or other controls. */
        char shown[208];
        snprintf(shown, sizeof shown, "%.200s%s", field, strlen(field) > 200 ? "..." : "");
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        return gkd_error(GKD_EFORMAT, "'%s' is not a number", shown);
    }
    *v = x;
    return 1;
}

static void cell_free(gkd_result_cell *c) {
    for (int i = 0; i < c->naxes; i++) {
        free(c->keys[i]);
        free(c->values[i]);
    }
    free(c->keys);
    free(c->values);
    free(c->name);
    free(c->dir);
}

void gkd_results_free(gkd_results *r) {
    if (!r) return;
    for (int i = 0; i < r->ncells; i++) cell_free(&r->cells[i]);
    free(r->cells);
    for (int a = 0; a < r->naxes; a++) {
        for (int k = 0; k < r->nvalues[a]; k++) free(r->values[a][k]);
        free(r->values[a]);
        free(r->axes[a]);
    }
    free(r->axes);
    free(r->nvalues);
    free(r->values);
    free(r->dir);
    free(r);
}

static int load_cell(gkd_result_cell *c, const char *expdir, const char *name) {
    int rc = 0;
    gkd_csv *csv = NULL;
    char *axes_path = NULL;
    if (!(c->name = strdup(name)) || !(c->dir = join_path(expdir, name)) ||
        !(axes_path = join_path(c->dir, "axes.csv"))) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    c->done = file_exists(c->dir, "done");
    if ((rc = gkd_csv_read(&csv, axes_path))) goto done;
    if (csv->ncols != 2 || strcmp(csv->header[0], "key") || strcmp(csv->header[1], "value")) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: expected the header 'key,value'", axes_path);
        goto done;
    }
    c->keys = calloc(csv->nrows + 1, sizeof *c->keys);
    c->values = calloc(csv->nrows + 1, sizeof *c->values);
    if (!c->keys || !c->values) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < csv->nrows; i++) {
        const char *k = gkd_csv_get(csv, i, 0);
        if (!k[0]) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: empty axis name", axes_path, csv->lines[i]);
            goto done;
        }
        for (int j = 0; j < c->naxes; j++)
            if (!strcmp(c->keys[j], k)) {
                rc = gkd_error(GKD_EFORMAT, "%s:%ld: axis '%s' listed twice", axes_path, csv->lines[i], k);
                goto done;
            }
        c->keys[c->naxes] = strdup(k);
        c->values[c->naxes] = strdup(gkd_csv_get(csv, i, 1));
        c->naxes++;
        if (!c->keys[c->naxes - 1] || !c->values[c->naxes - 1]) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
    }
done:
    gkd_csv_free(csv);
    free(axes_path);
    return rc;
}

const char *gkd_result_cell_axis(const gkd_result_cell *c, const char *key) {
    for (int i = 0; i < c->naxes; i++)
        if (!strcmp(c->keys[i], key)) return c->values[i];
    return NULL;
}

int gkd_results_axis(const gkd_results *r, const char *name) {
    for (int a = 0; a < r->naxes; a++)
        if (!strcmp(r->axes[a], name)) return a;
    return -1;
}

int gkd_results_value_rank(const gkd_results *r, int axis, const char *value) {
    for (int k = 0; k < r->nvalues[axis]; k++)
        if (!strcmp(r->values[axis][k], value)) return k;
    return -1;
}

/* Append `s` to a growable string list unless present. */
static int add_unique(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return 0;
    char **p = realloc(*list, (size_t)(*n + 1) * sizeof *p);
    if (!p) return gkd_error(GKD_ENOMEM, "out of memory");
    *list = p;
    if (!(p[*n] = strdup(s))) return gkd_error(GKD_ENOMEM, "out of memory");
    (*n)++;
    return 0;
}

static int cmp_cell_name(const void *a, const void *b) {
    return strcmp(((const gkd_result_cell *)a)->name, ((const gkd_result_cell *)b)->name);
}

static int all_numeric(char **v, int n) {
    for (int i = 0; i < n; i++) {
        double x;
        if (gkd_results_number(&x, v[i]) != 1 || isnan(x)) return 0;
    }
    return 1;
}

/* Stable insertion sort by numeric value (few values per axis). */
static void sort_numeric(char **v, int n) {
    for (int i = 1; i < n; i++) {
        char *cur = v[i];
        double x = strtod(cur, NULL);
        int j = i - 1;
        while (j >= 0 && strtod(v[j], NULL) > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = cur;
    }
}

/* Order cells and axis values by grid.csv: header cell,dir,<axes...>. */
static int apply_grid(gkd_results *r, const char *grid_path) {
    int rc = 0;
    gkd_csv *g = NULL;
    if ((rc = gkd_csv_read(&g, grid_path))) goto done;
    if (g->ncols < 2 || strcmp(g->header[0], "cell") || strcmp(g->header[1], "dir")) {
        rc = gkd_error(GKD_EFORMAT, "%s:1: expected a header starting with 'cell,dir'", grid_path);
        goto done;
    }
    /* Axis values: first appearance in grid rows. */
    for (int j = 2; j < g->ncols; j++) {
        int a = gkd_results_axis(r, g->header[j]);
        if (a < 0) continue;
        char **ordered = NULL;
        int n = 0;
        for (size_t i = 0; i < g->nrows; i++)
            if ((rc = add_unique(&ordered, &n, gkd_csv_get(g, i, j)))) {
                for (int k = 0; k < n; k++) free(ordered[k]);
                free(ordered);
                goto done;
            }
        /* Values seen in cells but absent from grid.csv go last. */
        for (int k = 0; k < r->nvalues[a]; k++)
            if ((rc = add_unique(&ordered, &n, r->values[a][k]))) {
                for (int m = 0; m < n; m++) free(ordered[m]);
                free(ordered);
                goto done;
            }
        for (int k = 0; k < r->nvalues[a]; k++) free(r->values[a][k]);
        free(r->values[a]);
        r->values[a] = ordered;
        r->nvalues[a] = n;
    }
    /* Cells: grid order; cells missing from grid.csv keep name order after. */
    gkd_result_cell *sorted = malloc((size_t)r->ncells * sizeof *sorted + 1);
    char *used = calloc((size_t)r->ncells + 1, 1);
    if (!sorted || !used) {
        free(sorted);
        free(used);
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    int m = 0;
    for (size_t i = 0; i < g->nrows; i++)
        for (int c = 0; c < r->ncells; c++)
            if (!used[c] && !strcmp(r->cells[c].name, gkd_csv_get(g, i, 1))) {
                sorted[m++] = r->cells[c];
                used[c] = 1;
            }
    for (int c = 0; c < r->ncells; c++)
        if (!used[c]) sorted[m++] = r->cells[c];
    free(r->cells);
    free(used);
    r->cells = sorted;
    r->has_grid = 1;
done:
    gkd_csv_free(g);
    return rc;
}

int gkd_results_open(gkd_results **out, const char *dir) {
    int rc = 0, cap = 0;
    DIR *d = NULL;
    char *grid_path = NULL;
    gkd_results *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    d = opendir(dir);
    if (!d) {
        rc = gkd_error(GKD_EIO, "%s: cannot open results directory: %s", dir, strerror(errno));
        goto done;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = join_path(dir, e->d_name);
        struct stat st;
        int is_cell = sub && stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && file_exists(sub, "axes.csv");
        free(sub);
        if (!is_cell) continue;
        if (r->ncells == cap) {
            cap = cap ? cap * 2 : 32;
            gkd_result_cell *p = realloc(r->cells, (size_t)cap * sizeof *p);
            if (!p) {
                rc = gkd_error(GKD_ENOMEM, "out of memory");
                goto done;
            }
            r->cells = p;
        }
        memset(&r->cells[r->ncells], 0, sizeof r->cells[0]);
        rc = load_cell(&r->cells[r->ncells], dir, e->d_name);
        r->ncells++;
        if (rc) goto done;
    }
    if (r->ncells == 0) {
        rc = gkd_error(GKD_EINVAL, "%s: no cell directories (with axes.csv) found", dir);
        goto done;
    }
    qsort(r->cells, (size_t)r->ncells, sizeof *r->cells, cmp_cell_name);
    /* Axes and values in first-seen order over cells sorted by name. */
    for (int c = 0; c < r->ncells; c++)
        for (int k = 0; k < r->cells[c].naxes; k++) {
            int before = r->naxes;
            if ((rc = add_unique(&r->axes, &r->naxes, r->cells[c].keys[k]))) goto done;
            if (r->naxes > before) {
                int *nv = realloc(r->nvalues, (size_t)r->naxes * sizeof *nv);
                if (nv) r->nvalues = nv;
                char ***vv = realloc(r->values, (size_t)r->naxes * sizeof *vv);
                if (vv) r->values = vv;
                if (!nv || !vv) {
                    r->naxes--;
                    free(r->axes[r->naxes]);
                    rc = gkd_error(GKD_ENOMEM, "out of memory");
                    goto done;
                }
                r->nvalues[before] = 0;
                r->values[before] = NULL;
            }
            int a = gkd_results_axis(r, r->cells[c].keys[k]);
            if ((rc = add_unique(&r->values[a], &r->nvalues[a], r->cells[c].values[k]))) goto done;
        }
    grid_path = join_path(dir, "grid.csv");
    if (!grid_path) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (int a = 0; a < r->naxes; a++)
        if (all_numeric(r->values[a], r->nvalues[a])) sort_numeric(r->values[a], r->nvalues[a]);
    /* grid.csv, when present, overrides the order of the axes it lists. */
    struct stat st;
    if (stat(grid_path, &st) == 0 && (rc = apply_grid(r, grid_path))) goto done;
    *out = r;
    r = NULL;
done:
    if (d) closedir(d);
    free(grid_path);
    gkd_results_free(r);
    return rc;
}

int gkd_where_parse(gkd_where *w, const char *spec) {
    const char *eq = strchr(spec, '=');
    w->key = w->value = NULL;
    if (!eq || eq == spec || !eq[1])
        return gkd_error(GKD_EINVAL, "--where '%s': expected key=value", spec);
    w->key = strndup(spec, (size_t)(eq - spec));
    w->value = strdup(eq + 1);
    if (!w->key || !w->value) {
        gkd_where_free(w);
        return gkd_error(GKD_ENOMEM, "out of memory");
    }
    return 0;
}

void gkd_where_free(gkd_where *w) {
    free(w->key);
    free(w->value);
    w->key = w->value = NULL;
}

/* "a, b, c" of an axis's values, for messages. */
static void list_values(char *buf, size_t size, const gkd_results *r, int a) {
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < r->nvalues[a] && n + 1 < size; k++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", k ? ", " : "", r->values[a][k]);
}

static void list_axes(char *buf, size_t size, const gkd_results *r) {
    size_t n = 0;
    buf[0] = '\0';
    for (int a = 0; a < r->naxes && n + 1 < size; a++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", a ? ", " : "", r->axes[a]);
}

int gkd_where_validate(const gkd_results *r, const gkd_where *w, int nw) {
    char list[512];
    for (int i = 0; i < nw; i++) {
        int a = gkd_results_axis(r, w[i].key);
        if (a < 0) {
            list_axes(list, sizeof list, r);
            return gkd_error(GKD_EINVAL, "--where %s=%s: unknown axis '%s' (axes: %s)", w[i].key, w[i].value,
                             w[i].key, list);
        }
        if (gkd_results_value_rank(r, a, w[i].value) < 0) {
            list_values(list, sizeof list, r, a);
            return gkd_error(GKD_EINVAL, "--where %s=%s: axis '%s' has no value '%s' (values: %s)", w[i].key,
                             w[i].value, w[i].key, w[i].value, list);
        }
    }
    return 0;
}

int gkd_where_match(const gkd_result_cell *c, const gkd_where *w, int nw) {
    for (int i = 0; i < nw; i++) {
        const char *v = gkd_result_cell_axis(c, w[i].key);
        if (!v || strcmp(v, w[i].value)) return 0;
    }
    return 1;
}

int gkd_results_select(int **idx, int *n, int *nskipped, const gkd_results *r, const gkd_where *w,
                       int nw, const char *const *grouped, int ngrouped) {
    int rc = 0;
    int *sel = malloc((size_t)r->ncells * sizeof *sel + 1);
    if (!sel) return gkd_error(GKD_ENOMEM, "out of memory");
    *n = 0;
    *nskipped = 0;
    if ((rc = gkd_where_validate(r, w, nw))) goto done;
    for (int i = 0; i < ngrouped; i++) {
        if (grouped[i] && gkd_results_axis(r, grouped[i]) < 0) {
            char list[512];
            list_axes(list, sizeof list, r);
            rc = gkd_error(GKD_EINVAL, "unknown axis '%s' (axes: %s)", grouped[i], list);
            goto done;
        }
    }
    for (int c = 0; c < r->ncells; c++) {
        if (!gkd_where_match(&r->cells[c], w, nw)) continue;
        if (!r->cells[c].done) {
            (*nskipped)++;
            continue;
        }
        sel[(*n)++] = c;
    }
    if (*n == 0) {
        rc = gkd_error(GKD_EINVAL, "%s: no finished cells match (%d incomplete)", r->dir, *nskipped);
        goto done;
    }
    /* Axes that are neither grouped nor seeds must be fixed. */
    for (int a = 0; a < r->naxes; a++) {
        int is_grouped = !strcmp(r->axes[a], "seed");
        for (int i = 0; i < ngrouped; i++)
            if (grouped[i] && !strcmp(grouped[i], r->axes[a])) is_grouped = 1;
        if (is_grouped) continue;
        const char *first = NULL, *other = NULL;
        for (int i = 0; i < *n && !other; i++) {
            const char *v = gkd_result_cell_axis(&r->cells[sel[i]], r->axes[a]);
            if (!v) v = "";
            if (!first) first = v;
            else if (strcmp(first, v)) other = v;
        }
        if (other) {
            char list[512];
            list_values(list, sizeof list, r, a);
            rc = gkd_error(GKD_EINVAL,
                           "axis '%s' has several values (%s) but is neither --rows nor --cols (or --by); "
                           "group by it or fix it with --where %s=%s",
                           r->axes[a], list, r->axes[a], first);
            goto done;
        }
    }
    *idx = sel;
    sel = NULL;
done:
    free(sel);
    return rc;
}

int gkd_results_labels(gkd_where **out, int *n, const char *dir) {
    *out = NULL;
    *n = 0;
    char *path = join_path(dir, "labels.csv");
    gkd_csv *c = NULL;
    gkd_where *w = NULL;
    int rc = 0, k = 0;
    if (!path) return gkd_error(GKD_ENOMEM, "out of memory");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) rc = gkd_error(GKD_EIO, "%s: %s", path, strerror(errno));
        goto done; /* no labels */
    }
    if ((rc = gkd_csv_read(&c, path))) goto done;
    const int key = gkd_csv_col(c, "key"), text = gkd_csv_col(c, "text");
    if (key < 0 || text < 0) {
        rc = gkd_error(GKD_EFORMAT, "%s: expected the columns key,text", path);
        goto done;
    }
    if (!(w = calloc(c->nrows + 1, sizeof *w))) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (; (size_t)k < c->nrows; k++) {
        const char *kv = gkd_csv_get(c, (size_t)k, key), *tv = gkd_csv_get(c, (size_t)k, text);
        if (!*kv || !*tv) {
            rc = gkd_error(GKD_EFORMAT, "%s:%ld: empty %s", path, c->lines[k], *kv ? "text" : "key");
            goto done;
        }
        if (!(w[k].key = strdup(kv)) || !(w[k].value = strdup(tv))) {
            k++;
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
    }
    *out = w;
    *n = k;
    w = NULL;
done:
    for (int i = 0; w && i < k; i++) gkd_where_free(&w[i]);
    free(w);
    gkd_csv_free(c);
    free(path);
    return rc;
}
