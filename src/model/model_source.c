/* Loading a model from any format gkd reads (include/gkd/model_source.h). */
#include "gkd/model_source.h"

#include <string.h>

#include "gkd/error.h"
#include "gkd/model_io.h"
#include "gkd/tokenizer.h"

int gkd_model_source_load(gkd_checkpoint_data *out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "model load: NULL argument");
    memset(out, 0, sizeof *out);
    gkd_model_format fmt;
    int rc = gkd_model_detect(&fmt, path);
    if (rc) return rc;
    if (fmt == GKD_MODEL_FORMAT_GKD) return gkd_checkpoint_load(out, path, NULL);
    if ((rc = gkd_model_import(&out->model, path, NULL))) return rc;
    out->owns_model = 1;
    return 0;
}

int gkd_model_source_check_vocab(int vocab_size, const gkd_tokenizer *tok, const char *what,
                                 const char *path) {
    const int want = gkd_tokenizer_vocab_size(tok);
    if (vocab_size == want) return 0;
    return gkd_error(GKD_EMISMATCH,
                     "%s: %s has a vocabulary of %d tokens and no tokenizer of its own; the task's "
                     "tokenizer has %d, and an imported model runs only with a tokenizer of its "
                     "vocabulary",
                     what, path, vocab_size, want);
}
