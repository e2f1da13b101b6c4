#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/metrics.h"
#include "gkd/parse.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"
#include "helpers.h"

/* NLTK values are printed with 17 significant digits; the C code follows the
 * same operations, so only summation order (NLTK's math.fsum vs long double)
 * and libm rounding separate them: 1e-12 relative is ample and still catches
 * any counting difference (those move values by > 1e-3). */
#define REL_TOL 1e-12

static void assert_close(double got, double want, const char *what) {
    if (want == 0) {
        ck_assert_msg(got == 0, "%s: got %.17g, want 0", what, got);
        return;
    }
    ck_assert_msg(fabs(got - want) <= REL_TOL * fabs(want), "%s: got %.17g, want %.17g (rel %.3g)", what, got,
                  want, fabs(got - want) / fabs(want));
}

/* ---- NLTK fixtures ---- */

static char *unescape(const char *s) {
    char *out = malloc(strlen(s) + 1), *w = out;
    for (; *s; s++) {
        if (*s != '\\') {
            *w++ = *s;
            continue;
        }
        s++;
        *w++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
    }
    *w = 0;
    return out;
}

/* Splits a line at tabs in place; returns the number of fields. */
static int split_tabs(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

static double num(const char *s) {
    double v;
    ck_assert_msg(gkd_parse_double(&v, s, -1e300, 1e300, "fixture value") == 0, "bad number '%s'", s);
    return v;
}

static gkd_metric_unit unit_of(const char *s) {
    ck_assert(strcmp(s, "words") == 0 || strcmp(s, "chars") == 0);
    return strcmp(s, "chars") == 0 ? GKD_UNIT_CHARS : GKD_UNIT_WORDS;
}

/* The fixture's SmoothingFunction method number, through its NLTK name. */
static gkd_bleu_smoothing smoothing_of(const char *s, int corpus) {
    char name[32];
    snprintf(name, sizeof name, "method%s", s);
    gkd_bleu_smoothing sm;
    ck_assert_msg(gkd_bleu_smoothing_parse(&sm, name, corpus) == 0, "%s: %s", name, gkd_last_error());
    ck_assert_int_eq((int)sm, (int)num(s));
    return sm;
}

/* Metrics that can fail must not here: 0 and a value. */
#define OK(call) ck_assert_msg((call) == 0, "%s: %s", #call, gkd_last_error())

#define MAXN 64

typedef struct {
    char name[64];
    char *hyps[MAXN], *refs[4 * MAXN];
    size_t refs_per[MAXN], n_hyp, n_ref;
    char *samples[MAXN];
    size_t n_samples;
} fixture_case;

static void case_reset(fixture_case *c, const char *name) {
    for (size_t i = 0; i < c->n_hyp; i++) free(c->hyps[i]);
    for (size_t i = 0; i < c->n_ref; i++) free(c->refs[i]);
    for (size_t i = 0; i < c->n_samples; i++) free(c->samples[i]);
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
}

START_TEST(test_nltk_fixtures) {
    FILE *f = fopen("tests/fixtures/metrics_ref.tsv", "r");
    ck_assert_msg(f != NULL, "tests/fixtures/metrics_ref.tsv missing (run tools/reference_metrics.py)");
    static fixture_case c;
    memset(&c, 0, sizeof c);
    char line[4096], what[256];
    int checked[7] = {0}; /* bleu, sbleu, chrf, schrf, selfbleu, bleusm, selfbleusm */
    int sbleu_methods = 0;  /* bit k: sentence BLEU checked with methodk */
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || line[0] == 0) continue;
        char *fl[8];
        int nf = split_tabs(line, fl, 8);
        ck_assert_int_ge(nf, 3);
        if (strcmp(c.name, fl[1]) != 0) case_reset(&c, fl[1]);
        snprintf(what, sizeof what, "%s %s", fl[0], fl[1]);
        if (strcmp(fl[0], "pair") == 0) {
            ck_assert_int_eq(nf, 4);
            ck_assert_uint_lt(c.n_hyp, MAXN);
            c.hyps[c.n_hyp] = unescape(fl[2]);
            c.refs[c.n_ref++] = unescape(fl[3]);
            c.refs_per[c.n_hyp++] = 1;
        } else if (strcmp(fl[0], "ref") == 0) {
            ck_assert_uint_eq((size_t)num(fl[2]), c.n_hyp - 1);
            c.refs[c.n_ref++] = unescape(fl[3]);
            c.refs_per[c.n_hyp - 1]++;
        } else if (strcmp(fl[0], "bleu") == 0) {
            double got;
            OK(gkd_metric_corpus_bleu(&got, (const char *const *)c.hyps, (const char *const *)c.refs, c.refs_per,
                                      c.n_hyp, unit_of(fl[2]), GKD_BLEU_METHOD0));
            snprintf(what, sizeof what, "corpus bleu %s %s", fl[1], fl[2]);
            assert_close(got, num(fl[3]), what);
            checked[0]++;
        } else if (strcmp(fl[0], "bleusm") == 0) {
            double got;
            OK(gkd_metric_corpus_bleu(&got, (const char *const *)c.hyps, (const char *const *)c.refs, c.refs_per,
                                      c.n_hyp, unit_of(fl[2]), smoothing_of(fl[3], 1)));
            snprintf(what, sizeof what, "corpus bleu %s %s method%s", fl[1], fl[2], fl[3]);
            assert_close(got, num(fl[4]), what);
            checked[5]++;
        } else if (strcmp(fl[0], "sbleu") == 0) {
            size_t i = (size_t)num(fl[2]), off = 0;
            for (size_t k = 0; k < i; k++) off += c.refs_per[k];
            double got;
            OK(gkd_metric_sentence_bleu(&got, c.hyps[i], (const char *const *)c.refs + off, c.refs_per[i],
                                        unit_of(fl[3]), smoothing_of(fl[4], 0)));
            snprintf(what, sizeof what, "sentence bleu %s #%zu %s method%s", fl[1], i, fl[3], fl[4]);
            assert_close(got, num(fl[5]), what);
            sbleu_methods |= 1 << (int)num(fl[4]);
            checked[1]++;
        } else if (strcmp(fl[0], "chrf") == 0) {
            /* chrF uses the first reference of each pair. */
            const char *first[MAXN];
            size_t off = 0;
            for (size_t k = 0; k < c.n_hyp; k++) {
                first[k] = c.refs[off];
                off += c.refs_per[k];
            }
            double got;
            OK(gkd_metric_corpus_chrf(&got, (const char *const *)c.hyps, first, c.n_hyp, 2.0));
            assert_close(got, num(fl[2]), what);
            checked[2]++;
        } else if (strcmp(fl[0], "schrf") == 0) {
            size_t i = (size_t)num(fl[2]), off = 0;
            for (size_t k = 0; k < i; k++) off += c.refs_per[k];
            snprintf(what, sizeof what, "sentence chrf %s #%zu", fl[1], i);
            double got;
            OK(gkd_metric_sentence_chrf(&got, c.hyps[i], c.refs[off], 2.0));
            assert_close(got, num(fl[3]), what);
            checked[3]++;
        } else if (strcmp(fl[0], "sample") == 0) {
            c.samples[c.n_samples++] = unescape(fl[2]);
        } else if (strcmp(fl[0], "selfbleu") == 0) {
            double got;
            OK(gkd_metric_self_bleu(&got, (const char *const *)c.samples, c.n_samples, unit_of(fl[2]),
                                    GKD_BLEU_METHOD1));
            snprintf(what, sizeof what, "self-bleu %s %s", fl[1], fl[2]);
            assert_close(got, num(fl[3]), what);
            checked[4]++;
        } else if (strcmp(fl[0], "selfbleusm") == 0) {
            double got;
            OK(gkd_metric_self_bleu(&got, (const char *const *)c.samples, c.n_samples, unit_of(fl[2]),
                                    smoothing_of(fl[3], 0)));
            snprintf(what, sizeof what, "self-bleu %s %s method%s", fl[1], fl[2], fl[3]);
            assert_close(got, num(fl[4]), what);
            checked[6]++;
        } else {
            ck_abort_msg("unknown fixture record '%s'", fl[0]);
        }
    }
    case_reset(&c, "");
    fclose(f);
    for (int k = 0; k < 7; k++) ck_assert_int_gt(checked[k], 4);
    /* Every supported method met NLTK: method0..method5 and method7. */
    ck_assert_int_eq(sbleu_methods, 0xBF);
}
END_TEST

/* ---- hand-computed cases ---- */

/* Value-returning wrappers for the cases below, which never fail. */
static double rouge_pair(const char *a, const char *b) {
    double v;
    OK(gkd_metric_rouge_l_pair(&v, a, b));
    return v;
}
static double distinct(const char *const *s, size_t n, int order, gkd_metric_unit unit) {
    double v;
    OK(gkd_metric_distinct_n(&v, s, n, order, unit));
    return v;
}
static size_t lev(const char *a, const char *b) {
    size_t d;
    OK(gkd_metric_edit_distance(&d, a, b));
    return d;
}
static double char_acc(const char *const *o, const char *const *r, size_t n) {
    double v;
    OK(gkd_metric_char_accuracy(&v, o, r, n));
    return v;
}
static double cbleu(const char *const *h, const char *const *r, size_t n, gkd_metric_unit unit) {
    double v;
    OK(gkd_metric_corpus_bleu(&v, h, r, NULL, n, unit, GKD_BLEU_METHOD0));
    return v;
}

START_TEST(test_rouge_l) {
    ck_assert_double_eq_tol(rouge_pair("the cat is on the mat", "the cat sat on the mat"), 5.0 / 6,
                            1e-15);
    /* LCS("a b c d", "b d e") = 2: P = 1/2, R = 2/3, F1 = 4/7. */
    ck_assert_double_eq_tol(rouge_pair("a b c d", "b d e"), 4.0 / 7, 1e-15);
    /* Order matters: LCS("c b a", "a b c") = 1: P = R = 1/3. */
    ck_assert_double_eq_tol(rouge_pair("c b a", "a b c"), 1.0 / 3, 1e-15);
    ck_assert_double_eq(rouge_pair("x y", "a b"), 0.0);
    ck_assert_double_eq(rouge_pair("", "a b"), 0.0);
    ck_assert_double_eq(rouge_pair("a b", "  "), 0.0);
    ck_assert_double_eq(rouge_pair(" a\tb\n", "a b"), 1.0);
    const char *outs[] = {"a b c d", "x"}, *refs[] = {"b d e", "x"};
    double v;
    OK(gkd_metric_rouge_l(&v, outs, refs, 2));
    ck_assert_double_eq_tol(v, (4.0 / 7 + 1) / 2, 1e-15);
}
END_TEST

START_TEST(test_distinct_n) {
    const char *w[] = {"a b a", "a c"};
    ck_assert_double_eq_tol(distinct(w, 2, 1, GKD_UNIT_WORDS), 3.0 / 5, 1e-15);
    /* Bigrams a-b, b-a, a-c: none crosses samples. */
    ck_assert_double_eq_tol(distinct(w, 2, 2, GKD_UNIT_WORDS), 1.0, 1e-15);
    const char *c[] = {"aab", "ab"};
    ck_assert_double_eq_tol(distinct(c, 2, 1, GKD_UNIT_CHARS), 2.0 / 5, 1e-15);
    ck_assert_double_eq_tol(distinct(c, 2, 2, GKD_UNIT_CHARS), 2.0 / 3, 1e-15);
    const char *same[] = {"abcd", "abcd", "abcd", "abcd"};
    ck_assert_double_eq_tol(distinct(same, 4, 1, GKD_UNIT_WORDS), 0.25, 1e-15);
    const char *u[] = {"\xC3\xA9\xC3\xA9", "e"}; /* é é e: 2 distinct of 3 */
    ck_assert_double_eq_tol(distinct(u, 2, 1, GKD_UNIT_CHARS), 2.0 / 3, 1e-15);
    const char *none[] = {"a", ""};
    ck_assert_double_eq(distinct(none, 2, 2, GKD_UNIT_WORDS), 0.0);
}
END_TEST

START_TEST(test_char_accuracy_and_exact) {
    ck_assert_uint_eq(lev("kitten", "sitting"), 3);
    ck_assert_uint_eq(lev("", "abc"), 3);
    ck_assert_uint_eq(lev("caf\xC3\xA9", "cafe"), 1); /* code points, not bytes */
    const char *outs[] = {"abd", "", "abcdxxxxx", "", "cafe", "x"};
    const char *refs[] = {"abcd", "abcd", "abcd", "", "caf\xC3\xA9", ""};
    double want[] = {0.75, 0.0, 0.0, 1.0, 0.75, 0.0};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq_tol(char_acc(outs + i, refs + i, 1), want[i], 1e-15);
    ck_assert_double_eq_tol(char_acc(outs, refs, 6), 2.5 / 6, 1e-15);
    const char *o2[] = {"579", "579 ", "57"}, *r2[] = {"579", "579", "579"};
    ck_assert_double_eq_tol(gkd_metric_exact_match(o2, r2, 3), 1.0 / 3, 1e-15);
    const char *lens[] = {("\xC3\xA9\xE2\x82\xAC" "a"), "", "ab"}; /* (...): one string */
    ck_assert_double_eq_tol(gkd_metric_mean_len(lens, 3), 5.0 / 3, 1e-15);
    unsigned char eos[] = {1, 0, 1, 1};
    ck_assert_double_eq(gkd_metric_eos_rate(eos, 4), 0.75);
}
END_TEST

START_TEST(test_bleu_hand_cases) {
    /* Exact match of 4+ words: 1. Single reference, identical. */
    const char *h[] = {"a b c d e"}, *r[] = {"a b c d e"};
    ck_assert_double_eq_tol(cbleu(h, r, 1, GKD_UNIT_WORDS), 1.0, 1e-15);
    /* No unigram match: exactly 0. */
    const char *h2[] = {"x y z w"};
    ck_assert_double_eq(cbleu(h2, r, 1, GKD_UNIT_WORDS), 0.0);
    /* Self-BLEU (one pass over pooled n-grams) equals the mean of pairwise
     * sentence BLEU against the other samples, on random samples. */
    enum { NS = 40 };
    static char buf[NS][16];
    const char *smp[NS], *others[NS];
    unsigned x = 12345;
    for (int i = 0; i < NS; i++) {
        int len = 0, L = (int)((x = x * 1103515245u + 12345u) >> 16) % 9;
        for (int k = 0; k < L; k++) {
            x = x * 1103515245u + 12345u;
            buf[i][len++] = (char)("aabbcd  "[(x >> 16) % 8]);
        }
        buf[i][len] = 0;
        smp[i] = buf[i];
    }
    /* Every smoothing method, including the two that read 5-grams. */
    static const gkd_bleu_smoothing methods[] = {GKD_BLEU_METHOD0, GKD_BLEU_METHOD1, GKD_BLEU_METHOD2,
                                                 GKD_BLEU_METHOD3, GKD_BLEU_METHOD4, GKD_BLEU_METHOD5,
                                                 GKD_BLEU_METHOD7};
    for (int mi = 0; mi < 7; mi++)
    for (int unit = 0; unit < 2; unit++) {
        gkd_bleu_smoothing sm = methods[mi];
        double mean = 0;
        for (int i = 0; i < NS; i++) {
            int k = 0;
            for (int j = 0; j < NS; j++)
                if (j != i) others[k++] = smp[j];
            double b;
            OK(gkd_metric_sentence_bleu(&b, smp[i], others, NS - 1, unit, sm));
            mean += b;
        }
        mean /= NS;
        /* Unsmoothed, most samples score ~1e-77: compare relatively too. */
        ck_assert(sm == GKD_BLEU_METHOD0 ? mean > 0 : mean > 0.01);
        double self;
        OK(gkd_metric_self_bleu(&self, smp, NS, unit, sm));
        ck_assert_double_eq_tol(self, mean, 1e-13);
        ck_assert_msg(fabs(self - mean) <= 1e-12 * mean, "method%d unit %d: %.17g vs %.17g", (int)sm, unit, self,
                      mean);
    }
    /* Self-BLEU of one sample is undefined: NaN, and no error. */
    double v = 0;
    ck_assert_int_eq(gkd_metric_self_bleu(&v, h, 1, GKD_UNIT_WORDS, GKD_BLEU_METHOD1), 0);
    ck_assert(isnan(v));
    /* Invalid UTF-8 (byte outputs) is counted, not rejected. */
    const char *bad[] = {"ab\xFF" "cd"}, *bref[] = {"ab\xFF" "cd"};
    ck_assert_double_eq_tol(cbleu(bad, bref, 1, GKD_UNIT_CHARS), 1.0, 1e-15);
    OK(gkd_metric_sentence_chrf(&v, "ab\xFF" "cdef", "ab\xFF" "cdef", 2.0));
    ck_assert_double_eq_tol(v, 1.0, 1e-15);
}
END_TEST

/* ---- errors: a code and a message, never a NaN ---- */

static void assert_error(int rc, int want, const char *needle) {
    ck_assert_int_eq(rc, want);
    ck_assert_msg(strstr(gkd_last_error(), needle) != NULL, "message '%s' lacks '%s'", gkd_last_error(), needle);
}

START_TEST(test_bad_input_errors) {
    const char *h[] = {"a b c"}, *r[] = {"a b c"};
    const size_t none[] = {0};
    double v = 42;
    assert_error(gkd_metric_corpus_bleu(&v, h, r, none, 1, GKD_UNIT_WORDS, GKD_BLEU_METHOD0), GKD_EINVAL,
                 "bleu: hypothesis 0 has no reference");
    assert_error(gkd_metric_corpus_bleu(&v, h, r, NULL, 1, (gkd_metric_unit)7, GKD_BLEU_METHOD0), GKD_EINVAL,
                 "bleu: unit 7 is not GKD_UNIT_WORDS or GKD_UNIT_CHARS");
    assert_error(gkd_metric_corpus_bleu(&v, h, r, NULL, 1, GKD_UNIT_WORDS, GKD_BLEU_METHOD5), GKD_EINVAL,
                 "bleu: BLEU smoothing method5 is not defined for corpus BLEU");
    assert_error(gkd_metric_corpus_bleu(&v, h, r, NULL, 1, GKD_UNIT_WORDS, GKD_BLEU_METHOD7), GKD_EINVAL,
                 "valid: method0, method1, method2, method3, method4)");
    assert_error(gkd_metric_corpus_bleu(&v, h, r, NULL, 1, GKD_UNIT_WORDS, (gkd_bleu_smoothing)6), GKD_EINVAL,
                 "bleu: unknown BLEU smoothing 6 (valid: method0, method1, method2, method3, method4)");
    assert_error(gkd_metric_sentence_bleu(&v, "a", r, 0, GKD_UNIT_WORDS, GKD_BLEU_METHOD1), GKD_EINVAL,
                 "sentence bleu: no reference");
    assert_error(gkd_metric_sentence_bleu(&v, "a", r, 1, GKD_UNIT_WORDS, (gkd_bleu_smoothing)-1), GKD_EINVAL,
                 "sentence bleu: unknown BLEU smoothing -1 (valid: method0, method1, method2, method3, method4, "
                 "method5, method7)");
    /* Checked before the n < 2 shortcut. */
    assert_error(gkd_metric_self_bleu(&v, h, 1, GKD_UNIT_WORDS, (gkd_bleu_smoothing)8), GKD_EINVAL,
                 "self_bleu: unknown BLEU smoothing 8");
    assert_error(gkd_metric_self_bleu(&v, h, 1, (gkd_metric_unit)-1, GKD_BLEU_METHOD1), GKD_EINVAL, "self_bleu: unit -1");
    assert_error(gkd_metric_distinct_n(&v, h, 1, 0, GKD_UNIT_WORDS), GKD_EINVAL, "distinct_n: order 0 is not >= 1");
    assert_error(gkd_metric_distinct_n(&v, h, 1, 1, (gkd_metric_unit)2), GKD_EINVAL, "distinct_n: unit 2");
    assert_error(gkd_metric_corpus_chrf(&v, h, r, 1, NAN), GKD_EINVAL, "chrf: beta nan is not a finite number >= 0");
    assert_error(gkd_metric_corpus_chrf(&v, h, r, 1, -1.0), GKD_EINVAL, "chrf: beta -1 is not");
    assert_error(gkd_metric_sentence_chrf(&v, "a", "a", INFINITY), GKD_EINVAL, "chrf: beta inf is not");
    ck_assert_double_eq(v, 42); /* an error leaves the output alone */
    /* Defined edge cases are values, not errors. */
    OK(gkd_metric_corpus_bleu(&v, h, r, NULL, 0, GKD_UNIT_WORDS, GKD_BLEU_METHOD4));
    ck_assert_double_eq(v, 0.0);
    /* beta 0: F = precision, 1 for orders 1..3 of "abc", epsilon above
     * (NLTK's sentence_chrf gives 0.5 too). */
    OK(gkd_metric_corpus_chrf(&v, h, r, 1, 0.0));
    ck_assert_double_eq_tol(v, 0.5, 1e-15);
}
END_TEST

START_TEST(test_smoothing_names) {
    static const int known[] = {0, 1, 2, 3, 4, 5, 7};
    for (int k = 0; k < 7; k++) {
        const char *name = gkd_bleu_smoothing_name((gkd_bleu_smoothing)known[k]);
        char want[16];
        snprintf(want, sizeof want, "method%d", known[k]);
        ck_assert_str_eq(name, want);
        gkd_bleu_smoothing sm = GKD_BLEU_METHOD0;
        ck_assert_int_eq(gkd_bleu_smoothing_parse(&sm, name, 0), 0);
        ck_assert_int_eq((int)sm, known[k]);
        int rc = gkd_bleu_smoothing_parse(&sm, name, 1);
        if (known[k] <= 4) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq((int)sm, known[k]);
        } else {
            ck_assert_int_eq(rc, GKD_EINVAL);
            ck_assert_msg(strstr(gkd_last_error(), "not defined for corpus BLEU") &&
                              strstr(gkd_last_error(), "valid: method0, method1, method2, method3, method4"),
                          "%s", gkd_last_error());
        }
    }
    ck_assert_ptr_null(gkd_bleu_smoothing_name((gkd_bleu_smoothing)6));
    ck_assert_ptr_null(gkd_bleu_smoothing_name((gkd_bleu_smoothing)8));
    gkd_bleu_smoothing sm;
    ck_assert_int_eq(gkd_bleu_smoothing_parse(&sm, "Method1", 1), GKD_EINVAL);
    ck_assert_str_eq(gkd_last_error(),
                     "unknown BLEU smoothing 'Method1' (valid: method0, method1, method2, method3, method4)");
    ck_assert_int_eq(gkd_bleu_smoothing_parse(&sm, "method6", 0), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "'method6' is not supported") &&
                      strstr(gkd_last_error(), "method4, method5, method7"),
                  "%s", gkd_last_error());
    ck_assert_ptr_null(strchr(gkd_last_error(), '\n'));
}
END_TEST

/* ---- logits ---- */

START_TEST(test_logit_metrics) {
    const float L3 = (float)log(3.0);
    /* Row 0: teacher p = (1/2, 1/2), student q = (1/4, 3/4). Row 1 masked out. */
    float teacher[] = {0, 0, 5, -5};
    float student[] = {0, L3, -5, 5};
    float mask[] = {1, 0};
    int targets[] = {1, 0};
    double q1 = 1.0 / (1.0 + exp(-(double)L3)); /* 3/4 up to float rounding of log 3 */
    double q0 = 1 - q1;
    ck_assert_double_eq_tol(gkd_metric_nll(student, targets, mask, 2, 2), -log(q1), 1e-12);
    ck_assert_double_eq_tol(gkd_metric_nll(teacher, targets, mask, 2, 2), log(2.0), 1e-12);
    /* Unmasked: row 1 target 0 under student logits (-5, 5). */
    double nll1 = log(1 + exp(10.0));
    ck_assert_double_eq_tol(gkd_metric_nll(student, targets, NULL, 2, 2), (-log(q1) + nll1) / 2, 1e-12);
    double fkl = 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1);
    double rkl = q0 * log(q0 / 0.5) + q1 * log(q1 / 0.5);
    ck_assert_double_eq_tol(gkd_metric_kl(teacher, student, mask, 2, 2, 0), fkl, 1e-12);
    ck_assert_double_eq_tol(gkd_metric_kl(teacher, student, mask, 2, 2, 1), rkl, 1e-12);
    ck_assert_double_eq_tol(gkd_metric_kl(teacher, teacher, NULL, 2, 2, 0), 0.0, 1e-15);
    ck_assert_double_eq_tol(gkd_metric_accept_rate(teacher, student, mask, 2, 2), q0 + 0.5, 1e-12);
    ck_assert_double_eq_tol(gkd_metric_accept_rate(teacher, teacher, NULL, 2, 2), 1.0, 1e-12);
    /* Row 1: teacher (5, -5), student (-5, 5): the overlap is twice the small mass. */
    double p_far = 1 / (1 + exp(10.0));
    ck_assert_double_eq_tol(gkd_metric_accept_rate(teacher + 2, student + 2, NULL, 1, 2), 2 * p_far, 1e-15);
    /* Token accuracy: argmax student row 0 = 1 (target 1), row 1 = 1 (target 0). */
    ck_assert_double_eq(gkd_metric_token_accuracy(student, targets, NULL, 2, 2), 0.5);
    ck_assert_double_eq(gkd_metric_token_accuracy(student, targets, mask, 2, 2), 1.0);
    float zeros[] = {0, 0};
    mask[0] = 0;
    ck_assert_double_eq(gkd_metric_nll(zeros, targets, mask, 1, 2), 0.0);
    /* Extreme logits stay finite. */
    float t80[] = {80, -80, 0}, s80[] = {-80, 80, 0};
    double k = gkd_metric_kl(t80, s80, NULL, 1, 3, 0);
    ck_assert(isfinite(k));
    ck_assert_double_eq_tol(k, 160.0, 1e-9);
    /* Expected accepted tokens, gamma = 4: sum_{k=0..4} a^k. */
    ck_assert_double_eq_tol(gkd_metric_expected_accepted(0.75, 4), 3.05078125, 1e-14);
    ck_assert_double_eq(gkd_metric_expected_accepted(1.0, 4), 5.0);
    ck_assert_double_eq(gkd_metric_expected_accepted(0.0, 4), 1.0);
    ck_assert_double_eq_tol(gkd_metric_expected_accepted(0.5, 1), 1.5, 1e-15);
}
END_TEST

/* ---- known distribution ---- */

/* A fake student: log q(s) from arbitrary positive weights over all strings of
 * length 2 over {a, b}, normalized over those 4 strings, per example. */
static double fake_weight(size_t example, const char *s) {
    return 1.0 + (double)((example * 7 + (unsigned char)s[0] * 3 + (unsigned char)s[1] * 5) % 11);
}
static double fake_q(size_t example, const char *s) {
    static const char *all[] = {"aa", "ab", "ba", "bb"};
    double z = 0;
    for (int k = 0; k < 4; k++) z += fake_weight(example, all[k]);
    return log(fake_weight(example, s) / z);
}
static int fake_logprob(double *out, void *ctx, size_t example, const char *s) {
    (void)ctx;
    *out = fake_q(example, s);
    return 0;
}

/* A log-probability that fails stops kl_data with its code and message. */
static int failing_logprob(double *out, void *ctx, size_t example, const char *s) {
    (void)out, (void)s;
    int *calls = ctx;
    if (++*calls < 2 || example < 1) {
        *out = -1.0;
        return 0;
    }
    return gkd_error(GKD_ENOMEM, "student: out of memory");
}

START_TEST(test_modes_metrics) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "modes";
    c.alphabet = "ab";
    c.modes_len = 2;
    c.modes_k = 3;
    c.zipf_s = 1.0;
    c.min_len = 3;
    c.max_len = 3;
    c.train = 20;
    c.eval = 3;
    gkd_task *t;
    ck_assert_int_eq(gkd_task_new(&t, &c), 0);
    /* Brute force: enumerate every string of length 2 and sum p log(p/q). */
    static const char *all[] = {"aa", "ab", "ba", "bb"};
    double brute = 0;
    for (size_t i = 0; i < 3; i++)
        for (int s = 0; s < 4; s++) {
            double p = 0;
            for (size_t k = 0; k < gkd_task_num_continuations(t, GKD_SPLIT_EVAL, i); k++) {
                double pk;
                if (strcmp(gkd_task_continuation(t, GKD_SPLIT_EVAL, i, k, &pk), all[s]) == 0) p = pk;
            }
            if (p > 0) brute += p * log(p / exp(fake_q(i, all[s])));
        }
    brute /= 3;
    double kl;
    OK(gkd_metric_kl_data(&kl, t, GKD_SPLIT_EVAL, 3, fake_logprob, NULL));
    ck_assert_double_eq_tol(kl, brute, 1e-12);
    ck_assert(kl > 0);
    int calls = 0;
    double untouched = 7;
    assert_error(gkd_metric_kl_data(&untouched, t, GKD_SPLIT_EVAL, 3, failing_logprob, &calls), GKD_ENOMEM,
                 "kl_data: example 1, continuation '");
    ck_assert_msg(strstr(gkd_last_error(), "': student: out of memory"), "%s", gkd_last_error());
    ck_assert_double_eq(untouched, 7);

    /* Precision and coverage: example 0 samples c0, c0, invalid; example 1 c1, c2, c0;
     * example 2 three invalid. */
    double p[3][3];
    const char *cont[3][3];
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 3; k++) cont[i][k] = gkd_task_continuation(t, GKD_SPLIT_EVAL, i, k, &p[i][k]);
    const char *invalid[3];
    for (size_t i = 0; i < 3; i++)
        for (int s = 0; s < 4; s++) {
            int used = 0;
            for (int k = 0; k < 3; k++) used |= strcmp(cont[i][k], all[s]) == 0;
            if (!used) invalid[i] = all[s];
        }
    const char *samples[9] = {cont[0][0], cont[0][0], invalid[0], cont[1][1], cont[1][2], cont[1][0],
                              invalid[2], "", "abc"};
    double prec, cov;
    gkd_metric_modes(t, GKD_SPLIT_EVAL, 3, samples, 3, &prec, &cov);
    ck_assert_double_eq_tol(prec, 5.0 / 9, 1e-15);
    ck_assert_double_eq_tol(cov, (p[0][0] + 1.0 + 0.0) / 3, 1e-12);
    gkd_task_free(t);
}
END_TEST

/* ---- the evaluation loop ---- */

/* A word-level task whose every output is at most one word (one new token),
 * so BLEU has unigram matches and nothing above: the smoothing decides it. */
typedef struct {
    char dir[256];
    gkd_task *task;
    gkd_tokenizer *tok;
    gkd_model *model;
} eval_world;

static void eval_world_make(eval_world *w) {
    th_make_tmpdir(w->dir, sizeof w->dir, "gkd-metrics");
    char path[400];
    snprintf(path, sizeof path, "%s/pairs.tsv", w->dir);
    th_write_file(path, "a b\tb a\nb b\ta b\na a\tb\nb a\ta\nab\tb a b\nba\ta a\nb\tb b\na\ta b a\n");
    gkd_task_config tc = GKD_TASK_CONFIG_INIT;
    tc.name = "pairs";
    tc.path = path;
    tc.eval_fraction = 0.5;
    OK(gkd_task_new(&w->task, &tc));
    OK(gkd_task_tokenizer(w->task, &w->tok));
    w->model = th_make_model(gkd_tokenizer_vocab_size(w->tok), 16, 1, 8, 2, 3, 0.5f, 1);
}

static void eval_world_free(eval_world *w) {
    gkd_model_free(w->model);
    gkd_tokenizer_free(w->tok);
    gkd_task_free(w->task);
    th_remove_tmpdir(w->dir);
}

START_TEST(test_eval_bleu_smoothing) {
    eval_world w;
    eval_world_make(&w);
    gkd_eval_options o = GKD_EVAL_OPTIONS_INIT;
    ck_assert_int_eq(o.bleu_smoothing, GKD_BLEU_METHOD0);
    o.max_new_tokens = 1;
    o.samples = 0;
    gkd_eval_result r0, r1;
    OK(gkd_evaluate(&r0, w.model, NULL, w.tok, w.task, &o));
    o.bleu_smoothing = GKD_BLEU_METHOD1;
    OK(gkd_evaluate(&r1, w.model, NULL, w.tok, w.task, &o));
    /* One-word outputs: unsmoothed BLEU is ~DBL_MIN^(3/4) times the unigram
     * term, method1 is not; every other metric is unchanged. */
    ck_assert_msg(r0.v[GKD_M_BLEU] > 0 && r0.v[GKD_M_BLEU] < 1e-200, "method0 bleu %g", r0.v[GKD_M_BLEU]);
    ck_assert_msg(r1.v[GKD_M_BLEU] > 1e-4, "method1 bleu %g", r1.v[GKD_M_BLEU]);
    for (int m = 0; m < GKD_M_COUNT; m++)
        if (m != GKD_M_BLEU) ck_assert(memcmp(&r0.v[m], &r1.v[m], sizeof(double)) == 0);
    /* A smoothing corpus BLEU does not define is refused up front. */
    o.bleu_smoothing = GKD_BLEU_METHOD7;
    assert_error(gkd_evaluate(&r1, w.model, NULL, w.tok, w.task, &o), GKD_EINVAL,
                 "evaluate: BLEU smoothing 'method7' is not defined for corpus BLEU");
    o.bleu_smoothing = (gkd_bleu_smoothing)6;
    assert_error(gkd_evaluate(&r1, w.model, NULL, w.tok, w.task, &o), GKD_EINVAL,
                 "evaluate: unknown BLEU smoothing 6 (valid: method0, method1, method2, method3, method4)");
    eval_world_free(&w);
}
END_TEST

/* A library caller's val_divergence and loss temperature are checked
 * before anything is evaluated, not asserted inside the divergence. */
START_TEST(test_eval_checks_val_divergence) {
    eval_world w;
    eval_world_make(&w);
    gkd_eval_options o = GKD_EVAL_OPTIONS_INIT;
    o.max_new_tokens = 1;
    o.samples = 0;
    gkd_eval_result r;
    OK(gkd_evaluate(&r, w.model, w.model, w.tok, w.task, &o));
    ck_assert_double_eq_tol(r.v[GKD_M_VAL_LOSS], 0.0, 1e-12); /* a model against itself */
    o.tau = 0.0f;
    ck_assert_int_eq(gkd_evaluate(&r, w.model, w.model, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "evaluate: val_divergence") && strstr(gkd_last_error(), "temperature"),
                  "%s", gkd_last_error());
    o.tau = 1.0f;
    o.val_divergence.kind = GKD_DIV_JSD;
    o.val_divergence.param = 1.5;
    ck_assert_int_eq(gkd_evaluate(&r, w.model, w.model, w.tok, w.task, &o), GKD_EINVAL);
    ck_assert_msg(strstr(gkd_last_error(), "evaluate: val_divergence"), "%s", gkd_last_error());
    eval_world_free(&w);
}
END_TEST

/* gkd eval --bleu-smoothing: an unknown name is one line naming the valid
 * ones, exit status 2, before any file is read. */
START_TEST(test_cli_bleu_smoothing_flag) {
    const char *bin = getenv("GKD_BIN");
    ck_assert_msg(bin != NULL, "GKD_BIN is not set (run through make test)");
    char dir[256], cmd[1024], err[400];
    th_make_tmpdir(dir, sizeof dir, "gkd-metrics-cli");
    snprintf(err, sizeof err, "%s/err.txt", dir);
    const char *bad[] = {"method9", "method5", "none"};
    const char *want[] = {
        "gkd eval: --bleu-smoothing: unknown BLEU smoothing 'method9' (valid: method0, method1, method2, method3, "
        "method4)\n",
        "gkd eval: --bleu-smoothing: BLEU smoothing 'method5' is not defined for corpus BLEU (NLTK 3.8 applies it "
        "to the corpus's last sentence only); valid: method0, method1, method2, method3, method4\n",
        "gkd eval: --bleu-smoothing: unknown BLEU smoothing 'none' (valid: method0, method1, method2, method3, "
        "method4)\n"};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "'%s' eval --model %s/missing.ckpt --task arith --bleu-smoothing %s >/dev/null 2>'%s'",
                 bin, dir, bad[k], err);
        int st = system(cmd);
        ck_assert(WIFEXITED(st));
        ck_assert_int_eq(WEXITSTATUS(st), 2);
        FILE *f = fopen(err, "r");
        ck_assert_ptr_nonnull(f);
        char text[1024];
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        ck_assert_str_eq(text, want[k]);
    }
    th_remove_tmpdir(dir);
}
END_TEST

Suite *metrics_suite(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_nltk_fixtures);
    tcase_add_test(tc, test_rouge_l);
    tcase_add_test(tc, test_distinct_n);
    tcase_add_test(tc, test_char_accuracy_and_exact);
    tcase_add_test(tc, test_bleu_hand_cases);
    tcase_add_test(tc, test_logit_metrics);
    tcase_add_test(tc, test_modes_metrics);
    tcase_add_test(tc, test_bad_input_errors);
    tcase_add_test(tc, test_smoothing_names);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("eval");
    tcase_add_test(te, test_eval_bleu_smoothing);
    tcase_add_test(te, test_eval_checks_val_divergence);
    tcase_add_test(te, test_cli_bleu_smoothing_flag);
    tcase_set_timeout(te, 60);
    suite_add_tcase(s, te);
    return s;
}
