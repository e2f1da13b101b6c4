/* A gkd model from a Hugging Face checkpoint: config.json (hf_config.c)
 * and one model.safetensors, or the shards that
 * model.safetensors.index.json's "weight_map" lists. Every tensor of the
 * files must be one the config implies (names in hf_names.c; a prefix
 * "model." or "transformer." is optional; GPT-2's attention-mask buffers
 * and Llama's inv_freq are skipped), with exactly its shape, and every
 * tensor the config implies must be there. Shapes, names and dtypes are
 * all checked before a value is read; values are checked as they are
 * read; the model is handed out only when all of it is loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "gkd/safetensors.h"
#include "util/json_min.h"
#include "model/model_io_internal.h"

#define MAX_SHARDS 1024

typedef struct {
    char *dir, *config, *weights; /* weights: the .safetensors or the index */
    int sharded;
    gkd_safetensors *sh[MAX_SHARDS];
    char *sh_name[MAX_SHARDS];
    int n_sh;
    gkd_json_doc index;
    gkd_hf_tensor *map;
    size_t n_map;
    int *where_sh;    /* per map entry: shard, or -1 when absent */
    size_t *where_t;  /* its tensor index in that shard */
    const char **file_name; /* the name the file uses */
} hf_load;

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir, config and weights of path. */
static int resolve(hf_load *h, const char *path) {
    if (is_dir(path)) {
        h->dir = strdup(path);
        h->weights = join(path, "model.safetensors");
        if (h->weights && !gkd_path_exists(h->weights)) {
            free(h->weights);
            h->weights = join(path, "model.safetensors.index.json");
            h->sharded = 1;
            if (h->weights && !gkd_path_exists(h->weights))
                return gkd_error(GKD_EFORMAT, "%s: a directory without model.safetensors or model.safetensors.index.json",
                                 path);
        }
    } else {
        const char *slash = strrchr(path, '/');
        h->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        h->weights = strdup(path);
    }
    if (!h->dir || !h->weights || !(h->config = join(h->dir, "config.json")))
        return gkd_error(GKD_ENOMEM, "out of memory");
    if (!gkd_path_exists(h->config))
        return gkd_error(GKD_EFORMAT, "%s: no config.json beside the safetensors weights (%s)", h->weights, h->config);
    return 0;
}

static int read_config(gkd_model_config *cfg, gkd_hf_config_info *ci, const char *path) {
    char *text = NULL;
    size_t len = 0;
    int rc = gkd_file_read(&text, &len, path);
    if (rc) return rc;
    rc = gkd_hf_config_parse(cfg, ci, text, len);
    free(text);
    return rc ? gkd_error_wrap(rc, "%s", path) : 0;
}

/* A shard's file name from the index: a plain name in the directory. */
static int shard_name_ok(const char *s) {
    return *s && *s != '.' && !strchr(s, '/') && !strchr(s, '\\');
}

/* Open the shards the index lists (each once, in order of first mention). */
static int open_index(hf_load *h) {
    char *text = NULL;
    size_t len = 0;
    int rc = gkd_file_read(&text, &len, h->weights);
    if (rc) return rc;
    rc = gkd_json_parse_full(&h->index, text, len, 8);
    free(text);
    if (rc) return gkd_error_wrap(rc, "%s: not JSON", h->weights);
    const gkd_json_value *v = h->index.v, *wm = NULL;
    if (v[0].type != GKD_JSON_OBJECT) return gkd_error(GKD_EFORMAT, "%s: the root is not an object", h->weights);
    for (size_t c = 1; c < v[0].end; c = v[c].end)
        if (!strcmp(v[c].key, "weight_map")) wm = &v[c];
    if (!wm || wm->type != GKD_JSON_OBJECT)
        return gkd_error(GKD_EFORMAT, "%s: no \"weight_map\" object", h->weights);
    for (size_t c = (size_t)(wm - v) + 1; c < wm->end; c = v[c].end) {
        char shown[96];
        if (v[c].type != GKD_JSON_STRING) {
            gkd_json_shown(shown, sizeof shown, v[c].key);
            return gkd_error(GKD_EFORMAT, "%s: weight_map[\"%s\"] is not a string", h->weights, shown);
        }
        if (!shard_name_ok(v[c].str)) {
            gkd_json_shown(shown, sizeof shown, v[c].str);
            return gkd_error(GKD_EFORMAT, "%s: shard \"%s\" is not a file name in the index's directory", h->weights, shown);
        }
        int k = 0;
        while (k < h->n_sh && strcmp(h->sh_name[k], v[c].str)) k++;
        if (k < h->n_sh) continue;
        if (h->n_sh == MAX_SHARDS) return gkd_error(GKD_EFORMAT, "%s: more than %d shards", h->weights, MAX_SHARDS);
        h->sh_name[h->n_sh] = (char *)v[c].str;
        char *p = join(h->dir, v[c].str);
        if (!p) return gkd_error(GKD_ENOMEM, "out of memory");
        rc = gkd_safetensors_open(&h->sh[h->n_sh], p);
        free(p);
        if (rc) return rc;
        h->n_sh++;
    }
    if (!h->n_sh) return gkd_error(GKD_EFORMAT, "%s: \"weight_map\" is empty", h->weights);
    return 0;
}

/* The shard the index maps name to, or NULL. */
static const char *index_shard(const hf_load *h, const char *name) {
    const gkd_json_value *v = h->index.v;
    for (size_t c = 1; c < v[0].end; c = v[c].end)
        if (!strcmp(v[c].key, "weight_map"))
            for (size_t e = c + 1; e < v[c].end; e = v[e].end)
                if (!strcmp(v[e].key, name)) return v[e].str;
    return NULL;
}

static void shape_text(char *out, size_t cap, int rank, const uint64_t *shape) {
    int k = snprintf(out, cap, "[");
    for (int i = 0; i < rank && k > 0 && (size_t)k < cap; i++)
        k += snprintf(out + k, cap - (size_t)k, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (k > 0 && (size_t)k < cap) snprintf(out + k, cap - (size_t)k, "]");
}

/* Match every tensor of every shard to the map; nothing is read. */
static int match(hf_load *h, const gkd_model_config *cfg, const char *arch_name, int *n_tensors, int *n_ignored,
                 char *dtype, size_t dcap) {
    size_t n_index = 0;
    char shown[128];
    dtype[0] = '\0';
    for (int s = 0; s < h->n_sh; s++) {
        const char *spath = h->sharded ? h->sh_name[s] : h->weights;
        for (size_t i = 0; i < gkd_safetensors_count(h->sh[s]); i++) {
            const gkd_safetensors_tensor *t = gkd_safetensors_tensor_at(h->sh[s], i);
            gkd_json_shown(shown, sizeof shown, t->name);
            if (h->sharded) {
                const char *want = index_shard(h, t->name);
                if (!want || strcmp(want, h->sh_name[s]))
                    return gkd_error(GKD_EFORMAT, "%s: shard %s holds %s, which the index %s", h->weights, spath, shown,
                                     want ? "maps to another shard" : "does not list");
                n_index++;
            }
            const char *name = gkd_hf_strip_prefix(t->name, cfg->arch);
            if (gkd_hf_ignored(name, cfg->arch)) {
                (*n_ignored)++;
                continue;
            }
            size_t j = 0;
            while (j < h->n_map && strcmp(h->map[j].name, name)) j++;
            if (j == h->n_map)
                return gkd_error(GKD_EFORMAT, "%s: unknown tensor %s (not part of a %s with this config.json)", spath, shown,
                                 arch_name);
            const gkd_hf_tensor *e = &h->map[j];
            if (h->where_sh[j] >= 0)
                return gkd_error(GKD_EFORMAT, "%s: tensor %s is there twice (as %s and %s)", spath, e->name,
                                 h->file_name[j], shown);
            if (!t->float_readable)
                return gkd_error(GKD_EFORMAT, "%s: tensor %s has dtype %s; gkd reads F32, F16 and BF16", spath, shown,
                                 t->dtype);
            if (t->rank != e->rank || t->shape[0] != e->shape[0] || (e->rank == 2 && t->shape[1] != e->shape[1])) {
                char got[96], want[96];
                shape_text(got, sizeof got, t->rank, t->shape);
                shape_text(want, sizeof want, e->rank, e->shape);
                return gkd_error(GKD_EMISMATCH, "%s: tensor %s has shape %s, config.json implies %s", spath, shown, got, want);
            }
            h->where_sh[j] = s;
            h->where_t[j] = i;
            h->file_name[j] = t->name;
            (*n_tensors)++;
            if (!dtype[0]) snprintf(dtype, dcap, "%s", t->dtype);
            else if (strcmp(dtype, t->dtype)) snprintf(dtype, dcap, "mixed dtypes");
        }
    }
    if (h->sharded) {
        const gkd_json_value *v = h->index.v;
        size_t listed = 0;
        for (size_t c = 1; c < v[0].end; c = v[c].end)
            if (!strcmp(v[c].key, "weight_map")) listed = v[c].len;
        if (listed != n_index)
            return gkd_error(GKD_EFORMAT, "%s: the index lists %zu tensors, its shards hold %zu", h->weights, listed, n_index);
    }
    for (size_t j = 0; j < h->n_map; j++)
        if (h->where_sh[j] < 0 && !h->map[j].tied_copy) {
            char full[128];
            gkd_hf_file_name(full, sizeof full, cfg, h->map[j].name);
            return gkd_error(GKD_EFORMAT, "%s: missing tensor %s (a %s with this config.json has it)", h->weights, full,
                             arch_name);
        }
    return 0;
}

static int load_values(hf_load *h, gkd_model *m) {
    size_t most = 0;
    for (size_t j = 0; j < h->n_map; j++) {
        size_t n = (size_t)h->map[j].shape[0] * (h->map[j].rank == 2 ? (size_t)h->map[j].shape[1] : 1);
        if (h->where_sh[j] >= 0 && n > most) most = n;
    }
    float *buf = malloc((most ? most : 1) * sizeof(float)), *tie = NULL;
    if (!buf) return gkd_error(GKD_ENOMEM, "out of memory for a tensor of %zu floats", most);
    int rc = 0;
    /* Tied copies last: they are compared with what the others loaded. */
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (size_t j = 0; j < h->n_map && !rc; j++) {
            const gkd_hf_tensor *e = &h->map[j];
            if (h->where_sh[j] < 0 || e->tied_copy != pass) continue;
            const int s = h->where_sh[j];
            const char *spath = h->sharded ? h->sh_name[s] : h->weights;
            size_t n = (size_t)e->shape[0] * (e->rank == 2 ? (size_t)e->shape[1] : 1);
            if ((rc = gkd_safetensors_read_f32(buf, n, h->sh[s], h->where_t[j]))) break;
            if ((rc = gkd_import_check_values(buf, n, spath, h->file_name[j]))) break;
            if (!e->tied_copy) {
                gkd_hf_put(m, e, buf);
                continue;
            }
            if (!tie && !(tie = malloc(n * sizeof(float)))) {
                rc = gkd_error(GKD_ENOMEM, "out of memory for a tensor of %zu floats", n);
                break;
            }
            gkd_hf_get(tie, m, e);
            if (memcmp(tie, buf, n * sizeof(float)))
                rc = gkd_error(GKD_EFORMAT, "%s: %s differs from the token embedding, but config.json ties the head to it",
                               spath, h->file_name[j]);
        }
    free(buf);
    free(tie);
    return rc;
}

int gkd_import_hf(gkd_model **out, const char *path, gkd_model_import_info *info) {
    hf_load h;
    gkd_model *m = NULL;
    gkd_model_config cfg;
    gkd_hf_config_info ci;
    int n_tensors = 0, n_ignored = 0;
    char dtype[32];
    memset(&h, 0, sizeof h);
    *out = NULL;
    int rc = resolve(&h, path);
    if (rc) goto done;
    if ((rc = read_config(&cfg, &ci, h.config))) goto done;
    if (h.sharded) {
        if ((rc = open_index(&h))) goto done;
    } else {
        if ((rc = gkd_safetensors_open(&h.sh[0], h.weights))) goto done;
        h.n_sh = 1;
    }
    if ((rc = gkd_hf_tensors(&h.map, &h.n_map, &cfg))) goto done;
    h.where_sh = malloc(h.n_map * sizeof *h.where_sh);
    h.where_t = calloc(h.n_map, sizeof *h.where_t);
    h.file_name = calloc(h.n_map, sizeof *h.file_name);
    if (!h.where_sh || !h.where_t || !h.file_name) {
        rc = gkd_error(GKD_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < h.n_map; j++) h.where_sh[j] = -1;
    if ((rc = match(&h, &cfg, ci.architecture, &n_tensors, &n_ignored, dtype, sizeof dtype))) goto done;
    if ((rc = gkd_model_new(&m, &cfg))) goto done;
    if ((rc = load_values(&h, m))) goto done;
    if (info) {
        memset(info, 0, sizeof *info);
        info->format = GKD_MODEL_FORMAT_SAFETENSORS;
        snprintf(info->detail, sizeof info->detail, "%s, %s%s", ci.architecture, dtype,
                 h.sharded ? ", sharded" : "");
        snprintf(info->weights, sizeof info->weights, "%s", h.weights);
        snprintf(info->config, sizeof info->config, "%s", h.config);
        info->n_tensors = n_tensors;
        info->n_ignored = n_ignored;
        info->n_shards = h.n_sh;
        info->context_from = ci.context_from;
    }
    *out = m;
    m = NULL;
done:
    gkd_model_free(m);
    for (int s = 0; s < h.n_sh; s++) gkd_safetensors_close(h.sh[s]);
    gkd_json_free(&h.index);
    free(h.map);
    free(h.where_sh);
    free(h.where_t);
    free(h.file_name);
    free(h.dir);
    free(h.config);
    free(h.weights);
    return rc;
}
