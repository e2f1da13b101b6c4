/* Private: the row-level decoder behind gkd_model_decode_step, shared with
 * the sampler so a prompt can be prefilled in one call. */
#ifndef GKD_DECODE_ROWS_H
#define GKD_DECODE_ROWS_H

#include "gkd/model.h"

/** Run n rows through the model with the KV cache. Row r is token tok[r] at
 *  position pos[r] of cached sequence seq[r]; all rows' keys/values are
 *  written to the cache before attention, so one call may hold consecutive
 *  positions of one sequence (a prompt prefill). Positions before pos[r] not
 *  in this call must already be cached. Rows with out_row[r] >= 0 get their
 *  next-token logits written to logits + out_row[r] * V; other rows skip the
 *  LM head. A row's result does not depend on the other rows in the call. */
int gkd_decode_rows(gkd_model *m, gkd_kv_cache *c, int n, const int *seq, const int *pos,
                    const int *tok, const int *out_row, float *logits);

/** Tests only: the per-thread speeds (rows per second, parts values) that
 *  the next call split among threads by sequence shares its rows by. */
void gkd_kv_cache_set_part_speeds(gkd_kv_cache *c, int parts, const double *speed);

/** Tests only: the per-thread rates (threads values, work per second)
 *  that the next call run by stages shares each stage's items by. */
void gkd_kv_cache_set_stage_rates(gkd_kv_cache *c, int threads, const double *rate);

/** Number of sequences the cache was created for. */
int gkd_kv_cache_batch(const gkd_kv_cache *c);

#endif
