/* text: the user's plain UTF-8 text, cut into consecutive, non-overlapping
 * chunks of `chunk` characters (code points; newlines count). The prompt is
 * the first prompt_chars characters of a chunk, the reference the rest; a
 * final partial chunk is dropped. Chunks are split into train and eval by the
 * seed like pairs (distinct prompts shuffled, eval_fraction of them to eval),
 * so no eval prompt appears in train. The vocabulary is bytes (any text can
 * be encoded). Invalid UTF-8 or a NUL byte is a GKD_EFORMAT error with
 * file:line. Score: exact match.
 *
 * context_path: the whole text of that file (valid UTF-8, no NUL, at most
 * 1 MB; a style instruction, say) is every example's context. */
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

/* Every example's context := the text of cfg.context_path. */
static int fill_context(gkd_task *t) {
    char *buf;
    size_t len;
    int rc = task_read_file(t->cfg.context_path, &buf, &len);
    if (rc) return gkd_error_wrap(rc, "task.context_path");
    size_t bad = utf8_invalid_at(buf, len);
    if (bad < len)
        rc = gkd_error(GKD_EFORMAT, "task.context_path: %s: %s at byte offset %zu", t->cfg.context_path,
                       buf[bad] ? "invalid UTF-8" : "NUL byte", bad);
    else if (len > (1u << 20))
        rc = gkd_error(GKD_EFORMAT, "task.context_path: %s: %zu bytes, more than 1 MB", t->cfg.context_path, len);
    for (int s = 0; s < 2 && !rc; s++)
        for (size_t i = 0; i < t->split[s].n && !rc; i++)
            if (!(t->split[s].ex[i].context = strdup(buf))) rc = gkd_error(GKD_ENOMEM, "out of memory");
    free(buf);
    return rc;
}

static int build(gkd_task *t) {
    const gkd_task_config *c = &t->cfg;
    if (!c->path) return gkd_error(GKD_EINVAL, "text: no path (a UTF-8 text file)");
    if (c->chunk < 2 || c->chunk > 1000000)
        return gkd_error(GKD_EINVAL, "text: chunk must be in [2, 1000000], got %d", c->chunk);
    if (c->prompt_chars < 1 || c->prompt_chars >= c->chunk)
        return gkd_error(GKD_EINVAL, "text: prompt_chars must be in [1, chunk-1] = [1, %d], got %d",
                         c->chunk - 1, c->prompt_chars);
    if (!(c->eval_fraction > 0 && c->eval_fraction < 1))
        return gkd_error(GKD_EINVAL, "text: eval_fraction must be in (0, 1), got %g", c->eval_fraction);
    char *buf;
    size_t len;
    int rc = task_read_file(c->path, &buf, &len);
    if (rc) return rc;
    task_split all = {0};
    size_t bad = utf8_invalid_at(buf, len);
    if (bad < len) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += buf[i] == '\n';
        rc = gkd_error(GKD_EFORMAT, "%s:%d: %s at byte offset %zu", c->path, line,
                       buf[bad] ? "invalid UTF-8" : "NUL byte", bad);
        goto done;
    }
    size_t *off, n;
    if ((rc = utf8_offsets(buf, &off, &n))) goto done;
    int line = 1;
    size_t counted = 0; /* bytes whose newlines are already in `line` */
    for (size_t s = 0; s + (size_t)c->chunk <= n && !rc; s += (size_t)c->chunk) {
        size_t b0 = off[s], bp = off[s + (size_t)c->prompt_chars], b1 = off[s + (size_t)c->chunk];
        for (; counted < b0; counted++) line += buf[counted] == '\n';
        char *p = strndup(buf + b0, bp - b0), *r = strndup(buf + bp, b1 - bp);
        if (!p || !r) {
            free(p);
            free(r);
            rc = gkd_error(GKD_ENOMEM, "out of memory");
            break;
        }
        rc = task_split_push(&all, p, r, c->path, line);
    }
    free(off);
    if (rc) goto done;
    if (all.n < 2) {
        rc = gkd_error(GKD_EFORMAT, "%s: %zu characters make %zu chunks of %d; need at least 2", c->path, n,
                       all.n, c->chunk);
        goto done;
    }
    if ((rc = task_split_by_prompt(t, &all, 6))) goto done;
    if (c->context_path) rc = fill_context(t);
done:
    task_split_free(&all);
    free(buf);
    return rc;
}

const gkd_task_ops gkd_task_text_ops = {"text", build, task_score_exact, 1, NULL};
