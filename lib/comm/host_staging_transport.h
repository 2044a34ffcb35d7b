// Transport for GPU tensors over MPI, through pinned host memory (runtime.comm mpi with
// runtime.device cuda). It needs nothing from the GPUs but the CUDA runtime, so several
// ranks can share one GPU (tests, small machines), and it works wherever MPI does.
//
// Pointers given to isend/irecv/allreduce_sum(float*) are DEVICE pointers; the double
// all-reduce takes host memory, as on every transport. Ordering against the compute stream:
//   isend:  queues a device-to-host copy into a staging buffer on the compute stream, waits
//           (sleeping) for it, so the send reads what the stream's earlier work wrote, then
//           starts an MPI send from the staging buffer;
//   irecv:  starts an MPI receive into a staging buffer; wait() completes it, then queues
//           the host-to-device copy on the compute stream, so work queued after wait()
//           sees the data. The staging buffer is reused only once that copy has run (an
//           event recorded after it);
//   allreduce_sum(float*): copy out, MPI all-reduce on the host, copy back on the stream;
//           iallreduce_sum copies out (waiting, as isend), starts the MPI all-reduce, and
//           wait() copies the sum back as a receive's data.
// Staging buffers (page-locked) are pooled: one per request in flight, reused, grown to
// the largest message they carried. The cost over NCCL: two PCIe copies per message and
// a host synchronization per send; fine for sharing a GPU, slow for real training.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/mpi_transport.h"
#include "comm/request_table.h"
#include "comm/transport.h"
#include "kernels/cuda/cuda_types.h"
#include "kernels/cuda/device_memory.h"

namespace pptrain {

class HostStagingTransport final : public Transport {
 public:
  // Needs MPI initialized and the rank's GPU current (place_on_gpu). `compute` is the
  // stream every kernel of this rank runs on.
  HostStagingTransport(double timeout_s, kernels::cuda::Stream compute);
  ~HostStagingTransport() override;
  HostStagingTransport(const HostStagingTransport&) = delete;
  HostStagingTransport& operator=(const HostStagingTransport&) = delete;

  int rank() const override { return mpi_->rank(); }
  int world_size() const override { return mpi_->world_size(); }
  Request isend(const float* data, std::size_t count, int peer, int tag) override;
  Request irecv(float* data, std::size_t count, int peer, int tag) override;
  void wait(Request request, const std::string& what) override;
  GroupId split_group(int color, int key) override { return mpi_->split_group(color, key); }
  void allreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) override;
  Request iallreduce_sum(float* data, std::size_t count, GroupId group, const std::string& what) override;
  void allreduce_sum(double* data, std::size_t count, GroupId group, const std::string& what) override {
    mpi_->allreduce_sum(data, count, group, what);
  }

 private:
  struct Staging {
    kernels::cuda::PinnedHostBuffer host;
    std::size_t capacity = 0;    // floats
    std::unique_ptr<kernels::cuda::StreamEvent> copied;  // after the last host-to-device copy from it
    bool in_use = false;         // held by a request, or its copy to the GPU has not run yet
    bool copy_pending = false;   // `copied` not yet passed
    bool mpi_pending = false;    // an MPI request may still touch it: never free it
  };
  struct Pending {
    Request inner = -1;      // the MpiTransport request
    int staging = -1;
    float* device = nullptr;  // where a receive or all-reduce lands, copied at wait()
    std::size_t count = 0;
  };
  // The request of an MPI operation `inner` on staging buffer `staging`; device: where
  // wait() copies the buffer (nullptr: a send, nothing to copy back).
  Request track(int staging, Request inner, float* device, std::size_t count);
  float* host_of(int staging);
  int acquire(std::size_t count);  // a free staging buffer of at least count floats
  void release_copied();           // recycles buffers whose copies have run
  void copy_to_host(float* host, const float* device, std::size_t count, const std::string& what);
  void copy_to_device(float* device, int staging, std::size_t count);

  double timeout_s_;
  kernels::cuda::Stream compute_;
  std::unique_ptr<MpiTransport> mpi_;
  std::unique_ptr<kernels::cuda::StreamEvent> copied_out_;  // device-to-host copy done
  std::vector<Staging> staging_;
  RequestTable<Pending> pending_;
};

}  // namespace pptrain
