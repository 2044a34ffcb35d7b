// Causal self-attention forward on the GPU: a flash-style fused kernel. For one (b, h) and a
// tile of 32 query rows, key tiles of 32 are staged in shared memory; each query row keeps an
// online softmax (running max m, running sum l, unnormalised output o) so the (T,T) score
// matrix never exists. It writes out (B,T,C) and lse = m + log l (B,NH,T), from which the
// backward recomputes the probabilities. See attention_common.cuh for layout and tiling.
#include "kernels/cuda/attention_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

using namespace attention;

// grid (ceil(T/32), NH, B), kThreads threads, dynamic shared memory 3 * 32 * (hs+1) floats.
template <typename S, int HS_MAX>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(S* out, float* lse, const S* inp, int T, int C, int NH, float scale) {
  constexpr int NI = HS_MAX / 32;  // output dimensions per lane
  extern __shared__ float smem[];
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

}  // namespace

void attention_forward(void* out, float* lse, const void* inp, int B, int T, int C, int NH,
                       DType dt, Stream stream) {
  check_shape("attention_forward", B, T, C, NH);
  if (B == 0 || T == 0) return;
  const int hs = C / NH;
  const std::size_t smem = 3 * kTile * static_cast<std::size_t>(hs + 1) * sizeof(float);
  const dim3 grid((T + kTile - 1) / kTile, NH, B);
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    dispatch_head_size(hs, [&](auto hs_max) {
      auto kernel = attention_forward_kernel<S, decltype(hs_max)::value>;
      allow_shared_memory(kernel, smem);
      kernel<<<grid, kThreads, smem, to_cuda(stream)>>>(static_cast<S*>(out), lse,
                                                        static_cast<const S*>(inp), T, C, NH,
                                                        softmax_scale(hs));
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace pptrain::kernels::cuda
