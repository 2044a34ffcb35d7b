// AdamW step on the GPU: fp32 master params, grads, m, v (n values each), the same update as
// the CPU twin (kernels/cpu/adamw.cpp); the bf16 variant also writes the stochastically rounded
// bf16 working copy the forward reads.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct AdamwArgs {
  float lr, beta1, beta2, eps, weight_decay;
  float c1, c2;  // bias corrections 1 - beta^t
};

// params_bf16 == nullptr: fp32 only.
__global__ void adamw_kernel(float* params, std::uint16_t* params_bf16, const float* grads,
                             float* m, float* v, std::size_t n, AdamwArgs a, std::uint64_t seed) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float g = grads[i];
    const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
    const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / a.c1;
    const float vhat = vi / a.c2;
    float p = params[i];
    p -= a.lr * (mhat / (sqrtf(vhat) + a.eps) + a.weight_decay * p);
    params[i] = p;
    if (params_bf16 != nullptr) params_bf16[i] = f32_to_bf16_bits_stochastic(p, random_bits(seed, i));
  }
}

void launch(float* params, std::uint16_t* params_bf16, const float* grads, float* m, float* v,
            std::size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
            int t, std::uint64_t seed, Stream stream) {
  PPT_CHECK(t >= 1, "adamw: the step t counts from 1, got {}", t);
  if (n == 0) return;
  // Bias corrections in double, as the CPU twin: beta2^t for large t needs the precision.
  AdamwArgs a{lr, beta1, beta2, eps, weight_decay,
              static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), t)),
              static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), t))};
  launch_kernel(adamw_kernel, grid_for(n, kThreads), kThreads, 0, to_cuda(stream), params,
                params_bf16, grads, m, v, n, a, seed);
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, Stream stream) {
  launch(params, nullptr, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, 0, stream);
}

void adamw_update_bf16(float* params, std::uint16_t* params_bf16, const float* grads, float* m,
                       float* v, std::size_t n, float lr, float beta1, float beta2, float eps,
                       float weight_decay, int t, std::uint64_t seed, Stream stream) {
  PPT_CHECK(params_bf16 != nullptr || n == 0, "adamw_update_bf16: params_bf16 is null");
  launch(params, params_bf16, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, t, seed, stream);
}

}  // namespace pptrain::kernels::cuda
