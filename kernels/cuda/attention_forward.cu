// Causal self-attention forward on the GPU: flash-style fused kernels, fp32 CUDA-core math for
// fp32 storage and bf16 tensor cores (attention_forward_tc_kernel) for bf16 storage. For one (b, h)
// and a tile of query rows, key tiles are staged in shared memory; each query row keeps an
// online softmax (running max m, running sum l, unnormalised output o) so the (T,T) score
// matrix never exists. It writes out (B,T,C) and lse = m + log l (B,NH,T), from which the
// backward recomputes the probabilities. See attention_common.cuh for layout and tiling.
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

using namespace attention;

// fp32 storage. grid (ceil(T/32), NH, B), kThreads threads, dynamic shared memory
// 3 * 32 * (hs+1) floats.
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(S* out, float* lse, const S* inp, int T, int C, int NH, float scale) {
  constexpr int NI = HS_MAX / 32;  // output dimensions per lane
  float* smem = reinterpret_cast<float*>(ptx::dynamic_shared_memory());
  const int hs = C / NH, ld = hs + 1;
  float* Qs = smem;             // [kTile][ld] the block's query rows
  float* Ks = Qs + kTile * ld;  // [kTile][ld] current key tile
  float* Vs = Ks + kTile * ld;  // [kTile][ld]
  // Causal work grows with the query index: start the longest tiles first.
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const S* base = inp + static_cast<std::size_t>(b) * T * C3;

  stage_tile(Qs, base, C3, h * hs, q0, T, hs);

  float o[kRowsPerWarp][NI], m[kRowsPerWarp], l[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < NI; ++i) o[r][i] = 0.0f;
  }

  const int last_row = min(q0 + kTile, T) - 1;
  for (int k0 = 0; k0 <= last_row; k0 += kTile) {
    __syncthreads();  // the previous key tile is consumed (and, first time, Qs is written)
    stage_tile(Ks, base, C3, C + h * hs, k0, T, hs);
    stage_tile(Vs, base, C3, 2 * C + h * hs, k0, T, hs);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int qr = r * kWarps + warp;
      const int t = q0 + qr;
      if (t >= T || k0 > t) continue;  // uniform across the warp
      // Lane j scores key k0 + j.
      const float* q = Qs + qr * ld;
      const float* k = Ks + lane * ld;
      float dot = 0.0f;
#pragma unroll 4
      for (int d = 0; d < hs; ++d) dot += q[d] * k[d];
      const bool valid = k0 + lane <= t;
      const float score = valid ? dot * scale : -INFINITY;
      // Key k0 <= t is always valid, so m_new is finite; exp(-inf) = 0 rescales the empty start.
      const float m_new = fmaxf(m[r], warp_max(score));
      const float alpha = expf(m[r] - m_new);
      const float p = valid ? expf(score - m_new) : 0.0f;
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = m_new;
#pragma unroll
      for (int i = 0; i < NI; ++i) o[r][i] *= alpha;
      const int nvalid = min(kTile, t - k0 + 1);
      for (int j = 0; j < nvalid; ++j) {
        const float pj = __shfl_sync(0xFFFFFFFFu, p, j);
        const float* v = Vs + j * ld;
#pragma unroll
        for (int i = 0; i < NI; ++i) {
          const int d = lane + 32 * i;
          if (d < hs) o[r][i] += pj * v[d];
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = q0 + r * kWarps + warp;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    S* out_t = out + (static_cast<std::size_t>(b) * T + t) * C + h * hs;
#pragma unroll
    for (int i = 0; i < NI; ++i) {
      const int d = lane + 32 * i;
      if (d < hs) out_t[d] = from_f32<S>(o[r][i] * inv);
    }
    if (lane == 0) lse[(static_cast<std::size_t>(b) * NH + h) * T + t] = m[r] + logf(l[r]);
  }
}

// s = scale_log2 s over one m-tile's 16 x NS*8 scores (rows row0 and row0 + 8, keys key0 +
// n * 8 + (e & 1)), -inf where MASKED and key > row (which also masks keys >= T for real rows),
// and mx = the running max of each row over this thread's elements. MASKED false: a tile wholly
// inside the causal triangle, without the mask's index arithmetic and compares (same values).
template <bool MASKED, int NS>
__device__ __forceinline__ void scale_and_max(float s[NS][4], float mx[2], float scale_log2,
                                              int key0, int row0) {
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const bool valid = !MASKED || key0 + n * 8 + (e & 1) <= row0 + 8 * (e >> 1);
      s[n][e] = valid ? s[n][e] * scale_log2 : -INFINITY;
      mx[e >> 1] = fmaxf(mx[e >> 1], s[n][e]);
    }
  }
}

// bf16 storage, tensor cores. WARPS warps of MT 16-row m-tiles each: a block owns
// QROWS = 16 WARPS MT query rows (AttentionTiling; the default 4 warps x 2 m-tiles at hs <= 64
// lets each K and V fragment loaded from shared memory feed two mma, as shared memory, not the
// tensor cores, bounds this kernel; hs > 64 runs 4 x 1 to stay in registers).
// grid (ceil(T/QROWS), NH, B), 32 WARPS threads; dynamic shared memory Qs ([QROWS][HS_MAX + 8]
// bf16) then two key buffers of [Ks | Vs] ([64][HS_MAX + 8] each). Warp w owns the m-tiles at
// query rows q0 + 16 (WARPS mt + w) (mt < MT); per key tile of 64 it computes S (16x64 per
// m-tile) = Q K^T with 8 n-tiles x HS_MAX/16 k-steps of mma, updates the online softmax in fp32
// registers (log2 domain: x = scale log2(e) q.k), then O (16xHS_MAX) += P V with P rounded to
// bf16. Thread (g, c) holds rows g and g+8 of each m-tile; a row's max and sum are combined over
// the 4 lanes of a quad at fixed xor distances. Key tile i + 1 is staged (cp.async) while tile i
// is used. A row's arithmetic does not depend on WARPS or MT (a key tile wholly past a row adds
// exact zeros), so every shape gives bitwise the same out and lse.
template <int HS_MAX, int WARPS, int MT>
__global__ void __launch_bounds__(WARPS * 32)
    attention_forward_tc_kernel(bf16* out, float* lse, const bf16* inp, int T, int C, int NH,
                                float scale_log2, bool vec) {
  constexpr int THREADS = WARPS * 32, MT_ROWS = WARPS * 16, QROWS = MT * MT_ROWS;
  constexpr int LD = tc::kLd<HS_MAX>, NKD = HS_MAX / 16, NO = HS_MAX / 8, NS = tc::kRows / 8;
  unsigned char* smem_raw = ptx::dynamic_shared_memory();
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* key_buffers = Qs + QROWS * LD;  // buffer j: Ks = key_buffers + 2j tiles, Vs after it
  const int hs = C / NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * QROWS;  // longest (last) query tiles first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const bf16* base = inp + static_cast<std::size_t>(b) * T * C3;
  auto stage_keys = [&](int tile) {
    tc::stage_key_tile<HS_MAX, THREADS>(key_buffers, tile, base, C, h * hs, T, hs, vec);
  };

  tc::stage<QROWS, HS_MAX, THREADS>(Qs, base, C3, h * hs, q0, T, hs, vec);
  stage_keys(0);
  ptx::cp_async_commit();

  // l: this lane's part of the row sums.
  float o[MT][NO][4] = {}, m[MT][2], l[MT][2] = {};
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY;
  // Key tiles up to the one holding the block's last real row. Every row (padding rows >= T
  // included) has key 0 unmasked in the first tile, so m is finite from then on.
  const int tiles = (min(q0 + QROWS, T) - 1) / tc::kRows + 1;
  const int warp_last_row = q0 + (MT - 1) * MT_ROWS + warp * 16 + 15;
  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * tc::kRows;
    if (tile + 1 < tiles) stage_keys(tile + 1);  // into the buffer the last iteration finished
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // this thread's copies of Q and of this tile have landed
    __syncthreads();          // ... and everyone else's
    const bf16* Ks = tc::key_buffer<HS_MAX>(key_buffers, tile);
    const bf16* Vs = Ks + tc::kRows * LD;

    // A key tile wholly past the warp's last row (8 warps: its first half, at the block's
    // last tile) would add exact zeros: skip it (uniform across the warp).
    if (k0 <= warp_last_row) {
      float s[MT][NS][4] = {};
#pragma unroll
      for (int kd = 0; kd < NKD; ++kd) {
        std::uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          tc::load_a(a[mt], Qs, LD, mt * MT_ROWS + warp * 16, kd * 16);
#pragma unroll
        for (int n = 0; n < NS; n += 2) {
          std::uint32_t bk0[2], bk1[2];
          tc::load_b_nk(bk0, bk1, Ks, LD, n * 8, kd * 16);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            tc::mma(s[mt][n], a[mt], bk0);
            tc::mma(s[mt][n + 1], a[mt], bk1);
          }
        }
      }

#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int row0 = q0 + mt * MT_ROWS + warp * 16 + g;  // rows row0 and row0 + 8
        float mx[2] = {m[mt][0], m[mt][1]};
        const int key0 = k0 + 2 * c;  // this thread's keys: key0 + n * 8 + (e & 1)
        if (k0 + tc::kRows - 1 <= row0 - g) {  // every key <= every row of the m-tile
          scale_and_max<false, NS>(s[mt], mx, scale_log2, key0, row0);
        } else {
          scale_and_max<true, NS>(s[mt], mx, scale_log2, key0, row0);
        }
        float alpha[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 1));
          mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 2));
          alpha[i] = exp2f(m[mt][i] - mx[i]);  // 0 on the first tile (m = -inf)
          m[mt][i] = mx[i];
          l[mt][i] *= alpha[i];
        }
#pragma unroll
        for (int n = 0; n < NS; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[mt][n][e] = exp2f(s[mt][n][e] - m[mt][e >> 1]);
            l[mt][e >> 1] += s[mt][n][e];  // fp32 p; only P V uses the bf16-rounded p
          }
        }
#pragma unroll
        for (int j = 0; j < NO; ++j) {
          o[mt][j][0] *= alpha[0];
          o[mt][j][1] *= alpha[0];
          o[mt][j][2] *= alpha[1];
          o[mt][j][3] *= alpha[1];
        }
      }
#pragma unroll
      for (int kk = 0; kk < NS / 2; ++kk) {  // 16 keys per k-step
        std::uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) tc::acc_to_a(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
        for (int j = 0; j < NO; j += 2) {
          std::uint32_t bv0[2], bv1[2];
          tc::load_b_kn(bv0, bv1, Vs, LD, kk * 16, j * 8);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            tc::mma(o[mt][j], a[mt], bv0);
            tc::mma(o[mt][j + 1], a[mt], bv1);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is staged into again
  }

#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      l[mt][i] += __shfl_xor_sync(0xFFFFFFFFu, l[mt][i], 1);
      l[mt][i] += __shfl_xor_sync(0xFFFFFFFFu, l[mt][i], 2);
      const int t = q0 + mt * MT_ROWS + warp * 16 + g + 8 * i;
      if (t >= T) continue;
      const float inv = 1.0f / l[mt][i];
      bf16* out_t = out + (static_cast<std::size_t>(b) * T + t) * C + h * hs;
#pragma unroll
      for (int j = 0; j < NO; ++j) {
        tc::store_pair(out_t, j * 8 + 2 * c, hs, o[mt][j][2 * i] * inv, o[mt][j][2 * i + 1] * inv);
      }
      if (c == 0) {
        lse[(static_cast<std::size_t>(b) * NH + h) * T + t] = m[mt][i] * tc::kLn2 + logf(l[mt][i]);
      }
    }
  }
}

}  // namespace

void attention_forward(void* out, float* lse, const void* inp, int B, int T, int C, int NH,
                       DType dt, Stream stream, const AttentionTiling& tiling) {
  checks::attention_shape("attention_forward", B, T, C, NH);
  checks::attention_tiling("attention_forward", tiling);
  if (B == 0 || T == 0) return;
  const int hs = C / NH;
  const cudaStream_t s = to_cuda(stream);
  if (dt == DType::BF16) {
    const bool vec = tc::can_vectorize(C, NH, {inp});
    dispatch_head_size(hs, [&](auto hs_max) {
      constexpr int kHsMax = decltype(hs_max)::value;
      auto run = [&](auto warps, auto row_tiles) {
        constexpr int kBlockWarps = decltype(warps)::value, kMt = decltype(row_tiles)::value;
        constexpr int kQRows = kBlockWarps * 16 * kMt;
        const dim3 grid((T + kQRows - 1) / kQRows, NH, B);
        const std::size_t smem =
            tc::tile_bytes<kHsMax>(kQRows) + 4 * tc::tile_bytes<kHsMax>(tc::kRows);
        auto kernel = attention_forward_tc_kernel<kHsMax, kBlockWarps, kMt>;
        launch_kernel(kernel, grid, kBlockWarps * 32, smem, s, static_cast<bf16*>(out), lse,
                      static_cast<const bf16*>(inp), T, C, NH, softmax_scale(hs) * tc::kLog2e,
                      vec);
      };
      if constexpr (kHsMax > 64) {  // one shape: one m-tile per warp stays in registers
        run(Int<4>{}, Int<1>{});
      } else {
        dispatch_either<4, 8>(tiling.forward_warps, [&](auto warps) {
          dispatch_either<2, 1>(tiling.forward_row_tiles,
                                [&](auto row_tiles) { run(warps, row_tiles); });
        });
      }
    });
    return;
  }
  const std::size_t smem = 3 * kTile * static_cast<std::size_t>(hs + 1) * sizeof(float);
  const dim3 grid((T + kTile - 1) / kTile, NH, B);
  dispatch_head_size(hs, [&](auto hs_max) {
    auto kernel = attention_forward_kernel<float, decltype(hs_max)::value>;
    launch_kernel(kernel, grid, kThreads, smem, s, static_cast<float*>(out), lse,
                  static_cast<const float*>(inp), T, C, NH, softmax_scale(hs));
  });
}

}  // namespace pptrain::kernels::cuda
