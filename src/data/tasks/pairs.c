/* pairs: the user's parallel data, one example per line of a TSV file:
 *     source<TAB>target[<TAB>context]
 * The prompt is the source, the reference the target; an optional third
 * column is the example's context, text only a teacher sees before the
 * prompt (a hint, a dictionary entry, an instruction; an empty third
 * column is no context). A trailing "\r" is
 * removed and empty lines are skipped. Every other line must be well formed:
 * exactly one tab, a non-empty source and target, valid UTF-8 without NUL
 * bytes. Parsing is strict: the first malformed line is a GKD_EFORMAT error
 * "file:line: message", and a file without examples is an error.
 *
 * Splits: with eval_path, train is `path` and eval is `eval_path`; training
 * lines whose source is also an eval source are dropped (counted by
 * gkd_task_dropped_overlap) so no eval prompt appears in train. Without it,
 * the distinct sources are shuffled with the seed and round(eval_fraction x
 * distinct) of them (at least one, never all) go to eval with all their
 * lines. train/eval counts in the config are ignored. Score: exact match. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "strmap.h"
#include "task_impl.h"

static int parse_tsv(const char *path, task_split *out) {
    char *buf;
    size_t len;
    int rc = task_read_file(path, &buf, &len);
    if (rc) return rc;
    int line = 0;
    size_t pos = 0;
    while (pos < len && !rc) {
        line++;
        char *start = buf + pos;
        char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && start[n - 1] == '\r') n--;
        if (n == 0) continue;
        size_t bad = utf8_invalid_at(start, n);
        if (bad < n) {
            rc = gkd_error(GKD_EFORMAT, "%s:%d: %s at byte %zu of the line", path, line,
                           start[bad] ? "invalid UTF-8" : "NUL byte", bad + 1);
            break;
        }
        char *tab = memchr(start, '\t', n);
        if (!tab) {
            rc = gkd_error(GKD_EFORMAT, "%s:%d: expected source<TAB>target, found no tab", path, line);
            break;
        }
        size_t src_len = (size_t)(tab - start), tgt_len = n - src_len - 1, ctx_len = 0;
        char *tab2 = memchr(tab + 1, '\t', tgt_len);
        if (tab2) {
            ctx_len = tgt_len - (size_t)(tab2 - tab);
            tgt_len = (size_t)(tab2 - tab - 1);
            if (memchr(tab2 + 1, '\t', ctx_len)) {
                rc = gkd_error(GKD_EFORMAT, "%s:%d: expected at most two tabs (source, target, context), found more",
                               path, line);
                break;
            }
        }
        if (src_len == 0 || tgt_len == 0) {
            rc = gkd_error(GKD_EFORMAT, "%s:%d: empty %s", path, line, src_len == 0 ? "source" : "target");
            break;
        }
        char *p = strndup(start, src_len), *r = strndup(tab + 1, tgt_len);
        if (!p || !r) {
            free(p);
            free(r);
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            break;
        }
        rc = task_split_push(out, p, r, path, line);
        if (!rc && ctx_len && !(out->ex[out->n - 1].context = strndup(tab2 + 1, ctx_len)))
            rc = gkd_error(GKD_ENOMEM, "out of memory");
    }
    free(buf);
    if (!rc && out->n == 0) rc = gkd_error(GKD_EFORMAT, "%s: no examples (no non-empty lines)", path);
    return rc;
}

static int build(gkd_task *t) {
    if (!t->cfg.path && !t->cfg.eval_path) return gkd_error(GKD_EINVAL, "pairs: no path (a TSV file source<TAB>target)");
    /* Evaluation only (gkd eval, gkd sample on new data): no training split;
     * whatever trains refuses an empty one. */
    if (!t->cfg.path) return parse_tsv(t->cfg.eval_path, &t->split[GKD_SPLIT_EVAL]);
    int rc;
    if (!t->cfg.eval_path) {
        if (!(t->cfg.eval_fraction > 0 && t->cfg.eval_fraction < 1))
            return gkd_error(GKD_EINVAL, "pairs: eval_fraction must be in (0, 1), got %g", t->cfg.eval_fraction);
        task_split all = {0};
        if ((rc = parse_tsv(t->cfg.path, &all))) {
            task_split_free(&all);
            return rc;
        }
        return task_split_by_prompt(t, &all, 5);
    }
    task_split train = {0};
    strmap eval_src;
    strmap_init(&eval_src);
    if ((rc = parse_tsv(t->cfg.eval_path, &t->split[GKD_SPLIT_EVAL]))) goto done;
    if ((rc = parse_tsv(t->cfg.path, &train))) goto done;
    for (size_t i = 0; i < t->split[GKD_SPLIT_EVAL].n; i++) {
        int found;
        if ((rc = strmap_put(&eval_src, t->split[GKD_SPLIT_EVAL].ex[i].prompt, 0, &found))) goto done;
    }
    for (size_t i = 0; i < train.n; i++) {
        gkd_example *ex = &train.ex[i];
        if (strmap_get(&eval_src, ex->prompt)) {
            t->dropped_overlap++;
            continue;
        }
        rc = task_split_push(&t->split[GKD_SPLIT_TRAIN], ex->prompt, ex->reference, train.file[i], train.line[i]);
        ex->prompt = ex->reference = NULL;
        if (rc) goto done;
        t->split[GKD_SPLIT_TRAIN].ex[t->split[GKD_SPLIT_TRAIN].n - 1].context = ex->context;
        ex->context = NULL;
    }
    if (t->split[GKD_SPLIT_TRAIN].n == 0)
        rc = gkd_error(GKD_EINVAL, "pairs: every source in %s also appears in %s; no training examples left",
                       t->cfg.path, t->cfg.eval_path);
done:
    strmap_free(&eval_src);
    task_split_free(&train);
    return rc;
}

const gkd_task_ops gkd_task_pairs_ops = {"pairs", build, task_score_exact, 0, NULL};
