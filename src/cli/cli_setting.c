/* Flags that set an experiment-file setting take its range from the
 * experiment schema: one table for both, so they cannot drift. */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/parse.h"

int cli_parse_setting_double(double *out, const char *v, const char *key, const char *flag) {
    gkd_setting_range r;
    int rc = gkd_experiment_setting_range(key, &r);
    if (rc) return rc;
    double d;
    /* Not a number: the parser's own message. */
    if ((rc = gkd_parse_double(&d, v, -INFINITY, INFINITY, flag))) return rc;
    if (!gkd_setting_range_holds(&r, d)) {
        char range[96];
        gkd_setting_range_text(&r, range, sizeof range);
        return gkd_error(GKD_EINVAL, "%s: %s is out of range %s (as %s in experiment files)", flag, v, range, key);
    }
    *out = d;
    return 0;
}

int cli_parse_setting_long(long *out, const char *v, const char *key, const char *flag) {
    gkd_setting_range r;
    int rc = gkd_experiment_setting_range(key, &r);
    if (rc) return rc;
    /* Integer settings have closed ranges, as experiment files read them. */
    long lo = (long)r.min, hi = (long)r.max;
    long n;
    /* Not an integer: the parser's own message. */
    if ((rc = gkd_parse_long(&n, v, LONG_MIN, LONG_MAX, flag))) return rc;
    if (n < lo || n > hi)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%ld, %ld] (as %s in experiment files)", flag, v, lo, hi,
                         key);
    *out = n;
    return 0;
}
