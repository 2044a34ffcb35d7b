// Elementwise sum on the GPU, out = a + b over n values in the storage type S (math in fp32).
// Used for a block's output (residual + MLP projection, CPU twin: the loop in
// CpuStageModel::forward_block) and for summing the two copies of the tied wte gradient.
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename S>
__global__ void add_kernel(S* out, const S* a, const S* b, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = from_f32<S>(to_f32(a[i]) + to_f32(b[i]));
  }
}

// The same for bf16 pairs (n/2 of them, 4-byte aligned): 4-byte accesses instead of 2-byte.
__global__ void add_bf16x2_kernel(__nv_bfloat162* out, const __nv_bfloat162* a,
                                  const __nv_bfloat162* b, std::size_t pairs) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < pairs;
       i += stride) {
    const float2 x = __bfloat1622float2(a[i]), y = __bfloat1622float2(b[i]);
    out[i] = __floats2bfloat162_rn(x.x + y.x, x.y + y.y);
  }
}

}  // namespace

void add_vectors(void* out, const void* a, const void* b, std::size_t n, DType dt, Stream stream) {
  if (n == 0) return;
  const auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 4 == 0; };
  if (dt == DType::BF16 && n % 2 == 0 && aligned(out) && aligned(a) && aligned(b)) {
    launch_kernel(add_bf16x2_kernel, grid_for(n / 2, kThreads), kThreads, 0, to_cuda(stream),
                  static_cast<__nv_bfloat162*>(out), static_cast<const __nv_bfloat162*>(a),
                  static_cast<const __nv_bfloat162*>(b), n / 2);
    return;
  }
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(add_kernel<S>, grid_for(n, kThreads), kThreads, 0, to_cuda(stream),
                  static_cast<S*>(out), static_cast<const S*>(a), static_cast<const S*>(b), n);
  });
}

}  // namespace pptrain::kernels::cuda
