/* A batch of sequences laid out for the loss (see batch_layout.h).
 *
 * Shapes: B rows, cap the length of a gkd_seqbatch row, T the longest
 * sequence of the batch. */
#include "batch_layout.h"

#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

void gkd_batch_layout_free(gkd_batch_layout *l) {
    if (!l) return;
    free(l->tokens);
    free(l->targets);
    free(l->mask);
    free(l->weight);
    free(l->targets_cap);
    free(l->mask_cap);
    memset(l, 0, sizeof *l);
}

int gkd_batch_layout_new(gkd_batch_layout *l, int max_B, int cap) {
    memset(l, 0, sizeof *l);
    if (max_B < 1 || cap < 1)
        return gkd_error(GKD_EINVAL, "batch layout: %d rows of %d tokens (both must be >= 1)", max_B, cap);
    const size_t BC = (size_t)max_B * cap;
    l->max_B = max_B;
    l->cap = cap;
    l->tokens = calloc(BC, sizeof(int));
    l->targets = calloc(BC, sizeof(int));
    l->mask = calloc(BC, sizeof(float));
    l->weight = calloc(BC, sizeof(float));
    l->targets_cap = calloc(BC, sizeof(int));
    l->mask_cap = calloc(BC, sizeof(float));
    if (!l->tokens || !l->targets || !l->mask || !l->weight || !l->targets_cap || !l->mask_cap) {
        gkd_batch_layout_free(l);
        return gkd_error(GKD_ENOMEM, "batch layout: out of memory for %d x %d tokens", max_B, cap);
    }
    return 0;
}

void gkd_batch_layout_fill(gkd_batch_layout *l, const gkd_seqbatch *b, const float *importance,
                           int per_sequence) {
    const int B = b->B, cap = b->cap;
    int T = 1;
    for (int r = 0; r < B; r++)
        if (b->len[r] > T) T = b->len[r];
    l->B = B;
    l->T = T;
    gkd_seqbatch_targets(b, l->targets_cap, l->mask_cap);
    double valid = 0;
    int seqs = 0;
    for (int r = 0; r < B; r++) {
        double n = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)r * cap + t, j = (size_t)r * T + t;
            l->tokens[j] = b->tokens[i];
            l->targets[j] = l->targets_cap[i];
            l->mask[j] = l->mask_cap[i];
            n += l->mask_cap[i];
        }
        valid += n;
        seqs += n > 0;
    }
    for (int r = 0; r < B; r++) {
        double n = 0;
        for (int t = 0; t < T; t++) n += l->mask[(size_t)r * T + t];
        for (int t = 0; t < T; t++) {
            size_t j = (size_t)r * T + t;
            double w = 0;
            if (l->mask[j] != 0) w = per_sequence ? 1.0 / (n * seqs) : 1.0 / valid;
            /* Sampled tokens: the importance weight of the drawn token (at
             * t+1), clipped at 1 so it never amplifies noise. */
            if (importance && w != 0) {
                float iw = importance[(size_t)r * cap + t + 1];
                w *= iw < 1.0f ? iw : 1.0f;
            }
            l->weight[j] = (float)w;
        }
    }
    l->loss_tokens = (long)valid;
}
