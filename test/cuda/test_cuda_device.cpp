#include <catch2/catch.hpp>

#include "kernels/cuda_device.h"

TEST_CASE("A GPU is visible and described", "[cuda]") {
  REQUIRE(pptrain::kernels::cuda::device_count() >= 1);
#if PPTRAIN_CUDA_EMULATED
  // The host-memory emulation has no compute capability and says so.
  CHECK(pptrain::kernels::cuda::device_description(0).find("emulated") != std::string::npos);
#else
  CHECK(pptrain::kernels::cuda::device_description(0).find("sm_") != std::string::npos);
#endif
}
