// The CUDA device query in a build without CUDA: no devices.
#include "kernels/cuda_device.h"

#ifndef PPTRAIN_WITH_CUDA
namespace pptrain::kernels::cuda {

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string device_description(int) { return "no CUDA in this build"; }

}  // namespace pptrain::kernels::cuda
#endif
