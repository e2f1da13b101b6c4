/* Sixteen rows transposed into a k-major panel (see pack_rows.h). */
#include "pack_rows.h"

#include <immintrin.h>

#define TILE 16
/* How far ahead each of the sixteen rows is prefetched (8 cache lines). */
#define ROW_PREFETCH 128

/* Sixteen inputs at a time are loaded from each row and transposed in
 * registers. */
__attribute__((target("avx512f"))) void gkd_pack_rows16(float *xp, size_t ldx, const float *inp,
                                                        size_t ld, int rows, int IC) {
    const float *row[TILE];
    for (int i = 0; i < TILE; i++) row[i] = i < rows ? inp + (size_t)i * ld : NULL;
    /* The rows are read as sixteen streams, often from another core's
     * cache or from memory: ask for each row's lines ROW_PREFETCH floats
     * ahead, so their fetches overlap. */
    int k = 0;
    for (int i = 0; i < rows; i++)
        for (int kk = 0; kk < ROW_PREFETCH && kk < IC; kk += 16)
            _mm_prefetch((const char *)(row[i] + kk), _MM_HINT_T0);
    for (; k + 16 <= IC; k += 16) {
        if (k + ROW_PREFETCH < IC)
            for (int i = 0; i < rows; i++) _mm_prefetch((const char *)(row[i] + k + ROW_PREFETCH), _MM_HINT_T0);
        __m512 a[16], b[16];
        for (int i = 0; i < 16; i++) a[i] = row[i] ? _mm512_loadu_ps(row[i] + k) : _mm512_setzero_ps();
        /* 16 x 16 transpose: pairs of rows, then quads, then 128-bit lanes. */
        for (int i = 0; i < 16; i += 2) {
            b[i] = _mm512_unpacklo_ps(a[i], a[i + 1]);
            b[i + 1] = _mm512_unpackhi_ps(a[i], a[i + 1]);
        }
        for (int i = 0; i < 16; i += 4) {
            a[i] = _mm512_shuffle_ps(b[i], b[i + 2], 0x44);
            a[i + 1] = _mm512_shuffle_ps(b[i], b[i + 2], 0xEE);
            a[i + 2] = _mm512_shuffle_ps(b[i + 1], b[i + 3], 0x44);
            a[i + 3] = _mm512_shuffle_ps(b[i + 1], b[i + 3], 0xEE);
        }
        for (int i = 0; i < 4; i++) {
            b[i] = _mm512_shuffle_f32x4(a[i], a[i + 4], 0x88);
            b[i + 4] = _mm512_shuffle_f32x4(a[i], a[i + 4], 0xDD);
            b[i + 8] = _mm512_shuffle_f32x4(a[i + 8], a[i + 12], 0x88);
            b[i + 12] = _mm512_shuffle_f32x4(a[i + 8], a[i + 12], 0xDD);
        }
        for (int i = 0; i < 4; i++) {
            a[i] = _mm512_shuffle_f32x4(b[i], b[i + 8], 0x88);
            a[i + 8] = _mm512_shuffle_f32x4(b[i], b[i + 8], 0xDD);
            a[i + 4] = _mm512_shuffle_f32x4(b[i + 4], b[i + 12], 0x88);
            a[i + 12] = _mm512_shuffle_f32x4(b[i + 4], b[i + 12], 0xDD);
        }
        /* a[j] now holds input k + j of the 16 rows. */
        for (int j = 0; j < 16; j++) _mm512_storeu_ps(xp + (size_t)(k + j) * ldx, a[j]);
    }
    for (; k < IC; k++)
        for (int i = 0; i < TILE; i++) xp[(size_t)k * ldx + i] = row[i] ? row[i][k] : 0.0f;
}


void gkd_pack_rows16_plain(float *xp, size_t ldx, const float *inp, size_t ld, int rows, int IC) {
    for (int k = 0; k < IC; k++)
        for (int i = 0; i < TILE; i++) xp[(size_t)k * ldx + i] = i < rows ? inp[(size_t)i * ld + k] : 0.0f;
}
