// Causal self-attention backward on the GPU, flash-style: probabilities are recomputed from q, k
// and the forward's lse, p = exp(scale q.k - lse), never read from a stored (T,T) matrix. With
// D_t = dout_t . out_t (= sum_j p_j dp_j) and dp_j = dout_t . v_j:
//   ds_j = p_j (dp_j - D_t),  dq_t += scale sum_j ds_j k_j,
//   dk_j += scale sum_t ds_j q_t,  dv_j += sum_t p_j dout_t.
// Two kernels, so every output element has exactly one owner and no atomics are needed:
//   dq:  a block per (query tile, h, b) walks the key tiles at or before it (like the forward);
//   dkv: a block per (key tile, h, b) walks the query tiles at or after it.
// Both recompute the scores (about 2x the forward's work in dot products). D is recomputed per
// tile from dout and out (hs multiply-adds per row and tile), which saves a (B,NH,T) scratch.
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

using namespace attention;

// grid (ceil(T/32), NH, B); shared: Qs, dOs, Ks, Vs, each [kTile][hs+1] floats.
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(S* dinp, const S* dout, const S* inp, const S* out,
                                 const float* lse, int T, int C, int NH, float scale) {
  constexpr int NI = HS_MAX / 32;
  extern __shared__ float smem[];
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
      if (d < hs) dq_t[d] = from_f32<S>(to_f32(dq_t[d]) + scale * dq[r][i]);
    }
  }
}

// grid (ceil(T/32), NH, B); shared: Ks, Vs (the block's keys), Qs, dOs (current query tile),
// each [kTile][hs+1] floats, then Ls, Ds [kTile].
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkv_kernel(S* dinp, const S* dout, const S* inp, const S* out,
                                  const float* lse, int T, int C, int NH, float scale) {
  constexpr int NI = HS_MAX / 32;
  extern __shared__ float smem[];
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
        row[C + d] = from_f32<S>(to_f32(row[C + d]) + scale * dk[r][i]);
        row[2 * C + d] = from_f32<S>(to_f32(row[2 * C + d]) + dv[r][i]);
      }
    }
  }
}

}  // namespace

void attention_backward(void* dinp, const void* dout, const void* inp, const void* out,
                        const float* lse, int B, int T, int C, int NH, DType dt, Stream stream) {
  check_shape("attention_backward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  const int hs = C / NH;
  const std::size_t tile_bytes = kTile * static_cast<std::size_t>(hs + 1) * sizeof(float);
  const std::size_t smem_dq = 4 * tile_bytes;
  const std::size_t smem_dkv = 4 * tile_bytes + 2 * kTile * sizeof(float);
  const dim3 grid((T + kTile - 1) / kTile, NH, B);
  const cudaStream_t s = to_cuda(stream);
  const float scale = softmax_scale(hs);
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    S* dx = static_cast<S*>(dinp);
    const S* dy = static_cast<const S*>(dout);
    const S* x = static_cast<const S*>(inp);
    const S* y = static_cast<const S*>(out);
    dispatch_head_size(hs, [&](auto hs_max) {
      constexpr int kHsMax = decltype(hs_max)::value;
      auto dq_kernel = attention_backward_dq_kernel<S, kHsMax>;
      allow_shared_memory(dq_kernel, smem_dq);
      dq_kernel<<<grid, kThreads, smem_dq, s>>>(dx, dy, x, y, lse, T, C, NH, scale);
      CUDA_CHECK_LAUNCH();
      auto dkv_kernel = attention_backward_dkv_kernel<S, kHsMax>;
      allow_shared_memory(dkv_kernel, smem_dkv);
      dkv_kernel<<<grid, kThreads, smem_dkv, s>>>(dx, dy, x, y, lse, T, C, NH, scale);
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace pptrain::kernels::cuda
