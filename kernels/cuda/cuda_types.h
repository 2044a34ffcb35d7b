// Types shared by the CUDA backend's host API. Plain C++ (no CUDA headers), so the runtime and
// the tests compile with g++ and only the .cu files see cuda_runtime.h and cuda_bf16.h.
#pragma once

#include <cstddef>

namespace pptrain::kernels::cuda {

// Storage type of activations, activation gradients and weights passed to an op. Precision is
// a runtime argument: one build serves both modes. Whatever the storage type, every op
// accumulates in fp32; statistics (layernorm mean/rstd, attention logsumexp, losses), parameter
// gradients, master weights and optimizer moments are always fp32 (see cuda_ops.h).
enum class DType { F32, BF16 };

inline std::size_t dtype_size(DType dt) { return dt == DType::F32 ? 4 : 2; }
inline const char* dtype_name(DType dt) { return dt == DType::F32 ? "fp32" : "bf16"; }

// Fixed device allocations, here so that the memory plan (model/stage_footprint.h) counts
// them in builds without CUDA: the cuBLASLt workspace of a ComputeDevice, and the partial
// sums of sum_of_squares (one double per block of its first pass).
inline constexpr std::size_t kCublasLtWorkspaceBytes = 32u << 20;
inline constexpr std::size_t kSumOfSquaresScratchBytes = 1024 * sizeof(double);

// A cudaStream_t, opaque to g++ code. The default value is the legacy default stream.
struct Stream {
  void* handle = nullptr;
};

// An owned non-blocking stream (cudaStreamCreateWithFlags(cudaStreamNonBlocking)).
class OwnedStream {
 public:
  OwnedStream();
  ~OwnedStream();
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  Stream get() const { return stream_; }

 private:
  Stream stream_;
};

// Waits for all work queued on the stream; throws pptrain::Error on an asynchronous fault.
void synchronize(Stream stream);
// Asynchronous on `stream`: a copy in any direction (host or device pointers, unified
// addressing; a pageable host source or destination makes it synchronous for the host), and
// setting bytes to zero (device memory).
void copy_async(void* dst, const void* src, std::size_t bytes, Stream stream);
void zero_async(void* dst, std::size_t bytes, Stream stream);

}  // namespace pptrain::kernels::cuda
