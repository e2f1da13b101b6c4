/* arith: integer addition, subtraction or multiplication.
 *
 * Operands are uniform in [0, 10^digits) and written without leading zeros;
 * sub swaps them so the result is never negative. Prompt "a+b=" (or "a-b=",
 * "a*b="); reference the decimal result, or with rationale=1 a step-by-step
 * rationale, a space, the final-answer marker "->" and the result:
 *
 *   add  one step per digit position, least significant first, operands
 *        zero-padded to `digits`: "a+b[+1]=dcK" (+1 when a carry comes in,
 *        d the result digit, K the carry out)
 *            57+68=   ->  "7+8=5c1 5+6+1=2c1 ->125"
 *   sub  the same with borrows: "a-b[-1]=dbK"
 *            52-17=   ->  "2-7=5b1 5-1-1=3b0 ->35"
 *   mul  one partial product per digit of the second operand (padded),
 *        least significant first: "a*m=p" with m = digit * 10^position
 *            123*45=  ->  "123*5=615 123*40=4920 ->5535"
 *
 * Every example's `rationale` field holds the steps alone ("7+8=5c1
 * 5+6+1=2c1"), whatever rationale is set to, for distilling step-by-step
 * and as a teacher's context.
 *
 * Contexts (task.context, what the teacher sees before the prompt):
 *   rationale       the example's own steps and " ;": "7+8=5c1 5+6+1=2c1 ;"
 *   worked_example  one fixed problem of the same op and digits (operands
 *                   the first `digits` digits of 473829156 and 851629374)
 *                   with its rationale and answer, and " ;":
 *                   "47+85=7+5=2c1 4+8+1=3c1 ->132 ;" (sub swaps them as
 *                   gen does: "8-4=8-4=4b0 ->4 ;")
 * ";" appears in no prompt or reference, so a teacher learns where the
 * context ends.
 *
 * Score: 1 if the final answer (the text after the last "->" with a
 * rationale, the whole output without) equals the reference's; an output
 * without the marker scores 0 when rationales are on. With student.targets
 * the references change form (task_targets.c): answer and multitask
 * compare whole answers, rationale+answer the text after the marker. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

#define FINAL_MARKER "->"

enum { OP_ADD, OP_SUB, OP_MUL };

static int op_of(const char *op) {
    if (!op) return OP_ADD;
    if (strcmp(op, "add") == 0) return OP_ADD;
    if (strcmp(op, "sub") == 0) return OP_SUB;
    if (strcmp(op, "mul") == 0) return OP_MUL;
    return -1;
}

static int digit_at(uint64_t v, int i) {
    while (i-- > 0) v /= 10;
    return (int)(v % 10);
}

static int rationale(strbuf *b, int op, uint64_t x, uint64_t y, int digits) {
    int rc = 0, carry = 0;
    for (int i = 0; i < digits && !rc; i++) {
        int a = digit_at(x, i), c = digit_at(y, i);
        if (op == OP_ADD) {
            int s = a + c + carry;
            rc = carry ? strbuf_printf(b, "%d+%d+1=%dc%d ", a, c, s % 10, s / 10)
                       : strbuf_printf(b, "%d+%d=%dc%d ", a, c, s % 10, s / 10);
            carry = s / 10;
        } else if (op == OP_SUB) {
            int d = a - c - carry, borrow = d < 0;
            rc = carry ? strbuf_printf(b, "%d-%d-1=%db%d ", a, c, d + 10 * borrow, borrow)
                       : strbuf_printf(b, "%d-%d=%db%d ", a, c, d + 10 * borrow, borrow);
            carry = borrow;
        } else {
            uint64_t m = (uint64_t)c;
            for (int k = 0; k < i; k++) m *= 10;
            rc = strbuf_printf(b, "%llu*%llu=%llu ", (unsigned long long)x, (unsigned long long)m,
                               (unsigned long long)(x * m));
        }
    }
    return rc;
}

static int gen(const gkd_task *t, gkd_rng *rng, char **prompt, char **reference) {
    uint64_t limit = 1;
    for (int i = 0; i < t->cfg.digits; i++) limit *= 10;
    uint64_t x = gkd_rng_below(rng, (uint32_t)limit), y = gkd_rng_below(rng, (uint32_t)limit);
    int op = op_of(t->cfg.op);
    if (op == OP_SUB && x < y) {
        uint64_t tmp = x;
        x = y;
        y = tmp;
    }
    uint64_t z = op == OP_ADD ? x + y : op == OP_SUB ? x - y : x * y;
    char p[64];
    snprintf(p, sizeof p, "%llu%c%llu=", (unsigned long long)x, "+-*"[op], (unsigned long long)y);
    strbuf r = {0};
    int rc = 0;
    if (t->cfg.rationale) {
        if ((rc = rationale(&r, op, x, y, t->cfg.digits))) goto fail;
        if ((rc = strbuf_printf(&r, FINAL_MARKER "%llu", (unsigned long long)z))) goto fail;
    } else if ((rc = strbuf_printf(&r, "%llu", (unsigned long long)z))) {
        goto fail;
    }
    *prompt = strdup(p);
    if (!*prompt) { rc = gkd_error(GKD_ENOMEM, "out of memory"); goto fail; }
    *reference = r.s;
    return 0;
fail:
    free(r.s);
    return rc;
}

/* ex->rationale: the steps of its rationale without the trailing space
 * (what the reference holds before " ->" with rationale=1), made for every
 * example so that a rationale can be a target or a context whatever the
 * reference is. The operands are read back from the prompt. */
static int fill_rationale(const gkd_task *t, gkd_example *ex) {
    unsigned long long x, y;
    char sign;
    if (sscanf(ex->prompt, "%llu%c%llu=", &x, &sign, &y) != 3)
        return gkd_error(GKD_EINVAL, "arith: prompt '%s' is not a=b form", ex->prompt);
    strbuf r = {0};
    int rc = rationale(&r, op_of(t->cfg.op), (uint64_t)x, (uint64_t)y, t->cfg.digits);
    if (rc) {
        free(r.s);
        return rc;
    }
    if (r.n && r.s[r.n - 1] == ' ') r.s[--r.n] = '\0';
    ex->rationale = r.s;
    return 0;
}

#define CONTEXT_END " ;"

enum { CTX_NONE, CTX_RATIONALE, CTX_WORKED };

static int context_of(const char *c) {
    if (!c || !strcmp(c, "none")) return CTX_NONE;
    if (!strcmp(c, "rationale")) return CTX_RATIONALE;
    if (!strcmp(c, "worked_example")) return CTX_WORKED;
    return -1;
}

/* The worked example every prompt gets with task.context: worked_example. */
static int worked_example(const gkd_task *t, char **out) {
    const int op = op_of(t->cfg.op), d = t->cfg.digits;
    unsigned long long x = 0, y = 0;
    for (int i = 0; i < d; i++) {
        x = 10 * x + (unsigned long long)("473829156"[i] - '0');
        y = 10 * y + (unsigned long long)("851629374"[i] - '0');
    }
    if (op == OP_SUB && x < y) { /* as gen: never negative */
        unsigned long long tmp = x;
        x = y;
        y = tmp;
    }
    const unsigned long long z = op == OP_ADD ? x + y : op == OP_SUB ? x - y : x * y;
    strbuf b = {0};
    int rc = strbuf_printf(&b, "%llu%c%llu=", x, "+-*"[op], y);
    if (!rc) rc = rationale(&b, op, x, y, d);
    if (!rc) rc = strbuf_printf(&b, FINAL_MARKER "%llu" CONTEXT_END, z);
    if (rc) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

static int fill_context(const gkd_task *t, gkd_example *ex, const char *worked) {
    strbuf b = {0};
    int rc = worked ? strbuf_printf(&b, "%s", worked) : strbuf_printf(&b, "%s" CONTEXT_END, ex->rationale);
    if (rc) {
        free(b.s);
        return rc;
    }
    (void)t;
    ex->context = b.s;
    return 0;
}

static int build(gkd_task *t) {
    if (t->cfg.digits < 1 || t->cfg.digits > 9)
        return gkd_error(GKD_EINVAL, "arith: digits must be in [1, 9], got %d", t->cfg.digits);
    if (op_of(t->cfg.op) < 0)
        return gkd_error(GKD_EINVAL, "arith: op must be add, sub or mul, got '%s'", t->cfg.op);
    if (t->cfg.rationale != 0 && t->cfg.rationale != 1)
        return gkd_error(GKD_EINVAL, "arith: rationale must be 0 or 1, got %d", t->cfg.rationale);
    const int ctx = context_of(t->cfg.context);
    if (ctx < 0)
        return gkd_error(GKD_EINVAL, "task.context: expected none, rationale or worked_example, got '%s'",
                         t->cfg.context);
    int rc = task_generate_splits(t, 1, gen);
    for (int sp = 0; sp < 2 && !rc; sp++)
        for (size_t i = 0; i < t->split[sp].n && !rc; i++) rc = fill_rationale(t, &t->split[sp].ex[i]);
    char *worked = NULL;
    if (!rc && ctx == CTX_WORKED) rc = worked_example(t, &worked);
    for (int sp = 0; sp < 2 && !rc && ctx != CTX_NONE; sp++)
        for (size_t i = 0; i < t->split[sp].n && !rc; i++) rc = fill_context(t, &t->split[sp].ex[i], worked);
    free(worked);
    return rc;
}

/* The final answer: after the last marker when `marked`, else everything. */
static const char *final_answer(int marked, const char *s) {
    if (!marked) return s;
    const char *last = NULL;
    for (const char *p = strstr(s, FINAL_MARKER); p; p = strstr(p + 1, FINAL_MARKER)) last = p;
    return last ? last + strlen(FINAL_MARKER) : NULL;
}

static double score(const gkd_task *t, const gkd_example *ex, const char *output) {
    const int marked = task_references_marked(t);
    const char *want = final_answer(marked, ex->reference), *got = final_answer(marked, output);
    return want && got && strcmp(want, got) == 0 ? 1.0 : 0.0;
}

/* A generated reference's answer: rationale=1 decides its form. */
static const char *answer(const gkd_task *t, const char *reference) {
    return final_answer(t->cfg.rationale, reference);
}

const gkd_task_ops gkd_task_arith_ops = {"arith", build, score, 0, answer};
