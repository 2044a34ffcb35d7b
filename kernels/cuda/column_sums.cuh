// Deterministic column sums over all rows of an (N, C) quantity, spread over the whole GPU
// (nvcc only): the parameter gradients of layernorm (dweight, dbias) and of a matmul's bias.
// One block per 32 columns over all rows used only C/32 blocks (24 for C = 768): on an H200
// layernorm_backward ran at 192 GB/s that way. Here blocks of (32 columns, 32 row lanes) each
// sum one chunk of rows into fp32 partials, then one thread per column adds the chunks in
// chunk order. The chunk count is a function of N alone, so every bit of the result is fixed
// by the shape, never by the GPU; no atomics.
#pragma once

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"

#include <type_traits>

namespace pptrain::kernels::cuda::column_sums {

// At least 256 rows a chunk, at most 128 chunks: N = 16384 makes 64 chunks.
inline int chunk_count(int N) { return std::max(1, std::min(128, (N + 255) / 256)); }

// W adjacent values p[0..W) as fp32: W = 1, or 2 for bf16 (one 4-byte load, p 4-byte aligned).
template <typename S, int W>
__device__ __forceinline__ void load_adjacent(const S* p, float (&v)[W]) {
  if constexpr (W == 1) {
    v[0] = to_f32(*p);
  } else {
    static_assert(W == 2 && std::is_same_v<S, bf16>, "column pairs are a bf16 layout");
    const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
    v[0] = x.x;
    v[1] = x.y;
  }
}

// Calls f(std::integral_constant<int, W>{}) with W = 2 for bf16 where the caller found pairs
// loadable (C even, pointers 4-byte aligned), else W = 1.
template <typename S, typename F>
void with_columns_per_thread(bool pairs_loadable, F&& f) {
  if constexpr (std::is_same_v<S, bf16>) {
    if (pairs_loadable) {
      f(std::integral_constant<int, 2>{});
      return;
    }
  }
  f(std::integral_constant<int, 1>{});
}

template <int K>
struct Outputs {
  float* to[K];  // each (C) fp32, accumulated into (+=)
};

// grid (ceil(C/(32 W)), chunks), block (32, 32): each thread sums W adjacent columns, so a
// warp reads 32 W columns of a row at once (W = 2 for bf16: 128 bytes, as fp32 with W = 1; one
// bf16 column a thread moved 64 bytes an access and ran at half fp32's speed on an H200, run 8).
// term(row, col, v) writes the row's K contributions to columns col..col+W-1 into v[k][w].
// Each column's sum runs in the same order for every W: W changes speed, never a bit.
// partial: (K, chunks, C).
template <int K, int W, typename Term>
__global__ void partial_kernel(float* partial, Term term, int N, int C, int rows_per_chunk) {
  __shared__ float part[K][32][32 * W + 1];  // [sum][row lane][column in block], padded
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = (blockIdx.x * 32 + tx) * W;
  const int r0 = blockIdx.y * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  float acc[K][W];
#pragma unroll
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int w = 0; w < W; ++w) acc[k][w] = 0.0f;
  }
  if (c < C) {
#pragma unroll 4
    for (int r = r0 + ty; r < r1; r += 32) {
      float v[K][W];
      term(r, c, v);
#pragma unroll
      for (int k = 0; k < K; ++k) {
#pragma unroll
        for (int w = 0; w < W; ++w) acc[k][w] += v[k][w];
      }
    }
  }
#pragma unroll
  for (int k = 0; k < K; ++k) {
#pragma unroll
    for (int w = 0; w < W; ++w) part[k][ty][tx * W + w] = acc[k][w];
  }
  __syncthreads();
  if (ty == 0 && c < C) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
#pragma unroll
      for (int w = 0; w < W; ++w) {
        float s = 0.0f;
        for (int j = 0; j < 32; ++j) s += part[k][j][tx * W + w];
        partial[(static_cast<std::size_t>(k) * gridDim.y + blockIdx.y) * C + c + w] = s;
      }
    }
  }
}

template <int K>
__global__ void final_kernel(Outputs<K> out, const float* partial, int C, int chunks) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    float s = 0.0f;
    for (int y = 0; y < chunks; ++y) s += partial[(static_cast<std::size_t>(k) * chunks + y) * C + c];
    out.to[k][c] += s;
  }
}

// out.to[k][c] += sum over rows r of term(r, c)[k], on stream s, W columns a thread (C % W == 0;
// the term's loads must be aligned for W). The partials live in stream-ordered memory
// (use_device keeps the pool's blocks, so no allocation once warm).
template <int K, int W, typename Term>
void add(Outputs<K> out, Term term, int N, int C, cudaStream_t s) {
  static_assert(W >= 1, "at least one column a thread");
  if (N == 0 || C == 0) return;
  PPT_CHECK(C % W == 0, "column_sums: C={} is not a multiple of {} columns a thread", C, W);
  const int chunks = chunk_count(N), rows_per_chunk = (N + chunks - 1) / chunks;
  StreamScratch<float> partial(static_cast<std::size_t>(K) * chunks * C, s);
  const int column_blocks = (C / W + 31) / 32;
  launch_kernel(partial_kernel<K, W, Term>, dim3(column_blocks, chunks), dim3(32, 32), 0, s,
                partial.get(), term, N, C, rows_per_chunk);
  launch_kernel(final_kernel<K>, (C + 255) / 256, 256, 0, s, out, partial.get(), C, chunks);
}

}  // namespace pptrain::kernels::cuda::column_sums
