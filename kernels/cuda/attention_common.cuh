// Shared by attention_forward.cu and attention_backward.cu: tiling constants, the head-size
// dispatch and the dynamic shared memory set-up of the flash-style kernels.
//
// Layout: inp (B,T,3C) = [q | k | v] per token, head h at columns h*hs..(h+1)*hs of each third;
// out/dout (B,T,C); lse (B,NH,T) fp32.
// Tiling: a block of kWarps warps works on one (b, h) and one tile of 32 query rows (forward,
// dq) or 32 keys (dk, dv). A tile of the other side (32 keys, or 32 queries) is staged in shared
// memory as fp32 rows of stride hs+1 (the +1 keeps lanes that read different rows on different
// banks); lane j of a warp owns key (or query) j of that tile for the dot products, and output
// dimension d = lane + 32 i (i < HS_MAX/32) for the accumulators held in registers.
#pragma once

#include <cmath>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace pptrain::kernels::cuda::attention {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 32;                    // queries or keys per tile: one per lane
constexpr int kRowsPerWarp = kTile / kWarps;  // tile rows a warp owns: r * kWarps + warp

inline void check_shape(const char* what, int B, int T, int C, int NH) {
  PPT_CHECK(B >= 0 && T >= 0 && C > 0 && NH > 0 && C % NH == 0,
            "{}: bad shape B={} T={} C={} NH={} (C must be a multiple of NH)", what, B, T, C, NH);
  PPT_CHECK(C / NH <= 128, "{}: head size {} > 128 is not supported", what, C / NH);
  PPT_CHECK(NH <= 65535 && B <= 65535, "{}: NH={} or B={} exceeds the grid limit", what, NH, B);
  PPT_CHECK(std::int64_t{B} * T * 3 * C < (std::int64_t{1} << 40), "{}: tensor too large", what);
}

// Calls fn(std::integral_constant<int, HS_MAX>{}) with the smallest supported HS_MAX >= hs.
template <typename Fn>
void dispatch_head_size(int hs, Fn&& fn) {
  if (hs <= 32) {
    fn(std::integral_constant<int, 32>{});
  } else if (hs <= 64) {
    fn(std::integral_constant<int, 64>{});
  } else {
    fn(std::integral_constant<int, 128>{});
  }
}

// Above 48 KiB a kernel must opt in to dynamic shared memory (hs = 128 needs ~64 KiB).
template <typename Kernel>
void allow_shared_memory(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(bytes)));
  }
}

inline float softmax_scale(int hs) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs))); }

// Copies rows t0..t0+kTile-1 (zeros past T) of one head's q, k or v (column offset `col`
// within each 3C row) or of dout (row stride C) into `dst` (kTile rows, stride hs+1), as fp32.
// Call from all threads of the block.
template <typename S>
__device__ __forceinline__ void stage_tile(float* dst, const S* src, std::size_t row_stride,
                                           int col, int t0, int T, int hs) {
  for (int i = threadIdx.x; i < kTile * hs; i += blockDim.x) {
    const int r = i / hs, d = i % hs;
    const int t = t0 + r;
    dst[r * (hs + 1) + d] = t < T ? to_f32(src[static_cast<std::size_t>(t) * row_stride + col + d]) : 0.0f;
  }
}

}  // namespace pptrain::kernels::cuda::attention
