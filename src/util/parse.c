#include "gkd/parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

/* s as it goes into a one-line message: CR and other controls (a value
 * read from a file may hold them) shown as '?', cut after 200 bytes. */
static const char *shown(char out[208], const char *s) {
    snprintf(out, 208, "%.200s%s", s, strlen(s) > 200 ? "..." : "");
    for (char *c = out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return out;
}

int gkd_parse_long(long *out, const char *s, long min, long max, const char *what) {
    if (!s || !*s) return gkd_error(GKD_EINVAL, "%s: expected an integer, got an empty value", what);
    char *end;
    errno = 0;
    char buf[208];
    long v = strtol(s, &end, 10);
    if (*end != '\0') return gkd_error(GKD_EINVAL, "%s: '%s' is not an integer", what, shown(buf, s));
    if (errno == ERANGE || v < min || v > max)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%ld, %ld]", what, shown(buf, s), min, max);
    *out = v;
    return 0;
}

int gkd_parse_double(double *out, const char *s, double min, double max, const char *what) {
    if (!s || !*s) return gkd_error(GKD_EINVAL, "%s: expected a number, got an empty value", what);
    char *end;
    errno = 0;
    char buf[208];
    double v = strtod(s, &end);
    if (*end != '\0') return gkd_error(GKD_EINVAL, "%s: '%s' is not a number", what, shown(buf, s));
    if (errno == ERANGE || !isfinite(v) || v < min || v > max)
        return gkd_error(GKD_EINVAL, "%s: %s is out of range [%g, %g]", what, shown(buf, s), min, max);
    *out = v;
    return 0;
}
