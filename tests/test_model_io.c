/* Importing and exporting models (include/gkd/model_io.h): the fixture
 * models of tools/make_model_fixtures.py load and give their PyTorch
 * reference NLLs and logits, exports read back bit for bit, and malformed
 * inputs are refused with one line and nothing loaded.
 *
 * Tcase "llama" builds Llama models, so it needs the Llama layers (RoPE
 * tables, RMSNorm, SwiGLU, grouped-query attention). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/model_io.h"
#include "gkd/safetensors.h"
#include "gkd/tokenizer.h"
#include "helpers.h"
#include "model/model_io_internal.h"

static char tmp[128];

static void setup(void) { th_make_tmpdir(tmp, sizeof tmp, "gkd-model-io"); }
static void teardown(void) { th_remove_tmpdir(tmp); }

static const char *in_tmp(const char *name) {
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

static char *fixture(const char *name) {
    char *p = strdup(th_fixture_path("models", name));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- the references ---- */

typedef struct {
    int n;
    int ids[64];
    double nll;
    int V;
    double logits[64];
} ref_seq;

/* The seq / nll / logits rows of a reference.tsv. */
static int read_reference(ref_seq *r, int cap, const char *path) {
    size_t len;
    char *text = (char *)th_read_bytes(path, &len);
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char kind[16];
        int k, off;
        ck_assert_int_eq(sscanf(line, "%15s %d %n", kind, &k, &off), 2);
        ck_assert_int_lt(k, cap);
        char *p = line + off;
        if (!strcmp(kind, "seq")) {
            ck_assert_int_eq(k, n);
            n++;
            r[k].n = (int)strtol(p, &p, 10);
            ck_assert_int_le(r[k].n, 64);
            for (int i = 0; i < r[k].n; i++) r[k].ids[i] = (int)strtol(p, &p, 10);
        } else if (!strcmp(kind, "nll")) {
            r[k].nll = strtod(p, NULL);
        } else {
            ck_assert_str_eq(kind, "logits");
            r[k].V = (int)strtol(p, &p, 10);
            ck_assert_int_le(r[k].V, 64);
            for (int i = 0; i < r[k].V; i++) r[k].logits[i] = strtod(p, &p);
        }
    }
    free(text);
    return n;
}

/* The model's mean NLL of each sequence and its last-position logits are
 * the reference's within 1e-4; returns the largest difference. */
static double check_reference(gkd_model *m, const char *tsv) {
    ref_seq r[4];
    int n = read_reference(r, 4, tsv);
    ck_assert_int_eq(n, 3);
    double worst = 0.0;
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(r[k].V, m->config.vocab_size);
        ck_assert_int_eq(gkd_model_forward(m, r[k].ids, 1, r[k].n), 0);
        const int V = m->config.vocab_size;
        double sum = 0.0;
        for (int t = 0; t + 1 < r[k].n; t++) {
            const float *l = m->logits + (size_t)t * V;
            double mx = l[0], z = 0.0;
            for (int v = 1; v < V; v++) mx = fmax(mx, l[v]);
            for (int v = 0; v < V; v++) z += exp(l[v] - mx);
            sum += mx + log(z) - l[r[k].ids[t + 1]];
        }
        double nll = sum / (r[k].n - 1), d = fabs(nll - r[k].nll);
        ck_assert_msg(d <= 1e-4, "%s seq %d: nll %.9g, reference %.9g", tsv, k, nll, r[k].nll);
        worst = fmax(worst, d);
        const float *last = m->logits + (size_t)(r[k].n - 1) * V;
        for (int v = 0; v < V; v++) {
            d = fabs(last[v] - r[k].logits[v]);
            ck_assert_msg(d <= 1e-4, "%s seq %d logit %d: %.9g, reference %.9g", tsv, k, v, (double)last[v],
                          r[k].logits[v]);
            worst = fmax(worst, d);
        }
    }
    return worst;
}

static gkd_model *import_ok(const char *path, gkd_model_import_info *info) {
    gkd_model *m = NULL;
    int rc = gkd_model_import(&m, path, info);
    ck_assert_msg(rc == 0, "import %s: %s", path, gkd_last_error());
    ck_assert_ptr_nonnull(m);
    return m;
}

static void assert_same_params(const gkd_model *a, const gkd_model *b) {
    ck_assert(gkd_config_equal(&a->config, &b->config));
    ck_assert_uint_eq(a->num_params, b->num_params);
    ck_assert(!memcmp(a->params_memory, b->params_memory, a->num_params * sizeof(float)));
}

/* One line, naming what it should. */
static void assert_error(int rc, const char *want) {
    const char *msg = gkd_last_error();
    ck_assert_int_lt(rc, 0);
    ck_assert_msg(!strchr(msg, '\n'), "message has a newline: %s", msg);
    ck_assert_msg(strstr(msg, want) != NULL, "message [%s] lacks [%s]", msg, want);
}

static void import_fails(const char *path, const char *want) {
    gkd_model *m = (gkd_model *)1;
    assert_error(gkd_model_import(&m, path, NULL), want);
    ck_assert_ptr_null(m);
}

/* Export m as fmt to a and b, compare the two byte for byte, import a. */
static gkd_model *export_twice(const gkd_model *m, gkd_export_format fmt, const char *a, const char *b) {
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s", in_tmp(a));
    snprintf(pb, sizeof pb, "%s", in_tmp(b));
    ck_assert_msg(gkd_model_export(m, pa, fmt) == 0, "export: %s", gkd_last_error());
    ck_assert_msg(gkd_model_export(m, pb, fmt) == 0, "export: %s", gkd_last_error());
    const char *files[2] = {"model.safetensors", "config.json"};
    for (int f = 0; f < (fmt == GKD_EXPORT_SAFETENSORS ? 2 : 1); f++) {
        char fa[600], fb[600];
        snprintf(fa, sizeof fa, fmt == GKD_EXPORT_SAFETENSORS ? "%s/%s" : "%s", pa, files[f]);
        snprintf(fb, sizeof fb, fmt == GKD_EXPORT_SAFETENSORS ? "%s/%s" : "%s", pb, files[f]);
        size_t na, nb;
        unsigned char *ba = th_read_bytes(fa, &na), *bb = th_read_bytes(fb, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(!memcmp(ba, bb, na));
        free(ba);
        free(bb);
    }
    return import_ok(pa, NULL);
}

/* ---- GPT-2 (runs on the GPT-2 blocks alone) ---- */

START_TEST(test_gpt2_fixtures_match_reference) {
    const char *dirs[2] = {"gpt2_hf", "gpt2_hf_prefixed"};
    for (int d = 0; d < 2; d++) {
        char *dir = fixture(dirs[d]);
        char tsv[4300];
        snprintf(tsv, sizeof tsv, "%s/reference.tsv", dir);
        gkd_model_import_info info;
        gkd_model *m = import_ok(dir, &info);
        ck_assert_int_eq(info.format, GKD_MODEL_FORMAT_SAFETENSORS);
        ck_assert_int_eq(m->config.arch, GKD_ARCH_GPT2);
        ck_assert_int_eq(m->config.vocab_size, 50);
        ck_assert_int_eq(m->config.max_seq_len, 24);
        ck_assert_int_eq(m->config.n_layer, 2);
        ck_assert_int_eq(m->config.n_embd, 32);
        ck_assert_int_eq(m->config.n_head, 4);
        /* 2 + 12 per layer + 2 tensors; the hub file's 2 mask buffers skipped */
        ck_assert_int_eq(info.n_tensors, 28);
        ck_assert_int_eq(info.n_ignored, d == 0 ? 2 : 0);
        ck_assert_ptr_nonnull(strstr(info.detail, d == 0 ? "F32" : "F16"));
        check_reference(m, tsv);
        gkd_model_free(m);
        free(dir);
    }
}
END_TEST

/* Conv1D weights are stored (in, out): c_attn.weight[i][o] is qkvw[o][i]. */
START_TEST(test_gpt2_conv1d_transposed) {
    char *dir = fixture("gpt2_hf");
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    gkd_model *m = import_ok(dir, NULL);
    gkd_safetensors *f = NULL;
    ck_assert_int_eq(gkd_safetensors_open(&f, path), 0);
    float *w = malloc(32 * 96 * sizeof(float));
    ck_assert_int_eq(gkd_safetensors_read_f32_named(w, 32 * 96, f, "h.1.attn.c_attn.weight"), 0);
    const float *q = gkd_model_slice(m, GKD_GPT2_QKVW, 1);
    for (int i = 0; i < 32; i++)
        for (int o = 0; o < 96; o++) ck_assert(q[o * 32 + i] == w[i * 96 + o]);
    free(w);
    gkd_safetensors_close(f);
    gkd_model_free(m);
    free(dir);
}
END_TEST

START_TEST(test_gpt2_export_round_trip) {
    char *dir = fixture("gpt2_hf_prefixed");
    gkd_model *m = import_ok(dir, NULL);
    gkd_model *r = export_twice(m, GKD_EXPORT_SAFETENSORS, "a", "b");
    assert_same_params(m, r);
    /* The export reads back as the same function: the reference again. */
    char tsv[4300];
    snprintf(tsv, sizeof tsv, "%s/reference.tsv", dir);
    check_reference(r, tsv);
    /* And exporting the re-import gives the same bytes once more. */
    gkd_model *r2 = export_twice(r, GKD_EXPORT_SAFETENSORS, "c", "d");
    size_t n1, n2;
    unsigned char *b1 = th_read_bytes(in_tmp("a/model.safetensors"), &n1);
    unsigned char *b2 = th_read_bytes(in_tmp("c/model.safetensors"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(!memcmp(b1, b2, n1));
    free(b1);
    free(b2);
    /* llama2.c holds Llama models only. */
    assert_error(gkd_model_export(m, in_tmp("m.bin"), GKD_EXPORT_LLAMA2C), "llama2.c files hold Llama models");
    ck_assert(!gkd_path_exists(in_tmp("m.bin")));
    gkd_model_free(m);
    gkd_model_free(r);
    gkd_model_free(r2);
    free(dir);
}
END_TEST

/* A gkd checkpoint imports as its model, and its export reads back. */
START_TEST(test_gkd_checkpoint_import_export) {
    gkd_model *m = th_make_model(20, 12, 2, 16, 2, 7, 0.05f, 1);
    gkd_checkpoint c = {.model = m};
    ck_assert_int_eq(gkd_checkpoint_save(in_tmp("m.ckpt"), &c), 0);
    gkd_model_import_info info;
    gkd_model *a = import_ok(in_tmp("m.ckpt"), &info);
    ck_assert_int_eq(info.format, GKD_MODEL_FORMAT_GKD);
    assert_same_params(m, a);
    gkd_model *b = export_twice(a, GKD_EXPORT_SAFETENSORS, "hf", "hf2");
    assert_same_params(m, b);
    /* Same logits from the original and the re-import. */
    int ids[5] = {1, 4, 19, 0, 7};
    ck_assert_int_eq(gkd_model_forward(m, ids, 1, 5), 0);
    ck_assert_int_eq(gkd_model_forward(b, ids, 1, 5), 0);
    ck_assert(!memcmp(m->logits, b->logits, 5 * 20 * sizeof(float)));
    gkd_model_free(m);
    gkd_model_free(a);
    gkd_model_free(b);
}
END_TEST

/* ---- building safetensors files for the malformed cases ---- */

/* A GPT-2 model's tensors as entries (names as the hub's file). */
typedef struct {
    gkd_st_entry e[64];
    char names[64][128];
    float *data[64];
    size_t n;
} entries;

static void entries_of(entries *E, const gkd_model *m, const char *prefix) {
    gkd_hf_tensor *map = NULL;
    size_t n = 0;
    ck_assert_int_eq(gkd_hf_tensors(&map, &n, &m->config), 0);
    memset(E, 0, sizeof *E);
    for (size_t j = 0; j < n; j++) {
        if (map[j].tied_copy) continue;
        size_t numel = (size_t)map[j].shape[0] * (map[j].rank == 2 ? (size_t)map[j].shape[1] : 1);
        E->data[E->n] = malloc(numel * sizeof(float));
        gkd_hf_get(E->data[E->n], m, &map[j]);
        snprintf(E->names[E->n], sizeof E->names[E->n], "%s%s", prefix, map[j].name);
        E->e[E->n] = (gkd_st_entry){E->names[E->n], map[j].rank, {map[j].shape[0], map[j].shape[1]}, E->data[E->n]};
        E->n++;
    }
    free(map);
}

static void entries_free(entries *E) {
    for (size_t i = 0; i < 64; i++) free(E->data[i]);
}

static size_t entry_index(const entries *E, const char *name) {
    for (size_t i = 0; i < E->n; i++)
        if (!strcmp(E->names[i], name)) return i;
    ck_abort_msg("no entry %s", name);
    return 0;
}

static void write_st(const char *path, const gkd_st_entry *e, size_t n) {
    unsigned char *b = NULL;
    size_t len = 0;
    ck_assert_int_eq(gkd_safetensors_build(&b, &len, e, n), 0);
    th_write_bytes(path, b, len);
    free(b);
}

static const char *gpt2_config =
    "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2,"
    " \"n_head\": 2, \"n_positions\": 12, \"vocab_size\": 20, \"layer_norm_epsilon\": 1e-05,"
    " \"activation_function\": \"gelu_new\", \"n_inner\": null}";

/* dir NAME in tmp holding config.json (text) and model.safetensors. */
static const char *make_dir(const char *name, const char *config, const gkd_st_entry *e, size_t n) {
    char d[512], p[600];
    snprintf(d, sizeof d, "%s", in_tmp(name));
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/config.json", d);
    th_write_file(p, config);
    snprintf(p, sizeof p, "%s/model.safetensors", d);
    write_st(p, e, n);
    return in_tmp(name);
}

START_TEST(test_tensor_errors) {
    gkd_model *m = th_make_model(20, 12, 2, 16, 2, 3, 0.0f, 0);
    entries E;
    entries_of(&E, m, "");
    gkd_st_entry e[70];

    /* the well-formed directory loads */
    gkd_model *ok = import_ok(make_dir("ok", gpt2_config, E.e, E.n), NULL);
    assert_same_params(m, ok);
    gkd_model_free(ok);

    /* a missing tensor */
    size_t k = entry_index(&E, "h.1.mlp.c_fc.bias"), n = 0;
    for (size_t i = 0; i < E.n; i++)
        if (i != k) e[n++] = E.e[i];
    import_fails(make_dir("missing", gpt2_config, e, n), "missing tensor h.1.mlp.c_fc.bias");

    /* an unknown one */
    memcpy(e, E.e, E.n * sizeof *e);
    float extra[16] = {0};
    e[E.n] = (gkd_st_entry){"h.0.attn.rotary.weight", 1, {16, 0}, extra};
    import_fails(make_dir("unknown", gpt2_config, e, E.n + 1), "unknown tensor h.0.attn.rotary.weight");

    /* a layer beyond the config's */
    e[E.n] = (gkd_st_entry){"h.2.ln_1.bias", 1, {16, 0}, extra};
    import_fails(make_dir("layer", gpt2_config, e, E.n + 1), "unknown tensor h.2.ln_1.bias");

    /* a shape the config does not imply (c_attn stored (out, in)) */
    memcpy(e, E.e, E.n * sizeof *e);
    k = entry_index(&E, "h.0.attn.c_attn.weight");
    e[k].shape[0] = 48;
    e[k].shape[1] = 16;
    import_fails(make_dir("shape", gpt2_config, e, E.n), "tensor h.0.attn.c_attn.weight has shape [48, 16], config.json implies [16, 48]");

    /* the same tensor with and without the prefix */
    memcpy(e, E.e, E.n * sizeof *e);
    e[E.n] = E.e[0];
    e[E.n].name = "transformer.wte.weight";
    import_fails(make_dir("twice", gpt2_config, e, E.n + 1), "is there twice");

    /* NaN, infinity and an absurd finite value */
    const float bad[3] = {NAN, INFINITY, 3e38f};
    const char *what[3] = {"ln_f.weight[5] is NaN", "ln_f.weight[5] is infinite", "beyond the bound"};
    for (int b = 0; b < 3; b++) {
        memcpy(e, E.e, E.n * sizeof *e);
        k = entry_index(&E, "ln_f.weight");
        float v[16];
        memcpy(v, E.data[k], sizeof v);
        v[5] = bad[b];
        e[k].data = v;
        char name[32];
        snprintf(name, sizeof name, "bad%d", b);
        import_fails(make_dir(name, gpt2_config, e, E.n), what[b]);
    }

    /* a stored tied head: accepted when equal to wte, refused otherwise */
    memcpy(e, E.e, E.n * sizeof *e);
    e[E.n] = E.e[entry_index(&E, "wte.weight")];
    e[E.n].name = "lm_head.weight";
    ok = import_ok(make_dir("tied", gpt2_config, e, E.n + 1), NULL);
    assert_same_params(m, ok);
    gkd_model_free(ok);
    float *other = malloc(20 * 16 * sizeof(float));
    memcpy(other, E.data[entry_index(&E, "wte.weight")], 20 * 16 * sizeof(float));
    other[7] += 1.0f;
    e[E.n].data = other;
    import_fails(make_dir("untied", gpt2_config, e, E.n + 1), "differs from the token embedding");
    free(other);

    /* a truncated file */
    const char *dir = make_dir("trunc", gpt2_config, E.e, E.n);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t len;
    unsigned char *bytes = th_read_bytes(p, &len);
    th_write_bytes(p, bytes, len - 10);
    free(bytes);
    import_fails(dir, "safetensors");

    /* a config that disagrees with the tensors */
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s", gpt2_config);
    memcpy(strstr(cfg, "\"n_embd\": 16"), "\"n_embd\": 32", 12);
    import_fails(make_dir("cfgshape", cfg, E.e, E.n), "tensor h.0.attn.c_attn.bias has shape [48], config.json implies [96]");

    entries_free(&E);
    gkd_model_free(m);
}
END_TEST

/* Shards listed by model.safetensors.index.json load as one file does. */
START_TEST(test_sharded) {
    gkd_model *m = th_make_model(20, 12, 2, 16, 2, 4, 0.0f, 0);
    entries E;
    entries_of(&E, m, "transformer.");
    char d[512], p[700];
    snprintf(d, sizeof d, "%s", in_tmp("sharded"));
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/config.json", d);
    th_write_file(p, gpt2_config);
    size_t half = E.n / 2;
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    write_st(p, E.e, half);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    write_st(p, E.e + half, E.n - half);
    char index[8192];
    int k = snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": %zu}, \"weight_map\": {", 4 * m->num_params);
    for (size_t i = 0; i < E.n; i++)
        k += snprintf(index + k, sizeof index - (size_t)k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                      E.names[i], i < half ? 1 : 2);
    snprintf(index + k, sizeof index - (size_t)k, "}}");
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    th_write_file(p, index);
    gkd_model_import_info info;
    gkd_model *r = import_ok(d, &info);
    ck_assert_int_eq(info.n_shards, 2);
    assert_same_params(m, r);
    gkd_model_free(r);

    /* an index that maps a tensor to the other shard */
    char *at = strstr(index, "\"transformer.wte.weight\": \"model-00001");
    ck_assert_ptr_nonnull(at);
    at[strlen("\"transformer.wte.weight\": \"model-0000")] = '2';
    th_write_file(p, index);
    import_fails(d, "holds transformer.wte.weight, which the index maps to another shard");

    /* a shard name that leaves the directory */
    th_write_file(p, "{\"weight_map\": {\"wte.weight\": \"../model.safetensors\"}}");
    import_fails(d, "is not a file name in the index's directory");
    entries_free(&E);
    gkd_model_free(m);
}
END_TEST

/* ---- config.json ---- */

static void config_fails(const char *text, const char *want) {
    gkd_model_config c;
    assert_error(gkd_hf_config_parse(&c, NULL, text, strlen(text)), want);
}

static const char *llama_config =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 48,"
    " \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 6,"
    " \"num_key_value_heads\": 2, \"max_position_embeddings\": 32, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 10000.0, \"vocab_size\": 56, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\","
    " \"attention_bias\": false, \"rope_scaling\": null, \"bos_token_id\": 1 %s}";

/* The required keys only, and extra. */
static void llama_fails(const char *extra, const char *want) {
    char text[2048];
    snprintf(text, sizeof text,
             "{\"model_type\": \"llama\", \"hidden_size\": 48, \"intermediate_size\": 64, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 6, \"max_position_embeddings\": 32, \"vocab_size\": 56 %s}",
             extra);
    config_fails(text, want);
}

START_TEST(test_config_parse) {
    char text[2048];
    gkd_model_config c;
    gkd_hf_config_info info;
    snprintf(text, sizeof text, llama_config, "");
    ck_assert_int_eq(gkd_hf_config_parse(&c, &info, text, strlen(text)), 0);
    ck_assert_str_eq(info.architecture, "LlamaForCausalLM");
    ck_assert_int_eq(c.arch, GKD_ARCH_LLAMA);
    ck_assert_int_eq(c.n_embd, 48);
    ck_assert_int_eq(c.ffn_dim, 64);
    ck_assert_int_eq(c.n_head, 6);
    ck_assert_int_eq(c.n_kv_head, 2);
    ck_assert_int_eq(c.max_seq_len, 32);
    ck_assert_int_eq(c.untied_head, 1);
    ck_assert_int_eq(c.rope_style, GKD_ROPE_HALF);
    ck_assert(c.norm_eps == 1e-6f);
    ck_assert(c.rope_theta == 10000.0f);

    /* defaults of LlamaConfig: kv heads = heads, eps 1e-6, theta 10000, untied */
    const char *min = "{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 4, \"num_hidden_layers\": 1,"
                      " \"num_attention_heads\": 2, \"max_position_embeddings\": 100000, \"vocab_size\": 5}";
    ck_assert_int_eq(gkd_hf_config_parse(&c, &info, min, strlen(min)), 0);
    ck_assert_int_eq(c.n_kv_head, 2);
    ck_assert(c.norm_eps == 1e-6f && c.rope_theta == 10000.0f && c.untied_head == 1);
    /* RoPE needs no table: a longer context is cut to gkd's 8192 */
    ck_assert_int_eq(c.max_seq_len, 8192);
    ck_assert_int_eq(info.context_from, 100000);

    /* written and read back to the same config (floats included) */
    const float eps[3] = {1e-5f, 1e-6f, 3.3e-7f};
    for (int i = 0; i < 3; i++) {
        gkd_model_config w = c, back;
        w.norm_eps = eps[i];
        w.rope_theta = 500000.0f;
        w.untied_head = i % 2;
        char *json;
        size_t len;
        ck_assert_int_eq(gkd_hf_config_write(&json, &len, &w), 0);
        ck_assert_int_eq(gkd_hf_config_parse(&back, NULL, json, len), 0);
        ck_assert(gkd_config_equal(&w, &back));
        free(json);
    }
    ck_assert_int_eq(gkd_hf_config_parse(&c, NULL, gpt2_config, strlen(gpt2_config)), 0);
    gkd_model_config back;
    char *json;
    size_t len;
    ck_assert_int_eq(gkd_hf_config_write(&json, &len, &c), 0);
    ck_assert_int_eq(gkd_hf_config_parse(&back, NULL, json, len), 0);
    ck_assert(gkd_config_equal(&c, &back));
    free(json);
}
END_TEST

START_TEST(test_config_errors) {
    config_fails("", "not JSON");
    config_fails("{\"model_type\": \"llama\",}", "not JSON");
    config_fails("[1]", "the root is an array");
    config_fails("{\"hidden_size\": 3}", "neither \"architectures\" nor \"model_type\"");
    config_fails("{\"architectures\": [\"MistralForCausalLM\"]}", "architecture \"MistralForCausalLM\" is not supported");
    config_fails("{\"model_type\": \"qwen2\"}", "model_type \"qwen2\" is not supported");
    config_fails("{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"llama\"}", "\"architectures\" says");
    config_fails("{\"model_type\": \"llama\", \"vocab_size\": 5, \"hidden_size\": 48}", "no \"intermediate_size\" (a positive integer)");
    config_fails("{\"model_type\": \"llama\", \"vocab_size\": 5, \"hidden_size\": \"48\"}", "\"hidden_size\" is a string, expected a positive integer");
    config_fails("{\"model_type\": \"llama\", \"vocab_size\": 5, \"hidden_size\": 4.5}", "\"hidden_size\" is a number, expected a positive integer");
    config_fails("{\"model_type\": \"llama\", \"vocab_size\": 5, \"hidden_size\": -4}", "\"hidden_size\" is -4");
    llama_fails(", \"rms_norm_eps\": \"1e-6\"", "\"rms_norm_eps\" is a string, expected a number");
    llama_fails(", \"tie_word_embeddings\": 0", "\"tie_word_embeddings\" is an integer, expected true or false");
    llama_fails(", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "\"rope_scaling\" is set");
    llama_fails(", \"attention_bias\": true", "\"attention_bias\" is true");
    llama_fails(", \"mlp_bias\": true", "\"mlp_bias\" is true");
    llama_fails(", \"hidden_act\": \"gelu\"", "\"hidden_act\" is \"gelu\"");
    llama_fails(", \"head_dim\": 16", "\"head_dim\" 16 is not hidden_size / num_attention_heads");
    llama_fails(", \"rope_theta\": 1e300", "\"rope_theta\" is 1e+300, beyond a float");
    llama_fails(", \"num_key_value_heads\": 4", "not a model gkd can build: n_kv_head 4 must divide n_head 6");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 12,"
                 " \"vocab_size\": 20, \"layer_norm_epsilon\": 1e-06}",
                 "\"layer_norm_epsilon\" is 1e-06");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 12,"
                 " \"vocab_size\": 20, \"activation_function\": \"relu\"}",
                 "\"activation_function\" is \"relu\"");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 12,"
                 " \"vocab_size\": 20, \"n_inner\": 100}",
                 "\"n_inner\" is not 4 * n_embd");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 12,"
                 " \"vocab_size\": 20, \"tie_word_embeddings\": false}",
                 "\"tie_word_embeddings\" is false");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 3, \"n_positions\": 12,"
                 " \"vocab_size\": 20}",
                 "n_embd 16 is not divisible by n_head 3");
    config_fails("{\"model_type\": \"gpt2\", \"n_embd\": 16, \"n_layer\": 2, \"n_head\": 2, \"n_positions\": 100000,"
                 " \"vocab_size\": 20}",
                 "max_seq_len 100000 out of range");
}
END_TEST

/* Files import by their contents; anything else is one line naming the path. */
START_TEST(test_detection) {
    th_write_file(in_tmp("notes.txt"), "hello, this is not a model\n");
    import_fails(in_tmp("notes.txt"), "notes.txt: not a model format gkd reads");
    th_write_file(in_tmp("empty"), "");
    import_fails(in_tmp("empty"), "empty: not a model format gkd reads");
    mkdir(in_tmp("d"), 0755);
    import_fails(in_tmp("d"), "d: a directory without config.json");
    import_fails(in_tmp("absent"), "absent");
    /* a safetensors file is detected by its header, and needs config.json */
    gkd_model *m = th_make_model(20, 12, 2, 16, 2, 3, 0.0f, 0);
    entries E;
    entries_of(&E, m, "");
    mkdir(in_tmp("d/sub"), 0755);
    write_st(in_tmp("d/sub/weights.bin"), E.e, E.n);
    gkd_model_format f;
    ck_assert_int_eq(gkd_model_detect(&f, in_tmp("d/sub/weights.bin")), 0);
    ck_assert_int_eq(f, GKD_MODEL_FORMAT_SAFETENSORS);
    import_fails(in_tmp("d/sub/weights.bin"), "no config.json beside the safetensors weights");
    th_write_file(in_tmp("d/sub/config.json"), gpt2_config);
    gkd_model *r = import_ok(in_tmp("d/sub/weights.bin"), NULL);
    assert_same_params(m, r);
    /* a directory with config.json and no weights */
    import_fails(in_tmp("d/sub"), "a directory without model.safetensors");
    gkd_model_free(r);
    entries_free(&E);
    gkd_model_free(m);
}
END_TEST

/* ---- Llama (needs the Llama layers) ---- */

typedef struct {
    const char *path, *tsv;
    int version;      /* llama2.c: 0 or 1; safetensors: -1 */
    int kv, untied;
    float eps;
} llama_fixture;

static const llama_fixture llamas[5] = {
    {"stories_v0.bin", "stories_v0.tsv", 0, 2, 1, 1e-5f},
    {"stories_v1.bin", "stories_v1.tsv", 1, 3, 0, 1e-5f},
    {"llama_hf", "llama_hf/reference.tsv", -1, 2, 1, 1e-6f},
    {"llama_hf_bf16", "llama_hf_bf16/reference.tsv", -1, 1, 0, 1e-6f},
    {"llama_hf_f16", "llama_hf_f16/reference.tsv", -1, 1, 0, 1e-6f},
};

START_TEST(test_llama_fixtures_match_reference) {
    const llama_fixture *fx = &llamas[_i];
    char *path = fixture(fx->path), *tsv = fixture(fx->tsv);
    gkd_model_import_info info;
    gkd_model *m = import_ok(path, &info);
    ck_assert_int_eq(info.format, fx->version >= 0 ? GKD_MODEL_FORMAT_LLAMA2C : GKD_MODEL_FORMAT_SAFETENSORS);
    ck_assert_int_eq(m->config.arch, GKD_ARCH_LLAMA);
    ck_assert_int_eq(m->config.n_kv_head, fx->kv);
    ck_assert_int_eq(m->config.untied_head, fx->untied);
    ck_assert_int_eq(m->config.rope_style, fx->version >= 0 ? GKD_ROPE_INTERLEAVED : GKD_ROPE_HALF);
    ck_assert(m->config.norm_eps == fx->eps);
    ck_assert(m->config.rope_theta == 10000.0f);
    check_reference(m, tsv);
    gkd_model_free(m);
    free(path);
    free(tsv);
}
END_TEST

/* Each Llama fixture exported in its own format reads back bit for bit;
 * the F32 files come out byte for byte as the fixtures were written. */
START_TEST(test_llama_export_round_trip) {
    const llama_fixture *fx = &llamas[_i];
    char *path = fixture(fx->path);
    gkd_model *m = import_ok(path, NULL);
    gkd_export_format fmt = fx->version < 0 ? GKD_EXPORT_SAFETENSORS : fx->version ? GKD_EXPORT_LLAMA2C : GKD_EXPORT_LLAMA2C_LEGACY;
    gkd_model *r = export_twice(m, fmt, "a", "b");
    assert_same_params(m, r);
    if (fx->version == 1 || !strcmp(fx->path, "llama_hf")) {
        char orig[4300];
        snprintf(orig, sizeof orig, fx->version < 0 ? "%s/model.safetensors" : "%s", path);
        size_t n1, n2;
        unsigned char *b1 = th_read_bytes(orig, &n1);
        unsigned char *b2 = th_read_bytes(in_tmp(fx->version < 0 ? "a/model.safetensors" : "a"), &n2);
        ck_assert_uint_eq(n1, n2);
        ck_assert(!memcmp(b1, b2, n1));
        free(b1);
        free(b2);
    }
    gkd_model_free(m);
    gkd_model_free(r);
    free(path);
}
END_TEST

/* llama2.c -> safetensors permutes q and k rows to rotate-half order, and
 * the model stays the same function (the reference); back to llama2.c the
 * rows return to where they were, bit for bit. */
START_TEST(test_llama_rope_permutation) {
    char *path = fixture("stories_v0.bin"), *tsv = fixture("stories_v0.tsv");
    gkd_model *m = import_ok(path, NULL);
    ck_assert_int_eq(gkd_model_export(m, in_tmp("hf"), GKD_EXPORT_SAFETENSORS), 0);
    gkd_model *h = import_ok(in_tmp("hf"), NULL);
    ck_assert_int_eq(h->config.rope_style, GKD_ROPE_HALF);
    /* q row h*hs + 2i + j of the interleaved model is row h*hs + j*hs/2 + i */
    const int hs = 8, C = 32;
    const float *a = gkd_model_slice(m, GKD_LLAMA_WQKV, 1), *b = gkd_model_slice(h, GKD_LLAMA_WQKV, 1);
    ck_assert(!memcmp(a + (size_t)(1 * hs + 2 * 3 + 1) * C, b + (size_t)(1 * hs + 1 * hs / 2 + 3) * C, C * sizeof(float)));
    /* v rows are not permuted */
    ck_assert(!memcmp(a + (size_t)(C + 16) * C, b + (size_t)(C + 16) * C, 16 * C * sizeof(float)));
    check_reference(h, tsv);
    ck_assert_int_eq(gkd_model_export(h, in_tmp("back.bin"), GKD_EXPORT_LLAMA2C_LEGACY), 0);
    gkd_model *back = import_ok(in_tmp("back.bin"), NULL);
    assert_same_params(m, back);
    /* the Hugging Face fixture has eps 1e-6, which llama2.c cannot express */
    char *hf = fixture("llama_hf");
    gkd_model *l = import_ok(hf, NULL);
    assert_error(gkd_model_export(l, in_tmp("l.bin"), GKD_EXPORT_LLAMA2C), "llama2.c computes RMSNorm eps 1e-05");
    ck_assert(!gkd_path_exists(in_tmp("l.bin")));
    gkd_model_free(l);
    gkd_model_free(m);
    gkd_model_free(h);
    gkd_model_free(back);
    free(path);
    free(tsv);
    free(hf);
}
END_TEST

/* A NaN in a llama2.c file is refused naming the tensor. */
START_TEST(test_llama2c_nan_refused) {
    char *path = fixture("stories_v1.bin");
    size_t len;
    unsigned char *b = th_read_bytes(path, &len);
    /* v1: 256-byte header, then rms_att of layer 0 (36 floats) */
    const float nan = NAN;
    memcpy(b + 256 + 4 * 7, &nan, 4);
    th_write_bytes(in_tmp("nan.bin"), b, len);
    import_fails(in_tmp("nan.bin"), "tensor layers.0.rms_att[7] is NaN");
    th_write_bytes(in_tmp("short.bin"), b, len - 4);
    import_fails(in_tmp("short.bin"), "llama2.c");
    free(b);
    free(path);
}
END_TEST

Suite *model_io_suite(void) {
    Suite *s = suite_create("model_io");
    TCase *tc = tcase_create("model_io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gpt2_fixtures_match_reference);
    tcase_add_test(tc, test_gpt2_conv1d_transposed);
    tcase_add_test(tc, test_gpt2_export_round_trip);
    tcase_add_test(tc, test_gkd_checkpoint_import_export);
    tcase_add_test(tc, test_tensor_errors);
    tcase_add_test(tc, test_sharded);
    tcase_add_test(tc, test_config_parse);
    tcase_add_test(tc, test_config_errors);
    tcase_add_test(tc, test_detection);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("llama");
    tcase_add_checked_fixture(tl, setup, teardown);
    tcase_set_timeout(tl, 60);
    tcase_add_loop_test(tl, test_llama_fixtures_match_reference, 0, 5);
    tcase_add_loop_test(tl, test_llama_export_round_trip, 0, 5);
    tcase_add_test(tl, test_llama_rope_permutation);
    tcase_add_test(tl, test_llama2c_nan_refused);
    suite_add_tcase(s, tl);
    return s;
}
