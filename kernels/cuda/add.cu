// Elementwise sum on the GPU, out = a + b over n values in the storage type S (math in fp32).
// Used for a block's output (residual + MLP projection, CPU twin: the loop in
// CpuStageModel::forward_block) and for summing the two copies of the tied wte gradient.
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

}  // namespace

void add_vectors(void* out, const void* a, const void* b, std::size_t n, DType dt, Stream stream) {
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(add_kernel<S>, grid_for(n, kThreads), kThreads, 0, to_cuda(stream),
                  static_cast<S*>(out), static_cast<const S*>(a), static_cast<const S*>(b), n);
  });
}

}  // namespace pptrain::kernels::cuda
