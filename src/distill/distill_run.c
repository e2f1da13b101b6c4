/* The distillation loop around gkd_distill_step: CSV rows, evaluations,
 * checkpoints and resume (see include/gkd/distill.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill_step.h"
#include "run_options.h"
#include "gkd/checkpoint.h"
#include "gkd/csv.h"
#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/fsutil.h"

static const char METRICS_HEADER[] =
    "step,source,loss,divergence,ce,grad_norm,lr,tokens,rollout_len,threshold,replay_size\n";
static const char TIMINGS_HEADER[] = "step,sample_s,teacher_s,student_s,update_s,tokens_per_s\n";

typedef struct {
    char metrics[4096], eval[4096], timings[4096], ckpt[4096], final[4096], options[4096];
} run_paths;

static int make_paths(run_paths *p, const char *dir) {
    int n = 0;
    n |= snprintf(p->metrics, sizeof p->metrics, "%s/metrics.csv", dir) >= (int)sizeof p->metrics;
    n |= snprintf(p->eval, sizeof p->eval, "%s/eval.csv", dir) >= (int)sizeof p->eval;
    n |= snprintf(p->timings, sizeof p->timings, "%s/timings.csv", dir) >= (int)sizeof p->timings;
    n |= snprintf(p->ckpt, sizeof p->ckpt, "%s/checkpoint.ckpt", dir) >= (int)sizeof p->ckpt;
    n |= snprintf(p->final, sizeof p->final, "%s/final.ckpt", dir) >= (int)sizeof p->final;
    n |= snprintf(p->options, sizeof p->options, "%s/options.txt", dir) >= (int)sizeof p->options;
    return n ? gkd_error(GKD_EINVAL, "distill: output directory path too long") : 0;
}

static int eval_header(gkd_csv_buf *b) {
    int rc = gkd_csv_buf_str(b, "step");
    for (int m = 0; m < GKD_M_COUNT && !rc; m++) rc = gkd_csv_buf_str(b, gkd_metric_name(m));
    return rc ? rc : gkd_csv_buf_end_row(b);
}

/* "student" when the whole batch has one source, else "student:3|data:29". */
static void source_label(char *out, size_t cap, const gkd_step_stats *st) {
    int kinds = 0;
    for (int k = 0; k <= GKD_SRC_REPLAY; k++) kinds += st->source_count[k] > 0;
    out[0] = '\0';
    for (int k = 0; k <= GKD_SRC_REPLAY; k++) {
        if (!st->source_count[k]) continue;
        size_t len = strlen(out);
        if (kinds == 1) snprintf(out + len, cap - len, "%s", gkd_source_name(k));
        else snprintf(out + len, cap - len, "%s%s:%d", len ? "|" : "", gkd_source_name(k), st->source_count[k]);
    }
}

static int write_metrics_row(gkd_csv_appender *a, gkd_csv_buf *b, long step, const gkd_step_stats *st,
                             const gkd_distill_state *s) {
    char src[128];
    source_label(src, sizeof src, st);
    gkd_replay *buf = gkd_schedule_buffer(s->schedule);
    gkd_csv_buf_reset(b);
    int rc = gkd_csv_buf_long(b, step);
    rc = rc ? rc : gkd_csv_buf_str(b, src);
    rc = rc ? rc : gkd_csv_buf_double(b, st->loss);
    rc = rc ? rc : gkd_csv_buf_double(b, st->divergence);
    rc = rc ? rc : (isnan(st->ce) ? gkd_csv_buf_empty(b) : gkd_csv_buf_double(b, st->ce));
    rc = rc ? rc : gkd_csv_buf_double(b, st->grad_norm);
    rc = rc ? rc : gkd_csv_buf_double(b, st->lr);
    rc = rc ? rc : gkd_csv_buf_long(b, st->tokens);
    rc = rc ? rc : gkd_csv_buf_double(b, st->rollout_len);
    rc = rc ? rc : gkd_csv_buf_double(b, gkd_schedule_threshold(s->schedule));
    rc = rc ? rc : gkd_csv_buf_long(b, buf ? gkd_replay_count(buf) : 0);
    rc = rc ? rc : gkd_csv_buf_end_row(b);
    return rc ? rc : gkd_csv_appender_write(a, b->data);
}

static int write_timings_row(gkd_csv_appender *a, gkd_csv_buf *b, long step, const gkd_step_stats *st) {
    double total = st->time_sample + st->time_teacher + st->time_student + st->time_update;
    gkd_csv_buf_reset(b);
    int rc = gkd_csv_buf_long(b, step);
    rc = rc ? rc : gkd_csv_buf_double(b, st->time_sample);
    rc = rc ? rc : gkd_csv_buf_double(b, st->time_teacher);
    rc = rc ? rc : gkd_csv_buf_double(b, st->time_student);
    rc = rc ? rc : gkd_csv_buf_double(b, st->time_update);
    rc = rc ? rc : gkd_csv_buf_double(b, total > 0 ? st->tokens / total : 0);
    rc = rc ? rc : gkd_csv_buf_end_row(b);
    return rc ? rc : gkd_csv_appender_write(a, b->data);
}

static gkd_divergence validation_divergence(const gkd_distill_options *o) {
    gkd_divergence d = o->divergence;
    if (d.kind == GKD_DIV_PG_RKL) d.kind = GKD_DIV_RKL;
    return d;
}

/* The evaluation settings of a run: the same for the student at every
 * evaluation and for the teacher's reference evaluation. */
static gkd_eval_options eval_options(const gkd_distill_options *o) {
    gkd_eval_options eo = GKD_EVAL_OPTIONS_INIT;
    eo.n = o->eval_n;
    eo.greedy = o->eval_greedy;
    eo.samples = o->eval_samples;
    eo.temperature = o->eval_temperature;
    eo.bleu_smoothing = (gkd_bleu_smoothing)o->eval_bleu_smoothing;
    eo.max_new_tokens = o->sample.max_new_tokens;
    eo.batch = o->batch;
    eo.seed = o->seed;
    eo.val_divergence = validation_divergence(o);
    eo.tau = o->loss_temperature;
    return eo;
}

/* Append one eval.csv row: the step, then every metric (empty where not
 * measured). */
static int eval_row(gkd_csv_buf *b, long step, const gkd_eval_result *res) {
    int rc = gkd_csv_buf_long(b, step);
    for (int m = 0; m < GKD_M_COUNT && !rc; m++)
        rc = isnan(res->v[m]) ? gkd_csv_buf_empty(b) : gkd_csv_buf_double(b, res->v[m]);
    return rc ? rc : gkd_csv_buf_end_row(b);
}

static int evaluate(gkd_distill_state *s, gkd_csv_appender *a, gkd_csv_buf *b, long step,
                    gkd_eval_result *res) {
    gkd_eval_options eo = eval_options(&s->o);
    int rc = gkd_evaluate(res, s->student, s->teacher, s->tok, s->task, &eo);
    if (rc) return gkd_error_wrap(rc, "evaluation at step %ld", step);
    gkd_csv_buf_reset(b);
    rc = eval_row(b, step, res);
    rc = rc ? rc : gkd_csv_appender_write(a, b->data);
    if (rc) return rc;
    /* DistiLLM's adaptive schedule reacts to the validation loss. */
    if (!isnan(res->v[GKD_M_VAL_LOSS])) rc = gkd_schedule_validation(s->schedule, res->v[GKD_M_VAL_LOSS], NULL);
    return rc;
}

/* record: the run's data split, stored so that a later evaluation can
 * tell whether its eval examples were trained on. */
static int save_checkpoint(gkd_distill_state *s, const gkd_task_record *record, const char *path, long step,
                           int with_state) {
    gkd_checkpoint c = {0};
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    c.model = s->student;
    c.tokenizer = s->tok;
    c.task_record = record;
    c.step = step;
    if (with_state) {
        int rc = gkd_schedule_save(s->schedule, &blob, &blob_len);
        if (rc) return rc;
        c.opt_m = s->opt->m;
        c.opt_v = s->opt->v;
        c.opt_t = s->opt->t;
        c.extra = blob;
        c.extra_len = blob_len;
    }
    int rc = gkd_checkpoint_save(path, &c);
    free(blob);
    return rc;
}

/* Restore student, optimizer and schedule from dir's checkpoint; *step is
 * the number of steps it holds (0 if there is none). */
static int resume(gkd_distill_state *s, const run_paths *p, long *step) {
    *step = 0;
    if (access(p->ckpt, F_OK) != 0) return 0;
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, p->ckpt, s->student);
    if (rc) return gkd_error_wrap(rc, "resume");
    if (!d.opt_m || !d.extra) {
        rc = gkd_error(GKD_EFORMAT, "resume: %s holds no optimizer or schedule state", p->ckpt);
        goto done;
    }
    /* gkd writes a checkpoint only after a step: one at step 0 is not its
     * own, and resuming from it would first drop the logs. */
    if (d.step < 1) {
        rc = gkd_error(GKD_EFORMAT, "resume: %s is at step %lld; a run's checkpoints come after step 1 or later",
                       p->ckpt, (long long)d.step);
        goto done;
    }
    if (d.step > s->o.steps) {
        rc = gkd_error(GKD_EMISMATCH, "resume: %s is at step %lld, beyond this run's %ld steps", p->ckpt,
                       (long long)d.step, s->o.steps);
        goto done;
    }
    if ((rc = gkd_schedule_load(s->schedule, d.extra, d.extra_len, s->student->config.vocab_size))) {
        rc = gkd_error_wrap(rc, "resume: %s", p->ckpt);
        goto done;
    }
    memcpy(s->opt->m, d.opt_m, sizeof(float) * s->student->num_params);
    memcpy(s->opt->v, d.opt_v, sizeof(float) * s->student->num_params);
    s->opt->t = (long)d.opt_t;
    *step = (long)d.step;
done:
    gkd_checkpoint_data_free(&d);
    return rc;
}

int gkd_distill_run(gkd_model *student, gkd_model *teacher, const gkd_tokenizer *tok,
                    const gkd_task *task, const gkd_distill_options *opt, const char *dir,
                    gkd_progress_fn progress, void *progress_ctx) {
    gkd_distill_state s;
    run_paths p;
    gkd_csv_appender *metrics = NULL, *evalf = NULL, *timings = NULL;
    gkd_csv_buf buf = GKD_CSV_BUF_INIT, header = GKD_CSV_BUF_INIT, options = GKD_CSV_BUF_INIT;
    gkd_task_record *record = NULL;
    long start = 0;
    int rc = make_paths(&p, dir);
    if (rc) return rc;
    /* A run killed inside an atomic write leaves its temporary file. */
    static const char *const written[] = {"checkpoint.ckpt", "final.ckpt", "options.txt", "teacher_eval.csv"};
    if (gkd_path_exists(dir) && (rc = gkd_remove_stale_temps(dir, written, 4))) return rc;
    /* Before resume() overwrites the student with the checkpoint's. */
    if ((rc = gkd_run_options_text(&options, student, teacher, tok, task, opt))) {
        gkd_csv_buf_free(&options);
        return rc;
    }
    /* What the checkpoints will say was trained on: the task's options and
     * its data files' hashes, taken now, before training reads anything. */
    if ((rc = gkd_task_record_new(&record, task))) {
        gkd_csv_buf_free(&options);
        return rc;
    }
    if ((rc = gkd_distill_state_init(&s, student, teacher, tok, task, opt))) {
        gkd_csv_buf_free(&options);
        gkd_task_record_free(record);
        return rc;
    }
    if ((rc = resume(&s, &p, &start))) goto done;
    /* Before any log is truncated: a resume with other options is refused. */
    if ((rc = gkd_run_options_check(p.options, options.data, start > 0))) goto done;
    if (start == 0) {
        /* No checkpoint: nothing logged counts (a kill may even have left a
         * file without its header), so the logs start over. */
        const char *logs[] = {p.metrics, p.eval, p.timings};
        for (int i = 0; i < 3; i++)
            if (unlink(logs[i]) != 0 && errno != ENOENT) {
                rc = gkd_error(GKD_EIO, "cannot remove %s: %s", logs[i], strerror(errno));
                goto done;
            }
    } else if ((rc = gkd_csv_truncate_after_step(p.metrics, start)) ||
               (rc = gkd_csv_truncate_after_step(p.eval, start)) ||
               (rc = gkd_csv_truncate_after_step(p.timings, start))) {
        /* Rows logged after the checkpoint are redone. */
        goto done;
    }
    if ((rc = eval_header(&header))) goto done;
    if ((rc = gkd_csv_appender_open(&metrics, p.metrics, METRICS_HEADER)) ||
        (rc = gkd_csv_appender_open(&evalf, p.eval, header.data)) ||
        (rc = gkd_csv_appender_open(&timings, p.timings, TIMINGS_HEADER)))
        goto done;

    gkd_eval_result res;
    char line[256];
    if (start == 0) {
        if ((rc = evaluate(&s, evalf, &buf, 0, &res))) goto done;
        if (progress) {
            snprintf(line, sizeof line, "step 0/%ld eval val_loss %.4f exact_match %.3f", opt->steps,
                     res.v[GKD_M_VAL_LOSS], res.v[GKD_M_EXACT_MATCH]);
            progress(progress_ctx, 0, opt->steps, line);
        }
    }
    for (long step = start + 1; step <= opt->steps; step++) {
        gkd_step_stats st;
        if ((rc = gkd_distill_step(&s, step, &st))) goto done;
        if ((rc = write_metrics_row(metrics, &buf, step, &st, &s))) goto done;
        if ((rc = write_timings_row(timings, &buf, step, &st))) goto done;
        int last = step == opt->steps;
        if (last || (opt->eval_every > 0 && step % opt->eval_every == 0)) {
            if ((rc = evaluate(&s, evalf, &buf, step, &res))) goto done;
            if (progress) {
                snprintf(line, sizeof line, "step %ld/%ld eval val_loss %.4f exact_match %.3f", step,
                         opt->steps, res.v[GKD_M_VAL_LOSS], res.v[GKD_M_EXACT_MATCH]);
                progress(progress_ctx, step, opt->steps, line);
            }
        } else if (progress) {
            char src[128];
            source_label(src, sizeof src, &st);
            snprintf(line, sizeof line, "step %ld/%ld %s loss %.4f", step, opt->steps, src, st.loss);
            progress(progress_ctx, step, opt->steps, line);
        }
        if (last || (opt->checkpoint_every > 0 && step % opt->checkpoint_every == 0))
            if ((rc = save_checkpoint(&s, record, p.ckpt, step, 1))) goto done;
    }
    rc = save_checkpoint(&s, record, p.final, opt->steps, 0);
done:
    if (rc) {
        /* Keep the message of the first error; closing only flushes. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gkd_last_error());
        gkd_csv_appender_close(metrics);
        gkd_csv_appender_close(evalf);
        gkd_csv_appender_close(timings);
        gkd_error(rc, "%s", msg);
    } else {
        int c1 = gkd_csv_appender_close(metrics), c2 = gkd_csv_appender_close(evalf),
            c3 = gkd_csv_appender_close(timings);
        rc = c1 ? c1 : c2 ? c2 : c3;
    }
    gkd_csv_buf_free(&buf);
    gkd_csv_buf_free(&header);
    gkd_csv_buf_free(&options);
    gkd_task_record_free(record);
    gkd_distill_state_free(&s);
    return rc;
}

int gkd_distill_eval_teacher(gkd_model *teacher, const gkd_tokenizer *tok, const gkd_task *task,
                             const gkd_distill_options *opt, const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/teacher_eval.csv", dir) >= (int)sizeof path)
        return gkd_error(GKD_EINVAL, "distill: output directory path too long");
    gkd_eval_options eo = eval_options(opt);
    gkd_eval_result res;
    /* The teacher as the student: its task metrics, samples and val_loss
     * (0 against itself) on the run's own prompts, streams and settings. */
    int rc = gkd_evaluate(&res, teacher, teacher, tok, task, &eo);
    if (rc) return gkd_error_wrap(rc, "the teacher's reference evaluation");
    gkd_csv_buf text = GKD_CSV_BUF_INIT;
    rc = eval_header(&text);
    rc = rc ? rc : eval_row(&text, 0, &res);
    rc = rc ? rc : gkd_file_write_atomic(path, text.data, text.len);
    gkd_csv_buf_free(&text);
    return rc;
}
