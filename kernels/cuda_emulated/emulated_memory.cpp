// DeviceBuffer, PinnedHostBuffer, StreamEvent and the stream helpers of cuda_types.h over host
// memory (PPTRAIN_CUDA=EMULATE): every op runs synchronously on the calling thread, so streams
// and events carry nothing and synchronize() has nothing to wait for. Allocations are 256-byte
// aligned, as cudaMalloc's, and counted per category exactly as in kernels/cuda/device_memory.cu.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "core/error.h"
#include "kernels/cuda/device_memory.h"

namespace pptrain::kernels::cuda {
namespace {

constexpr std::size_t kAlign = 256;

void* aligned_alloc_or_null(std::size_t bytes) {
  return ::operator new(bytes, std::align_val_t{kAlign}, std::nothrow);
}
void aligned_free(void* p) noexcept {
  if (p != nullptr) ::operator delete(p, std::align_val_t{kAlign});
}

}  // namespace

OwnedStream::OwnedStream() = default;
OwnedStream::~OwnedStream() = default;

void synchronize(Stream) {}

void copy_async(void* dst, const void* src, std::size_t bytes, Stream) {
  if (bytes == 0) return;
  std::memmove(dst, src, bytes);
}

void zero_async(void* dst, std::size_t bytes, Stream) {
  if (bytes == 0) return;
  std::memset(dst, 0, bytes);
}

DeviceBuffer::DeviceBuffer(MemoryTracker& tracker, MemCategory category, std::size_t bytes)
    : category_(category) {
  if (bytes > 0) {
    data_ = aligned_alloc_or_null(bytes);
    PPT_CHECK(data_ != nullptr,
              "cannot allocate {:.1f} MiB of emulated GPU memory for {} ({:.1f} MiB of {} already "
              "allocated); reduce micro_batch_size or use more pipeline stages",
              bytes / 1048576.0, mem_category_name(category),
              tracker.current(category) / 1048576.0, mem_category_name(category));
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

void DeviceBuffer::release() noexcept {
  aligned_free(data_);
  if (tracker_ != nullptr) tracker_->release(category_, bytes_);
  tracker_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

void DeviceBuffer::zero(Stream) {
  if (bytes_ > 0) std::memset(data_, 0, bytes_);
}

void DeviceBuffer::poison(Stream) {
  if (bytes_ > 0) std::memset(data_, 0xFF, bytes_);
}

void DeviceBuffer::copy_from_host(const void* src, std::size_t bytes) {
  PPT_CHECK(bytes <= bytes_, "copy of {} bytes into a device buffer of {} bytes", bytes, bytes_);
  if (bytes > 0) std::memcpy(data_, src, bytes);
}

void DeviceBuffer::copy_to_host(void* dst, std::size_t bytes) const {
  PPT_CHECK(bytes <= bytes_, "copy of {} bytes out of a device buffer of {} bytes", bytes, bytes_);
  if (bytes > 0) std::memcpy(dst, data_, bytes);
}

PinnedHostBuffer::PinnedHostBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes > 0) {
    data_ = aligned_alloc_or_null(bytes);
    PPT_CHECK(data_ != nullptr, "cannot allocate {} bytes of (emulated) pinned host memory", bytes);
  }
}

PinnedHostBuffer::~PinnedHostBuffer() { aligned_free(data_); }

PinnedHostBuffer::PinnedHostBuffer(PinnedHostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedHostBuffer& PinnedHostBuffer::operator=(PinnedHostBuffer&& other) noexcept {
  if (this != &other) {
    aligned_free(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

StreamEvent::StreamEvent(bool timed) : timed_(timed) {}
StreamEvent::~StreamEvent() = default;
void StreamEvent::record(Stream) {
  host_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  recorded_ = true;
}
void StreamEvent::wait_host() const {}
bool StreamEvent::done() const { return true; }
double elapsed_ms(const StreamEvent& from, const StreamEvent& to) {
  PPT_CHECK(from.timed_ && to.timed_, "elapsed time between events made without timing");
  PPT_CHECK(from.recorded_ && to.recorded_, "elapsed time between events never recorded");
  return to.host_ms_ - from.host_ms_;
}

}  // namespace pptrain::kernels::cuda
