// The device query of an emulated build: one "GPU", which is host memory and the CPU twins.
#include <string>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/cuda_device.h"

namespace pptrain::kernels::cuda {
namespace {

void check_device(int device) {
  PPT_CHECK(device == 0, "emulated CUDA backend: device {} does not exist (1 device, id 0)", device);
}

}  // namespace

bool built_with_cuda() { return true; }
int device_count() { return 1; }

std::string device_description(int device) {
  check_device(device);
  return "emulated GPU (host memory, CPU twins)";
}

std::string device_bus_id(int device) { return fmt::format("emulated:{}", device); }

void use_device(int device) { check_device(device); }

}  // namespace pptrain::kernels::cuda
