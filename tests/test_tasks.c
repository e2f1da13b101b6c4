#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#include "helpers.h"

static gkd_task *make(gkd_task_config c) {
    gkd_task *t = NULL;
    int rc = gkd_task_new(&t, &c);
    ck_assert_msg(rc == 0, "gkd_task_new(%s): %s", c.name, gkd_last_error());
    return t;
}

static int in_split(const gkd_task *t, gkd_split s, const char *prompt) {
    for (size_t i = 0; i < gkd_task_size(t, s); i++)
        if (strcmp(gkd_task_example(t, s, i)->prompt, prompt) == 0) return 1;
    return 0;
}

static void assert_disjoint(const gkd_task *t) {
    for (size_t i = 0; i < gkd_task_size(t, GKD_SPLIT_EVAL); i++)
        ck_assert_msg(!in_split(t, GKD_SPLIT_TRAIN, gkd_task_example(t, GKD_SPLIT_EVAL, i)->prompt),
                      "%s: eval prompt '%s' is in train", gkd_task_name(t),
                      gkd_task_example(t, GKD_SPLIT_EVAL, i)->prompt);
}

static int same_examples(const gkd_task *a, const gkd_task *b) {
    for (int s = 0; s < 2; s++) {
        if (gkd_task_size(a, s) != gkd_task_size(b, s)) return 0;
        for (size_t i = 0; i < gkd_task_size(a, s); i++) {
            const gkd_example *x = gkd_task_example(a, s, i), *y = gkd_task_example(b, s, i);
            if (strcmp(x->prompt, y->prompt) || strcmp(x->reference, y->reference)) return 0;
        }
    }
    return 1;
}

static const char *generated[] = {"arith", "reverse", "sort", "modes"};

START_TEST(test_generated_deterministic_and_disjoint) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = generated[_i];
    c.train = 400;
    c.eval = 40;
    /* Small prompt spaces so that collisions between splits really happen. */
    c.digits = 1;
    c.min_len = 1;
    c.max_len = 3;
    c.alphabet = "abc";
    c.modes_len = 2;
    gkd_task *a = make(c), *b = make(c);
    ck_assert_uint_eq(gkd_task_size(a, GKD_SPLIT_TRAIN), 400);
    ck_assert_uint_eq(gkd_task_size(a, GKD_SPLIT_EVAL), 40);
    ck_assert(same_examples(a, b));
    assert_disjoint(a);
    c.seed = 2;
    gkd_task *d = make(c);
    ck_assert(!same_examples(a, d));
    assert_disjoint(d);
    /* The vocabulary covers every example. */
    gkd_tokenizer *tok;
    ck_assert_int_eq(gkd_task_tokenizer(a, &tok), 0);
    int ids[64], pl, len;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < gkd_task_size(a, s); i++)
            ck_assert_int_eq(gkd_task_encode_example(a, tok, s, i, ids, 64, &pl, &len), 0);
    gkd_tokenizer_free(tok);
    gkd_task_free(a);
    gkd_task_free(b);
    gkd_task_free(d);
}
END_TEST

START_TEST(test_too_few_prompts_is_an_error) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.digits = 1;
    c.train = 100;
    c.eval = 2000; /* covers all 100 prompts of 1-digit addition */
    gkd_task *t = NULL;
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "too few distinct prompts"));
}
END_TEST

START_TEST(test_bad_config) {
    gkd_task *t = NULL;
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "arithmetic";
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "unknown task 'arithmetic'"));
    c = (gkd_task_config)GKD_TASK_CONFIG_INIT;
    c.op = "div";
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    c = (gkd_task_config)GKD_TASK_CONFIG_INIT;
    c.digits = 10;
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    c = (gkd_task_config)GKD_TASK_CONFIG_INIT;
    c.name = "reverse";
    c.min_len = 5;
    c.max_len = 4;
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    c.max_len = 6;
    c.alphabet = "aba";
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "repeats"));
    c = (gkd_task_config)GKD_TASK_CONFIG_INIT;
    c.name = "modes";
    c.alphabet = "ab";
    c.modes_len = 2;
    c.modes_k = 5; /* only 4 strings of length 2 over {a, b} */
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    c.name = "pairs";
    ck_assert_int_eq(gkd_task_new(&t, &c), GKD_EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

/* Independent rendering of the documented arith reference format. */
static void expected_arith(char op, unsigned long long x, unsigned long long y, int digits,
                           int rationale, char *out) {
    unsigned long long z = op == '+' ? x + y : op == '-' ? x - y : x * y;
    out[0] = 0;
    if (rationale) {
        int carry = 0;
        unsigned long long px = x, py = y, m = 1;
        for (int i = 0; i < digits; i++, px /= 10, py /= 10, m *= 10) {
            int a = (int)(px % 10), b = (int)(py % 10);
            char step[128];
            if (op == '+') {
                int s = a + b + carry;
                sprintf(step, carry ? "%d+%d+1=%dc%d " : "%d+%d=%dc%d ", a, b, s % 10, s / 10);
                carry = s / 10;
            } else if (op == '-') {
                int d = a - b - carry, bo = d < 0;
                sprintf(step, carry ? "%d-%d-1=%db%d " : "%d-%d=%db%d ", a, b, d + 10 * bo, bo);
                carry = bo;
            } else {
                sprintf(step, "%llu*%llu=%llu ", x, (unsigned long long)b * m, x * b * m);
            }
            strcat(out, step);
        }
        strcat(out, "->");
    }
    sprintf(out + strlen(out), "%llu", z);
}

START_TEST(test_arith_references) {
    const char *ops[] = {"add", "sub", "mul"};
    for (int o = 0; o < 3; o++)
        for (int rat = 0; rat < 2; rat++) {
            gkd_task_config c = GKD_TASK_CONFIG_INIT;
            c.op = ops[o];
            c.digits = 4;
            c.rationale = rat;
            c.train = 300;
            c.eval = 30;
            gkd_task *t = make(c);
            int seen_carry = 0;
            for (int s = 0; s < 2; s++)
                for (size_t i = 0; i < gkd_task_size(t, s); i++) {
                    const gkd_example *ex = gkd_task_example(t, s, i);
                    unsigned long long x, y;
                    char op, eq, want[512];
                    ck_assert_int_eq(sscanf(ex->prompt, "%llu%c%llu%c", &x, &op, &y, &eq), 4);
                    ck_assert_int_eq(op, "+-*"[o]);
                    ck_assert_int_eq(eq, '=');
                    ck_assert(x < 10000 && y < 10000);
                    if (op == '-') ck_assert(x >= y);
                    expected_arith(op, x, y, 4, rat, want);
                    ck_assert_str_eq(ex->reference, want);
                    /* The rationale field is the reference's steps, with or without rationale=1. */
                    char steps[512];
                    expected_arith(op, x, y, 4, 1, steps);
                    *strstr(steps, " ->") = '\0';
                    ck_assert_ptr_nonnull(ex->rationale);
                    ck_assert_str_eq(ex->rationale, steps);
                    ck_assert_ptr_null(ex->context);
                    ck_assert_double_eq(gkd_task_score(t, ex, ex->reference), 1.0);
                    seen_carry |= strstr(ex->reference, "+1=") != NULL;
                }
            if (rat && o == 0) ck_assert(seen_carry);
            gkd_task_free(t);
        }
}
END_TEST

START_TEST(test_arith_score_near_misses) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.rationale = 1;
    c.digits = 2;
    c.train = 10;
    c.eval = 5;
    gkd_task *t = make(c);
    gkd_example ex = {"57+68=", "7+8=5c1 5+6+1=2c1 ->125", NULL, NULL};
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c1 5+6+1=2c1 ->125"), 1.0);
    /* Only the final answer counts: a wrong carry in the rationale still scores. */
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c0 5+6=1c1 ->125"), 1.0);
    ck_assert_double_eq(gkd_task_score(t, &ex, "->12 ->125"), 1.0);
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c1 5+6+1=2c1 ->115"), 0.0); /* lost carry */
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c1 5+6+1=2c1 ->1255"), 0.0); /* extra char */
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c1 5+6+1=2c1 ->125 "), 0.0);
    ck_assert_double_eq(gkd_task_score(t, &ex, "7+8=5c1 5+6+1=2c1 125"), 0.0); /* no marker */
    ck_assert_double_eq(gkd_task_score(t, &ex, "125"), 0.0);
    ck_assert_double_eq(gkd_task_score(t, &ex, "->125 ->12"), 0.0);
    ck_assert_double_eq(gkd_task_score(t, &ex, ""), 0.0);
    gkd_task_free(t);
    c.rationale = 0;
    t = make(c);
    gkd_example plain = {"57+68=", "125", NULL, NULL};
    ck_assert_double_eq(gkd_task_score(t, &plain, "125"), 1.0);
    ck_assert_double_eq(gkd_task_score(t, &plain, "0125"), 0.0);
    ck_assert_double_eq(gkd_task_score(t, &plain, "12"), 0.0);
    ck_assert_double_eq(gkd_task_score(t, &plain, "->125"), 0.0);
    gkd_task_free(t);
}
END_TEST

static int cmp_char(const void *a, const void *b) { return *(const char *)a - *(const char *)b; }

START_TEST(test_reverse_sort_references) {
    for (int which = 0; which < 2; which++) {
        gkd_task_config c = GKD_TASK_CONFIG_INIT;
        c.name = which ? "sort" : "reverse";
        c.min_len = 2;
        c.max_len = 5;
        c.alphabet = "qwerty";
        c.train = 200;
        c.eval = 20;
        gkd_task *t = make(c);
        int lens[6] = {0};
        for (int s = 0; s < 2; s++)
            for (size_t i = 0; i < gkd_task_size(t, s); i++) {
                const gkd_example *ex = gkd_task_example(t, s, i);
                size_t n = strlen(ex->prompt);
                ck_assert(n >= 2 && n <= 5);
                lens[n]++;
                ck_assert_uint_eq(strspn(ex->prompt, "qwerty"), n);
                char want[8];
                if (which) {
                    memcpy(want, ex->prompt, n + 1);
                    qsort(want, n, 1, cmp_char);
                } else {
                    for (size_t k = 0; k < n; k++) want[k] = ex->prompt[n - 1 - k];
                    want[n] = 0;
                }
                ck_assert_str_eq(ex->reference, want);
            }
        for (int n = 2; n <= 5; n++) ck_assert_int_gt(lens[n], 20);
        gkd_example ex = {"tqe", which ? "eqt" : "eqt", NULL, NULL};
        ck_assert_double_eq(gkd_task_score(t, &ex, "eqt"), 1.0);
        ck_assert_double_eq(gkd_task_score(t, &ex, "eqtt"), 0.0);
        ck_assert_double_eq(gkd_task_score(t, &ex, "eq"), 0.0);
        ck_assert_double_eq(gkd_task_score(t, &ex, "etq"), 0.0);
        gkd_task_free(t);
    }
}
END_TEST

START_TEST(test_reverse_utf8_by_code_point) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = _i ? "sort" : "reverse";
    c.alphabet = "\xE2\x82\xAC" "a\xC3\xA9"; /* €, a, é */
    c.min_len = 3;
    c.max_len = 3;
    c.train = 50;
    c.eval = 5;
    gkd_task *t = make(c);
    for (size_t i = 0; i < gkd_task_size(t, GKD_SPLIT_TRAIN); i++) {
        const gkd_example *ex = gkd_task_example(t, GKD_SPLIT_TRAIN, i);
        ck_assert_uint_eq(strlen(ex->reference), strlen(ex->prompt));
        if (_i) {
            /* Sorted by code point: a (U+61) < é (U+E9) < € (U+20AC). */
            const char *p = ex->reference, *order[] = {"a", "\xC3\xA9", "\xE2\x82\xAC"};
            int at = 0;
            while (*p) {
                while (at < 3 && strncmp(p, order[at], strlen(order[at])) != 0) at++;
                ck_assert_int_lt(at, 3);
                p += strlen(order[at]);
            }
        } else {
            /* Reversing twice by code point gives the prompt back: compare to a
             * byte-level reversal of each character's bytes kept in order. */
            char back[64] = {0};
            const char *p = ex->reference;
            size_t n = strlen(p);
            size_t w = n;
            while (*p) {
                size_t l = ((unsigned char)*p < 0x80) ? 1 : ((unsigned char)*p < 0xE0) ? 2 : 3;
                w -= l;
                memcpy(back + w, p, l);
                p += l;
            }
            ck_assert_str_eq(back, ex->prompt);
        }
    }
    gkd_task_free(t);
}
END_TEST

START_TEST(test_modes_distribution) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "modes";
    c.alphabet = "ab";
    c.min_len = 1;
    c.max_len = 1; /* two prompts: one lands in eval, the other is all of train */
    c.modes_k = 4;
    c.modes_len = 3;
    c.zipf_s = 1.3;
    c.train = 20000;
    c.eval = 1;
    gkd_task *t = make(c);
    ck_assert_uint_eq(gkd_task_num_continuations(t, GKD_SPLIT_EVAL, 0), 4);
    const char *tp = gkd_task_example(t, GKD_SPLIT_TRAIN, 0)->prompt;
    ck_assert_str_ne(tp, gkd_task_example(t, GKD_SPLIT_EVAL, 0)->prompt);
    double p[4], sum = 0;
    const char *cont[4];
    for (size_t k = 0; k < 4; k++) {
        cont[k] = gkd_task_continuation(t, GKD_SPLIT_TRAIN, 0, k, &p[k]);
        ck_assert_ptr_nonnull(cont[k]);
        ck_assert_uint_eq(strlen(cont[k]), 3);
        ck_assert_uint_eq(strspn(cont[k], "ab"), 3);
        for (size_t j = 0; j < k; j++) ck_assert_str_ne(cont[j], cont[k]);
        sum += p[k];
    }
    ck_assert_ptr_null(gkd_task_continuation(t, GKD_SPLIT_TRAIN, 0, 4, NULL));
    ck_assert_double_eq_tol(sum, 1.0, 1e-12);
    /* Zipf: sorted probabilities are proportional to r^-s. */
    double sorted[4];
    memcpy(sorted, p, sizeof p);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (sorted[j] > sorted[i]) {
                double tmp = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = tmp;
            }
    double z = 1 + pow(2, -1.3) + pow(3, -1.3) + pow(4, -1.3);
    for (int r = 0; r < 4; r++) ck_assert_double_eq_tol(sorted[r], pow(r + 1, -1.3) / z, 1e-12);
    /* Every prompt follows the same shift patterns with the same
     * probabilities: over {a, b}, prompt "a" and prompt "b" give
     * continuations that differ in every character. */
    for (size_t k = 0; k < 4; k++) {
        double pe;
        const char *ce = gkd_task_continuation(t, GKD_SPLIT_EVAL, 0, k, &pe);
        ck_assert_double_eq(pe, p[k]);
        for (int j = 0; j < 3; j++) ck_assert_int_ne(ce[j], cont[k][j]);
    }
    /* The same prompt has the same distribution in every training example. */
    size_t n = gkd_task_size(t, GKD_SPLIT_TRAIN);
    double q;
    ck_assert_str_eq(gkd_task_continuation(t, GKD_SPLIT_TRAIN, n - 1, 2, &q), cont[2]);
    ck_assert_double_eq(q, p[2]);
    /* Training references follow p: 5-sigma binomial bounds. */
    int count[4] = {0};
    for (size_t i = 0; i < n; i++) {
        const gkd_example *ex = gkd_task_example(t, GKD_SPLIT_TRAIN, i);
        ck_assert_str_eq(ex->prompt, tp);
        int hit = 0;
        for (int k = 0; k < 4; k++)
            if (strcmp(ex->reference, cont[k]) == 0) count[k]++, hit = 1;
        ck_assert(hit);
        ck_assert_double_eq(gkd_task_score(t, ex, ex->reference), 1.0);
    }
    for (int k = 0; k < 4; k++) {
        double sd = sqrt(n * p[k] * (1 - p[k]));
        ck_assert_msg(fabs(count[k] - n * p[k]) < 5 * sd, "continuation %d: %d vs %.1f", k, count[k], n * p[k]);
    }
    /* Validity score. */
    const gkd_example *ex = gkd_task_example(t, GKD_SPLIT_TRAIN, 0);
    int invalid_found = 0;
    const char *all8[] = {"aaa", "aab", "aba", "abb", "baa", "bab", "bba", "bbb"};
    for (int s = 0; s < 8; s++) {
        int valid = 0;
        for (int k = 0; k < 4; k++) valid |= strcmp(all8[s], cont[k]) == 0;
        ck_assert_double_eq(gkd_task_score(t, ex, all8[s]), valid);
        invalid_found += !valid;
        /* A copy of the example (not stored in the task) scores the same. */
        gkd_example copy = *ex;
        ck_assert_double_eq(gkd_task_score(t, &copy, all8[s]), valid);
    }
    ck_assert_int_eq(invalid_found, 4);
    ck_assert_double_eq(gkd_task_score(t, ex, "aa"), 0.0);
    gkd_task_free(t);
    /* Non-modes tasks have no known distribution. */
    gkd_task_config a = GKD_TASK_CONFIG_INIT;
    a.train = 5;
    a.eval = 2;
    t = make(a);
    ck_assert_uint_eq(gkd_task_num_continuations(t, GKD_SPLIT_EVAL, 0), 0);
    ck_assert_ptr_null(gkd_task_continuation(t, GKD_SPLIT_EVAL, 0, 0, NULL));
    gkd_task_free(t);
}
END_TEST

/* ---- file tasks ---- */

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gkd_test_tasks_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static const char *write_file(const char *name, const char *content, size_t len) {
    static char paths[8][512];
    static int next = 0;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(content, 1, len, f);
    fclose(f);
    return p;
}
#define WRITE(name, lit) write_file(name, lit, sizeof(lit) - 1)

static void remove_tmpdir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void expect_error(gkd_task_config c, int code, const char *needle) {
    gkd_task *t = NULL;
    ck_assert_int_eq(gkd_task_new(&t, &c), code);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(gkd_last_error(), needle), "'%s' not in '%s'", needle, gkd_last_error());
}

START_TEST(test_pairs_file) {
    make_tmpdir();
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "pairs";
    c.eval_fraction = 0.25;
    /* 8 distinct sources, "dup" twice, CRLF, a blank line, no final newline. */
    c.path = WRITE("ok.tsv", "one\t1\r\ntwo\t2\n\nthree\t3\nfour\t4\ndup\tx\nfive\t5\nsix\t6\ndup\ty\nseven\t7");
    gkd_task *t = make(c), *u = make(c);
    ck_assert(same_examples(t, u));
    ck_assert_uint_eq(gkd_task_size(t, GKD_SPLIT_TRAIN) + gkd_task_size(t, GKD_SPLIT_EVAL), 9);
    ck_assert_uint_eq(gkd_task_size(t, GKD_SPLIT_EVAL) >= 2, 1); /* 2 sources, maybe 3 lines */
    assert_disjoint(t);
    const gkd_example *first = NULL;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < gkd_task_size(t, s); i++) {
            const gkd_example *ex = gkd_task_example(t, s, i);
            ck_assert(!strchr(ex->reference, '\r'));
            const char *file;
            int line;
            ck_assert_int_eq(gkd_task_example_source(t, s, i, &file, &line), 0);
            ck_assert_str_eq(file, c.path);
            if (strcmp(ex->prompt, "three") == 0) ck_assert_int_eq(line, 4);
            if (strcmp(ex->prompt, "one") == 0) first = ex;
        }
    ck_assert_ptr_nonnull(first);
    ck_assert_str_eq(first->reference, "1");
    ck_assert_double_eq(gkd_task_score(t, first, "1"), 1.0);
    ck_assert_double_eq(gkd_task_score(t, first, "1 "), 0.0);
    /* A tokenizer from other data: the error names file, line and character. */
    const char *texts[] = {"onetw12"};
    gkd_tokenizer *tok;
    ck_assert_int_eq(gkd_tokenizer_new_char(&tok, texts, 1), 0);
    int ids[64], pl, len, failed = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < gkd_task_size(t, s); i++) {
            const gkd_example *ex = gkd_task_example(t, s, i);
            int rc = gkd_task_encode_example(t, tok, s, i, ids, 64, &pl, &len);
            if (strcmp(ex->prompt, "four") == 0) {
                ck_assert_int_eq(rc, GKD_EINVAL);
                char want[600];
                snprintf(want, sizeof want, "%s:5: prompt: character 'f' (U+0066) at byte offset 0", c.path);
                ck_assert_msg(strstr(gkd_last_error(), want), "got '%s'", gkd_last_error());
                failed = 1;
            }
        }
    ck_assert(failed);
    gkd_tokenizer_free(tok);
    gkd_task_free(t);
    gkd_task_free(u);

    c.path = WRITE("notab.tsv", "a\tb\nc\td\nno tab here\ne\tf\n");
    char want[600];
    snprintf(want, sizeof want, "%s:3: expected source<TAB>target, found no tab", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("empty_tgt.tsv", "a\tb\n\nc\t\n");
    snprintf(want, sizeof want, "%s:3: empty target", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("empty_src.tsv", "\tb\n");
    snprintf(want, sizeof want, "%s:1: empty source", c.path);
    expect_error(c, GKD_EFORMAT, want);
    /* A third column is the example's context (test_context_distill.c); a fourth is an error. */
    c.path = WRITE("three_tabs.tsv", "a\tb\nc\td\te\tf\n");
    snprintf(want, sizeof want, "%s:2: expected at most two tabs", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("utf8.tsv", "a\tb\nc\td\n\xC3\xA9\t\xC3\n");
    snprintf(want, sizeof want, "%s:3: invalid UTF-8 at byte 4", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("nul.tsv", "a\tb\nc\x00x\td\n");
    snprintf(want, sizeof want, "%s:2: NUL byte", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("blank.tsv", "\n\r\n");
    expect_error(c, GKD_EFORMAT, "no examples");
    c.path = WRITE("one_source.tsv", "a\tb\na\tc\n");
    expect_error(c, GKD_EINVAL, "at least 2 distinct prompts");
    snprintf(want, sizeof want, "%s/missing.tsv", tmpdir);
    c.path = want;
    expect_error(c, GKD_EIO, "missing.tsv: cannot open");

    /* Separate eval file: training lines with an eval source are dropped. */
    c.path = WRITE("train.tsv", "a\t1\nb\t2\nc\t3\nb\t4\n");
    c.eval_path = WRITE("eval.tsv", "b\t9\nz\t8\n");
    t = make(c);
    ck_assert_uint_eq(gkd_task_size(t, GKD_SPLIT_EVAL), 2);
    ck_assert_uint_eq(gkd_task_size(t, GKD_SPLIT_TRAIN), 2);
    ck_assert_uint_eq(gkd_task_dropped_overlap(t), 2);
    assert_disjoint(t);
    const char *file;
    int line;
    ck_assert_int_eq(gkd_task_example_source(t, GKD_SPLIT_EVAL, 1, &file, &line), 0);
    ck_assert_str_eq(file, c.eval_path);
    ck_assert_int_eq(line, 2);
    gkd_task_free(t);
    c.eval_path = WRITE("eval_bad.tsv", "b\t9\nz8\n");
    snprintf(want, sizeof want, "%s:2: expected source<TAB>target", c.eval_path);
    expect_error(c, GKD_EFORMAT, want);
    remove_tmpdir();
}
END_TEST

START_TEST(test_text_file) {
    make_tmpdir();
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "text";
    c.chunk = 6;
    c.prompt_chars = 2;
    c.eval_fraction = 0.3;
    /* 35 characters (é is one) -> 5 chunks, the partial sixth dropped. */
    const char *content = "h\xC3\xA9llo\nworld\nthe quick\nbrown fox!\n..";
    c.path = write_file("t.txt", content, strlen(content));
    gkd_task *t = make(c);
    size_t n = gkd_task_size(t, GKD_SPLIT_TRAIN) + gkd_task_size(t, GKD_SPLIT_EVAL);
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(gkd_task_size(t, GKD_SPLIT_EVAL), 2); /* round(0.3 * 5) */
    assert_disjoint(t);
    /* Each chunk is prompt + reference at its place in the file. */
    const char *starts[] = {"h\xC3\xA9llo\n", "world\n", "the qu", "ick\nbr", "own fo"};
    const int lines[] = {1, 2, 3, 3, 4};
    int found[5] = {0};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < gkd_task_size(t, s); i++) {
            const gkd_example *ex = gkd_task_example(t, s, i);
            char joined[64];
            snprintf(joined, sizeof joined, "%s%s", ex->prompt, ex->reference);
            const char *file;
            int line;
            gkd_task_example_source(t, s, i, &file, &line);
            for (int k = 0; k < 5; k++)
                if (strcmp(joined, starts[k]) == 0) {
                    found[k]++;
                    ck_assert_int_eq(line, lines[k]);
                }
        }
    for (int k = 0; k < 5; k++) ck_assert_int_eq(found[k], 1);
    gkd_example ex0 = {"he", "llo\n", NULL, NULL};
    ck_assert_double_eq(gkd_task_score(t, &ex0, "llo\n"), 1.0);
    ck_assert_double_eq(gkd_task_score(t, &ex0, "llo"), 0.0);
    gkd_tokenizer *tok;
    ck_assert_int_eq(gkd_task_tokenizer(t, &tok), 0);
    ck_assert_int_eq(gkd_tokenizer_kind_of(tok), GKD_TOKENIZER_BYTE);
    gkd_tokenizer_free(tok);
    gkd_task_free(t);

    c.path = WRITE("bad.txt", "fine line\nsecond\nthird \xFF line\n");
    char want[600];
    snprintf(want, sizeof want, "%s:3: invalid UTF-8 at byte offset 23", c.path);
    expect_error(c, GKD_EFORMAT, want);
    c.path = WRITE("short.txt", "tiny");
    expect_error(c, GKD_EFORMAT, "need at least 2");
    c.path = WRITE("ok2.txt", "abcdefghijklmnop");
    c.prompt_chars = 6;
    expect_error(c, GKD_EINVAL, "prompt_chars");
    remove_tmpdir();
}
END_TEST

START_TEST(test_encode_context_generated) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.train = 10;
    c.eval = 3;
    gkd_task *t = make(c);
    const char *texts[] = {"+="};
    gkd_tokenizer *tok;
    ck_assert_int_eq(gkd_tokenizer_new_char(&tok, texts, 1), 0);
    int ids[64], pl, len;
    ck_assert_int_eq(gkd_task_encode_prompt(t, tok, GKD_SPLIT_EVAL, 2, ids, 64, &pl, &len), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "arith eval example 2: prompt: character '"));
    ck_assert_int_eq(gkd_task_encode_prompt(t, tok, GKD_SPLIT_EVAL, 3, ids, 64, &pl, &len), GKD_EINVAL);
    ck_assert_ptr_nonnull(strstr(gkd_last_error(), "out of range"));
    gkd_tokenizer_free(tok);
    ck_assert_int_eq(gkd_task_tokenizer(t, &tok), 0);
    ck_assert_int_eq(gkd_task_encode_prompt(t, tok, GKD_SPLIT_EVAL, 0, ids, 64, &pl, &len), 0);
    ck_assert_int_eq(pl, len);
    ck_assert_int_eq(ids[pl - 1], GKD_TOK_SEP);
    gkd_tokenizer_free(tok);
    gkd_task_free(t);
}
END_TEST

/* ---- the recorded training split and the eval overlap ---- */

/* Eval examples among the first n of `cur` whose prompt is a training
 * prompt of `old`, by brute force (no hashing). */
static size_t brute_overlap(const gkd_task *old, const gkd_task *cur, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n && i < gkd_task_size(cur, GKD_SPLIT_EVAL); i++)
        count += in_split(old, GKD_SPLIT_TRAIN, gkd_task_example(cur, GKD_SPLIT_EVAL, i)->prompt);
    return count;
}

static gkd_task_record *record_of(const gkd_task *t) {
    gkd_task_record *r = NULL;
    ck_assert_msg(gkd_task_record_new(&r, t) == 0, "%s", gkd_last_error());
    return r;
}

/* arith trained with data seed 1, evaluated with seed 2: the overlap is
 * counted exactly (equal to a brute-force count, and > 0 for 2-digit sums
 * where 300 training draws cover a good part of the 10^4 prompts); the
 * same seed gives 0; n limits the examples counted. */
START_TEST(test_overlap_arith_two_seeds) {
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.digits = 2;
    c.train = 3000;
    c.eval = 200;
    c.seed = 1;
    gkd_task *old = make(c);
    c.seed = 2;
    gkd_task *cur = make(c);
    gkd_task_record *r = record_of(old);
    ck_assert_uint_eq(r->train_n, 3000);
    ck_assert_uint_eq(r->eval_n, 200);
    gkd_task_overlap ov;
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, cur, 0), 0);
    ck_assert_int_eq(ov.checked, 1);
    ck_assert_uint_eq(ov.eval_n, 200);
    ck_assert_uint_eq(ov.train_n, 3000);
    size_t want = brute_overlap(old, cur, 200);
    ck_assert_uint_gt(want, 20);
    ck_assert_uint_eq(ov.overlap, want);
    ck_assert_str_eq(ov.diff, "data seed 1 vs 2");
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, cur, 50), 0);
    ck_assert_uint_eq(ov.eval_n, 50);
    ck_assert_uint_eq(ov.overlap, brute_overlap(old, cur, 50));
    /* Its own eval split: disjoint by construction. */
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, old, 0), 0);
    ck_assert(ov.checked && ov.overlap == 0);
    ck_assert_str_eq(ov.diff, "");

    /* The policy: refused with the counts, or a warning when allowed. */
    char w[512], line[512];
    ck_assert_int_eq(gkd_task_check_eval_overlap(r, cur, 200, "teacher checkpoint t.ckpt", "task.seed",
                                                 "eval.allow_overlap", 0, w, sizeof w),
                     GKD_EMISMATCH);
    snprintf(line, sizeof line,
             "teacher checkpoint t.ckpt was trained on %zu of the 200 eval examples (data seed 1 vs 2); use the same "
             "task.seed, or eval.allow_overlap",
             want);
    ck_assert_str_eq(gkd_last_error(), line);
    ck_assert_int_eq(gkd_task_check_eval_overlap(r, cur, 200, "t", "task.seed", "X", 1, w, sizeof w), 0);
    ck_assert_msg(strstr(w, "was trained on") && strstr(w, "allowed by X"), "%s", w);
    ck_assert_int_eq(gkd_task_check_eval_overlap(r, old, 200, "t", "task.seed", "X", 0, w, sizeof w), 0);
    ck_assert_str_eq(w, "");
    ck_assert_int_eq(gkd_task_check_eval_overlap(NULL, cur, 200, "t", "task.seed", "X", 0, w, sizeof w), 0);
    ck_assert_str_eq(w, "");
    /* Another task entirely: said so. */
    c.digits = 3;
    gkd_task *three = make(c);
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, three, 0), 0);
    ck_assert_str_eq(ov.diff, "data seed 1 vs 2, digits 2 vs 3");
    ck_assert_uint_eq(ov.overlap, brute_overlap(old, three, 200));
    gkd_task_free(three);
    gkd_task_record_free(r);
    gkd_task_free(cur);
    gkd_task_free(old);
}
END_TEST

/* pairs without an eval file: the split is drawn from the seed, so another
 * seed puts training lines into eval; each line has its own prompt, so the
 * overlap is exactly the new eval prompts that were not old eval prompts. */
START_TEST(test_overlap_pairs_without_eval_file) {
    char dir[64], path[128];
    th_make_tmpdir(dir, sizeof dir, "gkd-overlap");
    snprintf(path, sizeof path, "%s/data.tsv", dir);
    char text[4096] = "";
    for (int i = 0; i < 100; i++) {
        char line[32];
        snprintf(line, sizeof line, "p%d\tr%d\n", i, i);
        strcat(text, line);
    }
    th_write_file(path, text);
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "pairs";
    c.path = path;
    c.eval_fraction = 0.2;
    c.seed = 5;
    gkd_task *old = make(c);
    c.seed = 6;
    gkd_task *cur = make(c);
    ck_assert_uint_eq(gkd_task_size(cur, GKD_SPLIT_EVAL), 20);
    size_t fresh = 0;
    for (size_t i = 0; i < 20; i++) fresh += !in_split(old, GKD_SPLIT_EVAL, gkd_task_example(cur, GKD_SPLIT_EVAL, i)->prompt);
    gkd_task_record *r = record_of(old);
    gkd_task_overlap ov;
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, cur, 0), 0);
    ck_assert_int_eq(ov.checked, 1);
    ck_assert_uint_eq(ov.overlap, fresh);
    ck_assert_uint_eq(ov.overlap, brute_overlap(old, cur, 20));
    ck_assert_uint_gt(ov.overlap, 0);
    ck_assert_str_eq(ov.diff, "data seed 5 vs 6");

    /* With an eval file, by hand: trained on data.tsv minus valid.tsv's
     * prompt p3; a new eval file with p1, p2 (trained on), p3 (eval when
     * trained) and q (unknown) overlaps in exactly 2. */
    char valid[128], fresh_path[128];
    snprintf(valid, sizeof valid, "%s/valid.tsv", dir);
    snprintf(fresh_path, sizeof fresh_path, "%s/new.tsv", dir);
    th_write_file(valid, "p3\tr3\n");
    th_write_file(fresh_path, "p1\tr1\np2\tx\np3\tr3\nq\tr\n");
    gkd_task_config e = c;
    e.eval_path = valid;
    gkd_task *trained = make(e);
    gkd_task_record *r2 = record_of(trained);
    e.eval_path = fresh_path;
    e.path = NULL; /* evaluation only */
    gkd_task *eval_only = make(e);
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r2, eval_only, 0), 0);
    ck_assert(ov.checked);
    ck_assert_uint_eq(ov.overlap, 2);
    ck_assert_uint_eq(ov.eval_n, 4);
    ck_assert_uint_eq(ov.train_n, 99);

    /* A data file changed since training: the overlap cannot be checked,
     * and the reason says which file. */
    th_write_file(path, "p1\tr1\np2\tr2\n");
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, cur, 0), 0);
    ck_assert_int_eq(ov.checked, 0);
    ck_assert_msg(strstr(ov.why, "data.tsv changed since") != NULL, "%s", ov.why);
    char w[1024];
    ck_assert_int_eq(gkd_task_check_eval_overlap(r, cur, 0, "checkpoint m.ckpt", "--data-seed", "X", 0, w, sizeof w), 0);
    ck_assert_msg(strstr(w, "checkpoint m.ckpt: eval overlap not checked: its training data ") != NULL, "%s", w);
    /* Missing. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(gkd_task_record_overlap(&ov, r, cur, 0), 0);
    ck_assert_int_eq(ov.checked, 0);
    ck_assert_msg(strstr(ov.why, "cannot read its training data") && strstr(ov.why, "data.tsv"), "%s", ov.why);
    gkd_task_free(eval_only);
    gkd_task_free(trained);
    gkd_task_record_free(r2);
    gkd_task_record_free(r);
    gkd_task_free(cur);
    gkd_task_free(old);
    th_remove_tmpdir(dir);
}
END_TEST

Suite *tasks_suite(void) {
    Suite *s = suite_create("tasks");
    TCase *tc = tcase_create("generated");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_generated_deterministic_and_disjoint, 0, 4);
    tcase_add_test(tc, test_too_few_prompts_is_an_error);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_arith_references);
    tcase_add_test(tc, test_arith_score_near_misses);
    tcase_add_test(tc, test_reverse_sort_references);
    tcase_add_loop_test(tc, test_reverse_utf8_by_code_point, 0, 2);
    tcase_add_test(tc, test_modes_distribution);
    tcase_add_test(tc, test_encode_context_generated);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("files");
    tcase_add_test(tf, test_pairs_file);
    tcase_add_test(tf, test_text_file);
    tcase_add_test(tf, test_overlap_arith_two_seeds);
    tcase_add_test(tf, test_overlap_pairs_without_eval_file);
    suite_add_tcase(s, tf);
    return s;
}
