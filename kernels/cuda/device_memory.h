// Device memory with the host's accounting: every DeviceBuffer counts its bytes against one
// MemCategory of a MemoryTracker (lib/core/memory.h), so a run reports per-category peaks of
// GPU memory (params, grads, optimizer, activations, workspace) exactly as it does on the CPU.
// Use one tracker per device, apart from the host tracker. Plain C++: g++ code includes this.
#pragma once

#include <cstddef>

#include "core/memory.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain::kernels::cuda {

// An owned cudaMalloc allocation; contents are undefined until written (call zero() when an
// accumulating backward will add into it). Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(MemoryTracker& tracker, MemCategory category, std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T>
  T* as() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }
  MemCategory category() const { return category_; }

  // Asynchronous on `stream`.
  void zero(Stream stream = {});
  // Every byte 0xFF: NaN as fp32 and as bf16, -1 as int. Tests poison outputs with it so an
  // element a kernel forgot to write cannot pass.
  void poison(Stream stream = {});
  // Blocking copies of the first `bytes` bytes (bytes <= this->bytes()). They are ordered after
  // the legacy default stream only: synchronize() an OwnedStream before reading its results.
  void copy_from_host(const void* src, std::size_t bytes);
  void copy_to_host(void* dst, std::size_t bytes) const;

 private:
  void release() noexcept;
  MemoryTracker* tracker_ = nullptr;
  MemCategory category_ = MemCategory::Workspace;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace pptrain::kernels::cuda
