// Learning rate at a 0-based step: linear warmup over warmup_steps to training.lr, then held
// there until the last decay_steps steps (0: none held) decay it, along a cosine or a line, to
// training.min_lr at the last step; or constant after the warmup.
#pragma once

#include "config/config.h"

namespace pptrain {

double learning_rate(const TrainingConfig& training, int step);

}  // namespace pptrain
