/* Temperature, top-k and nucleus filtering (see sample_filter.h). */
#include "sample_filter.h"

#include <math.h>
#include <stdlib.h>

int gkd_sample_argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

/* Order by decreasing logit, then increasing id (a total order); idx + V
 * is scratch. */
static void sort_desc(int *idx, const float *logits, int V) {
    /* Bottom-up merge sort: qsort has no context pointer for the logits. */
    int *tmp = idx + V;
    for (int w = 1; w < V; w *= 2) {
        for (int lo = 0; lo < V; lo += 2 * w) {
            int mid = lo + w < V ? lo + w : V, hi = lo + 2 * w < V ? lo + 2 * w : V;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int a = idx[i], b = idx[j];
                int take_b = logits[b] > logits[a] || (logits[b] == logits[a] && b < a);
                tmp[k++] = take_b ? idx[j++] : idx[i++];
            }
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        for (int i = 0; i < V; i++) idx[i] = tmp[i];
    }
}

void gkd_sample_filter(double *probs, const float *logits, int V, float temperature, int top_k,
                       float top_p, int *idx) {
    for (int i = 0; i < V; i++) probs[i] = 0.0;
    if (temperature == 0.0f) {
        probs[gkd_sample_argmax(logits, V)] = 1.0;
        return;
    }
    int k = (top_k > 0 && top_k < V) ? top_k : V;
    int filter = k < V || top_p < 1.0f;
    double inv_t = 1.0 / (double)temperature;
    if (!filter) {
        int am = gkd_sample_argmax(logits, V);
        double mx = (double)logits[am] * inv_t, sum = 0.0;
        for (int i = 0; i < V; i++) {
            probs[i] = exp((double)logits[i] * inv_t - mx);
            sum += probs[i];
        }
        for (int i = 0; i < V; i++) probs[i] /= sum;
        return;
    }
    for (int i = 0; i < V; i++) idx[i] = i;
    sort_desc(idx, logits, V);
    double mx = (double)logits[idx[0]] * inv_t, sum = 0.0;
    for (int j = 0; j < k; j++) {
        probs[idx[j]] = exp((double)logits[idx[j]] * inv_t - mx);
        sum += probs[idx[j]];
    }
    int keep = k;
    if (top_p < 1.0f) {
        double cum = 0.0, target = (double)top_p;
        for (int j = 0; j < k; j++) {
            cum += probs[idx[j]] / sum;
            if (cum >= target) {
                keep = j + 1;
                break;
            }
        }
    }
    double kept = 0.0;
    for (int j = 0; j < keep; j++) kept += probs[idx[j]];
    for (int j = keep; j < k; j++) probs[idx[j]] = 0.0;
    for (int j = 0; j < keep; j++) probs[idx[j]] /= kept;
}

int gkd_sample_draw(const double *probs, int V, gkd_rng *r) {
    double u = gkd_rng_double(r), cum = 0.0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (probs[i] <= 0.0) continue;
        cum += probs[i];
        last = i;
        if (u < cum) return i;
    }
    return last;
}
