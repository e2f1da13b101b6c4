/* gkd export: a model (any format gkd imports) written as a Hugging Face
 * directory or a llama2.c file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/error.h"
#include "gkd/model_io.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd export --model MODEL --out PATH --format safetensors|llama2c|llama2c-legacy\n"
            "MODEL is a gkd checkpoint, a llama2.c .bin file or a Hugging Face directory\n"
            "(config.json and model.safetensors). safetensors writes PATH/model.safetensors\n"
            "(float32) and PATH/config.json (GPT2LMHeadModel or LlamaForCausalLM); llama2c\n"
            "writes a llama2.c version 1 file, llama2c-legacy the layout of run.c's legacy\n"
            "files (Llama models with RMSNorm eps 1e-5 and RoPE theta 10000 only).\n"
            "See docs/models.md.\n");
}

int cmd_export(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *format = NULL, *v;
    for (int i = 1; i < argc; i++) {
        int err = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((v = cli_flag(argc, argv, &i, "--model", &err))) { model_path = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--out", &err))) { out = v; continue; }
        if ((v = cli_flag(argc, argv, &i, "--format", &err))) { format = v; continue; }
        if (err) return 2;
        fprintf(stderr, "gkd export: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!model_path || !out || !format) {
        fprintf(stderr, "gkd export: --model, --out and --format are required\n");
        return 2;
    }
    gkd_export_format fmt;
    if (gkd_export_format_parse(&fmt, format)) {
        fprintf(stderr, "gkd export: --format: %s\n", gkd_last_error());
        return 2;
    }
    gkd_model *m = NULL;
    gkd_model_import_info info;
    if (gkd_model_import(&m, model_path, &info)) return cli_fail("export");
    int status = 0;
    if (gkd_model_export(m, out, fmt)) status = cli_fail("export");
    else
        printf("wrote %s (%s) from %s (%s: %s)\n", out, format, model_path, gkd_model_format_name(info.format), info.detail);
    gkd_model_free(m);
    return status;
}
