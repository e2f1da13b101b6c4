/* Loading a model from any format gkd reads (include/gkd/model_source.h). */
#include "gkd/model_source.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/error.h"
#include "gkd/model_io.h"
#include "gkd/tokenizer.h"

static int is_regular(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The directory an imported model's tokenizer files would be in: the
 * model's directory, or the one holding the model file. */
static void tokenizer_dir(char *dir, size_t cap, const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, cap, "%s", path);
        return;
    }
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else if (slash == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

static int has_tokenizer_files(const char *dir) {
    return is_regular(dir, "tokenizer.json") || is_regular(dir, "tokenizer.bin") ||
           (is_regular(dir, "vocab.json") && is_regular(dir, "merges.txt")) ||
           (is_regular(dir, "encoder.json") && is_regular(dir, "vocab.bpe"));
}

int gkd_model_source_tokenizer(gkd_tokenizer **out, const char *path, int vocab_size) {
    *out = NULL;
    char dir[4096];
    tokenizer_dir(dir, sizeof dir, path);
    if (!has_tokenizer_files(dir)) return 0;
    int rc = gkd_tokenizer_new_subword(out, dir);
    if (rc) return gkd_error_wrap(rc, "%s: the tokenizer beside the model", path);
    if (gkd_tokenizer_vocab_size(*out) <= vocab_size) return 0;
    rc = gkd_error(GKD_EMISMATCH, "%s: the tokenizer beside the model has %d tokens, the model only %d", path,
                   gkd_tokenizer_vocab_size(*out), vocab_size);
    gkd_tokenizer_free(*out);
    *out = NULL;
    return rc;
}

int gkd_model_source_load(gkd_checkpoint_data *out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "model load: NULL argument");
    memset(out, 0, sizeof *out);
    gkd_model_format fmt;
    int rc = gkd_model_detect(&fmt, path);
    if (rc) return rc;
    if (fmt == GKD_MODEL_FORMAT_GKD) return gkd_checkpoint_load(out, path, NULL);
    if ((rc = gkd_model_import(&out->model, path, NULL))) return rc;
    out->owns_model = 1;
    if ((rc = gkd_model_source_tokenizer(&out->tokenizer, path, out->model->config.vocab_size)))
        gkd_checkpoint_data_free(out);
    return rc;
}

int gkd_model_source_check_vocab(int vocab_size, const gkd_tokenizer *tok, const char *what,
                                 const char *path) {
    const int want = gkd_tokenizer_vocab_size(tok);
    if (vocab_size == want) return 0;
    /* A pretrained model's embedding may be padded beyond its tokenizer's
     * ids; the padding ids are never encoded and decode to nothing. */
    if (gkd_tokenizer_kind_of(tok) == GKD_TOKENIZER_SUBWORD && vocab_size > want) return 0;
    return gkd_error(GKD_EMISMATCH,
                     "%s: %s has a vocabulary of %d tokens and no tokenizer of its own; the task's "
                     "tokenizer has %d, and an imported model runs only with a tokenizer of its "
                     "vocabulary",
                     what, path, vocab_size, want);
}
