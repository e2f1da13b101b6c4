#include "pace.h"

#include <omp.h>

/* Weight of a call's measurement in the smoothed rates: the speed
 * difference between cores lasts minutes, and one step in which a thread
 * was preempted should move the shares only a little. */
#define NEW_WEIGHT 0.25

void gkd_pace_begin(gkd_pace *p, int threads) {
    if (threads > GKD_PACE_MAX) threads = GKD_PACE_MAX;
    p->call_threads = threads;
    const int measured = p->threads == threads;
    double total = 0.0, before = 0.0;
    for (int k = 0; k < threads; k++) total += measured ? p->rate[k] : 1.0;
    p->cut[0] = 0.0;
    for (int k = 0; k < threads; k++) {
        before += measured ? p->rate[k] : 1.0;
        p->cut[k + 1] = before / total;
        p->busy[k] = 0.0;
    }
    p->cut[threads] = 1.0;
}

void gkd_pace_start(gkd_pace *p) {
    const int me = omp_get_thread_num();
    if (me < GKD_PACE_MAX) p->mark[me] = omp_get_wtime();
}

void gkd_pace_stage_end(gkd_pace *p) {
    const int me = omp_get_thread_num();
    if (me < GKD_PACE_MAX) p->busy[me] += omp_get_wtime() - p->mark[me];
#pragma omp barrier
    if (me < GKD_PACE_MAX) p->mark[me] = omp_get_wtime();
}

void gkd_pace_end(gkd_pace *p) {
    const int threads = p->call_threads;
    for (int k = 0; k < threads; k++)
        if (p->busy[k] <= 0.0) return;
    const int measured = p->threads == threads;
    for (int k = 0; k < threads; k++) {
        const double r = (p->cut[k + 1] - p->cut[k]) / p->busy[k];
        p->rate[k] = measured ? (1.0 - NEW_WEIGHT) * p->rate[k] + NEW_WEIGHT * r : r;
    }
    p->threads = threads;
}

void gkd_pace_range(const gkd_pace *p, int n, int nth, int me, int *i0, int *i1) {
    if (!p || nth != p->call_threads) {
        gkd_team_share(n, nth, me, i0, i1);
        return;
    }
    /* Each cut rounded to the nearest item, so neighbours agree on it. */
    *i0 = (int)(n * p->cut[me] + 0.5);
    *i1 = (int)(n * p->cut[me + 1] + 0.5);
}
