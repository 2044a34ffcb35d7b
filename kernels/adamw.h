// AdamW (Loshchilov & Hutter) with bias correction; t counts steps from 1.
// weight_decay is decoupled: param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param).
// The caller passes weight_decay = 0 for tensors that must not decay (biases, norms, 1-D).
// grad_scale multiplies each gradient as it is read: the clip factor (1 when the norm is under
// the limit), so clipping costs no pass over the gradients of its own. g * grad_scale is
// rounded to fp32 before use, exactly as a separate scaling pass would have stored it.
#pragma once

#include <cstddef>

namespace pptrain::kernels {

struct AdamwStep {
  float lr = 0.0f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  int t = 1;
  float grad_scale = 1.0f;
};

}  // namespace pptrain::kernels

namespace pptrain::kernels::cpu {

// params, grads, m, v: n values each.
void adamw_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                  const AdamwStep& step, float weight_decay);

}  // namespace pptrain::kernels::cpu
