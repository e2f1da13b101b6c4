/* The offline teacher cache (include/gkd/teacher_cache.h): building it from
 * a teacher and a task, reading it back, and handing its sequences and rows
 * to the distillation step. Byte layout: docs/teacher-cache-format.md.
 *
 * Shapes: B sequences scored per forward, T the longest of them, V the
 * vocabulary, k ids per row, cap the context. */
#include "gkd/teacher_cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gkd/checkpoint.h"
#include "gkd/error.h"
#include "gkd/fsutil.h"
#include "util/blob.h"

#include "batch_layout.h"
#include "distill_step.h"

#define TC_MAGIC "GKDTCACH"
#define TC_VERSION 1u
/* Bounds of the header's shapes: beyond them a size computation could
 * overflow long before a real file would hold such rows. */
#define TC_MAX_V (1 << 24)
#define TC_MAX_CAP (1 << 20)
#define TC_HEADER_BYTES 96
/* example, prompt_len, len, eos, rows */
#define TC_SEQ_HEADER_BYTES 24

struct gkd_teacher_cache {
    gkd_teacher_cache_header h;
    size_t n;                 /* sequences */
    uint64_t *example;        /* (n) train example, strictly ascending */
    int *prompt_len, *len;    /* (n) */
    unsigned char *eos;       /* (n) */
    size_t *tok_off, *row_off;/* (n) first token / first row of each sequence */
    int *nrows;               /* (n) rows = loss positions = len - prompt_len */
    int *tokens;              /* (sum len) */
    gkd_sparse_rows rows;     /* (sum nrows) rows, owned */
};

/* ---- identity ---- */

uint64_t gkd_teacher_cache_model_hash(const gkd_model *m) {
    const gkd_model_config *c = &m->config;
    /* Field by field: a struct's padding bytes are not its value. */
    int32_t ints[10] = {c->vocab_size, c->max_seq_len, c->n_layer, c->n_embd, c->n_head,
                        c->arch,       c->n_kv_head,   c->ffn_dim, c->untied_head, c->rope_style};
    float floats[2] = {c->norm_eps, c->rope_theta};
    uint64_t h = blob_fnv1a64_update(BLOB_FNV1A64_OFFSET, ints, sizeof ints);
    h = blob_fnv1a64_update(h, floats, sizeof floats);
    return blob_fnv1a64_update(h, m->params_memory, m->num_params * sizeof(float));
}

uint64_t gkd_teacher_cache_tokenizer_hash(const gkd_tokenizer *tok) {
    const size_t n = gkd_tokenizer_serialized_size(tok);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) return 0; /* never a real hash's match: the check then refuses */
    gkd_tokenizer_serialize(tok, buf);
    const uint64_t h = blob_fnv1a64(buf, n);
    free(buf);
    return h;
}

int gkd_teacher_cache_task_hash(uint64_t *out, const gkd_task *task) {
    gkd_task_record *r = NULL;
    int rc = gkd_task_record_new(&r, task);
    if (rc) return gkd_error_wrap(rc, "teacher cache: task record");
    const size_t n = gkd_task_record_serialized_size(r);
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        gkd_task_record_free(r);
        return gkd_error(GKD_ENOMEM, "teacher cache: out of memory for the task record");
    }
    gkd_task_record_serialize(r, buf);
    *out = blob_fnv1a64(buf, n);
    free(buf);
    gkd_task_record_free(r);
    return 0;
}

int gkd_teacher_cache_header_for(gkd_teacher_cache_header *out, const gkd_model *teacher,
                                 const gkd_tokenizer *tok, const gkd_task *task,
                                 const gkd_teacher_cache_options *opt) {
    memset(out, 0, sizeof *out);
    const int V = teacher->config.vocab_size;
    if (opt->source != GKD_TEACHER_CACHE_DATA && opt->source != GKD_TEACHER_CACHE_SEQKD)
        return gkd_error(GKD_EINVAL, "teacher cache: source %d is not data (0) or seqkd (1)", (int)opt->source);
    if (opt->k < 1 || opt->k > V)
        return gkd_error(GKD_EINVAL, "teacher cache: k %d outside 1..%d (the vocabulary)", opt->k, V);
    if (!(opt->tau > 0) || !isfinite(opt->tau))
        return gkd_error(GKD_EINVAL, "teacher cache: temperature %g is not a positive number", (double)opt->tau);
    const int cap = opt->cap ? opt->cap : teacher->config.max_seq_len;
    if (cap < 2 || cap > teacher->config.max_seq_len)
        return gkd_error(GKD_EINVAL, "teacher cache: context %d outside 2..%d (the teacher's)", cap,
                         teacher->config.max_seq_len);
    if (opt->batch < 1) return gkd_error(GKD_EINVAL, "teacher cache: batch %d must be >= 1", opt->batch);
    if (gkd_tokenizer_vocab_size(tok) > V)
        return gkd_error(GKD_EMISMATCH, "teacher cache: the tokenizer has %d tokens but the teacher only %d",
                         gkd_tokenizer_vocab_size(tok), V);
    out->source = opt->source;
    out->V = V;
    out->k = opt->k;
    out->tau = opt->tau;
    out->cap = cap;
    out->teacher_hash = gkd_teacher_cache_model_hash(teacher);
    out->tokenizer_hash = gkd_teacher_cache_tokenizer_hash(tok);
    out->train_n = gkd_task_size(task, GKD_SPLIT_TRAIN);
    if (opt->source == GKD_TEACHER_CACHE_SEQKD) {
        out->sample = opt->sample;
        /* Generations end at the tokenizer's EOS, as a live run's do. */
        out->sample.eos_token = gkd_tokenizer_eos(tok);
        out->seed = opt->seed;
    }
    return gkd_teacher_cache_task_hash(&out->task_hash, task);
}

/* ---- writing ---- */

/* A growing byte buffer written with blob.h's little-endian helpers. */
typedef struct {
    unsigned char *p;
    size_t n, size;
    int oom;
} growbuf;

static void put(growbuf *g, const void *src, size_t n) {
    if (g->oom) return;
    if (g->n + n > g->size) {
        size_t size = g->size ? g->size : 4096;
        while (size < g->n + n) size *= 2;
        unsigned char *p = realloc(g->p, size);
        if (!p) { g->oom = 1; return; }
        g->p = p;
        g->size = size;
    }
    memcpy(g->p + g->n, src, n);
    g->n += n;
}

static void put_u32(growbuf *g, uint32_t v) {
    unsigned char b[4];
    blob_writer w = {b, 0};
    blob_u32(&w, v);
    put(g, b, 4);
}

static void put_u64(growbuf *g, uint64_t v) {
    unsigned char b[8];
    blob_writer w = {b, 0};
    blob_u64(&w, v);
    put(g, b, 8);
}

static void put_f32(growbuf *g, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(g, u);
}

static void put_header(growbuf *g, const gkd_teacher_cache_header *h, uint64_t n) {
    put(g, TC_MAGIC, 8);
    put_u32(g, TC_VERSION);
    put_u32(g, (uint32_t)h->source);
    put_u32(g, (uint32_t)h->V);
    put_u32(g, (uint32_t)h->k);
    put_f32(g, h->tau);
    put_u32(g, (uint32_t)h->cap);
    put_u64(g, h->teacher_hash);
    put_u64(g, h->tokenizer_hash);
    put_u64(g, h->task_hash);
    put_u64(g, h->train_n);
    put_f32(g, h->sample.temperature);
    put_u32(g, (uint32_t)h->sample.top_k);
    put_f32(g, h->sample.top_p);
    put_u32(g, (uint32_t)h->sample.max_new_tokens);
    put_u64(g, h->seed);
    put_u64(g, n);
}

/* Sequence `row` of b, example ex, with its rows (laid out T long from
 * rows->ids + row*T*k) at the positions mask (T) keeps. */
static void put_sequence(growbuf *g, const gkd_seqbatch *b, int row, uint64_t ex, const float *mask, int T,
                         const gkd_sparse_rows *rows) {
    const int k = rows->k, *t = b->tokens + (size_t)row * b->cap;
    uint32_t nrows = 0;
    for (int i = 0; i < T; i++) nrows += mask[i] != 0;
    put_u64(g, ex);
    put_u32(g, (uint32_t)b->prompt_len[row]);
    put_u32(g, (uint32_t)b->len[row]);
    put_u32(g, b->eos[row]);
    put_u32(g, nrows);
    for (int i = 0; i < b->len[row]; i++) put_u32(g, (uint32_t)t[i]);
    const size_t base = (size_t)row * T;
    for (int i = 0; i < T; i++)
        if (mask[i] != 0)
            for (int j = 0; j < k; j++) put_u32(g, (uint32_t)rows->ids[(base + i) * k + j]);
    for (int i = 0; i < T; i++)
        if (mask[i] != 0)
            for (int j = 0; j < k; j++) put_f32(g, rows->logp[(base + i) * k + j]);
    for (int i = 0; i < T; i++)
        if (mask[i] != 0) put_f32(g, rows->log_tail[base + i]);
}

/* Row j of b := train example ex as the distillation step lays out a row
 * of the cache's source (before any generation). */
static int encode_row(const gkd_task *task, const gkd_tokenizer *tok, gkd_teacher_cache_source src, gkd_seqbatch *b,
                      int j, size_t ex) {
    int *ids = b->tokens + (size_t)j * b->cap;
    for (int i = 0; i < b->cap; i++) ids[i] = GKD_TOK_PAD;
    const int with_reference = src == GKD_TEACHER_CACHE_DATA;
    int rc = with_reference ? gkd_task_encode_example(task, tok, GKD_SPLIT_TRAIN, ex, ids, b->cap, &b->prompt_len[j],
                                                      &b->len[j])
                            : gkd_task_encode_prompt(task, tok, GKD_SPLIT_TRAIN, ex, ids, b->cap, &b->prompt_len[j],
                                                     &b->len[j]);
    b->eos[j] = with_reference && rc == 0;
    return rc;
}

int gkd_teacher_cache_build(const char *path, gkd_model *teacher, const gkd_tokenizer *tok,
                            const gkd_task *task, const gkd_teacher_cache_options *opt,
                            void (*progress)(void *ctx, size_t done, size_t total), void *ctx) {
    gkd_teacher_cache_header h;
    int rc = gkd_teacher_cache_header_for(&h, teacher, tok, task, opt);
    if (rc) return rc;
    const int B = opt->batch, cap = h.cap;
    const size_t ntrain = (size_t)h.train_n;
    gkd_seqbatch batch = {0};
    gkd_batch_layout layout = {0};
    gkd_sparse_rows rows = {0};
    gkd_sampler *sampler = NULL;
    uint64_t *streams = NULL;
    growbuf g = {0};
    if ((rc = gkd_seqbatch_new(&batch, B, cap)) || (rc = gkd_batch_layout_new(&layout, B, cap)) ||
        (rc = gkd_sparse_rows_alloc(&rows, B * cap, h.V, h.k, h.tau)))
        goto done;
    if (h.source == GKD_TEACHER_CACHE_SEQKD && (rc = gkd_sampler_new(&sampler, teacher, NULL, B))) goto done;
    if (!(streams = calloc((size_t)B, sizeof *streams))) {
        rc = gkd_error(GKD_ENOMEM, "teacher cache: out of memory");
        goto done;
    }
    put_header(&g, &h, ntrain);
    for (size_t ex0 = 0; ex0 < ntrain; ex0 += (size_t)B) {
        const int nb = ntrain - ex0 < (size_t)B ? (int)(ntrain - ex0) : B;
        gkd_seqbatch sub = batch;
        sub.B = nb; /* the sampler completes every row it is given */
        for (int j = 0; j < nb; j++) {
            if ((rc = encode_row(task, tok, h.source, &sub, j, ex0 + (size_t)j))) goto done;
            streams[j] = gkd_seqkd_stream(ex0 + (size_t)j);
        }
        if (sampler && (rc = gkd_sampler_generate(sampler, &sub, &h.sample, 0, h.seed, streams, NULL))) {
            rc = gkd_error_wrap(rc, "teacher cache: rollouts");
            goto done;
        }
        gkd_batch_layout_fill(&layout, &sub, NULL, 0);
        const int T = layout.T;
        if ((rc = gkd_model_forward(teacher, layout.tokens, nb, T))) goto done;
        rows.N = nb * T;
        if ((rc = gkd_sparse_rows_from_logits(&rows, teacher->logits))) {
            rc = gkd_error_wrap(rc, "teacher cache: examples %zu..%zu", ex0, ex0 + (size_t)nb - 1);
            goto done;
        }
        for (int j = 0; j < nb; j++)
            put_sequence(&g, &sub, j, ex0 + (size_t)j, layout.mask + (size_t)j * T, T, &rows);
        if (g.oom) break;
        if (progress) progress(ctx, ex0 + (size_t)nb, ntrain);
    }
    put_u32(&g, g.oom ? 0 : gkd_crc32(0, g.p, g.n));
    if (g.oom) {
        rc = gkd_error(GKD_ENOMEM, "teacher cache: out of memory for the file");
        goto done;
    }
    if ((rc = gkd_file_write_atomic(path, (const char *)g.p, g.n))) rc = gkd_error_wrap(rc, "teacher cache");
done:
    free(g.p);
    free(streams);
    gkd_sampler_free(sampler);
    gkd_sparse_rows_free(&rows);
    gkd_batch_layout_free(&layout);
    gkd_seqbatch_free(&batch);
    return rc;
}

/* ---- reading ---- */

void gkd_teacher_cache_free(gkd_teacher_cache *c) {
    if (!c) return;
    free(c->example);
    free(c->prompt_len);
    free(c->len);
    free(c->eos);
    free(c->tok_off);
    free(c->row_off);
    free(c->nrows);
    free(c->tokens);
    gkd_sparse_rows_free(&c->rows);
    free(c);
}

static float get_f32(blob_reader *r) {
    uint32_t u = blob_get_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static size_t left(const blob_reader *r) { return (size_t)(r->end - r->p); }

static int bad(const char *fmt_field, unsigned long long value) {
    return gkd_error(GKD_EFORMAT, "teacher cache: %s %llu out of range", fmt_field, value);
}

static int parse_header(gkd_teacher_cache_header *h, uint64_t *n, blob_reader *r) {
    uint32_t source = blob_get_u32(r), V = blob_get_u32(r), k = blob_get_u32(r);
    float tau = get_f32(r);
    uint32_t cap = blob_get_u32(r);
    h->teacher_hash = blob_get_u64(r);
    h->tokenizer_hash = blob_get_u64(r);
    h->task_hash = blob_get_u64(r);
    h->train_n = blob_get_u64(r);
    h->sample.temperature = get_f32(r);
    uint32_t top_k = blob_get_u32(r);
    h->sample.top_p = get_f32(r);
    uint32_t max_new = blob_get_u32(r);
    h->seed = blob_get_u64(r);
    *n = blob_get_u64(r);
    if (r->short_read) return gkd_error(GKD_ECORRUPT, "teacher cache: truncated header");
    if (source > GKD_TEACHER_CACHE_SEQKD) return bad("source", source);
    if (V < 1 || V > TC_MAX_V) return bad("V", V);
    if (k < 1 || k > V) return bad("k", k);
    if (!(tau > 0) || !isfinite(tau)) return gkd_error(GKD_EFORMAT, "teacher cache: tau %g is not a positive number", (double)tau);
    if (cap < 2 || cap > TC_MAX_CAP) return bad("cap", cap);
    h->source = (gkd_teacher_cache_source)source;
    h->V = (int)V;
    h->k = (int)k;
    h->tau = tau;
    h->cap = (int)cap;
    if (source == GKD_TEACHER_CACHE_SEQKD) {
        if (!(h->sample.temperature >= 0) || !isfinite(h->sample.temperature))
            return gkd_error(GKD_EFORMAT, "teacher cache: sampling temperature %g out of range",
                             (double)h->sample.temperature);
        if (top_k > V) return bad("top_k", top_k);
        if (!(h->sample.top_p > 0 && h->sample.top_p <= 1))
            return gkd_error(GKD_EFORMAT, "teacher cache: top_p %g out of range", (double)h->sample.top_p);
        if (max_new < 1 || max_new > cap) return bad("max_new_tokens", max_new);
    } else if (h->sample.temperature != 0 || top_k || h->sample.top_p != 0 || max_new || h->seed) {
        return gkd_error(GKD_EFORMAT, "teacher cache: a data cache with sampling options");
    }
    h->sample.top_k = (int)top_k;
    h->sample.max_new_tokens = (int)max_new;
    if (*n > h->train_n) return gkd_error(GKD_EFORMAT, "teacher cache: %llu sequences of %llu training examples",
                                          (unsigned long long)*n, (unsigned long long)h->train_n);
    if (*n > left(r) / TC_SEQ_HEADER_BYTES)
        return gkd_error(GKD_ECORRUPT, "teacher cache: %llu sequences do not fit in %zu bytes", (unsigned long long)*n,
                         left(r));
    return 0;
}

/* One pass over the sequences: with c->tokens NULL, check the structure
 * and count the tokens and rows; else copy them. */
static int parse_sequences(gkd_teacher_cache *c, blob_reader *r, size_t *tokens_total, size_t *rows_total) {
    const gkd_teacher_cache_header *h = &c->h;
    const size_t k = (size_t)h->k, row_bytes = 8 * k + 4;
    size_t nt = 0, nr = 0;
    for (size_t i = 0; i < c->n; i++) {
        uint64_t ex = blob_get_u64(r);
        uint32_t pl = blob_get_u32(r), len = blob_get_u32(r), eos = blob_get_u32(r), rows = blob_get_u32(r);
        if (r->short_read) return gkd_error(GKD_ECORRUPT, "teacher cache: sequence %zu: truncated", i);
        if (ex >= h->train_n || (i > 0 && ex <= c->example[i - 1]))
            return gkd_error(GKD_EFORMAT, "teacher cache: sequence %zu: example %llu not ascending below %llu", i,
                             (unsigned long long)ex, (unsigned long long)h->train_n);
        if (pl < 1 || len < pl || len > (uint32_t)h->cap)
            return gkd_error(GKD_EFORMAT, "teacher cache: sequence %zu: prompt_len %u, len %u outside 1..%d", i, pl,
                             len, h->cap);
        if (eos > 1) return gkd_error(GKD_EFORMAT, "teacher cache: sequence %zu: eos %u is not 0 or 1", i, eos);
        /* The loss keeps the positions t with t + 1 in [prompt_len, len). */
        if (rows != len - pl)
            return gkd_error(GKD_EFORMAT, "teacher cache: sequence %zu: %u rows for %u loss positions", i, rows,
                             len - pl);
        if ((size_t)len > left(r) / 4 || (size_t)rows > (left(r) - 4 * (size_t)len) / row_bytes)
            return gkd_error(GKD_ECORRUPT, "teacher cache: sequence %zu: %u tokens and %u rows past the end", i, len,
                             rows);
        c->example[i] = ex;
        if (c->tokens) {
            c->prompt_len[i] = (int)pl;
            c->len[i] = (int)len;
            c->eos[i] = (unsigned char)eos;
            c->nrows[i] = (int)rows;
            c->tok_off[i] = nt;
            c->row_off[i] = nr;
            for (uint32_t t = 0; t < len; t++) {
                uint32_t id = blob_get_u32(r);
                if (id >= (uint32_t)h->V)
                    return gkd_error(GKD_EFORMAT, "teacher cache: sequence %zu: token %u at %u outside 0..%d", i, id,
                                     t, h->V - 1);
                c->tokens[nt + t] = (int)id;
            }
            for (size_t j = 0; j < rows * k; j++) c->rows.ids[nr * k + j] = (int32_t)blob_get_u32(r);
            for (size_t j = 0; j < rows * k; j++) c->rows.logp[nr * k + j] = get_f32(r);
            for (size_t j = 0; j < rows; j++) c->rows.log_tail[nr + j] = get_f32(r);
            gkd_sparse_rows view = c->rows;
            view.N = (int)rows;
            view.ids += nr * k;
            view.logp += nr * k;
            view.log_tail += nr;
            int rc = gkd_sparse_rows_check(&view);
            if (rc) return gkd_error_wrap(GKD_EFORMAT, "teacher cache: sequence %zu (example %llu)", i,
                                          (unsigned long long)ex);
        } else {
            r->p += 4 * (size_t)len + rows * row_bytes;
        }
        nt += len;
        nr += rows;
    }
    if (left(r) != 0) return gkd_error(GKD_EFORMAT, "teacher cache: %zu bytes after the last sequence", left(r));
    *tokens_total = nt;
    *rows_total = nr;
    return 0;
}

int gkd_teacher_cache_parse(gkd_teacher_cache **out, const unsigned char *buf, size_t n) {
    *out = NULL;
    if (n < 12 || memcmp(buf, TC_MAGIC, 8) != 0) return gkd_error(GKD_EFORMAT, "teacher cache: not a teacher cache (magic)");
    blob_reader r = {buf + 8, buf + n, 0};
    uint32_t version = blob_get_u32(&r);
    if (version != TC_VERSION)
        return gkd_error(GKD_EVERSION, "teacher cache: version %u (this gkd reads %u)", version, TC_VERSION);
    if (n < TC_HEADER_BYTES + 4) return gkd_error(GKD_ECORRUPT, "teacher cache: truncated header");
    blob_reader crc = {buf + n - 4, buf + n, 0};
    const uint32_t want = blob_get_u32(&crc), got = gkd_crc32(0, buf, n - 4);
    if (want != got)
        return gkd_error(GKD_ECORRUPT, "teacher cache: CRC-32 %08x, the bytes give %08x (truncated or damaged)", want,
                         got);
    r.end = buf + n - 4;
    gkd_teacher_cache *c = calloc(1, sizeof *c);
    if (!c) return gkd_error(GKD_ENOMEM, "teacher cache: out of memory");
    uint64_t nseq = 0;
    int rc = parse_header(&c->h, &nseq, &r);
    if (rc) goto done;
    c->n = (size_t)nseq;
    const size_t m = c->n ? c->n : 1;
    c->example = calloc(m, sizeof *c->example);
    if (!c->example) { rc = gkd_error(GKD_ENOMEM, "teacher cache: out of memory"); goto done; }
    const unsigned char *seqs = r.p;
    size_t nt = 0, nr = 0;
    if ((rc = parse_sequences(c, &r, &nt, &nr))) goto done;
    if (nr > (size_t)INT32_MAX) { rc = gkd_error(GKD_EFORMAT, "teacher cache: %zu rows (at most 2^31 - 1)", nr); goto done; }
    c->prompt_len = calloc(m, sizeof *c->prompt_len);
    c->len = calloc(m, sizeof *c->len);
    c->eos = calloc(m, 1);
    c->nrows = calloc(m, sizeof *c->nrows);
    c->tok_off = calloc(m, sizeof *c->tok_off);
    c->row_off = calloc(m, sizeof *c->row_off);
    c->tokens = calloc(nt ? nt : 1, sizeof *c->tokens);
    if (!c->prompt_len || !c->len || !c->eos || !c->nrows || !c->tok_off || !c->row_off || !c->tokens) {
        rc = gkd_error(GKD_ENOMEM, "teacher cache: out of memory for %zu sequences", c->n);
        goto done;
    }
    if ((rc = gkd_sparse_rows_alloc(&c->rows, (int)nr, c->h.V, c->h.k, c->h.tau))) goto done;
    r.p = seqs;
    rc = parse_sequences(c, &r, &nt, &nr);
done:
    if (rc) gkd_teacher_cache_free(c);
    else *out = c;
    return rc;
}

int gkd_teacher_cache_open(gkd_teacher_cache **out, const char *path) {
    char *buf = NULL;
    size_t n = 0;
    int rc = gkd_file_read(&buf, &n, path);
    if (rc) return rc;
    rc = gkd_teacher_cache_parse(out, (const unsigned char *)buf, n);
    free(buf);
    return rc ? gkd_error_wrap(rc, "%s", path) : 0;
}

const gkd_teacher_cache_header *gkd_teacher_cache_header_of(const gkd_teacher_cache *c) { return &c->h; }

size_t gkd_teacher_cache_size(const gkd_teacher_cache *c) { return c->n; }

size_t gkd_teacher_cache_rows_total(const gkd_teacher_cache *c) { return (size_t)c->rows.N; }

static const char *source_name(gkd_teacher_cache_source s) { return s == GKD_TEACHER_CACHE_SEQKD ? "seqkd" : "data"; }

int gkd_teacher_cache_check(const gkd_teacher_cache *c, const gkd_teacher_cache_header *w) {
    const gkd_teacher_cache_header *h = &c->h;
#define DIFF(cond, fmt, ...) \
    if (cond) return gkd_error(GKD_EMISMATCH, "teacher cache: " fmt, __VA_ARGS__)
    DIFF(h->source != w->source, "made from source %s, this run reads it from %s", source_name(h->source),
         source_name(w->source));
    DIFF(h->k != w->k, "k %d, this run has teacher_topk %d", h->k, w->k);
    DIFF(h->tau != w->tau, "tau %g, this run has loss_temperature %g", (double)h->tau, (double)w->tau);
    DIFF(h->V != w->V, "vocabulary %d, this run has %d", h->V, w->V);
    DIFF(h->cap != w->cap, "context %d, this run has %d", h->cap, w->cap);
    DIFF(h->tokenizer_hash != w->tokenizer_hash, "tokenizer %016llx, this run has %016llx",
         (unsigned long long)h->tokenizer_hash, (unsigned long long)w->tokenizer_hash);
    DIFF(h->task_hash != w->task_hash || h->train_n != w->train_n,
         "task split %016llx (%llu examples), this run has %016llx (%llu examples)",
         (unsigned long long)h->task_hash, (unsigned long long)h->train_n, (unsigned long long)w->task_hash,
         (unsigned long long)w->train_n);
    DIFF(w->teacher_hash && h->teacher_hash != w->teacher_hash, "teacher %016llx, this run has %016llx",
         (unsigned long long)h->teacher_hash, (unsigned long long)w->teacher_hash);
    if (h->source == GKD_TEACHER_CACHE_SEQKD) {
        DIFF(h->seed != w->seed, "seed %llu, this run has %llu", (unsigned long long)h->seed,
             (unsigned long long)w->seed);
        DIFF(h->sample.temperature != w->sample.temperature, "sampling temperature %g, this run has %g",
             (double)h->sample.temperature, (double)w->sample.temperature);
        DIFF(h->sample.top_k != w->sample.top_k, "top_k %d, this run has %d", h->sample.top_k, w->sample.top_k);
        DIFF(h->sample.top_p != w->sample.top_p, "top_p %g, this run has %g", (double)h->sample.top_p,
             (double)w->sample.top_p);
        DIFF(h->sample.max_new_tokens != w->sample.max_new_tokens, "max_new_tokens %d, this run has %d",
             h->sample.max_new_tokens, w->sample.max_new_tokens);
    }
#undef DIFF
    return 0;
}

/* Index of the sequence of `example`, or c->n. */
static size_t find(const gkd_teacher_cache *c, size_t example) {
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->example[mid] < example) lo = mid + 1;
        else hi = mid;
    }
    return lo < c->n && c->example[lo] == example ? lo : c->n;
}

int gkd_teacher_cache_sequence(const gkd_teacher_cache *c, size_t example, gkd_seqbatch *b, int row) {
    const size_t i = find(c, example);
    if (i == c->n) return gkd_error(GKD_EINVAL, "teacher cache: no sequence for train example %zu", example);
    if (b->cap != c->h.cap)
        return gkd_error(GKD_EMISMATCH, "teacher cache: context %d, the batch has %d", c->h.cap, b->cap);
    int *dst = b->tokens + (size_t)row * b->cap;
    memcpy(dst, c->tokens + c->tok_off[i], sizeof(int) * (size_t)c->len[i]);
    for (int t = c->len[i]; t < b->cap; t++) dst[t] = GKD_TOK_PAD;
    b->prompt_len[row] = c->prompt_len[i];
    b->len[row] = c->len[i];
    b->eos[row] = c->eos[i];
    return 0;
}

int gkd_teacher_cache_rows(const gkd_teacher_cache *c, size_t example, const float *mask, int T,
                           gkd_sparse_rows *rows, size_t first) {
    const size_t i = find(c, example);
    if (i == c->n) return gkd_error(GKD_EINVAL, "teacher cache: no sequence for train example %zu", example);
    if (rows->k != c->h.k || rows->V != c->h.V || rows->tau != c->h.tau || first + (size_t)T > (size_t)rows->N)
        return gkd_error(GKD_EMISMATCH, "teacher cache: rows of k %d, V %d do not fit the cache's (k %d, V %d)",
                         rows->k, rows->V, c->h.k, c->h.V);
    const size_t k = (size_t)c->h.k;
    size_t j = c->row_off[i], end = j + (size_t)c->nrows[i];
    for (int t = 0; t < T; t++) {
        if (mask[t] == 0) continue;
        if (j == end) break;
        const size_t dst = first + (size_t)t;
        memcpy(rows->ids + dst * k, c->rows.ids + j * k, sizeof(int32_t) * k);
        memcpy(rows->logp + dst * k, c->rows.logp + j * k, sizeof(float) * k);
        rows->log_tail[dst] = c->rows.log_tail[j];
        j++;
    }
    int masked = 0;
    for (int t = 0; t < T; t++) masked += mask[t] != 0;
    if (masked != c->nrows[i])
        return gkd_error(GKD_EMISMATCH, "teacher cache: example %zu has %d rows, the batch %d loss positions", example,
                         c->nrows[i], masked);
    return 0;
}

/* ---- the distillation step's side ---- */

int gkd_teacher_cache_attach(gkd_distill_state *s, const char *path) {
    const gkd_distill_options *o = &s->o;
    if (!o->teacher_topk)
        return gkd_error(GKD_EINVAL, "distill: teacher_cache %s needs teacher_topk (the cache holds top-k rows)", path);
    int rc = gkd_teacher_cache_open(&s->tcache, path);
    if (rc) return gkd_error_wrap(rc, "distill: teacher_cache");
    const gkd_teacher_cache_header *h = &s->tcache->h;
    /* The source must be one the schedule draws, as the run draws it. */
    if (h->source == GKD_TEACHER_CACHE_DATA && o->schedule.seqkd >= 1)
        return gkd_error(GKD_EMISMATCH, "distill: teacher cache %s: made from source data, this run's off-policy "
                                        "rows are all SeqKD (seqkd 1)", path);
    if (h->source == GKD_TEACHER_CACHE_SEQKD && (o->schedule.seqkd <= 0 || !o->seqkd_cache))
        return gkd_error(GKD_EMISMATCH, "distill: teacher cache %s: made from source seqkd, this run has seqkd %g "
                                        "and seqkd_cache %d (a seqkd cache needs both)", path,
                         o->schedule.seqkd, o->seqkd_cache);
    s->tcache_source = h->source == GKD_TEACHER_CACHE_SEQKD ? GKD_SRC_TEACHER : GKD_SRC_DATA;
    gkd_teacher_cache_header want;
    memset(&want, 0, sizeof want);
    want.source = h->source;
    want.V = s->student->config.vocab_size;
    want.k = o->teacher_topk;
    want.tau = o->loss_temperature;
    want.cap = s->student->config.max_seq_len;
    want.teacher_hash = s->teacher ? gkd_teacher_cache_model_hash(s->teacher) : 0;
    want.tokenizer_hash = gkd_teacher_cache_tokenizer_hash(s->tok);
    want.train_n = gkd_task_size(s->task, GKD_SPLIT_TRAIN);
    want.sample = o->sample;
    want.seed = o->seed;
    if ((rc = gkd_teacher_cache_task_hash(&want.task_hash, s->task))) return gkd_error_wrap(rc, "distill");
    if ((rc = gkd_teacher_cache_check(s->tcache, &want))) return gkd_error_wrap(rc, "distill: %s", path);
    return 0;
}

int gkd_teacher_cache_fill_batch(gkd_distill_state *s) {
    for (int b = 0; b < s->o.batch; b++) {
        s->cached[b] = s->choices[b].source == s->tcache_source;
        if (!s->cached[b]) continue;
        int rc = gkd_teacher_cache_sequence(s->tcache, s->examples[b], &s->batch, b);
        if (rc) return rc;
    }
    return 0;
}

int gkd_teacher_cache_all_cached(const gkd_distill_state *s) {
    if (!s->tcache) return 0;
    for (int b = 0; b < s->o.batch; b++)
        if (!s->cached[b]) return 0;
    return 1;
}

int gkd_teacher_cache_fill_topk(gkd_distill_state *s) {
    const gkd_batch_layout *l = &s->layout;
    for (int b = 0; b < l->B; b++) {
        if (!s->cached[b]) continue;
        int rc = gkd_teacher_cache_rows(s->tcache, s->examples[b], l->mask + (size_t)b * l->T, l->T, &s->topk,
                                        (size_t)b * l->T);
        if (rc) return rc;
    }
    return 0;
}
