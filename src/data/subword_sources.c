/* The files a subword tokenizer is parsed from: the known names, the sets
 * each kind reads, and the hand-over to the kind's parser. The tokenizer
 * keeps the files' bytes, so that it serializes as them
 * (subword_blob.c). */
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "subword_internal.h"

static const char *const file_names[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json",
                                         "tokenizer.bin"};

const char *gkd_subword_file_name(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof file_names / sizeof file_names[0]; i++)
        if (strlen(file_names[i]) == n && !memcmp(file_names[i], name, n)) return file_names[i];
    return NULL;
}

/* Whether src[0..n) is a set of files of kind, in order. */
static int known_set(gkd_subword_kind kind, const gkd_subword_source *src, int n) {
    if (n == 1 && !strcmp(src[0].name, "tokenizer.json")) return kind == GKD_SUBWORD_BYTELEVEL || kind == GKD_SUBWORD_SPM;
    if (n == 1 && !strcmp(src[0].name, "tokenizer.bin")) return kind == GKD_SUBWORD_SPM;
    if (n != 2 || kind != GKD_SUBWORD_BYTELEVEL) return 0;
    return (!strcmp(src[0].name, "vocab.json") && !strcmp(src[1].name, "merges.txt")) ||
           (!strcmp(src[0].name, "encoder.json") && !strcmp(src[1].name, "vocab.bpe"));
}

int gkd_subword_from_sources(gkd_subword **out, gkd_subword_kind kind, gkd_subword_source *src, int n) {
    *out = NULL;
    int rc;
    if (n < 1 || n > GKD_SUBWORD_MAX_SOURCES || !known_set(kind, src, n))
        rc = gkd_error(GKD_EFORMAT, "tokenizer %s: not a set of files a %s tokenizer is read from",
                       n >= 1 ? src[0].label : "(no files)", gkd_subword_kind_name(kind));
    else if (kind == GKD_SUBWORD_BYTELEVEL)
        rc = gkd_subword_parse_bytelevel(out, &src[0], n == 2 ? &src[1] : NULL);
    else
        rc = gkd_subword_parse_spm(out, &src[0]);
    for (int i = 0; i < n; i++) {
        if (!rc) {
            (*out)->src[i] = src[i];
            (*out)->src[i].label = NULL;
        } else {
            free(src[i].data);
        }
        src[i].data = NULL;
    }
    if (!rc) (*out)->n_src = n;
    return rc;
}
