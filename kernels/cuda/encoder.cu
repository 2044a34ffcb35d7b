// Token + position embedding on the GPU. Shapes: inp (B,T) int32 ids in [0,Vp), wte (Vp,C),
// wpe (maxT,C), out/dout (B,T,C) in the storage type S; dwte/dwpe fp32.
//
// The backward is a scatter-add by token id. It is made deterministic without float atomics:
// the (id, position) pairs are sorted with CUB's stable radix sort, so each id's positions sit
// in one run, in increasing position order; the warp that owns (id, 32 channels) sums that run
// in order. Same inputs, same bits, whatever the scheduling.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernel_launch.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/op_checks.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename S>
__global__ void encoder_forward_kernel(S* out, const int* inp, const S* wte, const S* wpe, int T,
                                       int C, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const std::size_t bt = i / C;
    const int c = static_cast<int>(i % C);
    const int t = static_cast<int>(bt % T);
    const std::size_t id = static_cast<std::size_t>(inp[bt]);
    out[i] = from_f32<S>(to_f32(wte[id * C + c]) + to_f32(wpe[static_cast<std::size_t>(t) * C + c]));
  }
}

__global__ void iota_kernel(int* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = i;
}

// One warp per sorted slot k (grid.x) and 32-channel chunk (grid.y). Only the warp at the first
// slot of an id's run works: it sums dout over the run (positions ascending) and adds once.
template <typename S>
__global__ void encoder_backward_wte_kernel(float* dwte, const S* dout, const int* ids,
                                            const int* pos, int n, int C) {
  const int k = static_cast<int>((static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32);
  if (k >= n) return;
  const int id = ids[k];
  if (k > 0 && ids[k - 1] == id) return;
  const int c = blockIdx.y * 32 + threadIdx.x % 32;
  if (c >= C) return;
  float acc = 0.0f;
  for (int j = k; j < n && ids[j] == id; ++j) {
    acc += to_f32(dout[static_cast<std::size_t>(pos[j]) * C + c]);
  }
  dwte[static_cast<std::size_t>(id) * C + c] += acc;
}

// dwpe[t,c] += sum over b of dout[b,t,c], b ascending: one thread per (t,c).
template <typename S>
__global__ void encoder_backward_wpe_kernel(float* dwpe, const S* dout, int B, int T, int C) {
  const std::size_t n = static_cast<std::size_t>(T) * C;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float acc = 0.0f;
    for (int b = 0; b < B; ++b) acc += to_f32(dout[static_cast<std::size_t>(b) * n + i]);
    dwpe[i] += acc;
  }
}

// Radix-sort only the bits an id in [0,Vp) can have.
int id_bits(int Vp) {
  int bits = 1;
  while ((std::int64_t{1} << bits) < Vp) ++bits;
  return bits;
}

std::size_t align256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

// Scratch layout: positions 0..n-1, sorted ids, sorted positions (n ints each), CUB's storage.
std::size_t cub_sort_bytes(int n, int Vp) {
  std::size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const unsigned*>(nullptr), static_cast<unsigned*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), n, 0, id_bits(Vp)));
  return bytes;
}

}  // namespace

void encoder_forward(void* out, const int* inp, const void* wte, const void* wpe, int B, int T,
                     int C, DType dt, Stream stream) {
  checks::encoder_shape(B, T, C);
  const std::size_t n = static_cast<std::size_t>(B) * T * C;
  if (n == 0) return;
  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    launch_kernel(encoder_forward_kernel<S>, grid_for(n, kThreads), kThreads, 0, to_cuda(stream), static_cast<S*>(out), inp, static_cast<const S*>(wte), static_cast<const S*>(wpe), T, C, n);
  });
}

std::size_t encoder_backward_scratch_bytes(int B, int T, int Vp) {
  checks::encoder_shape(B, T, 0);
  PPT_CHECK(Vp > 0, "encoder: Vp must be positive, got {}", Vp);
  const int n = B * T;
  if (n == 0) return 0;
  return 3 * align256(static_cast<std::size_t>(n) * sizeof(int)) + cub_sort_bytes(n, Vp);
}

void encoder_backward(float* dwte, float* dwpe, const void* dout, const int* inp, int B, int T,
                      int C, int Vp, DType dt, void* scratch, std::size_t scratch_bytes,
                      Stream stream) {
  checks::encoder_shape(B, T, C);
  const int n = B * T;
  if (n == 0 || C == 0) return;
  const std::size_t need = encoder_backward_scratch_bytes(B, T, Vp);
  checks::encoder_scratch(scratch, scratch_bytes, need);
  const cudaStream_t s = to_cuda(stream);

  char* p = static_cast<char*>(scratch);
  const std::size_t slot = align256(static_cast<std::size_t>(n) * sizeof(int));
  int* positions = reinterpret_cast<int*>(p);
  int* sorted_ids = reinterpret_cast<int*>(p + slot);
  int* sorted_pos = reinterpret_cast<int*>(p + 2 * slot);
  void* cub_storage = p + 3 * slot;
  std::size_t cub_bytes = need - 3 * slot;

  launch_kernel(iota_kernel, grid_for(n, kThreads), kThreads, 0, s, positions, n);
  // Ids are non-negative, so sorting them as unsigned bits [0, id_bits) orders them correctly.
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      cub_storage, cub_bytes, reinterpret_cast<const unsigned*>(inp),
      reinterpret_cast<unsigned*>(sorted_ids), positions, sorted_pos, n, 0, id_bits(Vp), s));
  CUDA_CHECK_LAUNCH();

  dispatch_dtype(dt, [&](auto tag) {
    using S = typename decltype(tag)::type;
    const S* d = static_cast<const S*>(dout);
    constexpr int kWarpsPerBlock = kThreads / 32;
    const dim3 grid((n + kWarpsPerBlock - 1) / kWarpsPerBlock, (C + 31) / 32);
    PPT_CHECK(grid.y <= 65535, "encoder_backward: C = {} too large", C);
    launch_kernel(encoder_backward_wte_kernel<S>, grid, kThreads, 0, s, dwte, d, sorted_ids, sorted_pos, n, C);
    const std::size_t tc = static_cast<std::size_t>(T) * C;
    launch_kernel(encoder_backward_wpe_kernel<S>, grid_for(tc, kThreads), kThreads, 0, s, dwpe, d, B, T, C);
  });
}

}  // namespace pptrain::kernels::cuda
