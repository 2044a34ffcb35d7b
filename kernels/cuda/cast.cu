// fp32 <-> bf16 casts on the GPU; bf16 as 16-bit words in the host API. n values each.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void cast_f32_to_bf16_kernel(std::uint16_t* dst, const float* src, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
  }
}

__global__ void cast_bf16_to_f32_kernel(float* dst, const std::uint16_t* src, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dst[i] = __bfloat162float(__ushort_as_bfloat16(src[i]));
  }
}

__global__ void cast_f32_to_bf16_stochastic_kernel(std::uint16_t* dst, const float* src,
                                                   std::size_t n, std::uint64_t seed) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dst[i] = f32_to_bf16_bits_stochastic(src[i], random_bits(seed, i));
  }
}

}  // namespace

void cast_f32_to_bf16(std::uint16_t* dst, const float* src, std::size_t n, Stream stream) {
  if (n == 0) return;
  launch_kernel(cast_f32_to_bf16_kernel, grid_for(n, kThreads), kThreads, 0, to_cuda(stream), dst,
                src, n);
}

void cast_bf16_to_f32(float* dst, const std::uint16_t* src, std::size_t n, Stream stream) {
  if (n == 0) return;
  launch_kernel(cast_bf16_to_f32_kernel, grid_for(n, kThreads), kThreads, 0, to_cuda(stream), dst,
                src, n);
}

void cast_f32_to_bf16_stochastic(std::uint16_t* dst, const float* src, std::size_t n,
                                 std::uint64_t seed, Stream stream) {
  if (n == 0) return;
  launch_kernel(cast_f32_to_bf16_stochastic_kernel, grid_for(n, kThreads), kThreads, 0,
                to_cuda(stream), dst, src, n, seed);
}

}  // namespace pptrain::kernels::cuda
