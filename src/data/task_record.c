/* The data split a model was trained on (see gkd/task.h): recorded from a
 * task, serialized into checkpoints, and rebuilt to count how many of
 * another task's eval examples the model has seen in training.
 *
 * The record keeps the whole task configuration rather than only the
 * fields a task reads, so a rebuild is gkd_task_new on exactly what
 * trained; fields a task ignores are stored but never compared. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/task.h"
#include "tasks/strmap.h"
#include "util/blob.h"

#define STR_ABSENT 0xffffffffu
#define STR_MAX (1u << 20)          /* longest string field, bytes */
#define SPLIT_MAX 0xffffffffull     /* largest split size a record may claim */
#define EXT_TRAIN_FRACTION 1u       /* tag of the optional train_fraction (f64) */
#define EXT_TARGETS 2u              /* tag of the optional targets (i32) */

static const char *const task_names[] = {"arith", "reverse", "sort", "modes", "pairs", "text"};

static int known_task(const char *name) {
    for (size_t i = 0; i < sizeof task_names / sizeof task_names[0]; i++)
        if (!strcmp(name, task_names[i])) return 1;
    return 0;
}

void gkd_task_record_free(gkd_task_record *r) {
    if (!r) return;
    for (int i = 0; i < 5; i++) free(r->owned[i]);
    free(r);
}

/* Size and FNV-1a 64 of a file's bytes, read in blocks. */
static int hash_file(const char *path, uint64_t *size, uint64_t *hash) {
    FILE *f = NULL;
    int rc = gkd_fopen_read(&f, path);
    if (rc) return rc;
    unsigned char buf[1 << 16];
    uint64_t h = BLOB_FNV1A64_OFFSET, n = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        h = blob_fnv1a64_update(h, buf, got);
        n += got;
    }
    if (ferror(f)) rc = gkd_error(GKD_EIO, "%s: read failed: %s", path, strerror(errno));
    fclose(f);
    *size = n;
    *hash = h;
    return rc;
}

/* Copy *field into owned slot i (NULL stays NULL). */
static int own(gkd_task_record *r, int i, const char **field) {
    if (!*field) return 0;
    if (strlen(*field) >= STR_MAX) return gkd_error(GKD_EINVAL, "task record: a setting is longer than %u bytes", STR_MAX);
    r->owned[i] = strdup(*field);
    if (!r->owned[i]) return gkd_error(GKD_ENOMEM, "out of memory");
    *field = r->owned[i];
    return 0;
}

int gkd_task_record_new(gkd_task_record **out, const gkd_task *t) {
    *out = NULL;
    gkd_task_record *r = calloc(1, sizeof *r);
    if (!r) return gkd_error(GKD_ENOMEM, "out of memory");
    r->cfg = *gkd_task_config_of(t);
    /* The split does not depend on the tokenizer, which the checkpoint
     * stores whole anyway. */
    r->cfg.tokenizer = NULL;
    /* Nor on the teacher's contexts: the student's examples are the same. */
    r->cfg.context = r->cfg.context_path = r->cfg.teacher_context = NULL;
    r->cfg.with_context = 0;
    int rc = 0;
    const char **paths[2] = {&r->cfg.path, &r->cfg.eval_path};
    for (int i = 0; i < 2 && !rc; i++) {
        if (!*paths[i]) continue;
        /* Absolute, so the record means the same file from any directory. */
        char *abs = realpath(*paths[i], NULL);
        if (!abs) {
            rc = gkd_error(GKD_EIO, "%s: cannot resolve the data file's path: %s", *paths[i], strerror(errno));
            break;
        }
        rc = hash_file(abs, &r->file_size[i], &r->file_hash[i]);
        if (!rc && strlen(abs) >= STR_MAX) rc = gkd_error(GKD_EINVAL, "%s: path too long", abs);
        r->owned[3 + i] = abs;
        *paths[i] = abs;
    }
    if (!rc && !(rc = own(r, 0, &r->cfg.name)) && !(rc = own(r, 1, &r->cfg.op))) rc = own(r, 2, &r->cfg.alphabet);
    if (rc) {
        gkd_task_record_free(r);
        return rc;
    }
    r->train_n = gkd_task_size(t, GKD_SPLIT_TRAIN);
    r->eval_n = gkd_task_size(t, GKD_SPLIT_EVAL);
    *out = r;
    return 0;
}

/* ---- serialization ---- */

static void put_str(blob_writer *w, const char *s) {
    if (!s) {
        blob_u32(w, STR_ABSENT);
        return;
    }
    size_t n = strlen(s);
    blob_u32(w, (uint32_t)n);
    blob_put(w, s, n);
}

static void put_i32(blob_writer *w, int v) { blob_u32(w, (uint32_t)v); }

static void write_record(blob_writer *w, const gkd_task_record *r) {
    const gkd_task_config *c = &r->cfg;
    put_str(w, c->name);
    blob_u64(w, c->seed);
    put_i32(w, c->train);
    put_i32(w, c->eval);
    put_i32(w, c->digits);
    put_str(w, c->op);
    put_i32(w, c->rationale);
    put_i32(w, c->min_len);
    put_i32(w, c->max_len);
    put_str(w, c->alphabet);
    put_i32(w, c->modes_k);
    blob_f64(w, c->zipf_s);
    put_i32(w, c->modes_len);
    put_str(w, c->path);
    put_str(w, c->eval_path);
    blob_f64(w, c->eval_fraction);
    put_i32(w, c->chunk);
    put_i32(w, c->prompt_chars);
    for (int i = 0; i < 2; i++)
        if (i == 0 ? c->path != NULL : c->eval_path != NULL) {
            blob_u64(w, r->file_size[i]);
            blob_u64(w, r->file_hash[i]);
        }
    blob_u64(w, r->train_n);
    blob_u64(w, r->eval_n);
    /* Settings added later follow as tagged values, only when they are
     * not their defaults, so existing records keep their bytes. */
    if (c->train_fraction != 0 && c->train_fraction != 1.0) {
        blob_u32(w, EXT_TRAIN_FRACTION);
        blob_f64(w, c->train_fraction);
    }
    if (c->targets != GKD_TARGETS_REFERENCE) {
        blob_u32(w, EXT_TARGETS);
        put_i32(w, c->targets);
    }
}

size_t gkd_task_record_serialized_size(const gkd_task_record *r) {
    blob_writer w = {NULL, 0};
    write_record(&w, r);
    return w.n;
}

void gkd_task_record_serialize(const gkd_task_record *r, unsigned char *out) {
    blob_writer w = {out, 0};
    write_record(&w, r);
}

#define BAD(what)                                                                    \
    do {                                                                             \
        rc = gkd_error(GKD_EFORMAT, "task record: malformed %s", what);              \
        goto done;                                                                   \
    } while (0)

/* A string field into owned slot i: length within the bytes left and
 * STR_MAX, no NUL inside. */
static int get_str(blob_reader *rd, gkd_task_record *r, int i, const char **field, const char *what) {
    uint32_t n = blob_get_u32(rd);
    if (rd->short_read) return gkd_error(GKD_EFORMAT, "task record: malformed %s (truncated)", what);
    if (n == STR_ABSENT) {
        *field = NULL;
        return 0;
    }
    if (n >= STR_MAX || (size_t)(rd->end - rd->p) < n)
        return gkd_error(GKD_EFORMAT, "task record: malformed %s (length %u, %zu bytes left)", what, n,
                         (size_t)(rd->end - rd->p));
    if (memchr(rd->p, '\0', n)) return gkd_error(GKD_EFORMAT, "task record: malformed %s (NUL byte)", what);
    char *s = malloc((size_t)n + 1);
    if (!s) return gkd_error(GKD_ENOMEM, "out of memory");
    memcpy(s, rd->p, n);
    s[n] = '\0';
    rd->p += n;
    r->owned[i] = s;
    *field = s;
    return 0;
}

static int get_i32(blob_reader *rd) { return (int)(int32_t)blob_get_u32(rd); }

int gkd_task_record_deserialize(gkd_task_record **out, const unsigned char *buf, size_t n) {
    *out = NULL;
    gkd_task_record *r = calloc(1, sizeof *r);
    if (!r) return gkd_error(GKD_ENOMEM, "out of memory");
    blob_reader rd = {buf, buf + n, 0};
    gkd_task_config *c = &r->cfg;
    int rc;
    if ((rc = get_str(&rd, r, 0, &c->name, "task name"))) goto done;
    if (!c->name || !known_task(c->name)) BAD("task name (not a known task)");
    c->seed = blob_get_u64(&rd);
    c->train = get_i32(&rd);
    c->eval = get_i32(&rd);
    c->digits = get_i32(&rd);
    if ((rc = get_str(&rd, r, 1, &c->op, "op"))) goto done;
    c->rationale = get_i32(&rd);
    c->min_len = get_i32(&rd);
    c->max_len = get_i32(&rd);
    if ((rc = get_str(&rd, r, 2, &c->alphabet, "alphabet"))) goto done;
    c->modes_k = get_i32(&rd);
    c->zipf_s = blob_get_f64(&rd);
    c->modes_len = get_i32(&rd);
    if ((rc = get_str(&rd, r, 3, &c->path, "data path"))) goto done;
    if ((rc = get_str(&rd, r, 4, &c->eval_path, "eval data path"))) goto done;
    c->eval_fraction = blob_get_f64(&rd);
    c->chunk = get_i32(&rd);
    c->prompt_chars = get_i32(&rd);
    for (int i = 0; i < 2; i++)
        if (i == 0 ? c->path != NULL : c->eval_path != NULL) {
            r->file_size[i] = blob_get_u64(&rd);
            r->file_hash[i] = blob_get_u64(&rd);
        }
    r->train_n = blob_get_u64(&rd);
    r->eval_n = blob_get_u64(&rd);
    c->train_fraction = 1.0;
    c->targets = GKD_TARGETS_REFERENCE;
    for (unsigned last = 0; !rd.short_read && rd.p < rd.end;) {
        /* anything but the known tags, in order, is not a record of gkd's */
        uint32_t tag = (size_t)(rd.end - rd.p) >= 4 ? blob_get_u32(&rd) : 0;
        if (tag <= last || tag > EXT_TARGETS) BAD("contents (trailing bytes)");
        last = tag;
        if (tag == EXT_TRAIN_FRACTION) c->train_fraction = blob_get_f64(&rd);
        else c->targets = get_i32(&rd);
        /* a default is never written: one record, one form */
        if (tag == EXT_TRAIN_FRACTION && c->train_fraction == 1.0) BAD("train fraction (the default, written)");
        if (tag == EXT_TARGETS && c->targets == GKD_TARGETS_REFERENCE) BAD("targets (the default, written)");
    }
    if (rd.short_read) BAD("contents (truncated)");
    if (!(c->train_fraction > 0 && c->train_fraction <= 1)) BAD("train fraction");
    if (!gkd_targets_name(c->targets)) BAD("targets");
    if (rd.p != rd.end) BAD("contents (trailing bytes)");
    if (r->train_n > SPLIT_MAX || r->eval_n > SPLIT_MAX) BAD("split sizes");
    if (c->path && c->path[0] != '/') BAD("data path (not absolute)");
    if (c->eval_path && c->eval_path[0] != '/') BAD("eval data path (not absolute)");
done:
    if (rc) gkd_task_record_free(r);
    else *out = r;
    return rc;
}

/* ---- overlap ---- */

static void add_diff(char *out, size_t cap, int *count, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_diff(char *out, size_t cap, int *count, const char *fmt, ...) {
    if (*count >= 3) return; /* the first few say enough */
    size_t len = strlen(out);
    if (len && len + 2 < cap) {
        strcat(out, ", ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + len, cap - len, fmt, ap);
    va_end(ap);
    (*count)++;
}

static int str_differs(const char *a, const char *b) { return (a == NULL) != (b == NULL) || (a && strcmp(a, b)); }

/* A current path against a recorded absolute one. */
static int path_differs(const char *recorded, const char *current) {
    if (!recorded || !current) return (recorded == NULL) != (current == NULL);
    char *abs = realpath(current, NULL);
    int d = strcmp(recorded, abs ? abs : current) != 0;
    free(abs);
    return d;
}

/* A prompt without the label prefix of targets multitask: a model trained
 * with it has seen the example whatever targets the eval task has. */
static const char *bare_prompt(const char *p) {
    size_t n = strlen(GKD_LABEL_PREFIX);
    return strncmp(p, GKD_LABEL_PREFIX, n) ? p : p + n;
}

/* The options of the recorded task that differ in cur, in words. */
static void describe_diff(char *out, size_t cap, const gkd_task_config *rec, const gkd_task_config *cur) {
    int n = 0;
    out[0] = '\0';
    if (strcmp(rec->name, cur->name)) {
        add_diff(out, cap, &n, "task %s vs %s", rec->name, cur->name);
        return;
    }
    const char *t = rec->name;
    int generated = strcmp(t, "pairs") && strcmp(t, "text");
    int seeded = generated || !strcmp(t, "text") || (!strcmp(t, "pairs") && !rec->eval_path);
    if (seeded && rec->seed != cur->seed)
        add_diff(out, cap, &n, "data seed %llu vs %llu", (unsigned long long)rec->seed, (unsigned long long)cur->seed);
    if (rec->train_fraction != cur->train_fraction)
        add_diff(out, cap, &n, "train_fraction %g vs %g", rec->train_fraction, cur->train_fraction);
    if (generated) {
        if (rec->train != cur->train) add_diff(out, cap, &n, "train %d vs %d", rec->train, cur->train);
        if (rec->eval != cur->eval) add_diff(out, cap, &n, "eval %d vs %d", rec->eval, cur->eval);
    }
    if (!strcmp(t, "arith")) {
        if (rec->digits != cur->digits) add_diff(out, cap, &n, "digits %d vs %d", rec->digits, cur->digits);
        if (str_differs(rec->op, cur->op))
            add_diff(out, cap, &n, "op %s vs %s", rec->op ? rec->op : "add", cur->op ? cur->op : "add");
        if (rec->rationale != cur->rationale)
            add_diff(out, cap, &n, "rationale %d vs %d", rec->rationale, cur->rationale);
        if (rec->targets != cur->targets)
            add_diff(out, cap, &n, "targets %s vs %s", gkd_targets_name(rec->targets), gkd_targets_name(cur->targets));
    } else if (generated) {
        if (rec->min_len != cur->min_len) add_diff(out, cap, &n, "min_len %d vs %d", rec->min_len, cur->min_len);
        if (rec->max_len != cur->max_len) add_diff(out, cap, &n, "max_len %d vs %d", rec->max_len, cur->max_len);
        if (str_differs(rec->alphabet, cur->alphabet)) add_diff(out, cap, &n, "another alphabet");
        if (!strcmp(t, "modes")) {
            if (rec->modes_k != cur->modes_k) add_diff(out, cap, &n, "k %d vs %d", rec->modes_k, cur->modes_k);
            if (rec->zipf_s != cur->zipf_s) add_diff(out, cap, &n, "zipf %g vs %g", rec->zipf_s, cur->zipf_s);
            if (rec->modes_len != cur->modes_len)
                add_diff(out, cap, &n, "length %d vs %d", rec->modes_len, cur->modes_len);
        }
    } else {
        if (path_differs(rec->path, cur->path))
            add_diff(out, cap, &n, "data file %s vs %s", rec->path ? rec->path : "none", cur->path ? cur->path : "none");
        if (!strcmp(t, "pairs") && path_differs(rec->eval_path, cur->eval_path))
            add_diff(out, cap, &n, "eval file %s vs %s", rec->eval_path ? rec->eval_path : "none",
                     cur->eval_path ? cur->eval_path : "none");
        if (seeded && rec->eval_fraction != cur->eval_fraction)
            add_diff(out, cap, &n, "eval_fraction %g vs %g", rec->eval_fraction, cur->eval_fraction);
        if (!strcmp(t, "text")) {
            if (rec->chunk != cur->chunk) add_diff(out, cap, &n, "chunk %d vs %d", rec->chunk, cur->chunk);
            if (rec->prompt_chars != cur->prompt_chars)
                add_diff(out, cap, &n, "prompt_chars %d vs %d", rec->prompt_chars, cur->prompt_chars);
        }
    }
}

int gkd_task_record_overlap(gkd_task_overlap *out, const gkd_task_record *r, const gkd_task *t, size_t n) {
    memset(out, 0, sizeof *out);
    size_t avail = gkd_task_size(t, GKD_SPLIT_EVAL);
    out->eval_n = n == 0 || n > avail ? avail : n;
    describe_diff(out->diff, sizeof out->diff, &r->cfg, gkd_task_config_of(t));
    const char *files[2] = {r->cfg.path, r->cfg.eval_path};
    for (int i = 0; i < 2; i++) {
        if (!files[i]) continue;
        uint64_t size, hash;
        if (hash_file(files[i], &size, &hash)) {
            snprintf(out->why, sizeof out->why, "cannot read its training data: %s", gkd_last_error());
            return 0;
        }
        if (size != r->file_size[i] || hash != r->file_hash[i]) {
            snprintf(out->why, sizeof out->why,
                     "its training data %s changed since (now %llu bytes, FNV-1a %016llx; recorded %llu bytes, %016llx)",
                     files[i], (unsigned long long)size, (unsigned long long)hash,
                     (unsigned long long)r->file_size[i], (unsigned long long)r->file_hash[i]);
            return 0;
        }
    }
    gkd_task *old = NULL;
    if (gkd_task_new(&old, &r->cfg)) {
        snprintf(out->why, sizeof out->why, "its recorded task does not build: %s", gkd_last_error());
        return 0;
    }
    size_t tn = gkd_task_size(old, GKD_SPLIT_TRAIN), en = gkd_task_size(old, GKD_SPLIT_EVAL);
    if (tn != r->train_n || en != r->eval_n) {
        snprintf(out->why, sizeof out->why,
                 "its recorded task rebuilds to %zu training and %zu eval examples, not the recorded %llu and %llu",
                 tn, en, (unsigned long long)r->train_n, (unsigned long long)r->eval_n);
        gkd_task_free(old);
        return 0;
    }
    strmap seen;
    strmap_init(&seen);
    int rc = 0, found;
    for (size_t i = 0; i < tn && !rc; i++) rc = strmap_put(&seen, bare_prompt(gkd_task_example(old, GKD_SPLIT_TRAIN, i)->prompt), i, &found);
    if (!rc) {
        for (size_t i = 0; i < out->eval_n; i++)
            out->overlap += strmap_get(&seen, bare_prompt(gkd_task_example(t, GKD_SPLIT_EVAL, i)->prompt)) != NULL;
        out->train_n = tn;
        out->checked = 1;
    }
    strmap_free(&seen);
    gkd_task_free(old);
    return rc;
}

int gkd_task_check_eval_overlap(const gkd_task_record *r, const gkd_task *t, size_t n, const char *what,
                                const char *seed_key, const char *opt_out, int allow, char *warning,
                                size_t cap) {
    if (cap) warning[0] = '\0';
    if (!r) return 0;
    gkd_task_overlap ov;
    int rc = gkd_task_record_overlap(&ov, r, t, n);
    if (rc) return rc;
    if (!ov.checked) {
        if (cap) snprintf(warning, cap, "%s: eval overlap not checked: %s", what, ov.why);
        return 0;
    }
    if (ov.overlap == 0) return 0;
    char paren[272] = "";
    if (ov.diff[0]) snprintf(paren, sizeof paren, " (%s)", ov.diff);
    if (allow) {
        if (cap)
            snprintf(warning, cap, "%s was trained on %zu of the %zu eval examples%s; allowed by %s", what, ov.overlap,
                     ov.eval_n, paren, opt_out);
        return 0;
    }
    if (!strncmp(ov.diff, "data seed ", 10))
        return gkd_error(GKD_EMISMATCH, "%s was trained on %zu of the %zu eval examples%s; use the same %s, or %s",
                         what, ov.overlap, ov.eval_n, paren, seed_key, opt_out);
    return gkd_error(GKD_EMISMATCH,
                     "%s was trained on %zu of the %zu eval examples%s; evaluate on the task it was trained on, or %s",
                     what, ov.overlap, ov.eval_n, paren, opt_out);
}
