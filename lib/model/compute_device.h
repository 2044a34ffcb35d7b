// The GPU one rank computes on (DESIGN.md section 3): the selected device, its compute stream
// (every kernel of the rank runs on it, in order), one cuBLASLt context with its workspace,
// the storage precision, and the tracker that counts GPU memory per category (params, grads,
// optimizer, activations, workspace) as the host tracker counts host memory. Declared in
// every build; without the CUDA backend, constructing one throws a clear error.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain {
namespace kernels::cuda {
class CublasLtContext;
struct AttentionTiling;
}

class ComputeDevice {
 public:
  // Makes GPU `index` current for this process. precision: "fp32" | "bf16".
  ComputeDevice(int index, const std::string& precision);
  ~ComputeDevice();
  ComputeDevice(const ComputeDevice&) = delete;
  ComputeDevice& operator=(const ComputeDevice&) = delete;

  int index() const { return index_; }
  kernels::cuda::DType dtype() const { return dtype_; }
  kernels::cuda::Stream stream() const;
  kernels::cuda::CublasLtContext& blas();
  MemoryTracker& memory() { return memory_; }
  std::string description() const;  // "GPU 0: NVIDIA H200 (sm_90, 139.8 GiB), bf16"
  // Waits for the stream's work; throws on an asynchronous fault.
  void synchronize() const;
  // The attention kernels' fastest tile shapes for (B, T, C, NH) on this GPU in this precision:
  // timed once per shape (kernels/cuda/attention_tuning.h) on `scratch` (device memory of at
  // least attention_tuning_scratch_bytes), then remembered. Shapes give bitwise the same
  // results, so which one wins changes speed only.
  const kernels::cuda::AttentionTiling& attention_tiling(int B, int T, int C, int NH, void* scratch,
                                                         std::size_t scratch_bytes);
  // One line per timed attention shape, for the log (empty if nothing was timed).
  std::vector<std::string> tuning_report() const;

 private:
  struct Impl;
  int index_ = 0;
  kernels::cuda::DType dtype_ = kernels::cuda::DType::F32;
  MemoryTracker memory_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pptrain
