/* Subword tokenizers from files (gkd_subword_load): which files a path
 * names, read into memory once each, then parsed by their kind
 * (subword_sources.c). The kind of a tokenizer.json is told by its
 * contents. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "subword_internal.h"

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* out = a "/" b, or a alone when b is NULL; 0 if it did not fit. */
static int join(char *out, size_t cap, const char *a, const char *b) {
    int r = b ? snprintf(out, cap, "%s/%s", a, b) : snprintf(out, cap, "%s", a);
    return r >= 0 && (size_t)r < cap;
}

/* Read the file at path (at most GKD_SUBWORD_MAX_FILE bytes) as the
 * source named by its base name if known, into a buffer of its own size. */
static int read_source(gkd_subword_source *src, const char *path) {
    struct stat st;
    memset(src, 0, sizeof *src);
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "tokenizer %s: %s", path, strerror(errno));
    if ((unsigned long long)st.st_size > GKD_SUBWORD_MAX_FILE)
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %lld bytes, more than the 256 MiB allowed", path,
                         (long long)st.st_size);
    const char *b = base_name(path);
    src->name = gkd_subword_file_name(b, strlen(b)); /* a single file's callers name it */
    int rc = gkd_file_read(&src->data, &src->len, path);
    if (rc) return gkd_error_wrap(rc, "tokenizer");
    if (src->len > GKD_SUBWORD_MAX_FILE) {
        free(src->data);
        src->data = NULL;
        return gkd_error(GKD_EFORMAT, "tokenizer %s: %zu bytes, more than the 256 MiB allowed", path, src->len);
    }
    char *fit = realloc(src->data, src->len + 1); /* the reader's buffer may be twice the file */
    if (fit) src->data = fit;
    src->label = path;
    return 0;
}

/* Read the files (paths[0..n)) and parse them as kind; name_as (if not
 * NULL) is the name of a single file whatever its path. */
static int load_files(gkd_subword **out, gkd_subword_kind kind, const char *const *paths, int n, const char *name_as) {
    gkd_subword_source src[GKD_SUBWORD_MAX_SOURCES] = {{0}};
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) rc = read_source(&src[i], paths[i]);
    if (rc) {
        for (int i = 0; i < n; i++) free(src[i].data);
        return rc;
    }
    if (name_as) src[0].name = name_as;
    return gkd_subword_from_sources(out, kind, src, n);
}

int gkd_subword_load_bytelevel(gkd_subword **out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "tokenizer: NULL argument");
    *out = NULL;
    char vocab[4096], merges[4096], dir[4096];
    const char *json = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "tokenizer %s: %s", path, strerror(errno));
    if (strlen(path) + 16 >= sizeof dir) return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
    if (S_ISDIR(st.st_mode)) {
        join(dir, sizeof dir, path, NULL);
        static const char *pairs[2][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
        int found = 0;
        for (int k = 0; k < 2 && !found; k++) {
            if (join(vocab, sizeof vocab, dir, pairs[k][0]) && join(merges, sizeof merges, dir, pairs[k][1]) &&
                (is_file(vocab) || is_file(merges)))
                found = 1;
        }
        if (!found) {
            if (!join(vocab, sizeof vocab, dir, "tokenizer.json") || !is_file(vocab))
                return gkd_error(GKD_EFORMAT,
                                 "tokenizer %s: no vocab.json + merges.txt, encoder.json + vocab.bpe or tokenizer.json",
                                 path);
            json = vocab;
        }
    } else {
        const char *slash = strrchr(path, '/'), *b = slash ? slash + 1 : path;
        if (slash) memcpy(dir, path, (size_t)(slash - path)), dir[slash - path] = '\0';
        else strcpy(dir, ".");
        static const char *pairs[4][2] = {
            {"vocab.json", "merges.txt"}, {"merges.txt", "vocab.json"}, {"encoder.json", "vocab.bpe"}, {"vocab.bpe", "encoder.json"}};
        int k = 0;
        while (k < 4 && strcmp(b, pairs[k][0])) k++;
        if (k == 4) {
            json = path;
        } else {
            join(k % 2 ? merges : vocab, sizeof vocab, path, NULL);
            join(k % 2 ? vocab : merges, sizeof vocab, dir, pairs[k][1]);
        }
    }
    if (json) return load_files(out, GKD_SUBWORD_BYTELEVEL, &json, 1, "tokenizer.json");
    const char *missing = !is_file(vocab) ? vocab : !is_file(merges) ? merges : NULL;
    if (missing) return gkd_error(GKD_EIO, "tokenizer %s: %s is missing", path, missing);
    const char *paths[2] = {vocab, merges};
    return load_files(out, GKD_SUBWORD_BYTELEVEL, paths, 2, NULL);
}

int gkd_subword_load_spm(gkd_subword **out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "tokenizer: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "tokenizer %s: %s", path, strerror(errno));
    char p[4096];
    const char *one = p;
    if (S_ISDIR(st.st_mode)) {
        if (snprintf(p, sizeof p, "%s/tokenizer.bin", path) >= (int)sizeof p)
            return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
        if (!is_file(p)) snprintf(p, sizeof p, "%s/tokenizer.json", path);
    } else {
        one = path;
    }
    size_t n = strlen(one);
    int json = n >= 5 && !strcmp(one + n - 5, ".json");
    return load_files(out, GKD_SUBWORD_SPM, &one, 1, json ? "tokenizer.json" : "tokenizer.bin");
}

/* Whether the bytes of a Hugging Face tokenizer.json use the byte-level
 * pre-tokenizer (GPT-2 style) rather than SentencePiece's space marker:
 * the text "ByteLevel" appears in it (as a pre_tokenizer or decoder type)
 * only then. */
static int json_is_bytelevel(const char *s, size_t n) {
    static const char key[] = "\"ByteLevel\"";
    const size_t k = sizeof key - 1;
    for (size_t i = 0; i + k <= n; i++)
        if (s[i] == '"' && !memcmp(s + i, key, k)) return 1;
    return 0;
}

int gkd_subword_load(gkd_subword **out, const char *path) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "tokenizer: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "tokenizer %s: %s", path, strerror(errno));
    char json[4096], p[4096];
    if (S_ISDIR(st.st_mode)) {
        int has[4];
        static const char *names[4] = {"vocab.json", "encoder.json", "tokenizer.bin", "tokenizer.json"};
        for (int i = 0; i < 4; i++) has[i] = join(p, sizeof p, path, names[i]) && is_file(p);
        if (has[0] || has[1]) return gkd_subword_load_bytelevel(out, path);
        if (has[2]) return gkd_subword_load_spm(out, path);
        if (!has[3])
            return gkd_error(GKD_EFORMAT,
                             "tokenizer %s: no tokenizer files (vocab.json + merges.txt, encoder.json + "
                             "vocab.bpe, tokenizer.json or tokenizer.bin)",
                             path);
        if (!join(json, sizeof json, path, "tokenizer.json"))
            return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
    } else {
        const char *b = base_name(path);
        if (!strcmp(b, "vocab.json") || !strcmp(b, "merges.txt") || !strcmp(b, "encoder.json") ||
            !strcmp(b, "vocab.bpe"))
            return gkd_subword_load_bytelevel(out, path);
        const size_t n = strlen(b);
        if (n < 5 || strcmp(b + n - 5, ".json")) return gkd_subword_load_spm(out, path);
        if (!join(json, sizeof json, path, NULL)) return gkd_error(GKD_EINVAL, "tokenizer %s: path too long", path);
    }
    /* A tokenizer.json is read once: its bytes tell the kind, then parse. */
    gkd_subword_source src;
    int rc = read_source(&src, json);
    if (rc) return rc;
    src.name = "tokenizer.json";
    return gkd_subword_from_sources(out, json_is_bytelevel(src.data, src.len) ? GKD_SUBWORD_BYTELEVEL : GKD_SUBWORD_SPM,
                                    &src, 1);
}
