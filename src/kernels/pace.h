/* Private: a parallel team's work shared by each thread's measured speed.
 *
 * The cores of a shared machine often run at different speeds for minutes
 * at a time (one measured 15-25% slower than the other), so when every
 * stage of a decode step is split evenly the faster thread waits at each
 * barrier. A pace records how long each thread works between barriers in
 * one call and gives the next call shares in proportion to the measured
 * rates, smoothed over calls. Only speed depends on it: the callers'
 * items (product tiles, attention rows) are computed the same way
 * whichever thread takes them. */
#ifndef GKD_PACE_H
#define GKD_PACE_H

#define GKD_PACE_MAX 64 /* most threads a pace tracks */

/* Items [*i0, *i1) of 0 .. n-1 for thread me of nth: contiguous shares of
 * ceil(n / nth) items, so a thread's consecutive items can share packed
 * rows (the last shares shorter or empty). */
static inline void gkd_team_share(int n, int nth, int me, int *i0, int *i1) {
    const int share = (n + nth - 1) / nth;
    *i0 = me * share < n ? me * share : n;
    *i1 = *i0 + share < n ? *i0 + share : n;
}

typedef struct {
    int threads;                /* team size the rates below are for (0: none yet) */
    int call_threads;           /* team size of this call */
    double rate[GKD_PACE_MAX];  /* smoothed share of a call's work per second */
    double cut[GKD_PACE_MAX + 1]; /* this call: thread k's share is [cut[k], cut[k + 1]) of 1 */
    double busy[GKD_PACE_MAX];  /* this call: seconds each thread worked */
    double mark[GKD_PACE_MAX];  /* this call: when each thread's current stage began */
} gkd_pace;

/* Before a parallel region of `threads` threads: this call's shares, from
 * the rates measured for that team size (even shares until measured). */
void gkd_pace_begin(gkd_pace *p, int threads);

/* Each thread, first thing in the region. */
void gkd_pace_start(gkd_pace *p);

/* Each thread, at the end of a stage: its work time is recorded, then all
 * threads meet at a barrier. */
void gkd_pace_stage_end(gkd_pace *p);

/* After the region: the rates take this call's measurements (a call in
 * which some thread did no timed work leaves them as they were). */
void gkd_pace_end(gkd_pace *p);

/* One measurement of a team of `threads`, for work shared outside the
 * begin/stage/end cycle: thread k did done[k] of the work (any unit, the
 * same for all threads) in seconds[k]. The rate done/seconds enters the
 * smoothed rates with weight new_weight; the first measurement for a team
 * size replaces them. Nothing changes when some seconds[k] <= 0 (a thread
 * that did not run). gkd_pace_end is this with the call's shares, its work
 * times and a weight of 1/4. */
void gkd_pace_note(gkd_pace *p, int threads, const double *done, const double *seconds,
                   double new_weight);

/* The smoothed rates for a team of `threads`, or NULL until measured. */
const double *gkd_pace_rates(const gkd_pace *p, int threads);

/* Tests: sets the rates for a team of `threads` as if measured. */
void gkd_pace_set_rates(gkd_pace *p, int threads, const double *rate);

/* Items [*i0, *i1) of 0 .. n-1 for thread me of nth: contiguous, in
 * thread order, sized by this call's shares; even shares (as
 * gkd_team_share) when p is NULL or the team is not the size begun with. */
void gkd_pace_range(const gkd_pace *p, int n, int nth, int me, int *i0, int *i1);

#endif
