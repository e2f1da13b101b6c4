/* A program built against the installed library with nothing but
 * `pkg-config --cflags --libs gkd` (tests/install/test_pkgconfig.sh): it
 * parses an experiment (libyaml), runs a small model forward (OpenMP, the
 * products, OpenBLAS linked in) and prints one line. It is C and C++ at
 * once, so the C++ build checks that the headers' functions link from C++. */
#include <stdio.h>
#include <string.h>

#include <gkd/gkd.h>

static const char yaml[] =
    "name: hello\n"
    "task: {name: arith, digits: 1, train: 20, eval: 4}\n"
    "eval: {n: 4}\n"
    "teacher:\n"
    "  model: {layers: 1, d_model: 16, heads: 2, context: 16}\n"
    "  train: {steps: 2, batch: 2, lr: 1e-3, warmup: 1}\n"
    "student:\n"
    "  model: {layers: 1, d_model: 16, heads: 2}\n"
    "distill: {steps: 2, batch: 2, lr: 1e-3, divergence: [fkl, rkl], max_new_tokens: 4}\n"
    "seeds: [1, 2]\n";

int main(void) {
    gkd_experiment *exp = NULL;
    if (gkd_experiment_load_buffer(&exp, yaml, strlen(yaml), "hello.yaml")) {
        fprintf(stderr, "hello: %s\n", gkd_last_error());
        return 1;
    }
    const size_t cells = gkd_experiment_num_cells(exp);
    gkd_experiment_free(exp);

    /* Zero first: the fields a GPT-2 model leaves unset stay 0 (C and C++). */
    gkd_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = 16;
    cfg.max_seq_len = 8;
    cfg.n_layer = 1;
    cfg.n_embd = 16;
    cfg.n_head = 2;
    gkd_model *m = NULL;
    int tokens[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (gkd_model_new(&m, &cfg) || (gkd_model_init_weights(m, 1), gkd_model_forward(m, tokens, 1, 8))) {
        fprintf(stderr, "hello: %s\n", gkd_last_error());
        gkd_model_free(m);
        return 1;
    }
    printf("hello: %zu cells; forward on %s (%s products), logit[0] = %.6f\n", cells,
           gkd_isa_name(gkd_isa_active()), gkd_products_name(gkd_products()), m->logits[0]);
    gkd_model_free(m);
    return cells == 4 ? 0 : 1;
}
