#include "comm/transport_factory.h"

#include "comm/device_assignment.h"
#include "comm/mpi_transport.h"
#include "core/error.h"

#if PPTRAIN_WITH_CUDA
#include "comm/host_staging_transport.h"
#endif
#if PPTRAIN_WITH_NCCL
#include "comm/nccl_transport.h"
#endif

namespace pptrain {

namespace {
#if PPTRAIN_WITH_NCCL
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

std::unique_ptr<Transport> make_gpu_transport(const RuntimeConfig& runtime, int world_size,
                                              kernels::cuda::Stream compute, std::string* chosen) {
#if PPTRAIN_WITH_CUDA
  PPT_CHECK(runtime.comm != "nccl" || kHaveNccl,
            "runtime.comm is nccl but this build has no NCCL (nccl.h and libnccl were not found at "
            "configure time): install NCCL and rebuild, or set runtime.comm: mpi");
  // Without NCCL, auto means mpi: GPU tensors staged through host memory.
  const std::string requested = runtime.comm == "auto" && !kHaveNccl ? "mpi" : runtime.comm;
  const GpuPlacement placement = place_on_gpu(requested, world_size);
  if (chosen != nullptr) *chosen = placement.comm;
  if (placement.comm == "single") return std::make_unique<SingleProcessTransport>();
  if (placement.comm == "mpi") return std::make_unique<HostStagingTransport>(runtime.timeout_s, compute);
#if PPTRAIN_WITH_NCCL
  return std::make_unique<NcclTransport>(runtime.timeout_s, compute);
#endif
#else
  (void)runtime, (void)compute, (void)chosen;
#endif
  PPT_THROW("runtime.device is cuda but this build has no CUDA backend: rebuild with -DPPTRAIN_CUDA=ON "
            "(world of {} ranks)",
            world_size);
}
}  // namespace

std::unique_ptr<Transport> make_transport(const RuntimeConfig& runtime, int world_size,
                                          kernels::cuda::Stream compute, std::string* chosen) {
  if (runtime.device == "cuda") return make_gpu_transport(runtime, world_size, compute, chosen);
  const std::string comm = choose_comm(runtime.comm, runtime.device, world_size, false);
  if (chosen != nullptr) *chosen = comm;
  if (comm == "single") return std::make_unique<SingleProcessTransport>();
  return std::make_unique<MpiTransport>(runtime.timeout_s);
}

}  // namespace pptrain
