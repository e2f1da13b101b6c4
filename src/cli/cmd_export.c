/* gkd export: a model (any format gkd imports) written as a Hugging Face
 * directory or a llama2.c file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/model_io.h"
#include "gkd/model_source.h"
#include "gkd/subword.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gkd export --model MODEL --out PATH --format safetensors|llama2c|llama2c-legacy\n"
            "MODEL is a gkd checkpoint, a llama2.c .bin file or a Hugging Face directory\n"
            "(config.json and model.safetensors). safetensors writes PATH/model.safetensors\n"
            "(float32) and PATH/config.json (GPT2LMHeadModel or LlamaForCausalLM); llama2c\n"
            "writes a llama2.c version 1 file, llama2c-legacy the layout of run.c's legacy\n"
            "files (Llama models with RMSNorm eps 1e-5 and RoPE theta 10000 only). A\n"
            "subword tokenizer the model has (stored in its checkpoint, or beside it) is\n"
            "written beside the export as the files it came from.\n"
            "See docs/models.md.\n");
}

/* The model's subword tokenizer, if it has one: a checkpoint's, or the
 * files beside an imported model (*out NULL otherwise). */
static int load_tokenizer(gkd_tokenizer **out, const char *path, gkd_model_format fmt, int vocab_size) {
    *out = NULL;
    if (fmt != GKD_MODEL_FORMAT_GKD) return gkd_model_source_tokenizer(out, path, vocab_size);
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, path, NULL);
    if (rc) return rc;
    if (d.tokenizer && gkd_tokenizer_kind_of(d.tokenizer) == GKD_TOKENIZER_SUBWORD) {
        *out = d.tokenizer;
        d.tokenizer = NULL;
    }
    gkd_checkpoint_data_free(&d);
    return 0;
}

/* Its files into the export's directory: the Hugging Face directory, or
 * the one holding the llama2.c file. */
static int write_tokenizer(const gkd_tokenizer *tok, const char *out, gkd_export_format fmt) {
    if (!tok) return 0;
    char dir[4096];
    const char *slash = strrchr(out, '/');
    if (fmt == GKD_EXPORT_SAFETENSORS) snprintf(dir, sizeof dir, "%s", out);
    else if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == out ? 1 : (int)(slash - out), out);
    return gkd_subword_write_files(gkd_tokenizer_subword(tok), dir);
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
    gkd_tokenizer *tok = NULL;
    int status = 0;
    if (load_tokenizer(&tok, model_path, info.format, m->config.vocab_size)) status = cli_fail("export");
    else if (gkd_model_export(m, out, fmt) || write_tokenizer(tok, out, fmt)) status = cli_fail("export");
    else
        printf("wrote %s (%s%s) from %s (%s: %s)\n", out, format, tok ? ", with its tokenizer" : "", model_path,
               gkd_model_format_name(info.format), info.detail);
    gkd_tokenizer_free(tok);
    gkd_model_free(m);
    return status;
}
