/* The options of a cell's runs. Most come straight from one key each: the
 * schema row says which runs take it and into which gkd_distill_options
 * field (experiment_schema.c, the TO(...) column). What is left here is
 * what no single key decides. */
#include "cell_options.h"

#include <stdint.h>
#include <string.h>

#include "experiment_internal.h"

/* An enum key's index is written as the option's value: the choices of
 * distill.replay.mode and distill.reduction are in the options' order. */
_Static_assert(sizeof(gkd_replay_mode) == sizeof(int), "replay mode written as an int");
_Static_assert(GKD_REPLAY_OFF == 0 && GKD_REPLAY_FIXED == 1 && GKD_REPLAY_ADAPTIVE == 2,
               "distill.replay.mode choices off|fixed|adaptive");
_Static_assert(GKD_REDUCE_TOKEN == 0 && GKD_REDUCE_SEQUENCE == 1, "distill.reduction index is per_sequence");

static unsigned run_bit(cell_run run) {
    return run == CELL_RUN_TEACHER ? RUN_TEACHER : run == CELL_RUN_SFT ? RUN_SFT : RUN_DISTILL;
}

/* Writes the cell's value of key k into the option the row names. */
static void write_option(gkd_distill_options *o, const gkd_cell_config *c, const exp_key *k) {
    const char *src = (const char *)c + k->offset;
    char *dst = (char *)o + k->option.offset;
    int i = 0;
    double d = 0;
    uint64_t u = 0;
    const char *s = NULL;
    switch (k->kind) {
    case K_INT: case K_BOOL: case K_ENUM: memcpy(&i, src, sizeof i); d = i; break;
    case K_DOUBLE: memcpy(&d, src, sizeof d); break;
    case K_U64: case K_SEEDS: memcpy(&u, src, sizeof u); break;
    case K_DIV: memcpy(&s, src, sizeof s); break;
    default: break;
    }
    switch (k->option.type) {
    case O_INT: memcpy(dst, &i, sizeof i); break;
    case O_LONG: { long l = i; memcpy(dst, &l, sizeof l); break; }
    case O_FLOAT: { float f = (float)d; memcpy(dst, &f, sizeof f); break; }
    case O_DOUBLE: memcpy(dst, &d, sizeof d); break;
    case O_U64: memcpy(dst, &u, sizeof u); break;
    case O_DIVERGENCE: {
        gkd_divergence div;
        gkd_divergence_parse(&div, s); /* validated when the file was loaded */
        memcpy(dst, &div, sizeof div);
        break;
    }
    case O_NONE: break;
    }
}

void cell_run_options(gkd_distill_options *o, const gkd_cell_config *c, cell_run run) {
    gkd_distill_options d = GKD_DISTILL_OPTIONS_INIT;
    const unsigned bit = run_bit(run);
    for (int k = 0; k < exp_num_keys; k++)
        if (exp_keys[k].option.runs & bit) write_option(&d, c, &exp_keys[k]);
    /* lr_min unset (< 0): the cosine decay ends at lr / 10. */
    if (d.lr_min < 0) d.lr_min = d.lr * 0.1;
    /* A flag of the options, an enum in the file. */
    d.eval_greedy = c->eval.decode == GKD_DECODE_GREEDY;
    if (run == CELL_RUN_DISTILL) {
        d.schedule.total_steps = d.steps > 0 ? d.steps : 1;
        d.teacher_cache = c->distill.teacher_cache;
    } else {
        /* The shared runs are supervised on the data and evaluated with the
         * cell's eval.n, decode and temperature, but once, at the end, and
         * without sampled completions: their eval.csv is a check of the
         * artifact, the cell's teacher_eval.csv its reference. They are
         * checkpointed every 500 steps when long enough for a kill to cost
         * much. */
        d.divergence.kind = GKD_DIV_CE;
        d.eval_every = 0;
        d.eval_samples = 0;
        d.checkpoint_every = d.steps >= 500 ? 500 : 0;
    }
    *o = d;
}
