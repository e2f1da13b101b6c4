/* Data-source schedule: GKD's Bernoulli(lambda) on-policy choice, SeqKD's
 * teacher share, MiniLLM's teacher-mixed sampling, and replay (fixed
 * probability, or DistiLLM's adaptive threshold with a FIFO buffer). The
 * rules are spelled out in include/gkd/schedule.h and docs/divergences.md. */
#include "gkd/schedule.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/blob.h"
#include "gkd/error.h"
#include "gkd/rng.h"

#define SCHEDULE_MAGIC "GKDSCHD" /* 8 bytes with the NUL */
#define SCHEDULE_VERSION 1u

struct gkd_schedule {
    gkd_schedule_options opt;
    uint64_t seed;
    long step;          /* next step to decide */
    double threshold;   /* adaptive student-data probability */
    int has_ref;
    double ref_loss;    /* validation loss new ones are compared with */
    gkd_replay *buffer; /* NULL when replay is off */
};

const char *gkd_source_name(gkd_source s) {
    switch (s) {
    case GKD_SRC_DATA: return "data";
    case GKD_SRC_TEACHER: return "teacher";
    case GKD_SRC_STUDENT: return "student";
    case GKD_SRC_MIXED: return "mixed";
    case GKD_SRC_REPLAY: return "replay";
    }
    return "?";
}

static int in01(double x) { return x >= 0.0 && x <= 1.0; }

static int check_options(const gkd_schedule_options *o) {
    if (!in01(o->lambda)) return gkd_error(GKD_EINVAL, "schedule: lambda %g must be in [0, 1]", o->lambda);
    if (o->per_example != 0 && o->per_example != 1)
        return gkd_error(GKD_EINVAL, "schedule: per_example must be 0 or 1");
    if (!in01(o->seqkd)) return gkd_error(GKD_EINVAL, "schedule: seqkd %g must be in [0, 1]", o->seqkd);
    if (!in01(o->teacher_mix))
        return gkd_error(GKD_EINVAL, "schedule: teacher_mix %g must be in [0, 1]", o->teacher_mix);
    if ((int)o->replay < GKD_REPLAY_OFF || (int)o->replay > GKD_REPLAY_ADAPTIVE)
        return gkd_error(GKD_EINVAL, "schedule: unknown replay mode %d", (int)o->replay);
    if (o->replay == GKD_REPLAY_OFF) return 0;
    if (o->capacity < 1) return gkd_error(GKD_EINVAL, "schedule: replay capacity %d must be >= 1", o->capacity);
    if (o->seq_cap < 1) return gkd_error(GKD_EINVAL, "schedule: replay seq_cap %d must be >= 1", o->seq_cap);
    if (o->replay == GKD_REPLAY_FIXED) {
        if (!in01(o->p_replay)) return gkd_error(GKD_EINVAL, "schedule: p_replay %g must be in [0, 1]", o->p_replay);
        if (o->replay_min < 1 || o->replay_min > o->capacity)
            return gkd_error(GKD_EINVAL, "schedule: replay_min %d must be in [1, capacity %d]", o->replay_min,
                             o->capacity);
        return 0;
    }
    if (!in01(o->init_threshold))
        return gkd_error(GKD_EINVAL, "schedule: init_threshold %g must be in [0, 1]", o->init_threshold);
    if (!(o->threshold_step > 0.0 && o->threshold_step <= 1.0))
        return gkd_error(GKD_EINVAL, "schedule: threshold_step %g must be in (0, 1]", o->threshold_step);
    if (!(o->loss_eps >= 0.0 && isfinite(o->loss_eps)))
        return gkd_error(GKD_EINVAL, "schedule: loss_eps %g must be >= 0", o->loss_eps);
    if ((int)o->ratio < GKD_REPLAY_RATIO_DECREASING || (int)o->ratio > GKD_REPLAY_RATIO_INCREASING)
        return gkd_error(GKD_EINVAL, "schedule: unknown replay ratio %d", (int)o->ratio);
    if (o->ratio != GKD_REPLAY_RATIO_CONSTANT && o->total_steps < 1)
        return gkd_error(GKD_EINVAL, "schedule: total_steps %ld must be >= 1", o->total_steps);
    if ((int)o->valref != GKD_VALREF_LAST_RAISE && (int)o->valref != GKD_VALREF_PREVIOUS)
        return gkd_error(GKD_EINVAL, "schedule: unknown validation reference %d", (int)o->valref);
    return 0;
}

int gkd_schedule_new(gkd_schedule **out, const gkd_schedule_options *opt, uint64_t seed) {
    *out = NULL;
    int rc = check_options(opt);
    if (rc) return rc;
    gkd_schedule *s = calloc(1, sizeof *s);
    if (!s) return gkd_error(GKD_ENOMEM, "schedule: out of memory");
    s->opt = *opt;
    s->seed = seed;
    s->threshold = opt->init_threshold;
    if (opt->replay != GKD_REPLAY_OFF) {
        rc = gkd_replay_new(&s->buffer, opt->capacity, opt->seq_cap);
        if (rc) {
            free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void gkd_schedule_free(gkd_schedule *s) {
    if (!s) return;
    gkd_replay_free(s->buffer);
    free(s);
}

static double ratio_at(const gkd_schedule_options *o, long step) {
    double f;
    switch (o->ratio) {
    case GKD_REPLAY_RATIO_CONSTANT: return 0.5;
    case GKD_REPLAY_RATIO_INCREASING: f = (double)step / (double)o->total_steps; break;
    default: f = 1.0 - (double)step / (double)o->total_steps; break;
    }
    return f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
}

static gkd_schedule_choice choose(const gkd_schedule *s, long step, double u, double v, double w) {
    const gkd_schedule_options *o = &s->opt;
    gkd_source on = o->teacher_mix > 0.0 ? GKD_SRC_MIXED : GKD_SRC_STUDENT;
    gkd_source off = v < o->seqkd ? GKD_SRC_TEACHER : GKD_SRC_DATA;
    int count = s->buffer ? gkd_replay_count(s->buffer) : 0;
    switch (o->replay) {
    case GKD_REPLAY_FIXED:
        if (!(u < o->lambda)) return (gkd_schedule_choice){off, 0};
        if (count >= o->replay_min && w < o->p_replay) return (gkd_schedule_choice){GKD_SRC_REPLAY, 0};
        return (gkd_schedule_choice){on, 1};
    case GKD_REPLAY_ADAPTIVE: {
        double th = s->threshold, fresh = th * ratio_at(o, step);
        if (u < fresh || (u < th && count < o->capacity)) return (gkd_schedule_choice){on, 1};
        if (u < th) return (gkd_schedule_choice){GKD_SRC_REPLAY, 0};
        return (gkd_schedule_choice){off, 0};
    }
    default:
        return (gkd_schedule_choice){u < o->lambda ? on : off, 0};
    }
}

int gkd_schedule_step(gkd_schedule *s, long step, int B, gkd_schedule_choice *choices) {
    if (step != s->step)
        return gkd_error(GKD_ESTATE, "schedule: asked for step %ld but the next step is %ld", step, s->step);
    if (B < 1) return gkd_error(GKD_EINVAL, "schedule: batch size %d must be >= 1", B);
    /* Three uniforms per draw, always consumed, so each choice (lambda,
     * seqkd, replay) uses its own number whatever the branch. */
    gkd_rng rng = gkd_rng_derive(s->seed, GKD_RNG_SCHEDULE, (uint64_t)step, 0);
    int draws = s->opt.per_example ? B : 1;
    for (int i = 0; i < draws; i++) {
        double u = gkd_rng_double(&rng), v = gkd_rng_double(&rng), w = gkd_rng_double(&rng);
        choices[i] = choose(s, step, u, v, w);
    }
    for (int i = draws; i < B; i++) choices[i] = choices[0];
    s->step = step + 1;
    return 0;
}

int gkd_schedule_validation(gkd_schedule *s, double loss, int *raised) {
    if (raised) *raised = 0;
    if (!isfinite(loss)) return gkd_error(GKD_EINVAL, "schedule: validation loss %g is not finite", loss);
    if (s->opt.replay != GKD_REPLAY_ADAPTIVE) return 0;
    if (!s->has_ref) {
        s->has_ref = 1;
        s->ref_loss = loss;
        return 0;
    }
    if (loss >= s->ref_loss + s->opt.loss_eps) {
        s->threshold = fmin(s->threshold + s->opt.threshold_step, 1.0);
        s->ref_loss = loss;
        if (raised) *raised = 1;
    } else if (s->opt.valref == GKD_VALREF_PREVIOUS) {
        s->ref_loss = loss;
    }
    return 0;
}

double gkd_schedule_threshold(const gkd_schedule *s) { return s->threshold; }
long gkd_schedule_next_step(const gkd_schedule *s) { return s->step; }
gkd_replay *gkd_schedule_buffer(gkd_schedule *s) { return s->buffer; }

int gkd_schedule_replay(const gkd_schedule *s, long step, gkd_seqbatch *dst, int *items) {
    if (!s->buffer) return gkd_error(GKD_ESTATE, "schedule: replay is off");
    return gkd_replay_sample(s->buffer, s->seed, (uint64_t)step, dst, items);
}

/* ---- serialization ----
 * magic[8] u32 version u64 seed
 * options: f64 lambda u32 per_example f64 seqkd f64 teacher_mix u32 replay
 *          f64 p_replay u32 replay_min u32 capacity u32 seq_cap
 *          f64 init_threshold f64 threshold_step f64 loss_eps u32 ratio
 *          u64 total_steps u32 valref
 * state:   u64 step f64 threshold u32 has_ref f64 ref_loss
 *          u64 n, n bytes of replay blob (n = 0 when replay is off)
 * u64 FNV-1a of everything before it. */

static void write_identity(const gkd_schedule *s, blob_writer *w) {
    const gkd_schedule_options *o = &s->opt;
    blob_u64(w, s->seed);
    blob_f64(w, o->lambda);
    blob_u32(w, (uint32_t)o->per_example);
    blob_f64(w, o->seqkd);
    blob_f64(w, o->teacher_mix);
    blob_u32(w, (uint32_t)o->replay);
    blob_f64(w, o->p_replay);
    blob_u32(w, (uint32_t)o->replay_min);
    blob_u32(w, (uint32_t)o->capacity);
    blob_u32(w, (uint32_t)o->seq_cap);
    blob_f64(w, o->init_threshold);
    blob_f64(w, o->threshold_step);
    blob_f64(w, o->loss_eps);
    blob_u32(w, (uint32_t)o->ratio);
    blob_u64(w, (uint64_t)o->total_steps);
    blob_u32(w, (uint32_t)o->valref);
}

static void write_schedule(const gkd_schedule *s, const unsigned char *rb, size_t rn, blob_writer *w) {
    blob_put(w, SCHEDULE_MAGIC, 8);
    blob_u32(w, SCHEDULE_VERSION);
    write_identity(s, w);
    blob_u64(w, (uint64_t)s->step);
    blob_f64(w, s->threshold);
    blob_u32(w, (uint32_t)s->has_ref);
    blob_f64(w, s->has_ref ? s->ref_loss : 0.0);
    blob_u64(w, rn);
    if (rn) blob_put(w, rb, rn);
}

int gkd_schedule_save(const gkd_schedule *s, unsigned char **blob, size_t *size) {
    *blob = NULL;
    *size = 0;
    unsigned char *rb = NULL, *p = NULL;
    size_t rn = 0;
    int rc = 0;
    if (s->buffer && (rc = gkd_replay_save(s->buffer, &rb, &rn))) goto done;
    blob_writer w = {NULL, 0};
    write_schedule(s, rb, rn, &w);
    size_t n = w.n + 8;
    p = malloc(n);
    if (!p) {
        rc = gkd_error(GKD_ENOMEM, "schedule save: out of memory for %zu bytes", n);
        goto done;
    }
    w = (blob_writer){p, 0};
    write_schedule(s, rb, rn, &w);
    blob_u64(&w, blob_fnv1a64(p, w.n));
    *blob = p;
    *size = n;
    p = NULL;
done:
    free(rb);
    free(p);
    return rc;
}

int gkd_schedule_load(gkd_schedule *s, const unsigned char *blob, size_t size, int vocab_size) {
    gkd_replay *buffer = NULL;
    unsigned char ident[256];
    blob_writer iw = {ident, 0};
    write_identity(s, &iw);
    const size_t fixed = 8 + 4 + iw.n + 8 + 8 + 4 + 8 + 8;
    int rc = 0;
    if (size < 8 || memcmp(blob, SCHEDULE_MAGIC, 8) != 0)
        return gkd_error(GKD_EFORMAT, "schedule state: bad magic (not a schedule blob)");
    if (size < fixed + 8) return gkd_error(GKD_ECORRUPT, "schedule state: truncated (%zu bytes)", size);
    blob_reader rd = {blob + 8, blob + size - 8, 0};
    uint32_t version = blob_get_u32(&rd);
    if (version != SCHEDULE_VERSION)
        return gkd_error(GKD_EVERSION, "schedule state: version %u (this build reads %u)", version,
                         SCHEDULE_VERSION);
    blob_reader ck = {blob + size - 8, blob + size, 0};
    if (blob_get_u64(&ck) != blob_fnv1a64(blob, size - 8))
        return gkd_error(GKD_ECORRUPT, "schedule state: checksum mismatch (truncated or damaged)");
    if (memcmp(rd.p, ident, iw.n) != 0)
        return gkd_error(GKD_EMISMATCH, "schedule state: saved for other schedule options or seed");
    rd.p += iw.n;
    uint64_t step = blob_get_u64(&rd);
    double threshold = blob_get_f64(&rd);
    uint32_t has_ref = blob_get_u32(&rd);
    double ref = blob_get_f64(&rd);
    uint64_t rn = blob_get_u64(&rd);
    if (step > (uint64_t)LONG_MAX || !in01(threshold) || has_ref > 1 || !isfinite(ref) ||
        rn != (uint64_t)(rd.end - rd.p) || (rn == 0) != (s->buffer == NULL))
        return gkd_error(GKD_EFORMAT, "schedule state: bad fields (step, threshold, reference loss or buffer size)");
    if (rn) {
        /* The shape first: it alone can ask for a gigabyte of tokens. */
        int capacity, seq_cap;
        rc = gkd_replay_saved_shape(&capacity, &seq_cap, rd.p, (size_t)rn);
        if (rc) return gkd_error_wrap(rc, "schedule state");
        if (capacity != s->opt.capacity || seq_cap != s->opt.seq_cap)
            return gkd_error(GKD_EMISMATCH,
                             "schedule state: replay buffer shape (capacity %d, seq_cap %d) differs from the "
                             "options (capacity %d, seq_cap %d)",
                             capacity, seq_cap, s->opt.capacity, s->opt.seq_cap);
        rc = gkd_replay_load(&buffer, rd.p, (size_t)rn, vocab_size);
        if (rc) return gkd_error_wrap(rc, "schedule state");
    }
    gkd_replay_free(s->buffer);
    s->buffer = buffer;
    s->step = (long)step;
    s->threshold = threshold;
    s->has_ref = (int)has_ref;
    s->ref_loss = has_ref ? ref : 0.0;
    return 0;
}
