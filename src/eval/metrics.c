/* Evaluation metrics (see include/gkd/metrics.h and docs/metrics.md).
 *
 * Strings become sequences of spans (a word or a code point, as bytes), and
 * an n-gram is a pointer to its first span; n-grams are compared span by
 * span, so no interning is needed. BLEU and chrF follow NLTK 3.8's code path
 * step by step, including its edge cases, so they match it to rounding. */
#include "gkd/metrics.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"

#define BLEU_ORDER 4
#define BLEU_MAX_ORDER 5 /* method5 also reads the 5-gram precision */
#define CHRF_MAX_ORDER 6
#define CHRF_EPSILON 1e-16 /* NLTK's fallback F when it is undefined */
#define BLEU_EPSILON 0.1 /* NLTK SmoothingFunction().method1 */
#define BLEU_K 5         /* NLTK SmoothingFunction().method4 */

typedef struct {
    const char *p;
    uint32_t len;
} span;

typedef struct {
    span *t;
    size_t n;
} seq;

/* ---- characters and words ---- */

/* Decodes one character at s (lenient): a valid UTF-8 sequence gives its code
 * point; an invalid byte is one character on its own (code point -1). */
static int next_char(const unsigned char *s, int32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = (int32_t)c; return 1; }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = -1; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = (int32_t)v;
    return len;
}

/* Python's str.isspace(), which str.split() and re's \s use. */
static int is_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Words (drop_space ignored) or characters (whitespace removed if drop_space). */
static int seq_build(seq *out, const char *text, gkd_metric_unit unit, int drop_space) {
    out->t = NULL;
    out->n = 0;
    size_t len = strlen(text);
    out->t = malloc((len + 1) * sizeof *out->t);
    if (!out->t) return -1;
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, word_start = 0;
    int in_word = 0;
    while (i < len) {
        int32_t cp;
        int l = next_char(s + i, &cp);
        int space = cp >= 0 && is_space(cp);
        if (unit == GKD_UNIT_CHARS) {
            if (!(drop_space && space)) out->t[out->n++] = (span){text + i, (uint32_t)l};
        } else if (space && in_word) {
            out->t[out->n++] = (span){text + word_start, (uint32_t)(i - word_start)};
            in_word = 0;
        } else if (!space && !in_word) {
            word_start = i;
            in_word = 1;
        }
        i += (size_t)l;
    }
    if (unit == GKD_UNIT_WORDS && in_word) out->t[out->n++] = (span){text + word_start, (uint32_t)(i - word_start)};
    return 0;
}

static size_t char_count(const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0;
    while (*s) {
        int32_t cp;
        s += next_char(s, &cp);
        n++;
    }
    return n;
}

/* ---- n-grams ---- */

static int span_cmp(const span *a, const span *b) {
    uint32_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, m);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int ngram_cmp(const span *a, const span *b, int n) {
    for (int k = 0; k < n; k++) {
        int c = span_cmp(a + k, b + k);
        if (c) return c;
    }
    return 0;
}

/* Stable merge sort of n-gram pointers (no qsort_r: keeps it portable). */
static void sort_ngrams(const span **v, const span **tmp, size_t m, int n) {
    if (m < 2) return;
    size_t h = m / 2;
    sort_ngrams(v, tmp, h, n);
    sort_ngrams(v + h, tmp, m - h, n);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < m) tmp[k++] = ngram_cmp(v[j], v[i], n) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < m) tmp[k++] = v[j++];
    memcpy(v, tmp, m * sizeof *v);
}

/* The sorted n-grams of order n of s. */
typedef struct {
    const span **g;
    size_t m;
} ngrams;

static int ngrams_build(ngrams *out, const seq *s, int n) {
    out->m = s->n >= (size_t)n ? s->n - (size_t)n + 1 : 0;
    out->g = malloc((out->m + 1) * sizeof *out->g);
    const span **tmp = malloc((out->m + 1) * sizeof *tmp);
    if (!out->g || !tmp) {
        free(out->g);
        free(tmp);
        out->g = NULL;
        return -1;
    }
    for (size_t i = 0; i < out->m; i++) out->g[i] = s->t + i;
    sort_ngrams(out->g, tmp, out->m, n);
    free(tmp);
    return 0;
}

/* Occurrences of g in the sorted list L. */
static size_t count_in(const ngrams *L, const span *g, int n) {
    size_t lo = 0, hi = L->m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ngram_cmp(L->g[mid], g, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t c = 0;
    while (lo + c < L->m && ngram_cmp(L->g[lo + c], g, n) == 0) c++;
    return c;
}

/* sum over distinct n-grams of min(count in a, count in b) (sorted lists). */
static size_t overlap(const ngrams *a, const ngrams *b, int n) {
    size_t i = 0, j = 0, tp = 0;
    while (i < a->m && j < b->m) {
        int c = ngram_cmp(a->g[i], b->g[j], n);
        if (c < 0) i++;
        else if (c > 0) j++;
        else {
            size_t ca = 0, cb = 0;
            const span *g = a->g[i];
            while (i < a->m && ngram_cmp(a->g[i], g, n) == 0) i++, ca++;
            while (j < b->m && ngram_cmp(b->g[j], g, n) == 0) j++, cb++;
            tp += ca < cb ? ca : cb;
        }
    }
    return tp;
}
/* A sentence prepared for BLEU: its tokens and sorted 1..orders-grams. */
typedef struct {
    seq s;
    int orders;
    ngrams ng[BLEU_MAX_ORDER + 1];
} bleu_sent;

static void bleu_sent_free(bleu_sent *b) {
    free(b->s.t);
    for (int n = 1; n <= BLEU_MAX_ORDER; n++) free(b->ng[n].g);
    memset(b, 0, sizeof *b);
}

static int bleu_sent_build(bleu_sent *b, const char *text, gkd_metric_unit unit, int orders) {
    memset(b, 0, sizeof *b);
    b->orders = orders;
    if (seq_build(&b->s, text, unit, 0)) return -1;
    for (int n = 1; n <= orders; n++)
        if (ngrams_build(&b->ng[n], &b->s, n)) {
            bleu_sent_free(b);
            return -1;
        }
    return 0;
}

/* Corpus-level BLEU statistics, accumulated as NLTK's corpus_bleu does.
 * Order 5 is counted only for method5/method7, which read it. */
typedef struct {
    uint64_t num[BLEU_MAX_ORDER + 1], den[BLEU_MAX_ORDER + 1];
    uint64_t hyp_len, ref_len;
} bleu_stats;

static void bleu_add(bleu_stats *st, const bleu_sent *hyp, const bleu_sent *const *refs, size_t n_refs) {
    for (int n = 1; n <= hyp->orders; n++) {
        const ngrams *H = &hyp->ng[n];
        uint64_t num = 0;
        for (size_t i = 0; i < H->m;) {
            size_t c = 1;
            while (i + c < H->m && ngram_cmp(H->g[i + c], H->g[i], n) == 0) c++;
            size_t best = 0;
            for (size_t r = 0; r < n_refs; r++) {
                size_t k = count_in(&refs[r]->ng[n], H->g[i], n);
                if (k > best) best = k;
            }
            num += c < best ? c : best;
            i += c;
        }
        st->num[n] += num;
        st->den[n] += H->m > 0 ? H->m : 1;
    }
    size_t h = hyp->s.n;
    st->hyp_len += h;
    /* Closest reference length, the shorter one on a tie. */
    size_t best = 0, best_diff = SIZE_MAX;
    for (size_t r = 0; r < n_refs; r++) {
        size_t l = refs[r]->s.n, d = l > h ? l - h : h - l;
        if (d < best_diff || (d == best_diff && l < best)) best = l, best_diff = d;
    }
    st->ref_len += best;
}

/* n-gram orders a smoothing method reads. */
static int smoothing_orders(gkd_bleu_smoothing sm) {
    return sm == GKD_BLEU_METHOD5 || sm == GKD_BLEU_METHOD7 ? BLEU_MAX_ORDER : BLEU_ORDER;
}

/* BLEU from the statistics, step by step as NLTK 3.8's corpus_bleu and
 * SmoothingFunction (defaults epsilon 0.1, k 5). */
static double bleu_score(const bleu_stats *st, gkd_bleu_smoothing sm) {
    if (st->num[1] == 0) return 0.0;
    double bp;
    if (st->hyp_len > st->ref_len) bp = 1.0;
    else if (st->hyp_len == 0) bp = 0.0;
    else bp = exp(1.0 - (double)st->ref_len / (double)st->hyp_len);
    double p[BLEU_ORDER + 1];
    int k = 1; /* NLTK's incvnt: 1 for the first smoothed order, then 2, ... */
    for (int n = 1; n <= BLEU_ORDER; n++) {
        uint64_t num = st->num[n], den = st->den[n];
        p[n] = (double)num / (double)den;
        switch (sm) {
        case GKD_BLEU_METHOD0:
            if (num == 0) p[n] = DBL_MIN;
            break;
        case GKD_BLEU_METHOD1:
            if (num == 0) p[n] = BLEU_EPSILON / (double)den;
            break;
        case GKD_BLEU_METHOD2:
            if (n > 1) p[n] = (double)(num + 1) / (double)(den + 1);
            break;
        case GKD_BLEU_METHOD3:
            if (num == 0) p[n] = 1.0 / (double)((UINT64_C(1) << k++) * den);
            break;
        case GKD_BLEU_METHOD4:
        case GKD_BLEU_METHOD7:
            /* A one-token hypothesis keeps its zeros (dropped from the sum). */
            if (num == 0 && st->hyp_len > 1) {
                double t = (double)((UINT64_C(1) << k++) * BLEU_K) / log((double)st->hyp_len);
                p[n] = (1.0 / t) / (double)den;
            }
            break;
        case GKD_BLEU_METHOD5:
            break;
        }
    }
    if (sm == GKD_BLEU_METHOD5 || sm == GKD_BLEU_METHOD7) {
        /* Mean of the (n-1, n, n+1)-gram precisions; before order 1 stands
         * p1 + 1, after order 4 the unsmoothed 5-gram precision. */
        double raw[BLEU_MAX_ORDER + 1];
        memcpy(raw, p, sizeof p);
        raw[BLEU_MAX_ORDER] = (double)st->num[BLEU_MAX_ORDER] / (double)st->den[BLEU_MAX_ORDER];
        double prev = raw[1] + 1;
        for (int n = 1; n <= BLEU_ORDER; n++) prev = p[n] = (prev + raw[n] + raw[n + 1]) / 3;
    }
    /* NLTK sums the weighted logs of the positive precisions with math.fsum
     * (exactly rounded); long double accumulation of four terms rounds the
     * same way in practice. */
    long double s = 0;
    for (int n = 1; n <= BLEU_ORDER; n++)
        if (p[n] > 0) s += (long double)(0.25 * log(p[n]));
    return bp * exp((double)s);
}

static int smoothing_known(gkd_bleu_smoothing sm) {
    return sm == GKD_BLEU_METHOD0 || sm == GKD_BLEU_METHOD1 || sm == GKD_BLEU_METHOD2 || sm == GKD_BLEU_METHOD3 ||
           sm == GKD_BLEU_METHOD4 || sm == GKD_BLEU_METHOD5 || sm == GKD_BLEU_METHOD7;
}

static int corpus_smoothing(gkd_bleu_smoothing sm) { return smoothing_known(sm) && smoothing_orders(sm) == BLEU_ORDER; }

static int check_unit(gkd_metric_unit unit, const char *fn) {
    if (unit != GKD_UNIT_WORDS && unit != GKD_UNIT_CHARS)
        return gkd_error(GKD_EINVAL, "%s: unit %d is not GKD_UNIT_WORDS or GKD_UNIT_CHARS", fn, (int)unit);
    return 0;
}

static int check_smoothing(gkd_bleu_smoothing sm, int corpus, const char *fn) {
    if (!smoothing_known(sm))
        return gkd_error(GKD_EINVAL, "%s: unknown BLEU smoothing %d (valid: %s)", fn, (int)sm,
                         corpus ? GKD_BLEU_SMOOTHING_CORPUS_NAMES : GKD_BLEU_SMOOTHING_NAMES);
    if (corpus && !corpus_smoothing(sm))
        return gkd_error(GKD_EINVAL,
                         "%s: BLEU smoothing %s is not defined for corpus BLEU (NLTK 3.8 applies it to the "
                         "corpus's last sentence only; valid: %s)",
                         fn, gkd_bleu_smoothing_name(sm), GKD_BLEU_SMOOTHING_CORPUS_NAMES);
    return 0;
}

const char *gkd_bleu_smoothing_name(gkd_bleu_smoothing sm) {
    static const char *const names[] = {"method0", "method1", "method2", "method3",
                                        "method4", "method5", "method6", "method7"};
    return smoothing_known(sm) ? names[sm] : NULL;
}

int gkd_bleu_smoothing_parse(gkd_bleu_smoothing *out, const char *name, int corpus) {
    const char *valid = corpus ? GKD_BLEU_SMOOTHING_CORPUS_NAMES : GKD_BLEU_SMOOTHING_NAMES;
    for (int k = 0; k <= (int)GKD_BLEU_METHOD7; k++) {
        const char *known = gkd_bleu_smoothing_name((gkd_bleu_smoothing)k);
        if (!known || strcmp(known, name) != 0) continue;
        if (corpus && !corpus_smoothing((gkd_bleu_smoothing)k))
            return gkd_error(GKD_EINVAL,
                             "BLEU smoothing '%s' is not defined for corpus BLEU (NLTK 3.8 applies it to the "
                             "corpus's last sentence only); valid: %s",
                             name, valid);
        *out = (gkd_bleu_smoothing)k;
        return 0;
    }
    if (strcmp(name, "method6") == 0)
        return gkd_error(GKD_EINVAL,
                         "BLEU smoothing 'method6' is not supported (NLTK 3.8 fails on outputs without a trigram "
                         "match); valid: %s",
                         valid);
    return gkd_error(GKD_EINVAL, "unknown BLEU smoothing '%s' (valid: %s)", name, valid);
}

/* ---- public string metrics ---- */

double gkd_metric_exact_match(const char *const *outputs, const char *const *refs, size_t n) {
    if (n == 0) return 0.0;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) hits += strcmp(outputs[i], refs[i]) == 0;
    return (double)hits / (double)n;
}

static int oom(const char *fn) { return gkd_error(GKD_ENOMEM, "%s: out of memory", fn); }

int gkd_metric_edit_distance(size_t *out, const char *a, const char *b) {
    seq x, y;
    if (seq_build(&x, a, GKD_UNIT_CHARS, 0)) return oom("edit distance");
    if (seq_build(&y, b, GKD_UNIT_CHARS, 0)) {
        free(x.t);
        return oom("edit distance");
    }
    size_t *row = malloc((y.n + 1) * sizeof *row);
    if (row) {
        for (size_t j = 0; j <= y.n; j++) row[j] = j;
        for (size_t i = 1; i <= x.n; i++) {
            size_t diag = row[0];
            row[0] = i;
            for (size_t j = 1; j <= y.n; j++) {
                size_t up = row[j];
                size_t sub = diag + (span_cmp(&x.t[i - 1], &y.t[j - 1]) != 0);
                size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
                row[j] = sub < best ? sub : best;
                diag = up;
            }
        }
        *out = row[y.n];
    }
    free(row);
    free(x.t);
    free(y.t);
    return row ? 0 : oom("edit distance");
}

int gkd_metric_char_accuracy(double *out, const char *const *outputs, const char *const *refs, size_t n) {
    if (n == 0) {
        *out = 0.0;
        return 0;
    }
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t lr = char_count(refs[i]);
        if (lr == 0) {
            sum += outputs[i][0] == '\0';
            continue;
        }
        size_t d;
        int rc = gkd_metric_edit_distance(&d, outputs[i], refs[i]);
        if (rc) return gkd_error_wrap(rc, "char_accuracy");
        double acc = 1.0 - (double)d / (double)lr;
        sum += acc > 0 ? acc : 0;
    }
    *out = sum / (double)n;
    return 0;
}

int gkd_metric_corpus_bleu(double *out, const char *const *hyps, const char *const *refs, const size_t *refs_per,
                           size_t n, gkd_metric_unit unit, gkd_bleu_smoothing smoothing) {
    int rc = check_unit(unit, "bleu");
    if (rc || (rc = check_smoothing(smoothing, 1, "bleu"))) return rc;
    for (size_t i = 0; refs_per && i < n; i++)
        if (refs_per[i] == 0) return gkd_error(GKD_EINVAL, "bleu: hypothesis %zu has no reference", i);
    bleu_stats st;
    memset(&st, 0, sizeof st);
    bleu_sent h, *r = NULL;
    const bleu_sent **rp = NULL;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = refs_per ? refs_per[i] : 1;
        if (bleu_sent_build(&h, hyps[i], unit, BLEU_ORDER)) return oom("bleu");
        r = calloc(k + 1, sizeof *r);
        rp = calloc(k + 1, sizeof *rp);
        int ok = r && rp;
        size_t built = 0;
        for (; ok && built < k; built++) {
            if (bleu_sent_build(&r[built], refs[off + built], unit, BLEU_ORDER)) ok = 0;
            else rp[built] = &r[built];
        }
        if (ok) bleu_add(&st, &h, rp, k);
        bleu_sent_free(&h);
        for (size_t j = 0; r && j < built; j++) bleu_sent_free(&r[j]);
        free(r);
        free(rp);
        if (!ok) return oom("bleu");
        off += k;
    }
    *out = bleu_score(&st, smoothing);
    return 0;
}

int gkd_metric_sentence_bleu(double *out, const char *hyp, const char *const *refs, size_t n_refs,
                             gkd_metric_unit unit, gkd_bleu_smoothing smoothing) {
    int rc = check_unit(unit, "sentence bleu");
    if (rc || (rc = check_smoothing(smoothing, 0, "sentence bleu"))) return rc;
    if (n_refs == 0) return gkd_error(GKD_EINVAL, "sentence bleu: no reference");
    const int orders = smoothing_orders(smoothing);
    bleu_stats st;
    memset(&st, 0, sizeof st);
    bleu_sent h;
    bleu_sent *r = calloc(n_refs + 1, sizeof *r);
    const bleu_sent **rp = calloc(n_refs + 1, sizeof *rp);
    size_t built = 0;
    rc = oom("sentence bleu");
    if (!r || !rp || bleu_sent_build(&h, hyp, unit, orders)) goto done;
    for (; built < n_refs; built++) {
        if (bleu_sent_build(&r[built], refs[built], unit, orders)) {
            bleu_sent_free(&h);
            goto done;
        }
        rp[built] = &r[built];
    }
    bleu_add(&st, &h, rp, n_refs);
    bleu_sent_free(&h);
    *out = bleu_score(&st, smoothing);
    rc = 0;
done:
    for (size_t j = 0; r && j < built; j++) bleu_sent_free(&r[j]);
    free(r);
    free(rp);
    return rc;
}

/* Stable bottom-up merge sort of indices into `all` by n-gram, so equal
 * n-grams keep their sample order. */
static void sort_indices(size_t *idx, size_t *tmp, size_t m, const span *const *all, int n) {
    for (size_t width = 1; width < m; width *= 2) {
        for (size_t lo = 0; lo < m; lo += 2 * width) {
            size_t mid = lo + width < m ? lo + width : m, hi = lo + 2 * width < m ? lo + 2 * width : m;
            size_t a = lo, b = mid, w = lo;
            while (a < mid && b < hi) tmp[w++] = ngram_cmp(all[idx[b]], all[idx[a]], n) < 0 ? idx[b++] : idx[a++];
            while (a < mid) tmp[w++] = idx[a++];
            while (b < hi) tmp[w++] = idx[b++];
        }
        memcpy(idx, tmp, m * sizeof *idx);
    }
}

/* Self-BLEU in O(total n-grams log): for each distinct n-gram, the largest
 * count in any sample and the runner-up give, for every sample i, the largest
 * count among the OTHER samples (the clip of NLTK's multi-reference
 * modified precision) without comparing sample pairs. */
int gkd_metric_self_bleu(double *out, const char *const *samples, size_t n, gkd_metric_unit unit,
                         gkd_bleu_smoothing smoothing) {
    int rc = check_unit(unit, "self_bleu");
    if (rc || (rc = check_smoothing(smoothing, 0, "self_bleu"))) return rc;
    if (n < 2) {
        *out = NAN; /* undefined: no other sample to compare with */
        return 0;
    }
    const int orders = smoothing_orders(smoothing);
    seq *s = calloc(n, sizeof *s);
    bleu_stats *st = calloc(n, sizeof *st);
    const span **all = NULL;
    size_t *owner = NULL, *tmpi = NULL, *where = NULL, *hist = NULL;
    size_t built = 0, total_tokens = 0;
    rc = oom("self_bleu");
    if (!s || !st) goto done;
    for (; built < n; built++) {
        if (seq_build(&s[built], samples[built], unit, 0)) goto done;
        total_tokens += s[built].n;
    }
    all = malloc((total_tokens + 1) * sizeof *all);
    tmpi = malloc((total_tokens + 1) * sizeof *tmpi);
    owner = malloc((total_tokens + 1) * sizeof *owner);
    /* where[k]: the sample n-gram all[k] belongs to. */
    where = malloc((total_tokens + 1) * sizeof *where);
    if (!all || !tmpi || !owner || !where) goto done;
    for (int order = 1; order <= orders; order++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            size_t mi = s[i].n >= (size_t)order ? s[i].n - (size_t)order + 1 : 0;
            for (size_t k = 0; k < mi; k++) all[m++] = s[i].t + k;
            st[i].den[order] = mi > 0 ? mi : 1;
        }
        size_t k0 = 0;
        for (size_t i = 0; i < n; i++) {
            size_t mi = s[i].n >= (size_t)order ? s[i].n - (size_t)order + 1 : 0;
            for (size_t k = 0; k < mi; k++) where[k0 + k] = i;
            k0 += mi;
        }
        for (size_t k = 0; k < m; k++) owner[k] = k;
        sort_indices(owner, tmpi, m, all, order);
        for (size_t g = 0; g < m;) {
            size_t end = g + 1;
            while (end < m && ngram_cmp(all[owner[end]], all[owner[g]], order) == 0) end++;
            /* Per-sample runs inside the group: max, its sample, runner-up. */
            size_t best = 0, best_i = SIZE_MAX, second = 0;
            for (size_t r = g; r < end;) {
                size_t i = where[owner[r]], c = 0;
                while (r < end && where[owner[r]] == i) r++, c++;
                if (c > best) second = best, best = c, best_i = i;
                else if (c > second) second = c;
            }
            for (size_t r = g; r < end;) {
                size_t i = where[owner[r]], c = 0;
                while (r < end && where[owner[r]] == i) r++, c++;
                size_t clip = i == best_i ? second : best;
                st[i].num[order] += c < clip ? c : clip;
            }
            g = end;
        }
    }
    /* Closest other length (the shorter on a tie) from a length histogram. */
    size_t max_len = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].n > max_len) max_len = s[i].n;
    hist = calloc(max_len + 1, sizeof *hist);
    if (!hist) goto done;
    for (size_t i = 0; i < n; i++) hist[s[i].n]++;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = s[i].n, bestl = h;
        hist[h]--; /* exclude the sample itself */
        for (size_t d = 0; d <= max_len; d++) {
            if (d <= h && hist[h - d]) { bestl = h - d; break; }
            if (h + d <= max_len && hist[h + d]) { bestl = h + d; break; }
        }
        hist[h]++;
        st[i].hyp_len = h;
        st[i].ref_len = bestl;
        sum += bleu_score(&st[i], smoothing);
    }
    *out = sum / (double)n;
    rc = 0;
done:
    for (size_t j = 0; s && j < built; j++) free(s[j].t);
    free(s);
    free(st);
    free(all);
    free(tmpi);
    free(owner);
    free(where);
    free(hist);
    return rc;
}

/* F_beta of order n for one pair, NLTK's chrf_precision_recall_fscore_support. */
static double chrf_order(const seq *h, const seq *r, int n, double beta, int *fail) {
    ngrams H, R;
    if (ngrams_build(&H, h, n)) { *fail = 1; return 0; }
    if (ngrams_build(&R, r, n)) { free(H.g); *fail = 1; return 0; }
    size_t tp = overlap(&H, &R, n);
    double f = CHRF_EPSILON;
    if (H.m > 0 && R.m > 0) {
        double prec = (double)tp / (double)H.m, rec = (double)tp / (double)R.m;
        double factor = beta * beta, den = factor * prec + rec;
        if (den != 0) f = (1 + factor) * (prec * rec) / den;
    }
    free(H.g);
    free(R.g);
    return f;
}

int gkd_metric_corpus_chrf(double *out, const char *const *hyps, const char *const *refs, size_t n, double beta) {
    if (!(beta >= 0 && isfinite(beta))) return gkd_error(GKD_EINVAL, "chrf: beta %g is not a finite number >= 0", beta);
    if (n == 0) {
        *out = 0.0;
        return 0;
    }
    double total[CHRF_MAX_ORDER + 1] = {0};
    int fail = 0;
    for (size_t i = 0; i < n && !fail; i++) {
        seq h, r;
        if (seq_build(&h, hyps[i], GKD_UNIT_CHARS, 1)) return oom("chrf");
        if (seq_build(&r, refs[i], GKD_UNIT_CHARS, 1)) {
            free(h.t);
            return oom("chrf");
        }
        for (int k = 1; k <= CHRF_MAX_ORDER; k++) total[k] += chrf_order(&h, &r, k, beta, &fail);
        free(h.t);
        free(r.t);
    }
    if (fail) return oom("chrf");
    double sum = 0;
    for (int k = 1; k <= CHRF_MAX_ORDER; k++) sum += total[k];
    *out = sum / CHRF_MAX_ORDER / (double)n;
    return 0;
}

int gkd_metric_sentence_chrf(double *out, const char *hyp, const char *ref, double beta) {
    return gkd_metric_corpus_chrf(out, &hyp, &ref, 1, beta);
}

int gkd_metric_rouge_l_pair(double *out, const char *output, const char *ref) {
    seq a, b;
    if (seq_build(&a, output, GKD_UNIT_WORDS, 0)) return oom("rouge_l");
    if (seq_build(&b, ref, GKD_UNIT_WORDS, 0)) {
        free(a.t);
        return oom("rouge_l");
    }
    double f = 0.0;
    size_t *row = malloc((b.n + 1) * sizeof *row);
    if (row && a.n > 0 && b.n > 0) {
        memset(row, 0, (b.n + 1) * sizeof *row);
        for (size_t i = 1; i <= a.n; i++) {
            size_t diag = 0;
            for (size_t j = 1; j <= b.n; j++) {
                size_t up = row[j];
                row[j] = span_cmp(&a.t[i - 1], &b.t[j - 1]) == 0 ? diag + 1 : (up > row[j - 1] ? up : row[j - 1]);
                diag = up;
            }
        }
        size_t lcs = row[b.n];
        if (lcs > 0) {
            double p = (double)lcs / (double)a.n, r = (double)lcs / (double)b.n;
            f = 2 * p * r / (p + r);
        }
    }
    free(row);
    free(a.t);
    free(b.t);
    if (!row) return oom("rouge_l");
    *out = f;
    return 0;
}

int gkd_metric_rouge_l(double *out, const char *const *outputs, const char *const *refs, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double f;
        int rc = gkd_metric_rouge_l_pair(&f, outputs[i], refs[i]);
        if (rc) return rc;
        sum += f;
    }
    *out = n ? sum / (double)n : 0.0;
    return 0;
}

int gkd_metric_distinct_n(double *out, const char *const *samples, size_t n, int order, gkd_metric_unit unit) {
    int rc = check_unit(unit, "distinct_n");
    if (rc) return rc;
    if (order < 1) return gkd_error(GKD_EINVAL, "distinct_n: order %d is not >= 1", order);
    seq *s = calloc(n + 1, sizeof *s);
    if (!s) return oom("distinct_n");
    size_t built = 0, total = 0;
    const span **all = NULL, **tmp = NULL;
    rc = oom("distinct_n");
    for (; built < n; built++) {
        if (seq_build(&s[built], samples[built], unit, 0)) goto done;
        if (s[built].n >= (size_t)order) total += s[built].n - (size_t)order + 1;
    }
    if (total == 0) {
        *out = 0.0;
        rc = 0;
        goto done;
    }
    all = malloc(total * sizeof *all);
    tmp = malloc(total * sizeof *tmp);
    if (!all || !tmp) goto done;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k + (size_t)order <= s[i].n; k++) all[m++] = s[i].t + k;
    sort_ngrams(all, tmp, m, order);
    size_t distinct = 1;
    for (size_t k = 1; k < m; k++) distinct += ngram_cmp(all[k - 1], all[k], order) != 0;
    *out = (double)distinct / (double)total;
    rc = 0;
done:
    for (size_t j = 0; j < built; j++) free(s[j].t);
    free(s);
    free(all);
    free(tmp);
    return rc;
}

double gkd_metric_mean_len(const char *const *outputs, size_t n) {
    if (n == 0) return 0.0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)char_count(outputs[i]);
    return sum / (double)n;
}

double gkd_metric_eos_rate(const unsigned char *eos, size_t n) {
    if (n == 0) return 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += eos[i] != 0;
    return (double)k / (double)n;
}

/* ---- logits ---- */

/* log-sum-exp of a row, in double. */
static double row_lse(const float *z, int V) {
    double m = z[0];
    for (int v = 1; v < V; v++)
        if (z[v] > m) m = z[v];
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - m);
    return m + log(s);
}

double gkd_metric_nll(const float *logits, const int *targets, const float *mask, int N, int V) {
    double sum = 0;
    long count = 0;
    for (int n = 0; n < N; n++) {
        if (mask && mask[n] == 0) continue;
        const float *z = logits + (size_t)n * V;
        sum += row_lse(z, V) - (double)z[targets[n]];
        count++;
    }
    return count ? sum / (double)count : 0.0;
}

double gkd_metric_token_accuracy(const float *logits, const int *targets, const float *mask, int N, int V) {
    long hits = 0, count = 0;
    for (int n = 0; n < N; n++) {
        if (mask && mask[n] == 0) continue;
        const float *z = logits + (size_t)n * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > z[best]) best = v;
        hits += best == targets[n];
        count++;
    }
    return count ? (double)hits / (double)count : 0.0;
}

double gkd_metric_kl(const float *teacher_logits, const float *student_logits, const float *mask, int N,
                     int V, int reverse) {
    double sum = 0;
    long count = 0;
    for (int n = 0; n < N; n++) {
        if (mask && mask[n] == 0) continue;
        const float *zt = teacher_logits + (size_t)n * V, *zs = student_logits + (size_t)n * V;
        /* KL(a || b) with a the teacher (forward) or the student (reverse). */
        const float *za = reverse ? zs : zt, *zb = reverse ? zt : zs;
        double la = row_lse(za, V), lb = row_lse(zb, V), kl = 0;
        for (int v = 0; v < V; v++) {
            double loga = (double)za[v] - la, a = exp(loga);
            if (a > 0) kl += a * (loga - ((double)zb[v] - lb));
        }
        sum += kl > 0 ? kl : 0; /* rounding can leave -1e-17 for equal rows */
        count++;
    }
    return count ? sum / (double)count : 0.0;
}

double gkd_metric_accept_rate(const float *teacher_logits, const float *student_logits, const float *mask,
                              int N, int V) {
    double sum = 0;
    long count = 0;
    for (int n = 0; n < N; n++) {
        if (mask && mask[n] == 0) continue;
        const float *zt = teacher_logits + (size_t)n * V, *zs = student_logits + (size_t)n * V;
        double lt = row_lse(zt, V), ls = row_lse(zs, V), acc = 0;
        for (int v = 0; v < V; v++) acc += fmin(exp((double)zt[v] - lt), exp((double)zs[v] - ls));
        sum += acc;
        count++;
    }
    return count ? sum / (double)count : 0.0;
}

double gkd_metric_expected_accepted(double a, int gamma) {
    if (a >= 1.0) return gamma + 1.0;
    if (a <= 0.0) return 1.0;
    return (1.0 - pow(a, gamma + 1.0)) / (1.0 - a);
}


/* ---- known distribution ---- */

void gkd_metric_modes(const gkd_task *t, gkd_split split, size_t n_examples, const char *const *samples,
                      size_t m, double *precision, double *coverage) {
    size_t valid = 0;
    double cov = 0;
    for (size_t i = 0; i < n_examples; i++) {
        size_t K = gkd_task_num_continuations(t, split, i);
        /* Mark each continuation seen at most once (K is at most 1024). */
        unsigned char seen[1024] = {0};
        for (size_t j = 0; j < m; j++) {
            const char *s = samples[i * m + j];
            for (size_t k = 0; k < K && k < sizeof seen; k++) {
                double p;
                if (strcmp(gkd_task_continuation(t, split, i, k, &p), s) == 0) {
                    valid++;
                    if (!seen[k]) cov += p;
                    seen[k] = 1;
                    break;
                }
            }
        }
    }
    *precision = n_examples && m ? (double)valid / ((double)n_examples * (double)m) : 0.0;
    *coverage = n_examples ? cov / (double)n_examples : 0.0;
}

int gkd_metric_kl_data(double *out, const gkd_task *t, gkd_split split, size_t n_examples, gkd_logprob_fn logprob,
                       void *ctx) {
    double sum = 0;
    for (size_t i = 0; i < n_examples; i++) {
        size_t K = gkd_task_num_continuations(t, split, i);
        for (size_t k = 0; k < K; k++) {
            double p, lq;
            const char *c = gkd_task_continuation(t, split, i, k, &p);
            if (!(p > 0)) continue;
            int rc = logprob(&lq, ctx, i, c);
            if (rc) return gkd_error_wrap(rc, "kl_data: example %zu, continuation '%s'", i, c);
            sum += p * (log(p) - lq);
        }
    }
    *out = n_examples ? sum / (double)n_examples : 0.0;
    return 0;
}
