#include "gkd/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "gkd/error.h"

int gkd_parse_long(long *out, const char *s, long min, long max, const char *what) {
    if (!s || !*s) return gkd_error(GKD_EINVAL, "%s: expected an integer, got an empty value", what);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0') return gkd_error(GKD_EINVAL, "%s: '%s' is not an integer", what, s);
    if (errno == ERANGE || v < min || v > max)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%ld, %ld]", what, s, min, max);
    *out = v;
    return 0;
}

int gkd_parse_double(double *out, const char *s, double min, double max, const char *what) {
    if (!s || !*s) return gkd_error(GKD_EINVAL, "%s: expected a number, got an empty value", what);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0') return gkd_error(GKD_EINVAL, "%s: '%s' is not a number", what, s);
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%g, %g]", what, s, min, max);
    *out = v;
    return 0;
}
