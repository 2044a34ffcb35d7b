// The one place that turns runtime.device and runtime.comm into a Transport.
#pragma once

#include <memory>
#include <string>

#include "comm/transport.h"
#include "config/config.h"
#include "kernels/cuda/cuda_types.h"

namespace pptrain {

// Collective over MPI_COMM_WORLD when world_size > 1 (MPI initialized).
//   world of 1                    -> SingleProcessTransport ("single");
//   runtime.device cpu            -> MpiTransport ("mpi");
//   runtime.device cuda, comm mpi -> HostStagingTransport ("mpi"): device pointers staged
//                                    through pinned host memory; ranks may share a GPU;
//   runtime.device cuda, comm nccl-> NcclTransport ("nccl"): every rank on a GPU of its own;
//   comm auto picks nccl when every rank has its own GPU and the build has NCCL, else mpi.
// For cuda, call place_on_gpu (comm/device_assignment.h) first and create `compute` after
// it; `compute` is ignored on the CPU. An NcclTransport still needs connect(peers) before
// its first send or receive. `chosen`, when given, receives the choice in quotes above.
// Throws pptrain::Error when the build lacks what the config asks for.
std::unique_ptr<Transport> make_transport(const RuntimeConfig& runtime, int world_size,
                                          kernels::cuda::Stream compute, std::string* chosen = nullptr);

}  // namespace pptrain
