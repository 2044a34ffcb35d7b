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

// Page-locked host memory (cudaMallocHost): a copy from it to the device is truly
// asynchronous, where one from pageable memory first waits for the whole stream. Move-only.
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  explicit PinnedHostBuffer(std::size_t bytes);
  ~PinnedHostBuffer();
  PinnedHostBuffer(PinnedHostBuffer&& other) noexcept;
  PinnedHostBuffer& operator=(PinnedHostBuffer&& other) noexcept;
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  void* data() { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// A point in a stream's queue (a cudaEvent_t): record() marks it, wait_host() blocks the host
// until the work queued before it is done (returns at once if never recorded). A timed one
// also keeps when the GPU reached it, for elapsed_ms; it costs a timestamp per record, so
// only the executor's timeline of compute actions uses them (model/stream_clock.h). Not
// copyable.
class StreamEvent {
 public:
  explicit StreamEvent(bool timed = false);
  ~StreamEvent();
  StreamEvent(const StreamEvent&) = delete;
  StreamEvent& operator=(const StreamEvent&) = delete;
  void record(Stream stream);
  void wait_host() const;
  // True when the work before the last record() is done (or nothing was recorded); never
  // blocks; throws on an asynchronous fault. For polling under a timeout.
  bool done() const;

 private:
  friend double elapsed_ms(const StreamEvent& from, const StreamEvent& to);
  void* handle_ = nullptr;
  bool timed_ = false;
  bool recorded_ = false;
  double host_ms_ = 0.0;  // the emulated backend's timestamp: its work runs when queued
};
// The GPU time from `from` to `to`, both timed, recorded and passed (wait_host on `to` first).
double elapsed_ms(const StreamEvent& from, const StreamEvent& to);

}  // namespace pptrain::kernels::cuda
