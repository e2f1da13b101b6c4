/* Wall-clock time for timing columns (never for anything that changes bits). */
#ifndef GKD_UTIL_CLOCK_H
#define GKD_UTIL_CLOCK_H

/** Seconds on the monotonic clock. */
double gkd_now(void);

#endif
