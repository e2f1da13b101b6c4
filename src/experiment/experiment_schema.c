/* The experiment-file schema: one row per leaf key, in the order keys are
 * written back (gkd_cell_config_write_yaml) and documented. Sections are the
 * prefixes of the paths, so this table alone defines the accepted tree. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "experiment_internal.h"
#include "gkd/distill.h"
#include "gkd/error.h"

#define OFF(field) offsetof(gkd_cell_config, field)
/* The last column: the runs (RUN_*) whose gkd_distill_options field takes
 * the value, and how. A NO_OPTION key sets no option directly (task,
 * models and slurm reach the runs otherwise); options derived from several
 * keys are set in cell_options.c. */
#define TO(runs, type, field) {runs, type, offsetof(gkd_distill_options, field)}
#define NO_OPTION {0, O_NONE, 0}
#define BIG 1e300

const exp_key exp_keys[] = {
    {"name", K_NAME, NULL, 0, 0, F_NO_AXIS | F_REQUIRED, 0, NULL, OFF(experiment),
     "experiment name, [A-Za-z0-9_.-]+ (used as a directory name)", NO_OPTION},
    {"description", K_STR, "", 0, 0, F_NO_AXIS, 0, NULL, OFF(description), "free text", NO_OPTION},
    {"labels", K_LABELS, NULL, 0, 0, F_NO_AXIS, 0, NULL, 0,
     "LaTeX display names for gkd table: KEY (a metric, an axis or AXIS:VALUE) to TEXT, as --label KEY=TEXT "
     "(see Labels)", NO_OPTION},

    {"task.name", K_ENUM_STR, "arith", 0, 0, 0, 0, "arith|reverse|sort|modes|pairs|text", OFF(task.name),
     "task generator", NO_OPTION},
    {"task.seed", K_U64, "1234", 0, 0, 0, 0, NULL, OFF(task.seed),
     "data seed (a constant, not the run seed, so every cell shares the data)", NO_OPTION},
    {"task.train", K_INT, "20000", 1, 1e7, 0, T_GENERATED, NULL, OFF(task.train), "training examples", NO_OPTION},
    {"task.eval", K_INT, "500", 1, 1e6, 0, T_GENERATED, NULL, OFF(task.eval), "eval examples", NO_OPTION},
    {"task.digits", K_INT, "3", 1, 9, 0, T_ARITH, NULL, OFF(task.digits), "operand digits", NO_OPTION},
    {"task.op", K_ENUM_STR, "add", 0, 0, 0, T_ARITH, "add|sub|mul", OFF(task.op), "arithmetic operation", NO_OPTION},
    {"task.rationale", K_BOOL, "false", 0, 0, 0, T_ARITH, NULL, OFF(task.rationale),
     "step-by-step digit sums with carries before the answer", NO_OPTION},
    {"task.min_len", K_INT, "3", 1, 1000, 0, T_REVERSE | T_SORT | T_MODES, NULL, OFF(task.min_len), "shortest string (reverse, sort; modes prompts)",
     NO_OPTION},
    {"task.max_len", K_INT, "8", 1, 1000, 0, T_REVERSE | T_SORT | T_MODES, NULL, OFF(task.max_len), "longest string",
     NO_OPTION},
    {"task.alphabet", K_STR, "abcdefghij", 0, 0, 0, T_REVERSE | T_SORT | T_MODES, NULL, OFF(task.alphabet),
     "characters strings are drawn from (1..256 bytes)", NO_OPTION},
    {"task.k", K_INT, "4", 1, 1000, 0, T_MODES, NULL, OFF(task.modes_k), "valid continuations per prompt", NO_OPTION},
    {"task.zipf", K_DOUBLE, "1", 0, 100, 0, T_MODES, NULL, OFF(task.zipf_s),
     "Zipf exponent of the continuation probabilities", NO_OPTION},
    {"task.length", K_INT, "4", 1, 1000, 0, T_MODES, NULL, OFF(task.modes_len), "length of each continuation",
     NO_OPTION},
    {"task.path", K_PATH, NULL, 0, 0, 0, T_PAIRS | T_TEXT, NULL, OFF(task.path),
     "TSV of prompt<TAB>reference (pairs) or plain text (text); required for them", NO_OPTION},
    {"task.eval_path", K_PATH, NULL, 0, 0, 0, T_PAIRS, NULL, OFF(task.eval_path),
     "separate eval TSV (default: split task.path by eval_fraction)", NO_OPTION},
    {"task.eval_fraction", K_DOUBLE, "0.1", 0, 1, F_OPEN_MIN | F_OPEN_MAX, T_PAIRS | T_TEXT, NULL,
     OFF(task.eval_fraction), "eval share of the examples when there is no eval_path", NO_OPTION},
    {"task.tokenizer", K_PATH, NULL, 0, 0, 0, 0, NULL, OFF(task.tokenizer),
     "subword tokenizer files (tokenizer.json, vocab.json + merges.txt, tokenizer.bin or their directory); "
     "default: the task's char or byte vocabulary, or the tokenizer of teacher.checkpoint",
     NO_OPTION},
    {"task.train_fraction", K_DOUBLE, "1", 0, 1, F_OPEN_MIN, 0, NULL, OFF(task.train_fraction),
     "train on the first round(f n) training examples (nested; eval unchanged; the shared teacher sees them "
     "all): an axis draws a data-efficiency curve", NO_OPTION},
    {"task.chunk", K_INT, "64", 2, 65536, 0, T_TEXT, NULL, OFF(task.chunk), "characters per example", NO_OPTION},
    {"task.prompt_chars", K_INT, "32", 1, 65535, 0, T_TEXT, NULL, OFF(task.prompt_chars),
     "characters of the chunk that form the prompt (< chunk)", NO_OPTION},

    {"task.context", K_ENUM_STR, "none", 0, 0, 0, T_ARITH, "none|rationale|worked_example", OFF(task.context),
     "what the teacher sees before each prompt (context distillation): the example's own rationale steps, or "
     "one fixed worked example", NO_OPTION},
    {"task.context_path", K_PATH, NULL, 0, 0, 0, T_TEXT, NULL, OFF(task.context_path),
     "a file whose text the teacher sees before every prompt (context distillation)", NO_OPTION},

    {"teacher.checkpoint", K_PATH, NULL, 0, 0, 0, 0, NULL, OFF(teacher_checkpoint),
     "load the teacher from this file: a gkd checkpoint, a llama2.c .bin, or a Hugging Face directory or "
     "model.safetensors with its config.json (docs/models.md; excludes teacher.model and teacher.train)",
     NO_OPTION},
    {"teacher.context", K_STR, "", 0, 0, 0, 0, NULL, OFF(task.teacher_context),
     "text the teacher sees before every prompt, before the task's own context (context distillation)",
     NO_OPTION},
    {"teacher.same_as", K_ENUM, "none", 0, 0, 0, 0, "none|student_init", OFF(teacher_same_as),
     "student_init: the teacher is a frozen copy of the student's initial model, seeing the contexts "
     "(self-distillation; excludes teacher.checkpoint)", NO_OPTION},
    {"teacher.model.layers", K_INT, "4", 1, 64, 0, 0, NULL, OFF(teacher_model.n_layer), "transformer blocks",
     NO_OPTION},
    {"teacher.model.d_model", K_INT, "128", 1, 4096, 0, 0, NULL, OFF(teacher_model.n_embd), "channels", NO_OPTION},
    {"teacher.model.heads", K_INT, "4", 1, 256, 0, 0, NULL, OFF(teacher_model.n_head),
     "attention heads (must divide d_model)", NO_OPTION},
    {"teacher.model.context", K_INT, "64", 2, 8192, 0, 0, NULL, OFF(teacher_model.max_seq_len),
     "context length in tokens", NO_OPTION},
    {"teacher.model.arch", K_ENUM, "gpt2", 0, 0, 0, 0, "gpt2|llama", OFF(teacher_model.arch),
     "architecture (docs/models.md): gpt2, or llama (RoPE, RMSNorm, SwiGLU, grouped-query attention)", NO_OPTION},
    {"teacher.model.kv_heads", K_INT, NULL, 1, 256, 0, 0, NULL, OFF(teacher_model.n_kv_head),
     "llama: key/value heads, dividing heads (default: heads)", NO_OPTION},
    {"teacher.model.ffn_dim", K_INT, NULL, 1, 65536, 0, 0, NULL, OFF(teacher_model.ffn_dim),
     "llama: SwiGLU hidden width (default: 8 d_model / 3 rounded up to a multiple of 32, as llama2.c)", NO_OPTION},
    {"teacher.model.untied_head", K_BOOL, "false", 0, 0, 0, 0, NULL, OFF(teacher_model.untied_head),
     "llama: an output head of its own instead of the token embedding", NO_OPTION},
    {"teacher.train.steps", K_INT, "3000", 1, 1e8, 0, 0, NULL, OFF(teacher_train.steps), "training steps",
     TO(RUN_TEACHER, O_LONG, steps)},
    {"teacher.train.batch", K_INT, "64", 1, 65536, 0, 0, NULL, OFF(teacher_train.batch), "sequences per step",
     TO(RUN_TEACHER, O_INT, batch)},
    {"teacher.train.lr", K_DOUBLE, "0.003", 0, 10, F_OPEN_MIN, 0, NULL, OFF(teacher_train.lr), "peak learning rate",
     TO(RUN_TEACHER, O_DOUBLE, lr)},
    {"teacher.train.lr_min", K_DOUBLE, NULL, 0, 10, 0, 0, NULL, OFF(teacher_train.lr_min),
     "learning rate at the end of the cosine decay (default: lr / 10; = lr: constant after warmup)",
     TO(RUN_TEACHER, O_DOUBLE, lr_min)},
    {"teacher.train.warmup", K_INT, "100", 0, 1e8, 0, 0, NULL, OFF(teacher_train.warmup),
     "linear warmup steps (<= steps)", TO(RUN_TEACHER, O_LONG, warmup)},
    {"teacher.train.weight_decay", K_DOUBLE, "0", 0, 10, 0, 0, NULL, OFF(teacher_train.weight_decay),
     "AdamW weight decay", TO(RUN_TEACHER, O_FLOAT, weight_decay)},
    {"teacher.train.clip", K_DOUBLE, "1", 0, 1e6, 0, 0, NULL, OFF(teacher_train.clip),
     "gradient-norm clip (0 = off)", TO(RUN_TEACHER, O_FLOAT, clip)},
    {"teacher.train.seed", K_U64, "1", 0, 0, 0, 0, NULL, OFF(teacher_seed),
     "teacher init/data-order seed (not the run seed, so cells share the teacher)", TO(RUN_TEACHER, O_U64, seed)},

    {"student.model.layers", K_INT, "2", 1, 64, 0, 0, NULL, OFF(student_model.n_layer), "transformer blocks",
     NO_OPTION},
    {"student.model.d_model", K_INT, "64", 1, 4096, 0, 0, NULL, OFF(student_model.n_embd), "channels", NO_OPTION},
    {"student.model.heads", K_INT, "2", 1, 256, 0, 0, NULL, OFF(student_model.n_head),
     "attention heads (must divide d_model)", NO_OPTION},
    {"student.model.context", K_INT, NULL, 2, 8192, 0, 0, NULL, OFF(student_model.max_seq_len),
     "context length (default: the teacher's; <= the teacher's)", NO_OPTION},
    {"student.model.arch", K_ENUM, "gpt2", 0, 0, 0, 0, "gpt2|llama", OFF(student_model.arch),
     "architecture (docs/models.md): gpt2, or llama (RoPE, RMSNorm, SwiGLU, grouped-query attention)", NO_OPTION},
    {"student.model.kv_heads", K_INT, NULL, 1, 256, 0, 0, NULL, OFF(student_model.n_kv_head),
     "llama: key/value heads, dividing heads (default: heads)", NO_OPTION},
    {"student.model.ffn_dim", K_INT, NULL, 1, 65536, 0, 0, NULL, OFF(student_model.ffn_dim),
     "llama: SwiGLU hidden width (default: 8 d_model / 3 rounded up to a multiple of 32, as llama2.c)", NO_OPTION},
    {"student.model.untied_head", K_BOOL, "false", 0, 0, 0, 0, NULL, OFF(student_model.untied_head),
     "llama: an output head of its own instead of the token embedding", NO_OPTION},
    {"student.init", K_INIT, "sft", 0, 0, 0, 0, NULL, OFF(student_init),
     "sft (supervised fine-tuning on the data), random, or the path of a model file (as teacher.checkpoint)",
     NO_OPTION},
    {"student.targets", K_ENUM, "reference", 0, 0, 0, 0, "reference|answer|rationale+answer|multitask",
     OFF(task.targets),
     "what the student (and a trained teacher) learns to produce: the task's reference, the answer, rationale "
     "-> answer, or multitask: [label] prompt -> answer plus w x [rationale] prompt -> rationale "
     "(docs/distillation.md)", NO_OPTION},
    {"student.rationale_weight", K_DOUBLE, "1", 0, 1e6, 0, 0, NULL, OFF(distill.rationale_weight),
     "multitask: w in loss = label loss + w * rationale loss (SFT and distillation; a trained teacher uses 1)",
     TO(RUN_SFT | RUN_DISTILL, O_FLOAT, rationale_weight)},
    {"student.rationale_source", K_ENUM, "data", 0, 0, 0, 0, "data|teacher", OFF(distill.rationale_source),
     "multitask: rationale targets of the distillation from the task, or generated once by the teacher "
     "(greedy; the SFT student always uses the task's)", TO(RUN_DISTILL, O_INT, rationale_source)},
    {"student.sft.steps", K_INT, "300", 1, 1e8, 0, 0, NULL, OFF(student_sft.steps), "SFT steps",
     TO(RUN_SFT, O_LONG, steps)},
    {"student.sft.batch", K_INT, "64", 1, 65536, 0, 0, NULL, OFF(student_sft.batch), "sequences per step",
     TO(RUN_SFT, O_INT, batch)},
    {"student.sft.lr", K_DOUBLE, "0.003", 0, 10, F_OPEN_MIN, 0, NULL, OFF(student_sft.lr), "peak learning rate",
     TO(RUN_SFT, O_DOUBLE, lr)},
    {"student.sft.lr_min", K_DOUBLE, NULL, 0, 10, 0, 0, NULL, OFF(student_sft.lr_min),
     "learning rate at the end of the cosine decay (default: lr / 10)", TO(RUN_SFT, O_DOUBLE, lr_min)},
    {"student.sft.warmup", K_INT, "0", 0, 1e8, 0, 0, NULL, OFF(student_sft.warmup), "linear warmup steps (<= steps)",
     TO(RUN_SFT, O_LONG, warmup)},
    {"student.sft.weight_decay", K_DOUBLE, "0", 0, 10, 0, 0, NULL, OFF(student_sft.weight_decay),
     "AdamW weight decay", TO(RUN_SFT, O_FLOAT, weight_decay)},
    {"student.sft.clip", K_DOUBLE, "1", 0, 1e6, 0, 0, NULL, OFF(student_sft.clip), "gradient-norm clip (0 = off)",
     TO(RUN_SFT, O_FLOAT, clip)},

    {"distill.steps", K_INT, "1000", 1, 1e8, 0, 0, NULL, OFF(distill.opt.steps), "distillation steps",
     TO(RUN_DISTILL, O_LONG, steps)},
    {"distill.batch", K_INT, "32", 1, 65536, 0, 0, NULL, OFF(distill.opt.batch), "sequences per step",
     TO(RUN_DISTILL, O_INT, batch)},
    {"distill.lr", K_DOUBLE, "0.001", 0, 10, F_OPEN_MIN, 0, NULL, OFF(distill.opt.lr), "peak learning rate",
     TO(RUN_DISTILL, O_DOUBLE, lr)},
    {"distill.lr_min", K_DOUBLE, NULL, 0, 10, 0, 0, NULL, OFF(distill.opt.lr_min),
     "learning rate at the end of the cosine decay (default: lr / 10; = lr: constant after warmup, so the "
     "first N steps of a run are a run of N steps)", TO(RUN_DISTILL, O_DOUBLE, lr_min)},
    {"distill.warmup", K_INT, "0", 0, 1e8, 0, 0, NULL, OFF(distill.opt.warmup), "linear warmup steps (<= steps)",
     TO(RUN_DISTILL, O_LONG, warmup)},
    {"distill.weight_decay", K_DOUBLE, "0", 0, 10, 0, 0, NULL, OFF(distill.opt.weight_decay), "AdamW weight decay",
     TO(RUN_DISTILL, O_FLOAT, weight_decay)},
    {"distill.clip", K_DOUBLE, "1", 0, 1e6, 0, 0, NULL, OFF(distill.opt.clip), "gradient-norm clip (0 = off)",
     TO(RUN_DISTILL, O_FLOAT, clip)},
    {"distill.divergence", K_DIV, "fkl", 0, 0, 0, 0, NULL, OFF(distill.divergence),
     "fkl, rkl, jsd(b), skl(a), srkl(a), tvd, pg_rkl (needs lambda 1), ce (needs lambda 0, seqkd 0)",
     TO(RUN_DISTILL, O_DIVERGENCE, divergence)},
    {"distill.ce_weight", K_DOUBLE, "0", 0, 1e6, 0, 0, NULL, OFF(distill.ce_weight),
     "hybrid loss: + ce_weight * cross-entropy on ground truth", TO(RUN_DISTILL, O_FLOAT, ce_weight)},
    {"distill.lambda", K_DOUBLE, "0.5", 0, 1, 0, 0, NULL, OFF(distill.lambda),
     "fraction of batches that are student rollouts (1 = fully on-policy)",
     TO(RUN_DISTILL, O_DOUBLE, schedule.lambda)},
    {"distill.per_example", K_BOOL, "false", 0, 0, 0, 0, NULL, OFF(distill.per_example),
     "draw the data source per example instead of per batch", TO(RUN_DISTILL, O_INT, schedule.per_example)},
    {"distill.seqkd", K_DOUBLE, "0", 0, 1, 0, 0, NULL, OFF(distill.seqkd),
     "fraction of the off-policy batches that the teacher generates", TO(RUN_DISTILL, O_DOUBLE, schedule.seqkd)},
    {"distill.seqkd_cache", K_BOOL, "false", 0, 0, 0, 0, NULL, OFF(distill.seqkd_cache),
     "generate the teacher outputs once and reuse them", TO(RUN_DISTILL, O_INT, seqkd_cache)},
    {"distill.teacher_mix", K_DOUBLE, "0", 0, 1, 0, 0, NULL, OFF(distill.teacher_mix),
     "weight of the teacher in the mixture student rollouts sample from",
     TO(RUN_DISTILL, O_DOUBLE, schedule.teacher_mix)},
    {"distill.replay.mode", K_ENUM, "off", 0, 0, 0, 0, "off|fixed|adaptive", OFF(distill.replay.mode),
     "replay buffer of past student rollouts", TO(RUN_DISTILL, O_INT, schedule.replay)},
    {"distill.replay.capacity", K_INT, "1000", 1, 1e7, 0, 0, NULL, OFF(distill.replay.capacity),
     "sequences kept", TO(RUN_DISTILL, O_INT, schedule.capacity)},
    {"distill.replay.prob", K_DOUBLE, "0.5", 0, 1, 0, 0, NULL, OFF(distill.replay.prob),
     "fixed: probability a batch comes from the buffer", TO(RUN_DISTILL, O_DOUBLE, schedule.p_replay)},
    {"distill.replay.init", K_DOUBLE, "0", 0, 1, 0, 0, NULL, OFF(distill.replay.init),
     "adaptive: initial probability", TO(RUN_DISTILL, O_DOUBLE, schedule.init_threshold)},
    {"distill.replay.step", K_DOUBLE, "0.1", 0, 1, 0, 0, NULL, OFF(distill.replay.step),
     "adaptive: change of the probability per adjustment", TO(RUN_DISTILL, O_DOUBLE, schedule.threshold_step)},
    {"distill.replay.loss_eps", K_DOUBLE, "0.1", 0, 1e6, 0, 0, NULL, OFF(distill.replay.loss_eps),
     "adaptive: rise of the validation loss over its reference that raises the probability",
     TO(RUN_DISTILL, O_DOUBLE, schedule.loss_eps)},
    {"distill.temperature", K_DOUBLE, "1", 0, 100, 0, 0, NULL, OFF(distill.temperature),
     "rollout sampling temperature (0 = greedy)", TO(RUN_DISTILL, O_FLOAT, sample.temperature)},
    {"distill.top_k", K_INT, "0", 0, 1000000, 0, 0, NULL, OFF(distill.top_k), "rollout top-k (0 = off)",
     TO(RUN_DISTILL, O_INT, sample.top_k)},
    {"distill.top_p", K_DOUBLE, "1", 0, 1, F_OPEN_MIN, 0, NULL, OFF(distill.top_p), "rollout nucleus mass (1 = off)",
     TO(RUN_DISTILL, O_FLOAT, sample.top_p)},
    {"distill.loss_temperature", K_DOUBLE, "1", 0, 100, F_OPEN_MIN, 0, NULL, OFF(distill.loss_temperature),
     "tau: both distributions are softmax(logits / tau) in the divergence",
     TO(RUN_DISTILL, O_FLOAT, loss_temperature)},
    {"distill.teacher_topk", K_INT, "0", 0, 1 << 20, 0, 0, NULL, OFF(distill.teacher_topk),
     "keep the teacher's top-k probabilities per position (0 = the whole distribution; docs/divergences.md)",
     TO(RUN_DISTILL, O_INT, teacher_topk)},
    {"distill.topk_tail", K_ENUM, "renorm", 0, 0, 0, 0, "renorm|tail", OFF(distill.topk_tail),
     "with teacher_topk: renormalise both sides over the top-k, or one bucket for the rest",
     TO(RUN_DISTILL, O_INT, topk_tail)},
    {"distill.teacher_cache", K_PATH, NULL, 0, 0, F_NO_AXIS, 0, NULL, OFF(distill.teacher_cache),
     "with teacher_topk: read the off-policy rows (data or SeqKD) and their teacher rows from this "
     "gkd teacher-cache file (docs/teacher-cache-format.md) instead of running the teacher on them",
     NO_OPTION},
    {"distill.shared_teacher_cache", K_BOOL, "true", 0, 0, F_NO_AXIS, 0, NULL, OFF(distill.shared_teacher_cache),
     "with teacher_topk and no teacher_cache: score the off-policy source once per results tree "
     "(shared/teacher_cache-HASH.bin) and let every cell read it", NO_OPTION},
    {"distill.reduction", K_ENUM, "token", 0, 0, 0, 0, "token|sequence", OFF(distill.reduction),
     "mean over the batch's tokens, or mean per sequence then over sequences", TO(RUN_DISTILL, O_INT, per_sequence)},
    {"distill.max_new_tokens", K_INT, "16", 1, 8192, 0, 0, NULL, OFF(distill.max_new_tokens),
     "generated tokens per rollout, EOS included", TO(RUN_ALL, O_INT, sample.max_new_tokens)},
    {"distill.checkpoint_every", K_INT, "100", 0, 1e8, 0, 0, NULL, OFF(distill.checkpoint_every),
     "steps between checkpoints (0 = only at the end)", TO(RUN_DISTILL, O_LONG, checkpoint_every)},

    {"eval.every", K_INT, "100", 0, 1e8, 0, 0, NULL, OFF(eval.every), "steps between evaluations (0 = only at the end)",
     TO(RUN_DISTILL, O_LONG, eval_every)},
    {"eval.decode", K_ENUM, "greedy", 0, 0, 0, 0, "greedy|sample", OFF(eval.decode), "decoding for evaluation",
     NO_OPTION},
    {"eval.samples", K_INT, "1", 0, 1000, 0, 0, NULL, OFF(eval.samples),
     "sampled completions per prompt for the sample metrics (0 = none)", TO(RUN_DISTILL, O_INT, eval_samples)},
    {"eval.n", K_INT, "200", 1, 1e6, 0, 0, NULL, OFF(eval.n), "eval examples used (<= task.eval)",
     TO(RUN_ALL, O_INT, eval_n)},
    {"eval.temperature", K_DOUBLE, "1", 0, 100, 0, 0, NULL, OFF(eval.temperature), "temperature of the sampled completions",
     TO(RUN_ALL, O_FLOAT, eval_temperature)},
    {"eval.bleu_smoothing", K_ENUM, "method0", 0, 0, 0, 0, "method0|method1|method2|method3|method4",
     OFF(eval.bleu_smoothing), "smoothing of the bleu column, by NLTK's name (method0: none; see docs/metrics.md)",
     TO(RUN_ALL, O_INT, eval_bleu_smoothing)},
    {"eval.allow_overlap", K_BOOL, "false", 0, 0, F_NO_AXIS, 0, NULL, OFF(eval.allow_overlap),
     "a teacher.checkpoint or student.init trained on the evaluated examples is a warning, not an error", NO_OPTION},

    {"variants", K_VARIANTS, NULL, 0, 0, 0, 0, NULL, 0,
     "named bundles of task/teacher/student/distill/eval settings: one axis `variant` (see Variants)", NO_OPTION},

    {"seeds", K_SEEDS, "1", 0, 0, 0, 0, NULL, OFF(seed),
     "run seeds (always the axis `seed`; also the SFT seed)", TO(RUN_SFT | RUN_DISTILL, O_U64, seed)},

    {"slurm.partition", K_STR, "", 0, 0, F_NO_AXIS, 0, NULL, OFF(slurm.partition), "partition (\"\" = default)",
     NO_OPTION},
    {"slurm.time", K_TIME, "01:00:00", 0, 0, F_NO_AXIS, 0, NULL, OFF(slurm.time),
     "time limit per cell: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS", NO_OPTION},
    {"slurm.cpus_per_task", K_INT, "2", 1, 1024, F_NO_AXIS, 0, NULL, OFF(slurm.cpus_per_task), "CPUs per cell",
     NO_OPTION},
    {"slurm.mem", K_MEM, "", 0, 0, F_NO_AXIS, 0, NULL, OFF(slurm.mem),
     "memory per cell, digits with optional K|M|G|T (\"\" = default)", NO_OPTION},
};

const int exp_num_keys = (int)(sizeof exp_keys / sizeof exp_keys[0]);

int exp_key_find(const char *path) {
    for (int i = 0; i < exp_num_keys; i++)
        if (!strcmp(exp_keys[i].path, path)) return i;
    return -1;
}

int exp_is_section(const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < exp_num_keys; i++)
        if (!strncmp(exp_keys[i].path, path, n) && exp_keys[i].path[n] == '.') return 1;
    return 0;
}

unsigned exp_task_bit(const char *name) {
    static const char *const names[] = {"arith", "reverse", "sort", "modes", "pairs", "text"};
    for (unsigned i = 0; i < 6; i++)
        if (!strcmp(name, names[i])) return 1u << i;
    return 0;
}

/* Optimal string alignment distance: Levenshtein plus adjacent
 * transpositions, so "nmae" is one edit from "name". */
int exp_edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 1000; /* keys and choices are short */
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

const char *exp_suggest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1000;
    for (int i = 0; i < n; i++) {
        int d = exp_edit_distance(word, cands[i]);
        if (d < best_d) { best_d = d; best = cands[i]; }
    }
    /* Close enough to be a typo: at most a third of the longer word (>= 1). */
    size_t lw = strlen(word), lb = best ? strlen(best) : 0;
    int limit = (int)((lw > lb ? lw : lb) / 3);
    if (limit < 1) limit = 1;
    return best && best_d <= limit ? best : NULL;
}

gkd_setting_range exp_key_range(const exp_key *k) {
    gkd_setting_range r = {k->min, k->max, (k->flags & F_OPEN_MIN) != 0, (k->flags & F_OPEN_MAX) != 0};
    return r;
}

int gkd_experiment_setting_range(const char *key, gkd_setting_range *out) {
    int k = exp_key_find(key);
    if (k < 0 || (exp_keys[k].kind != K_INT && exp_keys[k].kind != K_DOUBLE))
        return gkd_error(GKD_EINVAL, "no numeric experiment setting '%s'", key);
    *out = exp_key_range(&exp_keys[k]);
    return 0;
}

int gkd_setting_range_holds(const gkd_setting_range *r, double v) {
    int low = r->open_min ? v <= r->min : v < r->min;
    int high = r->open_max ? v >= r->max : v > r->max;
    return !low && !high;
}

void gkd_setting_range_text(const gkd_setting_range *r, char *out, size_t cap) {
    snprintf(out, cap, "%c%g, %g%c", r->open_min ? '(' : '[', r->min, r->max, r->open_max ? ')' : ']');
}
