/* What a run directory was made with (see run_options.h). */
#include "run_options.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/blob.h"
#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/sparse_teacher.h"
#include "gkd/subword.h"
#include "gkd/tokenizer.h"

/* Every example of both splits, each string with its terminating NUL so
 * that ("ab", "c") and ("a", "bc") differ. */
static uint64_t task_hash(const gkd_task *task) {
    uint64_t h = BLOB_FNV1A64_OFFSET;
    for (int split = GKD_SPLIT_TRAIN; split <= GKD_SPLIT_EVAL; split++) {
        const size_t n = gkd_task_size(task, (gkd_split)split);
        h = blob_fnv1a64_update(h, &n, sizeof n);
        for (size_t i = 0; i < n; i++) {
            const gkd_example *e = gkd_task_example(task, (gkd_split)split, i);
            h = blob_fnv1a64_update(h, e->prompt, strlen(e->prompt) + 1);
            h = blob_fnv1a64_update(h, e->reference, strlen(e->reference) + 1);
        }
    }
    return h;
}

static uint64_t model_hash(const gkd_model *m) {
    const gkd_model_config *c = &m->config;
    char shape[128];
    snprintf(shape, sizeof shape, "%d,%d,%d,%d,%d", c->vocab_size, c->max_seq_len, c->n_layer, c->n_embd, c->n_head);
    const uint64_t h = blob_fnv1a64_update(BLOB_FNV1A64_OFFSET, shape, strlen(shape));
    return blob_fnv1a64_update(h, m->params_memory, m->num_params * sizeof(float));
}

/* The shortest decimal that reads back as x (into buf). */
static const char *num(char *buf, size_t size, double x) {
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

static int line(gkd_csv_buf *b, const char *key, const char *fmt, ...) {
    char value[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    return gkd_csv_buf_printf(b, "%s=%s\n", key, value);
}

int gkd_run_options_text(gkd_csv_buf *b, const gkd_model *student, const gkd_model *teacher,
                         const gkd_tokenizer *tok, const gkd_task *task, const gkd_distill_options *o) {
    char div[64], n1[32], n2[32], n3[32];
    const gkd_schedule_options *s = &o->schedule;
    int rc = 0;
    rc |= line(b, "task", "%s %016llx", gkd_task_name(task), (unsigned long long)task_hash(task));
    rc |= line(b, "student_init", "%016llx", (unsigned long long)model_hash(student));
    rc |= line(b, "teacher", teacher ? "%016llx" : "none", teacher ? (unsigned long long)model_hash(teacher) : 0ULL);
    rc |= line(b, "divergence", "%s", gkd_divergence_format(&o->divergence, div, sizeof div));
    rc |= line(b, "ce_weight", "%s", num(n1, sizeof n1, o->ce_weight));
    rc |= line(b, "loss_temperature", "%s", num(n1, sizeof n1, o->loss_temperature));
    rc |= line(b, "reduction", "%s", o->per_sequence ? "sequence" : "token");
    rc |= line(b, "pg_advantage", "%d", (int)o->pg_advantage);
    rc |= line(b, "mix_importance", "%d", o->mix_importance);
    rc |= line(b, "lambda", "%s", num(n1, sizeof n1, s->lambda));
    rc |= line(b, "per_example", "%d", s->per_example);
    rc |= line(b, "seqkd", "%s", num(n1, sizeof n1, s->seqkd));
    rc |= line(b, "seqkd_cache", "%d", o->seqkd_cache);
    rc |= line(b, "teacher_mix", "%s", num(n1, sizeof n1, s->teacher_mix));
    rc |= line(b, "replay", "%d %s %d %d %d", (int)s->replay, num(n1, sizeof n1, s->p_replay), s->replay_min,
               s->capacity, s->seq_cap);
    rc |= line(b, "replay_adaptive", "%s %s %s %d %ld %d", num(n1, sizeof n1, s->init_threshold),
               num(n2, sizeof n2, s->threshold_step), num(n3, sizeof n3, s->loss_eps), (int)s->ratio, s->total_steps,
               (int)s->valref);
    rc |= line(b, "sample", "%s %d %s %d", num(n1, sizeof n1, o->sample.temperature), o->sample.top_k,
               num(n2, sizeof n2, o->sample.top_p), o->sample.max_new_tokens);
    rc |= line(b, "steps", "%ld", o->steps);
    rc |= line(b, "batch", "%d", o->batch);
    rc |= line(b, "lr", "%s", num(n1, sizeof n1, o->lr));
    rc |= line(b, "lr_min", "%s", num(n1, sizeof n1, o->lr_min));
    rc |= line(b, "warmup", "%ld", o->warmup);
    rc |= line(b, "weight_decay", "%s", num(n1, sizeof n1, o->weight_decay));
    rc |= line(b, "clip", "%s", num(n1, sizeof n1, o->clip));
    rc |= line(b, "seed", "%llu", (unsigned long long)o->seed);
    rc |= line(b, "eval", "%d %d %s %d", o->eval_n, o->eval_samples, num(n1, sizeof n1, o->eval_temperature),
               o->eval_greedy);
    /* Written only when set, so the runs made before it resume. */
    if (o->eval_bleu_smoothing) rc |= line(b, "bleu_smoothing", "%d", o->eval_bleu_smoothing);
    /* Left out when off, so runs made before it existed still resume. */
    if (o->teacher_topk)
        rc |= line(b, "teacher_topk", "%d %s", o->teacher_topk, o->topk_tail == GKD_SPARSE_TAIL ? "tail" : "renorm");
    /* Distilling step-by-step: only for tasks with a rationale split. */
    if (gkd_task_size(task, GKD_SPLIT_RATIONALE))
        rc |= line(b, "rationale", "%s %s", num(n1, sizeof n1, o->rationale_weight),
                   o->rationale_source == GKD_RATIONALE_TEACHER ? "teacher" : "data");
    /* What the per-token metrics counted; char and byte vocabularies are
     * left out (the task determines them), so their runs still resume. */
    if (gkd_tokenizer_kind_of(tok) == GKD_TOKENIZER_SUBWORD) {
        char what[96];
        gkd_tokenizer_describe(tok, what, sizeof what);
        rc |= line(b, "tokenizer", "%s %016llx", what,
                   (unsigned long long)gkd_subword_hash(gkd_tokenizer_subword(tok)));
    }
    return rc ? gkd_error(GKD_ENOMEM, "out of memory") : 0;
}

/* The line of `text` that starts with key=, without its newline (into out). */
static int find_line(char *out, size_t size, const char *text, const char *key) {
    const size_t k = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, k) && p[k] == '=') {
            snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
            /* The file's line goes into a one-line message: no CR or other controls. */
            for (char *c = out; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
            return 1;
        }
    return 0;
}

int gkd_run_options_check(const char *path, const char *text, int resuming) {
    char *old = NULL;
    size_t len = 0;
    if (!resuming || access(path, F_OK) != 0)
        return gkd_file_write_atomic(path, text, strlen(text));
    int rc = gkd_file_read(&old, &len, path);
    if (rc) return gkd_error_wrap(rc, "resume");
    if (len == strlen(text) && !memcmp(old, text, len)) { /* a NUL byte would end strcmp early */
        free(old);
        return 0;
    }
    /* Name the first option that differs. */
    char was[300] = "", now[300] = "", key[64];
    int differs = 0;
    for (const char *p = text; *p && !differs; p += strcspn(p, "\n") + (p[strcspn(p, "\n")] ? 1 : 0)) {
        snprintf(key, sizeof key, "%.*s", (int)strcspn(p, "="), p);
        snprintf(now, sizeof now, "%.*s", (int)strcspn(p, "\n"), p);
        if (!find_line(was, sizeof was, old, key)) snprintf(was, sizeof was, "no %s", key);
        differs = strcmp(was, now) != 0;
    }
    free(old);
    if (!differs) /* the same options, and some the file has that this gkd does not write */
        snprintf(was, sizeof was, "options this version of gkd does not know"), snprintf(now, sizeof now, "none");
    return gkd_error(GKD_EMISMATCH,
                     "resume: %s was made with %s, this run has %s: resuming would mix two runs in one "
                     "directory (use another output directory, or --force to start over)",
                     path, was, now);
}
