// Compiled in every build; the body needs the CUDA backend (the factory refuses it without).
#if PPTRAIN_WITH_CUDA && !PPTRAIN_CUDA_EMULATED

#include "comm/host_staging_transport.h"

#include "comm/cuda_host_check.h"
#include "comm/poll_until.h"

namespace pptrain {

namespace {
cudaStream_t stream_of(kernels::cuda::Stream s) { return static_cast<cudaStream_t>(s.handle); }
}  // namespace

HostStagingTransport::HostStagingTransport(double timeout_s, kernels::cuda::Stream compute)
    : timeout_s_(timeout_s), compute_(compute), mpi_(std::make_unique<MpiTransport>(timeout_s)) {
  CUDA_CHECK(cudaEventCreateWithFlags(&copied_out_, cudaEventDisableTiming));
}

HostStagingTransport::~HostStagingTransport() {
  // Never throws. A buffer an MPI request may still write into (a job ending on an error)
  // is left allocated: freeing it under MPI would be worse than the leak.
  for (Staging& s : staging_) {
    if (s.copied != nullptr) {
      cudaEventSynchronize(s.copied);
      cudaEventDestroy(s.copied);
    }
    if (s.host != nullptr && !s.mpi_pending) cudaFreeHost(s.host);
  }
  if (copied_out_ != nullptr) cudaEventDestroy(copied_out_);
}

void HostStagingTransport::release_copied() {
  for (Staging& s : staging_) {
    if (s.copy_pending && comm_detail::event_done(s.copied)) {
      s.copy_pending = false;
      s.in_use = false;
    }
  }
}

int HostStagingTransport::acquire(std::size_t count) {
  release_copied();
  // The smallest free buffer that fits; else grow a free one; else a new one.
  int best = -1, any_free = -1;
  for (int i = 0; i < static_cast<int>(staging_.size()); ++i) {
    const Staging& s = staging_[i];
    if (s.in_use) continue;
    any_free = i;
    if (s.capacity >= count && (best < 0 || s.capacity < staging_[best].capacity)) best = i;
  }
  if (best < 0) {
    if (any_free < 0) {
      staging_.emplace_back();
      any_free = static_cast<int>(staging_.size()) - 1;
      CUDA_CHECK(cudaEventCreateWithFlags(&staging_[any_free].copied, cudaEventDisableTiming));
    }
    Staging& s = staging_[any_free];
    if (s.host != nullptr) CUDA_CHECK(cudaFreeHost(s.host));
    s.host = nullptr;
    s.capacity = 0;
    void* host = nullptr;
    CUDA_CHECK(cudaMallocHost(&host, count * sizeof(float)));
    s.host = static_cast<float*>(host);
    s.capacity = count;
    best = any_free;
  }
  staging_[best].in_use = true;
  return best;
}

void HostStagingTransport::copy_to_host(float* host, const float* device, std::size_t count,
                                        const std::string& what) {
  const cudaStream_t stream = stream_of(compute_);
  CUDA_CHECK(cudaMemcpyAsync(host, device, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaEventRecord(copied_out_, stream));
  poll_until(
      timeout_s_, [&] { return comm_detail::event_done(copied_out_); },
      [&](double waited) {
        PPT_THROW("waited {:.1f} s for the GPU to finish the work before {} (runtime.timeout_s = {}): "
                  "the compute stream is stuck",
                  waited, what, timeout_s_);
      });
}

void HostStagingTransport::copy_to_device(float* device, int staging, std::size_t count) {
  Staging& s = staging_[staging];
  const cudaStream_t stream = stream_of(compute_);
  CUDA_CHECK(cudaMemcpyAsync(device, s.host, count * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaEventRecord(s.copied, stream));
  s.copy_pending = true;  // in_use until the event has passed (release_copied)
}

Transport::Request HostStagingTransport::track(const Pending& p) {
  if (!free_slots_.empty()) {
    const Request slot = free_slots_.back();
    free_slots_.pop_back();
    pending_[slot] = p;
    return slot;
  }
  pending_.push_back(p);
  return static_cast<Request>(pending_.size() - 1);
}

Transport::Request HostStagingTransport::isend(const float* data, std::size_t count, int peer, int tag) {
  const int staging = acquire(count);
  copy_to_host(staging_[staging].host, data, count, fmt::format("a send to rank {} (tag {})", peer, tag));
  Pending p;
  p.inner = mpi_->isend(staging_[staging].host, count, peer, tag);
  staging_[staging].mpi_pending = true;
  p.staging = staging;
  p.count = count;
  return track(p);
}

Transport::Request HostStagingTransport::irecv(float* data, std::size_t count, int peer, int tag) {
  const int staging = acquire(count);
  Pending p;
  p.inner = mpi_->irecv(staging_[staging].host, count, peer, tag);
  staging_[staging].mpi_pending = true;
  p.staging = staging;
  p.device = data;
  p.count = count;
  p.is_recv = true;
  return track(p);
}

void HostStagingTransport::wait(Request request, const std::string& what) {
  PPT_CHECK(request >= 0 && static_cast<std::size_t>(request) < pending_.size() &&
                pending_[request].staging >= 0,
            "wait on unknown request {}", request);
  const Pending p = pending_[request];
  mpi_->wait(p.inner, what);  // throws on timeout, naming `what`
  pending_[request] = Pending{};
  free_slots_.push_back(request);
  Staging& s = staging_[p.staging];
  s.mpi_pending = false;
  if (p.is_recv) {
    copy_to_device(p.device, p.staging, p.count);
  } else {
    s.in_use = false;
  }
}

void HostStagingTransport::allreduce_sum(float* data, std::size_t count, GroupId group,
                                         const std::string& what) {
  if (count == 0) return;
  const int staging = acquire(count);
  copy_to_host(staging_[staging].host, data, count, what);
  mpi_->allreduce_sum(staging_[staging].host, count, group, what);
  copy_to_device(data, staging, count);
}

}  // namespace pptrain

#endif  // PPTRAIN_WITH_CUDA
