/* Models in and out (include/gkd/model_io.h): the format of a path told
 * by its contents, and the importer and exporter of each format. */
#include "gkd/model_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "model/model_io_internal.h"

const char *gkd_model_format_name(gkd_model_format f) {
    switch (f) {
    case GKD_MODEL_FORMAT_GKD: return "gkd checkpoint";
    case GKD_MODEL_FORMAT_LLAMA2C: return "llama2.c";
    case GKD_MODEL_FORMAT_SAFETENSORS: return "safetensors";
    default: return "unknown";
    }
}

static int32_t le32(const unsigned char *b) {
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
}

/* Seven int32 that could be a legacy llama2.c header: positive sizes (the
 * vocabulary's sign says whether the classifier is separate), heads
 * dividing dim. The reader checks the rest, the file's length first. */
static int legacy_plausible(const unsigned char *h, size_t n) {
    if (n < 28) return 0;
    int32_t d[7];
    for (int k = 0; k < 7; k++) d[k] = le32(h + 4 * k);
    for (int k = 0; k < 7; k++)
        if (k != 5 && (d[k] <= 0 || d[k] > (1 << 24))) return 0;
    if (d[5] == 0 || d[5] < -(1 << 24) || d[5] > (1 << 24)) return 0;
    return d[0] % d[3] == 0 && d[4] <= d[3];
}

int gkd_model_detect(gkd_model_format *fmt, const char *path) {
    *fmt = GKD_MODEL_FORMAT_UNKNOWN;
    struct stat st;
    if (stat(path, &st) != 0) return gkd_error(GKD_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(path) + 40;
        char *p = malloc(n);
        if (!p) return gkd_error(GKD_ENOMEM, "out of memory");
        snprintf(p, n, "%s/config.json", path);
        int cfg = gkd_path_exists(p);
        snprintf(p, n, "%s/model.safetensors", path);
        int w = gkd_path_exists(p);
        snprintf(p, n, "%s/model.safetensors.index.json", path);
        w = w || gkd_path_exists(p);
        free(p);
        if (!cfg || !w)
            return gkd_error(GKD_EFORMAT, "%s: a directory without %s (a Hugging Face model has config.json and model.safetensors)",
                             path, cfg ? "model.safetensors" : "config.json");
        *fmt = GKD_MODEL_FORMAT_SAFETENSORS;
        return 0;
    }
    FILE *f = NULL;
    int rc = gkd_fopen_read(&f, path);
    if (rc) return rc;
    unsigned char h[32];
    size_t n = fread(h, 1, sizeof h, f);
    int err = ferror(f);
    fclose(f);
    if (err) return gkd_error(GKD_EIO, "%s: read failed", path);
    uint64_t hlen = 0;
    for (int k = 7; n >= 9 && k >= 0; k--) hlen = hlen << 8 | h[k];
    if (n >= 8 && !memcmp(h, GKD_CHECKPOINT_MAGIC, 8)) *fmt = GKD_MODEL_FORMAT_GKD;
    else if (n >= 4 && (uint32_t)le32(h) == 0x616b3432u) *fmt = GKD_MODEL_FORMAT_LLAMA2C;
    else if (n >= 9 && h[8] == '{' && hlen >= 2 && hlen <= (uint64_t)st.st_size - 8) *fmt = GKD_MODEL_FORMAT_SAFETENSORS;
    else if (legacy_plausible(h, n)) *fmt = GKD_MODEL_FORMAT_LLAMA2C;
    else
        return gkd_error(GKD_EFORMAT,
                         "%s: not a model format gkd reads (a gkd checkpoint, a llama2.c .bin, or safetensors with config.json)",
                         path);
    return 0;
}

static int import_gkd(gkd_model **out, const char *path, gkd_model_import_info *info) {
    gkd_checkpoint_data d;
    int rc = gkd_checkpoint_load(&d, path, NULL);
    if (rc) return rc;
    *out = d.model;
    if (info) {
        snprintf(info->detail, sizeof info->detail, "gkd checkpoint version %u, step %lld", d.version, (long long)d.step);
        snprintf(info->weights, sizeof info->weights, "%s", path);
        info->n_tensors = d.model->num_tensors;
        info->n_shards = 1;
    }
    d.owns_model = 0;
    gkd_checkpoint_data_free(&d);
    return 0;
}

int gkd_model_import(gkd_model **out, const char *path, gkd_model_import_info *info) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "gkd_model_import: NULL argument");
    *out = NULL;
    gkd_model_format fmt;
    gkd_model_import_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    int rc = gkd_model_detect(&fmt, path);
    if (rc) return rc;
    switch (fmt) {
    case GKD_MODEL_FORMAT_GKD: rc = import_gkd(out, path, info); break;
    case GKD_MODEL_FORMAT_LLAMA2C: rc = gkd_import_llama2c(out, path, info); break;
    default: rc = gkd_import_hf(out, path, info); break;
    }
    if (rc) *out = NULL;
    else info->format = fmt;
    return rc;
}

int gkd_export_format_parse(gkd_export_format *out, const char *name) {
    if (name && !strcmp(name, "safetensors")) *out = GKD_EXPORT_SAFETENSORS;
    else if (name && !strcmp(name, "llama2c")) *out = GKD_EXPORT_LLAMA2C;
    else if (name && !strcmp(name, "llama2c-legacy")) *out = GKD_EXPORT_LLAMA2C_LEGACY;
    else
        return gkd_error(GKD_EINVAL, "export format '%s' is not safetensors, llama2c or llama2c-legacy", name ? name : "");
    return 0;
}

int gkd_model_export(const gkd_model *m, const char *path, gkd_export_format fmt) {
    if (!m || !path) return gkd_error(GKD_EINVAL, "gkd_model_export: NULL argument");
    switch (fmt) {
    case GKD_EXPORT_SAFETENSORS: return gkd_export_hf(m, path);
    case GKD_EXPORT_LLAMA2C: return gkd_export_llama2c(m, path, 0);
    case GKD_EXPORT_LLAMA2C_LEGACY: return gkd_export_llama2c(m, path, 1);
    }
    return gkd_error(GKD_EINVAL, "export format %d is not known", (int)fmt);
}
