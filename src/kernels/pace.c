#include "pace.h"

#include <omp.h>
#include <stddef.h>

/* Weight of a call's measurement in the smoothed rates: the speed
 * difference between cores lasts minutes, and one step in which a thread
 * was preempted should move the shares only a little. */
#define NEW_WEIGHT 0.25

const double *gkd_pace_rates(const gkd_pace *p, int threads) {
    return threads > 0 && p->threads == threads ? p->rate : NULL;
}

void gkd_pace_set_rates(gkd_pace *p, int threads, const double *rate) {
    p->threads = threads < GKD_PACE_MAX ? threads : GKD_PACE_MAX;
    for (int k = 0; k < p->threads; k++) p->rate[k] = rate[k];
}

void gkd_pace_begin(gkd_pace *p, int threads) {
    if (threads > GKD_PACE_MAX) threads = GKD_PACE_MAX;
    p->call_threads = threads;
    const double *rate = gkd_pace_rates(p, threads);
    double total = 0.0, before = 0.0;
    for (int k = 0; k < threads; k++) total += rate ? rate[k] : 1.0;
    p->cut[0] = 0.0;
    for (int k = 0; k < threads; k++) {
        before += rate ? rate[k] : 1.0;
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

void gkd_pace_note(gkd_pace *p, int threads, const double *done, const double *seconds,
                   double new_weight) {
    if (threads > GKD_PACE_MAX) return;
    for (int k = 0; k < threads; k++)
        if (seconds[k] <= 0.0) return;
    const int measured = p->threads == threads;
    for (int k = 0; k < threads; k++) {
        const double r = done[k] / seconds[k];
        p->rate[k] = measured ? (1.0 - new_weight) * p->rate[k] + new_weight * r : r;
    }
    p->threads = threads;
}

void gkd_pace_end(gkd_pace *p) {
    double share[GKD_PACE_MAX];
    for (int k = 0; k < p->call_threads; k++) share[k] = p->cut[k + 1] - p->cut[k];
    gkd_pace_note(p, p->call_threads, share, p->busy, NEW_WEIGHT);
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
