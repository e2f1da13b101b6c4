#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/experiment.h"

/* Internal to the library; its reference values are checked below. */
uint64_t exp_fnv1a(uint64_t h, const void *data, size_t n);

static const char *root(void) {
    const char *r = getenv("GKD_ROOT");
    return r ? r : ".";
}

static gkd_experiment *load_fixture(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/experiments/%s", root(), name);
    gkd_experiment *e = NULL;
    int rc = gkd_experiment_load(&e, path);
    ck_assert_msg(rc == 0, "%s: %s", name, gkd_last_error());
    return e;
}

static int load_text(gkd_experiment **e, const char *yaml) {
    return gkd_experiment_load_buffer(e, yaml, strlen(yaml), "exp.yaml");
}

static gkd_cell_config cell_of(const gkd_experiment *e, size_t i) {
    gkd_cell_config c;
    ck_assert_int_eq(gkd_experiment_cell(e, i, &c), 0);
    return c;
}

static void fixture_dir(char *buf, size_t cap) {
    char cwd[2048];
    const char *r = root();
    if (r[0] == '/') snprintf(buf, cap, "%s/tests/fixtures/experiments", r);
    else {
        ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
        if (!strcmp(r, ".")) snprintf(buf, cap, "%s/tests/fixtures/experiments", cwd);
        else snprintf(buf, cap, "%s/%s/tests/fixtures/experiments", cwd, r);
    }
}

START_TEST(test_all_keys) {
    gkd_experiment *e = load_fixture("all_keys.yaml");
    ck_assert_str_eq(gkd_experiment_name(e), "all-keys_1.0");
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 1);
    gkd_cell_config c = cell_of(e, 0);
    ck_assert_str_eq(c.experiment, "all-keys_1.0");
    ck_assert_str_eq(c.description, "every key");
    ck_assert_str_eq(c.task.name, "arith");
    ck_assert_int_eq(c.task.digits, 4);
    ck_assert_str_eq(c.task.op, "mul");
    ck_assert_int_eq(c.task.rationale, 1);
    ck_assert_int_eq(c.task.train, 1000);
    ck_assert_int_eq(c.task.eval, 300);
    ck_assert_uint_eq(c.task.seed, 77);
    ck_assert_ptr_null(c.teacher_checkpoint);
    ck_assert_int_eq(c.teacher_model.vocab_size, 0);
    ck_assert_int_eq(c.teacher_model.n_layer, 3);
    ck_assert_int_eq(c.teacher_model.n_embd, 96);
    ck_assert_int_eq(c.teacher_model.n_head, 3);
    ck_assert_int_eq(c.teacher_model.max_seq_len, 128);
    ck_assert_int_eq(c.teacher_train.steps, 500);
    ck_assert_int_eq(c.teacher_train.batch, 16);
    ck_assert_double_eq(c.teacher_train.lr, 2e-3);
    ck_assert_int_eq(c.teacher_train.warmup, 50);
    ck_assert_double_eq(c.teacher_train.weight_decay, 0.01);
    ck_assert_double_eq(c.teacher_train.clip, 0.5);
    ck_assert_uint_eq(c.teacher_seed, 9);
    ck_assert_int_eq(c.student_model.vocab_size, 0);
    ck_assert_int_eq(c.student_model.n_layer, 1);
    ck_assert_int_eq(c.student_model.n_embd, 32);
    ck_assert_int_eq(c.student_model.n_head, 4);
    ck_assert_int_eq(c.student_model.max_seq_len, 96);
    ck_assert_int_eq(c.student_init, GKD_INIT_SFT);
    ck_assert_ptr_null(c.student_checkpoint);
    ck_assert_int_eq(c.student_sft.steps, 200);
    ck_assert_int_eq(c.student_sft.batch, 8);
    ck_assert_double_eq(c.student_sft.lr, 4e-3);
    ck_assert_int_eq(c.student_sft.warmup, 10);
    ck_assert_double_eq(c.student_sft.weight_decay, 0.02);
    ck_assert_double_eq(c.student_sft.clip, 2.0);
    const gkd_distill_config *d = &c.distill;
    ck_assert_int_eq(d->opt.steps, 700);
    ck_assert_int_eq(d->opt.batch, 12);
    ck_assert_double_eq(d->opt.lr, 5e-4);
    ck_assert_int_eq(d->opt.warmup, 20);
    ck_assert_double_eq(d->opt.weight_decay, 0.03);
    ck_assert_double_eq(d->opt.clip, 0.25);
    ck_assert_str_eq(d->divergence, "jsd(0.9)");
    ck_assert_double_eq(d->ce_weight, 0.2);
    ck_assert_double_eq(d->lambda, 0.75);
    ck_assert_int_eq(d->per_example, 1);
    ck_assert_double_eq(d->seqkd, 0.5);
    ck_assert_int_eq(d->seqkd_cache, 1);
    ck_assert_double_eq(d->teacher_mix, 0.3);
    ck_assert_int_eq(d->replay.mode, GKD_REPLAY_ADAPTIVE);
    ck_assert_int_eq(d->replay.capacity, 64);
    ck_assert_double_eq(d->replay.prob, 0.25);
    ck_assert_double_eq(d->replay.init, 0.125);
    ck_assert_double_eq(d->replay.step, 0.05);
    ck_assert_double_eq(d->replay.loss_eps, 0.02);
    ck_assert_double_eq(d->temperature, 0.7);
    ck_assert_int_eq(d->top_k, 5);
    ck_assert_double_eq(d->top_p, 0.9);
    ck_assert_double_eq(d->loss_temperature, 2.0);
    ck_assert_int_eq(d->reduction, GKD_REDUCE_SEQUENCE);
    ck_assert_int_eq(d->max_new_tokens, 24);
    ck_assert_int_eq(d->checkpoint_every, 50);
    ck_assert_int_eq(c.eval.every, 25);
    ck_assert_int_eq(c.eval.decode, GKD_DECODE_SAMPLE);
    ck_assert_int_eq(c.eval.samples, 4);
    ck_assert_int_eq(c.eval.n, 100);
    ck_assert_double_eq(c.eval.temperature, 0.5);
    ck_assert_uint_eq(c.seed, 7);
    ck_assert_str_eq(c.slurm.partition, "cpu");
    ck_assert_str_eq(c.slurm.time, "2-03:00:00");
    ck_assert_int_eq(c.slurm.cpus_per_task, 4);
    ck_assert_str_eq(c.slurm.mem, "8G");
    ck_assert_int_eq(c.num_axes, 1);
    ck_assert_str_eq(c.axes[0].key, "seeds");
    ck_assert_str_eq(c.axes[0].name, "seed");
    ck_assert_str_eq(c.axes[0].value, "7");
    ck_assert_str_eq(c.name, "seed=7");
    gkd_experiment_free(e);
}
END_TEST

START_TEST(test_defaults) {
    gkd_experiment *e = NULL;
    ck_assert_int_eq(load_text(&e, "name: x\n"), 0);
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 1);
    gkd_cell_config c = cell_of(e, 0);
    gkd_task_config t = GKD_TASK_CONFIG_INIT;
    ck_assert_str_eq(c.description, "");
    ck_assert_str_eq(c.task.name, t.name);
    ck_assert_uint_eq(c.task.seed, GKD_TASK_DEFAULT_SEED);
    ck_assert_int_eq(c.task.train, t.train);
    ck_assert_int_eq(c.task.eval, t.eval);
    ck_assert_int_eq(c.task.digits, t.digits);
    ck_assert_str_eq(c.task.op, t.op);
    ck_assert_int_eq(c.task.rationale, t.rationale);
    ck_assert_int_eq(c.task.min_len, t.min_len);
    ck_assert_int_eq(c.task.max_len, t.max_len);
    ck_assert_str_eq(c.task.alphabet, t.alphabet);
    ck_assert_int_eq(c.task.modes_k, t.modes_k);
    ck_assert_double_eq(c.task.zipf_s, t.zipf_s);
    ck_assert_int_eq(c.task.modes_len, t.modes_len);
    ck_assert_ptr_null(c.task.path);
    ck_assert_ptr_null(c.task.eval_path);
    ck_assert_double_eq(c.task.eval_fraction, t.eval_fraction);
    ck_assert_int_eq(c.task.chunk, t.chunk);
    ck_assert_int_eq(c.task.prompt_chars, t.prompt_chars);
    ck_assert_int_eq(c.teacher_model.n_layer, 4);
    ck_assert_int_eq(c.teacher_model.n_embd, 128);
    ck_assert_int_eq(c.teacher_model.n_head, 4);
    ck_assert_int_eq(c.teacher_model.max_seq_len, 64);
    ck_assert_int_eq(c.teacher_train.steps, 3000);
    ck_assert_int_eq(c.teacher_train.batch, 64);
    ck_assert_double_eq(c.teacher_train.lr, 3e-3);
    ck_assert_int_eq(c.teacher_train.warmup, 100);
    ck_assert_double_eq(c.teacher_train.weight_decay, 0.0);
    ck_assert_double_eq(c.teacher_train.clip, 1.0);
    ck_assert_uint_eq(c.teacher_seed, 1);
    ck_assert_int_eq(c.student_model.n_layer, 2);
    ck_assert_int_eq(c.student_model.n_embd, 64);
    ck_assert_int_eq(c.student_model.n_head, 2);
    ck_assert_int_eq(c.student_model.max_seq_len, 64); /* the teacher's */
    ck_assert_int_eq(c.student_init, GKD_INIT_SFT);
    ck_assert_int_eq(c.student_sft.steps, 300);
    ck_assert_int_eq(c.student_sft.batch, 64);
    ck_assert_double_eq(c.student_sft.lr, 3e-3);
    ck_assert_int_eq(c.student_sft.warmup, 0);
    ck_assert_int_eq(c.distill.opt.steps, 1000);
    ck_assert_int_eq(c.distill.opt.batch, 32);
    ck_assert_double_eq(c.distill.opt.lr, 1e-3);
    ck_assert_int_eq(c.distill.opt.warmup, 0);
    ck_assert_double_eq(c.distill.opt.clip, 1.0);
    ck_assert_str_eq(c.distill.divergence, "fkl");
    ck_assert_double_eq(c.distill.ce_weight, 0.0);
    ck_assert_double_eq(c.distill.lambda, 0.5);
    ck_assert_int_eq(c.distill.per_example, 0);
    ck_assert_double_eq(c.distill.seqkd, 0.0);
    ck_assert_int_eq(c.distill.seqkd_cache, 0);
    ck_assert_double_eq(c.distill.teacher_mix, 0.0);
    ck_assert_int_eq(c.distill.replay.mode, GKD_REPLAY_OFF);
    ck_assert_int_eq(c.distill.replay.capacity, 1000);
    ck_assert_double_eq(c.distill.replay.prob, 0.5);
    ck_assert_double_eq(c.distill.replay.init, 0.0);
    ck_assert_double_eq(c.distill.replay.step, 0.1);
    ck_assert_double_eq(c.distill.replay.loss_eps, 0.1);
    ck_assert_double_eq(c.distill.temperature, 1.0);
    ck_assert_int_eq(c.distill.top_k, 0);
    ck_assert_double_eq(c.distill.top_p, 1.0);
    ck_assert_double_eq(c.distill.loss_temperature, 1.0);
    ck_assert_int_eq(c.distill.reduction, GKD_REDUCE_TOKEN);
    ck_assert_int_eq(c.distill.max_new_tokens, 16);
    ck_assert_int_eq(c.distill.checkpoint_every, 100);
    ck_assert_int_eq(c.eval.every, 100);
    ck_assert_int_eq(c.eval.decode, GKD_DECODE_GREEDY);
    ck_assert_int_eq(c.eval.samples, 1);
    ck_assert_int_eq(c.eval.n, 200);
    ck_assert_double_eq(c.eval.temperature, 1.0);
    ck_assert_uint_eq(c.seed, 1);
    ck_assert_str_eq(c.slurm.partition, "");
    ck_assert_str_eq(c.slurm.time, "01:00:00");
    ck_assert_int_eq(c.slurm.cpus_per_task, 2);
    ck_assert_str_eq(c.slurm.mem, "");
    ck_assert_str_eq(c.name, "seed=1");
    gkd_experiment_free(e);
}
END_TEST

START_TEST(test_task_variants) {
    char dir[4096], want[4200];
    fixture_dir(dir, sizeof dir);

    gkd_experiment *e = load_fixture("task_reverse.yaml");
    gkd_cell_config c = cell_of(e, 0);
    ck_assert_str_eq(c.task.name, "reverse");
    ck_assert_int_eq(c.task.min_len, 2);
    ck_assert_int_eq(c.task.max_len, 6);
    ck_assert_str_eq(c.task.alphabet, "xyz");
    ck_assert_int_eq(c.task.train, 100);
    ck_assert_int_eq(c.task.eval, 200);
    ck_assert_int_eq(c.teacher_model.max_seq_len, 32);
    ck_assert_int_eq(c.student_model.max_seq_len, 32);
    ck_assert_int_eq(c.distill.max_new_tokens, 8);
    gkd_experiment_free(e);

    e = load_fixture("task_modes.yaml");
    c = cell_of(e, 0);
    ck_assert_str_eq(c.task.name, "modes");
    ck_assert_int_eq(c.task.modes_k, 8);
    ck_assert_double_eq(c.task.zipf_s, 1.5);
    ck_assert_int_eq(c.task.modes_len, 3);
    gkd_experiment_free(e);

    e = load_fixture("task_pairs.yaml");
    c = cell_of(e, 0);
    ck_assert_str_eq(c.task.name, "pairs");
    snprintf(want, sizeof want, "%s/data/pairs.tsv", dir);
    ck_assert_str_eq(c.task.path, want); /* relative to the experiment file */
    ck_assert_str_eq(c.task.eval_path, "/abs/eval.tsv");
    ck_assert_double_eq(c.task.eval_fraction, 0.2);
    gkd_experiment_free(e);

    e = load_fixture("task_text.yaml");
    c = cell_of(e, 0);
    ck_assert_str_eq(c.task.name, "text");
    snprintf(want, sizeof want, "%s/corpus.txt", dir);
    ck_assert_str_eq(c.task.path, want);
    ck_assert_ptr_null(c.task.eval_path);
    ck_assert_double_eq(c.task.eval_fraction, 0.05);
    ck_assert_int_eq(c.task.chunk, 48);
    ck_assert_int_eq(c.task.prompt_chars, 16);
    gkd_experiment_free(e);

    e = load_fixture("teacher_checkpoint.yaml");
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 2);
    c = cell_of(e, 0);
    snprintf(want, sizeof want, "%s/ckpt/teacher.bin", dir);
    ck_assert_str_eq(c.teacher_checkpoint, want);
    ck_assert_int_eq(c.teacher_model.n_layer, 0); /* from the checkpoint, at run time */
    ck_assert_int_eq(c.teacher_train.steps, 0);
    ck_assert_int_eq(c.student_model.max_seq_len, 64);
    ck_assert_int_eq(c.student_init, GKD_INIT_RANDOM);
    ck_assert_ptr_null(c.student_checkpoint);
    ck_assert_str_eq(c.name, "init=random,seed=1");
    c = cell_of(e, 1);
    ck_assert_int_eq(c.student_init, GKD_INIT_CHECKPOINT);
    snprintf(want, sizeof want, "%s/ckpt/student.bin", dir);
    ck_assert_str_eq(c.student_checkpoint, want);
    ck_assert_str_eq(c.axes[0].value, "ckpt/student.bin"); /* as written */
    ck_assert_str_eq(c.name, "init=ckpt_student.bin,seed=1");
    gkd_experiment_free(e);
}
END_TEST

/* Every error class, verbatim with its position. */
static const struct {
    const char *yaml, *msg;
} errors[] = {
    {"name: x\ndistill:\n  lamda: 0.5\n", "exp.yaml:3:3: unknown key 'lamda' in distill (did you mean 'lambda'?)"},
    {"nmae: x\n", "exp.yaml:1:1: unknown key 'nmae' (did you mean 'name'?)"},
    {"name: x\nteacher:\n  model: {zzzzzz: 1}\n", "exp.yaml:3:11: unknown key 'zzzzzz' in teacher.model"},
    {"name: x\ndistill:\n  steps: abc\n", "exp.yaml:3:10: distill.steps: expected an integer, got 'abc'"},
    {"name: x\ndistill: {lr: fast}\n", "exp.yaml:2:15: distill.lr: expected a number, got 'fast'"},
    {"name: x\ndistill:\n  lambda: 1.5\n", "exp.yaml:3:11: distill.lambda: 1.5 is out of range [0, 1]"},
    {"name: x\ndistill: {top_p: 0}\n", "exp.yaml:2:18: distill.top_p: 0 is out of range (0, 1]"},
    {"name: x\ntask: {digits: 10}\n", "exp.yaml:2:16: task.digits: 10 is out of range [1, 9]"},
    {"name: x\ntask: {train: 99999999999999999999999}\n",
     "exp.yaml:2:15: task.train: 99999999999999999999999 is out of range [1, 10000000]"},
    {"name: x\ndistill:\n  lambda: []\n",
     "exp.yaml:3:11: distill.lambda: empty list (a grid axis needs at least one value)"},
    {"name: x\ndistill:\n  lambda: [0, 0.0]\n",
     "exp.yaml:3:15: distill.lambda: duplicate value '0.0' in the list (first at 3:12)"},
    {"seeds: [1, 1]\nname: x\n", "exp.yaml:1:12: seeds: duplicate value '1' in the list (first at 1:9)"},
    {"name: x\ndistill: [1, 2\n",
     "exp.yaml:3:1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at 2:10)"},
    {"name: x\n  bad: indent\n", "exp.yaml:2:6: YAML syntax error: mapping values are not allowed in this context"},
    {"task: {name: arith}\n", "exp.yaml:1:1: missing required key 'name'"},
    {"", "exp.yaml:1:1: empty experiment file (expected a mapping with 'name')"},
    {"- a\n", "exp.yaml:1:1: expected a mapping at the top level, got a list"},
    {"name: x\n---\nname: y\n", "exp.yaml:3:1: only one YAML document is allowed"},
    {"name: x\nname: y\n", "exp.yaml:2:1: duplicate key 'name' (first at 1:1)"},
    /* A dotted key and the same key in its section: one key, set twice. */
    {"name: x\ndistill.lambda: [0, 1]\ndistill:\n  lambda: [0, 0.5]\n",
     "exp.yaml:4:3: duplicate key 'distill.lambda' (first at 2:1)"},
    {"name: x\ndistill: {lambda: 1}\ndistill.lambda: 0\n", "exp.yaml:3:1: duplicate key 'distill.lambda' (first at 2:11)"},
    {"name: a/b\n", "exp.yaml:1:7: name: 'a/b' must match [A-Za-z0-9_.-]+ (it is used as a directory name)"},
    {"name: [a, b]\n",
     "exp.yaml:1:7: name: expected a string, got a list (only task, teacher, student, distill and eval keys can "
     "be grid axes)"},
    {"name: x\ndistill: {steps: {a: 1}}\n", "exp.yaml:2:18: distill.steps: expected an integer, got a mapping"},
    {"name: x\ndistill: 3\n", "exp.yaml:2:10: distill: expected a mapping, got a scalar"},
    {"name: x\ndistill: {lambda: [[0]]}\n", "exp.yaml:2:20: distill.lambda: list items must be scalars, got a list"},
    {"name: x\ndistill: {reduction: tokens}\n",
     "exp.yaml:2:22: distill.reduction: expected one of token|sequence, got 'tokens' (did you mean 'token'?)"},
    {"name: x\ntask: {rationale: maybe}\n", "exp.yaml:2:19: task.rationale: expected true or false, got 'maybe'"},
    {"name: x\ndistill: {divergence: fkll}\n", "exp.yaml:2:23: distill.divergence: unknown 'fkll' (did you mean 'fkl'?)"},
    /* a quoted value with a line break still gives one line */
    {"name: x\ndistill: {divergence: \"fk\\nl\"}\n",
     "exp.yaml:2:23: distill.divergence: unknown 'fk?l' (did you mean 'fkl'?)"},
    {"name: x\nstudent: {init: sfft}\n",
     "exp.yaml:2:17: student.init: expected sft, random or a checkpoint path, got 'sfft' (did you mean 'sft'?)"},
    {"name: x\nslurm: {time: 1h}\n",
     "exp.yaml:2:15: slurm.time: expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got '1h'"},
    /* contradictory options */
    {"name: x\ndistill:\n  divergence: pg_rkl\n  lambda: 0.5\n",
     "exp.yaml:3:15: distill.divergence: pg_rkl needs student rollouts on every batch (lambda = 1), got lambda = 0.5"},
    {"name: x\ndistill:\n  divergence: [fkl, pg_rkl]\n  lambda: [1, 0.5]\n",
     "exp.yaml:3:21: distill.divergence: pg_rkl needs student rollouts on every batch (lambda = 1), got lambda = 0.5 "
     "(cell 3: divergence=pg_rkl,lambda=0.5,seed=1)"},
    {"name: x\ndistill: {divergence: ce}\n",
     "exp.yaml:2:23: distill.divergence: ce trains on ground-truth outputs only (lambda = 0 and seqkd = 0), got "
     "lambda = 0.5, seqkd = 0"},
    {"name: x\nteacher:\n  checkpoint: t.bin\n  model: {layers: 2}\n",
     "exp.yaml:4:3: teacher: give either checkpoint or model, not both"},
    {"name: x\nteacher:\n  checkpoint: t.bin\n  train: {steps: 2}\n",
     "exp.yaml:4:3: teacher.train: not used with teacher.checkpoint (the teacher is loaded, not trained)"},
    {"name: x\nteacher:\n  model: {d_model: 128, heads: 3}\n",
     "exp.yaml:3:32: teacher.model.heads: 3 does not divide teacher.model.d_model 128"},
    {"name: x\ndistill: {divergence: pg_rkl, lambda: 1, teacher_topk: 8}\n",
     "exp.yaml:2:56: distill.teacher_topk: applies to fkl, rkl, jsd, skl, srkl and tvd, not to pg_rkl"},
    {"name: x\nstudent: {model: {kv_heads: 2}}\n",
     "exp.yaml:2:29: student.model.kv_heads: only for student.model.arch llama (gpt2 has as many key/value heads as "
     "heads)"},
    {"name: x\nteacher: {model: {ffn_dim: 100}}\n",
     "exp.yaml:2:28: teacher.model.ffn_dim: only for teacher.model.arch llama (gpt2 has an MLP of 4 d_model)"},
    {"name: x\nteacher: {model: {arch: llama, d_model: 64, heads: 4, kv_heads: 3}}\n",
     "exp.yaml:2:65: teacher.model.kv_heads: 3 does not divide teacher.model.heads 4"},
    {"name: x\nstudent: {model: {arch: llama, d_model: 36, heads: 4}}\n",
     "exp.yaml:2:52: student.model.heads: a head size of 9 (d_model / heads) must be even for rotary positions"},
    {"name: x\nstudent: {model: {arch: mamba}}\n",
     "exp.yaml:2:25: student.model.arch: expected one of gpt2|llama, got 'mamba'"},
    {"name: x\ntask: {digits: 9}\nteacher: {model: {context: 32}}\ndistill: {max_new_tokens: 12}\n",
     "exp.yaml:4:27: distill.max_new_tokens: 12 new tokens after a prompt of at least 21 tokens exceed the context "
     "of 32"},
    {"name: x\nstudent: {model: {context: 128}}\n",
     "exp.yaml:2:28: student.model.context: 128 exceeds the teacher's context 64 (the teacher scores every student "
     "sequence)"},
    {"name: x\ntask: {name: reverse, digits: 3}\n", "exp.yaml:2:31: task.digits: not used by task 'reverse'"},
    {"name: x\ntask: {name: pairs}\n", "exp.yaml:2:1: task.path: required for task 'pairs'"},
    {"name: x\ntask: {name: sort, min_len: 9}\n", "exp.yaml:2:29: task.min_len: 9 exceeds task.max_len 8"},
    {"name: x\ntask: {name: text, path: a.txt, chunk: 16, prompt_chars: 16}\n",
     "exp.yaml:2:58: task.prompt_chars: 16 must be less than task.chunk 16"},
    {"name: x\neval: {n: 600}\n", "exp.yaml:2:11: eval.n: 600 exceeds task.eval 500"},
    {"name: x\ndistill: {steps: 10, warmup: 20}\n", "exp.yaml:2:30: distill.warmup: 20 exceeds distill.steps 10"},
    {"name: x\ndistill: {lr: 1e-3, lr_min: 2e-3}\n",
     "exp.yaml:2:29: distill.lr_min: 0.002 exceeds distill.lr 0.001 (the decay would rise)"},
    {"name: x\nstudent: {sft: {lr: 1e-3, lr_min: -1}}\n", "exp.yaml:2:35: student.sft.lr_min: -1 is out of range [0, 10]"},
    /* labels: strings to strings, each key once, not in variants */
    {"name: x\nlabels:\n  - a\n",
     "exp.yaml:3:3: labels: expected a mapping of KEY: TEXT (a metric, an axis or AXIS:VALUE to its LaTeX name), got "
     "a list"},
    {"name: x\nlabels: 5\n",
     "exp.yaml:2:9: labels: expected a mapping of KEY: TEXT (a metric, an axis or AXIS:VALUE to its LaTeX name), got "
     "a scalar"},
    {"name: x\nlabels: {exact_match: [a]}\n",
     "exp.yaml:2:23: labels.exact_match: expected LaTeX text (a string), got a list"},
    {"name: x\nlabels: {a: {b: c}}\n", "exp.yaml:2:13: labels.a: expected LaTeX text (a string), got a mapping"},
    {"name: x\nlabels:\n  exact_match:\n", "exp.yaml:3:15: labels.exact_match: expected LaTeX text (a string), got nothing"},
    {"name: x\nlabels: {[a]: b}\n", "exp.yaml:2:10: labels: expected a key (a metric, an axis or AXIS:VALUE), got a list"},
    {"name: x\nlabels: {\"\": a}\n", "exp.yaml:2:10: labels: empty key"},
    {"name: x\nlabels: {a: x, a: y}\n", "exp.yaml:2:16: labels: duplicate key 'a' (first at 2:10)"},
    {"name: x\nvariants:\n  a: {labels: {x: y}}\n",
     "exp.yaml:3:7: variants.a: 'labels' cannot be set by a variant (only task, teacher, student, distill and eval "
     "keys)"},
};

START_TEST(test_error_messages) {
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        gkd_experiment *e = (gkd_experiment *)1;
        int rc = load_text(&e, errors[i].yaml);
        ck_assert_msg(rc < 0, "case %zu should fail: %s", i, errors[i].yaml);
        ck_assert_ptr_null(e);
        ck_assert_msg(!strcmp(gkd_last_error(), errors[i].msg), "case %zu:\n got  %s\n want %s", i, gkd_last_error(),
                      errors[i].msg);
        ck_assert_ptr_null(strchr(gkd_last_error(), '\n'));
    }
}
END_TEST

START_TEST(test_too_many_cells) {
    const char *yaml = "name: x\n"
                       "teacher: {model: {layers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}\n"
                       "student: {model: {layers: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}\n"
                       "distill: {batch: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"
                       "eval: {every: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"
                       "seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
                       "task: {train: [1, 2]}\n";
    gkd_experiment *e = NULL;
    ck_assert_int_lt(load_text(&e, yaml), 0);
    ck_assert_str_eq(gkd_last_error(), "exp.yaml:7:16: task.train: the grid has more than 100000 cells");
}
END_TEST

/* Flow nesting deeper than 64 levels is refused before parsing (libyaml
 * takes minutes on a megabyte of it); brackets in quoted strings and
 * comments, and apostrophes inside plain words, do not count. A list of
 * 100,000 seeds (the limit) loads quickly: its duplicate check is sorted. */
START_TEST(test_deep_and_long_lists) {
    char deep[512];
    int n = snprintf(deep, sizeof deep, "name: x\ndescription: ");
    for (int i = 0; i < 65; i++) deep[n++] = '[';
    deep[n] = '\0';
    gkd_experiment *e = NULL;
    ck_assert_int_lt(load_text(&e, deep), 0);
    ck_assert_str_eq(gkd_last_error(), "exp.yaml:2:78: nesting deeper than 64 levels of [ ] and { }");
    char quoted[1024];
    n = snprintf(quoted, sizeof quoted, "name: x\ndescription: \"");
    for (int i = 0; i < 100; i++) quoted[n++] = '[';
    n += snprintf(quoted + n, sizeof quoted - (size_t)n, "\"  # [[[[[\ntask: {name: reverse, alphabet: don't}\n");
    ck_assert_msg(load_text(&e, quoted) == 0, "%s", gkd_last_error());
    gkd_experiment_free(e);
    /* 100,000 seeds: the sorted duplicate check, and a duplicate at the end. */
    const size_t cap = 100000 * 8 + 64;
    char *big = malloc(cap);
    size_t k = (size_t)snprintf(big, cap, "name: x\nseeds: [");
    for (int s = 1; s <= 100000; s++) k += (size_t)snprintf(big + k, cap - k, "%s%d", s > 1 ? ", " : "", s);
    snprintf(big + k, cap - k, "]\n");
    ck_assert_msg(load_text(&e, big) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 100000);
    gkd_experiment_free(e);
    char *last = strrchr(big, ' ');
    memcpy(last + 1, "7     ]\n", 9); /* the last seed becomes a second 7 */
    ck_assert_int_lt(load_text(&e, big), 0);
    ck_assert_msg(strstr(gkd_last_error(), "seeds: duplicate value '7' in the list (first at 2:27)"), "%s",
                  gkd_last_error());
    free(big);
}
END_TEST

START_TEST(test_grid_order) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/experiments/divergences.yaml", root());
    gkd_experiment *e = NULL;
    ck_assert_msg(gkd_experiment_load(&e, path) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 18);
    ck_assert_int_eq(gkd_experiment_num_axes(e), 3);
    const char *key, *name;
    size_t nv;
    gkd_experiment_axis(e, 0, &key, &name, &nv);
    ck_assert_str_eq(key, "distill.divergence");
    ck_assert_str_eq(name, "divergence");
    ck_assert_uint_eq(nv, 3);
    gkd_experiment_axis(e, 2, &key, &name, &nv);
    ck_assert_str_eq(key, "seeds");
    ck_assert_str_eq(name, "seed");
    const char *divs[] = {"fkl", "rkl", "jsd(0.1)"};
    const char *lams[] = {"0", "1"};
    for (size_t i = 0; i < 18; i++) {
        gkd_cell_config c = cell_of(e, i);
        size_t di = i / 6, li = (i / 3) % 2, si = i % 3; /* last axis fastest */
        char want[128];
        snprintf(want, sizeof want, "divergence=%s,lambda=%s,seed=%zu", divs[di], lams[li], si + 1);
        ck_assert_str_eq(c.name, want);
        ck_assert_uint_eq(c.index, i);
        ck_assert_str_eq(c.distill.divergence, divs[di]);
        ck_assert_double_eq(c.distill.lambda, (double)li);
        ck_assert_uint_eq(c.seed, si + 1);
        ck_assert_int_eq(c.num_axes, 3);
        ck_assert_str_eq(c.axes[1].name, "lambda");
        ck_assert_str_eq(c.axes[1].key, "distill.lambda");
        ck_assert_str_eq(c.axes[1].value, lams[li]);
        ck_assert_int_eq(c.teacher_model.n_layer, 4); /* scalars are the same in every cell */
    }
    gkd_cell_config c;
    ck_assert_int_lt(gkd_experiment_cell(e, 18, &c), 0);
    gkd_experiment_free(e);

    /* Axes in file order, seeds first here; colliding short names get a prefix. */
    e = load_fixture("grid.yaml");
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 36);
    c = cell_of(e, 0);
    ck_assert_str_eq(c.name, "seed=1,train.steps=100,distill.steps=10,lambda=0");
    c = cell_of(e, 1);
    ck_assert_str_eq(c.name, "seed=1,train.steps=100,distill.steps=10,lambda=0.5");
    c = cell_of(e, 3);
    ck_assert_str_eq(c.name, "seed=1,train.steps=100,distill.steps=20,lambda=0");
    c = cell_of(e, 9);
    ck_assert_str_eq(c.name, "seed=1,train.steps=200,distill.steps=10,lambda=0");
    ck_assert_int_eq(c.teacher_train.steps, 200);
    c = cell_of(e, 35);
    ck_assert_str_eq(c.name, "seed=2,train.steps=200,distill.steps=30,lambda=1");
    ck_assert_uint_eq(c.seed, 2);
    ck_assert_int_eq(c.distill.opt.steps, 30);
    ck_assert_double_eq(c.distill.lambda, 1.0);
    gkd_experiment_free(e);
}
END_TEST

START_TEST(test_axis_names_and_sanitizing) {
    gkd_experiment *e = NULL;
    const char *yaml = "name: x\ntask: {seed: [5, 6]}\nteacher: {train: {seed: [1, 2]}}\n"
                       "student: {init: [\"a b/c.bin\", sft]}\n";
    ck_assert_msg(load_text(&e, yaml) == 0, "%s", gkd_last_error());
    gkd_cell_config c = cell_of(e, 0);
    ck_assert_str_eq(c.name, "task.seed=5,train.seed=1,init=a_b_c.bin,seed=1");
    ck_assert_uint_eq(c.task.seed, 5);
    ck_assert_uint_eq(c.teacher_seed, 1);
    gkd_experiment_free(e);

    /* Values that differ only in unsafe characters would share a directory. */
    ck_assert_int_lt(load_text(&e, "name: x\nstudent: {init: [a/b.bin, a_b.bin]}\n"), 0);
    ck_assert_str_eq(gkd_last_error(),
                     "exp.yaml:2:27: student.init: values 'a/b.bin' and 'a_b.bin' give the same cell name 'a_b.bin'");

    /* Long names keep a prefix and end with a hash of the full name. */
    char yaml2[2048];
    snprintf(yaml2, sizeof yaml2, "name: x\nteacher: {checkpoint: [%0200d.bin, b.bin]}\n", 0);
    ck_assert_msg(load_text(&e, yaml2) == 0, "%s", gkd_last_error());
    c = cell_of(e, 0);
    gkd_cell_config c1 = cell_of(e, 1);
    ck_assert_uint_eq(strlen(c.name), GKD_CELL_NAME_MAX - 1);
    ck_assert_int_eq(strncmp(c.name, "checkpoint=0000", 15), 0);
    ck_assert_int_eq(c.name[GKD_CELL_NAME_MAX - 18], '-');
    ck_assert_str_eq(c1.name, "checkpoint=b.bin,seed=1");
    gkd_experiment_free(e);
}
END_TEST

START_TEST(test_fnv1a_reference) {
    /* Published FNV-1a 64 test vectors. */
    ck_assert_uint_eq(exp_fnv1a(0xcbf29ce484222325ULL, "", 0), 0xcbf29ce484222325ULL);
    ck_assert_uint_eq(exp_fnv1a(0xcbf29ce484222325ULL, "a", 1), 0xaf63dc4c8601ec8cULL);
    ck_assert_uint_eq(exp_fnv1a(0xcbf29ce484222325ULL, "foobar", 6), 0x85944171f73967e8ULL);
}
END_TEST

static void hashes(const gkd_experiment *e, size_t i, char *t, char *s, char *c) {
    gkd_cell_config cell = cell_of(e, i);
    gkd_cell_teacher_hash(&cell, t);
    gkd_cell_student_init_hash(&cell, s);
    gkd_cell_config_hash(&cell, c);
}

static void one_cell_hashes(const char *yaml, char *t, char *s, char *c) {
    gkd_experiment *e = NULL;
    ck_assert_msg(load_text(&e, yaml) == 0, "%s", gkd_last_error());
    hashes(e, 0, t, s, c);
    gkd_experiment_free(e);
}

START_TEST(test_hashes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/experiments/divergences.yaml", root());
    gkd_experiment *e = NULL;
    ck_assert_int_eq(gkd_experiment_load(&e, path), 0);
    char t[18][17], s[18][17], c[18][17];
    for (size_t i = 0; i < 18; i++) {
        hashes(e, i, t[i], s[i], c[i]);
        ck_assert_uint_eq(strlen(t[i]), GKD_HASH_HEX_LEN);
        ck_assert_uint_eq(strspn(t[i], "0123456789abcdef"), GKD_HASH_HEX_LEN);
    }
    for (size_t i = 0; i < 18; i++)
        for (size_t j = 0; j < 18; j++) {
            ck_assert_str_eq(t[i], t[j]);                          /* one teacher */
            ck_assert_int_eq(!strcmp(s[i], s[j]), i % 3 == j % 3); /* one SFT student per seed */
            ck_assert_int_eq(!strcmp(c[i], c[j]), i == j);         /* every cell differs */
        }
    gkd_experiment_free(e);

    char t0[17], s0[17], c0[17], t1[17], s1[17], c1[17], t2[17], s2[17], c2[17];
    one_cell_hashes("name: x\n", t0, s0, c0);
    one_cell_hashes("name: y\ndescription: other\nslurm: {time: '5'}\n", t1, s1, c1);
    ck_assert_str_eq(t0, t1); /* name, description, slurm change nothing */
    ck_assert_str_eq(s0, s1);
    ck_assert_str_eq(c0, c1);
    one_cell_hashes("name: x\ndistill: {lr: 0.01}\neval: {every: 50, samples: 4}\n", t1, s1, c1);
    ck_assert_str_eq(t0, t1);
    ck_assert_str_eq(s0, s1);
    ck_assert_str_ne(c0, c1);
    /* The shared runs' one evaluation uses eval.n, decode and temperature:
     * they are part of the shared teacher and SFT student. */
    const char *shared_eval[] = {"name: x\neval: {n: 100}\n", "name: x\neval: {decode: sample}\n",
                                 "name: x\neval: {temperature: 0.5}\n"};
    for (int k = 0; k < 3; k++) {
        one_cell_hashes(shared_eval[k], t1, s1, c1);
        ck_assert_str_ne(t0, t1);
        ck_assert_str_ne(s0, s1);
        ck_assert_str_ne(c0, c1);
    }
    /* Keys added later change no hash at their defaults; allow_overlap none. */
    const char *same[] = {"name: x\neval: {bleu_smoothing: method0}\n", "name: x\neval: {allow_overlap: true}\n"};
    for (int k = 0; k < 2; k++) {
        one_cell_hashes(same[k], t1, s1, c1);
        ck_assert_str_eq(t0, t1);
        ck_assert_str_eq(s0, s1);
        ck_assert_str_eq(c0, c1);
    }
    one_cell_hashes("name: x\neval: {bleu_smoothing: method1}\n", t1, s1, c1);
    ck_assert_str_ne(t0, t1); /* the shared runs' eval.csv has a bleu column */
    ck_assert_str_ne(s0, s1);
    ck_assert_str_ne(c0, c1);
    one_cell_hashes("name: x\nstudent: {init: random}\neval: {n: 100}\n", t1, s1, c1);
    one_cell_hashes("name: x\nstudent: {init: random}\n", t2, s2, c2);
    ck_assert_str_eq(s1, s2); /* a random init is not evaluated */
    one_cell_hashes("name: x\nteacher: {model: {layers: 3}}\n", t1, s1, c1);
    ck_assert_str_ne(t0, t1);
    ck_assert_str_eq(s0, s1); /* SFT does not depend on the teacher */
    ck_assert_str_ne(c0, c1);
    one_cell_hashes("name: x\nteacher: {train: {seed: 2}}\n", t1, s1, c1);
    ck_assert_str_ne(t0, t1);
    one_cell_hashes("name: x\ntask: {digits: 2}\n", t1, s1, c1);
    ck_assert_str_ne(t0, t1);
    ck_assert_str_ne(s0, s1);
    one_cell_hashes("name: x\nstudent: {sft: {steps: 10}}\n", t1, s1, c1);
    ck_assert_str_eq(t0, t1);
    ck_assert_str_ne(s0, s1);
    one_cell_hashes("name: x\nstudent: {init: random, sft: {steps: 10}}\n", t1, s1, c1);
    one_cell_hashes("name: x\nstudent: {init: random}\n", t2, s2, c2);
    ck_assert_str_eq(s1, s2); /* sft options do not matter to a random init */
    ck_assert_str_ne(s0, s2);
    /* Equal values written differently are the same config. */
    one_cell_hashes("name: x\ndistill: {lambda: 0.50, divergence: jsd(0.10)}\n", t1, s1, c1);
    one_cell_hashes("name: x\ndistill: {lambda: 5e-1, divergence: \"jsd(0.1)\"}\n", t2, s2, c2);
    ck_assert_str_eq(c1, c2);
}
END_TEST

static char *cell_yaml(const gkd_cell_config *c);

/* labels: read in file order, block and flow, keys with ':' and quotes;
 * they reach no cell: every hash and the written config are those of the
 * same file without them, so labelling a finished grid reruns nothing. */
START_TEST(test_labels) {
    const char *plain = "name: x\ndistill: {divergence: [fkl, \"jsd(0.5)\"], lambda: [0, 1]}\nseeds: [1, 2]\n";
    const char *labelled = "name: x\n"
                           "labels:\n"
                           "  exact_match: EM\n"
                           "  divergence:fkl: Forward KL\n"
                           "  \"divergence:jsd(0.5)\": 'JSD$_{0.5}$'\n"
                           "  lambda: '$\\lambda$'\n"
                           "distill: {divergence: [fkl, \"jsd(0.5)\"], lambda: [0, 1]}\n"
                           "seeds: [1, 2]\n";
    gkd_experiment *a = NULL, *b = NULL, *f = NULL;
    ck_assert_msg(load_text(&a, plain) == 0, "%s", gkd_last_error());
    ck_assert_msg(load_text(&b, labelled) == 0, "%s", gkd_last_error());
    ck_assert_uint_eq(gkd_experiment_num_labels(a), 0);
    ck_assert_uint_eq(gkd_experiment_num_labels(b), 4);
    const char *want[4][2] = {{"exact_match", "EM"},
                              {"divergence:fkl", "Forward KL"},
                              {"divergence:jsd(0.5)", "JSD$_{0.5}$"},
                              {"lambda", "$\\lambda$"}};
    for (size_t i = 0; i < 4; i++) {
        const char *key, *text;
        gkd_experiment_label(b, i, &key, &text);
        ck_assert_str_eq(key, want[i][0]);
        ck_assert_str_eq(text, want[i][1]);
    }
    /* Not an axis: the same 8 cells. */
    ck_assert_int_eq(gkd_experiment_num_axes(b), 3);
    ck_assert_uint_eq(gkd_experiment_num_cells(b), 8);
    for (size_t i = 0; i < 8; i++) {
        gkd_cell_config ca = cell_of(a, i), cb = cell_of(b, i);
        char ha[17], hb[17];
        gkd_cell_config_hash(&ca, ha);
        gkd_cell_config_hash(&cb, hb);
        ck_assert_str_eq(ha, hb);
        gkd_cell_teacher_hash(&ca, ha);
        gkd_cell_teacher_hash(&cb, hb);
        ck_assert_str_eq(ha, hb);
        gkd_cell_student_init_hash(&ca, ha);
        gkd_cell_student_init_hash(&cb, hb);
        ck_assert_str_eq(ha, hb);
        char *ya = cell_yaml(&ca), *yb = cell_yaml(&cb);
        ck_assert_str_eq(ya, yb);
        free(ya), free(yb);
    }
    /* Flow form; an empty `labels:` is no labels. */
    ck_assert_int_eq(load_text(&f, "name: x\nlabels: {exact_match: EM, divergence:fkl: FKL}\n"), 0);
    ck_assert_uint_eq(gkd_experiment_num_labels(f), 2);
    const char *key, *text;
    gkd_experiment_label(f, 1, &key, &text);
    ck_assert_str_eq(key, "divergence:fkl");
    ck_assert_str_eq(text, "FKL");
    gkd_experiment_free(f);
    ck_assert_int_eq(load_text(&f, "name: x\nlabels:\n"), 0);
    ck_assert_uint_eq(gkd_experiment_num_labels(f), 0);
    gkd_experiment_free(f);
    gkd_experiment_free(a);
    gkd_experiment_free(b);
}
END_TEST

static char *cell_yaml(const gkd_cell_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gkd_cell_config_write_yaml(c, f), 0);
    fclose(f);
    return buf;
}

static void check_round_trip(const gkd_experiment *e) {
    for (size_t i = 0; i < gkd_experiment_num_cells(e); i++) {
        gkd_cell_config c = cell_of(e, i);
        char *text = cell_yaml(&c);
        gkd_experiment *again = NULL;
        int rc = gkd_experiment_load_buffer(&again, text, strlen(text), "/tmp/cell/config.yaml");
        ck_assert_msg(rc == 0, "%s\n%s", gkd_last_error(), text);
        ck_assert_uint_eq(gkd_experiment_num_cells(again), 1);
        gkd_cell_config r = cell_of(again, 0);
        char h1[17], h2[17];
        gkd_cell_config_hash(&c, h1);
        gkd_cell_config_hash(&r, h2);
        ck_assert_str_eq(h1, h2);
        gkd_cell_teacher_hash(&c, h1);
        gkd_cell_teacher_hash(&r, h2);
        ck_assert_str_eq(h1, h2);
        gkd_cell_student_init_hash(&c, h1);
        gkd_cell_student_init_hash(&r, h2);
        ck_assert_str_eq(h1, h2);
        ck_assert_uint_eq(r.seed, c.seed);
        /* Written again, the text is identical after the header comment. */
        char *text2 = cell_yaml(&r);
        ck_assert_str_eq(strchr(text, '\n'), strchr(text2, '\n'));
        free(text2);
        free(text);
        gkd_experiment_free(again);
    }
}

START_TEST(test_round_trip) {
    const char *fixtures[] = {"all_keys.yaml", "grid.yaml", "task_reverse.yaml", "task_modes.yaml",
                              "task_pairs.yaml", "task_text.yaml", "teacher_checkpoint.yaml"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        gkd_experiment *e = load_fixture(fixtures[i]);
        check_round_trip(e);
        gkd_experiment_free(e);
    }
    gkd_experiment *e = NULL;
    ck_assert_int_eq(load_text(&e, "name: q\ndescription: \"quote \\\" back\\\\slash\\ttab\"\n"), 0);
    check_round_trip(e);
    gkd_cell_config c = cell_of(e, 0);
    ck_assert_str_eq(c.description, "quote \" back\\slash\ttab");
    gkd_experiment_free(e);
    /* YAML line breaks (NEL, LS, PS) inside strings must survive quoting. */
    ck_assert_int_eq(load_text(&e, "name: u\ntask: {name: sort, alphabet: \"a\\Nb\\Lc\\Pd\\x7fe\\t\"}\n"), 0);
    c = cell_of(e, 0);
    ck_assert_str_eq(c.task.alphabet, "a\xc2\x85" "b\xe2\x80\xa8" "c\xe2\x80\xa9" "d\x7f" "e\t");
    check_round_trip(e);
    gkd_experiment_free(e);

    /* The exact text of a default cell (the documented canonical form). */
    ck_assert_int_eq(load_text(&e, "name: x\n"), 0);
    c = cell_of(e, 0);
    char *text = cell_yaml(&c);
    ck_assert_str_eq(text,
                     "# gkd cell 0: seed=1\nname: \"x\"\ndescription: \"\"\ntask:\n  name: arith\n  seed: 1234\n"
                     "  train: 20000\n  eval: 500\n  digits: 3\n  op: add\n  rationale: false\nteacher:\n  model:\n"
                     "    layers: 4\n    d_model: 128\n    heads: 4\n    context: 64\n  train:\n    steps: 3000\n"
                     "    batch: 64\n    lr: 0.003\n    warmup: 100\n    weight_decay: 0\n    clip: 1\n    seed: 1\n"
                     "student:\n  model:\n    layers: 2\n    d_model: 64\n    heads: 2\n    context: 64\n"
                     "  init: sft\n  sft:\n    steps: 300\n    batch: 64\n    lr: 0.003\n    warmup: 0\n"
                     "    weight_decay: 0\n    clip: 1\ndistill:\n  steps: 1000\n  batch: 32\n  lr: 0.001\n"
                     "  warmup: 0\n  weight_decay: 0\n  clip: 1\n  divergence: fkl\n  ce_weight: 0\n  lambda: 0.5\n"
                     "  per_example: false\n  seqkd: 0\n  seqkd_cache: false\n  teacher_mix: 0\n  replay:\n"
                     "    mode: off\n    capacity: 1000\n    prob: 0.5\n    init: 0\n    step: 0.1\n    loss_eps: 0.1\n"
                     "  temperature: 1\n  top_k: 0\n  top_p: 1\n  loss_temperature: 1\n  reduction: token\n"
                     "  max_new_tokens: 16\n  checkpoint_every: 100\neval:\n  every: 100\n  decode: greedy\n"
                     "  samples: 1\n  n: 200\n  temperature: 1\nseeds: [1]\nslurm:\n  partition: \"\"\n"
                     "  time: \"01:00:00\"\n  cpus_per_task: 2\n  mem: \"\"\n");
    free(text);

    /* Atomic save: the file appears complete under its name, no temp left. */
    char dir[] = "/tmp/gkd_exp_XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    ck_assert_int_eq(gkd_cell_config_save_yaml(&c, path), 0);
    gkd_experiment *again = NULL;
    ck_assert_msg(gkd_experiment_load(&again, path) == 0, "%s", gkd_last_error());
    gkd_cell_config r = cell_of(again, 0);
    char h1[17], h2[17];
    gkd_cell_config_hash(&c, h1);
    gkd_cell_config_hash(&r, h2);
    ck_assert_str_eq(h1, h2);
    gkd_experiment_free(again);
    gkd_experiment_free(e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test \"$(ls %s)\" = config.yaml", dir);
    ck_assert_int_eq(system(cmd), 0);
    remove(path);
    rmdir(dir);
}
END_TEST

/* Named variants: one axis whose values are bundles of settings. */
START_TEST(test_variants) {
    static const char *const names[] = {"sft_only", "supervised_kd", "seqkd", "mixed", "replay", "gkd"};
    gkd_experiment *e = load_fixture("variants.yaml");
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 12);
    ck_assert_int_eq(gkd_experiment_num_axes(e), 2);
    const char *key, *name;
    size_t nv;
    gkd_experiment_axis(e, 0, &key, &name, &nv);
    ck_assert_str_eq(key, "variants");
    ck_assert_str_eq(name, "variant");
    ck_assert_uint_eq(nv, 6);
    gkd_experiment_axis(e, 1, &key, &name, &nv);
    ck_assert_str_eq(name, "seed");
    ck_assert_uint_eq(nv, 2);
    for (size_t i = 0; i < 12; i++) {
        gkd_cell_config c = cell_of(e, i);
        char want[64];
        snprintf(want, sizeof want, "variant=%s,seed=%zu", names[i / 2], i % 2 + 1);
        ck_assert_str_eq(c.name, want);
        ck_assert_int_eq(c.num_axes, 2);
        ck_assert_str_eq(c.axes[0].key, "variants");
        ck_assert_str_eq(c.axes[0].name, "variant");
        ck_assert_str_eq(c.axes[0].value, names[i / 2]);
        ck_assert_uint_eq(c.seed, i % 2 + 1);
        /* top-level values reach every variant */
        ck_assert_int_eq(c.distill.opt.steps, 50);
        ck_assert_int_eq(c.task.digits, 2);
    }
    gkd_cell_config c = cell_of(e, 0); /* sft_only */
    ck_assert_str_eq(c.distill.divergence, "ce");
    ck_assert_double_eq(c.distill.lambda, 0);
    c = cell_of(e, 2); /* supervised_kd: divergence from the top level */
    ck_assert_str_eq(c.distill.divergence, "fkl");
    ck_assert_double_eq(c.distill.lambda, 0);
    ck_assert_double_eq(c.distill.seqkd, 0);
    ck_assert_int_eq(c.distill.seqkd_cache, 0);
    c = cell_of(e, 5); /* seqkd */
    ck_assert_double_eq(c.distill.lambda, 0);
    ck_assert_double_eq(c.distill.seqkd, 1);
    ck_assert_int_eq(c.distill.seqkd_cache, 1);
    ck_assert_double_eq(c.distill.teacher_mix, 0);
    c = cell_of(e, 6); /* mixed */
    ck_assert_double_eq(c.distill.lambda, 1);
    ck_assert_double_eq(c.distill.teacher_mix, 0.2);
    ck_assert_int_eq(c.distill.replay.mode, GKD_REPLAY_OFF);
    c = cell_of(e, 8); /* replay: lambda stays the default */
    ck_assert_int_eq(c.distill.replay.mode, GKD_REPLAY_ADAPTIVE);
    ck_assert_double_eq(c.distill.lambda, 0.5);
    c = cell_of(e, 11); /* gkd */
    ck_assert_double_eq(c.distill.lambda, 1);
    ck_assert_double_eq(c.distill.teacher_mix, 0);
    ck_assert_int_eq(c.distill.replay.mode, GKD_REPLAY_OFF);
    ck_assert_str_eq(c.distill.divergence, "fkl");
    /* Config hashes: the resolved values, so every recipe differs, and a
     * variant equal to the top-level values hashes like no variant at all. */
    char h[12][17];
    for (size_t i = 0; i < 12; i++) {
        gkd_cell_config ci = cell_of(e, i);
        gkd_cell_config_hash(&ci, h[i]);
        for (size_t j = 0; j < i; j++) ck_assert_str_ne(h[i], h[j]);
    }
    gkd_experiment_free(e);

    /* Variants with identical settings resolve to identical configs. */
    ck_assert_int_eq(load_text(&e, "name: x\nvariants:\n  a: {distill: {lambda: 1}}\n  b: {distill: {lambda: 1.0}}\n"
                                   "  base:\n"),
                     0);
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 3);
    char ha[17], hb[17], hbase[17], hplain[17];
    c = cell_of(e, 0);
    gkd_cell_config_hash(&c, ha);
    c = cell_of(e, 1);
    gkd_cell_config_hash(&c, hb);
    ck_assert_str_eq(ha, hb);
    c = cell_of(e, 2);
    ck_assert_str_eq(c.name, "variant=base,seed=1");
    ck_assert_double_eq(c.distill.lambda, 0.5);
    gkd_cell_config_hash(&c, hbase);
    gkd_experiment_free(e);
    ck_assert_int_eq(load_text(&e, "name: x\n"), 0);
    c = cell_of(e, 0);
    gkd_cell_config_hash(&c, hplain);
    ck_assert_str_eq(hbase, hplain);
    ck_assert_str_ne(ha, hplain);
    gkd_experiment_free(e);
}
END_TEST

/* The variant axis sits among the list axes in file order. */
START_TEST(test_variants_with_axes) {
    gkd_experiment *e = NULL;
    ck_assert_int_eq(load_text(&e, "name: x\ndistill: {divergence: [fkl, rkl]}\n"
                                   "variants: {onp: {distill: {lambda: 1}}, offp: {distill: {lambda: 0}}}\n"
                                   "seeds: [1, 2]\n"),
                     0);
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 8);
    static const char *const want[] = {
        "divergence=fkl,variant=onp,seed=1",  "divergence=fkl,variant=onp,seed=2",
        "divergence=fkl,variant=offp,seed=1", "divergence=fkl,variant=offp,seed=2",
        "divergence=rkl,variant=onp,seed=1",  "divergence=rkl,variant=onp,seed=2",
        "divergence=rkl,variant=offp,seed=1", "divergence=rkl,variant=offp,seed=2"};
    for (size_t i = 0; i < 8; i++) {
        gkd_cell_config c = cell_of(e, i);
        ck_assert_str_eq(c.name, want[i]);
        ck_assert_str_eq(c.distill.divergence, i < 4 ? "fkl" : "rkl");
        ck_assert_double_eq(c.distill.lambda, (i / 2) % 2 == 0 ? 1 : 0);
    }
    check_round_trip(e);
    gkd_experiment_free(e);

    /* written first, the variant axis comes first */
    ck_assert_int_eq(load_text(&e, "name: x\nvariants:\n  small: {student: {model: {layers: 1, context: 32}}}\n"
                                   "  big: {student: {model: {layers: 3}}}\n"
                                   "distill: {lambda: [0, 1]}\n"),
                     0);
    ck_assert_uint_eq(gkd_experiment_num_cells(e), 4);
    gkd_cell_config c = cell_of(e, 1);
    ck_assert_str_eq(c.name, "variant=small,lambda=1,seed=1");
    ck_assert_int_eq(c.student_model.n_layer, 1);
    ck_assert_int_eq(c.student_model.max_seq_len, 32);
    c = cell_of(e, 2);
    ck_assert_str_eq(c.name, "variant=big,lambda=0,seed=1");
    ck_assert_int_eq(c.student_model.n_layer, 3);
    ck_assert_int_eq(c.student_model.max_seq_len, 64); /* the teacher's, as without variants */
    check_round_trip(e);
    gkd_experiment_free(e);

    /* Variants over task.name may leave top-level keys of another task. */
    ck_assert_int_eq(load_text(&e, "name: x\ntask: {digits: 2}\n"
                                   "variants: {add: {}, rev: {task: {name: reverse, max_len: 5}}}\n"),
                     0);
    c = cell_of(e, 1);
    ck_assert_str_eq(c.task.name, "reverse");
    ck_assert_int_eq(c.task.max_len, 5);
    check_round_trip(e);
    gkd_experiment_free(e);
}
END_TEST

/* A cell's canonical YAML holds the resolved values and no variants. */
START_TEST(test_variants_round_trip) {
    gkd_experiment *e = load_fixture("variants.yaml");
    check_round_trip(e);
    gkd_cell_config c = cell_of(e, 4);
    char *text = cell_yaml(&c);
    ck_assert_ptr_nonnull(strstr(text, "# gkd cell 4: variant=seqkd,seed=1\n"));
    ck_assert_ptr_null(strstr(strchr(text, '\n'), "variant")); /* only the header comment names it */
    ck_assert_ptr_nonnull(strstr(text, "  seqkd: 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "  seqkd_cache: true\n"));
    ck_assert_ptr_nonnull(strstr(text, "  lambda: 0\n"));
    free(text);
    gkd_experiment_free(e);
}
END_TEST

static const struct {
    const char *yaml, *msg;
} variant_errors[] = {
    {"name: x\nvariants: {}\n",
     "exp.yaml:2:11: variants: empty mapping (the variant axis needs at least one variant)"},
    {"name: x\nvariants: [a, b]\n",
     "exp.yaml:2:11: variants: expected a mapping of variant names to settings, got a list"},
    {"name: x\nvariants:\n  a b: {}\n",
     "exp.yaml:3:3: variants: variant name 'a b' must match [A-Za-z0-9_.-]+ (at most 100 characters)"},
    {"name: x\nvariants:\n  a: {}\n  a: {}\n", "exp.yaml:4:3: variants: duplicate variant 'a' (first at 3:3)"},
    {"name: x\nvariants:\n  seqkd: {distill: {lambda: [0, 1]}}\n",
     "exp.yaml:3:29: variants.seqkd.distill.lambda: lists are not allowed inside a variant (make it a top-level "
     "axis)"},
    {"name: x\ndistill: {lambda: [0, 1]}\nvariants:\n  x: {distill: {lambda: 0}}\n",
     "exp.yaml:4:25: distill.lambda is both a grid axis and set by variant 'x'"},
    {"name: x\nvariants:\n  a: {distill: {lamda: 0}}\n",
     "exp.yaml:3:17: unknown key 'lamda' in variants.a.distill (did you mean 'lambda'?)"},
    {"name: x\nvariants:\n  a: {distil: {lambda: 0}}\n",
     "exp.yaml:3:7: unknown key 'distil' in variants.a (did you mean 'distill'?)"},
    {"name: x\nvariants:\n  a: {zzzz: 1}\n", "exp.yaml:3:7: unknown key 'zzzz' in variants.a"},
    {"name: x\nvariants:\n  a: {seeds: 1}\n",
     "exp.yaml:3:7: variants.a: 'seeds' cannot be set by a variant (only task, teacher, student, distill and eval "
     "keys)"},
    {"name: x\nvariants:\n  a: {variants: {}}\n",
     "exp.yaml:3:7: variants.a: 'variants' cannot be set by a variant (only task, teacher, student, distill and "
     "eval keys)"},
    {"name: x\nvariants:\n  a: {distill: {lambda: 1.5}}\n",
     "exp.yaml:3:25: variants.a.distill.lambda: 1.5 is out of range [0, 1]"},
    {"name: x\nvariants:\n  a: {distill: {steps: abc}}\n",
     "exp.yaml:3:24: variants.a.distill.steps: expected an integer, got 'abc'"},
    {"name: x\nvariants:\n  a: {distill: {reduction: tokens}}\n",
     "exp.yaml:3:28: variants.a.distill.reduction: expected one of token|sequence, got 'tokens' (did you mean "
     "'token'?)"},
    {"name: x\nvariants:\n  a: 3\n", "exp.yaml:3:6: variants.a: expected a mapping of settings, got a scalar"},
    {"name: x\nvariants:\n  a: {distill: {steps: {b: 1}}}\n",
     "exp.yaml:3:24: variants.a.distill.steps: expected an integer, got a mapping"},
    {"name: x\nvariants:\n  a: {distill: 3}\n", "exp.yaml:3:16: variants.a.distill: expected a mapping, got a scalar"},
    {"name: x\nvariants:\n  a: {distill: {lambda: 0, lambda: 1}}\n",
     "exp.yaml:3:28: duplicate key 'lambda' in variants.a.distill (first at 3:17)"},
    /* contradictions point at the variant's node when the variant set the key */
    {"name: x\nvariants:\n  a: {}\n  b: {distill: {divergence: pg_rkl}}\n",
     "exp.yaml:4:29: distill.divergence: pg_rkl needs student rollouts on every batch (lambda = 1), got lambda = 0.5 "
     "(cell 1: variant=b,seed=1)"},
    {"name: x\ndistill: {divergence: ce}\nvariants:\n  a: {distill: {lambda: 0}}\n  b: {distill: {lambda: 1}}\n",
     "exp.yaml:2:23: distill.divergence: ce trains on ground-truth outputs only (lambda = 0 and seqkd = 0), got "
     "lambda = 1, seqkd = 0 (cell 1: variant=b,seed=1)"},
    {"name: x\nvariants:\n  r: {task: {name: reverse, digits: 2}}\n",
     "exp.yaml:3:37: task.digits: not used by task 'reverse' (variant 'r')"},
    {"name: x\nteacher: {checkpoint: t.bin}\nvariants:\n  a: {teacher: {model: {layers: 2}}}\n",
     "exp.yaml:4:17: teacher: give either checkpoint or model, not both (variant 'a')"},
    {"name: x\nteacher: {model: {layers: 2}}\nvariants:\n  a: {teacher: {checkpoint: t.bin}}\n",
     "exp.yaml:4:29: variants.a.teacher.checkpoint: the top level sets teacher.model, which a checkpoint teacher "
     "does not use"},
};

START_TEST(test_variant_errors) {
    for (size_t i = 0; i < sizeof variant_errors / sizeof variant_errors[0]; i++) {
        gkd_experiment *e = (gkd_experiment *)1;
        int rc = load_text(&e, variant_errors[i].yaml);
        ck_assert_msg(rc < 0, "case %zu should fail: %s", i, variant_errors[i].yaml);
        ck_assert_ptr_null(e);
        ck_assert_msg(!strcmp(gkd_last_error(), variant_errors[i].msg), "case %zu:\n got  %s\n want %s", i,
                      gkd_last_error(), variant_errors[i].msg);
        ck_assert_ptr_null(strchr(gkd_last_error(), '\n'));
    }
}
END_TEST

/* Runs `gkd check ARGS 2>&1`; returns the exit status and the output. */
static int run_check(const char *args, char *out, size_t cap) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' check %s 2>&1", root(), bin, args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_cli_check) {
    static char out[1 << 16];
    ck_assert_int_eq(run_check("tests/fixtures/experiments/divergences.yaml", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "experiment divergences: 18 cells; axes (last varies fastest): divergence[3] "
                                      "x lambda[2] x seed[3]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n     0  divergence=fkl,lambda=0,seed=1\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n    17  divergence=jsd(0.1),lambda=1,seed=3\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n18 cells, 1 distinct teacher, 3 distinct student inits\n"));
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 20);

    ck_assert_int_eq(run_check("tests/fixtures/experiments/grid.yaml --hashes", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "36 cells, 2 distinct teachers, 2 distinct student inits"));
    ck_assert_ptr_nonnull(strstr(out, " teacher="));

    char dir[] = "/tmp/gkd_exp_XXXXXX", path[64], args[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("name: x\ndistill:\n  lamda: 0.5\n", f);
    fclose(f);
    snprintf(args, sizeof args, "%s", path);
    ck_assert_int_eq(run_check(args, out, sizeof out), 1);
    char want[256];
    snprintf(want, sizeof want, "gkd check: %s:3:3: unknown key 'lamda' in distill (did you mean 'lambda'?)\n", path);
    ck_assert_str_eq(out, want);
    remove(path);
    rmdir(dir);

    ck_assert_int_eq(run_check("/nonexistent/exp.yaml", out, sizeof out), 1);
    ck_assert_int_eq(run_check("", out, sizeof out), 2);
    ck_assert_int_eq(run_check("--bogus x.yaml", out, sizeof out), 2);
    ck_assert_int_eq(run_check("--schema", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "| `distill.lambda` | number | `0.5` | [0, 1] | yes |"));
    ck_assert_ptr_nonnull(strstr(out, "| `variants` | name → settings | none |  | `variant` |"));
    ck_assert_ptr_nonnull(strstr(out, "| `labels` | key → LaTeX | none |  | no |"));

    ck_assert_int_eq(run_check("tests/fixtures/experiments/variants.yaml", out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "experiment recipes: 12 cells; axes (last varies fastest): variant[6] x seed[2]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n     4  variant=seqkd,seed=1\n"));
    ck_assert_ptr_nonnull(strstr(out, "\n    11  variant=gkd,seed=2\n"));
}
END_TEST

/* Llama models in experiment files: the defaults a file leaves out, and
 * GPT-2 cells whose hashes do not see the architecture keys. */
START_TEST(test_llama_models) {
    gkd_experiment *e = NULL;
    ck_assert_msg(load_text(&e, "name: x\n"
                                "teacher: {model: {arch: llama, d_model: 48, heads: 4, kv_heads: 2}}\n"
                                "student: {model: {arch: llama, d_model: 288, heads: 6, context: 32}}\n") == 0,
                  "%s", gkd_last_error());
    gkd_cell_config c;
    ck_assert_int_eq(gkd_experiment_cell(e, 0, &c), 0);
    ck_assert_int_eq(c.teacher_model.arch, GKD_ARCH_LLAMA);
    ck_assert_int_eq(c.teacher_model.n_kv_head, 2);
    ck_assert_int_eq(c.teacher_model.ffn_dim, 128); /* 8 * 48 / 3 */
    ck_assert_int_eq(c.student_model.n_kv_head, 6);
    ck_assert_int_eq(c.student_model.ffn_dim, 768); /* stories15M's */
    ck_assert_int_eq(c.student_model.untied_head, 0);
    ck_assert_int_eq(c.student_model.rope_style, GKD_ROPE_INTERLEAVED);
    ck_assert_float_eq(c.student_model.norm_eps, 1e-5f);
    ck_assert_float_eq(c.student_model.rope_theta, 10000.0f);
    char t[GKD_HASH_HEX_LEN + 1], s0[GKD_HASH_HEX_LEN + 1], c0[GKD_HASH_HEX_LEN + 1];
    hashes(e, 0, t, s0, c0);
    gkd_experiment_free(e);
    /* The same shapes as GPT-2: other hashes. */
    char t1[GKD_HASH_HEX_LEN + 1], s1[GKD_HASH_HEX_LEN + 1], c1[GKD_HASH_HEX_LEN + 1];
    one_cell_hashes("name: x\nteacher: {model: {d_model: 48, heads: 4}}\n"
                    "student: {model: {d_model: 288, heads: 6, context: 32}}\n", t1, s1, c1);
    ck_assert_str_ne(t, t1);
    ck_assert_str_ne(s0, s1);
    /* arch: gpt2 written out is the default left out: the same hashes. */
    char t2[GKD_HASH_HEX_LEN + 1], s2[GKD_HASH_HEX_LEN + 1], c2[GKD_HASH_HEX_LEN + 1];
    one_cell_hashes("name: x\nteacher: {model: {arch: gpt2, d_model: 48, heads: 4}}\n"
                    "student: {model: {arch: gpt2, d_model: 288, heads: 6, context: 32}}\n", t2, s2, c2);
    ck_assert_str_eq(t1, t2);
    ck_assert_str_eq(s1, s2);
    ck_assert_str_eq(c1, c2);
}
END_TEST

Suite *experiment_suite(void) {
    Suite *s = suite_create("experiment");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_all_keys);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_task_variants);
    tcase_add_test(tc, test_error_messages);
    tcase_add_test(tc, test_too_many_cells);
    tcase_add_test(tc, test_deep_and_long_lists);
    tcase_add_test(tc, test_grid_order);
    tcase_add_test(tc, test_axis_names_and_sanitizing);
    tcase_add_test(tc, test_fnv1a_reference);
    tcase_add_test(tc, test_hashes);
    tcase_add_test(tc, test_llama_models);
    tcase_add_test(tc, test_labels);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_variants);
    tcase_add_test(tc, test_variants_with_axes);
    tcase_add_test(tc, test_variants_round_trip);
    tcase_add_test(tc, test_variant_errors);
    tcase_add_test(tc, test_cli_check);
    suite_add_tcase(s, tc);
    return s;
}
