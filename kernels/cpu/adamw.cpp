// AdamW step, CPU twin; float only (master weights and optimizer state are fp32).
#include "kernels/adamw.h"

#include <cmath>
#include <cstddef>

#include "core/error.h"
#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                  const AdamwStep& step, float weight_decay) {
  PPT_CHECK(step.t >= 1, "adamw: the step t counts from 1, got {}", step.t);
  // Bias corrections 1 - beta^t once, in double: beta2^t for large t needs the precision.
  const float c1 = static_cast<float>(1.0 - std::pow(static_cast<double>(step.beta1), step.t));
  const float c2 = static_cast<float>(1.0 - std::pow(static_cast<double>(step.beta2), step.t));
  const float b1 = step.beta1, b2 = step.beta2, lr = step.lr, eps = step.eps;
  const float scale = step.grad_scale;
#pragma omp parallel for schedule(static) if (n >= std::size_t(kMinParallelWork))
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grads[i] * scale;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / c1;
    const float vhat = vi / c2;
    params[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * params[i]);
  }
}

}  // namespace pptrain::kernels::cpu
