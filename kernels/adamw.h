// AdamW (Loshchilov & Hutter) with bias correction; t counts steps from 1.
// weight_decay is decoupled: param -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param).
// The caller passes weight_decay = 0 for tensors that must not decay (biases, norms, 1-D).
#pragma once

#include <cstddef>

namespace pptrain::kernels::cpu {

void adamw_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t);

}  // namespace pptrain::kernels::cpu
