/* Writing a subword tokenizer's source files back out
 * (gkd_subword_write_files, include/gkd/subword.h): what gkd export puts
 * beside a model so that the export carries its tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "subword_internal.h"

int gkd_subword_write_files(const gkd_subword *t, const char *dir) {
    if (!t || !dir) return gkd_error(GKD_EINVAL, "tokenizer write: NULL argument");
    char path[4096];
    /* Every file is checked before any is written: a refusal leaves dir as it was. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < t->n_src; i++) {
            const gkd_subword_source *s = &t->src[i];
            if (snprintf(path, sizeof path, "%s/%s", dir, s->name) >= (int)sizeof path)
                return gkd_error(GKD_EINVAL, "%s: path too long", dir);
            if (pass == 0) {
                if (!gkd_path_exists(path)) continue;
                char *old = NULL;
                size_t len = 0;
                int rc = gkd_file_read(&old, &len, path);
                if (rc) return rc;
                const int same = len == s->len && !memcmp(old, s->data, len);
                free(old);
                if (!same)
                    return gkd_error(GKD_EMISMATCH, "%s exists with other contents than the model's tokenizer %s",
                                     path, s->name);
            } else if (!gkd_path_exists(path)) {
                int rc = gkd_file_write_atomic(path, s->data, s->len);
                if (rc) return rc;
            }
        }
    return 0;
}
