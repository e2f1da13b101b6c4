/* gkd score: the mean next-token negative log-likelihood of a model on
 * token sequences, over all scored positions and per sequence. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/model_io.h"
#include "gkd/model_source.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd score --model MODEL (--ids FILE | --text FILE) [--csv]\n"
            "MODEL is a gkd checkpoint, a llama2.c .bin file or a Hugging Face directory\n"
            "(config.json and model.safetensors). --ids: one sequence per line, token ids\n"
            "separated by spaces; --text: one text per line, encoded as BOS + its tokens\n"
            "with the model's tokenizer: a gkd checkpoint's, or the tokenizer files beside\n"
            "an imported model (tokenizer.json, vocab.json + merges.txt, tokenizer.bin; no\n"
            "BOS when they define none). The first token of a sequence only conditions: a\n"
            "sequence of n tokens scores positions 1..n-1, -log p(token t | tokens before\n"
            "t), in nats.\n"
            "Prints the mean over every scored position of every sequence and each\n"
            "sequence's mean; --csv prints the same as CSV (line,tokens,scored,nll; the\n"
            "last row, line 'all', is the overall mean). See docs/models.md.\n");
}

typedef struct {
    int *ids;
    int n;
    int line;
} seq;

typedef struct {
    seq *s;
    size_t n, cap;
} seqs;

static void seqs_free(seqs *q) {
    for (size_t i = 0; i < q->n; i++) free(q->s[i].ids);
    free(q->s);
}

static int seqs_add(seqs *q, int *ids, int n, int line) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        seq *s = realloc(q->s, cap * sizeof *s);
        if (!s) {
            free(ids);
            return gkd_error(GKD_ENOMEM, "out of memory for the sequences");
        }
        q->s = s;
        q->cap = cap;
    }
    q->s[q->n++] = (seq){ids, n, line};
    return 0;
}

/* The line's ids (space- or tab-separated decimal integers). */
static int parse_ids(int **out, int *n_out, char *text, const char *path, int line, const gkd_model_config *c) {
    int cap = 16, n = 0, *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return gkd_error(GKD_ENOMEM, "out of memory");
    char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        char *end = p;
        long v = 0;
        int ok = 1;
        while (*end && *end != ' ' && *end != '\t') {
            if (*end < '0' || *end > '9' || v > 100000000L) ok = 0;
            else v = v * 10 + (*end - '0');
            end++;
        }
        char save = *end;
        *end = '\0';
        if (!ok) {
            char shown[40];
            snprintf(shown, sizeof shown, "%.32s", p);
            free(ids);
            return gkd_error(GKD_EINVAL, "%s:%d: '%s' is not a token id (a non-negative integer)", path, line, shown);
        }
        if (v >= c->vocab_size) {
            free(ids);
            return gkd_error(GKD_EINVAL, "%s:%d: id %ld is outside the model's vocabulary [0, %d)", path, line, v,
                             c->vocab_size);
        }
        if (n == c->max_seq_len) {
            free(ids);
            return gkd_error(GKD_EINVAL, "%s:%d: more than %d ids, longer than the model's context", path, line,
                             c->max_seq_len);
        }
        if (n == cap) {
            int *g = realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            if (!g) {
                free(ids);
                return gkd_error(GKD_ENOMEM, "out of memory");
            }
            ids = g;
        }
        ids[n++] = (int)v;
        *end = save;
        p = end;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

/* Lines of path as sequences: ids, or (tok) BOS + the text's tokens.
 * Blank lines are skipped. */
static int read_seqs(seqs *q, const char *path, const gkd_model_config *c, const gkd_tokenizer *tok) {
    char *text = NULL;
    size_t len = 0;
    int rc = gkd_file_read(&text, &len, path);
    if (rc) return rc;
    if (strlen(text) != len) {
        free(text);
        return gkd_error(GKD_EINVAL, "%s: a NUL byte in a text file", path);
    }
    int line = 0;
    for (char *p = text; *p && !rc;) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = '\0';
        if (nl && nl > p && nl[-1] == '\r') nl[-1] = '\0';
        line++;
        int blank = p[strspn(p, " \t")] == '\0';
        if (!blank) {
            int *ids = NULL, n = 0;
            if (tok) {
                ids = malloc((size_t)c->max_seq_len * sizeof *ids);
                if (!ids) {
                    rc = gkd_error(GKD_ENOMEM, "out of memory");
                    break;
                }
                const int bos = gkd_tokenizer_bos(tok), lead = bos >= 0;
                if (lead) ids[0] = bos;
                rc = c->max_seq_len < 2 ? gkd_error(GKD_EINVAL, "the model's context holds one token")
                                        : gkd_tokenizer_encode(tok, p, ids + lead, c->max_seq_len - lead, &n);
                if (rc) {
                    free(ids);
                    rc = gkd_error_wrap(rc, "%s:%d", path, line);
                    break;
                }
                n += lead;
            } else if ((rc = parse_ids(&ids, &n, p, path, line, c)))
                break;
            if (n < 2) {
                free(ids);
                rc = gkd_error(GKD_EINVAL, "%s:%d: %d token%s; a sequence needs 2 (the first only conditions)", path, line,
                               n, n == 1 ? "" : "s");
                break;
            }
            rc = seqs_add(q, ids, n, line);
        }
        p = next;
    }
    free(text);
    if (!rc && q->n == 0) rc = gkd_error(GKD_EINVAL, "%s: no sequences", path);
    return rc;
}

/* Sum of -log softmax(logits[t])[ids[t + 1]] over t = 0..n-2, in double. */
static int score_seq(double *sum, gkd_model *m, const seq *s) {
    int rc = gkd_model_forward(m, s->ids, 1, s->n);
    if (rc) return rc;
    const int V = m->config.vocab_size;
    double total = 0.0;
    for (int t = 0; t + 1 < s->n; t++) {
        const float *l = m->logits + (size_t)t * V;
        double mx = l[0];
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        double z = 0.0;
        for (int v = 0; v < V; v++) z += exp((double)l[v] - mx);
        total += mx + log(z) - (double)l[s->ids[t + 1]];
    }
    *sum = total;
    return 0;
}

int cmd_score(int argc, char **argv) {
    const char *model_path = NULL, *ids_path = NULL, *text_path = NULL, *v;
    int csv = 0;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((v = cli_flag(argc, argv, &i, "--model", &err))) { model_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--ids", &err))) { ids_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--text", &err))) { text_path = v; continue; }
        if (!strcmp(argv[i], "--csv")) { csv = 1; continue; }
        if (err) return 2;
        fprintf(stderr, "gkd score: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!model_path || !ids_path == !text_path) {
        fprintf(stderr, "gkd score: --model and one of --ids or --text are required\n");
        return 2;
    }
    gkd_model *m = NULL;
    gkd_tokenizer *tok = NULL;
    gkd_model_import_info info;
    seqs q = {0};
    double *nll = NULL;
    int status = 1;
    if (text_path) {
        gkd_model_format fmt;
        if (gkd_model_detect(&fmt, model_path)) return cli_fail("score");
        if (fmt != GKD_MODEL_FORMAT_GKD) {
            if (gkd_model_import(&m, model_path, &info) ||
                gkd_model_source_tokenizer(&tok, model_path, m->config.vocab_size)) {
                cli_fail("score");
                goto done;
            }
            if (!tok) {
                fprintf(stderr,
                        "gkd score: --text needs a tokenizer, and beside the %s model %s there is none gkd reads "
                        "(tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.bin); "
                        "add one, or tokenize the text and pass --ids\n",
                        gkd_model_format_name(fmt), model_path);
                status = 2;
                goto done;
            }
        } else {
            if (cli_load("score", model_path, &m, &tok)) return 1;
            memset(&info, 0, sizeof info);
            info.format = fmt;
            snprintf(info.detail, sizeof info.detail, "gkd checkpoint");
        }
    } else if (gkd_model_import(&m, model_path, &info)) {
        return cli_fail("score");
    }
    if (read_seqs(&q, ids_path ? ids_path : text_path, &m->config, tok)) {
        cli_fail("score");
        goto done;
    }
    if (!(nll = malloc(q.n * sizeof *nll))) {
        fprintf(stderr, "gkd score: out of memory\n");
        goto done;
    }
    double total = 0.0;
    long scored = 0, tokens = 0;
    for (size_t i = 0; i < q.n; i++) {
        double sum;
        if (score_seq(&sum, m, &q.s[i])) {
            cli_fail("score");
            goto done;
        }
        nll[i] = sum / (q.s[i].n - 1);
        total += sum;
        scored += q.s[i].n - 1;
        tokens += q.s[i].n;
    }
    const double mean = total / (double)scored;
    if (csv) {
        printf("line,tokens,scored,nll\n");
        for (size_t i = 0; i < q.n; i++) printf("%d,%d,%d,%.9g\n", q.s[i].line, q.s[i].n, q.s[i].n - 1, nll[i]);
        printf("all,%ld,%ld,%.9g\n", tokens, scored, mean);
    } else {
        const gkd_model_config *c = &m->config;
        printf("model %s (%s: %s; %s, %d layers, width %d, vocabulary %d, context %d)\n", model_path,
               gkd_model_format_name(info.format), info.detail, gkd_arch_name(c->arch), c->n_layer, c->n_embd,
               c->vocab_size, c->max_seq_len);
        printf("%6s %7s %7s %12s\n", "line", "tokens", "scored", "nll");
        for (size_t i = 0; i < q.n; i++) printf("%6d %7d %7d %12.6f\n", q.s[i].line, q.s[i].n, q.s[i].n - 1, nll[i]);
        printf("mean nll %.6f nats over %ld scored positions of %zu sequences (perplexity %.4g)\n", mean, scored, q.n,
               exp(mean));
    }
    status = 0;
done:
    free(nll);
    seqs_free(&q);
    gkd_tokenizer_free(tok);
    gkd_model_free(m);
    return status;
}
