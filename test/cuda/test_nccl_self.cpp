// [cuda] The GPU transports on one rank, without a launcher (MPI starts as a singleton):
// NCCL point-to-point to self on a 1-rank communicator (the library, the driver and the
// build agree), NcclTransport's non-blocking set-up and tear-down, and HostStagingTransport
// moving device data through pinned host memory to itself.
#include <catch2/catch.hpp>

#if PPTRAIN_WITH_CUDA && !PPTRAIN_CUDA_EMULATED
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "comm/host_staging_transport.h"
#include "comm/mpi_session.h"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/cuda_types.h"
#if PPTRAIN_WITH_NCCL
#include <nccl.h>

#include "comm/nccl_transport.h"
#endif

namespace {

// MPI for the transports, started once for the whole test run and finalized at exit.
void ensure_mpi() { static pptrain::MpiSession session(nullptr, nullptr); }

// A device array of n floats holding `first`, `first` + 1, ...; and its contents read back.
struct DeviceFloats {
  float* data = nullptr;
  std::size_t n = 0;
  explicit DeviceFloats(std::size_t count, float first) : n(count) {
    CUDA_CHECK(cudaMalloc(&data, n * sizeof(float)));
    std::vector<float> host(n);
    for (std::size_t i = 0; i < n; ++i) host[i] = first + static_cast<float>(i % 4096);
    CUDA_CHECK(cudaMemcpy(data, host.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceFloats() { cudaFree(data); }
  std::vector<float> read() const {
    std::vector<float> host(n);
    CUDA_CHECK(cudaMemcpy(host.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }
};

// How many values differ from first + (i % 4096) times `scale`.
std::size_t wrong_values(const std::vector<float>& v, float first, float scale = 1.0f) {
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != scale * (first + static_cast<float>(i % 4096))) ++wrong;
  }
  return wrong;
}

const std::vector<std::size_t> kSizes = {1, 1000, 1 << 20, (1 << 22) + 3};

}  // namespace

#if PPTRAIN_WITH_NCCL
TEST_CASE("NCCL sends to itself on a one-rank communicator", "[cuda][nccl]") {
  ncclUniqueId id;
  REQUIRE(ncclGetUniqueId(&id) == ncclSuccess);
  ncclComm_t comm = nullptr;
  REQUIRE(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (std::size_t n : kSizes) {
    DeviceFloats from(n, 1.0f), to(n, -7.0f);
    REQUIRE(ncclGroupStart() == ncclSuccess);
    REQUIRE(ncclSend(from.data, n, ncclFloat, 0, comm, stream) == ncclSuccess);
    REQUIRE(ncclRecv(to.data, n, ncclFloat, 0, comm, stream) == ncclSuccess);
    REQUIRE(ncclGroupEnd() == ncclSuccess);
    CUDA_CHECK(cudaStreamSynchronize(stream));
    INFO(n << " floats");
    CHECK(wrong_values(to.read(), 1.0f) == 0);
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
  CHECK(ncclCommDestroy(comm) == ncclSuccess);
}

TEST_CASE("NcclTransport sets up and tears down a world of one", "[cuda][nccl]") {
  ensure_mpi();
  pptrain::kernels::cuda::OwnedStream compute;
  {
    pptrain::NcclTransport t(30.0, compute.get());
    CHECK(t.rank() == 0);
    CHECK(t.world_size() == 1);
    t.connect({});
    const pptrain::GroupId all = t.split_group(0, 0);
    CHECK(all == 0);
    CHECK(t.split_group(-1, 0) == pptrain::kNoGroup);
    DeviceFloats grads(1000, 2.0f);
    t.allreduce_sum(grads.data, grads.n, all, "a one-member all-reduce");
    pptrain::kernels::cuda::synchronize(compute.get());
    CHECK(wrong_values(grads.read(), 2.0f) == 0);
    double loss = 1.5;
    t.allreduce_sum(&loss, 1, all, "the loss");
    CHECK(loss == 1.5);
    CHECK_THROWS_WITH(t.isend(grads.data, 1, 1, 0), Catch::Contains("no NCCL channel to rank 1"));
  }
}
#endif

TEST_CASE("HostStagingTransport moves device data through pinned memory to itself", "[cuda]") {
  ensure_mpi();
  pptrain::kernels::cuda::OwnedStream compute;
  pptrain::HostStagingTransport t(30.0, compute.get());
  REQUIRE(t.world_size() == 1);
  // Sizes up and down, so staging buffers are grown and reused.
  for (std::size_t n : {std::size_t{1000}, std::size_t{1} << 20, std::size_t{17}, std::size_t{1} << 20}) {
    DeviceFloats from(n, 3.0f), to(n, -1.0f);
    const auto recv = t.irecv(to.data, n, 0, 5);
    const auto send = t.isend(from.data, n, 0, 5);
    t.wait(send, "the send to self");
    t.wait(recv, "the receive from self");
    // Ordered on the compute stream: a kernel-free check is a synchronize, then read.
    pptrain::kernels::cuda::synchronize(compute.get());
    INFO(n << " floats");
    CHECK(wrong_values(to.read(), 3.0f) == 0);
  }
  const pptrain::GroupId all = t.split_group(0, 0);
  DeviceFloats grads(5000, 4.0f);
  t.allreduce_sum(grads.data, grads.n, all, "a one-member all-reduce");
  pptrain::kernels::cuda::synchronize(compute.get());
  CHECK(wrong_values(grads.read(), 4.0f) == 0);
}
#endif  // PPTRAIN_WITH_CUDA
