// One optimizer step of a process that holds the whole model: m micro-batches of forward +
// backward with gradient accumulation, the global grad norm and clipping, the scheduled
// learning rate and AdamW. The trainer and the benchmark share it, so both time the same work.
#pragma once

#include <functional>

#include "config/config.h"
#include "model/stage_model.h"
#include "runtime/adamw_optimizer.h"

namespace pptrain {

struct StepResult {
  double loss = 0.0;       // mean over the step's tokens
  double grad_norm = 0.0;  // before clipping
  double lr = 0.0;
};

// fill(micro_batch, inputs (B,T), targets (B,T)) provides the data of each micro-batch.
using BatchFiller = std::function<void(int micro_batch, int* inputs, int* targets)>;

StepResult train_step_whole_model(StageModel& model, Stash& stash, AdamWOptimizer& optimizer,
                                  const TrainingConfig& training, int step, int micro_batches,
                                  const BatchFiller& fill);

// Scales the gradients so their global L2 norm is at most max_norm (0 = no clipping).
// norm is the global norm, already summed over every stage that holds a share.
void clip_gradients(float* grads, std::size_t n, double norm, double max_norm);

}  // namespace pptrain
