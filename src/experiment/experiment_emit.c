/* Canonical text of a resolved cell: written back as a single-cell
 * experiment file, and hashed (FNV-1a 64) to key shared artifacts. One
 * emitter with a key filter serves both, so a written config and its hash
 * cannot disagree. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/blob.h"
#include "experiment_internal.h"
#include "gkd/error.h"

typedef enum { P_WRITE, P_CONFIG, P_TEACHER, P_STUDENT_INIT } purpose;

typedef struct {
    FILE *f;     /* NULL: hash only */
    uint64_t h;
} sink;

uint64_t exp_fnv1a(uint64_t h, const void *data, size_t n) { return blob_fnv1a64_update(h, data, n); }

static void put(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sink *s, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    if (s->f) fwrite(buf, 1, len, s->f);
    else s->h = exp_fnv1a(s->h, buf, len);
}

/* YAML double-quoted scalar. */
static void put_quoted(sink *s, const char *str) {
    char buf[8192 + 16];
    size_t n = 0;
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)str; *p && n < sizeof buf - 8; p++) {
        if (*p == '"' || *p == '\\') { buf[n++] = '\\'; buf[n++] = (char)*p; }
        /* NEL, LS and PS are line breaks to YAML and would be folded. */
        else if (p[0] == 0xc2 && p[1] == 0x85) { n += (size_t)snprintf(buf + n, 8, "\\N"); p += 1; }
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            n += (size_t)snprintf(buf + n, 8, "\\%c", p[2] == 0xa8 ? 'L' : 'P');
            p += 2;
        }
        else if (*p < 0x20 || *p == 0x7f) n += (size_t)snprintf(buf + n, 8, "\\x%02x", *p);
        else buf[n++] = (char)*p;
    }
    buf[n++] = '"';
    buf[n] = '\0';
    put(s, "%s", buf);
}

static int starts(const char *path, const char *prefix) { return !strncmp(path, prefix, strlen(prefix)); }

static int included(const gkd_cell_config *c, const exp_key *k, purpose why) {
    const char *p = k->path;
    if (k->kind == K_VARIANTS) return 0; /* a cell holds its variant's values, resolved */
    /* Display names change no result: renaming a row for a paper must not
     * invalidate a finished cell or move it to other shared artifacts. */
    if (k->kind == K_LABELS) return 0;
    if (starts(p, "task.")) {
        if (k->tasks && !(k->tasks & exp_task_bit(c->task.name))) return 0;
        if (!strcmp(p, "task.path") && !c->task.path) return 0;
        if (!strcmp(p, "task.eval_path") && !c->task.eval_path) return 0;
    }
    if (!strcmp(p, "teacher.checkpoint") && !c->teacher_checkpoint) return 0;
    if (!strcmp(p, "task.tokenizer") && !c->task.tokenizer) return 0;
    if ((starts(p, "teacher.model.") || starts(p, "teacher.train.")) && c->teacher_checkpoint) return 0;
    if (!strcmp(p, "student.model.context") && c->student_model.max_seq_len == 0) return 0;
    /* The architecture keys came after GPT-2 results existed: a GPT-2
     * model leaves them out, so those results keep their hashes. */
    if ((!strcmp(p, "teacher.model.arch") || !strcmp(p, "teacher.model.kv_heads") ||
         !strcmp(p, "teacher.model.ffn_dim") || !strcmp(p, "teacher.model.untied_head")) &&
        c->teacher_model.arch == GKD_ARCH_GPT2)
        return 0;
    if ((!strcmp(p, "student.model.arch") || !strcmp(p, "student.model.kv_heads") ||
         !strcmp(p, "student.model.ffn_dim") || !strcmp(p, "student.model.untied_head")) &&
        c->student_model.arch == GKD_ARCH_GPT2)
        return 0;
    if (!strcmp(p, "teacher.train.lr_min") && c->teacher_train.lr_min < 0) return 0;
    if (!strcmp(p, "student.sft.lr_min") && c->student_sft.lr_min < 0) return 0;
    if (!strcmp(p, "distill.lr_min") && c->distill.opt.lr_min < 0) return 0;
    /* Keys added after results existed are left out at their defaults, so
     * those results keep their hashes; allow_overlap changes no result. */
    if (!strcmp(p, "eval.bleu_smoothing") && c->eval.bleu_smoothing == 0) return 0;
    if (!strcmp(p, "task.context") && (!c->task.context || !strcmp(c->task.context, "none"))) return 0;
    if (!strcmp(p, "task.context_path") && !c->task.context_path) return 0;
    if (!strcmp(p, "teacher.context") && (!c->task.teacher_context || !c->task.teacher_context[0])) return 0;
    if (!strcmp(p, "teacher.same_as") && !c->teacher_same_as) return 0;
    /* Only the teacher reads contexts, but their characters are in the
     * vocabulary the SFT student is trained with: a shared SFT student
     * made for other contexts would not fit the run's tokenizer. */
    if (why == P_STUDENT_INIT && c->student_init == GKD_INIT_SFT && !strcmp(p, "teacher.context")) return 1;
    if ((!strcmp(p, "distill.teacher_topk") || !strcmp(p, "distill.topk_tail")) && c->distill.teacher_topk == 0)
        return 0;
    if (!strcmp(p, "task.train_fraction") && c->task.train_fraction == 1.0) return 0;
    if (!strcmp(p, "student.targets") && c->task.targets == GKD_TARGETS_REFERENCE) return 0;
    if (!strcmp(p, "student.rationale_weight") && c->distill.rationale_weight == 1.0) return 0;
    if (!strcmp(p, "student.rationale_source") && c->distill.rationale_source == 0) return 0;
    /* The shared teacher learns the student's targets (it scores label
     * sequences and may write rationales) from every training example;
     * the SFT student always learns from the task's rationales. */
    if (why == P_TEACHER && !strcmp(p, "student.targets")) return 1;
    if (why == P_TEACHER && !strcmp(p, "task.train_fraction")) return 0;
    if (why == P_STUDENT_INIT && !strcmp(p, "student.rationale_source")) return 0;
    if (!strcmp(p, "eval.allow_overlap") && (why != P_WRITE || !c->eval.allow_overlap)) return 0;
    /* Where the teacher's rows come from changes no result (the cache
     * holds the rows a live teacher gives, bit for bit). */
    if (!strcmp(p, "distill.teacher_cache") && (why != P_WRITE || !c->distill.teacher_cache)) return 0;
    if (!strcmp(p, "distill.shared_teacher_cache") && (why != P_WRITE || c->distill.shared_teacher_cache))
        return 0;
    /* A shared teacher or SFT student is evaluated once, with the cell's
     * eval.n, decode, temperature and BLEU smoothing: they are part of what
     * is shared, so its eval.csv never depends on which cell trained it. */
    const int shared_eval = !strcmp(p, "eval.n") || !strcmp(p, "eval.decode") || !strcmp(p, "eval.temperature") ||
                            !strcmp(p, "eval.bleu_smoothing");
    switch (why) {
    case P_WRITE: return 1;
    case P_CONFIG: return strcmp(p, "name") && strcmp(p, "description") && !starts(p, "slurm.");
    case P_TEACHER: return starts(p, "task.") || starts(p, "teacher.") || (shared_eval && !c->teacher_checkpoint);
    case P_STUDENT_INIT:
        if (c->student_init == GKD_INIT_SFT)
            return starts(p, "task.") || starts(p, "student.") || !strcmp(p, "seeds") || shared_eval;
        if (c->student_init == GKD_INIT_RANDOM)
            return starts(p, "student.model.") || !strcmp(p, "student.init") || !strcmp(p, "seeds");
        return starts(p, "student.model.") || !strcmp(p, "student.init");
    }
    return 0;
}

static void put_value(sink *s, const gkd_cell_config *c, const exp_key *k) {
    const char *field = (const char *)c + k->offset;
    int i;
    uint64_t u;
    double d;
    const char *str;
    char num[64];
    switch (k->kind) {
    case K_INT: memcpy(&i, field, sizeof i); put(s, "%d", i); break;
    case K_BOOL: memcpy(&i, field, sizeof i); put(s, "%s", i ? "true" : "false"); break;
    case K_ENUM: {
        memcpy(&i, field, sizeof i);
        const char *p = k->choices;
        for (int j = 0; j < i && p; j++) {
            p = strchr(p, '|');
            if (p) p++;
        }
        put(s, "%.*s", p ? (int)strcspn(p, "|") : 0, p ? p : "");
        break;
    }
    case K_U64: memcpy(&u, field, sizeof u); put(s, "%llu", (unsigned long long)u); break;
    case K_SEEDS: memcpy(&u, field, sizeof u); put(s, "[%llu]", (unsigned long long)u); break;
    case K_DOUBLE:
        memcpy(&d, field, sizeof d);
        exp_format_double(num, sizeof num, d);
        put(s, "%s", num);
        break;
    case K_ENUM_STR:
    case K_DIV: memcpy(&str, field, sizeof str); put(s, "%s", str ? str : ""); break;
    case K_INIT:
        memcpy(&i, field, sizeof i);
        if (i == GKD_INIT_CHECKPOINT) put_quoted(s, c->student_checkpoint ? c->student_checkpoint : "");
        else put(s, "%s", i == GKD_INIT_SFT ? "sft" : "random");
        break;
    default: memcpy(&str, field, sizeof str); put_quoted(s, str ? str : ""); break;
    }
}

static void emit(sink *s, const gkd_cell_config *c, purpose why) {
    char open[4][32];
    int depth = 0;
    for (int k = 0; k < exp_num_keys; k++) {
        const exp_key *key = &exp_keys[k];
        if (!included(c, key, why)) continue;
        char comps[4][32];
        int n = 0;
        for (const char *p = key->path; *p && n < 4;) {
            size_t len = strcspn(p, ".");
            snprintf(comps[n++], sizeof comps[0], "%.*s", (int)len, p);
            p += len;
            if (*p) p++;
        }
        int common = 0;
        while (common < depth && common < n - 1 && !strcmp(open[common], comps[common])) common++;
        depth = common;
        for (; depth < n - 1; depth++) {
            put(s, "%*s%s:\n", 2 * depth, "", comps[depth]);
            memcpy(open[depth], comps[depth], sizeof open[0]);
        }
        put(s, "%*s%s: ", 2 * depth, "", comps[n - 1]);
        put_value(s, c, key);
        put(s, "\n");
    }
}

static void hash_hex(const gkd_cell_config *c, purpose why, char hex[GKD_HASH_HEX_LEN + 1]) {
    sink s = {NULL, EXP_FNV_OFFSET};
    emit(&s, c, why);
    snprintf(hex, GKD_HASH_HEX_LEN + 1, "%016llx", (unsigned long long)s.h);
}

void gkd_cell_teacher_hash(const gkd_cell_config *c, char hex[GKD_HASH_HEX_LEN + 1]) { hash_hex(c, P_TEACHER, hex); }

void gkd_cell_student_init_hash(const gkd_cell_config *c, char hex[GKD_HASH_HEX_LEN + 1]) {
    hash_hex(c, P_STUDENT_INIT, hex);
}

void gkd_cell_config_hash(const gkd_cell_config *c, char hex[GKD_HASH_HEX_LEN + 1]) { hash_hex(c, P_CONFIG, hex); }

int gkd_cell_config_write_yaml(const gkd_cell_config *c, FILE *f) {
    sink s = {f, 0};
    put(&s, "# gkd cell %zu: %s\n", c->index, c->name);
    emit(&s, c, P_WRITE);
    if (ferror(f)) return gkd_error(GKD_EIO, "writing the cell config failed: %s", strerror(errno));
    return 0;
}

int gkd_cell_config_save_yaml(const gkd_cell_config *c, const char *path) {
    int rc = 0;
    FILE *f = NULL;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return gkd_error(GKD_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (!f) { rc = gkd_error(GKD_EIO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    if ((rc = gkd_cell_config_write_yaml(c, f))) goto done;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = gkd_error(GKD_EIO, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (fclose(f) != 0) {
        f = NULL;
        rc = gkd_error(GKD_EIO, "%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    f = NULL;
    if (rename(tmp, path) != 0) rc = gkd_error(GKD_EIO, "%s: rename failed: %s", path, strerror(errno));
done:
    if (f) fclose(f);
    if (rc) remove(tmp);
    free(tmp);
    return rc;
}

static const char *type_name(const exp_key *k) {
    switch (k->kind) {
    case K_INT: case K_U64: return "int";
    case K_DOUBLE: return "number";
    case K_BOOL: return "bool";
    case K_NAME: return "name";
    case K_ENUM: case K_ENUM_STR: return "enum";
    case K_DIV: return "divergence";
    case K_PATH: return "path";
    case K_INIT: return "sft \\| random \\| path";
    case K_SEEDS: return "int list";
    case K_VARIANTS: return "name → settings";
    case K_LABELS: return "key → LaTeX";
    default: return "string";
    }
}

int gkd_experiment_schema_markdown(FILE *f) {
    fprintf(f, "| key | type | default | range | axis | meaning |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < exp_num_keys; i++) {
        const exp_key *k = &exp_keys[i];
        char range[96] = "", def[64];
        if (k->kind == K_INT) snprintf(range, sizeof range, "%.0f..%.0f", k->min, k->max);
        else if (k->kind == K_U64 || k->kind == K_SEEDS) snprintf(range, sizeof range, "0..2^63-1");
        else if (k->kind == K_DOUBLE) {
            const gkd_setting_range r = exp_key_range(k);
            gkd_setting_range_text(&r, range, sizeof range);
        }
        else if (k->choices) {
            size_t n = 0;
            for (const char *p = k->choices; *p && n + 3 < sizeof range; p++) {
                if (*p == '|') { memcpy(range + n, " \\| ", 4); n += 4; }
                else range[n++] = *p;
            }
            range[n] = '\0';
        }
        if (k->flags & F_REQUIRED) snprintf(def, sizeof def, "required");
        else if (!strcmp(k->path, "student.model.context")) snprintf(def, sizeof def, "teacher's");
        else if (strstr(k->path, ".lr_min")) snprintf(def, sizeof def, "lr / 10");
        else if (!k->def) snprintf(def, sizeof def, "none");
        else if (k->kind == K_STR || k->kind == K_MEM || k->kind == K_TIME) snprintf(def, sizeof def, "`\"%s\"`", k->def);
        else if (k->kind == K_SEEDS) snprintf(def, sizeof def, "`[%s]`", k->def);
        else snprintf(def, sizeof def, "`%s`", k->def);
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s |\n", k->path, type_name(k), def, range,
                k->kind == K_SEEDS ? "always" : k->kind == K_VARIANTS ? "`variant`" : (k->flags & F_NO_AXIS) ? "no" : "yes", k->doc);
    }
    return ferror(f) ? gkd_error(GKD_EIO, "writing the schema failed") : 0;
}
