/* The runner's parts that need no training: the runs' options from the
 * schema table (src/experiment/cell_options.c) and the description of a
 * changed cell config (src/experiment/cell_config_change.c). */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experiment/cell_dir.h"
#include "experiment/cell_options.h"
#include "experiment/experiment_internal.h"
#include "gkd/error.h"
#include "gkd/experiment.h"

#include "helpers.h"

static const char *const base_yaml =
    "name: parts\n"
    "task: {name: arith, digits: 2, train: 100, eval: 50}\n"
    "teacher:\n"
    "  model: {layers: 1, d_model: 8, heads: 2, context: 32}\n"
    "  train: {steps: 700, batch: 4, lr: 2e-3, seed: 7}\n"
    "student:\n"
    "  model: {layers: 1, d_model: 8, heads: 2}\n"
    "  sft: {steps: 20, batch: 3, lr: 3e-3, lr_min: 1e-4}\n"
    "distill:\n"
    "  steps: 30\n"
    "  lr: 1e-3\n"
    "  divergence: jsd(0.3)\n"
    "  replay: {mode: adaptive, capacity: 50}\n"
    "  reduction: sequence\n"
    "  top_p: 0.9\n"
    "  max_new_tokens: 9\n"
    "eval: {every: 11, decode: sample, samples: 3, n: 17, temperature: 0.5}\n"
    "seeds: [3]\n";

/* Cell 0 of `yaml` (the experiment stays loaded in *e). */
static gkd_cell_config load_cell(gkd_experiment **e, const char *yaml) {
    ck_assert_msg(gkd_experiment_load_buffer(e, yaml, strlen(yaml), "/tmp/parts.yaml") == 0, "%s", gkd_last_error());
    gkd_cell_config c;
    ck_assert_int_eq(gkd_experiment_cell(*e, 0, &c), 0);
    return c;
}

/* Every row that sets an option converts its kind's type into it. */
START_TEST(test_option_rows_convert) {
    int rows = 0;
    for (int i = 0; i < exp_num_keys; i++) {
        const exp_key *k = &exp_keys[i];
        const exp_option_type t = k->option.type;
        ck_assert_msg((k->option.runs == 0) == (t == O_NONE), "%s: runs and type disagree", k->path);
        if (t == O_NONE) continue;
        rows++;
        int ok = 0;
        switch (k->kind) {
        case K_INT: case K_BOOL: case K_ENUM: ok = t == O_INT || t == O_LONG; break;
        case K_DOUBLE: ok = t == O_FLOAT || t == O_DOUBLE; break;
        case K_U64: case K_SEEDS: ok = t == O_U64; break;
        case K_DIV: ok = t == O_DIVERGENCE; break;
        default: break;
        }
        ck_assert_msg(ok, "%s: its kind does not convert to option type %d", k->path, (int)t);
        ck_assert_msg(k->option.offset < sizeof(gkd_distill_options), "%s: offset", k->path);
    }
    ck_assert_int_ge(rows, 40);
}
END_TEST

START_TEST(test_distill_options_from_cell) {
    gkd_experiment *e = NULL;
    gkd_cell_config c = load_cell(&e, base_yaml);
    gkd_distill_options o;
    cell_run_options(&o, &c, CELL_RUN_DISTILL);
    ck_assert_int_eq(o.divergence.kind, GKD_DIV_JSD);
    ck_assert(o.divergence.param == 0.3);
    ck_assert_int_eq(o.steps, 30);
    ck_assert(o.lr == 1e-3);
    ck_assert(o.lr_min == 1e-3 * 0.1); /* unset: lr / 10 */
    ck_assert_int_eq(o.schedule.replay, GKD_REPLAY_ADAPTIVE);
    ck_assert_int_eq(o.schedule.capacity, 50);
    ck_assert_int_eq(o.schedule.total_steps, 30);
    ck_assert_int_eq(o.per_sequence, 1);
    ck_assert(o.sample.top_p == 0.9f);
    ck_assert_int_eq(o.sample.max_new_tokens, 9);
    ck_assert_int_eq(o.eval_every, 11);
    ck_assert_int_eq(o.eval_n, 17);
    ck_assert_int_eq(o.eval_samples, 3);
    ck_assert(o.eval_temperature == 0.5f);
    ck_assert_int_eq(o.eval_greedy, 0);
    ck_assert_uint_eq(o.seed, 3);

    cell_run_options(&o, &c, CELL_RUN_TEACHER);
    ck_assert_int_eq(o.divergence.kind, GKD_DIV_CE);
    ck_assert_int_eq(o.steps, 700);
    ck_assert_int_eq(o.batch, 4);
    ck_assert(o.lr_min == 2e-3 * 0.1);
    ck_assert_uint_eq(o.seed, 7); /* teacher.train.seed, not the run seed */
    ck_assert_int_eq(o.checkpoint_every, 500);
    ck_assert_int_eq(o.eval_every, 0);
    ck_assert_int_eq(o.eval_samples, 0);
    ck_assert_int_eq(o.sample.max_new_tokens, 9);
    /* The cell's eval settings, not a fixed 200 examples (issue 18). */
    ck_assert_int_eq(o.eval_n, 17);
    ck_assert_int_eq(o.eval_greedy, 0);
    ck_assert(o.eval_temperature == 0.5f);

    cell_run_options(&o, &c, CELL_RUN_SFT);
    ck_assert_int_eq(o.divergence.kind, GKD_DIV_CE);
    ck_assert_int_eq(o.steps, 20);
    ck_assert(o.lr_min == 1e-4);
    ck_assert_uint_eq(o.seed, 3); /* the run seed */
    ck_assert_int_eq(o.checkpoint_every, 0);
    ck_assert_int_eq(o.eval_n, 17);
    gkd_experiment_free(e);
}
END_TEST

static char tmpdir[PATH_MAX];

static void make_tmp(void) { th_make_tmpdir(tmpdir, sizeof tmpdir, "gkd-run-parts"); }
static void remove_tmp(void) { th_remove_tmpdir(tmpdir); }

/* Base_yaml with `from` replaced by `to`. */
static char *edited(const char *from, const char *to) {
    const char *at = strstr(base_yaml, from);
    ck_assert_msg(at != NULL, "'%s' not in the base", from);
    char *out = malloc(strlen(base_yaml) + strlen(to) + 1);
    ck_assert_ptr_nonnull(out);
    sprintf(out, "%.*s%s%s", (int)(at - base_yaml), base_yaml, to, at + strlen(from));
    return out;
}

/* The change from the saved config of `saved_yaml`'s cell (config.yaml as
 * gkd run writes it, then `drop` removed from it) to `now_yaml`'s cell. */
static void change(char *out, size_t cap, const char *saved_yaml, const char *drop, const char *now_yaml) {
    gkd_experiment *se = NULL, *ne = NULL;
    gkd_cell_config saved = load_cell(&se, saved_yaml);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config.yaml", tmpdir);
    ck_assert_int_eq(gkd_cell_config_save_yaml(&saved, path), 0);
    if (drop) {
        FILE *f = fopen(path, "r");
        char text[8192];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        char *at = strstr(text, drop);
        ck_assert_msg(at != NULL, "'%s' not in config.yaml", drop);
        memmove(at, at + strlen(drop), strlen(at + strlen(drop)) + 1);
        th_write_file(path, text);
    }
    gkd_cell_config now = load_cell(&ne, now_yaml);
    cell_config_change(out, cap, tmpdir, &now);
    gkd_experiment_free(se);
    gkd_experiment_free(ne);
}

START_TEST(test_config_change_typed) {
    char out[512];
    char *y = edited("  lr: 1e-3\n", "  lr: 0.002\n");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "distill.lr: 0.001 -> 0.002");
    free(y);
    /* The same value written otherwise is no change: the configs are
     * compared on their values, not their text. */
    y = edited("  lr: 1e-3\n", "  lr: 0.0010\n");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "");
    free(y);
    y = edited("mode: adaptive", "mode: fixed");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "distill.replay.mode: adaptive -> fixed");
    free(y);
    y = edited("seeds: [3]", "seeds: [4]");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "seeds: [3] -> [4]");
    free(y);
    y = edited("divergence: jsd(0.3)", "divergence: jsd(0.30)");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "");
    free(y);
    /* The first changed key in config.yaml's order. */
    y = edited("eval: {every: 11,", "eval: {every: 12,");
    char *y2 = strdup(y);
    free(y);
    const char *at = strstr(y2, "steps: 20");
    ck_assert_ptr_nonnull(at);
    memcpy(strstr(y2, "steps: 20"), "steps: 21", 9);
    change(out, sizeof out, base_yaml, NULL, y2);
    ck_assert_str_eq(out, "student.sft.steps: 20 -> 21");
    free(y2);
}
END_TEST

START_TEST(test_config_change_keys_set_or_not) {
    char out[512];
    /* A config.yaml written by a gkd without a key the schema now has. */
    change(out, sizeof out, base_yaml, "    loss_eps: 0.1\n", base_yaml);
    ck_assert_str_eq(out, "distill.replay.loss_eps: not in the old config -> 0.1");
    /* A key set before and unset now. */
    char *y = edited("lr: 3e-3, lr_min: 1e-4}", "lr: 3e-3}");
    change(out, sizeof out, base_yaml, NULL, y);
    ck_assert_str_eq(out, "student.sft.lr_min: 0.0001 -> not set");
    free(y);
    /* A config.yaml this gkd cannot read: no description. */
    change(out, sizeof out, base_yaml, "name: ", base_yaml);
    ck_assert_str_eq(out, "");
}
END_TEST

Suite *run_parts_suite(void) {
    Suite *s = suite_create("run_parts");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_option_rows_convert);
    tcase_add_test(tc, test_distill_options_from_cell);
    suite_add_tcase(s, tc);
    tc = tcase_create("config_change");
    tcase_add_checked_fixture(tc, make_tmp, remove_tmp);
    tcase_add_test(tc, test_config_change_typed);
    tcase_add_test(tc, test_config_change_keys_set_or_not);
    suite_add_tcase(s, tc);
    return s;
}
