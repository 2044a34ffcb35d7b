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
// fp32 storage runs the CUDA-core kernels (tiles of 32, fp32 in shared memory); bf16 storage the
// tensor-core kernels (tiles of 64, bf16 in shared memory, mma.sync with fp32 accumulators).
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

using namespace attention;

// fp32 storage. grid (ceil(T/32), NH, B); shared: Qs, dOs, Ks, Vs, each [kTile][hs+1] floats.
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(S* dinp, const S* dout, const S* inp, const S* out,
                                 const float* lse, int T, int C, int NH, float scale,
                                 bool accumulate) {
  constexpr int NI = HS_MAX / 32;
  float* smem = reinterpret_cast<float*>(ptx::dynamic_shared_memory());
  const int hs = C / NH, ld = hs + 1;
  float* Qs = smem;
  float* dOs = Qs + kTile * ld;
  float* Ks = dOs + kTile * ld;
  float* Vs = Ks + kTile * ld;
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kTile;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const S* base = inp + static_cast<std::size_t>(b) * T * C3;
  const S* dout_b = dout + static_cast<std::size_t>(b) * T * C;
  const S* out_b = out + static_cast<std::size_t>(b) * T * C;
  const float* lse_bh = lse + (static_cast<std::size_t>(b) * NH + h) * T;

  stage_tile(Qs, base, C3, h * hs, q0, T, hs);
  stage_tile(dOs, dout_b, C, h * hs, q0, T, hs);

  float dq[kRowsPerWarp][NI], L[kRowsPerWarp], D[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = q0 + r * kWarps + warp;
    float part = 0.0f;
    if (t < T) {
      for (int d = lane; d < hs; d += 32) {
        const std::size_t i = static_cast<std::size_t>(t) * C + h * hs + d;
        part += to_f32(dout_b[i]) * to_f32(out_b[i]);
      }
    }
    D[r] = warp_sum(part);
    L[r] = t < T ? lse_bh[t] : 0.0f;
#pragma unroll
    for (int i = 0; i < NI; ++i) dq[r][i] = 0.0f;
  }

  const int last_row = min(q0 + kTile, T) - 1;
  for (int k0 = 0; k0 <= last_row; k0 += kTile) {
    __syncthreads();
    stage_tile(Ks, base, C3, C + h * hs, k0, T, hs);
    stage_tile(Vs, base, C3, 2 * C + h * hs, k0, T, hs);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int qr = r * kWarps + warp;
      const int t = q0 + qr;
      if (t >= T || k0 > t) continue;  // uniform across the warp
      const float* q = Qs + qr * ld;
      const float* dy = dOs + qr * ld;
      const float* k = Ks + lane * ld;
      const float* v = Vs + lane * ld;
      float qk = 0.0f, dyv = 0.0f;
#pragma unroll 4
      for (int d = 0; d < hs; ++d) {
        qk += q[d] * k[d];
        dyv += dy[d] * v[d];
      }
      const bool valid = k0 + lane <= t;
      const float p = valid ? expf(qk * scale - L[r]) : 0.0f;
      const float ds = p * (dyv - D[r]);
      const int nvalid = min(kTile, t - k0 + 1);
      for (int j = 0; j < nvalid; ++j) {
        const float dsj = __shfl_sync(0xFFFFFFFFu, ds, j);
        const float* kj = Ks + j * ld;
#pragma unroll
        for (int i = 0; i < NI; ++i) {
          const int d = lane + 32 * i;
          if (d < hs) dq[r][i] += dsj * kj[d];
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int t = q0 + r * kWarps + warp;
    if (t >= T) continue;
    S* dq_t = dinp + (static_cast<std::size_t>(b) * T + t) * C3 + h * hs;
#pragma unroll
    for (int i = 0; i < NI; ++i) {
      const int d = lane + 32 * i;
      if (d < hs) dq_t[d] = from_f32<S>((accumulate ? to_f32(dq_t[d]) : 0.0f) + scale * dq[r][i]);
    }
  }
}

// grid (ceil(T/32), NH, B); shared: Ks, Vs (the block's keys), Qs, dOs (current query tile),
// each [kTile][hs+1] floats, then Ls, Ds [kTile].
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkv_kernel(S* dinp, const S* dout, const S* inp, const S* out,
                                  const float* lse, int T, int C, int NH, float scale,
                                 bool accumulate) {
  constexpr int NI = HS_MAX / 32;
  float* smem = reinterpret_cast<float*>(ptx::dynamic_shared_memory());
  const int hs = C / NH, ld = hs + 1;
  float* Ks = smem;
  float* Vs = Ks + kTile * ld;
  float* Qs = Vs + kTile * ld;
  float* dOs = Qs + kTile * ld;
  float* Ls = dOs + kTile * ld;
  float* Ds = Ls + kTile;
  const int k0 = blockIdx.x * kTile;  // the first key tiles have the most queries: start them first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const S* base = inp + static_cast<std::size_t>(b) * T * C3;
  const S* dout_b = dout + static_cast<std::size_t>(b) * T * C;
  const S* out_b = out + static_cast<std::size_t>(b) * T * C;
  const float* lse_bh = lse + (static_cast<std::size_t>(b) * NH + h) * T;

  stage_tile(Ks, base, C3, C + h * hs, k0, T, hs);
  stage_tile(Vs, base, C3, 2 * C + h * hs, k0, T, hs);

  float dk[kRowsPerWarp][NI], dv[kRowsPerWarp][NI];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < NI; ++i) dk[r][i] = dv[r][i] = 0.0f;
  }

  // Query tiles start at the key tile (causality: t >= key), tiles aligned at multiples of 32.
  for (int q0 = k0; q0 < T; q0 += kTile) {
    __syncthreads();  // the previous query tile is consumed (and, first time, Ks/Vs are written)
    stage_tile(Qs, base, C3, h * hs, q0, T, hs);
    stage_tile(dOs, dout_b, C, h * hs, q0, T, hs);
    for (int qr = warp; qr < kTile; qr += kWarps) {
      const int t = q0 + qr;
      float part = 0.0f;
      if (t < T) {
        for (int d = lane; d < hs; d += 32) {
          const std::size_t i = static_cast<std::size_t>(t) * C + h * hs + d;
          part += to_f32(dout_b[i]) * to_f32(out_b[i]);
        }
      }
      part = warp_sum(part);
      if (lane == 0) {
        Ds[qr] = part;
        Ls[qr] = t < T ? lse_bh[t] : 0.0f;
      }
    }
    __syncthreads();
    // Lane j scores query q0 + j against the warp's keys.
    const int t = q0 + lane;
    const float* q = Qs + lane * ld;
    const float* dy = dOs + lane * ld;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int kr = r * kWarps + warp;
      const int key = k0 + kr;
      if (key >= T) continue;  // uniform across the warp
      const float* k = Ks + kr * ld;
      const float* v = Vs + kr * ld;
      float qk = 0.0f, dyv = 0.0f;
#pragma unroll 4
      for (int d = 0; d < hs; ++d) {
        qk += q[d] * k[d];
        dyv += dy[d] * v[d];
      }
      const bool valid = t < T && t >= key;
      const float p = valid ? expf(qk * scale - Ls[lane]) : 0.0f;
      const float ds = p * (dyv - Ds[lane]);
      // Only queries key <= t < T contribute; p = ds = 0 for the others.
      const int j0 = max(0, key - q0), j1 = min(kTile, T - q0);
      for (int j = j0; j < j1; ++j) {
        const float pj = __shfl_sync(0xFFFFFFFFu, p, j);
        const float dsj = __shfl_sync(0xFFFFFFFFu, ds, j);
        const float* qj = Qs + j * ld;
        const float* dyj = dOs + j * ld;
#pragma unroll
        for (int i = 0; i < NI; ++i) {
          const int d = lane + 32 * i;
          if (d < hs) {
            dv[r][i] += pj * dyj[d];
            dk[r][i] += dsj * qj[d];
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int key = k0 + r * kWarps + warp;
    if (key >= T) continue;
    S* row = dinp + (static_cast<std::size_t>(b) * T + key) * C3 + h * hs;
#pragma unroll
    for (int i = 0; i < NI; ++i) {
      const int d = lane + 32 * i;
      if (d < hs) {
        const float k_old = accumulate ? to_f32(row[C + d]) : 0.0f;
        const float v_old = accumulate ? to_f32(row[2 * C + d]) : 0.0f;
        row[C + d] = from_f32<S>(k_old + scale * dk[r][i]);
        row[2 * C + d] = from_f32<S>(v_old + dv[r][i]);
      }
    }
  }
}

// ---- bf16 storage: tensor-core kernels (fragment layouts in kernels/cuda/warp_mma.cuh) ----
// p = exp2(scale log2(e) q.k - log2(e) lse) for key <= t < T, else 0; ds = p (dp - D).
// The dq kernel runs first and leaves each query row's (lse, D) in `stats`, [B*NH][2][Tp] fp32
// (zeros past T), which the dk/dv kernel then stages per tile with
// cp.async instead of recomputing D from dout and out for every (key tile, query tile) pair.

// Tp: T rounded up to 128, the most query rows a dq block owns (8 warps), so every block's
// stats rows exist.
constexpr int kStatsRowMultiple = 128;
__host__ __device__ inline int padded_rows(int T) {
  return (T + kStatsRowMultiple - 1) / kStatsRowMultiple * kStatsRowMultiple;
}

// s = X P^T and dp = Y Q^T for the warp's 16 rows m0.. of X and Y against all NS*8 rows of P and
// Q (tiles of [rows][HS_MAX + 8] bf16 in shared memory, zero past hs, so k runs to HS_MAX): the
// dq kernel's scores and dP (X, Y = Q, dO; P, Q = K, V) and the dk/dv kernel's, transposed
// (X, Y = K, V; P, Q = Q, dO). Each B fragment pair is one ldmatrix.x4 and feeds two mma.
template <int HS_MAX, int NS>
__device__ __forceinline__ void scores_and_dp(float s[NS][4], float dp[NS][4], const bf16* X,
                                              const bf16* Y, const bf16* P, const bf16* Q, int m0) {
  constexpr int LD = tc::kLd<HS_MAX>, NKD = HS_MAX / 16;
#pragma unroll
  for (int n = 0; n < NS; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
  }
#pragma unroll
  for (int kd = 0; kd < NKD; ++kd) {
    std::uint32_t ax[4], ay[4];
    tc::load_a(ax, X, LD, m0, kd * 16);
    tc::load_a(ay, Y, LD, m0, kd * 16);
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
template <int HS_MAX, int WARPS>
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
    bf16* Ks = key_buffers + (tile % 2) * 2 * tc::kRows * LD;
    tc::stage<tc::kRows, HS_MAX, THREADS>(Ks, base, C3, C + h * hs, tile * tc::kRows, T, hs, vec);
    tc::stage<tc::kRows, HS_MAX, THREADS>(Ks + tc::kRows * LD, base, C3, 2 * C + h * hs,
                                          tile * tc::kRows, T, hs, vec);
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
    stats[bh * 2 * Tp + q0 + r] = Ls[r];
    stats[(bh * 2 + 1) * Tp + q0 + r] = Ds[r];
  }
  const float L2[2] = {Ls[r0] * tc::kLog2e, Ls[r0 + 8] * tc::kLog2e};
  const float Dr[2] = {Ds[r0], Ds[r0 + 8]};

  float dq[NO][4] = {};
  // Key tiles up to the one holding the block's last real row.
  const int tiles = (min(q0 + QROWS, T) - 1) / tc::kRows + 1;
  const int warp_last_row = q0 + warp * 16 + 15;
  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * tc::kRows;
    if (tile + 1 < tiles) stage_keys(tile + 1);  // into the buffer the last iteration finished
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // this thread's copies of Q, dO and this tile have landed
    __syncthreads();          // ... and everyone else's
    const bf16* Ks = key_buffers + (tile % 2) * 2 * tc::kRows * LD;
    const bf16* Vs = Ks + tc::kRows * LD;
    // Skip a tile wholly past the warp's rows (uniform across the warp).
    if (k0 <= warp_last_row) {
      float s[NS][4], dp[NS][4];
      scores_and_dp<HS_MAX, NS>(s, dp, Qs, dOs, Ks, Vs, warp * 16);
#pragma unroll
      for (int n = 0; n < NS; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = e >> 1, key = k0 + n * 8 + 2 * c + (e & 1);
          // key <= t also excludes keys >= T for real rows; rows >= T are never stored.
          const float p = key <= q0 + r0 + 8 * i ? exp2f(s[n][e] * scale_log2 - L2[i]) : 0.0f;
          dp[n][e] = p * (dp[n][e] - Dr[i]);  // ds
        }
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
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = j * 8 + 2 * c + e;
        if (d < hs) {
          const float old = accumulate ? __bfloat162float(dq_t[d]) : 0.0f;
          dq_t[d] = __float2bfloat16_rn(old + scale * dq[j][2 * i + e]);
        }
      }
    }
  }
}

// grid (ceil(T/KROWS), NH, B) with KROWS = 16 WARPS keys per block, 32 WARPS threads; shared:
// Ks, Vs ([KROWS][HS_MAX+8] bf16 each: the block's keys), then two query buffers of [Qs | dOs]
// ([QT][HS_MAX+8] each), then two of [Ls | Ds] ([QT] fp32 each, from the dq kernel's stats).
// Warp w owns keys k0+16w..+15 and, per query tile, computes S^T = K Q^T and dP^T = V dO^T
// (16xQT each), then dV += P^T dO and dK += dS^T Q (16xHS_MAX, P and dS rounded to bf16); dinp's
// k part += scale dK and v part += dV at the end. Query tile i + 1 is staged while tile i is
// used. Queries are summed 16 at a time in ascending order whatever WARPS and QT are (tiles
// wholly before a warp's keys are skipped: they would add exact zeros), so every shape gives
// bitwise the same dk and dv. QT = 32 at HS_MAX = 128 keeps dK, dV, S and dP in registers.
template <int HS_MAX, int WARPS, int QT>
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
  float* stat_buffers = reinterpret_cast<float*>(query_buffers + 4 * QT * LD);  // j: Ls, Ds
  const int hs = C / NH;
  const int k0 = blockIdx.x * KROWS;  // the first key tiles see the most queries: start them first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const std::size_t C3 = 3 * static_cast<std::size_t>(C);
  const bf16* base = inp + static_cast<std::size_t>(b) * T * C3;
  const bf16* dout_b = dout + static_cast<std::size_t>(b) * T * C;
  const std::size_t bh = static_cast<std::size_t>(b) * NH + h;
  const int Tp = padded_rows(T);
  const float* lse_bh = stats + bh * 2 * Tp;
  const float* D_bh = lse_bh + Tp;
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
    float* Ls = stat_buffers + (tile % 2) * 2 * QT;
    for (int i = threadIdx.x; i < 2 * QT / 4; i += THREADS) {  // QT/4 16-byte chunks of each
      const int part = i / (QT / 4), r = (i % (QT / 4)) * 4;
      ptx::cp_async_16(Ls + part * QT + r, (part == 0 ? lse_bh : D_bh) + q0 + r, true);
    }
  };

  tc::stage<KROWS, HS_MAX, THREADS>(Ks, base, C3, C + h * hs, k0, T, hs, vec);
  tc::stage<KROWS, HS_MAX, THREADS>(Vs, base, C3, 2 * C + h * hs, k0, T, hs, vec);
  stage_queries(0);
  ptx::cp_async_commit();

  float dk[NO][4] = {}, dv[NO][4] = {};
  const int tiles = (T - k0 + QT - 1) / QT;
  for (int tile = 0; tile < tiles; ++tile) {
    const int q0 = k0 + tile * QT;
    if (tile + 1 < tiles) stage_queries(tile + 1);  // into the buffer the last iteration finished
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();  // this thread's copies of K, V and this tile have landed
    __syncthreads();          // ... and everyone else's
    const bf16* Qs = query_buffers + (tile % 2) * 2 * QT * LD;
    const bf16* dOs = Qs + QT * LD;
    const float* Ls = stat_buffers + (tile % 2) * 2 * QT;
    const float* Ds = Ls + QT;
    // Skip a tile wholly before the warp's keys (uniform across the warp).
    if (q0 + QT > k0 + warp * 16) {
      float s[NS][4], dp[NS][4];
      scores_and_dp<HS_MAX, NS>(s, dp, Ks, Vs, Qs, dOs, warp * 16);
#pragma unroll
      for (int n = 0; n < NS; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qr = n * 8 + 2 * c + (e & 1), t = q0 + qr;
          const bool valid = t >= key0 + 8 * (e >> 1) && t < T;
          const float p = valid ? exp2f(s[n][e] * scale_log2 - Ls[qr] * tc::kLog2e) : 0.0f;
          s[n][e] = p;
          dp[n][e] = p * (dp[n][e] - Ds[qr]);  // ds
        }
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
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int d = j * 8 + 2 * c + e;
        if (d < hs) {
          const float k_old = accumulate ? __bfloat162float(row[C + d]) : 0.0f;
          const float v_old = accumulate ? __bfloat162float(row[2 * C + d]) : 0.0f;
          row[C + d] = __float2bfloat16_rn(k_old + scale * dk[j][2 * i + e]);
          row[2 * C + d] = __float2bfloat16_rn(v_old + dv[j][2 * i + e]);
        }
      }
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
    using Four = std::integral_constant<int, 4>;
    using Eight = std::integral_constant<int, 8>;
    dispatch_head_size(hs, [&](auto hs_max) {
      constexpr int kHsMax = decltype(hs_max)::value;
      auto run_dq = [&](auto warps) {
        constexpr int kBlockWarps = decltype(warps)::value, kQRows = kBlockWarps * 16;
        const std::size_t smem = 2 * tc::tile_bytes<kHsMax>(kQRows) +
                                 4 * tc::tile_bytes<kHsMax>(tc::kRows) + 2 * kQRows * sizeof(float);
        const dim3 grid((T + kQRows - 1) / kQRows, NH, B);
        launch_kernel(attention_backward_dq_tc_kernel<kHsMax, kBlockWarps>, grid, kBlockWarps * 32,
                      smem, s, dx, stats.get(), dy, x, y, lse, T, C, NH, scale, vec, accumulate);
      };
      auto run_dkv = [&](auto warps, auto query_rows) {
        constexpr int kBlockWarps = decltype(warps)::value, kKRows = kBlockWarps * 16;
        constexpr int kQt = decltype(query_rows)::value;
        const std::size_t smem = 2 * tc::tile_bytes<kHsMax>(kKRows) +
                                 4 * tc::tile_bytes<kHsMax>(kQt) + 4 * kQt * sizeof(float);
        const dim3 grid((T + kKRows - 1) / kKRows, NH, B);
        launch_kernel(attention_backward_dkv_tc_kernel<kHsMax, kBlockWarps, kQt>, grid,
                      kBlockWarps * 32, smem, s, dx, stats.get(), dy, x, T, C, NH, scale, vec,
                      accumulate);
      };
      using Q32 = std::integral_constant<int, 32>;
      using Q64 = std::integral_constant<int, 64>;
      if constexpr (kHsMax > 64) {
        run_dq(Four{});
        run_dkv(Four{}, Q32{});
      } else {
        if (tiling.dq_warps == 8) {
          run_dq(Eight{});
        } else {
          run_dq(Four{});
        }
        const bool q64 = tiling.dkv_query_rows == 64;
        if (tiling.dkv_warps == 8) {
          q64 ? run_dkv(Eight{}, Q64{}) : run_dkv(Eight{}, Q32{});
        } else {
          q64 ? run_dkv(Four{}, Q64{}) : run_dkv(Four{}, Q32{});
        }
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
