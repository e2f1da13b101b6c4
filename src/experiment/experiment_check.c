/* Cross-field checks of a resolved cell: options that are each in range but
 * contradict each other. Every cell is checked at load, so an axis value
 * that breaks only some cells is still reported (with the cell named). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "experiment_internal.h"
#include "gkd/error.h"

void exp_locate_section(const gkd_experiment *e, const char *path, int *line, int *col) {
    *line = e->root_line, *col = e->root_col;
    size_t best = 0;
    for (int s = 0; s < e->num_sections; s++) {
        size_t n = strlen(e->sections[s].path);
        if (n > best && !strncmp(path, e->sections[s].path, n) && (path[n] == '.' || path[n] == '\0')) {
            best = n;
            *line = e->sections[s].line, *col = e->sections[s].col;
        }
    }
}

void exp_locate(const gkd_experiment *e, int k, const size_t *choice, int *line, int *col) {
    const exp_value *vv = exp_variant_value(e, choice, k);
    if (vv) {
        *line = vv->line, *col = vv->col;
        return;
    }
    const exp_setting *st = &e->set[k];
    if (st->n) {
        const exp_value *v = &st->values[choice ? choice[k] : 0];
        *line = v->line, *col = v->col;
        return;
    }
    exp_locate_section(e, exp_keys[k].path, line, col);
}

static int fail(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice, const char *key,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice, const char *key,
                const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line, col;
    exp_locate(e, exp_key_find(key), choice, &line, &col);
    if (e->num_cells > 1)
        return gkd_error(GKD_EINVAL, "%s:%d:%d: %s (cell %zu: %s)", e->file, line, col, msg, c->index, c->name);
    const exp_variant *var = exp_cell_variant(e, choice);
    if (var) return gkd_error(GKD_EINVAL, "%s:%d:%d: %s (variant '%s')", e->file, line, col, msg, var->name);
    return gkd_error(GKD_EINVAL, "%s:%d:%d: %s", e->file, line, col, msg);
}

static int is_set(const gkd_experiment *e, const size_t *choice, const char *key) {
    int k = exp_key_find(key);
    return e->set[k].n > 0 || exp_variant_value(e, choice, k) != NULL;
}

/* Fewest tokens a prompt of this task takes (BOS + prompt + SEP), or 0 when
 * it depends on data files. */
static int min_prompt_tokens(const gkd_task_config *t) {
    unsigned bit = exp_task_bit(t->name);
    if (bit == T_ARITH) return 2 * t->digits + 1 + 2;    /* "a+b" */
    if (bit & (T_REVERSE | T_SORT)) return t->max_len + 2; /* the longest strings occur */
    if (bit == T_TEXT) return t->prompt_chars + 2;
    return 0;
}

static int check_model(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice, const char *who,
                       const gkd_model_config *m) {
    char key[48];
    if (m->n_head > 0 && m->n_embd % m->n_head != 0) {
        snprintf(key, sizeof key, "%s.model.heads", who);
        return fail(e, c, choice, key, "%s: %d does not divide %s.model.d_model %d", key, m->n_head, who, m->n_embd);
    }
    if (m->arch == GKD_ARCH_GPT2) {
        const char *llama_only = m->n_kv_head ? "kv_heads" : m->ffn_dim ? "ffn_dim" : m->untied_head ? "untied_head" : NULL;
        if (llama_only) {
            snprintf(key, sizeof key, "%s.model.%s", who, llama_only);
            return fail(e, c, choice, key, "%s: only for %s.model.arch llama (gpt2 has %s)", key, who,
                        m->n_kv_head ? "as many key/value heads as heads" : m->ffn_dim ? "an MLP of 4 d_model" : "a tied head");
        }
        return 0;
    }
    if (m->n_head > 0 && m->n_kv_head > 0 && m->n_head % m->n_kv_head) {
        snprintf(key, sizeof key, "%s.model.kv_heads", who);
        return fail(e, c, choice, key, "%s: %d does not divide %s.model.heads %d", key, m->n_kv_head, who, m->n_head);
    }
    if (m->n_head > 0 && (m->n_embd / m->n_head) % 2) {
        snprintf(key, sizeof key, "%s.model.heads", who);
        return fail(e, c, choice, key, "%s: a head size of %d (d_model / heads) must be even for rotary positions",
                    key, m->n_embd / m->n_head);
    }
    return 0;
}

static int check_warmup(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice, const char *who,
                        const gkd_train_options *o) {
    char key[48];
    if (o->warmup > o->steps) {
        snprintf(key, sizeof key, "%s.warmup", who);
        return fail(e, c, choice, key, "%s: %d exceeds %s.steps %d", key, o->warmup, who, o->steps);
    }
    if (o->lr_min > o->lr) {
        snprintf(key, sizeof key, "%s.lr_min", who);
        return fail(e, c, choice, key, "%s: %g exceeds %s.lr %g (the decay would rise)", key, o->lr_min, who, o->lr);
    }
    return 0;
}

int exp_check_cell(const gkd_experiment *e, const gkd_cell_config *c, const size_t *choice) {
    int rc;
    const gkd_task_config *t = &c->task;
    unsigned bit = exp_task_bit(t->name);

    /* Keys of another task are most likely a mistake; a grid over task.name
     * (a list, or variants that set it) legitimately carries top-level keys
     * that only some of its tasks use. A variant's own keys are a bundle
     * and are always checked against its task. */
    int task_varies = e->task_name_varies;
    for (int k = 0; k < exp_num_keys; k++) {
        const exp_key *key = &exp_keys[k];
        if (key->tasks && !(key->tasks & bit) &&
            ((e->set[k].n && !task_varies) || exp_variant_value(e, choice, k)))
            return fail(e, c, choice, key->path, "%s: not used by task '%s'", key->path, t->name);
    }
    if ((bit & (T_PAIRS | T_TEXT)) && !t->path)
        return fail(e, c, choice, "task.path", "task.path: required for task '%s'", t->name);
    if ((bit & (T_REVERSE | T_SORT)) && t->min_len > t->max_len)
        return fail(e, c, choice, is_set(e, choice, "task.min_len") ? "task.min_len" : "task.max_len",
                    "task.min_len: %d exceeds task.max_len %d", t->min_len, t->max_len);
    if (bit == T_TEXT && t->prompt_chars >= t->chunk)
        return fail(e, c, choice, "task.prompt_chars", "task.prompt_chars: %d must be less than task.chunk %d",
                    t->prompt_chars, t->chunk);

    if (c->teacher_same_as && c->teacher_checkpoint)
        return fail(e, c, choice, "teacher.same_as", "teacher.same_as: student_init excludes teacher.checkpoint");
    if (!c->teacher_checkpoint) {
        if ((rc = check_model(e, c, choice, "teacher", &c->teacher_model))) return rc;
        if ((rc = check_warmup(e, c, choice, "teacher.train", &c->teacher_train))) return rc;
    }
    if ((rc = check_model(e, c, choice, "student", &c->student_model))) return rc;
    if (c->student_init == GKD_INIT_SFT && (rc = check_warmup(e, c, choice, "student.sft", &c->student_sft)))
        return rc;
    if ((rc = check_warmup(e, c, choice, "distill", &c->distill.opt))) return rc;

    int tctx = c->teacher_model.max_seq_len, sctx = c->student_model.max_seq_len;
    if (tctx && sctx > tctx)
        return fail(e, c, choice, "student.model.context",
                    "student.model.context: %d exceeds the teacher's context %d (the teacher scores every student "
                    "sequence)", sctx, tctx);
    int ctx = sctx ? sctx : tctx, prompt = min_prompt_tokens(t);
    if (ctx && prompt && prompt + c->distill.max_new_tokens > ctx)
        return fail(e, c, choice, "distill.max_new_tokens",
                    "distill.max_new_tokens: %d new tokens after a prompt of at least %d tokens exceed the context "
                    "of %d", c->distill.max_new_tokens, prompt, ctx);

    const char *div = c->distill.divergence;
    if (!strcmp(div, "pg_rkl") && c->distill.lambda < 1)
        return fail(e, c, choice, "distill.divergence",
                    "distill.divergence: pg_rkl needs student rollouts on every batch (lambda = 1), got lambda = %g",
                    c->distill.lambda);
    if (c->distill.teacher_topk && (!strcmp(div, "pg_rkl") || !strcmp(div, "ce")))
        return fail(e, c, choice, "distill.teacher_topk",
                    "distill.teacher_topk: applies to fkl, rkl, jsd, skl, srkl and tvd, not to %s", div);
    if (!strcmp(div, "ce") && (c->distill.lambda > 0 || c->distill.seqkd > 0))
        return fail(e, c, choice, "distill.divergence",
                    "distill.divergence: ce trains on ground-truth outputs only (lambda = 0 and seqkd = 0), got "
                    "lambda = %g, seqkd = %g", c->distill.lambda, c->distill.seqkd);

    if ((bit & T_GENERATED) && c->eval.n > t->eval)
        return fail(e, c, choice, "eval.n", "eval.n: %d exceeds task.eval %d", c->eval.n, t->eval);
    return 0;
}
