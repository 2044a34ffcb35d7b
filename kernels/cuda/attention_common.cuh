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
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/warp_mma.cuh"

namespace pptrain::kernels::cuda::attention {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 32;                    // queries or keys per tile: one per lane
constexpr int kRowsPerWarp = kTile / kWarps;  // tile rows a warp owns: r * kWarps + warp

template <int V>
using Int = std::integral_constant<int, V>;

// Calls fn(Int<HS_MAX>{}) with the smallest supported HS_MAX >= hs.
template <typename Fn>
void dispatch_head_size(int hs, Fn&& fn) {
  if (hs <= 32) {
    fn(Int<32>{});
  } else if (hs <= 64) {
    fn(Int<64>{});
  } else {
    fn(Int<128>{});
  }
}

// Calls fn(Int<A>{}) if value == A, else fn(Int<B>{}): a runtime choice
// between two compile-time shapes (AttentionTiling's fields, checked before).
template <int A, int B, typename Fn>
void dispatch_either(int value, Fn&& fn) {
  if (value == A) {
    fn(Int<A>{});
  } else {
    fn(Int<B>{});
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

// ---- bf16 tensor-core path (mma.sync.m16n8k16, sm_80+) ----
// Used when the storage type is bf16; fp32 storage keeps the CUDA-core kernels above so fp32 mode
// tracks the CPU twin to ~1e-6. A block's own rows are 16 per warp (AttentionTiling: 4 or 8
// warps; the forward's warps may own two 16-row m-tiles); the other side's tiles are 64 rows
// (32 queries in the dk/dv kernel's narrow shape). Tiles of one head are staged in
// shared memory as bf16 rows of tc::kLd<HS_MAX> = HS_MAX + 8 elements: zero-filled past T and
// past hs (so the mma k-loop can always run to HS_MAX). A row is HS_MAX * 2 + 16 bytes, an odd
// number of 16-byte units, so the 8 rows an ldmatrix reads fall on 8 different bank groups:
// every fragment load below is conflict-free. Fragment layouts: kernels/cuda/warp_mma.cuh.
// Tiles are staged with cp.async (global -> shared, no register round trip) one tile ahead of
// the one in use, so the loads of the next tile overlap the mma work of this one.
namespace tc {

constexpr int kRows = 64;  // rows of the key tiles the forward and dq kernels walk
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int HS_MAX>
constexpr int kLd = HS_MAX + 8;

// Shared-memory bytes of `rows` staged rows.
template <int HS_MAX>
constexpr std::size_t tile_bytes(int rows) {
  return static_cast<std::size_t>(rows) * kLd<HS_MAX> * sizeof(bf16);
}

__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

// c += a b, fp32 accumulate.
__device__ __forceinline__ void mma(float c[4], const std::uint32_t a[4], const std::uint32_t b[2]) {
  ptx::mma_bf16(c, a, b);
}

// A fragment: rows m0..m0+15, columns k0..k0+15 of a row-major [m][k] tile. One ldmatrix.x4:
// lanes 8i..8i+7 address matrix i = (rows m0 + 8 (i % 2), columns k0 + 8 (i / 2)), which is
// a0..a3's order.
__device__ __forceinline__ void load_a(std::uint32_t a[4], const bf16* tile, int ld, int m0,
                                       int k0) {
  const int lane = threadIdx.x % 32, i = lane / 8, r = lane % 8;
  ptx::ldmatrix<4, false>(a, tile + (m0 + (i % 2) * 8 + r) * ld + k0 + (i / 2) * 8);
}

// B fragments (k0..k0+15) x (n0..n0+7) -> b0 and (n0+8..n0+15) -> b1 of B = X^T, X a
// row-major [n][k] tile (K in S = Q K^T). One ldmatrix.x4: matrix i = (rows n0 + 8 (i / 2),
// columns k0 + 8 (i % 2)); without .trans lane (g, c) gets (row g, columns 2c, 2c+1) = (k 2c..,
// n g), the B layout.
__device__ __forceinline__ void load_b_nk(std::uint32_t b0[2], std::uint32_t b1[2],
                                          const bf16* tile, int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32, i = lane / 8, r = lane % 8;
  std::uint32_t m[4];
  ptx::ldmatrix<4, false>(m, tile + (n0 + (i / 2) * 8 + r) * ld + k0 + (i % 2) * 8);
  b0[0] = m[0];
  b0[1] = m[1];
  b1[0] = m[2];
  b1[1] = m[3];
}

// B fragments (k0..k0+15) x (n0..n0+7) -> b0 and (n0+8..n0+15) -> b1 of a row-major [k][n]
// tile (V in O = P V). One ldmatrix.x4.trans: matrix i = (rows k0 + 8 (i % 2), columns
// n0 + 8 (i / 2)), transposed, so lane (g, c) gets (k 2c..2c+1, n g).
__device__ __forceinline__ void load_b_kn(std::uint32_t b0[2], std::uint32_t b1[2],
                                          const bf16* tile, int ld, int k0, int n0) {
  const int lane = threadIdx.x % 32, i = lane / 8, r = lane % 8;
  std::uint32_t m[4];
  ptx::ldmatrix<4, true>(m, tile + (k0 + (i % 2) * 8 + r) * ld + n0 + (i / 2) * 8);
  b0[0] = m[0];
  b0[1] = m[1];
  b1[0] = m[2];
  b1[1] = m[3];
}

// The A fragment of a 16x16 block whose columns 0-7 are accumulator `lo` and 8-15 are `hi`
// (a C tile's (g, 2c..2c+1) is exactly the A layout's): P or dS, rounded to bf16.
__device__ __forceinline__ void acc_to_a(std::uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// Columns d and d + 1 (d even) of a bf16 row of hs values, as fp32 (0 past hs): one 4-byte load
// when both lie in the row and the pair is 4-byte aligned (hs even, as in every GPT-2), else
// element by element. The epilogues' accesses: a quad's lanes then cover 16 contiguous bytes.
__device__ __forceinline__ float2 load_pair(const bf16* row, int d, int hs) {
  if (d + 1 < hs && reinterpret_cast<std::uintptr_t>(row + d) % 4 == 0) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(row + d));
  }
  return make_float2(d < hs ? __bfloat162float(row[d]) : 0.0f,
                     d + 1 < hs ? __bfloat162float(row[d + 1]) : 0.0f);
}

// row[d], row[d + 1] = lo, hi rounded to bf16 (columns >= hs untouched), as load_pair reads.
__device__ __forceinline__ void store_pair(bf16* row, int d, int hs, float lo, float hi) {
  if (d + 1 < hs && reinterpret_cast<std::uintptr_t>(row + d) % 4 == 0) {
    *reinterpret_cast<__nv_bfloat162*>(row + d) = __floats2bfloat162_rn(lo, hi);  // .x = lo
    return;
  }
  if (d < hs) row[d] = __float2bfloat16_rn(lo);
  if (d + 1 < hs) row[d + 1] = __float2bfloat16_rn(hi);
}

// Starts staging rows t0..t0+ROWS-1 (zeros past T), columns 0..HS_MAX-1 (zeros past hs) of one
// head (column offset `col` in rows of `row_stride` elements) into dst [ROWS][ld]. `vec`: hs,
// col and row_stride are multiples of 8 and src is 16-byte aligned, so 16-byte cp.async copies
// move the rows, and they land at the caller's ptx::cp_async_wait (after ptx::cp_async_commit);
// otherwise the elements are stored one by one at once. Either way a __syncthreads must come
// before other threads read them. Call from all THREADS threads of the block.
template <int ROWS, int HS_MAX, int THREADS>
__device__ __forceinline__ void stage(bf16* dst, const bf16* src, std::size_t row_stride, int col,
                                      int t0, int T, int hs, bool vec) {
  constexpr int LD = kLd<HS_MAX>;
  if (vec) {
    constexpr int kChunks = HS_MAX / 8;
#pragma unroll
    for (int i = threadIdx.x; i < ROWS * kChunks; i += THREADS) {
      const int r = i / kChunks, d = (i % kChunks) * 8, t = t0 + r;
      const bool valid = t < T && d < hs;
      const bf16* from = valid ? src + static_cast<std::size_t>(t) * row_stride + col + d : src;
      ptx::cp_async_16(dst + r * LD + d, from, valid);
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * HS_MAX; i += THREADS) {
      const int r = i / HS_MAX, d = i % HS_MAX, t = t0 + r;
      dst[r * LD + d] = (t < T && d < hs) ? src[static_cast<std::size_t>(t) * row_stride + col + d]
                                          : __float2bfloat16_rn(0.0f);
    }
  }
}

// Buffer tile % 2 of the forward's and dq kernel's double-buffered key tiles: [Ks | Vs], 64
// rows of kLd<HS_MAX> each.
template <int HS_MAX>
__device__ __forceinline__ bf16* key_buffer(bf16* buffers, int tile) {
  return buffers + (tile % 2) * 2 * kRows * kLd<HS_MAX>;
}

// Starts staging key tile `tile` (keys 64 tile ..) of the head at column head_col: its K and V
// from the (T, 3C) rows of `base` into key_buffer(buffers, tile), as stage() does.
template <int HS_MAX, int THREADS>
__device__ __forceinline__ void stage_key_tile(bf16* buffers, int tile, const bf16* base, int C,
                                               int head_col, int T, int hs, bool vec) {
  bf16* Ks = key_buffer<HS_MAX>(buffers, tile);
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  stage<kRows, HS_MAX, THREADS>(Ks, base, C3, C + head_col, tile * kRows, T, hs, vec);
  stage<kRows, HS_MAX, THREADS>(Ks + kRows * kLd<HS_MAX>, base, C3, 2 * C + head_col,
                                tile * kRows, T, hs, vec);
}

// Whether stage() may use 16-byte loads for tensors of row stride C or 3C at these pointers.
inline bool can_vectorize(int C, int NH, std::initializer_list<const void*> ptrs) {
  if ((C / NH) % 8 != 0 || C % 8 != 0) return false;
  for (const void* p : ptrs) {
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

}  // namespace tc

// Backward row statistics of rows t0..t0+ROWS-1 of one head: Ls = lse (0 past T) and
// Ds = dout_t . out_t = sum_j p_j dp_j (fp32; 0 past T). One warp per row, fixed-order sum.
// Call from all threads of the block; a __syncthreads must follow before reading.
template <int ROWS, typename S>
__device__ __forceinline__ void stage_row_stats(float* Ls, float* Ds, const float* lse_bh,
                                                const S* dout_b, const S* out_b, int C, int col,
                                                int t0, int T, int hs) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < ROWS; r += blockDim.x / 32) {
    const int t = t0 + r;
    float part = 0.0f;
    if (t < T) {
      for (int d = lane; d < hs; d += 32) {
        const std::size_t i = static_cast<std::size_t>(t) * C + col + d;
        part += to_f32(dout_b[i]) * to_f32(out_b[i]);
      }
    }
    part = warp_sum(part);
    if (lane == 0) {
      Ds[r] = part;
      Ls[r] = t < T ? lse_bh[t] : 0.0f;
    }
  }
}

}  // namespace pptrain::kernels::cuda::attention
