// LayerNorm over the last axis on the GPU (eps 1e-5, biased variance, as torch.nn.LayerNorm).
// inp/out/dinp/dout (N,C) in the storage type S; weight/bias (C) in S; mean/rstd (N) and
// dweight/dbias (C) fp32.
//
// Forward and the dinp part of the backward: one warp per row; every lane touches the same
// columns (lane, lane+32, ...) in each pass, so a lane re-reads only what it wrote itself.
// dweight/dbias sum over all N rows without atomics: blocks of (32 columns, one chunk of rows)
// add their rows in a fixed order into fp32 partials, then one pass adds the chunks' partials
// in chunk order; the chunk count depends on N only, so the result is deterministic.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/layernorm.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kRowThreads = 256;  // 8 rows (warps) per block
constexpr int kRowsPerBlock = kRowThreads / 32;
constexpr float kEps = static_cast<float>(cpu::kLayerNormEps);

// add == nullptr: x = inp. Otherwise x = round_S(inp + add) is written to `residual` first and
// normalised as stored, so the backward (which reads the stored residual) sees the same x.
template <typename S>
__global__ void layernorm_forward_kernel(S* out, float* mean, float* rstd, S* residual,
                                         const S* inp, const S* add, const S* weight,
                                         const S* bias, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;  // whole warps leave together: the shuffles below see full warps
  const std::size_t off = static_cast<std::size_t>(row) * C;
  const S* x = inp + off;
  if (add != nullptr) {
    for (int c = lane; c < C; c += 32) {
      residual[off + c] = from_f32<S>(to_f32(inp[off + c]) + to_f32(add[off + c]));
    }
    x = residual + off;
  }
  float sum = 0.0f;
  for (int c = lane; c < C; c += 32) sum += to_f32(x[c]);
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = to_f32(x[c]) - m;
    var += d * d;
  }
  const float s = 1.0f / sqrtf(warp_sum(var) / C + kEps);
  for (int c = lane; c < C; c += 32) {
    out[off + c] = from_f32<S>((to_f32(x[c]) - m) * s * to_f32(weight[c]) + to_f32(bias[c]));
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dinp += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = weight * dout.
template <typename S>
__global__ void layernorm_backward_dinp_kernel(S* dinp, const S* dout, const S* inp,
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
    dinp[off + c] = from_f32<S>(to_f32(dinp[off + c]) + g);
  }
}

// dweight/dbias partial sums over one chunk of rows. Block (32 columns, 32 row lanes); grid
// (ceil(C/32), chunks): chunk y covers rows [y * rows_per_chunk, ...). One block per 32
// columns alone (C/32 = 24 blocks for GPT-2 small) left most of an H200 idle: 0.53 ms per
// call at N=16384, C=768 in bf16. partial_w/partial_b: (chunks, C) fp32.
template <typename S>
__global__ void layernorm_backward_params_kernel(float* partial_w, float* partial_b, const S* dout,
                                                 const S* inp, const float* mean,
                                                 const float* rstd, int N, int C,
                                                 int rows_per_chunk) {
  __shared__ float part_w[32][33], part_b[32][33];  // [row lane][column], padded
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * 32 + tx;
  const int r0 = blockIdx.y * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  float acc_w = 0.0f, acc_b = 0.0f;
  if (c < C) {
    for (int r = r0 + ty; r < r1; r += 32) {
      const std::size_t i = static_cast<std::size_t>(r) * C + c;
      const float dy = to_f32(dout[i]);
      acc_w += (to_f32(inp[i]) - mean[r]) * rstd[r] * dy;
      acc_b += dy;
    }
  }
  part_w[ty][tx] = acc_w;
  part_b[ty][tx] = acc_b;
  __syncthreads();
  if (ty == 0 && c < C) {
    float w = 0.0f, b = 0.0f;
    for (int j = 0; j < 32; ++j) {
      w += part_w[j][tx];
      b += part_b[j][tx];
    }
    const std::size_t i = static_cast<std::size_t>(blockIdx.y) * C + c;
    partial_w[i] = w;
    partial_b[i] = b;
  }
}

// dweight[c] += sum of the chunks' partials, in chunk order (deterministic).
__global__ void layernorm_backward_params_sum_kernel(float* dweight, float* dbias,
                                                     const float* partial_w,
                                                     const float* partial_b, int C, int chunks) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float w = 0.0f, b = 0.0f;
  for (int y = 0; y < chunks; ++y) {
    w += partial_w[static_cast<std::size_t>(y) * C + c];
    b += partial_b[static_cast<std::size_t>(y) * C + c];
  }
  dweight[c] += w;
  dbias[c] += b;
}

// Row chunks for the parameter gradients: a function of N only (never of the GPU), so the
// summation order and every bit of the result are fixed by the shape. At least 256 rows a
// chunk, at most 128 chunks: 16384 rows make 64 chunks, 64 x 24 blocks for C = 768.
int param_chunks(int N) { return std::max(1, std::min(128, (N + 255) / 256)); }

void check_shape(int N, int C) {
  PPT_CHECK(N >= 0 && C >= 0, "layernorm: negative shape N={} C={}", N, C);
}

template <typename S>
void launch_forward(S* out, float* mean, float* rstd, S* residual, const S* inp, const S* add,
                    const S* weight, const S* bias, int N, int C, cudaStream_t s) {
  const unsigned blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  layernorm_forward_kernel<S>
      <<<blocks, kRowThreads, 0, s>>>(out, mean, rstd, residual, inp, add, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight,
                       const void* bias, int N, int C, DType dt, Stream stream) {
  check_shape(N, C);
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
  check_shape(N, C);
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
                        int N, int C, DType dt, Stream stream) {
  check_shape(N, C);
  if (N == 0 || C == 0) return;
  const cudaStream_t s = to_cuda(stream);
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    const unsigned row_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
    layernorm_backward_dinp_kernel<S><<<row_blocks, kRowThreads, 0, s>>>(
        static_cast<S*>(dinp), static_cast<const S*>(dout), static_cast<const S*>(inp),
        static_cast<const S*>(weight), mean, rstd, N, C);
    CUDA_CHECK_LAUNCH();
    // Partials in stream-ordered memory (the driver's pool: no allocation once warm, and no
    // scratch argument in the API); (chunks, C) x 2 fp32, 384 KiB for GPT-2 small.
    const int chunks = param_chunks(N), rows_per_chunk = (N + chunks - 1) / chunks;
    const std::size_t partial_floats = static_cast<std::size_t>(chunks) * C;
    float* partial = nullptr;
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial), 2 * partial_floats * sizeof(float), s));
    const dim3 grid((C + 31) / 32, chunks);
    layernorm_backward_params_kernel<S><<<grid, dim3(32, 32), 0, s>>>(
        partial, partial + partial_floats, static_cast<const S*>(dout), static_cast<const S*>(inp),
        mean, rstd, N, C, rows_per_chunk);
    CUDA_CHECK_LAUNCH();
    layernorm_backward_params_sum_kernel<<<(C + 255) / 256, 256, 0, s>>>(
        dweight, dbias, partial, partial + partial_floats, C, chunks);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaFreeAsync(partial, s));
  });
}

}  // namespace pptrain::kernels::cuda
