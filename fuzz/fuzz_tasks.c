/* libFuzzer target for the data files of the file tasks, read as
 * gkd_task_new reads them: the input is written to a file and given as
 * pairs' TSV (split by seed, as eval file alone, and as training file
 * beside a fixed eval file) and as text's plain text (chunks of 8
 * characters). Any input must build or fail with one "file:line: ..."
 * line; a built task must have non-empty examples with their source line,
 * and encode each with its own tokenizer. Seeds: small TSV and text files
 * (fuzz/seeds.c) and the repository's *.tsv and docs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gkd/task.h"

static char path[300], eval_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(path, sizeof path, "data.tsv");
    fuzz_path(eval_path, sizeof eval_path, "eval.tsv");
    fuzz_write(eval_path, "x\ty\nsrc\tdst\n", 12);
    return 0;
}

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_tasks: %s\n", what);
        abort();
    }
}

static void examples(const gkd_task *t, gkd_split split, const gkd_tokenizer *tok) {
    int ids[4096];
    for (size_t i = 0; i < gkd_task_size(t, split); i++) {
        const gkd_example *ex = gkd_task_example(t, split, i);
        check(ex && ex->prompt && ex->reference && ex->prompt[0], "empty example");
        const char *file;
        int line;
        check(gkd_task_example_source(t, split, i, &file, &line) == 0 && file && line >= 1, "no source line");
        int pl, len;
        int rc = gkd_task_encode_example(t, tok, split, i, ids, (int)(sizeof ids / sizeof ids[0]), &pl, &len);
        if (rc) fuzz_check_error(rc, "gkd_task_encode_example"); /* too long for the buffer */
        (void)gkd_task_score(t, ex, ex->reference);
    }
}

static void build(const gkd_task_config *cfg) {
    gkd_task *t = NULL;
    int rc = gkd_task_new(&t, cfg);
    if (rc) {
        fuzz_check_error(rc, "gkd_task_new");
        return;
    }
    gkd_tokenizer *tok = NULL;
    rc = gkd_task_tokenizer(t, &tok);
    if (rc) {
        fprintf(stderr, "fuzz_tasks: a built task has no tokenizer: %s\n", gkd_last_error());
        abort();
    }
    examples(t, GKD_SPLIT_TRAIN, tok);
    examples(t, GKD_SPLIT_EVAL, tok);
    gkd_tokenizer_free(tok);
    gkd_task_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(path, data, size);
    gkd_task_config c = GKD_TASK_CONFIG_INIT;
    c.name = "pairs";
    c.eval_fraction = 0.25;
    c.path = path;
    build(&c);
    c.path = NULL;
    c.eval_path = path;
    build(&c);
    c.path = path;
    c.eval_path = eval_path;
    build(&c);
    gkd_task_config x = GKD_TASK_CONFIG_INIT;
    x.name = "text";
    x.path = path;
    x.chunk = 8;
    x.prompt_chars = 3;
    x.eval_fraction = 0.25;
    build(&x);
    return 0;
}
