// LayerNorm over the last axis on the GPU (eps 1e-5, biased variance, as torch.nn.LayerNorm).
// inp/out/dinp/dout (N,C) in the storage type S; weight/bias (C) in S; mean/rstd (N) and
// dweight/dbias (C) fp32.
//
// Forward and the dinp part of the backward: one warp per row; every lane touches the same
// columns (lane, lane+32, ...) in each pass, so a lane re-reads only what it wrote itself.
// dweight/dbias sum over all N rows without atomics, over the whole GPU: column_sums.cuh.
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"
#include "kernels/cuda/warp_mma.cuh"  // ptx::dynamic_shared_memory
#include "kernels/layernorm.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kRowThreads = 256;  // 8 rows (warps) per block
constexpr int kRowsPerBlock = kRowThreads / 32;
constexpr float kEps = static_cast<float>(cpu::kLayerNormEps);

// W consecutive columns W*i.. of a row as fp32: W = 1, or 2 for bf16 (one 4-byte access: a
// warp then moves 128 bytes per access, as fp32 does; one-column bf16 accesses ran this file's
// backward 5x slower on an H200, docs/gpu-results.md run 3).
template <typename S, int W>
__device__ __forceinline__ void load_cols(float (&v)[W], const S* row, int i) {
  if constexpr (W == 1) {
    v[0] = to_f32(row[i]);
  } else {
    static_assert(W == 2 && std::is_same_v<S, bf16>, "column pairs are a bf16 layout");
    const float2 x = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(row)[i]);
    v[0] = x.x;
    v[1] = x.y;
  }
}

template <typename S, int W>
__device__ __forceinline__ void store_cols(S* row, int i, const float (&v)[W]) {
  if constexpr (W == 1) {
    row[i] = from_f32<S>(v[0]);
  } else {
    reinterpret_cast<__nv_bfloat162*>(row)[i] = __floats2bfloat162_rn(v[0], v[1]);
  }
}

// add == nullptr: x = inp. Otherwise x = round_S(inp + add) is written to `residual` first and
// normalised as stored, so the backward (which reads the stored residual) sees the same x.
// Columns move W at a time (C % W == 0, rows aligned to W columns).
template <typename S, int W>
__global__ void layernorm_forward_kernel(S* out, float* mean, float* rstd, S* residual,
                                         const S* inp, const S* add, const S* weight,
                                         const S* bias, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;  // whole warps leave together: the shuffles below see full warps
  const std::size_t off = static_cast<std::size_t>(row) * C;
  const int groups = C / W;
  const S* x = inp + off;
  float v[W];
  if (add != nullptr) {
    for (int c = lane; c < groups; c += 32) {
      float b[W];
      load_cols<S, W>(v, inp + off, c);
      load_cols<S, W>(b, add + off, c);
#pragma unroll
      for (int w = 0; w < W; ++w) v[w] += b[w];
      store_cols<S, W>(residual + off, c, v);
    }
    x = residual + off;
  }
  float sum = 0.0f;
  for (int c = lane; c < groups; c += 32) {
    load_cols<S, W>(v, x, c);
#pragma unroll
    for (int w = 0; w < W; ++w) sum += v[w];
  }
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
  for (int c = lane; c < groups; c += 32) {
    load_cols<S, W>(v, x, c);
#pragma unroll
    for (int w = 0; w < W; ++w) var += (v[w] - m) * (v[w] - m);
  }
  const float s = 1.0f / sqrtf(warp_sum(var) / C + kEps);
  for (int c = lane; c < groups; c += 32) {
    float wt[W], bs[W];
    load_cols<S, W>(v, x, c);
    load_cols<S, W>(wt, weight, c);
    load_cols<S, W>(bs, bias, c);
#pragma unroll
    for (int w = 0; w < W; ++w) v[w] = (v[w] - m) * s * wt[w] + bs[w];
    store_cols<S, W>(out + off, c, v);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dinp = base + rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = weight * dout
// (base == dinp: +=).
template <typename S>
__global__ void layernorm_backward_dinp_kernel(S* dinp, const S* base, const S* dout, const S* inp,
                                               const S* weight, const float* mean,
                                               const float* rstd, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const std::size_t off = static_cast<std::size_t>(row) * C;
  const float m = mean[row], s = rstd[row];
  float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float xhat = (to_f32(inp[off + c]) - m) * s;
    const float dxhat = to_f32(weight[c]) * to_f32(dout[off + c]);
    sum_dxhat += dxhat;
    sum_dxhat_xhat += dxhat * xhat;
  }
  const float mean_dxhat = warp_sum(sum_dxhat) / C;
  const float mean_dxhat_xhat = warp_sum(sum_dxhat_xhat) / C;
  for (int c = lane; c < C; c += 32) {
    const float xhat = (to_f32(inp[off + c]) - m) * s;
    const float dxhat = to_f32(weight[c]) * to_f32(dout[off + c]);
    const float g = s * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
    dinp[off + c] = from_f32<S>(to_f32(base[off + c]) + g);
  }
}

// The same for bf16 with an even C, on column pairs: 4-byte loads and stores (a warp moves 128
// bytes per access, as fp32 does). The one-column bf16 version ran 5x slower than fp32 on an
// H200 (0.43 vs 0.08 ms at N=16384, C=768; docs/gpu-results.md, run 3).
// The block takes rows r0 = blockIdx.x * rows_per_block.. (a warp per row, in turn).
// SUMS: each lane also sums (xhat * dout, dout) over its warp's rows for its own columns, in
// shared memory ([warp][2][C] fp32: no word is touched by two lanes), and the block then adds its
// warps in order into partial[(k * gridDim.x + blockIdx.x) * C + c] (k 0: dweight, 1: dbias),
// which column_sums::final_kernel sums over the blocks: dweight and dbias without a second read
// of dout and inp. The dinp arithmetic is the same either way.
// dinp and base may be one array (each element is read, then written, by one thread): neither
// is __restrict__.
template <bool SUMS>
__global__ void layernorm_backward_bf16x2_kernel(__nv_bfloat162* dinp, const __nv_bfloat162* base,
                                                 const __nv_bfloat162* __restrict__ dout,
                                                 const __nv_bfloat162* __restrict__ inp,
                                                 const __nv_bfloat162* __restrict__ weight,
                                                 const float* __restrict__ mean,
                                                 const float* __restrict__ rstd, int N, int C,
                                                 int rows_per_block, float* partial) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const int pairs = C / 2;
  float* sums = nullptr;  // this warp's [2][C]
  if constexpr (SUMS) {
    sums = reinterpret_cast<float*>(ptx::dynamic_shared_memory()) + 2 * static_cast<std::size_t>(warp) * C;
    for (int c = lane; c < pairs; c += 32) {
      sums[2 * c] = sums[2 * c + 1] = sums[C + 2 * c] = sums[C + 2 * c + 1] = 0.0f;
    }
  }
  const int r0 = static_cast<int>(blockIdx.x) * rows_per_block, r1 = min(N, r0 + rows_per_block);
  for (int row = r0 + warp; row < r1; row += warps) {
    const std::size_t off = static_cast<std::size_t>(row) * pairs;
    const float m = mean[row], s = rstd[row];
    float sum_dxhat = 0.0f, sum_dxhat_xhat = 0.0f;
    for (int c = lane; c < pairs; c += 32) {
      const float2 x = __bfloat1622float2(inp[off + c]);
      const float2 w = __bfloat1622float2(weight[c]);
      const float2 dy = __bfloat1622float2(dout[off + c]);
      const float d0 = w.x * dy.x, d1 = w.y * dy.y;
      sum_dxhat += d0 + d1;
      sum_dxhat_xhat += d0 * ((x.x - m) * s) + d1 * ((x.y - m) * s);
    }
    const float mean_dxhat = warp_sum(sum_dxhat) / C;
    const float mean_dxhat_xhat = warp_sum(sum_dxhat_xhat) / C;
    for (int c = lane; c < pairs; c += 32) {
      const float2 x = __bfloat1622float2(inp[off + c]);
      const float2 w = __bfloat1622float2(weight[c]);
      const float2 dy = __bfloat1622float2(dout[off + c]);
      const float g0 = s * (w.x * dy.x - mean_dxhat - (x.x - m) * s * mean_dxhat_xhat);
      const float g1 = s * (w.y * dy.y - mean_dxhat - (x.y - m) * s * mean_dxhat_xhat);
      const float2 old = __bfloat1622float2(base[off + c]);
      dinp[off + c] = __floats2bfloat162_rn(old.x + g0, old.y + g1);
      if constexpr (SUMS) {  // as LayernormParamTerm: (x - m) * s * dout, and dout
        sums[2 * c] += (x.x - m) * s * dy.x;
        sums[2 * c + 1] += (x.y - m) * s * dy.y;
        sums[C + 2 * c] += dy.x;
        sums[C + 2 * c + 1] += dy.y;
      }
    }
  }
  if constexpr (SUMS) {
    __syncthreads();
    const float* all = reinterpret_cast<const float*>(ptx::dynamic_shared_memory());
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      float dw = 0.0f, db = 0.0f;
      for (int w = 0; w < warps; ++w) {
        dw += all[2 * static_cast<std::size_t>(w) * C + c];
        db += all[(2 * static_cast<std::size_t>(w) + 1) * C + c];
      }
      partial[static_cast<std::size_t>(blockIdx.x) * C + c] = dw;
      partial[(static_cast<std::size_t>(gridDim.x) + blockIdx.x) * C + c] = db;
    }
  }
}

// The fused kernel's blocks: 64 rows each up to 1024 blocks, more rows each beyond (a function
// of N alone, so the sums' order, and every bit of them, is fixed by the shape); 8 warps and
// 64 C bytes of shared memory each (48 KiB at C = 768), so up to C = 2560.
constexpr int kFusedRowsPerBlock = 64, kFusedMaxBlocks = 1024, kFusedMaxC = 2560;
int fused_blocks(int N) { return std::min(kFusedMaxBlocks, (N + kFusedRowsPerBlock - 1) / kFusedRowsPerBlock); }

bool four_byte_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 4 == 0; }

// One row's contributions to dweight and dbias at columns c..c+W-1: xhat * dout and dout.
template <typename S, int W>
struct LayernormParamTerm {
  const S* dout;
  const S* inp;
  const float* mean;
  const float* rstd;
  int C;
  __device__ void operator()(int r, int c, float (&v)[2][W]) const {
    const std::size_t i = static_cast<std::size_t>(r) * C + c;
    float dy[W], x[W];
    column_sums::load_adjacent<S, W>(dout + i, dy);
    column_sums::load_adjacent<S, W>(inp + i, x);
    const float m = mean[r], s = rstd[r];
#pragma unroll
    for (int w = 0; w < W; ++w) {
      v[0][w] = (x[w] - m) * s * dy[w];
      v[1][w] = dy[w];
    }
  }
};

template <typename S>
void launch_forward(S* out, float* mean, float* rstd, S* residual, const S* inp, const S* add,
                    const S* weight, const S* bias, int N, int C, cudaStream_t s) {
  const unsigned blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  if constexpr (std::is_same_v<S, bf16>) {
    const bool pairs = C % 2 == 0 && four_byte_aligned(out) && four_byte_aligned(inp) &&
                       four_byte_aligned(weight) && four_byte_aligned(bias) &&
                       (add == nullptr || (four_byte_aligned(add) && four_byte_aligned(residual)));
    if (pairs) {
      launch_kernel(layernorm_forward_kernel<S, 2>, blocks, kRowThreads, 0, s, out, mean, rstd,
                    residual, inp, add, weight, bias, N, C);
      return;
    }
  }
  launch_kernel(layernorm_forward_kernel<S, 1>, blocks, kRowThreads, 0, s, out, mean, rstd,
                residual, inp, add, weight, bias, N, C);
}

}  // namespace

void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight,
                       const void* bias, int N, int C, DType dt, Stream stream) {
  checks::layernorm_shape(N, C);
  if (N == 0) return;
  PPT_CHECK(C > 0, "layernorm: C must be positive");
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_forward<S>(static_cast<S*>(out), mean, rstd, nullptr, static_cast<const S*>(inp),
                      nullptr, static_cast<const S*>(weight), static_cast<const S*>(bias), N, C,
                      to_cuda(stream));
  });
}

void residual_layernorm_forward(void* residual, void* out, float* mean, float* rstd, const void* a,
                                const void* b, const void* weight, const void* bias, int N, int C,
                                DType dt, Stream stream) {
  checks::layernorm_shape(N, C);
  if (N == 0) return;
  PPT_CHECK(C > 0, "layernorm: C must be positive");
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_forward<S>(static_cast<S*>(out), mean, rstd, static_cast<S*>(residual),
                      static_cast<const S*>(a), static_cast<const S*>(b),
                      static_cast<const S*>(weight), static_cast<const S*>(bias), N, C,
                      to_cuda(stream));
  });
}

void layernorm_backward(void* dinp, float* dweight, float* dbias, const void* dout,
                        const void* inp, const void* weight, const float* mean, const float* rstd,
                        int N, int C, DType dt, Stream stream, const void* dinp_base,
                        bool fuse_param_sums) {
  checks::layernorm_shape(N, C);
  if (N == 0 || C == 0) return;
  const cudaStream_t s = to_cuda(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    if (dinp != nullptr) {
      const unsigned row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
      const void* base = dinp_base != nullptr ? dinp_base : dinp;
      const bool pairs = std::is_same_v<S, bf16> && C % 2 == 0 && four_byte_aligned(dinp) &&
                         four_byte_aligned(base) && four_byte_aligned(dout) &&
                         four_byte_aligned(inp) && four_byte_aligned(weight);
      auto* dx = static_cast<__nv_bfloat162*>(dinp);
      const auto* b2 = static_cast<const __nv_bfloat162*>(base);
      const auto* dy = static_cast<const __nv_bfloat162*>(dout);
      const auto* x2 = static_cast<const __nv_bfloat162*>(inp);
      const auto* w2 = static_cast<const __nv_bfloat162*>(weight);
      if (pairs && fuse_param_sums && dweight != nullptr && dbias != nullptr && C <= kFusedMaxC) {
        const int blocks = fused_blocks(N);
        StreamScratch<float> partial(2 * static_cast<std::size_t>(blocks) * C, s);
        launch_kernel(layernorm_backward_bf16x2_kernel<true>, blocks, kRowThreads,
                      2 * static_cast<std::size_t>(kRowsPerBlock) * C * sizeof(float), s,
                      dx, b2, dy, x2, w2, mean, rstd, N, C, (N + blocks - 1) / blocks,
                      partial.get());
        launch_kernel(column_sums::final_kernel<2>, (C + 255) / 256, 256, 0, s,
                      column_sums::Outputs<2>{{dweight, dbias}}, partial.get(), C, blocks);
        return;
      }
      if (pairs) {
        launch_kernel(layernorm_backward_bf16x2_kernel<false>, row_blocks, kRowThreads, 0, s,
                      dx, b2, dy, x2, w2, mean, rstd, N, C, kRowsPerBlock,
                      static_cast<float*>(nullptr));
      } else {
        launch_kernel(layernorm_backward_dinp_kernel<S>, row_blocks, kRowThreads, 0, s,
                      static_cast<S*>(dinp), static_cast<const S*>(base),
                      static_cast<const S*>(dout), static_cast<const S*>(inp),
                      static_cast<const S*>(weight), mean, rstd, N, C);
      }
    }
    if (dweight == nullptr && dbias == nullptr) return;
    PPT_CHECK(dweight != nullptr && dbias != nullptr, "layernorm_backward: dweight and dbias go together");
    const bool pairs = C % 2 == 0 && four_byte_aligned(dout) && four_byte_aligned(inp);
    column_sums::with_columns_per_thread<S>(pairs, [&](auto width) {
      constexpr int W = decltype(width)::value;
      column_sums::add<2, W>(column_sums::Outputs<2>{{dweight, dbias}},
                             LayernormParamTerm<S, W>{static_cast<const S*>(dout),
                                                      static_cast<const S*>(inp), mean, rstd, C},
                             N, C, s);
    });
  });
}

}  // namespace pptrain::kernels::cuda
