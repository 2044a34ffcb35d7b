// [cuda] the two small ops of the training path against host references: add_vectors (a
// block's output, the tied-wte gradient sum; CPU twin: the loop in CpuStageModel) and
// add_scaled_sum (a micro-batch's mean loss accumulated on the device; CPU twin: the double
// sum in CpuStageModel::forward).
#include "cuda_test_util.h"

namespace {
using namespace pptrain::test::cuda;
// Both sides add the same double-precision values in different orders.
constexpr double kDoubleTol = 1e-12;
}  // namespace

TEST_CASE("CUDA add_vectors matches the host sum, in place too", "[cuda]") {
  for (const DType dt : {DType::F32, DType::BF16}) {
    // Odd n: one element at a time; even n: bf16 takes the pair kernel.
    for (const std::size_t n : {std::size_t{1}, std::size_t{1001}, std::size_t{300007},
                                std::size_t{2}, std::size_t{300008}}) {
      INFO("dtype " << kc::dtype_name(dt) << ", n=" << n);
      const auto a = rounded(randn(n, 31), dt), b = rounded(randn(n, 32), dt);
      std::vector<float> ref(n);
      for (std::size_t i = 0; i < n; ++i) ref[i] = a[i] + b[i];
      ref = rounded(ref, dt);
      DeviceArray d_a = DeviceArray::from(a, dt), d_b = DeviceArray::from(b, dt), d_out(n, dt);
      d_out.poison();
      kc::add_vectors(d_out.data(), d_a.data(), d_b.data(), n, dt, {});
      CHECK(d_out.to_host() == ref);  // one rounding of an exact fp32 sum: bit-exact
      kc::add_vectors(d_a.data(), d_a.data(), d_b.data(), n, dt, {});  // out aliases a
      CHECK(d_a.to_host() == ref);
    }
  }
}

TEST_CASE("CUDA add_scaled_sum accumulates a scaled sum in double", "[cuda]") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{3000007}}) {
    INFO("n=" << n);
    const auto x = randn(n, 33);
    double ref = 0.0;
    for (const float v : x) ref += v;
    const double scale = 1.0 / static_cast<double>(n), start = 2.5;
    DeviceArray d_x = DeviceArray::from(x, DType::F32, pptrain::MemCategory::Grads);
    kc::DeviceBuffer acc(device_tracker(), pptrain::MemCategory::Workspace, sizeof(double));
    kc::DeviceBuffer scratch(device_tracker(), pptrain::MemCategory::Workspace,
                             kc::sum_of_squares_scratch_bytes());
    acc.copy_from_host(&start, sizeof start);
    kc::add_scaled_sum(acc.as<double>(), d_x.f32(), n, scale, scratch.data(), scratch.bytes(), {});
    kc::synchronize({});
    double got = 0.0;
    acc.copy_to_host(&got, sizeof got);
    CHECK(std::abs((got - start) - ref * scale) <= kDoubleTol * std::max(1.0, std::abs(ref * scale)));
  }
}
