// Device-side helpers shared by the kernels in kernels/cuda/*.cu (nvcc only): storage-type
// conversion, fixed-order (deterministic) warp and block reductions, stochastic rounding, the
// dtype dispatch of the host wrappers and grid sizing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#ifdef PPTRAIN_SIMT_EMULATION
#include "kernels/simt_emulator/cuda_source_compat.h"  // g++: the kernels' source in the emulator
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_types.h"

namespace pptrain::kernels::cuda {

using bf16 = __nv_bfloat16;

inline cudaStream_t to_cuda(Stream s) { return static_cast<cudaStream_t>(s.handle); }

// ---- storage <-> fp32 ----
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_f32<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// ---- host dispatch on the runtime storage type: fn(Tag<float>{}) or fn(Tag<bf16>{}) ----
template <typename T>
struct Tag {
  using type = T;
};

template <typename Fn>
void dispatch_dtype(DType dt, Fn&& fn) {
  switch (dt) {
    case DType::F32: fn(Tag<float>{}); return;
    case DType::BF16: fn(Tag<bf16>{}); return;
  }
  PPT_THROW("unknown storage dtype {}", static_cast<int>(dt));
}

// Blocks for a grid-stride loop over n items: enough to fill any current GPU several times,
// never more than needed, and always within gridDim.x's limit.
inline unsigned grid_for(std::size_t n, int threads, std::size_t max_blocks = 8192) {
  const std::size_t blocks = (n + static_cast<std::size_t>(threads) - 1) / threads;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min(blocks, max_blocks)));
}

// ---- reductions: butterfly (xor) shuffles always combine the same pairs in the same order,
// so the results are deterministic. All 32 lanes receive the result. ----
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, off));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets the
// result. `shared` holds 32 values. Contains __syncthreads: call from all threads.
template <typename V>
__device__ V block_sum(V v, V* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V total = lane < nwarps ? shared[lane] : V(0);
  return warp_sum(total);
}

// Max over a block, same contract as block_sum.
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_max(lane < nwarps ? shared[lane] : -INFINITY);
}

// ---- stochastic rounding ----
// splitmix64's finaliser of (seed, index): 32 well-mixed bits per element, independent of the
// launch configuration.
__device__ __forceinline__ std::uint32_t random_bits(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<std::uint32_t>(z ^ (z >> 31));
}

// fp32 -> bf16 bits, rounding away from zero with probability (dropped low 16 bits) / 2^16: adding
// 16 random bits below the cut carries into the kept half with exactly that probability (the
// magnitude is what the bits encode, so this holds for negative values too). Inf and NaN are
// converted as usual.
__device__ __forceinline__ std::uint16_t f32_to_bf16_bits_stochastic(float x, std::uint32_t rnd) {
  const std::uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7F800000u) == 0x7F800000u) return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return static_cast<std::uint16_t>((bits + (rnd & 0xFFFFu)) >> 16);
}

}  // namespace pptrain::kernels::cuda
