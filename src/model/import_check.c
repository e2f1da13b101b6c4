/* The check every imported value passes before a model is handed out: a
 * finite value of magnitude at most GKD_CHECKPOINT_MAX_ABS_WEIGHT, as
 * gkd's own checkpoints (checkpoint.h says why). */
#include <math.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "model/model_io_internal.h"

int gkd_import_check_values(const float *v, size_t n, const char *where, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return gkd_error(GKD_EFORMAT, "%s: tensor %s[%zu] is %s", where, name, i, isnan(v[i]) ? "NaN" : "infinite");
        if (fabsf(v[i]) > GKD_CHECKPOINT_MAX_ABS_WEIGHT)
            return gkd_error(GKD_EFORMAT, "%s: tensor %s[%zu] is %.9g, beyond the bound |w| <= %g that no trained model reaches",
                             where, name, i, (double)v[i], (double)GKD_CHECKPOINT_MAX_ABS_WEIGHT);
    }
    return 0;
}
