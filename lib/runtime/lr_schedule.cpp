#include "runtime/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace pptrain {

double learning_rate(const TrainingConfig& t, int step) {
  if (step < t.warmup_steps) return t.lr * (step + 1) / t.warmup_steps;
  if (t.lr_schedule == "constant") return t.lr;
  const int decay_start = t.decay_steps > 0 ? t.steps - t.decay_steps : t.warmup_steps;
  if (step < decay_start) return t.lr;
  // progress 0 at the first decaying step, 1 at the last step (steps - 1).
  const int span = std::max(1, t.steps - 1 - decay_start);
  const double progress = std::clamp(double(step - decay_start) / span, 0.0, 1.0);
  const double kept = t.lr_schedule == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(M_PI * progress));
  return t.min_lr + kept * (t.lr - t.min_lr);
}

}  // namespace pptrain
