/* Shared teachers and SFT students (run_shared.h). */
#include "run_shared.h"

#include <stdio.h>

#include "cell_options.h"
#include "gkd/checkpoint.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/products.h"
#include "gkd/teacher_cache.h"
#include "util/blob.h"
#include "run_lock.h"
#include "run_path.h"
#include "run_progress.h"

/* Train (or load) a supervised model into shared/<kind>-<hash>/final.ckpt. */
static int shared_supervised(gkd_model **out, const char *exp_dir, const char *kind, const char *hash,
                             const gkd_model_config *cfg, const gkd_distill_options *o, const gkd_tokenizer *tok,
                             const gkd_task *task, int tty) {
    char dir[RUN_PATH_CAP], lockpath[RUN_PATH_CAP], final[RUN_PATH_CAP];
    char name[128];
    /* Artifacts made in the OpenBLAS mode are kept apart from the
     * reproducible ones, so neither kind of cell uses the other's. */
    const char *mode = gkd_products() == GKD_PRODUCTS_OPENBLAS ? "-openblas" : "";
    snprintf(name, sizeof name, "shared/%s-%s%s", kind, hash, mode);
    int rc = run_path_join(dir, exp_dir, name);
    if (rc) return rc;
    snprintf(name, sizeof name, "shared/%s-%s%s.lock", kind, hash, mode);
    if ((rc = run_path_join(lockpath, exp_dir, name)) || (rc = run_path_join(final, dir, "final.ckpt"))) return rc;
    if ((rc = gkd_mkdir_p(dir))) return rc;
    run_lock lock = RUN_LOCK_INIT;
    if ((rc = run_lock_acquire(&lock, lockpath))) return rc;
    gkd_model *m = NULL;
    if (gkd_path_exists(final)) {
        gkd_checkpoint_data d;
        if ((rc = gkd_checkpoint_load(&d, final, NULL))) goto done;
        m = d.model;
        d.owns_model = 0;
        gkd_checkpoint_data_free(&d);
    } else {
        if ((rc = gkd_model_new(&m, cfg))) goto done;
        gkd_model_init_weights(m, o->seed);
        run_progress pc = {.cell = kind, .tty = tty};
        fprintf(stderr, "gkd: training the shared %s %s (%ld steps)\n", kind, hash, o->steps);
        rc = gkd_distill_run(m, NULL, tok, task, o, dir, run_progress_shared, &pc);
        if (tty) fputc('\n', stderr);
        if (rc) rc = gkd_error_wrap(rc, "%s %s", kind, hash);
    }
done:
    run_lock_release(&lock);
    if (rc) gkd_model_free(m);
    else *out = m;
    return rc;
}

int run_shared_teacher(gkd_model **out, const gkd_cell_config *c, const char *exp_dir, const gkd_tokenizer *tok,
                       const gkd_task *task, int tty) {
    char hash[GKD_HASH_HEX_LEN + 1];
    gkd_cell_teacher_hash(c, hash);
    gkd_model_config shape = c->teacher_model;
    shape.vocab_size = gkd_tokenizer_vocab_size(tok);
    gkd_distill_options o;
    cell_run_options(&o, c, CELL_RUN_TEACHER);
    /* The teacher learns from every training example whatever fraction the
     * student sees (task.train_fraction is not in its hash): one teacher
     * for the whole data-efficiency curve. */
    if (gkd_task_config_of(task)->train_fraction == 1.0)
        return shared_supervised(out, exp_dir, "teacher", hash, &shape, &o, tok, task, tty);
    gkd_task_config full = *gkd_task_config_of(task);
    full.train_fraction = 1.0;
    gkd_task *whole = NULL;
    int rc = gkd_task_new(&whole, &full);
    if (!rc) rc = shared_supervised(out, exp_dir, "teacher", hash, &shape, &o, tok, whole, tty);
    gkd_task_free(whole);
    return rc;
}

int run_shared_student(gkd_model **out, const gkd_cell_config *c, const gkd_model_config *shape,
                       const char *exp_dir, const gkd_tokenizer *tok, const gkd_task *task, int tty) {
    char hash[GKD_HASH_HEX_LEN + 1];
    gkd_cell_student_init_hash(c, hash);
    gkd_distill_options o;
    cell_run_options(&o, c, CELL_RUN_SFT);
    return shared_supervised(out, exp_dir, "student", hash, shape, &o, tok, task, tty);
}

/* The off-policy source whose rows a shared cache can hold for options o,
 * or -1: SeqKD outputs when the run generates them once per prompt (the
 * costly part), else the data when the schedule draws it at all. */
static int shared_cache_source(const gkd_distill_options *o) {
    const gkd_schedule_options *s = &o->schedule;
    const int off_policy = s->lambda < 1 || s->replay == GKD_REPLAY_ADAPTIVE;
    if (!o->teacher_topk || !off_policy) return -1;
    if (s->seqkd > 0 && o->seqkd_cache) return GKD_TEACHER_CACHE_SEQKD;
    if (s->seqkd < 1) return GKD_TEACHER_CACHE_DATA;
    return -1;
}

/* Hash of everything that determines a cache's bytes: its header. */
static uint64_t header_hash(const gkd_teacher_cache_header *h) {
    const uint64_t u[] = {(uint64_t)h->source, (uint64_t)h->V, (uint64_t)h->k, (uint64_t)h->cap, h->teacher_hash,
                          h->tokenizer_hash, h->task_hash, h->train_n, (uint64_t)h->sample.top_k,
                          (uint64_t)h->sample.max_new_tokens, h->seed};
    const float f[] = {h->tau, h->sample.temperature, h->sample.top_p};
    return blob_fnv1a64_update(blob_fnv1a64_update(BLOB_FNV1A64_OFFSET, u, sizeof u), f, sizeof f);
}

int run_shared_teacher_cache(char *path, const gkd_cell_config *c, const gkd_distill_options *o,
                             const char *exp_dir, gkd_model *teacher, const gkd_tokenizer *tok,
                             const gkd_task *task, int tty) {
    path[0] = '\0';
    const int source = shared_cache_source(o);
    if (o->teacher_cache || !c->distill.shared_teacher_cache || source < 0) return 0;
    gkd_teacher_cache_options co = GKD_TEACHER_CACHE_OPTIONS_INIT;
    co.source = (gkd_teacher_cache_source)source;
    co.k = o->teacher_topk;
    co.tau = o->loss_temperature;
    co.cap = c->student_model.max_seq_len ? c->student_model.max_seq_len : teacher->config.max_seq_len;
    co.batch = o->batch;
    co.sample = o->sample;
    co.seed = o->seed;
    gkd_teacher_cache_header h;
    int rc = gkd_teacher_cache_header_for(&h, teacher, tok, task, &co);
    if (rc) return rc;
    char name[128], lockpath[RUN_PATH_CAP];
    const char *mode = gkd_products() == GKD_PRODUCTS_OPENBLAS ? "-openblas" : "";
    const unsigned long long hash = (unsigned long long)header_hash(&h);
    snprintf(name, sizeof name, "shared/teacher_cache-%016llx%s.bin", hash, mode);
    if ((rc = run_path_join(path, exp_dir, name))) return rc;
    snprintf(name, sizeof name, "shared/teacher_cache-%016llx%s.lock", hash, mode);
    if ((rc = run_path_join(lockpath, exp_dir, name))) return rc;
    char dir[RUN_PATH_CAP];
    if ((rc = run_path_join(dir, exp_dir, "shared")) || (rc = gkd_mkdir_p(dir))) return rc;
    run_lock lock = RUN_LOCK_INIT;
    if ((rc = run_lock_acquire(&lock, lockpath))) return rc;
    if (!gkd_path_exists(path)) {
        fprintf(stderr, "gkd: building the shared teacher cache %016llx (%s, k=%d, %llu examples)\n", hash,
                source == GKD_TEACHER_CACHE_SEQKD ? "seqkd" : "data", co.k, (unsigned long long)h.train_n);
        (void)tty;
        if ((rc = gkd_teacher_cache_build(path, teacher, tok, task, &co, NULL, NULL)))
            rc = gkd_error_wrap(rc, "shared teacher cache %016llx", hash);
    }
    run_lock_release(&lock);
    return rc;
}
