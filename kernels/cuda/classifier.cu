// Fused softmax + cross-entropy (+ dlogits) on the GPU. logits (N,Vp) in the storage type S with
// real columns [0,V); losses (N) fp32; targets (N) in [0,V).
//
// One block per row. Each thread keeps an online (max, sum of exp) over its strided columns;
// the block combines them (fixed-order reductions), so one read of the row gives the loss, and
// a second read overwrites it with dloss_scale * (softmax - onehot). No probabilities are ever
// stored. A target outside [0,V) gives a NaN loss (and no gradient), so the bug cannot hide.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 512;

template <typename S>
__global__ void classifier_kernel(S* logits, float* losses, const int* targets, int V, int Vp,
                                  float dloss_scale, bool compute_grad) {
  __shared__ float shared[32];
  const int row = blockIdx.x;
  S* z = logits + static_cast<std::size_t>(row) * Vp;
  const int target = targets[row];
  const bool target_ok = target >= 0 && target < V;
  // Read before the block synchronises: after that, other threads may overwrite the row.
  const float z_target = target_ok ? to_f32(z[target]) : 0.0f;

  float m = -INFINITY, s = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float x = to_f32(z[i]);
    if (x > m) {
      s = s * expf(m - x) + 1.0f;  // rescale what was summed against the old max
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  const float row_max = block_max(m, shared);
  const float row_sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - row_max), shared);
  if (threadIdx.x == 0) {
    losses[row] = target_ok ? logf(row_sum) + row_max - z_target : NAN;
  }
  if (!compute_grad || !target_ok) return;
  const float inv_sum = 1.0f / row_sum;
  for (int i = threadIdx.x; i < Vp; i += blockDim.x) {
    float g = 0.0f;  // padded columns take no part
    if (i < V) {
      const float p = expf(to_f32(z[i]) - row_max) * inv_sum;
      g = dloss_scale * (p - (i == target ? 1.0f : 0.0f));
    }
    z[i] = from_f32<S>(g);
  }
}

}  // namespace

void classifier_forward_backward(void* logits, float* losses, const int* targets, int N, int V,
                                 int Vp, float dloss_scale, bool compute_grad, DType dt,
                                 Stream stream) {
  PPT_CHECK(N >= 0 && V > 0 && Vp >= V, "classifier: bad shape N={} V={} Vp={}", N, V, Vp);
  if (N == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    classifier_kernel<S><<<N, kThreads, 0, to_cuda(stream)>>>(
        static_cast<S*>(logits), losses, targets, V, Vp, dloss_scale, compute_grad);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace pptrain::kernels::cuda
