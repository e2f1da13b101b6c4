/* The weighted cross-entropy the supervised terms of a step share: the
 * loss of divergence ce, the hybrid term and the rationale term. */
#include <math.h>
#include <stddef.h>

#include "distill_step.h"

/* Rows run in parallel; the sum runs in row order over row_loss, so it
 * does not depend on the thread count. */
double gkd_weighted_ce(float *dlogits, double *row_loss, const float *logits, const int *targets,
                       const float *w, int N, int V, float scale) {
    double total = 0;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        row_loss[n] = 0;
        if (w[n] == 0) continue;
        const float *z = logits + (size_t)n * V;
        float *dz = dlogits + (size_t)n * V;
        double mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double sum = 0;
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        double lse = mx + log(sum);
        row_loss[n] = w[n] * (lse - z[targets[n]]);
        for (int v = 0; v < V; v++) {
            double p = exp(z[v] - lse);
            dz[v] += (float)(scale * w[n] * (p - (v == targets[n])));
        }
    }
    for (int n = 0; n < N; n++) total += row_loss[n];
    return total;
}
