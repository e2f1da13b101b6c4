/* gkd: on-policy and sequence-level knowledge distillation. One include for
 * the whole public API; each header documents one module. */
#ifndef GKD_GKD_H
#define GKD_GKD_H

#include "gkd/arch.h"
#include "gkd/cell_status.h"
#include "gkd/checkpoint.h"
#include "gkd/csv.h"
#include "gkd/distill.h"
#include "gkd/divergence.h"
#include "gkd/error.h"
#include "gkd/eval.h"
#include "gkd/experiment.h"
#include "gkd/experiment_inputs.h"
#include "gkd/fsutil.h"
#include "gkd/layers.h"
#include "gkd/llama2c.h"
#include "gkd/metrics.h"
#include "gkd/model.h"
#include "gkd/model_io.h"
#include "gkd/optim.h"
#include "gkd/parse.h"
#include "gkd/plot.h"
#include "gkd/products.h"
#include "gkd/replay.h"
#include "gkd/results.h"
#include "gkd/rng.h"
#include "gkd/runner.h"
#include "gkd/safetensors.h"
#include "gkd/sampler.h"
#include "gkd/schedule.h"
#include "gkd/slurm.h"
#include "gkd/stats.h"
#include "gkd/table.h"
#include "gkd/task.h"
#include "gkd/tokenizer.h"

#endif
