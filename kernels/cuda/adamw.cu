// AdamW step on the GPU over a stage's tensors: fp32 master params, grads, m, v, the same update
// as the CPU twin (kernels/cpu/adamw.cpp), optionally writing the stochastically rounded bf16
// working copy the forward reads. Many tensors per launch (PyTorch's multi-tensor apply): one
// launch per tensor left the GPU idle between launches of a few microseconds of work for the
// 768-value biases and norms, right after the host read the gradient norm.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kValuesPerThread = 4;
constexpr std::size_t kBlockValues = static_cast<std::size_t>(kThreads) * kValuesPerThread;

struct AdamwArgs {
  float lr, beta1, beta2, eps, grad_scale;
  float c1, c2;  // bias corrections 1 - beta^t
};

// One launch's tensors, passed by value (kernel parameter space). Block b works on values
// [(b - first_block[k]) * kBlockValues, +kBlockValues) of the tensor k whose blocks hold b.
struct TensorBatch {
  int count;
  unsigned first_block[kAdamwTensorsPerLaunch + 1];
  std::size_t offset[kAdamwTensorsPerLaunch], n[kAdamwTensorsPerLaunch];
  std::uint64_t seed[kAdamwTensorsPerLaunch];
  float weight_decay[kAdamwTensorsPerLaunch];
};

// CUDA's 4 KiB limit on a kernel's parameters (12.1 raised it to 32 KiB; under 4 any toolkit works).
static_assert(sizeof(TensorBatch) + sizeof(AdamwBuffers) + sizeof(AdamwArgs) <= 4096,
              "adamw_kernel's arguments exceed 4 KiB: lower kAdamwTensorsPerLaunch");

__device__ int tensor_of_block(const TensorBatch& batch, unsigned block) {
  int lo = 0, hi = batch.count - 1;  // the last k with first_block[k] <= block
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (batch.first_block[mid] <= block) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

__global__ void adamw_kernel(AdamwBuffers b, TensorBatch batch, AdamwArgs a) {
  const int k = tensor_of_block(batch, blockIdx.x);
  const std::size_t base = batch.offset[k], n = batch.n[k];
  const std::size_t begin = static_cast<std::size_t>(blockIdx.x - batch.first_block[k]) * kBlockValues;
  const float decay = batch.weight_decay[k];
  for (int r = 0; r < kValuesPerThread; ++r) {
    const std::size_t i = begin + static_cast<std::size_t>(r) * kThreads + threadIdx.x;
    if (i >= n) break;
    const std::size_t w = base + i;
    const float g = b.grads[w] * a.grad_scale;
    const float mi = a.beta1 * b.m[w] + (1.0f - a.beta1) * g;
    const float vi = a.beta2 * b.v[w] + (1.0f - a.beta2) * g * g;
    b.m[w] = mi;
    b.v[w] = vi;
    const float mhat = mi / a.c1;
    const float vhat = vi / a.c2;
    float p = b.params[w];
    p -= a.lr * (mhat / (sqrtf(vhat) + a.eps) + decay * p);
    b.params[w] = p;
    // Bits by index within the tensor: the same as the tensor's own stochastic cast.
    if (b.params_bf16 != nullptr) {
      b.params_bf16[w] = f32_to_bf16_bits_stochastic(p, random_bits(batch.seed[k], i));
    }
  }
}

}  // namespace

void adamw_update(const AdamwBuffers& buffers, const std::vector<AdamwTensor>& tensors,
                  const AdamwStep& step, Stream stream) {
  checks::adamw(buffers, step);
  // Bias corrections in double, as the CPU twin: beta2^t for large t needs the precision.
  const AdamwArgs a{step.lr, step.beta1, step.beta2, step.eps, step.grad_scale,
                    static_cast<float>(1.0 - std::pow(static_cast<double>(step.beta1), step.t)),
                    static_cast<float>(1.0 - std::pow(static_cast<double>(step.beta2), step.t))};
  std::size_t next = 0;
  while (next < tensors.size()) {
    TensorBatch batch{};
    std::size_t blocks = 0;
    for (; next < tensors.size() && batch.count < kAdamwTensorsPerLaunch; ++next) {
      const AdamwTensor& t = tensors[next];
      if (t.n == 0) continue;
      const int k = batch.count++;
      batch.first_block[k] = static_cast<unsigned>(blocks);
      batch.offset[k] = t.offset;
      batch.n[k] = t.n;
      batch.seed[k] = t.seed;
      batch.weight_decay[k] = t.weight_decay;
      blocks += (t.n + kBlockValues - 1) / kBlockValues;
      PPT_CHECK(blocks < (std::size_t{1} << 31), "adamw_update: {} blocks in one launch", blocks);
    }
    if (batch.count == 0) continue;
    batch.first_block[batch.count] = static_cast<unsigned>(blocks);
    launch_kernel(adamw_kernel, static_cast<unsigned>(blocks), kThreads, 0, to_cuda(stream), buffers,
                  batch, a);
  }
}

}  // namespace pptrain::kernels::cuda
