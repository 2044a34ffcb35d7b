// Causal self-attention backward on the GPU, flash-style: probabilities are recomputed from q, k
// and the forward's lse, p = exp(scale q.k - lse), never read from a stored (T,T) matrix. With
// D_t = dout_t . out_t (= sum_j p_j dp_j) and dp_j = dout_t . v_j:
//   ds_j = p_j (dp_j - D_t),  dq_t += scale sum_j ds_j k_j,
//   dk_j += scale sum_t ds_j q_t,  dv_j += sum_t p_j dout_t.
// Two kernels, so every output element has exactly one owner and no atomics are needed (and
// with accumulate false each writes its elements without reading them):
//   dq:  a block per (query tile, h, b) walks the key tiles at or before it (like the forward);
//   dkv: a block per (key tile, h, b) walks the query tiles at or after it.
// Both recompute the scores (about 2x the forward's work in dot products). fp32: D is recomputed
// per tile from dout and out (hs multiply-adds per row and tile); bf16: the dq kernel computes it
// once per row and leaves it for the dk/dv kernel in a (B,NH,2,Tp) scratch (below).
// fp32 storage runs the CUDA-core kernels (attention_backward_fp32.cuh); bf16 storage the
// tensor-core kernels below (bf16 tiles in shared memory, mma.sync with fp32 accumulators).
#include "kernels/cuda/attention_backward_fp32.cuh"
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

using namespace attention;

// ---- bf16 storage: tensor-core kernels (fragment layouts in kernels/cuda/warp_mma.cuh) ----
// p = exp2(scale log2(e) q.k - log2(e) lse) for key <= t < T, else 0; ds = p (dp - D).
// The dq kernel runs first and leaves each query row's (log2(e) lse, D) in `stats`,
// [B*NH][2][Tp] fp32 (zeros past T), which the dk/dv kernel then stages per tile with
// cp.async instead of recomputing D from dout and out for every (key tile, query tile) pair.

// In place over a warp's 16 x NS*8 tile of scores s and dp: s = p, dp = ds = p (dp - D), with
// p = exp2(s scale_log2 - l2(n, e)) where valid(n, e), else 0 (n-tile n, accumulator element e;
// l2 and d give the element's row or column statistics). MASKED false skips valid(): for tiles
// wholly inside the causal triangle (and before T), where it holds everywhere, which saves the
// index arithmetic and compares of every element; the arithmetic of the valid ones is the same.
template <bool MASKED, int NS, typename L2, typename D, typename Valid>
__device__ __forceinline__ void probabilities_and_ds(float s[NS][4], float dp[NS][4],
                                                     float scale_log2, L2 l2, D d, Valid valid) {
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float p = !MASKED || valid(n, e) ? exp2f(s[n][e] * scale_log2 - l2(n, e)) : 0.0f;
      s[n][e] = p;
      dp[n][e] = p * (dp[n][e] - d(n, e));
    }
  }
}

// Tp: T rounded up to 128, the most query rows a dq block owns (8 warps), so every block's
// stats rows exist.
constexpr int kStatsRowMultiple = 128;
__host__ __device__ inline int padded_rows(int T) {
  return (T + kStatsRowMultiple - 1) / kStatsRowMultiple * kStatsRowMultiple;
}

// The A fragments of the warp's 16 rows m0.. of X and Y, the block's own tiles (Q and dO in the
// dq kernel, K and V in the dk/dv kernel), which stay in shared memory for the whole kernel.
// HOLD false: loaded from shared memory at every use. HOLD true (AttentionTiling::
// hold_row_fragments): loaded once, after the tiles have landed, into 2 x HS_MAX/16 x 4 more
// registers, which saves 2 HS_MAX/16 ldmatrix.x4 per tile pair.
template <int HS_MAX, bool HOLD>
struct RowFragments {
  static constexpr int kSteps = HS_MAX / 16, LD = tc::kLd<HS_MAX>;
  const bf16* X;
  const bf16* Y;
  int m0;
  std::uint32_t x[HOLD ? kSteps : 1][4], y[HOLD ? kSteps : 1][4];

  __device__ __forceinline__ RowFragments(const bf16* X_, const bf16* Y_, int m0_)
      : X(X_), Y(Y_), m0(m0_) {}
  __device__ __forceinline__ void load_once() {
    if constexpr (HOLD) {
#pragma unroll
      for (int kd = 0; kd < kSteps; ++kd) {
        tc::load_a(x[kd], X, LD, m0, kd * 16);
        tc::load_a(y[kd], Y, LD, m0, kd * 16);
      }
    }
  }
  __device__ __forceinline__ void get(int kd, std::uint32_t ax[4], std::uint32_t ay[4]) const {
    if constexpr (HOLD) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        ax[i] = x[kd][i];
        ay[i] = y[kd][i];
      }
    } else {
      tc::load_a(ax, X, LD, m0, kd * 16);
      tc::load_a(ay, Y, LD, m0, kd * 16);
    }
  }
};

// s = X P^T and dp = Y Q^T for the warp's 16 rows of X and Y (`rows`) against all NS*8 rows of P
// and Q (tiles of [rows][HS_MAX + 8] bf16 in shared memory, zero past hs, so k runs to HS_MAX):
// the dq kernel's scores and dP (X, Y = Q, dO; P, Q = K, V) and the dk/dv kernel's, transposed
// (X, Y = K, V; P, Q = Q, dO). Each B fragment pair is one ldmatrix.x4 and feeds two mma.
template <int HS_MAX, int NS, bool HOLD>
__device__ __forceinline__ void scores_and_dp(float s[NS][4], float dp[NS][4],
                                              const RowFragments<HS_MAX, HOLD>& rows,
                                              const bf16* P, const bf16* Q) {
  constexpr int LD = tc::kLd<HS_MAX>, NKD = HS_MAX / 16;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
  }
#pragma unroll
  for (int kd = 0; kd < NKD; ++kd) {
    std::uint32_t ax[4], ay[4];
    rows.get(kd, ax, ay);
#pragma unroll
    for (int n = 0; n < NS; n += 2) {
      std::uint32_t bp0[2], bp1[2], bq0[2], bq1[2];
      tc::load_b_nk(bp0, bp1, P, LD, n * 8, kd * 16);
      tc::mma(s[n], ax, bp0);
      tc::mma(s[n + 1], ax, bp1);
      tc::load_b_nk(bq0, bq1, Q, LD, n * 8, kd * 16);
      tc::mma(dp[n], ay, bq0);
      tc::mma(dp[n + 1], ay, bq1);
    }
  }
}

// grid (ceil(T/QROWS), NH, B) with QROWS = 16 WARPS query rows per block, 32 WARPS threads;
// shared: Qs, dOs ([QROWS][HS_MAX+8] bf16 each), then two key buffers of [Ks | Vs] ([64][HS_MAX+8]
// each), then Ls, Ds [QROWS] fp32. Warp w owns query rows q0+16w..+15 and, per key tile of 64,
// computes S = Q K^T and dP = dO V^T (16x64 each), then dQ (16xHS_MAX) += dS K with dS rounded to
// bf16; dinp's q part += scale dQ at the end. Key tile i + 1 is staged while tile i is used.
// A row's arithmetic does not depend on WARPS (tiles wholly past a warp's rows are skipped: they
// would add exact zeros), so both shapes give bitwise the same dq and stats.
template <int HS_MAX, int WARPS, int HOLD>
__global__ void __launch_bounds__(WARPS * 32)
    attention_backward_dq_tc_kernel(bf16* dinp, float* stats, const bf16* dout, const bf16* inp,
                                    const bf16* out, const float* lse, int T, int C, int NH,
                                    float scale, bool vec, bool accumulate) {
  constexpr int THREADS = WARPS * 32, QROWS = WARPS * 16;
  constexpr int LD = tc::kLd<HS_MAX>, NO = HS_MAX / 8, NS = tc::kRows / 8;
  unsigned char* smem_raw = ptx::dynamic_shared_memory();
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);
  bf16* dOs = Qs + QROWS * LD;
  bf16* key_buffers = dOs + QROWS * LD;  // buffer j: Ks = key_buffers + 2j tiles, Vs after it
  float* Ls = reinterpret_cast<float*>(key_buffers + 4 * tc::kRows * LD);
  float* Ds = Ls + QROWS;
  const int hs = C / NH;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * QROWS;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const bf16* base = inp + static_cast<std::size_t>(b) * T * C3;
  const bf16* dout_b = dout + static_cast<std::size_t>(b) * T * C;
  const float scale_log2 = scale * tc::kLog2e;
  const int r0 = warp * 16 + g;  // this thread's tile rows: r0 and r0 + 8
  auto stage_keys = [&](int tile) {
    tc::stage_key_tile<HS_MAX, THREADS>(key_buffers, tile, base, C, h * hs, T, hs, vec);
  };

  tc::stage<QROWS, HS_MAX, THREADS>(Qs, base, C3, h * hs, q0, T, hs, vec);
  tc::stage<QROWS, HS_MAX, THREADS>(dOs, dout_b, C, h * hs, q0, T, hs, vec);
  stage_keys(0);
  ptx::cp_async_commit();
  // While those land: lse and D of this tile's rows, kept for the dk/dv kernel too.
  const std::size_t bh = static_cast<std::size_t>(b) * NH + h;
  stage_row_stats<QROWS>(Ls, Ds, lse + bh * T, dout_b, out + static_cast<std::size_t>(b) * T * C,
                         C, h * hs, q0, T, hs);
  __syncthreads();
  const int Tp = padded_rows(T);
  for (int r = threadIdx.x; r < QROWS; r += THREADS) {
    stats[bh * 2 * Tp + q0 + r] = Ls[r] * tc::kLog2e;
    stats[(bh * 2 + 1) * Tp + q0 + r] = Ds[r];
  }
  const float L2[2] = {Ls[r0] * tc::kLog2e, Ls[r0 + 8] * tc::kLog2e};
  const float Dr[2] = {Ds[r0], Ds[r0 + 8]};

  float dq[NO][4] = {};
  RowFragments<HS_MAX, HOLD != 0> own_rows{Qs, dOs, warp * 16};
  // Key tiles up to the one holding the block's last real row.
  const int tiles = (min(q0 + QROWS, T) - 1) / tc::kRows + 1;
  const int warp_last_row = q0 + warp * 16 + 15;
  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * tc::kRows;
    if (tile + 1 < tiles) stage_keys(tile + 1);  // into the buffer the last iteration finished
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // this thread's copies of Q, dO and this tile have landed
    __syncthreads();          // ... and everyone else's
    const bf16* Ks = tc::key_buffer<HS_MAX>(key_buffers, tile);
    const bf16* Vs = Ks + tc::kRows * LD;
    if (tile == 0) own_rows.load_once();
    // Skip a tile wholly past the warp's rows (uniform across the warp).
    if (k0 <= warp_last_row) {
      float s[NS][4], dp[NS][4];
      scores_and_dp<HS_MAX, NS>(s, dp, own_rows, Ks, Vs);
      auto l2 = [&](int, int e) { return L2[e >> 1]; };
      auto d = [&](int, int e) { return Dr[e >> 1]; };
      // key <= t also excludes keys >= T for real rows; rows >= T are never stored.
      auto valid = [&](int n, int e) {
        return k0 + n * 8 + 2 * c + (e & 1) <= q0 + r0 + 8 * (e >> 1);
      };
      if (k0 + tc::kRows - 1 <= q0 + warp * 16) {  // every key <= every row of the warp
        probabilities_and_ds<false, NS>(s, dp, scale_log2, l2, d, valid);
      } else {
        probabilities_and_ds<true, NS>(s, dp, scale_log2, l2, d, valid);
      }
#pragma unroll
      for (int kk = 0; kk < NS / 2; ++kk) {  // 16 keys per k-step
        std::uint32_t a[4];
        tc::acc_to_a(a, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
        for (int j = 0; j < NO; j += 2) {
          std::uint32_t bk0[2], bk1[2];
          tc::load_b_kn(bk0, bk1, Ks, LD, kk * 16, j * 8);
          tc::mma(dq[j], a, bk0);
          tc::mma(dq[j + 1], a, bk1);
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is staged into again
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int t = q0 + r0 + 8 * i;
    if (t >= T) continue;
    bf16* dq_t = dinp + (static_cast<std::size_t>(b) * T + t) * C3 + h * hs;
#pragma unroll
    for (int j = 0; j < NO; ++j) {
      const int d = j * 8 + 2 * c;
      const float2 old = accumulate ? tc::load_pair(dq_t, d, hs) : make_float2(0.0f, 0.0f);
      tc::store_pair(dq_t, d, hs, old.x + scale * dq[j][2 * i], old.y + scale * dq[j][2 * i + 1]);
    }
  }
}

// grid (ceil(T/KROWS), NH, B) with KROWS = 16 WARPS keys per block, 32 WARPS threads; shared:
// Ks, Vs ([KROWS][HS_MAX+8] bf16 each: the block's keys), then two query buffers of [Qs | dOs]
// ([QT][HS_MAX+8] each), then two of [L2s | Ds] ([QT] fp32 each: log2(e) lse and D, from the dq
// kernel's stats).
// Warp w owns keys k0+16w..+15 and, per query tile, computes S^T = K Q^T and dP^T = V dO^T
// (16xQT each), then dV += P^T dO and dK += dS^T Q (16xHS_MAX, P and dS rounded to bf16); dinp's
// k part += scale dK and v part += dV at the end. Query tile i + 1 is staged while tile i is
// used. Queries are summed 16 at a time in ascending order whatever WARPS and QT are (tiles
// wholly before a warp's keys are skipped: they would add exact zeros), so every shape gives
// bitwise the same dk and dv. QT = 32 at HS_MAX = 128 keeps dK, dV, S and dP in registers.
template <int HS_MAX, int WARPS, int QT, int HOLD>
__global__ void __launch_bounds__(WARPS * 32)
    attention_backward_dkv_tc_kernel(bf16* dinp, const float* stats, const bf16* dout,
                                     const bf16* inp, int T, int C, int NH, float scale, bool vec,
                                     bool accumulate) {
  constexpr int THREADS = WARPS * 32, KROWS = WARPS * 16;
  constexpr int LD = tc::kLd<HS_MAX>, NO = HS_MAX / 8, NS = QT / 8;
  unsigned char* smem_raw = ptx::dynamic_shared_memory();
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw);
  bf16* Vs = Ks + KROWS * LD;
  bf16* query_buffers = Vs + KROWS * LD;  // buffer j: Qs = query_buffers + 2j QT-row tiles
  float* stat_buffers = reinterpret_cast<float*>(query_buffers + 4 * QT * LD);  // j: L2s, Ds
  const int hs = C / NH;
  const int k0 = blockIdx.x * KROWS;  // the first key tiles see the most queries: start them first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const bf16* base = inp + static_cast<std::size_t>(b) * T * C3;
  const bf16* dout_b = dout + static_cast<std::size_t>(b) * T * C;
  const std::size_t bh = static_cast<std::size_t>(b) * NH + h;
  const int Tp = padded_rows(T);
  const float* l2_bh = stats + bh * 2 * Tp;  // log2(e) lse
  const float* D_bh = l2_bh + Tp;
  const float scale_log2 = scale * tc::kLog2e;
  const int key0 = k0 + warp * 16 + g;  // this thread's keys: key0 and key0 + 8
  // Query tiles from the key tile on (causality: t >= key); QT divides KROWS, so they stay
  // aligned, and q0 + QT <= T rounded up to 64 <= Tp, so the stats rows exist (16-byte aligned:
  // Tp and q0 are multiples of 32).
  auto stage_queries = [&](int tile) {
    const int q0 = k0 + tile * QT;
    bf16* Qs = query_buffers + (tile % 2) * 2 * QT * LD;
    tc::stage<QT, HS_MAX, THREADS>(Qs, base, C3, h * hs, q0, T, hs, vec);
    tc::stage<QT, HS_MAX, THREADS>(Qs + QT * LD, dout_b, C, h * hs, q0, T, hs, vec);
    float* L2s = stat_buffers + (tile % 2) * 2 * QT;
    for (int i = threadIdx.x; i < 2 * QT / 4; i += THREADS) {  // QT/4 16-byte chunks of each
      const int part = i / (QT / 4), r = (i % (QT / 4)) * 4;
      ptx::cp_async_16(L2s + part * QT + r, (part == 0 ? l2_bh : D_bh) + q0 + r, true);
    }
  };

  tc::stage<KROWS, HS_MAX, THREADS>(Ks, base, C3, C + h * hs, k0, T, hs, vec);
  tc::stage<KROWS, HS_MAX, THREADS>(Vs, base, C3, 2 * C + h * hs, k0, T, hs, vec);
  stage_queries(0);
  ptx::cp_async_commit();

  float dk[NO][4] = {}, dv[NO][4] = {};
  RowFragments<HS_MAX, HOLD != 0> own_rows{Ks, Vs, warp * 16};
  const int tiles = (T - k0 + QT - 1) / QT;
  for (int tile = 0; tile < tiles; ++tile) {
    const int q0 = k0 + tile * QT;
    if (tile + 1 < tiles) stage_queries(tile + 1);  // into the buffer the last iteration finished
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // this thread's copies of K, V and this tile have landed
    __syncthreads();          // ... and everyone else's
    const bf16* Qs = query_buffers + (tile % 2) * 2 * QT * LD;
    const bf16* dOs = Qs + QT * LD;
    const float* L2s = stat_buffers + (tile % 2) * 2 * QT;  // log2(e) lse
    const float* Ds = L2s + QT;
    if (tile == 0) own_rows.load_once();
    // Skip a tile wholly before the warp's keys (uniform across the warp).
    if (q0 + QT > k0 + warp * 16) {
      float s[NS][4], dp[NS][4];
      scores_and_dp<HS_MAX, NS>(s, dp, own_rows, Qs, dOs);
      // Query qr = n * 8 + 2c + (e & 1) of the tile: its (log2(e) lse, D) pair for e and e ^ 1
      // in one 8-byte load.
      auto l2 = [&](int n, int e) {
        const float2 v = *reinterpret_cast<const float2*>(L2s + n * 8 + 2 * c);
        return (e & 1) ? v.y : v.x;
      };
      auto d = [&](int n, int e) {
        const float2 v = *reinterpret_cast<const float2*>(Ds + n * 8 + 2 * c);
        return (e & 1) ? v.y : v.x;
      };
      auto valid = [&](int n, int e) {
        const int t = q0 + n * 8 + 2 * c + (e & 1);
        return t >= key0 + 8 * (e >> 1) && t < T;
      };
      if (q0 >= k0 + warp * 16 + 15 && q0 + QT <= T) {  // every query >= every key, and < T
        probabilities_and_ds<false, NS>(s, dp, scale_log2, l2, d, valid);
      } else {
        probabilities_and_ds<true, NS>(s, dp, scale_log2, l2, d, valid);
      }
#pragma unroll
      for (int kk = 0; kk < NS / 2; ++kk) {  // 16 queries per k-step
        std::uint32_t ap[4], ads[4];
        tc::acc_to_a(ap, s[2 * kk], s[2 * kk + 1]);
        tc::acc_to_a(ads, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
        for (int j = 0; j < NO; j += 2) {
          std::uint32_t bdy0[2], bdy1[2], bq0[2], bq1[2];
          tc::load_b_kn(bdy0, bdy1, dOs, LD, kk * 16, j * 8);
          tc::mma(dv[j], ap, bdy0);
          tc::mma(dv[j + 1], ap, bdy1);
          tc::load_b_kn(bq0, bq1, Qs, LD, kk * 16, j * 8);
          tc::mma(dk[j], ads, bq0);
          tc::mma(dk[j + 1], ads, bq1);
        }
      }
    }
    __syncthreads();  // every warp is done with this buffer before it is staged into again
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int key = key0 + 8 * i;
    if (key >= T) continue;
    bf16* row = dinp + (static_cast<std::size_t>(b) * T + key) * C3 + h * hs;
#pragma unroll
    for (int j = 0; j < NO; ++j) {
      const int d = j * 8 + 2 * c;
      const float2 zero = make_float2(0.0f, 0.0f);
      const float2 k_old = accumulate ? tc::load_pair(row + C, d, hs) : zero;
      const float2 v_old = accumulate ? tc::load_pair(row + 2 * C, d, hs) : zero;
      tc::store_pair(row + C, d, hs, k_old.x + scale * dk[j][2 * i],
                     k_old.y + scale * dk[j][2 * i + 1]);
      tc::store_pair(row + 2 * C, d, hs, v_old.x + dv[j][2 * i], v_old.y + dv[j][2 * i + 1]);
    }
  }
}

}  // namespace

void attention_backward(void* dinp, const void* dout, const void* inp, const void* out,
                        const float* lse, int B, int T, int C, int NH, DType dt, Stream stream,
                        bool accumulate, const AttentionTiling& tiling) {
  checks::attention_shape("attention_backward", B, T, C, NH);
  checks::attention_tiling("attention_backward", tiling);
  if (B == 0 || T == 0) return;
  const int hs = C / NH;
  const cudaStream_t s = to_cuda(stream);
  const float scale = softmax_scale(hs);
  if (dt == DType::BF16) {
    bf16* dx = static_cast<bf16*>(dinp);
    const bf16* dy = static_cast<const bf16*>(dout);
    const bf16* x = static_cast<const bf16*>(inp);
    const bf16* y = static_cast<const bf16*>(out);
    const bool vec = tc::can_vectorize(C, NH, {inp, dout});
    StreamScratch<float> stats(static_cast<std::size_t>(B) * NH * 2 * padded_rows(T), s);
    dispatch_head_size(hs, [&](auto hs_max) {
      constexpr int kHsMax = decltype(hs_max)::value;
      auto run_dq = [&](auto warps, auto hold) {
        constexpr int kBlockWarps = decltype(warps)::value, kQRows = kBlockWarps * 16;
        const std::size_t smem = 2 * tc::tile_bytes<kHsMax>(kQRows) +
                                 4 * tc::tile_bytes<kHsMax>(tc::kRows) + 2 * kQRows * sizeof(float);
        const dim3 grid((T + kQRows - 1) / kQRows, NH, B);
        auto kernel = attention_backward_dq_tc_kernel<kHsMax, kBlockWarps, decltype(hold)::value>;
        launch_kernel(kernel, grid, kBlockWarps * 32, smem, s, dx, stats.get(), dy, x, y, lse, T,
                      C, NH, scale, vec, accumulate);
      };
      auto run_dkv = [&](auto warps, auto query_rows, auto hold) {
        constexpr int kBlockWarps = decltype(warps)::value, kKRows = kBlockWarps * 16;
        constexpr int kQt = decltype(query_rows)::value;
        const std::size_t smem = 2 * tc::tile_bytes<kHsMax>(kKRows) +
                                 4 * tc::tile_bytes<kHsMax>(kQt) + 4 * kQt * sizeof(float);
        const dim3 grid((T + kKRows - 1) / kKRows, NH, B);
        auto kernel =
            attention_backward_dkv_tc_kernel<kHsMax, kBlockWarps, kQt, decltype(hold)::value>;
        launch_kernel(kernel, grid, kBlockWarps * 32, smem, s, dx, stats.get(), dy, x, T, C, NH,
                      scale, vec, accumulate);
      };
      if constexpr (kHsMax > 64) {  // one shape: 32-query dk/dv tiles keep it in registers
        run_dq(Int<4>{}, Int<0>{});
        run_dkv(Int<4>{}, Int<32>{}, Int<0>{});
      } else {
        dispatch_either<1, 0>(tiling.hold_row_fragments, [&](auto hold) {
          dispatch_either<4, 8>(tiling.dq_warps, [&](auto warps) { run_dq(warps, hold); });
          dispatch_either<4, 8>(tiling.dkv_warps, [&](auto warps) {
            dispatch_either<64, 32>(tiling.dkv_query_rows,
                                    [&](auto query_rows) { run_dkv(warps, query_rows, hold); });
          });
        });
      }
    });
    return;
  }
  const std::size_t tile_bytes = kTile * static_cast<std::size_t>(hs + 1) * sizeof(float);
  const std::size_t smem_dq = 4 * tile_bytes;
  const std::size_t smem_dkv = 4 * tile_bytes + 2 * kTile * sizeof(float);
  const dim3 grid((T + kTile - 1) / kTile, NH, B);
  float* dx = static_cast<float*>(dinp);
  const float* dy = static_cast<const float*>(dout);
  const float* x = static_cast<const float*>(inp);
  const float* y = static_cast<const float*>(out);
  dispatch_head_size(hs, [&](auto hs_max) {
    constexpr int kHsMax = decltype(hs_max)::value;
    auto dq_kernel = attention_backward_dq_kernel<float, kHsMax>;
    launch_kernel(dq_kernel, grid, kThreads, smem_dq, s, dx, dy, x, y, lse, T, C, NH, scale,
                  accumulate);
    auto dkv_kernel = attention_backward_dkv_kernel<float, kHsMax>;
    launch_kernel(dkv_kernel, grid, kThreads, smem_dkv, s, dx, dy, x, y, lse, T, C, NH, scale,
                  accumulate);
  });
}

}  // namespace pptrain::kernels::cuda
