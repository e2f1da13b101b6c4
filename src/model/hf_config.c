/* A Hugging Face config.json <-> gkd_model_config, for GPT2LMHeadModel and
 * LlamaForCausalLM. The keys read and their defaults are transformers'
 * GPT2Config and LlamaConfig; every setting that changes what the model
 * computes and that gkd does not compute is refused by name, and keys
 * that change nothing (token ids, dropout, dtype, ...) are ignored. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "util/json_min.h"
#include "model/model_io_internal.h"

/* Longest context gkd allocates (gkd_model_config_validate). */
#define GKD_MAX_CONTEXT 8192

typedef struct {
    const gkd_json_doc *d;
    const char *arch; /* for messages */
} cfg_reader;

/* The member key of the root object, or NULL. */
static const gkd_json_value *member(const cfg_reader *r, const char *key) {
    const gkd_json_value *v = r->d->v;
    for (size_t c = 1; c < v[0].end; c = v[c].end)
        if (!strcmp(v[c].key, key)) return &v[c];
    return NULL;
}

static int wrong_type(const char *key, const gkd_json_value *v, const char *want) {
    return gkd_error(GKD_EFORMAT, "\"%s\" is %s %s, expected %s", key,
                     v->type == GKD_JSON_INT || v->type == GKD_JSON_ARRAY ? "an" : "a",
                     gkd_json_type_name(v->type), want);
}

static int missing(const cfg_reader *r, const char *key, const char *want) {
    return gkd_error(GKD_EFORMAT, "no \"%s\" (%s) in a %s config", key, want, r->arch);
}

/* A positive int; required unless def > 0 (then the default when absent). */
static int get_pos_int(const cfg_reader *r, const char *key, int def, int *out) {
    const gkd_json_value *v = member(r, key);
    if (!v) {
        if (def > 0) {
            *out = def;
            return 0;
        }
        return missing(r, key, "a positive integer");
    }
    if (v->type != GKD_JSON_INT) return wrong_type(key, v, "a positive integer");
    if (v->neg || v->num == 0 || v->num > INT_MAX)
        return gkd_error(GKD_EINVAL, "\"%s\" is %s%llu, expected a positive integer below 2^31", key,
                         v->neg ? "-" : "", (unsigned long long)v->num);
    *out = (int)v->num;
    return 0;
}

/* A number (integer or real), def when absent. */
static int get_number(const cfg_reader *r, const char *key, double def, double *out) {
    const gkd_json_value *v = member(r, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (v->type != GKD_JSON_INT && v->type != GKD_JSON_REAL) return wrong_type(key, v, "a number");
    *out = v->real;
    return 0;
}

static int get_bool(const cfg_reader *r, const char *key, int def, int *out) {
    const gkd_json_value *v = member(r, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (v->type != GKD_JSON_BOOL) return wrong_type(key, v, "true or false");
    *out = (int)v->num;
    return 0;
}

/* A string, def when absent (or null when null_ok). */
static int get_string(const cfg_reader *r, const char *key, const char *def, int null_ok, const char **out) {
    const gkd_json_value *v = member(r, key);
    if (!v || (null_ok && v->type == GKD_JSON_NULL)) {
        *out = def;
        return 0;
    }
    if (v->type != GKD_JSON_STRING) return wrong_type(key, v, "a string");
    *out = v->str;
    return 0;
}

/* A bool setting gkd only computes one way. */
static int require_bool(const cfg_reader *r, const char *key, int def, int want, const char *why) {
    int b = def, rc = get_bool(r, key, def, &b);
    if (rc) return rc;
    if (b != want) return gkd_error(GKD_EINVAL, "\"%s\" is %s: %s", key, b ? "true" : "false", why);
    return 0;
}

static int require_null(const cfg_reader *r, const char *key, const char *why) {
    const gkd_json_value *v = member(r, key);
    if (v && v->type != GKD_JSON_NULL) return gkd_error(GKD_EINVAL, "\"%s\" is set (not null): %s", key, why);
    return 0;
}

/* A float config value from a double: refused if it does not fit. */
static int to_float(float *out, double d, const char *key) {
    if (!(fabs(d) <= 3.0e38)) return gkd_error(GKD_EINVAL, "\"%s\" is %g, beyond a float", key, d);
    *out = (float)d;
    return 0;
}

enum { ARCH_NONE = -1 };

/* The architecture named by "architectures" and "model_type". */
static int which_arch(const cfg_reader *r, int *arch, char *name, size_t cap) {
    const gkd_json_value *a = member(r, "architectures");
    const char *mt = NULL, *an = NULL;
    int rc = get_string(r, "model_type", NULL, 0, &mt);
    if (rc) return rc;
    if (a) {
        if (a->type != GKD_JSON_ARRAY) return wrong_type("architectures", a, "an array of strings");
        if (a->len != 1)
            return gkd_error(GKD_EINVAL, "\"architectures\" lists %zu classes, expected one", a->len);
        if (a[1].type != GKD_JSON_STRING) return wrong_type("architectures[0]", &a[1], "a string");
        an = a[1].str;
    }
    if (!an && !mt) return gkd_error(GKD_EFORMAT, "neither \"architectures\" nor \"model_type\" says what model this is");
    int from_an = ARCH_NONE, from_mt = ARCH_NONE;
    char shown[80];
    if (an) {
        if (!strcmp(an, "LlamaForCausalLM")) from_an = GKD_ARCH_LLAMA;
        else if (!strcmp(an, "GPT2LMHeadModel")) from_an = GKD_ARCH_GPT2;
        else {
            gkd_json_shown(shown, sizeof shown, an);
            return gkd_error(GKD_EINVAL, "architecture \"%s\" is not supported (gkd imports LlamaForCausalLM and GPT2LMHeadModel)",
                             shown);
        }
    }
    if (mt) {
        if (!strcmp(mt, "llama")) from_mt = GKD_ARCH_LLAMA;
        else if (!strcmp(mt, "gpt2")) from_mt = GKD_ARCH_GPT2;
        else {
            gkd_json_shown(shown, sizeof shown, mt);
            return gkd_error(GKD_EINVAL, "model_type \"%s\" is not supported (gkd imports llama and gpt2)", shown);
        }
    }
    if (from_an != ARCH_NONE && from_mt != ARCH_NONE && from_an != from_mt)
        return gkd_error(GKD_EINVAL, "\"architectures\" says %s but \"model_type\" says %s", an, mt);
    *arch = from_an != ARCH_NONE ? from_an : from_mt;
    snprintf(name, cap, "%s", *arch == GKD_ARCH_LLAMA ? "LlamaForCausalLM" : "GPT2LMHeadModel");
    return 0;
}

static int parse_gpt2(const cfg_reader *r, gkd_model_config *c) {
    int rc, n_inner_set = 0;
    double eps;
    const char *act = NULL;
    const gkd_json_value *v;
    if ((rc = get_pos_int(r, "vocab_size", 0, &c->vocab_size))) return rc;
    if ((rc = get_pos_int(r, "n_embd", 0, &c->n_embd))) return rc;
    if ((rc = get_pos_int(r, "n_layer", 0, &c->n_layer))) return rc;
    if ((rc = get_pos_int(r, "n_head", 0, &c->n_head))) return rc;
    /* n_ctx is what GPT2Config called the context before n_positions. */
    if (member(r, "n_positions") || !member(r, "n_ctx")) {
        if ((rc = get_pos_int(r, "n_positions", 0, &c->max_seq_len))) return rc;
    } else if ((rc = get_pos_int(r, "n_ctx", 0, &c->max_seq_len)))
        return rc;
    if ((v = member(r, "n_inner")) && v->type != GKD_JSON_NULL) {
        int inner;
        if ((rc = get_pos_int(r, "n_inner", 0, &inner))) return rc;
        n_inner_set = inner != 4 * c->n_embd;
    }
    if (n_inner_set) return gkd_error(GKD_EINVAL, "\"n_inner\" is not 4 * n_embd: gkd's GPT-2 MLP is 4 * n_embd wide");
    if ((rc = get_string(r, "activation_function", "gelu_new", 0, &act))) return rc;
    if (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh")) {
        char shown[64];
        gkd_json_shown(shown, sizeof shown, act);
        return gkd_error(GKD_EINVAL, "\"activation_function\" is \"%s\": gkd's GPT-2 computes gelu_new (the tanh form)", shown);
    }
    if ((rc = get_number(r, "layer_norm_epsilon", 1e-5, &eps))) return rc;
    if ((float)eps != 1e-5f)
        return gkd_error(GKD_EINVAL, "\"layer_norm_epsilon\" is %g: gkd's GPT-2 LayerNorm uses 1e-05", eps);
    if ((rc = require_bool(r, "scale_attn_weights", 1, 1, "gkd scales attention scores by 1/sqrt(head size)"))) return rc;
    if ((rc = require_bool(r, "scale_attn_by_inverse_layer_idx", 0, 0, "gkd does not scale attention by layer")))
        return rc;
    if ((rc = require_bool(r, "add_cross_attention", 0, 0, "gkd models have no cross-attention"))) return rc;
    if ((rc = require_bool(r, "tie_word_embeddings", 1, 1, "gkd's GPT-2 ties its head to wte"))) return rc;
    return 0;
}

static int parse_llama(const cfg_reader *r, gkd_model_config *c, gkd_hf_config_info *info) {
    int rc, ctx = 0, tied = 0, head_dim = 0;
    double eps, theta;
    const char *act = NULL;
    c->arch = GKD_ARCH_LLAMA;
    c->rope_style = GKD_ROPE_HALF;
    if ((rc = get_pos_int(r, "vocab_size", 0, &c->vocab_size))) return rc;
    if ((rc = get_pos_int(r, "hidden_size", 0, &c->n_embd))) return rc;
    if ((rc = get_pos_int(r, "intermediate_size", 0, &c->ffn_dim))) return rc;
    if ((rc = get_pos_int(r, "num_hidden_layers", 0, &c->n_layer))) return rc;
    if ((rc = get_pos_int(r, "num_attention_heads", 0, &c->n_head))) return rc;
    if ((rc = get_pos_int(r, "num_key_value_heads", c->n_head, &c->n_kv_head))) return rc;
    if ((rc = get_pos_int(r, "max_position_embeddings", 0, &ctx))) return rc;
    /* RoPE has no position table: a longer context is only cut. */
    c->max_seq_len = ctx > GKD_MAX_CONTEXT ? GKD_MAX_CONTEXT : ctx;
    if (info) info->context_from = ctx > GKD_MAX_CONTEXT ? ctx : 0;
    if (member(r, "head_dim") && member(r, "head_dim")->type != GKD_JSON_NULL) {
        if ((rc = get_pos_int(r, "head_dim", 0, &head_dim))) return rc;
        if ((long)head_dim * c->n_head != c->n_embd)
            return gkd_error(GKD_EINVAL, "\"head_dim\" %d is not hidden_size / num_attention_heads = %d / %d: gkd's heads split hidden_size",
                             head_dim, c->n_embd, c->n_head);
    }
    if ((rc = get_number(r, "rms_norm_eps", 1e-6, &eps))) return rc;
    if ((rc = to_float(&c->norm_eps, eps, "rms_norm_eps"))) return rc;
    if ((rc = get_number(r, "rope_theta", 10000.0, &theta))) return rc;
    if ((rc = to_float(&c->rope_theta, theta, "rope_theta"))) return rc;
    if ((rc = get_bool(r, "tie_word_embeddings", 0, &tied))) return rc;
    c->untied_head = !tied;
    if ((rc = get_string(r, "hidden_act", "silu", 0, &act))) return rc;
    if (strcmp(act, "silu")) {
        char shown[64];
        gkd_json_shown(shown, sizeof shown, act);
        return gkd_error(GKD_EINVAL, "\"hidden_act\" is \"%s\": gkd's Llama MLP computes silu (SwiGLU)", shown);
    }
    if ((rc = require_null(r, "rope_scaling", "gkd implements plain RoPE, no scaled or extended positions"))) return rc;
    if ((rc = require_bool(r, "attention_bias", 0, 0, "gkd's Llama attention has no biases"))) return rc;
    if ((rc = require_bool(r, "mlp_bias", 0, 0, "gkd's Llama MLP has no biases"))) return rc;
    return 0;
}

int gkd_hf_config_parse(gkd_model_config *cfg, gkd_hf_config_info *info, const char *text, size_t len) {
    gkd_json_doc d;
    gkd_model_config c;
    gkd_hf_config_info inf;
    memset(&c, 0, sizeof c);
    memset(&inf, 0, sizeof inf);
    int rc = gkd_json_parse_full(&d, text, len, 16);
    if (rc) return gkd_error_wrap(rc, "not JSON");
    cfg_reader r = {&d, "model"};
    if (d.v[0].type != GKD_JSON_OBJECT) {
        rc = gkd_error(GKD_EFORMAT, "the root is %s %s, expected an object",
                       d.v[0].type == GKD_JSON_INT || d.v[0].type == GKD_JSON_ARRAY ? "an" : "a",
                       gkd_json_type_name(d.v[0].type));
        goto done;
    }
    int arch = GKD_ARCH_GPT2;
    if ((rc = which_arch(&r, &arch, inf.architecture, sizeof inf.architecture))) goto done;
    r.arch = inf.architecture;
    rc = arch == GKD_ARCH_LLAMA ? parse_llama(&r, &c, &inf) : parse_gpt2(&r, &c);
    if (rc) goto done;
    if ((rc = gkd_model_config_validate(&c))) {
        rc = gkd_error_wrap(GKD_EINVAL, "not a model gkd can build");
        goto done;
    }
    *cfg = c;
    if (info) *info = inf;
done:
    gkd_json_free(&d);
    return rc;
}

/* ---- writing ---- */

/* The shortest %g form of x that reads back (strtod, then float) to x,
 * with ".0" added to an integer so it stays a JSON real. */
static void shortest_float(char *out, size_t cap, float x) {
    for (int p = 1; p <= 9; p++) {
        snprintf(out, cap, "%.*g", p, (double)x);
        if ((float)strtod(out, NULL) == x) break;
    }
    if (!strpbrk(out, ".eEn")) strncat(out, ".0", cap - strlen(out) - 1);
}

int gkd_hf_config_write(char **out, size_t *len, const gkd_model_config *c) {
    *out = NULL;
    *len = 0;
    int rc = gkd_model_config_validate(c);
    if (rc) return rc;
    size_t cap = 2048;
    char *s = malloc(cap), eps[32], theta[32];
    if (!s) return gkd_error(GKD_ENOMEM, "out of memory for config.json");
    int n;
    if (c->arch == GKD_ARCH_GPT2) {
        n = snprintf(s, cap,
                     "{\n"
                     "  \"architectures\": [\n    \"GPT2LMHeadModel\"\n  ],\n"
                     "  \"model_type\": \"gpt2\",\n"
                     "  \"vocab_size\": %d,\n"
                     "  \"n_positions\": %d,\n"
                     "  \"n_ctx\": %d,\n"
                     "  \"n_embd\": %d,\n"
                     "  \"n_layer\": %d,\n"
                     "  \"n_head\": %d,\n"
                     "  \"n_inner\": null,\n"
                     "  \"activation_function\": \"gelu_new\",\n"
                     "  \"layer_norm_epsilon\": 1e-05,\n"
                     "  \"scale_attn_weights\": true,\n"
                     "  \"tie_word_embeddings\": true,\n"
                     "  \"torch_dtype\": \"float32\"\n"
                     "}\n",
                     c->vocab_size, c->max_seq_len, c->max_seq_len, c->n_embd, c->n_layer, c->n_head);
    } else {
        shortest_float(eps, sizeof eps, c->norm_eps);
        shortest_float(theta, sizeof theta, c->rope_theta);
        n = snprintf(s, cap,
                     "{\n"
                     "  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n"
                     "  \"model_type\": \"llama\",\n"
                     "  \"vocab_size\": %d,\n"
                     "  \"hidden_size\": %d,\n"
                     "  \"intermediate_size\": %d,\n"
                     "  \"num_hidden_layers\": %d,\n"
                     "  \"num_attention_heads\": %d,\n"
                     "  \"num_key_value_heads\": %d,\n"
                     "  \"head_dim\": %d,\n"
                     "  \"max_position_embeddings\": %d,\n"
                     "  \"rms_norm_eps\": %s,\n"
                     "  \"rope_theta\": %s,\n"
                     "  \"rope_scaling\": null,\n"
                     "  \"hidden_act\": \"silu\",\n"
                     "  \"attention_bias\": false,\n"
                     "  \"mlp_bias\": false,\n"
                     "  \"tie_word_embeddings\": %s,\n"
                     "  \"torch_dtype\": \"float32\"\n"
                     "}\n",
                     c->vocab_size, c->n_embd, c->ffn_dim, c->n_layer, c->n_head, gkd_config_kv_heads(c),
                     c->n_embd / c->n_head, c->max_seq_len, eps, theta, c->untied_head ? "false" : "true");
    }
    if (n < 0 || (size_t)n >= cap) {
        free(s);
        return gkd_error(GKD_EINVAL, "config.json longer than %zu bytes", cap);
    }
    *out = s;
    *len = (size_t)n;
    return 0;
}
