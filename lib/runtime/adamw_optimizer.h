// AdamW over one stage's flat parameter array: fp32 first and second moments in the
// table's layout, weight decay applied to the tensors whose spec says so (2-D weights).
#pragma once

#include "config/config.h"
#include "core/memory.h"
#include "model/param_table.h"

namespace pptrain {

class AdamWOptimizer {
 public:
  AdamWOptimizer(const ParamTable& table, const TrainingConfig& training, MemoryTracker& memory);
  // t counts optimizer steps from 1 (bias correction).
  void step(float* params, const float* grads, float lr, int t);
  float* first_moment() { return m_.data(); }
  float* second_moment() { return v_.data(); }
  const float* first_moment() const { return m_.data(); }
  const float* second_moment() const { return v_.data(); }

 private:
  const ParamTable& table_;
  TrainingConfig training_;
  FloatBuffer m_, v_;
};

}  // namespace pptrain
