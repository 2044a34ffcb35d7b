// [cuda] global grad-norm pieces against the CPU twin (kernels/grad_norm.h): sum of squares
// (double, deterministic, accumulating into a device double) and the in-place scale.
#include <cstring>

#include "cuda_test_util.h"
#include "kernels/grad_norm.h"

namespace {

namespace cpu = pptrain::kernels::cpu;
using namespace pptrain::test::cuda;

// Both sides add the same double-precision squares, in different orders: the sums agree to a
// few double ulps times log2(n), far below 1e-12 relative.
constexpr double kDoubleTol = 1e-12;

double gpu_sum_of_squares(const std::vector<float>& x, double start) {
  DeviceArray d_x = DeviceArray::from(x, DType::F32, pptrain::MemCategory::Grads);
  kc::DeviceBuffer acc(device_tracker(), pptrain::MemCategory::Workspace, sizeof(double));
  kc::DeviceBuffer scratch(device_tracker(), pptrain::MemCategory::Workspace,
                           kc::sum_of_squares_scratch_bytes());
  acc.copy_from_host(&start, sizeof start);
  kc::sum_of_squares(acc.as<double>(), d_x.f32(), x.size(), scratch.data(), scratch.bytes(), {});
  kc::synchronize({});
  double result = 0.0;
  acc.copy_to_host(&result, sizeof result);
  return result;
}

}  // namespace

TEST_CASE("CUDA sum of squares matches the CPU twin and is deterministic", "[cuda]") {
  // 1, 1000 and 3,000,007 values (more than 1024 blocks of 256: the grid-stride loop).
  for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{3000007}}) {
    INFO("n=" << n);
    const auto x = randn(n, 900);
    const double ref = cpu::sum_of_squares(x.data(), n);
    const double start = 2.5;  // it accumulates
    const double first = gpu_sum_of_squares(x, start) - start;
    const double second = gpu_sum_of_squares(x, start) - start;
    CHECK(pptrain::test::relative_error(&first, &ref, 1) < kDoubleTol);
    CHECK(std::memcmp(&first, &second, sizeof first) == 0);
  }
}
