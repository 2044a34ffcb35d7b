// Learning rate at a 0-based step: linear warmup over warmup_steps to training.lr, then
// cosine decay to training.min_lr at the last step (or constant).
#pragma once

#include "config/config.h"

namespace pptrain {

double learning_rate(const TrainingConfig& training, int step);

}  // namespace pptrain
