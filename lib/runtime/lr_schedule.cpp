#include "runtime/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace pptrain {

double learning_rate(const TrainingConfig& t, int step) {
  if (step < t.warmup_steps) return t.lr * (step + 1) / t.warmup_steps;
  if (t.lr_schedule == "constant") return t.lr;
  const int decay_steps = std::max(1, t.steps - 1 - t.warmup_steps);
  const double progress = std::clamp(double(step - t.warmup_steps) / decay_steps, 0.0, 1.0);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return t.min_lr + cosine * (t.lr - t.min_lr);
}

}  // namespace pptrain
