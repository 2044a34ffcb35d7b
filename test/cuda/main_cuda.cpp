// Runner for the [cuda] tests. Without a GPU (or in a build without CUDA) it runs nothing
// and exits 77, which ctest reports as "skipped": a GPU check is never counted as passed
// on a machine that could not run it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "kernels/cuda_device.h"

int main(int argc, char** argv) {
  namespace cuda = pptrain::kernels::cuda;
  if (!cuda::built_with_cuda() || cuda::device_count() == 0) {
    std::printf("[cuda] tests skipped: %s\n",
                cuda::built_with_cuda() ? "no GPU visible" : "this build has no CUDA");
    return 77;
  }
  std::printf("[cuda] tests on %s\n", cuda::device_description(0).c_str());
  return Catch::Session().run(argc, argv);
}
