// Compiled in every build; the body needs the CUDA backend (the factory refuses it without).
// It uses the backend's host API only (kernels/cuda/device_memory.h), so the emulated build
// runs it too.
#if PPTRAIN_WITH_CUDA

#include "comm/host_staging_transport.h"

#include "comm/poll_until.h"
#include "core/error.h"

namespace pptrain {

namespace kc = kernels::cuda;

HostStagingTransport::HostStagingTransport(double timeout_s, kc::Stream compute)
    : timeout_s_(timeout_s),
      compute_(compute),
      mpi_(std::make_unique<MpiTransport>(timeout_s)),
      copied_out_(std::make_unique<kc::StreamEvent>()) {}

HostStagingTransport::~HostStagingTransport() {
  // Never throws. A buffer an MPI request may still write into (a job ending on an error)
  // is left allocated: freeing it under MPI would be worse than the leak.
  for (Staging& s : staging_) {
    try {
      if (s.copied) s.copied->wait_host();
    } catch (...) {
    }
    if (s.mpi_pending) new kc::PinnedHostBuffer(std::move(s.host));  // deliberately leaked
  }
}

float* HostStagingTransport::host_of(int staging) {
  return static_cast<float*>(staging_[staging].host.data());
}

void HostStagingTransport::release_copied() {
  for (Staging& s : staging_) {
    if (s.copy_pending && s.copied->done()) {
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
      staging_[any_free].copied = std::make_unique<kc::StreamEvent>();
    }
    Staging& s = staging_[any_free];
    s.host = kc::PinnedHostBuffer();  // free the old one first
    s.capacity = 0;
    s.host = kc::PinnedHostBuffer(count * sizeof(float));
    s.capacity = count;
    best = any_free;
  }
  staging_[best].in_use = true;
  return best;
}

void HostStagingTransport::copy_to_host(float* host, const float* device, std::size_t count,
                                        const std::string& what) {
  kc::copy_async(host, device, count * sizeof(float), compute_);
  copied_out_->record(compute_);
  poll_until(
      timeout_s_, [&] { return copied_out_->done(); },
      [&](double waited) {
        PPT_THROW("waited {:.1f} s for the GPU to finish the work before {} (runtime.timeout_s = {}): "
                  "the compute stream is stuck",
                  waited, what, timeout_s_);
      });
}

void HostStagingTransport::copy_to_device(float* device, int staging, std::size_t count) {
  Staging& s = staging_[staging];
  kc::copy_async(device, s.host.data(), count * sizeof(float), compute_);
  s.copied->record(compute_);
  s.copy_pending = true;  // in_use until the event has passed (release_copied)
}

Transport::Request HostStagingTransport::track(int staging, Request inner, float* device, std::size_t count) {
  staging_[staging].mpi_pending = true;
  Pending p;
  p.inner = inner;
  p.staging = staging;
  p.device = device;
  p.count = count;
  return pending_.add(p);
}

Transport::Request HostStagingTransport::isend(const float* data, std::size_t count, int peer, int tag) {
  const int staging = acquire(count);
  copy_to_host(host_of(staging), data, count, fmt::format("a send to rank {} (tag {})", peer, tag));
  return track(staging, mpi_->isend(host_of(staging), count, peer, tag), nullptr, count);
}

Transport::Request HostStagingTransport::irecv(float* data, std::size_t count, int peer, int tag) {
  const int staging = acquire(count);
  return track(staging, mpi_->irecv(host_of(staging), count, peer, tag), data, count);
}

Transport::Request HostStagingTransport::iallreduce_sum(float* data, std::size_t count, GroupId group,
                                                        const std::string& what) {
  const int staging = acquire(count);
  copy_to_host(host_of(staging), data, count, what);
  return track(staging, mpi_->iallreduce_sum(host_of(staging), count, group, what), data, count);
}

void HostStagingTransport::wait(Request request, const std::string& what) {
  const Pending p = pending_.at(request);
  mpi_->wait(p.inner, what);  // throws on timeout, naming `what`
  pending_.take(request);
  Staging& s = staging_[p.staging];
  s.mpi_pending = false;
  if (p.device != nullptr) {
    copy_to_device(p.device, p.staging, p.count);
  } else {
    s.in_use = false;
  }
}

void HostStagingTransport::allreduce_sum(float* data, std::size_t count, GroupId group,
                                         const std::string& what) {
  if (count == 0) return;
  const int staging = acquire(count);
  copy_to_host(host_of(staging), data, count, what);
  mpi_->allreduce_sum(host_of(staging), count, group, what);
  copy_to_device(data, staging, count);
}

}  // namespace pptrain

#endif  // PPTRAIN_WITH_CUDA
