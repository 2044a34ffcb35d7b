// What CUDA kernel source needs from nvcc, for g++ with PPTRAIN_SIMT_EMULATION: the built-in
// variables, barriers and warp intrinsics, mapped onto the SIMT emulator (simt_emulator.h).
// kernels/cuda/common.cuh includes it after the CUDA headers (whose host parts g++ compiles:
// bf16 conversions, vector types), so kernel headers compile unchanged for the GPU and for the
// emulator. A static __shared__ array becomes a function-local static: one copy that every
// thread of the running block sees (blocks run one at a time), kept between blocks rather than
// fresh for each, and not poisoned. Dynamic shared memory (ptx::dynamic_shared_memory in
// kernels/cuda/warp_mma.cuh) is fresh and poisoned per block.
#pragma once

#ifndef PPTRAIN_SIMT_EMULATION
#error "cuda_source_compat.h is for the SIMT emulator's g++ builds only"
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/simt_emulator/simt_emulator.h"

#define __launch_bounds__(...)
#undef __shared__
#define __shared__ static

#define threadIdx (::pptrain::simt::thread_idx())
#define blockIdx (::pptrain::simt::block_idx())
#define blockDim (::pptrain::simt::block_dim())
#define gridDim (::pptrain::simt::grid_dim())

using std::max;
using std::min;

inline void __syncthreads() { ::pptrain::simt::sync_threads(); }
inline void __syncwarp(unsigned = 0xFFFFFFFFu) { ::pptrain::simt::sync_warp(); }

inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }

namespace pptrain::simt::detail {
template <typename V>
V shuffle(unsigned mask, V v, int src_lane) {
  static_assert(sizeof(V) <= 8, "shuffles move at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(V));
  bits = ::pptrain::simt::shuffle_bits(mask, bits, src_lane);
  V out;
  std::memcpy(&out, &bits, sizeof(V));
  return out;
}
inline int lane_id() { return static_cast<int>(threadIdx.x % 32); }
}  // namespace pptrain::simt::detail

template <typename V>
V __shfl_sync(unsigned mask, V v, int src_lane, int width = 32) {
  const int lane = ::pptrain::simt::detail::lane_id();
  return ::pptrain::simt::detail::shuffle(mask, v,
                                          (lane & ~(width - 1)) + (src_lane & (width - 1)));
}
template <typename V>
V __shfl_xor_sync(unsigned mask, V v, int lane_mask, int width = 32) {
  const int lane = ::pptrain::simt::detail::lane_id();
  const int src = lane ^ lane_mask;
  return ::pptrain::simt::detail::shuffle(mask, v, src / width == lane / width ? src : lane);
}
template <typename V>
V __shfl_down_sync(unsigned mask, V v, unsigned delta, int width = 32) {
  const int lane = ::pptrain::simt::detail::lane_id();
  const int src = lane + static_cast<int>(delta);
  return ::pptrain::simt::detail::shuffle(mask, v, src / width == lane / width ? src : lane);
}
