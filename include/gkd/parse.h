/* Strict number parsing for command lines and files: the whole string must
 * be a number in range (strtol/strtod with an end pointer, never atoi). */
#ifndef GKD_PARSE_H
#define GKD_PARSE_H

#ifdef __cplusplus
extern "C" {
#endif

/** 0 on success; GKD_EINVAL with a message naming `what` otherwise. */
int gkd_parse_long(long *out, const char *s, long min, long max, const char *what);
int gkd_parse_double(double *out, const char *s, double min, double max, const char *what);

#ifdef __cplusplus
}
#endif

#endif
