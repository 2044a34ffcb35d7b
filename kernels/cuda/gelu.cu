// GELU, tanh approximation (GPT-2's), on the GPU: elementwise over n values in the storage type
// S, math in fp32. Same formulas as the CPU twin (kernels/cpu/gelu.cpp).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

template <typename S>
__global__ void gelu_forward_kernel(S* out, const S* inp, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float x = to_f32(inp[i]);
    out[i] = from_f32<S>(0.5f * x * (1.0f + tanhf(kGeluScale * (x + kGeluCubic * x * x * x))));
  }
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) s (1 + 3 k x^2), u = s (x + k x^3);
// sech^2 as 1 - tanh^2, which cannot overflow.
template <typename S>
__global__ void gelu_backward_kernel(S* dinp, const S* inp, const S* dout, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float x = to_f32(inp[i]);
    const float th = tanhf(kGeluScale * (x + kGeluCubic * x * x * x));
    const float grad = 0.5f * (1.0f + th) +
                       0.5f * x * (1.0f - th * th) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    dinp[i] = from_f32<S>(to_f32(dinp[i]) + grad * to_f32(dout[i]));
  }
}

}  // namespace

void gelu_forward(void* out, const void* inp, std::size_t n, DType dt, Stream stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(gelu_forward_kernel<S>, grid_for(n, kThreads), kThreads, 0, to_cuda(stream),
                  static_cast<S*>(out), static_cast<const S*>(inp), n);
  });
}

void gelu_backward(void* dinp, const void* inp, const void* dout, std::size_t n, DType dt,
                   Stream stream) {
  if (n == 0) return;
  PPT_CHECK(dinp != dout, "gelu_backward: dinp must not alias dout (the backward accumulates)");
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(gelu_backward_kernel<S>, grid_for(n, kThreads), kThreads, 0, to_cuda(stream),
                  static_cast<S*>(dinp), static_cast<const S*>(inp), static_cast<const S*>(dout),
                  n);
  });
}

}  // namespace pptrain::kernels::cuda
