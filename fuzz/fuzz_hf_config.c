/* libFuzzer target for Hugging Face config.json files: the input is the
 * text given to gkd_hf_config_parse. It must be refused with one line, or
 * give a config gkd_model_config_validate accepts, which
 * gkd_hf_config_write writes and gkd_hf_config_parse reads back equal.
 *
 * Seeds: fuzz/seeds/hf_config and the config.json files of
 * tests/fixtures/models (tools/make_model_fixtures.py); the dictionary
 * fuzz/hf_config.dict holds the keys and values the reader knows. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"
#include "model/model_io_internal.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "fuzz_hf_config: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gkd_model_config c, back;
    gkd_hf_config_info info;
    int rc = gkd_hf_config_parse(&c, &info, (const char *)data, size);
    if (rc) {
        fuzz_check_error(rc, "gkd_hf_config_parse");
        return 0;
    }
    check(gkd_model_config_validate(&c) == 0, "a parsed config is not valid");
    check(c.arch == GKD_ARCH_GPT2 || c.rope_style == GKD_ROPE_HALF, "a Hugging Face Llama is not rotate-half");
    check(info.context_from == 0 || info.context_from > c.max_seq_len, "a cut context is not longer");
    char *json = NULL;
    size_t len = 0;
    check(gkd_hf_config_write(&json, &len, &c) == 0, "a valid config is not written");
    rc = gkd_hf_config_parse(&back, NULL, json, len);
    if (rc) fprintf(stderr, "%s\n", gkd_last_error());
    check(rc == 0, "a written config does not read back");
    check(gkd_config_equal(&c, &back), "a written config reads back different");
    free(json);
    return 0;
}
