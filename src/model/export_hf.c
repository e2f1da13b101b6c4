/* A gkd model as a Hugging Face directory: model.safetensors (float32,
 * names of hf_names.c: GPT-2 as the hub's gpt2 file without its mask
 * buffers, Llama with the "model." prefix and lm_head.weight only when
 * untied) and config.json (hf_config.c). Transformers' Llama rotates
 * half-split pairs, so a model with interleaved pairs (from llama2.c) has
 * its q and k rows permuted as llama2.c's export.py does; the function is
 * the same. Each file is written atomically, the weights first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "model/model_io_internal.h"

int gkd_export_hf(const gkd_model *m, const char *dir) {
    const gkd_model_config *c = &m->config;
    gkd_hf_tensor *map = NULL;
    size_t n_map = 0, n = 0;
    gkd_st_entry *e = NULL;
    char (*names)[128] = NULL;
    float *data = NULL;
    unsigned char *file = NULL;
    char *json = NULL, *wpath = NULL, *cpath = NULL;
    size_t flen = 0, jlen = 0;
    int rc = gkd_hf_tensors(&map, &n_map, c);
    if (rc) goto done;
    e = calloc(n_map, sizeof *e);
    names = calloc(n_map, sizeof *names);
    data = malloc((m->num_params ? m->num_params : 1) * sizeof(float));
    size_t dl = strlen(dir) + 32;
    wpath = malloc(dl);
    cpath = malloc(dl);
    if (!e || !names || !data || !wpath || !cpath) {
        rc = gkd_error(GKD_ENOMEM, "%s: out of memory for the export", dir);
        goto done;
    }
    snprintf(wpath, dl, "%s/model.safetensors", dir);
    snprintf(cpath, dl, "%s/config.json", dir);
    const int hs = c->n_embd / c->n_head;
    const int permute = c->arch == GKD_ARCH_LLAMA && c->rope_style == GKD_ROPE_INTERLEAVED;
    float *p = data;
    for (size_t j = 0; j < n_map; j++) {
        const gkd_hf_tensor *t = &map[j];
        if (t->tied_copy) continue;
        gkd_hf_get(p, m, t);
        if (permute && t->tensor == GKD_LLAMA_WQKV && (strstr(t->name, ".q_proj.") || strstr(t->name, ".k_proj.")) &&
            (rc = gkd_rope_permute_rows(p, (int)(t->shape[0] / (uint64_t)hs), hs, (size_t)t->shape[1], 1)))
            goto done;
        gkd_hf_file_name(names[n], sizeof names[n], c, t->name);
        e[n].name = names[n];
        e[n].rank = t->rank;
        e[n].shape[0] = t->shape[0];
        e[n].shape[1] = t->shape[1];
        e[n].data = p;
        p += (size_t)t->shape[0] * (t->rank == 2 ? (size_t)t->shape[1] : 1);
        n++;
    }
    if ((size_t)(p - data) != m->num_params) {
        rc = gkd_error(GKD_EINVAL, "%s: the tensor table covers %zu of %zu parameters", dir, (size_t)(p - data),
                       m->num_params);
        goto done;
    }
    if ((rc = gkd_safetensors_build(&file, &flen, e, n))) goto done;
    if ((rc = gkd_hf_config_write(&json, &jlen, c))) goto done;
    if ((rc = gkd_mkdir_p(dir))) goto done;
    if ((rc = gkd_file_write_atomic(wpath, (const char *)file, flen))) goto done;
    rc = gkd_file_write_atomic(cpath, json, jlen);
done:
    free(map);
    free(e);
    free(names);
    free(data);
    free(file);
    free(json);
    free(wpath);
    free(cpath);
    return rc;
}
