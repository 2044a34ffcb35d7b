#include "runtime/adamw_optimizer.h"

#include "kernels/adamw.h"

namespace pptrain {

AdamWOptimizer::AdamWOptimizer(const ParamTable& table, const TrainingConfig& training,
                               MemoryTracker& memory)
    : table_(table),
      training_(training),
      m_(memory, MemCategory::Optimizer, table.total_floats()),
      v_(memory, MemCategory::Optimizer, table.total_floats()) {}

void AdamWOptimizer::step(float* params, const float* grads, float lr, int t) {
  for (const ParamEntry& e : table_.entries()) {
    const std::size_t o = e.offset;
    const float decay = e.spec.decay ? static_cast<float>(training_.weight_decay) : 0.0f;
    kernels::cpu::adamw_update(params + o, grads + o, m_.data() + o, v_.data() + o, e.spec.numel(),
                               lr, static_cast<float>(training_.beta1),
                               static_cast<float>(training_.beta2),
                               static_cast<float>(training_.eps), decay, t);
  }
}

}  // namespace pptrain
