// The CUDA device query in a build without CUDA: no devices.
#include "kernels/cuda_device.h"

#include "core/error.h"

#ifndef PPTRAIN_WITH_CUDA
namespace pptrain::kernels::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string device_description(int) { return "no CUDA in this build"; }
std::string device_bus_id(int) { PPT_THROW("this build has no CUDA backend"); }
std::size_t device_free_bytes(int) { return 0; }
void use_device(int) { PPT_THROW("this build has no CUDA backend: rebuild with -DPPTRAIN_CUDA=ON"); }

}  // namespace pptrain::kernels::cuda
#endif
