// The device query of an emulated build: one "GPU", which is host memory and the CPU twins.
#include <cstdlib>
#include <limits>
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

std::size_t device_free_bytes(int device) {
  check_device(device);
  const char* gib = std::getenv("PPTRAIN_EMULATED_GPU_GIB");
  if (gib == nullptr || *gib == '\0') return std::numeric_limits<std::size_t>::max();
  return static_cast<std::size_t>(std::strtod(gib, nullptr) * (1ull << 30));
}

void use_device(int device) { check_device(device); }

}  // namespace pptrain::kernels::cuda
