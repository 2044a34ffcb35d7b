// AdamW step, CPU twin; float only (master weights and optimizer state are fp32).
// params, grads, m, v: n values each; t counts steps from 1.
#include "kernels/adamw.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu/parallel.h"

namespace pptrain::kernels::cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
  // Bias corrections 1 - beta^t once, in double: beta2^t for large t needs the precision.
  const float c1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), t));
  const float c2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), t));
#pragma omp parallel for schedule(static) if (n >= std::size_t(kMinParallelWork))
  for (std::size_t i = 0; i < n; ++i) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / c1;
    const float vhat = vi / c2;
    params[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * params[i]);
  }
}

}  // namespace pptrain::kernels::cpu
