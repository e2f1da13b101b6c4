/* Flags that set an experiment-file setting take its range from the
 * experiment schema: one table for both, so they cannot drift. */
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/experiment.h"
#include "gkd/parse.h"

/* "[0, 10]", "(0, 10]", ... */
static void range_text(char *out, size_t cap, const gkd_setting_range *r) {
    snprintf(out, cap, "%c%g, %g%c", r->open_min ? '(' : '[', r->min, r->max, r->open_max ? ')' : ']');
}

int cli_parse_setting_double(double *out, const char *v, const char *key, const char *flag) {
    gkd_setting_range r;
    int rc = gkd_experiment_setting_range(key, &r);
    if (rc) return rc;
    double d;
    /* Not a number: the parser's own message. */
    if ((rc = gkd_parse_double(&d, v, -INFINITY, INFINITY, flag))) return rc;
    if (d < r.min || d > r.max || (r.open_min && d == r.min) || (r.open_max && d == r.max)) {
        char range[96];
        range_text(range, sizeof range, &r);
        return gkd_error(GKD_EINVAL, "%s: %s is out of range %s (as %s in experiment files)", flag, v, range, key);
    }
    *out = d;
    return 0;
}

int cli_parse_setting_long(long *out, const char *v, const char *key, const char *flag) {
    gkd_setting_range r;
    int rc = gkd_experiment_setting_range(key, &r);
    if (rc) return rc;
    long lo = (long)ceil(r.min) + (r.open_min && ceil(r.min) == r.min),
         hi = r.max >= 9.2e18 ? 9223372036854775807L : (long)floor(r.max) - (r.open_max && floor(r.max) == r.max);
    long n;
    /* Not an integer: the parser's own message. */
    if ((rc = gkd_parse_long(&n, v, LONG_MIN, LONG_MAX, flag))) return rc;
    if (n < lo || n > hi)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%ld, %ld] (as %s in experiment files)", flag, v, lo, hi,
                         key);
    *out = n;
    return 0;
}
