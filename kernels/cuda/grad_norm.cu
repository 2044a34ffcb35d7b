// The global gradient norm on the GPU: sum of squares in double with a deterministic
// two-kernel reduction (x: n fp32 values; clipping is AdamW's grad_scale). The same reduction,
// without squaring, sums a micro-batch's per-token losses.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;
// Partial sums: at most this many blocks, a number that depends on n only (never on the GPU),
// so the summation order, and with it every bit of the result, is fixed by n.
constexpr std::size_t kMaxBlocks = 1024;

template <bool kSquare>
__global__ void sum_partial_kernel(double* partial, const float* x, std::size_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double v = x[i];
    acc += kSquare ? v * v : v;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block of kMaxBlocks threads adds the `count` partials (thread i takes partial i).
__global__ void sum_final_kernel(double* acc, const double* partial, unsigned count, double scale) {
  __shared__ double shared[32];
  const double v = threadIdx.x < count ? partial[threadIdx.x] : 0.0;
  const double total = block_sum(v, shared);
  if (threadIdx.x == 0) *acc += scale * total;
}

template <bool kSquare>
void reduce_sum(double* acc, const float* x, std::size_t n, double scale, void* scratch,
                std::size_t scratch_bytes, Stream stream, const char* name) {
  if (n == 0) return;
  checks::reduce_scratch(scratch, scratch_bytes, kMaxBlocks * sizeof(double), name);
  const cudaStream_t s = to_cuda(stream);
  double* partial = static_cast<double*>(scratch);
  const unsigned blocks = grid_for(n, kThreads, kMaxBlocks);
  launch_kernel(sum_partial_kernel<kSquare>, blocks, kThreads, 0, s, partial, x, n);
  launch_kernel(sum_final_kernel, 1, kMaxBlocks, 0, s, acc, partial, blocks, scale);
}

}  // namespace

static_assert(kMaxBlocks * sizeof(double) == kSumOfSquaresScratchBytes, "one partial per block");

void sum_of_squares(double* acc, const float* x, std::size_t n, void* scratch,
                    std::size_t scratch_bytes, Stream stream) {
  reduce_sum<true>(acc, x, n, 1.0, scratch, scratch_bytes, stream, "sum_of_squares");
}

void add_scaled_sum(double* acc, const float* x, std::size_t n, double scale, void* scratch,
                    std::size_t scratch_bytes, Stream stream) {
  reduce_sum<false>(acc, x, n, scale, scratch, scratch_bytes, stream, "add_scaled_sum");
}

}  // namespace pptrain::kernels::cuda
