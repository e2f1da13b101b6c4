/* Paper-style tables: aggregation over seeds and Markdown/LaTeX/CSV output. */
#include "gkd/table.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/csv.h"
#include "gkd/error.h"
#include "table_summary.h"

gkd_metric_dir gkd_metric_direction(const char *name) {
    static const char *const higher[] = {"exact_match", "char_accuracy", "token_accuracy", "bleu", "chrf",
                                         "rouge_l", "accept_rate", "accept_tokens", "distinct_1", "distinct_2",
                                         "eos_rate", "precision", "coverage"};
    static const char *const lower[] = {"nll_ref", "teacher_nll", "fkl_ref", "rkl_ref", "fkl_samples",
                                        "rkl_samples", "self_bleu", "kl_data", "loss", "divergence", "val_loss"};
    for (size_t i = 0; i < sizeof higher / sizeof *higher; i++)
        if (!strcmp(name, higher[i])) return GKD_DIR_HIGHER;
    for (size_t i = 0; i < sizeof lower / sizeof *lower; i++)
        if (!strcmp(name, lower[i])) return GKD_DIR_LOWER;
    return GKD_DIR_NONE;
}

double gkd_student_t975(int df) {
    /* t(0.975, df) for df = 1..30. */
    static const double table[30] = {
        12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
        2.364624252,  2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
        2.160368656,  2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
        2.093024054,  2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
        2.059538553,  2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456};
    if (df < 1) return NAN;
    if (df <= 30) return table[df - 1];
    /* Cornish-Fisher expansion around the normal quantile; error < 1e-7 for df > 30. */
    const double z = 1.959963984540054, v = df;
    double z2 = z * z, z3 = z2 * z, z5 = z3 * z2, z7 = z5 * z2, z9 = z7 * z2;
    return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
           (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v) +
           (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * v * v * v * v);
}

void gkd_table_free(gkd_table *t) {
    if (!t) return;
    for (int i = 0; i < t->nrows; i++) free(t->row_values[i]);
    for (int j = 0; j < t->ncols; j++) free(t->col_values[j]);
    for (int m = 0; m < t->nmetrics; m++) free(t->metrics[m]);
    free(t->row_values);
    free(t->col_values);
    free(t->metrics);
    free(t->rows);
    free(t->cols);
    free(t->where);
    free(t->stats);
    free(t->baseline_axis);
    free(t->baseline_value);
    free(t->cmps);
    free(t->ref_stats);
    for (int i = 0; i < t->nlabels; i++) free(t->label_keys[i]), free(t->label_texts[i]);
    free(t->label_keys);
    free(t->label_texts);
    free(t);
}

const gkd_table_stat *gkd_table_ref_at(const gkd_table *t, int r, int m, int j) {
    return &t->ref_stats[((size_t)r * t->nmetrics + m) * t->ncols + j];
}

const char *gkd_table_ref_name(gkd_table_ref ref) { return ref == GKD_REF_TEACHER ? "teacher" : "init"; }

const gkd_table_cmp *gkd_table_cmp_at(const gkd_table *t, int m, int i, int j) {
    return t->cmps ? &t->cmps[((size_t)m * t->nrows + i) * t->ncols + j] : NULL;
}

const gkd_table_stat *gkd_table_at_cell(const gkd_table *t, int m, int i, int j) {
    return &t->stats[((size_t)m * t->nrows + i) * t->ncols + j];
}

/* A group's values and the seed of each (its rank among the experiment's
 * seeds; 0 without a seed axis), for pairing. */
typedef struct {
    double *v;
    int *seed;
    int n, cap;
} dvec;

/* Whether d already holds a value of that seed (reference rows take one per seed). */
static int dvec_has_seed(const dvec *d, int seed) {
    for (int k = 0; k < d->n; k++)
        if (d->seed[k] == seed) return 1;
    return 0;
}

static int dvec_push(dvec *d, double x, int seed) {
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 4;
        double *p = realloc(d->v, (size_t)cap * sizeof *p);
        if (p) d->v = p;
        int *q = p ? realloc(d->seed, (size_t)cap * sizeof *q) : NULL;
        if (!p || !q) return gkd_error(GKD_ENOMEM, "out of memory");
        d->seed = q;
        d->cap = cap;
    }
    d->v[d->n] = x;
    d->seed[d->n++] = seed;
    return 0;
}

/* Values of axis `name` present among the selected cells, in axis order. */
static int present_values(char ***out, int *nout, const gkd_results *r, const char *name, const int *sel, int nsel) {
    int a = gkd_results_axis(r, name);
    char **vals = calloc((size_t)r->nvalues[a] + 1, sizeof *vals);
    if (!vals) return gkd_error(GKD_ENOMEM, "out of memory");
    int n = 0;
    for (int k = 0; k < r->nvalues[a]; k++) {
        int used = 0;
        for (int i = 0; i < nsel && !used; i++) {
            const char *v = gkd_result_cell_axis(&r->cells[sel[i]], name);
            used = v && !strcmp(v, r->values[a][k]);
        }
        if (used && !(vals[n++] = strdup(r->values[a][k]))) {
            for (int i = 0; i < n - 1; i++) free(vals[i]);
            free(vals);
            return gkd_error(GKD_ENOMEM, "out of memory");
        }
    }
    *out = vals;
    *nout = n;
    return 0;
}

static int index_of(char **list, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return i;
    return -1;
}

/* Mean, sample std and CI half-width of d. */
static void group_stat(gkd_table_stat *s, const dvec *d) {
    s->n = d->n;
    if (d->n == 0) return;
    double sum = 0;
    for (int k = 0; k < d->n; k++) sum += d->v[k];
    s->mean = sum / d->n;
    if (d->n > 1) {
        double ss = 0;
        for (int k = 0; k < d->n; k++) ss += (d->v[k] - s->mean) * (d->v[k] - s->mean);
        s->std = sqrt(ss / (d->n - 1));
        s->ci95 = gkd_student_t975(d->n - 1) * s->std / sqrt((double)d->n);
    }
}

static void finish_stats(gkd_table *t, dvec *groups) {
    size_t ngroups = (size_t)t->nmetrics * t->nrows * t->ncols;
    for (size_t g = 0; g < ngroups; g++) group_stat(&t->stats[g], &groups[g]);
    for (int m = 0; m < t->nmetrics; m++) {
        gkd_metric_dir dir = gkd_metric_direction(t->metrics[m]);
        if (dir == GKD_DIR_NONE) continue;
        for (int j = 0; j < t->ncols; j++) {
            int filled = 0, have = 0;
            double best = 0;
            for (int i = 0; i < t->nrows; i++) {
                const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
                if (!s->n) continue;
                filled++;
                if (!have || (dir == GKD_DIR_HIGHER ? s->mean > best : s->mean < best)) best = s->mean;
                have = 1;
            }
            if (filled < 2) continue; /* bold means "best among several" */
            for (int i = 0; i < t->nrows; i++) {
                gkd_table_stat *s = (gkd_table_stat *)gkd_table_at_cell(t, m, i, j);
                /* Means that differ only by rounding noise are ties. */
                s->best = s->n && fabs(s->mean - best) <= 1e-9 * fmax(1.0, fabs(best));
            }
        }
    }
}

/* Every group against the baseline group of its column (or row), over the
 * seeds both have; then Holm's correction over all comparisons. */
static int compare_to_baseline(gkd_table *t, const dvec *groups, int base) {
    size_t ng = (size_t)t->nmetrics * t->nrows * t->ncols;
    double *d = NULL, *p = malloc(ng * sizeof *p), *adj = malloc(ng * sizeof *adj);
    int rc = 0;
    if (!p || !adj) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (int m = 0; m < t->nmetrics; m++)
        for (int i = 0; i < t->nrows; i++)
            for (int j = 0; j < t->ncols; j++) {
                const size_t g = ((size_t)m * t->nrows + i) * t->ncols + j;
                const size_t b = t->baseline_on_rows ? ((size_t)m * t->nrows + base) * t->ncols + j
                                                     : ((size_t)m * t->nrows + i) * t->ncols + base;
                gkd_table_cmp *c = &t->cmps[g];
                c->p_holm = c->mde = NAN;
                c->n_needed = -1;
                p[g] = NAN;
                if (g == b) {
                    c->is_baseline = groups[g].n > 0;
                    continue;
                }
                const dvec *x = &groups[g], *y = &groups[b];
                free(d);
                if (!(d = malloc((size_t)(x->n + 1) * sizeof *d))) {
                    rc = gkd_error(GKD_ENOMEM, "out of memory");
                    goto done;
                }
                int n = 0;
                for (int k = 0; k < x->n; k++)
                    for (int l = 0; l < y->n; l++)
                        if (x->seed[k] == y->seed[l]) {
                            d[n++] = x->v[k] - y->v[l];
                            break;
                        }
                c->unpaired = x->n + y->n - 2 * n;
                if (n == 0) continue;
                c->has = 1;
                gkd_paired_test(&c->test, d, n);
                p[g] = c->test.p;
                t->ncompared += !isnan(c->test.p);
                if (t->power) {
                    c->mde = gkd_paired_mde(c->test.sd, n, GKD_TABLE_ALPHA, GKD_TABLE_POWER);
                    c->n_needed = gkd_paired_n_needed(c->test.mean, c->test.sd, GKD_TABLE_ALPHA, GKD_TABLE_POWER,
                                                      GKD_TABLE_N_MAX);
                }
            }
    gkd_holm(adj, p, (int)ng);
    for (size_t g = 0; g < ng; g++) {
        t->cmps[g].p_holm = adj[g];
        t->cmps[g].significant = !isnan(adj[g]) && adj[g] < GKD_TABLE_ALPHA;
    }
done:
    free(d);
    free(p);
    free(adj);
    return rc;
}

/* --reference LIST: the rows it names, in the order given. */
static int parse_refs(gkd_table *t, const char *list) {
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        gkd_table_ref ref;
        if (len == 7 && !strncmp(p, "teacher", 7)) ref = GKD_REF_TEACHER;
        else if (len == 4 && !strncmp(p, "init", 4)) ref = GKD_REF_INIT;
        else return gkd_error(GKD_EINVAL, "--reference: unknown row '%.*s' (known: teacher, init)", (int)len, p);
        for (int i = 0; i < t->nref; i++)
            if (t->refs[i] == ref) return gkd_error(GKD_EINVAL, "--reference: '%.*s' given twice", (int)len, p);
        t->refs[t->nref++] = ref;
        p += len;
        if (*p == ',') p++;
    }
    return t->nref ? 0 : gkd_error(GKD_EINVAL, "--reference: no row named (teacher, init)");
}

/* The eval.csv of the experiment's one teacher (shared/teacher-<hash>/). */
static int teacher_eval(gkd_csv **out, const char *dir) {
    char shared[4096], found[4400] = "";
    int n = 0;
    snprintf(shared, sizeof shared, "%s/shared", dir);
    DIR *d = opendir(shared);
    if (!d) return gkd_error(GKD_EINVAL, "--reference teacher: %s has no shared/ directory (no teacher was trained there)", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4400];
        if (strncmp(e->d_name, "teacher-", 8) || strstr(e->d_name, ".lock")) continue;
        snprintf(path, sizeof path, "%s/%s/eval.csv", shared, e->d_name);
        if (access(path, R_OK)) continue;
        if (n++ == 0) snprintf(found, sizeof found, "%s", path);
    }
    closedir(d);
    if (n != 1)
        return gkd_error(GKD_EINVAL, "--reference teacher: %s/shared holds %d trained teachers; it needs exactly one", dir, n);
    return gkd_csv_read(out, found);
}

/* The teacher's reference evaluation made by the cell in `dir`
 * (teacher_eval.csv, written by the runner): each metric's value once per
 * seed and column. *ncells counts the cells that have one; a cell without
 * it (made by an older gkd) leaves the table to the shared teacher's own
 * evaluation. */
static int collect_teacher(dvec *teach, int *ncells, const gkd_table *t, const char *dir, int j, int seed_rank) {
    size_t len = strlen(dir) + 24;
    char *path = malloc(len);
    if (!path) return gkd_error(GKD_ENOMEM, "out of memory");
    snprintf(path, len, "%s/teacher_eval.csv", dir);
    gkd_csv *tev = NULL;
    int rc = 0;
    if (access(path, F_OK) != 0) goto done;
    if ((rc = gkd_csv_read(&tev, path))) goto done;
    (*ncells)++;
    for (int m = 0; m < t->nmetrics; m++) {
        int col = gkd_csv_col(tev, t->metrics[m]);
        dvec *tv = &teach[(size_t)m * t->ncols + j];
        if (col < 0 || dvec_has_seed(tv, seed_rank)) continue;
        double v = 0;
        const table_summary at = {GKD_AT_FINAL, 0, 0, NULL};
        int have = table_cell_value(&v, tev, col, &at, GKD_DIR_NONE);
        if (have < 0) {
            rc = have;
            goto done;
        }
        if (have && (rc = dvec_push(tv, v, seed_rank))) goto done;
    }
done:
    gkd_csv_free(tev);
    free(path);
    return rc;
}

/* The reference rows' stats: the teacher's value (one run) and the
 * students' step-0 values (init, one per seed, grouped by column). */
static int reference_stats(gkd_table *t, const char *dir, const dvec *init, const dvec *teach) {
    int rc = 0;
    gkd_csv *tev = NULL;
    t->ref_stats = calloc((size_t)t->nref * t->nmetrics * t->ncols, sizeof *t->ref_stats);
    if (!t->ref_stats) return gkd_error(GKD_ENOMEM, "out of memory");
    for (int r = 0; r < t->nref; r++) {
        if (t->refs[r] == GKD_REF_INIT) {
            for (int m = 0; m < t->nmetrics; m++)
                for (int j = 0; j < t->ncols; j++)
                    group_stat((gkd_table_stat *)gkd_table_ref_at(t, r, m, j), &init[(size_t)m * t->ncols + j]);
            continue;
        }
        if (teach) {
            /* Every cell evaluated the teacher with its own settings. */
            t->teacher_per_cell = 1;
            for (int m = 0; m < t->nmetrics; m++)
                for (int j = 0; j < t->ncols; j++)
                    group_stat((gkd_table_stat *)gkd_table_ref_at(t, r, m, j), &teach[(size_t)m * t->ncols + j]);
            continue;
        }
        if ((rc = teacher_eval(&tev, dir))) goto done;
        for (int m = 0; m < t->nmetrics; m++) {
            int col = gkd_csv_col(tev, t->metrics[m]);
            double v = 0;
            /* The teacher has no distillation curve: its best or final value. */
            const table_summary at = {t->at == GKD_AT_BEST ? GKD_AT_BEST : GKD_AT_FINAL, 0, 0, NULL};
            int have = col >= 0 ? table_cell_value(&v, tev, col, &at, gkd_metric_direction(t->metrics[m])) : 0;
            if (have < 0) {
                rc = have;
                goto done;
            }
            for (int j = 0; j < t->ncols && have; j++) {
                gkd_table_stat *s = (gkd_table_stat *)gkd_table_ref_at(t, r, m, j);
                s->n = 1;
                s->mean = v;
            }
        }
    }
done:
    gkd_csv_free(tev);
    return rc;
}

/* The training time at each evaluation of the cell in `dir` (--at time),
 * from its timings.csv; *elapsed is replaced. */
static int training_time(double **elapsed, const gkd_csv *ev, const char *dir) {
    size_t len = strlen(dir) + 16;
    char *path = malloc(len);
    gkd_csv *tm = NULL;
    if (!path) return gkd_error(GKD_ENOMEM, "out of memory");
    snprintf(path, len, "%s/timings.csv", dir);
    free(*elapsed);
    *elapsed = NULL;
    int rc = gkd_csv_read(&tm, path);
    if (rc) rc = gkd_error_wrap(rc, "--at time needs each cell's timings.csv");
    else rc = table_eval_elapsed(elapsed, ev, tm);
    gkd_csv_free(tm);
    free(path);
    return rc;
}

/* The display names: --label first, so that it overrides the same key in
 * the experiment's labels (labels.csv), which follow. */
static int set_labels(gkd_table *t, const gkd_table_opts *o, const char *dir) {
    gkd_where *file = NULL;
    int nfile = 0, rc = gkd_results_labels(&file, &nfile, dir);
    if (rc) return rc;
    const int n = o->nlabels + nfile;
    if (n > 0) {
        t->label_keys = calloc((size_t)n, sizeof *t->label_keys);
        t->label_texts = calloc((size_t)n, sizeof *t->label_texts);
        if (!t->label_keys || !t->label_texts) rc = gkd_error(GKD_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n && !rc; i++) {
        const gkd_where *l = i < o->nlabels ? &o->labels[i] : &file[i - o->nlabels];
        if (!(t->label_keys[t->nlabels] = strdup(l->key)) || !(t->label_texts[t->nlabels] = strdup(l->value))) {
            free(t->label_keys[t->nlabels]);
            t->label_keys[t->nlabels] = NULL;
            rc = gkd_error(GKD_ENOMEM, "out of memory");
        } else {
            t->nlabels++;
        }
    }
    for (int i = 0; i < nfile; i++) gkd_where_free(&file[i]);
    free(file);
    return rc;
}

/* --baseline AXIS=VALUE: which axis and which of its values (present). */
static int set_baseline(gkd_table *t, const char *spec, int *base) {
    gkd_where w = {NULL, NULL};
    int rc = gkd_where_parse(&w, spec);
    if (rc) return gkd_error_wrap(rc, "--baseline");
    if (!strcmp(w.key, t->rows)) {
        t->baseline_on_rows = 1;
        *base = index_of(t->row_values, t->nrows, w.value);
    } else if (t->cols && !strcmp(w.key, t->cols)) {
        *base = index_of(t->col_values, t->ncols, w.value);
    } else {
        rc = gkd_error(GKD_EINVAL, "--baseline %s: '%s' is not the --rows axis (%s)%s%s%s", spec, w.key, t->rows,
                       t->cols ? " or the --cols axis (" : "", t->cols ? t->cols : "", t->cols ? ")" : "");
    }
    if (!rc && *base < 0)
        rc = gkd_error(GKD_EINVAL, "--baseline %s: no finished cell has %s=%s", spec, w.key, w.value);
    if (!rc) {
        t->baseline_axis = w.key;
        t->baseline_value = w.value;
        w.key = w.value = NULL;
    }
    gkd_where_free(&w);
    return rc;
}

int gkd_table_build(gkd_table **out, const char *dir, const gkd_table_opts *o) {
    int rc = 0, *sel = NULL, nsel = 0, nskipped = 0;
    gkd_results *r = NULL;
    gkd_csv *ev = NULL;
    dvec *groups = NULL, *init = NULL, *teach = NULL;
    int nteach_cells = 0;
    size_t ninit_alloc = 0;
    int *metric_seen = NULL;
    double *elapsed = NULL;
    char *path = NULL;
    size_t ngroups_alloc = 0;
    gkd_table *t = calloc(1, sizeof *t);
    if (!t) return gkd_error(GKD_ENOMEM, "out of memory");
    if (!o->rows) {
        rc = gkd_error(GKD_EINVAL, "a --rows axis is required");
        goto done;
    }
    if (o->nmetrics < 1) {
        rc = gkd_error(GKD_EINVAL, "at least one --metric is required");
        goto done;
    }
    if (o->cols && !strcmp(o->rows, o->cols)) {
        rc = gkd_error(GKD_EINVAL, "--rows and --cols name the same axis '%s'", o->rows);
        goto done;
    }
    if (o->power && !o->baseline) {
        rc = gkd_error(GKD_EINVAL, "--power needs a --baseline to compare with");
        goto done;
    }
    if (o->reference && (rc = parse_refs(t, o->reference))) goto done;
    if ((rc = set_labels(t, o, dir))) goto done;
    for (int m = 0; m < o->nmetrics; m++)
        if (o->at == GKD_AT_BEST && gkd_metric_direction(o->metrics[m]) == GKD_DIR_NONE) {
            rc = gkd_error(GKD_EINVAL, "--at best: metric '%s' has no better direction (use --at final)",
                           o->metrics[m]);
            goto done;
        }
    if ((rc = gkd_results_open(&r, dir))) goto done;
    const char *grouped[2] = {o->rows, o->cols};
    if ((rc = gkd_results_select(&sel, &nsel, &nskipped, r, o->where, o->nwhere, grouped, 2))) goto done;
    t->at = o->at;
    t->at_step = o->at_step;
    t->at_seconds = o->at_seconds;
    table_summary summary = {o->at, o->at_step, o->at_seconds, NULL};
    t->ncells = nsel;
    t->nskipped = nskipped;
    t->nmetrics = o->nmetrics;
    if (!(t->rows = strdup(o->rows)) || (o->cols && !(t->cols = strdup(o->cols)))) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = present_values(&t->row_values, &t->nrows, r, o->rows, sel, nsel))) goto done;
    if (o->cols) {
        if ((rc = present_values(&t->col_values, &t->ncols, r, o->cols, sel, nsel))) goto done;
    } else {
        t->col_values = calloc(1, sizeof *t->col_values);
        if (!t->col_values || !(t->col_values[0] = strdup(""))) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
        t->ncols = 1;
    }
    t->metrics = calloc((size_t)o->nmetrics, sizeof *t->metrics);
    if (!t->metrics) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (int m = 0; m < o->nmetrics; m++)
        if (!(t->metrics[m] = strdup(o->metrics[m]))) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
    if (o->nwhere > 0) {
        size_t len = 1;
        for (int i = 0; i < o->nwhere; i++) len += strlen(o->where[i].key) + strlen(o->where[i].value) + 3;
        if (!(t->where = malloc(len))) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
        size_t n = 0;
        for (int i = 0; i < o->nwhere; i++)
            n += (size_t)snprintf(t->where + n, len - n, "%s%s=%s", i ? ", " : "", o->where[i].key, o->where[i].value);
    }
    size_t ngroups = (size_t)t->nmetrics * t->nrows * t->ncols;
    t->stats = calloc(ngroups, sizeof *t->stats);
    groups = calloc(ngroups, sizeof *groups);
    if (groups) ngroups_alloc = ngroups;
    metric_seen = calloc((size_t)t->nmetrics, sizeof *metric_seen);
    init = calloc((size_t)t->nmetrics * t->ncols, sizeof *init);
    teach = calloc((size_t)t->nmetrics * t->ncols, sizeof *teach);
    if (init && teach) ninit_alloc = (size_t)t->nmetrics * t->ncols;
    if (!t->stats || !groups || !metric_seen || !init || !teach) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (int s = 0; s < nsel; s++) {
        const gkd_result_cell *c = &r->cells[sel[s]];
        free(path);
        size_t len = strlen(c->dir) + 16;
        if (!(path = malloc(len))) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
        snprintf(path, len, "%s/eval.csv", c->dir);
        gkd_csv_free(ev);
        ev = NULL;
        if ((rc = gkd_csv_read(&ev, path))) goto done;
        if (o->at == GKD_AT_TIME && (rc = training_time(&elapsed, ev, c->dir))) goto done;
        summary.elapsed = elapsed;
        const char *rv = gkd_result_cell_axis(c, o->rows), *cv = o->cols ? gkd_result_cell_axis(c, o->cols) : "";
        if (!rv || !cv) { /* another cell has the axis, this one's axes.csv not */
            rc = gkd_error(GKD_EFORMAT, "%s/axes.csv: no value for the axis '%s'", c->dir, rv ? o->cols : o->rows);
            goto done;
        }
        int i = index_of(t->row_values, t->nrows, rv);
        int j = o->cols ? index_of(t->col_values, t->ncols, cv) : 0;
        const int seed_axis = gkd_results_axis(r, "seed");
        const char *seed = gkd_result_cell_axis(c, "seed");
        const int seed_rank = seed_axis >= 0 && seed ? gkd_results_value_rank(r, seed_axis, seed) : 0;
        for (int m = 0; m < t->nmetrics; m++) {
            int col = gkd_csv_col(ev, t->metrics[m]);
            if (col < 0) continue;
            metric_seen[m] = 1;
            double v = 0;
            rc = table_cell_value(&v, ev, col, &summary, gkd_metric_direction(t->metrics[m]));
            if (rc < 0) goto done;
            if (rc == 1 && (rc = dvec_push(&groups[((size_t)m * t->nrows + i) * t->ncols + j], v, seed_rank)))
                goto done;
            /* The student before distillation: once per seed and column. */
            dvec *iv = &init[(size_t)m * t->ncols + j];
            int seen = dvec_has_seed(iv, seed_rank);
            if (!seen && (rc = table_first_value(&v, ev, col)) < 0) goto done;
            if (!seen && rc == 1 && (rc = dvec_push(iv, v, seed_rank))) goto done;
            rc = 0;
        }
        if (t->nref && (rc = collect_teacher(teach, &nteach_cells, t, c->dir, j, seed_rank))) goto done;
    }
    for (int m = 0; m < t->nmetrics; m++)
        if (!metric_seen[m]) {
            char cols[512];
            size_t n = 0;
            cols[0] = '\0';
            for (int k = 0; k < ev->ncols && n + 1 < sizeof cols; k++)
                if (strcmp(ev->header[k], "step"))
                    n += (size_t)snprintf(cols + n, sizeof cols - n, "%s%s", n ? ", " : "", ev->header[k]);
            rc = gkd_error(GKD_EINVAL, "unknown metric '%s': no eval.csv of %s has that column (columns: %s)",
                           t->metrics[m], dir, cols);
            goto done;
        }
    finish_stats(t, groups);
    if (t->nref && (rc = reference_stats(t, dir, init, nteach_cells == nsel ? teach : NULL))) goto done;
    if (o->baseline) {
        int base = -1;
        t->power = o->power;
        if ((rc = set_baseline(t, o->baseline, &base))) goto done;
        if (!(t->cmps = calloc(ngroups, sizeof *t->cmps))) {
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            goto done;
        }
        if ((rc = compare_to_baseline(t, groups, base))) goto done;
    }
    *out = t;
    t = NULL;
done:
    for (size_t g = 0; groups && g < ngroups_alloc; g++) free(groups[g].v), free(groups[g].seed);
    for (size_t g = 0; init && g < ninit_alloc; g++) free(init[g].v), free(init[g].seed);
    for (size_t g = 0; teach && g < ninit_alloc; g++) free(teach[g].v), free(teach[g].seed);
    free(init);
    free(teach);
    free(groups);
    free(metric_seen);
    free(elapsed);
    free(path);
    free(sel);
    gkd_csv_free(ev);
    gkd_results_free(r);
    gkd_table_free(t);
    return rc;
}

/* ---- rendering ---------------------------------------------------------- */

/* Display names for papers (LaTeX source). */
static const struct {
    const char *name, *latex;
} LATEX_NAMES[] = {
    {"exact_match", "Exact match"}, {"char_accuracy", "Char.\\ accuracy"}, {"token_accuracy", "Token accuracy"},
    {"bleu", "BLEU"}, {"chrf", "chrF"}, {"rouge_l", "ROUGE-L"}, {"nll_ref", "NLL of references"},
    {"teacher_nll", "Teacher NLL"}, {"fkl_ref", "KL(teacher $\\|$ student)"},
    {"rkl_ref", "KL(student $\\|$ teacher)"}, {"fkl_samples", "KL(teacher $\\|$ student), samples"},
    {"rkl_samples", "KL(student $\\|$ teacher), samples"}, {"accept_rate", "Acceptance rate"},
    {"accept_tokens", "Accepted tokens"}, {"distinct_1", "Distinct-1"}, {"distinct_2", "Distinct-2"},
    {"self_bleu", "Self-BLEU"}, {"mean_len", "Mean length"}, {"eos_rate", "EOS rate"},
    {"precision", "Precision"}, {"coverage", "Coverage"}, {"kl_data", "KL(data $\\|$ student)"},
    {"val_loss", "Validation loss"},
    {"lambda", "$\\lambda$"}, {"divergence", "Divergence"}, {"variant", "Variant"}, {"seed", "Seed"},
    {"temperature", "Temperature"}, {"seqkd", "SeqKD fraction"}, {"teacher_mix", "Teacher mix"},
};

const char *gkd_table_latex_name(const char *name) {
    for (size_t i = 0; i < sizeof LATEX_NAMES / sizeof LATEX_NAMES[0]; i++)
        if (!strcmp(LATEX_NAMES[i].name, name)) return LATEX_NAMES[i].latex;
    return NULL;
}

static void latex_escape(char *out, size_t size, const char *s);

/* The label text for key (--label before labels.csv), or NULL. */
static const char *user_label(const gkd_table *t, const char *key) {
    for (int i = 0; i < t->nlabels; i++)
        if (!strcmp(t->label_keys[i], key)) return t->label_texts[i];
    return NULL;
}

/* LaTeX for a metric or an axis name: a label, the built-in name, or the
 * name escaped. */
static void latex_name(char *out, size_t size, const gkd_table *t, const char *name) {
    const char *l = user_label(t, name);
    if (!l) l = gkd_table_latex_name(name);
    if (l) snprintf(out, size, "%s", l);
    else latex_escape(out, size, name);
}

/* LaTeX for a value of an axis: a label AXIS:VALUE, else escaped. */
static void latex_value(char *out, size_t size, const gkd_table *t, const char *axis, const char *value) {
    char key[512];
    snprintf(key, sizeof key, "%s:%s", axis, value);
    const char *l = user_label(t, key);
    if (l) snprintf(out, size, "%s", l);
    else latex_escape(out, size, value);
}

/* A column header: "$\lambda = 0$" when the axis name is one formula and
 * the value has no label of its own, else "Name = value". */
static void latex_column(char *out, size_t size, const gkd_table *t, const char *value) {
    char name[512], v[512], key[512];
    latex_name(name, sizeof name, t, t->cols);
    snprintf(key, sizeof key, "%s:%s", t->cols, value);
    const size_t n = strlen(name);
    const int formula = n >= 2 && name[0] == '$' && name[n - 1] == '$' && memchr(name + 1, '$', n - 2) == NULL;
    latex_value(v, sizeof v, t, t->cols, value);
    if (formula && !user_label(t, key)) {
        char *end;
        strtod(value, &end);
        if (*value && !*end) snprintf(out, size, "$%.*s = %s$", (int)(n - 2), name + 1, value);
        else snprintf(out, size, "$%.*s = $ %s", (int)(n - 2), name + 1, v);
    } else {
        snprintf(out, size, "%s = %s", name, v);
    }
}


static void latex_escape(char *out, size_t size, const char *s) {
    size_t n = 0;
    out[0] = '\0';
    for (; *s && n + 20 < size; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '_': rep = "\\_"; break;
        case '%': rep = "\\%"; break;
        case '&': rep = "\\&"; break;
        case '#': rep = "\\#"; break;
        case '$': rep = "\\$"; break;
        case '{': rep = "\\{"; break;
        case '}': rep = "\\}"; break;
        case '~': rep = "\\textasciitilde{}"; break;
        case '^': rep = "\\textasciicircum{}"; break;
        case '\\': rep = "\\textbackslash{}"; break;
        default: break;
        }
        if (rep) n += (size_t)snprintf(out + n, size - n, "%s", rep);
        else out[n++] = *s, out[n] = '\0';
    }
}

static void md_escape(char *out, size_t size, const char *s) {
    size_t n = 0;
    out[0] = '\0';
    for (; *s && n + 4 < size; s++) {
        if (*s == '|' || *s == '*' || *s == '\\') out[n++] = '\\';
        out[n++] = *s;
        out[n] = '\0';
    }
}

/* The common n of all non-empty groups, or 0 when it varies. */
static int uniform_n(const gkd_table *t) {
    int n = -1;
    size_t ng = (size_t)t->nmetrics * t->nrows * t->ncols;
    for (size_t g = 0; g < ng; g++) {
        if (!t->stats[g].n) continue;
        if (n < 0) n = t->stats[g].n;
        else if (n != t->stats[g].n) return 0;
    }
    return n < 0 ? 0 : n;
}

/* Cell text: mean, "± spread" when n > 1, " (n=k)" when n varies. */
static void cell_text(char *out, size_t size, const gkd_table_stat *s, int latex, int ci95, int digits, int un) {
    if (!s->n) {
        snprintf(out, size, "%s", latex ? "--" : "–");
        return;
    }
    int k = snprintf(out, size, "%.*f", digits, s->mean);
    if (s->n > 1)
        k += snprintf(out + k, size - (size_t)k, " %s %.*f", latex ? "$\\pm$" : "±", digits, ci95 ? s->ci95 : s->std);
    if (!un) snprintf(out + k, size - (size_t)k, latex ? " {\\scriptsize ($n{=}%d$)}" : " (n=%d)", s->n);
}

/* A p-value in three decimals, or "< 0.001". */
static void p_text(char *out, size_t size, double p) {
    if (p < 0.001) snprintf(out, size, "p < 0.001");
    else snprintf(out, size, "p = %.3f", p);
}

/* After a cell's mean: its comparison with the baseline. */
static void cmp_text(char *out, size_t size, const gkd_table_cmp *c, int latex, int digits, int power) {
    out[0] = '\0';
    if (!c) return;
    if (c->is_baseline) {
        snprintf(out, size, " (baseline)");
        return;
    }
    if (!c->has) return;
    char p[32] = "", pairs[48] = "", pw[96] = "";
    if (!isnan(c->test.p)) p_text(p, sizeof p, c->test.p);
    if (c->unpaired) snprintf(pairs, sizeof pairs, latex ? ", $%d$ pairs" : ", %d pairs", c->test.n);
    if (power && !isnan(c->mde)) {
        char need[32];
        if (c->n_needed < 0) snprintf(need, sizeof need, "> %d", GKD_TABLE_N_MAX);
        else snprintf(need, sizeof need, "%d", c->n_needed);
        snprintf(pw, sizeof pw, latex ? "; MDE $%.*f$, $n_{80} %s%s$" : "; MDE %.*f, n80 %s%s", digits, c->mde,
                 c->n_needed < 0 ? "" : "= ", need);
    }
    const char *sig = c->significant ? (latex ? "$^{\\dagger}$" : "†") : "";
    if (latex) {
        if (isnan(c->test.lo))
            snprintf(out, size, " ($\\Delta = %+.*f$%s%s)%s", digits, c->test.mean, pairs, pw, sig);
        else
            snprintf(out, size, " ($\\Delta = %+.*f$ $[%+.*f, %+.*f]$, $%s$%s%s)%s", digits, c->test.mean, digits,
                     c->test.lo, digits, c->test.hi, p, pairs, pw, sig);
    } else {
        if (isnan(c->test.lo))
            snprintf(out, size, " (Δ %+.*f%s%s)%s", digits, c->test.mean, pairs, pw, sig);
        else
            snprintf(out, size, " (Δ %+.*f [%+.*f, %+.*f], %s%s%s)%s", digits, c->test.mean, digits, c->test.lo,
                     digits, c->test.hi, p, pairs, pw, sig);
    }
}

static const char *arrow(const char *metric, int latex) {
    gkd_metric_dir d = gkd_metric_direction(metric);
    if (d == GKD_DIR_HIGHER) return latex ? " $\\uparrow$" : " ↑";
    if (d == GKD_DIR_LOWER) return latex ? " $\\downarrow$" : " ↓";
    return "";
}

/* What each cell's number is, for the caption. */
static void summary_phrase(char *out, size_t size, const gkd_table *t) {
    switch (t->at) {
    case GKD_AT_BEST: snprintf(out, size, "at the best evaluation"); break;
    case GKD_AT_AUC:
        snprintf(out, size, "as the area under the evaluation curve over training steps (trapezoid rule) divided by "
                            "the steps it spans: the mean value over training");
        break;
    case GKD_AT_STEP: snprintf(out, size, "at the evaluation of step %ld", t->at_step); break;
    case GKD_AT_TIME:
        snprintf(out, size, "at the last evaluation within %g s of training by the wall clock (the step times of "
                            "timings.csv added up), so on another machine or under another load the numbers differ",
                 t->at_seconds);
        break;
    default: snprintf(out, size, "at the final evaluation"); break;
    }
}

/* One sentence under the table: what the numbers are. */
static void caption(char *out, size_t size, const gkd_table *t, int latex, int ci95) {
    int un = uniform_n(t);
    const char *pm = latex ? "$\\pm$" : "±";
    size_t k = 0;
    if (t->nmetrics == 1) {
        char name[256];
        if (latex) latex_name(name, sizeof name, t, t->metrics[0]);
        else snprintf(name, sizeof name, "%s", t->metrics[0]);
        k += (size_t)snprintf(out + k, size - k, "%s%s: ", name, arrow(t->metrics[0], latex));
    }
    const char *spread = ci95 ? "95% CI half-width (Student t, n-1 df)" : "sample std (n-1)";
    if (latex) spread = ci95 ? "95\\% CI half-width (Student $t$, $n-1$ df)" : "sample std ($n-1$)";
    if (un == 1)
        k += (size_t)snprintf(out + k, size - k, "single run per cell (%s)", latex ? "$n = 1$" : "n = 1");
    else if (un > 1)
        k += (size_t)snprintf(out + k, size - k, "mean %s %s over %s%d%s seeds per cell", pm, spread,
                              latex ? "$n = " : "n = ", un, latex ? "$" : "");
    else
        k += (size_t)snprintf(out + k, size - k, "mean %s %s over seeds, n per cell in parentheses (mean only for %s)",
                              pm, spread, latex ? "$n = 1$" : "n = 1");
    char phrase[256];
    summary_phrase(phrase, sizeof phrase, t);
    k += (size_t)snprintf(out + k, size - k, ", %s", phrase);
    if (t->where) {
        char w[512];
        if (latex) latex_escape(w, sizeof w, t->where);
        else snprintf(w, sizeof w, "%s", t->where);
        k += (size_t)snprintf(out + k, size - k, "; %s", w);
    }
    int any_dir = 0;
    for (int m = 0; m < t->nmetrics; m++) any_dir |= gkd_metric_direction(t->metrics[m]) != GKD_DIR_NONE;
    if (any_dir && t->nrows > 1) k += (size_t)snprintf(out + k, size - k, "; best per column in bold");
    k += (size_t)snprintf(out + k, size - k, ".");
    for (int r = 0; r < t->nref; r++)
        k += (size_t)snprintf(out + k, size - k, "%s",
                              t->refs[r] == GKD_REF_TEACHER && t->teacher_per_cell
                                  ? (t->at == GKD_AT_FINAL || t->at == GKD_AT_BEST
                                         ? " Reference row teacher: the grid's teacher evaluated by every cell with "
                                           "the cell's own evaluation settings and prompts (teacher_eval.csv), once "
                                           "per seed."
                                         : " Reference row teacher: the grid's teacher evaluated by every cell with "
                                           "the cell's own evaluation settings and prompts (teacher_eval.csv), once "
                                           "per seed; it has no distillation curve, so that one evaluation is shown.")
                              : t->refs[r] == GKD_REF_TEACHER
                                  ? (t->at == GKD_AT_FINAL || t->at == GKD_AT_BEST
                                         ? " Reference row teacher: the grid's teacher after its training, from its "
                                           "own evaluation (shared/teacher-*/eval.csv, the first eval.n eval prompts, no samples; "
                                           "one run)."
                                         : " Reference row teacher: the grid's teacher after its training, from its "
                                           "own evaluation (shared/teacher-*/eval.csv, the first eval.n eval prompts, no samples; "
                                           "one run), at its final evaluation: it has no distillation curve.")
                                  : " Reference row init: the students before distillation, their evaluation at step 0 "
                                    "(one per seed).");
    if (!t->cmps) return;
    char base[512];
    snprintf(base, sizeof base, "%s=%s", t->baseline_axis, t->baseline_value);
    if (latex) {
        char e[512];
        latex_escape(e, sizeof e, base);
        snprintf(base, sizeof base, "%s", e);
    }
    k += (size_t)snprintf(out + k, size - k,
                          latex ? " $\\Delta$: mean paired difference to %s in the same %s, over the seeds both cells "
                                  "have, with its 95\\%% CI (paired $t$); $p$: two-sided exact sign-flip permutation "
                                  "test for $n \\le %d$ pairs, paired $t$-test above; $^{\\dagger}$: significant at "
                                  "$%.2f$ after Holm's correction over the %d comparisons in the table."
                                : " Δ: mean paired difference to %s in the same %s, over the seeds both cells have, "
                                  "with its 95%% CI (paired t); p: two-sided exact sign-flip permutation test for "
                                  "n ≤ %d pairs, paired t-test above; †: significant at %.2f after Holm's "
                                  "correction over the %d comparisons in the table.",
                          base, t->baseline_on_rows ? "column" : "row", GKD_PERM_MAX, GKD_TABLE_ALPHA, t->ncompared);
    if (t->power)
        snprintf(out + k, size - k,
                 latex ? " MDE: the smallest paired difference the paired $t$-test detects with %.0f\\%% power at "
                         "$%.2f$, given the observed std of the differences and $n$; $n_{80}$: pairs needed to "
                         "detect the observed difference so."
                       : " MDE: the smallest paired difference the paired t-test detects with %.0f%% power at %.2f, "
                         "given the observed std of the differences and n; n80: pairs needed to detect the "
                         "observed difference so.",
                 100 * GKD_TABLE_POWER, GKD_TABLE_ALPHA);
}

/* Bold in print: the cell's mean prints the same as the best mean of its
 * column (a tie in print is a tie to the reader: 0.479 and 0.479 are both
 * bold even when the values behind them differ in the fourth digit). */
static int bold_in_print(const gkd_table *t, int m, int i, int j, int digits) {
    const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
    if (!s->n) return 0;
    for (int k = 0; k < t->nrows; k++) {
        const gkd_table_stat *b = gkd_table_at_cell(t, m, k, j);
        if (!b->best) continue;
        char x[64], y[64];
        snprintf(x, sizeof x, "%.*f", digits, s->mean);
        snprintf(y, sizeof y, "%.*f", digits, b->mean);
        if (!strcmp(x, y)) return 1;
    }
    return 0;
}

static const char *ref_label(gkd_table_ref ref) {
    return ref == GKD_REF_TEACHER ? "teacher" : "init (step 0)";
}

/* cell_text's "n is uniform" flag for reference row r: the teacher is one
 * run (never "(n=1)"); the init row names its n when it differs. */
static int ref_un(const gkd_table *t, int r, int un) {
    if (t->refs[r] == GKD_REF_TEACHER) return 1;
    for (int m = 0; m < t->nmetrics; m++)
        for (int j = 0; j < t->ncols; j++)
            if (gkd_table_ref_at(t, r, m, j)->n != un) return 0;
    return un;
}

static int render_md(gkd_csv_buf *b, const gkd_table *t, int ci95, int digits) {
    char a[512], c[512];
    int rc = 0, un = uniform_n(t);
    md_escape(a, sizeof a, t->rows);
    rc |= gkd_csv_buf_printf(b, "| %s |", a);
    for (int m = 0; m < t->nmetrics; m++)
        for (int j = 0; j < t->ncols; j++) {
            md_escape(c, sizeof c, t->col_values[j]);
            if (!t->cols) rc |= gkd_csv_buf_printf(b, " %s%s |", t->metrics[m], arrow(t->metrics[m], 0));
            else if (t->nmetrics == 1) rc |= gkd_csv_buf_printf(b, " %s=%s |", t->cols, c);
            else rc |= gkd_csv_buf_printf(b, " %s%s (%s=%s) |", t->metrics[m], arrow(t->metrics[m], 0), t->cols, c);
        }
    rc |= gkd_csv_buf_printf(b, "\n| :-- |");
    for (int k = 0; k < t->nmetrics * t->ncols; k++) rc |= gkd_csv_buf_printf(b, " --: |");
    rc |= gkd_csv_buf_printf(b, "\n");
    for (int r = 0; r < t->nref; r++) {
        rc |= gkd_csv_buf_printf(b, "| *%s* |", ref_label(t->refs[r]));
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                cell_text(c, sizeof c, gkd_table_ref_at(t, r, m, j), 0, ci95, digits, ref_un(t, r, un));
                rc |= gkd_csv_buf_printf(b, " %s |", c);
            }
        rc |= gkd_csv_buf_printf(b, "\n");
    }
    for (int i = 0; i < t->nrows; i++) {
        md_escape(a, sizeof a, t->row_values[i]);
        rc |= gkd_csv_buf_printf(b, "| %s |", a);
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
                char x[512];
                cell_text(c, sizeof c, s, 0, ci95, digits, un);
                cmp_text(x, sizeof x, gkd_table_cmp_at(t, m, i, j), 0, digits, t->power);
                rc |= gkd_csv_buf_printf(b, bold_in_print(t, m, i, j, digits) ? " **%s**%s |" : " %s%s |", c, x);
            }
        rc |= gkd_csv_buf_printf(b, "\n");
    }
    char cap[4096];
    caption(cap, sizeof cap, t, 0, ci95);
    rc |= gkd_csv_buf_printf(b, "\n%c%s\n", cap[0] >= 'a' && cap[0] <= 'z' && t->nmetrics != 1 ? cap[0] - 32 : cap[0], cap + 1);
    return rc ? GKD_ENOMEM : 0;
}

static int render_latex(gkd_csv_buf *b, const gkd_table *t, int ci95, int digits) {
    char a[512], c[1040]; /* c: a column header, "name = value" of two 511-byte parts */
    int rc = 0, un = uniform_n(t);
    rc |= gkd_csv_buf_printf(b, "\\begin{table}[t]\n\\centering\n\\begin{tabular}{l");
    for (int k = 0; k < t->nmetrics * t->ncols; k++) rc |= gkd_csv_buf_printf(b, "c");
    rc |= gkd_csv_buf_printf(b, "}\n\\toprule\n");
    latex_name(a, sizeof a, t, t->rows);
    if (t->cols) {
        for (int m = 0; m < t->nmetrics; m++) {
            latex_name(c, sizeof c, t, t->metrics[m]);
            rc |= gkd_csv_buf_printf(b, " & \\multicolumn{%d}{c}{%s%s}", t->ncols, c, arrow(t->metrics[m], 1));
        }
        rc |= gkd_csv_buf_printf(b, " \\\\\n");
        for (int m = 0; m < t->nmetrics; m++)
            rc |= gkd_csv_buf_printf(b, "%s\\cmidrule(lr){%d-%d}", m ? " " : "", 2 + m * t->ncols, 1 + (m + 1) * t->ncols);
        rc |= gkd_csv_buf_printf(b, "\n%s", a);
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                latex_column(c, sizeof c, t, t->col_values[j]);
                rc |= gkd_csv_buf_printf(b, " & %s", c);
            }
    } else {
        rc |= gkd_csv_buf_printf(b, "%s", a);
        for (int m = 0; m < t->nmetrics; m++) {
            latex_name(c, sizeof c, t, t->metrics[m]);
            rc |= gkd_csv_buf_printf(b, " & %s%s", c, arrow(t->metrics[m], 1));
        }
    }
    rc |= gkd_csv_buf_printf(b, " \\\\\n\\midrule\n");
    for (int r = 0; r < t->nref; r++) {
        rc |= gkd_csv_buf_printf(b, "\\textit{%s}", ref_label(t->refs[r]));
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                cell_text(c, sizeof c, gkd_table_ref_at(t, r, m, j), 1, ci95, digits, ref_un(t, r, un));
                rc |= gkd_csv_buf_printf(b, " & %s", c);
            }
        rc |= gkd_csv_buf_printf(b, r + 1 < t->nref ? " \\\\\n" : " \\\\\n\\midrule\n");
    }
    for (int i = 0; i < t->nrows; i++) {
        latex_value(a, sizeof a, t, t->rows, t->row_values[i]);
        rc |= gkd_csv_buf_printf(b, "%s", a);
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
                char x[512];
                cell_text(c, sizeof c, s, 1, ci95, digits, un);
                cmp_text(x, sizeof x, gkd_table_cmp_at(t, m, i, j), 1, digits, t->power);
                rc |= gkd_csv_buf_printf(b, bold_in_print(t, m, i, j, digits) ? " & \\textbf{%s}%s" : " & %s%s", c,
                                         x);
            }
        rc |= gkd_csv_buf_printf(b, " \\\\\n");
    }
    char cap[4096];
    caption(cap, sizeof cap, t, 1, ci95);
    rc |= gkd_csv_buf_printf(b, "\\bottomrule\n\\end{tabular}\n\\caption{%c%s}\n\\end{table}\n",
              cap[0] >= 'a' && cap[0] <= 'z' && t->nmetrics != 1 ? cap[0] - 32 : cap[0], cap + 1);
    return rc ? GKD_ENOMEM : 0;
}

/* The CSV columns of a comparison (render_csv), mde80 and n80 only with
 * --power; csv_cmp writes one field for each. */
static const char *const CMP_COLS[] = {"baseline", "pairs", "unpaired", "diff", "diff_sd", "diff_lo", "diff_hi",
                                       "t", "p_t", "p_perm", "p", "p_holm", "significant", "mde80", "n80"};
#define N_CMP_COLS(power) ((int)(sizeof CMP_COLS / sizeof CMP_COLS[0]) - ((power) ? 0 : 2))

/* A number, or an empty field for NaN (not computed). */
static int csv_num(gkd_csv_buf *b, double x) { return isnan(x) ? gkd_csv_buf_empty(b) : gkd_csv_buf_double(b, x); }

/* The comparison columns of one cell (empty where it has none). */
static int csv_cmp(gkd_csv_buf *b, const gkd_table_cmp *c, int power) {
    int rc = gkd_csv_buf_long(b, c->is_baseline);
    if (!c->has) {
        for (int k = 1; k < N_CMP_COLS(power); k++) rc |= gkd_csv_buf_empty(b);
        return rc;
    }
    rc |= gkd_csv_buf_long(b, c->test.n) | gkd_csv_buf_long(b, c->unpaired);
    rc |= csv_num(b, c->test.mean) | csv_num(b, c->test.sd) | csv_num(b, c->test.lo) | csv_num(b, c->test.hi);
    rc |= csv_num(b, c->test.t) | csv_num(b, c->test.p_t) | csv_num(b, c->test.p_perm) | csv_num(b, c->test.p);
    rc |= csv_num(b, c->p_holm) | gkd_csv_buf_long(b, c->significant);
    if (power) rc |= csv_num(b, c->mde) | gkd_csv_buf_long(b, c->n_needed);
    return rc;
}

/* The summary as the CSV's `at` column says it; the default (final) has
 * no column, so its CSV reads as it always has. */
static int csv_at(gkd_csv_buf *b, const gkd_table *t, int header) {
    if (t->at == GKD_AT_FINAL) return 0;
    if (header) return gkd_csv_buf_str(b, "at");
    char spec[64];
    if (t->at == GKD_AT_STEP) {
        snprintf(spec, sizeof spec, "step=%ld", t->at_step);
        return gkd_csv_buf_str(b, spec);
    }
    if (t->at == GKD_AT_TIME) {
        snprintf(spec, sizeof spec, "time=%g (wall-clock seconds; machine-dependent)", t->at_seconds);
        return gkd_csv_buf_str(b, spec);
    }
    return gkd_csv_buf_str(b, t->at == GKD_AT_BEST ? "best" : "auc");
}

/* The same for reference row r: the teacher has no distillation curve
 * (its final value, or its best), init is the first evaluation. */
static int csv_ref_at(gkd_csv_buf *b, const gkd_table *t, int r) {
    if (t->at == GKD_AT_FINAL) return 0;
    if (t->refs[r] == GKD_REF_INIT) return gkd_csv_buf_str(b, "first");
    return gkd_csv_buf_str(b, t->at == GKD_AT_BEST ? "best" : "final");
}

static int render_csv(gkd_csv_buf *b, const gkd_table *t, int ci95) {
    int rc = 0;
    if (t->nref) rc |= gkd_csv_buf_str(b, "reference");
    rc |= gkd_csv_buf_str(b, t->rows);
    if (t->cols) rc |= gkd_csv_buf_str(b, t->cols);
    rc |= gkd_csv_buf_str(b, "metric");
    rc |= csv_at(b, t, 1);
    rc |= gkd_csv_buf_str(b, "mean");
    rc |= gkd_csv_buf_str(b, "std");
    rc |= gkd_csv_buf_str(b, "n");
    if (ci95) rc |= gkd_csv_buf_str(b, "ci95");
    for (int k = 0; t->cmps && k < N_CMP_COLS(t->power); k++) rc |= gkd_csv_buf_str(b, CMP_COLS[k]);
    rc |= gkd_csv_buf_end_row(b);
    /* Reference rows first: their name, an empty <rows> value, no comparison. */
    for (int r = 0; r < t->nref; r++)
        for (int m = 0; m < t->nmetrics; m++)
            for (int j = 0; j < t->ncols; j++) {
                const gkd_table_stat *s = gkd_table_ref_at(t, r, m, j);
                rc |= gkd_csv_buf_str(b, gkd_table_ref_name(t->refs[r])) | gkd_csv_buf_empty(b);
                if (t->cols) rc |= gkd_csv_buf_str(b, t->col_values[j]);
                rc |= gkd_csv_buf_str(b, t->metrics[m]);
                rc |= csv_ref_at(b, t, r);
                rc |= s->n ? gkd_csv_buf_double(b, s->mean) : gkd_csv_buf_empty(b);
                rc |= s->n > 1 ? gkd_csv_buf_double(b, s->std) : gkd_csv_buf_empty(b);
                rc |= gkd_csv_buf_long(b, s->n);
                if (ci95) rc |= s->n > 1 ? gkd_csv_buf_double(b, s->ci95) : gkd_csv_buf_empty(b);
                for (int k = 0; t->cmps && k < N_CMP_COLS(t->power); k++) rc |= gkd_csv_buf_empty(b);
                rc |= gkd_csv_buf_end_row(b);
            }
    for (int m = 0; m < t->nmetrics; m++)
        for (int i = 0; i < t->nrows; i++)
            for (int j = 0; j < t->ncols; j++) {
                const gkd_table_stat *s = gkd_table_at_cell(t, m, i, j);
                if (t->nref) rc |= gkd_csv_buf_empty(b);
                rc |= gkd_csv_buf_str(b, t->row_values[i]);
                if (t->cols) rc |= gkd_csv_buf_str(b, t->col_values[j]);
                rc |= gkd_csv_buf_str(b, t->metrics[m]);
                rc |= csv_at(b, t, 0);
                rc |= s->n ? gkd_csv_buf_double(b, s->mean) : gkd_csv_buf_empty(b);
                rc |= s->n > 1 ? gkd_csv_buf_double(b, s->std) : gkd_csv_buf_empty(b);
                rc |= gkd_csv_buf_long(b, s->n);
                if (ci95) rc |= s->n > 1 ? gkd_csv_buf_double(b, s->ci95) : gkd_csv_buf_empty(b);
                if (t->cmps) rc |= csv_cmp(b, gkd_table_cmp_at(t, m, i, j), t->power);
                rc |= gkd_csv_buf_end_row(b);
            }
    return rc ? GKD_ENOMEM : 0;
}

int gkd_table_render(char **out, const gkd_table *t, gkd_table_format fmt, int ci95, int digits) {
    gkd_csv_buf b = GKD_CSV_BUF_INIT;
    if (digits < 0 || digits > 12) return gkd_error(GKD_EINVAL, "digits %d out of range [0, 12]", digits);
    int rc = fmt == GKD_FMT_MD ? render_md(&b, t, ci95, digits)
             : fmt == GKD_FMT_LATEX ? render_latex(&b, t, ci95, digits)
                                    : render_csv(&b, t, ci95);
    if (rc) {
        gkd_csv_buf_free(&b);
        return gkd_error(rc, "out of memory while rendering the table");
    }
    *out = b.data;
    return 0;
}
