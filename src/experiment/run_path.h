/* Private to src/experiment: paths inside a results tree. */
#ifndef GKD_RUN_PATH_H
#define GKD_RUN_PATH_H

#include <stdio.h>

#include "gkd/error.h"

#define RUN_PATH_CAP 4096

/* out = dir/name; paths longer than RUN_PATH_CAP are refused, never cut. */
static inline int run_path_join(char out[RUN_PATH_CAP], const char *dir, const char *name) {
    int n = snprintf(out, RUN_PATH_CAP, "%s/%s", dir, name);
    if (n < 0 || n >= RUN_PATH_CAP) return gkd_error(GKD_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

#endif
