// The fp32-storage attention backward on CUDA cores (attention_backward.cu's math; tiles of 32
// queries or keys, fp32 rows of stride hs+1 in shared memory, lane j scores row j of the other
// side's tile, lanes own output dimensions): kept so fp32 mode tracks the CPU twin to ~1e-6.
// Included by attention_backward.cu only.
#pragma once

#include "kernels/cuda/attention_common.cuh"

namespace pptrain::kernels::cuda::attention {

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

}  // namespace pptrain::kernels::cuda::attention
