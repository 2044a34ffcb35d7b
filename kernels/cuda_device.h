// What the CUDA backend can see. Declared for every build; without CUDA the count is 0.
#pragma once

#include <cstddef>
#include <string>

namespace pptrain::kernels::cuda {

bool built_with_cuda();
// Number of usable GPUs; 0 when the build has no CUDA or the driver finds none (never throws).
int device_count();
// "NVIDIA H200 (sm_90, 139.8 GiB)" for device d.
std::string device_description(int device);
// The PCI bus id of `device` ("0000:17:00.0"): two ranks share a GPU when theirs are equal.
std::string device_bus_id(int device);
// Bytes of `device`'s memory free now (cudaMemGetInfo). The emulated build reports
// PPTRAIN_EMULATED_GPU_GIB GiB if that is set (for tests of a run that does not fit), else
// no limit; without CUDA, 0.
std::size_t device_free_bytes(int device);
// Makes `device` current for the calling host thread (cudaSetDevice) and keeps its
// stream-ordered memory pool's freed blocks for reuse; throws without CUDA.
void use_device(int device);

}  // namespace pptrain::kernels::cuda
