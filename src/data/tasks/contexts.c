/* Contexts: text only the teacher sees before an example's prompt (context
 * distillation, docs/distillation.md). Tasks fill their own (arith from
 * task.context, pairs from a third TSV column, text from task.context_path);
 * this checks the options reach a task that has them and puts the generic
 * teacher.context before every example's own context. */
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "task_impl.h"

static int is_arith(const gkd_task *t) { return strcmp(t->cfg.name, "arith") == 0; }

static int prepend(gkd_example *ex, const char *prefix) {
    const char *own = ex->context ? ex->context : "";
    size_t a = strlen(prefix), b = strlen(own);
    char *s = malloc(a + b + 1);
    if (!s) return gkd_error(GKD_ENOMEM, "out of memory");
    memcpy(s, prefix, a);
    memcpy(s + a, own, b + 1);
    free(ex->context);
    ex->context = s;
    return 0;
}

int task_apply_contexts(gkd_task *t) {
    const gkd_task_config *c = &t->cfg;
    if (c->context && strcmp(c->context, "none") != 0 && !is_arith(t))
        return gkd_error(GKD_EINVAL, "task.context: %s has no contexts of its own (arith has rationale and "
                                     "worked_example; pairs reads a third column; teacher.context is for any task)",
                         c->name);
    if (c->context_path && strcmp(c->name, "text") != 0)
        return gkd_error(GKD_EINVAL, "task.context_path: only the text task reads a context file, not %s",
                         c->name);
    if (!c->teacher_context || !c->teacher_context[0]) return 0;
    size_t bad = utf8_invalid_at(c->teacher_context, strlen(c->teacher_context));
    if (bad < strlen(c->teacher_context))
        return gkd_error(GKD_EINVAL, "teacher.context: invalid UTF-8 at byte %zu", bad + 1);
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < t->split[s].n; i++) {
            int rc = prepend(&t->split[s].ex[i], c->teacher_context);
            if (rc) return rc;
        }
    return 0;
}
