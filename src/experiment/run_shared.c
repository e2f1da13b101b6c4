/* Shared teachers and SFT students (run_shared.h). */
#include "run_shared.h"

#include <stdio.h>

#include "cell_options.h"
#include "gkd/checkpoint.h"
#include "gkd/distill.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/products.h"
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
    return shared_supervised(out, exp_dir, "teacher", hash, &shape, &o, tok, task, tty);
}

int run_shared_student(gkd_model **out, const gkd_cell_config *c, const gkd_model_config *shape,
                       const char *exp_dir, const gkd_tokenizer *tok, const gkd_task *task, int tty) {
    char hash[GKD_HASH_HEX_LEN + 1];
    gkd_cell_student_init_hash(c, hash);
    gkd_distill_options o;
    cell_run_options(&o, c, CELL_RUN_SFT);
    return shared_supervised(out, exp_dir, "student", hash, shape, &o, tok, task, tty);
}
