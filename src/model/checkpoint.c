/* Checkpoint files (format: docs/checkpoint-format.md).
 *
 * Saving serializes everything into one buffer, then writes it through a
 * temp file in the destination directory (write, flush, fsync, rename,
 * fsync the directory). Loading reads the whole file, checks magic,
 * version, size and CRC before parsing, parses into temporaries and only
 * then commits, so a bad file never half-loads a model. */
#include "gkd/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gkd/error.h"
#include "gkd/fsutil.h"

#define HEADER_SIZE 20 /* magic 8, version 4, payload size 8 */
#define TRAILER_SIZE 4 /* CRC-32 */
#define FLAG_TOKENIZER 1u
#define FLAG_OPTIMIZER 2u
#define FLAG_TASK_RECORD 4u /* version 2 and later */

/* Reflected table of CRC-32/ISO-HDLC (polynomial 0xEDB88320). */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t gkd_crc32(uint32_t crc, const void *buf, size_t n) {
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- little-endian serialization ---- */

typedef struct {
    unsigned char *p;
    size_t off;
} writer;

static void put_u32(writer *w, uint32_t x) {
    for (int i = 0; i < 4; i++) w->p[w->off++] = (unsigned char)(x >> (8 * i));
}

static void put_u64(writer *w, uint64_t x) {
    for (int i = 0; i < 8; i++) w->p[w->off++] = (unsigned char)(x >> (8 * i));
}

static void put_bytes(writer *w, const void *src, size_t n) {
    if (n) memcpy(w->p + w->off, src, n);
    w->off += n;
}

static void put_f32s(writer *w, const float *x, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    put_bytes(w, x, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        put_u32(w, u);
    }
#endif
}

typedef struct {
    const unsigned char *p;
    size_t n, off;
} reader;

static int get_u32(reader *r, uint32_t *x) {
    if (r->n - r->off < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)r->p[r->off + i] << (8 * i);
    r->off += 4;
    *x = v;
    return 0;
}

static int get_u64(reader *r, uint64_t *x) {
    if (r->n - r->off < 8) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += 8;
    *x = v;
    return 0;
}

/* Points *at to n bytes of the buffer (no copy). */
static int get_span(reader *r, const unsigned char **at, uint64_t n) {
    if (n > r->n - r->off) return -1;
    *at = r->p + r->off;
    r->off += (size_t)n;
    return 0;
}

static void copy_f32s(float *dst, const unsigned char *src, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(dst, src, n * sizeof(float));
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                     (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(dst + i, &u, 4);
    }
#endif
}

/* The oldest format that holds the config: GPT-2 needs no architecture
 * fields, so its files keep the bytes of version 2. */
static uint32_t version_for(const gkd_model_config *c) { return c->arch == GKD_ARCH_GPT2 ? 2u : 3u; }

/* Bytes of the architecture fields (version 3): arch, n_kv_head, ffn_dim,
 * untied_head, rope_style, norm_eps, rope_theta. */
#define ARCH_FIELDS_SIZE 28

/* ---- save ---- */

/* Write buf to path through a temp file in the same directory. */
static int write_atomic(const char *path, const unsigned char *buf, size_t n) {
    int rc = 0, fd = -1, dfd = -1;
    FILE *f = NULL;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dir = malloc(plen + 2);
    if (!tmp || !dir) {
        rc = gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory", path);
        goto done;
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: cannot create temp file: %s", path, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    (void)fchmod(fd, 0644);
    f = fdopen(fd, "wb");
    if (!f) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: fdopen: %s", path, strerror(errno));
        goto done;
    }
    fd = -1; /* owned by f */
    if (fwrite(buf, 1, n, f) != n) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: write failed: %s", path, strerror(errno));
        goto done;
    }
    if (fflush(f) != 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: write failed: %s", path, strerror(errno));
        goto done;
    }
    if (fsync(fileno(f)) != 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: fsync failed: %s", path, strerror(errno));
        goto done;
    }
    int cr = fclose(f);
    f = NULL;
    if (cr != 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: close failed: %s", path, strerror(errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto done;
    }
    tmp[0] = '\0'; /* renamed: nothing to remove */
    /* Make the rename itself durable. */
    strcpy(dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0)
        rc = gkd_error(GKD_EIO, "checkpoint %s: fsync of directory %s failed: %s", path, dir,
                       strerror(errno));
done:
    if (f) fclose(f);
    if (fd >= 0) close(fd);
    if (dfd >= 0) close(dfd);
    if (tmp && tmp[0]) unlink(tmp);
    free(tmp);
    free(dir);
    return rc;
}

int gkd_checkpoint_save(const char *path, const gkd_checkpoint *c) {
    if (!path || !c || !c->model) return gkd_error(GKD_EINVAL, "checkpoint save: NULL path or model");
    if ((c->opt_m == NULL) != (c->opt_v == NULL))
        return gkd_error(GKD_EINVAL, "checkpoint %s: opt_m and opt_v must both be set or both NULL", path);
    if (c->n_rngs && !c->rngs)
        return gkd_error(GKD_EINVAL, "checkpoint %s: %u rng states but rngs is NULL", path, c->n_rngs);
    if (c->extra_len && !c->extra)
        return gkd_error(GKD_EINVAL, "checkpoint %s: extra_len %llu but extra is NULL", path,
                         (unsigned long long)c->extra_len);
    const gkd_model *m = c->model;
    uint64_t np = m->num_params;
    size_t tok_len = c->tokenizer ? gkd_tokenizer_serialized_size(c->tokenizer) : 0;
    size_t rec_len = c->task_record ? gkd_task_record_serialized_size(c->task_record) : 0;
    const gkd_model_config *cfg = &m->config;
    const uint32_t version = version_for(cfg);
    uint64_t payload = 5 * 4 + (version >= 3 ? ARCH_FIELDS_SIZE : 0) + 8 + 4 + 8 + tok_len + 4 * np + (c->opt_m ? 8 * np + 8 : 0) + 8 + 4 +
                       16 * (uint64_t)c->n_rngs + 8 + c->extra_len + 8 + rec_len;
    uint64_t total = HEADER_SIZE + payload + TRAILER_SIZE;
    if (total > SIZE_MAX) return gkd_error(GKD_EINVAL, "checkpoint %s: too large", path);
    unsigned char *buf = malloc((size_t)total);
    if (!buf)
        return gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory for %llu bytes", path,
                         (unsigned long long)total);
    writer w = {buf, 0};
    put_bytes(&w, GKD_CHECKPOINT_MAGIC, 8);
    put_u32(&w, version);
    put_u64(&w, payload);
    put_u32(&w, (uint32_t)cfg->vocab_size);
    put_u32(&w, (uint32_t)cfg->max_seq_len);
    put_u32(&w, (uint32_t)cfg->n_layer);
    put_u32(&w, (uint32_t)cfg->n_embd);
    put_u32(&w, (uint32_t)cfg->n_head);
    if (version >= 3) {
        put_u32(&w, (uint32_t)cfg->arch);
        put_u32(&w, (uint32_t)cfg->n_kv_head);
        put_u32(&w, (uint32_t)cfg->ffn_dim);
        put_u32(&w, (uint32_t)cfg->untied_head);
        put_u32(&w, (uint32_t)cfg->rope_style);
        put_f32s(&w, &cfg->norm_eps, 1);
        put_f32s(&w, &cfg->rope_theta, 1);
    }
    put_u64(&w, np);
    put_u32(&w, (c->tokenizer ? FLAG_TOKENIZER : 0) | (c->opt_m ? FLAG_OPTIMIZER : 0) |
                    (c->task_record ? FLAG_TASK_RECORD : 0));
    put_u64(&w, tok_len);
    if (c->tokenizer) {
        gkd_tokenizer_serialize(c->tokenizer, w.p + w.off);
        w.off += tok_len;
    }
    put_f32s(&w, m->params_memory, np);
    if (c->opt_m) {
        put_f32s(&w, c->opt_m, np);
        put_f32s(&w, c->opt_v, np);
        put_u64(&w, (uint64_t)c->opt_t);
    }
    put_u64(&w, (uint64_t)c->step);
    put_u32(&w, c->n_rngs);
    for (uint32_t i = 0; i < c->n_rngs; i++) {
        put_u64(&w, c->rngs[i].state);
        put_u64(&w, c->rngs[i].inc);
    }
    put_u64(&w, c->extra_len);
    put_bytes(&w, c->extra, (size_t)c->extra_len);
    put_u64(&w, rec_len);
    if (c->task_record) {
        gkd_task_record_serialize(c->task_record, w.p + w.off);
        w.off += rec_len;
    }
    put_u32(&w, gkd_crc32(0, buf, w.off));
    int rc = w.off == total ? write_atomic(path, buf, (size_t)total)
                            : gkd_error(GKD_EINVAL, "checkpoint %s: internal size mismatch", path);
    free(buf);
    return rc;
}

/* ---- load ---- */

static int read_file(const char *path, unsigned char **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    int rc = 0;
    unsigned char *buf = NULL;
    FILE *f = NULL;
    if ((rc = gkd_fopen_read(&f, path))) return gkd_error_wrap(rc, "checkpoint");
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    size_t n = (size_t)st.st_size; /* a regular file (gkd_fopen_read) */
    buf = malloc(n ? n : 1);
    if (!buf) {
        rc = gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory for %zu bytes", path, n);
        goto done;
    }
    if (fread(buf, 1, n, f) != n) {
        rc = gkd_error(GKD_EIO, "checkpoint %s: read failed: %s", path,
                       ferror(f) ? strerror(errno) : "file shrank while reading");
        goto done;
    }
    *out = buf;
    *n_out = n;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return rc;
}

/* Magic, version, size and CRC; on success *payload spans the payload and
 * *version_out is the file's format version (1 to 3). */
static int check_envelope(const char *path, const unsigned char *buf, size_t n, reader *payload,
                          uint32_t *version_out) {
    size_t m = n < 8 ? n : 8;
    if (memcmp(buf, GKD_CHECKPOINT_MAGIC, m) != 0)
        return gkd_error(GKD_EFORMAT, "checkpoint %s: not a gkd checkpoint (wrong magic)", path);
    if (n < HEADER_SIZE + TRAILER_SIZE)
        return gkd_error(GKD_ECORRUPT, "checkpoint %s: truncated: %zu bytes, less than the %d-byte header and trailer",
                         path, n, HEADER_SIZE + TRAILER_SIZE);
    reader r = {buf, n, 8};
    uint32_t version;
    uint64_t psize;
    get_u32(&r, &version);
    get_u64(&r, &psize);
    if (version < 1 || version > GKD_CHECKPOINT_VERSION)
        return gkd_error(GKD_EVERSION, "checkpoint %s: format version %u, this build reads versions 1 to %u",
                         path, version, GKD_CHECKPOINT_VERSION);
    uint64_t expect = psize <= UINT64_MAX - HEADER_SIZE - TRAILER_SIZE
                          ? HEADER_SIZE + psize + TRAILER_SIZE
                          : UINT64_MAX;
    if (expect != (uint64_t)n)
        return gkd_error(GKD_ECORRUPT, "checkpoint %s: %s: file has %zu bytes, its header says %llu", path,
                         (uint64_t)n < expect ? "truncated" : "size mismatch", n,
                         (unsigned long long)expect);
    uint32_t stored = (uint32_t)buf[n - 4] | (uint32_t)buf[n - 3] << 8 | (uint32_t)buf[n - 2] << 16 |
                      (uint32_t)buf[n - 1] << 24;
    uint32_t computed = gkd_crc32(0, buf, n - TRAILER_SIZE);
    if (stored != computed)
        return gkd_error(GKD_ECORRUPT, "checkpoint %s: checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                         path, stored, computed);
    payload->p = buf + HEADER_SIZE;
    payload->n = (size_t)psize;
    payload->off = 0;
    *version_out = version;
    return 0;
}

static int read_config(const char *path, reader *r, uint32_t version, gkd_model_config *cfg) {
    uint32_t v[12];
    const int n = version >= 3 ? 12 : 5;
    for (int i = 0; i < n; i++)
        if (get_u32(r, &v[i]) || (i < 10 && v[i] > INT32_MAX))
            return gkd_error(GKD_EFORMAT, "checkpoint %s: malformed model config", path);
    memset(cfg, 0, sizeof *cfg);
    cfg->vocab_size = (int)v[0];
    cfg->max_seq_len = (int)v[1];
    cfg->n_layer = (int)v[2];
    cfg->n_embd = (int)v[3];
    cfg->n_head = (int)v[4];
    if (n == 12) {
        cfg->arch = (int)v[5];
        cfg->n_kv_head = (int)v[6];
        cfg->ffn_dim = (int)v[7];
        cfg->untied_head = (int)v[8];
        cfg->rope_style = (int)v[9];
        memcpy(&cfg->norm_eps, &v[10], 4);
        memcpy(&cfg->rope_theta, &v[11], 4);
    }
    int rc = gkd_model_config_validate(cfg);
    if (rc) return gkd_error_wrap(GKD_EFORMAT, "checkpoint %s: invalid model config", path);
    return 0;
}

#define MALFORMED(what) \
    do { rc = gkd_error(GKD_EFORMAT, "checkpoint %s: malformed %s", path, what); goto done; } while (0)

int gkd_checkpoint_load(gkd_checkpoint_data *out, const char *path, gkd_model *into) {
    if (!out || !path) return gkd_error(GKD_EINVAL, "checkpoint load: NULL argument");
    memset(out, 0, sizeof *out);
    gkd_checkpoint_data d = {0};
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc = read_file(path, &buf, &n);
    if (rc) return rc;
    reader r;
    uint32_t version;
    if ((rc = check_envelope(path, buf, n, &r, &version))) goto done;
    gkd_model_config cfg;
    if ((rc = read_config(path, &r, version, &cfg))) goto done;
    if (into && !gkd_config_equal(&cfg, &into->config)) {
        char a[320], b[320];
        gkd_config_describe(a, sizeof a, &cfg);
        gkd_config_describe(b, sizeof b, &into->config);
        rc = gkd_error(GKD_EMISMATCH, "checkpoint %s: model config mismatch: file has %s, model has %s",
                       path, a, b);
        goto done;
    }
    uint64_t np, tok_len;
    uint32_t flags;
    if (get_u64(&r, &np)) MALFORMED("parameter count");
    if (np != gkd_config_num_params(&cfg)) MALFORMED("parameter count (does not match the config)");
    const uint32_t known = FLAG_TOKENIZER | FLAG_OPTIMIZER | (version >= 2 ? FLAG_TASK_RECORD : 0);
    if (get_u32(&r, &flags) || (flags & ~known)) MALFORMED("flags");
    const unsigned char *tok_bytes, *params, *om = NULL, *ov = NULL, *rng_bytes, *extra, *rec_bytes = NULL;
    if (get_u64(&r, &tok_len) || get_span(&r, &tok_bytes, tok_len)) MALFORMED("tokenizer");
    if (((flags & FLAG_TOKENIZER) != 0) != (tok_len != 0)) MALFORMED("tokenizer flag");
    if (np > SIZE_MAX / 8 || get_span(&r, &params, 4 * np)) MALFORMED("parameters");
    uint64_t opt_t = 0, step, extra_len;
    uint32_t n_rngs;
    if (flags & FLAG_OPTIMIZER) {
        if (get_span(&r, &om, 4 * np) || get_span(&r, &ov, 4 * np) || get_u64(&r, &opt_t))
            MALFORMED("optimizer state");
    }
    if (get_u64(&r, &step)) MALFORMED("step");
    if (get_u32(&r, &n_rngs) || get_span(&r, &rng_bytes, 16 * (uint64_t)n_rngs)) MALFORMED("rng states");
    if (get_u64(&r, &extra_len) || get_span(&r, &extra, extra_len)) MALFORMED("extra data");
    uint64_t rec_len = 0;
    if (version >= 2) {
        if (get_u64(&r, &rec_len) || get_span(&r, &rec_bytes, rec_len)) MALFORMED("task record");
        if (((flags & FLAG_TASK_RECORD) != 0) != (rec_len != 0)) MALFORMED("task record flag");
    }
    if (r.off != r.n) MALFORMED("payload (trailing bytes)");

    /* Build everything in d; commit to `into` only at the very end. */
    d.version = version;
    if (rec_len && (rc = gkd_task_record_deserialize(&d.task_record, rec_bytes, (size_t)rec_len))) {
        rc = gkd_error_wrap(rc == GKD_ENOMEM ? rc : GKD_EFORMAT, "checkpoint %s", path);
        goto done;
    }
    if (flags & FLAG_TOKENIZER) {
        rc = gkd_tokenizer_deserialize(&d.tokenizer, tok_bytes, (size_t)tok_len);
        if (rc) {
            rc = gkd_error_wrap(GKD_EFORMAT, "checkpoint %s: tokenizer", path);
            goto done;
        }
    }
    if (om) {
        d.opt_m = malloc((size_t)np * sizeof(float));
        d.opt_v = malloc((size_t)np * sizeof(float));
        if (!d.opt_m || !d.opt_v) {
            rc = gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory for the optimizer state", path);
            goto done;
        }
        copy_f32s(d.opt_m, om, (size_t)np);
        copy_f32s(d.opt_v, ov, (size_t)np);
        d.opt_t = (int64_t)opt_t;
    }
    d.step = (int64_t)step;
    if (n_rngs) {
        d.rngs = malloc((size_t)n_rngs * sizeof(gkd_rng));
        if (!d.rngs) {
            rc = gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory for %u rng states", path, n_rngs);
            goto done;
        }
        reader rr = {rng_bytes, 16 * (size_t)n_rngs, 0};
        for (uint32_t i = 0; i < n_rngs; i++) {
            get_u64(&rr, &d.rngs[i].state);
            get_u64(&rr, &d.rngs[i].inc);
        }
        d.n_rngs = n_rngs;
    }
    if (extra_len) {
        d.extra = malloc((size_t)extra_len);
        if (!d.extra) {
            rc = gkd_error(GKD_ENOMEM, "checkpoint %s: out of memory for %llu extra bytes", path,
                           (unsigned long long)extra_len);
            goto done;
        }
        memcpy(d.extra, extra, (size_t)extra_len);
        d.extra_len = extra_len;
    }
    if (into) {
        if (into->num_params != np) MALFORMED("parameter count (differs from the model's)");
        d.model = into;
    } else {
        if ((rc = gkd_model_new(&d.model, &cfg))) {
            rc = gkd_error_wrap(rc, "checkpoint %s", path);
            goto done;
        }
        if (d.model->num_params != np) {
            gkd_model_free(d.model);
            d.model = NULL;
            MALFORMED("parameter count (differs from the model layout)");
        }
        d.owns_model = 1;
    }
    /* A valid checksum says the bytes arrived as written, not that they are
     * a model: NaN or Inf weights would sample empty output or poison a
     * run, and a finite but absurd one (3e38) overflows in the first
     * product. No trained model comes near GKD_CHECKPOINT_MAX_ABS_WEIGHT
     * (see checkpoint.h). Checked before anything is copied into `into`. */
    {
        size_t off = 0;
        for (int t = 0; t < d.model->num_tensors; t++)
            for (size_t i = 0; i < d.model->param_sizes[t]; i++, off++) {
                const unsigned char *b = params + 4 * off;
                const uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
                if ((bits & 0x7f800000u) == 0x7f800000u) {
                    rc = gkd_error(GKD_EFORMAT, "checkpoint %s: parameter %s[%zu] is %s", path, gkd_model_tensor_name(d.model, t), i,
                                   bits & 0x007fffffu ? "NaN" : "infinite");
                    goto done;
                }
                float v;
                memcpy(&v, &bits, 4);
                if (fabsf(v) > GKD_CHECKPOINT_MAX_ABS_WEIGHT) {
                    rc = gkd_error(GKD_EFORMAT,
                                   "checkpoint %s: parameter %s[%zu] is %.9g, beyond the bound |w| <= %g that no "
                                   "trained model reaches",
                                   path, gkd_model_tensor_name(d.model, t), i, (double)v, (double)GKD_CHECKPOINT_MAX_ABS_WEIGHT);
                    goto done;
                }
            }
    }
    copy_f32s(d.model->params_memory, params, (size_t)np);
    *out = d;
    memset(&d, 0, sizeof d);
done:
    gkd_checkpoint_data_free(&d);
    free(buf);
    return rc;
}

void gkd_checkpoint_data_free(gkd_checkpoint_data *d) {
    if (!d) return;
    if (d->owns_model) gkd_model_free(d->model);
    gkd_tokenizer_free(d->tokenizer);
    free(d->opt_m);
    free(d->opt_v);
    free(d->rngs);
    free(d->extra);
    gkd_task_record_free(d->task_record);
    memset(d, 0, sizeof *d);
}

int gkd_checkpoint_read_config(gkd_model_config *cfg, const char *path) {
    if (!cfg || !path) return gkd_error(GKD_EINVAL, "checkpoint read config: NULL argument");
    unsigned char *buf = NULL;
    size_t n = 0;
    int rc = read_file(path, &buf, &n);
    if (rc) return rc;
    reader r;
    uint32_t version;
    if (!(rc = check_envelope(path, buf, n, &r, &version))) rc = read_config(path, &r, version, cfg);
    free(buf);
    return rc;
}
