// DeviceBuffer (cudaMalloc counted per category) and the stream helpers of cuda_types.h.
#include "kernels/cuda/device_memory.h"

#include <utility>

#include "kernels/cuda/common.cuh"

namespace pptrain::kernels::cuda {

OwnedStream::OwnedStream() {
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_.handle = s;
}

OwnedStream::~OwnedStream() {
  // Destructors must not throw; a failure here means the context is already broken and the
  // next checked call reports it.
  if (stream_.handle != nullptr) cudaStreamDestroy(to_cuda(stream_));
}

void synchronize(Stream stream) { CUDA_CHECK(cudaStreamSynchronize(to_cuda(stream))); }

void copy_async(void* dst, const void* src, std::size_t bytes, Stream stream) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, to_cuda(stream)));
}

void zero_async(void* dst, std::size_t bytes, Stream stream) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, to_cuda(stream)));
}

DeviceBuffer::DeviceBuffer(MemoryTracker& tracker, MemCategory category, std::size_t bytes)
    : category_(category) {
  if (bytes > 0) {
    void* p = nullptr;
    const cudaError_t rc = cudaMalloc(&p, bytes);
    if (rc != cudaSuccess) {
      cudaGetLastError();  // clear it, so the next check is about the next call
      PPT_THROW("cannot allocate {:.1f} MiB of GPU memory for {} ({:.1f} MiB of {} already "
                "allocated): {}; reduce micro_batch_size or use more pipeline stages",
                bytes / 1048576.0, mem_category_name(category),
                tracker.current(category) / 1048576.0, mem_category_name(category),
                cudaGetErrorString(rc));
    }
    data_ = p;
  }
  tracker_ = &tracker;
  bytes_ = bytes;
  tracker_->add(category_, bytes_);
}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : tracker_(std::exchange(other.tracker_, nullptr)),
      category_(other.category_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    tracker_ = std::exchange(other.tracker_, nullptr);
    category_ = other.category_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

PinnedHostBuffer::PinnedHostBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) CUDA_CHECK(cudaMallocHost(&data_, bytes));
}

PinnedHostBuffer::~PinnedHostBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);  // no throw from a destructor
}

PinnedHostBuffer::PinnedHostBuffer(PinnedHostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedHostBuffer& PinnedHostBuffer::operator=(PinnedHostBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

StreamEvent::StreamEvent(bool timed) : timed_(timed) {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, timed ? cudaEventDefault : cudaEventDisableTiming));
  handle_ = e;
}

StreamEvent::~StreamEvent() {
  if (handle_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(handle_));
}

void StreamEvent::record(Stream stream) {
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(handle_), to_cuda(stream)));
  recorded_ = true;
}

bool StreamEvent::done() const {
  if (!recorded_) return true;
  const cudaError_t rc = cudaEventQuery(static_cast<cudaEvent_t>(handle_));
  if (rc == cudaErrorNotReady) return false;
  CUDA_CHECK(rc);
  return true;
}

void StreamEvent::wait_host() const {
  if (recorded_) CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(handle_)));
}

double elapsed_ms(const StreamEvent& from, const StreamEvent& to) {
  PPT_CHECK(from.timed_ && to.timed_, "elapsed time between events made without timing");
  PPT_CHECK(from.recorded_ && to.recorded_, "elapsed time between events never recorded");
  float ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(from.handle_), static_cast<cudaEvent_t>(to.handle_)));
  return ms;
}

void DeviceBuffer::release() noexcept {
  if (data_ != nullptr) cudaFree(data_);  // no throw from a destructor; see ~OwnedStream
  if (tracker_ != nullptr) tracker_->release(category_, bytes_);
  tracker_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::zero(Stream stream) {
  if (bytes_ > 0) CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes_, to_cuda(stream)));
}

void DeviceBuffer::poison(Stream stream) {
  if (bytes_ > 0) CUDA_CHECK(cudaMemsetAsync(data_, 0xFF, bytes_, to_cuda(stream)));
}

void DeviceBuffer::copy_from_host(const void* src, std::size_t bytes) {
  PPT_CHECK(bytes <= bytes_, "copy of {} bytes into a device buffer of {} bytes", bytes, bytes_);
  if (bytes > 0) CUDA_CHECK(cudaMemcpy(data_, src, bytes, cudaMemcpyHostToDevice));
}

void DeviceBuffer::copy_to_host(void* dst, std::size_t bytes) const {
  PPT_CHECK(bytes <= bytes_, "copy of {} bytes out of a device buffer of {} bytes", bytes, bytes_);
  if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, data_, bytes, cudaMemcpyDeviceToHost));
}

}  // namespace pptrain::kernels::cuda
