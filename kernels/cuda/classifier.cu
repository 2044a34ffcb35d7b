// Fused softmax + cross-entropy (+ dlogits) on the GPU. logits (N,Vp) in the storage type S with
// real columns [0,V); losses (N) fp32; targets (N) in [0,V).
//
// One block per row. Each thread keeps an online (max, sum of exp) over its strided columns;
// the block combines them (fixed-order reductions), so one read of the row gives the loss, and
// a second pass overwrites it with dloss_scale * (softmax - onehot): a second read, or with
// hold_row (bf16 rows up to 65536 columns) over the row held in registers. No probabilities
// are ever stored. A target outside [0,V) gives a NaN loss (and no gradient), so the bug
// cannot hide.
#include <cstdint>
#include <cstring>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 512;

// Adds x to a running (max m, sum of exp against m) pair: one read of the row gives both.
__device__ __forceinline__ void online_softmax_add(float x, float& m, float& s) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;  // rescale what was summed against the old max
    m = x;
  } else {
    s += expf(x - m);
  }
}

// The row's target, whether it is a real column, and its logit, read before the block first
// synchronises: after that, other threads may overwrite the row.
struct RowTarget {
  int column;
  bool ok;
  float logit;
};
template <typename S>
__device__ __forceinline__ RowTarget row_target(const S* row, int target, int V) {
  const bool ok = target >= 0 && target < V;
  return {target, ok, ok ? to_f32(row[target]) : 0.0f};
}

// The row's max and sum of exp against it from every thread's online pair (fixed-order block
// reductions); thread 0 writes the row's loss (NaN for a target outside [0, V)).
__device__ __forceinline__ float2 row_max_and_sum(float m, float s, float* shared, float* loss,
                                                  bool target_ok, float z_target) {
  const float row_max = block_max(m, shared);
  const float row_sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - row_max), shared);
  if (threadIdx.x == 0) *loss = target_ok ? logf(row_sum) + row_max - z_target : NAN;
  return make_float2(row_max, row_sum);
}

template <typename S>
__global__ void classifier_kernel(S* logits, float* losses, const int* targets, int V, int Vp,
                                  float dloss_scale, bool compute_grad) {
  __shared__ float shared[32];
  const int row = blockIdx.x;
  S* z = logits + static_cast<std::size_t>(row) * Vp;
  const RowTarget t = row_target(z, targets[row], V);

  float m = -INFINITY, s = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) online_softmax_add(to_f32(z[i]), m, s);
  const float2 stats = row_max_and_sum(m, s, shared, &losses[row], t.ok, t.logit);
  const float row_max = stats.x, row_sum = stats.y;
  if (!compute_grad || !t.ok) return;
  const float inv_sum = 1.0f / row_sum;
  for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
    float g = 0.0f;  // padded columns take no part
    if (i < V) {
      const float p = expf(to_f32(z[i]) - row_max) * inv_sum;
      g = dloss_scale * (p - (i == t.column ? 1.0f : 0.0f));
    }
    z[i] = from_f32<S>(g);
  }
}

// The same for bf16 rows of packs of kPack columns (Vp % kPack == 0, rows aligned to a pack):
// kPack = 8 moves 16 bytes per access, kPack = 2 four. The row (100 KB for GPT-2's Vp) is read
// twice and written once, and one-column or 4-byte accesses leave too few bytes in flight per SM
// to reach HBM bandwidth (run 3: one-column bf16 cost layernorm's backward 5x; run 6: the
// 4-byte version still moved only ~1.5 TB/s). Columns >= V (padding, V may be odd) take no part.
// A pack moves as one integer (a struct of bf16 pairs would be copied member by member).
template <int kPack>
struct PackBits;
template <>
struct PackBits<2> {
  using type = unsigned int;
};
template <>
struct PackBits<8> {
  using type = uint4;
};

// One pack's columns first_col.. added to a thread's online (max, sum of exp); columns >= V
// take no part.
template <int kPack, typename Bits>
__device__ __forceinline__ void pack_softmax_add(const Bits& bits, int first_col, int V, float& m,
                                                 float& s) {
  __nv_bfloat162 h[kPack / 2];
  std::memcpy(static_cast<void*>(h), &bits, sizeof bits);  // bf16 pairs are bit patterns
#pragma unroll
  for (int j = 0; j < kPack / 2; ++j) {
    const float2 x = __bfloat1622float2(h[j]);
    const int col = first_col + 2 * j;
    if (col < V) online_softmax_add(x.x, m, s);
    if (col + 1 < V) online_softmax_add(x.y, m, s);
  }
}

// The pack's dlogits: dloss_scale * (softmax - onehot), 0 for columns >= V.
template <int kPack, typename Bits>
__device__ __forceinline__ Bits pack_gradient(const Bits& bits, int first_col, int V, int target,
                                              float row_max, float inv_sum, float dloss_scale) {
  __nv_bfloat162 h[kPack / 2], out[kPack / 2];
  std::memcpy(static_cast<void*>(h), &bits, sizeof bits);
#pragma unroll
  for (int j = 0; j < kPack / 2; ++j) {
    const float2 x = __bfloat1622float2(h[j]);
    float g[2] = {0.0f, 0.0f};
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int col = first_col + 2 * j + e;
      if (col < V) {
        const float pr = expf((e == 0 ? x.x : x.y) - row_max) * inv_sum;
        g[e] = dloss_scale * (pr - (col == target ? 1.0f : 0.0f));
      }
    }
    out[j] = __floats2bfloat162_rn(g[0], g[1]);
  }
  Bits result;
  std::memcpy(&result, out, sizeof result);
  return result;
}

template <int kPack>
__global__ void classifier_bf16_packed_kernel(bf16* logits, float* losses, const int* targets,
                                              int V, int Vp, float dloss_scale, bool compute_grad) {
  using Bits = typename PackBits<kPack>::type;
  static_assert(sizeof(Bits) == 2 * kPack, "a pack is kPack bf16 values");
  __shared__ float shared[32];
  const int row = blockIdx.x, packs = Vp / kPack;
  bf16* zrow = logits + static_cast<std::size_t>(row) * Vp;
  Bits* z = reinterpret_cast<Bits*>(zrow);
  const RowTarget t = row_target(zrow, targets[row], V);

  float m = -INFINITY, s = 0.0f;
  for (int i = threadIdx.x; i < packs; i += blockDim.x) {
    pack_softmax_add<kPack>(z[i], i * kPack, V, m, s);
  }
  const float2 stats = row_max_and_sum(m, s, shared, &losses[row], t.ok, t.logit);
  const float row_max = stats.x, row_sum = stats.y;
  if (!compute_grad || !t.ok) return;
  const float inv_sum = 1.0f / row_sum;
  for (int i = threadIdx.x; i < packs; i += blockDim.x) {
    z[i] = pack_gradient<kPack>(z[i], i * kPack, V, t.column, row_max, inv_sum, dloss_scale);
  }
}

// The same with the row held in registers between its two passes (16-byte packs, up to kHeld
// a thread: kThreads x 16 x 8 = 65536 columns): HBM sees one read and one write of the row
// instead of two reads and a write. Run 8 (H200) timed the two-pass kernel at 1.51 ms for
// 16384 rows of 50304, 2.2 TB/s of the traffic it asks for; the second read of a 100 KB row
// mostly misses the L2 with ~500 rows in flight. A thread takes the packs the two-pass kernel
// gives it, in the same order, so both give bitwise the same results.
template <int kHeld>
__global__ void __launch_bounds__(kThreads)
    classifier_bf16_held_kernel(bf16* logits, float* losses, const int* targets, int V, int Vp,
                                float dloss_scale, bool compute_grad) {
  constexpr int kPack = 8;
  using Bits = uint4;
  __shared__ float shared[32];
  const int row = blockIdx.x, packs = Vp / kPack;
  bf16* zrow = logits + static_cast<std::size_t>(row) * Vp;
  Bits* z = reinterpret_cast<Bits*>(zrow);
  const RowTarget t = row_target(zrow, targets[row], V);

  Bits held[kHeld];  // indexed by unrolled constants only, so it stays in registers
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < packs) held[k] = z[i];
  }
  float m = -INFINITY, s = 0.0f;
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < packs) pack_softmax_add<kPack>(held[k], i * kPack, V, m, s);
  }
  const float2 stats = row_max_and_sum(m, s, shared, &losses[row], t.ok, t.logit);
  const float row_max = stats.x, row_sum = stats.y;
  if (!compute_grad || !t.ok) return;
  const float inv_sum = 1.0f / row_sum;
#pragma unroll
  for (int k = 0; k < kHeld; ++k) {
    const int i = threadIdx.x + k * kThreads;
    if (i < packs) {
      z[i] = pack_gradient<kPack>(held[k], i * kPack, V, t.column, row_max, inv_sum, dloss_scale);
    }
  }
}

}  // namespace

void classifier_forward_backward(void* logits, float* losses, const int* targets, int N, int V,
                                 int Vp, float dloss_scale, bool compute_grad, DType dt,
                                 Stream stream, bool hold_row) {
  PPT_CHECK(N >= 0 && V > 0 && Vp >= V, "classifier: bad shape N={} V={} Vp={}", N, V, Vp);
  if (N == 0) return;
  const auto address = reinterpret_cast<std::uintptr_t>(logits);
  bf16* z = static_cast<bf16*>(logits);
  if (dt == DType::BF16 && Vp % 8 == 0 && address % 16 == 0) {
    // The row in registers where it fits (the fewest held packs that do), else two passes.
    const int packs_per_thread = (Vp / 8 + kThreads - 1) / kThreads;
    const auto kernel = !hold_row              ? classifier_bf16_packed_kernel<8>
                        : packs_per_thread <= 4    ? classifier_bf16_held_kernel<4>
                        : packs_per_thread <= 8  ? classifier_bf16_held_kernel<8>
                        : packs_per_thread <= 16 ? classifier_bf16_held_kernel<16>
                                                 : classifier_bf16_packed_kernel<8>;
    launch_kernel(kernel, N, kThreads, 0, to_cuda(stream), z, losses, targets, V, Vp, dloss_scale,
                  compute_grad);
    return;
  }
  if (dt == DType::BF16 && Vp % 2 == 0 && address % 4 == 0) {
    launch_kernel(classifier_bf16_packed_kernel<2>, N, kThreads, 0, to_cuda(stream), z, losses,
                  targets, V, Vp, dloss_scale, compute_grad);
    return;
  }
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(classifier_kernel<S>, N, kThreads, 0, to_cuda(stream), static_cast<S*>(logits),
                  losses, targets, V, Vp, dloss_scale, compute_grad);
  });
}

}  // namespace pptrain::kernels::cuda
