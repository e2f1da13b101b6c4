/* The common part of the subword tokenizers (include/gkd/subword.h): the
 * dispatch to a kind by the files' contents, and the calls every kind
 * answers through subword_internal.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/error.h"
#include "subword_internal.h"

/* Whether dir/name is a regular file. */
static int has_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Whether a Hugging Face tokenizer.json uses the byte-level pre-tokenizer
 * (GPT-2 style) rather than SentencePiece's space marker: the text
 * "ByteLevel" appears in it (as a pre_tokenizer or decoder type) only
 * then. Read up to 64 MiB; the kind's loader parses the whole file. */
static int json_is_bytelevel(const char *path, int *yes) {
    FILE *f = fopen(path, "rb");
    if (!f) return gkd_error(GKD_EIO, "tokenizer %s: cannot open: %s", path, strerror(errno));
    const size_t cap = (size_t)64 << 20;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return gkd_error(GKD_ENOMEM, "tokenizer %s: out of memory", path);
    }
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = '\0';
    *yes = strstr(buf, "\"ByteLevel\"") != NULL;
    free(buf);
    return 0;
}

int gkd_subword_load(gkd_subword **out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "tokenizer: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "tokenizer %s: %s", path, strerror(errno));
    char json[4096];
    if (S_ISDIR(st.st_mode)) {
        if (has_file(path, "vocab.json") || has_file(path, "encoder.json"))
            return gkd_subword_load_bytelevel(out, path);
        if (has_file(path, "tokenizer.bin")) return gkd_subword_load_spm(out, path);
        if (!has_file(path, "tokenizer.json"))
            return gkd_error(GKD_EFORMAT,
                             "tokenizer %s: no tokenizer files (vocab.json + merges.txt, encoder.json + "
                             "vocab.bpe, tokenizer.json or tokenizer.bin)",
                             path);
        if (snprintf(json, sizeof json, "%s/tokenizer.json", path) >= (int)sizeof json)
            return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
    } else {
        const char *b = base_name(path);
        if (!strcmp(b, "vocab.json") || !strcmp(b, "merges.txt") || !strcmp(b, "encoder.json") ||
            !strcmp(b, "vocab.bpe"))
            return gkd_subword_load_bytelevel(out, path);
        const size_t n = strlen(b);
        if (n < 5 || strcmp(b + n - 5, ".json")) return gkd_subword_load_spm(out, path);
        if (snprintf(json, sizeof json, "%s", path) >= (int)sizeof json)
            return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
    }
    int bytelevel = 0, rc = json_is_bytelevel(json, &bytelevel);
    if (rc) return rc;
    return bytelevel ? gkd_subword_load_bytelevel(out, path) : gkd_subword_load_spm(out, path);
}

void gkd_subword_free(gkd_subword *t) {
    if (!t) return;
    if (t->free_impl) t->free_impl(t->impl);
    free(t);
}

gkd_subword_kind gkd_subword_kind_of(const gkd_subword *t) { return t->kind; }
int gkd_subword_vocab_size(const gkd_subword *t) { return t->vocab_size; }
int gkd_subword_bos(const gkd_subword *t) { return t->bos; }
int gkd_subword_eos(const gkd_subword *t) { return t->eos; }

int gkd_subword_encode(const gkd_subword *t, const char *text, size_t len, int *ids, int cap, int *n_out) {
    if (!t || (!text && len) || (!ids && cap) || cap < 0 || !n_out)
        return gkd_error(GKD_EINVAL, "tokenizer encode: bad argument");
    return t->encode(t->impl, text, len, ids, cap, n_out);
}

int gkd_subword_decode(const gkd_subword *t, const int *ids, int n, char *out, size_t cap, size_t *len_out) {
    if (!t || (!ids && n) || n < 0 || (!out && cap) || !len_out)
        return gkd_error(GKD_EINVAL, "tokenizer decode: bad argument");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return gkd_error(GKD_EINVAL, "tokenizer decode: id %d at %d outside the vocabulary (%d)", ids[i], i,
                             t->vocab_size);
    return t->decode(t->impl, ids, n, out, cap, len_out);
}
