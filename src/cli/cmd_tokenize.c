/* gkd tokenize: text to ids and back with a subword tokenizer's files
 * (docs/tokenizers.md) or the tokenizer a gkd checkpoint stores. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/subword.h"
#include "gkd/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd tokenize --tokenizer FILE_OR_DIR [--text FILE] [--decode]\n"
            "Reads lines from --text (or standard input) and prints, for each, its token\n"
            "ids separated by spaces; with --decode, reads lines of ids and prints their\n"
            "text. FILE_OR_DIR: a directory or file of vocab.json + merges.txt, encoder.json +\n"
            "vocab.bpe, tokenizer.json or tokenizer.bin (special tokens in the text are\n"
            "ordinary text), or a gkd checkpoint (the tokenizer it stores).\n");
}

/* A subword tokenizer (from its files, or the one a checkpoint stores) or
 * a checkpoint's char/byte tokenizer. */
typedef struct {
    const gkd_subword *sw;
    gkd_subword *own_sw; /* loaded from files */
    gkd_tokenizer *tok;
} any_tok;

static int is_checkpoint(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char m[8] = {0};
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(m, GKD_CHECKPOINT_MAGIC, 8);
}

static int load(any_tok *t, const char *path) {
    if (!is_checkpoint(path)) {
        if (gkd_subword_load(&t->own_sw, path)) return cli_fail("tokenize");
        t->sw = t->own_sw;
        return 0;
    }
    gkd_checkpoint_data d;
    if (gkd_checkpoint_load(&d, path, NULL)) return cli_fail("tokenize");
    t->tok = d.tokenizer;
    d.tokenizer = NULL;
    gkd_checkpoint_data_free(&d);
    if (!t->tok) {
        fprintf(stderr, "gkd tokenize: %s stores no tokenizer\n", path);
        return 1;
    }
    t->sw = gkd_tokenizer_subword(t->tok); /* the reference's own encoding, not the pipeline's layout */
    return 0;
}

static int vocab_size(const any_tok *t) {
    return t->sw ? gkd_subword_vocab_size(t->sw) : gkd_tokenizer_vocab_size(t->tok);
}

/* Make room for n elements of size sz in *buf (capacity *cap). */
static int grow(void *buf, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < n) c *= 2;
    void *p = realloc(*(void **)buf, c * sz);
    if (!p) {
        fprintf(stderr, "gkd tokenize: out of memory\n");
        return 1;
    }
    *(void **)buf = p;
    *cap = c;
    return 0;
}

static int encode_line(const any_tok *t, const char *where, long lineno, const char *s, size_t len, int **ids,
                       size_t *cap) {
    if (grow(ids, cap, len + 16, sizeof **ids)) return 1;
    int n = 0, rc;
    if (t->sw) {
        rc = gkd_subword_encode(t->sw, s, len, *ids, (int)*cap, &n);
    } else if (memchr(s, '\0', len)) {
        fprintf(stderr, "gkd tokenize: %s:%ld: a NUL byte, which this tokenizer cannot encode\n", where, lineno);
        return 1;
    } else {
        rc = gkd_tokenizer_encode(t->tok, s, *ids, (int)*cap, &n);
    }
    if (rc) {
        fprintf(stderr, "gkd tokenize: %s:%ld: %s\n", where, lineno, gkd_last_error());
        return 1;
    }
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", (*ids)[i]);
    putchar('\n');
    return 0;
}

static int decode_line(const any_tok *t, const char *where, long lineno, const char *s, size_t len, int **ids,
                       size_t *cap, char **out, size_t *out_cap) {
    size_t n = 0;
    const int V = vocab_size(t);
    for (size_t i = 0; i < len;) {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
            i++;
            continue;
        }
        size_t j = i;
        long v = 0;
        while (j < len && s[j] >= '0' && s[j] <= '9' && v <= V) v = v * 10 + (s[j++] - '0');
        while (j < len && s[j] >= '0' && s[j] <= '9') j++;
        if (j == i || (j < len && s[j] != ' ' && s[j] != '\t' && s[j] != '\r')) {
            size_t e = j;
            while (e < len && s[e] != ' ' && s[e] != '\t') e++;
            fprintf(stderr, "gkd tokenize: %s:%ld: '%.*s' is not a token id\n", where, lineno,
                    (int)(e - i < 40 ? e - i : 40), s + i);
            return 1;
        }
        if (v >= V) {
            fprintf(stderr, "gkd tokenize: %s:%ld: id %.*s is outside the vocabulary (0..%d)\n", where, lineno,
                    (int)(j - i < 40 ? j - i : 40), s + i, V - 1);
            return 1;
        }
        if (grow(ids, cap, n + 1, sizeof **ids)) return 1;
        (*ids)[n++] = (int)v;
        i = j;
    }
    size_t got = 0;
    if (t->sw) {
        if (gkd_subword_decode(t->sw, *ids, (int)n, NULL, 0, &got) && got == 0 && n) {
            fprintf(stderr, "gkd tokenize: %s:%ld: %s\n", where, lineno, gkd_last_error());
            return 1;
        }
        if (grow(out, out_cap, got + 1, 1)) return 1;
        if (gkd_subword_decode(t->sw, *ids, (int)n, *out, *out_cap, &got)) {
            fprintf(stderr, "gkd tokenize: %s:%ld: %s\n", where, lineno, gkd_last_error());
            return 1;
        }
    } else {
        if (grow(out, out_cap, 4 * n + 1, 1)) return 1;
        got = gkd_tokenizer_decode(t->tok, *ids, (int)n, *out, *out_cap);
    }
    fwrite(*out, 1, got, stdout);
    putchar('\n');
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *text_path = NULL, *v;
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((v = cli_flag(argc, argv, &i, "--tokenizer", &err))) { tok_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--text", &err))) { text_path = v; continue; }
        if (err) return 2;
        if (!strcmp(argv[i], "--decode")) { decode = 1; continue; }
        fprintf(stderr, "gkd tokenize: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!tok_path) {
        fprintf(stderr, "gkd tokenize: --tokenizer is required\n");
        usage(stderr);
        return 2;
    }
    any_tok t = {0};
    if (load(&t, tok_path)) return 1;
    FILE *in = stdin;
    const char *where = "stdin";
    if (text_path) {
        in = fopen(text_path, "rb");
        where = text_path;
        if (!in) {
            fprintf(stderr, "gkd tokenize: %s: %s\n", text_path, strerror(errno));
            gkd_subword_free(t.own_sw);
            gkd_tokenizer_free(t.tok);
            return 1;
        }
    }
    char *line = NULL, *out = NULL;
    size_t line_cap = 0, ids_cap = 0, out_cap = 0;
    int *ids = NULL, rc = 0;
    long lineno = 0;
    ssize_t r;
    while ((r = getline(&line, &line_cap, in)) >= 0) {
        lineno++;
        size_t len = (size_t)r;
        if (len && line[len - 1] == '\n') line[--len] = '\0'; /* a checkpoint's tokenizer reads to the NUL */
        rc = decode ? decode_line(&t, where, lineno, line, len, &ids, &ids_cap, &out, &out_cap)
                    : encode_line(&t, where, lineno, line, len, &ids, &ids_cap);
        if (rc) break;
    }
    if (!rc && ferror(in)) {
        fprintf(stderr, "gkd tokenize: %s: read failed\n", where);
        rc = 1;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "gkd tokenize: writing the output failed: %s\n", strerror(errno));
        rc = 1;
    }
    if (in != stdin) fclose(in);
    free(line);
    free(ids);
    free(out);
    gkd_subword_free(t.own_sw);
    gkd_tokenizer_free(t.tok);
    return rc;
}
